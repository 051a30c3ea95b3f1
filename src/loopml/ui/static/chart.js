/* loopml charts: a small hand-written SVG time-series and bar chart.
 * Why hand-written: the dashboard must work offline with no CDN, and the charts needed
 * (lines over time with gaps, alert markers, a threshold line, grouped bars) are ~200 lines;
 * no chart package is installed with loopml's Python dependencies. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#0ea5e9", "#84cc16", "#db2777"];
  var SEVERITY = { critical: "#b91c1c", warning: "#d97706", info: "#2563eb" };

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); }
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, anchor) {
    var t = el("text", { x: x, y: y, "text-anchor": anchor || "middle" }, parent);
    t.textContent = s;
    return t;
  }
  function fmt(v) {
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
    return String(+v.toPrecision(3));
  }
  function pad2(n) { return (n < 10 ? "0" : "") + n; }
  function timeLabel(t, span) {
    var d = new Date(t * 1000);
    var day = d.getUTCFullYear() + "-" + pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate());
    if (span > 3 * 86400) return day;
    return pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate()) + " " + pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes());
  }
  /* A legend entry of a series is a toggle button: a reader hides and shows series (eight
   * lines in one small chart are unreadable otherwise); other entries are plain keys. */
  function legend(box, names, svg) {
    if (!box) return;
    box.textContent = "";
    names.forEach(function (n, i) {
      var item = document.createElement(n.toggle && svg ? "button" : "span");
      item.className = "legend-item";
      var k = document.createElement("span");
      k.className = "key" + (n.dash ? " dashed" : "");
      k.style.background = n.color || COLORS[i % COLORS.length];
      item.appendChild(k);
      item.appendChild(document.createTextNode(n.name));
      if (n.toggle && svg) {
        item.type = "button";
        item.setAttribute("aria-pressed", "true");
        item.title = "Hide or show " + n.name;
        item.addEventListener("click", function () {
          var shown = item.getAttribute("aria-pressed") === "true";
          item.setAttribute("aria-pressed", shown ? "false" : "true");
          svg.querySelectorAll('[data-series="' + CSS.escape(n.name) + '"]').forEach(function (e) {
            e.classList.toggle("hidden-series", shown);
          });
        });
      }
      box.appendChild(item);
    });
  }

  /* Champion solid and thick, canary dashed, shadow dotted: roles stay apart in any colour. */
  function roleStyle(name) {
    if (/\bcanary\b/.test(name)) return { width: 1.6, dash: "7 4" };
    if (/\bshadow\b/.test(name)) return { width: 1.6, dash: "2 3" };
    if (/\bchampion\b/.test(name)) return { width: 2.4, dash: null };
    return { width: 1.6, dash: null };
  }

  /* The distance between two consecutive points of a series with no window missing: the
   * server's step (window length x bucket) or else the smallest gap seen. */
  function stepOf(s) {
    if (s.step) return s.step;
    var best = Infinity;
    for (var i = 1; i < s.x.length; i++) { var d = s.x[i] - s.x[i - 1]; if (d > 0 && d < best) best = d; }
    return best;
  }

  /* spec: {series: [{name, x: [...], y: [...]}], markers: [{x, label, severity, href}], threshold} */
  function lineChart(plot, spec, legendBox) {
    var W = 900, H = 230, L = 58, R = 14, T = 12, B = 30;
    plot.textContent = "";
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": spec.title || "" }, plot);
    var xs = [], ys = [];
    (spec.series || []).forEach(function (s) {
      for (var i = 0; i < s.x.length; i++) {
        if (s.y[i] !== null && s.y[i] !== undefined && isFinite(s.y[i])) { xs.push(s.x[i]); ys.push(s.y[i]); }
      }
    });
    if (!ys.length) {
      text(svg, W / 2, H / 2, "No data in this period");
      svg.setAttribute("data-empty", "1");
      legend(legendBox, []);
      return svg;
    }
    (spec.markers || []).forEach(function (m) { xs.push(m.x); });
    if (spec.threshold !== undefined && spec.threshold !== null) ys.push(spec.threshold);
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x1 === x0) { x0 -= 1800; x1 += 1800; }
    if (y1 === y0) { var d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    var padY = (y1 - y0) * 0.06; y0 -= padY; y1 += padY;
    if (ys.every(function (v) { return v >= 0; }) && y0 < 0) y0 = 0;
    function sx(x) { return L + (x - x0) / (x1 - x0) * (W - L - R); }
    function sy(y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); }
    var i, k;
    for (k = 0; k <= 4; k++) {
      var yv = y0 + (y1 - y0) * k / 4, py = sy(yv);
      el("line", { x1: L, x2: W - R, y1: py, y2: py, "class": "grid-line" }, svg);
      text(svg, L - 6, py + 4, fmt(yv), "end");
    }
    for (k = 0; k <= 5; k++) {
      var xv = x0 + (x1 - x0) * k / 5;
      text(svg, sx(xv), H - 10, timeLabel(xv, x1 - x0), k === 0 ? "start" : k === 5 ? "end" : "middle");
    }
    el("line", { x1: L, x2: L, y1: T, y2: H - B, "class": "axis" }, svg);
    el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "axis" }, svg);
    if (spec.threshold !== undefined && spec.threshold !== null) {
      var ty = sy(spec.threshold);
      el("line", { x1: L, x2: W - R, y1: ty, y2: ty, "class": "threshold" }, svg);
      text(svg, W - R - 2, ty - 3, "threshold " + fmt(spec.threshold), "end");
    }
    var names = [];
    spec.series.forEach(function (s, si) {
      var color = COLORS[si % COLORS.length], d = "", open = false, n = 0, last = null;
      var step = stepOf(s), style = roleStyle(s.name);
      for (i = 0; i < s.x.length; i++) {
        var v = s.y[i];
        if (v === null || v === undefined || !isFinite(v)) { open = false; continue; }
        // a window missing (no rows, server down): the line breaks instead of bridging it
        if (open && last !== null && s.x[i] - last > 1.5 * step) open = false;
        d += (open ? "L" : "M") + sx(s.x[i]).toFixed(1) + "," + sy(v).toFixed(1);
        open = true; n++; last = s.x[i];
      }
      names.push({ name: s.name, color: color, toggle: true, dash: style.dash });
      if (!n) return;
      el("path", { d: d, fill: "none", stroke: color, "stroke-width": style.width, "stroke-dasharray": style.dash,
        "class": "series", "data-series": s.name }, svg);
      if (s.x.length <= 80) {
        for (i = 0; i < s.x.length; i++) {
          if (s.y[i] === null || s.y[i] === undefined) continue;
          var c = el("circle", { cx: sx(s.x[i]).toFixed(1), cy: sy(s.y[i]).toFixed(1), r: 2.6, fill: color, "class": "point",
            "data-series": s.name }, svg);
          el("title", {}, c).textContent = s.name + ": " + fmt(s.y[i]) + " at " + timeLabel(s.x[i], 0) + " UTC";
        }
      }
    });
    (spec.markers || []).forEach(function (m) {
      var g = el("g", { "class": "marker" }, svg), holder = g;
      if (m.href) holder = el("a", { href: m.href }, g);
      var px = sx(m.x), color = SEVERITY[m.severity] || "#b91c1c";
      el("line", { x1: px, x2: px, y1: T, y2: H - B, stroke: color }, holder);
      el("path", { d: "M" + (px - 5) + "," + T + "L" + (px + 5) + "," + T + "L" + px + "," + (T + 8) + "Z", fill: color }, holder);
      el("title", {}, holder).textContent = m.label;
    });
    if ((spec.markers || []).length) names.push({ name: "alert", color: "#b91c1c" });
    legend(legendBox, names, svg);
    return svg;
  }

  /* hist: {labels, reference, current} shares per bin */
  function barChart(plot, hist, legendBox) {
    var W = 900, H = 260, L = 50, R = 10, T = 10, B = 70;
    plot.textContent = "";
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img" }, plot);
    var n = hist.labels.length;
    if (!n) { text(svg, W / 2, H / 2, "No histogram"); return svg; }
    var top = Math.max.apply(null, hist.reference.concat(hist.current)) || 1;
    var bw = (W - L - R) / n;
    function sy(v) { return H - B - v / top * (H - T - B); }
    for (var k = 0; k <= 4; k++) {
      var yv = top * k / 4, py = sy(yv);
      el("line", { x1: L, x2: W - R, y1: py, y2: py, "class": "grid-line" }, svg);
      text(svg, L - 6, py + 4, (100 * yv).toFixed(0) + "%", "end");
    }
    for (var i = 0; i < n; i++) {
      var x = L + i * bw;
      [["reference", "#9ca3af"], ["current", "#2563eb"]].forEach(function (p, j) {
        var v = hist[p[0]][i];
        var r = el("rect", { x: (x + bw * (0.1 + 0.4 * j)).toFixed(1), y: sy(v).toFixed(1), width: (bw * 0.38).toFixed(1),
          height: Math.max(0, H - B - sy(v)).toFixed(1), fill: p[1], "class": "bar bar-" + p[0] }, svg);
        el("title", {}, r).textContent = p[0] + " " + hist.labels[i] + ": " + (100 * v).toFixed(1) + "%";
      });
      if (n <= 30 || i % Math.ceil(n / 30) === 0) {
        var t = text(svg, x + bw / 2, H - B + 12, hist.labels[i].length > 18 ? hist.labels[i].slice(0, 17) + "…" : hist.labels[i], "end");
        t.setAttribute("transform", "rotate(-35 " + (x + bw / 2) + " " + (H - B + 12) + ")");
      }
    }
    el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "axis" }, svg);
    legend(legendBox, [{ name: "reference (training)", color: "#9ca3af" }, { name: "current window", color: "#2563eb" }]);
    return svg;
  }

  function data(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function init() {
    var charts = data("charts-data");
    if (charts) {
      charts.forEach(function (spec) {
        var fig = document.querySelector('figure[data-chart="' + spec.id + '"]');
        if (fig) lineChart(fig.querySelector(".plot"), spec, fig.querySelector(".legend"));
      });
    }
    var hists = data("hist-data"), fig = document.getElementById("hist");
    if (hists && fig) {
      var show = function (name) {
        if (!hists[name]) return;
        document.getElementById("hist-name").textContent = name;
        barChart(fig.querySelector(".plot"), hists[name], fig.querySelector(".legend"));
        document.querySelectorAll("tr[data-hist]").forEach(function (tr) {
          tr.classList.toggle("selected", tr.getAttribute("data-hist") === name);
        });
      };
      document.querySelectorAll("tr[data-hist]").forEach(function (tr) {
        var pick = function () { show(tr.getAttribute("data-hist")); };
        tr.addEventListener("click", pick);
        tr.addEventListener("keydown", function (e) { if (e.key === "Enter") pick(); });
      });
      if (fig.getAttribute("data-default")) show(fig.getAttribute("data-default"));
    }
  }

  window.loopmlCharts = { lineChart: lineChart, barChart: barChart };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
