//! Disjoint byte ranges keyed by offset, filled first-copy-wins: shared by IP defragmentation
//! and TCP reassembly so both treat overlaps the same way.

use std::collections::BTreeMap;

/// Pieces of a byte sequence: `start -> bytes`, never overlapping.
pub(crate) type Pieces = BTreeMap<u64, Vec<u8>>;

/// What inserting one piece did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Inserted {
    /// New bytes stored.
    pub added: usize,
    /// Number of new map entries (each costs bookkeeping memory).
    pub entries: usize,
    /// Bytes dropped because earlier pieces already held them.
    pub overlapping: usize,
}

/// Stores the parts of `data` (which starts at `start`) that no existing piece covers. Bytes
/// already present win: a later copy never overwrites them, so the result does not depend on
/// what a retransmission or an overlapping fragment claims.
pub(crate) fn insert_first_wins(pieces: &mut Pieces, start: u64, data: &[u8]) -> Inserted {
    let end = start + data.len() as u64;
    let mut holes: Vec<(u64, u64)> = Vec::new();
    let mut cursor = start;
    if let Some((&s, v)) = pieces.range(..start).next_back() {
        cursor = cursor.max(s + v.len() as u64);
    }
    for (&s, v) in pieces.range(start..end) {
        if s > cursor {
            holes.push((cursor, s));
        }
        cursor = cursor.max(s + v.len() as u64);
        if cursor >= end {
            break;
        }
    }
    if cursor < end {
        holes.push((cursor, end));
    }
    let mut result = Inserted::default();
    for (s, e) in holes {
        // s and e lie within [start, end], so the subtraction and slice stay in bounds.
        let from = (s - start) as usize;
        let to = (e - start) as usize;
        if let Some(bytes) = data.get(from..to) {
            pieces.insert(s, bytes.to_vec());
            result.added += bytes.len();
            result.entries += 1;
        }
    }
    result.overlapping = data.len() - result.added;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(p: &Pieces) -> Vec<(u64, Vec<u8>)> {
        p.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    #[test]
    fn fills_only_holes() {
        let mut p = Pieces::new();
        insert_first_wins(&mut p, 2, b"cd");
        insert_first_wins(&mut p, 6, b"gh");
        let r = insert_first_wins(&mut p, 0, b"ABCDEFGHIJ");
        assert_eq!((r.added, r.overlapping, r.entries), (6, 4, 3));
        assert_eq!(
            flatten(&p),
            vec![
                (0, b"AB".to_vec()),
                (2, b"cd".to_vec()),
                (4, b"EF".to_vec()),
                (6, b"gh".to_vec()),
                (8, b"IJ".to_vec())
            ]
        );
        let r = insert_first_wins(&mut p, 3, b"xxxx");
        assert_eq!((r.added, r.overlapping), (0, 4));
    }

    #[test]
    fn empty_and_adjacent() {
        let mut p = Pieces::new();
        assert_eq!(insert_first_wins(&mut p, 5, b"").added, 0);
        insert_first_wins(&mut p, 0, b"ab");
        let r = insert_first_wins(&mut p, 2, b"cd");
        assert_eq!((r.added, r.overlapping), (2, 0));
    }
}
