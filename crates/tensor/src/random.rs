//! A seeded random generator: same seed, same tensors, on any machine and thread count.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::element::Element;
use crate::shape::numel;
use crate::tensor::Tensor;

/// A seeded source of random numbers for initialisation, dropout and sampling.
///
/// It wraps the ChaCha8 stream cipher, whose output is fixed by its seed across platforms, so
/// the same seed gives the same tensors everywhere (PyTorch's `torch.Generator`, with
/// `manual_seed` as [`Generator::new`]).
///
/// ```
/// # use strata_tensor::{Generator, Tensor};
/// let a: Tensor<f32> = Generator::new(7).randn(&[2, 3]);
/// let b: Tensor<f32> = Generator::new(7).randn(&[2, 3]);
/// assert_eq!(a, b);
/// ```
#[derive(Debug, Clone)]
pub struct Generator {
    rng: ChaCha8Rng,
}

impl Generator {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The next 64 random bits; use it to seed a child generator.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform sample from `[0, 1)`.
    pub fn uniform_f64(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// A standard normal sample.
    pub fn normal_f64(&mut self) -> f64 {
        StandardNormal.sample(&mut self.rng)
    }

    /// A uniform integer from `0..n`.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below: the range 0..0 is empty");
        self.rng.random_range(0..n)
    }

    /// Samples uniformly from `[low, high)` (PyTorch's `uniform_`).
    pub fn uniform<T: Element>(&mut self, shape: &[usize], low: T, high: T) -> Tensor<T> {
        let (lo, span) = (low.as_f64(), high.as_f64() - low.as_f64());
        let data = (0..numel(shape))
            .map(|_| T::from_f64(lo + span * self.uniform_f64()))
            .collect();
        Tensor::from_contiguous(data, shape.to_vec())
    }

    /// Samples from `[0, 1)` (PyTorch's `torch.rand`).
    pub fn rand<T: Element>(&mut self, shape: &[usize]) -> Tensor<T> {
        self.uniform(shape, T::zero(), T::one())
    }

    /// Samples from `N(mean, std^2)` (PyTorch's `normal_`).
    pub fn normal<T: Element>(&mut self, shape: &[usize], mean: T, std: T) -> Tensor<T> {
        let (m, s) = (mean.as_f64(), std.as_f64());
        let data = (0..numel(shape))
            .map(|_| T::from_f64(m + s * self.normal_f64()))
            .collect();
        Tensor::from_contiguous(data, shape.to_vec())
    }

    /// Samples from the standard normal (PyTorch's `torch.randn`).
    pub fn randn<T: Element>(&mut self, shape: &[usize]) -> Tensor<T> {
        self.normal(shape, T::zero(), T::one())
    }

    /// Each element is 1 with probability `p` and 0 otherwise (PyTorch's `bernoulli`).
    pub fn bernoulli<T: Element>(&mut self, shape: &[usize], p: f64) -> Tensor<T> {
        let data = (0..numel(shape))
            .map(|_| {
                if self.uniform_f64() < p {
                    T::one()
                } else {
                    T::zero()
                }
            })
            .collect();
        Tensor::from_contiguous(data, shape.to_vec())
    }

    /// A random permutation of `0..n` (PyTorch's `torch.randperm`), by Fisher-Yates.
    pub fn randperm(&mut self, n: usize) -> Vec<usize> {
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            perm.swap(i, j);
        }
        perm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_samples_and_different_seed_differs() {
        let a: Tensor<f64> = Generator::new(1).normal(&[100], 0.0, 1.0);
        let b: Tensor<f64> = Generator::new(1).normal(&[100], 0.0, 1.0);
        let c: Tensor<f64> = Generator::new(2).normal(&[100], 0.0, 1.0);

        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uniform_stays_in_range_and_moments_are_plausible() {
        let x: Tensor<f64> = Generator::new(3).uniform(&[10_000], -2.0, 4.0);
        let v = x.to_vec();
        let mean = v.iter().sum::<f64>() / v.len() as f64;

        assert!(v.iter().all(|&e| (-2.0..4.0).contains(&e)));
        assert!((mean - 1.0).abs() < 0.1, "mean {mean}");
    }

    #[test]
    fn bernoulli_rate_is_close_to_p() {
        let x: Tensor<f32> = Generator::new(4).bernoulli(&[10_000], 0.3);
        let rate = x.to_vec().iter().sum::<f32>() / 10_000.0;

        assert!((rate - 0.3).abs() < 0.02, "rate {rate}");
    }

    #[test]
    fn randperm_is_a_permutation() {
        let mut p = Generator::new(5).randperm(50);
        p.sort_unstable();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
    }
}
