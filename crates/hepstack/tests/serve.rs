//! `hepstack serve` end to end: the real binary on loopback ports, fed by `hepstack send`
//! (replays of the real samples and synthetic load), read back through the HTTP API.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{oracle, oracle_chunk, oracle_payload, samples, send, Server};
use serde_json::Value;

/// Replays a sample directory's datagrams over UDP and checks that every message is stored
/// with the fields the oracle decode gives it.
fn replay_and_compare(dir: &str, input: &str, transport: &str) {
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(data.path(), &[], &[]);
    let to = format!(
        "{transport}://{}",
        server.addr(if transport == "udp" {
            "hep-udp"
        } else {
            "hep-tcp"
        })
    );
    let input_path = samples().join(dir).join(input);
    let flag = if input.ends_with(".hepstream") {
        "--hepstream"
    } else {
        "--hep-dir"
    };
    send(&[
        "--to",
        &to,
        flag,
        input_path.to_str().expect("path"),
        "--rate",
        "2000",
    ]);

    let expected = oracle(dir);
    // Kamailio mirrors some ACKs twice within microseconds (same bytes, same addresses): the
    // collector's dedup stores one. A retransmission carries the same bytes too, but is
    // captured hundreds of milliseconds later and is stored. Key: payload and ports; value:
    // the capture times of the copies the collector keeps (each more than the 50 ms dedup
    // window after the previous one kept).
    type Key = (String, u64, u64);
    let mut want: BTreeMap<Key, Vec<i64>> = BTreeMap::new();
    for o in &expected {
        let payload = oracle_payload(o).unwrap_or_default();
        let v3 = o["version"] == 3;
        let field = |chunk: &str, v2: &str| -> u64 {
            if v3 {
                oracle_chunk(o, chunk).and_then(Value::as_u64).unwrap_or(0)
            } else {
                o[v2].as_u64().unwrap_or(0)
            }
        };
        let ts = field("ts_sec", "ts_sec_le") * 1_000_000 + field("ts_usec", "ts_usec_le");
        want.entry((
            payload,
            field("src_port", "src_port"),
            field("dst_port", "dst_port"),
        ))
        .or_default()
        .push(i64::try_from(ts).expect("time"));
    }
    for times in want.values_mut() {
        times.sort_unstable();
        let mut kept: Vec<i64> = Vec::new();
        for &t in times.iter() {
            if kept.last().map_or(true, |&last| t - last > 50_000) {
                kept.push(t);
            }
        }
        *times = kept;
    }
    let distinct = want.values().map(|t| t.len() as u64).sum::<u64>();
    let retransmitted = want.values().filter(|t| t.len() > 1).count();
    let total = server.wait_total("", distinct, Duration::from_secs(30));
    assert_eq!(total, distinct, "{dir}: every distinct message stored once");
    let stored = server.all_messages("");
    let mut got: BTreeMap<Key, Vec<i64>> = BTreeMap::new();
    for m in &stored {
        let key = (
            m["raw"].as_str().unwrap_or_default().to_string(),
            m["src_port"].as_u64().unwrap_or(0),
            m["dst_port"].as_u64().unwrap_or(0),
        );
        let time = m["time_us"].as_i64().expect("time_us");
        got.entry(key.clone()).or_default().push(time);
        let times = want
            .get(&key)
            .unwrap_or_else(|| panic!("{dir}: not in the oracle: {key:?}"));
        assert!(
            times.contains(&time),
            "{dir}: capture time {time} is one of {times:?}"
        );
        if m["hep_type"] == 1 {
            let raw = m["raw"].as_str().unwrap_or_default();
            let call_id = m["callid"].as_str().expect("Call-ID indexed");
            assert!(
                raw.contains(call_id),
                "Call-ID {call_id} comes from the message"
            );
            assert_eq!(m["sid"], m["callid"], "sid is the Call-ID for SIP");
            assert!(m["method"].is_string(), "method or status indexed: {m}");
        }
    }
    for (key, times) in &mut got {
        times.sort_unstable();
        assert_eq!(Some(&*times), want.get(key), "{dir}: {key:?}");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{dir}: every oracle message is stored"
    );
    if dir == "kamailio-hep3-udp" {
        assert!(
            retransmitted > 0,
            "the sample has retransmissions; all are kept"
        );
    }
    assert!(server.stop().success());
}

#[test]
fn replays_of_every_sample_directory_are_stored_with_the_oracle_fields() {
    replay_and_compare("kamailio-hep3-udp", "datagrams", "udp");
    replay_and_compare("kamailio-hep2-udp", "datagrams", "udp");
    replay_and_compare("rtpengine-hep3-rtcp", "datagrams", "udp");
    replay_and_compare("kamailio-hep3-tcp", "frames.hepstream", "tcp");
}

