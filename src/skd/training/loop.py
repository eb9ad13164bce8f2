"""Training loop: Adam, loss breakdown, metrics.jsonl, atomic checkpoints, exact resume.

The trainer knows nothing about the architecture: it builds ``KoopmanAE(cfg.model)`` and calls
``compute_losses``. Run folder layout::

    RUN/config.json      the resolved config
    RUN/command.txt      the command line(s) that produced the run
    RUN/data.json        the dataset's name, shape and declared factors
    RUN/metrics.jsonl    one JSON line per ``log_every`` steps
    RUN/checkpoint.pt    latest checkpoint (model, optimiser, RNG, position in the data)
    RUN/result.json      final summary
    RUN/.lock            held (``flock``) by the process that trains the run; see skd.files.runfolder

Reliability: the run folder is claimed with an exclusive lock for the whole run; every file but
``metrics.jsonl`` and ``command.txt`` is replaced atomically; a step-0 checkpoint is written
before the first step, so a run that dies at any point can be resumed; parameters are checked
after every optimizer step and a non-finite model is never written over the last good checkpoint.

Several processes (torchrun, srun, ``skd train --nproc N``; see docs/DISTRIBUTED.md): call
:func:`skd.training.distributed.init_distributed` first. ``train.batch_size`` is then the GLOBAL batch:
every rank takes its contiguous slice of the same global batch, C is fitted on the global normal
equations, BatchNorm uses global statistics (``train.sync_bn``), DDP averages the gradients, and
only rank 0 writes files, logs and shows progress. One process runs exactly the code path of a
single-process run.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import distributed as D
from ..files.checkpoint import DiskFullError, atomic_write_text, is_disk_full, load_checkpoint, load_state_checked, save_checkpoint
from ..config import Config, about, resolve_model_config
from ..data.base import SequenceData
from ..files.limits import check_allocation, format_bytes, module_bytes
from ..model.losses import compute_losses
from ..model import KoopmanAE
from ..model.precision import apply_plan, reset_plan, resolve_plan
from .resume import CKPT_KIND, checkpoint_config, resume_point, truncate_metrics
from ..files.runfolder import claim_run_dir

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot continue (e.g. repeated non-finite losses)."""


def _describe_saved(step: int | None) -> str:
    return "none written yet" if step is None else f"step {step}"


@dataclass
class TrainResult:
    model: KoopmanAE
    config: Config
    run_dir: Path
    step: int
    epoch: int
    bad_steps: int  # non-finite steps skipped in total
    stopped: str  # why training ended: epochs | max_steps | minutes
    seconds: float
    last: dict[str, float]  # mean loss parts over the last logging window


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda if available, else mps, else cpu; anything else is checked and returned."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"device={name!r} is not a device (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"train.device={name!r} but MPS is not available")
    return dev


def grads_finite(model: torch.nn.Module) -> bool:
    """All parameter gradients finite, decided with one device synchronisation (not one per tensor)."""
    flags = [torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None]
    return bool(torch.stack(flags).all()) if flags else True


