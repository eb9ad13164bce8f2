"""Pipelines around factor groups: fit and save them for a run, swap subsets, morph, and the
multifactor metric of EVALUATION.md §3.

Groups live in coordinates of the static subspace of ONE Koopman matrix, so ``RUN/factors.json``
stores that C (fitted on ``fit_batch`` sequences) and the static coordinate system (eigen or ICA,
:mod:`skd.pipelines.factors`) next to the groups; every later operation uses exactly these instead of
refitting C on another batch.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..pipelines import ops
from ..render import images as viz
from ..files.checkpoint import atomic_write_text
from ..config import Config
from ..data.base import SequenceData
from ..pipelines.factors import (
    MOTION,
    FactorGroups,
    StaticUnits,
    discover_groups,
    eigen_units,
    name_groups,
    static_units,
    supervised_groups,
    supervised_importance,
    swap_groups,
)
from ..pipelines.footprint import AFFINITIES, footprint_affinity, unit_footprints
from .judge import Judge, check_judge_matches, judge_probs
from ..koopman import eig_sorted
from ..model import KoopmanAE
from ..pipelines.split import motion_scores, motion_units

FACTORS_FILE = "factors.json"


@dataclass(frozen=True)
class FactorSet:
    """The basis and its label-free (and, with labels, supervised) groups."""

    basis: ops.KoopmanBasis
    free: FactorGroups
    supervised: FactorGroups | None
    importance: np.ndarray | None  # (U, F) η² of static units × labelled static factors
    factor_names: list[str]


def _static_labels(data: SequenceData) -> dict[str, np.ndarray]:
    return {f.name: data.labels[f.name].numpy() for f in data.static_factors() if f.name in data.labels}


def fit_indices(n: int, fit_batch: int, seed: int) -> torch.Tensor:
    """The ``min(fit_batch, n)`` sequences (random, seeded) that :func:`fit_factors` fits on."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(fit_batch, n)]


