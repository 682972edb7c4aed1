//! Hand-written regression tests for the tricky corners of SIP syntax.

use sip::{
    AlegRule, Diagnostic, Direction, HeaderKind, Indexer, IndexerConfig, Scheme, SplitError,
    StartLine, Text, UriField,
};

fn t(s: &str) -> Option<Text<'_>> {
    Some(Text::from(s))
}

#[test]
fn compact_forms_and_random_case() {
    let msg = b"INVITE sip:bob@b.example SIP/2.0\r\n\
v: SIP/2.0/TCP a.example:5070;branch=z9hG4bKc1\r\n\
f: <sip:alice@a.example>;tag=ft\r\n\
T: <sip:bob@b.example>\r\n\
I: compact-id@a\r\n\
cseq: 7 INVITE\r\n\
M: <sip:alice@10.0.0.1:5070>\r\n\
c: application/sdp\r\n\
L: 48\r\n\
k: timer\r\n\
s: hello\r\n\
\r\n\
v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 7000 RTP/AVP 0\r\n";
    let m = sip::index(msg);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    assert_eq!(m.call_id, t("compact-id@a"));
    assert_eq!(m.from_user(), t("alice"));
    assert_eq!(m.from_tag(), t("ft"));
    assert_eq!(m.to_user(), t("bob"));
    assert_eq!(m.contact_user(), t("alice"));
    assert_eq!(m.contact.map(|c| c.uri.port), Some(Some(5070)));
    assert_eq!(m.via.map(|v| v.transport), t("TCP"));
    assert_eq!(m.via_branch(), t("z9hG4bKc1"));
    assert_eq!(m.content_type, t("application/sdp"));
    assert_eq!(m.content_length, Some(48));
    assert_eq!(m.sdp.as_ref().map(|s| s.media[0].port), Some(7000));
    let kinds: Vec<_> = m.headers().map(|h| h.kind()).collect();
    assert_eq!(kinds[0], Some(HeaderKind::Via));
    assert_eq!(kinds[8], Some(HeaderKind::Supported));
    assert_eq!(kinds[9], Some(HeaderKind::Subject));
    assert!(m.headers().any(|h| h.is("Call-ID") && h.name == "I"));
}

#[test]
fn folded_headers() {
    let msg = b"INVITE sip:bob@b.example SIP/2.0\r\n\
Via: SIP/2.0/UDP a.example;branch=z9hG4bKf,\r\n SIP/2.0/UDP b.example;branch=z9hG4bKg\r\n\
From: \"Alice\"\r\n <sip:alice@a.example>\r\n\t;tag=1\r\n\
To: <sip:bob@b.example>\r\n\
Call-ID: fold@a\r\n\
CSeq: 1\r\n  INVITE\r\n\
Subject: I know you're there,\r\n   pick up the phone\r\n\
\r\n";
    let m = sip::index(msg);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    assert_eq!(m.from.map(|f| f.display_name), Some(t("Alice")));
    assert_eq!(m.from_user(), t("alice"));
    assert_eq!(m.from_tag(), t("1"));
    assert_eq!(
        m.cseq.map(|c| (c.number, c.method)),
        Some((1, Text::from("INVITE")))
    );
    assert_eq!(m.via_branch(), t("z9hG4bKf"));
    let subject = m.headers().find(|h| h.is("Subject")).expect("subject");
    assert!(subject.value.is_folded());
    assert_eq!(
        subject.value.normalized(),
        "I know you're there, pick up the phone"
    );
    let json = serde_json::to_value(&m).expect("serialize");
    assert_eq!(
        json["from"]["raw"],
        "\"Alice\" <sip:alice@a.example> ;tag=1"
    );
}

#[test]
fn bare_lf_line_ends() {
    let msg = b"SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=a\nTo: <sip:b@h>;tag=b\nCall-ID: lf\nCSeq: 1 INVITE\nContent-Length: 3\n\nabc";
    let m = sip::index(msg);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    assert_eq!(m.status_code(), Some(180));
    assert_eq!(m.to_tag(), t("b"));
    assert_eq!(m.body, "abc");
    assert_eq!(m.header_len, msg.len() - 3);
    assert_eq!(sip::message_len(msg, 1000), Ok(Some(msg.len())));
}

