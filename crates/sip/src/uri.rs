//! SIP, SIPS and tel URIs, and the name-addr form of From / To / Contact / P-Asserted-Identity.

use serde::Serialize;

use crate::lex;
use crate::text::Text;

/// URI scheme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966); the number is reported as the user.
    Tel,
    /// Anything else (`urn:`, `mailto:`, a Contact `*`, or no scheme at all); only `raw` is set.
    #[default]
    Other,
}

/// A URI split into its parts, every part a zero-copy span of the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Uri<'a> {
    /// The whole URI as written (without angle brackets).
    pub raw: Text<'a>,
    /// The scheme.
    pub scheme: Scheme,
    /// The user without its user parameters (`+31201234567` of
    /// `sip:+31201234567;npdi@host`); for `tel:` the number. `None` when absent or empty.
    pub user: Option<Text<'a>>,
    /// Parameters inside the user part (`npdi;rn=x` of `sip:+3120;npdi;rn=x@host`), if any.
    pub user_params: Option<Text<'a>>,
    /// The password of `user:password@host` (deprecated by RFC 3261 but seen in the wild).
    pub password: Option<Text<'a>>,
    /// The host (domain or IP address) without port; an IPv6 reference without its brackets.
    /// Empty for `tel:` and other schemes.
    pub host: Text<'a>,
    /// The port, when present and valid.
    pub port: Option<u16>,
    /// URI parameters without the leading `;` (`transport=tcp;lr`); for `tel:` the parameters
    /// after the number. Empty when there are none.
    pub params: Text<'a>,
    /// URI headers after `?`, without the `?`. Empty when there are none.
    pub headers: Text<'a>,
}

/// Where a URI ends inside the text handed to the scanner.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriEnd {
    /// The whole text is the URI (the Request-URI).
    Whole,
    /// The URI was opened by `<` and ends at `>`.
    Bracket,
    /// addr-spec without brackets in a header: the URI ends at `;`, `,` or white space, which
    /// start header parameters or the next list element (RFC 3261 §20.10).
    Bare,
}