def fit_factors(model: KoopmanAE, cfg: Config, data: SequenceData, *, n_groups: int | None = None,
                fit_batch: int = 1024, seed: int = 0, kind: str = "ica", separate_motion: bool = True,
                affinity: str = "dependence", footprint_pairs: int = 128) -> FactorSet:
    """Fit C on ``fit_batch`` random sequences, choose S, build the static units (``kind``: "ica"
    or "eigen"), set aside the units that carry motion (``separate_motion``, :mod:`skd.pipelines.split`),
    discover groups (``affinity``: "dependence", "footprint" or "both", :mod:`skd.pipelines.footprint`;
    footprints are measured on ``footprint_pairs`` swaps per unit), and name them and group
    them with labels when the data has them."""
    if affinity not in AFFINITIES:
        raise ValueError(f"unknown affinity {affinity!r}; choose one of {', '.join(AFFINITIES)}")
    idx = fit_indices(len(data), fit_batch, seed)
    z = ops.encode(model, data.batch(idx))
    basis = ops.fit_basis(z, min(cfg.loss.static_size, cfg.model.k), cfg.loss.static_criterion,
                          ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
    units = static_units(z, basis, kind, seed=seed)
    motion = motion_units(motion_scores(z, units, seed=seed)) if separate_motion else []
    fp = None
    if affinity != "dependence":
        projs = [units.projector([u]) for u in range(len(units.columns))]
        fp = footprint_affinity(unit_footprints(lambda zz: ops.decode(model, zz), z, projs,
                                                pairs=footprint_pairs, seed=seed))
    free = discover_groups(z, basis, n_groups, seed=seed, units=units, motion=motion, affinity=affinity, footprint=fp)
    labels = {k: v[idx.numpy()] for k, v in _static_labels(data).items()}
    dyn_labels = {f.name: data.labels[f.name].numpy()[idx.numpy()] for f in data.factors
                  if f.kind == "dynamic" and f.name in data.labels}
    sup = imp = None
    if labels:
        free = name_groups(free, z, labels)
        sup = supervised_groups(z, units, labels, dyn_labels if separate_motion else None)
        imp = supervised_importance(z, units, labels)
    return FactorSet(basis, free, sup, imp, list(labels))


def _groups_json(g: FactorGroups, basis: ops.KoopmanBasis) -> dict:
    return {"n_groups": g.n_groups, "names": g.names, "labels": g.labels,
            "indices": [g.eigen_indices(basis, gi) for gi in range(g.n_groups)], "affinity": g.affinity.tolist()}


def _units_json(u: StaticUnits) -> dict:
    return {"kind": u.kind, "ids": u.ids, "columns": u.columns, "to_coords": u.to_coords.tolist(),
            "from_coords": u.from_coords.tolist()}


def save_factors(fs: FactorSet, run_dir: Path, meta: dict) -> Path:
    payload = {"format": "skd-factors", "version": 2, "C": fs.basis.C.tolist(),
               "static_indices": torch.nonzero(fs.basis.static).flatten().tolist(),
               "units": _units_json(fs.free.units),
               "free": _groups_json(fs.free, fs.basis),
               "supervised": _groups_json(fs.supervised, fs.basis) if fs.supervised else None,
               "importance": fs.importance.tolist() if fs.importance is not None else None,
               "factor_names": fs.factor_names, **meta}
    return atomic_write_text(run_dir / FACTORS_FILE, json.dumps(payload, indent=1) + "\n")


def _units_from_json(d: dict | None, basis: ops.KoopmanBasis) -> StaticUnits:
    if d is None:  # version 1 files: eigen units of the stored C
        return eigen_units(basis)
    k = basis.static.shape[0]
    to_c = torch.tensor(d["to_coords"], dtype=torch.float64)
    from_c = torch.tensor(d["from_coords"], dtype=torch.float64)
    if d["kind"] not in ("eigen", "ica") or to_c.ndim != 2 or to_c.shape[0] != k or from_c.shape != to_c.T.shape:
        raise ValueError(f"static units of kind {d['kind']!r} with shapes {tuple(to_c.shape)}/{tuple(from_c.shape)} do not fit k={k}")
    if not (torch.isfinite(to_c).all() and torch.isfinite(from_c).all()):
        raise ValueError("static units hold non-finite numbers")
    return StaticUnits(d["kind"], to_c, from_c, [list(map(int, c)) for c in d["columns"]], list(map(int, d["ids"])))


def _groups_from_json(d: dict, units: StaticUnits) -> FactorGroups:
    labels = list(map(int, d["labels"]))
    if len(labels) != len(units.columns) or any(not 0 <= v < d["n_groups"] for v in labels):
        raise ValueError(f"{len(labels)} group labels for {len(units.columns)} static units")
    return FactorGroups(units, labels, np.array(d["affinity"]), int(d["n_groups"]), list(d["names"]))


def load_factors(run_dir: str | Path) -> FactorSet:
    path = Path(run_dir) / FACTORS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no factor groups in {run_dir}: run `skd factors --run {run_dir}` first")
    try:
        d = json.loads(path.read_text())
        if d.get("format") != "skd-factors" or d.get("version") not in (1, 2):
            raise ValueError(f"not an skd factors file (format {d.get('format')!r}, version {d.get('version')!r})")
        C = torch.tensor(d["C"], dtype=torch.float64)
        eig = eig_sorted(C)
        static = torch.zeros(C.shape[0], dtype=torch.bool)
        static[d["static_indices"]] = True
        basis = ops.KoopmanBasis(C, eig, static)
        units = _units_from_json(d.get("units"), basis)
        free = _groups_from_json(d["free"], units)
        sup = _groups_from_json(d["supervised"], units) if d.get("supervised") else None
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, json.JSONDecodeError) as e:
        raise ValueError(f"corrupt {path}: {e}") from e
    imp = np.array(d["importance"]) if d.get("importance") is not None else None
    return FactorSet(basis, free, sup, imp, d.get("factor_names", []))


