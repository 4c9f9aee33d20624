// The tuning run page: while the run is queued or running, poll its status (JSON, through
// livestatus.js), move the progress bar, and when a trial ends or the run stops, swap in the
// server's fresh drawing of the run (trials table, status, registered model). Plain JavaScript;
// values go in as text, never as HTML.
(function () {
  "use strict";
  var POLL_MS = 1000;
  var ACTIVE = { queued: true, running: true };
  if (!window.ConcordLive) return;

  function box() {
    return document.querySelector('[data-fragment="tuning"]');
  }

  ConcordLive.poll({
    interval: POLL_MS,
    url: function () {
      var el = box();
      return el && ACTIVE[el.getAttribute("data-status")] ? el.getAttribute("data-status-url") : null;
    },
    apply: function (run) {
      var el = box();
      var trials = parseInt(el.getAttribute("data-trials"), 10);
      if (!ACTIVE[run.status] || run.trials !== trials || run.status !== el.getAttribute("data-status")) {
        return ConcordLive.refreshFragment('[data-fragment="tuning"]');
      }
      var bar = el.querySelector("[data-tuning-progress]");
      if (!bar) return;
      bar.querySelector("progress").value = run.progress;
      bar.querySelector("[data-progress-text]").textContent =
        run.stage_label + " · " + Math.round(run.progress * 100) + "% · " + run.trials + (run.trials === 1 ? " trial" : " trials");
    },
  });
})();
