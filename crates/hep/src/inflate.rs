//! Bounded decompression of the compressed payload chunk (0x0010).

use std::io::{ErrorKind, Read};

use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};

use crate::error::DecodeError;

/// Size of the stack block the decoder output is read through.
const READ_BLOCK: usize = 8 * 1024;

/// The container around a deflate stream, recognised from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Gzip,
    Zlib,
    RawDeflate,
}

fn detect(data: &[u8]) -> Container {
    match data {
        [0x1f, 0x8b, ..] => Container::Gzip,
        // RFC 1950: CM = 8 (deflate), CINFO <= 7, and the first two bytes as a big-endian u16
        // are a multiple of 31 (the FCHECK bits make them so).
        [cmf, flg, ..]
            if cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0 =>
        {
            Container::Zlib
        }
        _ => Container::RawDeflate,
    }
}

/// Inflate `data` (gzip, zlib or raw deflate) into at most `max_out` bytes.
pub(crate) fn inflate_capped(data: &[u8], max_out: usize) -> Result<Vec<u8>, DecodeError> {
    match detect(data) {
        Container::Gzip => read_capped(GzDecoder::new(data), max_out),
        Container::Zlib => read_capped(ZlibDecoder::new(data), max_out),
        Container::RawDeflate => read_capped(DeflateDecoder::new(data), max_out),
    }
}

/// Drain `reader` into a vector whose capacity never exceeds `max_out`: growth doubles like a
/// normal `Vec` but is clamped to the cap, and output beyond the cap is refused before it is
/// stored.
fn read_capped<R: Read>(mut reader: R, max_out: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut block = [0u8; READ_BLOCK];
    loop {
        let n = match reader.read(&mut block) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeError::Inflate(e)),
        };
        let data = block.get(..n).unwrap_or(&block);
        let new_len = out.len() + data.len();
        if new_len > max_out {
            return Err(DecodeError::InflateTooLarge { limit: max_out });
        }
        if new_len > out.capacity() {
            let target = out.capacity().saturating_mul(2).max(new_len).min(max_out);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;

    use super::*;

    const TEXT: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\n\r\n";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn detects_each_container() {
        assert_eq!(detect(&gzip(TEXT)), Container::Gzip);
        assert_eq!(detect(&zlib(TEXT)), Container::Zlib);
        assert_eq!(detect(&deflate(TEXT)), Container::RawDeflate);
    }

    #[test]
    fn inflates_each_container() {
        for packed in [gzip(TEXT), zlib(TEXT), deflate(TEXT)] {
            assert_eq!(inflate_capped(&packed, 1024).unwrap(), TEXT);
        }
    }

    #[test]
    fn exact_cap_is_allowed_one_less_is_not() {
        let packed = zlib(TEXT);
        assert_eq!(inflate_capped(&packed, TEXT.len()).unwrap(), TEXT);
        assert!(matches!(
            inflate_capped(&packed, TEXT.len() - 1),
            Err(DecodeError::InflateTooLarge { limit }) if limit == TEXT.len() - 1
        ));
    }

    #[test]
    fn bomb_is_refused_without_growing_past_the_cap() {
        // 64 MiB of zeros compress to about 64 KiB; a 1 MiB cap must stop it.
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        assert!(matches!(
            inflate_capped(&bomb, 1 << 20),
            Err(DecodeError::InflateTooLarge { limit }) if limit == 1 << 20
        ));
    }

    #[test]
    fn corrupt_data_is_an_error() {
        let mut packed = gzip(TEXT);
        packed.truncate(packed.len() / 2);
        assert!(matches!(
            inflate_capped(&packed, 1024),
            Err(DecodeError::Inflate(_))
        ));
        assert!(matches!(
            inflate_capped(&[0xff; 16], 1024),
            Err(DecodeError::Inflate(_))
        ));
    }

    #[test]
    fn capacity_stays_within_cap() {
        let big = vec![b'a'; 100_000];
        let out = inflate_capped(&zlib(&big), 100_000).unwrap();
        assert_eq!(out, big);
        assert!(out.capacity() <= 100_000);
    }
}
