//! Fuzz the collector's spool entry decoder (both the plain and the Zstandard format): a
//! damaged entry must give an error carrying the record count, never a panic or an unbounded
//! allocation; whatever decodes must survive a round trip through both formats.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Let the fuzzer reach the compressed format as often as the plain one.
    for first in [1u8, 2] {
        let mut entry = data.to_vec();
        if let Some(b) = entry.first_mut() {
            *b = first;
        }
        if let Ok(records) = collector::decode_batch(&entry) {
            for level in [0, 1] {
                let again = collector::encode_batch(&records, level).expect("encode");
                assert_eq!(collector::decode_batch(&again).ok(), Some(records.clone()));
            }
        }
    }
});
