//! `strata train gan`: a GAN of two MLPs on synthetic 2-D data, a ring of eight Gaussians.
//!
//! ```text
//! real sample: mode m uniform in 0..8, x = 2 (cos(2 pi m / 8), sin(2 pi m / 8)) + 0.05 e,
//! e ~ N(0, I)
//! ```
//!
//! Each step is a discriminator update then a generator update, both on samples drawn from a
//! generator seeded by `(seed, step)`; the logged loss is the generator's. Evaluation uses a
//! fixed set of real points and latent vectors: its loss is the discriminator's loss there,
//! and it reports how many of the eight modes the generated points reach.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::Path;

use anyhow::{bail, Result};
use serde_json::Value;
use strata_autograd::{no_grad, Var};
use strata_models::{Gan, GanConfig};
use strata_nn_layers::Module;
use strata_optim::{Optimizer, StateDict};
use strata_tensor::{Generator, Tensor};

use super::{model_config, optimizer};
use crate::checkpoint::{load_vars, TensorFile};
use crate::config::{OptimizerKind, RunConfig, TrainConfig};
use crate::progress::Progress;
use crate::trainer::{step_seed, EvalOutput, StepOutput, Task};

const MODES: usize = 8;
const RADIUS: f64 = 2.0;
const MODE_STD: f64 = 0.05;
/// Points of the fixed evaluation set.
const EVAL_POINTS: usize = 512;
/// Mixed into the seed of the evaluation set.
const EVAL_SALT: u64 = 0x4741_4E45_5641_4C00;
/// The two optimizers' prefixes in `optim.safetensors`.
const PREFIXES: [&str; 2] = ["generator.", "discriminator."];

/// The default toy GAN; Adam 2e-4 with betas (0.5, 0.999), batch 128, 3000 steps, evaluation
/// every 500.
pub fn defaults() -> (Value, TrainConfig) {
    let train = TrainConfig {
        steps: 3000,
        epochs: None,
        batch_size: 128,
        optimizer: OptimizerKind::Adam,
        lr: 2e-4,
        min_lr: 2e-4,
        warmup_steps: 0,
        lr_decay_steps: 0,
        betas: (0.5, 0.999),
        weight_decay: 0.0,
        grad_clip: 0.0,
        eval_interval: 500,
        eval_iters: 1,
        log_interval: 50,
        seed: 1337,
        data: None,
    };
    (
        serde_json::to_value(GanConfig::default()).expect("bug: configs serialise"),
        train,
    )
}

/// `n` points of the ring of Gaussians.
fn ring(n: usize, gen: &mut Generator) -> Tensor<f32> {
    let mut points = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let angle = 2.0 * PI * gen.below(MODES) as f64 / MODES as f64;
        points.push((RADIUS * angle.cos() + MODE_STD * gen.normal_f64()) as f32);
        points.push((RADIUS * angle.sin() + MODE_STD * gen.normal_f64()) as f32);
    }
    Tensor::from_vec(points, &[n, 2]).expect("bug: n points of 2 coordinates")
}

/// A GAN with its two optimizers.
pub struct GanTask {
    gan: Gan<f32>,
    opt_g: Box<dyn Optimizer<f32>>,
    opt_d: Box<dyn Optimizer<f32>>,
    train: TrainConfig,
    eval_real: Tensor<f32>,
    eval_latent: Tensor<f32>,
}

impl GanTask {
    /// Builds the networks and their optimizers, and draws the evaluation set.
    ///
    /// # Errors
    /// If the config is invalid or its data width is not 2.
    pub fn new(config: &RunConfig) -> Result<Self> {
        let gan_config: GanConfig = model_config(config)?;
        if gan_config.data_dim != 2 {
            bail!(
                "config: model_config.data_dim must be 2 for the 2-D ring data, got {}",
                gan_config.data_dim
            );
        }
        let train = config.train.clone();
        let gan = Gan::new(&gan_config, &mut Generator::new(train.seed))?;
        let opt_g = optimizer(&train, gan.generator().parameters(), Vec::new())?;
        let opt_d = optimizer(&train, gan.discriminator().parameters(), Vec::new())?;
        let mut eval_gen = Generator::new(train.seed ^ EVAL_SALT);
        let eval_real = ring(EVAL_POINTS, &mut eval_gen);
        let eval_latent = gan.sample_latent(EVAL_POINTS, &mut eval_gen);
        Ok(Self {
            gan,
            opt_g,
            opt_d,
            train,
            eval_real,
            eval_latent,
        })
    }

