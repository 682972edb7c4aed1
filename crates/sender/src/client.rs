//! The HEP client: one destination (`udp://`, `tcp://` or `tls://host:port`), batched writes,
//! reconnection of stream transports.
//!
//! * **UDP**: one datagram per message, sent with `sendmmsg(2)` in batches of up to
//!   [`UDP_BATCH`] messages, on a connected socket with a large send buffer. ICMP "port
//!   unreachable" reported back by the kernel (collector not up yet) is counted, and the
//!   message is sent once more before being counted as failed; UDP gives no delivery guarantee.
//! * **TCP / TLS**: messages are appended to a write buffer of
//!   [`SenderConfig::write_buffer_bytes`] which is written when full and on
//!   [`HepSender::flush`]; HEP over a stream is framed by its own length field, so no extra
//!   framing is added. When a write fails the connection is re-established (with exponential
//!   backoff, [`SenderConfig::reconnect_attempts`] tries) and the whole pending buffer is
//!   written again on the new connection: every message is then delivered whole, but messages
//!   of that buffer which had reached the peer before the failure arrive twice (at least once).
//!
//! TLS uses rustls with the `ring` provider. The server certificate is verified against
//! [`TlsOptions::ca_file`] (PEM), or the system bundle when none is given; `insecure` skips
//! verification for self-signed lab collectors. A client certificate can be presented.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Most messages handed to one `sendmmsg(2)` call.
pub const UDP_BATCH: usize = 64;

/// Well-known locations of the system CA bundle, tried when no CA file is given.
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Transport of a HEP destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One HEP message per UDP datagram.
    Udp,
    /// HEP messages back to back on a TCP connection.
    Tcp,
    /// HEP messages back to back on a TLS connection.
    Tls,
}

impl Transport {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// A HEP destination parsed from `udp://host:port`, `tcp://host:port` or `tls://host:port`
/// (IPv6 hosts in brackets: `udp://[::1]:9060`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// How to send.
    pub transport: Transport,
    /// Host name or address (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.transport.scheme(),
                self.host,
                self.port
            )
        } else {
            write!(
                f,
                "{}://{}:{}",
                self.transport.scheme(),
                self.host,
                self.port
            )
        }
    }
}

impl FromStr for Target {
    type Err = SenderError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |why: &'static str| SenderError::BadUrl {
            url: url.to_string(),
            why,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected udp://, tcp:// or tls://"))?;
        let transport = match scheme.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(bad("scheme must be udp, tcp or tls")),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("missing :port"))?;
            (host, port)
        } else {
            rest.rsplit_once(':').ok_or_else(|| bad("missing :port"))?
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad("missing or invalid host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(Target {
            transport,
            host: host.to_string(),
            port,
        })
    }
}

/// TLS settings of the client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsOptions {
    /// PEM file of the CA certificate(s) to trust; the system bundle when unset.
    pub ca_file: Option<PathBuf>,
    /// Skip server certificate verification (self-signed lab collectors). Encrypts, but does
    /// not authenticate the collector.
    pub insecure: bool,
    /// Name to verify the certificate against (and send as SNI) instead of the URL's host.
    pub server_name: Option<String>,
    /// PEM client certificate chain, for collectors that require client certificates.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub client_key: Option<PathBuf>,
}

/// Settings of [`HepSender`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenderConfig {
    /// UDP socket send buffer (SO_SNDBUF) to ask for; bursts at high rates need room. The
    /// kernel may cap it (net.core.wmem_max). Default 4 MiB.
    pub udp_send_buffer: usize,
    /// TCP/TLS write buffer: messages are gathered up to this size before a write. Default
    /// 64 KiB.
    pub write_buffer_bytes: usize,
    /// Time allowed to connect (TCP handshake plus TLS handshake), milliseconds. Default 5000.
    pub connect_timeout_ms: u64,
    /// Connection attempts after a TCP/TLS failure before giving up (0 = never reconnect).
    /// Default 10.
    pub reconnect_attempts: u32,
    /// First wait before reconnecting, doubled per failed attempt, milliseconds. Default 100.
    pub reconnect_backoff_ms: u64,
    /// Longest wait between reconnection attempts, milliseconds. Default 5000.
    pub reconnect_backoff_max_ms: u64,
    /// TLS settings (used by `tls://` targets).
    pub tls: TlsOptions,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            udp_send_buffer: 4 * 1024 * 1024,
            write_buffer_bytes: 64 * 1024,
            connect_timeout_ms: 5000,
            reconnect_attempts: 10,
            reconnect_backoff_ms: 100,
            reconnect_backoff_max_ms: 5000,
            tls: TlsOptions::default(),
        }
    }
}

