//! [`CollectorConfig`]: every setting of the ingest side, with defaults that make
//! `hepstack serve` work without a file, and [`CollectorConfig::validate`] so that bad values are
//! errors at start rather than surprises under load.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ingest::{IpNet, ListenerConfig, TcpConfig, TlsConfig, UdpConfig};

/// Everything the collector reads from configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// HEP over UDP listeners.
    pub udp: UdpConfig,
    /// HEP over TCP listeners.
    pub tcp: TcpConfig,
    /// HEP over TLS listeners.
    pub tls: TlsConfig,
    /// Enrichment, deduplication and rules.
    pub pipeline: PipelineConfig,
    /// The batched store writer.
    pub writer: WriterConfig,
    /// The on-disk spool used while the store is down or slow.
    pub spool: SpoolSection,
}

/// Enrichment, deduplication and rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Extra SIP headers to index (heplify-server's `CustomHeader`). Default: none.
    pub custom_headers: Vec<String>,
    /// A-leg correlation headers in priority order, each with an optional regex whose first
    /// capture group is the id (heplify-server's `AlegIDs`), e.g. `{ header = "X-CID" }`.
    /// Default: none.
    pub aleg_headers: Vec<sip::AlegRule>,
    /// Packets with the same payload and the same source and destination address and port
    /// *captured* (HEP timestamp) within this many milliseconds of each other are stored once:
    /// Kamailio traces some ACKs twice, mirror ports see packets twice. Kept well below SIP's
    /// 500 ms retransmission timer T1 so that retransmissions are stored. 0 disables
    /// deduplication. Default: 50.
    pub dedup_window_ms: u64,
    /// Most payload fingerprints remembered per 2-second memory horizon (16 bytes each, two
    /// horizons kept); beyond it, further packets are not deduplicated. Default: 1,000,000.
    pub dedup_max_entries: usize,
    /// Largest payload a compressed chunk (0x0010) may inflate to, in bytes; a larger one is a
    /// decode error. Default: 1 MiB.
    pub max_inflated_bytes: usize,
    /// Discard and censor rules.
    pub rules: RulesConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            custom_headers: Vec::new(),
            aleg_headers: Vec::new(),
            dedup_window_ms: 50,
            dedup_max_entries: 1_000_000,
            max_inflated_bytes: 1 << 20,
            rules: RulesConfig::default(),
        }
    }
}

/// What to drop or censor before storing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// SIP methods to discard, e.g. `["OPTIONS"]`, case-insensitive. A message matches by its
    /// CSeq method, so the replies to a discarded request go too. Default: none.
    pub discard_methods: Vec<String>,
    /// HEP proto types to discard, e.g. `[100]` for logs. Default: none.
    pub discard_hep_types: Vec<u8>,
    /// Addresses or CIDR networks (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`); a packet whose
    /// source or destination is inside one is discarded. Default: none.
    pub discard_ips: Vec<String>,
    /// SIP methods (by CSeq method) whose body is removed before storing, e.g. `["MESSAGE"]`;
    /// the headers stay. Default: none.
    pub censor_body_methods: Vec<String>,
}

/// The batched store writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterConfig {
    /// Records per `insert_batch` call at most; under load the writer takes what is queued up to
    /// this, at low rates `max_batch_delay_ms` ends a batch first. Why 8192: SQLite's segmented
    /// indexes and PostgreSQL's COPY both cost less per row in larger commits (end to end into
    /// SQLite, 8192 stored 1.2× faster than 2000), while a batch in flight stays ~13 MB.
    /// Default: 8192.
    pub batch_size: usize,
    /// A batch is written after at most this many milliseconds even when not full. Must be below
    /// 1000 so that a SIGKILL loses at most about a second of traffic. Default: 100.
    pub max_batch_delay_ms: u64,
    /// Records the in-memory queue between the receivers and the writers holds; when full,
    /// records go to the spool. A queued record takes ~1.6 KB, so this bounds the queue to
    /// ~26 MB; longer bursts are absorbed by the spool on disk. Default: 16,384.
    pub queue_capacity: usize,
    /// Writer threads, each calling `insert_batch` on its own batches; 0 picks the store's own
    /// parallelism (SQLite: `write_shards`, one writer per shard file; PostgreSQL:
    /// `connections − 1`). Spooled batches are replayed with the same fan-out. The KPI engine
    /// puts their out-of-order batches back in receive order (`kpi.reorder_window_ms`).
    /// Default: 0.
    pub writer_threads: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_size: 8192,
            max_batch_delay_ms: 100,
            queue_capacity: 16_384,
            writer_threads: 0,
        }
    }
}

