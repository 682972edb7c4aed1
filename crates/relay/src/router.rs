//! Rules compiled against destinations: [`Plan`] is the validated configuration (what
//! `--check` prints), [`Router`] the live version holding running destinations, which routes
//! each packet.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::{AuthKey, Transport};
use sender::Target;

use crate::config::{
    ConfigError, DestinationConfig, GroupConfig, RewriteConfig, RoutingConfig, MAX_DESTINATIONS,
};
use crate::destination::{parse_target, Destination, Packet};
use crate::hash::{Rendezvous, MAX_MEMBERS};
use crate::legs::LegLinks;
use crate::matcher::{Matcher, PacketCtx, SIP};
use crate::metrics::RelayCounters;

/// A rule after validation: names resolved to indices.
#[derive(Clone, Debug)]
pub(crate) struct PlannedRule {
    pub(crate) name: String,
    pub(crate) matcher: Matcher,
    pub(crate) rewrite: Option<RewriteConfig>,
    pub(crate) forward: Vec<usize>,
    pub(crate) balance: Option<usize>,
    pub(crate) drop: bool,
    pub(crate) cont: bool,
}

/// A balance group after validation.
#[derive(Clone, Debug)]
pub(crate) struct PlannedGroup {
    pub(crate) name: String,
    pub(crate) members: Vec<usize>,
    pub(crate) key_header: Option<String>,
    pub(crate) failover: bool,
    /// Most B-leg links remembered; 0 when the group learns none (no `key_header`, or off).
    pub(crate) leg_links: usize,
    /// How long an unused B-leg link is kept.
    pub(crate) leg_link_idle: Duration,
}

/// A validated routing configuration; no thread or socket exists yet.
#[derive(Clone, Debug)]
pub struct Plan {
    pub(crate) destinations: Vec<(String, DestinationConfig, Target)>,
    pub(crate) groups: Vec<PlannedGroup>,
    pub(crate) rules: Vec<PlannedRule>,
    pub(crate) convert_legacy: bool,
    pub(crate) max_inflated: usize,
}

