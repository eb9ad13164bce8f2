"""Multi-process training on torch.distributed with an EXACT global Koopman fit.

Launch: ``torchrun --nproc-per-node N -m skd.cli.main train ...``, ``srun skd train ...`` under
SLURM, or ``skd train --nproc N`` (see :mod:`skd.training.launch`). :func:`init_distributed` reads the
launcher's environment and joins the process group; the trainer reads :func:`world`.
A 1-process launch is plain single-process training: no process group, no collectives.

Data split: ``train.batch_size`` is the GLOBAL batch B. Every rank computes the same
deterministic epoch order, takes the same global batch of B indices and keeps its contiguous
slice of B/W (:func:`shard`), so the ranks' slices concatenated in rank order are exactly the
single-process batch. This plays the role of ``DistributedSampler`` (whose strided split would
give each step a different set of sequences than a single process) and needs B divisible by W.

Exactness. W ranks, rank r holds b = B/W sequences. Rank r's loss L_r uses the GLOBAL Koopman
matrix C = solve(Σ_s G_s + ridge·I, Σ_s H_s) (Eq. 2; G_s = Zpᵀ Zp and H_s = Zpᵀ Zf of rank s,
float64; ridge added once, after the sum) and global batch statistics (:class:`GlobalBatchNorm`).
The single-process loss on the concatenated batch is L = (1/W) Σ_r L_r: MSE means over equal
local batches average to the global mean, and the spectral term E(C) is identical on all ranks,
so its W copies times 1/W count it once.

Gradients. DDP averages parameter gradients: g = (1/W) Σ_r ĝ_r, where ĝ_r is what rank r's own
backward computes. :func:`sum_across` sums in the forward AND sums the incoming gradients in the
backward, so the gradient reaching rank r's block G_r is Σ_s ∂L_s/∂G — the derivative of every
rank's loss, not only of L_r. By the chain rule Σ_r ĝ_r = ∂(Σ_s L_s)/∂θ, hence g = ∂L/∂θ
exactly, for the MSE terms (which also reach the encoder through C) and for E(C) (which reaches
θ W times through the summed backward; DDP divides by W once: neither double nor under-counted).
An all-reduce whose backward is the identity would miss the cross-rank terms and under-count
E(C) by a factor W. ``tests/test_distributed.py`` checks all of this against one process.

Backends: ``gloo`` for CPU tensors, ``nccl`` for CUDA tensors (``cpu:gloo,cuda:nccl``). Every
collective here is a plain ``all_reduce`` / ``all_gather`` on tensors of the training device, so
the NCCL path runs the same code as the gloo path tested on CPU.
"""
from __future__ import annotations

import inspect
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

log = logging.getLogger(__name__)

__all__ = [
    "WorldInfo", "env_world", "init_distributed", "shutdown", "world", "is_main", "process_device",
    "shard", "sum_across", "mean_across", "any_across", "gather_across", "barrier", "ddp_buffer_sync",
    "GlobalBatchNorm", "convert_sync_batchnorm", "revert_sync_batchnorm", "first_host",
]

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class WorldInfo:
    """This process's place in the job: global rank, number of processes, rank on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = ""
    master_port: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files, logs and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


# ----------------------------------------------------------------------------- environment
def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ValueError(f"environment variable {key}={env[key]!r} must be an integer") from None


def first_host(nodelist: str) -> str:
    """First host of a SLURM node list: 'gpu[03-05,9],cpu1' -> 'gpu03', 'a[1-2]-ib' -> 'a1-ib'.

    Equivalent to ``scontrol show hostnames $SLURM_JOB_NODELIST | head -n1`` for the usual
    forms (comma-separated names, bracketed ranges and lists, zero padding kept).
    """
    depth, end = 0, len(nodelist)
    for i, ch in enumerate(nodelist):  # first top-level comma ends the first entry
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            end = i
            break
    entry = nodelist[:end].strip()
    host = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).split(",")[0].split("-")[0], entry)
    if not host or "[" in host or "]" in host:
        raise ValueError(f"cannot read the first host of SLURM node list {nodelist!r}; export MASTER_ADDR")
    return host


def env_world(environ: Mapping[str, str] | None = None) -> WorldInfo:
    """The job layout from launcher environment variables (no process group is touched).

    torchrun / manual: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (take precedence).
    SLURM (inside an ``srun`` job step only, i.e. SLURM_STEP_NUM_TASKS is set): SLURM_PROCID,
    SLURM_STEP_NUM_TASKS, SLURM_LOCALID; MASTER_ADDR defaults to the first host of the step's
    node list and MASTER_PORT to 29500 + SLURM_JOB_ID mod 10000. Otherwise a single process.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env:
        size = _int(env, "WORLD_SIZE")
        rank = _int(env, "RANK") if "RANK" in env else 0
        local = _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else rank
        addr = env.get("MASTER_ADDR", "")
        port = _int(env, "MASTER_PORT") if "MASTER_PORT" in env else 0
        if size > 1 and (not addr or not port):
            raise ValueError(f"WORLD_SIZE={size} but MASTER_ADDR and MASTER_PORT are not both set; launch with torchrun")
    elif "SLURM_STEP_NUM_TASKS" in env and "SLURM_PROCID" in env:
        size = _int(env, "SLURM_STEP_NUM_TASKS")
        rank = _int(env, "SLURM_PROCID")
        local = _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "")
        addr = env.get("MASTER_ADDR") or (first_host(nodes) if nodes else "127.0.0.1")
        job = int(env["SLURM_JOB_ID"]) if env.get("SLURM_JOB_ID", "").isdigit() else 0
        port = _int(env, "MASTER_PORT") if "MASTER_PORT" in env else DEFAULT_PORT + job % 10000
    else:
        return WorldInfo()
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ValueError(f"inconsistent launcher environment: rank={rank}, world_size={size}, local_rank={local}")
    return WorldInfo(rank, size, local, addr, port)


