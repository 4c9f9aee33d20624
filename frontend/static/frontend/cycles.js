// The cycle pages: the launch form shows the mix weights only for the mix, and the progress of
// queued and running cycles is polled from the project's small status endpoint (JSON) and shown in
// place: the four steps, the bar, and, once a cycle finishes, its row (status, selected, model,
// accuracy) and the learning curve. Plain JavaScript; every value goes in as text, never as HTML.
(function () {
  "use strict";
  var POLL_MS = 1000;

  var strategy = document.getElementById("c-strategy");
  var weights = document.querySelector("[data-mix-only]");
  if (strategy && weights) {
    var toggle = function () { weights.hidden = strategy.value !== "mix"; };
    strategy.addEventListener("change", toggle);
    toggle();
  }

  var box = document.querySelector("[data-status-url]");
  if (!box) return;
  var url = box.getAttribute("data-status-url");
  var reload = box.hasAttribute("data-reload-when-done");

  function pending() {
    return Array.prototype.slice.call(
      document.querySelectorAll('[data-cycle][data-status="queued"], [data-cycle][data-status="running"]')
    );
  }

  function percent(x, digits) {
    return (x * 100).toFixed(digits || 0) + "%";
  }

  function cell(row, name) {
    return row ? row.querySelector('[data-cell="' + name + '"]') : null;
  }

  function showSteps(bar, states) {
    var steps = bar.querySelectorAll("[data-step]");
    states.forEach(function (state, i) {
      var step = steps[i];
      if (!step) return;
      step.className = "c-step is-" + state;
      if (state === "current") step.setAttribute("aria-current", "step");
      else step.removeAttribute("aria-current");
      step.querySelector("[data-step-state]").textContent = "(" + state + ")";
    });
  }

  function showModel(row, c) {
    var target = cell(row, "model");
    if (!target || !c.model || target.querySelector("a")) return;
    var link = document.createElement("a");
    link.className = "mono";
    link.href = c.model_url;
    link.textContent = c.model;
    target.replaceChildren(link);
  }

  // Swap in the learning curve of a fresh copy of this page (the server draws it).
  function refreshCurve() {
    var chart = document.querySelector('[data-fragment="curve"] [data-chart]');
    if (!chart) return;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector('[data-fragment="curve"] [data-chart]');
        if (fresh) chart.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () { /* the curve stays as it was until the next visit */ });
  }

  function show(bar, c) {
    var row = bar.closest("tr");
    showSteps(bar, c.steps);
    bar.querySelector("progress").value = c.progress;
    bar.querySelector("[data-progress-text]").textContent = c.stage_label + " · " + percent(c.progress);
    var status = cell(row, "status");
    if (status) {
      status.textContent = c.status_label;
      status.className = "status status--" + c.status;
    }
    showModel(row, c);
    if (c.accuracy !== null && cell(row, "accuracy")) cell(row, "accuracy").textContent = percent(c.accuracy, 1);
    if (c.status === "queued" || c.status === "running") return;

    bar.setAttribute("data-status", c.status);
    var notice = document.querySelector("[data-active-notice]");
    if (notice) notice.remove(); // a new cycle may start now
    if (reload) {
      window.location.reload();
      return;
    }
    if (cell(row, "actions")) cell(row, "actions").replaceChildren(); // no cancel for a finished cycle
    if (c.status === "done") {
      bar.querySelector("progress").value = 1;
      bar.querySelector("[data-progress-text]").textContent = "Done · 100%";
      if (cell(row, "selected")) cell(row, "selected").textContent = c.selected === null ? "—" : c.selected.toLocaleString("en");
      refreshCurve();
    } else {
      bar.querySelector(".c-progress__bar").hidden = true;
      if (c.error && row && !cell(row, "error")) {
        var error = document.createElement("div");
        error.className = "small " + (c.status === "failed" ? "c-error" : "c-note");
        error.setAttribute("data-cell", "error");
        error.textContent = c.error;
        bar.after(error);
      }
    }
  }

  function poll() {
    var bars = pending();
    if (!bars.length) return;
    var ids = bars.map(function (b) { return b.getAttribute("data-cycle"); });
    fetch(url + "?ids=" + encodeURIComponent(ids.join(",")), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        data.cycles.forEach(function (c) {
          var bar = document.querySelector('[data-cycle="' + c.id + '"]');
          if (bar) show(bar, c);
        });
      })
      .catch(function () { /* a missed poll is retried */ })
      .finally(function () { if (pending().length) window.setTimeout(poll, POLL_MS); });
  }

  if (pending().length) window.setTimeout(poll, POLL_MS);
})();
