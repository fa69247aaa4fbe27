//! `MultiheadAttention`, PyTorch's `nn.MultiheadAttention`: the same parameters, names,
//! layout, initialisation and forward arguments, so weights carry across both ways.

use std::sync::Mutex;

use strata_autograd::Var;
use strata_nn_layers::{prefixed, Module};
use strata_tensor::{Element, Generator, Tensor};

use crate::error::{config_err, shape_err, Result};
use crate::mask::{AttnMask, KeyPaddingMask};
use crate::sdpa::{attend, math_attention, DropoutMask, Problem, SdpaKernel};

/// The layer name used in errors.
const LAYER: &str = "MultiheadAttention";

/// Configuration of [`MultiheadAttention`]; [`MultiheadAttentionConfig::new`] gives
/// PyTorch's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiheadAttentionConfig {
    /// Model width `E` of the queries and of the output.
    pub embed_dim: usize,
    /// Number of heads `H`; must divide `embed_dim`.
    pub num_heads: usize,
    /// Dropout probability on the attention weights in training mode. Default `0.0`.
    pub dropout: f64,
    /// Biases on the input and output projections. Default `true`.
    pub bias: bool,
    /// Width of the keys; default `None` (= `embed_dim`).
    pub kdim: Option<usize>,
    /// Width of the values; default `None` (= `embed_dim`).
    pub vdim: Option<usize>,
    /// Inputs and outputs are `(batch, seq, feature)` rather than `(seq, batch, feature)`.
    /// Default `false`, as in PyTorch.
    pub batch_first: bool,
}

impl MultiheadAttentionConfig {
    /// PyTorch's defaults for `embed_dim` and `num_heads`.
    pub fn new(embed_dim: usize, num_heads: usize) -> Self {
        Self {
            embed_dim,
            num_heads,
            dropout: 0.0,
            bias: true,
            kdim: None,
            vdim: None,
            batch_first: false,
        }
    }
}

/// The optional arguments of [`MultiheadAttention::forward`], with PyTorch's defaults.
#[derive(Debug, Clone)]
pub struct MhaForwardOptions<T: Element> {
    /// Keys to leave out per batch element, `(batch, seq_k)` (or `(seq_k)` unbatched). Its
    /// variant names its sense; PyTorch's boolean sense is [`KeyPaddingMask::Ignore`].
    /// Default `None`.
    pub key_padding_mask: Option<KeyPaddingMask<T>>,
    /// Also return the attention weights. Default `true`, as in PyTorch. Returning them
    /// materialises `(batch, heads, seq_q, seq_k)` weights and uses the math kernel.
    pub need_weights: bool,
    /// A mask of shape `(seq_q, seq_k)` or `(batch * heads, seq_q, seq_k)` (`(heads, seq_q,
    /// seq_k)` unbatched). PyTorch's boolean sense is [`AttnMask::Ignore`]. Default `None`.
    pub attn_mask: Option<AttnMask<T>>,
    /// Average the returned weights over heads. Default `true`.
    pub average_attn_weights: bool,
    /// Apply a causal mask (query `i` sees keys `j <= i`). Default `false`. PyTorch treats it
    /// as a hint that `attn_mask` already is causal and requires `attn_mask`; here it applies
    /// the mask itself and combines with `attn_mask` if one is given.
    pub is_causal: bool,
}

impl<T: Element> Default for MhaForwardOptions<T> {
    fn default() -> Self {
        Self {
            key_padding_mask: None,
            need_weights: true,
            attn_mask: None,
            average_attn_weights: true,
            is_causal: false,
        }
    }
}

