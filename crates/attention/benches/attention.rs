//! The math kernel against the tiled kernel of scaled dot-product attention, forward alone
//! (no graph) and forward plus backward, at batch 1, 4 heads, head dim 32 in f32, causal.
//!
//! `cargo bench -p strata-attention`; the numbers are recorded in the docs of
//! `strata_attention::tiled`, where they set `TILED_MIN_SEQ`.

use criterion::{BenchmarkId, Criterion};
use strata_attention::{scaled_dot_product_attention, SdpaKernel, SdpaOptions};
use strata_autograd::{no_grad, BackwardOptions, Var};
use strata_tensor::{Generator, Tensor};

const SEQS: [usize; 7] = [16, 32, 64, 128, 256, 512, 1024];

fn inputs(seq: usize) -> [Tensor<f32>; 4] {
    let mut gen = Generator::new(0);
    let shape = [1, 4, seq, 32];
    [
        gen.randn(&shape),
        gen.randn(&shape),
        gen.randn(&shape),
        gen.randn(&shape),
    ]
}

fn options(kernel: SdpaKernel) -> SdpaOptions<'static> {
    SdpaOptions {
        is_causal: true,
        kernel,
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let kernels = [("math", SdpaKernel::Math), ("tiled", SdpaKernel::Tiled)];
    let mut group = c.benchmark_group("sdpa_causal_forward");
    for seq in SEQS {
        let [q, k, v, _] = inputs(seq).map(Var::new);
        for (name, kernel) in kernels {
            group.bench_with_input(BenchmarkId::new(name, seq), &seq, |b, _| {
                let _guard = no_grad();
                b.iter(|| scaled_dot_product_attention(&q, &k, &v, None, options(kernel)).unwrap())
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("sdpa_causal_forward_backward");
    for seq in SEQS {
        let [q, k, v, g] = inputs(seq);
        let (q, k, v) = (Var::parameter(q), Var::parameter(k), Var::parameter(v));
        for (name, kernel) in kernels {
            group.bench_with_input(BenchmarkId::new(name, seq), &seq, |b, _| {
                b.iter(|| {
                    let y =
                        scaled_dot_product_attention(&q, &k, &v, None, options(kernel)).unwrap();
                    y.backward_with(&g, BackwardOptions::default()).unwrap();
                })
            });
        }
    }
    group.finish();
}

/// The group criterion's harness runs (a private module: the generated function is undocumented).
mod harness {
    use std::time::Duration;

    use criterion::Criterion;

    criterion::criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        targets = super::bench
    }
}

fn main() {
    // On a worker of the pool, as a training loop runs (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| {
        harness::benches();
        criterion::Criterion::default()
            .configure_from_args()
            .final_summary();
    });
}
