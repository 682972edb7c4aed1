//! Interoperability with real peers: Kamailio 5.6 `siptrace` mirroring SIPp calls as HEPv3 over
//! UDP and TCP, and sngrep re-sending a pcap as HEPv3 / HEPv2, each into a `hepstack serve` under
//! test. What is stored is compared with the samples' independent oracle decode (`decoded.jsonl`)
//! and with the SIP packets of the sample pcap read by a small reader written here.
//!
//! Kamailio listens on the fixed 127.0.0.1:5060 and SIPp on 5070/5071/5080 (the ports the
//! samples were recorded with, so the oracle's ports apply unchanged), so the peer tests take a
//! process-wide lock and run one after another.
//!
//! A missing peer binary skips its test with a loud message, unless `HEPSTACK_REQUIRE_PEERS=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::peer::{find_binary, port_bound, wait_port, Peer, KAMAILIO_PORT};
use common::{oracle, oracle_chunk, oracle_payload, samples, Server};
use serde_json::Value;

/// Serialises the peer tests: they share fixed loopback ports.
static PEERS: Mutex<()> = Mutex::new(());

const UAS_PORT: u16 = 5080;
const UAC_CALL_PORT: u16 = 5070;
const UAC_REGISTER_PORT: u16 = 5071;
/// `hep_capture_id` in the sample kamailio.cfg.
const KAMAILIO_CAPTURE_ID: u64 = 2001;
/// `eep.send.id` in the sample sngrep rc files.
const SNGREP_CAPTURE_ID: u64 = 2002;

fn setup_dir() -> PathBuf {
    samples().join("setup")
}

fn lock_peers() -> std::sync::MutexGuard<'static, ()> {
    // A failed peer test poisons the lock; the next one still runs on its own ports.
    PEERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The binaries, or `None` after a loud message (a panic when peers are required).
fn peers(names: &[&str]) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| find_binary(n)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        return Some(found.into_iter().flatten().collect());
    }
    let msg = format!(
        "!!!!! INTEROP TEST SKIPPED: peer binaries not installed: {missing:?} \
         (Debian packages kamailio, sip-tester, sngrep) !!!!!"
    );
    if std::env::var("HEPSTACK_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{msg} and HEPSTACK_REQUIRE_PEERS=1");
    }
    eprintln!("{msg}");
    None
}

fn assert_ports_free(ports: &[u16]) {
    for &port in ports {
        assert!(
            !port_bound(port),
            "127.0.0.1:{port} is already in use; a stray peer process?"
        );
    }
}

/// Starts Kamailio with the sample configuration, mirroring to `hep_uri`, and waits until it
/// listens on 127.0.0.1:5060 (UDP and TCP).
fn start_kamailio(bin: &Path, work: &Path, hep_uri: &str) -> Peer {
    let cfg = work.join("kamailio.cfg");
    std::fs::copy(setup_dir().join("kam/kamailio.cfg"), &cfg).expect("copy kamailio.cfg");
    let run_dir = work.join("kamailio-run");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let mut cmd = Command::new(bin);
    cmd.arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
        .arg(&run_dir)
        .arg("-A")
        .arg(format!("HEP_URI=\"{hep_uri}\""))
        .current_dir(work);
    let mut peer = Peer::spawn("kamailio", cmd, work);
    wait_port(&mut peer, KAMAILIO_PORT);
    peer
}

/// A SIPp instance on 127.0.0.1 with the sample scenario `scenario` and extra arguments.
fn sipp(bin: &Path, work: &Path, name: &str, scenario: &str, args: &[&str]) -> Peer {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("-sf")
        .arg(setup_dir().join("scen").join(scenario))
        .args(["-i", "127.0.0.1", "-nostdin", "-timeout", "60s"])
        .current_dir(work);
    Peer::spawn(name, cmd, work)
}

/// The Call-ID of a SIP message text (long or compact form).
fn call_id_of(sip: &str) -> Option<String> {
    sip.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim().to_string())
    })
}

