//! Every SIP payload captured from Kamailio (HEP3 over UDP and over TCP) is indexed and compared
//! with an independent, regex-based extractor written only for this test.

mod common;

use regex::Regex;
use sip::{Indexer, IndexerConfig, SipMessage, StartLine};

/// The oracle: plain regular expressions over the message text, no shared code with the crate.
struct Oracle {
    request: Regex,
    response: Regex,
    header: Regex,
    sip_uri: Regex,
    tag: Regex,
    branch: Regex,
    username: Regex,
    via_sent_by: Regex,
    sdp_c: Regex,
    sdp_m: Regex,
}

/// What the oracle expects for one message.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    method: Option<String>,
    status: Option<u16>,
    ruri_user: Option<String>,
    ruri_host: Option<String>,
    call_id: Option<String>,
    cseq: Option<(u32, String)>,
    from: (Option<String>, Option<String>, Option<String>),
    to: (Option<String>, Option<String>, Option<String>),
    contact_user: Option<String>,
    via: (Option<String>, Option<String>, Option<String>),
    user_agent: Option<String>,
    server: Option<String>,
    auth_user: Option<String>,
    content_type: Option<String>,
    content_length: Option<usize>,
    expires: Option<u32>,
    max_forwards: Option<u32>,
    body: String,
    header_count: usize,
    sdp_connection: Option<String>,
    sdp_media: Vec<(String, u16, String, Vec<u8>)>,
}

impl Oracle {
    fn new() -> Self {
        let re = |s: &str| Regex::new(s).expect("test regex");
        Oracle {
            request: re(r"^([A-Z]+) (\S+) SIP/2\.0\r\n"),
            response: re(r"^SIP/2\.0 (\d{3}) [^\r\n]*\r\n"),
            header: re(r"(?m)^([A-Za-z0-9-]+)[ \t]*:[ \t]*([^\r\n]*)\r$"),
            sip_uri: re(r"sips?:(?:([^@;>:]+)(?::[^@]*)?@)?([^:;>?]+)"),
            tag: re(r">?;tag=([^;>\s]+)"),
            branch: re(r"branch=([^;,\s]+)"),
            username: re(r#"username="([^"]*)""#),
            via_sent_by: re(r"^SIP/2\.0/([A-Z]+) ([^:;]+)"),
            sdp_c: re(r"(?m)^c=IN IP[46] ([^\r/]+)\r?$"),
            sdp_m: re(r"(?m)^m=(\w+) (\d+) (\S+) ([^\r\n]*)\r?$"),
        }
    }

    fn first(&self, headers: &[(String, String)], names: &[&str]) -> Option<String> {
        headers
            .iter()
            .find(|(n, _)| names.iter().any(|want| n.eq_ignore_ascii_case(want)))
            .map(|(_, v)| v.clone())
    }

    fn name_addr(&self, value: Option<String>) -> (Option<String>, Option<String>, Option<String>) {
        let Some(value) = value else {
            return (None, None, None);
        };
        let uri = self.sip_uri.captures(&value);
        let user = uri
            .as_ref()
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned());
        let host = uri
            .as_ref()
            .and_then(|c| c.get(2))
            .map(|m| m.as_str().to_owned());
        let tag = self.tag.captures(&value).map(|c| c[1].to_owned());
        (user, host, tag)
    }

