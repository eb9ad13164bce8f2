"""`skd eval`: disentanglement metrics of a trained run, scored by a judge."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..checkpoint import atomic_write_text
from ..data import data_config_from_spec, load_dataset
from ..evaluate import evaluate_two_factor, markdown_table
from ..judge import load_judge
from ..train import load_run

HELP = "score a trained run with a judge (Protocols A and B, sample and swap)"
DESCRIPTION = """Protocols A and B of EVALUATION.md §2 on the whole test split, with both manipulations
(sample, swap): Acc, IS, H(y|x), H(y) as mean ± std over --repeats, plus reconstruction MSE and
the judge's accuracy on plain reconstructions. Prints a markdown table, writes JSON.

examples:
  skd eval --run runs/sprites --judge judges/sprites --data data/sprites
  skd eval --run demo_out/run --judge judges/shapes --repeats 3 --out eval.json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help="trained run folder")
    p.add_argument("--judge", required=True, metavar="JUDGE", help="judge folder or judge.pt")
    p.add_argument("--data", metavar="SPEC", help="test data: 'shapes', a Sprites folder or .npy/.npz (default: the run's)")
    p.add_argument("--repeats", type=int, default=5, help="fresh random draws (default: 5)")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per C fit (default: 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="only the first N test sequences (a quick look; the protocol uses all, the default)")
    p.add_argument("--out", "-o", metavar="FILE", help="JSON report (default: RUN/eval.json)")
    p.add_argument("--multifactor", action="store_true",
                   help="instead: the multifactor metric (EVALUATION.md §3) with the groups of `skd factors`")


def run(args: argparse.Namespace) -> int:
    model, cfg = load_run(args.run)
    judge, sha = load_judge(args.judge)
    data_cfg = data_config_from_spec(args.data, cfg.data) if args.data else cfg.data
    train, test = load_dataset(data_cfg)
    data = test if test is not None else train
    if args.limit:
        if args.limit < 3:
            raise ValueError(f"--limit={args.limit} must be >= 3")
        data = data.subset(range(min(args.limit, len(data))))
    if args.multifactor:
        return _multifactor(args, model, judge, sha, data, data_cfg)
    if args.batch_size < 3:
        raise ValueError(f"--batch-size={args.batch_size} must be >= 3")
    report = evaluate_two_factor(model, cfg, judge, data, repeats=args.repeats, batch_size=args.batch_size,
                                 seed=args.seed, progress=not getattr(args, "quiet", False))
    table = markdown_table(report)
    print(table)
    print(f"judge sha256: {sha}")
    out = Path(args.out) if args.out else Path(args.run) / "eval.json"
    payload = {"run": str(args.run), "judge": str(args.judge), "judge_sha256": sha, "data": dataclasses.asdict(data_cfg),
               "split": "test" if test is not None else "train", "limit": args.limit or None, **dataclasses.asdict(report)}
    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), table + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def _multifactor(args: argparse.Namespace, model, judge, sha: str, data, data_cfg) -> int:
    from ..multifactor import evaluate_multifactor, load_factors, multifactor_markdown

    fs = load_factors(args.run)
    results, parts = {}, []
    for kind, groups in (("label-free", fs.free), ("supervised", fs.supervised)):
        if groups is None:
            continue
        res = evaluate_multifactor(model, judge, data, fs, groups, batch_size=args.batch_size, seed=args.seed,
                                   progress=not getattr(args, "quiet", False))
        results[kind] = res
        parts.append(multifactor_markdown(res, f"{kind} groups"))
    table = "\n\n".join(parts)
    print(table)
    print(f"judge sha256: {sha}")
    out = Path(args.out) if args.out else Path(args.run) / "eval_multifactor.json"
    payload = {"run": str(args.run), "judge": str(args.judge), "judge_sha256": sha,
               "data": dataclasses.asdict(data_cfg), **results}
    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), table + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0
