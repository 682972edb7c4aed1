//! The ClickHouse store against real servers (Debian's 18.16, started by
//! `scripts/clickhouse.sh`): the shared suite on a single node and on the 2 x 2 replicated
//! cluster, replayed batches stored once, retention by dropped day partitions, sharding by call.

#[path = "suite/ch_harness.rs"]
mod ch_harness;
mod common;
mod suite;

use ch_harness::{sql, TestDb, CLUSTER};
use common::*;
use store::clickhouse::{ChConfig, ChStore};
use store::{MessageFilter, Store, StoreError};

fn config(db: &TestDb) -> ChConfig {
    ChConfig {
        url: db.url(),
        ..ChConfig::default()
    }
}

fn open(db: &TestDb) -> ChStore {
    ChStore::open(config(db)).unwrap()
}

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {
        mod single {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let Some(db) = TestDb::new(stringify!($name), false) else { return };
                    suite::$name(&open(&db));
                }
            )*
        }
        mod cluster {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let Some(db) = TestDb::new(stringify!($name), true) else { return };
                    suite::$name(&open(&db));
                }
            )*
        }
        /// The same DDL (its modern column set), inserts and queries on a current
        /// ClickHouse engine: chdb.
        mod chdb {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let Some(db) = TestDb::chdb(stringify!($name)) else { return };
                    suite::$name(&open(&db));
                }
            )*
        }
    };
}

suite_tests!(
    odd_records_round_trip_exactly,
    real_kamailio_traffic_round_trips,
    every_filter_field,
    json_path_search,
    invalid_queries_are_reported,
    call_summaries_from_real_traffic,
    call_summary_status_and_duration,
    call_summary_covers_the_whole_call_beyond_the_window,
    call_flow_follows_legs_both_ways_and_transitively,
    call_flow_of_real_traffic_has_the_logs,
    scan_reads_every_record_once_in_order,
    method_status_lists_and_typed_text,
    calls_by_final_status,
);

fn bad_row(cluster: bool) {
    let Some(db) = TestDb::new("bad_row", cluster) else {
        return;
    };
    let store = ChStore::open(ChConfig {
        max_raw_bytes: 1000,
        ..config(&db)
    })
    .unwrap();
    // Before the epoch: no day partition can hold it.
    suite::a_bad_row_is_rejected_alone(
        &store,
        sip_record(-DAY_US, "before-1970", "INVITE", None, "INVITE"),
    );
}

#[test]
fn a_bad_row_is_rejected_alone_single() {
    bad_row(false);
}

#[test]
fn a_bad_row_is_rejected_alone_cluster() {
    bad_row(true);
}

fn users(cluster: bool) {
    let Some(db) = TestDb::new("users", cluster) else {
        return;
    };
    let url = db.url();
    suite::users_and_settings_list_delete_and_survive_reopen(&|| {
        Box::new(
            ChStore::open(ChConfig {
                url: url.clone(),
                ..ChConfig::default()
            })
            .unwrap(),
        ) as Box<dyn Store>
    });
}

#[test]
fn users_and_settings_single() {
    users(false);
}

