// The model pages. Live progress bars of training models and live status of TFLite exports, both
// polled from the project's small status endpoint (JSON) through livestatus.js; and the dialog that
// confirms a promote or a rollback, saying which model serves now and which will. Plain JavaScript;
// every value goes in as text, never as HTML.
(function () {
  "use strict";
  var POLL_MS = 1000;
  var EXPORT_POLL_MS = 2000;

  // ---- Confirm promote / roll back -------------------------------------------------------------
  var dialog = document.querySelector("[data-confirm-dialog]");
  if (dialog) {
    var confirmForm = dialog.querySelector("[data-confirm-form]");
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.hasAttribute("data-confirm-title")) return;
      event.preventDefault();
      ["title", "now", "next", "ok"].forEach(function (name) {
        dialog.querySelector('[data-confirm-field="' + name + '"]').textContent = form.getAttribute("data-confirm-" + name);
      });
      // A model that does not beat its baselines beyond noise is promoted only with a reason.
      var concerns = form.getAttribute("data-confirm-concerns") || "";
      var concernsBox = dialog.querySelector('[data-confirm-field="concerns"]');
      concernsBox.textContent = concerns;
      concernsBox.hidden = !concerns;
      dialog.querySelector('textarea[name="note"]').required = !!concerns;
      dialog.querySelector("[data-confirm-note-label]").textContent = concerns
        ? "Reason for promoting it anyway (required, at most 500 characters)"
        : "Note for the record (optional, at most 500 characters)";
      confirmForm.action = form.action;
      var next = form.querySelector('input[name="next"]');
      dialog.querySelector("[data-confirm-next]").value = next ? next.value : "";
      dialog.showModal();
    });
  }

  var box = document.querySelector("[data-status-url]");
  if (!box || !window.ConcordLive) return;
  var url = box.getAttribute("data-status-url");
  var reload = box.hasAttribute("data-reload-when-done");

  // ---- Training progress -----------------------------------------------------------------------
  function training() {
    return Array.prototype.slice.call(document.querySelectorAll('[data-progress][data-status="training"]'));
  }

  function percent(x) {
    return Math.round(x * 100) + "%";
  }

  // The live loss of the newest epoch (or point of the validation curve), when the worker sent one.
  function losses(m) {
    if (m.loss === null || m.loss === undefined) return "";
    var text = " · loss " + m.loss.toFixed(3);
    if (m.val_loss !== null && m.val_loss !== undefined) text += " / val " + m.val_loss.toFixed(3);
    return text;
  }

  function show(bar, m) {
    bar.querySelector("progress").value = m.progress;
    var text = m.stage_label + (m.epochs ? " · epoch " + (m.epoch || 0) + "/" + m.epochs : "") + losses(m) + " · " + percent(m.progress);
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

  ConcordLive.poll({
    interval: POLL_MS,
    url: function () {
      var bars = training();
      if (!bars.length) return null;
      return url + "?ids=" + encodeURIComponent(bars.map(function (b) { return b.getAttribute("data-progress"); }).join(","));
    },
    apply: function (data) {
      (data.models || []).forEach(function (m) {
        var bar = document.querySelector('[data-progress="' + m.id + '"]');
        if (bar) show(bar, m);
      });
    },
  });

  // ---- TFLite exports: when one finishes, the server redraws the exports section --------------
  function exporting() {
    return Array.prototype.slice.call(document.querySelectorAll('[data-export][data-status="exporting"]'));
  }

  ConcordLive.poll({
    interval: EXPORT_POLL_MS,
    url: function () {
      var rows = exporting();
      if (!rows.length) return null;
      return url + "?exports=" + encodeURIComponent(rows.map(function (r) { return r.getAttribute("data-export"); }).join(","));
    },
    apply: function (data) {
      var finished = (data.exports || []).some(function (e) { return e.status !== "exporting"; });
      if (finished) return ConcordLive.refreshFragment('[data-fragment="exports"]');
    },
  });
})();
