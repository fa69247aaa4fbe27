//! Pooling (max_pool2d with indices, avg_pool2d) and the backward kernels of both.
