//! GPT: a decoder-only Transformer language model in the layout of GPT-2 and nanoGPT.
//!
//! Parameter names match nanoGPT's `GPT` module (`transformer.wte`, `transformer.h.0.attn.
//! c_attn`, `lm_head`), so a state dict saved by PyTorch loads here and the other way round.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use strata_attention::{causal_bias, scaled_dot_product_attention, AttnMask, SdpaOptions};
use strata_autograd::{no_grad, Var};
use strata_nn_layers::{
    cross_entropy, prefixed, Forward, LayerNorm, LayerNormConfig, Linear, Module,
};
use strata_tensor::{Element, Generator, IndexTensor, Tensor};

use crate::error::{ModelError, Result};
use crate::parts::{check_tokens, normal_linear, Dropout};
use crate::sampling::SamplingConfig;
use crate::state;

/// The configuration of a [`Gpt`].
///
/// The default is nanoGPT's `GPTConfig`: GPT-2 small (124M parameters) with the vocabulary
/// padded from 50257 to 50304 for faster matrix products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GptConfig {
    /// Number of token ids; ids are `0..vocab_size`. Default 50304.
    pub vocab_size: usize,
    /// The context length: the most positions one forward pass sees. Default 1024.
    pub block_size: usize,
    /// Number of Transformer blocks. Default 12.
    pub n_layer: usize,
    /// Number of attention heads per block; must divide `n_embd`. Default 12.
    pub n_head: usize,
    /// Width of the residual stream (the embedding size). Default 768.
    pub n_embd: usize,
    /// Dropout probability after the embeddings, on attention weights and on each residual
    /// branch, in training mode only. Default 0.0.
    pub dropout: f64,
    /// Whether Linear and LayerNorm layers have biases (GPT-2 has them). Default true.
    pub bias: bool,
}

impl Default for GptConfig {
    fn default() -> Self {
        Self {
            vocab_size: 50304,
            block_size: 1024,
            n_layer: 12,
            n_head: 12,
            n_embd: 768,
            dropout: 0.0,
            bias: true,
        }
    }
}

impl GptConfig {
    /// Checks that the sizes are usable.
    ///
    /// # Errors
    /// [`ModelError::Config`] if a size is zero, `n_embd` is not a multiple of `n_head`, or
    /// `dropout` is outside `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(ModelError::Config {
                model: "gpt",
                reason,
            })
        };
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{name} must be positive"));
        }
        if self.n_embd % self.n_head != 0 {
            return bad(format!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd, self.n_head
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    /// The width of one attention head, `n_embd / n_head`.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// A GPT-2 style decoder-only language model (nanoGPT's `GPT`).
///
/// ```text
/// idx (B, T) token ids, T <= block_size
/// x = drop(wte[idx] + wpe[0..T])                       (B, T, C)      C = n_embd
/// for each block h.i:
///     x = x + attn(ln_1(x))                            causal self-attention, n_head heads
///     x = x + mlp(ln_2(x))                             C -> 4C -> GELU (erf) -> C
/// logits = ln_f(x) @ wte^T                             (B, T, vocab)  lm_head tied to wte
///
/// attn(x): q, k, v = split(c_attn(x), C)               (B, T, 3C) -> 3 x (B, n_head, T, hd)
///          y = softmax(q k^T / sqrt(hd) + causal mask) v          (B, n_head, T, hd)
///          out = drop(c_proj(merge heads(y)))          (B, T, C)
/// ```
///
/// The language-model head shares its weight with the token embedding (one variable):
/// [`Module::visit_parameters`] names it once, `transformer.wte.weight`, as PyTorch's
/// `named_parameters` does, while [`Gpt::state_dict`] holds it under both names. Save and
/// load with [`Gpt::save_safetensors`] and [`Gpt::load_safetensors`] for files that PyTorch's
/// `load_state_dict` takes as they are; the generic state-dict functions of
/// `strata-nn-layers` see the parameters only, so they leave `lm_head.weight` out (and reject
/// it as unexpected when reading a PyTorch file).
///
/// Initialisation follows GPT-2: Linear and Embedding weights from `normal(0, 0.02)`, biases
/// zero, LayerNorm weight one, and the residual projections (`c_proj` of attention and MLP)
/// from `normal(0, 0.02 / sqrt(2 n_layer))`.
///
/// ```
/// use strata_models::{Gpt, GptConfig, SamplingConfig};
/// use strata_tensor::{Generator, IndexTensor};
///
/// let config = GptConfig { vocab_size: 11, block_size: 8, n_layer: 1, n_head: 2, n_embd: 8,
///     ..GptConfig::default() };
/// let mut gen = Generator::new(0);
/// let model = Gpt::<f32>::new(&config, &mut gen)?;
/// let idx = IndexTensor::from_vec(vec![1, 2, 3, 4], &[2, 2])?;
/// let loss = model.loss(&idx, &IndexTensor::from_vec(vec![2, 3, 4, 5], &[2, 2])?)?;
/// loss.backward()?;
/// let out = model.generate(&idx, 3, &SamplingConfig::default(), &mut gen)?;
/// assert_eq!(out.shape(), &[2, 5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Gpt<T: Element> {
    config: GptConfig,
    wte: Var<T>,
    wpe: Var<T>,
    drop: Dropout,
    blocks: Vec<Block<T>>,
    ln_f: LayerNorm<T>,
    training: bool,
}

/// One pre-LayerNorm Transformer block.
#[derive(Debug)]
struct Block<T: Element> {
    ln_1: LayerNorm<T>,
    attn: CausalSelfAttention<T>,
    ln_2: LayerNorm<T>,
    mlp: FeedForward<T>,
}

/// Multi-head causal self-attention with one fused projection for q, k and v.
#[derive(Debug)]
struct CausalSelfAttention<T: Element> {
    c_attn: Linear<T>,
    c_proj: Linear<T>,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    n_head: usize,
}

/// The position-wise MLP: `c_fc`, GELU, `c_proj`, dropout.
#[derive(Debug)]
struct FeedForward<T: Element> {
    c_fc: Linear<T>,
    c_proj: Linear<T>,
    dropout: Dropout,
}

/// Keys and values of every block for the positions seen so far, for incremental decoding.
///
/// Fill it with [`Gpt::forward_with_cache`]; each call appends the keys and values of its new
/// positions. It holds plain tensors (no graph), so use it under `no_grad` or for inference.
#[derive(Debug, Clone, Default)]
pub struct GptCache<T: Element> {
    layers: Vec<Option<(Tensor<T>, Tensor<T>)>>,
}

impl<T: Element> GptCache<T> {
    /// An empty cache.
    pub fn new() -> Self {
        Self { layers: Vec::new() }
    }

    /// The number of positions cached.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.shape()[2],
            _ => 0,
        }
    }

    /// Whether no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cached position.
    pub fn clear(&mut self) {
        self.layers.clear();
    }
}

