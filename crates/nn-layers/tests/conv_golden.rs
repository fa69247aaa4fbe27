//! Conv1d, Conv2d, MaxPool2d, AvgPool2d and AdaptiveAvgPool2d against golden values from
//! PyTorch: outputs, input gradients and parameter gradients of `sum(y * g)` in f32, and the
//! parameter names in `named_parameters()` order.
//!
//! The fixture comes from tests/fixtures/conv_fixtures.py.

mod golden_util;

use golden_util::{assert_close, grad, load, sizes, tensor};
use serde_json::Value;
use strata_autograd::Var;
use strata_nn_layers::{
    AdaptiveAvgPool2d, AvgPool2d, AvgPool2dConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig,
    Forward, MaxPool2d, MaxPool2dConfig, Padding, PaddingMode,
};
use strata_tensor::Generator;

fn fixture() -> Value {
    load(include_str!("fixtures/conv_fixtures.json"))
}

fn pair(v: &Value) -> [usize; 2] {
    let s = sizes(v);
    [s[0], s[1]]
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().expect("a size") as usize
}

fn build(case: &Value) -> Box<dyn Forward<f32>> {
    let mut gen = Generator::new(0);
    let (c_in, c_out) = (
        usize_of(&case["in_channels"]),
        usize_of(&case["out_channels"]),
    );
    let bias = case["bias"].as_bool().unwrap();
    let groups = usize_of(&case["groups"]);
    let padding_mode = match case["padding_mode"].as_str().unwrap() {
        "zeros" => PaddingMode::Zeros,
        "reflect" => PaddingMode::Reflect,
        "replicate" => PaddingMode::Replicate,
        "circular" => PaddingMode::Circular,
        other => panic!("unknown padding mode {other}"),
    };
    let layer: Box<dyn Forward<f32>> = if case["kind"] == "conv2d" {
        let padding = match case["padding"].as_str() {
            Some("same") => Padding::Same,
            Some("valid") => Padding::Valid,
            Some(other) => panic!("unknown padding {other}"),
            None => Padding::Explicit(pair(&case["padding"])),
        };
        let config = Conv2dConfig {
            stride: pair(&case["stride"]),
            padding,
            dilation: pair(&case["dilation"]),
            groups,
            bias,
            padding_mode,
        };
        Box::new(Conv2d::new(c_in, c_out, pair(&case["kernel"]), config, &mut gen).unwrap())
    } else {
        let padding = match case["padding"].as_str() {
            Some("same") => Padding::Same,
            Some("valid") => Padding::Valid,
            Some(other) => panic!("unknown padding {other}"),
            None => Padding::Explicit(usize_of(&case["padding"])),
        };
        let config = Conv1dConfig {
            stride: usize_of(&case["stride"]),
            padding,
            dilation: usize_of(&case["dilation"]),
            groups,
            bias,
            padding_mode,
        };
        let kernel = usize_of(&case["kernel"]);
        Box::new(Conv1d::new(c_in, c_out, kernel, config, &mut gen).unwrap())
    };
    for (name, p) in layer.named_parameters() {
        p.set_value(tensor(&case["params"][&name])).unwrap();
    }
    layer
}

/// Runs `layer` on the case's input and checks output, input gradient and parameter grads.
fn check(name: &str, layer: &dyn Forward<f32>, case: &Value) {
    let xs = Var::parameter(tensor(&case["x"]));

    let ys = layer.forward(&xs).unwrap();
    ys.mul(&Var::new(tensor(&case["g"])))
        .unwrap()
        .sum_all()
        .backward()
        .unwrap();

    assert_close(&format!("{name}: y"), &ys.value(), &case["y"]);
    assert_close(
        &format!("{name}: grad_x"),
        &grad(name, &xs),
        &case["grad_x"],
    );
    let names: Vec<String> = layer.named_parameters().into_iter().map(|p| p.0).collect();
    let want: Vec<String> = case["param_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, want, "{name}: parameter names");
    for (pname, p) in layer.named_parameters() {
        let what = format!("{name}: grad {pname}");
        assert_close(&what, &grad(&what, &p), &case["params"][&pname]["grad"]);
    }
}

#[test]
fn convolutions_match_pytorch() {
    let fixture = fixture();
    let cases = fixture["conv"].as_array().unwrap();
    assert!(cases.len() >= 17);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let layer = build(case);
        check(name, layer.as_ref(), case);
    }
}

#[test]
fn pools_match_pytorch() {
    let fixture = fixture();
    let cases = fixture["pool"].as_array().unwrap();
    assert!(cases.len() >= 12);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let stride = (!case["stride"].is_null()).then(|| pair(&case["stride"]));
        let layer: Box<dyn Forward<f32>> = match case["kind"].as_str().unwrap() {
            "max_pool2d" => {
                let config = MaxPool2dConfig {
                    stride,
                    padding: pair(&case["padding"]),
                    dilation: pair(&case["dilation"]),
                    ceil_mode: case["ceil_mode"].as_bool().unwrap(),
                };
                Box::new(MaxPool2d::new(pair(&case["kernel"]), config).unwrap())
            }
            "avg_pool2d" => {
                let config = AvgPool2dConfig {
                    stride,
                    padding: pair(&case["padding"]),
                    count_include_pad: case["count_include_pad"].as_bool().unwrap(),
                    divisor_override: case["divisor_override"].as_u64().map(|d| d as usize),
                    ceil_mode: case["ceil_mode"].as_bool().unwrap_or(false),
                };
                Box::new(AvgPool2d::new(pair(&case["kernel"]), config).unwrap())
            }
            "adaptive_avg_pool2d" => {
                Box::new(AdaptiveAvgPool2d::new(pair(&case["output_size"])).unwrap())
            }
            other => panic!("unknown pool {other}"),
        };
        check(name, layer.as_ref(), case);
    }
}
