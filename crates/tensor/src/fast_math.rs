//! Branch-free `f32` GELU kernels that the compiler vectorises, in place of a scalar `erff`
//! and `expf` call per element.
//!
//! GELU and its backward were about a quarter of a char GPT training step with libm's scalar
//! `erff` and `expf`. Here `erf` and `exp` are polynomials evaluated on every element without
//! branches (each selects between its pieces), so a loop over a slice runs several elements
//! per instruction.
//!
//! ```text
//! erf(x), |x| < 1:        x + x R(x^2)                R: degree 6, fitted to erf(x)/x - 1
//! erf(x), 1 <= |x| < 4:   1 - e^(-x^2) B(1/x) / x     B: degree 8 in 1/x, fitted to
//!                                                        x e^(x^2) erfc(x) on [1, 4]
//! erf(x), |x| >= 4:       1 (erfc(4) = 1.5e-8 is below half an f32 ulp of 1)
//! exp(v):                 2^n p(r),  n = round(v / ln 2),  r = v - n ln 2 (two-part ln 2),
//!                         p the degree-7 Taylor polynomial; 0 below v = -87
//! ```
//!
//! The error of `erf` is at most about 2 f32 ulps (1.3e-7 absolute, against 3e-8 for libm's),
//! and that of `exp` about 1.5 ulps, so GELU is as accurate as with libm: in both, the f32
//! rounding of `1 + erf(x / sqrt 2)` dominates for negative `x`. NaN propagates through `x`;
//! infinities give what the libm formula gives. `f64` keeps the libm kernels.

use std::any::TypeId;

/// Coefficients of `R(t)`, highest degree first: `erf(x) = x + x R(x^2)` for `|x| < 1`.
const ERF_SMALL: [f32; 7] = [
    7.847_276e-5,
    -8.008_209_4e-4,
    5.188_103_3e-3,
    -2.685_369_6e-2,
    1.128_358_2e-1,
    -3.761_262_6e-1,
    1.283_791e-1,
];

/// Coefficients of `B(w)`, highest degree first: `erfc(x) = e^(-x^2) B(1/x) / x` on `[1, 4]`.
const ERFC_LARGE: [f32; 9] = [
    5.675_281e-2,
    -3.235_694_5e-1,
    7.831_347_6e-1,
    -1.007_167,
    6.394_687e-1,
    8.667_246e-3,
    -2.965_506e-1,
    2.849_45e-3,
    5.639_977_5e-1,
];

/// `c[0] v^(n-1) + ... + c[n-1]` by Horner's rule.
#[inline(always)]
fn horner<const N: usize>(c: &[f32; N], v: f32) -> f32 {
    let mut r = c[0];
    for &k in &c[1..] {
        r = r * v + k;
    }
    r
}

/// `e^v` for `v <= 0` (larger `v` also works up to about 88), without branches.
#[inline(always)]
fn exp_nonpositive(v: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts: the first has few bits, so n * LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let clamped = if v < -87.0 { -87.0 } else { v };
    let shifted = clamped * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for k in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + k;
    }
    // `shifted`'s low mantissa bits hold n (two's complement): integer ops, unlike a float to
    // int conversion, vectorise.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    if v < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// The Gauss error function, without branches.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let a = if a < 4.0 { a } else { 4.0 };
    let t = a * a;
    let small = a + a * horner(&ERF_SMALL, t);
    let w = 1.0 / if a < 1.0 { 1.0 } else { a };
    let large = 1.0 - exp_nonpositive(-t) * (horner(&ERFC_LARGE, w) * w);
    let magnitude = if a < 1.0 { small } else { large };
    magnitude.copysign(x)
}

/// Reads a slice of `T` as `f32` if `T` is `f32`.
pub(crate) fn as_f32<T: 'static>(xs: &[T]) -> Option<&[f32]> {
    // SAFETY: the type ids are equal, so `T` is `f32` and the slice is one of `f32`.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<f32>(), xs.len()) })
}

