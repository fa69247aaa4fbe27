//! Indexing: index_select, gather, scatter_add, masked_fill, one_hot and embedding lookup.
//!
//! Positions come in an [`crate::IndexTensor`]; an index outside the axis it addresses gives
//! [`crate::TensorError::Index`], never a panic. The backward kernels autograd needs
//! (`index_add`, `scatter_add`, `embedding_backward`) are plain functions here too.

mod embedding;
mod select;
