#!/usr/bin/env python3
"""PyTorch peer for mlxgo's QLoRA benchmark (pkg/lora BenchmarkQLoRAQwen05).

One LoRA training step on a Qwen2.5-0.5B-shaped model with random frozen
weights: rank-8 LoRA (scale 20) on the seven projections of the last 16
blocks, a batch of 4 x 256 input tokens, masked next-token cross-entropy,
backward, Adam. The frozen weights are dense float32: CPU PyTorch has no
4-bit matmul (bitsandbytes is CUDA-only), so this is the nearest "same step"
it can run. Bench-only dependency: Debian's python3-torch.

Prints one JSON line: tokens_per_sec, step_s, peak_rss_gb, torch, threads.
"""
import argparse
import json
import math
import os
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

D, LAYERS, H, HK, DH, I, V, EPS, THETA = 896, 24, 14, 2, 64, 4864, 151936, 1e-6, 1e6


class LoRALinear(nn.Module):
    def __init__(self, base, r, scale):
        super().__init__()
        self.base, self.scale = base, scale
        bound = 1 / math.sqrt(base.in_features)
        self.lora_a = nn.Parameter(torch.empty(base.in_features, r).uniform_(-bound, bound))
        self.lora_b = nn.Parameter(torch.zeros(r, base.out_features))

    def forward(self, x):
        return self.base(x) + self.scale * ((x @ self.lora_a) @ self.lora_b)


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


def rope(x, cos, sin):
    x1, x2 = x[..., : DH // 2], x[..., DH // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(D, H * DH)
        self.k_proj = nn.Linear(D, HK * DH)
        self.v_proj = nn.Linear(D, HK * DH)
        self.o_proj = nn.Linear(H * DH, D, bias=False)
        self.gate_proj = nn.Linear(D, I, bias=False)
        self.up_proj = nn.Linear(D, I, bias=False)
        self.down_proj = nn.Linear(I, D, bias=False)
        self.ln1, self.ln2 = RMSNorm(D), RMSNorm(D)

    def forward(self, x, cos, sin, mask):
        B, L, _ = x.shape
        h = self.ln1(x)
        q = self.q_proj(h).view(B, L, H, DH).transpose(1, 2)
        k = self.k_proj(h).view(B, L, HK, DH).transpose(1, 2)
        v = self.v_proj(h).view(B, L, HK, DH).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k, v = k.repeat_interleave(H // HK, 1), v.repeat_interleave(H // HK, 1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(DH) + mask, -1)
        x = x + self.o_proj((att @ v).transpose(1, 2).reshape(B, L, H * DH))
        h = self.ln2(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.layers = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = RMSNorm(D)

    def forward(self, ids):
        L = ids.shape[1]
        pos = torch.arange(L, dtype=torch.float32)
        inv = 1.0 / (THETA ** (torch.arange(0, DH, 2, dtype=torch.float32) / DH))
        f = torch.outer(pos, inv)
        cos, sin = torch.cat([f.cos(), f.cos()], -1), torch.cat([f.sin(), f.sin()], -1)
        mask = torch.full((L, L), float("-inf")).triu(1)
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x) @ self.embed.weight.T


def vm_hwm_gb():
    """Peak RSS of this process (VmHWM; ru_maxrss would include the
    parent's RSS inherited through fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all CPUs)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads or len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    m = Model()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.02)
    m.requires_grad_(False)
    for blk in m.layers[-a.layers :]:
        for name in ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]:
            setattr(blk, name, LoRALinear(getattr(blk, name), a.rank, 20.0))
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-5)
    batch = torch.randint(0, V, (a.batch, a.seq + 1))

    def step():
        logits = m(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, V).float(), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t0) / a.steps
    print(json.dumps({
        "tokens_per_sec": a.batch * a.seq / dt,
        "step_s": dt,
        "peak_rss_gb": vm_hwm_gb(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
