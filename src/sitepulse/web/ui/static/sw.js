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

// Static routing (Chromium 123+): the browser answers plotly from the cache, and sends every
// other request straight to the network, without starting the worker. Browsers without it
// get nothing from this worker (a fetch handler would wake it for every request of every
// page), so there it caches nothing and unregisters itself.
var ROUTING = typeof InstallEvent !== "undefined" && "addRoutes" in InstallEvent.prototype;

function routes(event) {
  var url = new URL(PLOTLY_URL);
  var plotly = { pathname: url.pathname, search: url.search.slice(1) };
  return event.addRoutes([
    { condition: { urlPattern: plotly, requestMethod: "GET" }, source: { cacheName: CACHE } },
    { condition: { not: { urlPattern: { pathname: url.pathname } } }, source: "network" }
  ]);
}

function precache() {
  // Only the bytes of this very version: an older server answering during an upgrade would
  // otherwise leave its plotly under the new URL, where nothing ever revalidates it.
  var version = '"' + new URL(PLOTLY_URL).searchParams.get("v") + '"';
  return fetch(PLOTLY_URL, { cache: "no-cache" }).then(function (response) {
    if (!response.ok || response.headers.get("ETag") !== version) {
      throw new Error("plotly.min.js is not version " + version);
    }
    return caches.open(CACHE).then(function (cache) { return cache.put(PLOTLY_URL, response); });
  });
}

self.addEventListener("install", function (event) {
  if (!ROUTING) {
    event.waitUntil(self.skipWaiting());
    return;
  }
  // A failed precache or rejected routes fail the install: pages then work as without it.
  event.waitUntil(Promise.all([precache(), routes(event)]).then(function () {
    return self.skipWaiting();
  }));
});

self.addEventListener("activate", function (event) {
  if (!ROUTING) {
    event.waitUntil(self.registration.unregister());
    return;
  }
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf(PREFIX) === 0 && name !== CACHE;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});
