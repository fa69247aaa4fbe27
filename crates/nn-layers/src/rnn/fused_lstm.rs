//! A whole LSTM layer in one direction as one recorded op, with a hand-written backward.
//!
//! Written with separate ops, each time step records about fifteen nodes (the hidden
//! product, the gate chunks, three sigmoids, two tanhs, the cell update) and backward walks
//! them one by one, allocating a tensor per node. As one op, each forward step is one
//! `(N, H) x (H, 4 H)` product followed by a single pass over contiguous memory that applies
//! the gate activations and the cell update; backward is one reverse pass that emits the
//! gate gradients of every step into one buffer, one `(N, 4 H) x (4 H, H)` product per step
//! for the hidden-state gradient, and a single `(4 H, L N) x (L N, H)` product for the
//! gradient of `W_hh` over all steps at once. When backward is itself recorded
//! (`create_graph`), the same rule is written with differentiable ops, so second derivatives
//! stay available.

use std::any::TypeId;

use rayon::prelude::*;
use strata_autograd::{is_grad_enabled, Backward, Result, Var};
use strata_tensor::kernels::{self, MatRef};
use strata_tensor::{Element, Tensor};

use super::ROW_CHUNK;

/// The three results of [`lstm_layer`]: output sequence, final hidden and cell state.
pub(super) struct LstmLayerOutput<T: Element> {
    /// `(L, N, H)`, step `t` at index `t` whatever the direction.
    pub(super) out: Var<T>,
    /// `(N, H)`, the hidden state after the last step processed.
    pub(super) h_n: Var<T>,
    /// `(N, H)`, the cell state after the last step processed.
    pub(super) c_n: Var<T>,
}

