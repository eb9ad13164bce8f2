"""The scorecard: every lens on a trained model at once, with targets (docs/EVALUATION.md).

A model is as good as its weakest row. Protocol A alone is passed by models that do not even
reproduce the character, so the scorecard puts beside it:

- the judge's accuracy on plain reconstructions, per head (the ceiling of every other row);
- Protocols A and B (sample and swap; Acc, IS, H(y|x), H(y) of the kept heads) and the rate at
  which each REPLACED head still reads the original, under two lenses:
  ``reference`` — the eigen split of Eq. 5 with C refitted on every test batch of 256, as the
  authors' code does; ``refined`` — the appearance-only split of :mod:`skd.pipelines.split` with C and the
  split fitted once on training sequences (no test data shapes the operator);
- multifactor swaps (one static factor group at a time) with the label-free groups and with
  the supervised groups, on-/off-target per factor;
- the MSD-Benchmark intervention score, 1 − (mean on-target error + mean off-target error)/2
  over the static factors, whose chance floor (no factor moved: on-target = 1/K, off-target = 1)
  is (mean 1/K + 1)/2 ≈ 0.58 for six-valued factors;
- mean ± std over ``repeats`` draws, and, with a second judge trained with another seed, each
  row as that judge reads the very same frames, and the largest difference between the judges.

:func:`build_scorecard` computes it; :func:`scorecard_rows` flattens it into named rows with
targets; :func:`scorecard_markdown` renders them. Pictures are written by
:func:`skd.render.images.plot_scorecard` and :func:`skd.evaluation.multifactor.single_factor_grid`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..config import LossConfig
from ..data.base import SequenceData
from .two_factor import EvalReport, TwoFactorSpec, evaluate_judges
from .judge import Judge
from ..model import KoopmanAE

LENSES = ("reference", "refined")


@dataclass(frozen=True)
class ScorecardSpec:
    """What the scorecard runs. ``fit_batch``: training sequences for the refined lens's C and
    split and for the factor groups; ``n_factors``: label-free groups (0 = one per labelled
    static factor); ``affinity``: the label-free grouping cue of :mod:`skd.pipelines.footprint`."""

    repeats: int = 3
    batch_size: int = 256
    fit_batch: int = 2048
    seed: int = 0
    n_factors: int = 0
    affinity: str = "dependence"

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise ValueError(f"repeats={self.repeats} must be >= 1")
        if self.batch_size < 3:
            raise ValueError(f"batch_size={self.batch_size} must be >= 3")
        if self.fit_batch < 3:
            raise ValueError(f"fit_batch={self.fit_batch} must be >= 3")
        if self.n_factors < 0:
            raise ValueError(f"n_factors={self.n_factors} must be >= 0")


@dataclass(frozen=True)
class Target:
    """A row passes when its value is >= ``at_least`` (or <= ``at_most``)."""

    at_least: float | None = None
    at_most: float | None = None

    def met(self, value: float) -> bool:
        return ((self.at_least is None or value >= self.at_least)
                and (self.at_most is None or value <= self.at_most))

    def text(self, percent: bool = False) -> str:
        bound = self.at_least if self.at_least is not None else self.at_most
        if bound is None:
            return ""
        sign = "≥" if self.at_least is not None else "≤"
        return f"{sign} {100 * bound:g} %" if percent else f"{sign} {bound:g}"

    def shortfall(self, value: float) -> float:
        """How far ``value`` is from the target, relative to the target's size (0 when met)."""
        if self.at_least is not None and value < self.at_least:
            return (self.at_least - value) / max(abs(self.at_least), 1e-12)
        if self.at_most is not None and value > self.at_most:
            return (value - self.at_most) / max(abs(self.at_most), 1e-12)
        return 0.0


# the targets of the shipped Sprites model (docs/EVALUATION.md, "Scorecard")
TARGETS = {
    "reconstruction": Target(at_least=0.99),
    "A.acc": Target(at_least=0.99),
    "A.is": Target(at_least=8.9),
    "B.acc": Target(at_least=0.95),
    "replaced_above_chance": Target(at_most=0.05),
    "multifactor": Target(at_least=0.90),
    "msd": Target(at_least=0.90),
}


