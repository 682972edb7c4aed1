//! The pure, libpcap-free core of packet capture for hepstack: reading capture files,
//! decoding packets down to their transport payload, putting IP fragments back together and
//! reassembling TCP byte streams.
//!
//! # Layers
//!
//! * **Files** ([`open`], [`PcapReader`], [`PcapngReader`], [`PcapWriter`]): classic pcap in
//!   both byte orders with micro- or nanosecond timestamps (and the "modified" variant);
//!   pcapng with any number of sections of either byte order, interfaces with their own link
//!   type, `if_tsresol` (powers of 10 and of 2) and `if_tsoffset`, enhanced, simple and
//!   obsolete packet blocks; other blocks are skipped unread. Readers are generic over
//!   [`std::io::Read`] (stdin works) and implement [`PacketSource`], which a live libpcap
//!   source can implement later. Timestamps are [`Timestamp`]s: seconds plus nanoseconds.
//! * **Links** ([`parse_link`]): Ethernet with 802.1Q/802.1ad VLAN stacks (ids kept), Linux
//!   cooked SLL and SLL2, raw IP (101, and 12/14 as BSDs number it; 228/229), BSD NULL in
//!   both byte orders, OpenBSD LOOP.
//! * **Network**: IPv4 (options skipped, checksum not verified) and IPv6 (hop-by-hop,
//!   routing, destination options, fragment and AH headers walked, at most
//!   [`MAX_IPV6_EXTENSION_HEADERS`]); fragments go to a [`Defragmenter`].
//! * **Tunnels**, decapsulated with a [`Tunnel`] note of each outer layer, at most
//!   [`MAX_TUNNEL_DEPTH`] deep: IP-in-IP (4/41 in v4 or v6), GRE (key, sequence; inner IP or
//!   Ethernet via 0x6558), ERSPAN I/II (0x88BE) and III (0x22EB), VXLAN (UDP 4789).
//! * **Transport** ([`decode_packet`]): UDP, TCP (options skipped), SCTP (common header;
//!   [`Decoded::sctp_data_chunks`] yields DATA chunks with PPID), ICMP/ICMPv6 recognised and
//!   not decoded further.
//! * **Streams** ([`TcpReassembler`]): in-order byte streams per connection direction.
//!
//! # Memory bounds and eviction
//!
//! * Readers never allocate from a length field beyond [`ReaderConfig::max_packet_len`]
//!   (256 KiB by default; pcapng blocks get 16 KiB extra for headers and options); a larger
//!   record is a [`CaptureError::TooLarge`]. Unknown pcapng blocks are streamed past, not
//!   buffered. At most [`MAX_INTERFACES`] interfaces per pcapng section.
//! * [`Defragmenter`]: a reassembled payload is at most 65535 bytes; pending fragments are
//!   charged (bytes plus per-piece bookkeeping) against a per address-pair budget, which drops
//!   the offending datagram, and a global budget, which drops the oldest datagrams first.
//!   Datagrams older than the timeout are dropped.
//! * [`TcpReassembler`]: out-of-order data per direction and in total are capped (excess
//!   makes the stream skip its hole and report a [`StreamEvent::Gap`]), the number of tracked
//!   directions is capped (idle ones expire first, then the least recently seen are evicted),
//!   and directions idle for the idle timeout are flushed and forgotten.
//! * Every timeout runs on packet timestamps, never the wall clock: replaying a capture gives
//!   the same events as capturing it live, and tests are deterministic.
//!
//! # Invariants
//!
//! * No input makes any function panic or allocate without bound; malformed input yields a
//!   typed error ([`CaptureError`], [`LayerError`]) or a partial result.
//! * A truncated file yields every complete packet, then one [`CaptureError::Truncated`],
//!   then `Ok(None)`; readers are fused after any error.
//! * Unfragmented packets are decoded without copying: [`Decoded`] borrows the frame. Only a
//!   reassembled datagram is owned.
//! * Overlapping IP fragments and TCP segments resolve **first copy wins**: bytes once
//!   accepted are never replaced, so the result is deterministic whatever the arrival order.
//! * Each reassembled TCP direction is delivered exactly once, in order, as `Data` and `Gap`
//!   events whose offsets are contiguous, ending with one `Closed` event.

mod decode;
mod defrag;
mod error;
mod ip;
mod link;
mod pcap;
mod pcapng;
mod ranges;
mod source;
mod tcp;
mod time;

pub use decode::{
    decode_packet, Decoded, FlowKey, SctpDataChunk, SctpDataChunks, TcpFlags, TcpHeader, Transport,
    Tunnel, TunnelKind, MAX_TUNNEL_DEPTH, VXLAN_PORT,
};
pub use defrag::{
    DefragConfig, DefragStats, Defragmenter, Fragment, Reassembled, MAX_DATAGRAM_LEN,
};
pub use error::{CaptureError, LayerError};
pub use ip::{proto, MAX_IPV6_EXTENSION_HEADERS};
pub use link::{
    parse_ethernet, parse_link, LinkInfo, LinkType, MacAddr, Network, Vlans, MAX_VLAN_TAGS,
};
pub use pcap::{PcapReader, PcapWriter, TsResolution, PCAP_MAGIC_MICROS, PCAP_MAGIC_NANOS};
pub use pcapng::{PcapngReader, MAX_INTERFACES};
pub use source::{
    open, open_with_config, CaptureReader, Packet, PacketSource, ReaderConfig,
    DEFAULT_MAX_PACKET_LEN,
};
pub use tcp::{CloseReason, StreamEvent, TcpConfig, TcpReassembler, TcpSegment, TcpStats};
pub use time::Timestamp;
