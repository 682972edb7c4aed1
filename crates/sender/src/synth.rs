//! Seeded synthetic VoIP signalling, encoded as HEPv3.
//!
//! [`Synth`] produces *scenarios*, each a short, self-consistent exchange as a SIP proxy sees and
//! traces it, in time order:
//!
//! | scenario | messages (A-leg) |
//! |---|---|
//! | `call` | INVITE (SDP), 100, 180, 200 (SDP), ACK, RTCP reports, BYE, 200 |
//! | `busy` | INVITE, 100, 180, 486, ACK |
//! | `notfound` | INVITE, 100, 404, ACK |
//! | `timeout` | INVITE, 100, 408, ACK |
//! | `cancel` | INVITE, 100, 180, CANCEL, 200 (CANCEL), 487, ACK |
//! | `register` | REGISTER, 401 (challenge), REGISTER (Authorization), 200 |
//! | `options` | OPTIONS, 200 |
//!
//! Every INVITE scenario also gets one log line (HEP type 100, correlation id = Call-ID) like
//! Kamailio's `hlog()`, unless logs are disabled; answered calls get
//! [`SynthConfig::rtcp_reports`] RTCP sender reports per direction as HEP type 5 JSON in the
//! rtpengine/heplify shape, correlation id = the A-leg Call-ID. With [`SynthConfig::b_legs`]
//! every INVITE scenario except `notfound` (the proxy rejects it itself) also has a B-leg
//! (proxy → callee) with its own Call-ID and an `X-CID`
//! header carrying the A-leg Call-ID, so multi-leg correlation can be exercised.
//!
//! Messages are realistic: Via with a `z9hG4bK` branch and `rport`, From/To tags, Contact,
//! User-Agent or Server, Max-Forwards, exact Content-Length, varied users, domains, agents and
//! addresses. Call-IDs are unique within a generator (a per-generator sequence number is part of
//! each) and differ between seeds.
//!
//! The generator is a pure function of its [`SynthConfig`]: the same seed, mix and start time
//! give byte-identical output. The PRNG is a SplitMix64 written here, so output does not change
//! with dependency versions.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Message;

/// HEP protocol types used here.
const PROTO_SIP: u8 = 1;
const PROTO_RTCP: u8 = 5;
const PROTO_LOG: u8 = 100;

/// Small deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (`hi >= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi.saturating_sub(lo).saturating_add(1);
        if span == 0 {
            return self.next_u64();
        }
        lo + self.next_u64() % span
    }

    /// One element of a non-empty slice.
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = self.range(0, items.len().saturating_sub(1) as u64) as usize;
        items[i.min(items.len() - 1)]
    }

    /// `len` lowercase hex digits.
    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len.next_multiple_of(16));
        while s.len() < len {
            s.hex16(self.next_u64());
        }
        s.truncate(len);
        s
    }
}

/// Where message text is appended: the SIP and JSON payloads are built as bytes, the few
/// generated identifiers as strings.
trait Sink {
    /// Appends `s`.
    fn put(&mut self, s: &str);
}

impl Sink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// Appends message text without `core::fmt`.
///
/// Why: a load generator shares the machine with what it loads (the collector's own host, in
/// `scripts/bench-ingest.sh`), so every CPU cycle it spends is taken from the collector under
/// test. Built with `write!`, the SIP text (and `Ipv4Addr`'s `Display` in particular) was
/// ≈ 40 % of `hepstack send`'s CPU.
trait Append: Sink {
    /// Appends `s`.
    fn s(&mut self, s: &str) -> &mut Self {
        self.put(s);
        self
    }

    /// Appends `n` in decimal.
    fn n(&mut self, n: u64) -> &mut Self {
        self.put(itoa::Buffer::new().format(n));
        self
    }

    /// Appends `ip` in dotted decimal.
    fn ip(&mut self, ip: Ipv4Addr) -> &mut Self {
        let mut digits = itoa::Buffer::new();
        let [a, b, c, d] = ip.octets();
        self.put(digits.format(a));
        for octet in [b, c, d] {
            self.put(".");
            self.put(digits.format(octet));
        }
        self
    }

    /// Appends the low `count` (1..=16) hex digits of `v`, lowercase.
    fn hex_digits(&mut self, v: u64, count: usize) -> &mut Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        let count = count.clamp(1, 16);
        for (i, o) in out[..count].iter_mut().enumerate() {
            *o = DIGITS[((v >> (4 * (count - 1 - i))) & 0xf) as usize];
        }
        // Hex digits are ASCII: this never falls back.
        self.put(std::str::from_utf8(&out[..count]).unwrap_or_default());
        self
    }

    /// Appends `v` as 16 lowercase hex digits, leading zeros included.
    fn hex16(&mut self, v: u64) -> &mut Self {
        self.hex_digits(v, 16)
    }

    /// Appends `v` in lowercase hex without leading zeros (`0` for zero).
    fn hex(&mut self, v: u64) -> &mut Self {
        self.hex_digits(v, (64 - v.leading_zeros()).div_ceil(4) as usize)
    }
}

impl<T: Sink> Append for T {}

/// The kinds of scenario the generator can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScenarioKind {
    /// Answered call with media reports and a BYE.
    Call,
    /// Call rejected with 486 Busy Here.
    Busy,
    /// Call rejected with 404 Not Found.
    NotFound,
    /// Call failed with 408 Request Timeout.
    Timeout,
    /// Call cancelled by the caller while ringing (CANCEL, 487).
    Cancel,
    /// Registration with a 401 digest challenge, then 200.
    Register,
    /// OPTIONS keep-alive ping answered 200.
    Options,
}

