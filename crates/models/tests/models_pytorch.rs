//! Mlp, LeNet and CharRnn against PyTorch: the same modules written in PyTorch with the same
//! parameter names load by name and give the same outputs.
//!
//! The fixture comes from tests/fixtures/models_fixtures.py.

use std::path::PathBuf;

use serde_json::Value;
use strata_autograd::Var;
use strata_models::{CharRnn, CharRnnConfig, LeNet, LeNetConfig, Mlp, MlpConfig};
use strata_nn_layers::{load_state_dict, Module};
use strata_tensor::{Generator, IndexTensor, Tensor};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/models.json")).expect("valid fixture JSON")
}

fn weights(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"))
}

fn tensor(v: &Value) -> Tensor<f32> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_vec(data, &shape).unwrap()
}

fn ids(v: &Value) -> IndexTensor {
    let rows = v.as_array().unwrap();
    let data: Vec<usize> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap() as usize)
        })
        .collect();
    let cols = data.len() / rows.len();
    IndexTensor::from_vec(data, &[rows.len(), cols]).unwrap()
}

/// Within 1e-5 relative, and 1e-6 absolute for values near zero: convolutions and matrix
/// products accumulate in another order than PyTorch's.
fn assert_close(name: &str, got: &Tensor<f32>, want: &Tensor<f32>) {
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    for (i, (g, w)) in got.to_vec().iter().zip(want.to_vec()).enumerate() {
        let tol = 1e-5 * w.abs().max(1.0) + 1e-6;
        assert!((g - w).abs() <= tol, "{name}[{i}]: got {g}, want {w}");
    }
}

fn load<M: Module<f32>>(model: &M, name: &str) {
    load_state_dict(model, weights(name)).unwrap();
}

#[test]
fn mlp_matches_pytorch() {
    let fx = &fixture()["mlp"];
    let config: MlpConfig = serde_json::from_value(fx["config"].clone()).unwrap();
    let mlp = Mlp::<f32>::new(&config, &mut Generator::new(0)).unwrap();
    load(&mlp, "mlp");

    let ys = mlp.forward(&Var::new(tensor(&fx["x"]))).unwrap();

    assert_close("mlp", &ys.value(), &tensor(&fx["y"]));
}

#[test]
fn lenet_matches_pytorch() {
    let fx = &fixture()["lenet"];
    let net = LeNet::<f32>::new(&LeNetConfig::default(), &mut Generator::new(0)).unwrap();
    load(&net, "lenet");

    let ys = net.forward(&Var::new(tensor(&fx["x"]))).unwrap();

    assert_close("lenet", &ys.value(), &tensor(&fx["y"]));
}

#[test]
fn char_lstm_and_gru_match_pytorch() {
    for name in ["char_lstm", "char_gru"] {
        let fx = &fixture()[name];
        let config: CharRnnConfig = serde_json::from_value(fx["config"].clone()).unwrap();
        let model = CharRnn::<f32>::new(&config, &mut Generator::new(0)).unwrap();
        load(&model, name);

        let (logits, _) = model.forward(&ids(&fx["idx"]), None).unwrap();

        assert_close(name, &logits.value(), &tensor(&fx["y"]));
    }
}