/// Multi-head attention for self- and cross-attention, PyTorch's `nn.MultiheadAttention`.
///
/// ```text
/// q_h = query W_q,h^T + b_q,h,  k_h = key W_k,h^T + b_k,h,  v_h = value W_v,h^T + b_v,h
/// head_h = softmax(q_h k_h^T / sqrt(E / H) + mask) v_h
/// y = concat(head_1, ..., head_H) W_o^T + b_o
/// ```
///
/// Parameters, in PyTorch's order and with its names: `in_proj_weight` `(3E, E)` (rows:
/// queries, keys, values) when keys and values have width `E`, else `q_proj_weight` `(E, E)`,
/// `k_proj_weight` `(E, kdim)`, `v_proj_weight` `(E, vdim)`; then `in_proj_bias` `(3E)`,
/// `out_proj.weight` `(E, E)`, `out_proj.bias` `(E)`. Initialisation as PyTorch:
/// Xavier-uniform input projections, zero biases, and `out_proj.weight` uniform in
/// `(-1/sqrt(E), 1/sqrt(E))` (Linear's default).
///
/// A query whose keys are all masked gets a zero output (PyTorch gives NaN).
///
/// # Limitations
/// PyTorch's `add_bias_kv` and `add_zero_attn` are not offered (the config has no such
/// fields), so state dicts with `bias_k` / `bias_v` do not load.
///
/// # Shapes
/// - `query`: `(L, N, E)`, or `(N, L, E)` with `batch_first`, or `(L, E)` unbatched
/// - `key`: `(S, N, kdim)`, `value`: `(S, N, vdim)` (batch-first or unbatched alike)
/// - output: like `query`; weights: `(N, L, S)` averaged or `(N, H, L, S)` per head
///   (`(L, S)` / `(H, L, S)` unbatched)
#[derive(Debug)]
pub struct MultiheadAttention<T: Element> {
    config: MultiheadAttentionConfig,
    in_proj_weight: Option<Var<T>>,
    q_proj_weight: Option<Var<T>>,
    k_proj_weight: Option<Var<T>>,
    v_proj_weight: Option<Var<T>>,
    in_proj_bias: Option<Var<T>>,
    out_proj_weight: Var<T>,
    out_proj_bias: Option<Var<T>>,
    training: bool,
    dropout_gen: Mutex<Generator>,
}

impl<T: Element> MultiheadAttention<T> {
    /// A layer with PyTorch's initialisation drawn from `gen`; the dropout generator is seeded
    /// from `gen` too. Starts in training mode, as PyTorch's modules do.
    ///
    /// # Errors
    /// [`crate::AttentionError::Config`] if `num_heads` is zero or does not divide
    /// `embed_dim`, a width is zero, or `dropout` is outside `[0, 1]`.
    pub fn new(config: MultiheadAttentionConfig, gen: &mut Generator) -> Result<Self> {
        let (e, h) = (config.embed_dim, config.num_heads);
        if e == 0 || h == 0 || e % h != 0 {
            return Err(config_err(
                LAYER,
                format!("embed_dim {e} must be a positive multiple of num_heads {h}"),
            ));
        }
        if !(0.0..=1.0).contains(&config.dropout) {
            return Err(config_err(
                LAYER,
                format!("dropout must be in [0, 1], got {}", config.dropout),
            ));
        }
        let (kdim, vdim) = (config.kdim.unwrap_or(e), config.vdim.unwrap_or(e));
        if kdim == 0 || vdim == 0 {
            return Err(config_err(LAYER, "kdim and vdim must be positive"));
        }
        let xavier = |gen: &mut Generator, rows: usize, cols: usize| {
            let bound = T::from_f64((6.0 / (rows + cols) as f64).sqrt());
            Var::parameter(gen.uniform(&[rows, cols], -bound, bound))
        };
        let (mut in_proj_weight, mut q_proj, mut k_proj, mut v_proj) = (None, None, None, None);
        if kdim == e && vdim == e {
            in_proj_weight = Some(xavier(gen, 3 * e, e));
        } else {
            q_proj = Some(xavier(gen, e, e));
            k_proj = Some(xavier(gen, e, kdim));
            v_proj = Some(xavier(gen, e, vdim));
        }
        let bound = T::from_f64(1.0 / (e as f64).sqrt());
        let out_proj_weight = Var::parameter(gen.uniform(&[e, e], -bound, bound));
        let zeros = |n: usize| Var::parameter(Tensor::zeros(&[n]));
        Ok(Self {
            in_proj_bias: config.bias.then(|| zeros(3 * e)),
            out_proj_bias: config.bias.then(|| zeros(e)),
            config,
            in_proj_weight,
            q_proj_weight: q_proj,
            k_proj_weight: k_proj,
            v_proj_weight: v_proj,
            out_proj_weight,
            training: true,
            dropout_gen: Mutex::new(Generator::new(gen.next_u64())),
        })
    }

    /// The configuration this layer was built with.
    pub fn config(&self) -> &MultiheadAttentionConfig {
        &self.config
    }

