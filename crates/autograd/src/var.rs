//! `Var`: a tensor that remembers how it was made, so gradients can flow back through it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use strata_tensor::{Element, Tensor};

use crate::error::Result;
use crate::mode::{is_anomaly_enabled, is_grad_enabled, note_forward_anomaly};

static LIVE_NODES: AtomicUsize = AtomicUsize::new(0);

/// The number of graph nodes currently alive in the process, leaves included.
///
/// Training code can watch it to prove that graphs are freed: it should return to the same
/// value after every step.
pub fn live_nodes() -> usize {
    LIVE_NODES.load(Ordering::Relaxed)
}

/// How one recorded op sends gradients back to its inputs.
///
/// The derivatives table generates one implementation per op; implement it yourself to add a
/// custom differentiable function (PyTorch's `torch.autograd.Function`) and record it with
/// [`Var::from_op`]. The rules are written with `Var` operations, so when backward runs with
/// `create_graph` they are recorded too and can be differentiated again.
pub trait Backward<T: Element>: Send + Sync {
    /// The op's name, used in errors and anomaly reports.
    fn name(&self) -> &'static str;

    /// Gradients for each input, given the gradient of the output.
    ///
    /// `inputs` are the `Var` inputs in the order they were recorded, `result` is the output
    /// of the op, `grad` the gradient flowing into it (same shape as `result`). Returns one entry
    /// per input, with the input's shape, or `None` where the input gets no gradient.
    ///
    /// # Errors
    /// Any error of the ops the rule uses.
    fn backward(
        &self,
        inputs: &[Var<T>],
        result: &Var<T>,
        grad: &Var<T>,
    ) -> Result<Vec<Option<Var<T>>>>;
}

/// The backward record of a non-leaf node.
pub(crate) struct GradFn<T: Element> {
    pub(crate) op: Box<dyn Backward<T>>,
    pub(crate) inputs: Vec<Var<T>>,
}

pub(crate) struct Node<T: Element> {
    /// Behind a lock so that an optimizer can update a shared parameter in place.
    pub(crate) value: RwLock<Tensor<T>>,
    /// The shape of `value`, which never changes.
    pub(crate) shape: Vec<usize>,
    pub(crate) requires_grad: AtomicBool,
    /// `None` for leaves, and for non-leaves once backward freed their graph.
    pub(crate) grad_fn: Mutex<Option<GradFn<T>>>,
    pub(crate) op_name: &'static str,
    /// Accumulated gradient; only leaves keep one.
    pub(crate) grad: Mutex<Option<Var<T>>>,
}

impl<T: Element> Drop for Node<T> {
    fn drop(&mut self) {
        LIVE_NODES.fetch_sub(1, Ordering::Relaxed);
        // Drop long input chains iteratively: a recursive drop of a 10,000-op chain would
        // overflow the stack.
        let mut pending: Vec<Var<T>> = match self.grad_fn.get_mut() {
            Ok(slot) => slot.take().map(|g| g.inputs).unwrap_or_default(),
            Err(poisoned) => poisoned
                .into_inner()
                .take()
                .map(|g| g.inputs)
                .unwrap_or_default(),
        };
        while let Some(var) = pending.pop() {
            if let Ok(mut node) = Arc::try_unwrap(var.node) {
                if let Some(g) = node.grad_fn.get_mut().ok().and_then(Option::take) {
                    pending.extend(g.inputs);
                }
            }
        }
    }
}

/// A tensor in a differentiable computation (PyTorch's `Tensor` with autograd).
///
/// Each op on a `Var` computes its value at once and, when some input requires a gradient and
/// recording is on, remembers its inputs and its backward rule. [`Var::backward`] then walks
/// that graph from the output back to the leaves and adds each leaf's gradient into
/// [`Var::grad`]. Cloning is cheap (a reference count), and a `Var` can be sent between threads.
///
/// ```
/// # use strata_autograd::Var;
/// # use strata_tensor::Tensor;
/// let x = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3])?);
/// let y = x.mul(&x)?.sum_all();      // y = sum x^2
/// y.backward()?;
/// assert_eq!(x.grad().unwrap().to_vec(), vec![2.0, 4.0, 6.0]);
/// # Ok::<(), strata_autograd::AutogradError>(())
/// ```
pub struct Var<T: Element> {
    pub(crate) node: Arc<Node<T>>,
}

impl<T: Element> Clone for Var<T> {
    fn clone(&self) -> Self {
        Self {
            node: Arc::clone(&self.node),
        }
    }
}

impl<T: Element> Var<T> {
    fn from_node(
        value: Tensor<T>,
        requires_grad: bool,
        grad_fn: Option<GradFn<T>>,
        op: &'static str,
    ) -> Self {
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        Self {
            node: Arc::new(Node {
                shape: value.shape().to_vec(),
                value: RwLock::new(value),
                requires_grad: AtomicBool::new(requires_grad),
                grad_fn: Mutex::new(grad_fn),
                op_name: op,
                grad: Mutex::new(None),
            }),
        }
    }

    /// A constant: a leaf that does not require a gradient.
    pub fn new(value: Tensor<T>) -> Self {
        Self::from_node(value, false, None, "leaf")
    }

    /// A parameter: a leaf that requires a gradient and accumulates it in [`Var::grad`].
    pub fn parameter(value: Tensor<T>) -> Self {
        Self::from_node(value, true, None, "leaf")
    }

