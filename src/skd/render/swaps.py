"""Pictures of a trained model's swaps and samples: grids (PNG), animations (GIF), spectrum and
loss plots, single-factor, subset and morph grids.

Used by ``skd demo``, ``skd swap``, ``skd factors``, ``skd morph`` and the scorecard. Functions take
a model, data, a fitted basis or factor groups and an output path, and return the paths written
(named results); they never print.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..data.base import SequenceData
from ..model import KoopmanAE
from ..pipelines import ops
from ..pipelines.factors import MOTION, FactorGroups, incremental_swap, swap_groups
from ..pipelines.factorset import FactorSet
from . import images as viz


@dataclass(frozen=True)
class SwapResult:
    pairs: list[tuple[int, int]]
    grid: Path
    gif: Path
    eigen_plot: Path
    basis: ops.KoopmanBasis

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
    """Rows: originals, static part resampled, dynamic part resampled (docs/METHOD.md §3 sampling)."""
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


def subset_grid(model: KoopmanAE, data: SequenceData, fs: FactorSet, pair: tuple[int, int], out: Path,
                groups: FactorGroups | None = None) -> Path:
    """All 2^G - 1 non-empty subsets of groups swapped from donor j into receiver i (G ≤ 5)."""
    groups = groups or fs.free
    app = [g for g in range(groups.n_groups) if not groups.names or groups.names[g] != MOTION]
    if len(app) > 5:
        raise ValueError(f"{len(app)} groups give too many subsets for one grid (at most 5)")
    i, j = pair
    x = data.batch([i, j])
    z = ops.encode(model, x)
    rows, labels = [x[0], x[1]], [f"receiver #{i}", f"donor #{j}"]
    names = groups.names or [str(g) for g in range(groups.n_groups)]
    subsets = [s for r in range(1, len(app) + 1) for s in itertools.combinations(app, r)]
    zs = torch.cat([swap_groups(z[:1], z[1:], groups.projector_for(list(s))) for s in subsets])
    frames = ops.decode(model, zs)
    for s, fr in zip(subsets, frames):
        rows.append(fr)
        labels.append("+".join(names[g] for g in s))
    return viz.save_grid(torch.stack(rows), out, row_labels=labels)

def morph_rows(model: KoopmanAE, data: SequenceData, fs: FactorSet, pairs: list[tuple[int, int]],
               order: list[int], groups: FactorGroups) -> tuple[torch.Tensor, list[str]]:
    """Incremental swap rows for each pair: source, +group1, +group1+group2, …, target."""
    names = groups.names or [str(g) for g in range(groups.n_groups)]
    rows, labels = [], []
    for i, j in pairs:
        z = ops.encode(model, data.batch([i, j]))
        steps = incremental_swap(z[:1], z[1:], groups, order)[:, 0]  # (G+1, T, k)
        frames = ops.decode(model, steps)
        rows += [*frames, data.batch([j])[0]]
        labels += [f"source #{i}"] + ["+" + names[g] for g in order] + [f"target #{j}"]
    return torch.stack(rows), labels

def single_factor_grid(model: KoopmanAE, data: SequenceData, groups: FactorGroups, pairs: list[tuple[int, int]],
                       out: Path) -> Path:
    """For each pair (receiver i, donor j): the receiver, the donor, then one row per named
    appearance group with only that group swapped in from the donor (motion stays the receiver's)."""
    app = [g for g in range(groups.n_groups) if not groups.names or groups.names[g] != MOTION]
    names = groups.names or [str(g) for g in range(groups.n_groups)]
    rows, labels = [], []
    for i, j in pairs:
        x = data.batch([i, j])
        z = ops.encode(model, x)  # (2, T, k)
        zs = torch.cat([swap_groups(z[:1], z[1:], groups.projector_for([gi])) for gi in app])
        rows += [x[0], x[1], *ops.decode(model, zs)]
        labels += [f"receiver #{i}", f"donor #{j}", *(f"only {names[gi]}" for gi in app)]
    return viz.save_grid(torch.stack(rows), out, row_labels=labels)
