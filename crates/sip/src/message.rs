//! [`SipMessage`]: the index of one SIP message, and the single-pass indexing routine.

use std::sync::Arc;

use serde::Serialize;

use crate::config::Indexer;
use crate::header::{self, BlockEnd, Header, HeaderKind, Headers, LineScanner, RawLine};
use crate::lex;
use crate::sdp::{self, Sdp};
use crate::text::Text;
use crate::uri::{self, NameAddr, Uri};

/// At most this many diagnostics are kept per message, so hostile input cannot grow the list.
pub const MAX_DIAGNOSTICS: usize = 16;

/// The first line of the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StartLine<'a> {
    /// `METHOD Request-URI SIP/2.0`
    Request {
        /// The method, as written (SIP methods are case-sensitive).
        method: Text<'a>,
        /// The Request-URI.
        uri: Uri<'a>,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// The status code (100–699).
        code: u16,
        /// The reason phrase (may be empty).
        reason: Text<'a>,
    },
    /// Neither: see [`Diagnostic::BadStartLine`] or [`Diagnostic::Empty`].
    #[default]
    Invalid,
}

/// The CSeq header: sequence number and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CSeq<'a> {
    /// The sequence number.
    pub number: u32,
    /// The method.
    pub method: Text<'a>,
}

/// The first (topmost) Via value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Via<'a> {
    /// The first via-parm as written (`SIP/2.0/UDP host:port;branch=...`).
    pub raw: Text<'a>,
    /// The transport of the sent-protocol (`UDP`, `TCP`, `TLS`, `WS`, ...).
    pub transport: Text<'a>,
    /// The sent-by host, IPv6 without brackets.
    pub host: Text<'a>,
    /// The sent-by port, when written and valid.
    pub port: Option<u16>,
    /// The `branch` parameter.
    pub branch: Option<Text<'a>>,
}

/// The Reason header (RFC 3326), e.g. `Q.850;cause=16;text="Normal call clearing"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Reason<'a> {
    /// The whole value as written (HOMER's `reason` field).
    pub raw: Text<'a>,
    /// The protocol token (`SIP`, `Q.850`, ...).
    pub protocol: Text<'a>,
    /// The `cause` parameter as written.
    pub cause: Option<Text<'a>>,
    /// The `text` parameter, quotes stripped.
    pub text: Option<Text<'a>>,
}

/// A configured custom header found in the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustomHeader<'a> {
    /// The header name as configured (shared with the [`Indexer`], no allocation per message).
    pub name: Arc<str>,
    /// The value of its first occurrence.
    pub value: Text<'a>,
}

/// Which URI-carrying field a [`Diagnostic::BadUri`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UriField {
    /// The Request-URI.
    RequestUri,
    /// From.
    From,
    /// To.
    To,
    /// Contact.
    Contact,
    /// P-Asserted-Identity.
    PAssertedIdentity,
    /// Remote-Party-ID.
    RemotePartyId,
}

