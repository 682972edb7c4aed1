//! Partition schema, connection setup and the row ↔ [`Record`] mapping.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use super::codec;
use super::config::{IndexKind, RawCompression, SqliteConfig};
use super::dictionary::{self, PartitionDictionaries, RawDictionary};
use super::row_insert::RowInsert;
use crate::{CompactString, Profile, Record, SipFields, StoredMessage};

/// One table per partition file. Every [`Record`] field is a flat typed column (the SIP fields
/// too; their two lists as JSON text) so that filters are plain column comparisons. `is_sip`
/// tells `sip: None` from `sip: Some(empty)`; `raw` is the codec-tagged payload (see
/// [`codec::encode_raw`]) and `raw_len` its original length. The correlation id and the
/// Call-ID usually repeat the `sid`: they are then stored NULL with a bit in `same_ids`
/// ([`SAME_CORRELATION`], [`SAME_CALL_ID`]), which saves ~75 bytes per SIP row and makes
/// `correlation_id IS NOT NULL` mean "points at another session". A SIP row whose fields are
/// what its raw message yields leaves the detail columns NULL ([`SIP_FROM_RAW`]).
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS msg (
    id INTEGER PRIMARY KEY,
    time_us INTEGER NOT NULL,
    seg INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    hep_type INTEGER NOT NULL,
    hep_version INTEGER NOT NULL,
    ip_family INTEGER NOT NULL,
    ip_proto INTEGER NOT NULL,
    src_ip BLOB NOT NULL,
    src_port INTEGER NOT NULL,
    dst_ip BLOB NOT NULL,
    dst_port INTEGER NOT NULL,
    capture_id INTEGER NOT NULL,
    node TEXT,
    correlation_id TEXT,
    sid TEXT NOT NULL,
    same_ids INTEGER NOT NULL,
    profile INTEGER NOT NULL,
    is_sip INTEGER NOT NULL,
    method TEXT,
    is_request INTEGER,
    status INTEGER,
    cseq TEXT,
    cseq_method TEXT,
    call_id TEXT,
    ruri_user TEXT,
    ruri_domain TEXT,
    from_user TEXT,
    from_domain TEXT,
    from_tag TEXT,
    to_user TEXT,
    to_domain TEXT,
    to_tag TEXT,
    contact_user TEXT,
    pid_user TEXT,
    auth_user TEXT,
    user_agent TEXT,
    server TEXT,
    reason TEXT,
    content_type TEXT,
    via_branch TEXT,
    aleg_id TEXT,
    custom_headers TEXT,
    sdp_media TEXT,
    payload_json TEXT,
    raw_len INTEGER NOT NULL,
    raw BLOB NOT NULL
)";

/// Indexes every partition has: time order for paging and the session id for calls and flows.
/// Both lead with the index segment like the optional indexes below (see [`CREATE_SEGMENTS`]).
///
/// The time index: SQLite appends the rowid, so within a segment it gives the `(time_us, id)`
/// order of the cursor, and newest-first pages merge the segments of their window
/// (`query.rs`). Led by the time alone it was the costliest index to write whenever capture
/// times arrive out of order: a batch whose times spread over a few minutes (a capture agent
/// that flushes whole calls, clocks that disagree, the load generator) dirtied every page of
/// that span at each commit. On 4 M synthesized messages it was 70 % of the WAL frames, each
/// of its pages written 16 times, and its insert cost 14 % of the ingest rate.
///
/// The session index also holds `is_sip` and the time so that the call list's aggregate
/// (every SIP message of the window grouped by session: first, last, count) reads the index
/// alone instead of one table row per message: 1.7× faster for 9 more bytes per row. Led by
/// the session id it dirtied one page per insert (Call-IDs are random), and each commit
/// rewrote most of the index into the WAL: ~570 MB/s to disk for 6 M messages at 61k
/// messages/s; led by the segment, 101k/s at half the disk writes. Lookups by session probe
/// each segment of the window (`seg IN (…) AND sid IN (…)`), and the call-list aggregate
/// groups by `(seg, sid)` and merges the segments' parts.
///
/// Partitions written by earlier versions keep `(time_us)` and `(sid, is_sip, time_us)`;
/// [`IndexLayout::of`] tells them apart.
const BASE_INDEXES: [&str; 2] = [
    "CREATE INDEX IF NOT EXISTS ix_time ON msg(seg, time_us)",
    "CREATE INDEX IF NOT EXISTS ix_sid ON msg(seg, sid, is_sip, time_us)",
];

