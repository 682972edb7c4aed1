//! Throughput of the hot decoders: binary RTCP, RTCP JSON in and out, DNS, and the E-model.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use payload::emodel::{evaluate, Codec, EModelInput};

/// rtpengine's HOMER JSON (datagram 000001 of the rtpengine sample).
const RTPENGINE_JSON: &str = r#"{ "sender_information":{"ntp_timestamp_sec":4004332680,"ntp_timestamp_usec":1224008704,"octets":8160,"rtp_timestamp":8160, "packets":51},"ssrc":286331153,"type":200,"report_count":1,"report_blocks":[{"source_ssrc":572662306,"highest_seq_no":1051,"fraction_lost":1,"ia_jitter":25,"packets_lost":0,"lsr":0,"dlsr":0}],"sdes_report_count":1,"sdes_information": [ {"sdes_chunk_ssrc":286331153,"type":1,"text":"caller@127.0.0.1"}] }"#;

/// A DNS response: example.com A 93.184.216.34 with the name compressed.
const DNS_RESPONSE: &[u8] = &[
    0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3,
    b'c', b'o', b'm', 0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216,
    34,
];

fn benches(c: &mut Criterion) {
    let report = payload::rtcp::from_json(RTPENGINE_JSON.as_bytes()).expect("sample parses");
    let binary = payload::rtcp::encode(&report).expect("sample encodes");

    let mut g = c.benchmark_group("rtcp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_binary_sr_sdes", |b| {
        b.iter(|| payload::rtcp::parse(black_box(&binary)))
    });
    g.bench_function("from_json_rtpengine", |b| {
        b.iter(|| payload::rtcp::from_json(black_box(RTPENGINE_JSON.as_bytes())))
    });
    g.bench_function("to_json_string", |b| {
        b.iter(|| serde_json::to_string(black_box(&report)))
    });
    g.bench_function("dispatch_binary", |b| {
        b.iter(|| payload::parse(5, black_box(&binary)))
    });
    g.finish();

    let mut g = c.benchmark_group("dns");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_a_response", |b| {
        b.iter(|| payload::dns::parse(black_box(DNS_RESPONSE)))
    });
    g.finish();

    c.bench_function("emodel_evaluate", |b| {
        let input = EModelInput {
            codec: Codec::G729a,
            one_way_delay_ms: 180.0,
            packet_loss_percent: 2.5,
            burst_ratio: 1.3,
            advantage: 0.0,
        };
        b.iter(|| evaluate(black_box(&input)))
    });
}

criterion_group!(payload_benches, benches);
criterion_main!(payload_benches);
