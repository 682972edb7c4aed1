// KPI dashboard: RFC 6076 ratios, traffic and voice quality of a scope (node, target group,
// direction) as tiles for the current window and as per-minute charts over the chosen range,
// from GET /api/v1/kpi and /api/v1/kpi/series.
import { api, query, ApiError } from "./api.js";
import { el, num, settings } from "./util.js";
import { lineChart } from "./charts.js";

const RANGES = [["1h", "1 h", 3600e3], ["6h", "6 h", 6 * 3600e3], ["24h", "24 h", 86400e3], ["7d", "7 days", 7 * 86400e3]];
const REFRESH_MS = 30_000;

const TILES = [
  ["ser_percent", "SER", "%", "Session Establishment Ratio: 2xx / (INVITEs − 3xx)"],
  ["seer_percent", "SEER", "%", "Session Establishment Effectiveness Ratio: 200/480/486/600/603 / (INVITEs − 3xx)"],
  ["isa_percent", "ISA", "%", "Ineffective Session Attempts: 408/500/503/504 or no answer / INVITEs"],
  ["scr_percent", "SCR", "%", "Session Completion Ratio: completed sessions / session requests"],
  ["ira_percent", "IRA", "%", "Ineffective Registration Attempts"],
  ["srd_avg_ms", "SRD avg", "ms", "Session Request Delay of successful setups"],
  ["session_attempts", "Session attempts", "", "INVITE attempts concluded in the window"],
  ["registration_attempts", "Registrations", "", "Registration attempts concluded in the window"],
  ["retransmissions", "Retransmissions", "", "Request and response retransmissions"],
  ["mos_avg", "MOS avg", "", "Mean E-model MOS of the RTCP/XR reports"],
  ["jitter_avg_ms", "Jitter avg", "ms", "Mean interarrival jitter"],
  ["packet_loss_avg_percent", "Loss avg", "%", "Mean packet loss"],
];

function scopeKey(s) {
  return `${s.node}|${s.target}|${s.direction}`;
}

