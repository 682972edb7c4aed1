//! HEP over TCP and TLS: accept loops with a connection limit, one tokio task per connection,
//! [`hep::StreamFramer`] framing with resynchronisation, idle timeouts, and the rustls server
//! configuration (optional client-certificate verification).

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{now_us, ReceiveClock};
use crate::config::{AuthKey, TlsConfig};
use crate::listeners::PacketHandler;
use crate::metrics::{ListenerMetrics as Metrics, Transport};
use crate::udp::BindError;

/// Bytes read from a connection per call.
const READ_CHUNK: usize = 64 * 1024;
/// Most bytes a framer buffers: one read plus the largest pending partial frame always fit.
const FRAMER_BUFFER: usize = 256 * 1024;

/// Binds a TCP listener (SO_REUSEADDR, backlog 1024), ready for [`crate::BoundListeners`].
pub fn bind_tcp(addr: SocketAddr) -> Result<StdTcpListener, BindError> {
    let err = |source| BindError { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    Ok(socket.into())
}

/// The TLS listener cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A setting is missing.
    #[error("tls.{0} is required")]
    Missing(&'static str),
    /// The certificate, key or client CA file is unusable.
    #[error(transparent)]
    Material(#[from] tls::TlsError),
}

/// Builds the rustls server configuration from the certificate, key and optional client CA
/// files (see [`tls::server_config`]).
pub fn tls_server_config(cfg: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let cert_file = cfg
        .cert_file
        .as_deref()
        .ok_or(TlsSetupError::Missing("cert_file"))?;
    let key_file = cfg
        .key_file
        .as_deref()
        .ok_or(TlsSetupError::Missing("key_file"))?;
    Ok(tls::server_config(
        cert_file,
        key_file,
        cfg.client_ca_file.as_deref(),
    )?)
}

/// What a stream listener needs besides its socket.
#[derive(Clone)]
pub(crate) struct StreamSettings {
    pub(crate) transport: Transport,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) limit: Arc<Semaphore>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_frame: usize,
    /// Longest pause of reading per read while the handler is congested.
    pub(crate) max_backpressure: Duration,
    pub(crate) auth: Option<AuthKey>,
}

/// Accepts connections until shutdown; each is served by its own task on `tracker`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    settings: StreamSettings,
    handler: Arc<dyn PacketHandler>,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = settings.limit.clone().try_acquire_owned() else {
            metrics.connection_rejected(settings.transport);
            tracing::debug!(%peer, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let settings = settings.clone();
        let handler = handler.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            metrics.connection_delta(settings.transport, 1);
            serve_connection(stream, peer, &settings, &*handler, &metrics, &shutdown).await;
            metrics.connection_delta(settings.transport, -1);
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    settings: &StreamSettings,
    handler: &dyn PacketHandler,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    match &settings.tls {
        None => serve_stream(stream, peer, settings, handler, metrics, shutdown).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                _ = shutdown.cancelled() => return,
                h = tokio::time::timeout(settings.idle_timeout, acceptor.accept(stream)) => h,
            };
            match handshake {
                Ok(Ok(tls)) => serve_stream(tls, peer, settings, handler, metrics, shutdown).await,
                Ok(Err(e)) => {
                    metrics.connection_rejected(settings.transport);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.connection_rejected(settings.transport);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

/// Reads HEP frames from one connection until EOF, error, idle timeout, too much garbage, or
/// shutdown. Frames already received are processed before returning.
async fn serve_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    settings: &StreamSettings,
    handler: &dyn PacketHandler,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    let mut clock = ReceiveClock::default();
    let mut framer = hep::StreamFramer::new(hep::FramerConfig {
        max_frame_len: settings.max_frame,
        max_buffer: FRAMER_BUFFER,
    });
    // A peer sending this much garbage without one good frame is not speaking HEP.
    let garbage_limit = (4 * settings.max_frame as u64).max(64 * 1024);
    let mut garbage_since_frame = 0u64;
    let mut buf = vec![0u8; READ_CHUNK];
    let auth = settings.auth.as_ref();
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = tokio::time::timeout(settings.idle_timeout, stream.read(&mut buf)) => r,
        };
        let n = match read {
            Err(_) => {
                tracing::debug!(%peer, "idle timeout; closing");
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "read failed; closing");
                break;
            }
        };
        let skipped_before = framer.bytes_skipped();
        if framer.push(buf.get(..n).unwrap_or(&buf)).is_err() {
            // Cannot happen with the buffer sizes above (the framer drains below one frame),
            // but a stream that overflows it is closed rather than buffered without limit.
            tracing::debug!(%peer, "framer buffer full; closing");
            break;
        }
        let wall_us = now_us();
        let now = Instant::now();
        let mut frames = 0u64;
        while let Some(frame) = framer.next_frame() {
            frames += 1;
            let received_us = clock.stamp(wall_us);
            handler.handle(frame, settings.transport, auth, received_us, now);
        }
        let skipped = framer.bytes_skipped() - skipped_before;
        if skipped > 0 {
            metrics.stream_bytes_skipped(skipped);
        }
        if frames > 0 {
            garbage_since_frame = 0;
        }
        garbage_since_frame += skipped;
        if garbage_since_frame > garbage_limit {
            tracing::debug!(%peer, garbage_since_frame, "too much garbage; closing");
            break;
        }
        if frames > 0 && !settings.max_backpressure.is_zero() && handler.congested() {
            let waited = wait_while_congested(handler, settings.max_backpressure, shutdown).await;
            metrics.stream_backpressure(waited);
        }
    }
}

/// Pauses (without reading, so the peer's sends back up into its socket) until `handler` is
/// no longer congested, `max` has passed, or shutdown. Returns how long it waited.
async fn wait_while_congested(
    handler: &dyn PacketHandler,
    max: Duration,
    shutdown: &CancellationToken,
) -> Duration {
    let start = Instant::now();
    // 1 ms steps: a writer takes a whole batch off the queue at once, so the congestion ends
    // in a step, and a finer poll would only spend CPU the writers need.
    while handler.congested() && start.elapsed() < max {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_config_errors_are_typed() {
        let cfg = TlsConfig::default();
        assert!(matches!(
            tls_server_config(&cfg),
            Err(TlsSetupError::Missing("cert_file"))
        ));
        let cfg = TlsConfig {
            cert_file: Some("/nonexistent/cert.pem".into()),
            key_file: Some("/nonexistent/key.pem".into()),
            ..TlsConfig::default()
        };
        assert!(matches!(
            tls_server_config(&cfg),
            Err(TlsSetupError::Material(tls::TlsError::Read { .. }))
        ));
    }
}