/// Errors of the HEP client.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The destination URL is not `udp|tcp|tls://host:port`.
    #[error("bad destination {url:?}: {why}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// Host and port.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// Connecting (or the TLS handshake) failed or timed out, after all retries.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The destination.
        target: String,
        /// The last error.
        #[source]
        source: io::Error,
    },
    /// Sending failed and could not be recovered by reconnecting.
    #[error("sending to {target} failed: {source}")]
    Send {
        /// The destination.
        target: String,
        /// The last error.
        #[source]
        source: io::Error,
    },
    /// The TLS settings are unusable (certificate files, names).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A message is longer than a UDP datagram can carry.
    #[error("message of {0} bytes is too large for UDP")]
    TooLarge(usize),
}

/// Counters of a [`HepSender`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SenderStats {
    /// Messages handed to the kernel (UDP) or written to the connection (TCP/TLS).
    pub messages: u64,
    /// Bytes of those messages.
    pub bytes: u64,
    /// Successful reconnections after a TCP/TLS failure.
    pub reconnects: u64,
    /// UDP sends the kernel refused (e.g. ICMP port unreachable); those messages were lost.
    pub udp_errors: u64,
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A stream connection that failed and is being re-established.
    Broken,
}

/// A HEP client bound to one destination. See the module documentation.
pub struct HepSender {
    target: Target,
    cfg: SenderConfig,
    addr: SocketAddr,
    conn: Conn,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Pending stream bytes and the number of messages in them.
    buffer: Vec<u8>,
    buffered_messages: u64,
    stats: SenderStats,
}

