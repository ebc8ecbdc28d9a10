// hyperscope dashboard: draws every chart with uPlot from its data-chart JSON, and listens to the live stream
// (one server-sent event per new state update), asking htmx to refresh the page's fragments. No inline
// script, no eval: the page's CSP is default-src 'self'.
(function () {
  "use strict";
  function fmt(v) {
    if (v == null) return "–";
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "K";
    if (a > 0 && a < 0.01) return v.toExponential(2);
    return v.toFixed(2);
  }

  function markLine(mark) {
    return { hooks: { draw: [function (u) {
      var x = u.valToPos(mark, "x", true), ctx = u.ctx;
      ctx.save(); ctx.strokeStyle = "#0f172a"; ctx.setLineDash([4, 4]); ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke(); ctx.restore();
    }] } };
  }

  function draw(figure) {
    if (figure.querySelector(".uplot")) return;
    var spec = JSON.parse(figure.getAttribute("data-chart"));
    var bars = spec.kind === "bars";
    var series = [{ label: spec.xlabel || (bars ? "price" : "time") }];
    var data = [spec.x];
    spec.series.forEach(function (s) {
      var one = { label: s.label, stroke: s.color, width: 1.5, value: function (u, v) { return fmt(v); } };
      if (bars) { one.fill = s.color + "99"; one.paths = uPlot.paths.bars({ size: [0.9, 40] }); }
      series.push(one);
      data.push(s.values);
    });
    var opts = {
      width: Math.max(300, figure.clientWidth - 16), height: 240, series: series,
      scales: { x: { time: !bars } },
      axes: [{}, { values: function (u, vals) { return vals.map(fmt); }, size: 80 }],
      plugins: spec.mark ? [markLine(spec.mark)] : [],
    };
    new uPlot(opts, data, figure);
  }

  function drawAll(root) {
    (root || document).querySelectorAll(".chart[data-chart]").forEach(draw);
  }

  function slider() {
    document.querySelectorAll("input.slider[data-heights]").forEach(function (input) {
      if (input.dataset.bound) return;
      input.dataset.bound = "1";
      var heights = input.getAttribute("data-heights").split(",");
      var out = input.form.querySelector("output.asof");
      input.addEventListener("input", function () { if (out) out.textContent = "height " + heights[input.value]; });
      input.form.addEventListener("submit", function () {
        var hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = "height"; hidden.value = heights[input.value];
        input.removeAttribute("name"); input.form.appendChild(hidden);
      });
    });
  }

  function live() {
    if (!window.EventSource) return;
    var source = new EventSource("/dashboard/events");
    source.addEventListener("update", function (e) {
      var label = document.getElementById("freshness");
      var seen = label ? label.getAttribute("data-height") : "";
      if (seen !== e.lastEventId && window.htmx) htmx.trigger(document.body, "hs-update");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document); slider(); live();
    // new content (a fragment swapped in after a state update) gets its charts drawn
    if (window.htmx) htmx.onLoad(function () { drawAll(document); slider(); });
  });
})();
