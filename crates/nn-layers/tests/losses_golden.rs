//! Every loss with each reduction against PyTorch: outputs and input gradients, in f32.
//! Cross entropy is also checked with ignore_index, label smoothing, class weights, spatial
//! (N, C, d1, d2) logits, logits of +-1e4, an all-ignored batch and probability targets.
//!
//! The fixture comes from fixtures/nn_fixtures.py; each case records its inputs, options,
//! the upstream gradient its backward used, the output and the input's gradient.

mod nn_util;

use nn_util::{assert_close, backward_with_upstream, fixture, indices, param, tensor};
use serde_json::Value;
use strata_autograd::Var;
use strata_nn_layers::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy_probs,
    cross_entropy_with, huber_loss, kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss,
    BceWithLogitsConfig, CrossEntropyConfig, KlDivConfig, KlDivReduction, NllLossConfig, Reduction,
};

fn cases() -> Vec<Value> {
    let all = fixture(include_str!("fixtures/nn_losses.json"));
    all["cases"].as_array().unwrap().clone()
}

fn reduction(case: &Value) -> Reduction {
    match case["reduction"].as_str().unwrap() {
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        "none" => Reduction::None,
        other => panic!("unknown reduction {other}"),
    }
}

fn ce_config(case: &Value) -> CrossEntropyConfig<f32> {
    CrossEntropyConfig {
        weight: case.get("weight").map(tensor),
        ignore_index: case
            .get("ignore_index")
            .map(|i| i.as_u64().unwrap() as usize),
        reduction: reduction(case),
        label_smoothing: case
            .get("label_smoothing")
            .map_or(0.0, |v| v.as_f64().unwrap()),
    }
}

fn kl_config(case: &Value) -> KlDivConfig {
    let reduction = match case["reduction"].as_str().unwrap() {
        "mean" => KlDivReduction::Mean,
        "batchmean" => KlDivReduction::BatchMean,
        "sum" => KlDivReduction::Sum,
        _ => KlDivReduction::None,
    };
    KlDivConfig {
        reduction,
        log_target: case["log_target"].as_bool().unwrap(),
    }
}

/// Runs the loss a case names on `input`.
fn run(case: &Value, input: &Var<f32>) -> Var<f32> {
    let name = case["name"].as_str().unwrap();
    let target = || Var::new(tensor(&case["target"]));
    let r = reduction_or_mean(case);
    let out = match name {
        "mse_loss" => mse_loss(input, &target(), r),
        "l1_loss" => l1_loss(input, &target(), r),
        "huber_loss" => huber_loss(input, &target(), r, case["delta"].as_f64().unwrap()),
        "smooth_l1_loss" => smooth_l1_loss(input, &target(), r, case["beta"].as_f64().unwrap()),
        "binary_cross_entropy" => {
            let weight = case.get("weight").map(tensor);
            binary_cross_entropy(input, &target(), weight.as_ref(), r)
        }
        "binary_cross_entropy_with_logits" => {
            let config = BceWithLogitsConfig {
                weight: case.get("weight").map(tensor),
                pos_weight: case.get("pos_weight").map(tensor),
                reduction: r,
            };
            binary_cross_entropy_with_logits(input, &target(), &config)
        }
        "kl_div" => kl_div(input, &target(), kl_config(case)),
        "cross_entropy" => cross_entropy_with(input, &indices(&case["target"]), &ce_config(case)),
        "nll_loss" => {
            let config = NllLossConfig {
                weight: case.get("weight").map(tensor),
                ignore_index: case
                    .get("ignore_index")
                    .map(|i| i.as_u64().unwrap() as usize),
                reduction: r,
            };
            nll_loss(input, &indices(&case["target"]), &config)
        }
        "cross_entropy_probs" => cross_entropy_probs(input, &target(), &ce_config(case)),
        other => panic!("unknown loss {other}"),
    };
    out.unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The case's reduction; kl_div's own enum is read separately, so `batchmean` maps to mean.
fn reduction_or_mean(case: &Value) -> Reduction {
    match case["reduction"].as_str().unwrap() {
        "batchmean" => Reduction::Mean,
        _ => reduction(case),
    }
}

#[test]
fn every_loss_and_reduction_matches_pytorch() {
    let cases = cases();
    let mut seen = std::collections::BTreeSet::new();

    for (i, case) in cases.iter().enumerate() {
        let what = format!("case {i} {} {}", case["name"], case["reduction"]);
        let input = param(&case["input"]);

        let out = run(case, &input);
        backward_with_upstream(&out, &case["upstream"]);

        assert_close(&format!("{what} output"), &out.value(), &case["output"]);
        assert_close(
            &format!("{what} grad"),
            &input.grad().unwrap(),
            &case["grad_input"],
        );
        seen.insert(case["name"].as_str().unwrap().to_owned());
    }

    assert_eq!(cases.len(), 77);
    assert_eq!(seen.len(), 10, "{seen:?}");
}

#[test]
fn all_ignored_batch_gives_nan_mean_zero_sum_and_zero_gradients() {
    let cases = cases();
    let ignored: Vec<&Value> = cases
        .iter()
        .filter(|c| c.get("all_ignored").is_some())
        .collect();

    for case in &ignored {
        let input = param(&case["input"]);

        let out = run(case, &input);
        backward_with_upstream(&out, &case["upstream"]);

        let value = out.value().to_vec();
        match reduction(case) {
            Reduction::Mean => assert!(value[0].is_nan()),
            _ => assert!(value.iter().all(|&v| v == 0.0)),
        }
        assert!(input.grad().unwrap().to_vec().iter().all(|&g| g == 0.0));
    }
    assert_eq!(ignored.len(), 3);
}
