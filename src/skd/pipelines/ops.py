"""Disentangling operations on a trained KoopmanAE ("pipelines", docs/METHOD.md §3).

All operations are vectorised over the batch and take randomness as ``generator=``. The Koopman
matrix is fitted on a batch at test time too (C depends on that batch: use a few hundred
sequences); :class:`KoopmanBasis` holds that fit, its eigen-decomposition and the static set.
"""
from __future__ import annotations

import torch

from ..koopman.basis import KoopmanBasis, fit_basis, predict_ahead, sample_part, swap_latents
from ..model import KoopmanAE

__all__ = ["KoopmanBasis", "fit_basis", "predict_ahead", "sample_part", "swap_latents", "encode", "decode",
           "reconstruct", "predict", "swap", "sample"]


@torch.no_grad()
def encode(model: KoopmanAE, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Latents (N, T, k) of x (N, T, ...) in eval mode, in chunks."""
    model.eval()
    return torch.cat([model.encode(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def decode(model: KoopmanAE, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Frames (N, T, ...) of latents z (N, T, k) in eval mode, in chunks."""
    model.eval()
    return torch.cat([model.decode(z[i : i + batch_size]) for i in range(0, z.shape[0], batch_size)])


@torch.no_grad()
def reconstruct(model: KoopmanAE, x: torch.Tensor) -> torch.Tensor:
    """Decode(encode(x)) in eval mode: (B, T, ...) -> (B, T, ...)."""
    return decode(model, encode(model, x))


@torch.no_grad()
def predict(model: KoopmanAE, x: torch.Tensor, basis: KoopmanBasis, steps: int | None = None) -> torch.Tensor:
    """Decode z_0 Cᵗ from each sequence's first latent; ``steps`` defaults to T-1. (B, steps+1, ...)."""
    z = encode(model, x)
    return decode(model, predict_ahead(z[:, 0], basis.C, steps if steps is not None else x.shape[1] - 1))


@torch.no_grad()
def swap(model: KoopmanAE, x_dyn: torch.Tensor, x_static: torch.Tensor, basis: KoopmanBasis) -> torch.Tensor:
    """Frames with the motion of ``x_dyn`` and the appearance of ``x_static`` (P, T, ...)."""
    return decode(model, swap_latents(encode(model, x_dyn), encode(model, x_static), basis))


@torch.no_grad()
def sample(
    model: KoopmanAE, x: torch.Tensor, basis: KoopmanBasis, part: str = "static", *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Frames of x with its static (or dynamic) part resampled (see :func:`sample_part`)."""
    return decode(model, sample_part(encode(model, x), basis, part, generator=generator))
