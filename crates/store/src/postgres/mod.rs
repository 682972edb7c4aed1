//! PostgreSQL backend in heplify-server's HOMER 7 `homer_data` layout.
//!
//! Users who stop heplify-server and start `hepstack serve --store postgres://…` keep their
//! homer-app and their data: the parent tables (`hep_proto_1_call`, …,
//! `hep_proto_100_default`), their RANGE partitions `<table>_YYYYMMDD_HHMM`, the
//! per-partition indexes and the `protocol_header`/`data_header` JSON keys are exactly
//! heplify-server's (see [`schema`] and [`codec`]). hepstack's users and settings live in
//! separate `hepstack_*` tables.
//!
//! Writes: one binary COPY per table and batch inside one transaction (so a batch that fails
//! as a whole can be spooled and replayed without duplicates); a row the server refuses is
//! found by bisecting the COPY under savepoints and reported alone. Partitions are created on
//! demand for any timestamp between the years 1 and 9999, and ahead of time by
//! [`Store::enforce_retention`].
//!
//! Outages: connection errors answer [`StoreError::Unavailable`] at once and reconnection
//! backs off (see [`pool`]); the store opens even when the server is down and creates its
//! objects on the first successful connection.

pub(crate) mod codec;
mod config;
mod pool;
pub(crate) mod query;
mod scan;
mod schema;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::Client;

pub use config::{CopyFormat, PartitionSteps, PgConfig, TlsMode};

use crate::{
    BatchOutcome, CallSummary, MessageFilter, Page, Record, RetentionReport, ScanPage, ScanRequest,
    Store, StoreError, StoreStats, StoredMessage, User,
};
use pool::{Conn, Pool};
use schema::{Table, DAY_US, TABLES};

/// How long a caller waits for a busy pool before answering "unavailable".
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The PostgreSQL store. Cheap to share: every method takes a pooled connection.
pub struct PgStore {
    config: PgConfig,
    pool: Pool,
    /// SIP keys always written to `data_header`.
    sip_header: Vec<String>,
    /// Parent and hepstack tables created, partition catalog loaded.
    ready: AtomicBool,
    ready_lock: Mutex<()>,
    /// Known partitions: table number → partition starts (µs).
    parts: Mutex<BTreeMap<u8, BTreeSet<i64>>>,
}

/// Splits `sslmode` and `sslrootcert` off the URL (the driver only knows three modes).
fn split_tls_params(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None, None);
    };
    let (mut mode, mut ca) = (None, None);
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.split_once('=') {
            Some(("sslmode", v)) => {
                mode = Some(v.to_string());
                false
            }
            Some(("sslrootcert", v)) => {
                ca = Some(v.to_string());
                false
            }
            _ => !kv.is_empty(),
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, mode, ca)
}

/// Replaces the password in a message (driver errors may quote the connection string).
fn redact(text: &str, password: Option<&[u8]>) -> String {
    match password
        .and_then(|p| std::str::from_utf8(p).ok())
        .filter(|p| !p.is_empty())
    {
        Some(p) => text.replace(p, "***"),
        None => text.to_string(),
    }
}

/// The password of a URL, found without the driver (for redacting its parse errors).
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split('/').next()?.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_string())
}

fn db_name(cfg: &postgres::Config) -> String {
    cfg.get_dbname()
        .map(str::to_string)
        .or_else(|| cfg.get_user().map(str::to_string))
        .unwrap_or_else(|| "postgres".into())
}

/// `host:port/db` of a configuration, for messages.
fn describe(cfg: &postgres::Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", db_name(cfg))
}

