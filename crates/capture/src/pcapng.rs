//! pcapng files: sections of either byte order, interfaces with their own link type and
//! timestamp resolution, enhanced/simple/obsolete packet blocks; other blocks are skipped.

use std::io::{self, Read};

use crate::error::CaptureError;
use crate::link::LinkType;
use crate::source::{
    read_exact_or_truncated, read_up_to, Endian, Packet, PacketSource, ReaderConfig,
};
use crate::time::Timestamp;

/// Block type of the section header block; also the file's magic number.
pub(crate) const PCAPNG_SHB_TYPE: u32 = 0x0a0d_0d0a;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const IDB_TYPE: u32 = 0x0000_0001;
const OPB_TYPE: u32 = 0x0000_0002;
const SPB_TYPE: u32 = 0x0000_0003;
const EPB_TYPE: u32 = 0x0000_0006;

const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Room for block headers and options on top of the packet cap.
const BLOCK_SLACK: u32 = 16 * 1024;
/// Interfaces kept per section; each IDB costs memory, so an endless stream of them must stop.
pub const MAX_INTERFACES: usize = 4096;
/// A block's fixed framing: type, total length, trailing total length.
const BLOCK_FRAMING: u32 = 12;
/// Fixed part of an enhanced packet block body: interface, timestamp (2), caplen, origlen.
const EPB_FIXED: usize = 20;
/// Fixed part of an obsolete packet block body: interface (u16), drops (u16), timestamp (2),
/// caplen, origlen.
const OPB_FIXED: usize = 20;
/// Fixed part of an interface description block body: link type, reserved, snaplen.
const IDB_FIXED: usize = 8;

/// Timestamp unit of one interface: 10^-n or 2^-n seconds per tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsUnit {
    Pow10(u32),
    Pow2(u32),
}

impl TsUnit {
    /// Decodes an `if_tsresol` byte: top bit clear means a power of ten, set a power of two.
    fn from_option(value: u8) -> Result<Self, CaptureError> {
        let exp = u32::from(value & 0x7f);
        if value & 0x80 == 0 {
            // 10^19 is the largest power of ten a u64 tick divisor can hold.
            if exp > 19 {
                return Err(CaptureError::BadTimestampResolution(value));
            }
            Ok(TsUnit::Pow10(exp))
        } else {
            if exp > 63 {
                return Err(CaptureError::BadTimestampResolution(value));
            }
            Ok(TsUnit::Pow2(exp))
        }
    }

    /// Splits a tick count into whole seconds and nanoseconds.
    fn split(self, ticks: u64) -> (u64, u32) {
        match self {
            TsUnit::Pow10(exp) => {
                let per_sec = 10u64.pow(exp);
                let frac = ticks % per_sec;
                let nanos = if exp <= 9 {
                    frac * 10u64.pow(9 - exp)
                } else {
                    frac / 10u64.pow(exp - 9)
                };
                // nanos < 1e9 by construction.
                (ticks / per_sec, nanos as u32)
            }
            TsUnit::Pow2(exp) => {
                let frac = ticks & ((1u64 << exp) - 1);
                let nanos = (u128::from(frac) * 1_000_000_000) >> exp;
                (ticks >> exp, nanos as u32)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: LinkType,
    snaplen: u32,
    unit: TsUnit,
    offset_secs: i64,
}

impl Interface {
    fn timestamp(&self, ticks: u64) -> Timestamp {
        let (secs, nanos) = self.unit.split(ticks);
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        Timestamp::new(secs.saturating_add(self.offset_secs), nanos)
    }
}

/// Reads pcapng streams. A new section header block (possibly of the other byte order)
/// forgets the previous section's interfaces, as the format requires.
///
/// Simple packet blocks carry no timestamp; they get the timestamp of the previous packet so
/// that time-driven eviction downstream never sees time run backwards.
#[derive(Debug)]
pub struct PcapngReader<R> {
    reader: R,
    endian: Endian,
    interfaces: Vec<Interface>,
    max_packet_len: u32,
    buf: Vec<u8>,
    last_timestamp: Timestamp,
    sections: u64,
    finished: bool,
}

/// Where the packet of the block just read lies in the buffer, and what describes it.
struct PacketMeta {
    timestamp: Timestamp,
    link_type: LinkType,
    orig_len: u32,
    interface_id: u32,
    start: usize,
    len: usize,
}

impl<R: Read> PcapngReader<R> {
    /// Reads the first section header of a pcapng stream, with default limits.
    pub fn new(reader: R) -> Result<Self, CaptureError> {
        Self::with_config(reader, ReaderConfig::default())
    }

    /// Reads the first section header of a pcapng stream.
    pub fn with_config(mut reader: R, config: ReaderConfig) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        read_exact_or_truncated(&mut reader, &mut magic, "pcapng section header")?;
        if u32::from_le_bytes(magic) != PCAPNG_SHB_TYPE {
            return Err(CaptureError::MissingSectionHeader);
        }
        Self::after_magic(reader, config)
    }

    /// Continues after [`crate::open`] consumed the section header's block type.
    pub(crate) fn after_magic(mut reader: R, config: ReaderConfig) -> Result<Self, CaptureError> {
        let mut buf = Vec::new();
        let max_block = max_block_len(config.max_packet_len);
        let endian = read_section_header(&mut reader, &mut buf, max_block)?;
        Ok(PcapngReader {
            reader,
            endian,
            interfaces: Vec::new(),
            max_packet_len: config.max_packet_len,
            buf,
            last_timestamp: Timestamp::EPOCH,
            sections: 1,
            finished: false,
        })
    }

    /// Number of section header blocks read so far.
    pub fn sections(&self) -> u64 {
        self.sections
    }

    /// Link type of interface `id` in the current section, if described.
    pub fn interface_link_type(&self, id: u32) -> Option<LinkType> {
        self.interface(id).map(|i| i.link_type)
    }

    fn interface(&self, id: u32) -> Option<&Interface> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.interfaces.get(i))
    }

