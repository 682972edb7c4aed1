//! The embedded SQLite store, the default store of `hepstack serve`.
//!
//! # Layout
//!
//! `data_dir/catalog.db` holds the users and the store's metadata. Messages live in
//! time-partitioned files, one SQLite database per UTC hour (or day) and retention class:
//! `data_dir/2026-11-23T14.r7.db` (see [`partition`] for the naming). A partition is created on
//! demand for any timestamp, so an old replay or a clock years off gets its own file instead of
//! failing its batch; retention deletes whole files. Rows whose retention differs (per-profile
//! and per-HEP-type overrides) go to different files of the same period.
//!
//! # Durability
//!
//! Every file runs in WAL mode with `synchronous=NORMAL`: a committed batch is in the WAL, so
//! a killed (even `SIGKILL`ed) process loses nothing committed; an OS crash or power loss can
//! lose the batches committed since the last WAL checkpoint, never corrupt a file.
//!
//! # Concurrency
//!
//! `insert_batch` may run on several threads: rows are encoded (compression, JSON) in the
//! caller's thread, then each partition period is written in one transaction by a connection
//! owned by that partition file. When two writers target the same period at the same time, the
//! second takes another *write shard* (a sibling file, see [`SqliteConfig::write_shards`])
//! instead of waiting. Queries use separate reader connections (pooled per partition); WAL lets
//! them run while writers commit. At most [`SqliteConfig::max_open_partitions`] partitions are
//! kept open (least recently used are closed).
//!
//! # Indexes and query cost
//!
//! Every partition indexes time and `sid` (Call-ID); these and the optional indexes
//! ([`SqliteConfig::indexes`]) on users, IPs, method and node lead with an index *segment*
//! number (a run of consecutive rows; table `seg_span` keeps each
//! segment's time span) so that inserts touch only the newest segment's pages, however out of
//! order capture times arrive; a query probes every segment whose span meets its window (one
//! probe per [`SqliteConfig::index_segment_rows`] rows of the window), and a newest-first page
//! that no other index narrows merges the time index's segments, newest segment end first.
//! Time-bounded queries — the API defaults to the last hour — are therefore cheap, while an
//! unbounded user or IP search pays a probe per segment of the whole store. Correlation and A-leg ids use small partial
//! indexes (only rows pointing at another session are in them).
//!
//! # Row identity
//!
//! [`StoredMessage::id`] is the partition's rowid shifted left by 21 bits, or-ed with a tag of
//! the partition (span, shard, retention): unique in the store together with `time_us`, and
//! `(time_us, id)` totally orders rows for the newest-first cursors.

mod codec;
mod config;
mod dictionary;
mod partition;
mod query;
mod row_insert;
mod scan;
mod schema;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, TryLockError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use dictionary::{DictionaryCache, DictionaryTrainer, PartitionDictionaries, RawDictionary};

pub use config::{IndexKind, PartitionSpan, ProfileRetention, RawCompression, SqliteConfig};
use partition::{PartKey, DAY_US, MAX_RETENTION_DAYS, MAX_SHARDS};
pub use query::{DEFAULT_PAGE, MAX_CALL_IDS};
use schema::{PartitionWriter, PreparedRow};

use crate::{
    BatchOutcome, CallSummary, MessageFilter, Page, Profile, Record, RecordHint, RetentionReport,
    ScanPage, ScanRequest, Store, StoreError, StoreStats, StoredMessage, User,
};

/// Name of the catalog database in the data directory.
const CATALOG_FILE: &str = "catalog.db";
/// Schema version written to the catalog; bumped when older binaries cannot read the data.
/// 3: raw payloads compressed with a partition dictionary (codec tag 3) and SIP detail columns
/// derived on read (`same_ids` bit 8); an older binary would fail on those rows mid-query, so
/// it refuses the directory at start instead.
const SCHEMA_VERSION: i64 = 3;
/// Older schema versions this one reads as they are (upgraded in place at open): version 2
/// partitions simply have no dictionary rows.
const UPGRADABLE_VERSIONS: [&str; 1] = ["2"];
/// Reader connections kept per open partition.
const READER_POOL: usize = 4;

/// A partition writer idle this long gives its WAL file back (checked by each retention pass,
/// once a minute): the previous hour's partition is idle a minute or two into the next hour.
const IDLE_WAL_AFTER: Duration = Duration::from_secs(60);

