"""The names of the model's and the training's choices, importable without torch.

The command line builds its option choices from these tuples, so listing them never loads torch.
:mod:`attnmech.model` keys its registries (``HEADS``, ``LOSSES``, ``PARAMETERIZATIONS``) by exactly
these names (a test checks it); step-rule names are the keys of
:data:`attnmech.optim.OPTIMIZERS`, which is torch-free as well.
"""

from __future__ import annotations

__all__ = ["HEAD_NAMES", "LOSS_NAMES", "PARAMETERIZATION_NAMES", "INIT_NAMES", "DTYPE_NAMES"]

HEAD_NAMES: tuple[str, ...] = ("iden", "gen")
"""Heads: ``iden`` (p_j = attention mass on token j), ``gen`` (softmax(E X^T s))."""

LOSS_NAMES: tuple[str, ...] = ("log", "ce", "squared", "correlation")
"""Losses as functions of p_y: ``-log p_y`` (log, ce), ``(1 - p_y)^2``, ``-p_y``."""

PARAMETERIZATION_NAMES: tuple[str, ...] = ("combined", "factorized")
"""``W`` itself, or ``W = W_K W_Q^T`` with both factors trained."""

INIT_NAMES: tuple[str, ...] = ("uniform", "zero")
"""Initialisations of ``TrainConfig.init`` (besides an explicit array)."""

DTYPE_NAMES: tuple[str, ...] = ("float64", "float32")
"""Floating-point types of ``AttentionConfig.dtype``."""