    /// How many modes have a generated point within 4 standard deviations, and the mean
    /// distance of the generated points to their nearest mode.
    fn coverage(fake: &Tensor<f32>) -> (usize, f64) {
        let mut reached = [false; MODES];
        let mut total = 0.0;
        let points = fake.contiguous_slice();
        for point in points.chunks(2) {
            let (x, y) = (f64::from(point[0]), f64::from(point[1]));
            let (mode, dist) = (0..MODES)
                .map(|m| {
                    let angle = 2.0 * PI * m as f64 / MODES as f64;
                    (
                        m,
                        (x - RADIUS * angle.cos()).hypot(y - RADIUS * angle.sin()),
                    )
                })
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
            reached[mode] |= dist < 4.0 * MODE_STD;
            total += dist;
        }
        let count = points.len() / 2;
        (
            reached.iter().filter(|&&r| r).count(),
            total / count.max(1) as f64,
        )
    }
}

impl Task for GanTask {
    fn unit(&self) -> &'static str {
        "pt"
    }

    fn model_config_json(&self) -> Value {
        serde_json::to_value(self.gan.config()).expect("bug: configs serialise")
    }

    fn num_parameters(&self) -> usize {
        self.gan.num_parameters()
    }

    fn train_step(&mut self, step: usize, lr: f64) -> Result<StepOutput> {
        let mut gen = Generator::new(step_seed(self.train.seed, step as u64));
        let real = ring(self.train.batch_size, &mut gen);
        self.opt_g.set_lr(lr);
        self.opt_d.set_lr(lr);
        let losses =
            self.gan
                .train_step(&real, self.opt_g.as_mut(), self.opt_d.as_mut(), &mut gen)?;
        Ok(StepOutput {
            loss: losses.generator,
            items: self.train.batch_size,
        })
    }

    fn evaluate(&mut self) -> Result<EvalOutput> {
        let _guard = no_grad();
        let fake = self
            .gan
            .generator()
            .forward(&Var::new(self.eval_latent.clone()))?;
        let loss = self
            .gan
            .discriminator_loss(&Var::new(self.eval_real.clone()), &fake)?;
        let (modes, distance) = Self::coverage(&fake.value());
        Ok(EvalOutput {
            loss: f64::from(loss.value().item()?),
            accuracy: None,
            details: vec![format!(
                "generated points reach {modes} of {MODES} modes; mean distance to the nearest \
                 mode {distance:.3} (mode std {MODE_STD})"
            )],
        })
    }

    fn model_tensors(&self) -> Vec<(String, Tensor<f32>)> {
        self.gan
            .named_parameters()
            .into_iter()
            .map(|(name, var)| (name, var.value()))
            .collect()
    }

    fn optim_state(&self) -> StateDict<f32> {
        let mut combined = StateDict::new("gan");
        for (prefix, opt) in PREFIXES.iter().zip([&self.opt_g, &self.opt_d]) {
            let state = opt.state_dict();
            let key = |name: &String| format!("{prefix}{name}");
            combined
                .metadata
                .extend(state.metadata.iter().map(|(k, v)| (key(k), v.clone())));
            combined
                .tensors
                .extend(state.tensors.iter().map(|(k, v)| (key(k), v.clone())));
            combined
                .steps
                .extend(state.steps.iter().map(|(k, v)| (key(k), *v)));
        }
        combined
    }

    fn load_model(&mut self, path: &Path, file: TensorFile) -> Result<()> {
        load_vars(path, &self.gan.named_parameters(), file.tensors)
    }

    fn load_optim(&mut self, state: &StateDict<f32>) -> Result<()> {
        for (prefix, opt) in PREFIXES.iter().zip([&mut self.opt_g, &mut self.opt_d]) {
            let part = StateDict::<f32> {
                metadata: unprefix(&state.metadata, prefix),
                tensors: unprefix(&state.tensors, prefix),
                steps: unprefix(&state.steps, prefix),
            };
            opt.load_state_dict(&part)?;
        }
        Ok(())
    }

    fn finish(&mut self, progress: &Progress) -> Result<()> {
        let report = self.evaluate()?;
        for line in report.details {
            progress.println(&line);
        }
        Ok(())
    }
}

/// The entries of `map` whose keys start with `prefix`, with the prefix removed.
fn unprefix<V: Clone>(map: &BTreeMap<String, V>, prefix: &str) -> BTreeMap<String, V> {
    map.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect()
}