/// Runs one LSTM layer in one direction over precomputed input projections.
///
/// ```text
/// a_t = xw_t + h_{t-1} W_hh^T + b_ih + b_hh,     split into i, f, g, o (H each)
/// i, f, o = sigmoid(.), g = tanh(.)
/// c_t = f * c_{t-1} + i * g,     h_t = o * tanh(c_t)
/// backward, with dh_t = grad_out_t + da_{t+1} W_hh and dc_t carried from step t + 1:
///   dc_t += dh_t * o * (1 - tanh(c_t)^2)
///   da = [dc_t g i (1 - i), dc_t c_{t-1} f (1 - f), dc_t i (1 - g^2), dh_t tanh(c_t) o (1 - o)]
///   dc_{t-1} = dc_t * f,   grad W_hh = sum_t da_t^T h_{t-1},   grad b = sum_t da_t
/// ```
///
/// With `reverse`, steps run `t = L - 1 .. 0`, so `h_{t-1}` above is the state after step
/// `t + 1`.
///
/// # Shapes
/// - `xw`: `(L, N, 4 H)`; `w_hh`: `(4 H, H)`; `b_ih`, `b_hh`: `(4 H)`; `h0`, `c0`: `(N, H)`
/// - outputs: see [`LstmLayerOutput`]
///
/// # Errors
/// Tensor errors of the products or of the views that split the result.
pub(super) fn lstm_layer<T: Element>(
    xw: &Var<T>,
    w_hh: &Var<T>,
    biases: Option<(&Var<T>, &Var<T>)>,
    h0: &Var<T>,
    c0: &Var<T>,
    reverse: bool,
) -> Result<LstmLayerOutput<T>> {
    let (seq_len, batch, gh) = (xw.shape()[0], xw.shape()[1], xw.shape()[2]);
    let hidden = gh / 4;
    let bias = biases.map(|(b_ih, b_hh)| {
        let (b_ih, b_hh) = (b_ih.value().to_vec(), b_hh.value().to_vec());
        b_ih.iter()
            .zip(&b_hh)
            .map(|(&a, &b)| a + b)
            .collect::<Vec<T>>()
    });
    let xw_value = xw.value();
    let xw_data = xw_value.contiguous_slice();
    // Row-major `W_hh^T` once, so that no step's product reads a transposed view.
    let w_t = w_hh.value().transpose(0, 1)?.contiguous();
    let w_t = w_t.as_slice().expect("bug: contiguous() is contiguous");
    let step_len = batch * hidden;

    let mut gates = vec![T::zero(); seq_len * batch * gh];
    let mut cells = vec![T::zero(); seq_len * step_len];
    let mut tanh_cells = vec![T::zero(); seq_len * step_len];
    // Rows 0..L hold h_t; row L holds the final cell state.
    let mut result = vec![T::zero(); (seq_len + 1) * step_len];
    let (h0_value, c0_value) = (h0.value().to_vec(), c0.value().to_vec());
    // `h_{t-1} W_hh^T` of one step.
    let mut hw = vec![T::zero(); batch * gh];
    let mut last = 0;
    for step in 0..seq_len {
        let t = if reverse { seq_len - 1 - step } else { step };
        let (h_out, h_prev, c_out, c_prev) = match super::previous_step(reverse, t, seq_len) {
            Some(p) => {
                let (h_out, h_prev) = super::step_rows(&mut result, t, p, step_len);
                let (c_out, c_prev) = super::step_rows(&mut cells, t, p, step_len);
                (h_out, h_prev, c_out, c_prev)
            }
            None => (
                &mut result[t * step_len..(t + 1) * step_len],
                &h0_value[..],
                &mut cells[t * step_len..(t + 1) * step_len],
                &c0_value[..],
            ),
        };
        let rows = t * step_len..(t + 1) * step_len;
        let gate_rows = t * batch * gh..(t + 1) * batch * gh;
        let xw_t = &xw_data[gate_rows.clone()];
        let (gates_t, tanh_t) = (&mut gates[gate_rows], &mut tanh_cells[rows]);
        // Each task: its rows' product with W_hh^T, then their gates and cell update.
        gates_t
            .par_chunks_mut((ROW_CHUNK * gh).max(1))
            .zip(hw.par_chunks_mut((ROW_CHUNK * gh).max(1)))
            .zip(c_out.par_chunks_mut((ROW_CHUNK * hidden).max(1)))
            .zip(tanh_t.par_chunks_mut((ROW_CHUNK * hidden).max(1)))
            .zip(h_out.par_chunks_mut((ROW_CHUNK * hidden).max(1)))
            .enumerate()
            .for_each(|(chunk, ((((gates, hw), c_out), tanh_c), h_out))| {
                let n = c_out.len() / hidden;
                let r0 = chunk * ROW_CHUNK;
                let h_prev = MatRef::row_major(&h_prev[r0 * hidden..(r0 + n) * hidden], n, hidden);
                kernels::gemm(h_prev, MatRef::row_major(w_t, hidden, gh), hw, false)
                    .expect("bug: step product shapes agree");
                lstm_step_forward(
                    &xw_t[r0 * gh..(r0 + n) * gh],
                    hw,
                    bias.as_deref(),
                    &c_prev[r0 * hidden..(r0 + n) * hidden],
                    hidden,
                    gates,
                    c_out,
                    tanh_c,
                    h_out,
                );
            });
        last = t;
    }
    let final_cell = if seq_len > 0 {
        &cells[last * step_len..(last + 1) * step_len]
    } else {
        &c0_value[..]
    };
    result[seq_len * step_len..].copy_from_slice(final_cell);

    let mut inputs = vec![xw.clone(), w_hh.clone(), h0.clone(), c0.clone()];
    if let Some((b_ih, b_hh)) = biases {
        inputs.push(b_ih.clone());
        inputs.push(b_hh.clone());
    }
    let op = LstmLayerBackward {
        reverse,
        gates,
        tanh_cells,
        cells,
    };
    let value = Tensor::from_vec(result, &[seq_len + 1, batch, hidden])?;
    let all = Var::from_op(value, op, inputs);
    let last = if reverse { 0 } else { seq_len - 1 };
    Ok(LstmLayerOutput {
        out: all.narrow(0, 0, seq_len)?,
        h_n: all.narrow(0, last, 1)?.squeeze_dim(0)?,
        c_n: all.narrow(0, seq_len, 1)?.squeeze_dim(0)?,
    })
}

