//! `hepstack serve --store postgres://…` end to end: the real binary, traffic replayed and
//! synthesized with `hepstack send`, rows counted in PostgreSQL — also across a PostgreSQL
//! that is down at start and restarted during the load.

mod common;
#[path = "../../store/tests/suite/pg_harness.rs"]
mod pg_harness;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pg_harness::{Server as Pg, TestDb};

const COUNT_ALL: &str = "SELECT (SELECT count(*) FROM hep_proto_1_call) + (SELECT count(*) FROM hep_proto_1_registration) \
    + (SELECT count(*) FROM hep_proto_1_default) + (SELECT count(*) FROM hep_proto_5_default) \
    + (SELECT count(*) FROM hep_proto_35_default) + (SELECT count(*) FROM hep_proto_53_default) \
    + (SELECT count(*) FROM hep_proto_54_default) + (SELECT count(*) FROM hep_proto_100_default)";

#[test]
fn replayed_samples_land_in_the_homer_tables() {
    let Some(db) = TestDb::new("e2e_samples") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let url = db.url_as("postgres", Some("never-logged-pw"));
    let mut server = Server::start(dir.path(), &["--store", &url], &[]);
    let to = format!("tcp://{}", server.addr("hep-tcp"));
    let input = samples().join("kamailio-hep3-udp").join("datagrams");
    send(&[
        "--to",
        &to,
        "--hep-dir",
        input.to_str().expect("path"),
        "--rate",
        "2000",
    ]);
    // What the collector keeps: the oracle's messages minus the duplicates its dedup drops.
    let distinct: BTreeSet<String> = oracle("kamailio-hep3-udp")
        .iter()
        .map(|o| o.to_string())
        .collect();
    let api_total = server.wait_total("", 1, Duration::from_secs(20));
    assert!(api_total > 0);
    let mut last = String::new();
    for _ in 0..50 {
        let rows = db.psql(COUNT_ALL).expect("count");
        let total = server.total("");
        if rows == last && rows == total.to_string() {
            break;
        }
        last = rows;
        std::thread::sleep(Duration::from_millis(300));
    }
    let rows: u64 = last.parse().expect("count");
    assert_eq!(
        rows,
        server.total(""),
        "the API reads what is in PostgreSQL"
    );
    assert!(
        rows as usize <= distinct.len() && rows >= 290,
        "{rows} rows of {}",
        distinct.len()
    );
    // SIP in the profile tables, the logs in hep_proto_100_default, HOMER keys in place.
    for (table, min) in [
        ("hep_proto_1_call", 100),
        ("hep_proto_1_registration", 1),
        ("hep_proto_100_default", 1),
    ] {
        let n: u64 = db
            .psql(&format!("SELECT count(*) FROM {table}"))
            .expect("count")
            .parse()
            .expect("number");
        assert!(n >= min, "{table}: {n}");
    }
    assert_eq!(
        db.psql("SELECT count(*) FROM hep_proto_1_call WHERE protocol_header ? 'srcIp' AND data_header ? 'callid' AND data_header->>'callid' = sid")
            .expect("count"),
        db.psql("SELECT count(*) FROM hep_proto_1_call").expect("count")
    );
    server.pump(Duration::from_millis(200));
    let status = server.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn postgres_down_at_start_and_restarted_mid_load_loses_nothing() {
    let Some(mut pg) = Pg::throwaway() else {
        return;
    };
    let port = pg.port;
    pg.cluster().expect("cluster").stop();
    let dir = tempfile::tempdir().expect("tmp");
    let url =
        format!("postgres://postgres:s3cret-in-url@127.0.0.1:{port}/homer_data?sslmode=disable");
    // PostgreSQL is down: serve starts anyway and receives into the spool.
    let mut server = Server::start(dir.path(), &["--store", &url], &[]);
    let to = format!("tcp://{}", server.addr("hep-tcp"));
    let burst = |seed: &str| {
        send(&[
            "--to", &to, "--count", "2000", "--seed", seed, "--rate", "4000",
        ]);
    };
    burst("1");
    assert!(pg.cluster().expect("cluster").start());
    burst("2");
    // Restarted while a load is running.
    let load = {
        let to = to.clone();
        std::thread::spawn(move || {
            send(&[
                "--to", &to, "--count", "6000", "--seed", "3", "--rate", "3000",
            ]);
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    pg.cluster().expect("cluster").stop();
    std::thread::sleep(Duration::from_millis(800));
    assert!(pg.cluster().expect("cluster").start());
    load.join().expect("load");
    let pg = Arc::new(pg);
    let want = 10_000;
    let mut got = String::new();
    for _ in 0..200 {
        got = pg.psql("homer_data", COUNT_ALL).unwrap_or_else(|e| e);
        if got == want.to_string() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    server.pump(Duration::from_millis(200));
    assert_eq!(
        got,
        want.to_string(),
        "every message stored after the outages"
    );
    assert!(
        !server.seen.iter().any(|l| l.contains("s3cret-in-url")),
        "the password leaked into the log"
    );
    let status = server.stop();
    assert!(status.success(), "{status}");
}
