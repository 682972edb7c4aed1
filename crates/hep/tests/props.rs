//! Property tests: arbitrary and mutated input never panics; encode/decode round-trips.

mod common;

use std::sync::OnceLock;

use common::all_samples;
use hep::{decode, HepMessage, HepPacket, RawChunk};
use proptest::prelude::*;

/// Exercise everything a consumer may call on a decoded packet, then check that re-encoding it
/// and decoding again gives the same owned message.
fn exercise(packet: &HepPacket<'_>) {
    for chunk in packet.chunks() {
        let _ = (chunk.name(), chunk.value());
        assert!(chunk.offset + usize::from(chunk.len) <= packet.raw.len());
    }
    let _ = packet.timestamp_micros();
    let _ = packet.capture_id_normalized();
    let _ = packet.inflate_payload(4096);
    let message = packet.to_message();
    match message.encode_to_vec() {
        Ok(wire) => {
            let again = decode(&wire).expect("an encoded message decodes");
            assert_eq!(again.to_message(), message);
        }
        // Growth on re-encoding (a v1/v2 header becoming chunks, 6-byte MACs written as 8) can
        // push a message near the limit past it; anything else is a bug.
        Err(hep::EncodeError::TooLarge { len }) => assert!(len > hep::MAX_MESSAGE_LEN),
        Err(other) => panic!("re-encoding a decoded packet failed: {other}"),
    }
}

fn samples() -> &'static [Vec<u8>] {
    static SAMPLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SAMPLES.get_or_init(|| all_samples().into_iter().map(|s| s.bytes).collect())
}

/// Bytes shaped like a HEPv3 message: magic, a plausible total and chunk headers with random
/// (sometimes wrong) lengths, so the fuzzing reaches the chunk walk.
fn hep3_shaped() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (
        prop_oneof![Just(0u16), any::<u16>()],
        prop_oneof![0u16..0x30, any::<u16>()],
        proptest::collection::vec(any::<u8>(), 0..24),
        prop_oneof![4 => Just(None), 1 => any::<u16>().prop_map(Some)],
    )
        .prop_map(|(vendor, type_id, body, bad_len)| {
            let len = bad_len.unwrap_or((body.len() + 6) as u16);
            let mut c = Vec::new();
            c.extend_from_slice(&vendor.to_be_bytes());
            c.extend_from_slice(&type_id.to_be_bytes());
            c.extend_from_slice(&len.to_be_bytes());
            c.extend_from_slice(&body);
            c
        });
    (
        proptest::collection::vec(chunk, 0..12),
        prop_oneof![4 => Just(0i32), 1 => -8i32..8],
        proptest::sample::select(vec![&b"HEP3"[..], b"EEP1", b"EEP3"]),
    )
        .prop_map(|(chunks, skew, magic)| {
            let body = chunks.concat();
            let total = (body.len() as i32 + 6 + skew).clamp(0, 0xffff) as u16;
            let mut m = magic.to_vec();
            m.extend_from_slice(&total.to_be_bytes());
            m.extend_from_slice(&body);
            m
        })
}

fn bytes_field() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))
}

fn ip() -> impl Strategy<Value = Option<std::net::IpAddr>> {
    proptest::option::of(prop_oneof![
        any::<[u8; 4]>().prop_map(std::net::IpAddr::from),
        any::<[u8; 16]>().prop_map(std::net::IpAddr::from),
    ])
}

fn extra_chunk() -> impl Strategy<Value = RawChunk> {
    // Only chunks without a typed field: vendor chunks or undefined generic types.
    let untyped_generic = prop_oneof![Just(0u16), 0x19u16..0x20, 0x2au16..=0xffff];
    prop_oneof![
        (1u16..=0xffff, any::<u16>()),
        untyped_generic.prop_map(|t| (0u16, t)),
    ]
    .prop_flat_map(|(vendor, type_id)| {
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(move |body| RawChunk {
            vendor,
            type_id,
            body,
        })
    })
}

fn message() -> impl Strategy<Value = HepMessage> {
    use proptest::option::of;
    let network = (
        of(any::<u8>()),
        of(any::<u8>()),
        ip(),
        ip(),
        of(any::<u16>()),
        of(any::<u16>()),
        of(any::<u32>()),
        of(any::<u32>()),
        of(any::<u8>()),
        of(any::<u32>()),
        of(any::<u16>()),
    );
    let identity = (
        bytes_field(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..2000)),
        bytes_field(),
        bytes_field(),
        of(any::<u16>()),
        bytes_field(),
        of(any::<u64>()),
        of(any::<u64>()),
        of(any::<u16>()),
        of(any::<u8>()),
        of(any::<u8>()),
    );
    let quality = (
        of(any::<u16>()),
        of(any::<u16>()),
        bytes_field(),
        of(any::<u32>()),
        bytes_field(),
        bytes_field(),
        bytes_field(),
        of(any::<u16>()),
        of(any::<u16>()),
        bytes_field(),
        proptest::collection::vec(extra_chunk(), 0..4),
    );
    (network, identity, quality).prop_map(|(n, i, q)| HepMessage {
        ip_family: n.0,
        ip_proto: n.1,
        src_ip: n.2,
        dst_ip: n.3,
        src_port: n.4,
        dst_port: n.5,
        ts_sec: n.6,
        ts_usec: n.7,
        proto_type: n.8,
        capture_id: n.9,
        keepalive_timer: n.10,
        auth_key: i.0,
        payload: i.1,
        payload_compressed: i.2,
        correlation_id: i.3,
        vlan_id: i.4,
        node_name: i.5,
        src_mac: i.6,
        dst_mac: i.7,
        eth_type: i.8,
        tcp_flags: i.9,
        ip_tos: i.10,
        mos: q.0,
        r_factor: q.1,
        geo_location: q.2,
        jitter: q.3,
        transaction_type: q.4,
        payload_json_keys: q.5,
        tags_values: q.6,
        tag_type: q.7,
        event_type: q.8,
        group_id: q.9,
        extra_chunks: q.10,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(packet) = decode(&data) {
            exercise(&packet);
        }
    }

    #[test]
    fn hep3_shaped_bytes_never_panic(data in hep3_shaped()) {
        if let Ok(packet) = decode(&data) {
            exercise(&packet);
        }
    }

    #[test]
    fn legacy_shaped_bytes_never_panic(
        version in 1u8..=2,
        family in prop_oneof![Just(2u8), Just(10u8)],
        rest in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut data = vec![version, 16, family];
        data.extend_from_slice(&rest);
        if let Ok(packet) = decode(&data) {
            prop_assert_eq!(packet.version, version);
            exercise(&packet);
        }
    }

    #[test]
    fn mutated_samples_never_panic(
        index in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<proptest::sample::Index>()),
    ) {
        let samples = samples();
        let mut data = index.get(samples).clone();
        for (at, byte) in edits {
            let at = at.index(data.len());
            data[at] = byte;
        }
        if let Some(cut) = cut {
            data.truncate(cut.index(data.len() + 1));
        }
        if let Ok(packet) = decode(&data) {
            exercise(&packet);
        }
    }

    #[test]
    fn encode_then_decode_round_trips(message in message()) {
        let wire = message.encode_to_vec().expect("generated messages fit");
        prop_assert_eq!(wire.len(), message.encoded_len());
        let packet = decode(&wire).expect("encoded message decodes");
        prop_assert_eq!(packet.version, 3);
        prop_assert!(packet.diagnostics.is_empty());
        prop_assert_eq!(packet.raw.len(), wire.len());
        prop_assert_eq!(packet.to_message(), message);
    }
}
