//! The row insert statements of a partition writer, bound without copying the rows' text and
//! blobs, one row or many rows per statement.
//!
//! Why static binding: rusqlite binds every text and blob with `SQLITE_TRANSIENT`, so SQLite
//! copies each one into a buffer of its own before the insert and frees it after: the raw
//! message, the addresses, a dozen header values per row. In the ingest profile that was ≈ 5 %
//! of the writers' time (`memmove`, `malloc`, `free`). Here every value is a [`ValueRef`]
//! borrowed for the whole of [`RowInsert::execute`] and bound with `SQLITE_STATIC`, which is
//! sound because the bindings are cleared before it returns.
//!
//! Why many rows per statement: each run of a one-row `INSERT` opens a cursor on the table and
//! on every index, descends each B-tree from its root and closes them again. A multi-row
//! `VALUES` keeps the cursors open across its rows, so the table's append and the time index's
//! near-append positions are found without a descent (see `schema::ROWS_PER_INSERT`).

use std::ffi::{c_int, CStr};
use std::ptr;

use rusqlite::ffi;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

/// A prepared statement on a writer connection. Must be dropped before that connection (the
/// owner declares it first: fields drop in declaration order).
pub(crate) struct RowInsert {
    stmt: *mut ffi::sqlite3_stmt,
    db: *mut ffi::sqlite3,
    /// The statement's parameter count.
    parameters: usize,
}

// SAFETY: like rusqlite's `Connection` (which is `Send`), the statement may move to another
// thread; it is only ever used through `&mut self`, by one thread at a time, and the writer
// connection it belongs to travels with it inside the same `PartitionWriter`.
unsafe impl Send for RowInsert {}

