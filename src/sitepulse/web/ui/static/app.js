// sitepulse UI behaviour: the range picker, the phone nav, and auto-refresh without reloads.
// Loaded with `defer` from /static (the CSP allows no inline code and no eval).
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");

  // Phone nav: a button folds the nav list open and shut.
  var toggle = document.querySelector(".nav-toggle");
  var nav = document.getElementById("nav");
  if (toggle && nav) {
    toggle.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // Selects and checkboxes marked data-autosubmit apply at once.
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLElement)) return;
    if (target.hasAttribute("data-autosubmit") || target.hasAttribute("data-refresh-select")) {
      var form = target.closest("form");
      if (form) form.requestSubmit ? form.requestSubmit() : form.submit();
    }
  });

  // Auto-refresh: fetch this page again and swap what changed in place (elements marked
  // data-swap, and the charts' JSON blocks), then let charts.js redraw. No flash, and the
  // scroll position stays where it is.
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var timer = null;
  var busy = false;
  var due = false;

  function status(text) {
    var el = document.getElementById("refresh-status");
    if (!el) {
      el = document.createElement("span");
      el.id = "refresh-status";
      el.className = "muted";
      var foot = document.querySelector(".foot");
      if (!foot) return;
      foot.appendChild(document.createTextNode(" "));
      foot.appendChild(el);
    }
    el.textContent = text;
  }

  function swap(fresh) {
    fresh.querySelectorAll("[data-swap][id]").forEach(function (next) {
      var current = document.getElementById(next.id);
      if (current && current.innerHTML !== next.innerHTML) current.innerHTML = next.innerHTML;
    });
    fresh.querySelectorAll('script[type="application/json"][id]').forEach(function (next) {
      var current = document.getElementById(next.id);
      if (current && current.textContent !== next.textContent) current.textContent = next.textContent;
    });
    document.dispatchEvent(new CustomEvent("sitepulse:refreshed"));
  }

  function refresh() {
    if (busy) return;
    if (document.hidden) { due = true; return; }
    busy = true;
    due = false;
    fetch(window.location.href, {
      credentials: "same-origin",
      headers: { "Accept": "text/html", "X-Sitepulse-Refresh": "1" },
      cache: "no-store"
    }).then(function (resp) {
      if (resp.redirected || resp.status === 401) {
        window.location.reload();  // signed out meanwhile: let the server send us to sign in
        return null;
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.text();
    }).then(function (html) {
      if (html === null) return;
      swap(new DOMParser().parseFromString(html, "text/html"));
      status("");
    }).catch(function (err) {
      status("(refresh failed: " + err.message + "; retrying)");
    }).then(function () {
      busy = false;
    });
  }

  if (seconds > 0) {
    timer = window.setInterval(refresh, seconds * 1000);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && due) refresh();
    });
  }
  window.sitepulse = { refresh: refresh, timer: function () { return timer; } };
})();
