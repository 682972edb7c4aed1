//! The HOMER JSON form of an RTCP report (HEP type 5), as heplify and rtpengine send it, plus
//! documented extensions for the packets that form does not cover. The shape is described in the
//! crate documentation ("RTCP JSON").

use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::xr::{
    DlrrItem, ExtendedReport, RleReport, RxConfig, StatisticsSummary, VoipMetrics, XrBlock,
};
use super::{
    AppPacket, Feedback, FeedbackLayer, Goodbye, ReceiverReport, ReportBlock, RtcpPacket,
    RtcpReport, SdesChunk, SdesItem, SenderInfo, SenderReport, SourceDescription, PT_PSFB, PT_RR,
    PT_RTPFB, PT_SR,
};
use crate::json::JsonError;
use crate::json_tree::{parse_tree, JsonObject, JsonTree};
use crate::wire::{hex, unhex};

/// Why a JSON payload is not an RTCP report.
#[derive(Debug, thiserror::Error)]
pub enum RtcpJsonError {
    /// Not acceptable JSON at all (syntax, size or depth).
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The document is not a JSON object.
    #[error("RTCP JSON must be an object")]
    NotAnObject,
    /// A field is present with a value of the wrong kind or range.
    #[error("RTCP JSON field `{field}`: expected {expected}")]
    BadField {
        /// Path of the field (`report_blocks[0].fraction_lost`).
        field: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// The object has none of the fields that describe an RTCP packet.
    #[error("RTCP JSON describes no packet")]
    NoPackets,
}

/// The HOMER JSON form of `report` (see the crate docs for the shape).
pub fn to_json(report: &RtcpReport) -> Value {
    let mut top = Map::new();
    let mut reports = report.packets.iter().filter(|p| {
        matches!(
            p,
            RtcpPacket::SenderReport(_) | RtcpPacket::ReceiverReport(_)
        )
    });
    if let Some(primary) = reports.next() {
        put_report(&mut top, primary);
    } else if let Some(first) = report.packets.first() {
        // No SR / RR: identify the originator the way heplify does, by the first packet.
        if let Some(ssrc) = first.ssrc() {
            top.insert("ssrc".into(), json!(ssrc));
        }
        top.insert("type".into(), json!(first.packet_type()));
    }
    let extra: Vec<Value> = reports
        .map(|p| {
            let mut m = Map::new();
            put_report(&mut m, p);
            Value::Object(m)
        })
        .collect();

    let mut sdes_chunks = 0usize;
    let mut sdes_items = Vec::new();
    let mut xr = Vec::new();
    let mut heplify_xr = None;
    let mut feedback = Vec::new();
    let mut app = Vec::new();
    let mut bye = Vec::new();
    for packet in &report.packets {
        match packet {
            RtcpPacket::SenderReport(_) | RtcpPacket::ReceiverReport(_) => {}
            RtcpPacket::SourceDescription(sd) => {
                sdes_chunks += sd.chunks.len();
                for chunk in &sd.chunks {
                    if chunk.items.is_empty() {
                        // Keeps an item-less chunk visible (and countable on the way back in).
                        sdes_items.push(json!({ "sdes_chunk_ssrc": chunk.ssrc }));
                    }
                    for item in &chunk.items {
                        let mut m = Map::new();
                        m.insert("sdes_chunk_ssrc".into(), json!(chunk.ssrc));
                        m.insert("type".into(), json!(item.item_type));
                        m.insert("text".into(), json!(item.text));
                        if let Some(prefix) = &item.prefix {
                            m.insert("prefix".into(), json!(prefix));
                        }
                        sdes_items.push(Value::Object(m));
                    }
                }
            }
            RtcpPacket::Goodbye(b) => {
                let mut m = Map::new();
                m.insert("ssrcs".into(), json!(b.ssrcs));
                if let Some(reason) = &b.reason {
                    m.insert("reason".into(), json!(reason));
                }
                bye.push(Value::Object(m));
            }
            RtcpPacket::App(a) => app.push(json!({
                "subtype": a.subtype,
                "ssrc": a.ssrc,
                "name": String::from_utf8_lossy(&a.name),
                "data": hex(&a.data),
            })),
            RtcpPacket::Feedback(fb) => feedback.push(feedback_json(fb)),
            RtcpPacket::ExtendedReport(x) => {
                if heplify_xr.is_none() {
                    heplify_xr = x.blocks.iter().find_map(|b| match b {
                        XrBlock::VoipMetrics(vm) => Some(heplify_voip(vm)),
                        _ => None,
                    });
                }
                xr.push(json!({
                    "ssrc": x.ssrc,
                    "blocks": x.blocks.iter().map(xr_block_json).collect::<Vec<_>>(),
                }));
            }
        }
    }
    if sdes_chunks > 0 {
        top.insert("sdes_report_count".into(), json!(sdes_chunks));
        top.insert("sdes_information".into(), Value::Array(sdes_items));
    }
    if let Some(h) = heplify_xr {
        top.insert("report_blocks_xr".into(), h);
    }
    for (key, list) in [
        ("extra_reports", extra),
        ("xr", xr),
        ("feedback", feedback),
        ("app", app),
        ("bye", bye),
    ] {
        if !list.is_empty() {
            top.insert(key.into(), Value::Array(list));
        }
    }
    Value::Object(top)
}

impl Serialize for RtcpReport {
    /// Serializes as the HOMER JSON form ([`to_json`]); diagnostics are not part of it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        to_json(self).serialize(serializer)
    }
}

