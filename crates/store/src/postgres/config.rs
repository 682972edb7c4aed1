//! Configuration of the PostgreSQL store (`[store.postgres]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How the connection is protected, as libpq's `sslmode` (also accepted in the URL as
/// `?sslmode=…`, which wins over the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not verified.
    Prefer,
    /// TLS or no connection; the certificate is not verified (libpq's `require`).
    Require,
    /// TLS, the certificate chain verified against `ca_file` (or the Mozilla roots) but not the
    /// host name.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl TlsMode {
    /// Parses an `sslmode` value.
    pub fn parse(s: &str) -> Option<TlsMode> {
        Some(match s {
            "disable" => TlsMode::Disable,
            "allow" | "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Wire format of the COPY that writes rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyFormat {
    /// `COPY … (FORMAT binary)`: no escaping on our side, no text parsing of the timestamp on
    /// the server's.
    Binary,
    /// `COPY … (FORMAT text)`: tab-separated, backslash-escaped.
    Text,
}

/// Partition length per kind of data, as heplify-server's `DBPartSIP`, `DBPartQos`,
/// `DBPartLog` and `DBPartIsup`. Each value is a number of minutes that divides a day
/// (5, 10, 15, 30, 60, 120, 180, 240, 360, 480, 720, 1440); partitions start at UTC midnight
/// plus multiples of it, and their names carry the start (`hep_proto_1_call_20261123_1400`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionSteps {
    /// SIP tables (`hep_proto_1_*`), minutes.
    pub sip_minutes: u32,
    /// RTCP and QoS reports (`hep_proto_5_default`, `hep_proto_35_default`), minutes.
    pub qos_minutes: u32,
    /// Logs and every other non-SIP type (`hep_proto_100_default`, `hep_proto_53_default`),
    /// minutes.
    pub log_minutes: u32,
    /// ISUP (`hep_proto_54_default`), minutes.
    pub isup_minutes: u32,
}

impl Default for PartitionSteps {
    fn default() -> Self {
        PartitionSteps {
            sip_minutes: 60,
            qos_minutes: 360,
            log_minutes: 360,
            isup_minutes: 360,
        }
    }
}

/// Configuration of [`super::PgStore`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgConfig {
    /// Connection URL `postgres://user:password@host:port/homer_data?sslmode=require`. Not
    /// part of the configuration section: `hepstack serve` sets it from `store.url`
    /// (`--store`). The password is never logged.
    #[serde(skip)]
    pub url: String,
    /// TLS mode when the URL carries no `sslmode`.
    pub tls: TlsMode,
    /// PEM file of the CA(s) that sign the server certificate for `verify-ca`/`verify-full`;
    /// empty means the built-in Mozilla roots.
    pub ca_file: String,
    /// Connections used at most (writers and queries share them). Writes use COPY, one
    /// connection per concurrent batch.
    pub connections: usize,
    /// How long to wait for a TCP connection and the login, in milliseconds. While the server
    /// is down every call fails fast with "unavailable" and the collector spools.
    pub connect_timeout_ms: u64,
    /// Longest pause between reconnection attempts after failures, in milliseconds (the pause
    /// doubles from 100 ms up to this).
    pub max_backoff_ms: u64,
    /// COPY wire format (see the benchmark in docs/postgres.md).
    pub copy_format: CopyFormat,
    /// Partition lengths per kind of data.
    pub partition_steps: PartitionSteps,
    /// Partitions created ahead of time, in days from now (rows for any other time get
    /// theirs created on demand).
    pub create_ahead_days: u32,
    /// Days a partition is kept after its period ended; 0 keeps data forever.
    pub retention_days: u32,
    /// Per-table overrides of `retention_days`, keyed by parent table name
    /// (`hep_proto_1_registration = 2`).
    pub retention_by_table: BTreeMap<String, u32>,
    /// Upper bound of `pg_database_size` in bytes; when exceeded, retention drops the oldest
    /// partitions (never the current ones). 0 means no limit.
    pub max_database_bytes: u64,
    /// Extra SIP keys written to `data_header` besides heplify-server's default
    /// `SIPHeader` set (`ruri_user, ruri_domain, from_user, from_tag, to_user, callid, cseq,
    /// method, user_agent`), e.g. `["to_domain", "pid_user", "auth_user"]`. Names as in
    /// heplify-server; custom headers are always written under their own names.
    pub extra_sip_headers: Vec<String>,
    /// Largest raw payload accepted, in bytes; bigger rows are rejected one by one.
    pub max_raw_bytes: usize,
    /// Largest number of distinct calls one `calls` query may gather (memory bound).
    pub max_calls_scan: usize,
    /// Largest number of messages one call flow may return (memory bound).
    pub max_flow_messages: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            url: "postgres://postgres@127.0.0.1:5432/homer_data".into(),
            tls: TlsMode::Prefer,
            ca_file: String::new(),
            connections: 4,
            connect_timeout_ms: 3000,
            max_backoff_ms: 5000,
            copy_format: CopyFormat::Binary,
            partition_steps: PartitionSteps::default(),
            create_ahead_days: 1,
            retention_days: 7,
            retention_by_table: BTreeMap::new(),
            max_database_bytes: 0,
            extra_sip_headers: Vec::new(),
            max_raw_bytes: 16 * 1024 * 1024,
            max_calls_scan: 2_000_000,
            max_flow_messages: 200_000,
        }
    }
}
