//! [`Metrics`]: the collector's counters, gauges and the store latency histogram, rendered in
//! the Prometheus text format. Hand-rolled on atomics: the hot path does a couple of relaxed
//! increments per packet and takes only read locks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use ingest::ListenerMetrics;
use std::time::Duration;

use crate::rules::DiscardRule;

/// Most distinct node label values; further nodes are counted under `node="other"`.
pub const MAX_NODE_LABELS: usize = 256;

pub use ingest::Transport;

/// Why a packet counted as invalid (the `kind` label of `hepstack_decode_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidKind {
    /// Shorter than the header it announces.
    TooShort,
    /// Not HEP at all (no magic, unknown version or family).
    NotHep,
    /// A HEP3 total length that does not fit the datagram.
    BadLength,
    /// A chunk that overruns, stands still or is truncated.
    BadChunk,
    /// A compressed payload that does not inflate.
    Inflate,
    /// A compressed payload that inflates beyond `pipeline.max_inflated_bytes`.
    TooLarge,
    /// A HEP message without a payload chunk.
    NoPayload,
    /// The store rejected the row (reported in its batch outcome).
    StoreRejected,
}

impl InvalidKind {
    /// Every kind, in label order.
    pub const ALL: [InvalidKind; 8] = [
        InvalidKind::TooShort,
        InvalidKind::NotHep,
        InvalidKind::BadLength,
        InvalidKind::BadChunk,
        InvalidKind::Inflate,
        InvalidKind::TooLarge,
        InvalidKind::NoPayload,
        InvalidKind::StoreRejected,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidKind::TooShort => "too_short",
            InvalidKind::NotHep => "not_hep",
            InvalidKind::BadLength => "bad_length",
            InvalidKind::BadChunk => "bad_chunk",
            InvalidKind::Inflate => "inflate",
            InvalidKind::TooLarge => "too_large",
            InvalidKind::NoPayload => "no_payload",
            InvalidKind::StoreRejected => "store_rejected",
        }
    }

    /// The kind of a HEP decode error.
    pub fn of(err: &hep::DecodeError) -> InvalidKind {
        use hep::DecodeError as E;
        match err {
            E::TooShort { .. } => InvalidKind::TooShort,
            E::NotHep => InvalidKind::NotHep,
            E::BadTotalLength { .. } => InvalidKind::BadLength,
            E::ChunkOverrun { .. } | E::ZeroLengthChunk { .. } | E::TruncatedChunkHeader { .. } => {
                InvalidKind::BadChunk
            }
            E::NoCompressedPayload => InvalidKind::NoPayload,
            E::InflateTooLarge { .. } => InvalidKind::TooLarge,
            E::Inflate(_) => InvalidKind::Inflate,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the `hepstack_store_batch_seconds` buckets.
const BATCH_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Node label index for packets that could not be decoded.
const NODE_UNKNOWN: u16 = u16::MAX;
/// Node label index once [`MAX_NODE_LABELS`] is reached.
const NODE_OTHER: u16 = u16::MAX - 1;
/// HEP type label for packets that could not be decoded.
const TYPE_UNKNOWN: u16 = 256;

/// Live values the registry reads when rendering (queue depth, spool size).
pub type GaugeProbe = Box<dyn Fn() -> ProbedGauges + Send + Sync>;

/// Gauges read through the probe at render time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbedGauges {
    /// Records in the in-memory queue (plus the overflow buffer).
    pub queue_depth: u64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
    /// Batches in the spool.
    pub spool_batches: u64,
}

/// A consistent-enough snapshot of the accounting counters.
///
/// Every packet received is, once the pipeline is idle, exactly one of: stored, still in the
/// spool (`spooled - replayed`), deduplicated, discarded, invalid, auth failed or dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Packets received over all transports.
    pub received: u64,
    /// Records stored (directly or replayed from the spool).
    pub stored: u64,
    /// Records written to the spool.
    pub spooled: u64,
    /// Records taken back out of the spool and handed to the store.
    pub replayed: u64,
    /// Packets removed as duplicates.
    pub deduplicated: u64,
    /// Packets removed by a discard rule.
    pub discarded: u64,
    /// Packets that failed decoding, plus rows the store rejected.
    pub invalid: u64,
    /// Packets with a missing or wrong auth key.
    pub auth_failed: u64,
    /// Packets dropped because the spool was full or failing.
    pub dropped: u64,
}

