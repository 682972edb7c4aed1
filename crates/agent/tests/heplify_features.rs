//! What heplify users rely on, in the agent: discard filters by SIP method and address,
//! rotated pcap files of what was captured, and a disk buffer that keeps messages while no
//! collector is up and sends them in order when one comes back.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::samples;

use agent::{AgentConfig, Balance, Counters, Pacing, Pipeline, WhenFull};
use capture::PacketSource as _;
use tokio_util::sync::CancellationToken;

/// One emitted message: HEP type, CSeq method (SIP), addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Out {
    proto_type: u8,
    method: String,
    src: IpAddr,
    dst: IpAddr,
}

fn run(
    path: &Path,
    cfg: AgentConfig,
    pcap: Option<agent::RotatingPcap>,
) -> (Vec<Out>, agent::Snapshot) {
    let counters = Arc::new(Counters::default());
    let mut pipeline = Pipeline::new(cfg, counters.clone());
    if let Some(p) = pcap {
        pipeline.write_pcap(p);
    }
    let mut out = Vec::new();
    let mut sink = |bytes: &[u8]| {
        let p = hep::decode(bytes).expect("HEP");
        let payload = p.payload.unwrap_or_default();
        let method = if p.proto_type == Some(1) {
            sip::index(payload)
                .cseq
                .map(|c| c.method.to_str_lossy().into_owned())
                .unwrap_or_default()
        } else {
            String::new()
        };
        out.push(Out {
            proto_type: p.proto_type.unwrap_or_default(),
            method,
            src: p.src_ip.expect("src"),
            dst: p.dst_ip.expect("dst"),
        });
    };
    let errors = agent::capture_files(
        &[path.to_path_buf()],
        Pacing::Unpaced,
        &mut pipeline,
        &mut sink,
        &CancellationToken::new(),
    );
    assert!(errors.is_empty(), "{errors:?}");
    (out, counters.snapshot())
}

#[test]
fn discard_by_method_drops_requests_and_their_responses() {
    let path = samples().join("kamailio-hep3-udp/sip-traffic.pcap");
    let (all, _) = run(&path, AgentConfig::default(), None);
    let options = all.iter().filter(|o| o.method == "OPTIONS").count();
    assert!(options >= 3, "the sample has OPTIONS and their replies");
    let cfg = AgentConfig {
        discard_methods: vec!["options".into(), "NOTIFY".into()],
        ..AgentConfig::default()
    };
    let (kept, s) = run(&path, cfg, None);
    assert!(kept.iter().all(|o| o.method != "OPTIONS"));
    assert_eq!(kept.len(), all.len() - options);
    assert_eq!(s.discarded as usize, options);
    // Everything else is untouched.
    let rest: Vec<&Out> = all.iter().filter(|o| o.method != "OPTIONS").collect();
    assert_eq!(kept.iter().collect::<Vec<_>>(), rest);
}

#[test]
fn discard_by_address_drops_every_message_from_or_to_it() {
    let path = samples().join("heplify-pcaps/rtp_rtcp_sip_ipv4_udp.pcap");
    let (all, _) = run(&path, AgentConfig::default(), None);
    let target = all.iter().find(|o| o.proto_type == 1).expect("SIP").src;
    let touches = |o: &Out| o.src == target || o.dst == target;
    let hit = all.iter().filter(|o| touches(o)).count();
    assert!(hit > 0 && hit < all.len() + 1);
    let cfg = AgentConfig {
        discard_ips: vec![ipnet::IpNet::from(target)],
        ..AgentConfig::default()
    };
    let (kept, s) = run(&path, cfg, None);
    assert!(kept.iter().all(|o| !touches(o)), "{kept:?}");
    assert_eq!(kept.len(), all.len() - hit);
    assert_eq!(s.discarded as usize, hit);
    // A network containing it works the same; one that does not, discards nothing.
    let net: ipnet::IpNet = match target {
        IpAddr::V4(v4) => format!("{}/24", v4).parse().expect("net"),
        IpAddr::V6(v6) => format!("{}/64", v6).parse().expect("net"),
    };
    let (kept_net, _) = run(
        &path,
        AgentConfig {
            discard_ips: vec![net.trunc()],
            ..AgentConfig::default()
        },
        None,
    );
    assert!(kept_net.iter().all(|o| !touches(o)));
    let (kept_none, s) = run(
        &path,
        AgentConfig {
            discard_ips: vec!["192.0.2.0/24".parse().expect("net")],
            ..AgentConfig::default()
        },
        None,
    );
    assert_eq!((kept_none.len(), s.discarded), (all.len(), 0));
}

fn frames(path: &Path) -> Vec<(i64, u32, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("open");
    let mut r = capture::open(std::io::BufReader::new(file)).expect("pcap");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().expect("packet") {
        out.push((
            p.timestamp.secs(),
            p.timestamp.subsec_nanos() / 1000,
            p.data.to_vec(),
        ));
    }
    out
}

