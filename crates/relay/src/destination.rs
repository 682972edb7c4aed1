//! One destination: a bounded queue filled by the receive threads without ever blocking, and a
//! worker thread that empties it through a [`sender::HepSender`] (UDP with `sendmmsg`, TCP or
//! TLS), reconnecting with exponential backoff. Health and counters are shared atomics read
//! by the router (failover) and by `/metrics`.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use sender::{HepSender, SenderConfig, Target, Transport};

use crate::config::{ConfigError, DestinationConfig};

/// A queued packet: shared by every destination it fans out to.
pub type Packet = Arc<[u8]>;

/// How long an idle worker waits for a packet before looking at its stop flag.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Milliseconds since the first call (a process-wide monotonic clock for the health deadline).
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Counters and health of a destination.
#[derive(Debug, Default)]
pub struct DestinationStats {
    /// Packets handed to the kernel (UDP) or written to the connection (TCP/TLS).
    pub forwarded: AtomicU64,
    /// Bytes of those packets.
    pub bytes: AtomicU64,
    /// Packets dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Packets lost sending: UDP sends the kernel refused, stream data discarded when the
    /// relay stopped while the destination was down.
    pub dropped_send: AtomicU64,
    /// Successful reconnections after a failure.
    pub reconnects: AtomicU64,
    /// Failed connection attempts.
    pub connect_failures: AtomicU64,
    up: AtomicBool,
    down_until_ms: AtomicU64,
}

impl DestinationStats {
    /// Whether packets should be sent here now: not failing to connect (streams; a destination
    /// not yet tried counts as healthy), and not reported unreachable recently (UDP).
    pub fn is_healthy(&self) -> bool {
        self.up.load(Relaxed) && clock_ms() >= self.down_until_ms.load(Relaxed)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Relaxed);
    }

    fn down_for(&self, ms: u64) {
        self.down_until_ms
            .store(clock_ms().saturating_add(ms), Relaxed);
    }
}

/// A destination with its queue and worker.
pub struct Destination {
    name: String,
    config: DestinationConfig,
    target: Target,
    tx: Sender<Packet>,
    stats: Arc<DestinationStats>,
    stop: Arc<AtomicBool>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("name", &self.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Parses and checks a destination's settings.
pub(crate) fn parse_target(name: &str, cfg: &DestinationConfig) -> Result<Target, ConfigError> {
    let bad = |why: String| ConfigError::Destination {
        name: name.into(),
        why,
    };
    let target = Target::from_str(&cfg.url).map_err(|e| bad(e.to_string()))?;
    if cfg.queue_capacity == 0 {
        return Err(bad("queue_capacity must be at least 1".into()));
    }
    if cfg.batch_size == 0 {
        return Err(bad("batch_size must be at least 1".into()));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(bad(
            "names may only use letters, digits, '-', '_' and '.'".into()
        ));
    }
    Ok(target)
}

impl Destination {
    /// Creates the queue and starts the worker thread.
    pub(crate) fn start(
        name: &str,
        config: &DestinationConfig,
        target: Target,
    ) -> std::io::Result<Arc<Destination>> {
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity);
        // Healthy until shown otherwise (a failed connect, an ICMP unreachable): if destinations
        // started out down until their worker first connected, the packets of the first
        // milliseconds would fail over to other members and split their calls.
        let stats = Arc::new(DestinationStats {
            up: AtomicBool::new(true),
            ..DestinationStats::default()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stats = stats.clone();
            let stop = stop.clone();
            let config = config.clone();
            let target = target.clone();
            let thread_name = format!("relay-{name}");
            std::thread::Builder::new()
                .name(thread_name.chars().take(15).collect())
                .spawn(move || run_worker(target, config, rx, stats, stop))?
        };
        Ok(Arc::new(Destination {
            name: name.to_string(),
            config: config.clone(),
            target,
            tx,
            stats,
            stop,
            worker: Mutex::new(Some(worker)),
        }))
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings it was started with (a reload keeps a destination whose settings are
    /// unchanged, with its queue and connection).
    pub fn config(&self) -> &DestinationConfig {
        &self.config
    }

    /// Where it sends.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Counters and health.
    pub fn stats(&self) -> &DestinationStats {
        &self.stats
    }

    /// Packets waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.len()
    }

    /// Queues a packet; when the queue is full the packet is dropped and counted.
    pub fn enqueue(&self, packet: Packet) {
        match self.tx.try_send(packet) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped_queue_full.fetch_add(1, Relaxed);
            }
        }
    }

    /// Asks the worker to finish: it sends what is queued (giving up at once on a destination
    /// that is down) and exits once every router holding this destination is gone.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Relaxed);
    }

