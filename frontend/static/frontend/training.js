// Live progress bars of training models: polls the project's small status endpoint (JSON) and
// updates each bar in place; stops when every model shown has finished. Plain JavaScript.
(function () {
  "use strict";
  var POLL_MS = 1000;
  var box = document.querySelector("[data-status-url]");
  if (!box) return;
  var url = box.getAttribute("data-status-url");
  var reload = box.hasAttribute("data-reload-when-done");

  function pending() {
    return Array.prototype.slice.call(document.querySelectorAll('[data-progress][data-status="training"]'));
  }

  function percent(x) {
    return Math.round(x * 100) + "%";
  }

  function show(bar, m) {
    bar.querySelector("progress").value = m.progress;
    var text = m.stage_label + (m.epochs ? " · epoch " + (m.epoch || 0) + "/" + m.epochs : "") + " · " + percent(m.progress);
    bar.querySelector("[data-progress-text]").textContent = text;
    if (m.status === "training") return;
    bar.setAttribute("data-status", m.status);
    if (reload) {
      window.location.reload();
      return;
    }
    var row = bar.closest("tr");
    if (!row) return;
    var status = row.querySelector('[data-cell="status"]');
    status.textContent = m.status === "ready" ? "Ready" : "Failed";
    status.className = "status status--" + m.status;
    if (m.status === "ready") {
      bar.querySelector("progress").value = 1;
      bar.querySelector("[data-progress-text]").textContent = "Done · 100%";
      if (m.accuracy !== null) row.querySelector('[data-cell="accuracy"]').textContent = (m.accuracy * 100).toFixed(1) + "%";
    } else {
      var error = document.createElement("div");
      error.className = "small t-error";
      error.setAttribute("data-cell", "error");
      error.textContent = m.error; // text, never HTML
      bar.replaceWith(error);
    }
  }

  function poll() {
    var bars = pending();
    if (!bars.length) return;
    var ids = bars.map(function (b) { return b.getAttribute("data-progress"); });
    fetch(url + "?ids=" + encodeURIComponent(ids.join(",")), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        data.models.forEach(function (m) {
          var bar = document.querySelector('[data-progress="' + m.id + '"]');
          if (bar) show(bar, m);
        });
      })
      .catch(function () { /* a missed poll is retried */ })
      .finally(function () { if (pending().length) window.setTimeout(poll, POLL_MS); });
  }

  if (pending().length) window.setTimeout(poll, POLL_MS);
})();