fn put_report(m: &mut Map<String, Value>, packet: &RtcpPacket) {
    let (ssrc, sender_info, blocks) = match packet {
        RtcpPacket::SenderReport(sr) => (sr.ssrc, Some(&sr.sender_info), &sr.report_blocks),
        RtcpPacket::ReceiverReport(rr) => (rr.ssrc, None, &rr.report_blocks),
        _ => return,
    };
    if let Some(si) = sender_info {
        m.insert(
            "sender_information".into(),
            json!({
                "ntp_timestamp_sec": si.ntp_seconds,
                "ntp_timestamp_usec": si.ntp_fraction,
                "octets": si.octet_count,
                "rtp_timestamp": si.rtp_timestamp,
                "packets": si.packet_count,
            }),
        );
    }
    m.insert("ssrc".into(), json!(ssrc));
    m.insert("type".into(), json!(packet.packet_type()));
    m.insert("report_count".into(), json!(blocks.len()));
    m.insert(
        "report_blocks".into(),
        Value::Array(
            blocks
                .iter()
                .map(|b| {
                    json!({
                        "source_ssrc": b.source_ssrc,
                        "highest_seq_no": b.highest_seq,
                        "fraction_lost": b.fraction_lost,
                        "ia_jitter": b.jitter,
                        "packets_lost": b.cumulative_lost & 0x00ff_ffff,
                        "lsr": b.lsr,
                        "dlsr": b.dlsr,
                    })
                })
                .collect(),
        ),
    );
}

fn feedback_json(fb: &Feedback) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(fb.layer.packet_type()));
    m.insert("fmt".into(), json!(fb.fmt));
    m.insert("name".into(), json!(fb.name()));
    m.insert("sender_ssrc".into(), json!(fb.sender_ssrc));
    m.insert("media_ssrc".into(), json!(fb.media_ssrc));
    m.insert("fci".into(), json!(hex(&fb.fci)));
    if let Some(n) = fb.nack_lost_packets() {
        m.insert("nack_lost_packets".into(), json!(n));
    }
    if let Some(bps) = fb.remb_bitrate_bps() {
        m.insert("remb_bitrate_bps".into(), json!(bps));
    }
    Value::Object(m)
}

/// heplify's `report_blocks_xr` object (its RTCP_report_block_xr), which heplify-server reads
/// for its RTCP-XR metrics.
fn heplify_voip(vm: &VoipMetrics) -> Value {
    json!({
        "type": 7,
        "id": vm.ssrc,
        "fraction_lost": vm.loss_rate,
        "fraction_discard": vm.discard_rate,
        "burst_density": vm.burst_density,
        "gap_density": vm.gap_density,
        "burst_duration": vm.burst_duration,
        "gap_duration": vm.gap_duration,
        "round_trip_delay": vm.round_trip_delay,
        "end_system_delay": vm.end_system_delay,
    })
}

fn rle_json(rle: &RleReport, received_names: (&str, &str)) -> Map<String, Value> {
    let summary = rle.summary();
    let mut m = Map::new();
    m.insert("ssrc".into(), json!(rle.ssrc));
    m.insert("thinning".into(), json!(rle.thinning));
    m.insert("begin_seq".into(), json!(rle.begin_seq));
    m.insert("end_seq".into(), json!(rle.end_seq));
    m.insert("chunks".into(), json!(rle.chunks));
    m.insert(received_names.0.into(), json!(summary.marked));
    m.insert(received_names.1.into(), json!(summary.unmarked));
    m
}

