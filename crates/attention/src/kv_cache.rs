//! A key/value cache for incremental decoding: each layer keeps the keys and values of the
//! tokens seen so far, so decoding token `t` attends over them at a cost of `O(t)` instead of
//! rerunning the whole prefix.

use strata_autograd::Var;
use strata_tensor::Element;

use crate::error::{shape_err, Result};
use crate::mask::AttnMask;
use crate::sdpa::{attend, Problem, SdpaOptions};

/// The cached keys and values of one layer, `(.., seq, dim)` each.
#[derive(Debug, Clone, Default)]
struct LayerCache<T: Element> {
    keys: Option<Var<T>>,
    values: Option<Var<T>>,
}

/// Per-layer cached keys and values for autoregressive decoding.
///
/// Each decoding step appends the new token's keys and values (`(.., 1, dim)`, or several
/// tokens at once for a prompt) to its layer and attends the new queries over the whole
/// cached prefix. Appending copies the prefix once (a concatenation), so step `t` costs
/// `O(t * dim)` in the copy and in the attention alike. Decode under `no_grad` to keep no
/// graph; with recording on, gradients flow into the cached keys and values too.
#[derive(Debug, Clone)]
pub struct KvCache<T: Element> {
    layers: Vec<LayerCache<T>>,
}

impl<T: Element> KvCache<T> {
    /// An empty cache for `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![
                LayerCache {
                    keys: None,
                    values: None,
                };
                num_layers
            ],
        }
    }

    /// The number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The number of cached positions of `layer` (0 for an unknown or empty layer).
    pub fn seq_len(&self, layer: usize) -> usize {
        self.layers
            .get(layer)
            .and_then(|l| l.keys.as_ref())
            .map_or(0, |k| k.shape()[k.ndim() - 2])
    }

    /// The cached keys of `layer`, `(.., seq, dim)`.
    pub fn keys(&self, layer: usize) -> Option<&Var<T>> {
        self.layers.get(layer).and_then(|l| l.keys.as_ref())
    }

    /// The cached values of `layer`, `(.., seq, value_dim)`.
    pub fn values(&self, layer: usize) -> Option<&Var<T>> {
        self.layers.get(layer).and_then(|l| l.values.as_ref())
    }

    /// Forgets every cached position, for a new sequence.
    pub fn clear(&mut self) {
        for l in &mut self.layers {
            *l = LayerCache {
                keys: None,
                values: None,
            };
        }
    }

    /// Appends new keys and values along the sequence dim (`-2`) and returns the whole
    /// cached keys and values of `layer`.
    ///
    /// # Shapes
    /// - `keys`: `(.., new, dim)`, `values`: `(.., new, value_dim)`, with the leading dims
    ///   and widths of what is cached
    ///
    /// # Errors
    /// [`crate::AttentionError::Shape`] if `layer` is out of range or the shapes do not match
    /// the cache.
    pub fn append(
        &mut self,
        layer: usize,
        keys: &Var<T>,
        values: &Var<T>,
    ) -> Result<(Var<T>, Var<T>)> {
        let n = self.layers.len();
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| shape_err("KvCache", format!("layer {layer} of {n}")))?;
        let (ks, vs) = (keys.shape(), values.shape());
        let r = ks.len();
        if r < 2 || vs.len() != r || ks[..r - 1] != vs[..r - 1] {
            return Err(shape_err(
                "KvCache",
                format!("keys {ks:?} and values {vs:?} must be (.., new, dim) alike"),
            ));
        }
        let join = |old: &Option<Var<T>>, new: &Var<T>| -> Result<Var<T>> {
            Ok(match old {
                Some(old) => Var::concat(&[old, new], -2).map_err(|_| {
                    shape_err(
                        "KvCache",
                        format!(
                            "cannot append {:?} to cached {:?}",
                            new.shape(),
                            old.shape()
                        ),
                    )
                })?,
                None => new.clone(),
            })
        };
        let (k, v) = (join(&slot.keys, keys)?, join(&slot.values, values)?);
        slot.keys = Some(k.clone());
        slot.values = Some(v.clone());
        Ok((k, v))
    }

    /// Appends `keys` and `values` to `layer`, then attends `queries` over the whole cache.
    ///
    /// With `is_causal`, the queries are taken to be the last `new` positions, so query `i`
    /// of `new` attends keys `j <= cached + i` (the bottom-right aligned triangle; a single
    /// decoded token sees everything). The mask, if any, broadcasts to `(.., new, total)`.
    ///
    /// # Shapes
    /// - `queries`: `(.., new, dim)`; output: `(.., new, value_dim)`
    ///
    /// # Errors
    /// The errors of [`KvCache::append`] and of
    /// [`crate::scaled_dot_product_attention`].
    pub fn attend(
        &mut self,
        layer: usize,
        queries: &Var<T>,
        keys: &Var<T>,
        values: &Var<T>,
        attn_mask: Option<&AttnMask<T>>,
        mut options: SdpaOptions<'_>,
    ) -> Result<Var<T>> {
        let (k, v) = self.append(layer, keys, values)?;
        let mut problem = Problem::new(
            queries.shape(),
            k.shape(),
            v.shape(),
            attn_mask,
            &mut options,
        )?;
        if options.is_causal {
            problem.causal = Some(problem.seq_k as isize - problem.seq_q as isize);
        }
        attend(queries, &k, &v, &problem, options.kernel)
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::{Generator, Tensor};

    use super::*;
    use crate::scaled_dot_product_attention;

    #[test]
    fn append_grows_the_sequence_and_checks_shapes() {
        let mut cache = KvCache::<f64>::new(2);
        let kv = Var::new(Tensor::zeros(&[2, 3, 4]));

        cache.append(1, &kv, &kv).unwrap();
        cache.append(1, &kv, &kv).unwrap();

        assert_eq!(cache.seq_len(1), 6);
        assert_eq!(cache.seq_len(0), 0);
        let wrong = Var::new(Tensor::zeros(&[2, 1, 5]));
        assert!(cache.append(1, &wrong, &wrong).is_err());
        assert!(cache.append(2, &kv, &kv).is_err());
        cache.clear();
        assert_eq!(cache.seq_len(1), 0);
    }

    #[test]
    fn chunked_prefill_matches_the_full_causal_attention() {
        let mut gen = Generator::new(4);
        let (q, k, v) = (
            Var::new(gen.randn::<f64>(&[2, 7, 4])),
            Var::new(gen.randn::<f64>(&[2, 7, 4])),
            Var::new(gen.randn::<f64>(&[2, 7, 4])),
        );
        let causal = || SdpaOptions {
            is_causal: true,
            ..Default::default()
        };
        let full = scaled_dot_product_attention(&q, &k, &v, None, causal()).unwrap();

        let mut cache = KvCache::new(1);
        let part = |x: &Var<f64>, s, n| x.narrow(1, s, n).unwrap();
        let a = cache
            .attend(
                0,
                &part(&q, 0, 4),
                &part(&k, 0, 4),
                &part(&v, 0, 4),
                None,
                causal(),
            )
            .unwrap();
        let b = cache
            .attend(
                0,
                &part(&q, 4, 3),
                &part(&k, 4, 3),
                &part(&v, 4, 3),
                None,
                causal(),
            )
            .unwrap();

        let joined = Var::concat(&[&a, &b], 1).unwrap().value();
        let diff = joined.sub(&full.value()).unwrap().abs().max_all().unwrap();
        assert!(diff.item().unwrap() < 1e-12);
    }
}
