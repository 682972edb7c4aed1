//! ClickHouse for tests: the servers `scripts/clickhouse.sh` starts on loopback (one single
//! node on 18123, the 2 shards x 2 replicas cluster `hep` on 18124–18127), started by this
//! harness when they do not answer. Each test gets its own database, dropped afterwards
//! (`ON CLUSTER` for the cluster). Only std and ureq, so any test crate can include this file
//! with `#[path]`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// HTTP port of the single node.
pub const SINGLE: u16 = 18123;
/// HTTP ports of the cluster nodes: shard 1 replicas 1, 2, shard 2 replicas 1, 2.
pub const CLUSTER: [u16; 4] = [18124, 18125, 18126, 18127];
/// The cluster's name in `remote_servers`.
pub const CLUSTER_NAME: &str = "hep";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/clickhouse.sh")
}

/// Runs SQL on a node; the answer text, or the error text.
pub fn sql(port: u16, query: &str) -> Result<String, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    match agent
        .post(&format!("http://127.0.0.1:{port}/"))
        .send_string(query)
    {
        Ok(r) => r.into_string().map_err(|e| e.to_string()),
        Err(ureq::Error::Status(_, r)) => Err(r.into_string().unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    }
}

pub fn ping(port: u16) -> bool {
    ureq::get(&format!("http://127.0.0.1:{port}/ping"))
        .timeout(Duration::from_secs(2))
        .call()
        .is_ok()
}

/// Whether the servers answer, starting them once per test process when they do not.
/// Without them a test is skipped, or fails when `HEPSTACK_REQUIRE_PEERS` is set.
pub fn servers() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    *UP.get_or_init(|| {
        let all = || std::iter::once(SINGLE).chain(CLUSTER).all(ping);
        if all() {
            return true;
        }
        let status = Command::new("bash").arg(script()).status();
        let up = all();
        if !up {
            let msg = format!(
                "ClickHouse test servers not available ({}: {status:?})",
                script().display()
            );
            if std::env::var_os("HEPSTACK_REQUIRE_PEERS").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
        }
        up
    })
}

/// A database of its own on the single node or the cluster, dropped on drop.
pub struct TestDb {
    pub name: String,
    pub cluster: bool,
}

fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl TestDb {
    pub fn new(tag: &str, cluster: bool) -> Option<TestDb> {
        if !servers() {
            return None;
        }
        let name = format!("hs_{tag}_{}_{}", std::process::id(), unique()).to_lowercase();
        Some(TestDb { name, cluster })
    }

    /// The store URL; in the cluster, through shard 1 replica 1 with shard 2 replica 1 as
    /// the failover host.
    pub fn url(&self) -> String {
        if self.cluster {
            format!(
                "clickhouse://default@127.0.0.1:{},127.0.0.1:{}/{}?cluster={CLUSTER_NAME}",
                CLUSTER[0], CLUSTER[2], self.name
            )
        } else {
            format!("clickhouse://default@127.0.0.1:{SINGLE}/{}", self.name)
        }
    }

    /// The HTTP port queries of this database go to.
    pub fn port(&self) -> u16 {
        if self.cluster {
            CLUSTER[0]
        } else {
            SINGLE
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let on = if self.cluster {
            format!(" ON CLUSTER {CLUSTER_NAME}")
        } else {
            String::new()
        };
        let _ = sql(
            self.port(),
            &format!("DROP DATABASE IF EXISTS {}{on}", self.name),
        );
    }
}
