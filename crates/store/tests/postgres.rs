//! The PostgreSQL store against a real server: the shared suite, the HOMER layout (golden
//! schema and rows), partitions on demand, bad rows, outages, retention as a non-superuser.

mod common;
#[path = "suite/pg_harness.rs"]
mod pg_harness;
mod suite;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use pg_harness::{Server, TestDb};
use store::postgres::{CopyFormat, PartitionSteps, PgConfig, PgStore};
use store::{MessageFilter, Store, StoreError};

fn config(db: &TestDb) -> PgConfig {
    PgConfig {
        url: db.url(),
        ..PgConfig::default()
    }
}

fn open(db: &TestDb) -> PgStore {
    PgStore::open(config(db)).unwrap()
}

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(db) = TestDb::new(stringify!($name)) else { return };
                suite::$name(&open(&db));
            }
        )*
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

#[test]
fn text_copy_round_trips_too() {
    let Some(db) = TestDb::new("text_copy") else {
        return;
    };
    let store = PgStore::open(PgConfig {
        copy_format: CopyFormat::Text,
        ..config(&db)
    })
    .unwrap();
    suite::odd_records_round_trip_exactly(&store);
    let Some(db) = TestDb::new("text_copy_real") else {
        return;
    };
    let store = PgStore::open(PgConfig {
        copy_format: CopyFormat::Text,
        ..config(&db)
    })
    .unwrap();
    suite::real_kamailio_traffic_round_trips(&store);
}

#[test]
fn a_bad_row_is_rejected_alone() {
    let Some(db) = TestDb::new("bad_row") else {
        return;
    };
    let store = PgStore::open(PgConfig {
        max_raw_bytes: 1000,
        ..config(&db)
    })
    .unwrap();
    // PostgreSQL text cannot hold NUL: the server refuses this row inside the COPY, and the
    // bisection finds it.
    let refused = sip_record(T0 + 3, "nul\u{0}sid", "INVITE", None, "INVITE");
    suite::a_bad_row_is_rejected_alone(&store, refused);
    // One refused row among many, in several tables.
    let mut batch: Vec<store::Record> = (0..500)
        .map(|i| sip_record(T0 + 10 + i, &format!("c{i}"), "INVITE", None, "INVITE"))
        .collect();
    batch.extend((0..100).map(|i| event_record(T0 + 10 + i, 5, &format!("r{i}"), "{}")));
    batch[317].sid = "bad\u{0}".into();
    let outcome = store.insert_batch(&batch).unwrap();
    assert_eq!(outcome.stored, 599);
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].0, 317);
    assert!(
        outcome.rejected[0].1.contains("0x00"),
        "{:?}",
        outcome.rejected
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM hep_proto_1_call").unwrap(),
        "501"
    );
}

/// The store creates a missing database and is usable the moment `open` returns. The failed
/// first connect arms the pool's backoff, and a CREATE DATABASE that takes less than the
/// first backoff step used to end inside it: the store then looked unreachable and
/// `hepstack serve` failed to create its admin user (seen in CI on a fast machine).
#[test]
fn a_missing_database_is_created_and_usable_at_once() {
    for i in 0..3 {
        let Some(db) = TestDb::new(&format!("created_{i}")) else {
            return;
        };
        db.server
            .psql(
                "postgres",
                &format!("DROP DATABASE {} WITH (FORCE)", db.name),
            )
            .expect("drop");
        let store = open(&db);
        assert_eq!(store.user_count().expect("usable at once"), 0);
    }
}

#[test]
fn users_and_settings_list_delete_and_survive_reopen() {
    let Some(db) = TestDb::new("users") else {
        return;
    };
    suite::users_and_settings_list_delete_and_survive_reopen(&|| {
        Box::new(open(&db)) as Box<dyn Store>
    });
}