/// Which base indexes of a partition file lead with the segment (files created by this
/// version: both; earlier files: the session index only, or neither).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IndexLayout {
    /// `ix_sid` is `(seg, sid, …)` rather than `(sid, …)`.
    pub sid_segmented: bool,
    /// `ix_time` is `(seg, time_us)` rather than `(time_us)`.
    pub time_segmented: bool,
}

impl IndexLayout {
    /// Reads the layout from the file's schema; None while the writer that creates the file
    /// has not created its indexes yet (the layout is then not known, nor to be remembered).
    pub(crate) fn of(conn: &Connection) -> rusqlite::Result<Option<IndexLayout>> {
        // Some(whether it leads with the segment), None when the index does not exist.
        let leads_with_seg = |index: &str| -> rusqlite::Result<Option<bool>> {
            let sql: Option<String> = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                    [index],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(sql.map(|s| s.replace(' ', "").contains("(seg,")))
        };
        // The writer creates ix_time before ix_sid.
        let Some(sid_segmented) = leads_with_seg("ix_sid")? else {
            return Ok(None);
        };
        Ok(Some(IndexLayout {
            sid_segmented,
            time_segmented: leads_with_seg("ix_time")?.unwrap_or(false),
        }))
    }
}

/// Why the user, IP, method and node indexes lead with an index segment (`seg`): an index on
/// a random key (a user, an IP) dirties one page per inserted row once it is larger than a
/// batch, and SQLite writes every dirty page to the WAL at each commit (and again at the
/// checkpoint), which made those indexes cost more than the table itself. Led by the segment
/// number, inserts only touch the pages of the newest segment: at most
/// [`SqliteConfig::index_segment_rows`] entries per index, a few dozen pages, which a large
/// commit fills about once. A segment counts rows, not time, so this bound holds at any ingest
/// rate (a fixed 2-second time bucket grows with the rate and, at 100k rows/s, made the same
/// indexes 1.8× dearer). Queries probe each segment whose time span (table `seg_span`) meets
/// their window.
const CREATE_SEGMENTS: &str = "CREATE TABLE IF NOT EXISTS seg_span (
    seg INTEGER PRIMARY KEY,
    min_us INTEGER NOT NULL,
    max_us INTEGER NOT NULL,
    rows INTEGER NOT NULL
)";

/// Widens a segment's span by the rows a transaction added to it.
pub(crate) const UPSERT_SEGMENT: &str =
    "INSERT INTO seg_span (seg, min_us, max_us, rows) VALUES (?1, ?2, ?3, ?4) \
    ON CONFLICT (seg) DO UPDATE SET min_us = min(min_us, excluded.min_us), \
    max_us = max(max_us, excluded.max_us), rows = rows + excluded.rows";

/// The DDL of an optional index. Partial where most rows would carry NULL or a duplicate of
/// another index (the queries repeat the partial condition so the planner can use them).
fn index_ddl(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Correlation => {
            "CREATE INDEX IF NOT EXISTS ix_corr ON msg(correlation_id) WHERE correlation_id IS NOT NULL"
        }
        IndexKind::Aleg => "CREATE INDEX IF NOT EXISTS ix_aleg ON msg(aleg_id) WHERE aleg_id IS NOT NULL",
        IndexKind::FromUser => "CREATE INDEX IF NOT EXISTS ix_from ON msg(seg, from_user) WHERE from_user IS NOT NULL",
        IndexKind::ToUser => "CREATE INDEX IF NOT EXISTS ix_to ON msg(seg, to_user) WHERE to_user IS NOT NULL",
        IndexKind::RuriUser => "CREATE INDEX IF NOT EXISTS ix_ruri ON msg(seg, ruri_user) WHERE ruri_user IS NOT NULL",
        IndexKind::SrcIp => "CREATE INDEX IF NOT EXISTS ix_src ON msg(seg, src_ip)",
        IndexKind::DstIp => "CREATE INDEX IF NOT EXISTS ix_dst ON msg(seg, dst_ip)",
        IndexKind::Method => {
            "CREATE INDEX IF NOT EXISTS ix_method ON msg(seg, method COLLATE NOCASE) WHERE method IS NOT NULL"
        }
        IndexKind::Node => "CREATE INDEX IF NOT EXISTS ix_node ON msg(seg, node) WHERE node IS NOT NULL",
    }
}

