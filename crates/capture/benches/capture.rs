//! Throughput of reading, decoding and TCP reassembly over real captures.

use std::path::PathBuf;

use capture::{decode_packet, open, Defragmenter, PacketSource, TcpReassembler, TcpSegment};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn samples_dir() -> PathBuf {
    std::env::var_os("HEPSTACK_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/samples"
            ))
        })
}

fn load(rel: &str) -> Vec<u8> {
    let path = samples_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read sample {}: {e}", path.display()))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("capture");
    for (name, rel) in [
        ("hep3_udp", "kamailio-hep3-udp/hep-udp9060.pcap"),
        (
            "sip_tcp_fragmented",
            "heplify-pcaps/sip_ipv4_tcp_fragmented.pcap",
        ),
        ("rtp_rtcp", "heplify-pcaps/rtp_rtcp_sip_ipv4_udp.pcap"),
    ] {
        let file = load(rel);
        let mut packets = 0u64;
        let mut reader = open(&file[..]).expect("open sample");
        while let Ok(Some(_)) = reader.next_packet() {
            packets += 1;
        }
        group.throughput(Throughput::Elements(packets));
        group.bench_function(format!("read/{name}"), |b| {
            b.iter(|| {
                let mut reader = open(&file[..]).expect("open sample");
                let mut bytes = 0usize;
                while let Ok(Some(p)) = reader.next_packet() {
                    bytes += p.data.len();
                }
                bytes
            })
        });
        group.bench_function(format!("read_decode_reassemble/{name}"), |b| {
            b.iter(|| {
                let mut reader = open(&file[..]).expect("open sample");
                let mut defrag = Defragmenter::default();
                let mut tcp = TcpReassembler::default();
                let mut bytes = 0usize;
                while let Ok(Some(p)) = reader.next_packet() {
                    let Ok(Some(d)) = decode_packet(p.link_type, p.timestamp, p.data, &mut defrag)
                    else {
                        continue;
                    };
                    match TcpSegment::from_decoded(&d, p.timestamp) {
                        Some(seg) => bytes += tcp.feed(&seg).len(),
                        None => bytes += d.payload().len(),
                    }
                }
                bytes
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
