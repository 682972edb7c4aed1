//! The relay configuration: named destinations, balance groups and the ordered rules. The same
//! [`RoutingConfig`] is the `[forward]` section of `hepstack serve` and the routing part of a
//! `hepstack relay` file ([`RelayConfig`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most destinations one configuration may name (bounds the metric labels and lets a packet's
/// delivery set be a fixed-size bit set).
pub const MAX_DESTINATIONS: usize = 256;

/// Destinations, groups and rules: everything that decides where a packet goes.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Named destinations (`[destinations.NAME]`). Names appear in rules, groups and metric
    /// labels.
    pub destinations: BTreeMap<String, DestinationConfig>,
    /// Named balance groups (`[groups.NAME]`): destinations over which calls are spread by
    /// consistent hashing of the correlation key.
    pub groups: BTreeMap<String, GroupConfig>,
    /// Rules, evaluated in order for every packet (`[[rules]]`). Empty: nothing is forwarded.
    pub rules: Vec<RuleConfig>,
    /// Send HEPv1/v2 packets on as HEPv3 (the usual need: modern collectors speak HEPv3
    /// only). When false they are forwarded as received unless a rule rewrites them.
    pub convert_legacy: bool,
    /// Most bytes a compressed payload (chunk 0x0010) may inflate to when a rule needs the SIP
    /// inside it; larger payloads are treated as not SIP.
    pub max_inflated_bytes: usize,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            destinations: BTreeMap::new(),
            groups: BTreeMap::new(),
            rules: Vec::new(),
            convert_legacy: Self::DEFAULT_CONVERT_LEGACY,
            max_inflated_bytes: Self::DEFAULT_MAX_INFLATED,
        }
    }
}

impl RoutingConfig {
    /// Default of `convert_legacy`.
    pub const DEFAULT_CONVERT_LEGACY: bool = true;
    /// Default of `max_inflated_bytes`.
    pub const DEFAULT_MAX_INFLATED: usize = 1 << 20;

    /// Whether any rule exists (an empty routing forwards nothing: embedded mode is off).
    pub fn is_enabled(&self) -> bool {
        !self.rules.is_empty()
    }
}

/// One place HEP is sent to.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationConfig {
    /// `udp://host:port`, `tcp://host:port` or `tls://host:port`.
    pub url: String,
    /// Packets waiting for this destination, at most; when full, further packets for it are
    /// dropped (counted) so that a slow destination never holds up the others.
    pub queue_capacity: usize,
    /// Packets taken from the queue per send (one `sendmmsg` per 64 on UDP, one write on
    /// TCP/TLS).
    pub batch_size: usize,
    /// TCP/TLS connect (and TLS handshake) timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// First wait before reconnecting a failed TCP/TLS connection, doubled per failure,
    /// milliseconds.
    pub reconnect_backoff_ms: u64,
    /// Longest wait between reconnection attempts, milliseconds.
    pub reconnect_backoff_max_ms: u64,
    /// How long a UDP destination counts as down after the kernel reported it unreachable
    /// (ICMP port unreachable), milliseconds; traffic is tried again afterwards.
    pub udp_down_ms: u64,
    /// UDP socket send buffer to ask for, bytes.
    pub udp_send_buffer: usize,
    /// TCP/TLS write buffer, bytes.
    pub write_buffer_bytes: usize,
    /// TLS client settings (`tls://` destinations): CA file, insecure, server name, client
    /// certificate.
    pub tls: sender::TlsOptions,
}

impl Default for DestinationConfig {
    fn default() -> Self {
        DestinationConfig {
            url: String::new(),
            queue_capacity: 65_536,
            batch_size: 256,
            connect_timeout_ms: 2_000,
            reconnect_backoff_ms: 100,
            reconnect_backoff_max_ms: 5_000,
            udp_down_ms: 2_000,
            udp_send_buffer: 4 * 1024 * 1024,
            write_buffer_bytes: 64 * 1024,
            tls: sender::TlsOptions::default(),
        }
    }
}

