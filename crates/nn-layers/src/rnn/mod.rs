//! Recurrent layers, `Rnn` (tanh or ReLU), `Lstm` and `Gru`, as PyTorch's `nn.RNN`,
//! `nn.LSTM` and `nn.GRU`: stacked layers, optionally bidirectional, with dropout between
//! layers, PyTorch's gate order, parameter names, initialisation and shapes.
//!
//! Each layer and direction first multiplies the whole input sequence by `W_ih^T` in one
//! matrix product (input bias added, and for RNN and LSTM the hidden bias too); each time
//! step then costs one `(N, H) x (H, G H)` product with `W_hh^T` and a few elementwise ops.
//! Each layer and direction of an RNN, a GRU or an LSTM without projection runs as one
//! recorded op with a hand-written backward (see `fused_rnn`, `fused_gru`, `fused_lstm`);
//! only the projected LSTM records its steps op by op.

mod fused_gru;
mod fused_lstm;
mod fused_rnn;

use std::sync::Mutex;

use strata_autograd::Var;
use strata_tensor::{Element, Generator, Tensor};

use crate::error::{NnError, Result};
use crate::module::{prefixed, Module};

/// Rows of the batch per task when a fused layer splits a time step over rayon's threads.
///
/// The split is fixed, not drawn from the thread count, so every row goes through the same
/// products and passes on any number of threads and results keep their bits. 16 rows keep
/// a step's `(16, H) x (H, G H)` product as fast per element as the whole batch's (measured
/// at 210 against 196 GFLOP/s for `H = 256`, `G = 4`).
pub(super) const ROW_CHUNK: usize = 16;

/// Runs `f` compiled for AVX2 where the CPU has it (eight `f32` lanes instead of the
/// baseline's four), else as built. `f` should call an `#[inline(always)]` body, so that the
/// body is compiled into the AVX2 function.
#[inline(always)]
pub(super) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        #[inline]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// The time step processed before step `t` of a sequence of `seq_len`, if any: `t - 1`, or
/// `t + 1` when the layer runs in reverse.
pub(super) fn previous_step(reverse: bool, t: usize, seq_len: usize) -> Option<usize> {
    match (reverse, t) {
        (false, 0) => None,
        (false, t) => Some(t - 1),
        (true, t) if t + 1 == seq_len => None,
        (true, t) => Some(t + 1),
    }
}

/// Row `t` of `buf` (rows of `len` elements) to write, and row `prev` to read.
pub(super) fn step_rows<T>(buf: &mut [T], t: usize, prev: usize, len: usize) -> (&mut [T], &[T]) {
    assert_ne!(t, prev, "bug: a step reads the state of another step");
    if prev < t {
        let (before, from_t) = buf.split_at_mut(t * len);
        (&mut from_t[..len], &before[prev * len..(prev + 1) * len])
    } else {
        let (to_prev, from_prev) = buf.split_at_mut(prev * len);
        (&mut to_prev[t * len..(t + 1) * len], &from_prev[..len])
    }
}

/// The activation of a plain [`Rnn`], PyTorch's `nonlinearity=` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Nonlinearity {
    /// `tanh`, PyTorch's default.
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

/// Options of [`Rnn`]: PyTorch's keyword arguments of `nn.RNN`.
///
/// `Default` gives PyTorch's defaults: one layer, tanh, biases, time-major input, no
/// dropout, one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RnnConfig {
    /// Number of stacked layers; layer `k > 0` reads the output of layer `k - 1`. Default
    /// `1`; must be positive.
    pub num_layers: usize,
    /// The activation. Default [`Nonlinearity::Tanh`].
    pub nonlinearity: Nonlinearity,
    /// Whether the layer has `bias_ih` and `bias_hh`. Default `true`.
    pub bias: bool,
    /// Whether input and output are `(N, L, H)` instead of `(L, N, H)`; the states are never
    /// batch first. Default `false`.
    pub batch_first: bool,
    /// Probability of zeroing an output of every layer but the last, in training mode.
    /// Default `0.0`; must lie in `[0, 1]`.
    pub dropout: f64,
    /// Whether each layer also runs backwards over the sequence. Default `false`.
    pub bidirectional: bool,
}

impl Default for RnnConfig {
    fn default() -> Self {
        Self {
            num_layers: 1,
            nonlinearity: Nonlinearity::Tanh,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
        }
    }
}

