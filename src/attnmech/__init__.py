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
from .finite_path import FiniteTrajectory, run_finite_trajectory
from .graphs import PriorityGraphs, build_priority_graphs
from .metrics import TrajectoryMetrics, correlation
from .model import AttentionConfig, AttentionObjective, SingleLayerAttention, run_with_cache
from .optim import gradient_descent
from .regpath import RegularizationPath, regularization_path
from .svm import GraphSVMResult, solve_graph_svm, solve_nuclear_svm
from .text import TextDataset, text_dataset
from .theory import AttentionTheory, Theory, load_theory, solve
from .training import TrainConfig, TrainResult, load_run, train
from .verification import VerificationReport, verify

__version__ = "0.1.0"

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