#[test]
fn uri_forms_in_headers() {
    let msg = b"MESSAGE sip:+31201234567;npdi;rn=+31209@[2001:db8::1]:5080;user=phone?Subject=x SIP/2.0\r\n\
Via: SIP/2.0/TLS [2001:db8::2]:5061;branch=z9hG4bK6\r\n\
From: sip:carol:secret@c.example;tag=abc\r\n\
To: tel:+1-201-555-0123;phone-context=example.com\r\n\
Contact: <sips:c.example;transport=tls>\r\n\
P-Asserted-Identity: \"Carol\" <tel:+12015550100>, <sip:carol@c.example>\r\n\
Call-ID: uri@c\r\nCSeq: 1 MESSAGE\r\n\r\n";
    let m = sip::index(msg);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    let ruri = m.request_uri().expect("request");
    assert_eq!(ruri.user, t("+31201234567"));
    assert_eq!(ruri.user_params, t("npdi;rn=+31209"));
    assert_eq!(ruri.host, "2001:db8::1");
    assert_eq!(ruri.port, Some(5080));
    assert_eq!(ruri.param("user"), t("phone"));
    assert_eq!(ruri.headers, "Subject=x");
    assert_eq!(
        m.via.map(|v| (v.host, v.port)),
        Some((Text::from("2001:db8::2"), Some(5061)))
    );
    let from = m.from.expect("from");
    assert_eq!(from.uri.user, t("carol"));
    assert_eq!(from.uri.password, t("secret"));
    assert_eq!(from.uri.raw, "sip:carol:secret@c.example");
    assert_eq!(from.tag, t("abc"));
    let to = m.to.expect("to");
    assert_eq!(to.uri.scheme, Scheme::Tel);
    assert_eq!(to.uri.user, t("+1-201-555-0123"));
    // Without angle brackets the parameters belong to the header (RFC 3261 §20.10).
    assert_eq!(to.tag, None);
    assert_eq!(to.param("phone-context"), t("example.com"));
    assert_eq!(to.uri.params, "");
    assert_eq!(m.contact_user(), None);
    assert_eq!(m.contact_domain(), t("c.example"));
    assert_eq!(m.contact.map(|c| c.uri.scheme), Some(Scheme::Sips));
    assert_eq!(m.pid_user(), t("+12015550100"));
}

