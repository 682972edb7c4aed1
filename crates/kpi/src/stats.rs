//! Counters, histograms and per-minute buckets of one scope (node × target × direction).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;

/// SIP methods with a label of their own; anything else is `other`.
pub const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];
/// Index of `other` in per-method arrays.
pub const METHOD_OTHER: usize = METHODS.len();
/// Number of method slots (known methods + `other`).
pub const METHOD_SLOTS: usize = METHODS.len() + 1;

/// Method slot of `m` (case-sensitive, as RFC 3261 §7.1 requires).
pub fn method_index(m: &str) -> usize {
    METHODS.iter().position(|x| *x == m).unwrap_or(METHOD_OTHER)
}

/// Label value of a method slot.
pub fn method_label(i: usize) -> &'static str {
    METHODS.get(i).copied().unwrap_or("other")
}

/// How an INVITE session attempt ended its setup (RFC 6076 §4.6–4.8 classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx: counts for SER and SEER.
    Success,
    /// 3xx: removed from the SER / SEER denominator.
    Redirect,
    /// 480, 486, 600, 603: the user was reached but did not take the call (SEER numerator).
    Reject,
    /// 408, 500, 503, 504: ISA numerator.
    Ineffective,
    /// No final response before the transaction timeout (the wire view of Timer B): also ISA.
    Timeout,
    /// 487 after CANCEL.
    Canceled,
    /// Any other final response (404, 403, 401/407 never retried, …).
    Failure,
}

impl Outcome {
    /// All outcomes in label order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::Redirect,
        Outcome::Reject,
        Outcome::Ineffective,
        Outcome::Timeout,
        Outcome::Canceled,
        Outcome::Failure,
    ];
    /// Classifies a final response to an initial INVITE.
    pub fn of_code(code: u16) -> Outcome {
        match code {
            200..=299 => Outcome::Success,
            300..=399 => Outcome::Redirect,
            480 | 486 | 600 | 603 => Outcome::Reject,
            408 | 500 | 503 | 504 => Outcome::Ineffective,
            487 => Outcome::Canceled,
            _ => Outcome::Failure,
        }
    }
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Redirect => "redirect",
            Outcome::Reject => "reject",
            Outcome::Ineffective => "ineffective",
            Outcome::Timeout => "timeout",
            Outcome::Canceled => "canceled",
            Outcome::Failure => "failure",
        }
    }
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How a registration attempt ended (RFC 6076 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegOutcome {
    /// 2xx.
    Success,
    /// 4xx except 401/402/407, 5xx, 6xx, or no final response (Timer F): IRA numerator.
    Ineffective,
    /// 3xx, 402, or a challenge never answered.
    Other,
}

impl RegOutcome {
    /// All outcomes in label order.
    pub const ALL: [RegOutcome; 3] = [
        RegOutcome::Success,
        RegOutcome::Ineffective,
        RegOutcome::Other,
    ];
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RegOutcome::Success => "success",
            RegOutcome::Ineffective => "ineffective",
            RegOutcome::Other => "other",
        }
    }
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Bucket bounds (seconds) of the request/response delay histograms (SRD, RRD, SDD).
pub const DELAY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Bucket bounds (seconds) of the session duration histogram (SDT).
pub const DURATION_BOUNDS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
];
/// Bucket bounds (seconds) of jitter and RTT histograms.
pub const QOS_TIME_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0,
];
/// Bucket bounds of the loss ratio histogram.
pub const LOSS_BOUNDS: &[f64] = &[
    0.0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0,
];
/// Bucket bounds of the MOS histogram.
pub const MOS_BOUNDS: &[f64] = &[1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 5.0];