    fn expect(&self, text: &str) -> Expected {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .expect("samples have a header end");
        let head = format!("{head}\r\n");
        let mut e = Expected {
            body: body.to_owned(),
            ..Expected::default()
        };
        if let Some(c) = self.request.captures(&head) {
            e.method = Some(c[1].to_owned());
            let uri = self.sip_uri.captures(&c[2]).expect("sip request uri");
            e.ruri_user = uri.get(1).map(|m| m.as_str().to_owned());
            e.ruri_host = Some(uri[2].to_owned());
        } else if let Some(c) = self.response.captures(&head) {
            e.status = Some(c[1].parse().expect("3 digits"));
        }
        let headers: Vec<(String, String)> = self
            .header
            .captures_iter(&head)
            .map(|c| (c[1].to_owned(), c[2].trim_end().to_owned()))
            .collect();
        e.header_count = headers.len();
        e.call_id = self.first(&headers, &["Call-ID", "i"]);
        e.cseq = self.first(&headers, &["CSeq"]).map(|v| {
            let (n, m) = v.split_once(' ').expect("cseq");
            (n.parse().expect("cseq number"), m.trim().to_owned())
        });
        e.from = self.name_addr(self.first(&headers, &["From", "f"]));
        e.to = self.name_addr(self.first(&headers, &["To", "t"]));
        e.contact_user = self.name_addr(self.first(&headers, &["Contact", "m"])).0;
        if let Some(via) = self.first(&headers, &["Via", "v"]) {
            let first = via.split(',').next().unwrap_or_default().trim().to_owned();
            let sent_by = self.via_sent_by.captures(&first).expect("via sent-by");
            e.via = (
                Some(sent_by[1].to_owned()),
                Some(sent_by[2].to_owned()),
                self.branch.captures(&first).map(|c| c[1].to_owned()),
            );
        }
        e.user_agent = self.first(&headers, &["User-Agent"]);
        e.server = self.first(&headers, &["Server"]);
        e.auth_user = self
            .first(&headers, &["Authorization", "Proxy-Authorization"])
            .and_then(|v| self.username.captures(&v).map(|c| c[1].to_owned()));
        e.content_type = self.first(&headers, &["Content-Type", "c"]);
        e.content_length = self
            .first(&headers, &["Content-Length", "l"])
            .map(|v| v.trim().parse().expect("content length"));
        e.expires = self
            .first(&headers, &["Expires"])
            .map(|v| v.parse().expect("expires"));
        e.max_forwards = self
            .first(&headers, &["Max-Forwards"])
            .map(|v| v.parse().expect("max-forwards"));
        if e.content_type.as_deref() == Some("application/sdp") {
            e.sdp_connection = self.sdp_c.captures(body).map(|c| c[1].to_owned());
            e.sdp_media = self
                .sdp_m
                .captures_iter(body)
                .map(|c| {
                    let pts = c[4].split(' ').map(|p| p.parse().expect("pt")).collect();
                    (
                        c[1].to_owned(),
                        c[2].parse().expect("port"),
                        c[3].to_owned(),
                        pts,
                    )
                })
                .collect();
        }
        e
    }
}

fn s(t: Option<sip::Text<'_>>) -> Option<String> {
    t.map(|t| t.to_str_lossy().into_owned())
}

/// Reads the same facts back from the index.
fn actual(m: &SipMessage<'_>) -> Expected {
    let na = |n: &Option<sip::NameAddr<'_>>| {
        (
            n.as_ref().and_then(|n| s(n.uri.user)),
            n.as_ref().map(|n| n.uri.host.to_str_lossy().into_owned()),
            n.as_ref().and_then(|n| s(n.tag)),
        )
    };
    let sdp = m.sdp.as_ref();
    Expected {
        method: s(m.method()),
        status: m.status_code(),
        ruri_user: s(m.ruri_user()),
        ruri_host: s(m.ruri_domain()),
        call_id: s(m.call_id),
        cseq: m
            .cseq
            .map(|c| (c.number, c.method.to_str_lossy().into_owned())),
        from: na(&m.from),
        to: na(&m.to),
        contact_user: s(m.contact_user()),
        via: m.via.map_or((None, None, None), |v| {
            (s(Some(v.transport)), s(Some(v.host)), s(v.branch))
        }),
        user_agent: s(m.user_agent),
        server: s(m.server),
        auth_user: s(m.auth_user),
        content_type: s(m.content_type),
        content_length: m.content_length,
        expires: m.expires,
        max_forwards: m.max_forwards,
        body: m.body.to_str_lossy().into_owned(),
        header_count: m.headers().count(),
        sdp_connection: sdp.and_then(|sdp| s(sdp.connection)),
        sdp_media: sdp.map_or_else(Vec::new, |sdp| {
            sdp.media
                .iter()
                .map(|md| {
                    (
                        md.media.to_str_lossy().into_owned(),
                        md.port,
                        md.protocol.to_str_lossy().into_owned(),
                        md.payload_types().collect(),
                    )
                })
                .collect()
        }),
    }
}