impl Accounting {
    /// Packets not (yet) accounted for: in the queue, in a writer's hands, or in the spool.
    /// Zero when the pipeline is drained and the spool is empty.
    pub fn in_flight(&self) -> i128 {
        i128::from(self.received)
            - i128::from(self.stored)
            - i128::from(self.deduplicated)
            - i128::from(self.discarded)
            - i128::from(self.invalid)
            - i128::from(self.auth_failed)
            - i128::from(self.dropped)
    }

    /// Records still waiting in the spool.
    pub fn in_spool(&self) -> i128 {
        i128::from(self.spooled) - i128::from(self.replayed)
    }
}

/// The collector's metrics registry. Shared as `Arc<Metrics>`.
pub struct Metrics {
    received_total: AtomicU64,
    received: RwLock<HashMap<(Transport, u16, u16), AtomicU64>>,
    nodes: RwLock<NodeTable>,
    decode_errors: [AtomicU64; InvalidKind::ALL.len()],
    auth_failures: AtomicU64,
    deduplicated: AtomicU64,
    discarded: [AtomicU64; DiscardRule::ALL.len()],
    stored: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    dropped: AtomicU64,
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len()],
    batch_count: AtomicU64,
    batch_sum_us: AtomicU64,
    batch_errors: AtomicU64,
    /// What the listeners count (connections, skipped bytes, back-pressure pauses).
    listener: Arc<ListenerMetrics>,
    probe: Mutex<Option<GaugeProbe>>,
}

