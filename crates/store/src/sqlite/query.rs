//! Queries across partitions: messages, calls and call flows.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::types::Value;
use rusqlite::Connection;

use super::codec;
use super::partition::PartKey;
use super::schema::{self, IndexLayout};
use super::{Partition, SqliteStore};
pub use crate::calls::MAX_CALL_IDS;
use crate::calls::{
    call_page, check_flow_request, CallAgg, CallFold, CALL_CONTEXT_US, FLOW_ROUNDS,
};
use crate::{CallSummary, MessageFilter, Page, StoreError, StoredMessage, MAX_PAGE};

/// Page size when the filter asks for 0.
pub const DEFAULT_PAGE: usize = 100;
/// Ids bound per `IN (…)` list.
const CHUNK: usize = 500;
/// Longest JSON path accepted.
const MAX_JSON_PATH: usize = 256;

/// A parameter of a compiled condition: a value, or a bound of the time window the partition
/// and the filter share (known only per partition).
#[derive(Clone, Debug)]
enum Param {
    Value(Value),
    WindowFirst,
    WindowLast,
}

/// The index segments a segmented index is probed with (see
/// [`super::SqliteConfig::index_segment_rows`]): those
/// whose time span meets `[first, last]` µs. The planner turns `seg IN (…)` into one index
/// seek per segment.
const SEGMENTS: &str = "(SELECT seg FROM seg_span WHERE max_us >= ? AND min_us <= ?)";

/// The parameters of [`SEGMENTS`].
const WINDOW: [Param; 2] = [Param::WindowFirst, Param::WindowLast];

/// An equality on a column whose index leads with the segment.
fn segmented_eq(col: &str, value: Value, conds: &mut Vec<String>, params: &mut Vec<Param>) {
    conds.push(format!("(seg IN {SEGMENTS} AND {col} = ?)"));
    params.extend(WINDOW);
    params.push(Param::Value(value));
}

/// `n` session ids looked up in the segment-led session index: the window's segments (the
/// parameters of [`SEGMENTS`]), then the ids.
fn segmented_sid_in(n: usize) -> String {
    format!("(seg IN {SEGMENTS} AND sid IN ({}))", placeholders(n))
}

/// A `*` wildcard pattern as an SQLite GLOB pattern: `*` stays, the GLOB metacharacters `?`
/// and `[` are matched literally.
fn glob_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

/// `col = ?` for an exact value, `col GLOB ?` for a `*` pattern (the caller adds any index
/// prefix such as the index segments); ASCII case-insensitive when `ignore_case` (GLOB is
/// case-sensitive: upper case is compared with upper case).
fn text_cond(col: &str, value: &str, ignore_case: bool) -> (String, Value) {
    match (crate::has_wildcard(value), ignore_case) {
        (true, false) => (format!("{col} GLOB ?"), Value::Text(glob_pattern(value))),
        (true, true) => (
            format!("upper({col}) GLOB ?"),
            Value::Text(glob_pattern(&value.to_ascii_uppercase())),
        ),
        (false, false) => (format!("{col} = ?"), Value::Text(value.to_string())),
        (false, true) => (
            format!("{col} = ? COLLATE NOCASE"),
            Value::Text(value.to_string()),
        ),
    }
}

/// A text condition on a column whose index leads with the segment: exact values seek the
/// index; patterns filter inside the segments of the same index.
fn segmented_text(
    col: &str,
    value: &str,
    ignore_case: bool,
    conds: &mut Vec<String>,
    params: &mut Vec<Param>,
) {
    let (cond, v) = text_cond(col, value, ignore_case);
    conds.push(format!("(seg IN {SEGMENTS} AND {cond})"));
    params.extend(WINDOW);
    params.push(Param::Value(v));
}

/// A filter turned into SQL conditions (without the time bounds, which depend on the
/// partition), with the parameters in placeholder order.
struct Compiled {
    from_us: Option<i64>,
    to_us: Option<i64>,
    conds: Vec<String>,
    params: Vec<Param>,
    /// Some condition is served by an index, so that a page is best read with one statement
    /// per partition rather than by merging the time index's segments.
    indexed: bool,
}

impl Compiled {
    /// The first and last µs of this window within partition `key` (the parameters of
    /// [`SEGMENTS`]).
    fn window_in(&self, key: &PartKey) -> [Value; 2] {
        let first = self.from_us.map_or(key.start_us, |f| f.max(key.start_us));
        let last = self
            .to_us
            .map_or(key.end_us(), |t| t.min(key.end_us()))
            .saturating_sub(1);
        [Value::Integer(first), Value::Integer(last)]
    }

