//! From a captured frame to the transport payload: link, IP (with defragmentation),
//! tunnels, and UDP/TCP/SCTP/ICMP.

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Range;

use crate::defrag::{Defragmenter, Fragment};
use crate::error::LayerError;
use crate::ip::{parse_ipv4, parse_ipv6, proto, walk_ipv6_extensions, MAX_IPV6_EXTENSION_HEADERS};
use crate::link::{header, parse_ethernet, parse_link, LinkInfo, LinkType, Network};
use crate::time::Timestamp;

/// Most tunnel layers decapsulated from one packet.
pub const MAX_TUNNEL_DEPTH: usize = 4;
/// The IANA VXLAN port; UDP to it carrying a valid VXLAN header is decapsulated.
pub const VXLAN_PORT: u16 = 4789;

const GRE_PROTO_IPV4: u16 = 0x0800;
const GRE_PROTO_IPV6: u16 = 0x86dd;
const GRE_PROTO_ETHERNET: u16 = 0x6558;
const GRE_PROTO_ERSPAN_2: u16 = 0x88be;
const GRE_PROTO_ERSPAN_3: u16 = 0x22eb;

/// The kind of an encapsulation that was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (protocols 4 and 41).
    IpInIp,
    /// GRE (version 0) with its optional key and sequence number.
    Gre {
        /// The key field, when present.
        key: Option<u32>,
        /// The sequence number, when present.
        sequence: Option<u32>,
    },
    /// VXLAN over UDP.
    Vxlan {
        /// The 24-bit VXLAN network identifier.
        vni: u32,
    },
    /// ERSPAN mirroring inside GRE (type I, II or III).
    Erspan {
        /// ERSPAN type: 1, 2 or 3.
        version: u8,
        /// Session id (0 for type I, which has no ERSPAN header).
        session_id: u16,
        /// VLAN of the mirrored frame as the ERSPAN header records it.
        vlan: u16,
    },
}

/// A removed encapsulation layer and the outer addresses it travelled between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// What the encapsulation was.
    pub kind: TunnelKind,
    /// Outer source address.
    pub outer_src: IpAddr,
    /// Outer destination address.
    pub outer_dst: IpAddr,
}

/// TCP header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The TCP header fields a consumer needs; options are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Receive window (unscaled).
    pub window: u16,
}

/// The transport layer of a decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP; the payload is the datagram body.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// TCP; the payload is the segment's data.
    Tcp(TcpHeader),
    /// SCTP; the payload is the chunk area, see [`Decoded::sctp_data_chunks`].
    Sctp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Verification tag.
        verification_tag: u32,
    },
    /// ICMP or ICMPv6, recognised so callers can ignore it; the payload is the message after
    /// type, code and checksum (for errors, the quoted packet, which is not decoded).
    Icmp {
        /// Message type.
        icmp_type: u8,
        /// Message code.
        code: u8,
    },
    /// Another IP protocol (including GRE carrying something other than IP or Ethernet);
    /// the payload is the IP payload.
    Other(u8),
}

/// A flow direction: source and destination address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dst_port: u16,
}

impl FlowKey {
    /// The opposite direction of the same connection.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            src_port: self.dst_port,
            dst: self.src,
            dst_port: self.src_port,
        }
    }
}

/// A decoded packet: addresses, transport header and payload. Borrows the frame unless IP
/// fragments were reassembled, in which case it owns the reassembled datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The captured frame's link layer.
    pub link: LinkInfo,
    /// The link layer of the innermost Ethernet frame carried in a tunnel (GRE/ERSPAN/VXLAN).
    pub inner_link: Option<LinkInfo>,
    /// Removed encapsulations, outermost first (empty for plain traffic: no allocation).
    pub tunnels: Vec<Tunnel>,
    /// Source address of the innermost IP header.
    pub src: IpAddr,
    /// Destination address of the innermost IP header.
    pub dst: IpAddr,
    /// The transport layer.
    pub transport: Transport,
    /// Whether IP fragments were reassembled to produce this packet.
    pub reassembled: bool,
    data: Cow<'a, [u8]>,
    payload: Range<usize>,
}

impl<'a> Decoded<'a> {
    /// The transport payload (UDP body, TCP data, SCTP chunks, ...).
    pub fn payload(&self) -> &[u8] {
        self.data.get(self.payload.clone()).unwrap_or_default()
    }