impl Plan {
    /// Validates `cfg`: URLs, names referenced by rules and groups, match values.
    pub fn compile(cfg: &RoutingConfig) -> Result<Plan, ConfigError> {
        if cfg.destinations.len() > MAX_DESTINATIONS {
            return Err(ConfigError::TooManyDestinations(cfg.destinations.len()));
        }
        let mut destinations = Vec::new();
        let mut index = BTreeMap::new();
        for (name, d) in &cfg.destinations {
            let target = parse_target(name, d)?;
            index.insert(name.clone(), destinations.len());
            destinations.push((name.clone(), d.clone(), target));
        }
        let dest = |place: &str, name: &str| {
            index
                .get(name)
                .copied()
                .ok_or_else(|| ConfigError::UnknownDestination {
                    place: place.into(),
                    name: name.into(),
                })
        };
        let mut groups = Vec::new();
        let mut group_index = BTreeMap::new();
        for (name, g) in &cfg.groups {
            let place = format!("group {name:?}");
            if g.members.is_empty() {
                return Err(ConfigError::EmptyGroup(name.clone()));
            }
            if g.members.len() > MAX_MEMBERS {
                return Err(ConfigError::BadMatch {
                    place,
                    why: format!("at most {MAX_MEMBERS} members"),
                });
            }
            let mut members = Vec::new();
            for m in &g.members {
                let i = dest(&place, m)?;
                if members.contains(&i) {
                    return Err(ConfigError::BadMatch {
                        place,
                        why: format!("member {m:?} listed twice"),
                    });
                }
                members.push(i);
            }
            let key_header = g.key_header.clone().filter(|h| !h.is_empty());
            group_index.insert(name.clone(), groups.len());
            groups.push(PlannedGroup {
                name: name.clone(),
                members,
                leg_links: if key_header.is_some() {
                    g.leg_links.unwrap_or(GroupConfig::DEFAULT_LEG_LINKS)
                } else {
                    0
                },
                leg_link_idle: Duration::from_secs(
                    g.leg_link_idle_secs
                        .unwrap_or(GroupConfig::DEFAULT_LEG_LINK_IDLE_SECS),
                ),
                key_header,
                failover: g.failover.unwrap_or(true),
            });
        }
        let mut rules = Vec::new();
        for (n, r) in cfg.rules.iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("rule{}", n + 1));
            let place = format!("rule {name:?}");
            let matcher = Matcher::compile(&place, &r.matches)?;
            let forward = r
                .forward
                .iter()
                .map(|d| dest(&place, d))
                .collect::<Result<Vec<_>, _>>()?;
            let balance =
                match &r.balance {
                    Some(g) => Some(group_index.get(g).copied().ok_or_else(|| {
                        ConfigError::UnknownGroup {
                            place: place.clone(),
                            name: g.clone(),
                        }
                    })?),
                    None => None,
                };
            let rewrite = (!r.rewrite.is_empty()).then(|| r.rewrite.clone());
            if !r.drop
                && forward.is_empty()
                && balance.is_none()
                && !(rewrite.is_some() && r.continue_)
            {
                return Err(ConfigError::NoAction(place));
            }
            rules.push(PlannedRule {
                name,
                matcher,
                rewrite,
                forward,
                balance,
                drop: r.drop,
                cont: r.continue_,
            });
        }
        Ok(Plan {
            destinations,
            groups,
            rules,
            convert_legacy: cfg.convert_legacy,
            max_inflated: cfg.max_inflated_bytes,
        })
    }

    /// A human-readable description of the resolved rules, destinations and groups, with the
    /// share of calls each group member can expect (from 100,000 synthetic Call-IDs).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "destinations:");
        for (name, d, target) in &self.destinations {
            let _ = writeln!(
                out,
                "  {name}: {target} (queue {}, batch {})",
                d.queue_capacity, d.batch_size
            );
        }
        if !self.groups.is_empty() {
            let _ = writeln!(out, "groups:");
        }
        for g in &self.groups {
            let names: Vec<&str> = g
                .members
                .iter()
                .map(|&i| self.destinations[i].0.as_str())
                .collect();
            let share = Rendezvous::new(&names).expected_share(100_000);
            let _ = writeln!(
                out,
                "  {}: rendezvous hashing on {}, failover {}",
                g.name,
                g.key_header
                    .as_deref()
                    .map_or("Call-ID / correlation id".to_string(), |h| format!(
                        "{h} (else Call-ID) / correlation id"
                    )),
                if g.failover { "on" } else { "off" }
            );
            if g.leg_links > 0 {
                let _ = writeln!(
                    out,
                    "    B-leg links: up to {} kept {} s unused (reports and logs of a leg \
                     follow its call)",
                    g.leg_links,
                    g.leg_link_idle.as_secs()
                );
            }
            for (n, s) in names.iter().zip(share) {
                let _ = writeln!(out, "    {n}: {:.1} % of calls", s * 100.0);
            }
        }
        let _ = writeln!(out, "rules (in order):");
        for (i, r) in self.rules.iter().enumerate() {
            let mut actions = Vec::new();
            if let Some(rw) = &r.rewrite {
                actions.push(format!("rewrite {}", describe_rewrite(rw)));
            }
            if !r.forward.is_empty() {
                let names: Vec<&str> = r
                    .forward
                    .iter()
                    .map(|&d| self.destinations[d].0.as_str())
                    .collect();
                actions.push(format!("forward to {}", names.join(", ")));
            }
            if let Some(g) = r.balance {
                actions.push(format!("balance over {}", self.groups[g].name));
            }
            if r.drop {
                actions.push("drop".into());
            }
            let flow = if r.drop {
                "stop"
            } else if r.cont {
                "continue"
            } else {
                "stop"
            };
            let _ = writeln!(
                out,
                "  {}. {}: if {} then {}; {}",
                i + 1,
                r.name,
                r.matcher.describe(),
                actions.join(", "),
                flow
            );
        }
        let _ = writeln!(
            out,
            "unmatched packets are not forwarded; HEPv1/v2 {}",
            if self.convert_legacy {
                "are sent as HEPv3"
            } else {
                "are sent as received unless rewritten"
            }
        );
        out
    }
}

