//! The SQLite store against real SQLite files in temporary directories.

mod common;
mod suite;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use common::*;
use store::sqlite::{
    IndexKind, PartitionSpan, ProfileRetention, RawCompression, SqliteConfig, SqliteStore,
};
use store::{MessageFilter, Record, SipFields, Store, StoreError, StoredMessage, User};
use suite::full_record;

fn all_messages(store: &SqliteStore) -> Vec<StoredMessage> {
    let mut out = Vec::new();
    let mut filter = MessageFilter {
        limit: 1000,
        ..MessageFilter::default()
    };
    loop {
        let page = store.messages(&filter).unwrap();
        out.extend(page.items);
        match page.next {
            Some(next) => filter.cursor = Some(next),
            None => return out,
        }
    }
}

/// A fresh store in a temporary directory for one suite test.
fn suite_store(max_raw_bytes: usize) -> (tempfile::TempDir, SqliteStore) {
    suite_store_with_segments(max_raw_bytes, SqliteConfig::default().index_segment_rows)
}

fn suite_store_with_segments(
    max_raw_bytes: usize,
    index_segment_rows: u32,
) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig {
        data_dir: dir.path().into(),
        indexes: IndexKind::ALL.to_vec(),
        max_raw_bytes,
        index_segment_rows,
        ..SqliteConfig::default()
    })
    .unwrap();
    (dir, store)
}

macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_dir, store) = suite_store(SqliteConfig::default().max_raw_bytes);
                suite::$name(&store);
            }
        )*
        mod tiny_index_segments {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let (_dir, store) =
                        suite_store_with_segments(SqliteConfig::default().max_raw_bytes, 3);
                    suite::$name(&store);
                }
            )*
        }
        mod trained_dictionary {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let (dir, store) = suite_store(SqliteConfig::default().max_raw_bytes);
                    train_on_samples(&store);
                    suite::$name(&store);
                    let (rows, with_dict) = raw_codecs(dir.path(), &store);
                    assert!(rows == 0 || with_dict > 0, "no row used the dictionary");
                }
            )*
        }
    };
}

