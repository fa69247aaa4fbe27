//! Helpers that the derivatives table's gradient expressions call: pieces of backward rules
//! too long to write inline, built from differentiable ops so they differentiate again.

use strata_tensor::{Element, Tensor};

use crate::error::Result;
use crate::var::Var;

/// A constant: `above` where `x > at`, `below` elsewhere (derivative of relu-like ops).
pub(crate) fn step<T: Element>(x: &Var<T>, at: T, above: T, below: T) -> Result<Var<T>> {
    Ok(Var::new(
        x.value().map(|v| if v > at { above } else { below }),
    ))
}

/// The gradient of `relu` at `x`: `grad` where `x > 0`, else 0. While the backward pass
/// records (`create_graph`) it is `grad * step(x)` from differentiable ops; otherwise one pass
/// that selects, as PyTorch's `threshold_backward` does: the same values as the product, except
/// that a negative or NaN `grad` at an inactive unit gives `0` rather than `-0` or NaN.
pub(crate) fn relu_grad<T: Element>(x: &Var<T>, grad: &Var<T>) -> Result<Var<T>> {
    if crate::mode::is_grad_enabled() {
        grad.mul(&step(x, T::zero(), T::one(), T::zero())?)
    } else {
        let dx = grad.value().zip_map(&x.value(), "relu_backward", |g, v| {
            if v > T::zero() {
                g
            } else {
                T::zero()
            }
        })?;
        Ok(Var::new(dx))
    }
}

/// A constant: 1 where `min <= x <= max`, 0 elsewhere (derivative of `clamp`).
pub(crate) fn inside<T: Element>(x: &Var<T>, min: T, max: T) -> Result<Var<T>> {
    Ok(Var::new(x.value().map(|v| {
        if v >= min && v <= max {
            T::one()
        } else {
            T::zero()
        }
    })))
}

/// A constant in the broadcast shape of `a` and `b`: 1 where `a > b`, 1/2 where they tie,
/// 0 elsewhere (the share of the gradient `maximum` sends to `a`).
pub(crate) fn greater_weight<T: Element>(a: &Var<T>, b: &Var<T>) -> Result<Var<T>> {
    let half = T::from_f64(0.5);
    let w = a.value().zip_map(&b.value(), "maximum", move |x, y| {
        if x > y {
            T::one()
        } else if x == y {
            half
        } else {
            T::zero()
        }
    })?;
    Ok(Var::new(w))
}

/// `grad` where `condition` is non-zero (or zero, when `when` is false), 0 elsewhere, in the
/// broadcast shape of both.
pub(crate) fn select<T: Element>(
    condition: &Tensor<T>,
    grad: &Var<T>,
    when: bool,
) -> Result<Var<T>> {
    let keep = condition.map(|c| {
        if (c != T::zero()) == when {
            T::one()
        } else {
            T::zero()
        }
    });
    grad.mul(&Var::new(keep))
}

/// `d/dx [x Phi(x)] = Phi(x) + x phi(x)`, from differentiable ops.
pub(crate) fn gelu_derivative<T: Element>(x: &Var<T>) -> Result<Var<T>> {
    let cdf = x
        .mul_scalar(T::from_f64(std::f64::consts::FRAC_1_SQRT_2))
        .erf()
        .add_scalar(T::one())
        .mul_scalar(T::from_f64(0.5));
    let inv_sqrt_2pi = 0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2;
    let pdf = x
        .square()
        .mul_scalar(T::from_f64(-0.5))
        .exp()
        .mul_scalar(T::from_f64(inv_sqrt_2pi));
    cdf.add(&x.mul(&pdf)?)
}

/// The gradient GELU sends back, `grad * (Phi(x) + x phi(x))`.
///
/// While the backward pass records (`create_graph`) it is built from differentiable ops, so it
/// differentiates again; otherwise it is one fused kernel, [`Tensor::gelu_backward`], which
/// rounds every element as the composed ops do but allocates one tensor instead of ten.
pub(crate) fn gelu_grad<T: Element>(x: &Var<T>, grad: &Var<T>) -> Result<Var<T>> {
    if crate::mode::is_grad_enabled() {
        grad.mul(&gelu_derivative(x)?)
    } else {
        Ok(Var::new(x.value().gelu_backward(&grad.value())?))
    }
}

