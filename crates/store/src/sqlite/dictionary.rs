//! Zstandard dictionaries learned from the traffic, for the raw payload at rest.
//!
//! One SIP message compresses poorly on its own (LZ4 ~1.2×, Zstandard ~1.35× on ~450 bytes):
//! what repeats is *across* messages — header names, the proxy's Via and Record-Route, the
//! domains, the SDP lines, the user agents. A dictionary trained on a sample of the store's
//! own recent payloads carries that shared part, and each row then compresses ~4× (see
//! BENCHMARKS.md). Every deployment's traffic differs, so the dictionary is learned, not
//! built in:
//!
//! * [`DictionaryTrainer`] keeps a sample of recent payloads (every payload until the first
//!   sample is complete, then one in [`SAMPLE_STRIDE`]) and trains on a background thread once
//!   it holds [`SqliteConfig::dictionary_samples`] of them, and again every
//!   [`SqliteConfig::dictionary_retrain_rows`] rows so the dictionary follows the traffic.
//!   Until the first one is ready, rows are stored with LZ4.
//! * Each partition file stores, in its table `raw_dict`, every dictionary its rows use, in the
//!   same transaction as those rows: a partition file is readable on its own, and retention
//!   deletes a dictionary with the last file that needs it.
//! * A compressed row names its dictionary by the id in its Zstandard frame header;
//!   [`PartitionDictionaries`] resolves it from the partition's table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use rusqlite::{Connection, OpenFlags};

use super::config::SqliteConfig;

/// One in this many payloads is sampled once the first sample is complete (every one before).
pub(crate) const SAMPLE_STRIDE: u64 = 64;
/// Longest sample kept per payload: the shared part of a message is in its first kilobytes.
const MAX_SAMPLE_BYTES: usize = 4096;

/// The per-partition table of dictionaries.
pub(crate) const CREATE_DICTIONARIES: &str =
    "CREATE TABLE IF NOT EXISTS raw_dict (id INTEGER PRIMARY KEY, dict BLOB NOT NULL)";

/// Stores a dictionary in a partition (inside the transaction of the rows that use it).
pub(crate) const INSERT_DICTIONARY: &str =
    "INSERT OR IGNORE INTO raw_dict (id, dict) VALUES (?1, ?2)";

/// A trained dictionary, prepared for decompression (and for compression on first use).
pub(crate) struct RawDictionary {
    id: u32,
    bytes: Vec<u8>,
    decoder: zstd::zstd_safe::DDict<'static>,
    encoder: OnceLock<Option<zstd::zstd_safe::CDict<'static>>>,
}

impl std::fmt::Debug for RawDictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDictionary")
            .field("id", &self.id)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl RawDictionary {
    /// Prepares a dictionary; fails when the bytes are not a Zstandard dictionary with an id.
    pub fn new(bytes: Vec<u8>) -> Result<RawDictionary, String> {
        let id = zstd::zstd_safe::get_dict_id(&bytes)
            .ok_or("not a Zstandard dictionary")?
            .get();
        let decoder =
            zstd::zstd_safe::DDict::try_create(&bytes).ok_or("Zstandard refused the dictionary")?;
        Ok(RawDictionary {
            id,
            bytes,
            decoder,
            encoder: OnceLock::new(),
        })
    }

    /// The id every frame compressed with this dictionary carries.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The dictionary as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn decoder(&self) -> &zstd::zstd_safe::DDict<'static> {
        &self.decoder
    }

    /// The compression side at `level` (prepared once; the store's level never changes).
    pub(crate) fn encoder(&self, level: i32) -> Option<&zstd::zstd_safe::CDict<'static>> {
        self.encoder
            .get_or_init(|| zstd::zstd_safe::CDict::try_create(&self.bytes, level))
            .as_ref()
    }
}

