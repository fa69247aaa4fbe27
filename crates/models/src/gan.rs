//! `Gan`: a generative adversarial network of two MLPs, trained by alternating optimizers.

use serde::{Deserialize, Serialize};
use strata_autograd::Var;
use strata_nn_layers::{binary_cross_entropy_with_logits, prefixed, BceWithLogitsConfig, Module};
use strata_optim::Optimizer;
use strata_tensor::{Element, Generator, Tensor};

use crate::error::{ModelError, Result};
use crate::mlp::{Activation, Mlp, MlpConfig};

/// The configuration of a [`Gan`]. The default is a toy GAN for 2-D points: 16 latent
/// dimensions, two hidden layers of 64, ReLU in the generator and LeakyReLU(0.2) in the
/// discriminator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GanConfig {
    /// Width of the latent noise `z ~ N(0, I)` the generator maps. Default 16.
    pub latent_dim: usize,
    /// Width of a data sample. Default 2.
    pub data_dim: usize,
    /// Hidden widths of both networks. Default `[64, 64]`.
    pub hidden_dims: Vec<usize>,
    /// The generator's nonlinearity. Default ReLU.
    pub generator_activation: Activation,
    /// The discriminator's nonlinearity. Default LeakyReLU with slope 0.2.
    pub discriminator_activation: Activation,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            latent_dim: 16,
            data_dim: 2,
            hidden_dims: vec![64, 64],
            generator_activation: Activation::Relu,
            discriminator_activation: Activation::LeakyRelu {
                negative_slope: 0.2,
            },
        }
    }
}

/// The losses of one [`Gan::train_step`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GanLosses {
    /// The discriminator's loss, `BCE(D(real), 1) + BCE(D(fake), 0)`.
    pub discriminator: f64,
    /// The generator's non-saturating loss, `BCE(D(G(z)), 1)`.
    pub generator: f64,
}

/// A generative adversarial network (Goodfellow et al., 2014) with the non-saturating
/// generator loss.
///
/// ```text
/// generator      G: z (N, latent_dim) -> MLP -> x_fake (N, data_dim)     (linear output)
/// discriminator  D: x (N, data_dim)   -> MLP -> logit (N, 1)
/// L_D = BCE(D(x_real), 1) + BCE(D(G(z).detach()), 0)
/// L_G = BCE(D(G(z)), 1)
/// ```
///
/// Parameters are named `generator.layers.{i}.*` and `discriminator.layers.{i}.*` (two
/// [`Mlp`]s as attributes `generator` and `discriminator`). Train with one optimizer over
/// [`Gan::generator`]'s parameters and one over [`Gan::discriminator`]'s.
///
/// ```
/// use strata_models::{Gan, GanConfig};
/// use strata_nn_layers::Module;
/// use strata_optim::{Adam, AdamConfig};
/// use strata_tensor::{Generator, Tensor};
///
/// let mut gen = Generator::new(0);
/// let gan = Gan::<f32>::new(&GanConfig::default(), &mut gen)?;
/// let mut opt_g = Adam::new(gan.generator().parameters(), AdamConfig::default())?;
/// let mut opt_d = Adam::new(gan.discriminator().parameters(), AdamConfig::default())?;
/// let real = Tensor::ones(&[8, 2]);
/// let losses = gan.train_step(&real, &mut opt_g, &mut opt_d, &mut gen)?;
/// assert!(losses.discriminator > 0.0 && losses.generator > 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Gan<T: Element> {
    config: GanConfig,
    generator: Mlp<T>,
    discriminator: Mlp<T>,
}

