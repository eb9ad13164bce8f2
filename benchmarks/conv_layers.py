"""Each convolution of the Sprites frame networks alone: forward, input gradient, weight gradient.

    PYTHONPATH=src python benchmarks/conv_layers.py --width 32 --threads 1

For every stride-2 layer of the 64×64 encoder and decoder (not the 4×4 ↔ k layers) at conv width ``--width`` (32 = paper size) and
``--frames`` frames (batch 32 × 8 = 256), in bf16 channels_last as ``skd train`` runs them on a
CPU with bf16 instructions (``--dtype fp32``: float32, as on the others), it times oneDNN's forward and its two backward products
(``aten::convolution_backward`` with one output each), and the weight gradient computed instead
as one GEMM over explicit patches (im2col: the windows copied into a (frames·positions,
k·k·channels) matrix, then ``gradᵀ @ patches``). The best of ``--reps`` is printed per cell and
layers alternate within each repetition, so a shared machine's load falls on all alike. The GEMM
path's result is checked against a float64 reference (relative error printed).
"""
from __future__ import annotations

import argparse
import time

import torch

from skd.model.nets.gemm_grad import conv_transpose_weight_grad, conv_weight_grad

CL = torch.channels_last


def layers(width: int, frames: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], bool]]:
    """name -> (input shape, weight shape, transposed) of the stride-2 4×4 layers at 64×64."""
    w = [width, 2 * width, 4 * width, 8 * width]
    out = {}
    for i, (ci, co, s) in enumerate(zip([3] + w[:-1], w, [64, 32, 16, 8])):
        out[f"encoder conv{i + 1} {ci}->{co}, {s}->{s // 2} px"] = ((frames, ci, s, s), (co, ci, 4, 4), False)
    for i, (ci, co, s) in enumerate(zip(w[::-1], w[::-1][1:] + [3], [4, 8, 16, 32])):
        out[f"decoder deconv{i + 2} {ci}->{co}, {s}->{2 * s} px"] = ((frames, ci, s, s), (ci, co, 4, 4), True)
    return out


def grad_weight_gemm(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor, transposed: bool) -> torch.Tensor:
    """Weight gradient of a 4×4 stride-2 padding-1 (transposed) convolution as one GEMM (what
    ``skd.model.nets.gemm_grad`` uses in training for the small-map layers)."""
    return (conv_transpose_weight_grad if transposed else conv_weight_grad)(g, x, 4, 2, 1)


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16",
                    help="bf16 (what skd trains in on CPUs with bf16 instructions) or fp32 (on the others)")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.set_num_threads(args.threads)
    args_conv = ([2, 2], [1, 1], [1, 1])
    cases = {}
    for name, (xs, ws, tr) in layers(args.width, args.frames).items():
        x = torch.randn(xs).to(dtype).contiguous(memory_format=CL)
        w = (torch.randn(ws) / ws[1] ** 0.5).to(dtype).contiguous(memory_format=CL)
        y = torch.ops.aten.convolution(x, w, None, *args_conv, tr, [0, 0], 1)
        g = torch.randn_like(y)

        def bwd(mask, g=g, x=x, w=w, tr=tr):
            return torch.ops.aten.convolution_backward(g, x, w, None, *args_conv, tr, [0, 0], 1, mask)

        ref = torch.ops.aten.convolution_backward(g.double(), x.double(), w.double(), None, *args_conv, tr, [0, 0], 1,
                                                  [False, True, False])[1]
        err = float((grad_weight_gemm(g, x, w, tr).double() - ref).norm() / ref.norm())
        flop = 2 * (x if tr else y).numel() * ws[1] * 16  # multiply-adds of the forward (= of each gradient)
        cases[name] = (err, flop, {
            "forward": lambda x=x, w=w, tr=tr: torch.ops.aten.convolution(x, w, None, *args_conv, tr, [0, 0], 1),
            "grad input": lambda bwd=bwd: bwd([True, False, False]),
            "grad weight (oneDNN)": lambda bwd=bwd: bwd([False, True, False]),
            "grad weight (GEMM)": lambda g=g, x=x, w=w, tr=tr: grad_weight_gemm(g, x, w, tr),
        })
    times: dict[tuple[str, str], float] = {}
    for _ in range(args.reps):
        for name, (_, _, fns) in cases.items():
            for part, fn in fns.items():
                t = seconds(fn)
                times[(name, part)] = min(times.get((name, part), float("inf")), t)
    print(f"{args.dtype} channels_last, {args.frames} frames, width {args.width}, {args.threads} thread(s), torch {torch.__version__}; "
          f"best of {args.reps}, ms (GFLOP/s)")
    print()
    parts = ["forward", "grad input", "grad weight (oneDNN)", "grad weight (GEMM)"]
    print("| layer | " + " | ".join(parts) + " | GEMM rel. error |")
    print("|---" * (len(parts) + 2) + "|")
    for name, (err, flop, _) in cases.items():
        cells = [f"{1e3 * times[(name, p)]:.1f} ({flop / times[(name, p)] / 1e9:.0f})" for p in parts]
        print(f"| {name} | " + " | ".join(cells) + f" | {err:.1e} |")


if __name__ == "__main__":
    main()