/// Something the indexer could not read as SIP says it should be. The message is still indexed
/// as far as possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum Diagnostic {
    /// The input is empty or only line breaks.
    #[error("empty message")]
    Empty,
    /// The first line is neither a request line nor a status line.
    #[error("the first line is neither a SIP request line nor a status line")]
    BadStartLine,
    /// A header line without a colon (or a continuation line with no header before it).
    #[error("malformed header line at byte {offset}")]
    MalformedHeaderLine {
        /// Offset of the line in the message.
        offset: usize,
    },
    /// More header lines than [`crate::IndexerConfig::max_headers`]; the rest were skipped.
    #[error("more than {max} header lines; the rest were not indexed")]
    TooManyHeaders {
        /// The configured cap.
        max: usize,
    },
    /// No empty line ends the header block; everything after the start line was read as headers.
    #[error("the header block is not terminated by an empty line")]
    UnterminatedHeaders,
    /// No Call-ID header.
    #[error("no Call-ID header")]
    MissingCallId,
    /// No CSeq header.
    #[error("no CSeq header")]
    MissingCSeq,
    /// A CSeq that is not `number method`.
    #[error("CSeq is not a number followed by a method")]
    BadCSeq,
    /// No From header.
    #[error("no From header")]
    MissingFrom,
    /// No To header.
    #[error("no To header")]
    MissingTo,
    /// No Via header.
    #[error("no Via header")]
    MissingVia,
    /// The top Via is not `SIP/2.0/TRANSPORT host[:port]`.
    #[error("the top Via is malformed")]
    BadVia,
    /// A URI without host, with an invalid port, or with unbalanced quotes / brackets.
    #[error("malformed URI in {field:?}")]
    BadUri {
        /// Where the URI was.
        field: UriField,
    },
    /// Content-Length is not a number.
    #[error("Content-Length is not a number")]
    BadContentLength,
    /// Expires or Max-Forwards is not a number.
    #[error("{header:?} is not a number")]
    BadNumber {
        /// The header.
        header: HeaderKind,
    },
    /// Content-Length announces more bytes than the message holds.
    #[error("body truncated: Content-Length {declared}, {available} bytes present")]
    TruncatedBody {
        /// The Content-Length value.
        declared: usize,
        /// The bytes actually present after the header block.
        available: usize,
    },
    /// An SDP `m=` line that is not `m=<media> <port>[/<n>] <proto> <fmt>...`.
    #[error("malformed SDP media line at body byte {offset}")]
    BadSdpMedia {
        /// Offset of the line in the SDP body.
        offset: usize,
    },
    /// More SDP media sections than [`crate::MAX_SDP_MEDIA`]; the rest were skipped.
    #[error("more than {max} SDP media sections")]
    TooManySdpMedia {
        /// The cap.
        max: usize,
    },
}

/// The index of one SIP message: HOMER's field set as zero-copy spans of the input.
///
/// Fields that are absent from the message are `None`; single-valued fields come from the first
/// occurrence of their header. See the crate documentation for the mapping to HOMER's names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SipMessage<'a> {
    /// The whole input, as given to [`Indexer::index`] (not serialized: the store keeps it).
    #[serde(skip)]
    pub raw: &'a [u8],
    /// Bytes of leading keep-alive CR/LF, start line, headers and the empty line: the body starts
    /// at this offset of `raw` (`raw.len()` when the header block is unterminated).
    pub header_len: usize,
    /// Request or response line.
    pub start_line: StartLine<'a>,
    /// Call-ID.
    pub call_id: Option<Text<'a>>,
    /// CSeq number and method.
    pub cseq: Option<CSeq<'a>>,
    /// From.
    pub from: Option<NameAddr<'a>>,
    /// To.
    pub to: Option<NameAddr<'a>>,
    /// The first Contact.
    pub contact: Option<NameAddr<'a>>,
    /// The top Via.
    pub via: Option<Via<'a>>,
    /// User-Agent.
    pub user_agent: Option<Text<'a>>,
    /// Server.
    pub server: Option<Text<'a>>,
    /// The first P-Asserted-Identity.
    pub p_asserted_identity: Option<NameAddr<'a>>,
    /// Remote-Party-ID (the pre-standard PAI, still sent by some SBCs).
    pub remote_party_id: Option<NameAddr<'a>>,
    /// `username` of the first Authorization or Proxy-Authorization header that has one.
    pub auth_user: Option<Text<'a>>,
    /// Reason.
    pub reason: Option<Reason<'a>>,
    /// Diversion, as written.
    pub diversion: Option<Text<'a>>,
    /// Content-Type, as written (with parameters).
    pub content_type: Option<Text<'a>>,
    /// Content-Length, parsed.
    pub content_length: Option<usize>,
    /// Expires, parsed (delta-seconds).
    pub expires: Option<u32>,
    /// Max-Forwards, parsed.
    pub max_forwards: Option<u32>,
    /// Configured custom headers found in the message, in configuration order of discovery.
    pub custom_headers: Vec<CustomHeader<'a>>,
    /// The A-leg correlation id from the highest-priority matching rule.
    pub aleg_id: Option<Text<'a>>,
    /// The body: Content-Length bytes after the header block (or what is present of them), or
    /// everything after the header block when there is no Content-Length.
    pub body: Text<'a>,
    /// The SDP summary when the body is `application/sdp`, or a `multipart/mixed` body with an
    /// `application/sdp` part.
    pub sdp: Option<Sdp<'a>>,
    /// What could not be read (at most [`MAX_DIAGNOSTICS`]).
    pub diagnostics: Vec<Diagnostic>,
    /// Offset of the first header line in `raw`.
    #[serde(skip)]
    headers_start: usize,
}

