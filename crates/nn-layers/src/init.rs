//! Initialisers, PyTorch's `torch.nn.init`: each fills a parameter in place, drawing from a
//! seeded [`Generator`], so the result is reproducible (the numbers differ from PyTorch's,
//! whose generator is another, but the distributions are the same).
//!
//! ```
//! use strata_autograd::Var;
//! use strata_nn_layers::init::{self, FanMode, Nonlinearity};
//! use strata_tensor::{Generator, Tensor};
//!
//! let mut gen = Generator::new(0);
//! let w = Var::parameter(Tensor::<f32>::zeros(&[64, 32]));
//! init::kaiming_normal_(&w, 0.0, FanMode::FanIn, Nonlinearity::Relu, &mut gen)?;
//! init::xavier_uniform_(&w, init::calculate_gain(Nonlinearity::Tanh, None), &mut gen)?;
//! # Ok::<(), strata_nn_layers::NnError>(())
//! ```

use strata_autograd::Var;
use strata_tensor::{Element, Generator, Tensor};

use crate::error::{NnError, Result};

/// A nonlinearity, for [`calculate_gain`] and the kaiming initialisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonlinearity {
    /// Identity (`'linear'`) and the convolutions (`'conv1d'`, ...): gain 1.
    Linear,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// Tanh: gain 5/3.
    Tanh,
    /// ReLU: gain sqrt(2).
    Relu,
    /// Leaky ReLU with the slope given as `param` (default 0.01): gain sqrt(2 / (1 + slope^2)).
    LeakyRelu,
    /// SELU: gain 3/4.
    Selu,
}

/// Which fan the kaiming initialisers preserve the variance of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FanMode {
    /// The number of inputs, preserving the forward pass's variance (the default).
    #[default]
    FanIn,
    /// The number of outputs, preserving the backward pass's variance.
    FanOut,
}

/// The recommended gain for `nonlinearity`, PyTorch's `nn.init.calculate_gain`.
///
/// ```text
/// linear, sigmoid: 1      tanh: 5/3      relu: sqrt(2)
/// leaky_relu: sqrt(2 / (1 + slope^2))    (slope = param, default 0.01)      selu: 3/4
/// ```
pub fn calculate_gain(nonlinearity: Nonlinearity, param: Option<f64>) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu => {
            let slope = param.unwrap_or(0.01);
            (2.0 / (1.0 + slope * slope)).sqrt()
        }
        Nonlinearity::Selu => 0.75,
    }
}

