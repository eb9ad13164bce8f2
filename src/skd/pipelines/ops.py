"""Disentangling operations on a trained KoopmanAE ("pipelines", METHOD.md §3).

All operations are vectorised over the batch and take randomness as ``generator=``. The Koopman
matrix is fitted on a batch at test time too (C depends on that batch: use a few hundred
sequences); :class:`KoopmanBasis` holds that fit, its eigen-decomposition and the static set.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..koopman import EigSorted, eig_sorted, fit_koopman, project, select_static
from ..model import KoopmanAE


@dataclass(frozen=True)
class KoopmanBasis:
    """C fitted on a reference batch, its sorted eigen-decomposition and the static mask.

    ``split``: optional (k, k) real projector that defines the static part instead of the eigen
    mask (row vectors: static part = z @ split). :func:`skd.pipelines.split.refine_split` sets it to the
    appearance-only part of the static subspace; None means the plain eigen split of Eq. 5.
    """

    C: torch.Tensor  # (k, k) float64
    eig: EigSorted
    static: torch.Tensor  # (k,) bool, closed under conjugation
    split: torch.Tensor | None = None  # (k, k) float64 projector, or None

    @property
    def dynamic(self) -> torch.Tensor:
        return ~self.static

    @property
    def static_dims(self) -> int:
        """Dimension of the static part: the eigen mask's size, or the rank (= trace) of the split projector."""
        if self.split is None:
            return int(self.static.sum())
        return int(round(float(torch.trace(self.split.to(torch.float64)))))

    def project(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Part of z (..., k) in the eigen-subspace ``mask``, real (..., k)."""
        return project(z, self.eig, mask)

    def part(self, z: torch.Tensor, which: str) -> torch.Tensor:
        """The static or dynamic part of z (..., k) under this basis's split (the two sum to z)."""
        if which not in ("static", "dynamic"):
            raise ValueError(f"part={which!r} must be 'static' or 'dynamic'")
        if self.split is None:
            return self.project(z, self.static if which == "static" else self.dynamic)
        static = (z.to(torch.float64) @ self.split.to(z.device)).to(z.dtype)
        return static if which == "static" else z - static


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


def fit_basis(
    z: torch.Tensor, static_size: int, criterion: str = "ball", *, ridge: float = 0.0, rcond: float = 1e-10
) -> KoopmanBasis:
    """Fit C on latents z (B, T, k), decompose it and choose the static set (same rule as the loss)."""
    with torch.no_grad():
        C = fit_koopman(z, ridge=ridge, rcond=rcond)
        eig = eig_sorted(C)
        if static_size > eig.n_components:
            raise ValueError(f"static_size={static_size} exceeds the {eig.n_components} eigen-components of C")
        static = select_static(eig, static_size, criterion)  # type: ignore[arg-type]
    return KoopmanBasis(C=C, eig=eig, static=static)


def swap_latents(z_dyn: torch.Tensor, z_static: torch.Tensor, basis: KoopmanBasis) -> torch.Tensor:
    """Two-factor swap: Re(A_dyn[:, D] U[D] + A_static[:, S] U[S]) (P, T, k).

    Motion of ``z_dyn`` (P, T, k) with the appearance of ``z_static`` (P, T, k).
    """
    if z_dyn.shape != z_static.shape:
        raise ValueError(f"swap needs equal shapes, got {tuple(z_dyn.shape)} and {tuple(z_static.shape)}")
    return basis.part(z_dyn, "dynamic") + basis.part(z_static, "static")


def _two_others(n: int, generator: torch.Generator | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each i in 0..n-1 two indices j, l != i (j != l when n > 2), drawn uniformly."""
    if n < 2:
        raise ValueError(f"sampling needs at least 2 sequences in the batch, got {n}")
    i = torch.arange(n)
    j = (i + 1 + torch.randint(0, n - 1, (n,), generator=generator)) % n
    if n > 2:
        off = torch.randint(0, n - 2, (n,), generator=generator)  # skip i and j
        lo, hi = torch.minimum(i, j), torch.maximum(i, j)
        l_ = off + (off >= lo).long()
        l_ = l_ + (l_ >= hi).long()
    else:
        l_ = j.clone()
    return j.to(device), l_.to(device)


def sample_part(
    z: torch.Tensor, basis: KoopmanBasis, part: str = "static", *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace the static (or dynamic) part of each sequence by a random convex combination.

    SKD has no prior (METHOD.md §3): for sequence i, draw two other batch members j, l and
    weights w ~ U(0, 1)² normalised to sum 1; the new part is w_j·P(z_j) + w_l·P(z_l), where P
    projects on the eigen-subspace of ``part``. z: (B, T, k) -> (B, T, k).
    """
    if part not in ("static", "dynamic"):
        raise ValueError(f"part={part!r} must be 'static' or 'dynamic'")
    repl = basis.part(z, part)  # (B, T, k)
    keep = z - repl if basis.split is not None else basis.part(z, "dynamic" if part == "static" else "static")
    j, l_ = _two_others(z.shape[0], generator, z.device)
    w = torch.rand(z.shape[0], 2, generator=generator).to(z.device, z.dtype)
    w = w / w.sum(1, keepdim=True).clamp_min(1e-12)  # (B, 2)
    mixed = w[:, 0, None, None] * repl[j] + w[:, 1, None, None] * repl[l_]
    return keep + mixed


def predict_ahead(z0: torch.Tensor, C: torch.Tensor, steps: int) -> torch.Tensor:
    """Multi-step prediction z_t = z_0 Cᵗ for t = 0..steps: (B, k) -> (B, steps+1, k)."""
    out = [z0]
    Cz = C.to(z0.dtype)
    for _ in range(steps):
        out.append(out[-1] @ Cz)
    return torch.stack(out, dim=1)


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
