//! Pooling over the two spatial dims of `(N, C, H, W)` batches: `max_pool2d` with PyTorch's
//! indices, `avg_pool2d` and `adaptive_avg_pool2d`, each with its backward kernel.
//!
//! Every `(n, c)` plane is pooled on its own, so large batches run in parallel over planes and
//! each result element is computed by one thread in a fixed order.

use rayon::prelude::*;

use crate::element::Element;
use crate::error::{Result, TensorError};
use crate::index_tensor::IndexTensor;
use crate::parallel::PAR_THRESHOLD;
use crate::tensor::Tensor;

/// Options of [`max_pool2d`]: PyTorch's keyword arguments of `torch.nn.functional.max_pool2d`,
/// each pair ordered `[height, width]`.
///
/// # Limitations
/// `ceil_mode` is not offered: output sizes always round down, as PyTorch's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPool2dParams {
    /// Step between neighbouring windows. Default `None`: the kernel size, as in PyTorch.
    pub stride: Option<[usize; 2]>,
    /// Implicit `-inf` added before and after each spatial dim. Default `[0, 0]`; at most half
    /// the kernel size.
    pub padding: [usize; 2],
    /// Spacing between window taps (`1` is a dense window). Default `[1, 1]`.
    pub dilation: [usize; 2],
}

impl Default for MaxPool2dParams {
    fn default() -> Self {
        Self {
            stride: None,
            padding: [0, 0],
            dilation: [1, 1],
        }
    }
}

/// Options of [`avg_pool2d`]: PyTorch's keyword arguments of `torch.nn.functional.avg_pool2d`,
/// each pair ordered `[height, width]`.
///
/// # Limitations
/// `ceil_mode` is not offered: output sizes always round down, as PyTorch's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AvgPool2dParams {
    /// Step between neighbouring windows. Default `None`: the kernel size, as in PyTorch.
    pub stride: Option<[usize; 2]>,
    /// Implicit zeros added before and after each spatial dim. Default `[0, 0]`; at most half
    /// the kernel size.
    pub padding: [usize; 2],
    /// Whether the padding zeros count in the divisor of windows that overlap it. Default
    /// `true`, as in PyTorch.
    pub count_include_pad: bool,
    /// A divisor used for every window instead of its size. Default `None`; must be positive.
    pub divisor_override: Option<usize>,
}

impl Default for AvgPool2dParams {
    fn default() -> Self {
        Self {
            stride: None,
            padding: [0, 0],
            count_include_pad: true,
            divisor_override: None,
        }
    }
}

