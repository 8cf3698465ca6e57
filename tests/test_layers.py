"""The package's layers (docs/ARCHITECTURE.md): core, torch layer, presentation.

- core modules import only numpy, scipy and networkx at module level; importing every one of them
  in a fresh interpreter loads neither torch, matplotlib nor cvxpy;
- ``import attnmech`` is lazy: using a core name loads no torch;
- the static import graph of the package (every ``from .x import`` / ``from . import x``, at any
  depth, function bodies included) has no cycle, and no core module imports the torch layer or the
  presentation layer.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import attnmech

PACKAGE = Path(attnmech.__file__).resolve().parent

CORE = {
    "__init__",
    "errors",
    "_io",
    "_results",
    "_summary",
    "_choices",
    "_notebook_records",
    "data",
    "text",
    "graphs",
    "svm",
    "finite",
    "newton",
    "automaton",
    "theory",
    "local",
    "reference",
    "norms",
    "tokenspace",
}
TORCH_LAYER = {
    "model",
    "optim",
    "training",
    "regpath",
    "finite_path",
    "metrics",
    "verification",
}
PRESENTATION = {
    "report",
    "experiments",
    "demo",
    "authors",
    "bias",
    "language",
    "sweeps",
    "cli",
    "__main__",
}
HEAVY = ("torch", "matplotlib", "cvxpy")
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    """Top-level module name (a subpackage counts as one) -> its files."""
    found: dict[str, list[Path]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found.setdefault(parts[0], []).append(path)
    return found


def layer(name: str) -> str:
    for label, members in (("core", CORE), ("torch", TORCH_LAYER), ("presentation", PRESENTATION)):
        if name in members:
            return label
    raise AssertionError(
        f"module attnmech.{name} is in no layer; add it to CORE, TORCH_LAYER or PRESENTATION "
        "here and to docs/ARCHITECTURE.md"
    )


def imports_in(source: str, depth: int = 0) -> set[str]:
    """Package modules a source file imports, at any depth (function bodies included).

    ``depth`` is how deep the file sits below the package (0: a top-level module); relative imports
    that stay inside its subpackage are not counted. ``from . import name`` counts as an import of
    the module that defines ``name`` (through the package's lazy table) or of submodule ``name``.
    """
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets |= {a.name.split(".")[1] for a in node.names if a.name.startswith("attnmech.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module and node.module.split(".")[0] == "attnmech":
                rest = node.module.split(".")[1:]
                targets |= set(rest[:1]) or {
                    attnmech._EXPORTS.get(a.name, a.name) for a in node.names
                }
        elif isinstance(node, ast.ImportFrom) and node.level - 1 >= depth:
            if node.module:
                targets.add(node.module.split(".")[0])
            else:
                targets |= {attnmech._EXPORTS.get(a.name, a.name) for a in node.names}
    return targets


def imports_of(files: list[Path], name: str) -> set[str]:
    """The package modules that module ``name`` (its ``files``) imports."""
    targets: set[str] = set()
    for path in files:
        depth = len(path.relative_to(PACKAGE).parts) - 1
        targets |= imports_in(path.read_text(encoding="utf-8"), depth)
    return {t for t in targets if t in modules() and t != name}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports. The package's ``__init__`` is left out: it
    imports nothing at run time (its imports are for type checkers; names resolve lazily)."""
    return {
        name: imports_of(files, name) for name, files in modules().items() if name != "__init__"
    }


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_core_imports_no_torch_layer_or_presentation():
    bad = [
        f"attnmech.{name} ({layer(name)}) imports attnmech.{target} ({layer(target)})"
        for name, targets in import_graph().items()
        for target in sorted(targets)
        if layer(name) == "core"
        and layer(target) != "core"
        or layer(name) == "torch"
        and layer(target) == "presentation"
    ]
    assert not bad, "\n".join(bad)


def test_import_graph_has_no_cycle():
    graph = {
        name: {t for t in targets if (name, t) not in KNOWN_CYCLE_EDGES}
        for name, targets in import_graph().items()
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_graph_check_sees_every_kind_of_import():
    source = (
        "from .data import Dataset\n"
        "import attnmech.svm\n"
        "def f():\n"
        "    from .model import AttentionConfig\n"
        "    from . import solve, graphs\n"
        "    from attnmech import load_run\n"
        "    from .x.y import z\n"
    )
    found = imports_in(source)
    assert found >= {"data", "svm", "model", "theory", "graphs", "x", attnmech._EXPORTS["load_run"]}
    assert imports_in("from .runner import run\nfrom ..theory import solve\n", depth=1) == {
        "theory"
    }


def test_core_modules_load_no_heavy_library():
    """Every core module, imported in one fresh interpreter: torch, matplotlib, cvxpy stay out.

    One interpreter for all of them: if their union loads none, no single one does.
    """
    core = sorted(m for m in CORE if m in modules() and m != "__init__")
    code = (
        "import importlib, json, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module('attnmech.' + name)\n"
        "import attnmech\n"
        "attnmech.solve, attnmech.Dataset, attnmech.load_theory, attnmech.Automaton\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == []


def test_lazy_package_resolves_every_public_name():
    assert sorted(attnmech.__all__) == sorted(attnmech._EXPORTS)
    for name in attnmech.__all__:
        value = getattr(attnmech, name)
        module = attnmech._EXPORTS[name]
        assert getattr(importlib.import_module(f"attnmech.{module}"), name) is value
    assert set(attnmech.__all__) <= set(dir(attnmech))
    with pytest.raises(AttributeError, match="no attribute 'frobnicate'"):
        attnmech.frobnicate  # noqa: B018
    # no module shares its name with a public function
    for name in ("train", "verify", "solve"):
        assert not (PACKAGE / f"{name}.py").exists()
        assert callable(getattr(attnmech, name))
