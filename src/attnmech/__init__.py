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

__version__ = "0.1.0"

# Public name -> defining module. ``import attnmech`` imports none of them: each module is loaded
# the first time one of its names is used (PEP 562 ``__getattr__``), so the numpy/scipy core works
# without torch and ``attnmech --help`` stays fast. Inside the package, import from the defining
# module (``from .training import train``), never from ``attnmech``.
# No module shares its name with a public name (``attnmech.train`` and ``attnmech.verify`` are
# functions; their modules are ``training`` and ``verification``).
_EXPORTS: dict[str, str] = {
    # core (numpy / scipy / networkx only)
    "Dataset": "data",
    "load_dataset": "data",
    "make_dataset": "data",
    "make_embeddings": "data",
    "repair_labels": "data",
    "PriorityGraphs": "graphs",
    "build_priority_graphs": "graphs",
    "solve_graph_svm": "svm",
    "solve_nuclear_svm": "svm",
    "GraphSVMResult": "svm",
    "solve_finite": "finite",
    "reduce_dataset": "finite",
    "FiniteResult": "finite",
    "ReducedData": "finite",
    "Automaton": "automaton",
    "solve": "theory",
    "Theory": "theory",
    "load_theory": "theory",
    "AttentionTheory": "theory",
    "SolveStatus": "_results",
    "SolverStats": "_results",
    "text_dataset": "text",
    "TextDataset": "text",
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
    "solve_norm_svm": "norms",
    "parse_norm": "norms",
    # torch layer
    "AttentionConfig": "model",
    "AttentionObjective": "model",
    "SingleLayerAttention": "model",
    "run_with_cache": "model",
    "TrainConfig": "training",
    "TrainResult": "training",
    "train": "training",
    "load_run": "training",
    "gradient_descent": "optim",
    "regularization_path": "regpath",
    "RegularizationPath": "regpath",
    "run_finite_trajectory": "training",
    "FiniteTrajectory": "finite_path",
    "verify": "verification",
    "VerificationReport": "verification",
    "TrajectoryMetrics": "metrics",
    "correlation": "metrics",
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
    from .automaton import Automaton
    from .data import Dataset, load_dataset, make_dataset, make_embeddings, repair_labels
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
    from .finite import FiniteResult, ReducedData, reduce_dataset, solve_finite
    from .finite_path import FiniteTrajectory
    from .graphs import PriorityGraphs, build_priority_graphs
    from .metrics import TrajectoryMetrics, correlation
    from .model import AttentionConfig, AttentionObjective, SingleLayerAttention, run_with_cache
    from .norms import parse_norm, solve_norm_svm
    from .optim import gradient_descent
    from .regpath import RegularizationPath, regularization_path
    from .svm import GraphSVMResult, solve_graph_svm, solve_nuclear_svm
    from .text import TextDataset, text_dataset
    from .theory import AttentionTheory, Theory, load_theory, solve
    from .training import TrainConfig, TrainResult, load_run, run_finite_trajectory, train
    from .verification import VerificationReport, verify
