// The export page: while an export is queued or running, poll its status (JSON, through
// livestatus.js), move its progress bar, and when it ends swap in the server's fresh drawing of the
// export list (status, rows, SHA-256, download link).
(function () {
  "use strict";
  var POLL_MS = 1000;
  var ACTIVE = { queued: true, running: true };
  if (!window.ConcordLive) return;

  function active() {
    return Array.prototype.filter.call(document.querySelectorAll("[data-export][data-status]"), function (row) {
      return ACTIVE[row.getAttribute("data-status")];
    });
  }

  ConcordLive.poll({
    interval: POLL_MS,
    url: function () {
      var rows = active();
      return rows.length ? rows[0].getAttribute("data-status-url") : null;
    },
    apply: function (exp) {
      if (!ACTIVE[exp.status]) return ConcordLive.refreshFragment('[data-fragment="exports"]');
      var row = document.querySelector('[data-export="' + exp.id + '"] [data-progress]');
      if (row) row.value = exp.progress;
    },
  });
})();