fn xr_block_json(block: &XrBlock) -> Value {
    let mut m = match block {
        XrBlock::LossRle(rle) => rle_json(rle, ("packets_received", "packets_lost")),
        XrBlock::DuplicateRle(rle) => {
            rle_json(rle, ("packets_duplicated", "packets_not_duplicated"))
        }
        XrBlock::ReceiverReferenceTime {
            ntp_seconds,
            ntp_fraction,
        } => obj(json!({ "ntp_seconds": ntp_seconds, "ntp_fraction": ntp_fraction })),
        XrBlock::Dlrr(items) => obj(json!({
            "items": items.iter().map(|i| json!({
                "ssrc": i.ssrc,
                "last_rr": i.last_rr,
                "delay_since_last_rr": i.delay_since_last_rr,
            })).collect::<Vec<_>>(),
        })),
        XrBlock::StatisticsSummary(s) => obj(json!({
            "ssrc": s.ssrc,
            "loss_reported": s.loss_reported,
            "duplicates_reported": s.duplicates_reported,
            "jitter_reported": s.jitter_reported,
            "ttl_or_hop_limit": s.ttl_or_hop_limit,
            "begin_seq": s.begin_seq,
            "end_seq": s.end_seq,
            "lost_packets": s.lost_packets,
            "dup_packets": s.dup_packets,
            "min_jitter": s.min_jitter,
            "max_jitter": s.max_jitter,
            "mean_jitter": s.mean_jitter,
            "dev_jitter": s.dev_jitter,
            "min_ttl_or_hl": s.min_ttl_or_hl,
            "max_ttl_or_hl": s.max_ttl_or_hl,
            "mean_ttl_or_hl": s.mean_ttl_or_hl,
            "dev_ttl_or_hl": s.dev_ttl_or_hl,
        })),
        XrBlock::VoipMetrics(vm) => obj(json!({
            "ssrc": vm.ssrc,
            "loss_rate": vm.loss_rate,
            "discard_rate": vm.discard_rate,
            "burst_density": vm.burst_density,
            "gap_density": vm.gap_density,
            "burst_duration": vm.burst_duration,
            "gap_duration": vm.gap_duration,
            "round_trip_delay": vm.round_trip_delay,
            "end_system_delay": vm.end_system_delay,
            "signal_level": vm.signal_level,
            "noise_level": vm.noise_level,
            "rerl": vm.rerl,
            "gmin": vm.gmin,
            "r_factor": vm.r_factor,
            "ext_r_factor": vm.ext_r_factor,
            "mos_lq": vm.mos_lq,
            "mos_cq": vm.mos_cq,
            "rx_config": {
                "plc": vm.rx_config.plc,
                "jba": vm.rx_config.jba,
                "jb_rate": vm.rx_config.jb_rate,
            },
            "jb_nominal": vm.jb_nominal,
            "jb_maximum": vm.jb_maximum,
            "jb_abs_max": vm.jb_abs_max,
        })),
        XrBlock::Other {
            type_specific,
            data,
            ..
        } => obj(json!({ "type_specific": type_specific, "data": hex(data) })),
    };
    m.insert("block_type".into(), json!(block.block_type()));
    m.insert("name".into(), json!(block.name()));
    Value::Object(m)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Input

/// Reads the HOMER JSON form (rtpengine's, heplify's, captagent's, or this crate's own) into a
/// typed report.
///
/// Tolerant by design: whitespace anywhere, missing optional fields (they read as 0 / absent),
/// unknown fields (ignored), numbers written as integral floats or numeric strings. The packets
/// are rebuilt in a fixed order: the primary SR / RR, `extra_reports`, one SDES with all
/// chunks, XR, feedback, APP, BYE (without an SR / RR, the first packet of the top-level `type`
/// is moved to the front). The primary report is an SR when `sender_information` is
/// present or `type` is 200, an RR when `type` is 201 or report blocks are present.
pub fn from_json(bytes: &[u8]) -> Result<RtcpReport, RtcpJsonError> {
    let value = parse_tree(bytes)?;
    let top = value.as_object().ok_or(RtcpJsonError::NotAnObject)?;
    let mut packets = Vec::new();

    if let Some(primary) = read_report(top, "")? {
        packets.push(primary);
    }
    for (i, extra) in array(top, "extra_reports", "")?.iter().enumerate() {
        let ctx = format!("extra_reports[{i}].");
        let m = extra
            .as_object()
            .ok_or_else(|| bad(&ctx, "", "an object"))?;
        if let Some(p) = read_report(m, &ctx)? {
            packets.push(p);
        }
    }
    if let Some(sdes) = read_sdes(top)? {
        packets.push(sdes);
    }
    let xr_list = array(top, "xr", "")?;
    if xr_list.is_empty() {
        if let Some(p) = read_compat_xr(top)? {
            packets.push(p);
        }
    }
    for (i, x) in xr_list.iter().enumerate() {
        packets.push(read_xr(x, &format!("xr[{i}]."))?);
    }
    for (i, fb) in array(top, "feedback", "")?.iter().enumerate() {
        packets.push(read_feedback(fb, &format!("feedback[{i}]."))?);
    }
    for (i, a) in array(top, "app", "")?.iter().enumerate() {
        packets.push(read_app(a, &format!("app[{i}]."))?);
    }
    for (i, b) in array(top, "bye", "")?.iter().enumerate() {
        packets.push(read_bye(b, &format!("bye[{i}]."))?);
    }
    if packets.is_empty() {
        return Err(RtcpJsonError::NoPackets);
    }
    let has_report = packets.iter().any(|p| {
        matches!(
            p,
            RtcpPacket::SenderReport(_) | RtcpPacket::ReceiverReport(_)
        )
    });
    if !has_report {
        // Without an SR / RR the top-level `type` names the compound's first packet: put the
        // first packet of that type back in front, so that JSON → report → JSON is stable.
        let first_type: Option<u8> = opt_num(top, "type", "", "an integer 0..=255")?;
        if let Some(pos) =
            first_type.and_then(|t| packets.iter().position(|p| p.packet_type() == t))
        {
            let first = packets.remove(pos);
            packets.insert(0, first);
        }
    }
    Ok(RtcpReport {
        packets,
        diagnostics: Vec::new(),
    })
}

type Obj<'a> = JsonObject<'a>;

fn bad(ctx: &str, key: &str, expected: &'static str) -> RtcpJsonError {
    RtcpJsonError::BadField {
        field: format!("{ctx}{key}"),
        expected,
    }
}

/// A JSON value as a non-negative integer: integers, integral floats and numeric strings.
fn as_u64(v: &JsonTree) -> Option<u64> {
    match v {
        JsonTree::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        }),
        JsonTree::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_i64(v: &JsonTree) -> Option<i64> {
    match v {
        JsonTree::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= i64::MAX as f64)
                .map(|f| f as i64)
        }),
        JsonTree::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An unsigned field; absent or `null` reads as `None`.
