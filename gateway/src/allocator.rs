//! The global allocator: mimalloc, entered through its plain `malloc` whenever the layout allows.
//!
//! The `mimalloc` crate sends every allocation through `mi_malloc_aligned`, which first checks
//! whether a free block happens to be aligned and falls back to a slower search when not.
//! Rust asks for alignment ≤ 16 almost always, and mimalloc already aligns every block of at
//! least that size to 16 (`mi_malloc_is_naturally_aligned` in its `alloc-aligned.c`), so those
//! requests can take `mi_malloc`'s fast path. Larger alignments keep the aligned calls.
#![allow(unsafe_code)]

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc's `MI_MAX_ALIGN_SIZE`: blocks of at least this size are aligned to it.
const NATURAL_ALIGN: usize = 16;

pub struct MiMalloc;

fn natural(align: usize, size: usize) -> bool {
    align <= NATURAL_ALIGN && align <= size
}

// SAFETY: every pointer handed out comes from mimalloc and is released with `mi_free`, which
// accepts blocks from both the plain and the aligned entry points.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if natural(layout.align(), layout.size()) {
            mi::mi_malloc(layout.size()) as *mut u8
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if natural(layout.align(), layout.size()) {
            mi::mi_zalloc(layout.size()) as *mut u8
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if natural(layout.align(), new_size) {
            mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
        } else {
            mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
        }
    }
}

extern "C" {
    // mimalloc's option API; `libmimalloc-sys` declares it only behind a feature that pulls in
    // another crate for two functions.
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 2's `mi_option_t`.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// How long memory stays unused before mimalloc returns it to the OS, unless the operator set
/// `MIMALLOC_PURGE_DELAY`. mimalloc's default, 10 ms, is shorter than the gap between one
/// request's use of a page and the next's: at 19,500 requests a second Warden returned pages
/// with ~40 `madvise` calls a second and faulted them back in ~900 times a second (each a
/// kernel entry, a zeroed page and, on a multi-threaded process, a TLB shootdown). With a
/// second, steady load keeps its pages (no faults at all), and memory a burst left behind
/// still goes back a second later.
pub const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// Applies Warden's allocator settings; call first thing in `main`.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: plain setters of an integer option, callable from any thread at any time.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

/// The purge delay in force, ms.
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: a plain getter of an integer option.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_tuned() {
        // mimalloc documents the default as 10 ms: the index is purge_delay's, not a neighbour's.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 10);
        }
        tune();
        let expected = match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(v) => v.parse().unwrap(),
            Err(_) => PURGE_DELAY_MS,
        };
        assert_eq!(purge_delay_ms(), expected);
    }

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        let a = MiMalloc;
        for size in [1usize, 7, 8, 15, 16, 24, 40, 100, 1000, 5000, 70_000] {
            for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed: size {size} align {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    std::ptr::write_bytes(p, 0xab, size);
                    let r = a.realloc(p, layout, size * 3);
                    assert_eq!(r as usize % align, 0, "realloc: size {size} align {align}");
                    assert!(std::slice::from_raw_parts(r, size)
                        .iter()
                        .all(|&b| b == 0xab));
                    a.dealloc(r, Layout::from_size_align(size * 3, align).unwrap());
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
