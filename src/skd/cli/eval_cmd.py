"""`skd eval --MODE --run RUN`: measure a trained run. One mode per benchmark family."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from ..files.checkpoint import atomic_write_text
from ..config import AUDIO_DATA, Config
from ..data import load_dataset
from ..training.loop import load_run

HELP = "evaluate a trained run: two-factor | multifactor | audio | factors | scorecard"
DESCRIPTION = """Measure how well a trained run disentangles its data. One subcommand per benchmark family:

  two-factor   --judge JUDGE: Protocols A and B of docs/EVALUATION.md §2 on the whole test split with
               both manipulations (sample, swap): Acc, IS, H(y|x), H(y) as mean ± std over
               --repeats, plus reconstruction MSE and the judge's accuracy on reconstructions.
  multifactor  --judge JUDGE: the multifactor metric of docs/EVALUATION.md §3 with the groups of
               `skd factors` (factor × judge-head matrix, on-/off-target, action, chance).
  audio        speech runs (fsdd, timit, audio folders), docs/EVALUATION.md §4: static and dynamic
               speaker-verification EER, speaker and content accuracy of linear probes.
  factors      any run with labelled factors: for every factor, the accuracy of a linear probe
               on the static and on the dynamic embedding.
  scorecard    every target in one table (the same as the top-level `skd scorecard`).

examples:
  skd eval two-factor --run runs/sprites --judge judges/sprites --data data/sprites
  skd eval two-factor --run runs/sprites --judge judges/sprites --static-split refined --fit-on train --fit-batch 2048
  skd eval multifactor --run runs/sprites --judge judges/sprites
  skd eval audio --run runs/fsdd
  skd eval factors --run runs/oscillators

