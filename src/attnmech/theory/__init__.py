"""The paper's objects: token-priority graphs, the Graph-SVM, the finite part, the automaton.

numpy / scipy / networkx only at module level. ``attnmech.theory.X`` still resolves the names of
the former ``attnmech.theory`` module (now :mod:`attnmech.theory.solve`: ``solve``, ``Theory``,
``load_theory``).
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module(".solve", __name__), name)
