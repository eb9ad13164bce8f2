"""Refined static/dynamic split: move motion-carrying static directions to the dynamic side.

The spectral loss (paper Eq. 4) defines "static" as λ ≈ 1: constant over the sequence. Some
properties of the MOTION are constant over a sequence too — in Sprites the action type (walk,
spellcard, slash) never changes within a clip — so a trained model may store them in λ ≈ 1
coordinates. Replacing the static part then changes the motion (the failure mode measured on
our Sprites models: the errors of Protocol A are action-type errors).

In the eigenbasis this information is smeared over all static components (their eigenvalues
are all ≈ 1, so the eigenvectors are arbitrary mixtures; :mod:`skd.pipelines.factors`). In the ICA basis
of the static subspace it concentrates in a few directions, and those directions are the ones
that DEPEND ON THE DYNAMICS: their per-sequence value is predictable from the sequence's
dynamic trajectory, while appearance directions are not (appearance and motion are drawn
independently). :func:`refine_split` scores every ICA direction by its distance correlation
with the dynamic part of the sequence and, where the scores fall into two clearly separated
clusters, moves the high-scoring cluster to the dynamic side. No labels are used.

The result is a :class:`skd.ops.KoopmanBasis` with a ``split`` projector: every operation that
reads the static/dynamic parts (swap, sampling, Protocols A/B) then uses appearance-only
statics. With no clear separation nothing moves, and the split equals the eigen split of Eq. 5.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .dependence import distance_correlation
from .factors import StaticUnits, ica_units
from ..koopman import KoopmanBasis

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


def thin_svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors (n, r) and singular values (r,) of a (n, d) matrix, r = min(n, d).

    LAPACK's divide-and-conquer driver (gesdd, NumPy's) can fail to converge on finite,
    well-scaled matrices (seen on the latents of a trained Sprites model); the QR-iteration
    driver (gesvd) is slower but converges, so it is the fallback.
    """
    try:
        left, sing, _ = np.linalg.svd(a, full_matrices=False)
    except np.linalg.LinAlgError:
        import scipy.linalg

        left, sing, _ = scipy.linalg.svd(a, full_matrices=False, lapack_driver="gesvd")
    return left, sing


def motion_scores(z: torch.Tensor, units: StaticUnits, *, max_samples: int = 1000, seed: int = 0,
                  dyn_components: int = 8) -> np.ndarray:
    """Distance correlation between each unit's time-averaged feature and the dynamic part of
    the sequence: z (N, T, k) -> (U,) in [0, 1].

    The dynamic part (flattened over time, T·k numbers per sequence) is reduced to its leading
    ``dyn_components`` principal components first: most of its dimensions are noise for this
    question, and distance correlation in hundreds of dimensions is diluted by them.
    """
    n = z.shape[0]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=max_samples, replace=False)) if n > max_samples else np.arange(n)
    zz = z.to(torch.float64)[torch.from_numpy(idx)]
    static = zz @ units.projector(list(range(len(units.columns))))
    dyn = (zz - static).reshape(len(idx), -1).numpy()  # (n, T·k)
    dyn = dyn - dyn.mean(0)
    left, sing = thin_svd(dyn)
    m = int(min(dyn_components, int((sing > 1e-10 * max(float(sing[0]), 1e-300)).sum())))
    feats = units.features(zz)
    if m == 0:  # no dynamics at all: nothing depends on them
        return np.zeros(len(feats))
    reduced = left[:, :m] * sing[:m]
    return np.array([distance_correlation(f, reduced) for f in feats])


def motion_units(scores: np.ndarray, min_gap: float = 0.15) -> list[int]:
    """Units in the upper of the two clusters of the scores (the 1-D 2-means split, which
    maximises the between-cluster variance), if the two cluster means differ by at least
    ``min_gap`` and at least one unit stays static; otherwise none."""
    if len(scores) < 2:
        return []
    order = np.argsort(scores, kind="stable")
    s = np.asarray(scores, dtype=np.float64)[order]
    best, cut = -1.0, 0
    for c in range(1, len(s)):  # low = s[:c], high = s[c:]
        lo, hi = s[:c], s[c:]
        between = len(lo) * len(hi) * (hi.mean() - lo.mean()) ** 2
        if between > best + 1e-15:
            best, cut = between, c
    if s[cut:].mean() - s[:cut].mean() < min_gap:
        return []
    return sorted(order[cut:].tolist())


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
