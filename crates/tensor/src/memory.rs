//! Keeping freed tensor memory in the process, so that the next step's tensors reuse it.
//!
//! A training step allocates its activations and gradients (megabytes each) and frees them
//! all before the next step allocates them again. With glibc's default settings, freeing them
//! hands the memory back to the kernel (large blocks are unmapped, the top of the heap is
//! trimmed), so every step page-faults its whole working set in again: about a quarter of a
//! char GPT step was spent in the kernel that way. On the first tensor it builds, this crate
//! therefore raises glibc's mmap threshold to 32 MiB and its trim threshold to 256 MiB
//! (`mallopt`), which keeps up to 256 MiB of freed memory for reuse. The cost is a resident
//! size that stays near its peak. Set `STRATA_KEEP_FREED_MEMORY=0` to leave the allocator's
//! settings alone; on other C libraries nothing changes.

use std::ffi::OsStr;
use std::sync::Once;

/// The environment variable that, set to `0`, leaves the C allocator's settings alone.
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

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
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
