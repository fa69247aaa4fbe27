//! Property tests of the public `scaled_dot_product_attention`: finite-difference gradient
//! checks in f64 through both kernels on drawn shapes, masks of every kind, `is_causal`, a
//! scale override and seeded dropout; and agreement of the automatic choice with the math
//! kernel at a length where it picks the tiled one.

use proptest::prelude::*;
use strata_attention::{
    scaled_dot_product_attention, AttentionError, AttnMask, SdpaKernel, SdpaOptions, TILED_MIN_SEQ,
};
use strata_autograd::{gradcheck, AutogradError, BackwardOptions, GradcheckOptions, Var};
use strata_tensor::{Generator, Tensor};

#[derive(Debug, Clone)]
struct Case {
    lead: Vec<usize>,
    seq_q: usize,
    seq_k: usize,
    dim: usize,
    value_dim: usize,
    causal: bool,
    /// 0 none, 1 attend `(seq_q, seq_k)`, 2 ignore `(seq_k)`, 3 additive with `-inf`.
    mask_kind: u8,
    scale: Option<f64>,
    dropout_p: f64,
    seed: u64,
}

impl Case {
    fn shape(&self, seq: usize, width: usize) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.extend([seq, width]);
        s
    }

    fn mask(&self, gen: &mut Generator) -> Option<AttnMask<f64>> {
        let (lq, lk) = (self.seq_q, self.seq_k);
        match self.mask_kind {
            1 => Some(AttnMask::Attend(gen.bernoulli(&[lq, lk], 0.7))),
            2 => Some(AttnMask::Ignore(gen.bernoulli(&[lk], 0.3))),
            3 => {
                let noise: Tensor<f64> = gen.randn(&[1, lq, lk]);
                let cut: Tensor<f64> = gen.bernoulli(&[1, lq, lk], 0.25);
                let inf = Tensor::scalar(f64::NEG_INFINITY);
                Some(AttnMask::Additive(
                    Tensor::where_cond(&cut, &inf, &noise).unwrap(),
                ))
            }
            _ => None,
        }
    }
}

fn autograd(e: AttentionError) -> AutogradError {
    match e {
        AttentionError::Autograd(a) => a,
        other => panic!("not an autograd error: {other}"),
    }
}

fn cases() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(1usize..3, 1..3),
        (1usize..6, 1usize..7, 1usize..4, 1usize..4),
        (any::<bool>(), 0u8..4, prop::option::of(0.2f64..1.5)),
        (prop_oneof![Just(0.0), Just(0.3)], any::<u64>()),
    )
        .prop_map(
            |(lead, (lq, lk, d, dv), (causal, mask_kind, scale), (p, seed))| Case {
                lead,
                seq_q: lq,
                seq_k: lk,
                dim: d,
                value_dim: dv,
                causal,
                mask_kind,
                scale,
                dropout_p: p,
                seed,
            },
        )
}

fn check(c: &Case, kernel: SdpaKernel) -> Result<(), String> {
    let mut gen = Generator::new(c.seed);
    let mask = c.mask(&mut gen);
    let inputs = [
        gen.randn(&c.shape(c.seq_q, c.dim)),
        gen.randn(&c.shape(c.seq_k, c.dim)),
        gen.randn(&c.shape(c.seq_k, c.value_dim)),
    ];
    let f = |x: &[Var<f64>]| {
        // A fresh generator per call: every probe sees the same dropout mask.
        let mut dropout_gen = Generator::new(c.seed ^ 1);
        let opts = SdpaOptions {
            is_causal: c.causal,
            dropout_p: c.dropout_p,
            scale: c.scale,
            generator: Some(&mut dropout_gen),
            kernel,
        };
        scaled_dot_product_attention(&x[0], &x[1], &x[2], mask.as_ref(), opts).map_err(autograd)
    };
    gradcheck(f, &inputs, GradcheckOptions::default()).map_err(|e| format!("{kernel:?}: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn gradients_match_finite_differences(c in cases()) {
        for kernel in [SdpaKernel::Math, SdpaKernel::Tiled] {
            let r = check(&c, kernel);
            prop_assert!(r.is_ok(), "{:?}: {:?}", c, r);
        }
    }
}

#[test]
fn auto_picks_the_tiled_kernel_from_the_threshold_and_agrees_with_math() {
    let mut gen = Generator::new(8);
    let seq = TILED_MIN_SEQ + 17;
    let shape = [2, 2, seq, 8];
    let (q, k, v): (Tensor<f32>, Tensor<f32>, Tensor<f32>) =
        (gen.randn(&shape), gen.randn(&shape), gen.randn(&shape));
    let mask = AttnMask::Ignore(gen.bernoulli::<f32>(&[2, 1, 1, seq], 0.2));
    let g: Tensor<f32> = gen.randn(&shape);
    let run = |kernel| {
        let (q, k, v) = (
            Var::parameter(q.clone()),
            Var::parameter(k.clone()),
            Var::parameter(v.clone()),
        );
        let opts = SdpaOptions {
            is_causal: true,
            kernel,
            ..Default::default()
        };
        let y = scaled_dot_product_attention(&q, &k, &v, Some(&mask), opts).unwrap();
        let op = y.op_name();
        y.backward_with(&g, BackwardOptions::default()).unwrap();
        let vals = [
            y.value(),
            q.grad().unwrap(),
            k.grad().unwrap(),
            v.grad().unwrap(),
        ];
        (op, vals.map(|t| t.to_vec()))
    };

    let (auto_op, auto) = run(SdpaKernel::Auto);
    let (math_op, math) = run(SdpaKernel::Math);

    assert_eq!(auto_op, "scaled_dot_product_attention_tiled");
    assert_ne!(math_op, auto_op);
    for (a, m) in auto.iter().zip(&math) {
        for (x, y) in a.iter().zip(m) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "auto {x} math {y}");
        }
    }
}
