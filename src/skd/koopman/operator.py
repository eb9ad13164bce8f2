"""The Koopman module: pure functions, no parameters.

Convention, stated once for the whole package: latents are ROW vectors,
``z[:, t+1] ≈ z[:, t] @ C`` for a batch ``z`` of shape (B, T, k) and a Koopman matrix C (k, k).

Paper: Berman, Naiman, Azencot, "Multifactor Sequential Disentanglement via Structured Koopman
Autoencoders", ICLR 2023 (Sec. 3, Eq. 2: C = argmin ||Zp C - Zf||², solved in closed form on the
whole batch; Eq. 5: spectral decomposition z_t = Σ_j (z_0 v_j) λ_j^t u_j).

Numerics (see docs/NUMERICS.md):
- ``fit_koopman`` accumulates the normal equations ``G = Zpᵀ Zp``, ``H = Zpᵀ Zf`` in float64 and
  solves them with an eigenvalue-truncated pseudo-inverse of ``G + ridge·I``. This gives the
  minimum-norm least-squares solution on rank-deficient latents on every device (CUDA's
  ``lstsq`` only has the full-rank ``gels`` driver), never NaN, and its gradient is the smooth
  pseudo-inverse formula. The same blocks can be all-reduced across processes for an exact
  global fit.
- ``eig_sorted`` decomposes in complex128 with an explicit order and groups conjugate pairs into
  "components"; its backward uses only the eigenvalue gradient and is guarded against the
  singular eigenvector matrices that coinciding eigenvalues produce.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

StaticCriterion = Literal["ball", "norm", "real"]
Reduce = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over processes, differentiably

__all__ = [
    "normal_equations",
    "solve_normal",
    "fit_koopman",
    "predict_latents",
    "EigSorted",
    "eig_sorted",
    "select_static",
    "to_eigen",
    "from_eigen",
    "project",
]


# ----------------------------------------------------------------------------- least squares
def split_past_future(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, k) -> Zp, Zf of shape (B·(T-1), k): all (sequence, time) pairs of the batch."""
    if z.ndim != 3 or z.shape[1] < 2:
        raise ValueError(f"latents must be (B, T>=2, k), got shape {tuple(z.shape)}")
    k = z.shape[-1]
    zp = z[:, :-1].reshape(-1, k)  # (B(T-1), k)
    zf = z[:, 1:].reshape(-1, k)  # (B(T-1), k)
    return zp, zf