/// `(fan_in, fan_out)` of a weight shape, as PyTorch computes them: for `(out, in, k...)`,
/// `fan_in = in * prod(k)` and `fan_out = out * prod(k)`.
///
/// # Errors
/// [`NnError::Config`] for fewer than 2 dimensions.
pub fn fan_in_and_fan_out(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(NnError::Config {
            layer: "init",
            reason: format!(
                "fan in and fan out can not be computed for a tensor with fewer than 2 \
                 dimensions, got shape {shape:?}"
            ),
        });
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

/// Fills `var` from `U(low, high)`, PyTorch's `nn.init.uniform_`.
///
/// # Errors
/// [`NnError::Autograd`] if `var` is not a leaf.
pub fn uniform_<T: Element>(var: &Var<T>, low: f64, high: f64, gen: &mut Generator) -> Result<()> {
    fill(
        var,
        gen.uniform(var.shape(), T::from_f64(low), T::from_f64(high)),
    )
}

/// Fills `var` from `N(mean, std^2)`, PyTorch's `nn.init.normal_`.
///
/// # Errors
/// [`NnError::Autograd`] if `var` is not a leaf.
pub fn normal_<T: Element>(var: &Var<T>, mean: f64, std: f64, gen: &mut Generator) -> Result<()> {
    fill(
        var,
        gen.normal(var.shape(), T::from_f64(mean), T::from_f64(std)),
    )
}

/// Fills `var` with `value`, PyTorch's `nn.init.constant_`.
///
/// # Errors
/// [`NnError::Autograd`] if `var` is not a leaf.
pub fn constant_<T: Element>(var: &Var<T>, value: f64) -> Result<()> {
    fill(var, Tensor::full(var.shape(), T::from_f64(value)))
}

/// Fills `var` with zeros, PyTorch's `nn.init.zeros_`.
///
/// # Errors
/// [`NnError::Autograd`] if `var` is not a leaf.
pub fn zeros_<T: Element>(var: &Var<T>) -> Result<()> {
    constant_(var, 0.0)
}

/// Fills `var` with ones, PyTorch's `nn.init.ones_`.
///
/// # Errors
/// [`NnError::Autograd`] if `var` is not a leaf.
pub fn ones_<T: Element>(var: &Var<T>) -> Result<()> {
    constant_(var, 1.0)
}

/// Glorot uniform initialisation, PyTorch's `nn.init.xavier_uniform_(var, gain)`.
///
/// ```text
/// W ~ U(-a, a)     a = gain * sqrt(6 / (fan_in + fan_out))
/// ```
///
/// # Errors
/// [`NnError::Config`] for fewer than 2 dimensions.
pub fn xavier_uniform_<T: Element>(var: &Var<T>, gain: f64, gen: &mut Generator) -> Result<()> {
    let (fan_in, fan_out) = fan_in_and_fan_out(var.shape())?;
    let a = gain * (6.0 / (fan_in + fan_out) as f64).sqrt();
    uniform_(var, -a, a, gen)
}

/// Glorot normal initialisation, PyTorch's `nn.init.xavier_normal_(var, gain)`.
///
/// ```text
/// W ~ N(0, std^2)     std = gain * sqrt(2 / (fan_in + fan_out))
/// ```
///
/// # Errors
/// [`NnError::Config`] for fewer than 2 dimensions.
pub fn xavier_normal_<T: Element>(var: &Var<T>, gain: f64, gen: &mut Generator) -> Result<()> {
    let (fan_in, fan_out) = fan_in_and_fan_out(var.shape())?;
    let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
    normal_(var, 0.0, std, gen)
}

/// He uniform initialisation, PyTorch's `nn.init.kaiming_uniform_(var, a, mode, nonlinearity)`.
///
/// ```text
/// W ~ U(-b, b)     b = gain * sqrt(3 / fan)     gain = calculate_gain(nonlinearity, a)
/// ```
///
/// `a` is the negative slope for [`Nonlinearity::LeakyRelu`] (PyTorch's default call,
/// `a = 0` with `leaky_relu`, gives the ReLU gain); `fan` is `fan_in` or `fan_out` by `mode`.
/// `Linear` and `Conv2d` start from `a = sqrt(5)`, `LeakyRelu`, `FanIn`.
///
/// # Errors
/// [`NnError::Config`] for fewer than 2 dimensions or a zero fan.
pub fn kaiming_uniform_<T: Element>(
    var: &Var<T>,
    a: f64,
    mode: FanMode,
    nonlinearity: Nonlinearity,
    gen: &mut Generator,
) -> Result<()> {
    let std = kaiming_std(var.shape(), a, mode, nonlinearity)?;
    let bound = 3f64.sqrt() * std;
    uniform_(var, -bound, bound, gen)
}

/// He normal initialisation, PyTorch's `nn.init.kaiming_normal_(var, a, mode, nonlinearity)`.
///
/// ```text
/// W ~ N(0, std^2)     std = gain / sqrt(fan)     gain = calculate_gain(nonlinearity, a)
/// ```
///
/// # Errors
/// [`NnError::Config`] for fewer than 2 dimensions or a zero fan.
pub fn kaiming_normal_<T: Element>(
    var: &Var<T>,
    a: f64,
    mode: FanMode,
    nonlinearity: Nonlinearity,
    gen: &mut Generator,
) -> Result<()> {
    let std = kaiming_std(var.shape(), a, mode, nonlinearity)?;
    normal_(var, 0.0, std, gen)
}

fn kaiming_std(shape: &[usize], a: f64, mode: FanMode, nonlinearity: Nonlinearity) -> Result<f64> {
    let (fan_in, fan_out) = fan_in_and_fan_out(shape)?;
    let fan = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    if fan == 0 {
        return Err(NnError::Config {
            layer: "init",
            reason: format!("initializing a zero-element tensor: shape {shape:?}"),
        });
    }
    Ok(calculate_gain(nonlinearity, Some(a)) / (fan as f64).sqrt())
}

/// A (semi-)orthogonal matrix times `gain`, PyTorch's `nn.init.orthogonal_(var, gain)`.
///
/// The shape is viewed as `(rows, cols)` with `rows = shape[0]`; a Gaussian matrix is
/// orthonormalised (QR with a positive diagonal of `R`, by modified Gram-Schmidt in `f64`), so
/// the rows are orthonormal when `rows <= cols` and the columns otherwise.
///
/// # Errors
/// [`NnError::Config`] for fewer than 2 dimensions.
pub fn orthogonal_<T: Element>(var: &Var<T>, gain: f64, gen: &mut Generator) -> Result<()> {
    let shape = var.shape().to_vec();
    if shape.len() < 2 {
        return Err(NnError::Config {
            layer: "orthogonal_",
            reason: format!("only tensors with 2 or more dimensions are supported, got {shape:?}"),
        });
    }
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    // Orthonormalise the columns of a (tall, short) matrix, transposed if wide.
    let (tall, short) = if rows < cols {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut q: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..tall).map(|_| gen.normal_f64()).collect())
        .collect();
    for j in 0..short {
        for k in 0..j {
            let dot: f64 = q[j].iter().zip(&q[k]).map(|(a, b)| a * b).sum();
            let (done, rest) = q.split_at_mut(j);
            for (x, y) in rest[0].iter_mut().zip(&done[k]) {
                *x -= dot * y;
            }
        }
        let norm = q[j].iter().map(|x| x * x).sum::<f64>().sqrt();
        q[j].iter_mut().for_each(|x| *x /= norm);
    }
    let mut data = vec![T::zero(); rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // q[j] is column j of the tall matrix; element (i, j) of it.
            let value = if rows < cols { q[r][c] } else { q[c][r] };
            data[r * cols + c] = T::from_f64(gain * value);
        }
    }
    fill(var, Tensor::from_vec(data, &shape)?)
}

