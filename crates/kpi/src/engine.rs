//! The tracker: transactions, INVITE sessions (call legs) and registration attempts, keyed by
//! node, Call-ID, top Via branch, CSeq and the UAC/UAS socket addresses, with every count
//! attributed to its scopes. Bounded: caps on every map (a full table makes room by expiring
//! or evicting its oldest item), timeouts on packet time, found in time order through
//! [`TimeQueue`]s once per second of packet time: the cost per message does not depend on how
//! many items are tracked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use smallvec::{smallvec, SmallVec};
use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3};

use crate::config::{KpiConfig, KpiConfigError};
use crate::expiry::TimeQueue;
use crate::qos::{QosSample, QosSource};
use crate::reorder::{PendingQos, Released, ReorderBuffer};
use crate::stats::{
    history_bucket, method_index, Bucket, Outcome, RegOutcome, ScopeStats, SmallKeyHash,
};
use crate::target::AddrPattern;

/// One SIP message, as the collector saw it.
#[derive(Debug, Clone, Copy)]
pub struct SipEvent<'a> {
    /// Capture time (HEP), µs since the epoch.
    pub time_us: i64,
    /// When the collector received it, µs since the epoch (advances the clock while idle).
    pub received_us: i64,
    /// Capture node name.
    pub node: &'a str,
    /// Source of the packet.
    pub src: SocketAddr,
    /// Destination of the packet.
    pub dst: SocketAddr,
    /// Request method, or `None` for a response.
    pub method: Option<&'a str>,
    /// Status code of a response.
    pub status: Option<u16>,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq_num: u32,
    /// CSeq method.
    pub cseq_method: &'a str,
    /// Branch of the top Via.
    pub via_branch: Option<&'a str>,
    /// To tag (present on in-dialog requests).
    pub to_tag: Option<&'a str>,
}

/// Direction of a scope relative to its target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Not split by direction.
    Any,
    /// Requests into the group (the group is the UAS).
    In,
    /// Requests out of the group (the group is the UAC).
    Out,
}

impl Direction {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Any => "any",
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Identity of a scope: node index, target index (0 = `any`), direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey {
    /// Index into the node names (`u16::MAX` = `other`).
    pub node: u16,
    /// 0 = all traffic of the node; i = target group i-1.
    pub target: u16,
    /// Direction.
    pub direction: Direction,
}

const NODE_OTHER: u16 = u16::MAX;

/// The scopes one message, transaction, session or report counts in: the node's, plus one per
/// matching target group and direction. Inline up to four (a node and one or two groups, the
/// usual case), so tracking a transaction allocates nothing for them.
type Scopes = SmallVec<[ScopeKey; 4]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnKind {
    InitialInvite,
    Register,
    Bye,
    Other,
}

#[derive(Debug)]
struct Txn {
    scopes: Scopes,
    kind: TxnKind,
    link: u64,
    last_us: i64,
    last_req_us: i64,
    last_resp_us: i64,
    /// The response codes seen (retransmissions are told apart by them); few per transaction.
    codes: SmallVec<[u16; 4]>,
    provisional: bool,
    final_code: Option<u16>,
    /// Deadline of the item that stands for this transaction in `txn_queue`.
    queued: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    Setup,
    Challenged,
    Established,
    Closing,
}

#[derive(Debug)]
struct Session {
    scopes: Scopes,
    state: SessionState,
    invite_us: i64,
    first_response: bool,
    established_us: i64,
    bye_us: i64,
    last_us: i64,
    last_code: u16,
    /// Its key in `sessions_by_ips`, pruned after the session ends.
    ikey: u64,
    /// Deadline of the item that stands for this session in `session_queue`.
    queued: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegState {
    Pending,
    Challenged,
}

#[derive(Debug)]
struct Registration {
    scopes: Scopes,
    state: RegState,
    start_us: i64,
    last_us: i64,
    /// Deadline of the item that stands for this attempt in `reg_queue`.
    queued: i64,
}

/// Counters of the tracker itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrackerCounters {
    /// Messages seen twice within the duplicate window.
    pub duplicates: u64,
    /// Transactions forgotten before their timeout (the oldest first) to make room for a new
    /// one while `max_transactions` were tracked.
    pub overflow_transactions: u64,
    /// Sessions forgotten before their timeout (the oldest first) to make room for a new one
    /// while `max_sessions` were tracked.
    pub overflow_sessions: u64,
    /// Registration attempts forgotten before their timeout (the oldest first) to make room
    /// for a new one while `max_registrations` were tracked.
    pub overflow_registrations: u64,
    /// Responses that matched no tracked transaction (request not seen or expired).
    pub unmatched_responses: u64,
    /// Established dialogs forgotten after `dialog_idle_timeout_secs`.
    pub dialogs_expired: u64,
    /// SIP messages without Call-ID or CSeq (not tracked).
    pub untrackable: u64,
    /// SIP messages fed after a message received later than them had already been tracked
    /// (a batch replayed from the spool after an overload): tracked out of order.
    pub late: u64,
}

pub(crate) struct State {
    pub(crate) cfg: KpiConfig,
    pub(crate) targets: Vec<(String, Vec<AddrPattern>)>,
    pub(crate) nodes: Vec<String>,
    node_index: HashMap<String, u16>,
    /// The node looked up last and its index: records come in runs from one node, and this
    /// spares hashing its name for each.
    last_node: Option<(String, u16)>,
    pub(crate) scopes: HashMap<ScopeKey, ScopeStats, SmallKeyHash>,
    txns: KeyMap<Txn>,
    sessions: KeyMap<Session>,
    /// Sessions by node, Call-ID and the pair of IP addresses without ports: finds the dialog
    /// of an in-dialog request sent over a new TCP connection (the callee's BYE from an
    /// ephemeral port to the caller's listening port shares no socket address with the
    /// INVITE). Entries are checked against `sessions` when used and pruned by the sweep.
    sessions_by_ips: KeyMap<IpPairEntry>,
    regs: KeyMap<Registration>,
    /// When each table's items come due (see [`crate::expiry`]).
    txn_queue: TimeQueue,
    session_queue: TimeQueue,
    reg_queue: TimeQueue,
    /// When ambiguous `sessions_by_ips` entries come due.
    ambiguous_queue: TimeQueue,
    /// `sessions_by_ips` keys of sessions removed since the last sweep: the sweep drops the
    /// entries that lead to no session any more.
    ips_to_prune: Vec<u64>,
    /// Scratch space for the items a queue hands out.
    due: Vec<(i64, u64)>,
    /// The configured timeouts, µs.
    timeouts: Timeouts,
    /// Per-stream last cumulative loss, for loss increments.
    streams: KeyMap<i64>,
    /// Records by (node index, HEP type), keyed with [`SmallKeyHash`] (SipHash on every
    /// record was measurable).
    pub(crate) hep_types: HashMap<(u16, u8), u64, SmallKeyHash>,
    /// Seed of [`key`], random per process.
    key_seed: u64,
    pub(crate) counters: TrackerCounters,
    /// Packet-time clock: the latest capture time seen …
    pub(crate) now_us: i64,
    /// … and the receive time that came with it.
    wall_at_now_us: i64,
    last_sweep_us: i64,
    /// SIP messages waiting to be tracked in receive order (`None` only while releasing).
    reorder: Option<ReorderBuffer>,
}

/// The session a pair of IP addresses leads to.
#[derive(Debug, Clone, Copy)]
struct IpPairEntry {
    /// The session key; meaningless when `ambiguous`.
    session: u64,
    /// Several sessions of one Call-ID between the same two hosts (a proxy and its peers on
    /// one host, the legs of a call through loopback): ports are needed to tell them apart.
    ambiguous: bool,
    /// Packet time the entry was last set, for pruning ambiguous entries.
    set_us: i64,
    /// Deadline of the item that stands for this entry in `ambiguous_queue` (`i64::MAX`: none).
    queued: i64,
}

/// The timeouts of the configuration in µs.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    txn: i64,
    proceeding: i64,
    idle: i64,
}

