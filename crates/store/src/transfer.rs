//! Copying the records of a time window from one store to another, resumably: the engine of
//! `hepstack import`. It speaks only the [`Store`] trait, so any pair of backends works
//! (embedded SQLite, PostgreSQL in the HOMER 7 layout — also one written by heplify-server —
//! and every later backend that implements [`Store::scan`]).
//!
//! # How it resumes
//!
//! The source is read with [`Store::scan`] in ascending `(time_us, id)`, one page per target
//! batch. A [`Checkpoint`] file records the scan position after every committed batch, and
//! *before* a batch is written it records the batch's time span as `pending`. A copy stopped
//! at any instant (Ctrl-C, `SIGKILL`, a crash, the target going away) therefore restarts in
//! one of two states:
//!
//! * no pending batch: continue from the position; nothing was written past it;
//! * a pending batch whose commit may or may not have landed (or landed in part: the embedded
//!   store commits each partition period of a batch on its own): the engine *reconciles* the
//!   pending span `[first, last]`: it reads the source's records of that span and the
//!   target's, and writes only the source records the target does not hold yet (a multiset
//!   difference on each record's identity: time, Call-ID, addresses, ports, HEP type and raw
//!   payload). Every source record before the span was committed before the batch was
//!   started, so once the span is reconciled the copy continues after it without a loss or a
//!   duplicate.
//!
//! A record the target already holds (the same identity) inside a reconciled span is not
//! written again, so re-running an interrupted copy into a target that already held some of
//! those records does not double them either. Outside a pending span the copy does not look
//! at the target: a second full copy into the same target doubles every record.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{MessageFilter, Record, ScanPosition, ScanRequest, Store, StoreError, MAX_SCAN};

/// Records per target batch when the caller asks for 0.
pub const DEFAULT_BATCH: usize = 5_000;
/// How often a target that answers "unavailable" is tried again before the copy gives up
/// (with the pending batch in the checkpoint, so that a rerun picks it up).
const TARGET_RETRIES: u32 = 6;

/// What to copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    /// Lower time bound, µs since the epoch, inclusive; None: from the oldest record.
    pub from_us: Option<i64>,
    /// Upper time bound, µs, exclusive; None: up to the newest record.
    pub to_us: Option<i64>,
    /// Records read and written per batch (capped at [`MAX_SCAN`]; 0: [`DEFAULT_BATCH`]).
    pub batch: usize,
    /// Names the copy (source and target, without credentials): a checkpoint written for
    /// another source, target or window is refused rather than applied to this one.
    pub identity: String,
}

/// The time span of a batch whose commit was started but not confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Time of the batch's first record, µs.
    pub first_us: i64,
    /// Time of the batch's last record, µs.
    pub last_us: i64,
}

/// The progress of a copy, persisted after every batch (JSON, replaced atomically).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`CopyOptions::identity`] of the copy this belongs to.
    pub identity: String,
    /// The window, as asked for.
    pub from_us: Option<i64>,
    /// The window, as asked for.
    pub to_us: Option<i64>,
    /// Source records in the window when the copy started.
    pub source_total: u64,
    /// Target records in the window when the copy started.
    pub target_before: u64,
    /// Every source record at or before this position is in the target; None: none yet.
    pub position: Option<ScanPosition>,
    /// Set while a batch is being written.
    pub pending: Option<Pending>,
    /// Records written to the target so far (a reconciled batch counts what it wrote then).
    pub copied: u64,
    /// Records the target refused (each also reported through the progress callback).
    pub rejected: u64,
    /// Records of reconciled spans the target already held.
    pub already_present: u64,
    /// True once the whole window has been copied.
    pub done: bool,
}

/// Errors of a copy.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Reading the source or writing the target failed.
    #[error("{side}: {source}")]
    Store {
        /// `source` or `target`.
        side: &'static str,
        /// The store's error.
        source: StoreError,
    },
    /// The checkpoint file cannot be read or written.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The stop flag was raised; the checkpoint holds the position to resume from.
    #[error("interrupted; run the same command again to resume")]
    Interrupted,
}

