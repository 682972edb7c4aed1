//! The packet-source abstraction shared by file readers (and, later, live capture).

use std::io::{self, Read};

use crate::error::CaptureError;
use crate::link::LinkType;
use crate::pcap::PcapReader;
use crate::pcapng::{PcapngReader, PCAPNG_SHB_TYPE};
use crate::time::Timestamp;

/// Default cap on the captured length of one packet (256 KiB, libpcap's largest snaplen).
pub const DEFAULT_MAX_PACKET_LEN: u32 = 256 * 1024;

/// One captured packet, borrowed from the source's internal buffer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// When the packet was captured.
    pub timestamp: Timestamp,
    /// How to decode `data` (per interface in pcapng).
    pub link_type: LinkType,
    /// Length of the packet on the wire; larger than `data.len()` when the snaplen cut it.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Interface index within the current pcapng section (always 0 for classic pcap).
    pub interface_id: u32,
}

/// Anything that yields captured packets one at a time: pcap and pcapng readers now, libpcap
/// live capture later. A lending interface, so sources reuse one buffer and copy nothing.
pub trait PacketSource {
    /// The next packet; `Ok(None)` at the end of the stream (and after any error).
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError>;
}

/// Limits applied by the file readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Largest captured packet accepted; a record announcing more is an error, not an
    /// allocation. pcapng blocks may be this plus a small allowance for headers and options.
    pub max_packet_len: u32,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            max_packet_len: DEFAULT_MAX_PACKET_LEN,
        }
    }
}

/// A reader for either file format, chosen by [`open`] from the magic number.
#[derive(Debug)]
pub enum CaptureReader<R> {
    /// Classic libpcap format.
    Pcap(PcapReader<R>),
    /// pcapng format.
    Pcapng(PcapngReader<R>),
}

impl<R: Read> PacketSource for CaptureReader<R> {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        match self {
            CaptureReader::Pcap(r) => r.next_packet(),
            CaptureReader::Pcapng(r) => r.next_packet(),
        }
    }
}

/// Opens a pcap or pcapng stream with default limits, sniffing the format from its first four
/// bytes. Works on any reader, including stdin; wrap files in a `BufReader`.
pub fn open<R: Read>(reader: R) -> Result<CaptureReader<R>, CaptureError> {
    open_with_config(reader, ReaderConfig::default())
}

/// [`open`] with explicit limits.
pub fn open_with_config<R: Read>(
    mut reader: R,
    config: ReaderConfig,
) -> Result<CaptureReader<R>, CaptureError> {
    let mut magic = [0u8; 4];
    read_exact_or_truncated(&mut reader, &mut magic, "file header")?;
    if u32::from_le_bytes(magic) == PCAPNG_SHB_TYPE {
        return Ok(CaptureReader::Pcapng(PcapngReader::after_magic(
            reader, config,
        )?));
    }
    Ok(CaptureReader::Pcap(PcapReader::after_magic(
        reader, magic, config,
    )?))
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
pub(crate) fn read_up_to<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Fills `buf` completely or reports the structure as truncated.
pub(crate) fn read_exact_or_truncated<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), CaptureError> {
    let got = read_up_to(reader, buf)?;
    if got < buf.len() {
        return Err(CaptureError::Truncated {
            what,
            needed: buf.len(),
            got,
        });
    }
    Ok(())
}

/// Byte-order aware field access over a fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endian {
    Little,
    Big,
}

impl Endian {
    pub(crate) fn u16(self, b: &[u8], at: usize) -> u16 {
        let bytes = [byte(b, at), byte(b, at + 1)];
        match self {
            Endian::Little => u16::from_le_bytes(bytes),
            Endian::Big => u16::from_be_bytes(bytes),
        }
    }

    pub(crate) fn u32(self, b: &[u8], at: usize) -> u32 {
        let bytes = [
            byte(b, at),
            byte(b, at + 1),
            byte(b, at + 2),
            byte(b, at + 3),
        ];
        match self {
            Endian::Little => u32::from_le_bytes(bytes),
            Endian::Big => u32::from_be_bytes(bytes),
        }
    }

    pub(crate) fn u64(self, b: &[u8], at: usize) -> u64 {
        let hi_lo = (u64::from(self.u32(b, at)), u64::from(self.u32(b, at + 4)));
        match self {
            Endian::Little => hi_lo.1 << 32 | hi_lo.0,
            Endian::Big => hi_lo.0 << 32 | hi_lo.1,
        }
    }
}

/// A byte of a header whose length the caller already checked; a missing byte reads as zero
/// rather than panicking, so a miscounted length can only ever give a wrong value.
fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}