fn opt_num<T: TryFrom<u64>>(
    m: &Obj,
    key: &str,
    ctx: &str,
    expected: &'static str,
) -> Result<Option<T>, RtcpJsonError> {
    match m.get(key) {
        None | Some(JsonTree::Null) => Ok(None),
        Some(v) => as_u64(v)
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(ctx, key, expected)),
    }
}

/// An unsigned field that reads as 0 when absent.
fn num<T: TryFrom<u64> + Default>(
    m: &Obj,
    key: &str,
    ctx: &str,
    expected: &'static str,
) -> Result<T, RtcpJsonError> {
    Ok(opt_num(m, key, ctx, expected)?.unwrap_or_default())
}

fn u8f(m: &Obj, key: &str, ctx: &str) -> Result<u8, RtcpJsonError> {
    num(m, key, ctx, "an integer 0..=255")
}

fn u16f(m: &Obj, key: &str, ctx: &str) -> Result<u16, RtcpJsonError> {
    num(m, key, ctx, "an integer 0..=65535")
}

fn u32f(m: &Obj, key: &str, ctx: &str) -> Result<u32, RtcpJsonError> {
    num(m, key, ctx, "an unsigned 32-bit integer")
}

/// A dBm level: -128..=127, or the wire byte 128..=255 as some producers print it unsigned.
fn i8f(m: &Obj, key: &str, ctx: &str) -> Result<i8, RtcpJsonError> {
    match m.get(key) {
        None | Some(JsonTree::Null) => Ok(0),
        Some(v) => as_i64(v)
            .and_then(|n| match n {
                -128..=127 => i8::try_from(n).ok(),
                128..=255 => u8::try_from(n).ok().map(|b| i8::from_be_bytes([b])),
                _ => None,
            })
            .ok_or_else(|| bad(ctx, key, "an integer -128..=255")),
    }
}

fn string(m: &Obj, key: &str, ctx: &str) -> Result<Option<String>, RtcpJsonError> {
    match m.get(key) {
        None | Some(JsonTree::Null) => Ok(None),
        Some(JsonTree::String(s)) => Ok(Some(s.clone().into_owned())),
        Some(_) => Err(bad(ctx, key, "a string")),
    }
}

fn hex_field(m: &Obj, key: &str, ctx: &str) -> Result<Vec<u8>, RtcpJsonError> {
    match string(m, key, ctx)? {
        None => Ok(Vec::new()),
        Some(s) => unhex(&s).ok_or_else(|| bad(ctx, key, "a hex string")),
    }
}

fn array<'a>(m: &'a Obj<'a>, key: &str, ctx: &str) -> Result<&'a [JsonTree<'a>], RtcpJsonError> {
    match m.get(key) {
        None | Some(JsonTree::Null) => Ok(&[]),
        Some(JsonTree::Array(a)) => Ok(a),
        Some(_) => Err(bad(ctx, key, "an array")),
    }
}

fn object<'a>(m: &'a Obj<'a>, key: &str, ctx: &str) -> Result<Option<&'a Obj<'a>>, RtcpJsonError> {
    match m.get(key) {
        None | Some(JsonTree::Null) => Ok(None),
        Some(JsonTree::Object(o)) => Ok(Some(o)),
        Some(_) => Err(bad(ctx, key, "an object")),
    }
}

fn read_report(m: &Obj, ctx: &str) -> Result<Option<RtcpPacket>, RtcpJsonError> {
    let packet_type: Option<u8> = opt_num(m, "type", ctx, "an integer 0..=255")?;
    let sender = object(m, "sender_information", ctx)?;
    let blocks_json = array(m, "report_blocks", ctx)?;
    let is_sr = sender.is_some() || packet_type == Some(PT_SR);
    let is_rr = !is_sr && (packet_type == Some(PT_RR) || !blocks_json.is_empty());
    if !is_sr && !is_rr {
        return Ok(None);
    }
    let ssrc = u32f(m, "ssrc", ctx)?;
    let mut report_blocks = Vec::with_capacity(blocks_json.len().min(31));
    for (i, b) in blocks_json.iter().enumerate() {
        let bctx = format!("{ctx}report_blocks[{i}].");
        let b = b.as_object().ok_or_else(|| bad(&bctx, "", "an object"))?;
        let cumulative_lost = match b.get("packets_lost") {
            None | Some(JsonTree::Null) => 0,
            Some(v) => as_i64(v)
                .filter(|n| (-0x0080_0000..=0x00ff_ffff).contains(n))
                // Negative counts are stored as their 24-bit two's complement, as on the wire.
                .map(|n| (n as u32) & 0x00ff_ffff)
                .ok_or_else(|| bad(&bctx, "packets_lost", "a 24-bit integer"))?,
        };
        report_blocks.push(ReportBlock {
            source_ssrc: u32f(b, "source_ssrc", &bctx)?,
            fraction_lost: u8f(b, "fraction_lost", &bctx)?,
            cumulative_lost,
            highest_seq: u32f(b, "highest_seq_no", &bctx)?,
            jitter: u32f(b, "ia_jitter", &bctx)?,
            lsr: u32f(b, "lsr", &bctx)?,
            dlsr: u32f(b, "dlsr", &bctx)?,
        });
    }
    if is_sr {
        let sctx = format!("{ctx}sender_information.");
        let empty = Obj::default();
        let s = sender.unwrap_or(&empty);
        Ok(Some(RtcpPacket::SenderReport(SenderReport {
            ssrc,
            sender_info: SenderInfo {
                ntp_seconds: u32f(s, "ntp_timestamp_sec", &sctx)?,
                ntp_fraction: u32f(s, "ntp_timestamp_usec", &sctx)?,
                rtp_timestamp: u32f(s, "rtp_timestamp", &sctx)?,
                packet_count: u32f(s, "packets", &sctx)?,
                octet_count: u32f(s, "octets", &sctx)?,
            },
            report_blocks,
        })))
    } else {
        Ok(Some(RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc,
            report_blocks,
        })))
    }
}