/// The method of a request or the status code of a reply, as the API's `method` shows it.
fn method_of(sip: &str) -> String {
    let first = sip.lines().next().unwrap_or_default();
    let mut words = first.split_whitespace();
    match words.next() {
        Some("SIP/2.0") => words.next().unwrap_or_default().to_string(),
        Some(method) => method.to_string(),
        None => String::new(),
    }
}

/// One call's messages as (method or status, source port, destination port) with counts.
type CallShape = BTreeMap<(String, u64, u64), usize>;

/// The per-call shapes of the oracle's SIP traffic whose first message came from `uac_port`,
/// in the order the calls started (the SIPp call number order: CSV lines are SEQUENTIAL).
/// Messages identical in payload and ports are counted once: the collector deduplicates
/// Kamailio's doubled mirrors of the same message.
fn oracle_calls(dir: &str, uac_port: u64) -> Vec<CallShape> {
    let mut order: Vec<String> = Vec::new();
    let mut first_src: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen: BTreeSet<(String, u64, u64)> = BTreeSet::new();
    let mut shapes: BTreeMap<String, CallShape> = BTreeMap::new();
    for o in oracle(dir) {
        if oracle_chunk(&o, "proto_type").and_then(Value::as_u64) != Some(1) {
            continue;
        }
        let payload = oracle_payload(&o).expect("SIP payload");
        let src = oracle_chunk(&o, "src_port")
            .and_then(Value::as_u64)
            .expect("src_port");
        let dst = oracle_chunk(&o, "dst_port")
            .and_then(Value::as_u64)
            .expect("dst_port");
        let call_id = call_id_of(&payload).expect("oracle Call-ID");
        if !seen.insert((payload.clone(), src, dst)) {
            continue;
        }
        if !first_src.contains_key(&call_id) {
            first_src.insert(call_id.clone(), src);
            order.push(call_id.clone());
        }
        *shapes
            .entry(call_id)
            .or_default()
            .entry((method_of(&payload), src, dst))
            .or_default() += 1;
    }
    order
        .into_iter()
        .filter(|c| first_src[c] == uac_port)
        .map(|c| shapes.remove(&c).expect("shape"))
        .collect()
}

/// The SIPp Call-IDs of calls 1..=n of the UAC process `pid` (`[call_id]` = `N-PID@IP`).
fn sipp_call_ids(pid: u32, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{i}-{pid}@127.0.0.1")).collect()
}