/// Why a run of the statement failed, and what it left behind.
#[derive(Debug)]
pub(crate) struct InsertFailure {
    pub error: rusqlite::Error,
    /// Rows the statement inserted before the failing one. An `INSERT OR FAIL` keeps them
    /// (a constraint failure does not roll the statement back); 0 when nothing ran.
    pub rows_kept: u64,
}

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
            let parameters = usize::try_from(ffi::sqlite3_bind_parameter_count(stmt)).unwrap_or(0);
            Ok(RowInsert {
                stmt,
                db,
                parameters,
            })
        }
    }

    /// Binds `values` to the parameters (1-based, in order; all of them), runs the statement
    /// once, and resets it. A failure (a constraint, a value SQLite refuses) leaves the
    /// statement ready for the next run.
    pub(crate) fn execute(&mut self, values: &[ValueRef<'_>]) -> Result<(), InsertFailure> {
        let result = self.bind_and_step(values);
        // SAFETY: `stmt` is a live statement of this connection. Clearing the bindings drops
        // SQLite's pointers into `values` before the borrow ends.
        unsafe {
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
        }
        result
    }

    fn bind_and_step(&mut self, values: &[ValueRef<'_>]) -> Result<(), InsertFailure> {
        let unrun = |error| InsertFailure {
            error,
            rows_kept: 0,
        };
        if values.len() != self.parameters {
            return Err(unrun(rusqlite::Error::InvalidParameterCount(
                values.len(),
                self.parameters,
            )));
        }
        for (index, value) in (1..).zip(values) {
            // Every parameter is NULL already: a new statement's are, and `execute` clears
            // them after each run. Rows leave most of the 46 columns NULL (RTCP rows nearly
            // all of them), and binding those again was ~1 % of the collector's CPU.
            if matches!(value, ValueRef::Null) {
                continue;
            }
            // SAFETY: see `bind`.
            let rc = unsafe { self.bind(index, *value) };
            if rc != ffi::SQLITE_OK {
                return Err(unrun(error_from(self.db, rc)));
            }
        }
        // SAFETY: `stmt` is live and every parameter is bound or NULL.
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_DONE => Ok(()),
            ffi::SQLITE_ROW => Err(unrun(rusqlite::Error::ExecuteReturnedResults)),
            rc => Err(InsertFailure {
                error: error_from(self.db, rc),
                // SAFETY: `db` is live. The failed run set the connection's change count
                // when it halted: the rows it kept, or 0 when it rolled back.
                rows_kept: u64::try_from(unsafe { ffi::sqlite3_changes64(self.db) }).unwrap_or(0),
            }),
        }
    }

    /// Binds one value.
    ///
    /// # Safety
    /// Text and blobs are bound with `SQLITE_STATIC`: they must stay valid until the bindings
    /// are cleared. They are borrowed for the whole of `execute`, which clears the bindings
    /// before returning.
    unsafe fn bind(&mut self, index: c_int, value: ValueRef<'_>) -> c_int {
        match value {
            ValueRef::Null => ffi::sqlite3_bind_null(self.stmt, index),
            ValueRef::Integer(i) => ffi::sqlite3_bind_int64(self.stmt, index, i),
            ValueRef::Real(r) => ffi::sqlite3_bind_double(self.stmt, index, r),
            ValueRef::Text(t) => match c_int::try_from(t.len()) {
                Ok(len) if len > 0 => ffi::sqlite3_bind_text(
                    self.stmt,
                    index,
                    t.as_ptr().cast(),
                    len,
                    ffi::SQLITE_STATIC(),
                ),
                // An empty string needs a valid pointer that lives forever.
                Ok(_) => {
                    ffi::sqlite3_bind_text(self.stmt, index, c"".as_ptr(), 0, ffi::SQLITE_STATIC())
                }
                Err(_) => ffi::SQLITE_TOOBIG,
            },
            ValueRef::Blob(b) => match c_int::try_from(b.len()) {
                Ok(len) if len > 0 => ffi::sqlite3_bind_blob(
                    self.stmt,
                    index,
                    b.as_ptr().cast(),
                    len,
                    ffi::SQLITE_STATIC(),
                ),
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
    use rusqlite::types::ValueRef::{Blob, Integer, Null, Real, Text};

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

    fn rows(conn: &Connection) -> Vec<TestRow> {
        conn.prepare("SELECT a, b, c, d, e FROM t ORDER BY rowid")
            .expect("select")
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn binds_every_kind_and_reports_errors_per_row() {
        let conn = table();
        let mut insert = RowInsert::prepare(
            &conn,
            "INSERT OR FAIL INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)",
        )
        .expect("prepare");
        let text = String::from("héllo");
        let blob = vec![0u8, 1, 2, 255];
        insert
            .execute(&[
                Integer(7),
                Text(text.as_bytes()),
                Blob(&blob),
                Real(1.5),
                Text(b"k1"),
            ])
            .expect("row 1");
        insert
            .execute(&[Integer(-3), Text(b""), Blob(&[]), Null, Null])
            .expect("row 2");
        // A constraint failure is this row's error only.
        let err = insert
            .execute(&[Integer(1), Null, Null, Real(0.0), Text(b"k1")])
            .expect_err("unique");
        assert!(err.error.to_string().contains("UNIQUE"), "{}", err.error);
        assert_eq!(err.rows_kept, 0);
        let err = insert
            .execute(&[Null, Text(b"x"), Null, Real(0.0), Text(b"k2")])
            .expect_err("not null");
        assert!(err.error.to_string().contains("NOT NULL"), "{}", err.error);
        assert!(matches!(
            insert.execute(&[Integer(1)]).map_err(|f| f.error),
            Err(rusqlite::Error::InvalidParameterCount(1, 5))
        ));
        insert
            .execute(&[
                Integer(9),
                Text(b"owned"),
                Blob(&[5; 3]),
                Real(2.0),
                Text(b"k3"),
            ])
            .expect("row 3");
        drop(insert);
        assert_eq!(
            rows(&conn),
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
    fn a_multi_row_insert_keeps_the_rows_before_a_failing_one_and_says_how_many() {
        let conn = table();
        let mut insert = RowInsert::prepare(
            &conn,
            "INSERT OR FAIL INTO t (a, e) VALUES (?, ?), (?, ?), (?, ?), (?, ?)",
        )
        .expect("prepare");
        insert
            .execute(&[
                Integer(1),
                Null,
                Integer(2),
                Null,
                Integer(3),
                Null,
                Integer(4),
                Null,
            ])
            .expect("four rows");
        // The third row breaks NOT NULL: the first two stay, the fourth is not reached.
        let err = insert
            .execute(&[
                Integer(5),
                Null,
                Integer(6),
                Null,
                Null,
                Null,
                Integer(8),
                Null,
            ])
            .expect_err("not null");
        assert!(err.error.to_string().contains("NOT NULL"), "{}", err.error);
        assert_eq!(err.rows_kept, 2);
        // Nothing ran: nothing kept, whatever the previous run left in the change count.
        let err = insert.execute(&[Integer(1)]).expect_err("count");
        assert_eq!(err.rows_kept, 0);
        // The first row fails: nothing kept.
        let err = insert
            .execute(&[
                Null,
                Null,
                Integer(6),
                Null,
                Integer(7),
                Null,
                Integer(8),
                Null,
            ])
            .expect_err("not null");
        assert_eq!(err.rows_kept, 0);
        insert
            .execute(&[
                Integer(9),
                Null,
                Integer(10),
                Null,
                Integer(11),
                Null,
                Integer(12),
                Null,
            ])
            .expect("four more");
        drop(insert);
        let a: Vec<i64> = rows(&conn).into_iter().map(|r| r.0).collect();
        assert_eq!(a, [1, 2, 3, 4, 5, 6, 9, 10, 11, 12]);
    }

    #[test]
    fn values_are_read_at_step_time_not_later() {
        // The statically bound buffers may be reused by the caller as soon as execute returns.
        let conn = table();
        let mut insert =
            RowInsert::prepare(&conn, "INSERT INTO t (a, b) VALUES (?, ?)").expect("prepare");
        let mut buffer = String::from("first");
        insert
            .execute(&[Integer(1), Text(buffer.as_bytes())])
            .expect("row");
        buffer.clear();
        buffer.push_str("XXXXX");
        insert
            .execute(&[Integer(2), Text(buffer.as_bytes())])
            .expect("row");
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
