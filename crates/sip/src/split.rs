//! Framing SIP messages on a byte stream (TCP, TLS) or several messages in one buffer.
//!
//! RFC 3261 §18.3: on a stream transport a message ends after its header block plus
//! Content-Length bytes, and a missing Content-Length means an empty body.
//!
//! **Keep-alive rule.** A run of CR and LF bytes in front of a message is a keep-alive (RFC 5626
//! §4.4.1: `CRLFCRLF` ping, `CRLF` pong; RFC 3261 §7.5 also lets a sender put empty lines before
//! a start line). [`message_len`] reports such a run as a frame of its own — whatever its length,
//! even when no message follows yet — so a reader can drop it at once and never buffers pings;
//! [`is_keepalive`] recognises it. A message frame therefore never starts with CR or LF.
//! [`split_messages`] skips keep-alive frames instead of yielding them.

use crate::header::{BlockEnd, HeaderKind, LineScanner, RawLine};
use crate::lex;
use crate::message::{skip_keepalive, split_start_line};

/// Whether a header name is Content-Length (or its compact form `l`). The length and first
/// letter rule out almost every other header before any comparison.
fn is_content_length(name: &[u8]) -> bool {
    matches!(
        (name.len(), name.first()),
        (1, Some(b'l' | b'L')) | (14, Some(b'c' | b'C'))
    ) && HeaderKind::from_name(name) == Some(HeaderKind::ContentLength)
}

/// Why a stream cannot be framed as SIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The bytes at `offset` do not start a SIP request or status line.
    #[error("not a SIP message at byte {offset}")]
    Garbage {
        /// Offset of the offending message start.
        offset: usize,
    },
    /// The message (headers, or headers plus announced body) is longer than the allowed maximum.
    #[error("SIP message at byte {offset} exceeds {max} bytes")]
    TooLarge {
        /// Offset of the message start.
        offset: usize,
        /// The maximum that was given.
        max: usize,
    },
    /// The Content-Length header is not a number, so the message end cannot be known.
    #[error("SIP message at byte {offset} has an invalid Content-Length")]
    BadContentLength {
        /// Offset of the message start.
        offset: usize,
    },
    /// The buffer ends inside a message ([`split_messages`] only; [`message_len`] returns
    /// `Ok(None)` instead).
    #[error("incomplete SIP message at byte {offset}")]
    Incomplete {
        /// Offset of the message start.
        offset: usize,
    },
}

impl SplitError {
    fn at(self, base: usize) -> SplitError {
        match self {
            SplitError::Garbage { offset } => SplitError::Garbage {
                offset: offset + base,
            },
            SplitError::TooLarge { offset, max } => SplitError::TooLarge {
                offset: offset + base,
                max,
            },
            SplitError::BadContentLength { offset } => SplitError::BadContentLength {
                offset: offset + base,
            },
            SplitError::Incomplete { offset } => SplitError::Incomplete {
                offset: offset + base,
            },
        }
    }
}

/// True for a keep-alive frame: one or more CR/LF bytes and nothing else.
pub fn is_keepalive(frame: &[u8]) -> bool {
    !frame.is_empty() && frame.iter().all(|&b| b == b'\r' || b == b'\n')
}

/// Whether an incomplete first line can still become a start line: a token (method) or `SIP/`
/// prefix, then printable bytes. Lets a stream reader reject binary garbage before a line ends.
fn plausible_partial_start(line: &[u8]) -> bool {
    let first_token_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let token = line.get(..first_token_end).unwrap_or_default();
    let token_ok = token.iter().all(|&b| lex::is_token(b) || b == b'/');
    let rest_ok = line
        .iter()
        .all(|&b| b == b'\t' || b == b'\r' || (b >= 0x20 && b != 0x7f));
    token_ok && rest_ok
}

/// Length of the complete SIP message (or keep-alive frame) at the start of `buf`.
///
/// * `Ok(Some(n))`: `buf[..n]` is a whole message — start line, headers, empty line and
///   Content-Length body bytes (0 when Content-Length is absent, as on any stream) — or a
///   keep-alive frame (see the module documentation and [`is_keepalive`]).
/// * `Ok(None)`: more bytes are needed.
/// * `Err(_)`: the stream is not SIP, the Content-Length is unreadable, or the message would be
///   longer than `max` bytes (checked as soon as the header block, or `max` bytes without it,
///   are present — before the body arrives).
///
/// The scan restarts from the beginning of `buf` on every call; headers are small, so a reader
/// that calls this after each read stays linear in practice.
pub fn message_len(buf: &[u8], max: usize) -> Result<Option<usize>, SplitError> {
    let keepalive = skip_keepalive(buf);
    if keepalive > 0 {
        return Ok(Some(keepalive));
    }
    if buf.is_empty() {
        return Ok(None);
    }
    let Some(first_nl) = memchr::memchr(b'\n', buf) else {
        if !plausible_partial_start(buf) {
            return Err(SplitError::Garbage { offset: 0 });
        }
        return if buf.len() >= max {
            Err(SplitError::TooLarge { offset: 0, max })
        } else {
            Ok(None)
        };
    };
    if split_start_line(buf.get(..first_nl).unwrap_or_default()).is_none() {
        return Err(SplitError::Garbage { offset: 0 });
    }
    let mut scanner = LineScanner::new(buf, first_nl + 1);
    // Outer `None`: no Content-Length; inner `None`: unreadable. Only judged once the header
    // block is complete, because the last line of a partial block may still be growing.
    let mut content_length: Option<Option<usize>> = None;
    while let Some(line) = scanner.next_raw() {
        if let RawLine::Header { name, value } = line {
            if content_length.is_none() && is_content_length(name) {
                content_length =
                    Some(lex::parse_u32(lex::trim(value)).and_then(|n| usize::try_from(n).ok()));
            }
        }
    }
    match scanner.end() {
        BlockEnd::Blank(body_start) => {
            let body_len = match content_length {
                None => 0,
                Some(declared) => declared.ok_or(SplitError::BadContentLength { offset: 0 })?,
            };
            let total = body_start
                .checked_add(body_len)
                .filter(|&total| total <= max)
                .ok_or(SplitError::TooLarge { offset: 0, max })?;
            Ok((total <= buf.len()).then_some(total))
        }
        BlockEnd::Open | BlockEnd::Eof { .. } => {
            if buf.len() >= max {
                Err(SplitError::TooLarge { offset: 0, max })
            } else {
                Ok(None)
            }
        }
    }
}

