"""`skd morph`: incremental swap — the source takes the target's factors one group at a time."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..render import images as viz
from ..data import data_config_from_spec, load_dataset
from ..pipelines.factorset import load_factors, resolve_groups
from ..pipelines.pairs import parse_pairs, pick_pairs
from ..render.swaps import morph_rows
from ..training.loop import load_run

HELP = "morph a sequence into another one factor group at a time (motion fixed)"
DESCRIPTION = """Incremental swap (paper Sec. 4.3): starting from the source, replace its static factor groups
with the target's one after another and decode every step; the motion stays the source's.
Needs `skd factors --run RUN` first.

examples:
  skd morph --run runs/sprites --pairs 3:17
  skd morph --run runs/sprites --pairs 3:17,5:9 --order hair,top,pants,skin --supervised"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help="run folder with factors.json")
    p.add_argument("--data", metavar="SPEC", help="data (default: the run's)")
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--pairs", metavar="SRC:TGT,...", help="source:target index pairs (default: 2 automatic pairs)")
    p.add_argument("--order", metavar="NAMES", help="group order, e.g. hair,top,pants,skin (default: group order)")
    p.add_argument("--supervised", action="store_true", help="use the supervised groups instead of the label-free ones")
    p.add_argument("--out", "-o", metavar="DIR", help="output folder (default: RUN/morph)")


def run(args: argparse.Namespace) -> int:
    model, cfg = load_run(args.run)
    fs = load_factors(args.run)
    groups = fs.supervised if args.supervised else fs.free
    if groups is None:
        raise ValueError("no supervised groups: run `skd factors` on labelled data")
    data_cfg = data_config_from_spec(args.data, cfg.data) if args.data else cfg.data
    train, test = load_dataset(data_cfg)
    data = test if args.split == "test" and test is not None else train
    pairs = parse_pairs(args.pairs, len(data)) if args.pairs else pick_pairs(data, 2)
    order = resolve_groups(groups, args.order) if args.order else list(range(groups.n_groups))
    rows, labels = morph_rows(model, data, fs, pairs, order, groups)
    out = Path(args.out) if args.out else Path(args.run) / "morph"
    png = viz.save_grid(rows, out / "morph.png", row_labels=labels)
    gif = viz.save_gif(rows, out / "morph.gif", row_labels=labels)
    print(f"wrote {png} and {gif}")
    return 0