/// The inserted columns: those of [`CREATE_TABLE`] minus `id`, in order.
const INSERT_COLUMNS: &str = "time_us, seg, received_us, hep_type, hep_version, ip_family, \
    ip_proto, src_ip, src_port, dst_ip, dst_port, capture_id, node, correlation_id, sid, same_ids, profile, \
    is_sip, method, is_request, status, cseq, cseq_method, call_id, ruri_user, ruri_domain, from_user, from_domain, \
    from_tag, to_user, to_domain, to_tag, contact_user, pid_user, auth_user, user_agent, server, reason, \
    content_type, via_branch, aleg_id, custom_headers, sdp_media, payload_json, raw_len, raw";

/// Values per inserted row: the count of [`INSERT_COLUMNS`].
pub(crate) const INSERT_VALUES: usize = 46;

/// Rows per multi-row insert statement (see `row_insert`'s module documentation): a writer
/// batch goes in as statements of this many rows, its remainder one row at a time.
/// 32 rows × 46 values stays far below SQLite's limit of 32,766 parameters.
pub(crate) const ROWS_PER_INSERT: usize = 32;

/// The insert statement for `rows` rows. `OR FAIL` so that a row refused by a constraint
/// leaves the rows before it in place (an `ABORT` would undo the whole statement, and SQLite
/// would keep a statement journal to be able to).
pub(crate) fn insert_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; INSERT_VALUES].join(", "));
    format!(
        "INSERT OR FAIL INTO msg ({INSERT_COLUMNS}) VALUES {}",
        vec![row; rows.max(1)].join(", ")
    )
}

/// Every column, in the order [`read_message`] expects.
pub(crate) const SELECT_COLUMNS: &str = "id, time_us, received_us, hep_type, hep_version, ip_family, ip_proto, \
    src_ip, src_port, dst_ip, dst_port, capture_id, node, \
    CASE WHEN same_ids & 1 THEN sid ELSE correlation_id END, sid, profile, is_sip, method, \
    is_request, status, cseq, cseq_method, CASE WHEN same_ids & 2 THEN sid ELSE call_id END, ruri_user, ruri_domain, from_user, from_domain, from_tag, \
    to_user, to_domain, to_tag, contact_user, pid_user, auth_user, user_agent, server, reason, content_type, \
    via_branch, aleg_id, custom_headers, sdp_media, payload_json, raw_len, raw, same_ids & 4, same_ids & 8";

/// Columns of the call summary, in the order [`read_call_row`] expects (no payloads).
pub(crate) const CALL_COLUMNS: &str =
    "id, time_us, sid, CASE WHEN same_ids & 1 THEN sid ELSE correlation_id END, aleg_id, node, src_ip, dst_ip, method, is_request, status, \
     cseq_method, from_user, to_user, ruri_user";

/// Page size of newly created partition files, in bytes.
pub(crate) const PAGE_SIZE: i64 = 32 * 1024;

/// Size a writer's WAL file is cut back to after a checkpoint, as a multiple of the checkpoint
/// size (`wal_checkpoint_kib`): an active writer reuses its WAL file's blocks instead of the
/// file system freeing and allocating them at every checkpoint (a limit of 8 MiB under a
/// 128 MiB checkpoint stored 4.5 % less per second on 10 M messages). Idle writers give the
/// space back: see [`PartitionWriter::truncate_wal`].
const WAL_SIZE_LIMIT_FACTOR: i64 = 2;

