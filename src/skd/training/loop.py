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

Parts: :func:`_train` sets the run up (:func:`_starting_point`, :func:`_build`, :func:`_begin`)
and runs :func:`_run`, whose every iteration is :func:`_next_batch`, then :func:`_train_step`
(forward, losses, backward, finite checks, Adam). :class:`_Checkpointer` writes and restores
checkpoints, :class:`skd.training.runlog.RunLog` writes metrics.jsonl and the progress bar, and
:class:`skd.training.context.RunContext` knows the ranks and the device and runs the collectives.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import distributed as D
from ..files.checkpoint import atomic_write_text, file_sha256, load_checkpoint, load_state_checked, save_checkpoint
from ..config import Config, ConfigError, TrainConfig, about, resolve_model_config
from ..data.base import SequenceData
from ..files.limits import check_allocation, format_bytes, module_bytes
from ..model.crop import loud_crop_starts, take_crops
from ..model.losses import compute_losses
from ..model import KoopmanAE
from ..model.precision import ExecutionPlan, apply_plan, reset_plan, resolve_plan
from .context import Reduce, RunContext, rank_seed, resolve_device  # resolve_device: part of this module's API
from .resume import CKPT_KIND, checkpoint_config, resume_point, truncate_metrics
from .interrupt import GracefulStop
from .runlog import RunLog
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
    stopped: str  # why training ended: epochs | max_steps | minutes | interrupted (SIGINT or SIGTERM)
    seconds: float
    last: dict[str, float]  # mean loss parts over the last logging window


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


# ----------------------------------------------------------------------------- the run's state
@dataclass
class _Position:
    """Where a run stands: optimizer steps taken, epoch, next batch within the epoch, skipped steps."""

    step: int = 0
    epoch: int = 0
    pos: int = 0  # batch_in_epoch in the checkpoint
    bad_total: int = 0  # non-finite steps skipped in total


@dataclass
class _Clock:
    """Training seconds: ``before`` this attempt (from the checkpoint) plus this attempt's."""

    before: float = 0.0
    t0: float = field(default_factory=time.time)

    def attempt(self) -> float:
        """Seconds of this attempt (what ``train.minutes`` limits)."""
        return time.time() - self.t0

    def elapsed(self) -> float:
        """Seconds of the whole run, all attempts together."""
        return self.before + time.time() - self.t0


@dataclass(frozen=True)
class _Fit:
    """What an optimizer step works on: the model (owner of the parameters), ``net`` (what is
    called: the model, or DDP around it), Adam, and the ``reduce`` hook of the Koopman fit."""

    model: KoopmanAE
    net: torch.nn.Module
    opt: torch.optim.Adam
    reduce: Reduce | None


@dataclass(frozen=True)
class _Schedule:
    """How the data is walked: global batch size, full batches per epoch, steps in all (0: no step limit)."""

    batch: int
    per_epoch: int
    total_steps: int