    /// The packed `(3E, E)` input projection, when keys and values have width `E`.
    pub fn in_proj_weight(&self) -> Option<&Var<T>> {
        self.in_proj_weight.as_ref()
    }

    /// The separate query, key and value projections, when `kdim` or `vdim` differs from `E`.
    pub fn qkv_proj_weights(&self) -> Option<(&Var<T>, &Var<T>, &Var<T>)> {
        match (
            &self.q_proj_weight,
            &self.k_proj_weight,
            &self.v_proj_weight,
        ) {
            (Some(q), Some(k), Some(v)) => Some((q, k, v)),
            _ => None,
        }
    }

    /// The packed `(3E)` input bias, if `bias` is on.
    pub fn in_proj_bias(&self) -> Option<&Var<T>> {
        self.in_proj_bias.as_ref()
    }

    /// The output projection's `(E, E)` weight.
    pub fn out_proj_weight(&self) -> &Var<T> {
        &self.out_proj_weight
    }

    /// The output projection's `(E)` bias, if `bias` is on.
    pub fn out_proj_bias(&self) -> Option<&Var<T>> {
        self.out_proj_bias.as_ref()
    }

    /// Attends from `query` to `key`/`value`; returns the output and, with `need_weights`,
    /// the attention weights (after dropout, as PyTorch returns them).
    ///
    /// # Shapes
    /// See [`MultiheadAttention`].
    ///
    /// # Errors
    /// [`crate::AttentionError::Shape`] if the inputs or masks have shapes that do not fit.
    ///
    /// ```
    /// use strata_attention::{MhaForwardOptions, MultiheadAttention, MultiheadAttentionConfig};
    /// use strata_autograd::Var;
    /// use strata_tensor::Generator;
    ///
    /// let mut gen = Generator::new(0);
    /// let mut config = MultiheadAttentionConfig::new(8, 2);
    /// config.batch_first = true;
    /// let mha = MultiheadAttention::<f32>::new(config, &mut gen)?;
    /// let x = Var::new(gen.randn(&[3, 5, 8]));
    /// let opts = MhaForwardOptions { is_causal: true, ..Default::default() };
    /// let (y, w) = mha.forward(&x, &x, &x, &opts)?;
    /// assert_eq!(y.shape(), &[3, 5, 8]);
    /// assert_eq!(w.unwrap().shape(), &[3, 5, 5]);
    /// # Ok::<(), strata_attention::AttentionError>(())
    /// ```
    pub fn forward(
        &self,
        query: &Var<T>,
        key: &Var<T>,
        value: &Var<T>,
        options: &MhaForwardOptions<T>,
    ) -> Result<(Var<T>, Option<Var<T>>)> {
        let batched = self.check_inputs(query, key, value)?;
        let (q_in, k_in, v_in) = (
            self.to_batch_first(query, batched)?,
            self.to_batch_first(key, batched)?,
            self.to_batch_first(value, batched)?,
        );
        let (n, l, s) = (q_in.shape()[0], q_in.shape()[1], k_in.shape()[1]);
        let (e, h) = (self.config.embed_dim, self.config.num_heads);
        let head_dim = e / h;

        let (q, k, v) = self.project_inputs(&q_in, &k_in, &v_in)?;
        let split = |x: Var<T>, len: usize| -> Result<Var<T>> {
            Ok(x.reshape(&[n, len, h, head_dim])?.permute(&[0, 2, 1, 3])?)
        };
        let (q, k, v) = (split(q, l)?, split(k, s)?, split(v, s)?);

        let problem = self.problem(options, batched, [n, h, l, s])?;
        let (heads, weights) = if options.need_weights {
            let (out, w) = math_attention(&q, &k, &v, &problem)?;
            (out, Some(w))
        } else {
            (attend(&q, &k, &v, &problem, SdpaKernel::Auto)?, None)
        };
        let merged = heads.permute(&[0, 2, 1, 3])?.reshape(&[n, l, e])?;
        let out = linear(&merged, &self.out_proj_weight, self.out_proj_bias.as_ref())?;

        let out = if !batched {
            out.squeeze_dim(0)?
        } else if self.config.batch_first {
            out
        } else {
            out.transpose(0, 1)?
        };
        let weights = match weights {
            Some(w) => {
                let w = if options.average_attn_weights {
                    w.mean(&[1])?
                } else {
                    w
                };
                Some(if batched { w } else { w.squeeze_dim(0)? })
            }
            None => None,
        };
        Ok((out, weights))
    }