/// A Prometheus histogram with fixed bounds.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Upper bounds (`le`), ascending; `+Inf` is implicit.
    pub bounds: &'static [f64],
    /// Non-cumulative counts per bound, plus one for `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }
    /// Adds one observation (non-finite values are ignored).
    pub fn observe(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

/// Everything counted in one minute of one scope: the unit of the sliding window and of the
/// UI's time series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Unix minute (seconds since the epoch / 60).
    pub minute: i64,
    /// Session attempts whose setup ended (by final response or timeout) in this minute.
    pub session_attempts: u64,
    /// … by outcome, in [`Outcome::ALL`] order.
    pub outcomes: [u64; 7],
    /// Sessions that ended (failed setup, BYE answered or timed out, idle expiry).
    pub sessions_ended: u64,
    /// … of which completed (established and ended by a BYE answered with 2xx).
    pub sessions_completed: u64,
    /// Registration attempts concluded.
    pub registration_attempts: u64,
    /// … by outcome, in [`RegOutcome::ALL`] order.
    pub registration_outcomes: [u64; 3],
    /// New requests (retransmissions excluded).
    pub requests: u64,
    /// New responses (retransmissions excluded).
    pub responses: u64,
    /// Request and response retransmissions.
    pub retransmissions: u64,
    /// Sum and count of SRD (ms) of successful setups.
    pub srd_ms_sum: f64,
    /// Count of SRD samples.
    pub srd_count: u64,
    /// QoS reports.
    pub qos_reports: u64,
    /// Sum of jitter samples (ms).
    pub jitter_ms_sum: f64,
    /// Count of jitter samples.
    pub jitter_count: u64,
    /// Sum of loss fractions.
    pub loss_sum: f64,
    /// Count of loss samples.
    pub loss_count: u64,
    /// Sum of RTT samples (ms).
    pub rtt_ms_sum: f64,
    /// Count of RTT samples.
    pub rtt_count: u64,
    /// Sum of MOS samples.
    pub mos_sum: f64,
    /// Count of MOS samples.
    pub mos_count: u64,
}

impl Bucket {
    /// Adds `o` into `self` (the minute is kept).
    pub fn add(&mut self, o: &Bucket) {
        self.session_attempts += o.session_attempts;
        for i in 0..self.outcomes.len() {
            self.outcomes[i] += o.outcomes[i];
        }
        self.sessions_ended += o.sessions_ended;
        self.sessions_completed += o.sessions_completed;
        self.registration_attempts += o.registration_attempts;
        for i in 0..self.registration_outcomes.len() {
            self.registration_outcomes[i] += o.registration_outcomes[i];
        }
        self.requests += o.requests;
        self.responses += o.responses;
        self.retransmissions += o.retransmissions;
        self.srd_ms_sum += o.srd_ms_sum;
        self.srd_count += o.srd_count;
        self.qos_reports += o.qos_reports;
        self.jitter_ms_sum += o.jitter_ms_sum;
        self.jitter_count += o.jitter_count;
        self.loss_sum += o.loss_sum;
        self.loss_count += o.loss_count;
        self.rtt_ms_sum += o.rtt_ms_sum;
        self.rtt_count += o.rtt_count;
        self.mos_sum += o.mos_sum;
        self.mos_count += o.mos_count;
    }

    fn pct(num: u64, den: u64) -> Option<f64> {
        (den > 0).then(|| num as f64 * 100.0 / den as f64)
    }

    /// RFC 6076 §4.6 SER: INVITEs answered 2xx / (INVITEs − INVITEs answered 3xx), percent.
    pub fn ser(&self) -> Option<f64> {
        let den = self.session_attempts - self.outcomes[Outcome::Redirect.index()];
        Self::pct(self.outcomes[Outcome::Success.index()], den)
    }
    /// RFC 6076 §4.7 SEER: INVITEs answered 200, 480, 486, 600 or 603 / (INVITEs − 3xx).
    pub fn seer(&self) -> Option<f64> {
        let den = self.session_attempts - self.outcomes[Outcome::Redirect.index()];
        Self::pct(
            self.outcomes[Outcome::Success.index()] + self.outcomes[Outcome::Reject.index()],
            den,
        )
    }
    /// RFC 6076 §4.8 ISA: INVITEs answered 408, 500, 503, 504 (or never answered) / INVITEs.
    pub fn isa(&self) -> Option<f64> {
        Self::pct(
            self.outcomes[Outcome::Ineffective.index()] + self.outcomes[Outcome::Timeout.index()],
            self.session_attempts,
        )
    }
    /// RFC 6076 §4.9 SCR: completed sessions / session requests (both counted when the
    /// session ends).
    pub fn scr(&self) -> Option<f64> {
        Self::pct(self.sessions_completed, self.sessions_ended)
    }
    /// RFC 6076 §4.2 IRA: ineffective registration attempts / registration attempts.
    pub fn ira(&self) -> Option<f64> {
        Self::pct(
            self.registration_outcomes[RegOutcome::Ineffective.index()],
            self.registration_attempts,
        )
    }
    /// Mean of a sum/count pair.
    pub fn mean(sum: f64, n: u64) -> Option<f64> {
        (n > 0).then(|| sum / n as f64)
    }
}

