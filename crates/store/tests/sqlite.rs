//! The SQLite store against real SQLite files in temporary directories.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use common::*;
use store::sqlite::{
    IndexKind, PartitionSpan, ProfileRetention, RawCompression, SqliteConfig, SqliteStore,
};
use store::{MessageFilter, Profile, Record, SipFields, Store, StoreError, StoredMessage, User};

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

fn full_record() -> Record {
    Record {
        time_us: T0 + 1_234_567,
        received_us: T0 + 1_299_999,
        hep_type: 1,
        hep_version: 3,
        ip_family: 10,
        ip_proto: 6,
        src_ip: "2001:db8::1".parse().unwrap(),
        src_port: 5061,
        dst_ip: "::ffff:10.1.2.3".parse().unwrap(),
        dst_port: 65535,
        capture_id: u32::MAX,
        node: Some("sbc-1".into()),
        correlation_id: Some("aleg-xyz".into()),
        sid: "bleg-123@host".into(),
        profile: Profile::Call,
        sip: Some(SipFields {
            method: "INVITE".into(),
            is_request: true,
            status: None,
            cseq: Some("10 INVITE".into()),
            cseq_method: Some("INVITE".into()),
            call_id: Some("bleg-123@host".into()),
            ruri_user: Some("+4930123".into()),
            ruri_domain: Some("example.com".into()),
            from_user: Some("alice".into()),
            from_domain: Some("a.example".into()),
            from_tag: Some("ft1".into()),
            to_user: Some("bob".into()),
            to_domain: Some("b.example".into()),
            to_tag: Some("tt1".into()),
            contact_user: Some("alice-c".into()),
            pid_user: Some("pai".into()),
            auth_user: Some("authu".into()),
            user_agent: Some("UA/1.0 \"quoted\" ünïcödé".into()),
            server: Some("Srv/2".into()),
            reason: Some("Q.850;cause=16".into()),
            content_type: Some("application/sdp".into()),
            via_branch: Some("z9hG4bK-1".into()),
            aleg_id: Some("aleg-xyz".into()),
            custom_headers: vec![
                ("X-Tenant".into(), "t1".into()),
                ("X-Empty".into(), String::new()),
            ],
            sdp_media: vec!["10.0.0.5:40000".into(), "[2001:db8::5]:40002".into()],
        }),
        payload_json: Some("{\"k\":[1,2]}".into()),
        // Binary, non-UTF-8, with NULs, long enough to compress.
        raw: (0..2000u32)
            .map(|i| (i % 7 * 37 + i / 300) as u8)
            .chain([0xff, 0xfe, 0x00, 0x80])
            .collect(),
    }
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
fn real_kamailio_traffic_round_trips() {
    let records = sample_records("kamailio-hep3-udp");
    assert_eq!(records.len(), 305);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let outcome = store.insert_batch(&records).unwrap();
    assert_eq!((outcome.stored, outcome.rejected.len()), (305, 0));
    let stored = all_messages(&store);
    assert_eq!(stored.len(), 305);
    let mut back: Vec<Record> = stored.iter().map(|m| m.record.clone()).collect();
    let key = |r: &Record| (r.time_us, r.raw.clone());
    back.sort_by_key(key);
    let mut want = records.clone();
    want.sort_by_key(key);
    assert_eq!(back, want);
    // (time_us, id) is unique.
    let ids: HashSet<(i64, i64)> = stored.iter().map(|m| (m.record.time_us, m.id)).collect();
    assert_eq!(ids.len(), 305);
    // Newest first.
    assert!(stored
        .windows(2)
        .all(|w| (w[0].record.time_us, w[0].id) > (w[1].record.time_us, w[1].id)));
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
fn a_bad_row_is_rejected_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig {
        data_dir: dir.path().into(),
        max_raw_bytes: 1000,
        ..SqliteConfig::default()
    })
    .unwrap();
    // A directory where the partition file of 1990-01-01T00 would go: that partition cannot open.
    let blocked = 631_152_000_000_000;
    std::fs::create_dir(dir.path().join("1990-01-01T00.r7.db")).unwrap();
    let mut big = sip_record(T0 + 2, "big", "INVITE", None, "INVITE");
    big.raw = vec![b'x'; 1001];
    let batch = vec![
        sip_record(T0 + 1, "ok-1", "INVITE", None, "INVITE"),
        big,
        sip_record(blocked, "blocked", "INVITE", None, "INVITE"),
        sip_record(i64::MIN, "min-time", "INVITE", None, "INVITE"),
        sip_record(T0 + HOUR_US, "ok-2", "BYE", None, "BYE"),
    ];
    let outcome = store.insert_batch(&batch).unwrap();
    assert_eq!(outcome.stored, 2);
    let rejected: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, [1, 2, 3], "{:?}", outcome.rejected);
    assert!(outcome.rejected[0].1.contains("limit"));
    let sids: BTreeSet<String> = all_messages(&store)
        .into_iter()
        .map(|m| m.record.sid)
        .collect();
    assert_eq!(sids, ["ok-1".to_string(), "ok-2".to_string()].into());
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
    // Rows that are bad in themselves are not worth a retry.
    let outcome = store
        .insert_batch(&[sip_record(i64::MIN, "m", "INVITE", None, "INVITE")])
        .unwrap();
    assert_eq!((outcome.stored, outcome.rejected.len()), (0, 1));
    // An empty batch is fine.
    assert_eq!(store.insert_batch(&[]).unwrap().stored, 0);
}

