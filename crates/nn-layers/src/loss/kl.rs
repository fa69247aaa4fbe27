//! The Kullback-Leibler divergence loss, PyTorch's `F.kl_div`.

use strata_autograd::Var;
use strata_tensor::Element;

use super::check_same_shape;
use crate::error::{NnError, Result};

/// How [`kl_div`] combines its per-element values, PyTorch's `reduction` of `F.kl_div`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KlDivReduction {
    /// The mean over all elements (`'mean'`), PyTorch's default, which is not the true
    /// divergence: PyTorch warns and suggests `batchmean`.
    #[default]
    Mean,
    /// The sum divided by the batch size, the first dimension (`'batchmean'`): the
    /// mathematical KL divergence per sample.
    BatchMean,
    /// The sum over elements (`'sum'`).
    Sum,
    /// No reduction (`'none'`).
    None,
}

/// Options of [`kl_div`]; `Default` matches PyTorch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KlDivConfig {
    /// How the per-element values are combined. Default [`KlDivReduction::Mean`].
    pub reduction: KlDivReduction,
    /// Whether `target` holds log-probabilities rather than probabilities. Default `false`.
    pub log_target: bool,
}

/// The KL divergence `KL(target || exp(input))` with `input` given as log-probabilities,
/// PyTorch's `F.kl_div(input, target, reduction, log_target)`.
///
/// ```text
/// l_i = y_i (ln y_i - x_i)           (0 where y_i = 0)     probabilities as targets
/// l_i = exp(y_i) (y_i - x_i)                               log_target
/// ```
///
/// # Shapes
/// - `input`, `target`: the same shape; output: scalar, or that shape for `None`
///
/// # Errors
/// [`NnError::Input`] if the shapes differ, or for `BatchMean` on a 0-d input.
pub fn kl_div<T: Element>(input: &Var<T>, target: &Var<T>, config: KlDivConfig) -> Result<Var<T>> {
    const OP: &str = "kl_div";
    check_same_shape(OP, input, target)?;
    let losses = if config.log_target {
        target.exp().mul(&target.sub(input)?)?
    } else {
        // xlogy: y ln y with 0 where y = 0; the mask keeps ln(0) = -inf out of the product.
        let zero = target
            .value()
            .map(|y| if y == T::zero() { T::one() } else { T::zero() });
        let safe_log = target.masked_fill(&zero, T::one())?.ln();
        target.mul(&safe_log.sub(input)?)?
    };
    Ok(match config.reduction {
        KlDivReduction::Mean => losses.mean_all(),
        KlDivReduction::Sum => losses.sum_all(),
        KlDivReduction::None => losses,
        KlDivReduction::BatchMean => {
            let batch = *input.shape().first().ok_or_else(|| NnError::Input {
                layer: OP,
                reason: "batchmean needs a batch dimension, got a 0-d input".into(),
            })?;
            losses.sum_all().mul_scalar(T::from_f64(1.0 / batch as f64))
        }
    })
}

#[cfg(test)]
mod tests {
    use strata_tensor::Tensor;

    use super::*;

    #[test]
    fn divergence_of_a_distribution_from_itself_is_zero_and_zeros_are_safe() {
        let p = Tensor::from_vec(vec![0.5f64, 0.5, 0.0, 1.0], &[2, 2]).unwrap();
        let input = Var::parameter(p.map(|v| v.max(1e-30).ln()));
        let target = Var::new(p.clone());
        let config = KlDivConfig {
            reduction: KlDivReduction::BatchMean,
            log_target: false,
        };

        let loss = kl_div(&input, &target, config).unwrap();
        loss.backward().unwrap();

        assert!(loss.value().item().unwrap().abs() < 1e-12);
        assert!(input.grad().unwrap().to_vec().iter().all(|g| g.is_finite()));
    }

    #[test]
    fn log_target_form_matches_probability_form() {
        let input = Var::new(Tensor::from_vec(vec![-1.0f64, -0.5, -2.0], &[3]).unwrap());
        let target = Tensor::from_vec(vec![0.2f64, 0.3, 0.5], &[3]).unwrap();
        let sum = |log_target| KlDivConfig {
            reduction: KlDivReduction::Sum,
            log_target,
        };

        let a = kl_div(&input, &Var::new(target.clone()), sum(false)).unwrap();
        let b = kl_div(&input, &Var::new(target.map(f64::ln)), sum(true)).unwrap();

        assert!((a.value().item().unwrap() - b.value().item().unwrap()).abs() < 1e-12);
    }
}
