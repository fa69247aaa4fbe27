//! Gradient clipping (PyTorch's `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`).

use rayon::prelude::*;
use strata_autograd::Var;
use strata_tensor::{Element, Tensor};

use crate::error::{invalid, OptimError, Result};

/// Options of [`clip_grad_norm_with`]; `Default` matches PyTorch's `clip_grad_norm_`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipGradNormConfig {
    /// Order of the norm: any `p > 0`, or `f64::INFINITY` for the largest absolute value.
    /// Default `2`.
    pub norm_type: f64,
    /// Return [`OptimError::NonFiniteNorm`] (and leave the gradients alone) when the total
    /// norm is NaN or infinite. Default `false`.
    pub error_if_nonfinite: bool,
}

impl Default for ClipGradNormConfig {
    fn default() -> Self {
        Self {
            norm_type: 2.0,
            error_if_nonfinite: false,
        }
    }
}

/// Scales all gradients together so that their total norm is at most `max_norm`, and returns
/// the total norm before clipping (PyTorch's `clip_grad_norm_`).
///
/// ```text
/// total = || (||g_1||_p, ||g_2||_p, ...) ||_p        over parameters that have a gradient
/// coef  = min(max_norm / (total + 1e-6), 1)
/// g_i   = g_i * coef
/// ```
///
/// The norm is summed in `f64`, serially, in parameter order, so it does not depend on the
/// thread count. Parameters without a gradient are skipped; with none, the total is 0.
///
/// A NaN or infinite total norm is returned as is, and the gradients are still scaled by
/// `coef`, as PyTorch does with its default `error_if_nonfinite=False`: a NaN total makes
/// every gradient NaN, an infinite one makes them 0 (NaN where they were infinite). Use
/// [`clip_grad_norm_with`] to get an error instead.
///
/// ```
/// use strata_autograd::Var;
/// use strata_optim::clip_grad_norm;
/// use strata_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::<f32>::zeros(&[2]));
/// w.set_grad(Some(Tensor::from_vec(vec![3.0, 4.0], &[2])?));
/// let total = clip_grad_norm(&[w.clone()], 1.0, 2.0)?;
/// assert_eq!(total, 5.0);
/// let g = w.grad().unwrap().to_vec();
/// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`OptimError::InvalidHyperparameter`] if `norm_type` is not positive (or NaN).
pub fn clip_grad_norm<'a, T: Element>(
    params: impl IntoIterator<Item = &'a Var<T>>,
    max_norm: f64,
    norm_type: f64,
) -> Result<T> {
    let config = ClipGradNormConfig {
        norm_type,
        ..Default::default()
    };
    clip_grad_norm_with(params, max_norm, config)
}

/// [`clip_grad_norm`] with all of PyTorch's options.
///
/// # Errors
/// [`OptimError::InvalidHyperparameter`] if `norm_type` is not positive (or NaN), and
/// [`OptimError::NonFiniteNorm`] if `error_if_nonfinite` is set and the total norm is NaN or
/// infinite.
pub fn clip_grad_norm_with<'a, T: Element>(
    params: impl IntoIterator<Item = &'a Var<T>>,
    max_norm: f64,
    config: ClipGradNormConfig,
) -> Result<T> {
    let p = config.norm_type;
    if p.is_nan() || p <= 0.0 {
        return Err(invalid(
            "clip_grad_norm",
            "norm_type",
            p,
            "expected > 0 or inf",
        ));
    }
    let params: Vec<&Var<T>> = params.into_iter().filter(|v| v.grad().is_some()).collect();

    // Each parameter's norm on its own task, combined in parameter order below: the same
    // bits on any thread count.
    let norms: Vec<f64> = params
        .par_iter()
        .map(|param| {
            let grad = param.grad().expect("bug: filtered on having a gradient");
            // Memory order: a transposed weight gradient is summed where it lies, not copied.
            match grad.as_slice_memory_order() {
                Some(xs) => vector_norm(xs, p),
                None => vector_norm(&grad.contiguous_slice(), p),
            }
        })
        .collect();
    let mut total = 0.0f64;
    for norm in norms {
        total = if p == f64::INFINITY {
            nan_max(total, norm)
        } else {
            total + norm.powf(p)
        };
    }
    if p != f64::INFINITY {
        total = total.powf(1.0 / p);
    }
    let total_t = T::from_f64(total);
    if config.error_if_nonfinite && !total_t.is_finite() {
        return Err(OptimError::NonFiniteNorm {
            norm_type: p,
            total,
        });
    }

    let coef = T::from_f64(max_norm) / (total_t + T::from_f64(1e-6));
    let coef = if coef > T::one() { T::one() } else { coef };
    if coef != T::one() {
        params
            .par_iter()
            .for_each(|param| scale_grad(param, |g| *g *= coef));
    }
    Ok(total_t)
}

