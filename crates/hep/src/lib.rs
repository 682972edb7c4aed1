//! HEP (Homer Encapsulation Protocol) v1, v2 and v3 wire codec.
//!
//! # Wire format
//!
//! **HEPv3** (spec rev. 37): a 6-byte header, the magic `HEP3` and a big-endian u16 *total
//! length* counting the whole message, followed by chunks. Every chunk is a 6-byte header (u16
//! vendor id, u16 type, u16 length counting the header) and a body. Vendor 0 is the generic chunk
//! space of the specification (types 0x0001–0x0018 and 0x0020–0x0029, see [`chunk_type`]);
//! integers are big-endian. Other vendors and undefined generic types are opaque.
//!
//! **HEPv1/v2** (Kamailio `siptrace`/`sipcapture`, sngrep, OpenSIPS): a fixed C struct: u8
//! version, u8 header length, u8 family (2 = `AF_INET`, 10 = `AF_INET6`), u8 IP protocol,
//! big-endian u16 source and destination ports, the source and destination addresses (4 + 4 or
//! 16 + 16 bytes); HEPv2 adds a time header, then the SIP payload runs to the end of the datagram.
//!
//! # Producer quirks handled
//!
//! - Chunk order differs per producer (rtpengine sends the addresses after the capture id,
//!   Kamailio's `hlog()` swaps the port chunks): chunks are parsed by type, never by position.
//! - Kamailio's sipcapture also accepts the magic `EEP1`, the HOMER tools `EEP3`; both are
//!   decoded like `HEP3`.
//! - The HEPv1/v2 header length byte is not trusted (Kamailio writes `sizeof(struct hep_hdr)`,
//!   other producers garbage); the layout follows from the family.
//! - The HEPv2 time header is `struct hep_timehdr { u32 sec; u32 usec; u16 capture_id; }` written
//!   in host order (little-endian) and not packed: 12 bytes with 2 padding bytes.
//! - sngrep sends the HEPv3 capture id byte-swapped into the upper 16 bits;
//!   [`HepPacket::capture_id_normalized`] undoes it.
//! - The MAC chunks are u64 per the specification; 6-byte bodies are accepted as well.
//! - HEP over TCP/TLS is framed only by the total length; [`frame_check`] and [`StreamFramer`]
//!   cut messages out of a stream regardless of segmentation and resynchronise after garbage.
//!
//! # Invariants
//!
//! - Decoding never panics and never allocates for well-formed input: [`HepPacket`] borrows every
//!   variable-length field from the input and its diagnostics vector stays unallocated.
//! - The total length bounds the message: a larger total than the buffer is an error, extra bytes
//!   after it are ignored with a [`Diagnostic::TrailingBytes`].
//! - Structural damage (a chunk running past the end, a chunk shorter than its own header) is a
//!   [`DecodeError`]; a typed chunk with the wrong body size only leaves its field `None` and adds
//!   a [`Diagnostic::BadChunkLength`].
//! - Duplicate chunks: the **last** one wins (as in heplify-server and Kamailio), and each
//!   repetition adds a [`Diagnostic::DuplicateChunk`]. [`HepPacket::chunks`] still yields all.
//! - No allocation is driven by input lengths without a cap: inflating is bounded by the caller's
//!   cap, the stream framer by [`FramerConfig::max_buffer`].
//! - `decode(encode(m))` converted back with [`HepMessage::from_packet`] equals `m` for every
//!   message the encoder accepts.
//!
//! # Example
//!
//! ```
//! let msg = hep::HepMessage {
//!     ip_family: Some(hep::FAMILY_IPV4),
//!     ip_proto: Some(17),
//!     src_ip: Some("10.0.0.1".parse().unwrap()),
//!     dst_ip: Some("10.0.0.2".parse().unwrap()),
//!     src_port: Some(5060),
//!     dst_port: Some(5060),
//!     ts_sec: Some(1_700_000_000),
//!     ts_usec: Some(42),
//!     proto_type: Some(1),
//!     capture_id: Some(2001),
//!     payload: Some(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n".to_vec()),
//!     ..Default::default()
//! };
//! let wire = msg.encode_to_vec().unwrap();
//! let packet = hep::decode(&wire).unwrap();
//! assert_eq!(packet.version, 3);
//! assert_eq!(packet.timestamp_micros(), Some(1_700_000_000_000_042));
//! assert_eq!(hep::proto_type_name(packet.proto_type.unwrap()), "SIP");
//! assert_eq!(packet.chunks().count(), 11);
//! assert_eq!(packet.to_message(), msg);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chunk;
mod error;
mod framer;
mod inflate;
mod message;
mod packet;
mod proto;

pub use chunk::{chunk_type, Chunk, ChunkValue, Chunks, CHUNK_HEADER_LEN, HEP3_HEADER_LEN};
pub use error::{DecodeError, Diagnostic, EncodeError, FramerError};
pub use framer::{frame_check, frame_check_final, FrameCheck, FramerConfig, StreamFramer};
pub use message::{HepMessage, RawChunk, MAX_MESSAGE_LEN};
pub use packet::{decode, HepPacket, FAMILY_IPV4, FAMILY_IPV6, HEP3_MAGICS};
pub use proto::proto_type_name;
