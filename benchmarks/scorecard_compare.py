"""Several scorecards side by side: one row per targeted scorecard row, one column per model.

    python benchmarks/scorecard_compare.py A/scorecard.json B/scorecard.json --name "step 29,000" --name "decay, 32,000"

Each column is one `skd scorecard` output (scorecard.json); the last line counts the targeted
rows each model meets. Values are the mean over the draws; ✗ marks a missed target. Rows that
have no target (the refined lens, the supervised groups) are left out unless --all is given.
This is how docs/ABLATIONS.md compares checkpoints and configurations.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _fmt(row: dict | None) -> str:
    if row is None:
        return "–"
    key, v = row["key"], row["value"]
    if key.endswith(".is"):
        text = f"{v:.2f}"
    elif key.endswith(".msd"):
        text = f"{v:.3f}"
    else:
        text = f"{100 * v:.1f}"
    return text + (" ✗" if row.get("met") is False else "")


def compare(cards: list[dict], names: list[str], *, all_rows: bool = False) -> str:
    """Markdown table of the rows of ``cards`` (scorecard.json contents) under ``names``."""
    if len(cards) != len(names):
        raise ValueError(f"{len(cards)} scorecards but {len(names)} names")
    keyed = [{r["key"]: r for r in c["rows"]} for c in cards]
    order: list[str] = []
    for c in cards:
        for r in c["rows"]:
            if r["key"] not in order and (all_rows or r["target"] is not None):
                order.append(r["key"])
    label = {r["key"]: r["label"] for c in cards for r in c["rows"]}
    target = {r["key"]: r["target"] for c in cards for r in c["rows"]}
    lines = ["| row | target | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for key in order:
        cells = [_fmt(k.get(key)) for k in keyed]
        lines.append(f"| {label[key]} | {target[key] or ''} | " + " | ".join(cells) + " |")
    met = [f"**{c['targets_met']} / {c['targets']}**" for c in cards]
    lines.append("| **targeted rows met** | | " + " | ".join(met) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cards", nargs="+", type=Path, help="scorecard.json files")
    ap.add_argument("--name", action="append", default=[], help="column name, once per file in order (default: the files' folders)")
    ap.add_argument("--all", action="store_true", help="also the rows without a target")
    args = ap.parse_args(argv)
    names = args.name or [p.parent.name for p in args.cards]
    try:
        cards = [json.loads(p.read_text()) for p in args.cards]
        print(compare(cards, names, all_rows=args.all))
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
