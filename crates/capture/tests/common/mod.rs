//! Helpers shared by the integration tests: locating the samples, reading whole captures,
//! reassembling TCP streams and counting SIP messages.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capture::{
    decode_packet, open, Defragmenter, FlowKey, LinkType, PacketSource, StreamEvent, TcpConfig,
    TcpReassembler, TcpSegment, Timestamp,
};

/// The shared sample directory; a missing one fails the test with a clear message.
pub fn samples_dir() -> PathBuf {
    let dir = std::env::var_os("HEPSTACK_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/samples"
            ))
        });
    assert!(
        dir.is_dir(),
        "sample directory {} is missing: set HEPSTACK_SAMPLES to the shared/samples directory",
        dir.display()
    );
    dir
}

pub fn sample(rel: &str) -> PathBuf {
    let path = samples_dir().join(rel);
    assert!(path.is_file(), "sample {} is missing", path.display());
    path
}

pub fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// An owned copy of one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPacket {
    pub timestamp: Timestamp,
    pub link_type: LinkType,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Every packet of a capture held in memory; panics on any read error.
pub fn read_all(bytes: &[u8]) -> Vec<OwnedPacket> {
    let mut reader = open(bytes).expect("open capture");
    let mut packets = Vec::new();
    while let Some(p) = reader.next_packet().expect("read packet") {
        packets.push(OwnedPacket {
            timestamp: p.timestamp,
            link_type: p.link_type,
            orig_len: p.orig_len,
            data: p.data.to_vec(),
        });
    }
    packets
}

/// One reassembled direction.
#[derive(Debug, Default)]
pub struct Stream {
    pub data: Vec<u8>,
    pub gaps: u64,
    pub closed: usize,
}

/// Appends events to their streams, checking offsets are contiguous.
pub fn collect(streams: &mut BTreeMap<FlowKey, Stream>, events: Vec<StreamEvent<'_>>) {
    for event in events {
        let stream = streams.entry(event.flow()).or_default();
        assert_eq!(stream.closed, 0, "event after close: {event:?}");
        let expected = stream.data.len() as u64 + stream.gaps;
        match event {
            StreamEvent::Data { offset, data, .. } => {
                assert_eq!(offset, expected, "data offset not contiguous");
                stream.data.extend_from_slice(&data);
            }
            StreamEvent::Gap { offset, len, .. } => {
                assert_eq!(offset, expected, "gap offset not contiguous");
                stream.gaps += len;
            }
            StreamEvent::Closed { .. } => stream.closed += 1,
        }
    }
}

/// Reassembles every TCP direction of a capture. Closed directions that reopen (port reuse)
/// are appended to a fresh entry keyed by the same flow, so keep captures to one connection
/// per 4-tuple.
pub fn reassemble(bytes: &[u8], config: TcpConfig) -> BTreeMap<FlowKey, Stream> {
    let mut reader = open(bytes).expect("open capture");
    let mut defrag = Defragmenter::default();
    let mut tcp = TcpReassembler::new(config);
    let mut streams = BTreeMap::new();
    while let Some(p) = reader.next_packet().expect("read packet") {
        let Ok(Some(decoded)) = decode_packet(p.link_type, p.timestamp, p.data, &mut defrag) else {
            continue;
        };
        if let Some(segment) = TcpSegment::from_decoded(&decoded, p.timestamp) {
            collect(&mut streams, tcp.feed(&segment));
        }
    }
    collect(&mut streams, tcp.flush_all());
    streams
}

/// Counts SIP messages by their start lines and by CSeq header lines; the two must agree.
pub fn count_sip(stream: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(stream);
    let mut start_lines = 0;
    let mut cseq = 0;
    for line in text.split("\r\n") {
        let method = line.split(' ').next().unwrap_or_default();
        let is_request = line.ends_with(" SIP/2.0")
            && !method.is_empty()
            && method.bytes().all(|b| b.is_ascii_uppercase());
        if line.starts_with("SIP/2.0 ") || is_request {
            start_lines += 1;
        }
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case("cseq:") {
            cseq += 1;
        }
    }
    (start_lines, cseq)
}

pub fn flow(src: &str, src_port: u16, dst: &str, dst_port: u16) -> FlowKey {
    FlowKey {
        src: src.parse().expect("address"),
        src_port,
        dst: dst.parse().expect("address"),
        dst_port,
    }
}

/// `inner` behind a minimal outer IPv4 header of protocol `protocol` (192.0.2.1 -> .2).
pub fn wrap_ipv4(protocol: u8, inner: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + inner.len()).expect("fits IPv4");
    let mut p = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(inner);
    p
}

/// `inner` behind a minimal outer IPv6 header with next header `next` (2001:db8::1 -> ::2).
pub fn wrap_ipv6(next: u8, inner: &[u8]) -> Vec<u8> {
    let len = u16::try_from(inner.len()).expect("fits IPv6");
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .expect("addr")
            .octets(),
    );
    p.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .expect("addr")
            .octets(),
    );
    p.extend_from_slice(inner);
    p
}
