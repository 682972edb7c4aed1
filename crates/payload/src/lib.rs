//! HEP payload decoders: what arrives in a HEP packet's payload chunk, given its proto type,
//! turned into typed, serializable records — RTCP and RTCP-XR (binary or HOMER JSON), DNS, log
//! lines and JSON reports — plus quality figures and an ITU-T G.107 E-model MOS.
//!
//! The crate does no I/O and does not depend on the HEP codec: callers pass the proto type and
//! the payload bytes to [`parse`]. SIP (type 1) is left to the `sip` crate.
//!
//! # Dispatch rules ([`parse`])
//!
//! | proto type | payload | result |
//! |---|---|---|
//! | 1 (SIP) | any | [`Parsed::NotHandled`] |
//! | 5 (RTCP) | first non-blank byte `{` | [`rtcp::from_json`] → [`Parsed::Rtcp`] (format `json`) |
//! | 5 | anything else | [`rtcp::parse`] → [`Parsed::Rtcp`] (format `binary`) |
//! | 53 (DNS) | first non-blank byte `{` or `[` | validated JSON → [`Parsed::Json`] |
//! | 53 | anything else | [`dns::parse`] → [`Parsed::Dns`] |
//! | 100 (LOG) | any | [`log::parse`] → [`Parsed::Log`] |
//! | 34, 35, 38, 50, 54–58, 60, 61, 126, 133 | JSON | [`Parsed::Json`] |
//! | any other | parses as JSON | [`Parsed::Json`] |
//! | any other | not JSON | [`Parsed::Binary`] |
//!
//! A payload that fails the decoder its type calls for gives [`Parsed::Invalid`] with the typed
//! error. Nothing panics; every length read from the input is checked; caps:
//! [`rtcp::MAX_PACKETS_PER_COMPOUND`], [`dns::MAX_DNS_BYTES`], [`dns::MAX_POINTER_JUMPS`],
//! [`json::MAX_JSON_BYTES`], [`json::MAX_JSON_DEPTH`], [`log::MAX_LOG_BYTES`],
//! [`BINARY_PREVIEW_BYTES`].
//!
//! `Parsed` serializes with a `kind` tag: `{"kind":"rtcp","format":"binary","report":{…},
//! "diagnostics":[…]}`, `{"kind":"dns","message":{…}}`, `{"kind":"log",…}`,
//! `{"kind":"json","proto_type":53,"value":{…}}`, `{"kind":"binary","proto_type":4,"length":…,
//! "head_hex":"…"}`, `{"kind":"not_handled","proto_type":1}`,
//! `{"kind":"invalid","proto_type":5,"error":"…"}`.
//!
//! # RTCP JSON
//!
//! [`rtcp::to_json`] writes, and [`rtcp::from_json`] reads, the object heplify and rtpengine send
//! as HEP type 5 (`homer_*` in rtpengine's `rtcp.c`, `RTCP_Packet` in heplify's `protos/rtcp.go`):
//!
//! ```json
//! {"sender_information": {"ntp_timestamp_sec": 4004332680, "ntp_timestamp_usec": 1224008704,
//!                         "octets": 8160, "rtp_timestamp": 8160, "packets": 51},
//!  "ssrc": 286331153, "type": 200, "report_count": 1,
//!  "report_blocks": [{"source_ssrc": 572662306, "highest_seq_no": 1051, "fraction_lost": 1,
//!                     "ia_jitter": 25, "packets_lost": 0, "lsr": 0, "dlsr": 0}],
//!  "sdes_report_count": 1,
//!  "sdes_information": [{"sdes_chunk_ssrc": 286331153, "type": 1, "text": "caller@127.0.0.1"}]}
//! ```
//!
//! The top level describes the compound's first SR or RR (`sender_information` only for an SR);
//! without one, `ssrc` and `type` name the first packet, as heplify does. `ntp_timestamp_usec`
//! holds the raw NTP fraction (2⁻³² s), as both producers fill it; `packets_lost` is the raw
//! 24-bit field; `fraction_lost` is in 1/256. All SDES chunks of the compound are flattened into
//! `sdes_information` (a PRIV item adds `"prefix"`; an item-less chunk is `{"sdes_chunk_ssrc"}`
//! alone). Packets the HOMER shape has no place for are added under keys of their own, present
//! only when non-empty:
//!
//! * `report_blocks_xr` — heplify's object for the first XR VoIP Metrics block (`type` 7, `id`,
//!   `fraction_lost`, `fraction_discard`, `burst_density`, `gap_density`, `burst_duration`,
//!   `gap_duration`, `round_trip_delay`, `end_system_delay`), which heplify-server's RTCP-XR
//!   metrics read;
//! * `extra_reports` — further SR / RR packets, each shaped like the top level's report fields;
//! * `xr` — every XR packet in full: `[{"ssrc", "blocks": [{"block_type", "name", …}]}]` where
//!   `name` is `loss_rle` / `duplicate_rle` (`ssrc`, `thinning`, `begin_seq`, `end_seq`, `chunks`,
//!   and the summary `packets_received` + `packets_lost` or `packets_duplicated` +
//!   `packets_not_duplicated`), `receiver_reference_time` (`ntp_seconds`, `ntp_fraction`), `dlrr`
//!   (`items`: `ssrc`, `last_rr`, `delay_since_last_rr`), `statistics_summary` (RFC 3611 §4.6 field
//!   names), `voip_metrics` (`ssrc`, `loss_rate`, `discard_rate`, `burst_density`, `gap_density`,
//!   `burst_duration`, `gap_duration`, `round_trip_delay`, `end_system_delay`, `signal_level`,
//!   `noise_level`, `rerl`, `gmin`, `r_factor`, `ext_r_factor`, `mos_lq`, `mos_cq`,
//!   `rx_config: {plc, jba, jb_rate}`, `jb_nominal`, `jb_maximum`, `jb_abs_max` — raw wire
//!   values: rates × 256, MOS × 10, 127 = unavailable) or `other` (`type_specific`, `data` hex);
//! * `feedback` — RTPFB / PSFB: `type`, `fmt`, `name`, `sender_ssrc`, `media_ssrc`, `fci` (hex),
//!   plus `nack_lost_packets` or `remb_bitrate_bps` when they apply;
//! * `app` — `subtype`, `ssrc`, `name`, `data` (hex);
//! * `bye` — `ssrcs`, optional `reason`.
//!
//! On input, captagent's `extended_report_information` object is also read as VoIP Metrics.
//!
//! # Quality figures and MOS
//!
//! [`quality::assess`] derives loss %, cumulative loss, jitter in ms, RTT (RFC 3550 §6.4.1) and an
//! E-model MOS per report block; the formulas and their sources are documented in [`quality`] and
//! [`emodel`] (ITU-T G.107 for R and MOS, G.113 Appendix I for codec `Ie` / `Bpl`).

