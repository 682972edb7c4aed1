//! From the receive threads to the store without losing data.
//!
//! ```text
//! receivers ──try_send──► bounded queue ──► writer thread(s) ──insert_batch──► Store
//!     │ queue full                              │ store error / store marked down
//!     ▼                                         ▼
//!  overflow buffer ──(batch full / tick)──►  spool (on disk) ──► replayer ──insert_batch──► Store
//! ```
//!
//! * The queue is bounded (`writer.queue_capacity` records). A receiver never blocks: when the
//!   queue is full the record goes to a small overflow buffer that is written to the spool as a
//!   batch, so a slow store turns into spool traffic instead of packet loss.
//! * A writer collects up to `writer.batch_size` records or waits at most
//!   `writer.max_batch_delay_ms`, then calls `insert_batch`. When that fails as a whole the batch
//!   is spooled and the store is marked down; while it is down writers spool directly and only
//!   the replayer probes the store (with exponential backoff), so a dead database is not
//!   hammered.
//! * The replayer feeds spooled batches back oldest first, acknowledging each only after the
//!   store took it, so a crash during replay at worst stores a batch twice, never loses one.
//! * Only when the spool refuses (full, or failing) are records dropped: counted, and logged at
//!   most once a second.
//!
//! Spool entries are `[format version u8][record count u32 LE][postcard Vec<Record>]`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use store::{Record, RecordHint, Store};

use crate::metrics::{InvalidKind, Metrics, ProbedGauges};
use crate::output::Outputs;

/// Version byte of a spool entry whose body is the postcard encoding of the batch.
const SPOOL_FORMAT_V1: u8 = 1;
/// Version byte of a spool entry whose body is that postcard encoding in one Zstandard frame.
const SPOOL_FORMAT_ZSTD: u8 = 2;
/// Bytes before the body of a spool entry: the version byte and the record count (u32 LE).
const SPOOL_HEADER_LEN: usize = 5;
/// Largest decoded size accepted per record of a compressed entry: a HEP packet is at most
/// 64 KiB (a 16-bit length), which its record holds once raw and at most once more in parsed
/// fields. Bounds what a damaged entry can make the replayer allocate.
const SPOOL_MAX_RECORD_BYTES: u64 = 256 << 10;
/// First backoff after the store failed.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest backoff between store probes.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Fewest records per concurrent insert when a spooled batch is replayed in parallel.
const MIN_REPLAY_CHUNK: usize = 250;

/// Why the spool refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum SpoolFailure {
    /// The spool reached its size limit.
    #[error("spool full")]
    Full,
    /// Anything else (I/O, corruption).
    #[error("spool error: {0}")]
    Other(String),
}

/// What the writers need from a spool: a FIFO of opaque byte entries with explicit
/// acknowledgement. Implemented for the on-disk `spool::Spool` and by [`MemorySpool`].
pub trait BatchSpool: Send {
    /// Appends an entry at the tail.
    fn append(&mut self, entry: &[u8]) -> Result<(), SpoolFailure>;
    /// The oldest unacknowledged entry, if any (the same one until it is acknowledged).
    fn peek(&mut self) -> Result<Option<Vec<u8>>, SpoolFailure>;
    /// Acknowledges (removes) the entry the last [`BatchSpool::peek`] returned.
    fn ack_peeked(&mut self) -> Result<(), SpoolFailure>;
    /// Bytes held.
    fn bytes(&self) -> u64;
    /// Entries held.
    fn len(&self) -> u64;
    /// True when no entry is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forces appended data to disk if the fsync policy says it is time (called periodically).
    fn sync_if_due(&mut self) -> Result<(), SpoolFailure> {
        Ok(())
    }
    /// Forces appended data to disk now (called at shutdown).
    fn sync(&mut self) -> Result<(), SpoolFailure> {
        Ok(())
    }
}

/// A bounded in-memory spool: for tests, and for deployments that accept losing the spooled
/// backlog on a crash.
#[derive(Debug, Default)]
pub struct MemorySpool {
    entries: VecDeque<Vec<u8>>,
    bytes: u64,
    max_bytes: u64,
}

