//! Queries over the HOMER tables: messages, calls and call flows, with the same answers as
//! the embedded store. Every filter field maps to an expression heplify-server's indexes
//! cover where one exists (`sid`, `create_date`, `protocol_header->>'srcIp'`, `…'dstIp'`,
//! `…'correlation_id'`, `data_header->>'from_user'`, `…'to_user'`, `…'ruri_user'`, `…'method'`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::types::ToSql;
use serde_json::Value;

use super::codec;
use super::pool::Conn;
use super::schema::{Table, TABLES, TABLE_BITS};
use super::PgStore;
use crate::calls::{
    call_page, check_flow_request, CallAgg, CallFold, CallRow, CALL_CONTEXT_US, FLOW_ROUNDS,
    MAX_CALL_IDS,
};
use crate::{has_wildcard, CallSummary, MessageFilter, Page, StoreError, StoredMessage, MAX_PAGE};

/// Page size when the filter asks for 0.
const DEFAULT_PAGE: usize = 100;
/// Longest JSON path accepted.
const MAX_JSON_PATH: usize = 256;

type Param = Box<dyn ToSql + Sync + Send>;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidQuery(msg.into())
}

/// A `*` wildcard as a LIKE pattern (`%`, `_` and `\\` escaped).
fn like_pattern(pattern: &str) -> String {
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
    out
}

