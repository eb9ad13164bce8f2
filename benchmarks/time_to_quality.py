"""Wall-clock training time until an SKD model reaches judge quality on real Sprites.

    PYTHONPATH=src python benchmarks/time_to_quality.py --preset fast --data data/sprites \
        --judge judges/sprites --minutes 30 --out runs/ttq_fast
    PYTHONPATH=src python benchmarks/time_to_quality.py --preset sprites ...   # the paper size

Training runs in chunks of ``--eval-every`` minutes of training time (``skd train`` semantics,
resumed exactly between chunks). After each chunk the model is scored with Protocol A with
sampling (EVALUATION.md §2: keep the dynamics, sample the statics, judge's action head) on the
WHOLE test split; the evaluation time is not counted as training time. Every point goes to
OUT/ttq.jsonl; the end prints the training time at which Acc first reached 95 % and 99 %, and
when the targets (Acc ≥ 99 %, IS ≥ --target-is) were first met together. ``--static-split refined``
scores the refined split of ``skd.pipelines.split`` (and logs the plain eigen split beside it). ``--stop-at-target``
ends the run there. Re-running with the same --out continues where it stopped.

``--score-kept DIR`` trains nothing: it scores every checkpoint file in DIR (for example the
``RUN/checkpoints/`` that ``skd train --set train.keep_every=N`` keeps) in step order, with the
training time each checkpoint records, and writes the same log and summary to --out. One
uninterrupted training run then gives the whole curve.

    skd train --config fast32 --set data.path=data/sprites32 --set train.keep_every=500 --minutes 30 --out runs/f32
    PYTHONPATH=src python benchmarks/time_to_quality.py --score-kept runs/f32/checkpoints --static-split refined \
        --data data/sprites32 --judge judges/sprites32 --out runs/f32_ttq
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from skd.config import load_config
from skd.data import load_dataset
from skd.evaluation.two_factor import evaluate_two_factor
from skd.evaluation.judge import load_judge
from skd.training.loop import load_run, train


def score(run: Path, judge, test, seed: int, split: str = "eigen", fit_data=None, fit_batch: int = 0) -> dict[str, float]:
    """Protocol A with sampling (one draw) of a run folder or checkpoint file; with ``fit_data``,
    one C (and split) fitted on ``fit_batch`` of its sequences (0 = all) instead of one per test batch."""
    from skd.pipelines.basis import BasisSpec, fit_reference_basis

    model, cfg = load_run(run)
    basis = None if fit_data is None else fit_reference_basis(model, fit_data, BasisSpec.from_loss(cfg.loss, split=split, fit_batch=fit_batch, seed=seed))
    rep = evaluate_two_factor(model, cfg, judge, test, repeats=1, seed=seed, progress=False,
                              only=(("A", "sample"),), sanity=False, split=split, basis=basis)
    row = rep.table["A"]["sample"]["action"]
    out = {k: row[k]["mean"] for k in ("acc", "is", "h_yx", "h_y")}
    out["static_dims"] = rep.static_split["static_dims_max"]
    out["statics_unchanged"] = {h: m["mean"] for h, m in rep.unchanged["A"]["sample"].items()}
    if "moved_per_batch_mean" in rep.static_split:
        out["moved_per_batch"] = rep.static_split["moved_per_batch_mean"]
    return out


def _point_line(point: dict) -> str:
    extra = f"  [eigen split: Acc {100 * point['eigen_acc']:.2f} %, IS {point['eigen_is']:.3f}]" if "eigen_acc" in point else ""
    return (f"{point['train_seconds'] / 60:6.1f} min  step {point['step']:6d}  epoch {point['epoch']:3d}  "
            f"Acc {100 * point['acc']:6.2f} %  IS {point['is']:.3f}  H(y|x) {point['h_yx']:.4f}  H(y) {point['h_y']:.3f}  "
            f"(eval {point['eval_seconds']:.0f} s)" + extra)


def score_kept(folder: Path, judge, test, args, log_path: Path, fit=None) -> list[dict]:
    """Score every checkpoint file in ``folder`` (step order); returns the logged points."""
    from skd.files.checkpoint import load_checkpoint

    files = sorted(folder.glob("*.pt"))
    if not files:
        raise SystemExit(f"error: no checkpoint files (*.pt) in {folder}")
    found = sorted((load_checkpoint(f, kind="koopman-ae")["step"], f) for f in files)
    points = []
    log_path.write_text("")
    for i, (_, f) in enumerate(found):
        ck = load_checkpoint(f, kind="koopman-ae")
        t = time.time()
        point = {"train_seconds": round(float(ck["elapsed"]), 1), "step": int(ck["step"]), "epoch": int(ck["epoch"]),
                 "checkpoint": f.name, **score(f, judge, test, seed=i, split=args.static_split, **fit)}
        if args.static_split == "refined":
            point.update({f"eigen_{k}": v for k, v in score(f, judge, test, seed=i, **fit).items()})
        point["eval_seconds"] = round(time.time() - t, 1)
        points.append(point)
        with open(log_path, "a") as fh:
            fh.write(json.dumps(point) + "\n")
        print(_point_line(point), flush=True)
    return points


def first(points: list[dict], pred) -> dict | None:
    return next((p for p in points if pred(p)), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="fast", help="config preset or TOML (default: fast)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", required=True, help="built Sprites folder (skd data sprites)")
    ap.add_argument("--judge", required=True, help="judge folder or judge.pt (skd judge train)")
    ap.add_argument("--minutes", type=float, default=30.0, help="total training-time budget")
    ap.add_argument("--eval-every", type=float, default=5.0, help="minutes of training between evaluations")
    ap.add_argument("--target-is", type=float, default=8.5)
    ap.add_argument("--stop-at-target", action="store_true")
    ap.add_argument("--static-split", choices=("eigen", "refined"), default="eigen",
                    help="static split scored (skd eval two-factor --static-split); with 'refined' the eigen split is logged too")
    ap.add_argument("--eval-threads", type=int, default=0, help="threads while evaluating (0 = as training)")
    ap.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    ap.add_argument("--score-kept", metavar="DIR", help="score the checkpoint files in DIR instead of training")
    ap.add_argument("--fit-on", choices=("batch", "train"), default="batch",
                    help="refit C per test batch of 256 (default) or fit one C on --fit-batch training sequences")
    ap.add_argument("--fit-batch", type=int, default=2048, help="--fit-on train: training sequences (0 = all)")
    args = ap.parse_args()

    out = Path(args.out)
    cfg = load_config(args.preset, [*args.overrides, f'data.path="{args.data}"'])
    train_data, test = load_dataset(cfg.data)
    judge, sha = load_judge(args.judge)
    fit = {"fit_data": train_data, "fit_batch": args.fit_batch} if args.fit_on == "train" else {}
    log_path = out / "ttq.jsonl"
    points = [json.loads(s) for s in log_path.read_text().splitlines()] if log_path.exists() else []
    print(f"preset {args.preset} {' '.join(args.overrides)} | judge sha256 {sha[:12]} | "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}", flush=True)
    trained = points[-1]["train_seconds"] if points else 0.0
    if args.score_kept:
        out.mkdir(parents=True, exist_ok=True)
        points = score_kept(Path(args.score_kept), judge, test, args, log_path, fit)
        trained = float("inf")
    while trained < args.minutes * 60 - 1:
        chunk = min(args.eval_every, args.minutes - trained / 60)
        run_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=0, max_steps=0, minutes=chunk))
        res = train(run_cfg, out, train_data, resume=(out / "checkpoint.pt").exists(), progress=False,
                    command="benchmarks/time_to_quality.py")
        trained = res.seconds
        t = time.time()
        threads = torch.get_num_threads()
        if args.eval_threads:
            torch.set_num_threads(args.eval_threads)
        point = {"train_seconds": round(trained, 1), "step": res.step, "epoch": res.epoch,
                 **score(out, judge, test, seed=len(points), split=args.static_split, **fit), "eval_seconds": 0.0}
        if args.static_split == "refined":
            point.update({f"eigen_{k}": v for k, v in score(out, judge, test, seed=len(points), **fit).items()})
        torch.set_num_threads(threads)
        point["eval_seconds"] = round(time.time() - t, 1)
        points.append(point)
        with open(log_path, "a") as f:
            f.write(json.dumps(point) + "\n")
        print(_point_line(point), flush=True)
        if args.stop_at_target and point["acc"] >= 0.99 and point["is"] >= args.target_is:
            break

    def when(p):
        return f"{p['train_seconds'] / 60:.1f} min (step {p['step']}, epoch {p['epoch']})" if p else "not reached"

    summary = {
        "preset": args.preset, "overrides": args.overrides, "static_split": args.static_split, "fit_on": args.fit_on, "fit_batch": args.fit_batch if args.fit_on == "train" else None, "judge_sha256": sha, "points": len(points),
        "acc95": first(points, lambda p: p["acc"] >= 0.95), "acc99": first(points, lambda p: p["acc"] >= 0.99),
        "target": first(points, lambda p: p["acc"] >= 0.99 and p["is"] >= args.target_is), "best": max(points, key=lambda p: p["acc"]),
        "last": points[-1],
    }
    (out / "ttq_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nAcc ≥ 95 %: {when(summary['acc95'])}\nAcc ≥ 99 %: {when(summary['acc99'])}\n"
          f"Acc ≥ 99 % and IS ≥ {args.target_is}: {when(summary['target'])}")


if __name__ == "__main__":
    main()
