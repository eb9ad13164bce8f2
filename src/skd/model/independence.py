"""Static/dynamic independence: the static part of a sequence should not predict its dynamics.

The eigen split of Eq. 5 calls static what C keeps constant. Nothing in Eq. 3-4 stops the
encoder from writing the same appearance into the dynamic coordinates as well, or the motion's
type into the static ones: a trained Sprites model reads skin, pants, top and hair at 94-100 %
from its dynamic part alone (linear probes on the test split, docs/ABLATIONS.md), so swapping
the static part leaves a second copy of the old appearance behind (Protocol B) and pairs a
motion with an appearance it was never decoded with (Protocol A).

Over a batch, with z_S = (z Q1) F the static part of each sequence (the spectral projector of C's
static set, :func:`skd.koopman.subspace.static_coordinates`, a constant here) and z_D = z - z_S,
let s_b = mean_t z_S[b, t] (the static code, k numbers) and d_b = vec(z_D[b]) (the dynamic
trajectory, T·k numbers). The loss is their linear CKA over the batch (Kornblith et al., 2019),

    L_indep = max(0, HSIC_u(K_s, K_d) / sqrt(HSIC_u(K_s, K_s) HSIC_u(K_d, K_d))),
    K_s = S Sᵀ, K_d = D Dᵀ,

with HSIC_u the unbiased estimator (Song et al., 2012): about 0 when no linear combination of
the static code is correlated with any linear combination of the dynamic trajectory across the
batch, 1 when they are the same up to rotation and scale. The plain (biased) CKA of a batch of
32 against 320-dimensional trajectories is far from 0 even for independent codes, and its
gradient would shrink the static spread instead; the unbiased one has no such pull. It is
scale-free (collapsing either part does not lower it) and smooth where positive.
On Sprites the generating factors (appearance, action) are independent by construction; where
they are not, the term asks for something the data do not have and should stay off (default).

Symmetric in its arguments, the term can be lowered by thinning out the static code as well as
by cleaning the dynamic trajectory. Fine-tuning the Sprites model did the former (the appearance
left the static part, docs/ABLATIONS.md); ``loss.indep_grad = "dynamic"`` stops the gradient
through the static code, so only the dynamic trajectory is changed. Measured there, that
variant scored worse on every protocol, so ``"both"`` is the default.

With several processes each computes it on its share of the global batch.
"""
from __future__ import annotations

import torch

from ..koopman import eig_sorted, select_static
from ..koopman.subspace import static_coordinates


def static_projector(C: torch.Tensor, static_size: int, criterion: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(to (k, s), from (s, k)) float64 with z_S = (z @ to) @ from, for C's static set (no
    gradient); None when the set is empty or cannot be separated from the dynamic one."""
    with torch.no_grad():
        try:
            eig = eig_sorted(C.detach(), with_inverse=False)
            mask = select_static(eig, static_size, criterion)  # type: ignore[arg-type]
            to, frm = static_coordinates(C.detach(), eig.values[mask], eig.values[~mask])
        except (ValueError, torch.linalg.LinAlgError):
            return None
    if to.shape[1] == 0:
        return None
    return to.to(C.device), frm.to(C.device)


def unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased estimator of HSIC (Song et al., 2012) from two (n, n) Gram matrices, n >= 4.

    Uses the Gram matrices with their diagonals removed; its mean over independent draws is the
    population HSIC, so independent variables score 0 on average at any batch size (the plain
    centred estimator is biased upwards by O(1/n), strongly when n is near the dimension).
    """
    n = k.shape[0]
    k = k - torch.diag_embed(torch.diagonal(k))
    l = l - torch.diag_embed(torch.diagonal(l))
    ones_k, ones_l = k.sum(0), l.sum(0)  # K1, L1
    value = (k * l).sum() + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ones_k @ ones_l)
    return value / (n * (n - 3))


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Debiased linear CKA of a (B, p) and b (B, q) over the batch (B >= 4; 0 for smaller batches).

    Unbiased HSIC of the linear Gram matrices, normalised by the two self-HSICs: about 0 for
    independent a and b at any batch size (it may then come out slightly negative), 1 when b is
    an orthogonal transform of a up to scale. Invariant to orthogonal transforms and to scaling
    of either argument, symmetric in (a, b); 0 when either is constant.
    """
    if a.shape[0] < 4:
        return a.sum() * 0.0 + b.sum() * 0.0
    ka, kb = a @ a.T, b @ b.T  # (B, B) Gram matrices
    num = unbiased_hsic(ka, kb)
    den2 = unbiased_hsic(ka, ka) * unbiased_hsic(kb, kb)
    tiny = torch.finfo(den2.dtype).tiny ** 0.5
    return torch.where(den2 > tiny, num / den2.clamp_min(tiny).sqrt(), num * 0.0)


def static_dynamic_dependence(z: torch.Tensor, projector: tuple[torch.Tensor, torch.Tensor], *,
                              grad: str = "both") -> torch.Tensor:
    """L_indep (module docstring) for latents z (B, T, k) and the static projector (to, from).

    Computed in float64, returned in z's dtype; differentiable in z. ``grad="dynamic"`` holds
    the static code constant, so the term can only remove from the dynamic trajectory what the
    static code already says, never thin out the static code itself.
    """
    if grad not in ("both", "dynamic"):
        raise ValueError(f"grad={grad!r} must be 'both' or 'dynamic'")
    to, frm = projector
    zd64 = z.double()
    zs = (zd64 @ to) @ frm  # (B, T, k) static part
    s = zs.mean(1)  # (B, k)
    if grad == "dynamic":
        s = s.detach()
    d = (zd64 - zs).flatten(1)  # (B, T*k)
    return linear_cka(s, d).clamp_min(0.0).to(z.dtype)  # only a measured dependence is penalised
