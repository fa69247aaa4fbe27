//! Tests of the pooling kernels against direct loops and finite differences, plus ties, NaN
//! and the checks on shapes and params.

use proptest::prelude::*;

use super::*;
use crate::random::Generator;

/// A drawn pooling problem: `(N, C, H, W)`, kernel, stride, padding, dilation and a seed.
#[derive(Debug, Clone)]
struct Case {
    shape: Vec<usize>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    seed: u64,
}

fn case_strategy(max_dilation: usize) -> impl Strategy<Value = Case> {
    (
        (1usize..3, 1usize..3, 1usize..4, 1usize..4),
        (1usize..3, 1usize..3, 0usize..2, 0usize..2),
        (
            1..=max_dilation,
            1..=max_dilation,
            0usize..5,
            0usize..5,
            any::<u64>(),
        ),
    )
        .prop_map(|((n, c, k_h, k_w), (s_h, s_w, pad_h, pad_w), rest)| {
            let (d_h, d_w, extra_h, extra_w, seed) = rest;
            let padding = [pad_h.min(k_h / 2), pad_w.min(k_w / 2)];
            let min_h = (d_h * (k_h - 1) + 1).saturating_sub(2 * padding[0]).max(1);
            let min_w = (d_w * (k_w - 1) + 1).saturating_sub(2 * padding[1]).max(1);
            Case {
                shape: vec![n, c, min_h + extra_h, min_w + extra_w],
                kernel: [k_h, k_w],
                stride: [s_h, s_w],
                padding,
                dilation: [d_h, d_w],
                seed,
            }
        })
}

/// The values of window `(oy, ox)` of plane `p` with their flat positions, padding skipped,
/// in row-major scan order.
fn window_values(
    x: &Tensor<f64>,
    case: &Case,
    p: usize,
    oy: usize,
    ox: usize,
) -> Vec<(f64, usize)> {
    let (h, w) = (case.shape[2], case.shape[3]);
    let data = x.to_vec();
    let mut values = Vec::new();
    for i in 0..case.kernel[0] {
        for j in 0..case.kernel[1] {
            let iy =
                (oy * case.stride[0] + i * case.dilation[0]) as isize - case.padding[0] as isize;
            let ix =
                (ox * case.stride[1] + j * case.dilation[1]) as isize - case.padding[1] as isize;
            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                let pos = iy as usize * w + ix as usize;
                values.push((data[p * h * w + pos], pos));
            }
        }
    }
    values
}

fn output_hw(case: &Case) -> [usize; 2] {
    [0, 1].map(|a| {
        let span = case.dilation[a] * (case.kernel[a] - 1) + 1;
        (case.shape[2 + a] + 2 * case.padding[a] - span) / case.stride[a] + 1
    })
}

fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    for (k, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * (1.0 + e.abs()),
            "element {k}: got {a}, expected {e}"
        );
    }
}

/// Central differences of `f` at every element of `x`.
fn finite_differences(x: &Tensor<f64>, f: impl Fn(&Tensor<f64>) -> f64) -> Vec<f64> {
    let h = 1e-6;
    let base = x.to_vec();
    (0..base.len())
        .map(|k| {
            let mut plus = base.clone();
            plus[k] += h;
            let mut minus = base.clone();
            minus[k] -= h;
            let f_plus = f(&Tensor::from_contiguous(plus, x.shape().to_vec()));
            let f_minus = f(&Tensor::from_contiguous(minus, x.shape().to_vec()));
            (f_plus - f_minus) / (2.0 * h)
        })
        .collect()
}

fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    a.to_vec().iter().zip(b.to_vec()).map(|(x, y)| x * y).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn max_pool2d_matches_direct_loops(case in case_strategy(2)) {
        let x: Tensor<f64> = Generator::new(case.seed).randn(&case.shape);
        let params = MaxPool2dParams {
            stride: Some(case.stride),
            padding: case.padding,
            dilation: case.dilation,
        };

        let result = max_pool2d(&x, case.kernel, &params);

        let [out_h, out_w] = output_hw(&case);
        let planes = case.shape[0] * case.shape[1];
        let windows: Vec<_> = (0..planes * out_h * out_w)
            .map(|k| window_values(&x, &case, k / (out_h * out_w), k / out_w % out_h, k % out_w))
            .collect();
        if windows.iter().any(Vec::is_empty) {
            // Dilation can leave a window entirely in the padding: that is refused.
            prop_assert!(result.is_err());
            return Ok(());
        }
        let (values, indices) = result.expect("every window reaches the input");
        let mut expected_values = Vec::new();
        let mut expected_indices = Vec::new();
        for window in windows {
            let best = window.iter().fold(window[0], |m, &v| if v.0 > m.0 { v } else { m });
            expected_values.push(best.0);
            expected_indices.push(best.1);
        }
        prop_assert_eq!(values.shape(), &[case.shape[0], case.shape[1], out_h, out_w]);
        prop_assert_eq!(values.to_vec(), expected_values);
        prop_assert_eq!(indices.as_slice(), &expected_indices[..]);
    }

    #[test]
    fn avg_pool2d_matches_direct_loops(case in case_strategy(1), include_pad in any::<bool>()) {
        let x: Tensor<f64> = Generator::new(case.seed).randn(&case.shape);
        let params = AvgPool2dParams {
            stride: Some(case.stride),
            padding: case.padding,
            count_include_pad: include_pad,
            divisor_override: None,
        };

        let out = avg_pool2d(&x, case.kernel, &params).expect("valid case");

        let [out_h, out_w] = output_hw(&case);
        let expected: Vec<f64> = (0..out.numel())
            .map(|k| {
                let window =
                    window_values(&x, &case, k / (out_h * out_w), k / out_w % out_h, k % out_w);
                let divisor = if include_pad {
                    case.kernel[0] * case.kernel[1]
                } else {
                    window.len()
                };
                window.iter().map(|v| v.0).sum::<f64>() / divisor as f64
            })
            .collect();
        assert_close(&out.to_vec(), &expected, 1e-12);
    }

    #[test]
    fn avg_pool2d_backward_is_adjoint_to_the_forward_pass(
        case in case_strategy(1),
        include_pad in any::<bool>(),
    ) {
        let mut gen = Generator::new(case.seed);
        let x: Tensor<f64> = gen.randn(&case.shape);
        let params = AvgPool2dParams {
            stride: Some(case.stride),
            padding: case.padding,
            count_include_pad: include_pad,
            divisor_override: None,
        };
        let out = avg_pool2d(&x, case.kernel, &params).expect("valid case");
        let g: Tensor<f64> = gen.randn(out.shape());

        let grad_x = avg_pool2d_backward(&g, &case.shape, case.kernel, &params).expect("valid");

        let forward = dot(&out, &g);
        prop_assert!((dot(&x, &grad_x) - forward).abs() <= 1e-10 * (1.0 + forward.abs()));
    }

    #[test]
    fn adaptive_avg_pool2d_matches_direct_loops(
        shape in (1usize..3, 1usize..8, 1usize..8),
        out_hw in (1usize..6, 1usize..6),
        seed in any::<u64>(),
    ) {
        let (c, h, w) = shape;
        let x: Tensor<f64> = Generator::new(seed).randn(&[c, h, w]);

        let out = adaptive_avg_pool2d(&x, [out_hw.0, out_hw.1]).expect("valid");

        let data = x.to_vec();
        let mut expected = Vec::new();
        for p in 0..c {
            for oy in 0..out_hw.0 {
                for ox in 0..out_hw.1 {
                    let (y0, y1) = (oy * h / out_hw.0, ((oy + 1) * h).div_ceil(out_hw.0));
                    let (x0, x1) = (ox * w / out_hw.1, ((ox + 1) * w).div_ceil(out_hw.1));
                    let mut sum = 0.0;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            sum += data[(p * h + iy) * w + ix];
                        }
                    }
                    expected.push(sum / ((y1 - y0) * (x1 - x0)) as f64);
                }
            }
        }
        prop_assert_eq!(out.shape(), &[c, out_hw.0, out_hw.1]);
        assert_close(&out.to_vec(), &expected, 1e-12);
    }
}

#[test]
fn max_pool2d_backward_matches_finite_differences() {
    let mut gen = Generator::new(4);
    // Distinct, well separated values keep every argmax away from a tie under the +-h probe.
    let perm = gen.randperm(2 * 3 * 7 * 6);
    let data = perm.iter().map(|&v| v as f64 * 0.1).collect();
    let x = Tensor::from_contiguous(data, vec![2, 3, 7, 6]);
    let params = MaxPool2dParams {
        stride: Some([2, 1]),
        padding: [1, 1],
        dilation: [1, 2],
    };
    let (out, indices) = max_pool2d(&x, [3, 2], &params).expect("valid");
    let g: Tensor<f64> = gen.randn(out.shape());
    let loss = |x: &Tensor<f64>| dot(&max_pool2d(x, [3, 2], &params).expect("valid").0, &g);

    let grad_x = max_pool2d_backward(&g, &indices, x.shape()).expect("valid");

    assert_close(&grad_x.to_vec(), &finite_differences(&x, loss), 1e-6);
}

