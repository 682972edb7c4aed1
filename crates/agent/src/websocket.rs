//! RFC 6455 WebSocket framing, as SIP over WebSocket (RFC 7118) puts it on a TCP stream: one
//! SIP message per WebSocket message, text or binary, possibly fragmented over several frames;
//! frames from the client are masked.

/// WebSocket frame opcodes (RFC 6455 §5.2).
pub mod opcode {
    /// Continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// Text data.
    pub const TEXT: u8 = 0x1;
    /// Binary data.
    pub const BINARY: u8 = 0x2;
    /// Connection close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xa;
}

/// Why bytes are not a WebSocket frame the agent accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// The frame announces more payload than the configured maximum.
    #[error("WebSocket frame of {len} bytes exceeds {max}")]
    TooLarge {
        /// Announced payload length.
        len: u64,
        /// The maximum.
        max: usize,
    },
    /// A reserved opcode, or a control frame that is fragmented or longer than 125 bytes.
    #[error("malformed WebSocket frame: {0}")]
    Malformed(&'static str),
}

/// The header of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// The opcode (see [`opcode`]).
    pub opcode: u8,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Length of the header (2 to 14 bytes).
    pub header_len: usize,
    /// Length of the payload.
    pub payload_len: usize,
}

impl FrameHeader {
    /// Header plus payload.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// Whether this is a control frame (close, ping, pong).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parses the frame header at the start of `buf`: `Ok(None)` when more bytes are needed.
/// Payloads longer than `max_payload` are refused before any of them is buffered.
pub fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<FrameHeader>, WsError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let op = b0 & 0x0f;
    if !matches!(
        op,
        opcode::CONTINUATION
            | opcode::TEXT
            | opcode::BINARY
            | opcode::CLOSE
            | opcode::PING
            | opcode::PONG
    ) {
        return Err(WsError::Malformed("reserved opcode"));
    }
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    let (len, mut at) = match len7 {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(b);
            (u64::from_be_bytes(be), 10)
        }
        n => (u64::from(n), 2),
    };
    if op & 0x8 != 0 && (!fin || len > 125) {
        return Err(WsError::Malformed("fragmented or oversized control frame"));
    }
    let payload_len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= max_payload)
        .ok_or(WsError::TooLarge {
            len,
            max: max_payload,
        })?;
    let mask = if masked {
        let Some(b) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([b[0], b[1], b[2], b[3]])
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        opcode: op,
        mask,
        header_len: at,
        payload_len,
    }))
}

/// Appends `payload` to `out`, unmasked with `mask` (RFC 6455 §5.3).
pub fn unmask_into(payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
    }
}

/// Whether `block` (an HTTP header block, request or response) is a WebSocket upgrade: a
/// `101` response, or a request carrying `Upgrade: websocket`.
pub fn is_upgrade(block: &[u8]) -> bool {
    if block.starts_with(b"HTTP/1.1 101") || block.starts_with(b"HTTP/1.0 101") {
        return true;
    }
    block.split(|&b| b == b'\n').any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = line.split_at(colon);
        name.trim_ascii().eq_ignore_ascii_case(b"upgrade")
            && value
                .get(1..)
                .unwrap_or_default()
                .trim_ascii()
                .eq_ignore_ascii_case(b"websocket")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a frame as a client (masked) or server (unmasked) would.
    pub(crate) fn frame(fin: bool, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | op];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if let Some(k) = mask {
            out.extend_from_slice(&k);
        }
        unmask_into(payload, mask, &mut out);
        out
    }

    #[test]
    fn masked_round_trip_for_each_length_encoding() {
        for len in [0usize, 5, 125, 126, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let bytes = frame(true, opcode::TEXT, &payload, Some([1, 2, 3, 4]));
            let h = parse_header(&bytes, 1 << 20).unwrap().unwrap();
            assert_eq!(h.frame_len(), bytes.len());
            let mut out = Vec::new();
            unmask_into(&bytes[h.header_len..], h.mask, &mut out);
            assert_eq!(out, payload);
            // Every proper prefix of the header asks for more bytes.
            for cut in 0..h.header_len {
                assert_eq!(parse_header(&bytes[..cut], 1 << 20), Ok(None));
            }
        }
    }

    #[test]
    fn refuses_oversized_and_bad_frames() {
        let big = frame(true, opcode::BINARY, &[0; 2000], None);
        assert!(matches!(
            parse_header(&big, 1000),
            Err(WsError::TooLarge { len: 2000, .. })
        ));
        assert!(parse_header(&[0x83, 0], 10).is_err());
        // A fragmented ping.
        assert!(parse_header(&[0x09, 0], 10).is_err());
    }

    #[test]
    fn recognises_upgrades() {
        assert!(is_upgrade(
            b"GET / HTTP/1.1\r\nHost: x\r\nupgrade:  WebSocket\r\n\r\n"
        ));
        assert!(is_upgrade(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"));
        assert!(!is_upgrade(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(Some(h)) = parse_header(&bytes, 1024) {
                proptest::prop_assert!(h.payload_len <= 1024);
                proptest::prop_assert!(h.header_len <= 14);
            }
        }
    }
}
