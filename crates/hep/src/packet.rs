//! Decoding: the zero-copy [`HepPacket`] view over HEPv1, HEPv2 and HEPv3 messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::chunk::{
    be_uint, chunk_type as t, generic_chunk, Chunks, CHUNK_HEADER_LEN, HEP3_HEADER_LEN,
};
use crate::error::{DecodeError, Diagnostic};
use crate::inflate::inflate_capped;

/// The magics that open a HEPv3 message. `HEP3` is the specification's; Kamailio's sipcapture
/// also accepts `EEP1` (the "Extensible Encapsulation Protocol" spelling of the same format) and
/// the HOMER tooling accepts `EEP3`, so a collector must too.
pub const HEP3_MAGICS: [&[u8; 4]; 3] = [b"HEP3", b"EEP1", b"EEP3"];

/// `AF_INET` as HEPv1/v2 headers and the HEPv3 family chunk carry it.
pub const FAMILY_IPV4: u8 = 2;
/// `AF_INET6` as HEPv1/v2 headers and the HEPv3 family chunk carry it (the Linux value).
pub const FAMILY_IPV6: u8 = 10;

/// Fixed part of a HEPv1/v2 header before the addresses: version, header length, family,
/// protocol, source port, destination port.
const LEGACY_PREFIX_LEN: usize = 8;
/// The HEPv2 time header: u32 sec, u32 usec, u16 capture id, 2 bytes of struct padding.
const LEGACY_TIME_HEADER_LEN: usize = 12;

/// Whether `head` is one of the HEPv3 magics.
pub(crate) fn is_hep3_magic(head: &[u8]) -> bool {
    HEP3_MAGICS.iter().any(|magic| head == magic.as_slice())
}

/// A decoded HEP message, borrowing every variable-length field from the input buffer.
///
/// One type serves all versions. For HEPv3 every field comes from its chunk; for HEPv1/v2 the
/// fixed header fills the network fields, the timestamp and capture id (v2 only), and
/// `proto_type` is set to 1 (SIP), the only payload those versions carry. Fields whose chunk is
/// absent or malformed are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HepPacket<'a> {
    /// HEP version: 1, 2 or 3 (0 only in a `Default` value).
    pub version: u8,
    /// The message bytes: for HEPv3 the first `total_len` bytes of the input (trailing bytes are
    /// excluded and reported as a diagnostic), for HEPv1/v2 the whole datagram.
    pub raw: &'a [u8],
    /// IP family, 2 (IPv4) or 10 (IPv6) (chunk 0x0001).
    pub ip_family: Option<u8>,
    /// IP protocol number (chunk 0x0002).
    pub ip_proto: Option<u8>,
    /// Source address (chunk 0x0003 or 0x0005).
    pub src_ip: Option<IpAddr>,
    /// Destination address (chunk 0x0004 or 0x0006).
    pub dst_ip: Option<IpAddr>,
    /// Source port (chunk 0x0007).
    pub src_port: Option<u16>,
    /// Destination port (chunk 0x0008).
    pub dst_port: Option<u16>,
    /// Capture time, seconds (chunk 0x0009).
    pub ts_sec: Option<u32>,
    /// Capture time, microseconds (chunk 0x000a).
    pub ts_usec: Option<u32>,
    /// Payload protocol type (chunk 0x000b), see [`crate::proto_type_name`].
    pub proto_type: Option<u8>,
    /// Capture agent id as sent (chunk 0x000c); see [`HepPacket::capture_id_normalized`].
    pub capture_id: Option<u32>,
    /// Keep-alive timer (chunk 0x000d).
    pub keepalive_timer: Option<u16>,
    /// Authentication key (chunk 0x000e).
    pub auth_key: Option<&'a [u8]>,
    /// Captured payload (chunk 0x000f).
    pub payload: Option<&'a [u8]>,
    /// Compressed payload (chunk 0x0010); see [`HepPacket::inflate_payload`].
    pub payload_compressed: Option<&'a [u8]>,
    /// Correlation id (chunk 0x0011).
    pub correlation_id: Option<&'a [u8]>,
    /// VLAN id (chunk 0x0012).
    pub vlan_id: Option<u16>,
    /// Capture agent (node) name (chunk 0x0013).
    pub node_name: Option<&'a [u8]>,
    /// Source MAC address in the spec's u64 form (chunk 0x0014).
    pub src_mac: Option<u64>,
    /// Destination MAC address in the spec's u64 form (chunk 0x0015).
    pub dst_mac: Option<u64>,
    /// Ethernet type (chunk 0x0016).
    pub eth_type: Option<u16>,
    /// TCP flags (chunk 0x0017).
    pub tcp_flags: Option<u8>,
    /// IP type of service (chunk 0x0018).
    pub ip_tos: Option<u8>,
    /// MOS (chunk 0x0020).
    pub mos: Option<u16>,
    /// R-factor (chunk 0x0021).
    pub r_factor: Option<u16>,
    /// Geographic location (chunk 0x0022).
    pub geo_location: Option<&'a [u8]>,
    /// Jitter (chunk 0x0023).
    pub jitter: Option<u32>,
    /// Transaction type (chunk 0x0024).
    pub transaction_type: Option<&'a [u8]>,
    /// Keys of the JSON payload (chunk 0x0025).
    pub payload_json_keys: Option<&'a [u8]>,
    /// Tag values (chunk 0x0026).
    pub tags_values: Option<&'a [u8]>,
    /// Tag type (chunk 0x0027).
    pub tag_type: Option<u16>,
    /// Event type (chunk 0x0028).
    pub event_type: Option<u16>,
    /// Group id (chunk 0x0029).
    pub group_id: Option<&'a [u8]>,
    /// Non-fatal irregularities, in the order found. Empty (and unallocated) for well-formed input.
    pub diagnostics: Vec<Diagnostic>,
}

