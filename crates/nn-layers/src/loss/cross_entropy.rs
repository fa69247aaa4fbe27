//! Cross entropy and negative log-likelihood over class scores, with PyTorch's options:
//! class weights, an ignored target index, label smoothing and probability targets.

use strata_autograd::Var;
use strata_tensor::{Element, IndexTensor, Tensor};

use super::Reduction;
use crate::error::{NnError, Result};

/// Options of [`cross_entropy_with`] and [`cross_entropy_probs`], PyTorch's keyword
/// arguments of `F.cross_entropy`; `Default` matches PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropyConfig<T: Element> {
    /// A weight per class, shape `(C)`. Default `None` (all ones).
    pub weight: Option<Tensor<T>>,
    /// A target value that contributes neither loss nor gradient, e.g. padding. Default
    /// `None`: PyTorch's default `-100` can never match a class index, which is the same.
    /// Not allowed with probability targets.
    pub ignore_index: Option<usize>,
    /// How the per-sample losses are combined. Default [`Reduction::Mean`].
    pub reduction: Reduction,
    /// The share `eps` of the target mass spread uniformly over the classes, in `[0, 1]`.
    /// Default `0`.
    pub label_smoothing: f64,
}

impl<T: Element> Default for CrossEntropyConfig<T> {
    fn default() -> Self {
        Self {
            weight: None,
            ignore_index: None,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

/// Options of [`nll_loss`], PyTorch's keyword arguments of `F.nll_loss`; `Default` matches
/// PyTorch.
#[derive(Debug, Clone, PartialEq)]
pub struct NllLossConfig<T: Element> {
    /// A weight per class, shape `(C)`. Default `None` (all ones).
    pub weight: Option<Tensor<T>>,
    /// A target value that contributes neither loss nor gradient. Default `None`.
    pub ignore_index: Option<usize>,
    /// How the per-sample losses are combined. Default [`Reduction::Mean`].
    pub reduction: Reduction,
}

impl<T: Element> Default for NllLossConfig<T> {
    fn default() -> Self {
        Self {
            weight: None,
            ignore_index: None,
            reduction: Reduction::Mean,
        }
    }
}

/// The mean cross entropy of class-index `targets` under `softmax(logits)`, PyTorch's
/// `F.cross_entropy(logits, targets)` with its defaults.
///
/// ```text
/// l_n = -log_softmax(x_n)[y_n] = logsumexp_c x_nc - x_n,y_n        loss = mean_n l_n
/// backward: dx_nc = (softmax(x_n)_c - [c = y_n]) / N
/// ```
///
/// It runs as log-softmax, a gather of the target column and a mean, so it is exact for
/// logits as large as `+-1e4`. See [`cross_entropy_with`] for weights, an ignored index,
/// label smoothing and other reductions.
///
/// # Shapes
/// - `logits`: `(N, C)`, `(N, C, d1, ...)` or unbatched `(C)`
/// - `targets`: `(N)`, `(N, d1, ...)` or `()`, each value in `0..C`
/// - output: scalar
///
/// # Errors
/// [`NnError::Input`] if the shapes disagree or a target is not below `C`.
///
/// ```
/// use strata_autograd::Var;
/// use strata_nn_layers::cross_entropy;
/// use strata_tensor::{IndexTensor, Tensor};
///
/// let logits = Var::parameter(Tensor::from_vec(vec![2.0f32, 0.0, 0.0, 0.0, 3.0, 0.0], &[2, 3])?);
/// let targets = IndexTensor::from_slice(&[0, 1]);
/// let loss = cross_entropy(&logits, &targets)?;
/// loss.backward()?;
/// assert!(loss.value().item()? < 0.2);
/// assert_eq!(logits.grad().map(|g| g.shape().to_vec()), Some(vec![2, 3]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cross_entropy<T: Element>(logits: &Var<T>, targets: &IndexTensor) -> Result<Var<T>> {
    cross_entropy_with(logits, targets, &CrossEntropyConfig::default())
}

/// Cross entropy of class-index `targets` under `softmax(logits)` with PyTorch's options,
/// `F.cross_entropy(logits, targets, weight, ignore_index=..., reduction, label_smoothing)`.
///
/// ```text
/// p = log_softmax(x) along the class dim, w_c = class weight (1 without weights)
/// m_n = 0 if y_n is ignore_index else 1
/// nll_n    = -w_{y_n} p_{n,y_n} m_n
/// smooth_n = -sum_c w_c p_{n,c} m_n
/// l_n = (1 - eps) nll_n + eps / C * smooth_n
/// mean: sum_n l_n / sum_n w_{y_n} m_n      sum: sum_n l_n      none: l_n
/// ```
///
/// The `mean` divides by the total weight of the counted targets, as PyTorch does. When every
/// target is ignored that total is zero: the loss is NaN and every gradient zero, which is
/// what torch 2.x returns too (`sum` gives 0).
///
/// # Shapes
/// - `logits`: `(N, C)`, `(N, C, d1, ...)` or unbatched `(C)`
/// - `targets`: `(N)`, `(N, d1, ...)` or `()`
/// - output: scalar, or the target's shape for [`Reduction::None`]
///
/// # Errors
/// [`NnError::Input`] if the shapes disagree or a target other than `ignore_index` is not
/// below `C`; [`NnError::Config`] if `weight` is not `(C)` or `label_smoothing` is outside
/// `[0, 1]`.
pub fn cross_entropy_with<T: Element>(
    logits: &Var<T>,
    targets: &IndexTensor,
    config: &CrossEntropyConfig<T>,
) -> Result<Var<T>> {
    const OP: &str = "cross_entropy";
    check_smoothing(config.label_smoothing)?;
    let rows = Rows::new(OP, logits, targets)?;
    let options = NllOptions {
        weight: config.weight.as_ref(),
        ignore_index: config.ignore_index,
        reduction: config.reduction,
        label_smoothing: config.label_smoothing,
    };
    let log_probs = rows.values.log_softmax(1)?;
    nll_rows(OP, &log_probs, &rows, &options)
}

/// Negative log-likelihood of class-index `targets` given log-probabilities, PyTorch's
/// `F.nll_loss(log_probs, targets, weight, ignore_index=..., reduction)`.
///
/// ```text
/// l_n = -w_{y_n} x_{n,y_n} m_n      (m_n = 0 where y_n is ignore_index)
/// mean: sum_n l_n / sum_n w_{y_n} m_n      sum: sum_n l_n      none: l_n
/// ```
///
/// # Shapes
/// - `log_probs`: `(N, C)`, `(N, C, d1, ...)` or `(C)`; `targets`: `(N)`, `(N, d1, ...)` or `()`
/// - output: scalar, or the target's shape for [`Reduction::None`]
///
/// # Errors
/// As [`cross_entropy_with`].
pub fn nll_loss<T: Element>(
    log_probs: &Var<T>,
    targets: &IndexTensor,
    config: &NllLossConfig<T>,
) -> Result<Var<T>> {
    const OP: &str = "nll_loss";
    let rows = Rows::new(OP, log_probs, targets)?;
    let options = NllOptions {
        weight: config.weight.as_ref(),
        ignore_index: config.ignore_index,
        reduction: config.reduction,
        label_smoothing: 0.0,
    };
    nll_rows(OP, &rows.values.clone(), &rows, &options)
}

/// Cross entropy against class probabilities, PyTorch's `F.cross_entropy(logits, probs)`
/// where the target is a float tensor of the logits' shape.
///
/// ```text
/// q = (1 - eps) * target + eps / C         (label smoothing)
/// l_n = -sum_c w_c q_{n,c} log_softmax(x_n)_c
/// mean: sum_n l_n / N'  (N' = N * d1 * ..., weights do not normalise)    sum    none
/// ```
///
/// # Shapes
/// - `logits`, `target_probs`: `(N, C)`, `(N, C, d1, ...)` or `(C)`
/// - output: scalar, or `(N, d1, ...)` for [`Reduction::None`]
///
/// # Errors
/// [`NnError::Input`] if the shapes differ; [`NnError::Config`] if `ignore_index` is set
/// (PyTorch rejects it for probability targets too), `weight` is not `(C)` or
/// `label_smoothing` is outside `[0, 1]`.
pub fn cross_entropy_probs<T: Element>(
    logits: &Var<T>,
    target_probs: &Var<T>,
    config: &CrossEntropyConfig<T>,
) -> Result<Var<T>> {
    const OP: &str = "cross_entropy";
    check_smoothing(config.label_smoothing)?;
    if config.ignore_index.is_some() {
        return Err(NnError::Config {
            layer: OP,
            reason: "ignore_index is not supported for probability targets".into(),
        });
    }
    if logits.shape() != target_probs.shape() || logits.ndim() == 0 {
        return Err(NnError::Input {
            layer: OP,
            reason: format!(
                "probability targets need the input's shape: input {:?}, target {:?}",
                logits.shape(),
                target_probs.shape()
            ),
        });
    }
    let class_dim: isize = if logits.ndim() == 1 { 0 } else { 1 };
    let classes = logits.shape()[class_dim as usize];
    let mut weighted = logits.log_softmax(class_dim)?;
    if let Some(w) = &config.weight {
        check_weight(OP, w, classes)?;
        let mut shape = vec![1; logits.ndim()];
        shape[class_dim as usize] = classes;
        weighted = weighted.mul(&Var::new(w.reshape(&shape)?))?;
    }
    let eps = config.label_smoothing;
    let target = if eps > 0.0 {
        target_probs
            .mul_scalar(T::from_f64(1.0 - eps))
            .add_scalar(T::from_f64(eps / classes as f64))
    } else {
        target_probs.clone()
    };
    let losses = weighted.mul(&target)?.sum(&[class_dim])?.neg();
    Ok(config.reduction.apply(losses))
}

/// The inputs of a class-index loss laid out as rows: `(M, C)` values and `M` targets.
struct Rows<T: Element> {
    values: Var<T>,
    targets: Vec<usize>,
    /// The shape of the unreduced loss, the targets' shape.
    out_shape: Vec<usize>,
}

impl<T: Element> Rows<T> {
    fn new(op: &'static str, input: &Var<T>, targets: &IndexTensor) -> Result<Self> {
        let shape = input.shape();
        if shape.is_empty() {
            return Err(NnError::Input {
                layer: op,
                reason: "input must have a class dimension, got a 0-d input".into(),
            });
        }
        let expected: Vec<usize> = match shape.len() {
            1 => vec![],
            _ => [&shape[..1], &shape[2..]].concat(),
        };
        if targets.shape() != expected.as_slice() {
            return Err(NnError::Input {
                layer: op,
                reason: format!(
                    "input of shape {shape:?} (N, C, d1...) needs targets of shape {expected:?}, \
                     got {:?}",
                    targets.shape()
                ),
            });
        }
        let classes = if shape.len() == 1 { shape[0] } else { shape[1] };
        let rows = targets.numel();
        let values = match shape.len() {
            1 => input.reshape(&[rows, classes])?,
            2 => input.clone(),
            n => {
                let mut order: Vec<isize> = vec![0];
                order.extend(2..n as isize);
                order.push(1);
                input.permute(&order)?.reshape(&[rows, classes])?
            }
        };
        Ok(Self {
            values,
            targets: targets.as_slice().to_vec(),
            out_shape: expected,
        })
    }

    fn classes(&self) -> usize {
        self.values.shape()[1]
    }
}

struct NllOptions<'a, T: Element> {
    weight: Option<&'a Tensor<T>>,
    ignore_index: Option<usize>,
    reduction: Reduction,
    label_smoothing: f64,
}

/// The (smoothed, weighted) negative log-likelihood of row targets given `(M, C)`
/// log-probabilities.
fn nll_rows<T: Element>(
    op: &'static str,
    log_probs: &Var<T>,
    rows: &Rows<T>,
    options: &NllOptions<'_, T>,
) -> Result<Var<T>> {
    let classes = rows.classes();
    let ignored = |t: usize| options.ignore_index == Some(t);
    if let Some(&bad) = rows.targets.iter().find(|&&t| t >= classes && !ignored(t)) {
        return Err(NnError::Input {
            layer: op,
            reason: format!("target {bad} is out of bounds for {classes} classes"),
        });
    }
    let weight = match options.weight {
        Some(w) => {
            check_weight(op, w, classes)?;
            Some(w.contiguous_slice().into_owned())
        }
        None => None,
    };
    let any_ignored = rows.targets.iter().any(|&t| ignored(t));
    let safe: Vec<usize> = rows
        .targets
        .iter()
        .map(|&t| if ignored(t) { 0 } else { t })
        .collect();
    let m = safe.len();
    let picked = log_probs.gather(1, &IndexTensor::from_vec(safe.clone(), &[m, 1])?)?;
    let eps = options.label_smoothing;

    if weight.is_none() && !any_ignored && eps == 0.0 {
        // The common path: no per-row factors, and the sign flipped after reducing.
        return Ok(match options.reduction {
            Reduction::Mean => picked.mean_all().neg(),
            Reduction::Sum => picked.sum_all().neg(),
            Reduction::None => picked.neg().reshape(&rows.out_shape)?,
        });
    }

    let picked = picked.reshape(&[m])?;
    let mask: Vec<T> = rows
        .targets
        .iter()
        .map(|&t| if ignored(t) { T::zero() } else { T::one() })
        .collect();
    let row_weight: Vec<T> = safe
        .iter()
        .zip(&mask)
        .map(|(&t, &keep)| keep * weight.as_ref().map_or(T::one(), |w| w[t]))
        .collect();
    let total: f64 = row_weight.iter().map(|w| w.as_f64()).sum();
    let row_weight = Var::new(Tensor::from_vec(row_weight, &[m])?);
    let mut losses = picked.mul(&row_weight)?.neg();
    if eps > 0.0 {
        let weighted = match &weight {
            Some(w) => log_probs.mul(&Var::new(Tensor::from_vec(w.clone(), &[classes])?))?,
            None => log_probs.clone(),
        };
        let mask = Var::new(Tensor::from_vec(mask, &[m])?);
        let smooth = weighted.sum(&[1])?.mul(&mask)?.neg();
        losses = losses
            .mul_scalar(T::from_f64(1.0 - eps))
            .add(&smooth.mul_scalar(T::from_f64(eps / classes as f64)))?;
    }
    match options.reduction {
        Reduction::None => Ok(losses.reshape(&rows.out_shape)?),
        Reduction::Sum => Ok(losses.sum_all()),
        Reduction::Mean if total == 0.0 => {
            // Every target ignored: NaN like PyTorch, with zero (not NaN) gradients.
            Ok(losses.sum_all().mul_scalar(T::zero()).add_scalar(T::nan()))
        }
        Reduction::Mean => Ok(losses.sum_all().mul_scalar(T::from_f64(1.0 / total))),
    }
}

fn check_weight<T: Element>(op: &'static str, weight: &Tensor<T>, classes: usize) -> Result<()> {
    if weight.shape() == [classes] {
        Ok(())
    } else {
        Err(NnError::Config {
            layer: op,
            reason: format!(
                "weight must have shape [{classes}] (one per class), got {:?}",
                weight.shape()
            ),
        })
    }
}

fn check_smoothing(eps: f64) -> Result<()> {
    if (0.0..=1.0).contains(&eps) {
        Ok(())
    } else {
        Err(NnError::Config {
            layer: "cross_entropy",
            reason: format!("label_smoothing must be between 0.0 and 1.0, got {eps}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Var<f64> {
        let data = vec![1.0, 2.0, 0.5, -1.0, 0.0, 3.0];
        Var::parameter(Tensor::from_vec(data, &[2, 3]).unwrap())
    }

    fn log_softmax_row(row: &[f64]) -> Vec<f64> {
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        row.iter().map(|v| v - lse).collect()
    }

    #[test]
    fn mean_cross_entropy_is_mean_negative_log_probability() {
        let x = logits();
        let t = IndexTensor::from_slice(&[1, 2]);

        let loss = cross_entropy(&x, &t).unwrap().value().item().unwrap();

        let a = log_softmax_row(&[1.0, 2.0, 0.5])[1];
        let b = log_softmax_row(&[-1.0, 0.0, 3.0])[2];
        assert!((loss + (a + b) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn ignored_rows_do_not_count_and_all_ignored_mean_is_nan_with_zero_grad() {
        let x = logits();
        let config = CrossEntropyConfig {
            ignore_index: Some(7),
            ..CrossEntropyConfig::default()
        };

        let one = cross_entropy_with(&x, &IndexTensor::from_slice(&[1, 7]), &config).unwrap();
        let none = cross_entropy_with(&x, &IndexTensor::from_slice(&[7, 7]), &config).unwrap();
        none.backward().unwrap();

        let a = log_softmax_row(&[1.0, 2.0, 0.5])[1];
        assert!((one.value().item().unwrap() + a).abs() < 1e-12);
        assert!(none.value().item().unwrap().is_nan());
        assert!(x.grad().unwrap().to_vec().iter().all(|&g| g == 0.0));
    }

    #[test]
    fn spatial_logits_give_per_position_losses() {
        let x =
            Var::new(Tensor::from_vec((0..12).map(f64::from).collect(), &[1, 3, 2, 2]).unwrap());
        let t = IndexTensor::from_vec(vec![0, 1, 2, 0], &[1, 2, 2]).unwrap();
        let config = CrossEntropyConfig {
            reduction: Reduction::None,
            ..CrossEntropyConfig::default()
        };

        let losses = cross_entropy_with(&x, &t, &config).unwrap();

        let want = -log_softmax_row(&[1.0, 5.0, 9.0])[1];
        assert_eq!(losses.shape(), &[1, 2, 2]);
        assert!((losses.value().to_vec()[1] - want).abs() < 1e-12);
    }

    #[test]
    fn bad_targets_shapes_and_options_are_errors() {
        let x = logits();
        let weight = CrossEntropyConfig {
            weight: Some(Tensor::ones(&[2])),
            ..CrossEntropyConfig::default()
        };
        let smoothing = CrossEntropyConfig {
            label_smoothing: 1.5,
            ..CrossEntropyConfig::default()
        };
        let t = IndexTensor::from_slice(&[0, 1]);

        assert!(cross_entropy(&x, &IndexTensor::from_slice(&[0, 3])).is_err());
        assert!(cross_entropy(&x, &IndexTensor::from_slice(&[0])).is_err());
        assert!(cross_entropy_with(&x, &t, &weight).is_err());
        assert!(cross_entropy_with(&x, &t, &smoothing).is_err());
    }

    #[test]
    fn probability_targets_equal_index_targets_for_one_hot() {
        let x = logits();
        let one_hot =
            Var::new(Tensor::from_vec(vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0], &[2, 3]).unwrap());
        let config = CrossEntropyConfig::default();

        let soft = cross_entropy_probs(&x, &one_hot, &config)
            .unwrap()
            .value()
            .item()
            .unwrap();
        let hard = cross_entropy(&x, &IndexTensor::from_slice(&[1, 2])).unwrap();

        assert!((soft - hard.value().item().unwrap()).abs() < 1e-12);
    }
}