impl MemorySpool {
    /// A spool holding at most `max_bytes` of entries.
    pub fn new(max_bytes: u64) -> MemorySpool {
        MemorySpool {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }
}

impl BatchSpool for MemorySpool {
    fn append(&mut self, entry: &[u8]) -> Result<(), SpoolFailure> {
        let len = entry.len() as u64;
        if self.bytes + len > self.max_bytes {
            return Err(SpoolFailure::Full);
        }
        self.bytes += len;
        self.entries.push_back(entry.to_vec());
        Ok(())
    }
    fn peek(&mut self) -> Result<Option<Vec<u8>>, SpoolFailure> {
        Ok(self.entries.front().cloned())
    }
    fn ack_peeked(&mut self) -> Result<(), SpoolFailure> {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.len() as u64;
        }
        Ok(())
    }
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn len(&self) -> u64 {
        self.entries.len() as u64
    }
}

/// Observes every record the store accepted (after each successful batch, and on batches
/// replayed from the spool): for what must see stored records only. Implementations must be
/// quick (hand work off to their own queue) because they run on the writer threads. Consumers
/// that must not depend on the store (KPIs, exports) are [`crate::output::Output`]s instead.
pub trait RecordObserver: Send + Sync {
    /// Called with the records of one batch that the store stored (rejected rows excluded).
    fn on_stored(&self, records: &[Record]);

    /// What the writers call: the stored records with the pipeline's parse of their RTCP
    /// payloads. `rtcp` is empty when nothing parsed is at hand (records replayed from the
    /// spool), else `rtcp[i]` belongs to `records[i]` (`None` for non-RTCP records). Observers
    /// that would parse the RTCP JSON again use it; by default it is ignored.
    fn on_stored_parsed(&self, records: &[Record], rtcp: &[ParsedRtcp]) {
        let _ = rtcp;
        self.on_stored(records);
    }
}

/// The RTCP report the pipeline parsed from a record's payload, handed to the observers with
/// the record so that the KPI engine does not parse the JSON a second time (it cost ~11 % of
/// the writer threads under RTCP-heavy load). Not spooled: replayed records have none.
pub type ParsedRtcp = Option<Arc<payload::rtcp::RtcpReport>>;

