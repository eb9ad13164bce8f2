"""The layer rule of docs/ARCHITECTURE.md: imports point to the same or a lower layer, no cycles."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import skd
from skd._layers import LAYER_NAMES, import_edges, layer_name, layer_of, package_of

SRC = Path(skd.__file__).resolve().parents[1]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_every_top_level_part_has_a_layer() -> None:
    parts = {p.stem if p.suffix == ".py" else p.name for p in (SRC / "skd").iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists()) and not p.name.startswith("_")}
    assert parts <= set(LAYER_NAMES), f"not in skd._layers.LAYERS: {sorted(parts - set(LAYER_NAMES))}"


def test_imports_point_down_the_layers() -> None:
    up = [f"{a} (layer {layer_name(a)}) imports {b} (layer {layer_name(b)}), line {line}"
          for a, b, line in import_edges(SRC) if layer_of(b) > layer_of(a)]
    assert not up, "upward imports:\n" + "\n".join(up)


def test_no_cycles_between_packages_or_modules() -> None:
    edges = import_edges(SRC)
    packages: dict[str, set[str]] = defaultdict(set)
    modules: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in edges:
        if package_of(a) != package_of(b):
            packages[package_of(a)].add(package_of(b))
        if not b.startswith(a + "."):  # a package's __init__ may import its own submodules
            modules[a].add(b)
    assert _cycle(packages) is None, f"package cycle: {_cycle(packages)}"
    assert _cycle(modules) is None, f"module cycle: {_cycle(modules)}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule is not vacuous: a model module importing the training loop is reported."""
    pkg = tmp_path / "skd"
    for sub in ("model", "training"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "training" / "loop.py").write_text("X = 1\n")
    (pkg / "model" / "bad.py").write_text("def f():\n    from ..training.loop import X\n    return X\n")
    edges = import_edges(tmp_path)
    assert ("skd.model.bad", "skd.training.loop", 2) in edges
    assert any(layer_of(b) > layer_of(a) for a, b, _ in edges)
