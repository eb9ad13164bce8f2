"""A Koopman basis of latents and what it does to them (docs/METHOD.md §3), no networks involved.

:class:`KoopmanBasis` holds C fitted on a reference batch, its sorted eigen-decomposition and the
static set; :func:`swap_latents` and :func:`sample_part` recombine static and dynamic parts;
:func:`predict_ahead` rolls z_0 forward. Randomness is a ``generator=`` argument.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .operator import EigSorted, eig_sorted, fit_koopman, project, select_static


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

def fit_basis(
    z: torch.Tensor, static_size: int, criterion: str = "ball", *, ridge: float = 0.0, rcond: float = 1e-10
) -> KoopmanBasis:
    """Fit C on latents z (B, T, k), decompose it and choose the static set (same rule as the loss).

    ``static_size`` counts components (a conjugate pair once); :func:`select_static` raises when
    C has fewer. A config guarantees it cannot (``loss.static_size <= ceil(model.k / 2)``).
    For a whole :class:`skd.pipelines.basis.BasisSpec` use :func:`skd.pipelines.basis.basis_from_latents`.
    """
    with torch.no_grad():
        C = fit_koopman(z, ridge=ridge, rcond=rcond)
        eig = eig_sorted(C)
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

    SKD has no prior (docs/METHOD.md §3): for sequence i, draw two other batch members j, l and
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
