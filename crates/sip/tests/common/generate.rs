//! proptest generator of well-formed SIP messages together with the values they carry, so a
//! test can check that indexing gives back exactly what was generated.

use proptest::prelude::*;

/// How a header host is written.
#[derive(Clone, Debug)]
pub enum Host {
    /// `example.com`
    Domain(String),
    /// `192.0.2.1`
    V4(String),
    /// `[2001:db8::1]` (stored without brackets)
    V6(String),
}

impl Host {
    /// The host as the indexer reports it (IPv6 without brackets).
    pub fn bare(&self) -> &str {
        match self {
            Host::Domain(s) | Host::V4(s) | Host::V6(s) => s,
        }
    }

    /// The host as written in a URI or Via.
    pub fn written(&self) -> String {
        match self {
            Host::V6(s) => format!("[{s}]"),
            Host::Domain(s) | Host::V4(s) => s.clone(),
        }
    }
}

/// A display name variant.
#[derive(Clone, Debug)]
pub enum Display {
    /// No display name.
    None,
    /// `Alice Smith <sip:...>`
    Token(String),
    /// `"A <x> \"y\"" <sip:...>`; the string is the text between the quotes as written.
    Quoted(String),
    /// No angle brackets at all: `sip:user@host;tag=x`.
    AddrSpec,
}

/// The values of one generated message.
#[derive(Clone, Debug)]
pub struct Fields {
    /// `Some(method)` for a request, `None` for a response.
    pub method: Option<String>,
    /// Status code for a response.
    pub status: u16,
    /// Request-URI user.
    pub ruri_user: Option<String>,
    /// Request-URI host.
    pub ruri_host: Host,
    /// Request-URI port.
    pub ruri_port: Option<u16>,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method.
    pub cseq_method: String,
    /// From display form.
    pub from_display: Display,
    /// From user.
    pub from_user: String,
    /// From host.
    pub from_host: Host,
    /// From tag.
    pub from_tag: String,
    /// To user.
    pub to_user: String,
    /// To host.
    pub to_host: Host,
    /// To tag.
    pub to_tag: Option<String>,
    /// Via transport.
    pub via_transport: String,
    /// Via host.
    pub via_host: Host,
    /// Via port.
    pub via_port: Option<u16>,
    /// Via branch.
    pub via_branch: String,
    /// A second Via value in the same header.
    pub second_via: bool,
    /// Contact user.
    pub contact_user: String,
    /// Contact host.
    pub contact_host: Host,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// SDP audio port, when the message has an SDP body.
    pub sdp_port: Option<u16>,
    /// Number of extra `X-` headers.
    pub extra_headers: usize,
}

/// How the message is written.
#[derive(Clone, Debug)]
pub struct Style {
    /// CRLF (true) or bare LF line ends.
    pub crlf: bool,
    /// Per header: use the compact form where one exists.
    pub compact: [bool; 8],
    /// Per header: 0 as written, 1 lower case, 2 upper case.
    pub case: [u8; 16],
    /// Fold From and CSeq over two lines.
    pub fold: bool,
    /// Permutation seed for the header order.
    pub order: Vec<usize>,
}

impl Style {
    /// What a conservative parser accepts: CRLF, long forms, no folding; the header order and
    /// name case still vary.
    pub fn plain(case: [u8; 16], order: Vec<usize>) -> Style {
        Style {
            crlf: true,
            compact: [false; 8],
            case,
            fold: false,
            order,
        }
    }
}

/// Which inputs to generate: everything the indexer handles, or only what rsip 0.4 parses (it
/// rejects bracketed IPv6 hosts and quoted display names holding `<` or `\"`, and reads a user
/// containing `.` as part of the host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// Everything the indexer is meant to handle.
    Full,
    /// The subset rsip 0.4 parses correctly.
    RsipCompatible,
}

