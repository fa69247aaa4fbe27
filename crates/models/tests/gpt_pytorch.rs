//! GPT against PyTorch: weights saved by a nanoGPT-layout module load by name and give the
//! same logits, loss and gradients (the tied embedding's included).
//!
//! The fixture (state dict as safetensors, inputs, logits, loss, gradients) comes from
//! tests/fixtures/gpt_fixtures.py.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;
use strata_models::{Gpt, GptConfig};
use strata_nn_layers::Module;
use strata_tensor::{Generator, IndexTensor, Tensor};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/gpt.json")).expect("valid fixture JSON")
}

fn weights_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt_small.safetensors")
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
    IndexTensor::from_vec(data, &[rows.len(), rows[0].as_array().unwrap().len()]).unwrap()
}

fn config(v: &Value) -> GptConfig {
    serde_json::from_value(v.clone()).expect("the fixture config is a GptConfig")
}

fn loaded() -> (Value, Gpt<f32>) {
    let fx = fixture();
    let mut model = Gpt::<f32>::new(&config(&fx["config"]), &mut Generator::new(0)).unwrap();
    model.load_safetensors(weights_path()).unwrap();
    model.eval();
    (fx, model)
}

fn assert_close(name: &str, got: &[f32], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = rel * w.abs().max(1.0);
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{name}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn logits_match_pytorch() {
    let (fx, model) = loaded();

    let logits = model.forward(&ids(&fx["idx"])).unwrap().value();

    let want: Vec<f64> = fx["logits"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(logits.shape(), &[2, 8, 11]);
    assert_close("logits", &logits.to_vec(), &want, 1e-5);
}

#[test]
fn loss_matches_pytorch() {
    let (fx, model) = loaded();

    let loss = model.loss(&ids(&fx["idx"]), &ids(&fx["targets"])).unwrap();

    let want = fx["loss"].as_f64().unwrap();
    assert_close("loss", &[loss.value().item().unwrap()], &[want], 1e-5);
}

#[test]
fn state_dict_keys_match_pytorch() {
    let (fx, model) = loaded();

    let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();

    let want: Vec<String> = fx["state_dict_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, want);
}

#[test]
fn loading_only_the_head_name_gives_the_same_logits() {
    let (fx, model) = loaded();
    let mut dict: HashMap<String, Tensor<f32>> = model.state_dict().into_iter().collect();
    dict.remove("transformer.wte.weight");
    let mut other = Gpt::<f32>::new(model.config(), &mut Generator::new(1)).unwrap();
    other.eval();

    other.load_state_dict(&dict).unwrap();

    let idx = ids(&fx["idx"]);
    let (a, b) = (model.forward(&idx).unwrap(), other.forward(&idx).unwrap());
    assert_eq!(a.value().to_vec(), b.value().to_vec());
    assert_eq!(other.num_parameters(), model.num_parameters());
}

#[test]
fn gradients_match_pytorch() {
    let (fx, model) = loaded();
    let loss = model.loss(&ids(&fx["idx"]), &ids(&fx["targets"])).unwrap();

    loss.backward().unwrap();

    let params: HashMap<String, _> = model.named_parameters().into_iter().collect();
    let grads = fx["grads"].as_object().unwrap();
    assert_eq!(grads.len(), 5);
    for (name, want) in grads {
        let want: Vec<f64> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let got = params[name].grad().expect("a gradient").to_vec();
        // Gradients are small; compare at 1e-5 relative to the largest entry of each tensor.
        let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
        let rel: Vec<f64> = want.iter().map(|w| w / scale).collect();
        let got: Vec<f32> = got.iter().map(|g| (f64::from(*g) / scale) as f32).collect();
        assert_close(name, &got, &rel, 1e-5);
    }
}