/// Options of [`Lstm`] and [`Gru`]: PyTorch's keyword arguments of `nn.LSTM` and `nn.GRU`.
///
/// `Default` gives PyTorch's defaults: one layer, biases, time-major input, no dropout, one
/// direction, no projection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecurrentConfig {
    /// Number of stacked layers. Default `1`; must be positive.
    pub num_layers: usize,
    /// Whether the layer has `bias_ih` and `bias_hh`. Default `true`.
    pub bias: bool,
    /// Whether input and output are `(N, L, H)` instead of `(L, N, H)`; the states are never
    /// batch first. Default `false`.
    pub batch_first: bool,
    /// Probability of zeroing an output of every layer but the last, in training mode.
    /// Default `0.0`; must lie in `[0, 1]`.
    pub dropout: f64,
    /// Whether each layer also runs backwards over the sequence. Default `false`.
    pub bidirectional: bool,
    /// LSTM only: when positive, each hidden state is projected to this many features by
    /// a learned `weight_hr_l{k}` `(proj_size, hidden_size)`, as PyTorch's `proj_size`; must
    /// be below `hidden_size`. Default `0`, no projection; a GRU rejects any other value.
    pub proj_size: usize,
}

impl Default for RecurrentConfig {
    fn default() -> Self {
        Self {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            proj_size: 0,
        }
    }
}

/// Which recurrence a stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Rnn(Nonlinearity),
    Lstm,
    Gru,
}

