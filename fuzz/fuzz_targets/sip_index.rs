//! Fuzzes the SIP indexer (with a custom header and a regex A-leg rule configured), every
//! accessor of its result, and the stream framing functions.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sip::{AlegRule, Indexer, IndexerConfig};

fn indexer() -> &'static Indexer {
    static INDEXER: OnceLock<Indexer> = OnceLock::new();
    INDEXER.get_or_init(|| {
        Indexer::new(IndexerConfig {
            custom_headers: vec!["X-Tenant".into()],
            aleg_headers: vec![
                AlegRule::header("X-CID"),
                AlegRule::with_regex("P-Charging-Vector", "icid-value=([^;]+)"),
            ],
            max_headers: 128,
        })
        .expect("static config is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let m = indexer().index(data);
    assert!(m.header_len <= data.len());
    assert!(m.diagnostics.len() <= sip::MAX_DIAGNOSTICS);
    let _ = (m.is_request(), m.is_response(), m.method(), m.status_code());
    let _ = (m.request_uri().map(|u| (u.param("transport"), u.user_params, u.password)), m.ruri_user(), m.ruri_domain());
    let _ = (m.from_user(), m.from_domain(), m.from_tag(), m.to_user(), m.to_domain(), m.to_tag());
    let _ = (m.contact_user(), m.contact_domain(), m.pid_user(), m.via_branch(), m.cseq_method());
    let _ = (m.custom_header("x-tenant"), m.aleg_id.map(|a| a.normalized()));
    let _ = m.from.map(|f| (f.param("tag"), f.display_name.map(|d| d.to_str_lossy())));
    let _ = m.reason.map(|r| (r.cause, r.text));
    for header in m.headers() {
        let _ = (header.kind(), header.is("Call-ID"), header.value.normalized(), header.name.as_str());
    }
    if let Some(sdp) = &m.sdp {
        for media in &sdp.media {
            let _ = (media.formats().count(), media.payload_types().count(), media.connection);
        }
    }
    for d in &m.diagnostics {
        let _ = d.to_string();
    }
    let _ = sip::headers(data).count();

    if let Ok(Some(n)) = sip::message_len(data, 4096) {
        assert!(n > 0 && n <= data.len());
    }
    let mut framed = 0;
    for frame in sip::split_messages(data) {
        match frame {
            Ok(frame) => framed += frame.len(),
            Err(_) => break,
        }
    }
    assert!(framed <= data.len());
});
