//! When and how kernels split work across rayon's threads.
//!
//! Most tensors in training are small, and handing work to another thread costs more than
//! doing it, so kernels run serially below [`PAR_THRESHOLD`] elements. Above it, work is cut
//! into fixed chunks of [`CHUNK`] elements, independent of the thread count, so that
//! reductions combine their partial results in the same order and give the same bits on any
//! number of threads.

use rayon::prelude::*;

/// Runs `op` on a worker thread of rayon's global pool and returns its result, blocking the
/// calling thread meanwhile; called from a worker, it just runs `op`.
///
/// Run a training loop this way. Called from the main thread, every parallel kernel hands its
/// work to the pool's workers and puts the main thread to sleep until they finish: with as
/// many workers as cores there are then more threads than cores, and each op pays for
/// waking a worker and being woken back (measured on 2 cores: a char GPT training step 11%
/// faster inside). Inside the pool the thread that runs the ops takes part in their kernels,
/// as the main thread of an OpenMP program such as PyTorch does. Results are the same bits
/// either way.
///
/// Thread-local state set outside (`strata_autograd::no_grad` guards, for one) does not
/// carry into `op`; set it inside.
///
/// ```
/// let total = strata_tensor::parallel::in_pool(|| {
///     let x = strata_tensor::Tensor::<f32>::ones(&[1000]);
///     x.sum_all().item()
/// });
/// assert_eq!(total?, 1000.0);
/// # Ok::<(), strata_tensor::TensorError>(())
/// ```
pub fn in_pool<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        op()
    } else {
        rayon::scope(|_| op())
    }
}

/// Elementwise kernels on at least this many elements run in parallel.
pub const PAR_THRESHOLD: usize = 1 << 16;

/// The fixed chunk size parallel kernels split their input into.
pub const CHUNK: usize = 1 << 14;

/// Writes `f(src[i])` into `dst[i]`, in parallel for large inputs.
pub(crate) fn map_into<A: Copy + Sync, B: Send>(
    src: &[A],
    dst: &mut [B],
    f: impl Fn(A) -> B + Sync,
) {
    debug_assert_eq!(src.len(), dst.len(), "bug: map_into lengths differ");
    if src.len() >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (o, &x) in d.iter_mut().zip(s) {
                    *o = f(x);
                }
            });
    } else {
        for (o, &x) in dst.iter_mut().zip(src) {
            *o = f(x);
        }
    }
}

/// Writes `f(a[i], b[i])` into `dst[i]`, in parallel for large inputs.
pub(crate) fn zip_into<A: Copy + Sync, B: Copy + Sync, C: Send>(
    a: &[A],
    b: &[B],
    dst: &mut [C],
    f: impl Fn(A, B) -> C + Sync,
) {
    debug_assert!(
        a.len() == dst.len() && b.len() == dst.len(),
        "bug: zip_into lengths differ"
    );
    if dst.len() >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
        dst.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .zip(b.par_chunks(CHUNK))
            .for_each(|((d, x), y)| {
                for ((o, &p), &q) in d.iter_mut().zip(x).zip(y) {
                    *o = f(p, q);
                }
            });
    } else {
        for ((o, &p), &q) in dst.iter_mut().zip(a).zip(b) {
            *o = f(p, q);
        }
    }
}

/// Sums a slice deterministically: serial below the threshold, otherwise fixed chunks summed
/// in parallel and the partial sums added in chunk order.
pub(crate) fn sum_slice<T: crate::Element>(xs: &[T]) -> T {
    if xs.len() >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
        let partial: Vec<T> = xs.par_chunks(CHUNK).map(pairwise_sum).collect();
        partial.into_iter().fold(T::zero(), |acc, x| acc + x)
    } else {
        xs.chunks(CHUNK)
            .map(pairwise_sum)
            .fold(T::zero(), |acc, x| acc + x)
    }
}

/// Sums with 8 independent accumulators, which vectorises and loses less precision than one
/// running sum.
pub(crate) fn pairwise_sum<T: crate::Element>(xs: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    let mut total =
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for &x in chunks.remainder() {
        total += x;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_pool_runs_on_a_worker_and_returns_the_result() {
        assert_eq!(rayon::current_thread_index(), None);
        let (index, nested) = in_pool(|| {
            let nested = in_pool(rayon::current_thread_index);
            (rayon::current_thread_index(), nested)
        });
        assert!(index.is_some());
        assert_eq!(nested, index);
    }

    #[test]
    fn in_pool_passes_panics_back_to_the_caller() {
        let caught = std::panic::catch_unwind(|| in_pool(|| panic!("inside")));
        assert!(caught.is_err());
    }
}
