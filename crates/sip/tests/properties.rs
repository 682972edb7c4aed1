//! Property tests: arbitrary input never panics, and generated well-formed messages (random
//! header order, case, compact/long forms, CRLF/LF, folding) index to the generated values.

mod common;

use common::generate::{self, Display, Fields, Range};
use proptest::prelude::*;
use sip::{AlegRule, Indexer, IndexerConfig, SipMessage, Text};

fn configured_indexer() -> Indexer {
    Indexer::new(IndexerConfig {
        custom_headers: vec!["X-Extra-1".into(), "Subject".into()],
        aleg_headers: vec![
            AlegRule::header("X-CID"),
            AlegRule::with_regex("P-Charging-Vector", "icid-value=([^;]+)"),
        ],
        max_headers: 64,
    })
    .expect("valid config")
}

/// Reads every field and checks the structural invariants that hold for any input.
fn touch_everything(m: &SipMessage<'_>, input: &[u8]) {
    assert!(m.header_len <= input.len());
    let body = m.body.as_bytes();
    if !body.is_empty() {
        let start = body.as_ptr() as usize - input.as_ptr() as usize;
        assert!(start >= m.header_len && start + body.len() <= input.len());
    }
    assert!(m.diagnostics.len() <= sip::MAX_DIAGNOSTICS);
    let _ = (
        m.method(),
        m.status_code(),
        m.request_uri(),
        m.ruri_user(),
        m.ruri_domain(),
    );
    let _ = (
        m.from_user(),
        m.from_domain(),
        m.from_tag(),
        m.to_user(),
        m.to_domain(),
        m.to_tag(),
    );
    let _ = (
        m.contact_user(),
        m.contact_domain(),
        m.pid_user(),
        m.via_branch(),
        m.cseq_method(),
    );
    let _ = m.custom_header("X-Extra-1");
    for h in m.headers() {
        let _ = (
            h.kind(),
            h.is("Call-ID"),
            h.value.normalized(),
            h.name.as_str(),
        );
    }
    if let Some(sdp) = &m.sdp {
        assert!(sdp.media.len() <= sip::MAX_SDP_MEDIA);
        for media in &sdp.media {
            let _ = (media.formats().count(), media.payload_types().count());
        }
    }
    serde_json::to_string(m).expect("the index always serializes");
    for d in &m.diagnostics {
        let _ = d.to_string();
    }
}

fn framing_never_panics(input: &[u8], max: usize) {
    if let Ok(Some(n)) = sip::message_len(input, max) {
        assert!(n > 0 && n <= input.len());
    }
    let mut total = 0;
    for frame in sip::split_messages(input) {
        match frame {
            Ok(f) => {
                assert!(!f.is_empty());
                total += f.len();
            }
            Err(_) => break,
        }
    }
    assert!(total <= input.len());
}

fn text(t: Option<Text<'_>>) -> Option<String> {
    t.map(|t| t.to_str_lossy().into_owned())
}