/// Maximum over sliding windows of each plane, with the position of each maximum.
///
/// ```text
/// out[n, c, y, x] = max_{i < kH, j < kW} in[n, c, y*s_h - p_h + i*d_h, x*s_w - p_w + j*d_w]
///   positions in the padding are skipped (they act as -inf)
/// index[n, c, y, x] = iy * W + ix of the maximum: the first one in row-major scan order on
///   ties; a NaN counts as larger than everything (the last NaN of a window wins)
/// H_out = floor((H + 2 p_h - d_h (kH - 1) - 1) / s_h) + 1, and likewise W_out
/// backward: grad_in[n, c].flat[index[n, c, y, x]] += grad_out[n, c, y, x]
/// ```
///
/// # Shapes
/// - `input`: `(N, C, H, W)` or `(C, H, W)`
/// - outputs (values and indices): `(N, C, H_out, W_out)` or `(C, H_out, W_out)`
///
/// # Errors
/// - [`TensorError::Shape`] if `input` is not of rank 3 or 4, or a spatial dim is zero.
/// - [`TensorError::InvalidArgument`] for a zero kernel size, stride or dilation, padding over
///   half the kernel, a dilated window larger than the padded input, or a window lying
///   entirely in the padding.
///
/// ```
/// use strata_tensor::{max_pool2d, MaxPool2dParams, Tensor};
///
/// let x = Tensor::<f32>::from_vec(vec![1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 8.0, 7.0], &[1, 2, 4])?;
/// let (values, indices) = max_pool2d(&x, [2, 2], &MaxPool2dParams::default())?;
/// assert_eq!(values.to_vec(), vec![5.0, 8.0]);
/// assert_eq!(indices.as_slice(), &[1, 6]);
/// # Ok::<(), strata_tensor::TensorError>(())
/// ```
pub fn max_pool2d<T: Element>(
    input: &Tensor<T>,
    kernel_size: [usize; 2],
    params: &MaxPool2dParams,
) -> Result<(Tensor<T>, IndexTensor)> {
    let op = "max_pool2d";
    let win = Window::new(
        op,
        input.shape(),
        kernel_size,
        params.stride,
        params.padding,
    )?;
    let win = win.with_dilation(op, params.dilation)?;

    let x = input.contiguous_slice();
    let mut values = vec![T::zero(); win.planes * win.out_plane()];
    let mut indices = vec![0; values.len()];
    // The taps of every window row and column, computed once rather than filtered per tap.
    let rows: Vec<TapRange> = (0..win.out_h).map(|oy| win.tap_range(0, oy)).collect();
    let cols: Vec<TapRange> = (0..win.out_w).map(|ox| win.tap_range(1, ox)).collect();
    let pool_plane = |(out, idx): (&mut [T], &mut [usize]), x_p: &[T]| {
        if win.is_dense_2x2() {
            max_plane_2x2(&win, x_p, out, idx);
            return;
        }
        let (mut out, mut idx) = (out.iter_mut(), idx.iter_mut());
        for r in &rows {
            for c in &cols {
                let mut pos = r.first * win.in_w + c.first;
                let mut m = x_p[pos];
                for a in 0..r.count {
                    let line_at = (r.first + a * r.step) * win.in_w;
                    let line = &x_p[line_at..][..win.in_w];
                    for b in 0..c.count {
                        let ix = c.first + b * c.step;
                        (m, pos) = scan_max(m, pos, line[ix], line_at + ix);
                    }
                }
                *out.next().expect("bug: one value per window") = m;
                *idx.next().expect("bug: one index per window") = pos;
            }
        }
    };
    let (out_len, in_len) = (win.out_plane(), win.in_plane());
    if win.parallel() {
        values
            .par_chunks_mut(out_len)
            .zip(indices.par_chunks_mut(out_len))
            .zip(x.par_chunks(in_len))
            .for_each(|(outs, x_p)| pool_plane(outs, x_p));
    } else {
        for (outs, x_p) in values
            .chunks_mut(out_len)
            .zip(indices.chunks_mut(out_len))
            .zip(x.chunks(in_len))
        {
            pool_plane(outs, x_p);
        }
    }

    let shape = win.output_shape(input.shape());
    let indices = IndexTensor::from_vec(indices, &shape).expect("bug: index count matches shape");
    Ok((Tensor::from_contiguous(values, shape), indices))
}

/// Gradient of [`max_pool2d`] with respect to its input: each output gradient is added to the
/// input position its index names.
///
/// ```text
/// grad_in[n, c].flat[index[n, c, y, x]] += grad_out[n, c, y, x]
/// ```
///
/// # Shapes
/// - `grad_out`, `indices`: `(N, C, H_out, W_out)` or `(C, H_out, W_out)`
/// - `input_shape`: `[N, C, H, W]` or `[C, H, W]`; output: `input_shape`
///
/// # Errors
/// - [`TensorError::Shape`] if `input_shape` is not of rank 3 or 4 or has a zero spatial dim.
/// - [`TensorError::ShapeMismatch`] if `indices` and `grad_out` differ in shape, or their
///   leading dims differ from `input_shape`'s.
/// - [`TensorError::Index`] if an index is not below `H * W`.
pub fn max_pool2d_backward<T: Element>(
    grad_out: &Tensor<T>,
    indices: &IndexTensor,
    input_shape: &[usize],
) -> Result<Tensor<T>> {
    let op = "max_pool2d_backward";
    let (planes, in_plane) = plane_sizes(op, input_shape)?;
    if indices.shape() != grad_out.shape() {
        return Err(TensorError::ShapeMismatch {
            op,
            what: "indices and grad_out differ in shape".to_string(),
            lhs: indices.shape().to_vec(),
            rhs: grad_out.shape().to_vec(),
        });
    }
    check_leading_dims(op, grad_out.shape(), input_shape)?;
    indices.check_bound(op, in_plane)?;

    let g = grad_out.contiguous_slice();
    let out_plane: usize = grad_out.shape()[grad_out.ndim() - 2..].iter().product();
    let mut grad_in = vec![T::zero(); planes * in_plane];
    let idx = indices.as_slice();
    for_each_plane(planes * out_plane, &mut grad_in, in_plane, |dx, p| {
        let range = p * out_plane..(p + 1) * out_plane;
        for (&gv, &pos) in g[range.clone()].iter().zip(&idx[range]) {
            dx[pos] += gv;
        }
    });

    Ok(Tensor::from_contiguous(grad_in, input_shape.to_vec()))
}

