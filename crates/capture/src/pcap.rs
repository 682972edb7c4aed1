//! Classic libpcap files: reader and writer.

use std::io::{Read, Write};

use crate::error::CaptureError;
use crate::link::LinkType;
use crate::source::{
    read_exact_or_truncated, read_up_to, Endian, Packet, PacketSource, ReaderConfig,
};
use crate::time::Timestamp;

/// Magic number of pcap files with microsecond timestamps.
pub const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic number of pcap files with nanosecond timestamps.
pub const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Magic number of Alexey Kuznetzov's modified pcap format (8 extra bytes per record).
const PCAP_MAGIC_MODIFIED: u32 = 0xa1b2_cd34;

const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
const MODIFIED_RECORD_EXTRA: usize = 8;
/// Only the low 28 bits of the header's link-type field name the link type; the top bits
/// describe the FCS length.
const LINK_TYPE_MASK: u32 = 0x0fff_ffff;

/// Timestamp resolution of a classic pcap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsResolution {
    /// Microseconds (magic `0xa1b2c3d4`).
    Micros,
    /// Nanoseconds (magic `0xa1b23c4d`).
    Nanos,
}

/// Reads classic pcap files of either byte order and either timestamp resolution.
///
/// The global header's `thiszone` is ignored, as libpcap does: timestamps are taken as UTC.
#[derive(Debug)]
pub struct PcapReader<R> {
    reader: R,
    endian: Endian,
    resolution: TsResolution,
    modified: bool,
    version: (u16, u16),
    snaplen: u32,
    link_type: LinkType,
    max_packet_len: u32,
    buf: Vec<u8>,
    finished: bool,
}

impl<R: Read> PcapReader<R> {
    /// Reads the global header of a classic pcap stream, with default limits.
    pub fn new(reader: R) -> Result<Self, CaptureError> {
        Self::with_config(reader, ReaderConfig::default())
    }

    /// Reads the global header of a classic pcap stream.
    pub fn with_config(mut reader: R, config: ReaderConfig) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        read_exact_or_truncated(&mut reader, &mut magic, "pcap file header")?;
        Self::after_magic(reader, magic, config)
    }

    /// Continues after [`crate::open`] consumed the magic number.
    pub(crate) fn after_magic(
        mut reader: R,
        magic: [u8; 4],
        config: ReaderConfig,
    ) -> Result<Self, CaptureError> {
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let (endian, value) = match (le, be) {
            (m, _) if is_pcap_magic(m) => (Endian::Little, m),
            (_, m) if is_pcap_magic(m) => (Endian::Big, m),
            _ => return Err(CaptureError::UnknownMagic(be)),
        };
        let mut header = [0u8; FILE_HEADER_LEN - 4];
        read_exact_or_truncated(&mut reader, &mut header, "pcap file header")?;
        let version = (endian.u16(&header, 0), endian.u16(&header, 2));
        if version.0 != 2 {
            return Err(CaptureError::UnsupportedVersion {
                format: "pcap",
                major: version.0,
                minor: version.1,
            });
        }
        Ok(PcapReader {
            reader,
            endian,
            resolution: if value == PCAP_MAGIC_NANOS {
                TsResolution::Nanos
            } else {
                TsResolution::Micros
            },
            modified: value == PCAP_MAGIC_MODIFIED,
            version,
            snaplen: endian.u32(&header, 12),
            link_type: LinkType(endian.u32(&header, 16) & LINK_TYPE_MASK),
            max_packet_len: config.max_packet_len,
            buf: Vec::new(),
            finished: false,
        })
    }

    /// The link type of every packet in the file.
    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    /// The snapshot length from the file header.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// The timestamp resolution given by the magic number.
    pub fn resolution(&self) -> TsResolution {
        self.resolution
    }

    /// The file format version (major, minor), normally (2, 4).
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// Reads the next record into `self.buf`; returns its metadata, `None` at a clean end.
    fn read_record(&mut self) -> Result<Option<RecordMeta>, CaptureError> {
        let mut header_buf = [0u8; RECORD_HEADER_LEN + MODIFIED_RECORD_EXTRA];
        let header_len = if self.modified {
            RECORD_HEADER_LEN + MODIFIED_RECORD_EXTRA
        } else {
            RECORD_HEADER_LEN
        };
        let header = header_buf.get_mut(..header_len).unwrap_or_default();
        let got = read_up_to(&mut self.reader, header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < header_len {
            return Err(CaptureError::Truncated {
                what: "pcap record header",
                needed: header_len,
                got,
            });
        }
        let e = self.endian;
        let secs = e.u32(header, 0);
        let frac = e.u32(header, 4);
        let caplen = e.u32(header, 8);
        let orig_len = e.u32(header, 12);
        if caplen > self.max_packet_len {
            return Err(CaptureError::TooLarge {
                what: "pcap record",
                len: u64::from(caplen),
                max: u64::from(self.max_packet_len),
            });
        }
        // Bounded by max_packet_len just above.
        let caplen = caplen as usize;
        self.buf.resize(caplen, 0);
        let got = read_up_to(&mut self.reader, &mut self.buf)?;
        if got < caplen {
            return Err(CaptureError::Truncated {
                what: "pcap packet data",
                needed: caplen,
                got,
            });
        }
        // Some writers store a microsecond count >= 1e6; Timestamp::new carries it over.
        let nanos = match self.resolution {
            TsResolution::Micros => frac.saturating_mul(1000),
            TsResolution::Nanos => frac,
        };
        Ok(Some(RecordMeta {
            timestamp: Timestamp::new(i64::from(secs), nanos),
            orig_len,
        }))
    }
}

