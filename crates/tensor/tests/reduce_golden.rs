//! Softmax, log-softmax, logsumexp and variance against values PyTorch computed in float32.
//!
//! The fixture comes from `tests/fixtures/reduce_fixtures.py` (PyTorch version and seed are
//! recorded in it). Results must agree within a relative tolerance of 1e-6, measured against
//! `max(|expected|, 1)` so that values near zero are held to 1e-6 absolute.

use serde_json::Value;
use strata_tensor::Tensor;

const TOLERANCE: f64 = 1e-6;

fn fixture() -> Value {
    let text = include_str!("fixtures/reduce.json");
    serde_json::from_str(text).expect("reduce.json is valid JSON")
}

/// A number from the fixture; non-finite values are stored as strings.
fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("finite number"),
        Value::String(s) => match s.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            other => panic!("unexpected number string {other:?}"),
        },
        other => panic!("unexpected value {other}"),
    }
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|d| d.as_u64().expect("size") as usize)
        .collect()
}

fn isizes(v: &Value) -> Vec<isize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|d| d.as_i64().expect("dim") as isize)
        .collect()
}

fn tensor(v: &Value) -> Tensor<f32> {
    let data = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| number(x) as f32)
        .collect();
    Tensor::from_vec(data, &usizes(&v["shape"])).expect("shape matches data")
}

fn agree(got: f64, want: f64) -> bool {
    (got.is_nan() && want.is_nan())
        || got == want
        || (got - want).abs() <= TOLERANCE * want.abs().max(1.0)
}

#[test]
fn reductions_match_pytorch_float32() {
    let doc = fixture();
    let inputs = &doc["inputs"];
    let cases = doc["cases"].as_array().expect("cases");

    let mut checked = 0;
    for case in cases {
        let op = case["op"].as_str().expect("op");
        let x = tensor(&inputs[case["input"].as_str().expect("input")]);
        let want = tensor(&case["output"]);
        let axes = if case["dim"].is_null() {
            &case["dims"]
        } else {
            &case["dim"]
        };
        let got = match op {
            "softmax" => x.softmax(case["dim"].as_i64().expect("dim") as isize),
            "log_softmax" => x.log_softmax(case["dim"].as_i64().expect("dim") as isize),
            "logsumexp" => x.logsumexp(&isizes(&case["dims"])),
            "var" => x.var(&isizes(&case["dims"]), 1),
            other => panic!("unknown op {other}"),
        }
        .expect("op succeeds on fixture input");

        assert_eq!(got.shape(), want.shape(), "{op} on {}", case["input"]);
        for (i, (&g, &w)) in got.to_vec().iter().zip(&want.to_vec()).enumerate() {
            assert!(
                agree(f64::from(g), f64::from(w)),
                "{op} on {} over {axes}, element {i}: got {g}, torch {w}",
                case["input"],
            );
        }
        checked += 1;
    }

    assert_eq!(checked, cases.len());
    assert!(checked >= 30, "fixture holds only {checked} cases");
}