pub(super) fn system_time(us: i64) -> SystemTime {
    if us >= 0 {
        UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

/// A field path (`questions[0].name`, optionally prefixed with `payload.`) as the text array
/// of `#>>`. Same rules as the embedded store: keys are ASCII letters, digits, `_ - @ :`.
pub(crate) fn json_path(path: &str) -> Result<Vec<String>, StoreError> {
    let bad = |why: &str| invalid(format!("JSON path `{path}`: {why}"));
    if path.len() > MAX_JSON_PATH {
        return Err(bad("too long"));
    }
    let rel = path.strip_prefix("payload.").unwrap_or(path);
    let mut out = Vec::new();
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
        out.push(key.to_string());
        while !rest.is_empty() {
            let inner = rest.strip_prefix('[').ok_or_else(|| bad("expected `[`"))?;
            let close = inner.find(']').ok_or_else(|| bad("unclosed `[`"))?;
            let index: u32 = inner[..close]
                .parse()
                .map_err(|_| bad("array index must be a number"))?;
            out.push(index.to_string());
            rest = &inner[close + 1..];
        }
        if out.len() > 32 {
            return Err(bad("too deep"));
        }
    }
    Ok(out)
}

/// A query under construction: shared parameters, per-table conditions.
struct Sql {
    params: Vec<Param>,
    /// Conditions every table gets.
    common: Vec<String>,
    /// Conditions only SIP rows can satisfy (the table is skipped for non-SIP tables).
    sip_only: bool,
    /// HEP type asked for: prunes the non-SIP tables.
    hep_type: Option<u8>,
}

impl Sql {
    fn new() -> Sql {
        Sql {
            params: Vec::new(),
            common: Vec::new(),
            sip_only: false,
            hep_type: None,
        }
    }

    /// Adds a parameter and returns its placeholder.
    fn p(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    /// An exact (index-friendly) or `*`-wildcard match of a text expression. Empty values
    /// count as absent (heplify-server writes `""` for missing SIP keys).
    fn text_cond(&mut self, expr: &str, value: &str, ignore_case: bool) -> String {
        if has_wildcard(value) {
            let p = self.p(like_pattern(value));
            let op = if ignore_case { "ILIKE" } else { "LIKE" };
            format!("nullif({expr}, '') {op} {p}")
        } else if ignore_case {
            // The first arm can use the expression index for upper-case methods and codes.
            let up = self.p(value.to_ascii_uppercase());
            let p = self.p(value.to_string());
            format!("({expr} = {up} OR lower({expr}) = lower({p}))")
        } else {
            let p = self.p(value.to_string());
            format!("{expr} = {p}")
        }
    }

    fn time(&mut self, from_us: Option<i64>, to_us: Option<i64>) {
        if let Some(f) = from_us {
            let p = self.p(system_time(f));
            self.common.push(format!("create_date >= {p}"));
        }
        if let Some(t) = to_us {
            let p = self.p(system_time(t));
            self.common.push(format!("create_date < {p}"));
        }
    }

    /// The tables the query has to look at.
    fn tables(&self, sip_rows_only: bool) -> Vec<&'static Table> {
        TABLES
            .iter()
            .filter(|t| {
                if t.is_sip() {
                    return true;
                }
                if self.sip_only || sip_rows_only {
                    return false;
                }
                match self.hep_type {
                    None => true,
                    Some(h) => {
                        let probe = crate::Record {
                            hep_type: h,
                            sip: None,
                            ..probe_record()
                        };
                        super::schema::table_for(&probe).no == t.no
                    }
                }
            })
            .collect()
    }

    /// `WHERE …` for one table, with extra conditions.
    fn where_for(&self, table: &Table, sip_rows_only: bool, extra: &[String]) -> String {
        let mut conds: Vec<String> = self.common.clone();
        if (sip_rows_only || self.sip_only) && table.no == 2 {
            // hep_proto_1_default also takes HEP type 1 packets that are not SIP.
            conds.push("data_header ? 'method'".into());
        }
        conds.extend(extra.iter().cloned());
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }
}

fn probe_record() -> crate::Record {
    crate::Record {
        time_us: 0,
        received_us: 0,
        hep_type: 0,
        hep_version: 3,
        ip_family: 2,
        ip_proto: 17,
        src_ip: IpAddr::from([0, 0, 0, 0]),
        src_port: 0,
        dst_ip: IpAddr::from([0, 0, 0, 0]),
        dst_port: 0,
        capture_id: 0,
        node: None,
        correlation_id: None,
        sid: String::new(),
        profile: crate::Profile::Default,
        sip: None,
        payload_json: None,
        raw: Vec::new(),
    }
}

/// Compiles a filter's conditions (time included).
fn compile(filter: &MessageFilter) -> Result<Sql, StoreError> {
    let mut q = Sql::new();
    if let (Some(f), Some(t)) = (filter.from_us, filter.to_us) {
        if f >= t {
            return Err(invalid(format!("empty time window: from {f} ≥ to {t}")));
        }
    }
    q.time(filter.from_us, filter.to_us);
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
            let p = q.p(exact.into_iter().cloned().collect::<Vec<String>>());
            any.push(format!("sid = ANY({p}::text[])"));
        }
        for pattern in patterns {
            let p = q.p(like_pattern(pattern));
            any.push(format!("sid LIKE {p}"));
        }
        q.common.push(format!("({})", any.join(" OR ")));
    }
    for (key, value) in [
        ("from_user", &filter.from_user),
        ("to_user", &filter.to_user),
        ("ruri_user", &filter.ruri_user),
    ] {
        if let Some(v) = value {
            let ignore_case = crate::user_ignores_case(Some(v));
            let cond = q.text_cond(&format!("data_header->>'{key}'"), v, ignore_case);
            q.common.push(cond);
            q.sip_only = true;
        }
    }
    if let Some(v) = &filter.any_user {
        let ignore_case = crate::user_ignores_case(Some(v));
        let conds: Vec<String> = ["from_user", "to_user", "ruri_user"]
            .iter()
            .map(|key| q.text_cond(&format!("data_header->>'{key}'"), v, ignore_case))
            .collect();
        q.common.push(format!("({})", conds.join(" OR ")));
        q.sip_only = true;
    }
    if let Some(v) = &filter.user_agent {
        // User-Agent is a default data_header key; Server only in the hepstack object (or in
        // data_header when configured, as on heplify-server rows).
        let ua = q.text_cond("data_header->>'user_agent'", v, true);
        let server = q.text_cond(
            "coalesce(protocol_header #>> '{hepstack,sip,server}', data_header->>'server')",
            v,
            true,
        );
        q.common.push(format!("({ua} OR {server})"));
        q.sip_only = true;
    }
    if !filter.status.is_empty() {
        // A reply's method key is its status code (a request's is its method).
        let conds: Vec<String> = filter
            .status
            .iter()
            .map(|code| q.text_cond("data_header->>'method'", code, false))
            .collect();
        q.common.push(format!(
            "(data_header->>'method' ~ '^[0-9]+$' AND ({}))",
            conds.join(" OR ")
        ));
        q.sip_only = true;
    }
    if !filter.method.is_empty() {
        // With a status, the method the reply answers: the CSeq's method.
        let expr = if filter.status.is_empty() {
            "data_header->>'method'"
        } else {
            "split_part(data_header->>'cseq', ' ', 2)"
        };
        let conds: Vec<String> = filter
            .method
            .iter()
            .map(|m| q.text_cond(expr, m, true))
            .collect();
        q.common.push(format!("({})", conds.join(" OR ")));
        q.sip_only = true;
    }
    if let Some(n) = &filter.node {
        let cond = q.text_cond("data_header->>'node'", n, false);
        q.common.push(cond);
    }
    if let Some(ip) = &filter.ip {
        let p = q.p(ip.to_string());
        q.common.push(format!(
            "(protocol_header->>'srcIp' = {p} OR protocol_header->>'dstIp' = {p})"
        ));
    }
    if let Some(ip) = &filter.src_ip {
        let p = q.p(ip.to_string());
        q.common.push(format!("protocol_header->>'srcIp' = {p}"));
    }
    if let Some(ip) = &filter.dst_ip {
        let p = q.p(ip.to_string());
        q.common.push(format!("protocol_header->>'dstIp' = {p}"));
    }
    if let Some(t) = filter.hep_type {
        let p = q.p(t.to_string());
        q.common
            .push(format!("protocol_header->>'payloadType' = {p}"));
        q.hep_type = Some(t);
    }
    if let Some(c) = &filter.correlation_id {
        let cond = q.text_cond("protocol_header->>'correlation_id'", c, false);
        q.common.push(cond);
    }
    if let Some(port) = filter.port {
        let p = q.p(port.to_string());
        q.common.push(format!(
            "(protocol_header->>'srcPort' = {p} OR protocol_header->>'dstPort' = {p})"
        ));
    }
    if let Some(port) = filter.src_port {
        let p = q.p(port.to_string());
        q.common.push(format!("protocol_header->>'srcPort' = {p}"));
    }
    if let Some(port) = filter.dst_port {
        let p = q.p(port.to_string());
        q.common.push(format!("protocol_header->>'dstPort' = {p}"));
    }
    if let Some(text) = &filter.text {
        let p = q.p(text.clone());
        q.common.push(format!("strpos(raw, {p}) > 0"));
    }
    for (path, value) in &filter.json {
        let path = json_path(path)?;
        let pp = q.p(path);
        let pv = q.p(value.clone());
        // CASE keeps non-JSON payloads away from the cast.
        q.common.push(format!(
            "(CASE WHEN protocol_header->'hepstack' ? 'jv' THEN \
             (CASE WHEN protocol_header->'hepstack' ? 'jr' THEN raw ELSE protocol_header->'hepstack'->>'json' END)::jsonb #>> {pp}::text[] END) = {pv}"
        ));
    }
    Ok(q)
}

