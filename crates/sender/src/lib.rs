//! `sender`: the HEP client and load generator behind `hepstack send`, reusable by the capture
//! agent and the relay.
//!
//! * [`HepSender`] ([`client`]): a HEP client for `udp://`, `tcp://` and `tls://host:port`
//!   destinations, with batched writes (`sendmmsg` on UDP, a write buffer on streams) and
//!   reconnection of TCP/TLS.
//! * [`synth`]: seeded synthetic SIP calls, registrations, OPTIONS, RTCP (HEP type 5 JSON) and
//!   logs (HEP type 100) as HEPv3, with unique Call-IDs and optional correlated B-legs.
//! * [`replay`]: readers of recorded HEP (pcap/pcapng, `.hep` folders, `.hepstream`), and the
//!   `.hepstream` writer used for dry runs.
//! * [`rate`]: the token bucket that paces sending.
//! * [`run`]: the send loop that ties a [`MessageSource`] to a [`Sink`] under a [`Pacing`] and
//!   returns a [`Summary`] of what was sent.
//!
//! # Counting
//!
//! A *message* is one HEP message (one UDP datagram, or one HEP frame on a stream): SIP
//! requests and responses, RTCP reports and log lines all count. A *scenario* is one
//! generated exchange (a call, a registration, an OPTIONS ping, …; see [`synth`]); a *call* is a
//! scenario that starts with an INVITE, whatever its outcome. The send loop's
//! [`RunOptions::count`] limits messages, [`SynthSource`] limits calls and scenarios, and
//! [`Pacing::Rate`] is in messages per second.
//!
//! The sending path is allocation-light and bursty so it reaches 100k+ messages/s on one core:
//! messages are encoded ahead of sending in batches of [`BATCH`], the token bucket is asked
//! once per burst rather than per message, and UDP bursts go out with one `sendmmsg(2)` per 64
//! messages.

pub mod client;
pub mod rate;
pub mod replay;
pub mod synth;

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use client::{
    HepSender, SenderConfig, SenderError, SenderStats, Target, TlsOptions, Transport, UDP_BATCH,
};
pub use rate::TokenBucket;
pub use replay::{
    HepDirReader, HepSource, HepstreamReader, HepstreamWriter, PcapHepReader, RecordedHep,
    ReplayError,
};
pub use synth::{Mix, Rng, Scenario, ScenarioKind, Synth, SynthConfig, SynthError};

/// Messages prepared per batch by the send loop.
pub const BATCH: usize = 256;

/// One HEP message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What it is, for the summary: the SIP method or status code (`INVITE`, `200`), `RTCP`,
    /// `LOG`, or another HEP type name.
    pub kind: Cow<'static, str>,
    /// Its time (HEP timestamp or capture time), µs since the Unix epoch; used by
    /// [`Pacing::Original`].
    pub time_micros: Option<u64>,
    /// The encoded HEP message.
    pub bytes: Vec<u8>,
}

/// Errors of a message source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading recorded HEP failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The synthetic generator is misconfigured.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// The limits cannot be met (e.g. `calls` with a mix that has no INVITE scenario).
    #[error("{0}")]
    Limits(&'static str),
}

/// Where messages come from.
pub trait MessageSource {
    /// Append up to `max` messages to `out`; appending none means the source is exhausted.
    fn fill(&mut self, out: &mut Vec<Message>, max: usize) -> Result<(), SourceError>;

    /// Scenarios produced, by kind (synthetic sources only).
    fn scenarios(&self) -> Option<BTreeMap<String, u64>> {
        None
    }

    /// Input messages that were not sent (e.g. not HEP when re-encoding).
    fn skipped(&self) -> u64 {
        0
    }
}

/// Synthetic traffic, with optional limits on calls and scenarios.
#[derive(Debug)]
pub struct SynthSource {
    synth: Synth,
    /// Stop after this many INVITE scenarios.
    calls: Option<u64>,
    /// Stop after this many scenarios of any kind.
    scenarios_limit: Option<u64>,
    calls_done: u64,
    pending: VecDeque<Message>,
    by_kind: BTreeMap<String, u64>,
}

impl SynthSource {
    /// Generate from `synth` until `calls` INVITE scenarios (calls of any outcome) or
    /// `scenarios` scenarios of any kind have been produced, whichever comes first; without
    /// limits it never ends (bound it with [`RunOptions`]).
    pub fn new(
        synth: Synth,
        calls: Option<u64>,
        scenarios: Option<u64>,
    ) -> Result<SynthSource, SourceError> {
        if calls.is_some_and(|c| c > 0)
            && !ScenarioKind::ALL
                .iter()
                .any(|k| k.is_invite() && synth.config().mix.weight(*k) > 0)
        {
            return Err(SourceError::Limits(
                "a number of calls was asked for but the mix has no call scenario",
            ));
        }
        Ok(SynthSource {
            synth,
            calls,
            scenarios_limit: scenarios,
            calls_done: 0,
            pending: VecDeque::new(),
            by_kind: BTreeMap::new(),
        })
    }

