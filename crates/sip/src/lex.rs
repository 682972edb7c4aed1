//! Small byte-level helpers shared by the header, URI and SDP scanners.
//!
//! Every helper works on sub-slices with `get`/iterators so that no input can make it panic.

/// Linear white space inside a header value: SP, HT, and the CR/LF of a folded line.
pub(crate) const fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters (methods, header names, parameter names, transports).
pub(crate) const fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

/// The `token` characters as a table.
const TOKEN: ByteSet = {
    let mut set = byte_set(b"-.!%*_+`'~");
    let mut b = 0;
    while b < 128 {
        if (b as u8).is_ascii_alphanumeric() {
            set[b] = true;
        }
        b += 1;
    }
    set
};

/// Length of the run of `token` characters at the start of `s`.
pub(crate) fn token_len(s: &[u8]) -> usize {
    s.iter().position(|&b| !is_token(b)).unwrap_or(s.len())
}

/// Strips linear white space (including folds) from both ends.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

/// Strips leading linear white space.
/// (Slice patterns rather than `position`: there are zero to two bytes to strip, and the
/// iterator set-up cost more than the loop.)
pub(crate) fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_lws(*first) {
            break;
        }
        s = rest;
    }
    s
}

/// Strips trailing linear white space.
pub(crate) fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_lws(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Position of the first `b` in `s`. A plain loop: the spans searched here (URI parts, parameters,
/// SDP fields) are a few dozen bytes, where `memchr`'s per-call set-up costs more than it saves.
pub(crate) fn find(s: &[u8], b: u8) -> Option<usize> {
    s.iter().position(|&x| x == b)
}

/// A byte class as a lookup table: `true` for the bytes a scanner has to look at.
pub(crate) type ByteSet = [bool; 256];

/// Builds a [`ByteSet`] at compile time.
pub(crate) const fn byte_set(bytes: &[u8]) -> ByteSet {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

/// The offset of the first byte at or after `from` that equals one of `needles` (`s.len()` if
/// none; `from` itself when it lies past the end).
///
/// Every line break, header colon, parameter separator and SDP line end of a message is found
/// here, so this is the innermost loop of the indexer. On x86-64 it compares 16 bytes per step
/// with SSE2 (part of the x86-64 baseline, so no run-time detection): a 40-byte header line
/// costs two or three steps. The short tail is read as the last 16 bytes of the slice with the
/// bytes already examined shifted out, so only a slice shorter than 16 bytes is copied.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn find_any<const N: usize>(s: &[u8], from: usize, needles: [u8; N]) -> usize {
    let Some(rest) = s.get(from..) else {
        return from;
    };
    let matches = |block: [u8; 16]| sse2_matches(block, needles);
    let mut chunks = rest.chunks_exact(16);
    let mut at = from;
    for chunk in &mut chunks {
        let Ok(block) = <[u8; 16]>::try_from(chunk) else {
            break;
        };
        let mask = matches(block);
        if mask != 0 {
            return at + mask.trailing_zeros() as usize;
        }
        at += 16;
    }
    let tail = chunks.remainder().len();
    if tail == 0 {
        return s.len();
    }
    let mask = match s.len().checked_sub(16).and_then(|start| s.get(start..)) {
        // The last 16 bytes of `s`: the first `16 - tail` of them were examined already (or lie
        // before `from`), so they are shifted out.
        Some(last) => <[u8; 16]>::try_from(last).map_or(0, |block| matches(block) >> (16 - tail)),
        None => {
            let mut block = [0u8; 16];
            for (dst, &src) in block.iter_mut().zip(chunks.remainder()) {
                *dst = src;
            }
            matches(block) & ((1u32 << tail) - 1)
        }
    };
    if mask != 0 {
        at + mask.trailing_zeros() as usize
    } else {
        s.len()
    }
}

/// One bit per byte of `block` that equals one of `needles`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sse2_matches<const N: usize>(block: [u8; 16], needles: [u8; N]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
        _mm_setzero_si128,
    };
    let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = block;
    // SAFETY: these intrinsics only need SSE2, which every x86-64 CPU has and which the
    // x86-64 targets enable statically; none of them touches memory.
    unsafe {
        // Compiles to one unaligned load.
        let v = _mm_set_epi64x(
            i64::from_le_bytes([i, j, k, l, m, n, o, p]),
            i64::from_le_bytes([a, b, c, d, e, f, g, h]),
        );
        let mut hit = _mm_setzero_si128();
        for needle in needles {
            hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, _mm_set1_epi8(needle as i8)));
        }
        _mm_movemask_epi8(hit) as u32
    }
}

