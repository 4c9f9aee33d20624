/* The labeling page: keyboard-first labeling over the labeling API.
 *
 * The page arrives with its first item; this script keeps the *next* item prefetched (leased,
 * image decoded) so a submit swaps it in at once, while the label is sent in the background
 * with a client_id (a retry after a network error cannot label twice).
 *
 * Keys: a class key submits (multi-label projects: toggles; Enter submits); U toggles "unsure"
 * and moves to the note (Enter or Esc goes back to the keys); S skips; Z undoes the last submit.
 */
(() => {
  "use strict";

  const configElement = document.getElementById("lab-config");
  if (!configElement) return;
  const cfg = JSON.parse(configElement.textContent);
  const $ = (id) => document.getElementById(id);
  const els = {
    work: $("lab-work"),
    empty: $("lab-empty"),
    stage: $("lab-stage"),
    image: $("lab-image"),
    text: $("lab-text"),
    meta: $("lab-meta"),
    unsure: $("lab-unsure"),
    note: $("lab-note"),
    skip: $("lab-skip"),
    undo: $("lab-undo"),
    again: $("lab-again"),
    status: $("lab-status"),
    done: $("lab-done"),
    left: $("lab-left"),
    guidelineChanged: $("lab-guideline-changed"),
  };
  const classButtons = Array.from(document.querySelectorAll(".classbtn[data-class]"));
  const buttonForKey = new Map(classButtons.filter((b) => b.dataset.key).map((b) => [b.dataset.key, b]));
  const multi = cfg.taskType === "multi_label";
  const numbers = new Intl.NumberFormat("en-US");

  const state = {
    current: cfg.item, // the item on screen (leased to us), or null when the queue is empty
    next: null, // a promise of the prefetched next item (or null when nothing is left)
    shownAt: performance.now(),
    unsure: false,
    picked: new Set(),
    busy: false,
    last: null, // {at, saved: promise of the annotation} of the latest submit, for undo
    done: cfg.progress.done_today,
    left: cfg.progress.left,
  };

  // ---- Talking to the server: one request at a time, in the order they were made ----
  // (a submit is on the server before the next item is asked for, an undo after its submit;
  // and a small server, or SQLite, never sees this page's requests overlap).

  let lastRequest = Promise.resolve();
  function inTurn(task) {
    const run = lastRequest.then(task, task);
    lastRequest = run.catch(() => {});
    return run;
  }

  function loadImage(src) {
    return inTurn(
      () =>
        new Promise((resolve) => {
          const image = new Image();
          image.onload = () => image.decode().then(resolve, resolve);
          image.onerror = resolve; // shown anyway; the browser will say if it cannot load
          image.src = src;
        }),
    );
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function call(method, url, body) {
    const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await inTurn(() =>
      fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    );
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch {
        data = null;
      }
    }
    return { status: response.status, ok: response.ok, data };
  }

  /* Network errors and 5xx are retried with the same body: the client_id makes that safe. */
  async function callWithRetry(method, url, body, attempts = 4) {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await call(method, url, body);
        if (result.status < 500 || attempt >= attempts) return result;
      } catch (error) {
        if (attempt >= attempts) return { status: 0, ok: false, data: { detail: "no connection to the server" } };
      }
      await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
    }
  }

  function describe(data) {
    if (!data) return "the server gave no reason";
    if (typeof data.detail === "string") return data.detail;
    return Object.entries(data)
      .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
      .join("; ");
  }

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // ---- What is on screen ----

  function say(message, kind = "info") {
    els.status.textContent = message;
    els.status.dataset.kind = kind;
  }

  function showCounts() {
    els.done.textContent = numbers.format(Math.max(0, state.done));
    els.left.textContent = numbers.format(Math.max(0, state.left));
  }

  function setUnsure(on) {
    state.unsure = on;
    els.unsure.setAttribute("aria-pressed", on ? "true" : "false");
  }

  function clearPicks() {
    state.picked.clear();
    for (const button of classButtons) {
      button.classList.remove("is-picked");
      if (multi) button.setAttribute("aria-pressed", "false");
    }
  }

  function show(item) {
    state.current = item;
    clearPicks();
    setUnsure(false);
    els.note.value = "";
    if (!item) {
      els.work.hidden = true;
      els.empty.hidden = false;
      els.empty.focus();
      return;
    }
    if (item.kind === "image" && els.image) {
      const tiny = item.width && item.height && Math.max(item.width, item.height) <= cfg.tinyImagePixels;
      els.image.classList.toggle("is-tiny", Boolean(tiny));
      if (item.width && item.height) {
        els.image.width = item.width;
        els.image.height = item.height;
      }
      els.image.src = item.image || "";
    } else if (els.text) {
      els.text.textContent = item.text;
      els.stage.scrollTop = 0;
    }
    els.meta.replaceChildren(
      ...Object.entries(item.metadata || {}).map(([key, value]) => {
        const pair = document.createElement("div");
        const dt = document.createElement("dt");
        const dd = document.createElement("dd");
        dt.textContent = key;
        dd.textContent = String(value);
        pair.append(dt, dd);
        return pair;
      }),
    );
    if (cfg.guidelineVersion !== null && item.guideline_version !== cfg.guidelineVersion) {
      els.guidelineChanged.hidden = false;
    }
    els.work.hidden = false;
    els.empty.hidden = true;
    if (!els.work.contains(document.activeElement) || document.activeElement === els.note) els.stage.focus();
    state.shownAt = performance.now();
  }

  /* Lease the next item (not those in `holding`, which we hold already) and decode its image,
   * so showing it later costs nothing. A promise of the item, or of null when nothing is left. */
  function fetchNext(holding) {
    const query = holding.length ? `?exclude=${holding.join(",")}` : "";
    const promise = callWithRetry("GET", cfg.urls.next + query).then(async (result) => {
      if (result.status === 204) return null;
      if (!result.ok) throw new Error(describe(result.data));
      const item = result.data;
      if (item.kind === "image" && item.image) await loadImage(item.image);
      return item;
    });
    // data-next tells whether the next item is ready to show at once ("ready"), or "none" is left.
    els.work.dataset.next = "loading";
    promise.then(
      (item) => {
        if (state.next === promise) els.work.dataset.next = item ? "ready" : "none";
      },
      () => {},
    );
    return promise;
  }

  /* Show the prefetched item; once `settled` (the submit or skip of the one before) is done,
   * prefetch the item after it. Waiting keeps the server from handing back the item just left. */
  async function advance(settled) {
    const upcoming = state.next || fetchNext([]);
    const following = Promise.all([settled, upcoming.catch(() => null)]).then(([, item]) =>
      fetchNext(item ? [item.id] : []),
    );
    following.then(
      (item) => {
        if (state.next === following) els.work.dataset.next = item ? "ready" : "none";
      },
      () => {},
    );
    state.next = following;
    els.work.dataset.next = "loading";
    let item = null;
    state.busy = true; // keys wait until the next item is on screen
    try {
      item = await upcoming;
    } catch (error) {
      say(`Could not get the next item: ${error.message}`, "error");
    } finally {
      state.busy = false;
    }
    show(item);
  }

  // ---- Actions ----

  function submit(labels) {
    const item = state.current;
    if (!item || !labels.length) return;
    const body = {
      item: item.id,
      labels,
      unsure: state.unsure,
      note: els.note.value,
      duration_ms: Math.round(performance.now() - state.shownAt),
      client_id: uuid4(),
    };
    const saved = callWithRetry("POST", cfg.urls.annotations, body).then((result) => {
      if (result.ok) {
        say(`Saved: ${labels.join(", ")}${body.unsure ? " (unsure)" : ""}. Z undoes.`);
        return result.data;
      }
      state.done -= 1;
      state.left += 1;
      showCounts();
      say(`Your label for the previous item was not saved: ${describe(result.data)}`, "error");
      return null;
    });
    state.last = { at: Date.now(), saved };
    state.done += 1;
    state.left -= 1;
    showCounts();
    advance(saved);
  }

  function pick(button) {
    if (!state.current || state.busy) return;
    const name = button.dataset.class;
    if (multi) {
      if (state.picked.has(name)) state.picked.delete(name);
      else state.picked.add(name);
      button.setAttribute("aria-pressed", state.picked.has(name) ? "true" : "false");
      return;
    }
    button.classList.add("is-picked");
    submit([name]);
  }

  function toggleUnsure() {
    if (!state.current) return;
    setUnsure(!state.unsure);
    if (state.unsure) els.note.focus();
    else els.stage.focus();
  }

  async function skip() {
    const item = state.current;
    if (!item || state.busy) return;
    state.busy = true;
    const result = await callWithRetry("POST", cfg.urls.skips, { item: item.id });
    state.busy = false;
    if (!result.ok) {
      say(`Could not skip: ${describe(result.data)}`, "error");
      return;
    }
    state.left -= 1;
    showCounts();
    say("Skipped.");
    if (state.current === item) advance(null);
  }

  async function undo() {
    const last = state.last;
    if (!last || Date.now() - last.at > cfg.undoSeconds * 1000) {
      say(`Nothing to undo: Z takes back a label for ${cfg.undoSeconds} seconds.`);
      return;
    }
    state.last = null;
    state.busy = true;
    let annotation = null;
    let result = null;
    try {
      annotation = await last.saved;
      if (annotation) result = await callWithRetry("POST", cfg.urls.undo.replace("/0/", `/${annotation.id}/`));
    } finally {
      state.busy = false;
    }
    if (!annotation) return;
    if (!result.ok) {
      say(`Could not undo: ${describe(result.data)}`, "error");
      return;
    }
    // The undone item comes back on screen; the one that was showing becomes the next again.
    const showing = state.current;
    state.done -= 1;
    state.left += 1;
    showCounts();
    show(result.data);
    if (showing) {
      state.next = Promise.resolve(showing);
      els.work.dataset.next = "ready";
    } else {
      state.next = fetchNext([result.data.id]);
    }
    say(`Undone: label item again (it was ${annotation.labels.join(", ")}).`);
  }

  async function checkAgain() {
    say("Looking for work…");
    const result = await callWithRetry("GET", cfg.urls.next);
    if (result.status === 204) {
      say("Still nothing left for you.");
      return;
    }
    if (!result.ok) {
      say(`Could not get an item: ${describe(result.data)}`, "error");
      return;
    }
    say("");
    show(result.data);
    state.next = fetchNext([result.data.id]);
  }

  // ---- Keyboard and buttons ----

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target === els.note) {
      if (event.key === "Escape" || (event.key === "Enter" && !event.shiftKey)) {
        event.preventDefault();
        els.stage.focus();
      }
      return;
    }
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    if (state.busy) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "Enter") {
      if (!state.current) return;
      if (target.closest && target.closest("button, a, summary")) return; // the focused control acts
      if (multi && state.picked.size) {
        event.preventDefault();
        submit(Array.from(state.picked));
      }
      return;
    }
    if (event.repeat) return;
    if (key === "z") {
      event.preventDefault();
      undo(); // also from the empty screen, after the last item
      return;
    }
    if (!state.current) return;
    const actions = { u: toggleUnsure, s: skip };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
      return;
    }
    const button = buttonForKey.get(key);
    if (button) {
      event.preventDefault();
      pick(button);
    }
  });

  for (const button of classButtons) button.addEventListener("click", () => pick(button));
  els.unsure.addEventListener("click", toggleUnsure);
  els.skip.addEventListener("click", skip);
  els.undo.addEventListener("click", undo);
  els.again.addEventListener("click", checkAgain);

  if (state.current) {
    els.stage.focus();
    // Prefetch once the page (and the first image) has loaded.
    const start = () => {
      if (!state.next) state.next = fetchNext(state.current ? [state.current.id] : []);
    };
    if (document.readyState === "complete") start();
    else window.addEventListener("load", start, { once: true });
  } else {
    els.empty.focus();
  }
})();
