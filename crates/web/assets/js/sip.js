// SIP syntax highlighting: start line (method, Request-URI, status), header names and values,
// URIs and parameters, and the SDP body. Returns HTML with every piece of text escaped.
import { esc } from "./util.js";

// One pass over the raw value: URIs, `;name` parameters, everything else; each piece escaped.
const VALUE_TOKENS = /((?:sips?|tel):[^\s;,>]+)|(;[A-Za-z0-9_.!~*'+-]+=?)|([^;st]+|[\s\S])/g;

function highlightValue(value) {
  let html = "";
  for (const [, uri, param, other] of value.matchAll(VALUE_TOKENS)) {
    if (uri) html += `<span class="h-uri">${esc(uri)}</span>`;
    else if (param) html += `<span class="h-param">${esc(param)}</span>`;
    else html += esc(other);
  }
  return html;
}

/** Highlights a raw SIP message (or any text: non-SIP lines are just escaped). */
export function highlightSip(raw) {
  if (!raw) return "";
  const text = raw.replace(/\r\n/g, "\n");
  const split = text.indexOf("\n\n");
  const head = split >= 0 ? text.slice(0, split) : text;
  const body = split >= 0 ? text.slice(split + 2) : "";
  const lines = head.split("\n");
  const out = [];
  const first = lines[0] || "";
  let m;
  if ((m = /^(SIP\/2\.0)\s+(\d{3})\s*(.*)$/.exec(first))) {
    out.push(`${esc(m[1])} <span class="h-status">${esc(m[2])} ${esc(m[3])}</span>`);
  } else if ((m = /^([A-Z]+)\s+(\S+)\s+(SIP\/2\.0)$/.exec(first))) {
    out.push(`<span class="h-method">${esc(m[1])}</span> <span class="h-uri">${esc(m[2])}</span> ${esc(m[3])}`);
  } else {
    out.push(esc(first));
  }
  for (const line of lines.slice(1)) {
    const c = line.indexOf(":");
    if (c > 0 && !/^\s/.test(line)) {
      out.push(`<span class="h-name">${esc(line.slice(0, c))}</span>:<span class="h-val">${highlightValue(line.slice(c + 1))}</span>`);
    } else {
      out.push(`<span class="h-val">${highlightValue(line)}</span>`);
    }
  }
  let html = out.join("\n");
  if (split >= 0) {
    html += "\n\n";
    html += body
      .split("\n")
      .map((l) => {
        const s = /^([a-z])=(.*)$/.exec(l);
        return s ? `<span class="h-name">${esc(s[1])}</span>=<span class="h-sdp">${esc(s[2])}</span>` : esc(l);
      })
      .join("\n");
  }
  return html;
}
