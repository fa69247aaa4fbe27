//! Reductions over any set of axes, and softmax / log_softmax with their backward kernels.
