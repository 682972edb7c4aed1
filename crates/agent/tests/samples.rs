//! Every SIP message in the shared sample captures comes out of the pipeline exactly once,
//! byte-exact, with the addresses, ports, transport and timestamp tshark (an independent
//! dissector, with decode-as for the non-standard ports) reports for it.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::samples;

use agent::{AgentConfig, Counters, Pacing, Pipeline};
use tokio_util::sync::CancellationToken;

/// What identifies one SIP message: capture time (µs), transport, addresses, ports, Call-ID
/// and CSeq.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    micros: i64,
    transport: &'static str,
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
    call_id: String,
    cseq: String,
}

/// One emitted HEP message, decoded back.
#[derive(Debug, Clone)]
struct Out {
    proto_type: u8,
    key: Option<Key>,
    payload: Vec<u8>,
    correlation_id: Option<Vec<u8>>,
    capture_id: Option<u32>,
    node_name: Option<Vec<u8>>,
    auth_key: Option<Vec<u8>>,
}

fn run_pipeline(path: &Path, cfg: AgentConfig) -> (Vec<Out>, agent::Snapshot) {
    let counters = Arc::new(Counters::default());
    let mut pipeline = Pipeline::new(cfg, counters.clone());
    let mut out = Vec::new();
    let mut sink = |bytes: &[u8]| {
        let p = hep::decode(bytes).expect("agent output decodes as HEP");
        let payload = p.payload.expect("payload").to_vec();
        let key = (p.proto_type == Some(1)).then(|| {
            let msg = sip::index(&payload);
            Key {
                micros: i64::from(p.ts_sec.expect("sec")) * 1_000_000
                    + i64::from(p.ts_usec.expect("usec")),
                transport: match p.ip_proto {
                    Some(6) => "tcp",
                    Some(17) => "udp",
                    Some(132) => "sctp",
                    other => panic!("ip proto {other:?}"),
                },
                src: p.src_ip.expect("src"),
                src_port: p.src_port.expect("sport"),
                dst: p.dst_ip.expect("dst"),
                dst_port: p.dst_port.expect("dport"),
                call_id: msg
                    .call_id
                    .map(|t| t.to_str_lossy().into_owned())
                    .unwrap_or_default(),
                cseq: msg
                    .cseq
                    .map(|c| format!("{} {}", c.number, c.method.to_str_lossy()))
                    .unwrap_or_default(),
            }
        });
        out.push(Out {
            proto_type: p.proto_type.expect("proto type"),
            key,
            payload,
            correlation_id: p.correlation_id.map(<[u8]>::to_vec),
            capture_id: p.capture_id,
            node_name: p.node_name.map(<[u8]>::to_vec),
            auth_key: p.auth_key.map(<[u8]>::to_vec),
        });
    };
    let errors = agent::capture_files(
        &[path.to_path_buf()],
        Pacing::Unpaced,
        &mut pipeline,
        &mut sink,
        &CancellationToken::new(),
    );
    assert!(errors.is_empty(), "{path:?}: {errors:?}");
    (out, counters.snapshot())
}

