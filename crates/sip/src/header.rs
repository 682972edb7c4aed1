//! The header block scanner: one pass over the lines (colons and line breaks found 16 bytes at a
//! time, see `lex::find_any`), folding and bare LF included. Values are trimmed only when a caller
//! reads them.

use serde::Serialize;

use crate::lex;
use crate::text::Text;

/// Headers the indexer knows by name, including every RFC 3261 §7.3.3 compact form and the
/// registered compact forms of later RFCs (`r` Refer-To, `b` Referred-By, `x` Session-Expires).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum HeaderKind {
    /// `Via` / `v`
    Via,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Call-ID` / `i`
    CallId,
    /// `CSeq`
    CSeq,
    /// `Contact` / `m`
    Contact,
    /// `User-Agent`
    UserAgent,
    /// `Server`
    Server,
    /// `P-Asserted-Identity`
    PAssertedIdentity,
    /// `Remote-Party-ID`
    RemotePartyId,
    /// `Authorization`
    Authorization,
    /// `Proxy-Authorization`
    ProxyAuthorization,
    /// `Reason`
    Reason,
    /// `Content-Type` / `c`
    ContentType,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Expires`
    Expires,
    /// `Max-Forwards`
    MaxForwards,
    /// `Diversion`
    Diversion,
    /// `Supported` / `k`
    Supported,
    /// `Subject` / `s`
    Subject,
    /// `Content-Encoding` / `e`
    ContentEncoding,
    /// `Event` / `o`
    Event,
    /// `Allow-Events` / `u`
    AllowEvents,
    /// `Refer-To` / `r`
    ReferTo,
    /// `Referred-By` / `b`
    ReferredBy,
    /// `Session-Expires` / `x`
    SessionExpires,
}

impl HeaderKind {
    /// Recognises a header name, case-insensitively, in its long or compact form.
    pub fn from_name(name: &[u8]) -> Option<HeaderKind> {
        use HeaderKind::*;
        let (&first, rest) = name.split_first()?;
        let first = first.to_ascii_lowercase();
        if rest.is_empty() {
            return match first {
                b'v' => Some(Via),
                b'f' => Some(From),
                b't' => Some(To),
                b'i' => Some(CallId),
                b'm' => Some(Contact),
                b'c' => Some(ContentType),
                b'l' => Some(ContentLength),
                b'k' => Some(Supported),
                b's' => Some(Subject),
                b'e' => Some(ContentEncoding),
                b'o' => Some(Event),
                b'u' => Some(AllowEvents),
                b'r' => Some(ReferTo),
                b'b' => Some(ReferredBy),
                b'x' => Some(SessionExpires),
                _ => None,
            };
        }
        // This runs for every header line, so the first letter and the length pick the single
        // candidate (the second letter where two share both) and one comparison confirms it.
        let second = rest.first().map_or(0, u8::to_ascii_lowercase);
        let candidate = match (first, name.len()) {
            (b'v', 3) => Via,
            (b'f', 4) => From,
            (b't', 2) => To,
            (b'c', 7) if second == b'a' => CallId,
            (b'c', 7) => Contact,
            (b'c', 4) => CSeq,
            (b'c', 12) => ContentType,
            (b'c', 14) => ContentLength,
            (b'c', 16) => ContentEncoding,
            (b'u', 10) => UserAgent,
            (b's', 6) => Server,
            (b's', 7) => Subject,
            (b's', 9) => Supported,
            (b's', 15) => SessionExpires,
            (b'p', 19) if second == b'-' => PAssertedIdentity,
            (b'p', 19) => ProxyAuthorization,
            (b'r', 15) => RemotePartyId,
            (b'r', 6) => Reason,
            (b'r', 8) => ReferTo,
            (b'r', 11) => ReferredBy,
            (b'a', 13) => Authorization,
            (b'a', 12) => AllowEvents,
            (b'e', 7) => Expires,
            (b'e', 5) => Event,
            (b'm', 12) => MaxForwards,
            (b'd', 9) => Diversion,
            _ => return None,
        };
        eq_canonical(name, candidate.canonical_name().as_bytes()).then_some(candidate)
    }

