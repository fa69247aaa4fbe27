//! Batch normalisation with running statistics: `BatchNorm1d` and `BatchNorm2d`, as
//! PyTorch's layers of the same names.
//!
//! In training mode each channel is normalised with the mean and the biased variance of the
//! batch, and the running mean and the unbiased running variance move towards them by
//! `momentum` (or, with `momentum: None`, become the cumulative average of all batches seen).
//! In evaluation mode the running statistics are used instead. The running statistics and
//! the batch counter are buffers, visited under PyTorch's names.

use strata_autograd::{no_grad, Var};
use strata_tensor::{Element, Tensor};

use crate::error::{NnError, Result};
use crate::module::{prefixed, Forward, Module};

/// Options of [`BatchNorm1d`] and [`BatchNorm2d`]: PyTorch's keyword arguments.
///
/// `Default` gives PyTorch's defaults: `eps = 1e-5`, `momentum = Some(0.1)`, a learned
/// affine transform, running statistics tracked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before its square root. Default `1e-5`.
    pub eps: f64,
    /// Weight of the new batch in the running statistics; `None` for a cumulative average
    /// (weight `1 / num_batches_tracked`). Default `Some(0.1)`.
    pub momentum: Option<f64>,
    /// Whether the layer has a learned per-channel `weight` (ones) and `bias` (zeros).
    /// Default `true`.
    pub affine: bool,
    /// Whether the layer keeps running statistics and uses them in evaluation mode; without
    /// them batch statistics are used in both modes. Default `true`.
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

/// The running statistics of a batch norm layer.
#[derive(Debug)]
struct RunningStats<T: Element> {
    mean: Var<T>,
    var: Var<T>,
    num_batches_tracked: Var<T>,
}

/// What `BatchNorm1d` and `BatchNorm2d` share; they differ only in the ranks they accept.
#[derive(Debug)]
struct BatchNorm<T: Element> {
    layer: &'static str,
    num_features: usize,
    config: BatchNormConfig,
    weight: Option<Var<T>>,
    bias: Option<Var<T>>,
    stats: Option<RunningStats<T>>,
    training: bool,
}

