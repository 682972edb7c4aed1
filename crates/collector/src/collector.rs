//! [`Collector`]: assembles listeners, pipeline, writers and spool; [`CollectorHandle`] waits
//! for shutdown and drains.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use store::Store;
use tokio_util::sync::CancellationToken;

use ingest::{AuthKey, BoundListeners, ListenError, Listeners, PacketHandler, Transport};

use crate::config::{CollectorConfig, ConfigError};
use crate::metrics::Metrics;
use crate::output::{Output, Outputs};
use crate::pipeline::Pipeline;
use crate::writer::{BatchSpool, Ingress, RecordObserver, SpoolFailure};

/// Longest wait at shutdown for an output's worker to deliver what it holds.
const OUTPUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

impl PacketHandler for Pipeline {
    fn handle(
        &self,
        frame: &[u8],
        transport: Transport,
        auth: Option<&AuthKey>,
        received_us: i64,
        now: Instant,
    ) {
        self.process(frame, transport, auth, received_us, now);
    }

    fn congested(&self) -> bool {
        self.ingress_congested()
    }
}

/// Passes every frame to each handler in turn.
struct Tee(Vec<Arc<dyn PacketHandler>>);

impl PacketHandler for Tee {
    fn handle(
        &self,
        frame: &[u8],
        transport: Transport,
        auth: Option<&AuthKey>,
        received_us: i64,
        now: Instant,
    ) {
        for h in &self.0 {
            h.handle(frame, transport, auth, received_us, now);
        }
    }

