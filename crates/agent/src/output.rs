//! The bounded send queue between the capture thread and the collectors, and the task that
//! sends to one or more collectors, round-robin or failover, reconnecting with backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sender::{HepSender, SenderConfig, Target};
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

/// Sends every queued batch to the collectors until the queue's producer is dropped and the
/// queue is empty, then flushes and closes the connections.
pub async fn run(
    mut rx: mpsc::Receiver<Batch>,
    targets: Vec<Target>,
    balance: Balance,
    cfg: SenderConfig,
    counters: Arc<Counters>,
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
                continue;
            }
        };
        let messages: Vec<&[u8]> = batch.messages().collect();
        match balance {
            Balance::Failover => {
                failover(&mut collectors, &messages, 0, &cfg, &counters).await;
            }
            Balance::RoundRobin => {
                let n = collectors.len();
                let mut shares: Vec<Vec<&[u8]>> = vec![Vec::new(); n];
                for (k, m) in messages.iter().enumerate() {
                    shares[(next + k) % n].push(m);
                }
                next = (next + messages.len()) % n.max(1);
                for (i, share) in shares.iter().enumerate() {
                    if !share.is_empty() {
                        failover(&mut collectors, share, i, &cfg, &counters).await;
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

/// Sends `messages` to collector `first`, else to the next ones in order; drops them when
/// none is up.
async fn failover(
    collectors: &mut [Collector],
    messages: &[&[u8]],
    first: usize,
    cfg: &SenderConfig,
    counters: &Counters,
) {
    let n = collectors.len();
    for k in 0..n {
        let c = &mut collectors[(first + k) % n];
        if c.ensure(cfg, counters).await && c.send(messages, counters).await {
            return;
        }
    }
    Counters::add(&counters.dropped, messages.len() as u64);
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
    fn balance_names() {
        assert_eq!("round-robin".parse::<Balance>(), Ok(Balance::RoundRobin));
        assert_eq!("failover".parse::<Balance>(), Ok(Balance::Failover));
        assert!("random".parse::<Balance>().is_err());
    }
}
