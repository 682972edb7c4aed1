//! The stored record and the query model shared by every backend.

use std::net::IpAddr;

use compact_str::{CompactString, ToCompactString};
use serde::{Deserialize, Serialize};

/// heplify-server's profile split, decided by the SIP CSeq method: `REGISTER` → `registration`;
/// INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, REFER, INFO → `call`; everything else (OPTIONS,
/// SUBSCRIBE, NOTIFY, MESSAGE, PUBLISH, non-SIP) → `default`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Dialog-forming and in-dialog call signalling.
    Call,
    /// REGISTER transactions.
    Registration,
    /// Everything else, including every non-SIP HEP type.
    #[default]
    Default,
}

impl Profile {
    /// The profile for a CSeq method, as heplify-server assigns it.
    pub fn from_cseq_method(method: &str) -> Profile {
        const CALL: [&str; 8] = [
            "INVITE", "ACK", "BYE", "CANCEL", "UPDATE", "PRACK", "REFER", "INFO",
        ];
        if method.eq_ignore_ascii_case("REGISTER") {
            Profile::Registration
        } else if CALL.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            Profile::Call
        } else {
            Profile::Default
        }
    }

    /// The lowercase name used in table names and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Call => "call",
            Profile::Registration => "registration",
            Profile::Default => "default",
        }
    }
}

/// The SIP fields indexed for search (HOMER's `data_header` set). Empty for non-SIP records.
/// Every field is owned text copied out of the indexer's zero-copy view, as a
/// [`CompactString`]: text up to 24 bytes (methods, CSeqs, users, domains, most tags and
/// branches) is kept inline. Why: a SIP record carries ~20 such fields, allocated on a receive
/// thread and freed on a writer thread; as `String`s their allocations and cross-thread frees
/// were ≈ 8 % of the collector's CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipFields {
    /// Request method (`INVITE`) for requests, status code as text (`200`) for replies, as
    /// HOMER's `method` key does.
    pub method: CompactString,
    /// True for requests, false for replies.
    pub is_request: bool,
    /// Status code of a reply.
    pub status: Option<u16>,
    /// The CSeq header value, e.g. `1 INVITE`.
    pub cseq: Option<CompactString>,
    /// The CSeq method (decides the profile; tells what a reply answers).
    pub cseq_method: Option<CompactString>,
    /// Call-ID.
    pub call_id: Option<CompactString>,
    /// Request-URI user and host.
    pub ruri_user: Option<CompactString>,
    /// Request-URI host.
    pub ruri_domain: Option<CompactString>,
    /// From URI user.
    pub from_user: Option<CompactString>,
    /// From URI host.
    pub from_domain: Option<CompactString>,
    /// From tag.
    pub from_tag: Option<CompactString>,
    /// To URI user.
    pub to_user: Option<CompactString>,
    /// To URI host.
    pub to_domain: Option<CompactString>,
    /// To tag.
    pub to_tag: Option<CompactString>,
    /// Contact URI user.
    pub contact_user: Option<CompactString>,
    /// P-Asserted-Identity user (Remote-Party-ID as fallback).
    pub pid_user: Option<CompactString>,
    /// Authorization / Proxy-Authorization username.
    pub auth_user: Option<CompactString>,
    /// User-Agent header.
    pub user_agent: Option<CompactString>,
    /// Server header.
    pub server: Option<CompactString>,
    /// Reason header value.
    pub reason: Option<CompactString>,
    /// Content-Type.
    pub content_type: Option<CompactString>,
    /// Branch of the top Via.
    pub via_branch: Option<CompactString>,
    /// A-leg Call-ID from the configured A-leg headers (X-CID …).
    pub aleg_id: Option<CompactString>,
    /// Configured custom headers, name and value, in configuration order.
    pub custom_headers: Vec<(String, String)>,
    /// SDP media addresses `ip:port` (RTP) found in the body, for media correlation.
    pub sdp_media: Vec<String>,
}

