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
use crate::pipeline::Pipeline;
use crate::writer::{BatchSpool, Ingress, RecordObserver, SpoolFailure};

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
            taps,
            metrics,
        } = self;
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

    /// Waits for the shutdown token, then drains: the listeners stop (UDP receivers first
    /// process what the kernel already queued, connections what they already read), the
    /// writers empty the queue into the store (or the spool), the overflow buffer is flushed and
    /// the spool synced. Returns when everything received is stored, spooled or counted.
    pub async fn join(self) {
        self.shutdown.cancelled().await;
        let CollectorHandle {
            listeners,
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
        })
        .await;
        if drained.is_err() {
            tracing::error!("collector drain task failed");
        }
    }
}

/// Gives the calling thread a lower scheduling priority (nice +5) than the receivers: when the
/// CPU is short, a packet the kernel drops from a full socket buffer is lost, while a batch a
/// writer stores later is not (the queue and the spool hold it).
fn lower_thread_priority() {
    // SAFETY: setpriority has no memory-safety preconditions; `who = 0` is the calling thread
    // on Linux (nice values are per thread). Failure only leaves the default priority.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 5);
    }
}
