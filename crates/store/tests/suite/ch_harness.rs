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

/// The scratch directory of `scripts/clickhouse.sh`.
pub fn scratch() -> PathBuf {
    PathBuf::from(
        std::env::var("HEPSTACK_CH_DIR").unwrap_or_else(|_| "/tmp/hepstack-clickhouse".into()),
    )
}

/// The HTTP port of a chdb (current ClickHouse, in-process) behind `scripts/chdb-http.py`,
/// started once per test process from the venv `scripts/clickhouse.sh` prepares; None (the
/// test is skipped, or fails under `HEPSTACK_REQUIRE_PEERS`) when there is none.
pub fn chdb() -> Option<u16> {
    static PORT: OnceLock<Option<u16>> = OnceLock::new();
    *PORT.get_or_init(|| {
        let python = scratch().join("chdb-venv/bin/python");
        let fail = |msg: String| {
            if std::env::var_os("HEPSTACK_REQUIRE_PEERS").is_some() {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            None
        };
        if !python.exists() {
            return fail(format!("no chdb venv at {}", python.display()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        let data = std::env::temp_dir().join(format!("hepstack-chdb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let child = Command::new(python)
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/chdb-http.py"))
            .arg(port.to_string())
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = child {
            return fail(format!("starting chdb-http.py: {e}"));
        }
        // The child leaves when the test process exits (it watches its parent); chdb loads
        // in a few seconds.
        for _ in 0..120 {
            if ping(port) {
                return Some(port);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        fail("chdb-http.py did not answer in 30 s".into())
    })
}

/// A database of its own on the single node, the cluster or chdb, dropped on drop.
pub struct TestDb {
    pub name: String,
    pub cluster: bool,
    /// HTTP port of the server holding it.
    pub port: u16,
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
        let port = if cluster { CLUSTER[0] } else { SINGLE };
        Some(TestDb {
            name,
            cluster,
            port,
        })
    }

    /// A database on chdb.
    pub fn chdb(tag: &str) -> Option<TestDb> {
        let port = chdb()?;
        let name = format!("hs_{tag}_{}_{}", std::process::id(), unique()).to_lowercase();
        Some(TestDb {
            name,
            cluster: false,
            port,
        })
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
            format!("clickhouse://default@127.0.0.1:{}/{}", self.port, self.name)
        }
    }

    /// The HTTP port queries of this database go to.
    pub fn port(&self) -> u16 {
        self.port
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
