// Draws every chart on the page from its JSON block: <div data-chart="spec-id"> reads
// <script type="application/json" id="spec-id">{"data": [...], "layout": {...}}</script>.
// Redraws in place (Plotly.react) after an auto-refresh. SVG traces only: no WebGL, no eval.
(function () {
  "use strict";
  var CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
  var BASE = {
    margin: { l: 48, r: 16, t: 8, b: 40 },
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12,
            color: "#1c2430" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    colorway: ["#1f5fbf", "#e07b00", "#2a9d5b", "#b42318", "#7a4fc4", "#0f8b8d",
               "#c2477f", "#5b6676"],
    legend: { orientation: "h", x: 0, y: 1.02, xanchor: "left", yanchor: "bottom" },
    hoverlabel: { font: { size: 12 } },
    xaxis: { automargin: true, gridcolor: "#eceff3", zerolinecolor: "#dde1e7" },
    yaxis: { automargin: true, gridcolor: "#eceff3", zerolinecolor: "#dde1e7" }
  };

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
    // Plotly.react updates an existing plot in place, so a refresh does not flash.
    window.Plotly.react(div, spec.data, layout, CONFIG);
  }

  // One chart per task, in page order: the browser paints between them, so the first
  // charts show while later ones are still being drawn, and input is never blocked long.
  var queue = [];
  function drawAll() {
    var pending = queue.length > 0;
    queue = Array.prototype.slice.call(document.querySelectorAll("[data-chart]"));
    if (!pending) next();
  }
  function next() {
    var div = queue.shift();
    if (!div) {
      document.documentElement.setAttribute("data-charts", "drawn");
      return;
    }
    draw(div);
    window.setTimeout(next, 0);
  }

  document.addEventListener("sitepulse:refreshed", drawAll);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
