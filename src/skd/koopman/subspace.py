"""A numerically stable real basis of the static invariant subspace of C.

The static part of a latent row vector is z_S = z V_S U_S (docs/METHOD.md §3, Eq. 5 restricted to S).
Computed from eigenvectors this is fragile exactly where SKD lives: the spectral loss (Eq. 4)
drives all static eigenvalues onto λ = 1, so they are (nearly) repeated, LAPACK may return
their eigenvectors as complex-conjugate-like pairs whose eigenvalues differ by rounding only,
or as an ill-conditioned set. The invariant subspace of the whole static CLUSTER is well
conditioned whenever it is separated from the dynamic eigenvalues, and the ordered real Schur
form computes it stably:

    C = Q T Qᵀ,  T = [[T11, T12], [0, T22]],  eig(T11) = the static eigenvalues.

Solving the Sylvester equation T11 X − X T22 = −T12 block-diagonalises T, and the spectral
projector onto S is Π = Q1 (Q1ᵀ − X Q2ᵀ) (= V_S U_S when the eigenvectors are fine). For row
vectors, r = z Q1 are s real coordinates of the static part (r_{t+1} = r_t T11 on the linear
part) and z_S = r (Q1ᵀ − X Q2ᵀ).
"""
from __future__ import annotations

import numpy as np
import torch


def static_coordinates(C: torch.Tensor, static_values: torch.Tensor, dynamic_values: torch.Tensor,
                       *, max_cond: float = 1e10) -> tuple[torch.Tensor, torch.Tensor]:
    """(to (k, s), from (s, k)) float64 with z_S = (z @ to) @ from and from @ to = I_s.

    ``static_values`` / ``dynamic_values``: the eigenvalues (complex) of the static and the
    dynamic set, as chosen by :func:`skd.koopman.select_static`; s = len(static_values). Raises
    ValueError when the two sets share an eigenvalue (the split is then not defined) or the
    Sylvester equation is too ill-conditioned to trust.
    """
    import scipy.linalg as sl

    c = C.detach().to(torch.float64).cpu().numpy()
    k = c.shape[0]
    s_vals = static_values.detach().to(torch.complex128).cpu().numpy()
    d_vals = dynamic_values.detach().to(torch.complex128).cpu().numpy()
    s = len(s_vals)
    if s + len(d_vals) != k:
        raise ValueError(f"{s} static and {len(d_vals)} dynamic eigenvalues for a {k}x{k} matrix")
    if s == 0:
        return torch.zeros(k, 0, dtype=torch.float64), torch.zeros(0, k, dtype=torch.float64)
    if len(d_vals) == 0:
        eye = torch.eye(k, dtype=torch.float64)
        return eye, eye.clone()

    def is_static(re: float, im: float) -> bool:
        e = complex(re, im)
        return float(np.min(np.abs(s_vals - e))) < float(np.min(np.abs(d_vals - e)))

    T, Q, sdim = sl.schur(c, output="real", sort=is_static)
    if sdim != s:
        raise ValueError(f"the static and dynamic eigenvalues are not separated ({sdim} of {s} static eigenvalues found "
                         "by the ordered Schur form); choose another static_size")
    t11, t12, t22 = T[:s, :s], T[:s, s:], T[s:, s:]
    x = sl.solve_sylvester(t11, -t22, -t12)
    q1, q2 = Q[:, :s], Q[:, s:]
    frm = q1.T - x @ q2.T
    if not np.all(np.isfinite(frm)) or np.linalg.norm(x) > max_cond:
        raise ValueError("the static and dynamic invariant subspaces of C are numerically inseparable")
    return torch.from_numpy(np.ascontiguousarray(q1)), torch.from_numpy(np.ascontiguousarray(frm))