impl<'a> Uri<'a> {
    /// Parses a URI leniently: every input gives a `Uri`, with the parts it could find.
    pub fn parse(raw: &'a [u8]) -> Uri<'a> {
        Self::parse_checked(raw).0
    }

    /// Parses and also tells whether the URI is well-formed enough to trust: a sip/sips URI needs
    /// a host and, if a port is written, a valid one; a tel URI needs a number.
    pub(crate) fn parse_checked(raw: &'a [u8]) -> (Uri<'a>, bool) {
        let (uri, _, ok) = Self::scan(lex::trim(raw), UriEnd::Whole);
        (uri, ok)
    }

    /// Scans a URI at the start of `s` up to the end `end` describes, in one pass over its bytes
    /// (every URI of every message goes through here). Returns the URI, the number of bytes it
    /// spans, and whether it is well-formed (see [`Uri::parse_checked`]).
    pub(crate) fn scan(s: &'a [u8], end: UriEnd) -> (Uri<'a>, usize, bool) {
        let mut uri = Uri::default();
        let (len, ok) = Self::scan_into(&mut uri, s, end);
        (uri, len, ok)
    }

    /// [`Uri::scan`] writing into `uri` (which must be `Uri::default()`), so that the large
    /// result is built where it is stored instead of being copied there.
    pub(crate) fn scan_into(uri: &mut Uri<'a>, s: &'a [u8], end: UriEnd) -> (usize, bool) {
        // Byte classes the loop has to look at; everything else (class 0) is stepped over.
        const AT: u8 = 1;
        const COLON: u8 = 2;
        const SEMI: u8 = 3;
        const QUERY: u8 = 4;
        const OPEN_V6: u8 = 5;
        const CLOSE_V6: u8 = 6;
        const GT: u8 = 7;
        const COMMA: u8 = 8;
        const SPACE: u8 = 9;
        const CLASS: [u8; 256] = {
            let mut c = [0u8; 256];
            c[b'@' as usize] = AT;
            c[b':' as usize] = COLON;
            c[b';' as usize] = SEMI;
            c[b'?' as usize] = QUERY;
            c[b'[' as usize] = OPEN_V6;
            c[b']' as usize] = CLOSE_V6;
            c[b'>' as usize] = GT;
            c[b',' as usize] = COMMA;
            c[b' ' as usize] = SPACE;
            c[b'\t' as usize] = SPACE;
            c[b'\r' as usize] = SPACE;
            c[b'\n' as usize] = SPACE;
            c
        };
        let is_end = |class: u8| match end {
            UriEnd::Whole => false,
            UriEnd::Bracket => class == GT,
            UriEnd::Bare => matches!(class, SEMI | COMMA | SPACE),
        };
        let (scheme, start) = match s {
            [b's' | b'S', b'i' | b'I', b'p' | b'P', b':', ..] => (Scheme::Sip, 4),
            [b's' | b'S', b'i' | b'I', b'p' | b'P', b's' | b'S', b':', ..] => (Scheme::Sips, 5),
            [b't' | b'T', b'e' | b'E', b'l' | b'L', b':', ..] => (Scheme::Tel, 4),
            _ => {
                let len = match end {
                    UriEnd::Whole => s.len(),
                    _ => s
                        .iter()
                        .position(|&b| is_end(CLASS[usize::from(b)]))
                        .unwrap_or(s.len()),
                };
                uri.raw = Text::new(s.get(..len).unwrap_or_default());
                return (len, true);
            }
        };
        // Offsets (into `s`) of the separators; `None` until seen.
        let mut at = None; // `@` ending the userinfo
        let mut user_colon = None; // first `:` before any `@`: the password separator, if `@` comes
        let mut user_semi = None; // `;` starting user parameters (moved here when `@` shows up)
        let mut colon = None; // `:` before the port
        let mut semi = None; // `;` starting the URI parameters
        let mut query = None; // `?` starting the URI headers
        let mut in_v6 = false;
        let mut i = start;
        let len = loop {
            // Jump to the next byte the loop has to look at (16 bytes per step).
            i = match end {
                UriEnd::Whole => lex::find_any(s, i, *b"@:;?[]"),
                UriEnd::Bracket => lex::find_any(s, i, *b"@:;?[]>"),
                UriEnd::Bare => lex::find_any(s, i, *b"@:;?[], \t\r\n"),
            };
            let Some(&b) = s.get(i) else { break s.len() };
            let class = CLASS[usize::from(b)];
            if is_end(class) {
                break i;
            }
            if query.is_none() {
                if class == COLON && at.is_none() && user_colon.is_none() {
                    // Provisional: a password separator if an `@` follows.
                    user_colon = Some(i);
                }
                match class {
                    QUERY if scheme != Scheme::Tel => query = Some(i),
                    AT if at.is_none() && scheme != Scheme::Tel => {
                        at = Some(i);
                        colon = None;
                        user_semi = semi.take();
                        in_v6 = false;
                    }
                    OPEN_V6 if semi.is_none() => in_v6 = true,
                    CLOSE_V6 => in_v6 = false,
                    COLON if colon.is_none() && semi.is_none() && !in_v6 => colon = Some(i),
                    SEMI if semi.is_none() => semi = Some(i),
                    _ => {}
                }
            }
            i += 1;
        };
        let part = |from: usize, to: usize| s.get(from..to).unwrap_or_default();
        let headers_at = query.unwrap_or(len);
        let params_at = semi.unwrap_or(headers_at);
        uri.raw = Text::new(part(0, len));
        uri.scheme = scheme;
        if let Some(q) = query {
            uri.headers = Text::new(part(q + 1, len));
        }
        if let Some(p) = semi {
            uri.params = Text::new(part(p + 1, headers_at));
        }
        if scheme == Scheme::Tel {
            uri.user = non_empty(part(start, params_at));
            return (len, uri.user.is_some());
        }
        let host_at = match at {
            Some(at) => {
                // userinfo = user [";" user-params] [":" password]; a `:` before any `;` means
                // the `;` belongs to the password.
                let password_at = user_colon.filter(|&c| c < at);
                let params_at = user_semi.filter(|&p| password_at.map_or(true, |c| p < c));
                let user_end = params_at.or(password_at).unwrap_or(at);
                uri.user = non_empty(part(start, user_end));
                if let Some(p) = params_at {
                    uri.user_params = non_empty(part(p + 1, password_at.unwrap_or(at)));
                }
                if let Some(c) = password_at {
                    uri.password = Some(Text::new(part(c + 1, at)));
                }
                at + 1
            }
            None => start,
        };
        let host_end = colon.unwrap_or(params_at);
        let mut host = part(host_at, host_end);
        let mut ok = true;
        if let Some(v6) = host.strip_prefix(b"[") {
            match v6.strip_suffix(b"]") {
                Some(inner) => host = inner,
                None => {
                    host = v6;
                    ok = false;
                }
            }
        }
        if let Some(c) = colon {
            uri.port = lex::parse_u16(part(c + 1, params_at));
            ok &= uri.port.is_some();
        }
        uri.host = Text::new(host);
        (len, ok && !host.is_empty())
    }

    /// The value of URI parameter `name` (case-insensitive), `Some("")` for a flag parameter.
    pub fn param(&self, name: &str) -> Option<Text<'a>> {
        param_in(self.params.as_bytes(), name)
    }
}