impl ScenarioKind {
    /// Every kind, in mix order.
    pub const ALL: [ScenarioKind; 7] = [
        ScenarioKind::Call,
        ScenarioKind::Busy,
        ScenarioKind::NotFound,
        ScenarioKind::Timeout,
        ScenarioKind::Cancel,
        ScenarioKind::Register,
        ScenarioKind::Options,
    ];

    /// The name used in mixes and summaries.
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Call => "call",
            ScenarioKind::Busy => "busy",
            ScenarioKind::NotFound => "notfound",
            ScenarioKind::Timeout => "timeout",
            ScenarioKind::Cancel => "cancel",
            ScenarioKind::Register => "register",
            ScenarioKind::Options => "options",
        }
    }

    /// True for the scenarios that start with an INVITE (counted by `--calls`).
    pub fn is_invite(self) -> bool {
        !matches!(self, ScenarioKind::Register | ScenarioKind::Options)
    }
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of the synthetic generator's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SynthError {
    /// A mix item is not `name=weight` with a known name and an integer weight.
    #[error("bad mix item {item:?}: expected NAME=WEIGHT with NAME one of call, busy, notfound, timeout, cancel, register, options (or calls = all INVITE kinds)")]
    BadMixItem {
        /// The offending item.
        item: String,
    },
    /// All weights are zero.
    #[error("the mix has no scenario with a positive weight")]
    EmptyMix,
}

/// Relative weights of the scenario kinds, e.g. `call=55,busy=5,register=20,options=10`.
///
/// `calls=N` is shorthand spreading N over the INVITE kinds in the default proportions (70 %
/// answered, the rest failures); later items override earlier ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mix {
    weights: [u32; 7],
}

impl Mix {
    /// The weight of `kind`.
    pub fn weight(&self, kind: ScenarioKind) -> u32 {
        self.weights[kind as usize]
    }

    fn total(&self) -> u64 {
        self.weights.iter().map(|w| u64::from(*w)).sum()
    }

    fn choose(&self, rng: &mut Rng) -> ScenarioKind {
        let total = self.total().max(1);
        let mut roll = rng.range(0, total - 1);
        for kind in ScenarioKind::ALL {
            let w = u64::from(self.weight(kind));
            if roll < w {
                return kind;
            }
            roll -= w;
        }
        ScenarioKind::Call
    }
}

impl Default for Mix {
    /// 55 % answered calls, 17 % failed or cancelled calls, 20 % registrations, 8 % OPTIONS.
    fn default() -> Self {
        Mix {
            weights: [55, 5, 5, 3, 4, 20, 8],
        }
    }
}

impl FromStr for Mix {
    type Err = SynthError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut weights = [0u32; 7];
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || SynthError::BadMixItem {
                item: item.to_string(),
            };
            let (name, weight) = item.split_once('=').ok_or_else(bad)?;
            let weight: u32 = weight.trim().parse().map_err(|_| bad())?;
            match name.trim() {
                "calls" => {
                    // 70 % answered, 30 % spread over the failure kinds.
                    let answered = weight.saturating_mul(7) / 10;
                    let failed = weight - answered;
                    let each = failed / 4;
                    weights[ScenarioKind::Call as usize] = answered + (failed - 4 * each);
                    for kind in [
                        ScenarioKind::Busy,
                        ScenarioKind::NotFound,
                        ScenarioKind::Timeout,
                        ScenarioKind::Cancel,
                    ] {
                        weights[kind as usize] = each;
                    }
                }
                other => {
                    let kind = ScenarioKind::ALL
                        .into_iter()
                        .find(|k| k.name() == other)
                        .ok_or_else(bad)?;
                    weights[kind as usize] = weight;
                }
            }
        }
        let mix = Mix { weights };
        if mix.total() == 0 {
            return Err(SynthError::EmptyMix);
        }
        Ok(mix)
    }
}