impl PgStore {
    /// Opens the store. Only a malformed configuration fails here; when the server cannot be
    /// reached the store starts degraded (every call "unavailable" until it can) and creates
    /// its objects on the first successful connection. A missing database is created when the
    /// role may (`CREATEDB`).
    pub fn open(config: PgConfig) -> Result<PgStore, StoreError> {
        for (what, minutes) in [
            ("sip_minutes", config.partition_steps.sip_minutes),
            ("qos_minutes", config.partition_steps.qos_minutes),
            ("log_minutes", config.partition_steps.log_minutes),
            ("isup_minutes", config.partition_steps.isup_minutes),
        ] {
            if !schema::valid_step(minutes) {
                return Err(StoreError::Setup(format!(
                    "postgres partition_steps.{what} = {minutes}: must divide a day (5, 10, 15, 30, 60, 120, 360, 720, 1440 …)"
                )));
            }
        }
        for key in &config.extra_sip_headers {
            if !codec::KNOWN_SIP_HEADER.contains(&key.as_str()) {
                return Err(StoreError::Setup(format!(
                    "postgres extra_sip_headers: unknown key {key:?} (known: {})",
                    codec::KNOWN_SIP_HEADER.join(", ")
                )));
            }
        }
        let (url, mode, ca) = split_tls_params(&config.url);
        let password = url_password(&url);
        let mut pg = postgres::Config::from_str(&url).map_err(|e| {
            StoreError::Setup(redact(
                &format!("invalid postgres URL: {e}"),
                password.as_deref().map(str::as_bytes),
            ))
        })?;
        let tls_mode = match mode {
            Some(m) => TlsMode::parse(&m).ok_or_else(|| {
                StoreError::Setup(format!(
                    "sslmode={m}: expected disable, prefer, require, verify-ca or verify-full"
                ))
            })?,
            None => config.tls,
        };
        pg.ssl_mode(match tls_mode {
            TlsMode::Disable => postgres::config::SslMode::Disable,
            TlsMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        pg.connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)));
        pg.application_name("hepstack");
        if pg.get_user().is_none() {
            pg.user("postgres");
        }
        let connector = tls::connector(tls_mode, ca.as_deref().unwrap_or(&config.ca_file))?;
        let target = describe(&pg);
        let pool = Pool::new(
            pg,
            connector,
            config.connections,
            Duration::from_millis(config.max_backoff_ms.max(100)),
            target,
        );
        let mut sip_header: Vec<String> = codec::DEFAULT_SIP_HEADER
            .iter()
            .map(|s| s.to_string())
            .collect();
        for key in &config.extra_sip_headers {
            if !sip_header.contains(key) {
                sip_header.push(key.clone());
            }
        }
        let store = PgStore {
            config,
            pool,
            sip_header,
            ready: AtomicBool::new(false),
            ready_lock: Mutex::new(()),
            parts: Mutex::new(BTreeMap::new()),
        };
        match store.connect_ready() {
            Ok(_) => {}
            Err(StoreError::Unavailable(why)) => {
                tracing::warn!(reason = %why, "postgres unreachable at start; receiving continues, batches are spooled until it is back");
            }
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// `host:port/db` the store writes to (no credentials).
    pub fn target(&self) -> &str {
        &self.pool.target
    }

    /// A connection with the schema in place; creates the database when it is missing.
    fn connect_ready(&self) -> Result<Conn<'_>, StoreError> {
        let mut conn = match self.pool.get(POOL_WAIT) {
            Ok(c) => c,
            Err(StoreError::Backend(msg)) if msg.contains("(3D000)") => {
                self.create_database()?;
                // The failed connect armed the pool's backoff; a fast CREATE DATABASE ends
                // inside it, and the store would then look unreachable at start.
                self.pool.clear_backoff();
                self.pool.get(POOL_WAIT)?
            }
            Err(StoreError::Backend(msg)) => return Err(StoreError::Setup(msg)),
            Err(e) => return Err(e),
        };
        self.ensure_ready(&mut conn)?;
        Ok(conn)
    }

    /// `CREATE DATABASE` through the `postgres` maintenance database.
    fn create_database(&self) -> Result<(), StoreError> {
        let (url, _, _) = split_tls_params(&self.config.url);
        let mut cfg =
            postgres::Config::from_str(&url).map_err(|e| StoreError::Setup(e.to_string()))?;
        let name = db_name(&cfg);
        cfg.dbname("postgres");
        cfg.connect_timeout(Duration::from_millis(self.config.connect_timeout_ms.max(1)));
        let target = self.pool.target.clone();
        let mut client = self
            .pool
            .connect_raw(&cfg)
            .map_err(|e| pool::classify(&e, &target))?;
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match client.batch_execute(&sql) {
            Ok(()) => {
                tracing::info!(database = %name, "created the postgres database");
                Ok(())
            }
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
            Err(e) => Err(StoreError::Setup(format!(
                "database {name} does not exist and cannot be created: {}",
                pool::error_text(&e)
            ))),
        }
    }

