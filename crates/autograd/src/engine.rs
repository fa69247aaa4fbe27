//! The backward pass: reverse topological order over the recorded graph.

use std::collections::HashMap;

use strata_tensor::{Element, Tensor};

use crate::error::{AutogradError, Result};
use crate::mode::{forward_anomaly, is_anomaly_enabled, set_grad_enabled};
use crate::var::Var;

/// Options of a backward pass, with PyTorch's defaults (both off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackwardOptions {
    /// Keep the graph after backward so that it can be walked again. Off: each node's record
    /// (its inputs and saved values) is freed as soon as its gradient has been sent back.
    pub retain_graph: bool,
    /// Record the backward pass itself, so that the gradients can be differentiated again
    /// (Hessian-vector products, gradient penalties). Implies `retain_graph`.
    pub create_graph: bool,
}

impl<T: Element> Var<T> {
    /// Backpropagates from a one-element output, adding `d self / d leaf` into the gradient
    /// of every leaf that requires one.
    ///
    /// # Errors
    /// [`AutogradError::NotScalar`] if `self` has more than one element;
    /// [`AutogradError::GraphFreed`] if an earlier backward freed part of the graph;
    /// [`AutogradError::Anomaly`] in anomaly mode.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(AutogradError::NotScalar {
                shape: self.shape().to_vec(),
            });
        }
        self.backward_with(&Tensor::ones(self.shape()), BackwardOptions::default())
    }

    /// Backpropagates a given output gradient (PyTorch's `y.backward(grad)`).
    ///
    /// # Errors
    /// [`AutogradError::GradShape`] if `grad`'s shape differs from `self`'s, and the errors of
    /// [`Var::backward`].
    pub fn backward_with(&self, grad: &Tensor<T>, options: BackwardOptions) -> Result<()> {
        if grad.shape() != self.shape() {
            return Err(AutogradError::GradShape {
                output: self.shape().to_vec(),
                grad: grad.shape().to_vec(),
            });
        }
        run_backward(&[(self.clone(), Var::new(grad.clone()))], None, options).map(|_| ())
    }
}

/// Gradients of `outputs` with respect to `inputs`, returned rather than accumulated into
/// `.grad()` (PyTorch's `torch.autograd.grad`).
///
/// `grad_outputs` gives the gradient of each output; `None` means ones, which needs each output
/// to hold one element. With `create_graph`, the returned gradients carry a graph and can be
/// differentiated again.
///
/// # Errors
/// [`AutogradError::Unreachable`] if an input does not influence any output, the shape errors
/// of [`Var::backward_with`], and [`AutogradError::NotScalar`] for a non-scalar output without
/// a gradient.
///
/// ```
/// # use strata_autograd::{grad, BackwardOptions, Var};
/// # use strata_tensor::Tensor;
/// let x = Var::parameter(Tensor::from_vec(vec![0.5f64], &[1])?);
/// let y = x.tanh();
/// let opts = BackwardOptions { create_graph: true, ..Default::default() };
/// let dy = grad(&[y], &[x.clone()], None, opts)?.remove(0);    // 1 - tanh^2
/// let d2y = grad(&[dy.sum_all()], &[x], None, Default::default())?.remove(0);
/// let t = 0.5f64.tanh();
/// assert!((d2y.value().item()? - (-2.0 * t * (1.0 - t * t))).abs() < 1e-12);
/// # Ok::<(), strata_autograd::AutogradError>(())
/// ```
pub fn grad<T: Element>(
    outputs: &[Var<T>],
    inputs: &[Var<T>],
    grad_outputs: Option<&[Tensor<T>]>,
    options: BackwardOptions,
) -> Result<Vec<Var<T>>> {
    let mut roots = Vec::with_capacity(outputs.len());
    for (i, out) in outputs.iter().enumerate() {
        let g = match grad_outputs {
            Some(gs) => {
                let g = gs.get(i).ok_or_else(|| AutogradError::GradShape {
                    output: out.shape().to_vec(),
                    grad: Vec::new(),
                })?;
                if g.shape() != out.shape() {
                    return Err(AutogradError::GradShape {
                        output: out.shape().to_vec(),
                        grad: g.shape().to_vec(),
                    });
                }
                g.clone()
            }
            None if out.numel() == 1 => Tensor::ones(out.shape()),
            None => {
                return Err(AutogradError::NotScalar {
                    shape: out.shape().to_vec(),
                })
            }
        };
        roots.push((out.clone(), Var::new(g)));
    }
    let found = run_backward(&roots, Some(inputs), options)?.expect("bug: targets were given");
    found
        .into_iter()
        .enumerate()
        .map(|(index, g)| g.ok_or(AutogradError::Unreachable { index }))
        .collect()
}

