//! The ClickHouse layout: four data tables by class of data with one column set, a narrow
//! `links` table for leg correlation, and the shared `hepstack_users`/`hepstack_settings`.
//!
//! Data tables (`sip`, `qos`, `logs`, `other`):
//! - `PARTITION BY day`: retention drops whole days (`ALTER … DROP PARTITION`), and a time
//!   window only opens the days it covers.
//! - `ORDER BY (hour, sid, time_us)`: a time window reads the granules of its hours; a
//!   Call-ID lookup is one index seek per hour (24 a day), with or without a time bound.
//! - every search field of [`crate::Record`] and [`crate::SipFields`] is a typed column;
//!   optional fields are plain `String`s with their presence in the `present` bit set (no
//!   `Nullable`, whose null maps cost a file per column); the raw message is a `String`
//!   compressed by the server (LZ4 blocks on every version, ZSTD where column codecs exist).
//!
//! `links` holds one narrow row per message whose correlation id or A-leg id differs from its
//! Call-ID: (`key` = that id, `sid`). `ORDER BY (key, sid, time_us)` makes "which calls point at
//! this Call-ID" (the B-legs of a call flow) an index lookup instead of a scan.
//!
//! Cluster mode (`?cluster=NAME`): every table above is a `Replicated*MergeTree` named
//! `<table>_local` on each node (ZooKeeper path `/clickhouse/tables/{shard}/<db>/<table>`),
//! with a `Distributed` table of the plain name over it, sharded by `shard_key`, a hash of the
//! call's correlation group (the correlation id, else the Call-ID): a call's legs, its RTCP and
//! its logs land on one shard. Users and settings are replicated to every node (path
//! `/clickhouse/tables/all/<db>/…`), so any node answers a login. All DDL is `IF NOT EXISTS …
//! ON CLUSTER` and runs at every start.

use super::config::is_identifier;

/// Microseconds per hour and day.
pub(crate) const HOUR_US: i64 = 3_600_000_000;
pub(crate) const DAY_US: i64 = 86_400_000_000;
/// Accepted capture times: from the epoch (ClickHouse's `Date` starts there) to 2100-01-01.
pub(crate) const MIN_TIME_US: i64 = 0;
pub(crate) const MAX_TIME_US: i64 = 4_102_444_800_000_000;

/// The data tables, by class.
pub(crate) const DATA_TABLES: [&str; 4] = ["sip", "qos", "logs", "other"];
/// The link table.
pub(crate) const LINKS: &str = "links";

/// Data table index of a record: SIP, RTCP and QoS reports, logs, everything else.
pub(crate) fn class_of(r: &crate::Record) -> usize {
    if r.sip.is_some() {
        return 0;
    }
    class_of_type(r.hep_type)
}

/// Data table index of a non-SIP HEP type.
pub(crate) fn class_of_type(hep_type: u8) -> usize {
    match hep_type {
        5 | 34 | 35 => 1,
        100 => 2,
        _ => 3,
    }
}

/// Column kinds of the RowBinary codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Date,
    U8,
    U16,
    U32,
    U64,
    I64,
    Str,
    StrArray,
}

impl Kind {
    fn sql(self) -> &'static str {
        match self {
            Kind::Date => "Date",
            Kind::U8 => "UInt8",
            Kind::U16 => "UInt16",
            Kind::U32 => "UInt32",
            Kind::U64 => "UInt64",
            Kind::I64 => "Int64",
            Kind::Str => "String",
            Kind::StrArray => "Array(String)",
        }
    }
}

/// How a column is declared beyond its type, where the server can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Extra {
    None,
    /// Few distinct values: `LowCardinality(String)`.
    LowCard,
    /// Big text: `CODEC(ZSTD(1))`.
    Zstd,
}

