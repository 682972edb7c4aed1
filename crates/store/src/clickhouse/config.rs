//! Configuration of the ClickHouse store (`[store.clickhouse]`) and its connection URL.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Configuration of [`super::ChStore`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChConfig {
    /// Connection URL `clickhouse://user:password@host:8123[,host2:8123…]/database?cluster=NAME`
    /// (`clickhouses://` or `https://` for TLS, `http://` as a synonym of `clickhouse://`).
    /// Not part of the configuration section: `hepstack serve` sets it from `store.url`
    /// (`--store`). The password is never logged.
    #[serde(skip)]
    pub url: String,
    /// PEM file of the CA(s) that sign the servers' certificates for `clickhouses://`; empty
    /// means the built-in Mozilla roots. The host name is always verified.
    pub ca_file: String,
    /// How long to wait for a TCP connection (and TLS handshake), in milliseconds. While every
    /// host is down each call fails fast with "unavailable" and the collector spools.
    pub connect_timeout_ms: u64,
    /// Longest a query or an insert may take, in milliseconds (also sent to the server as
    /// `max_execution_time` for queries).
    pub query_timeout_ms: u64,
    /// Batches written in parallel (each an HTTP insert of its own).
    pub writers: usize,
    /// Days a day partition is kept after the day ended; 0 keeps data forever.
    pub retention_days: u32,
    /// Per-table overrides of `retention_days`, keyed by table (`sip`, `qos`, `logs`,
    /// `other`), e.g. `logs = 2`.
    pub retention_by_table: BTreeMap<String, u32>,
    /// Upper bound of the bytes on disk of the database on the node the store talks to; when
    /// exceeded, retention drops the oldest day partitions (never today's). 0 means no limit.
    pub max_database_bytes: u64,
    /// Largest raw payload accepted, in bytes; bigger rows are rejected one by one.
    pub max_raw_bytes: usize,
    /// Largest number of distinct calls one `calls` query may gather (memory bound).
    pub max_calls_scan: usize,
    /// Largest number of messages one call flow may return (memory bound).
    pub max_flow_messages: usize,
    /// Largest number of candidate rows a search by JSON field reads on a server without
    /// SQL JSON functions (ClickHouse before 19.x), where the condition is applied here.
    pub max_json_scan: usize,
    /// Recent insert blocks each table remembers to drop a replayed identical block
    /// (`replicated_deduplication_window`, and `non_replicated_deduplication_window` where the
    /// server has it). Must exceed the batches one table takes while a replay is pending.
    pub deduplication_window: u32,
    /// `insert_quorum` of cluster inserts: replicas that must have a block before the insert
    /// succeeds. 0 (the default) acknowledges after one replica; 2 survives the loss of a
    /// node right after the acknowledgement, at the price of refusing inserts (and spooling)
    /// while a shard has a single replica up.
    pub insert_quorum: u32,
    /// Seconds `ON CLUSTER` DDL waits for every node at start before carrying on with the
    /// nodes that answered (a node down at start gets its tables when a later start runs).
    pub ddl_timeout_s: u32,
}

impl Default for ChConfig {
    fn default() -> Self {
        ChConfig {
            url: "clickhouse://default@127.0.0.1:8123/hepstack".into(),
            ca_file: String::new(),
            connect_timeout_ms: 3000,
            query_timeout_ms: 60_000,
            writers: 2,
            retention_days: 7,
            retention_by_table: BTreeMap::new(),
            max_database_bytes: 0,
            max_raw_bytes: 16 * 1024 * 1024,
            max_calls_scan: 2_000_000,
            max_flow_messages: 200_000,
            max_json_scan: 1_000_000,
            deduplication_window: 1000,
            insert_quorum: 0,
            ddl_timeout_s: 60,
        }
    }
}

/// A parsed connection URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// TLS (`https`).
    pub tls: bool,
    /// `host:port` of every node to try, in order.
    pub hosts: Vec<String>,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// Cluster name of `remote_servers` for replicated, sharded tables.
    pub cluster: Option<String>,
}