impl<T: Element> BatchNorm<T> {
    fn new(layer: &'static str, num_features: usize, config: BatchNormConfig) -> Result<Self> {
        if num_features == 0 {
            return Err(NnError::Config {
                layer,
                reason: "num_features must be positive".into(),
            });
        }
        if config.eps.is_nan()
            || config.eps < 0.0
            || config.momentum.is_some_and(|m| !(0.0..=1.0).contains(&m))
        {
            return Err(NnError::Config {
                layer,
                reason: format!(
                    "eps {} must be non-negative and momentum {:?} within [0, 1]",
                    config.eps, config.momentum
                ),
            });
        }
        let c = num_features;
        let (weight, bias) = if config.affine {
            (
                Some(Var::parameter(Tensor::ones(&[c]))),
                Some(Var::parameter(Tensor::zeros(&[c]))),
            )
        } else {
            (None, None)
        };
        let stats = config.track_running_stats.then(|| RunningStats {
            mean: Var::new(Tensor::zeros(&[c])),
            var: Var::new(Tensor::ones(&[c])),
            num_batches_tracked: Var::new(Tensor::scalar(T::zero())),
        });
        Ok(Self {
            layer,
            num_features,
            config,
            weight,
            bias,
            stats,
            training: true,
        })
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            f(&prefixed(prefix, "weight"), w);
            f(&prefixed(prefix, "bias"), b);
        }
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        if let Some(stats) = &self.stats {
            f(&prefixed(prefix, "running_mean"), &stats.mean);
            f(&prefixed(prefix, "running_var"), &stats.var);
            f(
                &prefixed(prefix, "num_batches_tracked"),
                &stats.num_batches_tracked,
            );
        }
    }

    /// Normalises `xs` whose rank the wrapper has checked; channels are dim 1.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let shape = xs.shape().to_vec();
        if shape[1] != self.num_features {
            return Err(NnError::Input {
                layer: self.layer,
                reason: format!(
                    "expected {} channels in dim 1, got shape {shape:?}",
                    self.num_features
                ),
            });
        }
        let mut stat_shape = vec![1; shape.len()];
        stat_shape[1] = self.num_features;
        let reduce_dims: Vec<isize> = (0..shape.len() as isize).filter(|&d| d != 1).collect();
        let eps = T::from_f64(self.config.eps);

        let normalised = match (&self.stats, self.training) {
            (Some(stats), false) => {
                let mean = Var::new(stats.mean.value().reshape(&stat_shape)?);
                let inv_std = stats.var.value().add_scalar(eps).rsqrt();
                let inv_std = Var::new(inv_std.reshape(&stat_shape)?);
                xs.sub(&mean)?.mul(&inv_std)?
            }
            _ => {
                let count = xs.numel() / self.num_features;
                if count <= 1 {
                    return Err(NnError::Input {
                        layer: self.layer,
                        reason: format!(
                            "expected more than 1 value per channel when training, got input \
                             size {shape:?}"
                        ),
                    });
                }
                let mean = xs.mean_keepdim(&reduce_dims)?;
                let centred = xs.sub(&mean)?;
                let var = centred.square().mean_keepdim(&reduce_dims)?;
                if self.training {
                    if let Some(stats) = &self.stats {
                        self.update_stats(stats, &mean.value(), &var.value(), count)?;
                    }
                }
                centred.mul(&var.add_scalar(eps).rsqrt())?
            }
        };
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => {
                let scaled = normalised.mul(&w.reshape(&stat_shape)?)?;
                Ok(scaled.add(&b.reshape(&stat_shape)?)?)
            }
            _ => Ok(normalised),
        }
    }

    /// Moves the running statistics towards this batch's mean and unbiased variance.
    fn update_stats(
        &self,
        stats: &RunningStats<T>,
        mean: &Tensor<T>,
        biased_var: &Tensor<T>,
        count: usize,
    ) -> Result<()> {
        let _guard = no_grad();
        let c = [self.num_features];
        let tracked = stats.num_batches_tracked.value().item()? + T::one();
        stats
            .num_batches_tracked
            .set_value(Tensor::scalar(tracked))?;
        let factor = match self.config.momentum {
            Some(m) => T::from_f64(m),
            None => T::one() / tracked,
        };
        let keep = T::one() - factor;
        let unbias = T::from_usize(count) / T::from_usize(count - 1);
        let mean = mean.reshape(&c)?;
        let var = biased_var.reshape(&c)?.mul_scalar(unbias);
        let new_mean = stats
            .mean
            .value()
            .mul_scalar(keep)
            .add(&mean.mul_scalar(factor))?;
        let new_var = stats
            .var
            .value()
            .mul_scalar(keep)
            .add(&var.mul_scalar(factor))?;
        stats.mean.set_value(new_mean)?;
        stats.var.set_value(new_var)?;
        Ok(())
    }
}

