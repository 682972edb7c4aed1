//! hepstack's ingest side: HEP listeners (UDP, TCP, TLS), the per-packet pipeline (decode,
//! enrich, dedup, rules), the batched store writer with its on-disk spool, and the metrics.
//!
//! # Data flow
//!
//! ```text
//! UDP sockets ── recvmmsg threads ─┐
//! TCP / TLS ─── tokio tasks + StreamFramer ─┤ Pipeline::process (on the receiving thread/task):
//!                                  │   hep::decode → auth key → inflate → dedup → type/IP rules
//!                                  │   → enrich into store::Record (sip::Indexer, payload::parse)
//!                                  │   → SIP method rules (discard / censor body)
//!                                  ▼
//!                     bounded queue ──► writer threads ──► Store::insert_batch ──► observers
//!                  (full → overflow → spool)   (error → spool)   spool ──► replayer ──► Store
//!                                  │
//!                                  └──► outputs (KPI engine, Loki, live tail): each its own
//!                                       bounded queue and worker, offered every accepted record
//! ```
//!
//! The listeners are the `ingest` crate's ([`ingest::start_listeners`]); the collector's
//! [`Pipeline`] is one [`ingest::PacketHandler`] they feed.
//!
//! Start it with [`Collector::new`], optionally [`Collector::open_spool`],
//! [`Collector::with_output`] and [`Collector::with_observer`], then [`Collector::start`] with
//! [`BoundListeners`] and a shutdown token; [`CollectorHandle::join`] drains after the token
//! is cancelled.
//!
//! # Record fields
//!
//! * `time_us` from the HEP timestamp (receive time when the packet has none);
//! * `profile` by CSeq method ([`store::Profile::from_cseq_method`]); `default` for non-SIP;
//! * `correlation_id` = HEP chunk 0x0011, else the first configured A-leg header value, else the
//!   Call-ID; `sid` = Call-ID for SIP, else the correlation id (empty when there is none);
//! * `node` = chunk 0x0013, else the capture id (sngrep's byte-swapped ids normalised) as text;
//! * `payload_json` for non-SIP types: JSON payloads byte-for-byte, binary RTCP in the HOMER
//!   RTCP JSON shape, binary DNS and log lines decoded; none for opaque or undecodable payloads;
//! * `raw` is the payload as received (inflated when compressed), its body removed when a
//!   censor rule matched. The HEP auth key is never part of a record, a log line or a metric.
//!
//! # Accounting
//!
//! Every packet received is counted once in `hepstack_packets_received_total` and ends as
//! exactly one of: stored, spooled (and later stored when replayed), deduplicated, discarded,
//! invalid (decode error by kind, or rejected by the store), auth failure, or dropped (spool
//! full). [`Metrics::accounting`] returns the counters; once the pipeline is idle,
//! `received = stored + deduplicated + discarded + invalid + auth_failed + dropped +
//! (spooled − replayed)` (spool entries left by an earlier run add to `stored` and `replayed`).
//!
//! # Metrics
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `hepstack_packets_received_total` | counter | `transport` (udp, tcp, tls), `hep_type` (number or `unknown`), `node` (at most 256 values, then `other`; `unknown` when undecodable) | HEP packets received |
//! | `hepstack_decode_errors_total` | counter | `kind`: too_short, not_hep, bad_length, bad_chunk, inflate, too_large, no_payload, store_rejected | packets that failed decoding, and rows the store rejected |
//! | `hepstack_auth_failures_total` | counter | | packets with a missing or wrong HEP auth key (dropped) |
//! | `hepstack_packets_deduplicated_total` | counter | | duplicates dropped within `pipeline.dedup_window_ms` |
//! | `hepstack_packets_discarded_total` | counter | `rule`: method, hep_type, ip | packets dropped by a discard rule |
//! | `hepstack_packets_stored_total` | counter | | records stored (directly or replayed from the spool) |
//! | `hepstack_packets_spooled_total` | counter | | records written to the spool (store failing or behind) |
//! | `hepstack_packets_replayed_total` | counter | | records read back from the spool and handed to the store |
//! | `hepstack_packets_dropped_total` | counter | | records lost because the spool was full or failing |
//! | `hepstack_queue_depth` | gauge | | records waiting in memory for a writer |
//! | `hepstack_spool_bytes` | gauge | | bytes in the on-disk spool |
//! | `hepstack_spool_batches` | gauge | | batches in the on-disk spool |
//! | `hepstack_store_batch_seconds` | histogram | | duration of each `insert_batch` call |
//! | `hepstack_store_batch_errors_total` | counter | | `insert_batch` calls that failed as a whole |
//! | `hepstack_connections` | gauge | `transport` (tcp, tls) | open HEP stream connections |
//! | `hepstack_connections_rejected_total` | counter | `transport` | connections refused at the limit or failing the TLS handshake |
//! | `hepstack_stream_bytes_skipped_total` | counter | | garbage bytes skipped on TCP/TLS streams while resynchronising |
//! | `hepstack_process_resident_memory_bytes` | gauge | | resident set size (`/proc/self/statm`) |
//! | `hepstack_output_sent_total` | counter | `output` | records an output delivered ([`output`]) |
//! | `hepstack_output_dropped_total` | counter | `output`, `reason` (queue_full, failed, rejected, closed) | records an output dropped; `queue_full` is load shed because its worker fell behind |
//! | `hepstack_output_queued` | gauge | `output` | records waiting in an output's queue |
//!
//! # Extension hooks
//!
//! An [`output::Output`] is offered every record the pipeline accepts, before and whatever
//! the store commit, and works off its own bounded queue: the KPI engine ([`kpi_output`]),
//! Loki export ([`loki`]) and the live tail are outputs. [`RecordObserver::on_stored`] is
//! called by the writer threads with every batch the store took, for what must see stored
//! records only. HEP forwarding is a packet tap ([`Collector::with_tap`]) with the relay's
//! per-destination queues (reported as an output by `hepstack serve`).

#![warn(missing_docs)]

mod collector;
mod config;
mod dedup;
mod kpi_observer;
pub mod loki;
mod metrics;
pub mod output;
mod pipeline;
mod rules;
mod writer;

pub use collector::{Collector, CollectorHandle, DiskSpool, StartError};
pub use config::{
    CollectorConfig, ConfigError, PipelineConfig, RulesConfig, SpoolSection, WriterConfig,
};
pub use dedup::{fingerprint, Deduplicator};
/// The listener types the collector's API takes and reports in.
pub use ingest::{AuthKey, BoundListeners, Transport};
pub use kpi_observer::{kpi_output, KpiItem, KpiSink};
pub use metrics::{
    resident_memory_bytes, Accounting, InvalidKind, Metrics, ProbedGauges, MAX_NODE_LABELS,
};
pub use pipeline::{now_us, Enriched, Enricher, Outcome, Pipeline};
pub use rules::{DiscardRule, Rules};
pub use writer::{
    decode_batch, encode_batch, BatchSpool, MemorySpool, ParsedRtcp, RecordObserver,
    SpoolEncodeError, SpoolFailure,
};
