//! Keeping freed tensor memory in the process, so that the next step's tensors reuse it.
//!
//! A training step allocates its activations and gradients (megabytes each) and frees them
//! all before the next step allocates them again. With glibc's default settings, freeing them
//! hands the memory back to the kernel (large blocks are unmapped, the top of the heap is
//! trimmed), so every step page-faults its whole working set in again: about a quarter of a
//! char GPT step was spent in the kernel that way. On the first tensor it builds, this crate
//! therefore raises glibc's mmap threshold to 32 MiB and its trim threshold to 256 MiB
//! (`mallopt`), which keeps up to 256 MiB of freed memory for reuse. The cost is a resident
//! size that stays near its peak.
//!
//! Blocks above 32 MiB still come fresh from the kernel each time (glibc caps the threshold
//! there), and faulting them in 4 KiB at a time cost three quarters of an elementwise add of
//! 16M `f32`s. Kernels that build a large output (8 MiB and up) without zero-filling it first
//! therefore ask for transparent huge pages on it (`madvise(MADV_HUGEPAGE)`, honoured where
//! the system's setting is `madvise` or `always`): 512 times fewer faults.
//!
//! Set `STRATA_KEEP_FREED_MEMORY=0` to leave the allocator's settings and page sizes alone;
//! on other C libraries and systems nothing changes.

use std::ffi::OsStr;
use std::sync::Once;

/// The environment variable that, set to `0`, leaves the C allocator's settings (and page
/// sizes) alone.
pub const KEEP_FREED_MEMORY_VAR: &str = "STRATA_KEEP_FREED_MEMORY";

/// Blocks up to this size come from the heap, where freed memory is reused.
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Free memory at the top of the heap beyond this is returned to the kernel.
const TRIM_THRESHOLD: i32 = 256 << 20;

static TUNED: Once = Once::new();

/// Applies the allocator settings of this module once per process (see the module docs).
pub(crate) fn keep_freed_memory() {
    TUNED.call_once(|| {
        if wanted(std::env::var_os(KEEP_FREED_MEMORY_VAR).as_deref()) {
            platform::set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD);
        }
    });
}

/// Buffers from this size on ask the kernel for transparent huge pages before their first
/// write (see [`advise_huge_pages`]).
const HUGE_PAGE_MIN_BYTES: usize = 8 << 20;

/// Asks Linux to back the unwritten buffer `spare` with 2 MiB transparent huge pages (where
/// the system allows them on request, `madvise` mode). Buffers above the mmap threshold come
/// fresh from the kernel on every allocation, and faulting them in 4 KiB at a time was a large
/// part of an elementwise op on 16M elements; with huge pages it takes 512 times fewer faults.
/// Does nothing for small buffers, under the opt-out variable, or off Linux.
pub(crate) fn advise_huge_pages<T>(spare: &mut [std::mem::MaybeUninit<T>]) {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let bytes = std::mem::size_of_val(spare);
    if bytes >= HUGE_PAGE_MIN_BYTES
        && *WANTED.get_or_init(|| wanted(std::env::var_os(KEEP_FREED_MEMORY_VAR).as_deref()))
    {
        platform::advise_huge_pages(spare.as_mut_ptr().cast(), bytes);
    }
}

/// Whether the variable's value asks for the tuning: anything but `0` (or unset) does.
fn wanted(value: Option<&OsStr>) -> bool {
    value.is_none_or(|v| v != "0")
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod platform {
    use std::os::raw::c_int;

    /// glibc's `M_TRIM_THRESHOLD` parameter of `mallopt`.
    const M_TRIM_THRESHOLD: c_int = -1;
    /// glibc's `M_MMAP_THRESHOLD` parameter of `mallopt`.
    const M_MMAP_THRESHOLD: c_int = -3;

    /// Linux's `MADV_HUGEPAGE` advice of `madvise`.
    const MADV_HUGEPAGE: c_int = 14;
    /// The size of a transparent huge page on x86-64 and aarch64 with 4 KiB pages.
    const HUGE_PAGE: usize = 2 << 20;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: c_int) -> c_int;
    }

    pub(super) fn advise_huge_pages(start: *mut u8, len: usize) {
        // Only whole huge pages inside the buffer: advice never reaches memory outside it.
        let first = (start as usize).next_multiple_of(HUGE_PAGE);
        let end = (start as usize + len) / HUGE_PAGE * HUGE_PAGE;
        if end > first {
            // SAFETY: the range lies inside a live allocation the caller owns; the advice
            // changes how the kernel backs it, not its contents or mapping, and a refusal
            // (error return) leaves it as it was.
            unsafe {
                madvise(first as *mut std::ffi::c_void, end - first, MADV_HUGEPAGE);
            }
        }
    }

    pub(super) fn set_thresholds(mmap: i32, trim: i32) {
        // SAFETY: `mallopt` only changes glibc malloc's tunables, takes plain integers, and is
        // safe to call at any time from any thread; it returns 0 on a rejected value, which
        // leaves that setting as it was.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, mmap);
            mallopt(M_TRIM_THRESHOLD, trim);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod platform {
    pub(super) fn set_thresholds(_mmap: i32, _trim: i32) {}

    pub(super) fn advise_huge_pages(_start: *mut u8, _len: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zero_turns_the_tuning_off() {
        assert!(wanted(None));
        assert!(wanted(Some(OsStr::new("1"))));
        assert!(!wanted(Some(OsStr::new("0"))));
    }

    #[test]
    fn tuning_twice_is_harmless() {
        keep_freed_memory();
        keep_freed_memory();

        assert!(TUNED.is_completed());
    }
}