macro_rules! batch_norm_layer {
    ($name:ident, $ranks:expr, $rank_text:expr, $summary:expr, $shapes:expr, $example:expr) => {
        #[doc = $summary]
        ///
        /// ```text
        /// training:  y = (x - mean_B) / sqrt(var_B + eps) * weight + bias
        ///   mean_B, var_B = mean and biased variance of each channel over every dim but 1
        ///   running_mean = (1 - m) running_mean + m mean_B
        ///   running_var  = (1 - m) running_var  + m var_B * n / (n - 1)
        ///   m = momentum, or 1 / num_batches_tracked when momentum is None;
        ///   n = values per channel in the batch
        /// eval:      y = (x - running_mean) / sqrt(running_var + eps) * weight + bias
        /// init:      weight = 1, bias = 0, running_mean = 0, running_var = 1
        /// ```
        ///
        /// The gradient flows through the batch statistics in training mode, as in PyTorch.
        ///
        /// # Shapes
        #[doc = $shapes]
        ///
        /// # State dicts
        /// Parameters `weight`, `bias` (with `affine`); buffers `running_mean`,
        /// `running_var` and `num_batches_tracked` (with `track_running_stats`), in
        /// PyTorch's order. PyTorch keeps `num_batches_tracked` as an int64 scalar; here it
        /// is a 0-d tensor of `T` holding the same count (exact up to 2^24 batches in f32),
        /// which [`crate::state_dict_to_bytes`] writes as int64 and
        /// [`crate::load_state_dict`] reads from int64, so state dicts carry across both
        /// ways.
        ///
        /// # Errors
        /// `forward` gives `NnError::Input` for a wrong rank or channel count, and, when
        /// batch statistics are used, for a batch with a single value per channel
        /// (PyTorch's "Expected more than 1 value per channel when training").
        ///
        #[doc = $example]
        #[derive(Debug)]
        pub struct $name<T: Element> {
            inner: BatchNorm<T>,
        }

        impl<T: Element> $name<T> {
            /// A layer normalising `num_features` channels.
            ///
            /// # Errors
            /// `NnError::Config` for zero features, a negative `eps` or a momentum
            /// outside `[0, 1]`.
            pub fn new(num_features: usize, config: BatchNormConfig) -> Result<Self> {
                Ok(Self {
                    inner: BatchNorm::new(stringify!($name), num_features, config)?,
                })
            }

            /// The per-channel scale `(C)`, if `affine`.
            pub fn weight(&self) -> Option<&Var<T>> {
                self.inner.weight.as_ref()
            }

            /// The per-channel shift `(C)`, if `affine`.
            pub fn bias(&self) -> Option<&Var<T>> {
                self.inner.bias.as_ref()
            }

            /// The running mean `(C)`, if `track_running_stats`.
            pub fn running_mean(&self) -> Option<&Var<T>> {
                self.inner.stats.as_ref().map(|s| &s.mean)
            }

            /// The running (unbiased) variance `(C)`, if `track_running_stats`.
            pub fn running_var(&self) -> Option<&Var<T>> {
                self.inner.stats.as_ref().map(|s| &s.var)
            }

            /// The number of training batches seen, as a 0-d tensor of `T`, if
            /// `track_running_stats`.
            pub fn num_batches_tracked(&self) -> Option<&Var<T>> {
                self.inner.stats.as_ref().map(|s| &s.num_batches_tracked)
            }

            /// The number of channels.
            pub fn num_features(&self) -> usize {
                self.inner.num_features
            }

            /// The options the layer was built with.
            pub fn config(&self) -> &BatchNormConfig {
                &self.inner.config
            }

            /// Whether the layer is in training mode (the default after `new`).
            pub fn is_training(&self) -> bool {
                self.inner.training
            }
        }

        impl<T: Element> Module<T> for $name<T> {
            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
                self.inner.visit_parameters(prefix, f);
            }

            fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
                self.inner.visit_buffers(prefix, f);
            }

            fn set_training(&mut self, training: bool) {
                self.inner.training = training;
            }
        }

        impl<T: Element> Forward<T> for $name<T> {
            /// Normalises `xs`; in training mode also updates the running statistics.
            ///
            /// # Errors
            /// See the type's `# Errors`.
            fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
                let rank = xs.ndim();
                if !$ranks.contains(&rank) {
                    return Err(NnError::Input {
                        layer: stringify!($name),
                        reason: format!(
                            "expected {} input (got {rank}D input of shape {:?})",
                            $rank_text,
                            xs.shape()
                        ),
                    });
                }
                self.inner.forward(xs)
            }
        }
    };
}