    fn exhausted(&self) -> bool {
        self.calls.is_some_and(|c| self.calls_done >= c)
            || self
                .scenarios_limit
                .is_some_and(|s| self.synth.scenarios_generated() >= s)
    }
}

impl MessageSource for SynthSource {
    fn fill(&mut self, out: &mut Vec<Message>, max: usize) -> Result<(), SourceError> {
        let mut added = 0;
        while added < max {
            if let Some(m) = self.pending.pop_front() {
                out.push(m);
                added += 1;
                continue;
            }
            if self.exhausted() {
                break;
            }
            let scenario = self.synth.next_scenario();
            if scenario.kind.is_invite() {
                self.calls_done += 1;
            }
            *self
                .by_kind
                .entry(scenario.kind.name().to_string())
                .or_insert(0) += 1;
            self.pending.extend(scenario.messages);
        }
        Ok(())
    }

    fn scenarios(&self) -> Option<BTreeMap<String, u64>> {
        Some(self.by_kind.clone())
    }
}

/// Changes applied to every replayed message when re-encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replace the capture id.
    pub capture_id: Option<u32>,
    /// Replace the node name.
    pub node_name: Option<String>,
    /// Replace the authentication key.
    pub auth_key: Option<String>,
}

/// Recorded HEP as a message source: sent byte-exact (`raw`) or decoded and re-encoded as
/// HEPv3 (HEPv1/v2 become v3; the overrides apply; input that is not HEP is skipped).
pub struct ReplaySource {
    inner: Box<dyn HepSource + Send>,
    raw: bool,
    overrides: Overrides,
    skipped: u64,
}

impl fmt::Debug for ReplaySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplaySource")
            .field("raw", &self.raw)
            .field("overrides", &self.overrides)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl ReplaySource {
    /// Replay `inner`; `raw` sends the recorded bytes unchanged (overrides are then ignored).
    pub fn new(inner: Box<dyn HepSource + Send>, raw: bool, overrides: Overrides) -> Self {
        ReplaySource {
            inner,
            raw,
            overrides,
            skipped: 0,
        }
    }

    fn convert(&mut self, recorded: RecordedHep) -> Option<Message> {
        let packet = match hep::decode(&recorded.bytes) {
            Ok(p) => p,
            Err(_) if self.raw => {
                return Some(Message {
                    kind: "not HEP".into(),
                    time_micros: recorded.time_micros,
                    bytes: recorded.bytes,
                })
            }
            Err(_) => return None,
        };
        let kind = classify(&packet);
        if self.raw {
            drop(packet);
            return Some(Message {
                kind,
                time_micros: recorded.time_micros,
                bytes: recorded.bytes,
            });
        }
        let mut message = hep::HepMessage::from_packet(&packet);
        if let Some(id) = self.overrides.capture_id {
            message.capture_id = Some(id);
        }
        if let Some(name) = &self.overrides.node_name {
            message.node_name = Some(name.as_bytes().to_vec());
        }
        if let Some(key) = &self.overrides.auth_key {
            message.auth_key = Some(key.as_bytes().to_vec());
        }
        let bytes = message.encode_to_vec().ok()?;
        Some(Message {
            kind,
            time_micros: recorded.time_micros,
            bytes,
        })
    }
}

impl MessageSource for ReplaySource {
    fn fill(&mut self, out: &mut Vec<Message>, max: usize) -> Result<(), SourceError> {
        let mut added = 0;
        while added < max {
            let Some(recorded) = self.inner.next_hep()? else {
                break;
            };
            match self.convert(recorded) {
                Some(m) => {
                    out.push(m);
                    added += 1;
                }
                None => self.skipped += 1,
            }
        }
        Ok(())
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Summary label of a decoded HEP message.
pub fn classify(packet: &hep::HepPacket<'_>) -> Cow<'static, str> {
    match packet.proto_type {
        Some(1) => {
            let Some(payload) = packet.payload else {
                return "SIP".into();
            };
            let sip = sip::index(payload);
            if let Some(code) = sip.status_code() {
                return synth::status_kind(code).into();
            }
            match sip.method() {
                Some(m) => {
                    const KNOWN: [&str; 14] = [
                        "INVITE",
                        "ACK",
                        "BYE",
                        "CANCEL",
                        "REGISTER",
                        "OPTIONS",
                        "PRACK",
                        "UPDATE",
                        "INFO",
                        "SUBSCRIBE",
                        "NOTIFY",
                        "REFER",
                        "MESSAGE",
                        "PUBLISH",
                    ];
                    match KNOWN.iter().find(|k| m == **k) {
                        Some(k) => Cow::Borrowed(*k),
                        None => "other request".into(),
                    }
                }
                None => "SIP".into(),
            }
        }
        Some(5) => "RTCP".into(),
        Some(100) => "LOG".into(),
        Some(t) => hep::proto_type_name(t).into(),
        None => "unknown".into(),
    }
}

/// Where the send loop puts messages.
pub enum Sink {
    /// A HEP destination.
    Hep(Box<HepSender>),
    /// A `.hepstream` writer (dry run).
    Hepstream {
        /// Where records go.
        writer: HepstreamWriter<Box<dyn Write + Send>>,
        /// Name shown in the summary.
        name: String,
    },
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::Hep(s) => f.debug_tuple("Hep").field(s.as_ref()).finish(),
            Sink::Hepstream { name, .. } => {
                f.debug_struct("Hepstream").field("name", name).finish()
            }
        }
    }
}

impl Sink {
    fn name(&self) -> String {
        match self {
            Sink::Hep(s) => s.target().to_string(),
            Sink::Hepstream { name, .. } => name.clone(),
        }
    }

