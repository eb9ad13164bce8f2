"""`skd swap`: two-factor swaps between chosen sequences of a dataset, given a trained run."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..files.checkpoint import atomic_write_text
from ..config import AUDIO_DATA
from ..data import data_config_from_spec, load_dataset
from ..pipelines.basis import BasisSpec, fit_reference_basis
from ..pipelines.pairs import parse_pairs, pick_pairs
from ..render.swaps import write_swaps
from ..training.loop import load_run

HELP = "swap static and dynamic factors between sequences of a trained run"
DESCRIPTION = """Decode each sequence's motion with another sequence's appearance.

examples:
  skd swap --run demo_out/run                    # 4 pairs from the run's own test data
  skd swap --run runs/mine --pairs 0:5,12:3      # chosen pairs (indices into the split)
  skd swap --run runs/sprites --static-split refined   # motion-carrying static directions stay with the motion
  skd swap --run runs/mine --data other.npz --out swaps/
  skd swap --run runs/sprites --factors hair,top --pairs 3:17   # only those factor groups (after `skd factors`)
  skd swap --run runs/fsdd --pairs 3:120          # speech: utterance indices; writes WAVs + PNGs

On a speech run (fsdd, timit, audio) pairs are utterances: for each pair (A, B) it writes
pairNN_A-words_B-voice.wav, pairNN_B-words_A-voice.wav, the originals and a spectrogram PNG.
C is refitted on --fit-batch random sequences of the chosen split (C depends on its batch)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help="trained run folder (holds checkpoint.pt)")
    p.add_argument("--data", metavar="SPEC", help="'shapes', a Sprites folder or .npy/.npz sequences; for a speech run, "
                                                  "the folder of its corpus (default: the run's own dataset)")
    p.add_argument("--split", choices=["test", "train"], default="test", help="which split of the run's dataset (default: test)")
    p.add_argument("--pairs", metavar="I:J,...",
                   help="pairs of sequence (speech: utterance) indices; default: --n-pairs pairs that differ in all labels")
    p.add_argument("--n-pairs", type=int, default=4, help="number of automatic pairs (default: 4)")
    p.add_argument("--fit-batch", type=int, default=256, help="sequences used to fit C (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed for the fit batch and the automatic pairs")
    p.add_argument("--out", "-o", metavar="DIR", help="output folder (default: RUN/swaps)")
    p.add_argument("--factors", metavar="NAMES", help="swap only these static factor groups from B into A, e.g. hair,top "
                   "(names or group numbers from `skd factors`)")
    p.add_argument("--supervised", action="store_true", help="with --factors: use the supervised groups")
    p.add_argument("--static-split", choices=["eigen", "refined"], default="eigen",
                   help="static part: the eigen split of Eq. 5 (default) or 'refined' (static directions that "
                        "depend on the dynamics stay with the motion; docs/MULTIFACTOR.md)")


def run(args: argparse.Namespace) -> int:
    if args.n_pairs < 1:  # checked before anything is loaded or written
        raise ValueError(f"--n-pairs={args.n_pairs} must be >= 1")
    if args.fit_batch < 2:
        raise ValueError(f"--fit-batch={args.fit_batch} must be >= 2")
    model, cfg = load_run(args.run)
    audio = cfg.data.name in AUDIO_DATA
    if not args.data:
        data_cfg = cfg.data
    elif audio:  # a speech run's own corpus, moved: --data is its folder
        data_cfg = dataclasses.replace(cfg.data, path=args.data)
    else:
        data_cfg = data_config_from_spec(args.data, cfg.data)
    train, test = load_dataset(data_cfg)
    data = test if args.split == "test" and test is not None else train
    model.check_input(data.batch([0]))
    out = Path(args.out) if args.out else Path(args.run) / "swaps"
    if audio:
        return _run_audio(args, model, cfg, data, out)
    pairs = parse_pairs(args.pairs, len(data)) if args.pairs else pick_pairs(data, args.n_pairs, seed=args.seed)
    if args.factors:
        return _swap_factors(args, model, data, pairs, out)
    basis = fit_reference_basis(model, data, BasisSpec.from_loss(cfg.loss, split=args.static_split, fit_batch=args.fit_batch, seed=args.seed))
    res = write_swaps(model, data, basis, pairs, out)
    atomic_write_text(out / "swap.json", json.dumps({"run": str(args.run), "pairs": res.pairs, "fit_batch": args.fit_batch,
                                                     "seed": args.seed, "static": int(basis.static.sum()),
                                                     "static_split": args.static_split}, indent=2) + "\n")
    print(f"wrote {res.grid}, {res.gif} and {res.eigen_plot}")
    return 0


def _swap_factors(args: argparse.Namespace, model, data, pairs, out: Path) -> int:
    """Rows per pair: A, B, A with B's chosen factor groups."""
    import torch

    from ..pipelines import ops
    from ..render import images as viz
    from ..pipelines.factors import swap_groups
    from ..pipelines.factorset import load_factors, resolve_groups

    fs = load_factors(args.run)
    groups = fs.supervised if args.supervised else fs.free
    if groups is None:
        raise ValueError("no supervised groups: run `skd factors` on labelled data")
    chosen = resolve_groups(groups, args.factors)
    proj = groups.projector_for(chosen)
    names = "+".join(groups.names[g] if groups.names else str(g) for g in chosen)
    ia, ib = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    xa, xb = data.batch(ia), data.batch(ib)
    mixed = ops.decode(model, swap_groups(ops.encode(model, xa), ops.encode(model, xb), proj))
    rows, labels = [], []
    for p, (a, b) in enumerate(pairs):
        rows += [xa[p], xb[p], mixed[p]]
        labels += [f"A={a}", f"B={b}", f"A + B's {names}"]
    stem = "swap_" + names.replace("+", "_")
    png = viz.save_grid(torch.stack(rows), out / f"{stem}.png", row_labels=labels)
    gif = viz.save_gif(torch.stack(rows), out / f"{stem}.gif", row_labels=labels)
    print(f"wrote {png} and {gif}")
    return 0


def _run_audio(args: argparse.Namespace, model, cfg, data, out: Path) -> int:
    """Speech run: swaps between utterances, written as WAV files and spectrogram images."""
    from ..render.audio import paths_of, utterance_view, write_audio_swaps

    view = utterance_view(data)  # one row per utterance, for choosing and checking pairs
    pairs = parse_pairs(args.pairs, len(view)) if args.pairs else pick_pairs(view, args.n_pairs, seed=args.seed)
    basis = fit_reference_basis(model, data, BasisSpec.from_loss(cfg.loss, fit_batch=args.fit_batch, seed=args.seed))
    res = write_audio_swaps(model, data, basis, pairs, out, seed=args.seed)
    atomic_write_text(out / "swap.json", json.dumps({"run": str(args.run), "pairs": res.pairs, "files": paths_of(data, pairs),
                                                     "fit_batch": args.fit_batch, "seed": args.seed,
                                                     "static": int(basis.static.sum())}, indent=2) + "\n")
    print(f"wrote {len(res.files)} files ({len(pairs)} pairs: WAVs and spectrogram PNGs) to {out}")
    return 0
