//! The row insert statement of a partition writer, bound without copying the row's text and
//! blobs.
//!
//! Why: rusqlite binds every text and blob with `SQLITE_TRANSIENT`, so SQLite copies each one
//! into a buffer of its own before the insert and frees it after: the raw message, the
//! addresses, a dozen header values per row. In the ingest profile that was ≈ 5 % of the
//! writers' time (`memmove`, `malloc`, `free`). Values that rusqlite hands out borrowed are bound
//! here with `SQLITE_STATIC` instead, which is sound because they outlive the statement's use:
//! they are borrowed for the whole of [`RowInsert::execute`], and the bindings are cleared
//! before it returns.

use std::ffi::{c_int, CStr};
use std::ptr;

use rusqlite::ffi;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

/// A prepared statement on a writer connection. Must be dropped before that connection (the
/// owner declares it first: fields drop in declaration order).
pub(crate) struct RowInsert {
    stmt: *mut ffi::sqlite3_stmt,
    db: *mut ffi::sqlite3,
}

// SAFETY: like rusqlite's `Connection` (which is `Send`), the statement may move to another
// thread; it is only ever used through `&mut self`, by one thread at a time, and the writer
// connection it belongs to travels with it inside the same `PartitionWriter`.
unsafe impl Send for RowInsert {}

impl RowInsert {
    /// Prepares `sql` on `conn`.
    pub(crate) fn prepare(conn: &Connection, sql: &str) -> rusqlite::Result<RowInsert> {
        let len = c_int::try_from(sql.len())
            .map_err(|_| error(ffi::SQLITE_TOOBIG, "statement too long".into()))?;
        // SAFETY: the handle is valid for as long as `conn` lives; the statement is finalized
        // before the connection closes (see the type's documentation).
        unsafe {
            let db = conn.handle();
            let mut stmt = ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK {
                return Err(error_from(db, rc));
            }
            if stmt.is_null() {
                return Err(error(ffi::SQLITE_MISUSE, "empty statement".into()));
            }
            Ok(RowInsert { stmt, db })
        }
    }

    /// Binds `params` (1-based, in order), runs the statement once, and resets it. An error
    /// (a constraint, a value SQLite refuses) leaves the statement ready for the next row.
    pub(crate) fn execute(&mut self, params: &[&dyn ToSql]) -> rusqlite::Result<()> {
        let result = self.bind_and_step(params);
        // SAFETY: `stmt` is a live statement of this connection. Clearing the bindings drops
        // SQLite's pointers into `params` before the borrow ends.
        unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
        }
        result
    }

    fn bind_and_step(&mut self, params: &[&dyn ToSql]) -> rusqlite::Result<()> {
        // SAFETY: `stmt` is live; the count is read-only.
        let expected = unsafe { ffi::sqlite3_bind_parameter_count(self.stmt) };
        if usize::try_from(expected).ok() != Some(params.len()) {
            return Err(rusqlite::Error::InvalidParameterCount(
                params.len(),
                usize::try_from(expected).unwrap_or(0),
            ));
        }
        for (index, param) in (1..).zip(params) {
            let value = param.to_sql()?;
            // SAFETY: see `bind`.
            let rc = unsafe { self.bind(index, &value) };
            if rc != ffi::SQLITE_OK {
                return Err(error_from(self.db, rc));
            }
        }
        // SAFETY: `stmt` is live and every parameter is bound.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_DONE => Ok(()),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            rc => Err(error_from(self.db, rc)),
        }
    }

    /// Binds one value.
    ///
    /// # Safety
    /// Borrowed text and blobs are bound with `SQLITE_STATIC`: they must stay valid until the
    /// bindings are cleared. They are borrowed from `execute`'s `params`, which outlive the
    /// call, and `execute` clears the bindings before returning. Owned values (rusqlite makes
    /// them for integers and conversions) die with this call, so SQLite copies them.
    unsafe fn bind(&mut self, index: c_int, value: &ToSqlOutput<'_>) -> c_int {
        let (value, destructor) = match value {
            ToSqlOutput::Borrowed(v) => (*v, ffi::SQLITE_STATIC()),
            ToSqlOutput::Owned(v) => (ValueRef::from(v), ffi::SQLITE_TRANSIENT()),
            // Zero-blobs, function arguments, arrays: not used by the row insert.
            _ => return ffi::SQLITE_MISMATCH,
        };
        match value {
            ValueRef::Null => ffi::sqlite3_bind_null(self.stmt, index),
            ValueRef::Integer(i) => ffi::sqlite3_bind_int64(self.stmt, index, i),
            ValueRef::Real(r) => ffi::sqlite3_bind_double(self.stmt, index, r),
            ValueRef::Text(t) => match c_int::try_from(t.len()) {
                Ok(len) if len > 0 => {
                    ffi::sqlite3_bind_text(self.stmt, index, t.as_ptr().cast(), len, destructor)
                }
                // An empty string needs a valid pointer that lives forever.
                Ok(_) => {
                    ffi::sqlite3_bind_text(self.stmt, index, c"".as_ptr(), 0, ffi::SQLITE_STATIC())
                }
                Err(_) => ffi::SQLITE_TOOBIG,
            },
            ValueRef::Blob(b) => match c_int::try_from(b.len()) {
                Ok(len) if len > 0 => {
                    ffi::sqlite3_bind_blob(self.stmt, index, b.as_ptr().cast(), len, destructor)
                }
                Ok(_) => ffi::sqlite3_bind_zeroblob(self.stmt, index, 0),
                Err(_) => ffi::SQLITE_TOOBIG,
            },
        }
    }
}

