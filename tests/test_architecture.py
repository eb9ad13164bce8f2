"""Architecture rules: the layer rule of docs/ARCHITECTURE.md (imports point to the same or a lower layer, no
cycles) and small functions (none over 60 lines in the library)."""
from __future__ import annotations

import ast
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


# --------------------------------------------------------------------------- small functions
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS_ALLOWED: set[str] = set()


def _long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``module.qualname`` → lines (``end_lineno - lineno + 1``) of every function or method under
    ``root/skd`` longer than ``limit``, nested functions included."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, module: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                lines = child.end_lineno - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and lines > limit:
                    found[f"{module}{name}"] = lines
            visit(child, module, name)

    for path in sorted((root / "skd").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        visit(ast.parse(path.read_text(), str(path)), module, "")
    return found


def test_no_function_over_60_lines_in_the_library() -> None:
    long = {name: n for name, n in _long_functions(SRC).items() if name not in LONG_FUNCTIONS_ALLOWED}
    assert not long, (f"functions over {MAX_FUNCTION_LINES} lines (split them: step, checkpoint, logging...):\n"
                      + "\n".join(f"  {name}: {n} lines" for name, n in sorted(long.items())))


def test_the_length_checker_sees_a_long_function(tmp_path: Path) -> None:
    """The rule is not vacuous: a 61-line method and a 61-line nested function are reported, 60 lines are not."""
    (tmp_path / "skd").mkdir()
    body = "".join("    x = 1\n" for _ in range(59))
    nested = "def outer():\n    def inner():\n" + "".join("        x = 1\n" for _ in range(60)) + "    return inner\n"
    (tmp_path / "skd" / "m.py").write_text(
        f"def ok():\n{body}\nclass K:\n    def long(self):\n" + "".join("        x = 1\n" for _ in range(60)) + nested)
    assert _long_functions(tmp_path) == {"skd.m.K.long": 61, "skd.m.outer.inner": 61, "skd.m.outer": 63}
