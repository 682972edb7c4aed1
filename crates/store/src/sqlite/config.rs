//! Configuration of the embedded SQLite store.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Profile;

/// How much time one partition file covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionSpan {
    /// One file per UTC hour (`2026-11-23T14.r7.db`): small B-trees that stay in cache while
    /// written, fine-grained retention, and time-bounded queries open little data.
    Hour,
    /// One file per UTC day (`2026-11-23.r7.db`): 24× fewer files for long retention.
    Day,
}

impl PartitionSpan {
    /// Length of one partition in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            PartitionSpan::Hour => 3_600_000_000,
            PartitionSpan::Day => 86_400_000_000,
        }
    }
}

/// How the raw payload is compressed at rest. Every stored blob carries its own codec tag, so
/// changing this setting never makes older partitions unreadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawCompression {
    /// Stored as received.
    None,
    /// LZ4 block format (`lz4_flex`): very cheap on the insert path, ~1.5–2× on SIP.
    Lz4,
    /// Zstandard at [`SqliteConfig::zstd_level`]: smaller (~2–3× on SIP), more CPU per row.
    Zstd,
    /// Zstandard at [`SqliteConfig::zstd_level`] with a dictionary learned from the store's
    /// own recent payloads (kept in each partition file that uses it): ~4× on SIP, where a
    /// lone message gives LZ4 ~1.2×; rows stored before the first dictionary is trained use
    /// LZ4. The default.
    #[serde(rename = "zstd-dict")]
    ZstdDict,
}

/// Secondary indexes a partition can carry. The time and Call-ID (`sid`) indexes are always
/// built because paging, calls and call flows depend on them; each of these costs insert speed
/// (see the store benchmark) and makes its filter an index lookup instead of a scan of the
/// partitions in the time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// Correlation ids that differ from the `sid` (partial index: SIP A-legs whose correlation
    /// id is their own Call-ID are found through the `sid` index instead).
    Correlation,
    /// A-leg ids taken from X-CID-like headers (partial: only rows that have one).
    Aleg,
    /// From user (partial: SIP rows only).
    FromUser,
    /// To user (partial: SIP rows only).
    ToUser,
    /// Request-URI user (partial: requests only).
    RuriUser,
    /// Source IP.
    SrcIp,
    /// Destination IP.
    DstIp,
    /// SIP method / status code, case-insensitive.
    Method,
    /// Node name.
    Node,
}

impl IndexKind {
    /// Every optional index, in DDL order.
    pub const ALL: [IndexKind; 9] = [
        IndexKind::Correlation,
        IndexKind::Aleg,
        IndexKind::FromUser,
        IndexKind::ToUser,
        IndexKind::RuriUser,
        IndexKind::SrcIp,
        IndexKind::DstIp,
        IndexKind::Method,
        IndexKind::Node,
    ];
}

/// Retention overrides per heplify-server profile; `None` falls back to
/// [`SqliteConfig::retention_days`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileRetention {
    /// Days to keep `call` rows (INVITE dialogs).
    pub call: Option<u32>,
    /// Days to keep `registration` rows (REGISTER), usually the bulk of the traffic.
    pub registration: Option<u32>,
    /// Days to keep `default` rows (OPTIONS, NOTIFY, non-SIP).
    pub default: Option<u32>,
}

impl ProfileRetention {
    /// The override for a profile, if configured.
    pub fn get(&self, profile: Profile) -> Option<u32> {
        match profile {
            Profile::Call => self.call,
            Profile::Registration => self.registration,
            Profile::Default => self.default,
        }
    }
}

