//! Differential test against `rsip` 0.4, a mature nom-based SIP parser, over the real samples and
//! proptest-generated messages.
//!
//! Compared: method / status code, Call-ID, CSeq number and method, From / To user, host and tag,
//! Request-URI user and host, top Via branch, Contact user.
//!
//! Intentional divergences, kept out of the comparison:
//! * rsip knows no compact header forms, no folding and no bare-LF line ends, so the generated
//!   messages fed to it use long forms and CRLF only ([`generate::plain_style`]); those features
//!   are covered against the generated values in `properties.rs`.
//! * rsip reports the user part of `sip:+3120;npdi@host` as `+3120;npdi`; the indexer splits off
//!   the user parameters ([`sip::Uri::user_params`]). The generator makes no user parameters.
//! * rsip 0.4 rejects bracketed IPv6 hosts (`sip:a@[2001:db8::1]`) and quoted display names that
//!   hold `<` or an escaped quote, and it reads a user containing `.` (`sip:1.2@host`) as part of
//!   the host. The indexer handles all of these (tested in `edge_cases.rs` and `properties.rs`);
//!   the messages generated for this comparison avoid them ([`Range::RsipCompatible`]).

mod common;

use common::generate::{self, Range};
use proptest::prelude::*;
use rsip::prelude::*;

/// The compared facts, as owned strings.
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    first_line: String,
    ruri: Option<(Option<String>, String)>,
    call_id: String,
    cseq: (u32, String),
    from: (Option<String>, String, Option<String>),
    to: (Option<String>, String, Option<String>),
    via_branch: Option<String>,
    contact_user: Option<String>,
}

fn ours(raw: &[u8]) -> Facts {
    let m = sip::index(raw);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    let s = |t: sip::Text<'_>| t.to_str_lossy().into_owned();
    let party = |n: Option<sip::NameAddr<'_>>| {
        let n = n.expect("From/To present");
        (n.uri.user.map(s), s(n.uri.host), n.tag.map(s))
    };
    Facts {
        first_line: match (m.method(), m.status_code()) {
            (Some(method), _) => s(method),
            (None, Some(code)) => code.to_string(),
            (None, None) => String::new(),
        },
        ruri: m.request_uri().map(|u| (u.user.map(s), s(u.host))),
        call_id: s(m.call_id.expect("Call-ID")),
        cseq: m.cseq.map(|c| (c.number, s(c.method))).expect("CSeq"),
        from: party(m.from),
        to: party(m.to),
        via_branch: m.via_branch().map(s),
        contact_user: m.contact_user().map(s),
    }
}

fn theirs(raw: &[u8]) -> Facts {
    let msg = rsip::SipMessage::try_from(raw).expect("rsip parses the message");
    let (first_line, ruri) = match &msg {
        rsip::SipMessage::Request(req) => (
            req.method().to_string(),
            Some((
                req.uri().user().map(str::to_owned),
                req.uri().host().to_string(),
            )),
        ),
        rsip::SipMessage::Response(resp) => (resp.status_code().code().to_string(), None),
    };
    let from = msg
        .from_header()
        .expect("From")
        .typed()
        .expect("typed From");
    let to = msg.to_header().expect("To").typed().expect("typed To");
    let cseq = msg
        .cseq_header()
        .expect("CSeq")
        .typed()
        .expect("typed CSeq");
    let via = msg.via_header().expect("Via").typed().expect("typed Via");
    let contact = msg
        .contact_header()
        .ok()
        .map(|c| c.typed().expect("typed Contact"));
    Facts {
        first_line,
        ruri,
        call_id: msg.call_id_header().expect("Call-ID").value().to_owned(),
        cseq: (cseq.seq, cseq.method.to_string()),
        from: (
            from.uri.user().map(str::to_owned),
            from.uri.host().to_string(),
            from.tag().map(|t| t.value().to_owned()),
        ),
        to: (
            to.uri.user().map(str::to_owned),
            to.uri.host().to_string(),
            to.tag().map(|t| t.value().to_owned()),
        ),
        via_branch: via.branch().map(|b| b.value().to_owned()),
        contact_user: contact.and_then(|c| c.uri.user().map(str::to_owned)),
    }
}

#[test]
fn samples_agree_with_rsip() {
    let mut compared = 0;
    for dir in ["kamailio-hep3-udp", "kamailio-hep3-tcp"] {
        for (i, raw) in common::sip_payloads(dir).iter().enumerate() {
            assert_eq!(
                ours(raw),
                theirs(raw),
                "{dir} #{i}\n{}",
                String::from_utf8_lossy(raw)
            );
            compared += 1;
        }
    }
    assert!(compared >= 282);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_messages_agree_with_rsip(f in generate::fields(Range::RsipCompatible), style in generate::plain_style()) {
        let raw = generate::render(&f, &style);
        prop_assert_eq!(ours(&raw), theirs(&raw), "{}", String::from_utf8_lossy(&raw));
    }
}
