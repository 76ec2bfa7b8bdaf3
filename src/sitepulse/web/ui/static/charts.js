// Draws every chart on the page from its JSON block: <div data-chart="spec-id"> reads
// <script type="application/json" id="spec-id">{"data": [...], "layout": {...}}</script>.
// Redraws in place (Plotly.react) after an auto-refresh, and when the window is resized
// (with margins worked out for the new width). SVG traces only: no WebGL, no eval.
//
// Drawing the charts is most of a returning visit's page load, so each one is made cheap:
// its margins are worked out here first (margins()), so Plotly's automargin, kept as the
// safety net, does not have to draw it a second time; tick labels are not measured once
// more to hide overflow; gauges are static. Charts in view are drawn first, one per task.
// Timings go to the User Timing API: a mark "sitepulse:charts" when this script starts
// (Plotly has been evaluated by then) and a measure "sitepulse:chart:<id>" per chart.
(function () {
  "use strict";
  // Not Plotly's `responsive`: the resize handler below redraws with margins for the new
  // width, where Plotly would resize keeping the old ones.
  var CONFIG = { displaylogo: false, displayModeBar: false };
  // Gauges show one number against a target: nothing to hover, zoom or pan.
  var STATIC = { displaylogo: false, displayModeBar: false, staticPlot: true };
  var FAMILY = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
  var SIZE = 12;
  // Plotly keeps this much room beyond what labels push a margin to (12 px, or the smallest
  // margin when that is less).
  var PAD = 12;
  // The least height, in px, a chart's plot keeps however many rows its legend takes.
  var PLOT = 100;
  var AXIS = {
    automargin: true,
    gridcolor: "#eceff3",
    zerolinecolor: "#dde1e7",
    // The default on numeric axes, "hide past div", measures every tick label after each
    // draw; the margins fit the labels, so none can pass the edge.
    ticklabeloverflow: "allow"
  };
  var BASE = {
    margin: { l: 48, r: 16, t: 8, b: 40 },
    font: { family: FAMILY, size: SIZE, color: "#1c2430" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    colorway: ["#1f5fbf", "#e07b00", "#2a9d5b", "#b42318", "#7a4fc4", "#0f8b8d",
               "#c2477f", "#5b6676"],
    legend: { orientation: "h", x: 0, y: 1.02, xanchor: "left", yanchor: "bottom" },
    hoverlabel: { font: { size: 12 } },
    xaxis: AXIS,
    yaxis: AXIS
  };
  var timed = !!(window.performance && performance.mark && performance.measure);
  if (timed) performance.mark("sitepulse:charts");

  // A deep copy every time: Plotly writes what it works out (axis types, ranges) back into
  // the layout it is given, which must not leak from one chart into the next.
  function merge(base, extra) {
    var out = JSON.parse(JSON.stringify(base));
    Object.keys(extra || {}).forEach(function (k) {
      var a = out[k], b = extra[k];
      var plain = function (v) { return v && typeof v === "object" && !Array.isArray(v); };
      out[k] = plain(a) && plain(b) ? merge(a, b) : b;
    });
    return out;
  }

  var pen = null;
  function textWidth(text) {
    if (!pen) {
      pen = document.createElement("canvas").getContext("2d");
      pen.font = SIZE + "px " + FAMILY;
    }
    // Plotly shows the entities plot_text writes as the characters they stand for.
    var shown = String(text).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
    return pen.measureText(shown).width;
  }
  function widest(labels) {
    return labels.reduce(function (most, label) { return Math.max(most, textWidth(label)); }, 0);
  }

  // As wide as any tick label of a numeric axis whose range ends at `top`: the ticks stay
  // inside the range, so its end, formatted, has as many digits as the widest of them.
  function tickText(top, format) {
    var pct = /^\.(\d)%$/.exec(format || "");
    if (pct) return (top * 100).toFixed(Number(pct[1])) + "%";
    if (top >= 1e4) return "000k";
    if (top >= 10) return String(Math.floor(top));
    return top >= 1 ? "0.0" : "0.00";
  }

  // How far the last tick label of a value axis across the plot reaches past its right
  // edge. The ticks are Plotly's: about one per 80 px, 2, 5 or 10 times a power of ten
  // apart, from 0 to the range's end, which leaves 5 % beyond the longest bar.
  function overhang(top, format, length) {
    var end = top / 0.95;
    if (!(end > 0) || !(length > 0)) return 0;
    var rough = end / (Math.min(Math.max(length / 80, 4), 9) + 1);
    var base = Math.pow(10, Math.floor(Math.log(rough) / Math.LN10));
    var step = base * [2, 5, 10].filter(function (x) { return x >= rough / base; })[0];
    var last = Math.floor(end / step) * step;
    var pct = /^\.(\d)%$/.exec(format || "");
    var label = pct ? (last * 100).toFixed(Number(pct[1])) + "%"
      : last >= 1e4 ? Number((last / 1000).toPrecision(6)) + "k"
      : String(Number(last.toPrecision(6)));
    // Three pixels to spare: the range's end is Plotly's to work out, this is near it.
    return Math.max(0, textWidth(label) / 2 - (end - last) / end * length + 3);
  }

  // The rows of a horizontal legend as Plotly lays it out: items side by side when all fit
  // in `room`, else in columns as wide as the widest item.
  function legendRows(names, room) {
    var widths = names.map(function (name) { return textWidth(name) + 40; });
    var all = widths.reduce(function (sum, w) { return sum + w + 5; }, -5);
    var column = Math.max.apply(null, widths);
    var rows = 1, x = 0;
    widths.forEach(function (w) {
      var step = (all < room ? w : column) + 5;
      // (A pixel to spare: a text measured a hair narrower than Plotly's must not save a row.)
      if (x > 0 && step + x - 5 >= room - 1) {
        rows += 1;
        x = 0;
      }
      x += step;
    });
    return rows;
  }

  // How far the category labels reach below and right of the plot: Plotly turns crowded
  // labels 30°, hanging down and to the right of their ticks, or 90° when the ticks are
  // closer than √3 lines. `plotWidth(r)` is the plot's width with that much pushed right.
  function categoryLabels(labels, plotWidth) {
    var ticks = labels.map(textWidth);
    var most = Math.max.apply(null, ticks.concat([0])), last = ticks[ticks.length - 1];
    var out = { b: 17, r: 0 };
    // Twice: turning the labels widens the right margin, which narrows the slots.
    for (var pass = 0; pass < 2; pass++) {
      var slot = plotWidth(out.r) / Math.max(ticks.length, 1);
      var crowded = ticks.some(function (w, i) {
        return i > 0 && (ticks[i - 1] + w) / 2 + 2 > slot;
      });
      if (!crowded) out = { b: 17, r: 0 };
      else if (slot < Math.sqrt(3) * 1.25 * SIZE) out = { b: most + 10, r: 0 };
      else out = { b: most / 2 + 17, r: Math.max(0, last * 0.87 + 9 - slot / 2) };
    }
    return out;
  }

  // Margins as wide as Plotly's automargin would make them (tick labels, axis titles, turned
  // category labels, the legend above the plot), so it draws each chart once rather than
  // drawing it again with the margins it found. The sums follow Plotly's own layout code; a
  // guess that falls short costs only that second drawing. Margins the spec sets are floors.
  function margins(spec, layout, width, height) {
    var data = spec.data;
    var floor = (spec.layout && spec.layout.margin) || {};
    // The margin Plotly starts from for what reaches `push` px past a side; the plot's
    // width between two of them, as Plotly will lay it out.
    var side = function (name, push) {
      return Math.max(Math.ceil(push + PAD), floor[name] || 0);
    };
    var plotWidth = function (l, r) { return width - side("l", l) - side("r", r); };
    var across = data[0].type === "funnel" || data[0].orientation === "h";
    var cat = across ? "y" : "x", num = across ? "x" : "y";
    var catAxis = layout[cat + "axis"] || {}, numAxis = layout[num + "axis"] || {};
    var title = function (axis) { return axis.title && axis.title.text ? 14 : 0; };
    var top = 0, sums = [], sign = "";
    data.forEach(function (trace) {
      (trace[num] || []).forEach(function (v, i) {
        v = Number(v) || 0;
        if (v < 0) sign = "\u2212";  // Plotly's minus sign
        v = Math.abs(v);
        sums[i] = (sums[i] || 0) + v;
        top = Math.max(top, v);
      });
    });
    if (layout.barmode === "stack") top = Math.max.apply(null, sums.concat([0]));
    // How far labels reach past each side of the plot, in px.
    var push = { l: 0, r: 0, t: 0, b: 0 };
    if (across) {
      var labels = [];
      data.forEach(function (trace) { labels = labels.concat(trace[cat] || []); });
      push.l = widest(labels) + 3;
      push.r = data[0].type === "funnel" ? 0
        : overhang(top, numAxis.tickformat, plotWidth(push.l, 0));
      push.b = data[0].type === "funnel" ? 0 : 17 + title(numAxis);  // (no value axis)
    } else {
      // Autorange leaves 5 % above the tallest bar; the top tick label reaches half a line
      // above the plot.
      push.l = textWidth(sign + tickText(top * 1.05, numAxis.tickformat)) + 3 + title(numAxis);
      push.t = 7;
      if (catAxis.type === "date") {
        push.b = 17 + title(catAxis);
        push.r = 10;
      } else {
        var turned = categoryLabels(data[0][cat] || [], function (r) {
          return plotWidth(push.l, r);
        });
        push.b = turned.b + title(catAxis);
        push.r = turned.r;
      }
    }
    var names = data.filter(function (trace) { return trace.name !== undefined; })
      .map(function (trace) { return trace.name; });
    if (layout.showlegend !== undefined ? layout.showlegend : names.length > 1) {
      // Plotly caps a horizontal legend at half the chart's height (it scrolls beyond).
      var rows = legendRows(names, plotWidth(push.l, push.r));
      var legend = Math.min(rows * 19 + 10, height / 2);
      // At y = 1.02 the legend stands 2 % of the plot's height above it.
      push.t = (legend + 0.02 * (height - push.b - 2 * PAD)) / 1.02 + 1;
    }
    layout.margin = {
      l: side("l", push.l), r: side("r", push.r), t: side("t", push.t), b: side("b", push.b)
    };
  }

  function draw(div) {
    var block = document.getElementById(div.getAttribute("data-chart"));
    if (!block || !window.Plotly) return;
    var spec;
    try {
      spec = JSON.parse(block.textContent);
    } catch (err) {
      div.textContent = "This chart's data could not be read.";
      return;
    }
    if (!spec.data || !spec.data.length) {
      // Nothing to plot in this period: say so instead of drawing empty axes.
      if (div.classList.contains("js-plotly-plot")) window.Plotly.purge(div);
      var note = document.createElement("p");
      note.className = "empty";
      note.textContent = spec.empty || "No data in this period.";
      div.replaceChildren(note);
      return;
    }
    if (!div.classList.contains("js-plotly-plot")) div.replaceChildren();
    var layout = merge(BASE, spec.layout);
    // A chart that needs more room (one bar per channel) says so with layout.height.
    div.style.height = layout.height ? layout.height + "px" : "";
    // The container's size, given outright: a redraw after a resize then lays the chart out
    // anew at the new size, in the one drawing.
    if (div.clientWidth > 0) {
      layout.width = div.clientWidth;
      layout.height = layout.height || div.clientHeight;
    }
    var gauge = spec.data[0].type === "indicator";
    // A narrow screen wraps a long legend into many rows: the chart grows (a few times, as
    // a taller chart's legend may take more rows) so that its plot keeps PLOT px.
    for (var pass = 0; !gauge && layout.width && pass < 3; pass++) {
      margins(spec, layout, layout.width, layout.height);
      var short = PLOT - (layout.height - layout.margin.t - layout.margin.b);
      if (short <= 0) break;
      layout.height += short;
      div.style.height = layout.height + "px";
    }
    // Plotly.react updates an existing plot in place, so a refresh does not flash.
    window.Plotly.react(div, spec.data, layout, gauge ? STATIC : CONFIG);
  }

  function drawTimed(div) {
    var start = timed ? performance.now() : 0;
    draw(div);
    if (timed) {
      var name = div.id || div.getAttribute("data-chart");
      performance.measure("sitepulse:chart:" + name, { start: start });
    }
  }

  // Charts in view first, then the rest in page order; one chart per task, so the browser
  // paints between them and input is never blocked for long.
  function inViewFirst(divs) {
    var seen = [], later = [], bottom = window.innerHeight;
    divs.forEach(function (div) {
      var box = div.getBoundingClientRect();
      (box.top < bottom && box.bottom > 0 ? seen : later).push(div);
    });
    return seen.concat(later);
  }
  var queue = [];
  function drawAll() {
    var pending = queue.length > 0;
    queue = inViewFirst(Array.prototype.slice.call(document.querySelectorAll("[data-chart]")));
    if (!pending) next();
  }
  function next() {
    var div = queue.shift();
    if (!div) {
      document.documentElement.setAttribute("data-charts", "drawn");
      return;
    }
    drawTimed(div);
    window.setTimeout(next, 0);
  }

  document.addEventListener("sitepulse:refreshed", drawAll);
  // Only a new width needs new margins: phones resize the window's height as they scroll.
  var drawnWidth = window.innerWidth, resized = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resized);
    resized = window.setTimeout(function () {
      if (window.innerWidth === drawnWidth) return;
      drawnWidth = window.innerWidth;
      drawAll();
    }, 100);
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