/// Finds `name` in a `;`-separated parameter list that does not start with `;`.
fn param_in<'a>(list: &'a [u8], name: &str) -> Option<Text<'a>> {
    list.split(|&b| b == b';').find_map(|param| {
        let (n, v) = lex::split_once(param, b'=');
        lex::trim(n)
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| Text::new(lex::trim(v.unwrap_or_default())))
    })
}

/// Splits `host[:port]` or `[v6]:port`; the port goes into `port` when valid. Returns the host
/// and whether the port (if written) was valid.
pub(crate) fn split_host_port<'a>(hostport: &'a [u8], port: &mut Option<u16>) -> (&'a [u8], bool) {
    let hostport = lex::trim(hostport);
    let (host, port_text) = if let Some(v6) = hostport.strip_prefix(b"[") {
        match lex::find(v6, b']') {
            Some(close) => {
                let after = v6.get(close + 1..).unwrap_or_default();
                (
                    v6.get(..close).unwrap_or_default(),
                    after.strip_prefix(b":"),
                )
            }
            None => return (v6, false),
        }
    } else {
        let (host, port_text) = lex::split_once(hostport, b':');
        (host, port_text)
    };
    match port_text {
        None => (host, true),
        Some(text) => {
            *port = lex::parse_u16(lex::trim(text));
            (host, port.is_some())
        }
    }
}

fn non_empty(s: &[u8]) -> Option<Text<'_>> {
    (!s.is_empty()).then(|| Text::new(s))
}

/// The `name-addr` / `addr-spec` form used by From, To, Contact, P-Asserted-Identity and
/// Remote-Party-ID: optional display name, URI, header parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NameAddr<'a> {
    /// The first element of the header value, as written.
    pub raw: Text<'a>,
    /// The display name: the text inside the quotes (escapes such as `\"` left as written) or the
    /// unquoted token sequence before `<`.
    pub display_name: Option<Text<'a>>,
    /// The URI. Without angle brackets, parameters after the URI belong to the header (RFC 3261
    /// §20.10), so `;tag=` never ends up in the URI.
    pub uri: Uri<'a>,
    /// The `tag` header parameter.
    pub tag: Option<Text<'a>>,
    /// Header parameters after the URI, starting with `;` (e.g. `;tag=1;expires=60`).
    pub params: Text<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses the first element of a header value leniently.
    pub fn parse(value: &'a [u8]) -> NameAddr<'a> {
        Self::parse_checked(value).0
    }

    /// Parses and tells whether the URI was well-formed (see [`Uri::parse_checked`]) and the
    /// brackets closed.
    pub(crate) fn parse_checked(value: &'a [u8]) -> (NameAddr<'a>, bool) {
        let mut out = NameAddr::default();
        let ok = Self::parse_into(&mut out, value);
        (out, ok)
    }

    /// [`NameAddr::parse_checked`] writing into `out` (which must be `NameAddr::default()`), so
    /// that the large result is built where it is stored.
    pub(crate) fn parse_into(out: &mut NameAddr<'a>, value: &'a [u8]) -> bool {
        let value = lex::trim(value);
        let mut ok = true;
        // Every slice below is a suffix of `value` up to the URI, so the element's end can be
        // computed from the remaining length without a separate pass for the list separator.
        let rest = match value.split_first() {
            Some((b'"', quoted)) => {
                let close = closing_quote(quoted);
                out.display_name = Some(Text::new(quoted.get(..close).unwrap_or(quoted)));
                if close >= quoted.len() {
                    ok = false;
                }
                lex::trim_start(quoted.get(close + 1..).unwrap_or_default())
            }
            Some((b'<', _)) => value,
            _ => {
                // A `<` before any `,` opens this element's URI; a token display name precedes it.
                match value.iter().position(|&b| b == b'<' || b == b',') {
                    Some(lt) if value.get(lt) == Some(&b'<') => {
                        out.display_name =
                            non_empty(lex::trim(value.get(..lt).unwrap_or_default()));
                        value.get(lt..).unwrap_or_default()
                    }
                    _ => value,
                }
            }
        };
        let (uri_ok, after_uri) = if let Some(inner) = rest.strip_prefix(b"<") {
            let inner = lex::trim_start(inner);
            let (len, uri_ok) = Uri::scan_into(&mut out.uri, inner, UriEnd::Bracket);
            let after = inner.get(len..).unwrap_or_default();
            match after.strip_prefix(b">") {
                Some(after) => (uri_ok, after),
                None => {
                    ok = false;
                    (uri_ok, after)
                }
            }
        } else if rest.first() == Some(&b'*') {
            out.uri.raw = Text::new(rest.get(..1).unwrap_or_default());
            (true, rest.get(1..).unwrap_or_default())
        } else {
            let (len, uri_ok) = Uri::scan_into(&mut out.uri, rest, UriEnd::Bare);
            (uri_ok, rest.get(len..).unwrap_or_default())
        };
        let (params_len, tag) = lex::scan_params(after_uri, b"tag");
        let params = after_uri.get(..params_len).unwrap_or_default();
        let element_end = value.len().saturating_sub(after_uri.len()) + params_len;
        out.raw = Text::new(lex::trim_end(value.get(..element_end).unwrap_or(value)));
        out.params = Text::new(lex::trim(params));
        out.tag = tag.map(Text::new);
        ok && uri_ok
    }

    /// The value of header parameter `name` (case-insensitive), `Some("")` for a flag.
    pub fn param(&self, name: &str) -> Option<Text<'a>> {
        lex::params(self.params.as_bytes())
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| Text::new(v))
    }
}