#[test]
fn writes_every_captured_packet_to_rotated_pcap_files() {
    let input = samples().join("heplify-pcaps/rtp_rtcp_sip_ipv4_udp.pcap");
    let want = frames(&input);
    let span = want.last().expect("packets").0 - want[0].0;
    assert!(span >= 2, "the sample spans {span} s");
    let dir = tempfile::tempdir().expect("tmp");
    let out = agent::RotatingPcap::open(agent::PcapRotation {
        dir: dir.path().to_path_buf(),
        max_file_bytes: 0,
        max_file_age: Duration::from_secs(1),
        max_files: 1000,
    })
    .expect("open");
    let (_, s) = run(&input, AgentConfig::default(), Some(out));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "rotated by packet time: {files:?}");
    let got: Vec<(i64, u32, Vec<u8>)> = files.iter().flat_map(|f| frames(f)).collect();
    assert_eq!(got, want, "every frame, byte for byte, in order");
    assert_eq!(s.pcap_written as usize, want.len());
    for f in &files {
        let times: BTreeSet<i64> = frames(f).iter().map(|t| t.0).collect();
        let (lo, hi) = (times.first().expect("t"), times.last().expect("t"));
        assert!(hi - lo <= 1, "{f:?} spans {lo}..{hi}");
    }
}

/// HEP messages read from a TCP connection, as they arrive.
fn read_hep(stream: &mut std::net::TcpStream, want: usize, timeout: Duration) -> Vec<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut framer = hep::StreamFramer::new(hep::FramerConfig::default());
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + timeout;
    while got.len() < want && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = framer.push(&buf[..n]);
                while let Some(f) = framer.next_frame() {
                    got.push(f.to_vec());
                }
            }
            Err(_) => continue,
        }
    }
    got
}

fn message(n: u32) -> Vec<u8> {
    hep::HepMessage {
        ip_family: Some(hep::FAMILY_IPV4),
        ip_proto: Some(17),
        src_ip: Some("10.0.0.1".parse().expect("ip")),
        dst_ip: Some("10.0.0.2".parse().expect("ip")),
        src_port: Some(5060),
        dst_port: Some(5060),
        ts_sec: Some(1_700_000_000),
        ts_usec: Some(n),
        proto_type: Some(100),
        capture_id: Some(2001),
        payload: Some(format!("message {n}").into_bytes()),
        ..Default::default()
    }
    .encode_to_vec()
    .expect("encode")
}

#[test]
fn disk_buffer_keeps_messages_while_the_collector_is_down_and_sends_them_in_order() {
    use agent::pipeline::HepSink as _;
    // A port nobody listens on yet: the collector is down.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let spool_dir = tempfile::tempdir().expect("tmp");
    let sp = spool::Spool::open(spool_dir.path(), spool::SpoolConfig::default()).expect("spool");
    let counters = Arc::new(Counters::default());
    let (mut producer, rx) = agent::output::queue(100_000, WhenFull::Wait, counters.clone());
    let target: sender::Target = format!("tcp://127.0.0.1:{port}").parse().expect("target");
    let sender_cfg = sender::SenderConfig {
        reconnect_attempts: 1,
        connect_timeout_ms: 500,
        ..sender::SenderConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let task = rt.spawn(agent::output::run(
        rx,
        vec![target],
        Balance::Failover,
        sender_cfg,
        counters.clone(),
        Some(sp),
    ));
    let total = 1000u32;
    for n in 0..total / 2 {
        producer.emit(&message(n));
    }
    producer.flush();
    let deadline = Instant::now() + Duration::from_secs(20);
    while counters.snapshot().buffered < u64::from(total / 2) {
        assert!(Instant::now() < deadline, "{:?}", counters.snapshot());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(counters.snapshot().dropped, 0);
    // The collector comes back; more messages arrive meanwhile.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind");
    for n in total / 2..total {
        producer.emit(&message(n));
    }
    producer.flush();
    let (mut conn, _) = listener.accept().expect("the agent reconnects");
    let got = read_hep(&mut conn, total as usize, Duration::from_secs(30));
    drop(producer);
    rt.block_on(task).expect("sender task");
    let order: Vec<u32> = got
        .iter()
        .map(|f| hep::decode(f).expect("HEP").ts_usec.expect("usec"))
        .collect();
    assert_eq!(order, (0..total).collect::<Vec<_>>(), "all, in order");
    let s = counters.snapshot();
    assert!(s.replayed >= u64::from(total / 2), "{s:?}");
    assert_eq!(s.dropped, 0, "{s:?}");
    // Nothing is left in the buffer.
    let sp = spool::Spool::open(spool_dir.path(), spool::SpoolConfig::default()).expect("spool");
    assert!(sp.is_empty());
}