fn read_sdes(top: &Obj) -> Result<Option<RtcpPacket>, RtcpJsonError> {
    let items = array(top, "sdes_information", "")?;
    if items.is_empty() {
        return Ok(None);
    }
    let mut chunks: Vec<SdesChunk> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ctx = format!("sdes_information[{i}].");
        let m = item.as_object().ok_or_else(|| bad(&ctx, "", "an object"))?;
        let ssrc = u32f(m, "sdes_chunk_ssrc", &ctx)?;
        // Consecutive items of the same source form one chunk, as they did on the wire.
        let chunk = match chunks.last_mut() {
            Some(c) if c.ssrc == ssrc => c,
            _ => {
                chunks.push(SdesChunk {
                    ssrc,
                    items: Vec::new(),
                });
                chunks
                    .last_mut()
                    .ok_or_else(|| bad(&ctx, "", "an object"))?
            }
        };
        let item_type: Option<u8> = opt_num(m, "type", &ctx, "an integer 0..=255")?;
        if let Some(item_type) = item_type {
            let text = string(m, "text", &ctx)?.unwrap_or_default();
            let prefix = if item_type == 8 {
                Some(string(m, "prefix", &ctx)?.unwrap_or_default())
            } else {
                None
            };
            chunk.items.push(SdesItem {
                item_type,
                prefix,
                text,
            });
        }
    }
    Ok(Some(RtcpPacket::SourceDescription(SourceDescription {
        chunks,
    })))
}

/// heplify's `report_blocks_xr` or captagent's `extended_report_information`, when the
/// document has no `xr` array of its own.
fn read_compat_xr(top: &Obj) -> Result<Option<RtcpPacket>, RtcpJsonError> {
    let reporter = u32f(top, "ssrc", "")?;
    if let Some(h) = object(top, "report_blocks_xr", "")? {
        let ctx = "report_blocks_xr.";
        let block_type: Option<u8> = opt_num(h, "type", ctx, "an integer 0..=255")?;
        let any_value = h.values().any(|v| as_u64(v).is_some_and(|n| n != 0));
        // heplify always sends the object, all zeros (type 0) when there was no XR.
        if block_type == Some(7) || (block_type.is_none() && any_value) {
            let vm = VoipMetrics {
                ssrc: u32f(h, "id", ctx)?,
                loss_rate: u8f(h, "fraction_lost", ctx)?,
                discard_rate: u8f(h, "fraction_discard", ctx)?,
                burst_density: u8f(h, "burst_density", ctx)?,
                gap_density: u8f(h, "gap_density", ctx)?,
                burst_duration: u16f(h, "burst_duration", ctx)?,
                gap_duration: u16f(h, "gap_duration", ctx)?,
                round_trip_delay: u16f(h, "round_trip_delay", ctx)?,
                end_system_delay: u16f(h, "end_system_delay", ctx)?,
                ..unavailable_voip_metrics()
            };
            return Ok(Some(xr_packet(reporter, vm)));
        }
    }
    if let Some(c) = object(top, "extended_report_information", "")? {
        let ctx = "extended_report_information.";
        let no_rx = Obj::default();
        let rx = array(c, "RX_conf", ctx)?
            .first()
            .and_then(JsonTree::as_object)
            .unwrap_or(&no_rx);
        let vm = VoipMetrics {
            ssrc: u32f(c, "identifier", ctx)?,
            loss_rate: u8f(c, "loss_rate", ctx)?,
            discard_rate: u8f(c, "discard_rate", ctx)?,
            burst_density: u8f(c, "burst_rate", ctx)?,
            gap_density: u8f(c, "gap_rate", ctx)?,
            burst_duration: u16f(c, "burst_duration", ctx)?,
            gap_duration: u16f(c, "gap_duration", ctx)?,
            round_trip_delay: u16f(c, "round_trip_delay", ctx)?,
            end_system_delay: u16f(c, "end_sys_delay", ctx)?,
            signal_level: i8f(c, "signal_lev", ctx)?,
            noise_level: i8f(c, "noise_lev", ctx)?,
            rerl: u8f(c, "RERL", ctx)?,
            gmin: u8f(c, "Gmin", ctx)?,
            r_factor: u8f(c, "R_fact", ctx)?,
            ext_r_factor: u8f(c, "ext_R_fact", ctx)?,
            mos_lq: u8f(c, "MOS_LQ", ctx)?,
            mos_cq: u8f(c, "MOS_CQ", ctx)?,
            rx_config: RxConfig {
                plc: u8f(rx, "PLC", ctx)?,
                jba: u8f(rx, "JB_adapt", ctx)?,
                jb_rate: u8f(rx, "JB_rate", ctx)?,
            },
            jb_nominal: u16f(c, "JB_nom", ctx)?,
            jb_maximum: u16f(c, "JB_max", ctx)?,
            jb_abs_max: u16f(c, "JB_abs_max", ctx)?,
        };
        return Ok(Some(xr_packet(reporter, vm)));
    }
    Ok(None)
}

