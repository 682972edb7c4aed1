//! Indexing cost per message on three real Kamailio payloads: an INVITE with SDP, a REGISTER
//! with Authorization and a 200 OK to INVITE with SDP (`tests/data/`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sip::{AlegRule, Indexer, IndexerConfig};

const INVITE: &[u8] = include_bytes!("../tests/data/invite_sdp.sip");
const REGISTER: &[u8] = include_bytes!("../tests/data/register_auth.sip");
const OK: &[u8] = include_bytes!("../tests/data/ok_invite_sdp.sip");

fn bench(c: &mut Criterion) {
    let default = Indexer::default();
    let configured = Indexer::new(IndexerConfig {
        custom_headers: vec!["X-Tenant".into()],
        aleg_headers: vec![
            AlegRule::header("X-CID"),
            AlegRule::with_regex("P-Charging-Vector", "icid-value=([^;]+)"),
        ],
        ..IndexerConfig::default()
    })
    .expect("valid config");

    let mut group = c.benchmark_group("index");
    group.throughput(Throughput::Elements(1));
    for (name, msg) in [
        ("invite_sdp", INVITE),
        ("register_auth", REGISTER),
        ("ok_invite_sdp", OK),
    ] {
        group.bench_function(name, |b| b.iter(|| default.index(black_box(msg))));
        group.bench_function(format!("{name}_configured"), |b| {
            b.iter(|| configured.index(black_box(msg)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("message_len_invite", |b| {
        b.iter(|| sip::message_len(black_box(INVITE), 65_536))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
