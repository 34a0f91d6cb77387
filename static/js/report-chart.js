// Draws each <canvas data-chart-url> from its django-chartjs JSON view with the vendored Chart.js.
// The numbers are also in the table under the chart, so the page reads without this script.
"use strict";

function drawUsageChart(canvas) {
  fetch(canvas.dataset.chartUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) throw new Error(`chart data: HTTP ${response.status}`);
      return response.json();
    })
    .then((data) => {
      const chart = new Chart(canvas, {
        type: "bar",
        data: { labels: data.labels, datasets: data.datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { stacked: true },
            y: { stacked: true, beginAtZero: true, title: { display: true, text: data.unit } },
          },
        },
      });
      canvas.dataset.drawn = String(chart.data.datasets.length);
    })
    .catch((error) => {
      canvas.dataset.error = error.message;
    });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("canvas[data-chart-url]").forEach(drawUsageChart);
});
