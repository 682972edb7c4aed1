//! Puts SIP messages and voice-quality reports back in the order the collector received them
//! before the tracker sees them.
//!
//! Why: the collector stores with several writer threads (PostgreSQL connections, SQLite
//! shards) and the KPI engine is fed after each batch is stored, so batches reach it in the
//! order their commits finished, not the order their messages arrived. A 200 OK fed before its
//! INVITE matches nothing, and the INVITE then times out: SER drops and ISA rises for no
//! reason on the wire. Transaction tracking needs arrival order. Quality reports wait with the
//! SIP messages because they move the packet clock too: a report captured minutes later, fed
//! ahead of waiting SIP messages, would time their transactions out.
//!
//! How: every message waits here for `reorder_window_ms` of wall-clock time after it was
//! received, ordered by receive time, then feed order. (The collector stamps receive times
//! strictly increasing per receiver, so messages of one sender never tie. Capture time is not
//! a tie-breaker: it is the sender's clock, and a proxy's trace timestamps are not always in
//! the order it sent the messages.) A message is
//! released once the wall clock has passed its receive time by the window, when the buffer
//! holds more than `reorder_max_events`, or at a flush. A message that comes after a later one
//! was already released (a batch replayed from the spool after an overload) cannot be put back
//! in place: it is fed at once and counted as late.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use crate::engine::SipEvent;
use crate::qos::{QosSample, QosSource};

#[derive(Debug)]
enum PendingItem {
    Sip(PendingSip),
    Qos(PendingQos),
}

/// The quality samples of one report.
#[derive(Debug)]
pub(crate) struct PendingQos {
    pub(crate) time_us: i64,
    pub(crate) received_us: i64,
    pub(crate) node: Box<str>,
    pub(crate) a: SocketAddr,
    pub(crate) b: SocketAddr,
    pub(crate) samples: Vec<(QosSource, QosSample)>,
}

/// What the buffer releases.
pub(crate) enum Released<'a> {
    Sip(SipEvent<'a>),
    Qos(&'a PendingQos),
}

/// A [`SipEvent`] that owns its text. The six strings share one allocation.
#[derive(Debug)]
struct PendingSip {
    time_us: i64,
    received_us: i64,
    src: SocketAddr,
    dst: SocketAddr,
    status: Option<u16>,
    cseq_num: u32,
    /// `node`, `call_id`, `cseq_method`, `method`, `via_branch`, `to_tag`, concatenated.
    text: Box<str>,
    /// End offset of each string in `text`.
    ends: [u32; 6],
    /// Which of `method`, `via_branch`, `to_tag` were present.
    present: [bool; 3],
}

impl PendingSip {
    fn new(ev: &SipEvent<'_>) -> PendingSip {
        let parts = [
            ev.node,
            ev.call_id,
            ev.cseq_method,
            ev.method.unwrap_or(""),
            ev.via_branch.unwrap_or(""),
            ev.to_tag.unwrap_or(""),
        ];
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 6];
        for (end, p) in ends.iter_mut().zip(parts) {
            text.push_str(p);
            // SIP messages are at most 64 KiB, so every offset fits.
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        PendingSip {
            time_us: ev.time_us,
            received_us: ev.received_us,
            src: ev.src,
            dst: ev.dst,
            status: ev.status,
            cseq_num: ev.cseq_num,
            text: text.into_boxed_str(),
            ends,
            present: [
                ev.method.is_some(),
                ev.via_branch.is_some(),
                ev.to_tag.is_some(),
            ],
        }
    }

    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..self.ends[i] as usize).unwrap_or("")
    }

    fn event(&self) -> SipEvent<'_> {
        let opt = |present: bool, i: usize| present.then(|| self.part(i));
        SipEvent {
            time_us: self.time_us,
            received_us: self.received_us,
            node: self.part(0),
            src: self.src,
            dst: self.dst,
            method: opt(self.present[0], 3),
            status: self.status,
            call_id: self.part(1),
            cseq_num: self.cseq_num,
            cseq_method: self.part(2),
            via_branch: opt(self.present[1], 4),
            to_tag: opt(self.present[2], 5),
        }
    }
}

/// Width of a bucket of receive times, µs.
const BUCKET_US: i64 = 1_000;

/// The ordering keys, (receive time, feed sequence), of the items received within one
/// [`BUCKET_US`].
#[derive(Debug, Default)]
struct Bucket {
    keys: Vec<(i64, u64)>,
    /// `keys[..next]` were released.
    next: usize,
    /// Whether `keys[next..]` is in order. Items arrive in order per writer batch, so a bucket
    /// is sorted (once, when it is first released from) only where batches interleave.
    sorted: bool,
}

