"""Load a user's own sequences from ``.npy`` / ``.npz`` files into a :class:`SequenceData`.

Accepted ``x`` layouts (output always follows the package convention of ``skd.data.base``):
- ``"ntchw"``: video (N, T, C, H, W), C in {1, 3};
- ``"nthwc"``: video (N, T, H, W, C), C in {1, 3}, transposed to (N, T, C, H, W);
- ``"ntd"``: vector sequences (N, T, D), returned as float32.
``"auto"`` picks ``"ntd"`` for 3-d arrays, ``"nthwc"`` when the last axis is 1 or 3 and axis 2
is not, else ``"ntchw"``.

Labels are per-sequence integers, given as (N,), one-hot (N, K), or per-frame (N, T) / (N, T, K)
arrays that are constant over time; ``-1`` (or an all-zero one-hot row) marks an unknown label.
Every error is a single-line ``ValueError`` (``FileNotFoundError`` for a missing file) that
starts with the file name. Array headers are read and checked before any data: a header that
declares more bytes than the file holds, or more than the memory available
(:mod:`skd.files.limits`), is refused without allocating.
"""
from __future__ import annotations

import logging
import math
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from skd.data.base import Factor, FactorKind, SequenceData
from skd.files.limits import check_allocation

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "ntchw", "nthwc", "ntd")
DYNAMIC_NAMES = frozenset({"action", "motion", "content", "digit", "word", "dynamic", "phase"})
_LOAD_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # local file header, empty archive
_CHUNK_BYTES = 1 << 26  # float video is checked and converted in chunks of about this size
MIN_CLASS_LIMIT = 1024  # a factor may have up to max(N, this) classes (label ids 0..K-1)


def _one_line(err: BaseException) -> str:
    msg = " ".join(str(err).split())
    return msg or type(err).__name__


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} file not found")
    if not path.is_file():
        raise ValueError(f"{path}: {what} path is not a file")
    if path.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"{path}: unsupported extension {path.suffix!r} for {what} (use .npy or .npz)")


def _npy_header(fh, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, declared data bytes) from the .npy header at the stream's position."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = fmt.read_array_header_2_0(fh)
    else:  # pragma: no cover - read_magic only returns known majors
        raise ValueError(f"{where}: unsupported .npy format version {version}")
    return tuple(shape), dtype, math.prod(shape) * dtype.itemsize


class _Truncated(ValueError):
    """A header declares more data than its file holds (already a complete one-line message)."""


def _check_declared(where: str, shape: tuple[int, ...], dtype: np.dtype, declared: int, held: int) -> None:
    if declared > held:
        raise _Truncated(f"{where}: truncated or corrupt: its header declares an array of shape {shape} "
                         f"({dtype}, {declared} bytes) but the file holds only {max(held, 0)} bytes of data")


def _check_headers(path: Path, npy: bool) -> None:
    """Compare every array header with the bytes actually stored, and the total with the memory
    available, before numpy allocates anything."""
    try:
        if npy:
            with open(path, "rb") as fh:
                shape, dtype, declared = _npy_header(fh, str(path))
                held = path.stat().st_size - fh.tell()
            _check_declared(str(path), shape, dtype, declared, held)
            return
        total = 0
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                where = f"{path}['{info.filename[:-4]}']"
                with zf.open(info) as member:
                    shape, dtype, declared = _npy_header(member, where)
                    held = info.file_size - member.tell()
                _check_declared(where, shape, dtype, declared, held)
                total += declared
    except _Truncated:
        raise
    except _LOAD_ERRORS as err:
        raise ValueError(f"{path}: cannot read file ({_one_line(err)})") from err
    check_allocation(total, f"{path}: loading its arrays")


