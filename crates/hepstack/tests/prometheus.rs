//! KPI export end to end: the real binary fed with the real Kamailio + SIPp and rtpengine
//! samples, `/metrics` checked against the Grafana dashboards in `dashboards/`, and a real
//! Prometheus (Debian package) scraping hepstack every second and answering a PromQL query
//! for each KPI. Without `/usr/bin/prometheus` the Prometheus part is skipped loudly, or fails
//! when `HEPSTACK_REQUIRE_PEERS=1`.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{samples, send, Server};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards")
}

/// `(name{labels}, value)` of every sample line.
fn samples_of(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, series: &str) -> Option<f64> {
    samples_of(text)
        .into_iter()
        .find(|(k, _)| k == series)
        .map(|(_, v)| v)
}

/// Starts hepstack with a `proxy` target group, Loki export on and `extra` configuration,
/// replays the samples and waits until the KPI engine has tracked every SIP message.
fn fed_server(dir: &Path, extra: &str) -> Server {
    let config = dir.join("hepstack.toml");
    std::fs::write(
        &config,
        extra.to_owned()
            + r#"
[kpi]
# The samples were captured minutes apart (Kamailio, then rtpengine): one window holds both.
window_secs = 3600
targets = [{ name = "proxy", addresses = ["127.0.0.1:5060"] }]
[loki]
enabled = true
# Nothing listens on port 1: pushes fail fast and are counted as drops.
url = "http://127.0.0.1:1/loki/api/v1/push"
max_retries = 0
batch_wait_ms = 100
"#,
    )
    .expect("config");
    let data = dir.join("data");
    let mut server = Server::start(&data, &["--config", config.to_str().expect("path")], &[]);
    let to = format!("udp://{}", server.addr("hep-udp"));
    for sample in ["kamailio-hep3-udp", "rtpengine-hep3-rtcp"] {
        let d = samples().join(sample).join("datagrams");
        send(&[
            "--to",
            &to,
            "--hep-dir",
            d.to_str().expect("path"),
            "--rate",
            "2000",
        ]);
    }
    let series =
        r#"hepstack_kpi_session_attempts_total{node="2001",target="proxy",direction="in"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = server.metrics();
        // The RTCP sample is sent after the SIP one: with its reports in, every SIP message
        // was received, and an empty reorder buffer means every one was tracked.
        let tracked = value(&m, "hepstack_kpi_reorder_pending") == Some(0.0);
        if value(&m, series) == Some(23.0) && m.contains("hepstack_qos_mos_avg{") && tracked {
            break;
        }
        assert!(Instant::now() < deadline, "KPIs did not arrive:\n{m}");
        server.pump(Duration::from_millis(200));
    }
    server
}

