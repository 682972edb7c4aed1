//! The SDP summary HOMER needs for media correlation: addresses, ports, codecs, direction.

use memchr::memmem;
use serde::Serialize;

use crate::header::{BlockEnd, HeaderKind, LineScanner, RawLine};
use crate::lex;
use crate::message::Diagnostic;
use crate::text::Text;

/// At most this many `m=` sections are summarised per SDP body (the rest are reported by
/// [`Diagnostic::TooManySdpMedia`]); real offers carry 1–4.
pub const MAX_SDP_MEDIA: usize = 32;

/// Media direction attribute (RFC 4566 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `a=sendrecv`
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    fn from_attribute(name: &[u8]) -> Option<Direction> {
        match name {
            b"sendrecv" => Some(Direction::SendRecv),
            b"sendonly" => Some(Direction::SendOnly),
            b"recvonly" => Some(Direction::RecvOnly),
            b"inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// Summary of an SDP body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sdp<'a> {
    /// The session-level `c=` address (multicast TTL / count suffix removed).
    pub connection: Option<Text<'a>>,
    /// The session-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// One entry per `m=` line, in order (at most [`MAX_SDP_MEDIA`]).
    pub media: Vec<SdpMedia<'a>>,
}

/// One `m=` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SdpMedia<'a> {
    /// Media type (`audio`, `video`, `image`, `application`, ...).
    pub media: Text<'a>,
    /// The transport port (0 for a rejected or disabled stream).
    pub port: u16,
    /// The RTCP port: from `a=rtcp:`, else the RTP port under `a=rtcp-mux`, else port + 1
    /// (RFC 3550 §11); 0 when the stream port is 0.
    pub rtcp_port: u16,
    /// True when `a=rtcp-mux` is present.
    pub rtcp_mux: bool,
    /// Transport protocol (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, `udptl`, ...).
    pub protocol: Text<'a>,
    /// The format list as written (`0 8 101`); see [`SdpMedia::payload_types`].
    pub formats: Text<'a>,
    /// The effective connection address: the media-level `c=` if present, else the session's.
    pub connection: Option<Text<'a>>,
    /// The media-level direction attribute, else the session-level one.
    pub direction: Option<Direction>,
}

impl<'a> SdpMedia<'a> {
    /// The formats, one span each.
    pub fn formats(&self) -> impl Iterator<Item = Text<'a>> + 'a {
        self.formats
            .as_bytes()
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|f| !f.is_empty())
            .map(Text::new)
    }

    /// The numeric RTP payload types (0–127) among the formats; non-numeric formats (`t38`,
    /// `webrtc-datachannel`) are skipped.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + 'a {
        self.formats()
            .filter_map(|f| lex::parse_u32(f.as_bytes()))
            .filter_map(|n| u8::try_from(n).ok())
            .filter(|&n| n <= 127)
    }
}

/// Finds and summarises the SDP of a body given its Content-Type: `application/sdp` directly,
/// or the first `application/sdp` part of a `multipart/*` body.
pub(crate) fn from_body<'a>(
    content_type: &[u8],
    body: &'a [u8],
    diag: &mut dyn FnMut(Diagnostic),
) -> Option<Sdp<'a>> {
    let media_type = lex::trim(lex::split_once(content_type, b';').0);
    if media_type.eq_ignore_ascii_case(b"application/sdp") {
        return Some(parse(body, diag));
    }
    let (top, _) = lex::split_once(media_type, b'/');
    if !top.eq_ignore_ascii_case(b"multipart") {
        return None;
    }
    let boundary = lex::params(content_type)
        .find(|(name, _)| name.eq_ignore_ascii_case(b"boundary"))
        .map(|(_, value)| value)
        .filter(|b| !b.is_empty())?;
    sdp_part(body, boundary).map(|part| parse(part, diag))
}

/// The content of the first `application/sdp` part of a MIME multipart body (RFC 2046 §5.1.1):
/// parts are separated by lines starting with `--boundary`, the last one by `--boundary--`.
fn sdp_part<'a>(body: &'a [u8], boundary: &[u8]) -> Option<&'a [u8]> {
    let mut part_start: Option<usize> = None;
    for pos in memmem::find_iter(body, boundary) {
        let Some(line_start) = pos.checked_sub(2) else {
            continue;
        };
        let at_line_start = line_start == 0 || body.get(line_start - 1) == Some(&b'\n');
        if body.get(line_start..pos) != Some(b"--") || !at_line_start {
            continue;
        }
        if let Some(start) = part_start {
            // The line break before the delimiter belongs to the delimiter.
            let mut end = line_start;
            if end > start && body.get(end - 1) == Some(&b'\n') {
                end -= 1;
                if end > start && body.get(end - 1) == Some(&b'\r') {
                    end -= 1;
                }
            }
            if let Some(content) = body.get(start..end).and_then(sdp_content) {
                return Some(content);
            }
        }
        let after = pos + boundary.len();
        let rest = body.get(after..)?;
        if rest.starts_with(b"--") {
            return None;
        }
        part_start = Some(after + memchr::memchr(b'\n', rest)? + 1);
    }
    None
}

