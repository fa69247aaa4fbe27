//! A whole Elman RNN layer (tanh or ReLU) in one direction as one recorded op, with a
//! hand-written backward.
//!
//! As for the LSTM (see `fused_lstm`): each forward step is one `(N, H) x (H, H)` product and
//! one activation pass; backward is one reverse pass with one `(N, H) x (H, H)` product per
//! step, and one `(H, L N) x (L N, H)` product for the gradient of `W_hh`. Under
//! `create_graph` the rule is written with differentiable ops instead.

use strata_autograd::{is_grad_enabled, Backward, Result, Var};
use strata_tensor::{Element, Tensor};

use super::fused_lstm::tanh_in_place;
use super::Nonlinearity;

/// Runs one RNN layer in one direction over precomputed input projections (both biases
/// included); returns the output sequence `(L, N, H)` (step `t` at index `t`) and the final
/// hidden state `(N, H)`.
///
/// ```text
/// h_t = act(xw_t + h_{t-1} W_hh^T),   act = tanh or relu
/// backward: da_t = (grad_out_t + da_{t+1} W_hh) * act'(h_t),
///           act' = 1 - h_t^2 for tanh, [h_t > 0] for relu
///           grad xw_t = da_t,   grad W_hh = sum_t da_t^T h_{t-1}
/// ```
///
/// # Shapes
/// - `xw`: `(L, N, H)`; `w_hh`: `(H, H)`; `h0`: `(N, H)`
///
/// # Errors
/// Tensor errors of the products or of the views that split the result.
pub(super) fn rnn_layer<T: Element>(
    xw: &Var<T>,
    w_hh: &Var<T>,
    h0: &Var<T>,
    act: Nonlinearity,
    reverse: bool,
) -> Result<(Var<T>, Var<T>)> {
    let (seq_len, batch, hidden) = (xw.shape()[0], xw.shape()[1], xw.shape()[2]);
    let xw_value = xw.value();
    let xw_data = xw_value.contiguous_slice();
    let w_t = w_hh.value().transpose(0, 1)?.contiguous();
    let step_len = batch * hidden;

    let mut result = vec![T::zero(); seq_len * step_len];
    let mut h_prev = h0.value().contiguous();
    for step in 0..seq_len {
        let t = if reverse { seq_len - 1 - step } else { step };
        let hw = h_prev.matmul(&w_t)?;
        let hw = hw
            .as_slice()
            .expect("bug: matmul returns a contiguous tensor");
        let rows = t * step_len..(t + 1) * step_len;
        let h = &mut result[rows.clone()];
        for ((h, &x), &p) in h.iter_mut().zip(&xw_data[rows.clone()]).zip(hw) {
            *h = x + p;
        }
        match act {
            Nonlinearity::Tanh => tanh_in_place(h),
            Nonlinearity::Relu => h.iter_mut().for_each(|v| *v = v.max(T::zero())),
        }
        h_prev = Tensor::from_vec(h.to_vec(), &[batch, hidden])?;
    }

    let inputs = vec![xw.clone(), w_hh.clone(), h0.clone()];
    let op = RnnLayerBackward { act, reverse };
    let value = Tensor::from_vec(result, &[seq_len, batch, hidden])?;
    let out = Var::from_op(value, op, inputs);
    let last = if reverse { 0 } else { seq_len - 1 };
    let h_n = out.narrow(0, last, 1)?.squeeze_dim(0)?;
    Ok((out, h_n))
}

/// Backward needs only the outputs, which the engine hands back as `result`.
struct RnnLayerBackward {
    act: Nonlinearity,
    reverse: bool,
}

impl RnnLayerBackward {
    fn order(&self, seq_len: usize) -> Vec<usize> {
        if self.reverse {
            (0..seq_len).rev().collect()
        } else {
            (0..seq_len).collect()
        }
    }

