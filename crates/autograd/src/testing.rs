//! Test support: proptest strategies that draw gradient-check cases, and the check itself.
//!
//! Enabled by the `testing` feature, so that crates above this one can check their own
//! composite ops the same way.

use proptest::prelude::*;
use strata_tensor::{
    AvgPool2dParams, Conv1dParams, Conv2dParams, Generator, IndexTensor, MaxPool2dParams, Tensor,
};

use crate::gradcheck::{gradcheck, gradgradcheck, GradcheckOptions};
use crate::var::Var;

/// One drawn gradient-check case: the inputs and the arguments an op may need.
#[derive(Debug, Clone)]
pub struct GradCase {
    /// The differentiable inputs, possibly non-contiguous views.
    pub inputs: Vec<Tensor<f64>>,
    /// A dim of the first input, for ops along one dim.
    pub dim: isize,
    /// A set of distinct dims of the first input, for reductions.
    pub dims: Vec<isize>,
    /// Indices valid for the first input along `dim`, for indexing ops.
    pub index: IndexTensor,
    /// A shape related to the first input (a broadcast target, a reshape target).
    pub shape: Vec<usize>,
    /// A mask shaped like the first input (1 = selected).
    pub mask: Tensor<f64>,
    /// Indices shaped like the first input, valid along `dim`, for `gather` and `scatter_add`.
    pub gather_index: IndexTensor,
    /// Convolution options, for `conv2d` cases.
    pub conv2d: Conv2dParams,
    /// Convolution options, for `conv1d` cases.
    pub conv1d: Conv1dParams,
    /// Pooling window, for pooling cases.
    pub kernel: [usize; 2],
    /// Max-pooling options.
    pub max_pool: MaxPool2dParams,
    /// Average-pooling options.
    pub avg_pool: AvgPool2dParams,
}

/// Where input values are drawn from, to keep away from points where an op has no
/// derivative or is undefined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Uniform in `[-2, 2]`.
    Any,
    /// Magnitude in `[0.2, 2]`, either sign: away from kinks at zero.
    AwayFromZero,
    /// Uniform in `[0.2, 2]`: logarithms, roots, powers.
    Positive,
}

/// How an input tensor is laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Row-major without gaps.
    Contiguous,
    /// A transposed view of the last two dims.
    Transposed,
    /// Every other row of a larger tensor along dim 0.
    Strided,
}

/// Draws a tensor of `shape` with values from `domain` and the given layout.
pub fn make_input(shape: &[usize], domain: Domain, layout: Layout, seed: u64) -> Tensor<f64> {
    let mut gen = Generator::new(seed);
    let mut draw = |shape: &[usize]| -> Tensor<f64> {
        let u: Tensor<f64> = gen.uniform(shape, 0.0, 1.0);
        let s: Tensor<f64> = gen.uniform(shape, 0.0, 1.0);
        u.zip_map(&s, "draw", |u, s| match domain {
            Domain::Any => 4.0 * u - 2.0,
            Domain::AwayFromZero => (0.2 + 1.8 * u) * if s < 0.5 { -1.0 } else { 1.0 },
            Domain::Positive => 0.2 + 1.8 * u,
        })
        .expect("bug: same shapes")
    };
    let rank = shape.len();
    match layout {
        Layout::Transposed if rank >= 2 => {
            let mut swapped = shape.to_vec();
            swapped.swap(rank - 2, rank - 1);
            draw(&swapped).transpose(-2, -1).expect("bug: rank >= 2")
        }
        Layout::Strided if rank >= 1 => {
            let mut doubled = shape.to_vec();
            doubled[0] *= 2;
            draw(&doubled)
                .slice(0, 0, doubled[0], 2)
                .expect("bug: valid slice")
        }
        _ => draw(shape),
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::Contiguous),
        Just(Layout::Transposed),
        Just(Layout::Strided)
    ]
}

fn shape(min_rank: usize, max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, min_rank..=max_rank)
}

