//! An on-disk spool: append-only segment files holding entries (for the collector, batches the
//! store could not take) that are replayed oldest first once the consumer can take them again.
//!
//! # Model
//!
//! [`Spool::append`] adds an entry at the tail; [`Spool::peek`] returns the oldest entry not yet
//! acknowledged together with its [`SpoolPosition`]; [`Spool::ack`] with that position marks it
//! done. Entries are acknowledged strictly in order (acknowledging an already acknowledged
//! position again is a no-op, so a retry is harmless).
//!
//! # On disk
//!
//! The directory holds segment files `segment-<20-digit id>.spool`, ids increasing and never
//! reused, and one small `ack` file. Every entry is a record:
//!
//! ```text
//! magic "HSPL" (4 bytes) | payload length (u32 LE) | CRC32 of the payload (u32 LE) | payload
//! ```
//!
//! A new segment starts when the next record would take the current one past
//! [`SpoolConfig::segment_bytes`] (one larger entry gets a segment of its own). The `ack` file
//! holds the position of the oldest unacknowledged entry (segment id and byte offset, with its
//! own CRC) and is replaced atomically (write `ack.tmp`, then rename) on every acknowledgement,
//! so a restart does not replay acknowledged entries. A segment whose entries are all
//! acknowledged is deleted (after the `ack` file records it), so disk use follows the backlog.
//!
//! # Recovery
//!
//! [`Spool::open`] scans every segment, checking each record's magic, length and CRC. At the
//! first invalid record (a torn write after a crash or power failure, or corruption) the segment
//! is truncated there, with a warning in the log; the valid entries before it are kept. An
//! unreadable `ack` file is logged and ignored, which replays the spool from its oldest segment:
//! duplicates are preferred over loss.
//!
//! # Durability
//!
//! Records are written with plain `write` calls, never buffered in the process, so a killed
//! process (SIGKILL, panic, OOM kill) loses nothing that `append` returned for. What a power
//! failure or kernel crash can lose depends on [`FsyncPolicy`]:
//! - [`FsyncPolicy::Always`]: nothing that `append` returned for (every append is `fdatasync`ed,
//!   and the `ack` file is synced before and after its rename);
//! - [`FsyncPolicy::EveryMillis`] (default, 1000 ms): at most the entries of the last interval,
//!   i.e. at most the last second by default. The data is synced by `append` when the interval
//!   has passed, and by [`Spool::sync_if_due`], which the owner calls periodically (e.g. once a
//!   second) so the bound also holds when appends stop;
//! - [`FsyncPolicy::Never`]: whatever the kernel had not yet written back.
//!
//! The `ack` file is only synced under `Always`; under the other policies a power failure may
//! roll it back, which replays entries (never loses them).
//!
//! # Delivery guarantee: at least once
//!
//! The consumer acknowledges after it has committed an entry elsewhere (the store). A crash
//! between that commit and the acknowledgement replays that one entry (batch) on restart, so
//! the consumer must tolerate one duplicate batch.
//!
//! # Limits
//!
//! [`SpoolConfig::max_bytes`] bounds the bytes of all segment files (the acknowledged part of the
//! oldest segment counts until that segment is deleted); an append that would exceed it fails
//! with [`SpoolError::Full`] and changes nothing. Memory use is a few counters per segment plus
//! the entry being read; recovery streams segments through a fixed-size buffer.
//!
//! The spool is synchronous and single-owner (`&mut self`); async callers run it on a blocking
//! thread.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Magic at the start of every record.
const RECORD_MAGIC: [u8; 4] = *b"HSPL";
/// Record header: magic, payload length, payload CRC32.
const RECORD_HEADER_LEN: u64 = 12;
/// Magic of the `ack` file.
const ACK_MAGIC: [u8; 4] = *b"HSPA";
/// `ack` file: magic, segment id (u64 LE), offset (u64 LE), CRC32 of the preceding 20 bytes.
const ACK_FILE_LEN: usize = 24;
const ACK_FILE: &str = "ack";
const ACK_TMP_FILE: &str = "ack.tmp";
const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".spool";
/// Read buffer used while scanning segments on open.
const SCAN_BUFFER: usize = 256 * 1024;

