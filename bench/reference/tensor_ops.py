"""PyTorch reference timings for the tensor benchmarks that `cargo xtask bench` runs.

Each workload matches a criterion benchmark ID of strata-tensor (same sizes, f32, seeded
inputs). The script times one workload at a given thread count and prints one JSON line:

    {"workload": "gemm/512", "impl": "torch", "threads": 1, "median_s": 0.0012, "runs": 812}

usage: python3 tensor_ops.py --workload gemm/512 --threads 1 [--quick]
       python3 tensor_ops.py --list
"""

import argparse
import json
import statistics
import sys
import time

import torch


def gemm(m, k, n):
    """(m, k) @ (k, n): 2*m*k*n floating-point operations."""
    a = torch.randn(m, k)
    b = torch.randn(k, n)
    return lambda: torch.matmul(a, b)


def add(numel):
    """Elementwise sum of two vectors into a new one."""
    a = torch.randn(numel)
    b = torch.randn(numel)
    return lambda: a + b


def total(numel):
    """Sum of all elements to a scalar."""
    a = torch.randn(numel)
    return lambda: a.sum()


SIXTEEN_MI = 1 << 24

WORKLOADS = {
    "gemm/256": lambda: gemm(256, 256, 256),
    "gemm/512": lambda: gemm(512, 512, 512),
    "gemm/1024": lambda: gemm(1024, 1024, 1024),
    "gemm/2048": lambda: gemm(2048, 2048, 2048),
    "gemm/768x128x384": lambda: gemm(768, 128, 384),
    "gemm/768x512x128": lambda: gemm(768, 512, 128),
    "add/16M": lambda: add(SIXTEEN_MI),
    "sum/16M": lambda: total(SIXTEEN_MI),
}


def measure(run, warmup_s, target_s, min_runs):
    """Median wall time of one call, after warming up, over at least `min_runs` calls."""
    start = time.perf_counter()
    while time.perf_counter() - start < warmup_s:
        run()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < target_s:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", help="workload name, e.g. gemm/512")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--quick", action="store_true", help="shorter warm-up and timing")
    parser.add_argument("--list", action="store_true", help="print the workload names")
    args = parser.parse_args()

    if args.list:
        print("\n".join(WORKLOADS))
        return 0
    if args.workload not in WORKLOADS:
        print(f"unknown workload {args.workload!r}; try --list", file=sys.stderr)
        return 2

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    run = WORKLOADS[args.workload]()
    warmup_s, target_s, min_runs = (0.3, 1.0, 5) if args.quick else (1.0, 3.0, 10)
    with torch.inference_mode():
        median_s, runs = measure(run, warmup_s, target_s, min_runs)
    line = {
        "workload": args.workload,
        "impl": "torch",
        "threads": args.threads,
        "median_s": median_s,
        "runs": runs,
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
