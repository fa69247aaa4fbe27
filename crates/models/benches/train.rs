//! One training step of each model at the fixed sizes of `bench/reference/models.py`, which
//! runs the same steps in PyTorch: forward, loss, backward, (clipping,) optimizer step and
//! zeroing the gradients.
//!
//! - `train/gpt_char_b12`: the char GPT (vocab 65, 4 layers, 4 heads, width 128, context
//!   64, no bias, no dropout, tied embeddings) at batch 12; AdamW lr 1e-3, betas 0.9/0.99,
//!   weight decay 0.1 on the 2-D weights only (nanoGPT's groups), gradient clipping at 1.0.
//! - `train/lenet_b64`: LeNet-5 on `(64, 1, 32, 32)` images in `[0, 1)`, 10 classes; Adam 1e-3.
//! - `train/lstm_char_b32`: [`CharRnn`] (embedding 64, LSTM 2 layers x 256, linear head to
//!   65); context 64, batch 32; Adam 2e-3.
//!
//! Every batch is drawn once from a seeded [`Generator`] and reused in every step. The thread
//! count is rayon's, set with `RAYON_NUM_THREADS`. Run one with
//! `cargo bench -p strata-models --bench train -- --exact train/gpt_char_b12`.

use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use strata_autograd::Var;
use strata_models::{CharRnn, CharRnnConfig, Gpt, GptConfig, LeNet, LeNetConfig};
use strata_nn_layers::{cross_entropy, Module};
use strata_optim::{clip_grad_norm, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, ParamGroup};
use strata_tensor::{Generator, IndexTensor};

/// The char-level vocabulary (Shakespeare's 65 characters).
const VOCAB: usize = 65;
/// Context length of the language models.
const CONTEXT: usize = 64;

/// The char GPT of nanoGPT's Shakespeare CPU recipe.
fn gpt_config() -> GptConfig {
    GptConfig {
        vocab_size: VOCAB,
        block_size: CONTEXT,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        dropout: 0.0,
        bias: false,
    }
}

/// A `(batch, CONTEXT)` batch of random token ids and its targets.
fn token_batch(batch: usize, gen: &mut Generator) -> (IndexTensor, IndexTensor) {
    let mut draw = || {
        let ids: Vec<usize> = (0..batch * CONTEXT).map(|_| gen.below(VOCAB)).collect();
        IndexTensor::from_vec(ids, &[batch, CONTEXT]).expect("batch * CONTEXT ids")
    };
    (draw(), draw())
}

fn gpt_step(c: &mut Criterion) {
    let mut gen = Generator::new(1337);
    let model = Gpt::<f32>::new(&gpt_config(), &mut gen).expect("valid config");
    let (xs, ys) = token_batch(12, &mut gen);
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
    ])
    .expect("valid hyperparameters");
    let params = model.parameters();
    let mut group = c.benchmark_group("train");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("gpt_char_b12", |b| {
        b.iter(|| {
            let loss = model.loss(&xs, &ys).expect("valid batch");
            loss.backward().expect("scalar loss");
            clip_grad_norm(&params, 1.0, 2.0).expect("valid norm type");
            opt.step().expect("gradients match parameters");
            opt.zero_grad();
        })
    });
    group.finish();
}

fn lenet_step(c: &mut Criterion) {
    let mut gen = Generator::new(0);
    let model = LeNet::<f32>::new(&LeNetConfig::default(), &mut gen).expect("valid config");
    let images = Var::new(gen.rand::<f32>(&[64, 1, 32, 32]));
    let labels: Vec<usize> = (0..64).map(|_| gen.below(10)).collect();
    let labels = IndexTensor::from_vec(labels, &[64]).expect("64 labels");
    let mut opt = Adam::new(model.parameters(), AdamConfig::default()).expect("valid lr");
    let mut group = c.benchmark_group("train");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("lenet_b64", |b| {
        b.iter(|| {
            let logits = model.forward(&images).expect("valid images");
            let loss = cross_entropy(&logits, &labels).expect("valid labels");
            loss.backward().expect("scalar loss");
            opt.step().expect("gradients match parameters");
            opt.zero_grad();
        })
    });
    group.finish();
}

fn lstm_step(c: &mut Criterion) {
    let mut gen = Generator::new(0);
    // The default config is the recipe: embedding 64, LSTM 2 x 256, vocabulary 65.
    let model = CharRnn::<f32>::new(&CharRnnConfig::default(), &mut gen).expect("valid config");
    let (xs, ys) = token_batch(32, &mut gen);
    let config = AdamConfig {
        lr: 2e-3,
        ..AdamConfig::default()
    };
    let mut opt = Adam::new(model.parameters(), config).expect("valid lr");
    let mut group = c.benchmark_group("train");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("lstm_char_b32", |b| {
        b.iter(|| {
            let loss = model.loss(&xs, &ys).expect("valid batch");
            loss.backward().expect("scalar loss");
            opt.step().expect("gradients match parameters");
            opt.zero_grad();
        })
    });
    group.finish();
}

fn main() {
    // On a worker of the pool, as a training loop runs (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| {
        // Each step takes milliseconds to a tenth of a second: ten flat samples over a few
        // seconds give a steady median. Command-line options (the runner's `--quick`) override.
        let mut criterion = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        gpt_step(&mut criterion);
        lenet_step(&mut criterion);
        lstm_step(&mut criterion);
        criterion.final_summary();
    });
}
