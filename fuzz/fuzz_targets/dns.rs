//! Fuzzes the DNS decoder and its JSON form, through the dispatcher (binary and JSON DNS).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = payload::dns::parse(data) {
        assert!(message.questions.len() <= usize::from(message.counts.questions));
        assert!(message.answers.len() <= usize::from(message.counts.answers));
    }
    let _ = payload::parse(53, data).to_json();
});
