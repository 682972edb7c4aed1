//! SIP KPIs for hepstack: RFC 6076 end-to-end performance metrics from in-stream transaction
//! and dialog tracking, SIP request/response counters with retransmissions apart, HEP records
//! by type, voice quality from RTCP / RTCP-XR / X-RTP-Stat / vq-rtcpxr, and their Prometheus
//! text rendering and JSON views.
//!
//! Pure: no I/O, no tokio, no HTTP, no SQL. The collector feeds batches through a [`Feeder`]
//! (SIP messages wait `reorder_window_ms` in a reorder buffer and are tracked in receive order,
//! whichever writer thread stored them first); an ordered source may call
//! [`Kpi::observe_sip`], [`Kpi::observe_qos`] and [`Kpi::observe_hep`] directly. `/metrics`
//! calls [`Kpi::render_prometheus`]; the API calls [`Kpi::snapshot`] and [`Kpi::series`].
//!
//! # What is tracked
//!
//! * A **transaction** is keyed by node, Call-ID, top-Via branch, CSeq number and method, and
//!   the UAC and UAS socket addresses (a response travels UAS → UAC). The same request again
//!   is a retransmission, or a *duplicate* when it comes within `duplicate_window_ms` (a
//!   second capture point; Kamailio traces some ACKs twice 54 µs apart). A response code seen
//!   before on the transaction is a retransmission (or duplicate) too. Each proxy hop is its
//!   own leg: a proxy's downstream INVITE has its own branch and addresses.
//! * A **session attempt** (call leg) is keyed by node, Call-ID and the unordered address pair;
//!   an INVITE retried after 401/407 continues the same attempt, re-INVITEs (To tag) do not
//!   start one. A **registration attempt** is keyed by node, Call-ID and the UAC → registrar
//!   addresses; the REGISTER retried after a challenge continues it.
//! * Every count goes to **scopes**: the node (`target="any"`, `direction="any"`) and each
//!   configured target group that contains the UAS (`direction="in"`) or the UAC
//!   (`direction="out"`).
//! * Memory is bounded by `max_transactions`, `max_sessions`, `max_registrations`, `max_nodes`
//!   and `history_minutes`; timeouts run on packet time (HEP capture time), advanced by idle
//!   wall-clock time ([`Kpi::tick`]), swept once per second.
//!
//! # RFC 6076 definitions (as implemented)
//!
//! * **RRD** (§4.1) Registration Request Delay = time of the final response − time of the
//!   first REGISTER of the attempt (a 401/407 challenge round trip is included).
//!   `hepstack_kpi_rrd_seconds{outcome="success"|"failure"}`.
//! * **IRA** (§4.2) Ineffective Registration Attempts % = ineffective / all registration
//!   attempts × 100, ineffective = final 4xx other than 401, 402, 407, or 5xx, 6xx, or no
//!   final response before Timer F (`transaction_timeout_ms`).
//! * **SRD** (§4.3) Session Request Delay: successful setup = INVITE → first non-100
//!   provisional or 2xx; failed setup = INVITE → 4xx/5xx/6xx failure (401/407 challenges are
//!   not the end of the request; 3xx is neither).
//! * **SDD** (§4.4) Session Disconnect Delay = time of the BYE's final response (or of its
//!   timeout) − time of the BYE.
//! * **SDT** (§4.5) Session Duration Time = time of the BYE − time of the 2xx to the INVITE.
//! * **SER** (§4.6) = INVITEs answered 2xx / (INVITEs − INVITEs answered 3xx) × 100.
//! * **SEER** (§4.7) = INVITEs answered 200, 480, 486, 600 or 603 / (INVITEs − 3xx) × 100.
//! * **ISA** (§4.8) = INVITEs answered 408, 500, 503 or 504 / INVITEs × 100; an INVITE with no
//!   final response at all (the wire view of Timer B, which makes a UAC synthesise a 408) is
//!   counted as ineffective too (`outcome="timeout"`).
//! * **SCR** (§4.9) = successfully completed sessions / session requests × 100, both counted
//!   when the session ends: completed = established (2xx) and closed by a BYE answered 2xx;
//!   failed setups, BYEs failing or timing out and dialogs idle past
//!   `dialog_idle_timeout_secs` are not completed.
//!
//! Ratios are reported as gauges over a sliding window of whole minutes (`window_secs`) and
//! as counters of their numerator and denominator events, so PromQL can compute them over
//! any range: `SER = increase(outcomes{outcome="success"}) / (increase(attempts) −
//! increase(outcomes{outcome="redirect"}))`.

#![warn(missing_docs)]

pub mod config;
mod engine;
mod expiry;
pub mod qos;
mod render;
mod reorder;
mod snapshot;
pub mod stats;
pub mod target;

pub use config::{KpiConfig, KpiConfigError, TargetGroup};
pub use engine::{Direction, Feeder, Kpi, ScopeKey, SipEvent, TrackerCounters};
pub use qos::{QosSample, QosSource};
pub use render::escape_label;
pub use snapshot::{Figures, ScopeSnapshot, Series, SeriesPoint, SeriesQuery, Snapshot, Totals};