    /// `seg IN (…) AND sid IN (…)` for `ids` in partition `key`: the session index leads with
    /// the segment, so a lookup by session probes each segment of the window.
    fn sid_in(&self, key: &PartKey, ids: &[String]) -> (String, Vec<Value>) {
        let mut values = self.window_in(key).to_vec();
        values.extend(text_values(ids));
        (segmented_sid_in(ids.len()), values)
    }

    /// The WHERE clause for one partition: the filter, the time bounds unless the partition
    /// lies inside them, and `extra` conditions with their parameters.
    ///
    /// `layout` is the partition's. Where its time index leads with the segment, the bounds
    /// are written for one of two plans: `by_time` names the window's segments so that the
    /// time index serves the bounds (the plan when nothing narrower applies); otherwise the
    /// bounds are only checked (`+time_us`, which no index serves), because SQLite's planner,
    /// which has no statistics, would rather range-scan the time index than look a user or a
    /// Call-ID up in its own index (273 ms instead of 0.3 ms for a user's messages in an hour).
    fn where_for(
        &self,
        key: &PartKey,
        layout: IndexLayout,
        by_time: bool,
        extra: &[(&str, Vec<Value>)],
    ) -> (String, Vec<Value>) {
        let mut conds: Vec<String> = Vec::with_capacity(self.conds.len() + 4);
        let [first, last] = self.window_in(key);
        let mut params: Vec<Value> = self
            .params
            .iter()
            .map(|p| match p {
                Param::Value(v) => v.clone(),
                Param::WindowFirst => first.clone(),
                Param::WindowLast => last.clone(),
            })
            .collect();
        conds.extend(self.conds.iter().cloned());
        let column = if layout.time_segmented && !by_time {
            "+time_us"
        } else {
            "time_us"
        };
        let bounded = time_conds(
            key,
            self.from_us,
            self.to_us,
            column,
            &mut conds,
            &mut params,
        );
        if bounded && layout.time_segmented && by_time {
            conds.push(format!("seg IN {SEGMENTS}"));
            params.extend([first, last]);
        }
        for (cond, values) in extra {
            conds.push((*cond).to_string());
            params.extend(values.iter().cloned());
        }
        let clause = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        (clause, params)
    }
}

/// Adds the time-window conditions on `column` (`time_us` or `+time_us`) a partition needs:
/// none when it lies inside the window, which lets the planner pick the filter's index rather
/// than the time index. Returns whether it added any.
fn time_conds(
    key: &PartKey,
    from_us: Option<i64>,
    to_us: Option<i64>,
    column: &str,
    conds: &mut Vec<String>,
    params: &mut Vec<Value>,
) -> bool {
    let mut bounded = false;
    if let Some(f) = from_us.filter(|f| key.start_us < *f) {
        conds.push(format!("{column} >= ?"));
        params.push(Value::Integer(f));
        bounded = true;
    }
    if let Some(t) = to_us.filter(|t| key.end_us() > *t) {
        conds.push(format!("{column} < ?"));
        params.push(Value::Integer(t));
        bounded = true;
    }
    bounded
}

fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s
}

