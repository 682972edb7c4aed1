//! The owned HEP message and its HEPv3 encoder.

use std::net::IpAddr;

use crate::chunk::{chunk_type as t, is_typed, Chunk, CHUNK_HEADER_LEN, HEP3_HEADER_LEN};
use crate::error::EncodeError;
use crate::packet::HepPacket;

/// Largest encodable message: the total length field is a u16.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// A chunk the typed fields do not cover (vendor chunk or undefined generic type), owned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RawChunk {
    /// Vendor id (0 = generic).
    pub vendor: u16,
    /// Chunk type id.
    pub type_id: u16,
    /// Chunk body, without the 6-byte header.
    pub body: Vec<u8>,
}

impl From<&Chunk<'_>> for RawChunk {
    fn from(chunk: &Chunk<'_>) -> Self {
        RawChunk {
            vendor: chunk.vendor,
            type_id: chunk.type_id,
            body: chunk.body.to_vec(),
        }
    }
}

/// An owned HEP message, the input of the HEPv3 encoder.
///
/// It mirrors the typed fields of [`HepPacket`]; a relay decodes, converts with
/// [`HepMessage::from_packet`], changes what it must (capture id, node name, auth key,
/// correlation id, …) and encodes. A HEPv1/v2 packet converts the same way and is then sent as
/// HEPv3.
///
/// Encoding writes the chunks in the order Kamailio and heplify use, so collectors that (wrongly)
/// rely on positions still accept it: family, protocol, source and destination address, source
/// and destination port, seconds, microseconds, protocol type, capture id, then the remaining
/// generic chunks by ascending type (keep-alive timer, auth key, correlation id, VLAN, node name,
/// MACs, …, group id), then `extra_chunks` in their order, and the payloads last (compressed
/// payload, then payload). Absent fields are not written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HepMessage {
    /// IP family, 2 (IPv4) or 10 (IPv6) (chunk 0x0001).
    pub ip_family: Option<u8>,
    /// IP protocol number (chunk 0x0002).
    pub ip_proto: Option<u8>,
    /// Source address (chunk 0x0003 for IPv4, 0x0005 for IPv6).
    pub src_ip: Option<IpAddr>,
    /// Destination address (chunk 0x0004 for IPv4, 0x0006 for IPv6).
    pub dst_ip: Option<IpAddr>,
    /// Source port (chunk 0x0007).
    pub src_port: Option<u16>,
    /// Destination port (chunk 0x0008).
    pub dst_port: Option<u16>,
    /// Capture time, seconds (chunk 0x0009).
    pub ts_sec: Option<u32>,
    /// Capture time, microseconds (chunk 0x000a).
    pub ts_usec: Option<u32>,
    /// Payload protocol type (chunk 0x000b).
    pub proto_type: Option<u8>,
    /// Capture agent id (chunk 0x000c).
    pub capture_id: Option<u32>,
    /// Keep-alive timer (chunk 0x000d).
    pub keepalive_timer: Option<u16>,
    /// Authentication key (chunk 0x000e).
    pub auth_key: Option<Vec<u8>>,
    /// Captured payload (chunk 0x000f).
    pub payload: Option<Vec<u8>>,
    /// Compressed payload (chunk 0x0010).
    pub payload_compressed: Option<Vec<u8>>,
    /// Correlation id (chunk 0x0011).
    pub correlation_id: Option<Vec<u8>>,
    /// VLAN id (chunk 0x0012).
    pub vlan_id: Option<u16>,
    /// Capture agent (node) name (chunk 0x0013).
    pub node_name: Option<Vec<u8>>,
    /// Source MAC address, u64 form (chunk 0x0014, written as 8 bytes).
    pub src_mac: Option<u64>,
    /// Destination MAC address, u64 form (chunk 0x0015, written as 8 bytes).
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
    pub geo_location: Option<Vec<u8>>,
    /// Jitter (chunk 0x0023).
    pub jitter: Option<u32>,
    /// Transaction type (chunk 0x0024).
    pub transaction_type: Option<Vec<u8>>,
    /// Keys of the JSON payload (chunk 0x0025).
    pub payload_json_keys: Option<Vec<u8>>,
    /// Tag values (chunk 0x0026).
    pub tags_values: Option<Vec<u8>>,
    /// Tag type (chunk 0x0027).
    pub tag_type: Option<u16>,
    /// Event type (chunk 0x0028).
    pub event_type: Option<u16>,
    /// Group id (chunk 0x0029).
    pub group_id: Option<Vec<u8>>,
    /// Vendor chunks and undefined generic types, written as they are. Generic types that have a
    /// field above are refused by the encoder ([`EncodeError::ReservedChunkType`]).
    pub extra_chunks: Vec<RawChunk>,
}

