"""Images and plots written to files: frame grids (PNG), animations (GIF), spectra, loss curves.

No global state: figures are ``matplotlib.figure.Figure`` objects drawn by ``FigureCanvasAgg``
(pyplot is never imported). Every writer creates parent folders, writes to a temporary file in
the target folder, moves it into place with ``os.replace`` and returns the path.
Frames follow the package convention: (..., T, C, H, W), float in [0, 1] or uint8.
"""
from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

SKIP_KEYS = frozenset({"step", "epoch", "time", "wall", "wall_time", "elapsed", "bad_steps", "lr"})


def _atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # like mkstemp, but created with the default permissions (umask applies)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _to_numpy(a: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def frames_to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """(..., T, C, H, W) float in [0, 1] (clipped) or uint8 -> uint8 (..., T, H, W, 3).

    Grayscale (C = 1) is repeated to 3 channels.
    """
    a = _to_numpy(frames)
    if a.ndim < 4:
        raise ValueError(f"frames must be (..., T, C, H, W), got shape {a.shape}")
    if a.shape[-3] not in (1, 3):
        raise ValueError(f"frames have C={a.shape[-3]} channels (shape {a.shape}); need 1 or 3")
    if a.dtype == np.uint8:
        out = a
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError("frames contain NaN or infinite values")
        out = (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"frames dtype {a.dtype} must be uint8 or float in [0, 1]")
    out = np.moveaxis(out, -3, -1)  # (..., T, H, W, C)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


def _rows_uint8(rows: torch.Tensor | np.ndarray, row_labels: Sequence[str] | None, scale: int) -> np.ndarray:
    """Validated, upscaled rows: (R, T, C, H, W) -> uint8 (R, T, H*scale, W*scale, 3)."""
    r = frames_to_uint8(rows)
    if r.ndim != 5:
        raise ValueError(f"rows must be (R, T, C, H, W), got {r.ndim - 1}-d frames of shape {tuple(_to_numpy(rows).shape)}")
    if scale < 1:
        raise ValueError(f"scale={scale} must be >= 1")
    if row_labels is not None and len(row_labels) != r.shape[0]:
        raise ValueError(f"{len(row_labels)} row_labels for {r.shape[0]} rows")
    return r.repeat(scale, axis=2).repeat(scale, axis=3)  # nearest-neighbour upscaling


def _label_margin(row_labels: Sequence[str] | None, pad: int) -> tuple[int, ImageFont.ImageFont | None]:
    if not row_labels:
        return 0, None
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(probe.textlength(str(s), font=font) for s in row_labels)
    return int(math.ceil(width)) + 2 * max(pad, 2), font


def _compose(
    cells: np.ndarray, row_labels: Sequence[str] | None, pad: int
) -> Image.Image:
    """cells uint8 (R, T, h, w, 3) -> one white canvas with thin padding and labels on the left."""
    if pad < 0:
        raise ValueError(f"pad={pad} must be >= 0")
    n_rows, n_cols, h, w, _ = cells.shape
    margin, font = _label_margin(row_labels, pad)
    canvas = np.full((pad + n_rows * (h + pad), margin + pad + n_cols * (w + pad), 3), 255, np.uint8)
    for i in range(n_rows):
        y = pad + i * (h + pad)
        for j in range(n_cols):
            x = margin + pad + j * (w + pad)
            canvas[y:y + h, x:x + w] = cells[i, j]
    img = Image.fromarray(canvas)
    if row_labels and font is not None:
        draw = ImageDraw.Draw(img)
        for i, label in enumerate(row_labels):
            _, top, _, bottom = draw.textbbox((0, 0), str(label), font=font)
            y = pad + i * (h + pad) + (h - top - bottom) / 2  # vertically centred on the row
            draw.text((max(pad, 2), y), str(label), fill=(0, 0, 0), font=font)
    return img


def save_grid(
    rows: torch.Tensor | np.ndarray,
    path: str | Path,
    *,
    row_labels: Sequence[str] | None = None,
    pad: int = 2,
    scale: int = 2,
) -> Path:
    """PNG of R rows x T frames from ``rows`` (R, T, C, H, W), labels drawn left of each row."""
    cells = _rows_uint8(rows, row_labels, scale)  # (R, T, h, w, 3)
    img = _compose(cells, row_labels, pad)
    return _atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def save_gif(
    rows: torch.Tensor | np.ndarray,
    path: str | Path,
    *,
    fps: float = 4,
    row_labels: Sequence[str] | None = None,
    scale: int = 2,
) -> Path:
    """Looping GIF of ``rows`` (R, T, C, H, W): frame t shows column t of every row, stacked.

    Note: GIF writers merge identical consecutive frames, so a static video may have fewer frames.
    """
    if fps <= 0:
        raise ValueError(f"fps={fps} must be > 0")
    cells = _rows_uint8(rows, row_labels, scale)  # (R, T, h, w, 3)
    frames = [_compose(cells[:, t:t + 1], row_labels, 2) for t in range(cells.shape[1])]
    duration = max(int(round(1000.0 / fps)), 10)

    def write(tmp: Path) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration, loop=0)

    return _atomic_write(path, write)


def _new_figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Any, path: str | Path) -> Path:
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return _atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, bbox_inches="tight"))


def plot_eigenvalues(
    eigvals: torch.Tensor | np.ndarray,
    static_mask: torch.Tensor | np.ndarray,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Eigenvalues (k,) on the complex plane with the unit circle; static vs dynamic sets."""
    lam = _to_numpy(eigvals).astype(np.complex128).reshape(-1)  # (k,)
    mask = _to_numpy(static_mask).astype(bool).reshape(-1)  # (k,)
    if lam.shape != mask.shape:
        raise ValueError(f"eigvals has {lam.size} values but static_mask has {mask.size}")
    if not np.isfinite(lam).all():
        raise ValueError("eigvals contain NaN or infinite values")
    fig = _new_figure((5.0, 5.0))
    ax = fig.add_subplot()
    phi = np.linspace(0.0, 2.0 * np.pi, 361)
    ax.plot(np.cos(phi), np.sin(phi), color="0.6", lw=1.0, ls="--", label="unit circle")
    ax.axhline(0.0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0.0, color="0.85", lw=0.8, zorder=0)
    dyn = lam[~mask]
    sta = lam[mask]
    ax.scatter(dyn.real, dyn.imag, s=22, color="tab:blue", alpha=0.8, label=f"dynamic ({dyn.size})")
    ax.scatter(sta.real, sta.imag, s=30, color="tab:red", marker="D", alpha=0.9, label=f"static ({sta.size})")
    lim = 1.1 * max(1.0, float(np.abs(lam).max()) if lam.size else 1.0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(title or f"Koopman eigenvalues (k={lam.size})")
    ax.legend(loc="upper right", fontsize=8)
    return _save_figure(fig, path)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def plot_losses(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """One subplot per numeric metric (all keys but step/epoch/time) against step, log-y.

    ``records`` are dicts such as ``{"step": 10, "loss": 1.2, "rec": 0.1}``; records without a
    step use their index. Metrics with values <= 0 use a linear y axis.
    """
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, rec in enumerate(records):
        step = rec.get("step", i)
        step = float(step) if _is_number(step) else float(i)
        for key, val in rec.items():
            if key in SKIP_KEYS or not _is_number(val) or not math.isfinite(float(val)):
                continue
            xs, ys = series.setdefault(key, ([], []))
            xs.append(step)
            ys.append(float(val))
    if not series:
        raise ValueError(f"no numeric metrics to plot in {len(records)} records")
    n = len(series)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = _new_figure((4.0 * ncols, 2.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (key, (xs, ys)) in zip(axes.flat, series.items()):
        ax.plot(xs, ys, lw=1.2, marker="." if len(xs) < 50 else None)
        if min(ys) > 0:
            ax.set_yscale("log")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_matrix(
    matrix: np.ndarray, path: str | Path, *, row_labels: Sequence[str], col_labels: Sequence[str],
    title: str | None = None, fmt: str = "{:.2f}",
) -> Path:
    """Heatmap of a small matrix with its values written in the cells (e.g. factor affinities)."""
    m = np.asarray(matrix, dtype=np.float64)
    fig = _new_figure((1.2 + 0.55 * m.shape[1], 1.0 + 0.5 * m.shape[0]))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=max(1.0, float(np.nanmax(m)) if m.size else 1.0))
    ax.set_xticks(range(m.shape[1]), list(col_labels), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(m.shape[0]), list(row_labels), fontsize=8)
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save_figure(fig, path)


def plot_scorecard(
    labels: Sequence[str], values: Sequence[float], targets: Sequence[float | None], path: str | Path, *,
    image: str | Path | None = None, title: str | None = None,
) -> Path:
    """Horizontal bars of scorecard rows (fractions in [0, 1]) with their targets marked, rows that
    miss their target in red; with ``image``, that picture (e.g. a swap grid) is shown on the left."""
    if not (len(labels) == len(values) == len(targets)) or not labels:
        raise ValueError("plot_scorecard needs as many labels, values and targets, at least one")
    vals = np.asarray(values, dtype=np.float64)
    n = len(labels)
    has_img = image is not None
    fig = _new_figure((13.0 if has_img else 7.5, max(3.0, 0.26 * n + 1.2)))
    if has_img:
        from PIL import Image

        ax_img = fig.add_subplot(1, 2, 1)
        with Image.open(image) as im:
            ax_img.imshow(np.asarray(im.convert("RGB")))
        ax_img.set_axis_off()
        ax_img.set_title("single-factor swaps", fontsize=10)
    ax = fig.add_subplot(1, 2, 2) if has_img else fig.add_subplot(1, 1, 1)
    colors = ["tab:green" if t is None or v >= t else "tab:red" for v, t in zip(vals, targets)]
    y = np.arange(n)[::-1]
    ax.barh(y, vals, color=colors, height=0.7)
    for yi, t in zip(y, targets):
        if t is not None:
            ax.plot([t, t], [yi - 0.4, yi + 0.4], color="black", lw=1.5)
    ax.set_yticks(y, list(labels), fontsize=7)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("fraction (black tick: target)", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path)