/// The portable version of [`find_any`]: eight bytes per step (SWAR).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn find_any<const N: usize>(s: &[u8], from: usize, needles: [u8; N]) -> usize {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    const LOW_BITS: u64 = 0x0101_0101_0101_0101;
    // The high bit of the bytes of `word` equal to one of `needles`. A borrow can also flag the
    // byte above a match, so only the lowest set bit is exact (all this function uses).
    let lowest_match_mask = |word: u64| -> u64 {
        let mut mask = 0;
        for needle in needles {
            let x = word ^ (LOW_BITS * u64::from(needle));
            mask |= x.wrapping_sub(LOW_BITS) & !x;
        }
        mask & HIGH_BITS
    };
    let Some(rest) = s.get(from..) else {
        return from;
    };
    let mut words = rest.chunks_exact(8);
    let mut at = from;
    for chunk in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let mask = lowest_match_mask(u64::from_le_bytes(bytes));
        if mask != 0 {
            return at + (mask.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    for &b in words.remainder() {
        if needles.contains(&b) {
            return at;
        }
        at += 1;
    }
    s.len()
}

/// Splits at the first occurrence of `sep`: (before, Some(after)) or (all, None).
pub(crate) fn split_once(s: &[u8], sep: u8) -> (&[u8], Option<&[u8]>) {
    match find(s, sep) {
        Some(i) => (
            s.get(..i).unwrap_or_default(),
            s.get(i + 1..).or(Some(&[][..])),
        ),
        None => (s, None),
    }
}

/// Position of the first byte for which `stop` holds outside a quoted string (with `\` escapes)
/// and outside `<...>`; `None` when there is none.
///
/// Header values use this to find the `,` that separates list elements and the `;` that starts
/// header parameters without being fooled by quoted display names or bracketed URIs.
pub(crate) fn find_unquoted(s: &[u8], stop: impl Fn(u8) -> bool) -> Option<usize> {
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if in_angle {
            if b == b'>' {
                in_angle = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == b'<' {
            in_angle = true;
        } else if stop(b) {
            return Some(i);
        }
    }
    None
}

/// The first element of a comma-separated header value (Via, Contact, P-Asserted-Identity).
pub(crate) fn first_list_element(s: &[u8]) -> &[u8] {
    match find_unquoted(s, |b| b == b',') {
        Some(i) => s.get(..i).unwrap_or_default(),
        None => s,
    }
}

/// Parses an unsigned decimal number of at most `u32::MAX`; `None` for empty, non-digit or
/// overflowing input. Used for CSeq, Content-Length, Expires and Max-Forwards.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(n)
}

/// Parses a port number (1–5 digits, at most 65535).
pub(crate) fn parse_u16(s: &[u8]) -> Option<u16> {
    parse_u32(s).and_then(|n| u16::try_from(n).ok())
}

/// Iterates `;name=value` parameters in `s` (which starts at or before the first `;`),
/// yielding `(name, value)` with the value unquoted (quotes stripped, escapes kept raw).
/// Stops at the first unquoted `,` because that starts the next list element.
pub(crate) fn params(s: &[u8]) -> Params<'_> {
    Params { rest: s }
}

/// Iterator behind [`params`].
pub(crate) struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let sep = find_unquoted(self.rest, |b| b == b';' || b == b',')?;
            // A comma ends this element's parameters: what follows is the next list element.
            if self.rest.get(sep) != Some(&b';') {
                self.rest = &[];
                return None;
            }
            let after = self.rest.get(sep + 1..)?;
            let end = find_unquoted(after, |b| b == b';' || b == b',').unwrap_or(after.len());
            let param = after.get(..end)?;
            self.rest = after.get(end..)?;
            let (name, value) = split_once(param, b'=');
            let name = trim(name);
            if name.is_empty() {
                continue;
            }
            return Some((name, unquote(trim(value.unwrap_or_default()))));
        }
    }
}

/// One pass over the parameters of a list element (`;a=1;tag=x, next...`): returns the length of
/// the element's parameter text (up to the first unquoted `,`) and the value of parameter `want`
/// (case-insensitive, first occurrence, quotes stripped).
///
/// From, To, Contact and Via run through this once each per message, so it finds the element end
/// and the one parameter HOMER needs without iterating the parameters twice.
pub(crate) fn scan_params<'a>(s: &'a [u8], want: &[u8]) -> (usize, Option<&'a [u8]>) {
    let mut found: Option<&'a [u8]> = None;
    let mut value_start: Option<usize> = None;
    let mut i = 0;
    loop {
        // Parameter values (Via branches, tags) run to dozens of bytes: 16 bytes at a time.
        i = find_any(s, i, *b"\";,");
        let Some(&b) = s.get(i) else { break };
        if b == b'"' {
            // Skip the quoted string, honouring `\` escapes.
            i += 1;
            while let Some(&q) = s.get(i) {
                match q {
                    b'\\' => i += 2,
                    b'"' => break,
                    _ => i += 1,
                }
            }
        } else {
            if let Some(start) = value_start.take() {
                found = Some(unquote(trim(s.get(start..i).unwrap_or_default())));
            }
            if b == b',' {
                return (i, found);
            }
            if found.is_none() {
                value_start = param_value_start(s, i + 1, want);
            }
        }
        i += 1;
    }
    if let Some(start) = value_start {
        found = Some(unquote(trim(s.get(start..).unwrap_or_default())));
    }
    (s.len(), found)
}