    /// Source port for UDP, TCP and SCTP.
    pub fn src_port(&self) -> Option<u16> {
        match self.transport {
            Transport::Udp { src_port, .. } | Transport::Sctp { src_port, .. } => Some(src_port),
            Transport::Tcp(h) => Some(h.src_port),
            _ => None,
        }
    }

    /// Destination port for UDP, TCP and SCTP.
    pub fn dst_port(&self) -> Option<u16> {
        match self.transport {
            Transport::Udp { dst_port, .. } | Transport::Sctp { dst_port, .. } => Some(dst_port),
            Transport::Tcp(h) => Some(h.dst_port),
            _ => None,
        }
    }

    /// The flow direction, for transports with ports.
    pub fn flow_key(&self) -> Option<FlowKey> {
        Some(FlowKey {
            src: self.src,
            src_port: self.src_port()?,
            dst: self.dst,
            dst_port: self.dst_port()?,
        })
    }

    /// The DATA chunks of an SCTP packet (empty for other transports).
    pub fn sctp_data_chunks(&self) -> SctpDataChunks<'_> {
        let rest = match self.transport {
            Transport::Sctp { .. } => self.payload(),
            _ => &[],
        };
        SctpDataChunks { rest }
    }

    /// A copy that no longer borrows the frame.
    pub fn into_owned(self) -> Decoded<'static> {
        Decoded {
            link: self.link,
            inner_link: self.inner_link,
            tunnels: self.tunnels,
            src: self.src,
            dst: self.dst,
            transport: self.transport,
            reassembled: self.reassembled,
            data: Cow::Owned(self.data.into_owned()),
            payload: self.payload,
        }
    }
}

/// One SCTP DATA chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpDataChunk<'a> {
    /// Chunk flags (U, B, E, I bits).
    pub flags: u8,
    /// Transmission sequence number.
    pub tsn: u32,
    /// Stream identifier.
    pub stream_id: u16,
    /// Stream sequence number.
    pub stream_seq: u16,
    /// Payload protocol identifier (e.g. 0 unspecified; SIP over SCTP commonly uses 0).
    pub ppid: u32,
    /// User data.
    pub data: &'a [u8],
}

/// Iterator over the DATA chunks of an SCTP packet; other chunk types are skipped and a
/// malformed chunk ends the iteration.
#[derive(Debug, Clone)]
pub struct SctpDataChunks<'a> {
    rest: &'a [u8],
}

const SCTP_CHUNK_DATA: u8 = 0;
const SCTP_DATA_HEADER: usize = 16;

impl<'a> Iterator for SctpDataChunks<'a> {
    type Item = SctpDataChunk<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let h = header::<4>(self.rest, "SCTP chunk").ok()?;
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let Some(chunk) = self.rest.get(..len).filter(|_| len >= 4) else {
                self.rest = &[];
                return None;
            };
            // Chunks are padded to 4 bytes; the last one's padding may be missing.
            let padded = len.next_multiple_of(4).min(self.rest.len());
            self.rest = self.rest.get(padded..).unwrap_or_default();
            if h[0] != SCTP_CHUNK_DATA || len < SCTP_DATA_HEADER {
                continue;
            }
            let d = header::<SCTP_DATA_HEADER>(chunk, "SCTP DATA").ok()?;
            return Some(SctpDataChunk {
                flags: h[1],
                tsn: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
                stream_id: u16::from_be_bytes([d[8], d[9]]),
                stream_seq: u16::from_be_bytes([d[10], d[11]]),
                ppid: u32::from_be_bytes([d[12], d[13], d[14], d[15]]),
                data: chunk.get(SCTP_DATA_HEADER..).unwrap_or_default(),
            });
        }
    }
}

/// What to decode next.
#[derive(Debug, Clone, Copy)]
enum Step {
    Ethernet,
    Ipv4,
    Ipv6,
    /// An IP payload of this protocol.
    Protocol(u8),
}

