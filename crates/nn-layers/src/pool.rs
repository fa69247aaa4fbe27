//! Pooling layers over `(N, C, H, W)` batches: `MaxPool2d`, `AvgPool2d` and
//! `AdaptiveAvgPool2d`, as PyTorch's layers of the same names.
//!
//! They own no parameters, so one value serves any element type: each implements
//! [`Module<T>`] and [`Forward<T>`] for every `T`. The work is autograd's `max_pool2d`,
//! `avg_pool2d` and `adaptive_avg_pool2d`.

use strata_autograd::Var;
use strata_tensor::{AvgPool2dParams, Element, MaxPool2dParams, Tensor};

use crate::error::{NnError, Result};
use crate::module::{Forward, Module};

/// Options of [`MaxPool2d`]: PyTorch's keyword arguments of `nn.MaxPool2d`, pairs ordered
/// `[height, width]`.
///
/// `Default` gives PyTorch's defaults: stride equal to the kernel, no padding, dilation 1,
/// sizes rounded down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPool2dConfig {
    /// Step between windows. Default `None`: the kernel size, as in PyTorch.
    pub stride: Option<[usize; 2]>,
    /// Implicit `-inf` before and after each spatial dim; at most half the kernel. Default
    /// `[0, 0]`.
    pub padding: [usize; 2],
    /// Spacing between window taps. Default `[1, 1]`.
    pub dilation: [usize; 2],
    /// Round output sizes up instead of down, keeping a last window that starts inside the
    /// input or the leading padding. Default `false`.
    pub ceil_mode: bool,
}

impl Default for MaxPool2dConfig {
    fn default() -> Self {
        Self {
            stride: None,
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false,
        }
    }
}

/// Max pooling over sliding windows, PyTorch's `nn.MaxPool2d`.
///
/// ```text
/// y[n, c, i, j] = max_{a < kH, b < kW} x[n, c, s_h i + d_h a - p_h, s_w j + d_w b - p_w]
/// H_out = floor((H + 2 p_h - d_h (kH - 1) - 1) / s_h) + 1       (ceil with ceil_mode,
///   less one when the last window would start past H + p_h), likewise W_out
/// backward: each output gradient goes to the chosen (first maximal) input
/// ```
///
/// # Shapes
/// - input: `(N, C, H, W)` or `(C, H, W)`; output: `(N, C, H_out, W_out)` or
///   `(C, H_out, W_out)`
///
/// ```
/// use strata_autograd::Var;
/// use strata_nn_layers::{Forward, MaxPool2d, MaxPool2dConfig};
/// use strata_tensor::Tensor;
///
/// let config = MaxPool2dConfig { stride: Some([2, 2]), ceil_mode: true, ..Default::default() };
/// let pool = MaxPool2d::new([3, 3], config)?;
/// let ys = pool.forward(&Var::new(Tensor::<f32>::ones(&[1, 2, 6, 6])))?;
/// assert_eq!(ys.shape(), &[1, 2, 3, 3]);
/// # Ok::<(), strata_nn_layers::NnError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPool2d {
    kernel_size: [usize; 2],
    config: MaxPool2dConfig,
}

impl MaxPool2d {
    /// Max pooling with a `[kH, kW]` window.
    ///
    /// # Errors
    /// `NnError::Config` for a zero kernel size, stride or dilation, or padding over half the
    /// kernel.
    pub fn new(kernel_size: [usize; 2], config: MaxPool2dConfig) -> Result<Self> {
        let stride = config.stride.unwrap_or(kernel_size);
        if kernel_size.contains(&0) || stride.contains(&0) || config.dilation.contains(&0) {
            return Err(NnError::Config {
                layer: "MaxPool2d",
                reason: format!(
                    "kernel_size {kernel_size:?}, stride {stride:?} and dilation {:?} must be \
                     positive",
                    config.dilation
                ),
            });
        }
        if (0..2).any(|d| config.padding[d] > kernel_size[d] / 2) {
            return Err(NnError::Config {
                layer: "MaxPool2d",
                reason: format!(
                    "pad should be at most half of kernel size, got padding {:?} and \
                     kernel_size {kernel_size:?}",
                    config.padding
                ),
            });
        }
        Ok(Self {
            kernel_size,
            config,
        })
    }

