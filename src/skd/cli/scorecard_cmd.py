"""`skd scorecard`: every lens on a trained model, with targets, as markdown, JSON and a picture."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..render import images as viz
from ..files.checkpoint import atomic_write_text
from ..data import data_config_from_spec, load_dataset
from ..pipelines.footprint import AFFINITIES
from ..evaluation.judge import load_judge
from ..evaluation.scorecard import ScorecardSpec, build_scorecard, scorecard_json, scorecard_markdown, scorecard_rows
from ..pipelines.pairs import pick_pairs
from ..render.swaps import single_factor_grid
from ..training.loop import load_run
from .common import command_line

HELP = "score a run on every lens: reconstructions, Protocols A/B (two splits), multifactor, MSD score (also: skd eval scorecard)"
DESCRIPTION = """The scorecard of a trained run on the whole test split (docs/EVALUATION.md, "Scorecard"):

  - the judge's accuracy on plain reconstructions, per head;
  - Protocols A and B, sample and swap (Acc, IS, H(y|x), H(y)) and how often each replaced head
    still reads the original, under the reference protocol (eigen split of Eq. 5, C refitted per
    test batch of --batch-size) and the refined split (C and split fitted on --fit-batch training
    sequences);
  - multifactor swaps with the label-free and the supervised factor groups (on-/off-target);
  - the MSD-Benchmark intervention score;
  - mean ± std over --repeats draws; with --judge2, the same frames read by a second judge.

Writes OUT/scorecard.md, OUT/scorecard.json, OUT/scorecard.png (swap grid + bar chart of the
targeted rows) and OUT/single_factor_swaps.png. A model is as good as its weakest row.

examples:
  skd scorecard --run weights/sprites --judge weights/judge --data data/sprites
  skd scorecard --run runs/mine --judge judges/a --judge2 judges/b --data data/sprites --out reports/mine"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help="run folder (or checkpoint file) to score")
    p.add_argument("--judge", required=True, metavar="JUDGE", help="judge folder or judge.pt (its reading sets the targets)")
    p.add_argument("--judge2", metavar="JUDGE", help="a second judge (another seed) reading the same frames")
    p.add_argument("--data", metavar="SPEC", help="a Sprites folder or labelled .npy/.npz (default: the run's data)")
    p.add_argument("--out", "-o", metavar="DIR", help="output folder (default: RUN/scorecard)")
    p.add_argument("--repeats", type=int, default=3, help="fresh random draws per row (default: 3)")
    p.add_argument("--batch-size", type=int, default=256, help="test sequences per C fit in the reference protocol (default: 256)")
    p.add_argument("--fit-batch", type=int, default=2048,
                   help="training sequences for the refined split and the factor groups (default: 2048)")
    p.add_argument("--n-factors", type=int, default=0, help="label-free groups (default: one per labelled static factor)")
    p.add_argument("--affinity", choices=AFFINITIES, default="dependence", help="label-free grouping cue (default: dependence)")
    p.add_argument("--precision", choices=("auto", "fp32"), default="auto",
                   help="model's frame networks: as in training (bf16 where the CPU/GPU has it natively; default) "
                        "or fp32 everywhere; the judges always read in fp32")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    spec = ScorecardSpec(repeats=args.repeats, batch_size=args.batch_size, fit_batch=args.fit_batch, seed=args.seed,
                         n_factors=args.n_factors, affinity=args.affinity)
    run_path = Path(args.run)
    model, cfg = load_run(run_path, precision=args.precision)
    judges, shas = [], []  # before the data: a wrong judge path costs nothing
    for path in filter(None, (args.judge, args.judge2)):
        judge, sha = load_judge(path)
        judges.append(judge)
        shas.append(sha)
    data_cfg = data_config_from_spec(args.data, cfg.data) if args.data else cfg.data
    train, test = load_dataset(data_cfg)
    if test is None:
        raise ValueError(f"{data_cfg.path or data_cfg.name} has no test split to score")
    model.check_input(test.batch([0]))
    card = build_scorecard(model, cfg.loss, judges, train, test, spec, progress=not getattr(args, "quiet", False))
    rows = scorecard_rows(card)
    out = Path(args.out) if args.out else (run_path.parent if run_path.is_file() else run_path) / "scorecard"
    out.mkdir(parents=True, exist_ok=True)
    groups = card.notes["factors"].free
    grid = single_factor_grid(model, test, groups, pick_pairs(test, 2, seed=args.seed), out / "single_factor_swaps.png")
    bars = [r for r in rows if r.target is not None and r.target.at_least is not None and r.target.at_least <= 1]
    viz.plot_scorecard([r.label for r in bars], [r.value for r in bars], [r.target.at_least for r in bars],
                       out / "scorecard.png", image=grid, title=f"scorecard of {run_path.name}")
    md = scorecard_markdown(card, rows, title=f"Scorecard of `{run_path}`")
    md += f"\n\nJudge sha256: {', '.join(s[:16] + '…' for s in shas)}. Command: `{command_line()}`\n"
    atomic_write_text(out / "scorecard.md", md)
    meta = {"run": str(run_path), "judges": [str(j) for j in filter(None, (args.judge, args.judge2))],
            "judge_sha256": shas, "data": data_cfg.path or data_cfg.name, "command": command_line()}
    atomic_write_text(out / "scorecard.json", json.dumps(scorecard_json(card, rows, meta), indent=1) + "\n")
    print(md)
    print(f"wrote {out / 'scorecard.md'}, {out / 'scorecard.json'}, {out / 'scorecard.png'}")
    return 0
