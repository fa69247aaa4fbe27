"""The timing loop and command line shared by the PyTorch reference scripts of `cargo xtask bench`.

A script defines its workloads as a dict from criterion ID to a factory that builds the inputs
and returns a zero-argument `run`, and calls `main` with it. The command line is the one the
xtask runner (xtask/src/bench/mod.rs) uses:

    python3 <script>.py --workload <id> --threads 1,2 [--quick]
    python3 <script>.py --list

For each thread count it prints one JSON line, which the runner parses
(xtask/src/bench/parse.rs): {"workload", "impl": "torch", "threads", "median_s", "runs"}.
"""

import argparse
import json
import statistics
import sys
import time

import torch


def measure(run, warmup_s, target_s, min_runs):
    """Median seconds of `run` over at least `min_runs` calls and `target_s` seconds, after
    calling it for `warmup_s` seconds; returns (median, number of timed calls)."""
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


def main(workloads, timing, quick_timing, min_runs=5):
    """Parses the command line and times one workload of `workloads` per thread count.

    `timing` and `quick_timing` are (warmup_s, target_s) for a normal and a `--quick` run.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        print("\n".join(workloads))
        return
    if args.workload not in workloads:
        sys.exit(f"unknown workload {args.workload!r}; --list shows them")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        run = workloads[args.workload]()
        warm, target = quick_timing if args.quick else timing
        median, runs = measure(run, warm, target, min_runs)
        print(json.dumps({"workload": args.workload, "impl": "torch", "threads": threads,
                          "median_s": median, "runs": runs}))
