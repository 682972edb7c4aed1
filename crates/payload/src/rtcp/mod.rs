//! RTCP (RFC 3550) and RTCP-XR (RFC 3611) as typed records, from binary compound packets or from
//! the HOMER JSON that heplify and rtpengine send as HEP type 5.
//!
//! * [`parse`] walks every packet of a binary compound packet. A packet that is truncated, of an
//!   unknown type or malformed stops the walk: the packets before it are kept and the problem is
//!   recorded in [`RtcpReport::diagnostics`]. Only when not even the first packet decodes is an
//!   [`RtcpError`] returned.
//! * [`to_json`] (and the `Serialize` impl of [`RtcpReport`]) produce the HOMER shape; [`from_json`]
//!   reads it back (the shape is described under "RTCP JSON" in the crate docs).
//! * [`encode`] writes a report back to binary, for synthetic traffic and round-trip tests.

mod encode;
mod json;
mod xr;

pub use encode::{encode, RtcpEncodeError};
pub use json::{from_json, to_json, RtcpJsonError};
pub use xr::{
    DlrrItem, ExtendedReport, RleReport, RleSummary, RxConfig, StatisticsSummary, VoipMetrics,
    XrBlock, UNAVAILABLE as XR_UNAVAILABLE,
};

use crate::wire::Reader;

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of a source description.
pub const PT_SDES: u8 = 202;
/// Packet type of a goodbye.
pub const PT_BYE: u8 = 203;
/// Packet type of an application-defined packet.
pub const PT_APP: u8 = 204;
/// Packet type of transport-layer feedback (RFC 4585).
pub const PT_RTPFB: u8 = 205;
/// Packet type of payload-specific feedback (RFC 4585).
pub const PT_PSFB: u8 = 206;
/// Packet type of an extended report (RFC 3611).
pub const PT_XR: u8 = 207;

/// At most this many packets are decoded from one compound packet. Real compounds carry two to
/// five; the cap bounds the work and memory an adversarial datagram of 4-byte packets can cause.
pub const MAX_PACKETS_PER_COMPOUND: usize = 256;

/// A decoded RTCP compound packet (or the HOMER JSON describing one).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RtcpReport {
    /// The packets in the order they were decoded.
    pub packets: Vec<RtcpPacket>,
    /// Why decoding stopped early, if it did; empty for a packet decoded completely.
    pub diagnostics: Vec<RtcpError>,
}

impl RtcpReport {
    /// The sender and receiver reports of the compound, in order.
    pub fn reports(&self) -> impl Iterator<Item = (u32, Option<&SenderInfo>, &[ReportBlock])> {
        self.packets.iter().filter_map(|p| match p {
            RtcpPacket::SenderReport(sr) => {
                Some((sr.ssrc, Some(&sr.sender_info), &sr.report_blocks[..]))
            }
            RtcpPacket::ReceiverReport(rr) => Some((rr.ssrc, None, &rr.report_blocks[..])),
            _ => None,
        })
    }

    /// The SSRC of the packet's originator: the first packet's sender SSRC (first chunk for SDES).
    pub fn ssrc(&self) -> Option<u32> {
        self.packets.first().and_then(RtcpPacket::ssrc)
    }
}

/// One packet of a compound.
#[derive(Debug, Clone, PartialEq)]
pub enum RtcpPacket {
    /// SR, type 200.
    SenderReport(SenderReport),
    /// RR, type 201.
    ReceiverReport(ReceiverReport),
    /// SDES, type 202.
    SourceDescription(SourceDescription),
    /// BYE, type 203.
    Goodbye(Goodbye),
    /// APP, type 204.
    App(AppPacket),
    /// RTPFB (205) or PSFB (206).
    Feedback(Feedback),
    /// XR, type 207.
    ExtendedReport(ExtendedReport),
}