impl<T: Element> Gan<T> {
    /// Builds both networks, drawing weights from `gen`.
    ///
    /// # Errors
    /// [`ModelError::Config`] if a width is zero.
    pub fn new(config: &GanConfig, gen: &mut Generator) -> Result<Self> {
        let widths = |first: usize, last: usize| {
            let mut w = vec![first];
            w.extend(&config.hidden_dims);
            w.push(last);
            w
        };
        let generator = MlpConfig {
            widths: widths(config.latent_dim, config.data_dim),
            activation: config.generator_activation,
            bias: true,
        };
        let discriminator = MlpConfig {
            widths: widths(config.data_dim, 1),
            activation: config.discriminator_activation,
            bias: true,
        };
        Ok(Self {
            config: config.clone(),
            generator: Mlp::new(&generator, gen)?,
            discriminator: Mlp::new(&discriminator, gen)?,
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &GanConfig {
        &self.config
    }

    /// The generator network.
    pub fn generator(&self) -> &Mlp<T> {
        &self.generator
    }

    /// The discriminator network.
    pub fn discriminator(&self) -> &Mlp<T> {
        &self.discriminator
    }

    /// `n` latent vectors from `N(0, I)`, `(n, latent_dim)`.
    pub fn sample_latent(&self, n: usize, gen: &mut Generator) -> Tensor<T> {
        gen.randn(&[n, self.config.latent_dim])
    }

    /// `n` generated samples `G(z)`, `(n, data_dim)`, recorded for backward.
    ///
    /// # Errors
    /// Errors of the ops underneath (none for a valid model).
    pub fn generate(&self, n: usize, gen: &mut Generator) -> Result<Var<T>> {
        self.generator
            .forward(&Var::new(self.sample_latent(n, gen)))
    }

    /// The discriminator's loss on a batch of real samples and a batch of fakes; the fakes
    /// are detached, so this loss sends no gradient into the generator.
    ///
    /// # Shapes
    /// - `real`: `(N, data_dim)`, `fake`: `(M, data_dim)`; output: a scalar
    ///
    /// # Errors
    /// [`ModelError::Nn`] if a batch has the wrong width.
    pub fn discriminator_loss(&self, real: &Var<T>, fake: &Var<T>) -> Result<Var<T>> {
        let real_loss = self.bce(&self.discriminator.forward(real)?, T::one())?;
        let fake_loss = self.bce(&self.discriminator.forward(&fake.detach())?, T::zero())?;
        Ok(real_loss.add(&fake_loss)?)
    }

    /// The generator's non-saturating loss on fakes `G(z)`: it flows back through the
    /// discriminator into the generator, and also fills the discriminator's gradients.
    ///
    /// # Errors
    /// [`ModelError::Nn`] if `fake` has the wrong width.
    pub fn generator_loss(&self, fake: &Var<T>) -> Result<Var<T>> {
        self.bce(&self.discriminator.forward(fake)?, T::one())
    }

    /// One discriminator update on `real` and as many fresh fakes; returns its loss.
    ///
    /// The generator's parameters get no gradient and do not change.
    ///
    /// # Errors
    /// [`ModelError::Input`] if `real` is not `(N, data_dim)` with `N >= 1`, and the
    /// optimizer's errors.
    pub fn discriminator_step(
        &self,
        real: &Tensor<T>,
        opt_d: &mut dyn Optimizer<T>,
        gen: &mut Generator,
    ) -> Result<f64> {
        let n = self.check_real(real)?;
        let fake = self.generate(n, gen)?;
        let loss = self.discriminator_loss(&Var::new(real.clone()), &fake)?;
        opt_d.zero_grad();
        loss.backward()?;
        opt_d.step()?;
        Ok(loss.value().item()?.as_f64())
    }

    /// One generator update on `n` fresh fakes; returns its loss.
    ///
    /// The backward pass goes through the discriminator, but only `opt_g` steps, and the
    /// discriminator's gradients are cleared afterwards, so the discriminator does not change
    /// and no stale gradient reaches its next step.
    ///
    /// # Errors
    /// The optimizer's errors.
    pub fn generator_step(
        &self,
        n: usize,
        opt_g: &mut dyn Optimizer<T>,
        gen: &mut Generator,
    ) -> Result<f64> {
        let loss = self.generator_loss(&self.generate(n, gen)?)?;
        opt_g.zero_grad();
        loss.backward()?;
        opt_g.step()?;
        self.discriminator.zero_grad();
        Ok(loss.value().item()?.as_f64())
    }

    /// One round of training: a discriminator step on `real`, then a generator step on as
    /// many fakes.
    ///
    /// # Errors
    /// As [`Gan::discriminator_step`] and [`Gan::generator_step`].
    pub fn train_step(
        &self,
        real: &Tensor<T>,
        opt_g: &mut dyn Optimizer<T>,
        opt_d: &mut dyn Optimizer<T>,
        gen: &mut Generator,
    ) -> Result<GanLosses> {
        let discriminator = self.discriminator_step(real, opt_d, gen)?;
        let generator = self.generator_step(real.shape()[0], opt_g, gen)?;
        Ok(GanLosses {
            discriminator,
            generator,
        })
    }

    /// Mean binary cross entropy of `logits` against the constant label `target`.
    fn bce(&self, logits: &Var<T>, target: T) -> Result<Var<T>> {
        let targets = Var::new(Tensor::full(logits.shape(), target));
        Ok(binary_cross_entropy_with_logits(
            logits,
            &targets,
            &BceWithLogitsConfig::default(),
        )?)
    }

    fn check_real(&self, real: &Tensor<T>) -> Result<usize> {
        let shape = real.shape();
        if shape.len() != 2 || shape[0] == 0 || shape[1] != self.config.data_dim {
            return Err(ModelError::Input {
                model: "gan",
                reason: format!(
                    "expected real samples (N, {}), got {shape:?}",
                    self.config.data_dim
                ),
            });
        }
        Ok(shape[0])
    }
}

impl<T: Element> Module<T> for Gan<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        self.generator
            .visit_parameters(&prefixed(prefix, "generator"), f);
        self.discriminator
            .visit_parameters(&prefixed(prefix, "discriminator"), f);
    }
}

#[cfg(test)]
mod tests {
    use strata_optim::{Adam, AdamConfig};