/// What backward needs: the activated gates `i, f, g, o` `(L, N, 4 H)`, and `c_t` and
/// `tanh(c_t)` `(L, N, H)`, all indexed by time step.
struct LstmLayerBackward<T: Element> {
    reverse: bool,
    gates: Vec<T>,
    tanh_cells: Vec<T>,
    cells: Vec<T>,
}

/// The gate activations and cell update of one step, for every row of the batch.
///
/// Runs the same code compiled for AVX2 where the CPU has it, so that the `f32` loops
/// process eight lanes at a time instead of the baseline's four.
fn lstm_step_forward<T: Element>(
    xw: &[T],
    hw: &[T],
    bias: Option<&[T]>,
    c_prev: &[T],
    hidden: usize,
    gates: &mut [T],
    cells: &mut [T],
    tanh_cells: &mut [T],
    h_out: &mut [T],
) {
    super::with_avx2(
        #[inline(always)]
        || {
            step_forward(
                xw, hw, bias, c_prev, hidden, gates, cells, tanh_cells, h_out,
            )
        },
    )
}

/// The body of [`lstm_step_forward`].
#[inline(always)]
fn step_forward<T: Element>(
    xw: &[T],
    hw: &[T],
    bias: Option<&[T]>,
    c_prev: &[T],
    hidden: usize,
    gates: &mut [T],
    cells: &mut [T],
    tanh_cells: &mut [T],
    h_out: &mut [T],
) {
    let gh = 4 * hidden;
    for row in 0..c_prev.len() / hidden {
        let a = &mut gates[row * gh..(row + 1) * gh];
        let (x, h) = (&xw[row * gh..(row + 1) * gh], &hw[row * gh..(row + 1) * gh]);
        match bias {
            Some(b) => {
                for j in 0..gh {
                    a[j] = x[j] + h[j] + b[j];
                }
            }
            None => {
                for j in 0..gh {
                    a[j] = x[j] + h[j];
                }
            }
        }
        let (ifg, o) = a.split_at_mut(3 * hidden);
        let (if_, g) = ifg.split_at_mut(2 * hidden);
        sigmoid_in_place(if_);
        tanh_in_place(g);
        sigmoid_in_place(o);
        let (i, f) = if_.split_at(hidden);
        let span = row * hidden..(row + 1) * hidden;
        let (c_prev, cells) = (&c_prev[span.clone()], &mut cells[span.clone()]);
        let (tanh_cells, h_out) = (&mut tanh_cells[span.clone()], &mut h_out[span]);
        for k in 0..hidden {
            cells[k] = f[k] * c_prev[k] + i[k] * g[k];
        }
        tanh_cells.copy_from_slice(cells);
        tanh_in_place(tanh_cells);
        for k in 0..hidden {
            h_out[k] = o[k] * tanh_cells[k];
        }
    }
}

/// `values` seen as `f32`, when `T` is `f32`.
#[inline(always)]
fn as_f32<T: Element>(values: &mut [T]) -> Option<&mut [f32]> {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: `T` is `f32` (the type ids are equal), so the slice already is a `[f32]`.
        Some(unsafe { &mut *(values as *mut [T] as *mut [f32]) })
    } else {
        None
    }
}

/// The logistic sigmoid of each element: a vectorisable polynomial for `f32`, the standard
/// library's `exp` otherwise.
#[inline(always)]
pub(super) fn sigmoid_in_place<T: Element>(values: &mut [T]) {
    match as_f32(values) {
        Some(v) => v.iter_mut().for_each(|x| *x = 1.0 / (1.0 + exp_f32(-*x))),
        None => values.iter_mut().for_each(|x| *x = sigmoid(*x)),
    }
}