/// Mean over sliding windows of each plane.
///
/// ```text
/// out[n, c, y, x] = sum_{i < kH, j < kW} in[n, c, y*s_h - p_h + i, x*s_w - p_w + j] / D
///   positions in the padding add zero
///   D = divisor_override if set, else kH * kW if count_include_pad, else the number of
///   window positions inside the input
/// H_out = floor((H + 2 p_h - kH) / s_h) + 1, and likewise W_out
/// backward: grad_in[n, c, iy, ix] += grad_out[n, c, y, x] / D for each window (y, x)
///   that covers (iy, ix)
/// ```
///
/// # Shapes
/// - `input`: `(N, C, H, W)` or `(C, H, W)`; output: `(N, C, H_out, W_out)` or
///   `(C, H_out, W_out)`
///
/// # Errors
/// - [`TensorError::Shape`] if `input` is not of rank 3 or 4, or a spatial dim is zero.
/// - [`TensorError::InvalidArgument`] for a zero kernel size, stride or divisor override,
///   padding over half the kernel, or a kernel larger than the padded input.
///
/// ```
/// use strata_tensor::{avg_pool2d, AvgPool2dParams, Tensor};
///
/// let x = Tensor::<f32>::from_vec(vec![1.0, 3.0, 5.0, 7.0], &[1, 1, 4])?;
/// let out = avg_pool2d(&x, [1, 2], &AvgPool2dParams::default())?;
/// assert_eq!(out.to_vec(), vec![2.0, 6.0]);
/// # Ok::<(), strata_tensor::TensorError>(())
/// ```
pub fn avg_pool2d<T: Element>(
    input: &Tensor<T>,
    kernel_size: [usize; 2],
    params: &AvgPool2dParams,
) -> Result<Tensor<T>> {
    let op = "avg_pool2d";
    let win = Window::new(
        op,
        input.shape(),
        kernel_size,
        params.stride,
        params.padding,
    )?;
    check_divisor(op, params)?;

    let x = input.contiguous_slice();
    let mut out = vec![T::zero(); win.planes * win.out_plane()];
    let (out_len, in_len) = (win.out_plane(), win.in_plane());
    let work = out.len() * kernel_size[0] * kernel_size[1];
    for_each_plane(work, &mut out, out_len, |out_p, p| {
        let x_p = &x[p * in_len..][..in_len];
        for (at, o) in out_p.iter_mut().enumerate() {
            let (oy, ox) = (at / win.out_w, at % win.out_w);
            let mut sum = T::zero();
            for iy in win.taps(0, oy) {
                for ix in win.taps(1, ox) {
                    sum += x_p[iy * win.in_w + ix];
                }
            }
            *o = sum / win.avg_divisor(params, oy, ox);
        }
    });

    Ok(Tensor::from_contiguous(
        out,
        win.output_shape(input.shape()),
    ))
}

/// Gradient of [`avg_pool2d`] with respect to its input, given the gradient of its output.
///
/// ```text
/// grad_in[n, c, iy, ix] = sum over windows (y, x) covering (iy, ix) of grad_out[n, c, y, x] / D
/// ```
///
/// # Shapes
/// - `grad_out`: the output shape of `avg_pool2d(input, kernel_size, params)`
/// - `input_shape`: `[N, C, H, W]` or `[C, H, W]`; output: `input_shape`
///
/// # Errors
/// As [`avg_pool2d`] for `input_shape`, plus [`TensorError::ShapeMismatch`] if `grad_out` does
/// not have the output shape.
pub fn avg_pool2d_backward<T: Element>(
    grad_out: &Tensor<T>,
    input_shape: &[usize],
    kernel_size: [usize; 2],
    params: &AvgPool2dParams,
) -> Result<Tensor<T>> {
    let op = "avg_pool2d_backward";
    let win = Window::new(op, input_shape, kernel_size, params.stride, params.padding)?;
    check_divisor(op, params)?;
    check_output_shape(op, grad_out.shape(), &win.output_shape(input_shape))?;

    let g = grad_out.contiguous_slice();
    let (out_len, in_len) = (win.out_plane(), win.in_plane());
    let mut grad_in = vec![T::zero(); win.planes * in_len];
    let work = g.len() * kernel_size[0] * kernel_size[1];
    for_each_plane(work, &mut grad_in, in_len, |dx, p| {
        for (at, &gv) in g[p * out_len..][..out_len].iter().enumerate() {
            let (oy, ox) = (at / win.out_w, at % win.out_w);
            let share = gv / win.avg_divisor(params, oy, ox);
            for iy in win.taps(0, oy) {
                for ix in win.taps(1, ox) {
                    dx[iy * win.in_w + ix] += share;
                }
            }
        }
    });

    Ok(Tensor::from_contiguous(grad_in, input_shape.to_vec()))
}