impl RtcpPacket {
    /// The RTCP packet type number (200..=207).
    pub fn packet_type(&self) -> u8 {
        match self {
            RtcpPacket::SenderReport(_) => PT_SR,
            RtcpPacket::ReceiverReport(_) => PT_RR,
            RtcpPacket::SourceDescription(_) => PT_SDES,
            RtcpPacket::Goodbye(_) => PT_BYE,
            RtcpPacket::App(_) => PT_APP,
            RtcpPacket::Feedback(fb) => fb.layer.packet_type(),
            RtcpPacket::ExtendedReport(_) => PT_XR,
        }
    }

    /// The count field of the header (report count, source count, APP subtype or feedback FMT).
    pub fn count(&self) -> u8 {
        let n = match self {
            RtcpPacket::SenderReport(sr) => sr.report_blocks.len(),
            RtcpPacket::ReceiverReport(rr) => rr.report_blocks.len(),
            RtcpPacket::SourceDescription(sd) => sd.chunks.len(),
            RtcpPacket::Goodbye(bye) => bye.ssrcs.len(),
            RtcpPacket::App(app) => usize::from(app.subtype),
            RtcpPacket::Feedback(fb) => usize::from(fb.fmt),
            RtcpPacket::ExtendedReport(_) => 0,
        };
        u8::try_from(n).unwrap_or(u8::MAX)
    }

    /// The SSRC identifying the packet's originator (first chunk / first source for SDES / BYE).
    pub fn ssrc(&self) -> Option<u32> {
        match self {
            RtcpPacket::SenderReport(sr) => Some(sr.ssrc),
            RtcpPacket::ReceiverReport(rr) => Some(rr.ssrc),
            RtcpPacket::SourceDescription(sd) => sd.chunks.first().map(|c| c.ssrc),
            RtcpPacket::Goodbye(bye) => bye.ssrcs.first().copied(),
            RtcpPacket::App(app) => Some(app.ssrc),
            RtcpPacket::Feedback(fb) => Some(fb.sender_ssrc),
            RtcpPacket::ExtendedReport(xr) => Some(xr.ssrc),
        }
    }
}

/// The sender information block of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp, seconds since 1900 (most significant word).
    pub ntp_seconds: u32,
    /// NTP timestamp, fraction of a second in units of 2⁻³² s (least significant word). HOMER JSON
    /// calls this `ntp_timestamp_usec`, but heplify and rtpengine put the raw fraction there.
    pub ntp_fraction: u32,
    /// RTP timestamp corresponding to the NTP timestamp.
    pub rtp_timestamp: u32,
    /// Packets sent since the start of transmission.
    pub packet_count: u32,
    /// Payload octets sent since the start of transmission.
    pub octet_count: u32,
}

/// One reception report block (in an SR or RR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// SSRC of the source this block reports on.
    pub source_ssrc: u32,
    /// Fraction of packets lost since the previous report, in units of 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost, as the raw 24-bit field (it is signed on the wire:
    /// duplicates can make it negative; see [`ReportBlock::cumulative_lost_signed`]).
    pub cumulative_lost: u32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source (0: none).
    pub lsr: u32,
    /// Delay since that SR, in units of 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    /// The cumulative loss as the signed 24-bit number RFC 3550 defines.
    pub fn cumulative_lost_signed(&self) -> i32 {
        let raw = self.cumulative_lost & 0x00ff_ffff;
        if raw & 0x0080_0000 != 0 {
            // Sign-extend from 24 bits; the value fits, so the cast is exact.
            (raw | 0xff00_0000) as i32
        } else {
            raw as i32
        }
    }
}

/// Sender report (type 200).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// The sender's NTP / RTP timestamps and counters.
    pub sender_info: SenderInfo,
    /// Reception report blocks (at most 31).
    pub report_blocks: Vec<ReportBlock>,
}

/// Receiver report (type 201).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReceiverReport {
    /// SSRC of the receiver sending the report.
    pub ssrc: u32,
    /// Reception report blocks (at most 31).
    pub report_blocks: Vec<ReportBlock>,
}

/// Source description (type 202).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceDescription {
    /// One chunk per described source.
    pub chunks: Vec<SdesChunk>,
}

/// The items describing one source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SdesChunk {
    /// SSRC or CSRC described.
    pub ssrc: u32,
    /// The items, END excluded.
    pub items: Vec<SdesItem>,
}