#[test]
fn synthetic_load_is_searchable_and_calls_have_flows() {
    let data = tempfile::tempdir().expect("tmp");
    // B-legs carry their A-leg's Call-ID in X-CID; configured here through the environment.
    let env = [(
        "HEPSTACK_HEP__PIPELINE__ALEG_HEADERS",
        r#"[{ header = "X-CID" }]"#,
    )];
    let mut server = Server::start(data.path(), &[], &env);
    let to = format!("tcp://{}", server.addr("hep-tcp"));
    let out = send(&[
        "--to", &to, "--calls", "20", "--rate", "5000", "--seed", "7", "--b-legs", "--json",
    ]);
    let summary: Value =
        serde_json::from_str(out.lines().last().expect("summary")).expect("json summary");
    let sent = summary["messages"].as_u64().expect("messages sent");
    assert!(sent > 100);
    // Synthetic calls last minutes of capture time from now on: search all of time.
    let total = server.wait_total("", sent, Duration::from_secs(30));
    assert_eq!(total, sent, "everything sent is stored");

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
    assert!(!flow["hosts"].as_array().expect("hosts").is_empty());

    let by_user = server.get(&format!(
        "/api/v1/messages?from_user={}&limit=5&from=0&to=4102444800000",
        urlencode(answered["from_user"].as_str().expect("from user"))
    ));
    assert!(by_user["total"].as_u64().expect("total") >= 1);

    let metrics = server.metrics();
    assert!(
        metrics.contains("hepstack_packets_stored_total"),
        "{metrics}"
    );
    assert!(server.stop().success());
}

#[test]
fn unauthenticated_requests_get_401_and_healthz_answers() {
    let data = tempfile::tempdir().expect("tmp");
    let server = Server::start(data.path(), &[], &[]);
    let err = ureq::get(&server.url("/api/v1/messages"))
        .call()
        .expect_err("no token");
    assert!(matches!(err, ureq::Error::Status(401, _)), "{err}");
    let bad = ureq::post(&server.url("/api/v1/login"))
        .send_json(serde_json::json!({"username": "admin", "password": "wrong"}))
        .expect_err("bad password");
    assert!(matches!(bad, ureq::Error::Status(401 | 429, _)), "{bad}");
    let health: Value = ureq::get(&server.url("/healthz"))
        .call()
        .expect("healthz")
        .into_json()
        .expect("json");
    assert_eq!(health["status"], "ok");
    assert!(server.stop().success());
}

