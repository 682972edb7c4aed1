//! [`Text`]: a zero-copy view of a span of the indexed message.

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};

/// A span of the original message bytes, borrowed for the life of the input buffer.
///
/// SIP is mostly ASCII but nothing guarantees valid UTF-8 on the wire, so the span stays raw bytes;
/// the accessors convert on demand. A header value that was folded over several lines keeps the
/// line breaks inside the span (that is what "zero-copy" costs): [`Text::normalized`] replaces
/// each fold by one space. Serializing a `Text` writes [`Text::normalized`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Text<'a>(&'a [u8]);

impl<'a> Text<'a> {
    /// Wraps a byte slice.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Text(bytes)
    }

    /// The raw bytes, exactly as they were on the wire.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The bytes as `&str` when they are valid UTF-8 (no copy), else `None`.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }

    /// The bytes as a string, invalid UTF-8 replaced by U+FFFD; borrows when the bytes are valid.
    pub fn to_str_lossy(&self) -> Cow<'a, str> {
        // `from_utf8` validates short ASCII spans several times faster than the chunk iterator
        // of `from_utf8_lossy`, which is only needed when there is something to replace.
        match std::str::from_utf8(self.0) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(self.0),
        }
    }

    /// True when the value spans several lines (header folding): see [`Text::normalized`].
    pub fn is_folded(&self) -> bool {
        memchr::memchr2(b'\r', b'\n', self.0).is_some()
    }

    /// The value as a string with every line fold (CR/LF followed by spaces or tabs, RFC 3261
    /// §7.3.1) replaced by one space and invalid UTF-8 replaced by U+FFFD. Borrows when the span
    /// is unfolded valid UTF-8, which is the common case.
    pub fn normalized(&self) -> Cow<'a, str> {
        if is_plain_ascii(self.0) {
            // SAFETY: every byte is ASCII, and ASCII is valid UTF-8.
            return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(self.0) });
        }
        if !self.is_folded() {
            return self.to_str_lossy();
        }
        let text = String::from_utf8_lossy(self.0);
        let mut out = String::with_capacity(text.len());
        let mut in_fold = false;
        for ch in text.chars() {
            match ch {
                '\r' | '\n' => in_fold = true,
                ' ' | '\t' if in_fold => {}
                _ => {
                    if in_fold {
                        // The whitespace before the line break is kept as is; the break and the
                        // indentation after it become one space.
                        if !out.ends_with([' ', '\t']) {
                            out.push(' ');
                        }
                        in_fold = false;
                    }
                    out.push(ch);
                }
            }
        }
        Cow::Owned(out)
    }

    /// Number of bytes in the span.
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty span.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// ASCII case-insensitive comparison, as SIP compares tokens such as methods and header names.
    pub fn eq_ignore_ascii_case(&self, other: &[u8]) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

/// True when every byte is ASCII and none is CR or LF: the span is then valid UTF-8 with no
/// fold to replace, which is what nearly every header value is.
///
/// Why a word-at-a-time loop: the collector normalizes about twenty values per message, most
/// under 40 bytes, and a UTF-8 validation plus a CR/LF search per value (two calls, each with
/// its own setup) showed as ≈ 1.7 % of its CPU; this one pass over 8-byte words does both.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero exactly when some byte of `w` is zero (the classic exact test).
    let has_zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        let w = u64::from_le_bytes(le);
        if w & HIGH != 0
            || has_zero_byte(w ^ (ONES * u64::from(b'\r')))
            || has_zero_byte(w ^ (ONES * u64::from(b'\n')))
        {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| b.is_ascii() && b != b'\r' && b != b'\n')
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_str_lossy(), f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<[u8]> for Text<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl<'a> From<&'a [u8]> for Text<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Text(bytes)
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Self {
        Text(text.as_bytes())
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.normalized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_unfolds_crlf_and_lf() {
        assert_eq!(Text::from("a\r\n  b").normalized(), "a b");
        assert_eq!(Text::from("a \r\n\tb\n c").normalized(), "a b c");
        assert!(matches!(
            Text::from("plain").normalized(),
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn plain_ascii_is_told_from_everything_else() {
        assert!(is_plain_ascii(b""));
        assert!(is_plain_ascii(b"sip:alice@example.com;transport=tcp"));
        for bad in [b'\r', b'\n', 0x80, 0xff] {
            // At every position of a word-sized chunk and of the tail.
            for at in 0..19 {
                let mut bytes = b"abcdefghijklmnopqrs".to_vec();
                bytes[at] = bad;
                assert!(!is_plain_ascii(&bytes), "byte {bad:#x} at {at}");
            }
        }
    }

    #[test]
    fn lossy_and_strict_views() {
        let t = Text::new(b"ab\xffc");
        assert_eq!(t.as_str(), None);
        assert_eq!(t.to_str_lossy(), "ab\u{fffd}c");
        assert_eq!(Text::from("x").as_str(), Some("x"));
    }

    #[test]
    fn serializes_normalized() {
        let json = serde_json::to_string(&Text::from("a\r\n b")).unwrap_or_default();
        assert_eq!(json, "\"a b\"");
    }
}
