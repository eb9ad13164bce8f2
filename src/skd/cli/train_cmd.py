"""`skd train`: train a Koopman autoencoder, or resume a run exactly."""
from __future__ import annotations

import argparse
import json
import logging
import os
from contextlib import nullcontext
from pathlib import Path

from ..config import Config
from ..data import load_dataset
from ..training.distributed import env_world, init_distributed, shutdown
from ..files.runfolder import claim_run_dir
from ..training.loop import train
from .common import add_config_arguments, command_line, config_from_args

HELP = "train a model on the built-in data or your arrays (or resume a run)"
DESCRIPTION = """Train a structured Koopman autoencoder.

examples:
  skd train --out runs/shapes                       # built-in shapes data, default preset
  skd train --data my.npz --out runs/mine --set train.epochs=50
  skd train --config sprites --set data.path=... --out runs/sprites
  skd train --resume runs/shapes --epochs 200       # continue exactly where it stopped
  skd train --config sprites --init-from weights/sprites --set train.lr=1e-4 --out runs/tuned   # fine-tune
  skd train --nproc 2 --out runs/ddp                # 2 local processes (torch.distributed)
  torchrun --nproc-per-node 4 -m skd.cli.main train --out runs/ddp   # same, launched by torchrun

The run folder gets config.json, command.txt, data.json, metrics.jsonl, checkpoint.pt and
result.json. With several processes train.batch_size is the GLOBAL batch (split evenly), C is
fitted on the whole global batch, and only rank 0 writes files (docs/DISTRIBUTED.md)."""
log = logging.getLogger("skd.training.loop")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, "default")
    p.add_argument("--out", "-o", metavar="RUN", help="new run folder (default: runs/<data name>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its checkpoint")
    p.add_argument("--init-from", metavar="CKPT|RUN",
                   help="start a new run from this model's weights (fine-tuning; a fresh optimizer at step 0)")
    p.add_argument("--data", metavar="FILE", help="your .npy/.npz sequences (sets data.name=arrays, data.path=FILE)")
    p.add_argument("--labels", metavar="FILE", help="optional label file for --data")
    p.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    p.add_argument("--minutes", type=float, help="shortcut for --set train.minutes=M (wall-clock budget)")
    p.add_argument("--device", help="shortcut for --set train.device=D (auto, cpu, cuda, mps)")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train with N local processes (gloo on CPU, nccl on CUDA); not under torchrun/srun")


def _config(args: argparse.Namespace) -> tuple[Config, Path]:
    extra: list[str] = []
    if args.data:
        extra += ["data.name='arrays'", f"data.path={json.dumps(args.data)}"]
    if args.labels:
        extra.append(f"data.labels={json.dumps(args.labels)}")
    if args.epochs is not None:
        extra.append(f"train.epochs={args.epochs}")
    if args.minutes is not None:
        extra.append(f"train.minutes={args.minutes}")
    if args.device:
        extra.append(f"train.device={json.dumps(args.device)}")
    if args.resume:
        if args.out or args.init_from:
            raise ValueError(f"use either --resume RUN or {'--out' if args.out else '--init-from'}, not both")
        from ..training.resume import load_checkpoint_config

        return load_checkpoint_config(args.resume, [*extra, *args.overrides]), Path(args.resume)
    cfg = config_from_args(args, extra)
    return cfg, Path(args.out or f"runs/{cfg.data.name}")


def run(args: argparse.Namespace) -> int:
    cfg, run_dir = _config(args)
    if args.nproc is not None and args.nproc != 1:
        return _launch(args, cfg, run_dir)
    return _train(args, cfg, run_dir, command_line())


def _train(args: argparse.Namespace, cfg: Config, run_dir: Path, command: str) -> int:
    """One process of a run: a whole single-process run, or one rank of a torchrun/srun/--nproc job.

    The main process claims the run folder (an exclusive lock held until the run ends) before
    loading the data, so a second run into the same folder fails at once, not after the data.
    """
    claim = claim_run_dir(run_dir, create=not args.resume) if env_world().is_main else nullcontext()
    with claim:
        data, _ = load_dataset(cfg.data)  # before joining: a data error stops every process at once
        info = init_distributed(cfg.train.device)
        try:
            res = train(cfg, run_dir, data, resume=bool(args.resume), progress=not args.quiet, command=command,
                        init_from=args.init_from)
        finally:
            shutdown()
    if info.is_main:
        parts = ", ".join(f"{k}={v:.4g}" for k, v in res.last.items() if k in ("loss", "rec", "pred_latent", "pred_ambient", "eig"))
        procs = f" on {info.world_size} processes" if info.distributed else ""
        print(f"trained {res.step} steps ({res.epoch} epochs, stopped by {res.stopped}){procs} in {res.seconds:.0f}s -> {run_dir}")
        print(f"last losses: {parts}; non-finite steps skipped: {res.bad_steps}")
        if res.stopped == "interrupted":
            print(f"interrupted: checkpoint of step {res.step} saved; continue with skd train --resume {run_dir}")
    return 130 if res.stopped == "interrupted" else 0


def _launch(args: argparse.Namespace, cfg: Config, run_dir: Path) -> int:
    """``--nproc N``: check what can be checked here (one clear error line), then start N processes."""
    from ..training.launch import launch_local

    n = args.nproc
    if n < 1:
        raise ValueError(f"--nproc={n} must be >= 1")
    if env_world().distributed:
        raise ValueError(f"--nproc cannot be used inside a torchrun/srun launch (WORLD_SIZE={os.environ.get('WORLD_SIZE')})")
    if cfg.train.batch_size % n:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} (the global batch) must be divisible by --nproc={n}")
    if not args.resume and ((run_dir / "checkpoint.pt").exists() or (run_dir / "metrics.jsonl").exists()):
        raise FileExistsError(f"{run_dir} already holds a run; use --resume or another --out")
    launch_local(_worker, n, (args, cfg, run_dir, command_line()), debug=bool(getattr(args, "debug", False)))
    result = run_dir / "result.json"
    stopped = json.loads(result.read_text()).get("stopped") if result.is_file() else None
    return 130 if stopped == "interrupted" else 0


def _worker(args: argparse.Namespace, cfg: Config, run_dir: Path, command: str) -> None:
    """Entry point of each ``--nproc`` process (a fresh interpreter): logging, then :func:`_train`."""
    quiet = args.quiet or os.environ.get("RANK", "0") != "0"
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    _train(args, cfg, run_dir, command)
