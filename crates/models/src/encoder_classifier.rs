//! `TransformerEncoderClassifier`: a Transformer encoder over token ids with a linear head,
//! for sequence classification.

use serde::{Deserialize, Serialize};
use strata_attention::MultiheadAttentionConfig;
use strata_attention::{KeyPaddingMask, MhaForwardOptions, MultiheadAttention};
use strata_autograd::Var;
use strata_nn_layers::{
    prefixed, Dropout, Embedding, Forward, LayerNorm, LayerNormConfig, Linear, Module,
};
use strata_tensor::{Element, Generator, IndexTensor, Tensor};

use crate::error::{ModelError, Result};
use crate::mlp::Activation;
use crate::parts::check_tokens;

/// How the encoder's outputs become one vector per sequence; serialized in snake case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean over the positions that are not padding. The default.
    #[default]
    Mean,
    /// The output at a learned `[CLS]` token prepended to every sequence (BERT, ViT).
    Cls,
}

/// The configuration of a [`TransformerEncoderClassifier`].
///
/// The default is a small text classifier: vocabulary 10000, sequences up to 256 tokens,
/// width 128, 4 heads, 2 post-norm layers (PyTorch's `nn.TransformerEncoderLayer` default)
/// with feed-forward width 512, ReLU, dropout 0.1, mean pooling, 2 classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransformerEncoderClassifierConfig {
    /// Number of token ids. Default 10000.
    pub vocab_size: usize,
    /// The longest sequence accepted (not counting the `[CLS]` token). Default 256.
    pub max_len: usize,
    /// Width of the model. Default 128.
    pub d_model: usize,
    /// Attention heads per layer; must divide `d_model`. Default 4.
    pub n_head: usize,
    /// Number of encoder layers. Default 2.
    pub n_layer: usize,
    /// Hidden width of each feed-forward block. Default 512.
    pub dim_feedforward: usize,
    /// Dropout after the embeddings, on attention weights, inside and after each sub-block,
    /// in training mode. Default 0.1.
    pub dropout: f64,
    /// The feed-forward nonlinearity. Default ReLU, as PyTorch's encoder layer.
    pub activation: Activation,
    /// Pre-norm layers (LayerNorm before each sub-block, and a final LayerNorm) instead of
    /// post-norm ones. Default false, as PyTorch's `norm_first`.
    pub norm_first: bool,
    /// How outputs are pooled per sequence. Default mean pooling.
    pub pooling: Pooling,
    /// Number of classes of the head. Default 2.
    pub num_classes: usize,
    /// Epsilon of every LayerNorm. Default 1e-5.
    pub layer_norm_eps: f64,
}

impl Default for TransformerEncoderClassifierConfig {
    fn default() -> Self {
        Self {
            vocab_size: 10000,
            max_len: 256,
            d_model: 128,
            n_head: 4,
            n_layer: 2,
            dim_feedforward: 512,
            dropout: 0.1,
            activation: Activation::Relu,
            norm_first: false,
            pooling: Pooling::Mean,
            num_classes: 2,
            layer_norm_eps: 1e-5,
        }
    }
}

