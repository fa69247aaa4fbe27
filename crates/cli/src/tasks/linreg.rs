//! `strata train linreg`: linear regression by mini-batch SGD on a synthetic, seeded problem,
//! printing the fitted weights beside the true ones at the end.
//!
//! ```text
//! x ~ N(0, 1)^(in_features),  w_true, b_true ~ N(0, 1),  y = x w_true^T + b_true + 0.1 e,
//! e ~ N(0, 1);  1024 training rows and 256 validation rows, all drawn from the seed
//! ```

use std::path::Path;

use anyhow::Result;
use serde_json::Value;
use strata_autograd::{no_grad, Var};
use strata_models::{LinearRegression, LinearRegressionConfig};
use strata_nn_layers::Module;
use strata_optim::{Optimizer, StateDict};
use strata_tensor::{Generator, IndexTensor, Tensor};

use super::{model_config, optimizer};
use crate::checkpoint::{load_vars, TensorFile};
use crate::config::{OptimizerKind, RunConfig, TrainConfig};
use crate::progress::Progress;
use crate::trainer::{step_seed, EvalOutput, StepOutput, Task};

const TRAIN_ROWS: usize = 1024;
const VALIDATION_ROWS: usize = 256;
const NOISE_STD: f32 = 0.1;
/// Mixed into the seed of the synthetic problem, so it differs from the initial weights.
const PROBLEM_SALT: u64 = 0x4C49_4E52_4547_0000;

/// Three features, one output: SGD lr 0.1, batch 32, 300 steps, evaluation every 50.
pub fn defaults() -> (Value, TrainConfig) {
    let model = LinearRegressionConfig {
        in_features: 3,
        ..LinearRegressionConfig::default()
    };
    let train = TrainConfig {
        steps: 300,
        epochs: None,
        batch_size: 32,
        optimizer: OptimizerKind::Sgd,
        lr: 0.1,
        min_lr: 0.1,
        warmup_steps: 0,
        lr_decay_steps: 0,
        betas: (0.9, 0.999),
        weight_decay: 0.0,
        grad_clip: 0.0,
        eval_interval: 50,
        eval_iters: 1,
        log_interval: 10,
        seed: 1337,
        data: None,
    };
    (
        serde_json::to_value(model).expect("bug: configs serialise"),
        train,
    )
}

/// The synthetic problem: true parameters and the two splits.
struct Problem {
    weight: Tensor<f32>,
    bias: Tensor<f32>,
    train: (Tensor<f32>, Tensor<f32>),
    validation: (Tensor<f32>, Tensor<f32>),
}

impl Problem {
    fn new(config: &LinearRegressionConfig, seed: u64) -> Result<Self> {
        let mut gen = Generator::new(seed ^ PROBLEM_SALT);
        let (d_in, d_out) = (config.in_features, config.out_features);
        let weight: Tensor<f32> = gen.randn(&[d_out, d_in]);
        let bias: Tensor<f32> = if config.bias {
            gen.randn(&[d_out])
        } else {
            Tensor::zeros(&[d_out])
        };
        let mut split = |rows: usize| -> Result<(Tensor<f32>, Tensor<f32>)> {
            let xs: Tensor<f32> = gen.randn(&[rows, d_in]);
            let noise: Tensor<f32> = gen.normal(&[rows, d_out], 0.0, NOISE_STD);
            let ys = xs
                .matmul(&weight.transpose(0, 1)?)?
                .add(&bias)?
                .add(&noise)?;
            Ok((xs, ys))
        };
        let train = split(TRAIN_ROWS)?;
        let validation = split(VALIDATION_ROWS)?;
        Ok(Self {
            weight,
            bias,
            train,
            validation,
        })
    }
}

/// Linear regression with its synthetic data and optimizer.
pub struct LinregTask {
    model: LinearRegression<f32>,
    optimizer: Box<dyn Optimizer<f32>>,
    problem: Problem,
    train: TrainConfig,
}

impl LinregTask {
    /// Draws the problem and the initial weights from the seed.
    ///
    /// # Errors
    /// If the model config is invalid.
    pub fn new(config: &RunConfig) -> Result<Self> {
        let model_config: LinearRegressionConfig = model_config(config)?;
        let train = config.train.clone();
        let problem = Problem::new(&model_config, train.seed)?;
        let model = LinearRegression::new(&model_config, &mut Generator::new(train.seed))?;
        let optimizer = optimizer(&train, model.parameters(), Vec::new())?;
        Ok(Self {
            model,
            optimizer,
            problem,
            train,
        })
    }

    /// Fitted and true parameters, one line each.
    fn comparison(&self) -> Vec<String> {
        let fmt = |t: &Tensor<f32>| {
            let values: Vec<String> = t.to_vec().iter().map(|v| format!("{v:+.4}")).collect();
            format!("[{}]", values.join(", "))
        };
        let mut lines = vec![format!(
            "weight: fitted {} | true {}",
            fmt(&self.model.weight().value()),
            fmt(&self.problem.weight)
        )];
        if let Some(bias) = self.model.bias() {
            lines.push(format!(
                "bias:   fitted {} | true {}",
                fmt(&bias.value()),
                fmt(&self.problem.bias)
            ));
        }
        lines
    }
}

impl Task for LinregTask {
    fn unit(&self) -> &'static str {
        "ex"
    }

    fn model_config_json(&self) -> Value {
        serde_json::to_value(self.model.config()).expect("bug: configs serialise")
    }

    fn num_parameters(&self) -> usize {
        self.model.num_parameters()
    }

    fn train_step(&mut self, step: usize, lr: f64) -> Result<StepOutput> {
        let mut gen = Generator::new(step_seed(self.train.seed, step as u64));
        let rows: Vec<usize> = (0..self.train.batch_size)
            .map(|_| gen.below(TRAIN_ROWS))
            .collect();
        let (xs, ys) = &self.problem.train;
        let index = IndexTensor::from_slice(&rows);
        let xs = xs.index_select(0, &index)?;
        let ys = ys.index_select(0, &index)?;
        self.optimizer.set_lr(lr);
        self.optimizer.zero_grad();
        let loss = self.model.loss(&Var::new(xs), &Var::new(ys))?;
        loss.backward()?;
        self.optimizer.step()?;
        Ok(StepOutput {
            loss: f64::from(loss.value().item()?),
            items: rows.len(),
        })
    }

    fn evaluate(&mut self) -> Result<EvalOutput> {
        let _guard = no_grad();
        let (xs, ys) = &self.problem.validation;
        let loss = self
            .model
            .loss(&Var::new(xs.clone()), &Var::new(ys.clone()))?;
        Ok(EvalOutput {
            loss: f64::from(loss.value().item()?),
            accuracy: None,
            details: self.comparison(),
        })
    }

    fn model_tensors(&self) -> Vec<(String, Tensor<f32>)> {
        self.model
            .named_parameters()
            .into_iter()
            .map(|(name, var)| (name, var.value()))
            .collect()
    }

    fn optim_state(&self) -> StateDict<f32> {
        self.optimizer.state_dict()
    }

    fn load_model(&mut self, path: &Path, file: TensorFile) -> Result<()> {
        load_vars(path, &self.model.named_parameters(), file.tensors)
    }

    fn load_optim(&mut self, state: &StateDict<f32>) -> Result<()> {
        Ok(self.optimizer.load_state_dict(state)?)
    }

    fn finish(&mut self, progress: &Progress) -> Result<()> {
        for line in self.comparison() {
            progress.println(&line);
        }
        Ok(())
    }
}
