//! Behaviour of the engine: accumulation, graph lifetime, modes, higher-order gradients, and
//! faults other frameworks have had.

use strata_autograd::{
    detect_anomaly, grad, gradcheck, no_grad, AutogradError, BackwardOptions, GradcheckOptions, Var,
};
use strata_tensor::Tensor;

fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), shape).unwrap()
}

#[test]
fn variable_used_twice_gets_the_sum_of_both_paths() {
    // y = x * x + x: a framework that overwrote instead of adding would report 2x or 1.
    let x = Var::parameter(t(&[3.0], &[1]));

    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all();
    y.backward().unwrap();

    assert_eq!(x.grad().unwrap().to_vec(), vec![7.0]);
}

#[test]
fn broadcast_add_gradient_is_summed_over_the_broadcast_axis() {
    // a: [2, 3], b: [3] broadcast over rows. db must sum over dim 0 (length 3), not dim 1.
    let a = Var::parameter(t(&[1., 2., 3., 4., 5., 6.], &[2, 3]));
    let b = Var::parameter(t(&[10., 20., 30.], &[3]));
    let w = Var::new(t(&[1., 2., 3., 4., 5., 6.], &[2, 3]));

    let y = a.add(&b).unwrap().mul(&w).unwrap().sum_all();
    y.backward().unwrap();

    assert_eq!(b.grad().unwrap().to_vec(), vec![5.0, 7.0, 9.0]);
    assert_eq!(a.grad().unwrap().to_vec(), vec![1., 2., 3., 4., 5., 6.]);
}

#[test]
fn broadcast_size_one_dim_gradient_keeps_the_dim() {
    // b: [2, 1] broadcast along dim 1 of [2, 3]: db has shape [2, 1] with row sums.
    let a = Var::new(t(&[1., 2., 3., 4., 5., 6.], &[2, 3]));
    let b = Var::parameter(t(&[1., 1.], &[2, 1]));

    a.mul(&b).unwrap().sum_all().backward().unwrap();

    let g = b.grad().unwrap();
    assert_eq!(g.shape(), &[2, 1]);
    assert_eq!(g.to_vec(), vec![6.0, 15.0]);
}

#[test]
fn gradient_flows_through_a_transposed_view() {
    let x = Var::parameter(t(&[1., 2., 3., 4., 5., 6.], &[2, 3]));
    let w = Var::new(t(&[1., 10., 100., 1000., 1e4, 1e5], &[3, 2]));

    x.transpose(0, 1)
        .unwrap()
        .mul(&w)
        .unwrap()
        .sum_all()
        .backward()
        .unwrap();

    // d/dx[i][j] = w[j][i]
    assert_eq!(
        x.grad().unwrap().to_vec(),
        vec![1., 100., 1e4, 10., 1000., 1e5]
    );
}

#[test]
fn softmax_of_partly_masked_row_has_finite_gradient_and_zero_at_masked_positions() {
    // masked_fill with -inf before softmax: the masked entries have probability 0 and must get
    // gradient 0, not NaN from 0 * inf.
    let x = Var::parameter(t(&[0.5, -1.0, 2.0, 0.1], &[1, 4]));
    let mask = t(&[0., 1., 0., 1.], &[1, 4]);
    let w = Var::new(t(&[1., 2., 3., 4.], &[1, 4]));

    let p = x
        .masked_fill(&mask, f64::NEG_INFINITY)
        .unwrap()
        .softmax(-1)
        .unwrap();
    p.mul(&w).unwrap().sum_all().backward().unwrap();

    let g = x.grad().unwrap().to_vec();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    assert_eq!(g[1], 0.0);
    assert_eq!(g[3], 0.0);
}

#[test]
fn leaves_accumulate_until_zero_grad() {
    let x = Var::parameter(t(&[1.0, 2.0], &[2]));

    x.mul_scalar(3.0).sum_all().backward().unwrap();
    x.mul_scalar(3.0).sum_all().backward().unwrap();
    let twice = x.grad().unwrap().to_vec();
    x.zero_grad();

    assert_eq!(twice, vec![6.0, 6.0]);
    assert!(x.grad().is_none());
}

#[test]
fn second_backward_through_a_freed_graph_is_an_error() {
    let x = Var::parameter(t(&[1.0], &[1]));
    let y = x.exp().sum_all();

    y.backward().unwrap();
    let err = y.backward().unwrap_err();

    assert!(matches!(err, AutogradError::GraphFreed { .. }), "{err}");
}

#[test]
fn retain_graph_allows_a_second_backward() {
    let x = Var::parameter(t(&[1.0], &[1]));
    let y = x.exp().sum_all();
    let keep = BackwardOptions {
        retain_graph: true,
        ..Default::default()
    };

    y.backward_with(&Tensor::scalar(1.0), keep).unwrap();
    y.backward().unwrap();

    assert!((x.grad().unwrap().to_vec()[0] - 2.0 * 1f64.exp()).abs() < 1e-12);
}

#[test]
fn no_grad_records_nothing_and_detach_cuts_the_graph() {
    let x = Var::parameter(t(&[1.0, 2.0], &[2]));

    let y = {
        let _guard = no_grad();
        x.exp()
    };
    let z = x.exp().detach();

    assert!(!y.requires_grad());
    assert!(!z.requires_grad());
    assert!(x.exp().requires_grad());
}

