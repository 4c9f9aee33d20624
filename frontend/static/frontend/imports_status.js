// The project page's import batches: a batch still running (any status but done or failed) is
// polled through the import API (JSON, through livestatus.js); when it ends, the server's fresh
// drawing of the imports section (counts, summary, error report) replaces the old one.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var FINAL = { done: true, failed: true };
  if (!window.ConcordLive) return;

  function running() {
    return Array.prototype.filter.call(document.querySelectorAll("[data-batch][data-status]"), function (row) {
      return !FINAL[row.getAttribute("data-status")];
    });
  }

  ConcordLive.poll({
    interval: POLL_MS,
    url: function () {
      var rows = running();
      return rows.length ? rows[0].getAttribute("data-status-url") : null;
    },
    apply: function (batch) {
      if (FINAL[batch.status]) return ConcordLive.refreshFragment('[data-fragment="imports"]');
    },
  });
})();