/// Whether a name is a plain identifier (database and cluster names go into SQL unquoted).
pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

fn decode(s: &str, what: &str) -> Result<String, StoreError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| StoreError::Setup(format!("clickhouse URL: {what} is not UTF-8")))
}

impl Target {
    /// Parses `clickhouse[s]://[user[:password]@]host[:port][,host[:port]…][/database][?cluster=NAME]`.
    /// Errors never quote the password.
    pub fn parse(url: &str) -> Result<Target, StoreError> {
        let bad = |why: &str| StoreError::Setup(format!("clickhouse URL: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected clickhouse://host:8123/database"))?;
        let tls = match scheme {
            "clickhouse" | "http" => false,
            "clickhouses" | "https" => true,
            _ => {
                return Err(bad(
                    "the scheme must be clickhouse, clickhouses, http or https",
                ))
            }
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => ("default".to_string(), None),
            Some(u) => match u.split_once(':') {
                Some((name, pw)) => (decode(name, "the user")?, Some(decode(pw, "the password")?)),
                None => (decode(u, "the user")?, None),
            },
        };
        let default_port = if tls { 8443 } else { 8123 };
        let mut hosts = Vec::new();
        for h in hostlist.split(',') {
            if h.is_empty() {
                return Err(bad("empty host"));
            }
            let with_port = if h.starts_with('[') {
                if h.ends_with(']') {
                    format!("{h}:{default_port}")
                } else {
                    h.to_string()
                }
            } else if h.contains(':') {
                h.to_string()
            } else {
                format!("{h}:{default_port}")
            };
            let port = with_port.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
            if port.parse::<u16>().is_err() {
                return Err(bad(&format!("bad port in host {h:?}")));
            }
            if !with_port.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
            }) {
                return Err(bad(&format!("bad host {h:?}")));
            }
            hosts.push(with_port);
        }
        let database = if path.is_empty() {
            "hepstack".to_string()
        } else {
            path.to_string()
        };
        if !is_identifier(&database) {
            return Err(bad("the database name must be letters, digits and `_`"));
        }
        let mut cluster = None;
        for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
            match kv.split_once('=') {
                Some(("cluster", v)) if is_identifier(v) => cluster = Some(v.to_string()),
                Some(("cluster", _)) => {
                    return Err(bad("the cluster name must be letters, digits and `_`"))
                }
                _ => return Err(bad(&format!("unknown parameter {kv:?} (known: cluster)"))),
            }
        }
        Ok(Target {
            tls,
            hosts,
            user,
            password,
            database,
            cluster,
        })
    }

    /// `host:port,…/database` for messages (no credentials).
    pub fn describe(&self) -> String {
        let mut s = format!("{}/{}", self.hosts.join(","), self.database);
        if let Some(c) = &self.cluster {
            s.push_str(&format!(" (cluster {c})"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_hosts_credentials_and_cluster() {
        let t = Target::parse("clickhouse://u:p%40ss@h1:9123,h2/hep?cluster=c1").unwrap();
        assert_eq!(
            t,
            Target {
                tls: false,
                hosts: vec!["h1:9123".into(), "h2:8123".into()],
                user: "u".into(),
                password: Some("p@ss".into()),
                database: "hep".into(),
                cluster: Some("c1".into()),
            }
        );
        assert_eq!(t.describe(), "h1:9123,h2:8123/hep (cluster c1)");
        let t = Target::parse("clickhouses://[::1]").unwrap();
        assert!(t.tls);
        assert_eq!(t.hosts, ["[::1]:8443"]);
        assert_eq!(
            (t.user.as_str(), t.database.as_str()),
            ("default", "hepstack")
        );
        for bad in [
            "postgres://h/db",
            "clickhouse://h:x/db",
            "clickhouse://h/db;drop",
            "clickhouse://h/db?cluster=a'b",
            "clickhouse://h/db?secure=1",
            "clickhouse://h,,h2/db",
            "clickhouse://u:secret@h/d-b",
        ] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