/// One SDES item.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SdesItem {
    /// Item type (1 CNAME … 8 PRIV; see [`SdesItemKind`]).
    pub item_type: u8,
    /// For PRIV items, the prefix string; `None` for every other type.
    pub prefix: Option<String>,
    /// The item text (for PRIV, the value after the prefix), UTF-8 with invalid bytes replaced.
    pub text: String,
}

impl SdesItem {
    /// The item type as a named kind.
    pub fn kind(&self) -> SdesItemKind {
        SdesItemKind::from(self.item_type)
    }
}

/// SDES item types from the IANA "RTP SDES item types" registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdesItemKind {
    /// 1: canonical end-point identifier.
    Cname,
    /// 2: user name.
    Name,
    /// 3: e-mail address.
    Email,
    /// 4: phone number.
    Phone,
    /// 5: geographic location.
    Loc,
    /// 6: application or tool name.
    Tool,
    /// 7: notice / status.
    Note,
    /// 8: private extension (prefix + value).
    Priv,
    /// 9: H.323 callable address.
    H323Caddr,
    /// 10: application-specific identifier (RFC 6776).
    Apsi,
    /// 11: reporting group (RFC 8861).
    Rgrp,
    /// 12: RTP stream identifier (RFC 8852).
    RtpStreamId,
    /// 13: repaired RTP stream identifier (RFC 8852).
    RepairedRtpStreamId,
    /// 14: CLUE capture id (RFC 8849).
    Ccid,
    /// 15: media identification (RFC 9143).
    Mid,
    /// Any other number.
    Other(u8),
}

impl From<u8> for SdesItemKind {
    fn from(t: u8) -> Self {
        match t {
            1 => SdesItemKind::Cname,
            2 => SdesItemKind::Name,
            3 => SdesItemKind::Email,
            4 => SdesItemKind::Phone,
            5 => SdesItemKind::Loc,
            6 => SdesItemKind::Tool,
            7 => SdesItemKind::Note,
            8 => SdesItemKind::Priv,
            9 => SdesItemKind::H323Caddr,
            10 => SdesItemKind::Apsi,
            11 => SdesItemKind::Rgrp,
            12 => SdesItemKind::RtpStreamId,
            13 => SdesItemKind::RepairedRtpStreamId,
            14 => SdesItemKind::Ccid,
            15 => SdesItemKind::Mid,
            other => SdesItemKind::Other(other),
        }
    }
}

impl SdesItemKind {
    /// The registry's name for the item type ("CNAME", "PRIV", …; "UNKNOWN" for others).
    pub fn name(self) -> &'static str {
        match self {
            SdesItemKind::Cname => "CNAME",
            SdesItemKind::Name => "NAME",
            SdesItemKind::Email => "EMAIL",
            SdesItemKind::Phone => "PHONE",
            SdesItemKind::Loc => "LOC",
            SdesItemKind::Tool => "TOOL",
            SdesItemKind::Note => "NOTE",
            SdesItemKind::Priv => "PRIV",
            SdesItemKind::H323Caddr => "H323-CADDR",
            SdesItemKind::Apsi => "APSI",
            SdesItemKind::Rgrp => "RGRP",
            SdesItemKind::RtpStreamId => "RtpStreamId",
            SdesItemKind::RepairedRtpStreamId => "RepairedRtpStreamId",
            SdesItemKind::Ccid => "CCID",
            SdesItemKind::Mid => "MID",
            SdesItemKind::Other(_) => "UNKNOWN",
        }
    }
}

/// Goodbye (type 203).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Goodbye {
    /// The sources leaving.
    pub ssrcs: Vec<u32>,
    /// Optional reason for leaving (UTF-8, invalid bytes replaced).
    pub reason: Option<String>,
}

/// Application-defined packet (type 204).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppPacket {
    /// Subtype (the 5-bit count field).
    pub subtype: u8,
    /// SSRC / CSRC of the sender.
    pub ssrc: u32,
    /// Four ASCII characters naming the application.
    pub name: [u8; 4],
    /// Application-dependent data.
    pub data: Vec<u8>,
}