impl Timeouts {
    fn new(cfg: &KpiConfig) -> Timeouts {
        let us = |v: u64, unit: u64| v.saturating_mul(unit).min(i64::MAX as u64 / 4) as i64;
        Timeouts {
            txn: us(cfg.transaction_timeout_ms, 1000),
            proceeding: us(cfg.proceeding_timeout_ms, 1000),
            idle: us(cfg.dialog_idle_timeout_secs, 1_000_000),
        }
    }

    /// When a transaction times out: an INVITE that got a provisional response waits for the
    /// proceeding timeout, everything else (answered or not) the transaction timeout.
    fn txn_deadline(&self, x: &Txn) -> i64 {
        let limit = if x.final_code.is_none() && x.provisional && x.kind == TxnKind::InitialInvite {
            self.proceeding
        } else {
            self.txn
        };
        x.last_us.saturating_add(limit)
    }

    fn session_limit(&self, state: SessionState) -> i64 {
        match state {
            SessionState::Established | SessionState::Closing => self.idle,
            SessionState::Challenged => self.txn,
            // Normally concluded by its transaction; this catches untracked transactions.
            SessionState::Setup => self.proceeding.saturating_add(self.txn),
        }
    }

    fn session_deadline(&self, s: &Session) -> i64 {
        s.last_us.saturating_add(self.session_limit(s.state))
    }

    fn reg_deadline(&self, r: &Registration) -> i64 {
        r.last_us.saturating_add(self.txn)
    }
}

/// Most streams whose cumulative loss is remembered; the map is cleared when full.
const MAX_STREAMS: usize = 100_000;
/// Most distinct status codes remembered per transaction.
const MAX_CODES: usize = 8;

/// The map key of a transaction, session, registration or stream: a hash of its parts, each
/// prefixed with its length, seeded per process so that keys cannot be chosen to collide.
/// The parts are copied into a stack buffer and hashed in one call: streaming `Xxh3` set up
/// ~450 bytes of state per key, and this runs a few times per SIP message. (Streaming and
/// one-shot XXH3 give the same digest, so the fallback for long parts changes nothing.)
fn key(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut buf = [0u8; 512];
    let mut len = 0;
    for p in parts {
        let Some(chunk) = buf.get_mut(len..len + 4 + p.len()) else {
            let mut h = Xxh3::with_seed(seed);
            for p in parts {
                h.update(&(p.len() as u32).to_le_bytes());
                h.update(p);
            }
            return h.digest();
        };
        chunk[..4].copy_from_slice(&(p.len() as u32).to_le_bytes());
        chunk[4..].copy_from_slice(p);
        len += 4 + p.len();
    }
    xxh3_64_with_seed(&buf[..len], seed)
}

/// Maps keyed by [`key`] hashes: the key is already a seeded hash, so it is used as is
/// instead of being hashed again with SipHash.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

fn addr_bytes(a: SocketAddr) -> [u8; 18] {
    let mut out = [0u8; 18];
    let ip = match a.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    };
    out[..16].copy_from_slice(&ip.octets());
    out[16..].copy_from_slice(&a.port().to_be_bytes());
    out
}

/// The oldest entry of a table, by its queue: `(key, queued deadline, due at now)`. Entries
/// touched since they were queued (their real deadline is later) are queued again at it and
/// passed over, as are stale items. `deadline_of` gives an entry's real deadline and its
/// `queued` field.
fn oldest<V>(
    queue: &mut TimeQueue,
    map: &mut KeyMap<V>,
    now: i64,
    deadline_of: impl Fn(&mut V) -> (i64, &mut i64),
) -> Option<(u64, i64, bool)> {
    while let Some((d, k)) = queue.pop_oldest() {
        let Some(entry) = map.get_mut(&k) else {
            continue;
        };
        let (deadline, queued) = deadline_of(entry);
        if *queued != d {
            continue;
        }
        if deadline > d && deadline > now {
            *queued = deadline;
            queue.push(deadline, k);
            continue;
        }
        return Some((k, d, deadline <= now));
    }
    None
}

fn minute_of(us: i64) -> i64 {
    us.div_euclid(60_000_000)
}

impl State {
    pub(crate) fn new(cfg: KpiConfig) -> Result<State, KpiConfigError> {
        let targets = cfg.validate()?;
        let reorder = ReorderBuffer::new(cfg.reorder_window_ms, cfg.reorder_max_events);
        let timeouts = Timeouts::new(&cfg);
        Ok(State {
            cfg,
            targets,
            nodes: Vec::new(),
            node_index: HashMap::new(),
            last_node: None,
            scopes: HashMap::default(),
            txns: KeyMap::default(),
            sessions: KeyMap::default(),
            sessions_by_ips: KeyMap::default(),
            regs: KeyMap::default(),
            txn_queue: TimeQueue::default(),
            session_queue: TimeQueue::default(),
            reg_queue: TimeQueue::default(),
            ambiguous_queue: TimeQueue::default(),
            ips_to_prune: Vec::new(),
            due: Vec::new(),
            timeouts,
            streams: KeyMap::default(),
            hep_types: HashMap::default(),
            key_seed: std::collections::hash_map::RandomState::new().hash_one(0x006b_7069_u64),
            counters: TrackerCounters::default(),
            now_us: i64::MIN,
            wall_at_now_us: 0,
            last_sweep_us: i64::MIN,
            reorder: Some(reorder),
        })
    }

