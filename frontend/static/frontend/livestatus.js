// One small poller for the pages that watch background work (model exports, quality reports,
// imports): it asks a JSON status endpoint while something is pending and lets the page swap in a
// fresh copy of the part that changed, drawn by the server as on a first load. Plain JavaScript;
// nothing from the server goes into the page as HTML except the server's own rendered fragment.
window.ConcordLive = (function () {
  "use strict";

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); });
  }

  // Every `interval()` ms (or `interval` ms), while `url()` names something to ask (a string; null
  // when nothing is pending), GET it and hand the JSON to `apply`. `apply` may return a promise;
  // the next poll waits for it. A failed poll is retried at the next tick.
  function poll(options) {
    function wait() {
      return typeof options.interval === "function" ? options.interval() : options.interval || 1000;
    }
    function schedule() {
      if (options.url() !== null) window.setTimeout(tick, wait());
    }
    function tick() {
      var url = options.url();
      if (url === null) return;
      getJSON(url)
        .then(options.apply)
        .catch(function () { /* a missed poll is retried */ })
        .finally(schedule);
    }
    schedule();
  }

  // Replace each element matching `selector` with its counterpart in a fresh copy of this page.
  // Resolves to the number of elements replaced.
  function refreshFragment(selector) {
    return fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelectorAll(selector);
        var old = document.querySelectorAll(selector);
        var n = Math.min(fresh.length, old.length);
        for (var i = 0; i < n; i++) old[i].replaceWith(document.importNode(fresh[i], true));
        return n;
      });
  }

  return { poll: poll, getJSON: getJSON, refreshFragment: refreshFragment };
})();