#[test]
fn avg_pool2d_backward_matches_finite_differences() {
    let mut gen = Generator::new(6);
    let x: Tensor<f64> = gen.randn(&[2, 2, 6, 5]);
    for params in [
        AvgPool2dParams {
            stride: Some([2, 1]),
            padding: [1, 1],
            ..Default::default()
        },
        AvgPool2dParams {
            padding: [1, 0],
            count_include_pad: false,
            ..Default::default()
        },
        AvgPool2dParams {
            divisor_override: Some(5),
            ..Default::default()
        },
    ] {
        let out = avg_pool2d(&x, [3, 2], &params).expect("valid");
        let g: Tensor<f64> = gen.randn(out.shape());
        let loss = |x: &Tensor<f64>| dot(&avg_pool2d(x, [3, 2], &params).expect("valid"), &g);

        let grad_x = avg_pool2d_backward(&g, x.shape(), [3, 2], &params).expect("valid");

        assert_close(&grad_x.to_vec(), &finite_differences(&x, loss), 1e-6);
    }
}

#[test]
fn adaptive_avg_pool2d_backward_matches_finite_differences() {
    let mut gen = Generator::new(7);
    let x: Tensor<f64> = gen.randn(&[2, 1, 5, 7]);
    let g: Tensor<f64> = gen.randn(&[2, 1, 3, 4]);
    let loss = |x: &Tensor<f64>| dot(&adaptive_avg_pool2d(x, [3, 4]).expect("valid"), &g);

    let grad_x = adaptive_avg_pool2d_backward(&g, x.shape()).expect("valid");

    assert_close(&grad_x.to_vec(), &finite_differences(&x, loss), 1e-6);
}

#[test]
fn max_pool2d_picks_the_first_of_tied_maxima() {
    let x = Tensor::<f32>::from_vec(vec![2.0, 7.0, 7.0, 1.0, 7.0, 0.0], &[1, 2, 3]).expect("ok");

    let (values, indices) = max_pool2d(&x, [2, 3], &MaxPool2dParams::default()).expect("valid");

    assert_eq!(values.to_vec(), vec![7.0]);
    assert_eq!(indices.as_slice(), &[1]);
}

#[test]
fn max_pool2d_propagates_nan_as_the_maximum() {
    let x = Tensor::<f32>::from_vec(vec![1.0, f32::NAN, 9.0, 3.0], &[1, 1, 4]).expect("ok");

    let (values, indices) = max_pool2d(&x, [1, 4], &MaxPool2dParams::default()).expect("valid");

    assert!(values.to_vec()[0].is_nan());
    assert_eq!(indices.as_slice(), &[1]);
}

#[test]
fn max_pool2d_2x2_windows_take_the_first_tie_and_the_last_nan() {
    // Windows (row-major taps): [1, 3, 3, 0] tie, [NaN, 2, 5, NaN] two NaNs, [4, 4, 4, 4],
    // [-1, -2, NaN, -3]; the stride-2 2x2 case has its own kernel.
    #[rustfmt::skip]
    let data = vec![
        1.0, 3.0, f64::NAN, 2.0, 4.0, 4.0, -1.0, -2.0,
        3.0, 0.0, 5.0, f64::NAN, 4.0, 4.0, f64::NAN, -3.0,
    ];
    let x = Tensor::<f64>::from_vec(data, &[1, 2, 8]).expect("ok");

    let (values, indices) = max_pool2d(&x, [2, 2], &MaxPool2dParams::default()).expect("valid");

    let values = values.to_vec();
    assert_eq!((values[0], values[2]), (3.0, 4.0));
    assert!(values[1].is_nan() && values[3].is_nan());
    assert_eq!(indices.as_slice(), &[1, 11, 4, 14]);
}

#[test]
fn max_pool2d_padding_acts_as_negative_infinity() {
    let x = Tensor::<f32>::full(&[1, 2, 2], -5.0);
    let params = MaxPool2dParams {
        stride: Some([1, 1]),
        padding: [1, 1],
        ..Default::default()
    };

    let (values, indices) = max_pool2d(&x, [2, 2], &params).expect("valid");

    assert_eq!(values.to_vec(), vec![-5.0; 9]);
    assert_eq!(indices.as_slice(), &[0, 0, 1, 0, 0, 1, 2, 2, 3]);
}

#[test]
fn max_pool2d_backward_adds_gradients_of_overlapping_windows() {
    let x = Tensor::<f32>::from_vec(vec![0.0, 9.0, 1.0, 2.0], &[1, 1, 4]).expect("ok");
    let params = MaxPool2dParams {
        stride: Some([1, 1]),
        ..Default::default()
    };
    let (_, indices) = max_pool2d(&x, [1, 2], &params).expect("valid");
    let g = Tensor::<f32>::from_vec(vec![1.0, 10.0, 100.0], &[1, 1, 3]).expect("ok");

    let grad_x = max_pool2d_backward(&g, &indices, x.shape()).expect("valid");

    assert_eq!(grad_x.to_vec(), vec![0.0, 11.0, 0.0, 100.0]);
}

