"""Self-describing, safe checkpoints: tensors + JSON config + format version.

Written atomically (temporary file in the same folder, fsync, ``os.replace``) with the
permissions the umask gives any new file, and read with ``torch.load(weights_only=True)``,
which never unpickles arbitrary objects. A write that fails because the disk is full raises
:class:`DiskFullError` naming the file and the space it needed; the previous file stays.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .limits import format_bytes

FORMAT = "skd-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, of another kind or of an unknown version."""


class DiskFullError(OSError):
    """A file could not be written because its file system is full (or over quota)."""


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting, then restore at once
    os.umask(mask)
    return mask


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` or an error it was raised from is ENOSPC / EDQUOT (torch wraps the OSError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        err = err.__cause__ or err.__context__
    return False


def atomic_write_bytes(path: str | Path, write, *, size_hint: int | None = None) -> Path:
    """Call ``write(file_object)`` on a temp file beside ``path``, then rename it into place.

    The file gets the mode a plain ``open()`` would give it (0666 minus the umask). On a full
    disk the temp file is removed, ``path`` keeps its previous content, and
    :class:`DiskFullError` says how much was needed (``size_hint``, else what was written).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    written = 0
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600 files; give the usual 0666 & ~umask
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            written = os.path.getsize(tmp)
            os.unlink(tmp)
        if is_disk_full(err):
            need = max(size_hint or 0, written)
            free = shutil.disk_usage(path.parent).free
            full = DiskFullError(f"cannot write {path}: no space left on the device (needs about "
                                 f"{format_bytes(need)}, {format_bytes(free)} free); the previous file is unchanged")
            full.errno = errno.ENOSPC
            raise full from err
        raise
    return path


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: str | Path, text: str) -> Path:
    data = text.encode()
    return atomic_write_bytes(path, lambda f: f.write(data), size_hint=len(data))


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a nested dict/list (what ``torch.save`` writes, headers aside)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def save_checkpoint(path: str | Path, *, kind: str, config: dict[str, Any], state: dict[str, Any]) -> Path:
    """Save ``state`` (tensors, numbers, strings, nested dicts/lists) with its config and kind."""
    payload = {"format": FORMAT, "version": VERSION, "kind": kind, "config": json.dumps(config), **state}
    return atomic_write_bytes(path, lambda f: torch.save(payload, f), size_hint=_tensor_bytes(payload) + 4096)


def load_checkpoint(path: str | Path, *, kind: str | None = None, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely; checks format, version and (optionally) kind. ``config`` comes back as a dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # the weights-only unpickler met something other than tensors
        raise CheckpointError(f"{path} is not a safe skd checkpoint: it holds Python objects other than tensors "
                              "and plain data, so it was not loaded") from e
    except Exception as e:  # corrupt, truncated, not a torch file
        first = " ".join(str(e).split()) or type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt or not a checkpoint ({first[:160]})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an skd checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is not supported (expected {VERSION})")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path} is a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    raw = payload.get("config")
    if not isinstance(raw, str):
        raise CheckpointError(f"{path}: corrupt checkpoint (its config is a {type(raw).__name__}, not JSON text)")
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise CheckpointError(f"{path}: corrupt checkpoint (its config is not valid JSON: {e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: corrupt checkpoint (its config is a {type(config).__name__}, not a table)")
    payload["config"] = config
    return payload


def load_state_checked(module: torch.nn.Module, state: Any, path: str | Path, what: str = "model",
                       builder: str = "the checkpoint's config") -> None:
    """``module.load_state_dict(state)`` after checking names and shapes, so a checkpoint whose
    config disagrees with its weights is ONE :class:`CheckpointError` naming the file and the
    first tensor that differs (not torch's multi-line size-mismatch report). ``builder`` names
    what built ``module`` in that message."""
    own = module.state_dict()
    verdict = ("the config and weights disagree" if builder == "the checkpoint's config"
               else f"{builder} and these weights are different networks")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: corrupt checkpoint ({what} weights are a {type(state).__name__})")
    for name, ref in own.items():
        got = state.get(name)
        if got is None:
            raise CheckpointError(f"{path}: {what} tensor {name!r} is missing; {verdict}")
        if not isinstance(got, torch.Tensor):
            raise CheckpointError(f"{path}: {what} entry {name!r} is a {type(got).__name__}, not a tensor")
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: {what} tensor {name!r} has shape {tuple(got.shape)} but {builder} "
                                  f"builds {tuple(ref.shape)}; {verdict}")
    extra = [k for k in state if k not in own]
    if extra:
        raise CheckpointError(f"{path}: {what} tensor {extra[0]!r} is not part of the network {builder} builds; "
                              f"{verdict}")
    module.load_state_dict(state)