/// The on-disk spool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// Directory of the spool segments. Default: `<data-dir>/spool` (see
    /// [`SpoolSection::resolve_dir`]).
    pub dir: Option<PathBuf>,
    /// Most bytes the spool may hold (compressed, see `zstd_level`); beyond it packets are
    /// dropped (counted). Default: 1 GiB.
    pub max_bytes: u64,
    /// Size of one spool segment file in bytes; fully replayed segments are deleted whole.
    /// Default: 64 MiB (capped at `max_bytes`).
    pub segment_bytes: u64,
    /// When spooled data is forced to disk: `"always"`, `"never"` or `{ every_millis = N }`.
    /// A killed process loses nothing already spooled under any policy; this bounds what a
    /// power failure can lose. Default: `{ every_millis = 1000 }`.
    pub fsync: spool::FsyncPolicy,
    /// Zstandard level spooled batches are compressed with (1–19); 0 writes them
    /// uncompressed. A batch of SIP and RTCP shrinks 4–10× at level 1 for about 1 µs of CPU
    /// per record, so `max_bytes` holds that many more seconds of overload. Default: 1.
    pub zstd_level: i32,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            dir: None,
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            fsync: spool::FsyncPolicy::default(),
            zstd_level: 1,
        }
    }
}

impl SpoolSection {
    /// The spool directory: `dir` when configured, else `<data_dir>/spool`.
    pub fn resolve_dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("spool"))
    }

    /// The settings for `spool::Spool::open`.
    pub fn spool_config(&self) -> spool::SpoolConfig {
        spool::SpoolConfig {
            max_bytes: self.max_bytes,
            segment_bytes: self.segment_bytes.clamp(1, self.max_bytes.max(1)),
            fsync: self.fsync,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A numeric setting is out of its range.
    #[error("{field}: {reason}")]
    OutOfRange {
        /// Dotted name of the setting.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A listener setting is invalid.
    #[error(transparent)]
    Listener(#[from] ingest::ListenerConfigError),
    /// A `discard_ips` entry is neither an address nor a CIDR network.
    #[error("pipeline.rules.discard_ips: {0:?} is not an IP address or CIDR network")]
    BadNetwork(String),
    /// The SIP indexer rejected the header configuration.
    #[error("pipeline: {0}")]
    Indexer(#[from] sip::ConfigError),
}

impl CollectorConfig {
    /// The listener part of the configuration.
    pub fn listeners(&self) -> ListenerConfig<'_> {
        ListenerConfig {
            udp: &self.udp,
            tcp: &self.tcp,
            tls: &self.tls,
        }
    }

    /// Checks every value; the collector refuses to start with an invalid configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |ok: bool, field, reason| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange { field, reason })
            }
        };
        self.listeners().validate()?;
        range(
            self.pipeline.max_inflated_bytes >= 1024,
            "pipeline.max_inflated_bytes",
            "must be at least 1024",
        )?;
        range(
            self.pipeline.dedup_window_ms <= 60_000,
            "pipeline.dedup_window_ms",
            "must be at most 60000",
        )?;
        range(
            self.writer.batch_size >= 1,
            "writer.batch_size",
            "must be at least 1",
        )?;
        range(
            self.writer.max_batch_delay_ms >= 1 && self.writer.max_batch_delay_ms < 1000,
            "writer.max_batch_delay_ms",
            "must be between 1 and 999 (a SIGKILL may lose at most ~1 s)",
        )?;
        range(
            self.writer.queue_capacity >= 1,
            "writer.queue_capacity",
            "must be at least 1",
        )?;
        range(
            (0..=64).contains(&self.writer.writer_threads),
            "writer.writer_threads",
            "must be between 1 and 64",
        )?;
        range(
            self.spool.max_bytes >= 1 << 20,
            "spool.max_bytes",
            "must be at least 1 MiB",
        )?;
        range(
            (0..=19).contains(&self.spool.zstd_level),
            "spool.zstd_level",
            "must be between 0 (uncompressed) and 19",
        )?;
        range(
            self.spool.segment_bytes >= 64 << 10,
            "spool.segment_bytes",
            "must be at least 64 KiB",
        )?;
        for net in &self.pipeline.rules.discard_ips {
            IpNet::parse(net).ok_or_else(|| ConfigError::BadNetwork(net.clone()))?;
        }
        sip::Indexer::new(self.pipeline.indexer_config())?;
        Ok(())
    }
}

