//! Linear algebra: matmul with numpy.matmul semantics, outer and dot, on a tuned GEMM.
