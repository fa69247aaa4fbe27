//! Causal scaled dot-product attention, forward and backward, at batch 1, 8 heads, head dim
//! 64 in f32, for sequences of 256, 1024 and 4096 (the default kernel choice, which is the
//! tiled kernel at these lengths); `bench/reference/models.py` times PyTorch's
//! `F.scaled_dot_product_attention(q, k, v, is_causal=True)` with the same shapes.
//!
//! Gradients of `q`, `k` and `v` are cleared after each step, as the reference does.
//!
//! `cargo bench -p strata-models --bench attention -- --exact attention/sdpa_causal_1024`

use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use strata_attention::{scaled_dot_product_attention, SdpaOptions};
use strata_autograd::{BackwardOptions, Var};
use strata_tensor::Generator;

/// Sequence lengths; the bench IDs are `attention/sdpa_causal_{seq}`.
const SEQS: [usize; 3] = [256, 1024, 4096];

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group.sampling_mode(SamplingMode::Flat);
    for seq in SEQS {
        let mut gen = Generator::new(0);
        let shape = [1, 8, seq, 64];
        let q = Var::parameter(gen.randn::<f32>(&shape));
        let k = Var::parameter(gen.randn::<f32>(&shape));
        let v = Var::parameter(gen.randn::<f32>(&shape));
        let grad = gen.randn::<f32>(&shape);
        let options = || SdpaOptions {
            is_causal: true,
            ..SdpaOptions::default()
        };
        group.bench_function(format!("sdpa_causal_{seq}"), |b| {
            b.iter(|| {
                let y = scaled_dot_product_attention(&q, &k, &v, None, options())
                    .expect("matching shapes");
                y.backward_with(&grad, BackwardOptions::default())
                    .expect("gradient of the output's shape");
                for x in [&q, &k, &v] {
                    x.zero_grad();
                }
            })
        });
    }
    group.finish();
}

fn main() {
    // On a worker of the pool, as a training loop runs (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| {
        let mut criterion = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        attention(&mut criterion);
        criterion.final_summary();
    });
}