    fn conn(&self) -> Result<Conn<'_>, StoreError> {
        if self.ready.load(Ordering::Acquire) {
            self.pool.get(POOL_WAIT)
        } else {
            self.connect_ready()
        }
    }

    /// Creates the parent and hepstack tables and loads the partition catalog, once.
    fn ensure_ready(&self, conn: &mut Conn<'_>) -> Result<(), StoreError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.ready_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut ddl: Vec<String> = TABLES.iter().map(Table::create_parent).collect();
        ddl.extend(schema::HEPSTACK_DDL.iter().map(|s| s.to_string()));
        locked_ddl(conn, &ddl).map_err(|e| conn.check(e))?;
        self.reload_partitions(conn)?;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Reads the partitions that exist (also those another writer created).
    fn reload_partitions(&self, conn: &mut Conn<'_>) -> Result<(), StoreError> {
        let parents: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        let rows = conn
            .query(
                "SELECT p.relname::text, c.relname::text FROM pg_inherits i \
                 JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
                 WHERE p.relname = ANY($1) AND pg_catalog.pg_table_is_visible(p.oid)",
                &[&parents],
            )
            .map_err(|e| conn.check(e))?;
        let mut found: BTreeMap<u8, BTreeSet<i64>> = BTreeMap::new();
        for row in rows {
            let parent: String = row.get(0);
            let child: String = row.get(1);
            if let Some(t) = TABLES.iter().find(|t| t.name == parent) {
                if let Some(start) = schema::parse_partition_name(t.name, &child) {
                    found.entry(t.no).or_default().insert(start);
                }
            }
        }
        *self.parts.lock().unwrap_or_else(|p| p.into_inner()) = found;
        Ok(())
    }

    fn known(&self, table: u8, start: i64) -> bool {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&table)
            .is_some_and(|s| s.contains(&start))
    }

    /// Creates the partitions (and their indexes) that are not known yet.
    fn ensure_partitions(
        &self,
        conn: &mut Conn<'_>,
        needed: &BTreeSet<(u8, i64)>,
    ) -> Result<usize, StoreError> {
        let mut created = 0;
        for &(no, start) in needed {
            if self.known(no, start) {
                continue;
            }
            let table = &TABLES[usize::from(no)];
            let step = table.step_us(&self.config.partition_steps);
            let stmts = table.create_partition(start, step);
            match locked_ddl(conn, &stmts) {
                Ok(()) => {
                    created += 1;
                    self.parts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(no)
                        .or_default()
                        .insert(start);
                }
                Err(e) if e.code() == Some(&SqlState::INVALID_OBJECT_DEFINITION) => {
                    // Overlaps a partition of another length (the step was changed): the rows
                    // are routed to that one.
                    tracing::debug!(partition = %schema::partition_name(table.name, start), error = %pool::error_text(&e), "partition not created");
                }
                Err(e) => return Err(conn.check(e)),
            }
        }
        Ok(created)
    }

    fn copy_sql(&self, table: &Table) -> String {
        let format = match self.config.copy_format {
            CopyFormat::Binary => "binary",
            CopyFormat::Text => "text",
        };
        format!(
            "COPY {} (sid, create_date, protocol_header, data_header, raw) FROM STDIN (FORMAT {format})",
            table.name
        )
    }

    /// One COPY of encoded rows.
    fn copy_rows(
        &self,
        tx: &mut postgres::Transaction<'_>,
        table: &Table,
        rows: &[(usize, Vec<u8>)],
    ) -> Result<u64, postgres::Error> {
        let binary = self.config.copy_format == CopyFormat::Binary;
        let mut buf = Vec::with_capacity(rows.iter().map(|(_, r)| r.len()).sum::<usize>() + 32);
        if binary {
            buf.extend_from_slice(codec::COPY_BINARY_HEADER);
        }
        for (_, r) in rows {
            buf.extend_from_slice(r);
        }
        if binary {
            buf.extend_from_slice(codec::COPY_BINARY_TRAILER);
        }
        let mut writer = tx.copy_in(&self.copy_sql(table))?;
        // A write error is the server's refusal arriving early; finish() reports it.
        let _ = writer.write_all(&buf);
        writer.finish()
    }

    /// COPY under a savepoint; a refused COPY is bisected down to the rows at fault.
    fn copy_isolating(
        &self,
        tx: &mut postgres::Transaction<'_>,
        table: &Table,
        rows: &[(usize, Vec<u8>)],
        rejected: &mut Vec<(usize, String)>,
    ) -> Result<usize, postgres::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut sp = tx.transaction()?;
        match self.copy_rows(&mut sp, table, rows) {
            Ok(_) => {
                sp.commit()?;
                Ok(rows.len())
            }
            Err(e) if e.code().is_some_and(|c| !is_transient(c)) => {
                sp.rollback()?;
                if let [(i, _)] = rows {
                    rejected.push((
                        *i,
                        format!("postgres refused the row: {}", pool::error_text(&e)),
                    ));
                    return Ok(0);
                }
                let (a, b) = rows.split_at(rows.len() / 2);
                Ok(self.copy_isolating(tx, table, a, rejected)?
                    + self.copy_isolating(tx, table, b, rejected)?)
            }
            Err(e) => Err(e),
        }
    }

    /// Drops one partition; returns its size before.
    fn drop_partition(
        &self,
        conn: &mut Conn<'_>,
        table: &Table,
        start: i64,
    ) -> Result<u64, StoreError> {
        let name = schema::partition_name(table.name, start);
        let size: i64 = conn
            .query_one(
                "SELECT coalesce(pg_total_relation_size(to_regclass($1)), 0)",
                &[&name],
            )
            .map(|r| r.get(0))
            .map_err(|e| conn.check(e))?;
        conn.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
            .map_err(|e| conn.check(e))?;
        if let Some(set) = self
            .parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&table.no)
        {
            set.remove(&start);
        }
        tracing::info!(partition = %name, bytes = size, "retention dropped a partition");
        Ok(u64::try_from(size).unwrap_or(0))
    }

    fn database_size(&self, conn: &mut Conn<'_>) -> Result<u64, StoreError> {
        let size: i64 = conn
            .query_one("SELECT pg_database_size(current_database())", &[])
            .map(|r| r.get(0))
            .map_err(|e| conn.check(e))?;
        Ok(u64::try_from(size).unwrap_or(0))
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let result = f(&mut conn);
        result.map_err(|e| conn.check(e))
    }
}

