"""Bounded allocations: check what a file header, a config or a sample rate asks for before allocating it.

A corrupt or hostile input can declare terabytes in a few bytes (an array header, a WAV sample
rate, a label id, a model width). Every large allocation that such a value controls is checked
here first against the memory available now; a request that cannot fit raises ONE
:class:`ResourceLimitError` that names the input, the size asked for and the limit, instead of a
``MemoryError`` or an allocator traceback half-way through.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

import torch

__all__ = ["ResourceLimitError", "memory_budget", "format_bytes", "check_allocation", "module_bytes",
           "check_module_memory"]

log = logging.getLogger(__name__)


class ResourceLimitError(ValueError):
    """An input asks for more memory than this machine has available."""


def memory_budget() -> int | None:
    """Bytes that can be allocated now: the kernel's MemAvailable (or free pages), capped by
    ``RLIMIT_AS`` when set; None when the platform does not say (then nothing is refused)."""
    avail: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            avail = None
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            avail = soft if avail is None else min(avail, soft)
    except (ImportError, OSError, ValueError):
        pass
    return avail


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; binary units up to PiB."""
    n = float(n)
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def check_allocation(nbytes: int, what: str) -> None:
    """Raise :class:`ResourceLimitError` when ``nbytes`` exceed the memory available now.

    ``what`` names the input and what it asks for, e.g. ``"data.npy: x of shape (…) as float32"``.
    """
    budget = memory_budget()
    if budget is not None and nbytes > budget:
        raise ResourceLimitError(f"{what} needs {format_bytes(nbytes)} of memory, but only "
                                 f"{format_bytes(budget)} is available")


def module_bytes(factory: Callable[[], torch.nn.Module]) -> int:
    """Bytes of the parameters and buffers ``factory()`` would allocate, measured by building it
    on the ``meta`` device (shapes only, no memory)."""
    with torch.device("meta"):
        module = factory()
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def check_module_memory(factory: Callable[[], torch.nn.Module], what: str, copies: int = 1) -> None:
    """Refuse to build a network whose ``copies`` × parameter memory cannot fit (training with
    Adam holds 4 copies: parameters, gradients and two moment estimates)."""
    check_allocation(copies * module_bytes(factory), what)
