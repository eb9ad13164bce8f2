"""Two source trees of skd timed side by side, and their losses compared step by step.

    git archive <commit> src | tar -x -C before    # the tree to compare against
    PYTHONPATH=src python benchmarks/paired_step.py --before before/src --after src --preset sprites --threads 1

Each round runs one subprocess per tree, in alternating order (before, after, after, before, ...),
so that a shared machine's load falls on both alike; each subprocess builds the model with the
same seed, trains ``--warmup`` + ``--steps`` steps exactly as ``skd train`` does (execution plan
``--precision`` / ``--memory-format``, default ``auto``) on the same batches, and reports its step
times and every loss part of every step. The script prints the median step time of each tree
over all rounds, their ratio, and the largest relative difference of any loss part between the
trees at the same step (bf16 rounding differences grow over steps; identical arithmetic gives 0).
On a machine shared with other work, the fastest step of each tree and the median over rounds of
the per-round ratio (each round's two subprocesses ran back to back) are the steadier figures.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time


def worker(spec: dict) -> dict:
    import torch
    from skd.config import load_config, resolve_model_config
    from skd.data.base import SequenceData
    from skd.model.losses import compute_losses
    from skd.model.precision import apply_plan, resolve_plan
    from skd.training.loop import build_model, grads_finite

    torch.set_num_threads(spec["threads"])
    cfg = load_config(spec["preset"], spec["overrides"])
    bs = spec["batch"]
    gen = torch.Generator().manual_seed(0)
    if spec["data"]:
        from skd.data.sprites import load_sprites
        x8 = load_sprites(spec["data"], "train").x[: 4 * bs]
    else:
        c, s = cfg.model.channels, cfg.data.image_size if cfg.data.name == "shapes" else 64
        x8 = torch.randint(0, 256, (4 * bs, 8, c, s, s), dtype=torch.uint8, generator=gen)
    data = SequenceData(x=x8)
    cfg = dataclasses.replace(cfg, model=resolve_model_config(cfg.model, data.frame_shape))
    torch.manual_seed(0)
    model = build_model(cfg)
    apply_plan(model, resolve_plan(spec["precision"], spec["memory_format"], False, torch.device("cpu"), cfg.model.kind))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    model.train()
    times, losses = [], []
    for i in range(spec["warmup"] + spec["steps"]):
        t = time.perf_counter()
        x = data.batch(torch.arange((i % 4) * bs, (i % 4 + 1) * bs))
        out = model(x, ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
        total, parts = compute_losses(x, out, cfg.loss)
        opt.zero_grad(set_to_none=True)
        total.backward()
        if grads_finite(model):
            opt.step()
        times.append(time.perf_counter() - t)
        losses.append({"total": float(total), **{k: float(v) for k, v in parts.items()}})
    return {"times": times[spec["warmup"]:], "losses": losses, "skd": __import__("skd").__file__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="", help="a src/ folder holding the skd package to compare against")
    ap.add_argument("--after", default="", help="a src/ folder holding the changed skd package")
    ap.add_argument("--preset", default="sprites")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per subprocess")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="subprocesses per tree, alternating")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--memory-format", default="auto")
    ap.add_argument("--data", default="", help="a built Sprites folder (default: random uint8 frames)")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if not args.before or not args.after:
        ap.error("--before and --after are required")
    spec = {k: getattr(args, k) for k in ("preset", "overrides", "batch", "steps", "warmup", "threads", "precision",
                                          "memory_format", "data")}
    trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    times: dict[str, list[float]] = {"before": [], "after": []}
    losses: dict[str, list[dict]] = {}
    per_round: dict[int, dict[str, float]] = {}
    for r in range(args.rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            env = dict(os.environ, PYTHONPATH=trees[name])
            proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                                  text=True, env=env)
            line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"paired_step: {name} failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
            res = json.loads(line[0][7:])
            if not res["skd"].startswith(trees[name]):
                sys.exit(f"paired_step: {name} imported skd from {res['skd']}, not from {trees[name]}")
            times[name] += res["times"]
            per_round.setdefault(r, {})[name] = statistics.median(res["times"])
            losses.setdefault(name, res["losses"])
            print(f"round {r + 1} {name}: " + " ".join(f"{t:.3f}" for t in res["times"]) + " s", flush=True)
    worst = max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)
                for a, b in zip(losses["before"], losses["after"]) for k in a)
    tb, ta = statistics.median(times["before"]), statistics.median(times["after"])
    ratios = [v["before"] / v["after"] for v in per_round.values()]
    print()
    print(f"preset {args.preset} {' '.join(args.overrides)}, batch {args.batch}, {args.threads} thread(s), "
          f"precision {args.precision}, memory format {args.memory_format}; {args.rounds} rounds × {args.steps} steps per tree")
    mb, ma = min(times["before"]), min(times["after"])
    print("| tree | median s/step | fastest step | × before (medians) | × before (fastest) | × before (median of per-round ratios) |")
    print("|---|---|---|---|---|---|")
    print(f"| before | {tb:.3f} | {mb:.3f} | 1.00 | 1.00 | 1.00 |")
    print(f"| after | {ta:.3f} | {ma:.3f} | {tb / ta:.2f} | {mb / ma:.2f} | {statistics.median(ratios):.2f} |")
    print(f"largest relative difference of a loss part over the {len(losses['before'])} steps: {worst:.2e}")


if __name__ == "__main__":
    main()
