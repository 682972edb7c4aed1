use std::collections::VecDeque;
use std::fs;

use proptest::prelude::*;

use super::*;

fn cfg(max_bytes: u64, segment_bytes: u64) -> SpoolConfig {
    SpoolConfig {
        max_bytes,
        segment_bytes,
        fsync: FsyncPolicy::EveryMillis(1000),
    }
}

fn entry(i: u32, len: usize) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..len).map(|j| (j as u32 ^ i) as u8));
    v
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_segment_name)
                .is_some()
        })
        .collect();
    files.sort();
    files
}

fn drain(spool: &mut Spool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((pos, data)) = spool.peek().unwrap() {
        out.push(data);
        spool.ack(pos).unwrap();
    }
    out
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert!(spool.is_empty());
    assert_eq!(spool.peek().unwrap(), None);
    let entries: Vec<Vec<u8>> = vec![b"first".to_vec(), Vec::new(), entry(7, 10_000)];
    for e in &entries {
        spool.append(e).unwrap();
    }
    assert_eq!(spool.len(), 3);
    let expected_bytes: u64 = entries.iter().map(|e| 12 + e.len() as u64).sum();
    assert_eq!(spool.bytes(), expected_bytes);
    // Peek does not consume.
    let (pos1, data1) = spool.peek().unwrap().unwrap();
    let (pos2, data2) = spool.peek().unwrap().unwrap();
    assert_eq!(pos1, pos2);
    assert_eq!(data1, data2);
    assert_eq!(drain(&mut spool), entries);
    assert!(spool.is_empty());
    assert_eq!(spool.bytes(), 0, "fully acknowledged segments are deleted");
    assert!(segment_files(dir.path()).is_empty());
}

#[test]
fn order_is_kept_across_segments_and_segments_are_deleted_when_acked() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), cfg(1 << 20, 256)).unwrap();
    let entries: Vec<Vec<u8>> = (0..50).map(|i| entry(i, 40 + i as usize)).collect();
    for e in &entries {
        spool.append(e).unwrap();
    }
    let files = segment_files(dir.path());
    assert!(files.len() > 10, "small segments rotate: {}", files.len());
    for f in &files {
        // Every segment stays within the size unless it holds a single larger entry.
        assert!(fs::metadata(f).unwrap().len() <= 256);
    }
    let mut got = Vec::new();
    for _ in 0..25 {
        let (pos, data) = spool.peek().unwrap().unwrap();
        got.push(data);
        spool.ack(pos).unwrap();
    }
    assert!(segment_files(dir.path()).len() < files.len());
    got.extend(drain(&mut spool));
    assert_eq!(got, entries);
    assert!(segment_files(dir.path()).is_empty());
}

#[test]
fn an_entry_larger_than_a_segment_gets_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), cfg(1 << 20, 100)).unwrap();
    spool.append(b"small").unwrap();
    spool.append(&entry(1, 500)).unwrap();
    spool.append(b"after").unwrap();
    assert_eq!(segment_files(dir.path()).len(), 3);
    assert_eq!(
        drain(&mut spool),
        vec![b"small".to_vec(), entry(1, 500), b"after".to_vec()]
    );
}

#[test]
fn restart_midway_does_not_replay_acked_entries() {
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<Vec<u8>> = (0..30).map(|i| entry(i, 30)).collect();
    {
        let mut spool = Spool::open(dir.path(), cfg(1 << 20, 200)).unwrap();
        for e in &entries {
            spool.append(e).unwrap();
        }
        for _ in 0..12 {
            let (pos, _) = spool.peek().unwrap().unwrap();
            spool.ack(pos).unwrap();
        }
        // Peeked but not acknowledged: must come back after the restart.
        spool.peek().unwrap().unwrap();
    }
    let mut spool = Spool::open(dir.path(), cfg(1 << 20, 200)).unwrap();
    assert_eq!(spool.len(), 18);
    // Appending after a restart continues the order.
    spool.append(b"new").unwrap();
    let mut expected = entries[12..].to_vec();
    expected.push(b"new".to_vec());
    assert_eq!(drain(&mut spool), expected);
    drop(spool);
    let mut spool = Spool::open(dir.path(), cfg(1 << 20, 200)).unwrap();
    assert!(spool.is_empty());
    assert_eq!(spool.peek().unwrap(), None);
}

