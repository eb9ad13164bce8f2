"""The multifactor metric of docs/EVALUATION.md §3: swap one factor group at a time from a random
donor and read every judge head; and the judge's accuracy on plain reconstructions (its ceiling).

The groups come from :mod:`skd.pipelines.factorset` (``skd factors``).
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.base import SequenceData
from ..model import KoopmanAE
from ..model.fold import inference_copy
from ..pipelines import ops
from ..pipelines.factors import FactorGroups, swap_groups
from ..pipelines.factorset import FactorSet
from .judge import Judge, check_judge_matches, judge_probs


def evaluate_multifactor(model: KoopmanAE, judge: Judge, data: SequenceData, fs: FactorSet, groups: FactorGroups,
                         *, batch_size: int = 256, seed: int = 0, progress: bool = True) -> dict:
    """docs/EVALUATION.md §3: swap one named group from a random donor into every test sequence.

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
    model, judges = inference_copy(model), [inference_copy(j, channels_last=True) for j in judges]  # BN folded
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

@torch.no_grad()
def reconstruction_accuracy(model: KoopmanAE, judge: Judge, data: SequenceData, *, batch_size: int = 256) -> dict[str, float]:
    """Judge accuracy per head on plain reconstructions dec(enc(x)) against the true labels.

    The ceiling of the multifactor matrix: a swapped factor cannot be read more reliably than
    an unswapped one.
    """
    check_judge_matches(judge, data)
    model, judge = inference_copy(model), inference_copy(judge, channels_last=True)  # as the swaps are read
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