fn owned(bytes: Option<&[u8]>) -> Option<Vec<u8>> {
    bytes.map(<[u8]>::to_vec)
}

impl HepMessage {
    /// Copy a decoded packet (any version) into an owned message.
    ///
    /// Typed fields are copied; vendor chunks and undefined generic types go to `extra_chunks`
    /// in wire order. Typed chunks with a bad length carry no value and are dropped; of
    /// duplicated chunks only the winning (last) value survives, as in the packet.
    pub fn from_packet(packet: &HepPacket<'_>) -> Self {
        HepMessage {
            ip_family: packet.ip_family,
            ip_proto: packet.ip_proto,
            src_ip: packet.src_ip,
            dst_ip: packet.dst_ip,
            src_port: packet.src_port,
            dst_port: packet.dst_port,
            ts_sec: packet.ts_sec,
            ts_usec: packet.ts_usec,
            proto_type: packet.proto_type,
            capture_id: packet.capture_id,
            keepalive_timer: packet.keepalive_timer,
            auth_key: owned(packet.auth_key),
            payload: owned(packet.payload),
            payload_compressed: owned(packet.payload_compressed),
            correlation_id: owned(packet.correlation_id),
            vlan_id: packet.vlan_id,
            node_name: owned(packet.node_name),
            src_mac: packet.src_mac,
            dst_mac: packet.dst_mac,
            eth_type: packet.eth_type,
            tcp_flags: packet.tcp_flags,
            ip_tos: packet.ip_tos,
            mos: packet.mos,
            r_factor: packet.r_factor,
            geo_location: owned(packet.geo_location),
            jitter: packet.jitter,
            transaction_type: owned(packet.transaction_type),
            payload_json_keys: owned(packet.payload_json_keys),
            tags_values: owned(packet.tags_values),
            tag_type: packet.tag_type,
            event_type: packet.event_type,
            group_id: owned(packet.group_id),
            extra_chunks: packet
                .chunks()
                .filter(|c| !is_typed(c.vendor, c.type_id))
                .map(|c| RawChunk::from(&c))
                .collect(),
        }
    }

    /// Call `emit(vendor, type, body)` for every chunk in encoding order (see the type docs).
    fn for_each_chunk(&self, emit: impl FnMut(u16, u16, &[u8])) {
        let mut sink = ChunkSink(emit);
        sink.u8(t::IP_FAMILY, self.ip_family);
        sink.u8(t::IP_PROTO, self.ip_proto);
        sink.ip(t::SRC_IP4, t::SRC_IP6, self.src_ip);
        sink.ip(t::DST_IP4, t::DST_IP6, self.dst_ip);
        sink.u16(t::SRC_PORT, self.src_port);
        sink.u16(t::DST_PORT, self.dst_port);
        sink.u32(t::TS_SEC, self.ts_sec);
        sink.u32(t::TS_USEC, self.ts_usec);
        sink.u8(t::PROTO_TYPE, self.proto_type);
        sink.u32(t::CAPTURE_ID, self.capture_id);
        sink.u16(t::KEEPALIVE_TIMER, self.keepalive_timer);
        sink.bytes(t::AUTH_KEY, &self.auth_key);
        sink.bytes(t::CORRELATION_ID, &self.correlation_id);
        sink.u16(t::VLAN_ID, self.vlan_id);
        sink.bytes(t::NODE_NAME, &self.node_name);
        sink.u64(t::SRC_MAC, self.src_mac);
        sink.u64(t::DST_MAC, self.dst_mac);
        sink.u16(t::ETH_TYPE, self.eth_type);
        sink.u8(t::TCP_FLAGS, self.tcp_flags);
        sink.u8(t::IP_TOS, self.ip_tos);
        sink.u16(t::MOS, self.mos);
        sink.u16(t::R_FACTOR, self.r_factor);
        sink.bytes(t::GEO_LOCATION, &self.geo_location);
        sink.u32(t::JITTER, self.jitter);
        sink.bytes(t::TRANSACTION_TYPE, &self.transaction_type);
        sink.bytes(t::PAYLOAD_JSON_KEYS, &self.payload_json_keys);
        sink.bytes(t::TAGS_VALUES, &self.tags_values);
        sink.u16(t::TAG_TYPE, self.tag_type);
        sink.u16(t::EVENT_TYPE, self.event_type);
        sink.bytes(t::GROUP_ID, &self.group_id);
        for chunk in &self.extra_chunks {
            (sink.0)(chunk.vendor, chunk.type_id, &chunk.body);
        }
        sink.bytes(t::PAYLOAD_COMPRESSED, &self.payload_compressed);
        sink.bytes(t::PAYLOAD, &self.payload);
    }

