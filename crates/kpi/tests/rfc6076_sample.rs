//! The RFC 6076 figures of the real Kamailio + SIPp sample must match the values computed
//! independently from the same traffic (`rfc6076-values-uac-legs.json`, by the samples'
//! `kpi_from_hep.py`), measured on the UAC legs: transactions whose server is the proxy
//! (target `proxy` = 127.0.0.1:5060, direction `in`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use kpi::{Kpi, KpiConfig, SipEvent, TargetGroup};

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples/kamailio-hep3-udp")
}

struct Msg {
    time_us: i64,
    node: String,
    src: SocketAddr,
    dst: SocketAddr,
    raw: Vec<u8>,
}

fn load() -> Option<Vec<Msg>> {
    let dir = samples().join("datagrams");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .ok()?
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let p = hep::decode(&bytes).unwrap();
        if p.proto_type != Some(1) {
            continue;
        }
        let ip = |v: Option<IpAddr>| v.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        out.push(Msg {
            time_us: p.timestamp_micros().unwrap() as i64,
            node: p.capture_id.unwrap().to_string(),
            src: SocketAddr::new(ip(p.src_ip), p.src_port.unwrap()),
            dst: SocketAddr::new(ip(p.dst_ip), p.dst_port.unwrap()),
            raw: p.payload_bytes().unwrap().to_vec(),
        });
    }
    Some(out)
}

/// The event of sample message `m` (indexed as `s`), its times shifted by `shift_us`.
fn sip_event<'a>(m: &'a Msg, s: &'a sip::SipMessage<'a>, shift_us: i64) -> SipEvent<'a> {
    SipEvent {
        time_us: m.time_us + shift_us,
        received_us: m.time_us + shift_us,
        node: &m.node,
        src: m.src,
        dst: m.dst,
        method: s.method().and_then(|t| t.as_str()),
        status: s.status_code(),
        call_id: s.call_id.as_ref().and_then(|t| t.as_str()).unwrap_or(""),
        cseq_num: s.cseq.as_ref().map_or(0, |c| c.number),
        cseq_method: s.cseq_method().and_then(|t| t.as_str()).unwrap_or(""),
        via_branch: s.via_branch().and_then(|t| t.as_str()),
        to_tag: s.to_tag().and_then(|t| t.as_str()),
    }
}

fn feed(kpi: &Kpi, msgs: &[Msg]) {
    for m in msgs {
        let s = sip::index(&m.raw);
        kpi.observe_sip(&sip_event(m, &s, 0));
    }
}

