//! Attention over `strata-autograd`: scaled dot-product and multi-head attention, masks,
//! positional encodings and a KV cache.