fn filter_store(dir: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(SqliteConfig {
        data_dir: dir.to_path_buf(),
        indexes: IndexKind::ALL.to_vec(),
        ..SqliteConfig::default()
    })
    .unwrap();
    let mut rows = Vec::new();
    let mut a = sip_record(T0 + 100, "call-a", "INVITE", None, "INVITE");
    a.sip.as_mut().unwrap().from_user = Some("alice".into());
    a.sip.as_mut().unwrap().to_user = Some("bob".into());
    a.sip.as_mut().unwrap().ruri_user = Some("bob-ruri".into());
    a.raw = b"INVITE sip:bob@example.com SIP/2.0\r\nX-Secret: needle-42\r\n\r\n".to_vec();
    rows.push(a);
    let mut a486 = sip_record(T0 + 200, "call-a", "486", Some(486), "INVITE");
    a486.src_ip = "10.0.0.2".parse().unwrap();
    a486.dst_ip = "10.0.0.1".parse().unwrap();
    rows.push(a486);
    let mut b = sip_record(T0 + HOUR_US + 300, "call-b", "invite", None, "INVITE");
    b.sip.as_mut().unwrap().from_user = Some("carol".into());
    b.src_ip = "192.168.1.1".parse().unwrap();
    b.dst_ip = "2001:db8::7".parse().unwrap();
    b.node = Some("node-b".into());
    b.correlation_id = Some("call-a".into());
    rows.push(b);
    rows.push(event_record(T0 + 400, 53, "dns-1", r#"{"questions":[{"name":"example.com","type":"A"}],"rcode":0,"flags":{"qr":true},"answers":[]}"#));
    rows.push(event_record(
        T0 + 500,
        53,
        "dns-2",
        r#"{"questions":[{"name":"other.org","type":"AAAA"}],"rcode":3,"flags":{"qr":false}}"#,
    ));
    rows.push(event_record(
        T0 + 600,
        100,
        "call-a",
        "plain log line, not JSON",
    ));
    assert_eq!(store.insert_batch(&rows).unwrap().stored, 6);
    store
}

fn sids(store: &SqliteStore, filter: MessageFilter) -> Vec<String> {
    let page = store.messages(&filter).unwrap();
    assert_eq!(page.total as usize, page.items.len());
    page.items
        .into_iter()
        .map(|m| format!("{}@{}", m.record.sid, m.record.time_us - T0))
        .collect()
}

#[test]
fn every_filter_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = filter_store(dir.path());
    let f = MessageFilter::default;
    let b_time = HOUR_US + 300;
    let b = format!("call-b@{b_time}");
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                call_ids: vec!["call-a".into()],
                ..f()
            }
        ),
        ["call-a@600", "call-a@200", "call-a@100"]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                from_user: Some("carol".into()),
                ..f()
            }
        ),
        vec![b.clone()]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                to_user: Some("bob".into()),
                ..f()
            }
        ),
        [b.clone(), "call-a@200".into(), "call-a@100".into()]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                ruri_user: Some("bob-ruri".into()),
                ..f()
            }
        ),
        ["call-a@100"]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                ip: Some("10.0.0.2".parse().unwrap()),
                ..f()
            }
        ),
        ["call-a@200", "call-a@100"]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                src_ip: Some("10.0.0.2".parse().unwrap()),
                ..f()
            }
        ),
        ["call-a@200"]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                dst_ip: Some("2001:db8::7".parse().unwrap()),
                ..f()
            }
        ),
        vec![b.clone()]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                method: Some("INVITE".into()),
                ..f()
            }
        ),
        [b.clone(), "call-a@100".into()]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                method: Some("486".into()),
                ..f()
            }
        ),
        ["call-a@200"]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                node: Some("node-b".into()),
                ..f()
            }
        ),
        vec![b.clone()]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                hep_type: Some(53),
                ..f()
            }
        ),
        ["dns-2@500", "dns-1@400"]
    );
    // Correlation id equal to the sid and different from it.
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                correlation_id: Some("call-a".into()),
                ..f()
            }
        ),
        [
            b.clone(),
            "call-a@600".into(),
            "call-a@200".into(),
            "call-a@100".into()
        ]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                text: Some("needle-42".into()),
                ..f()
            }
        ),
        ["call-a@100"]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                text: Some("not JSON".into()),
                ..f()
            }
        ),
        ["call-a@600"]
    );
    assert!(
        sids(
            &store,
            MessageFilter {
                text: Some("NEEDLE-42".into()),
                ..f()
            }
        )
        .is_empty(),
        "case-sensitive"
    );
    // Time window (from inclusive, to exclusive) and a combination.
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                from_us: Some(T0 + 200),
                to_us: Some(T0 + 500),
                ..f()
            }
        ),
        ["dns-1@400", "call-a@200"]
    );
    assert_eq!(
        sids(
            &store,
            MessageFilter {
                from_us: Some(T0),
                to_us: Some(T0 + HOUR_US),
                method: Some("invite".into()),
                ..f()
            }
        ),
        ["call-a@100"]
    );
    assert!(sids(
        &store,
        MessageFilter {
            from_user: Some("alice".into()),
            to_user: Some("nobody".into()),
            ..f()
        }
    )
    .is_empty());
}