/// Runs the Kamailio + SIPp scenario with siptrace pointed at `hep_uri`, then checks what the
/// server stored against the oracle of `oracle_dir`.
fn kamailio_scenario(
    server: &mut Server,
    hep_uri: &str,
    oracle_dir: &str,
    registers: usize,
    calls: usize,
) {
    let Some(bins) = peers(&["kamailio", "sipp"]) else {
        return;
    };
    let (kamailio_bin, sipp_bin) = (&bins[0], &bins[1]);
    assert_ports_free(&[KAMAILIO_PORT, UAS_PORT, UAC_CALL_PORT, UAC_REGISTER_PORT]);
    let work = tempfile::tempdir().expect("tmp");

    let mut kamailio = start_kamailio(kamailio_bin, work.path(), hep_uri);
    let uas_port = UAS_PORT.to_string();
    let mut uas = sipp(
        sipp_bin,
        work.path(),
        "sipp-uas",
        "uas_answer.xml",
        &["-p", &uas_port, "-mp", "16000"],
    );
    wait_port(&mut uas, UAS_PORT);

    let users = setup_dir().join("scen/users.csv");
    let (m, port) = (registers.to_string(), UAC_REGISTER_PORT.to_string());
    let mut register = sipp(
        sipp_bin,
        work.path(),
        "sipp-register",
        "uac_register.xml",
        &[
            "127.0.0.1:5060",
            "-inf",
            users.to_str().expect("path"),
            "-m",
            &m,
            "-r",
            "2",
            "-p",
            &port,
            "-mp",
            "17000",
        ],
    );
    let status = register.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "sipp REGISTER run failed ({status}):\n{}",
        register.log_tail()
    );
    let register_ids = sipp_call_ids(register.pid(), registers);

    let csv = setup_dir().join("scen/calls_ok.csv");
    let (m, port) = (calls.to_string(), UAC_CALL_PORT.to_string());
    let mut uac = sipp(
        sipp_bin,
        work.path(),
        "sipp-uac",
        "uac_call.xml",
        &[
            "127.0.0.1:5060",
            "-inf",
            csv.to_str().expect("path"),
            "-m",
            &m,
            "-r",
            "2",
            "-l",
            "5",
            "-p",
            &port,
            "-mp",
            "17020",
        ],
    );
    let status = uac.wait(Duration::from_secs(90));
    assert!(
        status.success(),
        "sipp call run failed ({status}):\n{}",
        uac.log_tail()
    );
    let call_ids = sipp_call_ids(uac.pid(), calls);
    kamailio.assert_running();

    // What the oracle says each call looks like, by SIPp call number.
    let want_registers = oracle_calls(oracle_dir, u64::from(UAC_REGISTER_PORT));
    let want_calls = oracle_calls(oracle_dir, u64::from(UAC_CALL_PORT));
    assert!(
        want_registers.len() >= registers && want_calls.len() >= calls,
        "oracle has enough calls"
    );
    let mut want: BTreeMap<String, CallShape> = BTreeMap::new();
    for (id, shape) in register_ids.iter().zip(&want_registers) {
        want.insert(id.clone(), shape.clone());
    }
    for (id, shape) in call_ids.iter().zip(&want_calls) {
        want.insert(id.clone(), shape.clone());
    }
    let want_total: usize = want.values().flat_map(|s| s.values()).sum();
    let total = server.wait_total("", want_total as u64, Duration::from_secs(30));
    // A little longer: anything beyond the expected count would show up now.
    std::thread::sleep(Duration::from_millis(500));
    drop(uas);
    drop(kamailio);

    let stored = server.all_messages("");
    assert!(
        total >= want_total as u64,
        "stored {total} of {want_total} mirrored messages"
    );
    let mut got: BTreeMap<String, CallShape> = BTreeMap::new();
    for m in &stored {
        assert_eq!(m["hep_type"], 1, "only SIP was mirrored: {m}");
        assert_eq!(m["hep_version"], 3, "{m}");
        assert_eq!(m["capture_id"], KAMAILIO_CAPTURE_ID, "{m}");
        assert_eq!(
            m["node"],
            KAMAILIO_CAPTURE_ID.to_string(),
            "node is the capture id: {m}"
        );
        assert_eq!(m["src_ip"], "127.0.0.1");
        assert_eq!(m["dst_ip"], "127.0.0.1");
        assert_eq!(m["transport"], "udp", "SIP ran over UDP: {m}");
        let raw = m["raw"].as_str().expect("raw");
        let call_id = m["callid"]
            .as_str()
            .unwrap_or_else(|| panic!("Call-ID indexed: {m}"));
        assert_eq!(
            Some(call_id.to_string()),
            call_id_of(raw),
            "Call-ID from the message"
        );
        assert_eq!(m["sid"], m["callid"]);
        let method = m["method"]
            .as_str()
            .unwrap_or_else(|| panic!("method indexed: {m}"));
        assert_eq!(method, method_of(raw), "method/status from the start line");
        let key = (
            method.to_string(),
            m["src_port"].as_u64().expect("src_port"),
            m["dst_port"].as_u64().expect("dst_port"),
        );
        *got.entry(call_id.to_string())
            .or_default()
            .entry(key)
            .or_default() += 1;
        let profile = if raw.contains(" REGISTER\r\n") {
            "registration"
        } else {
            "call"
        };
        assert_eq!(m["profile"], profile, "profile by CSeq method: {m}");
    }
    let got_ids: BTreeSet<&String> = got.keys().collect();
    let want_ids: BTreeSet<&String> = want.keys().collect();
    assert_eq!(
        got_ids, want_ids,
        "exactly the Call-IDs SIPp used are stored"
    );
    for (id, shape) in &want {
        assert_eq!(
            &got[id], shape,
            "call {id}: stored messages match the oracle's {oracle_dir}"
        );
    }
    assert_eq!(stored.len(), want_total, "nothing stored twice");

    // The HEP arrived over the transport siptrace was told to use (UDP and TCP listeners have
    // independent kernel-chosen ports, which may coincide).
    let hep_transport = if hep_uri.ends_with(";transport=tcp") {
        "tcp"
    } else {
        "udp"
    };
    let metric = format!(
        "hepstack_packets_received_total{{transport=\"{hep_transport}\",hep_type=\"1\",node=\"{KAMAILIO_CAPTURE_ID}\"}} "
    );
    let metrics = server.metrics();
    let received: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&metric))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {metric} in:\n{metrics}"));
    assert!(
        received >= want_total as u64,
        "{received} packets over HEP/{hep_transport}"
    );
}

