//! The tiled attention kernel: FlashAttention-2's forward and backward on the CPU.
//!
//! The forward pass walks blocks of `TILE_Q` queries against blocks of `TILE_K` keys with an
//! online softmax (a running row maximum `m` and running sum `l`), so it never holds more
//! than one `TILE_Q x TILE_K` block of scores: extra memory `O(seq * dim)` instead of the
//! math kernel's `O(seq^2)`. It saves only the log-sum-exp of each row; the backward pass
//! recomputes the score blocks from it. Dropout factors are a pure function of a seed and the
//! element's position, so backward regenerates them too. Causal blocks
//! entirely above the diagonal are skipped.
//!
//! Work is split over `(batch, head)` slices (and over query blocks in the forward pass) with
//! rayon; every output element is computed by one task in a fixed order, so results do not
//! depend on the thread count.
//!
//! When backward is itself recorded (`create_graph`), the rule falls back to differentiable
//! ops (the math kernel's weights), so gradients of gradients stay available; that backward
//! pass materialises the `(seq_q, seq_k)` weights like the math kernel does.
//!
//! # Measurements
//! `cargo bench -p strata-attention` (benches/attention.rs): causal attention, batch 1, 4
//! heads, head dim 32, f32, medians of 10 samples with 1 s of measurement, on the 2-core
//! development machine while other builds ran (load average 4 to 8, so single numbers are
//! noisy by tens of percent):
//!
//! ```text
//! seq    forward (no graph)       forward + backward
//!        math       tiled         math       tiled
//!   16    39 us      53 us         92 us     177 us
//!   32   230 us      76 us        167 us     389 us
//!   64   290 us     206 us        642 us     247 us
//!  128   2.09 ms    0.72 ms       2.86 ms    1.33 ms
//!  256   6.38 ms    1.18 ms       4.07 ms    2.36 ms
//!  512   31.7 ms    5.94 ms       26.3 ms    28.1 ms
//! 1024    118 ms    33.9 ms        234 ms    59.6 ms
//! ```
//!
//! Below 64 keys the math kernel's few large GEMMs beat the per-block bookkeeping in the
//! training step; from 64 keys on the tiled kernel was faster in every run except the
//! training step at 512 keys in this one (a tie within the noise: an earlier run measured
//! 13.0 ms tiled), and its memory stays linear. Hence [`crate::TILED_MIN_SEQ`] = 64.

use rayon::prelude::*;
use strata_autograd::{is_grad_enabled, Backward, Var};
use strata_tensor::kernels::{self, MatRef};
use strata_tensor::{Element, Tensor};

use crate::error::Result;
use crate::sdpa::{math_weights, Problem};

/// Queries per block.
pub(crate) const TILE_Q: usize = 64;
/// Keys per block.
pub(crate) const TILE_K: usize = 64;

/// Calls with fewer multiply-adds than this (`slices * seq_q * seq_k * (dim + value_dim)`)
/// run on the calling thread.
const PAR_MIN_WORK: usize = 1 << 18;

/// The additive bias as seen by one `(batch, head)` slice: element `(i, j)` of slice `b` is
/// `data[batch_offset[b] + i * stride_i + j * stride_j]` (strides are 0 along broadcast dims).
struct BiasView<T> {
    data: Vec<T>,
    batch_offset: Vec<usize>,
    stride_i: usize,
    stride_j: usize,
}

impl<T: Element> BiasView<T> {
    fn new(bias: &Tensor<T>, lead: &[usize]) -> Self {
        let rank = lead.len() + 2;
        let mut shape = vec![1; rank - bias.ndim()];
        shape.extend_from_slice(bias.shape());
        let mut strides = vec![0; rank];
        let mut acc = 1;
        for d in (0..rank).rev() {
            strides[d] = if shape[d] == 1 { 0 } else { acc };
            acc *= shape[d];
        }
        let n_batch: usize = lead.iter().product();
        let batch_offset = (0..n_batch)
            .map(|mut b| {
                let mut off = 0;
                for d in (0..lead.len()).rev() {
                    off += (b % lead[d]) * strides[d];
                    b /= lead[d];
                }
                off
            })
            .collect();
        Self {
            data: bias.contiguous_slice().into_owned(),
            batch_offset,
            stride_i: strides[rank - 2],
            stride_j: strides[rank - 1],
        }
    }
}

/// Everything the kernels need about one call, borrowed by every task.
struct Plan<'a, T: Element> {
    problem: &'a Problem<T>,
    bias: Option<BiasView<T>>,
    tile_q: usize,
    tile_k: usize,
}

