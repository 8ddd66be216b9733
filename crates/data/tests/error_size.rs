//! An error message about a huge value costs what the message holds, not what the value
//! holds: describing a 16 MB byte string where CIFAR expects an array allocates a few
//! kilobytes, not the value's 80 MB debug form. Allocations are counted by a global
//! allocator of this test binary alone.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ember_data::formats::cifar;

/// The system allocator, counting the bytes asked for.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// `GlobalAlloc` contract; the counter is an atomic and does not affect allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A protocol-3 pickle of `{"data": <n bytes>}`: a byte string where CIFAR wants an array.
fn dict_with_bytes(n: usize) -> Vec<u8> {
    let mut p = vec![0x80, 3, b'}', b'X', 4, 0, 0, 0];
    p.extend_from_slice(b"data");
    p.push(b'B');
    p.extend_from_slice(&(n as u32).to_le_bytes());
    p.extend(std::iter::repeat_n(7u8, n));
    p.extend_from_slice(b"s.");
    p
}

#[test]
fn describing_a_16_mb_value_allocates_kilobytes() {
    let n = 16 << 20;
    let bytes = dict_with_bytes(n);
    // Parsing copies the byte string once; measure that on its own first.
    let before = ALLOCATED.load(Ordering::Relaxed);
    let parsed = ember_data::formats::pickle::parse("p", &bytes).unwrap();
    let parse_cost = ALLOCATED.load(Ordering::Relaxed) - before;
    drop(parsed);

    let before = ALLOCATED.load(Ordering::Relaxed);
    let e = cifar::parse_python("big.pkl", &bytes, cifar::Kind::Cifar10).unwrap_err();
    let cost = ALLOCATED.load(Ordering::Relaxed) - before;
    let msg = e.to_string();
    assert!(msg.contains("big.pkl") && msg.contains("'data'"), "{msg}");
    assert!(msg.len() < 400, "{} bytes of message: {msg}", msg.len());
    assert!(
        cost < parse_cost + (64 << 10),
        "the error path allocated {} bytes beyond parsing ({parse_cost})",
        cost - parse_cost.min(cost)
    );
}