/// VoIP metrics whose quality fields say "unavailable", for sources that only send a subset.
fn unavailable_voip_metrics() -> VoipMetrics {
    use super::xr::UNAVAILABLE;
    VoipMetrics {
        signal_level: 127,
        noise_level: 127,
        rerl: UNAVAILABLE,
        r_factor: UNAVAILABLE,
        ext_r_factor: UNAVAILABLE,
        mos_lq: UNAVAILABLE,
        mos_cq: UNAVAILABLE,
        ..VoipMetrics::default()
    }
}

fn xr_packet(ssrc: u32, vm: VoipMetrics) -> RtcpPacket {
    RtcpPacket::ExtendedReport(ExtendedReport {
        ssrc,
        blocks: vec![XrBlock::VoipMetrics(vm)],
    })
}

fn read_xr(v: &JsonTree, ctx: &str) -> Result<RtcpPacket, RtcpJsonError> {
    let m = v.as_object().ok_or_else(|| bad(ctx, "", "an object"))?;
    let ssrc = u32f(m, "ssrc", ctx)?;
    let mut blocks = Vec::new();
    for (i, b) in array(m, "blocks", ctx)?.iter().enumerate() {
        let bctx = format!("{ctx}blocks[{i}].");
        let b = b.as_object().ok_or_else(|| bad(&bctx, "", "an object"))?;
        blocks.push(read_xr_block(b, &bctx)?);
    }
    Ok(RtcpPacket::ExtendedReport(ExtendedReport { ssrc, blocks }))
}

fn read_rle(b: &Obj, ctx: &str) -> Result<RleReport, RtcpJsonError> {
    let chunks = array(b, "chunks", ctx)?
        .iter()
        .map(|c| {
            as_u64(c)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| bad(ctx, "chunks", "an array of 16-bit integers"))
        })
        .collect::<Result<Vec<u16>, _>>()?;
    Ok(RleReport {
        ssrc: u32f(b, "ssrc", ctx)?,
        thinning: u8f(b, "thinning", ctx)? & 0x0f,
        begin_seq: u16f(b, "begin_seq", ctx)?,
        end_seq: u16f(b, "end_seq", ctx)?,
        chunks,
    })
}

fn bool_field(b: &Obj, key: &str, ctx: &str) -> Result<bool, RtcpJsonError> {
    match b.get(key) {
        None | Some(JsonTree::Null) => Ok(false),
        Some(JsonTree::Bool(v)) => Ok(*v),
        Some(v) => as_u64(v)
            .map(|n| n != 0)
            .ok_or_else(|| bad(ctx, key, "a boolean")),
    }
}