#[test]
fn json_path_search() {
    let dir = tempfile::tempdir().unwrap();
    let store = filter_store(dir.path());
    let json = |conds: &[(&str, &str)]| MessageFilter {
        json: conds
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect(),
        ..MessageFilter::default()
    };
    assert_eq!(
        sids(&store, json(&[("questions[0].name", "example.com")])),
        ["dns-1@400"]
    );
    assert_eq!(
        sids(&store, json(&[("payload.questions[0].type", "AAAA")])),
        ["dns-2@500"]
    );
    assert_eq!(sids(&store, json(&[("rcode", "3")])), ["dns-2@500"]);
    assert_eq!(sids(&store, json(&[("flags.qr", "true")])), ["dns-1@400"]);
    assert_eq!(
        sids(&store, json(&[("flags.qr", "false"), ("rcode", "3")])),
        ["dns-2@500"]
    );
    assert!(sids(&store, json(&[("questions[1].name", "example.com")])).is_empty());
    for bad in ["questions[0].name') OR 1=1 --", "a.*", "$.x", "a[-1]", ""] {
        let err = store.messages(&json(&[(bad, "x")])).unwrap_err();
        assert!(matches!(err, StoreError::InvalidQuery(_)), "{bad}: {err}");
    }
}

#[test]
fn invalid_queries_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = filter_store(dir.path());
    for cursor in ["nothex", "6d00", ""] {
        let err = store
            .messages(&MessageFilter {
                cursor: Some(cursor.into()),
                ..MessageFilter::default()
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidQuery(_)), "{cursor}");
        let err = store
            .calls(&MessageFilter {
                cursor: Some(cursor.into()),
                ..MessageFilter::default()
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidQuery(_)), "{cursor}");
    }
    let err = store
        .messages(&MessageFilter {
            from_us: Some(5),
            to_us: Some(5),
            ..MessageFilter::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidQuery(_)));
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    assert!(matches!(
        store.messages(&MessageFilter {
            call_ids: many.clone(),
            ..MessageFilter::default()
        }),
        Err(StoreError::InvalidQuery(_))
    ));
    assert!(matches!(
        store.call_flow(&many, None, None),
        Err(StoreError::InvalidQuery(_))
    ));
}