/// Decode one HEP message (v1, v2 or v3) without copying.
///
/// The version is chosen from the first bytes: a HEPv3 magic (`HEP3`, `EEP1`, `EEP3`), or a
/// version byte of 1 or 2 followed by a known address family in byte 2. Anything else is
/// [`DecodeError::NotHep`].
pub fn decode(buf: &[u8]) -> Result<HepPacket<'_>, DecodeError> {
    match buf.first() {
        None => Err(DecodeError::TooShort {
            need: HEP3_HEADER_LEN,
            got: 0,
        }),
        Some(b'H' | b'E') => match buf.get(..4) {
            Some(head) if is_hep3_magic(head) => decode_v3(buf),
            Some(_) => Err(DecodeError::NotHep),
            None if HEP3_MAGICS.iter().any(|magic| magic.starts_with(buf)) => {
                Err(DecodeError::TooShort {
                    need: HEP3_HEADER_LEN,
                    got: buf.len(),
                })
            }
            None => Err(DecodeError::NotHep),
        },
        Some(&version @ (1 | 2)) => match buf.get(2) {
            Some(&family @ (FAMILY_IPV4 | FAMILY_IPV6)) => decode_legacy(buf, version, family),
            Some(_) => Err(DecodeError::NotHep),
            None => Err(DecodeError::TooShort {
                need: LEGACY_PREFIX_LEN,
                got: buf.len(),
            }),
        },
        Some(_) => Err(DecodeError::NotHep),
    }
}

/// Store a field value; a field seen before is overwritten (the later chunk wins, as in
/// heplify-server and Kamailio's sipcapture) and the repetition is reported.
#[inline(always)]
fn set<T>(
    slot: &mut Option<T>,
    value: T,
    offset: usize,
    type_id: u16,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if slot.replace(value).is_some() {
        diagnostics.push(Diagnostic::DuplicateChunk { offset, type_id });
    }
}

fn decode_v3(buf: &[u8]) -> Result<HepPacket<'_>, DecodeError> {
    let total_len = match buf.get(4..HEP3_HEADER_LEN) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => {
            return Err(DecodeError::TooShort {
                need: HEP3_HEADER_LEN,
                got: buf.len(),
            })
        }
    };
    let total = usize::from(total_len);
    let message = match buf.get(..total) {
        Some(message) if total >= HEP3_HEADER_LEN => message,
        _ => {
            return Err(DecodeError::BadTotalLength {
                total_len,
                available: buf.len(),
            })
        }
    };
    // The packet is built inside the result that is returned, not moved into it at the end:
    // it is a few hundred bytes, and that copy was a tenth of the decoding cost.
    let mut result = Ok(HepPacket::default());
    if let Ok(packet) = &mut result {
        packet.version = 3;
        packet.raw = message;
        if let Err(error) = fill_v3(packet, message, buf.len()) {
            result = Err(error);
        }
    }
    result
}

/// Reads the chunks of `message` (a HEPv3 message of `total` bytes) into `packet`; `available`
/// is the length of the buffer the message came from, to report trailing bytes.
#[inline(always)]
fn fill_v3<'a>(
    packet: &mut HepPacket<'a>,
    message: &'a [u8],
    available: usize,
) -> Result<(), DecodeError> {
    let total = message.len();
    if available > total {
        packet.diagnostics.push(Diagnostic::TrailingBytes {
            count: available - total,
        });
    }
    let mut offset = HEP3_HEADER_LEN;
    while offset < total {
        // `message` ends at the total length, so both reads below fail exactly when the chunk
        // does not fit in what is left of the message.
        let Some(&[v0, v1, t0, t1, l0, l1]) = message.get(offset..offset + CHUNK_HEADER_LEN) else {
            return Err(DecodeError::TruncatedChunkHeader {
                offset,
                remaining: total - offset,
            });
        };
        let len = u16::from_be_bytes([l0, l1]);
        let chunk_len = usize::from(len);
        if chunk_len < CHUNK_HEADER_LEN {
            return Err(DecodeError::ZeroLengthChunk { offset, len });
        }
        let Some(body) = message.get(offset + CHUNK_HEADER_LEN..offset + chunk_len) else {
            return Err(DecodeError::ChunkOverrun { offset, len });
        };
        if v0 | v1 == 0 {
            packet.absorb_generic(offset, u16::from_be_bytes([t0, t1]), body);
        }
        offset += chunk_len;
    }
    Ok(())
}

