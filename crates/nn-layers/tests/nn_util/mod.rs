//! Helpers of the golden tests of the core layers, losses and state dicts: reading the JSON
//! fixtures written by fixtures/nn_fixtures.py and comparing within a tolerance.

#![allow(dead_code)]

use serde_json::Value;
use strata_autograd::Var;
use strata_tensor::{IndexTensor, Tensor};

/// Relative tolerance of f32 comparisons against PyTorch (with an absolute floor of the same
/// size for values below one).
pub const RTOL: f64 = 1e-5;

/// A fixture file parsed as JSON.
pub fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("valid fixture JSON")
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// The sizes of a JSON array.
pub fn sizes(v: &Value) -> Vec<usize> {
    numbers(v).into_iter().map(|x| x as usize).collect()
}

/// A `{"shape": [...], "data": [...]}` object as an f32 tensor.
pub fn tensor(v: &Value) -> Tensor<f32> {
    let data = numbers(&v["data"]).into_iter().map(|x| x as f32).collect();
    Tensor::from_vec(data, &sizes(&v["shape"])).expect("fixture shape matches its data")
}

/// A `{"shape": [...], "data": [...]}` object of integers as an index tensor.
pub fn indices(v: &Value) -> IndexTensor {
    IndexTensor::from_vec(sizes(&v["data"]), &sizes(&v["shape"])).expect("index shape")
}

/// A parameter holding the fixture tensor `v`.
pub fn param(v: &Value) -> Var<f32> {
    Var::parameter(tensor(v))
}

/// Backward of `sum(out * upstream)`, the reduction the fixtures used.
pub fn backward_with_upstream(out: &Var<f32>, upstream: &Value) {
    let up = Var::new(tensor(upstream));
    out.mul(&up)
        .expect("upstream has the output's shape")
        .sum_all()
        .backward()
        .expect("backward");
}

/// Asserts `got` has `want`'s shape and agrees within `rtol * max(|want|, 1)`; NaN matches NaN.
pub fn assert_close_tol(what: &str, got: &Tensor<f32>, want: &Value, rtol: f64) {
    assert_eq!(
        got.shape(),
        sizes(&want["shape"]).as_slice(),
        "{what}: shape"
    );
    let want = want["data"].as_array().expect("data");
    let got = got.to_vec();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, w)) in got.iter().zip(want).enumerate() {
        // serde_json writes NaN as null.
        let Some(w) = w.as_f64() else {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
            continue;
        };
        let tol = rtol * w.abs().max(1.0);
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// [`assert_close_tol`] at [`RTOL`].
pub fn assert_close(what: &str, got: &Tensor<f32>, want: &Value) {
    assert_close_tol(what, got, want, RTOL);
}
