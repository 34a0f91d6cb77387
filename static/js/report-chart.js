// Draws each <canvas data-chart-url> from its django-chartjs JSON view with the vendored Chart.js.
// The numbers are also in the table under the chart, so the page reads without this script.
// The JSON's data is in its `display` unit (h, GB, …): the axis and tooltips name it.
"use strict";

function unitFormat(display) {
  const places = display ? display.places : 2;
  const format = new Intl.NumberFormat("en-US", {
    minimumFractionDigits: places,
    maximumFractionDigits: places,
  });
  return (value) => format.format(value);
}

function drawUsageChart(canvas) {
  fetch(canvas.dataset.chartUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) throw new Error(`chart data: HTTP ${response.status}`);
      return response.json();
    })
    .then((data) => {
      const display = data.display || { symbol: data.unit, name: data.unit, places: 2 };
      const format = unitFormat(display);
      const ticks = new Intl.NumberFormat("en-US", { maximumFractionDigits: display.places });
      const axisTitle =
        display.name === display.symbol ? display.name : `${display.name} (${display.symbol})`;
      const chart = new Chart(canvas, {
        type: "bar",
        data: { labels: data.labels, datasets: data.datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          plugins: {
            tooltip: {
              callbacks: {
                label: (item) => `${item.dataset.label}: ${format(item.parsed.y)} ${display.symbol}`,
              },
            },
          },
          scales: {
            x: { stacked: true },
            y: {
              stacked: true,
              beginAtZero: true,
              title: { display: true, text: axisTitle },
              ticks: { callback: (value) => ticks.format(value) },
            },
          },
        },
      });
      canvas.dataset.drawn = String(chart.data.datasets.length);
      canvas.dataset.unit = display.symbol;
    })
    .catch((error) => {
      canvas.dataset.error = error.message;
    });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("canvas[data-chart-url]").forEach(drawUsageChart);
});