    /// Records the output of a custom op.
    ///
    /// When recording is on and some input requires a gradient, the result remembers `op` and
    /// `inputs` for backward; otherwise it is a constant and `op` is dropped.
    pub fn from_op(value: Tensor<T>, op: impl Backward<T> + 'static, inputs: Vec<Var<T>>) -> Self {
        let name = op.name();
        Self::record(value, name, inputs, move || Box::new(op))
    }

    /// Records an op's output; `make` builds the backward rule only when it is needed.
    pub(crate) fn record(
        value: Tensor<T>,
        name: &'static str,
        inputs: Vec<Var<T>>,
        make: impl FnOnce() -> Box<dyn Backward<T>>,
    ) -> Self {
        if is_anomaly_enabled() && value.view().iter().any(|x| !x.is_finite()) {
            note_forward_anomaly(name);
        }
        if is_grad_enabled() && inputs.iter().any(Var::requires_grad) {
            Self::from_node(value, true, Some(GradFn { op: make(), inputs }), name)
        } else {
            Self::from_node(value, false, None, name)
        }
    }

    /// The value of this variable (a cheap handle sharing its storage).
    pub fn value(&self) -> Tensor<T> {
        self.node
            .value
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The shape of the value.
    pub fn shape(&self) -> &[usize] {
        &self.node.shape
    }

    /// The number of dimensions of the value.
    pub fn ndim(&self) -> usize {
        self.node.shape.len()
    }

    /// The number of elements of the value.
    pub fn numel(&self) -> usize {
        self.node.shape.iter().product()
    }

    /// The name of the op that made this variable (`"leaf"` for leaves).
    pub fn op_name(&self) -> &'static str {
        self.node.op_name
    }

    /// Whether gradients flow to or through this variable.
    pub fn requires_grad(&self) -> bool {
        self.node.requires_grad.load(Ordering::Relaxed)
    }

    /// Whether this variable was made by the user rather than recorded from an op.
    pub fn is_leaf(&self) -> bool {
        self.op_name() == "leaf"
    }

    /// Turns gradient tracking of a leaf on or off (PyTorch's `requires_grad_`).
    ///
    /// # Errors
    /// [`strata_tensor::TensorError::InvalidArgument`] for a non-leaf: its requirement follows
    /// from its inputs; use [`Var::detach`] to cut it from the graph.
    pub fn set_requires_grad(&self, requires_grad: bool) -> Result<()> {
        self.check_leaf("set_requires_grad")?;
        self.node
            .requires_grad
            .store(requires_grad, Ordering::Relaxed);
        Ok(())
    }

    /// The gradient accumulated in this leaf by backward passes, if any.
    pub fn grad(&self) -> Option<Tensor<T>> {
        self.grad_slot().as_ref().map(|g| g.value().clone())
    }

    /// The accumulated gradient as a variable: with `create_graph` it carries its own graph and
    /// can be differentiated again.
    pub fn grad_var(&self) -> Option<Var<T>> {
        self.grad_slot().clone()
    }

    /// Clears the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        *self.grad_slot() = None;
    }

    /// Replaces the accumulated gradient, e.g. after clipping it.
    pub fn set_grad(&self, grad: Option<Tensor<T>>) {
        *self.grad_slot() = grad.map(Var::new);
    }

    pub(crate) fn grad_slot(&self) -> MutexGuard<'_, Option<Var<T>>> {
        self.node.grad.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A constant sharing this variable's value, cut from the graph (PyTorch's `detach`).
    pub fn detach(&self) -> Var<T> {
        Var::new(self.value())
    }

    /// Changes the elements of a leaf in place, keeping its identity and gradient: what an
    /// optimizer step does to a parameter (PyTorch's in-place update under `no_grad`).
    ///
    /// `f` gets the elements in row-major order. They are updated in place unless a graph still
    /// holds the old value, which then keeps its own copy (copy-on-write).
    ///
    /// # Errors
    /// [`strata_tensor::TensorError::InvalidArgument`] for a non-leaf.
    pub fn update(&self, f: impl FnOnce(&mut [T])) -> Result<()> {
        self.check_leaf("update")?;
        let mut value = self.node.value.write().unwrap_or_else(|p| p.into_inner());
        f(value.data_mut());
        Ok(())
    }

    /// Replaces the value of a leaf, keeping its identity and gradient (loading weights).
    ///
    /// # Errors
    /// [`strata_tensor::TensorError::ShapeMismatch`] if the shape differs, and
    /// [`strata_tensor::TensorError::InvalidArgument`] for a non-leaf.
    pub fn set_value(&self, value: Tensor<T>) -> Result<()> {
        self.check_leaf("set_value")?;
        if value.shape() != self.shape() {
            return Err(strata_tensor::TensorError::ShapeMismatch {
                op: "set_value",
                what: "the new value has another shape".into(),
                lhs: self.shape().to_vec(),
                rhs: value.shape().to_vec(),
            }
            .into());
        }
        *self.node.value.write().unwrap_or_else(|p| p.into_inner()) = value;
        Ok(())
    }

    fn check_leaf(&self, op: &'static str) -> Result<()> {
        if self.is_leaf() {
            Ok(())
        } else {
            Err(strata_tensor::TensorError::InvalidArgument {
                op,
                reason: format!("`{}` output is not a leaf", self.op_name()),
            }
            .into())
        }
    }

    /// Whether two handles refer to the same variable.
    pub fn same_as(&self, other: &Var<T>) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }

    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.node) as usize
    }
}

impl<T: Element> fmt::Debug for Var<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Var")
            .field("op", &self.op_name())
            .field("requires_grad", &self.requires_grad())
            .field("value", &self.value())
            .finish()
    }
}