    /// Size of the HEPv3 encoding in bytes (it may exceed [`MAX_MESSAGE_LEN`], in which case
    /// [`HepMessage::encode`] refuses the message).
    pub fn encoded_len(&self) -> usize {
        let mut len = HEP3_HEADER_LEN;
        self.for_each_chunk(|_, _, body| len = len.saturating_add(CHUNK_HEADER_LEN + body.len()));
        len
    }

    /// Append the HEPv3 encoding to `out`. On error nothing is written.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Some(clash) = self
            .extra_chunks
            .iter()
            .find(|c| is_typed(c.vendor, c.type_id))
        {
            return Err(EncodeError::ReservedChunkType {
                vendor: clash.vendor,
                type_id: clash.type_id,
            });
        }
        let len = self.encoded_len();
        let total = u16::try_from(len).map_err(|_| EncodeError::TooLarge { len })?;
        out.reserve(len);
        out.extend_from_slice(b"HEP3");
        out.extend_from_slice(&total.to_be_bytes());
        self.for_each_chunk(|vendor, type_id, body| {
            // Every chunk is smaller than the total, which fits a u16, so this cannot truncate.
            let chunk_len = (CHUNK_HEADER_LEN + body.len()) as u16;
            out.extend_from_slice(&vendor.to_be_bytes());
            out.extend_from_slice(&type_id.to_be_bytes());
            out.extend_from_slice(&chunk_len.to_be_bytes());
            out.extend_from_slice(body);
        });
        Ok(())
    }

    /// The HEPv3 encoding in a new vector.
    pub fn encode_to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

impl From<&HepPacket<'_>> for HepMessage {
    fn from(packet: &HepPacket<'_>) -> Self {
        HepMessage::from_packet(packet)
    }
}

impl HepPacket<'_> {
    /// Copy this packet into an owned [`HepMessage`] (see [`HepMessage::from_packet`]).
    pub fn to_message(&self) -> HepMessage {
        HepMessage::from_packet(self)
    }
}

/// Serialises optional field values into `(vendor, type, body)` calls, skipping absent ones.
struct ChunkSink<F>(F);

impl<F: FnMut(u16, u16, &[u8])> ChunkSink<F> {
    fn u8(&mut self, type_id: u16, value: Option<u8>) {
        if let Some(v) = value {
            (self.0)(0, type_id, &[v]);
        }
    }

    fn u16(&mut self, type_id: u16, value: Option<u16>) {
        if let Some(v) = value {
            (self.0)(0, type_id, &v.to_be_bytes());
        }
    }

    fn u32(&mut self, type_id: u16, value: Option<u32>) {
        if let Some(v) = value {
            (self.0)(0, type_id, &v.to_be_bytes());
        }
    }

    fn u64(&mut self, type_id: u16, value: Option<u64>) {
        if let Some(v) = value {
            (self.0)(0, type_id, &v.to_be_bytes());
        }
    }

    fn ip(&mut self, v4_type: u16, v6_type: u16, value: Option<IpAddr>) {
        match value {
            Some(IpAddr::V4(a)) => (self.0)(0, v4_type, &a.octets()),
            Some(IpAddr::V6(a)) => (self.0)(0, v6_type, &a.octets()),
            None => {}
        }
    }