fn text_values<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<Value> {
    ids.into_iter().map(|s| Value::Text(s.clone())).collect()
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidQuery(msg.into())
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Converts a field path (`questions[0].name`, optionally prefixed with `payload.`) into an
/// SQLite JSON path (`$."questions"[0]."name"`). Keys may contain ASCII letters, digits and
/// `_ - @ :`; anything else (quotes, `$`, wildcards, spaces) is refused.
pub(crate) fn json_path(path: &str) -> Result<String, StoreError> {
    let bad = |why: &str| invalid(format!("JSON path `{path}`: {why}"));
    if path.len() > MAX_JSON_PATH {
        return Err(bad("too long"));
    }
    let rel = path.strip_prefix("payload.").unwrap_or(path);
    let mut out = String::from("$");
    let mut depth = 0;
    for segment in rel.split('.') {
        let (key, mut rest) = match segment.find('[') {
            Some(i) => segment.split_at(i),
            None => (segment, ""),
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@' | b':'))
        {
            return Err(bad("keys are letters, digits, `_`, `-`, `@` or `:`"));
        }
        out.push_str(&format!(".\"{key}\""));
        depth += 1;
        while !rest.is_empty() {
            let inner = rest.strip_prefix('[').ok_or_else(|| bad("expected `[`"))?;
            let close = inner.find(']').ok_or_else(|| bad("unclosed `[`"))?;
            let index: u32 = inner[..close]
                .parse()
                .map_err(|_| bad("array index must be a number"))?;
            out.push_str(&format!("[{index}]"));
            depth += 1;
            rest = &inner[close + 1..];
        }
        if depth > 32 {
            return Err(bad("too deep"));
        }
    }
    Ok(out)
}

/// Compiles a filter's non-time conditions.
fn compile(filter: &MessageFilter) -> Result<Compiled, StoreError> {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    if let (Some(f), Some(t)) = (filter.from_us, filter.to_us) {
        if f >= t {
            return Err(invalid(format!("empty time window: from {f} ≥ to {t}")));
        }
    }
    let v = Param::Value;
    if !filter.call_ids.is_empty() {
        if filter.call_ids.len() > MAX_CALL_IDS {
            return Err(invalid(format!(
                "at most {MAX_CALL_IDS} Call-IDs per query"
            )));
        }
        let (patterns, exact): (Vec<&String>, Vec<&String>) =
            filter.call_ids.iter().partition(|c| crate::has_wildcard(c));
        let mut any = Vec::new();
        if !exact.is_empty() {
            any.push(segmented_sid_in(exact.len()));
            params.extend(WINDOW);
            params.extend(text_values(exact).into_iter().map(v));
        }
        for p in patterns {
            // A pattern with a literal prefix (`abc*`) can still use the sid index.
            any.push(format!("(seg IN {SEGMENTS} AND sid GLOB ?)"));
            params.extend(WINDOW);
            params.push(v(Value::Text(glob_pattern(p))));
        }
        conds.push(format!("({})", any.join(" OR ")));
    }
    for (col, value, ignore_case) in [
        (
            "from_user",
            &filter.from_user,
            crate::user_ignores_case(filter.from_user.as_deref()),
        ),
        (
            "to_user",
            &filter.to_user,
            crate::user_ignores_case(filter.to_user.as_deref()),
        ),
        (
            "ruri_user",
            &filter.ruri_user,
            crate::user_ignores_case(filter.ruri_user.as_deref()),
        ),
        ("node", &filter.node, false),
    ] {
        if let Some(value) = value {
            segmented_text(col, value, ignore_case, &mut conds, &mut params);
        }
    }
    if let Some(user) = &filter.any_user {
        // Spelled out per column so that each branch can use its own segmented index.
        let mut branches = Vec::new();
        let ignore_case = crate::user_ignores_case(Some(user));
        for col in ["from_user", "to_user", "ruri_user"] {
            let (cond, value) = text_cond(col, user, ignore_case);
            branches.push(format!("(seg IN {SEGMENTS} AND {cond})"));
            params.extend(WINDOW);
            params.push(v(value));
        }
        conds.push(format!("({})", branches.join(" OR ")));
    }
    if let Some(agent) = &filter.user_agent {
        let (a, va) = text_cond("user_agent", agent, true);
        let (b, vb) = text_cond("server", agent, true);
        conds.push(format!("({a} OR {b})"));
        params.extend([v(va), v(vb)]);
    }
    if let Some(p) = filter.port {
        conds.push("(src_port = ? OR dst_port = ?)".into());
        params.extend([
            v(Value::Integer(i64::from(p))),
            v(Value::Integer(i64::from(p))),
        ]);
    }
    if let Some(p) = filter.src_port {
        conds.push("src_port = ?".into());
        params.push(v(Value::Integer(i64::from(p))));
    }
    if let Some(p) = filter.dst_port {
        conds.push("dst_port = ?".into());
        params.push(v(Value::Integer(i64::from(p))));
    }
    if let Some(ip) = &filter.ip {
        // Spelled out per branch so that each can use its own segmented index.
        conds.push(format!(
            "((seg IN {SEGMENTS} AND src_ip = ?) OR (seg IN {SEGMENTS} AND dst_ip = ?))"
        ));
        let ip = Value::Blob(codec::ip_bytes(ip));
        params.extend(WINDOW);
        params.push(v(ip.clone()));
        params.extend(WINDOW);
        params.push(v(ip));
    }
    if let Some(ip) = &filter.src_ip {
        segmented_eq(
            "src_ip",
            Value::Blob(codec::ip_bytes(ip)),
            &mut conds,
            &mut params,
        );
    }
    if let Some(ip) = &filter.dst_ip {
        segmented_eq(
            "dst_ip",
            Value::Blob(codec::ip_bytes(ip)),
            &mut conds,
            &mut params,
        );
    }
    if !filter.status.is_empty() {
        // A reply's HOMER method key is its status code: the method index serves both.
        let mut any = Vec::new();
        for code in &filter.status {
            let (cond, value) = text_cond("method", code, true);
            any.push(format!("(seg IN {SEGMENTS} AND is_request = 0 AND {cond})"));
            params.extend(WINDOW);
            params.push(v(value));
        }
        conds.push(format!("({})", any.join(" OR ")));
    }
    if !filter.method.is_empty() {
        let mut any = Vec::new();
        for m in &filter.method {
            if filter.status.is_empty() {
                let (cond, value) = text_cond("method", m, true);
                any.push(format!("(seg IN {SEGMENTS} AND {cond})"));
                params.extend(WINDOW);
                params.push(v(value));
            } else {
                // With a status: the method the reply answers.
                let (cond, value) = text_cond("cseq_method", m, true);
                any.push(cond);
                params.push(v(value));
            }
        }
        conds.push(format!("({})", any.join(" OR ")));
    }
    if let Some(t) = filter.hep_type {
        conds.push("hep_type = ?".into());
        params.push(v(Value::Integer(i64::from(t))));
    }
    if let Some(c) = filter
        .correlation_id
        .as_ref()
        .filter(|c| crate::has_wildcard(c))
    {
        let pattern = Value::Text(glob_pattern(c));
        conds.push(
            "((same_ids & 1 AND sid GLOB ?) OR (NOT same_ids & 1 AND correlation_id GLOB ?))"
                .into(),
        );
        params.extend([v(pattern.clone()), v(pattern)]);
    } else if let Some(c) = &filter.correlation_id {
        // Same-as-sid correlation ids are found through the sid index, the others through the
        // partial correlation index.
        conds.push(format!(
            "((seg IN {SEGMENTS} AND sid = ? AND same_ids & 1) OR correlation_id = ?)"
        ));
        params.extend(WINDOW);
        params.extend([v(Value::Text(c.clone())), v(Value::Text(c.clone()))]);
    }
    if let Some(text) = &filter.text {
        conds.push("raw_contains(raw, raw_len, ?)".into());
        params.push(v(Value::Blob(text.as_bytes().to_vec())));
    }
    for (path, value) in &filter.json {
        let p = json_path(path)?;
        // CASE evaluates lazily: rows whose payload is not JSON never reach json_type.
        // `payload_json(…)` reads the JSON back from `raw` where it is stored only there; the
        // inner SELECT evaluates it once per row instead of once per use.
        conds.push(
            "(SELECT CASE WHEN json_valid(j) THEN (CASE json_type(j, ?) \
             WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
             ELSE CAST(json_extract(j, ?) AS TEXT) END) END \
             FROM (SELECT payload_json(payload_json, same_ids, raw, raw_len) AS j)) = ?"
                .into(),
        );
        params.extend([
            v(Value::Text(p.clone())),
            v(Value::Text(p)),
            v(Value::Text(value.clone())),
        ]);
    }
    // Every condition an index serves names the window's segments (all of those indexes lead
    // with the segment).
    let indexed = conds.iter().any(|c| c.contains("seg IN"));
    Ok(Compiled {
        from_us: filter.from_us,
        to_us: filter.to_us,
        conds,
        params,
        indexed,
    })
}