/// Builds a case from drawn shapes, filling the op arguments from `seed`.
fn case_from(shapes: &[Vec<usize>], domain: Domain, layouts: &[Layout], seed: u64) -> GradCase {
    let inputs: Vec<Tensor<f64>> = shapes
        .iter()
        .zip(layouts)
        .enumerate()
        .map(|(i, (s, &l))| make_input(s, domain, l, seed.wrapping_add(i as u64 * 7919)))
        .collect();
    let first = shapes.first().cloned().unwrap_or_default();
    let rank = first.len();
    let mut gen = Generator::new(seed ^ 0x5151);
    let dim = if rank == 0 {
        0
    } else {
        gen.below(rank) as isize - if gen.below(2) == 0 { 0 } else { rank as isize }
    };
    let mut dims: Vec<isize> = (0..rank as isize).filter(|_| gen.below(2) == 0).collect();
    if dims.is_empty() && rank > 0 {
        dims.push(gen.below(rank) as isize);
    }
    let axis = if rank == 0 {
        0
    } else {
        (dim + rank as isize) as usize % rank
    };
    let bound = first.get(axis).copied().unwrap_or(1);
    let count = 1 + gen.below(5);
    let index = IndexTensor::from_slice(&(0..count).map(|_| gen.below(bound)).collect::<Vec<_>>());
    let mask = gen.bernoulli(&first, 0.5);
    let picks = (0..first.iter().product::<usize>())
        .map(|_| gen.below(bound))
        .collect();
    let gather_index = IndexTensor::from_vec(picks, &first).expect("bug: count matches shape");
    GradCase {
        inputs,
        dim,
        dims,
        index,
        shape: first,
        mask,
        gather_index,
        conv2d: Conv2dParams::default(),
        conv1d: Conv1dParams::default(),
        kernel: [2, 2],
        max_pool: MaxPool2dParams::default(),
        avg_pool: AvgPool2dParams::default(),
    }
}

/// One input of rank 0 to 3.
pub fn unary(domain: Domain) -> impl Strategy<Value = GradCase> {
    (shape(0, 3), layout(), any::<u64>())
        .prop_map(move |(s, l, seed)| case_from(&[s], domain, &[l], seed))
}

/// One input of rank 1 to 3, with a dim and a set of dims to reduce over.
pub fn reduce(domain: Domain) -> impl Strategy<Value = GradCase> {
    (shape(1, 3), layout(), any::<u64>())
        .prop_map(move |(s, l, seed)| case_from(&[s], domain, &[l], seed))
}

/// Two inputs whose shapes broadcast together (either may have fewer dims or ones).
pub fn binary(domain: Domain) -> impl Strategy<Value = GradCase> {
    (shape(1, 3), any::<u64>(), layout(), layout(), any::<u64>()).prop_map(
        move |(out, bits, l0, l1, seed)| {
            let rank = out.len();
            let lhs: Vec<usize> = out
                .iter()
                .enumerate()
                .map(|(i, &n)| if bits >> i & 1 == 1 { 1 } else { n })
                .collect();
            let keep = (bits >> 8) as usize % (rank + 1);
            let rhs: Vec<usize> = out[rank - keep..]
                .iter()
                .enumerate()
                .map(|(i, &n)| if bits >> (16 + i) & 1 == 1 { 1 } else { n })
                .collect();
            case_from(&[lhs, rhs], domain, &[l0, l1], seed)
        },
    )
}

/// Two inputs of the same shape.
pub fn same_shape_pair(domain: Domain) -> impl Strategy<Value = GradCase> {
    (shape(0, 3), layout(), layout(), any::<u64>())
        .prop_map(move |(s, l0, l1, seed)| case_from(&[s.clone(), s], domain, &[l0, l1], seed))
}

/// Two operands for `matmul`: 1-D, 2-D and batched with broadcast batch dims.
pub fn matmul_pair() -> impl Strategy<Value = GradCase> {
    (
        0usize..6,
        1usize..=4,
        1usize..=4,
        1usize..=4,
        1usize..=3,
        layout(),
        layout(),
        any::<u64>(),
    )
        .prop_map(|(kind, m, k, n, b, l0, l1, seed)| {
            let (lhs, rhs) = match kind {
                0 => (vec![k], vec![k]),
                1 => (vec![k], vec![k, n]),
                2 => (vec![m, k], vec![k]),
                3 => (vec![m, k], vec![k, n]),
                4 => (vec![b, m, k], vec![k, n]),
                _ => (vec![b, 1, m, k], vec![2, k, n]),
            };
            case_from(&[lhs, rhs], Domain::Any, &[l0, l1], seed)
        })
}

