// Tags on the SME item page: `t` opens the tag box (completion over the project's tags; Enter
// adds the highlighted one, or creates the typed name; Tab completes; Esc closes), and the chips'
// × removes a tag. The item is whatever the panel shows now (adjudication.js swaps the panel on
// next/previous), so this file reads it from the panel each time. Keys used by adjudication.js
// (a b n j k z, arrows, class shortcuts) are not touched; `t` is reserved for this box there.
// Tag names reach the page as text only (textContent, or the server's escaped panel).
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("adj-config").textContent);
  const wrap = document.getElementById("adj-panel-wrap");
  const box = document.getElementById("tag-box");
  const input = document.getElementById("tag-input");
  const list = document.getElementById("tag-options");
  const statusLine = document.getElementById("adj-status");
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_OPTIONS = 8;
  let tags = config.tags.slice(); // [{id, name, colour}], kept up to date as tags are created
  let options = []; // [{tag} or {create: name}]
  let active = -1;
  let busy = false;

  function say(text) { statusLine.textContent = text; }
  function currentItem() { return Number(wrap.querySelector(".adj-panel").dataset.item); }
  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function itemTagsUrl(item) { return config.urls.itemTags.replace("/items/0/", "/items/" + item + "/"); }
  function itemTagUrl(item, tag) {
    return config.urls.itemTag.replace("/items/0/", "/items/" + item + "/").replace("/tags/0/", "/tags/" + tag + "/");
  }

  async function call(method, url, body) {
    const response = await fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (_e) { /* empty body */ }
    if (!response.ok) {
      const first = Object.values(data)[0];
      throw new Error(Array.isArray(first) ? first[0] : (data.detail || "Request failed (" + response.status + ")"));
    }
    return data;
  }

  function dot(colour) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "tag-chip__dot");
    svg.setAttribute("width", "10");
    svg.setAttribute("height", "10");
    svg.setAttribute("aria-hidden", "true");
    const circle = document.createElementNS(SVG, "circle");
    circle.setAttribute("cx", "5");
    circle.setAttribute("cy", "5");
    circle.setAttribute("r", "5");
    circle.setAttribute("fill", colour);
    svg.appendChild(circle);
    return svg;
  }

  // After a change, the panel again from the server: its chips and its history (tag lines
  // included) as the page renders them; only if the SME has not moved on meanwhile.
  async function refreshPanel(item) {
    const query = config.query ? "?" + config.query : "";
    const response = await fetch(config.panelUrl.replace("/0/", "/" + item + "/") + query, { credentials: "same-origin" });
    if (response.ok && currentItem() === item) wrap.innerHTML = await response.text();
  }

  function matches(query) {
    const q = query.trim().toLowerCase();
    const starts = [], contains = [];
    tags.forEach((tag) => {
      const name = tag.name.toLowerCase();
      if (!q || name.startsWith(q)) starts.push(tag);
      else if (name.includes(q)) contains.push(tag);
    });
    const found = starts.concat(contains).slice(0, MAX_OPTIONS).map((tag) => ({ tag: tag }));
    const exact = tags.some((tag) => tag.name.toLowerCase() === q.replace(/\s+/g, " "));
    if (q && !exact) found.push({ create: query.trim().replace(/\s+/g, " ") });
    return found;
  }

  function renderOptions() {
    options = matches(input.value);
    active = options.length ? 0 : -1;
    list.replaceChildren();
    options.forEach((option, i) => {
      const li = document.createElement("li");
      li.id = "tag-option-" + i;
      li.setAttribute("role", "option");
      if (option.tag) {
        li.appendChild(dot(option.tag.colour));
        li.appendChild(document.createTextNode(option.tag.name));
      } else {
        li.textContent = "Create \u201c" + option.create + "\u201d";
      }
      li.addEventListener("mousedown", (event) => { event.preventDefault(); active = i; choose(); });
      list.appendChild(li);
    });
    list.hidden = !options.length;
    input.setAttribute("aria-expanded", options.length ? "true" : "false");
    highlight();
  }

  function highlight() {
    Array.from(list.children).forEach((li, i) => li.setAttribute("aria-selected", i === active ? "true" : "false"));
    if (active >= 0) input.setAttribute("aria-activedescendant", "tag-option-" + active);
    else input.removeAttribute("aria-activedescendant");
  }

  function open() {
    box.hidden = false;
    input.value = "";
    renderOptions();
    input.focus();
  }

  function close() {
    box.hidden = true;
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.blur();
  }

  async function choose() {
    if (busy) return;
    const option = active >= 0 ? options[active] : (input.value.trim() ? { create: input.value.trim() } : null);
    if (!option) { close(); return; }
    busy = true;
    const item = currentItem();
    try {
      const body = option.tag ? { tag: option.tag.id } : { name: option.create };
      const data = await call("POST", itemTagsUrl(item), body);
      if (data.created) tags = tags.concat([{ id: data.tag.id, name: data.tag.name, colour: data.tag.colour }]);
      close();
      await refreshPanel(item);
      const what = data.changed ? "Tagged" : "Already tagged";
      say(what + " " + data.tag.name + (data.created ? " (a new tag)." : "."));
    } catch (err) {
      say("Could not tag: " + err.message);
    } finally {
      busy = false;
    }
  }

  async function remove(tagId) {
    const item = currentItem();
    try {
      const data = await call("DELETE", itemTagUrl(item, tagId));
      await refreshPanel(item);
      say("Removed the tag " + data.tag.name + ".");
    } catch (err) {
      say("Could not remove the tag: " + err.message);
    }
  }

  box.addEventListener("submit", (event) => { event.preventDefault(); choose(); });
  input.addEventListener("input", renderOptions);
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!options.length) return;
      active = (active + (event.key === "ArrowDown" ? 1 : -1) + options.length) % options.length;
      highlight();
    } else if (event.key === "Enter") {
      event.preventDefault();
      choose();
    } else if (event.key === "Tab" && active >= 0 && options[active].tag) {
      event.preventDefault();
      input.value = options[active].tag.name;
      renderOptions();
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  input.addEventListener("blur", () => { setTimeout(() => { if (document.activeElement !== input) close(); }, 150); });

  document.querySelector("[data-open-tag-box]").addEventListener("click", open);
  wrap.addEventListener("click", (event) => {
    const button = event.target.closest("[data-remove-tag]");
    if (button) remove(Number(button.dataset.removeTag));
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.key.toLowerCase() !== "t") return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" || tag === "input" || tag === "select" || event.target.isContentEditable) return;
    event.preventDefault();
    open();
  });
})();
