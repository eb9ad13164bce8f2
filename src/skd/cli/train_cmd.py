"""`skd train`: train a Koopman autoencoder, or resume a run exactly."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..data import load_dataset
from ..train import train
from .common import add_config_arguments, command_line, config_from_args

HELP = "train a model on the built-in data or your arrays (or resume a run)"
DESCRIPTION = """Train a structured Koopman autoencoder.

examples:
  skd train --out runs/shapes                       # built-in shapes data, default preset
  skd train --data my.npz --out runs/mine --set train.epochs=50
  skd train --config sprites --set data.path=... --out runs/sprites
  skd train --resume runs/shapes --epochs 200       # continue exactly where it stopped

The run folder gets config.json, command.txt, data.json, metrics.jsonl, checkpoint.pt and
result.json."""
log = logging.getLogger("skd.train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, "default")
    p.add_argument("--out", "-o", metavar="RUN", help="new run folder (default: runs/<data name>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its checkpoint")
    p.add_argument("--data", metavar="FILE", help="your .npy/.npz sequences (sets data.name=arrays, data.path=FILE)")
    p.add_argument("--labels", metavar="FILE", help="optional label file for --data")
    p.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    p.add_argument("--minutes", type=float, help="shortcut for --set train.minutes=M (wall-clock budget)")
    p.add_argument("--device", help="shortcut for --set train.device=D (auto, cpu, cuda, mps)")


def run(args: argparse.Namespace) -> int:
    extra: list[str] = []
    if args.data:
        extra += ["data.name='arrays'", f"data.path={json.dumps(args.data)}"]
    if args.labels:
        extra.append(f"data.labels={json.dumps(args.labels)}")
    if args.epochs is not None:
        extra.append(f"train.epochs={args.epochs}")
    if args.minutes is not None:
        extra.append(f"train.minutes={args.minutes}")
    if args.device:
        extra.append(f"train.device={json.dumps(args.device)}")
    if args.resume:
        if args.out:
            raise ValueError("use either --resume RUN or --out RUN, not both")
        from ..train import load_checkpoint_config

        cfg = load_checkpoint_config(args.resume, [*extra, *args.overrides])
        run_dir = Path(args.resume)
    else:
        cfg = config_from_args(args, extra)
        run_dir = Path(args.out or f"runs/{cfg.data.name}")
    data, _ = load_dataset(cfg.data)
    res = train(cfg, run_dir, data, resume=bool(args.resume), progress=not args.quiet, command=command_line())
    parts = ", ".join(f"{k}={v:.4g}" for k, v in res.last.items() if k in ("loss", "rec", "pred_latent", "pred_ambient", "eig"))
    print(f"trained {res.step} steps ({res.epoch} epochs, stopped by {res.stopped}) in {res.seconds:.0f}s -> {run_dir}")
    print(f"last losses: {parts}; non-finite steps skipped: {res.bad_steps}")
    return 0
