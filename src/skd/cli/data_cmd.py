"""`skd data DATASET ...`: build benchmark datasets from their sources."""
from __future__ import annotations

from .common import common_parent

import argparse
from pathlib import Path

HELP = "build benchmark datasets (Sprites) from their sources, or export built-in data as arrays"
DESCRIPTION = """\
Build a benchmark dataset from its source files.

  skd data sprites --sheets SHEETS --out DIR [--limit-train N] [--limit-test M] [--dtype uint8|float32]
                   [--image-size 64|32]
  skd data oscillators --out DIR [--n-train N] [--n-test M] [--seq-len T] [--seed S]

sprites: the Sprites videos of Li & Mandt (2018), rebuilt value for value from the LPC sprite
sheets (body/, bottomwear/, topwear/, hair/, shoes/ PNGs). Writes sprites_{X,A,D}_{train,test}.npy
(9000 train / 2664 test sequences of 8 frames, 64x64 RGB), the compact sprites_{train,test}_u8.npz
and meta.json. The sheets and everything built from them are CC-BY-SA 3.0 / GPL 3.0 (LPC artists).

oscillators: the built-in pendulum series written as a user's arrays would be — DIR/train.npz
and DIR/test.npz with x (N, T, 108) float32 and one label array per factor (length, color,
mass, phase) — to try the (N, T, D) array route: skd train --data DIR/train.npz
--set data.test_path=DIR/test.npz.
"""

SPRITES_DESCRIPTION = """\
Rebuild the standard Sprites arrays from the LPC sprite sheets.

X is float32 pixel value / 256 (the published convention, 4.6 GB in all) or, with --dtype uint8,
the pixel value itself (1.15 GB). --limit-train / --limit-test keep the first sequences of the
standard order, so a small build equals the first rows of the full one. DIR must not exist or be
empty; the build is written to a hidden folder beside it (.DIR.partial-*.tmp) and moved into
place when complete. A build that is killed leaves that folder behind; the next build into DIR
removes it and says so. Two builds into the same DIR at once are refused.
--image-size 32 reduces every frame by a 2x2 box mean: a 4x cheaper variant for fast experiments,
not the published benchmark (train a judge on the same build to score it).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    p = sub.add_parser("sprites", help="Sprites (Li & Mandt 2018) from the LPC sprite sheets",
                       description=SPRITES_DESCRIPTION, parents=[common_parent()], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sheets", type=Path, required=True, metavar="DIR",
                   help="folder with body/, bottomwear/, topwear/, hair/, shoes/ sprite sheets")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (absent or empty)")
    p.add_argument("--limit-train", type=int, default=None, metavar="N", help="keep the first N training sequences")
    p.add_argument("--limit-test", type=int, default=None, metavar="M", help="keep the first M test sequences")
    p.add_argument("--dtype", choices=("float32", "uint8"), default="float32",
                   help="X as float32 value/256 (standard, default) or uint8 value")
    p.add_argument("--image-size", type=int, choices=(64, 32), default=64,
                   help="frame size: 64 (the benchmark, default) or 32 (2x2 box mean, a fast variant)")
    p.set_defaults(_data_run=_run_sprites)
    o = sub.add_parser("oscillators", help="write the built-in pendulum series as .npz arrays",
                       description="Write the built-in pendulum series (skd.data.oscillators) as DIR/train.npz "
                                   "and DIR/test.npz: x (N, T, 108) float32 plus one label array per factor.")
    o.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created if absent)")
    o.add_argument("--n-train", type=int, default=4000, help="training sequences (default: 4000)")
    o.add_argument("--n-test", type=int, default=1000, help="test sequences (default: 1000)")
    o.add_argument("--seq-len", type=int, default=16, help="steps per sequence (default: 16)")
    o.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    o.set_defaults(_data_run=_run_oscillators)


def _run_sprites(args: argparse.Namespace) -> int:
    from ..data.sprites import build_sprites

    meta = build_sprites(args.sheets, args.out, limit_train=args.limit_train, limit_test=args.limit_test,
                         dtype=args.dtype, image_size=args.image_size, progress=not getattr(args, "quiet", False))
    size = sum(meta["bytes"].values())
    print(f"wrote {meta['counts']['train']} train and {meta['counts']['test']} test sequences "
          f"({args.dtype}, {args.image_size}x{args.image_size}, {size / 1e9:.2f} GB) to {meta['out_dir']} in {meta['seconds']:.1f} s")
    return 0


def _run_oscillators(args: argparse.Namespace) -> int:
    import numpy as np

    from ..files.checkpoint import atomic_write_bytes
    from ..data.oscillators import oscillators_split

    if args.n_train < 1 or args.n_test < 1:
        raise ValueError(f"--n-train={args.n_train} and --n-test={args.n_test} must be >= 1")
    train, test = oscillators_split(args.n_train, args.n_test, seq_len=args.seq_len, seed=args.seed)
    for name, d in (("train", train), ("test", test)):
        arrays = {"x": d.x.numpy(), **{k: v.numpy() for k, v in d.labels.items()}}
        atomic_write_bytes(args.out / f"{name}.npz", lambda f, a=arrays: np.savez(f, **a))
    print(f"wrote {args.out / 'train.npz'} ({len(train)} sequences) and {args.out / 'test.npz'} ({len(test)}), "
          f"x of shape (N, {args.seq_len}, {train.x.shape[-1]})")
    return 0


def run(args: argparse.Namespace) -> int:
    return int(args._data_run(args))
