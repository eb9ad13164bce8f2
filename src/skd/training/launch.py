"""Start N local processes as one torch.distributed job (``skd train --nproc N``).

A small stand-in for ``torchrun --standalone --nproc-per-node N``: each process gets the same
environment variables torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), so the code it runs is exactly the code a torchrun launch runs.
Processes are started with ``spawn``; when one fails the others are stopped and the failure
comes back as ONE :class:`LaunchError` line, the failing process's own error message.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
import torch.multiprocessing as mp

from .interrupt import GracefulStop

__all__ = ["LaunchError", "free_port", "launch_local"]


class LaunchError(RuntimeError):
    """A launched process failed; the message names the process and carries its error."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def launch_local(
    fn: Callable[..., Any], nproc: int, args: tuple = (), *, threads: int | None = None, debug: bool = False
) -> None:
    """Run ``fn(*args)`` in ``nproc`` new processes that form one process group on this machine.

    ``fn`` must be importable (a module-level function) and should call
    :func:`skd.training.distributed.init_distributed`. ``threads``: torch CPU threads per process
    (default: the CPU count divided by ``nproc``, at least 1, unless OMP_NUM_THREADS is set).
    Blocks until every process has finished.
    """
    if nproc < 1:
        raise ValueError(f"nproc={nproc} must be >= 1")
    if threads is None and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // nproc)
    port = free_port()
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")  # "Terminating process ..." would be a 2nd line
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="skd-launch-") as errdir:
        try:
            procs = mp.start_processes(_entry, args=(nproc, port, threads, errdir, debug, fn, args), nprocs=nproc,
                                       join=False, start_method="spawn")
            _join(procs)
        except mp.ProcessExitedException as e:
            raise LaunchError(_failure(errdir, e.error_index, nproc, f"exited with code {e.exit_code}")) from None
        except mp.ProcessRaisedException as e:  # pragma: no cover - _entry catches everything
            raise LaunchError(_failure(errdir, e.error_index, nproc, str(e).strip().splitlines()[-1])) from None
        finally:
            spawn_log.setLevel(level)


def _join(procs: mp.ProcessContext) -> None:
    """Wait for every process; the first SIGINT / SIGTERM goes on to each of them (they stop after
    their step, with a checkpoint), the second terminates them."""
    def forward(signum: int) -> None:
        for pid in procs.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    try:
        with GracefulStop(forward=forward):
            while not procs.join():
                pass
    except KeyboardInterrupt:
        for p in procs.processes:
            if p.is_alive():
                p.terminate()
        raise


def _failure(errdir: str, rank: int, nproc: int, fallback: str) -> str:
    path = Path(errdir) / f"{rank}.txt"
    msg = path.read_text().strip() if path.is_file() else ""
    return f"process {rank} of {nproc}: {msg or fallback}"


def _entry(local_rank: int, nproc: int, port: int, threads: int | None, errdir: str, debug: bool,
           fn: Callable[..., Any], args: tuple) -> None:
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # a terminal's Ctrl-C reaches the launcher only, which passes it on once (see _join)
    os.environ.update(RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(nproc),
                      LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    try:
        fn(*args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BaseException as e:  # noqa: BLE001 - reported to the parent as one line
        if isinstance(e, SystemExit) and not e.code:
            raise
        text = str(e).strip()
        first = text.splitlines()[0] if text else ""
        user = isinstance(e, (ValueError, OSError, KeyError)) or type(e).__module__.startswith("skd.")
        msg = first if user and first else f"{type(e).__name__}: {first}"
        (Path(errdir) / f"{local_rank}.txt").write_text(msg)
        if debug:
            traceback.print_exc()
        raise SystemExit(2) from None
