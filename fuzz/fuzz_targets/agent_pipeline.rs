//! Fuzz the capture agent's pipeline: the input is cut into records, each either a raw IPv4
//! frame or the payload of a TCP segment the target wraps in valid headers (so the SIP and
//! WebSocket stream layers see arbitrary bytes in and out of order). Memory must stay within
//! the configured caps and nothing may panic.
#![no_main]

use std::sync::Arc;

use agent::{AgentConfig, Counters, Pipeline};
use capture::{LinkType, Timestamp};
use libfuzzer_sys::fuzz_target;

fn tcp_frame(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let total = 40 + payload.len();
    let mut f = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ];
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&5060u16.to_be_bytes());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fuzz_target!(|data: &[u8]| {
    let cfg = AgentConfig {
        max_message_len: 4096,
        max_stream_buffer_total: 16 * 1024,
        tcp_max_buffered_per_flow: 8 * 1024,
        tcp_max_buffered_total: 16 * 1024,
        tcp_max_flows: 8,
        defrag_max_total_bytes: 16 * 1024,
        defrag_max_bytes_per_flow: 8 * 1024,
        dedup_max_entries: 16,
        media_max_entries: 16,
        ..AgentConfig::default()
    };
    let mut pipeline = Pipeline::new(cfg, Arc::new(Counters::default()));
    let mut sink = |m: &[u8]| assert!(hep::decode(m).is_ok());
    let mut rest = data;
    let mut seq = 1u32;
    let mut t = 0i64;
    while let [kind, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (record, next) = tail.split_at(n);
        rest = next;
        t += 1000;
        let ts = Timestamp::from_micros(t);
        if kind & 1 == 0 {
            pipeline.process(LinkType::RAW, ts, record, &mut sink);
        } else {
            // Bits 1-3 move the segment back or forward, modelling loss and reordering.
            let shift = i64::from((kind >> 1) & 7) - 3;
            let at = (i64::from(seq) + shift * 64).max(0) as u32;
            let frame = tcp_frame(at, 0x18 | (kind >> 4 & 0x07), record);
            pipeline.process(LinkType::RAW, ts, &frame, &mut sink);
            seq = seq.wrapping_add(record.len() as u32);
        }
        assert!(pipeline.buffered_bytes() < 512 * 1024);
    }
    pipeline.finish(&mut sink);
});
