//! UDP: binding with SO_REUSEPORT and a large receive buffer, and the `recvmmsg` receive loop
//! that runs on a dedicated OS thread per socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use crate::clock::{now_us, ReceiveClock};
use crate::config::AuthKey;
use crate::listeners::PacketHandler;
use crate::metrics::Transport;

/// Room for the largest UDP payload (65,507 bytes over IPv4) per datagram slot.
const SLOT_BYTES: usize = 65_536;
/// How long a blocked receive waits before looking at the shutdown token again.
const RECV_TIMEOUT: Duration = Duration::from_millis(100);
/// Datagrams read after shutdown from what the kernel had already queued, at most.
const SHUTDOWN_DRAIN_MAX: usize = 1_000_000;

/// Binding failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {addr}: {source}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// Binds `sockets` UDP sockets to `addr` with SO_REUSEPORT (so the kernel spreads senders over
/// them) and asks for a receive buffer of `rcvbuf` bytes each. When the kernel caps the buffer
/// (`net.core.rmem_max`), a warning names the sysctl to raise and the effective size. With port
/// 0 every socket shares the port the first one got.
pub fn bind_udp(
    addr: SocketAddr,
    sockets: usize,
    rcvbuf: usize,
) -> Result<Vec<UdpSocket>, BindError> {
    let err = |source| BindError { addr, source };
    let mut out: Vec<UdpSocket> = Vec::with_capacity(sockets.max(1));
    let mut bind_to = addr;
    for _ in 0..sockets.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(err)?;
        socket.set_reuse_port(true).map_err(err)?;
        socket.set_reuse_address(true).map_err(err)?;
        let effective = set_receive_buffer(&socket, rcvbuf);
        // Linux reports twice the requested size (bookkeeping overhead is included).
        if effective < rcvbuf && out.is_empty() {
            tracing::warn!(
                requested = rcvbuf,
                effective,
                "UDP receive buffer capped by the kernel; raise it with `sysctl -w net.core.rmem_max={rcvbuf}` to avoid loss in bursts"
            );
        } else if out.is_empty() {
            tracing::info!(%addr, effective, "UDP receive buffer");
        }
        socket.bind(&bind_to.into()).map_err(err)?;
        let udp: UdpSocket = socket.into();
        if out.is_empty() {
            bind_to = udp.local_addr().map_err(err)?;
        }
        out.push(udp);
    }
    Ok(out)
}

/// Sets SO_RCVBUF (trying SO_RCVBUFFORCE first, which bypasses `rmem_max` when the process
/// has CAP_NET_ADMIN) and returns the effective size the kernel reports.
fn set_receive_buffer(socket: &Socket, rcvbuf: usize) -> usize {
    let value = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
    // SAFETY: the fd is a valid socket owned by `socket`; the option value is a c_int on the
    // stack whose size is passed along.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        if let Err(e) = socket.set_recv_buffer_size(rcvbuf) {
            tracing::warn!(error = %e, "cannot set the UDP receive buffer size");
        }
    }
    socket.recv_buffer_size().unwrap_or(0)
}

/// Reusable `recvmmsg` buffers: `batch` slots of [`SLOT_BYTES`].
struct MmsgBuffers {
    data: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside point into `data`/`iovecs`, owned by the same struct and
// moved with it; the struct is used by one thread at a time.
unsafe impl Send for MmsgBuffers {}

impl MmsgBuffers {
    fn new(batch: usize) -> MmsgBuffers {
        let batch = batch.max(1);
        let mut data = vec![0u8; batch * SLOT_BYTES];
        let mut iovecs: Vec<libc::iovec> = data
            .chunks_exact_mut(SLOT_BYTES)
            .map(|slot| libc::iovec {
                iov_base: slot.as_mut_ptr().cast(),
                iov_len: SLOT_BYTES,
            })
            .collect();
        let headers = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain old data; all-zero is a valid value (null name,
                // no control data).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        MmsgBuffers {
            data,
            iovecs,
            headers,
        }
    }

    /// Receives up to `batch` datagrams; returns how many.
    fn recv(&mut self, fd: libc::c_int, flags: libc::c_int) -> io::Result<usize> {
        for h in &mut self.headers {
            h.msg_len = 0;
        }
        let vlen = libc::c_uint::try_from(self.headers.len()).unwrap_or(1);
        // SAFETY: `headers` holds `vlen` initialised mmsghdr entries whose iovecs point into
        // `data`, which outlives the call; the kernel writes at most iov_len bytes per slot.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                vlen,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn datagram(&self, i: usize) -> &[u8] {
        let len = self
            .headers
            .get(i)
            .map_or(0, |h| usize::try_from(h.msg_len).unwrap_or(0))
            .min(SLOT_BYTES);
        let start = i * SLOT_BYTES;
        self.data.get(start..start + len).unwrap_or(&[])
    }
}

/// The receive loop of one UDP socket; returns after `shutdown` once the datagrams already
/// queued in the kernel have been processed.
pub(crate) fn run_udp(
    socket: UdpSocket,
    handler: Arc<dyn PacketHandler>,
    auth: Option<AuthKey>,
    batch: usize,
    shutdown: CancellationToken,
) {
    if let Err(e) = socket.set_read_timeout(Some(RECV_TIMEOUT)) {
        tracing::error!(error = %e, "cannot set the UDP receive timeout; receive loop not started");
        return;
    }
    let fd = socket.as_raw_fd();
    let mut bufs = MmsgBuffers::new(batch);
    let auth = auth.as_ref();
    let mut clock = ReceiveClock::default();
    let mut process = |bufs: &MmsgBuffers, n: usize| {
        let wall_us = now_us();
        let now = Instant::now();
        for i in 0..n {
            let received_us = clock.stamp(wall_us);
            handler.handle(bufs.datagram(i), Transport::Udp, auth, received_us, now);
        }
    };
    while !shutdown.is_cancelled() {
        match bufs.recv(fd, libc::MSG_WAITFORONE) {
            Ok(n) => process(&bufs, n),
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "UDP receive failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // Process what the kernel already holds, then stop.
    let mut drained = 0;
    while drained < SHUTDOWN_DRAIN_MAX {
        match bufs.recv(fd, libc::MSG_DONTWAIT) {
            Ok(0) => break,
            Ok(n) => {
                process(&bufs, n);
                drained += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    // The iovecs must stay alive as long as `bufs`; touch them so the intent is explicit.
    debug_assert_eq!(bufs.iovecs.len(), bufs.headers.len());
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_several_sockets_on_one_port() {
        let socks = bind_udp("127.0.0.1:0".parse().expect("addr"), 3, 1 << 20).expect("bind");
        assert_eq!(socks.len(), 3);
        let port = socks[0].local_addr().expect("addr").port();
        assert!(port != 0);
        for s in &socks {
            assert_eq!(s.local_addr().expect("addr").port(), port);
        }
    }

    #[test]
    fn recvmmsg_reads_a_batch() {
        let socks = bind_udp("127.0.0.1:0".parse().expect("addr"), 1, 1 << 20).expect("bind");
        let addr = socks[0].local_addr().expect("addr");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
        for i in 0..5u8 {
            tx.send_to(&[i; 3], addr).expect("send");
        }
        socks[0]
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut bufs = MmsgBuffers::new(8);
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = bufs
                .recv(socks[0].as_raw_fd(), libc::MSG_WAITFORONE)
                .expect("recv");
            for i in 0..n {
                got.push(bufs.datagram(i).to_vec());
            }
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i; 3]).collect::<Vec<_>>());
    }
}
