//! A global allocator that keeps a malformed request from aborting the process.
//!
//! kafka-protocol 0.18 sizes a decoded array with `Vec::with_capacity(n)`, where `n` is the
//! element count read from the request, before it decodes a single element. A request of
//! a few bytes can therefore ask for hundreds of GiB. The system allocator refuses that,
//! and a refused allocation aborts the process. [`GuardedAllocator`] serves allocations of
//! 1 GiB and more with anonymous `MAP_NORESERVE` mappings instead: the kernel reserves
//! address space only, so the allocation succeeds, the decoder then fails on the missing
//! bytes, and the untouched mapping is unmapped again. Smaller allocations go to the
//! system allocator unchanged.
//!
//! TODO: drop this once kafka-protocol bounds array capacities by the bytes left.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of this size and larger get their own mapping.
const LARGE_ALLOCATION: usize = 1 << 30;

/// Alignment an anonymous mapping always satisfies: the smallest page size.
const PAGE_ALIGN: usize = 4096;

/// See the module documentation. Declare it with `#[global_allocator]` in a binary.
pub struct GuardedAllocator;

fn is_mapped(layout: &Layout) -> bool {
    cfg!(unix) && layout.size() >= LARGE_ALLOCATION && layout.align() <= PAGE_ALIGN
}

#[cfg(unix)]
unsafe fn map_anonymous(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
    let address = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        address.cast()
    }
}

#[cfg(unix)]
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: the caller passes a mapping made by `map_anonymous` with the same size.
    unsafe {
        libc::munmap(ptr.cast(), size);
    }
}

#[cfg(not(unix))]
unsafe fn map_anonymous(_size: usize) -> *mut u8 {
    std::ptr::null_mut()
}

#[cfg(not(unix))]
unsafe fn unmap(_ptr: *mut u8, _size: usize) {}

// SAFETY: every pointer is freed by the same mechanism that made it, because `dealloc`
// receives the layout given to `alloc`, and `is_mapped` decides on that layout alone.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_mapped(&layout) {
            unsafe { map_anonymous(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_mapped(&layout) {
            // Anonymous mappings are zero-filled.
            unsafe { map_anonymous(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_mapped(&layout) {
            unsafe { unmap(ptr, layout.size()) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if !is_mapped(&layout) && !is_mapped(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}
