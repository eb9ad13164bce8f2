"""Multifactor discovery: recovery of a planted grouping, dependence measure, operations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skd.pipelines import ops
from skd.pipelines.factors import (
    FactorGroups,
    StaticUnits,
    discover_groups,
    distance_correlation,
    eigen_units,
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


def planted_latents(n: int = 600, t: int = 8, seed: int = 0, plant: dict | None = None, with_truth: bool = False,
                    tie: tuple[str, str] | None = None):
    """z (n, t, k) = y Q with y_{t+1} = y_t D; each static block encodes one factor's value.

    With ``with_truth`` also returns the true (k, k) projector of each factor's part of z.
    ``tie=(a, b)``: factor b takes factor a's label in every sequence (correlated factors).
    """
    plant = PLANT if plant is None else plant
    rng = np.random.default_rng(seed)
    blocks, owner = [], []
    for name, vals in plant.items():
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
    labels = {name: rng.integers(0, 6, n) for name in plant}
    if tie is not None:
        labels[tie[1]] = labels[tie[0]].copy()
    y0 = rng.normal(size=(n, k))
    for name in plant:
        cols = [j for j, o in enumerate(owner) if o == name]
        table = rng.normal(size=(6, len(cols))) * 2.0  # each value of the factor -> a point
        y0[:, cols] = table[labels[name]] + 0.05 * rng.normal(size=(n, len(cols)))
    ys = [y0]
    for _ in range(t - 1):
        ys.append(ys[-1] @ D)
    y = np.stack(ys, 1)
    Q = rng.normal(size=(k, k)) + 2 * np.eye(k)  # random mixing: eigenvectors not axis-aligned
    z = torch.tensor(y @ Q, dtype=torch.float64)
    n_static = sum(len(v) for v in plant.values())
    if not with_truth:
        return z, labels, n_static
    Qi = np.linalg.inv(Q)
    truth = {}
    for name in plant:
        cols = [j for j, o in enumerate(owner) if o == name]
        truth[name] = torch.tensor(Qi[:, cols] @ Q[cols, :])  # z @ P_f = factor f's part of z
    return z, labels, n_static, truth


def projector_errors(groups: FactorGroups, truth: dict[str, torch.Tensor]) -> dict[str, float]:
    """Relative Frobenius error of the best-matching group projector for every planted factor."""
    import itertools

    assert groups.n_groups == len(truth)
    proj = [groups.projector_for([g]) for g in range(groups.n_groups)]
    names = list(truth)
    best = None
    for perm in itertools.permutations(range(groups.n_groups)):
        err = {f: float(torch.linalg.norm(proj[g] - truth[f]) / torch.linalg.norm(truth[f])) for f, g in zip(names, perm)}
        if best is None or max(err.values()) < max(best.values()):
            best = err
    return best


def static_projector(basis) -> torch.Tensor:
    """Re(V_S U_S): the real projector onto the static eigen-subspace."""
    s = basis.static
    return (basis.eig.vectors[:, s] @ basis.eig.inverse[s, :]).real


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_discovery_recovers_planted_grouping(seed: int) -> None:
    z, labels, n_static = planted_latents(seed=seed)
    basis = ops.fit_basis(z, n_static)
    groups = discover_groups(z, basis, seed=0, kind="eigen")  # number of groups chosen automatically
    assert groups.n_groups == len(PLANT)
    sup = supervised_groups(z, groups.units, labels)
    found = {frozenset(c for c, g in zip(groups.components, groups.labels) if g == j) for j in range(groups.n_groups)}
    truth = {frozenset(c for c, g in zip(sup.components, sup.labels) if g == j) for j in range(sup.n_groups)}
    assert found == truth  # same partition up to relabelling
    named = name_groups(groups, z, labels)
    assert sorted(named.names) == sorted(PLANT)
    # eigen-index groups never split a conjugate pair and cover exactly the static set
    comp = basis.eig.component
    masks = torch.zeros(groups.n_groups, comp.shape[0], dtype=torch.bool)
    for g in range(groups.n_groups):
        masks[g, groups.eigen_indices(basis, g)] = True
    assert torch.equal(masks.any(0), basis.static) and int(masks.sum()) == int(basis.static.sum())
    for m in masks:
        for c in torch.unique(comp[m]).tolist():
            assert bool(m[comp == c].all())


def test_discovery_is_invariant_to_eigenvector_scaling_and_seeded() -> None:
    z, labels, n_static = planted_latents()
    basis = ops.fit_basis(z, n_static)
    g1 = discover_groups(z, basis, seed=3, kind="eigen")
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
    g2 = discover_groups(z, basis2, seed=3, kind="eigen")
    assert g1.labels == g2.labels
    assert discover_groups(z, basis, seed=3, kind="eigen").labels == g1.labels
    # the ICA basis is invariant too: same group projectors, and the same result for the same seed
    a1, a2 = discover_groups(z, basis, seed=3), discover_groups(z, basis2, seed=3)
    assert a1.n_groups == a2.n_groups == len(PLANT)
    truth = {g: a1.projector_for([g]) for g in range(a1.n_groups)}
    errs = projector_errors(a2, {str(g): p for g, p in truth.items()})
    assert max(errs.values()) < 1e-6
    assert discover_groups(z, basis, seed=3).labels == a1.labels


def test_bad_group_counts_raise() -> None:
    z, _, n_static = planted_latents(n=100)
    basis = ops.fit_basis(z, n_static)
    with pytest.raises(ValueError, match="exceeds the 5 static components"):
        discover_groups(z, basis, n_groups=9, kind="eigen")
    with pytest.raises(ValueError, match="exceeds the 7 static directions"):
        discover_groups(z, basis, n_groups=9)
    with pytest.raises(ValueError, match="unknown factor basis 'pca'"):
        discover_groups(z, basis, kind="pca")
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


@pytest.mark.parametrize("kind", ["eigen", "ica"])
def test_swap_and_morph_operations(kind: str) -> None:
    z, labels, n_static = planted_latents(n=64)
    basis = ops.fit_basis(z, n_static)
    groups = name_groups(discover_groups(z, basis, kind=kind), z, labels)
    a, b = z[:4], z[4:8]
    none = swap_groups(a, b, groups.projector_for([]))
    assert torch.allclose(none, a, atol=1e-8)
    allg = swap_groups(a, b, groups.projector_for(list(range(groups.n_groups))))
    assert torch.allclose(allg, ops.swap_latents(a, b, basis), atol=1e-8)
    morph = incremental_swap(a, b, groups)
    assert morph.shape == (groups.n_groups + 1, 4, 8, z.shape[-1])
    assert torch.allclose(morph[0], a) and torch.allclose(morph[-1], allg, atol=1e-8)
    # the dynamic part never changes along the morph
    for step in morph:
        assert torch.allclose(basis.project(step, basis.dynamic), basis.project(a, basis.dynamic), atol=1e-8)
    with pytest.raises(ValueError, match="equal shapes"):
        swap_groups(a, b[:2], groups.projector_for([0]))


@pytest.mark.parametrize("kind", ["eigen", "ica"])
def test_group_projectors_partition_the_static_projector(kind: str) -> None:
    z, _, n_static = planted_latents(n=300, seed=4)
    basis = ops.fit_basis(z, n_static)
    groups = discover_groups(z, basis, kind=kind)
    units = groups.units
    assert torch.allclose(units.from_coords @ units.to_coords, torch.eye(units.dim, dtype=torch.float64), atol=1e-8)
    proj = [groups.projector_for([g]) for g in range(groups.n_groups)]
    assert torch.allclose(sum(proj), static_projector(basis), atol=1e-8)
    for i, p in enumerate(proj):
        assert torch.allclose(p @ p, p, atol=1e-8)
        for j, q in enumerate(proj):
            if i != j:
                assert torch.allclose(p @ q, torch.zeros_like(p), atol=1e-8)


# all static eigenvalues exactly 1: the static eigenspace is degenerate, as the spectral loss makes it
DEGENERATE = {"hair": [1.0, 1.0], "skin": [1.0, 1.0], "top": [1.0, 1.0]}


def _mix_static_eigenvectors(basis, seed: int):
    """Replace V_S by V_S G (and U_S by G⁻¹ U_S): an equally valid eigenbasis of a repeated eigenvalue."""
    s = torch.nonzero(basis.static).flatten()
    rng = np.random.default_rng(seed)
    G = torch.tensor(rng.normal(size=(len(s), len(s))) + np.eye(len(s)), dtype=torch.complex128)
    V, U = basis.eig.vectors.clone(), basis.eig.inverse.clone()
    V[:, s] = V[:, s] @ G
    U[s, :] = torch.linalg.inv(G) @ U[s, :]
    eig = type(basis.eig)(basis.eig.values, V, U, basis.eig.component, basis.eig.n_components)
    out = ops.KoopmanBasis(basis.C, eig, basis.static)
    assert torch.allclose((V @ torch.diag(basis.eig.values) @ U).real, basis.C, atol=1e-8)  # still C's eigenbasis
    return out


def swap_leakage(groups: FactorGroups, truth: dict[str, torch.Tensor], z: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Per planted factor f, for the best one-to-one matching of groups to factors, swapping f's
    group from donors into receivers: (on-target miss, worst off-target leak), both relative:
    ‖(swap − donor) P_f‖ / ‖(receiver − donor) P_f‖ and max over h ≠ f of ‖(swap − receiver) P_h‖ / ‖(donor − receiver) P_h‖."""
    import itertools

    half = len(z) // 2
    recv, donor = z[:half], z[half : 2 * half]
    names, best = list(truth), None
    for perm in itertools.permutations(range(groups.n_groups), len(names)):
        rows = {}
        for f, g in zip(names, perm):
            sw = swap_groups(recv, donor, groups.projector_for([g]))
            on = float(torch.linalg.norm((sw - donor) @ truth[f]) / torch.linalg.norm((recv - donor) @ truth[f]))
            off = max(float(torch.linalg.norm((sw - recv) @ truth[h]) / torch.linalg.norm((donor - recv) @ truth[h]))
                      for h in names if h != f)
            rows[f] = (on, off)
        if best is None or max(map(max, rows.values())) < max(map(max, best.values())):
            best = rows
    return best


