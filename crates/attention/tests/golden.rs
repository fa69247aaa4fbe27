//! Scaled dot-product and multi-head attention against golden values from PyTorch: outputs,
//! attention weights, and the gradients of inputs and parameters, in f64 and in f32.
//!
//! The fixture comes from tests/fixtures/attention_fixtures.py, computed in float64. Boolean
//! masks are stored as 0/1 with their sense: SDPA's (true = attend) loads as
//! `AttnMask::Attend`, MultiheadAttention's (true = ignore) as `AttnMask::Ignore` and
//! `KeyPaddingMask::Ignore`.

use serde_json::Value;
use strata_attention::{
    scaled_dot_product_attention, AttnMask, KeyPaddingMask, MhaForwardOptions, MultiheadAttention,
    MultiheadAttentionConfig, SdpaKernel, SdpaOptions,
};
use strata_autograd::{BackwardOptions, Var};
use strata_nn_layers::Module;
use strata_tensor::{Element, Generator, Tensor};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/attention.json")).expect("valid fixture JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn tensor<T: Element>(v: &Value) -> Tensor<T> {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|n| n.as_u64().expect("dim") as usize)
        .collect();
    let data = floats(&v["data"]).into_iter().map(T::from_f64).collect();
    Tensor::from_vec(data, &shape).expect("fixture shape")
}

