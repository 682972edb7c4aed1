//! End-to-end tests of the collector over real loopback sockets.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector::{
    AuthKey, Collector, DiscardRule, DiskSpool, InvalidKind, MemorySpool, RecordObserver, Transport,
};
use common::*;
use store::Record;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// (hep type, src port, dst port, sid, SIP method or status) of one message.
type Key = (u8, u16, u16, String, String);

fn sip_call_id_and_method(payload: &str) -> (String, String) {
    let mut call_id = String::new();
    for line in payload.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("call-id:") || lower.starts_with("i:") {
            call_id = line.split_once(':').map_or("", |x| x.1).trim().to_owned();
            break;
        }
    }
    let first = payload.split_whitespace().next().unwrap_or("");
    let method = if first.starts_with("SIP/") {
        payload.split_whitespace().nth(1).unwrap_or("").to_owned()
    } else {
        first.to_owned()
    };
    (call_id, method)
}

/// Keys from an independent decoder's output (`decoded.jsonl`).
fn expected_keys(dir: &str) -> Vec<Key> {
    let text = std::fs::read_to_string(samples_dir().join(dir).join("decoded.jsonl"))
        .expect("decoded.jsonl");
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let (mut proto, mut sp, mut dp, mut payload, mut corr) =
                (1u8, 0u16, 0u16, String::new(), String::new());
            if v["version"] == 3 {
                for c in v["chunks"].as_array().expect("chunks") {
                    let val = &c["value"];
                    match c["name"].as_str().unwrap_or("") {
                        "proto_type" => proto = val.as_u64().expect("n") as u8,
                        "src_port" => sp = val.as_u64().expect("n") as u16,
                        "dst_port" => dp = val.as_u64().expect("n") as u16,
                        "payload" => payload = val.as_str().unwrap_or("").to_owned(),
                        "correlation_id" => corr = val.as_str().unwrap_or("").to_owned(),
                        _ => {}
                    }
                }
            } else {
                sp = v["src_port"].as_u64().expect("n") as u16;
                dp = v["dst_port"].as_u64().expect("n") as u16;
                payload = v["payload"].as_str().unwrap_or("").to_owned();
            }
            if proto == 1 {
                let (cid, method) = sip_call_id_and_method(&payload);
                (proto, sp, dp, cid, method)
            } else {
                (proto, sp, dp, corr, String::new())
            }
        })
        .collect()
}

fn record_key(r: &Record) -> Key {
    (
        r.hep_type,
        r.src_port,
        r.dst_port,
        r.sid.clone(),
        r.sip
            .as_ref()
            .map(|s| s.method.clone())
            .unwrap_or_default()
            .to_string(),
    )
}