    /// The worker thread, once (for joining at shutdown).
    pub(crate) fn take_worker(&self) -> Option<JoinHandle<()>> {
        self.worker.lock().ok().and_then(|mut w| w.take())
    }
}

fn sender_config(cfg: &DestinationConfig) -> SenderConfig {
    SenderConfig {
        udp_send_buffer: cfg.udp_send_buffer,
        write_buffer_bytes: cfg.write_buffer_bytes,
        connect_timeout_ms: cfg.connect_timeout_ms,
        // The worker runs its own backoff so that it can keep draining and watch its stop flag.
        reconnect_attempts: 0,
        reconnect_backoff_ms: cfg.reconnect_backoff_ms,
        reconnect_backoff_max_ms: cfg.reconnect_backoff_max_ms,
        tls: cfg.tls.clone(),
    }
}

fn run_worker(
    target: Target,
    cfg: DestinationConfig,
    rx: Receiver<Packet>,
    stats: Arc<DestinationStats>,
    stop: Arc<AtomicBool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(%target, error = %e, "cannot start the destination worker");
            return;
        }
    };
    runtime.block_on(Worker::new(target, cfg, rx, stats, stop).run());
}

struct Worker {
    target: Target,
    cfg: DestinationConfig,
    rx: Receiver<Packet>,
    stats: Arc<DestinationStats>,
    stop: Arc<AtomicBool>,
    sender: Option<HepSender>,
    backoff_ms: u64,
    /// Packets taken from the queue and not yet handed to the sender.
    batch: Vec<Packet>,
    /// The queue is disconnected (no router holds the destination any more).
    closed: bool,
    was_up: bool,
}

impl Worker {
    fn new(
        target: Target,
        cfg: DestinationConfig,
        rx: Receiver<Packet>,
        stats: Arc<DestinationStats>,
        stop: Arc<AtomicBool>,
    ) -> Worker {
        Worker {
            backoff_ms: cfg.reconnect_backoff_ms.max(1),
            batch: Vec::with_capacity(cfg.batch_size),
            target,
            cfg,
            rx,
            stats,
            stop,
            sender: None,
            closed: false,
            was_up: false,
        }
    }

    fn stopping(&self) -> bool {
        self.closed || self.stop.load(Relaxed)
    }

    async fn run(mut self) {
        loop {
            if !self.ensure_connected().await {
                if self.stopping() {
                    self.give_up();
                    return;
                }
                continue;
            }
            if self.batch.is_empty() && !self.fill_batch() {
                // Queue empty and disconnected: everything is out.
                self.flush().await;
                if let Some(s) = self.sender.take() {
                    let _ = s.close().await;
                }
                return;
            }
            if self.batch.is_empty() {
                continue;
            }
            self.send_batch().await;
        }
    }

    /// Connects (or reconnects) when needed; false after a failed attempt (having waited the
    /// backoff).
    async fn ensure_connected(&mut self) -> bool {
        let result = match &mut self.sender {
            Some(s) if !s.is_broken() => return true,
            Some(s) => s.reconnect_once().await.map(|()| None),
            None => HepSender::connect(self.target.clone(), sender_config(&self.cfg))
                .await
                .map(Some),
        };
        match result {
            Ok(fresh) => {
                if let Some(s) = fresh {
                    self.sender = Some(s);
                }
                if self.was_up || self.stats.connect_failures.load(Relaxed) > 0 {
                    self.stats.reconnects.fetch_add(1, Relaxed);
                    tracing::info!(target = %self.target, "destination reconnected");
                }
                self.was_up = true;
                self.stats.set_up(true);
                self.backoff_ms = self.cfg.reconnect_backoff_ms.max(1);
                true
            }
            Err(e) => {
                self.stats.set_up(false);
                self.stats.connect_failures.fetch_add(1, Relaxed);
                tracing::debug!(target = %self.target, error = %e, "destination connect failed");
                if self.stop.load(Relaxed) {
                    return false;
                }
                self.sleep_backoff().await;
                false
            }
        }
    }

