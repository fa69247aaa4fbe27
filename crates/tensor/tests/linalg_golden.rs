//! Matmul broadcasting against products PyTorch computed, in `f64` and `f32`.
//!
//! The fixture comes from `tests/fixtures/linalg_fixtures.py` (PyTorch version and seed are
//! recorded in it): float32 inputs and the float64 products of those same values. Operands
//! stored transposed or with size-1 dims are read back through transposed and expanded views,
//! so these cases also check that strided operands are multiplied where they lie.

use serde_json::Value;
use strata_tensor::{Element, Tensor};

fn fixture() -> Value {
    let text = include_str!("fixtures/linalg.json");
    serde_json::from_str(text).expect("linalg.json is valid JSON")
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|d| d.as_u64().expect("size") as usize)
        .collect()
}

fn values(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// The operand `side` ("lhs" or "rhs") of a case, with the view the case asks for.
fn operand<T: Element>(case: &Value, side: &str) -> Tensor<T> {
    let stored = Tensor::<f64>::from_vec(values(&case[side]), &usizes(&case[side]["shape"]))
        .expect("shape matches data")
        .cast::<T>();
    if case[format!("{side}_transposed")].as_bool() == Some(true) {
        stored
            .transpose(-2, -1)
            .expect("stored operand has two dims")
    } else if let Some(shape) = case.get(format!("{side}_expand")) {
        stored.expand(&usizes(shape)).expect("expandable shape")
    } else {
        stored
    }
}

#[test]
fn matmul_matches_pytorch_in_f64() {
    let doc = fixture();

    for case in doc["cases"].as_array().expect("cases") {
        let (lhs, rhs) = (operand::<f64>(case, "lhs"), operand::<f64>(case, "rhs"));
        let want = values(&case["output"]);

        let got = lhs.matmul(&rhs).expect("fixture shapes are valid");

        let name = &case["name"];
        assert_eq!(got.shape(), &usizes(&case["output"]["shape"])[..], "{name}");
        for (g, w) in got.to_vec().iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{name}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn matmul_matches_pytorch_in_f32() {
    let doc = fixture();

    for case in doc["cases"].as_array().expect("cases") {
        let (lhs, rhs) = (operand::<f32>(case, "lhs"), operand::<f32>(case, "rhs"));
        let want = values(&case["output"]);

        let got = lhs.matmul(&rhs).expect("fixture shapes are valid");

        let name = &case["name"];
        assert_eq!(got.shape(), &usizes(&case["output"]["shape"])[..], "{name}");
        for (g, w) in got.to_vec().iter().zip(&want) {
            let g = f64::from(*g);
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{name}: {g} vs {w}"
            );
        }
    }
}
