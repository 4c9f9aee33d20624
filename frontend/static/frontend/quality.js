// The label-quality dashboard updates itself when its stored report is refreshed: it polls the
// report's status (JSON, through livestatus.js) and, when the stored report or its staleness
// differs from what the page shows, swaps in the server's fresh drawing of the report. Often
// while a refresh is awaited (stale or no report yet), rarely otherwise.
(function () {
  "use strict";
  var WAITING_MS = 3000;
  var IDLE_MS = 20000;
  if (!window.ConcordLive) return;

  function shown() {
    var box = document.querySelector("[data-quality-report]");
    return box && {
      url: box.getAttribute("data-status-url"),
      id: box.getAttribute("data-report-id"),
      stale: box.getAttribute("data-stale") === "1",
    };
  }

  if (!shown()) return;
  ConcordLive.poll({
    interval: function () {
      var s = shown();
      return !s.id || s.stale ? WAITING_MS : IDLE_MS;
    },
    url: function () { return shown().url; },
    apply: function (data) {
      var s = shown();
      var id = data.report_id === null ? "" : String(data.report_id);
      if (id !== s.id || data.stale !== s.stale) return ConcordLive.refreshFragment('[data-live="quality"]');
    },
  });
})();
