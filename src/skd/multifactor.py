"""Pipelines around factor groups: fit and save them for a run, swap subsets, morph, and the
multifactor metric of EVALUATION.md §3.

Groups live in eigen-coordinates of ONE Koopman matrix, so ``RUN/factors.json`` stores that C
(fitted on ``fit_batch`` sequences) next to the groups; every later operation rebuilds the same
basis from it instead of refitting C on another batch.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import ops, viz
from .checkpoint import atomic_write_text
from .config import Config
from .data.base import SequenceData
from .factors import FactorGroups, discover_groups, name_groups, supervised_groups, supervised_importance, swap_groups
from .judge import Judge, check_judge_matches, judge_probs
from .koopman import eig_sorted
from .model import KoopmanAE

FACTORS_FILE = "factors.json"


@dataclass(frozen=True)
class FactorSet:
    """The basis and its label-free (and, with labels, supervised) groups."""

    basis: ops.KoopmanBasis
    free: FactorGroups
    supervised: FactorGroups | None
    importance: np.ndarray | None  # (C, F) η² of static components × labelled static factors
    factor_names: list[str]


def _static_labels(data: SequenceData) -> dict[str, np.ndarray]:
    return {f.name: data.labels[f.name].numpy() for f in data.static_factors() if f.name in data.labels}


def fit_factors(model: KoopmanAE, cfg: Config, data: SequenceData, *, n_groups: int | None = None,
                fit_batch: int = 1024, seed: int = 0) -> FactorSet:
    """Fit C on ``fit_batch`` random sequences, choose S, discover groups, name them if labelled."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[: min(fit_batch, len(data))]
    z = ops.encode(model, data.batch(idx))
    basis = ops.fit_basis(z, min(cfg.loss.static_size, cfg.model.k), cfg.loss.static_criterion,
                          ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
    free = discover_groups(z, basis, n_groups, seed=seed)
    labels = {k: v[idx.numpy()] for k, v in _static_labels(data).items()}
    sup = imp = None
    if labels:
        free = name_groups(free, z, basis, labels)
        sup = supervised_groups(z, basis, labels)
        imp = supervised_importance(z, basis, labels)[1]
    return FactorSet(basis, free, sup, imp, list(labels))


def _groups_json(g: FactorGroups) -> dict:
    return {"n_groups": g.n_groups, "names": g.names, "components": g.components, "labels": g.labels,
            "indices": [torch.nonzero(m).flatten().tolist() for m in g.masks], "affinity": g.affinity.tolist()}


def save_factors(fs: FactorSet, run_dir: Path, meta: dict) -> Path:
    payload = {"format": "skd-factors", "version": 1, "C": fs.basis.C.tolist(),
               "static_indices": torch.nonzero(fs.basis.static).flatten().tolist(),
               "free": _groups_json(fs.free), "supervised": _groups_json(fs.supervised) if fs.supervised else None,
               "importance": fs.importance.tolist() if fs.importance is not None else None,
               "factor_names": fs.factor_names, **meta}
    return atomic_write_text(run_dir / FACTORS_FILE, json.dumps(payload, indent=1) + "\n")


def _groups_from_json(d: dict, basis: ops.KoopmanBasis) -> FactorGroups:
    k = basis.static.shape[0]
    masks = torch.zeros(d["n_groups"], k, dtype=torch.bool)
    for gi, ind in enumerate(d["indices"]):
        masks[gi, ind] = True
    return FactorGroups(d["components"], d["labels"], masks, np.array(d["affinity"]), d["n_groups"], d["names"])


def load_factors(run_dir: str | Path) -> FactorSet:
    path = Path(run_dir) / FACTORS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no factor groups in {run_dir}: run `skd factors --run {run_dir}` first")
    try:
        d = json.loads(path.read_text())
        C = torch.tensor(d["C"], dtype=torch.float64)
        eig = eig_sorted(C)
        static = torch.zeros(C.shape[0], dtype=torch.bool)
        static[d["static_indices"]] = True
        basis = ops.KoopmanBasis(C, eig, static)
        free = _groups_from_json(d["free"], basis)
        sup = _groups_from_json(d["supervised"], basis) if d.get("supervised") else None
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
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
    if groups.n_groups > 5:
        raise ValueError(f"{groups.n_groups} groups give too many subsets for one grid (at most 5)")
    i, j = pair
    x = data.batch([i, j])
    z = ops.encode(model, x)
    rows, labels = [x[0], x[1]], [f"receiver #{i}", f"donor #{j}"]
    names = groups.names or [str(g) for g in range(groups.n_groups)]
    subsets = [s for r in range(1, groups.n_groups + 1) for s in itertools.combinations(range(groups.n_groups), r)]
    zs = torch.cat([swap_groups(z[:1], z[1:], fs.basis, groups.mask_for(list(s))) for s in subsets])
    frames = ops.decode(model, zs)
    for s, fr in zip(subsets, frames):
        rows.append(fr)
        labels.append("+".join(names[g] for g in s))
    return viz.save_grid(torch.stack(rows), out, row_labels=labels)


def morph_rows(model: KoopmanAE, data: SequenceData, fs: FactorSet, pairs: list[tuple[int, int]],
               order: list[int], groups: FactorGroups) -> tuple[torch.Tensor, list[str]]:
    """Incremental swap rows for each pair: source, +group1, +group1+group2, …, target."""
    from .factors import incremental_swap

    names = groups.names or [str(g) for g in range(groups.n_groups)]
    rows, labels = [], []
    for i, j in pairs:
        z = ops.encode(model, data.batch([i, j]))
        steps = incremental_swap(z[:1], z[1:], fs.basis, groups, order)[:, 0]  # (G+1, T, k)
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
    against the RECEIVER's label for every other head.
    """
    check_judge_matches(judge, data)
    static_heads = [f.name for f in judge.factors if f.kind == "static"]
    dyn_heads = [f.name for f in judge.factors if f.kind == "dynamic"]
    sizes = {f.name: f.size for f in judge.factors}
    named = [g for g in range(groups.n_groups) if groups.names and groups.names[g] in static_heads]
    if not named:
        raise ValueError("no factor group is named after a judge head; run `skd factors` on labelled data")
    g = torch.Generator().manual_seed(seed)
    n = len(data)
    donors = (torch.arange(n) + torch.randint(1, n, (n,), generator=g)) % n
    hits = {groups.names[gi]: {h: 0 for h in static_heads + dyn_heads} for gi in named}
    bar = tqdm(total=len(named) * ((n + batch_size - 1) // batch_size), disable=not progress, desc="multifactor")
    for gi in named:
        f = groups.names[gi]
        mask = groups.mask_for([gi])
        for a in range(0, n, batch_size):
            recv = torch.arange(a, min(a + batch_size, n))
            don = donors[recv]
            z_r, z_d = ops.encode(model, data.batch(recv)), ops.encode(model, data.batch(don))
            probs = judge_probs(judge, ops.decode(model, swap_groups(z_r, z_d, fs.basis, mask)))
            for h in static_heads + dyn_heads:
                want = data.labels[h][don] if h == f else data.labels[h][recv]
                hits[f][h] += int((probs[h].argmax(-1) == want).sum())
            bar.update(1)
    bar.close()
    matrix = {f: {h: c / n for h, c in row.items()} for f, row in hits.items()}
    on = {f: matrix[f][f] for f in matrix}
    off = {f: float(np.mean([matrix[f][h] for h in static_heads if h != f])) for f in matrix}
    act = {f: float(np.mean([matrix[f][h] for h in dyn_heads])) if dyn_heads else None for f in matrix}
    return {"matrix": matrix, "on_target": on, "off_target": off, "action": act,
            "mean": {f: (on[f] + off[f]) / 2 for f in matrix}, "chance": {h: 1.0 / sizes[h] for h in sizes}, "n": n}


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


def factors_report(fs: FactorSet) -> str:
    def describe(g: FactorGroups) -> list[str]:
        out = []
        for gi in range(g.n_groups):
            comps = [c for c, l in zip(g.components, g.labels) if l == gi]
            vals = [fs.basis.eig.values[fs.basis.eig.component == c][0] for c in comps]
            name = g.names[gi] if g.names else f"group{gi}"
            out.append(f"| {name} | {len(comps)} | {int(g.masks[gi].sum())} | "
                       + ", ".join(f"{complex(v).real:.3f}{complex(v).imag:+.3f}i" for v in vals) + " |")
        return out

    lines = ["# Static factor groups", "", f"{int(fs.basis.static.sum())} static eigenvalues in "
             f"{len(fs.free.components)} components.", "", "## Label-free groups", "",
             "| group | components | eigen-indices | eigenvalues |", "|---|---|---|---|", *describe(fs.free)]
    if fs.supervised is not None and fs.importance is not None:
        lines += ["", "## Supervised groups (each component to the factor with the largest η²)", "",
                  "| group | components | eigen-indices | eigenvalues |", "|---|---|---|---|", *describe(fs.supervised),
                  "", "## η² of each static component for each factor", "",
                  "| component | " + " | ".join(fs.factor_names) + " |", "|---|" + "---|" * len(fs.factor_names)]
        for c, row in zip(fs.free.components, fs.importance):
            lines.append(f"| {c} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines) + "\n"
