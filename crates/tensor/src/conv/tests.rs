//! Tests of the convolution kernels against direct loops, finite differences and the adjoint
//! identities, plus the checks on shapes and params.

use proptest::prelude::*;

use super::*;
use crate::random::Generator;

/// A drawn convolution problem: shapes and params that make a valid conv2d.
#[derive(Debug, Clone)]
struct Case {
    input: Vec<usize>,
    weight: Vec<usize>,
    params: Conv2dParams,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        (1usize..3, 1usize..3, 1usize..3, 1usize..3),
        (1usize..4, 1usize..4, 1usize..3, 1usize..3),
        (0usize..3, 0usize..3, 1usize..3, 1usize..3),
        (0usize..4, 0usize..4, any::<u64>()),
    )
        .prop_map(
            |((batch, groups, c_in_g, c_out_g), (k_h, k_w, s_h, s_w), pads, extra)| {
                let (p_h, p_w, d_h, d_w) = pads;
                let (extra_h, extra_w, seed) = extra;
                // The smallest input the dilated kernel fits in, plus a drawn margin.
                let min_h = (d_h * (k_h - 1) + 1).saturating_sub(2 * p_h).max(1);
                let min_w = (d_w * (k_w - 1) + 1).saturating_sub(2 * p_w).max(1);
                Case {
                    input: vec![batch, groups * c_in_g, min_h + extra_h, min_w + extra_w],
                    weight: vec![groups * c_out_g, c_in_g, k_h, k_w],
                    params: Conv2dParams {
                        stride: [s_h, s_w],
                        padding: [p_h, p_w],
                        dilation: [d_h, d_w],
                        groups,
                    },
                    seed,
                }
            },
        )
}