#![warn(missing_docs)]

pub mod dns;
pub mod emodel;
pub mod json;
mod json_tree;
pub mod log;
pub mod quality;
pub mod rtcp;
mod wire;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

pub use json::{json_path, JsonReport};
#[doc(hidden)]
pub use json_tree::fast_reader_agrees;

/// HEP proto type numbers this crate dispatches on.
pub mod proto {
    /// SIP (handled by the `sip` crate).
    pub const SIP: u8 = 1;
    /// RTCP, binary or HOMER JSON.
    pub const RTCP: u8 = 5;
    /// DNS, binary or JSON.
    pub const DNS: u8 = 53;
    /// Log lines.
    pub const LOG: u8 = 100;
    /// Types whose payload is defined to be JSON (QoS reports, SIP JSON, ISUP JSON, Diameter,
    /// GSM MAP, CDRs, Verto, …).
    pub const JSON_TYPES: &[u8] = &[34, 35, 38, 50, 53, 54, 55, 56, 57, 58, 60, 61, 126, 133];
}

/// Bytes of an undecoded binary payload shown in [`BinaryPayload::head_hex`].
pub const BINARY_PREVIEW_BYTES: usize = 64;

/// Which RTCP form a payload had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RtcpFormat {
    /// RFC 3550 binary compound packet.
    Binary,
    /// HOMER JSON.
    Json,
}

