//! Typed errors of the codec and the non-fatal diagnostics attached to a decoded packet.

/// Why a buffer could not be decoded as HEP at all.
///
/// Anything that still lets the decoder produce a meaningful packet (a typed chunk with the wrong
/// body length, duplicate chunks, trailing bytes after the declared total length) is not an error
/// but a [`Diagnostic`] on the returned packet.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends before the fixed part of the header the first bytes announce.
    #[error("HEP message too short: need {need} bytes, got {got}")]
    TooShort {
        /// Bytes the header needs.
        need: usize,
        /// Bytes available.
        got: usize,
    },
    /// Neither a HEPv3 magic (`HEP3`, `EEP1`, `EEP3`) nor a HEPv1/v2 header with a known address family.
    #[error("not a HEP message")]
    NotHep,
    /// The HEPv3 total length is below the 6-byte header or beyond the end of the buffer.
    #[error("bad HEP3 total length {total_len} (buffer holds {available} bytes, minimum is 6)")]
    BadTotalLength {
        /// The total length field (bytes 4..6).
        total_len: u16,
        /// Bytes available in the buffer.
        available: usize,
    },
    /// A chunk's declared length runs past the end of the message.
    #[error("chunk at offset {offset} with length {len} runs past the end of the message")]
    ChunkOverrun {
        /// Offset of the chunk header from the start of the message.
        offset: usize,
        /// The chunk's declared length, header included.
        len: u16,
    },
    /// A chunk declares a length smaller than its own 6-byte header; accepting it would make the
    /// chunk walk stand still (length 0) or step backwards.
    #[error("chunk at offset {offset} declares length {len}, below the 6-byte chunk header")]
    ZeroLengthChunk {
        /// Offset of the chunk header from the start of the message.
        offset: usize,
        /// The declared length.
        len: u16,
    },
    /// Fewer than 6 bytes remain inside the declared total length, too few for a chunk header.
    #[error("{remaining} bytes at offset {offset} are too few for a chunk header")]
    TruncatedChunkHeader {
        /// Offset of the leftover bytes.
        offset: usize,
        /// How many bytes are left before the end of the message.
        remaining: usize,
    },
    /// [`crate::HepPacket::inflate_payload`] was called on a packet without chunk 0x0010.
    #[error("the packet has no compressed payload chunk (0x0010)")]
    NoCompressedPayload,
    /// The inflated payload would exceed the caller's output cap (a decompression bomb or simply
    /// a payload bigger than the caller accepts).
    #[error("inflated payload exceeds the cap of {limit} bytes")]
    InflateTooLarge {
        /// The cap that was hit.
        limit: usize,
    },
    /// The compressed payload is not valid gzip, zlib or raw deflate data.
    #[error("compressed payload is corrupt: {0}")]
    Inflate(#[source] std::io::Error),
}

/// Why a message could not be encoded as HEPv3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message would not fit the 16-bit total length field.
    #[error("encoded HEP3 message would be {len} bytes, the maximum is 65535")]
    TooLarge {
        /// The size the message would have.
        len: usize,
    },
    /// An extra chunk uses a generic (vendor 0) type that has a typed field; it would be decoded
    /// into that field and shadow or duplicate it, so the codec refuses it.
    #[error("extra chunk vendor {vendor} type {type_id:#06x} collides with a typed HEP3 field")]
    ReservedChunkType {
        /// The chunk's vendor id (always 0 here).
        vendor: u16,
        /// The chunk type.
        type_id: u16,
    },
}

/// A non-fatal irregularity found while decoding; the packet is still returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Diagnostic {
    /// The datagram is longer than the HEPv3 total length; the extra bytes are ignored.
    #[error("{count} bytes after the declared total length ignored")]
    TrailingBytes {
        /// How many bytes follow the message.
        count: usize,
    },
    /// A typed chunk's body has the wrong size; its field is left `None`.
    #[error(
        "chunk type {type_id:#06x} at offset {offset}: body is {got} bytes, expected {expected}"
    )]
    BadChunkLength {
        /// Offset of the chunk header.
        offset: usize,
        /// The chunk type.
        type_id: u16,
        /// The body length the type requires.
        expected: usize,
        /// The body length found.
        got: usize,
    },
    /// A second chunk for a field that was already set; the later chunk wins.
    #[error("chunk type {type_id:#06x} at offset {offset} repeats an earlier field; the later value wins")]
    DuplicateChunk {
        /// Offset of the repeating chunk header.
        offset: usize,
        /// The chunk type.
        type_id: u16,
    },
}

/// Why a [`crate::StreamFramer`] refused input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramerError {
    /// The pushed bytes would not fit next to the pending ones; drain frames first or raise
    /// [`crate::FramerConfig::max_buffer`].
    #[error("framer buffer full: {pending} bytes pending + {incoming} incoming > {capacity}")]
    BufferFull {
        /// Bytes already buffered.
        pending: usize,
        /// Bytes offered.
        incoming: usize,
        /// The buffer limit.
        capacity: usize,
    },
}