/// Decodes one captured frame down to its transport payload.
///
/// Returns `Ok(None)` when there is nothing to deliver: a non-IP frame (ARP, LLC, ...), or a
/// fragment the defragmenter keeps until its datagram completes. `now` is the packet's
/// timestamp; it drives the defragmenter's expiry. Unfragmented packets are not copied.
pub fn decode_packet<'a>(
    link_type: LinkType,
    now: Timestamp,
    frame: &'a [u8],
    defrag: &mut Defragmenter,
) -> Result<Option<Decoded<'a>>, LayerError> {
    let link = parse_link(link_type, frame)?;
    let mut step = match link.network {
        Network::Ipv4 => Step::Ipv4,
        Network::Ipv6 => Step::Ipv6,
        Network::Other(_) => return Ok(None),
    };
    let mut data: Cow<'a, [u8]> = Cow::Borrowed(frame);
    // The layer being decoded lies in data[start..end].
    let mut start = link.offset;
    let mut end = frame.len();
    let mut tunnels = Vec::new();
    let mut inner_link = None;
    let mut reassembled = false;
    let mut addrs: Option<(IpAddr, IpAddr)> = None;
    let mut ext_budget = MAX_IPV6_EXTENSION_HEADERS;

    loop {
        let view = data.get(start..end).unwrap_or_default();
        match step {
            Step::Ethernet => {
                let inner = parse_ethernet(view)?;
                start += inner.offset;
                inner_link = Some(inner);
                step = match inner.network {
                    Network::Ipv4 => Step::Ipv4,
                    Network::Ipv6 => Step::Ipv6,
                    Network::Other(_) => return Ok(None),
                };
            }
            Step::Ipv4 => {
                let h = parse_ipv4(view)?;
                let (src, dst) = (IpAddr::V4(h.src), IpAddr::V4(h.dst));
                addrs = Some((src, dst));
                end = start + h.total_len;
                start += h.header_len;
                if h.is_fragment() {
                    let fragment = Fragment {
                        src,
                        dst,
                        id: u32::from(h.id),
                        protocol: h.protocol,
                        offset: h.frag_offset,
                        more: h.more_fragments,
                        payload: data.get(start..end).unwrap_or_default(),
                    };
                    let Some(whole) = defrag.push(now, fragment) else {
                        return Ok(None);
                    };
                    (start, end) = (0, whole.payload.len());
                    data = Cow::Owned(whole.payload);
                    reassembled = true;
                }
                step = Step::Protocol(h.protocol);
            }
            Step::Ipv6 => {
                let h = parse_ipv6(view)?;
                let (src, dst) = (IpAddr::V6(h.src), IpAddr::V6(h.dst));
                addrs = Some((src, dst));
                end = start + h.total_len;
                let chain = walk_ipv6_extensions(
                    data.get(..end).unwrap_or_default(),
                    start + 40,
                    h.next_header,
                    &mut ext_budget,
                )?;
                start = chain.offset;
                let mut next = chain.next_header;
                if let Some(frag) = chain.fragment {
                    let fragment = Fragment {
                        src,
                        dst,
                        id: frag.id,
                        protocol: chain.next_header,
                        offset: frag.offset,
                        more: frag.more,
                        payload: data.get(start..end).unwrap_or_default(),
                    };
                    let Some(whole) = defrag.push(now, fragment) else {
                        return Ok(None);
                    };
                    data = Cow::Owned(whole.payload);
                    reassembled = true;
                    // Extension headers may follow the fragment header in the fragmentable part.
                    let rest = walk_ipv6_extensions(&data, 0, whole.protocol, &mut ext_budget)?;
                    if rest.fragment.is_some() {
                        return Err(LayerError::malformed("IPv6", "fragment inside a fragment"));
                    }
                    (start, end) = (rest.offset, data.len());
                    next = rest.next_header;
                }
                step = Step::Protocol(next);
            }
            Step::Protocol(protocol) => {
                let (src, dst) = addrs.ok_or(LayerError::malformed("IP", "no IP header"))?;
                match transport_step(protocol, view, src.is_ipv6())? {
                    ProtoOutcome::Decapsulate { kind, inner, next } => {
                        if tunnels.len() >= MAX_TUNNEL_DEPTH {
                            return Err(LayerError::TunnelTooDeep(MAX_TUNNEL_DEPTH));
                        }
                        tunnels.push(Tunnel {
                            kind,
                            outer_src: src,
                            outer_dst: dst,
                        });
                        (start, end) = (start + inner.start, start + inner.end);
                        step = next;
                    }
                    ProtoOutcome::Deliver { transport, payload } => {
                        return Ok(Some(Decoded {
                            link,
                            inner_link,
                            tunnels,
                            src,
                            dst,
                            transport,
                            reassembled,
                            data,
                            payload: start + payload.start..start + payload.end,
                        }));
                    }
                }
            }
        }
    }
}

