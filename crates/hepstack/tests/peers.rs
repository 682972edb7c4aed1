//! Real peers around one call: SIPp calls SIPp through Kamailio 5.6, which relays the media
//! through Debian's rtpengine 10.5 (its `rtpengine` module over the ng socket; userspace
//! forwarding, `--table=-1`). Kamailio mirrors the SIP to `hepstack serve` with `siptrace`
//! (HEPv3 over TCP with an auth key), rtpengine mirrors the RTCP it relays (`--homer`, HEPv3 over
//! UDP), and heplify captures the same call on loopback (HEPv3 over UDP). The test plays the two
//! media endpoints (RTP and RTCP sender reports from the ports the SDP announced).
//!
//! Checked: rtpengine's RTCP shows in the call's QoS next to Kamailio's SIP, with the Call-ID as
//! correlation id; heplify sends the very SIP messages Kamailio traced (same bytes) and the
//! same RTCP reports rtpengine mirrored (same reporters and packet counts, same correlation).
//!
//! The SIP ports are fixed (25060 Kamailio, 25070 caller, 25080 callee: heplify captures SIP
//! by port range). A missing peer skips the test with a loud message, unless
//! `HEPSTACK_REQUIRE_PEERS=1` (then it fails).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::peer::{find_binary, port_bound, wait_port, Peer};
use common::{samples, Server};
use serde_json::Value;

const KAMAILIO_PORT: u16 = 25060;
const UAC_PORT: u16 = 25070;
const UAS_PORT: u16 = 25080;
const KAMAILIO_ID: u64 = 2001;
const HEPLIFY_ID: u64 = 2002;
const RTPENGINE_ID: u64 = 2003;
const AUTH_KEY: &str = "peers-hep-key";
const CALL_ID: &str = "hepstack-peers-call-1@127.0.0.1";

/// The peer binaries, or `None` after a loud message (a panic when peers are required).
fn peers() -> Option<(PathBuf, PathBuf, PathBuf, PathBuf)> {
    let heplify = samples().join("../peers/heplify");
    let found = (
        find_binary("kamailio"),
        find_binary("sipp"),
        find_binary("rtpengine"),
        heplify.is_file().then_some(heplify),
    );
    if let (Some(k), Some(s), Some(r), Some(h)) = found.clone() {
        // heplify is a dynamically linked Go binary: it needs libpcap and LuaJIT.
        let runs = Command::new(&h)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if runs {
            return Some((k, s, r, h));
        }
    }
    let msg = format!(
        "!!!!! PEER TEST SKIPPED: needs kamailio {:?}, sipp {:?}, rtpengine {:?} and a runnable \
         ../shared/peers/heplify {:?} (Debian packages kamailio, sip-tester, rtpengine-daemon, \
         libpcap0.8, libluajit-5.1-2) !!!!!",
        found.0, found.1, found.2, found.3
    );
    if std::env::var("HEPSTACK_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{msg} and HEPSTACK_REQUIRE_PEERS=1");
    }
    eprintln!("{msg}");
    None
}

/// A free loopback UDP port (bound, then released).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind")
        .port()
}

/// Two sockets on consecutive ports (RTP, RTCP) as an SDP announces them.
fn media_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = rtp.local_addr().expect("addr").port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
            return (rtp, rtcp);
        }
    }
    panic!("no two consecutive free UDP ports");
}

fn kamailio_cfg(hep_tcp: &str, ng_port: u16) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
tcp_children=1
auto_aliases=no
listen=udp:127.0.0.1:{KAMAILIO_PORT}
# siptrace sends HEP over TCP from a TCP socket of Kamailio's own.
listen=tcp:127.0.0.1:{KAMAILIO_PORT}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "siptrace.so"
loadmodule "rtpengine.so"

modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_mode", 1)
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "hep_capture_id", {KAMAILIO_ID})
modparam("siptrace", "duplicate_uri", "sip:{hep_tcp};transport=tcp")
modparam("siptrace", "auth_key", "{AUTH_KEY}")
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:{ng_port}")

