//! `hepstack capture` end to end: a capture file into a real `hepstack serve`, checked through
//! its API; live capture on loopback with SIPp placing a call; the error paths of the CLI.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{bin, samples, signal, wait_timeout, Server};
use serde_json::Value;

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Call-ID → number of SIP messages, as tshark dissects the capture.
fn tshark_call_ids(path: &std::path::Path) -> BTreeMap<String, u64> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-d", "tcp.port==5060,sip", "-Y", "sip", "-T", "fields"])
        .args([
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
            "-e",
            "sip.Call-ID",
        ])
        .output()
        .expect("tshark is installed");
    let mut m = BTreeMap::new();
    for id in String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| l.split('|'))
    {
        if !id.is_empty() {
            *m.entry(id.to_string()).or_default() += 1;
        }
    }
    m
}

#[test]
fn capture_file_into_serve_stores_every_call() {
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(data.path(), &[], &[]);
    let pcap = samples().join("kamailio-hep3-udp/sip-traffic.pcap");
    let to = format!("tcp://{}", server.addr("hep-tcp"));
    let out = Command::new(bin())
        .args(["capture", "-r"])
        .arg(&pcap)
        .args([
            "--to",
            &to,
            "--capture-id",
            "4242",
            "--node-name",
            "agent-e2e",
            "--json",
        ])
        .output()
        .expect("run capture");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "capture failed: {stderr}");
    assert!(stderr.contains("hepstack: capture done: seen="), "{stderr}");
    let counters: Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("JSON counters");
    let expected = tshark_call_ids(&pcap);
    let sip_total: u64 = expected.values().sum();
    assert_eq!(
        counters["sip_udp"].as_u64().unwrap() + counters["sip_tcp"].as_u64().unwrap(),
        sip_total,
        "{counters}"
    );
    let sent = counters["sent"].as_u64().expect("sent");
    assert_eq!(
        sent,
        counters["hep_produced"].as_u64().unwrap(),
        "{counters}"
    );
    assert_eq!(counters["dropped"], 0, "{counters}");

    // The collector stores each message once: Kamailio's doubled ACKs in the capture are
    // removed by its dedup window, so stored + deduplicated accounts for every message sent.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (stored, deduplicated) = loop {
        let stored = server.total("");
        let deduplicated = server
            .metrics()
            .lines()
            .find_map(|l| l.strip_prefix("hepstack_packets_deduplicated_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        if stored + deduplicated >= sent || std::time::Instant::now() > deadline {
            break (stored, deduplicated);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        stored + deduplicated,
        sent,
        "every message sent is stored or deduplicated"
    );

    // Every call of the capture is there, with all its messages.
    for (call_id, n) in &expected {
        let flow = server.get(&format!("/api/v1/calls/{}/flow", urlencode(call_id)));
        let messages = flow["messages"].as_array().expect("messages");
        assert!(
            messages.len() as u64 >= *n,
            "{call_id}: {} messages in the flow, {n} in the capture",
            messages.len()
        );
    }
    let page = server.get(&format!(
        "/api/v1/messages?limit=5&from=0&to=4102444800000&callid={}",
        urlencode(expected.keys().next().expect("a call"))
    ));
    let item = &page["items"][0];
    let text = item.to_string();
    assert!(text.contains("4242"), "capture id stored: {text}");
    assert!(server.stop().success());
}