impl Cell {
    /// The number of gate blocks stacked in the weights.
    fn gates(self) -> usize {
        match self {
            Cell::Rnn(_) => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// A run's output sequence, final hidden state and (LSTM only) final cell state.
type StackOutput<T> = (Var<T>, Var<T>, Option<Var<T>>);

/// The weights of one layer in one direction.
#[derive(Debug)]
struct Weights<T: Element> {
    w_ih: Var<T>,
    w_hh: Var<T>,
    b_ih: Option<Var<T>>,
    b_hh: Option<Var<T>>,
    /// LSTM projection `(proj_size, H)`.
    w_hr: Option<Var<T>>,
}

/// The shared options of a stack, after checking.
#[derive(Debug, Clone, Copy)]
struct StackConfig {
    num_layers: usize,
    bias: bool,
    batch_first: bool,
    dropout: f64,
    bidirectional: bool,
    proj_size: usize,
}

/// What `Rnn`, `Lstm` and `Gru` share: the weights of every layer and direction, and the run.
#[derive(Debug)]
struct Stack<T: Element> {
    layer: &'static str,
    cell: Cell,
    input_size: usize,
    hidden_size: usize,
    config: StackConfig,
    /// `weights[k * D + d]`: layer `k`, direction `d` (0 forwards, 1 backwards).
    weights: Vec<Weights<T>>,
    training: bool,
    dropout_generator: Mutex<Generator>,
}

/// The sequence in time-major, batched form and how to give the output back.
struct Layout {
    seq_len: usize,
    batch: usize,
    unbatched: bool,
}

impl<T: Element> Stack<T> {
    fn new(
        layer: &'static str,
        cell: Cell,
        input_size: usize,
        hidden_size: usize,
        config: StackConfig,
        generator: &mut Generator,
    ) -> Result<Self> {
        let config_err = |reason: String| NnError::Config { layer, reason };
        if input_size == 0 || hidden_size == 0 || config.num_layers == 0 {
            return Err(config_err(format!(
                "input_size {input_size}, hidden_size {hidden_size} and num_layers {} must be \
                 positive",
                config.num_layers
            )));
        }
        if config.proj_size > 0 && (cell != Cell::Lstm || config.proj_size >= hidden_size) {
            return Err(config_err(format!(
                "proj_size {} is only supported for LSTM, and must be below hidden_size {}",
                config.proj_size, hidden_size
            )));
        }
        if !(0.0..=1.0).contains(&config.dropout) {
            return Err(config_err(format!(
                "dropout should be a number in range [0, 1], got {}",
                config.dropout
            )));
        }
        let dirs = if config.bidirectional { 2 } else { 1 };
        let gh = cell.gates() * hidden_size;
        let out_size = if config.proj_size > 0 {
            config.proj_size
        } else {
            hidden_size
        };
        let bound = T::from_f64(1.0 / (hidden_size as f64).sqrt());
        let mut draw = |shape: &[usize]| Var::parameter(generator.uniform(shape, -bound, bound));
        let mut weights = Vec::with_capacity(config.num_layers * dirs);
        for k in 0..config.num_layers {
            let layer_in = if k == 0 { input_size } else { dirs * out_size };
            for _ in 0..dirs {
                let w_ih = draw(&[gh, layer_in]);
                let w_hh = draw(&[gh, out_size]);
                let (b_ih, b_hh) = if config.bias {
                    (Some(draw(&[gh])), Some(draw(&[gh])))
                } else {
                    (None, None)
                };
                let w_hr = (config.proj_size > 0).then(|| draw(&[out_size, hidden_size]));
                weights.push(Weights {
                    w_ih,
                    w_hh,
                    b_ih,
                    b_hh,
                    w_hr,
                });
            }
        }
        let dropout_generator = Mutex::new(Generator::new(generator.next_u64()));
        Ok(Self {
            layer,
            cell,
            input_size,
            hidden_size,
            config,
            weights,
            training: true,
            dropout_generator,
        })
    }

    /// Features of each hidden state and output step: `proj_size` when projecting, else
    /// `hidden_size`.
    fn out_size(&self) -> usize {
        if self.config.proj_size > 0 {
            self.config.proj_size
        } else {
            self.hidden_size
        }
    }

    fn dirs(&self) -> usize {
        if self.config.bidirectional {
            2
        } else {
            1
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
        let dirs = self.dirs();
        for (i, w) in self.weights.iter().enumerate() {
            let (k, d) = (i / dirs, i % dirs);
            let suffix = if d == 1 { "_reverse" } else { "" };
            f(
                &prefixed(prefix, &format!("weight_ih_l{k}{suffix}")),
                &w.w_ih,
            );
            f(
                &prefixed(prefix, &format!("weight_hh_l{k}{suffix}")),
                &w.w_hh,
            );
            if let (Some(b_ih), Some(b_hh)) = (&w.b_ih, &w.b_hh) {
                f(&prefixed(prefix, &format!("bias_ih_l{k}{suffix}")), b_ih);
                f(&prefixed(prefix, &format!("bias_hh_l{k}{suffix}")), b_hh);
            }
            if let Some(w_hr) = &w.w_hr {
                f(&prefixed(prefix, &format!("weight_hr_l{k}{suffix}")), w_hr);
            }
        }
    }

    fn input_err(&self, reason: String) -> NnError {
        NnError::Input {
            layer: self.layer,
            reason,
        }
    }

    /// Checks the input and brings it to `(L, N, H_in)`.
    fn time_major(&self, input: &Var<T>) -> Result<(Var<T>, Layout)> {
        let shape = input.shape();
        if shape.len() != 2 && shape.len() != 3 {
            return Err(self.input_err(format!(
                "expected input to be 2D or 3D, got {}D tensor of shape {shape:?}",
                shape.len()
            )));
        }
        let features = shape[shape.len() - 1];
        if features != self.input_size {
            return Err(self.input_err(format!(
                "input.size(-1) must be equal to input_size. Expected {}, got {features}",
                self.input_size
            )));
        }
        let unbatched = shape.len() == 2;
        let xs = if unbatched {
            input.unsqueeze(1)?
        } else if self.config.batch_first {
            input.transpose(0, 1)?
        } else {
            input.clone()
        };
        let (seq_len, batch) = (xs.shape()[0], xs.shape()[1]);
        if seq_len == 0 {
            return Err(self.input_err(format!(
                "expected sequence length to be larger than 0, got input of shape {shape:?}"
            )));
        }
        Ok((
            xs,
            Layout {
                seq_len,
                batch,
                unbatched,
            },
        ))
    }

    /// Checks an initial state and brings it to `(num_layers * D, N, H)`; zeros if absent.
    fn initial_state(
        &self,
        state: Option<&Var<T>>,
        layout: &Layout,
        which: &str,
        features: usize,
    ) -> Result<Var<T>> {
        let layers = self.config.num_layers * self.dirs();
        let want: Vec<usize> = if layout.unbatched {
            vec![layers, features]
        } else {
            vec![layers, layout.batch, features]
        };
        let Some(state) = state else {
            return Ok(Var::new(Tensor::zeros(&[layers, layout.batch, features])));
        };
        if state.shape() != want.as_slice() {
            return Err(self.input_err(format!(
                "expected {which} size {want:?}, got {:?}",
                state.shape()
            )));
        }
        if layout.unbatched {
            Ok(state.unsqueeze(1)?)
        } else {
            Ok(state.clone())
        }
    }

    /// Runs every layer and direction over `xs` `(L, N, H_in)` from the states `h0` (and
    /// `c0` for the LSTM), each `(num_layers * D, N, H)`; returns the last layer's output
    /// `(L, N, D H)` and the final states.
    fn run(&self, xs: Var<T>, h0: &Var<T>, c0: Option<&Var<T>>) -> Result<StackOutput<T>> {
        let dirs = self.dirs();
        let mut layer_input = xs;
        let mut h_last = Vec::with_capacity(self.weights.len());
        let mut c_last = Vec::with_capacity(self.weights.len());
        for k in 0..self.config.num_layers {
            let mut outputs = Vec::with_capacity(dirs);
            for d in 0..dirs {
                let idx = k * dirs + d;
                let h = h0.narrow(0, idx, 1)?.squeeze_dim(0)?;
                let c = c0
                    .map(|c0| c0.narrow(0, idx, 1)?.squeeze_dim(0))
                    .transpose()?;
                let (out, h, c) =
                    self.run_direction(&self.weights[idx], &layer_input, h, c, d == 1)?;
                outputs.push(out);
                h_last.push(h);
                c_last.extend(c);
            }
            layer_input = if dirs == 1 {
                outputs.pop().expect("bug: one direction ran")
            } else {
                Var::concat(&[&outputs[0], &outputs[1]], -1)?
            };
            if k + 1 < self.config.num_layers && self.training && self.config.dropout > 0.0 {
                layer_input = self.dropout(&layer_input)?;
            }
        }
        let h_n = Var::stack(&h_last.iter().collect::<Vec<_>>(), 0)?;
        let c_n = if c_last.is_empty() {
            None
        } else {
            Some(Var::stack(&c_last.iter().collect::<Vec<_>>(), 0)?)
        };
        Ok((layer_input, h_n, c_n))
    }

    /// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)`.
    fn dropout(&self, xs: &Var<T>) -> Result<Var<T>> {
        let p = self.config.dropout;
        let mut generator = self
            .dropout_generator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let keep = generator.bernoulli::<T>(xs.shape(), 1.0 - p);
        let mask = if p < 1.0 {
            keep.mul_scalar(T::from_f64(1.0 / (1.0 - p)))
        } else {
            keep
        };
        Ok(xs.mul(&Var::new(mask))?)
    }

    /// One layer in one direction over `xs` `(L, N, H_in)` from `h` (and `c`) `(N, H)`.
    fn run_direction(
        &self,
        w: &Weights<T>,
        xs: &Var<T>,
        mut h: Var<T>,
        mut c: Option<Var<T>>,
        reverse: bool,
    ) -> Result<StackOutput<T>> {
        let (seq_len, batch, features) = (xs.shape()[0], xs.shape()[1], xs.shape()[2]);
        let hidden = self.hidden_size;
        let gh = self.cell.gates() * hidden;

        if self.cell == Cell::Lstm && w.w_hr.is_none() {
            let xw = xs.linear(&w.w_ih, None)?;
            let c0 = c.as_ref().expect("bug: an LSTM runs with a cell state");
            let biases = w.b_ih.as_ref().zip(w.b_hh.as_ref());
            let run = fused_lstm::lstm_layer(&xw, &w.w_hh, biases, &h, c0, reverse)?;
            return Ok((run.out, run.h_n, Some(run.c_n)));
        }
        if self.cell == Cell::Gru {
            let xw = xs.linear(&w.w_ih, w.b_ih.as_ref())?;
            let (out, h_n) = fused_gru::gru_layer(&xw, &w.w_hh, w.b_hh.as_ref(), &h, reverse)?;
            return Ok((out, h_n, None));
        }

        // All input projections at once: (L N, H_in) x (H_in, G H).
        let mut xw = xs
            .reshape(&[seq_len * batch, features])?
            .matmul(&w.w_ih.transpose(0, 1)?)?;
        if let Some(b_ih) = &w.b_ih {
            xw = xw.add(b_ih)?;
        }
        // The hidden bias adds to every step alike.
        if let Some(b_hh) = &w.b_hh {
            xw = xw.add(b_hh)?;
        }
        if let Cell::Rnn(act) = self.cell {
            let xw = xw.reshape(&[seq_len, batch, gh])?;
            let (out, h_n) = fused_rnn::rnn_layer(&xw, &w.w_hh, &h, act, reverse)?;
            return Ok((out, h_n, None));
        }
        let mut steps = Vec::with_capacity(seq_len);
        split_steps(&xw.reshape(&[seq_len, batch, gh])?, &mut steps)?;
        let w_hh_t = w.w_hh.transpose(0, 1)?;

        let mut outputs: Vec<Option<Var<T>>> = vec![None; seq_len];
        let order: Vec<usize> = if reverse {
            (0..seq_len).rev().collect()
        } else {
            (0..seq_len).collect()
        };
        for t in order {
            let x_t = &steps[t];
            let hw = h.matmul(&w_hh_t)?;
            match self.cell {
                Cell::Lstm => {
                    let gates = x_t.add(&hw)?.chunk(4, 1)?;
                    let i = gates[0].sigmoid();
                    let f = gates[1].sigmoid();
                    let g = gates[2].tanh();
                    let o = gates[3].sigmoid();
                    let c_prev = c.as_ref().expect("bug: an LSTM runs with a cell state");
                    let c_new = f.mul(c_prev)?.add(&i.mul(&g)?)?;
                    h = o.mul(&c_new.tanh())?;
                    if let Some(w_hr) = &w.w_hr {
                        h = h.matmul(&w_hr.transpose(0, 1)?)?;
                    }
                    c = Some(c_new);
                }
                Cell::Rnn(_) | Cell::Gru => unreachable!("bug: RNN and GRU run as one fused op"),
            }
            outputs[t] = Some(h.clone());
        }
        let outputs: Vec<Var<T>> = outputs
            .into_iter()
            .map(|o| o.expect("bug: every step ran"))
            .collect();
        let out = Var::stack(&outputs.iter().collect::<Vec<_>>(), 0)?;
        Ok((out, h, c))
    }

    /// The full forward: checks, runs, and gives output and states back in the caller's
    /// layout.
    fn forward(
        &self,
        input: &Var<T>,
        h0: Option<&Var<T>>,
        c0: Option<&Var<T>>,
        names: [&str; 2],
    ) -> Result<StackOutput<T>> {
        let (xs, layout) = self.time_major(input)?;
        let h0 = self.initial_state(h0, &layout, names[0], self.out_size())?;
        let c0 = match self.cell {
            Cell::Lstm => Some(self.initial_state(c0, &layout, names[1], self.hidden_size)?),
            _ => None,
        };
        let (out, h_n, c_n) = self.run(xs, &h0, c0.as_ref())?;
        debug_assert_eq!(out.shape()[0], layout.seq_len);
        if layout.unbatched {
            let c_n = c_n.map(|c| c.squeeze_dim(1)).transpose()?;
            return Ok((out.squeeze_dim(1)?, h_n.squeeze_dim(1)?, c_n));
        }
        let out = if self.config.batch_first {
            out.transpose(0, 1)?
        } else {
            out
        };
        Ok((out, h_n, c_n))
    }
}

macro_rules! recurrent_accessors {
    () => {
        /// The number of input features.
        pub fn input_size(&self) -> usize {
            self.inner.input_size
        }

        /// The number of hidden features.
        pub fn hidden_size(&self) -> usize {
            self.inner.hidden_size
        }

        /// Whether the layer is in training mode (the default after `new`): dropout acts
        /// only then.
        pub fn is_training(&self) -> bool {
            self.inner.training
        }

        /// Reseeds the generator that draws dropout masks.
        pub fn set_dropout_seed(&self, seed: u64) {
            *self
                .inner
                .dropout_generator
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Generator::new(seed);
        }
    };
}

macro_rules! recurrent_module {
    ($name:ident) => {
        impl<T: Element> Module<T> for $name<T> {
            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var<T>)) {
                self.inner.visit_parameters(prefix, f);
            }

            fn set_training(&mut self, training: bool) {
                self.inner.training = training;
            }
        }
    };
}

/// A stacked Elman RNN with tanh or ReLU, PyTorch's `nn.RNN`.
///
/// ```text
/// h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh or relu
/// layer k > 0 reads the (dropped-out, in training) output of layer k - 1; a backwards
/// direction runs t = L-1 .. 0 and its output is concatenated after the forward one
/// init: every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))
/// ```
///
/// Parameters, per layer `k` and direction (suffix `_reverse` for the backwards one):
/// `weight_ih_l{k}` `(H, H_in)` (`H_in = D H` for `k > 0`), `weight_hh_l{k}` `(H, H)`,
/// `bias_ih_l{k}` and `bias_hh_l{k}` `(H)`, in PyTorch's order. Dropout masks come from a
/// generator seeded at construction from the one given (see [`Rnn::set_dropout_seed`]).
///
/// # Shapes
/// - input: `(L, N, H_in)`, `(N, L, H_in)` with `batch_first`, or unbatched `(L, H_in)`
/// - `h0` and `h_n`: `(num_layers * D, N, H)`, or `(num_layers * D, H)` unbatched
/// - output: `(L, N, D * H)`, `(N, L, D * H)` with `batch_first`, or `(L, D * H)`
///
/// `D` is 2 when bidirectional, else 1.
///
/// ```
/// use strata_autograd::Var;
/// use strata_nn_layers::{Rnn, RnnConfig};
/// use strata_tensor::{Generator, Tensor};
///
/// let mut gen = Generator::new(0);
/// let config = RnnConfig { num_layers: 2, bidirectional: true, ..Default::default() };
/// let rnn = Rnn::<f32>::new(3, 5, config, &mut gen)?;
/// let (out, h_n) = rnn.forward(&Var::new(Tensor::ones(&[7, 2, 3])), None)?;
/// assert_eq!(out.shape(), &[7, 2, 10]);
/// assert_eq!(h_n.shape(), &[4, 2, 5]);
/// # Ok::<(), strata_nn_layers::NnError>(())
/// ```
#[derive(Debug)]
pub struct Rnn<T: Element> {
    inner: Stack<T>,
    config: RnnConfig,
}

impl<T: Element> Rnn<T> {
    /// An RNN from `input_size` to `hidden_size` features, its weights drawn from
    /// `generator` as PyTorch initialises them.
    ///
    /// # Errors
    /// `NnError::Config` for a zero size or layer count, or dropout outside `[0, 1]`.
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        config: RnnConfig,
        generator: &mut Generator,
    ) -> Result<Self> {
        let stack = StackConfig {
            num_layers: config.num_layers,
            bias: config.bias,
            batch_first: config.batch_first,
            dropout: config.dropout,
            bidirectional: config.bidirectional,
            proj_size: 0,
        };
        let cell = Cell::Rnn(config.nonlinearity);
        Ok(Self {
            inner: Stack::new("RNN", cell, input_size, hidden_size, stack, generator)?,
            config,
        })
    }

    /// Runs the RNN over `input` from `h0` (zeros if `None`); returns the output sequence of
    /// the last layer and the final hidden state of every layer and direction.
    ///
    /// # Errors
    /// `NnError::Input` if `input` is not 2-D or 3-D, its last dim is not `input_size`, the
    /// sequence is empty (as PyTorch, which needs a length above 0), or `h0` does not have
    /// the shape above.
    pub fn forward(&self, input: &Var<T>, h0: Option<&Var<T>>) -> Result<(Var<T>, Var<T>)> {
        let (out, h_n, _) = self.inner.forward(input, h0, None, ["hidden", "hidden"])?;
        Ok((out, h_n))
    }

    /// The options the layer was built with.
    pub fn config(&self) -> &RnnConfig {
        &self.config
    }

    recurrent_accessors!();
}

recurrent_module!(Rnn);

/// A stacked long short-term memory, PyTorch's `nn.LSTM`.
///
/// ```text
/// i, f, g, o = split(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) into 4 blocks of H
/// i = sigmoid(i), f = sigmoid(f), g = tanh(g), o = sigmoid(o)
/// c_t = f * c_{t-1} + i * g,      h_t = o * tanh(c_t)
/// with proj_size P > 0:  h_t = (o * tanh(c_t)) W_hr^T
/// init: every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))
/// ```
///
/// Layers, directions, dropout and parameter names are as for [`Rnn`]; the weights stack
/// the gates in PyTorch's order `i, f, g, o`: `weight_ih_l{k}` is `(4 H, H_in)`. With a
/// projection, `weight_hh_l{k}` is `(4 H, P)`, layer `k > 0` reads `D P` features, and
/// `weight_hr_l{k}` `(P, H)` follows each direction's biases, as in PyTorch.
///
/// # Shapes
/// - input: as for [`Rnn`]; output: `(L, N, D * H_out)` (batch first or unbatched likewise)
/// - `h0`, `h_n`: `(num_layers * D, N, H_out)`, or `(num_layers * D, H_out)` unbatched
/// - `c0`, `c_n`: `(num_layers * D, N, H)`, or `(num_layers * D, H)` unbatched
///
/// `H_out` is `proj_size` when positive, else `hidden_size`.
///
/// ```
/// use strata_autograd::Var;
/// use strata_nn_layers::{Lstm, RecurrentConfig};
/// use strata_tensor::{Generator, Tensor};
///
/// let mut gen = Generator::new(0);
/// let config = RecurrentConfig { batch_first: true, ..Default::default() };
/// let lstm = Lstm::<f32>::new(3, 5, config, &mut gen)?;
/// let (out, (h_n, c_n)) = lstm.forward(&Var::new(Tensor::ones(&[2, 7, 3])), None)?;
/// assert_eq!(out.shape(), &[2, 7, 5]);
/// assert_eq!((h_n.shape(), c_n.shape()), (&[1, 2, 5][..], &[1, 2, 5][..]));
/// # Ok::<(), strata_nn_layers::NnError>(())
/// ```
#[derive(Debug)]
pub struct Lstm<T: Element> {
    inner: Stack<T>,
    config: RecurrentConfig,
}

impl<T: Element> Lstm<T> {
    /// An LSTM from `input_size` to `hidden_size` features, its weights drawn from
    /// `generator` as PyTorch initialises them.
    ///
    /// # Errors
    /// As [`Rnn::new`].
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        config: RecurrentConfig,
        generator: &mut Generator,
    ) -> Result<Self> {
        let stack = stack_config(&config);
        Ok(Self {
            inner: Stack::new(
                "LSTM",
                Cell::Lstm,
                input_size,
                hidden_size,
                stack,
                generator,
            )?,
            config,
        })
    }