    pub(crate) fn tracked(&self) -> (usize, usize, usize) {
        (self.txns.len(), self.sessions.len(), self.regs.len())
    }

    pub(crate) fn node_label(&self, n: u16) -> &str {
        if n == NODE_OTHER {
            "other"
        } else {
            self.nodes
                .get(usize::from(n))
                .map_or("other", String::as_str)
        }
    }

    pub(crate) fn target_label(&self, t: u16) -> &str {
        if t == 0 {
            "any"
        } else {
            self.targets
                .get(usize::from(t) - 1)
                .map_or("other", |(n, _)| n.as_str())
        }
    }

    fn node_idx(&mut self, node: &str) -> u16 {
        if let Some((name, i)) = &self.last_node {
            if name == node {
                return *i;
            }
        }
        if let Some(&i) = self.node_index.get(node) {
            self.last_node = Some((node.to_owned(), i));
            return i;
        }
        if self.nodes.len() >= self.cfg.max_nodes.min(usize::from(NODE_OTHER)) {
            return NODE_OTHER;
        }
        let i = self.nodes.len() as u16;
        self.nodes.push(node.to_owned());
        self.node_index.insert(node.to_owned(), i);
        i
    }

    /// Scopes of a transaction between `uac` and `uas` seen at `node`.
    fn scopes_for(&self, node: u16, uac: SocketAddr, uas: SocketAddr) -> Scopes {
        let mut out: Scopes = smallvec![ScopeKey {
            node,
            target: 0,
            direction: Direction::Any,
        }];
        for (i, (_, pats)) in self.targets.iter().enumerate() {
            let t = (i + 1) as u16;
            if pats.iter().any(|p| p.matches(uas)) {
                out.push(ScopeKey {
                    node,
                    target: t,
                    direction: Direction::In,
                });
            }
            if pats.iter().any(|p| p.matches(uac)) {
                out.push(ScopeKey {
                    node,
                    target: t,
                    direction: Direction::Out,
                });
            }
        }
        out
    }

    /// Scopes of a QoS report between `a` and `b` (no direction).
    fn qos_scopes(&self, node: u16, a: SocketAddr, b: SocketAddr) -> Scopes {
        let mut out: Scopes = smallvec![ScopeKey {
            node,
            target: 0,
            direction: Direction::Any,
        }];
        for (i, (_, pats)) in self.targets.iter().enumerate() {
            if pats.iter().any(|p| p.matches(a) || p.matches(b)) {
                out.push(ScopeKey {
                    node,
                    target: (i + 1) as u16,
                    direction: Direction::Any,
                });
            }
        }
        out
    }

    /// Advances the packet clock to `time_us` (never backwards).
    fn clock(&mut self, time_us: i64, received_us: i64) {
        if time_us > self.now_us {
            self.now_us = time_us;
            self.wall_at_now_us = received_us;
        }
    }

    /// Takes a SIP message into the reorder buffer (tracked now if it is late), then tracks
    /// the messages whose wait is over at wall-clock time `wall_us`.
    pub(crate) fn sip_in_receive_order(&mut self, ev: &SipEvent<'_>, wall_us: i64) {
        let held = self.reorder.as_mut().is_some_and(|r| r.push(ev));
        if !held {
            self.counters.late += 1;
            self.sip(ev);
        }
        self.release_due(Some(wall_us));
    }