@dataclass(frozen=True)
class Row:
    """One scorecard line: ``key`` is stable (JSON), ``label`` is for people. ``values`` holds
    one mean per judge; ``std`` is the first judge's spread over draws."""

    key: str
    label: str
    values: tuple[float, ...]
    std: float = 0.0
    target: Target | None = None

    @property
    def value(self) -> float:
        return self.values[0]

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value)

    @property
    def percent(self) -> bool:
        return not self.key.endswith((".is", ".h_yx", ".h_y", ".msd"))

    @property
    def judge_spread(self) -> float:
        return float(max(self.values) - min(self.values))


@dataclass
class Scorecard:
    spec: ScorecardSpec
    two_factor: dict[str, list[EvalReport]]  # lens -> one report per judge
    multifactor: dict[str, list[list[dict]]]  # grouping -> draw -> one result per judge
    reconstruction: list[dict[str, float]]  # per judge: head -> accuracy on plain reconstructions
    chance: dict[str, float]  # head -> 1 / number of values
    static_heads: list[str]
    dynamic_heads: list[str]
    n_test: int
    notes: dict[str, Any] = field(default_factory=dict)


def msd_score(on_target: dict[str, float], off_target: dict[str, float]) -> float:
    """MSD-Benchmark intervention score: 1 − (mean on-target error + mean off-target error)/2."""
    if not on_target or set(on_target) != set(off_target):
        raise ValueError("msd_score needs on- and off-target accuracies of the same factors")
    on_err = 1.0 - float(np.mean(list(on_target.values())))
    off_err = 1.0 - float(np.mean(list(off_target.values())))
    return 1.0 - (on_err + off_err) / 2.0


def msd_chance(sizes: Sequence[int]) -> float:
    """The score of a swap that moves nothing: on-target = 1/K (the donor shares the value by
    chance), off-target = 1."""
    return msd_score({str(i): 1.0 / k for i, k in enumerate(sizes)}, {str(i): 1.0 for i in range(len(sizes))})


def build_scorecard(model: KoopmanAE, loss: LossConfig, judges: Sequence[Judge], train: SequenceData, test: SequenceData,
                    spec: ScorecardSpec = ScorecardSpec(), *, progress: bool = True) -> Scorecard:
    """Run every lens of the scorecard on the whole ``test`` split (see the module docstring).

    The first judge is the one the targets are read with; further judges read the same frames.
    """
    from ..pipelines.factors import TooManyGroups
    from ..pipelines.basis import BasisSpec, fit_reference_basis
    from ..pipelines.factorset import fit_factors
    from .multifactor import evaluate_multifactor_judges

    if not judges:
        raise ValueError("the scorecard needs at least one judge")
    j0 = judges[0]
    static_heads = [f.name for f in j0.factors if f.kind == "static"]
    dynamic_heads = [f.name for f in j0.factors if f.kind == "dynamic"]
    if not static_heads or not dynamic_heads:
        raise ValueError("the scorecard needs a judge with static and dynamic heads (e.g. Sprites: skin, …, action)")
    two: dict[str, list[EvalReport]] = {}
    ref = TwoFactorSpec(repeats=spec.repeats, batch_size=spec.batch_size, seed=spec.seed, split="eigen")
    two["reference"] = evaluate_judges(model, loss, judges, test, ref, progress=progress)
    fit = BasisSpec.from_loss(loss, fit_batch=spec.fit_batch, seed=spec.seed)
    basis = fit_reference_basis(model, train, dataclasses.replace(fit, split="refined"))
    n_fit = min(spec.fit_batch, len(train))
    refined = TwoFactorSpec(repeats=spec.repeats, batch_size=spec.batch_size, seed=spec.seed, split="refined",
                            basis=basis, basis_note=f"{n_fit} training sequences", sanity=False)
    two["refined"] = evaluate_judges(model, loss, judges, test, refined, progress=progress)
    try:
        fs = fit_factors(model, train, fit, n_groups=spec.n_factors or len(static_heads),
                         affinity=spec.affinity)
    except TooManyGroups:
        if spec.n_factors:
            raise
        # fewer static directions than labelled factors: as many groups as the eigengap finds; the
        # factors no group is named after score chance on-target
        fs = fit_factors(model, train, fit, n_groups=None, affinity=spec.affinity)
    multi: dict[str, list[list[dict]]] = {}
    for kind, groups in (("label-free", fs.free), ("supervised", fs.supervised)):
        if groups is None:
            continue
        if kind == "supervised" and _same_groups(groups, fs.free):  # same swaps: same numbers
            multi[kind] = multi["label-free"]
            continue
        multi[kind] = [evaluate_multifactor_judges(model, list(judges), test, groups, batch_size=spec.batch_size,
                                                   seed=spec.seed + r, progress=progress)
                       for r in range(spec.repeats)]
    recon = [r.sanity["judge_acc_on_reconstructions"] for r in two["reference"]]
    chance = {f.name: 1.0 / f.size for f in j0.factors}
    notes = {"refined_static_dims": basis.static_dims, "fit_sequences": n_fit,
             "supervised_same_as_label_free": multi.get("supervised") is multi.get("label-free"),
             "label_free_groups": fs.free.names, "factors": fs}
    return Scorecard(spec, two, multi, recon, chance, static_heads, dynamic_heads, len(test), notes)