    /// The fast rule on plain buffers: gradients of `xw`, `W_hh` and `h0`.
    fn direct<T: Element>(
        &self,
        inputs: &[Var<T>],
        result: &Var<T>,
        grad: &Var<T>,
    ) -> Result<[Var<T>; 3]> {
        let (seq_len, batch, hidden) = (result.shape()[0], result.shape()[1], result.shape()[2]);
        let step_len = batch * hidden;
        let grad_value = grad.value();
        let grad_data = grad_value.contiguous_slice();
        let result_value = result.value();
        let hs = result_value.contiguous_slice();
        let w_hh = inputs[1].value();
        let h0 = inputs[2].value().to_vec();

        let mut d_pre = vec![T::zero(); seq_len * step_len];
        let mut dh_next = vec![T::zero(); step_len];
        for t in self.order(seq_len).into_iter().rev() {
            let rows = t * step_len..(t + 1) * step_len;
            let da = &mut d_pre[rows.clone()];
            let parts = da.iter_mut().zip(&grad_data[rows.clone()]).zip(&hs[rows]);
            for (((d, &g), &h), &next) in parts.zip(&dh_next) {
                let slope = match self.act {
                    Nonlinearity::Tanh => T::one() - h * h,
                    Nonlinearity::Relu if h > T::zero() => T::one(),
                    Nonlinearity::Relu => T::zero(),
                };
                *d = (g + next) * slope;
            }
            let da = Tensor::from_vec(da.to_vec(), &[batch, hidden])?;
            let dh = da.matmul(&w_hh)?;
            dh_next.copy_from_slice(dh.as_slice().expect("bug: matmul is contiguous"));
        }

        let mut h_prev = Vec::with_capacity(seq_len * step_len);
        for t in 0..seq_len {
            match super::previous_step(self.reverse, t, seq_len) {
                Some(p) => h_prev.extend_from_slice(&hs[p * step_len..(p + 1) * step_len]),
                None => h_prev.extend_from_slice(&h0),
            }
        }
        let h_prev = Tensor::from_vec(h_prev, &[seq_len * batch, hidden])?;
        let d_pre = Tensor::from_vec(d_pre, &[seq_len * batch, hidden])?;
        let d_w = d_pre.transpose(0, 1)?.matmul(&h_prev)?;
        Ok([
            Var::new(d_pre.reshape(&[seq_len, batch, hidden])?),
            Var::new(d_w),
            Var::new(Tensor::from_vec(dh_next, &[batch, hidden])?),
        ])
    }

    /// The same rule with differentiable ops, for `create_graph`: the forward is recomputed
    /// from the inputs so that the outputs carry their own graph.
    fn recorded<T: Element>(&self, inputs: &[Var<T>], grad: &Var<T>) -> Result<[Var<T>; 3]> {
        let (xw, w_hh) = (&inputs[0], &inputs[1]);
        let seq_len = xw.shape()[0];
        let w_t = w_hh.transpose(0, 1)?;
        let order = self.order(seq_len);

        let mut saved = Vec::with_capacity(seq_len);
        let mut h = inputs[2].clone();
        for &t in &order {
            let pre = xw.narrow(0, t, 1)?.squeeze_dim(0)?.add(&h.matmul(&w_t)?)?;
            let h_new = match self.act {
                Nonlinearity::Tanh => pre.tanh(),
                Nonlinearity::Relu => pre.relu(),
            };
            saved.push((h, h_new.clone()));
            h = h_new;
        }

        let mut d_pre: Vec<Option<Var<T>>> = vec![None; seq_len];
        let mut dh_next: Option<Var<T>> = None;
        let mut d_w: Option<Var<T>> = None;
        for ((h_prev, h), &t) in saved.iter().zip(&order).rev() {
            let mut dh = grad.narrow(0, t, 1)?.squeeze_dim(0)?;
            if let Some(next) = &dh_next {
                dh = dh.add(next)?;
            }
            let da = match self.act {
                Nonlinearity::Tanh => dh.mul(&h.square().neg().add_scalar(T::one()))?,
                Nonlinearity::Relu => {
                    let mask = h
                        .value()
                        .map(|v| if v > T::zero() { T::one() } else { T::zero() });
                    dh.mul(&Var::new(mask))?
                }
            };
            dh_next = Some(da.matmul(w_hh)?);
            let step_w = da.transpose(0, 1)?.matmul(h_prev)?;
            d_w = Some(match d_w {
                Some(total) => total.add(&step_w)?,
                None => step_w,
            });
            d_pre[t] = Some(da);
        }
        let d_pre: Vec<Var<T>> = d_pre
            .into_iter()
            .map(|d| d.expect("bug: every step ran"))
            .collect();
        Ok([
            Var::stack(&d_pre.iter().collect::<Vec<_>>(), 0)?,
            d_w.expect("bug: at least one step ran"),
            dh_next.expect("bug: at least one step ran"),
        ])
    }
}

