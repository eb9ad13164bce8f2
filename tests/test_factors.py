"""Multifactor discovery: recovery of a planted grouping, dependence measure, operations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skd import ops
from skd.factors import (
    discover_groups,
    distance_correlation,
    incremental_swap,
    name_groups,
    spectral_groups,
    supervised_groups,
    swap_groups,
)

# planted factors: name -> eigen-blocks; a float is a real eigenvalue, a complex a conjugate pair
PLANT = {"hair": [complex(0.998, 0.01)], "skin": [0.999, 0.997], "top": [complex(0.996, 0.02), 1.0]}
DYNAMIC = [complex(0.3, 0.6), complex(0.5, -0.4), 0.2]


def _block(v) -> np.ndarray:
    if isinstance(v, complex):
        return np.array([[v.real, v.imag], [-v.imag, v.real]])
    return np.array([[v]])


def planted_latents(n: int = 600, t: int = 8, seed: int = 0):
    """z (n, t, k) = y Q with y_{t+1} = y_t D; each static block encodes one factor's value."""
    rng = np.random.default_rng(seed)
    blocks, owner = [], []
    for name, vals in PLANT.items():
        for v in vals:
            blocks.append(_block(v))
            owner += [name] * blocks[-1].shape[0]
    for v in DYNAMIC:
        blocks.append(_block(v))
        owner += ["dyn"] * blocks[-1].shape[0]
    k = sum(b.shape[0] for b in blocks)
    D = np.zeros((k, k))
    i = 0
    for b in blocks:
        D[i : i + len(b), i : i + len(b)] = b
        i += len(b)
    labels = {name: rng.integers(0, 6, n) for name in PLANT}
    y0 = rng.normal(size=(n, k))
    for name in PLANT:
        cols = [j for j, o in enumerate(owner) if o == name]
        table = rng.normal(size=(6, len(cols))) * 2.0  # each value of the factor -> a point
        y0[:, cols] = table[labels[name]] + 0.05 * rng.normal(size=(n, len(cols)))
    ys = [y0]
    for _ in range(t - 1):
        ys.append(ys[-1] @ D)
    y = np.stack(ys, 1)
    Q = rng.normal(size=(k, k)) + 2 * np.eye(k)  # random mixing: eigenvectors not axis-aligned
    z = torch.tensor(y @ Q, dtype=torch.float64)
    n_static = sum(len(v) for v in PLANT.values())
    return z, labels, n_static


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_discovery_recovers_planted_grouping(seed: int) -> None:
    z, labels, n_static = planted_latents(seed=seed)
    basis = ops.fit_basis(z, n_static)
    groups = discover_groups(z, basis, seed=0)  # number of groups chosen automatically
    assert groups.n_groups == len(PLANT)
    sup = supervised_groups(z, basis, labels)
    found = {frozenset(c for c, g in zip(groups.components, groups.labels) if g == j) for j in range(groups.n_groups)}
    truth = {frozenset(c for c, g in zip(sup.components, sup.labels) if g == j) for j in range(sup.n_groups)}
    assert found == truth  # same partition up to relabelling
    named = name_groups(groups, z, basis, labels)
    assert sorted(named.names) == sorted(PLANT)
    # masks never split a conjugate pair and cover exactly the static set
    assert torch.equal(groups.masks.any(0), basis.static)
    for m in groups.masks:
        comp = basis.eig.component
        for c in torch.unique(comp[m]).tolist():
            assert bool(m[comp == c].all())


def test_discovery_is_invariant_to_eigenvector_scaling_and_seeded() -> None:
    z, labels, n_static = planted_latents()
    basis = ops.fit_basis(z, n_static)
    g1 = discover_groups(z, basis, seed=3)
    phase = torch.exp(1j * torch.linspace(0.3, 2.0, basis.eig.values.shape[0], dtype=torch.float64))
    # rescale eigenvectors by arbitrary complex numbers (conjugate members conjugately)
    scale = phase.clone()
    comp = basis.eig.component
    for c in torch.unique(comp).tolist():
        idx = torch.nonzero(comp == c).flatten()
        if len(idx) == 2:
            scale[idx[1]] = scale[idx[0]].conj()
        else:
            scale[idx[0]] = 3.0
    eig2 = type(basis.eig)(basis.eig.values, basis.eig.vectors * scale, basis.eig.inverse / scale[:, None],
                           basis.eig.component, basis.eig.n_components)
    basis2 = ops.KoopmanBasis(basis.C, eig2, basis.static)
    g2 = discover_groups(z, basis2, seed=3)
    assert g1.labels == g2.labels
    assert discover_groups(z, basis, seed=3).labels == g1.labels


def test_bad_group_counts_raise() -> None:
    z, _, n_static = planted_latents(n=100)
    basis = ops.fit_basis(z, n_static)
    with pytest.raises(ValueError, match="exceeds the 5 static components"):
        discover_groups(z, basis, n_groups=9)
    g = discover_groups(z, basis, n_groups=2)
    with pytest.raises(ValueError, match="unknown factor 'hat'"):
        g.group_of("hat")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000))
def test_distance_correlation_properties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 2))
    R = np.linalg.qr(rng.normal(size=(2, 2)))[0]
    assert distance_correlation(x, 3.0 * x @ R + 5.0) == pytest.approx(1.0, abs=1e-9)
    assert distance_correlation(x, x[:, :1] ** 2) > 0.2  # non-linear dependence detected
    assert distance_correlation(x, rng.normal(size=(200, 1))) < 0.25
    assert distance_correlation(x, np.ones((200, 1))) == 0.0


def test_spectral_groups_on_block_affinity() -> None:
    w = np.full((7, 7), 0.05)
    for blk in ([0, 3], [1, 4, 6], [2, 5]):
        w[np.ix_(blk, blk)] = 0.9
    np.fill_diagonal(w, 1.0)
    labels = spectral_groups(w)
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 1]
    assert spectral_groups(w, 1).tolist() == [0] * 7
    with pytest.raises(ValueError, match="n_groups=8"):
        spectral_groups(w, 8)


def test_swap_and_morph_operations() -> None:
    z, labels, n_static = planted_latents(n=64)
    basis = ops.fit_basis(z, n_static)
    groups = name_groups(discover_groups(z, basis), z, basis, labels)
    a, b = z[:4], z[4:8]
    none = swap_groups(a, b, basis, groups.mask_for([]))
    assert torch.allclose(none, a, atol=1e-8)
    allg = swap_groups(a, b, basis, groups.mask_for(list(range(groups.n_groups))))
    assert torch.allclose(allg, ops.swap_latents(a, b, basis), atol=1e-8)
    morph = incremental_swap(a, b, basis, groups)
    assert morph.shape == (groups.n_groups + 1, 4, 8, z.shape[-1])
    assert torch.allclose(morph[0], a) and torch.allclose(morph[-1], allg, atol=1e-8)
    # the dynamic part never changes along the morph
    for step in morph:
        assert torch.allclose(basis.project(step, basis.dynamic), basis.project(a, basis.dynamic), atol=1e-8)
