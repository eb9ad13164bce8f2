"""Print the layer diagram of ``src/skd`` from its imports (for docs/ARCHITECTURE.md).

    PYTHONPATH=src python benchmarks/import_graph.py            # text diagram (markdown)
    PYTHONPATH=src python benchmarks/import_graph.py --png F    # and the package graph as a PNG

Layers come from ``skd._layers.LAYERS`` (lowest first); every arrow is an import, counted once
per (importer, imported) module pair. An import that points UP a layer is printed as an error
(``tests/test_architecture.py`` fails on it).
"""
from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

from skd._layers import API, LAYERS, import_edges, layer_of, package_of

SRC = Path(__file__).resolve().parents[1] / "src"


def diagram(src: Path = SRC) -> str:
    edges = {(a, b) for a, b, _ in import_edges(src)}
    files = sorted((src / "skd").rglob("*.py"))
    per_pkg = Counter(package_of(".".join(f.relative_to(src).with_suffix("").parts).removesuffix(".__init__"))
                      for f in files)
    down: dict[str, Counter] = defaultdict(Counter)
    up = []
    for a, b in edges:
        pa, pb = package_of(a), package_of(b)
        if layer_of(b) > layer_of(a):
            up.append(f"{a} -> {b}")
        if pa != pb:
            down[pa][pb] += 1
    lines = [f"src/skd: {len(files)} files, {len(edges)} import arrows between modules, "
             f"{sum(len(v) for v in down.values())} between packages, {len(up)} pointing up.", "",
             "```", "layer  package      files  imports from (arrows)"]
    rows = [(name, what) for name, what in LAYERS]
    rows.insert(len(rows) - 1, (API, "skd/__init__.py: the public API (skd.*)"))
    for name, _ in reversed(rows):
        i = "-" if name == API else str(int(layer_of(f"skd.{name}")))
        deps = ", ".join(f"{p} ({n})" for p, n in sorted(down[name].items(), key=lambda kv: -layer_of(
            "skd" if kv[0] == API else f"skd.{kv[0]}")))
        lines.append(f"{i:>5}  {name:<12} {per_pkg[name]:>5}  {deps or '-'}")
    lines.append("```")
    if up:
        lines += ["", "UPWARD IMPORTS:", *sorted(up)]
    return "\n".join(lines)


def draw(png: Path, src: Path = SRC) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _ in LAYERS[:-1]] + [API, LAYERS[-1][0]]
    y = {n: i for i, n in enumerate(names)}
    pkgs = {(package_of(a), package_of(b)) for a, b, _ in import_edges(src) if package_of(a) != package_of(b)}
    fig, ax = plt.subplots(figsize=(6, 7))
    for a, b in sorted(pkgs):
        bend = 0.25 + 0.12 * (y[a] - y[b])
        ax.annotate("", xy=(0, y[b]), xytext=(0, y[a]), arrowprops=dict(arrowstyle="->", color="0.55", lw=0.8,
                    connectionstyle=f"arc3,rad={bend if (y[a] + y[b]) % 2 else -bend}"))
    for n, i in y.items():
        ax.text(0, i, n, ha="center", va="center", bbox=dict(boxstyle="round", fc="white", ec="black"))
    ax.set_xlim(-2.5, 2.5)
    ax.set_ylim(-0.8, len(names) - 0.2)
    ax.axis("off")
    ax.set_title("skd: imports between packages (arrows point down the layers)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--png", type=Path, help="also draw the package graph into this PNG")
    args = ap.parse_args()
    print(diagram())
    if args.png:
        print(f"wrote {draw(args.png)}")


if __name__ == "__main__":
    main()
