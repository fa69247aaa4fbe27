//! Memory-bound kernels on 16M `f32` elements: a same-shape add and a full sum.
//!
//! Throughput is counted in elements of the input. The thread count is rayon's, set with
//! `RAYON_NUM_THREADS`. Bench IDs (`add/16M`, `sum/16M`) match the workload names of
//! `bench/reference/tensor_ops.py`, which times NumPy and PyTorch on the same work.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use strata_tensor::{Generator, Tensor};

const LEN: usize = 16 * 1024 * 1024;

fn elementwise(c: &mut Criterion) {
    let mut gen = Generator::new(0);
    let a: Tensor<f32> = gen.randn(&[LEN]);
    let b: Tensor<f32> = gen.randn(&[LEN]);
    let configure = |group: &mut criterion::BenchmarkGroup<'_, _>| {
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        group.sample_size(20);
        group.throughput(Throughput::Elements(LEN as u64));
    };

    let mut add = c.benchmark_group("add");
    configure(&mut add);
    add.bench_function("16M", |bench| {
        bench.iter(|| black_box(a.add(&b).expect("same shapes")));
    });
    add.finish();

    let mut sum = c.benchmark_group("sum");
    configure(&mut sum);
    sum.bench_function("16M", |bench| bench.iter(|| black_box(a.sum_all())));
    sum.finish();
}

fn main() {
    // On a worker of the pool, as a training loop runs (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| {
        let mut criterion = Criterion::default().configure_from_args();
        elementwise(&mut criterion);
        criterion.final_summary();
    });
}
