//! From captured frames to HEPv3 messages: decoding, duplicate filtering, SIP over UDP, TCP
//! (reassembled and framed by Content-Length), SCTP and WebSocket, RTCP correlated by SDP, and
//! DNS.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use capture::{
    decode_packet, Decoded, Defragmenter, FlowKey, LinkType, StreamEvent, TcpReassembler,
    TcpSegment, Timestamp, Transport,
};
use hep::HepMessage;

use crate::config::AgentConfig;
use crate::counters::Counters;
use crate::dedup::Dedup;
use crate::media::MediaTable;
use crate::pcap_out::RotatingPcap;
use crate::websocket::{self, opcode};

/// HEP payload types the agent produces.
pub mod proto_type {
    /// SIP.
    pub const SIP: u8 = 1;
    /// RTCP as HOMER JSON.
    pub const RTCP: u8 = 5;
    /// DNS.
    pub const DNS: u8 = 53;
}

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

/// Longest line examined while looking for a SIP start line in a stream.
const MAX_START_LINE: usize = 2048;
/// Longest HTTP upgrade header block accepted before a WebSocket stream.
const MAX_HTTP_HEADER: usize = 16 * 1024;
/// SCTP messages in the middle of reassembly at once.
const MAX_SCTP_PARTIALS: usize = 4096;

/// Where a HEP message goes: called with each encoded HEPv3 message, in capture order.
pub trait HepSink {
    /// Takes one encoded message (borrowed until the call returns).
    fn emit(&mut self, message: &[u8]);

    /// Hands on whatever the sink batched (before the input pauses, and at the end).
    fn flush(&mut self) {}
}

impl<F: FnMut(&[u8])> HepSink for F {
    fn emit(&mut self, message: &[u8]) {
        self(message)
    }
}

/// Addresses and time of one message to encode.
#[derive(Debug, Clone, Copy)]
struct Meta {
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    ip_proto: u8,
    timestamp: Timestamp,
    vlan: Option<u16>,
}

impl Meta {
    fn of_flow(flow: FlowKey, ip_proto: u8, timestamp: Timestamp) -> Meta {
        Meta {
            src: flow.src,
            dst: flow.dst,
            src_port: flow.src_port,
            dst_port: flow.dst_port,
            ip_proto,
            timestamp,
            vlan: None,
        }
    }
}

/// Encodes HEPv3 messages into one reused buffer.
struct Emitter {
    message: HepMessage,
    out: Vec<u8>,
    counters: Arc<Counters>,
    /// Networks whose messages are not sent ([`AgentConfig::discard_ips`]).
    discard_ips: Vec<ipnet::IpNet>,
}

impl Emitter {
    fn emit<S: HepSink + ?Sized>(
        &mut self,
        meta: &Meta,
        proto_type: u8,
        payload: &[u8],
        correlation_id: Option<&[u8]>,
        sink: &mut S,
    ) {
        if self
            .discard_ips
            .iter()
            .any(|net| net.contains(&meta.src) || net.contains(&meta.dst))
        {
            Counters::add(&self.counters.discarded, 1);
            return;
        }
        let m = &mut self.message;
        m.ip_family = Some(if meta.src.is_ipv6() {
            hep::FAMILY_IPV6
        } else {
            hep::FAMILY_IPV4
        });
        m.ip_proto = Some(meta.ip_proto);
        m.src_ip = Some(meta.src);
        m.dst_ip = Some(meta.dst);
        m.src_port = Some(meta.src_port);
        m.dst_port = Some(meta.dst_port);
        // HEP time is an unsigned 32-bit second count; earlier or later times cannot be sent.
        m.ts_sec = Some(u32::try_from(meta.timestamp.secs()).unwrap_or(0));
        m.ts_usec = Some(meta.timestamp.subsec_nanos() / 1000);
        m.proto_type = Some(proto_type);
        m.vlan_id = meta.vlan;
        reuse(&mut m.payload, Some(payload));
        reuse(&mut m.correlation_id, correlation_id);
        self.out.clear();
        if self.message.encode(&mut self.out).is_err() {
            // Only a message over 64 KiB fails, which no collector could take either.
            Counters::add(&self.counters.dropped, 1);
            Counters::add(&self.counters.errors, 1);
            return;
        }
        Counters::add(&self.counters.hep_produced, 1);
        sink.emit(&self.out);
    }
}