#[test]
fn bad_arguments_fail_clearly() {
    let out = Command::new(bin())
        .args([
            "capture",
            "-r",
            "/nonexistent.pcap",
            "--to",
            "udp://127.0.0.1:9",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open /nonexistent.pcap"), "{stderr}");

    let out = Command::new(bin())
        .args(["capture", "-r", "x.pcap", "--to", "http://127.0.0.1:9"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scheme"));

    let out = Command::new(bin())
        .args([
            "capture",
            "-i",
            "no-such-interface0",
            "--to",
            "udp://127.0.0.1:9",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("libpcap"),
        "a clear libpcap error (missing library, permission or interface): {stderr}"
    );
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn can_capture() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    if !agent_libpcap_present() {
        return Err("libpcap not installed".into());
    }
    if Command::new("sipp").arg("-v").output().is_err() {
        return Err("sipp not installed".into());
    }
    Ok(())
}

fn agent_libpcap_present() -> bool {
    [
        "/lib/x86_64-linux-gnu/libpcap.so.0.8",
        "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8",
        "/usr/lib/libpcap.so.1",
        "/usr/lib64/libpcap.so.1",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

#[test]
fn live_capture_on_loopback_sees_a_sipp_call() {
    if let Err(why) = can_capture() {
        eprintln!("SKIPPED live_capture_on_loopback_sees_a_sipp_call: {why}");
        return;
    }
    let scen = samples().join("setup/scen");
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let (uac_port, uas_port) = (free_udp_port(), free_udp_port());
    let (uac_media, uas_media) = (free_udp_port(), free_udp_port());

    let mut capture = Command::new(bin())
        .args(["capture", "-i", "lo", "--bpf"])
        .arg(format!("udp port {uas_port}"))
        .arg("--to")
        .arg(format!("udp://{}", sink.local_addr().unwrap()))
        .args(["--metrics", "127.0.0.1:0", "--json", "--capture-id", "77"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn capture");
    let (tx, rx) = mpsc::channel();
    let stderr = capture.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lines
        .iter()
        .any(|l: &String| l.starts_with("hepstack: capturing on lo"))
    {
        assert!(
            Instant::now() < deadline,
            "capture did not start: {lines:?}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    let metrics_addr = lines
        .iter()
        .find_map(|l| l.strip_prefix("hepstack: listening metrics "))
        .expect("metrics address")
        .to_string();

    let mut uas = Command::new("sipp")
        .args(["-sf"])
        .arg(scen.join("uas_answer.xml"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-mp",
            &uas_media.to_string(),
        ])
        .args(["-m", "1", "-timeout", "30", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir(std::env::temp_dir())
        .spawn()
        .expect("sipp uas");
    std::thread::sleep(Duration::from_millis(300));
    let uac = Command::new("sipp")
        .arg(format!("127.0.0.1:{uas_port}"))
        .arg("-sf")
        .arg(scen.join("uac_call.xml"))
        .arg("-inf")
        .arg(scen.join("calls_ok.csv"))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &uac_port.to_string(),
            "-mp",
            &uac_media.to_string(),
        ])
        .args(["-m", "1", "-timeout", "20", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir(std::env::temp_dir())
        .status()
        .expect("sipp uac");
    let uas_status = wait_timeout(&mut uas, Duration::from_secs(30));
    assert!(
        uac.success() && uas_status.success(),
        "sipp call failed: uac {uac}, uas {uas_status}"
    );

    // Metrics while running.
    let metrics = ureq::get(&format!("http://{metrics_addr}/metrics"))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    assert!(
        metrics.contains("hepstack_capture_packets_seen_total"),
        "{metrics}"
    );

    // SIGUSR1 prints the counters, SIGINT stops.
    std::thread::sleep(Duration::from_millis(500));
    signal(&capture, libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines
        .iter()
        .any(|l| l.starts_with("hepstack: capture counters: seen="))
    {
        assert!(
            Instant::now() < deadline,
            "no counters on SIGUSR1: {lines:?}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    signal(&capture, libc::SIGINT);
    let status = wait_timeout(&mut capture, Duration::from_secs(15));
    assert!(status.success(), "capture exit: {status}: {lines:?}");

    let mut got: Vec<(String, String, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = sink.recv(&mut buf) {
        let p = hep::decode(&buf[..n]).expect("HEP");
        assert_eq!(p.capture_id, Some(77));
        let payload = p.payload.expect("payload").to_vec();
        let msg = sip::index(&payload);
        let what = msg
            .status_code()
            .map(|c| c.to_string())
            .or_else(|| msg.method().map(|m| m.to_str_lossy().into_owned()))
            .expect("SIP");
        let cseq = msg
            .cseq
            .map(|c| c.method.to_str_lossy().into_owned())
            .unwrap_or_default();
        got.push((what, cseq, payload));
    }
    let distinct: BTreeSet<&Vec<u8>> = got.iter().map(|g| &g.2).collect();
    assert_eq!(distinct.len(), got.len(), "no packet captured twice");
    let kinds: BTreeSet<(String, String)> =
        got.iter().map(|g| (g.0.clone(), g.1.clone())).collect();
    for want in [
        ("INVITE", "INVITE"),
        ("180", "INVITE"),
        ("200", "INVITE"),
        ("ACK", "ACK"),
        ("BYE", "BYE"),
        ("200", "BYE"),
    ] {
        assert!(
            kinds.contains(&(want.0.to_string(), want.1.to_string())),
            "missing {want:?} in {kinds:?}"
        );
    }
}

#[test]
fn heplify_style_flags_discard_write_pcap_and_buffer() {
    let input = samples().join("kamailio-hep3-udp/sip-traffic.pcap");
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let pcap_dir = tempfile::tempdir().expect("tmp");
    let buffer_dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(bin())
        .args(["capture", "-r"])
        .arg(&input)
        .arg("--to")
        .arg(format!("udp://{}", sink.local_addr().expect("addr")))
        .args([
            "--discard-method",
            "OPTIONS",
            "--discard-ip",
            "192.0.2.0/24",
        ])
        .arg("--write-pcap")
        .arg(pcap_dir.path())
        .arg("--buffer-dir")
        .arg(buffer_dir.path())
        .arg("--json")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counters: Value = serde_json::from_slice(&out.stdout).expect("json counters");
    // The sample has 3 OPTIONS, each answered.
    assert!(counters["discarded"].as_u64() >= Some(6), "{counters}");
    assert_eq!(counters["pcap_written"], counters["seen"], "{counters}");
    let files: Vec<_> = std::fs::read_dir(pcap_dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::read(&files[0]).expect("pcap").len(),
        std::fs::read(&input).expect("input").len(),
        "the same packets as the input, in a classic pcap with microseconds"
    );

    let out = Command::new(bin())
        .args(["capture", "-r"])
        .arg(&input)
        .args(["--to", "udp://127.0.0.1:9", "--discard-ip", "10.0.0.300"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an address or CIDR network"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
