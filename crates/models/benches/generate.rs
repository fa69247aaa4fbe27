//! Sampling 500 tokens from the char GPT of the training benchmark (random weights, seeded),
//! with [`Gpt::generate`]'s KV cache; `bench/reference/models.py` runs nanoGPT's `generate`,
//! which recomputes the whole (cropped) context for every token.
//!
//! The context is 64 tokens, so the cache only serves the first 64 tokens: once it is full,
//! every further token recomputes the last 64 positions, as the reference does throughout.
//!
//! `cargo bench -p strata-models --bench generate -- --exact generate/gpt_char_500`

use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use strata_models::{Gpt, GptConfig, SamplingConfig};
use strata_nn_layers::Module;
use strata_tensor::{Generator, IndexTensor};

/// Tokens sampled per iteration.
const NEW_TOKENS: usize = 500;

fn generate(c: &mut Criterion) {
    let config = GptConfig {
        vocab_size: 65,
        block_size: 64,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        dropout: 0.0,
        bias: false,
    };
    let mut model = Gpt::<f32>::new(&config, &mut Generator::new(1337)).expect("valid config");
    model.eval();
    let prompt = IndexTensor::from_vec(vec![0], &[1, 1]).expect("one token");
    let sampling = SamplingConfig::default();
    let mut group = c.benchmark_group("generate");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("gpt_char_500", |b| {
        let mut gen = Generator::new(0);
        b.iter(|| {
            model
                .generate(&prompt, NEW_TOKENS, &sampling, &mut gen)
                .expect("valid prompt")
        })
    });
    group.finish();
}

fn main() {
    // On a worker of the pool, as a training loop runs (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| {
        // One iteration takes about a second: the fewest samples criterion allows, flat.
        let mut criterion = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(5))
            .configure_from_args();
        generate(&mut criterion);
        criterion.final_summary();
    });
}
