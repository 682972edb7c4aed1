//! HEPv3 chunks: the generic chunk table of spec rev. 37, the chunk view and its iterator.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Size of a chunk header: u16 vendor, u16 type, u16 length (the length counts this header).
pub const CHUNK_HEADER_LEN: usize = 6;

/// Size of the HEPv3 message header: 4 magic bytes and the u16 total length.
pub const HEP3_HEADER_LEN: usize = 6;

/// Generic (vendor 0) chunk type ids of the HEP3 specification rev. 37.
pub mod chunk_type {
    /// IP protocol family (2 = IPv4, 10 = IPv6), u8.
    pub const IP_FAMILY: u16 = 0x0001;
    /// IP protocol id (6 = TCP, 17 = UDP, 132 = SCTP), u8.
    pub const IP_PROTO: u16 = 0x0002;
    /// IPv4 source address.
    pub const SRC_IP4: u16 = 0x0003;
    /// IPv4 destination address.
    pub const DST_IP4: u16 = 0x0004;
    /// IPv6 source address.
    pub const SRC_IP6: u16 = 0x0005;
    /// IPv6 destination address.
    pub const DST_IP6: u16 = 0x0006;
    /// Source port, u16.
    pub const SRC_PORT: u16 = 0x0007;
    /// Destination port, u16.
    pub const DST_PORT: u16 = 0x0008;
    /// Capture time, seconds since the Unix epoch, u32.
    pub const TS_SEC: u16 = 0x0009;
    /// Capture time, microseconds within the second, u32.
    pub const TS_USEC: u16 = 0x000a;
    /// Payload protocol type (see [`crate::proto_type_name`]), u8.
    pub const PROTO_TYPE: u16 = 0x000b;
    /// Capture agent id, u32.
    pub const CAPTURE_ID: u16 = 0x000c;
    /// Keep-alive timer, seconds, u16.
    pub const KEEPALIVE_TIMER: u16 = 0x000d;
    /// Authentication key (capture password), bytes.
    pub const AUTH_KEY: u16 = 0x000e;
    /// Captured payload, bytes.
    pub const PAYLOAD: u16 = 0x000f;
    /// Captured payload, compressed (gzip, zlib or raw deflate).
    pub const PAYLOAD_COMPRESSED: u16 = 0x0010;
    /// Correlation id (e.g. the Call-ID an RTCP report or log line belongs to), bytes.
    pub const CORRELATION_ID: u16 = 0x0011;
    /// VLAN id, u16.
    pub const VLAN_ID: u16 = 0x0012;
    /// Capture agent (node) name, bytes (rev. 36+; older revisions called it group id).
    pub const NODE_NAME: u16 = 0x0013;
    /// Source MAC address, u64 (6-byte bodies are accepted too).
    pub const SRC_MAC: u16 = 0x0014;
    /// Destination MAC address, u64 (6-byte bodies are accepted too).
    pub const DST_MAC: u16 = 0x0015;
    /// Ethernet type, u16.
    pub const ETH_TYPE: u16 = 0x0016;
    /// TCP flags, u8.
    pub const TCP_FLAGS: u16 = 0x0017;
    /// IP type of service, u8.
    pub const IP_TOS: u16 = 0x0018;
    /// MOS value, u16.
    pub const MOS: u16 = 0x0020;
    /// R-factor, u16.
    pub const R_FACTOR: u16 = 0x0021;
    /// Geographic location, text.
    pub const GEO_LOCATION: u16 = 0x0022;
    /// Jitter, u32.
    pub const JITTER: u16 = 0x0023;
    /// Transaction type (e.g. `call`, `registration`), text.
    pub const TRANSACTION_TYPE: u16 = 0x0024;
    /// Keys of the JSON payload to index, text.
    pub const PAYLOAD_JSON_KEYS: u16 = 0x0025;
    /// Tag values, text.
    pub const TAGS_VALUES: u16 = 0x0026;
    /// Tag type, u16.
    pub const TAG_TYPE: u16 = 0x0027;
    /// Event type, u16.
    pub const EVENT_TYPE: u16 = 0x0028;
    /// Group id, text (rev. 36+; rev. 35 used it for the agent name).
    pub const GROUP_ID: u16 = 0x0029;
}

/// How the body of a generic chunk is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    U8,
    U16,
    U32,
    /// u64 on the wire per the spec; a bare 6-byte MAC is accepted as well.
    Mac,
    Ip4,
    Ip6,
    Text,
    Bytes,
}