/// A balance group.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    /// Destination names. Removing one moves only the calls that were on it (rendezvous
    /// hashing).
    pub members: Vec<String>,
    /// SIP header whose value is the key for SIP packets instead of the Call-ID (e.g. `X-CID`
    /// when the B-leg must follow the A-leg). Non-SIP packets always use their correlation id.
    pub key_header: Option<String>,
    /// Send to the next member in the key's ranking when its first choice is down (default
    /// true). When false, packets for a down member wait in its queue (dropped when full).
    pub failover: Option<bool>,
    /// With `key_header`: most B-leg links remembered (default 100000; 0 turns learning off).
    /// A SIP message carrying both a Call-ID and `key_header` links that Call-ID (the B-leg)
    /// to the header's value (the call), so the B-leg's RTCP, reports and logs — whose
    /// correlation id is the B-leg's Call-ID — and its SIP without the header are hashed on
    /// the call's key. When full, the least recently used link is evicted (counted).
    pub leg_links: Option<usize>,
    /// Seconds a B-leg link is kept without any packet of that leg (default 7200).
    pub leg_link_idle_secs: Option<u64>,
}

impl GroupConfig {
    /// Default of `leg_links`.
    pub const DEFAULT_LEG_LINKS: usize = 100_000;
    /// Default of `leg_link_idle_secs`.
    pub const DEFAULT_LEG_LINK_IDLE_SECS: u64 = 7_200;
}

/// One rule: a match, then actions.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    /// Name, for `--check` output and the `rule` metric label (defaults to `rule<N>`).
    pub name: Option<String>,
    /// Conditions; all given ones must hold (an empty match matches everything).
    #[serde(rename = "match")]
    pub matches: MatchConfig,
    /// Chunk rewrites applied to the packet before it is sent by this rule and by every later
    /// rule it continues to.
    pub rewrite: RewriteConfig,
    /// Destinations receiving a copy.
    pub forward: Vec<String>,
    /// Balance group receiving the packet (one member, chosen by the correlation key).
    pub balance: Option<String>,
    /// Stop here and send the packet nowhere (not even where earlier rules sent it: those
    /// copies are only queued once the whole rule list was evaluated).
    pub drop: bool,
    /// Evaluate the following rules too after this one matched (default: stop at the first
    /// match).
    #[serde(rename = "continue")]
    pub continue_: bool,
}

/// Conditions of a rule. Each list matches when the packet's value is one of its entries.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    /// HEP payload types: numbers or names (`sip`, `rtcp`, `rtcp_json`… see
    /// [`crate::hep_type_from_name`]).
    pub hep_type: Vec<HepTypeSpec>,
    /// Capture ids (chunk 0x000c; sngrep's byte-swapped ids are normalised).
    pub capture_id: Vec<u32>,
    /// Node names (chunk 0x0013).
    pub node: Vec<String>,
    /// Source addresses or CIDR networks (`10.0.0.0/8`, `2001:db8::/32`, `10.1.2.3`).
    pub src_ip: Vec<String>,
    /// Destination addresses or networks.
    pub dst_ip: Vec<String>,
    /// Source or destination address in one of these networks.
    pub ip: Vec<String>,
    /// Source ports.
    pub src_port: Vec<u16>,
    /// Destination ports.
    pub dst_port: Vec<u16>,
    /// Transport the packet arrived on: `udp`, `tcp`, `tls`.
    pub transport: Vec<String>,
    /// HEP versions (1, 2, 3).
    pub hep_version: Vec<u8>,
    /// The packet's auth key (chunk 0x000e) equals this.
    pub auth_key: Option<String>,
    /// SIP request methods (case-insensitive); a response matches by its CSeq method. Needs
    /// SIP parsing (only done when some rule asks for it).
    pub sip_method: Vec<String>,
    /// SIP response status: exact codes (`"486"`) or classes (`"4xx"`).
    pub sip_status: Vec<String>,
}

/// A HEP type given as a number or a name.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum HepTypeSpec {
    /// The type number.
    Number(u8),
    /// A name such as `sip` or `rtcp`.
    Name(String),
}

