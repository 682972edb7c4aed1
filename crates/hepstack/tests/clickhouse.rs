//! `hepstack serve --store clickhouse://…` end to end: the real binary fed by `hepstack send`,
//! on the single ClickHouse node and on the 2 x 2 cluster with two collectors and a
//! query-only node, queried through the API (calls, flows with every leg).

#[path = "../../store/tests/suite/ch_harness.rs"]
mod ch_harness;
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use ch_harness::{sql, TestDb, CLUSTER};
use common::*;
use serde_json::Value;

const B_LEGS: (&str, &str) = (
    "HEPSTACK_HEP__PIPELINE__ALEG_HEADERS",
    r#"[{ header = "X-CID" }]"#,
);

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn send_calls(server: &Server, calls: &str, seed: &str) -> u64 {
    let to = format!("tcp://{}", server.addr("hep-tcp"));
    let out = send(&[
        "--to", &to, "--calls", calls, "--rate", "5000", "--seed", seed, "--b-legs", "--json",
    ]);
    let summary: Value =
        serde_json::from_str(out.lines().last().expect("summary")).expect("json summary");
    summary["messages"].as_u64().expect("messages sent")
}

/// An answered call's flow shows its A-leg and B-leg.
fn check_flow(server: &mut Server) {
    let calls = server.get("/api/v1/calls?limit=100&from=0&to=4102444800000");
    let items = calls["items"].as_array().expect("calls");
    assert!(!items.is_empty());
    let answered = items
        .iter()
        .find(|c| c["status"] == 200 && c["method"] == "INVITE")
        .expect("an answered call");
    let call_id = answered["call_id"].as_str().expect("call id");
    let flow = server.get(&format!("/api/v1/calls/{}/flow", urlencode(call_id)));
    assert!(
        flow["messages"].as_array().expect("messages").len() >= 5,
        "{flow}"
    );
    assert!(
        flow["legs"].as_array().expect("legs").len() >= 2,
        "A-leg and its B-leg: {}",
        flow["legs"]
    );
    let by_user = server.get(&format!(
        "/api/v1/messages?from_user={}&limit=5&from=0&to=4102444800000",
        urlencode(answered["from_user"].as_str().expect("from user"))
    ));
    assert!(by_user["total"].as_u64().expect("total") >= 1);
}

#[test]
fn serve_stores_in_a_single_clickhouse_and_answers_flows() {
    let Some(db) = TestDb::new("e2e_single", false) else {
        return;
    };
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(data.path(), &["--store", &db.url()], &[B_LEGS]);
    let sent = send_calls(&server, "20", "7");
    assert!(sent > 100);
    let total = server.wait_total("", sent, Duration::from_secs(30));
    assert_eq!(total, sent, "everything sent is stored");
    let rows: u64 = sql(
        db.port(),
        &format!(
            "SELECT (SELECT count() FROM {0}.sip) + (SELECT count() FROM {0}.qos) + (SELECT count() FROM {0}.logs) + (SELECT count() FROM {0}.other)",
            db.name
        ),
    )
    .expect("count")
    .trim()
    .parse()
    .expect("number");
    assert_eq!(rows, sent, "the rows are in ClickHouse");
    check_flow(&mut server);
    assert!(server.stop().success());
}

/// Two collectors write to the cluster through different nodes; a third `serve` with no HEP
/// listener reads everything both stored, and the flows of either's calls.
#[test]
fn two_collectors_and_a_query_only_node_share_the_cluster() {
    let Some(db) = TestDb::new("e2e_cluster", true) else {
        return;
    };
    let via = |first: u16, second: u16| {
        format!(
            "clickhouse://default@127.0.0.1:{first},127.0.0.1:{second}/{}?cluster=hep",
            db.name
        )
    };
    let (d1, d2, d3) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let c1 = Server::start(
        d1.path(),
        &["--store", &via(CLUSTER[0], CLUSTER[2])],
        &[B_LEGS],
    );
    let c2 = Server::start(
        d2.path(),
        &["--store", &via(CLUSTER[3], CLUSTER[1])],
        &[B_LEGS],
    );
    let sent = send_calls(&c1, "15", "11") + send_calls(&c2, "15", "12");
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(d3.path())
        .args(["--hep-udp", "off", "--hep-tcp", "off"])
        .args(["--http", "127.0.0.1:0", "--metrics", "off"])
        .args(["--store", &via(CLUSTER[1], CLUSTER[3])])
        .env("HEPSTACK_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HEPSTACK_STORE__CLICKHOUSE__RETENTION_DAYS", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut reader = Server::spawn(cmd, d3.path());
    let total = reader.wait_total("", sent, Duration::from_secs(60));
    assert_eq!(
        total, sent,
        "the query-only node sees both collectors' messages"
    );
    check_flow(&mut reader);
    for s in [c1, c2, reader] {
        assert!(s.stop().success());
    }
}

/// `hepstack import` from the embedded store into ClickHouse and back out of it: every message
/// arrives, and a second run (resumed from its checkpoint) adds nothing.
#[test]
fn import_copies_an_embedded_store_into_clickhouse() {
    let Some(db) = TestDb::new("import", false) else {
        return;
    };
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(data.path(), &[], &[B_LEGS]);
    let sent = send_calls(&server, "10", "5");
    assert_eq!(server.wait_total("", sent, Duration::from_secs(30)), sent);
    assert!(server.stop().success());
    let state = data.path().join("import-state.json");
    for _ in 0..2 {
        let out = Command::new(bin())
            .args(["import", "--from"])
            .arg(format!("sqlite:{}", data.path().display()))
            .args(["--to", &db.url(), "--state"])
            .arg(&state)
            .env("HEPSTACK_STORE__CLICKHOUSE__RETENTION_DAYS", "0")
            .output()
            .expect("import");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows: u64 = sql(
        db.port(),
        &format!(
            "SELECT (SELECT count() FROM {0}.sip) + (SELECT count() FROM {0}.qos) + (SELECT count() FROM {0}.logs) + (SELECT count() FROM {0}.other)",
            db.name
        ),
    )
    .expect("count")
    .trim()
    .parse()
    .expect("number");
    assert_eq!(rows, sent);
}