/// Longest a retention pass waits for readers to let a WAL be truncated (it retries next pass).
const IDLE_WAL_MAX_WAIT: Duration = Duration::from_millis(200);

/// Locks a mutex, recovering from poisoning: the protected state (a connection, a cache) stays
/// consistent because no code path panics half-way through an update of it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One open partition file.
struct Partition {
    key: PartKey,
    path: PathBuf,
    /// The writer connection, opened by the first insert.
    writer: Mutex<Option<PartitionWriter>>,
    /// Idle reader connections.
    readers: Mutex<Vec<Connection>>,
    /// The file's raw-payload dictionaries, for its readers.
    dictionaries: Arc<PartitionDictionaries>,
    /// Set (under the writer lock) when retention deleted the file: writers holding this
    /// handle must reopen the partition instead of writing into an unlinked file.
    dropped: AtomicBool,
    /// Which of the file's base indexes lead with the segment; read by the first reader.
    layout: OnceLock<schema::IndexLayout>,
}

impl Partition {
    /// The file's index layout (that of the oldest files until a reader looked).
    fn layout(&self) -> schema::IndexLayout {
        self.layout.get().copied().unwrap_or_default()
    }
}

/// LRU cache of open partitions.
struct OpenPartitions {
    map: HashMap<PartKey, (Arc<Partition>, u64)>,
    tick: u64,
}

/// Why a partition group could not be written.
enum GroupError {
    /// Retention dropped the partition meanwhile; write it again.
    Dropped,
    /// The partition could not be opened or written.
    Failed(String),
}

