//! Messages, calls and call flows over the ClickHouse tables, with the same answers as the
//! other backends. Values are inlined as escaped literals (ClickHouse 18.16 has no query
//! parameters); every filter field maps to a typed column.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::codec::{self, lit, lit_list, Reader};
use super::schema::{class_of_type, read_columns, DATA_TABLES, HOUR_US, LINKS};
use super::ChStore;
use crate::calls::{
    call_page, check_flow_request, CallAgg, CallFold, CallRow, CALL_CONTEXT_US, FLOW_ROUNDS,
    MAX_CALL_IDS,
};
use crate::postgres::codec::{
    call_cursor, message_cursor, parse_call_cursor, parse_message_cursor,
};
use crate::postgres::query::json_path;
use crate::{
    has_wildcard, CallSummary, MessageFilter, Page, ScanPage, ScanPosition, ScanRequest,
    StoreError, StoredMessage, MAX_PAGE, MAX_SCAN,
};

/// Page size when the filter asks for 0.
const DEFAULT_PAGE: usize = 100;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidQuery(msg.into())
}

fn page_limit(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

/// A `*` wildcard as a LIKE pattern (`%`, `_` and `\` escaped), as a literal.
fn like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    lit(&out)
}

/// `present` has the bit.
fn has(bit: u32) -> String {
    format!("bitAnd(present, {}) != 0", 1u64 << bit)
}

/// A compiled filter.
pub(crate) struct Where {
    /// Conditions, ANDed.
    pub conds: Vec<String>,
    /// How many of `conds` are the time bounds.
    time_conds: usize,
    /// Only SIP rows can match.
    sip_only: bool,
    hep_type: Option<u8>,
    /// JSON conditions, applied to the decoded rows.
    json: Vec<(String, String)>,
}

/// Time bounds as conditions on `time_us` and the `hour` key column.
fn time_conds(from_us: Option<i64>, to_us: Option<i64>) -> Vec<String> {
    let hour = |us: i64| us.div_euclid(HOUR_US).clamp(0, i64::from(u32::MAX));
    let mut out = Vec::new();
    if let Some(f) = from_us {
        out.push(format!("hour >= {} AND time_us >= {f}", hour(f)));
    }
    if let Some(t) = to_us {
        out.push(format!(
            "hour <= {} AND time_us < {t}",
            hour(t.saturating_sub(1))
        ));
    }
    out
}

/// An exact or `*`-wildcard match of an optional text column (its presence bit set).
fn text_cond(column: &str, bit: Option<u32>, value: &str, ignore_case: bool) -> String {
    let m = if has_wildcard(value) {
        if ignore_case {
            format!("like(lower({column}), lower({}))", like(value))
        } else {
            format!("like({column}, {})", like(value))
        }
    } else if ignore_case {
        format!("lower({column}) = lower({})", lit(value))
    } else {
        format!("{column} = {}", lit(value))
    };
    match bit {
        Some(b) => format!("({} AND {m})", has(b)),
        None => m,
    }
}

fn sip_cond(column: &str, value: &str, ignore_case: bool) -> String {
    text_cond(column, codec::sip_text_bit(column), value, ignore_case)
}