fn check_dir(dir: &str) -> usize {
    let oracle = Oracle::new();
    let indexer = Indexer::new(IndexerConfig::default()).expect("default config");
    let payloads = common::sip_payloads(dir);
    for (i, payload) in payloads.iter().enumerate() {
        let text = std::str::from_utf8(payload).expect("sample SIP is UTF-8");
        let m = indexer.index(payload);
        assert!(
            m.diagnostics.is_empty(),
            "{dir} #{i}: {:?}\n{text}",
            m.diagnostics
        );
        assert_eq!(actual(&m), oracle.expect(text), "{dir} #{i}\n{text}");
        assert_eq!(m.header_len + m.body.len(), payload.len(), "{dir} #{i}");
        // The stream framing agrees with the datagram boundaries.
        assert_eq!(
            sip::message_len(payload, 65_536),
            Ok(Some(payload.len())),
            "{dir} #{i}"
        );
        // Serialization works on every real message.
        let json = serde_json::to_value(&m).expect("serialize");
        assert_eq!(json["call_id"], serde_json::json!(s(m.call_id)));
    }
    payloads.len()
}

#[test]
fn kamailio_hep3_udp_samples_match_the_oracle() {
    // The README: 282 SIP messages in this capture.
    assert_eq!(check_dir("kamailio-hep3-udp"), 282);
}

#[test]
fn kamailio_hep3_tcp_samples_match_the_oracle() {
    assert!(check_dir("kamailio-hep3-tcp") > 0);
}

#[test]
fn samples_cover_the_interesting_shapes() {
    // Guard against a vacuous comparison: the sample set must exercise SDP, auth, multi-value
    // Via and every kind of start line the oracle checks.
    let payloads = common::sip_payloads("kamailio-hep3-udp");
    let msgs: Vec<_> = payloads.iter().map(|p| sip::index(p)).collect();
    assert!(msgs.iter().filter(|m| m.sdp.is_some()).count() >= 20);
    assert!(msgs.iter().filter(|m| m.auth_user.is_some()).count() >= 5);
    assert!(msgs.iter().any(|m| m.via.is_some_and(|v| v.raw.len()
        < m.headers()
            .find(|h| h.is("Via"))
            .map_or(0, |h| h.value.len()))));
    for method in ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS"] {
        assert!(
            msgs.iter().any(|m| m.method().is_some_and(|x| x == method)),
            "{method}"
        );
    }
    for code in [100, 180, 200, 401, 403, 404, 408, 486, 487] {
        assert!(msgs.iter().any(|m| m.status_code() == Some(code)), "{code}");
    }
}

#[test]
fn bench_data_files_are_what_they_claim() {
    let invite = common::data_file("invite_sdp.sip");
    let m = sip::index(&invite);
    assert_eq!(
        m.method().map(|t| t.to_str_lossy().into_owned()).as_deref(),
        Some("INVITE")
    );
    let sdp = m.sdp.as_ref().expect("INVITE with SDP");
    assert_eq!(sdp.media[0].port, 17020);
    assert_eq!(sdp.media[0].rtcp_port, 17021);
    assert_eq!(
        sdp.media[0].payload_types().collect::<Vec<_>>(),
        vec![0, 8, 101]
    );
    assert_eq!(
        m.from.and_then(|f| f.display_name),
        Some(sip::Text::from("caller201"))
    );

    let register = common::data_file("register_auth.sip");
    let m = sip::index(&register);
    assert_eq!(m.auth_user, Some(sip::Text::from("alice")));
    assert_eq!(m.expires, Some(300));
    assert_eq!(m.cseq.map(|c| c.number), Some(2));

    let ok = common::data_file("ok_invite_sdp.sip");
    let m = sip::index(&ok);
    assert_eq!(
        m.start_line,
        StartLine::Response {
            code: 200,
            reason: sip::Text::from("OK")
        }
    );
    assert_eq!(m.cseq_method(), Some(sip::Text::from("INVITE")));
    assert_eq!(
        m.via_branch(),
        Some(sip::Text::from(
            "z9hG4bK5104.0d7392ff3f803e0f01a7999cba665276.0"
        ))
    );
    assert_eq!(m.sdp.map(|s| s.media[0].port), Some(16000));
    for m in [&invite, &register, &ok].map(|p| sip::index(p)) {
        assert!(m.diagnostics.is_empty());
    }
}
