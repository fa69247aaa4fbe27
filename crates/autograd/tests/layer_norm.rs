//! The fused layer norm against finite differences (first and second order) and against the
//! same formula written with separate ops, on drawn shapes, with and without the affine
//! parameters, and on a transposed (non-contiguous) input.

use proptest::prelude::*;
use strata_autograd::{gradcheck, gradgradcheck, GradcheckOptions, Var};
use strata_tensor::{Generator, Tensor};

/// The layer norm written with separate differentiable ops.
fn composite(x: &Var<f64>, dims: &[isize], w: Option<&Var<f64>>, b: Option<&Var<f64>>) -> Var<f64> {
    let centered = x.sub(&x.mean_keepdim(dims).unwrap()).unwrap();
    let var = centered.square().mean_keepdim(dims).unwrap();
    let mut y = centered.mul(&var.add_scalar(1e-5).rsqrt()).unwrap();
    if let Some(w) = w {
        y = y.mul(w).unwrap();
    }
    if let Some(b) = b {
        y = y.add(b).unwrap();
    }
    y
}

fn case() -> impl Strategy<Value = (Vec<usize>, usize, bool, bool, bool, u64)> {
    (
        prop::collection::vec(1usize..4, 1..3),
        1usize..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter("rows of at least two elements", |(shape, k, ..)| {
            shape.len() >= *k && shape[shape.len() - k..].iter().product::<usize>() >= 2
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn layer_norm_gradients((shape, k, affine, bias, transposed, seed) in case()) {
        let mut gen = Generator::new(seed);
        let normalized: Vec<usize> = shape[shape.len() - k..].to_vec();
        // A transposed input: draw the reversed shape and transpose it back to `shape`.
        let x = if transposed {
            let mut rev = shape.clone();
            rev.reverse();
            let perm: Vec<isize> = (0..shape.len() as isize).rev().collect();
            gen.randn::<f64>(&rev).permute(&perm).unwrap()
        } else {
            gen.randn::<f64>(&shape)
        };
        let mut inputs = vec![x];
        if affine {
            inputs.push(gen.randn(&normalized));
        }
        if bias {
            inputs.push(gen.randn(&normalized));
        }
        let f = |v: &[Var<f64>]| {
            let w = affine.then(|| &v[1]);
            let b = bias.then(|| &v[if affine { 2 } else { 1 }]);
            v[0].layer_norm(&normalized, w, b, 1e-5)
        };
        let opts = GradcheckOptions { atol: 1e-5, rtol: 1e-4, ..Default::default() };

        gradcheck(f, &inputs, opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        gradgradcheck(f, &inputs, opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

#[test]
fn fused_matches_composite_values_and_gradients() {
    let mut gen = Generator::new(11);
    let x = Var::parameter(gen.randn::<f64>(&[3, 4, 6]));
    let w = Var::parameter(gen.randn::<f64>(&[6]));
    let b = Var::parameter(gen.randn::<f64>(&[6]));
    let up = gen.randn::<f64>(&[3, 4, 6]);

    let fused = x.layer_norm(&[6], Some(&w), Some(&b), 1e-5).unwrap();
    fused.backward_with(&up, Default::default()).unwrap();
    let fused_grads: Vec<Tensor<f64>> = [&x, &w, &b].iter().map(|v| v.grad().unwrap()).collect();
    for v in [&x, &w, &b] {
        v.zero_grad();
    }
    let reference = composite(&x, &[-1], Some(&w), Some(&b));
    reference.backward_with(&up, Default::default()).unwrap();

    for (a, e) in fused
        .value()
        .to_vec()
        .iter()
        .zip(reference.value().to_vec())
    {
        assert!((a - e).abs() < 1e-12, "{a} vs {e}");
    }
    for (g, v) in fused_grads.iter().zip([&x, &w, &b]) {
        for (a, e) in g.to_vec().iter().zip(v.grad().unwrap().to_vec()) {
            assert!((a - e).abs() < 1e-10, "{a} vs {e}");
        }
    }
}
