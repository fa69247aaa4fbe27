//! A causal self-attention run over a whole sequence, then decoded token by token through a
//! [`KvCache`] with rotary embeddings at the right offsets: the outputs must agree.

use strata_attention::{scaled_dot_product_attention, KvCache, RotaryEmbedding, SdpaOptions};
use strata_autograd::{no_grad, Var};
use strata_tensor::{Element, Generator, Tensor};

/// A two-layer toy decoder: per layer, `x -> q, k, v` projections, RoPE, causal attention
/// over `(batch, heads, seq, head_dim)`, residual.
struct Toy<T: Element> {
    wq: Vec<Var<T>>,
    wk: Vec<Var<T>>,
    wv: Vec<Var<T>>,
    rope: RotaryEmbedding,
    heads: usize,
}

impl<T: Element> Toy<T> {
    fn new(d_model: usize, heads: usize, layers: usize, gen: &mut Generator) -> Self {
        let mut w = || {
            (0..layers)
                .map(|_| Var::new(gen.normal(&[d_model, d_model], T::zero(), T::from_f64(0.3))))
                .collect()
        };
        Self {
            wq: w(),
            wk: w(),
            wv: w(),
            rope: RotaryEmbedding::new(d_model / heads).unwrap(),
            heads,
        }
    }

    /// `(batch, seq, d)` -> `(batch, heads, seq, head_dim)` after projecting with `w`.
    fn heads(&self, x: &Var<T>, w: &Var<T>) -> Var<T> {
        let (b, s, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        x.matmul(w)
            .unwrap()
            .reshape(&[b, s, self.heads, d / self.heads])
            .unwrap()
            .permute(&[0, 2, 1, 3])
            .unwrap()
    }

    fn merge(&self, y: &Var<T>) -> Var<T> {
        let (b, h, s, hd) = (y.shape()[0], y.shape()[1], y.shape()[2], y.shape()[3]);
        y.permute(&[0, 2, 1, 3])
            .unwrap()
            .reshape(&[b, s, h * hd])
            .unwrap()
    }

    /// The whole sequence at once.
    fn full(&self, x: &Var<T>) -> Var<T> {
        let mut x = x.clone();
        for l in 0..self.wq.len() {
            let q = self.rope.apply(&self.heads(&x, &self.wq[l]), 0).unwrap();
            let k = self.rope.apply(&self.heads(&x, &self.wk[l]), 0).unwrap();
            let v = self.heads(&x, &self.wv[l]);
            let opts = SdpaOptions {
                is_causal: true,
                ..Default::default()
            };
            let y = scaled_dot_product_attention(&q, &k, &v, None, opts).unwrap();
            x = x.add(&self.merge(&y)).unwrap();
        }
        x
    }

    /// One new token `(batch, 1, d)` at position `pos`, through the cache.
    fn step(&self, x: &Var<T>, pos: usize, cache: &mut KvCache<T>) -> Var<T> {
        let mut x = x.clone();
        for l in 0..self.wq.len() {
            let q = self.rope.apply(&self.heads(&x, &self.wq[l]), pos).unwrap();
            let k = self.rope.apply(&self.heads(&x, &self.wk[l]), pos).unwrap();
            let v = self.heads(&x, &self.wv[l]);
            let opts = SdpaOptions {
                is_causal: true,
                ..Default::default()
            };
            let y = cache.attend(l, &q, &k, &v, None, opts).unwrap();
            x = x.add(&self.merge(&y)).unwrap();
        }
        x
    }
}

fn max_rel_diff<T: Element>(seq_len: usize) -> f64 {
    let mut gen = Generator::new(11);
    let toy = Toy::<T>::new(16, 2, 2, &mut gen);
    let x = Var::new(gen.randn::<T>(&[2, seq_len, 16]));
    let _guard = no_grad();

    let full = toy.full(&x).value();
    let mut cache = KvCache::new(2);
    let steps: Vec<Tensor<T>> = (0..seq_len)
        .map(|t| toy.step(&x.narrow(1, t, 1).unwrap(), t, &mut cache).value())
        .collect();

    assert_eq!(cache.seq_len(0), seq_len);
    let steps: Vec<&Tensor<T>> = steps.iter().collect();
    let decoded = Tensor::concat(&steps, 1).unwrap();
    let (a, b) = (decoded.to_vec(), full.to_vec());
    a.iter()
        .zip(&b)
        .map(|(a, b)| (a.as_f64() - b.as_f64()).abs() / (1.0 + b.as_f64().abs()))
        .fold(0.0, f64::max)
}

#[test]
fn decoding_through_the_cache_matches_the_full_sequence_f64() {
    let diff = max_rel_diff::<f64>(9);

    assert!(diff < 1e-6, "max relative difference {diff:e}");
}

#[test]
fn decoding_through_the_cache_matches_the_full_sequence_f32() {
    let diff = max_rel_diff::<f32>(9);

    assert!(diff < 1e-5, "max relative difference {diff:e}");
}

#[test]
fn decoding_past_the_tiled_threshold_matches_the_full_sequence() {
    // From TILED_MIN_SEQ cached keys on, both the full pass and the decoding steps run the
    // tiled kernel, the steps with the bottom-right causal offset.
    let diff = max_rel_diff::<f32>(strata_attention::TILED_MIN_SEQ + 6);

    assert!(diff < 1e-5, "max relative difference {diff:e}");
}
