"""Speed of one SKD training step, every execution choice compared in ONE run.

    PYTHONPATH=src python benchmarks/train_speed.py                    # Sprites paper size, batch 32
    PYTHONPATH=src python benchmarks/train_speed.py --preset fast      # the fast preset
    PYTHONPATH=src python benchmarks/train_speed.py --device cuda      # on a GPU
    PYTHONPATH=src python benchmarks/train_speed.py --only baseline,auto --steps 4   # a quick look

Each configuration runs in its own subprocess (a clean thread pool, compile cache and peak
memory) and times full training steps — batch from the uint8 data in memory, forward, all
losses, backward, the finiteness guard, Adam — exactly as ``skd train`` does them. It prints a
markdown table: median step time, steps/s, sequences/s, peak resident memory, the ratio of
steps/s to the fp32 eager baseline, and the achieved GFLOP/s (the step's FLOPs counted once by
``torch.utils.flop_counter`` in fp32) against the matrix-multiply peak measured on the same
machine with the same threads and the precision the convolutions run in (fp32 or bf16 GEMM,
2048²). Data are random uint8 videos of the
preset's shape unless ``--data DIR`` points at a built Sprites folder (the speed does not depend
on the pixel values).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

# name -> (precision, memory_format, compile, data path, fuse_decode, threads: "all" | "1")
CONFIGS: dict[str, tuple[str, str, bool, str, bool, str]] = {
    "baseline": ("fp32", "contiguous", False, "uint8", False, "all"),  # fp32 eager, what the reference does
    "baseline 1 thread": ("fp32", "contiguous", False, "uint8", False, "1"),
    "fused decode": ("fp32", "contiguous", False, "uint8", True, "all"),
    "bf16": ("bf16", "contiguous", False, "uint8", False, "all"),
    "channels_last": ("fp32", "channels_last", False, "uint8", False, "all"),
    "auto (bf16 + channels_last)": ("auto", "auto", False, "uint8", False, "all"),
    "auto 1 thread": ("auto", "auto", False, "uint8", False, "1"),
    "auto with oneDNN weight gradients": ("auto", "auto", False, "uint8", False, "all"),
    "compile fp32": ("fp32", "contiguous", True, "uint8", False, "all"),
    "compile + auto": ("auto", "auto", True, "uint8", False, "all"),
    "auto + float32 data": ("auto", "auto", False, "float32", False, "all"),
    "auto + DataLoader worker": ("auto", "auto", False, "loader", False, "all"),
}
SHORT = {"baseline": "baseline", "auto": "auto (bf16 + channels_last)"}
NO_GEMM_GRAD = {"auto with oneDNN weight gradients"}  # the default plan without skd.model.nets.gemm_grad


def _gemm_seconds(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(reps + 1):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 6, budget_s: float = 2.0) -> float:
    """GFLOP/s of an n×n GEMM (best of ``reps``).

    The size shrinks (by halves, down to 256) when a 256×256 product predicts that ``reps``
    products of size n would take longer than ``budget_s``: a CPU without bf16 instructions
    multiplies bf16 matrices hundreds of times slower than float32, and a 2048×2048 probe then
    takes minutes.
    """
    small = _gemm_seconds(device, dtype, 256, 1)
    while n > 256 and small * (n / 256) ** 3 * (reps + 1) > budget_s:
        n //= 2
    return 2 * n**3 / _gemm_seconds(device, dtype, n, reps) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(spec: dict) -> dict:
    """Time ``spec['steps']`` training steps of one configuration (runs in a subprocess)."""
    from skd.config import load_config, resolve_model_config
    from skd.data.base import SequenceData
    from skd.model.losses import compute_losses
    from skd.model.precision import apply_plan, resolve_plan
    from skd.training.loop import build_model, grads_finite, resolve_device

    precision, memfmt, comp, datapath, fuse, threads = CONFIGS[spec["name"]]
    torch.set_num_threads(1 if threads == "1" else spec["threads"])
    device = resolve_device(spec["device"])
    cfg = load_config(spec["preset"], spec["overrides"])
    n = spec["batch"] * 4
    gen = torch.Generator().manual_seed(0)
    if spec["data"]:
        from skd.data.sprites import load_sprites
        x8 = load_sprites(spec["data"], "train").x[:n]
    else:
        c, s = cfg.model.channels, cfg.data.image_size if cfg.data.name == "shapes" else 64
        x8 = torch.randint(0, 256, (n, 8, c, s, s), dtype=torch.uint8, generator=gen)
    data = SequenceData(x=x8 if datapath != "float32" else x8.float().div_(255.0))
    mc = resolve_model_config(cfg.model, data.frame_shape)
    cfg = dataclasses.replace(cfg, model=mc)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    model.fuse_decode = fuse
    plan = resolve_plan(precision, memfmt, comp, device, mc.kind)
    if spec["name"] in NO_GEMM_GRAD:
        plan = dataclasses.replace(plan, gemm_weight_grad=False)
    apply_plan(model, plan)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    bs = spec["batch"]
    batches = [torch.arange(i * bs, (i + 1) * bs) for i in range(4)]
    loader = None
    if datapath == "loader":
        ds = torch.utils.data.TensorDataset(data.x)
        loader = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=1, drop_last=True,
                                             persistent_workers=True, prefetch_factor=4)

    def batches_forever():
        while True:
            if loader is None:
                for idx in batches:
                    yield data.batch(idx, device)
            else:
                for (xb,) in loader:
                    yield xb.to(device).float().div_(255.0)

    it = batches_forever()

    def step() -> None:
        x = next(it)
        out = model(x)
        total, _ = compute_losses(x, out, cfg.loss)
        opt.zero_grad(set_to_none=True)
        total.backward()
        if grads_finite(model):
            opt.step()

    model.train()
    t_first = time.perf_counter()
    for _ in range(spec["warmup"]):
        step()
    _sync(device)
    warm_s = time.perf_counter() - t_first
    times = []
    for _ in range(spec["steps"]):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    flops = None
    if spec["count_flops"]:
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as fc:
            step()
        flops = fc.get_total_flops()
    return {"name": spec["name"], "step_s": med, "min_s": min(times), "warmup_s": warm_s,
            "peak_mb": _peak_memory_mb(device), "flops": flops, "plan": plan.describe(),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="sprites", help="config preset or TOML file (default: sprites, paper size)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per configuration (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the 'all' rows")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--data", default="", help="a built Sprites folder (default: random uint8 frames)")
    ap.add_argument("--only", default="", help="comma-separated configuration names (see CONFIGS; 'auto' = the default)")
    ap.add_argument("--json", default="", help="also write the rows here")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    names = [SHORT.get(s.strip(), s.strip()) for s in args.only.split(",")] if args.only else list(CONFIGS)
    if args.device != "cpu":
        names = [n for n in names if "1 thread" not in n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"train_speed: unknown configuration(s) {unknown}; known: {list(CONFIGS)}")
    if "baseline" not in names:
        names.insert(0, "baseline")
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    peak32 = matmul_peak(device, torch.float32)
    peak16 = matmul_peak(device, torch.bfloat16)
    torch.set_num_threads(1)
    peak32_1 = matmul_peak(device, torch.float32) if device.type == "cpu" else peak32
    peak16_1 = matmul_peak(device, torch.bfloat16) if device.type == "cpu" else peak16
    rows = []
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    for i, name in enumerate(names):
        spec = {"name": name, "preset": args.preset, "overrides": args.overrides, "batch": args.batch,
                "steps": args.steps, "warmup": args.warmup + (2 if CONFIGS[name][2] else 0), "threads": args.threads,
                "device": str(device), "data": args.data, "count_flops": name == "baseline"}
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                              env=env)
        line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
        if proc.returncode or not line:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"[{i + 1}/{len(names)}] {name}: FAILED ({err})", flush=True)
            rows.append({"name": name, "error": err})
            continue
        row = json.loads(line[0][7:])
        rows.append(row)
        print(f"[{i + 1}/{len(names)}] {name}: {row['step_s']:.3f} s/step", flush=True)

    base = next(r for r in rows if r["name"] == "baseline")
    flops = base.get("flops") or 0
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"model: preset {args.preset} {' '.join(args.overrides)}, batch {args.batch} × 8 frames; "
          f"one training step = {flops / 1e9:.1f} GFLOP (forward + backward, fp32 count)")
    print(f"measured GEMM peak (2048²): fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s with {args.threads} threads; "
          f"fp32 {peak32_1:.0f}, bf16 {peak16_1:.0f} GFLOP/s with 1 thread")
    print()
    print("| configuration | threads | s/step | steps/s | seq/s | peak MB | × baseline | GFLOP/s | % of GEMM peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['name']} | – | failed: {r['error'][:60]} | | | | | | |")
            continue
        gf = flops / r["step_s"] / 1e9
        bf16 = "bfloat16" in r["plan"]  # compare with the GEMM peak of the precision the convs run in
        peak = peak32_1 if r["threads"] == 1 and device.type == "cpu" else peak32
        if bf16:
            peak = peak16_1 if r["threads"] == 1 and device.type == "cpu" else peak16
        print(f"| {r['name']} | {r['threads']} | {r['step_s']:.3f} | {1 / r['step_s']:.2f} | {args.batch / r['step_s']:.0f} | "
              f"{r['peak_mb']:.0f} | {base['step_s'] / r['step_s']:.2f} | {gf:.0f} | {100 * gf / peak:.0f} % {'bf16' if bf16 else 'fp32'} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_fp32": peak32, "peak_bf16": peak16, "peak_fp32_1thread": peak32_1, "peak_bf16_1thread": peak16_1,
                                               "flops_per_step": flops, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