# ----------------------------------------------------------------------------- checkpointing and resume
def _state(fit: _Fit, at: _Position, elapsed: float) -> dict[str, Any]:
    return {
        "model": fit.model.state_dict(),
        "optimizer": fit.opt.state_dict(),
        "step": at.step,
        "epoch": at.epoch,
        "batch_in_epoch": at.pos,
        "bad_total": at.bad_total,
        "elapsed": elapsed,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


class _Checkpointer:
    """``RUN/checkpoint.pt``: written (with a kept copy every ``train.keep_every`` steps) and restored.

    Only the main process writes; all processes take part (the RNG states of every rank are
    gathered) and wait until the file is in place.
    """

    def __init__(self, run_dir: Path, cfg: Config, ctx: RunContext) -> None:
        self.run_dir, self.cfg, self.ctx = run_dir, cfg, ctx
        self.path = run_dir / "checkpoint.pt"
        self.saved_step: int | None = None  # step of the last checkpoint written or resumed from

    def last_good(self) -> str:
        return _describe_saved(self.saved_step)

    def save(self, fit: _Fit, at: _Position, clock: _Clock) -> None:
        """Write the checkpoint of ``at``; a non-finite model is refused (the last good one is kept)."""
        if not params_finite(fit.model):  # never replace the last good checkpoint with a broken model
            raise TrainingError(f"parameters are not finite at step {at.step}; not written, the last good checkpoint "
                                f"({self.last_good()}) is kept")
        rng = self.ctx.gather_rng()
        if self.ctx.is_main:
            state = _state(fit, at, clock.elapsed())
            save_checkpoint(self.path, kind=CKPT_KIND, config=self.cfg.to_dict(), state={**state, **rng})
            self._keep(at.step)
        self.ctx.barrier()  # nobody moves on before the checkpoint is in place
        self.saved_step = at.step

    def _keep(self, step: int) -> None:
        """Copy the checkpoint to ``RUN/checkpoints/step_NNNNNNNN.pt`` every ``keep_every`` steps."""
        keep_every = self.cfg.train.keep_every
        if keep_every and step and step % keep_every == 0:  # history for time-to-quality curves
            keep_dir = self.run_dir / "checkpoints"
            keep_dir.mkdir(exist_ok=True)
            tmp = keep_dir / f".step_{step:08d}.pt.tmp"
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, keep_dir / f"step_{step:08d}.pt")

    def restore(self, ckpt: dict[str, Any], model: KoopmanAE, opt: torch.optim.Adam) -> tuple[_Position, float]:
        """Load ``ckpt`` into model, optimizer and RNG; (its position, its training seconds).
        Metric lines written after it are dropped."""
        load_state_checked(model, ckpt.get("model"), self.path)
        opt.load_state_dict(ckpt["optimizer"])
        at = _Position(int(ckpt["step"]), int(ckpt["epoch"]), int(ckpt["batch_in_epoch"]), int(ckpt["bad_total"]))
        elapsed = float(ckpt["elapsed"])
        self._restore_rng(ckpt, at.step)
        if self.ctx.is_main:
            truncate_metrics(self.run_dir / "metrics.jsonl", at.step)
        self.saved_step = at.step
        return at, elapsed

    def _restore_rng(self, ckpt: dict[str, Any], step: int) -> None:
        saved, now = int(ckpt.get("world_size", 1)), self.ctx.world.world_size
        if saved == now:
            self.ctx.restore_rng(ckpt)
            return
        self.ctx.say(log, logging.WARNING, "checkpoint written by %d process(es), resumed with %d: same batches, but "
                     "dropout masks differ from an uninterrupted run", saved, now)
        self.ctx.reseed(self.cfg.train.seed, step)


