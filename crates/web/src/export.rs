//! Call exports: PCAP (the SIP messages rebuilt as the packets that carried them), plain text,
//! and the ladder diagram as SVG.
//!
//! # PCAP
//!
//! Classic pcap, Ethernet link type, microsecond timestamps equal to the capture times. Each
//! SIP message becomes one frame with synthetic MAC addresses and real IPv4/IPv6 headers:
//!
//! * UDP (and any transport other than TCP): one UDP datagram carrying the payload as is.
//! * TCP (HEP's TCP, also TLS-protected SIP, which HEP carries decrypted): TCP segments with
//!   PSH|ACK whose sequence and acknowledgement numbers are consistent per connection and
//!   direction (each direction's sequence advances by the bytes sent; the ack is what the
//!   other direction has sent so far), so Wireshark follows the stream and reassembles it.
//!   Messages larger than [`MAX_SEGMENT`] are split into several segments.
//! * Payloads that cannot fit one IP packet over UDP are left out and counted.
//!
//! Checksums (IPv4 header, UDP, TCP) are computed, so tools do not flag the frames.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use capture::{LinkType, PcapWriter, Timestamp, TsResolution};
use store::{Record, StoredMessage};

use crate::aliases::AliasTable;
use crate::query::format_time_us;
use crate::render::{endpoint, has_sdp, repeats, Repeat};

/// Largest TCP segment payload written; larger messages are split.
pub const MAX_SEGMENT: usize = 32 * 1024;

/// Largest UDP payload one IPv4 or IPv6 packet (without jumbograms) can carry.
const MAX_UDP_PAYLOAD_V4: usize = 65_535 - 20 - 8;
const MAX_UDP_PAYLOAD_V6: usize = 65_535 - 8;

const ETH_HEADER: usize = 14;
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// What a PCAP export contains.
#[derive(Debug, Default)]
pub struct PcapExport {
    /// The file.
    pub bytes: Vec<u8>,
    /// Frames written.
    pub packets: usize,
    /// SIP messages left out (too large for one UDP datagram, or a time before 1970/after 2106).
    pub skipped: usize,
}

/// Sum of 16-bit big-endian words, for the Internet checksum.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Builds one Ethernet frame: IP header + transport header + payload.
fn frame(src: IpAddr, dst: IpAddr, proto: u8, transport: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
    let l4_len = transport.len() + payload.len();
    let mut out = Vec::with_capacity(ETH_HEADER + 40 + l4_len);
    out.extend_from_slice(&DST_MAC);
    out.extend_from_slice(&SRC_MAC);
    // Pseudo-header sum for the transport checksum.
    let l4_len16 = u16::try_from(l4_len).ok();
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(20 + l4_len).ok()?;
            out.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = fold(sum16(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&ip);
            let mut p = sum16(&s.octets(), 0);
            p = sum16(&d.octets(), p);
            p.wrapping_add(u32::from(proto))
                .wrapping_add(u32::from(l4_len16?))
        }
        (s, d) => {
            // Mixed families cannot share a header: map IPv4 into IPv6.
            let s6 = match s {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let d6 = match d {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.extend_from_slice(&0x86DDu16.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&l4_len16?.to_be_bytes());
            ip[6] = proto;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s6.octets());
            ip[24..40].copy_from_slice(&d6.octets());
            out.extend_from_slice(&ip);
            let mut p = sum16(&s6.octets(), 0);
            p = sum16(&d6.octets(), p);
            p.wrapping_add(u32::from(proto))
                .wrapping_add(u32::from(l4_len16?))
        }
    };
    let l4_start = out.len();
    out.extend_from_slice(transport);
    out.extend_from_slice(payload);
    let checksum_at = match proto {
        17 => Some(6),
        6 => Some(16),
        _ => None,
    };
    if let Some(at) = checksum_at {
        let l4 = out.get(l4_start..)?;
        let mut c = fold(sum16(l4, pseudo));
        if proto == 17 && c == 0 {
            c = 0xffff;
        }
        out.get_mut(l4_start + at..l4_start + at + 2)?
            .copy_from_slice(&c.to_be_bytes());
    }
    Some(out)
}

