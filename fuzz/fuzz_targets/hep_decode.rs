//! Fuzz the HEP decoder: any input must decode or fail with a typed error; a decoded packet
//! must survive chunk walking, bounded inflation and an encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = hep::decode(data) else {
        return;
    };
    for chunk in packet.chunks() {
        let _ = (chunk.name(), chunk.value());
        assert!(chunk.offset + usize::from(chunk.len) <= packet.raw.len());
    }
    let _ = packet.timestamp_micros();
    let _ = packet.capture_id_normalized();
    if let Ok(inflated) = packet.inflate_payload(64 * 1024) {
        assert!(inflated.len() <= 64 * 1024);
    }
    let message = packet.to_message();
    match message.encode_to_vec() {
        Ok(wire) => {
            let again = hep::decode(&wire).expect("an encoded message decodes");
            assert_eq!(again.to_message(), message);
        }
        // Re-encoding may grow a message (v1/v2 header into chunks, 6-byte MACs into 8) past
        // the 16-bit length; any other refusal is a bug.
        Err(hep::EncodeError::TooLarge { len }) => assert!(len > hep::MAX_MESSAGE_LEN),
        Err(other) => panic!("re-encoding a decoded packet failed: {other}"),
    }
});
