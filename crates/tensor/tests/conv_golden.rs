//! Convolution and pooling, forward and backward, against values computed by PyTorch.
//!
//! The fixtures come from `tests/fixtures/conv_fixtures.py` (float32 on the CPU); the version
//! of PyTorch and the seed are recorded in the JSON.

use serde_json::Value;
use strata_tensor::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d, avg_pool2d_backward, conv1d,
    conv1d_backward_input, conv1d_backward_weight, conv2d, conv2d_backward_input,
    conv2d_backward_weight, max_pool2d, max_pool2d_backward, AvgPool2dParams, Conv1dParams,
    Conv2dParams, MaxPool2dParams, Tensor,
};

const TOLERANCE: f32 = 1e-5;

fn fixtures() -> Value {
    let text = include_str!("fixtures/conv.json");
    serde_json::from_str(text).expect("conv.json is valid JSON")
}

fn usizes(value: &Value) -> Vec<usize> {
    let items = value.as_array().expect("an array");
    items
        .iter()
        .map(|v| v.as_u64().expect("a non-negative integer") as usize)
        .collect()
}

fn pair(value: &Value) -> [usize; 2] {
    usizes(value).try_into().expect("a pair")
}

fn scalar(value: &Value) -> usize {
    value.as_u64().expect("a non-negative integer") as usize
}

fn tensor(value: &Value) -> Tensor<f32> {
    let data = value["data"].as_array().expect("data array");
    let data = data
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect();
    Tensor::from_vec(data, &usizes(&value["shape"])).expect("data matches shape")
}

fn assert_matches(what: &str, actual: &Tensor<f32>, expected: &Value) {
    let expected = tensor(expected);
    assert_eq!(actual.shape(), expected.shape(), "{what}: shapes differ");
    for (k, (a, e)) in actual.to_vec().iter().zip(expected.to_vec()).enumerate() {
        let tol = TOLERANCE * (1.0 + e.abs());
        assert!(
            (a - e).abs() <= tol,
            "{what}, element {k}: got {a}, PyTorch gives {e}"
        );
    }
}

/// Sums the output gradient over every dim but the channels, as autograd does for a bias.
fn bias_grad(grad_out: &Tensor<f32>) -> Vec<f32> {
    let shape = grad_out.shape();
    let (channels, inner) = (shape[1], shape[2..].iter().product::<usize>());
    let mut sums = vec![0.0; channels];
    for (k, v) in grad_out.to_vec().into_iter().enumerate() {
        sums[k / inner % channels] += v;
    }
    sums
}

#[test]
fn conv2d_matches_pytorch() {
    for (k, case) in fixtures()["conv2d"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let (x, w, b) = (
            tensor(&case["input"]),
            tensor(&case["weight"]),
            tensor(&case["bias"]),
        );
        let g = tensor(&case["grad_output"]);
        let params = Conv2dParams {
            stride: pair(&case["stride"]),
            padding: pair(&case["padding"]),
            dilation: pair(&case["dilation"]),
            groups: scalar(&case["groups"]),
        };

        let out = conv2d(&x, &w, Some(&b), &params).expect("valid case");
        let grad_x = conv2d_backward_input(&g, &w, x.shape(), &params).expect("valid case");
        let grad_w = conv2d_backward_weight(&g, &x, w.shape(), &params).expect("valid case");

        assert_matches(&format!("conv2d case {k} output"), &out, &case["output"]);
        assert_matches(
            &format!("conv2d case {k} grad_input"),
            &grad_x,
            &case["grad_input"],
        );
        assert_matches(
            &format!("conv2d case {k} grad_weight"),
            &grad_w,
            &case["grad_weight"],
        );
        let grad_b = Tensor::from_vec(bias_grad(&g), &[w.shape()[0]]).expect("one per channel");
        assert_matches(
            &format!("conv2d case {k} grad_bias"),
            &grad_b,
            &case["grad_bias"],
        );
    }
}