impl<'a> SipMessage<'a> {
    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start_line, StartLine::Request { .. })
    }

    /// True for a response.
    pub fn is_response(&self) -> bool {
        matches!(self.start_line, StartLine::Response { .. })
    }

    /// The request method (HOMER `method` of a request).
    pub fn method(&self) -> Option<Text<'a>> {
        match self.start_line {
            StartLine::Request { method, .. } => Some(method),
            _ => None,
        }
    }

    /// The response status code (HOMER `method` of a response).
    pub fn status_code(&self) -> Option<u16> {
        match self.start_line {
            StartLine::Response { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The Request-URI.
    pub fn request_uri(&self) -> Option<&Uri<'a>> {
        match &self.start_line {
            StartLine::Request { uri, .. } => Some(uri),
            _ => None,
        }
    }

    /// HOMER `ruri_user`.
    pub fn ruri_user(&self) -> Option<Text<'a>> {
        self.request_uri().and_then(|u| u.user)
    }

    /// HOMER `ruri_domain`: the Request-URI host without port.
    pub fn ruri_domain(&self) -> Option<Text<'a>> {
        self.request_uri().map(|u| u.host)
    }

    /// HOMER `from_user`.
    pub fn from_user(&self) -> Option<Text<'a>> {
        self.from.as_ref().and_then(|f| f.uri.user)
    }

    /// HOMER `from_domain`.
    pub fn from_domain(&self) -> Option<Text<'a>> {
        self.from.as_ref().map(|f| f.uri.host)
    }

    /// HOMER `from_tag`.
    pub fn from_tag(&self) -> Option<Text<'a>> {
        self.from.as_ref().and_then(|f| f.tag)
    }

    /// HOMER `to_user`.
    pub fn to_user(&self) -> Option<Text<'a>> {
        self.to.as_ref().and_then(|t| t.uri.user)
    }

    /// HOMER `to_domain`.
    pub fn to_domain(&self) -> Option<Text<'a>> {
        self.to.as_ref().map(|t| t.uri.host)
    }

    /// HOMER `to_tag`.
    pub fn to_tag(&self) -> Option<Text<'a>> {
        self.to.as_ref().and_then(|t| t.tag)
    }

    /// HOMER `contact_user`.
    pub fn contact_user(&self) -> Option<Text<'a>> {
        self.contact.as_ref().and_then(|c| c.uri.user)
    }

    /// HOMER `contact_domain`.
    pub fn contact_domain(&self) -> Option<Text<'a>> {
        self.contact.as_ref().map(|c| c.uri.host)
    }

    /// HOMER `pid_user`: the P-Asserted-Identity user, else the Remote-Party-ID user.
    pub fn pid_user(&self) -> Option<Text<'a>> {
        self.p_asserted_identity
            .as_ref()
            .and_then(|p| p.uri.user)
            .or_else(|| self.remote_party_id.as_ref().and_then(|r| r.uri.user))
    }

    /// The top Via branch.
    pub fn via_branch(&self) -> Option<Text<'a>> {
        self.via.as_ref().and_then(|v| v.branch)
    }

    /// The CSeq method.
    pub fn cseq_method(&self) -> Option<Text<'a>> {
        self.cseq.as_ref().map(|c| c.method)
    }

    /// The value of configured custom header `name` (compared case-insensitively).
    pub fn custom_header(&self, name: &str) -> Option<Text<'a>> {
        self.custom_headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// All headers in order (name as written, trimmed value), re-scanned from `raw` without
    /// allocating: for full header search and display.
    pub fn headers(&self) -> Headers<'a> {
        let block = self.raw.get(..self.header_len).unwrap_or(self.raw);
        header::headers_from(block, self.headers_start)
    }
}

