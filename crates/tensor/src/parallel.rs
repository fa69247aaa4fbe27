//! When and how kernels split work across rayon's threads.
//!
//! Most tensors in training are small, and handing work to another thread costs more than
//! doing it, so kernels run serially below [`PAR_THRESHOLD`] elements. Above it, work is cut
//! into fixed chunks of [`CHUNK`] elements, independent of the thread count, so that
//! reductions combine their partial results in the same order and give the same bits on any
//! number of threads.

use std::mem::MaybeUninit;

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

/// A vector of `n` elements written by `fill(offset, chunk)` over chunks of `chunk_len`
/// elements that cover `0..n` (one call with the whole vector unless `parallel`), without
/// zero-filling it first: a zero fill is a serial pass over memory that the parallel pass
/// then writes again.
///
/// `fill` must write every element of the chunk it is given (with `MaybeUninit::write`); the
/// crate's callers do so by construction.
pub(crate) fn build_vec<T: Copy + Send>(
    n: usize,
    parallel: bool,
    chunk_len: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    crate::memory::advise_huge_pages(spare);
    if parallel && n > chunk_len {
        spare
            .par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, chunk)| fill(i * chunk_len, chunk));
    } else {
        fill(0, spare);
    }
    // SAFETY: the chunks cover the first `n` elements of the capacity and `fill` wrote every
    // element of each; `T: Copy`, so nothing needs dropping if `fill` panicked before this.
    unsafe { out.set_len(n) };
    out
}

/// `f(src[i])` for every element, in parallel for large inputs.
pub(crate) fn map_vec<A: Copy + Sync, B: Copy + Send>(
    src: &[A],
    f: impl Fn(A) -> B + Sync,
) -> Vec<B> {
    let parallel = src.len() >= PAR_THRESHOLD && rayon::current_num_threads() > 1;
    build_vec(src.len(), parallel, CHUNK, |at, out| {
        let src = &src[at..at + out.len()];
        for (o, &x) in out.iter_mut().zip(src) {
            o.write(f(x));
        }
    })
}

/// `f(a[i], b[i])` for every element of two slices of the same length, in parallel for large
/// inputs.
pub(crate) fn zip_vec<A: Copy + Sync, B: Copy + Sync, C: Copy + Send>(
    a: &[A],
    b: &[B],
    f: impl Fn(A, B) -> C + Sync,
) -> Vec<C> {
    assert_eq!(a.len(), b.len(), "bug: zip_vec lengths differ");
    let parallel = a.len() >= PAR_THRESHOLD && rayon::current_num_threads() > 1;
    build_vec(a.len(), parallel, CHUNK, |at, out| {
        let len = out.len();
        let (a, b) = (&a[at..at + len], &b[at..at + len]);
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            o.write(f(x, y));
        }
    })
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

/// Sums with [`SUM_LANES`] independent accumulators, added in a fixed tree at the end: the
/// loop vectorises into several registers whose additions do not wait on each other (one
/// running sum, or one register of sums, waits on the previous addition at every step), and
/// it loses less precision than one running sum.
pub(crate) fn pairwise_sum<T: crate::Element>(xs: &[T]) -> T {
    let mut acc = [T::zero(); SUM_LANES];
    let mut chunks = xs.chunks_exact(SUM_LANES);
    for c in &mut chunks {
        for k in 0..SUM_LANES {
            acc[k] += c[k];
        }
    }
    let mut width = SUM_LANES;
    while width > 1 {
        width /= 2;
        for k in 0..width {
            acc[k] += acc[k + width];
        }
    }
    let mut total = acc[0];
    for &x in chunks.remainder() {
        total += x;
    }
    total
}

/// Accumulators of [`pairwise_sum`]: four AVX2 registers of `f32` (eight SSE registers).
const SUM_LANES: usize = 32;

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
    fn map_and_zip_vectors_write_every_element_on_any_thread_count() {
        let n = 3 * PAR_THRESHOLD + 17;
        let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..n).map(|i| (n - i) as f64).collect();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (mapped, zipped) =
                pool.install(|| (map_vec(&a, |x| 2.0 * x), zip_vec(&a, &b, |x, y| x + y)));
            assert_eq!(mapped.len(), n);
            assert!(mapped.iter().enumerate().all(|(i, &x)| x == 2.0 * i as f64));
            assert!(zipped.iter().all(|&x| x == n as f64));
        }
        assert!(map_vec(&[] as &[f32], |x| x).is_empty());
        // Large enough to be backed by huge pages where the system allows them.
        let big = vec![1.5f32; (9 << 20) / 4 + 3];
        let doubled = map_vec(&big, |x| 2.0 * x);
        assert_eq!(doubled.len(), big.len());
        assert!(doubled.iter().all(|&x| x == 3.0));
    }

    #[test]
    fn in_pool_passes_panics_back_to_the_caller() {
        let caught = std::panic::catch_unwind(|| in_pool(|| panic!("inside")));
        assert!(caught.is_err());
    }
}