/// Dictionaries by id, shared by every partition of the store so that a dictionary used by
/// many partitions is prepared once. Entries are weak: a dictionary lives as long as an open
/// partition or the trainer holds it, so dictionaries of expired partitions do not pile up. A
/// loaded dictionary whose id is cached with different bytes (a 32-bit id collision) is kept
/// by its partition only, never confused.
#[derive(Debug, Default)]
pub(crate) struct DictionaryCache {
    by_id: RwLock<HashMap<u32, Weak<RawDictionary>>>,
}

impl DictionaryCache {
    fn cached(&self, id: u32) -> Option<Arc<RawDictionary>> {
        self.by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .and_then(Weak::upgrade)
    }

    /// The cached dictionary with these bytes, or a new one (cached unless its id is taken).
    fn intern(&self, bytes: Vec<u8>) -> Result<Arc<RawDictionary>, String> {
        let id = zstd::zstd_safe::get_dict_id(&bytes)
            .ok_or("not a Zstandard dictionary")?
            .get();
        if let Some(known) = self.cached(id) {
            if known.bytes == bytes {
                return Ok(known);
            }
            return RawDictionary::new(bytes).map(Arc::new);
        }
        let dict = Arc::new(RawDictionary::new(bytes)?);
        self.insert(&dict);
        Ok(dict)
    }

    /// Whether `id` is cached with other bytes than `dict` (the trainer then discards `dict`).
    fn collides(&self, dict: &RawDictionary) -> bool {
        self.cached(dict.id)
            .is_some_and(|known| known.bytes != dict.bytes)
    }

    /// Caches `dict` unless its id is held by a live one; drops dead entries.
    fn insert(&self, dict: &Arc<RawDictionary>) {
        let mut map = self.by_id.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, weak| weak.strong_count() > 0);
        map.entry(dict.id).or_insert_with(|| Arc::downgrade(dict));
    }

    /// Dictionaries alive in the cache (for tests).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

/// The dictionaries of one partition file, for its reader connections. Loaded when first
/// needed and reloaded when a row names one not loaded yet (the writer added it since).
#[derive(Debug)]
pub(crate) struct PartitionDictionaries {
    path: PathBuf,
    cache: Arc<DictionaryCache>,
    loaded: Mutex<HashMap<u32, Arc<RawDictionary>>>,
}

impl PartitionDictionaries {
    pub fn new(path: &Path, cache: Arc<DictionaryCache>) -> PartitionDictionaries {
        PartitionDictionaries {
            path: path.to_path_buf(),
            cache,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The dictionary with this id, or why there is none.
    pub fn get(&self, id: u32) -> Result<Arc<RawDictionary>, String> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = loaded.get(&id) {
            return Ok(d.clone());
        }
        // A connection of its own: this runs inside SQL functions of the reader connection.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("opening dictionaries: {e}"))?;
        let mut stmt = conn
            .prepare("SELECT dict FROM raw_dict")
            .map_err(|e| format!("reading dictionaries: {e}"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| format!("reading dictionaries: {e}"))?;
        for bytes in rows {
            let bytes = bytes.map_err(|e| format!("reading dictionaries: {e}"))?;
            let dict = self.cache.intern(bytes)?;
            loaded.insert(dict.id, dict);
        }
        loaded
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("raw dictionary {id} missing from the partition"))
    }
}

/// What the trainer needs to know from the configuration.
#[derive(Clone, Copy, Debug)]
struct TrainerSettings {
    samples: usize,
    dict_bytes: usize,
    retrain_rows: u64,
}

/// Samples the payloads and trains the store's current dictionary (see the module docs).
#[derive(Debug)]
pub(crate) struct DictionaryTrainer {
    settings: TrainerSettings,
    cache: Arc<DictionaryCache>,
    current: RwLock<Option<Arc<RawDictionary>>>,
    state: Mutex<SampleState>,
}

#[derive(Debug, Default)]
struct SampleState {
    /// A ring of recent samples (at most `settings.samples`).
    samples: Vec<Vec<u8>>,
    /// Where the next sample goes once the ring is full.
    next_slot: usize,
    /// Payloads offered so far.
    seen: u64,
    /// `seen` at which the next training may start.
    train_at: u64,
    /// A training thread is running.
    training: bool,
}

impl DictionaryTrainer {
    pub fn new(config: &SqliteConfig, cache: Arc<DictionaryCache>) -> Arc<DictionaryTrainer> {
        let settings = TrainerSettings {
            samples: config.dictionary_samples.max(1) as usize,
            dict_bytes: (config.dictionary_kib.max(1) as usize) * 1024,
            retrain_rows: config.dictionary_retrain_rows,
        };
        Arc::new(DictionaryTrainer {
            settings,
            cache,
            current: RwLock::new(None),
            state: Mutex::new(SampleState::default()),
        })
    }