/// Mean over `output_size` windows that tile each plane as evenly as possible, as PyTorch's
/// `adaptive_avg_pool2d`.
///
/// ```text
/// out[n, c, y, x] = mean of in[n, c, h0(y)..h1(y), w0(x)..w1(x)]
///   h0(y) = floor(y * H / H_out),  h1(y) = ceil((y + 1) * H / H_out), likewise w0, w1
/// backward: grad_in[n, c, iy, ix] = sum over windows covering (iy, ix) of
///   grad_out[n, c, y, x] / ((h1(y) - h0(y)) * (w1(x) - w0(x)))
/// ```
///
/// # Shapes
/// - `input`: `(N, C, H, W)` or `(C, H, W)`
/// - output: `(N, C, H_out, W_out)` or `(C, H_out, W_out)` with `[H_out, W_out] = output_size`
///
/// # Errors
/// - [`TensorError::Shape`] if `input` is not of rank 3 or 4, or a spatial dim is zero.
/// - [`TensorError::InvalidArgument`] if a dim of `output_size` is zero.
///
/// ```
/// use strata_tensor::{adaptive_avg_pool2d, Tensor};
///
/// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], &[1, 1, 5])?;
/// let out = adaptive_avg_pool2d(&x, [1, 2])?;
/// assert_eq!(out.to_vec(), vec![2.0, 4.0]);
/// # Ok::<(), strata_tensor::TensorError>(())
/// ```
pub fn adaptive_avg_pool2d<T: Element>(
    input: &Tensor<T>,
    output_size: [usize; 2],
) -> Result<Tensor<T>> {
    let op = "adaptive_avg_pool2d";
    let (planes, in_plane) = plane_sizes(op, input.shape())?;
    let bins = AdaptiveBins::new(op, input.shape(), output_size)?;

    let x = input.contiguous_slice();
    let out_plane = output_size[0] * output_size[1];
    let mut out = vec![T::zero(); planes * out_plane];
    for_each_plane(planes * in_plane, &mut out, out_plane, |out_p, p| {
        let x_p = &x[p * in_plane..][..in_plane];
        for (at, o) in out_p.iter_mut().enumerate() {
            let (rows, cols) = bins.window(at);
            let mut sum = T::zero();
            for iy in rows.clone() {
                for ix in cols.clone() {
                    sum += x_p[iy * bins.in_w + ix];
                }
            }
            *o = sum / T::from_usize(rows.len() * cols.len());
        }
    });

    let mut shape = input.shape().to_vec();
    shape.truncate(shape.len() - 2);
    shape.extend(output_size);
    Ok(Tensor::from_contiguous(out, shape))
}

