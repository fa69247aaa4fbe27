//! Shape operations: reshape, transpose, permute, squeeze, narrow, concat, stack, split, pad, repeat.
//!
//! Wherever PyTorch returns a view, so do we: the result shares storage with `self` and only
//! its shape, strides and offset differ. `reshape` is a view when the layout allows it and a
//! copy otherwise. The joining ops (`concat`, `stack`, `pad`, `repeat`) build new tensors and
//! live in [`join`].

mod join;
mod view;
