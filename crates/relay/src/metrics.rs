//! Relay counters and their Prometheus text rendering. Labels are bounded by the
//! configuration: destination, group and rule names (at most [`crate::MAX_DESTINATIONS`]
//! destinations), transports and fixed reasons.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ingest::Transport;

use crate::router::Router;

/// Relay-wide counters (per-destination ones live with the destination).
#[derive(Debug, Default)]
pub struct RelayCounters {
    received_udp: AtomicU64,
    received_tcp: AtomicU64,
    received_tls: AtomicU64,
    /// Frames that are not HEP.
    pub invalid: AtomicU64,
    /// Packets with a missing or wrong auth key (listener `auth_key`).
    pub auth_failed: AtomicU64,
    /// Packets no rule matched.
    pub unmatched: AtomicU64,
    /// Packets a `drop` rule stopped before any copy was queued.
    pub dropped_by_rule: AtomicU64,
    /// HEPv1/v2 packets sent on as HEPv3.
    pub converted: AtomicU64,
    /// Packets that could not be re-encoded after a rewrite (too large).
    pub encode_errors: AtomicU64,
    /// Configuration reloads, successful.
    pub reloads: AtomicU64,
    /// Configuration reloads refused (the old configuration stays).
    pub reload_failures: AtomicU64,
}

impl RelayCounters {
    pub(crate) fn received(&self, transport: Transport) {
        match transport {
            Transport::Udp => &self.received_udp,
            Transport::Tcp => &self.received_tcp,
            Transport::Tls => &self.received_tls,
        }
        .fetch_add(1, Relaxed);
    }