export async function render(view) {
  document.title = "Dashboard · hepstack";
  let rangeKey = settings.get("kpi.range", "24h");
  let scope = settings.get("kpi.scope", "");
  const rangeSeg = el("div", { class: "seg", role: "group", "aria-label": "Range" }, RANGES.map(([k, label]) => el("button", { type: "button", dataset: { k } }, label)));
  const scopeSel = el("select", { id: "kpi-scope", "aria-label": "Scope" });
  const auto = el("input", { type: "checkbox", id: "kpi-auto", checked: true });
  const stamp = el("span", { class: "muted" });
  const tiles = el("div", { class: "kpis", id: "kpi-tiles" });
  const charts = el("div", { class: "charts", id: "kpi-charts" });
  const scopes = el("div", { class: "tablewrap" });
  const totals = el("div", { class: "charts" });
  const banner = el("div", { class: "banner", hidden: true, role: "alert" });
  const page = el("div", { class: "page", id: "dashboard" },
    el("div", { class: "row" }, el("h2", {}, "KPIs"), rangeSeg, el("label", { class: "row" }, "Scope ", scopeSel),
      el("label", { class: "row muted" }, auto, "auto refresh"), el("span", { style: "flex:1" }), stamp),
    banner, tiles, charts,
    el("div", { class: "card" }, el("h3", {}, "Scopes (current window)"), scopes),
    totals);
  view.replaceChildren(page);

  function markRange() {
    for (const b of rangeSeg.children) b.classList.toggle("on", b.dataset.k === rangeKey);
  }

  async function load() {
    const span = (RANGES.find((r) => r[0] === rangeKey) || RANGES[2])[2];
    let snap;
    try {
      snap = await api("/kpi");
    } catch (e) {
      banner.hidden = false;
      banner.textContent = e instanceof ApiError && e.status === 404
        ? "This server does not compute KPIs (no /api/v1/kpi): enable the [kpi] section of the configuration."
        : `KPIs unavailable: ${e.message}`;
      return;
    }
    banner.hidden = true;
    // The series ends at the engine's packet clock (replayed traffic may be in the past).
    const end = (snap.now_ms || Date.now()) + 60e3;
    const list = snap.scopes || [];
    if (!list.some((s) => scopeKey(s) === scope)) {
      const any = list.find((s) => s.target === "any" && s.direction === "any");
      scope = any ? scopeKey(any) : list[0] ? scopeKey(list[0]) : "";
    }
    scopeSel.replaceChildren(...list.map((s) => el("option", { value: scopeKey(s) }, `${s.node} · ${s.target} · ${s.direction}`)));
    scopeSel.value = scope;
    const current = list.find((s) => scopeKey(s) === scope);
    stamp.textContent = `window ${Math.round(snap.window_seconds / 60)} min · packet clock ${snap.now_ms ? new Date(snap.now_ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—"}`;

    tiles.replaceChildren(...TILES.map(([key, name, unit, help]) => {
      const v = current ? current.window[key] : null;
      const shown = v === null || v === undefined ? "—" : Number.isInteger(v) ? v.toLocaleString() : num(v, key === "mos_avg" ? 2 : 1);
      return el("div", { class: "kpi", title: help, dataset: { kpi: key } }, el("div", { class: "name" }, name), el("div", { class: "value" }, shown, unit && shown !== "—" ? el("span", { class: "sub" }, " " + unit) : null));
    }));

    scopes.innerHTML = "";
    scopes.append(el("table", { class: "grid", id: "kpi-scopes" },
      el("thead", {}, el("tr", {}, ["Node", "Target", "Dir", "SER", "SEER", "ISA", "SCR", "IRA", "Attempts", "MOS"].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.map((s) => el("tr", { class: scopeKey(s) === scope ? "sel" : null, dataset: { key: scopeKey(s) } },
        el("td", {}, s.node), el("td", {}, s.target), el("td", {}, s.direction),
        ...["ser_percent", "seer_percent", "isa_percent", "scr_percent", "ira_percent"].map((k) => el("td", { class: "num" }, num(s.window[k], 1))),
        el("td", { class: "num" }, s.window.session_attempts), el("td", { class: "num" }, num(s.window.mos_avg, 2)))))));

    if (current) {
      const kv = (title, obj) => el("div", { class: "card" }, el("h3", {}, title),
        el("table", { class: "kv" }, Object.entries(obj || {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, v.toLocaleString())))));
      totals.replaceChildren(kv("Requests since start", current.totals.requests), kv("Responses since start", current.totals.responses),
        kv("Request retransmissions", current.totals.request_retransmissions), kv("Response retransmissions", current.totals.response_retransmissions));
    }

    const [node, target, direction] = scope.split("|");
    let series;
    try {
      series = await api("/kpi/series" + query({ from: end - span, to: end, node: node === "any" ? "" : node, target, direction }));
    } catch (e) {
      charts.replaceChildren(el("div", { class: "banner" }, `Series unavailable: ${e.message}`));
      return;
    }
    const pts = series.points || [];
    const s = (key) => pts.map((p) => [p.time_ms, p[key]]);
    charts.replaceChildren(
      lineChart("Session ratios", [{ name: "SER", cls: "s2", points: s("ser_percent") }, { name: "SEER", cls: "s1", points: s("seer_percent") }, { name: "ISA", cls: "s3", points: s("isa_percent") }, { name: "SCR", cls: "s4", points: s("scr_percent") }], { unit: "%", yMin: 0, yMax: 100, digits: 1, id: "kpi-chart-ratios" }),
      lineChart("Traffic per minute", [{ name: "requests", cls: "s1", points: s("requests") }, { name: "responses", cls: "s2", points: s("responses") }, { name: "retransmissions", cls: "s3", points: s("retransmissions") }, { name: "session attempts", cls: "s4", points: s("session_attempts") }], { digits: 0 }),
      lineChart("IRA", [{ name: "IRA", cls: "s3", points: s("ira_percent") }], { unit: "%", yMin: 0, yMax: 100, digits: 1 }),
      lineChart("SRD of successful setups", [{ name: "SRD", cls: "s1", points: s("srd_avg_ms") }], { unit: "ms", digits: 0 }),
      lineChart("MOS", [{ name: "MOS", cls: "s2", points: s("mos_avg") }], { yMin: 1, yMax: 5, digits: 2 }),
      lineChart("Jitter and loss", [{ name: "jitter ms", cls: "s1", points: s("jitter_avg_ms") }, { name: "loss %", cls: "s3", points: s("packet_loss_avg_percent") }], { digits: 2 }));
  }

  rangeSeg.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    rangeKey = b.dataset.k;
    settings.set("kpi.range", rangeKey);
    markRange();
    load();
  });
  scopeSel.addEventListener("change", () => {
    scope = scopeSel.value;
    settings.set("kpi.scope", scope);
    load();
  });
  scopes.addEventListener("click", (e) => {
    const tr = e.target.closest("tbody tr");
    if (!tr) return;
    scope = tr.dataset.key;
    settings.set("kpi.scope", scope);
    load();
  });
  markRange();
  await load();
  const timer = setInterval(() => auto.checked && !document.hidden && load(), REFRESH_MS);
  return () => clearInterval(timer);
}
