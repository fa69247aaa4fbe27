//! Binary classification losses: on probabilities, and on logits with a stable formula.

use strata_autograd::Var;
use strata_tensor::{Element, Tensor};

use super::{check_same_shape, Reduction};
use crate::error::{NnError, Result};

/// Binary cross entropy on probabilities, PyTorch's
/// `F.binary_cross_entropy(input, target, weight, reduction)`.
///
/// ```text
/// l_i = -w_i (y_i * max(ln x_i, -100) + (1 - y_i) * max(ln(1 - x_i), -100))
/// ```
///
/// The logarithms are clamped at `-100` as in PyTorch, so `x = 0` or `1` gives a finite loss;
/// where a logarithm is clamped its gradient is zero (PyTorch instead divides by
/// `max(x (1 - x), 1e-12)`), so the two differ only at inputs within `e^-100` of 0 or 1.
/// Prefer [`binary_cross_entropy_with_logits`], which is stable for any logit.
///
/// # Shapes
/// - `input`, `target`: the same shape, inputs in `[0, 1]`; `weight`: broadcasts to it
/// - output: scalar, or the input's shape for [`Reduction::None`]
///
/// # Errors
/// [`NnError::Input`] if the shapes differ, `weight` does not broadcast, or an input is
/// outside `[0, 1]` (as PyTorch checks).
pub fn binary_cross_entropy<T: Element>(
    input: &Var<T>,
    target: &Var<T>,
    weight: Option<&Tensor<T>>,
    reduction: Reduction,
) -> Result<Var<T>> {
    const OP: &str = "binary_cross_entropy";
    check_same_shape(OP, input, target)?;
    let values = input.value();
    if values
        .view()
        .iter()
        .any(|&x| !(x >= T::zero() && x <= T::one()))
    {
        return Err(NnError::Input {
            layer: OP,
            reason: "all elements of input should be between 0 and 1".into(),
        });
    }
    let floor = T::from_f64(-100.0);
    let big = T::max_value();
    let log_x = input.ln().clamp(floor, big);
    let log_1mx = input.neg().add_scalar(T::one()).ln().clamp(floor, big);
    let one_minus_t = target.neg().add_scalar(T::one());
    let mut losses = target.mul(&log_x)?.add(&one_minus_t.mul(&log_1mx)?)?.neg();
    if let Some(w) = weight {
        losses = losses.mul(&Var::new(w.clone()))?;
        check_weight_shape(OP, &losses, input)?;
    }
    Ok(reduction.apply(losses))
}

/// Options of [`binary_cross_entropy_with_logits`]; `Default` matches PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub struct BceWithLogitsConfig<T: Element> {
    /// A weight per element, broadcast to the input. Default `None`.
    pub weight: Option<Tensor<T>>,
    /// A weight of the positive term per class (last dimension), broadcast to the input, to
    /// trade recall against precision. Default `None`.
    pub pos_weight: Option<Tensor<T>>,
    /// How the per-element losses are combined. Default [`Reduction::Mean`].
    pub reduction: Reduction,
}

impl<T: Element> Default for BceWithLogitsConfig<T> {
    fn default() -> Self {
        Self {
            weight: None,
            pos_weight: None,
            reduction: Reduction::Mean,
        }
    }
}