#[derive(Default)]
struct NodeTable {
    index: HashMap<Box<str>, u16>,
    names: Vec<Box<str>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("accounting", &self.accounting())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics {
            received_total: AtomicU64::new(0),
            received: RwLock::new(HashMap::new()),
            nodes: RwLock::new(NodeTable::default()),
            decode_errors: Default::default(),
            auth_failures: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
            discarded: Default::default(),
            stored: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            batch_buckets: Default::default(),
            batch_count: AtomicU64::new(0),
            batch_sum_us: AtomicU64::new(0),
            batch_errors: AtomicU64::new(0),
            listener: Arc::default(),
            probe: Mutex::new(None),
        }
    }

    /// Installs the function that reports queue depth and spool size at render time.
    pub fn set_probe(&self, probe: GaugeProbe) {
        if let Ok(mut slot) = self.probe.lock() {
            *slot = Some(probe);
        }
    }

    fn node_index(&self, node: &str) -> u16 {
        if let Ok(table) = self.nodes.read() {
            if let Some(&i) = table.index.get(node) {
                return i;
            }
            if table.names.len() >= MAX_NODE_LABELS {
                return NODE_OTHER;
            }
        }
        let Ok(mut table) = self.nodes.write() else {
            return NODE_OTHER;
        };
        if let Some(&i) = table.index.get(node) {
            return i;
        }
        if table.names.len() >= MAX_NODE_LABELS {
            return NODE_OTHER;
        }
        // The table never exceeds MAX_NODE_LABELS (256) entries, so the index fits.
        let i = u16::try_from(table.names.len()).unwrap_or(NODE_OTHER);
        table.names.push(node.into());
        table.index.insert(node.into(), i);
        i
    }

    fn bump_received(&self, key: (Transport, u16, u16)) {
        self.received_total.fetch_add(1, Relaxed);
        if let Ok(map) = self.received.read() {
            if let Some(c) = map.get(&key) {
                c.fetch_add(1, Relaxed);
                return;
            }
        }
        if let Ok(mut map) = self.received.write() {
            map.entry(key)
                .or_insert_with(|| AtomicU64::new(0))
                .fetch_add(1, Relaxed);
        }
    }

    /// Counts a decoded packet.
    pub fn packet_received(&self, transport: Transport, hep_type: u8, node: &str) {
        let node = self.node_index(node);
        self.bump_received((transport, u16::from(hep_type), node));
    }

    /// Counts a packet that could not be decoded (type and node unknown) and its error kind.
    pub fn packet_undecodable(&self, transport: Transport, kind: InvalidKind) {
        self.bump_received((transport, TYPE_UNKNOWN, NODE_UNKNOWN));
        self.invalid(kind, 1);
    }

    /// Counts `n` invalid packets or rows of a kind (without counting them as received).
    pub fn invalid(&self, kind: InvalidKind, n: u64) {
        self.decode_errors[kind.index()].fetch_add(n, Relaxed);
    }

    /// Counts a packet with a missing or wrong auth key.
    pub fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Relaxed);
    }

    /// Counts a duplicate.
    pub fn deduplicated(&self) {
        self.deduplicated.fetch_add(1, Relaxed);
    }

    /// Counts a discarded packet.
    pub fn discarded(&self, rule: DiscardRule) {
        let i = DiscardRule::ALL
            .iter()
            .position(|r| *r == rule)
            .unwrap_or(0);
        self.discarded[i].fetch_add(1, Relaxed);
    }

    /// Counts stored records.
    pub fn stored(&self, n: u64) {
        self.stored.fetch_add(n, Relaxed);
    }

    /// Counts records written to the spool.
    pub fn spooled(&self, n: u64) {
        self.spooled.fetch_add(n, Relaxed);
    }

    /// Counts records read back from the spool and handed to the store.
    pub fn replayed(&self, n: u64) {
        self.replayed.fetch_add(n, Relaxed);
    }

    /// Counts dropped records.
    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// Records the duration of one `insert_batch` call.
    pub fn store_batch(&self, elapsed: Duration, ok: bool) {
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.batch_buckets.iter().zip(BATCH_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.batch_count.fetch_add(1, Relaxed);
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.batch_sum_us.fetch_add(us, Relaxed);
        if !ok {
            self.batch_errors.fetch_add(1, Relaxed);
        }
    }

    /// A connection opened (+1) or closed (-1).
    pub fn connection_delta(&self, transport: Transport, delta: i64) {
        self.listener.connection_delta(transport, delta);
    }

    /// Open connections of a transport.
    pub fn connections(&self, transport: Transport) -> i64 {
        self.listener.connections(transport)
    }

    /// Counts a connection refused at the connection limit or in the TLS handshake.
    pub fn connection_rejected(&self, transport: Transport) {
        self.listener.connection_rejected(transport);
    }

    /// Connections refused so far.
    pub fn connections_rejected_count(&self, transport: Transport) -> u64 {
        self.listener.connections_rejected_count(transport)
    }

    /// The listeners' share of the metrics, for [`ingest::start_listeners`].
    pub fn listener(&self) -> Arc<ListenerMetrics> {
        self.listener.clone()
    }

    /// Counts garbage bytes a stream framer skipped while resynchronising.
    pub fn stream_bytes_skipped(&self, n: u64) {
        self.listener.stream_bytes_skipped(n);
    }

    /// A stream connection paused reading for `waited` because the writers were behind.
    pub fn stream_backpressure(&self, waited: Duration) {
        self.listener.stream_backpressure(waited);
    }

    /// Invalid count of one kind.
    pub fn invalid_count(&self, kind: InvalidKind) -> u64 {
        self.decode_errors[kind.index()].load(Relaxed)
    }

    /// Discarded count of one rule.
    pub fn discarded_count(&self, rule: DiscardRule) -> u64 {
        let i = DiscardRule::ALL
            .iter()
            .position(|r| *r == rule)
            .unwrap_or(0);
        self.discarded[i].load(Relaxed)
    }

    /// Packets received over one transport, any type and node.
    pub fn received_by_transport(&self, transport: Transport) -> u64 {
        self.received.read().map_or(0, |map| {
            map.iter()
                .filter(|((t, _, _), _)| *t == transport)
                .map(|(_, c)| c.load(Relaxed))
                .sum()
        })
    }

    /// The accounting counters.
    pub fn accounting(&self) -> Accounting {
        Accounting {
            received: self.received_total.load(Relaxed),
            stored: self.stored.load(Relaxed),
            spooled: self.spooled.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            deduplicated: self.deduplicated.load(Relaxed),
            discarded: self.discarded.iter().map(|c| c.load(Relaxed)).sum(),
            invalid: self.decode_errors.iter().map(|c| c.load(Relaxed)).sum(),
            auth_failed: self.auth_failures.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let names: Vec<Box<str>> = self
            .nodes
            .read()
            .map(|t| t.names.clone())
            .unwrap_or_default();
        header(
            &mut out,
            "hepstack_packets_received_total",
            "HEP packets received, by transport, HEP proto type and node.",
            "counter",
        );
        let mut rows: Vec<(String, String, String, u64)> = self
            .received
            .read()
            .map(|map| {
                map.iter()
                    .map(|(&(t, ty, node), c)| {
                        let ty = if ty == TYPE_UNKNOWN {
                            "unknown".to_owned()
                        } else {
                            ty.to_string()
                        };
                        let node = match node {
                            NODE_UNKNOWN => "unknown".to_owned(),
                            NODE_OTHER => "other".to_owned(),
                            i => names
                                .get(usize::from(i))
                                .map_or_else(|| "other".to_owned(), |n| n.to_string()),
                        };
                        (t.as_str().to_owned(), ty, node, c.load(Relaxed))
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.sort();
        for (t, ty, node, v) in rows {
            let _ = writeln!(
                out,
                "hepstack_packets_received_total{{transport=\"{t}\",hep_type=\"{ty}\",node=\"{}\"}} {v}",
                escape(&node)
            );
        }
        header(
            &mut out,
            "hepstack_decode_errors_total",
            "Packets that failed decoding and rows the store rejected, by kind.",
            "counter",
        );
        for kind in InvalidKind::ALL {
            let _ = writeln!(
                out,
                "hepstack_decode_errors_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                self.invalid_count(kind)
            );
        }
        simple(
            &mut out,
            "hepstack_auth_failures_total",
            "Packets dropped for a missing or wrong HEP auth key.",
            "counter",
            self.auth_failures.load(Relaxed),
        );
        simple(
            &mut out,
            "hepstack_packets_deduplicated_total",
            "Packets dropped as duplicates within the dedup window.",
            "counter",
            self.deduplicated.load(Relaxed),
        );
        header(
            &mut out,
            "hepstack_packets_discarded_total",
            "Packets dropped by a discard rule, by rule.",
            "counter",
        );
        for rule in DiscardRule::ALL {
            let _ = writeln!(
                out,
                "hepstack_packets_discarded_total{{rule=\"{}\"}} {}",
                rule.as_str(),
                self.discarded_count(rule)
            );
        }
        simple(
            &mut out,
            "hepstack_packets_stored_total",
            "Records written to the store (directly or from the spool).",
            "counter",
            self.stored.load(Relaxed),
        );
        simple(
            &mut out,
            "hepstack_packets_spooled_total",
            "Records written to the on-disk spool because the store failed or fell behind.",
            "counter",
            self.spooled.load(Relaxed),
        );
        simple(
            &mut out,
            "hepstack_packets_replayed_total",
            "Records read back from the spool and handed to the store.",
            "counter",
            self.replayed.load(Relaxed),
        );
        simple(
            &mut out,
            "hepstack_packets_dropped_total",
            "Records lost because the spool was full or failing.",
            "counter",
            self.dropped.load(Relaxed),
        );
        let probed = self
            .probe
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|f| f()))
            .unwrap_or_default();
        simple(
            &mut out,
            "hepstack_queue_depth",
            "Records waiting in memory for a store writer.",
            "gauge",
            probed.queue_depth,
        );
        simple(
            &mut out,
            "hepstack_spool_bytes",
            "Bytes held in the on-disk spool.",
            "gauge",
            probed.spool_bytes,
        );
        simple(
            &mut out,
            "hepstack_spool_batches",
            "Batches held in the on-disk spool.",
            "gauge",
            probed.spool_batches,
        );
        header(
            &mut out,
            "hepstack_store_batch_seconds",
            "Duration of one store insert_batch call.",
            "histogram",
        );
        for (bucket, bound) in self.batch_buckets.iter().zip(BATCH_BUCKETS) {
            let _ = writeln!(
                out,
                "hepstack_store_batch_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.batch_count.load(Relaxed);
        let _ = writeln!(
            out,
            "hepstack_store_batch_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "hepstack_store_batch_seconds_sum {}",
            self.batch_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "hepstack_store_batch_seconds_count {count}");
        simple(
            &mut out,
            "hepstack_store_batch_errors_total",
            "insert_batch calls that failed as a whole (the batch went to the spool).",
            "counter",
            self.batch_errors.load(Relaxed),
        );
        header(
            &mut out,
            "hepstack_connections",
            "Open HEP stream connections, by transport.",
            "gauge",
        );
        for t in [Transport::Tcp, Transport::Tls] {
            let _ = writeln!(
                out,
                "hepstack_connections{{transport=\"{}\"}} {}",
                t.as_str(),
                self.connections(t)
            );
        }
        header(
            &mut out,
            "hepstack_connections_rejected_total",
            "Stream connections refused at the connection limit or failing the TLS handshake.",
            "counter",
        );
        for t in [Transport::Tcp, Transport::Tls] {
            let _ = writeln!(
                out,
                "hepstack_connections_rejected_total{{transport=\"{}\"}} {}",
                t.as_str(),
                self.connections_rejected_count(t)
            );
        }
        simple(
            &mut out,
            "hepstack_stream_bytes_skipped_total",
            "Garbage bytes skipped on TCP/TLS streams while resynchronising on the next HEP3 frame.",
            "counter",
            self.listener.stream_bytes_skipped_count(),
        );
        simple(
            &mut out,
            "hepstack_stream_backpressure_pauses_total",
            "Times a TCP/TLS connection paused reading because the writers were behind (tcp/tls.max_backpressure_ms).",
            "counter",
            self.listener.stream_backpressure_totals().0,
        );
        simple(
            &mut out,
            "hepstack_stream_backpressure_seconds_total",
            "Time TCP/TLS connections spent paused because the writers were behind.",
            "counter",
            format_args!(
                "{:.6}",
                self.listener.stream_backpressure_totals().1 as f64 / 1e6
            ),
        );
        simple(
            &mut out,
            "hepstack_process_resident_memory_bytes",
            "Resident set size of the process (from /proc/self/statm).",
            "gauge",
            resident_memory_bytes().unwrap_or(0),
        );
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn simple(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Resident set size in bytes from `/proc/self/statm` (second field, in pages).
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096);
    Some(pages * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_every_metric_and_caps_nodes() {
        let m = Metrics::new();
        m.packet_received(Transport::Udp, 1, "kam\"1");
        m.packet_received(Transport::Udp, 1, "kam\"1");
        m.packet_received(Transport::Tcp, 100, "2001");
        for i in 0..300 {
            m.packet_received(Transport::Udp, 5, &format!("n{i}"));
        }
        m.packet_undecodable(Transport::Udp, InvalidKind::NotHep);
        m.store_batch(Duration::from_millis(3), true);
        m.set_probe(Box::new(|| ProbedGauges {
            queue_depth: 7,
            spool_bytes: 1234,
            spool_batches: 1,
        }));
        let text = m.render();
        assert!(text.contains(
            "hepstack_packets_received_total{transport=\"udp\",hep_type=\"1\",node=\"kam\\\"1\"} 2"
        ));
        assert!(text.contains(
            "hepstack_packets_received_total{transport=\"tcp\",hep_type=\"100\",node=\"2001\"} 1"
        ));
        assert!(text.contains("node=\"other\"} 46"), "{text}");
        assert!(text.contains(
            "hepstack_packets_received_total{transport=\"udp\",hep_type=\"unknown\",node=\"unknown\"} 1"
        ));
        assert!(text.contains("hepstack_decode_errors_total{kind=\"not_hep\"} 1"));
        assert!(text.contains("hepstack_queue_depth 7"));
        assert!(text.contains("hepstack_spool_bytes 1234"));
        assert!(text.contains("hepstack_store_batch_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("hepstack_store_batch_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("hepstack_store_batch_seconds_count 1"));
        for name in [
            "hepstack_auth_failures_total",
            "hepstack_packets_deduplicated_total",
            "hepstack_packets_discarded_total{rule=\"method\"}",
            "hepstack_packets_stored_total",
            "hepstack_packets_spooled_total",
            "hepstack_packets_dropped_total",
            "hepstack_connections{transport=\"tcp\"}",
            "hepstack_process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
        let rss = resident_memory_bytes().expect("statm readable");
        assert!(rss > 0);
        assert_eq!(m.accounting().received, 304);
        assert_eq!(m.accounting().invalid, 1);
    }
}