impl<'a, T: Element> Plan<'a, T> {
    fn new(problem: &'a Problem<T>, tile_q: usize, tile_k: usize) -> Self {
        Self {
            problem,
            bias: problem
                .bias
                .as_ref()
                .map(|b| BiasView::new(b, &problem.lead)),
            tile_q,
            tile_k,
        }
    }

    /// Turns the dot products `row[c] = q_i . k_(j0 + c)` of query `i` in slice `b` into
    /// scores before the softmax: scaled, plus the bias, `-inf` where masked out.
    #[inline]
    fn score_row(&self, b: usize, i: usize, j0: usize, row: &mut [T]) {
        let p = self.problem;
        let scale = p.scale;
        row.iter_mut().for_each(|x| *x *= scale);
        if let Some(bv) = &self.bias {
            let base = bv.batch_offset[b] + i * bv.stride_i + j0 * bv.stride_j;
            match bv.stride_j {
                0 => row.iter_mut().for_each(|x| *x += bv.data[base]),
                1 => add_into(row, &bv.data[base..base + row.len()]),
                step => {
                    for (c, x) in row.iter_mut().enumerate() {
                        *x += bv.data[base + c * step];
                    }
                }
            }
        }
        if let Some(off) = p.causal {
            // Keys j <= i + off are allowed: the first `allowed` of this block.
            let allowed = (i as isize + off + 1 - j0 as isize).clamp(0, row.len() as isize);
            row[allowed as usize..].fill(T::neg_infinity());
        }
    }

    /// The dropout factor of `(i, j)` in slice `b`.
    #[inline]
    fn drop(&self, b: usize, i: usize, j: usize) -> T {
        let p = self.problem;
        match &p.dropout {
            Some(d) => d.factor((b * p.seq_q + i) * p.seq_k + j),
            None => T::one(),
        }
    }

    /// Whether the call is worth splitting over threads: about `PAR_MIN_WORK` multiply-adds
    /// or more. Decoding one token at a time (one query against a cache) is far below, and
    /// handing its few blocks to other threads costs more than computing them.
    fn parallel(&self) -> bool {
        let p = self.problem;
        let n_batch: usize = p.lead.iter().product();
        let work = n_batch * p.seq_q * p.seq_k * (p.head_dim + p.value_dim);
        work >= PAR_MIN_WORK && rayon::current_num_threads() > 1
    }

    /// The key range of a query block that causal masking leaves, `0..end`.
    fn key_end(&self, i1: usize) -> usize {
        let p = self.problem;
        match p.causal {
            Some(off) => ((i1 as isize - 1 + off + 1).max(0) as usize).min(p.seq_k),
            None => p.seq_k,
        }
    }
}

/// `sum_i a_i b_i` with eight running sums, which the compiler turns into SIMD lanes (one
/// sum would be a serial chain of additions). The order is fixed, so results are
/// deterministic.
#[inline]
fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += *x * *y;
    }
    s
}

/// Tiled attention of `problem`, recorded as one op.
pub(crate) fn attention<T: Element>(
    q: &Var<T>,
    k: &Var<T>,
    v: &Var<T>,
    problem: &Problem<T>,
) -> Result<Var<T>> {
    attention_with_tiles(q, k, v, problem, TILE_Q, TILE_K)
}

/// [`attention`] with given block sizes (small ones let tests cross block edges).
pub(crate) fn attention_with_tiles<T: Element>(
    q: &Var<T>,
    k: &Var<T>,
    v: &Var<T>,
    problem: &Problem<T>,
    tile_q: usize,
    tile_k: usize,
) -> Result<Var<T>> {
    let plan = Plan::new(problem, tile_q, tile_k);
    let p = problem;
    let (out, lse) = forward(
        &plan,
        &Rows::new(&q.value()),
        &Rows::new(&k.value()),
        &Rows::new(&v.value()),
    );
    let mut shape = p.lead.clone();
    shape.extend([p.seq_q, p.value_dim]);
    let out = Tensor::from_vec(out, &shape)?;
    let op = TiledBackward {
        problem: problem.clone(),
        lse,
        tile_q,
        tile_k,
    };
    Ok(Var::from_op(out, op, vec![q.clone(), k.clone(), v.clone()]))
}

