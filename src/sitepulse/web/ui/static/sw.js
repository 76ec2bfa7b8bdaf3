// sitepulse's service worker: it holds plotly.min.js, and nothing else, in Cache Storage.
// Chromium compiles a script a service worker caches while installing and keeps V8's code
// cache (all of its functions) beside it; a page that then gets the script from that cache
// skips compiling plotly.js, most of the main thread's time on a first visit. It is
// registered from every page, the sign-in page included, so a user's first dashboard
// finds it installed. Pages, data and other files never pass through it: they go to the
// network as before, and there is nothing of a user's in it to clear at sign-out.
// Served by static.py at /static/sw.js (scope "/"), with the URL below filled in.
"use strict";

var PLOTLY_URL = new URL("__PLOTLY_URL__", self.location.href).href;
// One cache per plotly version: a new version is a new worker (this file's bytes change),
// which caches it afresh and drops the caches of older versions once active.
var PREFIX = "sitepulse-plotly ";
var CACHE = PREFIX + PLOTLY_URL;

function routes(event) {
  // Static routing (Chromium 123+): the browser answers from the cache, or goes straight to
  // the network, without starting the worker. Elsewhere the fetch handler below does it.
  if (typeof event.addRoutes !== "function") return Promise.resolve();
  var url = new URL(PLOTLY_URL);
  var plotly = { pathname: url.pathname, search: url.search.slice(1) };
  // Rules this browser does not take are no failure: the fetch handler serves instead.
  try {
    return event.addRoutes([
      { condition: { urlPattern: plotly, requestMethod: "GET" }, source: { cacheName: CACHE } },
      { condition: { not: { urlPattern: { pathname: url.pathname } } }, source: "network" }
    ]).catch(function () {});
  } catch (err) {
    return Promise.resolve();
  }
}

self.addEventListener("install", function (event) {
  event.waitUntil(
    Promise.all([
      caches.open(CACHE).then(function (cache) { return cache.add(PLOTLY_URL); }),
      routes(event)
    ]).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf(PREFIX) === 0 && name !== CACHE;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("fetch", function (event) {
  if (event.request.method !== "GET" || event.request.url !== PLOTLY_URL) return;
  event.respondWith(
    caches.open(CACHE).then(function (cache) { return cache.match(PLOTLY_URL); })
      .then(function (hit) { return hit || fetch(event.request); })
  );
});
