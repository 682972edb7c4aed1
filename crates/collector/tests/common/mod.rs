//! Helpers shared by the collector's integration tests.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collector::{BoundListeners, Collector, CollectorConfig, CollectorHandle};
use store::{
    BatchOutcome, CallSummary, MessageFilter, Page, Record, RetentionReport, Store, StoreError,
    StoreStats, StoredMessage, User,
};
use tokio_util::sync::CancellationToken;

/// A Store around a Vec that can be told to fail, to be slow, or to reject a sid.
#[derive(Default)]
pub struct VecStore {
    pub records: Mutex<Vec<Record>>,
    pub failing: AtomicBool,
    pub failed_calls: AtomicU64,
    pub delay_ms: AtomicU64,
    pub reject_sid: Mutex<Option<String>>,
}

impl VecStore {
    pub fn len(&self) -> usize {
        self.records.lock().expect("lock").len()
    }
    pub fn snapshot(&self) -> Vec<Record> {
        self.records.lock().expect("lock").clone()
    }
}

impl Store for VecStore {
    fn backend(&self) -> &'static str {
        "vec"
    }
    fn insert_batch(&self, batch: &[Record]) -> Result<BatchOutcome, StoreError> {
        let delay = self.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if self.failing.load(Ordering::SeqCst) {
            self.failed_calls.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable("test outage".into()));
        }
        let reject = self.reject_sid.lock().expect("lock").clone();
        let mut out = BatchOutcome::default();
        let mut records = self.records.lock().expect("lock");
        for (i, r) in batch.iter().enumerate() {
            if reject.as_deref() == Some(r.sid.as_str()) {
                out.rejected.push((i, "rejected by test".into()));
            } else {
                records.push(r.clone());
                out.stored += 1;
            }
        }
        Ok(out)
    }
    fn messages(&self, _: &MessageFilter) -> Result<Page<StoredMessage>, StoreError> {
        Err(StoreError::InvalidQuery(
            "not supported by the test store".into(),
        ))
    }
    fn scan(&self, _: &store::ScanRequest) -> Result<store::ScanPage, StoreError> {
        Err(StoreError::InvalidQuery(
            "not supported by the test store".into(),
        ))
    }
    fn calls(&self, _: &MessageFilter) -> Result<Page<CallSummary>, StoreError> {
        Err(StoreError::InvalidQuery(
            "not supported by the test store".into(),
        ))
    }
    fn call_flow(
        &self,
        _: &[String],
        _: Option<i64>,
        _: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Err(StoreError::InvalidQuery(
            "not supported by the test store".into(),
        ))
    }
    fn enforce_retention(&self, _: i64) -> Result<RetentionReport, StoreError> {
        Ok(RetentionReport::default())
    }
    fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats::default())
    }
    fn user(&self, _: &str) -> Result<Option<User>, StoreError> {
        Ok(None)
    }
    fn put_user(&self, _: &User) -> Result<(), StoreError> {
        Ok(())
    }
    fn user_count(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(Vec::new())
    }
    fn delete_user(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn setting(&self, _: &str, _: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    fn put_setting(&self, _: &str, _: &str, _: Option<&str>) -> Result<(), StoreError> {
        Ok(())
    }
    fn settings(&self, _: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(Vec::new())
    }
}

/// A configuration listening on 127.0.0.1:0 (UDP and TCP), no TLS.
pub fn loopback_config() -> CollectorConfig {
    let mut cfg = CollectorConfig::default();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    cfg.udp.addresses = vec![any];
    cfg.udp.receive_buffer_bytes = 8 << 20;
    cfg.tcp.addresses = vec![any];
    cfg.writer.max_batch_delay_ms = 20;
    cfg
}

pub fn bind(cfg: &CollectorConfig) -> (BoundListeners, Option<SocketAddr>, Option<SocketAddr>) {
    let l = BoundListeners::bind(&cfg.listeners()).expect("bind");
    let (udp, tcp, _) = l.local_addrs();
    (l, udp.first().copied(), tcp.first().copied())
}

/// Polls `f` every 10 ms until it is true or `limit` passes; returns the final value.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub async fn wait_for_async(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples")
}

/// A synthetic SIP request as HEPv3.
pub fn sip_hep(call: &str, method: &str, src_port: u16, key: Option<&str>) -> Vec<u8> {
    let payload = format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:{src_port};branch=z9hG4bK-{call}\r\nFrom: <sip:alice@example.com>;tag=f-{call}\r\nTo: <sip:bob@example.com>\r\nCall-ID: {call}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    hep_msg(1, payload.into_bytes(), src_port, key)
}

pub fn hep_msg(proto: u8, payload: Vec<u8>, src_port: u16, key: Option<&str>) -> Vec<u8> {
    hep::HepMessage {
        ip_family: Some(hep::FAMILY_IPV4),
        ip_proto: Some(17),
        src_ip: Some("10.0.0.1".parse().expect("ip")),
        dst_ip: Some("10.0.0.2".parse().expect("ip")),
        src_port: Some(src_port),
        dst_port: Some(5060),
        ts_sec: Some(1_700_000_000),
        ts_usec: Some(1),
        proto_type: Some(proto),
        capture_id: Some(2001),
        auth_key: key.map(|k| k.as_bytes().to_vec()),
        payload: Some(payload),
        ..Default::default()
    }
    .encode_to_vec()
    .expect("encode")
}

/// Sends datagrams, pacing a little every 64 so loopback never overflows.
pub fn send_udp(to: SocketAddr, datagrams: &[Vec<u8>]) {
    let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
    for (i, d) in datagrams.iter().enumerate() {
        tx.send_to(d, to).expect("send");
        if i % 64 == 63 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Starts a collector on `listeners` that stores into `store`; cancelling the token stops it.
pub fn start_collector(
    cfg: CollectorConfig,
    listeners: BoundListeners,
    store: Arc<VecStore>,
) -> (CollectorHandle, CancellationToken) {
    let token = CancellationToken::new();
    let handle = Collector::new(cfg, store)
        .expect("config")
        .start(listeners, token.clone())
        .expect("start");
    (handle, token)
}

/// Waits (up to 20 s) until `total` packets were received and none is in flight, then stops
/// the collector and waits for it to drain; fails with the accounting if they never were.
pub async fn settle_and_stop(handle: CollectorHandle, token: CancellationToken, total: u64) {
    let metrics = handle.metrics();
    assert!(
        wait_for_async(Duration::from_secs(20), || {
            let a = metrics.accounting();
            a.received == total && a.in_flight() == 0
        })
        .await,
        "{:?}",
        metrics.accounting()
    );
    token.cancel();
    handle.join().await;
}

pub fn shared<T>(v: T) -> Arc<T> {
    Arc::new(v)
}