fn engine() -> Kpi {
    Kpi::new(KpiConfig {
        targets: vec![TargetGroup {
            name: "proxy".into(),
            addresses: vec!["127.0.0.1:5060".into()],
        }],
        ..KpiConfig::default()
    })
    .unwrap()
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{name_and_labels} not rendered"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn uac_legs_match_the_independent_rfc6076_values() {
    let Some(msgs) = load() else {
        eprintln!("SKIP: samples not found at {}", samples().display());
        return;
    };
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(samples().join("rfc6076-values-uac-legs.json")).unwrap(),
    )
    .unwrap();
    let kpi = engine();
    feed(&kpi, &msgs);
    let last = msgs.iter().map(|m| m.time_us).max().unwrap();
    // Right after the traffic, the sliding-window gauges show the same figures.
    let mut early = String::new();
    kpi.tick(last);
    kpi.render_prometheus(&mut early);
    let l = r#"node="2001",target="proxy",direction="in""#;
    assert_eq!(
        metric(&early, &format!("hepstack_kpi_ser_percent{{{l}}}")),
        1300.0 / 23.0
    );
    assert_eq!(
        metric(&early, &format!("hepstack_kpi_ira_percent{{{l}}}")),
        200.0 / 7.0
    );
    // Ten idle minutes: every transaction and dialog times out or has ended.
    let wall = last + 600_000_000;
    kpi.tick(wall);
    let snap = kpi.snapshot(Some(86_400));
    let scope = snap
        .scopes
        .iter()
        .find(|s| s.node == "2001" && s.target == "proxy" && s.direction == "in")
        .expect("proxy/in scope");
    let agg = &reference["aggregate"];
    let w = &scope.window;
    assert_eq!(w.session_attempts, agg["INVITE_attempts"].as_u64().unwrap());
    assert_eq!(w.ser_percent, agg["SER_pct"].as_f64());
    assert_eq!(w.seer_percent, agg["SEER_pct"].as_f64());
    assert_eq!(w.isa_percent, agg["ISA_pct"].as_f64());
    assert_eq!(
        w.registration_attempts,
        agg["REGISTER_attempts"].as_u64().unwrap()
    );
    assert_eq!(w.ira_percent, agg["IRA_pct"].as_f64());
    for (code, n) in agg["finals"].as_object().unwrap() {
        let outcome = kpi::stats::Outcome::of_code(code.parse().unwrap());
        assert!(w.session_outcomes[outcome.label()] >= n.as_u64().unwrap());
    }
    // Every answered call was closed by a BYE answered 200.
    let answered = agg["finals"]["200"].as_u64().unwrap();
    assert_eq!(w.sessions_completed, answered);
    assert_eq!(w.sessions_ended, agg["INVITE_attempts"].as_u64().unwrap());

    // Delay histograms: sums equal the per-call reference values.
    let calls = reference["calls"].as_array().unwrap();
    let sum = |f: &dyn Fn(&serde_json::Value) -> Option<f64>| -> (f64, u64) {
        let v: Vec<f64> = calls.iter().filter_map(f).collect();
        (v.iter().sum::<f64>() / 1000.0, v.len() as u64)
    };
    let (srd_ok, n_ok) = sum(&|c| {
        (c["first_status_gt_100"].as_u64()? < 300)
            .then(|| c["SRD_ms"].as_f64())
            .flatten()
    });
    let (srd_fail, n_fail) = sum(&|c| {
        (c["first_status_gt_100"].as_u64()? >= 400)
            .then(|| c["SRD_ms"].as_f64())
            .flatten()
    });
    let (sdt, n_sdt) = sum(&|c| c["SDT_ms"].as_f64());
    let (sdd, n_sdd) = sum(&|c| c["SDD_ms"].as_f64());
    let regs = reference["registrations"].as_array().unwrap();
    let rrd: Vec<f64> = regs.iter().filter_map(|r| r["RRD_ms"].as_f64()).collect();
    let mut text = String::new();
    kpi.tick(wall);
    kpi.render_prometheus(&mut text);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-5 * n_ok.max(1) as f64;
    let check = |name: &str, extra: &str, want_sum: f64, want_n: u64| {
        let labels = if extra.is_empty() {
            l.to_string()
        } else {
            format!("{l},{extra}")
        };
        let got_n = metric(&text, &format!("{name}_count{{{labels}}}"));
        let got_sum = metric(&text, &format!("{name}_sum{{{labels}}}"));
        assert_eq!(got_n as u64, want_n, "{name} {extra} count");
        assert!(
            close(got_sum, want_sum),
            "{name} {extra}: sum {got_sum} want {want_sum}"
        );
    };
    check(
        "hepstack_kpi_srd_seconds",
        "outcome=\"success\"",
        srd_ok,
        n_ok,
    );
    check(
        "hepstack_kpi_srd_seconds",
        "outcome=\"failure\"",
        srd_fail,
        n_fail,
    );
    check("hepstack_kpi_sdt_seconds", "", sdt, n_sdt);
    check(
        "hepstack_kpi_sdd_seconds",
        "outcome=\"success\"",
        sdd,
        n_sdd,
    );
    check(
        "hepstack_kpi_rrd_seconds",
        "outcome=\"success\"",
        rrd.iter().sum::<f64>() / 1000.0,
        rrd.len() as u64,
    );
    // Ten minutes later the 5-minute window is empty: no ratio gauge without a denominator.
    assert!(!text.contains("hepstack_kpi_ser_percent{"));
    // Counters: 23 initial INVITEs into the proxy; retransmissions apart.
    assert_eq!(
        metric(
            &text,
            &format!("hepstack_sip_requests_total{{{l},method=\"INVITE\"}}")
        ),
        23.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("hepstack_kpi_session_attempts_total{{{l}}}")
        ),
        23.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("hepstack_kpi_session_outcomes_total{{{l},outcome=\"success\"}}")
        ),
        13.0
    );
    // The UAS legs (proxy as client) saw the forwarded INVITEs retransmitted (408 timeouts).
    let out = r#"node="2001",target="proxy",direction="out""#;
    assert!(
        metric(
            &text,
            &format!("hepstack_sip_request_retransmissions_total{{{out},method=\"INVITE\"}}")
        ) >= 4.0
    );
    // Kamailio traced the ACK of each locally generated 404 twice, µs apart: duplicates.
    assert!(kpi.counters().duplicates >= 3, "{:?}", kpi.counters());
    // Everything ended: nothing left tracked after the idle time.
    assert_eq!(kpi.tracked(), (0, 0, 0));
}

