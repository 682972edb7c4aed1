//! Outputs: what consumes the records the pipeline accepted, besides the store (the KPI
//! engine, the Loki push, the live tail; later brokers and time-series databases).
//!
//! ```text
//!                       ┌──► writer queue ──► writers ──► Store (or spool)
//! pipeline ──submit──►──┼──► Output "kpi"  : offer ─try─► bounded queue ──► worker thread
//!  (receive threads)    ├──► Output "loki" : offer ─try─► bounded queue ──► pusher task
//!                       └──► Output "live" : offer ─try─► bounded queue ──► worker thread
//! ```
//!
//! Every output has the same shape, in the manner of Vector's sinks: it is built from its own
//! configuration section, is offered every record the pipeline accepted (on the receiving
//! thread, right when the record is handed to the writers, so before and whatever the store
//! commit), filters and converts what it wants there ([`Output::offer`] must not block), and
//! hands it to its own bounded queue, drained by its own worker. When the queue is full the
//! output sheds the record and counts it: no output ever slows the receivers or the store,
//! and the store being down or slow stops none of them. Each output counts what it sent,
//! what it dropped and why, and what waits in its queue ([`OutputCounters`]), rendered as
//! `hepstack_output_*{output="NAME"}`.
//!
//! [`QueuedOutput`] is the generic implementation for a synchronous [`Sink`] on a worker
//! thread (the KPI engine, the live tail); an output with an async client of its own (Loki)
//! implements [`Output`] directly around its queue and task. An output added later (NATS,
//! AMQP, MQTT, Redis, webhooks, remote write) is one module implementing [`Sink`] or
//! [`Output`] and one configuration section; a filter on HEP type or node belongs in its
//! `offer`, so unwanted records cost one comparison and no copy.
//!
//! Records replayed from the spool are not offered again: the outputs saw them when they
//! were received.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use store::Record;

use crate::writer::ParsedRtcp;

/// Why an output dropped a record (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its queue was full: the worker could not keep up, so the record was shed.
    QueueFull,
    /// The destination refused it or could not be reached (after the output's retries).
    Failed,
    /// The destination rejected it as invalid.
    Rejected,
    /// The output was already stopped.
    Closed,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::Failed,
        DropReason::Rejected,
        DropReason::Closed,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Failed => "failed",
            DropReason::Rejected => "rejected",
            DropReason::Closed => "closed",
        }
    }
}

/// The counters every output keeps.
#[derive(Debug, Default)]
pub struct OutputCounters {
    sent: AtomicU64,
    dropped: [AtomicU64; 4],
    queued: AtomicU64,
}

impl OutputCounters {
    /// Counts `n` items delivered (for the KPI engine: tracked; for a push: accepted).
    pub fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }
    /// Counts `n` items dropped for `why`.
    pub fn dropped(&self, why: DropReason, n: u64) {
        self.dropped[why as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// Sets how many items wait in the queue now.
    pub fn set_queued(&self, n: u64) {
        self.queued.store(n, Ordering::Relaxed);
    }
    /// Items delivered so far.
    pub fn sent_total(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Items dropped so far for `why`.
    pub fn dropped_total(&self, why: DropReason) -> u64 {
        self.dropped[why as usize].load(Ordering::Relaxed)
    }
    /// Items waiting now.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }
    /// All of them.
    pub fn stats(&self) -> OutputStats {
        OutputStats {
            sent: self.sent_total(),
            dropped: DropReason::ALL.map(|why| self.dropped_total(why)),
            queued: self.queued(),
        }
    }
}

/// What an output reports on `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputStats {
    /// Items delivered.
    pub sent: u64,
    /// Items dropped, indexed like [`DropReason::ALL`].
    pub dropped: [u64; 4],
    /// Items waiting now.
    pub queued: u64,
}

impl OutputStats {
    /// Items dropped for `why`.
    pub fn dropped(&self, why: DropReason) -> u64 {
        self.dropped[why as usize]
    }
}

/// One consumer of accepted records. See the module documentation.
pub trait Output: Send + Sync {
    /// The `output` label value; unique among the outputs of a collector.
    fn name(&self) -> &str;
    /// Offers one accepted record (and the pipeline's parse of its RTCP payload, if any) on
    /// the receiving thread. Must not block: queue what the output wants, or count a drop.
    fn offer(&self, record: &Record, rtcp: &ParsedRtcp);
    /// The output's counters now.
    fn stats(&self) -> OutputStats;
    /// Stops taking records, lets the worker deliver what is queued (waiting at most
    /// `deadline`) and ends it. Called once the listeners stopped.
    fn close(&self, deadline: Duration);
}

/// The synchronous half of a [`QueuedOutput`]: runs on the output's worker thread.
pub trait Sink: Send + 'static {
    /// What the output keeps of a record.
    type Item: Send + 'static;
    /// Delivers a batch of items (taken from the queue in order); returns how many were
    /// delivered, the rest being counted as [`DropReason::Failed`].
    fn write(&mut self, items: &mut Vec<Self::Item>) -> usize;
    /// Called at least every `tick` while the worker runs (time-driven work: timeouts,
    /// flushing a partial batch).
    fn tick(&mut self) {}
    /// Called once after the queue was drained at shutdown.
    fn finish(&mut self) {}
}