    /// Reads blocks until one holds a packet; `None` at a clean end of the stream.
    fn read_packet_block(&mut self) -> Result<Option<PacketMeta>, CaptureError> {
        let max_block = max_block_len(self.max_packet_len);
        loop {
            let mut head = [0u8; 8];
            let got = read_up_to(&mut self.reader, &mut head)?;
            if got == 0 {
                return Ok(None);
            }
            if got < 8 {
                return Err(CaptureError::Truncated {
                    what: "pcapng block header",
                    needed: 8,
                    got,
                });
            }
            let block_type = self.endian.u32(&head, 0);
            if block_type == PCAPNG_SHB_TYPE {
                // A new section, maybe of the other byte order: its length is only readable
                // after its byte-order magic, so put the 4 length bytes back in front.
                let mut chained = (&head[4..8]).chain(&mut self.reader);
                self.endian = read_section_header(&mut chained, &mut self.buf, max_block)?;
                self.interfaces.clear();
                self.sections += 1;
                continue;
            }
            let total = self.endian.u32(&head, 4);
            if total < BLOCK_FRAMING {
                return Err(CaptureError::BadBlock {
                    block_type,
                    reason: "block length below 12",
                });
            }
            let rest = u64::from(total) - 8;
            if !matches!(block_type, IDB_TYPE | EPB_TYPE | SPB_TYPE | OPB_TYPE) {
                // Unknown or uninteresting block: stream past it without buffering, so its
                // size needs no cap.
                let skipped = io::copy(&mut (&mut self.reader).take(rest), &mut io::sink())?;
                if skipped < rest {
                    return Err(CaptureError::Truncated {
                        what: "pcapng block",
                        needed: usize::try_from(rest).unwrap_or(usize::MAX),
                        got: usize::try_from(skipped).unwrap_or(usize::MAX),
                    });
                }
                continue;
            }
            check_block_len(total, max_block)?;
            // Bounded by check_block_len.
            self.buf.resize(rest as usize, 0);
            let got = read_up_to(&mut self.reader, &mut self.buf)?;
            if got < self.buf.len() {
                return Err(CaptureError::Truncated {
                    what: "pcapng block",
                    needed: self.buf.len(),
                    got,
                });
            }
            check_trailer(self.endian, &self.buf, block_type, total)?;
            let body_len = self.buf.len() - 4;
            match block_type {
                IDB_TYPE => self.parse_interface(body_len)?,
                EPB_TYPE => return self.parse_enhanced(body_len).map(Some),
                OPB_TYPE => return self.parse_obsolete(body_len).map(Some),
                _ => return self.parse_simple(body_len).map(Some),
            }
        }
    }

    fn parse_interface(&mut self, body_len: usize) -> Result<(), CaptureError> {
        if body_len < IDB_FIXED {
            return Err(CaptureError::BadBlock {
                block_type: IDB_TYPE,
                reason: "interface description block too short",
            });
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(CaptureError::TooManyInterfaces(MAX_INTERFACES));
        }
        let e = self.endian;
        let body = self.buf.get(..body_len).unwrap_or_default();
        let mut interface = Interface {
            link_type: LinkType(u32::from(e.u16(body, 0))),
            snaplen: e.u32(body, 4),
            // Microseconds unless if_tsresol says otherwise.
            unit: TsUnit::Pow10(6),
            offset_secs: 0,
        };
        for (code, value) in Options::new(e, body.get(IDB_FIXED..).unwrap_or_default()) {
            match code {
                OPT_IF_TSRESOL => {
                    if let Some(&v) = value.first() {
                        interface.unit = TsUnit::from_option(v)?;
                    }
                }
                OPT_IF_TSOFFSET if value.len() >= 8 => {
                    interface.offset_secs = e.u64(value, 0) as i64;
                }
                _ => {}
            }
        }
        self.interfaces.push(interface);
        Ok(())
    }