#[test]
fn anomaly_mode_names_the_forward_op() {
    let _anomaly = detect_anomaly();
    let x = Var::parameter(t(&[-1.0, 1.0], &[2]));

    let y = x.ln().sum_all();
    let err = y.backward().unwrap_err();

    assert_eq!(
        err,
        AutogradError::Anomaly {
            op: "ln",
            phase: "forward"
        }
    );
}

#[test]
fn anomaly_mode_names_the_backward_op() {
    // sqrt at 0 is finite forward, infinite backward.
    let _anomaly = detect_anomaly();
    let x = Var::parameter(t(&[0.0, 1.0], &[2]));

    let err = x.sqrt().sum_all().backward().unwrap_err();

    assert_eq!(
        err,
        AutogradError::Anomaly {
            op: "sqrt",
            phase: "backward"
        }
    );
}

#[test]
fn second_derivative_of_tanh() {
    let x = Var::parameter(t(&[-0.7, 0.2, 1.3], &[3]));
    let opts = BackwardOptions {
        create_graph: true,
        ..Default::default()
    };

    let dy = grad(&[x.tanh().sum_all()], std::slice::from_ref(&x), None, opts)
        .unwrap()
        .remove(0);
    let d2y = grad(
        &[dy.sum_all()],
        std::slice::from_ref(&x),
        None,
        BackwardOptions::default(),
    )
    .unwrap();

    for (v, g) in x.value().to_vec().iter().zip(d2y[0].value().to_vec()) {
        let th = v.tanh();
        assert!((g - (-2.0 * th * (1.0 - th * th))).abs() < 1e-12);
    }
}

#[test]
fn hessian_vector_product_of_a_quadratic_form() {
    // f(x) = 1/2 x^T A x with symmetric A: the Hessian is A, so Hv = A v.
    let a = Var::new(t(&[2., 1., 0., 1., 3., 1., 0., 1., 4.], &[3, 3]));
    let x = Var::parameter(t(&[0.3, -0.2, 0.5], &[3]));
    let v = Var::new(t(&[1.0, 2.0, -1.0], &[3]));
    let opts = BackwardOptions {
        create_graph: true,
        ..Default::default()
    };

    let f = x.matmul(&a).unwrap().matmul(&x).unwrap().mul_scalar(0.5);
    let g = grad(&[f], std::slice::from_ref(&x), None, opts)
        .unwrap()
        .remove(0);
    let hv = grad(
        &[g.mul(&v).unwrap().sum_all()],
        &[x],
        None,
        Default::default(),
    )
    .unwrap();

    assert_eq!(hv[0].value().to_vec(), vec![4.0, 6.0, -2.0]);
}

#[test]
fn gradient_penalty_gradient_matches_finite_differences() {
    // WGAN-GP: penalty = mean((|d critic / d x| - 1)^2). Its gradient with respect to the critic
    // weights goes through the input gradient, so it needs create_graph to be right.
    let w = t(&[0.5, -1.5, 2.0], &[3, 1]);
    let x = t(&[0.1, 0.2, 0.3, -0.4, 0.5, 0.6], &[2, 3]);
    let penalty = |v: &[Var<f64>]| {
        let opts = BackwardOptions {
            create_graph: true,
            ..Default::default()
        };
        let critic = v[1].matmul(&v[0])?.tanh().sum_all();
        let gx = grad(&[critic], &[v[1].clone()], None, opts)?.remove(0);
        let norms = gx.square().sum(&[1])?.sqrt();
        Ok(norms.add_scalar(-1.0).square().mean_all())
    };

    let result = gradcheck(penalty, &[w, x], GradcheckOptions::default());

    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn var_is_send_and_sync() {
    fn assert_send_sync<S: Send + Sync>() {}
    assert_send_sync::<Var<f32>>();
    assert_send_sync::<Var<f64>>();
}

#[test]
fn embedding_padding_row_gets_no_gradient() {
    // PyTorch's padding_idx: the row is looked up as usual but never trained.
    let table = Var::parameter(t(&[1., 2., 3., 4., 5., 6.], &[3, 2]));
    let indices = strata_tensor::IndexTensor::from_slice(&[0, 2, 0, 1]);

    let rows = table.embedding(&indices, Some(0)).unwrap();
    rows.sum_all().backward().unwrap();

    assert_eq!(rows.value().to_vec(), vec![1., 2., 5., 6., 1., 2., 3., 4.]);
    assert_eq!(table.grad().unwrap().to_vec(), vec![0., 0., 1., 1., 1., 1.]);
}

#[test]
fn worked_example_of_the_autograd_guide() {
    // docs/autograd.md: y = tanh(w x), w = 0.5, x = 2.
    let w = Var::parameter(t(&[0.5], &[1]));
    let x = Var::new(t(&[2.0], &[1]));
    let y = w.mul(&x).unwrap().tanh().sum_all();
    let keep = BackwardOptions {
        create_graph: true,
        ..Default::default()
    };

    let dy = grad(&[y], std::slice::from_ref(&w), None, keep)
        .unwrap()
        .remove(0);
    let d2y = grad(&[dy.sum_all()], &[w], None, Default::default())
        .unwrap()
        .remove(0);

    let th = 1f64.tanh();
    assert!((dy.value().item().unwrap() - 2.0 * (1.0 - th * th)).abs() < 1e-12);
    assert!((d2y.value().item().unwrap() - (-8.0 * th * (1.0 - th * th))).abs() < 1e-12);
    assert!((d2y.value().item().unwrap() + 2.5588).abs() < 1e-4);
}
