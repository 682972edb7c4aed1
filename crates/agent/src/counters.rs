//! Counters shared by the capture thread, the sender task and the metrics endpoint.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident => $metric:literal, )*) => {
        /// Running totals of the agent. Relaxed atomics: each is exact, they are not a snapshot
        /// of one instant together.
        #[derive(Debug, Default)]
        pub struct Counters {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
        }

        /// A copy of [`Counters`] at one time.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
        pub struct Snapshot {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl Counters {
            /// Reads every counter.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }

        impl Snapshot {
            /// Prometheus text exposition (version 0.0.4), every counter as `hepstack_capture_*`.
            pub fn prometheus(&self) -> String {
                let mut out = String::new();
                $(
                    let help = [$($doc),*].join(" ");
                    let _ = writeln!(out, "# HELP hepstack_capture_{} {}", $metric, help.trim());
                    let _ = writeln!(out, "# TYPE hepstack_capture_{} counter", $metric);
                    let _ = writeln!(out, "hepstack_capture_{} {}", $metric, self.$name);
                )*
                out
            }

            /// One `name=value` pair per counter, space separated: the line printed on exit
            /// and on SIGUSR1.
            pub fn line(&self) -> String {
                let mut out = String::new();
                $( let _ = write!(out, "{}={} ", stringify!($name), self.$name); )*
                out.trim_end().to_string()
            }
        }
    };
}

counters! {
    /// Packets read from the interface or file.
    seen => "packets_seen_total",
    /// Bytes of those packets (captured length).
    bytes_seen => "bytes_seen_total",
    /// HEP messages handed to a collector connection.
    sent => "hep_sent_total",
    /// HEP messages lost: send queue full, every collector down, or too large to encode.
    dropped => "hep_dropped_total",
    /// IP datagrams rebuilt from fragments, plus SIP messages rebuilt from more than one TCP
    /// segment, SCTP chunk or WebSocket frame.
    reassembled => "reassembled_total",
    /// Errors: undecodable packets, unframeable SIP streams, send failures.
    errors => "errors_total",
    /// Packets whose link, IP or transport layer did not decode.
    decode_errors => "decode_errors_total",
    /// IP datagrams rebuilt from fragments.
    ip_reassembled => "ip_reassembled_total",
    /// Identical packets dropped by the duplicate filter.
    duplicates => "duplicates_total",
    /// TCP segments fed to stream reassembly.
    tcp_segments => "tcp_segments_total",
    /// Holes skipped in TCP streams (lost segments); the stream resynchronises on the next SIP start line.
    tcp_gaps => "tcp_gaps_total",
    /// SIP messages over UDP.
    sip_udp => "sip_udp_total",
    /// SIP messages over TCP.
    sip_tcp => "sip_tcp_total",
    /// SIP messages over SCTP.
    sip_sctp => "sip_sctp_total",
    /// SIP messages over WebSocket.
    sip_websocket => "sip_websocket_total",
    /// SIP byte ranges dropped from streams (not SIP, bad Content-Length, oversized, cut by a gap).
    sip_stream_errors => "sip_stream_errors_total",
    /// RTCP compound packets sent as HEP type 5.
    rtcp => "rtcp_total",
    /// RTCP packets with no SDP-learnt call to correlate with (dropped unless configured otherwise).
    rtcp_uncorrelated => "rtcp_uncorrelated_total",
    /// DNS messages sent as HEP type 53.
    dns => "dns_total",
    /// HEP messages produced by the decoder (before the send queue).
    hep_produced => "hep_produced_total",
    /// Collector (re)connections after a failure.
    reconnects => "reconnects_total",
    /// Packets the kernel dropped before libpcap read them (live capture).
    kernel_dropped => "kernel_dropped_total",
    /// Packets the interface or driver dropped (live capture, when reported).
    interface_dropped => "interface_dropped_total",
    /// HEP messages not sent because a discard filter (SIP method, address) matched.
    discarded => "discarded_total",
    /// Packets written to the rotated pcap files (`--write-pcap`).
    pcap_written => "pcap_written_total",
    /// Pcap files closed by rotation and deleted because more than the kept number existed.
    pcap_files_deleted => "pcap_files_deleted_total",
    /// HEP messages written to the disk buffer because no collector could take them.
    buffered => "buffered_total",
    /// HEP messages sent from the disk buffer after a collector came back.
    replayed => "replayed_total",
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a counter that mirrors an external total (libpcap statistics).
    pub fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_every_counter() {
        let c = Counters::default();
        Counters::add(&c.seen, 3);
        Counters::add(&c.sip_tcp, 2);
        let text = c.snapshot().prometheus();
        assert!(text.contains("\nhepstack_capture_packets_seen_total 3\n"));
        assert!(text.contains(
            "# TYPE hepstack_capture_sip_tcp_total counter\nhepstack_capture_sip_tcp_total 2\n"
        ));
        assert!(c
            .snapshot()
            .line()
            .starts_with("seen=3 bytes_seen=0 sent=0"));
    }
}
