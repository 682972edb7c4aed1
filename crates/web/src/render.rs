//! The JSON shapes of the API: message items, call rows and the call flow (documented in the
//! crate docs).

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine;
use payload::quality::{self, QualityOptions};
use payload::Parsed;
use serde_json::{json, Map, Value};
use store::{CallSummary, StoredMessage};

use crate::aliases::AliasTable;
use crate::query::format_time_us;

/// Name of a HEP proto type as the `proto` field shows it.
pub fn proto_name(hep_type: u8) -> String {
    let known = match hep_type {
        1 => "sip",
        2 => "xmpp",
        3 => "sdp",
        4 => "rtp",
        5 => "rtcp",
        6 => "mgcp",
        7 => "megaco",
        8 => "m2ua",
        9 => "m3ua",
        10 => "iax",
        11 => "h322",
        12 => "h321",
        13 => "m2pa",
        34 => "mos_full",
        35 => "mos_short",
        38 => "horaclifix",
        50 => "sip_json",
        53 => "dns",
        54 => "isup",
        55 => "rtsp",
        56 => "diameter",
        57 => "gsm_map",
        58 => "rtcp_pion",
        60 => "cdr",
        61 => "verto",
        100 => "log",
        126 => "janus",
        133 => "mediasoup",
        other => return format!("hep_{other}"),
    };
    known.to_string()
}

/// Name of an IP protocol number as the `transport` field shows it.
pub fn transport_name(ip_proto: u8) -> String {
    match ip_proto {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        132 => "sctp".to_string(),
        other => format!("ip_{other}"),
    }
}

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

fn time_value(us: i64) -> Value {
    opt(format_time_us(us))
}

/// `ip:port`, with brackets for IPv6.
pub fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// One message as the API shows it: a flat object, every key always present (null when it
/// does not apply), except `raw_base64`, present only when the raw payload is not UTF-8.
pub fn message_json(m: &StoredMessage) -> Map<String, Value> {
    let r = &m.record;
    let mut o = Map::new();
    o.insert("id".into(), m.id.into());
    o.insert("time".into(), time_value(r.time_us));
    o.insert("time_us".into(), r.time_us.into());
    o.insert("received_us".into(), r.received_us.into());
    o.insert("hep_type".into(), r.hep_type.into());
    o.insert("hep_version".into(), r.hep_version.into());
    o.insert("proto".into(), proto_name(r.hep_type).into());
    o.insert("src_ip".into(), r.src_ip.to_string().into());
    o.insert("src_port".into(), r.src_port.into());
    o.insert("dst_ip".into(), r.dst_ip.to_string().into());
    o.insert("dst_port".into(), r.dst_port.into());
    o.insert("transport".into(), transport_name(r.ip_proto).into());
    o.insert("node".into(), opt(r.node.clone()));
    o.insert("capture_id".into(), r.capture_id.into());
    o.insert("correlation_id".into(), opt(r.correlation_id.clone()));
    o.insert("sid".into(), r.sid.clone().into());
    o.insert("profile".into(), r.profile.as_str().into());

    let sip = r.sip.as_ref();
    let text = |f: fn(&store::SipFields) -> &Option<store::CompactString>| {
        opt(sip.and_then(|s| f(s).as_deref()))
    };
    o.insert(
        "method".into(),
        opt(sip.map(|s| s.method.as_str()).filter(|m| !m.is_empty())),
    );
    o.insert("is_request".into(), opt(sip.map(|s| s.is_request)));
    o.insert("status".into(), opt(sip.and_then(|s| s.status)));
    o.insert("cseq".into(), text(|s| &s.cseq));
    o.insert("cseq_method".into(), text(|s| &s.cseq_method));
    o.insert("callid".into(), text(|s| &s.call_id));
    o.insert("ruri_user".into(), text(|s| &s.ruri_user));
    o.insert("ruri_domain".into(), text(|s| &s.ruri_domain));
    o.insert("from_user".into(), text(|s| &s.from_user));
    o.insert("from_domain".into(), text(|s| &s.from_domain));
    o.insert("from_tag".into(), text(|s| &s.from_tag));
    o.insert("to_user".into(), text(|s| &s.to_user));
    o.insert("to_domain".into(), text(|s| &s.to_domain));
    o.insert("to_tag".into(), text(|s| &s.to_tag));
    o.insert("contact_user".into(), text(|s| &s.contact_user));
    o.insert("pid_user".into(), text(|s| &s.pid_user));
    o.insert("auth_user".into(), text(|s| &s.auth_user));
    o.insert("user_agent".into(), text(|s| &s.user_agent));
    o.insert("server".into(), text(|s| &s.server));
    o.insert("reason".into(), text(|s| &s.reason));
    o.insert("content_type".into(), text(|s| &s.content_type));
    o.insert("via_branch".into(), text(|s| &s.via_branch));
    o.insert("aleg_id".into(), text(|s| &s.aleg_id));
    let mut custom = Map::new();
    for (name, value) in sip.map(|s| &s.custom_headers[..]).unwrap_or(&[]) {
        // A header configured once but present several times: values joined as SIP would.
        match custom.get_mut(name) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(value);
            }
            _ => {
                custom.insert(name.clone(), value.clone().into());
            }
        }
    }
    o.insert("custom_headers".into(), Value::Object(custom));
    o.insert(
        "sdp_media".into(),
        sip.map(|s| s.sdp_media.clone()).unwrap_or_default().into(),
    );

    let payload = r.payload_json.as_deref().map(|text| {
        serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_string()))
    });
    o.insert("payload".into(), opt(payload));
    match std::str::from_utf8(&r.raw) {
        Ok(text) => {
            o.insert("raw".into(), text.into());
        }
        Err(_) => {
            o.insert(
                "raw".into(),
                String::from_utf8_lossy(&r.raw).into_owned().into(),
            );
            o.insert(
                "raw_base64".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(&r.raw)
                    .into(),
            );
        }
    }
    o
}

