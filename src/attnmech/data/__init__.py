"""What a next-token dataset is: the container and its validation, generators, files, plain text.

numpy only. ``attnmech.data.X`` still resolves the names of the former ``attnmech.data`` module
(now :mod:`attnmech.data.dataset`).
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module(".dataset", __name__), name)
