"""Old module paths, kept importable for one release.

Before 0.2 the package was a flat folder (``attnmech.svm``, ``attnmech.training``,
``attnmech.experiments.runner``, ...). The modules now live in folders that show the layers
(``data/``, ``theory/``, ``layer/``, ``studies/``, ``cli/``). Importing an old path still works: a
finder on ``sys.meta_path`` maps it to the new module, which is the very same module object (so
``attnmech.svm is attnmech.theory.svm``, private names and monkeypatching included), and a
``DeprecationWarning`` names the new path. Inside the package, always import the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

# old module -> new module (both under ``attnmech``). A package entry maps its submodules too.
MOVED_MODULES: dict[str, str] = {
    "text": "data.text",
    "graphs": "theory.graphs",
    "svm": "theory.svm",
    "norms": "theory.norms",
    "tokenspace": "theory.tokenspace",
    "finite": "theory.finite",
    "newton": "theory.newton",
    "automaton": "theory.automaton",
    "local": "theory.local",
    "reference": "theory.reference",
    "model": "layer.model",
    "optim": "layer.optim",
    "training": "layer.training",
    "metrics": "layer.metrics",
    "verification": "layer.verification",
    "finite_path": "layer.finite_path",
    "regpath": "layer.regpath",
    "report": "studies.report",
    "demo": "studies.demo",
    "bias": "studies.bias",
    "authors": "studies.authors",
    "language": "studies.text",
    "experiments": "studies.reproduction",
    "sweeps": "studies.sweeps",
}
_PREFIX = "attnmech."


def new_path(old: str) -> str | None:
    """The new dotted path of an old ``attnmech.*`` module path, or None if it did not move."""
    if not old.startswith(_PREFIX):
        return None
    rest = old[len(_PREFIX) :]
    head, _, tail = rest.partition(".")
    target = MOVED_MODULES.get(head)
    if target is None:
        return None
    return _PREFIX + target + (f".{tail}" if tail else "")


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{self.old} moved to {self.new}; the old path will be removed in a future release",
            DeprecationWarning,
            stacklevel=4,
        )
        module = importlib.import_module(self.new)
        self._spec = module.__spec__  # the import system overwrites it; exec_module restores it
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = new_path(fullname)
        if new is None:
            return None
        found = importlib.util.find_spec(new)
        is_package = found is not None and found.submodule_search_locations is not None
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(fullname, new), is_package=is_package
        )


_FINDER = _AliasFinder()


def install_aliases() -> None:
    """Put the old-path finder first on ``sys.meta_path`` (idempotent): a stale folder left by an
    older install must not shadow it."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