#[test]
fn first_start_without_a_password_prints_a_random_one_once() {
    let data = tempfile::tempdir().expect("tmp");
    let start = |data: &std::path::Path| {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args([
                "--hep-udp",
                "127.0.0.1:0",
                "--hep-tcp",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .args(["--metrics", "off"])
            .env_remove("HEPSTACK_ADMIN_PASSWORD")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        Server::spawn(cmd, data)
    };
    let mut first = start(data.path());
    first.pump(Duration::from_millis(300));
    let line = first
        .seen
        .iter()
        .find(|l| l.contains("created user admin with password"))
        .cloned();
    let password = line
        .expect("password printed")
        .rsplit(' ')
        .next()
        .expect("password")
        .to_string();
    assert!(password.len() >= 16);
    let login: Value = ureq::post(&first.url("/api/v1/login"))
        .send_json(serde_json::json!({"username": "admin", "password": password}))
        .expect("login with the printed password")
        .into_json()
        .expect("json");
    assert!(login["token"].is_string());
    assert!(first.stop().success());

    let mut second = start(data.path());
    second.pump(Duration::from_millis(300));
    assert!(
        second.seen.iter().all(|l| !l.contains("password")),
        "not printed again: {:?}",
        second.seen
    );
    assert!(second.stop().success());
}

/// The sum of `hepstack_packets_received_total` in a `/metrics` text.
fn received_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("hepstack_packets_received_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn sigterm_drains_and_sigkill_loses_at_most_the_last_second() {
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(data.path(), &[], &[]);
    let to = format!("tcp://{}", server.addr("hep-tcp"));
    // A bounded load at 2,000 msg/s; SIGKILL arrives while it is running.
    let mut sender = std::process::Command::new(common::bin())
        .args([
            "send", "--to", &to, "--count", "8000", "--rate", "2000", "--seed", "3", "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("send");
    std::thread::sleep(Duration::from_millis(2000));
    server.pump(Duration::from_millis(10));
    let before_kill = server.total("");
    let received = received_total(&server.metrics());
    common::signal(&server.child, libc::SIGKILL);
    let _ = server.child.wait();
    let _ = sender.kill();
    let _ = sender.wait();
    // Restart on the same data dir: everything committed (and spooled) is there.
    let mut restarted = Server::start(data.path(), &[], &[]);
    let after = restarted.wait_total("", before_kill, Duration::from_secs(20));
    assert!(
        after >= before_kill,
        "nothing stored before the kill is lost: {before_kill} -> {after}"
    );
    assert!(after > 0);
    // What a crash can lose (docs/security.md): the records received but not yet committed,
    // those of the last `writer.max_batch_delay_ms` (100 ms) and of the commit in progress,
    // at most one second of traffic: 2,000 messages at this rate.
    let after = restarted.wait_total("", received, Duration::from_secs(5));
    let lost = received.saturating_sub(after);
    eprintln!("SIGKILL at 2,000 msg/s: {received} received before the kill, {lost} lost");
    assert!(lost <= 2000, "{lost} of {received} received messages lost");

    // Traffic older than one second at the moment of SIGKILL must survive it.
    let to = format!("tcp://{}", restarted.addr("hep-tcp"));
    let base = restarted.wait_total("", after, Duration::from_secs(5));
    let out = send(&[
        "--to", &to, "--count", "4000", "--rate", "4000", "--seed", "5", "--json",
    ]);
    let summary: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    let sent = summary["messages"].as_u64().expect("sent");
    std::thread::sleep(Duration::from_millis(1200));
    common::signal(&restarted.child, libc::SIGKILL);
    let _ = restarted.child.wait();
    drop(restarted);
    let mut restarted = Server::start(data.path(), &[], &[]);
    let total = restarted.wait_total("", base + sent, Duration::from_secs(20));
    assert_eq!(
        total,
        base + sent,
        "SIGKILL more than a second after the last packet loses nothing"
    );

    // SIGTERM drains: messages sent just before it are all stored.
    let to = format!("tcp://{}", restarted.addr("hep-tcp"));
    let base = restarted.total("");
    let out = send(&[
        "--to", &to, "--count", "3000", "--rate", "50000", "--seed", "4", "--json",
    ]);
    let summary: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    let sent = summary["messages"].as_u64().expect("sent");
    assert!(restarted.stop().success(), "clean exit on SIGTERM");
    let mut third = Server::start(data.path(), &[], &[]);
    let total = third.wait_total("", base + sent, Duration::from_secs(20));
    assert_eq!(total, base + sent, "SIGTERM stored everything received");
    assert!(third.stop().success());
}

#[test]
fn config_default_round_trips_through_serve() {
    let out = std::process::Command::new(common::bin())
        .args(["config", "default"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("hepstack.toml");
    std::fs::write(&file, &out.stdout).expect("write");
    let check = std::process::Command::new(common::bin())
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::write(&file, "[hep.writer]\nbatch_sise = 1\n").expect("write");
    let bad = std::process::Command::new(common::bin())
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("batch_sise"));
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sum of the values of the metric lines that start with `prefix`.
fn metric_sum(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A burst far past the KPI tables' caps (and the KPI queue's size): every message is stored,
/// the tables stay at their caps by forgetting their oldest items (counted), what the KPI
/// thread could not take is shed and counted, and `/healthz` keeps answering throughout.
#[test]
fn a_burst_past_the_kpi_caps_loses_nothing_and_healthz_keeps_answering() {
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(
        data.path(),
        &[],
        &[
            ("HEPSTACK_KPI__MAX_TRANSACTIONS", "200"),
            ("HEPSTACK_KPI__MAX_SESSIONS", "100"),
            ("HEPSTACK_KPI__MAX_REGISTRATIONS", "50"),
            ("HEPSTACK_KPI__QUEUE_CAPACITY", "2048"),
        ],
    );
    let health_url = server.url("/healthz");
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build();
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match agent.get(&health_url).call() {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (ok, failed)
        })
    };
    let to = format!("tcp://{}", server.addr("hep-tcp"));
    let out = send(&["--to", &to, "--count", "40000", "--seed", "11", "--json"]);
    let summary: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    let sent = summary["messages"].as_u64().expect("sent");
    let stored = server.wait_total("", sent, Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = prober.join().expect("prober");
    assert_eq!(stored, sent, "every message of the burst is stored");
    assert!(failed.is_empty(), "healthz failed: {failed:?}");
    assert!(ok > 0);
    // The KPI thread has taken or shed every record the pipeline accepted, and its reorder
    // buffer, which holds SIP messages for `reorder_window_ms` of wall-clock time, has released
    // them to the engine (a burst on an idle machine is stored before that window has passed).
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = server.metrics();
        let taken = metric_sum(&text, "hepstack_output_sent_total{output=\"kpi\"}")
            + metric_sum(&text, "hepstack_output_dropped_total{output=\"kpi\"");
        let pending = metric_sum(&text, "hepstack_kpi_reorder_pending");
        if (taken >= sent && pending == 0) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let taken = metric_sum(&text, "hepstack_output_sent_total{output=\"kpi\"}")
        + metric_sum(&text, "hepstack_output_dropped_total{output=\"kpi\"");
    assert_eq!(taken, sent, "{text}");
    assert!(
        metric_sum(&text, "hepstack_kpi_tracking_overflow_total") > 0,
        "the caps were reached: {text}"
    );
    assert!(metric_sum(&text, "hepstack_kpi_tracked{kind=\"transactions\"}") <= 200);
    assert!(metric_sum(&text, "hepstack_kpi_tracked{kind=\"sessions\"}") <= 100);
    assert_eq!(metric_sum(&text, "hepstack_packets_dropped_total"), 0);
    assert!(server.stop().success());
}