/// One call row: the store's [`CallSummary`] with RFC 3339 times next to the µs values, and
/// the aliases of its first message's addresses (`src_alias`, `dst_alias`).
pub fn call_json(c: &CallSummary, aliases: &AliasTable) -> Value {
    let alias = |ip: Option<IpAddr>| ip.and_then(|ip| aliases.lookup_ip(ip)).map(str::to_string);
    json!({
        "src_alias": alias(c.src_ip),
        "dst_alias": alias(c.dst_ip),
        "call_id": c.call_id,
        "correlation_id": c.correlation_id,
        "start": format_time_us(c.start_us),
        "start_us": c.start_us,
        "end": format_time_us(c.end_us),
        "end_us": c.end_us,
        "method": c.method,
        "from_user": c.from_user,
        "to_user": c.to_user,
        "ruri_user": c.ruri_user,
        "src_ip": c.src_ip.map(|ip| ip.to_string()),
        "dst_ip": c.dst_ip.map(|ip| ip.to_string()),
        "status": c.status,
        "duration_ms": c.duration_ms,
        "message_count": c.message_count,
        "nodes": c.nodes,
    })
}

/// What a leg collects while the flow is built.
struct LegAcc {
    call_id: String,
    correlation_id: Option<String>,
    aleg_id: Option<String>,
    first_request: Option<usize>,
    first_us: i64,
    last_us: i64,
    status: Option<u16>,
    message_count: u64,
}

struct HostAcc {
    ip: IpAddr,
    port: u16,
    nodes: Vec<String>,
}

/// Finds or adds the host `ip:port`, returning its index.
fn host_index(
    hosts: &mut Vec<HostAcc>,
    by_addr: &mut HashMap<(IpAddr, u16), usize>,
    ip: IpAddr,
    port: u16,
    node: Option<&str>,
) -> usize {
    let i = *by_addr.entry((ip, port)).or_insert_with(|| {
        hosts.push(HostAcc {
            ip,
            port,
            nodes: Vec::new(),
        });
        hosts.len() - 1
    });
    if let (Some(node), Some(h)) = (node, hosts.get_mut(i)) {
        if !h.nodes.iter().any(|n| n == node) {
            h.nodes.push(node.to_string());
        }
    }
    i
}

/// Two captures of the same bytes between the same endpoints closer than this are one packet
/// seen twice (a duplicate); farther apart, the sender sent it again (a retransmission: SIP's
/// shortest retransmission interval, T1, is 500 ms by default).
pub const DUPLICATE_WINDOW_US: i64 = 10_000;