def test_ica_recovers_factors_inside_a_repeated_eigenvalue() -> None:
    """Five planted worlds whose static eigenvalue 1 is repeated 6 times (3 factors × 2 coordinates),
    with the static eigenvectors remixed (an equally valid eigenbasis). ICA groups, with the number
    of groups chosen automatically, must move each factor almost alone; eigen-components cannot."""
    ica_worst, eig_best = [], []
    for seed in range(5):
        z, labels, n_static, truth = planted_latents(seed=seed, plant=DEGENERATE, with_truth=True)
        basis = _mix_static_eigenvectors(ops.fit_basis(z, n_static), seed)
        groups = name_groups(discover_groups(z, basis, seed=0), z, labels)
        assert groups.n_groups == len(DEGENERATE)
        assert sorted(groups.names) == sorted(DEGENERATE)
        ica_worst.append(max(map(max, swap_leakage(groups, truth, z).values())))
        eig_groups = discover_groups(z, basis, n_groups=3, kind="eigen")
        eig_best.append(min(map(min, swap_leakage(eig_groups, truth, z).values())))
        if seed == 0:  # supervised grouping of the same ICA directions finds the same groups
            sup = supervised_groups(z, groups.units, labels)
            assert max(map(max, swap_leakage(sup, truth, z).values())) < 0.1
    assert float(np.median(ica_worst)) < 0.1 and max(ica_worst) < 0.35, ica_worst
    assert min(eig_best) > 0.3, eig_best  # every eigen-grouping mixes the factors


