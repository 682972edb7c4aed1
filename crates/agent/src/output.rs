//! The bounded send queue between the capture thread and the collectors, and the task that
//! sends to one or more collectors, round-robin or failover, reconnecting with backoff.
//!
//! With a disk buffer ([`spool::Spool`]), messages no collector can take are appended to it
//! instead of being dropped; while it holds anything, new messages go behind them, and
//! whenever a collector is up the buffer is sent oldest first (each entry acknowledged once a
//! collector accepted and flushed it), so order is kept across an outage. What is still
//! buffered at exit stays on disk and is sent by the next run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sender::{HepSender, SenderConfig, Target};
use spool::Spool;
use tokio::sync::mpsc;

use crate::counters::Counters;
use crate::pipeline::HepSink;

/// Messages gathered before a batch is queued.
pub const BATCH_MESSAGES: usize = 256;

/// How messages are spread over several collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Every collector gets its share in turn; a collector that is down is skipped.
    RoundRobin,
    /// Everything goes to the first collector that is up, in the order given.
    #[default]
    Failover,
}

impl std::str::FromStr for Balance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round-robin" | "roundrobin" | "rr" => Ok(Balance::RoundRobin),
            "failover" => Ok(Balance::Failover),
            other => Err(format!(
                "unknown balance mode {other:?} (round-robin or failover)"
            )),
        }
    }
}

/// Encoded HEP messages stored back to back.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// Appends one message.
    pub fn push(&mut self, message: &[u8]) {
        self.data.extend_from_slice(message);
        self.ends.push(self.data.len());
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The messages, in order.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(s, e)| self.data.get(s..e).unwrap_or_default())
    }
}

/// What the producer does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for room (reading files: nothing is lost, reading just slows down).
    Wait,
    /// Drop the batch and count it (live capture: never stall the kernel buffer).
    Drop,
}

/// The capture side of the queue: a [`HepSink`] that batches messages.
#[derive(Debug)]
pub struct Producer {
    tx: mpsc::Sender<Batch>,
    batch: Batch,
    when_full: WhenFull,
    counters: Arc<Counters>,
}

/// Creates the queue: at most `capacity_messages` (rounded up to whole batches) wait to be
/// sent.
pub fn queue(
    capacity_messages: usize,
    when_full: WhenFull,
    counters: Arc<Counters>,
) -> (Producer, mpsc::Receiver<Batch>) {
    let batches = capacity_messages.div_ceil(BATCH_MESSAGES).max(1);
    let (tx, rx) = mpsc::channel(batches);
    (
        Producer {
            tx,
            batch: Batch::default(),
            when_full,
            counters,
        },
        rx,
    )
}

impl Producer {
    /// Queues the current batch (called from a plain thread, never inside the runtime).
    pub fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len() as u64;
        let lost = match self.when_full {
            WhenFull::Wait => self.tx.blocking_send(batch).is_err(),
            WhenFull::Drop => self.tx.try_send(batch).is_err(),
        };
        if lost {
            Counters::add(&self.counters.dropped, n);
        }
    }
}

impl HepSink for Producer {
    fn emit(&mut self, message: &[u8]) {
        self.batch.push(message);
        if self.batch.len() >= BATCH_MESSAGES {
            self.flush_batch();
        }
    }

    fn flush(&mut self) {
        self.flush_batch();
    }
}

