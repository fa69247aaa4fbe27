//! BatchNorm1d and BatchNorm2d against golden values from PyTorch over two training steps and
//! an eval step: outputs, input and parameter gradients of `sum(y * g)`, running statistics
//! and the batch counter after each step, and the state dict names, in f32.
//!
//! The fixture comes from tests/fixtures/bn_fixtures.py.

mod golden_util;

use golden_util::{assert_close, floats, grad, load, tensor};
use serde_json::Value;
use strata_autograd::Var;
use strata_nn_layers::{
    load_state_dict_from_bytes, state_dict_to_bytes, BatchNorm1d, BatchNorm2d, BatchNormConfig,
    Forward,
};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn build(case: &Value) -> Box<dyn Forward<f32>> {
    let config = BatchNormConfig {
        momentum: case["momentum"].as_f64(),
        affine: case["affine"].as_bool().unwrap(),
        track_running_stats: case["track_running_stats"].as_bool().unwrap(),
        ..Default::default()
    };
    let c = case["num_features"].as_u64().unwrap() as usize;
    let layer: Box<dyn Forward<f32>> = match case["kind"].as_str().unwrap() {
        "BatchNorm1d" => Box::new(BatchNorm1d::new(c, config).unwrap()),
        "BatchNorm2d" => Box::new(BatchNorm2d::new(c, config).unwrap()),
        other => panic!("unknown layer {other}"),
    };
    for (name, p) in layer.named_parameters() {
        p.set_value(tensor(&case["params"][&name])).unwrap();
    }
    layer
}

#[test]
fn batch_norm_matches_pytorch_over_train_train_eval() {
    let fixture = load(include_str!("fixtures/bn_fixtures.json"));
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut layer = build(case);
        let params: Vec<String> = layer.named_parameters().into_iter().map(|p| p.0).collect();
        let buffers: Vec<String> = layer.named_buffers().into_iter().map(|p| p.0).collect();
        assert_eq!(params, strings(&case["param_names"]), "{name}: parameters");
        let state: Vec<String> = params.iter().chain(&buffers).cloned().collect();
        assert_eq!(
            state,
            strings(&case["state_dict_names"]),
            "{name}: state dict"
        );

        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let what = format!("{name} step {i}");
            if step["mode"] == "train" {
                layer.train();
            } else {
                layer.eval();
            }
            layer.zero_grad();
            let xs = Var::parameter(tensor(&step["x"]));

            let ys = layer.forward(&xs).unwrap();
            let loss = ys.mul(&Var::new(tensor(&step["g"]))).unwrap().sum_all();
            loss.backward().unwrap();

            assert_close(&format!("{what}: y"), &ys.value(), &step["y"]);
            assert_close(
                &format!("{what}: grad_x"),
                &grad(&what, &xs),
                &step["grad_x"],
            );
            for (pname, p) in layer.named_parameters() {
                let w = format!("{what}: grad {pname}");
                assert_close(&w, &grad(&w, &p), &step["grads"][&pname]);
            }
            for (bname, b) in layer.named_buffers() {
                let want = &step["buffers"][&bname];
                assert!(
                    !floats(want).is_empty(),
                    "{what}: buffer {bname} in fixture"
                );
                assert_close(&format!("{what}: {bname}"), &b.value(), want);
            }
        }
    }
}

#[test]
fn pytorch_state_dict_loads_with_running_stats_and_counter() {
    // bn_state.safetensors is the `bn2d` case after its steps, saved by PyTorch with
    // `num_batches_tracked` as int64.
    let fixture = load(include_str!("fixtures/bn_fixtures.json"));
    let case = &fixture["cases"][3];
    assert_eq!(case["name"], "bn2d");
    let after = &case["steps"][2]["buffers"];
    let bn = BatchNorm2d::<f32>::new(3, BatchNormConfig::default()).unwrap();

    load_state_dict_from_bytes(&bn, include_bytes!("fixtures/bn_state.safetensors")).unwrap();

    assert_close(
        "weight",
        &bn.weight().unwrap().value(),
        &case["params"]["weight"],
    );
    assert_close("bias", &bn.bias().unwrap().value(), &case["params"]["bias"]);
    let running_mean = bn.running_mean().unwrap().value();
    assert_close("running_mean", &running_mean, &after["running_mean"]);
    assert_close(
        "running_var",
        &bn.running_var().unwrap().value(),
        &after["running_var"],
    );
    let tracked = bn.num_batches_tracked().unwrap().value();
    assert_eq!(tracked.item().unwrap(), 2.0);

    let copy = BatchNorm2d::<f32>::new(3, BatchNormConfig::default()).unwrap();
    load_state_dict_from_bytes(&copy, &state_dict_to_bytes(&bn).unwrap()).unwrap();
    assert_eq!(
        copy.running_var().unwrap().value().to_vec(),
        bn.running_var().unwrap().value().to_vec()
    );
    assert_eq!(
        copy.num_batches_tracked().unwrap().value().item().unwrap(),
        2.0
    );
}