/// Gradient of [`adaptive_avg_pool2d`] with respect to its input; the output size is read from
/// `grad_out`'s last two dims.
///
/// ```text
/// grad_in[n, c, iy, ix] = sum over windows (y, x) covering (iy, ix) of
///   grad_out[n, c, y, x] / ((h1(y) - h0(y)) * (w1(x) - w0(x)))
/// ```
///
/// # Shapes
/// - `grad_out`: `(N, C, H_out, W_out)` or `(C, H_out, W_out)`
/// - `input_shape`: `[N, C, H, W]` or `[C, H, W]`; output: `input_shape`
///
/// # Errors
/// As [`adaptive_avg_pool2d`] for `input_shape`, plus [`TensorError::ShapeMismatch`] if the
/// leading dims of `grad_out` differ from `input_shape`'s.
pub fn adaptive_avg_pool2d_backward<T: Element>(
    grad_out: &Tensor<T>,
    input_shape: &[usize],
) -> Result<Tensor<T>> {
    let op = "adaptive_avg_pool2d_backward";
    let (planes, in_plane) = plane_sizes(op, input_shape)?;
    check_leading_dims(op, grad_out.shape(), input_shape)?;
    let out_hw = &grad_out.shape()[grad_out.ndim() - 2..];
    let bins = AdaptiveBins::new(op, input_shape, [out_hw[0], out_hw[1]])?;

    let g = grad_out.contiguous_slice();
    let out_plane = out_hw[0] * out_hw[1];
    let mut grad_in = vec![T::zero(); planes * in_plane];
    for_each_plane(planes * in_plane, &mut grad_in, in_plane, |dx, p| {
        for (at, &gv) in g[p * out_plane..][..out_plane].iter().enumerate() {
            let (rows, cols) = bins.window(at);
            let share = gv / T::from_usize(rows.len() * cols.len());
            for iy in rows {
                for ix in cols.clone() {
                    dx[iy * bins.in_w + ix] += share;
                }
            }
        }
    });

    Ok(Tensor::from_contiguous(grad_in, input_shape.to_vec()))
}

/// The input indices one window reads along one axis, padding skipped: `count` indices
/// from `first`, `step` apart.
#[derive(Debug, Clone, Copy)]
struct TapRange {
    first: usize,
    count: usize,
    step: usize,
}

/// The running maximum `(m, pos)` after scanning value `v` at `at`: `v` takes over when it is
/// larger or NaN. Written without branches, which random data would mispredict half the time.
#[inline(always)]
fn scan_max<T: Element>(m: T, pos: usize, v: T, at: usize) -> (T, usize) {
    let take = (v > m) | v.is_nan();
    let mask = usize::from(take).wrapping_neg();
    (if take { v } else { m }, pos ^ ((pos ^ at) & mask))
}

/// [`scan_max`] for a value known not to be NaN.
#[inline(always)]
fn scan_max_num<T: Element>(m: T, pos: usize, v: T, at: usize) -> (T, usize) {
    let take = v > m;
    let mask = usize::from(take).wrapping_neg();
    (if take { v } else { m }, pos ^ ((pos ^ at) & mask))
}

/// The first maximum of `v` in order and its position in `at`, NaN the largest when
/// `nan_aware` (a constant at each call, so each call compiles to straight-line code).
#[inline(always)]
fn max_of<T: Element, const K: usize>(v: [T; K], at: [usize; K], nan_aware: bool) -> (T, usize) {
    let (mut m, mut pos) = (v[0], at[0]);
    for k in 1..K {
        (m, pos) = if nan_aware {
            scan_max(m, pos, v[k], at[k])
        } else {
            scan_max_num(m, pos, v[k], at[k])
        };
    }
    (m, pos)
}

/// [`max_pool2d`] of one plane with 2x2 windows at stride 2, no padding and no dilation.
fn max_plane_2x2<T: Element>(win: &Window, x_p: &[T], out: &mut [T], idx: &mut [usize]) {
    let in_w = win.in_w;
    for (oy, (out_r, idx_r)) in out
        .chunks_exact_mut(win.out_w)
        .zip(idx.chunks_exact_mut(win.out_w))
        .enumerate()
    {
        let at0 = 2 * oy * in_w;
        let (r0, r1) = (&x_p[at0..][..in_w], &x_p[at0 + in_w..][..in_w]);
        for (ox, (o, i)) in out_r.iter_mut().zip(idx_r.iter_mut()).enumerate() {
            let (x0, at) = (2 * ox, at0 + 2 * ox);
            let v = [r0[x0], r0[x0 + 1], r1[x0], r1[x0 + 1]];
            let at = [at, at + 1, at + in_w, at + in_w + 1];
            // Without NaNs the plain comparison compiles to a maximum and moves.
            let (m, pos) = if v.iter().any(|t| t.is_nan()) {
                max_of(v, at, true)
            } else {
                max_of(v, at, false)
            };
            (*o, *i) = (m, pos);
        }
    }
}

/// Sizes of a sliding-window pooling, the leading dims folded into `planes`.
#[derive(Debug, Clone, Copy)]
struct Window {
    planes: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
}