/// Key of the transaction-level advisory lock every hepstack DDL statement runs under.
const DDL_LOCK: i64 = 0x6865_7073_7461_636b;

/// Runs DDL (`CREATE … IF NOT EXISTS`) in one transaction under [`DDL_LOCK`]. Why: two
/// writers — threads of one process, or several collectors on one database — creating the
/// same partition at once both pass the `IF NOT EXISTS` check and one fails on the catalog's
/// unique index (`duplicate key value violates unique constraint
/// "pg_class_relname_nsp_index"`), an error in the server log and an aborted statement. Under
/// the lock the second waits for the first to commit and then finds the table. In one
/// transaction, a partition is never seen without its indexes either.
fn locked_ddl(conn: &mut Client, stmts: &[String]) -> Result<(), postgres::Error> {
    let mut tx = conn.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK])?;
    for stmt in stmts {
        tx.batch_execute(stmt)?;
    }
    tx.commit()
}

fn is_transient(code: &SqlState) -> bool {
    pool::transient(code)
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    /// One COPY per connection, keeping one connection for queries: each COPY runs in its
    /// own server backend, so batches in parallel use the server's cores.
    fn write_parallelism(&self) -> usize {
        self.config.connections.saturating_sub(1).max(1)
    }

    fn insert_batch(&self, batch: &[Record]) -> Result<BatchOutcome, StoreError> {
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut groups: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); TABLES.len()];
        let mut needed: BTreeSet<(u8, i64)> = BTreeSet::new();
        let binary = self.config.copy_format == CopyFormat::Binary;
        for (i, r) in batch.iter().enumerate() {
            if !(schema::MIN_TIME_US..schema::MAX_TIME_US).contains(&r.time_us) {
                rejected.push((
                    i,
                    format!("timestamp {} µs is outside the years 1–9999", r.time_us),
                ));
                continue;
            }
            if r.raw.len() > self.config.max_raw_bytes {
                rejected.push((
                    i,
                    format!(
                        "payload of {} bytes exceeds the max_raw_bytes limit",
                        r.raw.len()
                    ),
                ));
                continue;
            }
            let table = schema::table_for(r);
            let step = table.step_us(&self.config.partition_steps);
            needed.insert((table.no, schema::partition_start(r.time_us, step)));
            let row = codec::encode(r, table, &self.sip_header);
            let mut bytes = Vec::with_capacity(
                row.protocol_header.len() + row.data_header.len() + row.raw.len() + 64,
            );
            if binary {
                codec::copy_binary_tuple(&row, &mut bytes);
            } else {
                codec::copy_text_line(&row, &mut bytes);
            }
            groups[usize::from(table.no)].push((i, bytes));
        }
        if groups.iter().all(Vec::is_empty) {
            return Ok(BatchOutcome {
                stored: 0,
                rejected,
            });
        }
        let mut conn = self.conn()?;
        self.ensure_partitions(&mut conn, &needed)?;
        let result = (|| -> Result<usize, postgres::Error> {
            let mut tx = conn.transaction()?;
            let mut stored = 0;
            for table in &TABLES {
                stored += self.copy_isolating(
                    &mut tx,
                    table,
                    &groups[usize::from(table.no)],
                    &mut rejected,
                )?;
            }
            tx.commit()?;
            Ok(stored)
        })();
        match result {
            Ok(stored) => {
                rejected.sort_by_key(|(i, _)| *i);
                Ok(BatchOutcome { stored, rejected })
            }
            Err(e) => Err(conn.check(e)),
        }
    }

    fn scan(&self, request: &ScanRequest) -> Result<ScanPage, StoreError> {
        let mut conn = self.conn()?;
        scan::scan(&mut conn, request)
    }

    fn messages(&self, filter: &MessageFilter) -> Result<Page<StoredMessage>, StoreError> {
        let mut conn = self.conn()?;
        query::messages(self, &mut conn, filter)
    }

    fn calls(&self, filter: &MessageFilter) -> Result<Page<CallSummary>, StoreError> {
        let mut conn = self.conn()?;
        query::calls(self, &mut conn, filter)
    }

    fn call_flow(
        &self,
        call_ids: &[String],
        from_us: Option<i64>,
        to_us: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut conn = self.conn()?;
        query::call_flow(self, &mut conn, call_ids, from_us, to_us)
    }

    fn enforce_retention(&self, now_us: i64) -> Result<RetentionReport, StoreError> {
        let mut conn = self.conn()?;
        self.reload_partitions(&mut conn)?;
        let mut report = RetentionReport::default();
        // Ahead: the current and the next `create_ahead_days` of partitions.
        let mut needed = BTreeSet::new();
        for table in &TABLES {
            let step = table.step_us(&self.config.partition_steps);
            let end = now_us.saturating_add(i64::from(self.config.create_ahead_days) * DAY_US);
            let mut start = schema::partition_start(now_us, step);
            while start <= end {
                needed.insert((table.no, start));
                start += step;
            }
        }
        self.ensure_partitions(&mut conn, &needed)?;
        // Age, per table.
        let snapshot = self.parts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for table in &TABLES {
            let days = self
                .config
                .retention_by_table
                .get(table.name)
                .copied()
                .unwrap_or(self.config.retention_days);
            if days == 0 {
                continue;
            }
            let step = table.step_us(&self.config.partition_steps);
            let cutoff = now_us.saturating_sub(i64::from(days) * DAY_US);
            for &start in snapshot.get(&table.no).into_iter().flatten() {
                if start.saturating_add(step) <= cutoff {
                    report.bytes_freed += self.drop_partition(&mut conn, table, start)?;
                    report
                        .partitions_dropped
                        .push(schema::partition_name(table.name, start));
                }
            }
        }
        // Size: oldest partitions first, never those holding `now`.
        if self.config.max_database_bytes > 0 {
            for _ in 0..10_000 {
                if self.database_size(&mut conn)? <= self.config.max_database_bytes {
                    break;
                }
                let oldest = {
                    let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
                    TABLES
                        .iter()
                        .filter_map(|t| {
                            let step = t.step_us(&self.config.partition_steps);
                            let first = *parts.get(&t.no)?.iter().next()?;
                            (first + step <= now_us).then_some((first, t))
                        })
                        .min_by_key(|(start, _)| *start)
                };
                let Some((start, table)) = oldest else { break };
                report.bytes_freed += self.drop_partition(&mut conn, table, start)?;
                report
                    .partitions_dropped
                    .push(schema::partition_name(table.name, start));
            }
        }
        Ok(report)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut conn = self.conn()?;
        let bytes = self.database_size(&mut conn)?;
        let partitions = self
            .parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|s| s.len() as u64)
            .sum();
        Ok(StoreStats { partitions, bytes })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.run(|c| {
            c.query_opt(
                "SELECT name, password_hash, admin FROM hepstack_users WHERE name = $1",
                &[&name],
            )
            .map(|r| {
                r.map(|r| User {
                    name: r.get(0),
                    password_hash: r.get(1),
                    admin: r.get(2),
                })
            })
        })
    }

    fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.run(|c| {
            c.execute(
                "INSERT INTO hepstack_users (name, password_hash, admin) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, admin = excluded.admin",
                &[&user.name, &user.password_hash, &user.admin],
            )
            .map(|_| ())
        })
    }

    fn user_count(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            c.query_one("SELECT count(*) FROM hepstack_users", &[])
                .map(|r| r.get::<_, i64>(0))
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.run(|c| {
            c.query(
                "SELECT name, password_hash, admin FROM hepstack_users ORDER BY name COLLATE \"C\"",
                &[],
            )
            .map(|rows| {
                rows.into_iter()
                    .map(|r| User {
                        name: r.get(0),
                        password_hash: r.get(1),
                        admin: r.get(2),
                    })
                    .collect()
            })
        })
    }

    fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        self.run(|c| {
            c.execute("DELETE FROM hepstack_users WHERE name = $1", &[&name])
                .map(|n| n > 0)
        })
    }

    fn setting(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.run(|c| {
            c.query_opt(
                "SELECT value FROM hepstack_settings WHERE namespace = $1 AND key = $2",
                &[&namespace, &key],
            )
            .map(|r| r.map(|r| r.get(0)))
        })
    }

    fn put_setting(
        &self,
        namespace: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.run(|c| match value {
            Some(v) => c
                .execute(
                    "INSERT INTO hepstack_settings (namespace, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                    &[&namespace, &key, &v],
                )
                .map(|_| ()),
            None => c
                .execute(
                    "DELETE FROM hepstack_settings WHERE namespace = $1 AND key = $2",
                    &[&namespace, &key],
                )
                .map(|_| ()),
        })
    }

    fn settings(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.run(|c| {
            c.query(
                "SELECT key, value FROM hepstack_settings WHERE namespace = $1 ORDER BY key COLLATE \"C\"",
                &[&namespace],
            )
            .map(|rows| rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_params_are_split_off_and_passwords_redacted() {
        let (url, mode, ca) = split_tls_params(
            "postgres://u:pw@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=/ca.pem",
        );
        assert_eq!(url, "postgres://u:pw@h:5/db?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(ca.as_deref(), Some("/ca.pem"));
        assert_eq!(split_tls_params("postgres://h/db").0, "postgres://h/db");
        assert_eq!(
            url_password("postgres://u:s3cr%t@h/db").as_deref(),
            Some("s3cr%t")
        );
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(redact("bad u:s3cr@h", Some(b"s3cr")), "bad u:***@h");
    }

    #[test]
    fn bad_configuration_fails_without_the_password() {
        let err = PgStore::open(PgConfig {
            url: "postgres://u:topsecret@h:notaport/db".into(),
            ..PgConfig::default()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("invalid postgres URL"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
        let err = PgStore::open(PgConfig {
            partition_steps: PartitionSteps {
                sip_minutes: 7,
                ..PartitionSteps::default()
            },
            ..PgConfig::default()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("sip_minutes"), "{err}");
    }
}