/// The data tables' columns in RowBinary order.
const COLUMNS: &[(&str, Kind, Extra)] = &[
    ("day", Kind::Date, Extra::None),
    ("hour", Kind::U32, Extra::None),
    ("time_us", Kind::I64, Extra::None),
    ("id", Kind::I64, Extra::None),
    ("shard_key", Kind::U64, Extra::None),
    ("received_us", Kind::I64, Extra::None),
    ("hep_type", Kind::U8, Extra::None),
    ("hep_version", Kind::U8, Extra::None),
    ("ip_family", Kind::U8, Extra::None),
    ("ip_proto", Kind::U8, Extra::None),
    ("src_ip", Kind::Str, Extra::None),
    ("src_port", Kind::U16, Extra::None),
    ("dst_ip", Kind::Str, Extra::None),
    ("dst_port", Kind::U16, Extra::None),
    ("capture_id", Kind::U32, Extra::None),
    ("node", Kind::Str, Extra::LowCard),
    ("correlation_id", Kind::Str, Extra::None),
    ("sid", Kind::Str, Extra::None),
    ("profile", Kind::U8, Extra::None),
    ("present", Kind::U32, Extra::None),
    ("method", Kind::Str, Extra::LowCard),
    ("is_request", Kind::U8, Extra::None),
    ("status", Kind::U16, Extra::None),
    ("cseq", Kind::Str, Extra::None),
    ("cseq_method", Kind::Str, Extra::LowCard),
    ("call_id", Kind::Str, Extra::None),
    ("ruri_user", Kind::Str, Extra::None),
    ("ruri_domain", Kind::Str, Extra::LowCard),
    ("from_user", Kind::Str, Extra::None),
    ("from_domain", Kind::Str, Extra::LowCard),
    ("from_tag", Kind::Str, Extra::None),
    ("to_user", Kind::Str, Extra::None),
    ("to_domain", Kind::Str, Extra::LowCard),
    ("to_tag", Kind::Str, Extra::None),
    ("contact_user", Kind::Str, Extra::None),
    ("pid_user", Kind::Str, Extra::None),
    ("auth_user", Kind::Str, Extra::None),
    ("user_agent", Kind::Str, Extra::LowCard),
    ("server", Kind::Str, Extra::LowCard),
    ("reason", Kind::Str, Extra::None),
    ("content_type", Kind::Str, Extra::LowCard),
    ("via_branch", Kind::Str, Extra::None),
    ("aleg_id", Kind::Str, Extra::None),
    ("hdr_names", Kind::StrArray, Extra::None),
    ("hdr_values", Kind::StrArray, Extra::None),
    ("sdp_media", Kind::StrArray, Extra::None),
    ("payload_json", Kind::Str, Extra::Zstd),
    ("raw", Kind::Str, Extra::Zstd),
];

/// Columns of the data tables the store writes, comma-separated.
pub(crate) fn insert_columns() -> String {
    COLUMNS
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Columns read back for a stored message (everything but the derived `day`, `hour` and
/// `shard_key`), in the order [`super::codec::decode_row`] expects.
pub(crate) fn read_columns() -> String {
    COLUMNS
        .iter()
        .map(|(n, _, _)| *n)
        .filter(|n| !matches!(*n, "day" | "hour" | "shard_key"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Columns of `links`, in RowBinary order.
pub(crate) const LINK_COLUMNS: &str = "day, hour, time_us, key, sid, sip, shard_key";

/// What the server can do, found out at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Features {
    /// `version()`, e.g. `18.16.1`.
    pub version: String,
    /// Column codecs, `LowCardinality` and data skipping indexes are all generally available
    /// (20.3 and later).
    pub modern_columns: bool,
    /// The `insert_deduplication_token` setting.
    pub dedup_token: bool,
    /// The `non_replicated_deduplication_window` MergeTree setting.
    pub non_replicated_dedup: bool,
    /// SQL JSON functions (`JSONExtractRaw`, `JSONType`).
    pub json_functions: bool,
}

impl Features {
    /// Major and minor of the version.
    pub fn major_minor(version: &str) -> (u32, u32) {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    pub fn from_probe(version: &str, settings: &[String], mt_settings: &[String]) -> Features {
        let (major, minor) = Features::major_minor(version);
        Features {
            version: version.to_string(),
            modern_columns: (major, minor) >= (20, 3),
            dedup_token: settings.iter().any(|s| s == "insert_deduplication_token"),
            non_replicated_dedup: mt_settings
                .iter()
                .any(|s| s == "non_replicated_deduplication_window"),
            json_functions: (major, minor) >= (19, 1),
        }
    }
}

/// The statements that create the whole layout, in order, idempotent.
pub(crate) fn ddl(
    db: &str,
    cluster: Option<&str>,
    features: &Features,
    dedup_window: u32,
) -> Vec<String> {
    debug_assert!(is_identifier(db) && cluster.map_or(true, is_identifier));
    let on = cluster
        .map(|c| format!(" ON CLUSTER {c}"))
        .unwrap_or_default();
    let local = |t: &str| {
        if cluster.is_some() {
            format!("{t}_local")
        } else {
            t.to_string()
        }
    };
    let engine = |table: &str, kind: &str, args: &str, shared: bool| match cluster {
        Some(_) => {
            let scope = if shared { "all" } else { "{shard}" };
            let sep = if args.is_empty() { "" } else { ", " };
            format!(
                "Replicated{kind}('/clickhouse/tables/{scope}/{db}/{table}', '{{replica}}'{sep}{args})"
            )
        }
        None => format!("{kind}({args})"),
    };
    let mut settings = vec!["index_granularity = 8192".to_string()];
    if cluster.is_some() {
        settings.push(format!("replicated_deduplication_window = {dedup_window}"));
    } else if features.non_replicated_dedup {
        settings.push(format!(
            "non_replicated_deduplication_window = {dedup_window}"
        ));
    }
    let settings = settings.join(", ");
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {db}{on}")];
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(
            |(name, kind, extra)| match (extra, features.modern_columns) {
                (Extra::LowCard, true) => format!("{name} LowCardinality(String)"),
                (Extra::Zstd, true) => format!("{name} {} CODEC(ZSTD(1))", kind.sql()),
                _ => format!("{name} {}", kind.sql()),
            },
        )
        .collect();
    let mut columns = columns.join(", ");
    if features.modern_columns {
        columns.push_str(
            ", INDEX corr_idx correlation_id TYPE bloom_filter GRANULARITY 4, \
             INDEX from_idx from_user TYPE bloom_filter GRANULARITY 4, \
             INDEX to_idx to_user TYPE bloom_filter GRANULARITY 4, \
             INDEX ruri_idx ruri_user TYPE bloom_filter GRANULARITY 4",
        );
    }
    let mut tables: Vec<(&str, String, &str)> = DATA_TABLES
        .iter()
        .map(|t| (*t, columns.clone(), "hour, sid, time_us"))
        .collect();
    tables.push((
        LINKS,
        "day Date, hour UInt32, time_us Int64, key String, sid String, sip UInt8, shard_key UInt64"
            .to_string(),
        "key, sid, time_us",
    ));
    for (table, columns, order) in &tables {
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {db}.{}{on} ({columns}) ENGINE = {} \
             PARTITION BY day ORDER BY ({order}) SETTINGS {settings}",
            local(table),
            engine(table, "MergeTree", "", false),
        ));
        if let Some(c) = cluster {
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {db}.{table}{on} AS {db}.{} \
                 ENGINE = Distributed({c}, {db}, {}, shard_key)",
                local(table),
                local(table)
            ));
        }
    }
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.hepstack_users{on} (name String, password_hash String, \
         admin UInt8, deleted UInt8, version UInt64) ENGINE = {} ORDER BY name",
        engine("hepstack_users", "ReplacingMergeTree", "version", true)
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {db}.hepstack_settings{on} (namespace String, key String, \
         value String, deleted UInt8, version UInt64) ENGINE = {} ORDER BY (namespace, key)",
        engine("hepstack_settings", "ReplacingMergeTree", "version", true)
    ));
    out
}

