"""Scaling of ``skd train`` on this machine: 1 process vs N processes (torch.distributed, gloo, CPU).

    PYTHONPATH=src python benchmarks/scaling.py                 # default preset, 1 vs 2 processes
    PYTHONPATH=src python benchmarks/scaling.py --steps 40 --nproc 4 --batch 32

Rows:
- ``1 proc``: one process using all ``--threads`` CPU threads (the usual single-process run);
- ``1 proc, 1 thread``: the per-core reference;
- ``strong``: N processes, ``--threads``/N threads each, the SAME global batch (the same
  optimisation as 1 process, the work split N ways);
- ``weak``: N processes, the global batch N times larger (each process keeps the 1-process batch).

Rates are steady state: measured from the metrics.jsonl time stamps after ``--warmup`` steps, so
start-up (process spawn, imports, DDP set-up) is excluded. The last column compares sequences/s
with the best 1-process row. Data: the built-in shapes videos
(32×32, T = 8) and the default preset's model. Results vary with other load on the machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

import torch

from skd.training import distributed as D
from skd.config import Config, load_config
from skd.data import load_dataset
from skd.training.launch import launch_local
from skd.training.loop import train


def _run(cfg: Config, run_dir: str) -> None:
    """One process of a benchmark run (also the single-process run)."""
    data = load_dataset(cfg.data)[0]
    D.init_distributed("cpu")
    try:
        train(cfg, run_dir, data, progress=False)
    finally:
        D.shutdown()


def _rate(run_dir: Path, warmup: int) -> float:
    """Steady-state steps per second from the metrics time stamps (one line per step)."""
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    a, b = lines[warmup - 1], lines[-1]
    return (b["step"] - a["step"]) / (b["time"] - a["time"])


def measure(cfg: Config, nproc: int, threads: int, warmup: int) -> float:
    run_dir = Path(tempfile.mkdtemp(prefix="skd-bench-")) / "run"
    if nproc == 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            _run(cfg, str(run_dir))
        finally:
            torch.set_num_threads(before)
    else:
        launch_local(_run, nproc, (cfg, str(run_dir)), threads=threads)
    return _rate(run_dir, warmup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default", help="preset or TOML file (default: default)")
    ap.add_argument("--nproc", type=int, default=2, help="processes to compare with 1 (default: 2)")
    ap.add_argument("--batch", type=int, default=None, help="1-process batch size (default: the preset's)")
    ap.add_argument("--steps", type=int, default=20, help="steps per run (default: 20)")
    ap.add_argument("--warmup", type=int, default=5, help="steps excluded from the rate (default: 5)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads in all (default: all cores)")
    args = ap.parse_args()
    if args.warmup < 1 or args.steps <= args.warmup:
        raise SystemExit("need 1 <= --warmup < --steps")
    base = load_config(args.config, ["data.name='shapes'", "data.n_train=512", "data.n_test=1"])
    bs = args.batch or base.train.batch_size
    n = args.nproc

    def cfg(batch: int) -> Config:
        tc = dataclasses.replace(base.train, batch_size=batch, epochs=0, max_steps=args.steps, log_every=1,
                                 checkpoint_every=10**9, device="cpu", threads=0)
        return dataclasses.replace(base, train=tc)

    per = max(1, args.threads // n)
    rows = [
        ("1 proc", 1, args.threads, bs, measure(cfg(bs), 1, args.threads, args.warmup)),
        ("1 proc, 1 thread", 1, 1, bs, measure(cfg(bs), 1, 1, args.warmup)),
        ("strong", n, per, bs, measure(cfg(bs), n, per, args.warmup)),
        ("weak", n, per, bs * n, measure(cfg(bs * n), n, per, args.warmup)),
    ]
    ref = max(rate * batch for _, procs, _, batch, rate in rows if procs == 1)  # the best 1-process run
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"model: conv width={base.model.width} k={base.model.k}; data: shapes {base.data.image_size}x"
          f"{base.data.image_size}, T={base.data.seq_len}; {args.steps} steps, rate after {args.warmup}; "
          f"{os.cpu_count()} CPU cores, load average after the runs {load}; torch {torch.__version__}")
    print(f"{'run':<18} {'procs':>5} {'threads/proc':>12} {'global batch':>12} {'steps/s':>8} {'seq/s':>8} {'vs best 1 proc':>14}")
    for name, procs, threads, batch, rate in rows:
        print(f"{name:<18} {procs:>5} {threads:>12} {batch:>12} {rate:>8.2f} {rate * batch:>8.1f} {rate * batch / ref:>14.2f}")


if __name__ == "__main__":
    main()