impl TryFrom<String> for Mix {
    type Error = SynthError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Mix> for String {
    fn from(mix: Mix) -> String {
        mix.to_string()
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in ScenarioKind::ALL {
            let w = self.weight(kind);
            if w > 0 {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{}={}", kind.name(), w)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Settings of the synthetic generator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// PRNG seed: the same seed (with the same other settings) gives byte-identical output.
    pub seed: u64,
    /// Relative weights of the scenario kinds.
    pub mix: Mix,
    /// Give every INVITE scenario (except `notfound`, which the proxy answers itself) a B-leg
    /// (proxy → callee) whose `X-CID` header is the A-leg Call-ID.
    pub b_legs: bool,
    /// RTCP sender reports per direction of each answered call (0 = none).
    pub rtcp_reports: u32,
    /// Emit one log line (HEP type 100) per INVITE scenario.
    pub logs: bool,
    /// HEP capture agent id (chunk 0x000c).
    pub capture_id: u32,
    /// HEP node name (chunk 0x0013); none when unset.
    pub node_name: Option<String>,
    /// HEP authentication key (chunk 0x000e); none when unset.
    pub auth_key: Option<String>,
    /// Time of the first scenario, microseconds since the Unix epoch.
    pub start_micros: u64,
    /// Time between the starts of consecutive scenarios, microseconds.
    pub scenario_interval_micros: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            mix: Mix::default(),
            b_legs: false,
            rtcp_reports: 2,
            logs: true,
            capture_id: 2001,
            node_name: None,
            auth_key: None,
            start_micros: 1_767_225_600_000_000, // 2026-01-01T00:00:00Z
            scenario_interval_micros: 1_000,
        }
    }
}

/// Upper bound of one scenario's span, from its first to its last message (the longest is an
/// answered call: up to 15 s of ringing, 180 s of conversation and the teardown). `hepstack send`
/// starts its synthetic clock this far in the past so that no capture time lies in the future: a
/// collector's default "last hour" search then sees whole calls, ended, as a live system would.
pub const MAX_SCENARIO_SPAN_MICROS: u64 = 240_000_000;

/// One generated scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// What kind of exchange it is.
    pub kind: ScenarioKind,
    /// Its Call-IDs: the A-leg first, then the B-leg when there is one.
    pub call_ids: Vec<String>,
    /// Its HEPv3 messages in time order.
    pub messages: Vec<Message>,
}

/// The seeded scenario generator. See the module documentation.
#[derive(Debug, Clone)]
pub struct Synth {
    cfg: SynthConfig,
    rng: Rng,
    sequence: u64,
    /// Random per-generator part of every Call-ID, so different seeds do not collide.
    run_id: String,
}

const DOMAINS: [&str; 4] = [
    "example.com",
    "voip.example.net",
    "sip.example.org",
    "pbx.example.io",
];
const USER_AGENTS: [&str; 6] = [
    "Linphone/5.2.5 (belle-sip/5.2.4)",
    "Zoiper rv2.10.20.2",
    "Grandstream GXP2170 1.0.11.23",
    "Yealink SIP-T46S 66.86.0.15",
    "MicroSIP/3.21.4",
    "PolycomVVX-VVX_411-UA/6.4.6.2629",
];
const SERVERS: [&str; 3] = [
    "kamailio (5.6.3 (x86_64/linux))",
    "OpenSIPS (3.4.3 (x86_64/linux))",
    "FreeSWITCH-mod_sofia/1.10.11-release~64bit",
];
const NAMES: [&str; 8] = [
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi",
];
const PROXIES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 168, 10, 10),
    Ipv4Addr::new(192, 168, 10, 11),
    Ipv4Addr::new(192, 168, 10, 12),
];

/// A SIP endpoint of a scenario.
#[derive(Debug, Clone)]
struct Party {
    user: String,
    display: &'static str,
    domain: &'static str,
    ip: Ipv4Addr,
    port: u16,
    agent: &'static str,
}

/// One dialog's fixed parts: who sends requests (`uac`) to whom (`uas`).
#[derive(Debug, Clone)]
struct Leg {
    call_id: String,
    uac: Party,
    uas: Party,
    /// The request-URI / To party (the callee), which differs from `uas` when `uas` is a proxy.
    callee: Party,
    from_tag: String,
    to_tag: String,
    /// Extra headers of the initial request (X-CID on B-legs).
    extra: Vec<(&'static str, String)>,
    /// SDP media address and port of each side.
    uac_media: (Ipv4Addr, u16),
    uas_media: (Ipv4Addr, u16),
}

/// Builder of a scenario's messages.
struct Out<'a> {
    cfg: &'a SynthConfig,
    messages: Vec<Message>,
}

impl Out<'_> {
    #[allow(clippy::too_many_arguments)]
    fn hep(
        &mut self,
        kind: &'static str,
        proto_type: u8,
        time: u64,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        correlation_id: Option<&str>,
        payload: Vec<u8>,
    ) {
        let msg = hep::HepMessage {
            ip_family: Some(hep::FAMILY_IPV4),
            ip_proto: Some(17),
            src_ip: Some(IpAddr::V4(src.0)),
            dst_ip: Some(IpAddr::V4(dst.0)),
            src_port: Some(src.1),
            dst_port: Some(dst.1),
            ts_sec: Some((time / 1_000_000) as u32),
            ts_usec: Some((time % 1_000_000) as u32),
            proto_type: Some(proto_type),
            capture_id: Some(self.cfg.capture_id),
            auth_key: self.cfg.auth_key.as_ref().map(|k| k.as_bytes().to_vec()),
            correlation_id: correlation_id.map(|c| c.as_bytes().to_vec()),
            node_name: self.cfg.node_name.as_ref().map(|n| n.as_bytes().to_vec()),
            payload: Some(payload),
            ..hep::HepMessage::default()
        };
        // Synthetic messages are a few KiB at most, far below the 64 KiB HEP limit, and every
        // field is a typed one, so encoding cannot fail; a failure would only drop the message.
        if let Ok(bytes) = msg.encode_to_vec() {
            self.messages.push(Message {
                kind: kind.into(),
                time_micros: Some(time),
                bytes,
            });
        }
    }
}

