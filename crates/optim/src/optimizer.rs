//! The [`Optimizer`] trait, parameter groups, and the bookkeeping every optimizer shares:
//! groups with their hyperparameters, per-parameter state, the walk over parameters that have
//! a gradient, and saving and restoring that state.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use rayon::prelude::*;
use strata_autograd::Var;
use strata_tensor::{Element, Tensor};

use crate::error::{OptimError, Result};
use crate::state::StateDict;

/// An optimizer over autograd parameters (PyTorch's `torch.optim.Optimizer`).
///
/// Parameters live in one or more [`ParamGroup`]s, each with its own hyperparameters. A
/// [`step`](Optimizer::step) updates every parameter that has a gradient in place (through
/// [`Var::update`], so the parameter keeps its identity) and skips the others, as PyTorch
/// does. Parameters are numbered over all groups in order, group 0 first; the numbers key the
/// saved state.
///
/// ```
/// use strata_autograd::Var;
/// use strata_optim::{Optimizer, Sgd, SgdConfig};
/// use strata_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::from_vec(vec![1.0f32, -2.0], &[2])?);
/// let mut opt = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, ..Default::default() })?;
/// let loss = w.mul(&w)?.sum_all();          // gradient 2 w
/// loss.backward()?;
/// opt.step()?;
/// opt.zero_grad();
/// assert_eq!(w.value().to_vec(), vec![0.8, -1.6]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Optimizer<T: Element> {
    /// Updates every parameter that has a gradient, once.
    ///
    /// # Errors
    /// [`OptimError::GradShape`] if a gradient's shape differs from its parameter's, and
    /// [`OptimError::Autograd`] if a parameter is not a leaf. Parameters before the failing
    /// one are already updated.
    fn step(&mut self) -> Result<()>;

    /// Clears the gradient of every parameter (PyTorch's `zero_grad(set_to_none=True)`).
    fn zero_grad(&self);

    /// The number of parameter groups.
    fn num_groups(&self) -> usize;

    /// The parameters of group `group`.
    ///
    /// # Errors
    /// [`OptimError::GroupIndex`] if `group >= num_groups()`.
    fn group_params(&self, group: usize) -> Result<&[Var<T>]>;

    /// The learning rate of group `group`.
    ///
    /// # Errors
    /// [`OptimError::GroupIndex`] if `group >= num_groups()`.
    fn group_lr(&self, group: usize) -> Result<f64>;

    /// Sets the learning rate of group `group`.
    ///
    /// # Errors
    /// [`OptimError::GroupIndex`] if `group >= num_groups()`.
    fn set_group_lr(&mut self, group: usize, lr: f64) -> Result<()>;

    /// The learning rate of the first group.
    fn lr(&self) -> f64 {
        self.group_lr(0)
            .expect("bug: an optimizer has at least one group")
    }

    /// Sets the learning rate of every group.
    fn set_lr(&mut self, lr: f64) {
        for group in 0..self.num_groups() {
            self.set_group_lr(group, lr)
                .expect("bug: group index below num_groups");
        }
    }

    /// The optimizer's state: per-parameter buffers and step counts, and each group's
    /// hyperparameters (PyTorch's `state_dict()`).
    fn state_dict(&self) -> StateDict<T>;

    /// Restores a state from [`state_dict`](Optimizer::state_dict), hyperparameters included.
    ///
    /// Nothing changes if it fails.
    ///
    /// # Errors
    /// [`OptimError::StateMismatch`] if the state comes from another kind of optimizer, the
    /// number of groups or of parameters in a group differs, a buffer's shape differs from its
    /// parameter's, a buffer is missing or unexpected, or a hyperparameter is missing or
    /// unreadable.
    fn load_state_dict(&mut self, state: &StateDict<T>) -> Result<()>;

    /// Writes [`state_dict`](Optimizer::state_dict) to a safetensors file, atomically.
    ///
    /// # Errors
    /// [`OptimError::Io`] if the file cannot be written.
    fn save(&self, path: &Path) -> Result<()> {
        self.state_dict().save(path)
    }

    /// Reads a state written by [`save`](Optimizer::save) and loads it.
    ///
    /// # Errors
    /// [`OptimError::Io`] if the file cannot be read, [`OptimError::Corrupt`] if it is not a
    /// valid state file, and the errors of
    /// [`load_state_dict`](Optimizer::load_state_dict).
    fn load(&mut self, path: &Path) -> Result<()> {
        let state = StateDict::load(path)?;
        self.load_state_dict(&state)
    }
}

