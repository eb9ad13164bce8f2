"""The stable static invariant subspace (ordered real Schur form + Sylvester equation)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skd.pipelines import ops
from skd.koopman import eig_sorted, select_static
from skd.koopman.subspace import static_coordinates


def _split(C: torch.Tensor, static_size: int):
    eig = eig_sorted(C)
    s = select_static(eig, static_size, "ball")
    return eig, s


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(3, 12), ks=st.integers(1, 3))
def test_schur_projector_equals_eigen_projector_on_generic_matrices(seed: int, k: int, ks: int) -> None:
    rng = np.random.default_rng(seed)
    C = torch.tensor(rng.normal(size=(k, k)) / np.sqrt(k), dtype=torch.float64)
    eig, s = _split(C, min(ks, eig_sorted(C).n_components - 1))
    gap = (eig.values[s][:, None] - eig.values[~s][None, :]).abs()
    if gap.numel() and float(gap.min()) < 1e-3:  # split not well defined: covered by the error test
        return
    to, frm = static_coordinates(C, eig.values[s], eig.values[~s])
    P = to @ frm
    eig_P = (eig.vectors[:, s] @ eig.inverse[s, :]).real
    assert torch.allclose(frm @ to, torch.eye(int(s.sum()), dtype=torch.float64), atol=1e-9)
    assert torch.allclose(P, eig_P, atol=1e-6 * max(1.0, float(eig_P.abs().max())))
    assert torch.allclose(C @ P, P @ C, atol=1e-8 * max(1.0, float(P.abs().max())))


def test_repeated_eigenvalue_one_gives_a_correct_projector() -> None:
    """Eigenvalue 1 six times next to a rotation and a decay, hidden by a random similarity."""
    rng = np.random.default_rng(0)
    D = np.zeros((9, 9))
    D[:6, :6] = np.eye(6)
    D[6:8, 6:8] = [[0.3, 0.6], [-0.6, 0.3]]
    D[8, 8] = 0.2
    Q = rng.normal(size=(9, 9)) + 2 * np.eye(9)
    C = torch.tensor(np.linalg.inv(Q) @ D @ Q)
    eig, s = _split(C, 6)
    assert int(s.sum()) == 6
    to, frm = static_coordinates(C, eig.values[s], eig.values[~s])
    P = to @ frm
    truth = torch.tensor(np.linalg.inv(Q)[:, :6] @ Q[:6, :])  # rows: z P keeps the first 6 coordinates of z Q⁻¹
    assert torch.allclose(P, truth, atol=1e-8)
    assert torch.allclose(P @ P, P, atol=1e-10)
    assert int(torch.linalg.matrix_rank(P)) == 6


def test_inseparable_split_raises() -> None:
    C = torch.eye(4, dtype=torch.float64)  # every eigenvalue is 1: static and dynamic share it
    eig = eig_sorted(C)
    s = torch.tensor([True, True, False, False])
    with pytest.raises(ValueError, match="not separated"):
        static_coordinates(C, eig.values[s], eig.values[~s])


def test_ica_units_use_the_stable_subspace() -> None:
    """ICA units span exactly the static invariant subspace: their projector equals Schur's."""
    from skd.pipelines.factors import ica_units

    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(size=(200, 8, 6)))
    basis = ops.fit_basis(z, 2)
    units = ica_units(z, basis, seed=0)
    to, frm = static_coordinates(basis.C, basis.eig.values[basis.static], basis.eig.values[~basis.static])
    assert torch.allclose(units.projector(list(range(len(units.columns)))), to @ frm, atol=1e-8)
