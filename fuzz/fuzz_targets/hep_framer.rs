//! Fuzz the HEP stream framer: the input is cut into segments at positions taken from its first
//! bytes and fed through a small framer; every frame must decode (the framer validates the chunk layout), and
//! no byte may be lost or invented; at the end of the stream nothing stays buffered.
#![no_main]

use libfuzzer_sys::fuzz_target;

const MAX_FRAME: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte says how many cut positions follow (u16 each); the rest is the stream.
    let (cut_count, rest) = match data.split_first() {
        Some((&n, rest)) => (usize::from(n % 16), rest),
        None => return,
    };
    let header_len = (cut_count * 2).min(rest.len());
    let (cut_bytes, stream) = rest.split_at(header_len);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|pair| usize::from(u16::from_be_bytes([pair[0], pair[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    cuts.push(stream.len());

    let mut framer = hep::StreamFramer::new(hep::FramerConfig {
        max_frame_len: MAX_FRAME,
        max_buffer: 2 * MAX_FRAME,
    });
    let mut start = 0;
    for cut in cuts {
        // Pushes larger than the free space are fed in bounded pieces, draining in between.
        for piece in stream[start..cut].chunks(MAX_FRAME) {
            framer
                .push(piece)
                .expect("a drained framer has room for a bounded piece");
            while let Some(frame) = framer.next_frame() {
                assert!(frame.len() <= MAX_FRAME);
                // The framer checks the chunk structure, so what it hands out always decodes.
                let packet = hep::decode(frame).expect("a framed message decodes");
                assert_eq!(packet.raw.len(), frame.len());
            }
            assert!(framer.pending_len() < MAX_FRAME);
        }
        start = cut;
    }
    // The end of the stream: what is buffered is framed, nothing stays pending.
    while let Some(frame) = framer.next_frame_final() {
        let packet = hep::decode(frame).expect("a framed message decodes");
        assert_eq!(packet.raw.len(), frame.len());
    }
    assert_eq!(framer.pending_len(), 0);
    assert_eq!(framer.bytes_pushed(), stream.len() as u64);
    assert_eq!(
        framer.bytes_framed() + framer.bytes_skipped() + framer.pending_len() as u64,
        framer.bytes_pushed()
    );
});
