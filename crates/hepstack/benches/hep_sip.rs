//! HEP decode + full SIP field extraction, the per-message work the collector does before
//! enrichment. Target (issue 2): ≥ 2.5 M msg/s on one core of the dev machine.
//!
//! Three groups on the sample INVITE (with SDP), REGISTER and 200 OK (with SDP): `hep_decode`
//! (HEP only), `sip_index` (SIP only, on the payload decoded once) and `hep_decode_sip_index`
//! (both, with every HOMER field read; `_configured` adds custom headers and an A-leg rule).
//!
//! A fourth group, `reference_rsip_parse`, times rsip's full parse of the same datagrams as the
//! machine-independent yardstick the target is quoted against (see BENCHMARKS.md).
//!
//! `taskset -c 1 cargo bench -p hepstack --bench hep_sip`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rsip::prelude::HasHeaders;

/// The HOMER field set, read the way the collector reads it (every accessor evaluated).
fn extract(datagram: &[u8], indexer: &sip::Indexer) -> usize {
    let Ok(packet) = hep::decode(datagram) else {
        return 0;
    };
    let Some(payload) = packet.payload else {
        return 0;
    };
    let msg = indexer.index(payload);
    let fields = [
        msg.method(),
        msg.call_id,
        msg.cseq_method(),
        msg.ruri_user(),
        msg.ruri_domain(),
        msg.from_user(),
        msg.from_domain(),
        msg.from_tag(),
        msg.to_user(),
        msg.to_domain(),
        msg.to_tag(),
        msg.contact_user(),
        msg.pid_user(),
        msg.via_branch(),
        msg.user_agent,
        msg.content_type,
        msg.aleg_id,
    ];
    fields
        .iter()
        .flatten()
        .map(|t| t.as_bytes().len())
        .sum::<usize>()
        + usize::from(msg.status_code().unwrap_or(0))
        + packet.src_port.map_or(0, usize::from)
}

fn bench(c: &mut Criterion) {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../hep/tests/data/");
    let samples: Vec<(&str, Vec<u8>)> = ["invite", "register", "ok200-invite"]
        .iter()
        .map(|name| {
            (
                *name,
                std::fs::read(format!("{data}{name}.hep")).expect("sample .hep"),
            )
        })
        .collect();
    let default = sip::Indexer::default();
    let configured = sip::Indexer::new(sip::IndexerConfig {
        custom_headers: vec!["X-Account".into(), "P-Charging-Vector".into()],
        aleg_headers: vec![sip::AlegRule::header("X-CID")],
        ..sip::IndexerConfig::default()
    })
    .expect("indexer config");

    let mut group = c.benchmark_group("hep_decode");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &samples {
        group.bench_function(*name, |b| {
            b.iter(|| hep::decode(black_box(bytes)).map_or(0, |p| p.payload.map_or(0, <[u8]>::len)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sip_index");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &samples {
        let payload = hep::decode(bytes)
            .ok()
            .and_then(|p| p.payload)
            .expect("sample carries a payload");
        group.bench_function(*name, |b| {
            b.iter(|| default.index(black_box(payload)).diagnostics.len())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("hep_decode_sip_index");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &samples {
        group.bench_function(*name, |b| b.iter(|| extract(black_box(bytes), &default)));
        group.bench_function(format!("{name}_configured"), |b| {
            b.iter(|| extract(black_box(bytes), &configured))
        });
    }
    group.finish();

    // Calibration: the issue quotes rsipstack's full parse (rsip `SipMessage::try_from`, the
    // parser rsipstack uses) at ≈ 0.82 M msg/s on the machine the 2.5 M msg/s target was set
    // on. Measuring it here turns the target into a ratio that holds on any machine: ≥ 3.05×
    // rsip's throughput. HEP decode is included so both sides do the same work up front.
    let mut group = c.benchmark_group("reference_rsip_parse");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &samples {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let Ok(packet) = hep::decode(black_box(bytes)) else {
                    return 0;
                };
                packet
                    .payload
                    .and_then(|p| rsip::SipMessage::try_from(p).ok())
                    .map_or(0, |m| m.headers().iter().count())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
