//! The affine map of a `Linear` layer as one recorded op, PyTorch's `F.linear`.
//!
//! Written as `x.matmul(&w.transpose(0, 1)).add(&b)`, the weight's gradient comes back
//! through the transpose as a transposed view, which every later reader (gradient clipping,
//! the optimizer) must copy; as one op, backward computes `dW = g^T x` directly in the
//! weight's own layout. It also records one node instead of three and adds the bias inside
//! the product.

use strata_tensor::Element;

use crate::{Backward, Result, Var};

struct LinearBackward {
    has_bias: bool,
}

impl<T: Element> Var<T> {
    /// `self @ weight^T + bias`, PyTorch's `F.linear`.
    ///
    /// ```text
    /// y = x W^T + b
    /// backward: dx = g W,  dW = g^T x  (over all leading dims),  db = sum of g over them
    /// ```
    ///
    /// # Shapes
    /// - `self`: `(*, in)`; `weight`: `(out, in)`; `bias`: `(out,)`
    /// - output: `(*, out)`
    ///
    /// # Errors
    /// If the shapes do not fit together (see [`strata_tensor::Tensor::linear`]).
    ///
    /// ```
    /// use strata_autograd::Var;
    /// use strata_tensor::Tensor;
    ///
    /// let x = Var::new(Tensor::from_vec(vec![1.0f64, 2.0], &[1, 2])?);
    /// let w = Var::parameter(Tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0, 0.0, 2.0], &[3, 2])?);
    /// let y = x.linear(&w, None)?;
    /// assert_eq!(y.value().to_vec(), vec![1.0, 3.0, 4.0]);
    /// y.sum_all().backward()?;
    /// assert_eq!(w.grad().unwrap().to_vec(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    /// # Ok::<(), strata_autograd::AutogradError>(())
    /// ```
    pub fn linear(&self, weight: &Var<T>, bias: Option<&Var<T>>) -> Result<Var<T>> {
        let b = bias.map(Var::value);
        let out = self.value().linear(&weight.value(), b.as_ref())?;
        let mut inputs = vec![self.clone(), weight.clone()];
        inputs.extend(bias.cloned());
        let op = LinearBackward {
            has_bias: bias.is_some(),
        };
        Ok(Var::from_op(out, op, inputs))
    }
}

impl<T: Element> Backward<T> for LinearBackward {
    fn name(&self) -> &'static str {
        "linear"
    }

    /// Written with differentiable ops, so the same rule serves `create_graph`; without it
    /// each op is a plain tensor op and `dW` comes out contiguous in `W`'s layout.
    fn backward(
        &self,
        inputs: &[Var<T>],
        _result: &Var<T>,
        grad: &Var<T>,
    ) -> Result<Vec<Option<Var<T>>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let (n_out, n_in) = (w.shape()[0], w.shape()[1]);
        let rows: usize = x.shape()[..x.ndim() - 1].iter().product();
        let g = grad.reshape(&[rows, n_out])?;
        let dx = x
            .requires_grad()
            .then(|| g.matmul(w)?.reshape(x.shape()))
            .transpose()?;
        let dw = w
            .requires_grad()
            .then(|| g.transpose(0, 1)?.matmul(&x.reshape(&[rows, n_in])?))
            .transpose()?;
        let mut grads = vec![dx, dw];
        if self.has_bias {
            let db = inputs[2]
                .requires_grad()
                .then(|| g.sum_to_shape(&[n_out]))
                .transpose()?;
            grads.push(db);
        }
        Ok(grads)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strata_tensor::Generator;

    use crate::{gradcheck, gradgradcheck, GradcheckOptions, Var};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn linear_passes_gradcheck_with_strided_operands(
            lead in proptest::collection::vec(1usize..4, 0..3),
            (n_in, n_out) in (1usize..5, 1usize..5),
            with_bias: bool,
            transposed: bool,
            seed: u64,
        ) {
            let mut gen = Generator::new(seed);
            let mut x_shape = lead.clone();
            x_shape.push(n_in);
            // Stored (in, out) when `transposed`, seen through a transposed view.
            let w_stored = if transposed { [n_in, n_out] } else { [n_out, n_in] };
            let inputs = vec![
                gen.uniform(&x_shape, -1.0, 1.0),
                gen.uniform(&w_stored, -1.0, 1.0),
                gen.uniform(&[n_out], -1.0, 1.0),
            ];
            let f = |v: &[Var<f64>]| {
                let w = if transposed { v[1].transpose(0, 1)? } else { v[1].clone() };
                v[0].linear(&w, with_bias.then_some(&v[2]))
            };

            let r = gradcheck(f, &inputs, GradcheckOptions::default());
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }

    #[test]
    fn linear_passes_gradgradcheck_and_leaves_a_contiguous_weight_gradient() {
        let mut gen = Generator::new(3);
        let inputs = vec![
            gen.uniform(&[2, 3, 4], -1.0, 1.0),
            gen.uniform(&[5, 4], -1.0, 1.0),
            gen.uniform(&[5], -1.0, 1.0),
        ];
        let f = |v: &[Var<f64>]| v[0].linear(&v[1], Some(&v[2]));
        assert!(gradgradcheck(f, &inputs, GradcheckOptions::default()).is_ok());

        let x = Var::parameter(inputs[0].clone());
        let w = Var::parameter(inputs[1].clone());
        x.linear(&w, None).unwrap().sum_all().backward().unwrap();
        assert!(w.grad().unwrap().is_contiguous());
        assert_eq!(x.grad().unwrap().shape(), &[2, 3, 4]);
    }

    #[test]
    fn linear_reports_shape_errors() {
        let x = Var::new(strata_tensor::Tensor::<f32>::ones(&[2, 3]));
        let w = Var::parameter(strata_tensor::Tensor::ones(&[4, 2]));
        let err = x.linear(&w, None).unwrap_err();
        assert!(err.to_string().contains("linear"), "{err}");
    }
}
