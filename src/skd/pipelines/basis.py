"""Browsable outputs of a trained model: swap grids, GIFs, eigenvalue and loss plots.

Used by ``skd demo`` and ``skd swap``. Functions take a model, data and an output folder and
return named results; they never print.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from . import ops
from ..render import images as viz
from ..config import Config
from ..data.base import SequenceData
from ..model import KoopmanAE


@dataclass(frozen=True)
class SwapResult:
    pairs: list[tuple[int, int]]
    grid: Path
    gif: Path
    eigen_plot: Path
    basis: ops.KoopmanBasis


def fit_reference_basis(
    model: KoopmanAE, data: SequenceData, cfg: Config, *, fit_batch: int = 256, seed: int = 0, split: str = "eigen"
) -> ops.KoopmanBasis:
    """C fitted on ``fit_batch`` random sequences of ``data`` (C depends on its batch); ``fit_batch``
    <= 0 or larger than ``data`` takes all of it. Frames are loaded and encoded 256 at a time.

    ``split="refined"``: the appearance-only static split of :mod:`skd.pipelines.split` on the same batch.
    """
    from .split import SPLITS, refine_split

    if split not in SPLITS:
        raise ValueError(f"split={split!r} must be one of {', '.join(SPLITS)}")
    g = torch.Generator().manual_seed(seed)
    n = len(data) if fit_batch <= 0 else min(fit_batch, len(data))
    idx = torch.randperm(len(data), generator=g)[:n]
    z = torch.cat([ops.encode(model, data.batch(idx[i : i + 256])) for i in range(0, len(idx), 256)])  # (n, T, k)
    basis = ops.fit_basis(z, min(cfg.loss.static_size, cfg.model.k), cfg.loss.static_criterion,
                          ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
    return refine_split(z, basis, seed=seed).basis if split == "refined" else basis


def pick_pairs(data: SequenceData, n: int, *, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` pairs (i, j) that differ in every labelled factor when labels allow, else random."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of pairs n={n!r} must be an integer >= 1")
    if len(data) < 2:
        raise ValueError(f"{data.name}: pairs need at least 2 sequences, the data has {len(data)}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=g).tolist()
    labs = [data.labels[f.name] for f in data.factors if f.name in data.labels]
    pairs: list[tuple[int, int]] = []
    used: set[int] = set()
    for i in order:
        if len(pairs) >= n:
            break
        if i in used:
            continue
        for j in order:
            if j == i or j in used:
                continue
            if all(int(lab[i]) != int(lab[j]) for lab in labs):
                pairs.append((i, j))
                used.update((i, j))
                break
    while len(pairs) < n and len(order) >= 2:  # no labels or too few candidates
        i, j = order[(2 * len(pairs)) % len(order)], order[(2 * len(pairs) + 1) % len(order)]
        pairs.append((i, j))
    return pairs


def parse_pairs(text: str, n_data: int) -> list[tuple[int, int]]:
    """'0:5,3:9' -> [(0, 5), (3, 9)], checked against the dataset size."""
    pairs = []
    for item in text.split(","):
        try:
            a, b = (int(v) for v in item.split(":"))
        except ValueError:
            raise ValueError(f"pair {item!r} must look like I:J with integer indices") from None
        for v in (a, b):
            if not 0 <= v < n_data:
                raise ValueError(f"sequence index {v} out of range [0, {n_data})")
        pairs.append((a, b))
    return pairs


def write_swaps(
    model: KoopmanAE, data: SequenceData, basis: ops.KoopmanBasis, pairs: Sequence[tuple[int, int]], out_dir: Path,
    *, prefix: str = "swap",
) -> SwapResult:
    """Grid (PNG) and animation (GIF) of two-factor swaps, plus the eigenvalue plot.

    For each pair (A, B) four rows: A, B, A's motion with B's appearance, B's motion with A's
    appearance.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ia = torch.tensor([p[0] for p in pairs])
    ib = torch.tensor([p[1] for p in pairs])
    xa, xb = data.batch(ia), data.batch(ib)
    za, zb = ops.encode(model, xa), ops.encode(model, xb)
    ab = ops.decode(model, ops.swap_latents(za, zb, basis))  # motion A, appearance B
    ba = ops.decode(model, ops.swap_latents(zb, za, basis))  # motion B, appearance A
    rows, labels = [], []
    for p, (a, b) in enumerate(pairs):
        rows += [xa[p], xb[p], ab[p], ba[p]]
        labels += [f"A={a}", f"B={b}", "motion A + look B", "motion B + look A"]
    stack = torch.stack(rows)
    grid = viz.save_grid(stack, out_dir / f"{prefix}.png", row_labels=labels)
    gif = viz.save_gif(stack, out_dir / f"{prefix}.gif", row_labels=labels)
    eig_plot = viz.plot_eigenvalues(basis.eig.values, basis.static, out_dir / "eigenvalues.png",
                                    title=f"Koopman spectrum: {int(basis.static.sum())} static / {int(basis.dynamic.sum())} dynamic")
    return SwapResult(list(pairs), grid, gif, eig_plot, basis)


def write_samples(
    model: KoopmanAE, data: SequenceData, basis: ops.KoopmanBasis, out_dir: Path, *, n: int = 6, seed: int = 0
) -> Path:
    """Rows: originals, static part resampled, dynamic part resampled (METHOD.md §3 sampling)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[: max(n, 3)]
    x = data.batch(idx)
    z = ops.encode(model, x)
    s = ops.decode(model, ops.sample_part(z, basis, "static", generator=g))
    d = ops.decode(model, ops.sample_part(z, basis, "dynamic", generator=g))
    rows, labels = [], []
    for i in range(x.shape[0]):
        rows += [x[i], s[i], d[i]]
        labels += [f"#{int(idx[i])}", "new look", "new motion"]
    return viz.save_grid(torch.stack(rows), out_dir / "samples.png", row_labels=labels)


def write_loss_plot(run_dir: Path, out_path: Path) -> Path | None:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        return None
    return viz.plot_losses(records, out_path)
