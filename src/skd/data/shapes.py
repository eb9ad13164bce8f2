"""Built-in multi-factor video dataset: coloured shapes moving on coloured backgrounds.

Generated with numpy in seconds, deterministic by seed, no download.

Static factors (constant over a sequence): ``shape``, ``color``, ``size``, ``background``.
Dynamic factor: ``motion`` = 3 patterns (slide, orbit, zigzag) x 3 directions.

Geometry: pixel (row i, column j) covers [j, j+1] x [i, i+1], so its centre is (j + 0.5, i + 0.5).
Trajectories are drawn in a unit box [-1, 1]^2 (y up) and mapped into the square of centres for
which the largest shape stays fully inside the image, so no shape ever leaves the frame.
Edges are anti-aliased with a 1-pixel ramp of a signed edge distance.
"""
from __future__ import annotations

import numpy as np
import torch

from skd.data.base import Factor, SequenceData

SHAPE_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
COLOR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
COLORS_RGB = np.array(
    [[235, 45, 45], [45, 205, 70], [60, 110, 255], [245, 220, 40], [225, 60, 225], [40, 220, 230]],
    dtype=np.uint8,
)  # (6, 3) bright, saturated: every channel max >= 205
SIZE_NAMES: tuple[str, ...] = ("small", "medium", "large")
SIZE_RADII = np.array([0.13, 0.17, 0.21], dtype=np.float32)  # fraction of the image side
BACKGROUND_NAMES: tuple[str, ...] = ("dark-grey", "navy", "dark-green", "maroon")
BACKGROUNDS_RGB = np.array(
    [[50, 50, 50], [15, 20, 95], [10, 85, 25], [100, 15, 25]], dtype=np.uint8
)  # (4, 3) dark: every channel <= 100
PATTERNS: tuple[str, ...] = ("slide", "orbit", "zigzag")
DIRECTIONS: tuple[str, ...] = ("right", "up-left", "down-left")  # angles 0, 120, 240 degrees
MOTION_NAMES: tuple[str, ...] = tuple(f"{p}-{d}" for p in PATTERNS for d in DIRECTIONS)

# Half-extent of each shape around its centre, in units of the size radius r.
_SQUARE_HALF = 0.85  # half side
_DIAMOND_HALF = 1.10  # half diagonal
_TRIANGLE_R = 1.20  # circumradius; the triangle is placed so its bounding box is centred
_MAX_EXTENT = max(1.0, _SQUARE_HALF, _DIAMOND_HALF, _TRIANGLE_R * np.sqrt(3) / 2, 0.75 * _TRIANGLE_R)
_EDGE = 1.5  # pixels between a shape's extent and the image border: the soft edge stays inside
_OFFSET = 0.1  # max random start offset, in trajectory units
_CHUNK_PIXELS = 1 << 21  # sequences rendered per chunk ~ this many pixels (x4 bytes, float32)


def shapes_factors() -> tuple[Factor, ...]:
    """The five factors of the shapes dataset, in label order."""
    return (
        Factor("shape", len(SHAPE_NAMES), "static", SHAPE_NAMES),
        Factor("color", len(COLOR_NAMES), "static", COLOR_NAMES),
        Factor("size", len(SIZE_NAMES), "static", SIZE_NAMES),
        Factor("background", len(BACKGROUND_NAMES), "static", BACKGROUND_NAMES),
        Factor("motion", len(MOTION_NAMES), "dynamic", MOTION_NAMES),
    )


def motion_paths(seq_len: int) -> np.ndarray:
    """Unit-box trajectories of the 9 motions: (9, T, 2) as (x, y), y up, |coord| <= 1 - offset.

    slide: straight line across the box along the direction; orbit: one full counter-clockwise
    circle whose initial velocity points along the direction; zigzag: a slide with a
    perpendicular triangle-wave oscillation of period 4 frames.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len} must be >= 2")
    t = np.arange(seq_len, dtype=np.float64)
    s = 2.0 * t / (seq_len - 1) - 1.0  # (T,) from -1 to 1
    paths = []
    for pattern in PATTERNS:
        for k in range(len(DIRECTIONS)):
            ang = 2.0 * np.pi * k / 3.0
            u = np.array([np.cos(ang), np.sin(ang)])  # main direction
            v = np.array([-u[1], u[0]])  # perpendicular (left of u)
            if pattern == "slide":
                p = s[:, None] * u
            elif pattern == "orbit":
                phi = 2.0 * np.pi * t / seq_len  # (T,)
                # start at -v so that the initial counter-clockwise velocity is +u
                p = 0.8 * (-np.cos(phi)[:, None] * v + np.sin(phi)[:, None] * u)
            else:
                tri = np.array([0.0, 1.0, 0.0, -1.0])[np.arange(seq_len) % 4]  # (T,)
                p = 0.8 * s[:, None] * u + 0.45 * tri[:, None] * v
            p = p / max(np.abs(p).max(), 1e-9) * (1.0 - _OFFSET)
            paths.append(p)
    return np.stack(paths).astype(np.float32)  # (9, T, 2)


def _signed_distance(shape: int, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed edge distance in pixels (< 0 inside). dx: (B, T, 1, W), dy: (B, T, H, 1) image
    coordinates (y down) relative to the centre; r: (B, 1, 1, 1) radius in pixels."""
    if shape == 0:  # circle
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == 1:  # square
        return np.maximum(np.abs(dx), np.abs(dy)) - _SQUARE_HALF * r
    if shape == 3:  # diamond
        return (np.abs(dx) + np.abs(dy) - _DIAMOND_HALF * r) * np.float32(1.0 / np.sqrt(2.0))
    big_r = _TRIANGLE_R * r  # triangle pointing up, centroid 0.25 R below the box centre
    dyc = dy - 0.25 * big_r
    side = np.float32(np.sqrt(3.0) / 2.0) * np.abs(dx) - 0.5 * dyc
    return np.maximum(dyc, side) - 0.5 * big_r


