//! The stored record and the query model shared by every backend.

use std::net::IpAddr;

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
/// Every field is owned text copied out of the indexer's zero-copy view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipFields {
    /// Request method (`INVITE`) for requests, status code as text (`200`) for replies, as
    /// HOMER's `method` key does.
    pub method: String,
    /// True for requests, false for replies.
    pub is_request: bool,
    /// Status code of a reply.
    pub status: Option<u16>,
    /// The CSeq header value, e.g. `1 INVITE`.
    pub cseq: Option<String>,
    /// The CSeq method (decides the profile; tells what a reply answers).
    pub cseq_method: Option<String>,
    /// Call-ID.
    pub call_id: Option<String>,
    /// Request-URI user and host.
    pub ruri_user: Option<String>,
    /// Request-URI host.
    pub ruri_domain: Option<String>,
    /// From URI user.
    pub from_user: Option<String>,
    /// From URI host.
    pub from_domain: Option<String>,
    /// From tag.
    pub from_tag: Option<String>,
    /// To URI user.
    pub to_user: Option<String>,
    /// To URI host.
    pub to_domain: Option<String>,
    /// To tag.
    pub to_tag: Option<String>,
    /// Contact URI user.
    pub contact_user: Option<String>,
    /// P-Asserted-Identity user (Remote-Party-ID as fallback).
    pub pid_user: Option<String>,
    /// Authorization / Proxy-Authorization username.
    pub auth_user: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// Server header.
    pub server: Option<String>,
    /// Reason header value.
    pub reason: Option<String>,
    /// Content-Type.
    pub content_type: Option<String>,
    /// Branch of the top Via.
    pub via_branch: Option<String>,
    /// A-leg Call-ID from the configured A-leg headers (X-CID …).
    pub aleg_id: Option<String>,
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

/// A record read back from a store, with the backend's row identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Backend row id; unique within the store together with `record.time_us`.
    pub id: i64,
    /// The record.
    pub record: Record,
}

/// Search filter for messages and calls. Every set field must match (AND); empty means any.
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
    /// SIP method or status code as text (HOMER's `method` key), case-insensitive for methods.
    pub method: Option<String>,
    /// Node name.
    pub node: Option<String>,
    /// HEP proto type.
    pub hep_type: Option<u8>,
    /// Correlation id, exact.
    pub correlation_id: Option<String>,
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

/// A storage backend. Implementations are shared between the writer threads and the HTTP
/// server, hence `Send + Sync`; every method may block.
pub trait Store: Send + Sync {
    /// Short backend name for logs and metrics (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Stores a batch. A row the backend cannot take is reported in
    /// [`BatchOutcome::rejected`] and the rest are stored; an `Err` means none were stored
    /// and the whole batch should be retried (spooled).
    fn insert_batch(&self, batch: &[Record]) -> Result<BatchOutcome, StoreError>;

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
}
