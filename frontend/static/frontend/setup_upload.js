// The upload page: sends the form with XMLHttpRequest so a progress bar can follow the upload
// itself (fetch() cannot report upload progress). The server answers as it does without
// JavaScript: a redirect to the report after an import (followed here by going to the URL the
// request ended on), or the page again with each error next to its field (its form replaces
// ours).
(function () {
  "use strict";

  function bind(form) {
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return; // the plain form post still works
      event.preventDefault();
      var box = form.querySelector("[data-upload-progress]");
      var bar = box.querySelector("progress");
      var percent = box.querySelector("[data-upload-percent]");
      var button = form.querySelector("button[type=submit]");
      box.hidden = false;
      button.disabled = true;

      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action") || window.location.pathname);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var done = Math.round((100 * e.loaded) / e.total);
        bar.value = done;
        percent.textContent = done + " %";
      });
      xhr.upload.addEventListener("load", function () {
        bar.removeAttribute("value"); // uploaded: the server is importing, no figure to show
        percent.textContent = "Importing…";
      });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL) {
          window.location.assign(xhr.responseURL);
          return;
        }
        var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var fresh = doc.querySelector('[data-fragment="upload-form"]');
        var old = document.querySelector('[data-fragment="upload-form"]');
        if (fresh && old) {
          old.replaceWith(fresh);
          bind(fresh.querySelector("form[data-upload]"));
          var first = fresh.querySelector(".field__error");
          if (first) first.scrollIntoView({ block: "center" });
        } else {
          fail("The server answered " + xhr.status + ".");
        }
      });
      xhr.addEventListener("error", function () {
        fail("The upload failed: the connection was lost.");
      });
      xhr.send(new FormData(form));

      function fail(message) {
        button.disabled = false;
        percent.textContent = message;
      }
    });
  }

  var form = document.querySelector("form[data-upload]");
  if (form) bind(form);
})();
