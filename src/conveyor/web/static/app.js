// Conveyor back-office: progressive enhancement only. Every form and link works
// without this file; with it, pages refresh their live parts, ask before destructive
// actions, submit some forms in place, check JSON and rules as they are typed, offer
// records in reference pickers and copy keys.
(function () {
  "use strict";

  var PARTIAL = { "X-Partial": "1" };

  function swap(target, html) {
    target.innerHTML = html;
  }

  function fetchPartial(url, options) {
    options = options || {};
    options.headers = Object.assign({}, PARTIAL, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      if (response.status === 401) {
        window.location.reload(); // the session ended: the page guard sends us to login
        throw new Error("signed out");
      }
      return response.text();
    });
  }

  // Submit a form in place and show the server's fragment where it belongs.
  function submitPartial(form, submitter, place) {
    var data = new URLSearchParams(new FormData(form, submitter || undefined));
    var url = submitter && submitter.hasAttribute("formaction") ? submitter.formAction : form.action;
    var button = submitter || form.querySelector("[type=submit]");
    if (button) button.setAttribute("aria-busy", "true");
    return fetchPartial(url, {
      method: "POST",
      body: data,
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    })
      .then(function (html) { swap(place, html); })
      .catch(function () {})
      .finally(function () { if (button) button.removeAttribute("aria-busy"); });
  }

  // Ask before destructive actions: <form data-confirm> or <button data-confirm>.
  // <form data-partial="#target"> (or a submit button with data-partial and
  // formaction) submits in place.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      return;
    }
    var target = (submitter && submitter.getAttribute("data-partial")) || form.getAttribute("data-partial");
    if (!target) return;
    event.preventDefault();
    submitPartial(form, submitter, document.querySelector(target));
  });

  // <button data-live data-partial="#x" formaction="…">: its form is checked as it is
  // typed into, a moment after the typing stops.
  var liveTimers = new WeakMap();
  function liveCheck(form) {
    var button = form.querySelector("button[data-live]");
    if (!button) return;
    window.clearTimeout(liveTimers.get(form));
    liveTimers.set(form, window.setTimeout(function () {
      submitPartial(form, button, document.querySelector(button.getAttribute("data-partial")));
    }, 500));
  }

  // Reference pickers: <input data-picker="/admin/tables/T/pick" list="…"> offers the
  // records whose name or id matches what is typed.
  var pickTimers = new WeakMap();
  function pick(input) {
    window.clearTimeout(pickTimers.get(input));
    pickTimers.set(input, window.setTimeout(function () {
      var list = document.getElementById(input.getAttribute("list"));
      var url = input.getAttribute("data-picker") + "?q=" + encodeURIComponent(input.value);
      fetchPartial(url).then(function (html) { swap(list, html); }).catch(function () {});
    }, 250));
  }

  // Live regions: <el data-refresh="/admin/…" data-interval="5000"> reloads its content.
  function startRefresh(element) {
    var interval = parseInt(element.getAttribute("data-interval"), 10) || 5000;
    window.setInterval(function () {
      if (document.hidden || element.contains(document.activeElement)) return;
      fetchPartial(element.getAttribute("data-refresh"))
        .then(function (html) { swap(element, html); })
        .catch(function () {});
    }, interval);
  }

  // Copy buttons: <button data-copy="#input">.
  function copy(button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    var text = source.value || source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(source, done); });
    } else {
      fallbackCopy(source, done);
    }
  }

  function fallbackCopy(source, done) {
    source.focus();
    source.select();
    if (document.execCommand("copy")) done();
  }

  // JSON editors: <textarea data-json> shows parse errors as you type.
  function checkJson(textarea) {
    var error = textarea.parentElement.querySelector("[data-json-error]");
    if (!error) return;
    try {
      var value = JSON.parse(textarea.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error("the message must be a JSON object { … }");
      }
      error.hidden = true;
      textarea.removeAttribute("aria-invalid");
    } catch (exc) {
      error.textContent = "Not valid JSON yet: " + exc.message;
      error.hidden = false;
      textarea.setAttribute("aria-invalid", "true");
    }
  }

  // The queue form shows only the connection fields its type uses.
  function showFieldsFor(select) {
    var type = select.value;
    document.querySelectorAll("[data-types]").forEach(function (field) {
      field.hidden = field.getAttribute("data-types").split(" ").indexOf(type) < 0;
    });
  }

  // <a data-export="#progress" href="…csv">: the CSV is read as it streams, records
  // counted against the X-Total-Count header, then saved; without fetch streams the
  // link downloads it directly.
  function exportCsv(link, event) {
    var box = document.querySelector(link.getAttribute("data-export"));
    if (!box || !window.ReadableStream || !window.TextDecoder) return;
    event.preventDefault();
    var bar = box.querySelector("progress");
    var text = box.querySelector("[data-export-text]");
    box.hidden = false;
    text.textContent = "Exporting…";
    fetch(link.href, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error("the export failed (" + response.status + ")");
      var total = parseInt(response.headers.get("X-Total-Count") || "0", 10);
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var parts = [], records = -1, quoted = false;
      function read() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return parts;
          var piece = decoder.decode(chunk.value, { stream: true });
          parts.push(piece);
          for (var i = 0; i < piece.length; i++) {
            var c = piece.charAt(i);
            if (c === '"') quoted = !quoted;
            else if (c === "\n" && !quoted) records++;
          }
          bar.max = Math.max(total, 1);
          bar.value = Math.min(records, total);
          text.textContent = records.toLocaleString() + " of " + total.toLocaleString() + " records";
          return read();
        });
      }
      return read();
    }).then(function (parts) {
      var url = URL.createObjectURL(new Blob(parts, { type: "text/csv" }));
      var save = document.createElement("a");
      save.href = url;
      save.download = link.getAttribute("download") || "export.csv";
      document.body.appendChild(save);
      save.click();
      save.remove();
      window.setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      text.textContent = "Exported " + text.textContent.replace(/ of .*/, "") + " records.";
      box.setAttribute("data-done", "");
    }).catch(function (error) { text.textContent = error.message; });
  }

  document.addEventListener("click", function (event) {
    var exporting = event.target.closest("a[data-export]");
    if (exporting) { exportCsv(exporting, event); return; }
    var button = event.target.closest("button");
    if (!button) return;
    if (button.hasAttribute("data-copy")) copy(button);
    var format = button.getAttribute("data-format-json");
    if (format) {
      var textarea = document.querySelector(format);
      try { textarea.value = JSON.stringify(JSON.parse(textarea.value), null, 2); } catch (exc) {}
      checkJson(textarea);
    }
  });

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target.hasAttribute("data-json")) checkJson(target);
    if (target.hasAttribute("data-picker")) pick(target);
    if (target.form) liveCheck(target.form);
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.hasAttribute("data-type-select")) showFieldsFor(target);
    var form = target.form;
    if (form && form.hasAttribute("data-autosubmit") && target.tagName === "SELECT") form.requestSubmit();
  });

  document.addEventListener("focusin", function (event) {
    var target = event.target;
    if (target.hasAttribute("data-select-on-focus")) target.select();
    if (target.hasAttribute("data-picker") && !target.hasAttribute("data-picked")) {
      target.setAttribute("data-picked", "");
      pick(target);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(startRefresh);
    document.querySelectorAll("[data-type-select]").forEach(showFieldsFor);
  });
})();