impl Window {
    /// Checks an input shape, kernel, stride and padding of a dense window.
    fn new(
        op: &'static str,
        shape: &[usize],
        kernel: [usize; 2],
        stride: Option<[usize; 2]>,
        padding: [usize; 2],
    ) -> Result<Self> {
        let (planes, _) = plane_sizes(op, shape)?;
        let stride = stride.unwrap_or(kernel);
        let invalid = |reason: String| Err(TensorError::InvalidArgument { op, reason });
        if kernel.contains(&0) || stride.contains(&0) {
            return invalid(format!(
                "kernel size {kernel:?} and stride {stride:?} must be positive"
            ));
        }
        if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
            return invalid(format!(
                "padding {padding:?} exceeds half the kernel size {kernel:?}"
            ));
        }
        let rank = shape.len();
        let win = Self {
            planes,
            in_h: shape[rank - 2],
            in_w: shape[rank - 1],
            out_h: 0,
            out_w: 0,
            kernel,
            stride,
            padding,
            dilation: [1, 1],
        };
        win.sized(op)
    }

    /// The same window with dilated taps, checking that every window reaches the input.
    fn with_dilation(self, op: &'static str, dilation: [usize; 2]) -> Result<Self> {
        if dilation.contains(&0) {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!("dilation {dilation:?} must be positive"),
            });
        }
        let win = Self { dilation, ..self }.sized(op)?;
        let empty_row = (0..win.out_h).any(|oy| win.taps(0, oy).next().is_none());
        let empty_col = (0..win.out_w).any(|ox| win.taps(1, ox).next().is_none());
        if empty_row || empty_col {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!(
                    "a window with dilation {dilation:?} lies entirely in the padding {:?}",
                    win.padding
                ),
            });
        }
        Ok(win)
    }

    /// Computes the output size, failing when the window does not fit the padded input.
    fn sized(mut self, op: &'static str) -> Result<Self> {
        let mut out = [0; 2];
        for (axis, len) in [self.in_h, self.in_w].into_iter().enumerate() {
            let span = self.dilation[axis] * (self.kernel[axis] - 1) + 1;
            let padded = len + 2 * self.padding[axis];
            if span > padded {
                return Err(TensorError::InvalidArgument {
                    op,
                    reason: format!("window spanning {span} exceeds padded input size {padded}"),
                });
            }
            out[axis] = (padded - span) / self.stride[axis] + 1;
        }
        [self.out_h, self.out_w] = out;
        Ok(self)
    }

    fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }

    fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }

    /// 2x2 windows at stride 2 without padding or dilation, LeNet's pooling.
    fn is_dense_2x2(&self) -> bool {
        self.kernel == [2, 2]
            && self.stride == [2, 2]
            && self.padding == [0, 0]
            && self.dilation == [1, 1]
    }

    fn parallel(&self) -> bool {
        let work = self.planes * self.out_plane() * self.kernel[0] * self.kernel[1];
        self.planes > 1 && work >= PAR_THRESHOLD && rayon::current_num_threads() > 1
    }

    /// The input indices along `axis` (0 rows, 1 columns) that window `o` reads, padding
    /// skipped.
    fn taps(&self, axis: usize, o: usize) -> impl Iterator<Item = usize> + Clone {
        let (len, pad) = ([self.in_h, self.in_w][axis], self.padding[axis]);
        let (start, step) = (o * self.stride[axis], self.dilation[axis]);
        (0..self.kernel[axis])
            .map(move |i| start + i * step)
            .filter(move |&t| t >= pad && t - pad < len)
            .map(move |t| t - pad)
    }

    /// The taps of window `o` along `axis` as a [`TapRange`]: the same indices as
    /// [`Window::taps`], in the same order.
    fn tap_range(&self, axis: usize, o: usize) -> TapRange {
        let mut taps = self.taps(axis, o);
        let first = taps
            .next()
            .expect("bug: windows were checked to reach the input");
        TapRange {
            first,
            count: 1 + taps.count(),
            step: self.dilation[axis],
        }
    }

    /// The divisor of window `(oy, ox)` of an average pooling, as PyTorch computes it: the
    /// window clipped to the padded input, or to the input when padding does not count.
    fn avg_divisor<T: Element>(&self, params: &AvgPool2dParams, oy: usize, ox: usize) -> T {
        if let Some(d) = params.divisor_override {
            return T::from_usize(d);
        }
        let count = |axis: usize, o: usize| {
            let len = [self.in_h, self.in_w][axis];
            let start = o * self.stride[axis];
            let end = (start + self.kernel[axis]).min(len + 2 * self.padding[axis]);
            if params.count_include_pad {
                end - start
            } else {
                self.taps(axis, o).count()
            }
        };
        T::from_usize(count(0, oy) * count(1, ox))
    }

    /// The output shape: the input's leading dims, then `[H_out, W_out]`.
    fn output_shape(&self, input_shape: &[usize]) -> Vec<usize> {
        let mut shape = input_shape[..input_shape.len() - 2].to_vec();
        shape.extend([self.out_h, self.out_w]);
        shape
    }
}