    async fn send(&mut self, messages: &[Message]) -> Result<(), RunError> {
        match self {
            Sink::Hep(sender) => {
                // Borrow the byte slices without copying them.
                let mut slices: [&[u8]; UDP_BATCH] = [&[]; UDP_BATCH];
                for chunk in messages.chunks(UDP_BATCH) {
                    for (slot, m) in slices.iter_mut().zip(chunk) {
                        *slot = &m.bytes;
                    }
                    sender.send_batch(&slices[..chunk.len()]).await?;
                }
                Ok(())
            }
            Sink::Hepstream { writer, .. } => {
                for m in messages {
                    writer.write(&m.bytes).map_err(RunError::Output)?;
                }
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), RunError> {
        match self {
            Sink::Hep(sender) => Ok(sender.flush().await?),
            Sink::Hepstream { writer, .. } => writer.flush().map_err(RunError::Output),
        }
    }

    /// Counters of the network sender, if this is one.
    pub fn sender_stats(&self) -> Option<SenderStats> {
        match self {
            Sink::Hep(s) => Some(s.stats()),
            Sink::Hepstream { .. } => None,
        }
    }
}

/// Errors of the send loop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The message source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Sending failed.
    #[error(transparent)]
    Send(#[from] SenderError),
    /// Writing the dry-run output failed.
    #[error("writing the output: {0}")]
    Output(#[source] io::Error),
}

/// How fast to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the destination takes them.
    Unlimited,
    /// This many messages per second (token bucket; bursts of `burst` messages, or
    /// [`TokenBucket::default_burst`] when `None`).
    Rate {
        /// Messages per second.
        per_second: f64,
        /// Burst size.
        burst: Option<u32>,
    },
    /// Keep the recorded gaps between message times, divided by `speed` (2.0 = twice as fast).
    /// Messages without a time go out at once.
    Original {
        /// Speed factor (> 0).
        speed: f64,
    },
}

/// Bounds of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunOptions {
    /// How fast.
    pub pacing: Option<Pacing>,
    /// Stop after this many messages.
    pub count: Option<u64>,
    /// Stop after this much time.
    pub duration: Option<Duration>,
}

/// What a run sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Destination URL or output file.
    pub target: String,
    /// HEP messages sent.
    pub messages: u64,
    /// Bytes of those messages (HEP bytes, without UDP/IP or TLS overhead).
    pub bytes: u64,
    /// Messages by kind (SIP method or status code, `RTCP`, `LOG`, …).
    pub by_kind: BTreeMap<String, u64>,
    /// Scenarios generated by kind (synthetic traffic only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<BTreeMap<String, u64>>,
    /// Input messages not sent (not HEP when re-encoding).
    pub skipped: u64,
    /// Wall time of the run, seconds.
    pub elapsed_secs: f64,
    /// Achieved rate, messages per second.
    pub messages_per_sec: f64,
    /// Achieved rate, megabits of HEP per second.
    pub mbit_per_sec: f64,
    /// TCP/TLS reconnections.
    pub reconnects: u64,
    /// UDP messages the kernel refused (lost).
    pub udp_errors: u64,
    /// True when the run was stopped from outside (Ctrl-C) before its end.
    pub interrupted: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sent {} messages ({} bytes) to {} in {:.3} s: {:.0} msg/s, {:.1} Mbit/s{}",
            self.messages,
            self.bytes,
            self.target,
            self.elapsed_secs,
            self.messages_per_sec,
            self.mbit_per_sec,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        )?;
        if let Some(scenarios) = &self.scenarios {
            let list: Vec<String> = scenarios.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(f, "scenarios: {}", list.join(", "))?;
        }
        let list: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "messages:  {}", list.join(", "))?;
        if self.skipped > 0 {
            writeln!(
                f,
                "skipped:   {} input messages that are not HEP",
                self.skipped
            )?;
        }
        if self.reconnects > 0 || self.udp_errors > 0 {
            writeln!(
                f,
                "problems:  {} reconnects, {} UDP send errors",
                self.reconnects, self.udp_errors
            )?;
        }
        Ok(())
    }
}

