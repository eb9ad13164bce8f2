"""Refined static/dynamic split: motion-carrying static directions move to the dynamic side."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from skd.pipelines import ops
from skd.pipelines.split import motion_units, refine_split


def test_motion_units_two_means_rule() -> None:
    assert motion_units(np.array([0.2, 0.65, 0.22, 0.61, 0.25])) == [1, 3]
    assert motion_units(np.array([0.2, 0.25, 0.3, 0.28])) == []  # cluster means closer than 0.15
    assert motion_units(np.array([0.2, 0.3]), min_gap=0.05) == [1]
    assert motion_units(np.array([0.5])) == []
    # no clean gap, but two clusters: the upper one moves
    assert motion_units(np.array([0.18, 0.16, 0.22, 0.25, 0.29, 0.33, 0.41, 0.47, 0.56, 0.58])) == [6, 7, 8, 9]
    # invariant to the order of the units
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, 9)
    perm = rng.permutation(9)
    assert sorted(perm[motion_units(s[perm])].tolist()) == motion_units(s)


def action_world(n: int = 800, t: int = 8, seed: int = 0, static_action: bool = True):
    """Static: hair (2 coords), skin (2) and an action code (2), all with λ = 1; dynamic: two
    rotations whose initial state is set by the same action (3 classes). z = y Q. Without
    ``static_action`` the third static block is an independent appearance factor "top"."""
    rng = np.random.default_rng(seed)
    k = 10
    D = np.zeros((k, k))
    D[:6, :6] = np.eye(6)
    for i, (a, b) in zip((6, 8), ((0.3, 0.8), (-0.5, 0.6))):
        D[i : i + 2, i : i + 2] = [[a, b], [-b, a]]
    labels = {"hair": rng.integers(0, 6, n), "skin": rng.integers(0, 6, n), "action": rng.integers(0, 3, n),
              "top": rng.integers(0, 6, n)}
    third = ("action", 3) if static_action else ("top", 6)
    y0 = np.zeros((n, k))
    for cols, name, m in (((0, 1), "hair", 6), ((2, 3), "skin", 6), ((4, 5), *third), ((6, 7, 8, 9), "action", 3)):
        table = rng.normal(size=(m, len(cols))) * 2.0
        y0[:, list(cols)] = table[labels[name]] + 0.05 * rng.normal(size=(n, len(cols)))
    ys = [y0]
    for _ in range(t - 1):
        ys.append(ys[-1] @ D)
    y = np.stack(ys, 1)
    Q = rng.normal(size=(k, k)) + 2 * np.eye(k)
    Qi = np.linalg.inv(Q)
    appearance = torch.tensor(Qi[:, :4] @ Q[:4, :])  # true projector onto hair + skin
    return torch.tensor(y @ Q), labels, appearance


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_refine_split_moves_the_action_code_and_only_it(seed: int) -> None:
    z, labels, appearance = action_world(seed=seed)
    basis = ops.fit_basis(z, 6)  # the 6 eigenvalues at 1
    res = refine_split(z, basis, seed=0)
    assert len(res.motion) == 2, res.scores
    half = len(z) // 2
    a, b = z[:half], z[half : 2 * half]
    # swapping statics under the refined split moves hair + skin and nothing of the action
    sw = ops.swap_latents(a, b, res.basis)
    rel = lambda u, v: float(torch.linalg.norm(u) / torch.linalg.norm(v))  # noqa: E731
    assert rel((sw - b) @ appearance, (a - b) @ appearance) < 0.1  # appearance taken from b
    keep = torch.eye(z.shape[-1], dtype=torch.float64) - appearance
    assert rel((sw - a) @ keep, (b - a) @ keep) < 0.1  # motion (incl. the static action code) kept from a
    # the plain eigen split moves the action code with the statics
    plain = ops.swap_latents(a, b, basis)
    assert rel((plain - a) @ keep, (b - a) @ keep) > 0.3


def test_refined_split_parts_sum_and_sampling_keeps_the_dynamic_side() -> None:
    z, _, _ = action_world(n=300)
    res = refine_split(z, ops.fit_basis(z, 6), seed=0)
    b = res.basis
    assert torch.allclose(b.part(z, "static") + b.part(z, "dynamic"), z, atol=1e-10)
    P = b.split
    assert torch.allclose(P @ P, P, atol=1e-8)
    g = torch.Generator().manual_seed(0)
    out = ops.sample_part(z, b, "static", generator=g)
    assert torch.allclose(b.part(out, "dynamic"), b.part(z, "dynamic"), atol=1e-8)
    with pytest.raises(ValueError, match="latents must be"):
        refine_split(z[..., :5], b)


def test_no_motion_in_statics_means_no_change() -> None:
    """A third appearance factor instead of the static action code: nothing moves."""
    z, _, _ = action_world(n=600, seed=5, static_action=False)
    basis = ops.fit_basis(z, 6)
    res = refine_split(z, basis, seed=0)
    assert res.motion == [], res.scores
    eigen_static = (basis.eig.vectors[:, basis.static] @ basis.eig.inverse[basis.static, :]).real
    assert torch.allclose(res.basis.split, eigen_static, atol=1e-8)


def test_motion_directions_form_their_own_factor_group() -> None:
    from skd.pipelines.factors import MOTION, discover_groups, name_groups, supervised_groups
    from skd.pipelines.split import motion_scores

    z, labels, _ = action_world(seed=1)
    basis = ops.fit_basis(z, 6)
    res = refine_split(z, basis, seed=0)
    assert motion_units(motion_scores(z, res.units, seed=0)) == res.motion
    static = {k: labels[k] for k in ("hair", "skin")}
    groups = name_groups(discover_groups(z, basis, seed=0, units=res.units, motion=res.motion), z, static)
    assert sorted(groups.names) == sorted(["hair", "skin", MOTION])
    assert groups.members(groups.group_of(MOTION)) == res.motion
    sup = supervised_groups(z, res.units, static, {"action": labels["action"]})
    assert sup.names == ["hair", "skin", MOTION]
    assert sup.members(sup.group_of(MOTION)) == res.motion
    with pytest.raises(ValueError, match=r"exceeds the 4 static directions \(2 more carry motion\)"):
        discover_groups(z, basis, n_groups=5, units=res.units, motion=res.motion)


def test_thin_svd_falls_back_to_gesvd_when_gesdd_does_not_converge(monkeypatch) -> None:
    from skd.pipelines import split

    a = np.random.default_rng(0).normal(size=(40, 12))
    left, sing = split.thin_svd(a)
    def refuse(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")
    monkeypatch.setattr(np.linalg, "svd", refuse)
    left2, sing2 = split.thin_svd(a)
    np.testing.assert_allclose(sing2, sing, rtol=1e-12)
    np.testing.assert_allclose(np.abs(left2.T @ left), np.eye(12), atol=1e-10)  # same vectors up to sign
