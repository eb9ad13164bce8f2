"""The Sprites benchmark (Li & Mandt, 2018): build it from the LPC sheets, load it from disk.

Recipe of the standard data set (recovered from the original generator, followed value for value): character
c in 0..1295 has body = c // 216, bottom = (c // 36) % 6, top = (c // 6) % 6, hair = c % 6;
its frames are cells of an opaque black canvas alpha-composited with body, bottomwear,
topwear, hair and ``shoes/1.png``. ``np.random.seed(423)`` splits the characters 1000 / 296;
blocks are action-major over [walk, spellcard, slash] x [front, left, right]; the action label
is 3 * action + direction; ``np.random.seed(0)`` draws the final train then test order.

Files written by :func:`build_sprites` (the names the SKD / DBSE code reads):
- ``sprites_X_{split}.npy``: (N, 8, 64, 64, 3) float32 value / 256 (in [0, 255/256]), or,
  with ``dtype="uint8"``, the pixel value itself: uint8 v means v / 256 in the float form;
- ``sprites_A_{split}.npy``: (N, 8, 4, 6) float32 one-hot [body, bottom, top, hair];
- ``sprites_D_{split}.npy``: (N, 8, 9) float64 one-hot action (the original's dtypes);
- ``sprites_{split}_u8.npz``: compressed ``x`` (N, 8, 64, 64, 3) uint8 pixel values and
  (N,) int64 ``body``, ``bottom``, ``top``, ``hair``, ``action``;
- ``meta.json``: counts, dtype, recipe version, sha256 of every file above.

:func:`load_sprites` returns the package convention: x uint8 (N, 8, 3, 64, 64) and factors
skin, pants, top, hair (static, 6 each) and action (dynamic, 9).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from skd.files.checkpoint import current_umask
from skd.data.arrays import _one_line, _read
from skd.data.base import Factor, SequenceData
from skd.files.limits import check_allocation, format_bytes
from skd.files.runfolder import folder_bytes, folder_lock

log = logging.getLogger(__name__)

RECIPE_VERSION = 1
N_CHARACTERS = 6 ** 4
N_TRAIN_CHARACTERS = 1000
SPLIT_SEED, ORDER_SEED = 423, 0
SHEET_SIZE = (832, 1344)  # (width, height): 13 x 21 cells
CELL = 64
IMAGE_SIZES = (64, 32)  # 64: the benchmark; 32: a 2×2 box-reduced variant
LAYERS = ("body", "bottomwear", "topwear", "hair")  # composited in this order, then shoes
SHOES = ("shoes", 1)
ACTIONS = ("walk", "spellcard", "slash")
DIRECTIONS = ("front", "left", "right")
ACTION_NAMES = tuple(f"{a}-{d}" for a in ACTIONS for d in DIRECTIONS)  # index = 3 * action + direction
SHEET_ROWS = {"walk": (10, 9, 11), "spellcard": (2, 1, 3), "slash": (14, 13, 15)}  # front, left, right
SHEET_COLS = {
    "walk": (8, 1, 2, 3, 4, 5, 6, 7),
    "spellcard": (0, 1, 2, 3, 4, 5, 4, 6),
    "slash": (0, 1, 2, 3, 4, 5, 4, 0),
}
STATIC_NAMES = ("skin", "pants", "top", "hair")  # recipe names: body, bottom, top, hair
COMPACT_KEYS = ("body", "bottom", "top", "hair")
SPLITS = ("train", "test")
DTYPES = ("float32", "uint8")

_USED_ROWS = tuple(sorted({r for rows in SHEET_ROWS.values() for r in rows}))  # 9 sheet rows
_USED_COLS = 1 + max(c for cols in SHEET_COLS.values() for c in cols)  # columns 0..8
# (9, 8): flat cell index into the cropped (len(_USED_ROWS) * _USED_COLS) cell grid, per action label
_CLIP_CELLS = np.array([
    [_USED_ROWS.index(SHEET_ROWS[a][d]) * _USED_COLS + c for c in SHEET_COLS[a]]
    for a in ACTIONS for d in range(len(DIRECTIONS))
])


# --------------------------------------------------------------------------- recipe


def character_attributes(c: np.ndarray | int) -> np.ndarray:
    """Character id(s) -> [..., 4] int64 sheet indices [body, bottom, top, hair]."""
    c = np.asarray(c, dtype=np.int64)
    return np.stack([c // 216, (c // 36) % 6, (c // 6) % 6, c % 6], axis=-1)


def sprites_plan(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(character id, action label), each (N,) int64, of every sequence of ``split`` in final order.

    Uses private ``RandomState`` streams equal to the recipe's legacy global seeding.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} must be one of {SPLITS}")
    perm = np.random.RandomState(SPLIT_SEED).permutation(N_CHARACTERS)
    order_rng = np.random.RandomState(ORDER_SEED)
    orders = {s: order_rng.permutation(len(ACTION_NAMES) * n)
              for s, n in (("train", N_TRAIN_CHARACTERS), ("test", N_CHARACTERS - N_TRAIN_CHARACTERS))}
    chars = perm[:N_TRAIN_CHARACTERS] if split == "train" else perm[N_TRAIN_CHARACTERS:]
    block_chars = np.tile(chars, len(ACTION_NAMES))  # blocks action-major, characters in perm order
    block_label = np.repeat(np.arange(len(ACTION_NAMES)), len(chars))
    order = orders[split]
    return block_chars[order].astype(np.int64), block_label[order].astype(np.int64)


# --------------------------------------------------------------------------- rendering


def _sheet_paths(sheets_dir: Path) -> list[list[Path]]:
    return [[sheets_dir / layer / f"{i}.png" for i in range(6)] for layer in LAYERS] + [
        [sheets_dir / SHOES[0] / f"{SHOES[1]}.png"]]


def _load_sheet(path: Path) -> Image.Image:
    """RGBA copy of the used cells (rows ``_USED_ROWS``, columns 0..8) of one checked sheet."""
    if not path.is_file():
        raise ValueError(f"{path}: sprite sheet not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, don't decode
            with Image.open(path) as im:
                if im.size != SHEET_SIZE:  # checked from the header, before any pixel is decoded
                    raise ValueError(f"{path}: sprite sheet is {im.size[0]}x{im.size[1]} px, expected "
                                     f"{SHEET_SIZE[0]}x{SHEET_SIZE[1]}")
                rgba = np.asarray(im.convert("RGBA"))  # (1344, 832, 4)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(f"{path}: sprite sheet refused as a decompression bomb ({_one_line(err)}); "
                         f"expected {SHEET_SIZE[0]}x{SHEET_SIZE[1]} px") from err
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path}: cannot read sprite sheet ({_one_line(err)})") from err
    # Compositing is per pixel, so cropping before compositing gives the same values.
    strips = [rgba[r * CELL:(r + 1) * CELL, :_USED_COLS * CELL] for r in _USED_ROWS]
    return Image.fromarray(np.ascontiguousarray(np.concatenate(strips, axis=0)), "RGBA")


class _Compositor:
    """Renders characters, caching the body / bottom / top prefixes of the layer stack."""

    def __init__(self, sheets_dir: Path):
        *layers, shoes = [[_load_sheet(p) for p in paths] for paths in _sheet_paths(sheets_dir)]
        self.layers, self.shoes = layers, shoes[0]
        self.canvas = Image.new("RGBA", self.shoes.size, (0, 0, 0, 255))
        self._prefix: list[tuple[tuple[int, ...], Image.Image] | None] = [None] * len(LAYERS)

    def cells(self, c: int, idx: np.ndarray) -> np.ndarray:
        """uint8 RGB cells of character ``c`` at flat indices ``idx`` (any shape, row-major over the
        cropped grid): (*idx.shape, 64, 64, 3); only the cells asked for are copied."""
        key = tuple(int(v) for v in character_attributes(c))
        img = self.canvas
        for depth in range(len(LAYERS)):  # same operations in the same order, partly cached
            cached = self._prefix[depth]
            if cached is not None and cached[0] == key[:depth + 1]:
                img = cached[1]
                continue
            img = Image.alpha_composite(img, self.layers[depth][key[depth]])
            self._prefix[depth] = (key[:depth + 1], img)
        img = Image.alpha_composite(img, self.shoes)
        rgb = np.asarray(img)[:, :, :3]  # (9 * 64, 9 * 64, 3)
        grid = rgb.reshape(len(_USED_ROWS), CELL, _USED_COLS, CELL, 3)  # a view: (row, y, col, x, rgb)
        return grid[idx // _USED_COLS, :, idx % _USED_COLS]  # advanced indices first: (*idx, y, x, rgb)


def _render_sequences(compositor: _Compositor, chars: np.ndarray, labels: np.ndarray,
                     progress: bool = False) -> np.ndarray:
    """(N, 8, 64, 64, 3) uint8 pixel values of the sequences (character, action label)."""
    out = np.empty((len(chars), len(_CLIP_CELLS[0]), CELL, CELL, 3), dtype=np.uint8)
    order = np.argsort(chars, kind="stable")  # sorted ids share composited prefixes
    uniq, starts = np.unique(chars[order], return_index=True)
    bounds = list(starts) + [len(chars)]
    for i, c in enumerate(tqdm(uniq, desc="sprites", unit="char", disable=not progress)):
        pos = order[bounds[i]:bounds[i + 1]]
        out[pos] = compositor.cells(int(c), _CLIP_CELLS[labels[pos]])
    return out


# --------------------------------------------------------------------------- building


def downsample_frames(x: np.ndarray, factor: int) -> np.ndarray:
    """(..., H, W, C) uint8 -> (..., H/f, W/f, C) uint8: mean of each f×f block, rounded half up.

    A box filter keeps the colour of flat regions exactly and is a pure function of the pixels,
    so a reduced build is as reproducible as the full-size one.
    """
    if factor == 1:
        return x
    *lead, h, w, c = x.shape
    if h % factor or w % factor:
        raise ValueError(f"frames of {h}x{w} do not divide by {factor}")
    out = np.empty((*lead, h // factor, w // factor, c), dtype=np.uint8)
    flat_in, flat_out = x.reshape(-1, h, w, c), out.reshape(-1, h // factor, w // factor, c)
    area = factor * factor
    for lo in range(0, flat_in.shape[0], 4096):
        blk = flat_in[lo:lo + 4096].reshape(-1, h // factor, factor, w // factor, factor, c)
        flat_out[lo:lo + 4096] = (blk.sum(axis=(2, 4), dtype=np.uint32) + area // 2) // area
    return out


def _check_limit(name: str, limit: int | None, full: int) -> int:
    if limit is None:
        return full
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= full:
        raise ValueError(f"{name}={limit!r} must be an integer in [1, {full}] (or None for all)")
    return int(limit)


def _check_out_dir(out: Path) -> None:
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise FileExistsError(f"{out}: output path exists and is not a folder")
        if any(out.iterdir()):
            raise FileExistsError(f"{out}: output folder exists and is not empty")


def _partial_builds(out: Path) -> list[Path]:
    """Temporary build folders of ``out`` (``.NAME.partial-XXXX.tmp`` beside it)."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.partial-[A-Za-z0-9_]+\.tmp$")
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.iterdir() if pattern.match(p.name) and p.is_dir() and not p.is_symlink())