/// One stored HEP packet, backend-neutral. The capture password (HEP chunk 0x000e) is never
/// part of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Capture time from HEP (ts_sec/ts_usec), microseconds since the Unix epoch. Any value is
    /// accepted, including replays from years ago and clocks in the future.
    pub time_us: i64,
    /// When the collector received the packet, microseconds since the Unix epoch.
    pub received_us: i64,
    /// HEP proto type (1 SIP, 5 RTCP JSON, 53 DNS, 100 log, …).
    pub hep_type: u8,
    /// HEP version the packet arrived in (1, 2 or 3).
    pub hep_version: u8,
    /// IP family (2 = IPv4, 10 = IPv6), as in HEP.
    pub ip_family: u8,
    /// L4 protocol number (17 UDP, 6 TCP, 132 SCTP …).
    pub ip_proto: u8,
    /// Source address of the captured packet.
    pub src_ip: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination address of the captured packet.
    pub dst_ip: IpAddr,
    /// Destination port.
    pub dst_port: u16,
    /// HEP capture agent id.
    pub capture_id: u32,
    /// Node name (HEP chunk 0x0013) or, failing that, the capture id as text.
    pub node: Option<String>,
    /// Correlation id: HEP chunk 0x0011, else the first configured A-leg header, else Call-ID.
    pub correlation_id: Option<String>,
    /// Session id: Call-ID for SIP, the correlation id for RTCP, logs and events.
    pub sid: String,
    /// heplify-server profile by CSeq method.
    pub profile: Profile,
    /// Indexed SIP fields, when the payload is SIP.
    pub sip: Option<SipFields>,
    /// For JSON-bearing and decoded binary payloads (RTCP, DNS, logs, events): the payload as a
    /// JSON document, searchable by field path. None for SIP.
    pub payload_json: Option<String>,
    /// The payload, byte-exact as received (inflated when HEP carried it compressed).
    pub raw: Vec<u8>,
}

/// What the collector's pipeline established about a [`Record`] while building it, handed to
/// [`Store::insert_batch_hinted`] so that the store does not establish it again. Every flag is
/// a promise: set only when it holds by construction; `false` tells nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHint {
    /// `sip` is exactly what [`SipFields::from_message`] (with SDP media) gives for `raw`
    /// indexed by the default SIP indexer, apart from `aleg_id` and `custom_headers`, which
    /// depend on the ingest configuration. The embedded store then keeps only the searched
    /// SIP columns and derives the rest from `raw` on read; without the hint it re-indexes
    /// `raw` to find out (≈ 5 % of the collector's CPU under SIP load).
    pub sip_from_raw: bool,
}

/// A record read back from a store, with the backend's row identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Backend row id; unique within the store together with `record.time_us`.
    pub id: i64,
    /// The record.
    pub record: Record,
}