fn page_limit(limit: usize) -> usize {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

const ROW_COLUMNS: &str =
    "sid, (extract(epoch from create_date) * 1000000)::int8, protocol_header, data_header, raw";

/// The SELECT of full rows of one table: `xid, tno, sid, time_us, protocol_header, data_header, raw`.
pub(super) fn select_rows(table: &Table, clause: &str) -> String {
    format!(
        "SELECT (id << {TABLE_BITS}) | {no} AS xid, {no} AS tno, {ROW_COLUMNS} FROM {name}{clause}",
        no = table.no,
        name = table.name
    )
}

pub(super) fn decode_row(row: &postgres::Row) -> StoredMessage {
    let xid: i64 = row.get(0);
    let tno: i32 = row.get(1);
    let table = &TABLES[usize::try_from(tno).unwrap_or(0).min(TABLES.len() - 1)];
    let ph: Value = row.get(4);
    let dh: Value = row.get(5);
    codec::decode(xid, table, row.get(2), row.get(3), &ph, &dh, row.get(6))
}

fn params(q: &Sql) -> Vec<&(dyn ToSql + Sync)> {
    q.params
        .iter()
        .map(|p| &**p as &(dyn ToSql + Sync))
        .collect()
}

pub(crate) fn messages(
    _store: &PgStore,
    conn: &mut Conn<'_>,
    filter: &MessageFilter,
) -> Result<Page<StoredMessage>, StoreError> {
    let mut q = compile(filter)?;
    let limit = page_limit(filter.limit);
    let tables = q.tables(false);
    if tables.is_empty() {
        return Ok(Page {
            total: 0,
            items: Vec::new(),
            next: None,
        });
    }
    let counts: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "(SELECT count(*) FROM {}{})",
                t.name,
                q.where_for(t, false, &[])
            )
        })
        .collect();
    let count_sql = format!("SELECT {}", counts.join(" + "));
    let total: i64 = conn
        .query_one(&count_sql, &params(&q))
        .map(|r| r.get(0))
        .map_err(|e| conn.check(e))?;
    let mut extra = Vec::new();
    if let Some(c) = &filter.cursor {
        let (t, id) = codec::parse_message_cursor(c).ok_or_else(|| invalid("bad cursor"))?;
        let pt = q.p(system_time(t));
        let pid = q.p(id);
        extra.push((pt, pid));
    }
    let parts: Vec<String> = tables
        .iter()
        .map(|t| {
            let conds: Vec<String> = extra
                .iter()
                .map(|(pt, pid)| {
                    format!(
                        "(create_date < {pt} OR (create_date = {pt} AND ((id << {TABLE_BITS}) | {}) < {pid}))",
                        t.no
                    )
                })
                .collect();
            format!(
                "({} ORDER BY create_date DESC, id DESC LIMIT {})",
                select_rows(t, &q.where_for(t, false, &conds)),
                limit + 1
            )
        })
        .collect();
    let sql = format!(
        "SELECT * FROM ({}) u ORDER BY 4 DESC, 1 DESC LIMIT {}",
        parts.join(" UNION ALL "),
        limit + 1
    );
    let rows = conn.query(&sql, &params(&q)).map_err(|e| conn.check(e))?;
    let mut items: Vec<StoredMessage> = rows.iter().map(decode_row).collect();
    let has_more = items.len() > limit;
    items.truncate(limit);
    let next = if has_more {
        items
            .last()
            .map(|m| codec::message_cursor(m.record.time_us, m.id))
    } else {
        None
    };
    Ok(Page {
        total: u64::try_from(total).unwrap_or(0),
        items,
        next,
    })
}

