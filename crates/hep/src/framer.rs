//! Framing HEPv3 messages out of a byte stream (HEP over TCP or TLS).
//!
//! A stream carries messages back to back, delimited only by their total length field; segment
//! boundaries mean nothing. [`frame_check`] is a pure function over the bytes received so far
//! (check first, parse later, as in tokio's mini-redis); [`StreamFramer`] owns a bounded buffer
//! around it.

use crate::chunk::{chunk_header, CHUNK_HEADER_LEN, HEP3_HEADER_LEN};
use crate::error::FramerError;
use crate::packet::{is_hep3_magic, HEP3_MAGICS};

/// Magic length of a HEPv3 message.
const MAGIC_LEN: usize = 4;

/// What the start of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameCheck {
    /// After `skip` bytes of garbage, a complete message of `len` bytes follows.
    Complete {
        /// Garbage bytes before the message.
        skip: usize,
        /// Length of the message (its total length field).
        len: usize,
    },
    /// No complete message yet; the first `skip` bytes are garbage and can be dropped, the rest
    /// is (the start of) a candidate message or a partial magic to keep.
    Incomplete {
        /// Garbage bytes that can be dropped now.
        skip: usize,
    },
}

/// What a magic found in the buffer turned out to be.
enum Candidate {
    /// A message of this many bytes, all present.
    Complete(usize),
    /// Plausible so far, more bytes needed.
    NeedMore,
    /// Not a message start: bad total length or chunks that do not tile it.
    Garbage,
}

/// Examine a message candidate starting with a magic.
///
/// Beyond the total length, the chunk headers present are walked: in a real message they tile
/// the total length exactly, while a stray `HEP3` inside garbage or a payload almost never does.
/// A chunk header that is itself a magic contradicts the claimed length: it is the next
/// message's start (vendor 0x4845 does not exist), so a fake header such as `HEP3\xff\xff`
/// sent before real messages — whose headers would otherwise tile its length chunk by chunk —
/// is garbage. This keeps a bogus candidate from swallowing the real messages behind it.
fn examine(candidate: &[u8], max_len: usize) -> Candidate {
    let total = match candidate.get(MAGIC_LEN..HEP3_HEADER_LEN) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return Candidate::NeedMore,
    };
    if total < HEP3_HEADER_LEN || total > max_len {
        return Candidate::Garbage;
    }
    let mut offset = HEP3_HEADER_LEN;
    while offset < total {
        if total - offset < CHUNK_HEADER_LEN {
            return Candidate::Garbage;
        }
        if candidate
            .get(offset..offset + MAGIC_LEN)
            .is_some_and(is_hep3_magic)
        {
            return Candidate::Garbage;
        }
        let Some((_, _, len)) = chunk_header(candidate, offset) else {
            return Candidate::NeedMore;
        };
        let len = usize::from(len);
        if len < CHUNK_HEADER_LEN || len > total - offset {
            return Candidate::Garbage;
        }
        offset += len;
    }
    if candidate.len() >= total {
        Candidate::Complete(total)
    } else {
        Candidate::NeedMore
    }
}

/// Position of the first HEPv3 magic at or after `from`.
fn find_magic(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(MAGIC_LEN)
        .position(is_hep3_magic)
        .map(|p| p + from)
}

/// Length of the longest proper suffix of `buf` that could be the start of a magic.
fn partial_magic_suffix(buf: &[u8]) -> usize {
    (1..MAGIC_LEN)
        .rev()
        .find(|&n| {
            buf.len()
                .checked_sub(n)
                .and_then(|start| buf.get(start..))
                .is_some_and(|tail| HEP3_MAGICS.iter().any(|m| m.starts_with(tail)))
        })
        .unwrap_or(0)
}

