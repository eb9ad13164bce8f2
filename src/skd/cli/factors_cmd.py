"""`skd factors`: find the static factor groups of a trained run, label-free."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..render import images as viz
from ..files.checkpoint import atomic_write_text
from ..data import data_config_from_spec, load_dataset
from ..pipelines.factors import TooManyGroups
from ..pipelines.footprint import AFFINITIES
from ..pipelines.basis import BasisSpec
from ..pipelines.factorset import factors_report, fit_factors, grouping_agreement, save_factors
from ..pipelines.pairs import pick_pairs
from ..render.swaps import subset_grid
from ..training.loop import load_run

AFFINITY_TITLES = {"dependence": "distance correlation", "footprint": "footprint correlation",
                   "both": "sqrt(distance corr. x footprint corr.)"}
HELP = "discover the static factor groups (hair, skin, …) of a run without labels"
DESCRIPTION = """Group the static subspace of a trained run into factors without labels. The static
coordinates are first put in a basis (--basis ica, the default: the independent directions of
the static subspace, found by whitening + FastICA, because the static eigenvalues of a trained
model all sit at λ ≈ 1 and their eigenvectors are arbitrary mixtures; --basis eigen: the static
eigen-components themselves, conjugate pairs kept together). Units that depend on each other
across sequences (distance correlation) form a group; with --affinity footprint|both, units that
change the same part of the decoded output when swapped between sequences do (spectral clustering;
the number of groups is chosen by the eigengap unless --n-factors is given). Static directions that depend on the
sequence's dynamics (the motion leaking into λ ≈ 1, e.g. Sprites' action type) are first set
aside as a group named "motion" (--no-motion-group turns that off).
With labelled data the groups are also named and a supervised grouping is written beside them.

Writes RUN/factors.json (the Koopman matrix used and the groups), RUN/factors/report.md,
RUN/factors/affinity.png and RUN/factors/subsets.png (all subsets of groups swapped for one pair).

examples:
  skd factors --run runs/sprites --data data/sprites
  skd factors --run demo_out/run --n-factors 4
  skd factors --run runs/sprites --data data/sprites --n-factors 4 --basis eigen
  skd factors --run runs/sprites --data data/sprites --n-factors 4 --affinity both"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help="trained run folder")
    p.add_argument("--data", metavar="SPEC", help="'shapes', a Sprites folder or .npy/.npz (default: the run's data)")
    p.add_argument("--split", choices=["train", "test"], default="test", help="which split to fit on (default: test)")
    p.add_argument("--n-factors", type=int, default=None, help="number of groups (default: chosen automatically)")
    p.add_argument("--basis", choices=["ica", "eigen"], default="ica",
                   help="coordinates of the static subspace to group (default: ica)")
    p.add_argument("--affinity", choices=AFFINITIES, default="dependence",
                   help="what ties units into a group: statistical dependence across sequences, the decoder "
                        "footprint (which output pixels a unit changes), or both (default: dependence)")
    p.add_argument("--no-motion-group", action="store_true",
                   help="do not set aside the static directions that carry motion")
    p.add_argument("--fit-batch", type=int, default=1024, help="sequences used to fit C and group (default: 1024)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    model, cfg = load_run(args.run)
    data_cfg = data_config_from_spec(args.data, cfg.data) if args.data else cfg.data
    train, test = load_dataset(data_cfg)
    data = test if args.split == "test" and test is not None else train
    model.check_input(data.batch([0]))
    if args.n_factors is not None and args.n_factors < 1:
        raise ValueError(f"--n-factors={args.n_factors} must be >= 1")
    try:
        fs = fit_factors(model, data, BasisSpec.from_loss(cfg.loss, fit_batch=args.fit_batch, seed=args.seed), n_groups=args.n_factors,
                         kind=args.basis, separate_motion=not args.no_motion_group, affinity=args.affinity)
    except TooManyGroups as e:
        raise ValueError(f"--n-factors: {e}") from None
    run_dir = Path(args.run)
    out = run_dir / "factors"
    path = save_factors(fs, run_dir, {"fit_batch": args.fit_batch, "seed": args.seed, "split": args.split, "basis": args.basis,
                                      "affinity": args.affinity, "data": data_cfg.name})
    names = fs.free.names or [f"group{g}" for g in range(fs.free.n_groups)]
    comp_names = [f"{c}:{names[g]}" for c, g in zip(fs.free.components, fs.free.labels)]
    viz.plot_matrix(fs.free.affinity, out / "affinity.png", row_labels=comp_names, col_labels=comp_names,
                    title=f"{AFFINITY_TITLES[args.affinity]} of static units ({args.basis} basis)")
    atomic_write_text(out / "report.md", factors_report(fs))
    msg = f"{fs.free.n_groups} label-free groups ({args.basis} basis): " + ", ".join(
        f"{names[g]}={len(fs.free.members(g))} units" for g in range(fs.free.n_groups))
    n_app = sum(1 for n in names if n != "motion")
    if n_app <= 5:
        subset_grid(model, data, fs, pick_pairs(data, 1, seed=args.seed)[0], out / "subsets.png")
    print(msg)
    if fs.supervised is not None:
        agree, total = grouping_agreement(fs.free, fs.supervised)
        print(f"{agree} of {total} units are in the label-free group named like their supervised group")
    print(f"wrote {path}, {out / 'report.md'}, {out / 'affinity.png'}" + (f", {out / 'subsets.png'}" if n_app <= 5 else ""))
    return 0
