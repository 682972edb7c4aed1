//! Throughput and memory benchmark of the capture agent (run it release, pinned to one core):
//!
//! ```text
//! cargo build --release -p agent --example capture_bench
//! taskset -c 1 target/release/examples/capture_bench ../shared/samples/kamailio-hep3-udp/sip-traffic.pcap
//! ```
//!
//! 1. pcap file → HEP frames into a null sink (packets/s, messages/s), the file built by
//!    repeating the sample's packets with shifted timestamps (beyond the duplicate window);
//! 2. the same into a UDP collector on loopback through the real queue and sender;
//! 3. a flood of unfinished TCP streams (partial SIP messages, out-of-order segments) and
//!    lone IP fragments with the default caps: peak RSS and the bytes the pipeline holds.

use std::io::BufWriter;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::{AgentConfig, Balance, Counters, Pacing, Pipeline, WhenFull};
use capture::{LinkType, PacketSource, PcapWriter, Timestamp, TsResolution};
use tokio_util::sync::CancellationToken;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let sample = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/samples/kamailio-hep3-udp/sip-traffic.pcap"));
    let target_packets: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(300_000);
    let mut reader = capture::open(std::fs::File::open(&sample).expect("sample")).expect("pcap");
    let mut frames = Vec::new();
    let mut link = LinkType::ETHERNET;
    while let Some(p) = reader.next_packet().expect("read") {
        link = p.link_type;
        frames.push((p.timestamp, p.data.to_vec()));
    }
    let first = frames.first().map(|f| f.0).unwrap_or(Timestamp::EPOCH);
    let span = frames
        .last()
        .map(|f| f.0)
        .unwrap_or(first)
        .saturating_since(first);
    let file = std::env::temp_dir().join(format!("agent-bench-{}.pcap", std::process::id()));
    {
        let out = BufWriter::new(std::fs::File::create(&file).expect("create"));
        let mut w = PcapWriter::new(out, link, TsResolution::Micros, 262_144).expect("writer");
        let mut written = 0;
        let mut rep = 0u32;
        while written < target_packets {
            let shift = (span + Duration::from_secs(1)) * rep;
            for (ts, data) in &frames {
                let t = Timestamp::new(1_700_000_000, 0)
                    .saturating_add(ts.saturating_since(first) + shift);
                w.write_packet(t, data.len() as u32, data).expect("write");
                written += 1;
            }
            rep += 1;
        }
        w.flush().expect("flush");
    }
    let files = vec![file.clone()];

    // 1. Null sink.
    let counters = Arc::new(Counters::default());
    let mut pipeline = Pipeline::new(AgentConfig::default(), counters.clone());
    let mut messages = 0u64;
    let mut null = |m: &[u8]| messages += m.len().min(1) as u64;
    let started = Instant::now();
    let errors = agent::capture_files(
        &files,
        Pacing::Unpaced,
        &mut pipeline,
        &mut null,
        &CancellationToken::new(),
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert!(errors.is_empty(), "{errors:?}");
    let s = counters.snapshot();
    println!(
        "null sink: {} packets, {} HEP messages in {:.3} s = {:.0} packets/s, {:.0} messages/s",
        s.seen,
        messages,
        elapsed,
        s.seen as f64 / elapsed,
        messages as f64 / elapsed
    );

    // 2. UDP loopback collector.
    let collector = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let _ = socket2::SockRef::from(&collector).set_recv_buffer_size(32 << 20);
    collector
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let addr = collector.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let received = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut n = 0u64;
            loop {
                match collector.recv(&mut buf) {
                    Ok(_) => n += 1,
                    Err(_) if stop.load(Ordering::Relaxed) => return n,
                    Err(_) => {}
                }
            }
        })
    };
    let counters = Arc::new(Counters::default());
    let (mut producer, rx) = agent::output::queue(65_536, WhenFull::Wait, counters.clone());
    let target = format!("udp://{addr}").parse().expect("target");
    let out_counters = counters.clone();
    let sender = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt")
            .block_on(agent::output::run(
                rx,
                vec![target],
                Balance::Failover,
                sender::SenderConfig::default(),
                out_counters,
                None,
            ))
    });
    let mut pipeline = Pipeline::new(AgentConfig::default(), counters.clone());
    let started = Instant::now();
    let errors = agent::capture_files(
        &files,
        Pacing::Unpaced,
        &mut pipeline,
        &mut producer,
        &CancellationToken::new(),
    );
    drop(producer);
    sender.join().expect("sender");
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let got = received.join().expect("receiver");
    assert!(errors.is_empty(), "{errors:?}");
    let s = counters.snapshot();
    println!(
        "udp loopback: {} packets, {} HEP sent ({} received by the collector socket) in {:.3} s = {:.0} packets/s, {:.0} messages/s",
        s.seen,
        s.sent,
        got,
        elapsed,
        s.seen as f64 / elapsed,
        s.sent as f64 / elapsed
    );
    let _ = std::fs::remove_file(&file);

    // 3. Flood of unfinished TCP streams and lone IP fragments.
    let counters = Arc::new(Counters::default());
    let mut pipeline = Pipeline::new(AgentConfig::default(), counters.clone());
    let before = rss_kib("VmHWM:");
    let mut sink = |_: &[u8]| {};
    let partial = b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: flood\r\nContent-Length: 60000\r\n\r\nv=0\r\n";
    let filler = [b'x'; 1200];
    let flood = 2_000_000u32;
    let started = Instant::now();
    let mut max_held = 0usize;
    for i in 0..flood {
        let ts = Timestamp::new(1_700_000_000 + i64::from(i / 20_000), (i % 20_000) * 50_000);
        let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let frame = match i % 3 {
            // A new connection's first segment: an incomplete SIP message.
            0 => ipv4(src, 6, 0, &tcp(40_000 + (i % 20_000) as u16, 1000, partial)),
            // A segment far ahead of the stream: buffered out of order behind a hole.
            1 => ipv4(
                src,
                6,
                0,
                &tcp(40_000 + (i % 20_000) as u16, 1000 + 100_000, &filler),
            ),
            // The first fragment of a datagram whose rest never comes.
            _ => ipv4(src, 17, 0x2000, &filler),
        };
        pipeline.process(LinkType::RAW, ts, &frame, &mut sink);
        if i % 100_000 == 0 {
            max_held = max_held.max(pipeline.buffered_bytes());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "flood: {} packets ({} unfinished TCP streams, out-of-order segments, lone fragments) in {:.2} s; pipeline holds at most {} MiB; peak RSS {} MiB (before the flood {} MiB)",
        flood,
        flood / 3,
        elapsed,
        max_held >> 20,
        rss_kib("VmHWM:") >> 10,
        before >> 10
    );
}

fn tcp(src_port: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&src_port.to_be_bytes());
    t.extend_from_slice(&5060u16.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

fn ipv4(src: [u8; 4], protocol: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut f = vec![0x45, 0];
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&(src[3] as u16).to_be_bytes());
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, protocol, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[10, 255, 0, 1]);
    f.extend_from_slice(payload);
    f
}
