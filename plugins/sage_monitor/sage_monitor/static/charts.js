// A small line chart drawn on a <canvas>: no library, nothing fetched from the network.
// drawLineChart(canvas, series, {max, unit}): series = [{name, color, points: [[t_seconds, value], ...]}].
"use strict";

const SAGE_COLORS = ["#2f6fde", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

function drawLineChart(canvas, series, options) {
  const opts = options || {};
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 56, right: 8, top: 8, bottom: 20 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  let tMin = Infinity, tMax = -Infinity, vMax = opts.max || 0;
  for (const s of series) {
    for (const [t, v] of s.points) {
      tMin = Math.min(tMin, t); tMax = Math.max(tMax, t);
      if (!opts.max && v > vMax) vMax = v;
    }
  }
  if (!isFinite(tMin)) { tMin = 0; tMax = 1; }
  if (tMax - tMin < 1) tMin = tMax - 1;
  if (vMax <= 0) vMax = 1;
  vMax = niceCeiling(vMax);
  const x = (t) => pad.left + ((t - tMin) / (tMax - tMin)) * plotW;
  const y = (v) => pad.top + plotH - (Math.min(v, vMax) / vMax) * plotH;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7385";
  ctx.strokeStyle = "#e3e6ec";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (vMax * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad.left, y(v)); ctx.lineTo(width - pad.right, y(v)); ctx.stroke();
    ctx.fillText(formatNumber(v) + (opts.unit || ""), 2, y(v) + 4);
  }
  ctx.fillText(`last ${Math.round(tMax - tMin)} s`, pad.left, height - 4);
  let legendX = pad.left + 90;
  series.forEach((s, i) => {
    const color = s.color || SAGE_COLORS[i % SAGE_COLORS.length];
    ctx.strokeStyle = color; ctx.lineWidth = 1.8;
    ctx.beginPath();
    s.points.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.fillRect(legendX, height - 12, 10, 3);
    ctx.fillText(s.name, legendX + 14, height - 6);
    legendX += 24 + ctx.measureText(s.name).width;
  });
}

function niceCeiling(v) {
  const magnitude = Math.pow(10, Math.floor(Math.log10(v)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= v) return step * magnitude;
  return 10 * magnitude;
}

function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
  return v.toFixed(a >= 1 ? 1 : 3);
}