/// Number of leading CR/LF bytes: keep-alives (RFC 5626 §4.4.1) or the empty lines RFC 3261 §7.5
/// allows before a start line on a stream. They are skipped, never indexed.
pub(crate) fn skip_keepalive(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())
}

/// Appends a diagnostic unless the cap is reached.
fn push(diags: &mut Vec<Diagnostic>, diagnostic: Diagnostic) {
    if diags.len() < MAX_DIAGNOSTICS {
        diags.push(diagnostic);
    }
}

/// The parts of a start line, before the Request-URI is parsed.
pub(crate) enum StartParts<'a> {
    /// `METHOD Request-URI SIP/x`: the method and the (trimmed, non-empty) Request-URI text.
    Request { method: &'a [u8], uri: &'a [u8] },
    /// `SIP/x code reason`.
    Response { code: u16, reason: &'a [u8] },
}

/// Checks and splits the start line (without its line break); `None` when it is neither a
/// request line nor a status line. Stream framing needs only this, not the parsed URI.
pub(crate) fn split_start_line(line: &[u8]) -> Option<StartParts<'_>> {
    let line = lex::trim(line);
    if line.len() >= 4 && line.get(..4)?.eq_ignore_ascii_case(b"SIP/") {
        let (_version, rest) = lex::split_once(line, b' ');
        let rest = lex::trim_start(rest?);
        let digits = rest.get(..3)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code = u16::try_from(lex::parse_u32(digits)?).ok()?;
        let after = rest.get(3..)?;
        if !(100..=699).contains(&code) || !matches!(after.first(), None | Some(b' ' | b'\t')) {
            return None;
        }
        return Some(StartParts::Response {
            code,
            reason: lex::trim(after),
        });
    }
    let method_len = lex::token_len(line);
    let method = line.get(..method_len)?;
    if method.is_empty() || line.get(method_len) != Some(&b' ') {
        return None;
    }
    let rest = lex::trim(line.get(method_len + 1..)?);
    let last_space = memchr::memrchr(b' ', rest)?;
    let version = rest.get(last_space + 1..)?;
    if version.len() < 4 || !version.get(..4)?.eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let uri = lex::trim(rest.get(..last_space)?);
    if uri.is_empty() {
        return None;
    }
    Some(StartParts::Request { method, uri })
}

/// Parses the start line (without its line break); the flag tells whether a Request-URI was
/// well-formed (always true for a response).
#[cfg(test)]
fn parse_start_line(line: &[u8]) -> Option<(StartLine<'_>, bool)> {
    let mut start_line = StartLine::Invalid;
    let ok = parse_start_line_into(&mut start_line, line)?;
    Some((start_line, ok))
}

/// [`parse_start_line`] writing into `slot`, so that the Request-URI is parsed where it is
/// stored; `None` (and `slot` untouched) when the line is not a start line.
fn parse_start_line_into<'a>(slot: &mut StartLine<'a>, line: &'a [u8]) -> Option<bool> {
    match split_start_line(line)? {
        StartParts::Response { code, reason } => {
            *slot = StartLine::Response {
                code,
                reason: Text::new(reason),
            };
            Some(true)
        }
        StartParts::Request { method, uri } => {
            *slot = StartLine::Request {
                method: Text::new(method),
                uri: Uri::default(),
            };
            match slot {
                StartLine::Request { uri: uri_slot, .. } => {
                    Some(Uri::scan_into(uri_slot, uri, uri::UriEnd::Whole).1)
                }
                _ => Some(false),
            }
        }
    }
}

/// Parses `number LWS method`.
fn parse_cseq(value: &[u8]) -> Option<CSeq<'_>> {
    let value = lex::trim(value);
    let split = value.iter().position(|&b| lex::is_lws(b))?;
    let number = lex::parse_u32(value.get(..split)?)?;
    let method = lex::trim(value.get(split..)?);
    if method.is_empty() || !method.iter().all(|&b| lex::is_token(b)) {
        return None;
    }
    Some(CSeq {
        number,
        method: Text::new(method),
    })
}

