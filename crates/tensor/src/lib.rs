//! N-dimensional tensors for deep learning, on ndarray.
//!
//! [`Tensor<T>`] holds `f32` or `f64` elements in shared, copy-on-write storage; views
//! (transpose, permute, slices, broadcasts) share it without copying. Operations follow
//! PyTorch's names and NumPy's broadcasting rules, fallible ones return [`Result`] with a
//! [`TensorError`] that names the op and the shapes involved, and the kernels that
//! backpropagation needs (convolution and pooling gradients, softmax backward) are plain
//! functions here, so they are usable without the autograd crate.
//!
//! Memory: on glibc, the first tensor built raises the C allocator's mmap and trim
//! thresholds so that memory freed by one training step is reused by the next instead of
//! being returned to the kernel and faulted in again, and large outputs ask for transparent
//! huge pages; set [`KEEP_FREED_MEMORY_VAR`] (`STRATA_KEEP_FREED_MEMORY`) to `0` to opt out.
//!
//! ```
//! use strata_tensor::{Generator, Tensor};
//!
//! let mut gen = Generator::new(0);
//! let x: Tensor<f32> = gen.randn(&[4, 3]);
//! let w = Tensor::ones(&[3, 2]);
//! let y = x.matmul(&w)?.relu();
//! assert_eq!(y.shape(), &[4, 2]);
//! # Ok::<(), strata_tensor::TensorError>(())
//! ```

mod conv;
mod creation;
mod element;
mod elementwise;
mod error;
mod fast_math;
mod index;
mod index_tensor;
pub mod kernels;
mod linalg;
mod memory;
mod norm;
mod ops;
pub mod parallel;
mod pool;
mod random;
mod reduce;
mod shape;
mod shape_ops;
mod tensor;

pub use conv::{
    conv1d, conv1d_backward_input, conv1d_backward_weight, conv2d, conv2d_backward_input,
    conv2d_backward_weight, Conv1dParams, Conv2dParams,
};
pub use element::{DType, Element};
pub use error::{Result, TensorError};
pub use index_tensor::IndexTensor;
pub use memory::KEEP_FREED_MEMORY_VAR;
pub use norm::{layer_norm_backward, LayerNormGrads, LayerNormOutput};
pub use pool::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d, avg_pool2d_backward, max_pool2d,
    max_pool2d_backward, AvgPool2dParams, MaxPool2dParams,
};
pub use random::Generator;
pub use reduce::{log_softmax_backward, softmax_backward};
pub use shape::{
    broadcast_shapes, contiguous_strides, normalize_dim, normalize_dims, normalize_insert_dim,
};
pub use tensor::Tensor;
