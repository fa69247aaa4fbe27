//! Elementwise maths: unary functions, broadcasting binary ops, comparisons and `where`.
//!
//! Binary ops follow NumPy's broadcasting rules (see [`crate::broadcast_shapes`]). Comparisons
//! return masks of the same element type holding `1` for true and `0` for false, as there is no
//! boolean tensor type.

use ndarray::{IxDyn, Zip};
use rayon::prelude::*;

use crate::element::Element;
use crate::error::Result;
use crate::fast_math;
use crate::parallel::{build_vec, map_vec, zip_vec, CHUNK, PAR_THRESHOLD};
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// Applies `f` to every element, returning a new contiguous tensor.
    ///
    /// Runs on rayon's threads above [`crate::parallel::PAR_THRESHOLD`] elements.
    pub fn map(&self, f: impl Fn(T) -> T + Sync) -> Tensor<T> {
        let src = self.contiguous_slice();
        Tensor::from_contiguous(map_vec(&src, f), self.shape().to_vec())
    }

    /// Combines two tensors elementwise with broadcasting: `out[i] = f(self[i], other[i])`.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] (naming `op`) if the shapes do not broadcast.
    pub fn zip_map(
        &self,
        other: &Tensor<T>,
        op: &'static str,
        f: impl Fn(T, T) -> T + Sync + Send,
    ) -> Result<Tensor<T>> {
        if self.shape() == other.shape() {
            if let (Some(a), Some(b)) = (self.as_slice(), other.as_slice()) {
                let out = zip_vec(a, b, f);
                return Ok(Tensor::from_contiguous(out, self.shape().to_vec()));
            }
        }
        let shape = broadcast_shapes(op, self.shape(), other.shape())?;
        if let Some(out) = zip_rows(self, other, &shape, &f) {
            return Ok(Tensor::from_contiguous(out, shape));
        }
        let a = self.view();
        let b = other.view();
        let a = a
            .broadcast(IxDyn(&shape))
            .expect("bug: shapes were checked to broadcast");
        let b = b
            .broadcast(IxDyn(&shape))
            .expect("bug: shapes were checked to broadcast");
        let mut out = ndarray::ArrayD::<T>::zeros(IxDyn(&shape));
        let parallel = out.len() >= PAR_THRESHOLD;
        let zip = Zip::from(&mut out).and(&a).and(&b);
        if parallel && rayon::current_num_threads() > 1 {
            zip.par_for_each(|o, &x, &y| *o = f(x, y));
        } else {
            zip.for_each(|o, &x, &y| *o = f(x, y));
        }
        Ok(Tensor::from_array(out))
    }

    /// Elementwise negation, `-x`.
    pub fn neg(&self) -> Tensor<T> {
        self.map(|x| -x)
    }

    /// Absolute value, `|x|`.
    pub fn abs(&self) -> Tensor<T> {
        self.map(|x| x.abs())
    }

    /// Exponential, `e^x`.
    pub fn exp(&self) -> Tensor<T> {
        self.map(|x| x.exp())
    }

    /// Natural logarithm, `ln x` (PyTorch's `log`); `-inf` at 0, NaN below.
    pub fn ln(&self) -> Tensor<T> {
        self.map(|x| x.ln())
    }

    /// `ln(1 + x)`, accurate for small `x`.
    pub fn log1p(&self) -> Tensor<T> {
        self.map(|x| x.ln_1p())
    }

    /// Square root.
    pub fn sqrt(&self) -> Tensor<T> {
        self.map(|x| x.sqrt())
    }

    /// Reciprocal square root, `1 / sqrt(x)`.
    pub fn rsqrt(&self) -> Tensor<T> {
        self.map(|x| x.sqrt().recip())
    }

    /// `x^p` for a real exponent.
    pub fn powf(&self, p: T) -> Tensor<T> {
        self.map(|x| x.powf(p))
    }

    /// `x^n` for an integer exponent.
    pub fn powi(&self, n: i32) -> Tensor<T> {
        self.map(|x| x.powi(n))
    }

    /// `x^2`.
    pub fn square(&self) -> Tensor<T> {
        self.map(|x| x * x)
    }

    /// Sine.
    pub fn sin(&self) -> Tensor<T> {
        self.map(|x| x.sin())
    }

    /// Cosine.
    pub fn cos(&self) -> Tensor<T> {
        self.map(|x| x.cos())
    }

    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Tensor<T> {
        self.map(|x| x.tanh())
    }

    /// Logistic sigmoid, `1 / (1 + e^-x)`, computed without overflow for large `|x|`.
    pub fn sigmoid(&self) -> Tensor<T> {
        self.map(sigmoid)
    }

    /// Rectified linear unit, `max(x, 0)`.
    pub fn relu(&self) -> Tensor<T> {
        self.map(|x| if x > T::zero() { x } else { T::zero() })
    }

    /// Leaky ReLU: `x` for `x > 0`, `slope * x` otherwise (PyTorch's default slope is 0.01).
    pub fn leaky_relu(&self, slope: T) -> Tensor<T> {
        self.map(|x| if x > T::zero() { x } else { slope * x })
    }

    /// GELU, exact form: `x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))`.
    ///
    /// In `f32` it runs a vectorised kernel whose `erf` is within about 2 ulps of libm's (see
    /// `fast_math.rs`); `f64` uses libm.
    pub fn gelu(&self) -> Tensor<T> {
        let src = self.contiguous_slice();
        if let Some(xs) = fast_math::as_f32(&src) {
            let mut out = vec![T::zero(); xs.len()];
            let dst = fast_math::as_f32_mut(&mut out).expect("bug: T is f32");
            in_chunks(xs, xs, dst, |x, _, o| fast_math::gelu(x, o));
            return Tensor::from_contiguous(out, self.shape().to_vec());
        }
        self.map(gelu_erf)
    }

    /// The gradient of [`Tensor::gelu`] at `self` given the output gradient `grad`, in one
    /// pass (PyTorch's `gelu_backward`):
    ///
    /// ```text
    /// dx = dy * (Phi(x) + x phi(x)),   Phi(x) = (1 + erf(x / sqrt 2)) / 2,
    ///                                  phi(x) = e^(-x^2 / 2) / sqrt(2 pi)
    /// ```
    ///
    /// In `f64` each element is rounded as the same expression built from separate
    /// elementwise ops would round it. In `f32`, for operands of the same shape, it runs the
    /// vectorised kernel of [`Tensor::gelu`] (within a few ulps of the libm formula).
    ///
    /// # Shapes
    /// - `self`, `grad`: any shapes that broadcast together; output: the broadcast shape
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn gelu_backward(&self, grad: &Tensor<T>) -> Result<Tensor<T>> {
        let half = T::from_f64(0.5);
        let rsqrt2 = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
        let inv_sqrt_2pi =
            T::from_f64(0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2);
        if self.shape() == grad.shape() {
            let (src, dys) = (self.contiguous_slice(), grad.contiguous_slice());
            if let (Some(xs), Some(dys)) = (fast_math::as_f32(&src), fast_math::as_f32(&dys)) {
                let mut out = vec![T::zero(); xs.len()];
                let dst = fast_math::as_f32_mut(&mut out).expect("bug: T is f32");
                in_chunks(xs, dys, dst, fast_math::gelu_backward);
                return Ok(Tensor::from_contiguous(out, self.shape().to_vec()));
            }
        }
        self.zip_map(grad, "gelu_backward", move |x, dy| {
            let cdf = ((x * rsqrt2).erf() + T::one()) * half;
            let pdf = (x * x * -half).exp() * inv_sqrt_2pi;
            dy * (cdf + x * pdf)
        })
    }

    /// GELU, tanh approximation (PyTorch's `approximate="tanh"`):
    ///
    /// ```text
    /// y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
    /// ```
    pub fn gelu_tanh(&self) -> Tensor<T> {
        self.map(gelu_tanh)
    }

    /// SiLU (swish), `x * sigmoid(x)`.
    pub fn silu(&self) -> Tensor<T> {
        self.map(|x| x * sigmoid(x))
    }

    /// Softplus, `ln(1 + e^x)`, linear above `x = 20` as in PyTorch (beta 1, threshold 20).
    pub fn softplus(&self) -> Tensor<T> {
        self.map(softplus)
    }

    /// Clamps every element into `[min, max]`; NaN stays NaN.
    pub fn clamp(&self, min: T, max: T) -> Tensor<T> {
        self.map(|x| {
            if x < min {
                min
            } else if x > max {
                max
            } else {
                x
            }
        })
    }

    /// Sign: -1, 0 or 1 (0 for both zeros; NaN stays NaN).
    pub fn sign(&self) -> Tensor<T> {
        self.map(|x| {
            if x > T::zero() {
                T::one()
            } else if x < T::zero() {
                -T::one()
            } else {
                x
            }
        })
    }

    /// Reciprocal, `1 / x`.
    pub fn reciprocal(&self) -> Tensor<T> {
        self.map(|x| x.recip())
    }

    /// `x + s` for a scalar `s`.
    pub fn add_scalar(&self, s: T) -> Tensor<T> {
        self.map(|x| x + s)
    }

    /// `x * s` for a scalar `s`.
    pub fn mul_scalar(&self, s: T) -> Tensor<T> {
        self.map(|x| x * s)
    }

    /// Elementwise sum with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn add(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "add", |a, b| a + b)
    }

    /// Elementwise difference with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn sub(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "sub", |a, b| a - b)
    }

    /// Elementwise product with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn mul(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "mul", |a, b| a * b)
    }

    /// Elementwise quotient with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn div(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "div", |a, b| a / b)
    }

    /// Elementwise power `self^other` with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn pow(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "pow", |a, b| a.powf(b))
    }

    /// Elementwise maximum with broadcasting; NaN in either operand gives NaN, as in PyTorch.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn maximum(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(
            other,
            "maximum",
            |a, b| if a.is_nan() || a >= b { a } else { b },
        )
    }

    /// Elementwise minimum with broadcasting; NaN in either operand gives NaN, as in PyTorch.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn minimum(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(
            other,
            "minimum",
            |a, b| if a.is_nan() || a <= b { a } else { b },
        )
    }

    /// Mask of `self == other` (1 where true, 0 where false), with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn eq(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "eq", |a, b| mask(a == b))
    }

    /// Mask of `self != other`, with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn ne(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "ne", |a, b| mask(a != b))
    }

    /// Mask of `self < other`, with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn lt(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "lt", |a, b| mask(a < b))
    }

    /// Mask of `self <= other`, with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn le(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "le", |a, b| mask(a <= b))
    }

    /// Mask of `self > other`, with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn gt(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "gt", |a, b| mask(a > b))
    }

    /// Mask of `self >= other`, with broadcasting.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the shapes do not broadcast.
    pub fn ge(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        self.zip_map(other, "ge", |a, b| mask(a >= b))
    }

    /// Picks `on_true` where `condition` is non-zero and `on_false` elsewhere (PyTorch's
    /// `torch.where(condition, on_true, on_false)`); all three broadcast together.
    ///
    /// # Errors
    /// [`crate::TensorError::Broadcast`] if the three shapes do not broadcast.
    pub fn where_cond(
        condition: &Tensor<T>,
        on_true: &Tensor<T>,
        on_false: &Tensor<T>,
    ) -> Result<Tensor<T>> {
        let shape = broadcast_shapes("where", condition.shape(), on_true.shape())?;
        let shape = broadcast_shapes("where", &shape, on_false.shape())?;
        let dim = IxDyn(&shape);
        let (c, t, f) = (condition.view(), on_true.view(), on_false.view());
        let c = c.broadcast(dim.clone()).expect("bug: checked broadcast");
        let t = t.broadcast(dim.clone()).expect("bug: checked broadcast");
        let f = f.broadcast(dim.clone()).expect("bug: checked broadcast");
        let mut out = ndarray::ArrayD::<T>::zeros(dim);
        Zip::from(&mut out)
            .and(&c)
            .and(&t)
            .and(&f)
            .for_each(|o, &c, &t, &f| {
                *o = if c != T::zero() { t } else { f };
            });
        Ok(Tensor::from_array(out))
    }
}