/// Chunk rewrites.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RewriteConfig {
    /// Set the capture id (chunk 0x000c).
    pub capture_id: Option<u32>,
    /// Set the node name (chunk 0x0013).
    pub node_name: Option<String>,
    /// Set the auth key (chunk 0x000e) — the key the next collector expects.
    pub auth_key: Option<String>,
    /// Remove the auth key (applied before `auth_key`).
    pub strip_auth_key: bool,
    /// Set the correlation id (chunk 0x0011) from this SIP header when the packet is SIP and
    /// has it (e.g. `X-CID`, so the B-leg is correlated to the A-leg).
    pub correlation_id_from_header: Option<String>,
}

impl RewriteConfig {
    /// Whether this rewrites anything.
    pub fn is_empty(&self) -> bool {
        self == &RewriteConfig::default()
    }
}

/// The `hepstack relay` configuration file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// HEP over UDP listener (`[udp]`, as `[hep.udp]` of `hepstack serve`).
    pub udp: ingest::UdpConfig,
    /// HEP over TCP listener.
    pub tcp: ingest::TcpConfig,
    /// HEP over TLS listener (off unless addresses are given).
    pub tls: ingest::TlsConfig,
    /// Address of `GET /metrics`; empty disables it.
    pub metrics_listen: String,
    /// Log filter (`tracing` syntax); `RUST_LOG` overrides it.
    pub log_level: String,
    /// Named destinations (as in [`RoutingConfig::destinations`]).
    pub destinations: BTreeMap<String, DestinationConfig>,
    /// Balance groups (as in [`RoutingConfig::groups`]).
    pub groups: BTreeMap<String, GroupConfig>,
    /// Rules (as in [`RoutingConfig::rules`]).
    pub rules: Vec<RuleConfig>,
    /// As [`RoutingConfig::convert_legacy`].
    pub convert_legacy: bool,
    /// As [`RoutingConfig::max_inflated_bytes`].
    pub max_inflated_bytes: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            udp: ingest::UdpConfig::default(),
            tcp: ingest::TcpConfig::default(),
            tls: ingest::TlsConfig::default(),
            metrics_listen: "0.0.0.0:9097".into(),
            log_level: "info".into(),
            destinations: BTreeMap::new(),
            groups: BTreeMap::new(),
            rules: Vec::new(),
            convert_legacy: RoutingConfig::DEFAULT_CONVERT_LEGACY,
            max_inflated_bytes: RoutingConfig::DEFAULT_MAX_INFLATED,
        }
    }
}

impl RelayConfig {
    /// The routing part.
    pub fn routing(&self) -> RoutingConfig {
        RoutingConfig {
            destinations: self.destinations.clone(),
            groups: self.groups.clone(),
            rules: self.rules.clone(),
            convert_legacy: self.convert_legacy,
            max_inflated_bytes: self.max_inflated_bytes,
        }
    }
}

/// A configuration the relay cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A destination URL does not parse.
    #[error("destination {name:?}: {why}")]
    Destination {
        /// Destination name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A rule or group names a destination that is not defined.
    #[error("{place}: unknown destination {name:?}")]
    UnknownDestination {
        /// Where it was named.
        place: String,
        /// The name.
        name: String,
    },
    /// A rule names a group that is not defined.
    #[error("{place}: unknown balance group {name:?}")]
    UnknownGroup {
        /// Where it was named.
        place: String,
        /// The name.
        name: String,
    },
    /// A group has no members.
    #[error("group {0:?} has no members")]
    EmptyGroup(String),
    /// A match value is invalid.
    #[error("{place}: {why}")]
    BadMatch {
        /// The rule.
        place: String,
        /// What is wrong.
        why: String,
    },
    /// Too many destinations.
    #[error("{0} destinations; at most {MAX_DESTINATIONS} are supported")]
    TooManyDestinations(usize),
    /// A rule has no action.
    #[error("{0}: no action (forward, balance, drop or rewrite with continue)")]
    NoAction(String),
}
