//! `LinearRegression`: least squares fitted by gradient descent, full-batch or mini-batch.

use serde::{Deserialize, Serialize};
use strata_autograd::Var;
use strata_nn_layers::{mse_loss, prefixed, Forward, Linear, LinearConfig, Module, Reduction};
use strata_tensor::{Element, Generator, IndexTensor, Tensor};

use crate::error::{ModelError, Result};

/// The configuration of a [`LinearRegression`]. The default fits one output from one input,
/// with an intercept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinearRegressionConfig {
    /// Number of input features. Default 1.
    pub in_features: usize,
    /// Number of outputs fitted at once. Default 1.
    pub out_features: usize,
    /// Whether the model has an intercept (a bias). Default true.
    pub bias: bool,
}

impl Default for LinearRegressionConfig {
    fn default() -> Self {
        Self {
            in_features: 1,
            out_features: 1,
            bias: true,
        }
    }
}

/// How [`LinearRegression::fit`] runs gradient descent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FitConfig {
    /// Step size of each update, `w <- w - lr * dL/dw`. Default 0.01.
    pub lr: f64,
    /// Passes over the data. Default 100.
    pub epochs: usize,
    /// Rows per update: `None`, the default, is full-batch gradient descent (one update per
    /// epoch); `Some(b)` is mini-batch SGD over a fresh random permutation each epoch, the
    /// last batch of an epoch possibly shorter.
    pub batch_size: Option<usize>,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            epochs: 100,
            batch_size: None,
        }
    }
}

/// Linear least squares, `y = x W^T + b`, trained on the mean squared error.
///
/// ```text
/// x (N, in_features) -> y_hat = x W^T + b (N, out_features)
/// loss = mean over all N * out_features entries of (y_hat - y)^2
/// ```
///
/// Parameters are named as a PyTorch module with one `nn.Linear` attribute `linear`
/// (`linear.weight`, `linear.bias`) and start as PyTorch's `nn.Linear` does.
///
/// ```
/// use strata_models::{FitConfig, LinearRegression, LinearRegressionConfig};
/// use strata_tensor::{Generator, Tensor};
///
/// // y = 2 x + 1
/// let xs = Tensor::from_vec(vec![0.0f64, 1.0, 2.0, 3.0], &[4, 1])?;
/// let ys = Tensor::from_vec(vec![1.0, 3.0, 5.0, 7.0], &[4, 1])?;
/// let mut gen = Generator::new(0);
/// let model = LinearRegression::new(&LinearRegressionConfig::default(), &mut gen)?;
/// let fit = FitConfig { lr: 0.1, epochs: 500, batch_size: None };
/// model.fit(&xs, &ys, &fit, &mut gen)?;
/// assert!((model.weight().value().to_vec()[0] - 2.0).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LinearRegression<T: Element> {
    config: LinearRegressionConfig,
    linear: Linear<T>,
}

