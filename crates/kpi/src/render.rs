//! Prometheus text exposition (format 0.0.4) of every KPI metric. Label values are bounded:
//! `node` (at most `max_nodes`, then `other`), `target` (configured groups + `any`),
//! `direction` (any, in, out), `method` (14 methods + `other`), `code` (status codes seen),
//! `outcome`, `source`, `hep_type`. Call-IDs, users and addresses never become labels.

use std::fmt::Write;

use crate::engine::{Kpi, ScopeKey, State};
use crate::qos::QosSource;
use crate::stats::{method_label, Histogram, Outcome, RegOutcome, ScopeStats, METHOD_SLOTS};

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Ctx<'a> {
    state: &'a State,
    keys: Vec<ScopeKey>,
}

impl Ctx<'_> {
    fn labels(&self, k: &ScopeKey) -> String {
        format!(
            "node=\"{}\",target=\"{}\",direction=\"{}\"",
            escape_label(self.state.node_label(k.node)),
            escape_label(self.state.target_label(k.target)),
            k.direction.label()
        )
    }
    fn qos_labels(&self, k: &ScopeKey) -> String {
        format!(
            "node=\"{}\",target=\"{}\"",
            escape_label(self.state.node_label(k.node)),
            escape_label(self.state.target_label(k.target)),
        )
    }
    fn stats(&self, k: &ScopeKey) -> &ScopeStats {
        &self.state.scopes[k]
    }

    /// A counter with one line per scope.
    fn counter(
        &self,
        out: &mut String,
        keys: &[&ScopeKey],
        name: &str,
        help: &str,
        value: impl Fn(&ScopeStats) -> u64,
    ) {
        header(out, name, "counter", help);
        for k in keys {
            let _ = writeln!(out, "{name}{{{}}} {}", self.labels(k), value(self.stats(k)));
        }
    }

    /// A counter with one line per scope and value of one more label; `values` pairs the label
    /// value with the index `value` reads.
    fn labelled_counter(
        &self,
        out: &mut String,
        keys: &[&ScopeKey],
        name: &str,
        help: &str,
        (label, values): (&str, &[(&str, usize)]),
        value: impl Fn(&ScopeStats, usize) -> u64,
    ) {
        header(out, name, "counter", help);
        for k in keys {
            let l = self.labels(k);
            for (v, i) in values {
                let n = value(self.stats(k), *i);
                let _ = writeln!(out, "{name}{{{l},{label}=\"{v}\"}} {n}");
            }
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cum = 0u64;
    for (i, b) in h.bounds.iter().enumerate() {
        cum += h.counts[i];
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

fn f(v: f64) -> String {
    // Prometheus accepts Go float syntax; Rust's Display is compatible for finite values.
    format!("{v}")
}

impl Kpi {
    /// Appends every KPI metric to `out` in Prometheus text format. Only reads: the time-driven
    /// housekeeping ([`Kpi::tick`]) is the feeding thread's, so rendering costs the same
    /// however many items are tracked, and holds the lock only while it formats.
    pub fn render_prometheus(&self, out: &mut String) {
        let st = self.lock();
        let st = &*st;
        let mut keys: Vec<ScopeKey> = st.scopes.keys().copied().collect();
        keys.sort_by(|a, b| {
            (st.node_label(a.node), a.target, a.direction).cmp(&(
                st.node_label(b.node),
                b.target,
                b.direction,
            ))
        });
        let cx = Ctx { state: st, keys };
        render_sip(&cx, out);
        render_kpi(&cx, out);
        render_qos(&cx, out);
        render_tracker(st, out);
    }
}

fn sip_keys<'a>(cx: &'a Ctx<'a>) -> impl Iterator<Item = &'a ScopeKey> {
    // QoS-only scopes (direction any on a target, no SIP) carry no SIP counters.
    cx.keys.iter().filter(|k| {
        let s = cx.stats(k);
        s.requests.iter().any(|v| *v > 0) || !s.responses.is_empty()
    })
}

fn render_sip(cx: &Ctx<'_>, out: &mut String) {
    header(
        out,
        "hepstack_sip_requests_total",
        "counter",
        "SIP requests by method (first transmissions only)",
    );
    for k in sip_keys(cx) {
        let l = cx.labels(k);
        let s = cx.stats(k);
        for m in 0..METHOD_SLOTS {
            if s.requests[m] > 0 {
                let _ = writeln!(
                    out,
                    "hepstack_sip_requests_total{{{l},method=\"{}\"}} {}",
                    method_label(m),
                    s.requests[m]
                );
            }
        }
    }
    header(
        out,
        "hepstack_sip_request_retransmissions_total",
        "counter",
        "SIP request retransmissions by method",
    );
    for k in sip_keys(cx) {
        let l = cx.labels(k);
        let s = cx.stats(k);
        for m in 0..METHOD_SLOTS {
            if s.request_retrans[m] > 0 {
                let _ = writeln!(
                    out,
                    "hepstack_sip_request_retransmissions_total{{{l},method=\"{}\"}} {}",
                    method_label(m),
                    s.request_retrans[m]
                );
            }
        }
    }
    for (name, idx, help) in [
        (
            "hepstack_sip_responses_total",
            0usize,
            "SIP responses by CSeq method and status code (first transmissions only)",
        ),
        (
            "hepstack_sip_response_retransmissions_total",
            1,
            "SIP response retransmissions by CSeq method and status code",
        ),
    ] {
        header(out, name, "counter", help);
        for k in sip_keys(cx) {
            let l = cx.labels(k);
            let s = cx.stats(k);
            let mut codes: Vec<(&(u8, u16), &[u64; 2])> = s.responses.iter().collect();
            codes.sort();
            for ((m, code), v) in codes {
                if v[idx] > 0 {
                    let _ = writeln!(
                        out,
                        "{name}{{{l},method=\"{}\",code=\"{code}\"}} {}",
                        method_label(usize::from(*m)),
                        v[idx]
                    );
                }
            }
        }
    }
    header(
        out,
        "hepstack_sip_duplicates_total",
        "counter",
        "SIP messages seen twice within the duplicate window (not retransmissions)",
    );
    let _ = writeln!(
        out,
        "hepstack_sip_duplicates_total {}",
        cx.state.counters.duplicates
    );
    header(
        out,
        "hepstack_hep_records_total",
        "counter",
        "HEP records seen by the KPI engine, by node and HEP type",
    );
    let mut types: Vec<(&(u16, u8), &u64)> = cx.state.hep_types.iter().collect();
    types.sort();
    for ((n, t), v) in types {
        let _ = writeln!(
            out,
            "hepstack_hep_records_total{{node=\"{}\",hep_type=\"{t}\"}} {v}",
            escape_label(cx.state.node_label(*n))
        );
    }
}

fn render_kpi(cx: &Ctx<'_>, out: &mut String) {
    let st = cx.state;
    let window_min = st.cfg.window_secs.div_ceil(60).max(1) as i64;
    let now_min = st.now_us.div_euclid(60_000_000);
    let keys: Vec<&ScopeKey> = sip_keys(cx).collect();
    cx.counter(
        out,
        &keys,
        "hepstack_kpi_session_attempts_total",
        "INVITE session attempts whose setup ended (RFC 6076 session requests)",
        |s| s.session_attempts,
    );
    let outcomes = Outcome::ALL.map(|o| (o.label(), o.index()));
    cx.labelled_counter(
        out,
        &keys,
        "hepstack_kpi_session_outcomes_total",
        "INVITE session attempts by setup outcome",
        ("outcome", &outcomes),
        |s, i| s.outcomes[i],
    );
    cx.labelled_counter(
        out,
        &keys,
        "hepstack_kpi_sessions_ended_total",
        "Sessions ended; completed=\"true\" when established and closed by a BYE answered 2xx (RFC 6076 SCR)",
        ("completed", &[("true", 1), ("false", 0)]),
        |s, i| s.sessions_ended[i],
    );
    cx.counter(
        out,
        &keys,
        "hepstack_kpi_registration_attempts_total",
        "Registration attempts concluded (a 401/407 challenge and its retry are one attempt)",
        |s| s.registration_attempts,
    );
    let reg_outcomes = RegOutcome::ALL.map(|o| (o.label(), o.index()));
    cx.labelled_counter(
        out,
        &keys,
        "hepstack_kpi_registration_outcomes_total",
        "Registration attempts by outcome (ineffective = RFC 6076 IRA numerator)",
        ("outcome", &reg_outcomes),
        |s, i| s.registration_outcomes[i],
    );
    type Ratio = fn(&crate::stats::Bucket) -> Option<f64>;
    let ratios: [(&str, &str, Ratio); 5] = [
        (
            "hepstack_kpi_ser_percent",
            "RFC 6076 Session Establishment Ratio over the sliding window",
            crate::stats::Bucket::ser,
        ),
        (
            "hepstack_kpi_seer_percent",
            "RFC 6076 Session Establishment Effectiveness Ratio over the sliding window",
            crate::stats::Bucket::seer,
        ),
        (
            "hepstack_kpi_isa_percent",
            "RFC 6076 Ineffective Session Attempts over the sliding window",
            crate::stats::Bucket::isa,
        ),
        (
            "hepstack_kpi_scr_percent",
            "RFC 6076 Session Completion Ratio over the sliding window",
            crate::stats::Bucket::scr,
        ),
        (
            "hepstack_kpi_ira_percent",
            "RFC 6076 Ineffective Registration Attempts over the sliding window",
            crate::stats::Bucket::ira,
        ),
    ];
    let sums: Vec<_> = keys
        .iter()
        .map(|k| cx.stats(k).sum(now_min - window_min + 1, now_min + 1))
        .collect();
    for (name, help, ratio) in ratios {
        header(out, name, "gauge", help);
        for (k, b) in keys.iter().zip(&sums) {
            if let Some(v) = ratio(b) {
                let _ = writeln!(out, "{name}{{{}}} {}", cx.labels(k), f(v));
            }
        }
    }
    header(
        out,
        "hepstack_kpi_window_seconds",
        "gauge",
        "Length of the sliding window of the *_percent and *_avg gauges",
    );
    let _ = writeln!(out, "hepstack_kpi_window_seconds {}", window_min * 60);
    let hists: [(&str, &str, &[&str]); 4] = [
        ("hepstack_kpi_srd_seconds", "RFC 6076 Session Request Delay: INVITE to first non-100 provisional or 2xx (success) or to the failure response", &["success", "failure"]),
        ("hepstack_kpi_rrd_seconds", "RFC 6076 Registration Request Delay: first REGISTER of the attempt to its final response", &["success", "failure"]),
        ("hepstack_kpi_sdd_seconds", "RFC 6076 Session Disconnect Delay: BYE to its final response or timeout", &["success", "failure", "timeout"]),
        ("hepstack_kpi_sdt_seconds", "RFC 6076 Session Duration Time: 2xx to INVITE until BYE", &[]),
    ];
    for (name, help, outcomes) in hists {
        header(out, name, "histogram", help);
        for k in &keys {
            let s = cx.stats(k);
            let l = cx.labels(k);
            if outcomes.is_empty() {
                histogram(out, name, &l, &s.sdt);
                continue;
            }
            for (i, o) in outcomes.iter().enumerate() {
                let h = match name {
                    "hepstack_kpi_srd_seconds" => &s.srd[i],
                    "hepstack_kpi_rrd_seconds" => &s.rrd[i],
                    _ => &s.sdd[i],
                };
                histogram(out, name, &format!("{l},outcome=\"{o}\""), h);
            }
        }
    }
}

fn render_qos(cx: &Ctx<'_>, out: &mut String) {
    let st = cx.state;
    let window_min = st.cfg.window_secs.div_ceil(60).max(1) as i64;
    let now_min = st.now_us.div_euclid(60_000_000);
    let keys: Vec<&ScopeKey> = cx
        .keys
        .iter()
        .filter(|k| {
            k.direction == crate::engine::Direction::Any
                && cx.stats(k).qos_reports.iter().any(|v| *v > 0)
        })
        .collect();
    header(
        out,
        "hepstack_qos_reports_total",
        "counter",
        "Voice-quality reports by source (rtcp, rtcp_xr, x_rtp_stat, vq_rtcpxr)",
    );
    for k in &keys {
        let l = cx.qos_labels(k);
        for src in QosSource::ALL {
            let _ = writeln!(
                out,
                "hepstack_qos_reports_total{{{l},source=\"{}\"}} {}",
                src.label(),
                cx.stats(k).qos_reports[src.index()]
            );
        }
    }
    header(
        out,
        "hepstack_qos_packets_lost_total",
        "counter",
        "RTP packets lost (increments of RTCP cumulative loss, end-of-call totals)",
    );
    for k in &keys {
        let _ = writeln!(
            out,
            "hepstack_qos_packets_lost_total{{{}}} {}",
            cx.qos_labels(k),
            cx.stats(k).packets_lost
        );
    }
    let hists: [(&str, &str); 4] = [
        (
            "hepstack_qos_jitter_seconds",
            "Interarrival jitter per report",
        ),
        (
            "hepstack_qos_packet_loss_ratio",
            "Fraction of packets lost per report (0..1)",
        ),
        (
            "hepstack_qos_rtt_seconds",
            "Round-trip time per report, where derivable",
        ),
        (
            "hepstack_qos_mos",
            "MOS per report (reported, or ITU-T G.107 E-model)",
        ),
    ];
    for (name, help) in hists {
        header(out, name, "histogram", help);
        for k in &keys {
            let s = cx.stats(k);
            let h = match name {
                "hepstack_qos_jitter_seconds" => &s.jitter,
                "hepstack_qos_packet_loss_ratio" => &s.loss,
                "hepstack_qos_rtt_seconds" => &s.rtt,
                _ => &s.mos,
            };
            histogram(out, name, &cx.qos_labels(k), h);
        }
    }
    let sums: Vec<_> = keys
        .iter()
        .map(|k| cx.stats(k).sum(now_min - window_min + 1, now_min + 1))
        .collect();
    type Avg = fn(&crate::stats::Bucket) -> Option<f64>;
    let avgs: [(&str, &str, Avg); 4] = [
        (
            "hepstack_qos_mos_avg",
            "Mean MOS over the sliding window",
            |b| crate::stats::Bucket::mean(b.mos_sum, b.mos_count),
        ),
        (
            "hepstack_qos_jitter_avg_seconds",
            "Mean jitter over the sliding window",
            |b| crate::stats::Bucket::mean(b.jitter_ms_sum / 1000.0, b.jitter_count),
        ),
        (
            "hepstack_qos_packet_loss_avg_ratio",
            "Mean loss fraction over the sliding window",
            |b| crate::stats::Bucket::mean(b.loss_sum, b.loss_count),
        ),
        (
            "hepstack_qos_rtt_avg_seconds",
            "Mean round-trip time over the sliding window",
            |b| crate::stats::Bucket::mean(b.rtt_ms_sum / 1000.0, b.rtt_count),
        ),
    ];
    for (name, help, avg) in avgs {
        header(out, name, "gauge", help);
        for (k, b) in keys.iter().zip(&sums) {
            if let Some(v) = avg(b) {
                let _ = writeln!(out, "{name}{{{}}} {}", cx.qos_labels(k), f(v));
            }
        }
    }
}

fn render_tracker(st: &State, out: &mut String) {
    let (t, s, r) = st.tracked();
    header(
        out,
        "hepstack_kpi_tracked",
        "gauge",
        "Transactions, sessions and registration attempts tracked now",
    );
    let _ = writeln!(out, "hepstack_kpi_tracked{{kind=\"transactions\"}} {t}");
    let _ = writeln!(out, "hepstack_kpi_tracked{{kind=\"sessions\"}} {s}");
    let _ = writeln!(out, "hepstack_kpi_tracked{{kind=\"registrations\"}} {r}");
    let c = &st.counters;
    header(
        out,
        "hepstack_kpi_tracking_overflow_total",
        "counter",
        "Items not tracked because a cap was reached",
    );
    let _ = writeln!(
        out,
        "hepstack_kpi_tracking_overflow_total{{kind=\"transactions\"}} {}",
        c.overflow_transactions
    );
    let _ = writeln!(
        out,
        "hepstack_kpi_tracking_overflow_total{{kind=\"sessions\"}} {}",
        c.overflow_sessions
    );
    let _ = writeln!(
        out,
        "hepstack_kpi_tracking_overflow_total{{kind=\"registrations\"}} {}",
        c.overflow_registrations
    );
    header(
        out,
        "hepstack_kpi_unmatched_responses_total",
        "counter",
        "Responses whose request was not seen (or already expired)",
    );
    let _ = writeln!(
        out,
        "hepstack_kpi_unmatched_responses_total {}",
        c.unmatched_responses
    );
    header(
        out,
        "hepstack_kpi_dialogs_expired_total",
        "counter",
        "Established dialogs forgotten after dialog_idle_timeout_secs without a BYE",
    );
    let _ = writeln!(
        out,
        "hepstack_kpi_dialogs_expired_total {}",
        c.dialogs_expired
    );
    header(
        out,
        "hepstack_kpi_untrackable_total",
        "counter",
        "SIP messages without Call-ID or CSeq",
    );
    let _ = writeln!(out, "hepstack_kpi_untrackable_total {}", c.untrackable);
    header(
        out,
        "hepstack_kpi_late_messages_total",
        "counter",
        "SIP messages tracked out of receive order: a message received later was already tracked",
    );
    let _ = writeln!(out, "hepstack_kpi_late_messages_total {}", c.late);
    header(
        out,
        "hepstack_kpi_reorder_pending",
        "gauge",
        "SIP messages waiting in the reorder buffer (reorder_window_ms) to be tracked",
    );
    let _ = writeln!(out, "hepstack_kpi_reorder_pending {}", st.reorder_pending());
}