    /// Checks ranks and widths; returns whether the input is batched.
    fn check_inputs(&self, query: &Var<T>, key: &Var<T>, value: &Var<T>) -> Result<bool> {
        let c = &self.config;
        let (qs, ks, vs) = (query.shape(), key.shape(), value.shape());
        let rank = qs.len();
        if !(rank == 2 || rank == 3) || ks.len() != rank || vs.len() != rank {
            return Err(shape_err(
                LAYER,
                format!("query, key, value must all be 2-D or 3-D, got {qs:?}, {ks:?}, {vs:?}"),
            ));
        }
        let widths = (qs[rank - 1], ks[rank - 1], vs[rank - 1]);
        let want = (
            c.embed_dim,
            c.kdim.unwrap_or(c.embed_dim),
            c.vdim.unwrap_or(c.embed_dim),
        );
        if widths != want {
            return Err(shape_err(
                LAYER,
                format!("expected widths (E, kdim, vdim) = {want:?}, got {widths:?}"),
            ));
        }
        if ks[..rank - 1] != vs[..rank - 1] {
            return Err(shape_err(
                LAYER,
                format!("key {ks:?} and value {vs:?} differ in sequence or batch"),
            ));
        }
        let batch_dim = usize::from(!c.batch_first);
        if rank == 3 && qs[batch_dim] != ks[batch_dim] {
            return Err(shape_err(
                LAYER,
                format!("query {qs:?} and key {ks:?} differ in batch size"),
            ));
        }
        Ok(rank == 3)
    }

    /// `(N, seq, feature)` from the layer's layout.
    fn to_batch_first(&self, x: &Var<T>, batched: bool) -> Result<Var<T>> {
        Ok(if !batched {
            x.unsqueeze(0)?
        } else if self.config.batch_first {
            x.clone()
        } else {
            x.transpose(0, 1)?
        })
    }

    /// The three input projections, `(N, seq, E)` each.
    fn project_inputs(
        &self,
        query: &Var<T>,
        key: &Var<T>,
        value: &Var<T>,
    ) -> Result<(Var<T>, Var<T>, Var<T>)> {
        let e = self.config.embed_dim;
        let part = |w: &Var<T>, i: usize| w.narrow(0, i * e, e);
        let bias = |i: usize| -> Result<Option<Var<T>>> {
            Ok(match &self.in_proj_bias {
                Some(b) => Some(part(b, i)?),
                None => None,
            })
        };
        let weights = match &self.in_proj_weight {
            Some(w) => [part(w, 0)?, part(w, 1)?, part(w, 2)?],
            None => {
                let (q, k, v) = self
                    .qkv_proj_weights()
                    .expect("bug: a layer has either packed or separate weights");
                [q.clone(), k.clone(), v.clone()]
            }
        };
        Ok((
            linear(query, &weights[0], bias(0)?.as_ref())?,
            linear(key, &weights[1], bias(1)?.as_ref())?,
            linear(value, &weights[2], bias(2)?.as_ref())?,
        ))
    }

    /// Folds the masks, `is_causal` and dropout into one attention problem over
    /// `(N, H, L, S)`.
    fn problem(
        &self,
        options: &MhaForwardOptions<T>,
        batched: bool,
        [n, h, l, s]: [usize; 4],
    ) -> Result<Problem<T>> {
        let mut bias: Option<Tensor<T>> = None;
        if let Some(m) = &options.attn_mask {
            let b = m.to_bias();
            let b = match (b.shape(), batched) {
                ([ml, ms], _) if [*ml, *ms] == [l, s] => b,
                ([nh, ml, ms], true) if [*nh, *ml, *ms] == [n * h, l, s] => {
                    b.reshape(&[n, h, l, s])?
                }
                ([hh, ml, ms], false) if [*hh, *ml, *ms] == [h, l, s] => {
                    b.reshape(&[1, h, l, s])?
                }
                (got, _) => {
                    return Err(shape_err(
                        LAYER,
                        format!(
                            "attn_mask must be ({l}, {s}) or ({}, {l}, {s}), got {got:?}",
                            if batched { n * h } else { h }
                        ),
                    ))
                }
            };
            bias = Some(b);
        }
        if let Some(m) = &options.key_padding_mask {
            let b = m.to_bias();
            let want: &[usize] = if batched { &[n, s] } else { &[s] };
            if b.shape() != want {
                return Err(shape_err(
                    LAYER,
                    format!("key_padding_mask must be {want:?}, got {:?}", b.shape()),
                ));
            }
            let b = b.reshape(&[n, 1, 1, s])?;
            bias = Some(match bias {
                Some(a) => a.add(&b)?,
                None => b,
            });
        }
        let p = if self.training {
            self.config.dropout
        } else {
            0.0
        };
        let dropout = (p > 0.0).then(|| {
            let mut gen = self.dropout_gen.lock().unwrap_or_else(|e| e.into_inner());
            DropoutMask {
                p,
                seed: gen.next_u64(),
            }
        });
        Ok(Problem {
            lead: vec![n, h],
            seq_q: l,
            seq_k: s,
            head_dim: self.config.embed_dim / h,
            value_dim: self.config.embed_dim / h,
            scale: T::from_f64(1.0 / ((self.config.embed_dim / h) as f64).sqrt()),
            bias,
            causal: options.is_causal.then_some(0),
            dropout,
        })
    }
}