#[test]
fn partitions_are_created_on_demand_for_any_timestamp() {
    let Some(db) = TestDb::new("any_time") else {
        return;
    };
    let store = open(&db);
    let times = [
        -62_135_596_800_000_000, // 0001-01-01
        -1,                      // 1969-12-31T23:59:59.999999
        0,
        631_152_000_000_000, // 1990
        T0 + 59 * 60 * 1_000_000 + 999_999,
        4_102_444_800_000_000,   // 2100
        253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
    ];
    let mut batch: Vec<store::Record> = times
        .iter()
        .enumerate()
        .map(|(i, t)| sip_record(*t, &format!("t{i}"), "INVITE", None, "INVITE"))
        .collect();
    batch.push(event_record(T0, 100, "log", "line"));
    batch.push(event_record(T0, 54, "isup", r#"{"cic":7,"opc":20,"dpc":10,"msg_name":"IAM","called_number":{"num":"123"},"calling_number":{"num":"456"}}"#));
    batch.push(event_record(T0, 34, "other", "{}"));
    batch.push(sip_record(i64::MIN, "too-old", "INVITE", None, "INVITE"));
    batch.push(sip_record(
        253_402_300_800_000_000,
        "too-new",
        "INVITE",
        None,
        "INVITE",
    ));
    let outcome = store.insert_batch(&batch).unwrap();
    assert_eq!(outcome.stored, times.len() + 3, "{:?}", outcome.rejected);
    let rejected: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, [times.len() + 3, times.len() + 4]);
    let parts = db
        .psql("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 'hep_proto_1_call_%' AND relkind = 'r'")
        .unwrap();
    for name in [
        "hep_proto_1_call_00010101_0000",
        "hep_proto_1_call_19691231_2300",
        "hep_proto_1_call_19700101_0000",
        "hep_proto_1_call_19900101_0000",
        "hep_proto_1_call_20261123_0000",
        "hep_proto_1_call_21000101_0000",
        "hep_proto_1_call_99991231_2300",
    ] {
        assert!(
            parts.split(',').any(|p| p == name),
            "{name} missing in {parts}"
        );
    }
    // ISUP rows carry heplify-server's ISUP keys; other types go to hep_proto_35_default.
    assert_eq!(
        db.psql("SELECT data_header->>'callid' || ' ' || (data_header->>'called_number') FROM hep_proto_54_default").unwrap(),
        "10:20:7 123"
    );
    assert_eq!(
        db.psql("SELECT sid FROM hep_proto_35_default").unwrap(),
        "other"
    );
    // Everything reads back, in time order.
    let all = suite::all_messages(&store);
    assert_eq!(all.len(), times.len() + 3);
    let mut got: Vec<i64> = all.iter().map(|m| m.record.time_us).collect();
    got.sort();
    let mut want: Vec<i64> = times.to_vec();
    want.extend([T0; 3]);
    want.sort();
    assert_eq!(got, want);
}

/// The HOMER layout: parent tables, columns and the partition/index set of heplify-server.
#[test]
fn homer_layout_matches_heplify_server_and_the_golden_dump() {
    let Some(db) = TestDb::new("golden") else {
        return;
    };
    let store = open(&db);
    let records = sample_records("kamailio-hep3-udp");
    assert_eq!(store.insert_batch(&records).unwrap().stored, records.len());
    // Columns, exactly heplify-server's.
    let columns = db
        .psql(
            "SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', ' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_name = 'hep_proto_1_call'",
        )
        .unwrap();
    assert_eq!(
        columns,
        "id bigint NO, sid character varying NO, create_date timestamp with time zone NO, \
         protocol_header jsonb NO, data_header jsonb NO, raw character varying NO"
    );
    let parents = db
        .psql("SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class WHERE relkind = 'p'")
        .unwrap();
    assert_eq!(
        parents,
        "hep_proto_100_default hep_proto_1_call hep_proto_1_default hep_proto_1_registration \
         hep_proto_35_default hep_proto_53_default hep_proto_54_default hep_proto_5_default"
    );
    // The index set of a SIP partition, as heplify-server's rotator creates it.
    let part = db
        .psql("SELECT min(relname) FROM pg_class WHERE relname ~ '^hep_proto_1_call_[0-9]{8}_[0-9]{4}$'")
        .unwrap();
    let indexes = db
        .psql(&format!(
            "SELECT string_agg(substr(indexname, {}), ' ' ORDER BY indexname) FROM pg_indexes WHERE tablename = '{part}'",
            part.len() + 2
        ))
        .unwrap();
    assert_eq!(
        indexes,
        "auth_user callid correlation_id create_date dstip from_user method pid_user ruri_domain ruri_user sid srcip to_user"
    );
    // HOMER keys of a SIP row and of a log row.
    let keys = db
        .psql("SELECT string_agg(k, ' ' ORDER BY k) FROM (SELECT DISTINCT jsonb_object_keys(protocol_header) k FROM hep_proto_1_call) s")
        .unwrap();
    assert_eq!(
        keys,
        "captureId correlation_id dstIp dstPort hepstack payloadType protocol protocolFamily srcIp srcPort timeSeconds timeUseconds"
    );
    let keys = db
        .psql("SELECT string_agg(k, ' ' ORDER BY k) FROM (SELECT DISTINCT jsonb_object_keys(data_header) k FROM hep_proto_1_call) s")
        .unwrap();
    assert_eq!(
        keys,
        "callid cseq from_tag from_user method node ruri_domain ruri_user to_user user_agent"
    );
    assert_eq!(
        db.psql("SELECT DISTINCT string_agg(k, ' ' ORDER BY k) FROM (SELECT id, jsonb_object_keys(data_header) k FROM hep_proto_100_default) s GROUP BY id")
            .unwrap(),
        "node proto"
    );
    // Replies carry the status code in `method`.
    assert!(
        db.psql("SELECT count(*) FROM hep_proto_1_call WHERE data_header->>'method' = '200'")
            .unwrap()
            .parse::<u32>()
            .unwrap()
            > 0
    );
    // The full dump against the golden files (UPDATE_GOLDEN=1 rewrites them).
    let schema = db
        .psql(
            "SET TIME ZONE 'UTC'; SELECT string_agg(line, E'\\n' ORDER BY line) FROM ( \
               SELECT 'table ' || c.relname || ' ' || c.relkind::text || coalesce(' ' || pg_get_expr(c.relpartbound, c.oid), '') AS line \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
               UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
               UNION ALL SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') \
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE '%\\_2%') s",
        )
        .unwrap();
    let rows = db
        .psql(
            "SET TIME ZONE 'UTC'; SELECT string_agg(line, E'\\n' ORDER BY line) FROM ( \
               SELECT tableoid::regclass::text || ' ' || sid || ' ' || create_date::text || ' ' || protocol_header::text || ' ' || data_header::text || ' ' || md5(raw) AS line \
                 FROM hep_proto_1_call UNION ALL SELECT tableoid::regclass::text || ' ' || sid || ' ' || create_date::text || ' ' || protocol_header::text || ' ' || data_header::text || ' ' || md5(raw) FROM hep_proto_1_registration \
                 UNION ALL SELECT tableoid::regclass::text || ' ' || sid || ' ' || create_date::text || ' ' || protocol_header::text || ' ' || data_header::text || ' ' || md5(raw) FROM hep_proto_1_default \
                 UNION ALL SELECT tableoid::regclass::text || ' ' || sid || ' ' || create_date::text || ' ' || protocol_header::text || ' ' || data_header::text || ' ' || md5(raw) FROM hep_proto_100_default \
                 UNION ALL SELECT tableoid::regclass::text || ' ' || sid || ' ' || create_date::text || ' ' || protocol_header::text || ' ' || data_header::text || ' ' || md5(raw) FROM hep_proto_5_default) s",
        )
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (file, got) in [
        ("postgres-schema.txt", &schema),
        ("postgres-rows.txt", &rows),
    ] {
        let path = dir.join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, format!("{got}\n")).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 once)", path.display()));
        assert_eq!(
            got.trim_end(),
            want.trim_end(),
            "{file} differs from the golden file"
        );
    }
}

