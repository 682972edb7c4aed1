// Call flow page: every correlated leg as an SVG ladder (hosts as columns, one arrow per message
// in time order), message detail with SIP highlighting, QoS charts, logs, events and exports.
import { api, apiUrl, query, ApiError } from "./api.js";
import { el, esc, fmtTime, fmtClock, fmtDelta, fmtDuration, colourKey, statusClass, endpoint, copyText, download, toast, num, displayZone, plural } from "./util.js";
import { highlightSip } from "./sip.js";
import { lineChart, summary } from "./charts.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const LEG_COLOURS = ["#3b8eea", "#e3b341", "#bc8cff", "#3fb950", "#f0883e", "#56d4dd", "#ff7b72", "#a5d6ff"];
const COL_W = 180;
const GUTTER = 150;
const HEAD_H = 44;
const ROW_H = 30;

/** Reason phrase of a reply from its start line. */
function reasonPhrase(raw) {
  const m = /^SIP\/2\.0\s+\d{3}\s+([^\r\n]*)/.exec(raw || "");
  return m ? m[1] : "";
}

function label(m) {
  if (m.is_request === false) return `${m.status || m.method} ${reasonPhrase(m.raw)}`.trim();
  return m.method || m.proto;
}

/** "dup" or "retrans" from the server's flags (same bytes, same endpoints, seen before). */
function repeatOf(m) {
  return m.duplicate ? "dup" : m.retransmission ? "retrans" : null;
}

function hostName(h) {
  return h.alias || h.address;
}

