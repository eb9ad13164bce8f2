"""The package's layers, lowest first, and the import graph they constrain.

Each top-level part of ``skd`` belongs to one layer; a module may import from its own layer or a
lower one, never from a higher one (checked by ``tests/test_architecture.py``; drawn by
``benchmarks/import_graph.py`` for docs/ARCHITECTURE.md). ``skd/__init__.py`` is the public API
on top of everything. Only the standard library is used here.
"""
from __future__ import annotations

import ast
from pathlib import Path

LAYERS: tuple[tuple[str, str], ...] = (
    ("config", "typed, frozen configs; TOML presets and --set overrides; every range checked once, here"),
    ("files", "atomic writes, safe checkpoints, the run-folder lock, memory and size limits"),
    ("koopman", "pure operator math: fit C, sorted eigenbasis, static set, KoopmanBasis, swaps of latents"),
    ("model", "KoopmanAE, frame networks, losses, precision plans"),
    ("data", "SequenceData; built-in shapes/oscillators, arrays, Sprites, audio/ (WAV, spectrograms)"),
    ("training", "the training loop, resume, run loading, distributed context, launcher"),
    ("pipelines", "on a trained model: encode/decode, BasisSpec fitting, swap/sample, refined split, factor discovery"),
    ("evaluation", "judge, metrics, two-factor protocols, multifactor matrix, audio EER, probes, scorecard"),
    ("render", "images, GIFs, plots, WAVs of model outputs; the demo report"),
    ("cli", "argument parsing, subcommands, mapping library errors to flag-level messages"),
)
LAYER_NAMES = tuple(name for name, _ in LAYERS)
API = "__init__"  # skd/__init__.py: the public API, above every library layer, below the CLI


def layer_name(module: str) -> str:
    return API if module == "skd" else module.split(".")[1]


def layer_of(module: str) -> float:
    """Rank of a dotted module name under ``skd``: its layer's index; the public API
    (``skd/__init__.py``) ranks between ``render`` and ``cli`` (the CLI reads ``skd.__version__``)."""
    parts = module.split(".")
    if parts == ["skd"]:
        return len(LAYER_NAMES) - 1.5
    head = parts[1]
    if head not in LAYER_NAMES:
        raise KeyError(f"{module}: top-level part {head!r} is in no layer; add it to skd._layers.LAYERS")
    return LAYER_NAMES.index(head)


def module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_pkg: bool, known: set[str]) -> list[str]:
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not (target == "skd" or target.startswith("skd.")):
        return []
    out = []
    for alias in node.names:  # `from pkg import submodule` imports the submodule
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in known else target)
    return out


def import_edges(src: Path) -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import of an skd module under ``src`` (the folder
    holding ``skd/``), including imports inside functions."""
    files = sorted((src / "skd").rglob("*.py"))
    known = {module_name(f, src) for f in files}
    edges = []
    for f in files:
        mod = module_name(f, src)
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(node, mod, f.name == "__init__.py", known)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name == "skd" or a.name.startswith("skd.")]
            else:
                continue
            edges += [(mod, t, node.lineno) for t in targets if t != mod]
    return edges


def package_of(module: str) -> str:
    """``skd.pipelines.ops`` -> ``pipelines``; ``skd.config`` -> ``config``; ``skd`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else API