fn read_xr_block(b: &Obj, ctx: &str) -> Result<XrBlock, RtcpJsonError> {
    let block_type = u8f(b, "block_type", ctx)?;
    Ok(match block_type {
        1 => XrBlock::LossRle(read_rle(b, ctx)?),
        2 => XrBlock::DuplicateRle(read_rle(b, ctx)?),
        4 => XrBlock::ReceiverReferenceTime {
            ntp_seconds: u32f(b, "ntp_seconds", ctx)?,
            ntp_fraction: u32f(b, "ntp_fraction", ctx)?,
        },
        5 => {
            let mut items = Vec::new();
            for (i, item) in array(b, "items", ctx)?.iter().enumerate() {
                let ictx = format!("{ctx}items[{i}].");
                let item = item
                    .as_object()
                    .ok_or_else(|| bad(&ictx, "", "an object"))?;
                items.push(DlrrItem {
                    ssrc: u32f(item, "ssrc", &ictx)?,
                    last_rr: u32f(item, "last_rr", &ictx)?,
                    delay_since_last_rr: u32f(item, "delay_since_last_rr", &ictx)?,
                });
            }
            XrBlock::Dlrr(items)
        }
        6 => XrBlock::StatisticsSummary(StatisticsSummary {
            ssrc: u32f(b, "ssrc", ctx)?,
            loss_reported: bool_field(b, "loss_reported", ctx)?,
            duplicates_reported: bool_field(b, "duplicates_reported", ctx)?,
            jitter_reported: bool_field(b, "jitter_reported", ctx)?,
            ttl_or_hop_limit: u8f(b, "ttl_or_hop_limit", ctx)? & 0x03,
            begin_seq: u16f(b, "begin_seq", ctx)?,
            end_seq: u16f(b, "end_seq", ctx)?,
            lost_packets: u32f(b, "lost_packets", ctx)?,
            dup_packets: u32f(b, "dup_packets", ctx)?,
            min_jitter: u32f(b, "min_jitter", ctx)?,
            max_jitter: u32f(b, "max_jitter", ctx)?,
            mean_jitter: u32f(b, "mean_jitter", ctx)?,
            dev_jitter: u32f(b, "dev_jitter", ctx)?,
            min_ttl_or_hl: u8f(b, "min_ttl_or_hl", ctx)?,
            max_ttl_or_hl: u8f(b, "max_ttl_or_hl", ctx)?,
            mean_ttl_or_hl: u8f(b, "mean_ttl_or_hl", ctx)?,
            dev_ttl_or_hl: u8f(b, "dev_ttl_or_hl", ctx)?,
        }),
        7 => {
            let rctx = format!("{ctx}rx_config.");
            let empty = Obj::default();
            let rx = object(b, "rx_config", ctx)?.unwrap_or(&empty);
            XrBlock::VoipMetrics(VoipMetrics {
                ssrc: u32f(b, "ssrc", ctx)?,
                loss_rate: u8f(b, "loss_rate", ctx)?,
                discard_rate: u8f(b, "discard_rate", ctx)?,
                burst_density: u8f(b, "burst_density", ctx)?,
                gap_density: u8f(b, "gap_density", ctx)?,
                burst_duration: u16f(b, "burst_duration", ctx)?,
                gap_duration: u16f(b, "gap_duration", ctx)?,
                round_trip_delay: u16f(b, "round_trip_delay", ctx)?,
                end_system_delay: u16f(b, "end_system_delay", ctx)?,
                signal_level: i8f(b, "signal_level", ctx)?,
                noise_level: i8f(b, "noise_level", ctx)?,
                rerl: u8f(b, "rerl", ctx)?,
                gmin: u8f(b, "gmin", ctx)?,
                r_factor: u8f(b, "r_factor", ctx)?,
                ext_r_factor: u8f(b, "ext_r_factor", ctx)?,
                mos_lq: u8f(b, "mos_lq", ctx)?,
                mos_cq: u8f(b, "mos_cq", ctx)?,
                rx_config: RxConfig {
                    plc: u8f(rx, "plc", &rctx)? & 0x03,
                    jba: u8f(rx, "jba", &rctx)? & 0x03,
                    jb_rate: u8f(rx, "jb_rate", &rctx)? & 0x0f,
                },
                jb_nominal: u16f(b, "jb_nominal", ctx)?,
                jb_maximum: u16f(b, "jb_maximum", ctx)?,
                jb_abs_max: u16f(b, "jb_abs_max", ctx)?,
            })
        }
        _ => XrBlock::Other {
            block_type,
            type_specific: u8f(b, "type_specific", ctx)?,
            data: hex_field(b, "data", ctx)?,
        },
    })
}

fn read_feedback(v: &JsonTree, ctx: &str) -> Result<RtcpPacket, RtcpJsonError> {
    let m = v.as_object().ok_or_else(|| bad(ctx, "", "an object"))?;
    let layer = match u8f(m, "type", ctx)? {
        PT_RTPFB => FeedbackLayer::Transport,
        PT_PSFB => FeedbackLayer::PayloadSpecific,
        _ => return Err(bad(ctx, "type", "205 or 206")),
    };
    Ok(RtcpPacket::Feedback(Feedback {
        layer,
        fmt: u8f(m, "fmt", ctx)? & 0x1f,
        sender_ssrc: u32f(m, "sender_ssrc", ctx)?,
        media_ssrc: u32f(m, "media_ssrc", ctx)?,
        fci: hex_field(m, "fci", ctx)?,
    }))
}

fn read_app(v: &JsonTree, ctx: &str) -> Result<RtcpPacket, RtcpJsonError> {
    let m = v.as_object().ok_or_else(|| bad(ctx, "", "an object"))?;
    let name_text = string(m, "name", ctx)?.unwrap_or_default();
    // The name is four bytes on the wire: shorter names are space-padded, longer ones cut.
    let mut name = [b' '; 4];
    for (dst, src) in name.iter_mut().zip(name_text.bytes()) {
        *dst = src;
    }
    Ok(RtcpPacket::App(AppPacket {
        subtype: u8f(m, "subtype", ctx)? & 0x1f,
        ssrc: u32f(m, "ssrc", ctx)?,
        name,
        data: hex_field(m, "data", ctx)?,
    }))
}