def resolve_groups(groups: FactorGroups, spec: str) -> list[int]:
    """'hair,top' or '0,2' -> group indices."""
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        out.append(int(item) if item.isdigit() else groups.group_of(item))
        if not 0 <= out[-1] < groups.n_groups:
            raise ValueError(f"group {out[-1]} out of range [0, {groups.n_groups})")
    if not out:
        raise ValueError("--factors is empty")
    return out


# ----------------------------------------------------------------------------- pictures
def subset_grid(model: KoopmanAE, data: SequenceData, fs: FactorSet, pair: tuple[int, int], out: Path,
                groups: FactorGroups | None = None) -> Path:
    """All 2^G - 1 non-empty subsets of groups swapped from donor j into receiver i (G ≤ 5)."""
    groups = groups or fs.free
    app = [g for g in range(groups.n_groups) if not groups.names or groups.names[g] != MOTION]
    if len(app) > 5:
        raise ValueError(f"{len(app)} groups give too many subsets for one grid (at most 5)")
    i, j = pair
    x = data.batch([i, j])
    z = ops.encode(model, x)
    rows, labels = [x[0], x[1]], [f"receiver #{i}", f"donor #{j}"]
    names = groups.names or [str(g) for g in range(groups.n_groups)]
    subsets = [s for r in range(1, len(app) + 1) for s in itertools.combinations(app, r)]
    zs = torch.cat([swap_groups(z[:1], z[1:], groups.projector_for(list(s))) for s in subsets])
    frames = ops.decode(model, zs)
    for s, fr in zip(subsets, frames):
        rows.append(fr)
        labels.append("+".join(names[g] for g in s))
    return viz.save_grid(torch.stack(rows), out, row_labels=labels)


def morph_rows(model: KoopmanAE, data: SequenceData, fs: FactorSet, pairs: list[tuple[int, int]],
               order: list[int], groups: FactorGroups) -> tuple[torch.Tensor, list[str]]:
    """Incremental swap rows for each pair: source, +group1, +group1+group2, …, target."""
    from ..pipelines.factors import incremental_swap

    names = groups.names or [str(g) for g in range(groups.n_groups)]
    rows, labels = [], []
    for i, j in pairs:
        z = ops.encode(model, data.batch([i, j]))
        steps = incremental_swap(z[:1], z[1:], groups, order)[:, 0]  # (G+1, T, k)
        frames = ops.decode(model, steps)
        rows += [*frames, data.batch([j])[0]]
        labels += [f"source #{i}"] + ["+" + names[g] for g in order] + [f"target #{j}"]
    return torch.stack(rows), labels


# ----------------------------------------------------------------------------- metric
def evaluate_multifactor(model: KoopmanAE, judge: Judge, data: SequenceData, fs: FactorSet, groups: FactorGroups,
                         *, batch_size: int = 256, seed: int = 0, progress: bool = True) -> dict:
    """EVALUATION.md §3: swap one named group from a random donor into every test sequence.

    Returns {"matrix": {group: {head: acc}}, "on_target", "off_target", "action", "mean", "chance"}
    where the matrix entry is the accuracy against the DONOR's label for the group's own head and
    against the RECEIVER's label for every other head. ``fs`` is the factor set the groups
    belong to (kept for the call's symmetry with the other pipelines).
    """
    return evaluate_multifactor_judges(model, [judge], data, groups, batch_size=batch_size, seed=seed,
                                       progress=progress)[0]


