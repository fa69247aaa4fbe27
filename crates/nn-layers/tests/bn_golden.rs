//! BatchNorm1d and BatchNorm2d against golden values from PyTorch over two training steps and
//! an eval step: outputs, input and parameter gradients of `sum(y * g)`, running statistics
//! and the batch counter after each step, and the state dict names, in f32.
//!
//! The fixture comes from tests/fixtures/bn_fixtures.py.

mod golden_util;

use golden_util::{assert_close, floats, grad, load, tensor};
use serde_json::Value;
use strata_autograd::Var;
use strata_nn_layers::{BatchNorm1d, BatchNorm2d, BatchNormConfig, Forward};

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
