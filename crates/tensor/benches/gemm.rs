//! Matrix products of `f32` matrices: square sizes and the two GEMM shapes of a GPT-2 block.
//!
//! Throughput is counted in floating-point operations (`2 * m * k * n` per product), so the
//! `elem/s` criterion reports reads as FLOP/s. The thread count is rayon's, set with
//! `RAYON_NUM_THREADS`. Bench IDs (`gemm/512`, `gemm/768x128x384`) match the workload names of
//! `bench/reference/tensor_ops.py`, which times NumPy and PyTorch on the same products.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use strata_tensor::{Generator, Tensor};

/// `(name, m, k, n)` for an `(m, k) @ (k, n)` product.
const SHAPES: [(&str, usize, usize, usize); 6] = [
    ("256", 256, 256, 256),
    ("512", 512, 512, 512),
    ("1024", 1024, 1024, 1024),
    ("2048", 2048, 2048, 2048),
    ("768x128x384", 768, 128, 384),
    ("768x512x128", 768, 512, 128),
];

fn gemm(c: &mut Criterion) {
    let mut gen = Generator::new(0);
    let mut group = c.benchmark_group("gemm");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, m, k, n) in SHAPES {
        let a: Tensor<f32> = gen.randn(&[m, k]);
        let b: Tensor<f32> = gen.randn(&[k, n]);
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        group.sample_size(if m * k * n >= 1 << 30 { 10 } else { 30 });
        group.bench_function(name, |bench| {
            bench.iter(|| black_box(a.matmul(&b).expect("shapes agree")));
        });
    }
    group.finish();
}

fn main() {
    // On a worker of the pool, as a training loop runs (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| {
        let mut criterion = Criterion::default().configure_from_args();
        gemm(&mut criterion);
        criterion.final_summary();
    });
}
