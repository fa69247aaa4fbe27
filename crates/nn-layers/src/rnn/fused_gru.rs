//! A whole GRU layer in one direction as one recorded op, with a hand-written backward.
//!
//! As for the LSTM (see `fused_lstm`): each forward step is one `(N, H) x (H, 3 H)` product
//! and one pass over contiguous memory for the gates; backward is one reverse pass that
//! emits the gate gradients of every step into one buffer, one `(N, 3 H) x (3 H, H)`
//! product per step, and one `(3 H, L N) x (L N, H)` product for the gradient of `W_hh`.
//! Under `create_graph` the rule is written with differentiable ops instead.

use rayon::prelude::*;
use strata_autograd::{is_grad_enabled, Backward, Result, Var};
use strata_tensor::kernels::{self, MatRef};
use strata_tensor::{Element, Tensor};

use super::ROW_CHUNK;

use super::fused_lstm::{sigmoid_in_place, tanh_in_place};

/// Runs one GRU layer in one direction over precomputed input projections; returns the
/// output sequence `(L, N, H)` (step `t` at index `t`) and the final hidden state `(N, H)`.
///
/// ```text
/// xw_t = x_t W_ih^T + b_ih (given),   hw_t = h_{t-1} W_hh^T + b_hh,   each split in r, z, n
/// r = sigmoid(xw_r + hw_r),   z = sigmoid(xw_z + hw_z),   n = tanh(xw_n + r * hw_n)
/// h_t = (1 - z) * n + z * h_{t-1}
/// backward, with dh_t = grad_out_t + dh carried from step t + 1:
///   dn = dh_t (1 - z) (1 - n^2),   dz = dh_t (h_{t-1} - n) z (1 - z),
///   dr = dn hw_n r (1 - r)
///   grad xw_t = [dr, dz, dn],   grad hw_t = [dr, dz, dn r]
///   dh_{t-1} = dh_t z + grad hw_t W_hh,   grad W_hh = sum_t grad hw_t^T h_{t-1}
/// ```
///
/// # Shapes
/// - `xw`: `(L, N, 3 H)`; `w_hh`: `(3 H, H)`; `b_hh`: `(3 H)`; `h0`: `(N, H)`
///
/// # Errors
/// Tensor errors of the products or of the views that split the result.
pub(super) fn gru_layer<T: Element>(
    xw: &Var<T>,
    w_hh: &Var<T>,
    b_hh: Option<&Var<T>>,
    h0: &Var<T>,
    reverse: bool,
) -> Result<(Var<T>, Var<T>)> {
    let (seq_len, batch, gh) = (xw.shape()[0], xw.shape()[1], xw.shape()[2]);
    let hidden = gh / 3;
    let bias = b_hh.map(|b| b.value().to_vec());
    let xw_value = xw.value();
    let xw_data = xw_value.contiguous_slice();
    // Row-major `W_hh^T` once, so that no step's product reads a transposed view.
    let w_t = w_hh.value().transpose(0, 1)?.contiguous();
    let w_t = w_t.as_slice().expect("bug: contiguous() is contiguous");
    let step_len = batch * hidden;
    let sh = 4 * hidden;

    // r, z, n and hw_n per step, `(L, N, 4 H)`.
    let mut saved = vec![T::zero(); seq_len * batch * sh];
    let mut result = vec![T::zero(); seq_len * step_len];
    let h0_value = h0.value().to_vec();
    // `h_{t-1} W_hh^T` of one step.
    let mut hw = vec![T::zero(); batch * gh];
    for step in 0..seq_len {
        let t = if reverse { seq_len - 1 - step } else { step };
        let (h_out, h_prev) = match super::previous_step(reverse, t, seq_len) {
            Some(p) => super::step_rows(&mut result, t, p, step_len),
            None => (&mut result[t * step_len..(t + 1) * step_len], &h0_value[..]),
        };
        let xw_t = &xw_data[t * batch * gh..(t + 1) * batch * gh];
        let saved_t = &mut saved[t * batch * sh..(t + 1) * batch * sh];
        // Each task: its rows' product with W_hh^T, then their gates and state update.
        saved_t
            .par_chunks_mut((ROW_CHUNK * sh).max(1))
            .zip(hw.par_chunks_mut((ROW_CHUNK * gh).max(1)))
            .zip(h_out.par_chunks_mut((ROW_CHUNK * hidden).max(1)))
            .enumerate()
            .for_each(|(chunk, ((saved, hw), h_out))| {
                let n = h_out.len() / hidden;
                let (r0, r1) = (chunk * ROW_CHUNK, chunk * ROW_CHUNK + n);
                let h_prev = &h_prev[r0 * hidden..r1 * hidden];
                let rows = MatRef::row_major(h_prev, n, hidden);
                kernels::gemm(rows, MatRef::row_major(w_t, hidden, gh), hw, false)
                    .expect("bug: step product shapes agree");
                gru_step_forward(
                    &xw_t[r0 * gh..r1 * gh],
                    hw,
                    bias.as_deref(),
                    h_prev,
                    hidden,
                    saved,
                    h_out,
                );
            });
    }

    let mut inputs = vec![xw.clone(), w_hh.clone(), h0.clone()];
    inputs.extend(b_hh.cloned());
    let op = GruLayerBackward { reverse, saved };
    let value = Tensor::from_vec(result, &[seq_len, batch, hidden])?;
    let out = Var::from_op(value, op, inputs);
    let last = if reverse { 0 } else { seq_len - 1 };
    let h_n = out.narrow(0, last, 1)?.squeeze_dim(0)?;
    Ok((out, h_n))
}