/// A fixed-size chunk body as an array; `None` when the length is wrong.
#[inline(always)]
fn fixed<const N: usize>(body: &[u8]) -> Option<[u8; N]> {
    body.try_into().ok()
}

impl<'a> HepPacket<'a> {
    /// Fill the field of one generic chunk; vendor chunks and undefined types stay reachable
    /// through [`HepPacket::chunks`] only.
    ///
    /// This runs for every chunk of every message: one `match` on the type reads the body
    /// straight into its field (the chunk table in `chunk.rs` is only consulted on the rare
    /// wrong-length path, to report what was expected).
    #[inline]
    fn absorb_generic(&mut self, offset: usize, type_id: u16, body: &'a [u8]) {
        let d = &mut self.diagnostics;
        let ok = match type_id {
            t::IP_FAMILY => {
                fixed::<1>(body).map(|[v]| set(&mut self.ip_family, v, offset, type_id, d))
            }
            t::IP_PROTO => {
                fixed::<1>(body).map(|[v]| set(&mut self.ip_proto, v, offset, type_id, d))
            }
            t::SRC_IP4 => fixed::<4>(body).map(|a| {
                set(
                    &mut self.src_ip,
                    IpAddr::V4(Ipv4Addr::from(a)),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::DST_IP4 => fixed::<4>(body).map(|a| {
                set(
                    &mut self.dst_ip,
                    IpAddr::V4(Ipv4Addr::from(a)),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::SRC_IP6 => fixed::<16>(body).map(|a| {
                set(
                    &mut self.src_ip,
                    IpAddr::V6(Ipv6Addr::from(a)),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::DST_IP6 => fixed::<16>(body).map(|a| {
                set(
                    &mut self.dst_ip,
                    IpAddr::V6(Ipv6Addr::from(a)),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::SRC_PORT => fixed(body).map(|b| {
                set(
                    &mut self.src_port,
                    u16::from_be_bytes(b),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::DST_PORT => fixed(body).map(|b| {
                set(
                    &mut self.dst_port,
                    u16::from_be_bytes(b),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::TS_SEC => fixed(body)
                .map(|b| set(&mut self.ts_sec, u32::from_be_bytes(b), offset, type_id, d)),
            t::TS_USEC => fixed(body)
                .map(|b| set(&mut self.ts_usec, u32::from_be_bytes(b), offset, type_id, d)),
            t::PROTO_TYPE => {
                fixed::<1>(body).map(|[v]| set(&mut self.proto_type, v, offset, type_id, d))
            }
            t::CAPTURE_ID => fixed(body).map(|b| {
                set(
                    &mut self.capture_id,
                    u32::from_be_bytes(b),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::KEEPALIVE_TIMER => fixed(body).map(|b| {
                set(
                    &mut self.keepalive_timer,
                    u16::from_be_bytes(b),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::AUTH_KEY => {
                set(&mut self.auth_key, body, offset, type_id, d);
                Some(())
            }
            t::PAYLOAD => {
                set(&mut self.payload, body, offset, type_id, d);
                Some(())
            }
            t::PAYLOAD_COMPRESSED => {
                set(&mut self.payload_compressed, body, offset, type_id, d);
                Some(())
            }
            t::CORRELATION_ID => {
                set(&mut self.correlation_id, body, offset, type_id, d);
                Some(())
            }
            t::VLAN_ID => fixed(body)
                .map(|b| set(&mut self.vlan_id, u16::from_be_bytes(b), offset, type_id, d)),
            t::NODE_NAME => {
                set(&mut self.node_name, body, offset, type_id, d);
                Some(())
            }
            t::SRC_MAC | t::DST_MAC => {
                // u64 per the specification; a bare 6-byte MAC is accepted too.
                let mac = match body.len() {
                    8 | 6 => Some(be_uint(body)),
                    _ => None,
                };
                mac.map(|v| {
                    let slot = if type_id == t::SRC_MAC {
                        &mut self.src_mac
                    } else {
                        &mut self.dst_mac
                    };
                    set(slot, v, offset, type_id, d)
                })
            }
            t::ETH_TYPE => fixed(body).map(|b| {
                set(
                    &mut self.eth_type,
                    u16::from_be_bytes(b),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::TCP_FLAGS => {
                fixed::<1>(body).map(|[v]| set(&mut self.tcp_flags, v, offset, type_id, d))
            }
            t::IP_TOS => fixed::<1>(body).map(|[v]| set(&mut self.ip_tos, v, offset, type_id, d)),
            t::MOS => {
                fixed(body).map(|b| set(&mut self.mos, u16::from_be_bytes(b), offset, type_id, d))
            }
            t::R_FACTOR => fixed(body).map(|b| {
                set(
                    &mut self.r_factor,
                    u16::from_be_bytes(b),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::GEO_LOCATION => {
                set(&mut self.geo_location, body, offset, type_id, d);
                Some(())
            }
            t::JITTER => fixed(body)
                .map(|b| set(&mut self.jitter, u32::from_be_bytes(b), offset, type_id, d)),
            t::TRANSACTION_TYPE => {
                set(&mut self.transaction_type, body, offset, type_id, d);
                Some(())
            }
            t::PAYLOAD_JSON_KEYS => {
                set(&mut self.payload_json_keys, body, offset, type_id, d);
                Some(())
            }
            t::TAGS_VALUES => {
                set(&mut self.tags_values, body, offset, type_id, d);
                Some(())
            }
            t::TAG_TYPE => fixed(body).map(|b| {
                set(
                    &mut self.tag_type,
                    u16::from_be_bytes(b),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::EVENT_TYPE => fixed(body).map(|b| {
                set(
                    &mut self.event_type,
                    u16::from_be_bytes(b),
                    offset,
                    type_id,
                    d,
                )
            }),
            t::GROUP_ID => {
                set(&mut self.group_id, body, offset, type_id, d);
                Some(())
            }
            // Undefined generic type: raw, through `chunks()` only.
            _ => Some(()),
        };
        if ok.is_none() {
            self.bad_length(offset, type_id, body.len());
        }
    }

    /// Reports a typed chunk whose body has the wrong size (kept out of the hot path).
    #[cold]
    #[inline(never)]
    fn bad_length(&mut self, offset: usize, type_id: u16, got: usize) {
        let expected = generic_chunk(type_id)
            .and_then(|(_, kind)| kind.fixed_len())
            .unwrap_or(0);
        self.diagnostics.push(Diagnostic::BadChunkLength {
            offset,
            type_id,
            expected,
            got,
        });
    }

    /// Every chunk of a HEPv3 message in wire order, vendor and undefined chunks included.
    /// HEPv1/v2 messages have no chunks: the iterator is empty.
    pub fn chunks(&self) -> Chunks<'a> {
        if self.version == 3 {
            Chunks::new(self.raw)
        } else {
            Chunks::new(&[])
        }
    }

    /// Capture time in microseconds since the Unix epoch; `None` without a seconds field. A
    /// missing microseconds field counts as 0.
    pub fn timestamp_micros(&self) -> Option<u64> {
        let sec = u64::from(self.ts_sec?);
        Some(sec * 1_000_000 + u64::from(self.ts_usec.unwrap_or(0)))
    }

    /// The plain payload (chunk 0x000f, or the rest of a HEPv1/v2 datagram).
    pub fn payload_bytes(&self) -> Option<&'a [u8]> {
        self.payload
    }

    /// Inflate the compressed payload (chunk 0x0010): gzip, zlib or raw deflate, recognised by
    /// their headers. The output never grows beyond `max_out` bytes: a larger result is
    /// [`DecodeError::InflateTooLarge`], so a decompression bomb costs at most `max_out` bytes.
    pub fn inflate_payload(&self, max_out: usize) -> Result<Vec<u8>, DecodeError> {
        let compressed = self
            .payload_compressed
            .ok_or(DecodeError::NoCompressedPayload)?;
        inflate_capped(compressed, max_out)
    }

    /// The capture id with sngrep's byte-order quirk undone.
    ///
    /// sngrep fills the 32-bit HEPv3 capture id chunk with `htons(id)`: the 16-bit id is
    /// byte-swapped into a 32-bit field, which on the (little-endian) hosts it runs on puts the id
    /// in the upper 16 bits on the wire, e.g. id 2001 arrives as `2001 << 16` = 131137536. A value
    /// above 0xffff whose low 16 bits are zero is taken to be that quirk and shifted back; any other
    /// value is returned unchanged. The price is that a genuine id that is a multiple of 65536
    /// is misread, which real deployments (small, hand-assigned ids) do not use.
    pub fn capture_id_normalized(&self) -> Option<u32> {
        self.capture_id.map(|id| {
            if id > 0xffff && id & 0xffff == 0 {
                id >> 16
            } else {
                id
            }
        })
    }
}

/// Decode a HEPv1/v2 datagram as Kamailio and sngrep send it: version, header length (not
/// trusted), family, protocol, ports (big-endian), addresses, for v2 a 12-byte little-endian
/// time header, then the payload to the end of the datagram.
fn decode_legacy(buf: &[u8], version: u8, family: u8) -> Result<HepPacket<'_>, DecodeError> {
    let addr_len = if family == FAMILY_IPV6 { 16 } else { 4 };
    let addr_end = LEGACY_PREFIX_LEN + 2 * addr_len;
    let header_len = if version == 2 {
        addr_end + LEGACY_TIME_HEADER_LEN
    } else {
        addr_end
    };
    let too_short = DecodeError::TooShort {
        need: header_len,
        got: buf.len(),
    };
    let (header, payload) = match (buf.get(..header_len), buf.get(header_len..)) {
        (Some(header), Some(payload)) => (header, payload),
        _ => return Err(too_short),
    };
    let proto = header.get(3).copied();
    // HEPv1/v2 have no magic: a version byte and a family byte are all that set them apart
    // from random bytes (one datagram in 64 passes that). They only ever carried SIP, so the
    // transport must be one SIP runs over and the payload must start like a SIP message.
    if !matches!(proto, Some(IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP))
        || !looks_like_sip_start(payload)
    {
        return Err(DecodeError::NotHep);
    }
    // Fixed-offset reads inside `header`, whose length was checked above.
    let be16 = |at: usize| header.get(at..at + 2).map(|b| be_uint(b) as u16);
    let le32 = |at: usize| header.get(at..at + 4).map(|b| le_bytes(b) as u32);
    let addr = |at: usize| -> Option<IpAddr> {
        let bytes = header.get(at..at + addr_len)?;
        Some(if family == FAMILY_IPV6 {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            let octets: [u8; 4] = bytes.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(octets))
        })
    };
    let mut packet = HepPacket {
        version,
        raw: buf,
        ip_family: Some(family),
        ip_proto: proto,
        src_port: be16(4),
        dst_port: be16(6),
        src_ip: addr(LEGACY_PREFIX_LEN),
        dst_ip: addr(LEGACY_PREFIX_LEN + addr_len),
        // HEPv1/v2 have no type field; they only ever carried SIP (heplify-server assumes the same).
        proto_type: Some(1),
        payload: Some(payload),
        ..HepPacket::default()
    };
    if version == 2 {
        // Kamailio and sngrep write `struct hep_timehdr` in host order (little-endian on every
        // platform they ship on) and the struct is not packed, hence 2 padding bytes.
        packet.ts_sec = le32(addr_end);
        packet.ts_usec = le32(addr_end + 4);
        packet.capture_id = header
            .get(addr_end + 8..addr_end + 10)
            .map(|b| le_bytes(b) as u32);
    }
    Ok(packet)
}

/// TCP, UDP and SCTP: the transports a HEPv1/v2 SIP message can have been captured on.
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

/// Whether `payload` starts as a SIP message does: a status line (`SIP/2.0 `), or a request
/// line's method (1–32 token characters) followed by a space. The message need not be well
/// formed beyond that; the SIP indexer reports what else is wrong.
fn looks_like_sip_start(payload: &[u8]) -> bool {
    if payload.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let method_len = payload
        .iter()
        .take(33)
        .take_while(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
        .count();
    (1..=32).contains(&method_len) && payload.get(method_len) == Some(&b' ')
}

/// Little-endian integer of up to 8 bytes.
fn le_bytes(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{chunk_type, ChunkValue};

    fn chunk(vendor: u16, type_id: u16, body: &[u8]) -> Vec<u8> {
        let mut c = Vec::new();
        c.extend_from_slice(&vendor.to_be_bytes());
        c.extend_from_slice(&type_id.to_be_bytes());
        c.extend_from_slice(&((body.len() + 6) as u16).to_be_bytes());
        c.extend_from_slice(body);
        c
    }

    fn hep3(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut m = b"HEP3".to_vec();
        m.extend_from_slice(&((body.len() + 6) as u16).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    fn basic_chunks() -> Vec<Vec<u8>> {
        vec![
            chunk(0, chunk_type::IP_FAMILY, &[2]),
            chunk(0, chunk_type::IP_PROTO, &[17]),
            chunk(0, chunk_type::SRC_IP4, &[10, 0, 0, 1]),
            chunk(0, chunk_type::DST_IP4, &[10, 0, 0, 2]),
            chunk(0, chunk_type::SRC_PORT, &5060u16.to_be_bytes()),
            chunk(0, chunk_type::DST_PORT, &5070u16.to_be_bytes()),
            chunk(0, chunk_type::TS_SEC, &1_700_000_000u32.to_be_bytes()),
            chunk(0, chunk_type::TS_USEC, &123_456u32.to_be_bytes()),
            chunk(0, chunk_type::PROTO_TYPE, &[1]),
            chunk(0, chunk_type::CAPTURE_ID, &2001u32.to_be_bytes()),
            chunk(0, chunk_type::PAYLOAD, b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
        ]
    }

    #[test]
    fn heplify_server_crasher_is_too_short() {
        assert!(matches!(
            decode(&[0x02, 0x10, 0x02]),
            Err(DecodeError::TooShort { need: 28, got: 3 })
        ));
        assert!(matches!(
            decode(&[0x01, 0x10, 0x0a, 0x11]),
            Err(DecodeError::TooShort { need: 40, got: 4 })
        ));
    }

    #[test]
    fn tiny_and_foreign_inputs() {
        assert!(matches!(
            decode(b""),
            Err(DecodeError::TooShort { got: 0, .. })
        ));
        assert!(matches!(
            decode(b"HE"),
            Err(DecodeError::TooShort { got: 2, .. })
        ));
        assert!(matches!(
            decode(b"HEP3\x00"),
            Err(DecodeError::TooShort { need: 6, got: 5 })
        ));
        assert!(matches!(decode(b"HEX"), Err(DecodeError::NotHep)));
        assert!(matches!(decode(b"HEP2\x00\x06"), Err(DecodeError::NotHep)));
        assert!(matches!(
            decode(b"INVITE sip:a SIP/2.0"),
            Err(DecodeError::NotHep)
        ));
        assert!(matches!(decode(&[2, 16, 7, 17]), Err(DecodeError::NotHep)));
        assert!(matches!(
            decode(&[2]),
            Err(DecodeError::TooShort { got: 1, .. })
        ));
    }

    #[test]
    fn header_alone_is_an_empty_packet() {
        let p = decode(b"HEP3\x00\x06").unwrap();
        assert_eq!(p.version, 3);
        assert_eq!(p.chunks().count(), 0);
        assert_eq!(p.payload, None);
        assert!(p.diagnostics.is_empty());
    }

    #[test]
    fn total_length_bounds() {
        for total in 0u16..6 {
            let mut m = b"HEP3".to_vec();
            m.extend_from_slice(&total.to_be_bytes());
            assert!(matches!(
                decode(&m),
                Err(DecodeError::BadTotalLength { total_len, available: 6 }) if total_len == total
            ));
        }
        let mut m = hep3(&basic_chunks());
        m.pop();
        assert!(matches!(
            decode(&m),
            Err(DecodeError::BadTotalLength { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_a_diagnostic() {
        let mut m = hep3(&basic_chunks());
        let len = m.len();
        m.extend_from_slice(b"junk");
        let p = decode(&m).unwrap();
        assert_eq!(p.raw.len(), len);
        assert_eq!(p.diagnostics, vec![Diagnostic::TrailingBytes { count: 4 }]);
        assert_eq!(p.src_port, Some(5060));
    }

    #[test]
    fn structural_errors() {
        // Chunk length 0 would loop forever.
        let zero = hep3(&[b"\x00\x00\x00\x01\x00\x00\x02".to_vec()]);
        assert!(matches!(
            decode(&zero),
            Err(DecodeError::ZeroLengthChunk { offset: 6, len: 0 })
        ));
        let five = hep3(&[b"\x00\x00\x00\x01\x00\x05\x02".to_vec()]);
        assert!(matches!(
            decode(&five),
            Err(DecodeError::ZeroLengthChunk { offset: 6, len: 5 })
        ));
        // Chunk claims 200 bytes inside a 13-byte message.
        let overrun = hep3(&[b"\x00\x00\x00\x01\x00\xc8\x02".to_vec()]);
        assert!(matches!(
            decode(&overrun),
            Err(DecodeError::ChunkOverrun {
                offset: 6,
                len: 200
            })
        ));
        // Three bytes left after the last chunk.
        let mut chunks = basic_chunks();
        chunks.push(vec![0, 0, 0]);
        let leftover = hep3(&chunks);
        assert!(matches!(
            decode(&leftover),
            Err(DecodeError::TruncatedChunkHeader { remaining: 3, .. })
        ));
    }

    #[test]
    fn typed_fields_and_zero_allocation() {
        let m = hep3(&basic_chunks());
        let p = decode(&m).unwrap();
        assert_eq!(p.version, 3);
        assert_eq!(p.ip_family, Some(2));
        assert_eq!(p.ip_proto, Some(17));
        assert_eq!(p.src_ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(p.dst_ip, Some("10.0.0.2".parse().unwrap()));
        assert_eq!((p.src_port, p.dst_port), (Some(5060), Some(5070)));
        assert_eq!(p.timestamp_micros(), Some(1_700_000_000_123_456));
        assert_eq!(p.proto_type, Some(1));
        assert_eq!(p.capture_id, Some(2001));
        assert_eq!(p.capture_id_normalized(), Some(2001));
        assert_eq!(
            p.payload_bytes(),
            Some(&b"OPTIONS sip:x SIP/2.0\r\n\r\n"[..])
        );
        assert!(p.diagnostics.is_empty());
        assert_eq!(p.diagnostics.capacity(), 0);
    }

    #[test]
    fn chunk_order_does_not_matter() {
        let forward = hep3(&basic_chunks());
        let mut reversed_chunks = basic_chunks();
        reversed_chunks.reverse();
        let reversed = hep3(&reversed_chunks);
        let a = decode(&forward).unwrap();
        let b = decode(&reversed).unwrap();
        assert_eq!(a.to_message(), b.to_message());
    }

    #[test]
    fn bad_length_leaves_field_empty() {
        let m = hep3(&[
            chunk(0, chunk_type::SRC_PORT, &[0x13]),
            chunk(0, chunk_type::SRC_IP4, &[1, 2, 3]),
            chunk(0, chunk_type::DST_PORT, &5060u16.to_be_bytes()),
        ]);
        let p = decode(&m).unwrap();
        assert_eq!(p.src_port, None);
        assert_eq!(p.src_ip, None);
        assert_eq!(p.dst_port, Some(5060));
        assert_eq!(
            p.diagnostics,
            vec![
                Diagnostic::BadChunkLength {
                    offset: 6,
                    type_id: chunk_type::SRC_PORT,
                    expected: 2,
                    got: 1
                },
                Diagnostic::BadChunkLength {
                    offset: 13,
                    type_id: chunk_type::SRC_IP4,
                    expected: 4,
                    got: 3
                },
            ]
        );
        let values: Vec<_> = p.chunks().map(|c| c.value()).collect();
        assert_eq!(
            values,
            vec![
                ChunkValue::BadLength {
                    expected: 2,
                    got: 1
                },
                ChunkValue::BadLength {
                    expected: 4,
                    got: 3
                },
                ChunkValue::U16(5060),
            ]
        );
    }

    #[test]
    fn duplicate_chunk_last_wins() {
        let m = hep3(&[
            chunk(0, chunk_type::CAPTURE_ID, &1u32.to_be_bytes()),
            chunk(0, chunk_type::CAPTURE_ID, &2u32.to_be_bytes()),
        ]);
        let p = decode(&m).unwrap();
        assert_eq!(p.capture_id, Some(2));
        assert_eq!(
            p.diagnostics,
            vec![Diagnostic::DuplicateChunk {
                offset: 16,
                type_id: chunk_type::CAPTURE_ID
            }]
        );
        assert_eq!(p.chunks().count(), 2);
    }

    #[test]
    fn vendor_and_unknown_chunks_stay_raw() {
        let m = hep3(&[
            chunk(0x0020, chunk_type::CAPTURE_ID, b"vendor"),
            chunk(0, 0x0019, b"undefined"),
            chunk(0, chunk_type::NODE_NAME, b"edge-1"),
        ]);
        let p = decode(&m).unwrap();
        assert_eq!(p.capture_id, None);
        assert_eq!(p.node_name, Some(&b"edge-1"[..]));
        let chunks: Vec<_> = p.chunks().collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].name(), None);
        assert_eq!(chunks[0].value(), ChunkValue::Raw(b"vendor"));
        assert_eq!(chunks[1].name(), None);
        assert_eq!(chunks[1].value(), ChunkValue::Raw(b"undefined"));
        assert_eq!(chunks[2].name(), Some("node_name"));
        assert_eq!(chunks[2].value(), ChunkValue::Text(b"edge-1"));
        assert_eq!((chunks[2].offset, chunks[2].len), (6 + 12 + 15, 12));
    }

    #[test]
    fn every_generic_type_has_a_name_and_field() {
        let names: Vec<_> = (0u16..0x40)
            .filter_map(|t| generic_chunk(t).map(|(name, _)| (t, name)))
            .collect();
        assert_eq!(names.len(), 34);
        assert_eq!(names.first(), Some(&(1, "ip_family")));
        assert_eq!(names.last(), Some(&(0x29, "group_id")));
    }

    #[test]
    fn mac_accepts_six_and_eight_bytes() {
        let m = hep3(&[
            chunk(
                0,
                chunk_type::SRC_MAC,
                &[0, 0, 0x52, 0x54, 0, 0x12, 0x34, 0x56],
            ),
            chunk(0, chunk_type::DST_MAC, &[0x52, 0x54, 0, 0xab, 0xcd, 0xef]),
        ]);
        let p = decode(&m).unwrap();
        assert_eq!(p.src_mac, Some(0x5254_0012_3456));
        assert_eq!(p.dst_mac, Some(0x5254_00ab_cdef));
        assert!(p.diagnostics.is_empty());
    }

    #[test]
    fn ipv6_and_extended_chunks() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let m = hep3(&[
            chunk(0, chunk_type::SRC_IP6, &src.octets()),
            chunk(0, chunk_type::MOS, &412u16.to_be_bytes()),
            chunk(0, chunk_type::JITTER, &7u32.to_be_bytes()),
            chunk(0, chunk_type::GROUP_ID, b"grp"),
            chunk(0, chunk_type::TCP_FLAGS, &[0x18]),
        ]);
        let p = decode(&m).unwrap();
        assert_eq!(p.src_ip, Some(IpAddr::V6(src)));
        assert_eq!(p.mos, Some(412));
        assert_eq!(p.jitter, Some(7));
        assert_eq!(p.group_id, Some(&b"grp"[..]));
        assert_eq!(p.tcp_flags, Some(0x18));
    }

    #[test]
    fn eep_magics_are_hep3() {
        for magic in [b"EEP1", b"EEP3"] {
            let mut m = hep3(&basic_chunks());
            m[..4].copy_from_slice(magic);
            let p = decode(&m).unwrap();
            assert_eq!(p.version, 3);
            assert_eq!(p.capture_id, Some(2001));
        }
    }

    #[test]
    fn sngrep_capture_id_quirk() {
        let m = hep3(&[chunk(0, chunk_type::CAPTURE_ID, &[0x07, 0xd1, 0, 0])]);
        let p = decode(&m).unwrap();
        assert_eq!(p.capture_id, Some(2001 << 16));
        assert_eq!(p.capture_id_normalized(), Some(2001));
    }

    fn legacy(version: u8, v6: bool, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![version, 0xee, if v6 { 10 } else { 2 }, 6];
        m.extend_from_slice(&5060u16.to_be_bytes());
        m.extend_from_slice(&5080u16.to_be_bytes());
        if v6 {
            m.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
            m.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        } else {
            m.extend_from_slice(&[192, 168, 0, 1, 192, 168, 0, 2]);
        }
        if version == 2 {
            m.extend_from_slice(&1_700_000_000u32.to_le_bytes());
            m.extend_from_slice(&250_000u32.to_le_bytes());
            m.extend_from_slice(&2001u16.to_le_bytes());
            m.extend_from_slice(&[0, 0]);
        }
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn hep1_ipv4() {
        let m = legacy(1, false, b"SIP/2.0 200 OK\r\n\r\n");
        let p = decode(&m).unwrap();
        assert_eq!(p.version, 1);
        assert_eq!(p.ip_family, Some(2));
        assert_eq!(p.ip_proto, Some(6));
        assert_eq!(p.src_ip, Some("192.168.0.1".parse().unwrap()));
        assert_eq!(p.dst_ip, Some("192.168.0.2".parse().unwrap()));
        assert_eq!((p.src_port, p.dst_port), (Some(5060), Some(5080)));
        assert_eq!(p.ts_sec, None);
        assert_eq!(p.capture_id, None);
        assert_eq!(p.proto_type, Some(1));
        assert_eq!(p.payload, Some(&b"SIP/2.0 200 OK\r\n\r\n"[..]));
        assert_eq!(p.chunks().count(), 0);
    }

    #[test]
    fn hep2_ipv6_with_little_endian_time_header() {
        let m = legacy(2, true, b"BYE sip:x SIP/2.0\r\n\r\n");
        let p = decode(&m).unwrap();
        assert_eq!(p.version, 2);
        assert_eq!(p.src_ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(p.dst_ip, Some("2001:db8::2".parse().unwrap()));
        assert_eq!(p.timestamp_micros(), Some(1_700_000_000_250_000));
        assert_eq!(p.capture_id, Some(2001));
        assert_eq!(p.payload, Some(&b"BYE sip:x SIP/2.0\r\n\r\n"[..]));
        // Header only: nothing that looks like SIP, so not taken for HEP.
        let bare = legacy(2, true, b"");
        assert!(matches!(decode(&bare), Err(DecodeError::NotHep)));
        assert!(matches!(
            decode(&bare[..bare.len() - 1]),
            Err(DecodeError::TooShort { need: 52, got: 51 })
        ));
    }

    #[test]
    fn legacy_headers_must_carry_sip_over_a_sip_transport() {
        let sip = b"INVITE sip:bob@x SIP/2.0\r\n\r\n";
        assert!(decode(&legacy(2, false, sip)).is_ok());
        for bad in [
            &b"\x00\x17garbage"[..],
            b"hello",
            b"INVITE\r\n",
            b" INVITE x",
        ] {
            assert!(
                matches!(decode(&legacy(2, false, bad)), Err(DecodeError::NotHep)),
                "{bad:?}"
            );
        }
        let mut icmp = legacy(1, false, sip);
        icmp[3] = 1;
        assert!(matches!(decode(&icmp), Err(DecodeError::NotHep)));
        // The probe: a version byte followed by random bytes is not a record (516 of 1,000
        // were before these checks).
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut decoded = 0;
        for i in 0..1000 {
            let mut datagram = vec![1 + (i % 2) as u8];
            for _ in 0..200 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                datagram.push(state as u8);
            }
            // A known family, so that the header checks are what decides.
            datagram[2] = if i % 3 == 0 { FAMILY_IPV6 } else { FAMILY_IPV4 };
            if decode(&datagram).is_ok() {
                decoded += 1;
            }
        }
        assert_eq!(decoded, 0);
    }

    #[test]
    fn compressed_payload() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"MESSAGE sip:x SIP/2.0\r\n\r\n").unwrap();
        let packed = e.finish().unwrap();
        let m = hep3(&[chunk(0, chunk_type::PAYLOAD_COMPRESSED, &packed)]);
        let p = decode(&m).unwrap();
        assert_eq!(
            p.inflate_payload(1024).unwrap(),
            b"MESSAGE sip:x SIP/2.0\r\n\r\n"
        );
        assert!(matches!(
            p.inflate_payload(4),
            Err(DecodeError::InflateTooLarge { limit: 4 })
        ));
        let plain_wire = hep3(&basic_chunks());
        let plain = decode(&plain_wire).unwrap();
        assert!(matches!(
            plain.inflate_payload(1024),
            Err(DecodeError::NoCompressedPayload)
        ));
    }
}