/// Sets an optional byte field, keeping its allocation.
fn reuse(field: &mut Option<Vec<u8>>, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            let buf = field.get_or_insert_with(Vec::new);
            buf.clear();
            buf.extend_from_slice(v);
        }
        None => *field = None,
    }
}

/// Whether `line` (without its line break) is a SIP request or status line.
pub fn is_sip_start_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        return rest.len() >= 3 && rest.iter().take(3).all(u8::is_ascii_digit);
    }
    let Some(uri_and_version) = line.strip_suffix(b" SIP/2.0") else {
        return false;
    };
    let method_len = uri_and_version.iter().position(|&b| b == b' ').unwrap_or(0);
    method_len > 0
        && uri_and_version[..method_len]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// Whether a datagram or WebSocket message is one SIP message (its first line is a start line).
pub fn looks_like_sip(payload: &[u8]) -> bool {
    let head = payload.get(..MAX_START_LINE).unwrap_or(payload);
    memchr::memchr(b'\n', head).is_some_and(|nl| is_sip_start_line(&head[..nl]))
}

/// Whether a UDP payload is an RTCP compound packet: version 2, a known packet type first, and
/// packet lengths that add up exactly to the payload (RTP never does: its second byte cannot be
/// 200–207 as RFC 5761 reserves those payload types).
pub fn looks_like_rtcp(payload: &[u8]) -> bool {
    let mut rest = payload;
    if rest.len() < 8 {
        return false;
    }
    while !rest.is_empty() {
        let (Some(&b0), Some(&b1), Some(l)) = (rest.first(), rest.get(1), rest.get(2..4)) else {
            return false;
        };
        if b0 >> 6 != 2 || !(192..=213).contains(&b1) {
            return false;
        }
        let len = (usize::from(u16::from_be_bytes([l[0], l[1]])) + 1) * 4;
        let Some(next) = rest.get(len..) else {
            return false;
        };
        rest = next;
    }
    (200..=207).contains(&payload[1])
}

/// How a TCP direction is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Looking for a SIP start line or an HTTP upgrade (start of capture, or after a gap).
    Detect,
    /// SIP messages framed by Content-Length.
    Sip,
    /// An HTTP header block that may upgrade the connection to WebSocket.
    Http,
    /// WebSocket frames.
    WebSocket,
    /// Not SIP: ignored until the connection ends.
    Ignore,
}

/// Per-direction state of a TCP stream.
#[derive(Debug)]
struct Stream {
    mode: Mode,
    /// Bytes received but not yet consumed (an incomplete message or frame).
    buf: Vec<u8>,
    /// The WebSocket message being assembled from fragments.
    ws_message: Vec<u8>,
    /// Frames in `ws_message`; `None` while skipping the rest of a message that was dropped.
    ws_frames: Option<u32>,
}

impl Stream {
    fn new() -> Self {
        Stream {
            mode: Mode::Detect,
            buf: Vec::new(),
            ws_message: Vec::new(),
            ws_frames: Some(0),
        }
    }

    fn held(&self) -> usize {
        self.buf.capacity() + self.ws_message.capacity()
    }
}

/// What stream processing needs besides the stream itself.
struct Ctx<'a, S: ?Sized> {
    emitter: &'a mut Emitter,
    media: &'a mut MediaTable,
    cfg: &'a AgentConfig,
    counters: &'a Counters,
    sink: &'a mut S,
}

impl<S: HepSink + ?Sized> Ctx<'_, S> {
    fn emit_sip(&mut self, meta: &Meta, message: &[u8]) {
        if !self.cfg.discard_methods.is_empty()
            && cseq_method(message).is_some_and(|m| self.cfg.discards_method(m))
        {
            Counters::add(&self.counters.discarded, 1);
            return;
        }
        if self.cfg.rtcp && memchr::memmem::find(message, b"\nv=0").is_some() {
            self.media.learn(&sip::index(message), meta.timestamp);
        }
        self.emitter
            .emit(meta, proto_type::SIP, message, None, self.sink);
    }
}

