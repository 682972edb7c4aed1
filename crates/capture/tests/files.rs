//! File readers and the writer: round trips, both byte orders, pcapng features, limits.

mod common;

use capture::{
    open, open_with_config, CaptureError, CaptureReader, LinkType, PacketSource, PcapReader,
    PcapWriter, PcapngReader, ReaderConfig, Timestamp, TsResolution,
};
use common::*;

#[test]
fn pcap_writer_round_trip_micro_and_nano() {
    let bytes = read_file(&sample("heplify-pcaps/sip_ipv4_tcp_retrans.pcap"));
    let original = read_all(&bytes);
    assert_eq!(original[0].link_type, LinkType::LINUX_SLL);
    for resolution in [TsResolution::Micros, TsResolution::Nanos] {
        let mut writer =
            PcapWriter::new(Vec::new(), LinkType::LINUX_SLL, resolution, 65535).expect("header");
        for p in &original {
            writer
                .write_packet(p.timestamp, p.orig_len, &p.data)
                .expect("write");
        }
        writer.flush().expect("flush");
        let written = writer.into_inner();
        if resolution == TsResolution::Micros {
            // Same header fields and records as the original little-endian µs file.
            assert_eq!(written.len(), bytes.len());
        }
        let reader = PcapReader::new(&written[..]).expect("reader");
        assert_eq!(reader.resolution(), resolution);
        assert_eq!(reader.snaplen(), 65535);
        assert_eq!(reader.version(), (2, 4));
        assert_eq!(read_all(&written), original);
    }
}

#[test]
fn nanosecond_timestamps_survive_and_microseconds_truncate() {
    let ts = Timestamp::new(1_700_000_000, 123_456_789);
    let mut nano = PcapWriter::new(Vec::new(), LinkType::RAW, TsResolution::Nanos, 0).unwrap();
    nano.write_packet(ts, 0, &[0x45]).unwrap();
    let p = read_all(&nano.into_inner());
    assert_eq!(p[0].timestamp, ts);
    assert_eq!(p[0].orig_len, 1, "orig_len is at least the captured length");
    let mut micro = PcapWriter::new(Vec::new(), LinkType::RAW, TsResolution::Micros, 0).unwrap();
    micro.write_packet(ts, 10, &[0x45]).unwrap();
    let p = read_all(&micro.into_inner());
    assert_eq!(p[0].timestamp, Timestamp::new(1_700_000_000, 123_456_000));
    assert_eq!(p[0].timestamp.as_micros(), 1_700_000_000_123_456);
    let mut w = PcapWriter::new(Vec::new(), LinkType::RAW, TsResolution::Micros, 0).unwrap();
    assert!(matches!(
        w.write_packet(Timestamp::new(-1, 0), 1, &[0]),
        Err(CaptureError::TimestampOutOfRange { secs: -1 })
    ));
}

/// Re-encodes a little-endian classic pcap file as big-endian.
fn to_big_endian_pcap(le: &[u8]) -> Vec<u8> {
    let swap32 = |b: &[u8]| [b[3], b[2], b[1], b[0]];
    let mut out = Vec::new();
    out.extend_from_slice(&swap32(&le[0..4]));
    out.extend_from_slice(&[le[5], le[4], le[7], le[6]]);
    for at in (8..24).step_by(4) {
        out.extend_from_slice(&swap32(&le[at..at + 4]));
    }
    let mut pos = 24;
    while pos < le.len() {
        for at in (pos..pos + 16).step_by(4) {
            out.extend_from_slice(&swap32(&le[at..at + 4]));
        }
        let caplen = u32::from_le_bytes(le[pos + 8..pos + 12].try_into().unwrap()) as usize;
        out.extend_from_slice(&le[pos + 16..pos + 16 + caplen]);
        pos += 16 + caplen;
    }
    out
}

