//! The relay end to end on loopback: HEP in through the real UDP listener (`ingest`), out to
//! real UDP/TCP sinks whose received packets are decoded and checked.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use relay::{Relay, RoutingConfig};
use tokio_util::sync::CancellationToken;

/// A UDP receiver that keeps every datagram.
struct UdpSink {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpSink {
    fn start() -> UdpSink {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let got = got.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        got.lock().expect("lock").push(buf[..n].to_vec());
                    }
                }
            })
        };
        UdpSink {
            addr,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("udp://{}", self.addr)
    }

    fn packets(&self) -> Vec<Vec<u8>> {
        self.got.lock().expect("lock").clone()
    }

    fn count(&self) -> usize {
        self.got.lock().expect("lock").len()
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP receiver that frames HEP and keeps every message; can be stopped (listener and
/// connections closed) and started again on the same port.
struct TcpSink {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpSink {
    fn start() -> TcpSink {
        Self::start_on("127.0.0.1:0".parse().expect("addr"), Arc::default())
    }

    fn start_on(addr: SocketAddr, got: Arc<Mutex<Vec<Vec<u8>>>>) -> TcpSink {
        let listener = TcpListener::bind(addr).expect("bind tcp sink");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let got = got.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conns: Vec<(TcpStream, hep::StreamFramer)> = Vec::new();
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((s, _)) = listener.accept() {
                        s.set_nonblocking(true).expect("nonblocking");
                        conns.push((s, hep::StreamFramer::new(hep::FramerConfig::default())));
                    }
                    let mut idle = true;
                    conns.retain_mut(|(s, framer)| match s.read(&mut buf) {
                        Ok(0) => false,
                        Ok(n) => {
                            idle = false;
                            let _ = framer.push(&buf[..n]);
                            while let Some(f) = framer.next_frame() {
                                got.lock().expect("lock").push(f.to_vec());
                            }
                            true
                        }
                        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                    });
                    if idle {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                for (s, _) in conns {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            })
        };
        TcpSink {
            addr,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn kill(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn restart(&mut self) {
        self.kill();
        *self = TcpSink::start_on(self.addr, self.got.clone());
    }

    fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    fn packets(&self) -> Vec<Vec<u8>> {
        self.got.lock().expect("lock").clone()
    }
}

impl Drop for TcpSink {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The relay behind a real UDP listener.
struct Harness {
    relay: Arc<Relay>,
    input: SocketAddr,
    tx: UdpSocket,
    shutdown: CancellationToken,
    listeners: Option<ingest::Listeners>,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn start(routing: &RoutingConfig) -> Harness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let relay = Relay::start(routing).expect("relay starts");
        let sockets =
            ingest::bind_udp("127.0.0.1:0".parse().expect("addr"), 1, 8 << 20).expect("bind");
        let input = sockets[0].local_addr().expect("addr");
        let (udp, tcp, tls) = (
            ingest::UdpConfig::default(),
            ingest::TcpConfig::default(),
            ingest::TlsConfig::default(),
        );
        let shutdown = CancellationToken::new();
        let listeners = {
            let _guard = runtime.enter();
            ingest::start_listeners(
                ingest::BoundListeners {
                    udp: sockets,
                    ..Default::default()
                },
                &ingest::ListenerConfig {
                    udp: &udp,
                    tcp: &tcp,
                    tls: &tls,
                },
                relay.clone(),
                Arc::new(ingest::ListenerMetrics::default()),
                shutdown.clone(),
            )
            .expect("listeners")
        };
        let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
        Harness {
            relay,
            input,
            tx,
            shutdown,
            listeners: Some(listeners),
            runtime,
        }
    }

    fn send(&self, wire: &[u8]) {
        self.tx.send_to(wire, self.input).expect("send");
    }

    /// Sends in small bursts so the loopback socket buffers never overflow.
    fn send_all(&self, wires: &[Vec<u8>]) {
        for (i, w) in wires.iter().enumerate() {
            self.send(w);
            if i % 200 == 199 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    fn received(&self) -> u64 {
        self.relay.counters().received_count(ingest::Transport::Udp)
    }

    fn wait_received(&self, n: u64) {
        wait_until("relay received everything", || self.received() >= n);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(l) = self.listeners.take() {
            self.runtime.block_on(l.join());
        }
        self.relay.shutdown(Duration::from_secs(5));
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn routing(toml_text: &str) -> RoutingConfig {
    toml::from_str(toml_text).expect("routing config parses")
}

fn base(proto: u8, payload: &[u8]) -> hep::HepMessage {
    hep::HepMessage {
        ip_family: Some(hep::FAMILY_IPV4),
        ip_proto: Some(17),
        src_ip: Some("10.0.0.1".parse().expect("ip")),
        dst_ip: Some("10.0.0.2".parse().expect("ip")),
        src_port: Some(5060),
        dst_port: Some(5060),
        ts_sec: Some(1_700_000_000),
        ts_usec: Some(1),
        proto_type: Some(proto),
        capture_id: Some(2001),
        payload: Some(payload.to_vec()),
        ..Default::default()
    }
}

fn sip_invite(call_id: &str, extra: &str) -> Vec<u8> {
    let text = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{call_id}\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    base(1, text.as_bytes()).encode_to_vec().expect("encode")
}

fn sip_response(call_id: &str, code: u16) -> Vec<u8> {
    let text = format!(
        "SIP/2.0 {code} Whatever\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{call_id}\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=b\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    base(1, text.as_bytes()).encode_to_vec().expect("encode")
}

fn correlated(proto: u8, call_id: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = base(proto, payload);
    m.correlation_id = Some(call_id.as_bytes().to_vec());
    m.encode_to_vec().expect("encode")
}

fn rtcp(call_id: &str) -> Vec<u8> {
    correlated(5, call_id, br#"{"type":200,"ssrc":1}"#)
}

fn log_line(call_id: &str) -> Vec<u8> {
    correlated(100, call_id, format!("call {call_id} answered").as_bytes())
}

/// Three UDP sinks `c1`..`c3` as the group `collectors` (with `group_extra` lines), which
/// every packet is balanced over.
fn three_collectors(sinks: &[UdpSink], group_extra: &str) -> String {
    format!(
        r#"
        [destinations.c1]
        url = "{}"
        [destinations.c2]
        url = "{}"
        [destinations.c3]
        url = "{}"
        [groups.collectors]
        members = ["c1", "c2", "c3"]
        {group_extra}
        [[rules]]
        balance = "collectors"
        "#,
        sinks[0].url(),
        sinks[1].url(),
        sinks[2].url()
    )
}

/// The key a relayed packet was balanced on: Call-ID for SIP, correlation id otherwise.
fn key_of(wire: &[u8]) -> String {
    let p = hep::decode(wire).expect("relayed packets decode");
    if p.proto_type == Some(1) {
        let sip = relay::SipView::parse(p.payload.expect("payload")).expect("sip");
        String::from_utf8_lossy(sip.call_id().expect("call-id")).into_owned()
    } else {
        String::from_utf8_lossy(p.correlation_id.expect("correlation id")).into_owned()
    }
}

#[test]
fn routes_sip_and_rtcp_to_different_sinks() {
    let sip_sink = UdpSink::start();
    let rtcp_sink = UdpSink::start();
    let h = Harness::start(&routing(&format!(
        r#"
        [destinations.sip]
        url = "{}"
        [destinations.rtcp]
        url = "{}"
        [[rules]]
        name = "sip"
        match = {{ hep_type = ["sip"] }}
        forward = ["sip"]
        [[rules]]
        name = "rtcp"
        match = {{ hep_type = [5] }}
        forward = ["rtcp"]
        "#,
        sip_sink.url(),
        rtcp_sink.url()
    )));
    let mut wires = Vec::new();
    for i in 0..50 {
        wires.push(sip_invite(&format!("c{i}"), ""));
        wires.push(rtcp(&format!("c{i}")));
        wires.push(log_line(&format!("c{i}")));
    }
    h.send_all(&wires);
    h.wait_received(150);
    wait_until("sinks got their packets", || {
        sip_sink.count() == 50 && rtcp_sink.count() == 50
    });
    for p in sip_sink.packets() {
        assert_eq!(hep::decode(&p).expect("decode").proto_type, Some(1));
    }
    for p in rtcp_sink.packets() {
        assert_eq!(hep::decode(&p).expect("decode").proto_type, Some(5));
    }
    // Logs matched no rule.
    assert_eq!(h.relay.counters().unmatched.load(Ordering::Relaxed), 50);
    let metrics = h.relay.render_metrics();
    assert!(metrics.contains("hepstack_relay_forwarded_total{destination=\"sip\"} 50"));
    assert!(metrics.contains("hepstack_relay_rule_matches_total{rule=\"rtcp\"} 50"));
}

#[test]
fn fans_out_identical_copies() {
    let a = UdpSink::start();
    let b = UdpSink::start();
    let h = Harness::start(&routing(&format!(
        r#"
        [destinations.a]
        url = "{}"
        [destinations.b]
        url = "{}"
        [[rules]]
        forward = ["a", "b"]
        "#,
        a.url(),
        b.url()
    )));
    let wires: Vec<Vec<u8>> = (0..100).map(|i| sip_invite(&format!("f{i}"), "")).collect();
    h.send_all(&wires);
    wait_until("both copies", || a.count() == 100 && b.count() == 100);
    let sent: BTreeSet<Vec<u8>> = wires.into_iter().collect();
    // Neither rewritten nor converted: forwarded byte for byte.
    assert_eq!(a.packets().into_iter().collect::<BTreeSet<_>>(), sent);
    assert_eq!(b.packets().into_iter().collect::<BTreeSet<_>>(), sent);
}

#[test]
fn hashing_keeps_each_call_on_one_member_and_reports_the_share() {
    let sinks: Vec<UdpSink> = (0..3).map(|_| UdpSink::start()).collect();
    let h = Harness::start(&routing(&three_collectors(&sinks, "")));
    let calls = 300;
    let mut wires = Vec::new();
    for i in 0..calls {
        let id = format!("call-{i}@10.0.0.1");
        wires.push(sip_invite(&id, ""));
        wires.push(sip_response(&id, 200));
        wires.push(rtcp(&id));
        wires.push(log_line(&id));
    }
    h.send_all(&wires);
    let total = calls * 4;
    wait_until("all packets relayed", || {
        sinks.iter().map(UdpSink::count).sum::<usize>() == total
    });
    let mut member_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_member = [0usize; 3];
    for (i, sink) in sinks.iter().enumerate() {
        for p in sink.packets() {
            let key = key_of(&p);
            let prev = member_of.insert(key.clone(), i);
            assert!(
                prev.is_none() || prev == Some(i),
                "call {key} split over members {prev:?} and {i}"
            );
            per_member[i] += 1;
        }
    }
    assert_eq!(member_of.len(), calls);
    // Every member gets a fair share (each packet of a call counted).
    for n in per_member {
        let share = n as f64 / total as f64;
        assert!(
            (0.2..0.47).contains(&share),
            "share {share} of {per_member:?}"
        );
    }
    let reported = h.relay.group_share("collectors").expect("group");
    let reported: Vec<u64> = reported.into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        reported,
        per_member.iter().map(|&n| n as u64).collect::<Vec<_>>()
    );
    // The mapping is the rendezvous ranking of the member names.
    let hrw = relay::Rendezvous::new(&["c1", "c2", "c3"]);
    for (key, member) in &member_of {
        assert_eq!(hrw.first(key.as_bytes()), Some(*member), "key {key}");
    }
}

#[test]
fn fails_over_when_a_member_dies_and_returns_when_it_recovers() {
    let mut sinks: Vec<TcpSink> = (0..3).map(|_| TcpSink::start()).collect();
    let h = Harness::start(&routing(&format!(
        r#"
        [destinations.m1]
        url = "{}"
        reconnect_backoff_ms = 20
        reconnect_backoff_max_ms = 100
        [destinations.m2]
        url = "{}"
        reconnect_backoff_ms = 20
        reconnect_backoff_max_ms = 100
        [destinations.m3]
        url = "{}"
        reconnect_backoff_ms = 20
        reconnect_backoff_max_ms = 100
        [groups.g]
        members = ["m1", "m2", "m3"]
        [[rules]]
        match = {{ hep_type = ["sip"] }}
        balance = "g"
        "#,
        sinks[0].url(),
        sinks[1].url(),
        sinks[2].url()
    )));
    let names = ["m1", "m2", "m3"];
    let hrw = relay::Rendezvous::new(&names);
    wait_until("all members connected", || {
        names
            .iter()
            .all(|n| h.relay.destination_status(n).expect("dest").healthy)
    });
    let send_calls = |prefix: &str, n: usize| -> Vec<String> {
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        let wires: Vec<Vec<u8>> = ids.iter().map(|id| sip_invite(id, "")).collect();
        h.send_all(&wires);
        ids
    };
    let keys_on =
        |sink: &TcpSink| -> BTreeSet<String> { sink.packets().iter().map(|p| key_of(p)).collect() };

    // Phase 1: all up; each call on its first choice.
    send_calls("up", 90);
    wait_until("phase 1 delivered", || {
        sinks.iter().map(|s| s.packets().len()).sum::<usize>() == 90
    });
    for (i, s) in sinks.iter().enumerate() {
        for k in keys_on(s) {
            assert_eq!(hrw.first(k.as_bytes()), Some(i));
        }
    }

    // Phase 2: m2 dies. Traffic makes the relay notice (the write fails), then it fails over.
    sinks[1].kill();
    let mut probe = 0;
    wait_until("m2 marked down", || {
        send_calls(&format!("probe{probe}"), 5);
        probe += 1;
        !h.relay.destination_status("m2").expect("m2").healthy
    });
    let down_calls = send_calls("down", 90);
    wait_until("phase 2 delivered to m1 and m3", || {
        let (on_1, on_3) = (keys_on(&sinks[0]), keys_on(&sinks[2]));
        down_calls
            .iter()
            .all(|k| on_1.contains(k) || on_3.contains(k))
    });
    let on_1 = keys_on(&sinks[0]);
    let on_3 = keys_on(&sinks[2]);
    for k in &down_calls {
        let expected = hrw.pick(k.as_bytes(), |i| i != 1).expect("a member");
        let on = if on_1.contains(k) {
            0
        } else if on_3.contains(k) {
            2
        } else {
            9
        };
        assert_eq!(on, expected, "call {k} during the failure");
    }
    let status = h.relay.render_metrics();
    assert!(status.contains("hepstack_relay_destination_up{destination=\"m2\"} 0"));
    assert!(!status.contains("hepstack_relay_failovers_total{group=\"g\"} 0"));

    // Phase 3: m2 returns; the relay reconnects and its calls go back to it.
    sinks[1].restart();
    wait_until("m2 healthy again", || {
        h.relay.destination_status("m2").expect("m2").healthy
    });
    assert!(h.relay.destination_status("m2").expect("m2").reconnects >= 1);
    let back = send_calls("back", 90);
    let expect_m2: Vec<&String> = back
        .iter()
        .filter(|k| hrw.first(k.as_bytes()) == Some(1))
        .collect();
    assert!(!expect_m2.is_empty());
    wait_until("phase 3: m2's calls returned to it", || {
        let on_2 = keys_on(&sinks[1]);
        expect_m2.iter().all(|k| on_2.contains(*k))
    });
}

#[test]
fn rewrites_chunks_and_converts_hep2() {
    let plain = UdpSink::start();
    let rewritten = UdpSink::start();
    let h = Harness::start(&routing(&format!(
        r#"
        [destinations.plain]
        url = "{}"
        [destinations.rewritten]
        url = "{}"
        [[rules]]
        name = "copy as is"
        forward = ["plain"]
        continue = true
        [[rules]]
        name = "tag"
        rewrite = {{ capture_id = 99, node_name = "relay-1", strip_auth_key = true, auth_key = "next-secret", correlation_id_from_header = "X-CID" }}
        forward = ["rewritten"]
        "#,
        plain.url(),
        rewritten.url()
    )));
    let mut msg = base(
        1,
        b"INVITE sip:b@x SIP/2.0\r\nCall-ID: bleg@x\r\nX-CID: aleg@y\r\nCSeq: 1 INVITE\r\n\r\n",
    );
    msg.auth_key = Some(b"old-secret".to_vec());
    msg.extra_chunks.push(hep::RawChunk {
        vendor: 0x0021,
        type_id: 7,
        body: b"vendor data".to_vec(),
    });
    let original = msg.encode_to_vec().expect("encode");
    h.send(&original);

    // HEPv2 (Kamailio/OpenSIPS legacy) carrying a log line.
    let mut v2 = vec![2u8, 16, 2, 17];
    v2.extend_from_slice(&5060u16.to_be_bytes());
    v2.extend_from_slice(&5062u16.to_be_bytes());
    v2.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 2]);
    v2.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    v2.extend_from_slice(&7u32.to_le_bytes());
    v2.extend_from_slice(&2002u16.to_le_bytes());
    v2.extend_from_slice(&[0, 0]);
    v2.extend_from_slice(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: v2call\r\n\r\n");
    h.send(&v2);
    wait_until("both packets at both sinks", || {
        plain.count() == 2 && rewritten.count() == 2
    });

    let plain_pkts = plain.packets();
    assert!(plain_pkts.contains(&original), "first copy untouched");
    let rw_pkts = rewritten.packets();
    let rw = rw_pkts
        .iter()
        .map(|w| hep::decode(w).expect("decode"))
        .find(|p| p.version == 3 && p.payload.is_some_and(|b| b.starts_with(b"INVITE")))
        .expect("rewritten INVITE");
    assert_eq!(rw.capture_id, Some(99));
    assert_eq!(rw.node_name, Some(&b"relay-1"[..]));
    assert_eq!(rw.auth_key, Some(&b"next-secret"[..]));
    assert_eq!(rw.correlation_id, Some(&b"aleg@y"[..]));
    // Everything else is as it came.
    let mut expected = msg.clone();
    expected.capture_id = Some(99);
    expected.node_name = Some(b"relay-1".to_vec());
    expected.auth_key = Some(b"next-secret".to_vec());
    expected.correlation_id = Some(b"aleg@y".to_vec());
    assert_eq!(rw.to_message(), expected);

    // The HEPv2 packet left as HEPv3 with the same content, to both destinations.
    let legacy = hep::decode(&v2).expect("v2").to_message();
    let converted: Vec<hep::HepPacket<'_>> = plain_pkts
        .iter()
        .map(|w| hep::decode(w).expect("decode"))
        .filter(|p| p.capture_id == Some(2002))
        .collect();
    assert_eq!(converted.len(), 1);
    assert_eq!(converted[0].version, 3);
    assert_eq!(converted[0].to_message(), legacy);
    assert_eq!(h.relay.counters().converted.load(Ordering::Relaxed), 1);
}

#[test]
fn matches_sip_method_status_addresses_and_drops() {
    let failures = UdpSink::start();
    let rest = UdpSink::start();
    let h = Harness::start(&routing(&format!(
        r#"
        [destinations.failures]
        url = "{}"
        [destinations.rest]
        url = "{}"
        [[rules]]
        name = "no options"
        match = {{ sip_method = ["options"] }}
        drop = true
        [[rules]]
        name = "failed invites"
        match = {{ sip_method = ["INVITE"], sip_status = ["4xx", "503"] }}
        forward = ["failures"]
        [[rules]]
        name = "lab network"
        match = {{ src_ip = ["10.0.0.0/8"], dst_port = [5060], capture_id = [2001], transport = ["udp"] }}
        forward = ["rest"]
        "#,
        failures.url(),
        rest.url()
    )));
    let options = {
        let text = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n";
        base(1, text).encode_to_vec().expect("encode")
    };
    let mut other_net = base(1, b"BYE sip:x SIP/2.0\r\nCall-ID: z\r\nCSeq: 2 BYE\r\n\r\n");
    other_net.src_ip = Some("192.168.1.1".parse().expect("ip"));
    let wires = vec![
        options,
        sip_response("a", 486),
        sip_response("b", 503),
        sip_response("c", 200),
        sip_invite("d", ""),
        other_net.encode_to_vec().expect("encode"),
    ];
    h.send_all(&wires);
    h.wait_received(6);
    wait_until("routed", || failures.count() == 2 && rest.count() == 2);
    let codes: BTreeSet<u16> = failures
        .packets()
        .iter()
        .map(|w| {
            let p = hep::decode(w).expect("decode");
            relay::SipView::parse(p.payload.expect("payload"))
                .and_then(|s| s.status)
                .expect("status")
        })
        .collect();
    assert_eq!(codes, BTreeSet::from([486, 503]));
    let c = h.relay.counters();
    assert_eq!(c.dropped_by_rule.load(Ordering::Relaxed), 1);
    assert_eq!(c.unmatched.load(Ordering::Relaxed), 1);
}

#[test]
fn a_dead_destination_does_not_hold_up_the_others() {
    // Nothing listens on this TCP port: the destination stays down and its small queue fills.
    let dead_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let live = UdpSink::start();
    let h = Harness::start(&routing(&format!(
        r#"
        [destinations.dead]
        url = "tcp://127.0.0.1:{dead_port}"
        queue_capacity = 10
        [destinations.live]
        url = "{}"
        [[rules]]
        forward = ["dead", "live"]
        "#,
        live.url()
    )));
    let wires: Vec<Vec<u8>> = (0..500).map(|i| rtcp(&format!("r{i}"))).collect();
    h.send_all(&wires);
    h.wait_received(500);
    // The relay's own account: every packet went out to the live destination. (How many of
    // them the sink's socket then holds is the kernel's business: with the test suite loading
    // both cores, a loopback UDP receive buffer can overflow before the sink thread runs.)
    wait_until("live destination forwarded everything", || {
        h.relay
            .destination_status("live")
            .is_some_and(|s| s.forwarded == 500 && s.dropped_queue_full == 0)
    });
    wait_until("live sink got packets", || live.count() > 0);
    let dead = h.relay.destination_status("dead").expect("dead");
    assert!(!dead.healthy);
    assert_eq!(dead.forwarded, 0);
    assert!(dead.dropped_queue_full >= 490, "{dead:?}");
    let metrics = h.relay.render_metrics();
    assert!(metrics.contains("hepstack_relay_destination_up{destination=\"dead\"} 0"));
    assert!(metrics.contains("hepstack_relay_queue_depth{destination=\"dead\"}"));
}

#[test]
fn reload_keeps_unchanged_destinations_and_their_packets() {
    let a = TcpSink::start();
    let b = UdpSink::start();
    let first = routing(&format!(
        r#"
        [destinations.a]
        url = "{}"
        [[rules]]
        forward = ["a"]
        "#,
        a.url()
    ));
    let h = Harness::start(&first);
    let wires: Vec<Vec<u8>> = (0..200).map(|i| log_line(&format!("l{i}"))).collect();
    h.send_all(&wires);
    h.wait_received(200);
    // Reload while packets may still be queued for `a`.
    let second = routing(&format!(
        r#"
        [destinations.a]
        url = "{}"
        [destinations.b]
        url = "{}"
        [[rules]]
        forward = ["a", "b"]
        "#,
        a.url(),
        b.url()
    ));
    h.relay.reload(&second).expect("reload");
    h.send_all(&wires);
    wait_until("a got both rounds", || a.packets().len() == 400);
    wait_until("b got the second round", || b.count() == 200);
    let status = h.relay.destination_status("a").expect("a");
    assert_eq!(status.forwarded, 400, "counters survive: same destination");
    assert_eq!(status.reconnects, 0, "same connection");
    // A bad configuration is refused and the running one stays.
    let bad = routing(
        r#"
        [[rules]]
        forward = ["nowhere"]
        "#,
    );
    assert!(h.relay.reload(&bad).is_err());
    h.send_all(&wires[..10]);
    wait_until("still routing", || b.count() == 210);
}

#[test]
fn invalid_configurations_are_refused() {
    let cases = [
        (
            r#"[[rules]]
forward = ["x"]"#,
            "unknown destination",
        ),
        (
            r#"[destinations.a]
url = "http://x:1"
[[rules]]
forward = ["a"]"#,
            "scheme",
        ),
        (
            r#"[destinations.a]
url = "udp://127.0.0.1:9"
[[rules]]
match = { hep_type = ["nonsense"] }
forward = ["a"]"#,
            "unknown type name",
        ),
        (
            r#"[destinations.a]
url = "udp://127.0.0.1:9"
[[rules]]
match = { src_ip = ["10.0.0.0/99"] }
forward = ["a"]"#,
            "CIDR",
        ),
        (
            r#"[destinations.a]
url = "udp://127.0.0.1:9"
[[rules]]
balance = "g""#,
            "unknown balance group",
        ),
        (
            r#"[destinations.a]
url = "udp://127.0.0.1:9"
[[rules]]
match = { sip_status = ["2x"] }
forward = ["a"]"#,
            "sip_status",
        ),
        (
            r#"[destinations.a]
url = "udp://127.0.0.1:9"
[[rules]]
match = { hep_type = [1] }"#,
            "no action",
        ),
    ];
    for (text, needle) in cases {
        let cfg = routing(text);
        let err = relay::Plan::compile(&cfg).expect_err(text).to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
    assert!(toml::from_str::<RoutingConfig>("[[rules]]\nfoward = [\"a\"]").is_err());
}

/// A request or response of a B2BUA leg: `call_id` is the leg's own Call-ID, `extra` more
/// header lines.
fn sip_message(start_line: &str, call_id: &str, cseq: &str, extra: &str) -> Vec<u8> {
    let text = format!(
        "{start_line}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{call_id}{cseq}\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=b\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    base(1, text.as_bytes()).encode_to_vec().expect("encode")
}

#[test]
fn b2bua_b_leg_reports_and_logs_land_with_their_call() {
    let sinks: Vec<UdpSink> = (0..3).map(|_| UdpSink::start()).collect();
    let names = ["c1", "c2", "c3"];
    let hrw = relay::Rendezvous::new(&names);
    // Five calls whose B-leg Call-ID, hashed on its own, would go to another member than its
    // call: without the learned links every B-leg report below lands elsewhere.
    let mut calls = Vec::new();
    let mut n = 0u32;
    while calls.len() < 5 {
        let a = format!("a-leg-{n}@10.0.0.1");
        let b = format!("b2b-{n}-{}@10.0.0.2", n * 7919);
        if hrw.first(a.as_bytes()) != hrw.first(b.as_bytes()) {
            calls.push((a, b));
        }
        n += 1;
    }
    let config = three_collectors(&sinks, r#"key_header = "X-CID""#);
    let h = Harness::start(&routing(&config));
    // The call set-up: the A-leg INVITE and the B2BUA's B-leg INVITE carrying X-CID.
    let mut setup = Vec::new();
    for (a, b) in &calls {
        setup.push(sip_message(
            "INVITE sip:b2bua@example.com SIP/2.0",
            a,
            "1 INVITE",
            "",
        ));
        setup.push(sip_message(
            "INVITE sip:bob@example.com SIP/2.0",
            b,
            "1 INVITE",
            &format!("X-CID: {a}\r\n"),
        ));
    }
    h.send_all(&setup);
    h.wait_received(setup.len() as u64);
    // The rest of each call: the far end's answer on the B-leg (no X-CID: it is not echoed),
    // both legs' RTCP, the B-leg's QoS report and log line, and the B-leg BYE without X-CID.
    let mut rest = Vec::new();
    for (a, b) in &calls {
        rest.push(sip_message("SIP/2.0 200 OK", b, "1 INVITE", ""));
        rest.push(sip_message("SIP/2.0 200 OK", a, "1 INVITE", ""));
        rest.push(rtcp(a));
        rest.push(rtcp(b));
        rest.push(correlated(34, b, br#"{"mos":4.2}"#));
        rest.push(log_line(b));
        rest.push(sip_message(
            "BYE sip:bob@example.com SIP/2.0",
            b,
            "2 BYE",
            "",
        ));
    }
    h.send_all(&rest);
    let total = setup.len() + rest.len();
    h.wait_received(total as u64);
    wait_until("every packet relayed", || {
        sinks.iter().map(UdpSink::count).sum::<usize>() == total
    });
    let member_of_call: BTreeMap<&str, usize> = calls
        .iter()
        .map(|(a, _)| (a.as_str(), hrw.first(a.as_bytes()).expect("member")))
        .collect();
    let call_of_leg: BTreeMap<String, &str> = calls
        .iter()
        .flat_map(|(a, b)| [(a.clone(), a.as_str()), (b.clone(), a.as_str())])
        .collect();
    let mut b_leg_packets = 0;
    for (i, sink) in sinks.iter().enumerate() {
        for p in sink.packets() {
            let id = key_of(&p);
            let call = call_of_leg[&id];
            assert_eq!(
                member_of_call[call], i,
                "a packet of leg {id} (call {call}) landed on {}, the call is on {}",
                names[i], names[member_of_call[call]]
            );
            if id != call {
                b_leg_packets += 1;
            }
        }
    }
    assert_eq!(b_leg_packets, 6 * calls.len());
    let metrics = h.relay.render_metrics();
    assert!(
        metrics.contains("hepstack_relay_leg_links{group=\"collectors\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("hepstack_relay_leg_links_learned_total{group=\"collectors\"} 5"));
    // The B-leg's 200, RTCP, report, log and BYE went through a link.
    assert!(metrics.contains("hepstack_relay_leg_links_followed_total{group=\"collectors\"} 25"));
    assert!(metrics.contains(
        "hepstack_relay_leg_links_evicted_total{group=\"collectors\",reason=\"full\"} 0"
    ));

    // A reload keeping the group keeps what it learned: a late report still follows its call.
    h.relay.reload(&routing(&config)).expect("reload");
    let before: Vec<usize> = sinks.iter().map(UdpSink::count).collect();
    let late: Vec<Vec<u8>> = calls.iter().map(|(_, b)| rtcp(b)).collect();
    h.send_all(&late);
    wait_until("late reports relayed", || {
        sinks.iter().map(UdpSink::count).sum::<usize>() == total + late.len()
    });
    for (i, sink) in sinks.iter().enumerate() {
        for p in &sink.packets()[before[i]..] {
            let call = call_of_leg[&key_of(p)];
            assert_eq!(
                member_of_call[call], i,
                "late report of {call} after reload"
            );
        }
    }
}

#[test]
fn leg_links_are_bounded_and_evictions_counted() {
    let sink = UdpSink::start();
    let h = Harness::start(&routing(&format!(
        r#"
        [destinations.c1]
        url = "{}"
        [groups.g]
        members = ["c1"]
        key_header = "X-CID"
        leg_links = 32
        [[rules]]
        balance = "g"
        "#,
        sink.url()
    )));
    let wires: Vec<Vec<u8>> = (0..500)
        .map(|i| {
            sip_message(
                "INVITE sip:bob@example.com SIP/2.0",
                &format!("b-{i}"),
                "1 INVITE",
                &format!("X-CID: a-{i}\r\n"),
            )
        })
        .collect();
    h.send_all(&wires);
    h.wait_received(500);
    let metrics = h.relay.render_metrics();
    assert!(
        metrics.contains("hepstack_relay_leg_links{group=\"g\"} 32"),
        "{metrics}"
    );
    assert!(metrics.contains("hepstack_relay_leg_links_learned_total{group=\"g\"} 500"));
    assert!(
        metrics.contains("hepstack_relay_leg_links_evicted_total{group=\"g\",reason=\"full\"} 468")
    );
}