/// Which feedback packet type (RFC 4585) a [`Feedback`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedbackLayer {
    /// RTPFB, type 205.
    #[default]
    Transport,
    /// PSFB, type 206.
    PayloadSpecific,
}

impl FeedbackLayer {
    /// 205 or 206.
    pub fn packet_type(self) -> u8 {
        match self {
            FeedbackLayer::Transport => PT_RTPFB,
            FeedbackLayer::PayloadSpecific => PT_PSFB,
        }
    }
}

/// Transport-layer or payload-specific feedback (types 205 / 206), recognised and summarised.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Feedback {
    /// RTPFB or PSFB.
    pub layer: FeedbackLayer,
    /// Feedback message type (the 5-bit count field).
    pub fmt: u8,
    /// SSRC of the packet sender.
    pub sender_ssrc: u32,
    /// SSRC of the media source the feedback is about.
    pub media_ssrc: u32,
    /// Feedback control information, undecoded.
    pub fci: Vec<u8>,
}

impl Feedback {
    /// A short name of the feedback message ("generic_nack", "pli", "fir", "remb", …).
    pub fn name(&self) -> &'static str {
        match (self.layer, self.fmt) {
            (FeedbackLayer::Transport, 1) => "generic_nack",
            (FeedbackLayer::Transport, 3) => "tmmbr",
            (FeedbackLayer::Transport, 4) => "tmmbn",
            (FeedbackLayer::Transport, 5) => "rapid_resync",
            (FeedbackLayer::Transport, 8) => "ecn",
            (FeedbackLayer::Transport, 15) => "transport_cc",
            (FeedbackLayer::PayloadSpecific, 1) => "pli",
            (FeedbackLayer::PayloadSpecific, 2) => "sli",
            (FeedbackLayer::PayloadSpecific, 3) => "rpsi",
            (FeedbackLayer::PayloadSpecific, 4) => "fir",
            (FeedbackLayer::PayloadSpecific, 5) => "tstr",
            (FeedbackLayer::PayloadSpecific, 6) => "tstn",
            (FeedbackLayer::PayloadSpecific, 7) => "vbcm",
            (FeedbackLayer::PayloadSpecific, 15) if self.fci.starts_with(b"REMB") => "remb",
            (FeedbackLayer::PayloadSpecific, 15) => "afb",
            _ => "unknown",
        }
    }

    /// For a Generic NACK: how many packets it asks to be resent (each FCI entry names one packet
    /// id plus a 16-bit mask of the following ones).
    pub fn nack_lost_packets(&self) -> Option<u32> {
        if self.layer != FeedbackLayer::Transport || self.fmt != 1 {
            return None;
        }
        Some(
            self.fci
                .chunks_exact(4)
                .map(|e| match e {
                    [_, _, m0, m1] => 1 + u16::from_be_bytes([*m0, *m1]).count_ones(),
                    _ => 0,
                })
                .sum(),
        )
    }

    /// For a REMB (draft-alvestrand-rmcat-remb): the estimated maximum bitrate in bit/s.
    pub fn remb_bitrate_bps(&self) -> Option<u64> {
        if self.name() != "remb" {
            return None;
        }
        // "REMB", num SSRC (8 bits), exponent (6 bits), mantissa (18 bits).
        let mut r = Reader::new(&self.fci);
        r.take(4)?;
        let _num_ssrc = r.u8()?;
        let exp_mant = r.u24()?;
        let exponent = exp_mant >> 18;
        let mantissa = u64::from(exp_mant & 0x3_ffff);
        mantissa.checked_shl(exponent)
    }
}