    /// The window size `[kH, kW]`.
    pub fn kernel_size(&self) -> [usize; 2] {
        self.kernel_size
    }

    /// The options the layer was built with.
    pub fn config(&self) -> &MaxPool2dConfig {
        &self.config
    }

    /// How many extra `-inf` rows and columns after the input `ceil_mode` needs.
    fn ceil_extra(&self, shape: &[usize]) -> [usize; 2] {
        let stride = self.config.stride.unwrap_or(self.kernel_size);
        let rank = shape.len();
        [0, 1].map(|d| {
            let span = self.config.dilation[d] * (self.kernel_size[d] - 1) + 1;
            let padding = self.config.padding[d];
            ceil_extra(
                span,
                stride[d],
                padding,
                shape[rank - 2 + d],
                self.config.ceil_mode,
            )
        })
    }
}

impl<T: Element> Module<T> for MaxPool2d {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        let _ = (prefix, f);
    }
}

impl<T: Element> Forward<T> for MaxPool2d {
    /// Pools `xs`, `(N, C, H, W)` or `(C, H, W)`.
    ///
    /// # Errors
    /// `NnError::Input` for a rank other than 3 or 4; an autograd error if the window does
    /// not fit the padded input.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let extra = self.ceil_extra(check_rank("MaxPool2d", xs)?);
        let mut params = MaxPool2dParams {
            stride: Some(self.config.stride.unwrap_or(self.kernel_size)),
            padding: self.config.padding,
            dilation: self.config.dilation,
        };
        if extra == [0, 0] {
            return Ok(xs.max_pool2d(self.kernel_size, &params)?.0);
        }
        // ceil_mode: pad with -inf explicitly (never chosen as a maximum, since every kept
        // window reaches the input), then pool without implicit padding.
        let [ph, pw] = self.config.padding;
        let pads = [(ph, ph + extra[0]), (pw, pw + extra[1])];
        let padded = xs.pad(&pads, T::neg_infinity())?;
        params.padding = [0, 0];
        Ok(padded.max_pool2d(self.kernel_size, &params)?.0)
    }
}

/// Options of [`AvgPool2d`]: PyTorch's keyword arguments of `nn.AvgPool2d`, pairs ordered
/// `[height, width]`.
///
/// `Default` gives PyTorch's defaults: stride equal to the kernel, no padding, padding zeros
/// counted in the divisor, no divisor override.
///
/// `ceil_mode` follows PyTorch: windows that run past the padded input average over the part
/// inside it and its leading padding (all of it with `count_include_pad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AvgPool2dConfig {
    /// Step between windows. Default `None`: the kernel size, as in PyTorch.
    pub stride: Option<[usize; 2]>,
    /// Implicit zeros before and after each spatial dim; at most half the kernel. Default
    /// `[0, 0]`.
    pub padding: [usize; 2],
    /// Whether padding zeros count in the divisor. Default `true`.
    pub count_include_pad: bool,
    /// A divisor for every window instead of its size. Default `None`; must be positive.
    pub divisor_override: Option<usize>,
    /// Round output sizes up instead of down, keeping a last window that starts inside the
    /// input or the leading padding. Default `false`.
    pub ceil_mode: bool,
}

impl Default for AvgPool2dConfig {
    fn default() -> Self {
        Self {
            stride: None,
            padding: [0, 0],
            count_include_pad: true,
            divisor_override: None,
            ceil_mode: false,
        }
    }
}