/// What backward needs: `r, z, n, hw_n` `(L, N, 4 H)`, indexed by time step.
struct GruLayerBackward<T: Element> {
    reverse: bool,
    saved: Vec<T>,
}

/// The gates and state update of one step, for every row of the batch.
///
/// Runs the same code compiled for AVX2 where the CPU has it, as the LSTM step does.
fn gru_step_forward<T: Element>(
    xw: &[T],
    hw: &[T],
    bias: Option<&[T]>,
    h_prev: &[T],
    hidden: usize,
    saved: &mut [T],
    h_out: &mut [T],
) {
    super::with_avx2(
        #[inline(always)]
        || step_forward(xw, hw, bias, h_prev, hidden, saved, h_out),
    )
}

/// The body of [`gru_step_forward`].
#[inline(always)]
fn step_forward<T: Element>(
    xw: &[T],
    hw: &[T],
    bias: Option<&[T]>,
    h_prev: &[T],
    hidden: usize,
    saved: &mut [T],
    h_out: &mut [T],
) {
    let (gh, sh) = (3 * hidden, 4 * hidden);
    for row in 0..h_prev.len() / hidden {
        let (x, h) = (&xw[row * gh..(row + 1) * gh], &hw[row * gh..(row + 1) * gh]);
        let s = &mut saved[row * sh..(row + 1) * sh];
        let (rz, rest) = s.split_at_mut(2 * hidden);
        let (n, hn) = rest.split_at_mut(hidden);
        for j in 0..2 * hidden {
            rz[j] = x[j] + h[j] + bias.map_or(T::zero(), |b| b[j]);
        }
        sigmoid_in_place(rz);
        let r = &rz[..hidden];
        for k in 0..hidden {
            hn[k] = h[2 * hidden + k] + bias.map_or(T::zero(), |b| b[2 * hidden + k]);
            n[k] = x[2 * hidden + k] + r[k] * hn[k];
        }
        tanh_in_place(n);
        let z = &rz[hidden..];
        let (h_prev, h_out) = (
            &h_prev[row * hidden..(row + 1) * hidden],
            &mut h_out[row * hidden..(row + 1) * hidden],
        );
        for k in 0..hidden {
            h_out[k] = n[k] + z[k] * (h_prev[k] - n[k]);
        }
    }
}