/// The index the call list's per-session aggregate of one partition reads. The session index
/// holds every column the aggregate needs, so scanning all of it (0.15 µs an entry) beats
/// seeking the window in the time index and reading each row (0.8 µs a row, plus the sort of
/// the grouping) unless the window covers under a fifth of the partition's period. SQLite's
/// planner, without statistics, always takes the time index when both bounds are given.
fn aggregate_index(key: &PartKey, from_us: Option<i64>, to_us: Option<i64>) -> &'static str {
    let start = from_us.map_or(key.start_us, |f| f.max(key.start_us));
    let end = to_us.map_or(key.end_us(), |t| t.min(key.end_us()));
    let covered = i128::from(end.saturating_sub(start).max(0));
    let period = i128::from(key.end_us().saturating_sub(key.start_us).max(1));
    if covered * 5 >= period {
        "ix_sid"
    } else {
        "ix_time"
    }
}

fn page_limit(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

fn count(conn: &Connection, clause: &str, params: &[Value]) -> Result<u64, StoreError> {
    let sql = format!("SELECT count(*) FROM msg{clause}");
    let n: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0)))
        .map_err(db_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The rows of a partition whose time is in `[first, last]` (the values of
/// [`Compiled::window_in`]), without a filter. Segments inside the window count by their
/// `seg_span.rows`, which is exact: it is written in the transaction of its rows, and rows are
/// never deleted (retention removes whole files). Only the segments that the window's ends cut
/// are counted in the time index. This way the total of the search screen's opening page costs
/// a read of `seg_span` and not a walk over every row of the window.
fn count_window(conn: &Connection, window: &[Value; 2]) -> Result<u64, StoreError> {
    let whole: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(rows), 0) FROM seg_span WHERE min_us >= ?1 AND max_us <= ?2",
        )
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(window.iter()), |r| r.get(0)))
        .map_err(db_err)?;
    let cut: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM msg INDEXED BY ix_time WHERE seg IN (SELECT seg FROM seg_span \
             WHERE max_us >= ?1 AND min_us <= ?2 AND (min_us < ?1 OR max_us > ?2)) \
             AND time_us >= ?1 AND time_us <= ?2",
        )
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(window.iter()), |r| r.get(0)))
        .map_err(db_err)?;
    Ok(u64::try_from(whole.saturating_add(cut)).unwrap_or(0))
}