/// Rows in the store's partition files, and how many of them are compressed with a
/// dictionary (codec tag 3).
fn raw_codecs(dir: &std::path::Path, store: &SqliteStore) -> (u64, u64) {
    let (mut rows, mut with_dict) = (0, 0);
    for file in store.partition_files() {
        let conn = rusqlite::Connection::open(dir.join(file)).unwrap();
        let (n, d): (u64, u64) = conn
            .query_row(
                "SELECT count(*), count(*) FILTER (WHERE substr(raw, 1, 1) = x'03') FROM msg",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        rows += n;
        with_dict += d;
    }
    (rows, with_dict)
}

/// The store learns a dictionary from its own traffic on a background thread; rows stored
/// before it are LZ4, rows after it use it and are much smaller; every partition that uses it
/// holds it, so a reopened store (or another process) reads, searches and decodes every row.
#[test]
fn the_raw_dictionary_is_learned_from_the_traffic_and_kept_with_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        data_dir: dir.path().into(),
        dictionary_samples: 200,
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open(config.clone()).unwrap();
    let base = 1_764_000_000_000_000;
    let mut inserted: Vec<Record> = Vec::new();
    let batch = |n: usize, from: usize| -> Vec<Record> {
        (from..from + n)
            .map(|i| {
                let call = format!("call-{i:06}@10.0.0.1");
                let mut r = sip_record(base + i as i64 * 1000, &call, "INVITE", None, "INVITE");
                r.raw = format!(
                    "INVITE sip:+3120{i:07}@example.org SIP/2.0\r\n\
                     Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{:08x}\r\n\
                     From: \"Alice\" <sip:alice{}@example.org>;tag={:x}\r\n\
                     To: <sip:+3120{i:07}@example.org>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
                     Contact: <sip:alice@10.0.0.1:5060>\r\nMax-Forwards: 70\r\n\
                     User-Agent: Phone/2.{}\r\nContent-Type: application/sdp\r\n\
                     Content-Length: 0\r\n\r\n",
                    i * 7919,
                    i % 97,
                    i * 104_729,
                    i % 5
                )
                .into_bytes();
                r
            })
            .collect()
    };
    // Before the first dictionary: LZ4.
    let first = batch(250, 0);
    assert_eq!(store.insert_batch(&first).unwrap().stored, 250);
    inserted.extend(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.raw_dictionary_id().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no dictionary trained"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (rows, with_dict) = raw_codecs(dir.path(), &store);
    assert_eq!((rows, with_dict), (250, 0));
    // After it, in a partition of another hour too.
    let mut later = batch(250, 250);
    for r in later.iter_mut().skip(200) {
        r.time_us += 3_600_000_000;
    }
    assert_eq!(store.insert_batch(&later).unwrap().stored, 250);
    inserted.extend(later);
    let (rows, with_dict) = raw_codecs(dir.path(), &store);
    assert_eq!((rows, with_dict), (500, 250));
    assert_eq!(store.partition_files().len(), 2);
    // Stored bytes per payload byte: before the dictionary, and with it.
    let ratio = |with_dict: bool| -> f64 {
        let (mut stored, mut original) = (0u64, 0u64);
        for file in store.partition_files() {
            let conn = rusqlite::Connection::open(dir.path().join(file)).unwrap();
            let (s, o): (Option<u64>, Option<u64>) = conn
                .query_row(
                    "SELECT sum(length(raw)), sum(raw_len) FROM msg \
                     WHERE (substr(raw, 1, 1) = x'03') = ?1",
                    [with_dict],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            stored += s.unwrap_or(0);
            original += o.unwrap_or(0);
        }
        stored as f64 / original as f64
    };
    let (before, after) = (ratio(false), ratio(true));
    assert!(
        after * 2.0 < before,
        "with the dictionary {after:.2} of the payload, before {before:.2}"
    );
    for file in store.partition_files() {
        let conn = rusqlite::Connection::open(dir.path().join(&file)).unwrap();
        let dicts: u64 = conn
            .query_row("SELECT count(*) FROM raw_dict", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dicts, 1, "{file}");
    }
    drop(store);
    // A new process: nothing trained, everything read from the files.
    let store = SqliteStore::open(config).unwrap();
    assert_eq!(store.raw_dictionary_id(), None);
    let mut back = all_messages(&store);
    back.sort_by_key(|m| m.record.time_us);
    assert_eq!(back.len(), inserted.len());
    for (stored, original) in back.iter().zip(&inserted) {
        assert_eq!(stored.record.raw, original.raw);
    }
    let found = store
        .messages(&MessageFilter {
            text: Some("call-000471@".into()),
            ..MessageFilter::default()
        })
        .unwrap();
    assert_eq!(found.total, 1);
}

/// Trains the store's raw dictionary on the real Kamailio samples, so that the rows a test
/// inserts next are compressed with it.
fn train_on_samples(store: &SqliteStore) {
    let mut samples: Vec<Vec<u8>> = ["kamailio-hep3-udp", "kamailio-hep2-udp"]
        .iter()
        .flat_map(|name| sample_records(name))
        .map(|r| r.raw)
        .collect();
    for entry in std::fs::read_dir(samples_dir("rtpengine-hep3-rtcp")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "hep") {
            samples.push(record_from_hep(&std::fs::read(path).unwrap()).raw);
        }
    }
    store.train_raw_dictionary(&samples).unwrap();
}

// Every suite test runs three times: with the default index segments (the suite's few rows
// share one), with segments of 3 rows, so every segmented index lookup crosses segments, and
// with a trained raw dictionary, so payloads are read back, searched and JSON-decoded through
// it.
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

/// Segmented index lookups return exactly what a scan would, for windows that cut segments
/// anywhere, after batches that fill segments partly, across a reopen, and with rows whose
/// times are out of order within a segment.
#[test]
fn segmented_indexes_find_exactly_the_rows_of_any_window() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        data_dir: dir.path().into(),
        index_segment_rows: 7,
        ..SqliteConfig::default()
    };
    let base = 1_795_910_400_000_000i64; // 2026-11-29T00:00:00Z
                                         // 120 rows, a second apart but shuffled within runs of 5, users alternating.
    let mut rows = Vec::new();
    for i in 0..120i64 {
        let t = base + ((i / 5) * 5 + (4 - i % 5)) * 1_000_000;
        let mut r = sip_record(t, &format!("call-{i}"), "INVITE", None, "INVITE");
        let user = if i % 3 == 0 { "carol" } else { "dave" };
        r.sip.as_mut().unwrap().from_user = Some(user.into());
        rows.push((t, user, r));
    }
    {
        let store = SqliteStore::open(config.clone()).unwrap();
        for chunk in rows[..50].chunks(11) {
            let batch: Vec<Record> = chunk.iter().map(|(_, _, r)| r.clone()).collect();
            assert_eq!(store.insert_batch(&batch).unwrap().stored, batch.len());
        }
    }
    // Reopened: the writer continues the last segment instead of starting over.
    let store = SqliteStore::open(config).unwrap();
    for chunk in rows[50..].chunks(13) {
        let batch: Vec<Record> = chunk.iter().map(|(_, _, r)| r.clone()).collect();
        assert_eq!(store.insert_batch(&batch).unwrap().stored, batch.len());
    }
    for (from, to) in [
        (0, 120),
        (3, 4),
        (6, 8),
        (13, 29),
        (40, 41),
        (55, 99),
        (119, 120),
    ] {
        for user in ["carol", "dave"] {
            let filter = MessageFilter {
                from_us: Some(base + from * 1_000_000),
                to_us: Some(base + to * 1_000_000),
                from_user: Some(user.into()),
                limit: 1000,
                ..MessageFilter::default()
            };
            let page = store.messages(&filter).unwrap();
            let mut got: Vec<i64> = page.items.iter().map(|m| m.record.time_us).collect();
            got.sort();
            let mut want: Vec<i64> = rows
                .iter()
                .filter(|(t, u, _)| {
                    *u == user && *t >= base + from * 1_000_000 && *t < base + to * 1_000_000
                })
                .map(|(t, _, _)| *t)
                .collect();
            want.sort();
            assert_eq!(got, want, "{user} in [{from}, {to})");
            assert_eq!(page.total, want.len() as u64);
        }
    }
}

/// A JSON report that is its own raw payload is stored once (in `raw`), yet reads back and
/// searches exactly like one stored twice; JSON that differs from the raw payload is kept.
#[test]
fn json_that_is_the_raw_payload_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = 1_795_910_400_000_000i64;
    let json = r#"{"type":200,"ssrc":"0x1","report_blocks":[{"fraction_lost":3}]}"#;
    let same = event_record(t, 5, "call-1", json);
    let mut padded = event_record(t + 1, 5, "call-2", json);
    padded.raw = format!("\r\n {json}\n").into_bytes();
    let mut decoded = event_record(t + 2, 100, "call-3", r#"{"text":"boom"}"#);
    decoded.raw = b"boom".to_vec();
    let batch = vec![same.clone(), padded.clone(), decoded.clone()];
    assert_eq!(store.insert_batch(&batch).unwrap().stored, 3);

    let mut got: Vec<Record> = all_messages(&store).into_iter().map(|m| m.record).collect();
    got.sort_by_key(|r| r.time_us);
    assert_eq!(got, batch);

    let filter = MessageFilter {
        json: vec![("payload.report_blocks[0].fraction_lost".into(), "3".into())],
        limit: 10,
        ..MessageFilter::default()
    };
    let found: BTreeSet<String> = store
        .messages(&filter)
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.record.sid)
        .collect();
    assert_eq!(
        found,
        BTreeSet::from(["call-1".to_string(), "call-2".to_string()])
    );

    // On disk: NULL where the JSON is the raw payload, text where it is not.
    drop(store);
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".r7.db"))
        })
        .expect("partition file");
    let conn = rusqlite::Connection::open(file).unwrap();
    let stored: Vec<Option<String>> = conn
        .prepare("SELECT payload_json FROM msg ORDER BY time_us")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        stored,
        vec![None, None, Some(r#"{"text":"boom"}"#.to_string())]
    );
}