/// Whether a SIP message carries SDP: an `application/sdp` body (also a part of a multipart
/// body, whatever the spelling of its Content-Type header), or SDP media addresses found by the
/// indexer. The body is read by `sip` (`SipMessage::sdp`), the one SDP reader.
pub fn has_sdp(r: &store::Record) -> bool {
    let Some(sip) = &r.sip else {
        return false;
    };
    if !sip.sdp_media.is_empty() {
        return true;
    }
    sip.content_type.is_some() && sip::index(&r.raw).sdp.is_some()
}

/// Adds `src_alias` and `dst_alias` (name or null) to a message item.
pub fn add_aliases(o: &mut Map<String, Value>, r: &store::Record, aliases: &AliasTable) {
    let node = r.node.as_deref();
    o.insert(
        "src_alias".into(),
        opt(aliases
            .lookup(r.src_ip, r.src_port, node)
            .map(str::to_string)),
    );
    o.insert(
        "dst_alias".into(),
        opt(aliases
            .lookup(r.dst_ip, r.dst_port, node)
            .map(str::to_string)),
    );
}

/// How a SIP message of a flow repeats an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// First time these bytes went between these endpoints.
    Original,
    /// Sent again later (index of the first copy).
    Retransmission(usize),
    /// The same packet captured twice (index of the first copy).
    Duplicate(usize),
}

/// Classifies each record (same order) as original, retransmission or duplicate: byte-identical
/// payload between the same endpoints as an earlier record; a duplicate when captured within
/// [`DUPLICATE_WINDOW_US`] of it or by another node, else a retransmission.
pub fn repeats(records: &[&store::Record]) -> Vec<Repeat> {
    use std::hash::{Hash, Hasher};
    let mut first: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (r.src_ip, r.src_port, r.dst_ip, r.dst_port, &r.raw).hash(&mut h);
        let slot = first.entry(h.finish()).or_default();
        let earlier = slot.iter().copied().find(|&j| {
            records.get(j).is_some_and(|e| {
                e.raw == r.raw
                    && (e.src_ip, e.src_port, e.dst_ip, e.dst_port)
                        == (r.src_ip, r.src_port, r.dst_ip, r.dst_port)
            })
        });
        out.push(match earlier.and_then(|j| Some((j, records.get(j)?))) {
            Some((j, e)) => {
                if r.time_us.saturating_sub(e.time_us) < DUPLICATE_WINDOW_US || e.node != r.node {
                    Repeat::Duplicate(j)
                } else {
                    Repeat::Retransmission(j)
                }
            }
            None => {
                slot.push(i);
                Repeat::Original
            }
        });
    }
    out
}

/// Builds `{legs, hosts, messages, qos, logs, events, truncated}` from the store's call flow
/// (any order; sorted here oldest first). At most `max_messages` records are used.
pub fn flow_json(records: Vec<StoredMessage>, max_messages: usize) -> Value {
    flow_json_with(records, max_messages, &AliasTable::default())
}

