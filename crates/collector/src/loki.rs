//! Loki push: chosen HEP types as log lines, with heplify-server-like labels, to Grafana Loki's
//! `/loki/api/v1/push` in its native encoding (protobuf `logproto.PushRequest`, snappy block
//! compression, `Content-Type: application/x-protobuf`).
//!
//! ```text
//! writer threads ──on_stored──► bounded queue ──► pusher task: batch (entries / bytes / wait)
//!                 (full → counted drop)              └─► POST, retry with exponential backoff
//! ```
//!
//! * Labels: `job` (configured, default `heplify-server`), `type` (`sip`, `rtcp`, `log`, `dns`,
//!   or the HEP type number), `node`, and for SIP `method` (request method, or the CSeq method
//!   of a response) and `response` (status code of a response); `src_ip` / `dst_ip` only when
//!   `src_dst_labels` is on (high cardinality). Never a Call-ID or user.
//! * Line: the SIP message as text, or the record's JSON payload (RTCP, logs, DNS), or the raw
//!   payload as lossy UTF-8; cut at `max_line_bytes`.
//! * Memory is bounded by `queue_entries` plus one batch; what does not fit is dropped and
//!   counted (`hepstack_loki_entries_dropped_total{reason="queue_full"}`). A batch that still
//!   fails after `max_retries` (or that Loki rejects with a 4xx other than 429) is dropped and
//!   counted too.
//! * The message structs are written by hand with `prost` derives (field numbers from Loki's
//!   `pkg/push/push.proto`), so no `protoc` is needed to build.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store::Record;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::output::{Output, OutputStats};
use crate::writer::{ParsedRtcp, RecordObserver};

/// The `[loki]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LokiConfig {
    /// Push to Loki at all. Default false.
    pub enabled: bool,
    /// Push endpoint. Default `http://127.0.0.1:3100/loki/api/v1/push`.
    pub url: String,
    /// Tenant sent as `X-Scope-OrgID`; empty sends no header. Default empty.
    pub tenant: String,
    /// HEP types pushed. Default `[1, 100]` (SIP and logs).
    pub hep_types: Vec<u8>,
    /// Value of the `job` label. Default `heplify-server` (dashboards built for it work).
    pub job: String,
    /// Add `src_ip` and `dst_ip` labels (many streams on a busy network). Default false.
    pub src_dst_labels: bool,
    /// A batch is sent when it holds this many entries. Default 1000.
    pub batch_entries: usize,
    /// … or this many bytes of lines. Default 1048576.
    pub batch_bytes: usize,
    /// … or when its oldest entry waited this long, ms. Default 1000.
    pub batch_wait_ms: u64,
    /// Entries waiting for the pusher at most; more are dropped and counted. Default 50000.
    pub queue_entries: usize,
    /// Retries of a failing batch before it is dropped. Default 5.
    pub max_retries: u32,
    /// First retry delay, ms (doubled per retry). Default 250.
    pub backoff_min_ms: u64,
    /// Longest retry delay, ms. Default 10000.
    pub backoff_max_ms: u64,
    /// Timeout of one push request, ms. Default 10000.
    pub timeout_ms: u64,
    /// Lines longer than this are cut, bytes. Default 65536.
    pub max_line_bytes: usize,
}

impl Default for LokiConfig {
    fn default() -> Self {
        LokiConfig {
            enabled: false,
            url: "http://127.0.0.1:3100/loki/api/v1/push".into(),
            tenant: String::new(),
            hep_types: vec![1, 100],
            job: "heplify-server".into(),
            src_dst_labels: false,
            batch_entries: 1000,
            batch_bytes: 1 << 20,
            batch_wait_ms: 1000,
            queue_entries: 50_000,
            max_retries: 5,
            backoff_min_ms: 250,
            backoff_max_ms: 10_000,
            timeout_ms: 10_000,
            max_line_bytes: 65_536,
        }
    }
}