/// `x w^T + b`, PyTorch's `F.linear`.
fn linear<T: Element>(x: &Var<T>, w: &Var<T>, b: Option<&Var<T>>) -> Result<Var<T>> {
    let y = x.matmul(&w.transpose(0, 1)?)?;
    Ok(match b {
        Some(b) => y.add(b)?,
        None => y,
    })
}

impl<T: Element> Module<T> for MultiheadAttention<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        let named = [
            ("in_proj_weight", &self.in_proj_weight),
            ("q_proj_weight", &self.q_proj_weight),
            ("k_proj_weight", &self.k_proj_weight),
            ("v_proj_weight", &self.v_proj_weight),
            ("in_proj_bias", &self.in_proj_bias),
        ];
        for (name, var) in named {
            if let Some(var) = var {
                f(&prefixed(prefix, name), var);
            }
        }
        f(&prefixed(prefix, "out_proj.weight"), &self.out_proj_weight);
        if let Some(b) = &self.out_proj_bias {
            f(&prefixed(prefix, "out_proj.bias"), b);
        }
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(config: MultiheadAttentionConfig) -> MultiheadAttention<f64> {
        MultiheadAttention::new(config, &mut Generator::new(0)).unwrap()
    }

    #[test]
    fn parameter_names_and_shapes_follow_pytorch() {
        let packed = layer(MultiheadAttentionConfig::new(8, 2));
        let mut config = MultiheadAttentionConfig::new(8, 2);
        config.kdim = Some(3);
        config.vdim = Some(5);
        let separate = layer(config);

        let shapes = |m: &MultiheadAttention<f64>| -> Vec<(String, Vec<usize>)> {
            m.named_parameters()
                .into_iter()
                .map(|(n, v)| (n, v.shape().to_vec()))
                .collect()
        };

        let s = |n: &str, sh: &[usize]| (n.to_owned(), sh.to_vec());
        assert_eq!(
            shapes(&packed),
            vec![
                s("in_proj_weight", &[24, 8]),
                s("in_proj_bias", &[24]),
                s("out_proj.weight", &[8, 8]),
                s("out_proj.bias", &[8]),
            ]
        );
        assert_eq!(
            shapes(&separate),
            vec![
                s("q_proj_weight", &[8, 8]),
                s("k_proj_weight", &[8, 3]),
                s("v_proj_weight", &[8, 5]),
                s("in_proj_bias", &[24]),
                s("out_proj.weight", &[8, 8]),
                s("out_proj.bias", &[8]),
            ]
        );
    }

    #[test]
    fn init_bounds_follow_pytorch() {
        let m = layer(MultiheadAttentionConfig::new(16, 4));

        let w = m.in_proj_weight().unwrap().value().to_vec();
        let o = m.out_proj_weight().value().to_vec();

        let xavier = (6.0f64 / 64.0).sqrt();
        assert!(w.iter().all(|x| x.abs() <= xavier));
        assert!(w.iter().any(|x| x.abs() > 0.8 * xavier));
        assert!(o.iter().all(|x| x.abs() <= 0.25));
        assert!(m
            .in_proj_bias()
            .unwrap()
            .value()
            .to_vec()
            .iter()
            .all(|&x| x == 0.0));
    }

    #[test]
    fn config_errors_are_reported() {
        let mut gen = Generator::new(0);

        let r = MultiheadAttention::<f64>::new(MultiheadAttentionConfig::new(10, 3), &mut gen);

        assert!(r.is_err());
    }

    #[test]
    fn unbatched_and_seq_first_layouts_agree_with_batch_first() {
        let mut gen = Generator::new(1);
        let mut m = layer(MultiheadAttentionConfig::new(6, 3));
        let x = Var::new(gen.randn::<f64>(&[4, 6]));
        let opts = MhaForwardOptions::default();

        let (y1, w1) = m.forward(&x, &x, &x, &opts).unwrap();
        let x3 = x.unsqueeze(1).unwrap();
        let (y3, w3) = m.forward(&x3, &x3, &x3, &opts).unwrap();
        m.config.batch_first = true;
        let xb = x.unsqueeze(0).unwrap();
        let (yb, _) = m.forward(&xb, &xb, &xb, &opts).unwrap();

        assert_eq!(y1.shape(), &[4, 6]);
        assert_eq!(w1.as_ref().unwrap().shape(), &[4, 4]);
        assert_eq!(w3.unwrap().shape(), &[1, 4, 4]);
        assert_eq!(y1.value().to_vec(), y3.value().to_vec());
        assert_eq!(y1.value().to_vec(), yb.value().to_vec());
    }

    #[test]
    fn need_weights_does_not_change_the_output() {
        let mut gen = Generator::new(2);
        let m = layer(MultiheadAttentionConfig::new(8, 2));
        // 70 keys: without weights the tiled kernel runs, with them the math kernel.
        let x = Var::new(gen.randn::<f64>(&[70, 2, 8]));
        let with = MhaForwardOptions {
            is_causal: true,
            ..Default::default()
        };
        let without = MhaForwardOptions {
            need_weights: false,
            ..with.clone()
        };

        let (a, _) = m.forward(&x, &x, &x, &with).unwrap();
        let (b, w) = m.forward(&x, &x, &x, &without).unwrap();

        assert!(w.is_none());
        let diff = a.value().sub(&b.value()).unwrap().abs().max_all().unwrap();
        assert!(diff.item().unwrap() < 1e-12);
    }

    #[test]
    fn dropout_acts_in_training_only_and_is_seeded() {
        let mut config = MultiheadAttentionConfig::new(4, 2);
        config.dropout = 0.5;
        let mut m = layer(config.clone());
        let x = Var::new(Generator::new(4).randn::<f64>(&[6, 1, 4]));
        let opts = MhaForwardOptions::default();

        let (a, wa) = m.forward(&x, &x, &x, &opts).unwrap();
        let (b, _) = m.forward(&x, &x, &x, &opts).unwrap();
        let (a2, _) = layer(config).forward(&x, &x, &x, &opts).unwrap();
        m.eval();
        let (e, we) = m.forward(&x, &x, &x, &opts).unwrap();

        assert_ne!(a.value().to_vec(), b.value().to_vec());
        assert_eq!(a.value().to_vec(), a2.value().to_vec());
        let sums = |w: Var<f64>| w.value().sum(&[-1]).unwrap().to_vec();
        assert!(sums(we.unwrap()).iter().all(|s| (s - 1.0).abs() < 1e-12));
        assert!(sums(wa.unwrap()).iter().any(|s| (s - 1.0).abs() > 1e-3));
        assert_ne!(e.value().to_vec(), a.value().to_vec());
    }

    #[test]
    fn mask_shapes_are_checked() {
        let mut gen = Generator::new(3);
        let m = layer(MultiheadAttentionConfig::new(4, 2));
        let x = Var::new(gen.randn::<f64>(&[3, 2, 4]));
        let bad = MhaForwardOptions {
            attn_mask: Some(AttnMask::Ignore(Tensor::zeros(&[3, 3, 3]))),
            ..Default::default()
        };
        let bad_kpm = MhaForwardOptions {
            key_padding_mask: Some(KeyPaddingMask::Ignore(Tensor::zeros(&[3, 2]))),
            ..Default::default()
        };

        assert!(m.forward(&x, &x, &x, &bad).is_err());
        assert!(m.forward(&x, &x, &x, &bad_kpm).is_err());
    }
}
