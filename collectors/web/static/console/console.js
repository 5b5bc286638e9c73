// The live window page's chart: total and IT power (kW, left axis) and PUE (right axis),
// drawn with uPlot from GET /windows/{id}/series.json and redrawn every 5 s while the window
// is open. A file of its own: the page's Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var box = document.getElementById("chart");
  if (!box || typeof uPlot === "undefined") { return; }
  var url = box.getAttribute("data-series-url");
  var plot = null;

  function width() { return Math.max(280, box.clientWidth || 600); }

  function make(data) {
    var opts = {
      width: width(), height: 280,
      scales: { x: { time: true }, kw: {}, pue: {} },
      series: [
        {},
        { label: "total kW", scale: "kw", stroke: "#1f5fa8", width: 2, spanGaps: false },
        { label: "IT kW", scale: "kw", stroke: "#2a9d5c", width: 2, spanGaps: false },
        { label: "PUE", scale: "pue", stroke: "#c0392b", width: 1.5, dash: [6, 4] }
      ],
      axes: [{}, { scale: "kw", label: "kW" }, { scale: "pue", side: 1, label: "PUE", grid: { show: false } }]
    };
    return new uPlot(opts, data, box);
  }

  function load() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (j) {
        var data = [j.t, j.total_kw, j.it_kw, j.pue];
        if (plot === null) { plot = make(data); } else { plot.setData(data); }
        box.setAttribute("data-updated", String(j.updated));
        box.setAttribute("data-points", String(j.t.length));
      })
      .catch(function () { box.setAttribute("data-error", "true"); });
  }

  load();
  if (box.getAttribute("data-open") === "true") { window.setInterval(load, 5000); }
  window.addEventListener("resize", function () {
    if (plot !== null) { plot.setSize({ width: width(), height: 280 }); }
  });
}());