fn host(range: Range) -> BoxedStrategy<Host> {
    let domain = "[a-z]{1,10}\\.(com|net|example)".prop_map(Host::Domain);
    let v4 = (1u8..=254, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_map(|(a, b, c, d)| Host::V4(format!("{a}.{b}.{c}.{d}")));
    match range {
        Range::Full => prop_oneof![
            domain,
            v4,
            (1u16..0xffff, any::<u16>())
                .prop_map(|(a, b)| Host::V6(format!("2001:db8:{a:x}::{b:x}"))),
        ]
        .boxed(),
        Range::RsipCompatible => prop_oneof![domain, v4].boxed(),
    }
}

fn user(range: Range) -> BoxedStrategy<String> {
    match range {
        Range::Full => "[a-z0-9+][a-z0-9._]{0,11}".boxed(),
        Range::RsipCompatible => "[a-z0-9+][a-z0-9_]{0,11}".boxed(),
    }
}

fn display(range: Range) -> BoxedStrategy<Display> {
    let quoted = match range {
        Range::Full => "[A-Za-z ]{0,6}(<sip:x@y>|\\\\\"q\\\\\"|,;)?[A-Za-z]{0,4}",
        Range::RsipCompatible => "[A-Za-z][A-Za-z ]{0,6}[A-Za-z]",
    };
    prop_oneof![
        Just(Display::None),
        "[A-Z][a-z]{0,6}( [A-Z][a-z]{0,6})?".prop_map(Display::Token),
        quoted.prop_map(Display::Quoted),
        Just(Display::AddrSpec),
    ]
    .boxed()
}

prop_compose! {
    /// Generates the values of a message.
    pub fn fields(range: Range)(
        method in prop::option::of(prop::sample::select(vec!["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE", "PRACK", "MESSAGE"])),
        status in 100u16..700,
        response_method in prop::sample::select(vec!["INVITE", "BYE", "REGISTER", "OPTIONS"]),
        ruri_user in prop::option::of(user(range)),
        ruri_host in host(range),
        ruri_port in prop::option::of(1u16..),
        call_id in "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{0,30}(@[a-z0-9.]{1,12})?",
        cseq in 0u32..=u32::MAX,
        from_display in display(range),
        from_user in user(range),
        from_host in host(range),
        from_tag in "[A-Za-z0-9.-]{1,16}",
        to_user in user(range),
        to_host in host(range),
        to_tag in prop::option::of("[A-Za-z0-9.-]{1,16}"),
        via_transport in prop::sample::select(vec!["UDP", "TCP", "TLS", "WS", "SCTP"]),
        via_host in host(range),
        via_port in prop::option::of(1u16..),
        via_branch in "z9hG4bK[A-Za-z0-9.-]{1,20}",
        second_via in any::<bool>(),
        contact_user in user(range),
        contact_host in host(range),
        user_agent in prop::option::of("[A-Za-z0-9][A-Za-z0-9 ./-]{0,20}[A-Za-z0-9]"),
        sdp_port in prop::option::of(1u16..65534),
        extra_headers in 0usize..4,
    ) -> Fields {
        let cseq_method = method.unwrap_or(response_method).to_owned();
        Fields {
            method: method.map(str::to_owned),
            status,
            ruri_user,
            ruri_host,
            ruri_port,
            call_id,
            cseq,
            cseq_method,
            from_display,
            from_user,
            from_host,
            from_tag,
            to_user,
            to_host,
            to_tag,
            via_transport: via_transport.to_owned(),
            via_host,
            via_port,
            via_branch,
            second_via,
            contact_user,
            contact_host,
            user_agent,
            sdp_port,
            extra_headers,
        }
    }
}

prop_compose! {
    /// Any writing style: line ends, compact forms, case, folding, order.
    pub fn style()(
        crlf in any::<bool>(),
        compact in any::<[bool; 8]>(),
        case in prop::array::uniform16(0u8..3),
        fold in any::<bool>(),
        order in Just((0..16).collect::<Vec<usize>>()).prop_shuffle(),
    ) -> Style {
        Style { crlf, compact, case, fold, order }
    }
}

prop_compose! {
    /// The style a conservative parser accepts (see [`Style::plain`]).
    pub fn plain_style()(
        case in prop::array::uniform16(0u8..3),
        order in Just((0..16).collect::<Vec<usize>>()).prop_shuffle(),
    ) -> Style {
        Style::plain(case, order)
    }
}

fn port(p: Option<u16>) -> String {
    p.map_or_else(String::new, |p| format!(":{p}"))
}

fn cased(name: &str, case: u8) -> String {
    match case {
        1 => name.to_ascii_lowercase(),
        2 => name.to_ascii_uppercase(),
        _ => name.to_owned(),
    }
}

/// The SDP body for an audio port.
pub fn sdp_body(port: u16, eol: &str) -> String {
    format!("v=0{eol}o=- 1 1 IN IP4 192.0.2.1{eol}s=-{eol}c=IN IP4 192.0.2.1{eol}t=0 0{eol}m=audio {port} RTP/AVP 0 8 101{eol}")
}

/// Writes the message. Content-Length is always written (0 without a body).
pub fn render(f: &Fields, s: &Style) -> Vec<u8> {
    let eol = if s.crlf { "\r\n" } else { "\n" };
    let fold = |a: &str, b: &str| {
        if s.fold {
            format!("{a}{eol} {b}")
        } else {
            format!("{a} {b}")
        }
    };
    let start = match &f.method {
        Some(method) => {
            let user = f
                .ruri_user
                .as_ref()
                .map_or_else(String::new, |u| format!("{u}@"));
            format!(
                "{method} sip:{user}{}{} SIP/2.0",
                f.ruri_host.written(),
                port(f.ruri_port)
            )
        }
        None => format!("SIP/2.0 {} Some Reason", f.status),
    };
    let from_uri = format!("sip:{}@{}", f.from_user, f.from_host.written());
    let from_value = match &f.from_display {
        Display::None => format!("<{from_uri}>;tag={}", f.from_tag),
        Display::Token(name) => fold(name, &format!("<{from_uri}>;tag={}", f.from_tag)),
        Display::Quoted(name) => fold(
            &format!("\"{name}\""),
            &format!("<{from_uri}>;tag={}", f.from_tag),
        ),
        Display::AddrSpec => format!("{from_uri};tag={}", f.from_tag),
    };
    let mut via_value = format!(
        "SIP/2.0/{} {}{};branch={};rport",
        f.via_transport,
        f.via_host.written(),
        port(f.via_port),
        f.via_branch
    );
    if f.second_via {
        via_value.push_str(", SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKsecond");
    }
    let body = f.sdp_port.map(|p| sdp_body(p, eol)).unwrap_or_default();
    // (long name, compact name, value); index into `Style::compact` is the position here.
    let mut headers: Vec<(String, Option<&str>, String)> = vec![
        ("Via".into(), Some("v"), via_value),
        ("From".into(), Some("f"), from_value),
        (
            "To".into(),
            Some("t"),
            format!(
                "<sip:{}@{}>{}",
                f.to_user,
                f.to_host.written(),
                f.to_tag
                    .as_ref()
                    .map_or_else(String::new, |t| format!(";tag={t}"))
            ),
        ),
        ("Call-ID".into(), Some("i"), f.call_id.clone()),
        (
            "CSeq".into(),
            None,
            fold(&f.cseq.to_string(), &f.cseq_method),
        ),
        (
            "Contact".into(),
            Some("m"),
            format!(
                "<sip:{}@{}:5060;transport=udp>;expires=60",
                f.contact_user,
                f.contact_host.written()
            ),
        ),
        ("Content-Length".into(), Some("l"), body.len().to_string()),
        ("Max-Forwards".into(), None, "70".into()),
    ];
    if let Some(ua) = &f.user_agent {
        headers.push(("User-Agent".into(), None, ua.clone()));
    }
    if f.sdp_port.is_some() {
        headers.push(("Content-Type".into(), Some("c"), "application/sdp".into()));
    }
    for i in 0..f.extra_headers {
        headers.push((format!("X-Extra-{i}"), None, format!("value {i}")));
    }
    let mut order: Vec<usize> = s
        .order
        .iter()
        .copied()
        .filter(|&i| i < headers.len())
        .collect();
    order.extend(order.len()..headers.len());
    let mut out = start;
    out.push_str(eol);
    for (slot, &i) in order.iter().enumerate() {
        let Some((long, compact, value)) = headers.get(i) else {
            continue;
        };
        let use_compact = s.compact.get(i).copied().unwrap_or(false) && compact.is_some();
        let name = if use_compact {
            compact.unwrap_or_default().to_owned()
        } else {
            cased(long, s.case.get(slot).copied().unwrap_or(0))
        };
        out.push_str(&format!("{name}: {value}{eol}"));
    }
    out.push_str(eol);
    out.push_str(&body);
    out.into_bytes()
}