fn udp_header(src_port: u16, dst_port: u16, payload_len: usize) -> Option<[u8; 8]> {
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[4..6].copy_from_slice(&u16::try_from(8 + payload_len).ok()?.to_be_bytes());
    Some(h)
}

fn tcp_header(src_port: u16, dst_port: u16, seq: u32, ack: u32) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[8..12].copy_from_slice(&ack.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = 0x18; // PSH | ACK
    h[14..16].copy_from_slice(&65_535u16.to_be_bytes());
    h
}

type Endpoint = (IpAddr, u16);

/// Initial sequence number of one direction of a connection: fixed per endpoint pair so the
/// same export is byte-identical every time.
fn initial_seq(from: Endpoint, to: Endpoint) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (from, to).hash(&mut h);
    (h.finish() & 0x7fff_ffff) as u32
}

/// Whether `records` have SIP messages to export as PCAP; else what they hold instead, as the
/// message of the error answer. Why: the PCAP is rebuilt from SIP messages only (RTCP arrives
/// as the collectors' JSON, not as the packets), and an empty 24-byte file answered with 200
/// looked like a successful export of nothing.
pub fn check_pcap(records: &[StoredMessage]) -> Result<(), String> {
    if records.iter().any(|m| m.record.hep_type == 1) {
        return Ok(());
    }
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for m in records {
        let name = crate::render::proto_name(m.record.hep_type);
        match kinds.iter_mut().find(|(k, _)| *k == name) {
            Some((_, n)) => *n += 1,
            None => kinds.push((name, 1)),
        }
    }
    let held: Vec<String> = kinds
        .iter()
        .map(|(k, n)| {
            format!(
                "{n} {} record{}",
                k.to_uppercase(),
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect();
    Err(format!(
        "no SIP messages in this call to export as PCAP; it has {}: see its flow (QoS and Logs \
         tabs) or /calls/{{callid}}/flow",
        held.join(", ")
    ))
}

/// Writes the SIP messages of `records` (HEP type 1) as a pcap file.
pub fn pcap(records: &[StoredMessage]) -> Result<PcapExport, capture::CaptureError> {
    let mut w = PcapWriter::new(
        Vec::with_capacity(records.len() * 700 + 24),
        LinkType::ETHERNET,
        TsResolution::Micros,
        262_144,
    )?;
    // Next sequence number per direction (from, to).
    let mut next_seq: HashMap<(Endpoint, Endpoint), u32> = HashMap::new();
    let mut packets = 0;
    let mut skipped = 0;
    for m in records.iter().filter(|m| m.record.hep_type == 1) {
        let r = &m.record;
        let ts = Timestamp::from_micros(r.time_us);
        if !(0..=i64::from(u32::MAX)).contains(&ts.secs()) {
            skipped += 1;
            continue;
        }
        let from = (r.src_ip, r.src_port);
        let to = (r.dst_ip, r.dst_port);
        if r.ip_proto == 6 {
            let ack = *next_seq
                .entry((to, from))
                .or_insert_with(|| initial_seq(to, from));
            let seq_slot = next_seq
                .entry((from, to))
                .or_insert_with(|| initial_seq(from, to));
            let chunks: Vec<&[u8]> = if r.raw.is_empty() {
                vec![&[][..]]
            } else {
                r.raw.chunks(MAX_SEGMENT).collect()
            };
            for chunk in chunks {
                let header = tcp_header(r.src_port, r.dst_port, *seq_slot, ack);
                let Some(f) = frame(r.src_ip, r.dst_ip, 6, &header, chunk) else {
                    skipped += 1;
                    continue;
                };
                w.write_packet(ts, u32::try_from(f.len()).unwrap_or(u32::MAX), &f)?;
                packets += 1;
                *seq_slot = seq_slot.wrapping_add(u32::try_from(chunk.len()).unwrap_or(0));
            }
        } else {
            let v4 = r.src_ip.is_ipv4() && r.dst_ip.is_ipv4();
            let max = if v4 {
                MAX_UDP_PAYLOAD_V4
            } else {
                MAX_UDP_PAYLOAD_V6
            };
            let header = udp_header(r.src_port, r.dst_port, r.raw.len());
            let f = header
                .filter(|_| r.raw.len() <= max)
                .and_then(|h| frame(r.src_ip, r.dst_ip, 17, &h, &r.raw));
            let Some(f) = f else {
                skipped += 1;
                continue;
            };
            w.write_packet(ts, u32::try_from(f.len()).unwrap_or(u32::MAX), &f)?;
            packets += 1;
        }
    }
    Ok(PcapExport {
        bytes: w.into_inner(),
        packets,
        skipped,
    })
}

fn transport_label(r: &Record) -> &'static str {
    match r.ip_proto {
        6 => "TCP",
        17 => "UDP",
        132 => "SCTP",
        _ => "IP",
    }
}

/// The call as plain text, one block per SIP message in time order, in the style of
/// `ngrep -W byline` / sngrep's save-as-text: a header line with time, endpoints (and
/// aliases), transport and node, then the message as captured.
pub fn text(records: &[StoredMessage], aliases: &AliasTable) -> String {
    let mut out = String::new();
    for m in records.iter().filter(|m| m.record.hep_type == 1) {
        let r = &m.record;
        let node = r.node.as_deref();
        let name = |ip, port| {
            let e = endpoint(ip, port);
            match aliases.lookup(ip, port, node) {
                Some(a) => format!("{e} ({a})"),
                None => e,
            }
        };
        let _ = writeln!(
            out,
            "{} {} -> {} {}{}",
            format_time_us(r.time_us).unwrap_or_else(|| r.time_us.to_string()),
            name(r.src_ip, r.src_port),
            name(r.dst_ip, r.dst_port),
            transport_label(r),
            node.map(|n| format!(" node {n}")).unwrap_or_default(),
        );
        let body = String::from_utf8_lossy(&r.raw);
        out.push_str(&body.replace("\r\n", "\n"));
        if !body.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Colour of an arrow: requests by method, replies by status class, in the palette of the UI's
/// light theme (`assets/app.css`, `--m-*` and the status colours), as the export is drawn on
/// white.
pub fn arrow_colour(r: &Record) -> &'static str {
    let Some(sip) = &r.sip else {
        return "#59636e";
    };
    match sip.status {
        Some(s) if s < 200 => "#59636e",
        Some(s) if s < 300 => "#1a7f37",
        Some(s) if s < 400 => "#9a6700",
        Some(s) if s < 500 => "#bc4c00",
        Some(_) => "#cf222e",
        None => match sip.method.to_ascii_uppercase().as_str() {
            "INVITE" => "#0969da",
            "ACK" => "#59636e",
            "BYE" => "#cf222e",
            "CANCEL" => "#bc4c00",
            "OPTIONS" => "#1b7c83",
            // REGISTER and the other methods share the UI's violet.
            _ => "#8250df",
        },
    }
}

/// The leg colours of the UI's ladder (`assets/js/flow.js`, `LEG_COLOURS`), in leg order.
pub const LEG_COLOURS: [&str; 8] = [
    "#3b8eea", "#e3b341", "#bc8cff", "#3fb950", "#f0883e", "#56d4dd", "#ff7b72", "#a5d6ff",
];

/// One leg of an exported ladder: its Call-ID and, for a B-leg, the index of its A-leg.
struct SvgLeg<'a> {
    call_id: &'a str,
    a_leg: Option<usize>,
}

/// The legs of the SIP messages in order of first appearance, the way the flow JSON numbers
/// them, with each message's leg index: a leg is a B-leg when its A-leg header or correlation
/// id names another leg's Call-ID.
fn svg_legs<'a>(sip: &[&'a Record]) -> (Vec<SvgLeg<'a>>, Vec<usize>) {
    let mut legs: Vec<SvgLeg<'a>> = Vec::new();
    let mut names: Vec<Vec<&'a str>> = Vec::new();
    let mut of_row = Vec::with_capacity(sip.len());
    for r in sip {
        let call_id = r
            .sip
            .as_ref()
            .and_then(|s| s.call_id.as_deref())
            .unwrap_or(r.sid.as_str());
        let leg = match legs.iter().position(|l| l.call_id == call_id) {
            Some(i) => i,
            None => {
                legs.push(SvgLeg {
                    call_id,
                    a_leg: None,
                });
                names.push(Vec::new());
                legs.len() - 1
            }
        };
        of_row.push(leg);
        let aleg = r.sip.as_ref().and_then(|s| s.aleg_id.as_deref());
        if let Some(list) = names.get_mut(leg) {
            list.extend(aleg.into_iter().chain(r.correlation_id.as_deref()));
        }
    }
    for (i, list) in names.iter().enumerate() {
        let a_leg = list
            .iter()
            .find_map(|n| legs.iter().position(|l| l.call_id == *n))
            .filter(|&a| a != i);
        if let Some(l) = legs.get_mut(i) {
            l.a_leg = a_leg;
        }
    }
    (legs, of_row)
}

