//! [`Relay`]: the live router behind a lock, as a [`ingest::PacketHandler`]; reload and
//! shutdown.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ingest::{AuthKey, PacketHandler, Transport};

use crate::config::{ConfigError, RoutingConfig};
use crate::metrics::{render, RelayCounters};
use crate::router::{Plan, Router};

/// Why the relay could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A destination worker thread could not be started.
    #[error("cannot start a destination worker: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running relay. Cheap to share (`Arc<Relay>`); its [`PacketHandler`] implementation is what
/// the listeners call for every frame.
pub struct Relay {
    router: RwLock<Arc<Router>>,
    counters: RelayCounters,
    /// Workers of destinations that are no longer configured; joined at shutdown.
    retired: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

impl Relay {
    /// Validates the routing and starts a worker per destination. Must not be called from
    /// within an async context that forbids blocking (it only spawns threads).
    pub fn start(cfg: &RoutingConfig) -> Result<Arc<Relay>, RelayError> {
        let plan = Plan::compile(cfg)?;
        let router = Router::start(plan, &Default::default(), &Default::default())?;
        Ok(Arc::new(Relay {
            router: RwLock::new(Arc::new(router)),
            counters: RelayCounters::default(),
            retired: Mutex::new(Vec::new()),
        }))
    }

    fn current(&self) -> Arc<Router> {
        match self.router.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the routing. Destinations whose settings are unchanged keep their queue and
    /// connection, so nothing in flight is lost; removed destinations send what they have
    /// queued, then stop. On error the running routing stays.
    pub fn reload(&self, cfg: &RoutingConfig) -> Result<(), RelayError> {
        let result = Plan::compile(cfg)
            .map_err(RelayError::from)
            .and_then(|plan| {
                let old = self.current();
                let links = old.running_links(&plan);
                let router = Router::start(plan, &old.running(), &links)?;
                Ok((old, router))
            });
        let (old, router) = match result {
            Ok(r) => r,
            Err(e) => {
                self.counters.reload_failures.fetch_add(1, Relaxed);
                return Err(e);
            }
        };
        let kept = router.running();
        {
            let mut slot = match self.router.write() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            *slot = Arc::new(router);
        }
        for (name, d) in old.running() {
            if kept.get(&name).is_some_and(|k| Arc::ptr_eq(k, &d)) {
                continue;
            }
            if let Some(w) = d.take_worker() {
                if let Ok(mut r) = self.retired.lock() {
                    r.push(w);
                }
            }
        }
        self.counters.reloads.fetch_add(1, Relaxed);
        Ok(())
    }

    /// The relay-wide counters.
    pub fn counters(&self) -> &RelayCounters {
        &self.counters
    }

    /// Prometheus text of every relay metric.
    pub fn render_metrics(&self) -> String {
        render(&self.counters, &self.current())
    }

    /// A destination's `(forwarded, dropped, queue depth, healthy)` by name (tests, `--check`).
    pub fn destination_status(&self, name: &str) -> Option<DestinationStatus> {
        let router = self.current();
        let d = router.destinations.iter().find(|d| d.name() == name)?;
        let s = d.stats();
        Some(DestinationStatus {
            forwarded: s.forwarded.load(Relaxed),
            dropped_queue_full: s.dropped_queue_full.load(Relaxed),
            dropped_send: s.dropped_send.load(Relaxed),
            reconnects: s.reconnects.load(Relaxed),
            queue_depth: d.queue_depth(),
            healthy: s.is_healthy(),
        })
    }

    /// Every destination's counters added up: what the relay as a whole forwarded, dropped
    /// and holds (`hepstack serve` reports HEP forwarding as the `forward` output with them).
    pub fn totals(&self) -> DestinationStatus {
        let router = self.current();
        let mut t = DestinationStatus {
            forwarded: 0,
            dropped_queue_full: 0,
            dropped_send: 0,
            reconnects: 0,
            queue_depth: 0,
            healthy: true,
        };
        for d in &router.destinations {
            let s = d.stats();
            t.forwarded += s.forwarded.load(Relaxed);
            t.dropped_queue_full += s.dropped_queue_full.load(Relaxed);
            t.dropped_send += s.dropped_send.load(Relaxed);
            t.reconnects += s.reconnects.load(Relaxed);
            t.queue_depth += d.queue_depth();
            t.healthy &= s.is_healthy();
        }
        t
    }

    /// Packets each member of `group` received so far, by member name.
    pub fn group_share(&self, group: &str) -> Option<Vec<(String, u64)>> {
        let router = self.current();
        let g = router.groups.iter().find(|g| g.plan.name == group)?;
        Some(
            g.plan
                .members
                .iter()
                .zip(&g.picks)
                .map(|(&m, n)| (router.destinations[m].name().to_string(), n.load(Relaxed)))
                .collect(),
        )
    }

    /// Stops after the listeners have stopped: every destination sends what is queued (a
    /// destination that is down gives up at once, counting its packets as dropped) and the
    /// workers are joined, waiting at most `timeout` in total.
    pub fn shutdown(&self, timeout: Duration) {
        let router = {
            let mut slot = match self.router.write() {
                Ok(w) => w,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::replace(&mut *slot, Arc::new(Router::empty()))
        };
        let mut workers: Vec<JoinHandle<()>> = router
            .destinations
            .iter()
            .filter_map(|d| {
                d.request_stop();
                d.take_worker()
            })
            .collect();
        if let Ok(mut r) = self.retired.lock() {
            workers.append(&mut r);
        }
        // The workers exit once their queue is disconnected, i.e. this router is gone.
        drop(router);
        let deadline = Instant::now() + timeout;
        for w in workers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            } else {
                tracing::warn!("a destination worker did not finish in time");
            }
        }
    }
}

/// A snapshot of one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationStatus {
    /// Packets sent.
    pub forwarded: u64,
    /// Packets dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Packets lost sending.
    pub dropped_send: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Packets queued.
    pub queue_depth: usize,
    /// Healthy now.
    pub healthy: bool,
}

impl PacketHandler for Relay {
    fn handle(
        &self,
        frame: &[u8],
        transport: Transport,
        auth: Option<&AuthKey>,
        _received_us: i64,
        _now: Instant,
    ) {
        let router = match self.router.read() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        router.route(frame, transport, auth, &self.counters);
    }
}