/// Search filter for messages and calls. Every set field must match (AND); empty means any.
///
/// Wildcards: in `call_ids`, `from_user`, `to_user`, `ruri_user`, `any_user`, `user_agent`,
/// `method`, `status`, `final_status`, `node` and `correlation_id`, a `*` matches any run of
/// characters (also none); a value without `*` is an exact match (and uses the backend's
/// index). There is no escape: a literal `*` cannot be searched for in those fields.
///
/// Case: the text people type matches ASCII case-insensitively: methods always, the User-Agent
/// always, and the users (`from_user`, `to_user`, `ruri_user`, `any_user`) when the value is a
/// `*` pattern (an exact user stays exact so that it uses the index; SIP users are mostly
/// digits). Call-IDs, correlation ids and node names are identifiers and match as given.
///
/// [`MessageFilter::matches`] (and [`MessageFilter::final_status_matches`] for calls) is the
/// reference semantics every backend follows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFilter {
    /// Lower time bound, microseconds since the epoch, inclusive.
    pub from_us: Option<i64>,
    /// Upper time bound, microseconds since the epoch, exclusive.
    pub to_us: Option<i64>,
    /// Any of these Call-IDs (`sid`).
    pub call_ids: Vec<String>,
    /// From user, exact.
    pub from_user: Option<String>,
    /// To user, exact.
    pub to_user: Option<String>,
    /// Request-URI user, exact.
    pub ruri_user: Option<String>,
    /// Source or destination IP.
    pub ip: Option<IpAddr>,
    /// Source IP.
    pub src_ip: Option<IpAddr>,
    /// Destination IP.
    pub dst_ip: Option<IpAddr>,
    /// Any of these SIP methods or status codes as text (HOMER's `method` key: a request's
    /// method, a reply's code), case-insensitive. With [`MessageFilter::status`] also set, they
    /// name the method a reply answers (its CSeq method): `INVITE` + `486` finds the 486
    /// replies to INVITEs.
    #[serde(default)]
    pub method: Vec<String>,
    /// Any of these reply status codes (`486`, `4*`); requests never match.
    #[serde(default)]
    pub status: Vec<String>,
    /// Calls only: any of these patterns matches the call's final status
    /// ([`CallSummary::status`]: `4*` lists the calls that ended with a 4xx, not a REGISTER
    /// that was challenged with 401 and then accepted). A call without a final reply has none
    /// and does not match. Ignored by [`Store::messages`].
    #[serde(default)]
    pub final_status: Vec<String>,
    /// Node name.
    pub node: Option<String>,
    /// HEP proto type.
    pub hep_type: Option<u8>,
    /// Correlation id, exact.
    pub correlation_id: Option<String>,
    /// Any of the From, To or Request-URI user.
    #[serde(default)]
    pub any_user: Option<String>,
    /// The User-Agent or the Server header.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Source or destination port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Source port.
    #[serde(default)]
    pub src_port: Option<u16>,
    /// Destination port.
    #[serde(default)]
    pub dst_port: Option<u16>,
    /// Substring of the raw payload (case-sensitive).
    pub text: Option<String>,
    /// JSON payload conditions: path like `questions[0].name` (relative to the payload root;
    /// a leading `payload.` is accepted and stripped) and the value it must equal as text.
    pub json: Vec<(String, String)>,
    /// Page size; backends cap it at [`MAX_PAGE`].
    pub limit: usize,
    /// Opaque cursor from a previous page's `next`.
    pub cursor: Option<String>,
}

/// Whether a filter value contains the `*` wildcard.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains('*')
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters (also none)
/// and everything else matches itself (ASCII case-insensitively when `ignore_case`).
/// Linear in `text` × the number of `*`-separated pieces; never backtracks exponentially.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let find = |hay: &str, needle: &str| -> Option<usize> {
        if ignore_case {
            let (h, n) = (hay.as_bytes(), needle.as_bytes());
            if n.is_empty() {
                return Some(0);
            }
            h.windows(n.len()).position(|w| w.eq_ignore_ascii_case(n))
        } else {
            hay.find(needle)
        }
    };
    let pieces: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = pieces.as_slice() else {
        // No `*`: one piece.
        return eq(pattern, text);
    };
    let (Some(head), Some(rest_len)) =
        (text.get(..first.len()), text.len().checked_sub(first.len()))
    else {
        return false;
    };
    if !eq(head, first) || rest_len < last.len() {
        return false;
    }
    let Some(mut rest) = text.get(first.len()..text.len() - last.len()) else {
        return false;
    };
    let Some(tail) = text.get(text.len() - last.len()..) else {
        return false;
    };
    if !eq(tail, last) {
        return false;
    }
    for piece in middle {
        match find(rest, piece) {
            Some(at) => match rest.get(at + piece.len()..) {
                Some(r) => rest = r,
                None => return false,
            },
            None => return false,
        }
    }
    true
}

/// Whether a user filter value matches case-insensitively: when it is a `*` pattern.
pub fn user_ignores_case(pattern: Option<&str>) -> bool {
    pattern.is_some_and(has_wildcard)
}

fn any_code_matches(patterns: &[String], code: u16) -> bool {
    let mut digits = itoa::Buffer::new();
    let code = digits.format(code);
    patterns.iter().any(|p| wildcard_match(p, code, false))
}

fn text_matches(pattern: &Option<String>, value: Option<&str>, ignore_case: bool) -> bool {
    match pattern {
        None => true,
        Some(p) => value.is_some_and(|v| wildcard_match(p, v, ignore_case)),
    }
}