/// Hashes the small integer keys of the KPI maps (scope keys, method and status code pairs,
/// node and HEP type pairs) with one multiply per field instead of SipHash, which was ~9 % of
/// the tracking cost. The keys come from bounded sets (nodes up to `max_nodes`, configured
/// target groups, method slots, status codes 100–699, HEP types 0–255), so there is nothing to
/// flood.
#[derive(Default)]
pub struct SmallKeyHasher(u64);

impl SmallKeyHasher {
    fn add(&mut self, n: u64) {
        // FxHash's step: the multiply carries every field into the high bits hashbrown uses.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for SmallKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// The hasher of the KPI maps keyed by small integers (see [`SmallKeyHasher`]).
pub type SmallKeyHash = BuildHasherDefault<SmallKeyHasher>;

/// Cumulative counters and histograms of one scope plus its per-minute history.
#[derive(Debug, Clone)]
pub struct ScopeStats {
    /// New requests by method slot.
    pub requests: [u64; METHOD_SLOTS],
    /// Request retransmissions by method slot.
    pub request_retrans: [u64; METHOD_SLOTS],
    /// Responses by (CSeq method slot, status code): `[new, retransmitted]`.
    pub responses: HashMap<(u8, u16), [u64; 2], SmallKeyHash>,
    /// Session attempts concluded.
    pub session_attempts: u64,
    /// … by outcome.
    pub outcomes: [u64; 7],
    /// Sessions ended: `[not completed, completed]`.
    pub sessions_ended: [u64; 2],
    /// Registration attempts concluded.
    pub registration_attempts: u64,
    /// … by outcome.
    pub registration_outcomes: [u64; 3],
    /// SRD, `[success, failure]`.
    pub srd: [Histogram; 2],
    /// RRD, `[success, failure]`.
    pub rrd: [Histogram; 2],
    /// SDD, `[success, failure, timeout]`.
    pub sdd: [Histogram; 3],
    /// SDT.
    pub sdt: Histogram,
    /// QoS reports by source.
    pub qos_reports: [u64; 4],
    /// Jitter (s).
    pub jitter: Histogram,
    /// Loss fraction.
    pub loss: Histogram,
    /// RTT (s).
    pub rtt: Histogram,
    /// MOS.
    pub mos: Histogram,
    /// Packets lost (sum of cumulative-loss increments).
    pub packets_lost: u64,
    /// Per-minute history, oldest first, only minutes with activity.
    pub history: VecDeque<Bucket>,
}

impl ScopeStats {
    /// Empty statistics.
    pub fn new() -> ScopeStats {
        ScopeStats {
            requests: [0; METHOD_SLOTS],
            request_retrans: [0; METHOD_SLOTS],
            responses: HashMap::default(),
            session_attempts: 0,
            outcomes: [0; 7],
            sessions_ended: [0; 2],
            registration_attempts: 0,
            registration_outcomes: [0; 3],
            srd: [Histogram::new(DELAY_BOUNDS), Histogram::new(DELAY_BOUNDS)],
            rrd: [Histogram::new(DELAY_BOUNDS), Histogram::new(DELAY_BOUNDS)],
            sdd: [
                Histogram::new(DELAY_BOUNDS),
                Histogram::new(DELAY_BOUNDS),
                Histogram::new(DELAY_BOUNDS),
            ],
            sdt: Histogram::new(DURATION_BOUNDS),
            qos_reports: [0; 4],
            jitter: Histogram::new(QOS_TIME_BOUNDS),
            loss: Histogram::new(LOSS_BOUNDS),
            rtt: Histogram::new(QOS_TIME_BOUNDS),
            mos: Histogram::new(MOS_BOUNDS),
            packets_lost: 0,
            history: VecDeque::new(),
        }
    }

    /// Sum of the buckets with `minute >= from_minute` and `< to_minute`.
    pub fn sum(&self, from_minute: i64, to_minute: i64) -> Bucket {
        let mut out = Bucket {
            minute: from_minute,
            ..Bucket::default()
        };
        for b in self
            .history
            .iter()
            .filter(|b| b.minute >= from_minute && b.minute < to_minute)
        {
            out.add(b);
        }
        out
    }
}

impl Default for ScopeStats {
    fn default() -> Self {
        ScopeStats::new()
    }
}

/// The bucket of `minute` in a scope's `history`, created when missing; drops buckets older
/// than `history_minutes` before `latest_minute`. Late events for a minute no longer (or not
/// yet) present land in the nearest newer bucket. It takes the history alone, not the
/// [`ScopeStats`], so that a caller can update the bucket and the rest of the scope's
/// statistics at once (see `State::with_scopes`).
pub(crate) fn history_bucket(
    history: &mut VecDeque<Bucket>,
    minute: i64,
    latest_minute: i64,
    history_minutes: usize,
) -> &mut Bucket {
    let oldest = latest_minute - history_minutes as i64 + 1;
    while history.front().is_some_and(|b| b.minute < oldest) {
        history.pop_front();
    }
    let minute = minute.max(oldest);
    let newest = history.back().map(|b| b.minute);
    if newest.map_or(true, |newest| newest < minute) {
        history.push_back(Bucket {
            minute,
            ..Bucket::default()
        });
    }
    // Nearly every event of live traffic falls in the newest minute: no search for it.
    let idx = if newest.map_or(true, |newest| newest <= minute) {
        history.len() - 1
    } else {
        history
            .partition_point(|b| b.minute < minute)
            .min(history.len() - 1)
    };
    &mut history[idx]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_follow_rfc6076_formulas() {
        let mut b = Bucket {
            session_attempts: 23,
            ..Bucket::default()
        };
        b.outcomes[Outcome::Success.index()] = 13;
        b.outcomes[Outcome::Reject.index()] = 3;
        b.outcomes[Outcome::Ineffective.index()] = 2;
        b.outcomes[Outcome::Failure.index()] = 3;
        b.outcomes[Outcome::Canceled.index()] = 2;
        assert_eq!(format!("{:.2}", b.ser().unwrap()), "56.52");
        assert_eq!(format!("{:.2}", b.seer().unwrap()), "69.57");
        assert_eq!(format!("{:.2}", b.isa().unwrap()), "8.70");
        b.outcomes[Outcome::Redirect.index()] = 3;
        b.session_attempts = 26;
        assert_eq!(format!("{:.2}", b.ser().unwrap()), "56.52");
        assert_eq!(Bucket::default().ser(), None);
    }

    #[test]
    fn histogram_buckets() {
        let mut h = Histogram::new(DELAY_BOUNDS);
        h.observe(0.001);
        h.observe(0.3);
        h.observe(100.0);
        h.observe(f64::NAN);
        assert_eq!(h.count, 3);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[DELAY_BOUNDS.len()], 1);
    }

    #[test]
    fn history_is_bounded_and_ordered() {
        let mut s = ScopeStats::new();
        for m in 0..100 {
            history_bucket(&mut s.history, m, m, 10).requests += 1;
        }
        assert_eq!(s.history.len(), 10);
        assert_eq!(s.history.front().unwrap().minute, 90);
        // A late event for an evicted minute lands in the oldest kept bucket.
        history_bucket(&mut s.history, 5, 99, 10).requests += 1;
        assert_eq!(s.history.front().unwrap().requests, 2);
        assert_eq!(s.sum(90, 100).requests, 11);
    }

    #[test]
    fn events_land_in_their_minute_or_the_nearest_newer_one() {
        let mut s = ScopeStats::new();
        for m in [10, 12, 15] {
            history_bucket(&mut s.history, m, 15, 60).requests += 1;
        }
        // The newest minute again (the path that skips the search), a minute present further
        // back, and a missing minute between two present ones.
        history_bucket(&mut s.history, 15, 15, 60).requests += 10;
        history_bucket(&mut s.history, 10, 15, 60).requests += 100;
        history_bucket(&mut s.history, 11, 15, 60).requests += 1000;
        let minutes: Vec<(i64, u64)> = s.history.iter().map(|b| (b.minute, b.requests)).collect();
        assert_eq!(minutes, [(10, 101), (12, 1001), (15, 11)]);
        // A new minute opens a bucket at the end.
        history_bucket(&mut s.history, 16, 16, 60).requests += 1;
        assert_eq!(
            s.history.back().map(|b| (b.minute, b.requests)),
            Some((16, 1))
        );
    }
}