#[test]
fn ack_is_in_order_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    spool.append(b"a").unwrap();
    spool.append(b"b").unwrap();
    let (pos_a, _) = spool.peek().unwrap().unwrap();
    spool.ack(pos_a).unwrap();
    let (pos_b, data) = spool.peek().unwrap().unwrap();
    assert_eq!(data, b"b");
    assert!(pos_a < pos_b);
    // Again: a no-op, b stays pending.
    spool.ack(pos_a).unwrap();
    assert_eq!(spool.len(), 1);
    spool.ack(pos_b).unwrap();
    assert!(spool.is_empty());
    // A position from a later entry that no longer exists is not the head.
    spool.append(b"c").unwrap();
    let (pos_c, _) = spool.peek().unwrap().unwrap();
    let forged = SpoolPosition {
        segment: pos_c.segment,
        offset: pos_c.next,
        next: pos_c.next + 20,
    };
    assert!(matches!(
        spool.ack(forged),
        Err(SpoolError::AckOutOfOrder { .. })
    ));
    assert_eq!(spool.len(), 1);
}

#[test]
fn torn_tail_is_truncated_and_earlier_entries_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
        spool.append(b"one").unwrap();
        spool.append(b"two").unwrap();
        spool.append(b"three").unwrap();
    }
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let full = fs::read(&files[0]).unwrap();
    // Cut the last record in the middle of its payload, as a crash during write would.
    fs::write(&files[0], &full[..full.len() - 2]).unwrap();
    let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(spool.len(), 2);
    assert_eq!(fs::metadata(&files[0]).unwrap().len(), 2 * 12 + 6);
    spool.append(b"four").unwrap();
    assert_eq!(
        drain(&mut spool),
        vec![b"one".to_vec(), b"two".to_vec(), b"four".to_vec()]
    );
}

#[test]
fn corrupt_record_and_garbage_tail_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
        for i in 0..4 {
            spool.append(&entry(i, 20)).unwrap();
        }
    }
    let files = segment_files(dir.path());
    let mut bytes = fs::read(&files[0]).unwrap();
    // Flip a payload byte of the third record: its CRC no longer matches.
    let third_payload = 2 * (12 + 24) + 12 + 5;
    bytes[third_payload] ^= 0xff;
    fs::write(&files[0], &bytes).unwrap();
    let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(drain(&mut spool), vec![entry(0, 20), entry(1, 20)]);

    // A header-sized garbage tail (e.g. zeroes from a power cut) is also cut.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
        spool.append(b"kept").unwrap();
    }
    let files = segment_files(dir.path());
    let mut bytes = fs::read(&files[0]).unwrap();
    bytes.extend_from_slice(&[0u8; 40]);
    fs::write(&files[0], &bytes).unwrap();
    let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(drain(&mut spool), vec![b"kept".to_vec()]);
}

#[test]
fn a_huge_length_in_a_corrupt_header_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = Vec::new();
    record.extend_from_slice(&RECORD_MAGIC);
    record.extend_from_slice(&u32::MAX.to_le_bytes());
    record.extend_from_slice(&0u32.to_le_bytes());
    record.extend_from_slice(b"short");
    fs::write(segment_path(dir.path(), 1), &record).unwrap();
    let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert!(spool.is_empty());
    assert_eq!(spool.peek().unwrap(), None);
    // The empty segment was removed; the next one gets a fresh id.
    spool.append(b"x").unwrap();
    let (pos, _) = spool.peek().unwrap().unwrap();
    assert_eq!(pos.segment(), 2);
}

#[test]
fn unreadable_ack_file_replays_instead_of_losing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
        spool.append(b"a").unwrap();
        spool.append(b"b").unwrap();
        let (pos, _) = spool.peek().unwrap().unwrap();
        spool.ack(pos).unwrap();
    }
    fs::write(dir.path().join(ACK_FILE), b"garbage").unwrap();
    let mut spool = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(drain(&mut spool), vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn full_refuses_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), cfg(100, 1000)).unwrap();
    spool.append(&[1u8; 40]).unwrap(); // 52 bytes
    assert!(matches!(spool.append(&[2u8; 40]), Err(SpoolError::Full)));
    assert_eq!(spool.len(), 1);
    assert_eq!(spool.bytes(), 52);
    spool.append(&[3u8; 36]).unwrap(); // exactly 100
    assert!(matches!(spool.append(&[]), Err(SpoolError::Full)));
    assert!(matches!(
        spool.append(&[0u8; 89]),
        Err(SpoolError::EntryTooLarge { len: 89, max: 88 })
    ));
    // Acknowledging frees space once the segment is gone.
    let drained = drain(&mut spool);
    assert_eq!(drained, vec![vec![1u8; 40], vec![3u8; 36]]);
    spool.append(&[4u8; 80]).unwrap();
    assert_eq!(spool.bytes(), 92);
    // Full also holds after a restart.
    drop(spool);
    let mut spool = Spool::open(dir.path(), cfg(100, 1000)).unwrap();
    assert_eq!(spool.bytes(), 92);
    assert!(matches!(spool.append(&[5u8; 10]), Err(SpoolError::Full)));
}