batch_norm_layer!(
    BatchNorm1d,
    [2usize, 3],
    "2D or 3D",
    "Batch normalisation of `(N, C)` or `(N, C, L)` batches, PyTorch's `nn.BatchNorm1d`.",
    "- input: `(N, C)` or `(N, C, L)`; output: the same shape",
    r#"```
use strata_autograd::Var;
use strata_nn_layers::{BatchNorm1d, BatchNormConfig, Forward, Module};
use strata_tensor::{Generator, Tensor};

let mut bn = BatchNorm1d::<f32>::new(3, BatchNormConfig::default())?;
let xs = Var::new(Generator::new(0).randn(&[8, 3]));
let ys = bn.forward(&xs)?; // training: batch statistics, running ones updated
assert_eq!(ys.shape(), &[8, 3]);
bn.eval();
let ys = bn.forward(&Var::new(Tensor::ones(&[1, 3])))?; // running statistics
assert_eq!(ys.shape(), &[1, 3]);
# Ok::<(), strata_nn_layers::NnError>(())
```"#
);
batch_norm_layer!(
    BatchNorm2d,
    [4usize],
    "4D",
    "Batch normalisation of `(N, C, H, W)` batches, PyTorch's `nn.BatchNorm2d`.",
    "- input: `(N, C, H, W)`; output: the same shape",
    r#"```
use strata_autograd::Var;
use strata_nn_layers::{BatchNorm2d, BatchNormConfig, Forward, Module};
use strata_tensor::{Generator, Tensor};

let mut bn = BatchNorm2d::<f32>::new(3, BatchNormConfig::default())?;
let xs = Var::new(Generator::new(0).randn(&[4, 3, 5, 5]));
let ys = bn.forward(&xs)?; // training: batch statistics, running ones updated
assert_eq!(ys.shape(), &[4, 3, 5, 5]);
bn.eval();
let ys = bn.forward(&Var::new(Tensor::ones(&[1, 3, 2, 2])))?; // running statistics
assert_eq!(ys.shape(), &[1, 3, 2, 2]);
# Ok::<(), strata_nn_layers::NnError>(())
```"#
);

#[cfg(test)]
mod tests {
    use strata_tensor::Generator;

    use super::*;

    fn names(layer: &impl Module<f64>) -> (Vec<String>, Vec<String>) {
        let params = layer.named_parameters().into_iter().map(|p| p.0).collect();
        let buffers = layer.named_buffers().into_iter().map(|p| p.0).collect();
        (params, buffers)
    }

    #[test]
    fn names_follow_pytorch() {
        let bn = BatchNorm2d::<f64>::new(3, BatchNormConfig::default()).unwrap();

        let (params, buffers) = names(&bn);

        assert_eq!(params, ["weight", "bias"]);
        assert_eq!(
            buffers,
            ["running_mean", "running_var", "num_batches_tracked"]
        );
    }

    #[test]
    fn single_value_per_channel_in_training_is_an_error() {
        let bn = BatchNorm1d::<f32>::new(3, BatchNormConfig::default()).unwrap();

        let err = bn.forward(&Var::new(Tensor::ones(&[1, 3]))).unwrap_err();

        assert!(
            err.to_string()
                .contains("expected more than 1 value per channel when training"),
            "{err}"
        );
    }

    #[test]
    fn single_sample_is_fine_in_eval_mode() {
        let mut bn = BatchNorm1d::<f32>::new(3, BatchNormConfig::default()).unwrap();
        bn.eval();

        let ys = bn.forward(&Var::new(Tensor::ones(&[1, 3]))).unwrap();

        let want = 1.0 / (1.0f32 + 1e-5).sqrt();
        assert!(ys.value().to_vec().iter().all(|&v| (v - want).abs() < 1e-6));
    }

    #[test]
    fn cumulative_momentum_averages_the_batches() {
        let config = BatchNormConfig {
            momentum: None,
            ..Default::default()
        };
        let bn = BatchNorm1d::<f64>::new(2, config).unwrap();
        let mut gen = Generator::new(5);
        let a = gen.randn::<f64>(&[4, 2]);
        let b = gen.randn::<f64>(&[4, 2]);

        bn.forward(&Var::new(a.clone())).unwrap();
        bn.forward(&Var::new(b.clone())).unwrap();

        let mean_a = a.mean(&[0]).unwrap();
        let mean_b = b.mean(&[0]).unwrap();
        let want = mean_a.add(&mean_b).unwrap().mul_scalar(0.5).to_vec();
        let got = bn.running_mean().unwrap().value().to_vec();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
        assert_eq!(
            bn.num_batches_tracked().unwrap().value().item().unwrap(),
            2.0
        );
    }

    #[test]
    fn batch_norm_2d_rejects_3d_input() {
        let bn = BatchNorm2d::<f64>::new(2, BatchNormConfig::default()).unwrap();

        let err = bn.forward(&Var::new(Tensor::ones(&[2, 2, 3]))).unwrap_err();

        assert!(err.to_string().contains("4D"), "{err}");
    }

    #[test]
    fn without_running_stats_there_are_no_buffers() {
        let config = BatchNormConfig {
            track_running_stats: false,
            affine: false,
            ..Default::default()
        };
        let bn = BatchNorm1d::<f64>::new(2, config).unwrap();

        let (params, buffers) = names(&bn);

        assert!(params.is_empty() && buffers.is_empty());
    }
}
