//! Runs training steps of the char GPT of `benches/train.rs` (`train/gpt_char_b12`) and prints
//! the mean time per step: a small binary to profile the step under `perf` or callgrind.
//!
//! ```text
//! cargo build --release -p strata-models --example gpt_train_steps
//! perf record -e cpu-clock -F 2000 -g target/release/examples/gpt_train_steps 50
//! ```
//!
//! The argument is the number of timed steps (default 20), after 3 warm-up steps.

use std::time::Instant;

use strata_models::{Gpt, GptConfig};
use strata_nn_layers::Module;
use strata_optim::{clip_grad_norm, AdamW, AdamWConfig, Optimizer, ParamGroup};
use strata_tensor::parallel::in_pool;
use strata_tensor::{Generator, IndexTensor};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let steps: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 20,
    };
    // On a worker of the pool, as the benchmark and `strata train` run their steps.
    in_pool(|| run(steps))
}

fn run(steps: usize) -> Result<(), BoxError> {
    let config = GptConfig {
        vocab_size: 65,
        block_size: 64,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        dropout: 0.0,
        bias: false,
    };
    let mut gen = Generator::new(1337);
    let model = Gpt::<f32>::new(&config, &mut gen)?;
    let mut draw = || {
        let ids: Vec<usize> = (0..12 * 64).map(|_| gen.below(65)).collect();
        IndexTensor::from_vec(ids, &[12, 64])
    };
    let (xs, ys) = (draw()?, draw()?);
    let base = AdamWConfig {
        lr: 1e-3,
        betas: (0.9, 0.99),
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let (decay, no_decay) = model.param_groups_for_decay();
    let mut opt = AdamW::with_groups(vec![
        ParamGroup::new(decay, base),
        ParamGroup::new(
            no_decay,
            AdamWConfig {
                weight_decay: 0.0,
                ..base
            },
        ),
    ])?;
    let params = model.parameters();
    let mut step = || -> Result<f32, BoxError> {
        let loss = model.loss(&xs, &ys)?;
        loss.backward()?;
        clip_grad_norm(&params, 1.0, 2.0)?;
        opt.step()?;
        opt.zero_grad();
        Ok(loss.value().to_vec()[0])
    };
    for _ in 0..3 {
        step()?;
    }
    let start = Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        loss = step()?;
    }
    let per_step = start.elapsed().as_secs_f64() / steps.max(1) as f64;
    println!(
        "{steps} steps, {:.2} ms per step, last loss {loss:.4}",
        per_step * 1e3
    );
    Ok(())
}
