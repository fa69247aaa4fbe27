//! Regression losses: squared error, absolute error, Huber and smooth L1.

use strata_autograd::Var;
use strata_tensor::{Element, Tensor};

use super::{check_same_shape, Reduction};
use crate::error::{NnError, Result};

/// Mean squared error, PyTorch's `F.mse_loss(input, target, reduction)`.
///
/// ```text
/// l_i = (x_i - y_i)^2
/// ```
///
/// # Shapes
/// - `input`, `target`: the same shape; output: scalar, or that shape for `Reduction::None`
///
/// # Errors
/// [`NnError::Input`] if the shapes differ.
pub fn mse_loss<T: Element>(
    input: &Var<T>,
    target: &Var<T>,
    reduction: Reduction,
) -> Result<Var<T>> {
    check_same_shape("mse_loss", input, target)?;
    Ok(reduction.apply(input.sub(target)?.square()))
}

/// Mean absolute error, PyTorch's `F.l1_loss(input, target, reduction)`.
///
/// ```text
/// l_i = |x_i - y_i|
/// ```
///
/// # Shapes
/// - `input`, `target`: the same shape; output: scalar, or that shape for `Reduction::None`
///
/// # Errors
/// [`NnError::Input`] if the shapes differ.
pub fn l1_loss<T: Element>(
    input: &Var<T>,
    target: &Var<T>,
    reduction: Reduction,
) -> Result<Var<T>> {
    check_same_shape("l1_loss", input, target)?;
    Ok(reduction.apply(input.sub(target)?.abs()))
}

/// Huber loss, PyTorch's `F.huber_loss(input, target, reduction, delta)`.
///
/// ```text
/// d_i = x_i - y_i
/// l_i = d_i^2 / 2                   if |d_i| < delta
///       delta * (|d_i| - delta / 2)  otherwise
/// ```
///
/// # Shapes
/// - `input`, `target`: the same shape; output: scalar, or that shape for `Reduction::None`
///
/// # Errors
/// [`NnError::Input`] if the shapes differ, [`NnError::Config`] unless `delta > 0`.
pub fn huber_loss<T: Element>(
    input: &Var<T>,
    target: &Var<T>,
    reduction: Reduction,
    delta: f64,
) -> Result<Var<T>> {
    check_same_shape("huber_loss", input, target)?;
    if delta.is_nan() || delta <= 0.0 {
        return Err(NnError::Config {
            layer: "huber_loss",
            reason: format!("delta must be positive, got {delta}"),
        });
    }
    let diff = input.sub(target)?;
    let abs = diff.abs();
    let quadratic = diff.square().mul_scalar(T::from_f64(0.5));
    let linear = abs
        .add_scalar(T::from_f64(-0.5 * delta))
        .mul_scalar(T::from_f64(delta));
    let inside = below(&abs, delta);
    Ok(reduction.apply(quadratic.where_cond(&inside, &linear)?))
}

/// Smooth L1 loss, PyTorch's `F.smooth_l1_loss(input, target, reduction, beta)`.
///
/// ```text
/// d_i = x_i - y_i
/// l_i = d_i^2 / (2 beta)    if |d_i| < beta
///       |d_i| - beta / 2     otherwise
/// ```
///
/// With `beta = 0` it is the L1 loss, as in PyTorch.
///
/// # Shapes
/// - `input`, `target`: the same shape; output: scalar, or that shape for `Reduction::None`
///
/// # Errors
/// [`NnError::Input`] if the shapes differ, [`NnError::Config`] if `beta` is negative.
pub fn smooth_l1_loss<T: Element>(
    input: &Var<T>,
    target: &Var<T>,
    reduction: Reduction,
    beta: f64,
) -> Result<Var<T>> {
    check_same_shape("smooth_l1_loss", input, target)?;
    if beta.is_nan() || beta < 0.0 {
        return Err(NnError::Config {
            layer: "smooth_l1_loss",
            reason: format!("beta must not be negative, got {beta}"),
        });
    }
    if beta == 0.0 {
        return l1_loss(input, target, reduction);
    }
    let diff = input.sub(target)?;
    let abs = diff.abs();
    let quadratic = diff.square().mul_scalar(T::from_f64(0.5 / beta));
    let linear = abs.add_scalar(T::from_f64(-0.5 * beta));
    let inside = below(&abs, beta);
    Ok(reduction.apply(quadratic.where_cond(&inside, &linear)?))
}

/// A 0/1 mask of the elements of `abs` below `bound`.
fn below<T: Element>(abs: &Var<T>, bound: f64) -> Tensor<T> {
    let bound = T::from_f64(bound);
    abs.value()
        .map(|a| if a < bound { T::one() } else { T::zero() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(data: &[f64]) -> Var<f64> {
        Var::parameter(Tensor::from_vec(data.to_vec(), &[data.len()]).unwrap())
    }

    #[test]
    fn regression_losses_give_hand_computed_values() {
        let (x, y) = (var(&[0.0, 1.0, 4.0]), var(&[0.5, 1.0, 1.0]));

        let mse = mse_loss(&x, &y, Reduction::Sum)
            .unwrap()
            .value()
            .item()
            .unwrap();
        let l1 = l1_loss(&x, &y, Reduction::Mean)
            .unwrap()
            .value()
            .item()
            .unwrap();
        let huber = huber_loss(&x, &y, Reduction::None, 1.0)
            .unwrap()
            .value()
            .to_vec();
        let smooth = smooth_l1_loss(&x, &y, Reduction::None, 2.0)
            .unwrap()
            .value()
            .to_vec();

        assert_eq!(mse, 9.25);
        assert!((l1 - 3.5 / 3.0).abs() < 1e-15);
        assert_eq!(huber, [0.125, 0.0, 2.5]);
        assert_eq!(smooth, [0.0625, 0.0, 2.0]);
    }

    #[test]
    fn shape_mismatch_and_bad_delta_are_errors() {
        let (x, y) = (var(&[0.0, 1.0]), var(&[0.5]));

        assert!(mse_loss(&x, &y, Reduction::Mean).is_err());
        assert!(huber_loss(&x, &x, Reduction::Mean, 0.0).is_err());
        assert!(smooth_l1_loss(&x, &x, Reduction::Mean, -1.0).is_err());
    }
}
