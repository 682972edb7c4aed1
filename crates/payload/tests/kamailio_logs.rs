//! Kamailio 5.6's real `hlog()` payloads (HEP type 100) decode as log records.

mod common;

use payload::Parsed;

#[test]
fn every_kamailio_log_decodes_unchanged() {
    let logs: Vec<String> = common::oracle_payloads("kamailio-hep3-udp/decoded.jsonl")
        .into_iter()
        .filter(|(proto, _)| *proto == 100)
        .map(|(_, text)| text)
        .collect();
    assert_eq!(logs.len(), 23, "the Kamailio sample holds 23 LOG messages");
    for text in logs {
        let Parsed::Log(record) = payload::parse(100, text.as_bytes()) else {
            panic!("type 100 did not decode as a log: {text}");
        };
        assert_eq!(record.text, text.trim_end_matches(['\r', '\n']));
        assert!(
            record.text.starts_with("kamailio routing INVITE to "),
            "{}",
            record.text
        );
        assert!(!record.invalid_utf8 && !record.truncated);
        // The script's hlog() lines carry no severity token.
        assert_eq!(record.level, None, "{}", record.text);
        let json = serde_json::to_value(payload::parse(100, text.as_bytes())).expect("serializes");
        assert_eq!(json["kind"], "log");
        assert_eq!(json["level"], serde_json::Value::Null);
    }
}
