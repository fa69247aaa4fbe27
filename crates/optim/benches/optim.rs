//! Optimizer costs at GPT scale: one AdamW step, one SGD-with-momentum step and one
//! `clip_grad_norm` over 20 parameters of 100k f32 elements each (2M in all), gradients set.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use strata_autograd::Var;
use strata_optim::{clip_grad_norm, AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use strata_tensor::Generator;

fn params() -> Vec<Var<f32>> {
    let mut gen = Generator::new(0);
    (0..20)
        .map(|_| {
            let p = Var::parameter(gen.randn(&[100, 1000]));
            p.set_grad(Some(gen.randn(&[100, 1000])));
            p
        })
        .collect()
}

fn steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("optim");
    group.measurement_time(Duration::from_secs(3));

    let p = params();
    let mut adamw = AdamW::new(p.clone(), AdamWConfig::default()).expect("valid config");
    group.bench_function("adamw_step_20x100k", |b| {
        b.iter(|| adamw.step().expect("step"))
    });

    let config = SgdConfig {
        lr: 1e-3,
        momentum: 0.9,
        ..Default::default()
    };
    let mut sgd = Sgd::new(p.clone(), config).expect("valid config");
    group.bench_function("sgd_momentum_step_20x100k", |b| {
        b.iter(|| sgd.step().expect("step"))
    });

    group.bench_function("clip_grad_norm_20x100k", |b| {
        b.iter(|| black_box(clip_grad_norm(&p, f64::INFINITY, 2.0).expect("norm")))
    });
    group.finish();
}

fn main() {
    // On a worker of the pool, as a training loop runs (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| {
        let mut criterion = Criterion::default().configure_from_args();
        steps(&mut criterion);
        criterion.final_summary();
    });
}