/// The SIP messages tshark dissects in `path`, one key per message.
fn tshark_messages(path: &Path) -> Vec<Key> {
    let fields = [
        "frame.time_epoch",
        "ip.src",
        "ipv6.src",
        "ip.dst",
        "ipv6.dst",
        "udp.srcport",
        "udp.dstport",
        "tcp.srcport",
        "tcp.dstport",
        "sctp.srcport",
        "sctp.dstport",
        "sip.Call-ID",
        "sip.CSeq",
        "ip.id",
    ];
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(path);
    // The samples' SIP on non-standard ports.
    for port in [
        "tcp.port==6060,sip",
        "udp.port==6363,sip",
        "tcp.port==5060,sip",
    ] {
        cmd.args(["-d", port]);
    }
    cmd.args([
        "-Y",
        "sip",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let output = cmd
        .output()
        .expect("tshark is installed (Debian package tshark)");
    assert!(output.status.success(), "tshark failed on {path:?}");
    let mut keys = Vec::new();
    // Copies of one datagram seen twice on the wire (same IP id, addresses and message within
    // the agent's 50 ms duplicate window) are one message; tshark lists both.
    let mut last_copy: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let last = |i: usize| {
            cols.get(i)
                .and_then(|c| c.split('|').next_back())
                .unwrap_or("")
        };
        let (secs, frac) = cols[0].split_once('.').expect("epoch");
        let micros = secs.parse::<i64>().expect("secs") * 1_000_000
            + frac[..6].parse::<i64>().expect("frac");
        let src = [last(1), last(2)]
            .into_iter()
            .find(|s| !s.is_empty())
            .expect("src");
        let dst = [last(3), last(4)]
            .into_iter()
            .find(|s| !s.is_empty())
            .expect("dst");
        let (transport, sp, dp) = if !last(5).is_empty() {
            ("udp", last(5), last(6))
        } else if !last(7).is_empty() {
            ("tcp", last(7), last(8))
        } else {
            ("sctp", last(9), last(10))
        };
        let ip_id = last(13);
        if transport == "udp" && !ip_id.is_empty() {
            let copy = (
                format!("{src}:{sp}>{dst}:{dp}"),
                ip_id.to_string(),
                cols[11].to_string(),
                cols[12].to_string(),
            );
            let previous = last_copy.insert(copy, micros);
            if previous.is_some_and(|t| micros - t <= 50_000) {
                continue;
            }
        }
        let call_ids: Vec<&str> = cols[11].split('|').collect();
        let cseqs: Vec<&str> = cols[12].split('|').collect();
        assert_eq!(call_ids.len(), cseqs.len(), "{line}");
        for (call_id, cseq) in call_ids.iter().zip(&cseqs) {
            keys.push(Key {
                micros,
                transport,
                src: src.parse().expect("src ip"),
                src_port: sp.parse().expect("sport"),
                dst: dst.parse().expect("dst ip"),
                dst_port: dp.parse().expect("dport"),
                call_id: call_id.to_string(),
                cseq: cseq.to_string(),
            });
        }
    }
    keys
}

fn multiset(keys: impl IntoIterator<Item = Key>) -> BTreeMap<Key, usize> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_default() += 1;
    }
    m
}

/// Runs one capture and checks it against tshark; returns the pipeline output.
fn check(rel: &str) -> (Vec<Out>, agent::Snapshot) {
    let path = samples().join(rel);
    let cfg = AgentConfig {
        capture_id: 2001,
        node_name: "agent-test".into(),
        auth_key: Some("secret".into()),
        ..AgentConfig::default()
    };
    let (out, snapshot) = run_pipeline(&path, cfg);
    let expected = tshark_messages(&path);
    let sip: Vec<&Out> = out.iter().filter(|o| o.proto_type == 1).collect();
    for o in &sip {
        // Byte-exact framing: each payload is exactly one whole SIP message.
        assert_eq!(
            sip::message_len(&o.payload, usize::MAX),
            Ok(Some(o.payload.len())),
            "{rel}: not one whole message: {:?}",
            String::from_utf8_lossy(&o.payload)
        );
        assert_eq!(o.capture_id, Some(2001));
        assert_eq!(o.node_name.as_deref(), Some(&b"agent-test"[..]));
        assert_eq!(o.auth_key.as_deref(), Some(&b"secret"[..]));
    }
    let got = multiset(sip.iter().map(|o| o.key.clone().expect("key")));
    let want = multiset(expected.iter().cloned());
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, n)| got.get(*k) != Some(n))
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, n)| want.get(*k) != Some(n))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{rel}: {snapshot:?}: {} SIP messages from the agent, {} from tshark\nmissing or miscounted: {missing:#?}\nextra: {extra:#?}",
        sip.len(),
        expected.len()
    );
    assert_eq!(
        snapshot.seen as usize,
        packet_count(&path),
        "{rel}: every packet read"
    );
    (out, snapshot)
}

