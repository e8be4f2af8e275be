// The batch page: polls the batch's progress every second and shows it, without a reload.
(function () {
  "use strict";

  var root = document.getElementById("batch");
  if (!root) return;
  var url = root.dataset.progressUrl;
  var wasFinished = root.dataset.finished === "1";
  var ACTIVE_MS = 1000;
  var IDLE_MS = 5000;

  function $(id) { return document.getElementById(id); }
  function setText(id, text) { var el = $(id); if (el) el.textContent = text; }
  function show(id, visible) { var el = $(id); if (el) el.hidden = !visible; }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "estimating time left…";
    if (seconds <= 0) return "almost done";
    if (seconds < 60) return "about " + seconds + " s left";
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return "about " + minutes + " min left";
    return "about " + Math.floor(minutes / 60) + " h " + (minutes % 60) + " min left";
  }

  function render(data) {
    var bar = $("progress-bar");
    if (bar) bar.style.width = data.percent + "%";
    var progress = $("progress");
    if (progress) progress.setAttribute("aria-valuenow", data.percent);
    setText("progress-percent", data.percent + " %");
    setText("progress-finished", data.finished);
    setText("batch-state", data.state_label);
    Object.keys(data.counts).forEach(function (state) {
      var el = document.querySelector('[data-count="' + state + '"]');
      if (el) el.textContent = data.counts[state];
    });
    var running = data.state === "sending" && data.percent < 100;
    setText("eta", running ? "· " + duration(data.eta_seconds) : "");
    show("paused-banner", data.state === "paused");
    if (data.state === "paused") setText("paused-reason", data.paused_reason || "Sending is paused.");
    show("cancelled-banner", data.state === "cancelled");
    show("backoff-banner", Boolean(data.backoff_note));
    setText("backoff-note", data.backoff_note || "");
    if (data.single) renderSingle(data.single);
  }

  function renderSingle(row) {
    var badge = $("single-state");
    if (badge) { badge.textContent = row.state_label; badge.className = "badge " + row.state; }
    setText("single-remote-id", row.remote_id || "—");
    var input = $("single-url");
    if (input && row.url) { input.value = row.url; show("single-link", true); }
    show("single-not-recovered", row.link_not_recovered);
    setText("single-error", row.error || "");
    show("single-error", Boolean(row.error));
  }

  function finished(data) {
    return data.state === "cancelled" || data.state === "done" || data.percent === 100;
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        render(data);
        if (finished(data)) {
          // Once, when it ends under our eyes: the results table below is rendered by the
          // server and should now show every row's outcome.
          if (!wasFinished) window.setTimeout(function () { window.location.reload(); }, 800);
          return;
        }
        window.setTimeout(poll, data.state === "paused" ? IDLE_MS : ACTIVE_MS);
      })
      .catch(function () {
        setText("eta", "lost contact with the server, retrying…");
        window.setTimeout(poll, IDLE_MS);
      });
  }

  if (!wasFinished) poll();

  // Copy the reward link; navigator.clipboard needs HTTPS, so fall back to selecting the text.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.querySelector(button.dataset.copy);
      if (!input) return;
      var done = function () { button.textContent = "Copied"; };
      var select = function () {
        input.select();
        document.execCommand("copy");
        done();
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, select);
      } else {
        select();
      }
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
