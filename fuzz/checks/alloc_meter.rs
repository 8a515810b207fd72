//! A global allocator that measures, per thread, how many heap bytes a piece of code holds at its
//! peak. Each binary that runs the checks installs it:
//! `#[global_allocator] static ALLOC: Meter = Meter;`
//!
//! Per thread, so that tests running in parallel do not disturb each other's measurements.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Meter;

thread_local! {
    // `const` and `Copy`: no lazy initialisation and no destructor, so the allocator can touch
    // them without allocating.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the counting touches no heap memory.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as if the old and new blocks coexisted, which a moving realloc does.
            track(new_size as isize);
            track(-(layout.size() as isize));
        }
        p
    }
}

/// Runs `f` and returns its result with the most heap bytes it held at once (on this thread,
/// above what was live before; what `f` returns and still owns counts).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - start) as usize)
}

/// Whether `Meter` is this binary's allocator; checks that rely on `measure` assert it, so that a
/// binary without it fails instead of passing vacuously.
pub fn installed() -> bool {
    measure(|| std::hint::black_box(vec![0u8; 64])).1 >= 64
}