/// How long a connection waits for a lock held by another connection (another process, or a
/// checkpoint) before reporting busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating) a partition for writing: WAL journal with `synchronous=NORMAL`, so a commit
/// is an append to the WAL without fsync; a killed process loses nothing committed (the WAL is
/// in the OS page cache and replayed on the next open), only an OS crash or power loss can lose
/// the transactions since the last checkpoint.
pub(crate) fn open_writer(path: &Path, config: &SqliteConfig) -> rusqlite::Result<PartitionWriter> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Only takes effect when the file is created (before WAL mode is set); older partitions
    // keep their page size. Why 32 KiB: on the store benchmark (7 optional indexes) inserts
    // ran ~30 % faster per CPU-second than with 4 KiB pages (shallower B-trees, fewer page
    // splits and fewer WAL frames per commit) and rows took ~5 % less disk.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -i64::from(config.writer_cache_kib))?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The WAL grows to `wal_checkpoint_kib` between checkpoints (the setting counts pages,
    // so it is derived from the page size the file really has).
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let checkpoint_bytes = i64::from(config.wal_checkpoint_kib.max(64)) * 1024;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        (checkpoint_bytes / page_size.max(512)).max(1),
    )?;
    conn.pragma_update(
        None,
        "journal_size_limit",
        WAL_SIZE_LIMIT_FACTOR * checkpoint_bytes,
    )?;
    conn.execute_batch(CREATE_TABLE)?;
    conn.execute_batch(CREATE_SEGMENTS)?;
    conn.execute_batch(dictionary::CREATE_DICTIONARIES)?;
    for ddl in BASE_INDEXES {
        conn.execute_batch(ddl)?;
    }
    for kind in &config.indexes {
        conn.execute_batch(index_ddl(*kind))?;
    }
    conn.set_prepared_statement_cache_capacity(16);
    let (segment, segment_rows) = conn
        .query_row(
            "SELECT seg, rows FROM seg_span ORDER BY seg DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, 0));
    let dictionaries = conn
        .prepare("SELECT id FROM raw_dict")?
        .query_map([], |r| r.get::<_, u32>(0))?
        .collect::<rusqlite::Result<HashSet<u32>>>()?;
    Ok(PartitionWriter {
        insert: RowInsert::prepare(&conn, &insert_sql(1))?,
        insert_many: RowInsert::prepare(&conn, &insert_sql(ROWS_PER_INSERT))?,
        conn,
        segment,
        segment_rows,
        segment_limit: i64::from(config.index_segment_rows.max(1)),
        dictionaries,
        last_commit: Instant::now(),
        wal_truncated: false,
    })
}

/// The write connection of a partition and the index segment its next rows go to.
pub(crate) struct PartitionWriter {
    /// The one-row insert, prepared once. The statements are declared before `conn` so that
    /// they are dropped (finalized) before the connection closes.
    pub insert: RowInsert,
    /// The insert of [`ROWS_PER_INSERT`] rows.
    pub insert_many: RowInsert,
    pub conn: Connection,
    /// The newest segment.
    segment: i64,
    /// Rows already in it (committed).
    segment_rows: i64,
    /// [`SqliteConfig::index_segment_rows`].
    segment_limit: i64,
    /// Ids of the raw dictionaries the file holds.
    dictionaries: HashSet<u32>,
    /// When the last transaction committed (or the connection opened).
    last_commit: Instant,
    /// Whether the WAL was truncated since that commit.
    wal_truncated: bool,
}

impl PartitionWriter {
    /// Hands out the segments of the rows written next. Applied with
    /// [`PartitionWriter::advance`] only once the transaction committed, so a rolled back batch
    /// leaves the cursor where the file is.
    pub fn plan(&self) -> SegmentPlan {
        SegmentPlan {
            segment: self.segment,
            segment_rows: self.segment_rows,
            limit: self.segment_limit,
        }
    }

    /// Whether the file holds this raw dictionary.
    pub fn has_dictionary(&self, id: u32) -> bool {
        self.dictionaries.contains(&id)
    }

    /// Records that a committed transaction stored this raw dictionary.
    pub fn dictionary_stored(&mut self, id: u32) {
        self.dictionaries.insert(id);
    }

    /// Moves the cursor to where a committed plan ended.
    pub fn advance(&mut self, plan: &SegmentPlan) {
        self.segment = plan.segment;
        self.segment_rows = plan.segment_rows;
        self.last_commit = Instant::now();
        self.wal_truncated = false;
    }

    /// When the writer committed nothing for `idle_for`, checkpoints the whole WAL into the
    /// database and truncates the WAL file to zero bytes, so that a partition no longer written
    /// (the previous hour's) does not keep up to [`WAL_SIZE_LIMIT_FACTOR`] times
    /// `wal_checkpoint_kib` of WAL on disk. Readers
    /// holding an old snapshot make the checkpoint busy: it then waits at most `max_wait` and
    /// is tried again at the next call. Returns whether the WAL was truncated.
    pub fn truncate_wal(&mut self, idle_for: Duration, max_wait: Duration) -> bool {
        if self.wal_truncated || self.last_commit.elapsed() < idle_for {
            return false;
        }
        let _ = self.conn.busy_timeout(max_wait);
        // Row: (busy, WAL frames, frames checkpointed); busy = 1 when readers blocked it.
        let busy: rusqlite::Result<i64> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0));
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        self.wal_truncated = matches!(busy, Ok(0));
        self.wal_truncated
    }
}

