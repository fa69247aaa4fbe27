//! Property tests: a learning rate of zero leaves every optimizer's parameters unchanged,
//! and gradient clipping never increases the total norm and leaves it at most `max_norm`.

use proptest::prelude::*;
use strata_autograd::Var;
use strata_optim::{
    clip_grad_norm, Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Optimizer,
    RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use strata_tensor::Tensor;

/// A parameter and its gradient: a small shape with bounded values.
fn param_and_grad() -> impl Strategy<Value = (Vec<usize>, Vec<f32>, Vec<f32>)> {
    prop::collection::vec(1usize..4, 1..3).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        let values = prop::collection::vec(-10.0f32..10.0, n);
        let grads = prop::collection::vec(-10.0f32..10.0, n);
        (Just(shape), values, grads)
    })
}

fn make_params(specs: &[(Vec<usize>, Vec<f32>, Vec<f32>)]) -> Vec<Var<f32>> {
    specs
        .iter()
        .map(|(shape, values, _)| Var::parameter(Tensor::from_vec(values.clone(), shape).unwrap()))
        .collect()
}

fn set_grads(params: &[Var<f32>], specs: &[(Vec<usize>, Vec<f32>, Vec<f32>)], scale: f32) {
    for (p, (shape, _, grads)) in params.iter().zip(specs) {
        let g: Vec<f32> = grads.iter().map(|x| x * scale).collect();
        p.set_grad(Some(Tensor::from_vec(g, shape).unwrap()));
    }
}

fn bits(params: &[Var<f32>]) -> Vec<u32> {
    params
        .iter()
        .flat_map(|p| p.value().to_vec())
        .map(f32::to_bits)
        .collect()
}

/// Every optimizer with `lr = 0` and the other hyperparameters drawn from `h`.
fn optimizers(params: &[Var<f32>], h: &Hyper) -> Vec<Box<dyn Optimizer<f32>>> {
    let p = params.to_vec();
    let sgd = SgdConfig {
        lr: 0.0,
        momentum: h.momentum,
        dampening: if h.flag { 0.0 } else { h.unit },
        weight_decay: h.weight_decay,
        nesterov: h.flag,
        maximize: !h.flag,
    };
    let adam = AdamConfig {
        lr: 0.0,
        betas: (h.unit, 0.999),
        weight_decay: h.weight_decay,
        amsgrad: h.flag,
        ..Default::default()
    };
    let adamw = AdamWConfig {
        lr: 0.0,
        betas: (h.unit, 0.9),
        weight_decay: h.weight_decay,
        amsgrad: !h.flag,
        maximize: h.flag,
        ..Default::default()
    };
    let rmsprop = RmsPropConfig {
        lr: 0.0,
        alpha: h.unit,
        momentum: h.momentum,
        weight_decay: h.weight_decay,
        centered: h.flag,
        ..Default::default()
    };
    let adagrad = AdagradConfig {
        lr: 0.0,
        lr_decay: h.unit,
        weight_decay: h.weight_decay,
        initial_accumulator_value: h.momentum,
        ..Default::default()
    };
    vec![
        Box::new(Sgd::new(p.clone(), sgd).unwrap()),
        Box::new(Adam::new(p.clone(), adam).unwrap()),
        Box::new(AdamW::new(p.clone(), adamw).unwrap()),
        Box::new(RmsProp::new(p.clone(), rmsprop).unwrap()),
        Box::new(Adagrad::new(p, adagrad).unwrap()),
    ]
}

#[derive(Debug, Clone)]
struct Hyper {
    momentum: f64,
    unit: f64,
    weight_decay: f64,
    flag: bool,
}

fn hyper() -> impl Strategy<Value = Hyper> {
    (0.1f64..0.99, 0.0f64..0.99, 0.0f64..0.5, any::<bool>()).prop_map(
        |(momentum, unit, weight_decay, flag)| Hyper {
            momentum,
            unit,
            weight_decay,
            flag,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn zero_learning_rate_leaves_parameters_unchanged(
        specs in prop::collection::vec(param_and_grad(), 1..3),
        h in hyper(),
    ) {
        let params = make_params(&specs);
        let before = bits(&params);

        for mut opt in optimizers(&params, &h) {
            for step in 0..3 {
                set_grads(&params, &specs, 1.0 + step as f32);
                opt.step().unwrap();
            }
            prop_assert_eq!(bits(&params), before.clone());
        }
    }

    #[test]
    fn clipping_never_increases_the_norm_and_respects_max_norm(
        specs in prop::collection::vec(param_and_grad(), 1..4),
        max_norm in 0.01f64..50.0,
        inf in any::<bool>(),
    ) {
        let norm_type = if inf { f64::INFINITY } else { 2.0 };
        let params = make_params(&specs);
        set_grads(&params, &specs, 1.0);

        let before = f64::from(clip_grad_norm(&params, max_norm, norm_type).unwrap());
        let after = f64::from(clip_grad_norm(&params, f64::INFINITY, norm_type).unwrap());

        prop_assert!(after <= before * (1.0 + 1e-6), "after {} before {}", after, before);
        prop_assert!(after <= max_norm * (1.0 + 1e-5), "after {} max_norm {}", after, max_norm);
    }
}