/// Fills `var` from `N(mean, std^2)` truncated to `[a, b]`, PyTorch's
/// `nn.init.trunc_normal_(var, mean, std, a, b)` (defaults `0, 1, -2, 2`).
///
/// Samples outside `[a, b]` are drawn again, so every value lies in the interval and the
/// distribution is exactly the truncated normal.
///
/// # Errors
/// [`NnError::Config`] unless `a < b`, `std > 0`, and `[a, b]` is within 6 standard
/// deviations of `mean` (else rejection would hardly ever accept).
pub fn trunc_normal_<T: Element>(
    var: &Var<T>,
    mean: f64,
    std: f64,
    a: f64,
    b: f64,
    gen: &mut Generator,
) -> Result<()> {
    let reachable = (a - mean) / std < 6.0 && (b - mean) / std > -6.0;
    if !(a < b && std > 0.0 && reachable) {
        return Err(NnError::Config {
            layer: "trunc_normal_",
            reason: format!(
                "need a < b, std > 0 and [a, b] within 6 std of the mean: mean {mean}, \
                 std {std}, a {a}, b {b}"
            ),
        });
    }
    let data = (0..var.numel())
        .map(|_| loop {
            let x = mean + std * gen.normal_f64();
            if (a..=b).contains(&x) {
                break T::from_f64(x);
            }
        })
        .collect();
    fill(var, Tensor::from_vec(data, var.shape())?)
}

fn fill<T: Element>(var: &Var<T>, value: Tensor<T>) -> Result<()> {
    Ok(var.set_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(shape: &[usize]) -> Var<f64> {
        Var::parameter(Tensor::zeros(shape))
    }

    fn std_of(v: &[f64]) -> f64 {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    #[test]
    fn gains_and_fans_follow_pytorch() {
        assert_eq!(calculate_gain(Nonlinearity::Tanh, None), 5.0 / 3.0);
        assert!(
            (calculate_gain(Nonlinearity::LeakyRelu, Some(5f64.sqrt())) - 1.0 / 3f64.sqrt()).abs()
                < 1e-15
        );
        assert_eq!(fan_in_and_fan_out(&[8, 3, 5, 5]).unwrap(), (75, 200));
        assert!(fan_in_and_fan_out(&[4]).is_err());
    }

    #[test]
    fn kaiming_uniform_with_sqrt5_is_linear_default_bound() {
        let w = zeros(&[50, 16]);

        kaiming_uniform_(
            &w,
            5f64.sqrt(),
            FanMode::FanIn,
            Nonlinearity::LeakyRelu,
            &mut Generator::new(0),
        )
        .unwrap();

        let v = w.value().to_vec();
        assert!(v.iter().all(|x| x.abs() <= 0.25) && v.iter().any(|x| x.abs() > 0.24));
    }

    #[test]
    fn normal_initialisers_have_the_documented_std() {
        let mut gen = Generator::new(1);
        let (x, k) = (zeros(&[200, 100]), zeros(&[200, 100]));

        xavier_normal_(&x, 1.0, &mut gen).unwrap();
        kaiming_normal_(&k, 0.0, FanMode::FanOut, Nonlinearity::Relu, &mut gen).unwrap();

        assert!((std_of(&x.value().to_vec()) - (2.0f64 / 300.0).sqrt()).abs() < 2e-3);
        assert!((std_of(&k.value().to_vec()) - (2.0f64 / 200.0).sqrt()).abs() < 2e-3);
    }

    #[test]
    fn orthogonal_rows_or_columns_are_orthonormal() {
        for shape in [[3usize, 5], [5, 3]] {
            let w = zeros(&shape);
            orthogonal_(&w, 2.0, &mut Generator::new(2)).unwrap();
            let v = w.value().to_vec();
            let (r, c) = (shape[0], shape[1]);
            let k = r.min(c);
            for i in 0..k {
                for j in 0..k {
                    let dot: f64 = if r <= c {
                        (0..c).map(|t| v[i * c + t] * v[j * c + t]).sum()
                    } else {
                        (0..r).map(|t| v[t * c + i] * v[t * c + j]).sum()
                    };
                    let want = if i == j { 4.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-12, "{shape:?} {i} {j} {dot}");
                }
            }
        }
    }

    #[test]
    fn trunc_normal_stays_in_bounds_and_constants_fill() {
        let w = zeros(&[1000]);

        trunc_normal_(&w, 0.0, 1.0, -0.5, 2.0, &mut Generator::new(3)).unwrap();
        let v = w.value().to_vec();

        assert!(v.iter().all(|x| (-0.5..=2.0).contains(x)));
        assert!(trunc_normal_(&w, 0.0, 1.0, 10.0, 20.0, &mut Generator::new(3)).is_err());
        constant_(&w, 0.5).unwrap();
        assert!(w.value().to_vec().iter().all(|&x| x == 0.5));
    }
}
