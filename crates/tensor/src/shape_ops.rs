//! Shape operations: reshape, transpose, permute, squeeze, narrow, concat, stack, split, pad and
//! repeat.
//!
//! Wherever PyTorch returns a view, so do we: the result shares storage with `self` and only
//! its shape, strides and offset differ. `reshape` is a view when the layout allows it and a
//! copy otherwise. Whole-tensor views live in `view`, views of part of a dim (`narrow`,
//! `slice`, `split`, `chunk`) in `slicing`, and the ops that build new tensors (`concat`,
//! `stack`, `pad`, `repeat`) in `join`.

mod join;
mod slicing;
mod view;