/// A payload of a type this crate does not decode and that is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BinaryPayload {
    /// HEP proto type.
    pub proto_type: u8,
    /// Payload length in bytes.
    pub length: usize,
    /// Hex of the first [`BINARY_PREVIEW_BYTES`] bytes.
    pub head_hex: String,
}

/// Why a payload failed the decoder its proto type calls for.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Binary RTCP whose first packet does not decode.
    #[error(transparent)]
    Rtcp(#[from] rtcp::RtcpError),
    /// RTCP JSON that is not an RTCP report.
    #[error(transparent)]
    RtcpJson(#[from] rtcp::RtcpJsonError),
    /// A DNS message that does not decode.
    #[error(transparent)]
    Dns(#[from] dns::DnsError),
    /// A JSON-typed payload that is not acceptable JSON.
    #[error(transparent)]
    Json(#[from] json::JsonError),
}

/// A decoded payload.
#[derive(Debug)]
pub enum Parsed {
    /// A type decoded elsewhere (SIP → the `sip` crate).
    NotHandled {
        /// HEP proto type.
        proto_type: u8,
    },
    /// RTCP in either form.
    Rtcp {
        /// The form it arrived in.
        format: RtcpFormat,
        /// The report (with diagnostics for a partially decoded binary compound).
        report: rtcp::RtcpReport,
    },
    /// A binary DNS message.
    Dns(dns::DnsMessage),
    /// A log line.
    Log(log::LogRecord),
    /// A validated JSON document.
    Json(JsonReport),
    /// An undecoded binary payload.
    Binary(BinaryPayload),
    /// The payload failed its decoder.
    Invalid {
        /// HEP proto type.
        proto_type: u8,
        /// What went wrong.
        error: PayloadError,
    },
}

impl Parsed {
    /// The variant's name, as in the serialized `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Parsed::NotHandled { .. } => "not_handled",
            Parsed::Rtcp { .. } => "rtcp",
            Parsed::Dns(_) => "dns",
            Parsed::Log(_) => "log",
            Parsed::Json(_) => "json",
            Parsed::Binary(_) => "binary",
            Parsed::Invalid { .. } => "invalid",
        }
    }
}

impl Parsed {
    /// The serialized form as a JSON value (see the crate docs for the shapes).
    pub fn to_json(&self) -> serde_json::Value {
        // Every field serializes to JSON (string keys, finite numbers), so this cannot fail;
        // `Null` stands in should a future field ever break that.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl Serialize for Parsed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kind", self.kind())?;
        match self {
            Parsed::NotHandled { proto_type } => map.serialize_entry("proto_type", proto_type)?,
            Parsed::Rtcp { format, report } => {
                map.serialize_entry("format", format)?;
                map.serialize_entry("report", report)?;
                let diagnostics: Vec<String> =
                    report.diagnostics.iter().map(ToString::to_string).collect();
                map.serialize_entry("diagnostics", &diagnostics)?;
            }
            Parsed::Dns(message) => map.serialize_entry("message", message)?,
            Parsed::Log(record) => {
                map.serialize_entry("text", &record.text)?;
                map.serialize_entry("level", &record.level)?;
                map.serialize_entry("invalid_utf8", &record.invalid_utf8)?;
                map.serialize_entry("truncated", &record.truncated)?;
            }
            Parsed::Json(report) => {
                map.serialize_entry("proto_type", &report.proto_type)?;
                map.serialize_entry("value", &report.value)?;
            }
            Parsed::Binary(binary) => {
                map.serialize_entry("proto_type", &binary.proto_type)?;
                map.serialize_entry("length", &binary.length)?;
                map.serialize_entry("head_hex", &binary.head_hex)?;
            }
            Parsed::Invalid { proto_type, error } => {
                map.serialize_entry("proto_type", proto_type)?;
                map.serialize_entry("error", &error.to_string())?;
            }
        }
        map.end()
    }
}

fn invalid(proto_type: u8, error: impl Into<PayloadError>) -> Parsed {
    Parsed::Invalid {
        proto_type,
        error: error.into(),
    }
}

fn json_report(proto_type: u8, bytes: &[u8]) -> Parsed {
    match json::parse_value(bytes) {
        Ok(value) => Parsed::Json(JsonReport { proto_type, value }),
        Err(e) => invalid(proto_type, e),
    }
}

/// Decodes the payload of a HEP packet of type `proto_type` (see the crate docs for the rules).
pub fn parse(proto_type: u8, bytes: &[u8]) -> Parsed {
    match proto_type {
        proto::SIP => Parsed::NotHandled { proto_type },
        proto::RTCP => {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first == Some(&b'{') {
                match rtcp::from_json(bytes) {
                    Ok(report) => Parsed::Rtcp {
                        format: RtcpFormat::Json,
                        report,
                    },
                    Err(e) => invalid(proto_type, e),
                }
            } else {
                match rtcp::parse(bytes) {
                    Ok(report) => Parsed::Rtcp {
                        format: RtcpFormat::Binary,
                        report,
                    },
                    Err(e) => invalid(proto_type, e),
                }
            }
        }
        proto::DNS if json::looks_like_json(bytes) => json_report(proto_type, bytes),
        proto::DNS => match dns::parse(bytes) {
            Ok(message) => Parsed::Dns(message),
            Err(e) => invalid(proto_type, e),
        },
        proto::LOG => Parsed::Log(log::parse(bytes)),
        t if proto::JSON_TYPES.contains(&t) => json_report(proto_type, bytes),
        _ => match json::looks_like_json(bytes)
            .then(|| json::parse_value(bytes).ok())
            .flatten()
        {
            Some(value) => Parsed::Json(JsonReport { proto_type, value }),
            None => Parsed::Binary(BinaryPayload {
                proto_type,
                length: bytes.len(),
                head_hex: wire::hex(bytes.get(..BINARY_PREVIEW_BYTES).unwrap_or(bytes)),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dispatch_by_type_and_first_byte() {
        assert_eq!(
            parse(1, b"INVITE sip:a@b SIP/2.0\r\n").kind(),
            "not_handled"
        );
        assert_eq!(parse(5, br#" {"ssrc":1,"type":201}"#).kind(), "rtcp");
        assert_eq!(parse(5, &[0x80, 201, 0, 1, 0, 0, 0, 1]).kind(), "rtcp");
        assert_eq!(parse(5, b"").kind(), "invalid");
        assert_eq!(parse(5, b"{broken").kind(), "invalid");
        assert_eq!(parse(53, br#"{"id":1}"#).kind(), "json");
        assert_eq!(parse(53, &[0, 1]).kind(), "invalid");
        assert_eq!(parse(100, b"ERROR: x\n").kind(), "log");
        assert_eq!(parse(34, b"not json").kind(), "invalid");
        assert_eq!(parse(34, br#"{"mos":4.1}"#).kind(), "json");
        assert_eq!(parse(77, br#"[1,2]"#).kind(), "json");
        assert_eq!(parse(4, &[0x80, 0, 1, 2]).kind(), "binary");
    }

    #[test]
    fn serialized_shapes() {
        let v = serde_json::to_value(parse(5, &[0x80, 201, 0, 1, 0, 0, 0, 9])).expect("json");
        assert_eq!(
            v,
            json!({"kind": "rtcp", "format": "binary",
                   "report": {"ssrc": 9, "type": 201, "report_count": 0, "report_blocks": []},
                   "diagnostics": []})
        );
        let v = serde_json::to_value(parse(100, b"[INFO] hi\r\n")).expect("json");
        assert_eq!(
            v,
            json!({"kind": "log", "text": "[INFO] hi", "level": "INFO",
                   "invalid_utf8": false, "truncated": false})
        );
        let v = parse(4, &[1, 2, 3]).to_json();
        assert_eq!(
            v,
            json!({"kind": "binary", "proto_type": 4, "length": 3, "head_hex": "010203"})
        );
        let v = serde_json::to_value(parse(5, &[0x40])).expect("json");
        assert_eq!(v["kind"], "invalid");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("RTCP")),
            "{v}"
        );
    }
}
