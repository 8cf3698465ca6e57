"""The names of every choice the library accepts, importable without numpy or torch.

Each tuple here is the single source of truth for its choice: the defining module imports it
(``data.EMBEDDING_KINDS is _choices.EMBEDDING_KINDS``; :mod:`attnmech.layer.model` keys its registries
``HEADS``, ``LOSSES`` and ``PARAMETERIZATIONS`` by exactly these names, which a test checks) and
the command line builds its option choices from it, so ``attnmech --help`` needs neither numpy nor
torch. Step-rule names are the keys of :data:`attnmech.layer.optim.OPTIMIZERS`, which imports without
numpy or torch as well.
"""

from __future__ import annotations

__all__ = [
    "EMBEDDING_KINDS",
    "GRAPH_KINDS",
    "UNREALIZABLE_POLICIES",
    "SVM_NORMS",
    "EDGE_MODES",
    "TEXT_LEVELS",
    "HEAD_NAMES",
    "LOSS_NAMES",
    "PARAMETERIZATION_NAMES",
    "INIT_NAMES",
    "DTYPE_NAMES",
]

# core
EMBEDDING_KINDS = ("random", "ortho", "equicorr", "onehot")  # data.make_embeddings
GRAPH_KINDS = ("cyclic", "acyclic", "any")  # data.make_dataset(graph=...)
UNREALIZABLE_POLICIES = ("raise", "drop", "repair", "keep")  # data.Dataset(on_unrealizable=...)
SVM_NORMS = ("fro", "nuclear", "spectral", "l1", "linf")  # norms.NORMS; also "lp:P", 1 < P < inf
EDGE_MODES = ("condensation", "all")  # which TPG edges a drawing shows (report)
TEXT_LEVELS = ("word", "char")  # text.text_dataset(level=...)

# torch layer (names only)
HEAD_NAMES: tuple[str, ...] = ("iden", "gen")
"""Heads: ``iden`` (p_j = attention mass on token j), ``gen`` (softmax(E X^T s))."""

LOSS_NAMES: tuple[str, ...] = ("log", "ce", "squared", "correlation", "exp")
"""Losses as functions of p_y: ``-log p_y`` (log, ce), ``(1 - p_y)^2``, ``-p_y``,
``1 / p_y - 1`` (exp: the exponential loss)."""

PARAMETERIZATION_NAMES: tuple[str, ...] = ("combined", "factorized")
"""``W`` itself, or ``W = W_K W_Q^T`` with both factors trained."""

INIT_NAMES: tuple[str, ...] = ("uniform", "zero")
"""Initialisations of ``TrainConfig.init`` (besides an explicit array)."""

DTYPE_NAMES: tuple[str, ...] = ("float64", "float32")
"""Floating-point types of ``AttentionConfig.dtype``."""
