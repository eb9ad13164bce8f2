"""`skd eval --MODE --run RUN`: measure a trained run. One mode per benchmark family."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import atomic_write_text
from ..config import AUDIO_DATA, Config
from ..data import load_dataset
from ..train import load_run

HELP = "evaluate a trained run (--audio: speaker EER and probes; --factors: factor probes)"
DESCRIPTION = """Measure how well a trained run disentangles its data.

modes (choose one):
  --audio     speech runs (fsdd, timit, audio folders), EVALUATION.md §4: static and dynamic
              speaker-verification EER (cosine scores of all test-utterance pairs, exact ROC
              crossing), speaker accuracy of a linear probe on static vs dynamic embeddings, and
              content (e.g. digit) accuracy of a probe on dynamic vs static embeddings.
  --factors   any run with labelled factors (oscillators, shapes, arrays with labels): for every
              factor, the accuracy of a linear probe on the static and on the dynamic embedding.

examples:
  skd eval --audio --run runs/fsdd
  skd eval --factors --run runs/oscillators

C is fitted on the whole training split (or --fit-batch random training sequences). Results are printed and written to
RUN/eval_<mode>.json (or --out)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    modes = p.add_mutually_exclusive_group(required=True)
    for name, (flag_help, _) in MODES.items():
        modes.add_argument(f"--{name}", dest="mode", action="store_const", const=name, help=flag_help)
    p.add_argument("--run", required=True, metavar="RUN", help="trained run folder (holds checkpoint.pt)")
    p.add_argument("--data-path", metavar="PATH", help="read the run's dataset from PATH instead of its data.path")
    p.add_argument("--fit-batch", type=int, default=0,
                   help="random training sequences used to fit C (default: 0 = all of them, deterministic)")
    p.add_argument("--seed", type=int, default=0, help="seed for the fit batch (default: 0)")
    p.add_argument("--coords", choices=("latent", "eigen"), default="latent",
                   help="embedding coordinates: latent-space projections (default) or eigen-coordinates")
    p.add_argument("--pool", choices=("mean", "flat"), default="mean",
                   help="--factors: time-average each part (mean, default, as in --audio) or keep the whole sequence (flat)")
    p.add_argument("--out", "-o", metavar="FILE", help="JSON output (default: RUN/eval_<mode>.json)")


def _load(args: argparse.Namespace) -> tuple[Any, Config, Any, Any]:
    if args.fit_batch == 1 or args.fit_batch < 0:
        raise ValueError(f"--fit-batch={args.fit_batch} must be 0 (all training sequences) or >= 2")
    model, cfg = load_run(args.run)
    data_cfg = cfg.data if not args.data_path else dataclasses.replace(cfg.data, path=args.data_path)
    train, test = load_dataset(data_cfg)
    if test is None:
        raise ValueError(f"the run's dataset ({data_cfg.name}) has no test split to evaluate on")
    model.check_input(train.batch([0]))
    args.fit_batch = args.fit_batch or len(train)
    return model, cfg, train, test


def _pct(v: float | None) -> str:
    return "   n/a" if v is None else f"{100 * v:5.1f}%"


def run_audio(args: argparse.Namespace) -> dict[str, Any]:
    from ..eval_audio import evaluate_audio

    model, cfg, train, test = _load(args)
    if cfg.data.name not in AUDIO_DATA:
        raise ValueError(f"--audio needs a speech run (data.name in {', '.join(AUDIO_DATA)}); "
                         f"{args.run} was trained on data.name={cfg.data.name!r} (try --factors)")
    res = evaluate_audio(model, cfg, train, test, fit_batch=args.fit_batch, seed=args.seed, coords=args.coords)
    content = res.extra.get("content_factor")
    print(f"{cfg.data.name}: {res.n_utterances} test utterances, {res.n_speakers} speakers; "
          f"static set {res.n_static}/{res.k} eigenvalues; probes {res.probe_protocol}")
    print(f"  EER        static {_pct(res.static_eer)}   dynamic {_pct(res.dynamic_eer)}   (whole latent {_pct(res.full_eer)})")
    print(f"  EER, centred embeddings: static {_pct(res.static_eer_centered)}   dynamic {_pct(res.dynamic_eer_centered)}")
    print(f"  speaker    static {_pct(res.speaker_probe_static)}   dynamic {_pct(res.speaker_probe_dynamic)}   "
          f"(chance {_pct(res.speaker_chance)})")
    if content:
        print(f"  {content:<10} dynamic {_pct(res.content_probe_dynamic)}   static {_pct(res.content_probe_static)}   "
              f"(chance {_pct(res.content_chance)})")
    if res.swap:
        line = f"  swaps, re-encoded: speaker = static donor's {_pct(res.swap['speaker_of_static_donor'])}"
        if "content_of_dynamic_source" in res.swap:
            line += f"   {content} = dynamic source's {_pct(res.swap['content_of_dynamic_source'])}"
        print(line)
    return res.to_dict()


def run_factors(args: argparse.Namespace) -> dict[str, Any]:
    from ..probe import factor_probes

    model, cfg, train, test = _load(args)
    if not any(f.name in test.labels for f in test.factors):
        raise ValueError(f"the run's dataset ({cfg.data.name}) has no labelled factors to probe")
    res = factor_probes(model, cfg, train, test, fit_batch=args.fit_batch, seed=args.seed, pool=args.pool, coords=args.coords)
    print(f"{cfg.data.name}: linear-probe accuracy on {len(test)} test sequences ({args.pool} embeddings)")
    print(f"  {'factor':<12}{'kind':<9}{'static':>8}{'dynamic':>9}{'chance':>8}")
    for name, r in res.items():
        print(f"  {name:<12}{r['kind']:<9}{_pct(r['static']):>8}{_pct(r['dynamic']):>9}{_pct(r['chance']):>8}")
    return {"factors": res, "pool": args.pool, "coords": args.coords, "fit_batch": min(args.fit_batch, len(train)),
            "n_test": len(test)}


# mode name -> (help, runner). A new benchmark family adds one entry here.
MODES: dict[str, tuple[str, Callable[[argparse.Namespace], dict[str, Any]]]] = {
    "audio": ("speech: static/dynamic speaker EER and linear probes (EVALUATION.md §4)", run_audio),
    "factors": ("any labelled data: probe every factor from the static and the dynamic embedding", run_factors),
}


def run(args: argparse.Namespace) -> int:
    result = MODES[args.mode][1](args)
    out = Path(args.out) if args.out else Path(args.run) / f"eval_{args.mode}.json"
    payload = {"run": str(args.run), "mode": args.mode, "fit_batch": args.fit_batch, "seed": args.seed, **result}
    atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