impl<T: Element> Gpt<T> {
    /// Builds a model from `config`, drawing the initial weights from `gen`.
    ///
    /// # Errors
    /// [`ModelError::Config`] if the config is invalid (see [`GptConfig::validate`]).
    pub fn new(config: &GptConfig, gen: &mut Generator) -> Result<Self> {
        config.validate()?;
        let c = config.n_embd;
        let std = 0.02;
        let proj_std = 0.02 / (2.0 * config.n_layer as f64).sqrt();
        let zero = T::zero();
        let wte = Var::parameter(gen.normal(&[config.vocab_size, c], zero, T::from_f64(std)));
        let wpe = Var::parameter(gen.normal(&[config.block_size, c], zero, T::from_f64(std)));
        let drop = Dropout::new(config.dropout, gen);
        let blocks = (0..config.n_layer)
            .map(|_| -> Result<Block<T>> {
                Ok(Block {
                    ln_1: layer_norm(c, config.bias),
                    attn: CausalSelfAttention {
                        c_attn: normal_linear(c, 3 * c, config.bias, std, gen)?,
                        c_proj: normal_linear(c, c, config.bias, proj_std, gen)?,
                        attn_dropout: Dropout::new(config.dropout, gen),
                        resid_dropout: Dropout::new(config.dropout, gen),
                        n_head: config.n_head,
                    },
                    ln_2: layer_norm(c, config.bias),
                    mlp: FeedForward {
                        c_fc: normal_linear(c, 4 * c, config.bias, std, gen)?,
                        c_proj: normal_linear(4 * c, c, config.bias, proj_std, gen)?,
                        dropout: Dropout::new(config.dropout, gen),
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config: config.clone(),
            wte,
            wpe,
            drop,
            blocks,
            ln_f: layer_norm(c, config.bias),
            training: true,
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// Whether the model is in training mode (dropout active); true after construction.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Next-token logits for every position.
    ///
    /// # Shapes
    /// - `idx`: `(batch, seq)` token ids with `seq <= block_size`
    /// - output: `(batch, seq, vocab_size)`
    ///
    /// # Errors
    /// [`ModelError::Input`] if `idx` is not 2-D, is empty, is longer than `block_size`, or
    /// holds an id outside the vocabulary.
    pub fn forward(&self, idx: &IndexTensor) -> Result<Var<T>> {
        self.run(idx, None, self.training)
    }

    /// Logits for the new positions `idx`, attending to the positions already in `cache` too,
    /// and appending the new keys and values to it. Dropout is off.
    ///
    /// With an empty cache this equals [`Gpt::forward`] in evaluation mode; feeding a sequence
    /// one token at a time gives the same logits as one full forward pass.
    ///
    /// # Shapes
    /// - `idx`: `(batch, new)` token ids; `cache.len() + new <= block_size`
    /// - output: `(batch, new, vocab_size)`
    ///
    /// # Errors
    /// [`ModelError::Input`] as for [`Gpt::forward`], if the cached and new positions together
    /// exceed `block_size`, or if the batch size differs from the cached one.
    pub fn forward_with_cache(&self, idx: &IndexTensor, cache: &mut GptCache<T>) -> Result<Var<T>> {
        if !cache.is_empty() {
            if let Some(Some((k, _))) = cache.layers.first() {
                if idx.ndim() == 2 && k.shape()[0] != idx.shape()[0] {
                    return Err(ModelError::Input {
                        model: "gpt",
                        reason: format!(
                            "batch size {} differs from the cached batch size {}",
                            idx.shape()[0],
                            k.shape()[0]
                        ),
                    });
                }
            }
        }
        self.run(idx, Some(cache), false)
    }

    /// Mean cross entropy of the next-token predictions against `targets`.
    ///
    /// ```text
    /// loss = -1/(B T) sum_{b,t} log softmax(logits[b, t])[targets[b, t]]
    /// ```
    ///
    /// # Shapes
    /// - `idx`, `targets`: `(batch, seq)`; output: a scalar
    ///
    /// # Errors
    /// As for [`Gpt::forward`], and [`ModelError::Input`] if `targets` has another shape than
    /// `idx` or holds an id outside the vocabulary.
    pub fn loss(&self, idx: &IndexTensor, targets: &IndexTensor) -> Result<Var<T>> {
        if targets.shape() != idx.shape() {
            return Err(ModelError::Input {
                model: "gpt",
                reason: format!(
                    "targets shape {:?} differs from idx shape {:?}",
                    targets.shape(),
                    idx.shape()
                ),
            });
        }
        check_tokens("gpt", targets, self.config.vocab_size)?;
        let logits = self.forward(idx)?;
        let n = idx.numel();
        let flat = logits.reshape(&[n, self.config.vocab_size])?;
        Ok(cross_entropy(&flat, &targets.reshape(&[n])?)?)
    }

    /// Continues each row of `prompt` by `max_new_tokens` sampled tokens, nanoGPT's
    /// `generate`, with a KV cache and without recording a graph. Dropout is off.
    ///
    /// The prompt is run once to fill the cache (only its last `block_size` tokens when it is
    /// longer); each new token then costs one single-position forward pass. Once the context
    /// holds `block_size` tokens the cache is full and, like nanoGPT's cropping, each further
    /// step recomputes the last `block_size` tokens from scratch (positions restart at 0 for
    /// the cropped window, so a sliding cache would give different logits).
    ///
    /// # Shapes
    /// - `prompt`: `(batch, seq)` with `seq >= 1`; output: `(batch, seq + max_new_tokens)`
    ///
    /// # Errors
    /// [`ModelError::Input`] for an invalid prompt, [`ModelError::Config`] for an invalid
    /// sampling config.
    pub fn generate(
        &self,
        prompt: &IndexTensor,
        max_new_tokens: usize,
        sampling: &SamplingConfig,
        gen: &mut Generator,
    ) -> Result<IndexTensor> {
        sampling.validate()?;
        self.check_idx(prompt, usize::MAX)?;
        let _guard = no_grad();
        let (b_sz, prompt_len) = (prompt.shape()[0], prompt.shape()[1]);
        let block = self.config.block_size;
        let mut rows: Vec<Vec<usize>> = prompt
            .as_slice()
            .chunks(prompt_len)
            .map(<[usize]>::to_vec)
            .collect();
        let mut cache = GptCache::new();
        let mut logits = self.forward_with_cache(&window(&rows, block)?, &mut cache)?;
        for step in 0..max_new_tokens {
            let last = last_position(&logits.value())?;
            let mut next = Vec::with_capacity(b_sz);
            for (row, row_logits) in rows.iter_mut().zip(&last) {
                let token = sampling.sample(row_logits, gen)?;
                row.push(token);
                next.push(token);
            }
            if step + 1 == max_new_tokens {
                break;
            }
            logits = if cache.len() < block {
                self.forward_with_cache(&IndexTensor::from_vec(next, &[b_sz, 1])?, &mut cache)?
            } else {
                cache.clear();
                self.forward_with_cache(&window(&rows, block)?, &mut cache)?
            };
        }
        let total = prompt_len + max_new_tokens;
        Ok(IndexTensor::from_vec(rows.concat(), &[b_sz, total])?)
    }

    /// The parameters split for weight decay as nanoGPT's `configure_optimizers` does: every
    /// parameter with two or more dims (Linear weights, embeddings) decays, the others
    /// (biases, LayerNorm weights) do not. Returns `(decay, no_decay)`.
    pub fn param_groups_for_decay(&self) -> (Vec<Var<T>>, Vec<Var<T>>) {
        param_groups_for_decay(self)
    }

    /// Every tensor of the model by its PyTorch name, in PyTorch's `state_dict` order; the tied
    /// head weight appears twice, as `transformer.wte.weight` and as `lm_head.weight`.
    pub fn state_dict(&self) -> Vec<(String, Tensor<T>)> {
        let mut out: Vec<(String, Tensor<T>)> = self
            .named_parameters()
            .into_iter()
            .map(|(name, var)| (name, var.value()))
            .collect();
        out.push(("lm_head.weight".into(), self.wte.value()));
        out
    }

    /// Loads a state dict by name. The tied head weight may come as `transformer.wte.weight`,
    /// as `lm_head.weight`, or as both (then they must be equal).
    ///
    /// # Errors
    /// [`ModelError::StateDict`] listing every missing or unexpected name and every shape
    /// difference; nothing is changed then.
    pub fn load_state_dict(&self, dict: &HashMap<String, Tensor<T>>) -> Result<()> {
        let aliases = [("lm_head.weight", "transformer.wte.weight")];
        state::load_into(&self.named_parameters(), &aliases, dict)
    }

    /// Writes [`Gpt::state_dict`] to a safetensors file (in `T`'s dtype), atomically.
    ///
    /// # Errors
    /// [`ModelError::File`] if the file cannot be written.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        state::write_safetensors(path.as_ref(), &self.state_dict())
    }

    /// Loads weights from a safetensors file written here or by PyTorch's
    /// `safetensors.torch.save_file` (F32 or F64 tensors, converted to `T`).
    ///
    /// # Errors
    /// [`ModelError::File`] if the file cannot be read or parsed, and the errors of
    /// [`Gpt::load_state_dict`].
    pub fn load_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        self.load_state_dict(&state::read_safetensors(path.as_ref())?)
    }

    /// Checks the rank, length and ids of `idx`.
    fn check_idx(&self, idx: &IndexTensor, max_len: usize) -> Result<()> {
        let ok = idx.ndim() == 2 && idx.numel() > 0 && idx.shape()[1] <= max_len;
        if !ok {
            return Err(ModelError::Input {
                model: "gpt",
                reason: format!(
                    "expected non-empty (batch, seq) token ids with seq <= {max_len}, got {:?}",
                    idx.shape()
                ),
            });
        }
        check_tokens("gpt", idx, self.config.vocab_size)
    }

    /// The forward pass, with or without a cache.
    fn run(
        &self,
        idx: &IndexTensor,
        mut cache: Option<&mut GptCache<T>>,
        training: bool,
    ) -> Result<Var<T>> {
        let start = cache.as_ref().map_or(0, |c| c.len());
        self.check_idx(
            idx,
            self.config.block_size - start.min(self.config.block_size),
        )?;
        let seq_len = idx.shape()[1];
        let tok = self.wte.embedding(idx, None)?;
        let pos = self.wpe.narrow(0, start, seq_len)?;
        let mut xs = self.drop.forward(&tok.add(&pos)?, training)?;
        if let Some(cache) = cache.as_deref_mut() {
            cache.layers.resize(self.blocks.len(), None);
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            xs = block.forward(&xs, layer_cache, training)?;
        }
        let xs = self.ln_f.forward(&xs)?;
        // The head shares the token embedding's weight, read in place.
        Ok(xs.linear(&self.wte, None)?)
    }
}

impl<T: Element> Block<T> {
    fn forward(
        &self,
        xs: &Var<T>,
        cache: Option<&mut Option<(Tensor<T>, Tensor<T>)>>,
        training: bool,
    ) -> Result<Var<T>> {
        let xs = xs.add(
            &self
                .attn
                .forward(&self.ln_1.forward(xs)?, cache, training)?,
        )?;
        xs.add(&self.mlp.forward(&self.ln_2.forward(&xs)?, training)?)
            .map_err(Into::into)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        self.ln_1.visit_parameters(&prefixed(prefix, "ln_1"), f);
        self.attn
            .c_attn
            .visit_parameters(&prefixed(prefix, "attn.c_attn"), f);
        self.attn
            .c_proj
            .visit_parameters(&prefixed(prefix, "attn.c_proj"), f);
        self.ln_2.visit_parameters(&prefixed(prefix, "ln_2"), f);
        self.mlp
            .c_fc
            .visit_parameters(&prefixed(prefix, "mlp.c_fc"), f);
        self.mlp
            .c_proj
            .visit_parameters(&prefixed(prefix, "mlp.c_proj"), f);
    }
}

impl<T: Element> CausalSelfAttention<T> {
    /// `(B, T, C)` to `(B, T, C)`; with a cache, keys and values of earlier positions join.
    fn forward(
        &self,
        xs: &Var<T>,
        cache: Option<&mut Option<(Tensor<T>, Tensor<T>)>>,
        training: bool,
    ) -> Result<Var<T>> {
        let (b_sz, seq_len, c) = (xs.shape()[0], xs.shape()[1], xs.shape()[2]);
        let (n_heads, head_dim) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(xs)?;
        // Views: narrowing the last dim and splitting it into heads copies nothing.
        let heads = |i: usize| -> Result<Var<T>> {
            Ok(qkv
                .narrow(-1, i * c, c)?
                .reshape(&[b_sz, seq_len, n_heads, head_dim])?
                .transpose(1, 2)?)
        };
        let (q, mut k, mut v) = (heads(0)?, heads(1)?, heads(2)?);
        if let Some(slot) = cache {
            if let Some((k_past, v_past)) = slot.as_ref() {
                k = Var::new(Tensor::concat(&[k_past, &k.value()], 2)?);
                v = Var::new(Tensor::concat(&[v_past, &v.value()], 2)?);
            }
            *slot = Some((k.value(), v.value()));
        }
        let att = causal_attention(&q, &k, &v, &self.attn_dropout, training)?;
        let merged = att.transpose(1, 2)?.reshape(&[b_sz, seq_len, c])?;
        self.resid_dropout
            .forward(&self.c_proj.forward(&merged)?, training)
    }
}

impl<T: Element> FeedForward<T> {
    fn forward(&self, xs: &Var<T>, training: bool) -> Result<Var<T>> {
        let hidden = self.c_fc.forward(xs)?.gelu();
        self.dropout
            .forward(&self.c_proj.forward(&hidden)?, training)
    }
}

/// Causal scaled dot-product attention where query `i` of `T` sees keys `0..=i + (S - T)` of
/// `S` (the last `T` positions of a sequence whose first `S - T` are cached).
///
/// ```text
/// y = dropout(softmax(q k^T / sqrt(hd) + mask)) v,   mask[i, j] = -inf where j > i + S - T
/// ```
fn causal_attention<T: Element>(
    q: &Var<T>,
    k: &Var<T>,
    v: &Var<T>,
    dropout: &Dropout,
    training: bool,
) -> Result<Var<T>> {
    let (seq_q, seq_k) = (q.shape()[2], k.shape()[2]);
    let mut active = dropout.active(training);
    let mut options = SdpaOptions {
        dropout_p: active.as_ref().map_or(0.0, |(p, _)| *p),
        generator: active.as_mut().map(|(_, gen)| &mut **gen),
        ..SdpaOptions::default()
    };
    let mask = if seq_q == seq_k {
        options.is_causal = true;
        None
    } else if seq_q == 1 {
        None
    } else {
        let offset = (seq_k - seq_q) as isize;
        Some(AttnMask::Additive(causal_bias(seq_q, seq_k, offset)))
    };
    Ok(scaled_dot_product_attention(
        q,
        k,
        v,
        mask.as_ref(),
        options,
    )?)
}

/// A layer norm over `dim` features with PyTorch's defaults, with or without bias.
fn layer_norm<T: Element>(dim: usize, bias: bool) -> LayerNorm<T> {
    let config = LayerNormConfig {
        bias,
        ..LayerNormConfig::default()
    };
    LayerNorm::with_config(&[dim], config)
}

/// The last `block` tokens of each row, as a `(batch, len)` index tensor.
fn window(rows: &[Vec<usize>], block: usize) -> Result<IndexTensor> {
    let len = rows[0].len().min(block);
    let data: Vec<usize> = rows
        .iter()
        .flat_map(|r| r[r.len() - len..].iter().copied())
        .collect();
    Ok(IndexTensor::from_vec(data, &[rows.len(), len])?)
}

/// The logits of the last position of each row of `(B, T, V)` logits, in f64.
fn last_position<T: Element>(logits: &Tensor<T>) -> Result<Vec<Vec<f64>>> {
    let (b_sz, seq_len, vocab) = (logits.shape()[0], logits.shape()[1], logits.shape()[2]);
    let last = logits.narrow(1, seq_len - 1, 1)?.to_vec();
    Ok((0..b_sz)
        .map(|b| {
            last[b * vocab..(b + 1) * vocab]
                .iter()
                .map(|x| x.as_f64())
                .collect()
        })
        .collect())
}

/// Splits a module's parameters for weight decay as nanoGPT does: those with two or more dims
/// decay, the others do not. Returns `(decay, no_decay)`, each in parameter order.
pub fn param_groups_for_decay<T: Element>(module: &dyn Module<T>) -> (Vec<Var<T>>, Vec<Var<T>>) {
    module.parameters().into_iter().partition(|p| p.ndim() >= 2)
}

impl<T: Element> Module<T> for Gpt<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        let transformer = prefixed(prefix, "transformer");
        f(&prefixed(&transformer, "wte.weight"), &self.wte);
        f(&prefixed(&transformer, "wpe.weight"), &self.wpe);
        for (i, block) in self.blocks.iter().enumerate() {
            block.visit(&prefixed(&transformer, &format!("h.{i}")), f);
        }
        self.ln_f
            .visit_parameters(&prefixed(&transformer, "ln_f"), f);
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_optim::Optimizer;

    use crate::testing::adam;

    fn tiny() -> GptConfig {
        GptConfig {
            vocab_size: 11,
            block_size: 8,
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            dropout: 0.0,
            bias: true,
        }
    }

    fn tokens(data: &[usize], shape: &[usize]) -> IndexTensor {
        IndexTensor::from_vec(data.to_vec(), shape).unwrap()
    }

    #[test]
    fn parameter_names_follow_nanogpt() {
        let model = Gpt::<f32>::new(&tiny(), &mut Generator::new(0)).unwrap();

        let names: Vec<String> = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();

        assert_eq!(names.len(), 2 + 2 * 12 + 2);
        assert_eq!(names[0], "transformer.wte.weight");
        assert_eq!(names[1], "transformer.wpe.weight");
        assert_eq!(
            names[2..14],
            [
                "transformer.h.0.ln_1.weight",
                "transformer.h.0.ln_1.bias",
                "transformer.h.0.attn.c_attn.weight",
                "transformer.h.0.attn.c_attn.bias",
                "transformer.h.0.attn.c_proj.weight",
                "transformer.h.0.attn.c_proj.bias",
                "transformer.h.0.ln_2.weight",
                "transformer.h.0.ln_2.bias",
                "transformer.h.0.mlp.c_fc.weight",
                "transformer.h.0.mlp.c_fc.bias",
                "transformer.h.0.mlp.c_proj.weight",
                "transformer.h.0.mlp.c_proj.bias",
            ]
        );
        assert_eq!(names[names.len() - 1], "transformer.ln_f.bias");
        let dict = model.state_dict();
        assert_eq!(dict.last().unwrap().0, "lm_head.weight");
    }

    #[test]
    fn no_bias_config_has_no_biases() {
        let config = GptConfig {
            bias: false,
            ..tiny()
        };
        let model = Gpt::<f32>::new(&config, &mut Generator::new(0)).unwrap();

        let names: Vec<String> = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();

        assert!(names.iter().all(|n| !n.ends_with(".bias")), "{names:?}");
        assert_eq!(names.len(), 2 + 2 * 6 + 1);
    }

    #[test]
    fn init_follows_the_gpt2_recipe() {
        let config = GptConfig {
            vocab_size: 64,
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            ..tiny()
        };
        let model = Gpt::<f64>::new(&config, &mut Generator::new(1)).unwrap();
        let std = |t: &Tensor<f64>| {
            let v = t.to_vec();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };

        for (name, var) in model.named_parameters() {
            let value = var.value();
            if name.ends_with("bias") {
                assert!(value.to_vec().iter().all(|&x| x == 0.0), "{name}");
            } else if name.contains("ln_") {
                assert!(value.to_vec().iter().all(|&x| x == 1.0), "{name}");
            } else {
                let want = if name.ends_with("c_proj.weight") {
                    0.02 / 2.0
                } else {
                    0.02
                };
                let got = std(&value);
                assert!(
                    (got - want).abs() < 0.15 * want,
                    "{name}: std {got}, want {want}"
                );
            }
        }
    }

    #[test]
    fn lm_head_is_tied_to_the_token_embedding() {
        let model = Gpt::<f32>::new(&tiny(), &mut Generator::new(2)).unwrap();
        let idx = tokens(&[1, 2, 3], &[1, 3]);

        model
            .loss(&idx, &tokens(&[2, 3, 4], &[1, 3]))
            .unwrap()
            .backward()
            .unwrap();

        // Token 10 never appears in the input, so its embedding row gets gradient only
        // through the head.
        let grad = model.wte.grad().unwrap();
        let row: Vec<f32> = grad.narrow(0, 10, 1).unwrap().to_vec();
        assert!(row.iter().any(|&g| g != 0.0));
        let dict = model.state_dict();
        assert_eq!(dict[0].1.to_vec(), dict.last().unwrap().1.to_vec());
    }

    #[test]
    fn invalid_configs_are_typed_errors() {
        let bad = [
            GptConfig {
                n_head: 3,
                ..tiny()
            },
            GptConfig {
                vocab_size: 0,
                ..tiny()
            },
            GptConfig {
                dropout: 1.0,
                ..tiny()
            },
        ];

        for config in bad {
            let err = Gpt::<f32>::new(&config, &mut Generator::new(0)).unwrap_err();
            assert!(
                matches!(err, ModelError::Config { model: "gpt", .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let model = Gpt::<f32>::new(&tiny(), &mut Generator::new(0)).unwrap();

        let too_long = model.forward(&tokens(&[0; 9], &[1, 9]));
        let out_of_vocab = model.forward(&tokens(&[0, 11], &[1, 2]));
        let flat = model.forward(&tokens(&[0, 1], &[2]));

        for result in [too_long, out_of_vocab, flat] {
            assert!(matches!(result, Err(ModelError::Input { .. })));
        }
    }

    #[test]
    fn forward_shapes_and_causality() {
        let model = Gpt::<f64>::new(&tiny(), &mut Generator::new(3)).unwrap();
        let a = model
            .forward(&tokens(&[1, 2, 3, 4, 5], &[1, 5]))
            .unwrap()
            .value();
        let b = model
            .forward(&tokens(&[1, 2, 3, 9, 9], &[1, 5]))
            .unwrap()
            .value();

        assert_eq!(a.shape(), &[1, 5, 11]);
        let first = |t: &Tensor<f64>| t.narrow(1, 0, 3).unwrap().to_vec();
        assert_eq!(
            first(&a),
            first(&b),
            "positions 0..3 must not see later tokens"
        );
        assert_ne!(a.to_vec(), b.to_vec());
    }

    #[test]
    fn cached_decoding_matches_full_recompute() {
        let model = Gpt::<f64>::new(&tiny(), &mut Generator::new(4)).unwrap();
        let seq = [3, 1, 4, 1, 5, 9, 2, 6, 7, 10, 0, 8, 5, 3, 5, 8];
        let idx = tokens(&seq, &[2, 8]);
        let full = model.forward(&idx).unwrap().value();

        let _guard = no_grad();
        let mut cache = GptCache::new();
        let mut steps = Vec::new();
        let prompt = tokens(&[3, 1, 4, 7, 10, 0], &[2, 3]);
        let prefill = model.forward_with_cache(&prompt, &mut cache).unwrap();
        steps.push(prefill.value());
        for t in 3..8 {
            let next = tokens(&[seq[t], seq[8 + t]], &[2, 1]);
            steps.push(model.forward_with_cache(&next, &mut cache).unwrap().value());
        }
        let refs: Vec<&Tensor<f64>> = steps.iter().collect();
        let cached = Tensor::concat(&refs, 1).unwrap();

        assert_eq!(cache.len(), 8);
        for (g, w) in cached.to_vec().iter().zip(full.to_vec()) {
            assert!((g - w).abs() < 1e-12, "cached {g}, full {w}");
        }
        let overflow = model.forward_with_cache(&tokens(&[0, 0], &[2, 1]), &mut cache);
        assert!(matches!(overflow, Err(ModelError::Input { .. })));
    }

    #[test]
    fn greedy_generation_matches_argmax_of_full_forward() {
        let model = Gpt::<f64>::new(&tiny(), &mut Generator::new(5)).unwrap();
        let prompt = tokens(&[1, 2, 3], &[1, 3]);

        let out = model
            .generate(
                &prompt,
                9,
                &SamplingConfig::greedy(),
                &mut Generator::new(0),
            )
            .unwrap();

        assert_eq!(out.shape(), &[1, 12]);
        // Recompute each step the nanoGPT way: crop to block_size, full forward, argmax.
        let mut seq = vec![1, 2, 3];
        for _ in 0..9 {
            let ctx = &seq[seq.len().saturating_sub(8)..];
            let logits = model
                .forward(&tokens(ctx, &[1, ctx.len()]))
                .unwrap()
                .value();
            let last = last_position(&logits).unwrap().remove(0);
            let best = (0..11).fold(0, |b, i| if last[i] > last[b] { i } else { b });
            seq.push(best);
        }
        assert_eq!(out.as_slice(), &seq[..]);
    }

    #[test]
    fn sampling_is_seeded() {
        let model = Gpt::<f32>::new(&tiny(), &mut Generator::new(6)).unwrap();
        let prompt = tokens(&[1, 2], &[2, 1]);
        let config = SamplingConfig {
            temperature: 0.8,
            top_k: Some(5),
            top_p: Some(0.9),
        };

        let a = model
            .generate(&prompt, 10, &config, &mut Generator::new(9))
            .unwrap();
        let b = model
            .generate(&prompt, 10, &config, &mut Generator::new(9))
            .unwrap();

        assert_eq!(a.shape(), &[2, 11]);
        assert_eq!(a.as_slice(), b.as_slice());
    }

    #[test]
    fn decay_groups_split_by_rank() {
        let model = Gpt::<f32>::new(&tiny(), &mut Generator::new(0)).unwrap();

        let (decay, no_decay) = model.param_groups_for_decay();

        assert!(decay.iter().all(|p| p.ndim() >= 2));
        assert!(no_decay.iter().all(|p| p.ndim() < 2));
        // wte, wpe, and four weight matrices per block
        assert_eq!(decay.len(), 2 + 4 * 2);
        assert_eq!(no_decay.len(), 2 * 8 + 2);
    }

    #[test]
    fn dropout_is_active_only_in_training() {
        let config = GptConfig {
            dropout: 0.5,
            ..tiny()
        };
        let mut model = Gpt::<f32>::new(&config, &mut Generator::new(7)).unwrap();
        let idx = tokens(&[1, 2, 3], &[1, 3]);

        let a = model.forward(&idx).unwrap().value().to_vec();
        let b = model.forward(&idx).unwrap().value().to_vec();
        model.eval();
        let c = model.forward(&idx).unwrap().value().to_vec();
        let d = model.forward(&idx).unwrap().value().to_vec();

        assert_ne!(a, b);
        assert_eq!(c, d);
    }

    #[test]
    fn training_drives_the_loss_to_zero() {
        let model = Gpt::<f32>::new(&tiny(), &mut Generator::new(8)).unwrap();
        let idx = tokens(&[1, 5, 2, 7, 3, 9, 4, 0, 6, 6, 8, 1, 10, 2, 2, 5], &[2, 8]);
        let targets = tokens(&[5, 2, 7, 3, 9, 4, 0, 8, 6, 8, 1, 10, 2, 2, 5, 3], &[2, 8]);
        let mut adam = adam(model.parameters(), 1e-2);

        let first = model.loss(&idx, &targets).unwrap().value().item().unwrap();
        let mut last = first;
        for _ in 0..60 {
            adam.zero_grad();
            let loss = model.loss(&idx, &targets).unwrap();
            loss.backward().unwrap();
            adam.step().unwrap();
            last = loss.value().item().unwrap();
        }

        assert!(first > 2.0, "first loss {first}");
        assert!(last < 0.05, "loss after 60 steps {last}");
    }

    #[test]
    fn safetensors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpt.safetensors");
        let a = Gpt::<f32>::new(&tiny(), &mut Generator::new(10)).unwrap();
        let b = Gpt::<f32>::new(&tiny(), &mut Generator::new(11)).unwrap();
        let idx = tokens(&[1, 2, 3], &[1, 3]);

        a.save_safetensors(&path).unwrap();
        b.load_safetensors(&path).unwrap();

        let (ya, yb) = (
            a.forward(&idx).unwrap().value(),
            b.forward(&idx).unwrap().value(),
        );
        assert_eq!(ya.to_vec(), yb.to_vec());
    }

    #[test]
    fn state_dict_loads_from_either_tied_name() {
        let a = Gpt::<f32>::new(&tiny(), &mut Generator::new(12)).unwrap();
        let b = Gpt::<f32>::new(&tiny(), &mut Generator::new(13)).unwrap();
        let full: HashMap<String, Tensor<f32>> = a.state_dict().into_iter().collect();

        let mut head_only = full.clone();
        head_only.remove("transformer.wte.weight");
        b.load_state_dict(&head_only).unwrap();
        assert_eq!(b.wte.value().to_vec(), a.wte.value().to_vec());

        let mut broken = full.clone();
        broken.remove("transformer.wpe.weight");
        broken.insert("extra".into(), Tensor::zeros(&[1]));
        let err = b.load_state_dict(&broken).unwrap_err();
        let ModelError::StateDict { problems } = err else {
            panic!("{err}")
        };
        assert_eq!(
            problems,
            ["missing transformer.wpe.weight", "unexpected extra"]
        );
    }
}
