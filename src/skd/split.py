"""Refined static/dynamic split: move motion-carrying static directions to the dynamic side.

The spectral loss (paper Eq. 4) defines "static" as λ ≈ 1: constant over the sequence. Some
properties of the MOTION are constant over a sequence too — in Sprites the action type (walk,
spellcard, slash) never changes within a clip — so a trained model may store them in λ ≈ 1
coordinates. Replacing the static part then changes the motion (the failure mode measured on
our Sprites models: the errors of Protocol A are action-type errors).

In the eigenbasis this information is smeared over all static components (their eigenvalues
are all ≈ 1, so the eigenvectors are arbitrary mixtures; :mod:`skd.factors`). In the ICA basis
of the static subspace it concentrates in a few directions, and those directions are the ones
that DEPEND ON THE DYNAMICS: their per-sequence value is predictable from the sequence's
dynamic trajectory, while appearance directions are not (appearance and motion are drawn
independently). :func:`refine_split` scores every ICA direction by its distance correlation
with the dynamic part of the sequence and, where the sorted scores show a clear gap, moves the
high-scoring directions to the dynamic side. No labels are used.

The result is a :class:`skd.ops.KoopmanBasis` with a ``split`` projector: every operation that
reads the static/dynamic parts (swap, sampling, Protocols A/B) then uses appearance-only
statics. With no clear gap nothing moves, and the split equals the eigen split of Eq. 5.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .dependence import distance_correlation
from .factors import StaticUnits, ica_units
from .ops import KoopmanBasis

SPLITS = ("eigen", "refined")


@dataclass(frozen=True)
class RefinedSplit:
    """units: ICA directions of the static subspace; scores (U,): distance correlation of each
    with the dynamic trajectory; motion: positions of the directions moved to the dynamic side;
    basis: the input basis with ``split`` = projector onto the remaining (appearance) directions."""

    units: StaticUnits
    scores: np.ndarray
    motion: list[int]
    basis: KoopmanBasis


def motion_scores(z: torch.Tensor, units: StaticUnits, *, max_samples: int = 1000, seed: int = 0) -> np.ndarray:
    """Distance correlation between each unit's time-averaged feature and the dynamic part of
    the sequence (flattened over time): z (N, T, k) -> (U,) in [0, 1]."""
    n = z.shape[0]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=max_samples, replace=False)) if n > max_samples else np.arange(n)
    zz = z.to(torch.float64)[torch.from_numpy(idx)]
    static = zz @ units.projector(list(range(len(units.columns))))
    dyn = (zz - static).reshape(len(idx), -1).numpy()  # (n, T·k)
    feats = units.features(zz)
    return np.array([distance_correlation(f, dyn) for f in feats])


def motion_units(scores: np.ndarray, min_gap: float = 0.15) -> list[int]:
    """Units above the largest gap of the sorted scores, if that gap is at least ``min_gap``
    (and at least one unit stays static); otherwise none."""
    if len(scores) < 2:
        return []
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    gaps = s[1:] - s[:-1]
    cut = int(np.argmax(gaps))
    if gaps[cut] < min_gap:
        return []
    return sorted(order[cut + 1 :].tolist())


def refine_split(z: torch.Tensor, basis: KoopmanBasis, *, seed: int = 0, min_gap: float = 0.15,
                 max_samples: int = 1000) -> RefinedSplit:
    """Appearance-only static split of ``basis`` from latents z (N, T, k) (module docstring)."""
    if z.ndim != 3 or z.shape[-1] != basis.C.shape[0]:
        raise ValueError(f"latents must be (N, T, {basis.C.shape[0]}), got {tuple(z.shape)}")
    units = ica_units(z, basis, seed=seed)
    scores = motion_scores(z, units, max_samples=max_samples, seed=seed)
    motion = motion_units(scores, min_gap)
    keep = [u for u in range(len(units.columns)) if u not in motion]
    return RefinedSplit(units, scores, motion, replace(basis, split=units.projector(keep)))
