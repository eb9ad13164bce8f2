"""Crop consistency: the static part of a short crop should be the static part of its sequence.

SKD calls static whatever its Koopman matrix keeps constant (eigenvalues at 1, Eq. 4). In an
isolated word the word is as constant over the clip as the voice, so nothing in Eq. 3-4 prefers
one over the other (docs/AUDIO.md §3). A short crop of the loud part of a clip holds one or two
phones: the voice is all there, the word is not. Asking the static coordinates of the crop,
encoded on its own, to equal those of the whole clip keeps in the static part only what every
crop carries.

With Q1 (k, s) a real basis of the static invariant subspace of C (:func:`skd.koopman.subspace.
static_coordinates`), r = mean_t z_t Q1 are the static coordinates of a sequence, and

    L_crop = mean_b ‖r_crop(b) − r(b)‖² / Σ_j Var_b r(b)_j,

the share of the static coordinates' spread over the batch that the crops fail to reproduce
(1 − R²): scale-free, and not lowered by collapsing the static part to a constant.
"""
from __future__ import annotations

import torch

from .independence import static_projector


def loud_crop_starts(x: torch.Tensor, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Start frame (B,) int64 of one crop of ``length`` frames per sequence of x (B, T, *frame).

    The crop is drawn uniformly among the windows whose mean frame level (the mean over each
    frame's values: standardised log-magnitudes for audio) is at least halfway between the
    quietest and the loudest window of that sequence, so it lies in the loud part of a clip rather
    than in the silence around it, however long that silence is.
    Random draws come from ``generator`` (CPU).
    """
    b, t = x.shape[:2]
    if not 1 <= length <= t:
        raise ValueError(f"crop length {length} must be in [1, {t}] (the sequence length)")
    level = x.detach().reshape(b, t, -1).float().mean(-1).cpu()  # (B, T)
    windows = level.unfold(1, length, 1).mean(-1)  # (B, T-L+1)
    half = (windows.amin(1, keepdim=True) + windows.amax(1, keepdim=True)) / 2
    eligible = windows >= half  # (B, T-L+1), never empty (the loudest window is in)
    u = torch.rand(windows.shape, generator=generator)
    return torch.argmax(u + 2.0 * eligible, dim=1)  # uniform among the eligible windows


def take_crops(x: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """x (B, T, *frame), starts (B,) -> the crops (B, length, *frame)."""
    idx = starts.to(x.device)[:, None] + torch.arange(length, device=x.device)[None]  # (B, L)
    return x[torch.arange(x.shape[0], device=x.device)[:, None], idx]


def static_basis(C: torch.Tensor, static_size: int, criterion: str) -> torch.Tensor | None:
    """Q1 (k, s) float64 of C's static set (no gradient), or None when it is empty or inseparable."""
    projector = static_projector(C, static_size, criterion)
    return None if projector is None else projector[0]


def crop_consistency(z: torch.Tensor, z_crop: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """L_crop (module docstring) for latents z (B, T, k), crop latents (B, L, k), Q1 (k, s).

    Differentiable in both latents; the basis is a constant. Returns 0 for a batch whose static
    coordinates do not vary (nothing to reproduce).
    """
    r = (z.double() @ basis).mean(1)  # (B, s)
    r_crop = (z_crop.double() @ basis).mean(1)  # (B, s)
    spread = r.var(0, unbiased=False).sum()
    miss = ((r_crop - r) ** 2).sum(1).mean()
    return (miss / spread.clamp_min(1e-12)).to(z.dtype)
