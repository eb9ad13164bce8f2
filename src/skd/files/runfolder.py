"""One writer per folder: an exclusive lock held for a run's life, and clean-up of what a killed run left.

A run folder (``skd train``) or a build target (``skd data sprites``) is claimed with
``fcntl.flock`` on a lock file before any data is loaded. The lock is held by the open file, so
the kernel releases it when the process ends in any way (``kill -9`` included): a stale lock
never blocks the next run. A second process that tries to claim a held folder fails at once
with :class:`FolderLockedError`. Claims are re-entrant within one process (the CLI claims the
folder before loading data, :func:`skd.train` claims it again).

Platforms without ``fcntl.flock`` (Windows) take no lock: there, do not start two runs into
one folder. Network file systems lock as well as their ``flock`` emulation does (NFSv4: yes).
"""
from __future__ import annotations

import logging
import os
import re
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FolderLockedError", "LOCK_NAME", "folder_lock", "claim_run_dir", "clean_stale_temp_files", "folder_bytes"]

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"  # inside a run folder
_HELD: dict[str, list] = {}  # realpath of a lock file -> [fd, depth]
_TEMP = re.compile(r"^\..+\.tmp$")  # temporary files of atomic writes: .NAME.XXXX.tmp


class FolderLockedError(RuntimeError):
    """Another live process holds the folder."""


@contextmanager
def folder_lock(lock_path: str | Path, what: str, *, remove: bool = False) -> Iterator[bool]:
    """Hold an exclusive, non-blocking ``flock`` on ``lock_path`` (created if absent) for the block.

    Yields True for the outermost claim in this process, False for a nested one. ``what`` names
    the claimed thing in the error (``"run folder runs/x"``). ``remove``: delete the lock file
    on release (for locks beside a folder rather than inside it).
    """
    path = Path(lock_path)
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield False
        finally:
            _HELD[key][1] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                raise FolderLockedError(f"{what} is in use by another skd process ({holder}); wait for it to "
                                        "finish or use another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        _HELD[key] = [fd, 1]
        try:
            yield True
        finally:
            del _HELD[key]
            if remove:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    finally:
        os.close(fd)  # releases the lock


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (a file: its size)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def clean_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete the hidden ``.NAME.XXXX.tmp`` files that killed writers left in a run folder (and
    in its ``checkpoints/``). Only safe while the folder is claimed; returns what was removed."""
    run_dir = Path(run_dir)
    removed: list[Path] = []
    size = 0
    for folder in (run_dir, run_dir / "checkpoints"):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if _TEMP.match(p.name) and p.is_file() and not p.is_symlink():
                size += p.stat().st_size
                p.unlink()
                removed.append(p)
    if removed:
        log.warning("%s: removed %d stale temporary file(s) (%d bytes) left by an interrupted run",
                    run_dir, len(removed), size)
    return removed


@contextmanager
def claim_run_dir(run_dir: str | Path, *, create: bool = True) -> Iterator[Path]:
    """Claim a run folder for the block: lock ``RUN/.lock``, then remove stale temporary files.

    ``create``: make the folder when absent (a new run); if the block then leaves it holding
    nothing but the lock file (e.g. the data failed to load), the folder is removed again.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    if created and not create:
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir} exists and is not a folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(run_dir / LOCK_NAME, f"run folder {run_dir}") as outer:
        try:
            if outer:
                clean_stale_temp_files(run_dir)
            yield run_dir
        finally:
            if created and outer and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
                try:  # still locked: nobody else can be using the empty folder
                    os.unlink(run_dir / LOCK_NAME)
                    os.rmdir(run_dir)
                except OSError:
                    pass