impl TransformerEncoderClassifierConfig {
    /// Checks that the sizes are usable.
    ///
    /// # Errors
    /// [`ModelError::Config`] if a size is zero, `n_head` does not divide `d_model`, or
    /// `dropout` is outside `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(ModelError::Config {
                model: "transformer_encoder_classifier",
                reason,
            })
        };
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("max_len", self.max_len),
            ("d_model", self.d_model),
            ("n_head", self.n_head),
            ("dim_feedforward", self.dim_feedforward),
            ("num_classes", self.num_classes),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{name} must be positive"));
        }
        if self.d_model % self.n_head != 0 {
            return bad(format!(
                "d_model {} is not a multiple of n_head {}",
                self.d_model, self.n_head
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }
}

/// A Transformer encoder classifier.
///
/// ```text
/// idx (B, T) token ids, T <= max_len;  key_padding_mask (B, T), non-zero = padding
/// x = dropout(embedding[idx] + pos_embedding[0..T])          (B, T, D)
/// Cls pooling: x = [cls_token; x]                            (B, T + 1, D)
/// each layer (post-norm):  x = norm1(x + drop1(self_attn(x)))
///                          x = norm2(x + drop2(linear2(drop(act(linear1(x))))))
/// each layer (pre-norm):   x = x + drop1(self_attn(norm1(x)))
///                          x = x + drop2(linear2(drop(act(linear1(norm2(x))))))
///                          and after the last layer x = encoder.norm(x)
/// pooled = mean of x over non-padding positions, or x[:, 0] for Cls     (B, D)
/// logits = head(pooled)                                      (B, num_classes)
/// ```
///
/// Self-attention ignores padded keys. Layer parameters are named as PyTorch's
/// `nn.TransformerEncoder` names them (`encoder.layers.0.self_attn.in_proj_weight`,
/// `encoder.layers.0.linear1.weight`, `encoder.layers.0.norm1.weight`, `encoder.norm.weight`
/// for pre-norm); the model adds `embedding.weight`, `pos_embedding`, `cls_token` (Cls
/// pooling only) and `head`. Layers start as PyTorch's do; the positional table and the
/// `[CLS]` token from `normal(0, 0.02)`.
///
/// ```
/// use strata_models::{Pooling, TransformerEncoderClassifier, TransformerEncoderClassifierConfig};
/// use strata_tensor::{Generator, IndexTensor};
///
/// let config = TransformerEncoderClassifierConfig { vocab_size: 20, max_len: 8, d_model: 8,
///     n_head: 2, n_layer: 1, dim_feedforward: 16, pooling: Pooling::Cls,
///     ..TransformerEncoderClassifierConfig::default() };
/// let model = TransformerEncoderClassifier::<f32>::new(&config, &mut Generator::new(0))?;
/// let idx = IndexTensor::from_vec(vec![5, 6, 7, 0, 9, 0, 0, 0], &[2, 4])?;
/// let mask = TransformerEncoderClassifier::<f32>::padding_mask(&idx, 0);
/// let logits = model.forward(&idx, Some(&mask))?;
/// assert_eq!(logits.shape(), &[2, 2]);
/// # Ok::<(), strata_models::ModelError>(())
/// ```
#[derive(Debug)]
pub struct TransformerEncoderClassifier<T: Element> {
    config: TransformerEncoderClassifierConfig,
    embedding: Embedding<T>,
    pos_embedding: Var<T>,
    cls_token: Option<Var<T>>,
    dropout: Dropout<T>,
    layers: Vec<EncoderLayer<T>>,
    norm: Option<LayerNorm<T>>,
    head: Linear<T>,
}

/// One layer of PyTorch's `nn.TransformerEncoderLayer`.
#[derive(Debug)]
struct EncoderLayer<T: Element> {
    self_attn: MultiheadAttention<T>,
    linear1: Linear<T>,
    linear2: Linear<T>,
    norm1: LayerNorm<T>,
    norm2: LayerNorm<T>,
    dropout: Dropout<T>,
    dropout1: Dropout<T>,
    dropout2: Dropout<T>,
    activation: Activation,
    norm_first: bool,
}

impl<T: Element> TransformerEncoderClassifier<T> {
    /// Builds the model, drawing weights and dropout seeds from `gen`.
    ///
    /// # Errors
    /// [`ModelError::Config`] if the config is invalid.
    pub fn new(config: &TransformerEncoderClassifierConfig, gen: &mut Generator) -> Result<Self> {
        config.validate()?;
        let d = config.d_model;
        let std = T::from_f64(0.02);
        let norm_config = LayerNormConfig {
            eps: config.layer_norm_eps,
            ..LayerNormConfig::default()
        };
        let embedding = Embedding::new(config.vocab_size, d, gen);
        let pos_embedding = Var::parameter(gen.normal(&[config.max_len, d], T::zero(), std));
        let cls_token = (config.pooling == Pooling::Cls)
            .then(|| Var::parameter(gen.normal(&[1, 1, d], T::zero(), std)));
        let dropout = dropout(config.dropout, gen)?;
        let layers = (0..config.n_layer)
            .map(|_| EncoderLayer::new(config, norm_config, gen))
            .collect::<Result<_>>()?;
        Ok(Self {
            config: config.clone(),
            embedding,
            pos_embedding,
            cls_token,
            dropout,
            layers,
            norm: config
                .norm_first
                .then(|| LayerNorm::with_config(&[d], norm_config)),
            head: Linear::new(d, config.num_classes, gen),
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &TransformerEncoderClassifierConfig {
        &self.config
    }

    /// Class logits for a batch of token sequences.
    ///
    /// `key_padding_mask` marks padding the way PyTorch's `src_key_padding_mask` does:
    /// non-zero (true) where the token is padding. Padded positions are ignored as attention
    /// keys and left out of mean pooling, so their ids do not change the result. A row that
    /// is all padding pools to zeros under mean pooling.
    ///
    /// # Shapes
    /// - `idx`: `(B, T)` with `1 <= T <= max_len`; `key_padding_mask`: `(B, T)`
    /// - output: `(B, num_classes)`
    ///
    /// # Errors
    /// [`ModelError::Input`] for a wrong shape or an id outside the vocabulary.
    pub fn forward(
        &self,
        idx: &IndexTensor,
        key_padding_mask: Option<&Tensor<T>>,
    ) -> Result<Var<T>> {
        self.check_inputs(idx, key_padding_mask)?;
        let (b_sz, seq_len, d) = (idx.shape()[0], idx.shape()[1], self.config.d_model);
        let tok = self.embedding.forward(idx)?;
        let mut xs = tok.add(&self.pos_embedding.narrow(0, 0, seq_len)?)?;
        let mut pad =
            key_padding_mask.map(|m| m.map(|v| if v != T::zero() { T::one() } else { T::zero() }));
        if let Some(cls) = &self.cls_token {
            let cls = cls.broadcast_to(&[b_sz, 1, d])?;
            xs = Var::concat(&[&cls, &xs], 1)?;
            pad = match pad {
                Some(p) => Some(Tensor::concat(&[&Tensor::zeros(&[b_sz, 1]), &p], 1)?),
                None => None,
            };
        }
        let mut xs = self.dropout.forward(&xs)?;
        let mask = pad.clone().map(KeyPaddingMask::Ignore);
        for layer in &self.layers {
            xs = layer.forward(&xs, mask.as_ref())?;
        }
        if let Some(norm) = &self.norm {
            xs = norm.forward(&xs)?;
        }
        let pooled = match (self.config.pooling, &pad) {
            (Pooling::Cls, _) => xs.narrow(1, 0, 1)?.squeeze_dim(1)?,
            (Pooling::Mean, None) => xs.mean(&[1])?,
            (Pooling::Mean, Some(pad)) => {
                let keep = pad.map(|p| T::one() - p);
                let counts = keep
                    .sum(&[1])?
                    .map(|c| c.max(T::one()))
                    .reshape(&[b_sz, 1])?;
                let weights = keep.reshape(&[b_sz, xs.shape()[1], 1])?;
                xs.mul(&Var::new(weights))?
                    .sum(&[1])?
                    .div(&Var::new(counts))?
            }
        };
        Ok(self.head.forward(&pooled)?)
    }

    /// A padding mask for `forward`: 1 where `idx` holds `pad_id`, 0 elsewhere.
    ///
    /// # Shapes
    /// - `idx`: any shape; output: the same shape
    pub fn padding_mask(idx: &IndexTensor, pad_id: usize) -> Tensor<T> {
        let data = idx
            .as_slice()
            .iter()
            .map(|&t| if t == pad_id { T::one() } else { T::zero() })
            .collect();
        Tensor::from_vec(data, idx.shape()).expect("bug: same shape as idx")
    }

    fn check_inputs(&self, idx: &IndexTensor, mask: Option<&Tensor<T>>) -> Result<()> {
        let model = "transformer_encoder_classifier";
        let ok = idx.ndim() == 2 && idx.numel() > 0 && idx.shape()[1] <= self.config.max_len;
        if !ok {
            return Err(ModelError::Input {
                model,
                reason: format!(
                    "expected non-empty (batch, seq) ids with seq <= {}, got {:?}",
                    self.config.max_len,
                    idx.shape()
                ),
            });
        }
        if let Some(mask) = mask {
            if mask.shape() != idx.shape() {
                return Err(ModelError::Input {
                    model,
                    reason: format!(
                        "key_padding_mask shape {:?} differs from idx shape {:?}",
                        mask.shape(),
                        idx.shape()
                    ),
                });
            }
        }
        check_tokens(model, idx, self.config.vocab_size)
    }
}

/// Dropout seeded from `gen`.
fn dropout<T: Element>(p: f64, gen: &mut Generator) -> Result<Dropout<T>> {
    Ok(Dropout::with_generator(p, Generator::new(gen.next_u64()))?)
}

impl<T: Element> EncoderLayer<T> {
    fn new(
        config: &TransformerEncoderClassifierConfig,
        norm: LayerNormConfig,
        gen: &mut Generator,
    ) -> Result<Self> {
        let d = config.d_model;
        let mut attn = MultiheadAttentionConfig::new(d, config.n_head);
        attn.dropout = config.dropout;
        attn.batch_first = true;
        Ok(Self {
            self_attn: MultiheadAttention::new(attn, gen)?,
            linear1: Linear::new(d, config.dim_feedforward, gen),
            linear2: Linear::new(config.dim_feedforward, d, gen),
            norm1: LayerNorm::with_config(&[d], norm),
            norm2: LayerNorm::with_config(&[d], norm),
            dropout: dropout(config.dropout, gen)?,
            dropout1: dropout(config.dropout, gen)?,
            dropout2: dropout(config.dropout, gen)?,
            activation: config.activation,
            norm_first: config.norm_first,
        })
    }

    fn forward(&self, xs: &Var<T>, mask: Option<&KeyPaddingMask<T>>) -> Result<Var<T>> {
        if self.norm_first {
            let xs = xs.add(&self.attention(&self.norm1.forward(xs)?, mask)?)?;
            Ok(xs.add(&self.feed_forward(&self.norm2.forward(&xs)?)?)?)
        } else {
            let xs = self.norm1.forward(&xs.add(&self.attention(xs, mask)?)?)?;
            Ok(self.norm2.forward(&xs.add(&self.feed_forward(&xs)?)?)?)
        }
    }

    fn attention(&self, xs: &Var<T>, mask: Option<&KeyPaddingMask<T>>) -> Result<Var<T>> {
        let options = MhaForwardOptions {
            key_padding_mask: mask.cloned(),
            need_weights: false,
            ..MhaForwardOptions::default()
        };
        let (out, _) = self.self_attn.forward(xs, xs, xs, &options)?;
        Ok(self.dropout1.forward(&out)?)
    }

    fn feed_forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let hidden = self.activation.apply(&self.linear1.forward(xs)?);
        let out = self.linear2.forward(&self.dropout.forward(&hidden)?)?;
        Ok(self.dropout2.forward(&out)?)
    }
}

impl<T: Element> Module<T> for EncoderLayer<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        self.self_attn
            .visit_parameters(&prefixed(prefix, "self_attn"), f);
        self.linear1
            .visit_parameters(&prefixed(prefix, "linear1"), f);
        self.linear2
            .visit_parameters(&prefixed(prefix, "linear2"), f);
        self.norm1.visit_parameters(&prefixed(prefix, "norm1"), f);
        self.norm2.visit_parameters(&prefixed(prefix, "norm2"), f);
    }

    fn set_training(&mut self, training: bool) {
        self.self_attn.set_training(training);
        for d in [&mut self.dropout, &mut self.dropout1, &mut self.dropout2] {
            Module::<T>::set_training(d, training);
        }
    }
}

impl<T: Element> Module<T> for TransformerEncoderClassifier<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        if let Some(cls) = &self.cls_token {
            f(&prefixed(prefix, "cls_token"), cls);
        }
        self.embedding
            .visit_parameters(&prefixed(prefix, "embedding"), f);
        f(&prefixed(prefix, "pos_embedding"), &self.pos_embedding);
        let layers = prefixed(prefix, "encoder.layers");
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_parameters(&prefixed(&layers, &i.to_string()), f);
        }
        if let Some(norm) = &self.norm {
            norm.visit_parameters(&prefixed(prefix, "encoder.norm"), f);
        }
        self.head.visit_parameters(&prefixed(prefix, "head"), f);
    }

    fn set_training(&mut self, training: bool) {
        Module::<T>::set_training(&mut self.dropout, training);
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_nn_layers::cross_entropy;

    use super::*;
    use strata_optim::Optimizer;

    use crate::testing::adam;

    fn tiny(pooling: Pooling, norm_first: bool) -> TransformerEncoderClassifierConfig {
        TransformerEncoderClassifierConfig {
            vocab_size: 12,
            max_len: 6,
            d_model: 16,
            n_head: 2,
            n_layer: 2,
            dim_feedforward: 32,
            dropout: 0.0,
            activation: Activation::Gelu,
            norm_first,
            pooling,
            num_classes: 3,
            layer_norm_eps: 1e-5,
        }
    }

    fn batch() -> (IndexTensor, Tensor<f32>, IndexTensor) {
        // 0 is padding
        let ids = vec![
            3, 4, 5, 6, 0, 0, //
            7, 7, 2, 0, 0, 0, //
            1, 9, 10, 11, 8, 3, //
            5, 0, 0, 0, 0, 0,
        ];
        let idx = IndexTensor::from_vec(ids, &[4, 6]).unwrap();
        let mask = TransformerEncoderClassifier::<f32>::padding_mask(&idx, 0);
        (idx, mask, IndexTensor::from_slice(&[0, 1, 2, 1]))
    }

    #[test]
    fn names_follow_pytorch_encoder_layers() {
        let model = TransformerEncoderClassifier::<f32>::new(
            &tiny(Pooling::Cls, true),
            &mut Generator::new(0),
        )
        .unwrap();

        let names: Vec<String> = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();

        assert_eq!(
            names[..3],
            ["cls_token", "embedding.weight", "pos_embedding"]
        );
        assert_eq!(
            names[3..15],
            [
                "encoder.layers.0.self_attn.in_proj_weight",
                "encoder.layers.0.self_attn.in_proj_bias",
                "encoder.layers.0.self_attn.out_proj.weight",
                "encoder.layers.0.self_attn.out_proj.bias",
                "encoder.layers.0.linear1.weight",
                "encoder.layers.0.linear1.bias",
                "encoder.layers.0.linear2.weight",
                "encoder.layers.0.linear2.bias",
                "encoder.layers.0.norm1.weight",
                "encoder.layers.0.norm1.bias",
                "encoder.layers.0.norm2.weight",
                "encoder.layers.0.norm2.bias",
            ]
        );
        assert_eq!(
            names[names.len() - 4..],
            [
                "encoder.norm.weight",
                "encoder.norm.bias",
                "head.weight",
                "head.bias"
            ]
        );
    }

    #[test]
    fn padded_positions_do_not_change_the_logits() {
        for (pooling, norm_first) in [(Pooling::Mean, false), (Pooling::Cls, true)] {
            let model = TransformerEncoderClassifier::<f64>::new(
                &tiny(pooling, norm_first),
                &mut Generator::new(1),
            )
            .unwrap();
            let a = IndexTensor::from_vec(vec![3, 4, 5, 0, 0], &[1, 5]).unwrap();
            let b = IndexTensor::from_vec(vec![3, 4, 5, 9, 11], &[1, 5]).unwrap();
            let mask = Tensor::from_vec(vec![0.0, 0.0, 0.0, 1.0, 1.0], &[1, 5]).unwrap();

            let ya = model.forward(&a, Some(&mask)).unwrap().value().to_vec();
            let yb = model.forward(&b, Some(&mask)).unwrap().value().to_vec();
            let unmasked = model.forward(&b, None).unwrap().value().to_vec();

            for (x, y) in ya.iter().zip(&yb) {
                assert!((x - y).abs() < 1e-12, "{pooling:?}: {ya:?} vs {yb:?}");
            }
            assert_ne!(ya, unmasked);
        }
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let model = TransformerEncoderClassifier::<f32>::new(
            &tiny(Pooling::Mean, false),
            &mut Generator::new(0),
        )
        .unwrap();
        let idx = IndexTensor::from_vec(vec![1; 7], &[1, 7]).unwrap();
        let (ok_idx, _, _) = batch();

        let too_long = model.forward(&idx, None);
        let bad_mask = model.forward(&ok_idx, Some(&Tensor::zeros(&[4, 5])));

        assert!(matches!(too_long, Err(ModelError::Input { .. })));
        assert!(matches!(bad_mask, Err(ModelError::Input { .. })));
        let config = TransformerEncoderClassifierConfig {
            n_head: 3,
            ..tiny(Pooling::Mean, false)
        };
        let err = TransformerEncoderClassifier::<f32>::new(&config, &mut Generator::new(0));
        assert!(matches!(err, Err(ModelError::Config { .. })));
    }

    #[test]
    fn training_drives_the_loss_to_zero() {
        for (pooling, norm_first) in [(Pooling::Mean, false), (Pooling::Cls, true)] {
            let model = TransformerEncoderClassifier::<f32>::new(
                &tiny(pooling, norm_first),
                &mut Generator::new(2),
            )
            .unwrap();
            let (idx, mask, labels) = batch();
            let mut adam = adam(model.parameters(), 1e-2);

            let mut loss = f32::INFINITY;
            for _ in 0..40 {
                adam.zero_grad();
                let logits = model.forward(&idx, Some(&mask)).unwrap();
                let l = cross_entropy(&logits, &labels).unwrap();
                l.backward().unwrap();
                adam.step().unwrap();
                loss = l.value().item().unwrap();
            }

            assert!(
                loss < 0.05,
                "{pooling:?}, norm_first {norm_first}: loss {loss}"
            );
        }
    }

    #[test]
    fn dropout_follows_the_mode() {
        let config = TransformerEncoderClassifierConfig {
            dropout: 0.3,
            ..tiny(Pooling::Mean, false)
        };
        let mut model =
            TransformerEncoderClassifier::<f32>::new(&config, &mut Generator::new(3)).unwrap();
        let (idx, mask, _) = batch();

        let a = model.forward(&idx, Some(&mask)).unwrap().value().to_vec();
        let b = model.forward(&idx, Some(&mask)).unwrap().value().to_vec();
        model.eval();
        let c = model.forward(&idx, Some(&mask)).unwrap().value().to_vec();
        let d = model.forward(&idx, Some(&mask)).unwrap().value().to_vec();

        assert_ne!(a, b);
        assert_eq!(c, d);
    }
}