/// Parameters that share hyperparameters (one entry of PyTorch's `param_groups`).
///
/// `C` is the optimizer's config type, e.g. [`AdamConfig`](crate::AdamConfig). To override a
/// few hyperparameters for a group, start from the shared config:
/// `AdamConfig { weight_decay: 0.0, ..base }`.
#[derive(Debug, Clone)]
pub struct ParamGroup<T: Element, C> {
    /// The parameters of the group.
    pub params: Vec<Var<T>>,
    /// The hyperparameters of the group.
    pub config: C,
}

impl<T: Element, C> ParamGroup<T, C> {
    /// A group of `params` with hyperparameters `config`.
    pub fn new(params: Vec<Var<T>>, config: C) -> Self {
        Self { params, config }
    }
}

/// What the shared bookkeeping needs from an optimizer's config.
pub(crate) trait GroupConfig: Clone + fmt::Debug {
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate.
    fn set_lr(&mut self, lr: f64);
    /// Checks the hyperparameters as PyTorch's constructor does.
    fn validate(&self) -> Result<()>;
    /// The hyperparameters as `(name, value)` pairs of text.
    fn to_pairs(&self) -> Vec<(&'static str, String)>;
    /// Sets the hyperparameter `name` from text.
    fn set_pair(&mut self, name: &str, value: &str) -> Option<()>;
}

/// What the shared bookkeeping needs from an optimizer's per-parameter state.
pub(crate) trait ParamState<T: Element>: Sized {
    /// Names of the buffers (all with the parameter's shape) this state saves.
    fn buffer_names(&self) -> Vec<&'static str>;
    /// The buffer `name` as a row-major slice.
    fn buffer(&self, name: &str) -> &[T];
    /// The step count, if the state keeps one.
    fn step_count(&self) -> Option<u64>;
    /// Rebuilds a state from saved buffers and step count, or explains what is missing.
    fn from_saved(
        buffers: &mut BTreeMap<&'static str, Vec<T>>,
        step: Option<u64>,
    ) -> std::result::Result<Self, String>;
    /// Every buffer name this kind of state may save.
    fn all_buffer_names() -> &'static [&'static str];
}

/// Groups, per-parameter state and the operations on them that every optimizer shares.
#[derive(Clone)]
pub(crate) struct Core<T: Element, C, S> {
    pub(crate) kind: &'static str,
    pub(crate) groups: Vec<ParamGroup<T, C>>,
    pub(crate) state: Vec<Vec<Option<S>>>,
}

impl<T: Element, C: fmt::Debug, S> fmt::Debug for Core<T, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        let mut list = f.debug_list();
        for (group, state) in self.groups.iter().zip(&self.state) {
            let with_state = state.iter().filter(|s| s.is_some()).count();
            list.entry(&format_args!(
                "{{ params: {}, with_state: {with_state}, config: {:?} }}",
                group.params.len(),
                group.config
            ));
        }
        list.finish()
    }
}

impl<T: Element, C: GroupConfig, S: ParamState<T>> Core<T, C, S> {
    /// Checks the groups (at least one, valid hyperparameters, no parameter twice).
    pub(crate) fn new(kind: &'static str, groups: Vec<ParamGroup<T, C>>) -> Result<Self> {
        if groups.is_empty() {
            return Err(OptimError::InvalidHyperparameter {
                op: kind,
                name: "params",
                value: "[]".into(),
                expected: "optimizer got an empty parameter list",
            });
        }
        let mut core = Self {
            kind,
            groups: Vec::new(),
            state: Vec::new(),
        };
        for group in groups {
            core.add_group(group)?;
        }
        Ok(core)
    }

    /// Appends a group (PyTorch's `add_param_group`).
    pub(crate) fn add_group(&mut self, group: ParamGroup<T, C>) -> Result<()> {
        group.config.validate()?;
        for (i, p) in group.params.iter().enumerate() {
            let seen_before = group.params[..i].iter().any(|q| q.same_as(p));
            let in_other = self
                .groups
                .iter()
                .flat_map(|g| &g.params)
                .any(|q| q.same_as(p));
            if seen_before || in_other {
                return Err(OptimError::InvalidHyperparameter {
                    op: self.kind,
                    name: "params",
                    value: format!("parameter of shape {:?}", p.shape()),
                    expected: "some parameters appear more than once in the parameter groups",
                });
            }
        }
        self.state.push(group.params.iter().map(|_| None).collect());
        self.groups.push(group);
        Ok(())
    }