/// Compiles a filter's conditions (time included).
pub(crate) fn compile(filter: &MessageFilter) -> Result<Where, StoreError> {
    if let (Some(f), Some(t)) = (filter.from_us, filter.to_us) {
        if f >= t {
            return Err(invalid(format!("empty time window: from {f} ≥ to {t}")));
        }
    }
    let mut conds = time_conds(filter.from_us, filter.to_us);
    let time = conds.len();
    let mut sip_only = false;
    if !filter.call_ids.is_empty() {
        if filter.call_ids.len() > MAX_CALL_IDS {
            return Err(invalid(format!(
                "at most {MAX_CALL_IDS} Call-IDs per query"
            )));
        }
        let (patterns, exact): (Vec<&String>, Vec<&String>) =
            filter.call_ids.iter().partition(|c| has_wildcard(c));
        let mut any = Vec::new();
        if !exact.is_empty() {
            any.push(format!(
                "sid IN {}",
                lit_list(exact.iter().map(|s| s.as_str()))
            ));
        }
        for p in patterns {
            any.push(format!("like(sid, {})", like(p)));
        }
        conds.push(format!("({})", any.join(" OR ")));
    }
    for (column, value) in [
        ("from_user", &filter.from_user),
        ("to_user", &filter.to_user),
        ("ruri_user", &filter.ruri_user),
    ] {
        if let Some(v) = value {
            conds.push(sip_cond(column, v, crate::user_ignores_case(Some(v))));
            sip_only = true;
        }
    }
    if let Some(v) = &filter.any_user {
        let ignore_case = crate::user_ignores_case(Some(v));
        let any: Vec<String> = ["from_user", "to_user", "ruri_user"]
            .iter()
            .map(|c| sip_cond(c, v, ignore_case))
            .collect();
        conds.push(format!("({})", any.join(" OR ")));
        sip_only = true;
    }
    if let Some(v) = &filter.user_agent {
        conds.push(format!(
            "({} OR {})",
            sip_cond("user_agent", v, true),
            sip_cond("server", v, true)
        ));
        sip_only = true;
    }
    if !filter.status.is_empty() {
        let any: Vec<String> = filter
            .status
            .iter()
            .map(|code| text_cond("toString(status)", None, code, false))
            .collect();
        conds.push(format!(
            "(is_request = 0 AND {} AND ({}))",
            has(codec::bit::STATUS),
            any.join(" OR ")
        ));
        sip_only = true;
    }
    if !filter.method.is_empty() {
        // With a status, the method the reply answers: its CSeq method.
        let (column, bit) = if filter.status.is_empty() {
            ("method", None)
        } else {
            ("cseq_method", codec::sip_text_bit("cseq_method"))
        };
        let any: Vec<String> = filter
            .method
            .iter()
            .map(|m| text_cond(column, bit, m, true))
            .collect();
        conds.push(format!("({column} != '' AND ({}))", any.join(" OR ")));
        sip_only = true;
    }
    if let Some(n) = &filter.node {
        conds.push(text_cond("node", Some(codec::bit::NODE), n, false));
    }
    if let Some(c) = &filter.correlation_id {
        conds.push(text_cond(
            "correlation_id",
            Some(codec::bit::CORRELATION),
            c,
            false,
        ));
    }
    if let Some(ip) = &filter.ip {
        let ip = lit(&ip.to_string());
        conds.push(format!("(src_ip = {ip} OR dst_ip = {ip})"));
    }
    if let Some(ip) = &filter.src_ip {
        conds.push(format!("src_ip = {}", lit(&ip.to_string())));
    }
    if let Some(ip) = &filter.dst_ip {
        conds.push(format!("dst_ip = {}", lit(&ip.to_string())));
    }
    if let Some(port) = filter.port {
        conds.push(format!("(src_port = {port} OR dst_port = {port})"));
    }
    if let Some(port) = filter.src_port {
        conds.push(format!("src_port = {port}"));
    }
    if let Some(port) = filter.dst_port {
        conds.push(format!("dst_port = {port}"));
    }
    if let Some(t) = filter.hep_type {
        conds.push(format!("hep_type = {t}"));
    }
    if let Some(text) = &filter.text {
        if !text.is_empty() {
            conds.push(format!("position(raw, {}) > 0", lit(text)));
        }
    }
    for (path, value) in &filter.json {
        let keys = json_path(path)?;
        conds.push(has(codec::bit::PAYLOAD_JSON));
        // Cheap necessary conditions: the last key and a plain value appear in the text.
        if let Some(key) = keys.iter().rev().find(|k| k.parse::<u32>().is_err()) {
            conds.push(format!(
                "position(payload_json, {}) > 0",
                lit(&format!("\"{key}\""))
            ));
        }
        if !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:_@+-".contains(&b))
        {
            conds.push(format!("position(payload_json, {}) > 0", lit(value)));
        }
    }
    Ok(Where {
        conds,
        time_conds: time,
        sip_only,
        hep_type: filter.hep_type,
        json: filter.json.clone(),
    })
}