/// The value at a field path (`questions[0].name`, optionally prefixed with `payload.`) of a
/// JSON document, as text the way the SQL backends compare it: strings as is, booleans as
/// `true`/`false`, numbers and composite values as JSON text; `None` for null or missing.
fn json_path_text(doc: &serde_json::Value, path: &str) -> Option<String> {
    let rel = path.strip_prefix("payload.").unwrap_or(path);
    let mut cur = doc;
    for segment in rel.split('.') {
        let (key, mut rest) = match segment.find('[') {
            Some(i) => segment.split_at(i),
            None => (segment, ""),
        };
        cur = cur.as_object()?.get(key)?;
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            let index: usize = inner.get(..close)?.parse().ok()?;
            cur = cur.as_array()?.get(index)?;
            rest = inner.get(close + 1..)?;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    match cur {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl MessageFilter {
    /// Whether a call whose final status is `status` ([`CallSummary::status`]) passes
    /// [`MessageFilter::final_status`] (always when it is empty).
    pub fn final_status_matches(&self, status: Option<u16>) -> bool {
        self.final_status.is_empty()
            || status.is_some_and(|s| any_code_matches(&self.final_status, s))
    }

    /// Whether `record` matches every set condition (time bounds, `limit` and `cursor` are
    /// not conditions on a record and are ignored unless `with_time` asks for the bounds).
    /// This is the reference semantics of the filter; the live tail applies it in memory.
    pub fn matches(&self, r: &Record, with_time: bool) -> bool {
        if with_time
            && (self.from_us.is_some_and(|f| r.time_us < f)
                || self.to_us.is_some_and(|t| r.time_us >= t))
        {
            return false;
        }
        if !self.call_ids.is_empty()
            && !self
                .call_ids
                .iter()
                .any(|c| wildcard_match(c, &r.sid, false))
        {
            return false;
        }
        let sip = r.sip.as_ref();
        let field = |f: fn(&SipFields) -> &Option<CompactString>| sip.and_then(|s| f(s).as_deref());
        let user = |p: &Option<String>, v| text_matches(p, v, user_ignores_case(p.as_deref()));
        if !user(&self.from_user, field(|s| &s.from_user))
            || !user(&self.to_user, field(|s| &s.to_user))
            || !user(&self.ruri_user, field(|s| &s.ruri_user))
            || !text_matches(&self.node, r.node.as_deref(), false)
            || !text_matches(&self.correlation_id, r.correlation_id.as_deref(), false)
        {
            return false;
        }
        if !self.status.is_empty() {
            let code = sip.filter(|s| !s.is_request).and_then(|s| s.status);
            if !code.is_some_and(|c| any_code_matches(&self.status, c)) {
                return false;
            }
        }
        if !self.method.is_empty() {
            // With `status`, the method a reply answers; else HOMER's method key.
            let key = if self.status.is_empty() {
                sip.map(|s| s.method.as_str())
            } else {
                field(|s| &s.cseq_method)
            };
            let key = key.filter(|m| !m.is_empty());
            if !key.is_some_and(|k| self.method.iter().any(|p| wildcard_match(p, k, true))) {
                return false;
            }
        }
        if let Some(p) = &self.any_user {
            let users = [
                field(|s| &s.from_user),
                field(|s| &s.to_user),
                field(|s| &s.ruri_user),
            ];
            let ignore_case = user_ignores_case(Some(p));
            if !users
                .into_iter()
                .flatten()
                .any(|u| wildcard_match(p, u, ignore_case))
            {
                return false;
            }
        }
        if let Some(p) = &self.user_agent {
            let agents = [field(|s| &s.user_agent), field(|s| &s.server)];
            if !agents
                .into_iter()
                .flatten()
                .any(|u| wildcard_match(p, u, true))
            {
                return false;
            }
        }
        if self.ip.is_some_and(|ip| r.src_ip != ip && r.dst_ip != ip)
            || self.src_ip.is_some_and(|ip| r.src_ip != ip)
            || self.dst_ip.is_some_and(|ip| r.dst_ip != ip)
            || self
                .port
                .is_some_and(|p| r.src_port != p && r.dst_port != p)
            || self.src_port.is_some_and(|p| r.src_port != p)
            || self.dst_port.is_some_and(|p| r.dst_port != p)
            || self.hep_type.is_some_and(|t| r.hep_type != t)
        {
            return false;
        }
        if let Some(text) = &self.text {
            let needle = text.as_bytes();
            if !needle.is_empty() && !r.raw.windows(needle.len()).any(|w| w == needle) {
                return false;
            }
        }
        if !self.json.is_empty() {
            let Some(doc) = r
                .payload_json
                .as_deref()
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
            else {
                return false;
            };
            for (path, value) in &self.json {
                if json_path_text(&doc, path).as_deref() != Some(value.as_str()) {
                    return false;
                }
            }
        }
        true
    }
}

/// Largest page any query returns; ask again with the cursor for more.
pub const MAX_PAGE: usize = 10_000;

/// One page of results, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// How many items match the filter in all (not only this page).
    pub total: u64,
    /// This page's items, newest first.
    pub items: Vec<T>,
    /// Cursor for the next (older) page; None when this is the last.
    pub next: Option<String>,
}

/// One row per Call-ID, as the call search lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSummary {
    /// The Call-ID.
    pub call_id: String,
    /// Correlation id of the call (its A-leg's Call-ID for a B-leg).
    pub correlation_id: Option<String>,
    /// Time of the first message, µs.
    pub start_us: i64,
    /// Time of the last message, µs.
    pub end_us: i64,
    /// Method of the first request (INVITE, REGISTER …).
    pub method: Option<String>,
    /// From user of the first request.
    pub from_user: Option<String>,
    /// To user of the first request.
    pub to_user: Option<String>,
    /// Request-URI user of the first request.
    pub ruri_user: Option<String>,
    /// Source IP of the first message.
    pub src_ip: Option<IpAddr>,
    /// Destination IP of the first message.
    pub dst_ip: Option<IpAddr>,
    /// Final status of the dialog-forming request (the last final reply to its CSeq method), if any.
    pub status: Option<u16>,
    /// Answered call duration in milliseconds: from the 200 OK to the INVITE to the BYE (or the
    /// last message when no BYE was seen); None when not answered.
    pub duration_ms: Option<i64>,
    /// Messages stored for this Call-ID.
    pub message_count: u64,
    /// Node names that saw the call.
    pub nodes: Vec<String>,
}

/// The result of writing one batch: rows that could not be stored are reported one by one and
/// never fail the rest of the batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows stored.
    pub stored: usize,
    /// Rows rejected, by index into the batch, with the reason.
    pub rejected: Vec<(usize, String)>,
}

