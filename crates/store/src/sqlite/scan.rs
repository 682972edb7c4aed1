//! [`Store::scan`](crate::Store::scan) over the partition files: the records of a time
//! window in ascending `(time_us, id)`, for `hepstack import`.
//!
//! The window is walked in *slices* `[lo, hi)`: a slice never crosses the end of the earliest
//! partition period that overlaps it, and in a file whose time index leads with the segment,
//! it ends where that file's whole segments starting inside it already hold a page of rows
//! (from table `seg_span`). Every file overlapping the slice (the write shards and retention
//! classes of the period) is read through its time index, ordered and cut at the page size,
//! and the files' rows are merged. A slice thus holds about a page plus the segments its ends
//! cut, so a page costs about its own size however large the partition; a page that is not
//! full yet moves on to the next slice, up to [`SLICES_PER_CALL`] slices per call.

use rusqlite::types::Value;

use super::partition::PartKey;
use super::{schema, Partition, SqliteStore};
use crate::{ScanPage, ScanPosition, ScanRequest, StoreError, StoredMessage, MAX_SCAN};

/// Slices one call walks before it answers with what it has (and a `next` past them), so
/// that a sparse window never holds a call for long.
const SLICES_PER_CALL: usize = 64;

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The end of a slice starting at `lo` in one file: the first instant past the file's whole
/// segments that start at or after `lo` once they hold `limit` rows; `hi` when they never do.
fn narrow(conn: &rusqlite::Connection, lo: i64, hi: i64, limit: usize) -> Result<i64, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT max_us, rows FROM seg_span WHERE min_us >= ?1 AND min_us < ?2 ORDER BY max_us",
        )
        .map_err(db_err)?;
    let mut rows = stmt.query([lo, hi]).map_err(db_err)?;
    let mut held = 0usize;
    while let Some(row) = rows.next().map_err(db_err)? {
        let max_us: i64 = row.get(0).map_err(db_err)?;
        let n: i64 = row.get(1).map_err(db_err)?;
        held = held.saturating_add(usize::try_from(n).unwrap_or(0));
        if held >= limit {
            return Ok(max_us.saturating_add(1).min(hi));
        }
    }
    Ok(hi)
}

impl SqliteStore {
    /// The rows of one file in `[lo, hi)` after `after`, ascending, at most `limit`.
    fn scan_file(
        &self,
        part: &Partition,
        lo: i64,
        hi: i64,
        after: Option<ScanPosition>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let key = part.key;
        let max_raw = self.config.max_raw_bytes;
        let rows = self.with_reader(part, |conn| {
            let segmented = part.layout().time_segmented;
            let mut conds = vec!["time_us >= ?1 AND time_us < ?2".to_string()];
            let mut params = vec![Value::Integer(lo), Value::Integer(hi)];
            if segmented {
                conds.push(
                    "seg IN (SELECT seg FROM seg_span WHERE max_us >= ?1 AND min_us < ?2)".into(),
                );
            }
            if let Some(a) = after.filter(|a| a.time_us >= lo) {
                // (time_us, global id) > (a.time_us, a.id), with the global id bound turned
                // into this file's rowid bound.
                let bound = match a.id.checked_add(1) {
                    Some(next) => key.local_bound(next),
                    None => i64::MAX,
                };
                conds.push("(time_us > ?3 OR id >= ?4)".into());
                params.push(Value::Integer(a.time_us));
                params.push(Value::Integer(bound));
            }
            params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
            let sql = format!(
                "SELECT {} FROM msg INDEXED BY ix_time WHERE {} ORDER BY time_us, id LIMIT ?{}",
                schema::SELECT_COLUMNS,
                conds.join(" AND "),
                params.len()
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
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
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })?;
        Ok(rows.unwrap_or_default())
    }

    /// The end of the slice starting at `lo` over `files`, at most `hi`.
    fn slice_end(
        &self,
        files: &[std::sync::Arc<Partition>],
        lo: i64,
        mut hi: i64,
        limit: usize,
    ) -> Result<i64, StoreError> {
        for part in files {
            let end = self.with_reader(part, |conn| {
                if part.layout().time_segmented {
                    narrow(conn, lo, hi, limit)
                } else {
                    Ok(hi)
                }
            })?;
            hi = hi.min(end.unwrap_or(hi));
        }
        Ok(hi.max(lo.saturating_add(1)))
    }

    pub(super) fn scan_window(&self, request: &ScanRequest) -> Result<ScanPage, StoreError> {
        let limit = request.limit.clamp(1, MAX_SCAN);
        let to = request.to_us.unwrap_or(i64::MAX);
        let mut lo = match (request.from_us, request.after) {
            (Some(f), Some(a)) => f.max(a.time_us),
            (f, a) => f.or(a.map(|a| a.time_us)).unwrap_or(i64::MIN),
        };
        let mut items: Vec<StoredMessage> = Vec::new();
        for _ in 0..SLICES_PER_CALL {
            if lo >= to {
                return Ok(ScanPage { items, next: None });
            }
            let mut keys: Vec<PartKey> = self.partitions_in(Some(lo), Some(to));
            // Earliest period first; the slice ends with the earliest period's end.
            keys.sort_by_key(|k| (k.start_us, k.end_us()));
            let Some(first) = keys.first() else {
                return Ok(ScanPage { items, next: None });
            };
            lo = lo.max(first.start_us);
            let period_end = keys
                .iter()
                .map(PartKey::end_us)
                .chain(keys.iter().map(|k| k.start_us).filter(|s| *s > lo))
                .min()
                .unwrap_or(to)
                .min(to);
            let mut files = Vec::new();
            for key in keys.iter().filter(|k| k.start_us < period_end) {
                if let Some(part) = self.partition(*key, false).map_err(StoreError::Backend)? {
                    files.push(part);
                }
            }
            let want = limit - items.len();
            let hi = self.slice_end(&files, lo, period_end, want)?;
            let mut slice = Vec::new();
            for part in &files {
                slice.extend(self.scan_file(part, lo, hi, request.after, want)?);
            }
            slice.sort_by_key(|m| (m.record.time_us, m.id));
            if slice.len() >= want {
                slice.truncate(want);
                items.extend(slice);
                let next = items.last().map(ScanPosition::of);
                return Ok(ScanPage { items, next });
            }
            items.extend(slice);
            if hi >= to {
                return Ok(ScanPage { items, next: None });
            }
            lo = hi;
        }
        Ok(ScanPage {
            items,
            next: Some(ScanPosition::before(lo)),
        })
    }
}