impl std::fmt::Debug for HepSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HepSender")
            .field("target", &self.target)
            .field("addr", &self.addr)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl HepSender {
    /// Resolve the destination and connect (UDP: create and connect the socket).
    pub async fn connect(target: Target, cfg: SenderConfig) -> Result<HepSender, SenderError> {
        let host_port = format!("{}:{}", target.host, target.port);
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .map_err(|source| SenderError::Resolve {
                host: host_port.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| SenderError::Resolve {
                host: host_port.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            })?;
        let tls = match target.transport {
            Transport::Tls => Some(tls_connector(&target, &cfg.tls)?),
            _ => None,
        };
        let mut sender = HepSender {
            buffer: Vec::with_capacity(cfg.write_buffer_bytes.min(1 << 20)),
            target,
            cfg,
            addr,
            conn: Conn::Broken,
            tls,
            buffered_messages: 0,
            stats: SenderStats::default(),
        };
        sender.conn = match sender.target.transport {
            Transport::Udp => Conn::Udp(udp_socket(addr, sender.cfg.udp_send_buffer)?),
            _ => sender
                .open_stream()
                .await
                .map_err(|source| SenderError::Connect {
                    target: sender.target.to_string(),
                    source,
                })?,
        };
        Ok(sender)
    }

    /// The destination.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The resolved address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters so far (stream messages count once written, i.e. after a flush).
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Send one message (buffered on streams).
    pub async fn send(&mut self, message: &[u8]) -> Result<(), SenderError> {
        self.send_batch(&[message]).await
    }

    /// Send messages in order: one `sendmmsg` per [`UDP_BATCH`] on UDP, appended to the write
    /// buffer (written whenever it fills) on TCP/TLS.
    pub async fn send_batch<M: AsRef<[u8]>>(&mut self, messages: &[M]) -> Result<(), SenderError> {
        if matches!(self.conn, Conn::Udp(_)) {
            for chunk in messages.chunks(UDP_BATCH) {
                self.send_udp(chunk).await?;
            }
            return Ok(());
        }
        for message in messages {
            let message = message.as_ref();
            self.buffer.extend_from_slice(message);
            self.buffered_messages += 1;
            if self.buffer.len() >= self.cfg.write_buffer_bytes {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Write everything buffered (no-op on UDP), reconnecting if the connection failed.
    pub async fn flush(&mut self) -> Result<(), SenderError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut attempt = 0u32;
        loop {
            let result = match &mut self.conn {
                Conn::Tcp(s) => write_and_flush(s, &self.buffer).await,
                Conn::Tls(s) => write_and_flush(s.as_mut(), &self.buffer).await,
                Conn::Udp(_) => Ok(()),
                Conn::Broken => Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "connection lost",
                )),
            };
            match result {
                Ok(()) => {
                    self.stats.messages += self.buffered_messages;
                    self.stats.bytes += self.buffer.len() as u64;
                    self.buffer.clear();
                    if self.buffer.capacity() > 4 * self.cfg.write_buffer_bytes.max(1 << 16) {
                        self.buffer.shrink_to(self.cfg.write_buffer_bytes);
                    }
                    self.buffered_messages = 0;
                    return Ok(());
                }
                Err(err) => {
                    self.conn = Conn::Broken;
                    if attempt >= self.cfg.reconnect_attempts {
                        return Err(SenderError::Send {
                            target: self.target.to_string(),
                            source: err,
                        });
                    }
                    tracing::warn!(target = %self.target, %err, "HEP connection failed; reconnecting");
                    self.reconnect(&mut attempt).await?;
                }
            }
        }
    }

    /// Flush and close the connection cleanly: TLS close_notify and TCP FIN, then wait (at most
    /// the connect timeout) for the collector to close its side. Dropping a socket that still
    /// holds unread bytes from the peer (TLS session tickets) would send a reset, and a reset
    /// makes the peer discard data it has received but not yet read.
    pub async fn close(mut self) -> Result<SenderStats, SenderError> {
        self.flush().await?;
        let linger = Duration::from_millis(self.cfg.connect_timeout_ms.max(1));
        let result = match &mut self.conn {
            Conn::Tcp(s) => shutdown_and_drain(s, linger).await,
            Conn::Tls(s) => shutdown_and_drain(s.as_mut(), linger).await,
            _ => Ok(()),
        };
        if let Err(err) = result {
            tracing::debug!(%err, "HEP connection shutdown");
        }
        Ok(self.stats)
    }

    /// Whether the TCP/TLS connection failed and has not been re-established (always false on
    /// UDP).
    pub fn is_broken(&self) -> bool {
        matches!(self.conn, Conn::Broken)
    }

    /// Messages buffered for a TCP/TLS connection and not yet written.
    pub fn pending_messages(&self) -> u64 {
        self.buffered_messages
    }

    /// Forgets the buffered, unwritten messages and returns how many there were (a relay that
    /// gives up on a dead destination counts them as dropped).
    pub fn discard_pending(&mut self) -> u64 {
        self.buffer.clear();
        std::mem::take(&mut self.buffered_messages)
    }

    /// One attempt to re-open a failed TCP/TLS connection, without waiting; the buffered
    /// messages are kept and written by the next [`HepSender::flush`]. For callers that run
    /// their own backoff (with `reconnect_attempts = 0` a failed flush returns at once).
    /// A no-op on UDP and on a healthy connection.
    pub async fn reconnect_once(&mut self) -> Result<(), SenderError> {
        if !self.is_broken() {
            return Ok(());
        }
        let conn = self
            .open_stream()
            .await
            .map_err(|source| SenderError::Connect {
                target: self.target.to_string(),
                source,
            })?;
        self.conn = conn;
        self.stats.reconnects += 1;
        Ok(())
    }

    /// Re-establish the stream, waiting with exponential backoff; counts attempts in `attempt`.
    async fn reconnect(&mut self, attempt: &mut u32) -> Result<(), SenderError> {
        loop {
            let shift = (*attempt).min(16);
            let backoff = self
                .cfg
                .reconnect_backoff_ms
                .saturating_mul(1 << shift)
                .min(self.cfg.reconnect_backoff_max_ms);
            *attempt += 1;
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            match self.open_stream().await {
                Ok(conn) => {
                    self.conn = conn;
                    self.stats.reconnects += 1;
                    return Ok(());
                }
                Err(err) if *attempt < self.cfg.reconnect_attempts => {
                    tracing::warn!(target = %self.target, %err, attempt = *attempt, "reconnect failed");
                }
                Err(source) => {
                    return Err(SenderError::Connect {
                        target: self.target.to_string(),
                        source,
                    })
                }
            }
        }
    }

    async fn open_stream(&self) -> io::Result<Conn> {
        let timeout = Duration::from_millis(self.cfg.connect_timeout_ms.max(1));
        let connect = async {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            match &self.tls {
                None => Ok(Conn::Tcp(stream)),
                Some((connector, name)) => {
                    let tls = connector.connect(name.clone(), stream).await?;
                    Ok(Conn::Tls(Box::new(tls)))
                }
            }
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }

    async fn send_udp<M: AsRef<[u8]>>(&mut self, messages: &[M]) -> Result<(), SenderError> {
        let Conn::Udp(socket) = &self.conn else {
            return Ok(());
        };
        if let Some(big) = messages.iter().find(|m| m.as_ref().len() > 65_507) {
            return Err(SenderError::TooLarge(big.as_ref().len()));
        }
        let mut sent = 0;
        let mut refused_retry = false;
        while sent < messages.len() {
            let rest = &messages[sent..];
            let result =
                match socket.try_io(tokio::io::Interest::WRITABLE, || sendmmsg(socket, rest)) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        socket
                            .writable()
                            .await
                            .map_err(|source| SenderError::Send {
                                target: self.target.to_string(),
                                source,
                            })?;
                        continue;
                    }
                    other => other,
                };
            match result {
                Ok(n) => {
                    for m in &rest[..n] {
                        self.stats.bytes += m.as_ref().len() as u64;
                    }
                    self.stats.messages += n as u64;
                    sent += n;
                    refused_retry = false;
                }
                Err(e) if is_transient_udp_error(&e) => {
                    // The error belongs to an earlier datagram (ICMP) or a momentary lack of
                    // buffers: retry this one once, then count it as lost.
                    if refused_retry {
                        self.stats.udp_errors += 1;
                        sent += 1;
                        refused_retry = false;
                    } else {
                        refused_retry = true;
                        if e.raw_os_error() == Some(libc::ENOBUFS) {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                Err(source) => {
                    return Err(SenderError::Send {
                        target: self.target.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

fn is_transient_udp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::ENOBUFS | libc::EHOSTUNREACH | libc::ENETUNREACH)
    )
}

async fn shutdown_and_drain<S>(stream: &mut S, linger: Duration) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    stream.shutdown().await?;
    let drain = async {
        let mut buf = [0u8; 4096];
        loop {
            if stream.read(&mut buf).await? == 0 {
                return Ok::<(), io::Error>(());
            }
        }
    };
    match tokio::time::timeout(linger, drain).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

async fn write_and_flush<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
) -> io::Result<()> {
    w.write_all(data).await?;
    w.flush().await
}

/// One `sendmmsg(2)` call for up to [`UDP_BATCH`] messages on a connected socket; returns how
/// many were sent.
fn sendmmsg<M: AsRef<[u8]>>(socket: &UdpSocket, messages: &[M]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let n = messages.len().min(UDP_BATCH);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is a valid value.
    let mut iovecs: [libc::iovec; UDP_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut headers: [libc::mmsghdr; UDP_BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        let data = messages[i].as_ref();
        iovecs[i].iov_base = data.as_ptr() as *mut libc::c_void;
        iovecs[i].iov_len = data.len();
        headers[i].msg_hdr.msg_iov = &mut iovecs[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `headers[..n]` point at `iovecs[..n]`, which point at the borrowed message
    // buffers; all outlive the call, and the kernel only reads them. The socket is connected,
    // so no destination address is needed.
    let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), n as _, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

fn udp_socket(addr: SocketAddr, send_buffer: usize) -> Result<UdpSocket, SenderError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| SenderError::Connect {
        target: addr.to_string(),
        source,
    };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if send_buffer > 0 {
        if let Err(e) = socket.set_send_buffer_size(send_buffer) {
            tracing::warn!(%e, "cannot set the UDP send buffer");
        }
    }
    socket.set_nonblocking(true).map_err(err)?;
    socket.connect(&addr.into()).map_err(err)?;
    let std: std::net::UdpSocket = socket.into();
    UdpSocket::from_std(std).map_err(err)
}

fn tls_error(e: tls::TlsError) -> SenderError {
    SenderError::Tls(e.to_string())
}

fn tls_connector(
    target: &Target,
    opts: &TlsOptions,
) -> Result<(TlsConnector, ServerName<'static>), SenderError> {
    let provider = tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SenderError::Tls(e.to_string()))?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(tls::AnyServerCertificate::new(provider)))
    } else {
        let ca_path = match &opts.ca_file {
            Some(path) => path.clone(),
            None => SYSTEM_CA_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    SenderError::Tls(
                        "no CA file given and no system CA bundle found (use --ca FILE, or --insecure for a self-signed lab collector)".into(),
                    )
                })?,
        };
        let roots = tls::load_roots(&ca_path).map_err(tls_error)?;
        builder.with_root_certificates(roots)
    };
    let config = match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => {
            let chain = tls::load_certs(cert).map_err(tls_error)?;
            let key_der = tls::load_private_key(key).map_err(tls_error)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| SenderError::Tls(e.to_string()))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(SenderError::Tls(
                "a client certificate needs both the certificate and the key".into(),
            ))
        }
    };
    let name = opts
        .server_name
        .clone()
        .unwrap_or_else(|| target.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| SenderError::Tls(format!("invalid TLS server name {name:?}")))?;
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t: Target = "udp://127.0.0.1:9060".parse().unwrap();
        assert_eq!(
            t,
            Target {
                transport: Transport::Udp,
                host: "127.0.0.1".into(),
                port: 9060
            }
        );
        let t: Target = "TLS://collector.example.com:9061/".parse().unwrap();
        assert_eq!(t.transport, Transport::Tls);
        assert_eq!(t.host, "collector.example.com");
        let t: Target = "tcp://[::1]:9060".parse().unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.to_string(), "tcp://[::1]:9060");
        for bad in [
            "127.0.0.1:9060",
            "http://x:1",
            "udp://x",
            "udp://:9060",
            "udp://x:0",
            "udp://x:70000",
            "udp://[::1:9060",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