/// What an IP payload turned out to be.
enum ProtoOutcome {
    /// An encapsulation: `inner` (relative to the IP payload) is decoded next as `next`.
    Decapsulate {
        kind: TunnelKind,
        inner: Range<usize>,
        next: Step,
    },
    /// A transport layer whose payload is `payload` (relative to the IP payload).
    Deliver {
        transport: Transport,
        payload: Range<usize>,
    },
}

/// Decodes the IP payload `view` of the given protocol.
fn transport_step(protocol: u8, view: &[u8], ipv6: bool) -> Result<ProtoOutcome, LayerError> {
    let whole = 0..view.len();
    Ok(match protocol {
        proto::IPV4 => ProtoOutcome::Decapsulate {
            kind: TunnelKind::IpInIp,
            inner: whole,
            next: Step::Ipv4,
        },
        proto::IPV6 => ProtoOutcome::Decapsulate {
            kind: TunnelKind::IpInIp,
            inner: whole,
            next: Step::Ipv6,
        },
        proto::GRE => match parse_gre(view)? {
            Some(gre) => ProtoOutcome::Decapsulate {
                kind: gre.kind,
                inner: gre.header_len..view.len(),
                next: gre.next,
            },
            None => ProtoOutcome::Deliver {
                transport: Transport::Other(proto::GRE),
                payload: whole,
            },
        },
        proto::UDP => {
            let (src_port, dst_port, body) = parse_udp(view, ipv6)?;
            let vni = (dst_port == VXLAN_PORT)
                .then(|| vxlan_vni(view.get(body.clone()).unwrap_or_default()))
                .flatten();
            match vni {
                Some(vni) => ProtoOutcome::Decapsulate {
                    kind: TunnelKind::Vxlan { vni },
                    inner: body.start + VXLAN_HEADER_LEN..body.end,
                    next: Step::Ethernet,
                },
                None => ProtoOutcome::Deliver {
                    transport: Transport::Udp { src_port, dst_port },
                    payload: body,
                },
            }
        }
        proto::TCP => {
            let (tcp, header_len) = parse_tcp(view)?;
            ProtoOutcome::Deliver {
                transport: Transport::Tcp(tcp),
                payload: header_len..view.len(),
            }
        }
        proto::SCTP => {
            let h = header::<12>(view, "SCTP")?;
            ProtoOutcome::Deliver {
                transport: Transport::Sctp {
                    src_port: u16::from_be_bytes([h[0], h[1]]),
                    dst_port: u16::from_be_bytes([h[2], h[3]]),
                    verification_tag: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                },
                payload: 12..view.len(),
            }
        }
        proto::ICMP | proto::ICMPV6 => {
            let h = header::<4>(view, "ICMP")?;
            ProtoOutcome::Deliver {
                transport: Transport::Icmp {
                    icmp_type: h[0],
                    code: h[1],
                },
                payload: 4..view.len(),
            }
        }
        other => ProtoOutcome::Deliver {
            transport: Transport::Other(other),
            payload: whole,
        },
    })
}

const VXLAN_HEADER_LEN: usize = 8;
/// The VXLAN "I" flag: the VNI is valid.
const VXLAN_FLAG_VNI: u8 = 0x08;

/// The VNI of a VXLAN header, or `None` when `body` does not look like VXLAN (then the
/// datagram is delivered as plain UDP): the I flag must be set and the reserved last byte zero
/// (the group-policy extension uses the other reserved bits, so they are not checked).
fn vxlan_vni(body: &[u8]) -> Option<u32> {
    let h = header::<VXLAN_HEADER_LEN>(body, "VXLAN").ok()?;
    if h[0] & VXLAN_FLAG_VNI == 0 || h[7] != 0 || body.len() < VXLAN_HEADER_LEN + 14 {
        return None;
    }
    Some(u32::from_be_bytes([0, h[4], h[5], h[6]]))
}

/// UDP ports and the payload range within `segment`.
fn parse_udp(segment: &[u8], ipv6: bool) -> Result<(u16, u16, Range<usize>), LayerError> {
    let h = header::<8>(segment, "UDP")?;
    let mut len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if len == 0 && ipv6 {
        // IPv6 jumbograms carry the length in the hop-by-hop option instead.
        len = segment.len();
    }
    if len < 8 {
        return Err(LayerError::malformed("UDP", "length below header size"));
    }
    if len > segment.len() {
        return Err(LayerError::truncated("UDP", len, segment.len()));
    }
    Ok((
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]),
        8..len,
    ))
}

