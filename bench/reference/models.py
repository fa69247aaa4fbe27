"""PyTorch reference timings for the model benchmarks that `cargo xtask bench` runs.

Workloads match the criterion IDs of crates/models/benches/{train,generate,attention}.rs, with
the same sizes, optimizers and seeds (the exact random draws differ: each side seeds its own
generator). The models are written here after nanoGPT's layout, not imported. Prints one JSON
line per thread count: {"workload", "impl": "torch", "threads", "median_s", "runs"}; the timing
loop and command line are those of harness.py.

- train/gpt_char_b12: char GPT (vocab 65, 4 layers, 4 heads, width 128, context 64, no bias,
  no dropout, pre-LayerNorm, GELU MLP 4x, learned positions, tied embeddings), batch 12;
  AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on 2-D weights only, clip 1.0.
- train/lenet_b64: LeNet-5, batch (64, 1, 32, 32) in [0, 1); Adam 1e-3.
- train/lstm_char_b32: embedding 64, LSTM 2 x 256, linear head; context 64, batch 32; Adam 2e-3.
- generate/gpt_char_500: 500 tokens from the char GPT (random weights), nanoGPT's `generate`
  with full recompute of the cropped context each token (no KV cache).
- attention/sdpa_causal_{256,1024,4096}: F.scaled_dot_product_attention(is_causal=True) forward
  and backward at (1, 8, seq, 64).
- conv2d/{lenet1,lenet2,c64_3x3}_fwd_bwd: F.conv2d forward, then the input, weight and bias
  gradients, batch 64: 1x32x32 -> 6 (5x5), 6x14x14 -> 16 (5x5), 64x32x32 -> 64 (3x3, padding 1).

usage: python3 models.py --workload train/gpt_char_b12 --threads 1
       python3 models.py --list
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import harness

VOCAB = 65
CONTEXT = 64


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.n_head = n_head

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        shape = (b, t, self.n_head, c // self.n_head)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=False)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd, bias=False),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd, bias=False),
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt(nn.Module):
    """nanoGPT's GPT: tied head, GPT-2 initialisation."""

    def __init__(self, n_layer=4, n_head=4, n_embd=128):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, n_embd)
        self.wpe = nn.Embedding(CONTEXT, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        self.lm_head = nn.Linear(n_embd, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() == 2:
                residual = name.endswith(("attn.c_proj.weight", "mlp.2.weight"))
                std = 0.02 / math.sqrt(2 * n_layer) if residual else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets=None):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :])
        logits = self.lm_head(x)
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))


def tokens(batch, g):
    return torch.randint(0, VOCAB, (batch, CONTEXT), generator=g)


def gpt_step():
    g = torch.Generator().manual_seed(1337)
    torch.manual_seed(1337)
    model = Gpt()
    x, y = tokens(12, g), tokens(12, g)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))

    def step():
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def lenet_step():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = LeNet()
    x = torch.rand(64, 1, 32, 32, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


class CharLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
        self.head = nn.Linear(256, VOCAB)

    def forward(self, x, y):
        out, _ = self.lstm(self.embed(x))
        return F.cross_entropy(self.head(out).reshape(-1, VOCAB), y.reshape(-1))


def lstm_step():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = CharLstm()
    x, y = tokens(32, g), tokens(32, g)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def step():
        model(x, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def generate():
    torch.manual_seed(1337)
    model = Gpt().eval()
    g = torch.Generator().manual_seed(0)

    @torch.no_grad()
    def run():
        idx = torch.zeros((1, 1), dtype=torch.long)
        for _ in range(500):
            logits = model(idx[:, -CONTEXT:])[:, -1, :]
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, 1, generator=g)), dim=1)
        return idx

    return run


def attention(seq):
    def make():
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 8, seq, 64, generator=g).requires_grad_() for _ in range(3))
        grad = torch.randn(1, 8, seq, 64, generator=g)

        def step():
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)
            q.grad = k.grad = v.grad = None

        return step

    return make


def conv(input_shape, weight_shape, padding):
    def make():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(*input_shape, generator=g).requires_grad_()
        w = torch.randn(*weight_shape, generator=g).requires_grad_()
        b = torch.randn(weight_shape[0], generator=g).requires_grad_()
        out_shape = F.conv2d(x, w, b, padding=padding).shape
        grad = torch.randn(*out_shape, generator=g)

        def step():
            F.conv2d(x, w, b, padding=padding).backward(grad)
            x.grad = w.grad = b.grad = None

        return step

    return make


WORKLOADS = {
    "train/gpt_char_b12": gpt_step,
    "train/lenet_b64": lenet_step,
    "train/lstm_char_b32": lstm_step,
    "generate/gpt_char_500": generate,
    "attention/sdpa_causal_256": attention(256),
    "attention/sdpa_causal_1024": attention(1024),
    "attention/sdpa_causal_4096": attention(4096),
    "conv2d/lenet1_fwd_bwd": conv((64, 1, 32, 32), (6, 1, 5, 5), 0),
    "conv2d/lenet2_fwd_bwd": conv((64, 6, 14, 14), (16, 6, 5, 5), 0),
    "conv2d/c64_3x3_fwd_bwd": conv((64, 64, 32, 32), (64, 64, 3, 3), 1),
}


if __name__ == "__main__":
    harness.main(WORKLOADS, timing=(0.5, 3.0), quick_timing=(0.5, 2.0))
