"""What a next-token dataset is: the container and its validation, generators, files, plain text.

numpy only. :mod:`~attnmech.data.dataset` (the :class:`Dataset` container and the validation of
sequences, labels and embeddings), :mod:`~attnmech.data.generators` (embeddings, the paper's random
datasets, label repair, generator specs), :mod:`~attnmech.data.files` (``.npz`` and ``.jsonl``
files) and :mod:`~attnmech.data.text` (datasets cut from plain text). ``attnmech.data.X`` resolves
every public name of the former ``attnmech.data`` module, wherever it lives now.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = (".dataset", ".generators", ".files")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    for module in _MODULES:
        found = importlib.import_module(module, __name__)
        if name in vars(found):
            return vars(found)[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