/// A user of the web UI and API. The password is kept only as a PHC-format hash (argon2id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// PHC string of the password hash.
    pub password_hash: String,
    /// Whether the user may administer (users, settings).
    pub admin: bool,
}

/// What a retention pass removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Partitions dropped.
    pub partitions_dropped: Vec<String>,
    /// Bytes freed on disk (approximate for server backends).
    pub bytes_freed: u64,
}

/// Size and shape of a store, for metrics and `/healthz`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Partitions present.
    pub partitions: u64,
    /// Bytes on disk (approximate for server backends).
    pub bytes: u64,
}

/// Errors of any backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or refused the operation as a whole (the batch goes to the
    /// spool and is retried).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A query or filter that cannot be run (bad cursor, bad JSON path …).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// Opening, migrating or configuring the store failed.
    #[error("store setup failed: {0}")]
    Setup(String),
    /// Anything else the backend reports.
    #[error("store error: {0}")]
    Backend(String),
}

/// A place in a store's scan order: records are read in ascending `(time_us, id)`, where `id`
/// is the backend's [`StoredMessage::id`] (unique together with `time_us`). Positions are
/// plain values, not opaque cursors, so that a copy can checkpoint them in a file and resume
/// against the same source later, and so that it can tell whether a page ended between two
/// records of the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ScanPosition {
    /// Capture time of the record, µs since the epoch.
    pub time_us: i64,
    /// The record's [`StoredMessage::id`]; `i64::MIN` stands before every record of that
    /// instant and `i64::MAX` after every one.
    pub id: i64,
}