    /// Bounds of a packet's data within the block body, checked against the body length and
    /// the packet cap (the block cap has slack for options, the packet itself has none).
    fn data_range(
        &self,
        block_type: u32,
        body_len: usize,
        fixed: usize,
        caplen: u32,
    ) -> Result<(usize, usize), CaptureError> {
        if caplen > self.max_packet_len {
            return Err(CaptureError::TooLarge {
                what: "pcapng packet",
                len: u64::from(caplen),
                max: u64::from(self.max_packet_len),
            });
        }
        let len = caplen as usize;
        if fixed.saturating_add(len) > body_len {
            return Err(CaptureError::BadBlock {
                block_type,
                reason: "captured length exceeds block",
            });
        }
        Ok((fixed, len))
    }

    fn parse_enhanced(&mut self, body_len: usize) -> Result<PacketMeta, CaptureError> {
        if body_len < EPB_FIXED {
            return Err(CaptureError::BadBlock {
                block_type: EPB_TYPE,
                reason: "enhanced packet block too short",
            });
        }
        let e = self.endian;
        let b = &self.buf;
        let interface_id = e.u32(b, 0);
        let ticks = u64::from(e.u32(b, 4)) << 32 | u64::from(e.u32(b, 8));
        let caplen = e.u32(b, 12);
        let orig_len = e.u32(b, 16);
        let (start, len) = self.data_range(EPB_TYPE, body_len, EPB_FIXED, caplen)?;
        let interface = self
            .interface(interface_id)
            .ok_or(CaptureError::UnknownInterface(interface_id))?;
        Ok(PacketMeta {
            timestamp: interface.timestamp(ticks),
            link_type: interface.link_type,
            orig_len,
            interface_id,
            start,
            len,
        })
    }

    fn parse_obsolete(&mut self, body_len: usize) -> Result<PacketMeta, CaptureError> {
        if body_len < OPB_FIXED {
            return Err(CaptureError::BadBlock {
                block_type: OPB_TYPE,
                reason: "packet block too short",
            });
        }
        let e = self.endian;
        let b = &self.buf;
        let interface_id = u32::from(e.u16(b, 0));
        let ticks = u64::from(e.u32(b, 4)) << 32 | u64::from(e.u32(b, 8));
        let caplen = e.u32(b, 12);
        let orig_len = e.u32(b, 16);
        let (start, len) = self.data_range(OPB_TYPE, body_len, OPB_FIXED, caplen)?;
        let interface = self
            .interface(interface_id)
            .ok_or(CaptureError::UnknownInterface(interface_id))?;
        Ok(PacketMeta {
            timestamp: interface.timestamp(ticks),
            link_type: interface.link_type,
            orig_len,
            interface_id,
            start,
            len,
        })
    }

    fn parse_simple(&mut self, body_len: usize) -> Result<PacketMeta, CaptureError> {
        if body_len < 4 {
            return Err(CaptureError::BadBlock {
                block_type: SPB_TYPE,
                reason: "simple packet block too short",
            });
        }
        let orig_len = self.endian.u32(&self.buf, 0);
        let interface = self.interface(0).ok_or(CaptureError::UnknownInterface(0))?;
        // The captured length is implied: the original length cut to the snaplen and to the
        // block (whose data is padded to 4 bytes).
        let mut len = (orig_len as usize)
            .min(body_len - 4)
            .min(self.max_packet_len as usize);
        if interface.snaplen != 0 {
            len = len.min(interface.snaplen as usize);
        }
        Ok(PacketMeta {
            timestamp: self.last_timestamp,
            link_type: interface.link_type,
            orig_len,
            interface_id: 0,
            start: 4,
            len,
        })
    }
}

impl<R: Read> PacketSource for PcapngReader<R> {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        match self.read_packet_block() {
            Ok(Some(meta)) => {
                self.last_timestamp = meta.timestamp;
                let data = self
                    .buf
                    .get(meta.start..meta.start + meta.len)
                    .unwrap_or_default();
                Ok(Some(Packet {
                    timestamp: meta.timestamp,
                    link_type: meta.link_type,
                    orig_len: meta.orig_len,
                    data,
                    interface_id: meta.interface_id,
                }))
            }
            Ok(None) => {
                self.finished = true;
                Ok(None)
            }
            Err(e) => {
                self.finished = true;
                Err(e)
            }
        }
    }
}

