//! Layer normalization as one kernel: the forward pass keeps each row's mean and reciprocal
//! standard deviation, and the backward pass uses them to give the input, weight and bias
//! gradients in two sweeps over the data.
//!
//! A row is the trailing `normalized_shape` block of the input; every leading index is a row.
//! Statistics accumulate in f64, so f32 rows of any length keep full precision.

use rayon::prelude::*;

use crate::parallel::PAR_THRESHOLD;
use crate::{Element, Result, Tensor, TensorError};

/// What [`Tensor::layer_norm`] returns: the output and the per-row statistics that the
/// backward pass needs.
#[derive(Debug, Clone)]
pub struct LayerNormOutput<T: Element> {
    /// The normalized, scaled and shifted output, with the input's shape.
    pub output: Tensor<T>,
    /// The mean of each row, shape `[rows]`.
    pub mean: Tensor<T>,
    /// `1 / sqrt(var + eps)` of each row (biased variance), shape `[rows]`.
    pub rstd: Tensor<T>,
}

/// The gradients [`layer_norm_backward`] returns.
#[derive(Debug, Clone)]
pub struct LayerNormGrads<T: Element> {
    /// Gradient with respect to the input, with its shape.
    pub input: Tensor<T>,
    /// Gradient with respect to the weight, when a weight was given.
    pub weight: Option<Tensor<T>>,
    /// Gradient with respect to the bias, when asked for.
    pub bias: Option<Tensor<T>>,
}

/// Splits `shape` into (rows, row length) for a trailing `normalized_shape`.
fn rows_of(
    op: &'static str,
    shape: &[usize],
    normalized_shape: &[usize],
) -> Result<(usize, usize)> {
    let k = normalized_shape.len();
    if k == 0 || k > shape.len() || shape[shape.len() - k..] != *normalized_shape {
        return Err(TensorError::Shape {
            op,
            expected: format!("trailing dimensions {normalized_shape:?}"),
            got: shape.to_vec(),
        });
    }
    let n: usize = normalized_shape.iter().product();
    let rows: usize = shape[..shape.len() - k].iter().product();
    Ok((rows, n))
}

fn check_affine<T: Element>(
    op: &'static str,
    what: &str,
    param: Option<&Tensor<T>>,
    normalized_shape: &[usize],
) -> Result<()> {
    match param {
        Some(p) if p.shape() != normalized_shape => Err(TensorError::ShapeMismatch {
            op,
            what: format!("{what} must have the normalized shape"),
            lhs: p.shape().to_vec(),
            rhs: normalized_shape.to_vec(),
        }),
        _ => Ok(()),
    }
}

/// Rows per parallel task: about [`PAR_THRESHOLD`] / 4 elements, at least one row.
fn rows_per_task(n: usize) -> usize {
    (PAR_THRESHOLD / 4 / n.max(1)).max(1)
}

impl<T: Element> Tensor<T> {
    /// Layer normalization over the trailing `normalized_shape` dimensions (PyTorch's
    /// `F.layer_norm`), returning the output and the per-row statistics.
    ///
    /// ```text
    /// mean = sum(x) / n     var = sum((x - mean)^2) / n     rstd = 1 / sqrt(var + eps)
    /// y = (x - mean) * rstd * weight + bias
    /// ```
    ///
    /// `weight` and `bias`, when given, have shape `normalized_shape`. Rows run in parallel
    /// above a size threshold; each row is computed the same way on any thread count.
    ///
    /// # Errors
    /// If the trailing dimensions of the input are not `normalized_shape`, or a weight or bias
    /// has another shape, or `eps` is negative.
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Tensor<T>>,
        bias: Option<&Tensor<T>>,
        eps: f64,
    ) -> Result<LayerNormOutput<T>> {
        const OP: &str = "layer_norm";
        let (rows, n) = rows_of(OP, self.shape(), normalized_shape)?;
        check_affine(OP, "weight", weight, normalized_shape)?;
        check_affine(OP, "bias", bias, normalized_shape)?;
        if eps.is_nan() || eps < 0.0 {
            return Err(TensorError::InvalidArgument {
                op: OP,
                reason: format!("eps must be non-negative, got {eps}"),
            });
        }
        let x = self.contiguous_slice();
        let w = weight.map(Tensor::contiguous_slice);
        let b = bias.map(Tensor::contiguous_slice);
        let mut out = vec![T::zero(); rows * n];
        let mut mean = vec![T::zero(); rows];
        let mut rstd = vec![T::zero(); rows];
        let row = |(r, (o, (m, s))): (usize, (&mut [T], (&mut T, &mut T)))| {
            let xs = &x[r * n..(r + 1) * n];
            let mu = xs.iter().map(|v| v.as_f64()).sum::<f64>() / n as f64;
            let var = xs
                .iter()
                .map(|v| {
                    let d = v.as_f64() - mu;
                    d * d
                })
                .sum::<f64>()
                / n as f64;
            let rs = 1.0 / (var + eps).sqrt();
            let (mu_t, rs_t) = (T::from_f64(mu), T::from_f64(rs));
            *m = mu_t;
            *s = rs_t;
            match (&w, &b) {
                (Some(w), Some(b)) => {
                    for (((o, &v), &wi), &bi) in o.iter_mut().zip(xs).zip(w.iter()).zip(b.iter()) {
                        *o = (v - mu_t) * rs_t * wi + bi;
                    }
                }
                (Some(w), None) => {
                    for ((o, &v), &wi) in o.iter_mut().zip(xs).zip(w.iter()) {
                        *o = (v - mu_t) * rs_t * wi;
                    }
                }
                (None, Some(b)) => {
                    for ((o, &v), &bi) in o.iter_mut().zip(xs).zip(b.iter()) {
                        *o = (v - mu_t) * rs_t + bi;
                    }
                }
                (None, None) => {
                    for (o, &v) in o.iter_mut().zip(xs) {
                        *o = (v - mu_t) * rs_t;
                    }
                }
            }
        };
        if rows * n >= PAR_THRESHOLD && rayon::current_num_threads() > 1 && n > 0 {
            out.par_chunks_mut(n)
                .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
                .enumerate()
                .with_min_len(rows_per_task(n))
                .for_each(row);
        } else if n > 0 {
            out.chunks_mut(n)
                .zip(mean.iter_mut().zip(rstd.iter_mut()))
                .enumerate()
                .for_each(row);
        }
        Ok(LayerNormOutput {
            output: Tensor::from_vec(out, self.shape())?,
            mean: Tensor::from_vec(mean, &[rows])?,
            rstd: Tensor::from_vec(rstd, &[rows])?,
        })
    }
}

