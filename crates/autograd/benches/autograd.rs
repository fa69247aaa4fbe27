//! Autograd costs: the overhead of recording one op on a tiny tensor, and a forward plus
//! backward pass of a 784-256-256-10 MLP at batch 64.
//!
//! Bench IDs match `bench/reference/autograd.py`, which times PyTorch on the same workloads.
//! The thread count is rayon's, set with `RAYON_NUM_THREADS`.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use strata_autograd::Var;
use strata_tensor::{Generator, IndexTensor, Tensor};

/// One recorded `add` of two 2x2 variables that require gradients: graph bookkeeping only.
fn op_overhead(c: &mut Criterion) {
    let a = Var::parameter(Tensor::<f32>::ones(&[2, 2]));
    let b = Var::parameter(Tensor::<f32>::ones(&[2, 2]));
    let mut group = c.benchmark_group("autograd");
    group.bench_function("add_2x2", |bench| {
        bench.iter(|| black_box(a.add(&b).expect("same shapes")));
    });
    group.finish();
}

/// Forward and backward of a ReLU MLP with softmax cross-entropy, gradients cleared each time.
fn mlp(c: &mut Criterion) {
    let mut gen = Generator::new(0);
    let sizes = [784, 256, 256, 10];
    let layers: Vec<(Var<f32>, Var<f32>)> = sizes
        .windows(2)
        .map(|w| {
            let bound = 1.0 / (w[0] as f32).sqrt();
            (
                Var::parameter(gen.uniform(&[w[0], w[1]], -bound, bound)),
                Var::parameter(gen.uniform(&[w[1]], -bound, bound)),
            )
        })
        .collect();
    let x = Var::new(gen.randn::<f32>(&[64, 784]));
    let targets: Vec<usize> = (0..64).map(|_| gen.below(10)).collect();
    let targets = IndexTensor::from_vec(targets, &[64, 1]).expect("64 targets");
    let mut group = c.benchmark_group("autograd");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("mlp_784_256_256_10_b64", |bench| {
        bench.iter(|| {
            let mut h = x.clone();
            for (i, (w, b)) in layers.iter().enumerate() {
                h = h.matmul(w).and_then(|y| y.add(b)).expect("shapes agree");
                if i + 1 < layers.len() {
                    h = h.relu();
                }
            }
            let picked = h
                .log_softmax(-1)
                .and_then(|l| l.gather(1, &targets))
                .expect("targets");
            picked.mean_all().neg().backward().expect("scalar loss");
            for (w, b) in &layers {
                w.zero_grad();
                b.zero_grad();
            }
        });
    });
    group.finish();
}

fn main() {
    // On a worker of the pool, as a training loop runs (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| {
        let mut criterion = Criterion::default().configure_from_args();
        op_overhead(&mut criterion);
        mlp(&mut criterion);
        criterion.final_summary();
    });
}