/// The gate gradients of one step for a block of rows: `dx` and `dhw` `(rows, 3 H)` and the
/// direct part `dh_t z` of `dh_{t-1}`, from the saved `r, z, n, hw_n` of the rows, the output
/// gradient and `dh` carried from the next step.
fn gru_rows_backward<T: Element>(
    saved: &[T],
    grad: &[T],
    dh_next: &[T],
    h_prev: &[T],
    hidden: usize,
    dx: &mut [T],
    dhw: &mut [T],
    dh_direct: &mut [T],
) {
    let (gh, sh) = (3 * hidden, 4 * hidden);
    let one = T::one();
    for row in 0..grad.len() / hidden.max(1) {
        let s = &saved[row * sh..(row + 1) * sh];
        let (r, z, n, hn) = (
            &s[..hidden],
            &s[hidden..2 * hidden],
            &s[2 * hidden..3 * hidden],
            &s[3 * hidden..],
        );
        let dx = &mut dx[row * gh..(row + 1) * gh];
        let dhw = &mut dhw[row * gh..(row + 1) * gh];
        for k in 0..hidden {
            let idx = row * hidden + k;
            let dh = grad[idx] + dh_next[idx];
            let dn = dh * (one - z[k]) * (one - n[k] * n[k]);
            let dz = dh * (h_prev[idx] - n[k]) * z[k] * (one - z[k]);
            let dr = dn * hn[k] * r[k] * (one - r[k]);
            dx[k] = dr;
            dx[hidden + k] = dz;
            dx[2 * hidden + k] = dn;
            dhw[k] = dr;
            dhw[hidden + k] = dz;
            dhw[2 * hidden + k] = dn * r[k];
            dh_direct[idx] = dh * z[k];
        }
    }
}

impl<T: Element> GruLayerBackward<T> {
    /// The fast rule on plain buffers: gradients of `xw`, `W_hh`, `h0` and `b_hh`.
    fn direct(&self, inputs: &[Var<T>], result: &Var<T>, grad: &Var<T>) -> Result<Grads<T>> {
        let (seq_len, batch, gh) = (
            inputs[0].shape()[0],
            inputs[0].shape()[1],
            inputs[0].shape()[2],
        );
        let hidden = gh / 3;
        let step_len = batch * hidden;
        let grad_value = grad.value();
        let grad_data = grad_value.contiguous_slice();
        let result_value = result.value();
        let hs = result_value.contiguous_slice();
        let w_hh = inputs[1].value().contiguous();
        let w_hh = w_hh.as_slice().expect("bug: contiguous() is contiguous");
        let h0 = inputs[2].value().to_vec();

        let mut d_xw = vec![T::zero(); seq_len * batch * gh];
        let mut d_hw = vec![T::zero(); seq_len * batch * gh];
        let mut dh_next = vec![T::zero(); step_len];
        let sh = 4 * hidden;
        for step in (0..seq_len).rev() {
            let t = if self.reverse {
                seq_len - 1 - step
            } else {
                step
            };
            let h_prev = match super::previous_step(self.reverse, t, seq_len) {
                Some(p) => &hs[p * step_len..(p + 1) * step_len],
                None => &h0[..],
            };
            let grad_t = &grad_data[t * step_len..(t + 1) * step_len];
            let saved_t = &self.saved[t * batch * sh..(t + 1) * batch * sh];
            let gate_rows = t * batch * gh..(t + 1) * batch * gh;
            // Each task: its rows' gate gradients, then `dh_{t-1} = dh_t z + grad hw_t W_hh`.
            d_xw[gate_rows.clone()]
                .par_chunks_mut((ROW_CHUNK * gh).max(1))
                .zip(d_hw[gate_rows].par_chunks_mut((ROW_CHUNK * gh).max(1)))
                .zip(dh_next.par_chunks_mut((ROW_CHUNK * hidden).max(1)))
                .enumerate()
                .for_each(|(chunk, ((dx, dhw), dh_next))| {
                    let n = dh_next.len() / hidden;
                    let r0 = chunk * ROW_CHUNK;
                    let span = r0 * hidden..(r0 + n) * hidden;
                    let mut dh_direct = vec![T::zero(); n * hidden];
                    gru_rows_backward(
                        &saved_t[r0 * sh..(r0 + n) * sh],
                        &grad_t[span.clone()],
                        dh_next,
                        &h_prev[span],
                        hidden,
                        dx,
                        dhw,
                        &mut dh_direct,
                    );
                    let rows = MatRef::row_major(&*dhw, n, gh);
                    kernels::gemm(rows, MatRef::row_major(w_hh, gh, hidden), dh_next, false)
                        .expect("bug: step product shapes agree");
                    for (d, &direct) in dh_next.iter_mut().zip(&dh_direct) {
                        *d += direct;
                    }
                });
        }

        let mut h_prev = Vec::with_capacity(seq_len * step_len);
        for t in 0..seq_len {
            match super::previous_step(self.reverse, t, seq_len) {
                Some(p) => h_prev.extend_from_slice(&hs[p * step_len..(p + 1) * step_len]),
                None => h_prev.extend_from_slice(&h0),
            }
        }
        let h_prev = Tensor::from_vec(h_prev, &[seq_len * batch, hidden])?;
        let mut bias = vec![T::zero(); gh];
        for row in d_hw.chunks_exact(gh) {
            bias.iter_mut().zip(row).for_each(|(b, &d)| *b += d);
        }
        let d_hw = Tensor::from_vec(d_hw, &[seq_len * batch, gh])?;
        Ok(Grads {
            xw: Var::new(Tensor::from_vec(d_xw, &[seq_len, batch, gh])?),
            w_hh: Var::new(d_hw.transpose(0, 1)?.matmul(&h_prev)?),
            h0: Var::new(Tensor::from_vec(dh_next, &[batch, hidden])?),
            bias: Var::new(Tensor::from_vec(bias, &[gh])?),
        })
    }