    /// Runs `update(config, param, grad, state)` on every parameter that has a gradient.
    pub(crate) fn step(
        &mut self,
        update: impl Fn(&C, &mut [T], &[T], &mut Option<S>) + Sync,
    ) -> Result<()>
    where
        C: Sync,
        S: Send,
    {
        let mut work = Vec::new();
        let mut index = 0;
        for (group, states) in self.groups.iter().zip(&mut self.state) {
            for (param, slot) in group.params.iter().zip(states.iter_mut()) {
                if let Some(grad) = param.grad() {
                    if grad.shape() != param.shape() {
                        return Err(OptimError::GradShape {
                            op: self.kind,
                            index,
                            param: param.shape().to_vec(),
                            grad: grad.shape().to_vec(),
                        });
                    }
                    work.push((&group.config, param, grad, slot));
                }
                index += 1;
            }
        }
        // Parameters are distinct (checked when the groups were built) and each update reads
        // only its own parameter, gradient and state, so they run in parallel and give the
        // same bits in any order.
        work.into_par_iter()
            .try_for_each(|(config, param, grad, slot)| {
                let grad = grad.contiguous_slice();
                param.update(|w| update(config, w, &grad, slot))
            })?;
        Ok(())
    }

    pub(crate) fn zero_grad(&self) {
        for p in self.groups.iter().flat_map(|g| &g.params) {
            p.zero_grad();
        }
    }

    pub(crate) fn group(&self, op: &'static str, index: usize) -> Result<&ParamGroup<T, C>> {
        let groups = self.groups.len();
        self.groups
            .get(index)
            .ok_or(OptimError::GroupIndex { op, index, groups })
    }

    pub(crate) fn set_group_lr(&mut self, index: usize, lr: f64) -> Result<()> {
        let groups = self.groups.len();
        let group = self.groups.get_mut(index).ok_or(OptimError::GroupIndex {
            op: "set_group_lr",
            index,
            groups,
        })?;
        group.config.set_lr(lr);
        Ok(())
    }

    /// Buffers keyed `state.{index}.{buffer}`, steps keyed `state.{index}.step`, and in the
    /// metadata the kind, the group count, and per group its parameter indices and
    /// hyperparameters (`param_groups.{g}.params`, `param_groups.{g}.lr`, ...).
    pub(crate) fn state_dict(&self) -> StateDict<T> {
        let mut out = StateDict::new(self.kind);
        out.metadata
            .insert("param_groups".into(), self.groups.len().to_string());
        let mut index = 0;
        for (g, (group, states)) in self.groups.iter().zip(&self.state).enumerate() {
            let first = index;
            for (param, slot) in group.params.iter().zip(states) {
                if let Some(state) = slot {
                    for name in state.buffer_names() {
                        let data = state.buffer(name).to_vec();
                        let tensor = Tensor::from_vec(data, param.shape())
                            .expect("bug: state buffers have their parameter's shape");
                        out.tensors.insert(format!("state.{index}.{name}"), tensor);
                    }
                    if let Some(step) = state.step_count() {
                        out.steps.insert(format!("state.{index}.step"), step);
                    }
                }
                index += 1;
            }
            let indices: Vec<String> = (first..index).map(|i| i.to_string()).collect();
            out.metadata
                .insert(format!("param_groups.{g}.params"), indices.join(","));
            for (name, value) in group.config.to_pairs() {
                out.metadata
                    .insert(format!("param_groups.{g}.{name}"), value);
            }
        }
        out
    }