/// Runs a `SELECT {SELECT_COLUMNS} …` on one partition and hands each message to `each`, in
/// the statement's order, stopping at the first error.
fn for_each_message(
    conn: &Connection,
    part: &Partition,
    max_raw: usize,
    sql: &str,
    params: &[Value],
    mut each: impl FnMut(StoredMessage) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let key = part.key;
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |row| {
            schema::read_message(
                row,
                |rowid| key.global_id(rowid),
                max_raw,
                &part.dictionaries,
            )
        })
        .map_err(db_err)?;
    for row in rows {
        each(row.map_err(db_err)?)?;
    }
    Ok(())
}

impl SqliteStore {
    pub(super) fn query_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Page<StoredMessage>, StoreError> {
        let compiled = compile(filter)?;
        let limit = page_limit(filter.limit);
        let cursor = match &filter.cursor {
            Some(c) => Some(codec::parse_message_cursor(c).ok_or_else(|| invalid("bad cursor"))?),
            None => None,
        };
        let max_raw = self.config.max_raw_bytes;
        let mut total = 0u64;
        // Newest first, at most limit + 1 kept (the extra one tells whether a next page exists).
        let mut items: Vec<StoredMessage> = Vec::new();
        let mut more_elsewhere = false;
        for key in self.partitions_in(compiled.from_us, compiled.to_us) {
            let Some(part) = self.partition(key, false).map_err(StoreError::Backend)? else {
                continue;
            };
            let page_full_before = items.len() >= limit
                && items
                    .get(limit - 1)
                    .is_some_and(|last| key.end_us() <= last.record.time_us);
            let newer_than_cursor = cursor.is_some_and(|(t, _)| key.start_us > t);
            let fetched = self.with_reader(&part, |conn| {
                let layout = part.layout();
                let n = if compiled.conds.is_empty() && layout.time_segmented {
                    count_window(conn, &compiled.window_in(&key))?
                } else {
                    let (clause, params) = compiled.where_for(&key, layout, !compiled.indexed, &[]);
                    count(conn, &clause, &params)?
                };
                if n == 0 || page_full_before || newer_than_cursor {
                    return Ok((n, Vec::new()));
                }
                let extra: Vec<(&str, Vec<Value>)> = match cursor {
                    Some((t, id)) => vec![(
                        "(time_us < ? OR (time_us = ? AND id < ?))",
                        vec![
                            Value::Integer(t),
                            Value::Integer(t),
                            Value::Integer(key.local_bound(id)),
                        ],
                    )],
                    None => Vec::new(),
                };
                let read = |index: &str, extra: &[(&str, Vec<Value>)]| {
                    let (clause, mut params) =
                        compiled.where_for(&key, layout, !compiled.indexed, extra);
                    params.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
                    let sql = format!(
                        "SELECT {} FROM msg{index}{clause} ORDER BY time_us DESC, id DESC LIMIT ?",
                        schema::SELECT_COLUMNS
                    );
                    let mut rows = Vec::new();
                    for_each_message(conn, &part, max_raw, &sql, &params, |m| {
                        rows.push(m);
                        Ok(())
                    })?;
                    Ok::<_, StoreError>(rows)
                };
                if compiled.indexed || !layout.time_segmented {
                    return Ok((n, read("", &extra)?));
                }
                // No index narrows the filter: walk the time index newest first, one segment
                // at a time, newest segment end first, until no further segment can hold a row
                // of the page (capture times may arrive out of order, so segments overlap).
                let [first, mut last] = compiled.window_in(&key);
                if let (Some((t, _)), Value::Integer(l)) = (cursor, &last) {
                    last = Value::Integer(t.min(*l));
                }
                let segments: Vec<(i64, i64)> = conn
                    .prepare_cached(
                        "SELECT seg, max_us FROM seg_span WHERE max_us >= ? AND min_us <= ? \
                         ORDER BY max_us DESC, seg DESC",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_map([first, last], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect()
                    })
                    .map_err(db_err)?;
                let mut rows: Vec<StoredMessage> = Vec::new();
                for (segment, max_us) in segments {
                    if rows.get(limit).is_some_and(|m| m.record.time_us > max_us) {
                        break;
                    }
                    let mut in_segment = extra.clone();
                    in_segment.push(("seg = ?", vec![Value::Integer(segment)]));
                    rows.extend(read(" INDEXED BY ix_time", &in_segment)?);
                    rows.sort_by_key(|m| std::cmp::Reverse((m.record.time_us, m.id)));
                    rows.truncate(limit + 1);
                }
                Ok((n, rows))
            })?;
            let Some((n, rows)) = fetched else { continue };
            total += n;
            if n > 0 && page_full_before && !newer_than_cursor {
                more_elsewhere = true;
            }
            if !rows.is_empty() {
                items.extend(rows);
                items.sort_by_key(|m| std::cmp::Reverse((m.record.time_us, m.id)));
                items.truncate(limit + 1);
            }
        }
        let has_more = items.len() > limit || more_elsewhere;
        items.truncate(limit);
        let next = if has_more {
            items
                .last()
                .map(|m| codec::message_cursor(m.record.time_us, m.id))
        } else {
            None
        };
        Ok(Page { total, items, next })
    }

