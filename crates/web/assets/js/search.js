// Search page: time range (presets or absolute, in the display zone), field filters, calls or
// messages view, the true total and cursor paging (newest first), keyboard navigation.
import { api, query, ApiError } from "./api.js";
import { el, esc, fmtTime, fmtDuration, statusClass, colourKey, endpoint, displayZone, toLocalInput, fromLocalInput, settings, plural, download, toast } from "./util.js";

const PRESETS = [
  ["5m", "5 min", 5 * 60e3], ["15m", "15 min", 15 * 60e3], ["1h", "60 min", 3600e3],
  ["6h", "6 h", 6 * 3600e3], ["24h", "24 h", 24 * 3600e3], ["7d", "7 days", 7 * 86400e3],
];

/** Search fields: [API parameter, label, placeholder]. `*` wildcards go to the server as typed. */
const FIELDS = [
  ["callid", "Call-ID", "abc*@host"],
  ["any_user", "Any user", "from/to/R-URI user"],
  ["from_user", "From user", "alice*"],
  ["to_user", "To user", ""],
  ["ruri_user", "R-URI user", ""],
  ["method", "Method / status", "INVITE, 486"],
  ["status", "Reply status", "486, 4xx"],
  ["final_status", "Final status (calls)", "4xx, 5xx, 6xx"],
  ["src_ip", "Source IP", "10.0.0.1"],
  ["src_port", "Source port", "5060"],
  ["dst_ip", "Destination IP", ""],
  ["dst_port", "Destination port", ""],
  ["ip", "Either IP", ""],
  ["user_agent", "User agent", "*Linphone*"],
  ["node", "Node", ""],
  ["text", "Free text (raw)", "X-Trace: 42"],
];

const PAGE_SIZES = [100, 500, 1000];

/** Most rows one CSV export fetches (pages of 1000 through the cursor). */
const CSV_MAX_ROWS = 100_000;

/** CSV columns per view: [header, value of an item]. Times are RFC 3339 UTC. */
const CSV_COLUMNS = {
  calls: [["start", (c) => c.start], ["end", (c) => c.end], ["call_id", (c) => c.call_id], ["method", (c) => c.method],
    ["final_status", (c) => c.status], ["from_user", (c) => c.from_user], ["to_user", (c) => c.to_user], ["ruri_user", (c) => c.ruri_user],
    ["duration_ms", (c) => c.duration_ms], ["messages", (c) => c.message_count], ["src_ip", (c) => c.src_ip], ["dst_ip", (c) => c.dst_ip],
    ["nodes", (c) => (c.nodes || []).join(" ")], ["correlation_id", (c) => c.correlation_id]],
  messages: [["time", (m) => m.time], ["method", (m) => m.method || m.proto], ["status", (m) => m.status], ["cseq", (m) => m.cseq],
    ["from_user", (m) => m.from_user], ["to_user", (m) => m.to_user], ["ruri_user", (m) => m.ruri_user], ["src", (m) => endpoint(m.src_ip, m.src_port)],
    ["dst", (m) => endpoint(m.dst_ip, m.dst_port)], ["transport", (m) => m.transport], ["proto", (m) => m.proto], ["node", (m) => m.node],
    ["user_agent", (m) => m.user_agent || m.server], ["call_id", (m) => m.callid || m.sid]],
};

/** One CSV field (RFC 4180): quoted when it holds a comma, quote or line break; a leading
 * `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets do not run it as a formula. */