/// Per-sid aggregates of the SIP rows of the window, optionally restricted to `sids`.
fn aggregates(
    conn: &mut Conn<'_>,
    from_us: Option<i64>,
    to_us: Option<i64>,
    sids: Option<&[String]>,
    cap: usize,
    out: &mut HashMap<String, CallAgg>,
) -> Result<(), StoreError> {
    let mut q = Sql::new();
    q.time(from_us, to_us);
    let mut extra = Vec::new();
    if let Some(s) = sids {
        let p = q.p(s.to_vec());
        extra.push(format!("sid = ANY({p}::text[])"));
    }
    let parts: Vec<String> = q
        .tables(true)
        .iter()
        .map(|t| {
            format!(
                "SELECT sid, (extract(epoch from create_date) * 1000000)::int8 AS t FROM {}{}",
                t.name,
                q.where_for(t, true, &extra)
            )
        })
        .collect();
    let sql = format!(
        "SELECT sid, min(t), max(t), count(*) FROM ({}) u GROUP BY sid",
        parts.join(" UNION ALL ")
    );
    let rows = conn.query(&sql, &params(&q)).map_err(|e| conn.check(e))?;
    for row in rows {
        let sid: String = row.get(0);
        let agg = CallAgg {
            start_us: row.get(1),
            end_us: row.get(2),
            count: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
        };
        if !out.contains_key(&sid) && out.len() >= cap {
            return Err(invalid(format!(
                "more than {cap} calls match: narrow the time window or the filter"
            )));
        }
        out.insert(sid, agg);
    }
    Ok(())
}