/// Turns an accepted record into a sink's item, or `None` to skip it; runs on the receiving
/// thread, so it must be cheap.
pub type Prepare<I> = Box<dyn Fn(&Record, &ParsedRtcp) -> Option<I> + Send + Sync>;

/// Settings of a [`QueuedOutput`].
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// Most items waiting; beyond it records are shed (counted as `queue_full`).
    pub capacity: usize,
    /// Most items handed to [`Sink::write`] at once.
    pub batch: usize,
    /// Longest interval between [`Sink::tick`] calls.
    pub tick: Duration,
}

/// An [`Output`] made of a `prepare` function, a bounded queue and a [`Sink`] on a thread of
/// its own.
pub struct QueuedOutput<I: Send + 'static> {
    name: String,
    prepare: Prepare<I>,
    tx: Sender<I>,
    counters: Arc<OutputCounters>,
    closed: Arc<AtomicBool>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl<I: Send + 'static> std::fmt::Debug for QueuedOutput<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedOutput")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static> QueuedOutput<I> {
    /// Starts the worker thread `out-NAME` around `sink`.
    pub fn start<S: Sink<Item = I>>(
        name: &str,
        settings: QueueSettings,
        prepare: Prepare<I>,
        sink: S,
    ) -> std::io::Result<QueuedOutput<I>> {
        let (tx, rx) = crossbeam_channel::bounded(settings.capacity.max(1));
        let counters = Arc::new(OutputCounters::default());
        let closed = Arc::new(AtomicBool::new(false));
        let worker = {
            let counters = counters.clone();
            let closed = closed.clone();
            std::thread::Builder::new()
                .name(format!("out-{name}"))
                .spawn(move || {
                    // Below the receivers, like the writers: a late output costs a shed
                    // record at worst, a late receiver loses packets.
                    crate::collector::lower_thread_priority();
                    run_sink(sink, &rx, settings, &counters, &closed)
                })?
        };
        Ok(QueuedOutput {
            name: name.to_owned(),
            prepare,
            tx,
            counters,
            closed,
            worker: Mutex::new(Some(worker)),
        })
    }
}

fn run_sink<S: Sink>(
    mut sink: S,
    rx: &Receiver<S::Item>,
    settings: QueueSettings,
    counters: &OutputCounters,
    closed: &AtomicBool,
) {
    let batch_max = settings.batch.max(1);
    let mut batch: Vec<S::Item> = Vec::with_capacity(batch_max.min(4096));
    let mut last_tick = Instant::now();
    loop {
        let wait = settings.tick.saturating_sub(last_tick.elapsed());
        let first = rx.recv_timeout(wait);
        match first {
            Ok(item) => {
                batch.push(item);
                while batch.len() < batch_max {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                counters.set_queued(rx.len() as u64);
                let n = batch.len();
                let delivered = sink.write(&mut batch).min(n);
                batch.clear();
                counters.sent(delivered as u64);
                counters.dropped(DropReason::Failed, (n - delivered) as u64);
            }
            Err(RecvTimeoutError::Timeout) => {
                if closed.load(Ordering::Acquire) && rx.is_empty() {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= settings.tick {
            sink.tick();
            last_tick = Instant::now();
        }
    }
    counters.set_queued(0);
    sink.finish();
}

impl<I: Send + 'static> Output for QueuedOutput<I> {
    fn name(&self) -> &str {
        &self.name
    }

    fn offer(&self, record: &Record, rtcp: &ParsedRtcp) {
        let Some(item) = (self.prepare)(record, rtcp) else {
            return;
        };
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.counters.dropped(DropReason::QueueFull, 1),
            Err(TrySendError::Disconnected(_)) => self.counters.dropped(DropReason::Closed, 1),
        }
    }

    fn stats(&self) -> OutputStats {
        self.counters.stats()
    }

    fn close(&self, deadline: Duration) {
        self.closed.store(true, Ordering::Release);
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        let Some(handle) = handle else {
            return;
        };
        let started = Instant::now();
        while !handle.is_finished() && started.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if handle.is_finished() {
            if handle.join().is_err() {
                tracing::error!(output = %self.name, "an output worker panicked");
            }
        } else {
            tracing::warn!(output = %self.name, queued = self.tx.len(),
                "output worker still busy at shutdown; leaving it");
        }
    }
}

/// The outputs of a collector, offered every accepted record in order of registration.
#[derive(Default, Clone)]
pub struct Outputs(Arc<Vec<Arc<dyn Output>>>);

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|o| o.name()))
            .finish()
    }
}