/// Reads a mutable slice of `T` as `f32` if `T` is `f32`.
pub(crate) fn as_f32_mut<T: 'static>(xs: &mut [T]) -> Option<&mut [f32]> {
    let len = xs.len();
    // SAFETY: as in `as_f32`; the borrow of `xs` moves into the result.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(xs.as_mut_ptr().cast::<f32>(), len) })
}

/// Defines `$name(a, b, out)` running the element loop `$body` with the widest vector
/// instructions the CPU has: the same code compiled for AVX-512, AVX2 or the baseline, chosen
/// at run time. No path fuses multiply-adds, so all give the same bits.
macro_rules! dispatched {
    ($(#[$doc:meta])* $name:ident, $body:ident) => {
        $(#[$doc])*
        pub(crate) fn $name(a: &[f32], b: &[f32], out: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512(a: &[f32], b: &[f32], out: &mut [f32]) {
                    $body(a, b, out)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2(a: &[f32], b: &[f32], out: &mut [f32]) {
                    $body(a, b, out)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F, checked just above.
                    return unsafe { avx512(a, b, out) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { avx2(a, b, out) };
                }
            }
            $body(a, b, out)
        }
    };
}

#[inline(always)]
fn gelu_loop(xs: &[f32], _unused: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(xs) {
        *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn gelu_backward_loop(xs: &[f32], dys: &[f32], out: &mut [f32]) {
    // 1 / sqrt(2 pi)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for ((o, &x), &dy) in out.iter_mut().zip(xs).zip(dys) {
        let cdf = (erf(x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5;
        let pdf = exp_nonpositive(x * x * -0.5) * INV_SQRT_2PI;
        *o = dy * (cdf + x * pdf);
    }
}

dispatched!(
    /// `x Phi(x) = x/2 (1 + erf(x / sqrt 2))` of each element of `a` into `out`; `b` is not
    /// read.
    gelu_unary,
    gelu_loop
);

dispatched!(
    /// `dy (Phi(x) + x phi(x))` of each `x` of `a` and `dy` of `b`, into `out`.
    gelu_backward,
    gelu_backward_loop
);

/// `e^v` for any `v`: [`exp_nonpositive`] up to 87, and above it `(e^(v/2))^2`, whose halving
/// is exact and whose square overflows to infinity where `e^v` does (about 88.72).
#[inline(always)]
fn exp_any(v: f32) -> f32 {
    let big = v > 87.0;
    let half = v * 0.5;
    let arg = if big {
        if half > 44.5 {
            44.5
        } else {
            half
        }
    } else {
        v
    };
    let e = exp_nonpositive(arg);
    if big {
        e * e
    } else {
        e
    }
}

#[inline(always)]
fn exp_shifted_loop(xs: &mut [f32], shift: f32) {
    for x in xs.iter_mut() {
        *x = exp_any(*x - shift);
    }
}

/// `x <- e^(x - shift)` for each element, with the widest vector instructions the CPU has.
pub(crate) fn exp_shifted(xs: &mut [f32], shift: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(xs: &mut [f32], shift: f32) {
            exp_shifted_loop(xs, shift)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(xs: &mut [f32], shift: f32) {
            exp_shifted_loop(xs, shift)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { avx512(xs, shift) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2(xs, shift) };
        }
    }
    exp_shifted_loop(xs, shift)
}

/// `x Phi(x) = x/2 (1 + erf(x / sqrt 2))`, elementwise into `out`.
pub(crate) fn gelu(xs: &[f32], out: &mut [f32]) {
    gelu_unary(xs, xs, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count + 1` evenly spaced values from `-limit` to `limit`.
    fn grid(limit: f32, count: usize) -> Vec<f32> {
        (0..=count)
            .map(|i| -limit + 2.0 * limit * i as f32 / count as f32)
            .collect()
    }

    #[test]
    fn erf_is_within_two_ulps_of_one_of_libm_in_f64() {
        for x in grid(6.0, 240_001) {
            let exact = libm::erf(f64::from(x));
            let got = f64::from(erf(x));

            assert!(
                (got - exact).abs() <= 1.5e-7,
                "erf({x}) = {got}, not {exact}"
            );
        }
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn small_erf_has_a_small_relative_error() {
        for x in [1e-30f32, 1e-10, 1e-5, -3e-3, 0.1] {
            let exact = libm::erf(f64::from(x));

            assert!(
                ((f64::from(erf(x)) - exact) / exact).abs() < 3e-7,
                "erf({x})"
            );
        }
    }

    #[test]
    fn exp_has_a_small_relative_error_and_flushes_below_minus_87() {
        for v in grid(87.0, 100_000).into_iter().filter(|&v| v <= 0.0) {
            let exact = f64::from(v).exp();
            let got = f64::from(exp_nonpositive(v));

            assert!(
                ((got - exact) / exact).abs() < 2e-7,
                "exp({v}) = {got}, not {exact}"
            );
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn shifted_exp_matches_libm_over_the_whole_f32_range() {
        let mut xs = grid(100.0, 200_001);
        xs.extend([f32::NEG_INFINITY, f32::INFINITY, 88.7, 88.73, -87.5]);
        let mut got = xs.clone();
        exp_shifted(&mut got, 0.0);
        for (&x, &e) in xs.iter().zip(&got) {
            let exact = f64::from(x).exp();
            if exact > f64::from(f32::MAX) {
                assert_eq!(e, f32::INFINITY, "exp({x})");
            } else if exact < 1.7e-38 {
                // Flushed to zero below e^-87 = 1.65e-38, the smallest normal f32's order.
                assert!(f64::from(e) < 1.7e-38, "exp({x}) = {e}");
            } else {
                // Above 87 the square doubles the error.
                let tolerance = if x > 87.0 { 4e-7 } else { 2e-7 };
                assert!(
                    ((f64::from(e) - exact) / exact).abs() < tolerance,
                    "exp({x}) = {e}, not {exact}"
                );
            }
        }
        let mut nan = [f32::NAN, 1.0];
        exp_shifted(&mut nan, 1.0);
        assert!(nan[0].is_nan());
        assert_eq!(nan[1], 1.0);
    }

    #[test]
    fn gelu_and_its_gradient_match_the_libm_formulas() {
        let xs = grid(8.0, 20_000);
        let dys: Vec<f32> = xs.iter().map(|x| 1.0 + 0.1 * x).collect();
        let mut y = vec![0.0; xs.len()];
        let mut dx = vec![0.0; xs.len()];

        gelu(&xs, &mut y);
        gelu_backward(&xs, &dys, &mut dx);

        for ((&x, &dy), (&y, &dx)) in xs.iter().zip(&dys).zip(y.iter().zip(&dx)) {
            let x64 = f64::from(x);
            let cdf = 0.5 * (1.0 + libm::erf(x64 * std::f64::consts::FRAC_1_SQRT_2));
            let pdf = (-0.5 * x64 * x64).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let (want_y, want_dx) = (x64 * cdf, f64::from(dy) * (cdf + x64 * pdf));
            // Absolute error from f32's rounding of 1 + erf near -1, relative elsewhere.
            assert!(
                (f64::from(y) - want_y).abs() <= 1e-6 * want_y.abs() + 2e-7,
                "gelu({x})"
            );
            assert!(
                (f64::from(dx) - want_dx).abs() <= 1e-6 * want_dx.abs() + 2e-7,
                "gelu'({x}) = {dx}, not {want_dx}"
            );
        }
    }

    #[test]
    fn gelu_propagates_nan_and_matches_libm_at_infinities() {
        let xs = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        let mut y = [0.0; 3];
        let mut dx = [0.0; 3];

        gelu(&xs, &mut y);
        gelu_backward(&xs, &[1.0; 3], &mut dx);

        // As with libm: gelu(-inf) = -inf * 0, and the gradient's x phi(x) is inf * 0.
        assert!(y[0].is_nan() && dx[0].is_nan());
        assert_eq!(y[1], f32::INFINITY);
        assert!(dx[1].is_nan());
        assert!(y[2].is_nan() && dx[2].is_nan());
    }
}