/// The decoding pipeline of the capture agent: feed it captured frames in capture order, it
/// calls a [`HepSink`] with every HEP message they produce. Single-threaded and synchronous;
/// memory is bounded by [`AgentConfig`].
pub struct Pipeline {
    cfg: AgentConfig,
    counters: Arc<Counters>,
    defrag: Defragmenter,
    defrag_reassembled: u64,
    tcp: TcpReassembler,
    tcp_gaps: u64,
    streams: HashMap<FlowKey, Stream>,
    stream_bytes: usize,
    sctp: HashMap<(FlowKey, u16), Vec<u8>>,
    dedup: Dedup,
    media: MediaTable,
    emitter: Emitter,
    /// Where every captured frame is also written (`--write-pcap`), if anywhere.
    pcap: Option<RotatingPcap>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("streams", &self.streams.len())
            .field("stream_bytes", &self.stream_bytes)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline counting into `counters`.
    pub fn new(cfg: AgentConfig, counters: Arc<Counters>) -> Self {
        let message = HepMessage {
            capture_id: Some(cfg.capture_id),
            auth_key: cfg.auth_key.as_ref().map(|k| k.as_bytes().to_vec()),
            node_name: (!cfg.node_name.is_empty()).then(|| cfg.node_name.as_bytes().to_vec()),
            ..HepMessage::default()
        };
        Pipeline {
            defrag: Defragmenter::new(cfg.defrag()),
            defrag_reassembled: 0,
            tcp: TcpReassembler::new(cfg.tcp()),
            tcp_gaps: 0,
            streams: HashMap::new(),
            stream_bytes: 0,
            sctp: HashMap::new(),
            dedup: Dedup::new(
                Duration::from_millis(cfg.dedup_window_ms),
                cfg.dedup_max_entries,
            ),
            media: MediaTable::new(
                Duration::from_secs(cfg.media_ttl_secs),
                cfg.media_max_entries,
            ),
            emitter: Emitter {
                message,
                out: Vec::with_capacity(2048),
                counters: counters.clone(),
                discard_ips: cfg.discard_ips.clone(),
            },
            pcap: None,
            counters,
            cfg,
        }
    }

    /// Also writes every captured frame, as read, to rotated pcap files.
    pub fn write_pcap(&mut self, out: RotatingPcap) {
        self.pcap = Some(out);
    }

    /// The counters this pipeline updates.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Bytes held for incomplete work: stream buffers, out-of-order TCP data, IP fragments,
    /// SCTP fragments (bookkeeping included where the layers charge it).
    pub fn buffered_bytes(&self) -> usize {
        self.stream_bytes
            + self.tcp.buffered_bytes()
            + self.defrag.buffered_bytes()
            + self.sctp.values().map(Vec::capacity).sum::<usize>()
    }

    /// Decodes one captured frame.
    pub fn process<S: HepSink + ?Sized>(
        &mut self,
        link_type: LinkType,
        timestamp: Timestamp,
        frame: &[u8],
        sink: &mut S,
    ) {
        let c = &*self.counters;
        Counters::add(&c.seen, 1);
        Counters::add(&c.bytes_seen, frame.len() as u64);
        if let Some(pcap) = &mut self.pcap {
            pcap.write(link_type, timestamp, frame, c);
        }
        let decoded = decode_packet(link_type, timestamp, frame, &mut self.defrag);
        let reassembled = self.defrag.stats().reassembled;
        if reassembled != self.defrag_reassembled {
            let n = reassembled - self.defrag_reassembled;
            self.defrag_reassembled = reassembled;
            Counters::add(&c.ip_reassembled, n);
            Counters::add(&c.reassembled, n);
        }
        let decoded = match decoded {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(err) => {
                tracing::trace!(%err, "undecodable packet");
                Counters::add(&c.decode_errors, 1);
                Counters::add(&c.errors, 1);
                return;
            }
        };
        match decoded.transport {
            Transport::Udp { src_port, dst_port } => {
                self.udp(&decoded, src_port, dst_port, timestamp, sink)
            }
            Transport::Tcp(_) => self.tcp_segment(&decoded, timestamp, sink),
            Transport::Sctp {
                src_port, dst_port, ..
            } => self.sctp_packet(&decoded, src_port, dst_port, timestamp, sink),
            Transport::Icmp { .. } | Transport::Other(_) => {}
        }
    }

