// The SME item page: one key per action, next/previous through the queue without a page load,
// and `z` (or the Undo button) takes back the last decision for config.undoSeconds.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("adj-config").textContent);
  const wrap = document.getElementById("adj-panel-wrap");
  const statusLine = document.getElementById("adj-status");
  const noteForm = document.getElementById("adj-note");
  const noteText = document.getElementById("adj-note-text");
  const undoButton = document.querySelector("[data-action='undo']");
  let current = config.item;
  let busy = false;
  let last = null; // the latest decision: {event, item, at (index in the queue), what, expires}
  let undoTimer = null;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function say(text) { statusLine.textContent = text; }
  function panel() { return wrap.querySelector(".adj-panel"); }
  function expectedResolution() {
    const value = panel().dataset.resolution;
    return value ? Number(value) : null;
  }
  function urlFor(template, id) { return template.replace("/0/", "/" + id + "/"); }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (_e) { /* empty body */ }
    if (!response.ok) {
      const first = Object.values(data)[0];
      throw new Error(Array.isArray(first) ? first[0] : (data.detail || "Request failed (" + response.status + ")"));
    }
    return data;
  }

  async function show(id, push) {
    const query = config.query ? "?" + config.query : "";
    const response = await fetch(urlFor(config.panelUrl, id) + query, { credentials: "same-origin" });
    if (!response.ok) { say("Could not load item " + id); return; }
    wrap.innerHTML = await response.text();
    current = id;
    if (push) {
      const url = urlFor(config.itemUrl, id) + (config.query ? "?" + config.query : "");
      history.pushState({ id: id }, "", url);
    }
  }

  function step(delta) {
    const queue = config.queue;
    let at = queue.indexOf(current);
    at = at === -1 ? (delta > 0 ? 0 : queue.length - 1) : at + delta;
    if (at < 0 || at >= queue.length) {
      say(delta > 0 ? "End of the queue." : "Start of the queue.");
      if (delta > 0 && queue.indexOf(current) !== -1) { window.location.href = config.queueUrl; }
      return Promise.resolve(false);
    }
    return show(queue[at], true).then(() => true);
  }

  function offerUndo(decision) {
    last = decision;
    undoButton.hidden = false;
    clearTimeout(undoTimer);
    undoTimer = setTimeout(() => { last = null; undoButton.hidden = true; }, config.undoSeconds * 1000);
  }

  async function act(fn, what) {
    if (busy) return;
    busy = true;
    try {
      const id = current;
      const name = panel().dataset.externalId || String(id);
      const data = await fn();
      const at = config.queue.indexOf(id);
      const moved = await step(1);
      config.queue = config.queue.filter((x) => x !== id);
      if (!moved) { // the queue's last item: the queue page offers the undo
        const sep = config.queueUrl.includes("?") ? "&" : "?";
        window.location.href = config.queueUrl + (data && data.event ? sep + "undo=" + data.event : "");
        return;
      }
      if (data && data.event) {
        offerUndo({ event: data.event, item: id, at: at, what: what + " " + name });
        say(what + " " + name + ". Press z to undo.");
      } else {
        say(what + " " + name + ".");
      }
    } catch (err) {
      say(err.message);
    } finally {
      busy = false;
    }
  }

  async function undo() {
    if (busy) return;
    if (!last) { say("Nothing to undo."); return; }
    busy = true;
    const decision = last;
    try {
      await post(urlFor(config.urls.undo, decision.event), {});
      last = null;
      undoButton.hidden = true;
      if (config.queue.indexOf(decision.item) === -1) {
        const at = decision.at === -1 ? 0 : Math.min(decision.at, config.queue.length);
        config.queue.splice(at, 0, decision.item);
      }
      await show(decision.item, true);
      say("Undone: " + decision.what + ". Decide it again.");
    } catch (err) {
      say("Could not undo: " + err.message);
    } finally {
      busy = false;
    }
  }

  function resolve(labelName) {
    act(() => post(config.urls.resolve, { item: current, labels: [labelName], expected_current: expectedResolution() }),
      "Resolved as " + labelName + ":");
  }
  function ambiguous() {
    act(() => post(config.urls.resolve, { item: current, ambiguous: true, expected_current: expectedResolution() }),
      "Marked ambiguous:");
  }
  function sendBack() {
    act(() => post(config.urls.sendBack, { item: current }), "Sent back for fresh labels:");
  }
  function openNote() {
    noteForm.hidden = false;
    noteText.focus();
  }

  noteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const data = await post(config.urls.note, { item: current, text: noteText.value });
      say("Note added to draft v" + data.draft_version + ".");
      noteText.value = "";
      noteForm.hidden = true;
    } catch (err) { say(err.message); }
  });

  document.querySelectorAll("[data-label]").forEach((b) => b.addEventListener("click", () => resolve(b.dataset.label)));
  document.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => {
    ({ ambiguous: ambiguous, "send-back": sendBack, note: openNote, undo: undo, next: () => step(1), prev: () => step(-1) })[b.dataset.action]();
  }));

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" || tag === "input" || tag === "select") {
      if (event.key === "Escape") { noteForm.hidden = true; event.target.blur(); }
      return;
    }
    const key = event.key.toLowerCase();
    if (Object.prototype.hasOwnProperty.call(config.keys, key)) { event.preventDefault(); resolve(config.keys[key]); return; }
    const actions = { a: ambiguous, b: sendBack, n: openNote, z: undo, j: () => step(1), k: () => step(-1), arrowright: () => step(1), arrowleft: () => step(-1) };
    if (actions[key]) { event.preventDefault(); actions[key](); }
  });

  window.addEventListener("popstate", (event) => { if (event.state && event.state.id) show(event.state.id, false); });
})();
