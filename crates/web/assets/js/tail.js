// Live tail: messages matching a filter as they arrive (server-sent events from /api/v1/tail),
// newest on top, bounded in the page, pausable.
import { apiUrl, query } from "./api.js";
import { el, esc, fmtTime, colourKey, endpoint } from "./util.js";

/** Rows kept in the page; older ones fall off the bottom. */
const MAX_ROWS = 2000;

const FIELDS = [
  ["callid", "Call-ID"], ["any_user", "Any user"], ["method", "Method / status"], ["ip", "Either IP"],
  ["node", "Node"], ["hep_type", "HEP type"], ["text", "Free text"],
];

export async function render(view, { params }) {
  document.title = "Live tail · hepstack";
  const inputs = {};
  const fields = el("div", { class: "fields" });
  for (const [name, label] of FIELDS) {
    inputs[name] = el("input", { name, id: `tail-${name}`, class: "mono", autocomplete: "off" });
    inputs[name].value = params.get(name) || "";
    fields.append(el("label", {}, label, inputs[name]));
  }
  const state = el("span", { class: "tailstate", id: "tail-state" }, "stopped");
  const counter = el("span", { class: "muted", id: "tail-count" }, "");
  const startBtn = el("button", { class: "btn primary", type: "submit", id: "tail-start" }, "Start");
  const pauseBtn = el("button", { class: "btn", type: "button", id: "tail-pause", disabled: true }, "Pause");
  const clearBtn = el("button", { class: "btn", type: "button" }, "Clear");
  const form = el("form", { class: "searchbar", id: "tail-form" },
    el("div", { class: "row" }, state, counter, el("span", { style: "flex:1" }), clearBtn, pauseBtn, startBtn), fields);
  const banner = el("div", { class: "banner", hidden: true, role: "alert" });
  const tbody = el("tbody", {});
  const wrap = el("div", { class: "tablewrap", id: "tail-table" },
    el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ["Time", "Message", "From", "To", "Source", "Destination", "Proto", "Node", "Call-ID / sid"].map((h) => el("th", {}, h)))), tbody));
  view.replaceChildren(form, banner, wrap);

  let source = null;
  let paused = false;
  let received = 0;
  let missed = 0;
  const buffer = [];

  function setState(cls, text) {
    state.className = "tailstate " + cls;
    state.textContent = text;
  }

  function updateCount() {
    counter.textContent = `${received.toLocaleString()} received${missed ? ` · ${missed.toLocaleString()} missed (client too slow)` : ""}${paused ? ` · ${buffer.length} waiting` : ""}`;
  }

  function rowHtml(m) {
    const key = colourKey(m);
    const cls = /^\d$/.test(key) ? `st-${key}` : `m-${key}`;
    return `<td class="mono">${esc(fmtTime(m.time_us, 6))}</td><td class="${m.method ? cls : "muted"}"><b>${esc(m.method || m.proto)}</b></td><td>${esc(m.from_user)}</td><td>${esc(m.to_user)}</td>` +
      `<td class="mono">${esc(m.src_alias || endpoint(m.src_ip, m.src_port))}</td><td class="mono">${esc(m.dst_alias || endpoint(m.dst_ip, m.dst_port))}</td><td>${esc(m.proto)}/${esc(m.transport)}</td><td>${esc(m.node)}</td><td class="mono">${esc(m.callid || m.sid)}</td>`;
  }

  function flush() {
    if (!buffer.length) return;
    const frag = document.createDocumentFragment();
    for (const m of buffer.splice(0).reverse()) {
      const tr = document.createElement("tr");
      tr.dataset.sid = m.callid || m.sid || "";
      tr.innerHTML = rowHtml(m);
      frag.append(tr);
    }
    tbody.prepend(frag);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
  }

  let flushQueued = false;
  function onMessage(data) {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (m && typeof m.missed === "number" && m.time_us === undefined) {
      missed += m.missed;
      updateCount();
      return;
    }
    received += 1;
    buffer.push(m);
    updateCount();
    // Batch DOM work per frame: bursts of thousands of messages stay smooth.
    if (!paused && !flushQueued) {
      flushQueued = true;
      requestAnimationFrame(() => {
        flushQueued = false;
        if (!paused) flush();
      });
    }
  }

  function stop() {
    if (source) source.close();
    source = null;
    pauseBtn.disabled = true;
    startBtn.textContent = "Start";
    setState("", "stopped");
  }

  function start() {
    stop();
    const p = {};
    for (const [name] of FIELDS) if (inputs[name].value.trim()) p[name] = inputs[name].value.trim();
    history.replaceState(null, "", "/tail" + query(p));
    banner.hidden = true;
    setState("", "connecting…");
    source = new EventSource(apiUrl("/tail" + query(p)));
    source.onopen = () => setState("live", "live");
    source.onmessage = (e) => onMessage(e.data);
    for (const name of ["lagged", "lag"]) source.addEventListener(name, (e) => onMessage(e.data));
    source.addEventListener("error", () => {
      if (source && source.readyState === EventSource.CLOSED) {
        setState("err", "disconnected");
        banner.hidden = false;
        banner.textContent = "The live stream closed (session expired, bad filter, or the server does not offer /api/v1/tail). Check the filter and press Start.";
        stop();
        setState("err", "disconnected");
      } else {
        setState("err", "reconnecting…");
      }
    });
    pauseBtn.disabled = false;
    startBtn.textContent = "Restart";
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    start();
  });
  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    if (!paused) flush();
    updateCount();
  });
  clearBtn.addEventListener("click", () => {
    tbody.replaceChildren();
    received = 0;
    missed = 0;
    buffer.length = 0;
    updateCount();
  });
  wrap.addEventListener("click", (e) => {
    const tr = e.target.closest("tbody tr");
    if (tr && tr.dataset.sid) window.open(`/call/${encodeURIComponent(tr.dataset.sid)}`, "_blank", "noopener");
  });
  start();
  return () => stop();
}