fn describe_rewrite(rw: &RewriteConfig) -> String {
    let mut parts = Vec::new();
    if let Some(c) = rw.capture_id {
        parts.push(format!("capture_id={c}"));
    }
    if let Some(n) = &rw.node_name {
        parts.push(format!("node_name={n:?}"));
    }
    if rw.strip_auth_key {
        parts.push("strip auth_key".into());
    }
    if rw.auth_key.is_some() {
        parts.push("auth_key=<set>".into());
    }
    if let Some(h) = &rw.correlation_id_from_header {
        parts.push(format!("correlation_id from {h}"));
    }
    parts.join(" ")
}

/// A live balance group.
pub(crate) struct Group {
    pub(crate) plan: PlannedGroup,
    hrw: Rendezvous,
    /// Packets sent to each member (index as in `plan.members`).
    pub(crate) picks: Vec<AtomicU64>,
    /// Packets sent to another member than their first choice because it was down.
    pub(crate) failovers: AtomicU64,
    /// B-leg → call links (groups with a `key_header` only); kept across reloads.
    pub(crate) links: Option<Arc<LegLinks>>,
}

/// A live rule.
pub(crate) struct Rule {
    pub(crate) plan: PlannedRule,
    pub(crate) matched: AtomicU64,
}

/// The live routing: rules and running destinations.
pub struct Router {
    pub(crate) destinations: Vec<Arc<Destination>>,
    pub(crate) groups: Vec<Group>,
    pub(crate) rules: Vec<Rule>,
    convert_legacy: bool,
    max_inflated: usize,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("destinations", &self.destinations)
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

/// Destinations already running, by name, for reuse across a reload.
pub(crate) type Running = BTreeMap<String, Arc<Destination>>;

/// Leg link tables of the running groups, by group name, for reuse across a reload.
pub(crate) type RunningLinks = BTreeMap<String, Arc<LegLinks>>;

impl Router {
    /// Starts the plan's destinations, reusing those of `running` whose settings did not
    /// change (their queues and connections survive a reload untouched), and the leg links of
    /// groups whose key and limits did not change.
    pub(crate) fn start(
        plan: Plan,
        running: &Running,
        links: &RunningLinks,
    ) -> std::io::Result<Router> {
        let mut destinations = Vec::new();
        for (name, cfg, target) in &plan.destinations {
            match running.get(name) {
                Some(d) if d.config() == cfg => destinations.push(d.clone()),
                _ => destinations.push(Destination::start(name, cfg, target.clone())?),
            }
        }
        let groups = plan
            .groups
            .into_iter()
            .map(|g| {
                let names: Vec<&str> = g.members.iter().map(|&i| destinations[i].name()).collect();
                let links = (g.leg_links > 0).then(|| match links.get(&g.name) {
                    Some(l) if l.has_limits(g.leg_links, g.leg_link_idle) => l.clone(),
                    _ => Arc::new(LegLinks::new(g.leg_links, g.leg_link_idle)),
                });
                Group {
                    hrw: Rendezvous::new(&names),
                    picks: g.members.iter().map(|_| AtomicU64::new(0)).collect(),
                    failovers: AtomicU64::new(0),
                    links,
                    plan: g,
                }
            })
            .collect();
        Ok(Router {
            destinations,
            groups,
            rules: plan
                .rules
                .into_iter()
                .map(|plan| Rule {
                    plan,
                    matched: AtomicU64::new(0),
                })
                .collect(),
            convert_legacy: plan.convert_legacy,
            max_inflated: plan.max_inflated,
        })
    }

    /// A router with nothing configured (what remains after shutdown).
    pub(crate) fn empty() -> Router {
        Router {
            destinations: Vec::new(),
            groups: Vec::new(),
            rules: Vec::new(),
            convert_legacy: true,
            max_inflated: 0,
        }
    }

    /// The running destinations by name.
    pub(crate) fn running(&self) -> Running {
        self.destinations
            .iter()
            .map(|d| (d.name().to_string(), d.clone()))
            .collect()
    }

    /// The leg link tables by group name. A reload keeps a table only for a group whose key
    /// header is unchanged (links learned from another header would be wrong).
    pub(crate) fn running_links(&self, next: &Plan) -> RunningLinks {
        self.groups
            .iter()
            .filter(|g| {
                next.groups
                    .iter()
                    .any(|n| n.name == g.plan.name && n.key_header == g.plan.key_header)
            })
            .filter_map(|g| Some((g.plan.name.clone(), g.links.clone()?)))
            .collect()
    }