    /// Runs the LSTM over `input` from `(h0, c0)` (zeros if `None`); returns the output
    /// sequence of the last layer and the final `(h_n, c_n)`.
    ///
    /// # Errors
    /// As [`Rnn::forward`], for `h0` and `c0` alike.
    #[allow(clippy::type_complexity)]
    pub fn forward(
        &self,
        input: &Var<T>,
        state: Option<(&Var<T>, &Var<T>)>,
    ) -> Result<(Var<T>, (Var<T>, Var<T>))> {
        let (h0, c0) = state.unzip();
        let (out, h_n, c_n) = self
            .inner
            .forward(input, h0, c0, ["hidden[0]", "hidden[1]"])?;
        Ok((out, (h_n, c_n.expect("bug: an LSTM returns a cell state"))))
    }

    /// The options the layer was built with.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    recurrent_accessors!();
}

recurrent_module!(Lstm);

/// A stacked gated recurrent unit, PyTorch's `nn.GRU`.
///
/// ```text
/// r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
/// z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
/// n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
/// h_t = (1 - z) * n + z * h_{t-1}
/// init: every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))
/// ```
///
/// Layers, directions, dropout and parameter names are as for [`Rnn`]; the weights stack
/// the gates in PyTorch's order `r, z, n`: `weight_ih_l{k}` is `(3 H, H_in)`.
///
/// # Shapes
/// As for [`Rnn`].
#[derive(Debug)]
pub struct Gru<T: Element> {
    inner: Stack<T>,
    config: RecurrentConfig,
}