/// The backward pass of [`Tensor::layer_norm`].
///
/// With `xhat = (x - mean) * rstd` and `g = dy * weight` (or `dy` without a weight):
///
/// ```text
/// dx      = rstd * (g - mean(g) - xhat * mean(g * xhat))      (means over the row)
/// dweight = sum over rows of dy * xhat
/// dbias   = sum over rows of dy
/// ```
///
/// The weight and bias gradients sum the rows in fixed blocks combined in order, so the result
/// does not depend on the thread count. `want_bias` asks for the bias gradient.
///
/// # Errors
/// If the shapes of `grad`, `input`, `mean`, `rstd` and `weight` do not fit together.
pub fn layer_norm_backward<T: Element>(
    grad: &Tensor<T>,
    input: &Tensor<T>,
    normalized_shape: &[usize],
    mean: &Tensor<T>,
    rstd: &Tensor<T>,
    weight: Option<&Tensor<T>>,
    want_bias: bool,
) -> Result<LayerNormGrads<T>> {
    const OP: &str = "layer_norm_backward";
    let (rows, n) = rows_of(OP, input.shape(), normalized_shape)?;
    if grad.shape() != input.shape() {
        return Err(TensorError::ShapeMismatch {
            op: OP,
            what: "the gradient must have the input's shape".into(),
            lhs: grad.shape().to_vec(),
            rhs: input.shape().to_vec(),
        });
    }
    for stat in [mean, rstd] {
        if stat.shape() != [rows] {
            return Err(TensorError::Shape {
                op: OP,
                expected: format!("per-row statistics of shape [{rows}]"),
                got: stat.shape().to_vec(),
            });
        }
    }
    check_affine(OP, "weight", weight, normalized_shape)?;
    let dy = grad.contiguous_slice();
    let x = input.contiguous_slice();
    let mean = mean.contiguous_slice();
    let rstd = rstd.contiguous_slice();
    let w = weight.map(Tensor::contiguous_slice);
    let mut dx = vec![T::zero(); rows * n];
    let inv_n = 1.0 / n.max(1) as f64;

    let input_row = |(r, dxr): (usize, &mut [T])| {
        let (dyr, xr) = (&dy[r * n..(r + 1) * n], &x[r * n..(r + 1) * n]);
        let (mu, rs) = (mean[r], rstd[r]);
        let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
        for i in 0..n {
            let g = match &w {
                Some(w) => dyr[i] * w[i],
                None => dyr[i],
            };
            let xhat = (xr[i] - mu) * rs;
            sum_g += g.as_f64();
            sum_gx += (g * xhat).as_f64();
        }
        let (mg, mgx) = (T::from_f64(sum_g * inv_n), T::from_f64(sum_gx * inv_n));
        for i in 0..n {
            let g = match &w {
                Some(w) => dyr[i] * w[i],
                None => dyr[i],
            };
            let xhat = (xr[i] - mu) * rs;
            dxr[i] = rs * (g - mg - xhat * mgx);
        }
    };
    let parallel = rows * n >= PAR_THRESHOLD && rayon::current_num_threads() > 1 && n > 0;
    if parallel {
        dx.par_chunks_mut(n)
            .enumerate()
            .with_min_len(rows_per_task(n))
            .for_each(input_row);
    } else if n > 0 {
        dx.chunks_mut(n).enumerate().for_each(input_row);
    }

    let affine = weight.is_some() || want_bias;
    let (dweight, dbias) = if affine && n > 0 {
        // Partial sums over fixed blocks of rows, combined in block order.
        let block = rows_per_task(n);
        let partial = |start: usize| {
            let mut dw = vec![0.0f64; n];
            let mut db = vec![0.0f64; n];
            for r in start..(start + block).min(rows) {
                let (dyr, xr) = (&dy[r * n..(r + 1) * n], &x[r * n..(r + 1) * n]);
                let (mu, rs) = (mean[r], rstd[r]);
                for i in 0..n {
                    let g = dyr[i].as_f64();
                    dw[i] += g * ((xr[i] - mu) * rs).as_f64();
                    db[i] += g;
                }
            }
            (dw, db)
        };
        let starts: Vec<usize> = (0..rows).step_by(block).collect();
        let parts: Vec<(Vec<f64>, Vec<f64>)> = if parallel {
            starts.par_iter().map(|&s| partial(s)).collect()
        } else {
            starts.iter().map(|&s| partial(s)).collect()
        };
        let mut dw = vec![0.0f64; n];
        let mut db = vec![0.0f64; n];
        for (pw, pb) in parts {
            for i in 0..n {
                dw[i] += pw[i];
                db[i] += pb[i];
            }
        }
        let to_t = |v: Vec<f64>| -> Result<Tensor<T>> {
            Tensor::from_vec(v.into_iter().map(T::from_f64).collect(), normalized_shape)
        };
        (
            weight.is_some().then(|| to_t(dw)).transpose()?,
            want_bias.then(|| to_t(db)).transpose()?,
        )
    } else {
        let zeros = || Tensor::zeros(normalized_shape);
        (weight.map(|_| zeros()), want_bias.then(zeros))
    };
    Ok(LayerNormGrads {
        input: Tensor::from_vec(dx, input.shape())?,
        weight: dweight,
        bias: dbias,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Generator;

    /// The output of the kernel against the formula written with separate tensor ops.
    #[test]
    fn forward_matches_composite_formula() {
        let mut gen = Generator::new(3);
        let x = gen.randn::<f64>(&[4, 3, 5]);
        let w = gen.randn::<f64>(&[5]);
        let b = gen.randn::<f64>(&[5]);

        let got = x.layer_norm(&[5], Some(&w), Some(&b), 1e-5).unwrap();

        let xs = x.to_vec();
        let (ws, bs) = (w.to_vec(), b.to_vec());
        for r in 0..12 {
            let row = &xs[r * 5..r * 5 + 5];
            let mu = row.iter().sum::<f64>() / 5.0;
            let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 5.0;
            for i in 0..5 {
                let want = (row[i] - mu) / (var + 1e-5).sqrt() * ws[i] + bs[i];
                assert!((got.output.to_vec()[r * 5 + i] - want).abs() < 1e-12);
            }
            assert!((got.mean.to_vec()[r] - mu).abs() < 1e-12);
        }
    }

    #[test]
    fn constant_row_gives_bias_and_finite_gradients() {
        let x = Tensor::<f32>::full(&[2, 8], 3.0);
        let b = Tensor::<f32>::full(&[8], 0.5);

        let out = x.layer_norm(&[8], None, Some(&b), 1e-5).unwrap();
        let grads = layer_norm_backward(
            &Tensor::ones(&[2, 8]),
            &x,
            &[8],
            &out.mean,
            &out.rstd,
            None,
            true,
        )
        .unwrap();

        assert!(out.output.to_vec().iter().all(|&v| v == 0.5));
        assert!(grads.input.to_vec().iter().all(|v| v.is_finite()));
        assert_eq!(grads.bias.unwrap().to_vec(), vec![2.0; 8]);
    }

    #[test]
    fn wrong_trailing_shape_is_an_error() {
        let x = Tensor::<f32>::zeros(&[2, 3]);

        let err = x.layer_norm(&[4], None, None, 1e-5).unwrap_err();

        assert!(err.to_string().contains("trailing dimensions [4]"), "{err}");
    }

    /// Large inputs take the parallel path; the answer must not depend on it.
    #[test]
    fn parallel_and_serial_paths_agree() {
        let mut gen = Generator::new(5);
        let x = gen.randn::<f32>(&[600, 128]);
        let w = gen.randn::<f32>(&[128]);
        let dy = gen.randn::<f32>(&[600, 128]);
        let run = || {
            let out = x.layer_norm(&[128], Some(&w), None, 1e-5).unwrap();
            let g =
                layer_norm_backward(&dy, &x, &[128], &out.mean, &out.rstd, Some(&w), true).unwrap();
            (
                out.output.to_vec(),
                g.input.to_vec(),
                g.weight.unwrap().to_vec(),
            )
        };

        let parallel = run();
        let serial = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(run);

        assert_eq!(parallel, serial);
    }
}