# ----------------------------------------------------------------------------- train()
def train(
    cfg: Config,
    run_dir: str | Path,
    data: SequenceData,
    *,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a KoopmanAE on ``data`` into ``run_dir`` (or continue it exactly with ``resume``).

    In a process group (:func:`skd.training.distributed.init_distributed`) every rank calls this with the
    same arguments; see the module docstring. The run folder is claimed (an exclusive lock, see
    :mod:`skd.files.runfolder`) by the main process for the whole call.

    ``resume`` continues from ``RUN/checkpoint.pt`` with the stopping budget, device and
    learning-rate decay of ``cfg``; a folder that holds only ``config.json`` (a run that died
    before its first checkpoint) starts again from step 0 with that config.

    ``init_from`` (a checkpoint file or run folder, e.g. ``weights/sprites``) starts a NEW run
    from that model's weights instead of a random initialisation: fine-tuning with another loss,
    learning rate or dataset of the same frame geometry. Adam starts afresh at step 0; the source
    is recorded in ``RUN/init.json``. The network ``cfg.model`` builds must have the source's
    tensor names and shapes.
    """
    if init_from is not None and resume:
        raise ValueError("a resumed run continues its own weights; init_from is only for a new run")
    world = D.world()
    run_dir = Path(run_dir)
    claim = claim_run_dir(run_dir, create=not resume) if world.is_main else nullcontext()
    with claim:
        return _train(cfg, run_dir, data, world, resume=resume, progress=progress, command=command,
                      init_from=init_from)


def _train(cfg: Config, run_dir: Path, data: SequenceData, world: D.WorldInfo, *, resume: bool, progress: bool,
           command: str | None, init_from: str | Path | None = None) -> TrainResult:
    cfg, ckpt = _starting_point(cfg, run_dir, data, world, resume)
    tc = cfg.train
    if cfg.loss.w_crop > 0 and cfg.loss.crop_frames >= data.x.shape[1]:
        raise ConfigError(f"loss.crop_frames={cfg.loss.crop_frames} must be shorter than the sequences "
                          f"({data.x.shape[1]} frames) when loss.w_crop > 0")
    bs = _global_batch(tc.batch_size, len(data), world)
    ctx = RunContext.create(world, tc.device)
    model, plan, opt = _build(cfg, ctx)
    source = _initial_weights(model, init_from) if ckpt is None and init_from is not None else None
    run_dir.mkdir(parents=True, exist_ok=True)
    saver = _Checkpointer(run_dir, cfg, ctx)
    if ckpt is not None:
        at, before = saver.restore(ckpt, model, opt)
    else:
        at, before = _Position(), 0.0
        _begin(cfg, data, run_dir, ctx, resume)
        if source is not None and ctx.is_main:
            atomic_write_text(run_dir / "init.json", json.dumps(source, indent=2) + "\n")
    if command and ctx.is_main:
        with open(run_dir / "command.txt", "a") as f:
            f.write(command + "\n")
    nb = batches_per_epoch(len(data), bs)
    sched = _Schedule(bs, nb, _step_budget(tc, nb))
    net, reduce = ctx.wrap(model, tc.sync_bn)  # DDP and the global Koopman fit in a process group
    fit = _Fit(model, net, opt, reduce)
    clock = _Clock(before)
    runlog = RunLog(run_dir / "metrics.jsonl", total=sched.total_steps, initial=at.step, show=progress and ctx.is_main,
                    write=ctx.is_main)
    try:
        if ckpt is None:
            saver.save(fit, at, clock)  # step 0: a run that dies before its first periodic checkpoint can be resumed
        with GracefulStop() as stop:  # Ctrl-C / SIGTERM: finish the step, then save as at any stop
            stopped = _run(fit, data, cfg, ctx, sched, at, clock, saver, runlog, stop)
        if runlog.window:
            runlog.close_window()
        saver.save(fit, at, clock)
    finally:
        runlog.close()
    seconds = clock.elapsed()
    result = _summary(at, stopped, seconds, ctx.device, plan, runlog.last)
    if ctx.is_main:
        atomic_write_text(run_dir / "result.json", json.dumps(result, indent=2) + "\n")
    ctx.barrier()
    ctx.revert_bn(model, tc.sync_bn)
    reset_plan(model)
    model.eval()
    return TrainResult(model, cfg, run_dir, at.step, at.epoch, at.bad_total, stopped, seconds, runlog.last)


# ----------------------------------------------------------------------------- setting up
def _starting_point(cfg: Config, run_dir: Path, data: SequenceData, world: D.WorldInfo, resume: bool
                    ) -> tuple[Config, dict[str, Any] | None]:
    """The run's config and the checkpoint it continues from (None: from step 0), checked against ``data``."""
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
    return cfg, ckpt


def _global_batch(batch_size: int, n: int, world: D.WorldInfo) -> int:
    """The global batch: ``train.batch_size`` capped at the ``n`` sequences, split evenly over the processes."""
    bs = min(batch_size, n)
    if bs % world.world_size:
        raise ValueError(f"train.batch_size={bs} (the global batch) must be divisible by the {world.world_size} processes")
    return bs


def _build(cfg: Config, ctx: RunContext) -> tuple[KoopmanAE, ExecutionPlan, torch.optim.Adam]:
    """The seeded model on the run's device with its execution plan, and its optimizer."""
    tc = cfg.train
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    model = build_model(cfg).to(ctx.device)
    plan = resolve_plan(tc.precision, tc.memory_format, tc.compile, ctx.device, cfg.model.kind)
    apply_plan(model, plan)
    ctx.say(log, logging.INFO, "device %s, %s", ctx.device, plan.describe())
    ctx.convert_bn(model, tc.sync_bn)
    return model, plan, torch.optim.Adam(model.parameters(), lr=tc.lr)


def _initial_weights(model: KoopmanAE, source: str | Path) -> dict[str, Any]:
    """Load the weights of ``source`` (checkpoint file or run folder) into ``model``; what was loaded."""
    path = Path(source)
    path = path / "checkpoint.pt" if path.is_dir() else path
    ckpt = load_checkpoint(path, kind=CKPT_KIND)
    load_state_checked(model, ckpt.get("model"), path, what="initial model", builder="this run's config")
    return {"init_from": str(source), "sha256": file_sha256(path), "step": int(ckpt.get("step", 0))}


def _begin(cfg: Config, data: SequenceData, run_dir: Path, ctx: RunContext, resume: bool) -> None:
    """Start a run at step 0: each rank's RNG stream, then ``config.json`` and ``data.json``."""
    if ctx.is_main and resume:  # from step 0: the metrics of the lost attempt go
        truncate_metrics(run_dir / "metrics.jsonl", 0)
    ctx.seed_own_stream(cfg.train.seed)  # each rank its own dropout masks
    ctx.barrier()  # every rank has checked the folder before rank 0 writes into it
    if ctx.is_main:
        atomic_write_text(run_dir / "config.json", cfg.to_json() + "\n")
        meta = {"name": data.name, "n": len(data), "shape": list(data.x.shape), "dtype": str(data.x.dtype),
                "factors": [dataclasses.asdict(f) for f in data.factors]}
        atomic_write_text(run_dir / "data.json", json.dumps(meta, indent=2) + "\n")


def _step_budget(tc: TrainConfig, per_epoch: int) -> int:
    """Optimizer steps in all from ``train.epochs`` and ``train.max_steps`` (0: only ``train.minutes`` limits)."""
    total_steps = tc.epochs * per_epoch if tc.epochs else 0
    if tc.max_steps:
        total_steps = min(total_steps, tc.max_steps) if total_steps else tc.max_steps
    if not total_steps and not tc.minutes:
        raise ValueError("training has no budget: set train.epochs, train.max_steps or train.minutes")
    return total_steps


# ----------------------------------------------------------------------------- the loop
def _run(fit: _Fit, data: SequenceData, cfg: Config, ctx: RunContext, sched: _Schedule, at: _Position,
         clock: _Clock, saver: _Checkpointer, runlog: RunLog, stop: GracefulStop | None = None) -> str:
    """Train from ``at`` until the budget is spent or a stop is requested; why it stopped:
    epochs | max_steps | minutes | interrupted."""
    tc = cfg.train
    bad_run = 0  # non-finite steps in a row
    fit.model.train()
    while (stopped := _stop_reason(tc, sched.total_steps, at.step, clock, ctx, stop)) is None:
        x = _next_batch(data, at, sched, tc.seed, ctx)  # (B/W, T, *frame)
        values = _train_step(fit, x, cfg, at.step, ctx, saver)
        at.pos += 1
        at.step += 1
        if values is None:
            bad_run += 1
            _skip(fit.opt, at, bad_run, tc.max_bad_steps, ctx)
        else:
            bad_run = 0
            runlog.add(values)
        runlog.bar.update(1)
        if at.step % tc.log_every == 0 and runlog.window:
            last = runlog.close_window()
            runlog.write({"step": at.step, "epoch": at.epoch, "time": round(clock.elapsed(), 3), **last,
                          "lr": fit.opt.param_groups[0]["lr"], "bad_steps": at.bad_total})
        if at.step % tc.checkpoint_every == 0:
            saver.save(fit, at, clock)
    return stopped


def _stop_reason(tc: TrainConfig, total_steps: int, step: int, clock: _Clock, ctx: RunContext,
                 stop: GracefulStop | None = None) -> str | None:
    """Why training stops before step ``step + 1`` (every rank agrees), or None to go on.

    Time and a requested stop are agreed in one collective (none in a single process)."""
    if total_steps and step >= total_steps:
        return "max_steps" if tc.max_steps and step >= tc.max_steps else "epochs"
    timed_out = bool(tc.minutes) and clock.attempt() >= tc.minutes * 60
    interrupted = stop is not None and stop.requested
    if (tc.minutes or ctx.world.distributed) and ctx.any(timed_out or interrupted):
        return "interrupted" if interrupted or not timed_out else "minutes"
    if interrupted:
        return "interrupted"
    return None


def _next_batch(data: SequenceData, at: _Position, sched: _Schedule, seed: int, ctx: RunContext) -> torch.Tensor:
    """This rank's slice of the next global batch, (B/W, T, *frame) on the run's device; moves ``at``
    to the next epoch when the current one is done."""
    if at.pos >= sched.per_epoch:
        at.epoch, at.pos = at.epoch + 1, 0
    order = epoch_order(len(data), seed, at.epoch)
    idx = ctx.shard(order[at.pos * sched.batch : (at.pos + 1) * sched.batch])  # this rank's slice of the global batch
    return data.batch(idx, ctx.device)


def _train_step(fit: _Fit, x: torch.Tensor, cfg: Config, step: int, ctx: RunContext, saver: _Checkpointer
                ) -> dict[str, float] | None:
    """Optimizer step ``step`` on batch ``x`` (B/W, T, *frame): forward, losses, backward, Adam.

    Returns the loss and its parts (global means in a process group), or None when the step is
    skipped because a loss or a gradient is not finite (on any rank: all ranks skip together).
    """
    crops = None
    if cfg.loss.w_crop > 0:  # a fixed draw per (seed, rank, step): resumed runs crop the same frames
        gen = torch.Generator().manual_seed(rank_seed(cfg.train.seed + step, ctx.world.rank))
        crops = take_crops(x, loud_crop_starts(x, cfg.loss.crop_frames, gen), cfg.loss.crop_frames)
    lc = cfg.loss
    swapping = lc.w_swap_static > 0 or lc.w_swap_dynamic > 0 or lc.w_swap_back > 0
    swap = (lc.static_size, lc.static_criterion) if swapping else None
    out = fit.net(x, ridge=cfg.loss.ridge, rcond=cfg.loss.rcond, reduce=fit.reduce, crops=crops, swap=swap,
                  swap_back=lc.w_swap_back > 0, frozen_reader=lc.swap_reader == "frozen")
    total, parts = compute_losses(x, out, cfg.loss)
    ok, values = ctx.agree(total, parts)
    if not ok:
        return None
    fit.opt.zero_grad(set_to_none=True)
    total.backward()
    if not grads_finite(fit.model):
        return None
    tc = cfg.train
    for group in fit.opt.param_groups:
        group["lr"] = lr_at(step, tc.lr, tc.lr_milestones, tc.lr_gamma)
    fit.opt.step()
    if not params_finite(fit.model):  # a finite gradient can still overflow the update
        raise TrainingError(
            f"parameters became non-finite in the optimizer step at step {step + 1} (learning rate "
            f"{fit.opt.param_groups[0]['lr']:g}); try a lower train.lr (last good checkpoint kept: "
            f"{saver.last_good()})")
    if values is None:
        flat = torch.stack([total.detach(), *(v.detach().to(total.dtype) for v in parts.values())]).tolist()
        values = dict(zip(["loss", *parts], flat))  # one device synchronisation
    return values


def _skip(opt: torch.optim.Adam, at: _Position, bad_run: int, max_bad_steps: int, ctx: RunContext) -> None:
    """Count a skipped step (``bad_run`` in a row); too many in a row stop training."""
    at.bad_total += 1
    opt.zero_grad(set_to_none=True)
    ctx.say(log, logging.WARNING, "non-finite loss or gradient at step %d (skipped, %d in a row)", at.step, bad_run)
    if bad_run >= max_bad_steps:
        raise TrainingError(
            f"stopped after {bad_run} consecutive non-finite losses at step {at.step}; "
            "try a lower train.lr or loss.ridge > 0 (last good checkpoint kept)"
        )


def _summary(at: _Position, stopped: str, seconds: float, device: torch.device, plan: ExecutionPlan,
             last: dict[str, float]) -> dict[str, Any]:
    """The content of ``RUN/result.json``."""
    return {"step": at.step, "epoch": at.epoch, "bad_steps": at.bad_total, "stopped": stopped,
            "seconds": round(seconds, 2), "device": str(device), "execution": plan.to_dict(),
            "last": {k: (v if math.isfinite(v) else None) for k, v in last.items()}}