/// Configuration of [`super::SqliteStore`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Directory holding the catalog (`catalog.db`) and the partition files; created if missing.
    pub data_dir: PathBuf,
    /// Time covered by one partition file. Hour is the default: in the store benchmark inserts
    /// are at least as fast as with day files (the B-trees being written stay smaller), and
    /// time-bounded queries, segmented index probes and retention touch 24× less data.
    /// Partitions written with another span stay readable.
    pub partition_span: PartitionSpan,
    /// Days a partition is kept after its period ended; 0 keeps data forever (only the size
    /// limit removes it). A partition keeps the retention it was created with (it is part of
    /// its file name), so lowering this applies to partitions created afterwards.
    pub retention_days: u32,
    /// Per-profile overrides of `retention_days`.
    pub retention_by_profile: ProfileRetention,
    /// Per-HEP-type overrides (key: HEP proto type as text, e.g. `"5"` for RTCP, `"100"` for
    /// logs); they win over the profile overrides. Rows with different retention go to
    /// different partition files so that retention always removes whole files.
    pub retention_by_hep_type: BTreeMap<String, u32>,
    /// Upper bound of the total size on disk in bytes; when exceeded, retention drops the
    /// oldest partitions (never the newest one). 0 means no limit: the default, because only
    /// the operator knows how much of the disk the store may take; age retention still applies.
    pub max_total_bytes: u64,
    /// Compression of the raw payload at rest (byte-exact round trip in every mode). `zstd-dict`
    /// is the default: on single ~450-byte SIP messages LZ4 and plain Zstandard gain only
    /// 1.2–1.35×, a dictionary trained on the traffic ~4× (see BENCHMARKS.md), and the fewer
    /// bytes written pay for most of the extra compression CPU.
    pub compression: RawCompression,
    /// Zstandard level used when `compression` is `zstd` or `zstd-dict` (1 = fastest).
    pub zstd_level: i32,
    /// Size of a trained dictionary in KiB (`zstd-dict`). Default: 32.
    pub dictionary_kib: u32,
    /// Payloads sampled to train a dictionary (`zstd-dict`): the first dictionary is trained
    /// once this many payloads arrived, on a background thread (~0.3 s). Default: 2000.
    pub dictionary_samples: u32,
    /// A new dictionary is trained from recent payloads after this many rows, so that it
    /// follows the traffic (new user agents, domains, headers); 0 keeps the first one for
    /// the life of the process. Default: 5,000,000.
    pub dictionary_retrain_rows: u64,
    /// Largest raw payload accepted, in bytes; bigger rows are rejected one by one. Also caps
    /// decompression when reading.
    pub max_raw_bytes: usize,
    /// Partitions kept open at once (each holds a writer and up to four reader connections).
    pub max_open_partitions: usize,
    /// Files a partition period may be split into so that concurrent writer threads do not
    /// wait for one another (SQLite has one writer per file). A second shard file is created
    /// only when two batches for the same period are written at the same time.
    pub write_shards: u8,
    /// Optional secondary indexes built in new partitions (time and Call-ID are always built).
    pub indexes: Vec<IndexKind>,
    /// Rows per index segment. The time, session, user, IP, method and node indexes lead with the segment
    /// number, so an insert only touches the pages of the newest segment, and a query probes
    /// each segment whose time span meets its window (one seek per this many rows of the
    /// window). Why 8,192, the writer's batch size: every commit rewrites, in the WAL, each
    /// page of the newest segment that it touches, and with random keys (users, IPs,
    /// Call-IDs) it touches nearly all of them; a segment filled by one full batch is written
    /// about once. End to end that stored 5–6 % more per second than 32,768 (4 M messages
    /// 126k against 118k/s, 10 M 111k against 105k/s); queries probe 4× more segments and
    /// stay far inside their targets (a Call-ID 0.4 ms, calls of the last 15 min 24 ms on 4 M
    /// rows).
    pub index_segment_rows: u32,
    /// Page cache of each writer connection in KiB (one per write shard of a recently written
    /// partition). With segmented indexes (the session index too) the pages an insert touches
    /// are the newest segment's and the right edge of the table; pages that
    /// do not fit are read back from the OS page cache. 16 MiB: 6 M messages end to end ran
    /// as fast as with 32 MiB (101.0k against 101.7k/s) and peaked ~35 MiB lower; 8 MiB cost
    /// 4 %. Default: 16384.
    pub writer_cache_kib: u32,
    /// WAL size at which a partition's writer checkpoints it into the database, in KiB; the
    /// WAL file is cut back to twice this after a checkpoint, and to nothing once the writer
    /// is idle for a minute. Each file being written keeps up to twice this on disk beside
    /// its rows, so on a small disk a lower value leaves more room for data; a higher one
    /// checkpoints less often. Default: 16384 (16 MiB).
    pub wal_checkpoint_kib: u32,
    /// Largest number of distinct calls one `calls` query may gather before paging (memory
    /// bound); a query over more answers `InvalidQuery` asking for a narrower window.
    pub max_calls_scan: usize,
    /// Largest number of messages one call flow may return (memory bound).
    pub max_flow_messages: usize,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            data_dir: PathBuf::from("./hepstack-data"),
            partition_span: PartitionSpan::Hour,
            retention_days: 7,
            retention_by_profile: ProfileRetention::default(),
            retention_by_hep_type: BTreeMap::new(),
            max_total_bytes: 0,
            compression: RawCompression::ZstdDict,
            zstd_level: 1,
            dictionary_kib: 32,
            dictionary_samples: 2000,
            dictionary_retrain_rows: 5_000_000,
            max_raw_bytes: 16 * 1024 * 1024,
            max_open_partitions: 64,
            write_shards: 2,
            indexes: vec![
                IndexKind::Correlation,
                IndexKind::Aleg,
                IndexKind::FromUser,
                IndexKind::ToUser,
                IndexKind::RuriUser,
                IndexKind::SrcIp,
                IndexKind::DstIp,
            ],
            index_segment_rows: 8_192,
            writer_cache_kib: 16 * 1024,
            wal_checkpoint_kib: 16 * 1024,
            max_calls_scan: 2_000_000,
            max_flow_messages: 200_000,
        }
    }
}