/// Binary cross entropy on logits, PyTorch's `F.binary_cross_entropy_with_logits`: the
/// sigmoid and the loss in one stable formula.
///
/// ```text
/// l_i = w_i ((1 - y_i) x_i + (1 + (p - 1) y_i) softplus(-x_i))     p = pos_weight (1 if unset)
/// ```
///
/// which equals `-w (p y ln sigmoid(x) + (1 - y) ln(1 - sigmoid(x)))` and stays finite and exact
/// for logits of any size, since `softplus(-x) = ln(1 + e^-x)` never overflows.
///
/// # Shapes
/// - `input`, `target`: the same shape; `weight`, `pos_weight`: broadcast to it
/// - output: scalar, or the input's shape for [`Reduction::None`]
///
/// # Errors
/// [`NnError::Input`] if the shapes differ or a weight does not broadcast to the input.
pub fn binary_cross_entropy_with_logits<T: Element>(
    input: &Var<T>,
    target: &Var<T>,
    config: &BceWithLogitsConfig<T>,
) -> Result<Var<T>> {
    const OP: &str = "binary_cross_entropy_with_logits";
    check_same_shape(OP, input, target)?;
    let one_minus_t = target.neg().add_scalar(T::one());
    let softplus = input.neg().softplus();
    let positive = match &config.pos_weight {
        Some(p) => {
            let p_minus_1 = Var::new(p.map(|v| v - T::one()));
            target
                .mul(&p_minus_1)?
                .add_scalar(T::one())
                .mul(&softplus)?
        }
        None => softplus,
    };
    let mut losses = one_minus_t.mul(input)?.add(&positive)?;
    check_weight_shape(OP, &losses, input)?;
    if let Some(w) = &config.weight {
        losses = losses.mul(&Var::new(w.clone()))?;
        check_weight_shape(OP, &losses, input)?;
    }
    Ok(config.reduction.apply(losses))
}

/// A weight that broadcast the loss beyond the input's shape is an error.
fn check_weight_shape<T: Element>(op: &'static str, losses: &Var<T>, input: &Var<T>) -> Result<()> {
    if losses.shape() == input.shape() {
        Ok(())
    } else {
        Err(NnError::Input {
            layer: op,
            reason: format!(
                "a weight broadcasts the loss to {:?}, beyond the input shape {:?}",
                losses.shape(),
                input.shape()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(data: &[f64]) -> Var<f64> {
        Var::parameter(Tensor::from_vec(data.to_vec(), &[data.len()]).unwrap())
    }

    #[test]
    fn logits_form_equals_probability_form() {
        let logits = var(&[-2.0, 0.3, 1.5]);
        let target = var(&[0.0, 1.0, 0.25]);
        let probs = Var::new(logits.value().map(|x| 1.0 / (1.0 + (-x).exp())));
        let config = BceWithLogitsConfig {
            reduction: Reduction::None,
            ..BceWithLogitsConfig::default()
        };

        let a = binary_cross_entropy_with_logits(&logits, &target, &config).unwrap();
        let b = binary_cross_entropy(&probs, &target, None, Reduction::None).unwrap();

        for (x, y) in a.value().to_vec().iter().zip(b.value().to_vec()) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn huge_logits_stay_finite_and_exact() {
        let logits = Var::new(Tensor::from_vec(vec![1e4f32, -1e4, 1e4, -1e4], &[4]).unwrap());
        let target = Var::new(Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], &[4]).unwrap());
        let config = BceWithLogitsConfig {
            reduction: Reduction::None,
            ..BceWithLogitsConfig::default()
        };

        let losses = binary_cross_entropy_with_logits(&logits, &target, &config).unwrap();

        assert_eq!(losses.value().to_vec(), [0.0, 0.0, 1e4, 1e4]);
    }

    #[test]
    fn probabilities_outside_unit_interval_and_saturated_inputs() {
        let target = var(&[1.0, 0.0]);

        let out = binary_cross_entropy(&var(&[1.5, 0.0]), &target, None, Reduction::Mean);
        let saturated = binary_cross_entropy(&var(&[0.0, 1.0]), &target, None, Reduction::Sum);

        assert!(out.is_err());
        assert_eq!(saturated.unwrap().value().item().unwrap(), 200.0);
    }

    #[test]
    fn weight_that_widens_the_loss_is_an_error() {
        let x = var(&[0.5, 0.5]);
        let w = Tensor::ones(&[3, 2]);

        assert!(binary_cross_entropy(&x, &x, Some(&w), Reduction::Mean).is_err());
    }
}
