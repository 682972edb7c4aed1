//! [`start_listeners`]: the receive side alone, one `recvmmsg` thread per UDP socket and one
//! accept task per TCP/TLS listener, all feeding a [`PacketHandler`]; [`BoundListeners`] are
//! the sockets, bound before it starts.

use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AuthKey, ListenerConfig};
use crate::metrics::{ListenerMetrics, Transport};
use crate::stream::{accept_loop, bind_tcp, tls_server_config, StreamSettings, TlsSetupError};
use crate::udp::{bind_udp, run_udp, BindError};

/// What the listeners do with every HEP frame they read (a UDP datagram, or a frame cut out of a
/// TCP/TLS stream). Implemented by the collector's [`Pipeline`] and by the HEP relay.
///
/// Called on the UDP receive threads and the connection tasks, concurrently: it must be cheap
/// and must never block (hand slow work to a bounded queue).
pub trait PacketHandler: Send + Sync + 'static {
    /// Handles one frame received over `transport` at `received_us` (wall clock, µs since the
    /// epoch) / `now` (monotonic). `auth` is the key the listener requires, if any.
    fn handle(
        &self,
        frame: &[u8],
        transport: Transport,
        auth: Option<&AuthKey>,
        received_us: i64,
        now: Instant,
    );

    /// Whether frames should be handed over more slowly for now: stream receivers pause
    /// reading (up to their `max_backpressure_ms`) while this holds, so TCP flow control slows
    /// the sender. Default: never.
    fn congested(&self) -> bool {
        false
    }
}

/// Starts the receive side alone: one `recvmmsg` thread per UDP socket and one accept task per
/// TCP/TLS listener (one task per connection), all feeding `handler`. Must be called within a
/// tokio runtime. Connection counts and skipped stream bytes go to `metrics`. Cancelling
/// `shutdown` stops them; [`Listeners::join`] waits until every frame already read is handled.
pub fn start_listeners(
    listeners: BoundListeners,
    config: &ListenerConfig<'_>,
    handler: Arc<dyn PacketHandler>,
    metrics: Arc<ListenerMetrics>,
    shutdown: CancellationToken,
) -> Result<Listeners, ListenError> {
    let tls_acceptor = if listeners.tls.is_empty() {
        None
    } else {
        Some(tokio_rustls::TlsAcceptor::from(tls_server_config(
            config.tls,
        )?))
    };
    let mut receivers = Vec::new();
    for (i, socket) in listeners.udp.into_iter().enumerate() {
        let handler = handler.clone();
        let auth = config.udp.auth_key.clone();
        let batch = config.udp.batch_size;
        let token = shutdown.clone();
        let name = format!("hep-udp-{i}");
        receivers.push(
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || run_udp(socket, handler, auth, batch, token))
                .map_err(|source| ListenError::Thread { name, source })?,
        );
    }

    let tracker = TaskTracker::new();
    let mut stream_listeners = Vec::new();
    let tcp_settings = StreamSettings {
        transport: Transport::Tcp,
        tls: None,
        limit: Arc::new(Semaphore::new(config.tcp.max_connections)),
        idle_timeout: Duration::from_secs(config.tcp.idle_timeout_secs),
        max_frame: config.tcp.max_frame_bytes,
        max_backpressure: Duration::from_millis(config.tcp.max_backpressure_ms),
        auth: config.tcp.auth_key.clone(),
    };
    for l in listeners.tcp {
        l.set_nonblocking(true)?;
        stream_listeners.push((tokio::net::TcpListener::from_std(l)?, tcp_settings.clone()));
    }
    if let Some(acceptor) = tls_acceptor {
        let tls_settings = StreamSettings {
            transport: Transport::Tls,
            tls: Some(acceptor),
            limit: Arc::new(Semaphore::new(config.tls.max_connections)),
            idle_timeout: Duration::from_secs(config.tls.idle_timeout_secs),
            max_frame: config.tls.max_frame_bytes,
            max_backpressure: Duration::from_millis(config.tls.max_backpressure_ms),
            auth: config.tls.auth_key.clone(),
        };
        for l in listeners.tls {
            l.set_nonblocking(true)?;
            stream_listeners.push((tokio::net::TcpListener::from_std(l)?, tls_settings.clone()));
        }
    }
    for (listener, settings) in stream_listeners {
        tracker.spawn(accept_loop(
            listener,
            settings,
            handler.clone(),
            metrics.clone(),
            tracker.clone(),
            shutdown.clone(),
        ));
    }
    Ok(Listeners { receivers, tracker })
}

/// The running receive side started by [`start_listeners`].
pub struct Listeners {
    receivers: Vec<JoinHandle<()>>,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("udp_threads", &self.receivers.len())
            .finish_non_exhaustive()
    }
}

impl Listeners {
    /// After the shutdown token was cancelled: waits for the connection tasks (they handle what
    /// they already read) and the UDP threads (they handle what the kernel already queued).
    pub async fn join(self) {
        self.tracker.close();
        self.tracker.wait().await;
        let receivers = self.receivers;
        let joined = tokio::task::spawn_blocking(move || {
            for r in receivers {
                if r.join().is_err() {
                    tracing::error!("a UDP receive thread panicked");
                }
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("joining the UDP receive threads failed");
        }
    }
}

/// Sockets bound before the collector starts (so the binary can bind, drop privileges, and
/// tests can bind port 0).
#[derive(Debug, Default)]
pub struct BoundListeners {
    /// UDP sockets, each drained by its own thread.
    pub udp: Vec<UdpSocket>,
    /// TCP listeners.
    pub tcp: Vec<StdTcpListener>,
    /// TLS listeners (plain TCP sockets; the handshake is done per connection).
    pub tls: Vec<StdTcpListener>,
}

impl BoundListeners {
    /// Binds every address of the configuration: `udp.sockets_per_address` sockets per UDP
    /// address, one listener per TCP and TLS address.
    pub fn bind(config: &ListenerConfig<'_>) -> Result<BoundListeners, BindError> {
        let mut out = BoundListeners::default();
        for addr in &config.udp.addresses {
            out.udp.extend(bind_udp(
                *addr,
                config.udp.sockets_per_address,
                config.udp.receive_buffer_bytes,
            )?);
        }
        for addr in &config.tcp.addresses {
            out.tcp.push(bind_tcp(*addr)?);
        }
        for addr in &config.tls.addresses {
            out.tls.push(bind_tcp(*addr)?);
        }
        Ok(out)
    }

    /// Local addresses of the UDP sockets, TCP and TLS listeners (for logs and tests).
    pub fn local_addrs(&self) -> (Vec<SocketAddr>, Vec<SocketAddr>, Vec<SocketAddr>) {
        (
            self.udp
                .iter()
                .filter_map(|s| s.local_addr().ok())
                .collect(),
            self.tcp
                .iter()
                .filter_map(|s| s.local_addr().ok())
                .collect(),
            self.tls
                .iter()
                .filter_map(|s| s.local_addr().ok())
                .collect(),
        )
    }
}

/// Why the listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
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
