"""PyTorch reference timings for the autograd benchmarks that `cargo xtask bench` runs.

Workloads match the criterion IDs of crates/autograd/benches/autograd.rs. Prints one JSON line per
thread count: {"workload", "impl": "torch", "threads", "median_s", "runs"}.

usage: python3 autograd.py --workload autograd/add_2x2 --threads 1
       python3 autograd.py --list
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def add_2x2():
    a = torch.ones(2, 2, requires_grad=True)
    b = torch.ones(2, 2, requires_grad=True)
    return lambda: a + b


def mlp():
    g = torch.Generator().manual_seed(0)
    sizes = [784, 256, 256, 10]
    params = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        bound = fan_in ** -0.5
        w = (torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=g) * 2 - 1) * bound
        params.append((w.requires_grad_(), b.requires_grad_()))
    x = torch.randn(64, 784, generator=g)
    target = torch.randint(0, 10, (64,), generator=g)

    def step():
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i + 1 < len(params):
                h = torch.relu(h)
        F.cross_entropy(h, target).backward()
        for w, b in params:
            w.grad = None
            b.grad = None

    return step


WORKLOADS = {
    "autograd/add_2x2": add_2x2,
    "autograd/mlp_784_256_256_10_b64": mlp,
}


def measure(run, warmup_s, target_s, min_runs):
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        print("\n".join(WORKLOADS))
        return
    if args.workload not in WORKLOADS:
        sys.exit(f"unknown workload {args.workload!r}; --list shows them")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        run = WORKLOADS[args.workload]()
        warm, target = (0.2, 1.0) if args.quick else (1.0, 3.0)
        median, runs = measure(run, warm, target, 5)
        print(json.dumps({"workload": args.workload, "impl": "torch", "threads": threads,
                          "median_s": median, "runs": runs}))


if __name__ == "__main__":
    main()