/// When the spool forces written data to stable storage (`fdatasync`).
///
/// In TOML: `fsync = "always"`, `fsync = "never"` or `fsync = { every_millis = 1000 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Sync after every append: a power failure loses nothing `append` returned for, at the cost
    /// of one disk flush per entry.
    Always,
    /// Sync when this many milliseconds have passed since the last sync (checked on append and
    /// by [`Spool::sync_if_due`]): a power failure loses at most that interval of entries; a
    /// killed process loses nothing.
    EveryMillis(u64),
    /// Never sync explicitly; the kernel writes back when it wants. A killed process still loses
    /// nothing, a power failure may lose recent entries.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::EveryMillis(1000)
    }
}

/// Spool settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Upper bound of the bytes in all segment files together; an append beyond it fails with
    /// [`SpoolError::Full`]. Default 1 GiB.
    pub max_bytes: u64,
    /// Size at which a new segment file is started; acknowledged segments are deleted whole, so
    /// smaller segments free disk sooner, larger ones mean fewer files. Default 64 MiB.
    pub segment_bytes: u64,
    /// When written entries are forced to disk; see [`FsyncPolicy`]. Default: every 1000 ms.
    pub fsync: FsyncPolicy,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: 1024 * 1024 * 1024,
            segment_bytes: 64 * 1024 * 1024,
            fsync: FsyncPolicy::default(),
        }
    }
}

/// Where an entry lives: returned by [`Spool::peek`], given back to [`Spool::ack`].
///
/// Positions order like the entries they name (older is smaller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpoolPosition {
    segment: u64,
    offset: u64,
    /// Offset just past the entry's record, where the next entry of the segment starts.
    next: u64,
}

impl SpoolPosition {
    /// Id of the segment file holding the entry.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Byte offset of the entry's record in its segment file.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl fmt::Display for SpoolPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// Errors of the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The entry would take the spool past [`SpoolConfig::max_bytes`]; nothing was written.
    #[error("spool is full")]
    Full,
    /// The entry can never fit (longer than `u32::MAX` or than `max_bytes` allows).
    #[error("entry of {len} bytes is larger than the spool accepts ({max} bytes)")]
    EntryTooLarge {
        /// Length of the refused entry.
        len: u64,
        /// Largest entry this spool accepts.
        max: u64,
    },
    /// `ack` was given a position that is not the oldest pending entry (nor an older one).
    #[error("acknowledged position {segment}:{offset} is not the oldest pending entry")]
    AckOutOfOrder {
        /// Segment of the refused position.
        segment: u64,
        /// Offset of the refused position.
        offset: u64,
    },
    /// The configuration cannot work.
    #[error("invalid spool configuration: {0}")]
    InvalidConfig(&'static str),
    /// A file operation failed.
    #[error("spool I/O on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the spool keeps in memory about one segment file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    /// Bytes of valid records in the file (the file length).
    bytes: u64,
    /// Number of records in the file.
    entries: u64,
}

/// The segment being appended to (always the last of `Spool::segments`).
#[derive(Debug)]
struct ActiveSegment {
    id: u64,
    file: File,
}

/// The append-only on-disk spool. See the crate documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    cfg: SpoolConfig,
    /// Segments oldest first; the first one holds the head (oldest pending entry).
    segments: VecDeque<Segment>,
    /// Offset of the oldest pending entry in the first segment.
    head_offset: u64,
    /// Entries of the first segment already acknowledged.
    head_acked: u64,
    /// Entries not yet acknowledged.
    pending: u64,
    /// Bytes of all segment files.
    total_bytes: u64,
    /// Id the next new segment gets.
    next_segment_id: u64,
    active: Option<ActiveSegment>,
    /// Read handle of the first segment, kept between peeks.
    reader: Option<(u64, File)>,
    /// Data appended since the last sync.
    unsynced: bool,
    last_sync: Instant,
    /// Reused record buffer of `append`.
    scratch: Vec<u8>,
    /// Entries dropped because they could not be read back intact.
    lost_entries: u64,
}

