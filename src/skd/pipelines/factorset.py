"""Factor groups of a run: fit them, save them beside the run, load them, name them, report them.

Groups live in coordinates of the static subspace of ONE Koopman matrix, so ``RUN/factors.json``
stores that C (fitted on ``fit_batch`` sequences) and the static coordinate system (eigen or ICA,
:mod:`skd.pipelines.factors`) next to the groups; every later operation uses exactly these instead of
refitting C on another batch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import about
from ..data.base import SequenceData
from ..files.checkpoint import atomic_write_text
from ..koopman import eig_sorted
from ..model import KoopmanAE
from . import ops
from .basis import BasisSpec, basis_from_latents, fit_indices
from .factors import (
    MOTION,
    FactorGroups,
    StaticUnits,
    discover_groups,
    eigen_units,
    name_groups,
    static_units,
    supervised_groups,
    supervised_importance,
)
from .footprint import AFFINITIES, footprint_affinity, unit_footprints
from .split import motion_scores, motion_units

__all__ = ["FACTORS_FILE", "FactorSet", "MOTION", "fit_factors", "fit_indices", "save_factors", "load_factors",
           "resolve_groups", "grouping_agreement", "factors_report"]

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

def fit_factors(model: KoopmanAE, data: SequenceData, spec: BasisSpec, *, n_groups: int | None = None,
                kind: str = "ica", separate_motion: bool = True, affinity: str = "dependence",
                footprint_pairs: int = 128) -> FactorSet:
    """Fit C on ``spec.fit_batch`` random sequences (eigen split of ``spec``), choose S, build the static units (``kind``: "ica"
    or "eigen"), set aside the units that carry motion (``separate_motion``, :mod:`skd.pipelines.split`),
    discover groups (``affinity``: "dependence", "footprint" or "both", :mod:`skd.pipelines.footprint`;
    footprints are measured on ``footprint_pairs`` swaps per unit), and name them and group
    them with labels when the data has them."""
    if affinity not in AFFINITIES:
        raise ValueError(f"unknown affinity {affinity!r}; choose one of {', '.join(AFFINITIES)}")
    if spec.split != "eigen":
        raise ValueError(f"factor groups are built on the eigen split, got split={spec.split!r}")
    seed = spec.seed
    idx = fit_indices(len(data), spec.fit_batch, seed)
    z = ops.encode(model, data.batch(idx))
    basis = basis_from_latents(z, spec)
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
        raise about("factors", FileNotFoundError(f"no factor groups in {run_dir} (no {FACTORS_FILE}); fit and save them first"))
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
        raise about("groups", ValueError(f"group list {spec!r} names no group"))
    return out

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