    /// Packets received over `transport`.
    pub fn received_count(&self, transport: Transport) -> u64 {
        match transport {
            Transport::Udp => &self.received_udp,
            Transport::Tcp => &self.received_tcp,
            Transport::Tls => &self.received_tls,
        }
        .load(Relaxed)
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (names are restricted, but be safe).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every relay metric.
pub(crate) fn render(counters: &RelayCounters, router: &Router) -> String {
    let mut out = String::with_capacity(4096);
    let c = counters;
    header(
        &mut out,
        "hepstack_relay_received_total",
        "counter",
        "HEP packets received by the relay",
    );
    for t in [Transport::Udp, Transport::Tcp, Transport::Tls] {
        let _ = writeln!(
            out,
            "hepstack_relay_received_total{{transport=\"{}\"}} {}",
            t.as_str(),
            c.received_count(t)
        );
    }
    header(
        &mut out,
        "hepstack_relay_packets_total",
        "counter",
        "received packets that were not forwarded, by reason (invalid, auth_failed, unmatched, dropped_by_rule, encode_error); and HEPv1/v2 packets converted to HEPv3",
    );
    for (outcome, v) in [
        ("invalid", &c.invalid),
        ("auth_failed", &c.auth_failed),
        ("unmatched", &c.unmatched),
        ("dropped_by_rule", &c.dropped_by_rule),
        ("encode_error", &c.encode_errors),
        ("converted", &c.converted),
    ] {
        let _ = writeln!(
            out,
            "hepstack_relay_packets_total{{outcome=\"{outcome}\"}} {}",
            v.load(Relaxed)
        );
    }
    header(
        &mut out,
        "hepstack_relay_rule_matches_total",
        "counter",
        "packets each rule matched (since the last reload)",
    );
    for r in &router.rules {
        let _ = writeln!(
            out,
            "hepstack_relay_rule_matches_total{{rule=\"{}\"}} {}",
            esc(&r.plan.name),
            r.matched.load(Relaxed)
        );
    }
    type Get = fn(&crate::destination::Destination) -> u64;
    let per_dest: [(&str, &str, &str, Get); 7] = [
        (
            "hepstack_relay_forwarded_total",
            "counter",
            "packets sent to the destination",
            |d| d.stats().forwarded.load(Relaxed),
        ),
        (
            "hepstack_relay_forwarded_bytes_total",
            "counter",
            "bytes sent to the destination",
            |d| d.stats().bytes.load(Relaxed),
        ),
        (
            "hepstack_relay_queue_depth",
            "gauge",
            "packets waiting in the destination's queue",
            |d| d.queue_depth() as u64,
        ),
        (
            "hepstack_relay_queue_capacity",
            "gauge",
            "size of the destination's queue",
            |d| d.config().queue_capacity as u64,
        ),
        (
            "hepstack_relay_reconnects_total",
            "counter",
            "reconnections after the destination failed",
            |d| d.stats().reconnects.load(Relaxed),
        ),
        (
            "hepstack_relay_connect_failures_total",
            "counter",
            "failed connection attempts",
            |d| d.stats().connect_failures.load(Relaxed),
        ),
        (
            "hepstack_relay_destination_up",
            "gauge",
            "1 when the destination is healthy (connected; UDP: not reported unreachable)",
            |d| u64::from(d.stats().is_healthy()),
        ),
    ];
    for (name, kind, help, get) in per_dest {
        header(&mut out, name, kind, help);
        for d in &router.destinations {
            let _ = writeln!(
                out,
                "{name}{{destination=\"{}\"}} {}",
                esc(d.name()),
                get(d)
            );
        }
    }
    header(
        &mut out,
        "hepstack_relay_dropped_total",
        "counter",
        "packets for the destination that were lost: queue_full (slow or dead destination), send (refused by the kernel, or still queued when the relay stopped while it was down)",
    );
    for d in &router.destinations {
        let n = esc(d.name());
        let _ = writeln!(
            out,
            "hepstack_relay_dropped_total{{destination=\"{n}\",reason=\"queue_full\"}} {}",
            d.stats().dropped_queue_full.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "hepstack_relay_dropped_total{{destination=\"{n}\",reason=\"send\"}} {}",
            d.stats().dropped_send.load(Relaxed)
        );
    }
    header(
        &mut out,
        "hepstack_relay_balanced_total",
        "counter",
        "packets each group member received (its share of the group, since the last reload)",
    );
    for g in &router.groups {
        for (i, &m) in g.plan.members.iter().enumerate() {
            let _ = writeln!(
                out,
                "hepstack_relay_balanced_total{{group=\"{}\",member=\"{}\"}} {}",
                esc(&g.plan.name),
                esc(router.destinations[m].name()),
                g.picks[i].load(Relaxed)
            );
        }
    }
    header(
        &mut out,
        "hepstack_relay_failovers_total",
        "counter",
        "packets sent to another member because their member was down",
    );
    for g in &router.groups {
        let _ = writeln!(
            out,
            "hepstack_relay_failovers_total{{group=\"{}\"}} {}",
            esc(&g.plan.name),
            g.failovers.load(Relaxed)
        );
    }
    let linked: Vec<(&str, &crate::legs::LegLinks)> = router
        .groups
        .iter()
        .filter_map(|g| Some((g.plan.name.as_str(), g.links.as_deref()?)))
        .collect();
    type LinkGauge = fn(&crate::legs::LegLinks) -> u64;
    let per_group: [(&str, &str, &str, LinkGauge); 3] = [
        (
            "hepstack_relay_leg_links",
            "gauge",
            "B-leg Call-IDs currently linked to their call (groups with a key_header)",
            |l| l.len() as u64,
        ),
        (
            "hepstack_relay_leg_links_learned_total",
            "counter",
            "B-leg links learned from SIP carrying both the key header and a Call-ID",
            |l| l.learned.load(Relaxed),
        ),
        (
            "hepstack_relay_leg_links_followed_total",
            "counter",
            "packets of a B-leg (reports, logs, SIP without the key header) hashed on their call's key",
            |l| l.followed.load(Relaxed),
        ),
    ];
    for (name, kind, help, get) in per_group {
        header(&mut out, name, kind, help);
        for (g, l) in &linked {
            let _ = writeln!(out, "{name}{{group=\"{}\"}} {}", esc(g), get(l));
        }
    }
    header(
        &mut out,
        "hepstack_relay_leg_links_evicted_total",
        "counter",
        "B-leg links dropped: full (least recently used link pushed out by a new one), idle (unused for leg_link_idle_secs)",
    );
    for (g, l) in &linked {
        for (reason, n) in [("full", &l.evicted_full), ("idle", &l.evicted_idle)] {
            let _ = writeln!(
                out,
                "hepstack_relay_leg_links_evicted_total{{group=\"{}\",reason=\"{reason}\"}} {}",
                esc(g),
                n.load(Relaxed)
            );
        }
    }
    header(
        &mut out,
        "hepstack_relay_reloads_total",
        "counter",
        "configuration reloads (result ok or error)",
    );
    let _ = writeln!(
        out,
        "hepstack_relay_reloads_total{{result=\"ok\"}} {}",
        c.reloads.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "hepstack_relay_reloads_total{{result=\"error\"}} {}",
        c.reload_failures.load(Relaxed)
    );
    out
}