    pub(super) fn query_calls(
        &self,
        filter: &MessageFilter,
    ) -> Result<Page<CallSummary>, StoreError> {
        let compiled = compile(filter)?;
        let limit = page_limit(filter.limit);
        let cursor = match &filter.cursor {
            Some(c) => Some(codec::parse_call_cursor(c).ok_or_else(|| invalid("bad cursor"))?),
            None => None,
        };
        let cap = self.config.max_calls_scan;
        let too_many = || {
            invalid(format!(
                "more than {cap} calls match: narrow the time window or the filter"
            ))
        };
        let keys = self.partitions_in(compiled.from_us, compiled.to_us);
        let window = Compiled {
            from_us: compiled.from_us,
            to_us: compiled.to_us,
            conds: vec!["is_sip = 1".into()],
            params: Vec::new(),
            indexed: false,
        };
        // The same window as a range of the segment-led session index.
        let segment_window = Compiled {
            conds: vec![format!("seg IN {SEGMENTS}"), "is_sip = 1".into()],
            params: WINDOW.to_vec(),
            ..window
        };
        let mut calls: HashMap<String, CallAgg> = HashMap::new();
        let unfiltered = compiled.conds.is_empty();
        // Phase 1: the matching Call-IDs; without conditions, directly their aggregates.
        for key in &keys {
            let Some(part) = self.partition(*key, false).map_err(StoreError::Backend)? else {
                continue;
            };
            self.with_reader(&part, |conn| {
                if unfiltered {
                    // Segment-led session index: read the window's segments of it alone, in
                    // index order (one group per segment a call has messages in; merged below).
                    let (clause, params, index, group) = if part.layout().sid_segmented {
                        let (clause, params) = segment_window.where_for(key, part.layout(), false, &[]);
                        (clause, params, "ix_sid", "seg, sid")
                    } else {
                        let (clause, params) = window.where_for(key, part.layout(), true, &[]);
                        (clause, params, aggregate_index(key, compiled.from_us, compiled.to_us), "sid")
                    };
                    let sql = format!("SELECT sid, min(time_us), max(time_us), count(*) FROM msg INDEXED BY {index}{clause} GROUP BY {group}");
                    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
                    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(db_err)?;
                    while let Some(row) = rows.next().map_err(db_err)? {
                        let sid: String = row.get(0).map_err(db_err)?;
                        let n: i64 = row.get(3).map_err(db_err)?;
                        let agg = CallAgg { start_us: row.get(1).map_err(db_err)?, end_us: row.get(2).map_err(db_err)?, count: u64::try_from(n).unwrap_or(0) };
                        if let Some(a) = calls.get_mut(&sid) {
                            a.merge(agg.start_us, agg.end_us, agg.count);
                        } else if calls.len() < cap {
                            calls.insert(sid, agg);
                        } else {
                            return Err(too_many());
                        }
                    }
                } else {
                    let (clause, params) = compiled.where_for(key, part.layout(), !compiled.indexed, &[("is_sip = 1", Vec::new())]);
                    let sql = format!("SELECT DISTINCT sid FROM msg{clause}");
                    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
                    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(db_err)?;
                    while let Some(row) = rows.next().map_err(db_err)? {
                        let sid: String = row.get(0).map_err(db_err)?;
                        if !calls.contains_key(&sid) {
                            if calls.len() >= cap {
                                return Err(too_many());
                            }
                            calls.insert(sid, CallAgg::EMPTY);
                        }
                    }
                }
                Ok(())
            })?;
        }
        // Phase 2 (filtered): every SIP message of those calls in the window counts, also in
        // partitions where no message matched.
        if !unfiltered && !calls.is_empty() {
            let sids: Vec<String> = calls.keys().cloned().collect();
            for key in &keys {
                let Some(part) = self.partition(*key, false).map_err(StoreError::Backend)? else {
                    continue;
                };
                self.with_reader(&part, |conn| {
                    for chunk in sids.chunks(CHUNK) {
                        let (cond, values) = window.sid_in(key, chunk);
                        let (clause, params) = window.where_for(key, part.layout(), false, &[(&cond, values)]);
                        let sql = format!("SELECT sid, min(time_us), max(time_us), count(*) FROM msg{clause} GROUP BY sid");
                        let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
                        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter())).map_err(db_err)?;
                        while let Some(row) = rows.next().map_err(db_err)? {
                            let sid: String = row.get(0).map_err(db_err)?;
                            let n: i64 = row.get(3).map_err(db_err)?;
                            if let Some(a) = calls.get_mut(&sid) {
                                a.merge(row.get(1).map_err(db_err)?, row.get(2).map_err(db_err)?, u64::try_from(n).unwrap_or(0));
                            }
                        }
                    }
                    Ok(())
                })?;
            }
        }
        call_page(
            calls,
            filter,
            cursor,
            limit,
            |sids| self.fold_calls(&compiled, sids),
            codec::call_cursor,
        )
    }

    /// Folds every SIP message of the calls `sids` around the window of `compiled` (see
    /// CALL_CONTEXT_US) into their summaries' state.
    fn fold_calls(
        &self,
        compiled: &Compiled,
        sids: &[String],
    ) -> Result<HashMap<String, CallFold>, StoreError> {
        let mut folds: HashMap<String, CallFold> = sids
            .iter()
            .map(|sid| (sid.clone(), CallFold::default()))
            .collect();
        if sids.is_empty() {
            return Ok(folds);
        }
        let context = Compiled {
            from_us: compiled.from_us.map(|t| t.saturating_sub(CALL_CONTEXT_US)),
            to_us: compiled.to_us.map(|t| t.saturating_add(CALL_CONTEXT_US)),
            conds: vec!["is_sip = 1".into()],
            params: Vec::new(),
            indexed: false,
        };
        for key in &self.partitions_in(context.from_us, context.to_us) {
            let Some(part) = self.partition(*key, false).map_err(StoreError::Backend)? else {
                continue;
            };
            self.with_reader(&part, |conn| {
                for chunk in sids.chunks(CHUNK) {
                    let (cond, values) = context.sid_in(key, chunk);
                    let (clause, params) =
                        context.where_for(key, part.layout(), false, &[(&cond, values)]);
                    let sql = format!("SELECT {} FROM msg{clause}", schema::CALL_COLUMNS);
                    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
                    let mut rows = stmt
                        .query(rusqlite::params_from_iter(params.iter()))
                        .map_err(db_err)?;
                    while let Some(row) = rows.next().map_err(db_err)? {
                        let call_row = schema::read_call_row(row, |rowid| key.global_id(rowid))
                            .map_err(db_err)?;
                        if let Some(fold) = folds.get_mut(&call_row.sid) {
                            fold.add(call_row);
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(folds)
    }

    pub(super) fn query_call_flow(
        &self,
        call_ids: &[String],
        from_us: Option<i64>,
        to_us: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if !check_flow_request(call_ids, from_us, to_us)? {
            return Ok(Vec::new());
        }
        let window = Compiled {
            from_us,
            to_us,
            conds: Vec::new(),
            params: Vec::new(),
            indexed: false,
        };
        let keys = self.partitions_in(from_us, to_us);
        let mut set: HashSet<String> = HashSet::new();
        let mut frontier: Vec<String> = Vec::new();
        for id in call_ids {
            if set.insert(id.clone()) {
                frontier.push(id.clone());
            }
        }
        // Closure over the correlation relation, bounded in rounds and ids.
        for _round in 0..FLOW_ROUNDS {
            if frontier.is_empty() || set.len() >= MAX_CALL_IDS {
                break;
            }
            let mut found: BTreeSet<String> = BTreeSet::new();
            for key in &keys {
                let Some(part) = self.partition(*key, false).map_err(StoreError::Backend)? else {
                    continue;
                };
                self.with_reader(&part, |conn| {
                    for chunk in frontier.chunks(CHUNK / 2) {
                        let list = placeholders(chunk.len());
                        // B-legs: SIP messages pointing at an id of the set.
                        let cond = format!(
                            "is_sip = 1 AND (correlation_id IN ({list}) OR aleg_id IN ({list}))"
                        );
                        let mut values = text_values(chunk);
                        values.extend(text_values(chunk));
                        let (clause, params) =
                            window.where_for(key, part.layout(), false, &[(&cond, values)]);
                        let sql = format!("SELECT DISTINCT sid FROM msg{clause}");
                        let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
                        let sids = stmt
                            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                                r.get::<_, String>(0)
                            })
                            .map_err(db_err)?;
                        for sid in sids {
                            found.insert(sid.map_err(db_err)?);
                        }
                        // A-legs: what the set's messages point at.
                        let (sid_in, values) = window.sid_in(key, chunk);
                        let cond = format!(
                            "{sid_in} AND (correlation_id IS NOT NULL OR aleg_id IS NOT NULL)"
                        );
                        let (clause, params) =
                            window.where_for(key, part.layout(), false, &[(&cond, values)]);
                        let sql =
                            format!("SELECT DISTINCT correlation_id, aleg_id FROM msg{clause}");
                        let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
                        let pairs = stmt
                            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                                Ok((
                                    r.get::<_, Option<String>>(0)?,
                                    r.get::<_, Option<String>>(1)?,
                                ))
                            })
                            .map_err(db_err)?;
                        for pair in pairs {
                            let (corr, aleg) = pair.map_err(db_err)?;
                            found.extend(corr);
                            found.extend(aleg);
                        }
                    }
                    Ok(())
                })?;
            }
            frontier.clear();
            for id in found {
                if set.len() >= MAX_CALL_IDS {
                    break;
                }
                if set.insert(id.clone()) {
                    frontier.push(id);
                }
            }
        }
        // Every message of the set: by sid, or by a correlation id in the set.
        let ids: Vec<String> = set.into_iter().collect();
        let cap = self.config.max_flow_messages;
        let max_raw = self.config.max_raw_bytes;
        let mut seen: HashSet<(i64, i64)> = HashSet::new();
        let mut out: Vec<StoredMessage> = Vec::new();
        for key in &keys {
            let Some(part) = self.partition(*key, false).map_err(StoreError::Backend)? else {
                continue;
            };
            self.with_reader(&part, |conn| {
                for chunk in ids.chunks(CHUNK / 2) {
                    let list = placeholders(chunk.len());
                    let (sid_in, mut values) = window.sid_in(key, chunk);
                    let cond = format!("({sid_in} OR correlation_id IN ({list}))");
                    values.extend(text_values(chunk));
                    let (clause, params) = window.where_for(key, part.layout(), false, &[(&cond, values)]);
                    let sql = format!("SELECT {} FROM msg{clause}", schema::SELECT_COLUMNS);
                    for_each_message(conn, &part, max_raw, &sql, &params, |msg| {
                        if seen.insert((msg.record.time_us, msg.id)) {
                            if out.len() >= cap {
                                return Err(invalid(format!("call flow has more than {cap} messages: narrow the time window")));
                            }
                            out.push(msg);
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
        }
        out.sort_by_key(|m| (m.record.time_us, m.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        assert_eq!(
            json_path("questions[0].name").unwrap(),
            "$.\"questions\"[0].\"name\""
        );
        assert_eq!(
            json_path("payload.a.b[2][3].c").unwrap(),
            "$.\"a\".\"b\"[2][3].\"c\""
        );
        for bad in [
            "", "a..b", "a[x]", "a\"b", "a[0", "$.a", "a b", "a.*", "a[0]x",
        ] {
            assert!(json_path(bad).is_err(), "{bad}");
        }
    }
}