/// An input `(.., seq, width)` read in place: slice `b` of the leading dims is a `(seq,
/// width)` matrix at `offsets[b]` in the storage, rows `row_stride` apart. Views whose last
/// dim is contiguous (the heads of a fused projection, transposed to `(batch, heads, seq,
/// dim)`) are read without a copy; others are made contiguous first.
struct Rows<T: Element> {
    tensor: Tensor<T>,
    offsets: Vec<usize>,
    row_stride: usize,
    width: usize,
}

impl<T: Element> Rows<T> {
    fn new(x: &Tensor<T>) -> Self {
        let rank = x.ndim();
        let width = x.shape()[rank - 1];
        let tensor = if width <= 1 || x.strides()[rank - 1] == 1 {
            x.clone()
        } else {
            x.contiguous()
        };
        let (shape, strides) = (tensor.shape(), tensor.strides());
        let lead = &shape[..rank - 2];
        let n_batch: usize = lead.iter().product();
        let offsets = (0..n_batch)
            .map(|mut b| {
                let mut off = 0;
                for d in (0..lead.len()).rev() {
                    off += (b % lead[d]) * strides[d];
                    b /= lead[d];
                }
                off
            })
            .collect();
        let row_stride = strides[rank - 2];
        Self {
            tensor,
            offsets,
            row_stride,
            width,
        }
    }

    /// Rows `start..start + len` of slice `b`, a `(len, width)` matrix.
    fn block(&self, b: usize, start: usize, len: usize) -> MatRef<'_, T> {
        let data = &self.tensor.strided_data()[self.offsets[b] + start * self.row_stride..];
        MatRef::strided(data, len, self.width, self.row_stride, 1)
    }

    /// Row `i` of slice `b`.
    fn row(&self, b: usize, i: usize) -> &[T] {
        let at = self.offsets[b] + i * self.row_stride;
        &self.tensor.strided_data()[at..at + self.width]
    }
}

/// `out = a @ b`, or `out += a @ b` if `accumulate`, on the calling thread.
fn gemm<T: Element>(a: MatRef<'_, T>, b: MatRef<'_, T>, out: &mut [T], accumulate: bool) {
    kernels::gemm(a, b, out, accumulate).expect("bug: block shapes agree");
}

/// `dst += src` elementwise.
fn add_into<T: Element>(dst: &mut [T], src: &[T]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += *s;
    }
}

/// The forward pass: the output `(B * L, Dv)` and the log-sum-exp of each row `(B * L)`
/// (`-inf` for fully masked rows).
fn forward<T: Element>(
    plan: &Plan<'_, T>,
    q: &Rows<T>,
    k: &Rows<T>,
    v: &Rows<T>,
) -> (Vec<T>, Vec<T>) {
    let p = plan.problem;
    let (lq, dv) = (p.seq_q, p.value_dim);
    let n_batch: usize = p.lead.iter().product();
    let mut out = vec![T::zero(); n_batch * lq * dv];
    let mut lse = vec![T::zero(); n_batch * lq];
    let tq = plan.tile_q;
    // One task per (slice, query block); each owns its rows of `out` and `lse`.
    let mut tasks: Vec<(usize, usize, &mut [T], &mut [T])> = Vec::new();
    let mut out_rest = out.as_mut_slice();
    let mut lse_rest = lse.as_mut_slice();
    for b in 0..n_batch {
        for i0 in (0..lq).step_by(tq) {
            let rows = tq.min(lq - i0);
            let (o, r1) = out_rest.split_at_mut(rows * dv);
            let (l, r2) = lse_rest.split_at_mut(rows);
            out_rest = r1;
            lse_rest = r2;
            tasks.push((b, i0, o, l));
        }
    }
    let run = |scores: &mut Vec<T>, (b, i0, o, l): (usize, usize, &mut [T], &mut [T])| {
        forward_block(plan, b, i0, [q, k, v], o, l, scores)
    };
    let scratch = || vec![T::zero(); plan.tile_q * plan.tile_k];
    if plan.parallel() {
        tasks.into_par_iter().for_each_init(scratch, run);
    } else {
        let mut scores = scratch();
        tasks.into_iter().for_each(|task| run(&mut scores, task));
    }
    (out, lse)
}

