"""The ``attnmech`` command-line interface.

This package is the only place that prints or exits. Each command parses its options, hands the work to
a library function and prints a short account of the result. Every error the library raises on
purpose (:class:`~attnmech.errors.AttnmechError`) and every file-system error becomes one line,
``error: ...``, on stderr and exit status 1; option errors are reported by the parser with exit
status 2. Warnings (for example an inaccurate solve) are printed as ``warning: ...``.

Commands: ``make-dataset``, ``graphs``, ``solve``, ``train``, ``verify``, ``demo``, ``reproduce``,
``experiments``. At import the package loads only typer and the numpy-free :mod:`attnmech._choices`
(every option's choices come from there, the library's single list of them); numpy, the solvers,
torch, matplotlib and rich are imported inside the command that needs them, so that
``attnmech --help`` stays fast. Output files are checked for writability before any long work.
Tables are drawn by rich: styled on a terminal, plain ASCII otherwise.
"""

from __future__ import annotations

from . import core, heads, studies, sweeps  # noqa: F401  (importing them registers their commands)
from ._app import (
    EdgeMode,
    EmbeddingKind,
    GraphKind,
    HeadKind,
    InitKind,
    LossKind,
    OnUnrealizable,
    Optimizer,
    Parameterization,
    TextLevel,
    app,
    main,
)
from .sweeps import SweepBackend

__all__ = [
    "EdgeMode",
    "EmbeddingKind",
    "GraphKind",
    "HeadKind",
    "InitKind",
    "LossKind",
    "OnUnrealizable",
    "Optimizer",
    "Parameterization",
    "SweepBackend",
    "TextLevel",
    "app",
    "main",
]