    fn congested(&self) -> bool {
        self.0.iter().any(|h| h.congested())
    }
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid collector configuration: {0}")]
    Config(#[from] ConfigError),
    /// The SIP indexer configuration is invalid.
    #[error("invalid SIP indexer configuration: {0}")]
    Indexer(#[from] sip::ConfigError),
    /// The listeners could not start (TLS material, sockets, threads).
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The spool cannot be opened.
    #[error("cannot open the spool: {0}")]
    Spool(#[from] spool::SpoolError),
    /// A socket could not be handed to tokio or configured.
    #[error("listener setup: {0}")]
    Io(#[from] std::io::Error),
    /// A thread could not be started.
    #[error("cannot start thread {name}: {source}")]
    Thread {
        /// Thread name.
        name: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The on-disk `spool::Spool` as a [`BatchSpool`].
#[derive(Debug)]
pub struct DiskSpool {
    spool: spool::Spool,
    peeked: Option<spool::SpoolPosition>,
}

impl DiskSpool {
    /// Opens (creating if needed) the spool in `dir`.
    pub fn open(dir: &Path, cfg: spool::SpoolConfig) -> Result<DiskSpool, spool::SpoolError> {
        Ok(DiskSpool {
            spool: spool::Spool::open(dir, cfg)?,
            peeked: None,
        })
    }
}

fn spool_failure(e: spool::SpoolError) -> SpoolFailure {
    match e {
        spool::SpoolError::Full | spool::SpoolError::EntryTooLarge { .. } => SpoolFailure::Full,
        other => SpoolFailure::Other(other.to_string()),
    }
}

impl BatchSpool for DiskSpool {
    fn append(&mut self, entry: &[u8]) -> Result<(), SpoolFailure> {
        self.spool.append(entry).map_err(spool_failure)
    }
    fn peek(&mut self) -> Result<Option<Vec<u8>>, SpoolFailure> {
        match self.spool.peek().map_err(spool_failure)? {
            Some((pos, entry)) => {
                self.peeked = Some(pos);
                Ok(Some(entry))
            }
            None => {
                self.peeked = None;
                Ok(None)
            }
        }
    }
    fn ack_peeked(&mut self) -> Result<(), SpoolFailure> {
        match self.peeked.take() {
            Some(pos) => self.spool.ack(pos).map_err(spool_failure),
            None => Ok(()),
        }
    }
    fn bytes(&self) -> u64 {
        self.spool.bytes()
    }
    fn len(&self) -> u64 {
        self.spool.len()
    }
    fn sync_if_due(&mut self) -> Result<(), SpoolFailure> {
        self.spool.sync_if_due().map_err(spool_failure)
    }
    fn sync(&mut self) -> Result<(), SpoolFailure> {
        self.spool.sync().map_err(spool_failure)
    }
}

/// Builder of the ingest side. `Collector::new(config, store)`, optionally a spool and
/// observers, then [`Collector::start`].
pub struct Collector {
    config: CollectorConfig,
    store: Arc<dyn Store>,
    spool: Option<Box<dyn BatchSpool>>,
    observers: Vec<Arc<dyn RecordObserver>>,
    outputs: Vec<Arc<dyn Output>>,
    taps: Vec<Arc<dyn PacketHandler>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("config", &self.config)
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Validates the configuration. Without a spool (see [`Collector::open_spool`] and
    /// [`Collector::with_spool`]) batches the store cannot take are dropped (counted).
    pub fn new(config: CollectorConfig, store: Arc<dyn Store>) -> Result<Collector, StartError> {
        config.validate()?;
        Ok(Collector {
            config,
            store,
            spool: None,
            observers: Vec::new(),
            outputs: Vec::new(),
            taps: Vec::new(),
            metrics: Arc::new(Metrics::new()),
        })
    }

    /// Opens the on-disk spool at `spool.dir`, or `<data_dir>/spool` when unset. Batches left
    /// from an earlier run are replayed into the store after start.
    pub fn open_spool(mut self, data_dir: &Path) -> Result<Collector, StartError> {
        let dir = self.config.spool.resolve_dir(data_dir);
        let disk = DiskSpool::open(&dir, self.config.spool.spool_config())?;
        if disk.len() > 0 {
            tracing::info!(dir = %dir.display(), batches = disk.len(), bytes = disk.bytes(),
                "spooled batches from an earlier run will be replayed");
        }
        self.spool = Some(Box::new(disk));
        Ok(self)
    }

    /// Uses the given spool (e.g. a [`crate::MemorySpool`] in tests).
    pub fn with_spool(mut self, spool: Box<dyn BatchSpool>) -> Collector {
        self.spool = Some(spool);
        self
    }

    /// Adds an observer called with every batch of stored records (KPIs, exports).
    pub fn with_observer(mut self, observer: Arc<dyn RecordObserver>) -> Collector {
        self.observers.push(observer);
        self
    }

    /// Adds an output, offered every record the pipeline accepts (see [`crate::output`]).
    pub fn with_output(mut self, output: Arc<dyn Output>) -> Collector {
        self.outputs.push(output);
        self
    }

    /// Adds a handler that sees every frame the listeners read, after the pipeline, on the
    /// receiving thread or task (HEP mirroring: `hepstack serve` forwards a copy through the
    /// relay rules). It must not block.
    pub fn with_tap(mut self, tap: Arc<dyn PacketHandler>) -> Collector {
        self.taps.push(tap);
        self
    }

    /// The metrics registry (also available from the handle).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Convenience for `Collector::new(config, store)?.start(listeners, shutdown)` without a
    /// spool.
    pub fn start_simple(
        config: CollectorConfig,
        listeners: BoundListeners,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Result<CollectorHandle, StartError> {
        Collector::new(config, store)?.start(listeners, shutdown)
    }

    /// Starts receiving. Must be called within a tokio runtime (the TCP/TLS listeners are tokio
    /// tasks; UDP receivers, writers and the replayer are OS threads). Cancelling `shutdown`
    /// stops the listeners; [`CollectorHandle::join`] then drains everything.
    pub fn start(
        self,
        listeners: BoundListeners,
        shutdown: CancellationToken,
    ) -> Result<CollectorHandle, StartError> {
        let Collector {
            config,
            store,
            spool,
            observers,
            outputs,
            taps,
            metrics,
        } = self;
        let outputs = Outputs::new(outputs);
        // Refuse unusable TLS material before any thread starts.
        if !listeners.tls.is_empty() {
            ingest::tls_server_config(&config.tls).map_err(ListenError::from)?;
        }
        let writer_threads = match config.writer.writer_threads {
            0 => store.write_parallelism().clamp(1, 64),
            n => n,
        };
        let ingress = Ingress::new(
            &config.writer,
            config.spool.zstd_level,
            writer_threads,
            store,
            spool,
            observers,
            outputs.clone(),
            metrics.clone(),
        );
        let pipeline = Arc::new(Pipeline::new(
            &config.pipeline,
            metrics.clone(),
            ingress.clone(),
        )?);

        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(f)
                .map_err(|source| StartError::Thread { name, source })
        };
        let mut writers = Vec::new();
        for i in 0..writer_threads {
            let ingress = ingress.clone();
            writers.push(spawn(
                format!("hep-writer-{i}"),
                Box::new(move || {
                    lower_thread_priority();
                    ingress.run_writer()
                }),
            )?);
        }
        let replayer_stop = Arc::new(AtomicBool::new(false));
        let replayer = {
            let ingress = ingress.clone();
            let stop = replayer_stop.clone();
            spawn(
                "hep-replayer".into(),
                Box::new(move || {
                    lower_thread_priority();
                    ingress.run_replayer(&stop)
                }),
            )?
        };

        let handler: Arc<dyn PacketHandler> = if taps.is_empty() {
            pipeline
        } else {
            let mut all: Vec<Arc<dyn PacketHandler>> = vec![pipeline];
            all.extend(taps);
            Arc::new(Tee(all))
        };
        let listeners = ingest::start_listeners(
            listeners,
            &config.listeners(),
            handler,
            metrics.listener(),
            shutdown.clone(),
        )?;

        Ok(CollectorHandle {
            metrics,
            outputs,
            shutdown,
            listeners,
            ingress,
            writers,
            replayer,
            replayer_stop,
        })
    }
}

/// A running collector.
pub struct CollectorHandle {
    metrics: Arc<Metrics>,
    outputs: Outputs,
    shutdown: CancellationToken,
    listeners: Listeners,
    ingress: Arc<Ingress>,
    writers: Vec<JoinHandle<()>>,
    replayer: JoinHandle<()>,
    replayer_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for CollectorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorHandle").finish_non_exhaustive()
    }
}

impl CollectorHandle {
    /// The metrics registry.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The outputs (for their metrics).
    pub fn outputs(&self) -> Outputs {
        self.outputs.clone()
    }

    /// Waits for the shutdown token, then drains: the listeners stop (UDP receivers first
    /// process what the kernel already queued, connections what they already read), the
    /// writers empty the queue into the store (or the spool), the overflow buffer is flushed and
    /// the spool synced. Returns when everything received is stored, spooled or counted.
    pub async fn join(self) {
        self.shutdown.cancelled().await;
        let CollectorHandle {
            listeners,
            outputs,
            ingress,
            writers,
            replayer,
            replayer_stop,
            ..
        } = self;
        listeners.join().await;
        let drained = tokio::task::spawn_blocking(move || {
            ingress.close();
            for w in writers {
                if w.join().is_err() {
                    tracing::error!("a writer thread panicked");
                }
            }
            replayer_stop.store(true, Ordering::Release);
            if replayer.join().is_err() {
                tracing::error!("the replayer thread panicked");
            }
            ingress.finish();
            // Nothing is offered any more: let each output deliver what it holds.
            outputs.close(OUTPUT_DRAIN);
        })
        .await;
        if drained.is_err() {
            tracing::error!("collector drain task failed");
        }
    }
}

/// How much lower than the receivers the writers and the replayer run (nice levels).
const WRITER_NICE_OFFSET: i32 = 5;

/// The lowest priority `nice` can express.
const NICE_MAX: i32 = 19;

/// How a thread at nice `current` goes below it: `Nice(n)` sets nice `n`; `Idle` switches to
/// `SCHED_IDLE` (a weight below nice 19), for a thread that already runs at nice 19.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lowering {
    Nice(i32),
    Idle,
}

fn lowering_from(current: i32) -> Lowering {
    let target = current.saturating_add(WRITER_NICE_OFFSET).min(NICE_MAX);
    if target > current {
        Lowering::Nice(target)
    } else {
        Lowering::Idle
    }
}

/// Gives the calling thread a lower scheduling priority than the thread that spawned it (nice
/// +5, relative to the inherited nice, so a collector started under `nice` keeps the order):
/// when the CPU is short, a packet the kernel drops from a full socket buffer is lost, while a
/// batch a writer stores later is not (the queue and the spool hold it).
pub(crate) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // The raw getpriority syscall returns 20 - nice (1..=40) and never a negative value on
        // success, unlike the libc wrapper, whose -1 is both nice -1 and an error. `who = 0` is
        // the calling thread on Linux (nice values are per thread).
        // SAFETY: getpriority and setpriority read and set a scheduling attribute of the calling
        // thread; sched_setscheduler is given a valid parameter struct. No memory preconditions.
        // Failure only leaves the inherited priority.
        unsafe {
            let raw = libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0);
            let Ok(raw) = i32::try_from(raw) else { return };
            if raw < 1 {
                return;
            }
            match lowering_from(20 - raw) {
                Lowering::Nice(nice) => {
                    libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                }
                Lowering::Idle => {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{lowering_from, Lowering};

    #[test]
    fn the_writers_go_below_the_inherited_priority() {
        assert_eq!(lowering_from(0), Lowering::Nice(5));
        assert_eq!(lowering_from(-20), Lowering::Nice(-15));
        assert_eq!(lowering_from(10), Lowering::Nice(15));
        assert_eq!(lowering_from(17), Lowering::Nice(19));
        // No nice level is left below 19: SCHED_IDLE still runs below the receivers.
        assert_eq!(lowering_from(19), Lowering::Idle);
    }
}