/// One block of queries starting at `i0` against every key block of slice `b`; `scores` is
/// scratch space for one `tile_q x tile_k` block.
fn forward_block<T: Element>(
    plan: &Plan<'_, T>,
    b: usize,
    i0: usize,
    [q, k, v]: [&Rows<T>; 3],
    out: &mut [T],
    lse: &mut [T],
    scores: &mut [T],
) {
    let p = plan.problem;
    let (dv, rows) = (p.value_dim, lse.len());
    // The running maximum `m` of each row is kept in `lse`, which becomes the log-sum-exp
    // at the end; `l` is the running sum.
    let m = lse;
    m.fill(T::neg_infinity());
    let mut l = vec![T::zero(); rows];
    let q_blk = q.block(b, i0, rows);
    let end = plan.key_end(i0 + rows);
    for j0 in (0..end).step_by(plan.tile_k) {
        let cols = plan.tile_k.min(end - j0);
        let s = &mut scores[..rows * cols];
        gemm(q_blk, k.block(b, j0, cols).t(), s, false);
        for r in 0..rows {
            let i = i0 + r;
            let row = &mut s[r * cols..(r + 1) * cols];
            plan.score_row(b, i, j0, row);
            let tile_max = row.iter().fold(T::neg_infinity(), |a, &x| a.max(x));
            let m_new = m[r].max(tile_max);
            if m_new == T::neg_infinity() {
                row.fill(T::zero());
                continue;
            }
            let alpha = (m[r] - m_new).exp();
            if alpha != T::one() {
                l[r] *= alpha;
                out[r * dv..(r + 1) * dv]
                    .iter_mut()
                    .for_each(|a| *a *= alpha);
            }
            l[r] += kernels::exp_shifted(row, m_new);
            if p.dropout.is_some() {
                for (c, x) in row.iter_mut().enumerate() {
                    *x *= plan.drop(b, i, j0 + c);
                }
            }
            m[r] = m_new;
        }
        gemm(
            MatRef::row_major(s, rows, cols),
            v.block(b, j0, cols),
            out,
            true,
        );
    }
    for r in 0..rows {
        let acc = &mut out[r * dv..(r + 1) * dv];
        if l[r] > T::zero() {
            let inv = T::one() / l[r];
            acc.iter_mut().for_each(|a| *a *= inv);
            m[r] += l[r].ln();
        } else {
            acc.iter_mut().for_each(|a| *a = T::zero());
            m[r] = T::neg_infinity();
        }
    }
}

/// The inputs, output and output gradient of the op, read in place.
struct Saved<T: Element> {
    q: Rows<T>,
    k: Rows<T>,
    v: Rows<T>,
    out: Rows<T>,
    grad: Rows<T>,
}

/// The gradients of one `(batch, head)` slice, each a block of the full gradient.
struct SliceGrads<'a, T> {
    dq: &'a mut [T],
    dk: &'a mut [T],
    dv: &'a mut [T],
}

/// The backward pass: `(dq, dk, dv)`, each laid out like its input.
fn backward<T: Element>(
    plan: &Plan<'_, T>,
    saved: &Saved<T>,
    lse: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let p = plan.problem;
    let n_batch: usize = p.lead.iter().product();
    let (lq, lk) = (p.seq_q, p.seq_k);
    let (d, dv) = (p.head_dim, p.value_dim);
    let mut dq = vec![T::zero(); n_batch * lq * d];
    let mut dk = vec![T::zero(); n_batch * lk * d];
    let mut dvv = vec![T::zero(); n_batch * lk * dv];
    let mut slices: Vec<SliceGrads<'_, T>> = Vec::with_capacity(n_batch);
    let (mut dq_rest, mut dk_rest, mut dv_rest) = (&mut dq[..], &mut dk[..], &mut dvv[..]);
    for _ in 0..n_batch {
        let (dq, r1) = std::mem::take(&mut dq_rest).split_at_mut(lq * d);
        let (dk, r2) = std::mem::take(&mut dk_rest).split_at_mut(lk * d);
        let (dv, r3) = std::mem::take(&mut dv_rest).split_at_mut(lk * dv);
        (dq_rest, dk_rest, dv_rest) = (r1, r2, r3);
        slices.push(SliceGrads { dq, dk, dv });
    }
    let run = |(b, grads)| backward_slice(plan, b, saved, &lse[b * lq..(b + 1) * lq], grads);
    if plan.parallel() {
        slices.into_par_iter().enumerate().for_each(run);
    } else {
        slices.into_iter().enumerate().for_each(run);
    }
    (dq, dk, dvv)
}

