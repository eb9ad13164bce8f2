"""The distributed context of one training run: which process this is, its device, and the
collectives the training loop needs, asked in one place instead of all over the loop.

A single process (no process group) gets the same object: every collective is then the
identity, :attr:`RunContext.is_main` is true, and the loop runs exactly the single-process code
path. See :mod:`skd.training.distributed` for the exact global fit the collectives implement.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from . import distributed as D

Reduce = Callable[[torch.Tensor], torch.Tensor]


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


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s own RNG stream (dropout) in a multi-process run."""
    return seed * 1_000_003 + 7919 * (rank + 1)


@dataclass(frozen=True)
class RunContext:
    """This process's place in the run (``world``) and its training ``device``."""

    world: D.WorldInfo
    device: torch.device

    @classmethod
    def create(cls, world: D.WorldInfo, device: str) -> RunContext:
        """The context of ``world`` training on ``device`` (a ``train.device`` name)."""
        dev = D.process_device(device, world) if world.distributed else resolve_device(device)
        return cls(world, dev)

    @property
    def is_main(self) -> bool:
        """Rank 0 (the only process of a single-process run) writes files, logs and shows progress."""
        return self.world.is_main

    def say(self, logger: logging.Logger, level: int, msg: str, *args: Any) -> None:
        """Log on the main process only."""
        if self.is_main:
            logger.log(level, msg, *args)

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for in a single process)."""
        D.barrier(self.device)

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        return D.any_across(flag, self.device)

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of the global batch of indices: (B,) -> (B/W,)."""
        return D.shard(idx, self.world.rank, self.world.world_size) if self.world.distributed else idx

    def agree(self, total: torch.Tensor, parts: dict[str, torch.Tensor]) -> tuple[bool, dict[str, float] | None]:
        """(loss finite, global means of loss and parts) — every rank gets the same answer, so all
        skip or all take the step. A single process decides on its own loss; means are None then."""
        if self.world.distributed:
            return D.mean_across({"loss": total, **parts})
        return bool(torch.isfinite(total)), None

    def seed_own_stream(self, seed: int) -> None:
        """Give each rank its own dropout masks (a single process keeps the global seed)."""
        if self.world.distributed:
            torch.manual_seed(rank_seed(seed, self.world.rank))

    def reseed(self, seed: int, step: int) -> None:
        """A fresh RNG stream for this rank at ``step`` (when saved RNG states cannot be reused)."""
        torch.manual_seed(rank_seed(seed, self.world.rank) + step)

    def convert_bn(self, model: torch.nn.Module, sync_bn: bool) -> None:
        """BatchNorm on global batch statistics in a process group with ``sync_bn``."""
        if self.world.distributed and sync_bn:
            D.convert_sync_batchnorm(model)

    def revert_bn(self, model: torch.nn.Module, sync_bn: bool) -> None:
        """Undo :meth:`convert_bn` (the returned model holds plain BatchNorm layers)."""
        if self.world.distributed and sync_bn:
            D.revert_sync_batchnorm(model)

    def wrap(self, model: torch.nn.Module, sync_bn: bool) -> tuple[torch.nn.Module, Reduce | None]:
        """(what the step calls, the ``reduce`` hook of the Koopman fit): DDP around ``model`` and
        :func:`skd.training.distributed.sum_across` (C from the global normal equations) in a
        process group; ``model`` itself and None in a single process."""
        if not self.world.distributed:
            return model, None
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=device_ids, **D.ddp_buffer_sync(not sync_bn))
        return net, D.sum_across

    def gather_rng(self) -> dict[str, Any]:
        """Every rank's RNG states, for an exact multi-process resume (a collective: all ranks call
        it); nothing in a single process, whose own state the checkpoint holds."""
        if not self.world.distributed:
            return {}
        state: dict[str, Any] = {"world_size": self.world.world_size,
                                 "rng_cpu_ranks": D.gather_across(torch.get_rng_state(), self.device)}
        if self.device.type == "cuda":
            state["rng_cuda_ranks"] = D.gather_across(torch.cuda.get_rng_state(self.device), self.device)
        return state

    def restore_rng(self, ckpt: dict[str, Any]) -> None:
        """Set this rank's RNG states from a checkpoint written by the same number of processes."""
        if int(ckpt.get("world_size", 1)) == 1:
            torch.set_rng_state(ckpt["rng_cpu"])
            if self.device.type == "cuda" and ckpt["rng_cuda"]:
                torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
            return
        torch.set_rng_state(ckpt["rng_cpu_ranks"][self.world.rank].clone())
        if self.device.type == "cuda" and "rng_cuda_ranks" in ckpt:
            torch.cuda.set_rng_state(ckpt["rng_cuda_ranks"][self.world.rank].clone(), self.device)
