//! The tracker's expiry must give exactly the figures of the engine that found expired items
//! by scanning every table (the engine before the time-ordered queues). The expected figures
//! in `tests/golden/expiry/` were written by that engine from the same inputs: the RFC 6076
//! sample traffic of the Kamailio captures, with the default timeouts and with timeouts short
//! enough to fire in the middle of the traffic, and seeded synthetic traffic made of every
//! kind of call, registration and time-out, with capture times out of order. Each scenario
//! lets time pass and renders every metric at checkpoints along the way, so an item expired
//! too early, too late, twice or never changes the text.
//!
//! Record again (only when a change of figures is intended) with
//! `KPI_RECORD_GOLDEN=1 cargo test -p kpi --test expiry_equivalence`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use kpi::{Kpi, KpiConfig, SipEvent, TargetGroup};

fn shared_samples() -> PathBuf {
    std::env::var_os("HEPSTACK_SAMPLES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples"),
        PathBuf::from,
    )
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/expiry")
}

/// One SIP message with owned text.
#[derive(Debug, Clone)]
struct Msg {
    time_us: i64,
    node: String,
    src: SocketAddr,
    dst: SocketAddr,
    method: Option<String>,
    status: Option<u16>,
    call_id: String,
    cseq_num: u32,
    cseq_method: String,
    branch: String,
    to_tag: Option<String>,
}

impl Msg {
    fn event(&self) -> SipEvent<'_> {
        SipEvent {
            time_us: self.time_us,
            received_us: self.time_us,
            node: &self.node,
            src: self.src,
            dst: self.dst,
            method: self.method.as_deref(),
            status: self.status,
            call_id: &self.call_id,
            cseq_num: self.cseq_num,
            cseq_method: &self.cseq_method,
            via_branch: Some(&self.branch),
            to_tag: self.to_tag.as_deref(),
        }
    }
}

/// The SIP messages of a folder of HEP datagrams or frames, in file order.
fn load_sample(dir: &Path) -> Vec<Msg> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("sample folder {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).expect("read sample");
        let p = hep::decode(&bytes).expect("sample decodes");
        if p.proto_type != Some(1) {
            continue;
        }
        let ip = |v: Option<IpAddr>| v.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let raw = p.payload_bytes().expect("payload");
        let s = sip::index(raw);
        let text = |t: Option<&str>| t.map(str::to_owned);
        out.push(Msg {
            time_us: p.timestamp_micros().expect("time") as i64,
            node: p.capture_id.expect("capture id").to_string(),
            src: SocketAddr::new(ip(p.src_ip), p.src_port.expect("port")),
            dst: SocketAddr::new(ip(p.dst_ip), p.dst_port.expect("port")),
            method: text(s.method().and_then(|t| t.as_str())),
            status: s.status_code(),
            call_id: text(s.call_id.as_ref().and_then(|t| t.as_str())).unwrap_or_default(),
            cseq_num: s.cseq.as_ref().map_or(0, |c| c.number),
            cseq_method: text(s.cseq_method().and_then(|t| t.as_str())).unwrap_or_default(),
            branch: text(s.via_branch().and_then(|t| t.as_str())).unwrap_or_default(),
            to_tag: text(s.to_tag().and_then(|t| t.as_str())),
        });
    }
    out
}

/// A small deterministic generator (PCG-style LCG), so the scenarios need no recorded input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Builds the messages of synthetic calls and registrations.
struct Gen {
    rng: Rng,
    out: Vec<Msg>,
}

impl Gen {
    #[allow(clippy::too_many_arguments)]
    fn msg(
        &mut self,
        t_us: i64,
        node: &str,
        src: SocketAddr,
        dst: SocketAddr,
        method: Option<&str>,
        status: Option<u16>,
        call_id: &str,
        cseq: (u32, &str),
        branch: &str,
        to_tag: Option<&str>,
    ) {
        self.out.push(Msg {
            time_us: t_us,
            node: node.into(),
            src,
            dst,
            method: method.map(Into::into),
            status,
            call_id: call_id.into(),
            cseq_num: cseq.0,
            cseq_method: cseq.1.into(),
            branch: branch.into(),
            to_tag: to_tag.map(Into::into),
        });
    }