export function csvField(v) {
  let s = v === null || v === undefined ? "" : String(v);
  if (/^[=+\-@]/.test(s)) s = "'" + s;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The CSV text of `items` for `view` (header line first, CRLF line ends). */
export function toCsv(view, items) {
  const cols = CSV_COLUMNS[view];
  const lines = [cols.map(([h]) => h).join(",")];
  for (const it of items) lines.push(cols.map(([, f]) => csvField(f(it))).join(","));
  return lines.join("\r\n") + "\r\n";
}

function rangeOf(params) {
  const from = params.get("from");
  const to = params.get("to");
  if (from && to) return { kind: "abs", from: Number(from), to: Number(to) };
  const key = params.get("range") || settings.get("range", "1h");
  const preset = PRESETS.find((p) => p[0] === key) || PRESETS[2];
  return { kind: "preset", key: preset[0], span: preset[2] };
}

export async function render(view, { params, navigate }) {
  const state = {
    view: params.get("view") === "messages" ? "messages" : "calls",
    range: rangeOf(params),
    limit: PAGE_SIZES.includes(Number(params.get("limit"))) ? Number(params.get("limit")) : Number(settings.get("limit", 100)),
    cursors: [null], // cursor of each page visited; the last is the current page
    page: 0,
    selected: -1,
    items: [],
    picked: new Set(), // Call-IDs ticked to open as one ladder
    abort: null,
  };

  // Form.
  const inputs = {};
  const fieldsBox = el("div", { class: "fields" });
  for (const [name, label, ph] of FIELDS) {
    const input = el("input", { name, id: `f-${name}`, placeholder: ph, class: "mono", autocomplete: "off", spellcheck: "false" });
    input.value = params.get(name) || "";
    inputs[name] = input;
    fieldsBox.append(el("label", { for: `f-${name}` }, label, input));
  }
  const presetSeg = el("div", { class: "seg", role: "group", "aria-label": "Time range presets" });
  for (const [key, label] of PRESETS) {
    presetSeg.append(el("button", { type: "button", dataset: { key }, title: `Last ${label}` }, label));
  }
  presetSeg.append(el("button", { type: "button", dataset: { key: "abs" }, title: "Absolute range" }, "Custom"));
  const zone = displayZone();
  const fromInput = el("input", { type: "datetime-local", step: "1", id: "range-from", "aria-label": "From" });
  const toInput = el("input", { type: "datetime-local", step: "1", id: "range-to", "aria-label": "To" });
  const absBox = el("span", { class: "row range-abs" }, fromInput, "→", toInput, el("span", { class: "hint" }, zone));
  const viewSeg = el("div", { class: "seg", role: "group", "aria-label": "Result view" },
    el("button", { type: "button", dataset: { v: "calls" }, id: "view-calls" }, "Calls"),
    el("button", { type: "button", dataset: { v: "messages" }, id: "view-messages" }, "Messages"));
  const sizeSel = el("select", { "aria-label": "Page size", id: "page-size" }, PAGE_SIZES.map((n) => el("option", { value: n }, `${n} / page`)));
  sizeSel.value = String(state.limit);
  const submit = el("button", { class: "btn primary", type: "submit", id: "search-submit" }, "Search");
  const clear = el("button", { class: "btn", type: "button" }, "Clear");
  const form = el("form", { class: "searchbar", id: "search-form" },
    el("div", { class: "row" }, presetSeg, absBox, el("span", { class: "muted" }, "|"), viewSeg, sizeSel,
      el("span", { style: "flex:1" }), el("span", { class: "hint" }, el("kbd", {}, "/"), " filter · ", el("kbd", {}, "j"), el("kbd", {}, "k"), " move · ", el("kbd", {}, "Enter"), " open · ", el("kbd", {}, "n"), el("kbd", {}, "p"), " page"), clear, submit),
    fieldsBox);

  const totalEl = el("span", { class: "total", id: "result-total" });
  const rangeEl = el("span", { class: "muted" });
  const prevBtn = el("button", { class: "btn small", type: "button", id: "page-prev" }, "‹ Newer");
  const nextBtn = el("button", { class: "btn small", type: "button", id: "page-next" }, "Older ›");
  const pageEl = el("span", { class: "muted", id: "page-info" });
  const openPicked = el("button", { class: "btn small primary", type: "button", id: "open-picked", hidden: true, title: "Open the ticked calls as one ladder" });
  const csvBtn = el("button", { class: "btn small", type: "button", id: "export-csv", title: `Every row of this search (at most ${CSV_MAX_ROWS.toLocaleString()}) as CSV` }, "CSV");
  const resultbar = el("div", { class: "resultbar" }, totalEl, rangeEl, el("div", { class: "pager" }, openPicked, csvBtn, prevBtn, pageEl, nextBtn));
  const tableWrap = el("div", { class: "tablewrap", id: "results" });
  const banner = el("div", { class: "banner", hidden: true, role: "alert" });
  view.replaceChildren(form, banner, resultbar, tableWrap);
  document.title = "Search · hepstack";

  function syncRangeUi() {
    for (const b of presetSeg.children) {
      b.classList.toggle("on", state.range.kind === "preset" ? b.dataset.key === state.range.key : b.dataset.key === "abs");
    }
    const now = Date.now();
    const [f, t] = state.range.kind === "abs" ? [state.range.from, state.range.to] : [now - state.range.span, now];
    fromInput.value = toLocalInput(f);
    toInput.value = toLocalInput(t);
    for (const b of viewSeg.children) b.classList.toggle("on", b.dataset.v === state.view);
  }

  function window_() {
    if (state.range.kind === "abs") return [state.range.from, state.range.to];
    const now = Date.now();
    return [now - state.range.span, now];
  }

  /** The filled fields; the final status only where it applies (the call list). */
  function filterParams() {
    const p = {};
    for (const [name] of FIELDS) {
      const v = inputs[name].value.trim();
      if (v && (name !== "final_status" || state.view === "calls")) p[name] = v;
    }
    return p;
  }

  function syncFieldsUi() {
    inputs.final_status.disabled = state.view !== "calls";
    inputs.final_status.title = state.view === "calls" ? "How the call ended: its final reply" : "Applies to the call list only";
  }

  /** Reflects the search in the address bar so it can be bookmarked and shared. */
  function syncUrl() {
    const p = { view: state.view, ...filterParams(), limit: state.limit };
    if (state.range.kind === "abs") Object.assign(p, { from: state.range.from, to: state.range.to });
    else p.range = state.range.key;
    history.replaceState(null, "", "/search" + query(p));
  }

  async function load() {
    if (state.abort) state.abort.abort();
    state.abort = new AbortController();
    const [from, to] = state.window || (state.window = window_());
    const cursor = state.cursors[state.page];
    const p = { ...filterParams(), from, to, limit: state.limit, cursor };
    banner.hidden = true;
    totalEl.textContent = "Searching…";
    for (const i of Object.values(inputs)) i.removeAttribute("aria-invalid");
    const t0 = performance.now();
    try {
      const data = await api(`/${state.view}` + query(p), { signal: state.abort.signal });
      state.items = data.items || [];
      state.next = data.next || null;
      state.total = data.total;
      renderTable();
      const ms = Math.round(performance.now() - t0);
      totalEl.textContent = plural(data.total, state.view === "calls" ? "call" : "message");
      rangeEl.textContent = `${fmtTime(from * 1000, 0)} → ${fmtTime(to * 1000, 0)} ${displayZone()} · ${ms} ms`;
      const first = state.page * state.limit + (state.items.length ? 1 : 0);
      pageEl.textContent = `${first.toLocaleString()}–${(state.page * state.limit + state.items.length).toLocaleString()}`;
      prevBtn.disabled = state.page === 0;
      nextBtn.disabled = !state.next;
    } catch (e) {
      if (e.name === "AbortError") return;
      totalEl.textContent = "";
      banner.hidden = false;
      banner.textContent = e instanceof ApiError ? `Search failed: ${e.message}` : String(e);
      if (e instanceof ApiError && e.param && inputs[e.param]) {
        inputs[e.param].setAttribute("aria-invalid", "true");
        inputs[e.param].focus();
      }
      tableWrap.replaceChildren();
    }
  }

  /** Every row of the current search (same window and filters), page by page, as a CSV file. */
  async function exportCsv() {
    const [from, to] = state.window || window_();
    const view = state.view;
    const items = [];
    let cursor = null;
    csvBtn.disabled = true;
    try {
      do {
        const data = await api(`/${view}` + query({ ...filterParams(), from, to, limit: 1000, cursor }));
        items.push(...(data.items || []));
        cursor = data.next || null;
        csvBtn.textContent = `CSV ${items.length.toLocaleString()}…`;
      } while (cursor && items.length < CSV_MAX_ROWS);
      const name = `hepstack-${view}-${new Date(from).toISOString().replace(/[:.]/g, "")}.csv`;
      download(new Blob([toCsv(view, items)], { type: "text/csv;charset=utf-8" }), name);
      toast(`${plural(items.length, view === "calls" ? "call" : "message")} exported${cursor ? ` (the first ${CSV_MAX_ROWS.toLocaleString()})` : ""}`);
    } catch (e) {
      toast(`CSV export failed: ${e.message || e}`);
    } finally {
      csvBtn.disabled = false;
      csvBtn.textContent = "CSV";
    }
  }

  function search() {
    state.picked.clear();
    syncPicked();
    state.window = window_();
    state.cursors = [null];
    state.page = 0;
    state.selected = -1;
    syncUrl();
    load();
  }

  /** A search by Call-ID that finds nothing in its time range: the flow has no time range, so
   * offer it when the call exists elsewhere in time. */
  async function offerFlow() {
    const ids = (inputs.callid.value || "").split(",").map((s) => s.trim()).filter(Boolean);
    if (ids.length !== 1 || ids[0].includes("*")) return;
    const id = ids[0];
    try {
      const flow = await api(`/calls/${encodeURIComponent(id)}/flow`, { signal: state.abort?.signal });
      const first = (flow.messages || [])[0];
      if (!first) return;
      const box = tableWrap.querySelector(".empty");
      if (!box) return;
      const link = el("a", { href: `/call/${encodeURIComponent(id)}`, id: "offer-flow", class: "btn primary small" }, "Open its call flow");
      link.addEventListener("click", (e) => {
        e.preventDefault();
        navigate(`/call/${encodeURIComponent(id)}`);
      });
      box.replaceChildren(
        el("div", {}, `Nothing in this time range, but Call-ID ${id} has ${plural(flow.messages.length, "message")} from ${fmtTime(first.time_us, 0)} ${displayZone()}.`),
        el("div", { class: "row" }, link));
    } catch {
      // Not found or not allowed: "Nothing found" stands.
    }
  }

  function renderTable() {
    if (!state.items.length) {
      tableWrap.innerHTML = `<div class="empty">Nothing found in this time range. Widen the range or loosen the filters.</div>`;
      if (inputs.callid.value.trim()) offerFlow();
      return;
    }
    // One string, one innerHTML: fast enough for 1000-row pages.
    const rows = state.view === "calls" ? state.items.map(callRow) : state.items.map(messageRow);
    const head = state.view === "calls"
      ? ["", "Start", "Method", "Status", "From", "To", "R-URI", "Duration", "Msgs", "Source", "Destination", "Nodes", "Call-ID"]
      : ["Time", "Method", "From", "To", "R-URI", "Source", "Destination", "Proto", "CSeq", "Node", "User agent", "Call-ID / sid"];
    tableWrap.innerHTML = `<table class="grid" id="result-table"><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
    if (state.selected >= 0) select(Math.min(state.selected, state.items.length - 1));
  }

  function callRow(c, i) {
    const st = c.status ? `<span class="pill ${statusClass(c.status)}">${esc(c.status)}</span>` : `<span class="pill st-none">—</span>`;
    const ticked = state.picked.has(c.call_id) ? " checked" : "";
    return `<tr data-i="${i}"><td class="pick"><input type="checkbox" class="pick" aria-label="Select for one ladder"${ticked}></td><td class="mono">${esc(fmtTime(c.start_us))}</td><td class="m-${esc(colourKey({ method: c.method, is_request: true }))}">${esc(c.method)}</td><td>${st}</td>` +
      `<td>${esc(c.from_user)}</td><td>${esc(c.to_user)}</td><td>${esc(c.ruri_user)}</td><td class="num">${esc(c.duration_ms !== null && c.duration_ms !== undefined ? fmtDuration(c.duration_ms) : "")}</td>` +
      `<td class="num">${esc(c.message_count)}</td><td class="mono" title="${esc(c.src_ip)}">${esc(c.src_alias || c.src_ip)}</td><td class="mono" title="${esc(c.dst_ip)}">${esc(c.dst_alias || c.dst_ip)}</td><td>${esc((c.nodes || []).join(", "))}</td><td class="mono" title="${esc(c.call_id)}">${esc(c.call_id)}</td></tr>`;
  }

  function messageRow(m, i) {
    const key = colourKey(m);
    const label = m.method || m.proto;
    const cls = /^\d$/.test(key) ? `st-${key}` : `m-${key}`;
    return `<tr data-i="${i}"><td class="mono">${esc(fmtTime(m.time_us, 6))}</td><td class="${m.method ? cls : "muted"}"><b>${esc(label)}</b></td>` +
      `<td>${esc(m.from_user)}</td><td>${esc(m.to_user)}</td><td>${esc(m.ruri_user)}</td><td class="mono" title="${esc(endpoint(m.src_ip, m.src_port))}">${esc(m.src_alias || endpoint(m.src_ip, m.src_port))}</td>` +
      `<td class="mono" title="${esc(endpoint(m.dst_ip, m.dst_port))}">${esc(m.dst_alias || endpoint(m.dst_ip, m.dst_port))}</td><td>${esc(m.proto)}/${esc(m.transport)}</td><td>${esc(m.cseq)}</td><td>${esc(m.node)}</td>` +
      `<td title="${esc(m.user_agent || m.server)}">${esc(m.user_agent || m.server)}</td><td class="mono" title="${esc(m.callid || m.sid)}">${esc(m.callid || m.sid)}</td></tr>`;
  }

  function select(i) {
    const rows = tableWrap.querySelectorAll("tbody tr");
    if (!rows.length) return;
    i = Math.max(0, Math.min(rows.length - 1, i));
    rows[state.selected]?.classList.remove("sel");
    state.selected = i;
    rows[i].classList.add("sel");
    rows[i].scrollIntoView({ block: "nearest" });
  }

  function open(i) {
    const item = state.items[i];
    if (!item) return;
    const id = state.view === "calls" ? item.call_id : item.callid || item.sid;
    if (id) navigate(`/call/${encodeURIComponent(id)}`);
  }

  // Events.
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    search();
  });
  clear.addEventListener("click", () => {
    for (const i of Object.values(inputs)) i.value = "";
    search();
  });
  presetSeg.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    if (b.dataset.key === "abs") {
      const [f, t] = window_();
      state.range = { kind: "abs", from: f, to: t };
      syncRangeUi();
      fromInput.focus();
      return;
    }
    const p = PRESETS.find((x) => x[0] === b.dataset.key);
    state.range = { kind: "preset", key: p[0], span: p[2] };
    settings.set("range", p[0]);
    syncRangeUi();
    search();
  });
  for (const input of [fromInput, toInput]) {
    input.addEventListener("change", () => {
      const f = fromLocalInput(fromInput.value);
      const t = fromLocalInput(toInput.value);
      if (f !== null && t !== null && f < t) {
        state.range = { kind: "abs", from: f, to: t };
        syncRangeUi();
      }
    });
  }
  viewSeg.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b || b.dataset.v === state.view) return;
    state.view = b.dataset.v;
    syncRangeUi();
    syncFieldsUi();
    search();
  });
  csvBtn.addEventListener("click", exportCsv);
  sizeSel.addEventListener("change", () => {
    state.limit = Number(sizeSel.value);
    settings.set("limit", state.limit);
    search();
  });
  prevBtn.addEventListener("click", () => {
    if (state.page === 0) return;
    state.page -= 1;
    state.selected = -1;
    load();
  });
  nextBtn.addEventListener("click", () => {
    if (!state.next) return;
    state.cursors[state.page + 1] = state.next;
    state.cursors.length = state.page + 2;
    state.page += 1;
    state.selected = -1;
    load();
  });
  function syncPicked() {
    openPicked.hidden = state.picked.size < 2;
    openPicked.textContent = `Open ${state.picked.size} as one ladder`;
  }
  openPicked.addEventListener("click", () => {
    const [first, ...rest] = [...state.picked];
    if (first) navigate(`/call/${encodeURIComponent(first)}` + query({ with: rest.join(",") }));
  });
  tableWrap.addEventListener("click", (e) => {
    const tr = e.target.closest("tbody tr");
    if (!tr) return;
    if (e.target.closest("td.pick")) {
      // Ticking a call selects it for the combined ladder instead of opening it.
      const box = tr.querySelector("input.pick");
      if (e.target !== box) box.checked = !box.checked;
      const id = state.items[Number(tr.dataset.i)]?.call_id;
      if (id && box.checked) state.picked.add(id);
      else if (id) state.picked.delete(id);
      syncPicked();
      return;
    }
    select(Number(tr.dataset.i));
    open(Number(tr.dataset.i));
  });

  const onKey = (e) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName || "");
    if (e.key === "/" && !typing) {
      e.preventDefault();
      inputs.callid.focus();
      return;
    }
    if (e.key === "Escape" && typing) {
      document.activeElement.blur();
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j" || e.key === "ArrowDown") {
      e.preventDefault();
      select(state.selected + 1);
    } else if (e.key === "k" || e.key === "ArrowUp") {
      e.preventDefault();
      select(state.selected - 1);
    } else if (e.key === "Enter" && state.selected >= 0) {
      open(state.selected);
    } else if (e.key === "n") nextBtn.click();
    else if (e.key === "p") prevBtn.click();
  };
  document.addEventListener("keydown", onKey);

  syncRangeUi();
  syncFieldsUi();
  syncUrl();
  load();
  return () => {
    document.removeEventListener("keydown", onKey);
    if (state.abort) state.abort.abort();
  };
}
