"""BatchNorm + LeakyReLU of the paper-size decoder, eager against torch.compile (docs/SPEED.md).

Times forward and backward of one BatchNorm2d (training mode, float32 parameters) + LeakyReLU(0.2)
block on bf16 channels_last activations of the decoder's shapes (batch 32 × 8 frames = 256):

    PYTHONPATH=src python benchmarks/norm_act.py --threads 1
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


class NormAct(torch.nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(x), 0.2)


def timed(m: torch.nn.Module, x: torch.Tensor, g: torch.Tensor, reps: int, warmup: int = 3) -> tuple[float, float]:
    """Median forward and backward milliseconds over ``reps`` calls after ``warmup``."""
    fwd, bwd = [], []
    for i in range(reps + warmup):
        t0 = time.perf_counter()
        y = m(x)
        t1 = time.perf_counter()
        y.backward(g)
        t2 = time.perf_counter()
        if i >= warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    return sorted(fwd)[reps // 2] * 1e3, sorted(bwd)[reps // 2] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256, help="frames per call (batch × sequence length)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.batch} frames, bf16 channels_last")
    print("| map | eager fwd / bwd ms | compiled fwd / bwd ms | compile s |")
    print("|---|---|---|---|")
    for c, side in [(256, 4), (128, 8), (64, 16), (32, 32)]:
        g0 = torch.Generator().manual_seed(0)
        x = torch.randn(args.batch, c, side, side, generator=g0).contiguous(memory_format=torch.channels_last)
        x = x.bfloat16().requires_grad_(True)
        g = torch.randn(x.shape, generator=g0).bfloat16().contiguous(memory_format=torch.channels_last)
        m = NormAct(c)
        ef, eb = timed(m, x, g, args.reps)
        t0 = time.perf_counter()
        mc = torch.compile(m)
        timed(mc, x, g, 1, warmup=0)
        tc = time.perf_counter() - t0
        cf, cb = timed(mc, x, g, args.reps)
        print(f"| {c}×{side}×{side} | {ef:.2f} / {eb:.2f} | {cf:.2f} / {cb:.2f} | {tc:.0f} |")


if __name__ == "__main__":
    main()