function svgEl(tag, attrs, text) {
  const n = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

/** Approximate advance of one character of the ladder's 11 px monospace font. */
const CHAR_W = 6.7;

/** `text` cut with "…" to at most `px` pixels of the ladder font. */
function fit(text, px) {
  const max = Math.max(3, Math.floor(px / CHAR_W));
  return text.length > max ? text.slice(0, max - 1).trimEnd() + "…" : text;
}

/** Builds the ladder SVG of the visible messages. Hosts that only hidden legs use get no
 * column. */
function ladder(flow, visible, selectedIndex) {
  const used = new Set(visible.flatMap((m) => [m.src_host, m.dst_host]));
  const hosts = visible.length ? flow.hosts.filter((h) => used.has(h.index)) : flow.hosts;
  const column = new Map(hosts.map((h, i) => [h.index, i]));
  const width = GUTTER + Math.max(1, hosts.length) * COL_W + 40;
  const height = HEAD_H + 16 + visible.length * ROW_H + 10;
  const svg = svgEl("svg", { class: "ladder", id: "ladder", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Call flow ladder diagram" });
  const hx = (hostIndex) => GUTTER + COL_W * ((column.get(hostIndex) ?? 0) + 0.5);
  // Lifelines and host headers.
  for (const h of hosts) {
    svg.append(svgEl("line", { class: "lifeline", x1: hx(h.index), x2: hx(h.index), y1: HEAD_H, y2: height, "data-host": h.index }));
    const g = svgEl("g", { class: "hosthead" });
    g.append(svgEl("rect", { x: hx(h.index) - COL_W / 2 + 6, y: 4, width: COL_W - 12, height: HEAD_H - 8, rx: 4 }));
    const name = hostName(h);
    g.append(svgEl("text", { x: hx(h.index), y: 20 }, name.length > 26 ? name.slice(0, 25) + "…" : name));
    const sub = name !== h.address ? h.address : (h.nodes || []).join(", ");
    if (sub) g.append(svgEl("text", { class: "sub", x: hx(h.index), y: 33 }, sub.length > 30 ? sub.slice(0, 29) + "…" : sub));
    g.append(svgEl("title", {}, `${h.address}${h.alias ? " (" + h.alias + ")" : ""}\nnodes: ${(h.nodes || []).join(", ") || "—"}`));
    svg.append(g);
  }
  let prevUs = null;
  visible.forEach((m, row) => {
    const y = HEAD_H + 16 + row * ROW_H + ROW_H / 2 + 4;
    const key = colourKey(m);
    const g = svgEl("g", { class: `msg c-${key}${m._repeat ? " " + m._repeat : ""}${m._i === selectedIndex ? " sel" : ""}`, "data-i": m._i, tabindex: "-1" });
    g.append(svgEl("rect", { class: "hit", x: 0, y: y - ROW_H + 6, width, height: ROW_H }));
    const legColour = LEG_COLOURS[(m.leg ?? 0) % LEG_COLOURS.length];
    g.append(svgEl("rect", { class: "legbar", x: 2, y: y - 16, width: 4, height: 22, fill: legColour }));
    g.append(svgEl("text", { class: "time", x: 10, y: y - 4 }, fmtClock(m.time_us, 3)));
    // Delta to the previous visible arrow (legs may be hidden), not the server's delta_us.
    if (prevUs !== null) g.append(svgEl("text", { class: "delta", x: 10, y: y + 8 }, fmtDelta(m.time_us - prevUs)));
    prevUs = m.time_us;
    const x1 = hx(m.src_host);
    const x2 = hx(m.dst_host);
    const text = label(m);
    if (x1 === x2) {
      g.append(svgEl("path", { class: "loop", d: `M${x1},${y - 8} h40 v12 h-36` }));
      g.append(svgEl("path", { class: "head", d: `M${x1 + 2},${y + 4} l8,-4 v8 z` }));
      g.append(svgEl("text", { class: "lbl", x: x1 + 44, y: y - 10, "text-anchor": "start" }, fit(text, COL_W / 2 - 52)));
    } else {
      const dir = x2 > x1 ? 1 : -1;
      g.append(svgEl("line", { x1, y1: y, x2: x2 - dir * 8, y2: y }));
      g.append(svgEl("path", { class: "head", d: `M${x2},${y} l${-dir * 9},-4.5 v9 z` }));
      const mid = (x1 + x2) / 2;
      // The label stays between the two lifelines; the full text is in the tooltip.
      g.append(svgEl("text", { class: "lbl", x: mid, y: y - 5 }, fit(text, Math.abs(x2 - x1) - 14)));
      if (m.sdp) g.append(svgEl("text", { class: "sdp", x: x1 + dir * 6, y: y + 11, "text-anchor": dir > 0 ? "start" : "end" }, "SDP"));
      if (m._repeat) g.append(svgEl("text", { class: "tag", x: x2 - dir * 12, y: y + 11, "text-anchor": dir > 0 ? "end" : "start" }, m._repeat === "dup" ? "DUP" : "RETRANS"));
    }
    g.append(svgEl("title", {}, `${text}\n${endpoint(m.src_ip, m.src_port)} → ${endpoint(m.dst_ip, m.dst_port)} ${m.transport}\n${fmtTime(m.time_us, 6)}${m._repeat ? "\n" + m._repeat : ""}`));
    svg.append(g);
  });
  return svg;
}

/**
 * QoS rows (report blocks, XR VoIP metrics) as streams, oldest first: one per report kind and
 * address pair, so that a stream whose SSRC changes (a restart, a NAT rebinding) stays one
 * stream with the change marked (`changes`), rather than falling apart into one-report
 * "streams". Only when one report carries blocks of several SSRC pairs at once (a mixer
 * reporting on several sources) does each pair get a stream of its own.
 */
export function qosStreams(rows) {
  const groups = new Map();
  for (const r of rows) {
    if (r.kind !== "report_block" && r.kind !== "voip_metrics") continue;
    const key = `${r.kind}|${endpoint(r.src_ip, r.src_port)}|${endpoint(r.dst_ip, r.dst_port)}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const pairOf = (r) => `${r.ssrc}|${r.source_ssrc}`;
  const streams = [];
  for (const group of groups.values()) {
    // Several pairs in one report (same message): concurrent streams, split by pair.
    const perReport = new Map();
    for (const r of group) {
      const id = `${r.id}|${r.time_us}`;
      if (!perReport.has(id)) perReport.set(id, new Set());
      perReport.get(id).add(pairOf(r));
    }
    const concurrent = [...perReport.values()].some((pairs) => pairs.size > 1);
    const parts = new Map();
    for (const r of group) {
      const key = concurrent ? pairOf(r) : "";
      if (!parts.has(key)) parts.set(key, []);
      parts.get(key).push(r);
    }
    for (const part of parts.values()) {
      const pairs = [];
      const changes = [];
      let prev = null;
      for (const r of part) {
        const pair = { ssrc: r.ssrc, source: r.source_ssrc };
        if (!pairs.some((p) => p.ssrc === pair.ssrc && p.source === pair.source)) pairs.push(pair);
        if (prev && pairOf(prev) !== pairOf(r)) changes.push({ time_us: r.time_us, from: { ssrc: prev.ssrc, source: prev.source_ssrc }, to: pair });
        prev = r;
      }
      streams.push({ kind: part[0].kind, pairs, changes, rows: part });
    }
  }
  return streams.sort((a, b) => a.rows[0].time_us - b.rows[0].time_us);
}

/** Names of the static RTP payload types (RFC 3551) SDP often leaves without `a=rtpmap`. */
const STATIC_PT = { 0: "PCMU/8000", 3: "GSM/8000", 4: "G723/8000", 8: "PCMA/8000", 9: "G722/8000", 13: "CN/8000", 18: "G729/8000" };

/** The codecs of each media line of an SDP body: [{media, port, codecs: ["PCMU/8000", …]}]. */
export function sdpCodecs(raw) {
  const body = (raw || "").split(/\r?\n\r?\n/).slice(1).join("\n");
  const media = [];
  for (const line of body.split(/\r?\n/)) {
    const m = /^m=(\S+) (\d+)\S* \S+ (.*)$/.exec(line);
    if (m) {
      media.push({ media: m[1], port: Number(m[2]), pts: m[3].trim().split(/\s+/), names: {} });
      continue;
    }
    const r = /^a=rtpmap:(\d+) (\S+)/.exec(line);
    if (r && media.length) media[media.length - 1].names[r[1]] = r[2];
  }
  return media.map((m) => ({ media: m.media, port: m.port, codecs: m.pts.map((pt) => m.names[pt] || STATIC_PT[pt] || `PT ${pt}`) }));
}

/** Via entries of a SIP message (one per hop it passed): header lines `Via:` / `v:`, each may
 * list several comma-separated entries. */
function viaCount(raw) {
  const head = (raw || "").split(/\r?\n\r?\n/)[0];
  return head.split(/\r?\n/).filter((l) => /^(via|v)\s*:/i.test(l)).reduce((n, l) => n + l.split(",").length, 0);
}

/**
 * The session-info summary of each leg of a flow: times (start, end, post-dial delay to the
 * first 18x, setup time to the final reply, answer, talk time to the BYE), the final status
 * and its reason, the codecs offered and answered in SDP, user agents by host, and hops (Via
 * entries of the first request).
 */
export function sessionSummary(flow) {
  return (flow.legs || []).map((leg) => {
    const msgs = (flow.messages || []).filter((m) => m.leg === leg.index && !m.duplicate);
    const first = msgs[0];
    const last = msgs[msgs.length - 1];
    const req = msgs.find((m) => m.is_request);
    const method = (req?.method || "").toUpperCase();
    const replies = msgs.filter((m) => m.is_request === false && (m.cseq_method || "").toUpperCase() === method);
    const ringing = replies.find((m) => m.status >= 180 && m.status < 200);
    const finals = replies.filter((m) => m.status >= 200);
    const answer = method === "INVITE" ? finals.find((m) => m.status < 300) : null;
    const final = finals.filter((m) => m.status === leg.status).pop() || finals[finals.length - 1] || null;
    const bye = answer ? msgs.find((m) => m.is_request && (m.method || "").toUpperCase() === "BYE" && m.time_us >= answer.time_us) : null;
    const sdps = msgs.filter((m) => m.sdp);
    const offer = sdps.find((m) => m.is_request);
    const answered = sdps.find((m) => m.is_request === false);
    const agents = new Map();
    for (const m of msgs) {
      const ua = m.user_agent || m.server;
      if (ua) agents.set(`${ua}|${m.src_ip}`, { agent: ua, host: m.src_alias || endpoint(m.src_ip, m.src_port) });
    }
    const ms = (a, b) => (a && b ? (b.time_us - a.time_us) / 1000 : null);
    return {
      leg,
      start_us: first?.time_us ?? null,
      end_us: last?.time_us ?? null,
      duration_ms: ms(first, last),
      method: req?.method || null,
      pdd_ms: ms(req, ringing),
      setup_ms: ms(req, final),
      status: final ? final.status : leg.status ?? null,
      reason: final ? reasonPhrase(final.raw) : "",
      answered_us: answer?.time_us ?? null,
      talk_ms: answer ? ms(answer, bye || last) : null,
      ended_by: bye ? "BYE" : answer ? "no BYE seen" : null,
      offer: offer ? sdpCodecs(offer.raw) : [],
      answer: answered ? sdpCodecs(answered.raw) : [],
      agents: [...agents.values()],
      hops: req ? viaCount(req.raw) : null,
      hosts: new Set(msgs.flatMap((m) => [m.src_host, m.dst_host])).size,
    };
  });
}

const DETAIL_FIELDS = [
  ["Time", (m) => `${fmtTime(m.time_us, 6)} ${displayZone()}`],
  ["Source", (m) => endpoint(m.src_ip, m.src_port) + (m.src_alias ? ` (${m.src_alias})` : "")],
  ["Destination", (m) => endpoint(m.dst_ip, m.dst_port) + (m.dst_alias ? ` (${m.dst_alias})` : "")],
  ["Transport", (m) => `${m.proto} over ${m.transport} (HEP v${m.hep_version}, type ${m.hep_type})`],
  ["Node", (m) => [m.node, m.capture_id !== null && m.capture_id !== undefined ? `capture id ${m.capture_id}` : null].filter(Boolean).join(", ")],
  ["Call-ID", (m) => m.callid],
  ["CSeq", (m) => m.cseq],
  ["R-URI", (m) => (m.ruri_user || m.ruri_domain ? `${m.ruri_user || ""}@${m.ruri_domain || ""}` : null)],
  ["From", (m) => (m.from_user || m.from_domain ? `${m.from_user || ""}@${m.from_domain || ""}${m.from_tag ? ";tag=" + m.from_tag : ""}` : null)],
  ["To", (m) => (m.to_user || m.to_domain ? `${m.to_user || ""}@${m.to_domain || ""}${m.to_tag ? ";tag=" + m.to_tag : ""}` : null)],
  ["Contact user", (m) => m.contact_user],
  ["P-Asserted-Identity", (m) => m.pid_user],
  ["Auth user", (m) => m.auth_user],
  ["User-Agent", (m) => m.user_agent],
  ["Server", (m) => m.server],
  ["Reason", (m) => m.reason],
  ["Content-Type", (m) => m.content_type],
  ["Via branch", (m) => m.via_branch],
  ["SDP media", (m) => (m.sdp_media || []).join(", ")],
  ["Correlation id", (m) => m.correlation_id],
  ["A-leg id", (m) => m.aleg_id],
  ["Profile", (m) => m.profile],
];

export async function render(view, { segments, params }) {
  const callId = decodeURIComponent(segments.slice(1).join("/"));
  // Further calls shown in the same ladder (the search's multi-select): `?with=id,id`.
  const withIds = params.getAll("with").flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v && v !== callId);
  const exportQuery = query({ with: withIds.join(",") });
  document.title = `${callId}${withIds.length ? ` + ${withIds.length}` : ""} · hepstack`;
  view.replaceChildren(el("div", { class: "empty" }, "Loading call flow…"));
  let flow;
  const t0 = performance.now();
  try {
    flow = await api(`/calls/${encodeURIComponent(callId)}/flow` + query({ from: params.get("from"), to: params.get("to"), with: withIds.join(",") }));
  } catch (e) {
    view.replaceChildren(el("div", { class: "banner" }, e instanceof ApiError ? e.message : String(e)), el("div", { class: "empty" }, el("a", { href: "/search" }, "Back to search")));
    return;
  }
  const loadMs = Math.round(performance.now() - t0);
  const messages = flow.messages || [];
  messages.forEach((m, i) => {
    m._i = i;
    m._repeat = repeatOf(m);
  });
  const hiddenLegs = new Set();
  let selected = -1;
  let tab = "flow";

  // Header: legs, summary, exports.
  const legsBox = el("div", { class: "legs", id: "legs" });
  (flow.legs || []).forEach((leg) => {
    const chip = el("div", { class: "leg", dataset: { leg: leg.index, role: leg.role }, title: `Click to hide/show this leg\nCall-ID ${leg.call_id}${leg.correlation_id ? "\ncorrelation " + leg.correlation_id : ""}`, tabindex: "0" },
      el("span", { class: "role" }, leg.role === "b-leg" ? `B-leg${leg.a_leg !== null && leg.a_leg !== undefined ? " of " + (leg.a_leg + 1) : ""}` : "A-leg"),
      el("span", { class: "mono" }, leg.call_id),
      el("span", {}, `${leg.from_user || "?"} → ${leg.to_user || leg.ruri_user || "?"}`),
      leg.status ? el("span", { class: `pill ${statusClass(leg.status)}` }, leg.status) : el("span", { class: "pill st-none" }, "—"),
      el("span", { class: "muted" }, plural(leg.message_count, "msg")));
    chip.style.setProperty("--legc", LEG_COLOURS[leg.index % LEG_COLOURS.length]);
    const toggle = () => {
      if (hiddenLegs.has(leg.index)) hiddenLegs.delete(leg.index);
      else hiddenLegs.add(leg.index);
      chip.classList.toggle("off", hiddenLegs.has(leg.index));
      drawFlow();
    };
    chip.addEventListener("click", toggle);
    chip.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), toggle()));
    legsBox.append(chip);
  });
  const first = messages[0];
  const last = messages[messages.length - 1];
  const span = first && last ? (last.time_us - first.time_us) / 1000 : null;
  const enc = encodeURIComponent(callId);
  const pcapLink = el("a", { class: "btn", href: apiUrl(`/calls/${enc}/pcap${exportQuery}`), download: `${callId}.pcap`, id: "export-pcap", title: "Every message of every leg with its original transport and time" }, "PCAP");
  if (!messages.length) {
    // The PCAP is rebuilt from SIP messages; the server answers 422 for a call without any.
    pcapLink.classList.add("disabled");
    pcapLink.setAttribute("aria-disabled", "true");
    pcapLink.title = "No SIP messages in this call to export as PCAP (its RTCP and logs are in the QoS and Logs tabs)";
    pcapLink.addEventListener("click", (e) => {
      e.preventDefault();
      toast(pcapLink.title);
    });
  }
  const textLink = el("a", { class: "btn", href: apiUrl(`/calls/${enc}/text${exportQuery}`), download: `${callId}.txt`, id: "export-text" }, "Text");
  const svgBtn = el("button", { class: "btn", type: "button", id: "export-svg", title: "The ladder as shown, as a standalone SVG" }, "SVG");
  const linkBtn = el("button", { class: "btn", type: "button", id: "copy-link", title: "Copy a link to this call (the recipient must log in)" }, "Copy link");
  const head = el("div", { class: "flowhead" },
    el("h2", {}, el("a", { href: "/search", title: "Back to search (Backspace)" }, "‹"), withIds.length ? "Calls " : "Call ", el("span", { class: "mono", id: "flow-callid" }, callId),
      withIds.length ? el("span", { class: "mono muted", id: "flow-with", title: withIds.join("\n") }, `+ ${plural(withIds.length, "call")}`) : null,
      el("span", { class: "muted" }, `${plural(flow.legs.length, "leg")} · ${plural(messages.length, "SIP message")} · ${plural((flow.qos || []).length, "QoS row")} · ${plural((flow.logs || []).length, "log")}${span !== null ? " · " + fmtDuration(span) : ""} · ${loadMs} ms`),
      el("span", { class: "actions" }, el("span", { class: "muted" }, "Export"), pcapLink, textLink, svgBtn, linkBtn)),
    legsBox);
  const banner = flow.truncated ? el("div", { class: "banner info" }, "This flow is larger than the server's max_flow_messages: the newest messages are not shown.") : null;

  const TABS = [
    ["flow", "Flow", messages.length], ["messages", "Messages", messages.length + (flow.events || []).length],
    ["qos", "QoS", (flow.qos || []).length], ["logs", "Logs", (flow.logs || []).length],
    ["summary", "Summary", flow.legs.length],
  ];
  const tabs = el("div", { class: "tabs", role: "tablist" }, TABS.map(([key, name, count], i) =>
    el("button", { type: "button", role: "tab", id: `tab-${key}`, dataset: { tab: key }, title: `${name} (key ${i + 1})` }, name, el("span", { class: "count" }, count))));
  const body = el("div", { class: "flowbody" });
  view.replaceChildren(head, ...(banner ? [banner] : []), tabs, body);

  // Flow tab.
  const ladderPane = el("div", { class: "ladderpane", id: "ladder-pane", tabindex: "0" });
  const detail = el("aside", { class: "detailpane", id: "detail", hidden: true });
  let visible = [];

  function drawFlow() {
    visible = messages.filter((m) => !hiddenLegs.has(m.leg));
    if (!visible.length) {
      ladderPane.replaceChildren(el("div", { class: "empty" }, messages.length ? "Every leg is hidden." : "No SIP messages in this flow (see the QoS and Logs tabs)."));
      return;
    }
    ladderPane.replaceChildren(ladder(flow, visible, selected));
  }

  function showDetail(i) {
    const m = messages[i];
    if (!m) return;
    selected = i;
    for (const g of ladderPane.querySelectorAll("g.msg.sel")) g.classList.remove("sel");
    const g = ladderPane.querySelector(`g.msg[data-i="${i}"]`);
    if (g) {
      g.classList.add("sel");
      const r = g.getBoundingClientRect();
      const p = ladderPane.getBoundingClientRect();
      if (r.top < p.top + HEAD_H || r.bottom > p.bottom) ladderPane.scrollTop += r.top - p.top - p.height / 2;
    }
    const fields = el("table", { class: "kv" });
    for (const [name, f] of DETAIL_FIELDS) {
      const v = f(m);
      if (v !== null && v !== undefined && v !== "") fields.append(el("tr", {}, el("th", {}, name), el("td", { class: "mono" }, v)));
    }
    for (const [name, v] of Object.entries(m.custom_headers || {})) fields.append(el("tr", {}, el("th", {}, name), el("td", { class: "mono" }, v)));
    const pre = el("pre", { class: "sip mono", id: "detail-raw" });
    pre.innerHTML = highlightSip(m.raw);
    const copyRaw = el("button", { class: "btn small", type: "button" }, "Copy raw");
    copyRaw.addEventListener("click", async () => toast((await copyText(m.raw)) ? "Message copied" : "Copy failed"));
    const close = el("button", { class: "btn small ghost", type: "button", title: "Close (Esc)" }, "✕");
    close.addEventListener("click", hideDetail);
    const leg = flow.legs[m.leg];
    detail.replaceChildren(
      el("header", {}, el("b", { class: `c-${colourKey(m)}` }, label(m)), m._repeat ? el("span", { class: "pill st-4" }, m._repeat) : null,
        el("span", { class: "muted" }, `#${i + 1} · ${leg ? (leg.role === "b-leg" ? "B-leg " : "A-leg ") + (m.leg + 1) : ""}`),
        el("span", { style: "flex:1" }), el("span", { class: "hint" }, el("kbd", {}, "↑"), el("kbd", {}, "↓")), copyRaw, close),
      el("div", { class: "scroll" }, pre, fields));
    detail.hidden = false;
  }

  function hideDetail() {
    detail.hidden = true;
    selected = -1;
    for (const g of ladderPane.querySelectorAll("g.msg.sel")) g.classList.remove("sel");
  }

  function move(delta) {
    if (!visible.length) return;
    const pos = visible.findIndex((m) => m._i === selected);
    const next = pos < 0 ? (delta > 0 ? 0 : visible.length - 1) : Math.max(0, Math.min(visible.length - 1, pos + delta));
    showDetail(visible[next]._i);
  }

  ladderPane.addEventListener("click", (e) => {
    const g = e.target.closest("g.msg");
    if (g) showDetail(Number(g.dataset.i));
  });

  // Messages tab: every SIP message and event of the flow in one dense table.
  function messagesTable() {
    const rows = [...messages, ...(flow.events || [])].sort((a, b) => a.time_us - b.time_us);
    const wrap = el("div", { class: "tablewrap" });
    wrap.innerHTML = `<table class="grid" id="flow-messages"><thead><tr><th>Time</th><th>Leg</th><th>Message</th><th>Source</th><th>Destination</th><th>Proto</th><th>CSeq</th><th>Node</th><th>Call-ID / sid</th></tr></thead><tbody>${rows.map((m) => {
      const key = colourKey(m);
      const cls = /^\d$/.test(key) ? `st-${key}` : `m-${key}`;
      return `<tr data-i="${m._i ?? ""}"><td class="mono">${esc(fmtTime(m.time_us, 6))}</td><td>${m.leg !== null && m.leg !== undefined ? m.leg + 1 : ""}</td><td class="${m.method ? cls : "muted"}"><b>${esc(m.method ? label(m) : m.proto)}</b>${m._repeat ? ` <span class="pill st-4">${m._repeat}</span>` : ""}</td>` +
        `<td class="mono">${esc(m.src_alias || endpoint(m.src_ip, m.src_port))}</td><td class="mono">${esc(m.dst_alias || endpoint(m.dst_ip, m.dst_port))}</td><td>${esc(m.proto)}/${esc(m.transport)}</td><td>${esc(m.cseq)}</td><td>${esc(m.node)}</td><td class="mono">${esc(m.callid || m.sid)}</td></tr>`;
    }).join("")}</tbody></table>`;
    wrap.addEventListener("click", (e) => {
      const tr = e.target.closest("tbody tr");
      if (!tr || tr.dataset.i === "") return;
      switchTab("flow");
      showDetail(Number(tr.dataset.i));
    });
    return wrap;
  }

  function qosView() {
    const box = el("div", { class: "qos", id: "qos" });
    const rows = flow.qos || [];
    if (!rows.length) {
      box.append(el("div", { class: "empty" }, "No RTCP reports for this call."));
      return box;
    }
    const streams = qosStreams(rows);
    const invalid = rows.filter((r) => r.kind === "invalid");
    const reports = rows.filter((r) => r.kind === "report");
    let n = 0;
    for (const s of streams) {
      n += 1;
      const r0 = s.rows[0];
      const t = (r) => r.time_us / 1000;
      const leg = r0.leg !== null && r0.leg !== undefined ? flow.legs[r0.leg] : null;
      const charts = el("div", { class: "charts" });
      let statsRows;
      if (s.kind === "report_block") {
        charts.append(
          lineChart("Jitter", [{ name: "jitter", cls: "s1", points: s.rows.map((r) => [t(r), r.jitter_ms]) }], { unit: "ms", digits: 1, id: `chart-jitter-${n}` }),
          lineChart("Packet loss (fraction lost)", [{ name: "loss", cls: "s3", points: s.rows.map((r) => [t(r), r.fraction_lost_percent]) }], { unit: "%", digits: 2, id: `chart-loss-${n}` }),
          lineChart("MOS (E-model)", [{ name: "MOS", cls: "s2", points: s.rows.map((r) => [t(r), r.mos]) }], { yMin: 1, yMax: 5, digits: 2, id: `chart-mos-${n}` }));
        if (s.rows.some((r) => r.rtt_ms !== null && r.rtt_ms !== undefined)) {
          charts.append(lineChart("Round-trip time", [{ name: "RTT", cls: "s4", points: s.rows.map((r) => [t(r), r.rtt_ms]) }], { unit: "ms", digits: 1 }));
        }
        statsRows = [["Jitter (ms)", s.rows.map((r) => r.jitter_ms), 1], ["Loss (%)", s.rows.map((r) => r.fraction_lost_percent), 2],
          ["MOS", s.rows.map((r) => r.mos), 2], ["R factor", s.rows.map((r) => r.r_factor), 1], ["RTT (ms)", s.rows.map((r) => r.rtt_ms), 1]];
      } else {
        charts.append(
          lineChart("Loss / discard (XR)", [{ name: "loss", cls: "s3", points: s.rows.map((r) => [t(r), r.loss_percent]) }, { name: "discard", cls: "s4", points: s.rows.map((r) => [t(r), r.discard_percent]) }], { unit: "%", digits: 2 }),
          lineChart("MOS (XR, E-model)", [{ name: "MOS", cls: "s2", points: s.rows.map((r) => [t(r), r.mos]) }, { name: "reported MOS-LQ", cls: "s1", points: s.rows.map((r) => [t(r), r.reported_mos_lq]) }], { yMin: 1, yMax: 5, digits: 2 }),
          lineChart("Round-trip delay (XR)", [{ name: "RTT", cls: "s4", points: s.rows.map((r) => [t(r), r.round_trip_delay_ms]) }], { unit: "ms", digits: 0 }));
        statsRows = [["Loss (%)", s.rows.map((r) => r.loss_percent), 2], ["Discard (%)", s.rows.map((r) => r.discard_percent), 2],
          ["MOS", s.rows.map((r) => r.mos), 2], ["RTT (ms)", s.rows.map((r) => r.round_trip_delay_ms), 0]];
      }
      const stats = el("table", { class: "stats" }, el("tr", {}, el("th", {}, ""), el("th", {}, "min"), el("th", {}, "avg"), el("th", {}, "max"), el("th", {}, "reports")));
      for (const [name, values, digits] of statsRows) {
        const st = summary(values);
        if (!st) continue;
        stats.append(el("tr", {}, el("td", {}, name), el("td", {}, num(st.min, digits)), el("td", {}, num(st.avg, digits)), el("td", {}, num(st.max, digits)), el("td", {}, st.count)));
      }
      const lastRow = s.rows[s.rows.length - 1];
      box.append(el("section", { class: "stream", dataset: { kind: s.kind } },
        el("h3", {}, `${s.kind === "report_block" ? "RTCP" : "RTCP-XR"} stream ${n}`,
          el("span", { class: "mono muted" }, s.pairs.map((p) => `SSRC ${p.ssrc} reports on ${p.source}`).join(", then ")),
          el("span", { class: "mono muted" }, `${endpoint(r0.src_ip, r0.src_port)} → ${endpoint(r0.dst_ip, r0.dst_port)}`),
          leg ? el("span", { class: "muted" }, `leg ${leg.index + 1} (${leg.role})`) : null,
          s.kind === "report_block" ? el("span", { class: "muted" }, `${lastRow.packets_lost} packets lost in total`) : null,
          s.changes.length ? el("span", { class: "pill st-4 ssrc-change", title: "The same addresses reported with a new SSRC: an endpoint or media relay restarted the stream, or a NAT binding changed." }, `SSRC changed ${s.changes.length === 1 ? "once" : s.changes.length + " times"}`) : null),
        s.changes.length ? el("ul", { class: "ssrc-changes" }, s.changes.map((c) => el("li", { class: "mono" },
          `${fmtTime(c.time_us, 3)}: SSRC ${c.from.ssrc} → ${c.from.source} became ${c.to.ssrc} → ${c.to.source}`))) : null,
        stats, charts));
    }
    if (reports.length) box.append(el("div", { class: "muted" }, `${plural(reports.length, "sender/receiver report")} without report blocks.`));
    if (invalid.length) box.append(el("div", { class: "banner" }, `${plural(invalid.length, "RTCP payload")} could not be decoded: ${invalid[0].error}`));
    return box;
  }

  function logsView() {
    const rows = flow.logs || [];
    const wrap = el("div", { class: "tablewrap", id: "logs" });
    if (!rows.length) {
      wrap.append(el("div", { class: "empty" }, "No log lines for this call."));
      return wrap;
    }
    wrap.innerHTML = `<table class="grid"><thead><tr><th>Time</th><th>Level</th><th>Leg</th><th>Node</th><th>Source</th><th>Text</th></tr></thead><tbody>${rows.map((r) =>
      `<tr><td class="mono">${esc(fmtTime(r.time_us, 6))}</td><td class="lvl-${esc(r.level)}">${esc(r.level || "")}</td><td>${r.leg !== null && r.leg !== undefined ? r.leg + 1 : ""}</td><td>${esc(r.node)}</td><td class="mono">${esc(endpoint(r.src_ip, r.src_port))}</td><td class="mono" title="${esc(r.text)}">${esc(r.text)}${r.truncated ? " …" : ""}</td></tr>`).join("")}</tbody></table>`;
    return wrap;
  }

  function summaryView() {
    const box = el("div", { class: "qos", id: "summary" });
    const fmtMs = (v) => (v === null || v === undefined ? "—" : fmtDuration(v));
    const codecs = (media) => (media.length ? media.map((m) => `${m.media} ${m.port}: ${m.codecs.join(", ")}`).join(" · ") : "—");
    for (const s of sessionSummary(flow)) {
      const rows = [
        ["Call-ID", s.leg.call_id],
        ["Method", s.method || "—"],
        ["Start", s.start_us !== null ? `${fmtTime(s.start_us, 3)} ${displayZone()}` : "—"],
        ["Duration (first to last message)", fmtMs(s.duration_ms)],
        ["Post-dial delay (to the first 18x)", fmtMs(s.pdd_ms)],
        ["Setup time (to the final reply)", fmtMs(s.setup_ms)],
        ["Final status", s.status ? `${s.status} ${s.reason}`.trim() : "none yet"],
        ["Answered", s.answered_us !== null ? `${fmtTime(s.answered_us, 3)}, talk time ${fmtMs(s.talk_ms)} (${s.ended_by})` : "—"],
        ["Codecs offered", codecs(s.offer)],
        ["Codecs answered", codecs(s.answer)],
        ["User agents", s.agents.length ? s.agents.map((a) => `${a.agent} (${a.host})`).join(" · ") : "—"],
        ["Hops (Via entries of the first request)", s.hops ?? "—"],
        ["Hosts in the ladder", s.hosts],
      ];
      box.append(el("section", { class: "stream summary", dataset: { leg: s.leg.index } },
        el("h3", {}, s.leg.role === "b-leg" ? `B-leg ${s.leg.index + 1}` : `A-leg ${s.leg.index + 1}`,
          s.status ? el("span", { class: `pill ${statusClass(s.status)}` }, s.status) : el("span", { class: "pill st-none" }, "—")),
        el("table", { class: "kv" }, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, String(v)))))));
    }
    if (!flow.legs.length) box.append(el("div", { class: "empty" }, "No SIP messages in this flow."));
    return box;
  }

  function switchTab(key) {
    tab = key;
    for (const b of tabs.children) {
      b.classList.toggle("on", b.dataset.tab === key);
      b.setAttribute("aria-selected", b.dataset.tab === key ? "true" : "false");
    }
    if (key === "flow") {
      body.replaceChildren(ladderPane, detail);
      if (!ladderPane.firstChild) drawFlow();
      ladderPane.focus({ preventScroll: true });
    } else if (key === "messages") body.replaceChildren(messagesTable());
    else if (key === "qos") body.replaceChildren(qosView());
    else if (key === "summary") body.replaceChildren(summaryView());
    else body.replaceChildren(logsView());
  }
  tabs.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (b) switchTab(b.dataset.tab);
  });

  // Exports.
  svgBtn.addEventListener("click", () => {
    const svg = ladderPane.querySelector("svg.ladder");
    if (!svg) return toast("Nothing to export");
    download(new Blob([standaloneSvg(svg)], { type: "image/svg+xml" }), `${callId}.svg`);
  });
  linkBtn.addEventListener("click", async () => {
    const url = `${location.origin}/call/${enc}${exportQuery}`;
    toast((await copyText(url)) ? "Link copied: the recipient must be logged in" : url);
  });

  const onKey = (e) => {
    if (/^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName || "") || e.ctrlKey || e.metaKey || e.altKey) return;
    const n = Number(e.key);
    if (n >= 1 && n <= TABS.length) return switchTab(TABS[n - 1][0]);
    if (e.key === "Backspace") return history.back();
    if (tab !== "flow") return;
    if (e.key === "ArrowDown" || e.key === "j") {
      e.preventDefault();
      move(1);
    } else if (e.key === "ArrowUp" || e.key === "k") {
      e.preventDefault();
      move(-1);
    } else if (e.key === "Escape") hideDetail();
  };
  document.addEventListener("keydown", onKey);
  switchTab(messages.length || !(flow.qos || []).length ? "flow" : "qos");
  return () => document.removeEventListener("keydown", onKey);
}

/** The ladder as a standalone SVG document: computed colours and fonts inlined, background added. */
function standaloneSvg(svg) {
  const clone = svg.cloneNode(true);
  const props = ["fill", "stroke", "stroke-width", "stroke-dasharray", "font-family", "font-size", "font-weight", "text-anchor", "opacity"];
  const originals = svg.querySelectorAll("*");
  const copies = clone.querySelectorAll("*");
  originals.forEach((o, i) => {
    const cs = getComputedStyle(o);
    copies[i].setAttribute("style", props.map((p) => `${p}:${cs.getPropertyValue(p)}`).join(";"));
  });
  clone.setAttribute("xmlns", SVG_NS);
  const bg = document.createElementNS(SVG_NS, "rect");
  bg.setAttribute("width", "100%");
  bg.setAttribute("height", "100%");
  bg.setAttribute("fill", getComputedStyle(document.body).backgroundColor);
  clone.insertBefore(bg, clone.firstChild);
  for (const hit of clone.querySelectorAll("rect.hit")) hit.remove();
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(clone);
}