    /// The same rule with differentiable ops, for `create_graph`: the forward is recomputed
    /// from the inputs so that the saved activations carry their own graph.
    fn recorded(&self, inputs: &[Var<T>], grad: &Var<T>) -> Result<Grads<T>> {
        let (xw, w_hh) = (&inputs[0], &inputs[1]);
        let (seq_len, gh) = (xw.shape()[0], xw.shape()[2]);
        let w_t = w_hh.transpose(0, 1)?;
        let order: Vec<usize> = if self.reverse {
            (0..seq_len).rev().collect()
        } else {
            (0..seq_len).collect()
        };

        let mut saved = Vec::with_capacity(seq_len);
        let mut h = inputs[2].clone();
        for &t in &order {
            let x = xw.narrow(0, t, 1)?.squeeze_dim(0)?.chunk(3, 1)?;
            let mut hw = h.matmul(&w_t)?;
            if let Some(b) = inputs.get(3) {
                hw = hw.add(b)?;
            }
            let hw = hw.chunk(3, 1)?;
            let r = x[0].add(&hw[0])?.sigmoid();
            let z = x[1].add(&hw[1])?.sigmoid();
            let n = x[2].add(&r.mul(&hw[2])?)?.tanh();
            let h_new = n.add(&z.mul(&h.sub(&n)?)?)?;
            saved.push([h, r, z, n, hw[2].clone()]);
            h = h_new;
        }

        let one_minus = |v: &Var<T>| v.neg().add_scalar(T::one());
        let mut d_xw: Vec<Option<Var<T>>> = vec![None; seq_len];
        let mut dh_next: Option<Var<T>> = None;
        let mut d_w: Option<Var<T>> = None;
        let mut d_b: Option<Var<T>> = None;
        for ([h_prev, r, z, n, hn], &t) in saved.iter().zip(&order).rev() {
            let mut dh = grad.narrow(0, t, 1)?.squeeze_dim(0)?;
            if let Some(next) = &dh_next {
                dh = dh.add(next)?;
            }
            let dn = dh.mul(&one_minus(z))?.mul(&one_minus(&n.square()))?;
            let dz = dh.mul(&h_prev.sub(n)?)?.mul(z)?.mul(&one_minus(z))?;
            let dr = dn.mul(hn)?.mul(r)?.mul(&one_minus(r))?;
            let dhw = Var::concat(&[&dr, &dz, &dn.mul(r)?], 1)?;
            d_xw[t] = Some(Var::concat(&[&dr, &dz, &dn], 1)?);
            dh_next = Some(dh.mul(z)?.add(&dhw.matmul(w_hh)?)?);
            let step_w = dhw.transpose(0, 1)?.matmul(h_prev)?;
            let step_b = dhw.sum_to_shape(&[gh])?;
            d_w = Some(match d_w {
                Some(total) => total.add(&step_w)?,
                None => step_w,
            });
            d_b = Some(match d_b {
                Some(total) => total.add(&step_b)?,
                None => step_b,
            });
        }
        let d_xw: Vec<Var<T>> = d_xw
            .into_iter()
            .map(|d| d.expect("bug: every step ran"))
            .collect();
        Ok(Grads {
            xw: Var::stack(&d_xw.iter().collect::<Vec<_>>(), 0)?,
            w_hh: d_w.expect("bug: at least one step ran"),
            h0: dh_next.expect("bug: at least one step ran"),
            bias: d_b.expect("bug: at least one step ran"),
        })
    }
}

