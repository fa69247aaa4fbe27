//! Linear, Bilinear, Embedding (with padding_idx), LayerNorm (with a constant row), RMSNorm
//! and both forms of GELU against PyTorch: forward values and gradients, in f32.
//!
//! The fixture comes from fixtures/nn_fixtures.py.

mod nn_util;

use nn_util::{assert_close, backward_with_upstream, fixture, indices, param, tensor};
use serde_json::Value;
use strata_autograd::Var;
use strata_nn_layers::{
    Bilinear, Embedding, EmbeddingConfig, Forward, LayerNorm, Linear, Module, RMSNorm, GELU,
};

fn case(name: &str) -> Value {
    fixture(include_str!("fixtures/nn_layers.json"))[name].clone()
}

/// Copies fixture values into the named parameters of `module`.
fn set_params(module: &dyn Module<f32>, case: &Value, names: &[&str]) {
    for (name, var) in module.named_parameters() {
        assert!(
            names.contains(&name.as_str()),
            "unexpected parameter {name}"
        );
        var.set_value(tensor(&case[name.as_str()])).unwrap();
    }
}

#[test]
fn linear_matches_pytorch() {
    let c = case("linear");
    let layer = Linear::from_parts(param(&c["weight"]), Some(param(&c["bias"]))).unwrap();
    let x = param(&c["x"]);

    let out = layer.forward(&x).unwrap();
    backward_with_upstream(&out, &c["upstream"]);

    assert_close("out", &out.value(), &c["out"]);
    assert_close("grad_x", &x.grad().unwrap(), &c["grad_x"]);
    assert_close(
        "grad_weight",
        &layer.weight().grad().unwrap(),
        &c["grad_weight"],
    );
    assert_close(
        "grad_bias",
        &layer.bias().unwrap().grad().unwrap(),
        &c["grad_bias"],
    );
}

#[test]
fn embedding_with_padding_idx_matches_pytorch() {
    let c = case("embedding");
    let config = EmbeddingConfig {
        padding_idx: Some(c["padding_idx"].as_u64().unwrap() as usize),
    };
    let emb = Embedding::from_weight(param(&c["weight"]), config).unwrap();

    let out = emb.forward(&indices(&c["indices"])).unwrap();
    backward_with_upstream(&out, &c["upstream"]);

    assert_close("out", &out.value(), &c["out"]);
    assert_close(
        "grad_weight",
        &emb.weight().grad().unwrap(),
        &c["grad_weight"],
    );
}

#[test]
fn layer_norm_with_a_constant_row_matches_pytorch() {
    let c = case("layer_norm");
    let ln = LayerNorm::<f32>::new(&[4]);
    set_params(&ln, &c, &["weight", "bias"]);
    let x = param(&c["x"]);

    let out = ln.forward(&x).unwrap();
    backward_with_upstream(&out, &c["upstream"]);

    assert_eq!(ln.eps(), c["eps"].as_f64().unwrap());
    assert_close("out", &out.value(), &c["out"]);
    assert_close("grad_x", &x.grad().unwrap(), &c["grad_x"]);
    assert_close(
        "grad_weight",
        &ln.weight().unwrap().grad().unwrap(),
        &c["grad_weight"],
    );
    assert_close(
        "grad_bias",
        &ln.bias().unwrap().grad().unwrap(),
        &c["grad_bias"],
    );
}

#[test]
fn rms_norm_over_two_dims_matches_pytorch() {
    let c = case("rms_norm");
    let norm = RMSNorm::<f32>::new(&[2, 3]);
    set_params(&norm, &c, &["weight"]);
    let x = param(&c["x"]);

    let out = norm.forward(&x).unwrap();
    backward_with_upstream(&out, &c["upstream"]);

    assert_close("out", &out.value(), &c["out"]);
    assert_close("grad_x", &x.grad().unwrap(), &c["grad_x"]);
    assert_close(
        "grad_weight",
        &norm.weight().unwrap().grad().unwrap(),
        &c["grad_weight"],
    );
}

#[test]
fn gelu_exact_and_tanh_match_pytorch() {
    for (name, layer) in [("gelu", GELU::new()), ("gelu_tanh", GELU::tanh())] {
        let c = case(name);
        let x: Var<f32> = param(&c["x"]);

        let out = layer.forward(&x).unwrap();
        backward_with_upstream(&out, &c["upstream"]);

        assert_close(&format!("{name} out"), &out.value(), &c["out"]);
        assert_close(&format!("{name} grad_x"), &x.grad().unwrap(), &c["grad_x"]);
    }
}

#[test]
fn bilinear_matches_pytorch() {
    let c = case("bilinear");
    let layer = Bilinear::<f32>::new(3, 2, 4, &mut strata_tensor::Generator::new(0));
    set_params(&layer, &c, &["weight", "bias"]);
    let (x1, x2) = (param(&c["x1"]), param(&c["x2"]));

    let out = layer.forward(&x1, &x2).unwrap();
    backward_with_upstream(&out, &c["upstream"]);

    assert_close("out", &out.value(), &c["out"]);
    assert_close("grad_x1", &x1.grad().unwrap(), &c["grad_x1"]);
    assert_close("grad_x2", &x2.grad().unwrap(), &c["grad_x2"]);
    assert_close(
        "grad_weight",
        &layer.weight().grad().unwrap(),
        &c["grad_weight"],
    );
    assert_close(
        "grad_bias",
        &layer.bias().unwrap().grad().unwrap(),
        &c["grad_bias"],
    );
}
