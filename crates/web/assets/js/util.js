// Small shared helpers: escaping, DOM building, time zones, settings, colours.

const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for use inside HTML or SVG markup (element content and quoted attributes). */
export function esc(value) {
  if (value === null || value === undefined) return "";
  return String(value).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** Creates an element: el("div", {class: "x", onclick: f}, child, "text", …). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Settings kept in localStorage under one prefix. */
export const settings = {
  get(key, fallback) {
    try {
      const v = localStorage.getItem("hepstack." + key);
      return v === null ? fallback : v;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem("hepstack." + key, value);
    } catch {
      /* private mode: the setting lasts for this page only */
    }
  },
};

/** The browser's own zone name. */
export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** The display time zone: "UTC", or an IANA name; default the browser's zone. */
export function displayZone() {
  const zone = settings.get("tz", browserZone());
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return zone;
  } catch {
    return "UTC";
  }
}

const partFormatters = new Map();
function partsFormatter(zone) {
  let f = partFormatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    partFormatters.set(zone, f);
  }
  return f;
}

/** Wall-clock fields of epoch milliseconds in a zone. */
function wallClock(ms, zone) {
  const out = {};
  for (const p of partsFormatter(zone).formatToParts(new Date(ms))) out[p.type] = p.value;
  return out;
}

/** Offset of `zone` from UTC at epoch milliseconds `ms`, in milliseconds. */
export function zoneOffsetMs(ms, zone) {
  const w = wallClock(ms, zone);
  const asUtc = Date.UTC(+w.year, +w.month - 1, +w.day, +w.hour % 24, +w.minute, +w.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** Formats µs since the epoch as `YYYY-MM-DD HH:MM:SS.mmm` (digits: 3 or 6) in the display zone. */
export function fmtTime(us, digits = 3, zone = displayZone()) {
  if (us === null || us === undefined) return "";
  const ms = Math.floor(us / 1000);
  const w = wallClock(ms, zone);
  const frac = String(((us % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, "0").slice(0, digits);
  return `${w.year}-${w.month}-${w.day} ${w.hour}:${w.minute}:${w.second}${digits ? "." + frac : ""}`;
}

/** Only the time of day, for dense columns. */
export function fmtClock(us, digits = 3, zone = displayZone()) {
  return fmtTime(us, digits, zone).slice(11);
}

/** A `<input type=datetime-local>` value for epoch ms in the display zone. */
export function toLocalInput(ms, zone = displayZone()) {
  const w = wallClock(ms, zone);
  return `${w.year}-${w.month}-${w.day}T${w.hour}:${w.minute}:${w.second}`;
}

/** Epoch ms of a `datetime-local` value read as wall-clock time in the display zone. */
export function fromLocalInput(value, zone = displayZone()) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || "");
  if (!m) return null;
  const asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  // Two passes settle the offset across DST changes.
  let guess = asUtc - zoneOffsetMs(asUtc, zone);
  guess = asUtc - zoneOffsetMs(guess, zone);
  return guess;
}

/** Human duration of milliseconds: 850 ms, 12.4 s, 3 m 05 s, 2 h 01 m. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} m`;
}

/** Delta between two µs times: +0.000123 s style, compact. */
export function fmtDelta(us) {
  if (us === null || us === undefined) return "";
  if (us < 1000) return `+${us} µs`;
  if (us < 1_000_000) return `+${(us / 1000).toFixed(1)} ms`;
  return `+${(us / 1_000_000).toFixed(3)} s`;
}

/** CSS class of a SIP status code (st-1 … st-6) or st-none. */
export function statusClass(status) {
  const n = Number(status);
  return n >= 100 && n < 700 ? `st-${Math.floor(n / 100)}` : "st-none";
}

const KNOWN_METHODS = new Set(["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS"]);

/** Colour class suffix of a message: the status class digit for replies, the method for requests. */
export function colourKey(msg) {
  if (msg.is_request === false || /^\d{3}$/.test(msg.method || "")) {
    const n = Number(msg.status || msg.method);
    return String(Math.floor(n / 100));
  }
  const m = (msg.method || "").toUpperCase();
  return KNOWN_METHODS.has(m) ? m : "other";
}

/** A count with its noun, singular for exactly one: `plural(1, "log")` is "1 log". */
export function plural(n, one, many = one + "s") {
  return `${Number(n).toLocaleString()} ${Number(n) === 1 ? one : many}`;
}

/** `ip:port`, bracketed for IPv6. */
export function endpoint(ip, port) {
  if (!ip) return "";
  const host = ip.includes(":") ? `[${ip}]` : ip;
  return port ? `${host}:${port}` : host;
}

/** Brief status message at the bottom of the page. */
let toastTimer = null;
export function toast(text) {
  const t = document.getElementById("toast");
  if (!t) return;
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 2600);
}

/** Copies text to the clipboard; falls back to a hidden textarea where the API is absent (plain HTTP). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      /* fall through */
    }
  }
  const ta = el("textarea", { class: "offscreen", readonly: true });
  ta.value = text;
  ta.style.position = "fixed";
  ta.style.left = "-1000px";
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

/** Saves a Blob as a download with a file name. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Number formatting with a fixed number of decimals, blank for null. */
export function num(v, digits = 2) {
  return v === null || v === undefined || Number.isNaN(v) ? "" : Number(v).toFixed(digits);
}