fn read_bye(v: &JsonTree, ctx: &str) -> Result<RtcpPacket, RtcpJsonError> {
    let m = v.as_object().ok_or_else(|| bad(ctx, "", "an object"))?;
    let ssrcs = array(m, "ssrcs", ctx)?
        .iter()
        .map(|s| {
            as_u64(s)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad(ctx, "ssrcs", "an array of 32-bit integers"))
        })
        .collect::<Result<Vec<u32>, _>>()?;
    Ok(RtcpPacket::Goodbye(Goodbye {
        ssrcs,
        reason: string(m, "reason", ctx)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTPENGINE: &str = r#"{ "sender_information":{"ntp_timestamp_sec":4004332680,"ntp_timestamp_usec":1224008704,"octets":8160,"rtp_timestamp":8160, "packets":51},"ssrc":286331153,"type":200,"report_count":1,"report_blocks":[{"source_ssrc":572662306,"highest_seq_no":1051,"fraction_lost":1,"ia_jitter":25,"packets_lost":0,"lsr":0,"dlsr":0}],"sdes_report_count":1,"sdes_information": [ {"sdes_chunk_ssrc":286331153,"type":1,"text":"caller@127.0.0.1"}] }"#;

    #[test]
    fn rtpengine_shape_round_trips() {
        let report = from_json(RTPENGINE.as_bytes()).expect("parses");
        assert_eq!(report.packets.len(), 2);
        let original: Value = serde_json::from_str(RTPENGINE).expect("valid");
        assert_eq!(to_json(&report), original);
    }

    #[test]
    fn heplify_shape_with_zero_xr_and_sdes_ssrc() {
        let heplify = r#"{"sender_information":{"ntp_timestamp_sec":3953771345,"ntp_timestamp_usec":0,"rtp_timestamp":2944344000,"packets":2,"octets":320},"ssrc":3571175962,"type":202,"report_count":1,"report_blocks":[{"source_ssrc":0,"fraction_lost":0,"packets_lost":0,"highest_seq_no":0,"ia_jitter":0,"lsr":0,"dlsr":0}],"report_blocks_xr":{"type":0,"id":0,"fraction_lost":0,"fraction_discard":0,"burst_density":0,"gap_density":0,"burst_duration":0,"gap_duration":0,"round_trip_delay":0,"end_system_delay":0},"sdes_ssrc":0}"#;
        let report = from_json(heplify.as_bytes()).expect("parses");
        assert_eq!(report.packets.len(), 1, "{report:?}");
        assert_eq!(report.packets[0].packet_type(), PT_SR);
    }

    #[test]
    fn heplify_voip_metrics_become_an_xr_block() {
        let j = r#"{"ssrc":5,"type":207,"report_blocks_xr":{"type":7,"id":9,"fraction_lost":12,"end_system_delay":40}}"#;
        let report = from_json(j.as_bytes()).expect("parses");
        let RtcpPacket::ExtendedReport(xr) = &report.packets[0] else {
            panic!("{report:?}");
        };
        assert_eq!(xr.ssrc, 5);
        let XrBlock::VoipMetrics(vm) = &xr.blocks[0] else {
            panic!("{xr:?}");
        };
        assert_eq!((vm.ssrc, vm.loss_rate, vm.end_system_delay), (9, 12, 40));
        assert_eq!(vm.mos_lq_value(), None);
        let out = to_json(&report);
        assert_eq!(out["report_blocks_xr"]["fraction_lost"], 12);
        assert_eq!(out["xr"][0]["blocks"][0]["name"], "voip_metrics");
    }

    #[test]
    fn captagent_extended_report() {
        let j = r#"{"ssrc":1,"type":207,"extended_report_information":{"type":7, "identifier":2, "loss_rate":3, "discard_rate":4, "burst_rate":5, "gap_rate":6, "burst_duration":7, "gap_duration":8, "round_trip_delay":9, "end_sys_delay":10, "signal_lev":226, "noise_lev":181, "RERL":127, "Gmin":16, "R_fact":90, "ext_R_fact":127, "MOS_LQ":42, "MOS_CQ":41, "RX_conf":[{"PLC":3, "JB_adapt":2, "JB_rate":0}], "JB_nom":40, "JB_max":80, "JB_abs_max":100}}"#;
        let report = from_json(j.as_bytes()).expect("parses");
        let RtcpPacket::ExtendedReport(xr) = &report.packets[0] else {
            panic!("{report:?}");
        };
        let XrBlock::VoipMetrics(vm) = &xr.blocks[0] else {
            panic!("{xr:?}");
        };
        assert_eq!(vm.signal_level, -30);
        assert_eq!(vm.noise_level, -75);
        assert_eq!(vm.mos_lq_value(), Some(4.2));
        assert_eq!(vm.rx_config.plc, 3);
        assert_eq!(vm.jb_abs_max, 100);
    }

    #[test]
    fn lenient_numbers_and_errors() {
        let j = r#"{"type":"201","ssrc":7.0,"report_blocks":[{"packets_lost":-2,"fraction_lost":"3"}]}"#;
        let report = from_json(j.as_bytes()).expect("parses");
        let RtcpPacket::ReceiverReport(rr) = &report.packets[0] else {
            panic!("{report:?}");
        };
        assert_eq!(rr.ssrc, 7);
        assert_eq!(rr.report_blocks[0].cumulative_lost_signed(), -2);
        assert_eq!(rr.report_blocks[0].fraction_lost, 3);

        let err = from_json(br#"{"type":201,"report_blocks":[{"fraction_lost":300}]}"#)
            .expect_err("out of range");
        assert!(
            err.to_string().contains("report_blocks[0].fraction_lost"),
            "{err}"
        );
        assert!(matches!(from_json(b"[1]"), Err(RtcpJsonError::NotAnObject)));
        assert!(matches!(from_json(b"{}"), Err(RtcpJsonError::NoPackets)));
        assert!(matches!(from_json(b"{"), Err(RtcpJsonError::Json(_))));
    }
}