/// 1 for true, 0 for false.
fn mask<T: Element>(b: bool) -> T {
    if b {
        T::one()
    } else {
        T::zero()
    }
}

/// Runs `kernel(a, b, out)` over matching pieces of the three slices: in parallel chunks of
/// [`CHUNK`] elements above [`PAR_THRESHOLD`], in one piece below.
fn in_chunks(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    kernel: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) {
    if out.len() >= PAR_THRESHOLD && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| kernel(a, b, o));
    } else {
        kernel(a, b, out);
    }
}

/// Logistic sigmoid without overflow: uses `e^x / (1 + e^x)` for negative `x`.
pub(crate) fn sigmoid<T: Element>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `x * Phi(x)` with the exact normal CDF.
pub(crate) fn gelu_erf<T: Element>(x: T) -> T {
    let half = T::from_f64(0.5);
    half * x * (T::one() + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf())
}

/// The tanh approximation of GELU.
pub(crate) fn gelu_tanh<T: Element>(x: T) -> T {
    let k = T::from_f64((2.0 / std::f64::consts::PI).sqrt());
    let c = T::from_f64(0.044715);
    T::from_f64(0.5) * x * (T::one() + (k * (x + c * x * x * x)).tanh())
}

/// `ln(1 + e^x)`, returning `x` above 20 as PyTorch does.
pub(crate) fn softplus<T: Element>(x: T) -> T {
    if x > T::from_f64(20.0) {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// How an operand of a broadcast op reads one row of the output: elements in place, or one
/// value for the whole row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowRead {
    Contiguous,
    Constant,
}

/// The strides of `t` read as a tensor of the broadcast `shape` (0 along broadcast dims).
fn broadcast_strides<T: Element>(t: &Tensor<T>, shape: &[usize]) -> Vec<usize> {
    let lead = shape.len() - t.ndim();
    (0..shape.len())
        .map(|d| match d.checked_sub(lead) {
            Some(k) if t.shape()[k] != 1 => t.strides()[k],
            _ => 0,
        })
        .collect()
}

/// Broadcast `f(a, b)` over rows: the longest run of trailing dims that each operand reads
/// either contiguously or as one value (a `(N, C, H, W) + (1, C, 1, 1)` bias reads `H * W`
/// rows of one value; a `(B, T, C) + (C,)` one reads `C` contiguous elements of both). `None`
/// when the rows would be shorter than a few elements, for the general path.
fn zip_rows<T: Element>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    shape: &[usize],
    f: &(impl Fn(T, T) -> T + Sync),
) -> Option<Vec<T>> {
    const MIN_ROW: usize = 4;
    let total: usize = shape.iter().product();
    let rank = shape.len();
    if rank == 0 || total == 0 {
        return None;
    }
    let strides = [broadcast_strides(a, shape), broadcast_strides(b, shape)];
    let read = |s: usize| match s {
        0 => Some(RowRead::Constant),
        1 => Some(RowRead::Contiguous),
        _ => None,
    };
    let kinds = [read(strides[0][rank - 1])?, read(strides[1][rank - 1])?];
    let (mut row, mut inner) = (shape[rank - 1], rank - 1);
    while inner > 0 {
        let d = inner - 1;
        if shape[d] == 1 {
            // Index 0 only: the dim changes no offset.
            inner = d;
            continue;
        }
        let fits = |k: usize| match kinds[k] {
            RowRead::Contiguous => strides[k][d] == row,
            RowRead::Constant => strides[k][d] == 0,
        };
        if !(fits(0) && fits(1)) {
            break;
        }
        row *= shape[d];
        inner = d;
    }
    if row < MIN_ROW {
        return None;
    }
    // Where each row starts in each operand: an odometer over the outer dims.
    let rows = total / row;
    let outer = &shape[..inner];
    let mut starts = Vec::with_capacity(rows);
    let mut index = vec![0usize; inner];
    for _ in 0..rows {
        let at = |k: usize| {
            index
                .iter()
                .zip(&strides[k])
                .map(|(i, s)| i * s)
                .sum::<usize>()
        };
        starts.push((at(0), at(1)));
        for d in (0..inner).rev() {
            index[d] += 1;
            if index[d] < outer[d] {
                break;
            }
            index[d] = 0;
        }
    }
    let (xa, xb) = (a.strided_data(), b.strided_data());
    let rows_per_chunk = (CHUNK / row).max(1);
    let parallel = total >= PAR_THRESHOLD && rayon::current_num_threads() > 1;
    Some(build_vec(
        total,
        parallel,
        rows_per_chunk * row,
        |at, out| {
            for (r, out) in out.chunks_mut(row).enumerate() {
                let (sa, sb) = starts[at / row + r];
                match kinds {
                    [RowRead::Contiguous, RowRead::Contiguous] => {
                        let (x, y) = (&xa[sa..sa + row], &xb[sb..sb + row]);
                        for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
                            o.write(f(x, y));
                        }
                    }
                    [RowRead::Contiguous, RowRead::Constant] => {
                        let y = xb[sb];
                        for (o, &x) in out.iter_mut().zip(&xa[sa..sa + row]) {
                            o.write(f(x, y));
                        }
                    }
                    [RowRead::Constant, RowRead::Contiguous] => {
                        let x = xa[sa];
                        for (o, &y) in out.iter_mut().zip(&xb[sb..sb + row]) {
                            o.write(f(x, y));
                        }
                    }
                    [RowRead::Constant, RowRead::Constant] => {
                        let v = f(xa[sa], xb[sb]);
                        out.iter_mut().for_each(|o| {
                            o.write(v);
                        });
                    }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::random::Generator;

    /// Two shapes that broadcast: `out` with some dims set to 1, and a suffix of `out` with
    /// others set to 1.
    fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        (prop::collection::vec(1usize..=4, 0..=4), any::<u32>()).prop_map(|(out, bits)| {
            let lhs = out
                .iter()
                .enumerate()
                .map(|(i, &n)| if bits >> i & 1 == 1 { 1 } else { n })
                .collect();
            let keep = (bits >> 8) as usize % (out.len() + 1);
            let rhs = out[out.len() - keep..]
                .iter()
                .enumerate()
                .map(|(i, &n)| if bits >> (16 + i) & 1 == 1 { 1 } else { n })
                .collect();
            (lhs, rhs)
        })
    }

    /// The element of `t` that broadcasting maps output position `index` to.
    fn at(t: &Tensor<f64>, index: &[usize]) -> f64 {
        let skip = index.len() - t.ndim();
        let own: Vec<usize> = t
            .shape()
            .iter()
            .zip(&index[skip..])
            .map(|(&n, &i)| if n == 1 { 0 } else { i })
            .collect();
        t.get(&own).expect("index inside the operand")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn broadcasting_binary_ops_match_an_explicit_loop(
            (lhs, rhs) in broadcast_pair(),
            seed in any::<u64>(),
            swap in any::<bool>(),
            layout in 0u8..3,
        ) {
            let (lhs, rhs) = if swap { (rhs, lhs) } else { (lhs, rhs) };
            let mut gen = Generator::new(seed);
            let a: Tensor<f64> = match layout {
                // Non-contiguous views: stored with the last two dims swapped, or with a wider
                // last dim (rows further apart than their length).
                1 if lhs.len() >= 2 => {
                    let mut stored = lhs.clone();
                    stored.swap(lhs.len() - 2, lhs.len() - 1);
                    gen.randn(&stored).transpose(-2, -1).unwrap()
                }
                2 if !lhs.is_empty() => {
                    let mut stored = lhs.clone();
                    let last = lhs[lhs.len() - 1];
                    *stored.last_mut().unwrap() += 2;
                    gen.randn(&stored).narrow(-1, 1, last).unwrap()
                }
                _ => gen.randn(&lhs),
            };
            let b: Tensor<f64> = gen.randn(&rhs);
            let shape = broadcast_shapes("t", &lhs, &rhs).unwrap();

            let sum = a.add(&b).unwrap();
            let product = a.mul(&b).unwrap();
            let larger = a.maximum(&b).unwrap();

            prop_assert_eq!(sum.shape(), shape.as_slice());
            let (sum, product, larger) = (sum.to_vec(), product.to_vec(), larger.to_vec());
            for (flat, index) in ndarray::indices(IxDyn(&shape)).into_iter().enumerate() {
                let index = ndarray::Dimension::slice(&index).to_vec();
                let (x, y) = (at(&a, &index), at(&b, &index));
                prop_assert_eq!(sum[flat], x + y);
                prop_assert_eq!(product[flat], x * y);
                prop_assert_eq!(larger[flat], x.max(y));
            }
        }

        #[test]
        fn broadcasting_is_symmetric(
            (lhs, rhs) in broadcast_pair(),
            seed in any::<u64>(),
        ) {
            let mut gen = Generator::new(seed);
            let a: Tensor<f64> = gen.randn(&lhs);
            let b: Tensor<f64> = gen.randn(&rhs);

            prop_assert_eq!(a.add(&b).unwrap(), b.add(&a).unwrap());
        }
    }

    fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
        Tensor::from_vec(data.to_vec(), shape).unwrap()
    }

    #[test]
    fn broadcasting_add_matches_explicit_loop() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = t(&[10., 20., 30.], &[3]);
        let c = t(&[100., 200.], &[2, 1]);

        assert_eq!(
            a.add(&b).unwrap().to_vec(),
            vec![11., 22., 33., 14., 25., 36.]
        );
        assert_eq!(
            a.add(&c).unwrap().to_vec(),
            vec![101., 102., 103., 204., 205., 206.]
        );
        let err = a.add(&t(&[1., 2.], &[2])).unwrap_err();
        assert_eq!(err.to_string(), "add: cannot broadcast [2, 3] with [2]");
    }

    #[test]
    fn sigmoid_and_softplus_are_finite_at_extremes() {
        let x = t(&[-1e4, -50.0, 0.0, 50.0, 1e4], &[5]);

        let s = x.sigmoid().to_vec();
        let sp = x.softplus().to_vec();

        assert_eq!(s[0], 0.0);
        assert_eq!(s[2], 0.5);
        assert_eq!(s[4], 1.0);
        assert!(sp.iter().all(|v| v.is_finite()));
        assert_eq!(sp[4], 1e4);
    }

    #[test]
    fn gelu_matches_known_values() {
        // Values of x * Phi(x) from the normal CDF: Phi(1) = 0.8413447460685429.
        let x = t(&[-1.0, 0.0, 1.0], &[3]);

        let y = x.gelu().to_vec();

        assert!((y[2] - 0.8413447460685429).abs() < 1e-12);
        assert!((y[0] + 0.15865525393145707).abs() < 1e-12);
        assert_eq!(y[1], 0.0);
    }

    #[test]
    fn gelu_backward_is_the_derivative_times_the_gradient() {
        // d/dx x Phi(x) = Phi(x) + x phi(x); phi(1) = 0.24197072451914337.
        let x = t(&[-1.0, 0.0, 1.0], &[3]);
        let dy = t(&[1.0, 3.0, 2.0], &[3]);

        let dx = x.gelu_backward(&dy).unwrap().to_vec();

        assert!((dx[0] - (0.15865525393145707 - 0.24197072451914337)).abs() < 1e-12);
        assert_eq!(dx[1], 1.5);
        assert!((dx[2] - 2.0 * (0.8413447460685429 + 0.24197072451914337)).abs() < 1e-12);
        assert!(x.gelu_backward(&t(&[1.0, 2.0], &[2])).is_err());
    }

    #[test]
    fn where_and_comparisons_broadcast() {
        let x = t(&[1., -2., 3.], &[3]);
        let zero = Tensor::scalar(0.0);

        let m = x.gt(&zero).unwrap();
        let y = Tensor::where_cond(&m, &x, &zero).unwrap();

        assert_eq!(m.to_vec(), vec![1., 0., 1.]);
        assert_eq!(y.to_vec(), vec![1., 0., 3.]);
    }

    #[test]
    fn maximum_propagates_nan() {
        let a = t(&[f64::NAN, 1.0], &[2]);
        let b = t(&[0.0, f64::NAN], &[2]);

        let m = a.maximum(&b).unwrap().to_vec();

        assert!(m[0].is_nan() && m[1].is_nan());
    }
}