/// If the parameter starting at `at` is `want=...`, the offset of its value.
fn param_value_start(s: &[u8], at: usize, want: &[u8]) -> Option<usize> {
    let rest = trim_start(s.get(at..)?);
    let name = rest.get(..want.len())?;
    if !name.eq_ignore_ascii_case(want) {
        return None;
    }
    let after = trim_start(rest.get(want.len()..)?);
    if after.first() != Some(&b'=') {
        return None;
    }
    Some(s.len() - after.len() + 1)
}

/// Strips one pair of surrounding double quotes, if present.
pub(crate) fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_lws_and_folds() {
        assert_eq!(trim(b" \t a b \r\n "), b"a b");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b""), b"");
    }

    #[test]
    fn numbers_reject_overflow_and_junk() {
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"12a"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u16(b"65536"), None);
        assert_eq!(parse_u16(b"5060"), Some(5060));
    }

    #[test]
    fn unquoted_search_skips_quotes_and_brackets() {
        let v = br#""a,\"b;" <sip:x;y,z>;tag=1, next"#;
        assert_eq!(find_unquoted(v, |b| b == b';'), Some(20));
        assert_eq!(first_list_element(v), br#""a,\"b;" <sip:x;y,z>;tag=1"#);
    }

    #[test]
    fn scan_params_finds_value_and_element_end() {
        let s = br#";x="a;tag=no,";TAG = "quoted";lr, <sip:b>;tag=other"#;
        assert_eq!(scan_params(s, b"tag"), (32, Some(&b"quoted"[..])));
        assert_eq!(scan_params(b";tag=1", b"tag"), (6, Some(&b"1"[..])));
        assert_eq!(scan_params(b";tagx=1;tag", b"tag"), (11, None));
        assert_eq!(scan_params(b"", b"tag"), (0, None));
    }

    #[test]
    fn find_any_agrees_with_a_plain_search() {
        // Short and long haystacks, so that the 16-byte steps, the overlapping last block and
        // the copied short tail are all exercised; NUL bytes must not match the zero padding.
        for hay in [
            &b"Via: SIP/2.0/UDP h;branch=x\r\nA:b\n\x8a\x0b:\n"[..],
            b"\0\0\0:\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0:\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\n\0",
        ] {
            find_any_matches_plain_search(hay);
        }
    }

    proptest::proptest! {
        /// The SIMD search agrees with a byte loop for every start offset, slice length and
        /// needle count (separators, NUL and high bytes in a small alphabet, so matches are
        /// frequent and fall on every position of the 16-byte steps).
        #[test]
        fn find_any_agrees_with_a_byte_loop(
            hay in proptest::collection::vec(
                proptest::sample::select(vec![b':', b'\n', b';', b'a', b' ', 0u8, 0xff]),
                0..80,
            ),
            from in 0usize..90,
        ) {
            let naive = |needles: &[u8]| {
                hay.iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, b)| needles.contains(b))
                    .map_or(hay.len().max(from), |(i, _)| i)
            };
            proptest::prop_assert_eq!(find_any(&hay, from, [b'\n']), naive(b"\n"));
            proptest::prop_assert_eq!(find_any(&hay, from, [b':', b'\n']), naive(b":\n"));
            proptest::prop_assert_eq!(find_any(&hay, from, [b';', b' ', 0xff]), naive(b"; \xff"));
        }
    }

    fn find_any_matches_plain_search(hay: &[u8]) {
        for from in 0..=hay.len() + 2 {
            for end in 0..=hay.len() {
                let s = &hay[..end];
                let want = s
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, &b)| b == b':' || b == b'\n')
                    .map_or(s.len().max(from), |(i, _)| i);
                assert_eq!(find_any(s, from, [b':', b'\n']), want, "{from} {end}");
            }
        }
    }

    #[test]
    fn params_iterate_until_comma() {
        let got: Vec<_> = params(b"<sip:a>;tag=abc ; lr;q=\"x;y\",<sip:b>;tag=zz").collect();
        assert_eq!(
            got,
            vec![
                (&b"tag"[..], &b"abc"[..]),
                (&b"lr"[..], &b""[..]),
                (&b"q"[..], &b"x;y"[..])
            ]
        );
    }
}
