"""`skd swap`: two-factor swaps between chosen sequences of a dataset, given a trained run."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..checkpoint import atomic_write_text
from ..config import AUDIO_DATA
from ..data import load_dataset
from ..showcase import fit_reference_basis, parse_pairs, pick_pairs, write_swaps
from ..train import load_run

HELP = "swap static and dynamic factors between sequences of a trained run"
DESCRIPTION = """Decode each sequence's motion with another sequence's appearance.

examples:
  skd swap --run demo_out/run                    # 4 pairs from the run's own test data
  skd swap --run runs/mine --pairs 0:5,12:3      # chosen pairs (indices into the split)
  skd swap --run runs/mine --data other.npz --split all --out swaps/
  skd swap --run runs/fsdd --pairs 3:120          # speech: utterance indices; writes WAVs + PNGs

On a speech run (fsdd, timit, audio) pairs are utterances: for each pair (A, B) it writes
pairNN_A-words_B-voice.wav, pairNN_B-words_A-voice.wav, the originals and a spectrogram PNG.
C is refitted on --fit-batch random sequences of the chosen split (C depends on its batch)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, metavar="RUN", help="trained run folder (holds checkpoint.pt)")
    p.add_argument("--data", metavar="FILE", help=".npy/.npz sequences (default: the run's own dataset)")
    p.add_argument("--split", choices=["test", "train"], default="test", help="which split of the run's dataset (default: test)")
    p.add_argument("--pairs", metavar="I:J,...",
                   help="pairs of sequence (speech: utterance) indices; default: --n-pairs pairs that differ in all labels")
    p.add_argument("--n-pairs", type=int, default=4, help="number of automatic pairs (default: 4)")
    p.add_argument("--fit-batch", type=int, default=256, help="sequences used to fit C (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed for the fit batch and the automatic pairs")
    p.add_argument("--out", "-o", metavar="DIR", help="output folder (default: RUN/swaps)")


def run(args: argparse.Namespace) -> int:
    model, cfg = load_run(args.run)
    if args.data:
        data_cfg = dataclasses.replace(cfg.data, name="arrays", path=args.data, labels="", test_path="")
        data, _ = load_dataset(data_cfg)
    else:
        train, test = load_dataset(cfg.data)
        data = test if args.split == "test" and test is not None else train
    model.check_input(data.batch([0]))
    if args.fit_batch < 2:
        raise ValueError(f"--fit-batch={args.fit_batch} must be >= 2")
    out = Path(args.out) if args.out else Path(args.run) / "swaps"
    if cfg.data.name in AUDIO_DATA and not args.data:
        return _run_audio(args, model, cfg, data, out)
    pairs = parse_pairs(args.pairs, len(data)) if args.pairs else pick_pairs(data, args.n_pairs, seed=args.seed)
    basis = fit_reference_basis(model, data, cfg, fit_batch=args.fit_batch, seed=args.seed)
    res = write_swaps(model, data, basis, pairs, out)
    atomic_write_text(out / "swap.json", json.dumps({"run": str(args.run), "pairs": res.pairs, "fit_batch": args.fit_batch,
                                                     "seed": args.seed, "static": int(basis.static.sum())}, indent=2) + "\n")
    print(f"wrote {res.grid}, {res.gif} and {res.eigen_plot}")
    return 0


def _run_audio(args: argparse.Namespace, model, cfg, data, out: Path) -> int:
    """Speech run: swaps between utterances, written as WAV files and spectrogram images."""
    from ..audio.listen import paths_of, utterance_view, write_audio_swaps

    view = utterance_view(data)  # one row per utterance, for choosing and checking pairs
    pairs = parse_pairs(args.pairs, len(view)) if args.pairs else pick_pairs(view, args.n_pairs, seed=args.seed)
    basis = fit_reference_basis(model, data, cfg, fit_batch=args.fit_batch, seed=args.seed)
    res = write_audio_swaps(model, data, basis, pairs, out, seed=args.seed)
    atomic_write_text(out / "swap.json", json.dumps({"run": str(args.run), "pairs": res.pairs, "files": paths_of(data, pairs),
                                                     "fit_batch": args.fit_batch, "seed": args.seed,
                                                     "static": int(basis.static.sum())}, indent=2) + "\n")
    print(f"wrote {len(res.files)} files ({len(pairs)} pairs: WAVs and spectrogram PNGs) to {out}")
    return 0