/// The hyperbolic tangent of each element: a vectorisable rational form for `f32`, the
/// standard library's `tanh` otherwise.
#[inline(always)]
pub(super) fn tanh_in_place<T: Element>(values: &mut [T]) {
    match as_f32(values) {
        Some(v) => v.iter_mut().for_each(|x| *x = tanh_f32(*x)),
        None => values.iter_mut().for_each(|x| *x = x.tanh()),
    }
}

/// `e^x` in `f32` within about 2 ulp, without branches so that loops over it vectorise.
///
/// ```text
/// x = n ln 2 + r, |r| <= ln 2 / 2;   e^x = 2^n e^r,   e^r by Cephes' degree-6 polynomial
/// ```
///
/// Inputs are clamped to `[-87.3, 88.0]`, so the result is never infinite and never
/// subnormal: below `-87.3` it gives about `1.2e-38` instead of a smaller number.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.0);
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer in plain arithmetic,
    // which vectorises where `round` would be a library call per element.
    const ROUND: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    er * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `tanh(x)` in `f32` within a few ulp, without branches: Cephes' odd polynomial below
/// `|x| = 0.625`, `1 - 2 / (e^{2|x|} + 1)` with the sign of `x` above.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let z = x * x;
    let p = -5.704_988_7e-3_f32;
    let p = p * z + 2.063_909e-2;
    let p = p * z - 5.373_971_6e-2;
    let p = p * z + 1.333_144_2e-1;
    let p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    let large = (1.0 - 2.0 / (exp_f32(2.0 * x.abs()) + 1.0)).copysign(x);
    if x.abs() < 0.625 {
        small
    } else {
        large
    }
}

/// Logistic sigmoid without overflow for large `|x|`.
#[inline(always)]
fn sigmoid<T: Element>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

