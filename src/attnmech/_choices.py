"""The names of every choice the library accepts, importable without numpy or torch.

Each tuple here is the single source of truth for its choice: the defining core module imports it
(``data.EMBEDDING_KINDS is _choices.EMBEDDING_KINDS``) and the command line builds its option
choices from it, so ``attnmech --help`` needs neither numpy nor torch.
"""

from __future__ import annotations

__all__ = [
    "EMBEDDING_KINDS",
    "GRAPH_KINDS",
    "UNREALIZABLE_POLICIES",
    "SVM_NORMS",
    "EDGE_MODES",
    "TEXT_LEVELS",
    "OPTIMIZER_NAMES",
    "HEAD_NAMES",
    "LOSS_NAMES",
    "PARAMETERIZATION_NAMES",
    "INIT_NAMES",
]

# core
EMBEDDING_KINDS = ("random", "ortho", "equicorr")  # data.make_embeddings
GRAPH_KINDS = ("cyclic", "acyclic", "any")  # data.make_dataset(graph=...)
UNREALIZABLE_POLICIES = ("raise", "drop", "repair", "keep")  # data.Dataset(on_unrealizable=...)
SVM_NORMS = ("fro", "nuclear")  # theory.solve(svm_norm=...)
EDGE_MODES = ("condensation", "all")  # which TPG edges a drawing shows (report)
TEXT_LEVELS = ("word", "char")  # text.text_dataset(level=...)

# torch layer: hard-coded here, in ONE place, until the merge.
# MERGE: wired to attnmech.optim.OPTIMIZERS (keys) and to the torch-free name lists of the model
# (heads, losses, parameterizations) and of training (inits) at merge; tests/test_cli.py checks
# that these equal train.OPTIMIZERS, model.HEADS, model.LOSSES, model.PARAMETERIZATIONS and
# train.INITS.
OPTIMIZER_NAMES = ("gd", "ngd", "adam")  # wired to attnmech.optim.OPTIMIZERS at merge
HEAD_NAMES = ("iden", "gen")
LOSS_NAMES = ("log", "ce", "squared", "correlation")
PARAMETERIZATION_NAMES = ("combined", "factorized")
INIT_NAMES = ("uniform", "zero")