    /// Routes one received frame. Never blocks: destinations with a full queue drop (and
    /// count) the copy meant for them.
    pub(crate) fn route(
        &self,
        frame: &[u8],
        transport: Transport,
        auth: Option<&AuthKey>,
        counters: &RelayCounters,
    ) {
        counters.received(transport);
        let packet = match hep::decode(frame) {
            Ok(p) => p,
            Err(_) => {
                counters.invalid.fetch_add(1, Relaxed);
                return;
            }
        };
        if let Some(key) = auth {
            if !key.matches(packet.auth_key) {
                counters.auth_failed.fetch_add(1, Relaxed);
                return;
            }
        }
        let mut ctx = PacketCtx::new(&packet, transport, self.max_inflated);
        let mut out = Outgoing {
            frame,
            legacy: packet.version != 3 && self.convert_legacy,
            message: None,
            wire: None,
            sent: [0; MAX_DESTINATIONS / 64],
            any_sent: false,
        };
        let mut matched = false;
        for rule in &self.rules {
            if !rule.plan.matcher.matches(&mut ctx) {
                continue;
            }
            matched = true;
            rule.matched.fetch_add(1, Relaxed);
            if rule.plan.drop {
                if !out.any_sent {
                    counters.dropped_by_rule.fetch_add(1, Relaxed);
                } else if out.legacy {
                    counters.converted.fetch_add(1, Relaxed);
                }
                return;
            }
            if let Some(rw) = &rule.plan.rewrite {
                out.rewrite(rw, &mut ctx);
            }
            for &d in &rule.plan.forward {
                self.deliver(d, &mut out, counters);
            }
            if let Some(g) = rule.plan.balance {
                let group = &self.groups[g];
                if let Some(member) = self.pick(group, &mut ctx, &out) {
                    self.deliver(group.plan.members[member], &mut out, counters);
                }
            }
            if !rule.plan.cont {
                break;
            }
        }
        if !matched {
            counters.unmatched.fetch_add(1, Relaxed);
        }
        if out.legacy && out.any_sent {
            counters.converted.fetch_add(1, Relaxed);
        }
    }

    fn deliver(&self, d: usize, out: &mut Outgoing<'_>, counters: &RelayCounters) {
        let (word, bit) = (d / 64, 1u64 << (d % 64));
        if out.sent[word] & bit != 0 {
            return;
        }
        out.sent[word] |= bit;
        let Some(wire) = out.wire(counters) else {
            return;
        };
        out.any_sent = true;
        self.destinations[d].enqueue(wire);
    }

    /// The member of `group` for this packet: the best-ranked healthy member for its key.
    fn pick(&self, group: &Group, ctx: &mut PacketCtx<'_>, out: &Outgoing<'_>) -> Option<usize> {
        let mut addr = [0u8; 36];
        let owned = balance_key(group, ctx, out);
        let key: &[u8] = match &owned {
            Some(k) => k.as_slice(),
            None => address_key(ctx.packet, &mut addr),
        };
        let first = group.hrw.first(key)?;
        Some(self.pick_for(group, key, first))
    }