/// Derivative of the tanh form of GELU, from differentiable ops.
pub(crate) fn gelu_tanh_derivative<T: Element>(x: &Var<T>) -> Result<Var<T>> {
    let k = T::from_f64((2.0 / std::f64::consts::PI).sqrt());
    let c = T::from_f64(0.044715);
    let half = T::from_f64(0.5);
    let u = x.add(&x.powi(3).mul_scalar(c))?.mul_scalar(k);
    let t = u.tanh();
    let left = t.add_scalar(T::one()).mul_scalar(half);
    let du = x
        .square()
        .mul_scalar(T::from_f64(3.0) * c)
        .add_scalar(T::one())
        .mul_scalar(k);
    let right = x
        .mul(&t.square().neg().add_scalar(T::one()))?
        .mul(&du)?
        .mul_scalar(half);
    left.add(&right)
}

/// `d/dx [x sigmoid(x)] = s (1 + x (1 - s))`, from differentiable ops.
pub(crate) fn silu_derivative<T: Element>(x: &Var<T>) -> Result<Var<T>> {
    let s = x.sigmoid();
    let inner = x.mul(&s.neg().add_scalar(T::one()))?.add_scalar(T::one());
    s.mul(&inner)
}

/// The shape of `shape` reduced over `dims` (all when empty) with the dims kept as size 1.
pub(crate) fn keepdim_shape(shape: &[usize], dims: &[isize]) -> Result<Vec<usize>> {
    let mut kept = shape.to_vec();
    if dims.is_empty() {
        kept.iter_mut().for_each(|n| *n = 1);
    } else {
        for d in strata_tensor::normalize_dims("reduce", dims, shape.len())? {
            kept[d] = 1;
        }
    }
    Ok(kept)
}

/// Broadcasts the gradient of a reduction without keepdim back to the input's shape.
pub(crate) fn expand_reduced<T: Element>(
    grad: &Var<T>,
    shape: &[usize],
    dims: &[isize],
) -> Result<Var<T>> {
    grad.reshape(&keepdim_shape(shape, dims)?)?
        .broadcast_to(shape)
}

/// A constant: `1/k` where `x` equals the reduced extremum `y` (with `k` ties in its group),
/// 0 elsewhere.
pub(crate) fn argmax_weight<T: Element>(x: &Var<T>, y: &Var<T>, dims: &[isize]) -> Result<Var<T>> {
    let kept = keepdim_shape(x.shape(), dims)?;
    let hits = x.value().eq(&y.value().reshape(&kept)?)?;
    let counts = hits.sum_keepdim(dims)?;
    Ok(Var::new(hits.div(&counts)?))
}

/// `2 (x - mean) / (N - correction) * dy`, broadcast over the reduced dims.
pub(crate) fn var_backward<T: Element>(
    x: &Var<T>,
    grad: &Var<T>,
    dims: &[isize],
    correction: usize,
) -> Result<Var<T>> {
    let kept = keepdim_shape(x.shape(), dims)?;
    let n = x.numel() / kept.iter().product::<usize>().max(1);
    let scale = T::from_f64(2.0) / (T::from_usize(n) - T::from_usize(correction));
    let centered = x.sub(&x.mean_keepdim(dims)?)?;
    Ok(centered
        .mul(&expand_reduced(grad, x.shape(), dims)?)?
        .mul_scalar(scale))
}

/// `y (dy - sum(dy y))` along `dim`.
pub(crate) fn softmax_backward<T: Element>(
    y: &Var<T>,
    grad: &Var<T>,
    dim: isize,
) -> Result<Var<T>> {
    let dot = grad.mul(y)?.sum_keepdim(&[dim])?;
    y.mul(&grad.sub(&dot)?)
}

/// `dy - e^y sum(dy)` along `dim`.
pub(crate) fn log_softmax_backward<T: Element>(
    y: &Var<T>,
    grad: &Var<T>,
    dim: isize,
) -> Result<Var<T>> {
    let total = grad.sum_keepdim(&[dim])?;
    grad.sub(&y.exp().mul(&total)?)
}

