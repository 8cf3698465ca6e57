"""attnmech: the mechanics of next-token prediction with self-attention, as a working instrument.

Implements Li, Huang, Ildiz, Rawat, Oymak, "Mechanics of Next Token Prediction with
Self-Attention", AISTATS 2024 (arXiv 2403.08081): token-priority graphs and their SCCs, the
Graph-SVM direction ``W_svm``, the finite part ``W_fin``, the automaton they define, and training
of a single attention layer measured against that prediction.

Names used for the paper's letters:

=====  ==================  ==============================================
paper  attnmech            meaning
=====  ==================  ==============================================
K      ``vocab_size``      number of tokens (rows of ``embeddings``)
d      ``embedding_dim``   embedding dimension (``W`` is d x d)
T      ``seq_len``         sequence length (sequences may be ragged)
n      ``n_samples``       number of (sequence, label) samples
G^(k)  ``graphs``          token-priority graph of last token k
=====  ==================  ==============================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from ._compat import install_aliases as _install_aliases

_install_aliases()

# Public name -> defining module. ``import attnmech`` imports none of them: each module is loaded
# the first time one of its names is used (PEP 562 ``__getattr__``), so the numpy/scipy core works
# without torch and ``attnmech --help`` stays fast. Inside the package, import from the defining
# module (``from .training import train``), never from ``attnmech``.
# No module shares its name with a public name (``attnmech.train`` and ``attnmech.verify`` are
# functions; their modules are ``training`` and ``verification``).
_EXPORTS: dict[str, str] = {
    # core (numpy / scipy / networkx only)
    "Dataset": "data.dataset",
    "load_dataset": "data.files",
    "make_dataset": "data.generators",
    "make_embeddings": "data.generators",
    "repair_labels": "data.generators",
    "PriorityGraphs": "theory.graphs",
    "build_priority_graphs": "theory.graphs",
    "solve_graph_svm": "theory.svm",
    "solve_nuclear_svm": "theory.svm",
    "GraphSVMResult": "theory.svm",
    "solve_finite": "theory.finite",
    "reduce_dataset": "theory.finite",
    "FiniteResult": "theory.finite",
    "ReducedData": "theory.finite",
    "Automaton": "theory.automaton",
    "solve": "theory.solve",
    "Theory": "theory.solve",
    "load_theory": "theory.solve",
    "AttentionTheory": "theory.solve",
    "SolveStatus": "_results",
    "SolverStats": "_results",
    "text_dataset": "data.text",
    "TextDataset": "data.text",
    "bundled_corpus": "data.text",
    "AttnmechError": "errors",
    "ConvergenceWarning": "errors",
    "ExperimentNotFoundError": "errors",
    "InvalidParameterError": "errors",
    "InfeasibleProblemError": "errors",
    "InvalidDatasetError": "errors",
    "NotFittedError": "errors",
    "SolverError": "errors",
    "UnrealizableLabelError": "errors",
    "FileFormatError": "errors",
    "CheckpointError": "errors",
    "OutputError": "errors",
    "solve_norm_svm": "theory.norms",
    "parse_norm": "theory.norms",
    # torch layer
    "AttentionConfig": "layer.model",
    "AttentionObjective": "layer.model",
    "SingleLayerAttention": "layer.model",
    "run_with_cache": "layer.model",
    "TrainConfig": "layer.training",
    "TrainResult": "layer.training",
    "train": "layer.training",
    "load_run": "layer.training",
    "gradient_descent": "layer.optim",
    "regularization_path": "layer.regpath",
    "RegularizationPath": "layer.regpath",
    "run_finite_trajectory": "layer.training",
    "FiniteTrajectory": "layer.finite_path",
    "verify": "layer.verification",
    "VerificationReport": "layer.verification",
    "TrajectoryMetrics": "layer.metrics",
    "correlation": "layer.metrics",
}

__all__ = [
    "Dataset",
    "load_dataset",
    "make_dataset",
    "make_embeddings",
    "repair_labels",
    "PriorityGraphs",
    "build_priority_graphs",
    "solve_graph_svm",
    "solve_nuclear_svm",
    "GraphSVMResult",
    "solve_finite",
    "reduce_dataset",
    "FiniteResult",
    "ReducedData",
    "Automaton",
    "solve",
    "Theory",
    "load_theory",
    "AttentionTheory",
    "SolveStatus",
    "text_dataset",
    "AttentionConfig",
    "AttentionObjective",
    "SingleLayerAttention",
    "run_with_cache",
    "TrainConfig",
    "TrainResult",
    "train",
    "load_run",
    "regularization_path",
    "RegularizationPath",
    "run_finite_trajectory",
    "FiniteTrajectory",
    "gradient_descent",
    "verify",
    "VerificationReport",
    "TrajectoryMetrics",
    "correlation",
    "TextDataset",
    "bundled_corpus",
    "SolverStats",
    "AttnmechError",
    "ConvergenceWarning",
    "ExperimentNotFoundError",
    "InvalidParameterError",
    "InfeasibleProblemError",
    "InvalidDatasetError",
    "NotFittedError",
    "SolverError",
    "UnrealizableLabelError",
    "FileFormatError",
    "CheckpointError",
    "OutputError",
    "solve_norm_svm",
    "parse_norm",
]


def __getattr__(name: str) -> Any:
    """Load the module that defines ``name`` on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'attnmech' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs only; nothing is imported at run time
    from ._results import SolverStats, SolveStatus
    from .theory.automaton import Automaton
    from .data.dataset import Dataset
    from .data.files import load_dataset
    from .data.generators import make_dataset, make_embeddings, repair_labels
    from .errors import (
        AttnmechError,
        CheckpointError,
        ConvergenceWarning,
        ExperimentNotFoundError,
        FileFormatError,
        InfeasibleProblemError,
        InvalidDatasetError,
        InvalidParameterError,
        NotFittedError,
        OutputError,
        SolverError,
        UnrealizableLabelError,
    )
    from .theory.finite import FiniteResult, ReducedData, reduce_dataset, solve_finite
    from .layer.finite_path import FiniteTrajectory
    from .theory.graphs import PriorityGraphs, build_priority_graphs
    from .layer.metrics import TrajectoryMetrics, correlation
    from .layer.model import AttentionConfig, AttentionObjective, SingleLayerAttention, run_with_cache
    from .theory.norms import parse_norm, solve_norm_svm
    from .layer.optim import gradient_descent
    from .layer.regpath import RegularizationPath, regularization_path
    from .theory.svm import GraphSVMResult, solve_graph_svm, solve_nuclear_svm
    from .data.text import TextDataset, bundled_corpus, text_dataset
    from .theory.solve import AttentionTheory, Theory, load_theory, solve
    from .layer.training import TrainConfig, TrainResult, load_run, run_finite_trajectory, train
    from .layer.verification import VerificationReport, verify
