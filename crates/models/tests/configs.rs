//! Model configs: defaults are valid, every config round-trips through JSON, and a partial
//! JSON object takes the defaults for the fields it leaves out.

use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_models::{
    Activation, CellKind, CharRnnConfig, FitConfig, GanConfig, GptConfig, LeNetConfig,
    LinearRegressionConfig, MlpConfig, Pooling, SamplingConfig, TransformerEncoderClassifierConfig,
};

fn round_trip<C: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(config: &C) {
    let text = serde_json::to_string(config).unwrap();
    let back: C = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, config, "{text}");
}

#[test]
fn default_configs_round_trip_through_json() {
    round_trip(&GptConfig::default());
    round_trip(&MlpConfig::default());
    round_trip(&LeNetConfig::default());
    round_trip(&LinearRegressionConfig::default());
    round_trip(&FitConfig::default());
    round_trip(&CharRnnConfig::default());
    round_trip(&TransformerEncoderClassifierConfig::default());
    round_trip(&GanConfig::default());
    round_trip(&SamplingConfig::default());
}

#[test]
fn default_configs_are_valid() {
    GptConfig::default().validate().unwrap();
    MlpConfig::default().validate().unwrap();
    TransformerEncoderClassifierConfig::default()
        .validate()
        .unwrap();
    SamplingConfig::default().validate().unwrap();
}

#[test]
fn gpt2_small_is_the_default() {
    let config = GptConfig::default();

    assert_eq!(
        (
            config.n_layer,
            config.n_head,
            config.n_embd,
            config.block_size
        ),
        (12, 12, 768, 1024)
    );
    assert_eq!(config.head_dim(), 64);
}

#[test]
fn partial_json_takes_the_defaults() {
    let gpt: GptConfig = serde_json::from_str(r#"{"n_layer": 2, "bias": false}"#).unwrap();
    let rnn: CharRnnConfig = serde_json::from_str(r#"{"cell": "gru"}"#).unwrap();
    let enc: TransformerEncoderClassifierConfig =
        serde_json::from_str(r#"{"pooling": "cls", "activation": "gelu"}"#).unwrap();
    let gan: GanConfig = serde_json::from_str(
        r#"{"discriminator_activation": {"leaky_relu": {"negative_slope": 0.1}}}"#,
    )
    .unwrap();

    assert_eq!(
        gpt,
        GptConfig {
            n_layer: 2,
            bias: false,
            ..GptConfig::default()
        }
    );
    assert_eq!(rnn.cell, CellKind::Gru);
    assert_eq!(rnn.hidden_size, CharRnnConfig::default().hidden_size);
    assert_eq!(
        (enc.pooling, enc.activation),
        (Pooling::Cls, Activation::Gelu)
    );
    assert_eq!(
        gan.discriminator_activation,
        Activation::LeakyRelu {
            negative_slope: 0.1
        }
    );
}