def test_static_units_are_real_eigen_coordinates() -> None:
    z, _, n_static = planted_latents(n=50)
    basis = ops.fit_basis(z, n_static)
    units: StaticUnits = eigen_units(basis)
    a = z.to(torch.complex128) @ basis.eig.vectors  # (N, T, k) eigen-coordinates
    r = units.coords(z)
    for cols, c in zip(units.columns, units.ids):
        j = int(torch.nonzero(basis.eig.component == c).flatten()[0])
        expect = [a[..., j].real] + ([a[..., j].imag] if len(cols) == 2 else [])
        assert torch.allclose(r[..., cols], torch.stack(expect, -1), atol=1e-9)


def test_grouping_agreement_counts_units_with_the_same_name() -> None:
    from skd.pipelines.factorset import grouping_agreement

    z, labels, n_static = planted_latents(seed=0)
    basis = ops.fit_basis(z, n_static)
    units = eigen_units(basis)
    free = name_groups(discover_groups(z, basis, len(PLANT), kind="eigen", units=units), z, labels)
    sup = supervised_groups(z, units, labels)
    assert grouping_agreement(free, sup) == (len(units.columns), len(units.columns))  # planted: all agree
    shuffled = FactorGroups(units, free.labels, free.affinity, free.n_groups, free.names[1:] + free.names[:1])
    same, total = grouping_agreement(shuffled, sup)
    assert total == len(units.columns) and same < total
    with pytest.raises(ValueError, match="cannot be compared"):
        grouping_agreement(FactorGroups(units, free.labels, free.affinity, free.n_groups), sup)