impl<T: Element> LstmLayerBackward<T> {
    /// The fast rule on plain buffers: gradients of `xw`, `W_hh`, `h0`, `c0` and the bias.
    fn direct(&self, inputs: &[Var<T>], result: &Var<T>, grad: &Var<T>) -> Result<Grads<T>> {
        let (seq_len, batch, gh) = (
            inputs[0].shape()[0],
            inputs[0].shape()[1],
            inputs[0].shape()[2],
        );
        let hidden = gh / 4;
        let step_len = batch * hidden;
        let grad_value = grad.value();
        let grad_data = grad_value.contiguous_slice();
        let result_value = result.value();
        let hs = result_value.contiguous_slice();
        let w_hh = inputs[1].value().contiguous();
        let w_hh = w_hh.as_slice().expect("bug: contiguous() is contiguous");
        let c0 = inputs[3].value().to_vec();

        let mut d_gates = vec![T::zero(); seq_len * batch * gh];
        let mut dh_next = vec![T::zero(); step_len];
        let mut dc = grad_data[seq_len * step_len..].to_vec();
        for step in (0..seq_len).rev() {
            let t = if self.reverse {
                seq_len - 1 - step
            } else {
                step
            };
            let rows = t * step_len..(t + 1) * step_len;
            let gate_rows = t * batch * gh..(t + 1) * batch * gh;
            let c_prev = match super::previous_step(self.reverse, t, seq_len) {
                Some(p) => &self.cells[p * step_len..(p + 1) * step_len],
                None => &c0[..],
            };
            let (grad_h, tanh_c) = (&grad_data[rows.clone()], &self.tanh_cells[rows]);
            let gates_t = &self.gates[gate_rows.clone()];
            let carry = step > 0 || inputs[2].requires_grad();
            // Each task: its rows' gate gradients, then their `dh_{t-1} = da_t W_hh`.
            d_gates[gate_rows]
                .par_chunks_mut((ROW_CHUNK * gh).max(1))
                .zip(dh_next.par_chunks_mut((ROW_CHUNK * hidden).max(1)))
                .zip(dc.par_chunks_mut((ROW_CHUNK * hidden).max(1)))
                .enumerate()
                .for_each(|(chunk, ((da, dh_next), dc))| {
                    let n = dc.len() / hidden;
                    let (r0, r1) = (chunk * ROW_CHUNK * hidden, (chunk * ROW_CHUNK + n) * hidden);
                    lstm_step_backward(
                        &grad_h[r0..r1],
                        dh_next,
                        &gates_t[r0 * 4..r1 * 4],
                        &tanh_c[r0..r1],
                        &c_prev[r0..r1],
                        hidden,
                        dc,
                        da,
                    );
                    if carry {
                        let da = MatRef::row_major(&*da, n, gh);
                        kernels::gemm(da, MatRef::row_major(w_hh, gh, hidden), dh_next, false)
                            .expect("bug: step product shapes agree");
                    }
                });
        }

        // The state each step read, in time order, for one product over all steps.
        let mut h_prev = Vec::with_capacity(seq_len * step_len);
        let h0 = inputs[2].value().to_vec();
        for t in 0..seq_len {
            match super::previous_step(self.reverse, t, seq_len) {
                Some(p) => h_prev.extend_from_slice(&hs[p * step_len..(p + 1) * step_len]),
                None => h_prev.extend_from_slice(&h0),
            }
        }
        let h_prev = Tensor::from_vec(h_prev, &[seq_len * batch, hidden])?;
        let mut bias = vec![T::zero(); gh];
        for row in d_gates.chunks_exact(gh) {
            bias.iter_mut().zip(row).for_each(|(b, &d)| *b += d);
        }
        let d_gates = Tensor::from_vec(d_gates, &[seq_len * batch, gh])?;
        let d_w = d_gates.transpose(0, 1)?.matmul(&h_prev)?;
        Ok(Grads {
            xw: Var::new(d_gates.reshape(&[seq_len, batch, gh])?),
            w_hh: Var::new(d_w),
            h0: Var::new(Tensor::from_vec(dh_next, &[batch, hidden])?),
            c0: Var::new(Tensor::from_vec(dc, &[batch, hidden])?),
            bias: Var::new(Tensor::from_vec(bias, &[gh])?),
        })
    }

