// Time-series line charts drawn as SVG (no library): axes, grid, one polyline per series,
// points with hover titles, and a min/avg/max summary.
import { esc, fmtClock, fmtTime, num } from "./util.js";

const W = 600;
const H = 150;
const PAD = { l: 44, r: 10, t: 8, b: 22 };

/** "Nice" tick step for a span split in about `count` parts. */
function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

/** The x-axis ticks of a time range (epoch ms): 4 at most, each label distinct. */
export function timeTicks(tMin, tMax, count = 4) {
  const span = tMax - tMin;
  const step = span / (count - 1);
  const digits = step >= 1000 ? 0 : step >= 100 ? 1 : step >= 10 ? 2 : 3;
  const out = [];
  for (let i = 0; i < count; i++) {
    const t = tMin + step * i;
    const label = span > 86400e3 ? fmtTime(t * 1000, 0).slice(5, 16) : fmtClock(t * 1000, digits);
    if (out.length && out[out.length - 1].label === label) continue;
    out.push({ t, label, anchor: i === 0 ? "start" : i === count - 1 ? "end" : "middle" });
  }
  return out;
}

/** min/avg/max of numbers (nulls skipped); null when there are none. */
export function summary(values) {
  const v = values.filter((x) => x !== null && x !== undefined && Number.isFinite(x));
  if (!v.length) return null;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const x of v) {
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  return { min, max, avg: sum / v.length, count: v.length };
}

/**
 * A chart element. `series`: [{name, cls: "s1".."s4", points: [[epochMs, value|null]]}].
 * Options: unit (axis suffix), yMin/yMax (fixed bounds), digits (value decimals), id.
 */
export function lineChart(title, series, { unit = "", yMin = null, yMax = null, digits = 2, id = null } = {}) {
  const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined && Number.isFinite(p[1])));
  const wrap = document.createElement("div");
  wrap.className = "chart";
  if (id) wrap.id = id;
  const stats = summary(all.map((p) => p[1]));
  const statText = stats ? `min ${num(stats.min, digits)} · avg ${num(stats.avg, digits)} · max ${num(stats.max, digits)}${unit ? " " + unit : ""}` : "no data";
  let svg = `<div class="title"><span>${esc(title)}</span><span>${esc(statText)}</span></div>`;
  svg += `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`;
  if (!all.length) {
    wrap.innerHTML = svg + `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text></svg>`;
    return wrap;
  }
  let tMin = Math.min(...all.map((p) => p[0]));
  let tMax = Math.max(...all.map((p) => p[0]));
  if (tMax === tMin) {
    tMin -= 1000;
    tMax += 1000;
  }
  let lo = yMin !== null ? yMin : Math.min(0, ...all.map((p) => p[1]));
  let hi = yMax !== null ? yMax : Math.max(...all.map((p) => p[1]));
  if (hi === lo) hi = lo + 1;
  const step = niceStep(hi - lo, 4);
  if (yMax === null) hi = Math.ceil(hi / step) * step;
  const x = (t) => PAD.l + ((t - tMin) / (tMax - tMin)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - ((v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
  // Grid and y labels.
  for (let v = lo; v <= hi + step / 1e6; v += step) {
    const yy = y(v).toFixed(1);
    svg += `<line class="grid" x1="${PAD.l}" x2="${W - PAD.r}" y1="${yy}" y2="${yy}"/>`;
    svg += `<text x="${PAD.l - 4}" y="${yy}" dy="3" text-anchor="end">${esc(num(v, step < 1 ? 2 : 0))}</text>`;
  }
  // Time labels: 4 ticks; the full date when the range spans days, fractions of a second when
  // the ticks are less than a second apart; a label equal to the previous one is not repeated.
  for (const { t, label, anchor } of timeTicks(tMin, tMax)) {
    svg += `<text class="tick" x="${x(t).toFixed(1)}" y="${H - 6}" text-anchor="${anchor}">${esc(label)}</text>`;
  }
  svg += `<line class="axis" x1="${PAD.l}" x2="${W - PAD.r}" y1="${H - PAD.b}" y2="${H - PAD.b}"/>`;
  for (const s of series) {
    const pts = s.points.filter((p) => p[1] !== null && p[1] !== undefined && Number.isFinite(p[1]));
    if (!pts.length) continue;
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    svg += `<path class="series ${esc(s.cls)}" d="${d}"/>`;
    if (pts.length <= 400) {
      for (const p of pts) {
        svg += `<circle class="dot ${esc(s.cls)}" cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="2.5"><title>${esc(s.name)} ${esc(num(p[1], digits))}${esc(unit ? " " + unit : "")} at ${esc(fmtTime(p[0] * 1000))}</title></circle>`;
      }
    }
  }
  svg += "</svg>";
  if (series.length > 1) {
    svg += `<div class="legend">${series.map((s) => `<span class="${esc(s.cls)}">■ <span class="muted">${esc(s.name)}</span></span>`).join("")}</div>`;
  }
  wrap.innerHTML = svg;
  return wrap;
}