/// Promotes 1-D matmul operands to 2-D the way `numpy.matmul` does and returns
/// (lhs, rhs, grad) as matrices (or batches), so that the 2-D rules apply.
fn promote<T: Element>(a: &Var<T>, b: &Var<T>, grad: &Var<T>) -> Result<(Var<T>, Var<T>, Var<T>)> {
    let a2 = if a.ndim() == 1 {
        a.reshape(&[1, a.shape()[0]])?
    } else {
        a.clone()
    };
    let b2 = if b.ndim() == 1 {
        b.reshape(&[b.shape()[0], 1])?
    } else {
        b.clone()
    };
    let mut g_shape: Vec<usize> = grad.shape().to_vec();
    if a.ndim() == 1 {
        let at = g_shape.len() - usize::from(b.ndim() != 1);
        g_shape.insert(at, 1);
    }
    if b.ndim() == 1 {
        g_shape.push(1);
    }
    Ok((a2, b2, grad.reshape(&g_shape)?))
}

/// `dA = sum_to(dY B^T, A)` for `Y = A @ B`.
pub(crate) fn matmul_grad_lhs<T: Element>(a: &Var<T>, b: &Var<T>, grad: &Var<T>) -> Result<Var<T>> {
    let (a2, b2, g2) = promote(a, b, grad)?;
    let da = g2
        .matmul(&b2.transpose(-2, -1)?)?
        .sum_to_shape(a2.shape())?;
    da.reshape(a.shape())
}

/// `dB = sum_to(A^T dY, B)` for `Y = A @ B`.
pub(crate) fn matmul_grad_rhs<T: Element>(a: &Var<T>, b: &Var<T>, grad: &Var<T>) -> Result<Var<T>> {
    let (a2, b2, g2) = promote(a, b, grad)?;
    let db = a2
        .transpose(-2, -1)?
        .matmul(&g2)?
        .sum_to_shape(b2.shape())?;
    db.reshape(b.shape())
}

/// The permutation that undoes `dims`.
pub(crate) fn inverse_permutation(dims: &[isize], rank: usize) -> Result<Vec<isize>> {
    let mut inverse = vec![0isize; rank];
    for (i, &d) in dims.iter().enumerate() {
        inverse[strata_tensor::normalize_dim("permute", d, rank)?] = i as isize;
    }
    Ok(inverse)
}

/// Zero-pads the gradient of `narrow` back to the input's extent along `dim`.
pub(crate) fn narrow_backward<T: Element>(
    grad: &Var<T>,
    shape: &[usize],
    dim: isize,
    start: usize,
) -> Result<Var<T>> {
    let axis = strata_tensor::normalize_dim("narrow", dim, shape.len())?;
    let len = grad.shape()[axis];
    let mut pads = vec![(0, 0); shape.len() - axis];
    pads[0] = (start, shape[axis] - start - len);
    grad.pad(&pads, T::zero())
}

/// Places the gradient of a stepped `slice` back at its entries, zeros elsewhere: each entry
/// is followed by `step - 1` zeros, then the run is cut or padded to the input's extent.
pub(crate) fn slice_backward<T: Element>(
    grad: &Var<T>,
    shape: &[usize],
    dim: isize,
    start: usize,
    step: usize,
) -> Result<Var<T>> {
    let axis = strata_tensor::normalize_dim("slice", dim, shape.len())?;
    let count = grad.shape()[axis];
    let mut spread = grad.clone();
    if step > 1 {
        let mut pads = vec![(0, 0); grad.ndim() + 1 - (axis + 1)];
        pads[0] = (0, step - 1);
        let mut wide = grad.shape().to_vec();
        wide[axis] = count * step;
        spread = grad
            .unsqueeze(axis as isize + 1)?
            .pad(&pads, T::zero())?
            .reshape(&wide)?;
    }
    let room = shape[axis] - start;
    let run = spread.shape()[axis];
    if run > room {
        spread = spread.narrow(axis as isize, 0, room)?;
    }
    let mut pads = vec![(0, 0); shape.len() - axis];
    pads[0] = (start, room - run.min(room));
    spread.pad(&pads, T::zero())
}

