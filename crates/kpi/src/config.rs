//! The `[kpi]` configuration section.

use serde::{Deserialize, Serialize};

use crate::target::{AddrPattern, TargetError};

/// KPI engine settings. Times are measured on packet (HEP capture) time, not wall-clock time,
/// so replayed traffic gives the same figures as live traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiConfig {
    /// Compute KPIs and QoS metrics at all. Default true.
    pub enabled: bool,
    /// Length of the sliding window behind the `*_percent` gauges and the QoS averages, seconds
    /// (rounded up to whole minutes: the window is made of one-minute buckets). Default 300.
    pub window_secs: u64,
    /// A transaction with no final response is given up after this long (RFC 3261 Timer B /
    /// Timer F = 64·T1 = 32 s): the INVITE or REGISTER counts as timed out. Default 32000.
    pub transaction_timeout_ms: u64,
    /// An INVITE transaction that received a provisional response may wait this long for its
    /// final response (RFC 3261 Timer C is > 3 min). Default 300000.
    pub proceeding_timeout_ms: u64,
    /// An established dialog with no request for this long is forgotten (counted as ended but
    /// not completed). Default 7200 (2 h; session timers refresh far more often).
    pub dialog_idle_timeout_secs: u64,
    /// The same message seen again within this interval is a duplicate (a second capture
    /// point, or a producer tracing it twice), not a retransmission. RFC 3261 retransmits after
    /// T1 = 500 ms at the earliest. Default 20.
    pub duplicate_window_ms: u64,
    /// Most transactions tracked at once; a new one beyond it takes the place of the oldest,
    /// which is forgotten and counted (`hepstack_kpi_tracking_overflow_total`). Default 200000.
    pub max_transactions: usize,
    /// Most call legs (INVITE sessions) tracked at once; beyond it, like `max_transactions`.
    /// Default 200000.
    pub max_sessions: usize,
    /// Most registration attempts tracked at once; beyond it, like `max_transactions`.
    /// Default 100000.
    pub max_registrations: usize,
    /// Most distinct `node` label values; further nodes are reported as `other`. Default 64.
    pub max_nodes: usize,
    /// Minutes of per-minute history kept for the UI's time series (`/api/v1/kpi/series`).
    /// Default 1440 (one day).
    pub history_minutes: usize,
    /// RTP clock rate assumed for RTCP jitter (RTCP does not carry the codec), Hz. Default 8000.
    pub rtp_clock_rate_hz: u32,
    /// SIP messages wait this long (wall-clock time after they were received) before they are
    /// tracked, so that batches stored by parallel writer threads are tracked in the order
    /// they were received: a 200 OK tracked before its INVITE would match nothing. Must exceed
    /// the time one batch takes to store; KPIs lag by this much. 0 tracks messages as their
    /// batch is stored (exact only with one writer thread). Default 1000.
    pub reorder_window_ms: u64,
    /// Most SIP messages waiting in the reorder buffer (~200 B each); beyond it the oldest
    /// are tracked early. Default 500000.
    pub reorder_max_events: usize,
    /// Most records waiting for the engine's thread (~250 B each). The collector never waits
    /// for the engine: past this, records are shed and counted
    /// (`hepstack_output_dropped_total{output="kpi",reason="queue_full"}`). Default 262144.
    pub queue_capacity: usize,
    /// Target groups: KPIs are reported per group and direction besides per node.
    pub targets: Vec<TargetGroup>,
}

impl Default for KpiConfig {
    fn default() -> Self {
        KpiConfig {
            enabled: true,
            window_secs: 300,
            transaction_timeout_ms: 32_000,
            proceeding_timeout_ms: 300_000,
            dialog_idle_timeout_secs: 7200,
            duplicate_window_ms: 20,
            max_transactions: 200_000,
            max_sessions: 200_000,
            max_registrations: 100_000,
            max_nodes: 64,
            history_minutes: 1440,
            rtp_clock_rate_hz: 8000,
            reorder_window_ms: 1000,
            reorder_max_events: 500_000,
            queue_capacity: 262_144,
            targets: Vec::new(),
        }
    }
}

/// A named group of addresses (a carrier, an SBC pool, a PBX): `direction="in"` counts
/// transactions whose server (UAS side) is in the group, `direction="out"` those whose client
/// (UAC side) is in the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// Label value (`target="…"`); must not be `any` or `other`.
    pub name: String,
    /// Addresses: `10.0.0.1`, `10.0.0.0/24`, `2001:db8::/32`, `10.0.0.1:5060`, `[2001:db8::1]:5060`.
    pub addresses: Vec<String>,
}

/// Why a `[kpi]` section is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KpiConfigError {
    /// A target address does not parse.
    #[error("kpi target {group:?}: {source}")]
    Address {
        /// Group name.
        group: String,
        /// Parse error.
        source: TargetError,
    },
    /// A target name is empty, reserved or repeated.
    #[error("kpi target name {0:?} is empty, reserved (any, other) or used twice")]
    BadName(String),
    /// A numeric setting is zero or out of range.
    #[error("kpi setting {0} must be positive")]
    Zero(&'static str),
}

impl KpiConfig {
    /// Checks the settings and parses the target addresses.
    pub fn validate(&self) -> Result<Vec<(String, Vec<AddrPattern>)>, KpiConfigError> {
        for (name, v) in [
            ("window_secs", self.window_secs),
            ("transaction_timeout_ms", self.transaction_timeout_ms),
            ("proceeding_timeout_ms", self.proceeding_timeout_ms),
            ("dialog_idle_timeout_secs", self.dialog_idle_timeout_secs),
            ("max_transactions", self.max_transactions as u64),
            ("max_sessions", self.max_sessions as u64),
            ("max_registrations", self.max_registrations as u64),
            ("max_nodes", self.max_nodes as u64),
            ("history_minutes", self.history_minutes as u64),
            ("rtp_clock_rate_hz", u64::from(self.rtp_clock_rate_hz)),
            ("reorder_max_events", self.reorder_max_events as u64),
            ("queue_capacity", self.queue_capacity as u64),
        ] {
            if v == 0 {
                return Err(KpiConfigError::Zero(name));
            }
        }
        let mut out: Vec<(String, Vec<AddrPattern>)> = Vec::new();
        for g in &self.targets {
            let reserved = g.name.is_empty() || g.name == "any" || g.name == "other";
            if reserved || out.iter().any(|(n, _)| *n == g.name) {
                return Err(KpiConfigError::BadName(g.name.clone()));
            }
            let mut pats = Vec::with_capacity(g.addresses.len());
            for a in &g.addresses {
                pats.push(
                    a.parse::<AddrPattern>()
                        .map_err(|source| KpiConfigError::Address {
                            group: g.name.clone(),
                            source,
                        })?,
                );
            }
            out.push((g.name.clone(), pats));
        }
        Ok(out)
    }
}