impl<T: Element> Gru<T> {
    /// A GRU from `input_size` to `hidden_size` features, its weights drawn from
    /// `generator` as PyTorch initialises them.
    ///
    /// # Errors
    /// As [`Rnn::new`].
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        config: RecurrentConfig,
        generator: &mut Generator,
    ) -> Result<Self> {
        let stack = stack_config(&config);
        Ok(Self {
            inner: Stack::new("GRU", Cell::Gru, input_size, hidden_size, stack, generator)?,
            config,
        })
    }

    /// Runs the GRU over `input` from `h0` (zeros if `None`); returns the output sequence of
    /// the last layer and the final hidden state of every layer and direction.
    ///
    /// # Errors
    /// As [`Rnn::forward`].
    pub fn forward(&self, input: &Var<T>, h0: Option<&Var<T>>) -> Result<(Var<T>, Var<T>)> {
        let (out, h_n, _) = self.inner.forward(input, h0, None, ["hidden", "hidden"])?;
        Ok((out, h_n))
    }

    /// The options the layer was built with.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    recurrent_accessors!();
}

recurrent_module!(Gru);

/// Splits `xs` `(L, ...)` into its `L` steps, each without the leading dim, by halving.
///
/// Each narrow's backward pads its gradient back to the size of the piece it was cut from;
/// cutting one step at a time from the whole sequence would cost `O(L^2)` in backward, while
/// halving costs `O(L log L)`.
fn split_steps<T: Element>(xs: &Var<T>, out: &mut Vec<Var<T>>) -> Result<()> {
    let len = xs.shape()[0];
    if len == 1 {
        out.push(xs.squeeze_dim(0)?);
        return Ok(());
    }
    let mid = len / 2;
    split_steps(&xs.narrow(0, 0, mid)?, out)?;
    split_steps(&xs.narrow(0, mid, len - mid)?, out)
}