/// FlashAttention-2's backward for slice `b`: key blocks outside, query blocks inside.
///
/// ```text
/// P = exp(S - lse),  P' = P * M,  delta_i = rowsum(dO_i * O_i)
/// dV_j += P'^T dO_i,  dS = P * ((dO_i V_j^T) * M - delta) * scale
/// dQ_i += dS K_j,  dK_j += dS^T Q_i
/// ```
fn backward_slice<T: Element>(
    plan: &Plan<'_, T>,
    b: usize,
    saved: &Saved<T>,
    lse: &[T],
    grads: SliceGrads<'_, T>,
) {
    let p = plan.problem;
    let (lq, lk, d, dv) = (p.seq_q, p.seq_k, p.head_dim, p.value_dim);
    let (tq, tk) = (plan.tile_q, plan.tile_k);
    let delta: Vec<T> = (0..lq)
        .map(|i| dot(saved.grad.row(b, i), saved.out.row(b, i)))
        .collect();
    let mut prob_buf = vec![T::zero(); tq * tk];
    let mut ds_buf = vec![T::zero(); tq * tk];
    for j0 in (0..lk).step_by(tk) {
        let cols = tk.min(lk - j0);
        let (k_blk, v_blk) = (saved.k.block(b, j0, cols), saved.v.block(b, j0, cols));
        for i0 in (0..lq).step_by(tq) {
            let rows = tq.min(lq - i0);
            if plan.key_end(i0 + rows) <= j0 {
                continue;
            }
            let (q_blk, g_blk) = (saved.q.block(b, i0, rows), saved.grad.block(b, i0, rows));
            let prob = &mut prob_buf[..rows * cols];
            let ds = &mut ds_buf[..rows * cols];
            gemm(q_blk, k_blk.t(), prob, false);
            gemm(g_blk, v_blk.t(), ds, false);
            for r in 0..rows {
                let i = i0 + r;
                let p_row = &mut prob[r * cols..(r + 1) * cols];
                let ds_row = &mut ds[r * cols..(r + 1) * cols];
                if lse[i] == T::neg_infinity() {
                    p_row.fill(T::zero());
                    ds_row.fill(T::zero());
                    continue;
                }
                plan.score_row(b, i, j0, p_row);
                kernels::exp_shifted(p_row, lse[i]);
                let (di, scale) = (delta[i], p.scale);
                if p.dropout.is_some() {
                    for (c, (pij, dsij)) in p_row.iter_mut().zip(ds_row.iter_mut()).enumerate() {
                        let drop = plan.drop(b, i, j0 + c);
                        *dsij = *pij * (*dsij * drop - di) * scale;
                        *pij *= drop;
                    }
                } else {
                    for (pij, dsij) in p_row.iter().zip(ds_row.iter_mut()) {
                        *dsij = *pij * (*dsij - di) * scale;
                    }
                }
            }
            let (prob, ds) = (
                MatRef::row_major(&*prob, rows, cols),
                MatRef::row_major(&*ds, rows, cols),
            );
            gemm(
                prob.t(),
                g_blk,
                &mut grads.dv[j0 * dv..(j0 + cols) * dv],
                true,
            );
            gemm(ds.t(), q_blk, &mut grads.dk[j0 * d..(j0 + cols) * d], true);
            gemm(ds, k_blk, &mut grads.dq[i0 * d..(i0 + rows) * d], true);
        }
    }
}

/// The backward record of the tiled op: the problem and the per-row log-sum-exp.
struct TiledBackward<T: Element> {
    problem: Problem<T>,
    lse: Vec<T>,
    tile_q: usize,
    tile_k: usize,
}

impl<T: Element> TiledBackward<T> {
    /// The same rule with differentiable ops, for `create_graph`.
    fn recorded(&self, inputs: &[Var<T>], grad: &Var<T>) -> strata_autograd::Result<[Var<T>; 3]> {
        let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
        let p = &self.problem;
        let (weights, dropped) = math_weights(q, k, p)?;
        let grad_v = dropped.transpose(-2, -1)?.matmul(grad)?;
        let mut dp = grad.matmul(&v.transpose(-2, -1)?)?;
        if let Some(d) = &p.dropout {
            dp = dp.mul(&Var::new(d.tensor(&p.weights_shape())))?;
        }
        let delta = weights.mul(&dp)?.sum_keepdim(&[-1])?;
        let ds = weights.mul(&dp.sub(&delta)?)?.mul_scalar(p.scale);
        let grad_q = ds.matmul(k)?;
        let grad_k = ds.transpose(-2, -1)?.matmul(q)?;
        Ok([grad_q, grad_k, grad_v])
    }
}

