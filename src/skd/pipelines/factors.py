"""Multifactor structure inside the static eigen-subspace (docs/METHOD.md §3, paper Sec. 4.3).

The paper swaps ONE static factor (only the hair) by moving a hand-picked group of static
eigen-coordinates from a donor to a receiver. Here the groups are found automatically.

Units. The static part of a latent row vector is z_S = z V_S U_S (paper Eq. 5 restricted to the
static indices S). We write it with a REAL coordinate system of the static subspace,
``r = z @ to_coords`` (d = |S| real coordinates) and ``z_S = r @ from_coords``, split into *units*
that are never divided:

* ``basis="eigen"``: one unit per static eigen-component — a real eigenvalue gives the column
  Re v_j (1 coordinate), a conjugate pair gives (Re v_j, Im v_j) with rows (2 Re u_j, −2 Im u_j)
  (2 coordinates), so a pair is never split and the coordinates are exactly (Re, Im) of A = Z V.
* ``basis="ica"`` (default): the spectral loss (Eq. 4) pulls all k_s static eigenvalues onto
  λ = 1, so in a trained model they are (nearly) REPEATED. For a repeated eigenvalue the
  eigenvectors are not unique — any invertible mixing of them is an equally valid eigenbasis —
  so individual eigen-coordinates are arbitrary mixtures of the factors. Every vector of the
  static subspace is then (nearly) an eigenvector of C, and we may choose the basis inside it.
  We choose the one in which the per-sequence static coordinates are statistically independent:
  PCA-whitening followed by FastICA (scikit-learn). If the static code is a sum of independently
  drawn factor embeddings (as Sprites' skin, pants, top and hair are drawn independently), ICA
  separates the factor subspaces up to a rotation inside each (independent subspace analysis);
  the grouping step below then collects the ICA directions that belong together.

Label-free discovery (:func:`discover_groups`). Every unit gives every sequence a feature: the
time-average of its coordinates. Units that encode the SAME factor are statistically dependent
across sequences (after ICA they are uncorrelated but still dependent), units of DIFFERENT
factors are independent. Distance correlation measures that dependence (any, also non-linear),
spectral clustering of the affinity gives the groups, and the number of groups is the largest
eigengap unless ``n_groups`` is given (:mod:`skd.pipelines.dependence`).

Supervised mapping (:func:`supervised_groups`): with labels, the correlation ratio η² of each
unit's feature for each factor (between-class / total variance) scores how much a unit "knows"
a factor; it names the label-free groups and gives a supervised grouping of the same units.

Operations act through real (k, k) projectors P = to_coords[:, J] @ from_coords[J, :] onto the
coordinates J of the chosen groups: the projectors of all groups sum to the static projector,
and each is idempotent and annihilates the others (tests/test_factors.py).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .dependence import dependence_matrix, distance_correlation, spectral_groups  # noqa: F401  (re-exported)
from .footprint import combine_affinities
from ..koopman import KoopmanBasis
from ..koopman.subspace import static_coordinates

BASES = ("ica", "eigen")


@dataclass(frozen=True)
class StaticUnits:
    """A real coordinate system of the static subspace, split into indivisible units.

    kind: "eigen" or "ica". to_coords (k, d) float64: r = z @ to_coords. from_coords (d, k)
    float64: z_S = r @ from_coords (from_coords @ to_coords = I_d). columns: the coordinate
    columns of each unit. ids: a stable id per unit (eigen: the component id of ``eig_sorted``;
    ica: the source number).
    """

    kind: str
    to_coords: torch.Tensor
    from_coords: torch.Tensor
    columns: list[list[int]]
    ids: list[int]

    @property
    def dim(self) -> int:
        return int(self.to_coords.shape[1])

    def coords(self, z: torch.Tensor) -> torch.Tensor:
        """Real static coordinates (..., d) float64 of latents z (..., k)."""
        return z.to(torch.float64) @ self.to_coords

    def features(self, z: torch.Tensor) -> list[np.ndarray]:
        """Per unit, the time-averaged coordinates of every sequence: z (N, T, k) -> [(N, d_u)]."""
        r = self.coords(z).mean(1).numpy()  # (N, d)
        return [r[:, cols] for cols in self.columns]

    def projector(self, units: list[int]) -> torch.Tensor:
        """(k, k) real projector onto the coordinates of the given unit positions (row vectors: z @ P)."""
        cols = [c for u in units for c in self.columns[u]]
        k = self.to_coords.shape[0]
        if not cols:
            return torch.zeros(k, k, dtype=torch.float64)
        return self.to_coords[:, cols] @ self.from_coords[cols, :]


def eigen_units(basis: KoopmanBasis) -> StaticUnits:
    """The static eigen-components of ``basis`` as real units (see the module docstring)."""
    eig = basis.eig
    to_cols, from_rows, columns, ids = [], [], [], []
    for c in torch.unique(eig.component[basis.static]).tolist():
        idx = torch.nonzero(eig.component == c).flatten()
        j = int(idx[0])  # eig_sorted puts the Im > 0 member first
        v, u = eig.vectors[:, j], eig.inverse[j, :]
        start = len(to_cols)
        if len(idx) == 2:
            to_cols += [v.real, v.imag]
            from_rows += [2 * u.real, -2 * u.imag]
        else:
            to_cols.append(v.real)
            from_rows.append(u.real)
        columns.append(list(range(start, len(to_cols))))
        ids.append(c)
    if not columns:
        raise ValueError("the basis has no static components to group")
    return StaticUnits("eigen", torch.stack(to_cols, 1).to(torch.float64), torch.stack(from_rows, 0).to(torch.float64),
                       columns, ids)


def ica_units(z: torch.Tensor, basis: KoopmanBasis, *, seed: int = 0, rel_tol: float = 1e-9,
              max_iter: int = 2000) -> StaticUnits:
    """Independent directions of the static subspace: whitening + FastICA of the per-sequence
    time-averaged static coordinates of z (N, T, k). One unit per direction.

    The static subspace itself comes from the ordered real Schur form of C
    (:func:`skd.koopman.subspace.static_coordinates`), not from eigenvectors, which are unreliable for
    the (nearly) repeated eigenvalue λ = 1 that the spectral loss creates.

    Directions whose variance across sequences is below ``rel_tol`` × the largest are not given
    to ICA (they cannot be whitened); they are kept as extra units so that the projectors still
    sum to the static projector.
    """
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    s_mask = basis.static
    base_to, base_from = static_coordinates(basis.C, basis.eig.values[s_mask], basis.eig.values[~s_mask])
    x = (z.to(torch.float64) @ base_to).mean(1).numpy()  # (N, d)
    n, d = x.shape
    if n < 3:
        raise ValueError(f"ICA of the static coordinates needs at least 3 sequences, got {n}")
    xc = x - x.mean(0)
    cov = xc.T @ xc / (n - 1)
    evals, evecs = np.linalg.eigh((cov + cov.T) / 2)  # ascending
    order = np.argsort(-evals, kind="stable")
    evals, evecs = evals[order], evecs[:, order]
    if not np.all(np.isfinite(evals)) or evals[0] <= 0:
        raise ValueError("the static coordinates do not vary across sequences; nothing to group")
    keep = evals > rel_tol * evals[0]
    m = int(keep.sum())
    white = evecs[:, :m] / np.sqrt(evals[:m])  # (d, m)
    y = xc @ white
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ica = FastICA(n_components=m, whiten=False, fun="logcosh", max_iter=max_iter, tol=1e-5, random_state=seed)
        ica.fit(y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        warnings.warn(f"FastICA did not converge in {max_iter} iterations; the static basis may be only roughly independent",
                      RuntimeWarning, stacklevel=2)
    unmix = np.asarray(ica.components_, dtype=np.float64)  # (m, m), sources = y @ unmix.T
    g = white @ unmix.T  # (d, m): sources = xc @ g
    g = g / np.maximum(np.sqrt(((xc @ g) ** 2).mean(0)), 1e-300)  # unit-variance sources
    # sign convention (ICA's sign is arbitrary): positive skewness
    skew = ((xc @ g) ** 3).mean(0)
    g = g * np.where(skew < 0, -1.0, 1.0)
    full = np.concatenate([g, evecs[:, m:]], 1)  # (d, d)
    cond = np.linalg.cond(full)
    if not np.isfinite(cond) or cond > 1e12:
        raise ValueError(f"the ICA basis of the static subspace is singular (condition number {cond:.1e})")
    inv = np.linalg.inv(full)
    to_c = base_to @ torch.from_numpy(full)
    from_c = torch.from_numpy(inv) @ base_from
    return StaticUnits("ica", to_c, from_c, [[j] for j in range(d)], list(range(d)))


def static_units(z: torch.Tensor, basis: KoopmanBasis, kind: str = "ica", *, seed: int = 0) -> StaticUnits:
    if kind not in BASES:
        raise ValueError(f"unknown factor basis {kind!r}; choose one of {', '.join(BASES)}")
    return ica_units(z, basis, seed=seed) if kind == "ica" else eigen_units(basis)


@dataclass(frozen=True)
class FactorGroups:
    """Groups of static units.

    units: the coordinate system and its units. labels: group label (0..n_groups-1) of each unit.
    affinity: (U, U) dependence matrix used for the grouping. names: optional factor name per group.
    """

    units: StaticUnits
    labels: list[int]
    affinity: np.ndarray
    n_groups: int
    names: list[str] = field(default_factory=list)

    @property
    def components(self) -> list[int]:
        return self.units.ids

    def named_members(self) -> dict[str, list[int]]:
        """{group name (or its index as text): unit positions}; two groupings are the same partition
        of the same units under the same names when these dicts are equal."""
        return {(self.names[g] if self.names else str(g)): self.members(g) for g in range(self.n_groups)}

    def members(self, group: int) -> list[int]:
        """Unit positions in one group."""
        return [u for u, g in enumerate(self.labels) if g == group]

    def group_of(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"unknown factor {name!r}; known: {', '.join(self.names) or '(unnamed groups: use 0..' + str(self.n_groups - 1) + ')'}")
        return self.names.index(name)

    def projector_for(self, groups: list[int]) -> torch.Tensor:
        """(k, k) real projector onto the union of some groups."""
        for g in groups:
            if not 0 <= g < self.n_groups:
                raise ValueError(f"group {g} out of range [0, {self.n_groups})")
        return self.units.projector([u for g in groups for u in self.members(g)])

    def eigen_indices(self, basis: KoopmanBasis, group: int) -> list[int]:
        """Eigen-indices of a group (eigen units only; an ICA unit spans all static indices)."""
        if self.units.kind != "eigen":
            return torch.nonzero(basis.static).flatten().tolist()
        comps = [self.units.ids[u] for u in self.members(group)]
        return [i for i, c in enumerate(basis.eig.component.tolist()) if c in comps]


# ----------------------------------------------------------------------------- discovery
def _canonical(labels: np.ndarray, units: StaticUnits, feats: list[np.ndarray]) -> np.ndarray:
    """Renumber groups by decreasing total variance of their features (ties by first member)."""
    g = int(labels.max()) + 1
    var = [sum(float(feats[u].var(0).sum()) for u in range(len(feats)) if labels[u] == j) for j in range(g)]
    first = [int(np.nonzero(labels == j)[0][0]) for j in range(g)]
    order = sorted(range(g), key=lambda j: (-round(var[j], 9), first[j]))
    remap = {old: new for new, old in enumerate(order)}
    return np.array([remap[v] for v in labels.tolist()], dtype=int)


MOTION = "motion"  # name of the group of static directions that carry motion (skd.pipelines.split)


class TooManyGroups(ValueError):
    """More factor groups were asked for than there are static directions to group."""


def discover_groups(z: torch.Tensor, basis: KoopmanBasis, n_groups: int | None = None, *, seed: int = 0,
                    max_samples: int = 1500, kind: str = "ica", units: StaticUnits | None = None,
                    motion: list[int] | None = None, affinity: str = "dependence",
                    footprint: np.ndarray | None = None) -> FactorGroups:
    """Label-free grouping of the static subspace of ``basis`` from latents z (N, T, k).

    ``motion``: unit positions that carry motion (:func:`skd.pipelines.split.motion_units`); they are set
    aside as one extra group named "motion" and the other units are grouped into ``n_groups``.
    ``affinity``: what ties units together — "dependence" (distance correlation across
    sequences), "footprint" (``footprint``, the (U, U) decoder-footprint affinity of
    :mod:`skd.pipelines.footprint`) or "both" (their geometric mean).
    """
    units = units or static_units(z, basis, kind, seed=seed)
    motion = sorted(set(motion or []))
    rest = [u for u in range(len(units.columns)) if u not in motion]
    if not rest:
        raise ValueError("every static direction carries motion; there is no appearance to group")
    if n_groups is not None and n_groups > len(rest):
        what = "static components" if units.kind == "eigen" else "static directions"
        extra = f" ({len(motion)} more carry motion)" if motion else ""
        raise TooManyGroups(f"n_groups={n_groups} exceeds the {len(rest)} {what}{extra}")
    feats = units.features(z)
    dep = (dependence_matrix(feats, max_samples=max_samples, seed=seed) if affinity != "footprint"
           else np.eye(len(feats)))  # footprint alone: the O(U² n²) distance correlations are not needed
    aff = combine_affinities(dep, footprint, affinity)
    sub = aff[np.ix_(rest, rest)]
    # eigen units may each hold a whole factor, so their self-affinity counts; single ICA directions
    # are weakly tied to their group and cluster better with a zero diagonal (docs/MULTIFACTOR.md)
    lab = spectral_groups(sub, n_groups, seed=seed, self_affinity=0.0 if units.kind == "ica" else None)
    if units.kind == "ica":
        lab = _canonical(lab, units, [feats[u] for u in rest])
    g = int(lab.max()) + 1
    labels = np.full(len(units.columns), g, dtype=int)
    labels[rest] = lab
    names = []
    if motion:
        names = [""] * g + [MOTION]
        g += 1
    return FactorGroups(units, labels.tolist(), aff, g, names)


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


def supervised_importance(z: torch.Tensor, units: StaticUnits, labels: dict[str, np.ndarray]) -> np.ndarray:
    """(U, F) matrix of η² of each unit's feature for each factor in ``labels`` (dict order)."""
    feats = units.features(z)
    imp = np.array([[correlation_ratio(f, np.asarray(lab)) for lab in labels.values()] for f in feats])
    return imp.reshape(len(feats), len(labels))