/// Gradients of the op's inputs.
struct Grads<T: Element> {
    xw: Var<T>,
    w_hh: Var<T>,
    h0: Var<T>,
    bias: Var<T>,
}

impl<T: Element> Backward<T> for GruLayerBackward<T> {
    fn name(&self) -> &'static str {
        "gru_layer"
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
        let mut out = vec![Some(grads.xw), Some(grads.w_hh), Some(grads.h0)];
        if inputs.len() > 3 {
            out.push(Some(grads.bias));
        }
        for (slot, input) in out.iter_mut().zip(inputs) {
            if !input.requires_grad() {
                *slot = None;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strata_autograd::{gradcheck, gradgradcheck, GradcheckOptions};
    use strata_tensor::Generator;

    use super::*;

    /// Output and `h_n` flattened into one vector.
    fn all_results(v: &[Var<f64>], reverse: bool) -> Result<Var<f64>> {
        let (out, h_n) = gru_layer(&v[0], &v[1], v.get(3), &v[2], reverse)?;
        Var::concat(&[&out.flatten(0, -1)?, &h_n.flatten(0, -1)?], 0)
    }

    fn inputs(
        seq_len: usize,
        batch: usize,
        hidden: usize,
        bias: bool,
        seed: u64,
    ) -> Vec<Tensor<f64>> {
        let mut gen = Generator::new(seed);
        let gh = 3 * hidden;
        let mut shapes = vec![
            vec![seq_len, batch, gh],
            vec![gh, hidden],
            vec![batch, hidden],
        ];
        if bias {
            shapes.push(vec![gh]);
        }
        shapes.iter().map(|s| gen.uniform(s, -1.0, 1.0)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn fused_gru_layer_passes_gradcheck(
            seq_len in 1usize..4,
            // Past `ROW_CHUNK` rows too, where a step is split into tasks.
            batch in prop_oneof![1usize..3, 17usize..20],
            hidden in 1usize..4,
            bias in any::<bool>(),
            reverse in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let xs = inputs(seq_len, batch, hidden, bias, seed);

            let result = gradcheck(|v| all_results(v, reverse), &xs, GradcheckOptions::default());

            prop_assert!(result.is_ok(), "{result:?}");
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let vars: Vec<Var<f32>> = inputs(4, 2 * ROW_CHUNK + 5, 12, true, 9)
                    .iter()
                    .map(|x| Var::parameter(x.cast::<f32>()))
                    .collect();
                let (out, h_n) =
                    gru_layer(&vars[0], &vars[1], Some(&vars[3]), &vars[2], true).unwrap();
                out.sum_all()
                    .add(&h_n.sum_all())
                    .unwrap()
                    .backward()
                    .unwrap();
                let mut all = vec![out.value().to_vec()];
                all.extend(vars.iter().map(|v| v.grad().unwrap().to_vec()));
                all
            })
        };

        assert_eq!(run(1), run(3));
    }

    #[test]
    fn fused_gru_layer_passes_gradgradcheck_in_both_directions() {
        for reverse in [false, true] {
            let xs = inputs(3, 2, 2, true, 7);

            let result = gradgradcheck(
                |v| all_results(v, reverse),
                &xs,
                GradcheckOptions::default(),
            );

            assert!(result.is_ok(), "reverse {reverse}: {result:?}");
        }
    }
}