def process_device(name: str, info: WorldInfo) -> torch.device:
    """The device of this rank: 'auto' → cuda:LOCAL_RANK when CUDA exists, else cpu;
    'cuda' → cuda:LOCAL_RANK, or cuda:0 when the launcher binds one GPU per process (only one
    visible); 'cpu' and an explicit 'cuda:N' are kept. MPS cannot all-reduce."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={name!r} but CUDA is not available")
        if dev.index is None:
            count = torch.cuda.device_count()
            if count > 1 and info.local_rank >= count:
                raise ValueError(f"LOCAL_RANK={info.local_rank} but only {count} CUDA devices are visible")
            dev = torch.device("cuda", info.local_rank if count > 1 else 0)
    elif dev.type != "cpu":
        raise ValueError(f"train.device={name!r} cannot be used with several processes (gloo needs cpu, nccl cuda)")
    return dev


def init_distributed(device: str = "auto", *, backend: str | None = None, timeout_minutes: float = 30.0) -> WorldInfo:
    """Join the process group that the launcher's environment describes; a no-op for 1 process.

    ``backend`` defaults to ``gloo`` for CPU training and ``cpu:gloo,cuda:nccl`` for CUDA
    (NCCL for the training tensors, gloo for anything on the CPU). Sets MASTER_ADDR/MASTER_PORT
    (from SLURM variables when needed) and the current CUDA device, then uses ``env://``
    (which, under torchrun, connects to the launcher's own store). Returns :func:`world`.
    """
    info = env_world()
    if not info.distributed:
        return info
    if dist.is_initialized():
        return world()
    dev = process_device(device, info)
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    os.environ.setdefault("MASTER_ADDR", info.master_addr)
    os.environ.setdefault("MASTER_PORT", str(info.master_port))
    dist.init_process_group(backend, init_method="env://", rank=info.rank, world_size=info.world_size,
                            timeout=timedelta(minutes=timeout_minutes))
    if info.is_main:
        log.info("joined a process group of %d processes (backend %s, %s:%d)", info.world_size, backend,
                 os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))
    return world()


def shutdown() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> WorldInfo:
    """The current process group's layout (a single process when none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return WorldInfo()
    env = env_world()
    return WorldInfo(dist.get_rank(), dist.get_world_size(), env.local_rank, env.master_addr, env.master_port)


def is_main() -> bool:
    return world().is_main


# ----------------------------------------------------------------------------- data split
def shard(idx: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous slice of a global batch of indices (B,) -> (B/W,).

    The slices of ranks 0..W-1 concatenated in order give ``idx`` back: the union of the
    ranks' batches at a step is the single-process batch. B must be divisible by W.
    """
    n = idx.shape[0]
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
    if n % world_size:
        raise ValueError(f"a global batch of {n} sequences cannot be split evenly over {world_size} processes")
    b = n // world_size
    return idx[rank * b : (rank + 1) * b]


# ----------------------------------------------------------------------------- collectives
class _SumAcrossRanks(torch.autograd.Function):
    """Σ over ranks in the forward; Σ over ranks of the incoming gradients in the backward.

    y = Σ_s x_s, so ∂(Σ_r L_r)/∂x_s = Σ_r ∂L_r/∂y: every rank's gradient w.r.t. its own x is
    the SUM of the gradients that all ranks' losses send into y (see the module docstring).
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def sum_across(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``tensor`` over all processes (the identity for one process).

    The ``reduce`` hook of :func:`skd.koopman.fit_koopman`: pass ``reduce=sum_across`` to fit C
    on the normal-equation blocks of the global batch. Every rank must call it, in the same
    order, and run the backward through it.
    """
    return _SumAcrossRanks.apply(tensor) if _active() else tensor


def mean_across(values: Mapping[str, torch.Tensor]) -> tuple[bool, dict[str, float]]:
    """Average scalar values over processes (no gradient): (all finite on every rank, means).

    One collective; every rank gets the same answer, so all skip or all take a step.
    """
    keys = list(values)
    vec = torch.stack([values[k].detach().double().reshape(()) for k in keys])  # (n,)
    finite = torch.isfinite(vec)
    vec = torch.cat([torch.where(finite, vec, torch.zeros_like(vec)), finite.all().double().reshape(1)])
    size = 1
    if _active():
        dist.all_reduce(vec, op=dist.ReduceOp.SUM)
        size = dist.get_world_size()
    out = (vec / size).tolist()
    return out[-1] == 1.0, dict(zip(keys, out[:-1]))


def any_across(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    if not _active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_across(tensor: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Stack every rank's ``tensor`` (same shape and dtype on all ranks): (W, ...) on the CPU."""
    if not _active():
        return tensor.detach().cpu().unsqueeze(0)
    x = tensor.detach().to(device).contiguous()
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x)
    return torch.stack(out).cpu()


def barrier(device: torch.device | str = "cpu") -> None:
    """Wait for every process (an all-reduce on ``device``, valid for gloo and nccl alike)."""
    if _active():
        dist.all_reduce(torch.zeros(1, device=device))


def ddp_buffer_sync(enabled: bool) -> dict[str, bool]:
    """DDP keyword that turns the per-forward broadcast of rank 0's buffers on or off
    (``forward_sync_buffers`` in recent torch, ``broadcast_buffers`` before)."""
    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return {"forward_sync_buffers": enabled}
    return {"broadcast_buffers": enabled}  # pragma: no cover - torch < 2.13


# ----------------------------------------------------------------------------- batch norm
class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the GLOBAL batch over all processes.

    Same parameters and buffers (state_dict keys) as BatchNorm1d/2d/3d. In training with W > 1
    processes, per-channel Σx, Σx² and the count are summed with :func:`sum_across` (float64,
    one collective, exact gradients by the module-docstring argument); otherwise, and in eval
    mode, it is plain batch norm. Device agnostic: ``torch.nn.SyncBatchNorm`` (torch 2.13)
    raises "SyncBatchNorm expected input tensor to be on GPU ..." for CPU tensors, so it cannot
    run under gloo on CPU; this one runs the same code under gloo and nccl.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.original_class: type[_BatchNorm] = nn.BatchNorm2d

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _active()):
            return super().forward(x)
        self._check_input_dim(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        count = x.new_full((1,), x.numel() // max(c, 1), dtype=torch.float64)
        stats = sum_across(torch.cat([x.sum(dims, dtype=torch.float64), (x * x).sum(dims, dtype=torch.float64), count]))
        n = float(stats[-1].detach())
        if n <= 1:
            raise ValueError(f"expected more than 1 value per channel when training, got {int(n)} over all processes")
        mean = stats[:c] / n  # (C,) float64
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0.0)  # biased, as batch norm uses
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - f).add_(f * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - f).add_(f * (var * n / (n - 1)).to(self.running_var.dtype))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.to(x.dtype).view(shape)) * torch.rsqrt(var + self.eps).to(x.dtype).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def _swap_bn(module: nn.Module, make) -> nn.Module:
    new = make(module)
    if new is not module:
        return new
    for name, child in module.named_children():
        repl = _swap_bn(child, make)
        if repl is not child:
            setattr(module, name, repl)
    return module


def _move_state(src: _BatchNorm, dst: _BatchNorm) -> _BatchNorm:
    """dst takes src's parameter and buffer OBJECTS (an optimiser holding them stays valid)."""
    if src.affine:
        dst.weight, dst.bias = src.weight, src.bias
    if src.track_running_stats:
        dst.running_mean, dst.running_var = src.running_mean, src.running_var
        dst.num_batches_tracked = src.num_batches_tracked
    dst.train(src.training)
    return dst


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer by a :class:`GlobalBatchNorm` sharing its parameters (in place)."""

    def make(m: nn.Module) -> nn.Module:
        if not isinstance(m, _BatchNorm) or isinstance(m, (GlobalBatchNorm, nn.SyncBatchNorm)):
            return m
        g = GlobalBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
        g.original_class = type(m)
        return _move_state(m, g)

    return _swap_bn(module, make)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`convert_sync_batchnorm`: each GlobalBatchNorm back to its original class."""

    def make(m: nn.Module) -> nn.Module:
        if not isinstance(m, GlobalBatchNorm):
            return m
        b = m.original_class(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
        return _move_state(m, b)

    return _swap_bn(module, make)