    fn pick_for(&self, group: &Group, key: &[u8], first: usize) -> usize {
        let healthy = |i: usize| {
            self.destinations[group.plan.members[i]]
                .stats()
                .is_healthy()
        };
        let chosen = if group.plan.failover && !healthy(first) {
            // Everyone down: keep the first choice (its queue holds the packets until it
            // returns or fills up).
            group.hrw.pick(key, healthy).unwrap_or(first)
        } else {
            first
        };
        if chosen != first {
            group.failovers.fetch_add(1, Relaxed);
        }
        group.picks[chosen].fetch_add(1, Relaxed);
        chosen
    }
}

/// The balancing key: for SIP the group's header (if set and present) else the Call-ID; for
/// everything else (and SIP without those) the correlation id as it will be sent. A Call-ID or
/// correlation id that is a linked B-leg gives way to its call's key; SIP carrying both the
/// header and a Call-ID teaches the link.
fn balance_key(group: &Group, ctx: &mut PacketCtx<'_>, out: &Outgoing<'_>) -> Option<Vec<u8>> {
    let links = group.links.as_deref();
    let follow = |id: &[u8]| {
        links
            .and_then(|l| l.resolve(id, Instant::now()))
            .unwrap_or_else(|| id.to_vec())
    };
    if ctx.packet.proto_type == Some(SIP) {
        if let Some(sip) = ctx.sip() {
            let from_header = group.plan.key_header.as_deref().and_then(|h| sip.header(h));
            let call_id = sip.call_id();
            match (from_header, call_id) {
                (Some(key), Some(leg)) => {
                    if let Some(l) = links {
                        l.learn(leg, key, Instant::now());
                    }
                    return Some(key.to_vec());
                }
                (Some(key), None) => return Some(key.to_vec()),
                (None, Some(leg)) => return Some(follow(leg)),
                (None, None) => {}
            }
        }
    }
    let correlation = match &out.message {
        Some(m) => m.correlation_id.as_deref(),
        None => ctx.packet.correlation_id,
    };
    correlation.filter(|c| !c.is_empty()).map(follow)
}

/// Key of a packet without Call-ID or correlation id: its address pair, ordered so that both
/// directions of a flow give the same key.
fn address_key<'b>(p: &hep::HepPacket<'_>, buf: &'b mut [u8; 36]) -> &'b [u8] {
    fn put(ip: Option<IpAddr>, port: Option<u16>, out: &mut [u8]) {
        let octets = match ip {
            Some(IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
            Some(IpAddr::V6(v6)) => v6.octets(),
            None => [0; 16],
        };
        out[..16].copy_from_slice(&octets);
        out[16..18].copy_from_slice(&port.unwrap_or(0).to_be_bytes());
    }
    let mut a = [0u8; 18];
    let mut b = [0u8; 18];
    put(p.src_ip, p.src_port, &mut a);
    put(p.dst_ip, p.dst_port, &mut b);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    buf[..18].copy_from_slice(&lo);
    buf[18..].copy_from_slice(&hi);
    &buf[..]
}

/// The bytes sent for one packet: the frame as received, or re-encoded after rewrites or for
/// conversion to HEPv3; encoded once and shared by every destination.
struct Outgoing<'f> {
    frame: &'f [u8],
    legacy: bool,
    message: Option<hep::HepMessage>,
    wire: Option<Packet>,
    sent: [u64; MAX_DESTINATIONS / 64],
    any_sent: bool,
}

impl Outgoing<'_> {
    fn rewrite(&mut self, rw: &RewriteConfig, ctx: &mut PacketCtx<'_>) {
        let correlation = rw
            .correlation_id_from_header
            .as_deref()
            .and_then(|h| ctx.sip().and_then(|s| s.header(h)).map(<[u8]>::to_vec));
        let msg = self
            .message
            .get_or_insert_with(|| hep::HepMessage::from_packet(ctx.packet));
        if let Some(c) = rw.capture_id {
            msg.capture_id = Some(c);
        }
        if let Some(n) = &rw.node_name {
            msg.node_name = Some(n.as_bytes().to_vec());
        }
        if rw.strip_auth_key {
            msg.auth_key = None;
        }
        if let Some(k) = &rw.auth_key {
            msg.auth_key = Some(k.as_bytes().to_vec());
        }
        if let Some(c) = correlation {
            msg.correlation_id = Some(c);
        }
        self.wire = None;
    }

    fn wire(&mut self, counters: &RelayCounters) -> Option<Packet> {
        if let Some(w) = &self.wire {
            return Some(w.clone());
        }
        let encoded = match (&self.message, self.legacy) {
            (Some(m), _) => encode(m, counters)?,
            (None, true) => {
                let packet = hep::decode(self.frame).ok()?;
                encode(&hep::HepMessage::from_packet(&packet), counters)?
            }
            (None, false) => Packet::from(self.frame),
        };
        self.wire = Some(encoded.clone());
        Some(encoded)
    }
}

fn encode(m: &hep::HepMessage, counters: &RelayCounters) -> Option<Packet> {
    match m.encode_to_vec() {
        Ok(v) => Some(Packet::from(v)),
        Err(e) => {
            tracing::debug!(error = %e, "re-encoding failed; packet not forwarded");
            counters.encode_errors.fetch_add(1, Relaxed);
            None
        }
    }
}