impl Drop for RowInsert {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized once; the connection is still open.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// The error of a failed call, with SQLite's message for the connection.
fn error_from(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is a live connection; `sqlite3_errmsg` returns a NUL-terminated string it
    // owns, copied out at once.
    let message = unsafe {
        let p = ffi::sqlite3_errmsg(db);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    error(rc, message.unwrap_or_default())
}

fn error(rc: c_int, message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE t (a INTEGER NOT NULL, b TEXT, c BLOB, d REAL, e TEXT UNIQUE)",
        )
        .expect("create");
        conn
    }

    type TestRow = (
        i64,
        Option<String>,
        Option<Vec<u8>>,
        Option<f64>,
        Option<String>,
    );

    #[test]
    fn binds_every_kind_and_reports_errors_per_row() {
        let conn = table();
        let mut insert = RowInsert::prepare(
            &conn,
            "INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)",
        )
        .expect("prepare");
        let text = String::from("héllo");
        let blob = vec![0u8, 1, 2, 255];
        insert
            .execute(params![7u8, text, blob, 1.5f64, "k1"])
            .expect("row 1");
        insert
            .execute(params![
                -3i64,
                "",
                Vec::<u8>::new(),
                None::<f64>,
                None::<&str>
            ])
            .expect("row 2");
        // A constraint failure is this row's error only.
        let err = insert
            .execute(params![1, None::<&str>, None::<Vec<u8>>, 0.0, "k1"])
            .expect_err("unique");
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let err = insert
            .execute(params![None::<i64>, "x", None::<Vec<u8>>, 0.0, "k2"])
            .expect_err("not null");
        assert!(err.to_string().contains("NOT NULL"), "{err}");
        assert!(matches!(
            insert.execute(params![1]),
            Err(rusqlite::Error::InvalidParameterCount(1, 5))
        ));
        insert
            .execute(params![
                9,
                String::from("owned"),
                [5u8; 3].to_vec(),
                2.0,
                "k3"
            ])
            .expect("row 3");
        drop(insert);
        let rows: Vec<TestRow> = conn
            .prepare("SELECT a, b, c, d, e FROM t ORDER BY rowid")
            .expect("select")
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                (
                    7,
                    Some("héllo".into()),
                    Some(vec![0, 1, 2, 255]),
                    Some(1.5),
                    Some("k1".into())
                ),
                (-3, Some(String::new()), Some(Vec::new()), None, None),
                (
                    9,
                    Some("owned".into()),
                    Some(vec![5, 5, 5]),
                    Some(2.0),
                    Some("k3".into())
                ),
            ]
        );
    }

    #[test]
    fn values_are_read_at_step_time_not_later() {
        // The statically bound buffers may be reused by the caller as soon as execute returns.
        let conn = table();
        let mut insert =
            RowInsert::prepare(&conn, "INSERT INTO t (a, b) VALUES (?, ?)").expect("prepare");
        let mut buffer = String::from("first");
        insert.execute(params![1, buffer]).expect("row");
        buffer.clear();
        buffer.push_str("XXXXX");
        insert.execute(params![2, buffer]).expect("row");
        drop(insert);
        let texts: Vec<String> = conn
            .prepare("SELECT b FROM t ORDER BY a")
            .expect("select")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(texts, ["first", "XXXXX"]);
    }
}
