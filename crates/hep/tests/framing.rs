//! Stream framing over the real Kamailio HEP-over-TCP byte stream.

mod common;

use std::fs;

use common::{samples_dir, samples_in};
use hep::{frame_check, FrameCheck, FramerConfig, StreamFramer};
use proptest::prelude::*;

fn stream() -> Vec<u8> {
    let path = samples_dir().join("kamailio-hep3-tcp/tcp-stream-conn1.raw");
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn expected_frames() -> Vec<Vec<u8>> {
    let frames: Vec<Vec<u8>> = samples_in("kamailio-hep3-tcp/frames")
        .into_iter()
        .map(|s| s.bytes)
        .collect();
    assert_eq!(frames.len(), 46);
    frames
}

/// Feed `pieces` in order, draining frames after each push; check byte conservation throughout.
fn run(framer: &mut StreamFramer, pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for piece in pieces {
        framer.push(piece).expect("push fits after draining");
        while let Some(frame) = framer.next_frame() {
            frames.push(frame.to_vec());
        }
        assert_eq!(
            framer.bytes_framed() + framer.bytes_skipped() + framer.pending_len() as u64,
            framer.bytes_pushed()
        );
    }
    frames
}

#[test]
fn every_segment_size_yields_the_recorded_frames() {
    let stream = stream();
    let expected = expected_frames();
    assert_eq!(
        expected.concat(),
        stream,
        "the raw stream is the frames back to back"
    );
    for size in 1..=stream.len() {
        let pieces: Vec<&[u8]> = stream.chunks(size).collect();
        let mut framer = StreamFramer::default();
        let frames = run(&mut framer, &pieces);
        assert_eq!(frames, expected, "segment size {size}");
        assert_eq!(framer.bytes_skipped(), 0, "segment size {size}");
        assert_eq!(framer.pending_len(), 0, "segment size {size}");
        assert_eq!(framer.frames_produced(), 46);
    }
}

#[test]
fn frame_check_walks_the_stream() {
    let stream = stream();
    let expected = expected_frames();
    let mut rest = &stream[..];
    for frame in &expected {
        assert_eq!(
            frame_check(rest, 65535),
            FrameCheck::Complete {
                skip: 0,
                len: frame.len()
            }
        );
        assert_eq!(
            frame_check(&rest[..frame.len() - 1], 65535),
            FrameCheck::Incomplete { skip: 0 }
        );
        rest = &rest[frame.len()..];
    }
    assert!(rest.is_empty());
}

/// Garbage a collector may meet between messages that must never be taken for a message:
/// bytes without a magic, partial magics, magics with impossible total lengths, and a magic whose
/// chunks do not tile its length.
fn garbage_pieces() -> Vec<Vec<u8>> {
    vec![
        b"\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\n".to_vec(),
        b"HE".to_vec(),
        b"EEP".to_vec(),
        b"HEP3\x00\x00".to_vec(),
        b"HEP3\x00\x05xyz".to_vec(),
        b"HEP3\xff\xff".to_vec(),
        b"EEP1\x00\x0d\x00\x00\x00\x01\x00\x02\x02".to_vec(),
        vec![0u8; 300],
    ]
}

fn framer_for_garbage() -> StreamFramer {
    // Below 0xffff so the `HEP3\xff\xff` piece is recognisably too long.
    StreamFramer::new(FramerConfig {
        max_frame_len: 16 * 1024,
        ..FramerConfig::default()
    })
}

#[test]
fn garbage_between_frames_is_skipped() {
    let expected = expected_frames();
    let garbage = garbage_pieces();
    let mut stream = Vec::new();
    let mut garbage_len = 0;
    for (i, frame) in expected.iter().enumerate() {
        let g = &garbage[i % garbage.len()];
        stream.extend_from_slice(g);
        garbage_len += g.len();
        stream.extend_from_slice(frame);
    }
    for size in [1, 2, 3, 5, 7, 64, 500, 1400, stream.len()] {
        let pieces: Vec<&[u8]> = stream.chunks(size).collect();
        let mut framer = framer_for_garbage();
        let frames = run(&mut framer, &pieces);
        assert_eq!(frames, expected, "segment size {size}");
        assert_eq!(
            framer.bytes_skipped(),
            garbage_len as u64,
            "segment size {size}"
        );
    }
}

fn split(data: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.iter_mut().for_each(|c| *c %= data.len() + 1);
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for cut in cuts {
        pieces.push(&data[at..cut]);
        at = cut;
    }
    pieces.push(&data[at..]);
    pieces
}

proptest! {
    #[test]
    fn random_splits_yield_the_recorded_frames(cuts in proptest::collection::vec(any::<usize>(), 0..80)) {
        let stream = stream();
        let mut framer = StreamFramer::default();
        let frames = run(&mut framer, &split(&stream, cuts));
        prop_assert_eq!(frames, expected_frames());
        prop_assert_eq!(framer.bytes_skipped(), 0);
    }

    #[test]
    fn random_garbage_and_splits(
        choices in proptest::collection::vec(0usize..12, 46),
        filler in proptest::collection::vec(proptest::collection::vec(
            proptest::sample::select(b"abcdxyz0123456789 \r\n\x00\xff".to_vec()), 0..40), 46),
        cuts in proptest::collection::vec(any::<usize>(), 0..60),
    ) {
        let expected = expected_frames();
        let garbage = garbage_pieces();
        let mut stream = Vec::new();
        let mut garbage_len = 0;
        for (i, frame) in expected.iter().enumerate() {
            let g: &[u8] = garbage.get(choices[i]).map_or(&filler[i][..], |g| &g[..]);
            stream.extend_from_slice(g);
            garbage_len += g.len();
            stream.extend_from_slice(frame);
        }
        let mut framer = framer_for_garbage();
        let frames = run(&mut framer, &split(&stream, cuts));
        prop_assert_eq!(frames, expected);
        prop_assert_eq!(framer.bytes_skipped(), garbage_len as u64);
        prop_assert_eq!(framer.pending_len(), 0);
    }

    #[test]
    fn arbitrary_stream_never_panics_and_conserves_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut framer = StreamFramer::new(FramerConfig { max_frame_len: 512, max_buffer: 8192 });
        for frame in run(&mut framer, &split(&data, cuts)) {
            prop_assert!(frame.len() <= 512);
            // The framer checks the chunk layout, so every frame it hands out decodes.
            prop_assert!(hep::decode(&frame).is_ok());
        }
        prop_assert!(framer.pending_len() < 512);
    }
}
