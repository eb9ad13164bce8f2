"""Decoder footprints (skd.pipelines.footprint): pure functions and recovery of planted output regions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skd.pipelines import ops
from skd.pipelines.factors import discover_groups, eigen_units
from skd.pipelines.footprint import combine_affinities, footprint_affinity, pair_indices, unit_footprints
from test_factors import PLANT, planted_latents


def region_decoder(truth: dict[str, torch.Tensor], k: int, width: int = 6, seed: int = 0):
    """A decoder whose output (N, T, D) has one block of ``width`` values per planted factor,
    each a non-linear function of that factor's part of z only, plus a block for the rest."""
    g = torch.Generator().manual_seed(seed)
    parts = list(truth.values())
    parts.append(torch.eye(k, dtype=torch.float64) - sum(parts))
    maps = [torch.randn(k, width, generator=g, dtype=torch.float64) for _ in parts]

    def decode(z: torch.Tensor) -> torch.Tensor:
        z = z.to(torch.float64)
        return torch.cat([torch.tanh((z @ p) @ m) for p, m in zip(parts, maps)], -1)

    return decode


def partition(labels: list[int], ids: list[int]) -> set[frozenset[int]]:
    return {frozenset(c for c, g in zip(ids, labels) if g == j) for j in set(labels)}


def planted_partition(basis, z: torch.Tensor, truth: dict[str, torch.Tensor]) -> set[frozenset[int]]:
    """Each static eigen-component goes to the factor whose projector keeps most of it."""
    units = eigen_units(basis)
    owner = []
    for u in range(len(units.columns)):
        p = units.projector([u])
        owner.append(int(np.argmax([float(torch.linalg.norm(p @ t)) for t in truth.values()])))
    return partition(owner, units.ids)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_footprint_separates_factors_that_are_correlated_in_the_data(seed: int) -> None:
    # hair and top share their labels in every sequence: dependence sees one factor, the decoder two
    z, labels, n_static, truth = planted_latents(seed=seed, with_truth=True, tie=("hair", "top"))
    basis = ops.fit_basis(z, n_static)
    units = eigen_units(basis)
    decode = region_decoder(truth, z.shape[-1], seed=seed)
    projs = [units.projector([u]) for u in range(len(units.columns))]
    fp = footprint_affinity(unit_footprints(decode, z, projs, pairs=64, seed=seed))
    want = planted_partition(basis, z, truth)
    assert len(want) == len(PLANT)
    by_fp = discover_groups(z, basis, len(PLANT), kind="eigen", units=units, affinity="footprint", footprint=fp)
    assert partition(by_fp.labels, units.ids) == want
    by_both = discover_groups(z, basis, len(PLANT), kind="eigen", units=units, affinity="both", footprint=fp)
    assert partition(by_both.labels, units.ids) == want
    by_dep = discover_groups(z, basis, len(PLANT), kind="eigen", units=units)
    assert partition(by_dep.labels, units.ids) != want  # the tie fools the statistics


def test_footprints_live_in_the_unit_s_region() -> None:
    z, _, n_static, truth = planted_latents(seed=4, with_truth=True)
    basis = ops.fit_basis(z, n_static)
    units = eigen_units(basis)
    decode = region_decoder(truth, z.shape[-1], width=5)
    fp = unit_footprints(decode, z, [units.projector([u]) for u in range(len(units.columns))], pairs=32)
    assert fp.shape == (len(units.columns), 5 * (len(PLANT) + 1))
    for row in fp:  # a static unit never touches the block of the dynamic part
        assert row[-5:].max() < 1e-9 * row.max()
        block = row[: 5 * len(PLANT)].reshape(len(PLANT), 5).sum(1)
        assert np.sort(block)[-2] < 1e-9 * block.max()  # and touches exactly one factor's block


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 7), st.integers(1, 30), st.integers(0, 10_000))
def test_footprint_affinity_properties(u: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    fp = np.abs(rng.normal(size=(u, m)))
    aff = footprint_affinity(fp)
    assert aff.shape == (u, u) and np.allclose(aff, aff.T) and np.all(np.diag(aff) == 1.0)
    assert np.all((aff >= 0) & (aff <= 1)) and np.all(np.isfinite(aff))
    scaled = footprint_affinity(fp * rng.uniform(0.1, 10.0, size=(u, 1)))  # a unit's scale is arbitrary
    assert np.allclose(aff, scaled, atol=1e-12)
    fp[0] = 0.0  # a unit the decoder ignores is tied to nothing
    assert np.all(footprint_affinity(fp)[0, 1:] == 0.0)


def test_combine_affinities_and_bad_input() -> None:
    dep = np.array([[1.0, 0.25], [0.25, 1.0]])
    foot = np.array([[1.0, 0.64], [0.64, 1.0]])
    assert combine_affinities(dep, foot, "dependence") is dep
    assert combine_affinities(dep, foot, "footprint") is foot
    assert np.allclose(combine_affinities(dep, foot, "both"), [[1.0, 0.4], [0.4, 1.0]])
    with pytest.raises(ValueError, match="unknown affinity"):
        combine_affinities(dep, foot, "pixels")
    with pytest.raises(ValueError, match="needs a footprint"):
        combine_affinities(dep, None, "both")
    with pytest.raises(ValueError, match="at least 2 sequences"):
        pair_indices(1, 8, 0)
    with pytest.raises(ValueError, match="latents"):
        unit_footprints(lambda z: z, torch.zeros(4, 3), [torch.eye(3)])
    recv, don = pair_indices(10, 64, 3)
    assert len(recv) == 10 and bool((recv != don).all())