#[test]
fn big_endian_pcap_reads_the_same() {
    let bytes = read_file(&sample("heplify-pcaps/sip_sctp.pcap"));
    let be = to_big_endian_pcap(&bytes);
    assert_eq!(&be[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
    assert_eq!(read_all(&be), read_all(&bytes));
}

#[test]
fn oversized_record_is_an_error_not_an_allocation() {
    let mut w = PcapWriter::new(Vec::new(), LinkType::RAW, TsResolution::Micros, 0).unwrap();
    w.write_packet(Timestamp::EPOCH, 0, &[0x45; 2000]).unwrap();
    let bytes = w.into_inner();
    let config = ReaderConfig {
        max_packet_len: 1000,
    };
    let mut r = open_with_config(&bytes[..], config).unwrap();
    assert!(matches!(
        r.next_packet(),
        Err(CaptureError::TooLarge {
            len: 2000,
            max: 1000,
            ..
        })
    ));
    assert!(r.next_packet().unwrap().is_none());
    // A forged 4 GiB record header in an otherwise tiny file.
    let mut forged = bytes[..24].to_vec();
    forged.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    let mut r = open(&forged[..]).unwrap();
    assert!(matches!(
        r.next_packet(),
        Err(CaptureError::TooLarge { .. })
    ));
}

#[test]
fn unknown_magic_is_rejected() {
    assert!(matches!(
        open(&b"GET / HTTP/1.1\r\n"[..]),
        Err(CaptureError::UnknownMagic(_))
    ));
}

/// A minimal pcapng writer for the tests: blocks in either byte order.
struct Ng {
    out: Vec<u8>,
    big: bool,
}

impl Ng {
    fn new(big: bool) -> Self {
        Ng {
            out: Vec::new(),
            big,
        }
    }
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&mut self, block_type: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let (t, l) = (self.u32(block_type), self.u32(total));
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        self.out.extend_from_slice(&body);
        self.out.extend_from_slice(&l);
    }
    fn option(&self, code: u16, value: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        o.extend_from_slice(&self.u16(code));
        o.extend_from_slice(&self.u16(value.len() as u16));
        o.extend_from_slice(value);
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }
    fn shb(&mut self) {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32(0x1a2b_3c4d));
        body.extend_from_slice(&self.u16(1));
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&[0xff; 8]);
        self.block(0x0a0d_0d0a, &body);
    }
    fn idb(&mut self, link: u16, snaplen: u32, options: &[(u16, Vec<u8>)]) {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u16(link));
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32(snaplen));
        for (code, value) in options {
            body.extend_from_slice(&self.option(*code, value));
        }
        if !options.is_empty() {
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(1, &body);
    }
    fn epb(&mut self, interface: u32, ticks: u64, orig_len: u32, data: &[u8]) {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32(interface));
        body.extend_from_slice(&self.u32((ticks >> 32) as u32));
        body.extend_from_slice(&self.u32(ticks as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(orig_len));
        body.extend_from_slice(data);
        self.block(6, &body);
    }
    fn opb(&mut self, interface: u16, ticks: u64, data: &[u8]) {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u16(interface));
        body.extend_from_slice(&self.u16(0));
        body.extend_from_slice(&self.u32((ticks >> 32) as u32));
        body.extend_from_slice(&self.u32(ticks as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(&self.u32(data.len() as u32));
        body.extend_from_slice(data);
        self.block(2, &body);
    }
    fn spb(&mut self, orig_len: u32, data: &[u8]) {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32(orig_len));
        body.extend_from_slice(data);
        self.block(3, &body);
    }
}

#[test]
fn pcapng_shb_idb_epb_with_nanosecond_resolution() {
    let sample_bytes = read_file(&sample("kamailio-hep3-udp/hep-udp9060.pcap"));
    let packets = read_all(&sample_bytes);
    let mut ng = Ng::new(false);
    ng.shb();
    ng.idb(1, 262_144, &[(9, vec![9])]);
    for p in &packets {
        let ticks = p.timestamp.as_nanos() as u64;
        ng.epb(0, ticks, p.orig_len, &p.data);
    }
    let read = read_all(&ng.out);
    assert_eq!(read, packets);
    let mut r = open(&ng.out[..]).unwrap();
    assert!(matches!(r, CaptureReader::Pcapng(_)));
    r.next_packet().unwrap();
}

