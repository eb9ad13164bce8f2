"""Print the headline rows of a scorecard.json (written by `skd scorecard`) as one markdown table.

    python benchmarks/scorecard_table.py weights/sprites/scorecard/scorecard.json

One line per lens: reconstructions per head, Protocol A (sample / swap) and B (sample, per
appearance head) under the reference protocol and the refined split, the replaced-head rows,
multifactor on-/off-target per factor and the MSD score, each with its target and whether it is
met. This is the table the README and the model card show.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _rows(card: dict) -> dict[str, dict]:
    return {r["key"]: r for r in card["rows"]}


def _pct(r: dict | None) -> str:
    if r is None:
        return "–"
    std = f" ± {100 * r['std']:.1f}" if r["std"] else ""
    return f"{100 * r['value']:.1f}{std}"


def _met(rs: list[dict]) -> str:
    marks = [r["met"] for r in rs if r is not None and r["met"] is not None]
    if not marks:
        return ""
    return "yes" if all(marks) else f"**no** ({sum(marks)}/{len(marks)})"


def table(card: dict) -> str:
    r = _rows(card)
    static = [k.split(".")[1] for k in r if k.startswith("reconstruction.") and
              f"reference.B.sample.{k.split('.')[1]}.acc" in r]
    dynamic = [k.split(".")[1] for k in r if k.startswith("reconstruction.") and
               f"reference.A.sample.{k.split('.')[1]}.acc" in r]
    heads = static + dynamic
    lines = ["| lens | " + " | ".join(heads) + " | target | met |", "|---|" + "---|" * (len(heads) + 2)]

    def line(name: str, keys: list[str | None], target: str) -> None:
        found = [r.get(k) if k else None for k in keys]
        lines.append(f"| {name} | " + " | ".join(_pct(x) for x in found) + f" | {target} | {_met(found)} |")

    line("judge on plain reconstructions", [f"reconstruction.{h}" for h in heads], "≥ 99 %")
    for lens, target_a, target_b in (("reference", "≥ 99 % (IS ≥ 8.9)", "≥ 95 %"), ("refined", "", "")):
        for how in ("sample", "swap"):
            a = [None] * len(static) + [f"{lens}.A.{how}.{h}.acc" for h in dynamic]
            line(f"{lens}: Protocol A {how} (kept action)", a, target_a)
            b = [f"{lens}.B.{how}.{h}.acc" for h in static] + [None] * len(dynamic)
            line(f"{lens}: Protocol B {how} (kept appearance)", b, target_b)
    rep = [f"reference.A.sample.{h}.replaced_above_chance" for h in static] + \
          [f"reference.B.sample.{h}.replaced_above_chance" for h in dynamic]
    line("reference, sample: replaced head still reads the original, points above chance", rep, "≤ 5 points")
    for kind in ("label-free", "supervised"):
        for which in ("on_target", "off_target"):
            keys = [f"multifactor.{kind}.{h}.{which}" for h in static] + [None] * len(dynamic)
            line(f"multifactor, {kind} groups, {which.replace('_', '-')}", keys,
                 "≥ 90 %" if kind == "label-free" else "")
    msd = r.get("multifactor.label-free.msd")
    if msd is not None:
        std = f" ± {msd['std']:.3f}" if msd["std"] else ""
        lines.append(f"| MSD intervention score, label-free groups (chance 0.583) | {msd['value']:.3f}{std}"
                     + " |" * len(heads) + f" ≥ 0.90 | {'yes' if msd['met'] else '**no**'} |")
    spread = max((x["judge_spread"] for x in card["rows"] if x["target"] and "%" in x["target"]), default=0.0)
    lines += ["", f"{card['targets_met']} of {card['targets']} targeted rows met; mean ± std over "
              f"{card['spec']['repeats']} draws, {card['n_test']} test sequences"
              + (f"; a second judge differs by at most {100 * spread:.1f} points on a targeted row."
                 if len(card["judge_sha256"]) > 1 else ".")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scorecard", type=Path, help="scorecard.json written by `skd scorecard`")
    args = p.parse_args(argv)
    try:
        card = json.loads(args.scorecard.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"error: cannot read {args.scorecard}: {e}", file=sys.stderr)
        return 2
    print(table(card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
