// Alama console: CSRF token on htmx requests, and the charts drawn from the page's JSON.
// Everything here is progressive: the pages work without it.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (event) {
    var token = document.body.dataset.csrf;
    if (token) { event.detail.headers["X-CSRF-Token"] = token; }
  });

  function drawOversight() {
    var holder = document.getElementById("oversight-data");
    var canvas = document.getElementById("chart-bands");
    if (!holder || !canvas || typeof Chart === "undefined") { return; }
    var data = JSON.parse(holder.textContent);
    var colours = { approve: "#116329", review: "#9a6700", decline: "#a40e26" };
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.days,
        datasets: Object.keys(data.bands).map(function (band) {
          return { label: band, data: data.bands[band], backgroundColor: colours[band] };
        })
      },
      options: { animation: false, scales: { x: { stacked: true }, y: { stacked: true } } }
    });
  }

  function draw() {
    drawOversight();
    var holder = document.getElementById("chart-data");
    if (!holder || typeof Chart === "undefined") { return; }
    var data = JSON.parse(holder.textContent);
    Chart.defaults.animation = false;
    var waterfall = document.getElementById("chart-waterfall");
    if (waterfall && data.waterfall) {
      new Chart(waterfall, {
        type: "bar",
        data: {
          labels: data.waterfall.map(function (b) { return b.label; }),
          datasets: [{
            label: "contribution to the log-odds of default",
            data: data.waterfall.map(function (b) { return [b.from, b.to]; }),
            backgroundColor: data.waterfall.map(function (b) {
              return b.to > b.from ? "#a40e26" : "#116329";
            })
          }]
        },
        options: { indexAxis: "y", plugins: { legend: { display: false } },
                   scales: { x: { title: { display: true, text: "log-odds (red raises risk)" } } } }
      });
    }
    [["chart-repayment-attention", data.repayment_attention, "month"],
     ["chart-mm-attention", data.mobile_money_attention, "week"]].forEach(function (spec) {
      var canvas = document.getElementById(spec[0]);
      if (!canvas || !spec[1] || !spec[1].length) { return; }
      var n = spec[1].length;
      new Chart(canvas, {
        type: "bar",
        data: {
          labels: spec[1].map(function (_v, i) { return (i - n + 1) + " " + spec[2] + "s"; }),
          datasets: [{ label: "attention per " + spec[2] + " (oldest first)", data: spec[1],
                       backgroundColor: "#0b5cad" }]
        },
        options: { plugins: { legend: { display: true } } }
      });
    });
    drawHistory(data);
  }
  function drawHistory(data) {
    var repayments = document.getElementById("chart-repayment-history");
    var r = data.repayment_history;
    if (repayments && r) {
      new Chart(repayments, {
        data: {
          labels: r.labels,
          datasets: [
            { type: "bar", label: "due (KES)", data: r.due, backgroundColor: "#8c959f" },
            { type: "bar", label: "paid (KES)", data: r.paid, backgroundColor: "#116329" },
            { type: "line", label: "days late", data: r.days_late, yAxisID: "late",
              borderColor: "#a40e26", backgroundColor: "#a40e26", spanGaps: false }
          ]
        },
        options: { scales: { y: { title: { display: true, text: "KES" } },
                             late: { position: "right", beginAtZero: true,
                                     title: { display: true, text: "days late" },
                                     grid: { drawOnChartArea: false } } } }
      });
    }
    var wallet = document.getElementById("chart-mm-history");
    var m = data.mobile_money_history;
    if (wallet && m) {
      new Chart(wallet, {
        data: {
          labels: m.labels,
          datasets: [
            { type: "bar", label: "inflow (KES)", data: m.inflow, backgroundColor: "#116329" },
            { type: "bar", label: "outflow (KES)", data: m.outflow, backgroundColor: "#8c959f" },
            { type: "bar", label: "betting (KES)", data: m.betting, backgroundColor: "#a40e26" },
            { type: "line", label: "balance (KES)", data: m.balance, borderColor: "#0b5cad",
              backgroundColor: "#0b5cad", spanGaps: false }
          ]
        },
        options: { scales: { y: { title: { display: true, text: "KES" } } } }
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else { draw(); }
})();