impl ScanPosition {
    /// The position of a record read back from the store.
    pub fn of(m: &StoredMessage) -> ScanPosition {
        ScanPosition {
            time_us: m.record.time_us,
            id: m.id,
        }
    }

    /// The position before every record of instant `time_us`.
    pub fn before(time_us: i64) -> ScanPosition {
        ScanPosition {
            time_us,
            id: i64::MIN,
        }
    }

    /// Whether the record at (`time_us`, `id`) comes after this position.
    pub fn is_before(&self, time_us: i64, id: i64) -> bool {
        (self.time_us, self.id) < (time_us, id)
    }
}

/// What [`Store::scan`] reads: the records of a time window after a position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanRequest {
    /// Lower time bound, µs, inclusive; None: from the oldest record.
    pub from_us: Option<i64>,
    /// Upper time bound, µs, exclusive; None: to the newest record.
    pub to_us: Option<i64>,
    /// Only records whose position is after this one; None: from the start of the window.
    pub after: Option<ScanPosition>,
    /// At most this many records (at least 1 is asked for; backends may cap it at
    /// [`MAX_SCAN`]).
    pub limit: usize,
}

/// Largest [`ScanRequest::limit`] a backend has to honour.
pub const MAX_SCAN: usize = 100_000;

/// One page of [`Store::scan`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanPage {
    /// Records in ascending `(time_us, id)`, every one after the request's `after`.
    pub items: Vec<StoredMessage>,
    /// Where the next call continues (its `after`); None when the window holds nothing more.
    /// The contract that makes a scan resumable: **every record of the window whose position
    /// lies after the request's `after` and at or before `next` is in `items`**. `next` is
    /// the last item's position when the page is full, and may lie beyond it (e.g.
    /// `ScanPosition::before(t)` once a backend knows that nothing more precedes `t`); a page
    /// may be empty with `next` set when a backend skipped an empty stretch of the window.
    pub next: Option<ScanPosition>,
}

/// A storage backend. Implementations are shared between the writer threads and the HTTP
/// server, hence `Send + Sync`; every method may block.
pub trait Store: Send + Sync {
    /// Short backend name for logs and metrics (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// How many [`Store::insert_batch`] calls this backend runs in parallel to advantage: the
    /// collector's default writer count and its spool replay fan-out. 1 (the default) for a
    /// single-writer engine.
    fn write_parallelism(&self) -> usize {
        1
    }

    /// Stores a batch. A row the backend cannot take is reported in
    /// [`BatchOutcome::rejected`] and the rest are stored; an `Err` means none were stored
    /// and the whole batch should be retried (spooled).
    fn insert_batch(&self, batch: &[Record]) -> Result<BatchOutcome, StoreError>;

    /// [`Store::insert_batch`] with what the caller already established about each record:
    /// `hints` is empty or holds one entry per record of `batch`. A backend may skip work a
    /// hint makes redundant; the stored result must be the same either way.
    fn insert_batch_hinted(
        &self,
        batch: &[Record],
        hints: &[RecordHint],
    ) -> Result<BatchOutcome, StoreError> {
        let _ = hints;
        self.insert_batch(batch)
    }

    /// Messages matching the filter, newest first, with the total count and a cursor.
    fn messages(&self, filter: &MessageFilter) -> Result<Page<StoredMessage>, StoreError>;

    /// Calls (one row per Call-ID) having at least one message matching the filter, newest
    /// first by start time.
    fn calls(&self, filter: &MessageFilter) -> Result<Page<CallSummary>, StoreError>;