impl Where {
    /// The data tables the query has to look at.
    fn tables(&self) -> Vec<&'static str> {
        if self.sip_only {
            return vec![DATA_TABLES[0]];
        }
        match self.hep_type {
            Some(t) => {
                let mut out = vec![DATA_TABLES[0]];
                let class = DATA_TABLES[class_of_type(t)];
                if !out.contains(&class) {
                    out.push(class);
                }
                out
            }
            None => DATA_TABLES.to_vec(),
        }
    }

    fn clause(&self, extra: &[String]) -> String {
        let all: Vec<&String> = self.conds.iter().chain(extra).collect();
        if all.is_empty() {
            String::new()
        } else {
            format!(
                " WHERE {}",
                all.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" AND ")
            )
        }
    }

    /// Whether a decoded row passes the JSON conditions.
    fn json_matches(&self, m: &StoredMessage) -> bool {
        self.json.is_empty()
            || MessageFilter {
                json: self.json.clone(),
                ..MessageFilter::default()
            }
            .matches(&m.record, false)
    }
}

/// Full rows of `tables` matching `w` plus `extra`, each table's part ordered and limited
/// as given (`order` may be empty).
fn fetch(
    store: &ChStore,
    tables: &[&str],
    w: &Where,
    extra: &[String],
    order: &str,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let columns = read_columns();
    let parts: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT {columns} FROM {t}{}{order} LIMIT {limit}",
                w.clause(extra)
            )
        })
        .collect();
    let sql = format!("{} FORMAT RowBinary", parts.join(" UNION ALL "));
    let out = store.http.query(&sql)?;
    codec::decode_rows(&out)
}

fn newest_first(items: &mut [StoredMessage]) {
    items.sort_unstable_by_key(|m| std::cmp::Reverse((m.record.time_us, m.id)));
}

pub(crate) fn messages(
    store: &ChStore,
    filter: &MessageFilter,
) -> Result<Page<StoredMessage>, StoreError> {
    let w = compile(filter)?;
    let limit = page_limit(filter.limit);
    let cursor = match &filter.cursor {
        Some(c) => Some(parse_message_cursor(c).ok_or_else(|| invalid("bad cursor"))?),
        None => None,
    };
    let tables = w.tables();
    let (total, mut items) = if w.json.is_empty() {
        let counts: Vec<String> = tables
            .iter()
            .map(|t| format!("SELECT count() FROM {t}{}", w.clause(&[])))
            .collect();
        let out = store
            .http
            .query(&format!("{} FORMAT RowBinary", counts.join(" UNION ALL ")))?;
        let mut r = Reader::new(&out);
        let mut total = 0u64;
        while !r.done() {
            total += r.u64()?;
        }
        let extra: Vec<String> = cursor
            .iter()
            .map(|(t, id)| {
                format!(
                    "hour <= {} AND (time_us < {t} OR (time_us = {t} AND id < {id}))",
                    t.div_euclid(HOUR_US).clamp(0, i64::from(u32::MAX))
                )
            })
            .collect();
        let items = fetch(
            store,
            &tables,
            &w,
            &extra,
            " ORDER BY time_us DESC, id DESC",
            limit + 1,
        )?;
        (total, items)
    } else {
        // JSON conditions are applied here: read the candidates (bounded), keep the matches.
        let cap = store.config.max_json_scan;
        let rows = fetch(store, &tables, &w, &[], "", cap + 1)?;
        if rows.len() > cap {
            return Err(invalid(format!(
                "more than {cap} candidate rows for a JSON search: narrow the time window or the filter"
            )));
        }
        let matched: Vec<StoredMessage> = rows.into_iter().filter(|m| w.json_matches(m)).collect();
        let total = matched.len() as u64;
        let items = matched
            .into_iter()
            .filter(|m| cursor.map_or(true, |c| (m.record.time_us, m.id) < c))
            .collect();
        (total, items)
    };
    newest_first(&mut items);
    let has_more = items.len() > limit;
    items.truncate(limit);
    let next = if has_more {
        items.last().map(|m| message_cursor(m.record.time_us, m.id))
    } else {
        None
    };
    Ok(Page { total, items, next })
}