/// Assigns consecutive rows to segments of at most `limit` rows.
pub(crate) struct SegmentPlan {
    segment: i64,
    segment_rows: i64,
    limit: i64,
}

impl SegmentPlan {
    /// The segment of the next row.
    pub fn next_segment(&mut self) -> i64 {
        if self.segment_rows >= self.limit {
            self.segment += 1;
            self.segment_rows = 0;
        }
        self.segment_rows += 1;
        self.segment
    }
}

/// Opens an existing partition for queries (never creates one) with the `raw_contains` and
/// `payload_json` functions registered; `dicts` resolves the file's raw dictionaries.
pub(crate) fn open_reader(
    path: &Path,
    max_raw_bytes: usize,
    dicts: Arc<PartitionDictionaries>,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.pragma_update(None, "cache_size", -16_384)?;
    let contains_dicts = dicts.clone();
    conn.create_scalar_function(
        "raw_contains",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let blob = ctx.get_raw(0).as_blob().unwrap_or(&[]);
            let len = ctx.get::<i64>(1)?;
            let needle = match ctx.get_raw(2) {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => t,
                _ => &[],
            };
            Ok(codec::raw_contains(
                blob,
                len,
                needle,
                max_raw_bytes,
                Some(&contains_dicts),
            ))
        },
    )?;
    // payload_json(payload_json, same_ids, raw, raw_len): the row's payload JSON, decoded from
    // `raw` when it is stored only there (SAME_RAW_JSON); NULL for rows without JSON.
    conn.create_scalar_function(
        "payload_json",
        4,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            if let Ok(text) = ctx.get_raw(0).as_str() {
                return Ok(Some(text.to_owned()));
            }
            if ctx.get::<i64>(1)? & SAME_RAW_JSON == 0 {
                return Ok(None);
            }
            let blob = ctx.get_raw(2).as_blob().unwrap_or(&[]);
            let len = ctx.get::<i64>(3)?;
            Ok(codec::decode_raw(blob, len, max_raw_bytes, Some(&dicts))
                .ok()
                .and_then(|raw| payload_json_of(None, true, &raw)))
        },
    )?;
    Ok(conn)
}

/// A record prepared for insertion outside the partition lock (compression and JSON encoding
/// are the costly parts and run in the caller's thread).
pub(crate) struct PreparedRow<'a> {
    pub record: &'a Record,
    pub src_ip: Vec<u8>,
    pub dst_ip: Vec<u8>,
    pub custom_headers: Option<String>,
    pub sdp_media: Option<String>,
    pub raw: Vec<u8>,
    /// The SIP detail fields are what the raw message yields ([`SIP_FROM_RAW`]).
    pub sip_from_raw: bool,
}

impl<'a> PreparedRow<'a> {
    /// Encodes a record; fails (the row is rejected) only when its payload is over the limit.
    pub fn new(
        record: &'a Record,
        compression: RawCompression,
        zstd_level: i32,
        dict: Option<&RawDictionary>,
        max_raw: usize,
        known_sip_from_raw: bool,
    ) -> Result<Self, String> {
        if record.raw.len() > max_raw {
            return Err(format!(
                "raw payload of {} bytes above the limit of {max_raw}",
                record.raw.len()
            ));
        }
        let (custom_headers, sdp_media) = match &record.sip {
            Some(sip) => (
                (!sip.custom_headers.is_empty())
                    .then(|| serde_json::to_string(&sip.custom_headers))
                    .transpose()
                    .map_err(|e| e.to_string())?,
                (!sip.sdp_media.is_empty())
                    .then(|| serde_json::to_string(&sip.sdp_media))
                    .transpose()
                    .map_err(|e| e.to_string())?,
            ),
            None => (None, None),
        };
        let sip_from_raw = record.sip.as_ref().is_some_and(|sip| {
            // The pipeline's promise (RecordHint) spares re-indexing the message; test builds
            // check every promise.
            debug_assert!(
                !known_sip_from_raw || sip_derived_from(&record.raw, sip) == *sip,
                "RecordHint::sip_from_raw given for a record whose SIP fields differ from its raw message"
            );
            known_sip_from_raw || sip_derived_from(&record.raw, sip) == *sip
        });
        Ok(PreparedRow {
            record,
            sip_from_raw,
            src_ip: codec::ip_bytes(&record.src_ip),
            dst_ip: codec::ip_bytes(&record.dst_ip),
            custom_headers,
            sdp_media,
            raw: codec::encode_raw(&record.raw, compression, zstd_level, dict),
        })
    }

