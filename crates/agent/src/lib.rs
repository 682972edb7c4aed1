//! The capture agent behind `hepstack capture`: it reads packets from a live interface
//! (libpcap, loaded at run time) or from pcap/pcapng files and sends the VoIP signalling in
//! them to HEP collectors, doing heplify's job.
//!
//! # Pieces
//!
//! * [`Capture`]: the entry point. [`Capture::open`] opens the interface, then
//!   [`OpenCapture::run`] runs the reader thread, the queue, the sender task, `/metrics` and the
//!   signal handler until the input ends or SIGINT/SIGTERM.
//! * [`Pipeline`]: frames → [`capture::decode_packet`] (links, VLANs, IPv4/IPv6, fragments,
//!   tunnels) → duplicate filter → SIP over UDP, TCP ([`capture::TcpReassembler`] then
//!   Content-Length framing), SCTP (DATA chunks, fragmented ones reassembled) and WebSocket
//!   (RFC 6455 frames after an HTTP upgrade, unmasked and defragmented) → HEPv3 type 1; RTCP
//!   → HOMER JSON, HEP type 5, correlation id = the Call-ID of the SDP that announced the
//!   address; DNS → HEP type 53. Synchronous, single-threaded, memory bounded by
//!   [`AgentConfig`].
//! * [`live`]: libpcap through `dlopen` (`libpcap.so.0.8`, `.so.1`, `.so`).
//! * [`run`]: the loops over files (unpaced, or at original timing times a speed factor) and
//!   live handles.
//! * [`output`]: the bounded queue to the sender task and the sender itself: several
//!   collectors (UDP, TCP, TLS) round-robin or failover, reconnecting with backoff.
//! * [`pcap_out`]: every captured frame, as read, into pcap files rotated by size and packet
//!   time, the oldest deleted beyond a count (heplify's `-wf` / `-rt`).
//! * Discard filters ([`AgentConfig::discard_methods`], [`AgentConfig::discard_ips`]): SIP by
//!   CSeq method, any message by address (heplify's `-dim` / `-diip`).
//! * [`Counters`] and [`metrics`]: seen, sent, dropped, reassembled, errors and more, as a
//!   status line and as Prometheus text.
//!
//! # Invariants
//!
//! * Every SIP message comes out once, byte-exact, with the addresses, ports and transport of
//!   the packet (or TCP direction) that carried it and the capture time of the packet that
//!   completed it.
//! * Stream buffers, reassembly buffers, the duplicate filter and the SDP table all have caps;
//!   input can never make the agent grow without bound.
//! * Timeouts run on packet timestamps: reading a file gives what capturing it live would.

pub mod config;
pub mod counters;
pub mod dedup;
pub mod live;
pub mod media;
pub mod metrics;
pub mod output;
pub mod pcap_out;
pub mod pipeline;
pub mod run;
mod runtime;
pub mod websocket;

pub use config::AgentConfig;
pub use counters::{Counters, Snapshot};
pub use live::{libpcap_available, LiveCapture, LiveError, LiveOptions};
pub use output::{Balance, Batch, Producer, WhenFull};
pub use pcap_out::{PcapRotation, RotatingPcap};
pub use pipeline::{HepSink, Pipeline};
pub use run::{capture_files, capture_live, Pacing, RunError};
pub use runtime::{Capture, CaptureError, CaptureReport, OpenCapture};

/// The default BPF filter: SIP on its usual ports over UDP, TCP and SCTP, IP fragments (which
/// carry no ports after the first), RTCP by its header (version 2, packet types 200–207, on
/// UDP ports above 1023), and DNS.
pub const DEFAULT_BPF: &str = "port 5060 or port 5061 or port 5080 \
or (ip[6:2] & 0x3fff != 0) or (ip6[6] = 44) \
or (udp and udp portrange 1024-65535 and udp[8] & 0xc0 = 0x80 and udp[9] >= 200 and udp[9] <= 207) \
or udp port 53";