fn max_block_len(max_packet_len: u32) -> u32 {
    max_packet_len.saturating_add(BLOCK_SLACK)
}

fn check_block_len(total: u32, max_block: u32) -> Result<(), CaptureError> {
    if total > max_block {
        return Err(CaptureError::TooLarge {
            what: "pcapng block",
            len: u64::from(total),
            max: u64::from(max_block),
        });
    }
    Ok(())
}

/// The block's trailing length (last 4 bytes of `buf`) must repeat the leading one.
fn check_trailer(
    endian: Endian,
    buf: &[u8],
    block_type: u32,
    total: u32,
) -> Result<(), CaptureError> {
    if endian.u32(buf, buf.len().saturating_sub(4)) != total {
        return Err(CaptureError::BadBlock {
            block_type,
            reason: "trailing block length differs from leading one",
        });
    }
    Ok(())
}

/// Reads a section header block whose type was already consumed and returns the byte order
/// it announces. The rest of the block is left in `buf`.
fn read_section_header(
    reader: &mut impl Read,
    buf: &mut Vec<u8>,
    max_block: u32,
) -> Result<Endian, CaptureError> {
    let mut head = [0u8; 8];
    read_exact_or_truncated(reader, &mut head, "pcapng section header")?;
    // The byte-order magic after the length decides how to read the length itself.
    let magic = [head[4], head[5], head[6], head[7]];
    let endian = if u32::from_le_bytes(magic) == BYTE_ORDER_MAGIC {
        Endian::Little
    } else if u32::from_be_bytes(magic) == BYTE_ORDER_MAGIC {
        Endian::Big
    } else {
        return Err(CaptureError::BadBlock {
            block_type: PCAPNG_SHB_TYPE,
            reason: "bad byte-order magic",
        });
    };
    let total = endian.u32(&head, 0);
    // type, length, byte-order magic, versions, section length, trailing length
    if total < 28 {
        return Err(CaptureError::BadBlock {
            block_type: PCAPNG_SHB_TYPE,
            reason: "section header block too short",
        });
    }
    check_block_len(total, max_block)?;
    // Bounded by check_block_len; type, length and magic (12 bytes) are already consumed.
    buf.resize(total as usize - 12, 0);
    read_exact_or_truncated(reader, buf, "pcapng section header")?;
    let major = endian.u16(buf, 0);
    let minor = endian.u16(buf, 2);
    if major != 1 {
        return Err(CaptureError::UnsupportedVersion {
            format: "pcapng",
            major,
            minor,
        });
    }
    check_trailer(endian, buf, PCAPNG_SHB_TYPE, total)?;
    Ok(endian)
}

/// Iterator over a block's options: (code, value) until `opt_endofopt` or the end.
struct Options<'a> {
    endian: Endian,
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    fn new(endian: Endian, rest: &'a [u8]) -> Self {
        Options { endian, rest }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            return None;
        }
        let code = self.endian.u16(self.rest, 0);
        let len = usize::from(self.endian.u16(self.rest, 2));
        if code == OPT_END {
            return None;
        }
        let value = self.rest.get(4..4 + len)?;
        let padded = (4 + len).next_multiple_of(4);
        self.rest = self.rest.get(padded..).unwrap_or_default();
        Some((code, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_units() {
        assert_eq!(TsUnit::Pow10(6).split(1_500_000), (1, 500_000_000));
        assert_eq!(TsUnit::Pow10(9).split(2_000_000_001), (2, 1));
        assert_eq!(TsUnit::Pow10(12).split(1_000_000_001_000), (1, 1));
        assert_eq!(TsUnit::Pow10(0).split(7), (7, 0));
        assert_eq!(TsUnit::Pow2(10).split(1024 + 512), (1, 500_000_000));
        assert_eq!(TsUnit::Pow2(0).split(9), (9, 0));
        assert_eq!(TsUnit::Pow2(63).split(u64::MAX).0, 1);
        assert!(TsUnit::from_option(20).is_err());
        assert_eq!(TsUnit::from_option(0x8a).ok(), Some(TsUnit::Pow2(10)));
        assert_eq!(TsUnit::from_option(19).ok(), Some(TsUnit::Pow10(19)));
        let _ = TsUnit::Pow10(19).split(u64::MAX);
    }

    #[test]
    fn options_stop_at_end_and_short_values() {
        let bytes = [9, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0];
        let opts: Vec<_> = Options::new(Endian::Little, &bytes).collect();
        assert_eq!(opts, vec![(9u16, &[6u8][..])]);
        let short = [9, 0, 200, 0, 1];
        assert_eq!(Options::new(Endian::Little, &short).count(), 0);
    }
}
