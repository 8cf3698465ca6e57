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
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> defining module. ``import attnmech`` imports none of them: each module is loaded
# the first time one of its names is used (PEP 562 ``__getattr__``), so the numpy/scipy core works
# without torch and ``attnmech --help`` stays fast. Inside the package, import from the defining
# module (``from .training import train``), never from ``attnmech``.
#
# MERGE: on the arch-core branch train.py/verify.py still exist; the entries marked "# MERGE"
# point at them. After arch-train's split, switch them to the final modules named in the comment.
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
    # torch layer
    "AttentionConfig": "model",
    "AttentionObjective": "model",
    "SingleLayerAttention": "model",
    "run_with_cache": "model",
    "TrainConfig": "train",  # MERGE: training
    "TrainResult": "train",  # MERGE: training
    "train": "train",  # MERGE: training
    "load_run": "train",  # MERGE: training
    "gradient_descent": "train",  # MERGE: training
    "regularization_path": "train",  # MERGE: regpath
    "RegularizationPath": "train",  # MERGE: regpath
    "run_finite_trajectory": "train",  # MERGE: finite_path
    "FiniteTrajectory": "train",  # MERGE: finite_path
    "verify": "verify",  # MERGE: verification
    "VerificationReport": "verify",  # MERGE: verification
    "TrajectoryMetrics": "verify",  # MERGE: metrics
    "correlation": "verify",  # MERGE: metrics
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


class _Package(types.ModuleType):
    """The package module, kept from binding a submodule over a public function of its name.

    Importing the submodule ``attnmech.train`` makes Python set ``attnmech.train`` to that module,
    which would hide the function ``attnmech.train``. MERGE: once no module shares its name with a
    public name (train.py and verify.py are gone), this class can be removed.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # for type checkers and IDEs only; nothing is imported at run time
    from ._results import SolverStats, SolveStatus
    from .automaton import Automaton
    from .data import Dataset, load_dataset, make_dataset, make_embeddings, repair_labels
    from .errors import (
        AttnmechError,
        ConvergenceWarning,
        ExperimentNotFoundError,
        InfeasibleProblemError,
        InvalidDatasetError,
        InvalidParameterError,
        NotFittedError,
        SolverError,
        UnrealizableLabelError,
    )
    from .finite import FiniteResult, ReducedData, reduce_dataset, solve_finite
    from .graphs import PriorityGraphs, build_priority_graphs
    from .model import AttentionConfig, AttentionObjective, SingleLayerAttention, run_with_cache
    from .svm import GraphSVMResult, solve_graph_svm, solve_nuclear_svm
    from .text import TextDataset, text_dataset
    from .theory import AttentionTheory, Theory, load_theory, solve
    from .train import (  # MERGE: training, regpath, finite_path
        FiniteTrajectory,
        RegularizationPath,
        TrainConfig,
        TrainResult,
        gradient_descent,
        load_run,
        regularization_path,
        run_finite_trajectory,
        train,
    )
    from .verify import (  # MERGE: verification, metrics
        TrajectoryMetrics,
        VerificationReport,
        correlation,
        verify,
    )
