//! ClickHouse backend over the HTTP interface, single server or cluster.
//!
//! `--store clickhouse://user:password@host:8123/db` writes to one server with plain
//! `MergeTree` tables; `…?cluster=NAME` to a cluster of `remote_servers` with
//! `ReplicatedMergeTree` tables on every shard and `Distributed` tables over them, sharded by
//! call (see [`schema`]). `clickhouses://` (or `https://`) speaks TLS; several comma-separated
//! hosts are tried in turn when one does not answer.
//!
//! Writes: one `INSERT … FORMAT RowBinary` per table and batch. A batch encodes to the same
//! bytes every time it is sent (row ids and shard keys are hashes of the content), so when the
//! collector replays a batch from its spool, the server drops the blocks it already has:
//! replicated tables always deduplicate identical blocks (`replicated_deduplication_window`),
//! plain `MergeTree` does where the server has `non_replicated_deduplication_window`, and where
//! `insert_deduplication_token` exists the batch's hash keys the insert. Cluster inserts are
//! synchronous (`insert_distributed_sync`), so an acknowledged batch is on its shards.
//!
//! Outages: connection errors answer [`StoreError::Unavailable`] (the collector spools); the
//! store opens even when no host answers and creates its tables on the first success. The
//! server version and features are probed then; one layout serves ClickHouse 18.16 (Debian's)
//! and current releases, which add column codecs, `LowCardinality` and skip indexes.

mod codec;
mod config;
mod http;
mod query;
mod schema;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub use config::ChConfig;

use crate::{
    BatchOutcome, CallSummary, MessageFilter, Page, Record, RetentionReport, ScanPage, ScanRequest,
    Store, StoreError, StoreStats, StoredMessage, User,
};
use codec::{lit, Reader};
use config::Target;
use http::Http;
use schema::{Features, DATA_TABLES, DAY_US, LINKS};

/// The ClickHouse store. Cheap to share: every call is an HTTP request on a pooled agent.
pub struct ChStore {
    config: ChConfig,
    http: Http,
    cluster: Option<String>,
    /// Set once the layout exists (on the first successful connection).
    features: OnceLock<Features>,
    ready_lock: Mutex<()>,
    ready: AtomicBool,
    /// Last version stamped on a user or setting row (strictly increasing per process).
    last_version: AtomicU64,
    /// Blocks this process had acknowledged, newest last (see [`Acked`]).
    acked: Mutex<Acked>,
}

/// The hashes of the last blocks the server acknowledged, so that a batch replayed after
/// failing half-way (its `sip` block stored, its `qos` block refused) skips the blocks it
/// already stored. The server deduplicates by itself in replicated tables (and in plain ones
/// where it has `non_replicated_deduplication_window`); this covers ClickHouse 18.16's plain
/// `MergeTree`, within one process.
#[derive(Default)]
struct Acked {
    order: std::collections::VecDeque<u64>,
    set: std::collections::HashSet<u64>,
}

