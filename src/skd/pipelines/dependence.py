"""Statistical dependence between feature blocks and clustering of an affinity matrix.

Used by :mod:`skd.pipelines.factors` to group static coordinates into factors: distance correlation
(Székely, Rizzo & Bakirov 2007) measures any, also non-linear, dependence between two blocks of
features; normalised spectral clustering (Ng, Jordan & Weiss 2001) with an eigengap rule splits
the resulting affinity matrix into groups. Pure functions of numpy arrays.
"""
from __future__ import annotations

import numpy as np


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
                    seed: int = 0, self_affinity: float | None = None) -> np.ndarray:
    """Cluster items of a symmetric non-negative affinity matrix; returns labels (C,).

    Normalised spectral embedding (Ng-Jordan-Weiss) then k-means with deterministic
    farthest-point initialisation (seeded). With ``n_groups=None`` the number of groups is the
    position of the largest gap among the leading eigenvalues of D^{-1/2} W D^{-1/2}.
    Labels are canonical: groups numbered by their smallest member. ``self_affinity`` replaces the
    diagonal before clustering (None keeps it; 0 is the Ng-Jordan-Weiss convention, better when
    every item is weakly tied to its group, e.g. single ICA directions).
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
    if self_affinity is not None:
        w = w.copy()
        np.fill_diagonal(w, self_affinity)
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