/// Average pooling over sliding windows, PyTorch's `nn.AvgPool2d`.
///
/// ```text
/// y[n, c, i, j] = sum over the window of x / divisor
///   divisor = divisor_override, else kH * kW with count_include_pad, else the number of
///   window positions inside the input (with ceil_mode, a window cut by the end of the
///   padded input counts only its part up to H + p_h, W + p_w)
/// H_out = floor((H + 2 p_h - kH) / s_h) + 1       (ceil with ceil_mode, less one when the
///   last window would start past H + p_h), likewise W_out
/// ```
///
/// # Shapes
/// - input: `(N, C, H, W)` or `(C, H, W)`; output: `(N, C, H_out, W_out)` or
///   `(C, H_out, W_out)`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AvgPool2d {
    kernel_size: [usize; 2],
    config: AvgPool2dConfig,
}

impl AvgPool2d {
    /// Average pooling with a `[kH, kW]` window.
    ///
    /// # Errors
    /// `NnError::Config` for a zero kernel size, stride or divisor override, or padding over
    /// half the kernel.
    pub fn new(kernel_size: [usize; 2], config: AvgPool2dConfig) -> Result<Self> {
        let stride = config.stride.unwrap_or(kernel_size);
        if kernel_size.contains(&0) || stride.contains(&0) || config.divisor_override == Some(0) {
            return Err(NnError::Config {
                layer: "AvgPool2d",
                reason: format!(
                    "kernel_size {kernel_size:?}, stride {stride:?} and divisor_override {:?} \
                     must be positive",
                    config.divisor_override
                ),
            });
        }
        if (0..2).any(|d| config.padding[d] > kernel_size[d] / 2) {
            return Err(NnError::Config {
                layer: "AvgPool2d",
                reason: format!(
                    "pad should be at most half of kernel size, got padding {:?} and \
                     kernel_size {kernel_size:?}",
                    config.padding
                ),
            });
        }
        Ok(Self {
            kernel_size,
            config,
        })
    }

    /// The window size `[kH, kW]`.
    pub fn kernel_size(&self) -> [usize; 2] {
        self.kernel_size
    }

    /// The options the layer was built with.
    pub fn config(&self) -> &AvgPool2dConfig {
        &self.config
    }
}

impl<T: Element> Module<T> for AvgPool2d {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        let _ = (prefix, f);
    }
}

impl<T: Element> Forward<T> for AvgPool2d {
    /// Pools `xs`, `(N, C, H, W)` or `(C, H, W)`.
    ///
    /// # Errors
    /// `NnError::Input` for a rank other than 3 or 4; an autograd error if the window does
    /// not fit the padded input.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        let shape = check_rank("AvgPool2d", xs)?;
        let stride = self.config.stride.unwrap_or(self.kernel_size);
        let rank = shape.len();
        let (k, p) = (self.kernel_size, self.config.padding);
        let extra = [0, 1].map(|d| {
            ceil_extra(
                k[d],
                stride[d],
                p[d],
                shape[rank - 2 + d],
                self.config.ceil_mode,
            )
        });
        let mut params = AvgPool2dParams {
            stride: Some(stride),
            padding: p,
            count_include_pad: self.config.count_include_pad,
            divisor_override: self.config.divisor_override,
        };
        if extra == [0, 0] {
            return Ok(xs.avg_pool2d(k, &params)?);
        }
        // ceil_mode: sum over explicitly zero-padded windows, then divide by PyTorch's
        // divisor of each window, which the kernel cannot know once the padding is explicit.
        let (h, w) = (shape[rank - 2], shape[rank - 1]);
        let padded = xs.pad(
            &[(p[0], p[0] + extra[0]), (p[1], p[1] + extra[1])],
            T::zero(),
        )?;
        params.padding = [0, 0];
        params.divisor_override = Some(1);
        let sums = padded.avg_pool2d(k, &params)?;
        let out = [sums.shape()[rank - 2], sums.shape()[rank - 1]];
        let divisor = self.ceil_divisors::<T>(out, [h, w], stride)?;
        Ok(sums.div(&Var::new(divisor))?)
    }
}