    use super::*;
    use crate::testing::adam;

    fn tiny() -> GanConfig {
        GanConfig {
            latent_dim: 4,
            data_dim: 2,
            hidden_dims: vec![16],
            ..GanConfig::default()
        }
    }

    fn values(params: &[Var<f32>]) -> Vec<Vec<f32>> {
        params.iter().map(|p| p.value().to_vec()).collect()
    }

    fn setup() -> (Gan<f32>, Adam<f32>, Adam<f32>, Tensor<f32>) {
        let gan = Gan::<f32>::new(&tiny(), &mut Generator::new(0)).unwrap();
        let opt_g = adam(gan.generator().parameters(), 1e-2);
        let opt_d = adam(gan.discriminator().parameters(), 1e-2);
        let real = Tensor::from_vec(vec![2.0, -1.0, 2.1, -0.9, 1.9, -1.1, 2.0, -1.0], &[4, 2]);
        (gan, opt_g, opt_d, real.unwrap())
    }

    #[test]
    fn discriminator_step_does_not_reach_the_generator() {
        let (gan, _, mut opt_d, real) = setup();
        let (g_params, d_params) = (
            gan.generator().parameters(),
            gan.discriminator().parameters(),
        );
        let (g_before, d_before) = (values(&g_params), values(&d_params));

        gan.discriminator_step(&real, &mut opt_d, &mut Generator::new(1))
            .unwrap();

        assert!(
            g_params.iter().all(|p| p.grad().is_none()),
            "generator got a gradient"
        );
        assert_eq!(values(&g_params), g_before);
        assert_ne!(values(&d_params), d_before);
    }

    #[test]
    fn generator_step_does_not_update_the_discriminator() {
        let (gan, mut opt_g, _, _) = setup();
        let (g_params, d_params) = (
            gan.generator().parameters(),
            gan.discriminator().parameters(),
        );
        let (g_before, d_before) = (values(&g_params), values(&d_params));

        gan.generator_step(4, &mut opt_g, &mut Generator::new(1))
            .unwrap();

        assert_eq!(values(&d_params), d_before);
        assert!(
            d_params.iter().all(|p| p.grad().is_none()),
            "stale discriminator gradient"
        );
        assert_ne!(values(&g_params), g_before);
    }

    #[test]
    fn names_are_prefixed_by_network() {
        let gan = Gan::<f32>::new(&tiny(), &mut Generator::new(0)).unwrap();

        let names: Vec<String> = gan.named_parameters().into_iter().map(|(n, _)| n).collect();

        assert_eq!(names[0], "generator.layers.0.weight");
        assert_eq!(names[4], "discriminator.layers.0.weight");
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn wrong_real_width_is_an_error() {
        let (gan, mut opt_g, mut opt_d, _) = setup();

        let result = gan.train_step(
            &Tensor::zeros(&[4, 3]),
            &mut opt_g,
            &mut opt_d,
            &mut Generator::new(0),
        );

        assert!(matches!(
            result,
            Err(ModelError::Input { model: "gan", .. })
        ));
    }

    #[test]
    fn generator_learns_a_point_mass() {
        let (gan, _, _, real) = setup();
        // betas (0.5, 0.999), the usual GAN setting, damp the oscillation of the two players
        let config = AdamConfig {
            lr: 5e-3,
            betas: (0.5, 0.999),
            ..AdamConfig::default()
        };
        let mut opt_g = Adam::new(gan.generator().parameters(), config).unwrap();
        let mut opt_d = Adam::new(gan.discriminator().parameters(), config).unwrap();
        let mut gen = Generator::new(3);

        for _ in 0..200 {
            gan.train_step(&real, &mut opt_g, &mut opt_d, &mut gen)
                .unwrap();
        }

        let fakes = gan.generate(256, &mut gen).unwrap().value();
        let mean = fakes.mean(&[0]).unwrap().to_vec();
        assert!(
            (mean[0] - 2.0).abs() < 0.2 && (mean[1] + 1.0).abs() < 0.2,
            "mean {mean:?}"
        );
    }
}