fn multiset(keys: impl IntoIterator<Item = Key>) -> HashMap<Key, usize> {
    let mut m = HashMap::new();
    for k in keys {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn datagrams(dir: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(samples_dir().join(dir).join("datagrams"))
        .expect("datagrams dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hep"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_replayed_over_udp_and_tcp_become_the_right_records() {
    let mut cfg = loopback_config();
    // Replayed at full speed, SIPp's genuine retransmissions would fall into one window.
    cfg.pipeline.dedup_window_ms = 0;
    let (listeners, udp, tcp) = bind(&cfg);
    let store = shared(VecStore::default());
    let token = CancellationToken::new();
    let rtcp_check = Arc::new(RtcpHandOff::default());
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .with_observer(rtcp_check.clone())
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();

    let udp_dirs = [
        "kamailio-hep3-udp",
        "kamailio-hep2-udp",
        "rtpengine-hep3-rtcp",
    ];
    let mut expected = Vec::new();
    let mut sent = 0usize;
    for dir in udp_dirs {
        let d = datagrams(dir);
        sent += d.len();
        send_udp(udp.expect("udp"), &d);
        expected.extend(expected_keys(dir));
    }
    // The TCP stream as captured, written in odd-sized pieces so frames straddle writes.
    let raw = std::fs::read(samples_dir().join("kamailio-hep3-tcp/tcp-stream-conn1.raw"))
        .expect("raw stream");
    let mut conn = TcpStream::connect(tcp.expect("tcp")).expect("connect");
    for piece in raw.chunks(777) {
        conn.write_all(piece).expect("write");
    }
    drop(conn);
    let tcp_expected = expected_keys("kamailio-hep3-tcp");
    sent += tcp_expected.len();
    expected.extend(tcp_expected);

    assert!(
        wait_for_async(WAIT, || store.len() >= sent).await,
        "stored {} of {sent}",
        store.len()
    );
    token.cancel();
    handle.join().await;

    let records = store.snapshot();
    assert_eq!(records.len(), sent);
    assert_eq!(multiset(records.iter().map(record_key)), multiset(expected));
    // Every RTCP record reached the observers with the pipeline's parse of its own payload.
    let rtcp_records = records.iter().filter(|r| r.hep_type == 5).count();
    let hand_off = rtcp_check.0.lock().expect("lock");
    assert!(rtcp_records > 0);
    assert_eq!(hand_off.parsed, rtcp_records, "{hand_off:?}");
    assert_eq!(hand_off.misaligned, 0, "{hand_off:?}");
    let acc = metrics.accounting();
    assert_eq!(acc.received as usize, sent);
    assert_eq!(acc.stored as usize, sent);
    assert_eq!(metrics.received_by_transport(Transport::Tcp), 46);

    // Spot checks of enrichment on real traffic.
    let invite = records
        .iter()
        .find(|r| r.hep_version == 3 && r.sip.as_ref().is_some_and(|s| s.method == "INVITE"))
        .expect("an INVITE");
    let sip = invite.sip.as_ref().expect("sip");
    assert_eq!(invite.profile, store::Profile::Call);
    assert_eq!(invite.correlation_id.as_deref(), sip.call_id.as_deref());
    assert_eq!(invite.node.as_deref(), Some("2001"));
    assert!(!sip.sdp_media.is_empty(), "SDP media of an INVITE");
    assert!(invite.time_us > 1_700_000_000_000_000);
    let register = records
        .iter()
        .find(|r| r.sip.as_ref().is_some_and(|s| s.method == "REGISTER"))
        .expect("a REGISTER");
    assert_eq!(register.profile, store::Profile::Registration);
    let rtcp = records
        .iter()
        .find(|r| r.hep_type == 5)
        .expect("an RTCP report");
    assert!(rtcp
        .payload_json
        .as_deref()
        .expect("json")
        .contains("sender_information"));
    assert_eq!(rtcp.sid, rtcp.correlation_id.clone().expect("corr"));
    let log = records.iter().find(|r| r.hep_type == 100).expect("a log");
    assert!(log.payload_json.is_some());
    let v2 = records
        .iter()
        .find(|r| r.hep_version == 2)
        .expect("a HEPv2 record");
    assert_eq!(v2.capture_id, 2001);
    // The auth key the Kamailio UDP sample carries is stored nowhere.
    for r in &records {
        let encoded = collector::encode_batch(std::slice::from_ref(r), 0).expect("encode");
        assert!(!encoded.windows(5).any(|w| w == b"myHep"));
    }
}

/// What the RTCP hand-off check saw: reports received, and reports that did not belong to
/// the record beside them (or records that should have had one).
#[derive(Debug, Default)]
struct HandOffCounts {
    parsed: usize,
    misaligned: usize,
}

#[derive(Default)]
struct RtcpHandOff(Mutex<HandOffCounts>);

impl RecordObserver for RtcpHandOff {
    fn on_stored(&self, records: &[Record]) {
        self.on_stored_parsed(records, &[]);
    }

    fn on_stored_parsed(&self, records: &[Record], rtcp: &[collector::ParsedRtcp]) {
        let mut counts = self.0.lock().expect("lock");
        for (i, r) in records.iter().enumerate() {
            let report = rtcp.get(i).cloned().flatten();
            match (r.hep_type, &r.payload_json, report) {
                (5, Some(json), Some(report)) => {
                    counts.parsed += 1;
                    let again = payload::rtcp::from_json(json.as_bytes()).expect("stored JSON");
                    if payload::rtcp::to_json(&again) != payload::rtcp::to_json(&report) {
                        counts.misaligned += 1;
                    }
                }
                (5, _, None) => counts.misaligned += 1,
                (_, _, Some(_)) => counts.misaligned += 1,
                _ => {}
            }
        }
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl RecordObserver for Collect {
    fn on_stored(&self, records: &[Record]) {
        self.0
            .lock()
            .expect("lock")
            .extend(records.iter().map(|r| r.sid.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_is_accounted_for_exactly_once() {
    let mut cfg = loopback_config();
    cfg.udp.auth_key = Some(AuthKey("udp-secret".into()));
    cfg.tcp.auth_key = Some(AuthKey("tcp-secret".into()));
    cfg.pipeline.rules.discard_methods = vec!["OPTIONS".into()];
    cfg.pipeline.rules.discard_hep_types = vec![100];
    cfg.pipeline.rules.discard_ips = vec!["192.0.2.0/24".into()];
    let (listeners, udp, tcp) = bind(&cfg);
    let store = shared(VecStore::default());
    *store.reject_sid.lock().expect("lock") = Some("reject-me".into());
    let observer = Arc::new(Collect::default());
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .with_observer(observer.clone())
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();

    let key = Some("udp-secret");
    let mut load = Vec::new();
    for i in 0..200 {
        load.push(sip_hep(&format!("u-{i}"), "INVITE", 5060, key)); // valid
    }
    for i in 0..50 {
        load.push(sip_hep(&format!("u-{i}"), "INVITE", 5060, key)); // duplicates
    }
    for i in 0..30 {
        load.push(format!("garbage {i}").into_bytes()); // not HEP
    }
    load.push(vec![b'H', b'E', b'P', b'3', 0, 200, 0, 1]); // bad length
    for i in 0..20 {
        load.push(sip_hep(&format!("o-{i}"), "OPTIONS", 5060, key)); // discarded: method
    }
    for i in 0..10 {
        load.push(hep_msg(100, format!("log {i}").into_bytes(), 5060, key)); // discarded: type
    }
    for i in 0..15 {
        load.push(sip_hep(&format!("w-{i}"), "INVITE", 5060, Some("wrong"))); // auth
    }
    for i in 0..5 {
        load.push(sip_hep(&format!("n-{i}"), "INVITE", 5060, None)); // auth: missing key
    }
    let mut msg = hep::decode(&sip_hep("ip-1", "INVITE", 5060, key))
        .expect("decode")
        .to_message();
    msg.dst_ip = Some("192.0.2.9".parse().expect("ip"));
    load.push(msg.encode_to_vec().expect("encode")); // discarded: ip
    load.push(sip_hep("reject-me", "INVITE", 5060, key)); // rejected by the store
    send_udp(udp.expect("udp"), &load);

    // TCP: valid frames with garbage between them, a wrong key and a duplicate.
    let mut stream = Vec::new();
    for i in 0..40 {
        stream.extend(sip_hep(&format!("t-{i}"), "BYE", 5070, Some("tcp-secret")));
        stream.extend_from_slice(b"\r\n\x00junk");
    }
    stream.extend(sip_hep("t-0", "BYE", 5070, Some("tcp-secret"))); // duplicate
    stream.extend(sip_hep("t-x", "BYE", 5070, Some("udp-secret"))); // wrong key for TCP
    let mut conn = TcpStream::connect(tcp.expect("tcp")).expect("connect");
    conn.write_all(&stream).expect("write");
    drop(conn);

    let total = (load.len() + 42) as u64;
    settle_and_stop(handle, token, total).await;

    let a = metrics.accounting();
    assert_eq!(a.received, total);
    assert_eq!(a.stored, 240, "200 UDP + 40 TCP");
    assert_eq!(a.deduplicated, 51);
    assert_eq!(a.auth_failed, 21);
    assert_eq!(a.discarded, 31);
    assert_eq!(metrics.discarded_count(DiscardRule::Method), 20);
    assert_eq!(metrics.discarded_count(DiscardRule::HepType), 10);
    assert_eq!(metrics.discarded_count(DiscardRule::Ip), 1);
    assert_eq!(metrics.invalid_count(InvalidKind::NotHep), 30);
    assert_eq!(metrics.invalid_count(InvalidKind::BadLength), 1);
    assert_eq!(metrics.invalid_count(InvalidKind::StoreRejected), 1);
    assert_eq!(a.invalid, 32);
    assert_eq!(a.dropped, 0);
    assert_eq!(a.spooled, 0);
    assert_eq!(
        a.received,
        a.stored + a.deduplicated + a.discarded + a.invalid + a.auth_failed + a.dropped
    );
    assert_eq!(store.len(), 240);
    let mut seen = observer.0.lock().expect("lock").clone();
    seen.sort();
    let mut stored: Vec<String> = store.snapshot().into_iter().map(|r| r.sid).collect();
    stored.sort();
    assert_eq!(seen, stored, "the observer sees exactly the stored records");
    let text = metrics.render();
    assert!(text.contains("hepstack_auth_failures_total 21"));
    assert!(text.contains("hepstack_packets_stored_total 240"));
    assert!(
        !text.contains("secret"),
        "auth keys never reach the metrics"
    );
    assert!(metrics.accounting().received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_spools_to_disk_and_replays_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = loopback_config();
    cfg.writer.batch_size = 50;
    cfg.spool.dir = Some(dir.path().join("spool"));
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    store.failing.store(true, Ordering::SeqCst);
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .open_spool(dir.path())
        .expect("spool")
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();

    let load: Vec<Vec<u8>> = (0..600)
        .map(|i| sip_hep(&format!("s-{i}"), "INVITE", 5060, None))
        .collect();
    send_udp(udp.expect("udp"), &load);
    assert!(
        wait_for_async(WAIT, || metrics.accounting().spooled == 600).await,
        "{:?}",
        metrics.accounting()
    );
    assert_eq!(store.len(), 0);
    assert!(store.failed_calls.load(Ordering::Relaxed) >= 1);
    assert!(metrics.render().contains("hepstack_spool_bytes"));
    let spool_files = std::fs::read_dir(dir.path().join("spool"))
        .expect("spool dir")
        .count();
    assert!(spool_files >= 1, "segments on disk");

    store.failing.store(false, Ordering::SeqCst);
    assert!(
        wait_for_async(WAIT, || store.len() == 600).await,
        "stored {} {:?}",
        store.len(),
        metrics.accounting()
    );
    token.cancel();
    handle.join().await;
    let mut sids: Vec<String> = store.snapshot().into_iter().map(|r| r.sid).collect();
    sids.sort();
    sids.dedup();
    assert_eq!(sids.len(), 600, "every record exactly once");
    let a = metrics.accounting();
    assert_eq!(a.replayed, 600);
    assert_eq!(a.in_spool(), 0);
    assert_eq!(a.in_flight(), 0);
    assert_eq!(a.dropped, 0);
    // The spool is empty on disk too: a restart replays nothing.
    let reopened = DiskSpool::open(&dir.path().join("spool"), Default::default()).expect("reopen");
    assert_eq!(collector::BatchSpool::len(&reopened), 0);
}

/// Starts a collector over `store` with an in-memory spool of `spool_bytes`.
fn start_with_memory_spool(
    cfg: collector::CollectorConfig,
    store: &Arc<VecStore>,
    spool_bytes: u64,
    listeners: collector::BoundListeners,
    token: &CancellationToken,
) -> collector::CollectorHandle {
    Collector::new(cfg, store.clone())
        .expect("config")
        .with_spool(Box::new(MemorySpool::new(spool_bytes)))
        .start(listeners, token.clone())
        .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_store_overflows_into_the_spool_and_loses_nothing() {
    let mut cfg = loopback_config();
    cfg.writer.batch_size = 16;
    cfg.writer.queue_capacity = 16;
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    store.delay_ms.store(30, Ordering::Relaxed);
    let token = CancellationToken::new();
    let handle = start_with_memory_spool(cfg, &store, 64 << 20, listeners, &token);
    let metrics = handle.metrics();
    let load: Vec<Vec<u8>> = (0..800)
        .map(|i| sip_hep(&format!("q-{i}"), "INVITE", 5060, None))
        .collect();
    send_udp(udp.expect("udp"), &load);
    assert!(
        wait_for_async(WAIT, || metrics.accounting().received == 800).await,
        "{:?}",
        metrics.accounting()
    );
    store.delay_ms.store(0, Ordering::Relaxed);
    assert!(
        wait_for_async(WAIT, || store.len() == 800).await,
        "stored {} {:?}",
        store.len(),
        metrics.accounting()
    );
    token.cancel();
    handle.join().await;
    let a = metrics.accounting();
    assert!(a.spooled > 0, "the queue overflowed into the spool: {a:?}");
    assert_eq!(a.stored, 800);
    assert_eq!(a.dropped, 0);
    assert_eq!(a.in_spool(), 0);
}

/// Runs a TCP sender against a store slower than it and returns the final accounting.
async fn slow_store_tcp_run(max_backpressure_ms: u64) -> collector::Accounting {
    let mut cfg = loopback_config();
    // A 64 KiB read holds at most ~220 of these ~300-byte frames: less than the quarter of
    // the queue above its high-water mark, so with backpressure nothing overflows.
    cfg.writer.batch_size = 128;
    cfg.writer.queue_capacity = 1024;
    cfg.tcp.max_backpressure_ms = max_backpressure_ms;
    let (listeners, _, tcp) = bind(&cfg);
    let store = shared(VecStore::default());
    // 10 ms per batch of 128: ~12.8k records/s, far slower than the sender.
    store.delay_ms.store(10, Ordering::Relaxed);
    let token = CancellationToken::new();
    let handle = start_with_memory_spool(cfg, &store, 64 << 20, listeners, &token);
    let metrics = handle.metrics();
    const N: usize = 6000;
    let load: Vec<u8> = (0..N)
        .flat_map(|i| sip_hep(&format!("bp-{i}"), "INVITE", 5060, None))
        .collect();
    let tcp = tcp.expect("tcp");
    let sender = std::thread::spawn(move || {
        let mut conn = TcpStream::connect(tcp).expect("connect");
        conn.write_all(&load).expect("write");
    });
    assert!(
        wait_for_async(WAIT, || store.len() == N).await,
        "stored {} {:?}",
        store.len(),
        metrics.accounting()
    );
    sender.join().expect("sender");
    let text = metrics.render();
    token.cancel();
    handle.join().await;
    let a = metrics.accounting();
    assert_eq!((a.received, a.stored, a.dropped), (N as u64, N as u64, 0));
    let pauses = text
        .lines()
        .find_map(|l| l.strip_prefix("hepstack_stream_backpressure_pauses_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("pause counter rendered");
    assert_eq!(pauses > 0, max_backpressure_ms > 0, "pauses {pauses}");
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_slows_a_tcp_sender_instead_of_filling_the_spool() {
    let with = slow_store_tcp_run(1000).await;
    assert_eq!(
        with.spooled, 0,
        "backpressure kept the surplus out of the spool: {with:?}"
    );
    // The same load without backpressure overflows into the spool: the check above can fail.
    let without = slow_store_tcp_run(0).await;
    assert!(without.spooled > 0, "{without:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_drops_are_counted() {
    let mut cfg = loopback_config();
    cfg.writer.batch_size = 10;
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    store.failing.store(true, Ordering::SeqCst);
    let token = CancellationToken::new();
    let handle = start_with_memory_spool(cfg, &store, 8 * 1024, listeners, &token);
    let metrics = handle.metrics();
    let load: Vec<Vec<u8>> = (0..300)
        .map(|i| sip_hep(&format!("f-{i}"), "INVITE", 5060, None))
        .collect();
    send_udp(udp.expect("udp"), &load);
    assert!(
        wait_for_async(WAIT, || {
            let a = metrics.accounting();
            a.received == 300 && a.spooled + a.dropped == 300
        })
        .await,
        "{:?}",
        metrics.accounting()
    );
    token.cancel();
    handle.join().await;
    let a = metrics.accounting();
    assert!(a.dropped > 0 && a.spooled > 0, "{a:?}");
    assert_eq!(a.in_flight(), a.in_spool());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_idle_timeout() {
    let mut cfg = loopback_config();
    cfg.udp.addresses.clear();
    cfg.tcp.max_connections = 1;
    cfg.tcp.idle_timeout_secs = 1;
    let (listeners, _, tcp) = bind(&cfg);
    let tcp = tcp.expect("tcp");
    let store = shared(VecStore::default());
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();

    let mut first = TcpStream::connect(tcp).expect("connect");
    first
        .write_all(&sip_hep("c-1", "INVITE", 5060, None))
        .expect("write");
    assert!(wait_for_async(WAIT, || store.len() == 1).await);
    assert_eq!(metrics.connections(Transport::Tcp), 1);

    // A second connection is over the limit: closed at once, the first unaffected.
    let mut second = TcpStream::connect(tcp).expect("connect");
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    let n = second.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "refused connection is closed");
    assert_eq!(metrics.connections_rejected_count(Transport::Tcp), 1);
    first
        .write_all(&sip_hep("c-2", "INVITE", 5060, None))
        .expect("write");
    assert!(wait_for_async(WAIT, || store.len() == 2).await);

    // Silence: the server closes the first connection after the idle timeout.
    first
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let n = first.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "idle connection closed by the server");
    assert!(wait_for_async(WAIT, || metrics.connections(Transport::Tcp) == 0).await);

    // With the slot free again, a new connection is served.
    let mut third = TcpStream::connect(tcp).expect("connect");
    third
        .write_all(&sip_hep("c-3", "INVITE", 5060, None))
        .expect("write");
    assert!(wait_for_async(WAIT, || store.len() == 3).await);
    token.cancel();
    handle.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_stream_is_closed_without_affecting_others() {
    let mut cfg = loopback_config();
    cfg.udp.addresses.clear();
    let (listeners, _, tcp) = bind(&cfg);
    let tcp = tcp.expect("tcp");
    let store = shared(VecStore::default());
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();
    let mut good = TcpStream::connect(tcp).expect("connect");
    let mut bad = TcpStream::connect(tcp).expect("connect");
    good.write_all(&sip_hep("g-1", "INVITE", 5060, None))
        .expect("write");
    // 1 MiB of junk (with stray magics) and then a valid frame the server never sees.
    let junk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| if i % 997 == 0 { b'H' } else { (i % 251) as u8 })
        .collect();
    let _ = bad.write_all(&junk);
    let _ = bad.write_all(&sip_hep("g-bad", "INVITE", 5060, None));
    bad.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(bad.read(&mut buf).unwrap_or(0), 0, "garbage stream closed");
    good.write_all(&sip_hep("g-2", "INVITE", 5060, None))
        .expect("write");
    assert!(wait_for_async(WAIT, || store.len() == 2).await);
    token.cancel();
    handle.join().await;
    let sids: Vec<String> = store.snapshot().into_iter().map(|r| r.sid).collect();
    assert!(sids.contains(&"g-1".to_owned()) && sids.contains(&"g-2".to_owned()));
    assert!(metrics
        .render()
        .contains("hepstack_stream_bytes_skipped_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_doubled_ack_is_stored_once() {
    // Find the ACK Kamailio traced twice in the real capture.
    let all = datagrams("kamailio-hep3-udp");
    let mut by_content: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, d) in all.iter().enumerate() {
        let p = hep::decode(d).expect("decode");
        let mut key = p.payload.unwrap_or_default().to_vec();
        key.extend_from_slice(&p.src_port.unwrap_or(0).to_be_bytes());
        key.extend_from_slice(&p.dst_port.unwrap_or(0).to_be_bytes());
        by_content.entry(key).or_default().push(i);
    }
    let pair = by_content
        .values()
        .filter(|v| v.len() == 2)
        .find(|v| {
            let a = hep::decode(&all[v[0]]).expect("decode");
            let b = hep::decode(&all[v[1]]).expect("decode");
            let ta = a.timestamp_micros().unwrap_or(0);
            let tb = b.timestamp_micros().unwrap_or(0);
            a.payload.is_some_and(|p| p.starts_with(b"ACK")) && ta.abs_diff(tb) < 1000
        })
        .expect("the doubled ACK in the sample");

    let cfg = loopback_config();
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();
    send_udp(
        udp.expect("udp"),
        &[all[pair[0]].clone(), all[pair[1]].clone()],
    );
    assert!(
        wait_for_async(WAIT, || {
            let a = metrics.accounting();
            a.received == 2 && a.in_flight() == 0
        })
        .await
    );
    token.cancel();
    handle.join().await;
    assert_eq!(store.len(), 1);
    assert_eq!(metrics.accounting().deduplicated, 1);
    let r = &store.snapshot()[0];
    assert_eq!(r.sip.as_ref().expect("sip").method, "ACK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_queue_into_the_store() {
    let mut cfg = loopback_config();
    cfg.writer.max_batch_delay_ms = 900;
    cfg.writer.batch_size = 100_000;
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();
    let load: Vec<Vec<u8>> = (0..300)
        .map(|i| sip_hep(&format!("d-{i}"), "INVITE", 5060, None))
        .collect();
    send_udp(udp.expect("udp"), &load);
    assert!(wait_for_async(WAIT, || metrics.accounting().received == 300).await);
    token.cancel();
    handle.join().await;
    assert_eq!(
        store.len(),
        300,
        "everything received was flushed at shutdown"
    );
}

/// The scheduling priority of this process's thread named `name`, from
/// `/proc/self/task/*/stat`: (runs under `SCHED_IDLE`, nice value).
#[cfg(target_os = "linux")]
fn thread_priority(name: &str) -> Option<(bool, i64)> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // Fields after the parenthesised command: state is field 3, nice field 19, policy 41.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let nice = fields.get(16)?.parse().ok()?;
        let policy: i32 = fields.get(38)?.parse().ok()?;
        return Some((policy == libc::SCHED_IDLE, nice));
    }
    None
}

/// Whether priority `a` runs below `b`: `SCHED_IDLE` is below every nice level, and a higher
/// nice is below a lower one.
#[cfg(target_os = "linux")]
fn runs_below(a: (bool, i64), b: (bool, i64)) -> bool {
    (a.0 && !b.0) || (a.0 == b.0 && a.1 > b.1)
}

/// Under CPU pressure the kernel drops what the UDP receivers do not read in time, while what
/// the writers store late is held by the queue and the spool: the writers and the replayer run
/// at a lower priority than the receivers, also when the collector itself runs under `nice`
/// (`nice -n 19 cargo test ...` puts the receivers at the lowest nice level; the writers then
/// run under `SCHED_IDLE`).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_yield_the_cpu_to_the_receivers() {
    let cfg = loopback_config();
    let (listeners, _, _) = bind(&cfg);
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, shared(VecStore::default()))
        .expect("config")
        .start(listeners, token.clone())
        .expect("start");
    // The threads lower their own priority as they start: wait until both have done so.
    let mut seen = (None, None, None);
    let lowered = wait_for_async(WAIT, || {
        seen = (
            thread_priority("hep-writer-0"),
            thread_priority("hep-replayer"),
            thread_priority("hep-udp-0"),
        );
        match seen {
            (Some(writer), Some(replayer), Some(receiver)) => {
                runs_below(writer, receiver) && runs_below(replayer, receiver)
            }
            _ => false,
        }
    })
    .await;
    assert!(
        lowered,
        "(SCHED_IDLE, nice) of writer, replayer, receiver: {seen:?}"
    );
    token.cancel();
    handle.join().await;
}

/// Many messages in one read. Over TCP (one write) and UDP (one `recvmmsg` batch or a few):
/// copies at every distance from 1 to 9 messages behind their original are caught, messages
/// stopped before dedup (wrong key, no payload) or after it (a method rule) are counted, and
/// what is stored comes out in send order with strictly increasing receive times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_one_read_keep_their_order_and_their_duplicates_are_caught() {
    let mut cfg = loopback_config();
    cfg.udp.auth_key = Some(AuthKey("k".into()));
    cfg.tcp.auth_key = Some(AuthKey("k".into()));
    cfg.pipeline.rules.discard_methods = vec!["OPTIONS".into()];
    let (listeners, udp, tcp) = bind(&cfg);
    let store = shared(VecStore::default());
    let (handle, token) = start_collector(cfg, listeners, store.clone());
    let metrics = handle.metrics();

    // (wire messages, sids expected in the store in this order)
    let sequence = |prefix: &str| {
        let key = Some("k");
        let unique = |i: usize| sip_hep(&format!("{prefix}-{i}"), "INVITE", 5060, key);
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for i in 0..30 {
            wire.push(unique(i));
            expected.push(format!("{prefix}-{i}"));
            // A copy of the message `d` originals back, for d = 1..=9 in turn.
            let d = i % 9 + 1;
            if i + 1 >= d {
                wire.push(unique(i + 1 - d));
            }
            match i % 7 {
                2 => wire.push(sip_hep(
                    &format!("{prefix}-w{i}"),
                    "INVITE",
                    5060,
                    Some("wrong"),
                )),
                4 => wire.push(
                    hep::HepMessage {
                        ip_family: Some(hep::FAMILY_IPV4),
                        proto_type: Some(1),
                        auth_key: Some(b"k".to_vec()),
                        ..Default::default()
                    }
                    .encode_to_vec()
                    .expect("encode"),
                ),
                6 => wire.push(sip_hep(&format!("{prefix}-o{i}"), "OPTIONS", 5060, key)),
                _ => {}
            }
        }
        (wire, expected)
    };
    let (tcp_wire, tcp_expected) = sequence("t");
    let (udp_wire, udp_expected) = sequence("u");
    let mut conn = TcpStream::connect(tcp.expect("tcp")).expect("connect");
    conn.write_all(&tcp_wire.concat()).expect("write");
    drop(conn);
    send_udp(udp.expect("udp"), &udp_wire);

    let total = (tcp_wire.len() + udp_wire.len()) as u64;
    settle_and_stop(handle, token, total).await;

    let a = metrics.accounting();
    assert_eq!(a.stored, 60);
    // Per transport: 30 copies, and 4 each of wrong keys, no payload, OPTIONS.
    assert_eq!(a.deduplicated, 2 * 30);
    assert_eq!(a.auth_failed, 2 * 4);
    assert_eq!(metrics.invalid_count(InvalidKind::NoPayload), 2 * 4);
    assert_eq!(a.discarded, 2 * 4);
    assert_eq!(
        a.received,
        a.stored + a.deduplicated + a.discarded + a.invalid + a.auth_failed
    );
    let stored = store.snapshot();
    for (prefix, expected) in [("t-", tcp_expected), ("u-", udp_expected)] {
        let records: Vec<&Record> = stored
            .iter()
            .filter(|r| r.sid.starts_with(prefix))
            .collect();
        let sids: Vec<&str> = records.iter().map(|r| r.sid.as_str()).collect();
        assert_eq!(sids, expected, "{prefix} records in send order, each once");
        assert!(
            records
                .windows(2)
                .all(|w| w[0].received_us < w[1].received_us),
            "{prefix} receive times strictly increase"
        );
    }
}

/// KPIs are an output: they see every accepted record while the store is down (and drops
/// them into no spool here), and the KPI thread does its own housekeeping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_count_while_the_store_is_down() {
    let cfg = loopback_config();
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    store.failing.store(true, Ordering::SeqCst);
    let engine = Arc::new(
        kpi::Kpi::new(kpi::KpiConfig {
            reorder_window_ms: 0,
            ..kpi::KpiConfig::default()
        })
        .expect("kpi config"),
    );
    let output = Arc::new(collector::kpi_output(engine.clone(), 10_000).expect("kpi thread"));
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .with_output(output.clone())
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();
    let load: Vec<Vec<u8>> = (0..600)
        .map(|i| sip_hep(&format!("down-{i}"), "INVITE", 5060, None))
        .collect();
    send_udp(udp.expect("udp"), &load);
    use collector::output::Output;
    assert!(
        wait_for_async(WAIT, || output.stats().sent == 600).await,
        "{:?} {:?}",
        output.stats(),
        metrics.accounting()
    );
    assert!(
        wait_for_async(WAIT, || metrics.accounting().dropped == 600).await,
        "no spool: every record is dropped {:?}",
        metrics.accounting()
    );
    assert_eq!(store.len(), 0, "the store took nothing");
    engine.flush();
    let mut text = String::new();
    engine.render_prometheus(&mut text);
    let invites: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("hepstack_sip_requests_total{")
                && l.contains("target=\"any\"")
                && l.contains("method=\"INVITE\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(invites, 600, "{text}");
    let mut rendered = String::new();
    handle.outputs().render(&mut rendered);
    assert!(
        rendered.contains("hepstack_output_sent_total{output=\"kpi\"} 600"),
        "{rendered}"
    );
    token.cancel();
    handle.join().await;
}