#[test]
fn parallel_pooling_gives_the_serial_bits() {
    let x: Tensor<f32> = Generator::new(12).randn(&[8, 16, 24, 24]);
    let avg = AvgPool2dParams {
        padding: [1, 1],
        stride: Some([1, 1]),
        ..Default::default()
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            let (max, indices) = max_pool2d(&x, [3, 3], &Default::default()).expect("valid");
            let grad_max = max_pool2d_backward(&max, &indices, x.shape()).expect("valid");
            let mean = avg_pool2d(&x, [3, 3], &avg).expect("valid");
            let grad_avg = avg_pool2d_backward(&mean, x.shape(), [3, 3], &avg).expect("valid");
            let adaptive = adaptive_avg_pool2d(&x, [5, 7]).expect("valid");
            let grad_adaptive = adaptive_avg_pool2d_backward(&adaptive, x.shape()).expect("valid");
            [max, grad_max, mean, grad_avg, adaptive, grad_adaptive].map(|t| t.to_vec())
        })
    };

    let (one, two) = (run(1), run(2));

    assert!(
        x.numel() >= PAR_THRESHOLD,
        "the case must take the parallel path"
    );
    assert_eq!(one, two);
}

#[test]
fn invalid_shapes_and_params_are_errors() {
    let x = Tensor::<f32>::zeros(&[1, 2, 4, 4]);
    let max = |kernel, params: MaxPool2dParams| max_pool2d(&x, kernel, &params).map(|r| r.0);
    let cases: Vec<(Result<Tensor<f32>>, &str)> = vec![
        (
            max_pool2d(&Tensor::zeros(&[4, 4]), [2, 2], &Default::default()).map(|r| r.0),
            "max_pool2d: expected input of rank 3 or 4 with non-empty spatial dims, \
             got shape [4, 4]",
        ),
        (
            max([0, 2], Default::default()),
            "max_pool2d: kernel size [0, 2] and stride [0, 2] must be positive",
        ),
        (
            max(
                [2, 2],
                MaxPool2dParams {
                    padding: [2, 0],
                    ..Default::default()
                },
            ),
            "max_pool2d: padding [2, 0] exceeds half the kernel size [2, 2]",
        ),
        (
            max([5, 1], Default::default()),
            "max_pool2d: window spanning 5 exceeds padded input size 4",
        ),
        (
            max(
                [2, 2],
                MaxPool2dParams {
                    padding: [1, 1],
                    dilation: [5, 1],
                    stride: None,
                },
            ),
            "max_pool2d: a window with dilation [5, 1] lies entirely in the padding [1, 1]",
        ),
        (
            avg_pool2d(
                &x,
                [2, 2],
                &AvgPool2dParams {
                    divisor_override: Some(0),
                    ..Default::default()
                },
            ),
            "avg_pool2d: divisor override must be positive",
        ),
        (
            avg_pool2d_backward(
                &Tensor::zeros(&[1, 2, 3, 2]),
                x.shape(),
                [2, 2],
                &Default::default(),
            ),
            "avg_pool2d_backward: grad_out differs from the pooling's output shape \
             (lhs [1, 2, 3, 2], rhs [1, 2, 2, 2])",
        ),
        (
            adaptive_avg_pool2d(&x, [0, 1]),
            "adaptive_avg_pool2d: output size [0, 1] must be positive",
        ),
        (
            adaptive_avg_pool2d_backward(&Tensor::zeros(&[1, 3, 2, 2]), x.shape()),
            "adaptive_avg_pool2d_backward: grad_out and input differ in rank or leading dims \
             (lhs [1, 3, 2, 2], rhs [1, 2, 4, 4])",
        ),
    ];

    for (result, message) in cases {
        assert_eq!(result.expect_err(message).to_string(), message);
    }
}

#[test]
fn max_pool2d_backward_rejects_indices_outside_the_plane() {
    let g = Tensor::<f32>::zeros(&[1, 1, 2]);
    let indices = IndexTensor::from_vec(vec![0, 4], &[1, 1, 2]).expect("ok");

    let result = max_pool2d_backward(&g, &indices, &[1, 2, 2]);

    let message = result
        .expect_err("index 4 is outside a 2x2 plane")
        .to_string();
    assert_eq!(
        message,
        "max_pool2d_backward: index 4 out of range for size 4"
    );
}
