// The Refresh button and "last synced ...": queue a sync without leaving the page, then poll
// the tiny status endpoint until the run has finished.
(function () {
  "use strict";
  const box = document.getElementById("sync-status");
  if (!box) return;
  const summary = document.getElementById("sync-summary");
  const form = document.getElementById("refresh-form");
  const url = box.dataset.statusUrl;
  let timer = null;
  let waitingSince = null;
  const followed = {};  // runs this page saw running or queued, by campaign and start

  function ago(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    return Math.round(seconds / 3600) + " h ago";
  }

  function render(data) {
    summary.textContent = "";
    if (!data.runs.length) summary.textContent = waitingSince ? "Refresh queued…" : "Never synced yet.";
    data.runs.forEach(function (run, i) {
      const span = document.createElement("span");
      span.className = "sync-run";
      span.dataset.outcome = run.outcome;
      let text = run.campaign + ": ";
      if (run.running) text += "syncing " + run.period + "… " + run.rewards_read + " read";
      else if (run.outcome === "failed") text += "last sync failed " + ago(run.started_at);
      else text += "last synced " + ago(run.finished_at) + " (" + run.created + " new, " +
        run.changed + " changed, " + run.flagged_missing + " no longer listed)";
      span.textContent = text;
      summary.appendChild(span);
      if (i < data.runs.length - 1) summary.appendChild(document.createTextNode(" · "));
    });
  }

  // True when the filter form holds something typed or picked but not yet applied: a reload
  // would throw it away.
  function filtersEdited() {
    const filters = document.getElementById("filters");
    if (!filters) return false;
    return Array.prototype.some.call(filters.elements, function (el) {
      if (el.type === "checkbox" || el.type === "radio") return el.checked !== el.defaultChecked;
      if (el.tagName === "SELECT") {
        // With no option marked selected in the page, the browser shows the first one.
        const options = Array.prototype.slice.call(el.options);
        let initial = options.filter(function (o) { return o.defaultSelected; });
        if (!initial.length && !el.multiple) initial = options.slice(0, 1);
        return options.some(function (o) { return o.selected !== initial.includes(o); });
      }
      if (el.tagName === "INPUT" || el.tagName === "TEXTAREA") return el.value !== el.defaultValue;
      return false;
    });
  }

  function offerReload() {
    const note = document.createElement("span");
    note.id = "sync-new";
    note.append(" · New rewards were synced: ");
    const link = document.createElement("a");
    link.id = "sync-reload";
    link.href = window.location.href;
    link.textContent = "show them";
    note.append(link, " (or press Filter).");
    summary.appendChild(note);
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        let fresh = false;
        data.runs.forEach(function (run) {
          const isFresh = waitingSince && Date.parse(run.started_at) >= waitingSince - 5000;
          if (isFresh || run.running) followed[run.campaign + " " + run.started_at] = true;
          fresh = fresh || isFresh;
        });
        if (fresh) waitingSince = null;
        render(data);
        const stillWaiting = waitingSince && Date.now() - waitingSince < 120000;
        if (data.running || stillWaiting) { timer = setTimeout(poll, 1500); return; }
        timer = null;
        // The table below is rendered by the server: when a run that ended under our eyes has
        // changed the mirror, reload to show its rewards (once: the new page follows only the
        // runs it sees running itself). Not over a half-typed filter: then offer it instead.
        const changed = data.runs.some(function (run) {
          return followed[run.campaign + " " + run.started_at] &&
            run.created + run.changed + run.flagged_missing > 0;
        });
        if (!changed) return;
        setTimeout(function () {
          if (filtersEdited()) offerReload();
          else window.location.reload();
        }, 800);
      })
      .catch(function () { timer = setTimeout(poll, 5000); });
  }

  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const button = document.getElementById("refresh");
      button.disabled = true;
      fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      }).then(function (r) {
        button.disabled = false;
        if (!r.ok) { form.submit(); return; }
        waitingSince = Date.now();
        summary.textContent = "Refresh queued…";
        if (!timer) timer = setTimeout(poll, 800);
      }).catch(function () { button.disabled = false; form.submit(); });
    });
  }
  if (box.dataset.running) timer = setTimeout(poll, 1500);
})();
