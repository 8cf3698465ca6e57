"""One entry point for the theory: graphs, ``W_svm``, ``W_fin`` and the automaton of a dataset."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_savez
from .automaton import Automaton
from .data import Dataset
from .errors import InvalidDatasetError, InvalidParameterError, NotFittedError
from .finite import FiniteResult, solve_finite
from .graphs import PriorityGraphs, build_priority_graphs
from .svm import GraphSVMResult, solve_graph_svm, solve_nuclear_svm

__all__ = ["Theory", "TheoryFile", "solve", "load_theory", "AttentionTheory"]


@dataclass(frozen=True, slots=True, eq=False)
class Theory:
    """What the theory predicts for a dataset (SPEC sections 3 to 7).

    Attributes
    ----------
    dataset : Dataset
    graphs : PriorityGraphs
    svm : GraphSVMResult
    finite : FiniteResult
    """

    dataset: Dataset
    graphs: PriorityGraphs
    svm: GraphSVMResult
    finite: FiniteResult

    @property
    def W_svm(self) -> np.ndarray:
        """ndarray of shape (d, d): the Graph-SVM direction (hard retrieval)."""
        return self.svm.W_svm

    @property
    def W_fin(self) -> np.ndarray:
        """ndarray of shape (d, d): the finite part (soft composition)."""
        return self.finite.W_fin

    def automaton(self, *, tie_tol: float = 1e-6) -> Automaton:
        """The automaton defined by ``W_svm`` and ``W_fin`` (SPEC section 7)."""
        return Automaton(self.W_svm, self.W_fin, self.dataset.embeddings, tie_tol=tie_tol)

    def summary(self) -> str:
        """A few lines: graphs, both solves, norms and accuracy."""
        s, f = self.svm, self.finite
        nuclear = " (nuclear norm)" if s.solver_stats.extra_stats.get("norm") == "nuclear" else ""
        return "\n".join(
            [
                f"dataset: {self.dataset!r}",
                f"graphs: {self.graphs.summary(max_queries=0).splitlines()[0]}",
                f"W_svm{nuclear}: "
                f"{s.status.value}, ||W_svm||_F = {s.norm:.6g}, "
                f"{s.constraints.n_constraints} constraints ({s.constraints.n_original} edges), "
                f"max violation {s.max_violation:.1e}, relative gap {s.relative_gap:.1e}, "
                f"{s.solver_stats.solve_time:.3f} s",
                f"W_fin: {f.status.value}, ||W_fin|| = {np.linalg.norm(f.W_fin):.6g}, "
                f"dim S_fin = {f.dimension}, gradient norm {f.gradient_norm:.1e}, "
                f"{f.solver_stats.num_iters} Newton steps, {f.solver_stats.solve_time:.3f} s",
            ]
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``W_svm``, ``W_fin``, embeddings, SCCs and solver reports to ``path`` (.npz)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise InvalidDatasetError(f"theory files are .npz, got {path}")
        g, s, f = self.graphs, self.svm, self.finite
        meta = {
            "svm_status": s.status.value,
            "svm_message": s.message,
            "svm_max_violation": s.max_violation,
            "svm_relative_gap": s.relative_gap,
            "svm_solve_time": s.solver_stats.solve_time,
            "fin_status": f.status.value,
            "fin_message": f.message,
            "fin_gradient_norm": f.gradient_norm,
            "fin_dimension": f.dimension,
            "cyclic": g.is_cyclic,
        }
        atomic_savez(
            path,
            W_svm=s.W_svm,
            W_fin=f.W_fin,
            embeddings=self.dataset.embeddings,
            constraint_query=s.constraints.query,
            constraint_i=s.constraints.i,
            constraint_j=s.constraints.j,
            constraint_strict=s.constraints.strict,
            margins=s.margins,
            dual_values=s.dual_values,
            node_query=g.node_query,
            node_token=g.node_token,
            node_scc=g.node_scc,
            scc_level=g.scc_level,
            meta=np.array(json.dumps(meta)),
        )
        return path


@dataclass(frozen=True, slots=True, eq=False)
class TheoryFile:
    """What :func:`load_theory` reads back: the weights, embeddings and solver metadata."""

    W_svm: np.ndarray
    W_fin: np.ndarray
    embeddings: np.ndarray
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def automaton(self, *, tie_tol: float = 1e-6) -> Automaton:
        return Automaton(self.W_svm, self.W_fin, self.embeddings, tie_tol=tie_tol)


def load_theory(path: str | os.PathLike[str]) -> TheoryFile:
    """Read a file written by :meth:`Theory.save`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise InvalidDatasetError(f"cannot read theory file {path}: {exc}") from None
    missing = {"W_svm", "W_fin", "embeddings"} - set(arrays)
    if missing:
        raise InvalidDatasetError(f"{path} is not a theory file (missing {sorted(missing)})")
    meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else {}
    return TheoryFile(
        arrays.pop("W_svm"), arrays.pop("W_fin"), arrays.pop("embeddings"), meta, arrays
    )


