//! Convolution layers, `Conv1d` and `Conv2d`, as PyTorch's `nn.Conv1d` and `nn.Conv2d`.
//!
//! Both own a weight `(out_channels, in_channels / groups, kernel...)` and an optional bias
//! `(out_channels)`, drawn as PyTorch draws them (`kaiming_uniform_(a = sqrt(5))`, which is
//! `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`), and run autograd's `conv1d` / `conv2d`. Padding may
//! be a number per spatial dim, or `"valid"` (none) or `"same"` (output as large as the
//! input, stride 1 only); `"same"` with an even dilated kernel pads one more zero after than
//! before, as PyTorch does. The padding holds zeros, or reflected, replicated or wrapped
//! input values ([`PaddingMode`]).

use strata_autograd::Var;
use strata_tensor::{Conv1dParams, Conv2dParams, Element, Generator};

use crate::error::{NnError, Result};
use crate::module::{prefixed, Forward, Module};

/// The padding of a convolution: PyTorch's `padding=` argument.
///
/// `P` is `[usize; 2]` (`[height, width]`) for [`Conv2d`] and `usize` for [`Conv1d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding<P> {
    /// This many zeros before and after each spatial dim (PyTorch's `padding=1` or `(1, 2)`).
    Explicit(P),
    /// No padding, PyTorch's `padding="valid"`.
    Valid,
    /// Enough zeros that the output has the input's size, PyTorch's `padding="same"`: in
    /// total `dilation * (kernel - 1)` per dim, half before and the rest after. Only with
    /// stride 1.
    Same,
}

/// What fills the padding of a convolution: PyTorch's `padding_mode=` argument.
///
/// For the non-zero modes the input is padded explicitly before an unpadded convolution, as
/// PyTorch does; along a dim of size `L`, `reflect` needs padding below `L` and `circular`
/// at most `L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PaddingMode {
    /// Zeros, PyTorch's default `"zeros"`.
    #[default]
    Zeros,
    /// The input mirrored about its edge, the edge not repeated (`"reflect"`: `c b | a b c`).
    Reflect,
    /// The edge value repeated (`"replicate"`: `a a | a b c`).
    Replicate,
    /// The input wrapped around (`"circular"`: `b c | a b c`).
    Circular,
}

/// Options of [`Conv2d`]: PyTorch's keyword arguments of `nn.Conv2d`, pairs ordered
/// `[height, width]`.
///
/// `Default` gives PyTorch's defaults: stride 1, no padding, dilation 1, one group, a bias,
/// zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Step between neighbouring windows. Default `[1, 1]`; must be positive.
    pub stride: [usize; 2],
    /// Zero padding of the input. Default `Padding::Explicit([0, 0])`.
    pub padding: Padding<[usize; 2]>,
    /// Spacing between kernel taps. Default `[1, 1]`; must be positive.
    pub dilation: [usize; 2],
    /// Number of channel blocks; must divide both channel counts. Default `1`.
    pub groups: usize,
    /// Whether the layer adds a learned bias. Default `true`.
    pub bias: bool,
    /// What fills the padding. Default [`PaddingMode::Zeros`].
    pub padding_mode: PaddingMode,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: Padding::Explicit([0, 0]),
            dilation: [1, 1],
            groups: 1,
            bias: true,
            padding_mode: PaddingMode::Zeros,
        }
    }
}

/// Options of [`Conv1d`]: PyTorch's keyword arguments of `nn.Conv1d`.
///
/// `Default` gives PyTorch's defaults: stride 1, no padding, dilation 1, one group, a bias,
/// zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dConfig {
    /// Step between neighbouring windows. Default `1`; must be positive.
    pub stride: usize,
    /// Zero padding of the input. Default `Padding::Explicit(0)`.
    pub padding: Padding<usize>,
    /// Spacing between kernel taps. Default `1`; must be positive.
    pub dilation: usize,
    /// Number of channel blocks; must divide both channel counts. Default `1`.
    pub groups: usize,
    /// Whether the layer adds a learned bias. Default `true`.
    pub bias: bool,
    /// What fills the padding. Default [`PaddingMode::Zeros`].
    pub padding_mode: PaddingMode,
}