/// A `(num_embeddings, dim)` table with at least 3 rows and indices of rank 1 or 2 into it
/// (in `index`).
pub fn embedding() -> impl Strategy<Value = GradCase> {
    (
        3usize..=5,
        1usize..=3,
        prop::collection::vec(1usize..=3, 1..=2),
        any::<u64>(),
    )
        .prop_map(|(rows, width, index_shape, seed)| {
            let mut case = case_from(
                &[vec![rows, width]],
                Domain::Any,
                &[Layout::Contiguous],
                seed,
            );
            let mut gen = Generator::new(seed ^ 0xe3b);
            let count = index_shape.iter().product();
            let picks = (0..count).map(|_| gen.below(rows)).collect();
            case.index = IndexTensor::from_vec(picks, &index_shape).expect("bug: count matches");
            case.dim = 0;
            case
        })
}

/// A convolution: input `(N, C_in, H, W)`, weight `(C_out, C_in / groups, kH, kW)`, with drawn
/// stride, padding, dilation and groups.
pub fn conv2d_case() -> impl Strategy<Value = GradCase> {
    (
        1usize..=2,
        1usize..=2,
        1usize..=2,
        1usize..=2,
        1usize..=3,
        0usize..=1,
        1usize..=2,
        any::<u64>(),
    )
        .prop_map(|(n, groups, cin_per, cout_per, k, pad, stride, seed)| {
            let dilation = 1 + (seed as usize % 2);
            let (cin, cout) = (groups * cin_per, groups * cout_per);
            let span = dilation * (k - 1) + 1;
            let (h, w) = (span + 2, span + 1);
            let shapes = [vec![n, cin, h, w], vec![cout, cin_per, k, k]];
            let layouts = [Layout::Contiguous, Layout::Contiguous];
            let mut case = case_from(&shapes, Domain::Any, &layouts, seed);
            case.conv2d = Conv2dParams {
                stride: [stride, 1],
                padding: [pad, pad],
                dilation: [dilation, 1],
                groups,
            };
            case
        })
}

/// A 1-D convolution: input `(N, C_in, L)`, weight `(C_out, C_in / groups, K)`.
pub fn conv1d_case() -> impl Strategy<Value = GradCase> {
    (
        1usize..=2,
        1usize..=2,
        1usize..=2,
        1usize..=3,
        0usize..=1,
        1usize..=2,
        any::<u64>(),
    )
        .prop_map(|(n, groups, per, k, pad, stride, seed)| {
            let dilation = 1 + (seed as usize % 2);
            let span = dilation * (k - 1) + 1;
            let shapes = [vec![n, groups * per, span + 3], vec![groups * per, per, k]];
            let mut case = case_from(&shapes, Domain::Any, &[Layout::Contiguous; 2], seed);
            case.conv1d = Conv1dParams {
                stride,
                padding: pad,
                dilation,
                groups,
            };
            case
        })
}

/// A pooling case: input `(N, C, H, W)` with a 2x2 or 3x3 window and drawn stride and padding.
pub fn pool2d_case() -> impl Strategy<Value = GradCase> {
    (
        1usize..=2,
        1usize..=2,
        4usize..=6,
        4usize..=6,
        2usize..=3,
        1usize..=2,
        0usize..=1,
        layout(),
        any::<u64>(),
    )
        .prop_map(|(n, c, h, w, k, stride, pad, l, seed)| {
            let mut case = case_from(&[vec![n, c, h, w]], Domain::Any, &[l], seed);
            case.kernel = [k, k];
            case.max_pool = MaxPool2dParams {
                stride: Some([stride, stride]),
                padding: [pad, pad],
                ..Default::default()
            };
            case.avg_pool = AvgPool2dParams {
                stride: Some([stride, stride]),
                padding: [pad, pad],
                ..Default::default()
            };
            case
        })
}

/// Runs [`gradcheck`] (and [`gradgradcheck`] when `second_order`) of `f` on `case`, with an
/// error message that names `op` and the case.
///
/// # Errors
/// A message naming the op, the input shapes and the first disagreeing element.
pub fn check_op<F>(op: &str, case: &GradCase, f: F, second_order: bool) -> Result<(), String>
where
    F: Fn(&[Var<f64>], &GradCase) -> crate::Result<Var<f64>>,
{
    let shapes: Vec<&[usize]> = case.inputs.iter().map(Tensor::shape).collect();
    let g = |x: &[Var<f64>]| f(x, case);
    let options = GradcheckOptions::default();
    gradcheck(g, &case.inputs, options).map_err(|e| {
        format!(
            "{op} on {shapes:?} (dim {}, dims {:?}): {e}",
            case.dim, case.dims
        )
    })?;
    if second_order {
        gradgradcheck(g, &case.inputs, options)
            .map_err(|e| format!("{op} second order on {shapes:?} (dim {}): {e}", case.dim))?;
    }
    Ok(())
}