/// The content of one MIME part if its Content-Type is `application/sdp`.
fn sdp_content(part: &[u8]) -> Option<&[u8]> {
    let mut scanner = LineScanner::new(part, 0);
    let mut is_sdp = false;
    while let Some(line) = scanner.next_raw() {
        if let RawLine::Header { name, value } = line {
            if HeaderKind::from_name(name) == Some(HeaderKind::ContentType) {
                let media_type = lex::trim(lex::split_once(lex::trim(value), b';').0);
                is_sdp = media_type.eq_ignore_ascii_case(b"application/sdp");
            }
        }
    }
    match scanner.end() {
        BlockEnd::Blank(start) if is_sdp => part.get(start..),
        _ => None,
    }
}

/// The address of a `c=IN IP4 203.0.113.1/127` value.
fn connection_address(value: &[u8]) -> Option<Text<'_>> {
    let (_net_type, rest) = lex::split_once(lex::trim(value), b' ');
    let (_addr_type, rest) = lex::split_once(lex::trim_start(rest?), b' ');
    let address = lex::trim(rest?);
    let address = lex::split_once(address, b'/').0;
    let address = lex::split_once(address, b' ').0;
    (!address.is_empty()).then(|| Text::new(address))
}

/// Parses `<media> <port>[/<count>] <proto> <fmt> ...`.
fn media_line(value: &[u8]) -> Option<SdpMedia<'_>> {
    let value = lex::trim(value);
    let (media, rest) = lex::split_once(value, b' ');
    let rest = lex::trim_start(rest?);
    let (port, rest) = lex::split_once(rest, b' ');
    let port = lex::parse_u16(lex::split_once(port, b'/').0)?;
    let rest = lex::trim_start(rest?);
    let (protocol, formats) = lex::split_once(rest, b' ');
    if media.is_empty() || protocol.is_empty() {
        return None;
    }
    Some(SdpMedia {
        media: Text::new(media),
        port,
        rtcp_port: 0,
        rtcp_mux: false,
        protocol: Text::new(protocol),
        formats: Text::new(lex::trim(formats.unwrap_or_default())),
        connection: None,
        direction: None,
    })
}