/// [`flow_json`] with aliases applied to the hosts and messages.
pub fn flow_json_with(
    mut records: Vec<StoredMessage>,
    max_messages: usize,
    aliases: &AliasTable,
) -> Value {
    records.sort_by_key(|m| (m.record.time_us, m.id));
    let truncated = records.len() > max_messages;
    records.truncate(max_messages);

    // Legs and hosts come from the SIP messages.
    let mut legs: Vec<LegAcc> = Vec::new();
    let mut leg_by_call: HashMap<String, usize> = HashMap::new();
    let mut hosts: Vec<HostAcc> = Vec::new();
    let mut host_by_addr: HashMap<(IpAddr, u16), usize> = HashMap::new();
    let mut sip_rows: Vec<(usize, usize, usize, usize)> = Vec::new(); // record, leg, src, dst

    for (i, m) in records.iter().enumerate() {
        let r = &m.record;
        if r.hep_type != 1 {
            continue;
        }
        let call_id = r
            .sip
            .as_ref()
            .and_then(|s| s.call_id.as_deref())
            .map_or_else(|| r.sid.clone(), String::from);
        let leg = *leg_by_call.entry(call_id.clone()).or_insert_with(|| {
            legs.push(LegAcc {
                call_id,
                correlation_id: None,
                aleg_id: None,
                first_request: None,
                first_us: r.time_us,
                last_us: r.time_us,
                status: None,
                message_count: 0,
            });
            legs.len() - 1
        });
        let Some(acc) = legs.get_mut(leg) else {
            continue;
        };
        acc.message_count += 1;
        acc.last_us = acc.last_us.max(r.time_us);
        acc.first_us = acc.first_us.min(r.time_us);
        if acc.correlation_id.is_none() {
            acc.correlation_id = r.correlation_id.clone().filter(|c| !c.is_empty());
        }
        if let Some(sip) = &r.sip {
            if acc.aleg_id.is_none() {
                acc.aleg_id = sip
                    .aleg_id
                    .as_deref()
                    .filter(|a| !a.is_empty())
                    .map(String::from);
            }
            if sip.is_request && acc.first_request.is_none() {
                acc.first_request = Some(i);
            }
        }
        let node = r.node.as_deref();
        let src = host_index(&mut hosts, &mut host_by_addr, r.src_ip, r.src_port, node);
        let dst = host_index(&mut hosts, &mut host_by_addr, r.dst_ip, r.dst_port, node);
        sip_rows.push((i, leg, src, dst));
    }

    // Final status: the last final reply answering the leg's first request method.
    for m in &records {
        let Some(sip) = m.record.sip.as_ref().filter(|s| !s.is_request) else {
            continue;
        };
        let Some(status) = sip.status.filter(|s| *s >= 200) else {
            continue;
        };
        let Some(&leg) = sip.call_id.as_deref().and_then(|c| leg_by_call.get(c)) else {
            continue;
        };
        let Some(acc) = legs.get_mut(leg) else {
            continue;
        };
        let initial_method = acc
            .first_request
            .and_then(|i| records.get(i))
            .and_then(|f| f.record.sip.as_ref())
            .map(|s| s.method.as_str());
        let answers = match (initial_method, sip.cseq_method.as_deref()) {
            (Some(initial), Some(cseq)) => initial.eq_ignore_ascii_case(cseq),
            // Without the request or the CSeq method, any final reply is the best guess.
            _ => true,
        };
        if answers {
            acc.status = Some(status);
        }
    }

    // Which legs are B-legs: their A-leg header or correlation id names another leg.
    let a_leg_of = |acc: &LegAcc| -> Option<usize> {
        [acc.aleg_id.as_ref(), acc.correlation_id.as_ref()]
            .into_iter()
            .flatten()
            .filter(|id| **id != acc.call_id)
            .find_map(|id| leg_by_call.get(id).copied())
    };
    let legs_json: Vec<Value> = legs
        .iter()
        .enumerate()
        .map(|(index, acc)| {
            let first = acc
                .first_request
                .and_then(|i| records.get(i))
                .and_then(|m| m.record.sip.as_ref());
            let a_leg = a_leg_of(acc).filter(|&a| a != index);
            json!({
                "index": index,
                "call_id": acc.call_id,
                "correlation_id": acc.correlation_id,
                "aleg_id": acc.aleg_id,
                "role": if a_leg.is_some() { "b-leg" } else { "a-leg" },
                "a_leg": a_leg,
                "method": first.map(|s| s.method.clone()),
                "from_user": first.and_then(|s| s.from_user.clone()),
                "to_user": first.and_then(|s| s.to_user.clone()),
                "ruri_user": first.and_then(|s| s.ruri_user.clone()),
                "first_time": format_time_us(acc.first_us),
                "first_us": acc.first_us,
                "last_time": format_time_us(acc.last_us),
                "last_us": acc.last_us,
                "status": acc.status,
                "message_count": acc.message_count,
            })
        })
        .collect();

    let hosts_json: Vec<Value> = hosts
        .iter()
        .enumerate()
        .map(|(index, h)| {
            // The alias of the host as any of its nodes saw it, else node-independent.
            let alias = h
                .nodes
                .iter()
                .find_map(|n| aliases.lookup(h.ip, h.port, Some(n)))
                .or_else(|| aliases.lookup(h.ip, h.port, None));
            let address = endpoint(h.ip, h.port);
            json!({
                "index": index,
                "ip": h.ip.to_string(),
                "port": h.port,
                "address": address,
                "alias": alias,
                "label": alias.map_or(address.clone(), str::to_string),
                "nodes": h.nodes,
            })
        })
        .collect();

    let sip_records: Vec<&store::Record> = sip_rows
        .iter()
        .filter_map(|&(i, ..)| records.get(i).map(|m| &m.record))
        .collect();
    let repeat = repeats(&sip_records);
    let start_us = sip_records.first().map_or(0, |r| r.time_us);
    let mut previous_us: Option<i64> = None;
    let messages: Vec<Value> = sip_rows
        .iter()
        .enumerate()
        .filter_map(|(index, &(i, leg, src, dst))| {
            let m = records.get(i)?;
            let r = &m.record;
            let mut o = message_json(m);
            add_aliases(&mut o, r, aliases);
            o.insert("index".into(), index.into());
            o.insert("leg".into(), leg.into());
            o.insert("src_host".into(), src.into());
            o.insert("dst_host".into(), dst.into());
            o.insert(
                "delta_us".into(),
                previous_us.map_or(0, |p| r.time_us - p).into(),
            );
            o.insert("offset_us".into(), (r.time_us - start_us).into());
            previous_us = Some(r.time_us);
            let (retransmission, duplicate, original) = match repeat.get(index) {
                Some(Repeat::Retransmission(j)) => (true, false, Value::from(*j)),
                Some(Repeat::Duplicate(j)) => (false, true, Value::from(*j)),
                _ => (false, false, Value::Null),
            };
            o.insert("retransmission".into(), retransmission.into());
            o.insert("duplicate".into(), duplicate.into());
            o.insert("repeat_of".into(), original);
            o.insert("sdp".into(), has_sdp(r).into());
            Some(Value::Object(o))
        })
        .collect();
    let window = match (records.first(), records.last()) {
        (Some(a), Some(b)) => json!({
            "from": format_time_us(a.record.time_us),
            "from_us": a.record.time_us,
            "to": format_time_us(b.record.time_us),
            "to_us": b.record.time_us,
        }),
        _ => Value::Null,
    };

    // Non-SIP records are tied to a leg by sid, else by correlation id.
    let leg_of_record = |m: &StoredMessage| -> Value {
        let r = &m.record;
        std::iter::once(Some(&r.sid))
            .chain(std::iter::once(r.correlation_id.as_ref()))
            .flatten()
            .find_map(|id| leg_by_call.get(id).copied())
            .map_or(Value::Null, Value::from)
    };

    let mut qos = Vec::new();
    let mut logs = Vec::new();
    let mut events = Vec::new();
    for m in records.iter().filter(|m| m.record.hep_type != 1) {
        let leg = leg_of_record(m);
        match m.record.hep_type {
            5 => qos.extend(qos_rows(m, &leg)),
            100 => logs.push(log_row(m, leg)),
            _ => {
                let mut o = message_json(m);
                o.insert("leg".into(), leg);
                events.push(Value::Object(o));
            }
        }
    }

    let qos_streams = qos_streams(&qos);
    json!({
        "legs": legs_json,
        "hosts": hosts_json,
        "messages": messages,
        "qos": qos,
        "qos_streams": qos_streams,
        "logs": logs,
        "events": events,
        "window": window,
        "truncated": truncated,
    })
}

