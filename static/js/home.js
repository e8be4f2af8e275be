// The home page's twelve-month chart. Chart.js is vendored under static/vendor/; the numbers
// come from the page (json_script). Without JavaScript the table under it stands alone, so the
// chart's box stays hidden until it is drawn.
(function () {
  "use strict";
  const canvas = document.getElementById("home-chart");
  const source = document.getElementById("home-chart-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const style = getComputedStyle(document.body);
  const color = function (name, fallback) {
    return style.getPropertyValue(name).trim() || fallback;
  };
  const font = style.getPropertyValue("--tblr-font-sans-serif").trim();
  if (font) Chart.defaults.font.family = font;
  Chart.defaults.color = color("--tblr-secondary", "#6c7a91");
  // A series with nothing in it (Mokugift's, before any sync) is left out, its axis too.
  const some = function (values) {
    return Array.isArray(values) && values.some(function (v) { return v !== null && v !== 0; });
  };
  const datasets = [];
  if (some(data.mokugift_rewards)) {
    datasets.push({ label: "Rewards (Mokugift)", data: data.mokugift_rewards, backgroundColor: color("--tblr-primary", "#2f7d4a"), yAxisID: "rewards" });
  }
  datasets.push({ label: "Sent from here", data: data.sent, backgroundColor: "#9ccfa9", yAxisID: "rewards" });
  if (some(data.failed)) {
    datasets.push({ label: "Failed", data: data.failed, backgroundColor: color("--tblr-danger", "#d63939"), yAxisID: "rewards" });
  }
  const trees = some(data.mokugift_trees);
  if (trees) {
    datasets.push({ label: "Trees (Mokugift)", data: data.mokugift_trees, type: "line", borderColor: "#b35c00", backgroundColor: "#b35c00", yAxisID: "trees", spanGaps: false });
  }
  const scales = {
    x: { grid: { display: false } },
    rewards: { type: "linear", position: "left", beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "Rewards" } },
  };
  if (trees) {
    scales.trees = { type: "linear", position: "right", beginAtZero: true, ticks: { precision: 0 }, grid: { drawOnChartArea: false }, title: { display: true, text: "Trees" } };
  }
  document.getElementById("home-chart-box").hidden = false;
  const chart = new Chart(canvas, {
    type: "bar",
    data: { labels: data.labels, datasets: datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      scales: scales,
    },
  });
  canvas.dataset.drawn = "1";
  window.homeChart = chart;
})();