impl AvgPool2d {
    /// PyTorch's divisor of each `(H_out, W_out)` window over an `[H, W]` input.
    fn ceil_divisors<T: Element>(
        &self,
        out: [usize; 2],
        input: [usize; 2],
        stride: [usize; 2],
    ) -> Result<Tensor<T>> {
        let (k, p) = (self.kernel_size, self.config.padding);
        // Per dim and output index: (window size up to the end of the trailing padding,
        // window size inside the input).
        let sizes = |d: usize| -> Vec<(usize, usize)> {
            (0..out[d])
                .map(|i| {
                    let start = i * stride[d];
                    let end = (start + k[d]).min(input[d] + 2 * p[d]);
                    let inside = end.min(input[d] + p[d]).saturating_sub(start.max(p[d]));
                    (end - start, inside)
                })
                .collect()
        };
        let (rows, cols) = (sizes(0), sizes(1));
        let mut data = Vec::with_capacity(out[0] * out[1]);
        for &(row_pad, row_in) in &rows {
            for &(col_pad, col_in) in &cols {
                let divisor = match (self.config.divisor_override, self.config.count_include_pad) {
                    (Some(d), _) => d,
                    (None, true) => row_pad.min(k[0]) * col_pad.min(k[1]),
                    (None, false) => row_in * col_in,
                };
                data.push(T::from_usize(divisor));
            }
        }
        Ok(Tensor::from_vec(data, &out)?)
    }
}

/// How many extra rows (or columns) after the input `ceil_mode` needs on one dim: `span` is
/// the dilated window, `len` the input size; `0` without `ceil_mode`.
fn ceil_extra(span: usize, stride: usize, padding: usize, len: usize, ceil_mode: bool) -> usize {
    let padded = len + 2 * padding;
    if !ceil_mode || span > padded {
        return 0;
    }
    let mut out = (padded - span).div_ceil(stride) + 1;
    if (out - 1) * stride >= len + padding {
        out -= 1;
    }
    ((out - 1) * stride + span).saturating_sub(padded)
}

/// Average pooling to a fixed output size, PyTorch's `nn.AdaptiveAvgPool2d`.
///
/// ```text
/// y[n, c, i, j] = mean of x[n, c, h0(i)..h1(i), w0(j)..w1(j)]
///   h0(i) = floor(i H / H_out),  h1(i) = ceil((i + 1) H / H_out), likewise w0, w1
/// ```
///
/// # Shapes
/// - input: `(N, C, H, W)` or `(C, H, W)`; output: `(N, C, H_out, W_out)` or
///   `(C, H_out, W_out)`
///
/// ```
/// use strata_autograd::Var;
/// use strata_nn_layers::{AdaptiveAvgPool2d, Forward};
/// use strata_tensor::Tensor;
///
/// let pool = AdaptiveAvgPool2d::new([1, 1])?;
/// let ys = pool.forward(&Var::new(Tensor::<f32>::full(&[4, 8, 5, 7], 2.0)))?;
/// assert_eq!(ys.shape(), &[4, 8, 1, 1]);
/// assert_eq!(ys.value().get(&[3, 7, 0, 0]), Some(2.0));
/// # Ok::<(), strata_nn_layers::NnError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdaptiveAvgPool2d {
    output_size: [usize; 2],
}

impl AdaptiveAvgPool2d {
    /// Pooling to `[H_out, W_out]`.
    ///
    /// # Errors
    /// `NnError::Config` if an output size is zero.
    pub fn new(output_size: [usize; 2]) -> Result<Self> {
        if output_size.contains(&0) {
            return Err(NnError::Config {
                layer: "AdaptiveAvgPool2d",
                reason: format!("output_size {output_size:?} must be positive"),
            });
        }
        Ok(Self { output_size })
    }

    /// The output size `[H_out, W_out]`.
    pub fn output_size(&self) -> [usize; 2] {
        self.output_size
    }
}