fn source_err(source: StoreError) -> TransferError {
    TransferError::Store {
        side: "source",
        source,
    }
}

fn target_err(source: StoreError) -> TransferError {
    TransferError::Store {
        side: "target",
        source,
    }
}

/// What the progress callback is told after every batch.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// The checkpoint as just saved.
    pub checkpoint: &'a Checkpoint,
    /// Reasons of the rows the target refused in this batch, with the record's time and sid.
    pub rejected: &'a [String],
}

/// The identity of a record across stores: what every backend stores byte-exact.
fn fingerprint(r: &Record) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.time_us.hash(&mut h);
    r.sid.hash(&mut h);
    r.src_ip.hash(&mut h);
    r.src_port.hash(&mut h);
    r.dst_ip.hash(&mut h);
    r.dst_port.hash(&mut h);
    r.hep_type.hash(&mut h);
    r.raw.hash(&mut h);
    h.finish()
}

impl Checkpoint {
    /// Reads a checkpoint; None when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, TransferError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(TransferError::Checkpoint {
                    path: path.into(),
                    reason: e.to_string(),
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TransferError::Checkpoint {
                path: path.into(),
                reason: format!("not a checkpoint: {e}"),
            })
    }

    /// Writes the checkpoint durably: a temporary file, fsync, rename over the old one.
    pub fn save(&self, path: &Path) -> Result<(), TransferError> {
        let fail = |e: std::io::Error| TransferError::Checkpoint {
            path: path.into(),
            reason: e.to_string(),
        };
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|e| TransferError::Checkpoint {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let mut file = std::fs::File::create(&tmp).map_err(fail)?;
        file.write_all(&text).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(fail)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory is; a failure here only weakens that.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Number of records of a store in a window (the stores' own totals).
pub fn count(
    store: &dyn Store,
    from_us: Option<i64>,
    to_us: Option<i64>,
) -> Result<u64, StoreError> {
    store
        .messages(&MessageFilter {
            from_us,
            to_us,
            limit: 1,
            ..MessageFilter::default()
        })
        .map(|p| p.total)
}

/// Copies the window of `opts` from `source` to `target`, checkpointing in `state`, until the
/// window is done or `stop` is raised. Resumes from `state` when it holds a checkpoint of the
/// same copy. Returns the final checkpoint.
pub fn copy(
    source: &dyn Store,
    target: &dyn Store,
    opts: &CopyOptions,
    state: &Path,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress<'_>),
) -> Result<Checkpoint, TransferError> {
    let mut cp = match Checkpoint::load(state)? {
        Some(cp) => {
            if cp.identity != opts.identity || cp.from_us != opts.from_us || cp.to_us != opts.to_us
            {
                return Err(TransferError::Checkpoint {
                    path: state.into(),
                    reason: format!(
                        "belongs to another copy ({}, window {:?}..{:?}); remove it or name another state file",
                        cp.identity, cp.from_us, cp.to_us
                    ),
                });
            }
            cp
        }
        None => {
            let cp = Checkpoint {
                identity: opts.identity.clone(),
                from_us: opts.from_us,
                to_us: opts.to_us,
                source_total: count(source, opts.from_us, opts.to_us).map_err(source_err)?,
                target_before: count(target, opts.from_us, opts.to_us).map_err(target_err)?,
                position: None,
                pending: None,
                copied: 0,
                rejected: 0,
                already_present: 0,
                done: false,
            };
            cp.save(state)?;
            cp
        }
    };
    if cp.done {
        return Ok(cp);
    }
    let limit = match opts.batch {
        0 => DEFAULT_BATCH,
        n => n.min(MAX_SCAN),
    };
    if let Some(pending) = cp.pending {
        let rejected = reconcile(source, target, opts, pending, &mut cp, limit)?;
        cp.position = Some(ScanPosition {
            time_us: pending.last_us,
            id: i64::MAX,
        });
        cp.pending = None;
        cp.save(state)?;
        progress(&Progress {
            checkpoint: &cp,
            rejected: &rejected,
        });
    }
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(TransferError::Interrupted);
        }
        let page = source
            .scan(&ScanRequest {
                from_us: opts.from_us,
                to_us: opts.to_us,
                after: cp.position,
                limit,
            })
            .map_err(source_err)?;
        let (Some(first), Some(last)) = (page.items.first(), page.items.last()) else {
            match page.next {
                Some(next) => {
                    cp.position = Some(next);
                    continue;
                }
                None => break,
            }
        };
        cp.pending = Some(Pending {
            first_us: first.record.time_us,
            last_us: last.record.time_us,
        });
        cp.save(state)?;
        let records: Vec<Record> = page.items.into_iter().map(|m| m.record).collect();
        let rejected = write(target, &records, &mut cp)?;
        cp.pending = None;
        match page.next {
            Some(next) => cp.position = Some(next),
            None => cp.done = true,
        }
        cp.save(state)?;
        progress(&Progress {
            checkpoint: &cp,
            rejected: &rejected,
        });
        if cp.done {
            return Ok(cp);
        }
    }
    cp.done = true;
    cp.save(state)?;
    Ok(cp)
}

/// Writes a batch to the target, trying again while it is unavailable; counts the outcome.
fn write(
    target: &dyn Store,
    records: &[Record],
    cp: &mut Checkpoint,
) -> Result<Vec<String>, TransferError> {
    let mut wait = Duration::from_millis(250);
    let mut attempt = 0;
    let outcome = loop {
        match target.insert_batch(records) {
            Ok(o) => break o,
            Err(StoreError::Unavailable(why)) if attempt < TARGET_RETRIES => {
                tracing::warn!(reason = %why, "target unavailable; trying again");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(8));
                attempt += 1;
            }
            Err(e) => return Err(target_err(e)),
        }
    };
    cp.copied += outcome.stored as u64;
    cp.rejected += outcome.rejected.len() as u64;
    Ok(outcome
        .rejected
        .iter()
        .map(|(i, why)| match records.get(*i) {
            Some(r) => format!("time_us {} sid {:?}: {why}", r.time_us, r.sid),
            None => why.clone(),
        })
        .collect())
}