impl Default for Conv1dConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: Padding::Explicit(0),
            dilation: 1,
            groups: 1,
            bias: true,
            padding_mode: PaddingMode::Zeros,
        }
    }
}

/// The values of a per-dim option, one per spatial dim: `usize` for 1-D layers,
/// `[usize; 2]` (`[height, width]`) for 2-D ones.
trait SpatialDims: Copy {
    fn to_dims(self) -> Vec<usize>;
}

impl SpatialDims for usize {
    fn to_dims(self) -> Vec<usize> {
        vec![self]
    }
}

impl<const N: usize> SpatialDims for [usize; N] {
    fn to_dims(self) -> Vec<usize> {
        self.to_vec()
    }
}

/// The padding of a convolution resolved at construction: per spatial dim the amounts
/// before and after, and what fills them. Symmetric zero padding goes to the kernel; the
/// rest (an asymmetric "same" padding, or a mode other than zeros) is padded explicitly
/// before the convolution.
#[derive(Debug, Clone, PartialEq)]
struct InputPadding {
    pads: Vec<(usize, usize)>,
    mode: PaddingMode,
}

impl InputPadding {
    /// Resolves `padding` for a kernel of `kernel` taps per spatial dim.
    ///
    /// # Errors
    /// `NnError::Config` for `Padding::Same` with a stride other than 1.
    fn new<P: SpatialDims>(
        layer: &'static str,
        padding: Padding<P>,
        mode: PaddingMode,
        kernel: &[usize],
        stride: &[usize],
        dilation: &[usize],
    ) -> Result<Self> {
        let explicit: Vec<Option<usize>> = match padding {
            Padding::Explicit(p) => p.to_dims().into_iter().map(Some).collect(),
            Padding::Valid => vec![Some(0); kernel.len()],
            Padding::Same => vec![None; kernel.len()],
        };
        let mut pads = Vec::with_capacity(kernel.len());
        for d in 0..kernel.len() {
            match explicit[d] {
                Some(p) => pads.push((p, p)),
                None => {
                    if stride[d] != 1 {
                        return Err(NnError::Config {
                            layer,
                            reason: format!(
                                "padding=\"same\" is not supported for strided convolutions, \
                                 got stride {stride:?}"
                            ),
                        });
                    }
                    let total = dilation[d] * (kernel[d] - 1);
                    pads.push((total / 2, total - total / 2));
                }
            }
        }
        Ok(Self { pads, mode })
    }

    /// Pads the trailing spatial dims of `xs` explicitly where the kernel cannot, and returns
    /// the (possibly padded) input with the symmetric zero padding left for the kernel.
    ///
    /// # Errors
    /// `NnError::Input` for a reflect (circular) padding not below (above) the size of a dim.
    fn apply<T: Element>(&self, layer: &'static str, xs: &Var<T>) -> Result<(Var<T>, Vec<usize>)> {
        let pads = &self.pads;
        if self.mode != PaddingMode::Zeros {
            let mut padded = xs.clone();
            let first = xs.ndim() - pads.len();
            for (i, &(before, after)) in pads.iter().enumerate() {
                padded = pad_dim(layer, &padded, first + i, before, after, self.mode)?;
            }
            return Ok((padded, vec![0; pads.len()]));
        }
        if pads.iter().all(|&(before, after)| before == after) {
            return Ok((xs.clone(), pads.iter().map(|&(before, _)| before).collect()));
        }
        let extra: Vec<(usize, usize)> = pads.iter().map(|&(b, a)| (0, a - b)).collect();
        let padded = xs.pad(&extra, T::zero())?;
        Ok((padded, pads.iter().map(|&(before, _)| before).collect()))
    }
}

