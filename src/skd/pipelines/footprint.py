"""Decoder footprints of static units: WHERE in the output each unit acts, without labels.

The grouping of :mod:`skd.pipelines.factors` asks which static units belong to the same factor. Distance
correlation answers it from the statistics of the codes across sequences; this module answers it
from the decoder. Swapping one unit u from a donor j into a receiver i (paper Sec. 4.3, a
multifactor swap restricted to u) changes the decoded output by

    Δ_u(i, j) = | dec(z_i + (z_j − z_i) P_u) − dec(z_i) |          (N, T, C, H, W) or (N, T, D)

and the unit's *footprint* is the mean of Δ_u over pairs, frames and colour channels: an (H, W)
map for frames, a (D,) profile for vectors and spectrograms. Units of one factor edit the same
part of the output (hair units the top of the head, pants units the legs); units of different
factors edit different parts. The footprint affinity of two units is the Pearson correlation of
their footprints, clipped at 0.

Why a second affinity. Dependence across sequences fails for factors that are correlated in the
data (it merges them) and is weak between ICA directions of one factor (whitening makes them
uncorrelated; what is left is higher-order dependence, estimated from a finite sample). Footprints
do not depend on how the factors are distributed, only on what the decoder does with them. The
two are combined by a geometric mean, so a pair must look alike on both to be tied strongly
(:func:`combine_affinities`). Overlapping factors (skin shows on arms that the top may cover)
share part of their footprint; that is why the footprint alone is not the default.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

AFFINITIES = ("dependence", "footprint", "both")


def pair_indices(n: int, pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``min(pairs, n)`` receivers and their donors (a seeded derangement shift): (P,), (P,)."""
    if n < 2:
        raise ValueError(f"footprints need at least 2 sequences, got {n}")
    g = torch.Generator().manual_seed(seed)
    recv = torch.randperm(n, generator=g)[: min(pairs, n)]
    shift = torch.randint(1, n, (len(recv),), generator=g)
    return recv, (recv + shift) % n


@torch.no_grad()
def unit_footprints(decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                    projectors: list[torch.Tensor], *, pairs: int = 64, seed: int = 0) -> np.ndarray:
    """Footprint of every unit: z (N, T, k) latents, projectors [(k, k)] -> (U, M) float64.

    M = H·W for frames (N, T, C, H, W) (mean over channels), D for vectors (N, T, D).
    ``decode`` maps latents (P, T, k) to outputs; it is called once for the receivers and once
    per unit.
    """
    if z.ndim != 3:
        raise ValueError(f"footprints need latents (N, T, k), got shape {tuple(z.shape)}")
    recv, don = pair_indices(z.shape[0], pairs, seed)
    z_r, z_d = z[recv].to(torch.float64), z[don].to(torch.float64)
    base = decode(z_r.to(z.dtype)).to(torch.float64)
    out = []
    for p in projectors:
        moved = decode((z_r + (z_d - z_r) @ p).to(z.dtype)).to(torch.float64)
        delta = (moved - base).abs().mean((0, 1))  # (C, H, W) or (D,)
        if delta.ndim == 3:
            delta = delta.mean(0)
        out.append(delta.flatten().numpy())
    fp = np.stack(out) if out else np.zeros((0, 0))
    if not np.all(np.isfinite(fp)):
        raise ValueError("the decoder produced non-finite outputs while measuring footprints")
    return fp


def footprint_affinity(fp: np.ndarray) -> np.ndarray:
    """(U, U) Pearson correlation of footprints fp (U, M), clipped at 0; ones on the diagonal.

    A footprint that is constant (a unit the decoder ignores) has affinity 0 to every other.
    Invariant to the scale of each footprint (a unit's coordinate scale is arbitrary).
    """
    fp = np.asarray(fp, dtype=np.float64)
    u = fp.shape[0]
    c = fp - fp.mean(1, keepdims=True)
    norm = np.sqrt((c * c).sum(1))
    ok = norm > 1e-12 * max(float(norm.max(initial=0.0)), 1e-300)
    c = np.where(ok[:, None], c / np.where(ok, norm, 1.0)[:, None], 0.0)
    aff = np.clip(c @ c.T, 0.0, 1.0)
    aff[np.arange(u), np.arange(u)] = 1.0
    return aff


def combine_affinities(dependence: np.ndarray, footprint: np.ndarray | None, how: str) -> np.ndarray:
    """The affinity used for grouping: ``dependence``, ``footprint`` or ``both`` (geometric mean)."""
    if how not in AFFINITIES:
        raise ValueError(f"unknown affinity {how!r}; choose one of {', '.join(AFFINITIES)}")
    if how == "dependence":
        return dependence
    if footprint is None or footprint.shape != dependence.shape:
        raise ValueError(f"affinity {how!r} needs a footprint affinity of shape {dependence.shape}")
    if how == "footprint":
        return footprint
    return np.sqrt(np.clip(dependence, 0.0, None) * np.clip(footprint, 0.0, None))
