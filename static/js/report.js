// The report's chart: rewards per month (bars, Mokugift's and ours, on the left axis) and trees
// per month (lines, on the right axis: one axis per unit). A month with no data is null in the
// page's numbers (json_script) and is drawn as nothing: no bar, a gap in the line. Colours and
// font are the UI kit's (Tabler's CSS variables), read from the page. Chart.js is vendored
// under static/vendor/. Without JavaScript the card stays hidden and the table stands in.
(function () {
  "use strict";
  const canvas = document.getElementById("report-chart");
  const source = document.getElementById("report-data");
  const card = document.getElementById("chart-card");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);

  const style = getComputedStyle(document.body);
  const probe = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
  // A kit colour (any CSS colour, oklch included) as rgba(), which Chart.js can lighten.
  function kit(name, fallback, alpha) {
    const value = style.getPropertyValue(name).trim() || fallback;
    probe.clearRect(0, 0, 1, 1);
    probe.fillStyle = fallback;
    probe.fillStyle = value;
    probe.fillRect(0, 0, 1, 1);
    const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
    return "rgba(" + r + ", " + g + ", " + b + ", " + (alpha === undefined ? 1 : alpha) + ")";
  }
  const primary = kit("--tblr-primary", "#2f7d4a");
  const trees = kit("--tblr-orange", "#f76707");
  const muted = kit("--tblr-secondary", "#6b7280");
  const line = kit("--tblr-border-color", "#e6e7e9");
  Chart.defaults.font.family = style.getPropertyValue("--tblr-font-sans-serif").trim() || style.fontFamily;
  Chart.defaults.font.size = 13;
  Chart.defaults.color = muted;
  Chart.defaults.borderColor = line;

  if (card) card.hidden = false;
  const chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        { label: "Rewards (Mokugift)", data: data.mokugift_rewards, backgroundColor: primary, borderRadius: 3, yAxisID: "rewards", order: 2 },
        { label: "Rewards (sent from here)", data: data.ours_rewards, backgroundColor: kit("--tblr-primary", "#2f7d4a", 0.35), borderRadius: 3, yAxisID: "rewards", order: 2 },
        { label: "Trees (Mokugift)", data: data.mokugift_trees, type: "line", borderColor: trees, backgroundColor: trees, pointRadius: 3, tension: 0.25, spanGaps: false, yAxisID: "trees", order: 1 },
        { label: "Trees (sent from here)", data: data.ours_trees, type: "line", borderColor: trees, backgroundColor: trees, borderDash: [5, 4], pointRadius: 2, tension: 0.25, spanGaps: false, yAxisID: "trees", order: 1 },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12, usePointStyle: true } },
        tooltip: {
          // A month with no data says so instead of a 0 it does not have.
          filter: function (item) { return item.raw !== null; },
        },
      },
      scales: {
        x: { grid: { display: false } },
        rewards: { type: "linear", position: "left", beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "Rewards" } },
        trees: { type: "linear", position: "right", beginAtZero: true, ticks: { precision: 0 }, grid: { drawOnChartArea: false }, title: { display: true, text: "Trees" } },
      },
    },
  });
  canvas.dataset.drawn = "1";
  window.reportChart = chart;
  // The year and campaign pickers show the new report at once.
  const form = document.getElementById("report-form");
  if (form) {
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.submit(); });
    });
  }
})();
