//! `hepstack import` end to end: a real heplify-server (`../shared/peers/heplify-server`)
//! writes a HOMER 7 `homer_data` database from traffic `hepstack send` generates; the import
//! into the embedded store is killed (`SIGKILL`) in the middle of a batch and run again, and
//! the embedded store then holds every row exactly once with the same Call-ID, users,
//! addresses, times and raw message. The copy goes on to a PostgreSQL database in hepstack's
//! layout and back into a second embedded store, with the same counts and records.

mod common;
#[path = "../../store/tests/suite/pg_harness.rs"]
mod pg_harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::peer::{port_bound, Peer};
use common::*;
use pg_harness::TestDb;
use store::Store;

fn heplify_server() -> Option<PathBuf> {
    let bin = samples().join("../peers/heplify-server");
    if !bin.is_file() {
        eprintln!("skipped: no {}", bin.display());
        return None;
    }
    let runs = Command::new(&bin)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        eprintln!("skipped: heplify-server does not run here (libluajit-5.1-2 missing?)");
        return None;
    }
    Some(bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// `SELECT …` over every HOMER table heplify-server creates (it has no `hep_proto_53_default`).
fn homer_union(select: &str) -> String {
    [
        "hep_proto_1_call",
        "hep_proto_1_registration",
        "hep_proto_1_default",
        "hep_proto_5_default",
        "hep_proto_35_default",
        "hep_proto_54_default",
        "hep_proto_100_default",
    ]
    .iter()
    .map(|t| format!("SELECT {select} FROM {t}"))
    .collect::<Vec<_>>()
    .join(" UNION ALL ")
}

fn import(from: &str, to: &str, state: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["import", "--from", from, "--to", to, "--batch", "150"])
        .arg("--state")
        .arg(state)
        .env_remove("HEPSTACK_CONFIG");
    cmd
}

fn run_import(from: &str, to: &str, state: &Path) -> (u64, String) {
    let out = import(from, to, state).output().expect("run import");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "import failed: {stderr}");
    let n = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("count on stdout: {stderr}"));
    (n, stderr)
}

/// What the test compares, per record: time, Call-ID, From/To users, addresses, raw.
type Key = (i64, String, String, String, String, String, String);

fn embedded(dir: &Path) -> Vec<Key> {
    let store = store::SqliteStore::open(store::SqliteConfig {
        data_dir: dir.join("store"),
        ..store::SqliteConfig::default()
    })
    .expect("open the embedded store");
    let mut out = Vec::new();
    let mut request = store::ScanRequest {
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = store.scan(&request).expect("scan");
        for m in page.items {
            let r = m.record;
            let user = |f: fn(&store::SipFields) -> &Option<store::CompactString>| {
                r.sip
                    .as_ref()
                    .and_then(|s| f(s).as_deref().map(str::to_string))
                    .unwrap_or_default()
            };
            let call_id = match &r.sip {
                Some(s) => s.call_id.as_deref().unwrap_or_default().to_string(),
                None => r.sid.clone(),
            };
            out.push((
                r.time_us,
                call_id,
                user(|s| &s.from_user),
                user(|s| &s.to_user),
                r.src_ip.to_string(),
                r.dst_ip.to_string(),
                String::from_utf8_lossy(&r.raw).into_owned(),
            ));
        }
        match page.next {
            Some(next) => request.after = Some(next),
            None => break,
        }
    }
    out.sort();
    out
}