impl<T: Element> Backward<T> for TiledBackward<T> {
    fn name(&self) -> &'static str {
        "scaled_dot_product_attention_tiled"
    }

    fn backward(
        &self,
        inputs: &[Var<T>],
        result: &Var<T>,
        grad: &Var<T>,
    ) -> strata_autograd::Result<Vec<Option<Var<T>>>> {
        let grads = if is_grad_enabled() {
            self.recorded(inputs, grad)?
        } else {
            let plan = Plan::new(&self.problem, self.tile_q, self.tile_k);
            let vals: Vec<Tensor<T>> = inputs.iter().map(Var::value).collect();
            let saved = Saved {
                q: Rows::new(&vals[0]),
                k: Rows::new(&vals[1]),
                v: Rows::new(&vals[2]),
                out: Rows::new(&result.value()),
                grad: Rows::new(&grad.value()),
            };
            let (dq, dk, dv) = backward(&plan, &saved, &self.lse);
            [
                Var::new(Tensor::from_vec(dq, vals[0].shape())?),
                Var::new(Tensor::from_vec(dk, vals[1].shape())?),
                Var::new(Tensor::from_vec(dv, vals[2].shape())?),
            ]
        };
        Ok(inputs
            .iter()
            .zip(grads)
            .map(|(x, g)| x.requires_grad().then_some(g))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strata_autograd::{gradcheck, gradgradcheck, BackwardOptions, GradcheckOptions};
    use strata_tensor::Generator;

    use super::*;
    use crate::mask::AttnMask;
    use crate::sdpa::{math_attention, DropoutMask, SdpaOptions};

    /// One attention call: shapes, mask and options.
    #[derive(Debug, Clone)]
    struct Case {
        lead: Vec<usize>,
        seq_q: usize,
        seq_k: usize,
        dim: usize,
        value_dim: usize,
        causal: bool,
        /// 0: none, 1: attend mask `(seq_q, seq_k)`, 2: additive `(lead0, 1, seq_q, seq_k)`
        /// with some `-inf`, 3: ignore mask `(seq_k)` broadcast.
        mask: u8,
        dropout: Option<f64>,
        seed: u64,
    }

    impl Case {
        fn shape(&self, seq: usize, dim: usize) -> Vec<usize> {
            let mut s = self.lead.clone();
            s.extend([seq, dim]);
            s
        }

        fn mask<T: Element>(&self, gen: &mut Generator) -> Option<AttnMask<T>> {
            let (lq, lk) = (self.seq_q, self.seq_k);
            match self.mask {
                1 => Some(AttnMask::Attend(gen.bernoulli(&[lq, lk], 0.7))),
                2 => {
                    let mut shape = vec![1; self.lead.len()];
                    shape[0] = self.lead[0];
                    shape.extend([lq, lk]);
                    let noise: Tensor<T> = gen.randn(&shape);
                    let drop: Tensor<T> = gen.bernoulli(&shape, 0.2);
                    let inf = T::neg_infinity();
                    let t = Tensor::where_cond(&drop, &Tensor::scalar(inf), &noise).unwrap();
                    Some(AttnMask::Additive(t))
                }
                3 => Some(AttnMask::Ignore(gen.bernoulli(&[lk], 0.3))),
                _ => None,
            }
        }

        fn problem<T: Element>(&self, gen: &mut Generator) -> Problem<T> {
            let mask = self.mask::<T>(gen);
            let mut opts = SdpaOptions {
                is_causal: self.causal,
                ..Default::default()
            };
            let (q, k, v) = (
                self.shape(self.seq_q, self.dim),
                self.shape(self.seq_k, self.dim),
                self.shape(self.seq_k, self.value_dim),
            );
            let mut p = Problem::new(&q, &k, &v, mask.as_ref(), &mut opts).unwrap();
            p.dropout = self.dropout.map(|p| DropoutMask { p, seed: self.seed });
            p
        }

        fn inputs<T: Element>(&self, gen: &mut Generator) -> [Tensor<T>; 3] {
            [
                gen.randn(&self.shape(self.seq_q, self.dim)),
                gen.randn(&self.shape(self.seq_k, self.dim)),
                gen.randn(&self.shape(self.seq_k, self.value_dim)),
            ]
        }
    }

    fn case(lead: &[usize], lq: usize, lk: usize, causal: bool, mask: u8) -> Case {
        Case {
            lead: lead.to_vec(),
            seq_q: lq,
            seq_k: lk,
            dim: 5,
            value_dim: 3,
            causal,
            mask,
            dropout: None,
            seed: 0,
        }
    }

    /// Output and gradients of `sum(y * g)` through the math or the tiled kernel.
    fn run<T: Element>(c: &Case, tiles: Option<(usize, usize)>) -> Vec<Vec<T>> {
        let mut gen = Generator::new(c.seed);
        let problem = c.problem::<T>(&mut gen);
        let [q, k, v] = c.inputs::<T>(&mut gen).map(Var::parameter);
        let y = match tiles {
            Some((tq, tk)) => attention_with_tiles(&q, &k, &v, &problem, tq, tk).unwrap(),
            None => math_attention(&q, &k, &v, &problem).unwrap().0,
        };
        let g: Tensor<T> = gen.randn(y.shape());
        y.backward_with(&g, BackwardOptions::default()).unwrap();
        vec![
            y.value().to_vec(),
            q.grad().unwrap().to_vec(),
            k.grad().unwrap().to_vec(),
            v.grad().unwrap().to_vec(),
        ]
    }

    fn assert_agree(c: &Case, tiles: (usize, usize)) {
        let (want, got) = (run::<f32>(c, None), run::<f32>(c, Some(tiles)));
        for (what, (w, g)) in ["out", "dq", "dk", "dv"].iter().zip(want.iter().zip(&got)) {
            for (a, b) in w.iter().zip(g) {
                assert!(a.is_finite() && b.is_finite(), "{what} not finite in {c:?}");
                let tol = 1e-5 * (1.0 + a.abs());
                assert!(
                    (a - b).abs() <= tol,
                    "{what}: math {a} tiled {b} in {c:?}, {tiles:?}"
                );
            }
        }
    }

    #[test]
    fn tiled_agrees_with_math_forward_and_backward() {
        let cases = [
            case(&[2, 3], 9, 9, false, 0),
            case(&[2, 3], 9, 9, true, 0),
            case(&[1, 2], 7, 11, false, 1),
            case(&[2, 2], 10, 6, true, 2),
            case(&[3], 8, 13, false, 3),
            case(&[2, 1], 11, 11, true, 3),
            case(&[1, 1], 70, 130, true, 2),
        ];
        for c in &cases {
            for tiles in [(3, 4), (4, 3), (64, 64)] {
                assert_agree(c, tiles);
            }
        }
    }

    #[test]
    fn tiled_agrees_with_math_under_dropout() {
        let mut c = case(&[2, 2], 9, 10, true, 1);
        c.dropout = Some(0.3);
        c.seed = 5;

        assert_agree(&c, (4, 3));
    }

    #[test]
    fn fully_masked_rows_give_zero_output_and_gradients() {
        // Causal with a negative offset leaves the first query rows without keys.
        let c = case(&[1, 1], 5, 5, true, 0);
        let mut gen = Generator::new(0);
        let mut problem = c.problem::<f64>(&mut gen);
        problem.causal = Some(-2);
        let [q, k, v] = c.inputs::<f64>(&mut gen).map(Var::parameter);

        let y = attention_with_tiles(&q, &k, &v, &problem, 2, 2).unwrap();
        y.sum_all().backward().unwrap();

        let (y, dq) = (y.value().to_vec(), q.grad().unwrap().to_vec());
        assert!(y[..6].iter().all(|&x| x == 0.0) && y[6..].iter().all(|&x| x != 0.0));
        assert!(dq[..10].iter().all(|&x| x == 0.0));
        assert!(k.grad().unwrap().to_vec().iter().all(|x| x.is_finite()));
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let c = case(&[2, 3], 20, 20, true, 2);
        let long = case(&[2, 2], 150, 150, false, 3);
        let in_pool = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                (
                    run::<f32>(&c, Some((4, 4))),
                    run::<f32>(&long, Some((64, 64))),
                )
            })
        };

        assert_eq!(in_pool(1), in_pool(3));
    }

    #[test]
    fn second_order_goes_through_the_recorded_rule() {
        let c = case(&[1, 2], 3, 4, true, 2);
        let mut gen = Generator::new(3);
        let problem = c.problem::<f64>(&mut gen);
        let inputs = c.inputs::<f64>(&mut gen);
        let f = |x: &[Var<f64>]| {
            attention_with_tiles(&x[0], &x[1], &x[2], &problem, 2, 3).map_err(|e| match e {
                crate::AttentionError::Autograd(a) => a,
                other => panic!("{other}"),
            })
        };

        gradgradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
    }

    /// How a test stores an input `lead + [seq, width]`: 0 contiguous, 1 with the last lead
    /// dim inside the rows (the heads of a fused projection, `(.., seq, heads, width)`), 2
    /// transposed (`(.., width, seq)`, last dim not contiguous).
    fn stored_shape(shape: &[usize], layout: u8) -> Vec<usize> {
        let mut s = shape.to_vec();
        let n = s.len();
        match layout {
            1 => s.swap(n - 3, n - 2),
            2 => s.swap(n - 2, n - 1),
            _ => {}
        }
        s
    }

    /// The view of a stored input with the shape the kernel expects.
    fn as_viewed(x: &Var<f64>, layout: u8) -> Var<f64> {
        match layout {
            1 => x.transpose(-3, -2).unwrap(),
            2 => x.transpose(-2, -1).unwrap(),
            _ => x.clone(),
        }
    }

    #[test]
    fn strided_and_transposed_inputs_give_the_results_of_contiguous_ones() {
        let mut c = case(&[2, 3], 11, 9, true, 2);
        c.seed = 7;
        let (tq, tk) = (4, 3);
        let mut gen = Generator::new(c.seed);
        let problem = c.problem::<f64>(&mut gen);
        let inputs = c.inputs::<f64>(&mut gen);
        let g: Tensor<f64> = gen.randn(&c.shape(c.seq_q, c.value_dim));
        let results: Vec<Vec<Vec<f64>>> = [0u8, 1, 2]
            .iter()
            .map(|&layout| {
                let stored: Vec<Var<f64>> = inputs
                    .iter()
                    .map(|x| {
                        // The same values, stored in the other layout (each swap is its own
                        // inverse).
                        let stored = as_viewed(&Var::new(x.clone()), layout).value().contiguous();
                        assert_eq!(stored.shape(), stored_shape(x.shape(), layout));
                        Var::parameter(stored)
                    })
                    .collect();
                let viewed: Vec<Var<f64>> = stored.iter().map(|x| as_viewed(x, layout)).collect();
                assert_eq!(viewed[0].value().is_contiguous(), layout == 0);
                let y = attention_with_tiles(&viewed[0], &viewed[1], &viewed[2], &problem, tq, tk)
                    .unwrap();
                y.backward_with(&g, BackwardOptions::default()).unwrap();
                let mut r = vec![y.value().to_vec()];
                r.extend(stored.iter().map(|x| {
                    as_viewed(&Var::new(x.grad().unwrap()), layout)
                        .value()
                        .to_vec()
                }));
                r
            })
            .collect();
        for (layout, got) in results.iter().enumerate().skip(1) {
            for (w, g) in results[0].iter().zip(got) {
                for (a, b) in w.iter().zip(g) {
                    assert!(
                        (a - b).abs() <= 1e-12 * (1.0 + a.abs()),
                        "layout {layout}: {a} {b}"
                    );
                }
            }
        }
    }

    fn cases() -> impl Strategy<Value = (Case, usize, usize)> {
        (
            proptest::collection::vec(1usize..3, 1..3),
            (1usize..7, 1usize..7, 1usize..4, 1usize..4),
            (any::<bool>(), 0u8..4, any::<u64>()),
            (1usize..5, 1usize..5),
        )
            .prop_map(|(lead, (lq, lk, d, dv), (causal, mask, seed), (tq, tk))| {
                let c = Case {
                    lead,
                    seq_q: lq,
                    seq_k: lk,
                    dim: d,
                    value_dim: dv,
                    causal,
                    mask,
                    dropout: None,
                    seed,
                };
                (c, tq, tk)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn tiled_gradcheck((c, tq, tk) in cases(), layout in 0u8..3) {
            let mut gen = Generator::new(c.seed);
            let problem = c.problem::<f64>(&mut gen);
            // Inputs stored in `layout`, seen by the kernel through a transposed view.
            let inputs: Vec<Tensor<f64>> = c
                .inputs::<f64>(&mut gen)
                .iter()
                .map(|x| gen.randn(&stored_shape(x.shape(), layout)))
                .collect();
            let f = |x: &[Var<f64>]| {
                let [q, k, v] = [0, 1, 2].map(|i| as_viewed(&x[i], layout));
                attention_with_tiles(&q, &k, &v, &problem, tq, tk).map_err(|e| {
                    match e {
                        crate::AttentionError::Autograd(a) => a,
                        other => panic!("{other}"),
                    }
                })
            };

            let r = gradcheck(f, &inputs, GradcheckOptions::default());
            prop_assert!(r.is_ok(), "{:?} tiles ({}, {}) layout {}: {:?}", c, tq, tk, layout, r);
        }
    }
}
