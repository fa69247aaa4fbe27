//! Finite-difference gradient checks (f64) of the losses that combine several ops with
//! per-row factors: cross entropy with label smoothing, class weights and an ignored index,
//! binary cross entropy with logits and pos_weight, and the piecewise Huber loss.

use strata_autograd::{gradcheck, GradcheckOptions};
use strata_nn_layers::{
    binary_cross_entropy_with_logits, cross_entropy_probs, cross_entropy_with, huber_loss, kl_div,
    BceWithLogitsConfig, CrossEntropyConfig, KlDivConfig, KlDivReduction, Reduction,
};
use strata_tensor::{Generator, IndexTensor, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor<f64> {
    Generator::new(seed).randn(shape)
}

#[test]
fn cross_entropy_with_smoothing_weights_and_ignore_index() {
    let targets = IndexTensor::from_vec(vec![0, 3, 9, 1, 2, 3], &[2, 3]).unwrap();
    let weight = Tensor::from_vec(vec![0.5, 1.0, 2.0, 1.5], &[4]).unwrap();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let config = CrossEntropyConfig {
            weight: Some(weight.clone()),
            ignore_index: Some(9),
            reduction,
            label_smoothing: 0.2,
        };

        let result = gradcheck(
            |v| cross_entropy_with(&v[0], &targets, &config).map_err(autograd),
            &[randn(&[2, 4, 3], 1)],
            GradcheckOptions::default(),
        );

        result.unwrap_or_else(|e| panic!("{reduction:?}: {e}"));
    }
}

#[test]
fn cross_entropy_with_probability_targets_in_both_arguments() {
    let config = CrossEntropyConfig {
        weight: Some(Tensor::from_vec(vec![0.5, 1.0, 2.0], &[3]).unwrap()),
        label_smoothing: 0.1,
        ..CrossEntropyConfig::default()
    };
    let probs = randn(&[4, 3], 3).softmax(1).unwrap();

    gradcheck(
        |v| cross_entropy_probs(&v[0], &v[1], &config).map_err(autograd),
        &[randn(&[4, 3], 2), probs],
        GradcheckOptions::default(),
    )
    .unwrap();
}

#[test]
fn bce_with_logits_with_pos_weight_and_weight() {
    let config = BceWithLogitsConfig {
        weight: Some(Generator::new(4).uniform(&[3, 4], 0.5, 1.5)),
        pos_weight: Some(Tensor::from_vec(vec![0.5, 1.0, 2.0, 3.0], &[4]).unwrap()),
        reduction: Reduction::Mean,
    };
    let logits = randn(&[3, 4], 5).map(|x| 4.0 * x);
    let targets = Generator::new(6).rand(&[3, 4]);

    gradcheck(
        |v| binary_cross_entropy_with_logits(&v[0], &v[1], &config).map_err(autograd),
        &[logits, targets],
        GradcheckOptions::default(),
    )
    .unwrap();
}

#[test]
fn huber_and_kl_div() {
    // Inputs at least 0.05 away from the kinks at |d| = delta.
    let x = Tensor::from_vec(vec![-2.0, -0.3, 0.2, 0.6, 1.7, 3.0], &[6]).unwrap();
    let y = Tensor::zeros(&[6]);
    let log_p = randn(&[2, 5], 7).log_softmax(1).unwrap();
    let q = randn(&[2, 5], 8).softmax(1).unwrap();
    let config = KlDivConfig {
        reduction: KlDivReduction::BatchMean,
        log_target: false,
    };

    gradcheck(
        |v| huber_loss(&v[0], &v[1], Reduction::Sum, 1.0).map_err(autograd),
        &[x, y],
        GradcheckOptions::default(),
    )
    .unwrap();
    gradcheck(
        |v| kl_div(&v[0], &v[1], config).map_err(autograd),
        &[log_p, q],
        GradcheckOptions::default(),
    )
    .unwrap();
}

/// The autograd error inside a layer error; gradcheck's closure returns autograd's Result.
fn autograd(err: strata_nn_layers::NnError) -> strata_autograd::AutogradError {
    match err {
        strata_nn_layers::NnError::Autograd(e) => e,
        other => panic!("not an autograd error: {other}"),
    }
}
