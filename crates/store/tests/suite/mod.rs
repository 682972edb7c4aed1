//! The backend-neutral query suite: every function takes an empty store (or a way to open
//! one) and checks answers that must be the same on every backend. `tests/sqlite.rs` and
//! `tests/postgres.rs` run all of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::common::*;
use store::{MessageFilter, Profile, Record, SipFields, Store, StoreError, StoredMessage, User};

/// Every message, paging with the cursor.
pub fn all_messages(store: &dyn Store) -> Vec<StoredMessage> {
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

/// A record with every field set, IPv6, and a binary payload with NULs.
pub fn full_record() -> Record {
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

/// Suite test: odd records (every field, empty SIP fields, non-UTF-8 raw, empty raw) come back
/// exactly.
pub fn odd_records_round_trip_exactly(store: &dyn Store) {
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
    assert_eq!(outcome.stored, 4, "{:?}", outcome.rejected);
    let mut back: Vec<Record> = all_messages(store).into_iter().map(|m| m.record).collect();
    back.sort_by_key(|r| r.time_us);
    let mut want = records.clone();
    want.sort_by_key(|r| r.time_us);
    assert_eq!(back, want);
}

/// Suite test.
pub fn real_kamailio_traffic_round_trips(store: &dyn Store) {
    let records = sample_records("kamailio-hep3-udp");
    assert_eq!(records.len(), 305);
    let outcome = store.insert_batch(&records).unwrap();
    assert_eq!((outcome.stored, outcome.rejected.len()), (305, 0));
    let stored = all_messages(store);
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

/// Suite test: `store` takes at most 1000 raw bytes per row and refuses `refused` (a row
/// the backend itself cannot store, e.g. an unopenable partition or a value the server
/// rejects).
pub fn a_bad_row_is_rejected_alone(store: &dyn Store, refused: Record) {
    let mut big = sip_record(T0 + 2, "big", "INVITE", None, "INVITE");
    big.raw = vec![b'x'; 1001];
    let batch = vec![
        sip_record(T0 + 1, "ok-1", "INVITE", None, "INVITE"),
        big,
        refused,
        sip_record(i64::MIN, "min-time", "INVITE", None, "INVITE"),
        sip_record(T0 + HOUR_US, "ok-2", "BYE", None, "BYE"),
    ];
    let outcome = store.insert_batch(&batch).unwrap();
    assert_eq!(outcome.stored, 2);
    let rejected: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, [1, 2, 3], "{:?}", outcome.rejected);
    assert!(outcome.rejected[0].1.contains("limit"));
    let sids: BTreeSet<String> = all_messages(store)
        .into_iter()
        .map(|m| m.record.sid)
        .collect();
    assert_eq!(sids, ["ok-1".to_string(), "ok-2".to_string()].into());
    assert!(store.messages(&MessageFilter::default()).unwrap().total == 2);
    // Rows that are bad in themselves are not worth a retry.
    let outcome = store
        .insert_batch(&[sip_record(i64::MIN, "m", "INVITE", None, "INVITE")])
        .unwrap();
    assert_eq!((outcome.stored, outcome.rejected.len()), (0, 1));
    // An empty batch is fine.
    assert_eq!(store.insert_batch(&[]).unwrap().stored, 0);
}

/// Loads the rows the filter tests search: two calls, DNS events, a log line.
pub fn load_filter_rows(store: &dyn Store) {
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
}

fn sids(store: &dyn Store, filter: MessageFilter) -> Vec<String> {
    let page = store.messages(&filter).unwrap();
    assert_eq!(page.total as usize, page.items.len());
    page.items
        .into_iter()
        .map(|m| format!("{}@{}", m.record.sid, m.record.time_us - T0))
        .collect()
}

/// Suite test.
pub fn every_filter_field(store: &dyn Store) {
    load_filter_rows(store);
    let f = MessageFilter::default;
    let b_time = HOUR_US + 300;
    let b = format!("call-b@{b_time}");
    assert_eq!(
        sids(
            store,
            MessageFilter {
                call_ids: vec!["call-a".into()],
                ..f()
            }
        ),
        ["call-a@600", "call-a@200", "call-a@100"]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                from_user: Some("carol".into()),
                ..f()
            }
        ),
        vec![b.clone()]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                to_user: Some("bob".into()),
                ..f()
            }
        ),
        [b.clone(), "call-a@200".into(), "call-a@100".into()]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                ruri_user: Some("bob-ruri".into()),
                ..f()
            }
        ),
        ["call-a@100"]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                ip: Some("10.0.0.2".parse().unwrap()),
                ..f()
            }
        ),
        ["call-a@200", "call-a@100"]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                src_ip: Some("10.0.0.2".parse().unwrap()),
                ..f()
            }
        ),
        ["call-a@200"]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                dst_ip: Some("2001:db8::7".parse().unwrap()),
                ..f()
            }
        ),
        vec![b.clone()]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                method: vec!["INVITE".into()],
                ..f()
            }
        ),
        [b.clone(), "call-a@100".into()]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                method: vec!["486".into()],
                ..f()
            }
        ),
        ["call-a@200"]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                node: Some("node-b".into()),
                ..f()
            }
        ),
        vec![b.clone()]
    );
    assert_eq!(
        sids(
            store,
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
            store,
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
            store,
            MessageFilter {
                text: Some("needle-42".into()),
                ..f()
            }
        ),
        ["call-a@100"]
    );
    assert_eq!(
        sids(
            store,
            MessageFilter {
                text: Some("not JSON".into()),
                ..f()
            }
        ),
        ["call-a@600"]
    );
    assert!(
        sids(
            store,
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
            store,
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
            store,
            MessageFilter {
                from_us: Some(T0),
                to_us: Some(T0 + HOUR_US),
                method: vec!["invite".into()],
                ..f()
            }
        ),
        ["call-a@100"]
    );
    assert!(sids(
        store,
        MessageFilter {
            from_user: Some("alice".into()),
            to_user: Some("nobody".into()),
            ..f()
        }
    )
    .is_empty());
}