fn label(r: &Record) -> String {
    let Some(sip) = &r.sip else {
        return "?".into();
    };
    let mut l = match sip.status {
        Some(status) => {
            let reason = first_line_reason(&r.raw);
            match reason {
                Some(reason) => format!("{status} {reason}"),
                None => status.to_string(),
            }
        }
        None => sip.method.to_string(),
    };
    if let Some(cseq) = &sip.cseq {
        if sip.status.is_some() {
            if let Some((_, m)) = cseq.split_once(' ') {
                l.push_str(&format!(" ({})", m.trim()));
            }
        }
    }
    l
}

/// `text` cut to at most `max` characters (at least 4), the last one `…` when cut.
fn fit_chars(text: &str, max: usize) -> String {
    let max = max.max(4);
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

fn first_line_reason(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = std::str::from_utf8(raw.get(..end)?).ok()?;
    let mut parts = line.splitn(3, ' ');
    parts.next()?;
    parts.next()?;
    parts.next().map(str::to_string)
}

/// The SIP messages of a flow as an SVG ladder diagram: one column per host (`ip:port`, alias
/// above it), one arrow per message in time order with its time, the delta to the previous
/// one and the label; colours by method and status class, dashed arrows for retransmissions,
/// dotted grey for duplicates, a `SDP` tag on messages that carry SDP.
pub fn svg(records: &[StoredMessage], aliases: &AliasTable) -> String {
    let sip: Vec<&Record> = records
        .iter()
        .map(|m| &m.record)
        .filter(|r| r.hep_type == 1)
        .collect();
    // Columns in order of first appearance, with the node that first saw each (for aliases
    // bound to a node).
    let mut hosts: Vec<Endpoint> = Vec::new();
    let mut host_node: Vec<Option<&str>> = Vec::new();
    let mut rows = Vec::with_capacity(sip.len());
    for r in &sip {
        let mut column = |ep: Endpoint| match hosts.iter().position(|h| *h == ep) {
            Some(i) => i,
            None => {
                hosts.push(ep);
                host_node.push(r.node.as_deref());
                hosts.len() - 1
            }
        };
        let s = column((r.src_ip, r.src_port));
        let d = column((r.dst_ip, r.dst_port));
        rows.push((s, d));
    }
    let repeat = repeats(&sip);
    let (legs, leg_of_row) = svg_legs(&sip);
    const LEFT: usize = 170;
    const COL: usize = 200;
    const ROW: usize = 34;
    const LEGEND_ROW: usize = 16;
    // A legend line per leg above the host headers, as the UI's leg chips.
    let legend = LEGEND_ROW * legs.len() + if legs.is_empty() { 0 } else { 6 };
    let top = 70 + legend;
    let width = LEFT + COL * hosts.len().max(1) + 40;
    let height = top + ROW * sip.len() + 30;
    let x_of = |i: usize| LEFT + COL * i + COL / 2;
    let mut out = String::with_capacity(512 + sip.len() * 400);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">"#
    );
    out.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>
<rect width="100%" height="100%" fill="#ffffff"/>
"##,
    );
    for (i, leg) in legs.iter().enumerate() {
        let y = 16 + LEGEND_ROW * i;
        let role = match leg.a_leg {
            Some(a) => format!("B-leg of {}", a + 1),
            None => "A-leg".to_string(),
        };
        let _ = writeln!(
            out,
            r##"<g class="leg" data-leg="{i}"><rect x="8" y="{}" width="10" height="10" fill="{}"/><text x="24" y="{y}" fill="#1f2328">leg {}: {role} · {}</text></g>"##,
            y - 9,
            LEG_COLOURS[i % LEG_COLOURS.len()],
            i + 1,
            xml_escape(leg.call_id)
        );
    }
    for (i, &(ip, port)) in hosts.iter().enumerate() {
        let x = x_of(i);
        let node = host_node.get(i).copied().flatten();
        let alias = aliases.lookup(ip, port, node);
        let address = endpoint(ip, port);
        if let Some(a) = alias {
            let _ = writeln!(
                out,
                r#"<text x="{x}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
                legend + 22,
                xml_escape(a)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{x}" y="{}" text-anchor="middle"{}>{}</text>"#,
            legend + if alias.is_some() { 40 } else { 30 },
            if alias.is_some() {
                ""
            } else {
                r#" font-weight="bold""#
            },
            xml_escape(&address)
        );
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#d0d7de" stroke-width="1" stroke-dasharray="3,3"/>"##,
            top - 14,
            height - 10
        );
    }
    let mut previous: Option<i64> = None;
    for (i, (r, &(s, d))) in sip.iter().zip(&rows).enumerate() {
        let y = top + ROW * i + ROW / 2;
        if let Some(&leg) = leg_of_row.get(i) {
            // The leg bar of the UI's ladder, left of the time.
            let _ = writeln!(
                out,
                r#"<rect class="legbar" x="1" y="{}" width="4" height="22" fill="{}"/>"#,
                y - 14,
                LEG_COLOURS[leg % LEG_COLOURS.len()]
            );
        }
        let time = format_time_us(r.time_us).unwrap_or_default();
        let clock = time.get(11..23).unwrap_or(&time).to_string();
        let delta = previous.map_or(0, |p| r.time_us - p);
        previous = Some(r.time_us);
        let _ = writeln!(
            out,
            r##"<text x="8" y="{}" fill="#1f2328">{}</text><text x="8" y="{}" fill="#59636e" font-size="10">+{:.3} s</text>"##,
            y - 2,
            xml_escape(&clock),
            y + 10,
            delta as f64 / 1e6
        );
        let colour = arrow_colour(r);
        let (dash, stroke) = match repeat.get(i) {
            Some(Repeat::Retransmission(_)) => (r#" stroke-dasharray="6,4""#, colour),
            Some(Repeat::Duplicate(_)) => (r#" stroke-dasharray="2,3""#, "#aaaaaa"),
            _ => ("", colour),
        };
        let (x1, x2) = (x_of(s), x_of(d));
        let mut text = label(r);
        match repeat.get(i) {
            Some(Repeat::Retransmission(_)) => text.push_str(" [retrans]"),
            Some(Repeat::Duplicate(_)) => text.push_str(" [dup]"),
            _ => {}
        }
        if s == d {
            // Same endpoint both ways (a loop through a local proxy): a small loop arrow.
            let _ = writeln!(
                out,
                r#"<path d="M{x1},{} h40 v14 h-40" fill="none" stroke="{stroke}" stroke-width="1.6"{dash} marker-end="url(#arrow)"/>"#,
                y - 7
            );
        } else {
            let _ = writeln!(
                out,
                r#"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{stroke}" stroke-width="1.6"{dash} marker-end="url(#arrow)"/>"#
            );
        }
        let mid = (x1 + x2) / 2;
        // The label stays between the two lifelines (about 7.2 px per character of the 12 px
        // monospace font): a long reason phrase is cut, whole in the tooltip.
        let span = if s == d {
            COL - 20
        } else {
            x1.abs_diff(x2).saturating_sub(14)
        };
        let shown = fit_chars(&text, span * 10 / 72);
        let _ = writeln!(
            out,
            r#"<text x="{mid}" y="{}" text-anchor="middle" fill="{stroke}">{}<title>{}</title></text>"#,
            y - 5,
            xml_escape(&shown),
            xml_escape(&fit_chars(&text, 200))
        );
        if has_sdp(r) {
            let _ = writeln!(
                out,
                r##"<rect x="{}" y="{}" width="26" height="13" rx="3" fill="#9a6700"/><text x="{mid}" y="{}" text-anchor="middle" font-size="10" fill="#ffffff">SDP</text>"##,
                mid - 13,
                y + 3,
                y + 13
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internet_checksum_of_a_known_header() {
        // RFC 1071 example style: a real IPv4 header whose checksum is 0xb861.
        let header: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum16(&header, 0)), 0xb861);
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("<a&\"b'>"), "&lt;a&amp;&quot;b&#39;&gt;");
    }

    fn message(time_us: i64, call_id: &str, start: &str, src: u16, dst: u16) -> StoredMessage {
        let raw = format!("{start}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\r\n");
        let status: Option<u16> = start
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok());
        let fields = store::SipFields {
            method: status.map_or_else(|| "INVITE".into(), |s| s.to_string().into()),
            is_request: status.is_none(),
            status,
            cseq: Some("1 INVITE".into()),
            cseq_method: Some("INVITE".into()),
            call_id: Some(call_id.into()),
            ..store::SipFields::default()
        };
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        StoredMessage {
            id: time_us,
            record: Record {
                time_us,
                received_us: time_us,
                hep_type: 1,
                hep_version: 3,
                ip_family: 2,
                ip_proto: 17,
                src_ip: ip,
                src_port: src,
                dst_ip: ip,
                dst_port: dst,
                capture_id: 1,
                node: None,
                correlation_id: (call_id == "b").then(|| "a".to_string()),
                sid: call_id.into(),
                profile: store::Profile::Call,
                sip: Some(fields),
                payload_json: None,
                raw: raw.into_bytes(),
            },
        }
    }

    #[test]
    fn svg_marks_legs_and_keeps_labels_between_lifelines() {
        let records = vec![
            message(1, "a", "INVITE sip:b@x SIP/2.0", 1, 2),
            message(2, "b", "INVITE sip:c@x SIP/2.0", 3, 4),
            message(
                3,
                "a",
                "SIP/2.0 100 trying -- your call is important to us",
                2,
                1,
            ),
        ];
        let svg = svg(&records, &AliasTable::default());
        assert!(svg.contains("leg 1: A-leg · a"), "{svg}");
        assert!(svg.contains("leg 2: B-leg of 1 · b"), "{svg}");
        assert_eq!(svg.matches(LEG_COLOURS[0]).count(), 3, "legend + 2 bars");
        assert_eq!(svg.matches(LEG_COLOURS[1]).count(), 2, "legend + 1 bar");
        // Adjacent columns are 200 px apart: 25 characters fit; the tooltip has all of it.
        assert!(svg.contains(">100 trying -- your call…<title>100 trying -- your call is important to us (INVITE)</title>"), "{svg}");
        assert!(svg.contains("#0969da"), "INVITE in the UI's blue");
    }

    #[test]
    fn labels_fit() {
        assert_eq!(fit_chars("INVITE", 25), "INVITE");
        assert_eq!(fit_chars("abcdef", 4), "abc…");
        assert_eq!(fit_chars("äöüäöü", 5), "äöüä…");
        assert_eq!(fit_chars("abcdef", 0), "abc…");
        assert_eq!(
            fit_chars("ab  cdef", 5),
            "ab…",
            "no space before the ellipsis"
        );
    }
}
