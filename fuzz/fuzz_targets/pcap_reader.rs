//! Fuzz the capture-file readers: any input, read as a pcap or pcapng file, must yield packets
//! within the size cap and end with `Ok(None)` or a typed error, and stay ended afterwards.
#![no_main]

use capture::{open_with_config, PacketSource, ReaderConfig};
use libfuzzer_sys::fuzz_target;

const MAX_PACKET_LEN: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let config = ReaderConfig {
        max_packet_len: MAX_PACKET_LEN,
    };
    let Ok(mut reader) = open_with_config(data, config) else {
        return;
    };
    loop {
        match reader.next_packet() {
            Ok(Some(packet)) => {
                assert!(packet.data.len() <= MAX_PACKET_LEN as usize);
                assert!(packet.data.len() <= data.len());
                let _ = packet.timestamp.as_micros();
            }
            Ok(None) | Err(_) => break,
        }
    }
    // Readers are fused: nothing more after the end or an error.
    assert!(matches!(reader.next_packet(), Ok(None)));
});