impl<T: Element> Module<T> for AdaptiveAvgPool2d {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        let _ = (prefix, f);
    }
}

impl<T: Element> Forward<T> for AdaptiveAvgPool2d {
    /// Pools `xs`, `(N, C, H, W)` or `(C, H, W)`.
    ///
    /// # Errors
    /// `NnError::Input` for a rank other than 3 or 4 or an empty spatial dim.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        check_rank("AdaptiveAvgPool2d", xs)?;
        Ok(xs.adaptive_avg_pool2d(self.output_size)?)
    }
}

/// The shape of `xs` if it is 3-D or 4-D.
fn check_rank<'a, T: Element>(layer: &'static str, xs: &'a Var<T>) -> Result<&'a [usize]> {
    let shape = xs.shape();
    if shape.len() != 3 && shape.len() != 4 {
        return Err(NnError::Input {
            layer,
            reason: format!("expected a 3-D or 4-D input, got shape {shape:?}"),
        });
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: &[usize]) -> Var<f64> {
        let n: usize = shape.iter().product();
        Var::new(Tensor::from_vec((0..n).map(|i| i as f64).collect(), shape).unwrap())
    }

    #[test]
    fn max_pool_stride_defaults_to_kernel() {
        let pool = MaxPool2d::new([2, 2], MaxPool2dConfig::default()).unwrap();

        let ys = Forward::<f64>::forward(&pool, &ramp(&[1, 4, 4])).unwrap();

        assert_eq!(ys.value().to_vec(), vec![5.0, 7.0, 13.0, 15.0]);
    }

    #[test]
    fn max_pool_ceil_mode_keeps_the_partial_window() {
        let config = MaxPool2dConfig {
            ceil_mode: true,
            ..Default::default()
        };
        let pool = MaxPool2d::new([2, 2], config).unwrap();

        let ys = Forward::<f64>::forward(&pool, &ramp(&[1, 1, 3, 3])).unwrap();

        assert_eq!(ys.shape(), &[1, 1, 2, 2]);
        assert_eq!(ys.value().to_vec(), vec![4.0, 5.0, 7.0, 8.0]);
    }

    #[test]
    fn ceil_mode_drops_a_window_starting_in_the_trailing_padding() {
        // H = 3, k = 2, s = 2, p = 1: rounding up gives 3 windows, but the third would start
        // at 4, past the input and its leading padding (H + p = 4), so PyTorch keeps 2.
        let config = MaxPool2dConfig {
            padding: [1, 1],
            ceil_mode: true,
            ..Default::default()
        };
        let pool = MaxPool2d::new([2, 2], config).unwrap();

        let ys = Forward::<f64>::forward(&pool, &ramp(&[1, 1, 3, 3])).unwrap();

        assert_eq!(ys.shape(), &[1, 1, 2, 2]);
    }

    #[test]
    fn padding_over_half_the_kernel_is_a_config_error() {
        let config = MaxPool2dConfig {
            padding: [2, 0],
            ..Default::default()
        };

        assert!(MaxPool2d::new([3, 3], config).is_err());
    }

    #[test]
    fn pools_reject_a_2d_input() {
        let pool = AdaptiveAvgPool2d::new([1, 1]).unwrap();

        let err = Forward::<f64>::forward(&pool, &ramp(&[4, 4])).unwrap_err();

        assert!(matches!(err, NnError::Input { .. }), "{err}");
    }

    #[test]
    fn avg_pool_excluding_padding_divides_by_the_inside_count() {
        let config = AvgPool2dConfig {
            stride: Some([1, 1]),
            padding: [1, 1],
            count_include_pad: false,
            ..Default::default()
        };
        let pool = AvgPool2d::new([3, 3], config).unwrap();

        let ys = Forward::<f64>::forward(&pool, &Var::new(Tensor::ones(&[1, 1, 3, 3]))).unwrap();

        assert!(ys.value().to_vec().iter().all(|&v| (v - 1.0).abs() < 1e-12));
    }
}
