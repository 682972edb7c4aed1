//! The hot path allocates nothing for a message without SDP, custom headers or diagnostics.
//! A counting global allocator observes it; this binary holds a single test so that no other
//! test thread allocates while it measures.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn indexing_without_sdp_does_not_allocate() {
    let register = common::data_file("register_auth.sip");
    let invite = common::data_file("invite_sdp.sip");
    let indexer = sip::Indexer::default();
    // Warm up lazily initialised state (the default indexer behind `sip::index`).
    let _ = sip::index(b"");

    let n = allocations_during(|| {
        let m = indexer.index(&register);
        assert!(m.diagnostics.is_empty());
        assert!(m.auth_user.is_some());
        assert!(m.headers().count() > 5);
        let m = sip::index(&register);
        assert!(m.call_id.is_some());
        let frames = sip::split_messages(&register).count();
        assert_eq!(frames, 1);
    });
    assert_eq!(n, 0, "indexing a REGISTER allocated");

    // With SDP, one Vec for the media sections and nothing else.
    let n = allocations_during(|| {
        let m = indexer.index(&invite);
        assert_eq!(m.sdp.as_ref().map(|s| s.media.len()), Some(1));
    });
    assert_eq!(n, 1, "indexing an INVITE with one SDP media section");
}
