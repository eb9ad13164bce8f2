"""Two-factor disentanglement metrics with a judge (EVALUATION.md §2).

Protocol A ("fix the dynamics, sample the statics"): keep each test sequence's dynamic part,
replace its static part (``sample``: convex combination of two other sequences' static parts;
``swap``: another sequence's static part), decode, read the judge's DYNAMIC heads against the
kept labels. Protocol B mirrors it: keep statics, replace dynamics, read the STATIC heads.

The test split is processed in consecutive batches of ``batch_size`` sequences (default 256);
C is refitted on each batch (C depends on the batch it is fitted on). Every test sequence is
evaluated (a short last batch is merged into the previous one, never dropped).

``split="refined"`` uses the appearance-only static split of :mod:`skd.split` (ICA directions of
the static subspace that depend on the dynamics are kept with the dynamics), refitted with C on
every batch; ``split="eigen"`` (default) is the plain eigen split of Eq. 5.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from . import ops
from .config import Config
from .data.base import SequenceData
from .judge import Judge, check_judge_matches, judge_probs
from .metrics import confusion_matrix, judge_scores, top_confusions
from .model import KoopmanAE

PROTOCOLS = {"A": "dynamic", "B": "static"}  # protocol -> kept part (read by the judge)
MANIPULATIONS = ("sample", "swap")


@dataclass(frozen=True)
class EvalReport:
    table: dict  # protocol -> manipulation -> head -> metric -> {"mean", "std"}
    sanity: dict  # reconstruction MSE, judge accuracy on plain reconstructions and originals
    repeats: int
    batch_size: int
    n: int
    # protocol -> manipulation -> head -> (K, K) counts summed over repeats (row: true, column: judged)
    confusion: dict = field(default_factory=dict)
    class_names: dict = field(default_factory=dict)  # head -> class names (empty when unnamed)
    static_split: dict = field(default_factory=lambda: {"kind": "eigen"})  # split used; refined: directions moved per batch
    # protocol -> manipulation -> replaced head -> {"mean", "std"}: fraction of manipulated samples
    # whose REPLACED factor the judge still reads as the original's (≈ chance when it was really
    # replaced; near 1 when the "replaced" part did not carry that factor, e.g. a degenerate split)
    unchanged: dict = field(default_factory=dict)


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    edges = list(range(0, n, batch_size)) + [n]
    spans = list(zip(edges[:-1], edges[1:]))
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < 3:  # too small to sample from: merge
        spans[-2:] = [(spans[-2][0], spans[-1][1])]
    return spans


def manipulate(z: torch.Tensor, basis: ops.KoopmanBasis, keep: str, how: str, g: torch.Generator) -> torch.Tensor:
    """Keep the ``keep`` part of each sequence in z (B, T, k) and replace the other by ``how``."""
    other = "static" if keep == "dynamic" else "dynamic"
    if how == "sample":
        return ops.sample_part(z, basis, other, generator=g)
    if how == "swap":
        n = z.shape[0]
        perm = (torch.arange(n) + torch.randint(1, n, (n,), generator=g)) % n  # another sequence
        return ops.swap_latents(z, z[perm], basis) if keep == "dynamic" else ops.swap_latents(z[perm], z, basis)
    raise ValueError(f"manipulation {how!r} must be 'sample' or 'swap'")


def evaluate_two_factor(
    model: KoopmanAE, cfg: Config, judge: Judge, data: SequenceData, *, repeats: int = 5, batch_size: int = 256,
    seed: int = 0, progress: bool = True, only: tuple[tuple[str, str], ...] | None = None, sanity: bool = True,
    split: str = "eigen", basis: ops.KoopmanBasis | None = None, basis_note: str = "",
) -> EvalReport:
    """Protocols A and B with sampling and swapping, mean ± std over ``repeats`` fresh draws.

    ``only``: a subset of (protocol, manipulation) pairs, e.g. ``(("A", "sample"),)``;
    ``sanity=False`` skips the reconstruction sanity line (both for quick checks during training).
    ``basis``: one fixed Koopman basis (C of Eq. 3 and its static split, ``split`` names which)
    used for every batch, e.g. fitted on training sequences by
    :func:`skd.showcase.fit_reference_basis`; by default C is refitted on every test batch of
    ``batch_size`` sequences, as in the reference code. ``basis_note`` describes a fixed basis
    in the report (e.g. "2048 training sequences").
    """
    check_judge_matches(judge, data)
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    if len(data) < 3:
        raise ValueError(f"evaluation needs at least 3 sequences, got {len(data)}")
    from .split import SPLITS, refine_split

    if split not in SPLITS:
        raise ValueError(f"split={split!r} must be one of {', '.join(SPLITS)}")
    if basis is not None and split == "refined" and basis.split is None:
        raise ValueError("split='refined' with a fixed basis needs a basis with a refined split (fit_reference_basis(split='refined'))")
    fixed = basis
    heads = {f.name: f.kind for f in judge.factors}
    spans = _batches(len(data), batch_size)
    g = torch.Generator().manual_seed(seed)
    runs: dict[tuple[str, str], list[dict[str, dict[str, float]]]] = {}
    confusion: dict[tuple[str, str, str], np.ndarray] = {}
    mse_sum, rec_probs, orig_probs = 0.0, [], []
    moved: list[int] = []  # directions moved to the dynamic side per batch (split="refined")
    dims: list[int] = []  # dimension of the static part per batch
    kept_rate: dict[tuple[str, str, str], list[float]] = {}  # replaced heads still reading the original label
    bar = tqdm(total=repeats * len(spans), disable=not progress, desc="eval", dynamic_ncols=True)
    # latents and bases depend only on the batch, not on the draw: computed in the first repeat, reused after
    cached: list[tuple[torch.Tensor, ops.KoopmanBasis]] = []
    for r in range(repeats):
        probs: dict[tuple[str, str], list[dict[str, torch.Tensor]]] = {}
        for i, (a, b) in enumerate(spans):
            if r > 0:
                z, basis_b = cached[i]
            else:
                x = data.batch(torch.arange(a, b))
                z = ops.encode(model, x)
                if fixed is not None:
                    basis_b = fixed
                else:
                    basis_b = ops.fit_basis(z, min(cfg.loss.static_size, cfg.model.k), cfg.loss.static_criterion,
                                            ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
                    if split == "refined":
                        refined = refine_split(z, basis_b, seed=seed)
                        basis_b = refined.basis
                        moved.append(len(refined.motion))
                dims.append(basis_b.static_dims)
                cached.append((z, basis_b))
                if sanity:
                    rec = ops.decode(model, z)
                    mse_sum += float(((rec - x) ** 2).sum())
                    rec_probs.append(judge_probs(judge, rec))
                    orig_probs.append(judge_probs(judge, x))
            for proto, keep in PROTOCOLS.items():
                for how in MANIPULATIONS:
                    if only is not None and (proto, how) not in only:
                        continue
                    frames = ops.decode(model, manipulate(z, basis_b, keep, how, g))
                    probs.setdefault((proto, how), []).append(judge_probs(judge, frames))
            bar.update(1)
        for key, chunks in probs.items():
            keep = PROTOCOLS[key[0]]
            scores = {}
            for name, kind in heads.items():
                if kind != keep:  # a replaced factor: how often does the judge still read the original?
                    own = torch.cat([c[name] for c in chunks]).argmax(-1).numpy() == data.labels[name].numpy()
                    kept_rate.setdefault((*key, name), []).append(float(own.mean()))
                    continue
                p = torch.cat([c[name] for c in chunks]).numpy()
                scores[name] = judge_scores(p, data.labels[name].numpy())
                cm = confusion_matrix(p, data.labels[name].numpy())
                confusion[(*key, name)] = confusion.get((*key, name), 0) + cm
            runs.setdefault(key, []).append(scores)
    bar.close()
    table: dict = {}
    for (proto, how), reps in runs.items():
        for name in reps[0]:
            for metric in ("acc", "is", "h_yx", "h_y"):
                vals = np.array([rep[name][metric] for rep in reps], dtype=np.float64)
                table.setdefault(proto, {}).setdefault(how, {}).setdefault(name, {})[metric] = {
                    "mean": float(vals.mean()), "std": float(vals.std())}
    unchanged: dict = {}
    for (proto, how, name), vals in kept_rate.items():
        unchanged.setdefault(proto, {}).setdefault(how, {})[name] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    cms: dict = {}
    for (proto, how, name), cm in confusion.items():
        cms.setdefault(proto, {}).setdefault(how, {})[name] = cm.tolist()
    names = {f.name: list(f.values) for f in judge.factors if f.name in heads}
    labels = {name: data.labels[name].numpy() for name in heads}
    split_info: dict = {"kind": split, "fit": "per batch" if fixed is None else (basis_note or "fixed basis"),
                        "static_dims_min": int(min(dims)), "static_dims_max": int(max(dims))}
    if split == "refined" and fixed is None:
        split_info.update(moved_per_batch_mean=float(np.mean(moved)), moved_per_batch_min=int(min(moved)),
                          moved_per_batch_max=int(max(moved)))
    if not sanity:
        return EvalReport(table, {}, repeats, batch_size, len(data), cms, names, split_info, unchanged)
    sanity = {
        "reconstruction_mse": mse_sum / float(data.x.numel()),
        "judge_acc_on_reconstructions": {n: float((torch.cat([c[n] for c in rec_probs]).argmax(-1).numpy() == labels[n]).mean()) for n in heads},
        "judge_acc_on_originals": {n: float((torch.cat([c[n] for c in orig_probs]).argmax(-1).numpy() == labels[n]).mean()) for n in heads},
    }
    return EvalReport(table, sanity, repeats, batch_size, len(data), cms, names, split_info, unchanged)


def markdown_table(report: EvalReport) -> str:
    """Rows: protocol × manipulation × head; columns Acc / IS / H(y|x) / H(y) as mean ± std."""
    lines = ["| protocol | manipulation | judge head | Acc (%) | IS | H(y|x) | H(y) |", "|---|---|---|---|---|---|---|"]
    for proto in sorted(report.table):
        for how in MANIPULATIONS:
            for name, m in report.table[proto].get(how, {}).items():
                acc = f"{100 * m['acc']['mean']:.2f} ± {100 * m['acc']['std']:.2f}"
                cells = [f"{m[k]['mean']:.4g} ± {m[k]['std']:.2g}" for k in ("is", "h_yx", "h_y")]
                lines.append(f"| {proto} | {how} | {name} | {acc} | " + " | ".join(cells) + " |")
    confused = []
    for proto in sorted(report.confusion):
        for how in MANIPULATIONS:
            for name, cm in report.confusion[proto].get(how, {}).items():
                top = top_confusions(cm, report.class_names.get(name, ()), k=3)
                if top:
                    confused.append(f"{proto}/{how}/{name}: " + ", ".join(f"{t} → {p} ×{c}" for t, p, c in top))
    if confused:
        lines += ["", "Most frequent confusions (true → judged, counts over all repeats):", *[f"- {c}" for c in confused]]
    sp = report.static_split
    if sp.get("kind") == "refined" and "moved_per_batch_mean" in sp:
        lines += ["", f"Static split: refined (ICA directions of the static subspace that depend on the dynamics kept with "
                  f"the dynamics; {sp['moved_per_batch_mean']:.1f} moved per batch, {sp['moved_per_batch_min']}–"
                  f"{sp['moved_per_batch_max']})."]
    if report.unchanged:
        lines += ["", "Replaced factors still judged as the original's (lower = really replaced; a swap keeps a "
                  "factor by chance when the donor shares it, ≈ 1/number of values):"]
        for proto in sorted(report.unchanged):
            for how in MANIPULATIONS:
                row = report.unchanged[proto].get(how, {})
                if row:
                    lines.append(f"- {proto}/{how}: " + ", ".join(f"{h} {100 * m['mean']:.1f} %" for h, m in row.items()))
    if "static_dims_min" in sp:
        a, b = sp["static_dims_min"], sp["static_dims_max"]
        lines += ["", f"Static part: {a if a == b else f'{a}–{b}'} of the k latent dimensions."]
    s = report.sanity
    if not s:
        return "\n".join(lines)
    lines += ["", f"Sanity: reconstruction MSE {s['reconstruction_mse']:.5f}; judge accuracy on reconstructions "
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["judge_acc_on_reconstructions"].items())
              + "; on originals " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in s["judge_acc_on_originals"].items()),
              f"({report.n} test sequences, {report.repeats} repeats, " + (
                  f"C refitted per batch of {report.batch_size}.)" if sp.get("fit", "per batch") == "per batch"
                  else f"one C{' and refined split' if sp.get('kind') == 'refined' else ''} fitted on {sp['fit']}, "
                       f"batches of {report.batch_size}.)")]
    return "\n".join(lines)

