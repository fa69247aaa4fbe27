//! The `Module` trait: parameters named the way PyTorch names them, and training mode.

use strata_autograd::Var;
use strata_tensor::Element;

use crate::error::Result;

/// A layer or a model: something that owns parameters, and perhaps buffers and children.
///
/// It plays the part of PyTorch's `nn.Module`. Parameters and buffers are visited in a stable
/// order (registration order, children in order), each with its dotted PyTorch name
/// (`features.0.weight`, `rnn.weight_ih_l0`), so that a state dict written here loads into the
/// equivalent PyTorch module and the other way round.
///
/// Forward passes are inherent methods of each layer, since their inputs differ (an LSTM takes
/// a sequence and a state, a loss two tensors); layers with one input and one output also
/// implement [`Forward`], which is what `Sequential` chains.
pub trait Module<T: Element>: Send + Sync {
    /// Calls `f` with the dotted name and the variable of each parameter, in a stable order.
    ///
    /// `prefix` is prepended with a dot (nothing for the empty prefix); composites pass
    /// `prefixed(prefix, "child")` down to each child.
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>));

    /// Calls `f` with each buffer: state that is saved in the state dict but not trained, such
    /// as BatchNorm's running statistics. The default has none.
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        let _ = (prefix, f);
    }

    /// Switches training mode (dropout active, batch statistics) on or off, for this module
    /// and its children. The default does nothing, for modules that behave the same in both.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }

    /// Training mode on, PyTorch's `module.train()`.
    fn train(&mut self) {
        self.set_training(true);
    }

    /// Evaluation mode, PyTorch's `module.eval()`.
    fn eval(&mut self) {
        self.set_training(false);
    }

    /// Every parameter with its dotted name, in the order of [`Module::visit_parameters`].
    fn named_parameters(&self) -> Vec<(String, Var<T>)> {
        let mut out = Vec::new();
        self.visit_parameters("", &mut |name, var| {
            out.push((name.to_owned(), var.clone()))
        });
        out
    }

    /// Every parameter, in the order of [`Module::visit_parameters`]; what an optimizer takes.
    fn parameters(&self) -> Vec<Var<T>> {
        let mut out = Vec::new();
        self.visit_parameters("", &mut |_, var| out.push(var.clone()));
        out
    }

    /// Every buffer with its dotted name.
    fn named_buffers(&self) -> Vec<(String, Var<T>)> {
        let mut out = Vec::new();
        self.visit_buffers("", &mut |name, var| {
            out.push((name.to_owned(), var.clone()))
        });
        out
    }

    /// The total number of parameter elements.
    fn num_parameters(&self) -> usize {
        let mut n = 0;
        self.visit_parameters("", &mut |_, var| n += var.numel());
        n
    }

    /// Clears the gradient of every parameter, PyTorch's `module.zero_grad()`.
    fn zero_grad(&self) {
        self.visit_parameters("", &mut |_, var| var.zero_grad());
    }
}

/// A module with one input and one output, the kind `Sequential` chains.
pub trait Forward<T: Element>: Module<T> {
    /// Runs the module on `xs`.
    ///
    /// # Errors
    /// If `xs` has a shape the module cannot take.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>>;
}

/// `prefix.name`, or `name` alone for the empty prefix: the dotted names of PyTorch.
pub fn prefixed(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::Tensor;

    use super::*;

    struct Pair {
        a: Var<f32>,
        b: Var<f32>,
    }

    impl Module<f32> for Pair {
        fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<f32>)) {
            f(&prefixed(prefix, "a"), &self.a);
            f(&prefixed(prefix, "b"), &self.b);
        }
    }

    struct Outer {
        inner: Vec<Pair>,
    }

    impl Module<f32> for Outer {
        fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<f32>)) {
            for (i, p) in self.inner.iter().enumerate() {
                p.visit_parameters(&prefixed(&prefixed(prefix, "layers"), &i.to_string()), f);
            }
        }
    }

    fn pair() -> Pair {
        Pair {
            a: Var::parameter(Tensor::zeros(&[2, 3])),
            b: Var::parameter(Tensor::zeros(&[3])),
        }
    }

    #[test]
    fn nested_names_follow_pytorch() {
        let outer = Outer {
            inner: vec![pair(), pair()],
        };

        let names: Vec<String> = outer
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();

        assert_eq!(
            names,
            ["layers.0.a", "layers.0.b", "layers.1.a", "layers.1.b"]
        );
        assert_eq!(outer.num_parameters(), 18);
    }
}
