// The report's chart: rewards (bars, Mokugift's and ours) and trees (a line) per month.
// Chart.js is vendored under static/vendor/; the numbers come from the page (json_script).
(function () {
  "use strict";
  const canvas = document.getElementById("report-chart");
  const source = document.getElementById("report-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        { label: "Rewards (Mokugift)", data: data.mokugift_rewards, backgroundColor: "#2f7d4a", yAxisID: "rewards" },
        { label: "Rewards (sent from here)", data: data.ours_rewards, backgroundColor: "#9ccfa9", yAxisID: "rewards" },
        { label: "Trees (Mokugift)", data: data.mokugift_trees, type: "line", borderColor: "#b35c00", backgroundColor: "#b35c00", yAxisID: "trees", spanGaps: false },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: {
        rewards: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "Rewards" } },
        trees: { type: "linear", position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "Trees" } },
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
