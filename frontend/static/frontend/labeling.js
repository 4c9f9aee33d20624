/* The labeling page: keyboard-first labeling over the labeling API.
 *
 * The page arrives with its first item; this script keeps the *next* item prefetched (leased,
 * image decoded) so a submit swaps it in at once, while the label is sent in the background
 * with a client_id (a retry after a network error or a 5xx cannot label twice: the server
 * answers a client_id it knows with the first annotation).
 *
 * No key is lost. Every class key becomes exactly one submitted label, or a visible refusal:
 * - A key pressed while an item is on screen labels that item.
 * - While no item is on screen (the next one is still loading, or a skip or an undo is on its
 *   way), the stage says so ("pending") and the keys pressed meanwhile (class keys, Enter, S
 *   and Z) wait, in order, listed on the stage. When the next item is on screen (painted), the
 *   first waiting key acts on it exactly as if pressed then; the next waiting key acts on the
 *   item shown after that, and so on. Typing ahead of the screen thus labels the items in the
 *   order they are shown, one key per item, each of them painted before its key applies.
 *   Z while keys wait takes the latest waiting key back (nothing was sent for it).
 *   U is refused while pending: it opens the note of the item on screen.
 * - When nothing is left to label, the waiting keys are dropped and the page says which.
 * - "Today" and the "saved" tally move when the server confirms a label; a label that finally
 *   fails is listed under the stage with the reason ("Send again" where a retry can help).
 *
 * Keys: a class key submits (multi-label projects: toggles; Enter submits); U toggles "unsure"
 * and moves to the note (Enter or Esc goes back to the keys); S skips; Z undoes the last submit;
 * Esc marks a newly published guideline as read (the banner's "I have read it").
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
    pending: $("lab-pending"),
    pendingTitle: $("lab-pending-title"),
    waiting: $("lab-waiting"),
    waitingKeys: $("lab-waiting-keys"),
    pendingRetry: $("lab-pending-retry"),
    meta: $("lab-meta"),
    unsure: $("lab-unsure"),
    note: $("lab-note"),
    skip: $("lab-skip"),
    undo: $("lab-undo"),
    again: $("lab-again"),
    status: $("lab-status"),
    saved: $("lab-saved"),
    sending: $("lab-sending"),
    sendingPart: $("lab-sending-part"),
    failures: $("lab-failures"),
    done: $("lab-done"),
    left: $("lab-left"),
    guidelineBanner: $("lab-guideline-banner"),
    guidelineSeen: $("lab-guideline-seen"),
    guidelineChanged: $("lab-guideline-changed"),
  };
  const classButtons = Array.from(document.querySelectorAll(".classbtn[data-class]"));
  const buttonForKey = new Map(classButtons.filter((b) => b.dataset.key).map((b) => [b.dataset.key, b]));
  const multi = cfg.taskType === "multi_label";
  const numbers = new Intl.NumberFormat("en-US");

  // The page sends a text item once, in the HTML: the config carries the item without its text.
  if (cfg.item && els.text) cfg.item.text = els.text.textContent;

  const state = {
    current: cfg.item, // the item on screen (leased to us); null while pending or when none is left
    pending: false, // no item on screen yet: the next one is loading, or a skip or undo is on its way
    waiting: [], // keys pressed while pending, in order: {display, perform}
    replaying: false, // a waiting key is about to act on the item just shown
    turn: 0, // bumped by each move to another item, so a stale arrival is not shown
    next: null, // a promise of the prefetched next item (or null when nothing is left)
    shownAt: performance.now(),
    unsure: false,
    picked: new Set(),
    last: null, // {at, saved: promise of the annotation} of the latest submit, for undo
    done: cfg.progress.done_today,
    left: cfg.progress.left,
    saved: 0, // labels the server confirmed since the page loaded
    sending: 0, // labels sent and not yet confirmed or failed
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

  /* Run `fn` once what is on screen now has been painted (at once in a hidden tab, which paints nothing). */
  function afterPaint(fn) {
    if (document.visibilityState === "hidden") setTimeout(fn, 0);
    else requestAnimationFrame(() => setTimeout(fn, 0));
  }

  // ---- What is on screen ----

  /* The status line. A refusal or error stays readable a few seconds: routine news (a label
   * saved in the background) arriving just after it does not replace it. */
  let errorShownAt = -Infinity;
  function say(message, kind = "info") {
    if (kind === "error") errorShownAt = performance.now();
    if (kind === "routine" && performance.now() - errorShownAt < 4000) return;
    els.status.textContent = message;
    els.status.dataset.kind = kind === "error" ? "error" : "info";
  }

  function showCounts() {
    els.done.textContent = numbers.format(Math.max(0, state.done));
    els.left.textContent = numbers.format(Math.max(0, state.left));
    els.saved.textContent = numbers.format(state.saved);
    els.sending.textContent = numbers.format(state.sending);
    els.sendingPart.hidden = state.sending === 0;
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

  function showWaiting() {
    els.waiting.hidden = state.waiting.length === 0;
    els.waitingKeys.replaceChildren(
      ...state.waiting.map((entry) => {
        const key = document.createElement("kbd");
        key.className = "keycap";
        key.textContent = entry.display;
        return key;
      }),
    );
    els.stage.dataset.waiting = String(state.waiting.length);
  }

  /* No item on screen until the next one arrives: the stage says so, and keys wait (see above). */
  function setPending(message) {
    state.turn += 1;
    state.pending = true;
    state.current = null;
    clearPicks();
    els.pendingTitle.textContent = message;
    els.pendingRetry.hidden = true;
    els.pending.hidden = false;
    els.stage.classList.add("is-pending");
    delete els.stage.dataset.item;
    els.stage.scrollTop = 0;
    els.work.hidden = false;
    els.empty.hidden = true;
    showWaiting();
    return state.turn;
  }

  function show(item) {
    state.pending = false;
    state.current = item;
    els.stage.classList.remove("is-pending");
    els.pending.hidden = true;
    clearPicks();
    setUnsure(false);
    els.note.value = "";
    if (!item) {
      delete els.stage.dataset.item;
      els.work.hidden = true;
      els.empty.hidden = false;
      els.empty.focus();
      dropWaiting();
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
    els.stage.dataset.item = String(item.id);
    els.work.hidden = false;
    els.empty.hidden = true;
    if (!els.work.contains(document.activeElement) || document.activeElement === els.note) els.stage.focus();
    state.shownAt = performance.now();
    replayWaiting();
  }

  /* The first waiting key acts on the item just shown, once it is painted; then the next one. */
  function replayWaiting() {
    if (!state.waiting.length || state.replaying) return;
    state.replaying = true;
    afterPaint(() => {
      state.replaying = false;
      if (state.pending || !state.current || !state.waiting.length) return;
      const entry = state.waiting.shift();
      showWaiting();
      entry.perform();
      replayWaiting(); // multi-label toggles keep the item on screen: the next key acts on it too
    });
  }

  /* Nothing left to label: keys typed ahead have no item to act on. Say so; never drop them silently. */
  function dropWaiting() {
    if (!state.waiting.length) return;
    const keys = state.waiting.map((entry) => entry.display).join(" ");
    const count = state.waiting.length;
    state.waiting = [];
    showWaiting();
    say(`Nothing left to label: ${count === 1 ? "the key" : `${count} keys`} you typed ahead (${keys}) labelled nothing.`, "error");
  }

  /* A key or click: acts now when an item is on screen and no earlier key waits, else waits its turn. */
  function handle(display, perform) {
    if (state.pending || state.waiting.length) {
      state.waiting.push({ display, perform });
      showWaiting();
      return;
    }
    perform();
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

  /* Show the prefetched item (pending until it is there); once `settled` (the submit or skip of
   * the one before) is done, prefetch the item after it. Waiting keeps the server from handing
   * back the item just left. */
  function advance(settled) {
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
    const turn = setPending("Loading the next item…");
    upcoming.then(
      (item) => {
        if (state.turn === turn) show(item);
      },
      (error) => {
        if (state.turn !== turn) return;
        els.pendingTitle.textContent = `Could not get the next item: ${error.message}`;
        els.pendingRetry.hidden = false;
        say(`Could not get the next item: ${error.message}. Your waiting keys are kept.`, "error");
      },
    );
  }

  // ---- Actions ----

  /* Send a label; count it once the server confirms it; list it if it finally fails. */
  function send(body, labels) {
    state.sending += 1;
    showCounts();
    return callWithRetry("POST", cfg.urls.annotations, body).then((result) => {
      state.sending -= 1;
      if (result.ok) {
        state.saved += 1;
        state.done += 1;
        state.left -= 1;
        showCounts();
        say(`Saved: ${labels.join(", ")}${body.unsure ? " (unsure)" : ""}. Z undoes.`, "routine");
        return result.data;
      }
      showCounts();
      showFailure(body, labels, result);
      return null;
    });
  }

  function showFailure(body, labels, result) {
    const reason = describe(result.data);
    const entry = document.createElement("li");
    entry.dataset.item = String(body.item);
    entry.append(`Not saved: item ${body.item} as ${labels.join(", ")}: ${reason}.`);
    // A lost connection or a server error may pass; the same client_id keeps a resend from counting twice.
    if (result.status === 0 || result.status >= 500) {
      const again = document.createElement("button");
      again.type = "button";
      again.className = "btn btn--quiet btn--small";
      again.textContent = "Send again";
      again.addEventListener("click", () => {
        entry.remove();
        els.failures.hidden = !els.failures.children.length;
        send(body, labels);
      });
      entry.append(" ", again);
    }
    els.failures.append(entry);
    els.failures.hidden = false;
    say(`Your label for item ${body.item} was not saved: ${reason}`, "error");
  }

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
    const saved = send(body, labels);
    state.last = { at: Date.now(), saved };
    advance(saved);
  }

  function pick(button) {
    if (!state.current) return;
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

  function submitPicked() {
    if (state.current && state.picked.size) submit(Array.from(state.picked));
  }

  function toggleUnsure() {
    if (!state.current) return;
    setUnsure(!state.unsure);
    if (state.unsure) els.note.focus();
    else els.stage.focus();
  }

  async function skip() {
    const item = state.current;
    if (!item) return;
    const turn = setPending("Skipping…");
    const result = await callWithRetry("POST", cfg.urls.skips, { item: item.id });
    if (state.turn !== turn) return;
    if (!result.ok) {
      say(`Could not skip: ${describe(result.data)}`, "error");
      show(item);
      return;
    }
    state.left -= 1;
    showCounts();
    say("Skipped.");
    advance(null);
  }

  async function undo() {
    const last = state.last;
    if (!last || Date.now() - last.at > cfg.undoSeconds * 1000) {
      say(`Nothing to undo: Z takes back a label for ${cfg.undoSeconds} seconds.`);
      return;
    }
    state.last = null;
    const showing = state.current;
    const turn = setPending("Undoing…");
    const annotation = await last.saved;
    const result = annotation
      ? await callWithRetry("POST", cfg.urls.undo.replace("/0/", `/${annotation.id}/`))
      : null;
    if (state.turn !== turn) return;
    if (!result || !result.ok) {
      say(result ? `Could not undo: ${describe(result.data)}` : "Nothing to undo: that label was not saved.", "error");
      show(showing);
      return;
    }
    // The undone item comes back on screen; the one that was showing becomes the next again.
    state.saved -= 1;
    state.done -= 1;
    state.left += 1;
    showCounts();
    if (showing) {
      state.next = Promise.resolve(showing);
      els.work.dataset.next = "ready";
    } else {
      state.next = fetchNext([result.data.id]);
    }
    say(`Undone: label item again (it was ${annotation.labels.join(", ")}).`);
    show(result.data);
  }

  /* Z while keys wait takes the latest one back; otherwise it waits its turn like any key. */
  function undoKey() {
    if (state.waiting.length) {
      const entry = state.waiting.pop();
      showWaiting();
      say(`Took back the waiting key ${entry.display}: it was not sent.`);
      return;
    }
    handle("Z", undo);
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
    state.turn += 1;
    show(result.data);
    state.next = fetchNext([result.data.id]);
  }

  /* "I have read it": sent in the background, so labels on their way are not cut off by a page load. */
  async function markGuidelineSeen() {
    const form = els.guidelineSeen;
    if (!form || els.guidelineBanner.hidden) return;
    const response = await inTurn(() =>
      fetch(form.action, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
        body: new FormData(form),
      }),
    ).catch(() => null);
    if (!response || !response.ok) {
      say("Could not mark the guideline as read; try again.", "error");
      return;
    }
    els.guidelineBanner.hidden = true;
    document.querySelectorAll("[data-guideline-key]").forEach((element) => {
      element.hidden = true;
    });
    say(`Guideline v${form.elements.version.value} marked as read.`);
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
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "Escape") {
      if (els.guidelineBanner && !els.guidelineBanner.hidden) {
        event.preventDefault();
        markGuidelineSeen();
      }
      return;
    }
    if (key === "Enter") {
      if (!multi) return;
      if (target.closest && target.closest("button, a, summary")) return; // the focused control acts
      if (state.current && !state.picked.size && !state.waiting.length) return;
      event.preventDefault();
      handle("Enter", submitPicked);
      return;
    }
    if (event.repeat) return;
    if (key === "z") {
      event.preventDefault();
      undoKey(); // also from the empty screen, after the last item
      return;
    }
    const button = buttonForKey.get(key);
    if (key !== "u" && key !== "s" && !button) return;
    event.preventDefault();
    if (!state.current && !state.pending) {
      say(`Nothing on screen to label: the key ${key} was not used.`, "error");
      return;
    }
    if (key === "u") {
      if (state.pending || state.waiting.length) say("U marks the item on screen as unsure: wait for it to show.", "error");
      else toggleUnsure();
      return;
    }
    if (key === "s") handle("S", skip);
    else handle(key, () => pick(button));
  });

  for (const button of classButtons) {
    button.addEventListener("click", () => {
      if (!state.current && !state.pending) return;
      handle(button.dataset.key || button.dataset.class, () => pick(button));
    });
  }
  els.unsure.addEventListener("click", () => {
    if (state.current && !state.waiting.length) toggleUnsure();
  });
  els.skip.addEventListener("click", () => handle("S", skip));
  els.undo.addEventListener("click", undoKey);
  els.again.addEventListener("click", checkAgain);
  els.pendingRetry.addEventListener("click", () => advance(null));
  if (els.guidelineSeen) {
    els.guidelineSeen.addEventListener("submit", (event) => {
      event.preventDefault();
      markGuidelineSeen();
    });
  }
  // Leaving while labels are on their way, or keys wait, would lose them: the browser asks first.
  window.addEventListener("beforeunload", (event) => {
    if (state.sending || state.waiting.length) event.preventDefault();
  });

  showCounts();
  if (state.current) {
    els.stage.dataset.item = String(state.current.id);
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