/// Checks the shared config values and draws the weight and bias.
#[allow(clippy::too_many_arguments)]
fn init_conv<T: Element>(
    layer: &'static str,
    in_channels: usize,
    out_channels: usize,
    kernel: &[usize],
    stride: &[usize],
    dilation: &[usize],
    groups: usize,
    bias: bool,
    generator: &mut Generator,
) -> Result<(Var<T>, Option<Var<T>>)> {
    let config_err = |reason: String| NnError::Config { layer, reason };
    if in_channels == 0 || out_channels == 0 {
        return Err(config_err(format!(
            "channel counts must be positive, got in_channels {in_channels}, \
             out_channels {out_channels}"
        )));
    }
    if groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
        return Err(config_err(format!(
            "groups {groups} must be positive and divide in_channels {in_channels} and \
             out_channels {out_channels}"
        )));
    }
    if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
        return Err(config_err(format!(
            "kernel_size {kernel:?}, stride {stride:?} and dilation {dilation:?} must be positive"
        )));
    }
    let fan_in = in_channels / groups * kernel.iter().product::<usize>();
    let bound = T::from_f64(1.0 / (fan_in as f64).sqrt());
    let mut shape = vec![out_channels, in_channels / groups];
    shape.extend_from_slice(kernel);
    let weight = Var::parameter(generator.uniform(&shape, -bound, bound));
    let bias = bias.then(|| Var::parameter(generator.uniform(&[out_channels], -bound, bound)));
    Ok((weight, bias))
}

/// Checks rank and channel count of a convolution input.
fn check_input(
    layer: &'static str,
    shape: &[usize],
    spatial: usize,
    in_channels: usize,
) -> Result<()> {
    let rank = shape.len();
    if rank != spatial + 1 && rank != spatial + 2 {
        return Err(NnError::Input {
            layer,
            reason: format!(
                "expected a {}-D (unbatched) or {}-D (batched) input, got shape {shape:?}",
                spatial + 1,
                spatial + 2
            ),
        });
    }
    let channels = shape[rank - spatial - 1];
    if channels != in_channels {
        return Err(NnError::Input {
            layer,
            reason: format!(
                "expected {in_channels} input channels, got {channels} in shape {shape:?}"
            ),
        });
    }
    Ok(())
}

/// Pads dim `dim` of `xs` by reflecting, replicating or wrapping its values.
fn pad_dim<T: Element>(
    layer: &'static str,
    xs: &Var<T>,
    dim: usize,
    before: usize,
    after: usize,
    mode: PaddingMode,
) -> Result<Var<T>> {
    if before == 0 && after == 0 {
        return Ok(xs.clone());
    }
    let len = xs.shape()[dim];
    let too_large = match mode {
        PaddingMode::Reflect => before >= len || after >= len,
        PaddingMode::Circular => before > len || after > len,
        PaddingMode::Replicate | PaddingMode::Zeros => false,
    };
    if too_large {
        return Err(NnError::Input {
            layer,
            reason: format!(
                "{mode:?} padding ({before}, {after}) is too large for dim {dim} of size {len} \
                 in input shape {:?}",
                xs.shape()
            ),
        });
    }
    let d = dim as isize;
    let at = |i: usize| xs.narrow(d, i, 1);
    let mut pieces: Vec<Var<T>> = Vec::with_capacity(before + after + 1);
    match mode {
        PaddingMode::Reflect => {
            for i in (1..=before).rev() {
                pieces.push(at(i)?);
            }
            pieces.push(xs.clone());
            for i in 0..after {
                pieces.push(at(len - 2 - i)?);
            }
        }
        PaddingMode::Replicate => {
            let mut repeats = vec![1; xs.ndim()];
            if before > 0 {
                repeats[dim] = before;
                pieces.push(at(0)?.repeat(&repeats)?);
            }
            pieces.push(xs.clone());
            if after > 0 {
                repeats[dim] = after;
                pieces.push(at(len - 1)?.repeat(&repeats)?);
            }
        }
        PaddingMode::Circular => {
            if before > 0 {
                pieces.push(xs.narrow(d, len - before, before)?);
            }
            pieces.push(xs.clone());
            if after > 0 {
                pieces.push(xs.narrow(d, 0, after)?);
            }
        }
        PaddingMode::Zeros => return Ok(xs.pad(&[(before, after)], T::zero())?),
    }
    Ok(Var::concat(&pieces.iter().collect::<Vec<_>>(), d)?)
}

