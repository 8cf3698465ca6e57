"""Straightforward formulations of the Graph-SVM, for cross-checking and benchmarking only.

They follow docs/theory.md#graph-svm literally: one constraint per TPG edge, each written as a
``d^2``-long row ``vec((e_i - e_j) e_k^T)``, handed to a general-purpose interior-point solver. They
are slow by design and need the optional test dependencies (``pip install -e ".[test]"``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .graphs import PriorityGraphs
from .graphsvm.constraints import svm_constraints

__all__ = ["svm_primal_cvxpy", "svm_primal_clarabel", "svm_dual_clarabel"]


def _rows(graphs: PriorityGraphs, E: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cons = svm_constraints(graphs, reduce=False)
    d = E.shape[1]
    rows = np.einsum("ci,cj->cij", E[cons.i] - E[cons.j], E[cons.query]).reshape(-1, d * d)
    return rows, cons.rhs, cons.strict


def svm_primal_cvxpy(graphs: PriorityGraphs, embeddings: np.ndarray) -> np.ndarray:
    """``min ||W||_F^2`` over all ``d^2`` entries with cvxpy + Clarabel; returns ``W``."""
    import cvxpy as cp

    E = np.asarray(embeddings, dtype=np.float64)
    d = E.shape[1]
    rows, rhs, strict = _rows(graphs, E)
    w = cp.Variable(d * d)
    constraints = []
    if strict.any():
        constraints.append(rows[strict] @ w >= rhs[strict])
    if (~strict).any():
        constraints.append(rows[~strict] @ w == 0)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(w)), constraints)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    if problem.status != cp.OPTIMAL:
        raise RuntimeError(f"reference primal: {problem.status}")
    return np.asarray(w.value).reshape(d, d)


def svm_primal_clarabel(
    graphs: PriorityGraphs, embeddings: np.ndarray, *, tol: float = 1e-10
) -> tuple[str, np.ndarray | None]:
    """``min 1/2 ||w||^2`` over all ``d^2`` entries, one row per TPG edge, with Clarabel's own API.

    No reduction, no scaling, no Gram matrix: an independent check of :func:`solve_graph_svm`.
    Returns ``(status, W)``: status is Clarabel's (``"Solved"``, ``"PrimalInfeasible"``, ...),
    ``W`` is None unless a solution came back.
    """
    import clarabel

    E = np.asarray(embeddings, dtype=np.float64)
    d = E.shape[1]
    rows, rhs, strict = _rows(graphs, E)
    eq, st = np.flatnonzero(~strict), np.flatnonzero(strict)
    A = sp.csc_matrix(np.vstack([rows[eq], -rows[st]]))
    b = np.concatenate([np.zeros(eq.size), -rhs[st]])
    cones = [clarabel.ZeroConeT(int(eq.size))] if eq.size else []
    cones.append(clarabel.NonnegativeConeT(int(st.size)))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
    solver = clarabel.DefaultSolver(
        sp.identity(d * d, format="csc"), np.zeros(d * d), A, b, cones, settings
    )
    solution = solver.solve()
    status = str(solution.status)
    if status not in ("Solved", "AlmostSolved"):
        return status, None
    return status, np.asarray(solution.x).reshape(d, d)


def svm_dual_clarabel(graphs: PriorityGraphs, embeddings: np.ndarray) -> np.ndarray:
    """The dual QP, ``Q = C^T C`` from the ``d^2``-long rows, solved by Clarabel; returns ``W``."""
    import clarabel

    E = np.asarray(embeddings, dtype=np.float64)
    d = E.shape[1]
    rows, rhs, strict = _rows(graphs, E)
    m = rows.shape[0]
    idx = np.flatnonzero(strict)
    P = sp.triu(sp.csc_matrix(rows @ rows.T), format="csc")
    A = sp.csc_matrix((-np.ones(idx.size), (np.arange(idx.size), idx)), shape=(idx.size, m))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-11
    solver = clarabel.DefaultSolver(
        P, -rhs, A, np.zeros(idx.size), [clarabel.NonnegativeConeT(idx.size)], settings
    )
    solution = solver.solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise RuntimeError(f"reference dual: {solution.status}")
    return (rows.T @ np.asarray(solution.x)).reshape(d, d)