impl<T: Element> Backward<T> for RnnLayerBackward {
    fn name(&self) -> &'static str {
        "rnn_layer"
    }

    fn backward(
        &self,
        inputs: &[Var<T>],
        result: &Var<T>,
        grad: &Var<T>,
    ) -> Result<Vec<Option<Var<T>>>> {
        let grads = if is_grad_enabled() {
            self.recorded(inputs, grad)?
        } else {
            self.direct(inputs, result, grad)?
        };
        Ok(grads
            .into_iter()
            .zip(inputs)
            .map(|(g, input)| input.requires_grad().then_some(g))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strata_autograd::{gradcheck, gradgradcheck, GradcheckOptions};
    use strata_tensor::Generator;

    use super::*;

    fn all_results(v: &[Var<f64>], act: Nonlinearity, reverse: bool) -> Result<Var<f64>> {
        let (out, h_n) = rnn_layer(&v[0], &v[1], &v[2], act, reverse)?;
        Var::concat(&[&out.flatten(0, -1)?, &h_n.flatten(0, -1)?], 0)
    }

    fn inputs(seq_len: usize, batch: usize, hidden: usize, seed: u64) -> Vec<Tensor<f64>> {
        let mut gen = Generator::new(seed);
        [
            vec![seq_len, batch, hidden],
            vec![hidden, hidden],
            vec![batch, hidden],
        ]
        .iter()
        .map(|s| gen.uniform(s, -1.0, 1.0))
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn fused_tanh_rnn_layer_passes_gradcheck(
            seq_len in 1usize..4,
            batch in 1usize..3,
            hidden in 1usize..4,
            reverse in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let xs = inputs(seq_len, batch, hidden, seed);

            let result = gradcheck(
                |v| all_results(v, Nonlinearity::Tanh, reverse),
                &xs,
                GradcheckOptions::default(),
            );

            prop_assert!(result.is_ok(), "{result:?}");
        }
    }

    #[test]
    fn fused_relu_rnn_layer_passes_gradcheck_away_from_the_kink() {
        // One step from a zero state: pre-activations are the drawn xw, bounded away from 0.
        let mut xs = inputs(1, 2, 3, 5);
        xs[0] = Tensor::from_vec(vec![0.7, -0.4, 0.9, -0.8, 0.3, 0.5], &[1, 2, 3]).unwrap();
        xs[2] = Tensor::zeros(&[2, 3]);

        for reverse in [false, true] {
            let result = gradcheck(
                |v| all_results(v, Nonlinearity::Relu, reverse),
                &xs,
                GradcheckOptions::default(),
            );

            assert!(result.is_ok(), "{result:?}");
        }
    }

    #[test]
    fn fused_tanh_rnn_layer_passes_gradgradcheck_in_both_directions() {
        for reverse in [false, true] {
            let xs = inputs(3, 2, 2, 7);

            let result = gradgradcheck(
                |v| all_results(v, Nonlinearity::Tanh, reverse),
                &xs,
                GradcheckOptions::default(),
            );

            assert!(result.is_ok(), "reverse {reverse}: {result:?}");
        }
    }
}
