"""`skd data DATASET ...`: build benchmark datasets from their sources."""
from __future__ import annotations

from .common import common_parent

import argparse
from pathlib import Path

HELP = "build benchmark datasets (Sprites) from their sources"
DESCRIPTION = """\
Build a benchmark dataset from its source files.

  skd data sprites --sheets SHEETS --out DIR [--limit-train N] [--limit-test M] [--dtype uint8|float32]

sprites: the Sprites videos of Li & Mandt (2018), rebuilt value for value from the LPC sprite
sheets (body/, bottomwear/, topwear/, hair/, shoes/ PNGs). Writes sprites_{X,A,D}_{train,test}.npy
(9000 train / 2664 test sequences of 8 frames, 64x64 RGB), the compact sprites_{train,test}_u8.npz
and meta.json. The sheets and everything built from them are CC-BY-SA 3.0 / GPL 3.0 (LPC artists).
"""

SPRITES_DESCRIPTION = """\
Rebuild the standard Sprites arrays from the LPC sprite sheets.

X is float32 pixel value / 256 (the published convention, 4.6 GB in all) or, with --dtype uint8,
the pixel value itself (1.15 GB). --limit-train / --limit-test keep the first sequences of the
standard order, so a small build equals the first rows of the full one. DIR must not exist or be
empty; the build is written beside it and moved into place when complete.
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
    p.set_defaults(_data_run=_run_sprites)


def _run_sprites(args: argparse.Namespace) -> int:
    from ..data.sprites import build_sprites

    meta = build_sprites(args.sheets, args.out, limit_train=args.limit_train, limit_test=args.limit_test,
                         dtype=args.dtype, progress=not getattr(args, "quiet", False))
    size = sum(meta["bytes"].values())
    print(f"wrote {meta['counts']['train']} train and {meta['counts']['test']} test sequences "
          f"({args.dtype}, {size / 1e9:.2f} GB) to {meta['out_dir']} in {meta['seconds']:.1f} s")
    return 0


def run(args: argparse.Namespace) -> int:
    return int(args._data_run(args))