/// Parses the first via-parm: `SIP / 2.0 / transport sent-by *(;param)`.
fn parse_via(value: &[u8]) -> Option<Via<'_>> {
    let value = lex::trim(value);
    let (_name, rest) = lex::split_once(value, b'/');
    let (_version, rest) = lex::split_once(rest?, b'/');
    let rest = lex::trim_start(rest?);
    let transport_end = rest
        .iter()
        .position(|&b| !lex::is_token(b))
        .unwrap_or(rest.len());
    let transport = rest.get(..transport_end)?;
    let rest = rest.get(transport_end..)?;
    let sent_by_end = rest
        .iter()
        .position(|&b| b == b';' || b == b',')
        .unwrap_or(rest.len());
    let mut port = None;
    let (host, port_ok) = uri::split_host_port(rest.get(..sent_by_end)?, &mut port);
    if transport.is_empty() || host.is_empty() || !port_ok {
        return None;
    }
    // The parameters end where the next via-parm of a comma-separated list begins.
    let after_sent_by = rest.get(sent_by_end..)?;
    let (params_len, branch) = lex::scan_params(after_sent_by, b"branch");
    let element_end = value.len().saturating_sub(after_sent_by.len()) + params_len;
    let branch = branch.map(Text::new);
    Some(Via {
        raw: Text::new(lex::trim_end(value.get(..element_end)?)),
        transport: Text::new(transport),
        host: Text::new(host),
        port,
        branch,
    })
}

/// `username` of `Digest username="alice", realm=...` (any scheme with auth-params).
fn parse_auth_username(value: &[u8]) -> Option<Text<'_>> {
    let value = lex::trim(value);
    let scheme_end = value.iter().position(|&b| lex::is_lws(b))?;
    let mut rest = value.get(scheme_end..)?;
    while !rest.is_empty() {
        let end = lex::find_unquoted(rest, |b| b == b',').unwrap_or(rest.len());
        let (name, param_value) = lex::split_once(rest.get(..end)?, b'=');
        if lex::trim(name).eq_ignore_ascii_case(b"username") {
            let user = lex::unquote(lex::trim(param_value?));
            return (!user.is_empty()).then(|| Text::new(user));
        }
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    None
}

/// Splits `protocol ;cause=..;text=".."`.
fn parse_reason(value: &[u8]) -> Reason<'_> {
    let value = lex::trim(value);
    let element = lex::first_list_element(value);
    let protocol_end = lex::find(element, b';').unwrap_or(element.len());
    let mut reason = Reason {
        raw: Text::new(value),
        protocol: Text::new(lex::trim(element.get(..protocol_end).unwrap_or_default())),
        cause: None,
        text: None,
    };
    for (name, param) in lex::params(element) {
        if reason.cause.is_none() && name.eq_ignore_ascii_case(b"cause") {
            reason.cause = Some(Text::new(param));
        } else if reason.text.is_none() && name.eq_ignore_ascii_case(b"text") {
            reason.text = Some(Text::new(param));
        }
    }
    reason
}

/// The indexing state carried through the header loop.
struct Builder<'i, 'm, 'a> {
    indexer: &'i Indexer,
    /// The result, built where the caller returns it from (it is large: moving it at the end
    /// was a `memcpy` per message).
    msg: &'m mut SipMessage<'a>,
    /// Index of the A-leg rule that produced `aleg_id` (`usize::MAX`: none yet); only rules with
    /// a smaller index (higher priority) can still replace it.
    aleg_rank: usize,
}

impl<'a> Builder<'_, '_, 'a> {
    fn diag(&mut self, diagnostic: Diagnostic) {
        push(&mut self.msg.diagnostics, diagnostic);
    }

    /// Parses a name-addr header into `slot` unless an earlier header already filled it; the
    /// value is parsed where it is stored (a `NameAddr` is large, copies show in the profile).
    fn name_addr(&mut self, field: UriField, value: Text<'a>) {
        let slot = match field {
            UriField::From => &mut self.msg.from,
            UriField::To => &mut self.msg.to,
            UriField::Contact => &mut self.msg.contact,
            UriField::PAssertedIdentity => &mut self.msg.p_asserted_identity,
            UriField::RemotePartyId => &mut self.msg.remote_party_id,
            UriField::RequestUri => return,
        };
        if slot.is_some() {
            return;
        }
        let ok = NameAddr::parse_into(slot.insert(NameAddr::default()), value.as_bytes());
        if !ok {
            self.diag(Diagnostic::BadUri { field });
        }
    }