    /// The same rule with differentiable ops, for `create_graph`: the forward is recomputed
    /// from the inputs so that the saved activations carry their own graph.
    fn recorded(&self, inputs: &[Var<T>], grad: &Var<T>) -> Result<Grads<T>> {
        let (xw, w_hh) = (&inputs[0], &inputs[1]);
        let seq_len = xw.shape()[0];
        let bias = if inputs.len() > 4 {
            Some(inputs[4].add(&inputs[5])?)
        } else {
            None
        };
        let w_t = w_hh.transpose(0, 1)?;
        let order: Vec<usize> = if self.reverse {
            (0..seq_len).rev().collect()
        } else {
            (0..seq_len).collect()
        };

        let mut saved = Vec::with_capacity(seq_len);
        let (mut h, mut c) = (inputs[2].clone(), inputs[3].clone());
        for &t in &order {
            let mut a = xw.narrow(0, t, 1)?.squeeze_dim(0)?.add(&h.matmul(&w_t)?)?;
            if let Some(b) = &bias {
                a = a.add(b)?;
            }
            let a = a.chunk(4, 1)?;
            let (i, f, g, o) = (a[0].sigmoid(), a[1].sigmoid(), a[2].tanh(), a[3].sigmoid());
            let c_new = f.mul(&c)?.add(&i.mul(&g)?)?;
            let tc = c_new.tanh();
            let h_new = o.mul(&tc)?;
            saved.push(SavedStep {
                h_prev: h,
                c_prev: c,
                i,
                f,
                g,
                o,
                tc,
            });
            (h, c) = (h_new, c_new);
        }

        let one_minus = |v: &Var<T>| v.neg().add_scalar(T::one());
        let mut d_gates: Vec<Option<Var<T>>> = vec![None; seq_len];
        let mut dh_next: Option<Var<T>> = None;
        let mut dc = grad.narrow(0, seq_len, 1)?.squeeze_dim(0)?;
        let mut d_w: Option<Var<T>> = None;
        for (s, &t) in saved.iter().zip(&order).rev() {
            let mut dh = grad.narrow(0, t, 1)?.squeeze_dim(0)?;
            if let Some(next) = &dh_next {
                dh = dh.add(next)?;
            }
            let dc_t = dc.add(&dh.mul(&s.o)?.mul(&one_minus(&s.tc.square()))?)?;
            let di = dc_t.mul(&s.g)?.mul(&s.i)?.mul(&one_minus(&s.i))?;
            let df = dc_t.mul(&s.c_prev)?.mul(&s.f)?.mul(&one_minus(&s.f))?;
            let dg = dc_t.mul(&s.i)?.mul(&one_minus(&s.g.square()))?;
            let d_o = dh.mul(&s.tc)?.mul(&s.o)?.mul(&one_minus(&s.o))?;
            let da = Var::concat(&[&di, &df, &dg, &d_o], 1)?;
            dc = dc_t.mul(&s.f)?;
            dh_next = Some(da.matmul(w_hh)?);
            let step_w = da.transpose(0, 1)?.matmul(&s.h_prev)?;
            d_w = Some(match d_w {
                Some(total) => total.add(&step_w)?,
                None => step_w,
            });
            d_gates[t] = Some(da);
        }
        let d_gates: Vec<Var<T>> = d_gates
            .into_iter()
            .map(|d| d.expect("bug: every step ran"))
            .collect();
        let d_xw = Var::stack(&d_gates.iter().collect::<Vec<_>>(), 0)?;
        let bias = d_xw.sum_to_shape(&[xw.shape()[2]])?;
        Ok(Grads {
            xw: d_xw,
            w_hh: d_w.expect("bug: at least one step ran"),
            h0: dh_next.expect("bug: at least one step ran"),
            c0: dc,
            bias,
        })
    }
}

/// One step of the reverse pass, for every row of the batch: the pre-activation gate
/// gradients into `d_gates`, and `dc` carried from `dc_t` to `dc_{t-1}`.
fn lstm_step_backward<T: Element>(
    grad_h: &[T],
    dh_next: &[T],
    gates: &[T],
    tanh_cells: &[T],
    c_prev: &[T],
    hidden: usize,
    dc: &mut [T],
    d_gates: &mut [T],
) {
    super::with_avx2(
        #[inline(always)]
        || {
            step_backward(
                grad_h, dh_next, gates, tanh_cells, c_prev, hidden, dc, d_gates,
            )
        },
    )
}

/// The body of [`lstm_step_backward`].
#[inline(always)]
fn step_backward<T: Element>(
    grad_h: &[T],
    dh_next: &[T],
    gates: &[T],
    tanh_cells: &[T],
    c_prev: &[T],
    hidden: usize,
    dc: &mut [T],
    d_gates: &mut [T],
) {
    let gh = 4 * hidden;
    let one = T::one();
    for row in 0..c_prev.len() / hidden {
        let a = &gates[row * gh..(row + 1) * gh];
        let da = &mut d_gates[row * gh..(row + 1) * gh];
        let (i, f, g, o) = (
            &a[..hidden],
            &a[hidden..2 * hidden],
            &a[2 * hidden..3 * hidden],
            &a[3 * hidden..],
        );
        let (da_if, da_go) = da.split_at_mut(2 * hidden);
        let (da_i, da_f) = da_if.split_at_mut(hidden);
        let (da_g, da_o) = da_go.split_at_mut(hidden);
        let span = row * hidden..(row + 1) * hidden;
        let (grad_h, dh_next) = (&grad_h[span.clone()], &dh_next[span.clone()]);
        let (tanh_cells, c_prev) = (&tanh_cells[span.clone()], &c_prev[span.clone()]);
        let dc = &mut dc[span];
        for k in 0..hidden {
            let dh = grad_h[k] + dh_next[k];
            let tc = tanh_cells[k];
            let dc_t = dc[k] + dh * o[k] * (one - tc * tc);
            da_i[k] = dc_t * g[k] * i[k] * (one - i[k]);
            da_f[k] = dc_t * c_prev[k] * f[k] * (one - f[k]);
            da_g[k] = dc_t * i[k] * (one - g[k] * g[k]);
            da_o[k] = dh * tc * o[k] * (one - o[k]);
            dc[k] = dc_t * f[k];
        }
    }
}