def _read(path: Path, what: str) -> dict[str, np.ndarray]:
    """All arrays of a .npy ({"": array}, memory-mapped when possible) or .npz (by key)."""
    _check_file(path, what)
    npy = path.suffix.lower() == ".npy"
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as err:
        raise ValueError(f"{path}: cannot read {what} file ({_one_line(err)})") from err
    if npy and head != _NPY_MAGIC:
        raise ValueError(f"{path}: not a valid .npy file (missing the NumPy header)")
    if not npy and head[:4] not in _ZIP_MAGIC:
        raise ValueError(f"{path}: not a valid .npz file (not a zip archive)")
    _check_headers(path, npy)
    try:
        if npy:
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except _LOAD_ERRORS:
                check_allocation(path.stat().st_size, f"{path}: reading the whole file")
                arr = np.load(path, allow_pickle=False)  # e.g. object dtype: report the plain error
            if not isinstance(arr, np.ndarray):
                raise ValueError("not a .npy array")
            return {"": arr}
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("not a .npz archive")
            arrays = {k: npz[k] for k in npz.files}
    except _LOAD_ERRORS as err:
        raise ValueError(f"{path}: cannot read {what} file ({_one_line(err)})") from err
    if not arrays:
        raise ValueError(f"{path}: the .npz archive holds no arrays")
    return arrays


def _check_dtype(arr: np.ndarray, path: Path, name: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: {name} has unsupported dtype {arr.dtype} (need integer or float numbers)")


def _select_x(arrays: dict[str, np.ndarray], key: str | None, path: Path) -> str:
    if "" in arrays:
        if key is not None:
            raise ValueError(f"{path}: key={key!r} given but a .npy file holds a single array")
        return ""
    if key is not None:
        if key not in arrays:
            raise ValueError(f"{path}: key={key!r} not found (arrays: {sorted(arrays)})")
        return key
    if "x" in arrays:
        return "x"
    if len(arrays) == 1:
        return next(iter(arrays))
    raise ValueError(f"{path}: several arrays {sorted(arrays)} and none named 'x'; pass key=")


def _resolve_layout(shape: tuple[int, ...], layout: str, path: Path) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"{path}: layout={layout!r} must be one of {LAYOUTS}")
    ndim = len(shape)
    if ndim not in (3, 5):
        raise ValueError(
            f"{path}: x has shape {shape} (ndim={ndim}); expected (N, T, C, H, W), (N, T, H, W, C) "
            "or (N, T, D) (add a channel axis of size 1 for grayscale video)"
        )
    if layout == "auto":
        if ndim == 3:
            return "ntd"
        if shape[-1] in (1, 3) and shape[2] not in (1, 3):
            return "nthwc"
        layout = "ntchw"
    if layout == "ntd" and ndim != 3:
        raise ValueError(f"{path}: layout='ntd' needs a 3-d x (N, T, D), got shape {shape}")
    if layout in ("ntchw", "nthwc"):
        if ndim != 5:
            raise ValueError(f"{path}: layout={layout!r} needs a 5-d x, got shape {shape}")
        c = shape[2] if layout == "ntchw" else shape[-1]
        if c not in (1, 3):
            raise ValueError(f"{path}: x has shape {shape}; with layout={layout!r} channels C={c} must be 1 or 3")
    return layout