    fn known(&mut self, kind: HeaderKind, value: Text<'a>) {
        let m = &self.msg;
        match kind {
            HeaderKind::CallId => {
                if m.call_id.is_none() && !value.is_empty() {
                    self.msg.call_id = Some(value);
                }
            }
            HeaderKind::CSeq => {
                if m.cseq.is_none() {
                    match parse_cseq(value.as_bytes()) {
                        Some(cseq) => self.msg.cseq = Some(cseq),
                        None => self.diag(Diagnostic::BadCSeq),
                    }
                }
            }
            HeaderKind::From => self.name_addr(UriField::From, value),
            HeaderKind::To => self.name_addr(UriField::To, value),
            HeaderKind::Contact => self.name_addr(UriField::Contact, value),
            HeaderKind::PAssertedIdentity => self.name_addr(UriField::PAssertedIdentity, value),
            HeaderKind::RemotePartyId => self.name_addr(UriField::RemotePartyId, value),
            HeaderKind::Via => {
                if m.via.is_none() {
                    match parse_via(value.as_bytes()) {
                        Some(via) => self.msg.via = Some(via),
                        None => {
                            // Keep the raw value so HOMER's `via` field is still filled.
                            self.msg.via = Some(Via {
                                raw: value,
                                ..Via::default()
                            });
                            self.diag(Diagnostic::BadVia);
                        }
                    }
                }
            }
            HeaderKind::UserAgent => set_text(&mut self.msg.user_agent, value),
            HeaderKind::Server => set_text(&mut self.msg.server, value),
            HeaderKind::Diversion => set_text(&mut self.msg.diversion, value),
            HeaderKind::ContentType => set_text(&mut self.msg.content_type, value),
            HeaderKind::Authorization | HeaderKind::ProxyAuthorization => {
                if m.auth_user.is_none() {
                    self.msg.auth_user = parse_auth_username(value.as_bytes());
                }
            }
            HeaderKind::Reason => {
                if m.reason.is_none() {
                    self.msg.reason = Some(parse_reason(value.as_bytes()));
                }
            }
            HeaderKind::ContentLength => {
                if m.content_length.is_none() {
                    match lex::parse_u32(value.as_bytes()) {
                        Some(n) => self.msg.content_length = usize::try_from(n).ok(),
                        None => self.diag(Diagnostic::BadContentLength),
                    }
                }
            }
            HeaderKind::Expires => {
                if m.expires.is_none() {
                    self.number(kind, value, |msg, n| msg.expires = Some(n));
                }
            }
            HeaderKind::MaxForwards => {
                if m.max_forwards.is_none() {
                    self.number(kind, value, |msg, n| msg.max_forwards = Some(n));
                }
            }
            HeaderKind::Supported
            | HeaderKind::Subject
            | HeaderKind::ContentEncoding
            | HeaderKind::Event
            | HeaderKind::AllowEvents
            | HeaderKind::ReferTo
            | HeaderKind::ReferredBy
            | HeaderKind::SessionExpires => {}
        }
    }