#[test]
fn call_summaries_from_real_traffic() {
    let records = sample_records("kamailio-hep3-udp");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.insert_batch(&records).unwrap();
    let page = store
        .calls(&MessageFilter {
            limit: 1000,
            ..MessageFilter::default()
        })
        .unwrap();
    let sip_call_ids: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.sip.is_some())
        .map(|r| r.sid.as_str())
        .collect();
    assert_eq!(page.total as usize, sip_call_ids.len());
    assert_eq!(page.items.len(), sip_call_ids.len());
    assert!(page.next.is_none());
    assert!(
        page.items
            .windows(2)
            .all(|w| w[0].start_us >= w[1].start_us),
        "newest first"
    );
    let invites: Vec<_> = page
        .items
        .iter()
        .filter(|c| c.method.as_deref() == Some("INVITE"))
        .collect();
    assert_eq!(invites.len(), 23);
    let mut by_status: BTreeMap<Option<u16>, usize> = BTreeMap::new();
    for c in &invites {
        *by_status.entry(c.status).or_default() += 1;
    }
    // README: 13 answered, 3×486, 3×404, 2×487 after CANCEL, 2×408 timeouts.
    assert_eq!(
        by_status,
        BTreeMap::from([
            (Some(200), 13),
            (Some(404), 3),
            (Some(408), 2),
            (Some(486), 3),
            (Some(487), 2)
        ])
    );
    for c in &invites {
        assert_eq!(c.duration_ms.is_some(), c.status == Some(200), "{c:?}");
        let msgs = records
            .iter()
            .filter(|r| r.sid == c.call_id && r.sip.is_some());
        assert_eq!(c.message_count as usize, msgs.clone().count());
        assert_eq!(c.start_us, msgs.clone().map(|r| r.time_us).min().unwrap());
        assert_eq!(c.end_us, msgs.clone().map(|r| r.time_us).max().unwrap());
        assert!(c.from_user.is_some() && c.ruri_user.is_some());
        assert!(!c.nodes.is_empty());
    }
    let registers = page
        .items
        .iter()
        .filter(|c| c.method.as_deref() == Some("REGISTER"))
        .count();
    assert!(registers >= 1);
    // Paging calls with the cursor gives the same list.
    let mut paged = Vec::new();
    let mut filter = MessageFilter {
        limit: 4,
        ..MessageFilter::default()
    };
    loop {
        let p = store.calls(&filter).unwrap();
        assert_eq!(p.total as usize, sip_call_ids.len());
        paged.extend(p.items);
        match p.next {
            Some(n) => filter.cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, page.items);
}

#[test]
fn call_summary_status_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Answered call crossing an hour boundary: 200 OK at +4 s, BYE at +34 s.
    let t = T0 + HOUR_US - 10_000_000;
    let mut rows = vec![
        sip_record(t, "answered", "INVITE", None, "INVITE"),
        sip_record(t + 100_000, "answered", "180", Some(180), "INVITE"),
        sip_record(t + 4_000_000, "answered", "200", Some(200), "INVITE"),
        sip_record(t + 4_100_000, "answered", "ACK", None, "ACK"),
        sip_record(t + 34_000_000, "answered", "BYE", None, "BYE"),
        sip_record(t + 34_050_000, "answered", "200", Some(200), "BYE"),
    ];
    // Challenged, then busy.
    let u = T0 + 1_000_000;
    rows.extend([
        sip_record(u, "busy", "INVITE", None, "INVITE"),
        sip_record(u + 1000, "busy", "407", Some(407), "INVITE"),
        sip_record(u + 2000, "busy", "INVITE", None, "INVITE"),
        sip_record(u + 3000, "busy", "486", Some(486), "INVITE"),
        sip_record(u + 4000, "busy", "ACK", None, "ACK"),
    ]);
    // Answered, no BYE seen: duration runs to the last message.
    let v = T0 + 2_000_000;
    rows.extend([
        sip_record(v, "open", "INVITE", None, "INVITE"),
        sip_record(v + 500_000, "open", "200", Some(200), "INVITE"),
        sip_record(v + 2_500_000, "open", "ACK", None, "ACK"),
    ]);
    let mut b_leg = sip_record(v + 10, "open-b", "INVITE", None, "INVITE");
    b_leg.correlation_id = Some("open".into());
    rows.push(b_leg);
    rows.push(event_record(v + 20, 5, "open", "{}"));
    store.insert_batch(&rows).unwrap();
    let page = store.calls(&MessageFilter::default()).unwrap();
    let ids: Vec<&str> = page.items.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(
        ids,
        ["answered", "open-b", "open", "busy"],
        "SIP only, newest start first"
    );
    let answered = &page.items[0];
    assert_eq!(
        (
            answered.status,
            answered.duration_ms,
            answered.message_count
        ),
        (Some(200), Some(30_000), 6)
    );
    assert_eq!((answered.start_us, answered.end_us), (t, t + 34_050_000));
    assert_eq!(answered.method.as_deref(), Some("INVITE"));
    assert_eq!(answered.from_user.as_deref(), Some("alice"));
    assert_eq!(answered.src_ip, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(answered.nodes, ["node-a"]);
    let busy = &page.items[3];
    assert_eq!(
        (busy.status, busy.duration_ms, busy.message_count),
        (Some(486), None, 5)
    );
    let open_call = &page.items[2];
    assert_eq!(
        (open_call.status, open_call.duration_ms),
        (Some(200), Some(2000))
    );
    assert_eq!(page.items[1].correlation_id.as_deref(), Some("open"));
    // A filter selects calls by any of their messages, and the summary still covers all of
    // them, across partitions.
    let page = store
        .calls(&MessageFilter {
            method: Some("BYE".into()),
            ..MessageFilter::default()
        })
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(
        (page.items[0].call_id.as_str(), page.items[0].message_count),
        ("answered", 6)
    );
    let page = store
        .calls(&MessageFilter {
            from_us: Some(T0 + HOUR_US),
            ..MessageFilter::default()
        })
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(
        page.items[0].message_count, 2,
        "the window bounds the summary"
    );
}

