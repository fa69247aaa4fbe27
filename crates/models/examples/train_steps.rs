//! Runs training steps of one recipe of `benches/train.rs` and prints the mean time per step:
//! a small binary to profile a step under `perf` or callgrind.
//!
//! ```text
//! cargo build --release -p strata-models --example train_steps
//! RAYON_NUM_THREADS=2 perf record -e cpu-clock -F 2000 -g \
//!     target/release/examples/train_steps gpt 50
//! ```
//!
//! The first argument is the recipe, `gpt` (`train/gpt_char_b12`), `lstm`
//! (`train/lstm_char_b32`) or `lenet` (`train/lenet_b64`); the second the number of timed
//! steps (default 20), after 3 warm-up steps. The steps run on a worker of rayon's pool, as
//! in the benchmark.

use std::time::Instant;

use strata_autograd::Var;
use strata_models::{CharRnn, CharRnnConfig, Gpt, GptConfig, LeNet, LeNetConfig};
use strata_nn_layers::{cross_entropy, Module};
use strata_optim::{clip_grad_norm, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, ParamGroup};
use strata_tensor::parallel::in_pool;
use strata_tensor::{Generator, IndexTensor};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One training step, returning the loss.
type Step<'a> = Box<dyn FnMut() -> Result<f32, BoxError> + 'a>;

/// Inputs and targets of `batch` sequences of 64 random character ids out of 65.
fn token_batch(batch: usize, gen: &mut Generator) -> Result<(IndexTensor, IndexTensor), BoxError> {
    let mut draw = || {
        let ids: Vec<usize> = (0..batch * 64).map(|_| gen.below(65)).collect();
        IndexTensor::from_vec(ids, &[batch, 64])
    };
    Ok((draw()?, draw()?))
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let recipe = args.next().unwrap_or_else(|| "gpt".to_string());
    let steps: usize = match args.next() {
        Some(arg) => arg.parse()?,
        None => 20,
    };
    in_pool(|| run(&recipe, steps))
}

fn run(recipe: &str, steps: usize) -> Result<(), BoxError> {
    let mut gen = Generator::new(1337);
    let mut step: Step<'_> = match recipe {
        "gpt" => gpt_step(&mut gen)?,
        "lstm" => lstm_step(&mut gen)?,
        "lenet" => lenet_step(&mut gen)?,
        other => return Err(format!("unknown recipe {other:?}: use gpt, lstm or lenet").into()),
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
        "{recipe}: {steps} steps, {:.2} ms per step, last loss {loss:.4}",
        per_step * 1e3
    );
    print_thread_times();
    Ok(())
}

/// The CPU time (user + system) each thread of the process used so far, from `/proc` (Linux
/// only; silent elsewhere): how evenly rayon's workers shared the steps.
fn print_thread_times() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let mut times = Vec::new();
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) {
            let ticks: u64 = u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
            times.push(ticks);
        }
    }
    times.sort_unstable_by(|a, b| b.cmp(a));
    // The kernel counts in clock ticks, 100 per second on Linux.
    let secs: Vec<String> = times
        .iter()
        .map(|t| format!("{:.2} s", *t as f64 / 100.0))
        .collect();
    println!("CPU time per thread: {}", secs.join(", "));
}

/// The char GPT: 4 layers, 4 heads, width 128, context 64, batch 12, AdamW, clipping at 1.
fn gpt_step(gen: &mut Generator) -> Result<Step<'static>, BoxError> {
    let config = GptConfig {
        vocab_size: 65,
        block_size: 64,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        dropout: 0.0,
        bias: false,
    };
    let model = Gpt::<f32>::new(&config, gen)?;
    let (xs, ys) = token_batch(12, gen)?;
    let base = AdamWConfig {
        lr: 1e-3,
        betas: (0.9, 0.99),
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let (decay, no_decay) = model.param_groups_for_decay();
    let no_decay_config = AdamWConfig {
        weight_decay: 0.0,
        ..base
    };
    let mut opt = AdamW::with_groups(vec![
        ParamGroup::new(decay, base),
        ParamGroup::new(no_decay, no_decay_config),
    ])?;
    let params = model.parameters();
    Ok(Box::new(move || {
        let loss = model.loss(&xs, &ys)?;
        loss.backward()?;
        clip_grad_norm(&params, 1.0, 2.0)?;
        opt.step()?;
        opt.zero_grad();
        Ok(loss.value().to_vec()[0])
    }))
}

/// The char LSTM: embedding 64, 2 layers of 256, batch 32, sequence 64, Adam.
fn lstm_step(gen: &mut Generator) -> Result<Step<'static>, BoxError> {
    let model = CharRnn::<f32>::new(&CharRnnConfig::default(), gen)?;
    let (xs, ys) = token_batch(32, gen)?;
    let config = AdamConfig {
        lr: 2e-3,
        ..AdamConfig::default()
    };
    let mut opt = Adam::new(model.parameters(), config)?;
    Ok(Box::new(move || {
        let loss = model.loss(&xs, &ys)?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        Ok(loss.value().to_vec()[0])
    }))
}

/// LeNet-5 on 32 x 32 images, batch 64, Adam.
fn lenet_step(gen: &mut Generator) -> Result<Step<'static>, BoxError> {
    let model = LeNet::<f32>::new(&LeNetConfig::default(), gen)?;
    let images = Var::new(gen.rand::<f32>(&[64, 1, 32, 32]));
    let labels: Vec<usize> = (0..64).map(|_| gen.below(10)).collect();
    let labels = IndexTensor::from_vec(labels, &[64])?;
    let mut opt = Adam::new(model.parameters(), AdamConfig::default())?;
    Ok(Box::new(move || {
        let logits = model.forward(&images)?;
        let loss = cross_entropy(&logits, &labels)?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        Ok(loss.value().to_vec()[0])
    }))
}
