"""Multifactor structure inside the static eigen-subspace (METHOD.md §3, paper Sec. 4.3).

The paper swaps ONE static factor (only the hair) by moving a hand-picked group of static
eigen-coordinates from a donor to a receiver. Here the groups are found automatically.

Label-free discovery (:func:`discover_groups`). Each static component c (a real eigenvalue, or a
conjugate pair) gives every sequence a feature f_c ∈ R^d: the time-average of its eigen-coordinate
(d = 1 for a real eigenvalue; d = 2, real and imaginary part of the Im λ > 0 member, for a pair).
If the data's static factors are independent (as in Sprites, where skin, pants, top and hair are
drawn independently) and the representation is disentangled, components that encode the SAME
factor are statistically dependent across sequences while components of DIFFERENT factors are
independent. So we measure pairwise dependence with distance correlation, which detects any
(also non-linear) dependence, is 0 exactly under independence (in the population), and is
invariant to scaling, rotations and translations of each feature — hence to the arbitrary
complex scale of eigenvectors and to their order. Spectral clustering of that affinity matrix
gives the groups; the number of groups is the largest eigengap of the normalised affinity
unless ``n_groups`` is given. Conjugate pairs are one component, so never split.

Supervised mapping (:func:`supervised_importance`): with labels, the correlation ratio η² of each
component's feature for each factor (between-class variance / total variance) scores how much a
component "knows" a factor; it names the label-free groups and gives a supervised grouping.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .koopman import to_eigen
from .ops import KoopmanBasis


@dataclass(frozen=True)
class FactorGroups:
    """Groups of static eigen-components and their index masks.

    components: static component ids (as in ``basis.eig.component``) in feature order.
    labels: group label (0..n_groups-1) of each of those components.
    masks: (n_groups, k) bool, one eigen-index mask per group, closed under conjugation.
    affinity: (C, C) dependence matrix used for the grouping.
    names: optional factor name per group (from labels).
    """

    components: list[int]
    labels: list[int]
    masks: torch.Tensor
    affinity: np.ndarray
    n_groups: int
    names: list[str] = field(default_factory=list)

    def group_of(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"unknown factor {name!r}; known: {', '.join(self.names) or '(unnamed groups: use 0..' + str(self.n_groups - 1) + ')'}")
        return self.names.index(name)

    def mask_for(self, groups: list[int]) -> torch.Tensor:
        """Union of the masks of some groups (k,) bool."""
        for g in groups:
            if not 0 <= g < self.n_groups:
                raise ValueError(f"group {g} out of range [0, {self.n_groups})")
        if not groups:
            return torch.zeros(self.masks.shape[1], dtype=torch.bool)
        return self.masks[groups].any(0)


# ----------------------------------------------------------------------------- features
def static_component_features(z: torch.Tensor, basis: KoopmanBasis) -> tuple[list[int], list[np.ndarray]]:
    """Per static component, the time-averaged eigen-coordinate of every sequence.

    z (N, T, k) -> component ids and a list of (N, d) float64 arrays (d = 1 or 2).
    """
    a = to_eigen(z, basis.eig).mean(1)  # (N, k) complex
    comps: list[int] = []
    feats: list[np.ndarray] = []
    vals = basis.eig.values
    for c in torch.unique(basis.eig.component[basis.static]).tolist():
        idx = torch.nonzero(basis.eig.component == c).flatten()
        j = int(idx[0])  # eig_sorted puts the Im > 0 member first
        col = a[:, j]
        if len(idx) == 2 or abs(float(vals[j].imag)) > 0:
            feats.append(torch.stack([col.real, col.imag], 1).numpy().astype(np.float64))
        else:
            feats.append(col.real[:, None].numpy().astype(np.float64))
        comps.append(c)
    return comps, feats


# ----------------------------------------------------------------------------- dependence
def _centred_distances(x: np.ndarray) -> np.ndarray:
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))  # (n, n)
    return d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean()


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Sample distance correlation (Székely et al. 2007) of x (n, p) and y (n, q), in [0, 1].

    0 for independent variables (in the limit), 1 when y is a similarity transform of x.
    Invariant to scaling, rotation and translation of either argument.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"distance correlation needs two samples of equal size >= 2, got {len(x)} and {len(y)}")
    a, b = _centred_distances(x), _centred_distances(y)
    dcov = max((a * b).mean(), 0.0)
    dx, dy = (a * a).mean(), (b * b).mean()
    if dx <= 0 or dy <= 0:
        return 0.0
    return float(np.sqrt(dcov / np.sqrt(dx * dy)))


def dependence_matrix(features: list[np.ndarray], *, max_samples: int = 1500, seed: int = 0) -> np.ndarray:
    """(C, C) symmetric matrix of pairwise distance correlations, ones on the diagonal."""
    n = len(features[0])
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=min(n, max_samples), replace=False) if n > max_samples else np.arange(n)
    cents = [_centred_distances(f[idx]) for f in features]
    norms = [np.sqrt(max((c * c).mean(), 0.0)) for c in cents]
    m = len(features)
    out = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            if norms[i] <= 0 or norms[j] <= 0:
                v = 0.0
            else:
                v = float(np.sqrt(max((cents[i] * cents[j]).mean(), 0.0) / (norms[i] * norms[j])))
            out[i, j] = out[j, i] = v
    return out


# ----------------------------------------------------------------------------- clustering
def spectral_groups(affinity: np.ndarray, n_groups: int | None = None, *, max_groups: int | None = None,
                    seed: int = 0) -> np.ndarray:
    """Cluster items of a symmetric non-negative affinity matrix; returns labels (C,).

    Normalised spectral embedding (Ng-Jordan-Weiss) then k-means with deterministic
    farthest-point initialisation (seeded). With ``n_groups=None`` the number of groups is the
    position of the largest gap among the leading eigenvalues of D^{-1/2} W D^{-1/2}.
    Labels are canonical: groups numbered by their smallest member.
    """
    w = np.asarray(affinity, dtype=np.float64)
    m = w.shape[0]
    if w.shape != (m, m):
        raise ValueError(f"affinity must be square, got {w.shape}")
    if m == 0:
        return np.zeros(0, dtype=int)
    max_groups = min(max_groups or m, m)
    if n_groups is not None and not 1 <= n_groups <= m:
        raise ValueError(f"n_groups={n_groups} must be between 1 and the number of static components ({m})")
    w = np.clip((w + w.T) / 2, 0.0, None)
    d = w.sum(1)
    d_inv = 1.0 / np.sqrt(np.maximum(d, 1e-12))
    lap = d_inv[:, None] * w * d_inv[None, :]
    evals, evecs = np.linalg.eigh(lap)
    evals, evecs = evals[::-1], evecs[:, ::-1]  # descending
    if n_groups is None:
        if m == 1:
            n_groups = 1
        else:
            gaps = evals[: max_groups - 1] - evals[1:max_groups]
            n_groups = int(np.argmax(gaps)) + 1
    emb = evecs[:, :n_groups]
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    labels = _kmeans(emb, n_groups, seed)
    order = {old: new for new, old in enumerate(dict.fromkeys(labels.tolist()))}  # by first member
    return np.array([order[v] for v in labels.tolist()], dtype=int)


def _kmeans(x: np.ndarray, k: int, seed: int, iters: int = 100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):  # farthest point
        dist = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[int(np.argmax(dist))])
    c = np.array(centres)
    labels = np.zeros(len(x), dtype=int)
    for _ in range(iters):
        new = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        if np.array_equal(new, labels) and _ > 0:
            break
        labels = new
        for j in range(k):
            if (labels == j).any():
                c[j] = x[labels == j].mean(0)
    return labels


# ----------------------------------------------------------------------------- discovery
def _masks(basis: KoopmanBasis, comps: list[int], labels: np.ndarray, n_groups: int) -> torch.Tensor:
    k = basis.eig.component.shape[0]
    masks = torch.zeros(n_groups, k, dtype=torch.bool)
    for c, g in zip(comps, labels.tolist()):
        masks[g] |= basis.eig.component == c
    return masks


def discover_groups(z: torch.Tensor, basis: KoopmanBasis, n_groups: int | None = None, *, seed: int = 0,
                    max_samples: int = 1500) -> FactorGroups:
    """Label-free grouping of the static components of ``basis`` from latents z (N, T, k)."""
    comps, feats = static_component_features(z, basis)
    if not comps:
        raise ValueError("the basis has no static components to group")
    if n_groups is not None and n_groups > len(comps):
        raise ValueError(f"--n-factors={n_groups} exceeds the {len(comps)} static components")
    aff = dependence_matrix(feats, max_samples=max_samples, seed=seed)
    labels = spectral_groups(aff, n_groups, seed=seed)
    g = int(labels.max()) + 1
    return FactorGroups(comps, labels.tolist(), _masks(basis, comps, labels, g), aff, g)


def correlation_ratio(feature: np.ndarray, labels: np.ndarray) -> float:
    """η² = between-class / total variance of a (N, d) feature for integer labels (N,)."""
    f = np.asarray(feature, dtype=np.float64).reshape(len(feature), -1)
    lab = np.asarray(labels)
    keep = lab >= 0
    f, lab = f[keep], lab[keep]
    total = ((f - f.mean(0)) ** 2).sum()
    if total <= 0:
        return 0.0
    between = 0.0
    for v in np.unique(lab):
        sel = f[lab == v]
        between += len(sel) * ((sel.mean(0) - f.mean(0)) ** 2).sum()
    return float(between / total)


def supervised_importance(z: torch.Tensor, basis: KoopmanBasis, labels: dict[str, np.ndarray]) -> tuple[list[int], np.ndarray]:
    """Static component ids and the (C, F) matrix of η² for each factor in ``labels`` (dict order)."""
    comps, feats = static_component_features(z, basis)
    imp = np.array([[correlation_ratio(f, np.asarray(lab)) for lab in labels.values()] for f in feats])
    return comps, imp.reshape(len(comps), len(labels))


def supervised_groups(z: torch.Tensor, basis: KoopmanBasis, labels: dict[str, np.ndarray]) -> FactorGroups:
    """One group per labelled factor: each component goes to the factor it explains best (η²)."""
    comps, imp = supervised_importance(z, basis, labels)
    assign = imp.argmax(1)
    names = list(labels)
    masks = _masks(basis, comps, assign, len(names))
    comps_f, feats = static_component_features(z, basis)
    return FactorGroups(comps, assign.tolist(), masks, dependence_matrix(feats), len(names), names)


def name_groups(groups: FactorGroups, z: torch.Tensor, basis: KoopmanBasis, labels: dict[str, np.ndarray]) -> FactorGroups:
    """Name label-free groups by the factor their components explain best (one-to-one when possible)."""
    comps, imp = supervised_importance(z, basis, labels)
    pos = {c: i for i, c in enumerate(comps)}
    names_all = list(labels)
    score = np.zeros((groups.n_groups, len(names_all)))
    for c, g in zip(groups.components, groups.labels):
        score[g] += imp[pos[c]]
    names = [""] * groups.n_groups
    used: set[int] = set()
    for flat in np.argsort(-score, axis=None):  # greedy one-to-one by decreasing score
        g, f = divmod(int(flat), len(names_all))
        if names[g] or f in used:
            continue
        names[g] = names_all[f]
        used.add(f)
    names = [n or f"group{g}" for g, n in enumerate(names)]
    return FactorGroups(groups.components, groups.labels, groups.masks, groups.affinity, groups.n_groups, names)


# ----------------------------------------------------------------------------- operations
def swap_groups(z_recv: torch.Tensor, z_donor: torch.Tensor, basis: KoopmanBasis, mask: torch.Tensor) -> torch.Tensor:
    """Receiver with the eigen-subspace ``mask`` taken from the donor: (P, T, k)."""
    return z_recv - basis.project(z_recv, mask) + basis.project(z_donor, mask)


def incremental_swap(z_src: torch.Tensor, z_tgt: torch.Tensor, basis: KoopmanBasis, groups: FactorGroups,
                     order: list[int] | None = None) -> torch.Tensor:
    """Morph: step s has the target's first s groups (in ``order``); motion of the source kept.

    (P, T, k) -> (G+1, P, T, k); step 0 is the source itself.
    """
    order = list(range(groups.n_groups)) if order is None else order
    steps = [z_src]
    for s in range(1, len(order) + 1):
        steps.append(swap_groups(z_src, z_tgt, basis, groups.mask_for(order[:s])))
    return torch.stack(steps)