    fn number(
        &mut self,
        kind: HeaderKind,
        value: Text<'a>,
        set: impl FnOnce(&mut SipMessage<'a>, u32),
    ) {
        match lex::parse_u32(value.as_bytes()) {
            Some(n) => set(self.msg, n),
            None => self.diag(Diagnostic::BadNumber { header: kind }),
        }
    }

    /// Custom headers and A-leg rules: only consulted when configured.
    fn configured(&mut self, header: &Header<'a>) {
        let name = header.name.as_bytes();
        for custom in &self.indexer.custom_headers {
            if custom.as_bytes().eq_ignore_ascii_case(name)
                && !self
                    .msg
                    .custom_headers
                    .iter()
                    .any(|h| Arc::ptr_eq(&h.name, custom))
            {
                self.msg.custom_headers.push(CustomHeader {
                    name: Arc::clone(custom),
                    value: header.value,
                });
            }
        }
        let higher_priority = self
            .indexer
            .aleg
            .get(..self.aleg_rank)
            .unwrap_or(&self.indexer.aleg);
        for (rank, rule) in higher_priority.iter().enumerate() {
            if !rule.header.eq_ignore_ascii_case(name) {
                continue;
            }
            let id = match &rule.regex {
                None => Some(header.value),
                Some(regex) => regex
                    .captures(header.value.as_bytes())
                    .and_then(|caps| caps.get(1))
                    .map(|group| Text::new(group.as_bytes())),
            };
            if let Some(id) = id.filter(|id| !id.is_empty()) {
                self.msg.aleg_id = Some(id);
                self.aleg_rank = rank;
                break;
            }
        }
    }
}

/// Whether [`Builder::known`] reads this header (the others are recognised for
/// [`Header::is`] and display only).
fn is_indexed(kind: HeaderKind) -> bool {
    !matches!(
        kind,
        HeaderKind::Supported
            | HeaderKind::Subject
            | HeaderKind::ContentEncoding
            | HeaderKind::Event
            | HeaderKind::AllowEvents
            | HeaderKind::ReferTo
            | HeaderKind::ReferredBy
            | HeaderKind::SessionExpires
    )
}

fn set_text<'a>(slot: &mut Option<Text<'a>>, value: Text<'a>) {
    if slot.is_none() && !value.is_empty() {
        *slot = Some(value);
    }
}

/// The indexing routine behind [`Indexer::index`]. Inlined into it so that the large result
/// is built in the caller's return slot instead of being copied there.
#[inline(always)]
pub(crate) fn index_with<'a>(indexer: &Indexer, raw: &'a [u8]) -> SipMessage<'a> {
    let mut msg = SipMessage {
        raw,
        header_len: raw.len(),
        ..SipMessage::default()
    };
    fill(
        &mut Builder {
            indexer,
            msg: &mut msg,
            aleg_rank: usize::MAX,
        },
        raw,
    );
    msg
}