def _same_groups(a, b) -> bool:
    """Two groupings that put the same units under the same names swap exactly the same coordinates."""
    return a.named_members() == b.named_members() and torch.equal(a.units.to_coords, b.units.to_coords)


def _two_factor_rows(card: Scorecard, lens: str) -> list[Row]:
    reps = card.two_factor[lens]
    rows: list[Row] = []
    for proto, kept in (("A", card.dynamic_heads), ("B", card.static_heads)):
        for how in ("sample", "swap"):
            for head in kept:
                for metric in ("acc", "is", "h_yx", "h_y"):
                    m = [r.table[proto][how][head][metric] for r in reps]
                    target = None
                    if proto == "A" and metric in ("acc", "is") and lens == "reference":
                        target = TARGETS[f"A.{metric}"]
                    elif proto == "B" and metric == "acc" and lens == "reference":
                        target = TARGETS["B.acc"]
                    rows.append(Row(f"{lens}.{proto}.{how}.{head}.{metric}",
                                    f"{lens}: Protocol {proto} {how}, {head} {metric}",
                                    tuple(x["mean"] for x in m), m[0]["std"], target))
            replaced = card.static_heads if proto == "A" else card.dynamic_heads
            for head in replaced:
                m = [r.unchanged[proto][how][head] for r in reps]
                rows.append(Row(f"{lens}.{proto}.{how}.{head}.replaced_above_chance",
                                f"{lens}: Protocol {proto} {how}, replaced {head} still read as original − chance",
                                tuple(x["mean"] - card.chance[head] for x in m), m[0]["std"],
                                TARGETS["replaced_above_chance"] if lens == "reference" else None))
    return rows


def _multifactor_rows(card: Scorecard, kind: str) -> list[Row]:
    draws = card.multifactor[kind]  # draw -> judge -> result
    n_judges = len(draws[0])
    rows: list[Row] = []
    target = TARGETS["multifactor"] if kind == "label-free" else None
    factors = [f for f in card.static_heads if f in draws[0][0]["on_target"]]
    for f in factors:
        for which in ("on_target", "off_target"):
            per_judge = [[d[j][which][f] for d in draws] for j in range(n_judges)]
            rows.append(Row(f"multifactor.{kind}.{f}.{which}", f"multifactor ({kind} groups): {f} {which.replace('_', '-')}",
                            tuple(float(np.mean(v)) for v in per_judge), float(np.std(per_judge[0])), target))
    missing = [f for f in card.static_heads if f not in factors]
    for f in missing:  # a factor no group is named after: nothing moves it, on-target is chance
        rows.append(Row(f"multifactor.{kind}.{f}.on_target", f"multifactor ({kind} groups): {f} on-target (no group)",
                        tuple(card.chance[f] for _ in range(n_judges)), 0.0, target))
    per_judge_msd = [[msd_score({f: d[j]["on_target"].get(f, card.chance[f]) for f in card.static_heads},
                                {f: d[j]["off_target"].get(f, 1.0) for f in card.static_heads}) for d in draws]
                     for j in range(n_judges)]
    rows.append(Row(f"multifactor.{kind}.msd", f"MSD intervention score ({kind} groups)",
                    tuple(float(np.mean(v)) for v in per_judge_msd), float(np.std(per_judge_msd[0])),
                    TARGETS["msd"] if kind == "label-free" else None))
    return rows