/// The recomputed activations of one step, for the recorded rule.
struct SavedStep<T: Element> {
    h_prev: Var<T>,
    c_prev: Var<T>,
    i: Var<T>,
    f: Var<T>,
    g: Var<T>,
    o: Var<T>,
    tc: Var<T>,
}

/// Gradients of the op's inputs; `bias` goes to `b_ih` and `b_hh` alike.
struct Grads<T: Element> {
    xw: Var<T>,
    w_hh: Var<T>,
    h0: Var<T>,
    c0: Var<T>,
    bias: Var<T>,
}

impl<T: Element> Backward<T> for LstmLayerBackward<T> {
    fn name(&self) -> &'static str {
        "lstm_layer"
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
        let mut out = vec![
            Some(grads.xw),
            Some(grads.w_hh),
            Some(grads.h0),
            Some(grads.c0),
        ];
        if inputs.len() > 4 {
            out.push(Some(grads.bias.clone()));
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

    /// Every result of the op in one vector: output, `h_n` and `c_n` flattened.
    fn all_results(v: &[Var<f64>], reverse: bool) -> Result<Var<f64>> {
        let biases = (v.len() > 4).then(|| (&v[4], &v[5]));
        let run = lstm_layer(&v[0], &v[1], biases, &v[2], &v[3], reverse)?;
        let parts = [
            run.out.flatten(0, -1)?,
            run.h_n.flatten(0, -1)?,
            run.c_n.flatten(0, -1)?,
        ];
        Var::concat(&parts.iter().collect::<Vec<_>>(), 0)
    }

    fn inputs(
        seq_len: usize,
        batch: usize,
        hidden: usize,
        bias: bool,
        seed: u64,
    ) -> Vec<Tensor<f64>> {
        let mut gen = Generator::new(seed);
        let gh = 4 * hidden;
        let mut shapes = vec![
            vec![seq_len, batch, gh],
            vec![gh, hidden],
            vec![batch, hidden],
            vec![batch, hidden],
        ];
        if bias {
            shapes.extend([vec![gh], vec![gh]]);
        }
        shapes.iter().map(|s| gen.uniform(s, -1.0, 1.0)).collect()
    }

    /// The op by the composed forward, recorded step by step.
    fn composed(v: &[Var<f64>], reverse: bool) -> Result<Var<f64>> {
        let seq_len = v[0].shape()[0];
        let w_t = v[1].transpose(0, 1)?;
        let (mut h, mut c) = (v[2].clone(), v[3].clone());
        let mut outs = vec![None; seq_len];
        for step in 0..seq_len {
            let t = if reverse { seq_len - 1 - step } else { step };
            let mut a = v[0]
                .narrow(0, t, 1)?
                .squeeze_dim(0)?
                .add(&h.matmul(&w_t)?)?;
            if v.len() > 4 {
                a = a.add(&v[4])?.add(&v[5])?;
            }
            let a = a.chunk(4, 1)?;
            c = a[1]
                .sigmoid()
                .mul(&c)?
                .add(&a[0].sigmoid().mul(&a[2].tanh())?)?;
            h = a[3].sigmoid().mul(&c.tanh())?;
            outs[t] = Some(h.flatten(0, -1)?);
        }
        let mut parts: Vec<Var<f64>> = outs.into_iter().map(|o| o.unwrap()).collect();
        parts.extend([h.flatten(0, -1)?, c.flatten(0, -1)?]);
        Var::concat(&parts.iter().collect::<Vec<_>>(), 0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn fused_layer_passes_gradcheck(
            seq_len in 1usize..4,
            batch in 1usize..3,
            hidden in 1usize..4,
            bias in any::<bool>(),
            reverse in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let xs = inputs(seq_len, batch, hidden, bias, seed);

            let result = gradcheck(|v| all_results(v, reverse), &xs, GradcheckOptions::default());

            prop_assert!(result.is_ok(), "{result:?}");
        }

        #[test]
        fn fused_layer_matches_the_composed_ops(
            seq_len in 1usize..5,
            // Past `ROW_CHUNK` rows too, where a step is split into tasks.
            batch in prop_oneof![1usize..4, 15usize..40],
            hidden in 1usize..4,
            bias in any::<bool>(),
            reverse in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let xs = inputs(seq_len, batch, hidden, bias, seed);
            let fused_vars: Vec<_> = xs.iter().map(|x| Var::parameter(x.clone())).collect();
            let plain_vars: Vec<_> = xs.iter().map(|x| Var::parameter(x.clone())).collect();
            let fused = all_results(&fused_vars, reverse).unwrap();
            let plain = composed(&plain_vars, reverse).unwrap();
            let weights = Var::new(Generator::new(seed + 1).uniform(fused.shape(), -1.0, 1.0));

            fused.mul(&weights).unwrap().sum_all().backward().unwrap();
            plain.mul(&weights).unwrap().sum_all().backward().unwrap();

            let close = |a: &Tensor<f64>, b: &Tensor<f64>| {
                a.to_vec().iter().zip(b.to_vec()).all(|(x, y)| (x - y).abs() < 1e-12)
            };
            prop_assert!(close(&fused.value(), &plain.value()));
            for (f, p) in fused_vars.iter().zip(&plain_vars) {
                prop_assert!(close(&f.grad().unwrap(), &p.grad().unwrap()));
            }
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
                let vars: Vec<Var<f32>> = inputs(5, 2 * ROW_CHUNK + 3, 24, true, 3)
                    .iter()
                    .map(|x| Var::parameter(x.cast::<f32>()))
                    .collect();
                let biases = Some((&vars[4], &vars[5]));
                let run =
                    lstm_layer(&vars[0], &vars[1], biases, &vars[2], &vars[3], false).unwrap();
                let y = run.out.sum_all().add(&run.c_n.sum_all()).unwrap();
                y.backward().unwrap();
                let mut all = vec![run.out.value().to_vec(), run.c_n.value().to_vec()];
                all.extend(vars.iter().map(|v| v.grad().unwrap().to_vec()));
                all
            })
        };

        assert_eq!(run(1), run(3));
    }

    #[test]
    fn fast_f32_exp_tanh_and_sigmoid_stay_within_a_few_ulp() {
        let rel = |got: f32, want: f64| ((got as f64 - want) / want.abs().max(1e-30)).abs();
        let mut worst = [0.0f64; 3];
        for k in -40_000..=40_000 {
            let x = k as f32 * 0.002_5;
            let mut s = [x];
            sigmoid_in_place(&mut s[..]);
            let sigmoid_want = 1.0 / (1.0 + (-(x as f64)).exp());
            if (-87.0..=88.0).contains(&x) {
                worst[0] = worst[0].max(rel(exp_f32(x), (x as f64).exp()));
            }
            worst[1] = worst[1].max(rel(tanh_f32(x), (x as f64).tanh()));
            worst[2] = worst[2].max(rel(s[0], sigmoid_want));
        }

        assert!(worst.iter().all(|&w| w < 4e-7), "relative errors {worst:?}");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(-30.0), -1.0);
        assert!(exp_f32(-200.0) >= 0.0 && exp_f32(200.0).is_finite());
    }

    #[test]
    fn fused_layer_passes_gradgradcheck_in_both_directions() {
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