impl PipelineConfig {
    /// The SIP indexer configuration derived from the custom and A-leg headers.
    ///
    /// Everything but the A-leg and custom headers stays the default: the pipeline's
    /// `RecordHint::sip_from_raw` promise (the store may derive SIP detail fields from the raw
    /// message with the default indexer) rests on it.
    pub fn indexer_config(&self) -> sip::IndexerConfig {
        sip::IndexerConfig {
            custom_headers: self.custom_headers.clone(),
            aleg_headers: self.aleg_headers.clone(),
            ..sip::IndexerConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let cfg = CollectorConfig::default();
        cfg.validate().expect("defaults valid");
        assert_eq!(
            cfg.udp.addresses,
            vec!["0.0.0.0:9060".parse().expect("addr")]
        );
        assert_eq!(cfg.udp.receive_buffer_bytes, 32 << 20);
        assert_eq!(cfg.pipeline.dedup_window_ms, 50);
        assert_eq!(cfg.writer.max_batch_delay_ms, 100);
        assert!(cfg.tls.addresses.is_empty());
        assert_eq!(
            cfg.spool.resolve_dir(Path::new("/data")),
            PathBuf::from("/data/spool")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let unknown: Result<CollectorConfig, _> =
            serde_json::from_str(r#"{"udp":{"adresses":[]}}"#);
        assert!(unknown.is_err());
        let mut cfg: CollectorConfig = serde_json::from_str(
            r#"{"writer":{"max_batch_delay_ms":1500},"pipeline":{"aleg_headers":[{"header":"X-CID"}]}}"#,
        )
        .expect("parses");
        assert_eq!(cfg.writer.batch_size, 8192, "unset keys keep defaults");
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::OutOfRange {
                field: "writer.max_batch_delay_ms",
                ..
            })
        ));
        cfg.writer.max_batch_delay_ms = 100;
        cfg.validate().expect("valid again");
        cfg.pipeline.rules.discard_ips = vec!["10.0.0.0/33".into()];
        assert!(matches!(cfg.validate(), Err(ConfigError::BadNetwork(_))));
        cfg.pipeline.rules.discard_ips = vec![];
        cfg.tls.addresses = vec!["127.0.0.1:0".parse().expect("addr")];
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::Listener(
                ingest::ListenerConfigError::TlsMissing(_)
            ))
        ));
        cfg.tls.addresses.clear();
        cfg.pipeline.aleg_headers = vec![sip::AlegRule::with_regex("X", "(")];
        assert!(matches!(cfg.validate(), Err(ConfigError::Indexer(_))));
    }
}