#[test]
fn replaying_twice_doubles_the_counts_without_retransmissions() {
    let Some(msgs) = load() else {
        eprintln!("SKIP: samples not found");
        return;
    };
    let kpi = engine();
    feed(&kpi, &msgs);
    let span = msgs.last().unwrap().time_us - msgs[0].time_us + 3_600_000_000;
    let shifted: Vec<Msg> = msgs
        .iter()
        .map(|m| Msg {
            time_us: m.time_us + span,
            node: m.node.clone(),
            src: m.src,
            dst: m.dst,
            raw: m.raw.clone(),
        })
        .collect();
    feed(&kpi, &shifted);
    let end = shifted.iter().map(|m| m.time_us).max().unwrap() + 600_000_000;
    kpi.tick(end);
    let snap = kpi.snapshot(Some(86_400));
    let s = snap
        .scopes
        .iter()
        .find(|s| s.target == "proxy" && s.direction == "in")
        .unwrap();
    // The window is one day: both replays are in it.
    assert_eq!(s.window.session_attempts, 46);
    assert_eq!(s.window.ser_percent, Some(56.52));
    let series = kpi.series(&kpi::SeriesQuery {
        from_ms: msgs[0].time_us / 1000 - 60_000,
        to_ms: end / 1000,
        node: None,
        target: Some("proxy".into()),
        direction: Some("in".into()),
    });
    let total: u64 = series
        .points
        .iter()
        .map(|p| p.figures.session_attempts)
        .sum();
    assert_eq!(total, 46);
    assert!(series
        .points
        .windows(2)
        .all(|w| w[0].time_ms < w[1].time_ms));
}

/// Throughput figure for BENCHMARKS.md (not a pass/fail test):
/// `cargo test -p kpi --test rfc6076_sample -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    let Some(msgs) = load() else {
        eprintln!("SKIP: samples not found");
        return;
    };
    let indexed: Vec<_> = msgs.iter().map(|m| (m, sip::index(&m.raw))).collect();
    let rounds = 2000i64;
    let span = 3_600_000_000i64;
    // Directly in order, then as the collector feeds: batches of 512 through the reorder buffer.
    for through_buffer in [false, true] {
        let kpi = engine();
        let started = std::time::Instant::now();
        let mut batch = Vec::with_capacity(512);
        for round in 0..rounds {
            let shift = round * span;
            for (m, s) in &indexed {
                let ev = sip_event(m, s, shift);
                if !through_buffer {
                    kpi.observe_sip(&ev);
                    continue;
                }
                batch.push(ev);
                if batch.len() == batch.capacity() {
                    let mut feeder = kpi.feeder(ev.received_us);
                    batch.drain(..).for_each(|e| feeder.sip(&e));
                }
            }
        }
        kpi.flush();
        let n = rounds as f64 * indexed.len() as f64;
        let secs = started.elapsed().as_secs_f64();
        let how = if through_buffer {
            "through the reorder buffer"
        } else {
            "directly"
        };
        eprintln!(
            "kpi: {n} SIP events {how} in {secs:.2} s = {:.0} events/s (one thread, 1 target group)",
            n / secs
        );
    }
}

