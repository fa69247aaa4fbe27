//! TransformerEncoderClassifier against PyTorch: a classifier built from
//! `nn.TransformerEncoder` with the same parameter names loads by name and gives the same
//! logits, post-norm with mean pooling and pre-norm with `[CLS]` pooling, under padding.
//!
//! The fixture comes from tests/fixtures/encoder_fixtures.py.

use std::path::PathBuf;

use serde_json::Value;
use strata_models::{TransformerEncoderClassifier, TransformerEncoderClassifierConfig};
use strata_nn_layers::load_state_dict;
use strata_tensor::{Generator, IndexTensor, Tensor};

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/encoder.json")).expect("valid fixture JSON")
}

fn rows(v: &Value) -> (Vec<usize>, Vec<usize>) {
    let rows = v.as_array().unwrap();
    let data = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap() as usize)
        })
        .collect();
    (data, vec![rows.len(), rows[0].as_array().unwrap().len()])
}

fn check(variant: &str) {
    let fx = fixture();
    let case = &fx["variants"][variant];
    let config: TransformerEncoderClassifierConfig =
        serde_json::from_value(case["config"].clone()).expect("a classifier config");
    let model = TransformerEncoderClassifier::<f32>::new(&config, &mut Generator::new(0)).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{variant}.safetensors"));
    load_state_dict(&model, &path).unwrap();
    let (ids, shape) = rows(&fx["idx"]);
    let (pad, _) = rows(&fx["key_padding_mask"]);
    let idx = IndexTensor::from_vec(ids, &shape).unwrap();
    let mask = Tensor::from_vec(pad.iter().map(|&p| p as f32).collect(), &shape).unwrap();

    let logits = model.forward(&idx, Some(&mask)).unwrap().value().to_vec();

    let want: Vec<f64> = case["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(logits.len(), want.len());
    for (i, (&g, &w)) in logits.iter().zip(&want).enumerate() {
        // 1e-5 relative, a little looser in absolute terms: the layers accumulate in another
        // order than PyTorch's fused kernels.
        let tol = 1e-5 * w.abs().max(1.0) + 2e-6;
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "{variant}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn post_norm_mean_pooling_matches_pytorch() {
    check("encoder_post_mean");
}

#[test]
fn pre_norm_cls_pooling_matches_pytorch() {
    check("encoder_pre_cls");
}