    pub(crate) fn load_state_dict(&mut self, saved: &StateDict<T>) -> Result<()> {
        let mismatch = |what: String| OptimError::StateMismatch { what };
        if saved.kind() != Some(self.kind) {
            return Err(mismatch(format!(
                "the state is for optimizer {:?}, not {}",
                saved.kind().unwrap_or("(none)"),
                self.kind
            )));
        }
        let n_groups = saved
            .metadata
            .get("param_groups")
            .and_then(|v| v.parse::<usize>().ok());
        if n_groups != Some(self.groups.len()) {
            return Err(mismatch(format!(
                "the state has {} parameter groups, the optimizer {}",
                saved
                    .metadata
                    .get("param_groups")
                    .map_or("no", String::as_str),
                self.groups.len()
            )));
        }

        let mut configs = Vec::with_capacity(self.groups.len());
        let mut states = Vec::with_capacity(self.groups.len());
        let mut used = BTreeSet::new();
        let mut index = 0;
        for (g, group) in self.groups.iter().enumerate() {
            let key = format!("param_groups.{g}.params");
            let count = saved
                .metadata
                .get(&key)
                .map(|v| v.split(',').filter(|s| !s.is_empty()));
            let count = count.map(Iterator::count);
            if count != Some(group.params.len()) {
                return Err(mismatch(format!(
                    "group {g} has {} parameters in the state, {} in the optimizer",
                    count.map_or("no".into(), |c| c.to_string()),
                    group.params.len()
                )));
            }
            let mut config = group.config.clone();
            for (name, _) in group.config.to_pairs() {
                let key = format!("param_groups.{g}.{name}");
                let value = saved.metadata.get(&key);
                value
                    .and_then(|v| config.set_pair(name, v))
                    .ok_or_else(|| {
                        mismatch(format!(
                            "hyperparameter {key} is missing or unreadable: {value:?}"
                        ))
                    })?;
            }
            config.validate()?;
            configs.push(config);
            let mut group_states = Vec::with_capacity(group.params.len());
            for param in &group.params {
                group_states.push(load_param_state::<T, S>(
                    saved,
                    index,
                    param.shape(),
                    &mut used,
                )?);
                index += 1;
            }
            states.push(group_states);
        }
        let unknown = saved
            .tensors
            .keys()
            .chain(saved.steps.keys())
            .find(|k| !used.contains(*k));
        if let Some(key) = unknown {
            return Err(mismatch(format!(
                "the state has an entry this optimizer does not use: {key}"
            )));
        }

        for (group, config) in self.groups.iter_mut().zip(configs) {
            group.config = config;
        }
        self.state = states;
        Ok(())
    }
}

/// Reads the state of parameter `index`, adding the keys it used to `used`.
fn load_param_state<T: Element, S: ParamState<T>>(
    saved: &StateDict<T>,
    index: usize,
    shape: &[usize],
    used: &mut BTreeSet<String>,
) -> Result<Option<S>> {
    let mut buffers = BTreeMap::new();
    for &name in S::all_buffer_names() {
        let key = format!("state.{index}.{name}");
        if let Some(tensor) = saved.tensors.get(&key) {
            if tensor.shape() != shape {
                return Err(OptimError::StateMismatch {
                    what: format!(
                        "{key} has shape {:?}, the parameter {shape:?}",
                        tensor.shape()
                    ),
                });
            }
            buffers.insert(name, tensor.to_vec());
            used.insert(key);
        }
    }
    let step_key = format!("state.{index}.step");
    let step = saved.steps.get(&step_key).copied();
    if step.is_some() {
        used.insert(step_key);
    }
    if buffers.is_empty() && step.is_none() {
        return Ok(None);
    }
    let state = S::from_saved(&mut buffers, step).map_err(|reason| OptimError::StateMismatch {
        what: format!("state of parameter {index}: {reason}"),
    })?;
    Ok(Some(state))
}

/// PyTorch's `lerp(start, end, weight)` for a scalar weight, branch for branch:
/// `start + weight * (end - start)` when `|weight| < 0.5`, else
/// `end - (end - start) * (1 - weight)`.
#[inline(always)]
pub(crate) fn lerp<T: Element>(start: T, end: T, weight: T, one_minus_weight: T) -> T {
    if weight.abs() < T::from_f64(0.5) {
        start + weight * (end - start)
    } else {
        end - (end - start) * one_minus_weight
    }
}

/// `torch.maximum`: the larger value, NaN if either is NaN.
#[inline(always)]
pub(crate) fn maximum<T: Element>(a: T, b: T) -> T {
    if a.is_nan() || a > b {
        a
    } else {
        b
    }
}

/// Forwards the group and state methods of [`Optimizer`] to a `core` field.
macro_rules! forward_core {
    () => {
        fn zero_grad(&self) {
            self.core.zero_grad()
        }

        fn num_groups(&self) -> usize {
            self.core.groups.len()
        }

        fn group_params(&self, group: usize) -> $crate::Result<&[strata_autograd::Var<T>]> {
            Ok(&self.core.group("group_params", group)?.params)
        }

        fn group_lr(&self, group: usize) -> $crate::Result<f64> {
            use $crate::optimizer::GroupConfig;
            Ok(self.core.group("group_lr", group)?.config.lr())
        }

        fn set_group_lr(&mut self, group: usize, lr: f64) -> $crate::Result<()> {
            self.core.set_group_lr(group, lr)
        }

        fn state_dict(&self) -> $crate::StateDict<T> {
            self.core.state_dict()
        }

        fn load_state_dict(&mut self, state: &$crate::StateDict<T>) -> $crate::Result<()> {
            self.core.load_state_dict(state)
        }
    };
}

