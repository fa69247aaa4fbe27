//! Convolutions (conv1d, conv2d) as im2col plus GEMM, with input and weight gradients.