impl Kind {
    /// The body length a fixed-size kind requires (the 8-byte form for MACs).
    pub(crate) fn fixed_len(self) -> Option<usize> {
        match self {
            Kind::U8 => Some(1),
            Kind::U16 => Some(2),
            Kind::U32 | Kind::Ip4 => Some(4),
            Kind::Mac => Some(8),
            Kind::Ip6 => Some(16),
            Kind::Text | Kind::Bytes => None,
        }
    }

    /// Whether `len` is an acceptable body length for this kind.
    pub(crate) fn accepts_len(self, len: usize) -> bool {
        match self {
            Kind::Mac => len == 8 || len == 6,
            other => other.fixed_len().map_or(true, |fixed| fixed == len),
        }
    }
}

/// Name and kind of a generic chunk type, `None` for types the specification does not define.
pub(crate) fn generic_chunk(type_id: u16) -> Option<(&'static str, Kind)> {
    use chunk_type as t;
    let entry = match type_id {
        t::IP_FAMILY => ("ip_family", Kind::U8),
        t::IP_PROTO => ("ip_proto", Kind::U8),
        t::SRC_IP4 => ("src_ip4", Kind::Ip4),
        t::DST_IP4 => ("dst_ip4", Kind::Ip4),
        t::SRC_IP6 => ("src_ip6", Kind::Ip6),
        t::DST_IP6 => ("dst_ip6", Kind::Ip6),
        t::SRC_PORT => ("src_port", Kind::U16),
        t::DST_PORT => ("dst_port", Kind::U16),
        t::TS_SEC => ("ts_sec", Kind::U32),
        t::TS_USEC => ("ts_usec", Kind::U32),
        t::PROTO_TYPE => ("proto_type", Kind::U8),
        t::CAPTURE_ID => ("capture_id", Kind::U32),
        t::KEEPALIVE_TIMER => ("keepalive_timer", Kind::U16),
        t::AUTH_KEY => ("auth_key", Kind::Text),
        t::PAYLOAD => ("payload", Kind::Bytes),
        t::PAYLOAD_COMPRESSED => ("payload_compressed", Kind::Bytes),
        t::CORRELATION_ID => ("correlation_id", Kind::Text),
        t::VLAN_ID => ("vlan_id", Kind::U16),
        t::NODE_NAME => ("node_name", Kind::Text),
        t::SRC_MAC => ("src_mac", Kind::Mac),
        t::DST_MAC => ("dst_mac", Kind::Mac),
        t::ETH_TYPE => ("eth_type", Kind::U16),
        t::TCP_FLAGS => ("tcp_flags", Kind::U8),
        t::IP_TOS => ("ip_tos", Kind::U8),
        t::MOS => ("mos", Kind::U16),
        t::R_FACTOR => ("r_factor", Kind::U16),
        t::GEO_LOCATION => ("geo_location", Kind::Text),
        t::JITTER => ("jitter", Kind::U32),
        t::TRANSACTION_TYPE => ("transaction_type", Kind::Text),
        t::PAYLOAD_JSON_KEYS => ("payload_json_keys", Kind::Text),
        t::TAGS_VALUES => ("tags_values", Kind::Text),
        t::TAG_TYPE => ("tag_type", Kind::U16),
        t::EVENT_TYPE => ("event_type", Kind::U16),
        t::GROUP_ID => ("group_id", Kind::Text),
        _ => return None,
    };
    Some(entry)
}

/// Whether a (vendor, type) pair maps to a typed field of [`crate::HepPacket`].
pub(crate) fn is_typed(vendor: u16, type_id: u16) -> bool {
    vendor == 0 && generic_chunk(type_id).is_some()
}

/// Big-endian integer of a body whose length the caller has checked (1..=8 bytes).
pub(crate) fn be_uint(body: &[u8]) -> u64 {
    body.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Interpret a body according to its kind; `None` when the length does not fit the kind.
pub(crate) fn typed_value(kind: Kind, body: &[u8]) -> Option<ChunkValue<'_>> {
    if !kind.accepts_len(body.len()) {
        return None;
    }
    let value = match kind {
        // The length checks above make every narrowing below lossless.
        Kind::U8 => ChunkValue::U8(be_uint(body) as u8),
        Kind::U16 => ChunkValue::U16(be_uint(body) as u16),
        Kind::U32 => ChunkValue::U32(be_uint(body) as u32),
        Kind::Mac => ChunkValue::U64(be_uint(body)),
        Kind::Ip4 => {
            let octets: [u8; 4] = body.try_into().ok()?;
            ChunkValue::Ipv4(Ipv4Addr::from(octets))
        }
        Kind::Ip6 => {
            let octets: [u8; 16] = body.try_into().ok()?;
            ChunkValue::Ipv6(Ipv6Addr::from(octets))
        }
        Kind::Text => ChunkValue::Text(body),
        Kind::Bytes => ChunkValue::Bytes(body),
    };
    Some(value)
}