fn stack_config(config: &RecurrentConfig) -> StackConfig {
    StackConfig {
        num_layers: config.num_layers,
        bias: config.bias,
        batch_first: config.batch_first,
        dropout: config.dropout,
        bidirectional: config.bidirectional,
        proj_size: config.proj_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn randn(shape: &[usize], seed: u64) -> Var<f64> {
        Var::new(Generator::new(seed).randn(shape))
    }

    #[test]
    fn names_and_shapes_follow_pytorch() {
        let config = RecurrentConfig {
            num_layers: 2,
            bidirectional: true,
            ..Default::default()
        };
        let lstm = Lstm::<f64>::new(3, 4, config, &mut Generator::new(1)).unwrap();

        let params = lstm.named_parameters();

        let names: Vec<&str> = params.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "weight_ih_l0",
                "weight_hh_l0",
                "bias_ih_l0",
                "bias_hh_l0",
                "weight_ih_l0_reverse",
                "weight_hh_l0_reverse",
                "bias_ih_l0_reverse",
                "bias_hh_l0_reverse",
                "weight_ih_l1",
                "weight_hh_l1",
                "bias_ih_l1",
                "bias_hh_l1",
                "weight_ih_l1_reverse",
                "weight_hh_l1_reverse",
                "bias_ih_l1_reverse",
                "bias_hh_l1_reverse",
            ]
        );
        assert_eq!(params[0].1.shape(), &[16, 3]);
        assert_eq!(params[8].1.shape(), &[16, 8]);
        let bound = 0.5;
        assert!(params
            .iter()
            .all(|(_, p)| p.value().to_vec().iter().all(|v| v.abs() <= bound)));
    }

    #[test]
    fn zero_length_sequence_is_an_input_error() {
        // PyTorch raises "Expected sequence length to be larger than 0 in RNN".
        let gru =
            Gru::<f64>::new(3, 4, RecurrentConfig::default(), &mut Generator::new(1)).unwrap();

        let err = gru
            .forward(&Var::new(Tensor::zeros(&[0, 2, 3])), None)
            .unwrap_err();

        assert!(
            err.to_string()
                .contains("expected sequence length to be larger than 0"),
            "{err}"
        );
    }

    #[test]
    fn wrong_hidden_shape_is_an_input_error() {
        let rnn = Rnn::<f64>::new(3, 4, RnnConfig::default(), &mut Generator::new(1)).unwrap();
        let h0 = Var::new(Tensor::zeros(&[2, 2, 4]));

        let err = rnn.forward(&randn(&[5, 2, 3], 2), Some(&h0)).unwrap_err();

        assert!(
            err.to_string().contains("expected hidden size [1, 2, 4]"),
            "{err}"
        );
    }

    #[test]
    fn unbatched_matches_a_batch_of_one() {
        let config = RecurrentConfig {
            bidirectional: true,
            num_layers: 2,
            ..Default::default()
        };
        let lstm = Lstm::<f64>::new(3, 4, config, &mut Generator::new(1)).unwrap();
        let xs = randn(&[5, 3], 3);

        let (single, (h, c)) = lstm.forward(&xs, None).unwrap();
        let (batched, _) = lstm.forward(&xs.unsqueeze(1).unwrap(), None).unwrap();

        assert_eq!(single.shape(), &[5, 8]);
        assert_eq!((h.shape(), c.shape()), (&[4usize, 4][..], &[4usize, 4][..]));
        assert_eq!(single.value().to_vec(), batched.value().to_vec());
    }

    #[test]
    fn dropout_acts_only_in_training_and_is_seeded() {
        let config = RnnConfig {
            num_layers: 2,
            dropout: 0.5,
            ..Default::default()
        };
        let mut rnn = Rnn::<f64>::new(3, 6, config, &mut Generator::new(1)).unwrap();
        let xs = randn(&[4, 2, 3], 4);

        rnn.set_dropout_seed(9);
        let first = rnn.forward(&xs, None).unwrap().0.value().to_vec();
        rnn.set_dropout_seed(9);
        let again = rnn.forward(&xs, None).unwrap().0.value().to_vec();
        rnn.eval();
        let eval = rnn.forward(&xs, None).unwrap().0.value().to_vec();
        let eval_again = rnn.forward(&xs, None).unwrap().0.value().to_vec();

        assert_eq!(first, again);
        assert_ne!(first, eval);
        assert_eq!(eval, eval_again);
    }

    #[test]
    fn projection_is_lstm_only_and_below_hidden_size() {
        let config = RecurrentConfig {
            proj_size: 2,
            ..Default::default()
        };
        let too_wide = RecurrentConfig {
            proj_size: 4,
            ..Default::default()
        };

        assert!(Gru::<f32>::new(3, 4, config, &mut Generator::new(1)).is_err());
        assert!(Lstm::<f32>::new(3, 4, too_wide, &mut Generator::new(1)).is_err());
        let lstm = Lstm::<f32>::new(3, 4, config, &mut Generator::new(1)).unwrap();
        let (out, (h, c)) = lstm
            .forward(&Var::new(Tensor::zeros(&[5, 3])), None)
            .unwrap();
        assert_eq!(
            (out.shape(), h.shape(), c.shape()),
            (&[5, 2][..], &[1, 2][..], &[1, 4][..])
        );
    }

    #[test]
    fn dropout_outside_unit_interval_is_a_config_error() {
        let config = RecurrentConfig {
            dropout: 1.5,
            ..Default::default()
        };

        assert!(Gru::<f32>::new(3, 4, config, &mut Generator::new(1)).is_err());
    }

    #[test]
    fn input_and_state_gradients_of_a_bidirectional_gru_pass_gradcheck() {
        let config = RecurrentConfig {
            bidirectional: true,
            batch_first: true,
            ..Default::default()
        };
        let gru = Gru::<f64>::new(2, 3, config, &mut Generator::new(5)).unwrap();
        let xs = Generator::new(6).randn::<f64>(&[2, 3, 2]);
        let h0 = Generator::new(7).randn::<f64>(&[2, 2, 3]);

        let result = strata_autograd::gradcheck(
            |v: &[Var<f64>]| {
                let (out, h_n) = gru.forward(&v[0], Some(&v[1])).map_err(|e| match e {
                    NnError::Autograd(e) => e,
                    other => panic!("{other}"),
                })?;
                out.sum_all().add(&h_n.square().sum_all())
            },
            &[xs, h0],
            strata_autograd::GradcheckOptions::default(),
        );

        assert!(result.is_ok(), "{result:?}");
    }
}