/// The reorder buffer; see the module documentation.
///
/// The ordering keys, (receive time, feed sequence), 16 bytes each, wait in buckets of
/// [`BUCKET_US`] of receive time; the items wait in `items`, indexed by their feed sequence.
/// Why buckets rather than a binary heap: at 100k+ messages/s the buffer holds 100k+ keys,
/// more than the CPU caches, and each heap pop moved log2(n) of them with a cache miss at
/// nearly every level: 2.5 % of the collector's CPU. A bucket is appended to in receive order,
/// released front to back, and sorted at most once. Items are released nearly in feed order
/// (receive times are stamped in order per receiver), so the front of `items` empties soon
/// after a release and the deque stays about as long as the buffer.
#[derive(Debug)]
pub(crate) struct ReorderBuffer {
    /// The keys of every waiting item, by bucket (receive time / [`BUCKET_US`]).
    pending: BTreeMap<i64, Bucket>,
    /// Keys waiting in `pending`.
    waiting: usize,
    /// The item of feed sequence `first_seq + i` at index `i`; `None` once released.
    items: VecDeque<Option<PendingItem>>,
    /// Feed sequence of `items[0]`.
    first_seq: u64,
    window_us: i64,
    max_events: usize,
    seq: u64,
    /// Receive time of the latest message released: anything received before it is late.
    released_up_to_us: i64,
}