/// Adds `bias` `(C_out)` over the channel dim of `ys`, whose last `spatial` dims are spatial.
fn add_bias<T: Element>(ys: Var<T>, bias: Option<&Var<T>>, spatial: usize) -> Result<Var<T>> {
    match bias {
        None => Ok(ys),
        Some(b) => {
            let mut shape = vec![b.numel()];
            shape.extend(std::iter::repeat_n(1, spatial));
            Ok(ys.add(&b.reshape(&shape)?)?)
        }
    }
}

/// A 2-D convolution layer, PyTorch's `nn.Conv2d`.
///
/// ```text
/// y[n, o] = bias[o] + sum_{c in group(o)} cross_correlate(w[o, c], x[n, c])
/// H_out = floor((H + pad_h - dilation_h (kH - 1) - 1) / stride_h) + 1, likewise W_out
///   pad_h = the zeros added before and after (2 p_h for explicit padding p_h)
/// init: w, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),  fan_in = C_in / groups * kH * kW
/// ```
///
/// # Shapes
/// - input: `(N, C_in, H, W)` or unbatched `(C_in, H, W)`
/// - weight: `(C_out, C_in / groups, kH, kW)`; bias: `(C_out)`
/// - output: `(N, C_out, H_out, W_out)` or `(C_out, H_out, W_out)`
///
/// ```
/// use strata_autograd::Var;
/// use strata_nn_layers::{Conv2d, Conv2dConfig, Forward, Padding};
/// use strata_tensor::{Generator, Tensor};
///
/// let mut gen = Generator::new(0);
/// let config = Conv2dConfig { padding: Padding::Same, ..Default::default() };
/// let conv = Conv2d::<f32>::new(3, 8, [3, 3], config, &mut gen)?;
/// let ys = conv.forward(&Var::new(Tensor::ones(&[2, 3, 5, 5])))?;
/// assert_eq!(ys.shape(), &[2, 8, 5, 5]);
/// # Ok::<(), strata_nn_layers::NnError>(())
/// ```
#[derive(Debug)]
pub struct Conv2d<T: Element> {
    weight: Var<T>,
    bias: Option<Var<T>>,
    in_channels: usize,
    kernel_size: [usize; 2],
    config: Conv2dConfig,
    padding: InputPadding,
}

impl<T: Element> Conv2d<T> {
    /// A convolution from `in_channels` to `out_channels` with a `[kH, kW]` kernel, its
    /// weight and bias drawn from `generator` as PyTorch initialises them.
    ///
    /// # Errors
    /// `NnError::Config` for a zero channel count, kernel size, stride or dilation, groups
    /// that do not divide both channel counts, or `Padding::Same` with a stride other than 1.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        config: Conv2dConfig,
        generator: &mut Generator,
    ) -> Result<Self> {
        let layer = "Conv2d";
        let (weight, bias) = init_conv(
            layer,
            in_channels,
            out_channels,
            &kernel_size,
            &config.stride,
            &config.dilation,
            config.groups,
            config.bias,
            generator,
        )?;
        let padding = InputPadding::new(
            layer,
            config.padding,
            config.padding_mode,
            &kernel_size,
            &config.stride,
            &config.dilation,
        )?;
        Ok(Self {
            weight,
            bias,
            in_channels,
            kernel_size,
            config,
            padding,
        })
    }

    /// The weight, `(C_out, C_in / groups, kH, kW)`.
    pub fn weight(&self) -> &Var<T> {
        &self.weight
    }

    /// The bias, `(C_out)`, if the layer has one.
    pub fn bias(&self) -> Option<&Var<T>> {
        self.bias.as_ref()
    }

    /// The kernel size `[kH, kW]`.
    pub fn kernel_size(&self) -> [usize; 2] {
        self.kernel_size
    }

    /// The options the layer was built with.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }
}

