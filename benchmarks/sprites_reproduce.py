"""Reproduce the Sprites table on this machine: data → judge → SKD training → Protocols A/B.

Every stage is resumable and skipped when its output exists, so the script can be re-run (also
after a reboot) until the training budget is spent:

    python benchmarks/sprites_reproduce.py --sheets path/to/lpc-sprites --work work/sprites \
        --train-minutes 60

Stages (each prints what it did and the command-line equivalent):
1. ``skd data sprites --sheets SHEETS --out WORK/data --dtype uint8``
2. ``skd judge train --data WORK/data --out WORK/judge`` (docs/EVALUATION.md §1 recipe)
3. ``skd train --config PRESET --set data.path=WORK/data --out WORK/run`` for --train-minutes
   (PRESET = ``--preset``: ``sprites``, the paper size, or ``fast``, half the conv width),
   then ``skd train --resume WORK/run`` on later invocations
4. ``skd eval two-factor --run WORK/run --judge WORK/judge --data WORK/data --repeats 5 --static-split refined
   --fit-on train --fit-batch 2048 --out WORK/run/eval_refined.json`` (the project's headline
   protocol: one C and refined static split fitted on training sequences), and the reference
   code's protocol (eigen split, C refitted per test batch of 256) on Protocol A into
   ``WORK/run/eval_eigen.json``
5. ``skd factors --run WORK/run --split train --n-factors 4 --fit-batch 2048`` and
   ``skd eval multifactor --run WORK/run --judge WORK/judge --data WORK/data``
   (``--skip-multifactor`` skips this stage)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from skd.cli.main import main as skd


def stage(title: str, argv: list[str]) -> None:
    print(f"\n=== {title}: skd {' '.join(argv)}", flush=True)
    t0 = time.time()
    rc = skd(argv)
    if rc != 0:
        sys.exit(f"stage failed: {title} (exit {rc})")
    print(f"=== {title} done in {time.time() - t0:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sheets", default="../shared/data/lpc-sprites", help="LPC sprite sheets folder")
    ap.add_argument("--work", default="work/sprites", help="working folder (data, judge, run)")
    ap.add_argument("--preset", default="sprites", help="SKD config preset: sprites (paper size, default) or fast")
    ap.add_argument("--train-minutes", type=float, default=60.0, help="SKD training budget for this invocation")
    ap.add_argument("--judge-epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--skip-multifactor", action="store_true")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra skd train overrides")
    args = ap.parse_args()
    work = Path(args.work)
    data, judge, run = work / "data", work / "judge", work / "run"
    if not (data / "meta.json").exists():
        stage("build data", ["data", "sprites", "--sheets", args.sheets, "--out", str(data), "--dtype", "uint8"])
    if not (judge / "judge.pt").exists():
        stage("train judge", ["judge", "train", "--data", str(data), "--out", str(judge),
                              "--set", f"judge.epochs={args.judge_epochs}"])
    print("judge:", json.loads((judge / "judge.json").read_text())["test_accuracy"])
    sets = [a for s in args.overrides for a in ("--set", s)]
    if (run / "checkpoint.pt").exists():
        done = json.loads((run / "result.json").read_text()) if (run / "result.json").exists() else {}
        stage("resume SKD", ["train", "--resume", str(run), "--set", "train.epochs=1000",
                             "--set", f"train.minutes={args.train_minutes}"])
        print("previous:", done)
    else:
        stage("train SKD", ["train", "--config", args.preset, "--set", f"data.path={json.dumps(str(data))}",
                            "--set", f"train.minutes={args.train_minutes}", *sets, "--out", str(run)])
    if not args.skip_eval:
        common = ["eval", "two-factor", "--run", str(run), "--judge", str(judge), "--data", str(data), "--repeats", str(args.repeats)]
        stage("evaluate (refined split, C fitted on training sequences)",
              [*common, "--static-split", "refined", "--fit-on", "train", "--fit-batch", "2048",
               "--out", str(run / "eval_refined.json")])
        stage("evaluate (reference protocol: eigen split, C per test batch)",
              [*common, "--protocols", "A", "--out", str(run / "eval_eigen.json")])
    if not args.skip_multifactor:
        stage("factor groups", ["factors", "--run", str(run), "--data", str(data), "--split", "train", "--n-factors", "4",
                                "--fit-batch", "2048"])
        stage("multifactor metric", ["eval", "multifactor", "--run", str(run), "--judge", str(judge),
                                     "--data", str(data)])


if __name__ == "__main__":
    main()