def _remove_partial_builds(out: Path) -> None:
    """Delete what killed builds into ``out`` left (only called while holding the build lock)."""
    for p in _partial_builds(out):
        size = folder_bytes(p)
        shutil.rmtree(p, ignore_errors=True)
        log.warning("removed %s (%s), a partial build left by an interrupted build into %s", p, format_bytes(size), out)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_split(folder: Path, split: str, x: np.ndarray, chars: np.ndarray, labels: np.ndarray,
                 dtype: str) -> list[Path]:
    n, t = x.shape[:2]
    attrs = character_attributes(chars)  # (N, 4)
    paths = [folder / f"sprites_{k}_{split}.npy" for k in "XAD"] + [folder / f"sprites_{split}_u8.npz"]
    if dtype == "uint8":
        np.save(paths[0], x)
    else:
        xf = np.lib.format.open_memmap(paths[0], mode="w+", dtype=np.float32, shape=x.shape)
        step = 512
        for lo in range(0, n, step):
            xf[lo:lo + step] = x[lo:lo + step] / np.float32(256)
        xf.flush()
        del xf
    a = np.eye(6, dtype=np.float32)[attrs]  # (N, 4, 6)
    np.save(paths[1], np.ascontiguousarray(np.broadcast_to(a[:, None], (n, t, 4, 6))))
    d = np.eye(len(ACTION_NAMES), dtype=np.float64)[labels]  # (N, 9)
    np.save(paths[2], np.ascontiguousarray(np.broadcast_to(d[:, None], (n, t, len(ACTION_NAMES)))))
    ints = {k: np.ascontiguousarray(attrs[:, i]) for i, k in enumerate(COMPACT_KEYS)}
    _savez_fast(paths[3], x=x, **ints, action=labels)
    return paths