/// `|got - want| <= tol * (1 + |want|)` elementwise.
fn assert_close<T: Element>(what: &str, got: &Tensor<T>, want: &[f64], tol: f64) {
    let got = got.to_vec();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g.as_f64() - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

fn attn_mask<T: Element>(case: &Value, key: &str) -> Option<AttnMask<T>> {
    let kind = case
        .get(format!("{key}_kind").as_str())
        .or(case.get("mask_kind"))?;
    let t = tensor(case.get(key)?);
    Some(match kind.as_str() {
        Some("attend") => AttnMask::Attend(t),
        Some("ignore") => AttnMask::Ignore(t),
        _ => AttnMask::Additive(t),
    })
}

fn check_sdpa<T: Element>(name: &str, kernel: SdpaKernel, tol: f64) {
    let fx = fixture();
    let case = &fx[name];
    let (q, k, v) = (
        Var::parameter(tensor::<T>(&case["q"])),
        Var::parameter(tensor::<T>(&case["k"])),
        Var::parameter(tensor::<T>(&case["v"])),
    );
    let mask = attn_mask::<T>(case, "mask");
    let opts = SdpaOptions {
        is_causal: case["is_causal"].as_bool().unwrap(),
        scale: case["scale"].as_f64(),
        kernel,
        ..Default::default()
    };

    let out = scaled_dot_product_attention(&q, &k, &v, mask.as_ref(), opts).unwrap();
    out.backward_with(&tensor(&case["g_out"]), BackwardOptions::default())
        .unwrap();

    assert_close(name, &out.value(), &floats(&case["out"]["data"]), tol);
    assert_close("grad_q", &q.grad().unwrap(), &floats(&case["grad_q"]), tol);
    assert_close("grad_k", &k.grad().unwrap(), &floats(&case["grad_k"]), tol);
    assert_close("grad_v", &v.grad().unwrap(), &floats(&case["grad_v"]), tol);
}

/// f32 agrees to about 1e-5 relative; the PyTorch values are float64.
const F32_TOL: f64 = 2e-5;
const F64_TOL: f64 = 1e-10;

#[test]
fn sdpa_bool_mask_matches_pytorch() {
    for kernel in [SdpaKernel::Math, SdpaKernel::Tiled] {
        check_sdpa::<f64>("sdpa_bool", kernel, F64_TOL);
        check_sdpa::<f32>("sdpa_bool", kernel, F32_TOL);
    }
}

#[test]
fn sdpa_additive_mask_and_scale_match_pytorch() {
    for kernel in [SdpaKernel::Math, SdpaKernel::Tiled] {
        check_sdpa::<f64>("sdpa_additive", kernel, F64_TOL);
        check_sdpa::<f32>("sdpa_additive", kernel, F32_TOL);
    }
}

#[test]
fn sdpa_causal_matches_pytorch() {
    for kernel in [SdpaKernel::Math, SdpaKernel::Tiled] {
        check_sdpa::<f64>("sdpa_causal", kernel, F64_TOL);
        check_sdpa::<f32>("sdpa_causal", kernel, F32_TOL);
    }
}

fn check_mha<T: Element>(name: &str, tol: f64) {
    let fx = fixture();
    let case = &fx[name];
    let dim = |key: &str| case[key].as_u64().map(|n| n as usize);
    let mut config =
        MultiheadAttentionConfig::new(dim("embed_dim").unwrap(), dim("num_heads").unwrap());
    config.kdim = dim("kdim");
    config.vdim = dim("vdim");
    config.batch_first = case["batch_first"].as_bool().unwrap();
    let mha = MultiheadAttention::<T>::new(config, &mut Generator::new(0)).unwrap();
    let params = mha.named_parameters();
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    let order: Vec<&str> = case["param_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(names, order, "parameter names and order");
    for (n, p) in &params {
        p.set_value(tensor(&case["params"][n.as_str()])).unwrap();
    }
    let query = Var::parameter(tensor::<T>(&case["query"]));
    let self_attention = case["self_attention"].as_bool().unwrap();
    let (key, value) = if self_attention {
        (query.clone(), query.clone())
    } else {
        (
            Var::parameter(tensor::<T>(&case["key"])),
            Var::parameter(tensor::<T>(&case["value"])),
        )
    };
    let key_padding_mask =
        case.get("key_padding_mask")
            .map(|m| match case["key_padding_mask_kind"].as_str() {
                Some("ignore") => KeyPaddingMask::Ignore(tensor(m)),
                _ => KeyPaddingMask::Additive(tensor(m)),
            });
    let opts = MhaForwardOptions {
        key_padding_mask,
        attn_mask: attn_mask(case, "attn_mask"),
        average_attn_weights: case["average"].as_bool().unwrap(),
        ..Default::default()
    };

    let (out, weights) = mha.forward(&query, &key, &value, &opts).unwrap();
    let weights = weights.unwrap();
    let loss = out
        .mul(&Var::new(tensor(&case["g_out"])))
        .unwrap()
        .sum_all()
        .add(
            &weights
                .mul(&Var::new(tensor(&case["g_w"])))
                .unwrap()
                .sum_all(),
        )
        .unwrap();
    loss.backward().unwrap();

    assert_close("out", &out.value(), &floats(&case["out"]["data"]), tol);
    assert_close(
        "weights",
        &weights.value(),
        &floats(&case["weights"]["data"]),
        tol,
    );
    assert_eq!(weights.shape(), tensor::<T>(&case["weights"]).shape());
    assert_close(
        "grad_query",
        &query.grad().unwrap(),
        &floats(&case["grad_query"]),
        tol,
    );
    if !self_attention {
        assert_close(
            "grad_key",
            &key.grad().unwrap(),
            &floats(&case["grad_key"]),
            tol,
        );
        assert_close(
            "grad_value",
            &value.grad().unwrap(),
            &floats(&case["grad_value"]),
            tol,
        );
    }
    for (n, p) in &params {
        let want = floats(&case["params"][n.as_str()]["grad"]);
        assert_close(n, &p.grad().unwrap(), &want, tol);
    }
}

#[test]
fn mha_self_attention_with_padding_and_ignore_mask_matches_pytorch() {
    check_mha::<f64>("mha_self", F64_TOL);
    check_mha::<f32>("mha_self", F32_TOL);
}

#[test]
fn mha_cross_attention_with_kdim_vdim_and_per_head_weights_matches_pytorch() {
    check_mha::<f64>("mha_cross", F64_TOL);
    check_mha::<f32>("mha_cross", F32_TOL);
}

#[test]
fn mha_cross_attention_packed_with_additive_mask_matches_pytorch() {
    check_mha::<f64>("mha_cross_packed", F64_TOL);
    check_mha::<f32>("mha_cross_packed", F32_TOL);
}