#[test]
fn a_bad_row_is_rejected_alone() {
    let (dir, store) = suite_store(1000);
    // A directory where the partition file of 1990-01-01T00 would go: that partition cannot open.
    let blocked = 631_152_000_000_000;
    std::fs::create_dir(dir.path().join("1990-01-01T00.r7.db")).unwrap();
    suite::a_bad_row_is_rejected_alone(
        &store,
        sip_record(blocked, "blocked", "INVITE", None, "INVITE"),
    );
    // Nothing storable because of the store: the batch is to be retried.
    let err = store
        .insert_batch(&[sip_record(
            blocked + 5,
            "blocked-2",
            "INVITE",
            None,
            "INVITE",
        )])
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

/// Rows go in as multi-row statements (`INSERT OR FAIL`, 32 rows each): a row the database
/// refuses in the middle of one is rejected alone, the rows before it in that statement stay
/// stored once, and the rows after it are still stored, in order.
#[test]
fn a_row_the_database_refuses_inside_a_multi_row_insert_is_rejected_alone() {
    let (dir, store) = suite_store(100_000);
    store
        .insert_batch(&[sip_record(T0, "first", "INVITE", None, "INVITE")])
        .unwrap();
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".db") && name != "catalog.db"
        })
        .expect("the partition file");
    // A refusal only this database can make: a trigger that fails the insert of some rows.
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON msg WHEN NEW.sid LIKE 'refused-%' \
             BEGIN SELECT RAISE(FAIL, 'refused by the trigger'); END;",
        )
        .unwrap();
    let refused = [40, 70, 99];
    let batch: Vec<Record> = (0..100)
        .map(|i| {
            let sid = if refused.contains(&i) {
                format!("refused-{i}")
            } else {
                format!("row-{i}")
            };
            sip_record(T0 + 1 + i as i64, &sid, "INVITE", None, "INVITE")
        })
        .collect();
    let outcome = store.insert_batch(&batch).unwrap();
    assert_eq!(outcome.stored, 97);
    let rejected: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, refused);
    assert!(
        outcome
            .rejected
            .iter()
            .all(|(_, why)| why.contains("refused by the trigger")),
        "{:?}",
        outcome.rejected
    );
    // Every other row once, in batch order (ids follow insertion order).
    let mut stored: Vec<(i64, String)> = all_messages(&store)
        .into_iter()
        .map(|m| (m.id, m.record.sid))
        .collect();
    stored.sort();
    let expected: Vec<String> = std::iter::once("first".to_string())
        .chain(
            (0..100)
                .filter(|i| !refused.contains(i))
                .map(|i| format!("row-{i}")),
        )
        .collect();
    assert_eq!(
        stored.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn users_and_settings_list_delete_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    suite::users_and_settings_list_delete_and_survive_reopen(&|| {
        Box::new(common::open(dir.path())) as Box<dyn Store>
    });
}

#[test]
fn the_wal_is_checkpointed_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig {
        data_dir: dir.path().into(),
        wal_checkpoint_kib: 1024,
        write_shards: 1,
        ..SqliteConfig::default()
    })
    .unwrap();
    let wal_bytes = || -> u64 {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".db-wal"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    // Sustained writes into one partition: 24 batches of 1 MiB of incompressible payloads.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut largest = 0;
    for batch in 0..24 {
        let records: Vec<Record> = (0..256)
            .map(|i| {
                let mut r = event_record(T0 + batch * 1000 + i, 100, "wal", "{}");
                r.raw = (0..4096)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                r
            })
            .collect();
        assert_eq!(store.insert_batch(&records).unwrap().stored, 256);
        largest = largest.max(wal_bytes());
    }
    // Twice the checkpoint size after a checkpoint, plus the transaction that crossed it.
    assert!(largest <= 4 << 20, "the WAL reached {largest} bytes");
}

#[test]
fn the_data_dir_and_the_catalog_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let store = common::open(&data);
    store
        .put_user(&User {
            name: "admin".into(),
            password_hash: "$argon2id$…".into(),
            admin: true,
        })
        .unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("catalog.db")), 0o600);
    drop(store);
    // An existing store made readable by others is tightened when opened.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("catalog.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _store = common::open(&data);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("catalog.db")), 0o600);
}

#[test]
fn every_field_round_trips_byte_exact_in_every_compression_mode() {
    for compression in [
        RawCompression::None,
        RawCompression::Lz4,
        RawCompression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteConfig {
            data_dir: dir.path().into(),
            compression,
            ..SqliteConfig::default()
        })
        .unwrap();
        let mut sip_empty = sip_record(T0 + 5, "empty-sip", "OPTIONS", None, "OPTIONS");
        sip_empty.sip = Some(SipFields::default());
        let mut non_sip = event_record(T0 + 6, 100, "log-1", "not json at all \u{0}");
        non_sip.raw = vec![0x00, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1];
        non_sip.node = None;
        non_sip.correlation_id = None;
        let mut empty_raw = event_record(T0 + 7, 53, "dns-1", "{}");
        empty_raw.raw = Vec::new();
        let records = vec![full_record(), sip_empty, non_sip, empty_raw];
        let outcome = store.insert_batch(&records).unwrap();
        assert_eq!(outcome.stored, 4, "{compression:?}: {:?}", outcome.rejected);
        let mut back: Vec<Record> = all_messages(&store).into_iter().map(|m| m.record).collect();
        back.sort_by_key(|r| r.time_us);
        let mut want = records.clone();
        want.sort_by_key(|r| r.time_us);
        assert_eq!(back, want, "{compression:?}");
    }
}