def supervised_groups(z: torch.Tensor, units: StaticUnits, labels: dict[str, np.ndarray],
                      motion_labels: dict[str, np.ndarray] | None = None) -> FactorGroups:
    """One group per labelled static factor: each unit goes to the factor it explains best (η²).

    With ``motion_labels`` (dynamic factors such as the action), a unit that explains a dynamic
    factor better than every static one goes to an extra group named "motion".
    """
    imp = supervised_importance(z, units, labels)
    assign = imp.argmax(1)
    names = list(labels)
    if motion_labels:
        dyn = supervised_importance(z, units, motion_labels).max(1)
        moving = dyn > imp.max(1)
        if moving.any():
            assign = np.where(moving, len(names), assign)
            names.append(MOTION)
    return FactorGroups(units, assign.tolist(), dependence_matrix(units.features(z)), len(names), names)


def name_groups(groups: FactorGroups, z: torch.Tensor, labels: dict[str, np.ndarray]) -> FactorGroups:
    """Name label-free groups by the factor their units explain best (one-to-one when possible)."""
    imp = supervised_importance(z, groups.units, labels)
    names_all = list(labels)
    score = np.zeros((groups.n_groups, len(names_all)))
    for u, g in enumerate(groups.labels):
        score[g] += imp[u]
    names = [MOTION if groups.names and groups.names[g] == MOTION else "" for g in range(groups.n_groups)]
    used: set[int] = set()
    for flat in np.argsort(-score, axis=None, kind="stable"):  # greedy one-to-one by decreasing score
        g, f = divmod(int(flat), len(names_all))
        if names[g] or f in used:
            continue
        names[g] = names_all[f]
        used.add(f)
    names = [n or f"group{g}" for g, n in enumerate(names)]
    return FactorGroups(groups.units, groups.labels, groups.affinity, groups.n_groups, names)


# ----------------------------------------------------------------------------- operations
def swap_groups(z_recv: torch.Tensor, z_donor: torch.Tensor, projector: torch.Tensor) -> torch.Tensor:
    """Receiver with the part ``projector`` (k, k) taken from the donor: z_r + (z_d − z_r) P, (P, T, k)."""
    if z_recv.shape != z_donor.shape:
        raise ValueError(f"swap needs equal shapes, got {tuple(z_recv.shape)} and {tuple(z_donor.shape)}")
    delta = (z_donor.to(torch.float64) - z_recv.to(torch.float64)) @ projector
    return (z_recv.to(torch.float64) + delta).to(z_recv.dtype)


def incremental_swap(z_src: torch.Tensor, z_tgt: torch.Tensor, groups: FactorGroups,
                     order: list[int] | None = None) -> torch.Tensor:
    """Morph: step s has the target's first s groups (in ``order``); motion of the source kept.

    (P, T, k) -> (G+1, P, T, k); step 0 is the source itself.
    """
    order = list(range(groups.n_groups)) if order is None else order
    steps = [z_src]
    for s in range(1, len(order) + 1):
        steps.append(swap_groups(z_src, z_tgt, groups.projector_for(order[:s])))
    return torch.stack(steps)
