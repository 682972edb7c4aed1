//! [`Transport`] and [`ListenerMetrics`]: what the listeners count themselves (open and refused
//! connections, garbage skipped on streams, back-pressure pauses). The collector and the relay
//! render them under their own metric names.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The listener a packet came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HEP over UDP.
    Udp,
    /// HEP over TCP.
    Tcp,
    /// HEP over TLS.
    Tls,
}

impl Transport {
    /// Every transport, in label order.
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// A dense index (0, 1, 2), for per-transport arrays.
    pub fn index(self) -> usize {
        match self {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
        }
    }
}

/// Counters the listeners keep: relaxed atomics, read when metrics are rendered.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    connections: [AtomicI64; 3],
    connections_rejected: [AtomicU64; 3],
    stream_bytes_skipped: AtomicU64,
    /// Microseconds stream connections spent not reading because the handler was congested.
    stream_backpressure_us: AtomicU64,
    /// Times a stream connection paused for that reason.
    stream_backpressure_pauses: AtomicU64,
}

impl ListenerMetrics {
    /// A connection opened (+1) or closed (-1).
    pub fn connection_delta(&self, transport: Transport, delta: i64) {
        self.connections[transport.index()].fetch_add(delta, Relaxed);
    }

    /// Open connections of a transport.
    pub fn connections(&self, transport: Transport) -> i64 {
        self.connections[transport.index()].load(Relaxed)
    }

    /// Counts a connection refused at the connection limit or in the TLS handshake.
    pub fn connection_rejected(&self, transport: Transport) {
        self.connections_rejected[transport.index()].fetch_add(1, Relaxed);
    }

    /// Connections of a transport refused so far.
    pub fn connections_rejected_count(&self, transport: Transport) -> u64 {
        self.connections_rejected[transport.index()].load(Relaxed)
    }

    /// Garbage bytes skipped on a stream while resynchronising.
    pub fn stream_bytes_skipped(&self, n: u64) {
        self.stream_bytes_skipped.fetch_add(n, Relaxed);
    }

    /// Garbage bytes skipped on streams so far.
    pub fn stream_bytes_skipped_count(&self) -> u64 {
        self.stream_bytes_skipped.load(Relaxed)
    }

    /// A stream connection paused reading for `waited` because the handler was congested.
    pub fn stream_backpressure(&self, waited: Duration) {
        self.stream_backpressure_pauses.fetch_add(1, Relaxed);
        self.stream_backpressure_us.fetch_add(
            u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    /// Back-pressure pauses so far and their total length in microseconds.
    pub fn stream_backpressure_totals(&self) -> (u64, u64) {
        (
            self.stream_backpressure_pauses.load(Relaxed),
            self.stream_backpressure_us.load(Relaxed),
        )
    }
}