fn packet_count(path: &Path) -> usize {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn udp_ipv4_with_rtp_and_rtcp() {
    let (out, s) = check("heplify-pcaps/rtp_rtcp_sip_ipv4_udp.pcap");
    assert_eq!(s.sip_udp, 14);
    // RTCP correlated to its call by the SDP seen before it.
    let rtcp: Vec<&Out> = out.iter().filter(|o| o.proto_type == 5).collect();
    assert!(!rtcp.is_empty(), "{s:?}");
    let call_ids: Vec<String> = out
        .iter()
        .filter_map(|o| o.key.as_ref().map(|k| k.call_id.clone()))
        .collect();
    for r in &rtcp {
        let corr =
            String::from_utf8(r.correlation_id.clone().expect("correlation id")).expect("utf8");
        assert!(call_ids.contains(&corr), "{corr}");
        let json: serde_json::Value = serde_json::from_slice(&r.payload).expect("RTCP JSON");
        // The same JSON the payload crate reads back.
        assert!(payload::rtcp::from_json(&r.payload).is_ok(), "{json}");
    }
    assert_eq!(s.rtcp as usize, rtcp.len());
}

#[test]
fn udp_ipv6() {
    let (_, s) = check("heplify-pcaps/sip_ipv6_udp.pcap");
    assert_eq!(s.sip_udp, 6);
}

#[test]
fn ipv6_fragments_are_reassembled() {
    // No SIP inside (NDN over UDP), but the fragmented datagram must be rebuilt.
    let (_, s) = check("heplify-pcaps/ipv6_udp_fragmented.pcap");
    assert_eq!(s.ip_reassembled, 1);
}

#[test]
fn ip_in_ip() {
    let (_, s) = check("heplify-pcaps/ipip0.pcap");
    assert_eq!(s.sip_udp, 8);
}

#[test]
fn tcp_plain() {
    let (_, s) = check("heplify-pcaps/sip_ipv4_tcp.pcap");
    assert_eq!(s.sip_tcp, 7);
}

#[test]
fn tcp_messages_over_many_segments() {
    let (_, s) = check("heplify-pcaps/sip_ipv4_tcp_fragmented.pcap");
    assert_eq!(s.sip_tcp, 406);
    assert!(s.reassembled > 0, "{s:?}");
}

#[test]
fn tcp_retransmissions_come_out_once() {
    // Four REGISTERs over TCP, forwarded over UDP.
    let (_, s) = check("heplify-pcaps/sip_ipv4_tcp_retrans.pcap");
    assert_eq!((s.sip_tcp, s.sip_udp), (4, 4));
}

#[test]
fn sctp() {
    let (_, s) = check("heplify-pcaps/sip_sctp.pcap");
    assert_eq!(s.sip_sctp, 4);
}

#[test]
fn websocket() {
    let (_, s) = check("heplify-pcaps/sip_tcp_websocket.pcap");
    assert!(s.sip_websocket > 0, "{s:?}");
}

#[test]
fn t38_fax_call() {
    // The mirror port delivered 23 of the 92 SIP datagrams twice (same IP id, 1-2 ms apart).
    let (_, s) = check("heplify-pcaps/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap");
    assert_eq!((s.sip_udp, s.duplicates), (69, 23));
}

#[test]
fn kamailio_udp_and_tcp() {
    let (_, s) = check("kamailio-hep3-udp/sip-traffic.pcap");
    assert!(s.sip_tcp > 0 && s.sip_udp > 0, "{s:?}");
}

#[test]
fn kamailio_hep3_tcp() {
    check("kamailio-hep3-tcp/sip-traffic.pcap");
}

#[test]
fn kamailio_hep2_udp() {
    check("kamailio-hep2-udp/sip-traffic.pcap");
}

#[test]
fn rtpengine_sip_traffic() {
    let path = samples().join("rtpengine-hep3-rtcp/sip-traffic.pcap");
    if path.exists() {
        check("rtpengine-hep3-rtcp/sip-traffic.pcap");
    }
}