/// Narrows the gradient of `pad` back to the input's extent on each padded dim.
pub(crate) fn pad_backward<T: Element>(
    grad: &Var<T>,
    shape: &[usize],
    pads: &[(usize, usize)],
) -> Result<Var<T>> {
    let lead = shape.len() - pads.len();
    let mut out = grad.clone();
    for (k, &(before, _)) in pads.iter().enumerate() {
        out = out.narrow((lead + k) as isize, before, shape[lead + k])?;
    }
    Ok(out)
}

/// Sums the gradient of `repeat` over its tiles: view the output as (tiles, size) pairs per
/// dim and reduce the tile axes.
pub(crate) fn repeat_backward<T: Element>(
    grad: &Var<T>,
    shape: &[usize],
    repeats: &[usize],
) -> Result<Var<T>> {
    let extra = repeats.len() - shape.len();
    let mut split = Vec::with_capacity(2 * repeats.len());
    let mut tile_dims = Vec::with_capacity(repeats.len());
    for (k, &r) in repeats.iter().enumerate() {
        let size = if k < extra { 1 } else { shape[k - extra] };
        tile_dims.push(split.len() as isize);
        split.push(r);
        split.push(size);
    }
    grad.reshape(&split)?.sum(&tile_dims)?.reshape(shape)
}

/// Rows of `grad` looked up by `indices`, zero where the index is `padding_idx`.
pub(crate) fn embedding_lookup_masked<T: Element>(
    grad: &Var<T>,
    indices: &strata_tensor::IndexTensor,
    padding_idx: Option<usize>,
) -> Result<Var<T>> {
    let rows = grad.embedding(indices, None)?;
    match padding_idx {
        None => Ok(rows),
        Some(p) => {
            let keep: Vec<T> = indices
                .as_slice()
                .iter()
                .map(|&i| if i == p { T::zero() } else { T::one() })
                .collect();
            let mut shape = indices.shape().to_vec();
            shape.push(1);
            rows.mul(&Var::new(Tensor::from_vec(keep, &shape)?))
        }
    }
}

/// `dy` gathered at max-pooling `indices` (flat positions within each `H x W` plane): the
/// adjoint of routing a gradient to those positions.
pub(crate) fn gather_planes<T: Element>(
    grad: &Var<T>,
    indices: &strata_tensor::IndexTensor,
) -> Result<Var<T>> {
    let s = grad.shape().to_vec();
    let (n, c) = (s[0], s[1]);
    let plane = s[2..].iter().product::<usize>();
    let out_shape = indices.shape().to_vec();
    let per_plane = out_shape[2..].iter().product::<usize>();
    let flat_index = indices.reshape(&[n, c, per_plane])?;
    grad.reshape(&[n, c, plane])?
        .gather(2, &flat_index)?
        .reshape(&out_shape)
}

#[cfg(test)]
mod tests {
    use strata_tensor::{Element, Generator, Tensor};

    use crate::engine::BackwardOptions;
    use crate::var::Var;

    fn gelu_gradients<T: Element>(x: &Var<T>, dy: &Tensor<T>) -> (Vec<T>, Vec<T>) {
        let gradient = |create_graph| {
            x.zero_grad();
            let options = BackwardOptions {
                create_graph,
                ..BackwardOptions::default()
            };
            x.gelu().backward_with(dy, options).unwrap();
            x.grad().unwrap().to_vec()
        };
        (gradient(false), gradient(true))
    }

    #[test]
    fn fused_gelu_gradient_has_the_bits_of_the_recorded_one_in_f64() {
        let x = Var::parameter(Generator::new(5).randn::<f64>(&[4, 33]).mul_scalar(3.0));
        let dy = Generator::new(6).randn::<f64>(&[4, 33]);

        let (fused, recorded) = gelu_gradients(&x, &dy);

        assert_eq!(fused, recorded);
        assert!(fused.iter().any(|&g| g != 0.0));
    }

    #[test]
    fn fused_gelu_gradient_is_close_to_the_recorded_one_in_f32() {
        let x = Var::parameter(Generator::new(5).randn::<f32>(&[4, 33]).mul_scalar(3.0));
        let dy = Generator::new(6).randn::<f32>(&[4, 33]);

        let (fused, recorded) = gelu_gradients(&x, &dy);

        for (f, r) in fused.iter().zip(&recorded) {
            assert!((f - r).abs() <= 1e-6 * r.abs() + 3e-7, "{f} vs {r}");
        }
    }
}
