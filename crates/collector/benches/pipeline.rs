//! Per-message pipeline cost on a real Kamailio INVITE (with SDP) from the shared samples:
//! `hep::decode` + dedup fingerprint and lookup + enrichment into a `store::Record`, i.e. the
//! work a receive thread does per packet before handing the record to the writers.
//!
//! Run: `cargo bench -p collector --bench pipeline`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use collector::{fingerprint, Deduplicator, Enriched, Enricher, PipelineConfig};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn sample_invite() -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/samples/kamailio-hep3-udp/datagrams");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("samples present")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .find(|d| {
            hep::decode(d)
                .ok()
                .and_then(|p| p.payload)
                .is_some_and(|p| p.starts_with(b"INVITE") && p.windows(4).any(|w| w == b"m=au"))
        })
        .expect("an INVITE with SDP in the sample")
}

fn bench(c: &mut Criterion) {
    let wire = sample_invite();
    let enricher = Enricher::new(&PipelineConfig {
        aleg_headers: vec![sip::AlegRule::header("X-CID")],
        custom_headers: vec!["X-Tenant".into()],
        ..PipelineConfig::default()
    })
    .expect("config");
    let dedup = Deduplicator::new(Duration::from_millis(50), 1_000_000);
    let mut n = 0u64;

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_dedup_enrich_invite", |b| {
        b.iter(|| {
            let packet = hep::decode(black_box(&wire)).expect("decode");
            let payload = enricher.payload(&packet).expect("payload");
            let fp = fingerprint(
                packet.src_ip.expect("ip"),
                packet.src_port.unwrap_or(0),
                packet.dst_ip.expect("ip"),
                packet.dst_port.unwrap_or(0),
                &payload,
            );
            // Vary the fingerprint so every iteration is a new message, as in real traffic.
            n += 1;
            let dup = dedup.is_duplicate(
                fp ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                n,
                Instant::now(),
            );
            assert!(!dup);
            match enricher.enrich(&packet, &payload, 0) {
                Enriched::Record(r, ..) => r,
                Enriched::Discarded(_) => unreachable!("no rules configured"),
            }
        })
    });
    let packet = hep::decode(&wire).expect("decode");
    let payload = packet.payload.expect("payload");
    group.bench_function("enrich_only_invite", |b| {
        b.iter(|| enricher.enrich(black_box(&packet), payload, 0))
    });
    group.bench_function("sip_index_only_invite", |b| {
        b.iter(|| sip::index(black_box(payload)).call_id.map(|c| c.len()))
    });
    let mut m = 0u64;
    group.bench_function("dedup_only", |b| {
        b.iter(|| {
            m += 1;
            dedup.is_duplicate(m.wrapping_mul(0x9e37_79b9_7f4a_7c15), m, Instant::now())
        })
    });
    // The table as it is at 130k packets/s: a virtual clock advances 7.7 µs per packet, so
    // horizons rotate and the shards hold what two horizons of that rate leave.
    let steady = Deduplicator::new(Duration::from_millis(50), 1_000_000);
    let t0 = Instant::now();
    let mut k = 0u64;
    group.bench_function("dedup_steady_130k_per_s", |b| {
        b.iter(|| {
            k += 1;
            let now = t0 + Duration::from_nanos(k * 7_700);
            steady.is_duplicate(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), k, now)
        })
    });
    group.bench_function("decode_only_invite", |b| {
        b.iter(|| {
            hep::decode(black_box(&wire))
                .expect("decode")
                .payload
                .map(<[u8]>::len)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
