"""Shared command line of the benchmark scripts that read a trained run on a test split
(``part_probes.py``, ``swap_errors.py``): the arguments, and loading the model and the data."""
from __future__ import annotations

import argparse

import torch


def add_test_split_args(ap: argparse.ArgumentParser) -> None:
    """--run, --data, --batch-size, --n, --threads, --seed, --json."""
    ap.add_argument("--run", required=True, help="run folder or checkpoint")
    ap.add_argument("--data", required=True, help="Sprites folder (or any data spec with labels)")
    ap.add_argument("--batch-size", type=int, default=256, help="sequences per C fit (default 256, the reference)")
    ap.add_argument("--n", type=int, default=2560, help="test sequences used (a multiple of --batch-size)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the numbers here")


def load_model_and_test(args: argparse.Namespace):
    """(model, config, test split, n): the run's model (frame networks as in training), its
    config, the test split of ``--data`` and the number of whole batches' sequences to use."""
    if args.threads:
        torch.set_num_threads(args.threads)
    from skd.data import data_config_from_spec, load_dataset
    from skd.training.loop import load_run

    model, cfg = load_run(args.run, precision="auto")
    _, test = load_dataset(data_config_from_spec(args.data, cfg.data))
    if test is None:
        raise SystemExit(f"error: {args.data}: no test split")
    n = min(args.n, len(test)) // args.batch_size * args.batch_size
    if n == 0:
        raise SystemExit(f"error: --n and the test split ({len(test)}) hold no whole batch of {args.batch_size}")
    return model, cfg, test, n
