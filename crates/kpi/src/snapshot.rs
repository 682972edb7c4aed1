//! JSON views for the UI: the current figures per scope and per-minute time series.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{Kpi, ScopeKey, TrackerCounters};
use crate::stats::{method_label, Bucket, Outcome, RegOutcome, METHOD_SLOTS};

/// Figures over a span of time (a window, or one minute of a series).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// RFC 6076 SER, percent (`null` without session attempts).
    pub ser_percent: Option<f64>,
    /// RFC 6076 SEER, percent.
    pub seer_percent: Option<f64>,
    /// RFC 6076 ISA, percent.
    pub isa_percent: Option<f64>,
    /// RFC 6076 SCR, percent.
    pub scr_percent: Option<f64>,
    /// RFC 6076 IRA, percent.
    pub ira_percent: Option<f64>,
    /// Session attempts concluded.
    pub session_attempts: u64,
    /// … by outcome (success, redirect, reject, ineffective, timeout, canceled, failure).
    pub session_outcomes: BTreeMap<&'static str, u64>,
    /// Sessions ended.
    pub sessions_ended: u64,
    /// … completed.
    pub sessions_completed: u64,
    /// Registration attempts concluded.
    pub registration_attempts: u64,
    /// … by outcome (success, ineffective, other).
    pub registration_outcomes: BTreeMap<&'static str, u64>,
    /// New requests.
    pub requests: u64,
    /// New responses.
    pub responses: u64,
    /// Retransmissions (requests and responses).
    pub retransmissions: u64,
    /// Mean SRD of successful setups, ms.
    pub srd_avg_ms: Option<f64>,
    /// QoS reports.
    pub qos_reports: u64,
    /// Mean MOS.
    pub mos_avg: Option<f64>,
    /// Mean jitter, ms.
    pub jitter_avg_ms: Option<f64>,
    /// Mean loss, percent.
    pub packet_loss_avg_percent: Option<f64>,
    /// Mean RTT, ms.
    pub rtt_avg_ms: Option<f64>,
}

fn round2(v: Option<f64>) -> Option<f64> {
    v.map(|x| (x * 100.0).round() / 100.0)
}

impl From<&Bucket> for Figures {
    fn from(b: &Bucket) -> Figures {
        Figures {
            ser_percent: round2(b.ser()),
            seer_percent: round2(b.seer()),
            isa_percent: round2(b.isa()),
            scr_percent: round2(b.scr()),
            ira_percent: round2(b.ira()),
            session_attempts: b.session_attempts,
            session_outcomes: Outcome::ALL
                .iter()
                .map(|o| (o.label(), b.outcomes[o.index()]))
                .collect(),
            sessions_ended: b.sessions_ended,
            sessions_completed: b.sessions_completed,
            registration_attempts: b.registration_attempts,
            registration_outcomes: RegOutcome::ALL
                .iter()
                .map(|o| (o.label(), b.registration_outcomes[o.index()]))
                .collect(),
            requests: b.requests,
            responses: b.responses,
            retransmissions: b.retransmissions,
            srd_avg_ms: round2(Bucket::mean(b.srd_ms_sum, b.srd_count)),
            qos_reports: b.qos_reports,
            mos_avg: round2(Bucket::mean(b.mos_sum, b.mos_count)),
            jitter_avg_ms: round2(Bucket::mean(b.jitter_ms_sum, b.jitter_count)),
            packet_loss_avg_percent: round2(Bucket::mean(b.loss_sum * 100.0, b.loss_count)),
            rtt_avg_ms: round2(Bucket::mean(b.rtt_ms_sum, b.rtt_count)),
        }
    }
}

/// Cumulative counters of a scope since start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// New requests by method.
    pub requests: BTreeMap<&'static str, u64>,
    /// Request retransmissions by method.
    pub request_retransmissions: BTreeMap<&'static str, u64>,
    /// New responses by `"METHOD code"` (CSeq method).
    pub responses: BTreeMap<String, u64>,
    /// Response retransmissions by `"METHOD code"`.
    pub response_retransmissions: BTreeMap<String, u64>,
    /// Session attempts.
    pub session_attempts: u64,
    /// Registration attempts.
    pub registration_attempts: u64,
    /// QoS reports.
    pub qos_reports: u64,
}

/// One scope in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScopeSnapshot {
    /// Capture node.
    pub node: String,
    /// Target group, or `any`.
    pub target: String,
    /// `any`, `in` or `out`.
    pub direction: &'static str,
    /// Figures over the requested window.
    pub window: Figures,
    /// Counters since start.
    pub totals: Totals,
}

/// The answer of `GET /api/v1/kpi`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The engine's packet clock, ms since the epoch (`null` before any traffic).
    pub now_ms: Option<i64>,
    /// The window the figures cover, seconds (whole minutes).
    pub window_seconds: u64,
    /// One entry per scope, sorted by node, target, direction.
    pub scopes: Vec<ScopeSnapshot>,
    /// Tracker counters.
    pub tracker: TrackerCounters,
    /// Items tracked now: transactions, sessions, registrations.
    pub tracked: BTreeMap<&'static str, usize>,
}

