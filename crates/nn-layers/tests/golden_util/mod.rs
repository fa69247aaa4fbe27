//! Helpers shared by the golden tests of conv, pool, batch norm and recurrent layers: reading
//! tensors from the JSON fixtures and comparing within a relative tolerance.

#![allow(dead_code)]

use serde_json::Value;
use strata_autograd::Var;
use strata_tensor::Tensor;

/// The numbers of a JSON array.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// The sizes of a JSON array.
pub fn sizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|x| x.as_u64().expect("a size") as usize)
        .collect()
}

/// A `{"shape": [...], "data": [...]}` object as an f32 tensor.
pub fn tensor(v: &Value) -> Tensor<f32> {
    let data = floats(&v["data"]).into_iter().map(|x| x as f32).collect();
    Tensor::from_vec(data, &sizes(&v["shape"])).expect("fixture shape matches its data")
}

/// Asserts `got` has `want`'s shape and agrees within `rtol * max(|want|, 1)`.
pub fn assert_close_tol(what: &str, got: &Tensor<f32>, want: &Value, rtol: f64) {
    if let Some(shape) = want.get("shape") {
        assert_eq!(got.shape(), sizes(shape).as_slice(), "{what}: shape");
    }
    let want = match want.get("data") {
        Some(data) => floats(data),
        None => floats(want),
    };
    let got = got.to_vec();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let tol = rtol * w.abs().max(1.0);
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// [`assert_close_tol`] at the f32 tolerance `1e-5`.
pub fn assert_close(what: &str, got: &Tensor<f32>, want: &Value) {
    assert_close_tol(what, got, want, 1e-5);
}

/// The gradient of `var`, failing the test if it has none.
pub fn grad(what: &str, var: &Var<f32>) -> Tensor<f32> {
    var.grad().unwrap_or_else(|| panic!("{what}: no gradient"))
}

/// The loader of one fixture file.
pub fn load(text: &str) -> Value {
    serde_json::from_str(text).expect("valid fixture JSON")
}