/// Like [`grad`] with ones as output gradients, giving `None` for unreachable inputs.
pub(crate) fn grad_allow_unused<T: Element>(
    outputs: &[Var<T>],
    inputs: &[Var<T>],
    options: BackwardOptions,
) -> Result<Vec<Option<Var<T>>>> {
    let roots: Vec<_> = outputs
        .iter()
        .map(|o| (o.clone(), Var::new(Tensor::ones(o.shape()))))
        .collect();
    Ok(run_backward(&roots, Some(inputs), options)?.expect("bug: targets were given"))
}

/// Walks the graph under `roots` in reverse topological order.
///
/// With `targets`, returns the total gradient reaching each target and leaves `.grad()`
/// untouched; without, adds the gradients of leaves into their `.grad()`.
fn run_backward<T: Element>(
    roots: &[(Var<T>, Var<T>)],
    targets: Option<&[Var<T>]>,
    options: BackwardOptions,
) -> Result<Option<Vec<Option<Var<T>>>>> {
    if let Some(op) = forward_anomaly().filter(|_| is_anomaly_enabled()) {
        return Err(AutogradError::Anomaly {
            op,
            phase: "forward",
        });
    }
    let retain = options.retain_graph || options.create_graph;
    let _mode = set_grad_enabled(options.create_graph);
    let order = topological_order(roots.iter().map(|(v, _)| v));
    let target_ids: HashMap<usize, usize> = targets
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id(), i))
        .collect();
    let mut found: Vec<Option<Var<T>>> = vec![None; targets.map_or(0, <[_]>::len)];

    let mut pending: HashMap<usize, Var<T>> = HashMap::new();
    for (root, g) in roots {
        if root.requires_grad() {
            accumulate(&mut pending, root.id(), g.clone())?;
        }
    }
    for var in order.iter().rev() {
        let Some(grad) = pending.remove(&var.id()) else {
            continue;
        };
        if let Some(&i) = target_ids.get(&var.id()) {
            found[i] = Some(grad.clone());
        }
        if var.is_leaf() {
            if targets.is_none() {
                let mut slot = var.grad_slot();
                *slot = Some(match slot.take() {
                    Some(old) => old.add(&grad)?,
                    None => grad,
                });
            }
            continue;
        }
        let (inputs, input_grads) = {
            let mut slot = var.node.grad_fn.lock().unwrap_or_else(|p| p.into_inner());
            let freed = || AutogradError::GraphFreed { op: var.op_name() };
            if retain {
                let record = slot.as_ref().ok_or_else(freed)?;
                (
                    record.inputs.clone(),
                    record.op.backward(&record.inputs, var, &grad)?,
                )
            } else {
                let record = slot.take().ok_or_else(freed)?;
                drop(slot);
                let grads = record.op.backward(&record.inputs, var, &grad)?;
                (record.inputs, grads)
            }
        };
        for (input, g) in inputs.iter().zip(input_grads) {
            let Some(g) = g else { continue };
            if !input.requires_grad() {
                continue;
            }
            debug_assert_eq!(
                g.shape(),
                input.shape(),
                "bug: `{}` gradient shape",
                var.op_name()
            );
            if is_anomaly_enabled() && g.value().view().iter().any(|x| !x.is_finite()) {
                return Err(AutogradError::Anomaly {
                    op: var.op_name(),
                    phase: "backward",
                });
            }
            accumulate(&mut pending, input.id(), g)?;
        }
    }
    Ok(targets.map(|_| found))
}

fn accumulate<T: Element>(
    pending: &mut HashMap<usize, Var<T>>,
    id: usize,
    g: Var<T>,
) -> Result<()> {
    let total = match pending.remove(&id) {
        Some(old) => old.add(&g)?,
        None => g,
    };
    pending.insert(id, total);
    Ok(())
}

/// Every variable that requires a gradient and is reachable from `roots`, inputs before the
/// ops that use them. Iterative, so long chains do not overflow the stack.
fn topological_order<'a, T: Element + 'a>(roots: impl Iterator<Item = &'a Var<T>>) -> Vec<Var<T>> {
    let mut order = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(Var<T>, bool)> = Vec::new();
    for root in roots {
        if root.requires_grad() {
            stack.push((root.clone(), false));
        }
    }
    while let Some((var, expanded)) = stack.pop() {
        if expanded {
            order.push(var);
            continue;
        }
        if !seen.insert(var.id()) {
            continue;
        }
        let inputs: Vec<Var<T>> = var
            .node
            .grad_fn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|r| {
                r.inputs
                    .iter()
                    .filter(|v| v.requires_grad())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        stack.push((var, true));
        for input in inputs {
            if !seen.contains(&input.id()) {
                stack.push((input, false));
            }
        }
    }
    order
}