#[test]
fn a_partition_per_timestamp_even_far_in_the_past_or_future() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let y1999 = 930_000_000_000_000; // 1999-06-21T21:20:00Z
    let y2090 = 3_786_912_000_000_000; // 2090-01-01T00:00:00Z
    let y1960 = -315_619_200_000_000; // 1960-01-01T00:00:00Z
    let times = [y1999, T0 + 10, T0 + HOUR_US + 5, y2090, y1960];
    let records: Vec<Record> = times
        .iter()
        .enumerate()
        .map(|(i, t)| sip_record(*t, &format!("c{i}"), "INVITE", None, "INVITE"))
        .collect();
    let outcome = store.insert_batch(&records).unwrap();
    assert_eq!(outcome.stored, 5);
    let files = store.partition_files();
    for name in [
        "1999-06-21T21.r7.db",
        "2026-11-23T00.r7.db",
        "2026-11-23T01.r7.db",
        "2090-01-01T00.r7.db",
        "1960-01-01T00.r7.db",
    ] {
        assert!(
            files.contains(&name.to_string()),
            "{name} missing from {files:?}"
        );
        assert!(dir.path().join(name).is_file());
    }
    assert_eq!(store.stats().unwrap().partitions, 5);
    for t in times {
        let page = store
            .messages(&MessageFilter {
                from_us: Some(t),
                to_us: Some(t + 1),
                ..MessageFilter::default()
            })
            .unwrap();
        assert_eq!(page.total, 1, "at {t}");
        assert_eq!(page.items[0].record.time_us, t);
    }
    // Day partitions are selectable and live next to hour ones.
    drop(store);
    let store = SqliteStore::open(SqliteConfig {
        data_dir: dir.path().into(),
        partition_span: PartitionSpan::Day,
        ..SqliteConfig::default()
    })
    .unwrap();
    store
        .insert_batch(&[sip_record(T0 + 20, "day", "INVITE", None, "INVITE")])
        .unwrap();
    assert!(store
        .partition_files()
        .contains(&"2026-11-23.r7.db".to_string()));
    let day = store
        .messages(&MessageFilter {
            from_us: Some(T0),
            to_us: Some(T0 + DAY_US),
            ..MessageFilter::default()
        })
        .unwrap();
    assert_eq!(day.total, 3);
    assert_eq!(
        day.items
            .iter()
            .map(|m| m.record.sid.as_str())
            .collect::<Vec<_>>(),
        ["c2", "day", "c1"]
    );
}

