//! Settings of the decoding pipeline ([`crate::Pipeline`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the agent decodes and how much memory it may hold. Every limit is enforced on packet
/// time (timestamps), never the wall clock, so replaying a file behaves like capturing it live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// HEP capture agent id written into every message (chunk 0x000c). Default 0.
    pub capture_id: u32,
    /// Capture node name written into every message (chunk 0x0013); empty = not sent.
    pub node_name: String,
    /// HEP authentication key (chunk 0x000e); `None` = not sent.
    pub auth_key: Option<String>,
    /// Send RTCP (binary RTCP turned into HOMER JSON, HEP type 5). Default true.
    pub rtcp: bool,
    /// Also send RTCP whose addresses match no SDP the agent has seen (no correlation id);
    /// heplify drops those, and so does the default (false).
    pub rtcp_uncorrelated: bool,
    /// Send DNS over UDP port 53 (HEP type 53, raw DNS message). Default true.
    pub dns: bool,
    /// Identical packets (same addresses, ports, transport and payload) seen again within this
    /// many milliseconds are dropped: mirror ports and `any` captures see packets twice.
    /// 0 disables. Default 50, well below SIP's 500 ms retransmission timer.
    pub dedup_window_ms: u64,
    /// Packets remembered by the duplicate filter at most. Default 65536.
    pub dedup_max_entries: usize,
    /// Largest SIP (or WebSocket) message reassembled from a stream, bytes; larger ones are
    /// dropped and the stream resynchronises. Default 65535 (the most one HEP message carries).
    pub max_message_len: usize,
    /// Bytes all TCP/WebSocket stream buffers together may hold waiting for the rest of a
    /// message; a stream that would exceed it loses its partial message. Default 64 MiB.
    pub max_stream_buffer_total: usize,
    /// Out-of-order TCP bytes one direction may buffer behind a hole. Default 1 MiB.
    pub tcp_max_buffered_per_flow: usize,
    /// Out-of-order TCP bytes all directions may buffer. Default 64 MiB.
    pub tcp_max_buffered_total: usize,
    /// TCP directions tracked at once; beyond it the least recently seen are evicted.
    /// Default 65536.
    pub tcp_max_flows: usize,
    /// Seconds a TCP direction waits for a missing segment before skipping the hole. Default 3.
    pub tcp_gap_timeout_secs: u64,
    /// Seconds without segments after which a TCP direction is forgotten. Default 300.
    pub tcp_idle_timeout_secs: u64,
    /// Seconds an incomplete IP datagram waits for its missing fragments. Default 30.
    pub defrag_timeout_secs: u64,
    /// Bytes of pending IP fragments in total. Default 32 MiB.
    pub defrag_max_total_bytes: usize,
    /// Bytes of pending IP fragments per address pair. Default 2 MiB.
    pub defrag_max_bytes_per_flow: usize,
    /// Media addresses (from SDP) remembered for RTCP correlation at most. Default 100000.
    pub media_max_entries: usize,
    /// Seconds a media address learnt from SDP stays valid for correlation. Default 7200.
    pub media_ttl_secs: u64,
    /// SIP messages whose CSeq method is one of these (case-insensitive) are not sent: the
    /// requests and their responses (heplify's `-dim`), e.g. `["OPTIONS", "NOTIFY"]`. Their SDP
    /// is not learnt either. Counted in `discarded`. Default: none.
    pub discard_methods: Vec<String>,
    /// Messages (SIP, RTCP, DNS) whose source or destination address lies in one of these
    /// networks are not sent (heplify's `-diip`); a plain address is a /32 or /128. Counted
    /// in `discarded`. Default: none.
    pub discard_ips: Vec<ipnet::IpNet>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            capture_id: 0,
            node_name: String::new(),
            auth_key: None,
            rtcp: true,
            rtcp_uncorrelated: false,
            dns: true,
            dedup_window_ms: 50,
            dedup_max_entries: 65536,
            max_message_len: 65535,
            max_stream_buffer_total: 64 * 1024 * 1024,
            tcp_max_buffered_per_flow: 1024 * 1024,
            tcp_max_buffered_total: 64 * 1024 * 1024,
            tcp_max_flows: 65536,
            tcp_gap_timeout_secs: 3,
            tcp_idle_timeout_secs: 300,
            defrag_timeout_secs: 30,
            defrag_max_total_bytes: 32 * 1024 * 1024,
            defrag_max_bytes_per_flow: 2 * 1024 * 1024,
            media_max_entries: 100_000,
            media_ttl_secs: 7200,
            discard_methods: Vec::new(),
            discard_ips: Vec::new(),
        }
    }
}

impl AgentConfig {
    /// Whether a SIP message with this CSeq method is discarded.
    pub(crate) fn discards_method(&self, method: &[u8]) -> bool {
        self.discard_methods
            .iter()
            .any(|m| m.as_bytes().eq_ignore_ascii_case(method))
    }

    pub(crate) fn tcp(&self) -> capture::TcpConfig {
        capture::TcpConfig {
            max_buffered_per_flow: self.tcp_max_buffered_per_flow,
            max_buffered_total: self.tcp_max_buffered_total,
            max_flows: self.tcp_max_flows.max(1),
            gap_timeout: Duration::from_secs(self.tcp_gap_timeout_secs),
            idle_timeout: Duration::from_secs(self.tcp_idle_timeout_secs.max(1)),
        }
    }

    pub(crate) fn defrag(&self) -> capture::DefragConfig {
        capture::DefragConfig {
            timeout: Duration::from_secs(self.defrag_timeout_secs),
            max_total_bytes: self.defrag_max_total_bytes,
            max_bytes_per_flow: self.defrag_max_bytes_per_flow,
            ..capture::DefragConfig::default()
        }
    }
}