def _to_float(arr: np.ndarray, path: Path, video: bool) -> np.ndarray:
    """Checked float32 copy of ``arr``, chunked over N; video must lie in [0, 1]."""
    out = np.empty(arr.shape, dtype=np.float32)
    per_item = max(1, out[:1].nbytes)
    step = max(1, _CHUNK_BYTES // per_item)
    for lo in range(0, arr.shape[0], step):
        chunk = out[lo:lo + step]  # converted in place: the source may be a read-only memory map
        chunk[...] = arr[lo:lo + step]
        if not np.isfinite(chunk).all():
            raise ValueError(f"{path}: x contains NaN or infinite values")
        if video:
            lo_v, hi_v = float(chunk.min()), float(chunk.max())
            if hi_v > 1.5 and hi_v <= 255.0 and lo_v >= 0.0:
                raise ValueError(
                    f"{path}: float video has max {hi_v:g} > 1; store it as uint8 in [0, 255] "
                    "or divide by 255 to get [0, 1]"
                )
            if lo_v < -1e-6 or hi_v > 1.0 + 1e-6:
                raise ValueError(f"{path}: float video must lie in [0, 1], got values in [{lo_v:g}, {hi_v:g}]")
            np.clip(chunk, 0.0, 1.0, out=chunk)
    return out


def _video_to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.uint8:
        return np.array(arr, dtype=np.uint8, order="C", copy=True)  # also detaches from the memory map
    if arr.dtype.kind == "b":
        raise ValueError(f"{path}: boolean video is not supported; store it as uint8 (0/255) or float in [0, 1]")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
        raise ValueError(f"{path}: integer video of dtype {arr.dtype} must lie in [0, 255], got [{lo}, {hi}]")
    return np.asarray(arr, dtype=np.uint8)


def _prepare_x(arr: np.ndarray, layout: str, path: Path) -> torch.Tensor:
    _check_dtype(arr, path, "x")
    layout = _resolve_layout(tuple(arr.shape), layout, path)
    n, t = arr.shape[0], arr.shape[1]
    if n < 1 or t < 2:
        raise ValueError(f"{path}: need N >= 1 sequences of T >= 2 steps, got shape {tuple(arr.shape)}")
    as_float = layout == "ntd" or arr.dtype.kind == "f"
    check_allocation(math.prod(arr.shape) * (4 if as_float else 1),
                     f"{path}: x of shape {tuple(arr.shape)} as {'float32' if as_float else 'uint8'}")
    if layout == "ntd":
        return torch.from_numpy(_to_float(arr, path, video=False))
    if layout == "nthwc":
        arr = arr.transpose(0, 1, 4, 2, 3)  # (N, T, H, W, C) -> (N, T, C, H, W)
    if arr.dtype.kind == "f":
        out = _to_float(arr, path, video=True)
    else:
        out = _video_to_uint8(arr, path)
    return torch.from_numpy(np.ascontiguousarray(out))


def _integer_values(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: labels have unsupported dtype {arr.dtype} (need integers)")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{where}: labels must be integers, got non-integer values of dtype {arr.dtype}")
    return np.asarray(arr).astype(np.int64)


def _from_one_hot(arr: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(..., K) one-hot -> (...,) indices (-1 for all-zero rows) and K; None if not one-hot."""
    if not np.isin(arr, (0, 1)).all():
        return None
    sums = arr.sum(axis=-1)
    if not np.isin(sums, (0, 1)).all():
        return None
    return np.where(sums == 1, arr.argmax(axis=-1), -1), int(arr.shape[-1])


def _parse_labels(arr: np.ndarray, n: int, seq_len: int, where: str, x_where: str) -> tuple[np.ndarray, int]:
    """One label array -> (N,) int64 indices and the factor size.

    Accepts (N,), one-hot (N, K), or (N, T) / one-hot (N, T, K) constant over time; a 2-d array
    of width T that is constant over time is read as per-frame, otherwise as one-hot.
    ``where`` (e.g. ``"labels.npz['digit']"``) starts every error message.
    """
    arr = np.asarray(arr)
    if arr.ndim == 0 or arr.shape[0] != n:
        length = arr.shape[0] if arr.ndim else "a scalar"
        raise ValueError(f"{where}: labels have length {length} but x in {x_where} has N={n} sequences")
    if arr.ndim > 3:
        raise ValueError(f"{where}: labels have shape {arr.shape}; expected (N,), (N, K), (N, T) or (N, T, K)")
    vals = _integer_values(arr, where)
    size = None
    per_frame = vals.ndim == 2 and vals.shape[1] == seq_len and _is_constant(vals)
    if vals.ndim == 3 or (vals.ndim == 2 and not per_frame):
        hot = _from_one_hot(vals)
        if hot is None:
            raise ValueError(
                f"{where}: labels of shape {arr.shape} are neither one-hot over the last axis "
                f"nor per-frame (N, T={seq_len}) constant over time"
            )
        vals, size = hot
    if vals.ndim == 2:
        if vals.shape[1] != seq_len:
            raise ValueError(f"{where}: per-frame labels of shape {arr.shape} need T={seq_len} steps like x")
        if not _is_constant(vals):
            raise ValueError(f"{where}: per-frame labels of shape {arr.shape} change over time; need one label per sequence")
        vals = vals[:, 0]
    if vals.size and vals.min() < -1:
        raise ValueError(f"{where}: labels must be >= 0 (or -1 for unknown), got min {int(vals.min())}")
    if size is None:
        size = max(int(vals.max()) + 1 if vals.size else 1, 1)
    limit = max(n, MIN_CLASS_LIMIT)
    if size > limit:
        raise ValueError(f"{where}: labels declare {size} classes (ids up to {size - 1}) for {n} sequences; at most "
                         f"{limit} classes are accepted: number the classes 0..K-1")
    return vals, size


def _is_constant(vals: np.ndarray) -> bool:
    return bool((vals == vals[:, :1]).all())


def _factor_kind(name: str, factor_kinds: Mapping[str, str] | None) -> FactorKind:
    kind = (factor_kinds or {}).get(name)
    if kind is None:
        return "dynamic" if name.lower() in DYNAMIC_NAMES else "static"
    if kind not in ("static", "dynamic"):
        raise ValueError(f"factor_kinds[{name!r}]={kind!r} must be 'static' or 'dynamic'")
    return kind  # type: ignore[return-value]


def load_arrays(
    path: str | Path,
    *,
    key: str | None = None,
    labels: str | Path | None = None,
    layout: str = "auto",
    factor_kinds: dict[str, str] | None = None,
) -> SequenceData:
    """Load sequences from ``path`` (.npy or .npz) with optional labels.

    x: video (N, T, C, H, W) uint8 (kept) or float32 in [0, 1], or vectors (N, T, D) float32.
    In an .npz, ``key`` selects x (default ``"x"``, or the only array); every other array is a
    label named by its key. ``labels`` is a separate .npy (factor ``"label"``) or .npz (one factor
    per key). Factor kinds are "static" unless the name is in ``DYNAMIC_NAMES`` or set by
    ``factor_kinds``.
    """
    path = Path(path)
    arrays = _read(path, "data")
    x_key = _select_x(arrays, key, path)
    x = _prepare_x(arrays[x_key], layout, path)  # (N, T, C, H, W) or (N, T, D)
    n, seq_len = int(x.shape[0]), int(x.shape[1])

    sources: dict[str, tuple[np.ndarray, str]] = {}
    for k, arr in arrays.items():
        if k != x_key:
            sources[k] = (arr, f"{path}['{k}']")
    if labels is not None:
        lpath = Path(labels)
        for k, arr in _read(lpath, "labels").items():
            name = k or "label"
            if name in sources:
                raise ValueError(f"{lpath}: label {name!r} is also stored in {path}; keep only one")
            where = f"{lpath}" if not k else f"{lpath}['{k}']"
            sources[name] = (arr, where)

    unknown = set(factor_kinds or {}) - set(sources)
    if unknown:
        raise ValueError(f"factor_kinds names {sorted(unknown)} that are not labels (labels: {sorted(sources)})")
    label_t: dict[str, torch.Tensor] = {}
    factors: list[Factor] = []
    for name, (arr, where) in sources.items():
        vals, size = _parse_labels(arr, n, seq_len, where, str(path))
        label_t[name] = torch.from_numpy(np.ascontiguousarray(vals))
        factors.append(Factor(name, size, _factor_kind(name, factor_kinds)))
    log.debug("loaded %s: x %s, factors %s", path, tuple(x.shape), [f.name for f in factors])
    return SequenceData(x=x, labels=label_t, factors=tuple(factors), name=path.stem)