/// conv2d written as the seven nested loops of its definition.
fn direct_conv2d(
    x: &Tensor<f64>,
    w: &Tensor<f64>,
    bias: Option<&Tensor<f64>>,
    p: &Conv2dParams,
) -> Vec<f64> {
    let [n, _, h, wd] = x.shape().try_into().expect("rank 4 input");
    let [c_out, c_in_g, k_h, k_w] = w.shape().try_into().expect("rank 4 weight");
    let out_h = (h + 2 * p.padding[0] - p.dilation[0] * (k_h - 1) - 1) / p.stride[0] + 1;
    let out_w = (wd + 2 * p.padding[1] - p.dilation[1] * (k_w - 1) - 1) / p.stride[1] + 1;
    let c_out_g = c_out / p.groups;
    let mut out = Vec::with_capacity(n * c_out * out_h * out_w);
    for b in 0..n {
        for o in 0..c_out {
            for y in 0..out_h {
                for xo in 0..out_w {
                    let mut acc = bias.map_or(0.0, |bias| bias.get(&[o]).expect("in range"));
                    for c in 0..c_in_g {
                        for i in 0..k_h {
                            for j in 0..k_w {
                                let iy = (y * p.stride[0] + i * p.dilation[0]) as isize
                                    - p.padding[0] as isize;
                                let ix = (xo * p.stride[1] + j * p.dilation[1]) as isize
                                    - p.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let ch = o / c_out_g * c_in_g + c;
                                let xv = x.get(&[b, ch, iy as usize, ix as usize]).expect("in");
                                acc += w.get(&[o, c, i, j]).expect("in range") * xv;
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    out
}

fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    a.to_vec().iter().zip(b.to_vec()).map(|(x, y)| x * y).sum()
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv2d_matches_direct_loops(case in case_strategy()) {
        let mut gen = Generator::new(case.seed);
        let x: Tensor<f64> = gen.randn(&case.input);
        let w: Tensor<f64> = gen.randn(&case.weight);
        let bias: Tensor<f64> = gen.randn(&[case.weight[0]]);

        let out = conv2d(&x, &w, Some(&bias), &case.params).expect("valid case");

        let expected = direct_conv2d(&x, &w, Some(&bias), &case.params);
        assert_close(&out.to_vec(), &expected, 1e-12);
    }

    #[test]
    fn conv2d_gradients_are_adjoint_to_the_forward_pass(case in case_strategy()) {
        let mut gen = Generator::new(case.seed);
        let x: Tensor<f64> = gen.randn(&case.input);
        let w: Tensor<f64> = gen.randn(&case.weight);
        let out = conv2d(&x, &w, None, &case.params).expect("valid case");
        let g: Tensor<f64> = gen.randn(out.shape());

        let grad_x = conv2d_backward_input(&g, &w, x.shape(), &case.params).expect("valid");
        let grad_w = conv2d_backward_weight(&g, &x, w.shape(), &case.params).expect("valid");

        // <conv(x, w), g> is linear in x and in w, so it equals <x, grad_x> and <w, grad_w>.
        let forward = dot(&out, &g);
        prop_assert_eq!(grad_x.shape(), x.shape());
        prop_assert_eq!(grad_w.shape(), w.shape());
        prop_assert!((dot(&x, &grad_x) - forward).abs() <= 1e-10 * (1.0 + forward.abs()));
        prop_assert!((dot(&w, &grad_w) - forward).abs() <= 1e-10 * (1.0 + forward.abs()));
    }
}

#[test]
fn dense_conv2d_with_long_rows_matches_direct_loops_and_its_adjoints() {
    // Stride 1, no padding, no dilation and output rows of 11 and 12 (over the 8-element
    // pieces the unfold copies in): LeNet's kind of layer, which has its own unfold.
    let mut gen = Generator::new(7);
    let x: Tensor<f64> = gen.randn(&[3, 2, 14, 15]);
    let w: Tensor<f64> = gen.randn(&[4, 2, 3, 5]);
    let bias: Tensor<f64> = gen.randn(&[4]);
    let params = Conv2dParams::default();

    let out = conv2d(&x, &w, Some(&bias), &params).expect("valid");
    let g: Tensor<f64> = gen.randn(out.shape());
    let grad_x = conv2d_backward_input(&g, &w, x.shape(), &params).expect("valid");
    let grad_w = conv2d_backward_weight(&g, &x, w.shape(), &params).expect("valid");

    assert_eq!(out.shape(), &[3, 4, 12, 11]);
    assert_close(
        &out.to_vec(),
        &direct_conv2d(&x, &w, Some(&bias), &params),
        1e-12,
    );
    let forward = dot(&conv2d(&x, &w, None, &params).expect("valid"), &g);
    assert!((dot(&x, &grad_x) - forward).abs() <= 1e-10 * (1.0 + forward.abs()));
    assert!((dot(&w, &grad_w) - forward).abs() <= 1e-10 * (1.0 + forward.abs()));
}

fn fd_case() -> Vec<(Vec<usize>, Vec<usize>, Conv2dParams)> {
    vec![
        (vec![2, 2, 5, 4], vec![3, 2, 3, 2], Conv2dParams::default()),
        (
            vec![2, 4, 6, 7],
            vec![4, 2, 2, 3],
            Conv2dParams {
                stride: [2, 1],
                padding: [1, 2],
                dilation: [1, 2],
                groups: 2,
            },
        ),
        (
            vec![1, 3, 7, 7],
            vec![3, 1, 3, 3],
            Conv2dParams {
                stride: [3, 2],
                padding: [2, 1],
                dilation: [2, 1],
                groups: 3,
            },
        ),
        (vec![2, 4, 3, 3], vec![2, 4, 1, 1], Conv2dParams::default()),
    ]
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    for (seed, (input, weight, params)) in fd_case().into_iter().enumerate() {
        let mut gen = Generator::new(seed as u64);
        let x: Tensor<f64> = gen.randn(&input);
        let w: Tensor<f64> = gen.randn(&weight);
        let g: Tensor<f64> = gen.randn(conv2d(&x, &w, None, &params).expect("valid").shape());
        let loss = |x: &Tensor<f64>, w: &Tensor<f64>| {
            dot(&conv2d(x, w, None, &params).expect("valid"), &g)
        };

        let grad_x = conv2d_backward_input(&g, &w, &input, &params).expect("valid");
        let grad_w = conv2d_backward_weight(&g, &x, &weight, &params).expect("valid");

        assert_close(
            &grad_x.to_vec(),
            &finite_differences(&x, |x| loss(x, &w)),
            1e-6,
        );
        assert_close(
            &grad_w.to_vec(),
            &finite_differences(&w, |w| loss(&x, w)),
            1e-6,
        );
    }
}

#[test]
fn conv1d_gradients_match_finite_differences() {
    let mut gen = Generator::new(11);
    let x: Tensor<f64> = gen.randn(&[2, 4, 9]);
    let w: Tensor<f64> = gen.randn(&[6, 2, 3]);
    let params = Conv1dParams {
        stride: 2,
        padding: 2,
        dilation: 2,
        groups: 2,
    };
    let g: Tensor<f64> = gen.randn(conv1d(&x, &w, None, &params).expect("valid").shape());
    let loss =
        |x: &Tensor<f64>, w: &Tensor<f64>| dot(&conv1d(x, w, None, &params).expect("valid"), &g);

    let grad_x = conv1d_backward_input(&g, &w, x.shape(), &params).expect("valid");
    let grad_w = conv1d_backward_weight(&g, &x, w.shape(), &params).expect("valid");

    assert_eq!(g.shape(), &[2, 6, 5]);
    assert_close(
        &grad_x.to_vec(),
        &finite_differences(&x, |x| loss(x, &w)),
        1e-6,
    );
    assert_close(
        &grad_w.to_vec(),
        &finite_differences(&w, |w| loss(&x, w)),
        1e-6,
    );
}

#[test]
fn conv1d_equals_conv2d_over_a_height_one_image() {
    let mut gen = Generator::new(3);
    let x: Tensor<f64> = gen.randn(&[2, 3, 10]);
    let w: Tensor<f64> = gen.randn(&[4, 3, 4]);
    let bias: Tensor<f64> = gen.randn(&[4]);
    let params = Conv1dParams {
        stride: 3,
        padding: 1,
        dilation: 2,
        groups: 1,
    };

    let out = conv1d(&x, &w, Some(&bias), &params).expect("valid");

    let x2 = Tensor::from_contiguous(x.to_vec(), vec![2, 3, 1, 10]);
    let w2 = Tensor::from_contiguous(w.to_vec(), vec![4, 3, 1, 4]);
    let expected = direct_conv2d(&x2, &w2, Some(&bias), &params.to_2d());
    assert_eq!(out.shape(), &[2, 4, 2]);
    assert_close(&out.to_vec(), &expected, 1e-12);
}

#[test]
fn pointwise_conv2d_matches_direct_loops() {
    let mut gen = Generator::new(5);
    let x: Tensor<f64> = gen.randn(&[3, 6, 4, 5]);
    let w: Tensor<f64> = gen.randn(&[4, 3, 1, 1]);
    let bias: Tensor<f64> = gen.randn(&[4]);
    let params = Conv2dParams {
        groups: 2,
        ..Default::default()
    };

    let out = conv2d(&x, &w, Some(&bias), &params).expect("valid");

    assert_close(
        &out.to_vec(),
        &direct_conv2d(&x, &w, Some(&bias), &params),
        1e-12,
    );
}

#[test]
fn unbatched_input_gives_the_batch_of_one_result_without_its_batch_dim() {
    let mut gen = Generator::new(8);
    let x: Tensor<f64> = gen.randn(&[2, 5, 5]);
    let w: Tensor<f64> = gen.randn(&[3, 2, 2, 2]);
    let params = Conv2dParams {
        padding: [1, 0],
        ..Default::default()
    };
    let g: Tensor<f64> = gen.randn(&[3, 6, 4]);

    let out = conv2d(&x, &w, None, &params).expect("valid");
    let grad_x = conv2d_backward_input(&g, &w, &[2, 5, 5], &params).expect("valid");
    let grad_w = conv2d_backward_weight(&g, &x, w.shape(), &params).expect("valid");

    let x4 = Tensor::from_contiguous(x.to_vec(), vec![1, 2, 5, 5]);
    let g4 = Tensor::from_contiguous(g.to_vec(), vec![1, 3, 6, 4]);
    let grad_x4 = conv2d_backward_input(&g4, &w, &[1, 2, 5, 5], &params).expect("valid");
    let grad_w4 = conv2d_backward_weight(&g4, &x4, w.shape(), &params).expect("valid");
    assert_eq!(out.shape(), &[3, 6, 4]);
    assert_eq!(
        out.to_vec(),
        conv2d(&x4, &w, None, &params).expect("valid").to_vec()
    );
    assert_eq!(grad_x.shape(), &[2, 5, 5]);
    assert_eq!(grad_x.to_vec(), grad_x4.to_vec());
    assert_eq!(grad_w.to_vec(), grad_w4.to_vec());
}

#[test]
fn non_contiguous_operands_give_the_contiguous_result() {
    let mut gen = Generator::new(9);
    let x: Tensor<f64> = gen.randn(&[2, 3, 4, 5]);
    let w: Tensor<f64> = gen.randn(&[2, 3, 3, 3]);
    // The same values laid out channels-last and viewed back as (N, C, H, W).
    let mut nhwc = vec![0.0; x.numel()];
    for (k, v) in x.to_vec().into_iter().enumerate() {
        let (n, c, y, xx) = (k / 60, k / 20 % 3, k / 5 % 4, k % 5);
        nhwc[((n * 4 + y) * 5 + xx) * 3 + c] = v;
    }
    let storage = Tensor::from_contiguous(nhwc, vec![2, 4, 5, 3]);
    let view = storage.restride(vec![2, 3, 4, 5], vec![60, 1, 15, 3], 0);

    let out = conv2d(&view, &w, None, &Conv2dParams::default()).expect("valid");

    assert!(!view.is_contiguous());
    let expected = conv2d(&x, &w, None, &Conv2dParams::default()).expect("valid");
    assert_eq!(out.to_vec(), expected.to_vec());
}

#[test]
fn results_have_the_same_bits_on_one_and_two_threads() {
    let mut gen = Generator::new(21);
    let x: Tensor<f32> = gen.randn(&[9, 8, 12, 12]);
    let w: Tensor<f32> = gen.randn(&[8, 4, 3, 3]);
    let params = Conv2dParams {
        padding: [1, 1],
        groups: 2,
        ..Default::default()
    };
    let g: Tensor<f32> = gen.randn(&[9, 8, 12, 12]);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            let out = conv2d(&x, &w, None, &params).expect("valid");
            let grad_x = conv2d_backward_input(&g, &w, x.shape(), &params).expect("valid");
            let grad_w = conv2d_backward_weight(&g, &x, w.shape(), &params).expect("valid");
            [out, grad_x, grad_w].map(|t| t.to_vec().iter().map(|v| v.to_bits()).collect())
        })
    };

    let one: [Vec<u32>; 3] = run(1);
    let two: [Vec<u32>; 3] = run(2);

    let geo = Geometry::new("test", 2, x.shape(), w.shape(), &params).expect("valid");
    assert!(
        geo.batch * geo.sample_work() >= PAR_WORK,
        "the case must take the parallel path"
    );
    assert_eq!(one, two);
}

#[test]
fn invalid_shapes_and_params_are_errors() {
    let x = Tensor::<f32>::zeros(&[1, 4, 5, 5]);
    let w = Tensor::<f32>::zeros(&[6, 2, 3, 3]);
    let grouped = Conv2dParams {
        groups: 2,
        ..Default::default()
    };
    let cases: Vec<(Result<Tensor<f32>>, &str)> = vec![
        (
            conv2d(&Tensor::zeros(&[4, 5]), &w, None, &grouped),
            "conv2d: expected input of rank 3 (unbatched) or 4, got shape [4, 5]",
        ),
        (
            conv2d(&x, &w, None, &Conv2dParams::default()),
            "conv2d: input has 4 channels, weight with groups 1 expects 2 \
             (lhs [1, 4, 5, 5], rhs [6, 2, 3, 3])",
        ),
        (
            conv2d(&x, &Tensor::zeros(&[5, 2, 3, 3]), None, &grouped),
            "conv2d: 5 output channels not divisible by groups 2",
        ),
        (
            conv2d(
                &x,
                &Tensor::zeros(&[6, 2, 4, 3]),
                None,
                &Conv2dParams {
                    dilation: [2, 1],
                    ..grouped
                },
            ),
            "conv2d: kernel spanning 7 (dilation included) exceeds padded input size 5",
        ),
        (
            conv2d(
                &x,
                &w,
                None,
                &Conv2dParams {
                    stride: [1, 0],
                    ..grouped
                },
            ),
            "conv2d: stride [1, 0], dilation [1, 1] and groups 2 must be positive",
        ),
        (
            conv2d(&x, &w, Some(&Tensor::zeros(&[3])), &grouped),
            "conv2d: expected bias of shape [6], got shape [3]",
        ),
        (
            conv2d_backward_input(&Tensor::zeros(&[1, 6, 3, 2]), &w, &[1, 4, 5, 5], &grouped),
            "conv2d_backward_input: grad_out differs from the convolution's output shape \
             (lhs [1, 6, 3, 2], rhs [1, 6, 3, 3])",
        ),
        (
            conv1d(
                &Tensor::zeros(&[1, 2, 0]),
                &Tensor::zeros(&[1, 2, 1]),
                None,
                &Default::default(),
            ),
            "conv1d: expected non-empty channel, spatial and kernel dims, got shape [1, 2, 0]",
        ),
    ];

    for (result, message) in cases {
        assert_eq!(result.expect_err(message).to_string(), message);
    }
}

#[test]
fn empty_batch_gives_empty_results() {
    let x = Tensor::<f32>::zeros(&[0, 2, 4, 4]);
    let w = Tensor::<f32>::ones(&[3, 2, 3, 3]);
    let g = Tensor::<f32>::zeros(&[0, 3, 2, 2]);

    let out = conv2d(&x, &w, None, &Conv2dParams::default()).expect("valid");
    let grad_w = conv2d_backward_weight(&g, &x, w.shape(), &Conv2dParams::default());

    assert_eq!(out.shape(), &[0, 3, 2, 2]);
    assert_eq!(grad_w.expect("valid").to_vec(), vec![0.0; 54]);
}