    /// The dictionary new rows are compressed with, if one was trained.
    pub fn current(&self) -> Option<Arc<RawDictionary>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Samples a batch's payloads; starts a training when it is due.
    pub fn offer<'a>(self: &Arc<Self>, payloads: impl Iterator<Item = &'a [u8]>) {
        let has_dict = self.current().is_some();
        if has_dict && self.settings.retrain_rows == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.training {
            state.seen += payloads.count() as u64;
            return;
        }
        for payload in payloads {
            state.seen += 1;
            // Every payload until the first sample is complete, then one in SAMPLE_STRIDE
            // (also while waiting to retry a failed training).
            let full = state.samples.len() >= self.settings.samples;
            if payload.is_empty() || ((has_dict || full) && state.seen % SAMPLE_STRIDE != 0) {
                continue;
            }
            let sample = payload[..payload.len().min(MAX_SAMPLE_BYTES)].to_vec();
            if state.samples.len() < self.settings.samples {
                state.samples.push(sample);
            } else {
                let slot = state.next_slot % self.settings.samples;
                state.samples[slot] = sample;
                state.next_slot = slot + 1;
            }
        }
        let due = state.samples.len() >= self.settings.samples && state.seen >= state.train_at;
        if !due || state.training {
            return;
        }
        state.training = true;
        let samples = state.samples.clone();
        drop(state);
        let trainer = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("hepstack-dict".into())
            .spawn(move || trainer.train(&samples));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the dictionary training thread");
            self.finish_training(false);
        }
    }

    fn train(&self, samples: &[Vec<u8>]) {
        let ok = match self.train_now(samples) {
            Ok(dict) => {
                tracing::debug!(
                    id = dict.id,
                    bytes = dict.bytes.len(),
                    "raw dictionary trained"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "raw dictionary training failed; retrying later");
                false
            }
        };
        self.finish_training(ok);
    }

    /// Trains a dictionary from `samples` in this thread and makes it the current one.
    pub fn train_now(&self, samples: &[Vec<u8>]) -> Result<Arc<RawDictionary>, String> {
        let dict = zstd::dict::from_samples(samples, self.settings.dict_bytes)
            .map_err(|e| format!("training: {e}"))
            .and_then(RawDictionary::new)?;
        if self.cache.collides(&dict) {
            return Err(format!("dictionary id {} already used by another", dict.id));
        }
        let dict = Arc::new(dict);
        self.cache.insert(&dict);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(dict.clone());
        Ok(dict)
    }

    fn finish_training(&self, trained: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.training = false;
        // After a failure, wait for a fresh sample's worth of traffic before trying again.
        let wait = if trained && self.settings.retrain_rows > 0 {
            self.settings.retrain_rows
        } else if trained {
            u64::MAX
        } else {
            self.settings.samples as u64 * SAMPLE_STRIDE
        };
        state.train_at = state.seen.saturating_add(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(i: usize, agent: &str) -> Vec<u8> {
        format!(
            "REGISTER sip:example.org SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.{}.{}:5060;branch=z9hG4bK{i:x}\r\n\
             From: <sip:user{i}@example.org>;tag={:x}\r\nTo: <sip:user{i}@example.org>\r\n\
             Call-ID: {:x}\r\nCSeq: {} REGISTER\r\nUser-Agent: {agent}\r\nExpires: 3600\r\n\
             Content-Length: 0\r\n\r\n",
            i % 200,
            i % 31,
            i * 7919,
            i * 104_729,
            i % 9
        )
        .into_bytes()
    }

    fn trained(samples: &[Vec<u8>]) -> Vec<u8> {
        zstd::dict::from_samples(samples, 4096).unwrap()
    }

    #[test]
    fn the_cache_shares_live_dictionaries_and_forgets_dead_ones() {
        let bytes = trained(&(0..300).map(|i| message(i, "A")).collect::<Vec<_>>());
        let cache = DictionaryCache::default();
        let a = cache.intern(bytes.clone()).unwrap();
        let b = cache.intern(bytes.clone()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.live(), 1);
        assert!(!cache.collides(&RawDictionary::new(bytes.clone()).unwrap()));
        drop((a, b));
        assert_eq!(cache.live(), 0);
        assert!(RawDictionary::new(b"not a dictionary".to_vec()).is_err());
        assert!(cache.intern(b"not a dictionary".to_vec()).is_err());
    }

    #[test]
    fn the_trainer_learns_then_follows_the_traffic() {
        let config = SqliteConfig {
            dictionary_kib: 4,
            dictionary_samples: 100,
            dictionary_retrain_rows: 1000,
            ..SqliteConfig::default()
        };
        let trainer = DictionaryTrainer::new(&config, Arc::new(DictionaryCache::default()));
        let wait_for = |trainer: &Arc<DictionaryTrainer>, not: Option<u32>| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let id = trainer.current().map(|d| d.id());
                if id.is_some() && id != not {
                    return id;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no dictionary trained"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        };
        // Not enough samples: nothing trained.
        let first: Vec<Vec<u8>> = (0..99).map(|i| message(i, "Phone/1")).collect();
        trainer.offer(first.iter().map(Vec::as_slice));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(trainer.current().is_none());
        trainer.offer(std::iter::once(message(99, "Phone/1").as_slice()));
        let first_id = wait_for(&trainer, None);
        // Another traffic mix: after `dictionary_retrain_rows` rows a new dictionary follows
        // it (samples are one in SAMPLE_STRIDE once a dictionary exists).
        let next: Vec<Vec<u8>> = (0..(100 * SAMPLE_STRIDE as usize))
            .map(|i| message(1000 + i, "Gateway/9 (other vendor)"))
            .collect();
        trainer.offer(next.iter().map(Vec::as_slice));
        let second_id = wait_for(&trainer, first_id);
        assert_ne!(first_id, second_id);
        let agent = b"Gateway/9 (other vendor)";
        let current = trainer.current().unwrap();
        assert!(current.bytes().windows(agent.len()).any(|w| w == agent));
    }

    #[test]
    fn the_next_training_waits_for_fresh_traffic() {
        let config = SqliteConfig {
            dictionary_samples: 16,
            dictionary_retrain_rows: 1000,
            ..SqliteConfig::default()
        };
        let trainer = DictionaryTrainer::new(&config, Arc::new(DictionaryCache::default()));
        trainer.state.lock().unwrap().seen = 100;
        // A failure retries after a fresh sample's worth of traffic; a success after
        // `dictionary_retrain_rows`, or never when that is 0.
        trainer.finish_training(false);
        assert_eq!(
            trainer.state.lock().unwrap().train_at,
            100 + 16 * SAMPLE_STRIDE
        );
        trainer.finish_training(true);
        assert_eq!(trainer.state.lock().unwrap().train_at, 1100);
        let never = DictionaryTrainer::new(
            &SqliteConfig {
                dictionary_retrain_rows: 0,
                ..config
            },
            Arc::new(DictionaryCache::default()),
        );
        never.finish_training(true);
        assert_eq!(never.state.lock().unwrap().train_at, u64::MAX);
        assert!(!never.state.lock().unwrap().training);
    }
}