#[test]
fn kamailio_siptrace_hep3_over_udp_with_sipp_calls() {
    let _lock = lock_peers();
    if peers(&["kamailio", "sipp"]).is_none() {
        return;
    }
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(data.path(), &[], &[]);
    let uri = format!("sip:{}", server.addr("hep-udp"));
    // The sample's run: 7 REGISTERs (5 accepted, 2 refused with 403) and answered calls.
    kamailio_scenario(&mut server, &uri, "kamailio-hep3-udp", 7, 4);
    assert!(server.stop().success());
}

#[test]
fn kamailio_siptrace_hep3_over_tcp_with_sipp_calls() {
    let _lock = lock_peers();
    if peers(&["kamailio", "sipp"]).is_none() {
        return;
    }
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(data.path(), &[], &[]);
    let uri = format!("sip:{};transport=tcp", server.addr("hep-tcp"));
    kamailio_scenario(&mut server, &uri, "kamailio-hep3-tcp", 2, 2);
    assert!(server.stop().success());
}

/// One SIP message of a pcap: payload, ports and capture time.
struct WireSip {
    payload: Vec<u8>,
    src_port: u16,
    dst_port: u16,
    time_us: i64,
}

/// The SIP packets of a little-endian microsecond pcap of Ethernet/IPv4 frames (what the sample
/// sip-traffic.pcap is): UDP or TCP payloads that begin with a SIP start line. Written here,
/// independent of the capture crate, as the test's second oracle.
fn pcap_sip_packets(path: &Path) -> Vec<WireSip> {
    let data = std::fs::read(path).expect("pcap");
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    assert_eq!(
        u32_at(&data, 0),
        0xa1b2_c3d4,
        "little-endian microsecond pcap"
    );
    assert_eq!(u32_at(&data, 20), 1, "Ethernet link type");
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let (sec, usec, caplen) = (
            u32_at(&data, off),
            u32_at(&data, off + 4),
            u32_at(&data, off + 8) as usize,
        );
        let frame = &data[off + 16..off + 16 + caplen];
        off += 16 + caplen;
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        let (proto, l4) = (ip[9], &ip[ihl..total]);
        let ports = (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        );
        let payload = match proto {
            17 => &l4[8..],
            6 => &l4[usize::from(l4[12] >> 4) * 4..],
            _ => continue,
        };
        let text = String::from_utf8_lossy(&payload[..payload.len().min(200)]).into_owned();
        let first = text.lines().next().unwrap_or_default();
        let is_sip = first.starts_with("SIP/2.0 ") || first.ends_with(" SIP/2.0");
        if is_sip {
            assert_eq!(
                Ipv4Addr::from([ip[12], ip[13], ip[14], ip[15]]),
                Ipv4Addr::LOCALHOST
            );
            out.push(WireSip {
                payload: payload.to_vec(),
                src_port: ports.0,
                dst_port: ports.1,
                time_us: i64::from(sec) * 1_000_000 + i64::from(usec),
            });
        }
    }
    out
}