    /// The long form of the name, as RFC 3261 and its successors spell it.
    pub const fn canonical_name(self) -> &'static str {
        use HeaderKind::*;
        match self {
            Via => "Via",
            From => "From",
            To => "To",
            CallId => "Call-ID",
            CSeq => "CSeq",
            Contact => "Contact",
            UserAgent => "User-Agent",
            Server => "Server",
            PAssertedIdentity => "P-Asserted-Identity",
            RemotePartyId => "Remote-Party-ID",
            Authorization => "Authorization",
            ProxyAuthorization => "Proxy-Authorization",
            Reason => "Reason",
            ContentType => "Content-Type",
            ContentLength => "Content-Length",
            Expires => "Expires",
            MaxForwards => "Max-Forwards",
            Diversion => "Diversion",
            Supported => "Supported",
            Subject => "Subject",
            ContentEncoding => "Content-Encoding",
            Event => "Event",
            AllowEvents => "Allow-Events",
            ReferTo => "Refer-To",
            ReferredBy => "Referred-By",
            SessionExpires => "Session-Expires",
        }
    }
}

/// Case-insensitive comparison of a header name with a canonical name made of ASCII letters and
/// `-`, a word at a time: the bytes may differ only in the case bit (0x20), and only where the
/// canonical byte is a letter (letters have bit 0x40 set, `-` does not). Names of 4 bytes or more
/// are compared as two or three overlapping words, without a per-byte loop.
fn eq_canonical(name: &[u8], canonical: &[u8]) -> bool {
    const LETTER_BITS: u64 = 0x4040_4040_4040_4040;
    let len = canonical.len();
    if name.len() != len {
        return false;
    }
    let same = |n: u64, c: u64| (n ^ c) & !((c & LETTER_BITS) >> 1) == 0;
    let word8 = |s: &[u8], at: usize| -> u64 {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let word4 = |s: &[u8], at: usize| -> u64 {
        s.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
    };
    match len {
        0..=3 => name
            .iter()
            .zip(canonical)
            .all(|(&n, &c)| same(u64::from(n), u64::from(c))),
        4..=7 => {
            same(word4(name, 0), word4(canonical, 0))
                && same(word4(name, len - 4), word4(canonical, len - 4))
        }
        8..=16 => {
            same(word8(name, 0), word8(canonical, 0))
                && same(word8(name, len - 8), word8(canonical, len - 8))
        }
        _ => {
            (0..len - 8)
                .step_by(8)
                .all(|at| same(word8(name, at), word8(canonical, at)))
                && same(word8(name, len - 8), word8(canonical, len - 8))
        }
    }
}

/// One header as it appears in the message: the name as written and the value with surrounding
/// white space trimmed (a folded value keeps its inner line breaks; see [`Text::normalized`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Header<'a> {
    /// The header name as written (any case, long or compact form).
    pub name: Text<'a>,
    /// The header value.
    pub value: Text<'a>,
}

impl Header<'_> {
    /// The known header this is, if any (compact forms resolve to their long form).
    pub fn kind(&self) -> Option<HeaderKind> {
        HeaderKind::from_name(self.name.as_bytes())
    }

    /// True when this header is `name`, compared case-insensitively, with compact forms equal to
    /// their long forms (`is("Call-ID")` holds for an `i:` header).
    pub fn is(&self, name: &str) -> bool {
        if self.name.eq_ignore_ascii_case(name.as_bytes()) {
            return true;
        }
        match (self.kind(), HeaderKind::from_name(name.as_bytes())) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}

/// How the header block ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockEnd {
    /// Not reached yet.
    Open,
    /// The empty line was found; the body starts at this offset.
    Blank(usize),
    /// The input ended without an empty line. `line_complete` tells whether the last line had
    /// its line break (a stream reader needs more bytes when it did not).
    Eof { line_complete: bool },
}

/// Scans header lines starting at `pos` of `buf` until the empty line. Lines end in CRLF or a
/// bare LF; a line starting with SP or HT continues the previous header (RFC 3261 §7.3.1).
pub(crate) struct LineScanner<'a> {
    buf: &'a [u8],
    pos: usize,
    end: BlockEnd,
}