def solve(
    dataset: Dataset,
    *,
    svm_norm: str = "fro",
    svm_options: dict[str, Any] | None = None,
    finite_options: dict[str, Any] | None = None,
    allow_inaccurate: bool = False,
) -> Theory:
    """Build the token-priority graphs and solve for ``W_svm`` and ``W_fin``.

    Parameters
    ----------
    dataset : Dataset
    svm_norm : {"fro", "nuclear"}, default="fro"
        ``"fro"``: the paper's Graph-SVM (combined ``W``). ``"nuclear"``: the nuclear-norm
        Graph-SVM, the expected direction when ``W = K Q^T`` is trained with both factors (an
        extension; see :func:`attnmech.svm.solve_nuclear_svm`).
    svm_options, finite_options : dict, optional
        Keyword arguments for :func:`attnmech.svm.solve_graph_svm` and
        :func:`attnmech.finite.solve_finite`.
    allow_inaccurate : bool, default=False
        Passed to :func:`attnmech.svm.solve_graph_svm`: when no method certifies ``W_svm``, False
        raises :class:`~attnmech.errors.SolverError`, True returns the best candidate (status
        ``INACCURATE``, with a warning).

    Returns
    -------
    Theory

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> theory = solve(Dataset([[0, 1]] * 3, [0, 0, 1], np.eye(2)))
    >>> theory.svm.is_zero, round(float(theory.W_fin[0, 1] - theory.W_fin[1, 1]), 6)
    (True, 0.693147)
    """
    if not isinstance(dataset, Dataset):
        raise InvalidDatasetError(
            f"solve expects an attnmech.Dataset, got {type(dataset).__name__}; build one with "
            "attnmech.Dataset(sequences, labels, embeddings) or attnmech.load_dataset(path)"
        )
    if svm_norm not in ("fro", "nuclear"):
        raise InvalidParameterError(f"svm_norm must be 'fro' or 'nuclear', got {svm_norm!r}")
    graphs = build_priority_graphs(dataset)
    if svm_norm == "nuclear":
        svm = solve_nuclear_svm(graphs, dataset.embeddings)
    else:
        options = {"allow_inaccurate": allow_inaccurate, **(svm_options or {})}
        svm = solve_graph_svm(graphs, dataset.embeddings, **options)
    finite = solve_finite(dataset, graphs, **(finite_options or {}))
    return Theory(dataset=dataset, graphs=graphs, svm=svm, finite=finite)


class AttentionTheory:
    """scikit-learn style facade: ``AttentionTheory().fit(dataset).predict_proba(sequences)``.

    Parameters
    ----------
    tie_tol : float, default=1e-6
        Passed to :class:`~attnmech.automaton.Automaton`.

    Attributes
    ----------
    graphs_ : PriorityGraphs
    W_svm_, W_fin_ : ndarray of shape (d, d)
    theory_ : Theory
    """

    def __init__(self, *, tie_tol: float = 1e-6) -> None:
        self.tie_tol = tie_tol

    def fit(self, dataset: Dataset) -> AttentionTheory:
        self.theory_ = solve(dataset)
        self.graphs_ = self.theory_.graphs
        self.W_svm_ = self.theory_.W_svm
        self.W_fin_ = self.theory_.W_fin
        return self

    def _automaton(self) -> Automaton:
        if not hasattr(self, "theory_"):
            raise NotFittedError("this AttentionTheory is not fitted yet; call fit(dataset) first")
        return self.theory_.automaton(tie_tol=self.tie_tol)

    def predict_proba(
        self, sequences: Any, queries: Any = None, R: float | None = None
    ) -> np.ndarray:
        """Next-token distributions of shape (n, vocab_size); see ``Automaton.predict_proba``."""
        return self._automaton().predict_proba(sequences, queries, R)

    def predict(self, sequences: Any, queries: Any = None) -> np.ndarray:
        """Most likely next token of each sequence."""
        return self.predict_proba(sequences, queries).argmax(axis=1)