#[test]
fn users_and_settings_cluster() {
    users(true);
    // Replicated to every node: another shard's node answers the login too.
    let Some(db) = TestDb::new("users_everywhere", true) else {
        return;
    };
    let store = open(&db);
    store
        .put_user(&store::User {
            name: "ops".into(),
            password_hash: "h".into(),
            admin: true,
        })
        .unwrap();
    let other = ChStore::open(ChConfig {
        url: format!(
            "clickhouse://default@127.0.0.1:{}/{}?cluster=hep",
            CLUSTER[3], db.name
        ),
        ..ChConfig::default()
    })
    .unwrap();
    let mut found = None;
    for _ in 0..100 {
        found = other.user("ops").unwrap();
        if found.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(found.map(|u| u.admin), Some(true));
}

/// A batch sent again (the spool replaying it after an error the store could not tell apart
/// from a failure) is stored once: the cluster's replicated tables drop the identical blocks,
/// and so does a second store handle (another process) writing to them.
#[test]
fn a_replayed_batch_is_stored_once_in_the_cluster() {
    let Some(db) = TestDb::new("replay", true) else {
        return;
    };
    replayed_batch(&db, true);
}

/// On the single 18.16 node (plain MergeTree, no server-side deduplication) the store skips the
/// blocks it had stored itself.
#[test]
fn a_replayed_batch_is_stored_once_on_a_single_node() {
    let Some(db) = TestDb::new("replay_single", false) else {
        return;
    };
    replayed_batch(&db, false);
}

fn replayed_batch(db: &TestDb, server_dedup: bool) {
    let store = open(db);
    let records = sample_records("kamailio-hep3-udp");
    let mut batch = records.clone();
    batch.push(event_record(T0, 100, "log-x", "{\"m\":1}"));
    batch.push(event_record(T0, 5, "rtcp-x", "{\"m\":2}"));
    assert_eq!(store.insert_batch(&batch).unwrap().stored, batch.len());
    for _ in 0..3 {
        assert_eq!(store.insert_batch(&batch).unwrap().stored, batch.len());
    }
    if server_dedup {
        // A restarted collector (a new handle, nothing remembered) replays it too.
        assert_eq!(open(db).insert_batch(&batch).unwrap().stored, batch.len());
    }
    let total = store.messages(&MessageFilter::default()).unwrap().total;
    assert_eq!(total, batch.len() as u64);
    assert_eq!(suite::all_messages(&store).len(), batch.len());
    // A different batch is not taken for a replay.
    store
        .insert_batch(&[event_record(T0 + 1, 100, "log-y", "{}")])
        .unwrap();
    assert_eq!(
        store.messages(&MessageFilter::default()).unwrap().total,
        batch.len() as u64 + 1
    );
}

/// A call's legs, reports and logs land on one shard (sharded by correlation group), and
/// the rows are spread over both shards.
#[test]
fn calls_are_sharded_by_correlation_group() {
    let Some(db) = TestDb::new("sharding", true) else {
        return;
    };
    let store = open(&db);
    let mut batch = Vec::new();
    for i in 0..40 {
        let aleg = format!("a-{i}");
        let mut a = sip_record(T0 + i, &aleg, "INVITE", None, "INVITE");
        a.correlation_id = Some(aleg.clone());
        let mut b = sip_record(T0 + i, &format!("b-{i}"), "INVITE", None, "INVITE");
        b.correlation_id = Some(aleg.clone());
        let mut log = event_record(T0 + i, 100, &aleg, "{}");
        log.correlation_id = Some(aleg.clone());
        batch.extend([a, b, log]);
    }
    assert_eq!(store.insert_batch(&batch).unwrap().stored, 120);
    let shard_rows = |port: u16| -> Vec<String> {
        let q = format!(
            "SELECT correlation_id FROM {db}.sip_local UNION ALL SELECT correlation_id FROM {db}.logs_local FORMAT TSV",
            db = db.name
        );
        sql(port, &q).unwrap().lines().map(str::to_string).collect()
    };
    let s1 = shard_rows(CLUSTER[0]);
    let s2 = shard_rows(CLUSTER[2]);
    assert_eq!(s1.len() + s2.len(), 120);
    assert!(
        !s1.is_empty() && !s2.is_empty(),
        "{} / {}",
        s1.len(),
        s2.len()
    );
    for group in &s1 {
        assert!(!s2.contains(group), "{group} on both shards");
    }
    // Each group's three rows are together.
    for group in &s1 {
        assert_eq!(s1.iter().filter(|g| *g == group).count(), 3);
    }
}

/// Retention drops whole days, in every shard, and keeps the recent ones.
fn retention(cluster: bool) {
    let Some(db) = TestDb::new("retention", cluster) else {
        return;
    };
    let store = ChStore::open(ChConfig {
        retention_days: 2,
        ..config(&db)
    })
    .unwrap();
    let now = T0 + 10 * DAY_US;
    let mut batch = Vec::new();
    for d in 0..10 {
        for i in 0..5 {
            batch.push(sip_record(
                T0 + d * DAY_US + i,
                &format!("c{d}-{i}"),
                "INVITE",
                None,
                "INVITE",
            ));
        }
    }
    store.insert_batch(&batch).unwrap();
    let report = store.enforce_retention(now).unwrap();
    assert_eq!(
        report.partitions_dropped.len(),
        8,
        "{:?}",
        report.partitions_dropped
    );
    let left = suite::all_messages(&store);
    // Days 8 and 9 stay (day 8 ended 1 day before now, within 2 days of retention).
    assert_eq!(left.len(), 10);
    assert!(left.iter().all(|m| m.record.time_us >= T0 + 8 * DAY_US));
    assert!(store
        .enforce_retention(now)
        .unwrap()
        .partitions_dropped
        .is_empty());
    assert!(store.stats().unwrap().partitions >= 2);
}

#[test]
fn retention_drops_days_single() {
    retention(false);
}

#[test]
fn retention_drops_days_cluster() {
    retention(true);
}

/// No host answers: the store opens, every call is "unavailable" (the collector spools).
#[test]
fn unreachable_servers_are_unavailable_not_fatal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = ChStore::open(ChConfig {
        url: format!("clickhouse://u:pw@127.0.0.1:{port}/x"),
        connect_timeout_ms: 200,
        ..ChConfig::default()
    })
    .unwrap();
    let err = store
        .insert_batch(&[sip_record(T0, "c", "INVITE", None, "INVITE")])
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains("pw@"), "{err}");
}

/// The first host is down: the second answers.
#[test]
fn a_dead_first_host_fails_over_to_the_next() {
    let Some(db) = TestDb::new("failover", false) else {
        return;
    };
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = ChStore::open(ChConfig {
        url: format!(
            "clickhouse://default@127.0.0.1:{dead},127.0.0.1:{}/{}",
            ch_harness::SINGLE,
            db.name
        ),
        connect_timeout_ms: 500,
        ..ChConfig::default()
    })
    .unwrap();
    assert_eq!(
        store
            .insert_batch(&[sip_record(T0, "c", "INVITE", None, "INVITE")])
            .unwrap()
            .stored,
        1
    );
    assert_eq!(store.messages(&MessageFilter::default()).unwrap().total, 1);
}