    /// The row's values for the insert statement, in the order of [`INSERT_COLUMNS`], borrowed
    /// from the row and its record.
    pub fn values(&self, segment: i64) -> [ValueRef<'_>; INSERT_VALUES] {
        let r = self.record;
        // Non-SIP rows leave every SIP column NULL.
        let sip = r.sip.as_ref();
        let is_sip = sip.is_some();
        let same_correlation = r.correlation_id.as_deref() == Some(r.sid.as_str());
        let same_call_id = sip.is_some_and(|s| s.call_id.as_deref() == Some(r.sid.as_str()));
        let json_is_raw = json_is_raw(r);
        let same_ids = if same_correlation {
            SAME_CORRELATION
        } else {
            0
        } | if same_call_id { SAME_CALL_ID } else { 0 }
            | if json_is_raw { SAME_RAW_JSON } else { 0 }
            | if self.sip_from_raw { SIP_FROM_RAW } else { 0 };
        fn int(v: i64) -> ValueRef<'static> {
            ValueRef::Integer(v)
        }
        fn text(v: Option<&str>) -> ValueRef<'_> {
            v.map_or(ValueRef::Null, |t| ValueRef::Text(t.as_bytes()))
        }
        // A SIP column: NULL for other rows.
        let field = |get: fn(&SipFields) -> &Option<CompactString>| {
            text(sip.and_then(|s| get(s).as_deref()))
        };
        // A detail column: also NULL when the raw message yields it on read.
        let detail = |get: fn(&SipFields) -> &Option<CompactString>| {
            if self.sip_from_raw {
                ValueRef::Null
            } else {
                field(get)
            }
        };
        [
            int(r.time_us),
            int(segment),
            int(r.received_us),
            int(r.hep_type.into()),
            int(r.hep_version.into()),
            int(r.ip_family.into()),
            int(r.ip_proto.into()),
            ValueRef::Blob(&self.src_ip),
            int(r.src_port.into()),
            ValueRef::Blob(&self.dst_ip),
            int(r.dst_port.into()),
            int(r.capture_id.into()),
            text(r.node.as_deref()),
            text(r.correlation_id.as_deref().filter(|_| !same_correlation)),
            text(Some(&r.sid)),
            int(same_ids),
            int(profile_code(r.profile)),
            int(is_sip.into()),
            text(sip.map(|s| s.method.as_str())),
            sip.map_or(ValueRef::Null, |s| int(s.is_request.into())),
            sip.and_then(|s| s.status)
                .map_or(ValueRef::Null, |v| int(v.into())),
            detail(|s| &s.cseq),
            field(|s| &s.cseq_method),
            if same_call_id {
                ValueRef::Null
            } else {
                field(|s| &s.call_id)
            },
            field(|s| &s.ruri_user),
            detail(|s| &s.ruri_domain),
            field(|s| &s.from_user),
            detail(|s| &s.from_domain),
            detail(|s| &s.from_tag),
            field(|s| &s.to_user),
            detail(|s| &s.to_domain),
            detail(|s| &s.to_tag),
            detail(|s| &s.contact_user),
            detail(|s| &s.pid_user),
            detail(|s| &s.auth_user),
            field(|s| &s.user_agent),
            field(|s| &s.server),
            detail(|s| &s.reason),
            detail(|s| &s.content_type),
            detail(|s| &s.via_branch),
            field(|s| &s.aleg_id),
            text(self.custom_headers.as_deref()),
            text(self.sdp_media.as_deref().filter(|_| !self.sip_from_raw)),
            text(r.payload_json.as_deref().filter(|_| !json_is_raw)),
            int(i64::try_from(r.raw.len()).unwrap_or(i64::MAX)),
            ValueRef::Blob(&self.raw),
        ]
    }
}