fn count_kind(map: &mut BTreeMap<String, u64>, kind: &str) {
    match map.get_mut(kind) {
        Some(n) => *n += 1,
        None => {
            map.insert(kind.to_string(), 1);
        }
    }
}

/// Sleep until `wake` unless the deadline passes or the run is cancelled first; returns false
/// when the run must stop.
async fn pause(wake: Instant, deadline: Option<Instant>, cancel: &CancellationToken) -> bool {
    let until = deadline.map_or(wake, |d| d.min(wake));
    tokio::select! {
        _ = tokio::time::sleep_until(until.into()) => deadline.map_or(true, |d| wake < d),
        _ = cancel.cancelled() => false,
    }
}

/// Send everything `source` yields to `sink` under `options`, until the source ends, a limit is
/// reached or `cancel` fires; then flush and summarise.
pub async fn run(
    source: &mut dyn MessageSource,
    sink: &mut Sink,
    options: RunOptions,
    cancel: &CancellationToken,
) -> Result<Summary, RunError> {
    let start = Instant::now();
    let deadline = options.duration.map(|d| start + d);
    let mut bucket = match options.pacing {
        Some(Pacing::Rate { per_second, burst }) => Some(TokenBucket::new(
            per_second,
            burst.unwrap_or_else(|| TokenBucket::default_burst(per_second)),
        )),
        _ => None,
    };
    let speed = match options.pacing {
        Some(Pacing::Original { speed }) if speed.is_finite() && speed > 0.0 => Some(speed),
        Some(Pacing::Original { .. }) => Some(1.0),
        _ => None,
    };
    let mut first_time: Option<u64> = None;
    let mut summary = Summary {
        target: sink.name(),
        ..Summary::default()
    };
    let mut batch: Vec<Message> = Vec::with_capacity(BATCH);
    'run: loop {
        if cancel.is_cancelled() {
            summary.interrupted = true;
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let remaining = options
            .count
            .map_or(BATCH as u64, |c| c.saturating_sub(summary.messages));
        if remaining == 0 {
            break;
        }
        batch.clear();
        source.fill(&mut batch, BATCH.min(remaining as usize))?;
        batch.truncate(remaining as usize);
        if batch.is_empty() {
            break;
        }
        let mut i = 0;
        while i < batch.len() {
            let want = batch.len() - i;
            let n = if let Some(bucket) = bucket.as_mut() {
                loop {
                    let now = start.elapsed();
                    let granted = bucket.take(now, want);
                    if granted > 0 {
                        break granted;
                    }
                    let wake = Instant::now() + bucket.wait_for(now, want);
                    if !pause(wake, deadline, cancel).await {
                        summary.interrupted = cancel.is_cancelled();
                        break 'run;
                    }
                }
            } else if let Some(speed) = speed {
                // Send every message whose (scaled) time has come; wait for the next one.
                let due = |m: &Message, first: u64| {
                    m.time_micros.map(|t| {
                        start
                            + Duration::from_secs_f64(t.saturating_sub(first) as f64 / 1e6 / speed)
                    })
                };
                let first = *first_time.get_or_insert_with(|| batch[i].time_micros.unwrap_or(0));
                if let Some(wake) = due(&batch[i], first) {
                    if wake > Instant::now() && !pause(wake, deadline, cancel).await {
                        summary.interrupted = cancel.is_cancelled();
                        break 'run;
                    }
                }
                let now = Instant::now();
                1 + batch[i + 1..]
                    .iter()
                    .take_while(|m| due(m, first).map_or(true, |w| w <= now))
                    .count()
            } else {
                want
            };
            let slice = &batch[i..i + n];
            sink.send(slice).await?;
            for m in slice {
                summary.bytes += m.bytes.len() as u64;
                count_kind(&mut summary.by_kind, &m.kind);
            }
            summary.messages += n as u64;
            i += n;
        }
    }
    sink.flush().await?;
    let elapsed = start.elapsed().as_secs_f64();
    summary.elapsed_secs = elapsed;
    if elapsed > 0.0 {
        summary.messages_per_sec = summary.messages as f64 / elapsed;
        summary.mbit_per_sec = summary.bytes as f64 * 8.0 / elapsed / 1e6;
    }
    summary.scenarios = source.scenarios();
    summary.skipped = source.skipped();
    if let Some(stats) = sink.sender_stats() {
        summary.reconnects = stats.reconnects;
        summary.udp_errors = stats.udp_errors;
    }
    Ok(summary)
}
