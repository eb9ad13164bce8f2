"""`skd average`: average the weights of checkpoints of one run (stochastic weight averaging)."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ..data import data_config_from_spec, load_dataset
from ..files.checkpoint import CheckpointError, atomic_write_text, load_checkpoint
from ..training.average import average_checkpoints
from ..training.resume import AVERAGED_KEY, CKPT_KIND, checkpoint_config
from .common import command_line

HELP = "average the weights of checkpoints of one run (SWA) into a model to evaluate"
DESCRIPTION = """Average the weights of several training checkpoints of ONE run into one model
(stochastic weight averaging), then measure its BatchNorm statistics afresh on training batches.

At a small learning rate the checkpoints of a run wander around a minimum, and with them which
latent directions the eigen split of Eq. 5 calls static; their average is steadier than any one
of them and is chosen without looking at the test split (docs/ABLATIONS.md). The result is a run
folder with weights only: every command that takes --run reads it; it cannot be resumed (train on
the source run, then average again).

Sources: checkpoint files, run folders (their checkpoint.pt) and, with --kept RUN, the
checkpoints a run keeps (RUN/checkpoints/step_*.pt, written with train.keep_every), optionally
only those from step --since on. A step given twice is averaged once.

Writes OUT/checkpoint.pt, OUT/config.json, OUT/data.json (from the source run, when it has one),
OUT/average.json (the steps averaged) and OUT/command.txt. An OUT that holds a training
checkpoint is refused; an earlier average there is replaced.

examples:
  skd average --kept runs/sprites --since 30000 runs/sprites --out runs/sprites-swa
  skd average runs/a/checkpoints/step_00030000.pt runs/a/checkpoints/step_00032000.pt --out runs/a-swa
  skd scorecard --run runs/sprites-swa --judge weights/judge --data data/sprites"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="CKPT|RUN", help="checkpoint files or run folders to average")
    p.add_argument("--kept", metavar="RUN", action="append", default=[],
                   help="add the kept checkpoints RUN/checkpoints/step_*.pt (repeatable)")
    p.add_argument("--since", type=int, default=0, metavar="STEP",
                   help="with --kept: only checkpoints of step >= STEP (default: all)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="folder of the averaged model")
    p.add_argument("--data", metavar="SPEC", help="training data for the BatchNorm statistics (default: the run's)")
    p.add_argument("--bn-batches", type=int, default=64,
                   help="training batches that measure the BatchNorm statistics (default: 64)")
    p.add_argument("--precision", choices=["auto", "fp32"], default="auto",
                   help="frame networks during that pass: as training ran them (auto) or float32")
    p.add_argument("--seed", type=int, default=0, help="seed of the batches drawn for the statistics")


def _checkpoint_file(src: str) -> Path:
    p = Path(src)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise FileNotFoundError(f"{src}: no such checkpoint file (or run folder with a checkpoint.pt)")
    return p


def _kept(run: str, since: int) -> list[Path]:
    folder = Path(run) / "checkpoints"
    if not folder.is_dir():
        raise FileNotFoundError(f"--kept {run}: no {folder} (train with train.keep_every to keep checkpoints)")
    found = sorted(folder.glob("step_*.pt"))
    chosen = [p for p in found if int(p.stem.split("_")[1]) >= since]
    if not chosen:
        raise FileNotFoundError(f"--kept {run}: no kept checkpoint from step {since} on ({len(found)} before it)")
    return chosen


def _refuse_training_checkpoint(out: Path) -> None:
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and AVERAGED_KEY not in load_checkpoint(ckpt, kind=CKPT_KIND):
        raise FileExistsError(f"{out} holds a training checkpoint; choose another --out (it would be overwritten)")


def _source_run(path: Path) -> Path:
    """The run folder a checkpoint file belongs to (RUN/checkpoint.pt or RUN/checkpoints/step_N.pt)."""
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def run(args: argparse.Namespace) -> int:
    files = [_checkpoint_file(s) for s in args.sources]
    for r in args.kept:
        files += _kept(r, args.since)
    seen: dict[Path, Path] = {}
    for f in files:  # each file once, named as the user named it
        seen.setdefault(f.resolve(), f)
    files = list(seen.values())
    if len(files) < 2:
        raise CheckpointError(f"averaging needs at least two checkpoints, got {len(files)}")
    out = Path(args.out)
    _refuse_training_checkpoint(out)
    cfg = checkpoint_config(load_checkpoint(files[0], kind=CKPT_KIND), files[0])
    data_cfg = data_config_from_spec(args.data, cfg.data) if args.data else cfg.data
    train, _ = load_dataset(data_cfg)
    res = average_checkpoints(files, out, train, bn_batches=args.bn_batches, seed=args.seed,
                              precision=args.precision)
    atomic_write_text(out / "config.json", res.config.to_json() + "\n")
    meta = _source_run(files[0]) / "data.json"
    if meta.is_file():
        shutil.copyfile(meta, out / "data.json")
    summary = {"steps": list(res.steps), "sources": [str(f) for f in files], "bn_sequences": res.bn_sequences,
               "bn_batches": args.bn_batches, "precision": args.precision, "seed": args.seed}
    atomic_write_text(out / "average.json", json.dumps(summary, indent=2) + "\n")
    with open(out / "command.txt", "a") as f:
        f.write(command_line() + "\n")
    steps = ", ".join(str(s) for s in res.steps)
    print(f"averaged {len(res.steps)} checkpoints (steps {steps}); BatchNorm statistics from {res.bn_sequences} "
          f"training sequences -> {res.path}")
    return 0