/// Feeds the sample as parallel writer threads would: a batch closes at three messages or
/// 100 ms after its first one (`max_batch_delay_ms`), takes a random 0–`max_lag_us` to store,
/// and is fed when stored; batches are fed in the order they finished storing.
fn feed_out_of_order(kpi: &Kpi, msgs: &[Msg], seed: u64, max_lag_us: i64) {
    let mut batches: Vec<Vec<&Msg>> = Vec::new();
    for m in msgs {
        match batches.last_mut() {
            Some(b) if b.len() < 3 && m.time_us - b[0].time_us <= 100_000 => b.push(m),
            _ => batches.push(vec![m]),
        }
    }
    let mut rng = seed;
    let mut finished: Vec<(i64, Vec<&Msg>)> = batches
        .into_iter()
        .map(|b| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let lag = (rng >> 33) as i64 % (max_lag_us + 1);
            (b.last().expect("non-empty").time_us + lag, b)
        })
        .collect();
    finished.sort_by_key(|(t, _)| *t);
    let mut reordered = 0;
    for (i, (wall, batch)) in finished.iter().enumerate() {
        if i > 0 && finished[i - 1].1[0].time_us > batch[0].time_us {
            reordered += 1;
        }
        let mut feeder = kpi.feeder(*wall);
        for m in batch {
            feeder.sip(&sip_event(m, &sip::index(&m.raw), 0));
        }
    }
    assert!(reordered > 5, "only {reordered} batches out of order");
}

#[test]
fn batches_stored_out_of_order_give_the_in_order_figures() {
    let Some(msgs) = load() else {
        eprintln!("SKIP: samples not found at {}", samples().display());
        return;
    };
    let end = msgs.iter().map(|m| m.time_us).max().unwrap() + 600_000_000;
    let render = |kpi: &Kpi| {
        let mut text = String::new();
        kpi.tick(end);
        kpi.render_prometheus(&mut text);
        text
    };
    let in_order = engine();
    feed(&in_order, &msgs);
    let want = render(&in_order);
    for seed in 1..=5 {
        // Stored within 200 ms, inside the default 1 s window: exactly the in-order figures.
        let kpi = engine();
        feed_out_of_order(&kpi, &msgs, seed, 200_000);
        kpi.flush();
        let got = render(&kpi);
        assert_eq!(
            differing_lines(&got, &want),
            Vec::<String>::new(),
            "seed {seed}"
        );
    }
    // Without the window the same batches give other figures: the test can tell.
    let kpi = Kpi::new(KpiConfig {
        reorder_window_ms: 0,
        targets: vec![TargetGroup {
            name: "proxy".into(),
            addresses: vec!["127.0.0.1:5060".into()],
        }],
        ..KpiConfig::default()
    })
    .unwrap();
    feed_out_of_order(&kpi, &msgs, 1, 200_000);
    let got = render(&kpi);
    assert_ne!(differing_lines(&got, &want), Vec::<String>::new());
    assert!(
        metric(&got, "hepstack_kpi_late_messages_total") > 0.0,
        "{got}"
    );
}

/// Lines of `got` not in `want` and lines of `want` not in `got`, marked `+` and `-`.
fn differing_lines(got: &str, want: &str) -> Vec<String> {
    let g: std::collections::BTreeSet<&str> = got.lines().collect();
    let w: std::collections::BTreeSet<&str> = want.lines().collect();
    let mut out: Vec<String> = g.difference(&w).map(|l| format!("+ {l}")).collect();
    out.extend(w.difference(&g).map(|l| format!("- {l}")));
    out
}