/// One collector and its connection state.
struct Collector {
    target: Target,
    sender: Option<HepSender>,
    retry_at: Instant,
    backoff: Duration,
    connected_before: bool,
    /// Messages handed to the sender, and those it reported written.
    given: u64,
    accounted: u64,
    accounted_base: u64,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Collector {
    fn new(target: Target) -> Self {
        Collector {
            target,
            sender: None,
            retry_at: Instant::now(),
            backoff: BACKOFF_MIN,
            connected_before: false,
            given: 0,
            accounted: 0,
            accounted_base: 0,
        }
    }

    /// Connects when disconnected and the backoff has passed; whether it is usable now.
    async fn ensure(&mut self, cfg: &SenderConfig, counters: &Counters) -> bool {
        if self.sender.is_some() {
            return true;
        }
        if Instant::now() < self.retry_at {
            return false;
        }
        match HepSender::connect(self.target.clone(), cfg.clone()).await {
            Ok(s) => {
                if self.connected_before {
                    Counters::add(&counters.reconnects, 1);
                    tracing::info!(target = %self.target, "collector reconnected");
                }
                self.connected_before = true;
                self.backoff = BACKOFF_MIN;
                self.accounted_base = s.stats().messages;
                self.given = 0;
                self.accounted = 0;
                self.sender = Some(s);
                true
            }
            Err(err) => {
                tracing::warn!(target = %self.target, %err, retry_in = ?self.backoff, "collector unreachable");
                Counters::add(&counters.errors, 1);
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                false
            }
        }
    }

    /// Moves the sender's written count into `sent`.
    fn account(&mut self, counters: &Counters) {
        if let Some(s) = &self.sender {
            let written = s.stats().messages - self.accounted_base;
            Counters::add(&counters.sent, written - self.accounted);
            self.accounted = written;
        }
    }

    /// Gives up on the connection: what it had not written is lost.
    fn fail(&mut self, err: &sender::SenderError, counters: &Counters) {
        tracing::warn!(target = %self.target, %err, "collector connection lost");
        self.account(counters);
        Counters::add(&counters.errors, 1);
        Counters::add(&counters.dropped, self.given.saturating_sub(self.accounted));
        self.sender = None;
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    async fn send(&mut self, messages: &[&[u8]], counters: &Counters) -> bool {
        let Some(s) = self.sender.as_mut() else {
            return false;
        };
        self.given += messages.len() as u64;
        match s.send_batch(messages).await {
            Ok(()) => {
                self.account(counters);
                true
            }
            Err(err) => {
                // The failed part is retried elsewhere by the caller, so only earlier
                // buffered messages count as lost.
                self.given -= messages.len() as u64;
                self.fail(&err, counters);
                false
            }
        }
    }

    async fn flush(&mut self, counters: &Counters) {
        let Some(s) = self.sender.as_mut() else {
            return;
        };
        match s.flush().await {
            Ok(()) => self.account(counters),
            Err(err) => self.fail(&err, counters),
        }
    }
}

/// Disk-buffer entries sent per turn of the send loop before it reads the queue again (what
/// arrives meanwhile is buffered behind them, so order holds).
const REPLAY_PER_TURN: usize = 64;

/// Sends every queued batch to the collectors until the queue's producer is dropped and the
/// queue is empty, then flushes and closes the connections. With `buffer`, what no collector
/// can take waits on disk (see the module docs).
pub async fn run(
    mut rx: mpsc::Receiver<Batch>,
    targets: Vec<Target>,
    balance: Balance,
    cfg: SenderConfig,
    counters: Arc<Counters>,
    mut buffer: Option<Spool>,
) {
    let mut collectors: Vec<Collector> = targets.into_iter().map(Collector::new).collect();
    for c in &mut collectors {
        c.ensure(&cfg, &counters).await;
    }
    let mut next = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch = tokio::select! {
            batch = rx.recv() => match batch {
                Some(b) => b,
                None => break,
            },
            _ = tick.tick() => {
                for c in &mut collectors {
                    c.flush(&counters).await;
                }
                if let Some(sp) = buffer.as_mut() {
                    replay(sp, &mut collectors, &cfg, &counters).await;
                    if let Err(err) = sp.sync_if_due() {
                        tracing::warn!(%err, "syncing the disk buffer");
                    }
                }
                continue;
            }
        };
        let messages: Vec<&[u8]> = batch.messages().collect();
        if let Some(sp) = buffer.as_mut() {
            if !replay(sp, &mut collectors, &cfg, &counters).await {
                // Older messages are still waiting: these go behind them.
                stash(sp, &messages, &counters);
                continue;
            }
        }
        match balance {
            Balance::Failover => {
                if !failover(&mut collectors, &messages, 0, &cfg, &counters).await {
                    lost(buffer.as_mut(), &messages, &counters);
                }
            }
            Balance::RoundRobin => {
                let n = collectors.len();
                let mut shares: Vec<Vec<&[u8]>> = vec![Vec::new(); n];
                for (k, m) in messages.iter().enumerate() {
                    shares[(next + k) % n].push(m);
                }
                next = (next + messages.len()) % n.max(1);
                for (i, share) in shares.iter().enumerate() {
                    if !share.is_empty()
                        && !failover(&mut collectors, share, i, &cfg, &counters).await
                    {
                        lost(buffer.as_mut(), share, &counters);
                    }
                }
            }
        }
        if rx.is_empty() {
            for c in &mut collectors {
                c.flush(&counters).await;
            }
        }
    }
    if let Some(sp) = buffer.as_mut() {
        replay(sp, &mut collectors, &cfg, &counters).await;
        if let Err(err) = sp.sync() {
            tracing::warn!(%err, "syncing the disk buffer");
        }
        if !sp.is_empty() {
            tracing::warn!(entries = sp.len(), dir = %sp.dir().display(), "HEP messages left in the disk buffer for the next run");
        }
    }
    for c in &mut collectors {
        c.flush(&counters).await;
        if let Some(s) = c.sender.take() {
            match s.close().await {
                Ok(stats) => {
                    let written = stats.messages - c.accounted_base;
                    Counters::add(&counters.sent, written.saturating_sub(c.accounted));
                }
                Err(err) => {
                    tracing::warn!(target = %c.target, %err, "closing collector connection");
                    Counters::add(&counters.errors, 1);
                    Counters::add(&counters.dropped, c.given.saturating_sub(c.accounted));
                }
            }
        }
    }
}

/// Sends `messages` to collector `first`, else to the next ones in order; false when none is
/// up.
async fn failover(
    collectors: &mut [Collector],
    messages: &[&[u8]],
    first: usize,
    cfg: &SenderConfig,
    counters: &Counters,
) -> bool {
    failover_to(collectors, messages, first, cfg, counters)
        .await
        .is_some()
}

/// [`failover`], telling which collector took the messages.
async fn failover_to(
    collectors: &mut [Collector],
    messages: &[&[u8]],
    first: usize,
    cfg: &SenderConfig,
    counters: &Counters,
) -> Option<usize> {
    let n = collectors.len();
    for k in 0..n {
        let i = (first + k) % n;
        let c = &mut collectors[i];
        if c.ensure(cfg, counters).await && c.send(messages, counters).await {
            return Some(i);
        }
    }
    None
}

/// Messages no collector took: into the disk buffer if there is one, else counted as dropped.
fn lost(buffer: Option<&mut Spool>, messages: &[&[u8]], counters: &Counters) {
    match buffer {
        Some(sp) => stash(sp, messages, counters),
        None => Counters::add(&counters.dropped, messages.len() as u64),
    }
}

/// Appends messages to the disk buffer as one entry (each message prefixed with its length,
/// u32 little-endian); a full buffer drops them (counted).
fn stash(sp: &mut Spool, messages: &[&[u8]], counters: &Counters) {
    let mut entry = Vec::with_capacity(messages.iter().map(|m| m.len() + 4).sum());
    for m in messages {
        // A HEP message is at most 65535 bytes, so its length always fits.
        entry.extend_from_slice(&(m.len() as u32).to_le_bytes());
        entry.extend_from_slice(m);
    }
    match sp.append(&entry) {
        Ok(()) => Counters::add(&counters.buffered, messages.len() as u64),
        Err(err) => {
            tracing::warn!(%err, "disk buffer refused messages; they are dropped");
            Counters::add(&counters.errors, 1);
            Counters::add(&counters.dropped, messages.len() as u64);
        }
    }
}

/// The messages of one disk-buffer entry; a damaged tail is ignored (the spool checks each
/// entry's CRC, so that only happens for entries not written by [`stash`]).
fn unstash(entry: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = entry;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let Some((message, tail)) = tail.split_at_checked(len) else {
            break;
        };
        out.push(message);
        rest = tail;
    }
    out
}