/// Why decoding a packet of a compound failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpProblem {
    /// Nothing to decode.
    #[error("empty RTCP payload")]
    Empty,
    /// Fewer than the 4 header bytes remain.
    #[error("{available} bytes left, an RTCP header needs 4")]
    ShortHeader {
        /// Bytes left in the input.
        available: usize,
    },
    /// The version bits are not 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// The header's length runs past the end of the input.
    #[error("packet type {packet_type} declares {declared} bytes, only {available} remain")]
    Truncated {
        /// Packet type from the header.
        packet_type: u8,
        /// Length the header declares, header included.
        declared: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// The padding count is zero or longer than the packet.
    #[error("padding count {pad} does not fit a {body}-byte packet body")]
    BadPadding {
        /// The padding count byte.
        pad: u8,
        /// Packet body length (header excluded).
        body: usize,
    },
    /// The packet type is not one of 200..=207.
    #[error("unknown RTCP packet type {0}")]
    UnknownPacketType(u8),
    /// The packet's content does not fit its declared length.
    #[error("malformed packet type {packet_type}: {what}")]
    Malformed {
        /// Packet type from the header.
        packet_type: u8,
        /// What did not fit.
        what: &'static str,
    },
    /// The compound holds more than [`MAX_PACKETS_PER_COMPOUND`] packets.
    #[error("more than {MAX_PACKETS_PER_COMPOUND} packets in one compound")]
    TooManyPackets,
}

/// A decoding problem and the byte offset of the packet it was found in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RTCP at byte {offset}: {problem}")]
pub struct RtcpError {
    /// Offset of the offending packet's header in the input.
    pub offset: usize,
    /// What went wrong.
    pub problem: RtcpProblem,
}

/// Decodes a binary RTCP compound packet.
///
/// Returns the packets decoded and, in [`RtcpReport::diagnostics`], the reason decoding stopped
/// early (if it did). Returns an error only when the first packet itself cannot be decoded.
/// Never panics; reads nothing outside `bytes`.
pub fn parse(bytes: &[u8]) -> Result<RtcpReport, RtcpError> {
    let mut report = RtcpReport::default();
    let mut offset = 0usize;
    if bytes.is_empty() {
        return Err(RtcpError {
            offset: 0,
            problem: RtcpProblem::Empty,
        });
    }
    while offset < bytes.len() {
        if report.packets.len() >= MAX_PACKETS_PER_COMPOUND {
            report.diagnostics.push(RtcpError {
                offset,
                problem: RtcpProblem::TooManyPackets,
            });
            break;
        }
        let rest = bytes.get(offset..).unwrap_or_default();
        if rest.len() < 4 && rest.iter().all(|b| *b == 0) {
            // Zero bytes too short for a header after the last packet are link-level filler
            // (heplify's rtp_rtcp_sip_ipv4_udp.pcap has two after 116-byte compounds): ignore them.
            break;
        }
        match parse_packet(rest) {
            Ok((packet, consumed)) => {
                report.packets.push(packet);
                offset = offset.saturating_add(consumed);
            }
            Err(problem) => {
                report.diagnostics.push(RtcpError { offset, problem });
                break;
            }
        }
    }
    if report.packets.is_empty() {
        if let Some(first) = report.diagnostics.into_iter().next() {
            return Err(first);
        }
        return Err(RtcpError {
            offset: 0,
            problem: RtcpProblem::Empty,
        });
    }
    Ok(report)
}

/// Decodes the packet at the start of `buf`; returns it and its length on the wire.
fn parse_packet(buf: &[u8]) -> Result<(RtcpPacket, usize), RtcpProblem> {
    let mut header = Reader::new(buf);
    let (Some(first), Some(packet_type), Some(length_words)) =
        (header.u8(), header.u8(), header.u16())
    else {
        return Err(RtcpProblem::ShortHeader {
            available: buf.len(),
        });
    };
    let version = first >> 6;
    if version != 2 {
        return Err(RtcpProblem::BadVersion(version));
    }
    let padded = first & 0x20 != 0;
    let count = first & 0x1f;
    let declared = (usize::from(length_words) + 1) * 4;
    let Some(packet) = buf.get(..declared) else {
        return Err(RtcpProblem::Truncated {
            packet_type,
            declared,
            available: buf.len(),
        });
    };
    let mut body = packet.get(4..).unwrap_or_default();
    if padded {
        let pad = body.last().copied().unwrap_or(0);
        if pad == 0 || usize::from(pad) > body.len() {
            return Err(RtcpProblem::BadPadding {
                pad,
                body: body.len(),
            });
        }
        body = body
            .get(..body.len() - usize::from(pad))
            .unwrap_or_default();
    }
    let malformed = |what| RtcpProblem::Malformed { packet_type, what };
    let parsed = match packet_type {
        PT_SR => {
            parse_sr(count, body).ok_or(malformed("sender report shorter than its report count"))?
        }
        PT_RR => parse_rr(count, body)
            .ok_or(malformed("receiver report shorter than its report count"))?,
        PT_SDES => parse_sdes(count, body).ok_or(malformed("SDES chunks run past the packet"))?,
        PT_BYE => parse_bye(count, body).ok_or(malformed("BYE shorter than its source count"))?,
        PT_APP => parse_app(count, body).ok_or(malformed("APP shorter than 8 bytes"))?,
        PT_RTPFB | PT_PSFB => {
            let layer = if packet_type == PT_RTPFB {
                FeedbackLayer::Transport
            } else {
                FeedbackLayer::PayloadSpecific
            };
            parse_feedback(layer, count, body).ok_or(malformed("feedback shorter than 8 bytes"))?
        }
        PT_XR => xr::parse(body).map_err(malformed)?,
        other => return Err(RtcpProblem::UnknownPacketType(other)),
    };
    Ok((parsed, declared))
}