impl Acked {
    fn insert(&mut self, key: u64, window: usize) {
        if self.set.insert(key) {
            self.order.push_back(key);
        }
        while self.order.len() > window {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ChStore {
    /// Opens the store. Only a malformed configuration fails here; when no host answers the
    /// store starts degraded (every call "unavailable" until one does).
    pub fn open(config: ChConfig) -> Result<ChStore, StoreError> {
        let target = Target::parse(&config.url)?;
        let http = Http::new(&target, &config)?;
        let store = ChStore {
            cluster: target.cluster.clone(),
            http,
            config,
            features: OnceLock::new(),
            ready_lock: Mutex::new(()),
            ready: AtomicBool::new(false),
            last_version: AtomicU64::new(0),
            acked: Mutex::new(Acked::default()),
        };
        match store.ensure_ready() {
            Ok(()) => {}
            Err(StoreError::Unavailable(why)) => {
                tracing::warn!(reason = %why, "clickhouse unreachable at start; receiving continues, batches are spooled until it is back");
            }
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    /// `host:port,…/database` the store writes to (no credentials).
    pub fn target(&self) -> &str {
        &self.http.target
    }

    /// The server's version, once it has been reached.
    pub fn server_version(&self) -> Option<&str> {
        self.features.get().map(|f| f.version.as_str())
    }

    /// Probes the server and creates the layout, once.
    fn ensure_ready(&self) -> Result<(), StoreError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _guard = self.ready_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let version = String::from_utf8_lossy(&self.http.post(&[], b"SELECT version()", false)?)
            .trim()
            .to_string();
        let names = |table: &str, wanted: &[&str]| -> Result<Vec<String>, StoreError> {
            let sql = format!(
                "SELECT name FROM system.{table} WHERE name IN {} FORMAT RowBinary",
                codec::lit_list(wanted.iter().copied())
            );
            let out = self.http.post(&[], sql.as_bytes(), false)?;
            let mut r = Reader::new(&out);
            let mut v = Vec::new();
            while !r.done() {
                v.push(r.string()?);
            }
            Ok(v)
        };
        let settings = names("settings", &["insert_deduplication_token"])?;
        let mt = names(
            "merge_tree_settings",
            &["non_replicated_deduplication_window"],
        )?;
        let features = Features::from_probe(&version, &settings, &mt);
        let db = self.http.database.clone();
        if let Some(c) = &self.cluster {
            let out = self.http.post(
                &[],
                format!(
                    "SELECT count() FROM system.clusters WHERE cluster = {} FORMAT RowBinary",
                    lit(c)
                )
                .as_bytes(),
                false,
            )?;
            if Reader::new(&out).u64()? == 0 {
                return Err(StoreError::Setup(format!(
                    "clickhouse {}: the server has no cluster {c} in remote_servers",
                    self.http.target
                )));
            }
        }
        // Every table there already (a restart): no DDL, so a node down elsewhere in the
        // cluster does not hold the start for the DDL timeout.
        let existing = self.http.post(
            &[],
            format!(
                "SELECT name FROM system.tables WHERE database = {} FORMAT RowBinary",
                lit(&db)
            )
            .as_bytes(),
            false,
        )?;
        let mut r = Reader::new(&existing);
        let mut have = Vec::new();
        while !r.done() {
            have.push(r.string()?);
        }
        let missing = schema::table_names(self.cluster.is_some())
            .into_iter()
            .any(|t| !have.contains(&t));
        if missing {
            let timeout = self.config.ddl_timeout_s.max(1).to_string();
            let params: Vec<(&str, &str)> = if self.cluster.is_some() {
                vec![("distributed_ddl_task_timeout", &timeout)]
            } else {
                Vec::new()
            };
            for stmt in schema::ddl(
                &db,
                self.cluster.as_deref(),
                &features,
                self.config.deduplication_window,
            ) {
                match self.http.post(&params, stmt.as_bytes(), false) {
                    Ok(_) => {}
                    // ON CLUSTER timed out waiting for a node that is down: the nodes that
                    // answered have the table; the rest get it at a later start.
                    Err(StoreError::Unavailable(why))
                        if self.cluster.is_some() && why.contains("Code: 159") =>
                    {
                        tracing::warn!(error = %why, "clickhouse: a cluster node did not run the DDL in time");
                    }
                    Err(StoreError::Backend(why)) => {
                        return Err(StoreError::Setup(format!(
                            "creating the clickhouse layout: {why}"
                        )))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tracing::info!(
            target = %self.http.target,
            version = %features.version,
            cluster = self.cluster.as_deref().unwrap_or("-"),
            "clickhouse store ready"
        );
        let _ = self.features.set(features);
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    fn features(&self) -> Result<&Features, StoreError> {
        self.ensure_ready()?;
        self.features
            .get()
            .ok_or_else(|| StoreError::Unavailable("clickhouse not reached yet".into()))
    }

    /// A version for a user or setting row: nanoseconds now, strictly above the last one.
    fn next_version(&self) -> u64 {
        let now = now_ns();
        let mut last = self.last_version.load(Ordering::Relaxed);
        loop {
            let v = now.max(last + 1);
            match self.last_version.compare_exchange_weak(
                last,
                v,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return v,
                Err(seen) => last = seen,
            }
        }
    }

    /// Insert settings for a block keyed by `token` (a hash of its bytes).
    fn insert_settings(&self, token: &str) -> Vec<(&'static str, String)> {
        let mut s: Vec<(&'static str, String)> = vec![("insert_deduplicate", "1".into())];
        if self.cluster.is_some() {
            s.push(("insert_distributed_sync", "1".into()));
            s.push(("load_balancing", "in_order".into()));
            if self.config.insert_quorum > 0 {
                s.push(("insert_quorum", self.config.insert_quorum.to_string()));
            }
        }
        if self.features.get().is_some_and(|f| f.dedup_token) {
            s.push(("insert_deduplication_token", token.to_string()));
        }
        s
    }

    fn insert_rows(&self, table: &str, columns: &str, rows: &[u8]) -> Result<(), StoreError> {
        let hash = codec::block_hash(rows) ^ codec::block_hash(table.as_bytes());
        let window = self.config.deduplication_window as usize;
        if self
            .acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set
            .contains(&hash)
        {
            tracing::debug!(table, "clickhouse: block already stored, replay skipped");
            return Ok(());
        }
        let token = format!("{table}-{hash:016x}-{}", rows.len());
        let settings = self.insert_settings(&token);
        let params: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.http.insert(table, columns, &params, rows)?;
        self.acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, window);
        Ok(())
    }

    /// Runs a query answering one UInt64.
    fn count(&self, sql: &str) -> Result<u64, StoreError> {
        let out = self.http.query(&format!("{sql} FORMAT RowBinary"))?;
        Reader::new(&out).u64()
    }

    /// `ALTER TABLE … DROP PARTITION` of one day, on every shard in cluster mode.
    fn drop_day(&self, table: &str, day_id: &str) -> Result<u64, StoreError> {
        let local = schema::local_name(table, self.cluster.is_some());
        let db = &self.http.database;
        let bytes = self.count(&format!(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {} AND table = {} AND partition_id = {} AND active",
            lit(db),
            lit(&local),
            lit(day_id)
        ))?;
        let on = self
            .cluster
            .as_deref()
            .map(|c| format!(" ON CLUSTER {c}"))
            .unwrap_or_default();
        let timeout = self.config.ddl_timeout_s.max(1).to_string();
        self.http.exec(
            &format!(
                "ALTER TABLE {db}.{local}{on} DROP PARTITION ID {}",
                lit(day_id)
            ),
            &[("distributed_ddl_task_timeout", &timeout)],
        )?;
        tracing::info!(table = %table, partition = %day_id, bytes, "retention dropped a day");
        Ok(bytes)
    }

    /// The day partitions (`YYYYMMDD`) of a table before the day holding `before_us`, over
    /// the cluster.
    fn days_before(&self, table: &str, before_us: i64) -> Result<Vec<String>, StoreError> {
        let before_day = before_us.div_euclid(DAY_US).max(0);
        let out = self.http.query(&format!(
            "SELECT DISTINCT toString(toYYYYMMDD(day)) FROM {table} WHERE day < toDate({}) FORMAT RowBinary",
            lit(&day_text(before_day))
        ))?;
        let mut r = Reader::new(&out);
        let mut days = Vec::new();
        while !r.done() {
            days.push(r.string()?);
        }
        days.sort();
        Ok(days)
    }

    fn database_bytes(&self) -> Result<u64, StoreError> {
        self.count(&format!(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {} AND active",
            lit(&self.http.database)
        ))
    }
}

/// `YYYY-MM-DD` of a day number since the epoch (proleptic Gregorian).
fn day_text(days: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", if m <= 2 { y + 1 } else { y }, m, d)
}

impl Store for ChStore {
    fn backend(&self) -> &'static str {
        "clickhouse"
    }

    fn write_parallelism(&self) -> usize {
        self.config.writers.max(1)
    }

    fn insert_batch(&self, batch: &[Record]) -> Result<BatchOutcome, StoreError> {
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut tables: Vec<Vec<u8>> = vec![Vec::new(); DATA_TABLES.len()];
        let mut links: Vec<u8> = Vec::new();
        let mut stored = 0;
        let mut seen: HashMap<i64, u32> = HashMap::new();
        for (i, r) in batch.iter().enumerate() {
            if !(schema::MIN_TIME_US..schema::MAX_TIME_US).contains(&r.time_us) {
                rejected.push((
                    i,
                    format!(
                        "timestamp {} µs is outside 1970–2099, the days ClickHouse partitions",
                        r.time_us
                    ),
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
            // Identical records in one batch get distinct, still deterministic, ids.
            let base = codec::row_id(r, 0);
            let n = seen.entry(base).or_insert(0);
            let id = if *n == 0 { base } else { codec::row_id(r, *n) };
            *n += 1;
            codec::encode_row(r, id, &mut tables[schema::class_of(r)]);
            for key in codec::link_keys(r) {
                codec::encode_link(r, key, &mut links);
            }
            stored += 1;
        }
        if stored > 0 {
            self.ensure_ready()?;
            let columns = schema::insert_columns();
            for (t, rows) in DATA_TABLES.iter().zip(&tables) {
                if !rows.is_empty() {
                    self.insert_rows(t, &columns, rows)?;
                }
            }
            if !links.is_empty() {
                self.insert_rows(LINKS, schema::LINK_COLUMNS, &links)?;
            }
        }
        Ok(BatchOutcome { stored, rejected })
    }

    fn messages(&self, filter: &MessageFilter) -> Result<Page<StoredMessage>, StoreError> {
        self.ensure_ready()?;
        query::messages(self, filter)
    }

    fn calls(&self, filter: &MessageFilter) -> Result<Page<CallSummary>, StoreError> {
        self.ensure_ready()?;
        query::calls(self, filter)
    }

    fn call_flow(
        &self,
        call_ids: &[String],
        from_us: Option<i64>,
        to_us: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.ensure_ready()?;
        query::call_flow(self, call_ids, from_us, to_us)
    }

    fn scan(&self, request: &ScanRequest) -> Result<ScanPage, StoreError> {
        self.ensure_ready()?;
        query::scan(self, request)
    }

    fn enforce_retention(&self, now_us: i64) -> Result<RetentionReport, StoreError> {
        self.features()?;
        let mut report = RetentionReport::default();
        for table in DATA_TABLES.iter().chain(std::iter::once(&LINKS)) {
            let days = self
                .config
                .retention_by_table
                .get(*table)
                .copied()
                .unwrap_or(self.config.retention_days);
            if days == 0 {
                continue;
            }
            // A day is dropped once it ended `days` days ago: every day before the cutoff's.
            let cutoff = now_us.saturating_sub(i64::from(days) * DAY_US);
            for day in self.days_before(table, cutoff)? {
                report.bytes_freed += self.drop_day(table, &day)?;
                report.partitions_dropped.push(format!("{table}/{day}"));
            }
        }
        if self.config.max_database_bytes > 0 {
            let today = now_us.div_euclid(DAY_US);
            for _ in 0..10_000 {
                if self.database_bytes()? <= self.config.max_database_bytes {
                    break;
                }
                // The oldest day of any table, never today's.
                let mut oldest: Option<(String, &str)> = None;
                for table in DATA_TABLES.iter().chain(std::iter::once(&LINKS)) {
                    if let Some(day) = self.days_before(table, today * DAY_US)?.into_iter().next() {
                        if oldest.as_ref().map_or(true, |(d, _)| day < *d) {
                            oldest = Some((day, table));
                        }
                    }
                }
                let Some((day, _)) = oldest else { break };
                // The same day goes in every table at once: the links of a day without its
                // messages are useless.
                for table in DATA_TABLES.iter().chain(std::iter::once(&LINKS)) {
                    report.bytes_freed += self.drop_day(table, &day)?;
                }
                report.partitions_dropped.push(format!("*/{day}"));
            }
        }
        Ok(report)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.features()?;
        let out = self.http.query(&format!(
            "SELECT uniqExact(table, partition_id), sum(bytes_on_disk) FROM system.parts WHERE database = {} AND active FORMAT RowBinary",
            lit(&self.http.database)
        ))?;
        let mut r = Reader::new(&out);
        Ok(StoreStats {
            partitions: r.u64()?,
            bytes: r.u64()?,
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(self.read_users(Some(name))?.into_iter().next())
    }

    fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.write_user(&user.name, &user.password_hash, user.admin, false)
    }

    fn user_count(&self) -> Result<u64, StoreError> {
        Ok(self.read_users(None)?.len() as u64)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.read_users(None)
    }

    fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        if self.user(name)?.is_none() {
            return Ok(false);
        }
        self.write_user(name, "", false, true)?;
        Ok(true)
    }

    fn setting(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_settings(namespace, Some(key))?
            .into_iter()
            .next()
            .map(|(_, v)| v))
    }

    fn put_setting(
        &self,
        namespace: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.ensure_ready()?;
        let mut row = Vec::new();
        for s in [namespace, key, value.unwrap_or("")] {
            codec::put_string(&mut row, s);
        }
        row.push(u8::from(value.is_none()));
        row.extend_from_slice(&self.next_version().to_le_bytes());
        self.http.insert(
            "hepstack_settings",
            "namespace, key, value, deleted, version",
            &[("insert_deduplicate", "0")],
            &row,
        )
    }

    fn settings(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.read_settings(namespace, None)
    }
}

impl ChStore {
    fn write_user(
        &self,
        name: &str,
        hash: &str,
        admin: bool,
        deleted: bool,
    ) -> Result<(), StoreError> {
        self.ensure_ready()?;
        let mut row = Vec::new();
        codec::put_string(&mut row, name);
        codec::put_string(&mut row, hash);
        row.push(u8::from(admin));
        row.push(u8::from(deleted));
        row.extend_from_slice(&self.next_version().to_le_bytes());
        self.http.insert(
            "hepstack_users",
            "name, password_hash, admin, deleted, version",
            &[("insert_deduplicate", "0")],
            &row,
        )
    }

    /// The live users (latest version of each name not deleted), by name.
    fn read_users(&self, name: Option<&str>) -> Result<Vec<User>, StoreError> {
        self.ensure_ready()?;
        let filter = name
            .map(|n| format!(" WHERE name = {}", lit(n)))
            .unwrap_or_default();
        let out = self.http.query(&format!(
            "SELECT name, argMax(password_hash, version), argMax(admin, version) FROM hepstack_users{filter} \
             GROUP BY name HAVING argMax(deleted, version) = 0 ORDER BY name FORMAT RowBinary"
        ))?;
        let mut r = Reader::new(&out);
        let mut users = Vec::new();
        while !r.done() {
            users.push(User {
                name: r.string()?,
                password_hash: r.string()?,
                admin: r.u8()? != 0,
            });
        }
        Ok(users)
    }

    /// The live settings of a namespace (one key, or all), by key.
    fn read_settings(
        &self,
        namespace: &str,
        key: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.ensure_ready()?;
        let key_cond = key
            .map(|k| format!(" AND key = {}", lit(k)))
            .unwrap_or_default();
        let out = self.http.query(&format!(
            "SELECT key, argMax(value, version) FROM hepstack_settings WHERE namespace = {}{key_cond} \
             GROUP BY key HAVING argMax(deleted, version) = 0 ORDER BY key FORMAT RowBinary",
            lit(namespace)
        ))?;
        let mut r = Reader::new(&out);
        let mut v = Vec::new();
        while !r.done() {
            v.push((r.string()?, r.string()?));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_become_dates() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(20_780), "2026-11-23");
        assert_eq!(day_text(11_016), "2000-02-29");
    }

    #[test]
    fn bad_urls_fail_at_open_without_the_password() {
        let err = ChStore::open(ChConfig {
            url: "clickhouse://u:topsecret@h:bad/db".into(),
            ..ChConfig::default()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("bad port"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
    }
}