    /// One call or registration starting at `t` (µs), of a random kind.
    fn one(&mut self, i: u64, t: i64) {
        let node = if i % 3 == 0 { "edge" } else { "core" };
        let uac: SocketAddr = format!("10.0.0.{}:5060", 1 + i % 20).parse().expect("addr");
        let uas: SocketAddr = format!("10.0.2.{}:5060", 1 + i % 7).parse().expect("addr");
        let cid = format!("call-{i}@gen");
        let br = |k: &str| format!("z9hG4bK-{i}-{k}");
        let kind = self.rng.below(14);
        let ms = |v: u64| v as i64 * 1000;
        let d1 = ms(5 + self.rng.below(400));
        let d2 = d1 + ms(100 + self.rng.below(6000));
        let dur = d2 + ms(self.rng.below(20_000));
        let inv = (1, "INVITE");
        let ib = br("inv");
        match kind {
            // Register: challenged then accepted; unanswered; refused; challenged, abandoned.
            0..=2 => {
                let rb = br("reg");
                let reg = Some("REGISTER");
                self.msg(
                    t,
                    node,
                    uac,
                    uas,
                    reg,
                    None,
                    &cid,
                    (1, "REGISTER"),
                    &rb,
                    None,
                );
                match kind {
                    0 => {
                        self.msg(
                            t + d1,
                            node,
                            uas,
                            uac,
                            None,
                            Some(401),
                            &cid,
                            (1, "REGISTER"),
                            &rb,
                            Some("r"),
                        );
                        let rb2 = br("reg2");
                        self.msg(
                            t + d2,
                            node,
                            uac,
                            uas,
                            reg,
                            None,
                            &cid,
                            (2, "REGISTER"),
                            &rb2,
                            None,
                        );
                        self.msg(
                            t + d2 + d1,
                            node,
                            uas,
                            uac,
                            None,
                            Some(200),
                            &cid,
                            (2, "REGISTER"),
                            &rb2,
                            Some("r"),
                        );
                    }
                    1 => {
                        // Retransmitted after 500 ms, never answered: Timer F.
                        self.msg(
                            t + 500_000,
                            node,
                            uac,
                            uas,
                            reg,
                            None,
                            &cid,
                            (1, "REGISTER"),
                            &rb,
                            None,
                        );
                    }
                    _ => {
                        if self.rng.below(2) == 0 {
                            self.msg(
                                t + d1,
                                node,
                                uas,
                                uac,
                                None,
                                Some(403),
                                &cid,
                                (1, "REGISTER"),
                                &rb,
                                Some("r"),
                            );
                        } else {
                            self.msg(
                                t + d1,
                                node,
                                uas,
                                uac,
                                None,
                                Some(407),
                                &cid,
                                (1, "REGISTER"),
                                &rb,
                                Some("r"),
                            );
                        }
                    }
                }
            }
            // OPTIONS answered, or not.
            3 => {
                let ob = br("opt");
                self.msg(
                    t,
                    node,
                    uac,
                    uas,
                    Some("OPTIONS"),
                    None,
                    &cid,
                    (1, "OPTIONS"),
                    &ob,
                    None,
                );
                if self.rng.below(2) == 0 {
                    self.msg(
                        t + d1,
                        node,
                        uas,
                        uac,
                        None,
                        Some(200),
                        &cid,
                        (1, "OPTIONS"),
                        &ob,
                        Some("o"),
                    );
                }
            }
            _ => {
                self.msg(
                    t,
                    node,
                    uac,
                    uas,
                    Some("INVITE"),
                    None,
                    &cid,
                    inv,
                    &ib,
                    None,
                );
                // A second capture point traces it again 30 µs later, or it is retransmitted.
                match self.rng.below(4) {
                    0 => self.msg(
                        t + 30,
                        node,
                        uac,
                        uas,
                        Some("INVITE"),
                        None,
                        &cid,
                        inv,
                        &ib,
                        None,
                    ),
                    1 => self.msg(
                        t + 500_000,
                        node,
                        uac,
                        uas,
                        Some("INVITE"),
                        None,
                        &cid,
                        inv,
                        &ib,
                        None,
                    ),
                    _ => {}
                }
                self.msg(
                    t + ms(2),
                    node,
                    uas,
                    uac,
                    None,
                    Some(100),
                    &cid,
                    inv,
                    &ib,
                    None,
                );
                match kind {
                    // Unanswered after 100 Trying: Timer B.
                    4 => {}
                    // Ringing, then nothing: the proceeding timeout.
                    5 => self.msg(
                        t + d1,
                        node,
                        uas,
                        uac,
                        None,
                        Some(180),
                        &cid,
                        inv,
                        &ib,
                        Some("t"),
                    ),
                    // Refused.
                    6 => {
                        let code =
                            [404, 408, 486, 487, 503, 600, 603, 302][self.rng.below(8) as usize];
                        self.msg(
                            t + d1,
                            node,
                            uas,
                            uac,
                            None,
                            Some(code),
                            &cid,
                            inv,
                            &ib,
                            Some("t"),
                        );
                        self.msg(
                            t + d1 + ms(1),
                            node,
                            uac,
                            uas,
                            Some("ACK"),
                            None,
                            &cid,
                            (1, "ACK"),
                            &ib,
                            Some("t"),
                        );
                    }
                    // Challenged; retried with credentials and answered, or abandoned.
                    7 => {
                        self.msg(
                            t + d1,
                            node,
                            uas,
                            uac,
                            None,
                            Some(407),
                            &cid,
                            inv,
                            &ib,
                            Some("t"),
                        );
                        if self.rng.below(3) > 0 {
                            let ib2 = br("inv2");
                            let inv2 = (2, "INVITE");
                            self.msg(
                                t + d2,
                                node,
                                uac,
                                uas,
                                Some("INVITE"),
                                None,
                                &cid,
                                inv2,
                                &ib2,
                                None,
                            );
                            self.msg(
                                t + d2 + d1,
                                node,
                                uas,
                                uac,
                                None,
                                Some(200),
                                &cid,
                                inv2,
                                &ib2,
                                Some("t2"),
                            );
                            let bb = br("bye");
                            self.msg(
                                t + dur + d2,
                                node,
                                uac,
                                uas,
                                Some("BYE"),
                                None,
                                &cid,
                                (3, "BYE"),
                                &bb,
                                Some("t2"),
                            );
                            self.msg(
                                t + dur + d2 + d1,
                                node,
                                uas,
                                uac,
                                None,
                                Some(200),
                                &cid,
                                (3, "BYE"),
                                &bb,
                                Some("t2"),
                            );
                        }
                    }
                    // Answered; then BYE answered, BYE unanswered, no BYE (idle), re-INVITE.
                    _ => {
                        self.msg(
                            t + d1,
                            node,
                            uas,
                            uac,
                            None,
                            Some(180),
                            &cid,
                            inv,
                            &ib,
                            Some("t"),
                        );
                        self.msg(
                            t + d2,
                            node,
                            uas,
                            uac,
                            None,
                            Some(200),
                            &cid,
                            inv,
                            &ib,
                            Some("t"),
                        );
                        // The 200 retransmitted.
                        if self.rng.below(3) == 0 {
                            self.msg(
                                t + d2 + 500_000,
                                node,
                                uas,
                                uac,
                                None,
                                Some(200),
                                &cid,
                                inv,
                                &ib,
                                Some("t"),
                            );
                        }
                        self.msg(
                            t + d2 + ms(3),
                            node,
                            uac,
                            uas,
                            Some("ACK"),
                            None,
                            &cid,
                            (1, "ACK"),
                            &br("ack"),
                            Some("t"),
                        );
                        let bb = br("bye");
                        match kind {
                            8 | 9 => {
                                // The callee hangs up.
                                self.msg(
                                    t + dur,
                                    node,
                                    uas,
                                    uac,
                                    Some("BYE"),
                                    None,
                                    &cid,
                                    (1, "BYE"),
                                    &bb,
                                    Some("f"),
                                );
                                self.msg(
                                    t + dur + d1,
                                    node,
                                    uac,
                                    uas,
                                    None,
                                    Some(200),
                                    &cid,
                                    (1, "BYE"),
                                    &bb,
                                    Some("f"),
                                );
                            }
                            10 => self.msg(
                                t + dur,
                                node,
                                uac,
                                uas,
                                Some("BYE"),
                                None,
                                &cid,
                                (2, "BYE"),
                                &bb,
                                Some("t"),
                            ),
                            11 => {
                                let rb = br("reinv");
                                self.msg(
                                    t + dur,
                                    node,
                                    uac,
                                    uas,
                                    Some("INVITE"),
                                    None,
                                    &cid,
                                    (2, "INVITE"),
                                    &rb,
                                    Some("t"),
                                );
                                self.msg(
                                    t + dur + d1,
                                    node,
                                    uas,
                                    uac,
                                    None,
                                    Some(200),
                                    &cid,
                                    (2, "INVITE"),
                                    &rb,
                                    Some("t"),
                                );
                            }
                            // No BYE at all: the dialog goes idle.
                            12 => {}
                            _ => {
                                self.msg(
                                    t + dur,
                                    node,
                                    uac,
                                    uas,
                                    Some("BYE"),
                                    None,
                                    &cid,
                                    (2, "BYE"),
                                    &bb,
                                    Some("t"),
                                );
                                self.msg(
                                    t + dur + d1,
                                    node,
                                    uas,
                                    uac,
                                    None,
                                    Some(481),
                                    &cid,
                                    (2, "BYE"),
                                    &bb,
                                    Some("t"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `n` calls and registrations over `span_s` seconds, in capture order with times nudged out
/// of order by up to 3 ms (two capture points, a proxy's trace clock).
fn synthetic(seed: u64, n: u64, span_s: u64) -> Vec<Msg> {
    let mut g = Gen {
        rng: Rng(seed),
        out: Vec::new(),
    };
    let base = 1_700_000_000_000_000i64;
    for i in 0..n {
        let t = base + g.rng.below(span_s * 1_000_000) as i64;
        g.one(i, t);
    }
    g.out.sort_by_key(|m| m.time_us);
    for m in &mut g.out {
        m.time_us += g.rng.below(3000) as i64;
    }
    g.out
}

fn config(short_timeouts: bool) -> KpiConfig {
    let mut cfg = KpiConfig {
        targets: vec![
            TargetGroup {
                name: "proxy".into(),
                addresses: vec!["127.0.0.1:5060".into()],
            },
            TargetGroup {
                name: "carrier".into(),
                addresses: vec!["10.0.2.0/29".into()],
            },
        ],
        ..KpiConfig::default()
    };
    if short_timeouts {
        cfg.transaction_timeout_ms = 2_000;
        cfg.proceeding_timeout_ms = 6_000;
        cfg.dialog_idle_timeout_secs = 12;
    }
    cfg
}

/// How the messages reach the engine.
#[derive(Clone, Copy)]
enum Feed {
    /// [`Kpi::observe_sip`], one by one in the given order.
    Direct,
    /// [`Kpi::feeder`] in batches of 7, through the reorder buffer.
    Batches,
}

/// Feeds `msgs`, letting time pass and rendering every metric at checkpoints, then at the
/// end, ten minutes later and three hours later.
fn run(cfg: KpiConfig, msgs: &[Msg], feed: Feed, every: usize) -> String {
    let kpi = Kpi::new(cfg).expect("config");
    let mut out = String::new();
    // The digest of every line and, readable, the tracker's lines and the session outcomes;
    // the last checkpoint keeps every line but histogram buckets. This keeps the recorded
    // figures small while any difference still shows.
    let checkpoint = |kpi: &Kpi, wall: i64, out: &mut String, whole: bool| {
        kpi.tick(wall);
        let mut text = String::new();
        kpi.render_prometheus(&mut text);
        let digest = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        out.push_str(&format!("### checkpoint at {wall}: {digest:016x}\n"));
        for line in text.lines() {
            let tracker = line.starts_with("hepstack_kpi_tracked")
                || line.starts_with("hepstack_kpi_tracking_overflow_total")
                || line.starts_with("hepstack_kpi_dialogs_expired_total")
                || (line.starts_with("hepstack_kpi_session_outcomes_total")
                    && line.contains("target=\"any\""));
            if (whole && !line.starts_with('#') && !line.contains("_bucket{")) || tracker {
                out.push_str(line);
                out.push('\n');
            }
        }
    };
    for (i, chunk) in msgs.chunks(every).enumerate() {
        match feed {
            Feed::Direct => chunk.iter().for_each(|m| kpi.observe_sip(&m.event())),
            Feed::Batches => {
                for batch in chunk.chunks(7) {
                    let wall = batch.last().map_or(0, |m| m.time_us);
                    let mut feeder = kpi.feeder(wall);
                    batch.iter().for_each(|m| feeder.sip(&m.event()));
                }
            }
        }
        let wall = chunk.last().map_or(0, |m| m.time_us);
        if i % 2 == 1 {
            checkpoint(&kpi, wall, &mut out, false);
        }
    }
    kpi.flush();
    let end = msgs.iter().map(|m| m.time_us).max().unwrap_or(0);
    for later in [0, 600_000_000, 3 * 3_600_000_000] {
        checkpoint(&kpi, end + later, &mut out, later > 600_000_000);
    }
    let snap = kpi.snapshot(Some(86_400));
    out.push_str("### snapshot\n");
    out.push_str(&serde_json::to_string(&snap).expect("json"));
    out.push('\n');
    out
}

/// Compares with (or records) the golden file `name`.
fn check(name: &str, got: &str) {
    let path = golden_dir().join(format!("{name}.txt"));
    if std::env::var_os("KPI_RECORD_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        std::fs::write(&path, got).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("golden file {}: {e}", path.display()));
    if got != want {
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .enumerate()
            .filter(|(_, (g, w))| g != w)
            .take(20)
            .map(|(i, (g, w))| format!("line {}: got {g:?}, want {w:?}", i + 1))
            .collect();
        panic!(
            "{name}: figures differ from the scanning engine's ({} vs {} lines)\n{}",
            got.lines().count(),
            want.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn sample_traffic_gives_the_scanning_engines_figures() {
    for (sample, folder) in [
        ("kamailio-hep3-udp", "datagrams"),
        ("kamailio-hep2-udp", "datagrams"),
        ("kamailio-hep3-tcp", "frames"),
    ] {
        let msgs = load_sample(&shared_samples().join(sample).join(folder));
        assert!(msgs.len() > 20, "{sample}: {} SIP messages", msgs.len());
        for short in [false, true] {
            for (feed, how) in [(Feed::Direct, "direct"), (Feed::Batches, "batches")] {
                let name = format!("{sample}-{}-{how}", if short { "short" } else { "default" });
                check(&name, &run(config(short), &msgs, feed, 40));
            }
        }
    }
}

#[test]
fn synthetic_traffic_gives_the_scanning_engines_figures() {
    for seed in 1..=6u64 {
        let msgs = synthetic(seed, 600, 90);
        for short in [false, true] {
            let name = format!(
                "synthetic-{seed}-{}",
                if short { "short" } else { "default" }
            );
            let feed = if seed % 2 == 0 {
                Feed::Batches
            } else {
                Feed::Direct
            };
            check(&name, &run(config(short), &msgs, feed, 150));
        }
    }
}
