//! Shape operations: reshape, transpose, permute, squeeze, narrow, concat, stack, split, pad, repeat.