def normal_equations(z: torch.Tensor, *, reduce: Reduce | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 normal-equation blocks of Eq. 2: G = Zpᵀ Zp (k, k), H = Zpᵀ Zf (k, k).

    They are sums over (sequence, time) pairs, so blocks from several batches or processes add up
    to the blocks of the concatenated batch. ``reduce`` (e.g. :func:`skd.training.distributed.sum_across`)
    maps the stacked local blocks (2, k, k) to their sum over processes, differentiably; the
    result is then the G and H of the global batch.
    """
    zp, zf = split_past_future(z)
    zp = zp.double()
    zf = zf.double()
    gram, cross = zp.T @ zp, zp.T @ zf
    if reduce is None:
        return gram, cross
    blocks = reduce(torch.stack([gram, cross]))  # (2, k, k): one collective for both blocks
    return blocks[0], blocks[1]


def solve_normal(
    gram: torch.Tensor, cross: torch.Tensor, *, ridge: float = 0.0, rcond: float = 1e-10
) -> torch.Tensor:
    """Minimum-norm solution C of (G + ridge·I) C = H, float64 (k, k).

    Eigenvalues of the symmetric ``G + ridge·I`` below ``rcond`` times the largest are treated
    as zero (a truncated pseudo-inverse), so a rank-deficient G — dead latent units, fewer pairs
    than k, duplicated coordinates — yields the finite minimum-norm least-squares C instead of
    NaN or garbage. An all-zero G gives C = 0.
    """
    if ridge < 0:
        raise ValueError(f"ridge={ridge} must be >= 0")
    if not (0 < rcond < 1):
        raise ValueError(f"rcond={rcond} must be in (0, 1)")
    k = gram.shape[-1]
    g = gram.double()
    if ridge > 0:
        g = g + ridge * torch.eye(k, dtype=g.dtype, device=g.device)
    g = 0.5 * (g + g.T)  # exact symmetry for the Hermitian pseudo-inverse
    if not bool(torch.isfinite(g).all()) or not bool(torch.isfinite(cross).all()):
        # non-finite latents: no least-squares answer exists; NaN lets the trainer skip the step
        return torch.full_like(g, float("nan")) + 0.0 * g + 0.0 * cross.double()
    try:
        pinv = torch.linalg.pinv(g, rtol=rcond, hermitian=True)
    except torch.linalg.LinAlgError:  # eigh did not converge: SVD-based pseudo-inverse instead
        pinv = torch.linalg.pinv(g, rtol=rcond)
    return pinv @ cross.double()


def fit_koopman(
    z: torch.Tensor, *, ridge: float = 0.0, rcond: float = 1e-10, reduce: Reduce | None = None
) -> torch.Tensor:
    """One least-squares Koopman matrix for the whole batch (Eq. 2), float64 (k, k).

    ``C = argmin_C ||Zp C - Zf||² + ridge·||C||²`` over all B·(T-1) (sequence, time) pairs.
    Gradients flow back into ``z``. With ``reduce`` (see :func:`normal_equations`) the pairs of
    every process count: C is the single-process C of the concatenated batch, the ridge term
    added once to the summed Gram matrix.
    """
    gram, cross = normal_equations(z, reduce=reduce)
    return solve_normal(gram, cross, ridge=ridge, rcond=rcond)


def predict_latents(z: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Z̃ = [z_0 ; Zp C]: frame 0 copied, frames 1..T-1 predicted one step ahead. (B, T, k)."""
    z_next = z[:, :-1] @ C.to(z.dtype)  # (B, T-1, k)
    return torch.cat([z[:, :1], z_next], dim=1)


# ----------------------------------------------------------------------------- eigen
class _GuardedEig(torch.autograd.Function):
    """Eigen-decomposition whose backward uses only the eigenvalue gradient.

    dL/dC = V⁻ᴴ diag(dL/dλ) Vᴴ (real part for real C). V is ill-conditioned when eigenvalues
    coincide (exactly the regime the spectral loss drives C into); the solve then falls back to
    a truncated pseudo-inverse and non-finite entries are zeroed, so the gradient stays finite.
    """

    @staticmethod
    def forward(ctx, C: torch.Tensor):  # type: ignore[override]
        values, vectors = torch.linalg.eig(C)
        ctx.save_for_backward(vectors)
        ctx.real_input = not C.is_complex()
        ctx.mark_non_differentiable(vectors)
        return values, vectors

    @staticmethod
    def backward(ctx, grad_values, _grad_vectors):  # type: ignore[override]
        (vectors,) = ctx.saved_tensors
        if grad_values is None:
            return None
        vh = vectors.mH
        rhs = grad_values.unsqueeze(-1) * vh  # diag(gλ) Vᴴ
        sol, info = torch.linalg.solve_ex(vh, rhs)
        bad = bool(info.ne(0).any()) or not bool(torch.isfinite(sol).all())
        if not bad:
            cond = torch.linalg.cond(vectors)
            bad = not bool(torch.isfinite(cond)) or float(cond) > 1e10
        if bad:
            sol = torch.linalg.pinv(vh, rtol=1e-8) @ rhs
        sol = torch.nan_to_num(sol, nan=0.0, posinf=0.0, neginf=0.0)
        return sol.real if ctx.real_input else sol


@dataclass(frozen=True)
class EigSorted:
    """Eigen-decomposition C = V diag(λ) U with U = V⁻¹, in the order of :func:`eig_sorted`.

    values (k,) complex128, vectors V (k, k) complex128 (columns), inverse U (k, k) complex128
    (rows; empty (0, 0) when built with ``with_inverse=False``), component (k,) int64: conjugate-pair id,
    0..n_components-1, non-decreasing.
    """

    values: torch.Tensor
    vectors: torch.Tensor
    inverse: torch.Tensor
    component: torch.Tensor
    n_components: int


def _component_ids(values: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair each eigenvalue with its conjugate. Returns (partner index (k,), is_pos (k,))."""
    k = values.shape[0]
    scale = values.abs().clamp_min(1.0)
    im = values.imag
    is_pos = im > tol * scale
    is_neg = im < -tol * scale
    partner = torch.arange(k, device=values.device)
    pos = torch.nonzero(is_pos).flatten()
    neg = torch.nonzero(is_neg).flatten()
    if pos.numel() != neg.numel():  # numerically unpaired: treat all as real components
        return partner, torch.zeros_like(is_pos)
    if pos.numel():
        # lexicographic (Re, |Im|) order on both sides pairs exact/near-exact conjugates
        def lexorder(idx: torch.Tensor) -> torch.Tensor:
            v = values[idx]
            o = torch.sort(v.imag.abs(), stable=True).indices
            o = o[torch.sort(v.real[o], stable=True).indices]
            return idx[o]

        p, n = lexorder(pos), lexorder(neg)
        partner[p] = n
        partner[n] = p
    return partner, is_pos


def eig_sorted(C: torch.Tensor, *, tol: float = 1e-9, with_inverse: bool = True) -> EigSorted:
    """Eigen-decomposition of C (k, k) in complex128 with an explicit, documented order.

    Order: components (a real eigenvalue, or a conjugate pair) by descending modulus |λ|, ties
    by descending Re λ, then by descending |Im λ|; inside a pair the member with Im > 0 comes
    first. So pairs are always adjacent and the order does not depend on LAPACK's output order.
    Eigenvectors are only defined up to a complex scale; nothing downstream depends on it
    (projections use V[:, J] U[J, :], which is scale invariant). Gradients flow to C through the
    eigenvalues only.
    """
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be square (k, k), got shape {tuple(C.shape)}")
    if not bool(torch.isfinite(C).all()):
        raise ValueError("C contains NaN or infinite entries")
    src = C.to(torch.complex128) if C.is_complex() else C.double()
    values, vectors = _GuardedEig.apply(src)
    k = values.shape[0]
    with torch.no_grad():
        vals = values.detach()
        partner, is_pos = _component_ids(vals, tol)
        # representative of each eigenvalue's component: the Im >= 0 member
        rep = torch.where(vals.imag < 0, partner, torch.arange(k, device=vals.device))
        rv = vals[rep]
        # member rank inside a component: 0 for the Im >= 0 member, 1 for its partner
        member = (vals.imag < 0) & (partner != torch.arange(k, device=vals.device))
        # lexicographic sort: keys applied from least to most significant, stable
        order = torch.sort(member.long(), stable=True).indices
        order = order[torch.sort(rep[order], stable=True).indices]
        order = order[torch.sort(-rv.imag.abs()[order], stable=True).indices]
        order = order[torch.sort(-rv.real[order], stable=True).indices]
        # |λ| computed BEFORE gathering: vectorised abs may round the same value differently at
        # different positions, which would split the tie between the two members of a pair
        rv_abs = vals.abs()[rep]
        order = order[torch.sort(-rv_abs[order], stable=True).indices]
        rep_sorted = rep[order]
        new_comp = torch.ones(k, dtype=torch.long, device=vals.device)
        new_comp[1:] = (rep_sorted[1:] != rep_sorted[:-1]).long()
        component = torch.cumsum(new_comp, 0) - 1
    values = values[order]
    vectors = vectors[:, order]
    if not with_inverse:  # the loss reads eigenvalues only: skip the inverse (and its condition check)
        return EigSorted(values, vectors.detach(), vectors.new_empty(0, 0), component, int(component[-1]) + 1)
    inverse = torch.linalg.pinv(vectors.detach()) if _ill_conditioned(vectors) else torch.linalg.inv(vectors.detach())
    return EigSorted(values, vectors.detach(), inverse, component, int(component[-1]) + 1)


def _ill_conditioned(v: torch.Tensor) -> bool:
    cond = torch.linalg.cond(v.detach())
    return not bool(torch.isfinite(cond)) or float(cond) > 1e12


# ----------------------------------------------------------------------------- static / dynamic
def component_scores(values: torch.Tensor, criterion: StaticCriterion) -> torch.Tensor:
    """Per-eigenvalue closeness to the static target (lower = more static), (k,) float64.

    ``ball``: |λ - 1|; ``norm``: -|λ|; ``real``: -Re λ. Each is invariant under conjugation,
    so both members of a pair always score the same.
    """
    v = values.detach()
    if criterion == "ball":
        return (v - 1).abs()
    if criterion == "norm":
        return -v.abs()
    if criterion == "real":
        return -v.real
    raise ValueError(f"static criterion {criterion!r} must be one of 'ball', 'norm', 'real'")


def select_static(eig: EigSorted, static_size: int, criterion: StaticCriterion = "ball") -> torch.Tensor:
    """Boolean mask (k,) of the static set S: the ``static_size`` components closest to the target.

    A real eigenvalue is one component and a conjugate pair is one component, so |S| lies in
    [k_s, 2k_s] and a pair is never split (unlike the reference inference code, which counts the
    sorted list from the wrong end for ``ball``). Ties between components keep the
    :func:`eig_sorted` order.
    """
    n = eig.n_components
    if not (0 <= static_size <= n):
        raise ValueError(f"static_size={static_size} must be in [0, {n}] (number of eigen-components)")
    score = component_scores(eig.values, criterion)
    comp_score = torch.full((n,), float("inf"), dtype=score.dtype, device=score.device)
    comp_score = comp_score.scatter_reduce(0, eig.component, score, reduce="amin")
    chosen = torch.sort(comp_score, stable=True).indices[:static_size]
    return torch.isin(eig.component, chosen)


# ----------------------------------------------------------------------------- coordinates
def to_eigen(z: torch.Tensor, eig: EigSorted) -> torch.Tensor:
    """Eigen-coordinates A = z V (..., k) complex128 (Eq. 5)."""
    return z.to(torch.complex128) @ eig.vectors


def from_eigen(a: torch.Tensor, eig: EigSorted, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Back to latents: Re(A U) (..., k). Exact inverse of :func:`to_eigen`."""
    return (a @ eig.inverse).real.to(dtype)


def project(z: torch.Tensor, eig: EigSorted, mask: torch.Tensor) -> torch.Tensor:
    """The part of z in the eigen-subspace of ``mask``: Re(A[..., J] U[J, :]) (..., k).

    ``mask`` must not split a conjugate pair (checked), otherwise the result would carry a large
    imaginary part. Projections over a partition of the indices sum back to z.
    """
    _check_closed(eig, mask)
    a = to_eigen(z, eig) * mask.to(torch.complex128)
    return from_eigen(a, eig, dtype=z.dtype if z.is_floating_point() else torch.float32)


def _check_closed(eig: EigSorted, mask: torch.Tensor) -> None:
    if mask.shape != eig.component.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool of shape {tuple(eig.component.shape)}, got {mask.dtype} {tuple(mask.shape)}")
    n = eig.n_components
    counts = torch.zeros(n, dtype=torch.long, device=mask.device).scatter_add(0, eig.component, mask.long())
    sizes = torch.zeros(n, dtype=torch.long, device=mask.device).scatter_add(0, eig.component, torch.ones_like(mask, dtype=torch.long))
    if bool(((counts != 0) & (counts != sizes)).any()):
        raise ValueError("index mask splits a conjugate pair; select whole components")
