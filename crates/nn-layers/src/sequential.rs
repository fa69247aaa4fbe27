//! `Sequential`: a chain of single-input modules run one after another.

use strata_autograd::Var;
use strata_tensor::Element;

use crate::error::Result;
use crate::module::{prefixed, Forward, Module};

/// Modules applied in order, PyTorch's `nn.Sequential`; child `i` is named `i`, so its
/// parameters are `0.weight`, `0.bias`, `2.weight`...
///
/// ```
/// use strata_nn_layers::{Linear, Module, ReLU, Sequential};
/// use strata_tensor::Generator;
///
/// let mut gen = Generator::new(0);
/// let mlp = Sequential::<f32>::new()
///     .push(Linear::new(4, 8, &mut gen))
///     .push(ReLU)
///     .push(Linear::new(8, 3, &mut gen));
/// let names: Vec<String> = mlp.named_parameters().into_iter().map(|p| p.0).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// ```
///
/// # Shapes
/// - input: what the first module takes; output: what the last gives
pub struct Sequential<T: Element> {
    layers: Vec<Box<dyn Forward<T>>>,
}

impl<T: Element> std::fmt::Debug for Sequential<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential")
            .field("len", &self.layers.len())
            .finish()
    }
}

impl<T: Element> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> Sequential<T> {
    /// An empty chain, which passes its input through.
    pub fn new() -> Self {
        Self { layers: Vec::new() }
    }

    /// Appends `module` and returns the chain, for building in one expression.
    pub fn push(mut self, module: impl Forward<T> + 'static) -> Self {
        self.layers.push(Box::new(module));
        self
    }

    /// Appends `module` in place (PyTorch's `Sequential.append`).
    pub fn append(&mut self, module: impl Forward<T> + 'static) {
        self.layers.push(Box::new(module));
    }

    /// Appends an already boxed module.
    pub fn append_boxed(&mut self, module: Box<dyn Forward<T>>) {
        self.layers.push(module);
    }

    /// The number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the chain has no module.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The module at position `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&dyn Forward<T>> {
        self.layers.get(index).map(|m| m.as_ref())
    }
}

impl<T: Element> Module<T> for Sequential<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_parameters(&prefixed(prefix, &i.to_string()), f);
        }
    }

    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.visit_buffers(&prefixed(prefix, &i.to_string()), f);
        }
    }

    fn set_training(&mut self, training: bool) {
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }
}

impl<T: Element> Forward<T> for Sequential<T> {
    /// Runs each module on the output of the one before.
    ///
    /// # Errors
    /// The first error of a module.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let mut out = xs.clone();
        for layer in &self.layers {
            out = layer.forward(&out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::{Generator, Tensor};

    use super::*;
    use crate::{Dropout, Linear, ReLU};

    #[test]
    fn chains_modules_and_propagates_training_mode() {
        let mut gen = Generator::new(1);
        let mut seq = Sequential::<f64>::new()
            .push(Linear::new(3, 4, &mut gen))
            .push(ReLU)
            .push(Dropout::new(0.9, 0).unwrap());
        seq.eval();
        let xs = Var::new(Tensor::ones(&[2, 3]));

        let a = seq.forward(&xs).unwrap().value();
        let b = seq.forward(&xs).unwrap().value();

        assert_eq!(a.shape(), &[2, 4]);
        assert_eq!(a, b);
        assert_eq!(seq.len(), 3);
        assert_eq!(seq.num_parameters(), 16);
    }

    #[test]
    fn empty_chain_is_identity() {
        let seq = Sequential::<f32>::default();
        let xs = Var::new(Tensor::ones(&[2]));

        assert!(seq.is_empty());
        assert_eq!(seq.forward(&xs).unwrap().value(), xs.value());
    }
}