/// sngrep reads the sample pcap and sends every SIP packet as HEP (version 2 or 3) to the
/// server; every one of them must be stored byte-exact with its ports and capture time.
fn sngrep_resend(version: u8) {
    let _lock = lock_peers();
    let Some(bins) = peers(&["sngrep"]) else {
        return;
    };
    let data = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(data.path(), &[], &[]);
    let hep = server.addr("hep-udp");
    let work = tempfile::tempdir().expect("tmp");
    let rc = work.path().join(format!("sngrep_v{version}.rc"));
    let template =
        std::fs::read_to_string(setup_dir().join(format!("sngrep/sngrep_v{version}.rc")))
            .expect("rc");
    let rc_text: String = template
        .lines()
        .map(|l| match l.split_whitespace().nth(1) {
            Some("eep.send.address") => format!("set eep.send.address {}", hep.ip()),
            Some("eep.send.port") => format!("set eep.send.port {}", hep.port()),
            _ => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect();
    assert!(
        rc_text.contains(&format!("eep.send.port {}", hep.port())),
        "rc points at the server"
    );
    std::fs::write(&rc, rc_text).expect("write rc");

    let pcap = samples().join("kamailio-hep3-udp/sip-traffic.pcap");
    let wire = pcap_sip_packets(&pcap);
    // README: 282 SIP messages mirrored; the wire holds each once (Kamailio's doubled ACK
    // mirrors aside), 258 over UDP and 21 over TCP.
    assert_eq!(wire.len(), 279, "SIP packets in the sample pcap");
    // Retransmissions on the wire carry the same bytes between the same ports: the collector
    // stores one per dedup window, so the expectation is per distinct (payload, ports), with
    // every capture time it had.
    let mut want: BTreeMap<(Vec<u8>, u16, u16), Vec<i64>> = BTreeMap::new();
    for w in &wire {
        want.entry((w.payload.clone(), w.src_port, w.dst_port))
            .or_default()
            .push(w.time_us);
    }

    let mut cmd = Command::new(&bins[0]);
    cmd.args(["-F", "-f"])
        .arg(&rc)
        .args(["-N", "-q", "-I"])
        .arg(&pcap)
        .current_dir(work.path());
    let mut sngrep = Peer::spawn("sngrep", cmd, work.path());
    let status = sngrep.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "sngrep failed ({status}):\n{}",
        sngrep.log_tail()
    );

    let total = server.wait_total("", want.len() as u64, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let stored = server.all_messages("");
    assert!(
        total >= want.len() as u64,
        "HEPv{version}: stored {total} of {} distinct SIP packets",
        want.len()
    );
    let mut got: BTreeMap<(Vec<u8>, u16, u16), Vec<i64>> = BTreeMap::new();
    for m in &stored {
        assert_eq!(m["hep_type"], 1, "{m}");
        assert_eq!(m["hep_version"], u64::from(version), "{m}");
        if version == 3 {
            assert_eq!(
                m["capture_id"], SNGREP_CAPTURE_ID,
                "sngrep's byte-swapped id normalised: {m}"
            );
        }
        let raw = m["raw"].as_str().expect("raw").as_bytes().to_vec();
        let call_id = m["callid"]
            .as_str()
            .unwrap_or_else(|| panic!("Call-ID indexed: {m}"));
        assert_eq!(
            call_id_of(&String::from_utf8_lossy(&raw)).as_deref(),
            Some(call_id)
        );
        let src = u16::try_from(m["src_port"].as_u64().expect("src_port")).expect("port");
        let dst = u16::try_from(m["dst_port"].as_u64().expect("dst_port")).expect("port");
        let time = m["time_us"].as_i64().expect("time_us");
        got.entry((raw, src, dst)).or_default().push(time);
    }
    for (key, times) in &got {
        let wire_times = want.get(key).unwrap_or_else(|| {
            panic!(
                "HEPv{version}: stored message not on the wire: {}",
                String::from_utf8_lossy(&key.0)
            )
        });
        assert!(
            times.len() <= wire_times.len(),
            "never stored more often than sent"
        );
        for t in times {
            assert!(
                wire_times.contains(t),
                "HEPv{version}: capture time {t} is the pcap's {wire_times:?}"
            );
        }
    }
    let missing: Vec<String> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .map(|k| {
            String::from_utf8_lossy(&k.0)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "HEPv{version}: SIP packets not stored: {missing:?}"
    );
    assert!(server.stop().success());
}

#[test]
fn sngrep_resends_a_pcap_as_hep3() {
    sngrep_resend(3);
}

#[test]
fn sngrep_resends_a_pcap_as_hep2() {
    sngrep_resend(2);
}
