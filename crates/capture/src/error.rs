//! Error types: one for reading and writing capture files, one for decoding packet layers.

/// An error while reading or writing a pcap/pcapng file.
///
/// Readers are fused: after returning an error they return `Ok(None)` forever, because a
/// corrupt length field leaves no reliable way to find the next record.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The underlying reader or writer failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The first four bytes are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    UnknownMagic(u32),
    /// The file ended in the middle of a header, record or block: the last packet was cut.
    #[error("file truncated inside {what}: needed {needed} bytes, got {got}")]
    Truncated {
        /// Which structure was being read.
        what: &'static str,
        /// Bytes the structure needed.
        needed: usize,
        /// Bytes the file still had.
        got: usize,
    },
    /// A record or block announced more bytes than the configured cap; nothing was allocated.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Which structure was too large.
        what: &'static str,
        /// The announced length.
        len: u64,
        /// The configured cap.
        max: u64,
    },
    /// A pcapng block's length fields are inconsistent or too short for its type.
    #[error("malformed pcapng block of type {block_type:#x}: {reason}")]
    BadBlock {
        /// The block type.
        block_type: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A pcapng file does not start with a section header block.
    #[error("pcapng data does not start with a section header block")]
    MissingSectionHeader,
    /// The file format version is not one this reader understands.
    #[error("unsupported {format} version {major}.{minor}")]
    UnsupportedVersion {
        /// "pcap" or "pcapng".
        format: &'static str,
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A pcapng packet block names an interface no IDB of this section described.
    #[error("packet refers to unknown interface {0}")]
    UnknownInterface(u32),
    /// A pcapng section describes more interfaces than the reader keeps.
    #[error("more than {0} interfaces in one pcapng section")]
    TooManyInterfaces(usize),
    /// An `if_tsresol` option value outside what a 64-bit counter can express.
    #[error("unsupported pcapng timestamp resolution {0:#04x}")]
    BadTimestampResolution(u8),
    /// A timestamp cannot be written in classic pcap's unsigned 32-bit seconds.
    #[error("timestamp {secs} s is outside the range of classic pcap")]
    TimestampOutOfRange {
        /// The seconds that did not fit.
        secs: i64,
    },
}

/// An error while decoding the layers of one packet. Decoding errors concern only that packet:
/// the caller moves on to the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// The packet ends before a header or a length field said it would.
    #[error("{layer}: truncated, need {needed} bytes, have {available}")]
    Truncated {
        /// The layer being decoded.
        layer: &'static str,
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The capture's link type is not one this crate decodes.
    #[error("unsupported link type {0}")]
    UnsupportedLinkType(u32),
    /// A header field holds an impossible value.
    #[error("{layer}: {reason}")]
    Malformed {
        /// The layer being decoded.
        layer: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// More stacked VLAN tags than the decoder keeps.
    #[error("more than {0} VLAN tags")]
    TooManyVlanTags(usize),
    /// More IPv6 extension headers than the decoder walks.
    #[error("more than {0} IPv6 extension headers")]
    TooManyExtensionHeaders(usize),
    /// Tunnels nested deeper than the decoder follows.
    #[error("tunnels nested deeper than {0}")]
    TunnelTooDeep(usize),
}

impl LayerError {
    pub(crate) fn truncated(layer: &'static str, needed: usize, available: usize) -> Self {
        LayerError::Truncated {
            layer,
            needed,
            available,
        }
    }

    pub(crate) fn malformed(layer: &'static str, reason: &'static str) -> Self {
        LayerError::Malformed { layer, reason }
    }
}
