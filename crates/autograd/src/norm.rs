//! Layer normalization as one recorded op.
//!
//! Written as separate ops, a layer norm records eight nodes and keeps eight intermediate
//! tensors; as one op it records a single node that keeps the per-row mean and reciprocal
//! standard deviation, and its backward is one kernel of `strata-tensor`. When backward itself
//! is recorded (`create_graph`), the rule is written with differentiable ops instead, so
//! second derivatives stay available.

use strata_tensor::{layer_norm_backward, Element, Tensor};

use crate::mode::is_grad_enabled;
use crate::{Backward, Result, Var};

/// Gradients of the input, and of the weight and bias where they were given.
type InputGrads<T> = (Var<T>, Option<Var<T>>, Option<Var<T>>);

struct LayerNormBackward<T: Element> {
    normalized_shape: Vec<usize>,
    eps: f64,
    mean: Tensor<T>,
    rstd: Tensor<T>,
    has_weight: bool,
    has_bias: bool,
}

impl<T: Element> Var<T> {
    /// Layer normalization over the trailing `normalized_shape` dimensions, PyTorch's
    /// `F.layer_norm`.
    ///
    /// ```text
    /// y = (x - mean) / sqrt(var + eps) * weight + bias      (mean, biased var over each row)
    /// ```
    ///
    /// `weight` and `bias` are optional and have shape `normalized_shape`. A constant row
    /// gives `bias` (zero variance is guarded by `eps`).
    ///
    /// # Errors
    /// If the trailing dimensions of the input are not `normalized_shape`, or a weight or bias
    /// has another shape.
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Var<T>>,
        bias: Option<&Var<T>>,
        eps: f64,
    ) -> Result<Var<T>> {
        let (w, b) = (weight.map(Var::value), bias.map(Var::value));
        let out = self
            .value()
            .layer_norm(normalized_shape, w.as_ref(), b.as_ref(), eps)?;
        let mut inputs = vec![self.clone()];
        inputs.extend(weight.cloned());
        inputs.extend(bias.cloned());
        let op = LayerNormBackward {
            normalized_shape: normalized_shape.to_vec(),
            eps,
            mean: out.mean,
            rstd: out.rstd,
            has_weight: weight.is_some(),
            has_bias: bias.is_some(),
        };
        Ok(Var::from_op(out.output, op, inputs))
    }
}

impl<T: Element> LayerNormBackward<T> {
    /// The dimensions a row spans, as negative indices.
    fn row_dims(&self) -> Vec<isize> {
        (1..=self.normalized_shape.len() as isize)
            .map(|d| -d)
            .collect()
    }

    /// The same rule with differentiable ops, for `create_graph`.
    fn recorded(&self, inputs: &[Var<T>], grad: &Var<T>) -> Result<InputGrads<T>> {
        let x = &inputs[0];
        let dims = self.row_dims();
        let centered = x.sub(&x.mean_keepdim(&dims)?)?;
        let var = centered.square().mean_keepdim(&dims)?;
        let rstd = var.add_scalar(T::from_f64(self.eps)).rsqrt();
        let xhat = centered.mul(&rstd)?;
        let g = if self.has_weight {
            grad.mul(&inputs[1])?
        } else {
            grad.clone()
        };
        let mean_g = g.mean_keepdim(&dims)?;
        let mean_gx = g.mul(&xhat)?.mean_keepdim(&dims)?;
        let dx = rstd.mul(&g.sub(&mean_g)?.sub(&xhat.mul(&mean_gx)?)?)?;
        let shape = &self.normalized_shape;
        let dw = if self.has_weight {
            Some(grad.mul(&xhat)?.sum_to_shape(shape)?)
        } else {
            None
        };
        let db = if self.has_bias {
            Some(grad.sum_to_shape(shape)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

impl<T: Element> Backward<T> for LayerNormBackward<T> {
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    fn backward(
        &self,
        inputs: &[Var<T>],
        _result: &Var<T>,
        grad: &Var<T>,
    ) -> Result<Vec<Option<Var<T>>>> {
        let (dx, dw, db) = if is_grad_enabled() {
            self.recorded(inputs, grad)?
        } else {
            let weight = self.has_weight.then(|| inputs[1].value());
            let g = layer_norm_backward(
                &grad.value(),
                &inputs[0].value(),
                &self.normalized_shape,
                &self.mean,
                &self.rstd,
                weight.as_ref(),
                self.has_bias,
            )?;
            (
                Var::new(g.input),
                g.weight.map(Var::new),
                g.bias.map(Var::new),
            )
        };
        let mut grads = vec![inputs[0].requires_grad().then_some(dx)];
        let mut next = 1;
        if self.has_weight {
            grads.push(dw.filter(|_| inputs[next].requires_grad()));
            next += 1;
        }
        if self.has_bias {
            grads.push(db.filter(|_| inputs[next].requires_grad()));
        }
        Ok(grads)
    }
}