#[test]
fn retention_by_age_profile_type_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        data_dir: dir.path().into(),
        retention_days: 7,
        retention_by_profile: ProfileRetention {
            registration: Some(1),
            ..ProfileRetention::default()
        },
        retention_by_hep_type: BTreeMap::from([("5".to_string(), 2)]),
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open(config.clone()).unwrap();
    let reg = sip_record(T0, "r", "REGISTER", None, "REGISTER");
    let call = sip_record(T0, "c", "INVITE", None, "INVITE");
    let rtcp = event_record(T0, 5, "c", "{}");
    let reg_log = event_record(T0, 100, "l", "x"); // default profile → 7 days
    store.insert_batch(&[reg, call, rtcp, reg_log]).unwrap();
    let mut files = store.partition_files();
    files.sort();
    assert_eq!(
        files,
        [
            "2026-11-23T00.r1.db",
            "2026-11-23T00.r2.db",
            "2026-11-23T00.r7.db"
        ]
    );
    // The period ends at T0 + 1 h; registrations expire one day later.
    let report = store.enforce_retention(T0 + HOUR_US + DAY_US - 1).unwrap();
    assert!(report.partitions_dropped.is_empty());
    let report = store.enforce_retention(T0 + HOUR_US + DAY_US).unwrap();
    assert_eq!(report.partitions_dropped, ["2026-11-23T00.r1.db"]);
    assert!(report.bytes_freed > 0);
    assert!(!dir.path().join("2026-11-23T00.r1.db").exists());
    assert!(!dir.path().join("2026-11-23T00.r1.db-wal").exists());
    let report = store.enforce_retention(T0 + HOUR_US + 3 * DAY_US).unwrap();
    assert_eq!(report.partitions_dropped, ["2026-11-23T00.r2.db"]);
    let left: Vec<String> = all_messages(&store)
        .into_iter()
        .map(|m| m.record.sid)
        .collect();
    assert_eq!(left.len(), 2);
    // Writing into a dropped period recreates it.
    store
        .insert_batch(&[sip_record(T0 + 1, "r2", "REGISTER", None, "REGISTER")])
        .unwrap();
    assert!(dir.path().join("2026-11-23T00.r1.db").exists());
    drop(store);

    // Size: ten hourly partitions, a limit of about half of them.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for h in 0..10 {
        let rows: Vec<Record> = (0..200)
            .map(|i| {
                sip_record(
                    T0 + h * HOUR_US + i,
                    &format!("h{h}-{i}"),
                    "INVITE",
                    None,
                    "INVITE",
                )
            })
            .collect();
        store.insert_batch(&rows).unwrap();
    }
    drop(store);
    // Measured closed (no WAL files) so the limit below is half of what a reopen sees.
    let before = open(dir.path()).stats().unwrap();
    assert_eq!(before.partitions, 10);
    let limit = before.bytes / 2;
    let store = SqliteStore::open(SqliteConfig {
        data_dir: dir.path().into(),
        max_total_bytes: limit,
        ..SqliteConfig::default()
    })
    .unwrap();
    let report = store.enforce_retention(T0).unwrap();
    let after = store.stats().unwrap();
    assert!(after.bytes <= limit, "{after:?} over {limit}");
    assert!(!report.partitions_dropped.is_empty() && report.partitions_dropped.len() < 10);
    assert_eq!(
        report.partitions_dropped[0], "2026-11-23T00.r7.db",
        "oldest first"
    );
    assert!(
        store
            .partition_files()
            .contains(&"2026-11-23T09.r7.db".to_string()),
        "newest kept"
    );
    // A limit below one partition still keeps the newest.
    let store2 = SqliteStore::open(SqliteConfig {
        data_dir: dir.path().into(),
        max_total_bytes: 1,
        ..SqliteConfig::default()
    })
    .unwrap();
    drop(store);
    store2.enforce_retention(T0).unwrap();
    assert_eq!(store2.partition_files(), ["2026-11-23T09.r7.db"]);
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for b in 0..20 {
                    let rows: Vec<Record> = (0..250)
                        .map(|i| {
                            sip_record(
                                T0 + (b * 250 + i) * 1000,
                                &format!("w{w}-b{b}-{i}"),
                                "INVITE",
                                None,
                                "INVITE",
                            )
                        })
                        .collect();
                    let outcome = store.insert_batch(&rows).unwrap();
                    assert_eq!(outcome.stored, 250);
                }
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut last_total = 0;
            for _ in 0..200 {
                let page = store
                    .messages(&MessageFilter {
                        limit: 50,
                        ..MessageFilter::default()
                    })
                    .unwrap();
                assert!(page.total >= last_total, "committed rows never disappear");
                last_total = page.total;
                store
                    .calls(&MessageFilter {
                        limit: 10,
                        ..MessageFilter::default()
                    })
                    .unwrap();
                if last_total == 10_000 {
                    break;
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    let all = all_messages(&store);
    assert_eq!(all.len(), 10_000);
    let unique: HashSet<(i64, i64)> = all.iter().map(|m| (m.record.time_us, m.id)).collect();
    assert_eq!(unique.len(), 10_000);
}

#[test]
fn reopen_keeps_data_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample_records("kamailio-hep3-udp");
    {
        let store = open(dir.path());
        assert_eq!(store.user_count().unwrap(), 0);
        store.insert_batch(&records).unwrap();
        store
            .put_user(&User {
                name: "admin".into(),
                password_hash: "$argon2id$v=19$x".into(),
                admin: true,
            })
            .unwrap();
    }
    let store = open(dir.path());
    assert_eq!(all_messages(&store).len(), records.len());
    assert_eq!(store.user_count().unwrap(), 1);
    let admin = store.user("admin").unwrap().unwrap();
    assert!(admin.admin);
    store
        .put_user(&User {
            name: "admin".into(),
            password_hash: "$argon2id$new".into(),
            admin: false,
        })
        .unwrap();
    store
        .put_user(&User {
            name: "viewer".into(),
            password_hash: "h".into(),
            admin: false,
        })
        .unwrap();
    assert_eq!(store.user_count().unwrap(), 2);
    assert_eq!(
        store.user("admin").unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
    assert_eq!(store.user("nobody").unwrap(), None);
    assert_eq!(store.backend(), "sqlite");
}

#[test]
fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
    let config: SqliteConfig =
        serde_json::from_str(r#"{"retention_days": 3, "partition_span": "day"}"#).unwrap();
    assert_eq!(config.retention_days, 3);
    assert_eq!(config.partition_span, PartitionSpan::Day);
    assert_eq!(config.data_dir, std::path::PathBuf::from("./hepstack-data"));
    assert!(serde_json::from_str::<SqliteConfig>(r#"{"retention": 3}"#).is_err());
    let bad = SqliteConfig {
        retention_by_hep_type: BTreeMap::from([("rtcp".to_string(), 1)]),
        ..SqliteConfig::default()
    };
    assert!(matches!(SqliteStore::open(bad), Err(StoreError::Setup(_))));
}

mod paging {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever the page size, paging returns every matching row once, newest first,
        /// across partitions of several periods, spans and retention classes.
        #[test]
        fn cursor_never_skips_or_duplicates(
            rows in proptest::collection::vec((0i64..4 * 3_600, 0u8..3, any::<bool>()), 1..120),
            limit in 1usize..17,
            day in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let config = SqliteConfig {
                data_dir: dir.path().into(),
                retention_by_profile: ProfileRetention { registration: Some(3), ..ProfileRetention::default() },
                ..SqliteConfig::default()
            };
            let records: Vec<Record> = rows
                .iter()
                .enumerate()
                .map(|(i, (sec, kind, matching))| {
                    // Few distinct seconds: many rows share a timestamp.
                    let method = if *kind == 0 { "REGISTER" } else { "INVITE" };
                    let mut r = sip_record(T0 + sec / 60 * 60_000_000, &format!("c{i}"), method, None, method);
                    r.node = Some(if *matching { "n1" } else { "n2" }.into());
                    r
                })
                .collect();
            // The first half in hour partitions; the second in day partitions when `day`, so
            // that overlapping partitions of both spans are paged together.
            let (first, second) = records.split_at(records.len() / 2);
            SqliteStore::open(config.clone()).unwrap().insert_batch(first).unwrap();
            let span = if day { PartitionSpan::Day } else { PartitionSpan::Hour };
            let store = SqliteStore::open(SqliteConfig { partition_span: span, ..config }).unwrap();
            store.insert_batch(second).unwrap();
            for node in [None, Some("n1".to_string())] {
                let mut filter = MessageFilter { limit, node: node.clone(), ..MessageFilter::default() };
                let mut seen = Vec::new();
                let mut pages = 0;
                loop {
                    let page = store.messages(&filter).unwrap();
                    let expected_total = records.iter().filter(|r| node.is_none() || r.node == node).count() as u64;
                    prop_assert_eq!(page.total, expected_total);
                    prop_assert!(page.items.len() <= limit);
                    seen.extend(page.items.iter().map(|m| (m.record.time_us, m.id, m.record.sid.clone())));
                    pages += 1;
                    prop_assert!(pages <= 200);
                    match page.next {
                        Some(next) => filter.cursor = Some(next),
                        None => break,
                    }
                }
                let want: BTreeSet<String> = records.iter().filter(|r| node.is_none() || r.node == node).map(|r| r.sid.clone()).collect();
                let got: BTreeSet<String> = seen.iter().map(|s| s.2.clone()).collect();
                prop_assert_eq!(seen.len(), want.len(), "no duplicates");
                prop_assert_eq!(got, want);
                prop_assert!(seen.windows(2).all(|w| (w[0].0, w[0].1) > (w[1].0, w[1].1)), "newest first");
            }
        }
    }
}

#[test]
fn new_partitions_use_large_pages_and_older_small_page_files_stay_usable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .insert_batch(&[sip_record(T0 + 1, "old", "INVITE", None, "INVITE")])
            .unwrap();
    }
    let new_file = dir.path().join("2026-11-23T00.r7.db");
    let conn = rusqlite::Connection::open(&new_file).unwrap();
    let page: i64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    assert_eq!(page, 32 * 1024, "new partitions get 32 KiB pages");
    drop(conn);

    // A partition written with 4 KiB pages (SQLite's default, as before): still read and
    // appended to, and never rebuilt.
    let dir2 = tempfile::tempdir().unwrap();
    {
        let store = open(dir2.path());
        store
            .insert_batch(&[sip_record(T0 + 1, "seed", "INVITE", None, "INVITE")])
            .unwrap();
    }
    let path = dir2.path().join("2026-11-23T00.r7.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    conn.pragma_update(None, "page_size", 4096).unwrap();
    conn.execute_batch("VACUUM").unwrap();
    let page: i64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    assert_eq!(page, 4096);
    drop(conn);
    let store = open(dir2.path());
    let outcome = store
        .insert_batch(&[sip_record(T0 + 2, "later", "BYE", None, "BYE")])
        .unwrap();
    assert_eq!(outcome.stored, 1);
    let all = all_messages(&store);
    let sids: BTreeSet<&str> = all.iter().map(|m| m.record.sid.as_str()).collect();
    assert_eq!(sids, BTreeSet::from(["seed", "later"]));
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let page: i64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    assert_eq!(page, 4096, "an existing file keeps its page size");
}

/// SIP rows whose fields are what their raw message yields keep only the filter and call-list
/// columns; the detail columns are derived again on read, and the records come back exactly.
/// A row whose fields differ from its raw message (set by other means) keeps every column.
#[test]
fn sip_detail_columns_are_derived_from_the_raw_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut records = sample_records("kamailio-hep3-udp");
    let sip_rows = records.iter().filter(|r| r.sip.is_some()).count() as i64;
    let mut odd = records.iter().find(|r| r.sip.is_some()).unwrap().clone();
    odd.time_us += 1;
    odd.sip.as_mut().unwrap().from_domain = Some("set.elsewhere.example".into());
    records.push(odd.clone());
    assert_eq!(store.insert_batch(&records).unwrap().stored, records.len());
    let (mut derived, mut detailed, mut domains) = (0i64, 0i64, 0i64);
    for file in store.partition_files() {
        let conn = rusqlite::Connection::open(dir.path().join(file)).unwrap();
        let (d, e, f): (i64, i64, i64) = conn
            .query_row(
                "SELECT count(*) FILTER (WHERE same_ids & 8), \
                        count(*) FILTER (WHERE is_sip AND NOT same_ids & 8), \
                        count(from_domain) FROM msg",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        derived += d;
        detailed += e;
        domains += f;
    }
    assert_eq!((derived, detailed, domains), (sip_rows, 1, 1));
    let mut back: Vec<Record> = all_messages(&store).into_iter().map(|m| m.record).collect();
    let key = |r: &Record| (r.time_us, r.raw.clone());
    back.sort_by_key(key);
    records.sort_by_key(key);
    assert_eq!(back, records);
    // Filters on the kept columns still find the derived rows.
    let invites = store
        .messages(&MessageFilter {
            method: vec!["INVITE".into()],
            ..MessageFilter::default()
        })
        .unwrap();
    let want = records
        .iter()
        .filter(|r| r.sip.as_ref().is_some_and(|s| s.method == "INVITE"))
        .count() as u64;
    assert!(want > 0);
    assert_eq!(invites.total, want);
}

/// A data directory of schema version 2 (before dictionaries) opens and is upgraded in place;
/// its rows stay readable. Other versions are refused with a clear message, and a version 2
/// binary refuses the upgraded directory instead of failing on rows it cannot decode.
#[test]
fn schema_version_2_is_upgraded_and_unknown_versions_refused() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample_records("kamailio-hep3-udp");
    {
        let store = open(dir.path());
        assert_eq!(store.insert_batch(&records).unwrap().stored, records.len());
    }
    let set_version = |v: &str| {
        let conn = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [v],
        )
        .unwrap();
    };
    let version = || -> String {
        let conn = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(version(), "3");
    set_version("2");
    let store = open(dir.path());
    assert_eq!(version(), "3");
    assert_eq!(all_messages(&store).len(), records.len());
    drop(store);
    // An older unknown version is named; a newer one says which hepstack can read it.
    for (refused, says) in [
        ("1", "schema version 1"),
        ("4", "newer hepstack (store schema 4)"),
    ] {
        set_version(refused);
        let err = SqliteStore::open(SqliteConfig {
            data_dir: dir.path().into(),
            ..SqliteConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
}

/// Partitions written before the session index led with the segment keep their index
/// `(sid, is_sip, time_us)`; every query that goes through the session index must give the same
/// answers on them as on a file of this version.
#[test]
fn partitions_with_earlier_index_layouts_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        data_dir: dir.path().into(),
        index_segment_rows: 3,
        write_shards: 1,
        ..SqliteConfig::default()
    };
    let mut batch = Vec::new();
    let steps: [(&str, Option<u16>); 7] = [
        ("INVITE", None),
        ("INVITE", Some(100)),
        ("INVITE", Some(180)),
        ("INVITE", Some(200)),
        ("ACK", None),
        ("BYE", None),
        ("BYE", Some(200)),
    ];
    for call in 0..5i64 {
        for (k, (method, status)) in steps.iter().enumerate() {
            let t = T0 + call * 10_000_000 + k as i64 * 1_000_000;
            let mut r = sip_record(t, &format!("a-{call}"), method, *status, method);
            if call == 4 {
                // A B-leg of call 0.
                r.correlation_id = Some("a-0".into());
            }
            batch.push(r);
        }
    }
    let answers = |store: &SqliteStore| {
        let calls = store
            .calls(&MessageFilter {
                limit: 100,
                ..MessageFilter::default()
            })
            .unwrap();
        let windowed = store
            .calls(&MessageFilter {
                from_us: Some(T0 + 12_000_000),
                to_us: Some(T0 + 33_000_000),
                limit: 100,
                ..MessageFilter::default()
            })
            .unwrap();
        let by_id = store
            .messages(&MessageFilter {
                call_ids: vec!["a-2".into(), "a-3*".into()],
                limit: 100,
                ..MessageFilter::default()
            })
            .unwrap();
        let by_corr = store
            .messages(&MessageFilter {
                correlation_id: Some("a-0".into()),
                limit: 100,
                ..MessageFilter::default()
            })
            .unwrap();
        let flow = store.call_flow(&["a-0".into()], None, None).unwrap();
        let ids = |p: &[StoredMessage]| p.iter().map(|m| m.id).collect::<Vec<_>>();
        // Newest first through a window, three rows a page (the time index alone).
        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .messages(&MessageFilter {
                    from_us: Some(T0 + 12_000_000),
                    to_us: Some(T0 + 33_000_000),
                    limit: 3,
                    cursor,
                    ..MessageFilter::default()
                })
                .unwrap();
            paged.push((ids(&page.items), page.total));
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        format!(
            "{:?}\n{:?}\n{:?} {}\n{:?} {}\n{:?}\n{:?}",
            calls
                .items
                .iter()
                .map(|c| (&c.call_id, c.message_count, c.start_us, c.end_us))
                .collect::<Vec<_>>(),
            windowed
                .items
                .iter()
                .map(|c| (&c.call_id, c.message_count))
                .collect::<Vec<_>>(),
            ids(&by_id.items),
            by_id.total,
            ids(&by_corr.items),
            by_corr.total,
            ids(&flow),
            paged,
        )
    };
    let current = {
        let store = SqliteStore::open(config.clone()).unwrap();
        assert_eq!(store.insert_batch(&batch).unwrap().stored, batch.len());
        answers(&store)
    };
    // What the queries must find, whatever the index layout.
    assert!(current.contains("(\"a-0\", 7,"), "{current}");
    assert_eq!(current.lines().count(), 6);
    // 15 rows in the window, five pages of three.
    assert_eq!(
        current.lines().last().unwrap().matches(", 15)").count(),
        5,
        "{current}"
    );
    let file = dir.path().join("2026-11-23T00.r7.db");
    // The layout of the previous version (time index led by the time), then of the one before
    // (the session index led by the session id too).
    for ddl in [
        "DROP INDEX ix_time; CREATE INDEX ix_time ON msg(time_us);",
        "DROP INDEX ix_sid; CREATE INDEX ix_sid ON msg(sid, is_sip, time_us);",
    ] {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(ddl).unwrap();
        drop(conn);
        let store = SqliteStore::open(config.clone()).unwrap();
        assert_eq!(answers(&store), current, "after {ddl}");
    }
}

/// Newest-first pages read without a narrowing index merge the time index's segments. Capture
/// times arriving out of order make segments overlap; pages must still come out in exact
/// `(time, id)` order, every row once, with exact totals, whatever the window and page size.
#[test]
fn newest_first_pages_merge_overlapping_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        data_dir: dir.path().into(),
        index_segment_rows: 4,
        write_shards: 1,
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open(config).unwrap();
    // 200 rows whose times are a permutation of 100 instants (two rows each), so segments
    // span most of the range and ties are broken by id; a third are logs.
    let mut rows = Vec::new();
    for i in 0..200i64 {
        let t = T0 + ((i * 37) % 200) / 2 * 1_000;
        let r = if i % 3 == 0 {
            event_record(t, 100, &format!("m-{i}"), r#"{"text":"x"}"#)
        } else {
            sip_record(t, &format!("m-{i}"), "INVITE", None, "INVITE")
        };
        rows.push(r);
    }
    for chunk in rows.chunks(9) {
        assert_eq!(store.insert_batch(chunk).unwrap().stored, chunk.len());
    }
    for (from, to) in [
        (None, None),
        (Some(10), Some(90)),
        (Some(0), Some(1)),
        (Some(55), None),
    ] {
        for hep_type in [None, Some(100u8), Some(1)] {
            let mut want: Vec<(i64, String)> = rows
                .iter()
                .filter(|r| from.map_or(true, |f| r.time_us >= T0 + f * 1_000))
                .filter(|r| to.map_or(true, |t| r.time_us < T0 + t * 1_000))
                .filter(|r| hep_type.map_or(true, |h| r.hep_type == h))
                .map(|r| (r.time_us, r.sid.clone()))
                .collect();
            want.sort();
            for limit in [1usize, 7, 50] {
                let mut got: Vec<StoredMessage> = Vec::new();
                let mut cursor = None;
                loop {
                    let page = store
                        .messages(&MessageFilter {
                            from_us: from.map(|f| T0 + f * 1_000),
                            to_us: to.map(|t| T0 + t * 1_000),
                            hep_type,
                            limit,
                            cursor,
                            ..MessageFilter::default()
                        })
                        .unwrap();
                    assert_eq!(page.total, want.len() as u64);
                    assert!(page.items.len() <= limit);
                    got.extend(page.items);
                    cursor = page.next;
                    if cursor.is_none() {
                        break;
                    }
                }
                let order: Vec<(i64, i64)> = got.iter().map(|m| (m.record.time_us, m.id)).collect();
                let mut sorted = order.clone();
                sorted.sort_by(|a, b| b.cmp(a));
                sorted.dedup();
                assert_eq!(
                    order, sorted,
                    "{from:?}..{to:?} type {hep_type:?} limit {limit}"
                );
                let mut seen: Vec<(i64, String)> = got
                    .iter()
                    .map(|m| (m.record.time_us, m.record.sid.clone()))
                    .collect();
                seen.sort();
                assert_eq!(
                    seen, want,
                    "{from:?}..{to:?} type {hep_type:?} limit {limit}"
                );
            }
        }
    }
}

#[test]
fn idle_writers_give_their_wal_back() {
    let (dir, store) = suite_store(SqliteConfig::default().max_raw_bytes);
    let t0 = 1_795_910_400_000_000;
    let batch: Vec<Record> = (0..200)
        .map(|i| sip_record(t0 + i, &format!("wal-{i}"), "INVITE", None, "INVITE"))
        .collect();
    store.insert_batch(&batch).unwrap();
    // The partitions' WAL files (the catalog has its own).
    let wal_bytes = || -> u64 {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with("-wal") && !name.starts_with("catalog")
            })
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    };
    assert!(wal_bytes() > 0, "the batch went through the WAL");
    // Not idle for a minute yet: nothing happens.
    assert_eq!(
        store.truncate_idle_wals(std::time::Duration::from_secs(60)),
        0
    );
    assert!(wal_bytes() > 0);
    // Idle (any age will do): checkpointed and cut to nothing, once.
    assert_eq!(store.truncate_idle_wals(std::time::Duration::ZERO), 1);
    assert_eq!(wal_bytes(), 0);
    assert_eq!(store.truncate_idle_wals(std::time::Duration::ZERO), 0);
    // Every row is still there, and the writer goes on writing.
    assert_eq!(all_messages(&store).len(), 200);
    store
        .insert_batch(&[sip_record(t0 + 500, "wal-after", "BYE", None, "BYE")])
        .unwrap();
    assert_eq!(all_messages(&store).len(), 201);
    assert_eq!(store.truncate_idle_wals(std::time::Duration::ZERO), 1);
}

