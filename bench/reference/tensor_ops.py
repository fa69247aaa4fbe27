#!/usr/bin/env python3
"""Reference timings of the tensor benchmarks with NumPy and PyTorch.

Runs the same workloads as the criterion benches in crates/tensor/benches (same names) and
prints one JSON object per line:

    {"workload": "gemm/512", "impl": "numpy", "threads": 1, "median_s": 0.0019, "runs": 11}

Thread counts are fixed before the libraries start: each count runs in a child process with
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS set (and torch.set_num_threads), or
through threadpoolctl when it is installed.

Usage: tensor_ops.py [--threads 1,2] [--filter gemm/512] [--impl numpy,torch]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

GEMM_SHAPES = [
    ("gemm/256", 256, 256, 256),
    ("gemm/512", 512, 512, 512),
    ("gemm/1024", 1024, 1024, 1024),
    ("gemm/2048", 2048, 2048, 2048),
    ("gemm/768x128x384", 768, 128, 384),
    ("gemm/768x512x128", 768, 512, 128),
]
ELEMENTS_16M = 16 * 1024 * 1024
WORKLOADS = [name for name, *_ in GEMM_SHAPES] + ["add/16M", "sum/16M"]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def runs_for(seconds_per_run):
    """Enough runs for a stable median in about a second, between 5 and 51."""
    return max(5, min(51, int(1.0 / max(seconds_per_run, 1e-6))))


def measure(fn):
    """Median wall time of `fn` after one warm-up call; returns (median_s, runs)."""
    start = time.perf_counter()
    fn()
    runs = runs_for(time.perf_counter() - start)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), runs


def workloads(impl):
    """(name, callable) pairs for one implementation, inputs drawn with a fixed seed."""
    import numpy as np

    rng = np.random.default_rng(0)
    if impl == "torch":
        import torch

        convert = torch.from_numpy
    else:
        convert = lambda array: array  # noqa: E731
    for name, m, k, n in GEMM_SHAPES:
        a = convert(rng.standard_normal((m, k), dtype=np.float32))
        b = convert(rng.standard_normal((k, n), dtype=np.float32))
        yield name, (lambda a=a, b=b: a @ b)
    x = convert(rng.standard_normal(ELEMENTS_16M, dtype=np.float32))
    y = convert(rng.standard_normal(ELEMENTS_16M, dtype=np.float32))
    yield "add/16M", (lambda: x + y)
    yield "sum/16M", (lambda: x.sum())


def child(threads, impls, wanted):
    """Runs the workloads in this process, whose thread variables are already set."""
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads)
    except ImportError:
        pass
    if "torch" in impls:
        import torch

        torch.set_num_threads(threads)
    for impl in impls:
        for name, fn in workloads(impl):
            if wanted and name not in wanted:
                continue
            median_s, runs = measure(fn)
            record = {
                "workload": name,
                "impl": impl,
                "threads": threads,
                "median_s": median_s,
                "runs": runs,
            }
            print(json.dumps(record), flush=True)
    if limiter is not None:
        limiter.restore_original_limits()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--filter", default="", help="comma-separated workload names")
    parser.add_argument("--workload", dest="filter", help="one workload name (as --filter)")
    parser.add_argument("--quick", action="store_true", help="accepted for the runner; no effect")
    parser.add_argument("--impl", default="numpy,torch", help="numpy, torch or both")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    impls = [i for i in args.impl.split(",") if i]
    wanted = {w for w in args.filter.split(",") if w}
    unknown = wanted - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; known: {WORKLOADS}")
    if args.child is not None:
        child(args.child, impls, wanted)
        return
    for threads in [int(t) for t in args.threads.split(",") if t]:
        env = dict(os.environ, **{var: str(threads) for var in THREAD_VARS})
        command = [sys.executable, __file__, "--child", str(threads), "--impl", args.impl]
        if args.filter:
            command += ["--filter", args.filter]
        subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
