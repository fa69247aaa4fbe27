//! Rnn, Lstm and Gru against golden values from PyTorch: outputs, final states, and the
//! gradients of a weighted sum of outputs and final states with respect to every parameter,
//! the input and the initial state, in f32; and the parameter names in `named_parameters()`
//! order.
//!
//! The fixture comes from tests/fixtures/rnn_fixtures.py. The tolerance is 1e-5 relative,
//! the 24-step LSTM included.

mod golden_util;

use golden_util::{assert_close_tol, grad, load, tensor};
use serde_json::Value;
use strata_autograd::Var;
use strata_nn_layers::{
    load_state_dict_from_bytes, Gru, Lstm, Module, NnError, Nonlinearity, RecurrentConfig, Rnn,
    RnnConfig,
};
use strata_tensor::Generator;

/// A built layer of one of the three kinds.
enum Layer {
    Rnn(Rnn<f32>),
    Lstm(Lstm<f32>),
    Gru(Gru<f32>),
}

impl Layer {
    fn module(&self) -> &dyn Module<f32> {
        match self {
            Layer::Rnn(l) => l,
            Layer::Lstm(l) => l,
            Layer::Gru(l) => l,
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn build(case: &Value) -> Layer {
    let size = |key: &str| case[key].as_u64().unwrap() as usize;
    let flag = |key: &str| case[key].as_bool().unwrap();
    let config = RecurrentConfig {
        num_layers: size("num_layers"),
        bias: flag("bias"),
        batch_first: flag("batch_first"),
        dropout: 0.0,
        bidirectional: flag("bidirectional"),
        proj_size: size("proj_size"),
    };
    let (input, hidden) = (size("input_size"), size("hidden_size"));
    let mut gen = Generator::new(0);
    let layer = match case["kind"].as_str().unwrap() {
        "RNN" => {
            let nonlinearity = match case["nonlinearity"].as_str().unwrap() {
                "tanh" => Nonlinearity::Tanh,
                "relu" => Nonlinearity::Relu,
                other => panic!("unknown nonlinearity {other}"),
            };
            let config = RnnConfig {
                num_layers: config.num_layers,
                nonlinearity,
                bias: config.bias,
                batch_first: config.batch_first,
                dropout: 0.0,
                bidirectional: config.bidirectional,
            };
            Layer::Rnn(Rnn::new(input, hidden, config, &mut gen).unwrap())
        }
        "LSTM" => Layer::Lstm(Lstm::new(input, hidden, config, &mut gen).unwrap()),
        "GRU" => Layer::Gru(Gru::new(input, hidden, config, &mut gen).unwrap()),
        other => panic!("unknown layer {other}"),
    };
    for (name, p) in layer.module().named_parameters() {
        p.set_value(tensor(&case["params"][&name])).unwrap();
    }
    layer
}

/// The weighted sum `sum(a * g)` of a fixture upstream gradient `g`.
fn weighted(a: &Var<f32>, g: &Value) -> Var<f32> {
    a.mul(&Var::new(tensor(g))).unwrap().sum_all()
}

fn check(case: &Value) {
    let name = case["name"].as_str().unwrap();
    let rtol = 1e-5;
    let close = |what: &str, got: &Var<f32>, want: &Value| {
        assert_close_tol(&format!("{name}: {what}"), &got.value(), want, rtol);
    };
    let layer = build(case);
    let module = layer.module();
    let names: Vec<String> = module.named_parameters().into_iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        strings(&case["param_names"]),
        "{name}: parameter names"
    );
    assert_eq!(
        names,
        strings(&case["state_dict_names"]),
        "{name}: state dict"
    );
    let xs = Var::parameter(tensor(&case["x"]));
    let h0 = case.get("h0").map(|h| Var::parameter(tensor(h)));
    let c0 = case.get("c0").map(|c| Var::parameter(tensor(c)));

    let (out, h_n, c_n) = match &layer {
        Layer::Rnn(l) => {
            let (out, h_n) = l.forward(&xs, h0.as_ref()).unwrap();
            (out, h_n, None)
        }
        Layer::Gru(l) => {
            let (out, h_n) = l.forward(&xs, h0.as_ref()).unwrap();
            (out, h_n, None)
        }
        Layer::Lstm(l) => {
            let state = h0.as_ref().zip(c0.as_ref());
            let (out, (h_n, c_n)) = l.forward(&xs, state).unwrap();
            (out, h_n, Some(c_n))
        }
    };
    let mut loss = weighted(&out, &case["g"])
        .add(&weighted(&h_n, &case["g_h"]))
        .unwrap();
    if let Some(c_n) = &c_n {
        loss = loss.add(&weighted(c_n, &case["g_c"])).unwrap();
    }
    loss.backward().unwrap();

    close("out", &out, &case["out"]);
    close("h_n", &h_n, &case["h_n"]);
    if let Some(c_n) = &c_n {
        close("c_n", c_n, &case["c_n"]);
    }
    let grad_of = |what: &str, v: &Var<f32>| Var::new(grad(&format!("{name}: {what}"), v));
    close("grad_x", &grad_of("grad_x", &xs), &case["grad_x"]);
    if let Some(h0) = &h0 {
        close("grad_h0", &grad_of("grad_h0", h0), &case["grad_h0"]);
    }
    if let Some(c0) = &c0 {
        close("grad_c0", &grad_of("grad_c0", c0), &case["grad_c0"]);
    }
    for (pname, p) in module.named_parameters() {
        let what = format!("grad {pname}");
        close(&what, &grad_of(&what, &p), &case["grads"][&pname]);
    }
}

#[test]
fn recurrent_layers_match_pytorch() {
    let fixture = load(include_str!("fixtures/rnn_fixtures.json"));
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        check(case);
    }
}

#[test]
fn zero_length_sequence_is_rejected_like_pytorch() {
    // PyTorch: "Expected sequence length to be larger than 0 in RNN", for every kind.
    let mut gen = Generator::new(1);
    let lstm = Lstm::<f32>::new(3, 4, RecurrentConfig::default(), &mut gen).unwrap();
    let empty = Var::new(strata_tensor::Tensor::zeros(&[0, 3]));

    let err = lstm.forward(&empty, None).unwrap_err();

    assert!(matches!(err, NnError::Input { layer: "LSTM", .. }), "{err}");
}

#[test]
fn pytorch_lstm_state_dict_loads_and_reproduces_the_output() {
    // rnn_lstm_state.safetensors is the state dict of the `lstm_deep` case, saved by PyTorch.
    let fixture = load(include_str!("fixtures/rnn_fixtures.json"));
    let case = &fixture["cases"][3];
    assert_eq!(case["name"], "lstm_deep");
    let config = RecurrentConfig {
        num_layers: 2,
        batch_first: true,
        bidirectional: true,
        ..Default::default()
    };
    let lstm = Lstm::<f32>::new(3, 4, config, &mut Generator::new(3)).unwrap();

    load_state_dict_from_bytes(&lstm, include_bytes!("fixtures/rnn_lstm_state.safetensors"))
        .unwrap();

    let (h0, c0) = (Var::new(tensor(&case["h0"])), Var::new(tensor(&case["c0"])));
    let (out, (h_n, c_n)) = lstm
        .forward(&Var::new(tensor(&case["x"])), Some((&h0, &c0)))
        .unwrap();
    assert_close_tol("out", &out.value(), &case["out"], 1e-5);
    assert_close_tol("h_n", &h_n.value(), &case["h_n"], 1e-5);
    assert_close_tol("c_n", &c_n.value(), &case["c_n"], 1e-5);
}