/// Index of the closing `"` in `s` (which starts just after the opening quote), honouring `\`
/// escapes; `s.len()` when unterminated.
fn closing_quote(s: &[u8]) -> usize {
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return i;
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<Text<'_>> {
        Some(Text::from(s))
    }

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse(b"sip:alice:secret@example.com:5061;transport=tcp;lr?subject=x");
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, t("alice"));
        assert_eq!(u.password, t("secret"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.params, "transport=tcp;lr");
        assert_eq!(u.headers, "subject=x");
        assert_eq!(u.param("TRANSPORT"), t("tcp"));
        assert_eq!(u.param("lr"), t(""));
        assert_eq!(u.param("maddr"), None);
    }

    #[test]
    fn ipv6_user_params_missing_user() {
        let u = Uri::parse(b"sips:+31201234567;npdi;rn=+3120@[2001:db8::1]:5060;user=phone");
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, t("+31201234567"));
        assert_eq!(u.user_params, t("npdi;rn=+3120"));
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.params, "user=phone");

        let u = Uri::parse(b"sip:[::1]");
        assert_eq!((u.host, u.port), (Text::from("::1"), None));

        let u = Uri::parse(b"sip:proxy.example.com");
        assert_eq!(u.user, None);
        assert_eq!(u.host, "proxy.example.com");
    }

    #[test]
    fn tel_and_other_schemes() {
        let u = Uri::parse(b"tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, t("+1-201-555-0123"));
        assert_eq!(u.host, "");
        assert_eq!(u.params, "phone-context=example.com");
        let u = Uri::parse(b"urn:service:sos");
        assert_eq!((u.scheme, u.user), (Scheme::Other, None));
    }

    #[test]
    fn checked_flags_bad_uris() {
        assert!(!Uri::parse_checked(b"sip:alice@").1);
        assert!(!Uri::parse_checked(b"sip:host:99999").1);
        assert!(!Uri::parse_checked(b"sip:[::1").1);
        assert!(Uri::parse_checked(b"sip:host:5060").1);
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(br#""Bob \"the <boss>\"" <sip:bob@b.example>;tag=x1"#);
        assert_eq!(n.display_name, t(r#"Bob \"the <boss>\""#));
        assert_eq!(n.uri.user, t("bob"));
        assert_eq!(n.uri.host, "b.example");
        assert_eq!(n.tag, t("x1"));

        let n = NameAddr::parse(b"Alice Smith <sip:alice@a.example;transport=udp>;TAG=9");
        assert_eq!(n.display_name, t("Alice Smith"));
        assert_eq!(n.uri.params, "transport=udp");
        assert_eq!(n.tag, t("9"));

        // addr-spec: ;tag belongs to the header, not to the URI.
        let n = NameAddr::parse(b"sip:carol@c.example;tag=abc");
        assert_eq!(n.uri.raw, "sip:carol@c.example");
        assert_eq!(n.uri.params, "");
        assert_eq!(n.tag, t("abc"));
        assert_eq!(n.display_name, None);

        let n = NameAddr::parse(b"<sip:a@x>;expires=60, <sip:b@y>");
        assert_eq!(n.uri.user, t("a"));
        assert_eq!(n.param("expires"), t("60"));

        let (n, ok) = NameAddr::parse_checked(b"*");
        assert!(ok);
        assert_eq!(n.uri.raw, "*");
        assert!(!NameAddr::parse_checked(b"<sip:a@x").1);
        assert!(!NameAddr::parse_checked(b"\"unterminated <sip:a@x>").1);
    }
}