/// min / avg / max of the non-null values, or null when there are none.
fn stats(values: &[f64]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = values.iter().sum::<f64>() / values.len() as f64;
    json!({"min": min, "avg": avg, "max": max, "count": values.len()})
}

/// Groups the QoS rows into streams for the charts: one per (kind, reporter SSRC, source
/// SSRC) — the media of `source_ssrc` as `ssrc` reports it — with the points over time and
/// min/avg/max of jitter (ms), loss (%) and MOS. RTCP report blocks and XR VoIP metrics stay
/// separate streams because they measure differently (interval vs. call-so-far).
pub fn qos_streams(rows: &[Value]) -> Vec<Value> {
    struct Acc {
        first: usize,
        points: Vec<Value>,
        jitter: Vec<f64>,
        loss: Vec<f64>,
        mos: Vec<f64>,
    }
    let mut order: Vec<(String, u64, u64)> = Vec::new();
    let mut accs: HashMap<(String, u64, u64), Acc> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let kind = row["kind"].as_str().unwrap_or_default();
        if kind != "report_block" && kind != "voip_metrics" {
            continue;
        }
        let key = (
            kind.to_string(),
            row["ssrc"].as_u64().unwrap_or(0),
            row["source_ssrc"].as_u64().unwrap_or(0),
        );
        let acc = accs.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Acc {
                first: i,
                points: Vec::new(),
                jitter: Vec::new(),
                loss: Vec::new(),
                mos: Vec::new(),
            }
        });
        let (jitter, loss) = if kind == "report_block" {
            (
                row["jitter_ms"].as_f64(),
                row["fraction_lost_percent"].as_f64(),
            )
        } else {
            (None, row["loss_percent"].as_f64())
        };
        let mos = row["mos"].as_f64();
        acc.jitter.extend(jitter);
        acc.loss.extend(loss);
        acc.mos.extend(mos);
        acc.points.push(json!({
            "time_us": row["time_us"],
            "time": row["time"],
            "jitter_ms": jitter,
            "loss_percent": loss,
            "packets_lost": row.get("packets_lost").cloned().unwrap_or(Value::Null),
            "mos": mos,
            "rtt_ms": row.get("rtt_ms").or_else(|| row.get("round_trip_delay_ms")).cloned().unwrap_or(Value::Null),
        }));
    }
    order
        .into_iter()
        .filter_map(|key| {
            let acc = accs.remove(&key)?;
            let first = rows.get(acc.first)?;
            Some(json!({
                "kind": key.0,
                "ssrc": key.1,
                "source_ssrc": key.2,
                "src_ip": first["src_ip"],
                "src_port": first["src_port"],
                "dst_ip": first["dst_ip"],
                "dst_port": first["dst_port"],
                "node": first["node"],
                "leg": first["leg"],
                "jitter_ms": stats(&acc.jitter),
                "loss_percent": stats(&acc.loss),
                "mos": stats(&acc.mos),
                "points": acc.points,
            }))
        })
        .collect()
}