fn parse_sender_info(r: &mut Reader<'_>) -> Option<SenderInfo> {
    Some(SenderInfo {
        ntp_seconds: r.u32()?,
        ntp_fraction: r.u32()?,
        rtp_timestamp: r.u32()?,
        packet_count: r.u32()?,
        octet_count: r.u32()?,
    })
}

fn parse_report_blocks(count: u8, r: &mut Reader<'_>) -> Option<Vec<ReportBlock>> {
    let mut blocks = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        blocks.push(ReportBlock {
            source_ssrc: r.u32()?,
            fraction_lost: r.u8()?,
            cumulative_lost: r.u24()?,
            highest_seq: r.u32()?,
            jitter: r.u32()?,
            lsr: r.u32()?,
            dlsr: r.u32()?,
        });
    }
    // Anything after the blocks is a profile-specific extension, which no profile in use defines.
    Some(blocks)
}

fn parse_sr(count: u8, body: &[u8]) -> Option<RtcpPacket> {
    let mut r = Reader::new(body);
    let ssrc = r.u32()?;
    let sender_info = parse_sender_info(&mut r)?;
    let report_blocks = parse_report_blocks(count, &mut r)?;
    Some(RtcpPacket::SenderReport(SenderReport {
        ssrc,
        sender_info,
        report_blocks,
    }))
}

fn parse_rr(count: u8, body: &[u8]) -> Option<RtcpPacket> {
    let mut r = Reader::new(body);
    let ssrc = r.u32()?;
    let report_blocks = parse_report_blocks(count, &mut r)?;
    Some(RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc,
        report_blocks,
    }))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_sdes(count: u8, body: &[u8]) -> Option<RtcpPacket> {
    let mut r = Reader::new(body);
    let mut chunks = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let ssrc = r.u32()?;
        let mut items = Vec::new();
        loop {
            let item_type = r.u8()?;
            if item_type == 0 {
                // END: the chunk is padded with nulls up to the next 32-bit boundary.
                let misalignment = r.position() % 4;
                if misalignment != 0 {
                    r.take(4 - misalignment)?;
                }
                break;
            }
            let len = r.u8()?;
            let value = r.take(usize::from(len))?;
            let item = if item_type == 8 {
                let (&prefix_len, rest) = value.split_first()?;
                let (prefix, text) = rest.split_at_checked(usize::from(prefix_len))?;
                SdesItem {
                    item_type,
                    prefix: Some(lossy(prefix)),
                    text: lossy(text),
                }
            } else {
                SdesItem {
                    item_type,
                    prefix: None,
                    text: lossy(value),
                }
            };
            items.push(item);
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Some(RtcpPacket::SourceDescription(SourceDescription { chunks }))
}

fn parse_bye(count: u8, body: &[u8]) -> Option<RtcpPacket> {
    let mut r = Reader::new(body);
    let mut ssrcs = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        ssrcs.push(r.u32()?);
    }
    let reason = match r.u8() {
        Some(len) => Some(lossy(r.take(usize::from(len))?)),
        None => None,
    };
    Some(RtcpPacket::Goodbye(Goodbye { ssrcs, reason }))
}

