// Confirmation for consequential class and guideline operations: a form (or its submit button)
// with data-confirm="…" opens the page's <dialog id="confirm-dialog"> stating the consequence;
// only Confirm submits it. `{name}` in the text is replaced by the form's `name` input. With
// data-confirm-preview="URL" the form's `text` is posted there first and the answer (HTML the
// server rendered and escaped) is shown in the dialog: the publish preview and diff.
(function () {
  "use strict";
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog) return;
  const text = document.getElementById("confirm-text");
  const detail = document.getElementById("confirm-detail");
  let pending = null; // {form, submitter}

  function csrfToken(form) {
    const field = form.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  async function loadPreview(url, form) {
    const body = new FormData();
    const source = form.querySelector("[name=text]");
    body.append("text", source ? source.value : "");
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", body: body, headers: { "X-CSRFToken": csrfToken(form) },
    });
    const answer = await response.text();
    if (!response.ok) throw new Error(answer || "Could not preview (" + response.status + ")");
    return answer;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    const submitter = event.submitter || null;
    const source = submitter && submitter.hasAttribute("data-confirm") ? submitter
      : (form.hasAttribute("data-confirm") ? form : null);
    if (!source) return;
    if (form.dataset.confirmed === "1") { delete form.dataset.confirmed; return; }
    const name = form.querySelector("input[name=name]");
    const message = source.getAttribute("data-confirm");
    // Nothing typed where the text needs it: let the server say what is missing.
    if (message.includes("{name}") && !(name && name.value.trim())) return;
    event.preventDefault();
    text.textContent = message.replace("{name}", name ? name.value.trim() : "");
    detail.replaceChildren();
    const previewUrl = source.getAttribute("data-confirm-preview");
    if (previewUrl) {
      try {
        detail.innerHTML = await loadPreview(previewUrl, form); // server-rendered, escaped and sanitised
      } catch (err) {
        detail.textContent = err.message;
      }
    }
    pending = { form: form, submitter: submitter };
    dialog.returnValue = "";
    dialog.showModal();
  });

  dialog.addEventListener("close", () => {
    const chosen = pending;
    pending = null;
    if (!chosen || dialog.returnValue !== "ok") return;
    chosen.form.dataset.confirmed = "1";
    chosen.form.requestSubmit(chosen.submitter);
  });
})();