def params_finite(model: torch.nn.Module) -> bool:
    """All parameters finite, decided with one device synchronisation."""
    flags = [torch.isfinite(p.detach()).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def lr_at(step: int, lr: float, milestones: tuple[int, ...], gamma: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based): ``lr * gamma ** #{m in milestones: m <= step}``.

    A pure function of the step (torch's MultiStepLR rule), so a resumed run continues the same
    schedule exactly, and a schedule can be added to a run when it is resumed.
    """
    return lr * gamma ** sum(1 for m in milestones if m <= step)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Deterministic permutation of the training set for one epoch (a function of seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Full batches only (C is fitted per batch; a tiny last batch would give a poor fit)."""
    return max(1, n // batch_size)


def build_model(cfg: Config) -> KoopmanAE:
    return KoopmanAE(cfg.model)


def check_model_fits(cfg: Config, copies: int, what: str) -> None:
    """Refuse a model whose ``copies`` × parameter memory cannot be allocated (measured on the meta
    device, nothing allocated): 4 copies to train with Adam, 1 to evaluate."""
    nbytes = module_bytes(lambda: build_model(cfg))
    m = cfg.model
    sizes = (f"model.hidden={m.hidden}, model.layers={m.layers}" if m.kind == "mlp" else f"model.width={m.width}")
    check_allocation(copies * nbytes, f"{what} (a model of {format_bytes(nbytes)} of parameters: {sizes}, model.k={m.k})")


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", *, precision: str = "fp32"
             ) -> tuple[KoopmanAE, Config]:
    """The trained model (eval mode) and config of a run folder (or of one checkpoint file).

    ``precision``: "fp32" runs everything in float32; "auto" runs the frame networks as training
    does (bf16 autocast + channels_last where the device has bf16 in hardware, see
    :mod:`skd.model.precision`), which makes encoding and decoding several times faster on such
    CPUs; "bf16" forces it.
    """
    run_dir = Path(run_dir)
    path = run_dir if run_dir.is_file() else run_dir / "checkpoint.pt"
    ckpt = load_checkpoint(path, kind=CKPT_KIND, map_location=device)
    cfg = checkpoint_config(ckpt, path)
    check_model_fits(cfg, 1, f"loading {path}")
    model = build_model(cfg).to(device)
    load_state_checked(model, ckpt.get("model"), path)
    model.eval()
    if precision != "fp32":
        apply_plan(model, resolve_plan(precision, "auto", False, torch.device(device), cfg.model.kind))
    return model, cfg


def _state(model, opt, step, epoch, pos, bad_total, elapsed) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": pos,
        "bad_total": bad_total,
        "elapsed": elapsed,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s own RNG stream (dropout) in a multi-process run."""
    return seed * 1_000_003 + 7919 * (rank + 1)


def _gather_rng(world: D.WorldInfo, device: torch.device) -> dict[str, Any]:
    """Every rank's RNG states, for an exact multi-process resume (a collective: all ranks call it)."""
    state: dict[str, Any] = {"world_size": world.world_size, "rng_cpu_ranks": D.gather_across(torch.get_rng_state(), device)}
    if device.type == "cuda":
        state["rng_cuda_ranks"] = D.gather_across(torch.cuda.get_rng_state(device), device)
    return state


def _restore_rng(ckpt: dict[str, Any], world: D.WorldInfo, device: torch.device, seed: int, step: int) -> None:
    saved = int(ckpt.get("world_size", 1))
    if saved != world.world_size:
        if world.is_main:
            log.warning("checkpoint written by %d process(es), resumed with %d: same batches, but dropout masks "
                        "differ from an uninterrupted run", saved, world.world_size)
        torch.manual_seed(_rank_seed(seed, world.rank) + step)
    elif saved == 1:
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt["rng_cuda"]:
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
    else:
        torch.set_rng_state(ckpt["rng_cpu_ranks"][world.rank].clone())
        if device.type == "cuda" and "rng_cuda_ranks" in ckpt:
            torch.cuda.set_rng_state(ckpt["rng_cuda_ranks"][world.rank].clone(), device)


def train(
    cfg: Config,
    run_dir: str | Path,
    data: SequenceData,
    *,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> TrainResult:
    """Train a KoopmanAE on ``data`` into ``run_dir`` (or continue it exactly with ``resume``).

    In a process group (:func:`skd.training.distributed.init_distributed`) every rank calls this with the
    same arguments; see the module docstring. The run folder is claimed (an exclusive lock, see
    :mod:`skd.files.runfolder`) by the main process for the whole call.

    ``resume`` continues from ``RUN/checkpoint.pt`` with the stopping budget, device and
    learning-rate decay of ``cfg``; a folder that holds only ``config.json`` (a run that died
    before its first checkpoint) starts again from step 0 with that config.
    """
    world = D.world()
    run_dir = Path(run_dir)
    claim = claim_run_dir(run_dir, create=not resume) if world.is_main else nullcontext()
    with claim:
        return _train(cfg, run_dir, data, world, resume=resume, progress=progress, command=command)


def _train(cfg: Config, run_dir: Path, data: SequenceData, world: D.WorldInfo, *, resume: bool, progress: bool,
           command: str | None) -> TrainResult:
    ckpt_path = run_dir / "checkpoint.pt"
    if resume:
        cfg, ckpt = resume_point(cfg, run_dir, world)
    else:
        if (run_dir / "checkpoint.pt").exists() or (run_dir / "metrics.jsonl").exists():
            raise about("run_dir", FileExistsError(f"{run_dir} already holds a run; resume it or choose another folder"))
        ckpt = None
        cfg = dataclasses.replace(cfg, model=resolve_model_config(cfg.model, data.frame_shape))
    check_model_fits(cfg, 4, "training")  # parameters, gradients, Adam's two moments
    model_frame = KoopmanAE(cfg.model).frame_shape
    if tuple(data.frame_shape) != tuple(model_frame):
        raise ValueError(f"data frames {data.frame_shape} do not match the run's model frames {model_frame}")
    tc = cfg.train
    n = len(data)
    bs = min(tc.batch_size, n)
    if bs % world.world_size:
        raise ValueError(f"train.batch_size={bs} (the global batch) must be divisible by the {world.world_size} processes")
    device = D.process_device(tc.device, world) if world.distributed else resolve_device(tc.device)
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    model = build_model(cfg).to(device)
    plan = resolve_plan(tc.precision, tc.memory_format, tc.compile, device, cfg.model.kind)
    apply_plan(model, plan)
    if world.is_main:
        log.info("device %s, %s", device, plan.describe())
    if world.distributed and tc.sync_bn:
        D.convert_sync_batchnorm(model)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    step = epoch = pos = bad_total = 0
    elapsed0 = 0.0
    run_dir.mkdir(parents=True, exist_ok=True)
    if ckpt is not None:
        load_state_checked(model, ckpt.get("model"), ckpt_path)
        opt.load_state_dict(ckpt["optimizer"])
        step, epoch, pos = int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch_in_epoch"])
        bad_total, elapsed0 = int(ckpt["bad_total"]), float(ckpt["elapsed"])
        _restore_rng(ckpt, world, device, tc.seed, step)
        if world.is_main:
            truncate_metrics(run_dir / "metrics.jsonl", step)
    else:
        if world.is_main and resume:  # from step 0: the metrics of the lost attempt go
            truncate_metrics(run_dir / "metrics.jsonl", 0)
        if world.distributed:
            torch.manual_seed(_rank_seed(tc.seed, world.rank))  # each rank its own dropout masks
            D.barrier(device)  # every rank has checked the folder before rank 0 writes into it
        if world.is_main:
            atomic_write_text(run_dir / "config.json", cfg.to_json() + "\n")
            meta = {"name": data.name, "n": len(data), "shape": list(data.x.shape), "dtype": str(data.x.dtype),
                    "factors": [dataclasses.asdict(f) for f in data.factors]}
            atomic_write_text(run_dir / "data.json", json.dumps(meta, indent=2) + "\n")
    if command and world.is_main:
        with open(run_dir / "command.txt", "a") as f:
            f.write(command + "\n")

    nb = batches_per_epoch(n, bs)
    total_steps = tc.epochs * nb if tc.epochs else 0
    if tc.max_steps:
        total_steps = min(total_steps, tc.max_steps) if total_steps else tc.max_steps
    if not total_steps and not tc.minutes:
        raise ValueError("training has no budget: set train.epochs, train.max_steps or train.minutes")

    saved_step = step if ckpt is not None else None

    def save() -> None:
        nonlocal saved_step
        if not params_finite(model):  # never replace the last good checkpoint with a broken model
            raise TrainingError(f"parameters are not finite at step {step}; not written, the last good checkpoint "
                                f"({_describe_saved(saved_step)}) is kept")
        rng = _gather_rng(world, device) if world.distributed else {}
        if world.is_main:
            state = _state(model, opt, step, epoch, pos, bad_total, elapsed0 + time.time() - t0)
            save_checkpoint(ckpt_path, kind=CKPT_KIND, config=cfg.to_dict(), state={**state, **rng})
            if tc.keep_every and step and step % tc.keep_every == 0:  # history for time-to-quality curves
                keep_dir = run_dir / "checkpoints"
                keep_dir.mkdir(exist_ok=True)
                tmp = keep_dir / f".step_{step:08d}.pt.tmp"
                shutil.copyfile(ckpt_path, tmp)
                os.replace(tmp, keep_dir / f"step_{step:08d}.pt")
        D.barrier(device)  # nobody moves on before the checkpoint is in place
        saved_step = step

    net: torch.nn.Module = model
    reduce = None
    if world.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      **D.ddp_buffer_sync(not tc.sync_bn))
        reduce = D.sum_across  # C from the global normal equations

    t0 = time.time()
    bad_run = 0
    window: dict[str, list[float]] = {}
    last: dict[str, float] = {}
    stopped = "epochs"
    bar = tqdm(total=total_steps or None, initial=step, disable=not progress or not world.is_main, desc="train",
               dynamic_ncols=True)
    metrics_path = run_dir / "metrics.jsonl"
    metrics_file = open(metrics_path, "a") if world.is_main else None
    try:
        if ckpt is None:
            save()  # step 0: a run that dies before its first periodic checkpoint can be resumed
        model.train()
        while True:
            if total_steps and step >= total_steps:
                stopped = "max_steps" if tc.max_steps and step >= tc.max_steps else "epochs"
                break
            if tc.minutes and D.any_across(time.time() - t0 >= tc.minutes * 60, device):
                stopped = "minutes"
                break
            if pos >= nb:
                epoch, pos = epoch + 1, 0
            order = epoch_order(n, tc.seed, epoch)
            idx = order[pos * bs : (pos + 1) * bs]
            if world.distributed:
                idx = D.shard(idx, world.rank, world.world_size)  # this rank's slice of the global batch
            x = data.batch(idx, device)
            out = net(x, ridge=cfg.loss.ridge, rcond=cfg.loss.rcond, reduce=reduce)
            total, parts = compute_losses(x, out, cfg.loss)
            if world.distributed:  # global means; every rank agrees whether to step
                ok, values = D.mean_across({"loss": total, **parts})
            else:
                ok, values = bool(torch.isfinite(total)), None
            if ok:
                opt.zero_grad(set_to_none=True)
                total.backward()
                ok = grads_finite(model)
                if ok:
                    for group in opt.param_groups:
                        group["lr"] = lr_at(step, tc.lr, tc.lr_milestones, tc.lr_gamma)
                    opt.step()
                    if not params_finite(model):  # a finite gradient can still overflow the update
                        raise TrainingError(
                            f"parameters became non-finite in the optimizer step at step {step + 1} (learning rate "
                            f"{opt.param_groups[0]['lr']:g}); try a lower train.lr (last good checkpoint kept: "
                            f"{_describe_saved(saved_step)})")
            pos += 1
            step += 1
            if not ok:
                bad_run += 1
                bad_total += 1
                opt.zero_grad(set_to_none=True)
                if world.is_main:
                    log.warning("non-finite loss or gradient at step %d (skipped, %d in a row)", step, bad_run)
                if bad_run >= tc.max_bad_steps:
                    raise TrainingError(
                        f"stopped after {bad_run} consecutive non-finite losses at step {step}; "
                        "try a lower train.lr or loss.ridge > 0 (last good checkpoint kept)"
                    )
            else:
                bad_run = 0
                if values is None:
                    flat = torch.stack([total.detach(), *(v.detach().to(total.dtype) for v in parts.values())]).tolist()
                    values = dict(zip(["loss", *parts], flat))  # one device synchronisation
                for key, val in values.items():
                    window.setdefault(key, []).append(val)
            bar.update(1)
            if step % tc.log_every == 0 and window:
                last = {key: sum(v) / len(v) for key, v in window.items()}
                rec = {"step": step, "epoch": epoch, "time": round(elapsed0 + time.time() - t0, 3), **last,
                       "lr": opt.param_groups[0]["lr"], "bad_steps": bad_total}
                if metrics_file is not None:
                    try:
                        metrics_file.write(json.dumps(rec) + "\n")
                        metrics_file.flush()
                    except OSError as err:
                        if not is_disk_full(err):
                            raise
                        raise DiskFullError(f"cannot append to {metrics_path}: no space left on the device "
                                            "(the last checkpoint is kept; free space, then resume)") from err
                bar.set_postfix({k: f"{v:.3g}" for k, v in last.items() if k in ("loss", "rec", "pred_latent", "pred_ambient", "eig")})
                window = {}
            if step % tc.checkpoint_every == 0:
                save()
        if window:
            last = {key: sum(v) / len(v) for key, v in window.items()}
        save()
    finally:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
    seconds = elapsed0 + time.time() - t0
    result = {"step": step, "epoch": epoch, "bad_steps": bad_total, "stopped": stopped, "seconds": round(seconds, 2),
              "device": str(device), "execution": plan.to_dict(),
              "last": {k: (v if math.isfinite(v) else None) for k, v in last.items()}}
    if world.is_main:
        atomic_write_text(run_dir / "result.json", json.dumps(result, indent=2) + "\n")
    D.barrier(device)
    if world.distributed and tc.sync_bn:
        D.revert_sync_batchnorm(model)
    reset_plan(model)
    model.eval()
    return TrainResult(model, cfg, run_dir, step, epoch, bad_total, stopped, seconds, last)