/// `store::transfer::copy` between two embedded stores: stopped after a batch it resumes
/// from its checkpoint; with a batch left unconfirmed (`pending`) that landed only in part —
/// what a kill between the commits of two partition periods leaves — the rerun writes exactly
/// the missing records: the target ends with every source record once.
#[test]
fn a_copy_resumes_and_reconciles_a_partly_landed_batch() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use store::transfer::{copy, Checkpoint, CopyOptions, Pending, TransferError};

    let (_src_dir, source) = suite_store(SqliteConfig::default().max_raw_bytes);
    let mut records = sample_records("kamailio-hep3-udp");
    for (i, r) in records.iter_mut().enumerate() {
        // Two hours, and runs of records sharing an instant across batch boundaries.
        r.time_us = T0 + (i as i64 / 3) * 20_000_000;
    }
    assert_eq!(source.insert_batch(&records).unwrap().stored, records.len());
    let (_dst_dir, target) = suite_store(SqliteConfig::default().max_raw_bytes);
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("copy.json");
    let opts = CopyOptions {
        from_us: None,
        to_us: None,
        batch: 40,
        identity: "test".into(),
    };
    // Stopped after the second batch.
    let stop = AtomicBool::new(false);
    let mut batches = 0;
    let err = copy(&source, &target, &opts, &state, &stop, |_| {
        batches += 1;
        if batches == 2 {
            stop.store(true, Ordering::Relaxed);
        }
    })
    .unwrap_err();
    assert!(matches!(err, TransferError::Interrupted), "{err}");
    let cp = Checkpoint::load(&state).unwrap().unwrap();
    assert_eq!(cp.copied, 80);
    assert!(cp.pending.is_none());
    assert_eq!(all_messages(&target).len(), 80);

    // The next batch, as the copy would read it, lands in part; the checkpoint says pending.
    let page = source
        .scan(&store::ScanRequest {
            after: cp.position,
            limit: 40,
            ..Default::default()
        })
        .unwrap();
    let batch: Vec<Record> = page.items.iter().map(|m| m.record.clone()).collect();
    assert_eq!(target.insert_batch(&batch[..25]).unwrap().stored, 25);
    Checkpoint {
        pending: Some(Pending {
            first_us: batch[0].time_us,
            last_us: batch[39].time_us,
        }),
        ..cp
    }
    .save(&state)
    .unwrap();

    let done = copy(
        &source,
        &target,
        &opts,
        &state,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    assert!(done.done);
    let key = |r: &Record| (r.time_us, r.sid.clone(), r.raw.clone());
    let mut want: Vec<_> = records.iter().map(key).collect();
    let mut got: Vec<_> = all_messages(&target)
        .iter()
        .map(|m| key(&m.record))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len(), "no loss, no duplicate");
    assert_eq!(got, want);
    // A checkpoint of another copy is refused.
    let other = CopyOptions {
        identity: "another".into(),
        ..opts
    };
    let err = copy(
        &source,
        &target,
        &other,
        &state,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("another copy"), "{err}");
}
