//! Shape arithmetic shared by every op: dim normalisation, broadcasting, strides.

use crate::error::{Result, TensorError};

/// Normalises a PyTorch-style dim (negative counts from the end) to an index in `0..rank`.
///
/// # Errors
/// [`TensorError::Dim`] if `dim` is outside `-rank..rank`.
///
/// ```
/// # use strata_tensor::normalize_dim;
/// assert_eq!(normalize_dim("sum", -1, 3)?, 2);
/// assert!(normalize_dim("sum", 3, 3).is_err());
/// # Ok::<(), strata_tensor::TensorError>(())
/// ```
pub fn normalize_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r {
        return Err(TensorError::Dim { op, dim, rank });
    }
    Ok(d as usize)
}

/// Like [`normalize_dim`], for an insertion point (`unsqueeze`, `stack`): valid dims are
/// `-(rank + 1)..=rank`.
///
/// # Errors
/// [`TensorError::Dim`] if `dim` is out of that range.
pub fn normalize_insert_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    normalize_dim(op, dim, rank + 1)
}

/// Normalises a list of dims, rejecting duplicates; the result is sorted ascending.
///
/// # Errors
/// [`TensorError::Dim`] for a dim out of range, [`TensorError::InvalidArgument`] for a repeat.
pub fn normalize_dims(op: &'static str, dims: &[isize], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let n = normalize_dim(op, d, rank)?;
        if out.contains(&n) {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!("dim {d} repeated in {dims:?}"),
            });
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The broadcast shape of two shapes under NumPy's rules: align from the right; each pair of
/// sizes must be equal or one of them 1.
///
/// # Errors
/// [`TensorError::Broadcast`] when some aligned pair differs and neither is 1.
///
/// ```
/// # use strata_tensor::broadcast_shapes;
/// assert_eq!(broadcast_shapes("add", &[3, 1, 5], &[4, 1])?, vec![3, 4, 5]);
/// # Ok::<(), strata_tensor::TensorError>(())
/// ```
pub fn broadcast_shapes(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    let rank = lhs.len().max(rhs.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let a = if i < rank - lhs.len() {
            1
        } else {
            lhs[i - (rank - lhs.len())]
        };
        let b = if i < rank - rhs.len() {
            1
        } else {
            rhs[i - (rank - rhs.len())]
        };
        out[i] = if a == b || b == 1 {
            a
        } else if a == 1 {
            b
        } else {
            return Err(TensorError::Broadcast {
                op,
                lhs: lhs.to_vec(),
                rhs: rhs.to_vec(),
            });
        };
    }
    Ok(out)
}

/// Row-major (C order) strides for `shape`, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i].max(1);
    }
    strides
}

/// Number of elements of a shape (1 for a scalar, the empty shape).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_is_symmetric_and_rejects_mismatch() {
        assert_eq!(broadcast_shapes("t", &[2, 1], &[1, 3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast_shapes("t", &[1, 3], &[2, 1]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast_shapes("t", &[], &[4]).unwrap(), vec![4]);
        assert_eq!(broadcast_shapes("t", &[0], &[1]).unwrap(), vec![0]);
        let err = broadcast_shapes("add", &[2, 3], &[4]).unwrap_err();
        assert_eq!(err.to_string(), "add: cannot broadcast [2, 3] with [4]");
    }

    #[test]
    fn dims_normalise_like_pytorch() {
        assert_eq!(normalize_dim("t", -3, 3).unwrap(), 0);
        assert!(normalize_dim("t", -4, 3).is_err());
        assert_eq!(normalize_insert_dim("t", -1, 2).unwrap(), 2);
        assert_eq!(normalize_dims("t", &[-1, 0], 3).unwrap(), vec![0, 2]);
        assert!(normalize_dims("t", &[1, -2], 3).is_err());
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(contiguous_strides(&[]), Vec::<usize>::new());
    }
}