#[test]
fn quoted_display_names() {
    let msg = br#"BYE sip:x@y SIP/2.0
Via: SIP/2.0/UDP y;branch=z9hG4bKq
From: "Evil <sip:fake@evil> \"quoted\"" <sip:real@good.example>;tag=t1
To: Bob <sip:bob@y>;tag=t2
Call-ID: q
CSeq: 2 BYE

"#;
    let m = sip::index(msg);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    let from = m.from.expect("from");
    assert_eq!(from.display_name, t(r#"Evil <sip:fake@evil> \"quoted\""#));
    assert_eq!(from.uri.user, t("real"));
    assert_eq!(from.uri.host, "good.example");
    assert_eq!(from.tag, t("t1"));
    assert_eq!(m.to.and_then(|t| t.display_name), t("Bob"));
}

#[test]
fn first_occurrence_wins_and_multi_value_via() {
    let msg = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP first;branch=z9hG4bK1, SIP/2.0/UDP second;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP third;branch=z9hG4bK3\r\n\
From: <sip:a@h>;tag=1\r\nFrom: <sip:evil@h>;tag=2\r\n\
To: <sip:b@h>\r\nCall-ID: one\r\ni: two\r\nCSeq: 1 INVITE\r\nCSeq: 2 BYE\r\n\
Contact: <sip:c1@h>;expires=30, <sip:c2@h>\r\n\
User-Agent: ua1\r\nUser-Agent: ua2\r\n\r\n";
    let m = sip::index(msg);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    assert_eq!(m.via.map(|v| v.host), t("first"));
    assert_eq!(m.via_branch(), t("z9hG4bK1"));
    assert_eq!(m.via.map(|v| v.raw), t("SIP/2.0/UDP first;branch=z9hG4bK1"));
    assert_eq!(m.from_user(), t("a"));
    assert_eq!(m.call_id, t("one"));
    assert_eq!(m.cseq.map(|c| c.number), Some(1));
    assert_eq!(m.contact_user(), t("c1"));
    assert_eq!(m.contact.and_then(|c| c.param("expires")), t("30"));
    assert_eq!(m.user_agent, t("ua1"));
}

#[test]
fn auth_reason_rpid_and_numbers() {
    let msg = b"BYE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n\
From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: auth\r\nCSeq: 3 BYE\r\n\
Proxy-Authorization: Digest username=\"proxyuser\", realm=\"h\"\r\n\
Remote-Party-ID: \"A\" <sip:4711@h>;party=calling\r\n\
Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n\
Max-Forwards: 69\r\nExpires: 3600\r\nServer: srv\r\nDiversion: <sip:x@h>;reason=unconditional\r\n\r\n";
    let m = sip::index(msg);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    assert_eq!(m.auth_user, t("proxyuser"));
    assert_eq!(m.pid_user(), t("4711"));
    let reason = m.reason.expect("reason");
    assert_eq!(reason.protocol, "Q.850");
    assert_eq!(reason.cause, t("16"));
    assert_eq!(reason.text, t("Normal call clearing"));
    assert_eq!(reason.raw, "Q.850;cause=16;text=\"Normal call clearing\"");
    assert_eq!((m.max_forwards, m.expires), (Some(69), Some(3600)));
    assert_eq!(m.server, t("srv"));
    assert_eq!(m.diversion, t("<sip:x@h>;reason=unconditional"));
}

#[test]
fn missing_call_id_and_bad_fields() {
    let msg = b"INVITE sip:@ SIP/2.0\r\nCSeq: x INVITE\r\nFrom: <sip:a@h\r\nExpires: soon\r\nContent-Length: many\r\nnot a header\r\n\r\n";
    let m = sip::index(msg);
    assert_eq!(m.method(), t("INVITE"));
    for expected in [
        Diagnostic::BadUri {
            field: UriField::RequestUri,
        },
        Diagnostic::BadCSeq,
        Diagnostic::BadUri {
            field: UriField::From,
        },
        Diagnostic::BadNumber {
            header: HeaderKind::Expires,
        },
        Diagnostic::BadContentLength,
        Diagnostic::MalformedHeaderLine { offset: 91 },
        Diagnostic::MissingCallId,
        Diagnostic::MissingTo,
        Diagnostic::MissingVia,
    ] {
        assert!(
            m.diagnostics.contains(&expected),
            "{expected:?} not in {:?}",
            m.diagnostics
        );
    }
    assert!(
        !m.diagnostics.contains(&Diagnostic::MissingCSeq),
        "BadCSeq already says it"
    );
    assert_eq!(m.call_id, None);
    assert_eq!(m.cseq, None);
    assert_eq!(
        m.from_user(),
        t("a"),
        "partial result despite the missing '>'"
    );
}

#[test]
fn truncated_and_overlong_bodies() {
    let msg = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKt\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: t\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 500\r\n\r\nv=0\r\nm=audio 9 RTP/AVP 0\r\n";
    let m = sip::index(msg);
    assert_eq!(
        m.diagnostics,
        vec![Diagnostic::TruncatedBody {
            declared: 500,
            available: 26
        }]
    );
    assert_eq!(m.body.len(), 26);
    assert_eq!(
        m.sdp.map(|s| s.media.len()),
        Some(1),
        "the SDP present is still summarised"
    );

    let extra = b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKo\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nl: 2\r\n\r\nabTRAILING";
    let m = sip::index(extra);
    assert!(m.diagnostics.is_empty());
    assert_eq!(m.body, "ab");
}

#[test]
fn garbage_empty_and_binary() {
    let m = sip::index(b"");
    assert_eq!(m.diagnostics, vec![Diagnostic::Empty]);
    assert_eq!(m.start_line, StartLine::Invalid);
    let m = sip::index(b"\r\n\r\n");
    assert_eq!(m.diagnostics, vec![Diagnostic::Empty]);

    let m = sip::index(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(m.diagnostics, vec![Diagnostic::BadStartLine]);

    let blob: Vec<u8> = (0..100u32)
        .map(|i| (i.wrapping_mul(151) % 256) as u8)
        .collect();
    let m = sip::index(&blob);
    assert!(m.diagnostics.contains(&Diagnostic::BadStartLine));
    assert!(m.diagnostics.len() <= sip::MAX_DIAGNOSTICS);
    assert_eq!(
        sip::message_len(&blob, 1 << 16),
        Err(SplitError::Garbage { offset: 0 })
    );
    assert!(matches!(
        sip::split_messages(&blob).next(),
        Some(Err(SplitError::Garbage { .. }))
    ));

    let m = sip::index(b"INVITE sip:a@b SIP/2.0");
    assert!(m.diagnostics.contains(&Diagnostic::MissingCallId));
    assert_eq!(m.header_len, 22);
}

#[test]
fn unterminated_header_block() {
    let m = sip::index(b"ACK sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 ACK");
    assert!(m.diagnostics.contains(&Diagnostic::UnterminatedHeaders));
    assert_eq!(m.call_id, t("x"));
    assert_eq!(m.cseq.map(|c| c.number), Some(1));
    assert!(m.body.is_empty());
}

#[test]
fn too_many_headers_are_capped() {
    let mut msg = b"OPTIONS sip:h SIP/2.0\r\n".to_vec();
    for i in 0..50 {
        msg.extend_from_slice(format!("X-Filler-{i}: {i}\r\n").as_bytes());
    }
    msg.extend_from_slice(b"Call-ID: late\r\n\r\nbody");
    let indexer = Indexer::new(IndexerConfig {
        max_headers: 20,
        ..IndexerConfig::default()
    })
    .expect("config");
    let m = indexer.index(&msg);
    assert!(m
        .diagnostics
        .contains(&Diagnostic::TooManyHeaders { max: 20 }));
    assert_eq!(m.call_id, None, "headers past the cap are not indexed");
    assert_eq!(m.body, "body", "but the header end is still found");
}

#[test]
fn custom_headers_and_aleg_rules() {
    let indexer = Indexer::new(IndexerConfig {
        custom_headers: vec!["X-Tenant".into(), "x-missing".into(), "user-agent".into()],
        aleg_headers: vec![
            AlegRule::header("X-CID"),
            AlegRule::with_regex("P-Charging-Vector", "icid-value=([^;]+)"),
        ],
        ..IndexerConfig::default()
    })
    .expect("config");
    let base = "INVITE sip:b@h SIP/2.0\r\nCall-ID: b-leg\r\nx-tenant: acme\r\nX-Tenant: second\r\nUser-Agent: ua\r\n";
    let pcv = "P-Charging-Vector: icid-value=ICID123;icid-generated-at=1.2.3.4\r\n";

    let msg = format!("{base}{pcv}\r\n");
    let m = indexer.index(msg.as_bytes());
    assert_eq!(m.aleg_id, t("ICID123"));
    assert_eq!(m.custom_header("X-TENANT"), t("acme"));
    assert_eq!(m.custom_header("user-agent"), t("ua"));
    assert_eq!(m.custom_header("x-missing"), None);
    assert_eq!(
        &*m.custom_headers[0].name, "X-Tenant",
        "reported under the configured name"
    );
    let json = serde_json::to_value(&m).expect("serialize");
    assert_eq!(json["custom_headers"][0]["name"], "X-Tenant");
    assert_eq!(json["aleg_id"], "ICID123");

    // X-CID has priority even when it comes later in the message.
    let msg = format!("{base}{pcv}X-CID: a-leg-id\r\n\r\n");
    assert_eq!(indexer.index(msg.as_bytes()).aleg_id, t("a-leg-id"));

    // A regex that does not match gives nothing.
    let msg = format!("{base}P-Charging-Vector: orig-ioi=x\r\n\r\n");
    assert_eq!(indexer.index(msg.as_bytes()).aleg_id, None);

    // The default indexer extracts none of it.
    assert!(sip::index(msg.as_bytes()).custom_headers.is_empty());
}

#[test]
fn multipart_sdp_in_a_message() {
    let body = "--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 8\r\na=recvonly\r\n\r\n--b1\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\nxyz\r\n--b1--\r\n";
    let msg = format!(
        "INVITE sip:b@h SIP/2.0\r\nContent-Type: multipart/mixed;boundary=b1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let m = sip::index(msg.as_bytes());
    let sdp = m.sdp.expect("sdp inside multipart");
    assert_eq!(sdp.connection, t("192.0.2.1"));
    assert_eq!(sdp.media[0].direction, Some(Direction::RecvOnly));
    assert_eq!(sdp.media[0].payload_types().collect::<Vec<_>>(), vec![8]);
}

#[test]
fn keepalives_before_messages() {
    let msg = b"\r\n\r\nOPTIONS sip:h SIP/2.0\r\nCall-ID: k\r\n\r\n";
    let m = sip::index(msg);
    assert_eq!(m.method(), t("OPTIONS"));
    assert_eq!(m.call_id, t("k"));
    assert_eq!(m.header_len, msg.len());
    assert_eq!(sip::headers(msg).count(), 1);

    let mut stream = Vec::new();
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(&msg[4..]);
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(b"SIP/2.0 200 OK\r\nCall-ID: k\r\nContent-Length: 2\r\n\r\nhi");
    let frames: Vec<_> = sip::split_messages(&stream)
        .collect::<Result<_, _>>()
        .expect("frames");
    assert_eq!(frames.len(), 2);
    assert_eq!(sip::index(frames[1]).body, "hi");
    assert_eq!(sip::message_len(&stream, 1000), Ok(Some(4)));
    assert!(sip::is_keepalive(&stream[..4]));
}