request_route {{
	if (!mf_process_maxfwd_header("10")) {{
		sl_send_reply("483", "Too Many Hops");
		exit;
	}}
	if (has_totag()) {{
		if (loose_route()) {{
			if (is_method("BYE")) {{
				rtpengine_delete();
			}}
			t_relay();
			exit;
		}}
		if (is_method("ACK") && t_check_trans()) {{
			t_relay();
		}}
		exit;
	}}
	if (is_method("CANCEL")) {{
		if (t_check_trans()) {{
			rtpengine_delete();
			t_relay();
		}}
		exit;
	}}
	t_check_trans();
	if (is_method("INVITE")) {{
		record_route();
		if (has_body("application/sdp")) {{
			rtpengine_offer("replace-origin replace-session-connection");
		}}
		t_on_reply("MEDIA_REPLY");
		t_on_failure("MEDIA_FAILED");
	}}
	$du = "sip:127.0.0.1:{UAS_PORT}";
	if (!t_relay()) {{
		sl_reply_error();
	}}
	exit;
}}

onreply_route[MEDIA_REPLY] {{
	if (has_body("application/sdp")) {{
		rtpengine_answer("replace-origin replace-session-connection");
	}}
}}

failure_route[MEDIA_FAILED] {{
	rtpengine_delete();
}}
"#
    )
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=sendrecv\n"
    )
}

/// The caller: INVITE with SDP announcing `media_port`, ACK, hold for `hold_ms`, BYE.
fn uac_scenario(media_port: u16, hold_ms: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller with media through rtpengine">
  <send retrans="500"><![CDATA[
INVITE sip:100@127.0.0.1:{KAMAILIO_PORT} SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
From: <sip:alice@127.0.0.1>;tag=peers-a
To: <sip:100@127.0.0.1>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{sdp}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
[routes]
From: <sip:alice@127.0.0.1>;tag=peers-a
To: <sip:100@127.0.0.1>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
[routes]
From: <sip:alice@127.0.0.1>;tag=peers-a
To: <sip:100@127.0.0.1>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"#,
        sdp = sdp(media_port)
    )
}

/// The callee: answers with SDP announcing `media_port`, then waits for the BYE.
fn uas_scenario(media_port: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee with media through rtpengine">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=peers-b
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:100@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

{sdp}
]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#,
        sdp = sdp(media_port)
    )
}

fn sipp(bin: &Path, work: &Path, name: &str, scenario: &str, args: &[&str]) -> Peer {
    let file = work.join(format!("{name}.xml"));
    std::fs::write(&file, scenario).expect("scenario");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("-sf")
        .arg(&file)
        .args(["-i", "127.0.0.1", "-nostdin", "-timeout", "60s", "-m", "1"])
        .current_dir(work);
    Peer::spawn(name, cmd, work)
}

/// The port of the first `m=audio` line of a SIP message's SDP.
fn sdp_audio_port(raw: &str) -> Option<u16> {
    raw.lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// An RTCP sender report from `ssrc` with one report block about `peer`.
fn rtcp_sr(ssrc: u32, peer: u32, packets: u32, lost: u32, jitter: u32) -> Vec<u8> {
    let mut p = vec![0x81, 200, 0, 12];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&0xe7a0_0000u32.to_be_bytes()); // NTP seconds
    p.extend_from_slice(&0x8000_0000u32.to_be_bytes()); // NTP fraction
    p.extend_from_slice(&(packets * 160).to_be_bytes()); // RTP timestamp
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&(packets * 160).to_be_bytes()); // octets
    p.extend_from_slice(&peer.to_be_bytes());
    p.extend_from_slice(&((lost & 0x00ff_ffff) | (10 << 24)).to_be_bytes());
    p.extend_from_slice(&(1000 + packets).to_be_bytes());
    p.extend_from_slice(&jitter.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p
}

/// Polls `f` until it gives a value or `timeout` passes (then `None`).
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every peer's last log lines and what the server stored, for a failure message.
fn evidence(server: &mut Server, peers: &[&Peer]) -> String {
    let mut out = String::new();
    for p in peers {
        out.push_str(&format!("--- {} ---\n{}\n", p.name, p.log_tail()));
    }
    for m in server.all_messages("") {
        out.push_str(&format!(
            "stored: type {} node {} {}:{} -> {}:{} {}\n",
            m["hep_type"],
            str_of(&m, "node"),
            str_of(&m, "src_ip"),
            m["src_port"],
            str_of(&m, "dst_ip"),
            m["dst_port"],
            str_of(&m, "raw").lines().next().unwrap_or_default()
        ));
    }
    out
}

fn str_of<'a>(m: &'a Value, key: &str) -> &'a str {
    m[key].as_str().unwrap_or_default()
}