    async fn sleep_backoff(&mut self) {
        let until = Instant::now() + Duration::from_millis(self.backoff_ms);
        self.backoff_ms = (self.backoff_ms * 2).min(self.cfg.reconnect_backoff_max_ms.max(1));
        while Instant::now() < until && !self.stop.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(20).min(until - Instant::now())).await;
        }
    }

    /// Takes up to a batch from the queue, waiting a little when it is empty. False once the
    /// queue is empty and disconnected.
    fn fill_batch(&mut self) -> bool {
        match self.rx.recv_timeout(IDLE_WAIT) {
            Ok(p) => self.batch.push(p),
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                return false;
            }
        }
        while self.batch.len() < self.cfg.batch_size {
            match self.rx.try_recv() {
                Ok(p) => self.batch.push(p),
                Err(_) => break,
            }
        }
        true
    }

    async fn send_batch(&mut self) {
        let Some(sender) = self.sender.as_mut() else {
            return;
        };
        let before = sender.stats();
        if sender.target().transport == Transport::Udp {
            let result = sender.send_batch(&self.batch).await;
            let after = sender.stats();
            let lost = after.udp_errors - before.udp_errors;
            if lost > 0 {
                // ICMP unreachable: nobody listens there now.
                self.stats.down_for(self.cfg.udp_down_ms);
                self.stats.dropped_send.fetch_add(lost, Relaxed);
            }
            if let Err(e) = result {
                tracing::debug!(target = %self.target, error = %e, "UDP send failed");
                let unsent = (self.batch.len() as u64)
                    .saturating_sub(after.messages - before.messages)
                    .saturating_sub(lost);
                self.stats.dropped_send.fetch_add(unsent, Relaxed);
                self.stats.down_for(self.cfg.udp_down_ms);
            }
            self.account(before, after);
            self.batch.clear();
            return;
        }
        // Streams: hand packets over one by one so that on a failure the ones not yet taken
        // stay in the batch; the ones taken stay in the sender's buffer and are written after
        // reconnecting.
        let mut taken = 0;
        let mut failed = false;
        for p in &self.batch {
            taken += 1;
            if sender.send(p).await.is_err() {
                failed = true;
                break;
            }
        }
        self.batch.drain(..taken);
        if !failed && self.rx.is_empty() {
            failed = sender.flush().await.is_err();
        }
        let after = sender.stats();
        self.account(before, after);
        if failed {
            self.stats.set_up(false);
            tracing::warn!(target = %self.target, "destination connection failed; reconnecting");
        }
    }

    async fn flush(&mut self) {
        if let Some(sender) = self.sender.as_mut() {
            let before = sender.stats();
            let _ = sender.flush().await;
            let after = sender.stats();
            self.account(before, after);
        }
    }

    fn account(&self, before: sender::SenderStats, after: sender::SenderStats) {
        self.stats
            .forwarded
            .fetch_add(after.messages - before.messages, Relaxed);
        self.stats
            .bytes
            .fetch_add(after.bytes - before.bytes, Relaxed);
    }

    /// Stopping while the destination is down: what is left is lost, and counted.
    fn give_up(&mut self) {
        let mut lost = self.batch.len() as u64;
        self.batch.clear();
        if let Some(s) = self.sender.as_mut() {
            lost += s.discard_pending();
        }
        while self.rx.try_recv().is_ok() {
            lost += 1;
        }
        if lost > 0 {
            tracing::warn!(target = %self.target, lost, "destination down at shutdown; packets dropped");
            self.stats.dropped_send.fetch_add(lost, Relaxed);
        }
    }
}