/// Indexes `raw` into `b.msg`.
fn fill<'a>(b: &mut Builder<'_, '_, 'a>, raw: &'a [u8]) {
    let indexer = b.indexer;
    let start = skip_keepalive(raw);
    let Some(rest) = raw.get(start..).filter(|r| !r.is_empty()) else {
        b.diag(Diagnostic::Empty);
        return;
    };
    let (first_line, headers_start) = match memchr::memchr(b'\n', rest) {
        Some(nl) => (rest.get(..nl).unwrap_or_default(), start + nl + 1),
        None => (rest, raw.len()),
    };
    b.msg.headers_start = headers_start;
    match parse_start_line_into(&mut b.msg.start_line, first_line) {
        Some(true) => {}
        Some(false) => b.diag(Diagnostic::BadUri {
            field: UriField::RequestUri,
        }),
        None => b.diag(Diagnostic::BadStartLine),
    }

    let configured = !indexer.custom_headers.is_empty() || !indexer.aleg.is_empty();
    let mut scanner = LineScanner::new(raw, headers_start);
    let mut lines = 0usize;
    while let Some(line) = scanner.next_raw() {
        lines += 1;
        if lines > indexer.max_headers {
            if lines == indexer.max_headers + 1 {
                b.diag(Diagnostic::TooManyHeaders {
                    max: indexer.max_headers,
                });
            }
            continue;
        }
        match line {
            RawLine::Malformed(offset) => b.diag(Diagnostic::MalformedHeaderLine { offset }),
            RawLine::Header { name, value } => {
                // Values are trimmed only for the headers that are read.
                if let Some(kind) = HeaderKind::from_name(name).filter(|k| is_indexed(*k)) {
                    b.known(kind, Text::new(lex::trim(value)));
                }
                if configured {
                    b.configured(&Header {
                        name: Text::new(name),
                        value: Text::new(lex::trim(value)),
                    });
                }
            }
        }
    }
    if let BlockEnd::Blank(body_start) = scanner.end() {
        b.msg.header_len = body_start;
    } else if headers_start < raw.len() {
        b.diag(Diagnostic::UnterminatedHeaders);
    }

    let after_headers = raw.get(b.msg.header_len..).unwrap_or_default();
    let body = match b.msg.content_length {
        Some(declared) if declared > after_headers.len() => {
            b.diag(Diagnostic::TruncatedBody {
                declared,
                available: after_headers.len(),
            });
            after_headers
        }
        Some(declared) => after_headers.get(..declared).unwrap_or(after_headers),
        None => after_headers,
    };
    b.msg.body = Text::new(body);
    if let Some(content_type) = b.msg.content_type {
        if !body.is_empty() {
            let mut diags = std::mem::take(&mut b.msg.diagnostics);
            b.msg.sdp = sdp::from_body(content_type.as_bytes(), body, &mut |d| push(&mut diags, d));
            b.msg.diagnostics = diags;
        }
    }

    if b.msg.start_line != StartLine::Invalid {
        let required = [
            (b.msg.call_id.is_none(), Diagnostic::MissingCallId),
            (
                b.msg.cseq.is_none() && !b.msg.diagnostics.contains(&Diagnostic::BadCSeq),
                Diagnostic::MissingCSeq,
            ),
            (b.msg.from.is_none(), Diagnostic::MissingFrom),
            (b.msg.to.is_none(), Diagnostic::MissingTo),
            (b.msg.via.is_none(), Diagnostic::MissingVia),
        ];
        for (missing, diagnostic) in required {
            if missing {
                b.diag(diagnostic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines() {
        assert!(matches!(
            parse_start_line(b"INVITE sip:a@b SIP/2.0"),
            Some((StartLine::Request { method, uri }, true)) if method == "INVITE" && uri.host == "b"
        ));
        assert!(matches!(
            parse_start_line(b"SIP/2.0 486 Busy Here"),
            Some((StartLine::Response { code: 486, reason }, true)) if reason == "Busy Here"
        ));
        assert!(matches!(
            parse_start_line(b"SIP/2.0 200"),
            Some((StartLine::Response { code: 200, reason }, true)) if reason.is_empty()
        ));
        for bad in [
            &b"SIP/2.0 20 OK"[..],
            b"SIP/2.0 2000 OK",
            b"SIP/2.0 099 x",
            b"INVITE sip:a@b",
            b"INVITE sip:a@b HTTP/1.1",
            b"GET / HTTP/1.1",
            b"IN\x00VITE sip:a SIP/2.0",
            b"",
        ] {
            assert_eq!(parse_start_line(bad), None, "{:?}", Text::new(bad));
        }
    }

    #[test]
    fn cseq_via_auth_reason() {
        assert_eq!(
            parse_cseq(b" 4711  INVITE "),
            Some(CSeq {
                number: 4711,
                method: Text::from("INVITE")
            })
        );
        assert_eq!(parse_cseq(b"INVITE"), None);
        assert_eq!(parse_cseq(b"99999999999 INVITE"), None);

        let via = parse_via(
            b"SIP / 2.0 / TCP [2001:db8::1]:5062 ;received=1.2.3.4;BRANCH=z9hG4bKx, SIP/2.0/UDP b",
        )
        .expect("valid via");
        assert_eq!(via.transport, "TCP");
        assert_eq!(via.host, "2001:db8::1");
        assert_eq!(via.port, Some(5062));
        assert_eq!(via.branch, Some(Text::from("z9hG4bKx")));
        assert_eq!(parse_via(b"garbage"), None);

        assert_eq!(
            parse_auth_username(br#"Digest realm="a,b", username = "bob" ,nonce="x""#),
            Some(Text::from("bob"))
        );
        assert_eq!(parse_auth_username(b"Digest realm=x"), None);

        let r = parse_reason(br#"Q.850 ;cause=16 ;text="Normal call clearing""#);
        assert_eq!(r.protocol, "Q.850");
        assert_eq!(r.cause, Some(Text::from("16")));
        assert_eq!(r.text, Some(Text::from("Normal call clearing")));
    }
}