/// Filter of a time series: scopes matching every given field are summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesQuery {
    /// First minute, ms since the epoch (inclusive).
    pub from_ms: i64,
    /// End, ms since the epoch (exclusive).
    pub to_ms: i64,
    /// Node; `None` sums all nodes.
    pub node: Option<String>,
    /// Target group; `None` means `any`.
    pub target: Option<String>,
    /// Direction; `None` means `any`.
    pub direction: Option<String>,
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// Start of the minute, ms since the epoch.
    pub time_ms: i64,
    /// Figures of that minute.
    #[serde(flatten)]
    pub figures: Figures,
}

/// The answer of `GET /api/v1/kpi/series`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Seconds per point.
    pub step_seconds: u64,
    /// Points, oldest first; minutes without any traffic are absent.
    pub points: Vec<SeriesPoint>,
}

impl Kpi {
    /// Current figures of every scope over the last `window_secs` (default: the configured
    /// window). Only reads, like [`Kpi::render_prometheus`].
    pub fn snapshot(&self, window_secs: Option<u64>) -> Snapshot {
        let st = self.lock();
        let window_min = window_secs
            .unwrap_or(st.cfg.window_secs)
            .div_ceil(60)
            .clamp(1, st.cfg.history_minutes as u64) as i64;
        let started = st.now_us != i64::MIN;
        let now_min = if started {
            st.now_us.div_euclid(60_000_000)
        } else {
            0
        };
        let mut keys: Vec<ScopeKey> = st.scopes.keys().copied().collect();
        keys.sort_by(|a, b| {
            (st.node_label(a.node), a.target, a.direction).cmp(&(
                st.node_label(b.node),
                b.target,
                b.direction,
            ))
        });
        let scopes = keys
            .iter()
            .map(|k| {
                let s = &st.scopes[k];
                let sum = s.sum(now_min - window_min + 1, now_min + 1);
                let mut responses = BTreeMap::new();
                let mut response_retransmissions = BTreeMap::new();
                for ((m, code), v) in &s.responses {
                    let name = format!("{} {code}", method_label(usize::from(*m)));
                    if v[0] > 0 {
                        responses.insert(name.clone(), v[0]);
                    }
                    if v[1] > 0 {
                        response_retransmissions.insert(name, v[1]);
                    }
                }
                ScopeSnapshot {
                    node: st.node_label(k.node).to_owned(),
                    target: st.target_label(k.target).to_owned(),
                    direction: k.direction.label(),
                    window: Figures::from(&sum),
                    totals: Totals {
                        requests: (0..METHOD_SLOTS)
                            .filter(|m| s.requests[*m] > 0)
                            .map(|m| (method_label(m), s.requests[m]))
                            .collect(),
                        request_retransmissions: (0..METHOD_SLOTS)
                            .filter(|m| s.request_retrans[*m] > 0)
                            .map(|m| (method_label(m), s.request_retrans[m]))
                            .collect(),
                        responses,
                        response_retransmissions,
                        session_attempts: s.session_attempts,
                        registration_attempts: s.registration_attempts,
                        qos_reports: s.qos_reports.iter().sum(),
                    },
                }
            })
            .collect();
        let (t, se, r) = st.tracked();
        Snapshot {
            now_ms: started.then(|| st.now_us.div_euclid(1000)),
            window_seconds: window_min as u64 * 60,
            scopes,
            tracker: st.counters,
            tracked: [("transactions", t), ("sessions", se), ("registrations", r)]
                .into_iter()
                .collect(),
        }
    }

    /// Per-minute figures between `q.from_ms` and `q.to_ms`, summed over the matching scopes.
    pub fn series(&self, q: &SeriesQuery) -> Series {
        let st = self.lock();
        let from = q.from_ms.div_euclid(60_000);
        let to = q.to_ms.div_euclid(60_000) + i64::from(q.to_ms.rem_euclid(60_000) != 0);
        let target = q.target.as_deref().unwrap_or("any");
        let direction = q.direction.as_deref().unwrap_or("any");
        let mut acc: BTreeMap<i64, Bucket> = BTreeMap::new();
        for (k, s) in &st.scopes {
            if st.target_label(k.target) != target || k.direction.label() != direction {
                continue;
            }
            if q.node
                .as_deref()
                .is_some_and(|n| n != st.node_label(k.node))
            {
                continue;
            }
            for b in s
                .history
                .iter()
                .filter(|b| b.minute >= from && b.minute < to)
            {
                acc.entry(b.minute).or_default().add(b);
            }
        }
        Series {
            step_seconds: 60,
            points: acc
                .into_iter()
                .map(|(m, b)| SeriesPoint {
                    time_ms: m * 60_000,
                    figures: Figures::from(&b),
                })
                .collect(),
        }
    }
}
