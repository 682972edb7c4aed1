//! Fuzz the KPI crate's QoS parsers (X-RTP-Stat / P-RTP-Stat values, RFC 6035 vq-rtcpxr
//! bodies, header lookup) and the tracker fed with SIP events built from the input: nothing
//! may panic, every figure must be finite and in range.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use kpi::qos;
use libfuzzer_sys::fuzz_target;

fn check(s: &qos::QosSample) {
    for v in [s.jitter_ms, s.rtt_ms].into_iter().flatten() {
        assert!(v.is_finite() && v >= 0.0);
    }
    if let Some(l) = s.loss_fraction {
        assert!((0.0..=1.0).contains(&l));
    }
    if let Some(m) = s.mos {
        assert!((1.0..=5.0).contains(&m));
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(s) = qos::parse_x_rtp_stat(&text) {
        check(&s);
    }
    if let Some(s) = qos::parse_vq_rtcpxr(&text) {
        check(&s);
    }
    let _ = qos::find_header(data, "X-RTP-Stat");
    let _ = qos::body(data);
    for (_, s) in qos::from_rtcp_json(data, 1_700_000_000_000_000, 8000) {
        check(&s);
    }
    // The tracker: events from 8-byte records (method/status, ports, time step, ids).
    let engine = kpi::Kpi::new(kpi::KpiConfig {
        max_transactions: 16,
        max_sessions: 8,
        max_registrations: 8,
        history_minutes: 4,
        ..kpi::KpiConfig::default()
    })
    .expect("config");
    let methods = ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS"];
    let mut t = 0i64;
    for r in data.chunks_exact(8) {
        t += i64::from(r[0]) * 100_000;
        let method = methods[usize::from(r[1]) % methods.len()];
        let is_request = r[2] & 1 == 0;
        let status = [100u16, 180, 200, 401, 407, 408, 486, 487, 503][usize::from(r[3]) % 9];
        let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060 + u16::from(r[4] & 3));
        let b = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5070 + u16::from(r[5] & 3));
        let call_id = format!("c{}", r[6] & 7);
        let branch = format!("z9hG4bK{}", r[7] & 7);
        engine.observe_sip(&kpi::SipEvent {
            time_us: t,
            received_us: t,
            node: if r[7] & 0x80 == 0 { "n1" } else { "n2" },
            src: if is_request { a } else { b },
            dst: if is_request { b } else { a },
            method: is_request.then_some(method),
            status: (!is_request).then_some(status),
            call_id: &call_id,
            cseq_num: u32::from(r[6] >> 4),
            cseq_method: method,
            via_branch: Some(&branch),
            to_tag: (r[2] & 2 != 0).then_some("tag"),
        });
    }
    // An hour later every item has timed out; rendering and the snapshot only read.
    engine.tick(t + 3_600_000_000);
    let mut out = String::new();
    engine.render_prometheus(&mut out);
    let (tx, s, r) = engine.tracked();
    assert!(tx <= 16 && s <= 8 && r <= 8);
    let _ = engine.snapshot(Some(60));
});