#[test]
fn call_flow_follows_legs_both_ways_and_transitively() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = sip_record(T0 + 1000, "leg-a", "INVITE", None, "INVITE");
    let mut b = sip_record(T0 + 2000, "leg-b", "INVITE", None, "INVITE");
    b.correlation_id = Some("leg-a".into()); // B-leg by correlation id
    let mut b200 = sip_record(T0 + HOUR_US + 3000, "leg-b", "200", Some(200), "INVITE");
    b200.correlation_id = Some("leg-a".into());
    let mut c = sip_record(T0 + 4000, "leg-c", "INVITE", None, "INVITE");
    c.sip.as_mut().unwrap().aleg_id = Some("leg-b".into()); // C-leg by X-CID of B
    c.correlation_id = Some("leg-c".into());
    let rtcp = event_record(T0 + 5000, 5, "leg-a", r#"{"type":200}"#);
    let mut log = event_record(T0 + 6000, 100, "other-sid", "log of leg c");
    log.correlation_id = Some("leg-c".into());
    let unrelated = sip_record(T0 + 7000, "leg-z", "INVITE", None, "INVITE");
    let mut unrelated_rtcp = event_record(T0 + 8000, 5, "leg-z", "{}");
    unrelated_rtcp.correlation_id = Some("leg-z".into());
    store
        .insert_batch(&[a, b, b200, c, rtcp, log, unrelated, unrelated_rtcp])
        .unwrap();
    let expected = [
        T0 + 1000,
        T0 + 2000,
        T0 + 4000,
        T0 + 5000,
        T0 + 6000,
        T0 + HOUR_US + 3000,
    ];
    for start in ["leg-a", "leg-b", "leg-c"] {
        let flow = store.call_flow(&[start.to_string()], None, None).unwrap();
        let times: Vec<i64> = flow.iter().map(|m| m.record.time_us).collect();
        assert_eq!(times, expected, "from {start}");
    }
    // Time bounds limit the search.
    let flow = store
        .call_flow(&["leg-a".to_string()], Some(T0), Some(T0 + HOUR_US))
        .unwrap();
    assert_eq!(flow.len(), 5);
    assert!(store.call_flow(&[], None, None).unwrap().is_empty());
    assert!(store
        .call_flow(&["nothing".to_string()], None, None)
        .unwrap()
        .is_empty());
}

#[test]
fn call_flow_of_real_traffic_has_the_logs() {
    let records = sample_records("kamailio-hep3-udp");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.insert_batch(&records).unwrap();
    let log = records
        .iter()
        .find(|r| r.hep_type == 100)
        .expect("a log record");
    let call = log.correlation_id.clone().unwrap();
    let flow = store
        .call_flow(std::slice::from_ref(&call), None, None)
        .unwrap();
    let expected = records
        .iter()
        .filter(|r| r.sid == call || r.correlation_id.as_deref() == Some(call.as_str()))
        .count();
    assert_eq!(flow.len(), expected);
    assert!(flow.iter().any(|m| m.record.hep_type == 100));
    assert!(flow.iter().any(|m| m.record.hep_type == 1));
    assert!(flow
        .windows(2)
        .all(|w| (w[0].record.time_us, w[0].id) < (w[1].record.time_us, w[1].id)));
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
