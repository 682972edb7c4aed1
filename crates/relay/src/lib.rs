//! The HEP relay ("HEP switch"): receives HEP v1/v2/v3 through the collector's listeners and
//! routes every packet by ordered rules to destinations over UDP, TCP or TLS.
//!
//! # Model
//!
//! * **Destinations** (`[destinations.NAME]`, `url = "udp://10.0.0.5:9060"`): each has a bounded
//!   queue and its own worker thread with a [`sender::HepSender`] (UDP `sendmmsg`, TCP/TLS
//!   with reconnect and exponential backoff). Receive threads only `try_send` into queues, so
//!   a slow or dead destination drops (and counts) its own copies and never holds up the
//!   others.
//! * **Groups** (`[groups.NAME]`, `members = [...]`): rendezvous hashing of the correlation key
//!   — the Call-ID for SIP (or a configured header such as `X-CID`), the HEP correlation id
//!   (chunk 0x0011) for RTCP, logs and the rest — so a call, its RTCP and its logs reach the
//!   same member. When that member is down the packet goes to the next member of the key's
//!   ranking; a member leaving moves only its own calls. A group keyed by a SIP header
//!   (`X-CID`) learns from the SIP that passes which call each B-leg Call-ID belongs to
//!   (bounded, expiring, evictions counted) so the B-leg's reports and logs follow the call.
//! * **Rules** (`[[rules]]`), in order: `match` (HEP type, capture id, node, source/destination
//!   IP or CIDR and port, transport, HEP version, auth key, and SIP method/status — SIP is
//!   only parsed for rules that ask for it), then `rewrite` (capture id, node name, auth key
//!   set/strip, correlation id from a SIP header), `forward` (fan-out copies), `balance`
//!   (one group member) or `drop`; evaluation stops at the first match unless
//!   `continue = true`. A copy carries the rewrites of every rule matched up to the rule that
//!   sends it. Unmatched packets are not forwarded.
//! * HEPv1/v2 packets are sent on as HEPv3 (`convert_legacy`, default on); packets that are
//!   neither rewritten nor converted are forwarded byte for byte.
//!
//! [`Relay::start`] starts a routing; the relay is an [`ingest::PacketHandler`], handed to
//! [`ingest::start_listeners`] (`hepstack relay`) or to the collector as a tap
//! (HEP mirroring from `hepstack serve`). [`Relay::reload`] swaps the rules (SIGHUP) keeping
//! unchanged destinations with their queues; [`Relay::shutdown`] drains.
//!
//! Metrics ([`Relay::render_metrics`]): `hepstack_relay_received_total{transport}`,
//! `hepstack_relay_packets_total{outcome}`, `hepstack_relay_rule_matches_total{rule}`,
//! `hepstack_relay_forwarded_total{destination}`, `hepstack_relay_forwarded_bytes_total`,
//! `hepstack_relay_dropped_total{destination,reason}`, `hepstack_relay_queue_depth`,
//! `hepstack_relay_queue_capacity`, `hepstack_relay_reconnects_total`,
//! `hepstack_relay_connect_failures_total`, `hepstack_relay_destination_up`,
//! `hepstack_relay_balanced_total{group,member}`, `hepstack_relay_failovers_total{group}`,
//! `hepstack_relay_leg_links{group}`, `hepstack_relay_leg_links_learned_total{group}`,
//! `hepstack_relay_leg_links_followed_total{group}`,
//! `hepstack_relay_leg_links_evicted_total{group,reason}`,
//! `hepstack_relay_reloads_total{result}`.

#![warn(missing_docs)]

mod config;
mod destination;
mod hash;
mod legs;
mod matcher;
mod metrics;
mod relay;
mod router;

pub use config::{
    ConfigError, DestinationConfig, GroupConfig, HepTypeSpec, MatchConfig, RelayConfig,
    RewriteConfig, RoutingConfig, RuleConfig, MAX_DESTINATIONS,
};
pub use destination::{Destination, DestinationStats, Packet};
pub use hash::{Rendezvous, MAX_MEMBERS};
pub use matcher::{hep_type_from_name, SipView};
pub use metrics::RelayCounters;
pub use relay::{DestinationStatus, Relay, RelayError};
pub use router::Plan;