/// Full rows of the given tables matching `q` plus `extra`, any order.
fn fetch_rows(
    conn: &mut Conn<'_>,
    q: &Sql,
    sip_rows_only: bool,
    extra: &[String],
    cap: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let parts: Vec<String> = q
        .tables(sip_rows_only)
        .iter()
        .map(|t| select_rows(t, &q.where_for(t, sip_rows_only, extra)))
        .collect();
    let sql = format!("{} LIMIT {}", parts.join(" UNION ALL "), cap + 1);
    let rows = conn.query(&sql, &params(q)).map_err(|e| conn.check(e))?;
    if rows.len() > cap {
        return Err(invalid(format!(
            "call flow has more than {cap} messages: narrow the time window"
        )));
    }
    Ok(rows.iter().map(decode_row).collect())
}

pub(crate) fn calls(
    store: &PgStore,
    conn: &mut Conn<'_>,
    filter: &MessageFilter,
) -> Result<Page<CallSummary>, StoreError> {
    let q = compile(filter)?;
    let limit = page_limit(filter.limit);
    let cursor = match &filter.cursor {
        Some(c) => Some(codec::parse_call_cursor(c).ok_or_else(|| invalid("bad cursor"))?),
        None => None,
    };
    let cap = store.config.max_calls_scan;
    let mut calls: HashMap<String, CallAgg> = HashMap::new();
    let time_conds = usize::from(filter.from_us.is_some()) + usize::from(filter.to_us.is_some());
    if q.common.len() == time_conds {
        aggregates(conn, filter.from_us, filter.to_us, None, cap, &mut calls)?;
    } else {
        // The Call-IDs with a matching SIP message, then every SIP message of those in the window.
        let parts: Vec<String> = q
            .tables(true)
            .iter()
            .map(|t| format!("SELECT sid FROM {}{}", t.name, q.where_for(t, true, &[])))
            .collect();
        let sql = format!(
            "SELECT DISTINCT sid FROM ({}) u LIMIT {}",
            parts.join(" UNION ALL "),
            cap + 1
        );
        let rows = conn.query(&sql, &params(&q)).map_err(|e| conn.check(e))?;
        if rows.len() > cap {
            return Err(invalid(format!(
                "more than {cap} calls match: narrow the time window or the filter"
            )));
        }
        let sids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if !sids.is_empty() {
            aggregates(
                conn,
                filter.from_us,
                filter.to_us,
                Some(&sids),
                cap,
                &mut calls,
            )?;
        }
    }
    call_page(
        calls,
        filter,
        cursor,
        limit,
        |sids| fold_calls(conn, filter, sids.to_vec()),
        codec::call_cursor,
    )
}

/// Folds every SIP message of the calls `sids` around the filter's window (see
/// CALL_CONTEXT_US) into their summaries' state.
fn fold_calls(
    conn: &mut Conn<'_>,
    filter: &MessageFilter,
    sids: Vec<String>,
) -> Result<HashMap<String, CallFold>, StoreError> {
    let mut folds: HashMap<String, CallFold> = sids
        .iter()
        .map(|sid| (sid.clone(), CallFold::default()))
        .collect();
    if sids.is_empty() {
        return Ok(folds);
    }
    let mut fq = Sql::new();
    fq.time(
        filter.from_us.map(|t| t.saturating_sub(CALL_CONTEXT_US)),
        filter.to_us.map(|t| t.saturating_add(CALL_CONTEXT_US)),
    );
    let p = fq.p(sids);
    let extra = [format!("sid = ANY({p}::text[])")];
    for m in fetch_rows(conn, &fq, true, &extra, usize::MAX / 4)? {
        let row = CallRow::from_message(m);
        if let Some(fold) = folds.get_mut(&row.sid) {
            fold.add(row);
        }
    }
    Ok(folds)
}