impl Synth {
    /// A generator for `cfg`.
    pub fn new(cfg: SynthConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let run_id = rng.hex(8);
        Synth {
            cfg,
            rng,
            sequence: 0,
            run_id,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    /// Scenarios generated so far.
    pub fn scenarios_generated(&self) -> u64 {
        self.sequence
    }

    /// The next scenario, its kind drawn from the mix.
    pub fn next_scenario(&mut self) -> Scenario {
        let kind = self.cfg.mix.choose(&mut self.rng);
        self.scenario(kind)
    }

    /// The next scenario, of the given kind.
    pub fn scenario(&mut self, kind: ScenarioKind) -> Scenario {
        let start = self.cfg.start_micros.saturating_add(
            self.sequence
                .saturating_mul(self.cfg.scenario_interval_micros),
        );
        self.sequence += 1;
        let cfg = self.cfg.clone();
        let mut out = Out {
            cfg: &cfg,
            messages: Vec::with_capacity(16),
        };
        let mut call_ids = Vec::with_capacity(2);
        match kind {
            ScenarioKind::Register => self.register(&mut out, start, &mut call_ids),
            ScenarioKind::Options => self.options(&mut out, start, &mut call_ids),
            _ => self.invite(kind, &mut out, start, &mut call_ids),
        }
        // Stable: messages with equal times keep their causal order.
        out.messages.sort_by_key(|m| m.time_micros);
        Scenario {
            kind,
            call_ids,
            messages: out.messages,
        }
    }

    fn call_id(&mut self, host: Ipv4Addr) -> String {
        let mut id = self.rng.hex(12);
        id.s("-")
            .s(&self.run_id)
            .s("-")
            .hex(self.sequence)
            .s("@")
            .ip(host);
        id
    }

    fn party(&mut self, port: u16) -> Party {
        let ip = Ipv4Addr::new(
            10,
            self.rng.range(1, 250) as u8,
            self.rng.range(0, 255) as u8,
            self.rng.range(1, 254) as u8,
        );
        Party {
            user: {
                let mut user = String::with_capacity(6);
                user.n(self.rng.range(100_000, 999_999));
                user
            },
            display: self.rng.pick(&NAMES),
            domain: self.rng.pick(&DOMAINS),
            ip,
            port,
            agent: self.rng.pick(&USER_AGENTS),
        }
    }

    fn proxy(&mut self) -> Party {
        let ip = self.rng.pick(&PROXIES);
        Party {
            user: "proxy".into(),
            display: "",
            domain: DOMAINS[0],
            ip,
            port: 5060,
            agent: self.rng.pick(&SERVERS),
        }
    }

    fn branch(&mut self) -> String {
        let mut branch = String::with_capacity(23);
        branch.s("z9hG4bK").hex16(self.rng.next_u64());
        branch
    }

    fn media_port(&mut self) -> u16 {
        // Even RTP port; RTCP is the next one.
        (self.rng.range(10_000, 29_999) as u16) & !1
    }

    fn invite(
        &mut self,
        kind: ScenarioKind,
        out: &mut Out<'_>,
        start: u64,
        call_ids: &mut Vec<String>,
    ) {
        let caller = self.party(5060);
        let callee = self.party(5060);
        let proxy = self.proxy();
        let a_call_id = self.call_id(caller.ip);
        call_ids.push(a_call_id.clone());
        let a = Leg {
            call_id: a_call_id.clone(),
            uac: caller.clone(),
            uas: proxy.clone(),
            callee: callee.clone(),
            from_tag: self.rng.hex(10),
            to_tag: self.rng.hex(10),
            extra: Vec::new(),
            uac_media: (caller.ip, self.media_port()),
            uas_media: (callee.ip, self.media_port()),
        };
        let b = self.cfg.b_legs.then(|| {
            let b_call_id = self.call_id(proxy.ip);
            call_ids.push(b_call_id.clone());
            Leg {
                call_id: b_call_id,
                uac: Party {
                    ip: proxy.ip,
                    port: proxy.port,
                    agent: proxy.agent,
                    ..caller.clone()
                },
                uas: callee.clone(),
                callee: callee.clone(),
                from_tag: self.rng.hex(10),
                to_tag: a.to_tag.clone(),
                extra: vec![("X-CID", a_call_id.clone())],
                uac_media: a.uac_media,
                uas_media: a.uas_media,
            }
        });
        // The proxy sends the B-leg: requests leave from its address.
        let b_src = peer(&proxy);

        let invite_branch = self.branch();
        let b_branch = self.branch();
        let mut t = start;
        let a_invite = self.sip_request(&a, "INVITE", 1, &invite_branch, true, None);
        out.hep(
            "INVITE",
            PROTO_SIP,
            t,
            (a.uac.ip, a.uac.port),
            (a.uas.ip, a.uas.port),
            None,
            a_invite,
        );
        if out.cfg.logs {
            let line = format!(
                "{}: routing INVITE to {} from {} (call-id {})",
                proxy.agent.split(' ').next().unwrap_or("proxy"),
                callee.user,
                caller.user,
                a.call_id
            );
            out.hep(
                "LOG",
                PROTO_LOG,
                t + 400,
                (proxy.ip, proxy.port),
                (proxy.ip, 9060),
                Some(&a.call_id),
                line.into_bytes(),
            );
        }
        t += self.rng.range(1_000, 5_000);
        let trying = self.sip_response(&a, 100, "Trying", 1, "INVITE", &invite_branch, false, None);
        out.hep(
            "100",
            PROTO_SIP,
            t,
            peer(&a.uas),
            peer(&a.uac),
            None,
            trying,
        );

        if kind == ScenarioKind::NotFound {
            // The proxy's location lookup fails: no B-leg.
            t += self.rng.range(2_000, 20_000);
            self.reject_invite(out, &a, (404, "404", "Not Found"), &invite_branch, t);
            return;
        }

        if let Some(b) = &b {
            self.send_b(out, b, t + 500, BMsg::Request("INVITE", 1, &b_branch, true));
            self.send_b(
                out,
                b,
                t + 3_000,
                BMsg::Response(100, "Trying", 1, "INVITE", &b_branch, false),
            );
        }

        if kind == ScenarioKind::Timeout {
            // Nobody answers: the proxy's timer fires after 32 s (Timer B) or its own fr_timer.
            t += self.rng.range(10_000_000, 32_000_000);
            if let Some(b) = &b {
                self.send_b(
                    out,
                    b,
                    t - 1_000,
                    BMsg::Request("CANCEL", 1, &b_branch, false),
                );
                self.send_b(
                    out,
                    b,
                    t + 2_000,
                    BMsg::Response(200, "OK", 1, "CANCEL", &b_branch, false),
                );
            }
            self.reject_invite(out, &a, (408, "408", "Request Timeout"), &invite_branch, t);
            return;
        }

        // Ringing.
        t += self.rng.range(30_000, 300_000);
        if let Some(b) = &b {
            self.send_b(
                out,
                b,
                t - 2_000,
                BMsg::Response(180, "Ringing", 1, "INVITE", &b_branch, false),
            );
        }
        let ringing =
            self.sip_response(&a, 180, "Ringing", 1, "INVITE", &invite_branch, true, None);
        out.hep(
            "180",
            PROTO_SIP,
            t,
            peer(&a.uas),
            peer(&a.uac),
            None,
            ringing,
        );

        match kind {
            ScenarioKind::Busy => {
                t += self.rng.range(1_000_000, 8_000_000);
                if let Some(b) = &b {
                    self.send_b(
                        out,
                        b,
                        t - 2_000,
                        BMsg::Response(486, "Busy Here", 1, "INVITE", &b_branch, false),
                    );
                    self.send_b(out, b, t - 1_000, BMsg::Request("ACK", 1, &b_branch, false));
                }
                self.reject_invite(out, &a, (486, "486", "Busy Here"), &invite_branch, t);
            }
            ScenarioKind::Cancel => {
                t += self.rng.range(2_000_000, 15_000_000);
                let cancel = self.sip_request(&a, "CANCEL", 1, &invite_branch, false, None);
                out.hep(
                    "CANCEL",
                    PROTO_SIP,
                    t,
                    peer(&a.uac),
                    peer(&a.uas),
                    None,
                    cancel,
                );
                t += self.rng.range(1_000, 5_000);
                let ok = self.sip_response(&a, 200, "OK", 1, "CANCEL", &invite_branch, true, None);
                out.hep("200", PROTO_SIP, t, peer(&a.uas), peer(&a.uac), None, ok);
                if let Some(b) = &b {
                    self.send_b(
                        out,
                        b,
                        t + 500,
                        BMsg::Request("CANCEL", 1, &b_branch, false),
                    );
                    self.send_b(
                        out,
                        b,
                        t + 3_000,
                        BMsg::Response(200, "OK", 1, "CANCEL", &b_branch, false),
                    );
                    self.send_b(
                        out,
                        b,
                        t + 4_000,
                        BMsg::Response(487, "Request Terminated", 1, "INVITE", &b_branch, false),
                    );
                    self.send_b(out, b, t + 5_000, BMsg::Request("ACK", 1, &b_branch, false));
                }
                t += self.rng.range(6_000, 20_000);
                self.reject_invite(
                    out,
                    &a,
                    (487, "487", "Request Terminated"),
                    &invite_branch,
                    t,
                );
            }
            _ => self.answered(out, &a, b.as_ref(), b_src, &invite_branch, &b_branch, t),
        }
    }

    /// Emit one B-leg message: requests go proxy → callee, responses callee → proxy.
    /// The UAS's final failure reply to the A-leg INVITE at `t`, and the UAC's ACK for it a few
    /// milliseconds later. `status` is (code, code as the summary label, reason phrase).
    fn reject_invite(
        &mut self,
        out: &mut Out<'_>,
        a: &Leg,
        status: (u16, &'static str, &str),
        invite_branch: &str,
        t: u64,
    ) {
        let (code, label, reason) = status;
        let resp = self.sip_response(a, code, reason, 1, "INVITE", invite_branch, true, None);
        out.hep(label, PROTO_SIP, t, peer(&a.uas), peer(&a.uac), None, resp);
        let t = t + self.rng.range(5_000, 40_000);
        let ack = self.sip_ack(a, 1, invite_branch);
        out.hep("ACK", PROTO_SIP, t, peer(&a.uac), peer(&a.uas), None, ack);
    }

    fn send_b(&mut self, out: &mut Out<'_>, b: &Leg, t: u64, msg: BMsg<'_>) {
        let (kind, bytes, forward) = match msg {
            BMsg::Request(method, cseq, branch, sdp) => {
                let to_tag = (method == "ACK").then_some(b.to_tag.as_str());
                (
                    method,
                    self.sip_request(b, method, cseq, branch, sdp, to_tag),
                    true,
                )
            }
            BMsg::Response(code, reason, cseq, method, branch, sdp) => {
                let with_tag = code != 100;
                let contact = sdp.then_some(true);
                (
                    status_kind(code),
                    self.sip_response(b, code, reason, cseq, method, branch, with_tag, contact),
                    false,
                )
            }
        };
        let (src, dst) = if forward {
            (peer(&b.uac), peer(&b.uas))
        } else {
            (peer(&b.uas), peer(&b.uac))
        };
        out.hep(kind, PROTO_SIP, t, src, dst, None, bytes);
    }

    #[allow(clippy::too_many_arguments)]
    fn answered(
        &mut self,
        out: &mut Out<'_>,
        a: &Leg,
        b: Option<&Leg>,
        b_src: (Ipv4Addr, u16),
        invite_branch: &str,
        b_branch: &str,
        ringing_at: u64,
    ) {
        let mut t = ringing_at + self.rng.range(1_000_000, 6_000_000);
        let b_peer = b.map(|b| (b, peer(&b.uas)));
        if let Some((b, uas)) = &b_peer {
            let ok = self.sip_response(b, 200, "OK", 1, "INVITE", b_branch, true, Some(true));
            out.hep("200", PROTO_SIP, t - 3_000, *uas, b_src, None, ok);
        }
        let ok = self.sip_response(a, 200, "OK", 1, "INVITE", invite_branch, true, Some(true));
        out.hep("200", PROTO_SIP, t, peer(&a.uas), peer(&a.uac), None, ok);
        t += self.rng.range(10_000, 60_000);
        let ack_branch = self.branch();
        let ack = self.sip_request(a, "ACK", 1, &ack_branch, false, Some(&a.to_tag));
        out.hep("ACK", PROTO_SIP, t, peer(&a.uac), peer(&a.uas), None, ack);
        if let Some((b, uas)) = &b_peer {
            let br = self.branch();
            let ack = self.sip_request(b, "ACK", 1, &br, false, Some(&b.to_tag));
            out.hep("ACK", PROTO_SIP, t + 1_000, b_src, *uas, None, ack);
        }

        let duration = self.rng.range(10_000_000, 180_000_000);
        let reports = u64::from(out.cfg.rtcp_reports);
        let ssrc_a = self.rng.next_u64() as u32;
        let ssrc_b = self.rng.next_u64() as u32;
        for n in 1..=reports {
            let at = t + duration * n / (reports + 1);
            let seconds = (at - t) / 1_000_000;
            for (dir, (from, to, ssrc, other, user)) in [
                (a.uac_media, a.uas_media, ssrc_a, ssrc_b, &a.uac.user),
                (a.uas_media, a.uac_media, ssrc_b, ssrc_a, &a.callee.user),
            ]
            .into_iter()
            .enumerate()
            {
                let json = self.rtcp_json(at, seconds, ssrc, other, user, from.0);
                out.hep(
                    "RTCP",
                    PROTO_RTCP,
                    at + dir as u64 * 700,
                    (from.0, from.1 + 1),
                    (to.0, to.1 + 1),
                    Some(&a.call_id),
                    json,
                );
            }
        }

        t += duration;
        let bye_branch = self.branch();
        let bye = self.sip_request(a, "BYE", 2, &bye_branch, false, Some(&a.to_tag));
        out.hep("BYE", PROTO_SIP, t, peer(&a.uac), peer(&a.uas), None, bye);
        if let Some((b, uas)) = &b_peer {
            let br = self.branch();
            let bye = self.sip_request(b, "BYE", 2, &br, false, Some(&b.to_tag));
            out.hep("BYE", PROTO_SIP, t + 1_000, b_src, *uas, None, bye);
            let ok = self.sip_response(b, 200, "OK", 2, "BYE", &br, true, None);
            out.hep("200", PROTO_SIP, t + 15_000, *uas, b_src, None, ok);
        }
        t += self.rng.range(16_000, 60_000);
        let ok = self.sip_response(a, 200, "OK", 2, "BYE", &bye_branch, true, None);
        out.hep("200", PROTO_SIP, t, peer(&a.uas), peer(&a.uac), None, ok);
    }

    fn register(&mut self, out: &mut Out<'_>, start: u64, call_ids: &mut Vec<String>) {
        let port = self.rng.range(5060, 5090) as u16;
        let ua = self.party(port);
        let registrar = self.proxy();
        let call_id = self.call_id(ua.ip);
        call_ids.push(call_id.clone());
        let leg = Leg {
            call_id,
            uac: ua.clone(),
            uas: registrar.clone(),
            // A REGISTER's To is the registering address of record.
            callee: ua.clone(),
            from_tag: self.rng.hex(10),
            to_tag: self.rng.hex(10),
            extra: vec![("Expires", "3600".to_string())],
            uac_media: (ua.ip, 0),
            uas_media: (registrar.ip, 0),
        };
        let nonce = self.rng.hex(32);
        let mut t = start;
        let br1 = self.branch();
        let reg = self.sip_request(&leg, "REGISTER", 1, &br1, false, None);
        out.hep(
            "REGISTER",
            PROTO_SIP,
            t,
            peer(&leg.uac),
            peer(&leg.uas),
            None,
            reg,
        );
        t += self.rng.range(1_000, 8_000);
        let challenge = format!(
            "Digest realm=\"{}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5",
            ua.domain, nonce
        );
        let resp = self.sip_response(
            &leg,
            401,
            "Unauthorized",
            1,
            "REGISTER",
            &br1,
            true,
            Some(false),
        );
        let resp = insert_header(resp, "WWW-Authenticate", &challenge);
        out.hep(
            "401",
            PROTO_SIP,
            t,
            peer(&leg.uas),
            peer(&leg.uac),
            None,
            resp,
        );
        t += self.rng.range(5_000, 50_000);
        let br2 = self.branch();
        let auth = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"sip:{}\", response=\"{}\", algorithm=MD5, cnonce=\"{}\", qop=auth, nc=00000001",
            ua.user,
            ua.domain,
            nonce,
            ua.domain,
            self.rng.hex(32),
            self.rng.hex(8)
        );
        let reg = self.sip_request(&leg, "REGISTER", 2, &br2, false, None);
        let reg = insert_header(reg, "Authorization", &auth);
        out.hep(
            "REGISTER",
            PROTO_SIP,
            t,
            peer(&leg.uac),
            peer(&leg.uas),
            None,
            reg,
        );
        t += self.rng.range(1_000, 8_000);
        let ok = self.sip_response(&leg, 200, "OK", 2, "REGISTER", &br2, true, Some(false));
        out.hep(
            "200",
            PROTO_SIP,
            t,
            peer(&leg.uas),
            peer(&leg.uac),
            None,
            ok,
        );
    }

    fn options(&mut self, out: &mut Out<'_>, start: u64, call_ids: &mut Vec<String>) {
        // The proxy pings a registered phone.
        let proxy = self.proxy();
        let port = self.rng.range(5060, 5090) as u16;
        let phone = self.party(port);
        let call_id = self.call_id(proxy.ip);
        call_ids.push(call_id.clone());
        let leg = Leg {
            call_id,
            uac: proxy.clone(),
            uas: phone.clone(),
            callee: phone.clone(),
            from_tag: self.rng.hex(10),
            to_tag: self.rng.hex(10),
            extra: Vec::new(),
            uac_media: (proxy.ip, 0),
            uas_media: (phone.ip, 0),
        };
        let br = self.branch();
        let req = self.sip_request(&leg, "OPTIONS", 1, &br, false, None);
        out.hep(
            "OPTIONS",
            PROTO_SIP,
            start,
            peer(&leg.uac),
            peer(&leg.uas),
            None,
            req,
        );
        let t = start + self.rng.range(2_000, 80_000);
        let ok = self.sip_response(&leg, 200, "OK", 1, "OPTIONS", &br, true, None);
        out.hep(
            "200",
            PROTO_SIP,
            t,
            peer(&leg.uas),
            peer(&leg.uac),
            None,
            ok,
        );
    }

    /// ACK of a non-2xx final response: same branch as the INVITE, To with the tag.
    fn sip_ack(&mut self, leg: &Leg, cseq: u32, branch: &str) -> Vec<u8> {
        self.sip_request(leg, "ACK", cseq, branch, false, Some(&leg.to_tag))
    }

    fn sdp(&mut self, user: &str, media: (Ipv4Addr, u16)) -> Vec<u8> {
        let session = self.rng.range(1_000_000, 9_999_999);
        let (ip, port) = media;
        let mut sdp = Vec::with_capacity(320);
        sdp.s("v=0\r\no=")
            .s(user)
            .s(" ")
            .n(session)
            .s(" ")
            .n(session)
            .s(" IN IP4 ")
            .ip(ip);
        sdp.s("\r\ns=Talk\r\nc=IN IP4 ")
            .ip(ip)
            .s("\r\nt=0 0\r\nm=audio ")
            .n(port.into());
        sdp.s(" RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
            .s("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n")
            .s("a=sendrecv\r\n");
        sdp
    }

    /// A request from the leg's UAC. `to_tag` is set for in-dialog requests.
    fn sip_request(
        &mut self,
        leg: &Leg,
        method: &str,
        cseq: u32,
        branch: &str,
        with_sdp: bool,
        to_tag: Option<&str>,
    ) -> Vec<u8> {
        let body = if with_sdp {
            self.sdp(&leg.uac.user, leg.uac_media)
        } else {
            Vec::new()
        };
        let (uac, callee) = (&leg.uac, &leg.callee);
        let mut m = Vec::with_capacity(900);
        m.s(method).s(" sip:");
        if method != "REGISTER" {
            m.s(&callee.user).s("@");
        }
        m.s(callee.domain)
            .s(" SIP/2.0\r\nVia: SIP/2.0/UDP ")
            .ip(uac.ip)
            .s(":");
        m.n(uac.port.into())
            .s(";branch=")
            .s(branch)
            .s(";rport\r\nMax-Forwards: 70\r\n");
        dialog_headers(&mut m, leg, to_tag, cseq, method);
        if matches!(method, "INVITE" | "REGISTER" | "OPTIONS") {
            contact(&mut m, &uac.user, peer(uac), "");
        }
        m.s("User-Agent: ").s(uac.agent).s("\r\n");
        if method == "INVITE" || method == "REGISTER" {
            for (name, value) in &leg.extra {
                m.s(name).s(": ").s(value).s("\r\n");
            }
        }
        if method == "INVITE" {
            m.s("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, REFER, NOTIFY\r\n");
        }
        sdp_body(&mut m, &body);
        m
    }

    /// A response from the leg's UAS. `contact`: `Some(true)` adds Contact and SDP (2xx to
    /// INVITE), `Some(false)` Contact only.
    #[allow(clippy::too_many_arguments)]
    fn sip_response(
        &mut self,
        leg: &Leg,
        code: u16,
        reason: &str,
        cseq: u32,
        method: &str,
        branch: &str,
        with_to_tag: bool,
        contact: Option<bool>,
    ) -> Vec<u8> {
        let body = if contact == Some(true) {
            self.sdp(&leg.callee.user, leg.uas_media)
        } else {
            Vec::new()
        };
        let (uac, uas, callee) = (&leg.uac, &leg.uas, &leg.callee);
        let mut m = Vec::with_capacity(800);
        m.s("SIP/2.0 ")
            .n(code.into())
            .s(" ")
            .s(reason)
            .s("\r\nVia: SIP/2.0/UDP ")
            .ip(uac.ip);
        m.s(":")
            .n(uac.port.into())
            .s(";branch=")
            .s(branch)
            .s(";rport=")
            .n(uac.port.into());
        m.s(";received=").ip(uac.ip).s("\r\n");
        let to_tag = with_to_tag.then_some(leg.to_tag.as_str());
        dialog_headers(&mut m, leg, to_tag, cseq, method);
        if contact.is_some() {
            if method == "REGISTER" {
                self::contact(&mut m, &uac.user, peer(uac), ";expires=3600");
            } else {
                self::contact(&mut m, &callee.user, peer(uas), "");
            }
        }
        m.s("Server: ").s(uas.agent).s("\r\n");
        sdp_body(&mut m, &body);
        m
    }

    /// An RTCP sender report in the JSON shape rtpengine and heplify send as HEP type 5.
    fn rtcp_json(
        &mut self,
        at_micros: u64,
        seconds: u64,
        ssrc: u32,
        source_ssrc: u32,
        user: &str,
        ip: Ipv4Addr,
    ) -> Vec<u8> {
        // NTP time: seconds since 1900.
        let ntp_sec = at_micros / 1_000_000 + 2_208_988_800;
        let ntp_frac = ((at_micros % 1_000_000) << 32) / 1_000_000;
        let packets = seconds * 50;
        let fraction_lost = self.rng.range(0, 6);
        let lost = packets * fraction_lost / 256;
        let jitter = self.rng.range(2, 60);
        let mut j = Vec::with_capacity(460);
        j.s("{\"sender_information\":{\"ntp_timestamp_sec\":")
            .n(ntp_sec);
        j.s(",\"ntp_timestamp_usec\":")
            .n(ntp_frac)
            .s(",\"octets\":")
            .n(packets * 160);
        j.s(",\"rtp_timestamp\":")
            .n(packets * 160)
            .s(",\"packets\":")
            .n(packets);
        j.s("},\"ssrc\":")
            .n(ssrc.into())
            .s(",\"type\":200,\"report_count\":1,");
        j.s("\"report_blocks\":[{\"source_ssrc\":")
            .n(source_ssrc.into());
        j.s(",\"highest_seq_no\":")
            .n(1000 + packets)
            .s(",\"fraction_lost\":");
        j.n(fraction_lost)
            .s(",\"ia_jitter\":")
            .n(jitter)
            .s(",\"packets_lost\":")
            .n(lost);
        j.s(",\"lsr\":0,\"dlsr\":0}],\"sdes_report_count\":1,\"sdes_information\":[{");
        j.s("\"sdes_chunk_ssrc\":")
            .n(ssrc.into())
            .s(",\"type\":1,\"text\":\"")
            .s(user);
        j.s("@").ip(ip).s("\"}]}");
        j
    }
}

/// A B-leg message to build: request (method, cseq, branch, sdp) or response (code, reason,
/// cseq, cseq method, branch, contact+sdp).
enum BMsg<'a> {
    Request(&'static str, u32, &'a str, bool),
    Response(u16, &'static str, u32, &'static str, &'a str, bool),
}

fn peer(p: &Party) -> (Ipv4Addr, u16) {
    (p.ip, p.port)
}

/// The headers every request and response of a leg carries after its Via: From, To (with the
/// callee's tag once it set one), Call-ID and CSeq.
fn dialog_headers(m: &mut Vec<u8>, leg: &Leg, to_tag: Option<&str>, cseq: u32, method: &str) {
    let (uac, callee) = (&leg.uac, &leg.callee);
    m.s("From: \"")
        .s(uac.display)
        .s("\" <sip:")
        .s(&uac.user)
        .s("@")
        .s(uac.domain);
    m.s(">;tag=").s(&leg.from_tag);
    m.s("\r\nTo: <sip:")
        .s(&callee.user)
        .s("@")
        .s(callee.domain)
        .s(">");
    if let Some(tag) = to_tag {
        m.s(";tag=").s(tag);
    }
    m.s("\r\nCall-ID: ").s(&leg.call_id);
    m.s("\r\nCSeq: ").n(cseq.into()).s(" ").s(method).s("\r\n");
}

/// A Contact header for `user` at `addr`, with `params` after the URI.
fn contact(m: &mut Vec<u8>, user: &str, addr: (Ipv4Addr, u16), params: &str) {
    m.s("Contact: <sip:")
        .s(user)
        .s("@")
        .ip(addr.0)
        .s(":")
        .n(addr.1.into());
    m.s(">").s(params).s("\r\n");
}

/// The body headers, the empty line and the body (SDP when there is one).
fn sdp_body(m: &mut Vec<u8>, body: &[u8]) {
    if !body.is_empty() {
        m.s("Content-Type: application/sdp\r\n");
    }
    m.s("Content-Length: ").n(body.len() as u64).s("\r\n\r\n");
    m.extend_from_slice(body);
}

/// Summary label of a SIP status code.
pub(crate) fn status_kind(code: u16) -> &'static str {
    match code {
        100 => "100",
        180 => "180",
        183 => "183",
        200 => "200",
        202 => "202",
        401 => "401",
        403 => "403",
        404 => "404",
        407 => "407",
        408 => "408",
        486 => "486",
        487 => "487",
        500 => "500",
        503 => "503",
        _ => "other response",
    }
}

/// Add a header just before Content-Length (always the last header here).
fn insert_header(msg: Vec<u8>, name: &str, value: &str) -> Vec<u8> {
    let needle = b"Content-Length:";
    let pos = msg
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or(msg.len());
    let mut out = Vec::with_capacity(msg.len() + name.len() + value.len() + 4);
    out.extend_from_slice(&msg[..pos]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&msg[pos..]);
    out
}