/// The embedded SQLite [`Store`]. See the module documentation for layout and guarantees.
pub struct SqliteStore {
    config: SqliteConfig,
    /// Retention days by HEP type, where configured (an array: looked up for every row).
    type_retention: Box<[Option<u32>; 256]>,
    catalog: Mutex<Connection>,
    /// Every partition file in the data directory.
    known: RwLock<BTreeSet<PartKey>>,
    open: Mutex<OpenPartitions>,
    /// Dictionaries by id, shared by the partitions.
    dictionaries: Arc<DictionaryCache>,
    /// Learns the dictionary new rows are compressed with (`zstd-dict`).
    trainer: Arc<DictionaryTrainer>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

fn setup_err(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Setup(format!("{what}: {e}"))
}

fn backend_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Bytes a partition (or the catalog) takes on disk, WAL and shared-memory files included.
fn files_size(path: &Path) -> u64 {
    sidecars(path)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// The database file and its `-wal` and `-shm` companions.
fn sidecars(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [path.to_path_buf(), with("-wal"), with("-shm")]
}

impl SqliteStore {
    /// Opens (creating when missing) the store in `config.data_dir`: creates the directory and
    /// the catalog, and lists the partition files already there.
    pub fn open(config: SqliteConfig) -> Result<SqliteStore, StoreError> {
        let mut type_retention = Box::new([None; 256]);
        for (key, days) in &config.retention_by_hep_type {
            let t: u8 = key.trim().parse().map_err(|_| {
                StoreError::Setup(format!(
                    "retention_by_hep_type: `{key}` is not a HEP type (0–255)"
                ))
            })?;
            type_retention[usize::from(t)] = Some(*days);
        }
        let all_days = std::iter::once(config.retention_days)
            .chain(type_retention.iter().flatten().copied())
            .chain(
                [Profile::Call, Profile::Registration, Profile::Default]
                    .iter()
                    .filter_map(|p| config.retention_by_profile.get(*p)),
            );
        if let Some(days) = all_days.into_iter().find(|d| *d > MAX_RETENTION_DAYS) {
            return Err(StoreError::Setup(format!(
                "retention of {days} days above the maximum of {MAX_RETENTION_DAYS}"
            )));
        }
        if config.max_open_partitions == 0 {
            return Err(StoreError::Setup(
                "max_open_partitions must be at least 1".into(),
            ));
        }
        if config.index_segment_rows == 0 {
            return Err(StoreError::Setup(
                "index_segment_rows must be at least 1".into(),
            ));
        }
        if !(1..=1024).contains(&config.dictionary_kib) {
            return Err(StoreError::Setup("dictionary_kib must be 1–1024".into()));
        }
        if !(16..=1_000_000).contains(&config.dictionary_samples) {
            return Err(StoreError::Setup(
                "dictionary_samples must be 16–1000000".into(),
            ));
        }
        if config.write_shards == 0 || config.write_shards > MAX_SHARDS {
            return Err(StoreError::Setup(format!(
                "write_shards must be 1–{MAX_SHARDS}"
            )));
        }
        fs::create_dir_all(&config.data_dir)
            .map_err(|e| setup_err("creating the data directory", e))?;
        let catalog = Connection::open(config.data_dir.join(CATALOG_FILE))
            .map_err(|e| setup_err("opening the catalog", e))?;
        catalog
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
                                                   admin INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS settings (namespace TEXT NOT NULL, key TEXT NOT NULL,
                                                      value TEXT NOT NULL,
                                                      PRIMARY KEY (namespace, key));",
            )
            .map_err(|e| setup_err("creating the catalog", e))?;
        let version: Option<String> = catalog
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| setup_err("reading the catalog", e))?;
        match version {
            None => {
                catalog
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                        [SCHEMA_VERSION.to_string()],
                    )
                    .map_err(|e| setup_err("writing the catalog", e))?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) if UPGRADABLE_VERSIONS.contains(&v.as_str()) => {
                catalog
                    .execute(
                        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                        [SCHEMA_VERSION.to_string()],
                    )
                    .map_err(|e| setup_err("upgrading the catalog", e))?;
                tracing::info!(from = %v, to = SCHEMA_VERSION, "store schema upgraded");
            }
            Some(v) if v.parse::<i64>().is_ok_and(|v| v > SCHEMA_VERSION) => {
                return Err(StoreError::Setup(format!(
                    "the store in {} was written by a newer hepstack (store schema {v}); this \
                     version reads schema {SCHEMA_VERSION} and upgrades {}: run the newer \
                     hepstack, or start this one on another data directory (docs/upgrade.md)",
                    config.data_dir.display(),
                    UPGRADABLE_VERSIONS.join(", ")
                )))
            }
            Some(v) => {
                return Err(StoreError::Setup(format!(
                    "data directory has schema version {v}, expected {SCHEMA_VERSION}"
                )))
            }
        }
        let mut known = BTreeSet::new();
        let entries = fs::read_dir(&config.data_dir)
            .map_err(|e| setup_err("listing the data directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| setup_err("listing the data directory", e))?;
            let name = entry.file_name();
            if let Some(key) = name.to_str().and_then(PartKey::parse) {
                known.insert(key);
            }
        }
        tracing::info!(dir = %config.data_dir.display(), partitions = known.len(), "sqlite store opened");
        let dictionaries = Arc::new(DictionaryCache::default());
        Ok(SqliteStore {
            trainer: DictionaryTrainer::new(&config, dictionaries.clone()),
            dictionaries,
            type_retention,
            catalog: Mutex::new(catalog),
            known: RwLock::new(known),
            open: Mutex::new(OpenPartitions {
                map: HashMap::new(),
                tick: 0,
            }),
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// Id of the dictionary new rows are compressed with, once one was trained (`zstd-dict`).
    pub fn raw_dictionary_id(&self) -> Option<u32> {
        self.trainer.current().map(|d| d.id())
    }

    /// Trains the raw dictionary from these payloads now, in this thread, and compresses the
    /// rows inserted from now on with it (`zstd-dict`; the store otherwise trains on its own
    /// from the traffic). For tools and tests that need a known dictionary at once.
    pub fn train_raw_dictionary(&self, samples: &[Vec<u8>]) -> Result<u32, StoreError> {
        self.trainer
            .train_now(samples)
            .map(|d| d.id())
            .map_err(StoreError::Backend)
    }

    /// File names of the partitions, oldest period first (for diagnostics and tests).
    pub fn partition_files(&self) -> Vec<String> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.iter().map(PartKey::file_name).collect()
    }

    /// Retention (days) of a record: HEP type override, else profile override, else default.
    fn retention_for(&self, record: &Record) -> u32 {
        self.type_retention[usize::from(record.hep_type)]
            .or_else(|| self.config.retention_by_profile.get(record.profile))
            .unwrap_or(self.config.retention_days)
    }

    fn path_of(&self, key: &PartKey) -> PathBuf {
        self.config.data_dir.join(key.file_name())
    }

    /// The open handle of a partition. With `create`, a missing partition file is created
    /// (schema and indexes) and its writer opened; without, only known partitions are returned.
    fn partition(&self, key: PartKey, create: bool) -> Result<Option<Arc<Partition>>, String> {
        let mut open = lock(&self.open);
        open.tick += 1;
        let tick = open.tick;
        if let Some(entry) = open.map.get_mut(&key) {
            entry.1 = tick;
            return Ok(Some(entry.0.clone()));
        }
        let is_known = self
            .known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key);
        if !create && !is_known {
            return Ok(None);
        }
        let path = self.path_of(&key);
        let writer = if create {
            let conn = schema::open_writer(&path, &self.config)
                .map_err(|e| format!("opening partition {}: {e}", key.file_name()))?;
            self.known
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key);
            Some(conn)
        } else {
            None
        };
        let part = Arc::new(Partition {
            key,
            dictionaries: Arc::new(PartitionDictionaries::new(&path, self.dictionaries.clone())),
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            dropped: AtomicBool::new(false),
            layout: OnceLock::new(),
        });
        while open.map.len() >= self.config.max_open_partitions {
            let Some(oldest) = open
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            else {
                break;
            };
            // In-flight users keep their Arc; the connections close when the last one ends.
            open.map.remove(&oldest);
        }
        open.map.insert(key, (part.clone(), tick));
        Ok(Some(part))
    }