/// The fields every QoS and log row starts with.
fn envelope(m: &StoredMessage, leg: &Value) -> Map<String, Value> {
    let r = &m.record;
    let mut o = Map::new();
    o.insert("id".into(), m.id.into());
    o.insert("time".into(), time_value(r.time_us));
    o.insert("time_us".into(), r.time_us.into());
    o.insert("src_ip".into(), r.src_ip.to_string().into());
    o.insert("src_port".into(), r.src_port.into());
    o.insert("dst_ip".into(), r.dst_ip.to_string().into());
    o.insert("dst_port".into(), r.dst_port.into());
    o.insert("node".into(), opt(r.node.clone()));
    o.insert("correlation_id".into(), opt(r.correlation_id.clone()));
    o.insert("leg".into(), leg.clone());
    o
}

/// QoS rows of one RTCP record: one per report block (`kind: "report_block"`), one per XR
/// VoIP Metrics block (`kind: "voip_metrics"`), one `kind: "report"` for an SR/RR without
/// blocks, or one `kind: "invalid"` with the decoder's error.
fn qos_rows(m: &StoredMessage, leg: &Value) -> Vec<Value> {
    let parsed = payload::parse(5, &m.record.raw);
    let report = match parsed {
        Parsed::Rtcp { report, .. } => report,
        other => {
            let mut o = envelope(m, leg);
            o.insert("kind".into(), "invalid".into());
            let error = match other {
                Parsed::Invalid { error, .. } => error.to_string(),
                other => format!("not RTCP: {}", other.kind()),
            };
            o.insert("error".into(), error.into());
            return vec![Value::Object(o)];
        }
    };
    // The capture time stands in for the report's arrival time, which makes the RFC 3550 RTT
    // computable (A − LSR − DLSR) when the report echoes a sender report.
    let arrival = u64::try_from(m.record.time_us).ok().map(|us| {
        let micros = u32::try_from(us % 1_000_000).unwrap_or(0);
        quality::ntp_middle_32(us / 1_000_000, micros)
    });
    let options = QualityOptions {
        arrival_ntp_middle: arrival,
        ..QualityOptions::default()
    };
    let q = quality::assess(&report, &options);
    let mut rows = Vec::new();
    let mut figures = q.blocks.iter();
    for (reporter, sender_info, blocks) in report.reports() {
        let report_type = if sender_info.is_some() { "sr" } else { "rr" };
        if blocks.is_empty() {
            let mut o = envelope(m, leg);
            o.insert("kind".into(), "report".into());
            o.insert("report_type".into(), report_type.into());
            o.insert("ssrc".into(), reporter.into());
            if let Some(si) = sender_info {
                o.insert("packets".into(), si.packet_count.into());
                o.insert("octets".into(), si.octet_count.into());
            }
            rows.push(Value::Object(o));
            continue;
        }
        for block in blocks {
            // assess() walks reports() in the same order, one figure per block.
            let Some(f) = figures.next() else {
                break;
            };
            let mut o = envelope(m, leg);
            o.insert("kind".into(), "report_block".into());
            o.insert("report_type".into(), report_type.into());
            o.insert("ssrc".into(), reporter.into());
            o.insert("source_ssrc".into(), block.source_ssrc.into());
            o.insert("jitter".into(), block.jitter.into());
            o.insert("jitter_ms".into(), opt(f.jitter_ms));
            o.insert("packets_lost".into(), f.cumulative_lost.into());
            o.insert("fraction_lost".into(), block.fraction_lost.into());
            o.insert(
                "fraction_lost_percent".into(),
                f.fraction_lost_percent.into(),
            );
            o.insert("highest_seq".into(), f.highest_seq.into());
            o.insert("rtt_ms".into(), opt(f.rtt_ms));
            o.insert("r_factor".into(), f.r_factor.into());
            o.insert("mos".into(), f.mos.into());
            rows.push(Value::Object(o));
        }
    }
    for vm in &q.voip_metrics {
        let mut o = envelope(m, leg);
        o.insert("kind".into(), "voip_metrics".into());
        o.insert("ssrc".into(), vm.reporter_ssrc.into());
        o.insert("source_ssrc".into(), vm.source_ssrc.into());
        o.insert("loss_percent".into(), vm.loss_percent.into());
        o.insert("discard_percent".into(), vm.discard_percent.into());
        o.insert("round_trip_delay_ms".into(), vm.round_trip_delay_ms.into());
        o.insert("end_system_delay_ms".into(), vm.end_system_delay_ms.into());
        o.insert("reported_r_factor".into(), opt(vm.reported_r_factor));
        o.insert("reported_mos_lq".into(), opt(vm.reported_mos_lq));
        o.insert("reported_mos_cq".into(), opt(vm.reported_mos_cq));
        o.insert("r_factor".into(), vm.r_factor.into());
        o.insert("mos".into(), vm.mos.into());
        rows.push(Value::Object(o));
    }
    rows
}

