//! The process's allocator: mimalloc, asked for a plain block whenever a plain block is
//! aligned enough.
//!
//! The `mimalloc` crate hands every Rust allocation to mimalloc's aligned entry points. In
//! mimalloc 3 those serve a plain block only when its size is a power of two: any other size
//! (a 48-byte future, a 200-byte buffer) takes the long way round and is over-allocated to the
//! next power of two. Like C's `malloc`, `mi_malloc` returns memory aligned for any object of
//! the size asked (to 16 bytes from 16 bytes up), so a layout whose alignment is at most 16
//! and at most its size can use it directly, as the standard library's `System` allocator does
//! with `malloc`. This is the crate's only `unsafe` code.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys as mi;

/// The alignment of every plain block of at least this many bytes (`MI_MAX_ALIGN_SIZE`, C's
/// `alignof(max_align_t)` on 64-bit targets).
const PLAIN_ALIGN: usize = 16;

/// mimalloc as the global allocator, through its plain entry points where they suffice.
pub struct Allocator;

/// Whether a plain block of `size` bytes is aligned to `align`.
fn plain_suffices(align: usize, size: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every method forwards to mimalloc with the layout's size, and asks for its alignment
// explicitly unless a plain block of that size already has it (`plain_suffices`). Blocks from
// both families of entry points are released by `mi_free` and resized by either `mi_realloc`
// (which keeps a plain block's alignment) or `mi_realloc_aligned`.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if plain_suffices(align, size) {
            // SAFETY: `size` is non-zero (GlobalAlloc's contract) and a plain block is aligned.
            unsafe { mi::mi_malloc(size) }.cast()
        } else {
            // SAFETY: `align` is a power of two (Layout's invariant).
            unsafe { mi::mi_malloc_aligned(size, align) }.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if plain_suffices(align, size) {
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc(size) }.cast()
        } else {
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc_aligned(size, align) }.cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract), so from mimalloc.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain_suffices(layout.align(), new_size) {
            // SAFETY: `ptr` came from mimalloc; the plain block of `new_size` is aligned.
            unsafe { mi::mi_realloc(ptr.cast(), new_size) }.cast()
        } else {
            // SAFETY: `ptr` came from mimalloc; the alignment is a power of two.
            unsafe { mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()) }.cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around every small bin and a few large ones; alignments plain and over-aligned.
    const SIZES: [usize; 14] = [
        1,
        2,
        3,
        7,
        8,
        12,
        16,
        24,
        40,
        48,
        200,
        4_000,
        70_000,
        1 << 21,
    ];
    const ALIGNS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 4_096];

    fn layouts() -> impl Iterator<Item = Layout> {
        SIZES.into_iter().flat_map(|size| {
            ALIGNS
                .into_iter()
                .filter_map(move |align| Layout::from_size_align(size, align).ok())
        })
    }

    fn assert_aligned(ptr: *mut u8, layout: Layout) {
        assert!(!ptr.is_null(), "{layout:?} was refused");
        assert_eq!(ptr as usize % layout.align(), 0, "{layout:?} is misaligned");
    }

    #[test]
    fn every_block_is_aligned_as_its_layout_asks_and_holds_its_bytes() {
        for layout in layouts() {
            // SAFETY: non-zero sizes; each block is written within its size and freed once.
            unsafe {
                let ptr = Allocator.alloc(layout);
                assert_aligned(ptr, layout);
                ptr.write_bytes(0xA5, layout.size());
                assert_eq!(*ptr.add(layout.size() - 1), 0xA5);
                Allocator.dealloc(ptr, layout);

                let zeroed = Allocator.alloc_zeroed(layout);
                assert_aligned(zeroed, layout);
                let bytes = std::slice::from_raw_parts(zeroed, layout.size());
                assert!(bytes.iter().all(|&b| b == 0), "{layout:?} is not zeroed");
                Allocator.dealloc(zeroed, layout);
            }
        }
    }

    #[test]
    fn a_resized_block_keeps_its_alignment_and_its_contents() {
        for layout in layouts() {
            for new_size in SIZES {
                // The first bytes (all of a small block) are enough to see a lost copy.
                let written = layout.size().min(4_096);
                let kept = written.min(new_size);
                // SAFETY: as above; the resized block is freed with its new layout.
                unsafe {
                    let ptr = Allocator.alloc(layout);
                    for i in 0..written {
                        *ptr.add(i) = (i % 251) as u8;
                    }
                    let resized = Allocator.realloc(ptr, layout, new_size);
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    assert_aligned(resized, new_layout);
                    for i in 0..kept {
                        assert_eq!(*resized.add(i), (i % 251) as u8, "{layout:?} -> {new_size}");
                    }
                    Allocator.dealloc(resized, new_layout);
                }
            }
        }
    }

    #[test]
    fn only_layouts_a_plain_block_satisfies_take_the_plain_path() {
        assert!(plain_suffices(8, 48));
        assert!(plain_suffices(16, 16));
        assert!(plain_suffices(1, 1));
        assert!(!plain_suffices(16, 8), "an 8-byte block is only 8-aligned");
        assert!(!plain_suffices(32, 64), "over-aligned");
        assert!(!plain_suffices(4_096, 4_096), "page-aligned");
    }
}