    /// Every message of the given Call-IDs and of their correlated legs, found in both
    /// directions and transitively (a B-leg whose correlation id or A-leg header is an A-leg's
    /// Call-ID, and from a B-leg its A-leg), plus the RTCP, logs and events whose `sid` or
    /// correlation id is one of those Call-IDs, in time order (oldest first). `from_us`/`to_us`
    /// bound the search when given.
    fn call_flow(
        &self,
        call_ids: &[String],
        from_us: Option<i64>,
        to_us: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Reads the records of a time window in ascending `(time_us, id)`, a page at a time,
    /// after a position: the streaming read behind `hepstack import` (see [`ScanPage`] for
    /// the contract a backend must keep). The read is stable: while the window is not
    /// written to, the same request returns the same page, so a copy can resume from a
    /// checkpointed position. Backends serve it from their time index without counting or
    /// sorting the whole window: a page costs about its own size.
    fn scan(&self, request: &ScanRequest) -> Result<ScanPage, StoreError>;

    /// Drops partitions past their retention and, when over the size limit, the oldest ones.
    fn enforce_retention(&self, now_us: i64) -> Result<RetentionReport, StoreError>;

    /// Partition count and size.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Looks a user up by name.
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;

    /// Creates or replaces a user.
    fn put_user(&self, user: &User) -> Result<(), StoreError>;

    /// Number of users (zero on first start).
    fn user_count(&self) -> Result<u64, StoreError>;

    /// Every user, ordered by name.
    fn users(&self) -> Result<Vec<User>, StoreError>;

    /// Deletes a user; `Ok(false)` when there was none of that name.
    fn delete_user(&self, name: &str) -> Result<bool, StoreError>;

    /// Reads one application setting. Settings are small JSON or text documents the web and
    /// collector layers keep with the data (API token hashes, IP aliases, UI preferences),
    /// grouped by `namespace` (`tokens`, `aliases`, …) so each owner lists only its own.
    fn setting(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError>;

    /// Creates or replaces a setting (`Some(value)`) or deletes it (`None`).
    fn put_setting(
        &self,
        namespace: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Every setting of a namespace as (key, value), ordered by key.
    fn settings(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError>;
}

fn own(t: Option<sip::Text<'_>>) -> Option<CompactString> {
    t.map(|t| t.normalized().into())
}

impl SipFields {
    /// The fields of an indexed SIP message, as the collector stores them. `with_sdp_media`
    /// is false when the body was censored: its media addresses are then not kept either.
    pub fn from_message(msg: &sip::SipMessage<'_>, with_sdp_media: bool) -> SipFields {
        let status = msg.status_code();
        let method = match (msg.method(), status) {
            (Some(m), _) => m.normalized().into(),
            (None, Some(code)) => code.to_compact_string(),
            (None, None) => CompactString::default(),
        };
        let sdp_media = match (&msg.sdp, with_sdp_media) {
            (Some(sdp), true) => sdp
                .media
                .iter()
                .filter(|m| m.port != 0)
                .filter_map(|m| {
                    m.connection.map(|c| {
                        let ip = c.normalized();
                        let mut digits = itoa::Buffer::new();
                        let port = digits.format(m.port);
                        let mut media = String::with_capacity(ip.len() + 1 + port.len());
                        media.push_str(&ip);
                        media.push(':');
                        media.push_str(port);
                        media
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        SipFields {
            method,
            is_request: msg.is_request(),
            status,
            cseq: msg.cseq.as_ref().map(|c| {
                // Built by hand: `format_compact!` goes through `core::fmt`, a cost on
                // every message the collector stores.
                let mut cseq = CompactString::new(itoa::Buffer::new().format(c.number));
                cseq.push(' ');
                cseq.push_str(&c.method.normalized());
                cseq
            }),
            cseq_method: own(msg.cseq_method()),
            call_id: own(msg.call_id),
            ruri_user: own(msg.ruri_user()),
            ruri_domain: own(msg.ruri_domain()),
            from_user: own(msg.from_user()),
            from_domain: own(msg.from_domain()),
            from_tag: own(msg.from_tag()),
            to_user: own(msg.to_user()),
            to_domain: own(msg.to_domain()),
            to_tag: own(msg.to_tag()),
            contact_user: own(msg.contact_user()),
            pid_user: own(msg.pid_user()),
            auth_user: own(msg.auth_user),
            user_agent: own(msg.user_agent),
            server: own(msg.server),
            reason: msg.reason.as_ref().map(|r| r.raw.normalized().into()),
            content_type: own(msg.content_type),
            via_branch: own(msg.via_branch()),
            aleg_id: own(msg.aleg_id),
            custom_headers: msg
                .custom_headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.normalized().into_owned()))
                .collect(),
            sdp_media,
        }
    }
}