/// Find the next message in `buf`, the bytes received so far.
///
/// Bytes before the first magic are garbage. A magic whose total length is below 6 or above
/// `max_len`, or whose chunks do not tile that length, is garbage too: the search resumes one byte
/// past it. The result never asks to skip bytes that could still turn into a message, and a
/// `Complete` message has the chunk layout [`crate::decode`] requires, so it always decodes.
pub fn frame_check(buf: &[u8], max_len: usize) -> FrameCheck {
    check(buf, max_len, false)
}

/// [`frame_check`] for bytes after which nothing more will arrive (the peer closed, or a
/// message did not complete in time): a candidate still waiting for bytes is garbage, so the
/// messages behind a header claiming more than was sent are found; `Incomplete` then skips
/// everything.
pub fn frame_check_final(buf: &[u8], max_len: usize) -> FrameCheck {
    check(buf, max_len, true)
}

fn check(buf: &[u8], max_len: usize, last: bool) -> FrameCheck {
    let mut from = 0;
    loop {
        let Some(start) = find_magic(buf, from) else {
            let keep = if last { 0 } else { partial_magic_suffix(buf) };
            return FrameCheck::Incomplete {
                skip: (buf.len() - keep).max(from.min(buf.len())),
            };
        };
        let candidate = buf.get(start..).unwrap_or_default();
        match examine(candidate, max_len) {
            Candidate::Complete(len) => return FrameCheck::Complete { skip: start, len },
            Candidate::NeedMore if !last => return FrameCheck::Incomplete { skip: start },
            Candidate::NeedMore | Candidate::Garbage => from = start + 1,
        }
    }
}

/// Limits of a [`StreamFramer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerConfig {
    /// Largest message accepted; a magic announcing more is treated as garbage. At most 65535
    /// (the total length field is a u16). Default: 65535.
    pub max_frame_len: usize,
    /// Most bytes the framer buffers (raised to `max_frame_len` if set lower, so one maximal
    /// message always fits). Default: 256 KiB.
    pub max_buffer: usize,
}

impl Default for FramerConfig {
    fn default() -> Self {
        FramerConfig {
            max_frame_len: u16::MAX as usize,
            max_buffer: 256 * 1024,
        }
    }
}

/// A buffered HEPv3 stream framer with garbage resynchronisation.
///
/// Feed received bytes with [`StreamFramer::push`], then call [`StreamFramer::next_frame`] until
/// it returns `None`. After that drain fewer than `max_frame_len` bytes stay buffered, so a push of
/// up to `max_buffer - max_frame_len` bytes always succeeds. Bytes are conserved:
/// `bytes_framed + bytes_skipped + pending_len == bytes_pushed`.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    config: FramerConfig,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`; consumed bytes are dropped on the next push.
    start: usize,
    bytes_pushed: u64,
    bytes_skipped: u64,
    bytes_framed: u64,
    frames: u64,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(FramerConfig::default())
    }
}

impl StreamFramer {
    /// A framer with the given limits; the buffer is allocated lazily as data arrives.
    pub fn new(config: FramerConfig) -> Self {
        let config = FramerConfig {
            max_frame_len: config.max_frame_len,
            max_buffer: config.max_buffer.max(config.max_frame_len),
        };
        StreamFramer {
            config,
            buf: Vec::new(),
            start: 0,
            bytes_pushed: 0,
            bytes_skipped: 0,
            bytes_framed: 0,
            frames: 0,
        }
    }

    /// Append received bytes. Fails, consuming nothing, when they would not fit the buffer limit
    /// next to the bytes still pending.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FramerError> {
        let pending = self.pending_len();
        let needed = pending.saturating_add(data.len());
        if needed > self.config.max_buffer {
            return Err(FramerError::BufferFull {
                pending,
                incoming: data.len(),
                capacity: self.config.max_buffer,
            });
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if needed > self.buf.capacity() {
            // Double like a Vec would, but never past the configured limit.
            let target = self
                .buf
                .capacity()
                .saturating_mul(2)
                .max(needed)
                .min(self.config.max_buffer);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(data);
        self.bytes_pushed += data.len() as u64;
        Ok(())
    }

    /// The next complete message, borrowed from the buffer until the next call; `None` when more
    /// bytes are needed. Garbage met on the way is dropped and counted.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        self.advance(false)
    }