/// Why the Loki pusher cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LokiError {
    /// A setting is unusable.
    #[error("loki: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("loki: HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Loki's protobuf messages (`logproto` package), field numbers as in `pkg/push/push.proto`.
pub mod proto {
    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        /// Seconds since the epoch.
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        /// Nanoseconds within the second.
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
    /// `logproto.EntryAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        /// Time of the line.
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        /// The line.
        #[prost(string, tag = "2")]
        pub line: String,
    }
    /// `logproto.StreamAdapter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        /// Label set in LogQL selector syntax: `{job="…", type="sip"}`.
        #[prost(string, tag = "1")]
        pub labels: String,
        /// Entries, oldest first.
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        /// Label hash (filled by Loki's distributor; 0 from clients).
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    /// `logproto.PushRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        /// Streams.
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }
}

/// Counters of the Loki exporter.
#[derive(Debug, Default)]
pub struct LokiStats {
    queued: AtomicU64,
    sent: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_send_failed: AtomicU64,
    dropped_rejected: AtomicU64,
    queue_len: AtomicU64,
}

impl LokiStats {
    /// Entries accepted into the queue.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }
    /// Entries Loki accepted.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Entries dropped: `(queue_full, send_failed, rejected)`.
    pub fn dropped(&self) -> (u64, u64, u64) {
        (
            self.dropped_queue_full.load(Ordering::Relaxed),
            self.dropped_send_failed.load(Ordering::Relaxed),
            self.dropped_rejected.load(Ordering::Relaxed),
        )
    }
    /// Retried push requests.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Appends the exporter's metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let (q, f, r) = self.dropped();
        let _ = writeln!(out, "# HELP hepstack_loki_entries_sent_total Log entries Loki accepted\n# TYPE hepstack_loki_entries_sent_total counter\nhepstack_loki_entries_sent_total {}", self.sent());
        let _ = writeln!(out, "# HELP hepstack_loki_batches_sent_total Push requests Loki accepted\n# TYPE hepstack_loki_batches_sent_total counter\nhepstack_loki_batches_sent_total {}", self.batches.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP hepstack_loki_retries_total Push requests retried after an error\n# TYPE hepstack_loki_retries_total counter\nhepstack_loki_retries_total {}", self.retries());
        let _ = writeln!(out, "# HELP hepstack_loki_entries_dropped_total Log entries dropped, by reason\n# TYPE hepstack_loki_entries_dropped_total counter");
        let _ = writeln!(
            out,
            "hepstack_loki_entries_dropped_total{{reason=\"queue_full\"}} {q}"
        );
        let _ = writeln!(
            out,
            "hepstack_loki_entries_dropped_total{{reason=\"send_failed\"}} {f}"
        );
        let _ = writeln!(
            out,
            "hepstack_loki_entries_dropped_total{{reason=\"rejected\"}} {r}"
        );
        let _ = writeln!(out, "# HELP hepstack_loki_queue_entries Log entries waiting to be pushed\n# TYPE hepstack_loki_queue_entries gauge\nhepstack_loki_queue_entries {}", self.queue_len.load(Ordering::Relaxed));
    }
}

/// One log line on its way to Loki.
#[derive(Debug, Clone)]
struct Entry {
    labels: String,
    time_ns: i128,
    line: String,
}

/// The observer half: turns stored records into entries and queues them without blocking.
#[derive(Debug)]
pub struct LokiObserver {
    cfg: LokiConfig,
    tx: mpsc::Sender<Entry>,
    stats: Arc<LokiStats>,
}

fn type_name(t: u8) -> String {
    match t {
        1 => "sip".into(),
        5 => "rtcp".into(),
        53 => "dns".into(),
        100 => "log".into(),
        n => n.to_string(),
    }
}

fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars().take(128) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl LokiObserver {
    /// The LogQL label set of a record (sorted by name, as Loki normalises it).
    fn labels(&self, r: &Record) -> String {
        let mut l: BTreeMap<&str, String> = BTreeMap::new();
        l.insert("job", label_value(&self.cfg.job));
        l.insert("type", type_name(r.hep_type));
        l.insert("node", label_value(r.node.as_deref().unwrap_or("unknown")));
        if let Some(sip) = &r.sip {
            if sip.is_request {
                l.insert("method", label_value(&sip.method));
            } else {
                if let Some(m) = &sip.cseq_method {
                    l.insert("method", label_value(m));
                }
                if let Some(s) = sip.status {
                    l.insert("response", s.to_string());
                }
            }
        }
        if self.cfg.src_dst_labels {
            l.insert("src_ip", r.src_ip.to_string());
            l.insert("dst_ip", r.dst_ip.to_string());
        }
        let mut out = String::from("{");
        for (i, (k, v)) in l.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
        out
    }

    fn line(&self, r: &Record) -> String {
        let mut line = match (&r.sip, &r.payload_json) {
            (None, Some(j)) => j.clone(),
            _ => String::from_utf8_lossy(&r.raw).into_owned(),
        };
        if line.len() > self.cfg.max_line_bytes {
            let mut end = self.cfg.max_line_bytes;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        line
    }
}

impl LokiObserver {
    fn offer_one(&self, r: &Record) {
        if !self.cfg.hep_types.contains(&r.hep_type) {
            return;
        }
        let e = Entry {
            labels: self.labels(r),
            time_ns: i128::from(r.time_us) * 1000,
            line: self.line(r),
        };
        match self.tx.try_send(e) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                self.stats.queue_len.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// As an output, the exporter is offered every accepted record (its queue is the pusher's
/// channel, its worker the pusher task).
impl Output for LokiObserver {
    fn name(&self) -> &str {
        "loki"
    }

    fn offer(&self, record: &Record, _rtcp: &ParsedRtcp) {
        self.offer_one(record);
    }

    fn stats(&self) -> OutputStats {
        let (queue_full, failed, rejected) = self.stats.dropped();
        OutputStats {
            sent: self.stats.sent(),
            dropped: [queue_full, failed, rejected, 0],
            queued: self.stats.queue_len.load(Ordering::Relaxed),
        }
    }

    fn close(&self, _deadline: Duration) {
        // The pusher task ends on its own shutdown token, after the collector drained.
    }
}

/// Kept for callers that feed stored batches.
impl RecordObserver for LokiObserver {
    fn on_stored(&self, records: &[Record]) {
        records.iter().for_each(|r| self.offer_one(r));
    }
}

/// Encodes entries as a snappy-compressed `PushRequest` (one stream per label set, entries
/// in time order).
pub fn encode_push(entries: &[(String, i128, String)]) -> Result<Vec<u8>, snap::Error> {
    use prost::Message;
    let mut streams: BTreeMap<&str, Vec<(i128, &str)>> = BTreeMap::new();
    for (labels, t, line) in entries {
        streams.entry(labels).or_default().push((*t, line));
    }
    let req = proto::PushRequest {
        streams: streams
            .into_iter()
            .map(|(labels, mut es)| {
                es.sort_by_key(|(t, _)| *t);
                proto::StreamAdapter {
                    labels: labels.to_owned(),
                    entries: es
                        .into_iter()
                        .map(|(t, line)| proto::EntryAdapter {
                            timestamp: Some(proto::Timestamp {
                                seconds: t.div_euclid(1_000_000_000) as i64,
                                nanos: t.rem_euclid(1_000_000_000) as i32,
                            }),
                            line: line.to_owned(),
                        })
                        .collect(),
                    hash: 0,
                }
            })
            .collect(),
    };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec())
}

/// What [`start`] returns: the observer, its counters and the pusher task.
pub type LokiExporter = (
    Arc<LokiObserver>,
    Arc<LokiStats>,
    tokio::task::JoinHandle<()>,
);

/// Starts the exporter: returns the observer to register with the collector, its counters
/// and the pusher task, which flushes what it holds and ends when `shutdown` is cancelled.
pub fn start(cfg: LokiConfig, shutdown: CancellationToken) -> Result<LokiExporter, LokiError> {
    if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
        return Err(LokiError::Config(format!(
            "url {:?} is not http(s)",
            cfg.url
        )));
    }
    if cfg.batch_entries == 0 || cfg.queue_entries == 0 || cfg.batch_bytes == 0 {
        return Err(LokiError::Config(
            "batch and queue sizes must be positive".into(),
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
        .build()?;
    let (tx, rx) = mpsc::channel(cfg.queue_entries);
    let stats = Arc::new(LokiStats::default());
    let observer = Arc::new(LokiObserver {
        cfg: cfg.clone(),
        tx,
        stats: stats.clone(),
    });
    let task = tokio::spawn(pusher(cfg, client, rx, stats.clone(), shutdown));
    Ok((observer, stats, task))
}

async fn pusher(
    cfg: LokiConfig,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Entry>,
    stats: Arc<LokiStats>,
    shutdown: CancellationToken,
) {
    let wait = Duration::from_millis(cfg.batch_wait_ms.max(1));
    let mut batch: Vec<(String, i128, String)> = Vec::new();
    let mut bytes = 0usize;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let flush = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => {
                    stats.queue_len.fetch_sub(1, Ordering::Relaxed);
                    bytes += e.line.len() + e.labels.len();
                    batch.push((e.labels, e.time_ns, e.line));
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + wait);
                    batch.len() >= cfg.batch_entries || bytes >= cfg.batch_bytes
                }
                None => break,
            },
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => true,
            _ = shutdown.cancelled() => break,
        };
        if flush && !batch.is_empty() {
            send(&cfg, &client, &stats, &batch, &shutdown).await;
            batch.clear();
            bytes = 0;
            deadline = None;
        }
    }
    // Shutdown: take what is queued, one last push (no retries beyond the configured ones).
    while let Ok(e) = rx.try_recv() {
        stats.queue_len.fetch_sub(1, Ordering::Relaxed);
        batch.push((e.labels, e.time_ns, e.line));
    }
    for chunk in batch.chunks(cfg.batch_entries) {
        send(&cfg, &client, &stats, chunk, &CancellationToken::new()).await;
    }
}