/// Checks that the index gives back the generated values.
fn assert_matches(f: &Fields, m: &SipMessage<'_>, raw: &[u8]) {
    let shown = String::from_utf8_lossy(raw);
    assert!(m.diagnostics.is_empty(), "{:?}\n{shown}", m.diagnostics);
    match &f.method {
        Some(method) => {
            assert_eq!(
                text(m.method()).as_deref(),
                Some(method.as_str()),
                "{shown}"
            );
            assert_eq!(text(m.ruri_user()), f.ruri_user, "{shown}");
            assert_eq!(
                text(m.ruri_domain()).as_deref(),
                Some(f.ruri_host.bare()),
                "{shown}"
            );
            assert_eq!(m.request_uri().and_then(|u| u.port), f.ruri_port, "{shown}");
        }
        None => assert_eq!(m.status_code(), Some(f.status), "{shown}"),
    }
    assert_eq!(
        text(m.call_id).as_deref(),
        Some(f.call_id.as_str()),
        "{shown}"
    );
    assert_eq!(m.cseq.map(|c| c.number), Some(f.cseq), "{shown}");
    assert_eq!(
        text(m.cseq_method()).as_deref(),
        Some(f.cseq_method.as_str()),
        "{shown}"
    );
    let from = m.from.expect("From");
    assert_eq!(
        text(from.uri.user).as_deref(),
        Some(f.from_user.as_str()),
        "{shown}"
    );
    assert_eq!(from.uri.host.to_str_lossy(), f.from_host.bare(), "{shown}");
    assert_eq!(
        text(from.tag).as_deref(),
        Some(f.from_tag.as_str()),
        "{shown}"
    );
    let display = match &f.from_display {
        Display::Token(s) | Display::Quoted(s) => Some(s.clone()),
        Display::None | Display::AddrSpec => None,
    };
    // An empty quoted display name is reported as `Some("")`.
    assert_eq!(text(from.display_name), display, "{shown}");
    assert_eq!(
        text(m.to_user()).as_deref(),
        Some(f.to_user.as_str()),
        "{shown}"
    );
    assert_eq!(
        text(m.to_domain()).as_deref(),
        Some(f.to_host.bare()),
        "{shown}"
    );
    assert_eq!(text(m.to_tag()), f.to_tag, "{shown}");
    let via = m.via.expect("Via");
    assert_eq!(via.transport.to_str_lossy(), f.via_transport, "{shown}");
    assert_eq!(via.host.to_str_lossy(), f.via_host.bare(), "{shown}");
    assert_eq!(via.port, f.via_port, "{shown}");
    assert_eq!(
        text(via.branch).as_deref(),
        Some(f.via_branch.as_str()),
        "{shown}"
    );
    assert_eq!(
        text(m.contact_user()).as_deref(),
        Some(f.contact_user.as_str()),
        "{shown}"
    );
    assert_eq!(
        text(m.contact_domain()).as_deref(),
        Some(f.contact_host.bare()),
        "{shown}"
    );
    assert_eq!(text(m.user_agent), f.user_agent, "{shown}");
    assert_eq!(m.max_forwards, Some(70));
    assert_eq!(
        m.sdp
            .as_ref()
            .map(|s| s.media.first().map(|md| (md.port, md.rtcp_port))),
        f.sdp_port.map(|p| Some((p, p + 1))),
        "{shown}"
    );
    assert_eq!(m.header_len + m.body.len(), raw.len(), "{shown}");
    assert_eq!(
        m.headers().count(),
        8 + usize::from(f.user_agent.is_some())
            + usize::from(f.sdp_port.is_some())
            + f.extra_headers
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2048), max in 0usize..4096) {
        let m = configured_indexer().index(&input);
        touch_everything(&m, &input);
        touch_everything(&sip::index(&input), &input);
        framing_never_panics(&input, max);
    }

    #[test]
    fn sip_shaped_noise_never_panics(
        start in prop::sample::select(vec!["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "\r\n", "ACK tel:1 SIP/2.0", ""]),
        lines in prop::collection::vec(
            prop_oneof![
                "(Via|v|From|f|To|t|Call-ID|i|CSeq|Contact|m|Content-Length|l|Content-Type|c|Authorization|Reason|P-Asserted-Identity|Remote-Party-ID|Expires|Max-Forwards|X-CID|P-Charging-Vector|Subject)[ \t]*:[ -~\t]{0,60}",
                "[ \t][ -~]{0,20}",
                "[ -~]{0,30}",
                "(m|c|a)=[ -~]{0,40}",
                "--[a-z]{0,4}",
            ],
            0..24,
        ),
        eol in prop::sample::select(vec!["\r\n", "\n", "\r"]),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut input = start.as_bytes().to_vec();
        for line in &lines {
            input.extend_from_slice(eol.as_bytes());
            input.extend_from_slice(line.as_bytes());
        }
        input.extend_from_slice(&tail);
        let m = configured_indexer().index(&input);
        touch_everything(&m, &input);
        framing_never_panics(&input, 1 << 16);
    }

    #[test]
    fn generated_messages_index_to_their_values(f in generate::fields(Range::Full), style in generate::style()) {
        let raw = generate::render(&f, &style);
        assert_matches(&f, &sip::index(&raw), &raw);
        assert_matches(&f, &configured_indexer().index(&raw), &raw);
    }

    #[test]
    fn generated_messages_frame_exactly(
        msgs in prop::collection::vec((generate::fields(Range::Full), generate::style()), 1..4),
        keepalives in prop::collection::vec(prop::sample::select(vec!["", "\r\n", "\r\n\r\n"]), 4),
        cut in any::<prop::sample::Index>(),
    ) {
        let rendered: Vec<Vec<u8>> = msgs.iter().map(|(f, s)| generate::render(f, s)).collect();
        let mut stream = Vec::new();
        for (i, msg) in rendered.iter().enumerate() {
            stream.extend_from_slice(keepalives[i % keepalives.len()].as_bytes());
            stream.extend_from_slice(msg);
        }
        let frames: Vec<&[u8]> = sip::split_messages(&stream).collect::<Result<_, _>>().expect("frames");
        prop_assert_eq!(frames.len(), rendered.len());
        for (frame, msg) in frames.iter().zip(&rendered) {
            prop_assert_eq!(*frame, msg.as_slice());
        }
        // Any strict prefix of a message needs more bytes.
        let first = &rendered[0];
        let cut = cut.index(first.len());
        prop_assert_eq!(sip::message_len(&first[..cut], 1 << 20), Ok(None));
        prop_assert_eq!(sip::message_len(first, 1 << 20), Ok(Some(first.len())));
    }

    #[test]
    fn damaged_messages_never_panic(
        f in generate::fields(Range::Full),
        style in generate::style(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut raw = generate::render(&f, &style);
        for (at, byte) in edits {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        let m = configured_indexer().index(&raw);
        touch_everything(&m, &raw);
        framing_never_panics(&raw, 1 << 16);
    }
}

/// `Text::normalized` as specified: invalid UTF-8 replaced by U+FFFD, then every line break
/// with the spaces and tabs after it replaced by one space, unless a space or tab precedes it.
fn normalized_by_spec(bytes: &[u8]) -> String {
    let chars: Vec<char> = String::from_utf8_lossy(bytes).chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i], '\r' | '\n') {
            // A fold: the line breaks and the blanks after them, up to the next text.
            let text = (i..chars.len())
                .find(|&j| !matches!(chars[j], '\r' | '\n' | ' ' | '\t'))
                .unwrap_or(chars.len());
            if text < chars.len() && !out.ends_with([' ', '\t']) {
                out.push(' ');
            }
            i = text;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

proptest! {
    /// The plain-ASCII fast path and the general path agree with the specification, on spans
    /// of every length around the 8-byte word size, with line breaks, tabs and non-ASCII bytes
    /// anywhere.
    #[test]
    fn normalized_matches_its_specification(
        bytes in prop::collection::vec(
            prop_oneof![
                8 => 0x21u8..0x7f,
                1 => Just(b'\r'),
                1 => Just(b'\n'),
                1 => Just(b' '),
                1 => Just(b'\t'),
                1 => 0x80u8..=0xff,
            ],
            0..40,
        )
    ) {
        prop_assert_eq!(Text::new(&bytes).normalized(), normalized_by_spec(&bytes));
    }
}