def _savez_fast(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` at deflate level 3: the same .npz format (``np.load`` reads it), twice
    as fast as numpy's default level 6 on Sprites frames, for a file about 1.4x larger."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=3) as zf:
        for name, a in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)


def build_sprites(
    sheets_dir: str | Path,
    out_dir: str | Path,
    *,
    limit_train: int | None = None,
    limit_test: int | None = None,
    dtype: Literal["float32", "uint8"] = "float32",
    image_size: int = CELL,
    progress: bool = True,
) -> dict:
    """Build the standard Sprites arrays from the LPC sheets into ``out_dir``; returns the metadata.

    ``limit_train`` / ``limit_test`` keep the first N sequences of the final order, so a limited
    build equals the first rows of the full one. Output goes to a temporary folder
    ``.NAME.partial-XXXX.tmp`` beside ``out_dir`` that is renamed into place at the end;
    ``out_dir`` must not exist or be empty. A build holds the lock ``.NAME.lock`` beside
    ``out_dir`` while it runs, and first removes (and logs) the partial builds that killed
    builds into the same ``out_dir`` left behind.
    ``image_size`` 32 stores every frame reduced by a 2×2 box mean (``downsample_frames``): not
    the standard benchmark, but a 4× cheaper variant for fast experiments (judge it with a judge
    trained on the same build).
    """
    t0 = time.perf_counter()
    sheets_dir, out = Path(sheets_dir), Path(out_dir)
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} must be one of {DTYPES}")
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size={image_size!r} must be one of {IMAGE_SIZES}")
    full = {"train": len(ACTION_NAMES) * N_TRAIN_CHARACTERS,
            "test": len(ACTION_NAMES) * (N_CHARACTERS - N_TRAIN_CHARACTERS)}
    counts = {"train": _check_limit("limit_train", limit_train, full["train"]),
              "test": _check_limit("limit_test", limit_test, full["test"])}
    if not sheets_dir.is_dir():
        raise FileNotFoundError(f"{sheets_dir}: sprite sheet folder not found")
    _check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(out.parent / f".{out.name}.lock", f"build target {out}", remove=True):
        _remove_partial_builds(out)
        _check_out_dir(out)  # again, now that no other build into it can be running
        meta = _build_locked(sheets_dir, out, counts, full, dtype, image_size, progress)
    seconds = time.perf_counter() - t0
    log.info("built Sprites (%d train, %d test, %s, %d px) in %s in %.1f s", counts["train"], counts["test"],
             dtype, image_size, out, seconds)
    return {**meta, "out_dir": str(out), "seconds": seconds}


def _build_locked(sheets_dir: Path, out: Path, counts: dict[str, int], full: dict[str, int], dtype: str,
                  image_size: int, progress: bool) -> dict:
    compositor = _Compositor(sheets_dir)  # checks every sheet before anything is written
    sheet_hashes = {str(p.relative_to(sheets_dir)): _sha256(p) for ps in _sheet_paths(sheets_dir) for p in ps}

    plans = {s: tuple(a[:counts[s]] for a in sprites_plan(s)) for s in SPLITS}
    chars = np.concatenate([plans[s][0] for s in SPLITS])
    labels = np.concatenate([plans[s][1] for s in SPLITS])
    x_all = _render_sequences(compositor, chars, labels, progress=progress)  # both splits at once
    x_all = downsample_frames(x_all, CELL // image_size)  # (N, 8, S, S, 3)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", suffix=".tmp", dir=out.parent))
    try:
        files: list[Path] = []
        lo = 0
        for s in SPLITS:
            x = x_all[lo:lo + counts[s]]
            lo += counts[s]
            files += _write_split(tmp, s, x, *plans[s], dtype)
        del x_all
        meta = {
            "format": "skd-sprites",
            "recipe_version": RECIPE_VERSION,
            "dtype": dtype,
            "image_size": image_size,
            "standard": image_size == CELL,
            "pixel_scale": 256,
            "counts": counts,
            "full": counts == full,
            "action_names": list(ACTION_NAMES),
            "attribute_order": list(COMPACT_KEYS),
            "sha256": {p.name: _sha256(p) for p in files},
            "bytes": {p.name: p.stat().st_size for p in files},
            "sheets_sha256": sheet_hashes,
            "license": "CC-BY-SA 3.0 / GPL 3.0, Liberated Pixel Cup artists via Universal-LPC-spritesheet",
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        for p in [*files, tmp / "meta.json"]:
            _fsync(p)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700 folders
        try:
            os.replace(tmp, out)  # also replaces an empty existing folder
        except OSError as err:
            raise FileExistsError(f"{out}: cannot move the build into place ({_one_line(err)})") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


# --------------------------------------------------------------------------- loading


def sprites_factors() -> tuple[Factor, ...]:
    return tuple(Factor(n, 6, "static") for n in STATIC_NAMES) + (
        Factor("action", len(ACTION_NAMES), "dynamic", ACTION_NAMES),)


def _x_layout(shape: tuple[int, ...], where: str) -> str:
    if len(shape) == 5 and shape[0] >= 1 and shape[1] >= 2:
        for s in IMAGE_SIZES:
            if shape[2:] == (s, s, 3):
                return "nthwc"
            if shape[2:] == (3, s, s):
                return "ntchw"
    raise ValueError(f"{where}: x has shape {shape}; expected (N, T, S, S, 3) or (N, T, 3, S, S) with S in "
                     f"{IMAGE_SIZES}, N >= 1, T >= 2")


def _video_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    """(N, T, 3, S, S) uint8 from a checked uint8 or float array; floats map f -> round(256 f)."""
    layout = _x_layout(tuple(arr.shape), where)
    if arr.dtype != np.uint8 and arr.dtype.kind != "f":
        raise ValueError(f"{where}: x has dtype {arr.dtype}; expected uint8 or float32 in [0, 1]")
    src = arr.transpose(0, 1, 4, 2, 3) if layout == "nthwc" else arr
    check_allocation(int(np.prod(src.shape, dtype=np.int64)), f"{where}: x of shape {tuple(arr.shape)} as uint8")
    out = np.empty(src.shape, dtype=np.uint8)
    step = max(1, (1 << 26) // max(1, out[:1].nbytes * 8))
    top = 0.0
    for lo in range(0, src.shape[0], step):
        chunk = np.asarray(src[lo:lo + step])
        if chunk.dtype == np.uint8:
            out[lo:lo + step] = chunk
            continue
        chunk = chunk.astype(np.float64)
        if not np.isfinite(chunk).all():
            raise ValueError(f"{where}: x contains NaN or infinite values")
        lo_v, hi_v = float(chunk.min()), float(chunk.max())
        if lo_v < -1e-6 or hi_v > 1.0 + 1e-6:
            raise ValueError(f"{where}: float x must lie in [0, 1], got values in [{lo_v:g}, {hi_v:g}]")
        top = max(top, hi_v)
        out[lo:lo + step] = np.clip(np.rint(chunk * 256.0), 0, 255)
    if top > 255 / 256 + 1e-6:
        log.warning("%s: float pixels reach %g > 255/256, so they may follow value / 255 rather than the "
                    "Sprites value / 256; levels 128-254 then read one step high", where, top)
    return out


def _int_labels(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: labels have dtype {arr.dtype}; expected integers or one-hot numbers")
    if arr.dtype.kind == "f" and (not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr))):
        raise ValueError(f"{where}: labels hold non-integer values")
    return np.asarray(arr).astype(np.int64)


def _decode_labels(arr: np.ndarray, n: int, t: int, k: int, heads: int | None, where: str) -> np.ndarray:
    """Labels -> (N, heads) or (N,) int64 in [0, k): per-sequence ints or per-frame one-hot."""
    per_seq = (n,) if heads is None else (n, heads)
    one_hot = (n, t, k) if heads is None else (n, t, heads, k)
    if arr.ndim == 0 or arr.shape[0] != n:
        length = arr.shape[0] if arr.ndim else "a scalar"
        raise ValueError(f"{where}: labels have length {length} but x has N={n} sequences")
    vals = _int_labels(arr, where)
    if arr.shape == one_hot:
        if not (np.isin(vals, (0, 1)).all() and (vals.sum(axis=-1) == 1).all()):
            raise ValueError(f"{where}: labels of shape {arr.shape} are not one-hot over the last axis")
        vals = vals.argmax(axis=-1)  # (N, T[, heads])
        if not (vals == vals[:, :1]).all():
            raise ValueError(f"{where}: labels change over time; need one label per sequence")
        vals = vals[:, 0]
    elif arr.shape != per_seq:
        raise ValueError(f"{where}: labels have shape {arr.shape}; expected {one_hot} one-hot or {per_seq} integers")
    if vals.size and (vals.min() < 0 or vals.max() >= k):
        raise ValueError(f"{where}: labels must lie in [0, {k}), got [{int(vals.min())}, {int(vals.max())}]")
    return vals


def _read_compact(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    arrays = _read(path, "Sprites")
    missing = [k for k in ("x", *COMPACT_KEYS, "action") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing} (has {sorted(arrays)})")
    x = _video_uint8(arrays["x"], f"{path}['x']")
    n, t = x.shape[:2]
    labels = {name: _decode_labels(arrays[k], n, t, 6, None, f"{path}['{k}']")
              for name, k in zip(STATIC_NAMES, COMPACT_KEYS)}
    labels["action"] = _decode_labels(arrays["action"], n, t, len(ACTION_NAMES), None, f"{path}['action']")
    return x, labels


def _read_standard(folder: Path, split: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    px, pa, pd = (folder / f"sprites_{k}_{split}.npy" for k in "XAD")
    for p in (px, pa, pd):
        if not p.exists():
            raise FileNotFoundError(f"{p}: Sprites file not found (and no {folder / f'sprites_{split}_u8.npz'})")
    x = _video_uint8(_read(px, "Sprites X")[""], str(px))
    n, t = x.shape[:2]
    a = _decode_labels(np.asarray(_read(pa, "Sprites A")[""]), n, t, 6, 4, str(pa))  # (N, 4)
    d = _decode_labels(np.asarray(_read(pd, "Sprites D")[""]), n, t, len(ACTION_NAMES), None, str(pd))
    labels = {name: np.ascontiguousarray(a[:, i]) for i, name in enumerate(STATIC_NAMES)}
    labels["action"] = d
    return x, labels


def load_sprites(data_dir: str | Path, split: str = "train") -> SequenceData:
    """Load a Sprites split as x uint8 (N, T, 3, 64, 64) (or 32×32 from a reduced build) with factors skin, pants, top, hair, action.

    Reads ``sprites_{split}_u8.npz`` when present, else ``sprites_{X,A,D}_{split}.npy`` (this or
    another tool's): x float in [0, 1] or uint8, channels last or first; A one-hot (N, T, 4, 6)
    or integer (N, 4); D one-hot (N, T, 9) or integer (N,). A float pixel f becomes
    ``min(round(256 f), 255)``: the Sprites convention stores value / 256, so this is exact for
    arrays built by the recipe. Note ``SequenceData.batch`` then scales by 1 / 255.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} must be one of {SPLITS}")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: Sprites folder not found")
    compact = folder / f"sprites_{split}_u8.npz"
    x, labels = _read_compact(compact) if compact.exists() else _read_standard(folder, split)
    return SequenceData(
        x=torch.from_numpy(x),
        labels={k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in labels.items()},
        factors=sprites_factors(),
        name=f"sprites-{split}",
    )