/// Clamps every gradient element to `[-clip_value, clip_value]` (PyTorch's
/// `clip_grad_value_`). NaN elements stay NaN.
///
/// # Errors
/// [`OptimError::InvalidHyperparameter`] if `clip_value` is negative or NaN.
pub fn clip_grad_value<'a, T: Element>(
    params: impl IntoIterator<Item = &'a Var<T>>,
    clip_value: f64,
) -> Result<()> {
    if clip_value.is_nan() || clip_value < 0.0 {
        return Err(invalid(
            "clip_grad_value",
            "clip_value",
            clip_value,
            "expected >= 0",
        ));
    }
    let hi = T::from_f64(clip_value);
    let lo = -hi;
    for param in params {
        scale_grad(param, |g| {
            if *g > hi {
                *g = hi;
            } else if *g < lo {
                *g = lo;
            }
        });
    }
    Ok(())
}

/// The `p`-norm of `xs` in `f64` (NaN if any element is NaN).
fn vector_norm<T: Element>(xs: &[T], p: f64) -> f64 {
    if p == f64::INFINITY {
        xs.iter().fold(0.0, |acc, x| nan_max(acc, x.as_f64().abs()))
    } else if p == 2.0 {
        lane_sum(xs, |x| x * x).sqrt()
    } else if p == 1.0 {
        lane_sum(xs, f64::abs)
    } else {
        xs.iter()
            .map(|x| x.as_f64().abs().powf(p))
            .sum::<f64>()
            .powf(1.0 / p)
    }
}

/// `sum f(x)` in `f64` over eight interleaved partial sums combined in a fixed order: the
/// same bits on every run, and free to vectorize (one running sum is not).
fn lane_sum<T: Element>(xs: &[T], f: impl Fn(f64) -> f64) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += f(x.as_f64());
        }
    }
    for (a, &x) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(x.as_f64());
    }
    acc.iter().sum()
}

/// The larger of two values, NaN if either is NaN (as `torch.max` propagates NaN).
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Applies `f` to every gradient element of `param` in place, if it has a gradient.
fn scale_grad<T: Element>(param: &Var<T>, f: impl Fn(&mut T)) {
    let Some(grad) = param.grad() else { return };
    // Take the gradient out first so that this handle is the only owner and the update does
    // not copy the buffer.
    param.set_grad(None);
    let mut grad: Tensor<T> = grad;
    grad.data_mut_memory_order().iter_mut().for_each(f);
    param.set_grad(Some(grad));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_grad(values: &[f32]) -> Var<f32> {
        let v = Var::parameter(Tensor::zeros(&[values.len()]));
        v.set_grad(Some(
            Tensor::from_vec(values.to_vec(), &[values.len()]).unwrap(),
        ));
        v
    }

    #[test]
    fn total_norm_spans_all_parameters() {
        let a = with_grad(&[3.0]);
        let b = with_grad(&[4.0, 0.0]);
        let none = Var::parameter(Tensor::<f32>::zeros(&[2]));

        let total = clip_grad_norm([&a, &b, &none], 10.0, 2.0).unwrap();

        assert_eq!(total, 5.0);
        assert_eq!(a.grad().unwrap().to_vec(), vec![3.0]);
        assert!(none.grad().is_none());
    }

    #[test]
    fn inf_norm_is_the_largest_magnitude() {
        let a = with_grad(&[1.0, -6.0]);
        let b = with_grad(&[2.0]);

        let total = clip_grad_norm([&a, &b], 3.0, f64::INFINITY).unwrap();

        assert_eq!(total, 6.0);
        let g = a.grad().unwrap().to_vec();
        assert!((g[1] + 3.0).abs() < 1e-5, "{g:?}");
    }

    #[test]
    fn no_gradients_give_zero() {
        let a = Var::parameter(Tensor::<f32>::zeros(&[2]));

        assert_eq!(clip_grad_norm([&a], 1.0, 2.0).unwrap(), 0.0);
    }

    #[test]
    fn nan_norm_is_returned_or_reported() {
        let a = with_grad(&[f32::NAN, 1.0]);
        let config = ClipGradNormConfig {
            error_if_nonfinite: true,
            ..Default::default()
        };

        let err = clip_grad_norm_with([&a], 1.0, config).unwrap_err();
        assert!(matches!(err, OptimError::NonFiniteNorm { .. }), "{err}");
        assert_eq!(a.grad().unwrap().to_vec()[1], 1.0);

        let total = clip_grad_norm([&a], 1.0, 2.0).unwrap();
        assert!(total.is_nan());
        assert!(a.grad().unwrap().to_vec()[1].is_nan());
    }

    #[test]
    fn clip_value_clamps_each_element() {
        let a = with_grad(&[-3.0, 0.5, 2.0]);

        clip_grad_value([&a], 1.0).unwrap();

        assert_eq!(a.grad().unwrap().to_vec(), vec![-1.0, 0.5, 1.0]);
    }

    #[test]
    fn bad_norm_type_is_rejected() {
        let a = with_grad(&[1.0]);

        assert!(clip_grad_norm([&a], 1.0, 0.0).is_err());
        assert!(clip_grad_norm([&a], 1.0, f64::NAN).is_err());
    }
}