fn parse_app(subtype: u8, body: &[u8]) -> Option<RtcpPacket> {
    let mut r = Reader::new(body);
    let ssrc = r.u32()?;
    let name = r.take(4)?;
    Some(RtcpPacket::App(AppPacket {
        subtype,
        ssrc,
        name: [*name.first()?, *name.get(1)?, *name.get(2)?, *name.get(3)?],
        data: r.rest().to_vec(),
    }))
}

fn parse_feedback(layer: FeedbackLayer, fmt: u8, body: &[u8]) -> Option<RtcpPacket> {
    let mut r = Reader::new(body);
    Some(RtcpPacket::Feedback(Feedback {
        layer,
        fmt,
        sender_ssrc: r.u32()?,
        media_ssrc: r.u32()?,
        fci: r.rest().to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SR + SDES from frame 521 of heplify's rtp_rtcp_sip_ipv4_udp.pcap, byte for byte.
    fn sr_sdes() -> Vec<u8> {
        crate::wire::unhex(concat!(
            "81c8000c58f33dea00024fe41c6a7ed9114731a200000001000000a0d2bd4e3e",
            "000000000000000300000000000000000000000081ca000858f33dea01164143",
            "4c5450204368616e6e656c48616e646c6520333000000000"
        ))
        .expect("valid hex")
    }

    #[test]
    fn decodes_sr_and_sdes() {
        let report = parse(&sr_sdes()).expect("decodes");
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
        assert_eq!(report.packets.len(), 2);
        let RtcpPacket::SenderReport(sr) = &report.packets[0] else {
            panic!("first packet is not an SR: {:?}", report.packets[0]);
        };
        assert_eq!(sr.ssrc, 1_492_336_106);
        assert_eq!(sr.sender_info.ntp_seconds, 151_524);
        assert_eq!(sr.sender_info.ntp_fraction, 476_741_337);
        assert_eq!(sr.sender_info.rtp_timestamp, 289_878_434);
        assert_eq!(sr.sender_info.packet_count, 1);
        assert_eq!(sr.sender_info.octet_count, 160);
        assert_eq!(sr.report_blocks.len(), 1);
        assert_eq!(sr.report_blocks[0].source_ssrc, 3_535_621_694);
        assert_eq!(sr.report_blocks[0].highest_seq, 3);
        let RtcpPacket::SourceDescription(sd) = &report.packets[1] else {
            panic!("second packet is not SDES");
        };
        assert_eq!(sd.chunks[0].items[0].text, "ACLTP ChannelHandle 30");
        assert_eq!(sd.chunks[0].items[0].kind(), SdesItemKind::Cname);
    }

    #[test]
    fn truncated_second_packet_keeps_first() {
        let full = sr_sdes();
        let cut = &full[..full.len() - 3];
        let report = parse(cut).expect("first packet decodes");
        assert_eq!(report.packets.len(), 1);
        assert_eq!(report.diagnostics.len(), 1);
        assert_eq!(report.diagnostics[0].offset, 52);
        assert!(matches!(
            report.diagnostics[0].problem,
            RtcpProblem::Truncated {
                packet_type: 202,
                ..
            }
        ));
    }

    #[test]
    fn unknown_type_stops_with_diagnostic() {
        let mut bytes = sr_sdes()[..52].to_vec();
        bytes.extend_from_slice(&[0x80, 195, 0x00, 0x00]);
        let report = parse(&bytes).expect("first packet decodes");
        assert_eq!(report.packets.len(), 1);
        assert_eq!(
            report.diagnostics[0].problem,
            RtcpProblem::UnknownPacketType(195)
        );
    }

    #[test]
    fn short_zero_tail_is_ignored_but_other_tails_are_reported() {
        let mut bytes = sr_sdes();
        bytes.extend_from_slice(&[0, 0]);
        let report = parse(&bytes).expect("decodes");
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
        bytes.push(7);
        let report = parse(&bytes).expect("decodes");
        assert_eq!(
            report.diagnostics[0].problem,
            RtcpProblem::ShortHeader { available: 3 }
        );
    }

    #[test]
    fn first_packet_failure_is_an_error() {
        assert_eq!(parse(&[]).unwrap_err().problem, RtcpProblem::Empty);
        assert_eq!(
            parse(&[0x40, 200, 0, 0]).unwrap_err().problem,
            RtcpProblem::BadVersion(1)
        );
        // An SR claiming 2 report blocks with room for none.
        let err = parse(&[
            0x82, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ])
        .unwrap_err();
        assert!(matches!(
            err.problem,
            RtcpProblem::Malformed {
                packet_type: 200,
                ..
            }
        ));
    }

    #[test]
    fn padding_is_stripped_and_checked() {
        // RR with no blocks, padded by 4 bytes (P bit, last byte = 4).
        let ok = [0xa0, 201, 0, 2, 0, 0, 0, 9, 0, 0, 0, 4];
        let report = parse(&ok).expect("decodes");
        assert_eq!(report.packets[0].ssrc(), Some(9));
        let bad = [0xa0, 201, 0, 2, 0, 0, 0, 9, 0, 0, 0, 9];
        assert!(matches!(
            parse(&bad).unwrap_err().problem,
            RtcpProblem::BadPadding { pad: 9, .. }
        ));
    }

    #[test]
    fn bye_with_reason_and_priv_item() {
        let bye = [
            0x81, 203, 0, 3, 0, 0, 0, 7, 5, b'h', b'u', b'n', b'g', b' ', 0, 0,
        ];
        let report = parse(&bye).expect("decodes");
        assert_eq!(
            report.packets[0],
            RtcpPacket::Goodbye(Goodbye {
                ssrcs: vec![7],
                reason: Some("hung ".into())
            })
        );
        // SDES with one PRIV item: prefix "ab", value "xyz".
        let sdes = [
            0x81, 202, 0, 4, 0, 0, 0, 1, 8, 6, 2, b'a', b'b', b'x', b'y', b'z', 0, 0, 0, 0,
        ];
        let report = parse(&sdes).expect("decodes");
        let RtcpPacket::SourceDescription(sd) = &report.packets[0] else {
            panic!("not SDES");
        };
        assert_eq!(sd.chunks[0].items[0].prefix.as_deref(), Some("ab"));
        assert_eq!(sd.chunks[0].items[0].text, "xyz");
        assert_eq!(sd.chunks[0].items[0].kind().name(), "PRIV");
    }

    #[test]
    fn feedback_is_summarised() {
        // Generic NACK: pid 100, mask 0b101 → 3 packets.
        let nack = [0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 100, 0, 5];
        let report = parse(&nack).expect("decodes");
        let RtcpPacket::Feedback(fb) = &report.packets[0] else {
            panic!("not feedback");
        };
        assert_eq!(fb.name(), "generic_nack");
        assert_eq!(fb.nack_lost_packets(), Some(3));
        // REMB: exponent 2, mantissa 1000 → 4000 bit/s.
        let exp_mant: u32 = (2 << 18) | 1000;
        let [_, a, b, c] = exp_mant.to_be_bytes();
        let remb = [
            0x8f, 206, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 1, a, b, c, 0, 0, 0, 9,
        ];
        let report = parse(&remb).expect("decodes");
        let RtcpPacket::Feedback(fb) = &report.packets[0] else {
            panic!("not feedback");
        };
        assert_eq!(fb.name(), "remb");
        assert_eq!(fb.remb_bitrate_bps(), Some(4000));
        assert_eq!(report.packets[0].packet_type(), 206);
    }

    #[test]
    fn signed_cumulative_loss() {
        let block = ReportBlock {
            cumulative_lost: 0x00ff_ffff,
            ..ReportBlock::default()
        };
        assert_eq!(block.cumulative_lost_signed(), -1);
        let block = ReportBlock {
            cumulative_lost: 12,
            ..ReportBlock::default()
        };
        assert_eq!(block.cumulative_lost_signed(), 12);
    }
}
