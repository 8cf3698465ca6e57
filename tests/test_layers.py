"""The package's layers are its folders (docs/ARCHITECTURE.md).

From the bottom up: the underscore modules and ``errors`` (base), ``data/`` (numpy only),
``theory/`` (numpy / scipy / networkx), ``layer/`` (torch), ``interp/`` (real transformer heads),
``studies/`` (the studies and their reports), ``cli/``. A module imports its own folder and the
folders below it, never one above; the static import graph (function bodies included) has no
cycle; the base, ``data/`` and ``theory/`` modules load neither torch, matplotlib nor cvxpy.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import attnmech

PACKAGE = Path(attnmech.__file__).resolve().parent
ORDER = ("base", "data", "theory", "layer", "interp", "studies", "cli", "__main__")
CORE = ("base", "data", "theory")
HEAVY = ("torch", "matplotlib", "cvxpy")


@functools.cache
def modules() -> dict[str, Path]:
    """Dotted module name below ``attnmech`` (a package by its folder name) -> its file."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts) or "__init__"] = path
    return found


def folder(name: str) -> str:
    """The layer of a module: its top folder, or ``base`` for a top-level module."""
    head = name.split(".")[0]
    if "." not in name and (PACKAGE / f"{head}.py").exists():
        return "__main__" if head == "__main__" else "base"
    if head not in ORDER:
        raise AssertionError(f"attnmech.{name} lies in folder {head!r}, which is no layer")
    return head


def owner(target: str) -> str | None:
    """The deepest package module that ``target`` (a dotted path below attnmech) names."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules():
            return name
        parts.pop()
    return None


def imports_in(source: str, package: list[str]) -> set[str]:
    """Package modules a source imports (function bodies included). ``package`` is the dotted
    package of the file below attnmech (``[]`` for a top-level module)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets |= {a.name[len("attnmech.") :] for a in node.names if a.name.startswith("attnmech.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not node.module or node.module.split(".")[0] != "attnmech":
                    continue
                base = node.module.split(".")[1:]
            else:
                base = package[: len(package) - (node.level - 1)] + (
                    node.module.split(".") if node.module else []
                )
            if base:
                prefix = ".".join(base)
                targets.add(prefix)
                targets |= {f"{prefix}.{a.name}" for a in node.names if f"{prefix}.{a.name}" in modules()}
            else:
                targets |= {attnmech._EXPORTS.get(a.name, a.name) for a in node.names}
    return targets


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``__init__`` of the package left out: its run-time
    names resolve lazily)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules().items():
        if name == "__init__":
            continue
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = {owner(t) for t in imports_in(path.read_text(encoding="utf-8"), package)}
        graph[name] = {t for t in found if t and t != name and t != "__init__"}
    return graph


def test_every_module_lies_in_a_layer():
    for name in modules():
        if name != "__init__":
            folder(name)


def test_no_module_imports_a_folder_above_its_own():
    bad = [
        f"attnmech.{name} ({folder(name)}) imports attnmech.{target} ({folder(target)})"
        for name, targets in import_graph().items()
        for target in sorted(targets)
        if ORDER.index(folder(target)) > ORDER.index(folder(name))
    ]
    assert not bad, "\n".join(bad)


def test_import_graph_has_no_cycle():
    graph = import_graph()
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
        "from .data.dataset import Dataset\n"
        "import attnmech.theory.svm\n"
        "def f():\n"
        "    from ..layer.model import AttentionConfig\n"
        "    from . import graphs, finite\n"
        "    from attnmech import load_run\n"
    )
    found = {owner(t) for t in imports_in(source, ["theory"])}
    assert found >= {"theory.svm", "layer.model", "theory.graphs", "theory.finite", "layer.training"}
    assert {owner(t) for t in imports_in("from .data.dataset import Dataset\n", [])} == {"data.dataset"}


def test_core_modules_load_no_heavy_library():
    """Every base, data and theory module, imported in one fresh interpreter: torch, matplotlib and
    cvxpy stay out (if their union loads none, no single one does)."""
    core = sorted(m for m in modules() if m != "__init__" and folder(m) in CORE)
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


def test_old_module_paths_resolve_to_the_moved_modules_with_a_warning():
    from attnmech._compat import MOVED_MODULES

    for old, new in MOVED_MODULES.items():
        sys.modules.pop(f"attnmech.{old}", None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(f"attnmech.{old}")
        assert module is importlib.import_module(f"attnmech.{new}")
        assert module.__spec__.name == f"attnmech.{new}"
        assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
    from attnmech.experiments.runner import run_reproduction  # a submodule of a moved package

    assert run_reproduction.__module__ == "attnmech.studies.reproduction.runner"
    from attnmech.theory import Theory  # names of the former theory module
    from attnmech.data import make_dataset  # names of the former data module

    assert Theory.__module__ == "attnmech.theory.solve"
    assert make_dataset.__module__ == "attnmech.data.generators"