/// The windows of an adaptive pooling.
#[derive(Debug, Clone, Copy)]
struct AdaptiveBins {
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
}

impl AdaptiveBins {
    fn new(op: &'static str, shape: &[usize], output_size: [usize; 2]) -> Result<Self> {
        if output_size.contains(&0) {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!("output size {output_size:?} must be positive"),
            });
        }
        let rank = shape.len();
        Ok(Self {
            in_h: shape[rank - 2],
            in_w: shape[rank - 1],
            out_h: output_size[0],
            out_w: output_size[1],
        })
    }

    /// The input rows and columns of output element `at` (row-major in the output plane).
    fn window(&self, at: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let bin = |o: usize, len: usize, out: usize| (o * len / out)..((o + 1) * len).div_ceil(out);
        (
            bin(at / self.out_w, self.in_h, self.out_h),
            bin(at % self.out_w, self.in_w, self.out_w),
        )
    }
}

/// Checks a rank 3 or 4 shape with non-empty spatial dims; gives the number of planes and the
/// size of one plane.
fn plane_sizes(op: &'static str, shape: &[usize]) -> Result<(usize, usize)> {
    let rank = shape.len();
    if !(3..=4).contains(&rank) || shape[rank - 2] == 0 || shape[rank - 1] == 0 {
        return Err(TensorError::Shape {
            op,
            expected: "input of rank 3 or 4 with non-empty spatial dims".to_string(),
            got: shape.to_vec(),
        });
    }
    Ok((
        shape[..rank - 2].iter().product(),
        shape[rank - 2] * shape[rank - 1],
    ))
}

/// Checks that a gradient has the input's rank and leading (batch, channel) dims.
fn check_leading_dims(op: &'static str, grad_out: &[usize], input_shape: &[usize]) -> Result<()> {
    let rank = input_shape.len();
    if grad_out.len() == rank && grad_out[..rank - 2] == input_shape[..rank - 2] {
        return Ok(());
    }
    Err(TensorError::ShapeMismatch {
        op,
        what: "grad_out and input differ in rank or leading dims".to_string(),
        lhs: grad_out.to_vec(),
        rhs: input_shape.to_vec(),
    })
}

fn check_output_shape(op: &'static str, grad_out: &[usize], expected: &[usize]) -> Result<()> {
    if grad_out == expected {
        return Ok(());
    }
    Err(TensorError::ShapeMismatch {
        op,
        what: "grad_out differs from the pooling's output shape".to_string(),
        lhs: grad_out.to_vec(),
        rhs: expected.to_vec(),
    })
}

fn check_divisor(op: &'static str, params: &AvgPool2dParams) -> Result<()> {
    if params.divisor_override == Some(0) {
        return Err(TensorError::InvalidArgument {
            op,
            reason: "divisor override must be positive".to_string(),
        });
    }
    Ok(())
}

/// Runs `f(dst_plane, plane_index)` on each `dst_len` chunk of `dst`, in parallel over planes
/// when `work` is large enough.
fn for_each_plane<T: Element>(
    work: usize,
    dst: &mut [T],
    dst_len: usize,
    f: impl Fn(&mut [T], usize) + Sync,
) {
    let parallel = work >= PAR_THRESHOLD && rayon::current_num_threads() > 1;
    if parallel && dst.len() > dst_len {
        dst.par_chunks_mut(dst_len)
            .enumerate()
            .for_each(|(p, d)| f(d, p));
    } else {
        for (p, d) in dst.chunks_mut(dst_len).enumerate() {
            f(d, p);
        }
    }
}

#[cfg(test)]
mod tests;
