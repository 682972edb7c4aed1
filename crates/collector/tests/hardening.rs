//! What no single sender may do to the collector: fill the store with partitions through
//! skewed timestamps, hide frames behind a fake header, exhaust memory or connections.

mod common;

use std::collections::HashSet;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use collector::{ClampReason, Collector, HealthStatus, MemorySpool, StreamClose};
use common::*;
use tokio_util::sync::CancellationToken;

const HOUR_US: i64 = 3_600_000_000;

/// A SIP request as HEPv3 stamped `ts_us` (microseconds since the epoch).
fn sip_at(call: &str, ts_us: i64) -> Vec<u8> {
    let mut msg = hep::decode(&sip_hep(call, "INVITE", 5060, None))
        .expect("decode")
        .to_message();
    msg.ts_sec = Some(u32::try_from(ts_us.div_euclid(1_000_000)).unwrap_or(u32::MAX));
    msg.ts_usec = Some(u32::try_from(ts_us.rem_euclid(1_000_000)).unwrap_or(0));
    msg.encode_to_vec().expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_timestamps_cannot_spread_records_over_many_partitions() {
    let cfg = loopback_config();
    let max_past_hours = cfg.pipeline.max_past_hours;
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    let (handle, token) = start_collector(cfg, listeners, store.clone());
    let metrics = handle.metrics();
    let now = collector::now_us();
    let day = 24 * HOUR_US;
    let mut load = Vec::new();
    // An imported capture: two hours, 20 days ago; every packet keeps its time.
    let capture_start = (now - 20 * day).div_euclid(HOUR_US) * HOUR_US;
    for i in 0..200 {
        load.push(sip_at(
            &format!("capture-{i}"),
            capture_start + i * 36_000_000,
        ));
    }
    // The probe: 1,000 packets stamped 3 days apart, into the past and the future.
    for i in 0..1000i64 {
        let offset = (i / 2 + 1) * 3 * day;
        let ts = if i % 2 == 0 {
            now + offset
        } else {
            now - offset
        };
        if ts > 0 && ts < i64::from(u32::MAX) * 1_000_000 {
            load.push(sip_at(&format!("skew-{i}"), ts));
        }
    }
    let total = load.len() as u64;
    send_udp(udp.expect("udp"), &load);
    settle_and_stop(handle, token, total).await;

    let records = store.snapshot();
    assert_eq!(records.len() as u64, total, "nothing is dropped");
    let outside: HashSet<i64> = records
        .iter()
        .filter(|r| (r.time_us - r.received_us).abs() > HOUR_US)
        .map(|r| r.time_us.div_euclid(HOUR_US))
        .collect();
    assert!(
        outside.len() <= max_past_hours,
        "{} hours outside the current window",
        outside.len()
    );
    let kept: Vec<_> = records
        .iter()
        .filter(|r| r.sid.starts_with("capture-"))
        .collect();
    assert_eq!(kept.len(), 200);
    assert!(
        kept.iter()
            .all(|r| r.time_us.div_euclid(HOUR_US) - capture_start / HOUR_US < 2),
        "the imported capture keeps its own times"
    );
    assert_eq!(metrics.timestamps_clamped_count(ClampReason::Future), 500);
    assert!(
        metrics.timestamps_clamped_count(ClampReason::PastHours) >= 500 - max_past_hours as u64
    );
    assert!(metrics
        .render()
        .contains("hepstack_timestamps_clamped_total{reason=\"future\"} 500"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_store_and_the_spool() {
    let mut cfg = loopback_config();
    cfg.writer.batch_size = 50;
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    let token = CancellationToken::new();
    // A spool with room for a few batches only.
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .with_spool(Box::new(MemorySpool::new(16 * 1024)))
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();
    let udp = udp.expect("udp");
    assert_eq!(metrics.health().status, HealthStatus::Ok);

    // The store fails: records go to the spool, nothing is lost yet.
    store.failing.store(true, Ordering::SeqCst);
    send_udp(udp, &[sip_hep("h-0", "INVITE", 5060, None)]);
    assert!(
        wait_for_async(Duration::from_secs(20), || metrics.accounting().spooled
            == 1)
        .await,
        "{:?}",
        metrics.accounting()
    );
    let report = metrics.health();
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.reasons[0].contains("test outage"), "{report:?}");

    // The spool fills: records are dropped, the collector is failing.
    let load: Vec<Vec<u8>> = (1..2000)
        .map(|i| sip_hep(&format!("h-{i}"), "INVITE", 5060, None))
        .collect();
    send_udp(udp, &load);
    assert!(
        wait_for_async(Duration::from_secs(20), || metrics.accounting().dropped > 0).await,
        "{:?}",
        metrics.accounting()
    );
    let report = metrics.health();
    assert_eq!(report.status, HealthStatus::Failing, "{report:?}");
    assert!(metrics.render().contains("hepstack_health_status 2"));

    // The store recovers and the spool drains: degraded, then ok once the drops age out.
    store.failing.store(false, Ordering::SeqCst);
    assert!(
        wait_for_async(Duration::from_secs(20), || metrics.accounting().in_spool()
            == 0)
        .await,
        "{:?}",
        metrics.accounting()
    );
    assert!(!metrics
        .health()
        .reasons
        .iter()
        .any(|r| r.contains("test outage")));
    token.cancel();
    handle.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_frame_header_on_tcp_hides_nothing() {
    let cfg = loopback_config();
    let (listeners, _, tcp) = bind(&cfg);
    let store = shared(VecStore::default());
    let (handle, token) = start_collector(cfg, listeners, store.clone());
    // The probe: a good frame, `HEP3\xff\xff`, 20 good frames, close.
    let mut stream = sip_hep("fake-0", "INVITE", 5060, None);
    stream.extend_from_slice(b"HEP3\xff\xff");
    for i in 1..=20 {
        stream.extend(sip_hep(&format!("fake-{i}"), "INVITE", 5060, None));
    }
    // And on a second connection, a header claiming more than is ever sent, with bytes
    // behind it that keep its chunk walk plausible, then good frames.
    let mut second = b"HEP3\x10\x00\x00\x00\x00\x01\x01\x00x".to_vec();
    for i in 0..5 {
        second.extend(sip_hep(&format!("tail-{i}"), "INVITE", 5060, None));
    }
    for bytes in [stream, second] {
        let mut conn = TcpStream::connect(tcp.expect("tcp")).expect("connect");
        conn.write_all(&bytes).expect("write");
    }
    settle_and_stop(handle, token, 26).await;
    assert_eq!(store.len(), 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let mut cfg = loopback_config();
    cfg.tcp.max_connections = 8;
    cfg.tcp.max_connections_per_address = 4;
    let (listeners, _, tcp) = bind(&cfg);
    let tcp = tcp.expect("tcp");
    let store = shared(VecStore::default());
    let (handle, token) = start_collector(cfg, listeners, store.clone());
    let metrics = handle.metrics();
    // The probe: idle connections from one address, far more than the limit.
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(tcp).expect("connect"))
        .collect();
    assert!(
        wait_for_async(Duration::from_secs(20), || {
            metrics.stream_closed_count(StreamClose::AddressLimit) == 16
        })
        .await,
        "{}",
        metrics.render()
    );
    // A real agent on another address still gets in and is stored.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut agent = socket.connect(tcp).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut agent, &sip_hep("agent-1", "INVITE", 5060, None))
        .await
        .expect("write");
    drop(agent);
    assert!(wait_for_async(Duration::from_secs(20), || store.len() == 1).await);
    assert_eq!(metrics.connections(collector::Transport::Tcp), 4);
    drop(idle);
    token.cancel();
    handle.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_frame_does_not_hold_its_connection() {
    let mut cfg = loopback_config();
    cfg.tcp.frame_timeout_secs = 1;
    let (listeners, _, tcp) = bind(&cfg);
    let store = shared(VecStore::default());
    let (handle, token) = start_collector(cfg, listeners, store.clone());
    let metrics = handle.metrics();
    let frame = sip_hep("slow-1", "INVITE", 5060, None);
    let mut conn = TcpStream::connect(tcp.expect("tcp")).expect("connect");
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    // The probe: one byte at a time, each well within the idle timeout (300 s); bounded.
    let mut closed = false;
    for byte in frame.iter().take(200) {
        if conn.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1];
        match conn.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "the collector closed the connection");
    assert_eq!(metrics.stream_closed_count(StreamClose::FrameTimeout), 1);
    assert_eq!(store.len(), 0);
    token.cancel();
    handle.join().await;
}

/// A HEPv3 SIP message whose compressed payload inflates to 1 MiB (`max_inflated_bytes`).
fn bomb(call: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut sip = format!(
        "MESSAGE sip:bob@example.com SIP/2.0\r\nCall-ID: {call}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes();
    sip.resize((1 << 20) - 16, b'a');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&sip).expect("gzip");
    let mut msg = hep::decode(&sip_hep(call, "MESSAGE", 5060, None))
        .expect("decode")
        .to_message();
    msg.payload = None;
    msg.payload_compressed = Some(gz.finish().expect("gzip"));
    msg.encode_to_vec().expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_bytes_are_bounded_not_only_records() {
    let mut cfg = loopback_config();
    cfg.writer.queue_max_bytes = 4 << 20;
    let (listeners, udp, _) = bind(&cfg);
    let store = shared(VecStore::default());
    // A store slower than the sender: the queue would hold every bomb (far below the
    // 16,384-record capacity), 1 MiB each.
    store.delay_ms.store(500, Ordering::Relaxed);
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store.clone())
        .expect("config")
        .with_spool(Box::new(MemorySpool::new(1 << 30)))
        .start(listeners, token.clone())
        .expect("start");
    let metrics = handle.metrics();
    let bombs: Vec<Vec<u8>> = (0..100).map(|i| bomb(&format!("bomb-{i}"))).collect();
    send_udp(udp.expect("udp"), &bombs);
    assert!(
        wait_for_async(Duration::from_secs(20), || metrics.accounting().received
            == 100)
        .await,
        "{:?}",
        metrics.accounting()
    );
    // At most 4 MiB of records in memory: most went to the spool (none did before the bound,
    // the queue held them all).
    let a = metrics.accounting();
    assert!(a.spooled >= 50, "{a:?}");
    assert_eq!(a.dropped, 0);
    store.delay_ms.store(0, Ordering::Relaxed);
    settle_and_stop(handle, token, 100).await;
    assert_eq!(store.len(), 100, "nothing lost");
}