pub(crate) fn call_flow(
    store: &PgStore,
    conn: &mut Conn<'_>,
    call_ids: &[String],
    from_us: Option<i64>,
    to_us: Option<i64>,
) -> Result<Vec<StoredMessage>, StoreError> {
    if !check_flow_request(call_ids, from_us, to_us)? {
        return Ok(Vec::new());
    }
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
        let mut found: BTreeSet<String> = BTreeSet::new();
        // B-legs: SIP messages pointing at an id of the set.
        let mut q = Sql::new();
        q.time(from_us, to_us);
        let p = q.p(frontier.clone());
        let cond = format!(
            "(protocol_header->>'correlation_id' = ANY({p}::text[]) OR data_header->>'callid_aleg' = ANY({p}::text[]))"
        );
        let parts: Vec<String> = q
            .tables(true)
            .iter()
            .map(|t| {
                format!(
                    "SELECT sid FROM {}{}",
                    t.name,
                    q.where_for(t, true, std::slice::from_ref(&cond))
                )
            })
            .collect();
        let sql = format!("SELECT DISTINCT sid FROM ({}) u", parts.join(" UNION ALL "));
        for row in conn.query(&sql, &params(&q)).map_err(|e| conn.check(e))? {
            found.insert(row.get(0));
        }
        // A-legs: what the set's messages point at.
        let mut q = Sql::new();
        q.time(from_us, to_us);
        let p = q.p(frontier.clone());
        let cond = format!("sid = ANY({p}::text[])");
        let parts: Vec<String> = q
            .tables(false)
            .iter()
            .map(|t| {
                format!(
                    "SELECT protocol_header->>'correlation_id' AS c, data_header->>'callid_aleg' AS a FROM {}{}",
                    t.name,
                    q.where_for(t, false, std::slice::from_ref(&cond))
                )
            })
            .collect();
        let sql = format!(
            "SELECT DISTINCT c, a FROM ({}) u WHERE c IS NOT NULL OR a IS NOT NULL",
            parts.join(" UNION ALL ")
        );
        for row in conn.query(&sql, &params(&q)).map_err(|e| conn.check(e))? {
            found.extend(row.get::<_, Option<String>>(0));
            found.extend(row.get::<_, Option<String>>(1));
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
    let ids: Vec<String> = set.into_iter().collect();
    let mut q = Sql::new();
    q.time(from_us, to_us);
    let p = q.p(ids);
    let extra = [format!(
        "(sid = ANY({p}::text[]) OR protocol_header->>'correlation_id' = ANY({p}::text[]))"
    )];
    let mut out = fetch_rows(conn, &q, false, &extra, store.config.max_flow_messages)?;
    out.sort_by_key(|m| (m.record.time_us, m.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_escaped_like_patterns() {
        assert_eq!(like_pattern("a*b"), "a%b");
        assert_eq!(like_pattern("100%_x\\*"), "100\\%\\_x\\\\%");
    }

    #[test]
    fn json_paths() {
        assert_eq!(
            json_path("questions[0].name").unwrap(),
            ["questions", "0", "name"]
        );
        assert_eq!(
            json_path("payload.a.b[2][3].c").unwrap(),
            ["a", "b", "2", "3", "c"]
        );
        for bad in [
            "", "a..b", "a[x]", "a\"b", "a[0", "$.a", "a b", "a.*", "a[0]x",
        ] {
            assert!(json_path(bad).is_err(), "{bad}");
        }
    }
}