#[test]
fn pcapng_sections_byte_orders_interfaces_and_block_kinds() {
    let mut ng = Ng::new(true);
    ng.shb();
    // Interface 0: Ethernet, microseconds (default). Interface 1: raw IP, 2^-10 s, +100 s.
    ng.idb(1, 0, &[]);
    ng.idb(
        101,
        0,
        &[(9, vec![0x8a]), (14, 100u64.to_be_bytes().to_vec())],
    );
    ng.block(0x0000_0005, &[1, 2, 3, 4, 5, 6, 7, 8]); // statistics block: skipped
    ng.block(0x4000_0bad, &[0; 100]); // unknown block: skipped
    ng.epb(0, 1_500_000, 14, &[0xee; 14]);
    ng.epb(1, 1024 * 3 + 256, 1, &[0x45]);
    ng.opb(1, 2048, &[0x60]);
    ng.spb(3, &[1, 2, 3]);
    let mut second = Ng::new(false);
    second.shb();
    second.idb(113, 0, &[(9, vec![3])]);
    second.epb(0, 42_500, 16, &[0; 16]);
    let mut bytes = ng.out.clone();
    bytes.extend_from_slice(&second.out);

    let CaptureReader::Pcapng(mut r) = open(&bytes[..]).unwrap() else {
        panic!("not detected as pcapng");
    };
    let mut got = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        got.push((
            p.interface_id,
            p.link_type,
            p.timestamp,
            p.orig_len,
            p.data.to_vec(),
        ));
    }
    assert_eq!(r.sections(), 2);
    assert_eq!(r.interface_link_type(0), Some(LinkType::LINUX_SLL));
    assert_eq!(
        r.interface_link_type(1),
        None,
        "second section forgets interfaces"
    );
    let expected = vec![
        (
            0,
            LinkType::ETHERNET,
            Timestamp::new(1, 500_000_000),
            14,
            vec![0xee; 14],
        ),
        (
            1,
            LinkType::RAW,
            Timestamp::new(103, 250_000_000),
            1,
            vec![0x45],
        ),
        (1, LinkType::RAW, Timestamp::new(102, 0), 1, vec![0x60]),
        // The simple packet block has no time: it repeats the previous packet's.
        (
            0,
            LinkType::ETHERNET,
            Timestamp::new(102, 0),
            3,
            vec![1, 2, 3],
        ),
        (
            0,
            LinkType::LINUX_SLL,
            Timestamp::new(42, 500_000_000),
            16,
            vec![0; 16],
        ),
    ];
    assert_eq!(got, expected);
}

#[test]
fn pcapng_errors_are_typed() {
    // Packet for an interface never described.
    let mut ng = Ng::new(false);
    ng.shb();
    ng.epb(0, 0, 1, &[0]);
    let mut r = PcapngReader::new(&ng.out[..]).unwrap();
    assert!(matches!(
        r.next_packet(),
        Err(CaptureError::UnknownInterface(0))
    ));
    assert!(r.next_packet().unwrap().is_none(), "fused after an error");

    // Truncated in the middle of a block.
    let mut ng = Ng::new(false);
    ng.shb();
    ng.idb(1, 0, &[]);
    ng.epb(0, 0, 100, &[0; 100]);
    let cut = &ng.out[..ng.out.len() - 30];
    let mut r = open(cut).unwrap();
    assert!(matches!(
        r.next_packet(),
        Err(CaptureError::Truncated { .. })
    ));

    // A block announcing more than the cap.
    let mut ng = Ng::new(false);
    ng.shb();
    ng.idb(1, 0, &[]);
    ng.epb(0, 0, 5000, &[0; 5000]);
    let mut r = open_with_config(
        &ng.out[..],
        ReaderConfig {
            max_packet_len: 1000,
        },
    )
    .unwrap();
    assert!(matches!(
        r.next_packet(),
        Err(CaptureError::TooLarge { .. })
    ));

    // Trailing length mismatch.
    let mut ng = Ng::new(false);
    ng.shb();
    ng.idb(1, 0, &[]);
    let last = ng.out.len() - 1;
    ng.out[last] ^= 0xff;
    let mut r = open(&ng.out[..]).unwrap();
    assert!(matches!(
        r.next_packet(),
        Err(CaptureError::BadBlock { .. })
    ));

    // Unsupported if_tsresol.
    let mut ng = Ng::new(false);
    ng.shb();
    ng.idb(1, 0, &[(9, vec![20])]);
    let mut r = open(&ng.out[..]).unwrap();
    assert!(matches!(
        r.next_packet(),
        Err(CaptureError::BadTimestampResolution(20))
    ));

    // EPB whose captured length exceeds its block.
    let mut ng = Ng::new(false);
    ng.shb();
    ng.idb(1, 0, &[]);
    ng.epb(0, 0, 4, &[1, 2, 3, 4]);
    let at = ng.out.len() - 4 - 4 - 8; // caplen field of the EPB
    ng.out[at..at + 4].copy_from_slice(&400u32.to_le_bytes());
    let mut r = open(&ng.out[..]).unwrap();
    assert!(matches!(
        r.next_packet(),
        Err(CaptureError::BadBlock { .. })
    ));
}
