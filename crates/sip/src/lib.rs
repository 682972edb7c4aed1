//! Zero-copy SIP indexer for hepstack.
//!
//! Every SIP message that reaches the collector is indexed once: [`Indexer::index`] makes a single
//! pass over the header block (line breaks found 16 bytes at a time), parses the few headers
//! HOMER searches on, and returns a [`SipMessage`] whose fields are spans ([`Text`]) of the input
//! buffer. Nothing is copied; a message without SDP, custom headers or diagnostics allocates
//! nothing.
//!
//! # Field set
//!
//! The fields mirror heplify-server's `SipMsg` (its `sipparser` package) and the `data_header`
//! keys it writes for HOMER 7, so a store can fill HOMER's JSON columns directly:
//!
//! | HOMER key | heplify-server | here |
//! |---|---|---|
//! | `method` | `FirstMethod` / `FirstResp` | [`SipMessage::method`] / [`SipMessage::status_code`] |
//! | `ruri_user`, `ruri_domain` | `URIUser`, `URIHost` | [`SipMessage::ruri_user`], [`SipMessage::ruri_domain`] (port in [`Uri::port`]) |
//! | `callid` | `CallID` | [`SipMessage::call_id`] |
//! | `cseq` | `CseqVal` (+ `CseqMethod` for the profile) | [`SipMessage::cseq`] |
//! | `from_user`, `from_domain`, `from_tag` | `FromUser`, `FromHost`, `FromTag` | [`SipMessage::from`] and accessors |
//! | `to_user`, `to_domain`, `to_tag` | `ToUser`, `ToHost`, `ToTag` | [`SipMessage::to`] and accessors |
//! | `contact_user`, `contact_domain` | `ContactUser`, `ContactHost` (+ `ContactPort`) | [`SipMessage::contact`] |
//! | `via` | `ViaOne` (+ `ViaOneBranch`) | [`SipMessage::via`] ([`Via::raw`], [`Via::branch`]) |
//! | `user_agent`, `server` | `UserAgent`, `Server` | [`SipMessage::user_agent`], [`SipMessage::server`] |
//! | `pid_user` | `PaiUser` (Remote-Party-ID as fallback) | [`SipMessage::pid_user`] |
//! | `auth_user` | `AuthUser` | [`SipMessage::auth_user`] |
//! | `reason` | `ReasonVal` | [`SipMessage::reason`] ([`Reason::raw`]) |
//! | `diversion` | `DiversionVal` | [`SipMessage::diversion`] |
//! | `content_type` | `ContentType` | [`SipMessage::content_type`] |
//! | `expires` | `Expires` | [`SipMessage::expires`] |
//! | `callid_aleg` | `XCallID` (`AlegIDs` rules) | [`SipMessage::aleg_id`] ([`IndexerConfig::aleg_headers`]) |
//! | custom headers | `CustomHeader` | [`SipMessage::custom_headers`] ([`IndexerConfig::custom_headers`]) |
//!
//! Beyond that: Max-Forwards, Content-Length, the body, an SDP summary ([`Sdp`]: connection
//! addresses, ports, RTCP ports, payload types, direction) for media correlation, and
//! [`SipMessage::headers`] to walk every header for full header search.
//!
//! # Invariants
//!
//! * [`Indexer::index`] never fails and never panics: a malformed message yields what could be
//!   read plus typed [`Diagnostic`]s (at most [`MAX_DIAGNOSTICS`]).
//! * Every span borrows from the input; `raw[..header_len]` is the start line and header block,
//!   and [`SipMessage::body`] lies within `raw[header_len..]`.
//! * Header names are case-insensitive and compact forms (`i`, `f`, `t`, `m`, `v`, `c`, `l`, `k`,
//!   `s`, `e`, `o`, `u`, `r`, `b`, `x`) equal their long forms. Lines end in CRLF or bare LF.
//!   A folded header value keeps its line breaks inside the span; [`Text::normalized`] (used for
//!   serialization) turns each fold into one space.
//! * Single-valued fields come from the first occurrence of their header; list headers (Via,
//!   Contact, P-Asserted-Identity) contribute their first element.
//! * Work and memory per message are bounded: at most [`IndexerConfig::max_headers`] header lines
//!   are examined, [`MAX_SDP_MEDIA`] SDP media sections summarised, [`MAX_DIAGNOSTICS`] kept.
//! * Leading CR/LF bytes (keep-alives) are skipped; see [`split`] for stream framing.
//!
//! ```
//! let msg = sip::index(b"BYE sip:bob@example.com SIP/2.0\r\ni: abc\r\nCSeq: 2 BYE\r\n\r\n");
//! assert_eq!(msg.method().unwrap(), "BYE");
//! assert_eq!(msg.call_id.unwrap(), "abc");
//! assert_eq!(msg.ruri_user().unwrap(), "bob");
//! ```

mod config;
mod header;
mod lex;
mod message;
mod sdp;
pub mod split;
mod text;
mod uri;

use std::sync::OnceLock;

pub use config::{AlegRule, ConfigError, Indexer, IndexerConfig, DEFAULT_MAX_HEADERS};
pub use header::{headers, Header, HeaderKind, Headers};
pub use message::{
    CSeq, CustomHeader, Diagnostic, Reason, SipMessage, StartLine, UriField, Via, MAX_DIAGNOSTICS,
};
pub use sdp::{Direction, Sdp, SdpMedia, MAX_SDP_MEDIA};
pub use split::{is_keepalive, message_len, split_messages, SplitError, SplitMessages};
pub use text::Text;
pub use uri::{NameAddr, Scheme, Uri};

/// Indexes one message with the default configuration (no custom headers, no A-leg rules).
pub fn index(msg: &[u8]) -> SipMessage<'_> {
    static DEFAULT: OnceLock<Indexer> = OnceLock::new();
    DEFAULT.get_or_init(Indexer::default).index(msg)
}