/// Every record of a store in `[first, last]` (and the copy's window), read page by page.
fn read_span(
    store: &dyn Store,
    opts: &CopyOptions,
    pending: Pending,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    let from = opts
        .from_us
        .map_or(pending.first_us, |f| f.max(pending.first_us));
    let end = pending.last_us.saturating_add(1);
    let to = opts.to_us.map_or(end, |t| t.min(end));
    let mut out = Vec::new();
    let mut after = None;
    let started = Instant::now();
    loop {
        let page = store.scan(&ScanRequest {
            from_us: Some(from),
            to_us: Some(to),
            after,
            limit,
        })?;
        out.extend(page.items.into_iter().map(|m| m.record));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    tracing::debug!(records = out.len(), took = ?started.elapsed(), "read a pending span");
    Ok(out)
}

/// Makes the target hold every source record of the pending span (see the module docs).
fn reconcile(
    source: &dyn Store,
    target: &dyn Store,
    opts: &CopyOptions,
    pending: Pending,
    cp: &mut Checkpoint,
    limit: usize,
) -> Result<Vec<String>, TransferError> {
    let wanted = read_span(source, opts, pending, limit).map_err(source_err)?;
    let held = read_span(target, opts, pending, limit).map_err(target_err)?;
    let mut present: HashMap<u64, u64> = HashMap::new();
    for r in &held {
        *present.entry(fingerprint(r)).or_default() += 1;
    }
    let mut missing = Vec::new();
    for r in wanted {
        match present.get_mut(&fingerprint(&r)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                cp.already_present += 1;
            }
            _ => missing.push(r),
        }
    }
    tracing::info!(
        first_us = pending.first_us,
        last_us = pending.last_us,
        missing = missing.len(),
        "reconciling the batch an interruption left unconfirmed"
    );
    let mut rejected = Vec::new();
    for chunk in missing.chunks(limit.max(1)) {
        rejected.extend(write(target, chunk, cp)?);
    }
    Ok(rejected)
}