    /// Takes a quality report into the reorder buffer (fed now if it is late), then tracks
    /// what is due at wall-clock time `wall_us`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn qos_in_receive_order(
        &mut self,
        time_us: i64,
        received_us: i64,
        node: &str,
        a: SocketAddr,
        b: SocketAddr,
        samples: &[(QosSource, QosSample)],
        wall_us: i64,
    ) {
        if samples.is_empty() {
            return;
        }
        let make = || PendingQos {
            time_us,
            received_us,
            node: node.into(),
            a,
            b,
            samples: samples.to_vec(),
        };
        let held = self
            .reorder
            .as_mut()
            .is_some_and(|r| r.push_qos(make, received_us));
        if !held {
            self.qos(time_us, received_us, node, a, b, samples);
        }
        self.release_due(Some(wall_us));
    }

    /// Tracks the buffered items due at `wall_us`, or all of them for `None`.
    pub(crate) fn release_due(&mut self, wall_us: Option<i64>) {
        if let Some(mut buf) = self.reorder.take() {
            buf.release(wall_us, |item| match item {
                Released::Sip(ev) => self.sip(&ev),
                Released::Qos(q) => {
                    self.qos(q.time_us, q.received_us, &q.node, q.a, q.b, &q.samples);
                }
            });
            self.reorder = Some(buf);
        }
    }

    /// SIP messages waiting in the reorder buffer.
    pub(crate) fn reorder_pending(&self) -> usize {
        self.reorder.as_ref().map_or(0, ReorderBuffer::len)
    }

    /// Releases the buffered SIP messages due at wall-clock time `wall_us`, then lets idle
    /// time pass on the packet clock up to what the tracker has seen: `wall_us` less the
    /// reorder window, since messages received after that may still be waiting.
    pub(crate) fn tick(&mut self, wall_us: i64) {
        self.release_due(Some(wall_us));
        let window = self.reorder.as_ref().map_or(0, ReorderBuffer::window_us);
        self.advance_idle(wall_us.saturating_sub(window));
    }

    /// Lets idle wall-clock time pass on the packet clock, so timeouts fire when traffic stops.
    fn advance_idle(&mut self, wall_us: i64) {
        if self.now_us == i64::MIN {
            return;
        }
        let idle = wall_us.saturating_sub(self.wall_at_now_us);
        if idle > 0 {
            self.now_us = self.now_us.saturating_add(idle);
            self.wall_at_now_us = wall_us;
        }
        self.sweep();
    }

    fn with_scopes(
        &mut self,
        scopes: &[ScopeKey],
        time_us: i64,
        f: impl Fn(&mut ScopeStats, &mut Bucket),
    ) {
        let latest = minute_of(self.now_us.max(time_us));
        let minute = minute_of(time_us);
        let hist = self.cfg.history_minutes;
        for s in scopes {
            let stats = self.scopes.entry(*s).or_default();
            // The history is lent out while `f` updates the scope and the bucket together:
            // a bucket copied out and written back (240 bytes, twice) with a second lookup
            // cost more than the update itself.
            let mut history = std::mem::take(&mut stats.history);
            f(stats, history_bucket(&mut history, minute, latest, hist));
            stats.history = history;
        }
    }

    pub(crate) fn hep_record(&mut self, node: &str, hep_type: u8) {
        let n = self.node_idx(node);
        *self.hep_types.entry((n, hep_type)).or_default() += 1;
    }

    pub(crate) fn sip(&mut self, ev: &SipEvent<'_>) {
        self.clock(ev.time_us, ev.received_us);
        if ev.call_id.is_empty() || ev.cseq_method.is_empty() {
            self.counters.untrackable += 1;
            return;
        }
        if self.now_us.saturating_sub(self.last_sweep_us) >= 1_000_000 {
            self.sweep();
        }
        let node = self.node_idx(ev.node);
        let t = ev.time_us;
        let is_request = ev.method.is_some();
        let (uac, uas) = if is_request {
            (ev.src, ev.dst)
        } else {
            (ev.dst, ev.src)
        };
        let (ua, ub) = (addr_bytes(uac), addr_bytes(uas));
        let method = method_index(ev.method.unwrap_or(ev.cseq_method));
        let cseq_m = method_index(ev.cseq_method);
        let node_b = node.to_le_bytes();
        let tkey = key(
            self.key_seed,
            &[
                &node_b,
                ev.call_id.as_bytes(),
                ev.via_branch.unwrap_or("").as_bytes(),
                &ev.cseq_num.to_le_bytes(),
                ev.cseq_method.as_bytes(),
                &ua,
                &ub,
            ],
        );
        let dup_us = self
            .cfg
            .duplicate_window_ms
            .saturating_mul(1000)
            .min(i64::MAX as u64) as i64;
        if let Some(method_name) = ev.method {
            if let Some(txn) = self.txns.get_mut(&tkey) {
                let dup = t.saturating_sub(txn.last_req_us) <= dup_us && t >= txn.last_req_us;
                txn.last_req_us = t.max(txn.last_req_us);
                txn.last_us = txn.last_us.max(t);
                if dup {
                    self.counters.duplicates += 1;
                } else {
                    let scopes = txn.scopes.clone();
                    self.with_scopes(&scopes, t, |s, b| {
                        s.request_retrans[method] += 1;
                        b.retransmissions += 1;
                    });
                }
                return;
            }
            let scopes = self.scopes_for(node, uac, uas);
            self.with_scopes(&scopes, t, |s, b| {
                s.requests[method] += 1;
                b.requests += 1;
            });
            let (lo, hi) = if ua <= ub { (ua, ub) } else { (ub, ua) };
            let skey = key(self.key_seed, &[&node_b, ev.call_id.as_bytes(), &lo, &hi]);
            let ikey = key(
                self.key_seed,
                &[&node_b, ev.call_id.as_bytes(), &lo[..16], &hi[..16]],
            );
            let kind = match method_name {
                "INVITE" if ev.to_tag.is_none() => TxnKind::InitialInvite,
                "REGISTER" => TxnKind::Register,
                "BYE" => TxnKind::Bye,
                _ => TxnKind::Other,
            };
            let mut link = 0;
            match kind {
                TxnKind::InitialInvite => {
                    if self.session_invite(skey, ikey, t, &scopes) {
                        link = skey;
                        self.index_session_ips(ikey, skey, t);
                    }
                }
                TxnKind::Register => {
                    let rkey = key(self.key_seed, &[&node_b, ev.call_id.as_bytes(), &ua, &ub]);
                    if self.reg_register(rkey, t, &scopes) {
                        link = rkey;
                    }
                }
                TxnKind::Bye => {
                    let skey = self.dialog_session(skey, ikey);
                    if self.session_bye(skey, t) {
                        link = skey;
                    }
                }
                TxnKind::Other => {
                    let skey = self.dialog_session(skey, ikey);
                    if let Some(s) = self.sessions.get_mut(&skey) {
                        s.last_us = s.last_us.max(t);
                    }
                }
            }
            while self.txns.len() >= self.cfg.max_transactions && self.make_room_txn() {}
            let txn = Txn {
                scopes,
                kind,
                link,
                last_us: t,
                last_req_us: t,
                last_resp_us: i64::MIN,
                codes: SmallVec::new(),
                provisional: false,
                final_code: None,
                queued: 0,
            };
            let deadline = self.timeouts.txn_deadline(&txn);
            self.txns.insert(
                tkey,
                Txn {
                    queued: deadline,
                    ..txn
                },
            );
            self.txn_queue.push(deadline, tkey);
            return;
        }
        let Some(code) = ev.status else {
            self.counters.untrackable += 1;
            return;
        };
        let Some(txn) = self.txns.get_mut(&tkey) else {
            self.counters.unmatched_responses += 1;
            let scopes = self.scopes_for(node, uac, uas);
            self.with_scopes(&scopes, t, |s, b| {
                s.responses.entry((cseq_m as u8, code)).or_default()[0] += 1;
                b.responses += 1;
            });
            return;
        };
        txn.last_us = txn.last_us.max(t);
        if txn.codes.contains(&code) {
            let dup = t.saturating_sub(txn.last_resp_us) <= dup_us && t >= txn.last_resp_us;
            txn.last_resp_us = txn.last_resp_us.max(t);
            if dup {
                self.counters.duplicates += 1;
            } else {
                let scopes = txn.scopes.clone();
                self.with_scopes(&scopes, t, |s, b| {
                    s.responses.entry((cseq_m as u8, code)).or_default()[1] += 1;
                    b.retransmissions += 1;
                });
            }
            return;
        }
        if txn.codes.len() < MAX_CODES {
            txn.codes.push(code);
        }
        txn.last_resp_us = t;
        let first_final = code >= 200 && txn.final_code.is_none();
        if (101..200).contains(&code) {
            txn.provisional = true;
        }
        if first_final {
            txn.final_code = Some(code);
        }
        // A final response ends the proceeding wait early: remind the queue sooner.
        let deadline = self.timeouts.txn_deadline(txn);
        if deadline < txn.queued {
            txn.queued = deadline;
            self.txn_queue.push(deadline, tkey);
        }
        let (kind, link, scopes) = (txn.kind, txn.link, txn.scopes.clone());
        self.with_scopes(&scopes, t, |s, b| {
            s.responses.entry((cseq_m as u8, code)).or_default()[0] += 1;
            b.responses += 1;
        });
        if link == 0 {
            return;
        }
        match kind {
            TxnKind::InitialInvite => self.session_invite_response(link, code, t),
            TxnKind::Register if first_final => self.reg_final(link, code, t),
            TxnKind::Bye if first_final => self.session_bye_final(link, Some(code), t),
            _ => {}
        }
    }

    /// Records that session `skey` runs between the hosts of `ikey`. Bounded like the
    /// sessions themselves: beyond twice `max_sessions` entries new sessions are not indexed
    /// (their in-dialog requests then need their exact addresses).
    fn index_session_ips(&mut self, ikey: u64, skey: u64, t: i64) {
        if self.sessions_by_ips.len() >= self.cfg.max_sessions.saturating_mul(2)
            && !self.sessions_by_ips.contains_key(&ikey)
        {
            return;
        }
        let idle = self.timeouts.idle;
        let e = self
            .sessions_by_ips
            .entry(ikey)
            .and_modify(|e| {
                if e.session != skey {
                    e.ambiguous = true;
                }
                e.set_us = t;
            })
            .or_insert(IpPairEntry {
                session: skey,
                ambiguous: false,
                set_us: t,
                queued: i64::MAX,
            });
        if e.ambiguous {
            let deadline = e.set_us.saturating_add(idle);
            if deadline < e.queued {
                e.queued = deadline;
                self.ambiguous_queue.push(deadline, ikey);
            }
        }
    }

    /// The session an in-dialog request belongs to: the one with its exact socket addresses,
    /// else the only session of its Call-ID between the same two hosts (a new TCP
    /// connection), else `skey` (untracked).
    fn dialog_session(&self, skey: u64, ikey: u64) -> u64 {
        if self.sessions.contains_key(&skey) {
            return skey;
        }
        match self.sessions_by_ips.get(&ikey) {
            Some(e) if !e.ambiguous && self.sessions.contains_key(&e.session) => e.session,
            _ => skey,
        }
    }

    /// An initial INVITE (new transaction). Returns true when the transaction belongs to a
    /// tracked session.
    fn session_invite(&mut self, skey: u64, ikey: u64, t: i64, scopes: &[ScopeKey]) -> bool {
        if let Some(s) = self.sessions.get_mut(&skey) {
            s.last_us = s.last_us.max(t);
            return match s.state {
                // The INVITE retried with credentials after 401/407 continues the attempt.
                SessionState::Challenged => {
                    s.state = SessionState::Setup;
                    true
                }
                SessionState::Setup => true,
                SessionState::Established | SessionState::Closing => false,
            };
        }
        while self.sessions.len() >= self.cfg.max_sessions && self.make_room_session() {}
        let session = Session {
            scopes: Scopes::from_slice(scopes),
            state: SessionState::Setup,
            invite_us: t,
            first_response: false,
            established_us: 0,
            bye_us: 0,
            last_us: t,
            last_code: 0,
            ikey,
            queued: 0,
        };
        let deadline = self.timeouts.session_deadline(&session);
        self.sessions.insert(
            skey,
            Session {
                queued: deadline,
                ..session
            },
        );
        self.session_queue.push(deadline, skey);
        true
    }

    /// A new (not retransmitted) response to an initial INVITE of session `skey`.
    fn session_invite_response(&mut self, skey: u64, code: u16, t: i64) {
        let Some(s) = self.sessions.get_mut(&skey) else {
            return;
        };
        s.last_us = s.last_us.max(t);
        if s.state != SessionState::Setup || code <= 100 {
            return;
        }
        if code == 401 || code == 407 {
            // A challenge: the attempt goes on with the authenticated INVITE, or times out
            // sooner than a setup would.
            s.state = SessionState::Challenged;
            s.last_code = code;
            let deadline = self.timeouts.session_deadline(s);
            if deadline < s.queued {
                s.queued = deadline;
                self.session_queue.push(deadline, skey);
            }
            return;
        }
        let scopes = s.scopes.clone();
        let since = t.saturating_sub(s.invite_us).max(0) as f64 / 1e6;
        if !s.first_response && !(300..400).contains(&code) {
            s.first_response = true;
            // RFC 6076 §4.3: SRD ends with the first non-100 provisional or the 200 (success),
            // or with the 4xx/5xx/6xx failure response (failed setup).
            let i = usize::from(code >= 400);
            self.with_scopes(&scopes, t, |st, b| {
                st.srd[i].observe(since);
                if i == 0 {
                    b.srd_ms_sum += since * 1000.0;
                    b.srd_count += 1;
                }
            });
        }
        if code < 200 {
            return;
        }
        let outcome = Outcome::of_code(code);
        self.conclude_setup(&scopes, outcome, t);
        if outcome == Outcome::Success {
            if let Some(s) = self.sessions.get_mut(&skey) {
                s.state = SessionState::Established;
                s.established_us = t;
            }
        } else {
            self.remove_session(skey);
            self.end_session(&scopes, false, t);
        }
    }

    fn conclude_setup(&mut self, scopes: &[ScopeKey], outcome: Outcome, t: i64) {
        let i = outcome.index();
        self.with_scopes(scopes, t, |s, b| {
            s.session_attempts += 1;
            s.outcomes[i] += 1;
            b.session_attempts += 1;
            b.outcomes[i] += 1;
        });
    }

    fn end_session(&mut self, scopes: &[ScopeKey], completed: bool, t: i64) {
        let c = usize::from(completed);
        self.with_scopes(scopes, t, |s, b| {
            s.sessions_ended[c] += 1;
            b.sessions_ended += 1;
            b.sessions_completed += c as u64;
        });
    }

    /// A new BYE on session `skey`: the end of the session duration (RFC 6076 §4.5 SDT).
    fn session_bye(&mut self, skey: u64, t: i64) -> bool {
        let Some(s) = self.sessions.get_mut(&skey) else {
            return false;
        };
        s.last_us = s.last_us.max(t);
        if s.state != SessionState::Established {
            return false;
        }
        s.state = SessionState::Closing;
        s.bye_us = t;
        let sdt = t.saturating_sub(s.established_us).max(0) as f64 / 1e6;
        let scopes = s.scopes.clone();
        self.with_scopes(&scopes, t, |st, _| st.sdt.observe(sdt));
        true
    }

    /// The final response to the BYE of session `skey` (`None`: the BYE timed out).
    fn session_bye_final(&mut self, skey: u64, code: Option<u16>, t: i64) {
        let Some(s) = self.remove_session(skey) else {
            return;
        };
        let sdd = t.saturating_sub(s.bye_us).max(0) as f64 / 1e6;
        let (i, completed) = match code {
            Some(200..=299) => (0, true),
            Some(_) => (1, false),
            None => (2, false),
        };
        self.with_scopes(&s.scopes, t, |st, _| st.sdd[i].observe(sdd));
        self.end_session(&s.scopes, completed, t);
    }

    fn reg_register(&mut self, rkey: u64, t: i64, scopes: &[ScopeKey]) -> bool {
        if let Some(r) = self.regs.get_mut(&rkey) {
            r.state = RegState::Pending;
            r.last_us = r.last_us.max(t);
            return true;
        }
        while self.regs.len() >= self.cfg.max_registrations && self.make_room_reg() {}
        let reg = Registration {
            scopes: Scopes::from_slice(scopes),
            state: RegState::Pending,
            start_us: t,
            last_us: t,
            queued: 0,
        };
        let deadline = self.timeouts.reg_deadline(&reg);
        self.regs.insert(
            rkey,
            Registration {
                queued: deadline,
                ..reg
            },
        );
        self.reg_queue.push(deadline, rkey);
        true
    }

    /// The final response to a REGISTER of attempt `rkey`.
    fn reg_final(&mut self, rkey: u64, code: u16, t: i64) {
        if code == 401 || code == 407 {
            if let Some(r) = self.regs.get_mut(&rkey) {
                r.state = RegState::Challenged;
                r.last_us = r.last_us.max(t);
            }
            return;
        }
        let Some(r) = self.regs.remove(&rkey) else {
            return;
        };
        // RFC 6076 §4.2: a failure is a 4xx other than 401, 402, 407, a 5xx or a 6xx.
        let outcome = match code {
            200..=299 => RegOutcome::Success,
            402 | 300..=399 => RegOutcome::Other,
            _ => RegOutcome::Ineffective,
        };
        let rrd = t.saturating_sub(r.start_us).max(0) as f64 / 1e6;
        self.conclude_reg(&r.scopes, outcome, Some(rrd), t);
    }

    fn conclude_reg(&mut self, scopes: &[ScopeKey], outcome: RegOutcome, rrd: Option<f64>, t: i64) {
        let i = outcome.index();
        self.with_scopes(scopes, t, |s, b| {
            s.registration_attempts += 1;
            s.registration_outcomes[i] += 1;
            b.registration_attempts += 1;
            b.registration_outcomes[i] += 1;
            if let Some(rrd) = rrd {
                match outcome {
                    RegOutcome::Success => s.rrd[0].observe(rrd),
                    RegOutcome::Ineffective => s.rrd[1].observe(rrd),
                    RegOutcome::Other => {}
                }
            }
        });
    }

    /// Expires transactions, sessions and registrations whose time ran out, oldest first,
    /// looking only at the queue items that came due.
    pub(crate) fn sweep(&mut self) {
        let now = self.now_us;
        self.last_sweep_us = now;
        let mut due = std::mem::take(&mut self.due);
        // Transactions first: an INVITE or REGISTER that timed out concludes its attempt at
        // the transaction's deadline, before the session's own timeout could.
        self.txn_queue.take_due(now, &mut due);
        let mut expired: Vec<(TxnKind, u64, i64)> = Vec::new();
        for &(d, k) in &due {
            if let Some(e) = self.expire_txn(k, d, now) {
                expired.push(e);
            }
        }
        self.conclude_expired_txns(expired);
        self.session_queue.take_due(now, &mut due);
        for &(d, k) in &due {
            self.expire_session(k, d, now);
        }
        self.prune_ips(now, &mut due);
        self.reg_queue.take_due(now, &mut due);
        for &(d, k) in &due {
            self.expire_reg(k, d, now);
        }
        self.due = due;
        self.compact_queues();
    }

    /// Looks at transaction `k` for its queue item due at `d`: removes it when its time ran
    /// out (returning what its timeout concludes), or queues it again at its real deadline.
    fn expire_txn(&mut self, k: u64, d: i64, now: i64) -> Option<(TxnKind, u64, i64)> {
        let x = self.txns.get_mut(&k).filter(|x| x.queued == d)?;
        let deadline = self.timeouts.txn_deadline(x);
        if deadline > now {
            x.queued = deadline;
            self.txn_queue.push(deadline, k);
            return None;
        }
        let x = self.txns.remove(&k)?;
        (x.final_code.is_none() && x.link != 0).then_some((x.kind, x.link, deadline))
    }

    /// What unanswered transactions conclude when they time out: the session attempt
    /// (Timer B), the registration attempt (Timer F), the BYE.
    fn conclude_expired_txns(&mut self, expired: Vec<(TxnKind, u64, i64)>) {
        for (kind, link, at) in expired {
            match kind {
                TxnKind::InitialInvite => {
                    if let Some(s) = self.sessions.get(&link) {
                        if s.state == SessionState::Setup {
                            let scopes = s.scopes.clone();
                            self.remove_session(link);
                            self.conclude_setup(&scopes, Outcome::Timeout, at);
                            self.end_session(&scopes, false, at);
                        }
                    }
                }
                TxnKind::Register => {
                    if let Some(r) = self.regs.remove(&link) {
                        // RFC 6076 §4.2: Timer F expiring is an ineffective attempt.
                        self.conclude_reg(&r.scopes, RegOutcome::Ineffective, None, at);
                    }
                }
                TxnKind::Bye => self.session_bye_final(link, None, at),
                TxnKind::Other => {}
            }
        }
    }

    /// Looks at session `k` for its queue item due at `d`: ends it when its time ran out, or
    /// queues it again at its real deadline.
    fn expire_session(&mut self, k: u64, d: i64, now: i64) {
        let Some(s) = self.sessions.get_mut(&k).filter(|s| s.queued == d) else {
            return;
        };
        let deadline = self.timeouts.session_deadline(s);
        if deadline > now {
            s.queued = deadline;
            self.session_queue.push(deadline, k);
            return;
        }
        let Some(s) = self.remove_session(k) else {
            return;
        };
        let outcome = match s.state {
            SessionState::Challenged => Some(Outcome::of_code(s.last_code)),
            SessionState::Setup => Some(Outcome::Timeout),
            _ => {
                self.counters.dialogs_expired += 1;
                None
            }
        };
        if let Some(o) = outcome {
            self.conclude_setup(&s.scopes, o, deadline);
        }
        self.end_session(&s.scopes, false, deadline);
    }

    /// Looks at registration attempt `k` for its queue item due at `d`: abandons it when its
    /// time ran out, or queues it again at its real deadline.
    fn expire_reg(&mut self, k: u64, d: i64, now: i64) {
        let Some(r) = self.regs.get_mut(&k).filter(|r| r.queued == d) else {
            return;
        };
        let deadline = self.timeouts.reg_deadline(r);
        if deadline > now {
            r.queued = deadline;
            self.reg_queue.push(deadline, k);
            return;
        }
        let Some(r) = self.regs.remove(&k) else {
            return;
        };
        let o = if r.state == RegState::Challenged {
            RegOutcome::Other
        } else {
            RegOutcome::Ineffective
        };
        self.conclude_reg(&r.scopes, o, None, deadline);
    }

    /// Removes session `k`; its `sessions_by_ips` entry is pruned at the next sweep.
    fn remove_session(&mut self, k: u64) -> Option<Session> {
        let s = self.sessions.remove(&k)?;
        self.ips_to_prune.push(s.ikey);
        if self.ips_to_prune.len() > self.cfg.max_sessions.saturating_mul(2) {
            // Packet time stood still through this many calls: prune now rather than grow.
            let mut due = std::mem::take(&mut self.due);
            self.prune_ips(i64::MIN, &mut due);
            self.due = due;
        }
        Some(s)
    }

    /// Drops the `sessions_by_ips` entries that lead to a session no longer tracked, and the
    /// ambiguous ones not set again for `dialog_idle_timeout_secs` (due by `now`).
    fn prune_ips(&mut self, now: i64, due: &mut Vec<(i64, u64)>) {
        for ikey in self.ips_to_prune.drain(..) {
            if let Some(e) = self.sessions_by_ips.get(&ikey) {
                if !e.ambiguous && !self.sessions.contains_key(&e.session) {
                    self.sessions_by_ips.remove(&ikey);
                }
            }
        }
        self.ambiguous_queue.take_due(now, due);
        for &(d, ikey) in due.iter() {
            let Some(e) = self.sessions_by_ips.get_mut(&ikey) else {
                continue;
            };
            if !e.ambiguous || e.queued != d {
                continue;
            }
            let deadline = e.set_us.saturating_add(self.timeouts.idle);
            if deadline > now {
                e.queued = deadline;
                self.ambiguous_queue.push(deadline, ikey);
            } else {
                self.sessions_by_ips.remove(&ikey);
            }
        }
    }

    /// Drops the stale items of a queue that grew to twice its table.
    fn compact_queues(&mut self) {
        if self.txn_queue.needs_compaction(self.txns.len()) {
            let txns = &self.txns;
            self.txn_queue
                .retain(|d, k| txns.get(&k).is_some_and(|x| x.queued == d));
        }
        if self.session_queue.needs_compaction(self.sessions.len()) {
            let sessions = &self.sessions;
            self.session_queue
                .retain(|d, k| sessions.get(&k).is_some_and(|s| s.queued == d));
        }
        if self.reg_queue.needs_compaction(self.regs.len()) {
            let regs = &self.regs;
            self.reg_queue
                .retain(|d, k| regs.get(&k).is_some_and(|r| r.queued == d));
        }
        if self
            .ambiguous_queue
            .needs_compaction(self.sessions_by_ips.len())
        {
            let ips = &self.sessions_by_ips;
            self.ambiguous_queue
                .retain(|d, k| ips.get(&k).is_some_and(|e| e.ambiguous && e.queued == d));
        }
    }

    /// Frees one place in the full transaction table: its oldest transaction times out if it
    /// is due, else it is forgotten and counted (`overflow_transactions`). False when the
    /// table has nothing to give.
    fn make_room_txn(&mut self) -> bool {
        let now = self.now_us;
        let t = self.timeouts;
        match oldest(&mut self.txn_queue, &mut self.txns, now, |x| {
            (t.txn_deadline(x), &mut x.queued)
        }) {
            Some((k, d, true)) => {
                let expired = self.expire_txn(k, d, now);
                self.conclude_expired_txns(expired.into_iter().collect());
            }
            Some((k, _, false)) => {
                self.txns.remove(&k);
                self.counters.overflow_transactions += 1;
            }
            None => return false,
        }
        true
    }

    /// Frees one place in the full session table, like [`State::make_room_txn`].
    fn make_room_session(&mut self) -> bool {
        let now = self.now_us;
        let t = self.timeouts;
        match oldest(&mut self.session_queue, &mut self.sessions, now, |s| {
            (t.session_deadline(s), &mut s.queued)
        }) {
            Some((k, d, true)) => self.expire_session(k, d, now),
            Some((k, _, false)) => {
                self.remove_session(k);
                self.counters.overflow_sessions += 1;
            }
            None => return false,
        }
        true
    }

    /// Frees one place in the full registration table, like [`State::make_room_txn`].
    fn make_room_reg(&mut self) -> bool {
        let now = self.now_us;
        let t = self.timeouts;
        match oldest(&mut self.reg_queue, &mut self.regs, now, |r| {
            (t.reg_deadline(r), &mut r.queued)
        }) {
            Some((k, d, true)) => self.expire_reg(k, d, now),
            Some((k, _, false)) => {
                self.regs.remove(&k);
                self.counters.overflow_registrations += 1;
            }
            None => return false,
        }
        true
    }

    pub(crate) fn qos(
        &mut self,
        time_us: i64,
        received_us: i64,
        node: &str,
        a: SocketAddr,
        b: SocketAddr,
        samples: &[(QosSource, QosSample)],
    ) {
        if samples.is_empty() {
            return;
        }
        self.clock(time_us, received_us);
        let n = self.node_idx(node);
        let scopes = self.qos_scopes(n, a, b);
        for (src, s) in samples {
            // Loss increments: RTCP's cumulative counter per stream, the summaries' totals.
            let lost_inc = match (s.stream, s.cumulative_lost) {
                (Some((rep, source)), Some(cum)) => {
                    if self.streams.len() >= MAX_STREAMS {
                        self.streams.clear();
                    }
                    let sk = key(
                        self.key_seed,
                        &[&n.to_le_bytes(), &rep.to_le_bytes(), &source.to_le_bytes()],
                    );
                    let prev = self.streams.insert(sk, cum).unwrap_or(0);
                    cum.saturating_sub(prev).max(0) as u64
                }
                (None, Some(cum)) => cum.max(0) as u64,
                _ => 0,
            };
            let src_i = src.index();
            let s = *s;
            self.with_scopes(&scopes, time_us, |st, b| {
                st.qos_reports[src_i] += 1;
                st.packets_lost += lost_inc;
                b.qos_reports += 1;
                if let Some(j) = s.jitter_ms {
                    st.jitter.observe(j / 1000.0);
                    b.jitter_ms_sum += j;
                    b.jitter_count += 1;
                }
                if let Some(l) = s.loss_fraction {
                    st.loss.observe(l);
                    b.loss_sum += l;
                    b.loss_count += 1;
                }
                if let Some(r) = s.rtt_ms {
                    st.rtt.observe(r / 1000.0);
                    b.rtt_ms_sum += r;
                    b.rtt_count += 1;
                }
                if let Some(m) = s.mos {
                    st.mos.observe(m);
                    b.mos_sum += m;
                    b.mos_count += 1;
                }
            });
        }
    }
}