impl<'a> LineScanner<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        LineScanner {
            buf,
            pos,
            end: BlockEnd::Open,
        }
    }

    /// How the block ended (valid once `next_line` returned `None`).
    pub(crate) fn end(&self) -> BlockEnd {
        self.end
    }

    /// The line starting at `at`: (content without its line break, offset of the next line,
    /// whether a line break was present).
    fn line_at(&self, at: usize) -> (&'a [u8], usize, bool) {
        let rest = self.buf.get(at..).unwrap_or_default();
        match memchr::memchr(b'\n', rest) {
            Some(nl) => {
                let content = rest.get(..nl).unwrap_or_default();
                let content = content.strip_suffix(b"\r").unwrap_or(content);
                (content, at + nl + 1, true)
            }
            None => (rest, self.buf.len(), false),
        }
    }

    /// The next line as a header with its value *untrimmed* (it may carry the white space around
    /// it and the CR of its last line break): the indexer trims only the values it reads, so
    /// unknown headers cost no more than finding their line break.
    pub(crate) fn next_raw(&mut self) -> Option<RawLine<'a>> {
        if self.end != BlockEnd::Open {
            return None;
        }
        let buf = self.buf;
        let line_start = self.pos;
        match buf.get(line_start..) {
            None | Some([]) => {
                self.end = BlockEnd::Eof {
                    line_complete: true,
                };
                return None;
            }
            Some([b'\n', ..]) => {
                self.pos = line_start + 1;
                self.end = BlockEnd::Blank(self.pos);
                return None;
            }
            Some([b'\r', b'\n', ..]) => {
                self.pos = line_start + 2;
                self.end = BlockEnd::Blank(self.pos);
                return None;
            }
            Some([b'\r', ..] | [b' ' | b'\t', ..]) => return self.next_raw_slow(),
            Some(_) => {}
        }
        // The name ends at the colon; a line break first means there is none.
        let i = lex::find_any(buf, line_start, [b':', b'\n']);
        if buf.get(i) != Some(&b':') {
            // No colon on this line.
            let (_, next, terminated) = self.line_at(line_start);
            self.pos = next;
            if !terminated {
                self.end = BlockEnd::Eof {
                    line_complete: false,
                };
            }
            return Some(RawLine::Malformed(line_start));
        }
        let name = lex::trim_end(buf.get(line_start..i).unwrap_or_default());
        let value_start = i + 1;
        let mut value_end = lex::find_any(buf, value_start, [b'\n']);
        if value_end < buf.len() {
            self.pos = value_end + 1;
            if matches!(buf.get(self.pos), Some(b' ' | b'\t')) {
                value_end = self.continuation(value_end);
            }
        } else {
            self.pos = buf.len();
            self.end = BlockEnd::Eof {
                line_complete: false,
            };
        }
        Some(RawLine::Header {
            name,
            value: buf.get(value_start..value_end).unwrap_or_default(),
        })
    }

    /// Extends a value ending at `value_end` over the continuation lines that follow (lines
    /// starting with SP or HT); the span keeps the breaks (zero-copy).
    fn continuation(&mut self, mut value_end: usize) -> usize {
        while self.end == BlockEnd::Open && matches!(self.buf.get(self.pos), Some(b' ' | b'\t')) {
            let (cont, cont_next, cont_terminated) = self.line_at(self.pos);
            value_end = self.pos + cont.len();
            self.pos = cont_next;
            if !cont_terminated {
                self.end = BlockEnd::Eof {
                    line_complete: false,
                };
            }
        }
        value_end
    }

    /// The general (rare) case of [`LineScanner::next_raw`]: lines starting with CR, SP or HT.
    fn next_raw_slow(&mut self) -> Option<RawLine<'a>> {
        let line_start = self.pos;
        let (content, next, terminated) = self.line_at(line_start);
        if content.is_empty() || content == b"\r" {
            self.pos = next;
            self.end = if terminated {
                BlockEnd::Blank(next)
            } else {
                // A lone CR at the very end: the LF may still be on its way.
                BlockEnd::Eof {
                    line_complete: false,
                }
            };
            return None;
        }
        self.pos = next;
        if !terminated {
            self.end = BlockEnd::Eof {
                line_complete: false,
            };
        }
        let Some(colon) = lex::find(content, b':') else {
            return Some(RawLine::Malformed(line_start));
        };
        if matches!(content.first(), Some(b' ' | b'\t')) {
            return Some(RawLine::Malformed(line_start));
        }
        let name = lex::trim_end(content.get(..colon).unwrap_or_default());
        let value_start = line_start + colon + 1;
        let value_end = self.continuation(line_start + content.len());
        Some(RawLine::Header {
            name,
            value: self.buf.get(value_start..value_end).unwrap_or_default(),
        })
    }
}