    /// End of input: closes every TCP stream (delivering what was buffered) and forgets
    /// partial SCTP messages.
    pub fn finish<S: HepSink + ?Sized>(&mut self, sink: &mut S) {
        if let Some(pcap) = &mut self.pcap {
            pcap.close(&self.counters);
        }
        let events = self.tcp.flush_all();
        self.stream_events(events, sink);
        self.sctp.clear();
    }

    fn is_duplicate(&mut self, decoded: &Decoded<'_>, ip_proto: u8, timestamp: Timestamp) -> bool {
        if self.cfg.dedup_window_ms == 0 {
            return false;
        }
        let mut key = [0u8; 37];
        let (src, dst) = (ip_bytes(decoded.src), ip_bytes(decoded.dst));
        key[..16].copy_from_slice(&src);
        key[16..32].copy_from_slice(&dst);
        key[32..34].copy_from_slice(&decoded.src_port().unwrap_or(0).to_be_bytes());
        key[34..36].copy_from_slice(&decoded.dst_port().unwrap_or(0).to_be_bytes());
        key[36] = ip_proto;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&key);
        hasher.update(decoded.payload());
        let hash = hasher.digest();
        let duplicate = self.dedup.is_duplicate(hash, timestamp);
        if duplicate {
            Counters::add(&self.counters.duplicates, 1);
        }
        duplicate
    }

    fn udp<S: HepSink + ?Sized>(
        &mut self,
        decoded: &Decoded<'_>,
        src_port: u16,
        dst_port: u16,
        timestamp: Timestamp,
        sink: &mut S,
    ) {
        let payload = decoded.payload();
        if payload.is_empty() || self.is_duplicate(decoded, IPPROTO_UDP, timestamp) {
            return;
        }
        let meta = Meta {
            src: decoded.src,
            dst: decoded.dst,
            src_port,
            dst_port,
            ip_proto: IPPROTO_UDP,
            timestamp,
            vlan: first_vlan(decoded),
        };
        let c = &*self.counters;
        if looks_like_sip(payload) {
            Counters::add(&c.sip_udp, 1);
            let mut ctx = Ctx {
                emitter: &mut self.emitter,
                media: &mut self.media,
                cfg: &self.cfg,
                counters: c,
                sink,
            };
            ctx.emit_sip(&meta, payload);
        } else if self.cfg.dns && (src_port == 53 || dst_port == 53) {
            if payload::dns::parse(payload).is_ok() {
                Counters::add(&c.dns, 1);
                self.emitter
                    .emit(&meta, proto_type::DNS, payload, None, sink);
            }
        } else if self.cfg.rtcp && looks_like_rtcp(payload) {
            self.rtcp(&meta, payload, sink);
        }
    }

    fn rtcp<S: HepSink + ?Sized>(&mut self, meta: &Meta, payload: &[u8], sink: &mut S) {
        let c = &*self.counters;
        let now = meta.timestamp;
        let call_id = self
            .media
            .lookup(SocketAddr::new(meta.src, meta.src_port), now)
            .or_else(|| {
                self.media
                    .lookup(SocketAddr::new(meta.dst, meta.dst_port), now)
            });
        if call_id.is_none() {
            Counters::add(&c.rtcp_uncorrelated, 1);
            if !self.cfg.rtcp_uncorrelated {
                return;
            }
        }
        let Ok(report) = payload::rtcp::parse(payload) else {
            Counters::add(&c.errors, 1);
            return;
        };
        let Ok(json) = serde_json::to_vec(&payload::rtcp::to_json(&report)) else {
            Counters::add(&c.errors, 1);
            return;
        };
        Counters::add(&c.rtcp, 1);
        self.emitter
            .emit(meta, proto_type::RTCP, &json, call_id, sink);
    }

    fn sctp_packet<S: HepSink + ?Sized>(
        &mut self,
        decoded: &Decoded<'_>,
        src_port: u16,
        dst_port: u16,
        timestamp: Timestamp,
        sink: &mut S,
    ) {
        if self.is_duplicate(decoded, IPPROTO_SCTP, timestamp) {
            return;
        }
        let Some(flow) = decoded.flow_key() else {
            return;
        };
        let meta = Meta {
            vlan: first_vlan(decoded),
            ..Meta::of_flow(flow, IPPROTO_SCTP, timestamp)
        };
        debug_assert_eq!((meta.src_port, meta.dst_port), (src_port, dst_port));
        const BEGIN: u8 = 0x02;
        const END: u8 = 0x01;
        let c = &*self.counters;
        for chunk in decoded.sctp_data_chunks() {
            let key = (flow, chunk.stream_id);
            let (begin, end) = (chunk.flags & BEGIN != 0, chunk.flags & END != 0);
            let message: std::borrow::Cow<'_, [u8]> = match (begin, end) {
                (true, true) => chunk.data.into(),
                (true, false) => {
                    if self.sctp.len() >= MAX_SCTP_PARTIALS {
                        self.sctp.clear();
                        Counters::add(&c.sip_stream_errors, 1);
                    }
                    self.sctp.insert(key, chunk.data.to_vec());
                    continue;
                }
                (false, _) => {
                    let Some(partial) = self.sctp.get_mut(&key) else {
                        continue;
                    };
                    if partial.len() + chunk.data.len() > self.cfg.max_message_len {
                        self.sctp.remove(&key);
                        Counters::add(&c.sip_stream_errors, 1);
                        continue;
                    }
                    partial.extend_from_slice(chunk.data);
                    if !end {
                        continue;
                    }
                    Counters::add(&c.reassembled, 1);
                    self.sctp.remove(&key).unwrap_or_default().into()
                }
            };
            if looks_like_sip(&message) {
                Counters::add(&c.sip_sctp, 1);
                let mut ctx = Ctx {
                    emitter: &mut self.emitter,
                    media: &mut self.media,
                    cfg: &self.cfg,
                    counters: c,
                    sink: &mut *sink,
                };
                ctx.emit_sip(&meta, &message);
            }
        }
    }

    fn tcp_segment<S: HepSink + ?Sized>(
        &mut self,
        decoded: &Decoded<'_>,
        timestamp: Timestamp,
        sink: &mut S,
    ) {
        let Some(segment) = TcpSegment::from_decoded(decoded, timestamp) else {
            return;
        };
        Counters::add(&self.counters.tcp_segments, 1);
        let events = self.tcp.feed(&segment);
        self.stream_events(events, sink);
    }

    fn stream_events<S: HepSink + ?Sized>(&mut self, events: Vec<StreamEvent<'_>>, sink: &mut S) {
        let gaps = self.tcp.stats().gaps;
        if gaps != self.tcp_gaps {
            Counters::add(&self.counters.tcp_gaps, gaps - self.tcp_gaps);
            self.tcp_gaps = gaps;
        }
        for event in events {
            match event {
                StreamEvent::Data {
                    flow,
                    timestamp,
                    data,
                    ..
                } => self.stream_data(flow, timestamp, &data, sink),
                StreamEvent::Gap { flow, .. } => {
                    if let Some(stream) = self.streams.get_mut(&flow) {
                        self.stream_bytes -= stream.held();
                        stream.buf = Vec::new();
                        stream.ws_message = Vec::new();
                        stream.mode = match stream.mode {
                            // A WebSocket stream cannot find its frame boundaries again.
                            Mode::WebSocket | Mode::Ignore => Mode::Ignore,
                            _ => Mode::Detect,
                        };
                    }
                }
                StreamEvent::Closed { flow, .. } => {
                    if let Some(stream) = self.streams.remove(&flow) {
                        self.stream_bytes -= stream.held();
                        if stream.mode == Mode::Sip
                            && !sip::is_keepalive(&stream.buf)
                            && !stream.buf.is_empty()
                        {
                            Counters::add(&self.counters.sip_stream_errors, 1);
                        }
                    }
                }
            }
        }
    }

    fn stream_data<S: HepSink + ?Sized>(
        &mut self,
        flow: FlowKey,
        timestamp: Timestamp,
        data: &[u8],
        sink: &mut S,
    ) {
        let stream = self.streams.entry(flow).or_insert_with(Stream::new);
        if stream.mode == Mode::Ignore {
            return;
        }
        let held_before = stream.held();
        let mut ctx = Ctx {
            emitter: &mut self.emitter,
            media: &mut self.media,
            cfg: &self.cfg,
            counters: &self.counters,
            sink,
        };
        let meta = Meta::of_flow(flow, IPPROTO_TCP, timestamp);
        if stream.buf.is_empty() {
            // Fast path: frame messages straight out of the segment, keep only the remainder.
            let consumed = consume(stream, data, 0, &meta, &mut ctx);
            stream
                .buf
                .extend_from_slice(data.get(consumed..).unwrap_or_default());
        } else {
            let earlier = stream.buf.len();
            let mut buf = std::mem::take(&mut stream.buf);
            buf.extend_from_slice(data);
            let consumed = consume(stream, &buf, earlier, &meta, &mut ctx);
            buf.drain(..consumed.min(buf.len()));
            stream.buf = buf;
        }
        if stream.buf.is_empty() && stream.buf.capacity() > 64 * 1024 {
            stream.buf = Vec::new();
        }
        // Memory bound: a direction may hold one message, all of them together a budget.
        let held = stream.held();
        let over_total = self.stream_bytes - held_before + held > self.cfg.max_stream_buffer_total;
        if stream.buf.len() > self.cfg.max_message_len.saturating_add(MAX_HTTP_HEADER) || over_total
        {
            Counters::add(&self.counters.sip_stream_errors, 1);
            stream.buf = Vec::new();
            stream.ws_message = Vec::new();
            stream.mode = match stream.mode {
                Mode::WebSocket | Mode::Http | Mode::Ignore => Mode::Ignore,
                _ => Mode::Detect,
            };
        }
        self.stream_bytes = self.stream_bytes - held_before + stream.held();
    }
}