    fn bytes(&mut self, type_id: u16, value: &Option<Vec<u8>>) {
        if let Some(v) = value {
            (self.0)(0, type_id, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;

    fn sample() -> HepMessage {
        HepMessage {
            ip_family: Some(2),
            ip_proto: Some(17),
            src_ip: Some("10.1.1.1".parse().unwrap()),
            dst_ip: Some("10.1.1.2".parse().unwrap()),
            src_port: Some(5060),
            dst_port: Some(5060),
            ts_sec: Some(1),
            ts_usec: Some(2),
            proto_type: Some(1),
            capture_id: Some(7),
            auth_key: Some(b"secret".to_vec()),
            correlation_id: Some(b"call-1".to_vec()),
            node_name: Some(b"edge".to_vec()),
            payload: Some(b"INVITE".to_vec()),
            extra_chunks: vec![RawChunk {
                vendor: 0x0021,
                type_id: 0x0001,
                body: b"x".to_vec(),
            }],
            ..HepMessage::default()
        }
    }

    #[test]
    fn chunk_order_matches_the_agents() {
        let wire = sample().encode_to_vec().unwrap();
        let packet = decode(&wire).unwrap();
        let order: Vec<_> = packet.chunks().map(|c| (c.vendor, c.type_id)).collect();
        assert_eq!(
            order,
            vec![
                (0, 0x01),
                (0, 0x02),
                (0, 0x03),
                (0, 0x04),
                (0, 0x07),
                (0, 0x08),
                (0, 0x09),
                (0, 0x0a),
                (0, 0x0b),
                (0, 0x0c),
                (0, 0x0e),
                (0, 0x11),
                (0, 0x13),
                (0x21, 0x01),
                (0, 0x0f),
            ]
        );
        assert_eq!(wire.len(), sample().encoded_len());
        assert_eq!(packet.to_message(), sample());
    }

    #[test]
    fn relay_rewrites_fields() {
        let wire = sample().encode_to_vec().unwrap();
        let mut message = decode(&wire).unwrap().to_message();
        message.capture_id = Some(99);
        message.node_name = Some(b"relay".to_vec());
        message.auth_key = None;
        let rewired = message.encode_to_vec().unwrap();
        let packet = decode(&rewired).unwrap();
        assert_eq!(packet.capture_id, Some(99));
        assert_eq!(packet.node_name, Some(&b"relay"[..]));
        assert_eq!(packet.auth_key, None);
        assert_eq!(packet.payload, Some(&b"INVITE"[..]));
    }

    #[test]
    fn too_large_and_reserved_are_refused_without_writing() {
        let mut big = sample();
        big.payload = Some(vec![b'a'; MAX_MESSAGE_LEN]);
        let mut out = b"keep".to_vec();
        assert_eq!(
            big.encode(&mut out),
            Err(EncodeError::TooLarge {
                len: big.encoded_len()
            })
        );
        assert_eq!(out, b"keep");

        let mut exact = HepMessage {
            payload: Some(vec![b'a'; MAX_MESSAGE_LEN - 12]),
            ..HepMessage::default()
        };
        assert_eq!(exact.encode_to_vec().unwrap().len(), MAX_MESSAGE_LEN);
        exact.ip_tos = Some(0);
        assert!(matches!(
            exact.encode_to_vec(),
            Err(EncodeError::TooLarge { len: 65542 })
        ));

        let mut reserved = sample();
        reserved.extra_chunks.push(RawChunk {
            vendor: 0,
            type_id: t::CAPTURE_ID,
            body: vec![0; 4],
        });
        assert_eq!(
            reserved.encode(&mut out),
            Err(EncodeError::ReservedChunkType {
                vendor: 0,
                type_id: t::CAPTURE_ID
            })
        );
        assert_eq!(out, b"keep");
    }

    #[test]
    fn hep2_converts_to_hep3() {
        let mut v2 = vec![2, 16, 2, 17];
        v2.extend_from_slice(&5060u16.to_be_bytes());
        v2.extend_from_slice(&5061u16.to_be_bytes());
        v2.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 2]);
        v2.extend_from_slice(&100u32.to_le_bytes());
        v2.extend_from_slice(&200u32.to_le_bytes());
        v2.extend_from_slice(&2001u16.to_le_bytes());
        v2.extend_from_slice(&[0, 0]);
        v2.extend_from_slice(b"ACK sip:x SIP/2.0\r\n\r\n");
        let legacy = decode(&v2).unwrap();
        let wire = legacy.to_message().encode_to_vec().unwrap();
        let v3 = decode(&wire).unwrap();
        assert_eq!(v3.version, 3);
        assert_eq!(v3.to_message(), legacy.to_message());
        assert_eq!(v3.capture_id, Some(2001));
        assert_eq!(v3.proto_type, Some(1));
        assert_eq!(v3.timestamp_micros(), Some(100_000_200));
    }
}