/// Encodes a batch as a spool entry; `zstd_level` 0 leaves it uncompressed.
///
/// Why compress: the spool is what absorbs a burst the store cannot take, and its size limit
/// decides when packets are dropped. A batch of thousands of SIP messages and RTCP reports
/// repeats the same headers, hosts and field names over and over: Zstandard level 1 shrinks
/// it 4–10× at about 1 GB/s, so the same `max_bytes` holds that many more seconds of
/// overload, and less is written to disk and read back.
pub fn encode_batch(batch: &[Record], zstd_level: i32) -> Result<Vec<u8>, SpoolEncodeError> {
    let count = u32::try_from(batch.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(SPOOL_HEADER_LEN + batch.len() * 600);
    let format = if zstd_level > 0 {
        SPOOL_FORMAT_ZSTD
    } else {
        SPOOL_FORMAT_V1
    };
    out.push(format);
    out.extend_from_slice(&count.to_le_bytes());
    if zstd_level == 0 {
        postcard::to_io(batch, &mut out)?;
        return Ok(out);
    }
    // Serialized whole, then compressed in one call: postcard writes field by field, and a
    // streaming compressor called per field costs more than the compression itself.
    let plain = postcard::to_stdvec(batch)?;
    out.reserve(zstd::zstd_safe::compress_bound(plain.len()));
    zstd::stream::copy_encode(plain.as_slice(), &mut out, zstd_level)?;
    Ok(out)
}

/// Why a batch could not be encoded for the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolEncodeError {
    /// The records did not serialize.
    #[error("serializing: {0}")]
    Serialize(#[from] postcard::Error),
    /// The compressor failed.
    #[error("compressing: {0}")]
    Compress(#[from] std::io::Error),
}

/// Decodes a spool entry (compressed or not). On failure returns the record count from the
/// header (0 if even that is unreadable) so the loss can be accounted.
pub fn decode_batch(entry: &[u8]) -> Result<Vec<Record>, u64> {
    let count = entry
        .get(1..SPOOL_HEADER_LEN)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u64::from(u32::from_le_bytes(b)));
    let body = entry.get(SPOOL_HEADER_LEN..).ok_or(count)?;
    let records = match entry.first() {
        Some(&SPOOL_FORMAT_V1) => postcard::from_bytes::<Vec<Record>>(body).map_err(|_| count)?,
        Some(&SPOOL_FORMAT_ZSTD) => {
            use std::io::Read;
            // Room for the records and postcard's length prefix of the list.
            let cap = count
                .saturating_mul(SPOOL_MAX_RECORD_BYTES)
                .saturating_add(16);
            let decoder = zstd::stream::read::Decoder::new(body).map_err(|_| count)?;
            let mut plain = Vec::with_capacity(body.len().saturating_mul(4));
            decoder
                .take(cap.saturating_add(1))
                .read_to_end(&mut plain)
                .map_err(|_| count)?;
            if plain.len() as u64 > cap {
                return Err(count);
            }
            postcard::from_bytes::<Vec<Record>>(&plain).map_err(|_| count)?
        }
        _ => return Err(count),
    };
    // The header and the body must agree: a mismatch means the entry is not what was written.
    if records.len() as u64 != count {
        return Err(count);
    }
    Ok(records)
}

/// Rate limiter for warnings: at most one per second.
#[derive(Debug)]
struct WarnEvery {
    last: Mutex<Option<Instant>>,
}

impl WarnEvery {
    fn new() -> WarnEvery {
        WarnEvery {
            last: Mutex::new(None),
        }
    }
    fn ready(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let now = Instant::now();
        match *last {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// The store's health as the writers see it.
#[derive(Debug)]
struct Health {
    down: AtomicBool,
    state: Mutex<(Instant, Duration)>,
}

impl Health {
    fn new() -> Health {
        Health {
            down: AtomicBool::new(false),
            state: Mutex::new((Instant::now(), BACKOFF_MIN)),
        }
    }
    fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }
    fn mark_down(&self) {
        if let Ok(mut s) = self.state.lock() {
            let backoff = if self.down.load(Ordering::Acquire) {
                (s.1 * 2).min(BACKOFF_MAX)
            } else {
                BACKOFF_MIN
            };
            *s = (Instant::now() + backoff, backoff);
        }
        self.down.store(true, Ordering::Release);
    }
    fn mark_up(&self) {
        self.down.store(false, Ordering::Release);
    }
    fn retry_due(&self) -> bool {
        self.state.lock().map_or(true, |s| Instant::now() >= s.0)
    }
}

/// Shared state between receivers, writers and the replayer.
pub(crate) struct Ingress {
    tx: Sender<(Record, ParsedRtcp, RecordHint)>,
    rx: Receiver<(Record, ParsedRtcp, RecordHint)>,
    overflow: Mutex<Vec<Record>>,
    spool: Option<Mutex<Box<dyn BatchSpool>>>,
    store: Arc<dyn Store>,
    observers: Vec<Arc<dyn RecordObserver>>,
    /// Offered every accepted record in [`Ingress::submit`], before the store sees it.
    outputs: Outputs,
    metrics: Arc<Metrics>,
    health: Health,
    batch_size: usize,
    max_delay: Duration,
    /// Zstandard level of spooled batches; 0 stores them uncompressed.
    spool_zstd_level: i32,
    /// Concurrent `insert_batch` calls a spooled batch is replayed with.
    replay_fan_out: usize,
    /// Which chunks of the spool entry being replayed are stored already, so that a replay
    /// retried after a partial failure does not store them twice.
    replay_done: Mutex<Vec<bool>>,
    closed: AtomicBool,
    spool_warn: WarnEvery,
    store_warn: WarnEvery,
    spool_bytes: AtomicU64,
    spool_len: AtomicU64,
}

impl Ingress {
    /// `writers` is the resolved writer count (also the replay fan-out).
    #[allow(clippy::too_many_arguments)] // the parts `Collector::start` wires, each its own
    pub(crate) fn new(
        cfg: &crate::config::WriterConfig,
        spool_zstd_level: i32,
        writers: usize,
        store: Arc<dyn Store>,
        spool: Option<Box<dyn BatchSpool>>,
        observers: Vec<Arc<dyn RecordObserver>>,
        outputs: Outputs,
        metrics: Arc<Metrics>,
    ) -> Arc<Ingress> {
        let (batch_size, max_delay) = (
            cfg.batch_size,
            Duration::from_millis(cfg.max_batch_delay_ms),
        );
        let (tx, rx) = crossbeam_channel::bounded(cfg.queue_capacity);
        let (bytes, len) = spool.as_ref().map_or((0, 0), |s| (s.bytes(), s.len()));
        let ingress = Arc::new(Ingress {
            tx,
            rx,
            overflow: Mutex::new(Vec::new()),
            spool: spool.map(Mutex::new),
            store,
            observers,
            outputs,
            metrics: metrics.clone(),
            health: Health::new(),
            batch_size,
            max_delay,
            spool_zstd_level,
            replay_fan_out: writers.max(1),
            replay_done: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            spool_warn: WarnEvery::new(),
            store_warn: WarnEvery::new(),
            spool_bytes: AtomicU64::new(bytes),
            spool_len: AtomicU64::new(len),
        });
        let weak = Arc::downgrade(&ingress);
        metrics.set_probe(Box::new(move || {
            weak.upgrade()
                .map_or_else(ProbedGauges::default, |i| ProbedGauges {
                    queue_depth: (i.rx.len() + i.overflow.lock().map_or(0, |o| o.len())) as u64,
                    spool_bytes: i.spool_bytes.load(Ordering::Relaxed),
                    spool_batches: i.spool_len.load(Ordering::Relaxed),
                })
        }));
        ingress
    }

    /// Whether the writers are behind: the queue is filled past its high-water mark (three
    /// quarters of `writer.queue_capacity`) while the store is up. Stream receivers then stop
    /// reading for a while, so TCP flow control slows the sender instead of the surplus going
    /// through the spool (serialise, compress, write, read back, decode: CPU the writers
    /// need on a small machine). False while the store is down: waiting would not help, and
    /// the spool is what takes the traffic then.
    pub(crate) fn congested(&self) -> bool {
        let capacity = self.tx.capacity().unwrap_or(usize::MAX);
        !self.health.is_down() && self.tx.len() >= capacity - capacity / 4
    }

    /// Offers a record to the outputs and hands it to the writers, without blocking.
    pub(crate) fn submit(&self, record: Record, rtcp: ParsedRtcp, hint: RecordHint) {
        self.outputs.offer(&record, &rtcp);
        let record = match self.tx.try_send((record, rtcp, hint)) {
            Ok(()) => return,
            Err(TrySendError::Full((r, ..)) | TrySendError::Disconnected((r, ..))) => r,
        };
        let full = {
            let Ok(mut overflow) = self.overflow.lock() else {
                self.metrics.dropped(1);
                return;
            };
            overflow.push(record);
            if overflow.len() >= self.batch_size {
                Some(std::mem::take(&mut *overflow))
            } else {
                None
            }
        };
        if let Some(batch) = full {
            self.spool_batch(&batch);
        }
    }

    /// Writes the overflow buffer to the spool.
    fn flush_overflow(&self) {
        let batch = match self.overflow.lock() {
            Ok(mut o) if !o.is_empty() => std::mem::take(&mut *o),
            _ => return,
        };
        self.spool_batch(&batch);
    }

    fn refresh_spool_gauges(&self, spool: &dyn BatchSpool) {
        self.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
        self.spool_len.store(spool.len(), Ordering::Relaxed);
    }

    /// Appends a batch to the spool; on failure the records are dropped (counted).
    fn spool_batch(&self, batch: &[Record]) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let Some(spool) = &self.spool else {
            self.drop_records(n, "no spool configured");
            return;
        };
        let entry = match encode_batch(batch, self.spool_zstd_level) {
            Ok(e) => e,
            Err(e) => {
                self.drop_records(n, &format!("cannot encode batch: {e}"));
                return;
            }
        };
        let Ok(mut spool) = spool.lock() else {
            self.drop_records(n, "spool lock poisoned");
            return;
        };
        match spool.append(&entry) {
            Ok(()) => {
                self.metrics.spooled(n);
                self.refresh_spool_gauges(spool.as_ref());
            }
            Err(SpoolFailure::Full) => self.drop_records(n, "spool full"),
            Err(SpoolFailure::Other(e)) => self.drop_records(n, &e),
        }
    }

    fn drop_records(&self, n: u64, why: &str) {
        self.metrics.dropped(n);
        if self.spool_warn.ready() {
            tracing::warn!(
                records = n,
                reason = why,
                total_dropped = self.metrics.accounting().dropped,
                "dropping records: the store is behind or down and the spool cannot take them"
            );
        }
    }

    /// One `insert_batch` call with metrics and observers; `Err` when the store failed as a whole.
    /// `rtcp` and `hints` are empty or hold one entry per record of `batch`.
    fn insert(
        &self,
        batch: &[Record],
        rtcp: &[ParsedRtcp],
        hints: &[RecordHint],
    ) -> Result<(), store::StoreError> {
        let started = Instant::now();
        let result = self.store.insert_batch_hinted(batch, hints);
        self.metrics.store_batch(started.elapsed(), result.is_ok());
        let outcome = result?;
        let rejected = outcome.rejected.len() as u64;
        self.metrics
            .stored(batch.len() as u64 - rejected.min(batch.len() as u64));
        if rejected > 0 {
            self.metrics.invalid(InvalidKind::StoreRejected, rejected);
            if self.store_warn.ready() {
                if let Some((i, why)) = outcome.rejected.first() {
                    tracing::warn!(row = i, reason = %why, rejected, "store rejected rows");
                }
            }
        }
        if !self.observers.is_empty() {
            if rejected == 0 {
                for o in &self.observers {
                    o.on_stored_parsed(batch, rtcp);
                }
            } else {
                let mut skip = vec![false; batch.len()];
                for (i, _) in &outcome.rejected {
                    if let Some(s) = skip.get_mut(*i) {
                        *s = true;
                    }
                }
                let kept: Vec<Record> = batch
                    .iter()
                    .zip(&skip)
                    .filter(|(_, s)| !**s)
                    .map(|(r, _)| r.clone())
                    .collect();
                for o in &self.observers {
                    o.on_stored(&kept);
                }
            }
        }
        Ok(())
    }

    /// Writes a batch: to the store when it is up, to the spool otherwise or on failure.
    fn write(&self, batch: &[Record], rtcp: &[ParsedRtcp], hints: &[RecordHint]) {
        if batch.is_empty() {
            return;
        }
        if self.health.is_down() {
            self.spool_batch(batch);
            return;
        }
        if let Err(e) = self.insert(batch, rtcp, hints) {
            if self.store_warn.ready() {
                tracing::warn!(error = %e, records = batch.len(), "store write failed; spooling");
            }
            self.health.mark_down();
            self.spool_batch(batch);
        }
    }

    /// Replays the oldest spooled batch. Returns true when it made progress.
    fn replay_one(&self) -> bool {
        let Some(spool) = &self.spool else {
            return false;
        };
        let entry = {
            let Ok(mut s) = spool.lock() else {
                return false;
            };
            match s.peek() {
                Ok(Some(e)) => e,
                Ok(None) => return false,
                Err(e) => {
                    if self.spool_warn.ready() {
                        tracing::warn!(error = %e, "cannot read the spool");
                    }
                    return false;
                }
            }
        };
        let batch = match decode_batch(&entry) {
            Ok(b) => b,
            Err(count) => {
                tracing::error!(records = count, "corrupt spool entry skipped");
                self.metrics.replayed(count);
                self.metrics.dropped(count);
                self.ack(spool);
                return true;
            }
        };
        if self.replay_chunks(&batch) {
            self.metrics.replayed(batch.len() as u64);
            self.health.mark_up();
            self.ack(spool);
            true
        } else {
            self.health.mark_down();
            false
        }
    }

    /// Inserts a spooled batch, split over `replay_fan_out` concurrent `insert_batch` calls
    /// (each runs on its own connection on PostgreSQL, so a backlog drains on every core the
    /// server has, not one). True once every chunk is stored; chunks stored by an earlier,
    /// partly failed attempt at the same entry are not inserted again.
    fn replay_chunks(&self, batch: &[Record]) -> bool {
        let size = batch
            .len()
            .div_ceil(self.replay_fan_out)
            .max(MIN_REPLAY_CHUNK)
            .max(1);
        let chunks: Vec<&[Record]> = batch.chunks(size).collect();
        let Ok(mut done) = self.replay_done.lock() else {
            return false;
        };
        if done.len() != chunks.len() {
            *done = vec![false; chunks.len()];
        }
        let pending: Vec<usize> = (0..chunks.len()).filter(|&i| !done[i]).collect();
        let results: Vec<(usize, Result<(), store::StoreError>)> = match pending.as_slice() {
            [i] => vec![(*i, self.insert(chunks[*i], &[], &[]))],
            _ => std::thread::scope(|scope| {
                let handles: Vec<_> = pending
                    .iter()
                    .map(|&i| {
                        let chunk = chunks[i];
                        (i, scope.spawn(move || self.insert(chunk, &[], &[])))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(i, h)| {
                        let r = h.join().unwrap_or_else(|_| {
                            Err(store::StoreError::Backend("replay thread panicked".into()))
                        });
                        (i, r)
                    })
                    .collect()
            }),
        };
        for (i, result) in results {
            match result {
                Ok(()) => done[i] = true,
                Err(e) => {
                    if self.store_warn.ready() {
                        tracing::warn!(error = %e, "store still failing; replay postponed");
                    }
                }
            }
        }
        let all = done.iter().all(|&d| d);
        if all {
            done.clear();
        }
        all
    }

    fn ack(&self, spool: &Mutex<Box<dyn BatchSpool>>) {
        if let Ok(mut s) = spool.lock() {
            if let Err(e) = s.ack_peeked() {
                tracing::error!(error = %e, "cannot acknowledge a replayed spool entry");
            }
            self.refresh_spool_gauges(s.as_ref());
        }
    }

    fn spool_is_empty(&self) -> bool {
        self.spool_len.load(Ordering::Relaxed) == 0
    }

    /// Marks the inputs closed: writers exit once the queue is empty.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// The body of a writer thread.
    pub(crate) fn run_writer(&self) {
        let mut batch: Vec<Record> = Vec::with_capacity(self.batch_size);
        let mut rtcp: Vec<ParsedRtcp> = Vec::with_capacity(self.batch_size);
        let mut hints: Vec<RecordHint> = Vec::with_capacity(self.batch_size);
        let poll = self.max_delay.min(Duration::from_millis(50));
        loop {
            let deadline = Instant::now() + self.max_delay;
            while batch.len() < self.batch_size {
                // Take what is queued without waiting, then wait up to the deadline.
                match self.rx.try_recv() {
                    Ok((r, p, h)) => {
                        batch.push(r);
                        rtcp.push(p);
                        hints.push(h);
                        continue;
                    }
                    Err(_) if self.closed.load(Ordering::Acquire) => break,
                    Err(_) => {}
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match self.rx.recv_timeout((deadline - now).min(poll)) {
                    Ok((r, p, h)) => {
                        batch.push(r);
                        rtcp.push(p);
                        hints.push(h);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            if !batch.is_empty() {
                self.write(&batch, &rtcp, &hints);
                batch.clear();
                rtcp.clear();
                hints.clear();
            } else if self.closed.load(Ordering::Acquire) && self.rx.is_empty() {
                return;
            }
        }
    }

    /// The body of the replayer thread: flushes the overflow buffer every batch delay and feeds
    /// spooled batches back into the store. Returns when `stop` is set.
    pub(crate) fn run_replayer(&self, stop: &AtomicBool) {
        let tick = self.max_delay.min(Duration::from_millis(50));
        let mut last_flush = Instant::now();
        while !stop.load(Ordering::Acquire) {
            if last_flush.elapsed() >= self.max_delay {
                self.flush_overflow();
                self.sync_spool(false);
                last_flush = Instant::now();
            }
            if self.spool_is_empty() {
                // Nothing to replay to probe the store with: let the writers try it again once
                // the backoff has passed.
                if self.health.is_down() && self.health.retry_due() {
                    self.health.mark_up();
                }
                std::thread::sleep(tick);
                continue;
            }
            if self.health.is_down() && !self.health.retry_due() {
                std::thread::sleep(tick);
                continue;
            }
            if !self.replay_one() {
                std::thread::sleep(tick);
            }
        }
    }

    /// Final flush at shutdown, after the writers have exited: the overflow buffer goes to the
    /// store when it is up, else to the spool.
    pub(crate) fn finish(&self) {
        let batch = match self.overflow.lock() {
            Ok(mut o) => std::mem::take(&mut *o),
            Err(_) => Vec::new(),
        };
        self.write(&batch, &[], &[]);
        self.sync_spool(true);
    }

    fn sync_spool(&self, now: bool) {
        let Some(spool) = &self.spool else {
            return;
        };
        if let Ok(mut s) = spool.lock() {
            let result = if now { s.sync() } else { s.sync_if_due() };
            if let Err(e) = result {
                if self.spool_warn.ready() {
                    tracing::warn!(error = %e, "spool sync failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn record(i: u32) -> Record {
        Record {
            time_us: i64::from(i),
            received_us: 1,
            hep_type: 1,
            hep_version: 3,
            ip_family: 2,
            ip_proto: 17,
            src_ip: IpAddr::from([10, 0, 0, 1]),
            src_port: 5060,
            dst_ip: "2001:db8::1".parse().expect("ip"),
            dst_port: 5060,
            capture_id: i,
            node: Some("n".into()),
            correlation_id: None,
            sid: format!("call-{i}"),
            profile: store::Profile::Call,
            sip: Some(store::SipFields {
                method: "INVITE".into(),
                custom_headers: vec![("X".into(), "y".into())],
                ..Default::default()
            }),
            payload_json: Some("{}".into()),
            raw: vec![1, 2, 3],
        }
    }

    #[test]
    fn spool_codec_round_trip_and_corruption() {
        let batch: Vec<Record> = (0..3).map(record).collect();
        for level in [0, 1, 19] {
            let entry = encode_batch(&batch, level).expect("encode");
            assert_eq!(entry[0], if level == 0 { 1 } else { 2 });
            assert_eq!(decode_batch(&entry).expect("decode"), batch);
            let mut bad = entry.clone();
            bad.truncate(20);
            assert_eq!(decode_batch(&bad), Err(3));
            // A flipped byte in the body never panics; it fails or decodes to something.
            for i in SPOOL_HEADER_LEN..entry.len() {
                let mut flipped = entry.clone();
                flipped[i] ^= 0x5a;
                let _ = decode_batch(&flipped);
            }
        }
        // An empty batch round-trips in both formats (found by the spool_entry fuzz target).
        for level in [0, 1] {
            let entry = encode_batch(&[], level).expect("encode");
            assert_eq!(decode_batch(&entry), Ok(Vec::new()));
        }
        // A header that disagrees with the body is refused.
        let mut short = encode_batch(&batch, 0).expect("encode");
        short[1..5].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(decode_batch(&short), Err(2));
        assert_eq!(decode_batch(&[]), Err(0));
        assert_eq!(decode_batch(&[9, 3, 0, 0, 0]), Err(3));
        assert_eq!(decode_batch(&[2, 3, 0, 0, 0, 1, 2, 3]), Err(3));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_entries_never_panic(format in 0u8..4, body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut entry = vec![format, 7, 0, 0, 0];
            entry.extend_from_slice(&body);
            if let Err(count) = decode_batch(&entry) {
                proptest::prop_assert_eq!(count, 7);
            }
        }
    }

    #[test]
    fn compressed_entries_are_smaller_and_bounded() {
        let batch: Vec<Record> = (0..2000).map(record).collect();
        let plain = encode_batch(&batch, 0).expect("encode");
        let packed = encode_batch(&batch, 1).expect("encode");
        assert!(
            packed.len() * 4 < plain.len(),
            "{} vs {}",
            packed.len(),
            plain.len()
        );
        // A header that claims fewer records than the frame decodes to is refused, not
        // decoded without a bound.
        let mut lying = packed.clone();
        lying[1..5].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(decode_batch(&lying), Err(0));
    }

    #[test]
    fn memory_spool_is_bounded_fifo() {
        let mut s = MemorySpool::new(10);
        s.append(b"abcd").expect("fits");
        s.append(b"efgh").expect("fits");
        assert!(matches!(s.append(b"ijk"), Err(SpoolFailure::Full)));
        assert_eq!(s.peek().expect("peek").as_deref(), Some(&b"abcd"[..]));
        s.ack_peeked().expect("ack");
        assert_eq!(s.bytes(), 4);
        assert_eq!(s.len(), 1);
        assert_eq!(s.peek().expect("peek").as_deref(), Some(&b"efgh"[..]));
    }
}