/// Sends buffered entries, oldest first, while a collector takes them (at most
/// [`REPLAY_PER_TURN`]); true when the buffer is empty afterwards.
async fn replay(
    sp: &mut Spool,
    collectors: &mut [Collector],
    cfg: &SenderConfig,
    counters: &Counters,
) -> bool {
    for _ in 0..REPLAY_PER_TURN {
        let (pos, entry) = match sp.peek() {
            Ok(Some(e)) => e,
            Ok(None) => return true,
            Err(err) => {
                tracing::warn!(%err, "reading the disk buffer");
                Counters::add(&counters.errors, 1);
                return false;
            }
        };
        let messages = unstash(&entry);
        let Some(i) = failover_to(collectors, &messages, 0, cfg, counters).await else {
            return false;
        };
        // Acknowledged once the collector's connection took the bytes, so a connection that
        // breaks before that sends the entry again (at least once).
        let c = &mut collectors[i];
        c.flush(counters).await;
        if c.sender.is_none() {
            return false;
        }
        if let Err(err) = sp.ack(pos) {
            tracing::warn!(%err, "acknowledging a disk buffer entry");
            Counters::add(&counters.errors, 1);
            return false;
        }
        Counters::add(&counters.replayed, messages.len() as u64);
    }
    sp.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keeps_boundaries() {
        let mut b = Batch::default();
        b.push(b"one");
        b.push(b"");
        b.push(b"three");
        let all: Vec<&[u8]> = b.messages().collect();
        assert_eq!(all, vec![&b"one"[..], b"", b"three"]);
    }

    #[test]
    fn buffer_entries_keep_message_boundaries() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut sp = Spool::open(dir.path(), spool::SpoolConfig::default()).expect("spool");
        let c = Counters::default();
        let messages: Vec<&[u8]> = vec![b"HEP3-one", b"", b"HEP3-three"];
        stash(&mut sp, &messages, &c);
        let (_, entry) = sp.peek().expect("peek").expect("entry");
        assert_eq!(unstash(&entry), messages);
        assert_eq!(c.snapshot().buffered, 3);
        // A cut entry yields its whole messages only.
        assert_eq!(unstash(&entry[..entry.len() - 2]), messages[..2].to_vec());
    }

    #[test]
    fn balance_names() {
        assert_eq!("round-robin".parse::<Balance>(), Ok(Balance::RoundRobin));
        assert_eq!("failover".parse::<Balance>(), Ok(Balance::Failover));
        assert!("random".parse::<Balance>().is_err());
    }
}
