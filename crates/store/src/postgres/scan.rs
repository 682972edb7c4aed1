//! [`Store::scan`](crate::Store::scan) over the HOMER tables: the records of a time window
//! in ascending `(create_date, API id)`, for `hepstack import`. Reads rows written by hepstack
//! and rows written by heplify-server alike (see [`super::codec::decode`]).
//!
//! One statement per page: each parent table is read through its partitions' `create_date`
//! indexes (a Merge Append of index scans, ties sorted incrementally by `id`) up to the page
//! size, and the union of the eight is cut to the page. A page therefore costs about its own
//! size whatever the window holds.

use postgres::types::ToSql;

use super::pool::Conn;
use super::query::{decode_row, select_rows, system_time};
use super::schema::{TABLES, TABLE_BITS};
use crate::{ScanPage, ScanPosition, ScanRequest, StoreError, MAX_SCAN};

pub(crate) fn scan(conn: &mut Conn<'_>, request: &ScanRequest) -> Result<ScanPage, StoreError> {
    let limit = request.limit.clamp(1, MAX_SCAN);
    let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let mut p = |v: Box<dyn ToSql + Sync>| {
        params.push(v);
        format!("${}", params.len())
    };
    let mut common = Vec::new();
    let lower = match (request.from_us, request.after) {
        (Some(f), Some(a)) => Some(f.max(a.time_us)),
        (f, a) => f.or(a.map(|a| a.time_us)),
    };
    if let Some(lo) = lower {
        common.push(format!("create_date >= {}", p(Box::new(system_time(lo)))));
    }
    if let Some(to) = request.to_us {
        common.push(format!("create_date < {}", p(Box::new(system_time(to)))));
    }
    let after = request
        .after
        .map(|a| (p(Box::new(system_time(a.time_us))), p(Box::new(a.id))));
    let parts: Vec<String> = TABLES
        .iter()
        .map(|t| {
            let mut conds = common.clone();
            if let Some((pt, pid)) = &after {
                conds.push(format!(
                    "(create_date > {pt} OR ((id << {TABLE_BITS}) | {}) > {pid})",
                    t.no
                ));
            }
            let clause = if conds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conds.join(" AND "))
            };
            format!(
                "({} ORDER BY create_date, id LIMIT {limit})",
                select_rows(t, &clause)
            )
        })
        .collect();
    let sql = format!(
        "SELECT * FROM ({}) u ORDER BY 4, 1 LIMIT {limit}",
        parts.join(" UNION ALL ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| &**b).collect();
    let rows = conn.query(&sql, &refs).map_err(|e| conn.check(e))?;
    let items: Vec<_> = rows.iter().map(decode_row).collect();
    let next = if items.len() >= limit {
        items.last().map(ScanPosition::of)
    } else {
        None
    };
    Ok(ScanPage { items, next })
}