/// `same_ids` bit: the correlation id equals the sid (stored NULL).
pub(crate) const SAME_CORRELATION: i64 = 1;
/// `same_ids` bit: the SIP Call-ID equals the sid (stored NULL).
pub(crate) const SAME_CALL_ID: i64 = 2;
/// `same_ids` bit: the payload JSON is the raw payload itself, without its surrounding ASCII
/// whitespace (JSON reports such as RTCP from rtpengine, kept byte for byte): stored NULL and
/// read back from `raw`. Why: otherwise every such row carried its JSON twice, once
/// compressed in `raw` and once as plain text, ~400–700 bytes more per RTCP row.
pub(crate) const SAME_RAW_JSON: i64 = 4;

/// `same_ids` bit: the record's SIP fields are exactly what [`sip_derived_from`] yields for its
/// raw message, so the detail columns (CSeq, domains, tags, contact/P-Asserted/auth users,
/// reason, content type, Via branch, SDP media) are stored NULL and derived again on read.
/// The columns that filters, indexes and the call list read (method, status, CSeq method,
/// Call-ID, users, user agent, server) and what the ingest configuration added (A-leg id,
/// custom headers) are always stored. Why: ~125 bytes less per SIP row; the raw message is
/// the source of truth, as in the PostgreSQL store, and re-indexing a page of messages on read
/// costs about a microsecond per message.
pub(crate) const SIP_FROM_RAW: i64 = 8;

/// The SIP fields the collector derives from `raw` (as `SipFields::from_message` with SDP
/// media), with the A-leg id and custom headers of `sip`, which depend on the ingest
/// configuration and are stored as columns.
pub(crate) fn sip_derived_from(raw: &[u8], sip: &SipFields) -> SipFields {
    let mut derived = SipFields::from_message(&sip::index(raw), true);
    derived.aleg_id = sip.aleg_id.clone();
    derived.custom_headers = sip.custom_headers.clone();
    derived
}

/// Whether a record's payload JSON is its raw payload (see [`SAME_RAW_JSON`]).
pub(crate) fn json_is_raw(record: &Record) -> bool {
    record
        .payload_json
        .as_deref()
        .is_some_and(|json| json.as_bytes() == record.raw.trim_ascii())
}

/// The payload JSON of a row: the stored text, or the raw payload when [`SAME_RAW_JSON`].
pub(crate) fn payload_json_of(
    stored: Option<String>,
    json_is_raw: bool,
    raw: &[u8],
) -> Option<String> {
    match stored {
        Some(text) => Some(text),
        None if json_is_raw => std::str::from_utf8(raw.trim_ascii())
            .ok()
            .map(str::to_owned),
        None => None,
    }
}

/// Stored code of a profile.
pub(crate) fn profile_code(p: Profile) -> i64 {
    match p {
        Profile::Call => 0,
        Profile::Registration => 1,
        Profile::Default => 2,
    }
}

fn profile_from_code(c: i64) -> rusqlite::Result<Profile> {
    match c {
        0 => Ok(Profile::Call),
        1 => Ok(Profile::Registration),
        2 => Ok(Profile::Default),
        other => Err(bad_value(format!("profile code {other}"))),
    }
}

fn bad_value(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, msg.into())
}

fn ip_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<std::net::IpAddr> {
    let bytes: Vec<u8> = row.get(idx)?;
    codec::ip_from_bytes(&bytes).ok_or_else(|| bad_value(format!("IP of {} bytes", bytes.len())))
}

fn small<T: TryFrom<i64>>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let v: i64 = row.get(idx)?;
    T::try_from(v).map_err(|_| bad_value(format!("value {v} out of range in column {idx}")))
}

fn json_list<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Vec<T>> {
    match row.get::<_, Option<String>>(idx)? {
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| bad_value(format!("column {idx}: {e}")))
        }
        None => Ok(Vec::new()),
    }
}