impl Outputs {
    /// The given outputs.
    pub fn new(outputs: Vec<Arc<dyn Output>>) -> Outputs {
        Outputs(Arc::new(outputs))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Offers a record to every output.
    pub fn offer(&self, record: &Record, rtcp: &ParsedRtcp) {
        for o in self.0.iter() {
            o.offer(record, rtcp);
        }
    }

    /// Closes every output, each waiting at most `deadline` for its worker.
    pub fn close(&self, deadline: Duration) {
        for o in self.0.iter() {
            o.close(deadline);
        }
    }

    /// Each output's name and counters.
    pub fn stats(&self) -> Vec<(String, OutputStats)> {
        self.0
            .iter()
            .map(|o| (o.name().to_owned(), o.stats()))
            .collect()
    }

    /// Appends `hepstack_output_sent_total`, `hepstack_output_dropped_total` and
    /// `hepstack_output_queued` for every output in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let all = self.stats();
        if all.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP hepstack_output_sent_total Records an output delivered (KPI engine: tracked; Loki: accepted)\n# TYPE hepstack_output_sent_total counter");
        for (name, st) in &all {
            let _ = writeln!(
                out,
                "hepstack_output_sent_total{{output=\"{name}\"}} {}",
                st.sent
            );
        }
        let _ = writeln!(out, "# HELP hepstack_output_dropped_total Records an output dropped, by reason (queue_full: shed because its worker could not keep up)\n# TYPE hepstack_output_dropped_total counter");
        for (name, st) in &all {
            for why in DropReason::ALL {
                let _ = writeln!(
                    out,
                    "hepstack_output_dropped_total{{output=\"{name}\",reason=\"{}\"}} {}",
                    why.label(),
                    st.dropped(why)
                );
            }
        }
        let _ = writeln!(out, "# HELP hepstack_output_queued Records waiting in an output's queue\n# TYPE hepstack_output_queued gauge");
        for (name, st) in &all {
            let _ = writeln!(
                out,
                "hepstack_output_queued{{output=\"{name}\"}} {}",
                st.queued
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that blocks until released, then counts what it got.
    struct Gate {
        open: Arc<AtomicBool>,
        got: Arc<AtomicU64>,
        ticks: Arc<AtomicU64>,
    }

    impl Sink for Gate {
        type Item = u64;
        fn write(&mut self, items: &mut Vec<u64>) -> usize {
            while !self.open.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.got.fetch_add(items.len() as u64, Ordering::Relaxed);
            items.len()
        }
        fn tick(&mut self) {
            self.ticks.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn record() -> Record {
        Record {
            time_us: 1,
            received_us: 1,
            hep_type: 1,
            hep_version: 3,
            ip_family: 2,
            ip_proto: 17,
            src_ip: [10, 0, 0, 1].into(),
            src_port: 5060,
            dst_ip: [10, 0, 0, 2].into(),
            dst_port: 5060,
            capture_id: 1,
            node: None,
            correlation_id: None,
            sid: "x".into(),
            profile: store::Profile::Default,
            sip: None,
            payload_json: None,
            raw: Vec::new(),
        }
    }

    #[test]
    fn a_stuck_worker_sheds_and_counts_and_never_blocks_the_offer() {
        let open = Arc::new(AtomicBool::new(false));
        let got = Arc::new(AtomicU64::new(0));
        let ticks = Arc::new(AtomicU64::new(0));
        let out = QueuedOutput::start(
            "gate",
            QueueSettings {
                capacity: 10,
                batch: 4,
                tick: Duration::from_millis(10),
            },
            Box::new(|r: &Record, _: &ParsedRtcp| (r.hep_type == 1).then_some(1u64)),
            Gate {
                open: open.clone(),
                got: got.clone(),
                ticks: ticks.clone(),
            },
        )
        .expect("start");
        let outputs = Outputs::new(vec![Arc::new(out)]);
        let r = record();
        let started = Instant::now();
        for _ in 0..1000 {
            outputs.offer(&r, &None);
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let o = &outputs.0[0];
        let shed = o.stats().dropped(DropReason::QueueFull);
        // At most the queue and one batch in the worker's hands were taken.
        assert!(shed >= 1000 - 10 - 4, "shed {shed}");
        open.store(true, Ordering::Release);
        // Idle for a while: the worker ticks.
        std::thread::sleep(Duration::from_millis(100));
        outputs.close(Duration::from_secs(10));
        assert_eq!(got.load(Ordering::Relaxed) + shed, 1000);
        assert_eq!(o.stats().sent, got.load(Ordering::Relaxed));
        assert!(ticks.load(Ordering::Relaxed) > 0);
        let mut text = String::new();
        outputs.render(&mut text);
        assert!(text.contains(&format!(
            "hepstack_output_dropped_total{{output=\"gate\",reason=\"queue_full\"}} {shed}"
        )));
        // Closed: further offers are counted, not queued.
        outputs.offer(&r, &None);
        assert_eq!(o.stats().dropped(DropReason::Closed), 1);
    }
}