/// What a record header said, kept apart from the data so the reader can update its own
/// state before lending out the buffer.
struct RecordMeta {
    timestamp: Timestamp,
    orig_len: u32,
}

impl<R: Read> PacketSource for PcapReader<R> {
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        match self.read_record() {
            Ok(Some(meta)) => Ok(Some(Packet {
                timestamp: meta.timestamp,
                link_type: self.link_type,
                orig_len: meta.orig_len,
                data: &self.buf,
                interface_id: 0,
            })),
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

/// Writes classic pcap files (little-endian, version 2.4), e.g. for the UI's PCAP export.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    writer: W,
    resolution: TsResolution,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header for packets of `link_type`.
    pub fn new(
        mut writer: W,
        link_type: LinkType,
        resolution: TsResolution,
        snaplen: u32,
    ) -> Result<Self, CaptureError> {
        let magic = match resolution {
            TsResolution::Micros => PCAP_MAGIC_MICROS,
            TsResolution::Nanos => PCAP_MAGIC_NANOS,
        };
        let mut header = [0u8; FILE_HEADER_LEN];
        header[0..4].copy_from_slice(&magic.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero, as every modern writer leaves them.
        header[16..20].copy_from_slice(&snaplen.to_le_bytes());
        header[20..24].copy_from_slice(&link_type.0.to_le_bytes());
        writer.write_all(&header)?;
        Ok(PcapWriter { writer, resolution })
    }

    /// Appends one packet; `orig_len` is its length on the wire (at least `data.len()`, which
    /// is enforced).
    pub fn write_packet(
        &mut self,
        timestamp: Timestamp,
        orig_len: u32,
        data: &[u8],
    ) -> Result<(), CaptureError> {
        let secs =
            u32::try_from(timestamp.secs()).map_err(|_| CaptureError::TimestampOutOfRange {
                secs: timestamp.secs(),
            })?;
        let frac = match self.resolution {
            TsResolution::Micros => timestamp.subsec_nanos() / 1000,
            TsResolution::Nanos => timestamp.subsec_nanos(),
        };
        let caplen = u32::try_from(data.len()).map_err(|_| CaptureError::TooLarge {
            what: "pcap record",
            len: data.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[0..4].copy_from_slice(&secs.to_le_bytes());
        header[4..8].copy_from_slice(&frac.to_le_bytes());
        header[8..12].copy_from_slice(&caplen.to_le_bytes());
        header[12..16].copy_from_slice(&orig_len.max(caplen).to_le_bytes());
        self.writer.write_all(&header)?;
        self.writer.write_all(data)?;
        Ok(())
    }

    /// Writes out anything buffered in the underlying writer.
    pub fn flush(&mut self) -> Result<(), CaptureError> {
        self.writer.flush()?;
        Ok(())
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.writer
    }
}

fn is_pcap_magic(m: u32) -> bool {
    matches!(
        m,
        PCAP_MAGIC_MICROS | PCAP_MAGIC_NANOS | PCAP_MAGIC_MODIFIED
    )
}