def scorecard_rows(card: Scorecard) -> list[Row]:
    """Every row of the scorecard, in reading order, with its target where item 2 sets one."""
    rows = [Row(f"reconstruction.{h}", f"judge on plain reconstructions, {h}", tuple(r[h] for r in card.reconstruction),
                0.0, TARGETS["reconstruction"]) for h in card.static_heads + card.dynamic_heads]
    for lens in LENSES:
        rows += _two_factor_rows(card, lens)
    for kind in card.multifactor:
        rows += _multifactor_rows(card, kind)
    return rows


def _fmt(row: Row) -> str:
    pct = row.percent
    v = f"{100 * row.value:.2f} %" if pct else f"{row.value:.4g}"
    if row.std:
        v += f" ± {100 * row.std:.2f}" if pct else f" ± {row.std:.2g}"
    return v


def scorecard_markdown(card: Scorecard, rows: list[Row], *, title: str = "Scorecard") -> str:
    """The headline rows (those with targets, plus IS/entropies of Protocol A) as a markdown table,
    a one-line verdict, and how the numbers were made."""
    judges = len(rows[0].values)
    head = "| row | value (mean ± std over draws) |" + (" judge 2 |" if judges > 1 else "") + " target | met |"
    lines = [f"# {title}", "", head, "|---|---|" + ("---|" if judges > 1 else "") + "---|---|"]
    shown = [r for r in rows if r.target is not None or (".A." in r.key and r.key.startswith("reference"))
             or r.key.startswith("refined.A") and r.key.endswith(".acc")
             or (r.key.startswith("refined.B") and r.key.endswith(".acc"))
             or (r.key.startswith("multifactor.supervised") and not r.key.endswith("off_target"))]
    for r in shown:
        second = ""
        if judges > 1:
            second = f" {100 * r.values[1]:.2f} % |" if r.percent else f" {r.values[1]:.4g} |"
        met = "" if r.passed is None else ("yes" if r.passed else "**no**")
        lines.append(f"| {r.label} | {_fmt(r)} |{second} {r.target.text(r.percent) if r.target else ''} | {met} |")
    targeted = [r for r in rows if r.target is not None]
    failed = [r for r in targeted if not r.passed]
    lines += ["", f"**{len(targeted) - len(failed)} of {len(targeted)} targeted rows met.**"
              + (f" Furthest from its target: {max(failed, key=lambda r: r.target.shortfall(r.value)).label}." if failed else "")]
    spread = max((r.judge_spread for r in rows if r.percent), default=0.0)
    sp = card.spec
    lines += ["", f"{card.n_test} test sequences, {sp.repeats} draws. Reference lens: eigen split of Eq. 5, C "
              f"refitted per test batch of {sp.batch_size}. Refined lens: appearance-only split, C and split fitted "
              f"once on {card.notes['fit_sequences']} training sequences ({card.notes['refined_static_dims']} static "
              f"dimensions). Multifactor: groups fitted on the same training sequences "
              f"({sp.affinity} affinity); MSD chance floor "
              f"{msd_chance([round(1 / card.chance[h]) for h in card.static_heads]):.3f}."]
    if card.notes.get("supervised_same_as_label_free"):
        lines.append("The supervised groups put the same units under the same names as the label-free groups, "
                     "so their rows are the same swaps.")
    if judges > 1:
        lines.append(f"Two judges read the same frames; the largest difference between them on an accuracy row "
                     f"is {100 * spread:.2f} points.")
    return "\n".join(lines)


def scorecard_json(card: Scorecard, rows: list[Row], meta: dict[str, Any]) -> dict[str, Any]:
    """Everything, JSON-able: rows (every judge's value), full two-factor reports, multifactor matrices."""
    return {
        **meta,
        "spec": dataclasses.asdict(card.spec),
        "n_test": card.n_test,
        "rows": [{"key": r.key, "label": r.label, "value": r.value, "std": r.std, "values": list(r.values),
                  "judge_spread": r.judge_spread, "target": r.target.text(r.percent) if r.target else None, "met": r.passed}
                 for r in rows],
        "targets_met": sum(bool(r.passed) for r in rows if r.target is not None),
        "targets": sum(r.target is not None for r in rows),
        "two_factor": {lens: [dataclasses.asdict(r) for r in reps] for lens, reps in card.two_factor.items()},
        "multifactor": card.multifactor,
        "reconstruction": card.reconstruction,
        "refined_static_dims": card.notes["refined_static_dims"],
        "label_free_groups": card.notes["label_free_groups"],
    }
