//! `Dropout`: random zeroing of elements during training, with inverted scaling.

use std::marker::PhantomData;
use std::sync::Mutex;

use strata_autograd::Var;
use strata_tensor::{Element, Generator, Tensor};

use crate::error::{NnError, Result};
use crate::module::{Forward, Module};

/// Dropout, PyTorch's `nn.Dropout(p)`.
///
/// ```text
/// training:   y = x * m / (1 - p)      m_i ~ Bernoulli(1 - p), drawn anew on every call
/// evaluation: y = x
/// ```
///
/// The mask comes from a seeded [`Generator`] owned by the layer, so a run is reproducible.
/// Like every PyTorch module it starts in training mode; `p = 0` is the identity and `p = 1`
/// gives zeros.
///
/// # Shapes
/// - input: any shape; output: same shape
#[derive(Debug)]
pub struct Dropout<T: Element> {
    p: f64,
    training: bool,
    generator: Mutex<Generator>,
    _element: PhantomData<fn() -> T>,
}

impl<T: Element> Dropout<T> {
    /// Dropout with probability `p`, masks drawn from a generator seeded with `seed`.
    ///
    /// # Errors
    /// [`NnError::Config`] if `p` is not in `[0, 1]`.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        Self::with_generator(p, Generator::new(seed))
    }

    /// Dropout with probability `p`, masks drawn from `generator`.
    ///
    /// # Errors
    /// [`NnError::Config`] if `p` is not in `[0, 1]`.
    pub fn with_generator(p: f64, generator: Generator) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(NnError::Config {
                layer: "Dropout",
                reason: format!("dropout probability has to be between 0 and 1, but got {p}"),
            });
        }
        Ok(Self {
            p,
            training: true,
            generator: Mutex::new(generator),
            _element: PhantomData,
        })
    }

    /// The probability of zeroing an element.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training
    }
}

impl<T: Element> Module<T> for Dropout<T> {
    fn visit_parameters(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Var<T>)) {}

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl<T: Element> Forward<T> for Dropout<T> {
    /// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)` in
    /// training mode; returns `xs` unchanged in evaluation mode or for `p = 0`.
    ///
    /// # Errors
    /// None in practice; the signature is that of [`Forward`].
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        if !self.training || self.p == 0.0 {
            return Ok(xs.clone());
        }
        if self.p == 1.0 {
            return Ok(xs.mul_scalar(T::zero()));
        }
        let scale = T::from_f64(1.0 / (1.0 - self.p));
        let mask: Tensor<T> = {
            let mut gen = self.generator.lock().unwrap_or_else(|p| p.into_inner());
            gen.bernoulli::<T>(xs.shape(), 1.0 - self.p)
        };
        let mask = mask.map(|m| m * scale);
        Ok(xs.mul(&Var::new(mask))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_zeroes_about_p_and_scales_the_rest() {
        let drop = Dropout::<f64>::new(0.25, 1).unwrap();
        let xs = Var::new(Tensor::ones(&[4000]));

        let ys = drop.forward(&xs).unwrap().value().to_vec();
        let zeros = ys.iter().filter(|&&v| v == 0.0).count();

        assert!((900..1100).contains(&zeros), "{zeros} zeros");
        assert!(ys
            .iter()
            .all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn eval_mode_and_zero_p_are_identity() {
        let mut drop = Dropout::<f32>::new(0.5, 0).unwrap();
        let xs = Var::new(Tensor::ones(&[10]));
        drop.eval();
        let zero_p = Dropout::<f32>::new(0.0, 0).unwrap();

        assert_eq!(drop.forward(&xs).unwrap().value().to_vec(), vec![1.0; 10]);
        assert_eq!(zero_p.forward(&xs).unwrap().value().to_vec(), vec![1.0; 10]);
    }

    #[test]
    fn p_of_one_gives_zeros_and_bad_p_is_rejected() {
        let drop = Dropout::<f32>::new(1.0, 0).unwrap();
        let xs = Var::new(Tensor::ones(&[3]));

        assert_eq!(drop.forward(&xs).unwrap().value().to_vec(), vec![0.0; 3]);
        assert!(Dropout::<f32>::new(1.5, 0).is_err());
        assert!(Dropout::<f32>::new(-0.1, 0).is_err());
        assert!(Dropout::<f32>::new(f64::NAN, 0).is_err());
    }

    #[test]
    fn same_seed_same_mask() {
        let xs = Var::new(Tensor::<f32>::ones(&[64]));
        let a = Dropout::<f32>::new(0.5, 9)
            .unwrap()
            .forward(&xs)
            .unwrap()
            .value();
        let b = Dropout::<f32>::new(0.5, 9)
            .unwrap()
            .forward(&xs)
            .unwrap()
            .value();

        assert_eq!(a, b);
    }
}
