"""The one optimality certificate of the Graph-SVM, its status messages and its result fields.

A candidate ``W`` (with multipliers ``lambda``) is checked on every original TPG edge, never on
the solver's word: the margins are recomputed from ``W`` itself; an edge's violation is
``max(1 - margin, 0)`` (strict) or ``|margin|`` (same SCC), measured relative to its round-off
scale ``max(1, (|e_i| + |e_j|)^T |W| |e_k|)``; the relative duality gap bounds the distance to the
optimum. Certified means violation ``<= VIOLATION_TOL`` and gap ``<= GAP_TOL``. The dense, the
token-space and the other-norm solvers all report through :func:`verdict`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._results import SolvedMixin, SolverStats, SolveStatus, readonly
from ...errors import ConvergenceWarning
from ..graphs import PriorityGraphs
from .active_set import check_memory, dual_to_weights
from .constraints import SVMConstraints

__all__ = [
    "VIOLATION_TOL",
    "GAP_TOL",
    "Certificate",
    "SVMResultBase",
    "GraphSVMResult",
    "certificate",
    "verdict",
]

VIOLATION_TOL = 1e-9  # largest allowed violation, relative to max(1, the edge's round-off scale)
GAP_TOL = 1e-8  # largest allowed relative duality gap
ZERO_MESSAGE = "no strict priorities (every sample's tokens lie in one SCC): W_svm = 0"


@dataclass(frozen=True, slots=True, kw_only=True)
class SVMResultBase(SolvedMixin):
    """The fields every Graph-SVM result shares (dense, token space, any norm).

    Attributes
    ----------
    status : SolveStatus
    message : str
    constraints : SVMConstraints
        The reduced constraints the solver used.
    margins : ndarray of shape (n_constraints,)
        ``(e_i - e_j)^T W_svm e_query`` for each reduced constraint.
    dual_values : ndarray of shape (n_constraints,)
        Lagrange multipliers (>= 0 on strict constraints).
    active : ndarray of bool of shape (n_constraints,)
        Strict constraints with a positive multiplier, and all equalities.
    edge_margins : ndarray of shape (n_edges,)
        ``(e_i - e_j)^T W_svm e_k`` for every edge of the graphs (in ``graphs.edge_*`` order).
    edge_strict : ndarray of bool of shape (n_edges,)
        Whether each edge is a strict priority (endpoints in different SCCs).
    max_violation : float
        Largest violation over all edges: ``max(1 - margin)`` on strict edges, ``|margin|`` on
        equalities (0 if none is violated).
    duality_gap, relative_gap : float
        Primal minus dual objective and the same divided by the primal objective (for the
        Frobenius norm ``P = ||W_svm||^2 / 2``, ``D = sum(strict dual_values) - ||W(dual)||^2 / 2``;
        for other norms ``N(W) -`` the certified lower bound).
    solver_stats : SolverStats
        ``num_iters`` counts iterations (active-set steps, interior-point iterations), not
        factorisations (those are in ``extra_stats["factorizations"]``).
    norm_name : str, default="fro"
        The norm minimised (see :mod:`attnmech.theory.norms`).
    unique : bool or None, default=True
        Whether the minimiser was found unique (None: not checked).
    tie_break : str or None, default=None
        ``"fro"`` when a non-unique minimiser was resolved by least Frobenius norm.
    method : str
        The method whose solution is returned (see
        :func:`~attnmech.theory.graphsvm.solve_graph_svm`).
    relative_violation : float
        Largest violation over all edges, each divided by ``max(1, (|e_i| + |e_j|)^T |W| |e_k|)``
        (its round-off scale); at most ``1e-9`` when ``status`` is ``OPTIMAL``.
    """

    status: SolveStatus
    message: str
    constraints: SVMConstraints
    margins: np.ndarray
    dual_values: np.ndarray
    active: np.ndarray
    edge_margins: np.ndarray
    edge_strict: np.ndarray
    max_violation: float
    duality_gap: float
    relative_gap: float
    solver_stats: SolverStats
    norm_name: str = "fro"
    unique: bool | None = True
    tie_break: str | None = None
    method: str = "active-set"
    relative_violation: float = 0.0

    @property
    def is_zero(self) -> bool:
        """True when no strict priority exists, so ``W_svm = 0`` (correlation is undefined)."""
        return not bool(self.constraints.strict.any())


SVMResultMixin = SVMResultBase  # the name of the shared base before it held the fields


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphSVMResult(SVMResultBase):
    """Solution of the Graph-SVM with a dense ``W_svm`` (fields of :class:`SVMResultBase`).

    Attributes
    ----------
    W_svm : ndarray of shape (embedding_dim, embedding_dim)
    """

    W_svm: np.ndarray

    @property
    def norm(self) -> float:
        """Frobenius norm of ``W_svm``."""
        return float(np.linalg.norm(self.W_svm))


@dataclass(frozen=True, slots=True)
class Certificate:
    """Optimality check of a candidate (with multipliers ``lam``) on the original edges.

    ``W`` is None for the token-space solver (its scores stay sparse).
    """

    method: str
    W: np.ndarray | None
    lam: np.ndarray
    margins: np.ndarray
    edge_margins: np.ndarray
    edge_strict: np.ndarray
    max_violation: float
    relative_violation: float
    duality_gap: float
    relative_gap: float

    @property
    def certified(self) -> bool:
        """Violation and gap within ``VIOLATION_TOL`` and ``GAP_TOL``, everything finite."""
        return (
            (self.W is None or bool(np.isfinite(self.W).all()))
            and self.relative_violation <= VIOLATION_TOL
            and self.relative_gap <= GAP_TOL
        )

    def summary(self) -> str:
        """One line: method, violations and gap against their tolerances."""
        return (
            f"{self.method}: max violation {self.max_violation:.1e} (relative "
            f"{self.relative_violation:.1e}, tol {VIOLATION_TOL:.0e}), relative gap "
            f"{self.relative_gap:.1e} (tol {GAP_TOL:.0e})"
        )

    def result_arrays(self, cons: SVMConstraints, active_tol: float = 0.0) -> dict[str, Any]:
        """The constraint fields of a result (see :func:`result_arrays`)."""
        return result_arrays(
            cons, self.margins, self.lam, self.edge_margins, self.edge_strict, active_tol
        )


def edge_margins(
    graphs: PriorityGraphs, cons: SVMConstraints, E: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Margins recomputed from ``W``: per reduced constraint and per TPG edge, which edges are
    strict, each edge's violation and its round-off scale ``(|e_i| + |e_j|)^T |W| |e_k|``.

    Only the queries that occur are used: the ``K x n_queries`` score table when it fits in
    64 MB, else ``W e_k`` (``d x n_queries``) and the edges in chunks; never a ``K x K`` table.
    """
    queries = graphs.queries
    check_memory(
        16.0 * E.shape[1] * queries.size,
        f"W e_k for {queries.size} last tokens",
        "use fewer last tokens",
    )
    Eq = E[queries]
    WEq = W @ Eq.T  # (d, n_queries)
    absWEq = np.abs(W) @ np.abs(Eq).T  # (d, n_queries)
    absE = np.abs(E)

    dense = 8.0 * E.shape[0] * queries.size <= 2**26  # the K x n_queries tables fit in 64 MB
    if dense:
        A = E @ WEq  # (K, n_queries) scores [token, query]
        absA = absE @ absWEq

    def edge_dots(
        src: np.ndarray, dst: np.ndarray, query: np.ndarray, with_scale: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        col = np.searchsorted(queries, query)
        if dense:
            scale = absA[src, col] + absA[dst, col] if with_scale else np.empty(0)
            return A[src, col] - A[dst, col], scale
        margin = np.empty(src.size)
        scale = np.empty(src.size if with_scale else 0)
        step = max(1, 2**22 // max(E.shape[1], 1))  # about 32 MB per gathered block
        for lo in range(0, src.size, step):
            part = slice(lo, lo + step)
            s, t, c = src[part], dst[part], col[part]
            margin[part] = np.einsum("cd,dc->c", E[s] - E[t], WEq[:, c])
            if with_scale:
                scale[part] = np.einsum("cd,dc->c", absE[s] + absE[t], absWEq[:, c])
        return margin, scale

    margins, _ = edge_dots(cons.i, cons.j, cons.query, False)
    strict = edge_strictness(graphs)
    e_margins, scale = edge_dots(graphs.edge_src, graphs.edge_dst, graphs.edge_query, True)
    violation = edge_violation(e_margins, strict)
    return margins, e_margins, strict, violation, scale


def edge_strictness(graphs: PriorityGraphs) -> np.ndarray:
    """Whether each TPG edge is a strict priority (its endpoints in different SCCs)."""
    return graphs.scc_of(graphs.edge_query, graphs.edge_src) != graphs.scc_of(
        graphs.edge_query, graphs.edge_dst
    )


def edge_violation(margins: np.ndarray, strict: np.ndarray) -> np.ndarray:
    """``max(1 - margin, 0)`` on strict edges, ``|margin|`` on equalities."""
    return np.where(strict, np.maximum(1.0 - margins, 0.0), np.abs(margins))


def certify(
    graphs: PriorityGraphs, cons: SVMConstraints, E: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Margins per reduced constraint and per TPG edge, which edges are strict, the largest
    absolute violation and the largest violation relative to each edge's round-off scale."""
    margins, e_margins, strict, violation, scale = edge_margins(graphs, cons, E, W)
    relative = float((violation / np.maximum(scale, 1.0)).max(initial=0.0))
    return margins, e_margins, strict, float(violation.max(initial=0.0)), relative


def relative_gap_of(gap: float, primal: float) -> float:
    """``|gap| / primal`` (``|gap|`` when ``primal`` is 0; inf when not finite)."""
    relative = abs(gap) / primal if primal > 0 else abs(gap)
    return relative if np.isfinite(relative) else float(np.inf)


def certificate(
    method: str,
    graphs: PriorityGraphs,
    cons: SVMConstraints,
    E: np.ndarray,
    W: np.ndarray,
    lam: np.ndarray,
) -> Certificate:
    """Check the Frobenius candidate ``W`` against every TPG edge and bound its distance to the
    optimum.

    The gap is ``P - D`` with ``P = ||W||^2 / 2`` and the dual objective
    ``D = sum(lam_strict) - ||W(lam)||^2 / 2`` of the multipliers (clipped to ``>= 0`` on strict
    constraints), a lower bound on the optimum: ``relative_gap = (P - D) / P``.
    """
    margins, e_margins, strict, violation, scale = edge_margins(graphs, cons, E, W)
    lam = np.where(cons.strict, np.maximum(lam, 0.0), lam)
    W_lam = W if method.startswith("active-set") else dual_to_weights(E, cons, lam)
    primal = 0.5 * float(np.sum(W * W))
    dual = float(lam[cons.strict].sum()) - 0.5 * float(np.sum(W_lam * W_lam))
    gap = primal - dual
    return Certificate(
        method=method,
        W=W,
        lam=lam,
        margins=margins,
        edge_margins=e_margins,
        edge_strict=strict,
        max_violation=float(violation.max(initial=0.0)),
        relative_violation=float((violation / np.maximum(scale, 1.0)).max(initial=0.0)),
        duality_gap=gap,
        relative_gap=relative_gap_of(gap, primal),
    )


def result_arrays(
    cons: SVMConstraints,
    margins: np.ndarray,
    lam: np.ndarray,
    edge_margins: np.ndarray,
    edge_strict: np.ndarray,
    active_tol: float = 0.0,
) -> dict[str, Any]:
    """The constraint fields of a Graph-SVM result (dense or token space), read-only copies.

    A constraint is active when it is an equality or its dual value exceeds ``active_tol``.
    """
    return {
        "constraints": cons,
        "margins": readonly(margins),
        "dual_values": readonly(lam),
        "active": readonly((~cons.strict) | (lam > active_tol), bool),
        "edge_margins": readonly(edge_margins),
        "edge_strict": readonly(edge_strict, bool),
    }


def verdict(
    cons: SVMConstraints,
    certified: bool,
    optimal: str,
    inaccurate: str,
    what: str = "Graph-SVM",
    *,
    stacklevel: int = 3,
) -> tuple[SolveStatus, str]:
    """Status and message of a Graph-SVM result: the one wording of every solver.

    ``W_svm = 0`` when there is no strict priority; else ``optimal`` when ``certified``, else
    ``inaccurate`` (and a ConvergenceWarning naming ``what``).
    """
    if not cons.strict.any():
        return SolveStatus.OPTIMAL, ZERO_MESSAGE
    if certified:
        return SolveStatus.OPTIMAL, optimal
    warnings.warn(f"{what} {inaccurate}", ConvergenceWarning, stacklevel=stacklevel)
    return SolveStatus.INACCURATE, inaccurate