/// One line-level item of the header block with the value not yet trimmed.
pub(crate) enum RawLine<'a> {
    /// `name: value`; the value runs from after the colon to the end of its last line and still
    /// has its surrounding white space (see [`lex::trim`]).
    Header {
        /// The name as written, trailing white space removed.
        name: &'a [u8],
        /// The untrimmed value.
        value: &'a [u8],
    },
    /// A line without a colon, or a continuation line with no header before it; the offset of
    /// the line in the scanned buffer.
    Malformed(usize),
}

/// Iterator over all headers of a message, in order, with malformed lines skipped.
/// Obtained from [`crate::SipMessage::headers`] or [`headers`].
pub struct Headers<'a> {
    scanner: LineScanner<'a>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        loop {
            if let RawLine::Header { name, value } = self.scanner.next_raw()? {
                return Some(Header {
                    name: Text::new(name),
                    value: Text::new(lex::trim(value)),
                });
            }
        }
    }
}

/// Iterates the headers of the header block that starts at `offset` of `buf` (the byte after the
/// start line), stopping at the empty line or the end of `buf`.
pub(crate) fn headers_from(buf: &[u8], offset: usize) -> Headers<'_> {
    Headers {
        scanner: LineScanner::new(buf, offset),
    }
}

/// Iterates the headers of a whole message (start line skipped), without indexing it: the cheap
/// path for header search over stored raw messages.
pub fn headers(msg: &[u8]) -> Headers<'_> {
    let start = crate::message::skip_keepalive(msg);
    let rest = msg.get(start..).unwrap_or_default();
    let after_start_line = memchr::memchr(b'\n', rest).map_or(msg.len(), |nl| start + nl + 1);
    headers_from(msg, after_start_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(buf: &[u8]) -> (Vec<(String, String)>, usize, BlockEnd) {
        let mut s = LineScanner::new(buf, 0);
        let mut out = Vec::new();
        let mut malformed = 0;
        while let Some(line) = s.next_raw() {
            match line {
                RawLine::Header { name, value } => out.push((
                    Text::new(name).to_str_lossy().into_owned(),
                    Text::new(lex::trim(value)).normalized().into_owned(),
                )),
                RawLine::Malformed(_) => malformed += 1,
            }
        }
        (out, malformed, s.end())
    }

    #[test]
    fn crlf_lf_and_folding() {
        let (h, bad, end) = scan(b"A: 1\r\nB :\t2 \nC: x\r\n  y\r\n\tz\r\nD:\r\n\r\nbody");
        assert_eq!(
            h,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("C".into(), "x y z".into()),
                ("D".into(), "".into())
            ]
        );
        assert_eq!(bad, 0);
        assert_eq!(end, BlockEnd::Blank(34));
    }

    #[test]
    fn malformed_lines_and_eof() {
        let (h, bad, end) = scan(b" leading: fold\r\nnocolon\r\nA: 1");
        assert_eq!(h, vec![("A".into(), "1".into())]);
        assert_eq!(bad, 2);
        assert_eq!(
            end,
            BlockEnd::Eof {
                line_complete: false
            }
        );
        let (_, _, end) = scan(b"A: 1\r\n");
        assert_eq!(
            end,
            BlockEnd::Eof {
                line_complete: true
            }
        );
    }

    #[test]
    fn header_kinds() {
        assert_eq!(HeaderKind::from_name(b"i"), Some(HeaderKind::CallId));
        assert_eq!(HeaderKind::from_name(b"CALL-id"), Some(HeaderKind::CallId));
        assert_eq!(HeaderKind::from_name(b"contact"), Some(HeaderKind::Contact));
        assert_eq!(
            HeaderKind::from_name(b"proxy-authorization"),
            Some(HeaderKind::ProxyAuthorization)
        );
        assert_eq!(HeaderKind::from_name(b"X-CID"), None);
        assert_eq!(HeaderKind::from_name(b""), None);
        let h = Header {
            name: Text::from("I"),
            value: Text::from("x"),
        };
        assert!(h.is("call-id"));
        assert!(!h.is("Contact"));
    }
}