#[test]
fn a_heplify_server_database_moves_into_the_embedded_store_resuming_after_a_kill() {
    let Some(heplify) = heplify_server() else {
        return;
    };
    let Some(db) = TestDb::new("import_homer") else {
        return;
    };
    let work = tempfile::tempdir().expect("tmp");
    let (udp, tcp) = (free_port(), free_port());
    let config = work.path().join("heplify-server.toml");
    std::fs::write(
        &config,
        format!(
            "HEPAddr = \"127.0.0.1:{udp}\"\nHEPTCPAddr = \"127.0.0.1:{tcp}\"\nDBShema = \"homer7\"\n\
             DBDriver = \"postgres\"\nDBAddr = \"{}:{}\"\nDBUser = \"postgres\"\nDBPass = \"\"\n\
             DBDataTable = \"{name}\"\nDBConfTable = \"{name}\"\nDBBulk = 200\nDBTimer = 1\n\
             DBWorker = 2\nDBRotate = true\nPromAddr = \"\"\nLogStd = true\nLogLvl = \"warning\"\n",
            db.server.host,
            db.server.port,
            name = db.name
        ),
    )
    .expect("config");
    let mut cmd = Command::new(&heplify);
    cmd.arg("-config").arg(&config).current_dir(work.path());
    let mut peer = Peer::spawn("heplify-server", cmd, work.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(port_bound(tcp)
        && db
            .psql("SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass('hep_proto_1_call')")
            .is_ok_and(|n| n != "0"))
    {
        peer.assert_running();
        assert!(Instant::now() < deadline, "heplify-server never got ready:\n{}", peer.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Calls, registrations, OPTIONS, RTCP and logs, with a capture password heplify-server
    // keeps in protocol_header.capturePass (hepstack never stores one).
    send(&[
        "--to",
        &format!("tcp://127.0.0.1:{tcp}"),
        "--calls",
        "150",
        "--rate",
        "4000",
        "--auth-key",
        "hunter2-capture-pass",
        "--seed",
        "27",
    ]);
    let count_sql = format!("SELECT count(*) FROM ({}) u", homer_union("1"));
    let mut last = String::new();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(500));
        let now = db.psql(&count_sql).expect("count");
        if now == last && now != "0" {
            break;
        }
        last = now;
    }
    drop(peer);
    let source: u64 = db.psql(&count_sql).expect("count").parse().expect("number");
    assert!(source > 1000, "heplify-server stored {source} rows");
    let pass = db
        .psql("SELECT count(*) FROM hep_proto_1_call WHERE protocol_header->>'capturePass' = 'hunter2-capture-pass'")
        .expect("capturePass");
    assert_ne!(
        pass, "0",
        "heplify-server wrote no capturePass: not the layout this test is for"
    );

    // The import, killed once it is in the middle of its batches.
    let url = db.url();
    let target = work.path().join("embedded");
    let to = format!("sqlite:{}", target.display());
    let state = work.path().join("import.json");
    let mut child = import(&url, &to, &state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn import");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cp = std::fs::read_to_string(&state).unwrap_or_default();
        if let Ok(cp) = serde_json::from_str::<serde_json::Value>(&cp) {
            if cp["copied"].as_u64().unwrap_or(0) > 0 && !cp["pending"].is_null() {
                break;
            }
            assert!(
                !cp["done"].as_bool().unwrap_or(false),
                "finished before it could be killed"
            );
        }
        assert!(
            Instant::now() < deadline,
            "no progress in {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let interrupted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("json");
    assert!(interrupted["copied"].as_u64().unwrap_or(0) < source);
    let (added, log) = run_import(&url, &to, &state);
    assert!(log.contains("done"), "{log}");
    assert!(log.contains(&format!("source {source} messages")), "{log}");
    // The final count is the target's: the rows added by both runs, checked against the source.
    assert_eq!(added, source, "{log}");

    // Every row, once, with its fields.
    let rows = db
        .psql(&format!(
            "SELECT json_agg(json_build_array(t, sid, fu, tu, s, d, raw)) FROM ({}) u",
            homer_union(
                "(extract(epoch from create_date) * 1000000)::int8 AS t, \
                 coalesce(nullif(data_header->>'callid', ''), sid) AS sid, \
                 coalesce(data_header->>'from_user', '') AS fu, coalesce(data_header->>'to_user', '') AS tu, \
                 protocol_header->>'srcIp' AS s, protocol_header->>'dstIp' AS d, raw"
            )
        ))
        .expect("rows");
    let mut expected: Vec<Key> = serde_json::from_str::<Vec<Key>>(&rows).expect("rows json");
    expected.sort();
    let got = embedded(&target);
    assert_eq!(got.len(), expected.len());
    let mismatched: Vec<(&Key, &Key)> = got
        .iter()
        .zip(&expected)
        .filter(|(g, e)| g != e)
        .take(3)
        .collect();
    assert!(mismatched.is_empty(), "{mismatched:#?}");
    let calls: BTreeMap<&str, usize> = got.iter().fold(BTreeMap::new(), |mut m, k| {
        *m.entry(k.1.as_str()).or_default() += 1;
        m
    });
    assert!(calls.len() >= 150, "{} Call-IDs", calls.len());
    // No capture password made it across (the embedded store has no place for one).
    assert!(!got.iter().any(|k| k.6.contains("hunter2-capture-pass")));

    // Running it again does nothing more: the checkpoint says done.
    let (again, _) = run_import(&url, &to, &state);
    assert_eq!(again, source);
    assert_eq!(embedded(&target).len(), got.len());

    // Onwards: into PostgreSQL in hepstack's layout, and from there into a new embedded store.
    let Some(pg2) = TestDb::new("import_target") else {
        return;
    };
    let (to_pg, _) = run_import(&to, &pg2.url(), &work.path().join("to-pg.json"));
    assert_eq!(to_pg, source);
    let back = work.path().join("back");
    let (to_back, _) = run_import(
        &pg2.url(),
        &format!("sqlite:{}", back.display()),
        &work.path().join("back.json"),
    );
    assert_eq!(to_back, source);
    assert_eq!(embedded(&back), got);
}
