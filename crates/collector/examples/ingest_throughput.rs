//! End-to-end ingest throughput: HEPv3 over TCP (loopback) → framing → decode → dedup →
//! enrich → queue → writer batches → a store that only counts rows. Measures the collector's
//! side of the ≥150k msg/s target without a database in the way.
//!
//! Every message is the real Kamailio INVITE from the shared samples with a unique Call-ID, so
//! dedup, SIP indexing and enrichment do their full work.
//!
//! Run: `cargo run --release -p collector --example ingest_throughput -- [MESSAGES] [CONNECTIONS]`

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use collector::{BoundListeners, Collector, CollectorConfig};
use store::{
    BatchOutcome, CallSummary, MessageFilter, Page, Record, RetentionReport, Store, StoreError,
    StoreStats, StoredMessage, User,
};
use tokio_util::sync::CancellationToken;

/// Counts rows; stores nothing.
#[derive(Default)]
struct CountingStore {
    rows: AtomicU64,
}

impl Store for CountingStore {
    fn backend(&self) -> &'static str {
        "count"
    }
    fn insert_batch(&self, batch: &[Record]) -> Result<BatchOutcome, StoreError> {
        self.rows.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(BatchOutcome {
            stored: batch.len(),
            rejected: Vec::new(),
        })
    }
    fn messages(&self, _: &MessageFilter) -> Result<Page<StoredMessage>, StoreError> {
        Err(StoreError::InvalidQuery("counting store".into()))
    }
    fn scan(&self, _: &store::ScanRequest) -> Result<store::ScanPage, StoreError> {
        Err(StoreError::InvalidQuery("counting store".into()))
    }
    fn calls(&self, _: &MessageFilter) -> Result<Page<CallSummary>, StoreError> {
        Err(StoreError::InvalidQuery("counting store".into()))
    }
    fn call_flow(
        &self,
        _: &[String],
        _: Option<i64>,
        _: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Err(StoreError::InvalidQuery("counting store".into()))
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

/// The sample INVITE as a HEPv3 frame whose Call-ID is a 16-digit counter, and the counter's
/// offset in the frame.
fn template() -> (Vec<u8>, usize) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/samples/kamailio-hep3-udp/datagrams");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("samples present")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for f in files {
        let wire = std::fs::read(&f).expect("read");
        let Ok(packet) = hep::decode(&wire) else {
            continue;
        };
        let Some(payload) = packet.payload else {
            continue;
        };
        if !payload.starts_with(b"INVITE") {
            continue;
        }
        let call_id = sip::index(payload).call_id.expect("Call-ID").as_bytes();
        let text = String::from_utf8_lossy(payload)
            .replace(&*String::from_utf8_lossy(call_id), "0000000000000000");
        let mut msg = packet.to_message();
        msg.payload = Some(text.into_bytes());
        let frame = msg.encode_to_vec().expect("encode");
        let at = frame
            .windows(16)
            .position(|w| w == b"0000000000000000")
            .expect("counter");
        return (frame, at);
    }
    panic!("no INVITE in the samples");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let connections: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let (frame, at) = template();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = CollectorConfig::default();
    cfg.udp.addresses.clear();
    cfg.tcp.addresses = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.writer.batch_size = 5000;
    cfg.writer.queue_capacity = 200_000;
    let listeners = BoundListeners::bind(&cfg.listeners()).expect("bind");
    let addr = listeners.local_addrs().1[0];
    let store = Arc::new(CountingStore::default());
    let token = CancellationToken::new();
    let handle = {
        let _guard = runtime.enter();
        Collector::new(cfg, store.clone())
            .expect("config")
            .start(listeners, token.clone())
            .expect("start")
    };
    let metrics = handle.metrics();

    let started = Instant::now();
    let senders: Vec<_> = (0..connections)
        .map(|c| {
            let frame = frame.clone();
            std::thread::spawn(move || {
                let mut conn = TcpStream::connect(addr).expect("connect");
                let per = total / connections + u64::from(c < total % connections);
                let mut buf = Vec::with_capacity(frame.len() * 256);
                let mut sent = 0u64;
                while sent < per {
                    buf.clear();
                    for _ in 0..256.min(per - sent) {
                        let id = c * 1_000_000_000_000 + sent;
                        let start = buf.len();
                        buf.extend_from_slice(&frame);
                        let digits = format!("{id:016}");
                        buf[start + at..start + at + 16].copy_from_slice(digits.as_bytes());
                        sent += 1;
                    }
                    conn.write_all(&buf).expect("write");
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    let sent_at = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.rows.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let stored = store.rows.load(Ordering::Relaxed);
    let rss = collector::resident_memory_bytes().unwrap_or(0);
    token.cancel();
    runtime.block_on(handle.join());
    let a = metrics.accounting();
    println!(
        "messages {total} over {connections} TCP connection(s): stored {stored} in {:.3} s = {:.0} msg/s (sender done after {:.3} s); RSS {} MiB; accounting {a:?}",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        sent_at.as_secs_f64(),
        rss >> 20
    );
}
