//! Gradients of small composite functions (an MLP and a conv-pool-linear stack, each with
//! softmax cross-entropy) against golden values from PyTorch, in f32.
//!
//! The fixture comes from tests/fixtures/composite_fixtures.py.

use serde_json::Value;
use strata_autograd::Var;
use strata_tensor::{Conv2dParams, IndexTensor, MaxPool2dParams, Tensor};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/composite.json")).expect("valid fixture JSON")
}

fn tensor(v: &Value) -> Tensor<f32> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_vec(data, &shape).unwrap()
}

fn param(case: &Value, name: &str) -> Var<f32> {
    Var::parameter(tensor(&case["params"][name]))
}

fn targets(case: &Value) -> IndexTensor {
    let t: Vec<usize> = case["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as usize)
        .collect();
    IndexTensor::from_slice(&t)
}

/// Mean negative log-likelihood of `targets` under `log_softmax(logits)`.
fn cross_entropy(logits: &Var<f32>, targets: &IndexTensor) -> Var<f32> {
    let n = targets.numel();
    let picked = logits
        .log_softmax(-1)
        .unwrap()
        .gather(1, &targets.reshape(&[n, 1]).unwrap())
        .unwrap();
    picked.mean_all().neg()
}

fn assert_close(name: &str, got: &[f32], want: &Value) {
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let tol = 1e-5 * w.abs().max(1.0);
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{name}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn mlp_cross_entropy_gradients_match_pytorch() {
    let case = &fixture()["mlp"];
    let x = Var::new(tensor(&case["x"]));
    let (w1, b1, w2, b2) = (
        param(case, "w1"),
        param(case, "b1"),
        param(case, "w2"),
        param(case, "b2"),
    );

    let hidden = x.matmul(&w1).unwrap().add(&b1).unwrap().relu();
    let logits = hidden.matmul(&w2).unwrap().add(&b2).unwrap();
    let loss = cross_entropy(&logits, &targets(case));
    loss.backward().unwrap();

    assert_close(
        "loss",
        &loss.value().to_vec(),
        &Value::from(vec![case["loss"].clone()]),
    );
    for (name, p) in [("w1", &w1), ("b1", &b1), ("w2", &w2), ("b2", &b2)] {
        assert_close(
            name,
            &p.grad().unwrap().to_vec(),
            &case["params"][name]["grad"],
        );
    }
}

#[test]
fn conv_pool_linear_gradients_match_pytorch() {
    let case = &fixture()["cnn"];
    let x = Var::new(tensor(&case["x"]));
    let (cw, cb, lw, lb) = (
        param(case, "cw"),
        param(case, "cb"),
        param(case, "lw"),
        param(case, "lb"),
    );

    let conv = x.conv2d(&cw, &Conv2dParams::default()).unwrap();
    let conv = conv.add(&cb.reshape(&[3, 1, 1]).unwrap()).unwrap().relu();
    let (pooled, _) = conv
        .max_pool2d([2, 2], &MaxPool2dParams::default())
        .unwrap();
    let logits = pooled
        .flatten(1, -1)
        .unwrap()
        .matmul(&lw)
        .unwrap()
        .add(&lb)
        .unwrap();
    let loss = cross_entropy(&logits, &targets(case));
    loss.backward().unwrap();

    assert_close(
        "loss",
        &loss.value().to_vec(),
        &Value::from(vec![case["loss"].clone()]),
    );
    for (name, p) in [("cw", &cw), ("cb", &cb), ("lw", &lw), ("lb", &lb)] {
        assert_close(
            name,
            &p.grad().unwrap().to_vec(),
            &case["params"][name]["grad"],
        );
    }
}