/// The RTCP reports of one producer: (reporter SSRC, sender packet count) → correlation ids.
fn rtcp_reports(messages: &[Value], capture_id: u64) -> BTreeMap<(u64, u64), BTreeSet<String>> {
    let mut out: BTreeMap<(u64, u64), BTreeSet<String>> = BTreeMap::new();
    for m in messages
        .iter()
        .filter(|m| m["hep_type"] == 5 && m["capture_id"] == capture_id)
    {
        let report: Value = serde_json::from_str(str_of(m, "raw"))
            .unwrap_or_else(|e| panic!("RTCP JSON from {capture_id}: {e}: {m}"));
        let key = (
            report["ssrc"].as_u64().unwrap_or_default(),
            report["sender_information"]["packets"]
                .as_u64()
                .unwrap_or_default(),
        );
        out.entry(key)
            .or_default()
            .insert(str_of(m, "correlation_id").to_string());
    }
    out
}

#[test]
fn kamailio_rtpengine_and_heplify_around_one_call() {
    let Some((kamailio_bin, sipp_bin, rtpengine_bin, heplify_bin)) = peers() else {
        return;
    };
    for port in [KAMAILIO_PORT, UAC_PORT, UAS_PORT] {
        assert!(!port_bound(port), "127.0.0.1:{port} is in use");
    }
    let work = tempfile::tempdir().expect("tmp");
    let data = tempfile::tempdir().expect("tmp");
    // Kamailio's HEP over TCP carries the auth key, so that listener requires it; rtpengine
    // and heplify send over UDP without one.
    // Deduplication off: heplify's copy of a SIP message has the bytes and addresses of
    // Kamailio's trace of it, and both are to be compared.
    let key_env = format!("\"{AUTH_KEY}\"");
    let mut server = Server::start(
        data.path(),
        &[],
        &[
            ("HEPSTACK_HEP__TCP__AUTH_KEY", key_env.as_str()),
            ("HEPSTACK_HEP__PIPELINE__DEDUP_WINDOW_MS", "0"),
        ],
    );
    let hep_udp = server.addr("hep-udp").to_string();
    let hep_tcp = server.addr("hep-tcp").to_string();

    // rtpengine: userspace only, no configuration file, its media ports on loopback.
    let ng_port = free_udp_port();
    let media_min = 30_000 + (free_udp_port() % 100) * 200;
    let mut rtpengine_cmd = Command::new(&rtpengine_bin);
    rtpengine_cmd
        .args([
            "--foreground",
            "--log-stderr",
            "--log-level=6",
            "--table=-1",
        ])
        .arg("--config-file=none")
        .arg("--interface=127.0.0.1")
        .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
        .arg(format!("--port-min={media_min}"))
        .arg(format!("--port-max={}", media_min + 99))
        .arg(format!("--homer={hep_udp}"))
        .args([
            "--homer-protocol=udp",
            &format!("--homer-id={RTPENGINE_ID}"),
        ])
        .arg(format!(
            "--pidfile={}",
            work.path().join("rtpengine.pid").display()
        ))
        .current_dir(work.path());
    let mut rtpengine = Peer::spawn("rtpengine", rtpengine_cmd, work.path());
    std::thread::sleep(Duration::from_millis(500));
    rtpengine.assert_running();

    // heplify on loopback: SIP on the three SIP ports, RTCP correlated by SDP.
    let mut heplify_cmd = Command::new(&heplify_bin);
    heplify_cmd
        .args(["-i", "lo", "-m", "SIPRTCP", "-e", "-l", "info"])
        .args(["-pr", &format!("{KAMAILIO_PORT}-{UAS_PORT}")])
        .args([
            "-hs",
            &hep_udp,
            "-nt",
            "udp",
            "-hi",
            &HEPLIFY_ID.to_string(),
        ])
        .args(["-keepalive", "0", "-prometheus", "127.0.0.1:0"])
        .current_dir(work.path());
    let mut heplify = Peer::spawn("heplify", heplify_cmd, work.path());

    let cfg = work.path().join("kamailio.cfg");
    std::fs::write(&cfg, kamailio_cfg(&hep_tcp, ng_port)).expect("cfg");
    let run_dir = work.path().join("kamailio-run");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let mut kamailio_cmd = Command::new(&kamailio_bin);
    kamailio_cmd
        .arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
        .arg(&run_dir)
        .current_dir(work.path());
    let mut kamailio = Peer::spawn("kamailio", kamailio_cmd, work.path());
    wait_port(&mut kamailio, KAMAILIO_PORT);
    // heplify needs a moment to open its capture; it logs nothing the test could wait for
    // that all versions print, so give it time and check it is alive.
    std::thread::sleep(Duration::from_secs(2));
    heplify.assert_running();

    // The two media endpoints the SDPs announce.
    let (a_rtp, a_rtcp) = media_pair();
    let (b_rtp, b_rtcp) = media_pair();
    let a_port = a_rtp.local_addr().expect("addr").port();
    let b_port = b_rtp.local_addr().expect("addr").port();

    let mut uas = sipp(
        &sipp_bin,
        work.path(),
        "sipp-uas",
        &uas_scenario(b_port),
        &["-p", &UAS_PORT.to_string(), "-mp", "26000"],
    );
    wait_port(&mut uas, UAS_PORT);
    let mut uac = sipp(
        &sipp_bin,
        work.path(),
        "sipp-uac",
        &uac_scenario(a_port, 6_000),
        &[
            &format!("127.0.0.1:{KAMAILIO_PORT}"),
            // SIPp's first call gets call number 1: the Call-ID is CALL_ID.
            "-cid_str",
            "hepstack-peers-call-%u@127.0.0.1",
            "-p",
            &UAC_PORT.to_string(),
            "-mp",
            "26020",
        ],
    );

    // rtpengine's ports, from the SDP Kamailio sent on after rtpengine rewrote it: the callee
    // is told where to send (the INVITE to the UAS), the caller likewise (the 200 to the UAC).
    let query = format!("&callid={CALL_ID}&node={KAMAILIO_ID}");
    let ports = wait_for(Duration::from_secs(20), || {
        let msgs = server.all_messages(&query);
        let port_in = |dst: u16, start: &str| {
            msgs.iter()
                .filter(|m| m["dst_port"] == dst && str_of(m, "raw").starts_with(start))
                .find_map(|m| sdp_audio_port(str_of(m, "raw")))
        };
        Some((
            port_in(UAC_PORT, "SIP/2.0 200")?,
            port_in(UAS_PORT, "INVITE ")?,
        ))
    });
    let Some((towards_a, towards_b)) = ports else {
        let e = evidence(&mut server, &[&kamailio, &rtpengine, &uac, &uas, &heplify]);
        panic!("no rewritten SDPs stored:\n{e}");
    };
    assert_ne!(towards_a, b_port, "rtpengine rewrote the callee's SDP");
    assert_ne!(towards_b, a_port, "rtpengine rewrote the caller's SDP");

    // Media both ways through rtpengine, then sender reports from each side.
    let (ssrc_a, ssrc_b) = (0x1111_1111u32, 0x2222_2222u32);
    for seq in 0..50u16 {
        a_rtp
            .send_to(&rtp(seq, ssrc_a), ("127.0.0.1", towards_a))
            .expect("rtp a");
        b_rtp
            .send_to(&rtp(seq, ssrc_b), ("127.0.0.1", towards_b))
            .expect("rtp b");
        std::thread::sleep(Duration::from_millis(20));
    }
    for round in 1..=3u32 {
        a_rtcp
            .send_to(
                &rtcp_sr(ssrc_a, ssrc_b, 50 * round, round, 40),
                ("127.0.0.1", towards_a + 1),
            )
            .expect("rtcp a");
        b_rtcp
            .send_to(
                &rtcp_sr(ssrc_b, ssrc_a, 50 * round + 1, 2 * round, 80),
                ("127.0.0.1", towards_b + 1),
            )
            .expect("rtcp b");
        std::thread::sleep(Duration::from_millis(300));
    }

    let status = uac.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "caller failed ({status}):\n{}",
        uac.log_tail()
    );
    let status = uas.wait(Duration::from_secs(10));
    assert!(
        status.success(),
        "callee failed ({status}):\n{}",
        uas.log_tail()
    );

    // Everything arrived: rtpengine's six reports, and heplify's copies of them (each report
    // crosses loopback twice: into rtpengine and out of it).
    let rtcp_query = format!("&correlation_id={CALL_ID}&hep_type=5");
    let arrived = wait_for(Duration::from_secs(20), || {
        let msgs = server.all_messages(&rtcp_query);
        let from = |id: u64| msgs.iter().filter(|m| m["capture_id"] == id).count();
        (from(RTPENGINE_ID) >= 6 && from(HEPLIFY_ID) >= 6).then_some(())
    });
    if arrived.is_none() {
        let e = evidence(&mut server, &[&kamailio, &rtpengine, &heplify]);
        panic!("rtpengine's and heplify's RTCP did not all arrive:\n{e}");
    }
    std::thread::sleep(Duration::from_secs(1));
    kamailio.assert_running();
    rtpengine.assert_running();
    heplify.assert_running();
    drop(heplify);
    drop(kamailio);
    drop(rtpengine);

    let all = server.all_messages(&format!("&callid={CALL_ID}"));
    let rtcp = server.all_messages(&rtcp_query);

    // Kamailio's SIP came over HEP/TCP with the auth key (the listener requires it).
    let kamailio_sip: Vec<&Value> = all
        .iter()
        .filter(|m| m["hep_type"] == 1 && m["capture_id"] == KAMAILIO_ID)
        .collect();
    let heplify_sip: Vec<&Value> = all
        .iter()
        .filter(|m| m["hep_type"] == 1 && m["capture_id"] == HEPLIFY_ID)
        .collect();
    let methods: BTreeSet<&str> = kamailio_sip.iter().map(|m| str_of(m, "method")).collect();
    for want in ["INVITE", "200", "ACK", "BYE"] {
        assert!(
            methods.contains(want),
            "Kamailio traced {want}: {methods:?}"
        );
    }
    let metrics = server.metrics();
    assert!(
        metrics.lines().any(|l| l.starts_with(&format!(
            "hepstack_packets_received_total{{transport=\"tcp\",hep_type=\"1\",node=\"{KAMAILIO_ID}\"}}"
        ))),
        "Kamailio's SIP arrived over TCP:\n{metrics}"
    );

    // heplify saw the same SIP on the wire that Kamailio traced: the same bytes.
    let bytes = |ms: &[&Value]| -> BTreeSet<String> {
        ms.iter().map(|m| str_of(m, "raw").to_string()).collect()
    };
    assert!(!heplify_sip.is_empty(), "heplify sent the call's SIP");
    assert_eq!(
        bytes(&heplify_sip),
        bytes(&kamailio_sip),
        "heplify and Kamailio's siptrace send the same SIP messages"
    );

    // rtpengine's reports: both sides' sender reports, tagged with the call's Call-ID.
    let from_rtpengine = rtcp_reports(&rtcp, RTPENGINE_ID);
    let from_heplify = rtcp_reports(&rtcp, HEPLIFY_ID);
    let reporters: BTreeSet<u64> = from_rtpengine.keys().map(|k| k.0).collect();
    assert_eq!(
        reporters,
        BTreeSet::from([u64::from(ssrc_a), u64::from(ssrc_b)]),
        "rtpengine mirrored both endpoints' reports: {from_rtpengine:?}"
    );
    for (key, ids) in &from_rtpengine {
        assert_eq!(ids, &BTreeSet::from([CALL_ID.to_string()]), "{key:?}");
        assert_eq!(
            from_heplify.get(key),
            Some(ids),
            "heplify sent report {key:?} with the same correlation id"
        );
    }

    // The call's flow: Kamailio's SIP and rtpengine's RTCP in its QoS.
    let flow = server.get(&format!("/api/v1/calls/{CALL_ID}/flow"));
    let flow_nodes: BTreeSet<&str> = flow["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| str_of(m, "node"))
        .collect();
    assert!(
        flow_nodes.contains(KAMAILIO_ID.to_string().as_str()),
        "Kamailio's SIP in the flow: {flow_nodes:?}"
    );
    let qos = flow["qos"].as_array().expect("qos");
    let rtpengine_rows: Vec<&Value> = qos
        .iter()
        .filter(|r| str_of(r, "node") == RTPENGINE_ID.to_string())
        .collect();
    assert!(
        rtpengine_rows.len() >= 6,
        "rtpengine's reports in the call's QoS: {qos:#?}"
    );
    for row in &rtpengine_rows {
        assert_eq!(str_of(row, "correlation_id"), CALL_ID);
        assert!(row["jitter_ms"].as_f64().is_some(), "jitter in {row}");
    }
    assert!(server.stop().success());
}