/// `IN` or `GLOBAL IN` (a subquery over a Distributed table runs once, not per shard).
fn in_op(store: &ChStore) -> &'static str {
    if store.cluster.is_some() {
        "GLOBAL IN"
    } else {
        "IN"
    }
}

/// Per-Call-ID aggregates of the SIP rows of the window whose Call-ID is in `sids` (a list
/// literal or a subquery), at most `cap` of them.
fn aggregates(
    store: &ChStore,
    window: &[String],
    sids: Option<&str>,
    cap: usize,
) -> Result<HashMap<String, CallAgg>, StoreError> {
    let mut conds: Vec<String> = window.to_vec();
    if let Some(s) = sids {
        conds.push(format!("sid {} {s}", in_op(store)));
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT sid, min(time_us), max(time_us), count() FROM {}{clause} GROUP BY sid LIMIT {} FORMAT RowBinary",
        DATA_TABLES[0],
        cap + 1
    );
    let out = store.http.query(&sql)?;
    let mut r = Reader::new(&out);
    let mut calls = HashMap::new();
    while !r.done() {
        let sid = r.string()?;
        let start_us = r.i64()?;
        let end_us = r.i64()?;
        let count = r.u64()?;
        calls.insert(
            sid,
            CallAgg {
                start_us,
                end_us,
                count,
            },
        );
    }
    if calls.len() > cap {
        return Err(invalid(format!(
            "more than {cap} calls match: narrow the time window or the filter"
        )));
    }
    Ok(calls)
}

pub(crate) fn calls(
    store: &ChStore,
    filter: &MessageFilter,
) -> Result<Page<CallSummary>, StoreError> {
    let w = compile(filter)?;
    let limit = page_limit(filter.limit);
    let cursor = match &filter.cursor {
        Some(c) => Some(parse_call_cursor(c).ok_or_else(|| invalid("bad cursor"))?),
        None => None,
    };
    let cap = store.config.max_calls_scan;
    let window = time_conds(filter.from_us, filter.to_us);
    let sip = [DATA_TABLES[0]];
    let calls = if w.conds.len() == w.time_conds {
        aggregates(store, &window, None, cap)?
    } else if w.json.is_empty() {
        // The Call-IDs with a matching SIP message, then every SIP message of those in the window.
        let sub = format!("(SELECT DISTINCT sid FROM {}{})", sip[0], w.clause(&[]));
        aggregates(store, &window, Some(&sub), cap)?
    } else {
        let scan = store.config.max_json_scan;
        let rows = fetch(store, &sip, &w, &[], "", scan + 1)?;
        if rows.len() > scan {
            return Err(invalid(format!(
                "more than {scan} candidate rows for a JSON search: narrow the time window or the filter"
            )));
        }
        let sids: BTreeSet<String> = rows
            .into_iter()
            .filter(|m| w.json_matches(m))
            .map(|m| m.record.sid)
            .collect();
        if sids.is_empty() {
            HashMap::new()
        } else {
            let list = lit_list(sids.iter().map(|s| s.as_str()));
            aggregates(store, &window, Some(&list), cap)?
        }
    };
    call_page(
        calls,
        filter,
        cursor,
        limit,
        |sids| fold_calls(store, filter, sids),
        call_cursor,
    )
}