/// Result of scanning one segment file on open.
struct ScanResult {
    valid_len: u64,
    file_len: u64,
    entries: u64,
    /// Entries that end at or before the acknowledged offset, and the offset just past them.
    acked_entries: u64,
    acked_end: u64,
}

impl Spool {
    /// Open (creating it if needed) the spool in `dir` and recover its state: torn or corrupt
    /// tails are truncated, acknowledged segments deleted, and the oldest unacknowledged entry
    /// becomes the head.
    pub fn open(dir: &Path, cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        if cfg.segment_bytes == 0 {
            return Err(SpoolError::InvalidConfig("segment_bytes must be positive"));
        }
        if cfg.max_bytes <= RECORD_HEADER_LEN {
            return Err(SpoolError::InvalidConfig(
                "max_bytes must be larger than one record header (12 bytes)",
            ));
        }
        if cfg.fsync == FsyncPolicy::EveryMillis(0) {
            return Err(SpoolError::InvalidConfig(
                "fsync every_millis must be positive (use \"always\" to sync every append)",
            ));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = dir.join(ACK_TMP_FILE);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp)(e)),
        }
        let ack = read_ack_file(&dir.join(ACK_FILE))?;
        let ids = list_segments(dir)?;

        let mut max_seen = ack.map_or(0, |(segment, _)| segment);
        let mut segments = VecDeque::new();
        let mut head_offset = 0;
        let mut head_acked = 0;
        let mut pending = 0;
        let mut total_bytes = 0;
        for id in ids {
            max_seen = max_seen.max(id);
            let path = segment_path(dir, id);
            if ack.is_some_and(|(segment, _)| id < segment) {
                remove_file_if_exists(&path)?;
                continue;
            }
            let ack_offset = match ack {
                Some((segment, offset)) if segment == id => offset,
                _ => 0,
            };
            let scan = scan_segment(&path, ack_offset)?;
            if scan.valid_len < scan.file_len {
                tracing::warn!(
                    segment = %path.display(),
                    valid_bytes = scan.valid_len,
                    file_bytes = scan.file_len,
                    "spool segment has a torn or corrupt tail; truncating it after its last valid entry"
                );
                truncate(&path, scan.valid_len)?;
            }
            if scan.acked_entries >= scan.entries {
                remove_file_if_exists(&path)?;
                continue;
            }
            if segments.is_empty() {
                head_offset = scan.acked_end;
                head_acked = scan.acked_entries;
            }
            pending += scan.entries
                - if segments.is_empty() {
                    scan.acked_entries
                } else {
                    0
                };
            total_bytes += scan.valid_len;
            segments.push_back(Segment {
                id,
                bytes: scan.valid_len,
                entries: scan.entries,
            });
        }

        let mut active = None;
        if let Some(last) = segments.back() {
            if last.bytes < cfg.segment_bytes {
                let path = segment_path(dir, last.id);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                active = Some(ActiveSegment { id: last.id, file });
            }
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            cfg,
            segments,
            head_offset,
            head_acked,
            pending,
            total_bytes,
            next_segment_id: max_seen + 1,
            active,
            reader: None,
            unsynced: false,
            last_sync: Instant::now(),
            scratch: Vec::new(),
            lost_entries: 0,
        })
    }

    /// Append one entry at the tail. Fails with [`SpoolError::Full`] (writing nothing) when the
    /// segment files would exceed [`SpoolConfig::max_bytes`].
    pub fn append(&mut self, entry: &[u8]) -> Result<(), SpoolError> {
        let max_entry = self.max_entry_len();
        let len = entry.len() as u64;
        if len > max_entry {
            return Err(SpoolError::EntryTooLarge {
                len,
                max: max_entry,
            });
        }
        let record_len = RECORD_HEADER_LEN + len;
        if self.total_bytes + record_len > self.cfg.max_bytes {
            return Err(SpoolError::Full);
        }
        let rotate = match (&self.active, self.segments.back()) {
            (Some(_), Some(last)) => {
                last.bytes > 0 && last.bytes + record_len > self.cfg.segment_bytes
            }
            _ => true,
        };
        if rotate {
            self.start_segment()?;
        }
        let (Some(active), Some(last)) = (self.active.as_ref(), self.segments.back_mut()) else {
            // start_segment always leaves an active last segment.
            return Err(SpoolError::InvalidConfig(
                "no active segment after rotation",
            ));
        };

        self.scratch.clear();
        self.scratch.extend_from_slice(&RECORD_MAGIC);
        // len <= u32::MAX was checked against max_entry_len.
        self.scratch.extend_from_slice(&(len as u32).to_le_bytes());
        self.scratch
            .extend_from_slice(&crc32fast::hash(entry).to_le_bytes());
        self.scratch.extend_from_slice(entry);
        if let Err(source) = active.file.write_all_at(&self.scratch, last.bytes) {
            // Cut a partial record off so later appends do not follow a torn one.
            let _ = active.file.set_len(last.bytes);
            return Err(SpoolError::Io {
                path: segment_path(&self.dir, active.id),
                source,
            });
        }
        if self.scratch.capacity() > 4 * 1024 * 1024 {
            self.scratch = Vec::new();
        }
        last.bytes += record_len;
        last.entries += 1;
        self.total_bytes += record_len;
        self.pending += 1;
        self.unsynced = true;
        self.sync_if_due()
    }

    /// The oldest unacknowledged entry and its position, or `None` when nothing is pending.
    ///
    /// An entry that no longer reads back intact (the disk changed under the spool after it was
    /// opened) is logged and skipped with the rest of its segment; see
    /// [`Spool::lost_entries`].
    pub fn peek(&mut self) -> Result<Option<(SpoolPosition, Vec<u8>)>, SpoolError> {
        loop {
            if self.pending == 0 {
                return Ok(None);
            }
            let Some(head) = self.segments.front().copied() else {
                return Ok(None);
            };
            match self.read_record(head, self.head_offset)? {
                Some((data, next)) => {
                    let pos = SpoolPosition {
                        segment: head.id,
                        offset: self.head_offset,
                        next,
                    };
                    return Ok(Some((pos, data)));
                }
                None => {
                    let lost = head.entries - self.head_acked;
                    tracing::error!(
                        segment = head.id,
                        offset = self.head_offset,
                        lost_entries = lost,
                        "spool entry no longer reads back intact; skipping the rest of its segment"
                    );
                    self.lost_entries += lost;
                    self.pending -= lost;
                    self.head_acked = head.entries;
                    self.head_offset = head.bytes;
                    self.advance_head()?;
                }
            }
        }
    }

    /// Acknowledge the entry at `pos` (the position [`Spool::peek`] returned): it will not be
    /// returned again, also not after a restart. Acknowledging an already acknowledged position
    /// is a no-op; anything newer than the oldest pending entry is
    /// [`SpoolError::AckOutOfOrder`]. Segments whose entries are all acknowledged are deleted.
    pub fn ack(&mut self, pos: SpoolPosition) -> Result<(), SpoolError> {
        let head = self.head_key();
        let key = (pos.segment, pos.offset);
        if key < head {
            return Ok(());
        }
        let out_of_order = SpoolError::AckOutOfOrder {
            segment: pos.segment,
            offset: pos.offset,
        };
        let Some(front) = self.segments.front() else {
            return Err(out_of_order);
        };
        if key > head || self.pending == 0 || pos.next <= pos.offset || pos.next > front.bytes {
            return Err(out_of_order);
        }
        self.head_offset = pos.next;
        self.head_acked += 1;
        self.pending -= 1;
        self.advance_head()
    }

    /// Bytes of all segment files: the quantity [`SpoolConfig::max_bytes`] bounds. It includes
    /// the acknowledged part of the oldest segment until that segment is deleted.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Entries appended and not yet acknowledged.
    pub fn len(&self) -> u64 {
        self.pending
    }

    /// True when no entry is pending.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the spool was opened with.
    pub fn config(&self) -> &SpoolConfig {
        &self.cfg
    }

    /// Entries skipped by [`Spool::peek`] because they no longer read back intact.
    pub fn lost_entries(&self) -> u64 {
        self.lost_entries
    }

    /// Force appended data to stable storage now, whatever the policy.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced {
            if let Some(active) = &self.active {
                active
                    .file
                    .sync_data()
                    .map_err(io_err(&segment_path(&self.dir, active.id)))?;
            }
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Sync if the [`FsyncPolicy`] says it is time. Under `EveryMillis` the owner calls this
    /// periodically so that the loss bound also holds when appends stop.
    pub fn sync_if_due(&mut self) -> Result<(), SpoolError> {
        match self.cfg.fsync {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::EveryMillis(ms) => {
                if self.unsynced && self.last_sync.elapsed() >= Duration::from_millis(ms) {
                    self.sync()
                } else {
                    Ok(())
                }
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    fn max_entry_len(&self) -> u64 {
        (self.cfg.max_bytes - RECORD_HEADER_LEN).min(u64::from(u32::MAX))
    }

    /// The position of the oldest pending entry, or just past the newest entry when none is.
    fn head_key(&self) -> (u64, u64) {
        match self.segments.front() {
            Some(front) => (front.id, self.head_offset),
            None => (self.next_segment_id, 0),
        }
    }

    /// Close the current segment (synced unless the policy is `Never`) and start a new one.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        if self.cfg.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        let id = self.next_segment_id;
        let path = segment_path(&self.dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if self.cfg.fsync != FsyncPolicy::Never {
            sync_dir(&self.dir)?;
        }
        self.next_segment_id += 1;
        self.active = Some(ActiveSegment { id, file });
        self.segments.push_back(Segment {
            id,
            bytes: 0,
            entries: 0,
        });
        Ok(())
    }

    /// Read and check the record at `offset` of `segment`. `None` when it is not intact.
    fn read_record(
        &mut self,
        segment: Segment,
        offset: u64,
    ) -> Result<Option<(Vec<u8>, u64)>, SpoolError> {
        let path = segment_path(&self.dir, segment.id);
        if self.reader.as_ref().map(|(id, _)| *id) != Some(segment.id) {
            let file = File::open(&path).map_err(io_err(&path))?;
            self.reader = Some((segment.id, file));
        }
        let Some((_, file)) = &self.reader else {
            return Ok(None);
        };
        if offset + RECORD_HEADER_LEN > segment.bytes {
            return Ok(None);
        }
        let mut header = [0u8; RECORD_HEADER_LEN as usize];
        match file.read_exact_at(&mut header, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        }
        let Some((len, crc)) = parse_record_header(&header) else {
            return Ok(None);
        };
        let next = offset + RECORD_HEADER_LEN + u64::from(len);
        if next > segment.bytes {
            return Ok(None);
        }
        // Bounded: the record lies within a segment this spool wrote and counted.
        let mut data = vec![0u8; len as usize];
        match file.read_exact_at(&mut data, offset + RECORD_HEADER_LEN) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        }
        if crc32fast::hash(&data) != crc {
            return Ok(None);
        }
        Ok(Some((data, next)))
    }

    /// Delete fully acknowledged segments from the front and persist the new head position.
    fn advance_head(&mut self) -> Result<(), SpoolError> {
        let mut removed = Vec::new();
        let mut end_of_removed = None;
        while let Some(front) = self.segments.front().copied() {
            if self.head_acked < front.entries {
                break;
            }
            self.segments.pop_front();
            self.total_bytes -= front.bytes;
            if self.active.as_ref().is_some_and(|a| a.id == front.id) {
                // Everything is acknowledged: the next append starts a fresh segment.
                self.active = None;
                self.unsynced = false;
            }
            if self.reader.as_ref().is_some_and(|(id, _)| *id == front.id) {
                self.reader = None;
            }
            removed.push(front.id);
            end_of_removed = Some((front.id, front.bytes));
            self.head_offset = 0;
            self.head_acked = 0;
        }
        let ack = match (self.segments.front(), end_of_removed) {
            (Some(front), _) => (front.id, self.head_offset),
            (None, Some(end)) => end,
            (None, None) => (self.next_segment_id, 0),
        };
        self.write_ack_file(ack)?;
        for id in removed {
            remove_file_if_exists(&segment_path(&self.dir, id))?;
        }
        Ok(())
    }

    fn write_ack_file(&self, (segment, offset): (u64, u64)) -> Result<(), SpoolError> {
        let mut buf = [0u8; ACK_FILE_LEN];
        buf[0..4].copy_from_slice(&ACK_MAGIC);
        buf[4..12].copy_from_slice(&segment.to_le_bytes());
        buf[12..20].copy_from_slice(&offset.to_le_bytes());
        let crc = crc32fast::hash(&buf[0..20]);
        buf[20..24].copy_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join(ACK_TMP_FILE);
        let path = self.dir.join(ACK_FILE);
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(&buf).map_err(io_err(&tmp))?;
        let always = self.cfg.fsync == FsyncPolicy::Always;
        if always {
            file.sync_data().map_err(io_err(&tmp))?;
        }
        drop(file);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        if always {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.cfg.fsync != FsyncPolicy::Never {
            if let Err(err) = self.sync() {
                tracing::warn!(%err, "spool sync on close failed");
            }
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{id:020}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Ids of the segment files in `dir`, ascending. Other files are ignored.
fn list_segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn read_ack_file(path: &Path) -> Result<Option<(u64, u64)>, SpoolError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let valid = bytes.len() == ACK_FILE_LEN
        && bytes[0..4] == ACK_MAGIC
        && crc32fast::hash(&bytes[0..20]).to_le_bytes() == bytes[20..24];
    if !valid {
        tracing::warn!(
            file = %path.display(),
            "spool ack file is unreadable; replaying the spool from its oldest entry"
        );
        return Ok(None);
    }
    let mut segment = [0u8; 8];
    segment.copy_from_slice(&bytes[4..12]);
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&bytes[12..20]);
    Ok(Some((
        u64::from_le_bytes(segment),
        u64::from_le_bytes(offset),
    )))
}

fn parse_record_header(header: &[u8; RECORD_HEADER_LEN as usize]) -> Option<(u32, u32)> {
    if header[0..4] != RECORD_MAGIC {
        return None;
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    Some((len, crc))
}

/// Fill `buf` as far as the reader allows; returns the bytes read (short only at end of file).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Validate the records of a segment file, streaming it through a fixed buffer.
fn scan_segment(path: &Path, ack_offset: u64) -> Result<ScanResult, SpoolError> {
    let file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::with_capacity(SCAN_BUFFER, file);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut result = ScanResult {
        valid_len: 0,
        file_len,
        entries: 0,
        acked_entries: 0,
        acked_end: 0,
    };
    loop {
        let offset = result.valid_len;
        let mut header = [0u8; RECORD_HEADER_LEN as usize];
        let got = read_full(&mut reader, &mut header).map_err(io_err(path))?;
        if got < header.len() {
            break;
        }
        let Some((len, crc)) = parse_record_header(&header) else {
            break;
        };
        let end = offset + RECORD_HEADER_LEN + u64::from(len);
        if end > file_len {
            break;
        }
        let mut hasher = crc32fast::Hasher::new();
        let mut remaining = u64::from(len);
        while remaining > 0 {
            let want = remaining.min(chunk.len() as u64) as usize;
            let got = read_full(&mut reader, &mut chunk[..want]).map_err(io_err(path))?;
            hasher.update(&chunk[..got]);
            if got < want {
                break;
            }
            remaining -= want as u64;
        }
        if remaining > 0 || hasher.finalize() != crc {
            break;
        }
        result.valid_len = end;
        result.entries += 1;
        if end <= ack_offset {
            result.acked_entries += 1;
            result.acked_end = end;
        }
    }
    Ok(result)
}

fn truncate(path: &Path, len: u64) -> Result<(), SpoolError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    file.set_len(len).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn remove_file_if_exists(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests;