/// Splits a buffer holding several SIP messages (a reassembled TCP stream, a capture) into one
/// slice per message, by header block and Content-Length, skipping keep-alive CR/LF runs.
///
/// Stops after the first error: garbage or an invalid Content-Length leaves no reliable place to
/// resume, and a message cut off by the end of the buffer gives [`SplitError::Incomplete`].
pub fn split_messages(buf: &[u8]) -> SplitMessages<'_> {
    SplitMessages { buf, pos: 0 }
}

/// Iterator returned by [`split_messages`].
#[derive(Clone, Debug)]
pub struct SplitMessages<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for SplitMessages<'a> {
    type Item = Result<&'a [u8], SplitError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
            let base = self.pos;
            match message_len(rest, usize::MAX) {
                Ok(Some(n)) => {
                    let frame = rest.get(..n).unwrap_or(rest);
                    self.pos += n.max(1);
                    if is_keepalive(frame) {
                        continue;
                    }
                    return Some(Ok(frame));
                }
                Ok(None) => {
                    self.pos = self.buf.len();
                    return Some(Err(SplitError::Incomplete { offset: base }));
                }
                Err(e) => {
                    self.pos = self.buf.len();
                    return Some(Err(e.at(base)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn frames_whole_and_partial_messages() {
        assert_eq!(message_len(OPTIONS, 1000), Ok(Some(OPTIONS.len())));
        for cut in 1..OPTIONS.len() {
            assert_eq!(message_len(&OPTIONS[..cut], 1000), Ok(None), "cut at {cut}");
        }
        let mut two = OPTIONS.to_vec();
        two.extend_from_slice(b"SIP/2.0 200 OK\nl: 0\n\n");
        assert_eq!(message_len(&two, 1000), Ok(Some(OPTIONS.len())));
        assert_eq!(message_len(b"", 10), Ok(None));
    }

    #[test]
    fn keepalives_are_their_own_frames() {
        assert_eq!(message_len(b"\r\n\r\n", 100), Ok(Some(4)));
        assert_eq!(message_len(b"\r\n\r\nINVITE", 100), Ok(Some(4)));
        assert!(is_keepalive(b"\r\n"));
        assert!(!is_keepalive(b""));
        assert!(!is_keepalive(b"\r\nX"));
    }

    #[test]
    fn missing_content_length_means_empty_body() {
        let msg = b"ACK sip:a SIP/2.0\r\nCall-ID: 1\r\n\r\nNEXT";
        assert_eq!(message_len(msg, 100), Ok(Some(msg.len() - 4)));
    }

    #[test]
    fn errors() {
        assert_eq!(
            message_len(b"\x16\x03\x01", 100),
            Err(SplitError::Garbage { offset: 0 })
        );
        assert_eq!(
            message_len(b"HELLO WORLD\r\n", 100),
            Err(SplitError::Garbage { offset: 0 })
        );
        assert_eq!(
            message_len(b"INVITE sip:a SIP/2.0\r\nl: x\r\n\r\n", 100),
            Err(SplitError::BadContentLength { offset: 0 })
        );
        assert_eq!(
            message_len(b"INVITE sip:a SIP/2.0\r\nl: 1000\r\n\r\n", 100),
            Err(SplitError::TooLarge {
                offset: 0,
                max: 100
            })
        );
        assert_eq!(
            message_len(b"INVITE sip:a SIP/2.0\r\nX: yyyyyyyyyy", 20),
            Err(SplitError::TooLarge { offset: 0, max: 20 })
        );
        assert_eq!(
            message_len(b"INVITE sip:aaaa", 10),
            Err(SplitError::TooLarge { offset: 0, max: 10 })
        );
    }

    #[test]
    fn splits_buffers() {
        let mut buf = b"\r\n\r\n".to_vec();
        buf.extend_from_slice(OPTIONS);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(OPTIONS);
        let frames: Vec<_> = split_messages(&buf).collect();
        assert_eq!(frames, vec![Ok(OPTIONS), Ok(OPTIONS)]);

        buf.extend_from_slice(&OPTIONS[..10]);
        let frames: Vec<_> = split_messages(&buf).collect();
        let tail = buf.len() - 10;
        assert_eq!(
            frames.last(),
            Some(&Err(SplitError::Incomplete { offset: tail }))
        );

        let frames: Vec<_> = split_messages(b"\r\n").collect();
        assert!(frames.is_empty());
        let mut garbage = OPTIONS.to_vec();
        garbage.extend_from_slice(b"\x00\x01\x02");
        let frames: Vec<_> = split_messages(&garbage).collect();
        assert_eq!(
            frames,
            vec![
                Ok(OPTIONS),
                Err(SplitError::Garbage {
                    offset: OPTIONS.len()
                })
            ]
        );
    }
}
