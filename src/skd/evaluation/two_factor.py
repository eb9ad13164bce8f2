"""Two-factor disentanglement metrics with a judge (docs/EVALUATION.md §2).

Protocol A ("fix the dynamics, sample the statics"): keep each test sequence's dynamic part,
replace its static part (``sample``: convex combination of two other sequences' static parts;
``swap``: another sequence's static part), decode, read the judge's DYNAMIC heads against the
kept labels. Protocol B mirrors it: keep statics, replace dynamics, read the STATIC heads.

The test split is processed in consecutive batches of ``batch_size`` sequences (default 256);
C is refitted on each batch (C depends on the batch it is fitted on). Every test sequence is
evaluated (a short last batch is merged into the previous one, never dropped).

``split="refined"`` uses the appearance-only static split of :mod:`skd.pipelines.split` (ICA directions of
the static subspace that depend on the dynamics are kept with the dynamics), refitted with C on
every batch; ``split="eigen"`` (default) is the plain eigen split of Eq. 5.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..pipelines import ops
from ..config import Config, LossConfig
from ..pipelines.basis import BasisSpec, basis_from_latents
from ..data.base import SequenceData
from .judge import Judge, check_judge_matches, judge_probs
from .metrics import confusion_matrix, judge_scores, top_confusions
from ..model import KoopmanAE
from ..model.fold import inference_copy

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


@dataclass(frozen=True)
class TwoFactorSpec:
    """How Protocols A and B are run: draws, batching, which pairs, and which static split.

    ``only``: a subset of (protocol, manipulation) pairs, e.g. ``(("A", "sample"),)``;
    ``sanity=False`` skips the reconstruction sanity line. ``basis``: one fixed Koopman basis (C
    of Eq. 3 and its static split, ``split`` names which) used for every batch, e.g. fitted on
    training sequences by :func:`skd.pipelines.basis.fit_reference_basis`; by default (None) C is refitted
    on every test batch of ``batch_size`` sequences, as in the reference code. ``basis_note``
    describes a fixed basis in the report (e.g. "2048 training sequences").
    """

    repeats: int = 5
    batch_size: int = 256
    seed: int = 0
    only: tuple[tuple[str, str], ...] | None = None
    sanity: bool = True
    split: str = "eigen"
    basis: ops.KoopmanBasis | None = None
    basis_note: str = ""

    def __post_init__(self) -> None:
        from ..pipelines.split import SPLITS

        if self.repeats < 1:
            raise ValueError(f"repeats={self.repeats} must be >= 1")
        if self.batch_size < 3:
            raise ValueError(f"batch_size={self.batch_size} must be >= 3")
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r} must be one of {', '.join(SPLITS)}")
        if self.basis is not None and self.split == "refined" and self.basis.split is None:
            raise ValueError("split='refined' with a fixed basis needs a basis with a refined split "
                             "(fit_reference_basis(split='refined'))")

    def pairs(self) -> list[tuple[str, str]]:
        return [(p, h) for p in PROTOCOLS for h in MANIPULATIONS if self.only is None or (p, h) in self.only]


@dataclass
class _Batch:
    span: tuple[int, int]
    z: torch.Tensor  # (B, T, k) latents of the batch
    basis: ops.KoopmanBasis
    moved: int  # refined split: directions moved to the dynamic side (0 for the eigen split)


def _encode_batches(model: KoopmanAE, loss: LossConfig, data: SequenceData, spec: TwoFactorSpec,
                    judges: Sequence[Judge]) -> tuple[list[_Batch], dict]:
    """Latents and bases of every test batch (they do not depend on the draw), and the sanity
    numbers of every judge: reconstruction MSE, accuracy on reconstructions and on originals."""
    fit = BasisSpec.from_loss(loss, split=spec.split, seed=spec.seed)
    batches: list[_Batch] = []
    mse_sum = 0.0
    rec_probs: list[list[dict[str, torch.Tensor]]] = [[] for _ in judges]
    orig_probs: list[list[dict[str, torch.Tensor]]] = [[] for _ in judges]
    for a, b in _batches(len(data), spec.batch_size):
        x = data.batch(torch.arange(a, b))
        z = ops.encode(model, x)
        moved = 0
        if spec.basis is not None:
            basis = spec.basis
        else:
            basis = basis_from_latents(z, fit)
            if spec.split == "refined":  # directions the refined split moved to the dynamic side
                moved = int(basis.static.sum()) - basis.static_dims
        batches.append(_Batch((a, b), z, basis, moved))
        if spec.sanity:
            rec = ops.decode(model, z)
            mse_sum += float(((rec - x) ** 2).sum())
            for j, judge in enumerate(judges):
                rec_probs[j].append(judge_probs(judge, rec))
                orig_probs[j].append(judge_probs(judge, x))
    sanity = []
    for j, judge in enumerate(judges):
        if not spec.sanity:
            sanity.append({})
            continue
        heads = [f.name for f in judge.factors]
        acc = lambda chunks, n: float((torch.cat([c[n] for c in chunks]).argmax(-1) == data.labels[n]).double().mean())  # noqa: E731
        sanity.append({"reconstruction_mse": mse_sum / float(data.x.numel()),
                       "judge_acc_on_reconstructions": {n: acc(rec_probs[j], n) for n in heads},
                       "judge_acc_on_originals": {n: acc(orig_probs[j], n) for n in heads}})
    return batches, {"sanity": sanity}


def _score_draw(chunks: list[dict[str, torch.Tensor]], judge: Judge, data: SequenceData, keep: str
                ) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray], dict[str, float]]:
    """One draw of one (protocol, manipulation): scores and confusion of the KEPT heads, and the
    rate at which each REPLACED head still reads the original label."""
    scores, cms, unchanged = {}, {}, {}
    for f in judge.factors:
        p = torch.cat([c[f.name] for c in chunks]).numpy()
        y = data.labels[f.name].numpy()
        if f.kind != keep:
            unchanged[f.name] = float((p.argmax(-1) == y).mean())
            continue
        scores[f.name] = judge_scores(p, y)
        cms[f.name] = confusion_matrix(p, y)
    return scores, cms, unchanged


def _mean_std(vals: list[float]) -> dict[str, float]:
    a = np.asarray(vals, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std())}


def evaluate_judges(model: KoopmanAE, loss: LossConfig, judges: Sequence[Judge], data: SequenceData,
                    spec: TwoFactorSpec = TwoFactorSpec(), *, progress: bool = True) -> list[EvalReport]:
    """Protocols A and B with sampling and swapping, mean ± std over ``spec.repeats`` fresh draws,
    every manipulated batch read by each of ``judges`` (one report per judge, in order): the draws
    are the same for every judge, so their reports differ only by the judge."""
    if not judges:
        raise ValueError("evaluate_judges needs at least one judge")
    for judge in judges:
        check_judge_matches(judge, data)
    if len(data) < 3:
        raise ValueError(f"evaluation needs at least 3 sequences, got {len(data)}")
    model, judges = inference_copy(model), [inference_copy(j, channels_last=True) for j in judges]  # BN folded
    batches, extra = _encode_batches(model, loss, data, spec, judges)
    g = torch.Generator().manual_seed(spec.seed)
    pairs = spec.pairs()
    # judge -> (protocol, manipulation) -> one entry per draw
    draws: list[dict[tuple[str, str], list]] = [{key: [] for key in pairs} for _ in judges]
    bar = tqdm(total=spec.repeats * len(batches), disable=not progress, desc="eval", dynamic_ncols=True)
    for _ in range(spec.repeats):
        probs: list[dict[tuple[str, str], list]] = [{key: [] for key in pairs} for _ in judges]
        for batch in batches:
            for proto, how in pairs:
                frames = ops.decode(model, manipulate(batch.z, batch.basis, PROTOCOLS[proto], how, g))
                for j, judge in enumerate(judges):
                    probs[j][(proto, how)].append(judge_probs(judge, frames))
            bar.update(1)
        for j, judge in enumerate(judges):
            for key in pairs:
                draws[j][key].append(_score_draw(probs[j][key], judge, data, PROTOCOLS[key[0]]))
    bar.close()
    dims = [b.basis.static_dims for b in batches]
    split_info: dict = {"kind": spec.split, "fit": "per batch" if spec.basis is None else (spec.basis_note or "fixed basis"),
                        "static_dims_min": int(min(dims)), "static_dims_max": int(max(dims))}
    if spec.split == "refined" and spec.basis is None:
        moved = [b.moved for b in batches]
        split_info.update(moved_per_batch_mean=float(np.mean(moved)), moved_per_batch_min=int(min(moved)),
                          moved_per_batch_max=int(max(moved)))
    return [_report(judge, draws[j], extra["sanity"][j], spec, len(data), split_info) for j, judge in enumerate(judges)]


def _report(judge: Judge, draws: dict[tuple[str, str], list], sanity: dict, spec: TwoFactorSpec, n: int,
            split_info: dict) -> EvalReport:
    table: dict = {}
    cms: dict = {}
    unchanged: dict = {}
    for (proto, how), reps in draws.items():
        for name in reps[0][0]:
            for metric in ("acc", "is", "h_yx", "h_y"):
                table.setdefault(proto, {}).setdefault(how, {}).setdefault(name, {})[metric] = _mean_std(
                    [rep[0][name][metric] for rep in reps])
            cms.setdefault(proto, {}).setdefault(how, {})[name] = sum(rep[1][name] for rep in reps).tolist()
        for name in reps[0][2]:
            unchanged.setdefault(proto, {}).setdefault(how, {})[name] = _mean_std([rep[2][name] for rep in reps])
    names = {f.name: list(f.values) for f in judge.factors}
    return EvalReport(table, sanity, spec.repeats, spec.batch_size, n, cms, names, split_info, unchanged)


def evaluate_two_factor(
    model: KoopmanAE, cfg: Config | LossConfig, judge: Judge, data: SequenceData, *, repeats: int = 5, batch_size: int = 256,
    seed: int = 0, progress: bool = True, only: tuple[tuple[str, str], ...] | None = None, sanity: bool = True,
    split: str = "eigen", basis: ops.KoopmanBasis | None = None, basis_note: str = "",
) -> EvalReport:
    """Deprecated form of :func:`evaluate_judges` (one judge, a :class:`TwoFactorSpec` built from the
    keyword arguments, same names and meaning); ``cfg`` may be the whole config or its ``loss`` slice."""
    spec = TwoFactorSpec(repeats=repeats, batch_size=batch_size, seed=seed, only=only, sanity=sanity, split=split,
                         basis=basis, basis_note=basis_note)
    loss = cfg.loss if isinstance(cfg, Config) else cfg
    return evaluate_judges(model, loss, [judge], data, spec, progress=progress)[0]


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

