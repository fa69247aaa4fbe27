//! im2col and col2im: unfolding one sample into its column matrix and folding a column
//! matrix back onto a sample.
//!
//! The column matrix has one row per `(channel, kernel row, kernel column)` tap and one column
//! per output position `(y, x)`, both row-major, so the rows of group `g` form one contiguous
//! block. Entry `(c, i, j; y, x)` holds `in[c, y*s_h - p_h + i*d_h, x*s_w - p_w + j*d_w]`, or
//! zero where that lies in the padding.

use super::Geometry;
use crate::element::Element;

/// The output positions `lo..hi` along one axis whose tap at `offset` (kernel index times
/// dilation) reads inside an input of length `len`: position `o` reads `o*stride + offset -
/// pad`.
fn valid_range(
    len: usize,
    out_len: usize,
    stride: usize,
    pad: usize,
    offset: usize,
) -> (usize, usize) {
    let lo = if offset >= pad {
        0
    } else {
        (pad - offset).div_ceil(stride)
    };
    let hi = if len + pad > offset {
        (len + pad - offset).div_ceil(stride).min(out_len)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Calls `f(tap_plane, row, oy, x_lo..x_hi, ix0)` for each row of the column matrix: the
/// input plane the tap reads, the row, and for each output row `oy` whose input row `iy` is
/// inside, the range of output columns inside and the input column of the first of them.
fn for_each_tap(
    geo: &Geometry,
    mut f: impl FnMut(usize, usize, usize, (usize, usize), usize, usize),
) {
    let p = &geo.params;
    let mut row = 0;
    for c in 0..geo.c_in {
        for ki in 0..geo.k_h {
            let off_h = ki * p.dilation[0];
            let (y_lo, y_hi) = valid_range(geo.in_h, geo.out_h, p.stride[0], p.padding[0], off_h);
            for kj in 0..geo.k_w {
                let off_w = kj * p.dilation[1];
                let (x_lo, x_hi) =
                    valid_range(geo.in_w, geo.out_w, p.stride[1], p.padding[1], off_w);
                let ix0 = (x_lo * p.stride[1] + off_w).saturating_sub(p.padding[1]);
                for oy in y_lo..y_hi {
                    let iy = oy * p.stride[0] + off_h - p.padding[0];
                    f(c, row, oy, (x_lo, x_hi), iy, ix0);
                }
                row += 1;
            }
        }
    }
}

/// Whether the convolution has stride 1, dilation 1 and no padding, so that every entry of
/// the column matrix reads the input and each of its row segments is one input run.
fn is_dense(geo: &Geometry) -> bool {
    let p = &geo.params;
    p.stride == [1, 1] && p.dilation == [1, 1] && p.padding == [0, 0]
}

/// Calls `f(row_segment_start, input_run_start)` for each output row segment of the column
/// matrix of a dense convolution (see [`is_dense`]): `W_out` entries read from one input run.
#[inline(always)]
fn for_each_dense_run(geo: &Geometry, mut f: impl FnMut(usize, usize)) {
    let (plane_in, plane_out) = (geo.in_h * geo.in_w, geo.out_plane());
    let mut row = 0;
    for c in 0..geo.c_in {
        for ki in 0..geo.k_h {
            for kj in 0..geo.k_w {
                let (dst0, src0) = (row * plane_out, c * plane_in + ki * geo.in_w + kj);
                for oy in 0..geo.out_h {
                    f(dst0 + oy * geo.out_w, src0 + oy * geo.in_w);
                }
                row += 1;
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short runs of a column matrix, in fixed 8-element
/// pieces that compile to vector moves instead of a `memcpy` call per run.
#[inline(always)]
fn copy_run<T: Element>(dst: &mut [T], src: &[T]) {
    let (mut d, mut s) = (dst.chunks_exact_mut(8), src.chunks_exact(8));
    for (d8, s8) in (&mut d).zip(&mut s) {
        let s8: &[T; 8] = s8.try_into().expect("bug: chunk of 8");
        d8.copy_from_slice(s8);
    }
    for (d1, &s1) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d1 = s1;
    }
}

/// `dst[i] += src[i]`, the adjoint of [`copy_run`].
#[inline(always)]
fn add_run<T: Element>(dst: &mut [T], src: &[T]) {
    for (d1, &s1) in dst.iter_mut().zip(src) {
        *d1 += s1;
    }
}

/// Fills `col` (`C_in * kH * kW` rows of `H_out * W_out`) with the column matrix of `x`.
pub(super) fn im2col<T: Element>(geo: &Geometry, x: &[T], col: &mut [T]) {
    if is_dense(geo) {
        let w = geo.out_w;
        for_each_dense_run(geo, |at, from| {
            copy_run(&mut col[at..][..w], &x[from..][..w])
        });
        return;
    }
    let (plane_in, plane_out) = (geo.in_h * geo.in_w, geo.out_plane());
    let (in_w, out_w, stride) = (geo.in_w, geo.out_w, geo.params.stride[1]);
    debug_assert_eq!(
        col.len(),
        geo.c_in * geo.k_h * geo.k_w * plane_out,
        "bug: im2col size"
    );
    // Padding rows and columns stay zero: only the inside ranges are written below.
    col.fill(T::zero());
    for_each_tap(geo, |c, row, oy, (x_lo, x_hi), iy, ix0| {
        if x_lo == x_hi {
            return;
        }
        let src = &x[c * plane_in + iy * in_w..][..in_w];
        let dst = &mut col[row * plane_out + oy * out_w..][x_lo..x_hi];
        if stride == 1 {
            dst.copy_from_slice(&src[ix0..ix0 + dst.len()]);
        } else {
            for (d, &v) in dst.iter_mut().zip(src[ix0..].iter().step_by(stride)) {
                *d = v;
            }
        }
    });
}

/// Adds each entry of the column matrix `col` onto the input element it was read from in
/// `dx`, the adjoint of [`im2col`].
pub(super) fn col2im<T: Element>(geo: &Geometry, col: &[T], dx: &mut [T]) {
    if is_dense(geo) {
        let w = geo.out_w;
        for_each_dense_run(geo, |at, to| add_run(&mut dx[to..][..w], &col[at..][..w]));
        return;
    }
    let (plane_in, plane_out) = (geo.in_h * geo.in_w, geo.out_plane());
    let (in_w, out_w, stride) = (geo.in_w, geo.out_w, geo.params.stride[1]);
    for_each_tap(geo, |c, row, oy, (x_lo, x_hi), iy, ix0| {
        if x_lo == x_hi {
            return;
        }
        let src = &col[row * plane_out + oy * out_w..][x_lo..x_hi];
        let dst = &mut dx[c * plane_in + iy * in_w..][..in_w];
        if stride == 1 {
            for (d, &v) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                *d += v;
            }
        } else {
            for (d, &v) in dst[ix0..].iter_mut().step_by(stride).zip(src) {
                *d += v;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_clips_padding_on_both_sides() {
        // len 5, pad 2, stride 2: position o reads 2*o + offset - 2.
        let ranges: Vec<_> = (0..3)
            .map(|offset| valid_range(5, 4, 2, 2, offset))
            .collect();

        // offset 0 reads -2, 0, 2, 4: positions 1..4; offset 1 reads -1, 1, 3, 5: 1..3;
        // offset 2 reads 0, 2, 4, 6: 0..3.
        assert_eq!(ranges, vec![(1, 4), (1, 3), (0, 3)]);
    }

    #[test]
    fn valid_range_is_empty_when_the_tap_never_lands_inside() {
        // len 1, pad 3: the one output position reads index -3.
        let (lo, hi) = valid_range(1, 1, 1, 3, 0);

        assert_eq!(lo, hi);
    }
}