#[test]
fn conv1d_matches_pytorch() {
    for (k, case) in fixtures()["conv1d"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let (x, w, b) = (
            tensor(&case["input"]),
            tensor(&case["weight"]),
            tensor(&case["bias"]),
        );
        let g = tensor(&case["grad_output"]);
        let params = Conv1dParams {
            stride: scalar(&case["stride"]),
            padding: scalar(&case["padding"]),
            dilation: scalar(&case["dilation"]),
            groups: scalar(&case["groups"]),
        };

        let out = conv1d(&x, &w, Some(&b), &params).expect("valid case");
        let grad_x = conv1d_backward_input(&g, &w, x.shape(), &params).expect("valid case");
        let grad_w = conv1d_backward_weight(&g, &x, w.shape(), &params).expect("valid case");

        assert_matches(&format!("conv1d case {k} output"), &out, &case["output"]);
        assert_matches(
            &format!("conv1d case {k} grad_input"),
            &grad_x,
            &case["grad_input"],
        );
        assert_matches(
            &format!("conv1d case {k} grad_weight"),
            &grad_w,
            &case["grad_weight"],
        );
    }
}

#[test]
fn max_pool2d_matches_pytorch() {
    for (k, case) in fixtures()["max_pool2d"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let x = tensor(&case["input"]);
        let g = tensor(&case["grad_output"]);
        let params = MaxPool2dParams {
            stride: Some(pair(&case["stride"])),
            padding: pair(&case["padding"]),
            dilation: pair(&case["dilation"]),
        };

        let (out, indices) = max_pool2d(&x, pair(&case["kernel_size"]), &params).expect("valid");
        let grad_x = max_pool2d_backward(&g, &indices, x.shape()).expect("valid case");

        assert_matches(
            &format!("max_pool2d case {k} output"),
            &out,
            &case["output"],
        );
        assert_eq!(indices.shape(), &usizes(&case["indices"]["shape"])[..]);
        assert_eq!(
            indices.as_slice(),
            &usizes(&case["indices"]["data"])[..],
            "case {k}"
        );
        assert_matches(
            &format!("max_pool2d case {k} grad_input"),
            &grad_x,
            &case["grad_input"],
        );
    }
}

#[test]
fn avg_pool2d_matches_pytorch() {
    for (k, case) in fixtures()["avg_pool2d"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let x = tensor(&case["input"]);
        let g = tensor(&case["grad_output"]);
        let kernel = pair(&case["kernel_size"]);
        let params = AvgPool2dParams {
            stride: Some(pair(&case["stride"])),
            padding: pair(&case["padding"]),
            count_include_pad: case["count_include_pad"].as_bool().expect("a bool"),
            divisor_override: case["divisor_override"].as_u64().map(|d| d as usize),
        };

        let out = avg_pool2d(&x, kernel, &params).expect("valid case");
        let grad_x = avg_pool2d_backward(&g, x.shape(), kernel, &params).expect("valid case");

        assert_matches(
            &format!("avg_pool2d case {k} output"),
            &out,
            &case["output"],
        );
        assert_matches(
            &format!("avg_pool2d case {k} grad_input"),
            &grad_x,
            &case["grad_input"],
        );
    }
}

#[test]
fn adaptive_avg_pool2d_matches_pytorch() {
    let cases = fixtures()["adaptive_avg_pool2d"].clone();
    for (k, case) in cases.as_array().expect("cases").iter().enumerate() {
        let x = tensor(&case["input"]);
        let g = tensor(&case["grad_output"]);

        let out = adaptive_avg_pool2d(&x, pair(&case["output_size"])).expect("valid case");
        let grad_x = adaptive_avg_pool2d_backward(&g, x.shape()).expect("valid case");

        assert_matches(&format!("adaptive case {k} output"), &out, &case["output"]);
        assert_matches(
            &format!("adaptive case {k} grad_input"),
            &grad_x,
            &case["grad_input"],
        );
    }
}