/// Folds every SIP message of the calls `sids` around the filter's window (see
/// CALL_CONTEXT_US) into their summaries' state.
fn fold_calls(
    store: &ChStore,
    filter: &MessageFilter,
    sids: &[String],
) -> Result<HashMap<String, CallFold>, StoreError> {
    let mut folds: HashMap<String, CallFold> = sids
        .iter()
        .map(|sid| (sid.clone(), CallFold::default()))
        .collect();
    if sids.is_empty() {
        return Ok(folds);
    }
    let context = Where {
        conds: time_conds(
            filter.from_us.map(|t| t.saturating_sub(CALL_CONTEXT_US)),
            filter.to_us.map(|t| t.saturating_add(CALL_CONTEXT_US)),
        ),
        time_conds: 0,
        sip_only: true,
        hep_type: None,
        json: Vec::new(),
    };
    let extra = [format!(
        "sid IN {}",
        lit_list(sids.iter().map(|s| s.as_str()))
    )];
    for m in fetch(
        store,
        &[DATA_TABLES[0]],
        &context,
        &extra,
        "",
        usize::MAX / 4,
    )? {
        let row = CallRow::from_message(m);
        if let Some(fold) = folds.get_mut(&row.sid) {
            fold.add(row);
        }
    }
    Ok(folds)
}

/// Distinct strings of a one-column RowBinary answer.
fn strings(store: &ChStore, sql: &str) -> Result<Vec<String>, StoreError> {
    let out = store.http.query(&format!("{sql} FORMAT RowBinary"))?;
    let mut r = Reader::new(&out);
    let mut v = Vec::new();
    while !r.done() {
        v.push(r.string()?);
    }
    Ok(v)
}

fn and_time(window: &[String]) -> String {
    window.iter().map(|c| format!(" AND {c}")).collect()
}