/// The TCP header and its length (options included).
fn parse_tcp(segment: &[u8]) -> Result<(TcpHeader, usize), LayerError> {
    let h = header::<20>(segment, "TCP")?;
    let header_len = usize::from(h[12] >> 4) * 4;
    if header_len < 20 {
        return Err(LayerError::malformed("TCP", "data offset below 5"));
    }
    if header_len > segment.len() {
        return Err(LayerError::truncated("TCP", header_len, segment.len()));
    }
    Ok((
        TcpHeader {
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            flags: TcpFlags(h[13]),
            window: u16::from_be_bytes([h[14], h[15]]),
        },
        header_len,
    ))
}

/// A GRE header understood well enough to decapsulate.
struct Gre {
    kind: TunnelKind,
    header_len: usize,
    next: Step,
}

/// Parses GRE version 0 (RFC 2784/2890) and ERSPAN I/II/III after it. `None` for versions and
/// protocols not decapsulated (e.g. PPTP's enhanced GRE, source routing, MPLS).
fn parse_gre(data: &[u8]) -> Result<Option<Gre>, LayerError> {
    let h = header::<4>(data, "GRE")?;
    let (flags, version) = (h[0], h[1] & 0x07);
    let (checksum, routing, key, seq) = (
        flags & 0x80 != 0,
        flags & 0x40 != 0,
        flags & 0x20 != 0,
        flags & 0x10 != 0,
    );
    if version != 0 || routing {
        return Ok(None);
    }
    let protocol = u16::from_be_bytes([h[2], h[3]]);
    let mut len = 4;
    if checksum {
        len += 4;
    }
    let field = |at: usize| -> Result<u32, LayerError> {
        let b = data
            .get(at..at + 4)
            .ok_or_else(|| LayerError::truncated("GRE", at + 4, data.len()))?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let key_value = if key {
        len += 4;
        Some(field(len - 4)?)
    } else {
        None
    };
    let seq_value = if seq {
        len += 4;
        Some(field(len - 4)?)
    } else {
        None
    };
    if len > data.len() {
        return Err(LayerError::truncated("GRE", len, data.len()));
    }
    let gre = TunnelKind::Gre {
        key: key_value,
        sequence: seq_value,
    };
    let rest = data.get(len..).unwrap_or_default();
    let (kind, extra, next) = match protocol {
        GRE_PROTO_IPV4 => (gre, 0, Step::Ipv4),
        GRE_PROTO_IPV6 => (gre, 0, Step::Ipv6),
        GRE_PROTO_ETHERNET => (gre, 0, Step::Ethernet),
        // Type I has no sequence number and no ERSPAN header.
        GRE_PROTO_ERSPAN_2 if !seq => (erspan(1, 0, 0), 0, Step::Ethernet),
        GRE_PROTO_ERSPAN_2 => {
            let e = header::<8>(rest, "ERSPAN II")?;
            let (vlan, session) = erspan_ids(&e);
            (erspan(2, session, vlan), 8, Step::Ethernet)
        }
        GRE_PROTO_ERSPAN_3 => {
            let e = header::<12>(rest, "ERSPAN III")?;
            let (vlan, session) = erspan_ids(&e);
            // The O flag announces an 8-byte platform-specific subheader.
            let extra = if e[11] & 0x01 != 0 { 20 } else { 12 };
            if rest.len() < extra {
                return Err(LayerError::truncated("ERSPAN III", extra, rest.len()));
            }
            (erspan(3, session, vlan), extra, Step::Ethernet)
        }
        _ => return Ok(None),
    };
    Ok(Some(Gre {
        kind,
        header_len: len + extra,
        next,
    }))
}

fn erspan(version: u8, session_id: u16, vlan: u16) -> TunnelKind {
    TunnelKind::Erspan {
        version,
        session_id,
        vlan,
    }
}

/// VLAN (12 bits after the version nibble) and session id (low 10 bits of the next u16).
fn erspan_ids(e: &[u8]) -> (u16, u16) {
    let word0 = u16::from_be_bytes([
        e.first().copied().unwrap_or(0),
        e.get(1).copied().unwrap_or(0),
    ]);
    let word1 = u16::from_be_bytes([
        e.get(2).copied().unwrap_or(0),
        e.get(3).copied().unwrap_or(0),
    ]);
    (word0 & 0x0fff, word1 & 0x03ff)
}
