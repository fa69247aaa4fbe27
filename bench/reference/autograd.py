"""PyTorch reference timings for the autograd benchmarks that `cargo xtask bench` runs.

Workloads match the criterion IDs of crates/autograd/benches/autograd.rs. Prints one JSON line per
thread count: {"workload", "impl": "torch", "threads", "median_s", "runs"}; the timing loop and
command line are those of harness.py.

usage: python3 autograd.py --workload autograd/add_2x2 --threads 1
       python3 autograd.py --list
"""

import torch
import torch.nn.functional as F

import harness


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


if __name__ == "__main__":
    harness.main(WORKLOADS, timing=(1.0, 3.0), quick_timing=(0.2, 1.0))