Results are printed and written to RUN/eval_<mode>.json (or --out; two-factor writes
eval_judge.json); judge modes also write a markdown table beside it. `skd eval --multifactor`,
`--audio`, `--factors` and `skd eval` without a subcommand (two-factor) are deprecated spellings
that still work for one release."""

# the JSON file each subcommand writes by default: RUN/eval_<name>.json
OUT_NAMES = {"two-factor": "judge", "multifactor": "multifactor", "audio": "audio", "factors": "factors"}
# deprecated mode flags of `skd eval` -> subcommand
LEGACY_FLAGS = {"--multifactor": "multifactor", "--audio": "audio", "--factors": "factors"}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help="trained run folder (holds checkpoint.pt)")
    p.add_argument("--seed", type=int, default=0, help="seed for the fit batch and the draws (default: 0)")
    p.add_argument("--out", "-o", metavar="FILE", help="JSON output (default: RUN/eval_<mode>.json)")


def _judge_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--judge", metavar="JUDGE", required=required, help="judge folder or judge.pt")
    p.add_argument("--data", metavar="SPEC", help="'shapes', a Sprites folder or .npy/.npz (default: the run's)")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per C fit / batch (default: 256)")
    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="only the first N test sequences (a quick look; the protocol uses all)")
    p.add_argument("--precision", choices=("auto", "fp32"), default="auto",
                   help="model's frame networks: as in training (bf16 where the hardware has it; default) or fp32; "
                        "the judge always reads in fp32")


def _probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", "--data-path", dest="data_path", metavar="PATH",
                   help="where the run's dataset is now (replaces its data.path; default: the run's)")
    p.add_argument("--fit-batch", type=int, default=0,
                   help="random training sequences used to fit C (default: 0 = all of them)")
    p.add_argument("--coords", choices=("latent", "eigen"), default="latent",
                   help="embedding coordinates: latent-space projections (default) or eigen-coordinates")


def add_two_factor(p: argparse.ArgumentParser) -> None:
    _common(p)
    _judge_args(p)
    p.add_argument("--repeats", type=int, default=5, help="fresh random draws (default: 5)")
    p.add_argument("--protocols", default="A,B", metavar="LIST",
                   help="which protocols/manipulations, e.g. 'A' or 'A:sample,B:swap' (default: A,B = all four)")
    p.add_argument("--static-split", choices=("eigen", "refined"), default="eigen",
                   help="static part = the eigen split of Eq. 5 (default) or 'refined': ICA directions of the "
                        "static subspace that depend on the dynamics stay with the dynamics")
    p.add_argument("--fit-on", choices=("batch", "train"), default="batch",
                   help="refit C on every --batch-size test batch (default, as the reference code) or fit one C "
                        "(and split) on --fit-batch training sequences and use it for the whole test split")
    p.add_argument("--fit-batch", type=int, default=0,
                   help="with --fit-on train: random training sequences used to fit C (default: 0 = all of them)")


def add_multifactor(p: argparse.ArgumentParser) -> None:
    _common(p)
    _judge_args(p)


def add_audio(p: argparse.ArgumentParser) -> None:
    _common(p)
    _probe_args(p)


def add_factors(p: argparse.ArgumentParser) -> None:
    _common(p)
    _probe_args(p)
    p.add_argument("--pool", choices=("mean", "flat"), default="mean",
                   help="time-average each part (mean, default, as in `eval audio`) or keep the whole sequence (flat)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from . import scorecard_cmd
    from .common import common_parent

    sub = p.add_subparsers(dest="eval_mode", metavar="MODE", required=True)
    for name, (help_, adder, runner) in MODES.items():
        sp = sub.add_parser(name, help=help_, description=help_, parents=[common_parent()])
        adder(sp)
        sp.set_defaults(_run=_runner(name, runner), mode=OUT_NAMES[name])
    sp = sub.add_parser("scorecard", help=scorecard_cmd.HELP, description=scorecard_cmd.DESCRIPTION,
                        parents=[common_parent()], formatter_class=argparse.RawDescriptionHelpFormatter)
    scorecard_cmd.add_arguments(sp)
    sp.set_defaults(_run=scorecard_cmd.run)


def legacy_argv(rest: list[str]) -> tuple[list[str], str | None]:
    """Arguments after ``eval`` in the old spelling -> (new spelling, deprecation line or None)."""
    if rest and (rest[0] in MODES or rest[0] == "scorecard" or rest[0] in ("-h", "--help")):
        return rest, None
    flags = [a for a in rest if a in LEGACY_FLAGS]
    mode = LEGACY_FLAGS[flags[-1]] if flags else "two-factor"
    old = f"skd eval {flags[-1]}" if flags else "skd eval without a subcommand"
    rest = [a for a in rest if a not in LEGACY_FLAGS]
    return [mode, *rest], f"skd eval: deprecated: {old}; use `skd eval {mode} ...` (the old spelling goes away in the next release)"


def _check_fit_batch(args: argparse.Namespace) -> None:
    if args.fit_batch == 1 or args.fit_batch < 0:
        raise ValueError(f"--fit-batch={args.fit_batch} must be 0 (all training sequences) or >= 2")


def _load(args: argparse.Namespace) -> tuple[Any, Config, Any, Any]:
    _check_fit_batch(args)
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
    from ..evaluation.audio import evaluate_audio

    model, cfg, train, test = _load(args)
    if cfg.data.name not in AUDIO_DATA:
        raise ValueError(f"`skd eval audio` needs a speech run (data.name in {', '.join(AUDIO_DATA)}); "
                         f"{args.run} was trained on data.name={cfg.data.name!r} (try `skd eval factors`)")
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
        if res.swap.get("speaker_probe", "train") != "train":
            line += "   (speaker probe fitted on the unswapped test chunks: test speakers unseen in training)"
        print(line)
    for part, pairs in res.confusions.items():
        if pairs:
            print(f"  speaker probe on {part}, most frequent mistakes (true -> read, count): "
                  + ", ".join(f"{t} -> {p} ({n})" for t, p, n in pairs))
    return res.to_dict()


def run_factors(args: argparse.Namespace) -> dict[str, Any]:
    from ..evaluation.probes import factor_probes

    model, cfg, train, test = _load(args)
    if not any(f.name in test.labels for f in test.factors):
        raise ValueError(f"the run's dataset ({cfg.data.name}) has no labelled factors to probe")
    res = factor_probes(model, cfg.loss, train, test, fit_batch=args.fit_batch, seed=args.seed, pool=args.pool, coords=args.coords)
    print(f"{cfg.data.name}: linear-probe accuracy on {len(test)} test sequences ({args.pool} embeddings)")
    print(f"  {'factor':<12}{'kind':<9}{'static':>8}{'dynamic':>9}{'chance':>8}")
    for name, r in res.items():
        print(f"  {name:<12}{r['kind']:<9}{_pct(r['static']):>8}{_pct(r['dynamic']):>9}{_pct(r['chance']):>8}")
    return {"factors": res, "pool": args.pool, "coords": args.coords, "fit_batch": min(args.fit_batch, len(train)),
            "n_test": len(test)}


def _judge_data(args: argparse.Namespace):
    from ..data import data_config_from_spec
    from ..evaluation.judge import load_judge

    model, cfg = load_run(args.run, precision=getattr(args, "precision", "auto"))
    judge, sha = load_judge(args.judge)
    data_cfg = data_config_from_spec(args.data, cfg.data) if args.data else cfg.data
    train, test = load_dataset(data_cfg)
    return model, cfg, judge, sha, (test if test is not None else train), data_cfg, test is not None, train


def _markdown_beside(args: argparse.Namespace, table: str) -> None:
    out = Path(args.out) if args.out else Path(args.run) / f"eval_{args.mode}.json"
    atomic_write_text(out.with_suffix(".md"), table + "\n")


def _limited(data, limit: int):
    if not limit:
        return data
    if limit < 3:
        raise ValueError(f"--limit={limit} must be >= 3")
    return data.subset(range(min(limit, len(data))))


def parse_protocols(text: str) -> tuple[tuple[str, str], ...]:
    """'A,B:swap' -> (("A", "sample"), ("A", "swap"), ("B", "swap")); one clear error on a bad item."""
    from ..evaluation.two_factor import MANIPULATIONS, PROTOCOLS

    out: list[tuple[str, str]] = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        proto, _, how = item.partition(":")
        if proto not in PROTOCOLS or (how and how not in MANIPULATIONS):
            raise ValueError(f"--protocols item {item!r} must be A or B, optionally with :sample or :swap")
        out += [(proto, h) for h in ((how,) if how else MANIPULATIONS) if (proto, h) not in out]
    if not out:
        raise ValueError("--protocols names no protocol")
    return tuple(out)


def run_judge(args: argparse.Namespace) -> dict[str, Any]:
    from ..evaluation.two_factor import evaluate_two_factor, markdown_table

    model, cfg, judge, sha, data, data_cfg, has_test, train = _judge_data(args)
    data = _limited(data, args.limit)
    if args.batch_size < 3:
        raise ValueError(f"--batch-size={args.batch_size} must be >= 3")
    only = parse_protocols(args.protocols)
    basis, note = None, ""
    if args.fit_on == "train":
        from ..pipelines.basis import BasisSpec, fit_reference_basis

        _check_fit_batch(args)
        basis = fit_reference_basis(model, train, BasisSpec.from_loss(cfg.loss, split=args.static_split, fit_batch=args.fit_batch, seed=args.seed))
        n_fit = len(train) if args.fit_batch <= 0 else min(args.fit_batch, len(train))
        note = f"{n_fit} training sequences"
    report = evaluate_two_factor(model, cfg.loss, judge, data, repeats=args.repeats, batch_size=args.batch_size,
                                 seed=args.seed, progress=not getattr(args, "quiet", False), only=only,
                                 split=args.static_split, basis=basis, basis_note=note)
    table = markdown_table(report)
    print(table)
    print(f"judge sha256: {sha}")
    _markdown_beside(args, table)
    return {"judge": str(args.judge), "judge_sha256": sha, "data": dataclasses.asdict(data_cfg),
            "split": "test" if has_test else "train", "limit": args.limit or None, **dataclasses.asdict(report)}


def run_multifactor(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ..evaluation.multifactor import evaluate_multifactor, multifactor_markdown, reconstruction_accuracy
    from ..pipelines.factorset import load_factors

    model, cfg, judge, sha, data, data_cfg, _, _ = _judge_data(args)
    data = _limited(data, args.limit)
    fs = load_factors(args.run)
    results, parts = {}, []
    for kind, groups in (("label-free", fs.free), ("supervised", fs.supervised)):
        if groups is None:
            continue
        if (kind == "supervised" and "label-free" in results and groups.named_members() == fs.free.named_members()
                and torch.equal(groups.units.to_coords, fs.free.units.to_coords)):
            results[kind] = {**results["label-free"], "same_as": "label-free"}  # same partition: same swaps
            parts.append("**supervised groups**: the same units under the same names as the label-free groups "
                         "(table above)")
            continue
        res = evaluate_multifactor(model, judge, data, fs, groups, batch_size=args.batch_size, seed=args.seed,
                                   progress=not getattr(args, "quiet", False))
        results[kind] = res
        parts.append(multifactor_markdown(res, f"{kind} groups"))
    recon = reconstruction_accuracy(model, judge, data, batch_size=args.batch_size)
    parts.append("**ceiling**: the judge reads plain reconstructions (no swap) at "
                 + ", ".join(f"{h} {100 * v:.1f} %" for h, v in recon.items())
                 + "; no swapped factor can be read more reliably than that.")
    table = "\n\n".join(parts)
    print(table)
    print(f"judge sha256: {sha}")
    _markdown_beside(args, table)
    return {"judge": str(args.judge), "judge_sha256": sha, "data": dataclasses.asdict(data_cfg),
            "limit": args.limit or None, **results, "reconstruction": recon}


# subcommand -> (help, argument adder, runner). A new benchmark family adds one entry here.
MODES: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], dict[str, Any]]]] = {
    "two-factor": ("judge-based Protocols A and B (docs/EVALUATION.md §2)", add_two_factor, lambda a: run_judge(a)),
    "multifactor": ("multifactor metric with the groups of `skd factors`", add_multifactor, lambda a: run_multifactor(a)),
    "audio": ("speech: static/dynamic speaker EER and linear probes (docs/EVALUATION.md §4)", add_audio, lambda a: run_audio(a)),
    "factors": ("any labelled data: probe every factor from the static and the dynamic embedding", add_factors,
                lambda a: run_factors(a)),
}


def _runner(name: str, fn: Callable[[argparse.Namespace], dict[str, Any]]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        args.fit_batch = getattr(args, "fit_batch", 0)
        result = fn(args)
        out = Path(args.out) if args.out else Path(args.run) / f"eval_{OUT_NAMES[name]}.json"
        payload = {"run": str(args.run), "mode": OUT_NAMES[name], "fit_batch": args.fit_batch, "seed": args.seed, **result}
        atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out}")
        return 0

    return run


def run(args: argparse.Namespace) -> int:  # pragma: no cover - each subcommand sets its own _run
    raise AssertionError("skd eval needs a subcommand")