pub(crate) use forward_core;

/// Implements the constructors and group accessors every optimizer shares over its `core`
/// field: `new` (one group), `with_groups`, `add_param_group` and `param_groups`, with their
/// docs. `$kind` names the optimizer in docs and errors as PyTorch does (`"RMSprop"`); the
/// `errors` lines document what `new` rejects, and the optional `note` lines add a paragraph
/// to the docs of `with_groups`.
macro_rules! group_constructors {
    (
        $optimizer:ident,
        $config:ident,
        $kind:literal,
        errors: [$($errors:literal),+ $(,)?]
        $(, note: [$($note:literal),+ $(,)?])? $(,)?
    ) => {
        impl<T: strata_tensor::Element> $optimizer<T> {
            #[doc = concat!($kind, " over `params`, one group.")]
            #[doc = ""]
            #[doc = "# Errors"]
            $(#[doc = $errors])+
            pub fn new(
                params: Vec<strata_autograd::Var<T>>,
                config: $config,
            ) -> $crate::Result<Self> {
                Self::with_groups($crate::optimizer::single_group($kind, params, config)?)
            }

            #[doc = concat!(
                $kind, " over several parameter groups, each with its own hyperparameters."
            )]
            $(#[doc = ""] $(#[doc = $note])+)?
            #[doc = ""]
            #[doc = "# Errors"]
            #[doc = concat!("As [`", stringify!($optimizer), "::new`], and if `groups` is empty.")]
            pub fn with_groups(
                groups: Vec<$crate::ParamGroup<T, $config>>,
            ) -> $crate::Result<Self> {
                Ok(Self {
                    core: $crate::optimizer::Core::new($kind, groups)?,
                })
            }

            /// Adds a parameter group (PyTorch's `add_param_group`).
            ///
            /// # Errors
            #[doc = concat!(
                "As [`", stringify!($optimizer), "::new`], also if a parameter is already in ",
                "another group."
            )]
            pub fn add_param_group(
                &mut self,
                group: $crate::ParamGroup<T, $config>,
            ) -> $crate::Result<()> {
                self.core.add_group(group)
            }

            /// The parameter groups and their hyperparameters.
            pub fn param_groups(&self) -> &[$crate::ParamGroup<T, $config>] {
                &self.core.groups
            }
        }
    };
}

pub(crate) use group_constructors;

/// A hyperparameter that can be written to and read from state metadata as text.
pub(crate) trait ConfigValue: Sized {
    fn to_text(&self) -> String;
    fn from_text(text: &str) -> Option<Self>;
}

impl ConfigValue for f64 {
    fn to_text(&self) -> String {
        self.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl ConfigValue for bool {
    fn to_text(&self) -> String {
        self.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl ConfigValue for (f64, f64) {
    fn to_text(&self) -> String {
        format!("{},{}", self.0, self.1)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (a, b) = text.split_once(',')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }
}

/// Implements `to_pairs` and `set_pair` of [`GroupConfig`] over the named fields.
macro_rules! config_pairs {
    ($($field:ident),* $(,)?) => {
        fn to_pairs(&self) -> Vec<(&'static str, String)> {
            use $crate::optimizer::ConfigValue;
            vec![$((stringify!($field), self.$field.to_text())),*]
        }

        fn set_pair(&mut self, name: &str, value: &str) -> Option<()> {
            use $crate::optimizer::ConfigValue;
            match name {
                $(stringify!($field) => self.$field = ConfigValue::from_text(value)?,)*
                _ => return None,
            }
            Some(())
        }
    };
}

pub(crate) use config_pairs;

/// The single group of an optimizer built from a parameter list; PyTorch rejects an empty one.
pub(crate) fn single_group<T: Element, C>(
    kind: &'static str,
    params: Vec<Var<T>>,
    config: C,
) -> Result<Vec<ParamGroup<T, C>>> {
    if params.is_empty() {
        return Err(OptimError::InvalidHyperparameter {
            op: kind,
            name: "params",
            value: "[]".into(),
            expected: "optimizer got an empty parameter list",
        });
    }
    Ok(vec![ParamGroup::new(params, config)])
}