    /// Like [`StreamFramer::next_frame`] once no more bytes will come (end of stream, or a
    /// message that did not complete in time): a message start still waiting for bytes is
    /// skipped as garbage and the messages behind it are framed. Call until `None`; nothing
    /// is left pending then.
    pub fn next_frame_final(&mut self) -> Option<&[u8]> {
        self.advance(true)
    }

    fn advance(&mut self, last: bool) -> Option<&[u8]> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        match check(pending, self.config.max_frame_len, last) {
            FrameCheck::Complete { skip, len } => {
                let begin = self.start + skip;
                let end = begin + len;
                self.start = end;
                self.bytes_skipped += skip as u64;
                self.bytes_framed += len as u64;
                self.frames += 1;
                self.buf.get(begin..end)
            }
            FrameCheck::Incomplete { skip } => {
                self.start += skip;
                self.bytes_skipped += skip as u64;
                None
            }
        }
    }

    /// Bytes received but not yet framed or skipped.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Number of bytes received but not yet framed or skipped.
    pub fn pending_len(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Total bytes pushed.
    pub fn bytes_pushed(&self) -> u64 {
        self.bytes_pushed
    }

    /// Total garbage bytes dropped while resynchronising.
    pub fn bytes_skipped(&self) -> u64 {
        self.bytes_skipped
    }

    /// Total bytes handed out as frames.
    pub fn bytes_framed(&self) -> u64 {
        self.bytes_framed
    }

    /// Number of frames handed out.
    pub fn frames_produced(&self) -> u64 {
        self.frames
    }

    /// The effective limits.
    pub fn config(&self) -> FramerConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid message: header plus one 1-byte chunk (total 13).
    fn message(byte: u8) -> Vec<u8> {
        let mut m = b"HEP3\x00\x0d".to_vec();
        m.extend_from_slice(&[0, 0, 0, 1, 0, 7, byte]);
        m
    }

    #[test]
    fn complete_message() {
        let m = message(2);
        assert_eq!(
            frame_check(&m, 65535),
            FrameCheck::Complete { skip: 0, len: 13 }
        );
    }

    #[test]
    fn every_prefix_is_incomplete_without_skipping() {
        let m = message(2);
        for n in 0..m.len() {
            assert_eq!(
                frame_check(&m[..n], 65535),
                FrameCheck::Incomplete { skip: 0 },
                "prefix {n}"
            );
        }
    }

    #[test]
    fn garbage_before_message_is_skipped() {
        let mut buf = b"xxHEP".to_vec();
        buf.extend_from_slice(&message(2));
        assert_eq!(
            frame_check(&buf, 65535),
            FrameCheck::Complete { skip: 5, len: 13 }
        );
    }

    #[test]
    fn partial_magic_at_the_end_is_kept() {
        assert_eq!(
            frame_check(b"garbageHE", 65535),
            FrameCheck::Incomplete { skip: 7 }
        );
        assert_eq!(
            frame_check(b"garbageEEP", 65535),
            FrameCheck::Incomplete { skip: 7 }
        );
        assert_eq!(
            frame_check(b"garbage", 65535),
            FrameCheck::Incomplete { skip: 7 }
        );
        assert_eq!(frame_check(b"", 65535), FrameCheck::Incomplete { skip: 0 });
    }

    #[test]
    fn bad_total_lengths_resynchronise() {
        let mut buf = b"HEP3\x00\x05".to_vec(); // total below the header
        buf.extend_from_slice(b"HEP3\xff\xff"); // above max_len
        buf.extend_from_slice(&message(9));
        assert_eq!(
            frame_check(&buf, 1000),
            FrameCheck::Complete { skip: 12, len: 13 }
        );
    }

    #[test]
    fn chunks_not_tiling_the_total_are_garbage() {
        // Total 13 but a chunk claiming 40 bytes.
        let mut buf = b"HEP3\x00\x0d\x00\x00\x00\x01\x00\x28\x02".to_vec();
        buf.extend_from_slice(&message(3));
        assert_eq!(
            frame_check(&buf, 65535),
            FrameCheck::Complete { skip: 13, len: 13 }
        );
    }

    #[test]
    fn a_fake_header_does_not_hide_the_messages_behind_it() {
        // The probe: a good message, a header claiming 65535 bytes, 20 good messages.
        let mut stream = message(0);
        stream.extend_from_slice(b"HEP3\xff\xff");
        for i in 1..=20 {
            stream.extend_from_slice(&message(i));
        }
        let mut framer = StreamFramer::default();
        framer.push(&stream).unwrap();
        let mut frames = Vec::new();
        while let Some(f) = framer.next_frame() {
            frames.push(f.to_vec());
        }
        assert_eq!(frames.len(), 21);
        assert_eq!(frames[20], message(20));
        assert_eq!(framer.bytes_skipped(), 6);
    }

    #[test]
    fn what_is_buffered_at_the_end_is_framed() {
        // A header claiming more than ever arrives, with garbage behind it that keeps its
        // chunk walk plausible, then good messages: found once the stream ends.
        let mut stream = message(0);
        stream.extend_from_slice(b"HEP3\x10\x00\x00\x00\x00\x01\x01\x00x");
        for i in 1..=5 {
            stream.extend_from_slice(&message(i));
        }
        let mut framer = StreamFramer::default();
        framer.push(&stream).unwrap();
        let mut frames = Vec::new();
        while let Some(f) = framer.next_frame() {
            frames.push(f.to_vec());
        }
        while let Some(f) = framer.next_frame_final() {
            frames.push(f.to_vec());
        }
        assert_eq!(frames.len(), 6, "{frames:?}");
        assert_eq!(framer.pending_len(), 0);
        assert_eq!(
            framer.bytes_framed() + framer.bytes_skipped(),
            framer.bytes_pushed()
        );
    }

    #[test]
    fn final_check_of_a_prefix_skips_it_all() {
        let m = message(2);
        assert_eq!(
            frame_check_final(&m[..m.len() - 1], 65535),
            FrameCheck::Incomplete { skip: m.len() - 1 }
        );
        assert_eq!(
            frame_check_final(&m, 65535),
            FrameCheck::Complete { skip: 0, len: 13 }
        );
    }

    #[test]
    fn framer_conserves_bytes_and_bounds_the_buffer() {
        let mut framer = StreamFramer::new(FramerConfig {
            max_frame_len: 100,
            max_buffer: 120,
        });
        let mut stream = b"junk".to_vec();
        stream.extend_from_slice(&message(1));
        stream.extend_from_slice(&message(2));
        framer.push(&stream).unwrap();
        let mut frames = Vec::new();
        while let Some(f) = framer.next_frame() {
            frames.push(f.to_vec());
        }
        assert_eq!(frames, vec![message(1), message(2)]);
        assert_eq!(framer.bytes_skipped(), 4);
        assert_eq!(framer.frames_produced(), 2);
        assert_eq!(
            framer.bytes_framed() + framer.bytes_skipped() + framer.pending_len() as u64,
            framer.bytes_pushed()
        );
        assert!(matches!(
            framer.push(&[0u8; 121]),
            Err(FramerError::BufferFull { capacity: 120, .. })
        ));
        framer.push(&[0u8; 120]).unwrap();
        assert!(framer.next_frame().is_none());
        assert_eq!(framer.pending_len(), 0);
        assert_eq!(framer.bytes_skipped(), 124);
    }
}