def evaluate_multifactor_judges(model: KoopmanAE, judges: list[Judge], data: SequenceData, groups: FactorGroups,
                                *, batch_size: int = 256, seed: int = 0, progress: bool = True) -> list[dict]:
    """:func:`evaluate_multifactor` with every swapped batch read by each judge (same donors,
    same frames): one result per judge, in order."""
    if not judges:
        raise ValueError("evaluate_multifactor_judges needs at least one judge")
    for judge in judges:
        check_judge_matches(judge, data)
    static_heads = [f.name for f in judges[0].factors if f.kind == "static"]
    named = [g for g in range(groups.n_groups) if groups.names and groups.names[g] in static_heads]
    if not named:
        raise ValueError("no factor group is named after a judge head; run `skd factors` on labelled data")
    g = torch.Generator().manual_seed(seed)
    n = len(data)
    donors = (torch.arange(n) + torch.randint(1, n, (n,), generator=g)) % n
    heads = [[f.name for f in judge.factors] for judge in judges]
    hits = [{groups.names[gi]: dict.fromkeys(hs, 0) for gi in named} for hs in heads]
    bar = tqdm(total=len(named) * ((n + batch_size - 1) // batch_size), disable=not progress, desc="multifactor")
    # every sequence is encoded once and its latents (N, T, k) reused by every group
    z_all = torch.cat([ops.encode(model, data.batch(torch.arange(a, min(a + batch_size, n))))
                       for a in range(0, n, batch_size)])
    for gi in named:
        f = groups.names[gi]
        proj = groups.projector_for([gi])
        for a in range(0, n, batch_size):
            recv = torch.arange(a, min(a + batch_size, n))
            don = donors[recv]
            frames = ops.decode(model, swap_groups(z_all[recv], z_all[don], proj))
            for j, judge in enumerate(judges):
                probs = judge_probs(judge, frames)
                for h in heads[j]:
                    want = data.labels[h][don] if h == f else data.labels[h][recv]
                    hits[j][f][h] += int((probs[h].argmax(-1) == want).sum())
            bar.update(1)
    bar.close()
    return [_multifactor_result(judge, hit, n) for judge, hit in zip(judges, hits)]


def _multifactor_result(judge: Judge, hits: dict[str, dict[str, int]], n: int) -> dict:
    static_heads = [f.name for f in judge.factors if f.kind == "static"]
    dyn_heads = [f.name for f in judge.factors if f.kind == "dynamic"]
    matrix = {f: {h: c / n for h, c in row.items()} for f, row in hits.items()}
    on = {f: matrix[f][f] for f in matrix}
    off = {f: float(np.mean([matrix[f][h] for h in static_heads if h != f])) for f in matrix}
    act = {f: float(np.mean([matrix[f][h] for h in dyn_heads])) if dyn_heads else None for f in matrix}
    return {"matrix": matrix, "on_target": on, "off_target": off, "action": act,
            "mean": {f: (on[f] + off[f]) / 2 for f in matrix},
            "chance": {f.name: 1.0 / f.size for f in judge.factors}, "n": n}


def single_factor_grid(model: KoopmanAE, data: SequenceData, groups: FactorGroups, pairs: list[tuple[int, int]],
                       out: Path) -> Path:
    """For each pair (receiver i, donor j): the receiver, the donor, then one row per named
    appearance group with only that group swapped in from the donor (motion stays the receiver's)."""
    app = [g for g in range(groups.n_groups) if not groups.names or groups.names[g] != MOTION]
    names = groups.names or [str(g) for g in range(groups.n_groups)]
    rows, labels = [], []
    for i, j in pairs:
        x = data.batch([i, j])
        z = ops.encode(model, x)  # (2, T, k)
        zs = torch.cat([swap_groups(z[:1], z[1:], groups.projector_for([gi])) for gi in app])
        rows += [x[0], x[1], *ops.decode(model, zs)]
        labels += [f"receiver #{i}", f"donor #{j}", *(f"only {names[gi]}" for gi in app)]
    return viz.save_grid(torch.stack(rows), out, row_labels=labels)


@torch.no_grad()
def reconstruction_accuracy(model: KoopmanAE, judge: Judge, data: SequenceData, *, batch_size: int = 256) -> dict[str, float]:
    """Judge accuracy per head on plain reconstructions dec(enc(x)) against the true labels.

    The ceiling of the multifactor matrix: a swapped factor cannot be read more reliably than
    an unswapped one.
    """
    check_judge_matches(judge, data)
    heads = [f.name for f in judge.factors]
    hits = dict.fromkeys(heads, 0)
    n = len(data)
    for a in range(0, n, batch_size):
        idx = torch.arange(a, min(a + batch_size, n))
        probs = judge_probs(judge, ops.decode(model, ops.encode(model, data.batch(idx))))
        for h in heads:
            hits[h] += int((probs[h].argmax(-1) == data.labels[h][idx]).sum())
    return {h: c / n for h, c in hits.items()}


def multifactor_markdown(res: dict, title: str) -> str:
    heads = list(next(iter(res["matrix"].values())))
    lines = [f"**{title}** (rows: swapped group; columns: judge head; own head vs donor, others vs receiver; n = {res['n']})", "",
             "| group | " + " | ".join(heads) + " | on-target | off-target | action kept |",
             "|---|" + "---|" * (len(heads) + 3)]
    for f, row in res["matrix"].items():
        act = res["action"][f]
        lines.append(f"| {f} | " + " | ".join(f"{100 * row[h]:.1f}" for h in heads)
                     + f" | {100 * res['on_target'][f]:.1f} | {100 * res['off_target'][f]:.1f} | "
                     + (f"{100 * act:.1f}" if act is not None else "n/a") + " |")
    lines.append("| chance | " + " | ".join(f"{100 * res['chance'][h]:.1f}" for h in heads) + " | | | |")
    return "\n".join(lines)


def grouping_agreement(free: FactorGroups, supervised: FactorGroups) -> tuple[int, int]:
    """(units whose label-free group has the same name as their supervised group, all units)."""
    if len(free.labels) != len(supervised.labels) or not free.names or not supervised.names:
        raise ValueError("groupings of different units, or unnamed groups, cannot be compared")
    same = sum(free.names[a] == supervised.names[b] for a, b in zip(free.labels, supervised.labels))
    return int(same), len(free.labels)


def factors_report(fs: FactorSet) -> str:
    units = fs.free.units
    eig = fs.basis.eig

    def describe(g: FactorGroups) -> list[str]:
        out = []
        for gi in range(g.n_groups):
            mem = g.members(gi)
            name = g.names[gi] if g.names else f"group{gi}"
            dims = sum(len(units.columns[u]) for u in mem)
            if units.kind == "eigen":
                vals = [eig.values[eig.component == units.ids[u]][0] for u in mem]
                what = ", ".join(f"{complex(v).real:.3f}{complex(v).imag:+.3f}i" for v in vals)
            else:
                what = ", ".join(str(units.ids[u]) for u in mem)
            out.append(f"| {name} | {len(mem)} | {dims} | {what} |")
        return out

    n_static = int(fs.basis.static.sum())
    n_comp = len(torch.unique(eig.component[fs.basis.static]))
    vals = eig.values[fs.basis.static]
    unit_word = "components" if units.kind == "eigen" else "ICA directions"
    col = "eigenvalues" if units.kind == "eigen" else "directions"
    lines = ["# Static factor groups", "",
             f"{n_static} static eigenvalues in {n_comp} components; |λ − 1| from {float((vals - 1).abs().min()):.4f} "
             f"to {float((vals - 1).abs().max()):.4f}. Basis: **{units.kind}** ({len(units.columns)} units, {units.dim} real "
             "coordinates).", "", "## Label-free groups", "",
             f"| group | {unit_word} | coordinates | {col} |", "|---|---|---|---|", *describe(fs.free)]
    if fs.supervised is not None and fs.importance is not None:
        agree, total = grouping_agreement(fs.free, fs.supervised)
        lines += ["", "## Supervised groups (each unit to the factor with the largest η²)", "",
                  f"| group | {unit_word} | coordinates | {col} |", "|---|---|---|---|", *describe(fs.supervised), "",
                  f"The label-free groups put **{agree} of {total}** units in the group of the same name as the "
                  "supervised mapping.",
                  "", "## η² of each static unit for each factor", "",
                  "| unit | label-free group | " + " | ".join(fs.factor_names) + " |", "|---|---|" + "---|" * len(fs.factor_names)]
        names = fs.free.names or [f"group{g}" for g in range(fs.free.n_groups)]
        for u, row in enumerate(fs.importance):
            lines.append(f"| {units.ids[u]} | {names[fs.free.labels[u]]} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines) + "\n"
