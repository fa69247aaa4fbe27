//! Gradient checking: analytic gradients against central finite differences in `f64`.

use strata_tensor::{Generator, Tensor};

use crate::engine::{grad_allow_unused, BackwardOptions};
use crate::error::AutogradError;
use crate::mode::no_grad;
use crate::var::Var;

/// Tolerances of [`gradcheck`].
///
/// An analytic gradient `a` passes against the numeric one `n` when
/// `|a - n| <= atol + rtol * |n|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckOptions {
    /// Half-width of the central difference, `h` in `(f(x + h) - f(x - h)) / 2h`.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Seed of the random upstream gradient the output is weighted with.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        Self {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-5,
            seed: 0,
        }
    }
}

/// Why a gradient check failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GradcheckError {
    /// An analytic gradient element differs from its finite-difference estimate.
    #[error(
        "gradcheck: input {input}, element {index:?}: analytic {analytic:e}, \
         numeric {numeric:e} (|diff| {diff:e})",
        diff = (analytic - numeric).abs()
    )]
    Mismatch {
        /// Position of the input in the list.
        input: usize,
        /// Multi-index of the element within that input.
        index: Vec<usize>,
        /// Gradient from backward.
        analytic: f64,
        /// Gradient from finite differences.
        numeric: f64,
    },
    /// An analytic gradient has the wrong shape.
    #[error("gradcheck: input {input}: gradient shape {grad:?}, input shape {shape:?}")]
    Shape {
        /// Position of the input in the list.
        input: usize,
        /// Shape of the input.
        shape: Vec<usize>,
        /// Shape of its gradient.
        grad: Vec<usize>,
    },
    /// The function or its backward failed.
    #[error("gradcheck: {0}")]
    Op(#[from] AutogradError),
}

/// Checks the gradients of `f` at `inputs` against central finite differences.
///
/// The output `y = f(x)` is reduced to `L = sum(y * u)` with a seeded random `u`, so every
/// output element is checked at once; each input element is then moved by `+-eps` and
/// `(L(x + eps) - L(x - eps)) / 2 eps` compared with the analytic `dL/dx` from backward. Inputs
/// keep their layout for the analytic pass, so a transposed or sliced input exercises the
/// view paths.
///
/// # Errors
/// [`GradcheckError::Mismatch`] naming the first disagreeing input and element, or the error of
/// `f`.
///
/// ```
/// # use strata_autograd::{gradcheck, GradcheckOptions, Var};
/// # use strata_tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.3f64, -1.2, 2.0], &[3])?;
/// gradcheck(|v| Ok(v[0].tanh()), &[x], GradcheckOptions::default())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gradcheck<F>(
    f: F,
    inputs: &[Tensor<f64>],
    options: GradcheckOptions,
) -> Result<(), GradcheckError>
where
    F: Fn(&[Var<f64>]) -> crate::Result<Var<f64>>,
{
    let vars: Vec<Var<f64>> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
    let y = f(&vars)?;
    let upstream: Tensor<f64> = Generator::new(options.seed).uniform(y.shape(), -1.0, 1.0);
    if y.requires_grad() {
        y.backward_with(&upstream, BackwardOptions::default())?;
    }
    let weights = upstream.to_vec();
    let loss = |xs: &[Tensor<f64>]| -> Result<f64, GradcheckError> {
        let _guard = no_grad();
        let vs: Vec<Var<f64>> = xs.iter().cloned().map(Var::new).collect();
        let out = f(&vs)?.value().to_vec();
        Ok(out.iter().zip(&weights).map(|(a, b)| a * b).sum())
    };

    for (i, input) in inputs.iter().enumerate() {
        let analytic = vars[i]
            .grad()
            .unwrap_or_else(|| Tensor::zeros(input.shape()));
        if analytic.shape() != input.shape() {
            return Err(GradcheckError::Shape {
                input: i,
                shape: input.shape().to_vec(),
                grad: analytic.shape().to_vec(),
            });
        }
        let analytic = analytic.to_vec();
        let base = input.to_vec();
        let mut probe: Vec<Tensor<f64>> = inputs.to_vec();
        for j in 0..base.len() {
            let mut moved = base.clone();
            moved[j] = base[j] + options.eps;
            probe[i] =
                Tensor::from_vec(moved.clone(), input.shape()).map_err(AutogradError::from)?;
            let plus = loss(&probe)?;
            moved[j] = base[j] - options.eps;
            probe[i] = Tensor::from_vec(moved, input.shape()).map_err(AutogradError::from)?;
            let minus = loss(&probe)?;
            let numeric = (plus - minus) / (2.0 * options.eps);
            let tolerance = options.atol + options.rtol * numeric.abs();
            if (analytic[j] - numeric).abs() > tolerance || analytic[j].is_nan() {
                return Err(GradcheckError::Mismatch {
                    input: i,
                    index: unravel(j, input.shape()),
                    analytic: analytic[j],
                    numeric,
                });
            }
        }
        probe[i] = input.clone();
    }
    Ok(())
}

/// Checks second derivatives of `f`: runs [`gradcheck`] on
/// `g(x) = sum_i <dL/dx_i, v_i>`, where `L = sum(f(x) * u)`, the first derivatives come from a
/// backward pass with `create_graph`, and `u`, `v_i` are seeded random tensors.
///
/// # Errors
/// As [`gradcheck`], for the gradient of `g`.
pub fn gradgradcheck<F>(
    f: F,
    inputs: &[Tensor<f64>],
    options: GradcheckOptions,
) -> Result<(), GradcheckError>
where
    F: Fn(&[Var<f64>]) -> crate::Result<Var<f64>>,
{
    let mut gen = Generator::new(options.seed ^ 0x9e37_79b9_7f4a_7c15);
    let directions: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|t| gen.uniform(t.shape(), -1.0, 1.0))
        .collect();
    let seed = options.seed;
    let g = |xs: &[Var<f64>]| -> crate::Result<Var<f64>> {
        let y = f(xs)?;
        let u: Tensor<f64> = Generator::new(seed).uniform(y.shape(), -1.0, 1.0);
        let loss = y.mul(&Var::new(u))?.sum_all();
        let opts = BackwardOptions {
            create_graph: true,
            retain_graph: true,
        };
        let grads = grad_allow_unused(&[loss], xs, opts)?;
        let mut total = Var::new(Tensor::scalar(0.0));
        for (gi, v) in grads.into_iter().zip(&directions) {
            if let Some(gi) = gi {
                total = total.add(&gi.mul(&Var::new(v.clone()))?.sum_all())?;
            }
        }
        Ok(total)
    };
    gradcheck(g, inputs, options)
}

/// The multi-index of flat position `flat` in a row-major `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        index[d] = flat % shape[d];
        flat /= shape[d];
    }
    index
}