/// A log row: envelope + `level` (`ERROR`, `WARNING`, … or null), `text`, `truncated`.
fn log_row(m: &StoredMessage, leg: Value) -> Value {
    let record = payload::log::parse(&m.record.raw);
    let mut o = envelope(m, &leg);
    let level = record
        .level
        .and_then(|l| serde_json::to_value(l).ok())
        .unwrap_or(Value::Null);
    o.insert("level".into(), level);
    o.insert("text".into(), record.text.into());
    o.insert("truncated".into(), record.truncated.into());
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{Profile, Record};

    fn rtcp(time_us: i64, raw: &[u8]) -> StoredMessage {
        StoredMessage {
            id: 7,
            record: Record {
                time_us,
                received_us: time_us,
                hep_type: 5,
                hep_version: 3,
                ip_family: 10,
                ip_proto: 17,
                src_ip: "2001:db8::1".parse().expect("ip"),
                src_port: 7001,
                dst_ip: "2001:db8::2".parse().expect("ip"),
                dst_port: 7003,
                capture_id: 1,
                node: None,
                correlation_id: Some("c1".into()),
                sid: "c1".into(),
                profile: Profile::Default,
                sip: None,
                payload_json: None,
                raw: raw.to_vec(),
            },
        }
    }

    fn sip_with_body(content_type: &str, body: &str) -> Record {
        let raw = format!(
            "INVITE sip:b@example.com SIP/2.0\r\nCall-ID: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut r = rtcp(1, raw.as_bytes()).record;
        r.hep_type = 1;
        r.sip = Some(store::SipFields {
            content_type: Some(content_type.into()),
            ..Default::default()
        });
        r
    }

    #[test]
    fn sdp_is_found_however_the_part_header_is_spelled() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let ct = "multipart/mixed;boundary=b1";
        for part_header in [
            "Content-Type: application/sdp",
            "Content-Type:application/sdp",
            "c: application/sdp",
            "CONTENT-TYPE:  Application/SDP",
        ] {
            let body = format!("--b1\r\n{part_header}\r\n\r\n{sdp}\r\n--b1--\r\n");
            assert!(
                has_sdp(&sip_with_body(ct, &body)),
                "multipart part with {part_header:?}"
            );
        }
        let other = "--b1\r\nContent-Type: application/isup\r\n\r\nxx\r\n--b1--\r\n";
        assert!(!has_sdp(&sip_with_body(ct, other)));
        assert!(has_sdp(&sip_with_body("application/sdp", sdp)));
        assert!(!has_sdp(&sip_with_body("text/plain", "application/sdp")));
    }

    #[test]
    fn names() {
        assert_eq!(proto_name(1), "sip");
        assert_eq!(proto_name(100), "log");
        assert_eq!(proto_name(200), "hep_200");
        assert_eq!(transport_name(132), "sctp");
        assert_eq!(transport_name(99), "ip_99");
        let v6: IpAddr = "::1".parse().expect("ip");
        assert_eq!(endpoint(v6, 5060), "[::1]:5060");
    }

    #[test]
    fn qos_rows_for_rtt_invalid_and_blockless_reports() {
        // Capture time 10 s after the echoed SR's middle-32 NTP time, DLSR 2 s: RTT 8 s.
        let time_us = 1_795_437_022_000_000;
        let a = quality::ntp_middle_32(1_795_437_022, 0);
        let lsr = a.wrapping_sub(10 << 16);
        let report = format!(
            r#"{{"ssrc":1,"type":201,"report_count":1,"report_blocks":[{{"source_ssrc":2,
            "highest_seq_no":100,"fraction_lost":64,"ia_jitter":80,"packets_lost":3,
            "lsr":{lsr},"dlsr":{dlsr}}}]}}"#,
            dlsr = 2u32 << 16
        );
        let rows = qos_rows(&rtcp(time_us, report.as_bytes()), &Value::from(0));
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row["kind"], "report_block");
        assert_eq!(row["report_type"], "rr");
        assert_eq!(row["fraction_lost_percent"], 25.0);
        assert_eq!(row["jitter_ms"], 10.0);
        assert_eq!(row["packets_lost"], 3);
        assert_eq!(row["rtt_ms"], 8000.0);
        assert_eq!(row["src_ip"], "2001:db8::1");
        assert_eq!(row["leg"], 0);
        let mos = row["mos"].as_f64().expect("mos");
        assert!(mos < 4.0, "25 % loss and 4 s one-way delay hurt: {mos}");

        let rows = qos_rows(&rtcp(time_us, b"{not json"), &Value::Null);
        assert_eq!(rows[0]["kind"], "invalid");
        assert!(rows[0]["error"].as_str().is_some());

        let rows = qos_rows(
            &rtcp(
                time_us,
                br#"{"ssrc":9,"type":200,"report_count":0,"report_blocks":[],
              "sender_information":{"packets":5,"octets":800,"ntp_timestamp_sec":1,
              "ntp_timestamp_usec":0,"rtp_timestamp":0}}"#,
            ),
            &Value::Null,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["kind"], "report");
        assert_eq!(rows[0]["report_type"], "sr");
        assert_eq!(rows[0]["packets"], 5);
    }

    #[test]
    fn flow_of_nothing_and_truncation() {
        let flow = flow_json(Vec::new(), 10);
        assert_eq!(flow["legs"], json!([]));
        assert_eq!(flow["truncated"], false);
        let many: Vec<StoredMessage> = (0..5).map(|i| rtcp(i, b"{}")).collect();
        let flow = flow_json(many, 2);
        assert_eq!(flow["truncated"], true);
        assert_eq!(flow["qos"].as_array().expect("qos").len(), 2);
    }
}