def _render(
    out: np.ndarray, shape: np.ndarray, color: np.ndarray, radius: np.ndarray,
    background: np.ndarray, centres: np.ndarray,
) -> None:
    """Render a chunk into ``out`` (B, T, 3, S, S) uint8. centres: (B, T, 2) pixel (x, y)."""
    b, t, _, size, _ = out.shape
    grid = np.arange(size, dtype=np.float32) + 0.5  # (S,) pixel centres
    dx = grid[None, None, None, :] - centres[:, :, 0, None, None]  # (B, T, 1, S)
    dy = grid[None, None, :, None] - centres[:, :, 1, None, None]  # (B, T, S, 1)
    alpha = np.empty((b, t, size, size), dtype=np.float32)
    for k in range(len(SHAPE_NAMES)):
        idx = np.flatnonzero(shape == k)
        if idx.size:
            alpha[idx] = _signed_distance(k, dx[idx], dy[idx], radius[idx, None, None, None])
    np.subtract(0.5, alpha, out=alpha)
    np.clip(alpha, 0.0, 1.0, out=alpha)  # coverage with a 1-pixel soft edge
    bg = BACKGROUNDS_RGB[background].astype(np.float32)  # (B, 3)
    diff = COLORS_RGB[color].astype(np.float32) - bg  # (B, 3)
    tmp = np.empty_like(alpha)
    for c in range(3):
        np.multiply(alpha, diff[:, c, None, None, None], out=tmp)
        tmp += bg[:, c, None, None, None] + 0.5
        out[:, :, c] = tmp  # truncation of x + 0.5 rounds to nearest


def _centres(
    motion: np.ndarray, offset: np.ndarray, radius: np.ndarray, image_size: int, seq_len: int
) -> np.ndarray:
    """Pixel centres (N, T, 2) as (x, y), y down; the whole shape stays inside the image."""
    half = image_size / 2.0
    margin = _MAX_EXTENT * float(SIZE_RADII.max()) * image_size + _EDGE
    span = half - margin  # pixels from the image centre to the farthest allowed centre
    p = motion_paths(seq_len)[motion] + offset[:, None, :]  # (N, T, 2) in [-1, 1]
    cx = half + span * p[..., 0]
    cy = half - span * p[..., 1]
    ext = (_MAX_EXTENT * radius + _EDGE)[:, None]  # (N, 1) safety clip, a no-op by construction
    cx = np.clip(cx, ext, image_size - ext)
    cy = np.clip(cy, ext, image_size - ext)
    return np.stack([cx, cy], axis=-1).astype(np.float32)


def make_shapes(n: int, *, image_size: int = 32, seq_len: int = 8, seed: int = 0) -> SequenceData:
    """Generate ``n`` shape videos, x uint8 (N, T, 3, H, W), with labels for all five factors.

    Each sequence draws its factors uniformly from ``np.random.default_rng(seed)`` plus a small
    start offset of its trajectory; same seed, same data.
    """
    if image_size not in (32, 64):
        raise ValueError(f"image_size={image_size} must be 32 or 64")
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len} must be >= 2")
    rng = np.random.default_rng(seed)
    factors = shapes_factors()
    labels = {f.name: rng.integers(0, f.size, size=n) for f in factors}  # name -> (N,)
    offset = rng.uniform(-_OFFSET, _OFFSET, size=(n, 2)).astype(np.float32)  # (N, 2)
    radius = SIZE_RADII[labels["size"]] * image_size  # (N,) pixels
    centres = _centres(labels["motion"], offset, radius, image_size, seq_len)  # (N, T, 2)

    x = np.empty((n, seq_len, 3, image_size, image_size), dtype=np.uint8)
    chunk = max(1, _CHUNK_PIXELS // (seq_len * image_size * image_size))
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        _render(x[sl], labels["shape"][sl], labels["color"][sl], radius[sl],
                labels["background"][sl], centres[sl])
    return SequenceData(
        x=torch.from_numpy(x),
        labels={k: torch.from_numpy(v.astype(np.int64)) for k, v in labels.items()},
        factors=factors,
        name="shapes",
    )


def shapes_split(
    n_train: int, n_test: int, *, image_size: int = 32, seq_len: int = 8, seed: int = 0
) -> tuple[SequenceData, SequenceData]:
    """Train and test sets from two different seeds derived from ``seed`` (deterministic)."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train={n_train} and n_test={n_test} must both be >= 1")
    train_seed, test_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    train = make_shapes(n_train, image_size=image_size, seq_len=seq_len, seed=train_seed)
    test = make_shapes(n_test, image_size=image_size, seq_len=seq_len, seed=test_seed)
    return train, test