    /// Runs `f` with a reader connection of the partition (pooled). A partition deleted by
    /// retention meanwhile yields `Ok(None)`.
    fn with_reader<T>(
        &self,
        part: &Partition,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        if part.dropped.load(Ordering::Acquire) {
            return Ok(None);
        }
        let pooled = lock(&part.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => match schema::open_reader(
                &part.path,
                self.config.max_raw_bytes,
                part.dictionaries.clone(),
            ) {
                Ok(c) => c,
                Err(_) if part.dropped.load(Ordering::Acquire) || !part.path.exists() => {
                    return Ok(None)
                }
                Err(e) => {
                    return Err(backend_err(format!(
                        "opening {}: {e}",
                        part.key.file_name()
                    )))
                }
            },
        };
        if part.layout.get().is_none() {
            if let Ok(Some(layout)) = schema::IndexLayout::of(&conn) {
                let _ = part.layout.set(layout);
            }
        }
        let result = f(&conn);
        let mut pool = lock(&part.readers);
        if pool.len() < READER_POOL && !part.dropped.load(Ordering::Acquire) {
            pool.push(conn);
        }
        result.map(Some)
    }

    /// Known partitions overlapping `[from, to)`, newest period first.
    fn partitions_in(&self, from_us: Option<i64>, to_us: Option<i64>) -> Vec<PartKey> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<PartKey> = known
            .iter()
            .filter(|k| k.overlaps(from_us, to_us))
            .copied()
            .collect();
        keys.sort_by(|a, b| {
            b.end_us()
                .cmp(&a.end_us())
                .then(b.start_us.cmp(&a.start_us))
                .then(b.tag().cmp(&a.tag()))
        });
        keys
    }

    /// Writes the rows of one period into one of its write shards, one transaction.
    fn write_group(
        &self,
        base: PartKey,
        rows: &[(usize, PreparedRow<'_>)],
        dict: Option<&RawDictionary>,
    ) -> Result<(usize, Vec<(usize, String)>), String> {
        let shards = self.config.write_shards.clamp(1, MAX_SHARDS);
        for _attempt in 0..4 {
            let mut busy = Vec::new();
            let mut result = None;
            for shard in 0..shards {
                let key = PartKey { shard, ..base };
                let Some(part) = self.partition(key, true)? else {
                    continue;
                };
                let attempt = match part.writer.try_lock() {
                    Ok(guard) => Some(Self::write_locked(&self.config, &part, guard, rows, dict)),
                    Err(TryLockError::Poisoned(p)) => Some(Self::write_locked(
                        &self.config,
                        &part,
                        p.into_inner(),
                        rows,
                        dict,
                    )),
                    Err(TryLockError::WouldBlock) => None,
                };
                match attempt {
                    Some(r) => {
                        result = Some(r);
                        break;
                    }
                    None => busy.push(part),
                }
            }
            let result = match result {
                Some(r) => r,
                None => {
                    // Every shard is being written: queue behind one, chosen per batch size so
                    // that two waiting writers tend to pick different shards.
                    let Some(part) = busy.get(rows.len() % busy.len().max(1)) else {
                        return Err("no partition to write".into());
                    };
                    Self::write_locked(&self.config, part, lock(&part.writer), rows, dict)
                }
            };
            match result {
                Ok(done) => return Ok(done),
                Err(GroupError::Dropped) => continue,
                Err(GroupError::Failed(e)) => return Err(e),
            }
        }
        Err("partition kept being dropped by retention while written".into())
    }

    fn write_locked(
        config: &SqliteConfig,
        part: &Partition,
        mut guard: MutexGuard<'_, Option<PartitionWriter>>,
        rows: &[(usize, PreparedRow<'_>)],
        dict: Option<&RawDictionary>,
    ) -> Result<(usize, Vec<(usize, String)>), GroupError> {
        if part.dropped.load(Ordering::Acquire) {
            return Err(GroupError::Dropped);
        }
        let name = part.key.file_name();
        let writer = match &mut *guard {
            Some(c) => c,
            slot @ None => slot.insert(
                schema::open_writer(&part.path, config)
                    .map_err(|e| GroupError::Failed(format!("opening partition {name}: {e}")))?,
            ),
        };
        let fail =
            |e: rusqlite::Error| GroupError::Failed(format!("writing partition {name}: {e}"));
        let mut plan = writer.plan();
        // The rows' dictionary goes into the file with them (once per file).
        let new_dict = dict.filter(|d| !writer.has_dictionary(d.id()));
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        if let Some(d) = new_dict {
            tx.execute(dictionary::INSERT_DICTIONARY, params![d.id(), d.bytes()])
                .map_err(fail)?;
        }
        let mut stored = 0;
        let mut rejected = Vec::new();
        // (segment, min time, max time, rows) of the segments this batch writes into.
        let mut spans: Vec<(i64, i64, i64, i64)> = Vec::new();
        {
            let mut stored_row = |segment: i64, t: i64| {
                stored += 1;
                match spans.last_mut() {
                    Some(s) if s.0 == segment => {
                        s.1 = s.1.min(t);
                        s.2 = s.2.max(t);
                        s.3 += 1;
                    }
                    _ => spans.push((segment, t, t, 1)),
                }
            };
            let mut values = Vec::with_capacity(schema::ROWS_PER_INSERT * schema::INSERT_VALUES);
            let mut segments = Vec::with_capacity(schema::ROWS_PER_INSERT);
            for chunk in rows.chunks(schema::ROWS_PER_INSERT) {
                values.clear();
                segments.clear();
                for (_, row) in chunk {
                    let segment = plan.next_segment();
                    segments.push(segment);
                    values.extend(row.values(segment));
                }
                // `done`: rows of this chunk already in the file. A full chunk goes in as one
                // statement; when the database refuses one of its rows, the rows before it stay
                // and count as done. The rest (the refused row first), and a batch's short last
                // chunk, go in one row at a time, so that only a refused row is rejected.
                let mut done = 0;
                if chunk.len() == schema::ROWS_PER_INSERT {
                    match writer.insert_many.execute(&values) {
                        Ok(()) => done = chunk.len(),
                        Err(failure) => {
                            done = usize::try_from(failure.rows_kept)
                                .unwrap_or(0)
                                .min(chunk.len());
                        }
                    }
                    for ((_, row), segment) in chunk.iter().zip(&segments).take(done) {
                        stored_row(*segment, row.record.time_us);
                    }
                }
                let one_by_one = chunk
                    .iter()
                    .zip(&segments)
                    .zip(values.chunks(schema::INSERT_VALUES))
                    .skip(done);
                for (((index, row), segment), row_values) in one_by_one {
                    match writer.insert.execute(row_values) {
                        Ok(()) => stored_row(*segment, row.record.time_us),
                        Err(failure) => rejected.push((*index, failure.error.to_string())),
                    }
                }
            }
            let mut upsert = tx.prepare_cached(schema::UPSERT_SEGMENT).map_err(fail)?;
            for (segment, min_us, max_us, count) in &spans {
                upsert
                    .execute(params![segment, min_us, max_us, count])
                    .map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)?;
        writer.advance(&plan);
        if let Some(d) = new_dict {
            writer.dictionary_stored(d.id());
        }
        Ok((stored, rejected))
    }

    /// Truncates the WAL of every open partition whose writer committed nothing for
    /// `idle_for` (see `PartitionWriter::truncate_wal`). A writer busy with a batch is skipped,
    /// never waited for. Returns how many WALs were truncated.
    pub fn truncate_idle_wals(&self, idle_for: Duration) -> usize {
        let parts: Vec<Arc<Partition>> = lock(&self.open)
            .map
            .values()
            .map(|(p, _)| p.clone())
            .collect();
        let mut truncated = 0;
        for part in parts {
            let Ok(mut writer) = part.writer.try_lock() else {
                continue;
            };
            if let Some(w) = writer.as_mut() {
                truncated += usize::from(w.truncate_wal(idle_for, IDLE_WAL_MAX_WAIT));
            }
        }
        truncated
    }

    /// Deletes a partition's files; returns the bytes freed. Runs under the open-partition
    /// lock so no writer can (re)open the file between the unlink and the catalog update.
    fn drop_partition(&self, key: PartKey) -> u64 {
        let mut open = lock(&self.open);
        let handle = open.map.remove(&key).map(|(p, _)| p);
        self.known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        if let Some(part) = handle {
            let mut writer = lock(&part.writer);
            part.dropped.store(true, Ordering::Release);
            *writer = None;
            lock(&part.readers).clear();
        }
        let path = self.path_of(&key);
        let bytes = files_size(&path);
        for file in sidecars(&path) {
            if let Err(e) = fs::remove_file(&file) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %file.display(), error = %e, "cannot delete partition file");
                }
            }
        }
        drop(open);
        bytes
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// One writer per write shard: batches of the same period go to different shard files, so
    /// they commit in parallel (SQLite has one writer per file). End to end, two writers
    /// stored 14 % more per second than one (BENCHMARKS.md); the KPI engine tracks their
    /// out-of-order batches in receive order.
    fn write_parallelism(&self) -> usize {
        usize::from(self.config.write_shards.clamp(1, MAX_SHARDS))
    }

    fn insert_batch(&self, batch: &[Record]) -> Result<BatchOutcome, StoreError> {
        self.insert_batch_hinted(batch, &[])
    }

    fn insert_batch_hinted(
        &self,
        batch: &[Record],
        hints: &[RecordHint],
    ) -> Result<BatchOutcome, StoreError> {
        let mut outcome = BatchOutcome::default();
        let dict = match self.config.compression {
            RawCompression::ZstdDict => {
                self.trainer.offer(batch.iter().map(|r| r.raw.as_slice()));
                self.trainer.current()
            }
            _ => None,
        };
        let mut groups: BTreeMap<PartKey, Vec<(usize, PreparedRow<'_>)>> = BTreeMap::new();
        for (index, record) in batch.iter().enumerate() {
            let days = self.retention_for(record);
            let Some(key) = PartKey::for_time(record.time_us, self.config.partition_span, days, 0)
            else {
                outcome
                    .rejected
                    .push((index, format!("timestamp {} out of range", record.time_us)));
                continue;
            };
            match PreparedRow::new(
                record,
                self.config.compression,
                self.config.zstd_level,
                dict.as_deref(),
                self.config.max_raw_bytes,
                hints.get(index).is_some_and(|h| h.sip_from_raw),
            ) {
                Ok(row) => groups.entry(key).or_default().push((index, row)),
                Err(e) => outcome.rejected.push((index, e)),
            }
        }
        let mut store_failure = None;
        for (key, rows) in groups {
            match self.write_group(key, &rows, dict.as_deref()) {
                Ok((stored, rejected)) => {
                    outcome.stored += stored;
                    outcome.rejected.extend(rejected);
                }
                Err(e) => {
                    tracing::warn!(partition = %key.file_name(), error = %e, rows = rows.len(), "partition write failed");
                    outcome
                        .rejected
                        .extend(rows.iter().map(|(i, _)| (*i, e.clone())));
                    store_failure = Some(e);
                }
            }
        }
        outcome.rejected.sort_by_key(|(i, _)| *i);
        match store_failure {
            // Nothing stored because of the store, not the rows: the batch is worth retrying.
            Some(e) if outcome.stored == 0 => Err(StoreError::Unavailable(e)),
            _ => Ok(outcome),
        }
    }

    fn scan(&self, request: &ScanRequest) -> Result<ScanPage, StoreError> {
        self.scan_window(request)
    }

    fn messages(&self, filter: &MessageFilter) -> Result<Page<StoredMessage>, StoreError> {
        self.query_messages(filter)
    }

    fn calls(&self, filter: &MessageFilter) -> Result<Page<CallSummary>, StoreError> {
        self.query_calls(filter)
    }

    fn call_flow(
        &self,
        call_ids: &[String],
        from_us: Option<i64>,
        to_us: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.query_call_flow(call_ids, from_us, to_us)
    }

    fn enforce_retention(&self, now_us: i64) -> Result<RetentionReport, StoreError> {
        self.truncate_idle_wals(IDLE_WAL_AFTER);
        let mut report = RetentionReport::default();
        let keys: Vec<PartKey> = self
            .known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        let mut kept = Vec::new();
        for key in keys {
            let expired = key.retention_days > 0
                && key
                    .end_us()
                    .saturating_add(i64::from(key.retention_days).saturating_mul(DAY_US))
                    <= now_us;
            if expired {
                report.bytes_freed += self.drop_partition(key);
                report.partitions_dropped.push(key.file_name());
            } else {
                kept.push((key, files_size(&self.path_of(&key))));
            }
        }
        if self.config.max_total_bytes > 0 {
            let catalog = files_size(&self.config.data_dir.join(CATALOG_FILE));
            let mut total: u64 = catalog + kept.iter().map(|(_, b)| b).sum::<u64>();
            // Oldest period first; the newest partition is never dropped for size.
            kept.sort_by(|(a, _), (b, _)| {
                a.end_us()
                    .cmp(&b.end_us())
                    .then(a.start_us.cmp(&b.start_us))
            });
            let mut iter = kept.iter();
            let mut remaining = kept.len();
            while total > self.config.max_total_bytes && remaining > 1 {
                let Some((key, _)) = iter.next() else { break };
                let freed = self.drop_partition(*key);
                total = total.saturating_sub(freed);
                remaining -= 1;
                report.bytes_freed += freed;
                report.partitions_dropped.push(key.file_name());
            }
        }
        if !report.partitions_dropped.is_empty() {
            tracing::info!(
                dropped = report.partitions_dropped.len(),
                bytes = report.bytes_freed,
                "retention pass"
            );
        }
        Ok(report)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let keys: Vec<PartKey> = self
            .known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        let bytes = keys
            .iter()
            .map(|k| files_size(&self.path_of(k)))
            .sum::<u64>()
            + files_size(&self.config.data_dir.join(CATALOG_FILE));
        Ok(StoreStats {
            partitions: keys.len() as u64,
            bytes,
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let catalog = lock(&self.catalog);
        catalog
            .query_row(
                "SELECT name, password_hash, admin FROM users WHERE name = ?1",
                [name],
                |r| {
                    Ok(User {
                        name: r.get(0)?,
                        password_hash: r.get(1)?,
                        admin: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(backend_err)
    }

    fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let catalog = lock(&self.catalog);
        catalog
            .execute(
                "INSERT INTO users (name, password_hash, admin) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, admin = excluded.admin",
                params![user.name, user.password_hash, user.admin],
            )
            .map_err(backend_err)?;
        Ok(())
    }

    fn user_count(&self) -> Result<u64, StoreError> {
        let catalog = lock(&self.catalog);
        let n: i64 = catalog
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .map_err(backend_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        let catalog = lock(&self.catalog);
        let mut stmt = catalog
            .prepare("SELECT name, password_hash, admin FROM users ORDER BY name")
            .map_err(backend_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(User {
                    name: r.get(0)?,
                    password_hash: r.get(1)?,
                    admin: r.get(2)?,
                })
            })
            .map_err(backend_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend_err)
    }

    fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let catalog = lock(&self.catalog);
        let n = catalog
            .execute("DELETE FROM users WHERE name = ?1", [name])
            .map_err(backend_err)?;
        Ok(n > 0)
    }

    fn setting(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        let catalog = lock(&self.catalog);
        catalog
            .query_row(
                "SELECT value FROM settings WHERE namespace = ?1 AND key = ?2",
                [namespace, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend_err)
    }

    fn put_setting(
        &self,
        namespace: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let catalog = lock(&self.catalog);
        match value {
            Some(value) => catalog.execute(
                "INSERT INTO settings (namespace, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value",
                [namespace, key, value],
            ),
            None => catalog.execute(
                "DELETE FROM settings WHERE namespace = ?1 AND key = ?2",
                [namespace, key],
            ),
        }
        .map_err(backend_err)?;
        Ok(())
    }

    fn settings(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError> {
        let catalog = lock(&self.catalog);
        let mut stmt = catalog
            .prepare("SELECT key, value FROM settings WHERE namespace = ?1 ORDER BY key")
            .map_err(backend_err)?;
        let rows = stmt
            .query_map([namespace], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(backend_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend_err)
    }
}