/// One chunk of a HEPv3 message, borrowed from the message buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Offset of the chunk header from the start of the message.
    pub offset: usize,
    /// Vendor id; 0 is the generic chunk space of the specification.
    pub vendor: u16,
    /// Chunk type id.
    pub type_id: u16,
    /// Chunk length including its 6-byte header, as on the wire.
    pub len: u16,
    /// The chunk body (`len - 6` bytes).
    pub body: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// The specification's name for a generic chunk, `None` for vendor chunks and undefined types.
    pub fn name(&self) -> Option<&'static str> {
        if self.vendor != 0 {
            return None;
        }
        generic_chunk(self.type_id).map(|(name, _)| name)
    }

    /// The typed value of the chunk body.
    pub fn value(&self) -> ChunkValue<'a> {
        if self.vendor != 0 {
            return ChunkValue::Raw(self.body);
        }
        match generic_chunk(self.type_id) {
            None => ChunkValue::Raw(self.body),
            Some((_, kind)) => typed_value(kind, self.body).unwrap_or(ChunkValue::BadLength {
                expected: kind.fixed_len().unwrap_or(0),
                got: self.body.len(),
            }),
        }
    }
}

/// The typed value of a chunk body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkValue<'a> {
    /// One-byte integer.
    U8(u8),
    /// Big-endian u16.
    U16(u16),
    /// Big-endian u32.
    U32(u32),
    /// Big-endian u64 (MAC addresses; a 6-byte body is zero-extended).
    U64(u64),
    /// IPv4 address.
    Ipv4(Ipv4Addr),
    /// IPv6 address.
    Ipv6(Ipv6Addr),
    /// Textual chunk, raw bytes (not validated as UTF-8: producers send what they captured).
    Text(&'a [u8]),
    /// Binary chunk (payloads).
    Bytes(&'a [u8]),
    /// A fixed-size generic chunk whose body has the wrong length.
    BadLength {
        /// Required body length.
        expected: usize,
        /// Body length found.
        got: usize,
    },
    /// Vendor chunk or undefined generic type, kept as it came.
    Raw(&'a [u8]),
}

/// Iterator over the chunks of a HEPv3 message, in wire order.
///
/// It walks a message [`crate::decode`] has already validated, so it never meets a malformed
/// chunk there; on a hand-built buffer it simply stops at the first inconsistent chunk.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    message: &'a [u8],
    offset: usize,
}

impl<'a> Chunks<'a> {
    /// Chunks of `message`, a complete HEPv3 message (header included); an empty iterator for
    /// anything shorter than the header.
    pub(crate) fn new(message: &'a [u8]) -> Self {
        Chunks {
            message,
            offset: HEP3_HEADER_LEN,
        }
    }
}

/// Read the chunk header at `offset`: (vendor, type, length).
pub(crate) fn chunk_header(buf: &[u8], offset: usize) -> Option<(u16, u16, u16)> {
    let header = buf.get(offset..offset.checked_add(CHUNK_HEADER_LEN)?)?;
    let word = |i: usize| -> Option<u16> {
        let pair: [u8; 2] = header.get(i..i + 2)?.try_into().ok()?;
        Some(u16::from_be_bytes(pair))
    };
    Some((word(0)?, word(2)?, word(4)?))
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Chunk<'a>;

    fn next(&mut self) -> Option<Chunk<'a>> {
        let (vendor, type_id, len) = chunk_header(self.message, self.offset)?;
        let end = self.offset.checked_add(usize::from(len))?;
        let body = self.message.get(self.offset + CHUNK_HEADER_LEN..end)?;
        let chunk = Chunk {
            offset: self.offset,
            vendor,
            type_id,
            len,
            body,
        };
        self.offset = end;
        Some(chunk)
    }
}
