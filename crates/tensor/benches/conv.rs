//! Convolution forward plus backward (input, weight and bias gradients) at the shapes of a
//! LeNet-5 training step and of a 64-channel 3x3 layer, batch 64, in f32; and LeNet's 2x2 max
//! pooling forward plus backward.

use std::hint::black_box;

use criterion::Criterion;
use strata_tensor::{
    conv2d, conv2d_backward_input, conv2d_backward_weight, max_pool2d, max_pool2d_backward,
    Conv2dParams, Generator, MaxPool2dParams, Tensor,
};

/// One training step's convolution work: output, then the three gradients.
fn fwd_bwd(
    x: &Tensor<f32>,
    w: &Tensor<f32>,
    b: &Tensor<f32>,
    g: &Tensor<f32>,
    params: &Conv2dParams,
) -> [Tensor<f32>; 3] {
    let out = conv2d(x, w, Some(b), params).expect("valid shapes");
    let grad_x = conv2d_backward_input(g, w, x.shape(), params).expect("valid shapes");
    let grad_w = conv2d_backward_weight(g, x, w.shape(), params).expect("valid shapes");
    let plane = g.shape()[2] * g.shape()[3];
    let channels = w.shape()[0];
    let mut grad_b = vec![0.0f32; channels];
    for (k, row) in g.contiguous_slice().chunks(plane).enumerate() {
        grad_b[k % channels] += row.iter().sum::<f32>();
    }
    black_box(grad_b);
    [out, grad_x, grad_w]
}

fn bench_case(c: &mut Criterion, id: &str, input: &[usize], weight: &[usize], padding: usize) {
    let mut gen = Generator::new(0);
    let x: Tensor<f32> = gen.randn(input);
    let w: Tensor<f32> = gen.randn(weight);
    let b: Tensor<f32> = gen.randn(&weight[..1]);
    let params = Conv2dParams {
        padding: [padding, padding],
        ..Default::default()
    };
    let out_shape = conv2d(&x, &w, Some(&b), &params)
        .expect("valid shapes")
        .shape()
        .to_vec();
    let g: Tensor<f32> = gen.randn(&out_shape);

    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    group.bench_function(id, |bench| {
        bench.iter(|| fwd_bwd(black_box(&x), black_box(&w), &b, black_box(&g), &params))
    });
    group.finish();
}

fn pool_case(c: &mut Criterion, id: &str, input: &[usize]) {
    let mut gen = Generator::new(0);
    let x: Tensor<f32> = gen.randn(input);
    let params = MaxPool2dParams::default();
    let mut group = c.benchmark_group("max_pool2d");
    group.sample_size(20);
    group.bench_function(id, |bench| {
        bench.iter(|| {
            let (out, idx) = max_pool2d(black_box(&x), [2, 2], &params).expect("valid shapes");
            max_pool2d_backward(&out, &idx, x.shape()).expect("valid shapes")
        })
    });
    group.finish();
}

fn conv_benches(c: &mut Criterion) {
    bench_case(c, "lenet1_fwd_bwd", &[64, 1, 32, 32], &[6, 1, 5, 5], 0);
    bench_case(c, "lenet2_fwd_bwd", &[64, 6, 14, 14], &[16, 6, 5, 5], 0);
    bench_case(c, "c64_3x3_fwd_bwd", &[64, 64, 32, 32], &[64, 64, 3, 3], 1);
    pool_case(c, "lenet1_fwd_bwd", &[64, 6, 28, 28]);
    pool_case(c, "lenet2_fwd_bwd", &[64, 16, 10, 10]);
}

/// The group criterion's harness runs (a private module: the generated function is undocumented).
mod harness {
    criterion::criterion_group!(benches, super::conv_benches);
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