pub(crate) fn call_flow(
    store: &ChStore,
    call_ids: &[String],
    from_us: Option<i64>,
    to_us: Option<i64>,
) -> Result<Vec<StoredMessage>, StoreError> {
    if !check_flow_request(call_ids, from_us, to_us)? {
        return Ok(Vec::new());
    }
    let window = time_conds(from_us, to_us);
    let time = and_time(&window);
    let mut set: HashSet<String> = HashSet::new();
    let mut frontier: Vec<String> = Vec::new();
    for id in call_ids {
        if set.insert(id.clone()) {
            frontier.push(id.clone());
        }
    }
    for _round in 0..FLOW_ROUNDS {
        if frontier.is_empty() || set.len() >= MAX_CALL_IDS {
            break;
        }
        let ids = lit_list(frontier.iter().map(|s| s.as_str()));
        let mut found: BTreeSet<String> = BTreeSet::new();
        // B-legs: SIP messages pointing at an id of the set.
        found.extend(strings(
            store,
            &format!("SELECT DISTINCT sid FROM {LINKS} WHERE key IN {ids} AND sip = 1{time}"),
        )?);
        // A-legs: what the set's messages point at.
        let parts: Vec<String> = DATA_TABLES
            .iter()
            .flat_map(|t| {
                [
                    format!(
                        "SELECT correlation_id AS k FROM {t} WHERE sid IN {ids} AND {}{time}",
                        has(codec::bit::CORRELATION)
                    ),
                    format!(
                        "SELECT aleg_id AS k FROM {t} WHERE sid IN {ids} AND {}{time}",
                        has(codec::sip_text_bit("aleg_id").unwrap_or(0))
                    ),
                ]
            })
            .collect();
        found.extend(strings(
            store,
            &format!("SELECT DISTINCT k FROM ({})", parts.join(" UNION ALL ")),
        )?);
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
    let ids = lit_list(set.iter().map(|s| s.as_str()));
    // Messages of other sessions whose correlation id is in the set (RTCP, logs, B-legs).
    let linked = strings(
        store,
        &format!("SELECT DISTINCT sid FROM {LINKS} WHERE key IN {ids}{time}"),
    )?;
    let mut sids: BTreeSet<&str> = set.iter().map(|s| s.as_str()).collect();
    sids.extend(linked.iter().map(|s| s.as_str()));
    let w = Where {
        conds: window,
        time_conds: 0,
        sip_only: false,
        hep_type: None,
        json: Vec::new(),
    };
    let extra = [format!(
        "sid IN {} AND (sid IN {ids} OR ({} AND correlation_id IN {ids}))",
        lit_list(sids),
        has(codec::bit::CORRELATION)
    )];
    let cap = store.config.max_flow_messages;
    let mut out = fetch(store, &DATA_TABLES, &w, &extra, "", cap + 1)?;
    if out.len() > cap {
        return Err(invalid(format!(
            "call flow has more than {cap} messages: narrow the time window"
        )));
    }
    out.sort_by_key(|m| (m.record.time_us, m.id));
    Ok(out)
}

/// One page of [`crate::Store::scan`]: the records of one hour of the sort key (the first
/// non-empty hour at or after the lower bound), so a page reads about one hour's granules and
/// sorts at most that hour.
pub(crate) fn scan(store: &ChStore, request: &ScanRequest) -> Result<ScanPage, StoreError> {
    let limit = request.limit.clamp(1, MAX_SCAN);
    if let (Some(f), Some(t)) = (request.from_us, request.to_us) {
        if f >= t {
            return Ok(ScanPage::default());
        }
    }
    let lower = match (request.from_us, request.after.map(|a| a.time_us)) {
        (Some(f), Some(a)) => Some(f.max(a)),
        (f, a) => f.or(a),
    };
    let mut window = time_conds(lower, request.to_us);
    if let Some(a) = request.after {
        window.push(match a.id {
            i64::MIN => format!("time_us >= {}", a.time_us),
            i64::MAX => format!("time_us > {}", a.time_us),
            id => format!(
                "(time_us > {t} OR (time_us = {t} AND id > {id}))",
                t = a.time_us
            ),
        });
    }
    // The first hour holding a record of the rest of the window.
    let clause = if window.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", window.join(" AND "))
    };
    let parts: Vec<String> = DATA_TABLES
        .iter()
        .map(|t| format!("SELECT min(hour) AS h, count() AS n FROM {t}{clause}"))
        .collect();
    let out = store.http.query(&format!(
        "SELECT min(h), count() FROM ({}) WHERE n > 0 FORMAT RowBinary",
        parts.join(" UNION ALL ")
    ))?;
    let mut r = Reader::new(&out);
    let hour = r.u32()?;
    if r.u64()? == 0 {
        return Ok(ScanPage::default());
    }
    let mut slice = window;
    slice.push(format!("hour = {hour}"));
    let w = Where {
        conds: slice,
        time_conds: 0,
        sip_only: false,
        hep_type: None,
        json: Vec::new(),
    };
    let mut items = fetch(store, &DATA_TABLES, &w, &[], " ORDER BY time_us, id", limit)?;
    items.sort_unstable_by_key(|m| (m.record.time_us, m.id));
    items.truncate(limit);
    let next = if items.len() == limit {
        items.last().map(ScanPosition::of)
    } else {
        // The hour is read to its end: the next page starts with the next hour.
        Some(ScanPosition::before((i64::from(hour) + 1) * HOUR_US))
    };
    Ok(ScanPage { items, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_to_escaped_typed_conditions() {
        let w = compile(&MessageFilter {
            from_user: Some("a'*".into()),
            method: vec!["invite".into()],
            call_ids: vec!["x".into(), "y*".into()],
            ..MessageFilter::default()
        })
        .unwrap();
        assert!(w
            .conds
            .contains(&"(sid IN ('x') OR like(sid, 'y%'))".to_string()));
        assert!(w.conds.contains(
            &"(bitAnd(present, 1024) != 0 AND like(lower(from_user), lower('a\\'%')))".to_string()
        ));
        assert!(w
            .conds
            .contains(&"(method != '' AND (lower(method) = lower('invite')))".to_string()));
        assert_eq!(w.tables(), ["sip"]);
        assert_eq!(like("100%_\\"), "'100\\\\%\\\\_\\\\\\\\'");
    }
}
