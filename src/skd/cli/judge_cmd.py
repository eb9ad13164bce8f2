"""`skd judge train`: the supervised classifier that scores generated sequences."""
from __future__ import annotations

from .common import common_parent

import argparse
import dataclasses

from ..data import data_config_from_spec, load_dataset
from ..evaluation.judge import judge_setup, train_judge
from ..training.loop import resolve_device
from .common import command_line

HELP = "train the judge classifier used by `skd eval`"
DESCRIPTION = """Train the judge (docs/EVALUATION.md §1) with full supervision on a labelled dataset; one head per
labelled factor. Saves DIR/judge.pt (tensors + config) and DIR/judge.json (SHA-256, per-head
test accuracy, recipe, CPU time).

examples:
  skd judge train --data data/sprites --out judges/sprites          # Sprites: 5 heads
  skd judge train --data shapes --out judges/shapes --set judge.epochs=2
  skd judge train --data mine.npz --out judges/mine                  # heads from the npz labels"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train a judge", description=DESCRIPTION, parents=[common_parent()],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--data", required=True, metavar="SPEC", help="'shapes', a Sprites folder, or a .npy/.npz with labels")
    t.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder for judge.pt and judge.json")
    t.add_argument("--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="judge.* or data.* override, e.g. --set judge.epochs=5 (repeatable)")
    t.add_argument("--device", default=None, help="auto, cpu, cuda, mps (default: judge.device)")


def run(args: argparse.Namespace) -> int:
    data_cfg = data_config_from_spec(args.data)
    setup = judge_setup(args.overrides, {"data": dataclasses.asdict(data_cfg)})
    train, test = load_dataset(setup.data)
    device = resolve_device(args.device or setup.judge.device)
    res = train_judge(setup, train, test, args.out, progress=not getattr(args, "quiet", False), device=device)
    accs = ", ".join(f"{k} {100 * v:.2f}%" for k, v in res.test_accuracy.items())
    print(f"judge trained: {res.steps} steps in {res.seconds:.0f}s; test accuracy per head: {accs}")
    print(f"saved {res.checkpoint} (sha256 {res.sha256[:16]}…); command: {command_line()}")
    return 0
