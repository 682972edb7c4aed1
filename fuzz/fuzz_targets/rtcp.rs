//! Fuzzes the RTCP decoders: binary compound packets, the HOMER JSON form, the quality figures
//! and the encode → decode round trip of whatever decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use payload::quality::{assess, QualityOptions};
use payload::rtcp;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = rtcp::parse(data) {
        let options = QualityOptions {
            arrival_ntp_middle: Some(0x8000_0000),
            ..QualityOptions::default()
        };
        let _ = assess(&report, &options);
        let json = rtcp::to_json(&report);
        let _ = rtcp::from_json(json.to_string().as_bytes());
        if let Ok(bytes) = rtcp::encode(&report) {
            let again = rtcp::parse(&bytes).expect("re-encoded RTCP decodes");
            assert_eq!(again.packets.len(), report.packets.len());
        }
    }
    // The RTCP reader's fast JSON path reads what serde_json reads, or leaves it to serde_json.
    assert!(payload::fast_reader_agrees(data), "fast JSON reader disagrees");
    if let Ok(report) = rtcp::from_json(data) {
        // The RTCP reader's borrowed JSON tree accepts only what serde_json's `Value` accepts.
        assert!(payload::json::parse_value(data).is_ok(), "accepted invalid JSON");
        let _ = assess(&report, &QualityOptions::default());
        let _ = rtcp::to_json(&report);
    }
    let _ = payload::parse(5, data);
});