impl<T: Element> LinearRegression<T> {
    /// A model with weights drawn from `gen`.
    ///
    /// # Errors
    /// [`ModelError::Config`] if a feature count is zero.
    pub fn new(config: &LinearRegressionConfig, gen: &mut Generator) -> Result<Self> {
        if config.in_features == 0 || config.out_features == 0 {
            return Err(ModelError::Config {
                model: "linear_regression",
                reason: format!("feature counts must be positive, got {config:?}"),
            });
        }
        let linear = LinearConfig { bias: config.bias };
        Ok(Self {
            config: config.clone(),
            linear: Linear::with_config(config.in_features, config.out_features, linear, gen),
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &LinearRegressionConfig {
        &self.config
    }

    /// The weight, `(out_features, in_features)`.
    pub fn weight(&self) -> &Var<T> {
        self.linear.weight()
    }

    /// The intercept, `(out_features)`, if the model has one.
    pub fn bias(&self) -> Option<&Var<T>> {
        self.linear.bias()
    }

    /// Predictions for `xs`.
    ///
    /// # Shapes
    /// - `xs`: `(N, in_features)`; output: `(N, out_features)`
    ///
    /// # Errors
    /// [`ModelError::Nn`] if the last dim of `xs` is not `in_features`.
    pub fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        Ok(self.linear.forward(xs)?)
    }

    /// The mean squared error of the predictions for `xs` against `ys`.
    ///
    /// # Shapes
    /// - `xs`: `(N, in_features)`, `ys`: `(N, out_features)`; output: a scalar
    ///
    /// # Errors
    /// [`ModelError::Nn`] if the shapes do not fit.
    pub fn loss(&self, xs: &Var<T>, ys: &Var<T>) -> Result<Var<T>> {
        Ok(mse_loss(&self.forward(xs)?, ys, Reduction::Mean)?)
    }

    /// Fits the parameters by gradient descent on the mean squared error, in place, and
    /// returns the loss of each epoch (the mean of its batch losses).
    ///
    /// `gen` draws the permutation of each epoch for mini-batch SGD; full-batch descent does
    /// not use it.
    ///
    /// # Shapes
    /// - `xs`: `(N, in_features)`, `ys`: `(N, out_features)`, `N >= 1`
    ///
    /// # Errors
    /// [`ModelError::Input`] if the row counts differ or there are no rows,
    /// [`ModelError::Config`] for a batch size of zero or a non-finite learning rate, and
    /// [`ModelError::Nn`] if the widths do not fit.
    pub fn fit(
        &self,
        xs: &Tensor<T>,
        ys: &Tensor<T>,
        fit: &FitConfig,
        gen: &mut Generator,
    ) -> Result<Vec<f64>> {
        let rows = xs.shape().first().copied().unwrap_or(0);
        if rows == 0 || ys.shape().first() != Some(&rows) {
            return Err(ModelError::Input {
                model: "linear_regression",
                reason: format!(
                    "fit needs the same positive number of rows in xs and ys, got {:?} and {:?}",
                    xs.shape(),
                    ys.shape()
                ),
            });
        }
        if fit.batch_size == Some(0) || !fit.lr.is_finite() {
            return Err(ModelError::Config {
                model: "linear_regression",
                reason: format!("batch size must be positive and lr finite, got {fit:?}"),
            });
        }
        let batch = fit.batch_size.unwrap_or(rows).min(rows);
        let mut history = Vec::with_capacity(fit.epochs);
        for _ in 0..fit.epochs {
            let order = if batch < rows {
                gen.randperm(rows)
            } else {
                (0..rows).collect()
            };
            let mut total = 0.0;
            let chunks = order.chunks(batch);
            let n_batches = chunks.len();
            for chunk in chunks {
                let (xb, yb) = if batch < rows {
                    let index = IndexTensor::from_slice(chunk);
                    (xs.index_select(0, &index)?, ys.index_select(0, &index)?)
                } else {
                    (xs.clone(), ys.clone())
                };
                total += self.sgd_step(&xb, &yb, fit.lr)?;
            }
            history.push(total / n_batches as f64);
        }
        Ok(history)
    }

    /// One update `p <- p - lr * grad` on one batch; returns the batch loss.
    fn sgd_step(&self, xs: &Tensor<T>, ys: &Tensor<T>, lr: f64) -> Result<f64> {
        self.zero_grad();
        let loss = self.loss(&Var::new(xs.clone()), &Var::new(ys.clone()))?;
        loss.backward()?;
        let lr = T::from_f64(lr);
        for param in self.parameters() {
            let Some(grad) = param.grad() else { continue };
            let grad = grad.contiguous_slice().into_owned();
            param.update(|data| {
                for (p, g) in data.iter_mut().zip(&grad) {
                    *p -= lr * *g;
                }
            })?;
        }
        Ok(loss.value().item()?.as_f64())
    }
}

impl<T: Element> Module<T> for LinearRegression<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        self.linear.visit_parameters(&prefixed(prefix, "linear"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-conditioned problem: 64 standard normal rows of 3 features, small noise.
    fn problem() -> (Tensor<f64>, Tensor<f64>) {
        let mut gen = Generator::new(42);
        let xs: Tensor<f64> = gen.randn(&[64, 3]);
        let (w, b) = ([1.5, -2.0, 0.5], 0.3);
        let noise: Tensor<f64> = gen.normal(&[64], 0.0, 0.01);
        let x = xs.to_vec();
        let ys: Vec<f64> = (0..64)
            .map(|i| (0..3).map(|j| x[i * 3 + j] * w[j]).sum::<f64>() + b + noise.to_vec()[i])
            .collect();
        (xs, Tensor::from_vec(ys, &[64, 1]).unwrap())
    }

    /// Least squares with intercept by the normal equations, solved by Gaussian elimination:
    /// returns `[w_0, w_1, w_2, b]`.
    fn closed_form(xs: &Tensor<f64>, ys: &Tensor<f64>) -> Vec<f64> {
        let (x, y) = (xs.to_vec(), ys.to_vec());
        let n = 4;
        let row = |i: usize| [x[i * 3], x[i * 3 + 1], x[i * 3 + 2], 1.0];
        let mut a = vec![vec![0.0; n + 1]; n];
        for i in 0..64 {
            let r = row(i);
            for p in 0..n {
                for q in 0..n {
                    a[p][q] += r[p] * r[q];
                }
                a[p][n] += r[p] * y[i];
            }
        }
        for col in 0..n {
            let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()));
            a.swap(col, pivot.unwrap());
            for r in 0..n {
                if r != col {
                    let f = a[r][col] / a[col][col];
                    for c in col..=n {
                        a[r][c] -= f * a[col][c];
                    }
                }
            }
        }
        (0..n).map(|i| a[i][n] / a[i][i]).collect()
    }

    fn fitted(model: &LinearRegression<f64>) -> Vec<f64> {
        let mut out = model.weight().value().to_vec();
        out.extend(model.bias().unwrap().value().to_vec());
        out
    }

    fn fit(batch_size: Option<usize>, lr: f64, epochs: usize) -> (Vec<f64>, Vec<f64>) {
        let (xs, ys) = problem();
        let config = LinearRegressionConfig {
            in_features: 3,
            ..LinearRegressionConfig::default()
        };
        let model = LinearRegression::<f64>::new(&config, &mut Generator::new(0)).unwrap();
        let fit = FitConfig {
            lr,
            epochs,
            batch_size,
        };
        let history = model.fit(&xs, &ys, &fit, &mut Generator::new(1)).unwrap();
        (fitted(&model), history)
    }

    #[test]
    fn full_batch_descent_reaches_the_least_squares_solution() {
        let (xs, ys) = problem();
        let want = closed_form(&xs, &ys);

        let (got, history) = fit(None, 0.1, 200);

        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-8, "got {got:?}, want {want:?}");
        }
        assert!(history[0] > history[199]);
    }

    #[test]
    fn minibatch_sgd_agrees_with_the_least_squares_solution() {
        let (xs, ys) = problem();
        let want = closed_form(&xs, &ys);

        let (got, _) = fit(Some(16), 0.02, 150);

        // Constant-step SGD hovers near the optimum, within about lr * noise.
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 5e-3, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn mismatched_rows_are_an_error() {
        let model = LinearRegression::<f64>::new(
            &LinearRegressionConfig::default(),
            &mut Generator::new(0),
        )
        .unwrap();
        let (xs, ys) = (Tensor::zeros(&[4, 1]), Tensor::zeros(&[3, 1]));

        let result = model.fit(&xs, &ys, &FitConfig::default(), &mut Generator::new(0));

        assert!(matches!(result, Err(ModelError::Input { .. })));
    }
}