/// The KPI engine: thread-safe, fed by the collector, read by `/metrics` and the API.
pub struct Kpi {
    pub(crate) state: Mutex<State>,
}

impl std::fmt::Debug for Kpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kpi").finish_non_exhaustive()
    }
}

impl Kpi {
    /// A new engine; fails when the configuration is invalid.
    pub fn new(cfg: KpiConfig) -> Result<Kpi, KpiConfigError> {
        Ok(Kpi {
            state: Mutex::new(State::new(cfg)?),
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough counters: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tracks one SIP message now, in the order given (a single ordered source: a capture
    /// file, a test). The collector, whose writer threads finish batches out of order, feeds
    /// through [`Feeder::sip`] instead.
    pub fn observe_sip(&self, ev: &SipEvent<'_>) {
        self.lock().sip(ev);
    }

    /// Tracks every SIP message still waiting in the reorder buffer (at shutdown, or before
    /// reading figures that must include everything fed).
    pub fn flush(&self) {
        self.lock().release_due(None);
    }

    /// Counts one stored HEP record by node and HEP type.
    pub fn observe_hep(&self, node: &str, hep_type: u8) {
        self.lock().hep_record(node, hep_type);
    }

    /// Feeds the QoS samples of one report exchanged between `a` and `b`.
    pub fn observe_qos(
        &self,
        time_us: i64,
        received_us: i64,
        node: &str,
        a: SocketAddr,
        b: SocketAddr,
        samples: &[(QosSource, QosSample)],
    ) {
        self.lock().qos(time_us, received_us, node, a, b, samples);
    }

    /// Lets wall-clock time pass while no traffic arrives (fires timeouts). `wall_us`: now.
    pub fn tick(&self, wall_us: i64) {
        self.lock().tick(wall_us);
    }

    /// Tracker counters.
    pub fn counters(&self) -> TrackerCounters {
        self.lock().counters
    }

    /// `(transactions, sessions, registrations)` tracked now.
    pub fn tracked(&self) -> (usize, usize, usize) {
        self.lock().tracked()
    }

    /// The configured sliding window, seconds.
    pub fn window_secs(&self) -> u64 {
        self.lock().cfg.window_secs
    }
}

/// Exclusive access to the engine for feeding a whole batch under one lock, at one
/// wall-clock time.
pub struct Feeder<'a> {
    state: std::sync::MutexGuard<'a, State>,
    wall_us: i64,
}

impl Feeder<'_> {
    /// Feeds one SIP message through the reorder buffer: it is tracked once
    /// `reorder_window_ms` has passed since it was received, after every message received
    /// before it, whichever batch brought them. Messages whose wait is over are tracked now.
    pub fn sip(&mut self, ev: &SipEvent<'_>) {
        self.state.sip_in_receive_order(ev, self.wall_us);
    }
    /// See [`Kpi::observe_hep`].
    pub fn hep(&mut self, node: &str, hep_type: u8) {
        self.state.hep_record(node, hep_type);
    }
    /// Feeds the QoS samples of one report through the reorder buffer, like [`Feeder::sip`]:
    /// a report moves the packet clock too.
    pub fn qos(
        &mut self,
        time_us: i64,
        received_us: i64,
        node: &str,
        a: SocketAddr,
        b: SocketAddr,
        samples: &[(QosSource, QosSample)],
    ) {
        let wall_us = self.wall_us;
        self.state
            .qos_in_receive_order(time_us, received_us, node, a, b, samples, wall_us);
    }
    /// The configured RTP clock rate for RTCP jitter.
    pub fn rtp_clock_rate_hz(&self) -> u32 {
        self.state.cfg.rtp_clock_rate_hz
    }
}

impl Kpi {
    /// Locks the engine for feeding several records at once; `wall_us` is the wall-clock time
    /// now, which decides what the reorder buffer releases.
    pub fn feeder(&self, wall_us: i64) -> Feeder<'_> {
        Feeder {
            state: self.lock(),
            wall_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length-prefixed concatenation that [`key`] hashes.
    fn framed(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    fn invite(st: &mut State, i: u32, t: i64) {
        let call_id = format!("cap-{i}");
        let branch = format!("z9hG4bK-{i}");
        st.sip(&SipEvent {
            time_us: t,
            received_us: t,
            node: "n",
            src: "10.0.0.1:5060".parse().expect("addr"),
            dst: "10.0.0.2:5060".parse().expect("addr"),
            method: Some("INVITE"),
            status: None,
            call_id: &call_id,
            cseq_num: 1,
            cseq_method: "INVITE",
            via_branch: Some(&branch),
            to_tag: None,
        });
    }

    #[test]
    fn a_full_table_forgets_its_oldest_and_counts_it_and_times_out_what_is_due() {
        let mut st = State::new(KpiConfig {
            max_transactions: 10,
            max_sessions: 10,
            reorder_window_ms: 0,
            ..KpiConfig::default()
        })
        .expect("config");
        let t0 = 1_700_000_000_000_000i64;
        for i in 0..25 {
            invite(&mut st, i, t0 + i64::from(i) * 1000);
        }
        let (txns, sessions, _) = st.tracked();
        assert_eq!((txns, sessions), (10, 10));
        assert_eq!(st.counters.overflow_transactions, 15);
        assert_eq!(st.counters.overflow_sessions, 15);
        // The ten newest are the ones kept.
        assert!(st.sessions.values().all(|s| s.invite_us >= t0 + 15_000));

        // With a 1 ms transaction timeout, the oldest transactions are due when their table
        // fills: they time out (Timer B, concluding their sessions) instead of being forgotten.
        let mut st = State::new(KpiConfig {
            max_transactions: 10,
            max_sessions: 100,
            transaction_timeout_ms: 1,
            reorder_window_ms: 0,
            ..KpiConfig::default()
        })
        .expect("config");
        for i in 0..25 {
            invite(&mut st, i, t0 + i64::from(i) * 1000);
        }
        assert_eq!(st.counters.overflow_transactions, 0);
        assert_eq!(st.counters.overflow_sessions, 0);
        let timeouts: u64 = st
            .scopes
            .values()
            .map(|s| s.outcomes[Outcome::Timeout.index()])
            .max()
            .unwrap_or(0);
        assert!(timeouts >= 14, "{timeouts} INVITEs timed out");
    }

    #[test]
    fn keys_hash_the_framed_parts_whatever_their_length() {
        let long = vec![b'x'; 600];
        for parts in [
            &[&b"node"[..], b"call-id@host", b"z9hG4bK1", b"1"][..],
            &[&b""[..], b""],
            &[&long[..], b"tail"],
            &[&long[..250], &long[..250], &long[..20]],
        ] {
            assert_eq!(key(7, parts), xxh3_64_with_seed(&framed(parts), 7));
        }
        // The framing keeps part boundaries: "ab"+"c" is not "a"+"bc".
        assert_ne!(key(7, &[b"ab", b"c"]), key(7, &[b"a", b"bc"]));
        assert_ne!(key(7, &[b"ab"]), key(8, &[b"ab"]));
    }
}