/// A nullable text column, read without an intermediate `String`.
fn text(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<CompactString>> {
    Ok(row.get_ref(i)?.as_str_or_null()?.map(CompactString::from))
}

/// Reads a row selected with [`SELECT_COLUMNS`] into a message with its global id.
pub(crate) fn read_message(
    row: &Row<'_>,
    tag_shift: impl Fn(i64) -> i64,
    max_raw: usize,
    dicts: &PartitionDictionaries,
) -> rusqlite::Result<StoredMessage> {
    let raw_len: i64 = row.get(43)?;
    let blob = row.get_ref(44)?.as_blob()?;
    let raw = codec::decode_raw(blob, raw_len, max_raw, Some(dicts)).map_err(bad_value)?;
    let is_sip: bool = row.get(16)?;
    let sip = if is_sip {
        let stored = SipFields {
            method: text(row, 17)?.unwrap_or_default(),
            is_request: row.get::<_, Option<bool>>(18)?.unwrap_or(false),
            status: row
                .get::<_, Option<i64>>(19)?
                .and_then(|s| u16::try_from(s).ok()),
            cseq: text(row, 20)?,
            cseq_method: text(row, 21)?,
            call_id: text(row, 22)?,
            ruri_user: text(row, 23)?,
            ruri_domain: text(row, 24)?,
            from_user: text(row, 25)?,
            from_domain: text(row, 26)?,
            from_tag: text(row, 27)?,
            to_user: text(row, 28)?,
            to_domain: text(row, 29)?,
            to_tag: text(row, 30)?,
            contact_user: text(row, 31)?,
            pid_user: text(row, 32)?,
            auth_user: text(row, 33)?,
            user_agent: text(row, 34)?,
            server: text(row, 35)?,
            reason: text(row, 36)?,
            content_type: text(row, 37)?,
            via_branch: text(row, 38)?,
            aleg_id: text(row, 39)?,
            custom_headers: json_list(row, 40)?,
            sdp_media: json_list(row, 41)?,
        };
        Some(if row.get::<_, i64>(46)? != 0 {
            // The stored columns equal the derivation; the detail columns are NULL.
            sip_derived_from(&raw, &stored)
        } else {
            stored
        })
    } else {
        None
    };
    let payload_json = payload_json_of(row.get(42)?, row.get::<_, i64>(45)? != 0, &raw);
    let record = Record {
        time_us: row.get(1)?,
        received_us: row.get(2)?,
        hep_type: small(row, 3)?,
        hep_version: small(row, 4)?,
        ip_family: small(row, 5)?,
        ip_proto: small(row, 6)?,
        src_ip: ip_col(row, 7)?,
        src_port: small(row, 8)?,
        dst_ip: ip_col(row, 9)?,
        dst_port: small(row, 10)?,
        capture_id: small(row, 11)?,
        node: row.get(12)?,
        correlation_id: row.get(13)?,
        sid: row.get(14)?,
        profile: profile_from_code(row.get(15)?)?,
        sip,
        payload_json,
        raw,
    };
    Ok(StoredMessage {
        id: tag_shift(row.get(0)?),
        record,
    })
}

/// Reads a row selected with [`CALL_COLUMNS`].
pub(crate) fn read_call_row(
    row: &Row<'_>,
    tag_shift: impl Fn(i64) -> i64,
) -> rusqlite::Result<crate::calls::CallRow> {
    Ok(crate::calls::CallRow {
        id: tag_shift(row.get(0)?),
        time_us: row.get(1)?,
        sid: row.get(2)?,
        correlation_id: row.get(3)?,
        aleg_id: row.get(4)?,
        node: row.get(5)?,
        src_ip: ip_col(row, 6)?,
        dst_ip: ip_col(row, 7)?,
        method: row.get(8)?,
        is_request: row.get::<_, Option<bool>>(9)?.unwrap_or(false),
        status: row
            .get::<_, Option<i64>>(10)?
            .and_then(|s| u16::try_from(s).ok()),
        cseq_method: row.get(11)?,
        from_user: row.get(12)?,
        to_user: row.get(13)?,
        ruri_user: row.get(14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_binds_one_value_per_column_of_the_table_but_id() {
        let columns: Vec<&str> = INSERT_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(columns.len(), INSERT_VALUES);
        let table: Vec<&str> = CREATE_TABLE
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != ")" && *c != "id")
            .collect();
        assert_eq!(columns, table);
        let sql = insert_sql(3);
        assert_eq!(sql.matches('?').count(), 3 * INSERT_VALUES);
        assert!(sql.starts_with("INSERT OR FAIL INTO msg ("));
    }
}