/// Every table name the layout creates on a node (for the "already there" check).
pub(crate) fn table_names(cluster: bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for t in DATA_TABLES.iter().chain(std::iter::once(&LINKS)) {
        names.push(t.to_string());
        if cluster {
            names.push(format!("{t}_local"));
        }
    }
    names.push("hepstack_users".into());
    names.push("hepstack_settings".into());
    names
}

/// The local (MergeTree) name of a table.
pub(crate) fn local_name(table: &str, cluster: bool) -> String {
    if cluster {
        format!("{table}_local")
    } else {
        table.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ddl_is_replicated_distributed_and_idempotent() {
        let old = Features::from_probe("18.16.1", &[], &[]);
        assert!(!old.modern_columns && !old.json_functions);
        let stmts = ddl("hep", Some("c"), &old, 1000);
        assert!(stmts
            .iter()
            .all(|s| s.contains("IF NOT EXISTS") && s.contains("ON CLUSTER c")));
        assert!(stmts.iter().any(|s| s
            .contains("ReplicatedMergeTree('/clickhouse/tables/{shard}/hep/sip', '{replica}')")
            && s.contains("hep.sip_local")));
        assert!(stmts
            .iter()
            .any(|s| s.contains("Distributed(c, hep, sip_local, shard_key)")));
        assert!(stmts.iter().any(|s| s.contains(
            "ReplicatedReplacingMergeTree('/clickhouse/tables/all/hep/hepstack_users', '{replica}', version)"
        )));
        assert!(!stmts
            .iter()
            .any(|s| s.contains("CODEC") || s.contains("LowCardinality")));
        let new = Features::from_probe(
            "24.8.4.13",
            &["insert_deduplication_token".into()],
            &["non_replicated_deduplication_window".into()],
        );
        let single = ddl("hep", None, &new, 500);
        assert!(single
            .iter()
            .any(|s| s.contains("raw String CODEC(ZSTD(1))")
                && s.contains("non_replicated_deduplication_window = 500")
                && s.contains("ENGINE = MergeTree()")));
        assert!(!single.iter().any(|s| s.contains("ON CLUSTER")));
    }
}
