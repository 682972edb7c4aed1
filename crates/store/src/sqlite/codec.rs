//! Byte-level encodings: the raw payload at rest, IP addresses, and the opaque cursors.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use zstd::zstd_safe::{CCtx, DCtx};

use super::config::RawCompression;
use super::dictionary::{PartitionDictionaries, RawDictionary};

/// Codec tag (first byte of the stored blob): the payload follows as received.
const TAG_PLAIN: u8 = 0;
/// Codec tag: LZ4 block follows.
const TAG_LZ4: u8 = 1;
/// Codec tag: Zstandard frame follows.
const TAG_ZSTD: u8 = 2;
/// Codec tag: Zstandard frame compressed with a trained dictionary follows; the frame header
/// carries the dictionary id, resolved by the partition's `raw_dict` table.
const TAG_ZSTD_DICT: u8 = 3;

thread_local! {
    /// Compression context reused by the thread's dictionary compressions.
    static COMPRESSOR: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    /// Decompression context reused by the thread's dictionary decompressions.
    static DECOMPRESSOR: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

/// Compresses with a dictionary into a whole blob, [`TAG_ZSTD_DICT`] first (None when
/// Zstandard fails, then the caller falls back). The frame is written straight after the tag,
/// in the blob's own buffer: one allocation and no copy per row.
fn compress_with_dict(raw: &[u8], dict: &RawDictionary, level: i32) -> Option<Vec<u8>> {
    let cdict = dict.encoder(level)?;
    let mut blob = Vec::with_capacity(1 + zstd::zstd_safe::compress_bound(raw.len()));
    blob.push(TAG_ZSTD_DICT);
    let mut frame = std::io::Cursor::new(blob);
    frame.set_position(1);
    COMPRESSOR
        .with(|c| c.borrow_mut().compress_using_cdict(&mut frame, raw, cdict))
        .ok()?;
    Some(frame.into_inner())
}

/// Encodes a raw payload for storage: one codec tag byte, then the data. A payload that does
/// not shrink is stored plain, so the blob is never much bigger than the payload.
/// `RawCompression::ZstdDict` uses `dict`, or LZ4 while no dictionary has been trained.
pub(crate) fn encode_raw(
    raw: &[u8],
    compression: RawCompression,
    zstd_level: i32,
    dict: Option<&RawDictionary>,
) -> Vec<u8> {
    let lz4 = || Some((TAG_LZ4, lz4_flex::block::compress(raw)));
    let compressed = match compression {
        RawCompression::None => None,
        RawCompression::Lz4 => lz4(),
        RawCompression::Zstd => zstd::bulk::compress(raw, zstd_level)
            .ok()
            .map(|c| (TAG_ZSTD, c)),
        RawCompression::ZstdDict => match dict.and_then(|d| compress_with_dict(raw, d, zstd_level))
        {
            // The blob holds the tag byte besides the frame.
            Some(blob) if blob.len() <= raw.len() => return blob,
            Some(_) => None,
            None => lz4(),
        },
    };
    match compressed {
        Some((tag, data)) if data.len() < raw.len() => {
            let mut out = Vec::with_capacity(data.len() + 1);
            out.push(tag);
            out.extend_from_slice(&data);
            out
        }
        _ => {
            let mut out = Vec::with_capacity(raw.len() + 1);
            out.push(TAG_PLAIN);
            out.extend_from_slice(raw);
            out
        }
    }
}

/// Decodes a stored blob back to the payload; `raw_len` is the stored original length and
/// must not exceed `max_len` (the decompression buffer is sized from it). `dicts` resolves the
/// dictionary of a [`TAG_ZSTD_DICT`] blob (such a blob fails without it).
pub(crate) fn decode_raw(
    blob: &[u8],
    raw_len: i64,
    max_len: usize,
    dicts: Option<&PartitionDictionaries>,
) -> Result<Vec<u8>, String> {
    let len = usize::try_from(raw_len).map_err(|_| format!("bad raw length {raw_len}"))?;
    if len > max_len {
        return Err(format!("raw length {len} above the limit {max_len}"));
    }
    let (tag, data) = blob.split_first().ok_or("empty raw blob")?;
    let out = match *tag {
        TAG_PLAIN => data.to_vec(),
        TAG_LZ4 => lz4_flex::block::decompress(data, len).map_err(|e| format!("lz4: {e}"))?,
        TAG_ZSTD => zstd::bulk::decompress(data, len).map_err(|e| format!("zstd: {e}"))?,
        TAG_ZSTD_DICT => {
            let id = zstd::zstd_safe::get_dict_id_from_frame(data)
                .ok_or("zstd: frame names no dictionary")?
                .get();
            let dict = dicts.ok_or("zstd: no dictionaries at hand")?.get(id)?;
            let mut out = Vec::with_capacity(len);
            DECOMPRESSOR
                .with(|d| {
                    d.borrow_mut()
                        .decompress_using_ddict(&mut out, data, dict.decoder())
                })
                .map_err(|code| format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))?;
            out
        }
        other => return Err(format!("unknown raw codec {other}")),
    };
    if out.len() != len {
        return Err(format!(
            "raw length {} differs from the stored {len}",
            out.len()
        ));
    }
    Ok(out)
}

