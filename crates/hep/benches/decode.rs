//! HEPv3 decode and encode of real Kamailio datagrams (INVITE with SDP, REGISTER, 200 OK to an
//! INVITE), copied from the shared samples into `tests/data/` so the bench stands alone.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const SAMPLES: [(&str, &[u8]); 3] = [
    ("invite", include_bytes!("../tests/data/invite.hep")),
    ("register", include_bytes!("../tests/data/register.hep")),
    ("ok200", include_bytes!("../tests/data/ok200-invite.hep")),
];

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in SAMPLES {
        group.bench_function(name, |b| {
            b.iter(|| {
                let packet = hep::decode(black_box(bytes)).expect("sample decodes");
                black_box(packet.payload.map(<[u8]>::len))
            })
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in SAMPLES {
        let message = hep::decode(bytes).expect("sample decodes").to_message();
        let mut out = Vec::with_capacity(2048);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(&message)
                    .encode(&mut out)
                    .expect("sample encodes");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