/// Pushes one batch with retries; counts the outcome.
async fn send(
    cfg: &LokiConfig,
    client: &reqwest::Client,
    stats: &LokiStats,
    batch: &[(String, i128, String)],
    shutdown: &CancellationToken,
) {
    let n = batch.len() as u64;
    let body = match encode_push(batch) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("loki: encoding failed: {e}");
            stats.dropped_rejected.fetch_add(n, Ordering::Relaxed);
            return;
        }
    };
    let mut backoff = Duration::from_millis(cfg.backoff_min_ms.max(1));
    let max_backoff = Duration::from_millis(cfg.backoff_max_ms.max(cfg.backoff_min_ms).max(1));
    for attempt in 0..=cfg.max_retries {
        if attempt > 0 {
            stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                // At shutdown the remaining retries are skipped: the batch is dropped, counted.
                _ = shutdown.cancelled() => break,
            }
            backoff = (backoff * 2).min(max_backoff);
        }
        let mut req = client
            .post(&cfg.url)
            .header("Content-Type", "application/x-protobuf")
            .body(body.clone());
        if !cfg.tenant.is_empty() {
            req = req.header("X-Scope-OrgID", &cfg.tenant);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                stats.sent.fetch_add(n, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(resp) if resp.status().is_client_error() && resp.status().as_u16() != 429 => {
                // Loki refuses the content (too old, too long, bad labels): retrying cannot help.
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                tracing::warn!(%status, body = %text.chars().take(200).collect::<String>(), "loki rejected a batch");
                stats.dropped_rejected.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Ok(resp) => tracing::debug!(status = %resp.status(), attempt, "loki push failed"),
            Err(e) => tracing::debug!(error = %e, attempt, "loki push failed"),
        }
    }
    tracing::warn!(entries = n, "loki: dropping a batch after retries");
    stats.dropped_send_failed.fetch_add(n, Ordering::Relaxed);
}