/// Whether the stored payload contains `needle` (the `raw_contains` SQL function). Plain
/// payloads are searched in place; compressed ones are inflated into a bounded buffer.
pub(crate) fn raw_contains(
    blob: &[u8],
    raw_len: i64,
    needle: &[u8],
    max_len: usize,
    dicts: Option<&PartitionDictionaries>,
) -> bool {
    match blob.split_first() {
        Some((&TAG_PLAIN, data)) => memchr::memmem::find(data, needle).is_some(),
        Some(_) => match decode_raw(blob, raw_len, max_len, dicts) {
            Ok(raw) => memchr::memmem::find(&raw, needle).is_some(),
            Err(_) => false,
        },
        None => needle.is_empty(),
    }
}

/// An address as stored: 4 bytes for IPv4, 16 for IPv6 (memcmp-fast in an index, and an
/// IPv4-mapped IPv6 address stays distinct from the IPv4 address).
pub(crate) fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The inverse of [`ip_bytes`].
pub(crate) fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    } else if let Ok(b) = <[u8; 16]>::try_from(bytes) {
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        None
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 4096 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

/// Cursor of a message page: the `(time_us, id)` of the last row returned.
pub(crate) fn message_cursor(time_us: i64, id: i64) -> String {
    let mut b = Vec::with_capacity(17);
    b.push(b'm');
    b.extend_from_slice(&time_us.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    hex(&b)
}

/// Parses a [`message_cursor`].
pub(crate) fn parse_message_cursor(s: &str) -> Option<(i64, i64)> {
    let b = unhex(s)?;
    let (tag, rest) = b.split_first()?;
    if *tag != b'm' || rest.len() != 16 {
        return None;
    }
    let time = i64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let id = i64::from_be_bytes(rest.get(8..)?.try_into().ok()?);
    Some((time, id))
}

/// Cursor of a call page: start time and Call-ID of the last call returned.
pub(crate) fn call_cursor(start_us: i64, call_id: &str) -> String {
    let mut b = Vec::with_capacity(9 + call_id.len());
    b.push(b'c');
    b.extend_from_slice(&start_us.to_be_bytes());
    b.extend_from_slice(call_id.as_bytes());
    hex(&b)
}

/// Parses a [`call_cursor`].
pub(crate) fn parse_call_cursor(s: &str) -> Option<(i64, String)> {
    let b = unhex(s)?;
    let (tag, rest) = b.split_first()?;
    if *tag != b'c' || rest.len() < 8 {
        return None;
    }
    let start = i64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let call_id = String::from_utf8(rest.get(8..)?.to_vec()).ok()?;
    Some((start, call_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trips_in_every_mode() {
        let samples: [&[u8]; 4] = [b"", b"x", &[0xff, 0x00, 0xfe, 0x80], &[b'a'; 3000]];
        for mode in [
            RawCompression::None,
            RawCompression::Lz4,
            RawCompression::Zstd,
            // Without a dictionary: LZ4.
            RawCompression::ZstdDict,
        ] {
            for s in samples {
                let blob = encode_raw(s, mode, 3, None);
                assert_eq!(decode_raw(&blob, s.len() as i64, 1 << 20, None).unwrap(), s);
                assert!(raw_contains(&blob, s.len() as i64, b"", 1 << 20, None));
            }
        }
        let blob = encode_raw(&[b'a'; 3000], RawCompression::Lz4, 0, None);
        assert!(decode_raw(&blob, 3000, 100, None).is_err());
        assert!(decode_raw(&blob, 2999, 1 << 20, None).is_err());
        assert!(decode_raw(&[9, 1, 2], 2, 10, None).is_err());
    }

    /// SIP-like messages that share their structure but not their identifiers.
    fn sip_like(i: usize) -> Vec<u8> {
        format!(
            "INVITE sip:{i}@example.org SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.{}:5060;branch=z9hG4bK{i:08x}\r\n\
             From: <sip:alice{}@example.org>;tag={:x}\r\nTo: <sip:{i}@example.org>\r\n\
             Call-ID: {:x}@host\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
             User-Agent: Phone/1.{}\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n",
            i % 250,
            i % 97,
            i * 7919,
            i * 104_729,
            i % 5
        )
        .into_bytes()
    }

    #[test]
    fn dictionary_rows_round_trip_through_the_partition_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let samples: Vec<Vec<u8>> = (0..400).map(sip_like).collect();
        let bytes = zstd::dict::from_samples(&samples, 8 * 1024).unwrap();
        let dict = RawDictionary::new(bytes.clone()).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(super::super::dictionary::CREATE_DICTIONARIES)
            .unwrap();
        let cache = std::sync::Arc::new(super::super::dictionary::DictionaryCache::default());
        let dicts = PartitionDictionaries::new(&path, cache);
        let message = sip_like(100_003);
        let blob = encode_raw(&message, RawCompression::ZstdDict, 1, Some(&dict));
        assert_eq!(blob[0], TAG_ZSTD_DICT);
        let lz4 = encode_raw(&message, RawCompression::Lz4, 1, None);
        assert!(
            blob.len() * 2 < lz4.len(),
            "{} vs {}",
            blob.len(),
            lz4.len()
        );
        // Not stored in the file yet: a clear error, never a wrong payload.
        let missing = decode_raw(&blob, message.len() as i64, 1 << 20, Some(&dicts));
        assert!(missing.unwrap_err().contains("missing"));
        assert!(decode_raw(&blob, message.len() as i64, 1 << 20, None).is_err());
        conn.execute(
            super::super::dictionary::INSERT_DICTIONARY,
            rusqlite::params![dict.id(), bytes],
        )
        .unwrap();
        let back = decode_raw(&blob, message.len() as i64, 1 << 20, Some(&dicts)).unwrap();
        assert_eq!(back, message);
        assert!(raw_contains(
            &blob,
            message.len() as i64,
            b"Call-ID: ",
            1 << 20,
            Some(&dicts)
        ));
        assert!(!raw_contains(
            &blob,
            message.len() as i64,
            b"BYE",
            1 << 20,
            Some(&dicts)
        ));
        // A wrong original length is refused, not truncated.
        assert!(decode_raw(&blob, message.len() as i64 - 1, 1 << 20, Some(&dicts)).is_err());
        // Corrupted frames fail cleanly.
        for cut in [1, 5, blob.len() / 2, blob.len() - 1] {
            let _ = decode_raw(&blob[..cut], message.len() as i64, 1 << 20, Some(&dicts));
        }
    }

    proptest::proptest! {
        /// Whatever a stored blob holds (a corrupted file, a frame naming an unknown
        /// dictionary), decoding returns an error or the exact length asked for, never panics.
        #[test]
        fn corrupted_blobs_never_panic(
            tag in 0u8..5,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            raw_len in -5i64..5000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.db");
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(super::super::dictionary::CREATE_DICTIONARIES).unwrap();
            let cache = std::sync::Arc::new(super::super::dictionary::DictionaryCache::default());
            let dicts = PartitionDictionaries::new(&path, cache);
            let mut blob = vec![tag];
            blob.extend_from_slice(&body);
            if let Ok(raw) = decode_raw(&blob, raw_len, 4096, Some(&dicts)) {
                proptest::prop_assert_eq!(raw.len() as i64, raw_len);
            }
            let _ = raw_contains(&blob, raw_len, b"x", 4096, Some(&dicts));
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = message_cursor(-5, i64::MAX);
        assert_eq!(parse_message_cursor(&c), Some((-5, i64::MAX)));
        assert_eq!(
            parse_call_cursor(&call_cursor(7, "a@b")),
            Some((7, "a@b".to_string()))
        );
        assert_eq!(parse_message_cursor("zz"), None);
        assert_eq!(parse_message_cursor(&call_cursor(7, "12345678")), None);
        assert_eq!(parse_call_cursor(""), None);
    }
}