impl<T: Element> Module<T> for Conv2d<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        f(&prefixed(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&prefixed(prefix, "bias"), b);
        }
    }
}

impl<T: Element> Forward<T> for Conv2d<T> {
    /// Convolves `xs`, `(N, C_in, H, W)` or `(C_in, H, W)`.
    ///
    /// # Errors
    /// `NnError::Input` for a wrong rank or channel count, or a reflect (circular) padding
    /// not below (above) the input size; an autograd error if the dilated kernel exceeds the
    /// padded input.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        check_input("Conv2d", xs.shape(), 2, self.in_channels)?;
        let (xs, padding) = self.padding.apply("Conv2d", xs)?;
        let params = Conv2dParams {
            stride: self.config.stride,
            padding: [padding[0], padding[1]],
            dilation: self.config.dilation,
            groups: self.config.groups,
        };
        let ys = xs.conv2d(&self.weight, &params)?;
        add_bias(ys, self.bias.as_ref(), 2)
    }
}

/// A 1-D convolution layer, PyTorch's `nn.Conv1d`.
///
/// ```text
/// y[n, o] = bias[o] + sum_{c in group(o)} cross_correlate(w[o, c], x[n, c])
/// L_out = floor((L + pad - dilation (k - 1) - 1) / stride) + 1
/// init: w, bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),  fan_in = C_in / groups * k
/// ```
///
/// # Shapes
/// - input: `(N, C_in, L)` or unbatched `(C_in, L)`
/// - weight: `(C_out, C_in / groups, k)`; bias: `(C_out)`
/// - output: `(N, C_out, L_out)` or `(C_out, L_out)`
#[derive(Debug)]
pub struct Conv1d<T: Element> {
    weight: Var<T>,
    bias: Option<Var<T>>,
    in_channels: usize,
    kernel_size: usize,
    config: Conv1dConfig,
    padding: InputPadding,
}

impl<T: Element> Conv1d<T> {
    /// A convolution from `in_channels` to `out_channels` with a kernel of `kernel_size`
    /// taps, its weight and bias drawn from `generator` as PyTorch initialises them.
    ///
    /// # Errors
    /// As [`Conv2d::new`].
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        config: Conv1dConfig,
        generator: &mut Generator,
    ) -> Result<Self> {
        let layer = "Conv1d";
        let (weight, bias) = init_conv(
            layer,
            in_channels,
            out_channels,
            &[kernel_size],
            &[config.stride],
            &[config.dilation],
            config.groups,
            config.bias,
            generator,
        )?;
        let padding = InputPadding::new(
            layer,
            config.padding,
            config.padding_mode,
            &[kernel_size],
            &[config.stride],
            &[config.dilation],
        )?;
        Ok(Self {
            weight,
            bias,
            in_channels,
            kernel_size,
            config,
            padding,
        })
    }

    /// The weight, `(C_out, C_in / groups, k)`.
    pub fn weight(&self) -> &Var<T> {
        &self.weight
    }

    /// The bias, `(C_out)`, if the layer has one.
    pub fn bias(&self) -> Option<&Var<T>> {
        self.bias.as_ref()
    }

    /// The number of kernel taps.
    pub fn kernel_size(&self) -> usize {
        self.kernel_size
    }

    /// The options the layer was built with.
    pub fn config(&self) -> &Conv1dConfig {
        &self.config
    }
}

impl<T: Element> Module<T> for Conv1d<T> {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        f(&prefixed(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&prefixed(prefix, "bias"), b);
        }
    }
}

impl<T: Element> Forward<T> for Conv1d<T> {
    /// Convolves `xs`, `(N, C_in, L)` or `(C_in, L)`.
    ///
    /// # Errors
    /// As [`Conv2d`]'s forward.
    fn forward(&self, xs: &Var<T>) -> Result<Var<T>> {
        check_input("Conv1d", xs.shape(), 1, self.in_channels)?;
        let (xs, padding) = self.padding.apply("Conv1d", xs)?;
        let params = Conv1dParams {
            stride: self.config.stride,
            padding: padding[0],
            dilation: self.config.dilation,
            groups: self.config.groups,
        };
        let ys = xs.conv1d(&self.weight, &params)?;
        add_bias(ys, self.bias.as_ref(), 1)
    }
}