#[test]
fn fsync_policies_work_and_config_deserializes() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::EveryMillis(1),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let c = SpoolConfig {
            fsync,
            ..cfg(1 << 20, 64)
        };
        let mut spool = Spool::open(dir.path(), c).unwrap();
        for i in 0..10 {
            spool.append(&entry(i, 10)).unwrap();
        }
        spool.sync_if_due().unwrap();
        spool.sync().unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), c).unwrap();
        assert_eq!(drain(&mut spool).len(), 10);
    }
    let c: SpoolConfig =
        serde_json::from_str(r#"{"max_bytes": 1000, "fsync": {"every_millis": 250}}"#).unwrap();
    assert_eq!(c.max_bytes, 1000);
    assert_eq!(c.segment_bytes, SpoolConfig::default().segment_bytes);
    assert_eq!(c.fsync, FsyncPolicy::EveryMillis(250));
    let c: SpoolConfig = serde_json::from_str(r#"{"fsync": "always"}"#).unwrap();
    assert_eq!(c.fsync, FsyncPolicy::Always);
    assert!(serde_json::from_str::<SpoolConfig>(r#"{"max_byte": 1}"#).is_err());
    let round: SpoolConfig =
        serde_json::from_str(&serde_json::to_string(&SpoolConfig::default()).unwrap()).unwrap();
    assert_eq!(round, SpoolConfig::default());
    assert_eq!(SpoolConfig::default().fsync, FsyncPolicy::EveryMillis(1000));
}

#[test]
fn bad_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Spool::open(dir.path(), cfg(1000, 0)),
        Err(SpoolError::InvalidConfig(_))
    ));
    assert!(matches!(
        Spool::open(dir.path(), cfg(12, 100)),
        Err(SpoolError::InvalidConfig(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    PeekAck,
    Peek,
    Reopen,
    TearTail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..120).prop_map(Op::Append),
        3 => Just(Op::PeekAck),
        1 => Just(Op::Peek),
        1 => Just(Op::Reopen),
        1 => (1usize..30).prop_map(Op::TearTail),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random operation sequences against a VecDeque model: same entries, same order, the
    /// byte bound respected, restarts transparent, and a torn tail loses exactly the entry
    /// being written.
    #[test]
    fn behaves_like_a_queue(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(2_000, 300);
        let mut spool = Spool::open(dir.path(), c).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut counter = 0u32;
        for op in ops {
            match op {
                Op::Append(len) => {
                    counter += 1;
                    let e = entry(counter, len);
                    let before = spool.bytes();
                    match spool.append(&e) {
                        Ok(()) => model.push_back(e),
                        Err(SpoolError::Full) => {
                            prop_assert!(before + 12 + e.len() as u64 > c.max_bytes);
                            prop_assert_eq!(spool.bytes(), before);
                        }
                        Err(other) => return Err(TestCaseError::fail(other.to_string())),
                    }
                }
                Op::PeekAck => {
                    let got = spool.peek().unwrap();
                    match (got, model.pop_front()) {
                        (Some((pos, data)), Some(expected)) => {
                            prop_assert_eq!(data, expected);
                            spool.ack(pos).unwrap();
                        }
                        (None, None) => {}
                        (got, expected) => {
                            return Err(TestCaseError::fail(format!(
                                "spool {got:?} vs model {expected:?}"
                            )))
                        }
                    }
                }
                Op::Peek => {
                    let got = spool.peek().unwrap().map(|(_, d)| d);
                    prop_assert_eq!(got.as_ref(), model.front());
                }
                Op::Reopen => {
                    drop(spool);
                    spool = Spool::open(dir.path(), c).unwrap();
                }
                Op::TearTail(cut) => {
                    // A crash while writing the last entry: its record is cut short.
                    drop(spool);
                    if let Some(last) = segment_files(dir.path()).last() {
                        let len = fs::metadata(last).unwrap().len();
                        let record = model.back().map_or(0, |e| 12 + e.len() as u64);
                        if record > 0 && (cut as u64) < record && record <= len {
                            // Only tear if the newest entry is in the last segment.
                            let file = OpenOptions::new().write(true).open(last).unwrap();
                            file.set_len(len - cut as u64).unwrap();
                            model.pop_back();
                        }
                    }
                    spool = Spool::open(dir.path(), c).unwrap();
                }
            }
            prop_assert_eq!(spool.len(), model.len() as u64);
            prop_assert!(spool.bytes() <= c.max_bytes);
            let on_disk: u64 = segment_files(dir.path())
                .iter()
                .map(|f| fs::metadata(f).unwrap().len())
                .sum();
            prop_assert_eq!(on_disk, spool.bytes());
        }
        let rest = drain(&mut spool);
        prop_assert_eq!(rest, Vec::from(model));
    }
}