/// Consumes what it can of `bytes` (the stream's pending bytes; those before `earlier` came
/// from previous segments), emitting complete messages; returns how many bytes were consumed.
fn consume<S: HepSink + ?Sized>(
    stream: &mut Stream,
    bytes: &[u8],
    earlier: usize,
    meta: &Meta,
    ctx: &mut Ctx<'_, S>,
) -> usize {
    let max = ctx.cfg.max_message_len;
    let mut pos = 0;
    loop {
        let rest = bytes.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            return pos;
        }
        match stream.mode {
            Mode::Ignore => return bytes.len(),
            Mode::Detect => {
                let skip = rest
                    .iter()
                    .position(|&b| b != b'\r' && b != b'\n')
                    .unwrap_or(rest.len());
                pos += skip;
                let rest = &rest[skip..];
                let Some(nl) = memchr::memchr(b'\n', rest) else {
                    // Keep a partial line only while it can still become a start line.
                    let printable = rest
                        .iter()
                        .all(|&b| b == b'\t' || b == b'\r' || (0x20..0x7f).contains(&b));
                    return if printable && rest.len() < MAX_START_LINE {
                        pos
                    } else {
                        bytes.len()
                    };
                };
                let line = &rest[..nl];
                let line_trimmed = line.strip_suffix(b"\r").unwrap_or(line);
                if is_sip_start_line(line) {
                    stream.mode = Mode::Sip;
                } else if line_trimmed.starts_with(b"GET ") && line_trimmed.ends_with(b" HTTP/1.1")
                    || line_trimmed.starts_with(b"HTTP/1.1 101")
                {
                    stream.mode = Mode::Http;
                } else {
                    pos += nl + 1;
                }
            }
            Mode::Sip => match sip::message_len(rest, max) {
                Ok(Some(n)) => {
                    let message = &rest[..n];
                    if !sip::is_keepalive(message) {
                        Counters::add(&ctx.counters.sip_tcp, 1);
                        if pos < earlier {
                            Counters::add(&ctx.counters.reassembled, 1);
                        }
                        ctx.emit_sip(meta, message);
                    }
                    pos += n;
                }
                Ok(None) => return pos,
                Err(err) => {
                    tracing::debug!(%err, flow = ?(meta.src, meta.src_port, meta.dst, meta.dst_port), "SIP stream resynchronising");
                    Counters::add(&ctx.counters.sip_stream_errors, 1);
                    Counters::add(&ctx.counters.errors, 1);
                    stream.mode = Mode::Detect;
                    // Drop the offending start line; Detect looks for the next message.
                    pos += memchr::memchr(b'\n', rest).map_or(rest.len(), |nl| nl + 1);
                }
            },
            Mode::Http => {
                let Some(end) = memchr::memmem::find(rest, b"\r\n\r\n") else {
                    if rest.len() > MAX_HTTP_HEADER {
                        stream.mode = Mode::Ignore;
                    }
                    return pos;
                };
                stream.mode = if websocket::is_upgrade(&rest[..end]) {
                    Mode::WebSocket
                } else {
                    Mode::Ignore
                };
                pos += end + 4;
            }
            Mode::WebSocket => {
                let header = match websocket::parse_header(rest, max) {
                    Ok(Some(h)) if h.frame_len() <= rest.len() => h,
                    Ok(_) => return pos,
                    Err(err) => {
                        tracing::debug!(%err, "WebSocket stream abandoned");
                        Counters::add(&ctx.counters.sip_stream_errors, 1);
                        Counters::add(&ctx.counters.errors, 1);
                        stream.mode = Mode::Ignore;
                        return bytes.len();
                    }
                };
                let payload = &rest[header.header_len..header.frame_len()];
                let spanned = pos < earlier;
                pos += header.frame_len();
                if header.is_control() {
                    continue;
                }
                if header.opcode != opcode::CONTINUATION {
                    stream.ws_message.clear();
                    stream.ws_frames = Some(0);
                }
                if let Some(frames) = stream.ws_frames {
                    if stream.ws_message.len() + payload.len() > max {
                        Counters::add(&ctx.counters.sip_stream_errors, 1);
                        stream.ws_message = Vec::new();
                        stream.ws_frames = None;
                    } else {
                        websocket::unmask_into(payload, header.mask, &mut stream.ws_message);
                        stream.ws_frames = Some(frames + 1 + u32::from(spanned));
                    }
                }
                if header.fin {
                    if let Some(frames) = stream.ws_frames.take() {
                        let message = std::mem::take(&mut stream.ws_message);
                        if looks_like_sip(&message) {
                            Counters::add(&ctx.counters.sip_websocket, 1);
                            if frames > 1 {
                                Counters::add(&ctx.counters.reassembled, 1);
                            }
                            ctx.emit_sip(meta, &message);
                        }
                        stream.ws_message = message;
                        stream.ws_message.clear();
                    }
                    stream.ws_frames = Some(0);
                }
            }
        }
    }
}

/// The method of a SIP message's CSeq header (a response's tells which request it answers).
fn cseq_method(message: &[u8]) -> Option<&[u8]> {
    let cseq = sip::headers(message).find(|h| h.is("CSeq"))?;
    cseq.value
        .as_bytes()
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .nth(1)
}

fn first_vlan(decoded: &Decoded<'_>) -> Option<u16> {
    decoded.link.vlans.as_slice().first().copied()
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines() {
        assert!(is_sip_start_line(b"INVITE sip:a@b SIP/2.0\r"));
        assert!(is_sip_start_line(b"SIP/2.0 200 OK"));
        assert!(!is_sip_start_line(b"SIP/2.0 2x0 OK"));
        assert!(!is_sip_start_line(b"GET / HTTP/1.1"));
        assert!(!is_sip_start_line(b" SIP/2.0"));
    }

    #[test]
    fn rtcp_recognition() {
        // An RR with one report block (32 bytes) followed by an SDES (12 bytes).
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&[0; 28]);
        rr.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0]);
        assert!(looks_like_rtcp(&rr));
        let mut bad = rr.clone();
        bad.push(0);
        assert!(!looks_like_rtcp(&bad));
        // RTP, payload type 0.
        assert!(!looks_like_rtcp(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    }
}