#[cfg(test)]
mod tests {
    use strata_tensor::Tensor;

    use super::*;

    fn gen() -> Generator {
        Generator::new(7)
    }

    #[test]
    fn weight_shape_and_init_bound_follow_pytorch() {
        let conv = Conv2d::<f64>::new(
            4,
            6,
            [3, 2],
            Conv2dConfig {
                groups: 2,
                ..Default::default()
            },
            &mut gen(),
        )
        .unwrap();

        assert_eq!(conv.weight().shape(), &[6, 2, 3, 2]);
        let bound = 1.0 / 12f64.sqrt();
        let w = conv.weight().value().to_vec();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > bound / 2.0));
        let names: Vec<String> = conv.named_parameters().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["weight", "bias"]);
    }

    #[test]
    fn same_padding_keeps_size_with_even_kernel() {
        let config = Conv2dConfig {
            padding: Padding::Same,
            dilation: [1, 2],
            ..Default::default()
        };
        let conv = Conv2d::<f64>::new(2, 3, [4, 2], config, &mut gen()).unwrap();

        let ys = conv
            .forward(&Var::new(Tensor::ones(&[1, 2, 5, 6])))
            .unwrap();

        assert_eq!(ys.shape(), &[1, 3, 5, 6]);
    }

    #[test]
    fn same_padding_with_stride_is_a_config_error() {
        let config = Conv1dConfig {
            padding: Padding::Same,
            stride: 2,
            ..Default::default()
        };
        let err = Conv1d::<f32>::new(2, 3, 3, config, &mut gen()).unwrap_err();

        assert!(err.to_string().contains("strided"), "{err}");
    }

    #[test]
    fn unbatched_input_gives_unbatched_output() {
        let conv = Conv1d::<f64>::new(2, 3, 3, Conv1dConfig::default(), &mut gen()).unwrap();
        let xs = Var::new(Generator::new(3).randn(&[2, 2, 7]));

        let batched = conv.forward(&xs).unwrap();
        let single = conv.forward(&xs.narrow(0, 1, 1).unwrap().squeeze_dim(0).unwrap());

        let single = single.unwrap();
        assert_eq!(single.shape(), &[3, 5]);
        let want = batched.narrow(0, 1, 1).unwrap().value().to_vec();
        assert_eq!(single.value().to_vec(), want);
    }

    #[test]
    fn wrong_channel_count_is_an_input_error() {
        let conv = Conv2d::<f32>::new(3, 4, [3, 3], Conv2dConfig::default(), &mut gen()).unwrap();

        let err = conv
            .forward(&Var::new(Tensor::ones(&[1, 2, 5, 5])))
            .unwrap_err();

        assert!(
            matches!(
                err,
                NnError::Input {
                    layer: "Conv2d",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn reflect_padding_as_large_as_the_input_is_an_input_error() {
        let config = Conv1dConfig {
            padding: Padding::Explicit(3),
            padding_mode: PaddingMode::Reflect,
            ..Default::default()
        };
        let conv = Conv1d::<f64>::new(1, 1, 3, config, &mut gen()).unwrap();

        let err = conv
            .forward(&Var::new(Tensor::ones(&[1, 1, 3])))
            .unwrap_err();
        let ok = conv.forward(&Var::new(Tensor::ones(&[1, 1, 4])));

        assert!(err.to_string().contains("too large"), "{err}");
        assert_eq!(ok.unwrap().shape(), &[1, 1, 8]);
    }

    #[test]
    fn zero_groups_is_a_config_error() {
        let config = Conv2dConfig {
            groups: 0,
            ..Default::default()
        };

        assert!(Conv2d::<f32>::new(3, 4, [3, 3], config, &mut gen()).is_err());
    }
}
