//! Faults on the ClickHouse cluster (its own test binary: it stops a server of the shared
//! test cluster, which the other ClickHouse tests must not see): a replica killed with SIGKILL
//! in the middle of the ingest, batches retried until stored as the collector's spool does,
//! and every message stored exactly once, also on the replica once it is back.

#[path = "suite/ch_harness.rs"]
mod ch_harness;
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ch_harness::{ping, sql, TestDb, CLUSTER};
use common::*;
use store::clickhouse::{ChConfig, ChStore};
use store::{MessageFilter, Record, Store};

fn scratch() -> PathBuf {
    PathBuf::from(
        std::env::var("HEPSTACK_CH_DIR").unwrap_or_else(|_| "/tmp/hepstack-clickhouse".into()),
    )
}

/// Retries a batch until the store takes it, as the spool replays it.
fn store_until_ok(store: &ChStore, batch: &[Record]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut failures = 0;
    loop {
        match store.insert_batch(batch) {
            Ok(o) => {
                assert_eq!(o.stored, batch.len());
                return failures;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "never stored: {e}");
                failures += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn local_count(port: u16, db: &str) -> Option<u64> {
    sql(
        port,
        &format!(
            "SELECT (SELECT count() FROM {db}.sip_local) + (SELECT count() FROM {db}.logs_local)"
        ),
    )
    .ok()?
    .trim()
    .parse()
    .ok()
}

#[test]
fn a_replica_killed_mid_ingest_loses_and_duplicates_nothing() {
    let Some(db) = TestDb::new("replica_kill", true) else {
        return;
    };
    let store = ChStore::open(ChConfig {
        // Through shard 2's first replica; shard 1's first replica is the victim.
        url: format!(
            "clickhouse://default@127.0.0.1:{},127.0.0.1:{}/{}?cluster=hep",
            CLUSTER[2], CLUSTER[3], db.name
        ),
        connect_timeout_ms: 500,
        query_timeout_ms: 10_000,
        ..ChConfig::default()
    })
    .unwrap();
    let batches: Vec<Vec<Record>> = (0..30)
        .map(|b| {
            (0..200)
                .map(|i| {
                    let n = b * 200 + i;
                    let mut r = sip_record(T0 + n, &format!("call-{n}"), "INVITE", None, "INVITE");
                    r.correlation_id = Some(format!("call-{}", n / 2));
                    r
                })
                .chain(std::iter::once(event_record(
                    T0 + b,
                    100,
                    &format!("log-{b}"),
                    "{}",
                )))
                .collect()
        })
        .collect();
    let sent: usize = batches.iter().map(Vec::len).sum();
    let pid_file = scratch().join("s1r1/pid");
    let mut failures = 0;
    for (i, batch) in batches.iter().enumerate() {
        if i == 10 {
            let pid = std::fs::read_to_string(&pid_file).expect("s1r1 pid file");
            let status = Command::new("kill")
                .args(["-KILL", pid.trim()])
                .status()
                .expect("kill");
            assert!(status.success());
        }
        if i == 20 {
            let status = Command::new("bash")
                .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/clickhouse.sh"))
                .status()
                .expect("restart");
            assert!(status.success() && ping(CLUSTER[0]));
        }
        failures += store_until_ok(&store, batch);
    }
    // Reads prefer each shard's first replica: the restarted one may still be fetching the
    // parts written while it was down, so the total converges (never above what was sent).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let total = store.messages(&MessageFilter::default()).unwrap().total;
        assert!(total <= sent as u64, "duplicates: {total} > {sent}");
        if total == sent as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{total} of {sent} stored ({failures} failed attempts were retried)"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The killed replica catches up from its peer: both replicas of shard 1 agree.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let a = local_count(CLUSTER[0], &db.name);
        let b = local_count(CLUSTER[1], &db.name);
        if a.is_some() && a == b {
            break;
        }
        assert!(Instant::now() < deadline, "replicas differ: {a:?} vs {b:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let s1 = local_count(CLUSTER[1], &db.name).unwrap();
    let s2 = local_count(CLUSTER[3], &db.name).unwrap();
    assert_eq!(s1 + s2, sent as u64);
}
