//! Drawing the next token from a row of logits: temperature, top-k and top-p (nucleus).

use serde::{Deserialize, Serialize};
use strata_tensor::Generator;

use crate::error::{ModelError, Result};

/// How language models pick each next token in `generate`.
///
/// Logits are divided by `temperature`, then restricted to the `top_k` most likely tokens and
/// to the smallest set whose probability reaches `top_p`, then sampled from their softmax.
/// The defaults (temperature 1, no top-k, no top-p) sample from the model's distribution
/// unchanged, as nanoGPT's `generate` does.
///
/// ```
/// use strata_models::SamplingConfig;
/// use strata_tensor::Generator;
///
/// let config = SamplingConfig { temperature: 0.8, top_k: Some(2), top_p: None };
/// let token = config.sample(&[0.1, 3.0, 2.5, -1.0], &mut Generator::new(0))?;
/// assert!(token == 1 || token == 2);
/// # Ok::<(), strata_models::ModelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingConfig {
    /// Divides the logits: below 1 sharpens, above 1 flattens. Zero means greedy decoding
    /// (always the most likely token, first on ties). Default 1.0.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens (ties with the k-th are kept too, as in nanoGPT).
    /// `None`, the default, keeps all.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probabilities sum to at least `p`, in
    /// `(0, 1]`. `None`, the default, keeps all.
    pub top_p: Option<f64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        }
    }
}

impl SamplingConfig {
    /// Greedy decoding: temperature zero.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`ModelError::Config`] for a negative or non-finite temperature, `top_k` of zero, or
    /// `top_p` outside `(0, 1]`.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(ModelError::Config {
                model: "sampling",
                reason,
            })
        };
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if self.top_k == Some(0) {
            return bad("top_k must be positive".into());
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad(format!("top_p must be in (0, 1], got {p}"));
            }
        }
        Ok(())
    }

    /// Draws one token index from `logits` (one entry per vocabulary item).
    ///
    /// ```text
    /// z = logits / temperature;  z_i = -inf outside top-k and top-p;  p = softmax(z)
    /// ```
    ///
    /// # Errors
    /// [`ModelError::Config`] if the config is invalid, [`ModelError::Input`] for empty logits.
    pub fn sample(&self, logits: &[f64], gen: &mut Generator) -> Result<usize> {
        self.validate()?;
        if logits.is_empty() {
            return Err(ModelError::Input {
                model: "sampling",
                reason: "empty logits".into(),
            });
        }
        if self.temperature == 0.0 {
            return Ok(argmax(logits));
        }
        let mut z: Vec<f64> = logits.iter().map(|l| l / self.temperature).collect();
        if let Some(k) = self.top_k {
            keep_top_k(&mut z, k);
        }
        let mut probs = softmax(&z);
        if let Some(p) = self.top_p {
            keep_top_p(&mut probs, p);
        }
        let total: f64 = probs.iter().sum();
        let mut u = gen.uniform_f64() * total;
        for (i, &p) in probs.iter().enumerate() {
            if u < p {
                return Ok(i);
            }
            u -= p;
        }
        Ok(probs.iter().rposition(|&p| p > 0.0).unwrap_or(0))
    }
}

/// Index of the largest value, the first on ties.
fn argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Sets every value below the k-th largest to minus infinity.
fn keep_top_k(z: &mut [f64], k: usize) {
    if k >= z.len() {
        return;
    }
    let mut sorted = z.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let threshold = sorted[k - 1];
    for x in z.iter_mut() {
        if *x < threshold {
            *x = f64::NEG_INFINITY;
        }
    }
}

/// Zeroes the probabilities outside the smallest most-likely set whose mass reaches `p`.
fn keep_top_p(probs: &mut [f64], p: f64) {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut mass = 0.0;
    let mut kept = order.len();
    for (rank, &i) in order.iter().enumerate() {
        mass += probs[i];
        if mass >= p {
            kept = rank + 1;
            break;
        }
    }
    for &i in &order[kept..] {
        probs[i] = 0.0;
    }
}

/// A numerically stable softmax; minus infinity gives probability zero.
fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = z.iter().map(|&x| (x - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_the_largest_logit() {
        let mut gen = Generator::new(0);

        let token = SamplingConfig::greedy()
            .sample(&[0.1, 2.0, -1.0, 2.0], &mut gen)
            .unwrap();

        assert_eq!(token, 1);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let config = SamplingConfig {
            top_k: Some(1),
            ..SamplingConfig::default()
        };
        let mut gen = Generator::new(1);

        for _ in 0..20 {
            assert_eq!(config.sample(&[0.0, 0.5, 3.0, 1.0], &mut gen).unwrap(), 2);
        }
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // probabilities about 0.64, 0.24, 0.09, 0.03: p = 0.8 keeps the first two
        let logits = [3.0, 2.0, 1.0, 0.0];
        let config = SamplingConfig {
            top_p: Some(0.8),
            ..SamplingConfig::default()
        };
        let mut gen = Generator::new(2);

        let mut seen = [0usize; 4];
        for _ in 0..500 {
            seen[config.sample(&logits, &mut gen).unwrap()] += 1;
        }

        assert_eq!(seen[2] + seen[3], 0, "{seen:?}");
        assert!(seen[0] > seen[1] && seen[1] > 0, "{seen:?}");
    }

    #[test]
    fn sampling_follows_the_softmax() {
        let logits = [0.0, (3.0f64).ln()];
        let mut gen = Generator::new(3);

        let ones = (0..4000)
            .filter(|_| SamplingConfig::default().sample(&logits, &mut gen).unwrap() == 1)
            .count();

        let rate = ones as f64 / 4000.0;
        assert!((rate - 0.75).abs() < 0.03, "rate {rate}");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let mut gen = Generator::new(4);
        let bad = [
            SamplingConfig {
                temperature: -1.0,
                ..SamplingConfig::default()
            },
            SamplingConfig {
                top_k: Some(0),
                ..SamplingConfig::default()
            },
            SamplingConfig {
                top_p: Some(1.5),
                ..SamplingConfig::default()
            },
        ];

        for config in bad {
            assert!(matches!(
                config.sample(&[1.0, 2.0], &mut gen),
                Err(ModelError::Config { .. })
            ));
        }
    }
}