/// Summarises an SDP body (RFC 4566 / 8866). Lenient: unknown or malformed lines are skipped.
pub(crate) fn parse<'a>(body: &'a [u8], diag: &mut dyn FnMut(Diagnostic)) -> Sdp<'a> {
    let mut sdp = Sdp::default();
    // Bit i set: media i has an explicit `a=rtcp:` port.
    let mut explicit_rtcp: u64 = 0;
    // Where `c=` and `a=` lines go: the session, the last media, or nowhere (a skipped media).
    enum Scope {
        Session,
        Media,
        Skipped,
    }
    let mut scope = Scope::Session;
    let mut overflow_reported = false;
    let mut offset = 0usize;
    while offset < body.len() {
        let line_offset = offset;
        let line_end = lex::find_any(body, offset, [b'\n']);
        let raw_line = body.get(offset..line_end).unwrap_or_default();
        offset = line_end + 1;
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        let (Some(&kind), Some(b'=')) = (line.first(), line.get(1)) else {
            continue;
        };
        let value = line.get(2..).unwrap_or_default();
        match kind {
            b'm' => {
                if sdp.media.len() >= MAX_SDP_MEDIA {
                    // Report the overflow once, not per extra section.
                    if !overflow_reported {
                        diag(Diagnostic::TooManySdpMedia { max: MAX_SDP_MEDIA });
                        overflow_reported = true;
                    }
                    scope = Scope::Skipped;
                    continue;
                }
                match media_line(value) {
                    Some(media) => {
                        sdp.media.push(media);
                        scope = Scope::Media;
                    }
                    None => {
                        diag(Diagnostic::BadSdpMedia {
                            offset: line_offset,
                        });
                        scope = Scope::Skipped;
                    }
                }
            }
            b'c' => {
                let address = connection_address(value);
                match scope {
                    Scope::Session => sdp.connection = address,
                    Scope::Media => {
                        if let Some(media) = sdp.media.last_mut() {
                            media.connection = address;
                        }
                    }
                    Scope::Skipped => {}
                }
            }
            b'a' => {
                // Most attributes (rtpmap, fmtp, ...) are not needed: decide on the first bytes
                // before looking further into the line.
                if !matches!(value.first(), Some(b'r' | b's' | b'i')) {
                    continue;
                }
                let index = sdp.media.len().saturating_sub(1);
                if let Some(direction) = Direction::from_attribute(lex::trim_end(value)) {
                    match scope {
                        Scope::Session => sdp.direction = Some(direction),
                        Scope::Media => {
                            if let Some(media) = sdp.media.last_mut() {
                                media.direction = Some(direction);
                            }
                        }
                        Scope::Skipped => {}
                    }
                    continue;
                }
                let Scope::Media = scope else { continue };
                let Some(media) = sdp.media.last_mut() else {
                    continue;
                };
                if let Some(port_text) = value.strip_prefix(b"rtcp:") {
                    let port_text = lex::split_once(lex::trim(port_text), b' ').0;
                    if let Some(port) = lex::parse_u16(port_text) {
                        media.rtcp_port = port;
                        explicit_rtcp |= 1u64 << index;
                    }
                } else if lex::trim_end(value) == b"rtcp-mux" {
                    media.rtcp_mux = true;
                }
            }
            _ => {}
        }
    }
    for (i, media) in sdp.media.iter_mut().enumerate() {
        if media.connection.is_none() {
            media.connection = sdp.connection;
        }
        if media.direction.is_none() {
            media.direction = sdp.direction;
        }
        if explicit_rtcp & (1u64 << i) == 0 {
            media.rtcp_port = if media.port == 0 {
                0
            } else if media.rtcp_mux {
                media.port
            } else {
                media.port.checked_add(1).unwrap_or(0)
            };
        }
    }
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(body: &[u8]) -> Sdp<'_> {
        let mut diags = Vec::new();
        let sdp = parse(body, &mut |d| diags.push(d));
        assert!(diags.is_empty(), "{diags:?}");
        sdp
    }

    #[test]
    fn offer_with_overrides() {
        let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=sendonly\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 5000/2 RTP/AVPF 96\r\nc=IN IP6 2001:db8::5\r\na=rtcp:5003 IN IP6 2001:db8::5\r\na=inactive\r\n\
m=audio 6000 RTP/SAVPF 111\nc=IN IP4 224.2.1.1/127/3\na=rtcp-mux\n\
m=image 0 udptl t38\r\n";
        let sdp = parse_ok(body);
        assert_eq!(sdp.connection, Some(Text::from("10.0.0.1")));
        assert_eq!(sdp.direction, Some(Direction::SendOnly));
        assert_eq!(sdp.media.len(), 4);
        let [a, v, m, i] = [sdp.media[0], sdp.media[1], sdp.media[2], sdp.media[3]];
        assert_eq!(
            (a.media, a.port, a.rtcp_port),
            (Text::from("audio"), 4000, 4001)
        );
        assert_eq!(a.payload_types().collect::<Vec<_>>(), vec![0, 8, 101]);
        assert_eq!(a.connection, Some(Text::from("10.0.0.1")));
        assert_eq!(a.direction, Some(Direction::SendOnly));
        assert_eq!(
            (v.port, v.rtcp_port, v.protocol),
            (5000, 5003, Text::from("RTP/AVPF"))
        );
        assert_eq!(v.connection, Some(Text::from("2001:db8::5")));
        assert_eq!(v.direction, Some(Direction::Inactive));
        assert_eq!((m.port, m.rtcp_port, m.rtcp_mux), (6000, 6000, true));
        assert_eq!(m.connection, Some(Text::from("224.2.1.1")));
        assert_eq!((i.port, i.rtcp_port), (0, 0));
        assert_eq!(i.formats().collect::<Vec<_>>(), vec![Text::from("t38")]);
        assert_eq!(i.payload_types().count(), 0);
    }

    #[test]
    fn bad_and_too_many_media() {
        let mut body = b"c=IN IP4 1.1.1.1\nm=audio notaport RTP/AVP 0\na=rtcp:9\n".to_vec();
        for _ in 0..(MAX_SDP_MEDIA + 3) {
            body.extend_from_slice(b"m=audio 1000 RTP/AVP 0\n");
        }
        let mut diags = Vec::new();
        let sdp = parse(&body, &mut |d| diags.push(d));
        assert_eq!(sdp.media.len(), MAX_SDP_MEDIA);
        assert_eq!(
            diags,
            vec![
                Diagnostic::BadSdpMedia { offset: 17 },
                Diagnostic::TooManySdpMedia { max: MAX_SDP_MEDIA }
            ]
        );
    }

    #[test]
    fn multipart_finds_sdp_part() {
        let ct = b"multipart/mixed;boundary=\"unique-boundary-1\"";
        let body = b"--unique-boundary-1\r\nContent-Type: application/isup\r\n\r\nxx--unique-boundary-1\r\n\
--unique-boundary-1\r\nContent-Type: application/SDP\r\n\r\nv=0\r\nc=IN IP4 192.0.2.4\r\nm=audio 9 RTP/AVP 0\r\n\
\r\n--unique-boundary-1--\r\n";
        let mut diags = Vec::new();
        let sdp = from_body(ct, body, &mut |d| diags.push(d)).expect("sdp part");
        assert_eq!(sdp.connection, Some(Text::from("192.0.2.4")));
        assert_eq!(sdp.media.len(), 1);
        assert!(diags.is_empty());
        assert!(from_body(b"multipart/mixed;boundary=zz", body, &mut |_| {}).is_none());
        assert!(from_body(b"text/plain", body, &mut |_| {}).is_none());
    }
}