/// Every metric /metrics declares (`# TYPE`) or has a sample of. A declared gauge without a
/// sample is one whose data has not been seen yet (no RTT in the sample RTCP, say): a dashboard
/// may query it.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = samples_of(text)
        .into_iter()
        .map(|(k, _)| k.split('{').next().unwrap_or("").to_string())
        .collect();
    for line in text.lines() {
        let mut words = line
            .strip_prefix("# TYPE ")
            .unwrap_or("")
            .split_whitespace();
        if let (Some(name), Some(kind)) = (words.next(), words.next()) {
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "expr"
                    || (k == "query" && v.as_str().is_some_and(|s| s.contains("hepstack_")))
                {
                    out.push(v.as_str().unwrap_or_default().to_string());
                } else {
                    exprs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(p) = expr[i..].find("hepstack_") {
        let start = i + p;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        out.push(expr[start..end].to_string());
        i = end;
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(port: u16, promql: &str) -> Vec<Value> {
    let resp: Value = match ureq::get(&format!("http://127.0.0.1:{port}/api/v1/query"))
        .query("query", promql)
        .call()
    {
        Ok(r) => r.into_json().expect("json"),
        Err(_) => return Vec::new(),
    };
    assert_eq!(resp["status"], "success", "{promql}: {resp}");
    resp["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn dashboards_only_use_rendered_metrics_and_prometheus_answers_every_kpi() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = fed_server(dir.path(), "");
    let text = server.metrics();

    // 1. The reference KPIs of the UAC legs, straight from /metrics.
    let l = r#"{node="2001",target="proxy",direction="in"}"#;
    let pct = |name: &str| value(&text, &format!("{name}{l}")).map(|v| (v * 100.0).round() / 100.0);
    assert_eq!(pct("hepstack_kpi_ser_percent"), Some(56.52), "{text}");
    assert_eq!(pct("hepstack_kpi_seer_percent"), Some(69.57));
    assert_eq!(pct("hepstack_kpi_isa_percent"), Some(8.7));
    assert_eq!(pct("hepstack_kpi_ira_percent"), Some(28.57));

    // The UI's JSON: the same figures, and a per-minute series that adds up.
    let snap = server.get("/api/v1/kpi?window=3600");
    let scope = snap["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .find(|s| s["node"] == "2001" && s["target"] == "proxy" && s["direction"] == "in")
        .cloned()
        .expect("proxy/in scope");
    assert_eq!(scope["window"]["ser_percent"], 56.52, "{scope}");
    assert_eq!(scope["window"]["ira_percent"], 28.57);
    assert_eq!(scope["totals"]["requests"]["INVITE"], 23);
    let now_ms = snap["now_ms"].as_i64().expect("now_ms");
    let series = server.get(&format!(
        "/api/v1/kpi/series?from={}&to={}&target=proxy&direction=in",
        now_ms - 3_600_000,
        now_ms + 60_000
    ));
    let attempts: u64 = series["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["session_attempts"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(attempts, 23, "{series}");

    // 2. Every metric the dashboards query exists in the rendered output.
    let rendered = metric_names(&text);
    let mut checked = 0;
    for entry in std::fs::read_dir(dashboards_dir()).expect("dashboards/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let dash: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("dashboard JSON");
        assert!(
            dash["panels"].as_array().is_some_and(|p| !p.is_empty()),
            "{path:?} has no panels"
        );
        let mut all = Vec::new();
        exprs(&dash, &mut all);
        assert!(!all.is_empty(), "{path:?} has no queries");
        for e in all {
            for name in names_in(&e) {
                assert!(
                    rendered.contains(&name),
                    "{path:?} uses {name}, which /metrics does not render"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} metric references found");

    // 3. A real Prometheus scrapes hepstack and answers a query per KPI.
    if !Path::new(PROMETHEUS).exists() {
        assert!(
            std::env::var("HEPSTACK_REQUIRE_PEERS").as_deref() != Ok("1"),
            "{PROMETHEUS} is missing and HEPSTACK_REQUIRE_PEERS=1"
        );
        eprintln!("SKIPPED: {PROMETHEUS} not installed (apt install prometheus); the Prometheus scrape part did not run");
        server.stop();
        return;
    }
    let port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: hepstack\n    static_configs:\n      - targets: ['{}']\n",
            server.addr("metrics")
        ),
    )
    .expect("prometheus.yml");
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prom = Prometheus(child);
    let sel = r#"{node="2001",target="proxy",direction="in"}"#;
    let checks: Vec<(String, Option<f64>)> = vec![
        (format!("round(hepstack_kpi_ser_percent{sel}, 0.01)"), Some(56.52)),
        (format!("round(hepstack_kpi_seer_percent{sel}, 0.01)"), Some(69.57)),
        (format!("round(hepstack_kpi_isa_percent{sel}, 0.01)"), Some(8.7)),
        (format!("round(hepstack_kpi_ira_percent{sel}, 0.01)"), Some(28.57)),
        (format!("round(hepstack_kpi_scr_percent{sel}, 0.01)"), Some(56.52)),
        ("hepstack_kpi_srd_seconds_count{node=\"2001\",target=\"proxy\",direction=\"in\",outcome=\"success\"}".to_string(), Some(18.0)),
        ("hepstack_kpi_rrd_seconds_count{node=\"2001\",target=\"proxy\",direction=\"in\",outcome=\"success\"}".to_string(), Some(5.0)),
        ("hepstack_kpi_sdd_seconds_count{node=\"2001\",target=\"proxy\",direction=\"in\",outcome=\"success\"}".to_string(), Some(13.0)),
        (format!("hepstack_kpi_sdt_seconds_count{sel}"), Some(13.0)),
        ("sum(hepstack_sip_requests_total{node=\"2001\",target=\"proxy\",direction=\"in\",method=\"INVITE\"})".to_string(), Some(23.0)),
        ("sum(hepstack_qos_reports_total{target=\"any\"}) > 0".into(), None),
        ("hepstack_qos_mos_avg{target=\"any\"} > 1".into(), None),
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    for (q, want) in checks {
        loop {
            let r = query(port, &q);
            if let Some(first) = r.first() {
                let v: f64 = first["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("sample value");
                if let Some(w) = want {
                    assert!((v - w).abs() < 1e-9, "{q} = {v}, want {w}");
                }
                break;
            }
            assert!(Instant::now() < deadline, "Prometheus never answered {q}");
            std::thread::sleep(Duration::from_millis(500));
            server.pump(Duration::from_millis(10));
        }
    }
    let status = server.stop();
    assert!(status.success(), "{status}");
}

/// The KPI and SIP counter lines of a `/metrics` text.
fn kpi_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("hepstack_kpi_") || l.starts_with("hepstack_sip_"))
        .map(str::to_owned)
        .collect()
}

/// Four writer threads storing batches of a few records each finish their batches out of
/// order; the reorder buffer puts the SIP messages back in receive order, so every KPI is
/// what one writer thread gives.
#[test]
fn kpis_are_exact_with_parallel_writers() {
    let mut texts = Vec::new();
    for writers in [1, 4] {
        let dir = tempfile::tempdir().expect("tmp");
        let extra = format!(
            "[hep.writer]\nwriter_threads = {writers}\nbatch_size = 4\nmax_batch_delay_ms = 1\n"
        );
        let server = fed_server(dir.path(), &extra);
        texts.push(server.metrics());
        let status = server.stop();
        assert!(status.success(), "{status}");
    }
    let (one, four) = (kpi_lines(&texts[0]), kpi_lines(&texts[1]));
    let only_one: Vec<_> = one.difference(&four).collect();
    let only_four: Vec<_> = four.difference(&one).collect();
    assert!(
        only_one.is_empty() && only_four.is_empty(),
        "one writer only: {only_one:#?}\nfour writers only: {only_four:#?}"
    );
    let text = &texts[1];
    let l = r#"{node="2001",target="proxy",direction="in"}"#;
    let pct = |name: &str| value(text, &format!("{name}{l}")).map(|v| (v * 100.0).round() / 100.0);
    assert_eq!(pct("hepstack_kpi_ser_percent"), Some(56.52), "{text}");
    assert_eq!(pct("hepstack_kpi_seer_percent"), Some(69.57));
    assert_eq!(pct("hepstack_kpi_isa_percent"), Some(8.7));
    assert_eq!(pct("hepstack_kpi_ira_percent"), Some(28.57));
    assert_eq!(pct("hepstack_kpi_scr_percent"), Some(56.52));
    assert_eq!(value(text, "hepstack_kpi_late_messages_total"), Some(0.0));
}