#[test]
fn concurrent_writers_use_several_connections() {
    let Some(db) = TestDb::new("concurrent") else {
        return;
    };
    let store = std::sync::Arc::new(open(&db));
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for b in 0..10 {
                    let batch: Vec<store::Record> = (0..200)
                        .map(|i| {
                            let t = T0 + (w * 100_000 + b * 1000 + i) * 1000;
                            sip_record(t, &format!("w{w}-b{b}-{i}"), "REGISTER", None, "REGISTER")
                        })
                        .collect();
                    assert_eq!(store.insert_batch(&batch).unwrap().stored, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        db.psql("SELECT count(*) FROM hep_proto_1_registration")
            .unwrap(),
        "8000"
    );
    let page = store
        .messages(&MessageFilter {
            limit: 10,
            ..MessageFilter::default()
        })
        .unwrap();
    assert_eq!(page.total, 8000);
}

#[test]
fn down_at_start_and_restarted_mid_load_loses_nothing_retried() {
    let Some(mut server) = Server::throwaway() else {
        return;
    };
    let port = server.port;
    let url =
        format!("postgres://postgres:hunter2secret@127.0.0.1:{port}/homer_data?sslmode=disable");
    let cfg = PgConfig {
        url: url.clone(),
        connect_timeout_ms: 1000,
        max_backoff_ms: 500,
        ..PgConfig::default()
    };
    server.cluster().unwrap().stop();
    // Down at start: the store opens degraded and answers "unavailable" fast.
    let store = PgStore::open(cfg).expect("opens while the server is down");
    let started = Instant::now();
    let err = store
        .insert_batch(&[sip_record(T0, "a", "INVITE", None, "INVITE")])
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains("hunter2secret"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Up: the database is created and the batch goes in.
    assert!(server.cluster().unwrap().start());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut retried = 0;
    let mut stored = 0;
    let mut write = |batch: &[store::Record]| loop {
        match store.insert_batch(batch) {
            Ok(o) => return o.stored,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                retried += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e}"),
        }
    };
    stored += write(&[sip_record(T0, "a", "INVITE", None, "INVITE")]);
    // Restarted between batches: the broken connections are dropped, nothing is lost.
    for round in 0..3 {
        let batch: Vec<store::Record> = (0..100)
            .map(|i| {
                sip_record(
                    T0 + round * 1000 + i,
                    &format!("r{round}-{i}"),
                    "INVITE",
                    None,
                    "INVITE",
                )
            })
            .collect();
        stored += write(&batch);
        server.cluster().unwrap().stop();
        assert!(matches!(
            store.insert_batch(&batch[..1]),
            Err(StoreError::Unavailable(_))
        ));
        assert!(server.cluster().unwrap().start());
    }
    assert_eq!(stored, 301);
    assert!(retried > 0 || stored == 301);
    let count = server
        .psql("homer_data", "SELECT count(*) FROM hep_proto_1_call")
        .unwrap();
    assert_eq!(count, "301");
}

#[test]
fn retention_as_a_non_superuser_owning_only_its_database() {
    let Some(server) = Server::get() else { return };
    let role = format!("hs_role_{}", std::process::id());
    let _ = server.psql("postgres", &format!("DROP ROLE IF EXISTS {role}"));
    server
        .psql(
            "postgres",
            &format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"),
        )
        .unwrap();
    let db_name = format!("hs_retention_{}", std::process::id());
    let _ = server.psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
    );
    server
        .psql(
            "postgres",
            &format!("CREATE DATABASE {db_name} OWNER {role}"),
        )
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let url = format!(
            "postgres://{role}@{}:{}/{db_name}?sslmode=disable",
            server.host, server.port
        );
        let now = T0 + 10 * DAY_US + 12 * HOUR_US;
        let store = PgStore::open(PgConfig {
            url,
            retention_days: 3,
            create_ahead_days: 1,
            retention_by_table: [("hep_proto_1_registration".to_string(), 1)].into(),
            partition_steps: PartitionSteps {
                sip_minutes: 60,
                ..PartitionSteps::default()
            },
            ..PgConfig::default()
        })
        .unwrap();
        let mut batch = Vec::new();
        for day in 0..11 {
            let t = T0 + day * DAY_US;
            batch.push(sip_record(
                t,
                &format!("call-{day}"),
                "INVITE",
                None,
                "INVITE",
            ));
            batch.push(sip_record(
                t,
                &format!("reg-{day}"),
                "REGISTER",
                None,
                "REGISTER",
            ));
            batch.push(event_record(t, 100, &format!("log-{day}"), "line"));
        }
        assert_eq!(store.insert_batch(&batch).unwrap().stored, 33);
        let report = store.enforce_retention(now).unwrap();
        // Calls: 3 days; registrations: 1 day; logs: 3 days (6 h partitions).
        let left = |table: &str| {
            server
                .psql(
                    &db_name,
                    &format!("SELECT string_agg(sid, ' ' ORDER BY create_date) FROM {table}"),
                )
                .unwrap()
        };
        // A partition goes when its end is older than the retention (now − 3 days = Nov 30
        // 12:00: the partitions of Nov 30 00:00 end before that).
        assert_eq!(left("hep_proto_1_call"), "call-8 call-9 call-10");
        assert_eq!(left("hep_proto_1_registration"), "reg-10");
        assert_eq!(left("hep_proto_100_default"), "log-8 log-9 log-10");
        assert_eq!(
            report.partitions_dropped.len(),
            8 + 10 + 8,
            "{:?}",
            report.partitions_dropped
        );
        assert!(report
            .partitions_dropped
            .contains(&"hep_proto_1_call_20261123_0000".to_string()));
        // Created ahead: every hour of the next day.
        let ahead = server
            .psql(
                &db_name,
                "SELECT count(*) FROM pg_class WHERE relname ~ '^hep_proto_1_call_2026120[34]_[0-9]{4}$' AND relkind = 'r'",
            )
            .unwrap();
        assert_eq!(
            ahead, "26",
            "12:00 on Dec 3 to 12:00 on Dec 4, and the rows' partition of Dec 3 00:00"
        );
        // A second pass has nothing to do.
        assert!(store
            .enforce_retention(now)
            .unwrap()
            .partitions_dropped
            .is_empty());
        // By size: a tiny limit drops the oldest partitions but never the current ones.
        let store = PgStore::open(PgConfig {
            url: format!(
                "postgres://{role}@{}:{}/{db_name}?sslmode=disable",
                server.host, server.port
            ),
            retention_days: 0,
            max_database_bytes: 1,
            create_ahead_days: 0,
            ..PgConfig::default()
        })
        .unwrap();
        let report = store.enforce_retention(now).unwrap();
        assert!(!report.partitions_dropped.is_empty());
        assert!(report.bytes_freed > 0);
        assert_eq!(left("hep_proto_1_call"), "");
        let current = server
            .psql(
                &db_name,
                "SELECT count(*) FROM pg_class WHERE relname = 'hep_proto_1_call_20261203_1200'",
            )
            .unwrap();
        assert_eq!(current, "1", "the partition holding now stays");
    });
    let _ = server.psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
    );
    let _ = server.psql("postgres", &format!("DROP ROLE IF EXISTS {role}"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn unreachable_server_reports_unavailable_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = PgStore::open(PgConfig {
        url: format!("postgres://u:pa55w0rd-xyz@127.0.0.1:{port}/homer_data"),
        connect_timeout_ms: 500,
        ..PgConfig::default()
    })
    .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.messages(&MessageFilter::default()).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(!format!("{err:?}").contains("pa55w0rd"), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    let names: BTreeSet<&str> = ["postgres"].into();
    assert!(names.contains(store.backend()));
}

/// Writers of several stores (as several collectors on one database would be) creating the
/// same new partitions at the same instant: every batch is stored and no DDL statement fails
/// (before the advisory lock, the loser of each race aborted on `duplicate key value violates
/// unique constraint "pg_class_relname_nsp_index"`, counted as a rolled-back transaction).
#[test]
fn concurrent_writers_create_the_same_partition_without_errors() {
    let Some(db) = TestDb::new("ddl_race") else {
        return;
    };
    let stores: Vec<PgStore> = (0..6).map(|_| open(&db)).collect();
    let rollbacks = || -> i64 {
        db.psql(
            "SELECT pg_stat_force_next_flush(); SELECT xact_rollback FROM pg_stat_database \
             WHERE datname = current_database()",
        )
        .unwrap()
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0)
    };
    let before = rollbacks();
    for round in 0..8i64 {
        let time = T0 + 30 * DAY_US + round * DAY_US;
        let barrier = std::sync::Barrier::new(stores.len());
        std::thread::scope(|s| {
            for (i, store) in stores.iter().enumerate() {
                let barrier = &barrier;
                s.spawn(move || {
                    let batch = vec![
                        sip_record(time, &format!("race-{round}-{i}"), "INVITE", None, "INVITE"),
                        sip_record(
                            time,
                            &format!("race-r-{round}-{i}"),
                            "REGISTER",
                            None,
                            "REGISTER",
                        ),
                    ];
                    barrier.wait();
                    let out = store.insert_batch(&batch).unwrap();
                    assert_eq!(out.stored, 2, "{:?}", out.rejected);
                });
            }
        });
    }
    drop(stores);
    let n: usize = db
        .psql("SELECT count(*) FROM hep_proto_1_call")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(n, 6 * 8);
    // Statistics reach pg_stat_database when each backend flushes them, at its exit at the
    // latest: the stores' connections are closed.
    std::thread::sleep(Duration::from_millis(1500));
    let after = rollbacks();
    assert_eq!(after, before, "DDL statements failed and were rolled back");
}

/// homer-app filters on exactly heplify-server's index expressions; the partitions hepstack
/// creates must keep each of those filters an index scan. PostgreSQL uses an expression index
/// only for the very same expression, so a drifted index definition (another operator, a
/// cast, another key) would turn homer-app's searches into sequential scans of every partition
/// of the window: `EXPLAIN` of each filter (sequential scans priced out, so the plan shows
/// whether an index *can* serve it) names the partition's index.
#[test]
fn homer_app_filters_stay_on_the_partition_indexes() {
    let Some(db) = TestDb::new("explain") else {
        return;
    };
    let store = open(&db);
    let rows: Vec<_> = (0..200)
        .map(|i| {
            sip_record(
                T0 + i * 1_000_000,
                &format!("ex-{i}@h"),
                "INVITE",
                None,
                "INVITE",
            )
        })
        .collect();
    assert_eq!(store.insert_batch(&rows).unwrap().stored, rows.len());
    db.psql("ANALYZE").unwrap();
    let partition: String = db
        .psql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'hep_proto_1_call'::regclass LIMIT 1",
        )
        .unwrap();
    assert!(partition.starts_with("hep_proto_1_call_"), "{partition}");
    let window =
        "create_date >= '2026-11-23 00:00:00+00' AND create_date < '2026-11-24 00:00:00+00'";
    for (index, filter) in [
        ("sid", "sid = 'ex-7@h'".to_string()),
        ("sid", "sid IN ('ex-7@h', 'ex-8@h')".to_string()),
        ("callid", "data_header->>'callid' = 'ex-7@h'".to_string()),
        (
            "from_user",
            "data_header->>'from_user' = 'alice'".to_string(),
        ),
        ("to_user", "data_header->>'to_user' = 'bob'".to_string()),
        ("ruri_user", "data_header->>'ruri_user' = 'bob'".to_string()),
        (
            "ruri_domain",
            "data_header->>'ruri_domain' = 'example.com'".to_string(),
        ),
        ("pid_user", "data_header->>'pid_user' = 'x'".to_string()),
        ("auth_user", "data_header->>'auth_user' = 'x'".to_string()),
        ("method", "data_header->>'method' = 'INVITE'".to_string()),
        (
            "srcIp",
            "protocol_header->>'srcIp' = '10.0.0.1'".to_string(),
        ),
        (
            "dstIp",
            "protocol_header->>'dstIp' = '10.0.0.2'".to_string(),
        ),
        (
            "correlation_id",
            "protocol_header->>'correlation_id' = 'ex-7@h'".to_string(),
        ),
        ("create_date", window.to_string()),
    ] {
        let plan = db
            .psql(&format!(
                "SET enable_seqscan = off; EXPLAIN SELECT id, sid, create_date, protocol_header, \
                 data_header, raw FROM hep_proto_1_call WHERE {filter}"
            ))
            .unwrap();
        let name = format!("{partition}_{index}");
        assert!(
            plan.contains("Index")
                && plan
                    .split_whitespace()
                    .any(|t| t.eq_ignore_ascii_case(&name)),
            "{filter}: not served by {name}:\n{plan}"
        );
    }
}