impl ReorderBuffer {
    pub(crate) fn new(window_ms: u64, max_events: usize) -> ReorderBuffer {
        ReorderBuffer {
            pending: BTreeMap::new(),
            waiting: 0,
            items: VecDeque::new(),
            first_seq: 0,
            window_us: i64::try_from(window_ms.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_events: max_events.max(1),
            seq: 0,
            released_up_to_us: i64::MIN,
        }
    }

    /// The wall-clock delay the buffer adds, µs.
    pub(crate) fn window_us(&self) -> i64 {
        self.window_us
    }

    /// Items waiting now.
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    /// Takes one message in; `false` when it is late (received before a message already
    /// released) and must be fed at once instead.
    pub(crate) fn push(&mut self, ev: &SipEvent<'_>) -> bool {
        self.admit(ev.received_us, || PendingItem::Sip(PendingSip::new(ev)))
    }

    /// Takes one quality report in; `false` when it is late and must be fed at once.
    pub(crate) fn push_qos(&mut self, make: impl FnOnce() -> PendingQos, received_us: i64) -> bool {
        self.admit(received_us, || PendingItem::Qos(make()))
    }

    fn admit(&mut self, received_us: i64, item: impl FnOnce() -> PendingItem) -> bool {
        if received_us < self.released_up_to_us {
            return false;
        }
        let key = received_us.div_euclid(BUCKET_US);
        // Nearly every item goes to the newest bucket.
        let bucket = match self.pending.last_entry() {
            Some(last) if *last.key() == key => last.into_mut(),
            _ => self.pending.entry(key).or_insert_with(|| Bucket {
                sorted: true,
                ..Bucket::default()
            }),
        };
        // `seq` is the next feed sequence, larger than any key's: only the time can be out of
        // order.
        if bucket.keys.len() > bucket.next
            && bucket.keys.last().is_some_and(|last| received_us < last.0)
        {
            bucket.sorted = false;
        }
        bucket.keys.push((received_us, self.seq));
        self.waiting += 1;
        // `items` always ends just before `seq`.
        self.items.push_back(Some(item()));
        self.seq += 1;
        true
    }

    /// Releases, oldest first, every message received at least the window before `wall_us`,
    /// and the oldest ones beyond `max_events`; `None` for `wall_us` releases everything.
    pub(crate) fn release(&mut self, wall_us: Option<i64>, mut feed: impl FnMut(Released<'_>)) {
        let horizon = wall_us.map(|w| w.saturating_sub(self.window_us));
        while let Some(mut first) = self.pending.first_entry() {
            let bucket = first.get_mut();
            if !bucket.sorted {
                bucket.keys[bucket.next..].sort_unstable();
                bucket.sorted = true;
            }
            while let Some(&(received_us, seq)) = bucket.keys.get(bucket.next) {
                let due = horizon.map_or(true, |h| received_us <= h);
                if !due && self.waiting <= self.max_events {
                    return;
                }
                bucket.next += 1;
                self.waiting -= 1;
                self.released_up_to_us = self.released_up_to_us.max(received_us);
                let slot = seq
                    .checked_sub(self.first_seq)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| self.items.get_mut(i));
                if let Some(item) = slot.and_then(Option::take) {
                    match &item {
                        PendingItem::Sip(sip) => feed(Released::Sip(sip.event())),
                        PendingItem::Qos(qos) => feed(Released::Qos(qos)),
                    }
                }
                while let Some(None) = self.items.front() {
                    self.items.pop_front();
                    self.first_seq += 1;
                }
            }
            first.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(received_us: i64, call_id: &'a str, method: Option<&'a str>) -> SipEvent<'a> {
        SipEvent {
            time_us: received_us - 5,
            received_us,
            node: "n1",
            src: "10.0.0.1:5060".parse().expect("addr"),
            dst: "10.0.0.2:5060".parse().expect("addr"),
            method,
            status: method.is_none().then_some(200),
            call_id,
            cseq_num: 7,
            cseq_method: "INVITE",
            via_branch: Some("z9hG4bK1"),
            to_tag: None,
        }
    }

    fn drain(buf: &mut ReorderBuffer, wall: Option<i64>) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        buf.release(wall, |r| match r {
            Released::Sip(e) => out.push((e.received_us, e.call_id.to_owned())),
            Released::Qos(q) => out.push((q.received_us, format!("qos {}", q.node))),
        });
        out
    }

    #[test]
    fn messages_come_out_in_receive_order_after_the_window() {
        let mut buf = ReorderBuffer::new(1, 100);
        // Two writer batches finishing in the wrong order.
        for (t, c) in [(300, "c"), (400, "d"), (100, "a"), (200, "b")] {
            let e = ev(t, c, Some("INVITE"));
            assert!(buf.push(&e));
        }
        let qos = || PendingQos {
            time_us: 0,
            received_us: 150,
            node: "n1".into(),
            a: "10.0.0.1:5060".parse().expect("addr"),
            b: "10.0.0.2:5060".parse().expect("addr"),
            samples: Vec::new(),
        };
        assert!(buf.push_qos(qos, 150));
        assert_eq!(
            drain(&mut buf, Some(1_250)),
            [(100, "a".into()), (150, "qos n1".into()), (200, "b".into())]
        );
        assert_eq!(buf.len(), 2);
        assert_eq!(
            drain(&mut buf, None),
            [(300, "c".into()), (400, "d".into())]
        );
        // Received before what was released: fed at once as late.
        let e = ev(350, "late", None);
        assert!(!buf.push(&e));
        let e = ev(400, "tie", None);
        assert!(buf.push(&e));
    }

    #[test]
    fn the_cap_releases_the_oldest() {
        let mut buf = ReorderBuffer::new(60_000, 2);
        for (t, c) in [(3, "c"), (1, "a"), (2, "b")] {
            let e = ev(t, c, None);
            let _ = buf.push(&e);
        }
        assert_eq!(drain(&mut buf, Some(4)), [(1, "a".into())]);
    }

    proptest::proptest! {
        /// Whatever order the items come in and however releases interleave with pushes,
        /// every admitted item comes out exactly once, in (receive time, feed order), and the
        /// item store empties with the buckets.
        #[test]
        fn every_item_comes_out_once_in_key_order(
            // Receive times within one bucket and over several, ties included.
            steps in proptest::collection::vec(
                (
                    proptest::prop_oneof![0i64..50, 0i64..5_000],
                    proptest::option::of(proptest::prop_oneof![0i64..60, 0i64..6_000]),
                ),
                1..200,
            ),
        ) {
            let mut buf = ReorderBuffer::new(0, 1_000);
            let names: Vec<String> = (0..steps.len()).map(|i| format!("c{i}")).collect();
            let mut admitted = Vec::new();
            let mut out = Vec::new();
            for (i, (received, wall)) in steps.iter().enumerate() {
                if buf.push(&ev(*received, &names[i], None)) {
                    admitted.push((*received, names[i].clone()));
                }
                if let Some(wall) = wall {
                    out.extend(drain(&mut buf, Some(*wall)));
                }
                proptest::prop_assert!(buf.items.len() >= buf.len());
            }
            out.extend(drain(&mut buf, None));
            proptest::prop_assert_eq!(buf.len(), 0);
            proptest::prop_assert!(buf.items.is_empty());
            // Released items never go back in time, and each admitted one is released once.
            proptest::prop_assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
            let mut a = admitted.clone();
            let mut o = out.clone();
            a.sort();
            o.sort();
            proptest::prop_assert_eq!(a, o);
        }
    }

    #[test]
    fn an_event_survives_the_round_trip() {
        let mut e = ev(10, "call-1@host", None);
        e.to_tag = Some("tt");
        e.via_branch = None;
        let p = PendingSip::new(&e);
        let back = p.event();
        assert_eq!(format!("{back:?}"), format!("{e:?}"));
        let e = ev(10, "", Some(""));
        let p = PendingSip::new(&e);
        assert_eq!(format!("{:?}", p.event()), format!("{e:?}"));
    }
}