/// Suite test.
pub fn json_path_search(store: &dyn Store) {
    load_filter_rows(store);
    let json = |conds: &[(&str, &str)]| MessageFilter {
        json: conds
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect(),
        ..MessageFilter::default()
    };
    assert_eq!(
        sids(store, json(&[("questions[0].name", "example.com")])),
        ["dns-1@400"]
    );
    assert_eq!(
        sids(store, json(&[("payload.questions[0].type", "AAAA")])),
        ["dns-2@500"]
    );
    assert_eq!(sids(store, json(&[("rcode", "3")])), ["dns-2@500"]);
    assert_eq!(sids(store, json(&[("flags.qr", "true")])), ["dns-1@400"]);
    assert_eq!(
        sids(store, json(&[("flags.qr", "false"), ("rcode", "3")])),
        ["dns-2@500"]
    );
    assert!(sids(store, json(&[("questions[1].name", "example.com")])).is_empty());
    for bad in ["questions[0].name') OR 1=1 --", "a.*", "$.x", "a[-1]", ""] {
        let err = store.messages(&json(&[(bad, "x")])).unwrap_err();
        assert!(matches!(err, StoreError::InvalidQuery(_)), "{bad}: {err}");
    }
}

/// Suite test.
pub fn invalid_queries_are_reported(store: &dyn Store) {
    load_filter_rows(store);
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

/// Suite test.
pub fn call_summaries_from_real_traffic(store: &dyn Store) {
    let records = sample_records("kamailio-hep3-udp");

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

/// Suite test.
pub fn call_summary_status_and_duration(store: &dyn Store) {
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
            method: vec!["BYE".into()],
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
        page.items[0].message_count, 6,
        "the summary covers the whole call, also its messages before the window"
    );
}

/// Suite test.
pub fn call_flow_follows_legs_both_ways_and_transitively(store: &dyn Store) {
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

/// Suite test.
pub fn call_flow_of_real_traffic_has_the_logs(store: &dyn Store) {
    let records = sample_records("kamailio-hep3-udp");

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

/// Suite test: `open` opens the same store again (a new handle on the same data).
pub fn users_and_settings_list_delete_and_survive_reopen(open: &dyn Fn() -> Box<dyn Store>) {
    {
        let store = open();
        for (name, admin) in [("zoe", false), ("admin", true)] {
            store
                .put_user(&User {
                    name: name.into(),
                    password_hash: format!("hash-{name}"),
                    admin,
                })
                .unwrap();
        }
        store
            .put_setting("aliases", "10.0.0.1", Some("{\"name\":\"sbc\"}"))
            .unwrap();
        store
            .put_setting("aliases", "10.0.0.2", Some("old"))
            .unwrap();
        store
            .put_setting("aliases", "10.0.0.2", Some("new"))
            .unwrap();
        store.put_setting("tokens", "t1", Some("h1")).unwrap();
        assert!(store.delete_user("zoe").unwrap());
        assert!(!store.delete_user("zoe").unwrap());
        store.put_setting("tokens", "t1", None).unwrap();
    }
    let store = open();
    let names: Vec<String> = store.users().unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["admin"]);
    assert_eq!(
        store.settings("aliases").unwrap(),
        [
            ("10.0.0.1".to_string(), "{\"name\":\"sbc\"}".to_string()),
            ("10.0.0.2".to_string(), "new".to_string())
        ]
    );
    assert_eq!(
        store.setting("aliases", "10.0.0.2").unwrap().as_deref(),
        Some("new")
    );
    assert_eq!(store.setting("aliases", "nope").unwrap(), None);
    assert!(store.settings("tokens").unwrap().is_empty());
}

/// A call is listed when one of its messages falls in the search window, but its summary is
/// the whole call's: here only the BYE is inside the window, and the start, the final status
/// of the INVITE, the duration and the message count still come from every message.
pub fn call_summary_covers_the_whole_call_beyond_the_window(store: &dyn Store) {
    let t = T0 + 7_200_000_000;
    let id = "edge-of-window@example.com";
    let batch = vec![
        sip_record(t, id, "INVITE", None, "INVITE"),
        sip_record(t + 2_000_000, id, "200", Some(200), "INVITE"),
        sip_record(t + 2_100_000, id, "ACK", None, "ACK"),
        sip_record(t + 600_000_000, id, "BYE", None, "BYE"),
        sip_record(t + 600_050_000, id, "200", Some(200), "BYE"),
    ];
    assert_eq!(store.insert_batch(&batch).unwrap().stored, 5);
    let page = store
        .calls(&MessageFilter {
            from_us: Some(t + 590_000_000),
            to_us: Some(t + 700_000_000),
            limit: 10,
            ..MessageFilter::default()
        })
        .unwrap();
    assert_eq!(page.total, 1);
    let call = &page.items[0];
    assert_eq!(call.call_id, id);
    assert_eq!(call.start_us, t);
    assert_eq!(call.end_us, t + 600_050_000);
    assert_eq!(call.message_count, 5);
    assert_eq!(call.method.as_deref(), Some("INVITE"));
    assert_eq!(call.status, Some(200));
    assert_eq!(call.duration_ms, Some(598_000));
}

/// Every record of a scan, page by page with `limit`; checks each page's contract.
pub fn scan_all(store: &dyn Store, mut request: store::ScanRequest) -> Vec<StoredMessage> {
    let mut out: Vec<StoredMessage> = Vec::new();
    for _ in 0..100_000 {
        let page = store.scan(&request).unwrap();
        assert!(page.items.len() <= request.limit.max(1));
        for m in &page.items {
            if let Some(a) = request.after {
                assert!(a.is_before(m.record.time_us, m.id), "{a:?} then {}", m.id);
            }
            if let Some(next) = page.next {
                assert!(
                    !next.is_before(m.record.time_us, m.id),
                    "item past next {next:?}"
                );
            }
        }
        out.extend(page.items);
        match page.next {
            Some(next) => request.after = Some(next),
            None => return out,
        }
    }
    panic!("the scan never ended");
}

/// `Store::scan` reads every record of a window exactly once, in ascending (time, id), in
/// pages of any size, resuming from any position: also across many records of one instant,
/// across partition periods, days apart, and around the window's ends.
pub fn scan_reads_every_record_once_in_order(store: &dyn Store) {
    let mut records = Vec::new();
    for (i, mut r) in load_scan_samples().into_iter().enumerate() {
        // Spread over three days; every 7th record lands on one instant.
        r.time_us = if i % 7 == 0 {
            T0 + 5 * HOUR_US
        } else {
            T0 + (i as i64 % 3) * DAY_US + i as i64 * 1_000_003
        };
        records.push(r);
    }
    for chunk in records.chunks(37) {
        let out = store.insert_batch(chunk).unwrap();
        assert_eq!(out.stored, chunk.len(), "{:?}", out.rejected);
    }
    let mut expected = all_messages(store);
    expected.sort_by_key(|m| (m.record.time_us, m.id));
    assert_eq!(expected.len(), records.len());
    let ids = |v: &[StoredMessage]| -> Vec<(i64, i64)> {
        v.iter().map(|m| (m.record.time_us, m.id)).collect()
    };
    for limit in [1, 7, 50, 1000] {
        let got = scan_all(
            store,
            store::ScanRequest {
                limit,
                ..Default::default()
            },
        );
        assert_eq!(ids(&got), ids(&expected), "limit {limit}");
    }
    // The records themselves, as the search reads them.
    let got = scan_all(
        store,
        store::ScanRequest {
            limit: 100,
            ..Default::default()
        },
    );
    assert_eq!(got, expected);
    // A window, and resuming from positions inside it.
    let (from, to) = (T0 + 5 * HOUR_US, T0 + DAY_US + 2 * HOUR_US);
    let in_window: Vec<StoredMessage> = expected
        .iter()
        .filter(|m| m.record.time_us >= from && m.record.time_us < to)
        .cloned()
        .collect();
    assert!(in_window.len() > 20);
    let window = store::ScanRequest {
        from_us: Some(from),
        to_us: Some(to),
        after: None,
        limit: 9,
    };
    assert_eq!(ids(&scan_all(store, window)), ids(&in_window));
    for k in [0, 1, 5, in_window.len() / 2, in_window.len() - 1] {
        let after = store::ScanPosition::of(&in_window[k]);
        let rest = scan_all(
            store,
            store::ScanRequest {
                after: Some(after),
                ..window
            },
        );
        assert_eq!(ids(&rest), ids(&in_window[k + 1..]), "after #{k}");
    }
    // Before an instant: every record of that instant follows.
    let rest = scan_all(
        store,
        store::ScanRequest {
            after: Some(store::ScanPosition::before(T0 + 5 * HOUR_US)),
            ..window
        },
    );
    assert_eq!(ids(&rest), ids(&in_window));
    // Nothing outside the records' span.
    let none = store
        .scan(&store::ScanRequest {
            from_us: Some(T0 + 10 * DAY_US),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(none.items.is_empty() && none.next.is_none());
}

fn load_scan_samples() -> Vec<Record> {
    sample_records("kamailio-hep3-udp")
}

/// The rows of the method/status tests: a REGISTER challenged with 401 then accepted, an INVITE
/// rejected with 486, one challenged with 407 then answered and hung up, one still ringing.
fn load_status_rows(store: &dyn Store) {
    let reply = |t, sid: &str, code, cseq: &str| sip_record(T0 + t, sid, "", Some(code), cseq);
    let request = |t, sid: &str, method: &str| sip_record(T0 + t, sid, method, None, method);
    let mut register = request(10, "reg-1", "REGISTER");
    register.sip.as_mut().unwrap().user_agent = Some("SIPp/3.7".into());
    let mut ok = reply(13, "reg-1", 200, "REGISTER");
    ok.sip.as_mut().unwrap().server = Some("Kamailio (5.8)".into());
    let mut invite = request(20, "call-x", "INVITE");
    invite.sip.as_mut().unwrap().from_user = Some("Alice.Smith".into());
    let rows = vec![
        register,
        reply(11, "reg-1", 401, "REGISTER"),
        request(12, "reg-1", "REGISTER"),
        ok,
        invite,
        reply(21, "call-x", 486, "INVITE"),
        request(30, "call-y", "INVITE"),
        reply(31, "call-y", 407, "INVITE"),
        request(32, "call-y", "INVITE"),
        reply(33, "call-y", 200, "INVITE"),
        request(34, "call-y", "BYE"),
        reply(35, "call-y", 200, "BYE"),
        request(40, "call-z", "INVITE"),
        reply(41, "call-z", 180, "INVITE"),
    ];
    assert_eq!(store.insert_batch(&rows).unwrap().stored, rows.len());
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Suite test: method and status lists, both together (the replies of one method), and
/// case-insensitive patterns for what people type (users, User-Agent).
pub fn method_status_lists_and_typed_text(store: &dyn Store) {
    load_status_rows(store);
    let f = MessageFilter::default;
    let by = |filter: MessageFilter| {
        // The reference semantics agree with the backend on every stored row.
        let reference: Vec<String> = all_messages(store)
            .into_iter()
            .filter(|m| filter.matches(&m.record, true))
            .map(|m| format!("{}@{}", m.record.sid, m.record.time_us - T0))
            .collect();
        let got = sids(store, filter.clone());
        assert_eq!(got, reference, "{filter:?}");
        got
    };
    let method = |m: &[&str], s: &[&str]| MessageFilter {
        method: strings(m),
        status: strings(s),
        ..f()
    };
    assert_eq!(
        by(method(&["INVITE", "486"], &[])),
        [
            "call-z@40",
            "call-y@32",
            "call-y@30",
            "call-x@21",
            "call-x@20"
        ]
    );
    assert_eq!(by(method(&[], &["486"])), ["call-x@21"]);
    assert_eq!(
        by(method(&[], &["4*"])),
        ["call-y@31", "call-x@21", "reg-1@11"]
    );
    assert_eq!(by(method(&[], &["40*", "48*"])), by(method(&[], &["4*"])));
    // Both: the replies to that method.
    assert_eq!(by(method(&["INVITE"], &["4*"])), ["call-y@31", "call-x@21"]);
    assert_eq!(by(method(&["invite"], &["2*"])), ["call-y@33"]);
    assert_eq!(by(method(&["BYE", "CANCEL"], &["200"])), ["call-y@35"]);
    assert!(by(method(&["REGISTER"], &["486"])).is_empty());
    // Typed text: the User-Agent (or Server) in any case, exact or pattern.
    let ua = |p: &str| MessageFilter {
        user_agent: Some(p.into()),
        ..f()
    };
    assert_eq!(by(ua("*SIPP*")), ["reg-1@10"]);
    assert_eq!(by(ua("sipp*")), ["reg-1@10"]);
    assert_eq!(by(ua("sipp/3.7")), ["reg-1@10"]);
    assert_eq!(by(ua("*kamailio*")), ["reg-1@13"]);
    // Users: a pattern ignores case, an exact value stays exact (the index).
    assert_eq!(
        by(MessageFilter {
            from_user: Some("alice.s*".into()),
            ..f()
        }),
        ["call-x@20"]
    );
    assert_eq!(
        by(MessageFilter {
            any_user: Some("*SMITH".into()),
            ..f()
        }),
        ["call-x@20"]
    );
    assert!(by(MessageFilter {
        from_user: Some("alice.smith".into()),
        ..f()
    })
    .is_empty());
    assert_eq!(
        by(MessageFilter {
            from_user: Some("Alice.Smith".into()),
            ..f()
        }),
        ["call-x@20"]
    );
}

type CallPage = (u64, Vec<(String, Option<u16>)>, Option<String>);

/// Suite test: the final-status filter of the call list ("show me the failed calls") looks at
/// how each call ended, not at any reply in it.
pub fn calls_by_final_status(store: &dyn Store) {
    load_status_rows(store);
    let calls = |final_status: &[&str], status: &[&str], limit: usize, cursor: Option<String>| {
        let page = store
            .calls(&MessageFilter {
                final_status: strings(final_status),
                status: strings(status),
                limit,
                cursor,
                ..MessageFilter::default()
            })
            .unwrap();
        let ids: Vec<(String, Option<u16>)> = page
            .items
            .iter()
            .map(|c| (c.call_id.clone(), c.status))
            .collect();
        (page.total, ids, page.next)
    };
    let ids = |v: CallPage| -> Vec<String> { v.1.into_iter().map(|(id, _)| id).collect() };
    // Any 4xx reply in the call: the REGISTER that was challenged is listed too.
    assert_eq!(
        ids(calls(&[], &["4*"], 100, None)),
        ["call-y", "call-x", "reg-1"]
    );
    // The final status: only the call that failed.
    assert_eq!(
        calls(&["4*", "5*", "6*"], &[], 100, None),
        (1, vec![("call-x".to_string(), Some(486))], None)
    );
    assert_eq!(
        ids(calls(&["2*"], &[], 100, None)),
        ["call-y", "reg-1"],
        "the REGISTER and the INVITE that succeeded after a challenge"
    );
    // A call without a final reply has no final status.
    assert!(ids(calls(&["1*"], &[], 100, None)).is_empty());
    assert_eq!(calls(&["*"], &[], 100, None).0, 3);
    // Pages of a final-status search count and page only the matching calls.
    let (total, first, next) = calls(&["2*", "486"], &[], 2, None);
    assert_eq!((total, first.len()), (3, 2));
    let (total, second, next) = calls(&["2*", "486"], &[], 2, next);
    assert_eq!((total, second.len(), next), (3, 1, None));
    let mut all: Vec<String> = first.into_iter().chain(second).map(|(id, _)| id).collect();
    all.sort();
    assert_eq!(all, ["call-x", "call-y", "reg-1"]);
}
