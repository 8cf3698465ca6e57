"""The Graph-SVM: the directional part ``W_svm`` of the trained attention weights
(docs/theory.md#graph-svm).

    W_svm = argmin ||W||_F  subject to, for every query k and every edge i -> j of G^(k):
        (e_i - e_j)^T W e_k  = 0   if i ~ j   (same SCC)
        (e_i - e_j)^T W e_k >= 1   if i => j  (strict priority)

How it is solved, exactly and fast:

1. **Fewer constraints, same feasible set.** Inside an SCC all scores are equal, so the equalities
   become one chain per SCC, and every strict edge is replaced by one edge between SCC
   representatives; edges implied by transitivity in the condensation DAG are dropped.
2. **The dual through the Gram matrix.** The solution is ``W = sum_c lambda_c (e_i - e_j) e_k^T``
   and the dual is the bound-constrained QP
   ``min 1/2 lambda^T Q lambda - b^T lambda`` with ``lambda >= 0`` on strict constraints, where
   ``Q[c, c'] = (e_i - e_j)^T (e_i' - e_j') * e_k^T e_k'``. ``Q`` is built from products of
   ``m`` vectors of length ``d`` (the ``(e_i - e_j)`` and the ``e_k``), never from ``d^2``-long
   constraint rows.
3. **Independent blocks.** Constraints of two queries interact only through ``e_k^T e_k'``; the
   queries split into independent blocks (one per query for orthonormal embeddings), each solved
   on its own.
4. **A proximal primal-dual active-set method.** ``Q`` is singular whenever constraints are
   linearly dependent (an undirected cycle of constraints under one query), which makes the plain
   active-set method of Hintermueller, Ito and Kunisch cycle. Each step here is an active-set step
   on a proximal subproblem (strictly convex), so it settles; then the proximal-point iterations
   converge to the exact KKT point reusing one factorisation. The coupled problem starts from the
   active set of the per-query problems, which are cheap.
5. **Certified.** Margins are recomputed from ``W`` itself on every original edge; the result
   reports the largest violation and the duality gap.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .._results import SolvedMixin, SolverStats, SolveStatus, readonly
from ..errors import (
    ConvergenceWarning,
    InfeasibleProblemError,
    InvalidDatasetError,
    InvalidParameterError,
    SolverError,
)
from .graphs import PriorityGraphs, sorted_unique

__all__ = [
    "GraphSVMResult",
    "SVMConstraints",
    "svm_constraints",
    "solve_graph_svm",
    "solve_nuclear_svm",
]

logger = logging.getLogger(__name__)

DUAL_MEMORY_LIMIT = 4 * 1024**3  # bytes: largest dense dual Hessian (and copies) formed
SINGLE_THREAD_BELOW = 4000  # constraints per block: below, BLAS runs on one thread (threads=None)
VIOLATION_TOL = 1e-9  # largest allowed violation, relative to max(1, the edge's round-off scale)
GAP_TOL = 1e-8  # largest allowed relative duality gap
DENSE_LIMIT_BYTES = 2 * 2**30  # largest dense matrix a solve may allocate (refused above)


@dataclass(frozen=True, slots=True)
class SVMConstraints:
    """The reduced Graph-SVM constraints ``(e_i - e_j)^T W e_query (>= 1 | = 0)``.

    Attributes
    ----------
    query, i, j : ndarray of int64 of shape (n_constraints,)
    strict : ndarray of bool of shape (n_constraints,)
        True for ``>= 1`` (strict priority), False for ``= 0`` (same SCC).
    n_original : int
        Number of distinct TPG edges the reduced set stands for.
    """

    query: np.ndarray
    i: np.ndarray
    j: np.ndarray
    strict: np.ndarray
    n_original: int

    @property
    def n_constraints(self) -> int:
        return int(self.query.size)

    @property
    def rhs(self) -> np.ndarray:
        """ndarray of shape (n_constraints,): 1 for strict constraints, 0 for equalities."""
        return self.strict.astype(np.float64)


class SVMResultMixin(SolvedMixin):
    """``success`` and ``is_zero`` of :class:`GraphSVMResult` and its token-space twin."""

    __slots__ = ()
    constraints: SVMConstraints

    @property
    def is_zero(self) -> bool:
        """True when no strict priority exists, so ``W_svm = 0`` (correlation is undefined)."""
        return not bool(self.constraints.strict.any())


@dataclass(frozen=True, slots=True)
class GraphSVMResult(SVMResultMixin):
    """Solution of the Graph-SVM (docs/theory.md#graph-svm).

    Attributes
    ----------
    W_svm : ndarray of shape (embedding_dim, embedding_dim)
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
        Primal minus dual objective, ``P - D`` with ``P = ||W_svm||^2 / 2`` and
        ``D = sum(strict dual_values) - ||W(dual_values)||^2 / 2`` (for the active-set methods,
        where ``W_svm = W(dual_values)``: ``||W_svm||^2 - sum(dual_values)``), and ``(P - D) / P``.
    solver_stats : SolverStats
    norm_name : str, default="fro"
        The norm minimised (see :mod:`attnmech.theory.norms`).
    unique : bool or None, default=True
        Whether the minimiser was found unique (None: not checked).
    tie_break : str or None, default=None
        ``"fro"`` when a non-unique minimiser was resolved by least Frobenius norm.
    method : str
        The method whose solution is returned: ``"active-set"``, ``"active-set+jacobi"``,
        ``"clarabel"``, ``"clarabel+polish"``, ``"clarabel-dual"`` (see
        :func:`solve_graph_svm`), ``"none"`` (``W_svm = 0``) or, for the nuclear norm,
        ``"cvxpy+clarabel"``.
    relative_violation : float
        Largest violation over all edges, each divided by ``max(1, (|e_i| + |e_j|)^T |W| |e_k|)``
        (its round-off scale); at most ``1e-9`` when ``status`` is ``OPTIMAL``.
    """

    W_svm: np.ndarray
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
    def norm(self) -> float:
        return float(np.linalg.norm(self.W_svm))


# --------------------------------------------------------------------------------- constraints
def _transitive_reduction(n: int, src: np.ndarray, dst: np.ndarray, max_nnz: int) -> np.ndarray:
    """Mask of DAG edges not implied by a longer path (all kept if the closure gets too big)."""
    if src.size == 0:
        return np.ones(0, dtype=bool)
    adjacency = sp.csr_matrix((np.ones(src.size, dtype=np.int32), (src, dst)), shape=(n, n))
    reach = adjacency.copy()
    while True:  # closure by repeated squaring: O(log depth) sparse products
        grown = reach + reach @ reach
        grown.data[:] = 1
        if grown.nnz == reach.nnz:
            break
        if grown.nnz > max_nnz:
            return np.ones(src.size, dtype=bool)
        reach = grown
    implied = (adjacency @ reach).tocsr()  # [s, t] > 0 iff a path s -> u ~> t with u a successor
    implied.sort_indices()
    rows = np.repeat(np.arange(n), np.diff(implied.indptr))
    keys = sorted_unique(rows.astype(np.int64) * n + implied.indices)
    if keys.size == 0:
        return np.ones(src.size, dtype=bool)
    want = src.astype(np.int64) * n + dst
    pos = np.minimum(np.searchsorted(keys, want), keys.size - 1)
    return keys[pos] != want


def svm_constraints(graphs: PriorityGraphs, *, reduce: bool = True) -> SVMConstraints:
    """The Graph-SVM constraints of ``graphs``, reduced to an equivalent smaller set.

    With ``reduce=True``: one equality chain per SCC, one strict constraint per edge of the
    transitive reduction of each condensation DAG (between the smallest tokens of the two SCCs).
    With ``reduce=False``: one constraint per TPG edge, as in docs/theory.md#graph-svm.
    """
    if not reduce:
        same = graphs.scc_of(graphs.edge_query, graphs.edge_src) == graphs.scc_of(
            graphs.edge_query, graphs.edge_dst
        )
        return SVMConstraints(
            readonly(graphs.edge_query, np.int64),
            readonly(graphs.edge_src, np.int64),
            readonly(graphs.edge_dst, np.int64),
            readonly(~same, bool),
            graphs.n_edges,
        )
    order = np.lexsort((graphs.node_token, graphs.node_scc))
    scc, tok, qry = graphs.node_scc[order], graphs.node_token[order], graphs.node_query[order]
    chain = scc[1:] == scc[:-1]
    eq_q, eq_i, eq_j = qry[1:][chain], tok[:-1][chain], tok[1:][chain]
    first = np.ones(scc.size, dtype=bool)
    first[1:] = ~chain
    representative = np.empty(graphs.n_sccs, dtype=np.int64)
    representative[scc[first]] = tok[first]
    keep = _transitive_reduction(graphs.n_sccs, graphs.dag_src, graphs.dag_dst, max_nnz=20_000_000)
    s_src, s_dst = graphs.dag_src[keep], graphs.dag_dst[keep]
    query = np.concatenate([eq_q, graphs.scc_query[s_src]])
    i = np.concatenate([eq_i, representative[s_src]])
    j = np.concatenate([eq_j, representative[s_dst]])
    strict = np.concatenate([np.zeros(eq_q.size, bool), np.ones(s_src.size, bool)])
    order = np.lexsort((j, i, query))
    return SVMConstraints(
        readonly(query[order], np.int64),
        readonly(i[order], np.int64),
        readonly(j[order], np.int64),
        readonly(strict[order], bool),
        graphs.n_edges,
    )


# --------------------------------------------------------------------------------- linear algebra
def _dual_hessian(
    embeddings: np.ndarray, query: np.ndarray, i: np.ndarray, j: np.ndarray
) -> np.ndarray:
    """Dense ``Q[c, c'] = (e_i - e_j)^T (e_i' - e_j') * e_k^T e_k'``.

    Built as two Gram products of ``m`` short vectors (``(e_i - e_j)`` and ``e_k``, length ``d``),
    never from the ``d^2``-long constraint rows ``vec((e_i - e_j) e_k^T)``.
    """
    delta = embeddings[i] - embeddings[j]  # (m, d)
    queries = embeddings[query]  # (m, d)
    hessian = delta @ delta.T  # (m, m)
    hessian *= queries @ queries.T
    return hessian


class _Solver:
    """Cholesky factorisation of ``M + rho I`` (``rho`` tiny) with iterative refinement.

    ``matrix`` is overwritten (its diagonal is shifted); ``solve`` refines against the unshifted
    matrix, so consistent singular systems are solved to round-off.
    """

    def __init__(self, matrix: np.ndarray) -> None:
        diag = np.diag(matrix)
        self.rho = 1e-13 * (float(diag.max()) if diag.size else 1.0)
        self.shifted = matrix
        self.shifted[np.diag_indices_from(matrix)] += self.rho
        for _ in range(8):
            try:
                self.factor = sla.cho_factor(self.shifted, lower=True, check_finite=False)
                return
            except np.linalg.LinAlgError:
                self.shifted[np.diag_indices_from(matrix)] += 99.0 * self.rho
                self.rho *= 100.0
        raise SolverError("Graph-SVM: a reduced dual Hessian could not be factorised")

    def solve(self, rhs: np.ndarray, tol: float = 1e-13, max_refine: int = 10) -> np.ndarray:
        x = sla.cho_solve(self.factor, rhs, check_finite=False)
        target = tol * (1.0 + float(np.abs(rhs).max(initial=0.0)))
        for _ in range(max_refine):
            residual = rhs - (self.shifted @ x - self.rho * x)
            if float(np.abs(residual).max(initial=0.0)) <= target:
                break
            x = x + sla.cho_solve(self.factor, residual, check_finite=False)
        return x


class _ProximalDual:
    """Exact solver of the dual ``min 1/2 x^T H x - rhs^T x`` s.t. ``x >= 0`` on ``strict``.

    ``H`` is positive semidefinite and often singular (dependent constraints), which makes a plain
    primal-dual active-set method (Hintermueller, Ito and Kunisch) cycle. Here every step is an
    active-set step on the proximal subproblem ``f(x) + eps/2 ||x - x_t||^2`` centred at the
    current iterate: strictly convex, with the Hessian ``(H + eps I)_FF`` on the free set ``F``.
    The centre moves every step, so once the active set settles the iteration is the proximal
    point method, which converges to a dual solution (``W = C x`` to ``W_svm``) at the linear rate
    ``eps / (sigma + eps)`` (``sigma``: smallest nonzero eigenvalue of ``H``) while reusing one
    factorisation. It stops when the unregularised KKT residual ``eps |x_{t+1} - x_t|`` is below
    ``tol``.
    """

    def __init__(self, hessian: np.ndarray, rhs: np.ndarray, strict: np.ndarray) -> None:
        self.hessian = hessian
        self.rhs = rhs
        self.strict = strict
        scale = float(np.diag(hessian).max()) if rhs.size else 1.0
        self.eps = 1e-5 * scale
        self.factorizations = 0
        self._cache: dict[bytes, _Solver] = {}

    def _factor(self, free: np.ndarray) -> _Solver:
        """Factorisation of ``(H + eps I)_FF``, cached for the last few free sets."""
        key = free.tobytes()
        if key not in self._cache:
            sub = self.hessian[np.ix_(free, free)]
            sub[np.diag_indices_from(sub)] += self.eps
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = _Solver(sub)
            self.factorizations += 1
        return self._cache[key]

    def solve(
        self, active: np.ndarray | None = None, max_iter: int = 2000, tol: float = 1e-12
    ) -> tuple[np.ndarray, int]:
        """Run from the active-set guess ``active`` (default: every strict constraint free)."""
        H, strict, eps = self.hessian, self.strict, self.eps
        x = np.zeros(self.rhs.size)
        active = np.zeros(self.rhs.size, dtype=bool) if active is None else active & strict
        slack = 1e-12
        seen: set[bytes] = set()
        unsettled = 0
        for iteration in range(1, max_iter + 1):
            linear = self.rhs + eps * x
            free = np.flatnonzero(~active)
            new_x = np.zeros_like(x)
            if free.size:
                new_x[free] = self._factor(free).solve(linear[free], max_refine=2)
            gradient = H @ new_x + eps * new_x - linear
            gradient[free] = 0.0
            # hysteresis: a set changes only on a clear sign, not on round-off around zero
            new_active = strict & np.where(active, gradient >= -slack, new_x < -slack)
            settled = np.array_equal(new_active, active)
            kkt = eps * float(np.abs(new_x - x).max(initial=0.0))
            x, active = new_x, new_active
            if x.size >= 2000:  # progress on long solves (shown by `attnmech -v ...`)
                logger.info(
                    "Graph-SVM step %d: %d of %d constraints free, KKT residual %.1e",
                    iteration,
                    int((~active).sum()),
                    x.size,
                    kkt,
                )
            if settled and kkt <= tol:
                return x, iteration
            # cycling (singular H, e.g. K > d): the active set keeps changing and comes back to a
            # set it already had; stop and let the caller certify or fall back
            unsettled = 0 if settled else unsettled + 1
            key = active.tobytes()
            if unsettled > 50 and key in seen:
                logger.info("Graph-SVM active set cycles after %d steps; stopping", iteration)
                return x, iteration
            if not settled:
                seen.add(key)
            if float(np.abs(x).max(initial=0.0)) > 1e14:  # diverging: an infeasible problem
                return x, iteration
        return x, max_iter


def _decoupled_guess(
    hessian: np.ndarray, query: np.ndarray, rhs: np.ndarray, strict: np.ndarray
) -> np.ndarray | None:
    """Active-set guess from the per-query problems (the coupling between queries dropped).

    Each per-query problem is tiny, so this costs far less than one factorisation of the coupled
    system and lets the coupled active-set method start near its answer.
    """
    if query.size < 500:
        return None
    order = np.argsort(query, kind="stable")
    cuts = np.flatnonzero(np.diff(query[order])) + 1
    active = np.zeros(rhs.size, dtype=bool)
    for part in np.split(order, cuts):
        if strict[part].any():
            sub = _ProximalDual(hessian[np.ix_(part, part)], rhs[part], strict[part])
            x, _ = sub.solve(tol=1e-9)
            active[part] = strict[part] & (x <= 0.0)
    return active


# --------------------------------------------------------------------------------- infeasibility
def _find_conflict(embeddings: np.ndarray, cons: SVMConstraints) -> list[tuple[int, int, int, str]]:
    """A set of constraints that cannot hold together (Farkas certificate), or [] if feasible."""
    from scipy.optimize import linprog

    E = embeddings
    d = E.shape[1]
    m = cons.n_constraints
    if d * d * m > 50_000_000:
        raise SolverError(
            "Graph-SVM: the embeddings are linearly dependent and the problem is too large for the "
            "feasibility check; use linearly independent embeddings (vocab_size <= embedding_dim)"
        )
    # column c of C is vec((e_i - e_j) e_k^T); y with C y = 0, rhs^T y = 1, y_strict >= 0 certifies
    delta = E[cons.i] - E[cons.j]  # (m, d)
    C = (delta[:, :, None] * E[cons.query][:, None, :]).reshape(m, d * d).T  # (d*d, m)
    eq = np.flatnonzero(~cons.strict)
    # variables: y (m) then y_neg for equalities (free variables split)
    A_eq = np.hstack([C, -C[:, eq]])
    A_eq = np.vstack([A_eq, np.concatenate([cons.rhs, np.zeros(eq.size)])])
    b_eq = np.zeros(A_eq.shape[0])
    b_eq[-1] = 1.0
    cost = np.ones(m + eq.size)
    result = linprog(cost, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if result.status != 0:
        return []
    y = result.x[:m].copy()
    y[eq] -= result.x[m:]
    support = np.flatnonzero(np.abs(y) > 1e-9)
    return [
        (
            int(cons.query[c]),
            int(cons.i[c]),
            int(cons.j[c]),
            "strict" if cons.strict[c] else "equal",
        )
        for c in support
    ]


# --------------------------------------------------------------------------------- main entry
def _query_blocks(gram: np.ndarray, tol: float) -> np.ndarray:
    """Block id of each query (``gram``: Gram matrix of the query embeddings): queries whose
    embeddings are (numerically) orthogonal decouple."""
    scale = np.sqrt(np.outer(np.diag(gram), np.diag(gram)))
    coupled = sp.csr_matrix(np.abs(gram) > tol * scale)
    _, labels = connected_components(coupled, directed=False)
    return labels


class _TooLarge(SolverError):
    """A method's dense arrays would not fit in memory (no other method is tried)."""


def _check_memory(n_bytes: float, what: str, advice: str) -> None:
    """Refuse (before allocating) an array larger than ``DENSE_LIMIT_BYTES``."""
    if n_bytes > DENSE_LIMIT_BYTES:
        raise SolverError(
            f"Graph-SVM: {what} would take {n_bytes / 2**30:.3g} GiB, more than the limit of "
            f"{DENSE_LIMIT_BYTES / 2**30:.3g} GiB; {advice}"
        )


def _active_set_dual(
    E: np.ndarray,
    cons: SVMConstraints,
    *,
    max_iter: int,
    coupling_tol: float,
    jacobi: bool,
    extra: dict[str, Any],
    threads: int | None = None,
    memory_limit: int = DUAL_MEMORY_LIMIT,
) -> np.ndarray:
    """Dual multipliers from the proximal active-set method, block by block.

    With ``jacobi=True`` the dual is solved in the variables ``mu = lambda * sqrt(Q_cc)`` (an
    exact change of variables that gives the Hessian a unit diagonal): a preconditioner for
    constraints whose coefficients differ by orders of magnitude.
    """
    rhs = cons.rhs
    uq = sorted_unique(cons.query)
    Eq = E[uq]
    _check_memory(
        8.0 * uq.size**2, f"the Gram matrix of {uq.size} query embeddings", "use fewer last tokens"
    )
    qblock = _query_blocks(Eq @ Eq.T, coupling_tol)
    blocks = qblock[np.searchsorted(uq, cons.query)]
    order = np.argsort(blocks, kind="stable")
    cuts = np.flatnonzero(np.diff(blocks[order])) + 1
    sizes = np.bincount(blocks)
    largest = int(sizes.max())
    estimate = 3 * largest * largest * 8
    if estimate > memory_limit:
        raise _TooLarge(
            f"Graph-SVM: the coupled dual has a block of {largest} constraints; its dense "
            f"Hessian and factorisation need about {estimate / 2**30:.1f} GiB (limit "
            f"{memory_limit / 2**30:.1f} GiB). Use one-hot or orthonormal embeddings (solved "
            "per query in token space), fewer samples or a smaller vocabulary, or raise "
            "memory_limit if the machine has the memory"
        )
    extra.update(n_blocks=int(qblock.max()) + 1, largest_block=largest)
    if threads is None and largest < SINGLE_THREAD_BELOW:
        threads = 1  # small factorisations lose more to thread contention than they gain
    extra.update(blas_threads=threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        return _active_set_blocks(E, cons, rhs, order, cuts, max_iter, jacobi, extra)


def _active_set_blocks(
    E: np.ndarray,
    cons: SVMConstraints,
    rhs: np.ndarray,
    order: np.ndarray,
    cuts: np.ndarray,
    max_iter: int,
    jacobi: bool,
    extra: dict[str, Any],
) -> np.ndarray:
    """The proximal active-set method on each coupled block (``order`` split at ``cuts``)."""
    lam = np.zeros(cons.n_constraints)
    outer_iters = newton_iters = 0
    for part in np.split(order, cuts):
        if not cons.strict[part].any():
            continue  # only equalities: lambda = 0 is optimal for this block
        hessian = _dual_hessian(E, cons.query[part], cons.i[part], cons.j[part])
        b = rhs[part]
        if jacobi:
            diag = np.diag(hessian).copy()
            diag[diag <= 0.0] = 1.0
            scale = 1.0 / np.sqrt(diag)
            hessian *= scale[:, None]
            hessian *= scale[None, :]
            b = b * scale
        solver = _ProximalDual(hessian, b, cons.strict[part])
        guess = _decoupled_guess(hessian, cons.query[part], b, cons.strict[part])
        x, steps = solver.solve(guess, max_iter=max_iter)
        lam[part] = x * scale if jacobi else x
        outer_iters = max(outer_iters, steps)
        newton_iters += solver.factorizations
    extra.update(active_set_steps=outer_iters, factorizations=newton_iters)
    return lam


def _constraint_rows(
    E: np.ndarray, cons: SVMConstraints
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constraint rows in the coordinates of the row space of ``E``, normalised to unit length.

    With ``E = F V^T`` (``V``: orthonormal basis of the row space, ``r = rank E``), every feasible
    ``W`` of least norm is ``V M V^T`` with ``||W||_F = ||M||_F``, and the constraint reads
    ``vec((f_i - f_j) f_k^T) . vec(M)``. Returns the rows divided by their norms (an exact row
    scaling), the norms, and ``V``.
    """
    _, singular, Vt = np.linalg.svd(E, full_matrices=False)
    rank = int((singular > singular[0] * 1e-15).sum()) if singular.size else 0
    V = Vt[:rank].T  # (d, r)
    F = E @ V  # (K, r)
    m = cons.n_constraints
    _check_memory(
        8.0 * m * rank * rank,
        f"the dense primal constraint matrix ({m} x {rank}^2)",
        "the fast method could not certify this problem; use better conditioned embeddings",
    )
    rows = ((F[cons.i] - F[cons.j])[:, :, None] * F[cons.query][:, None, :]).reshape(m, -1)
    norms = np.linalg.norm(rows, axis=1)
    if np.any(norms[cons.strict] == 0.0):
        bad = np.flatnonzero(cons.strict & (norms == 0.0))[:5]
        conflicts = [(int(cons.query[c]), int(cons.i[c]), int(cons.j[c]), "strict") for c in bad]
        raise InfeasibleProblemError(
            "the Graph-SVM is infeasible: strict constraints with e_i = e_j or e_k = 0 "
            f"(last token, i, j): {[c[:3] for c in conflicts]}; give distinct, nonzero embeddings",
            conflicts=conflicts,
        )
    safe = np.where(norms > 0.0, norms, 1.0)
    return rows / safe[:, None], safe, V


def _clarabel_primal(E: np.ndarray, cons: SVMConstraints) -> list[tuple[np.ndarray, np.ndarray]]:
    """``min 1/2 ||M||^2`` over the reduced primal (row-space coordinates) with Clarabel.

    Returns ``(W, lambda)``, then polishes: the least-norm ``W`` that meets the constraints Clarabel
    found active with equality, solved by an SVD-based least-squares (exact up to round-off).
    """
    import clarabel

    rows, norms, V = _constraint_rows(E, cons)
    r2 = rows.shape[1]
    rhs = cons.rhs / norms
    eq, st = np.flatnonzero(~cons.strict), np.flatnonzero(cons.strict)
    A = sp.csc_matrix(np.vstack([rows[eq], -rows[st]]))
    b = np.concatenate([np.zeros(eq.size), -rhs[st]])
    cones = []
    if eq.size:
        cones.append(clarabel.ZeroConeT(int(eq.size)))
    cones.append(clarabel.NonnegativeConeT(int(st.size)))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_iter = 400
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-12
    settings.tol_feas = 1e-12
    solver = clarabel.DefaultSolver(
        sp.identity(r2, format="csc"), np.zeros(r2), A, b, cones, settings
    )
    solution = solver.solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise SolverError(f"Clarabel stopped with status {solution.status}")
    x = np.asarray(solution.x, dtype=np.float64)
    z = np.asarray(solution.z, dtype=np.float64)
    scaled = np.zeros(cons.n_constraints)  # multipliers of the unit rows (x = rows^T scaled)
    scaled[eq] = -z[: eq.size]
    scaled[st] = z[eq.size :]
    # polish: least-norm solution of the active constraints held with equality
    active = ~cons.strict | (scaled > 1e-9 * max(float(scaled[st].max(initial=0.0)), 1e-300))
    x_pol, *_ = np.linalg.lstsq(rows[active], rhs[active], rcond=None)
    mu, *_ = np.linalg.lstsq(rows[active].T, x_pol, rcond=None)
    polished = np.zeros(cons.n_constraints)
    polished[active] = mu
    r = V.shape[1]
    candidates = [(V @ x.reshape(r, r) @ V.T, scaled / norms)]
    candidates.append((V @ x_pol.reshape(r, r) @ V.T, polished / norms))
    return candidates


def _clarabel_dual(E: np.ndarray, cons: SVMConstraints) -> tuple[np.ndarray, np.ndarray]:
    """The reduced dual QP (Hessian ``Q`` from the Gram products) solved by Clarabel."""
    import clarabel

    m = cons.n_constraints
    _check_memory(8.0 * m * m, f"the dense dual Hessian ({m} x {m})", "use fewer samples")
    Q = _dual_hessian(E, cons.query, cons.i, cons.j)
    st = np.flatnonzero(cons.strict)
    A = sp.csc_matrix((-np.ones(st.size), (np.arange(st.size), st)), shape=(st.size, m))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_iter = 400
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    solver = clarabel.DefaultSolver(
        sp.triu(sp.csc_matrix(Q), format="csc"),
        -cons.rhs,
        A,
        np.zeros(st.size),
        [clarabel.NonnegativeConeT(int(st.size))],
        settings,
    )
    solution = solver.solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise SolverError(f"Clarabel stopped with status {solution.status}")
    lam = np.asarray(solution.x, dtype=np.float64)
    return _dual_to_weights(E, cons, lam), lam


@dataclass(frozen=True, slots=True)
class _Certificate:
    """Optimality check of a candidate ``W`` (with multipliers ``lam``) on the original edges."""

    method: str
    W: np.ndarray
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
        return (
            bool(np.isfinite(self.W).all())
            and self.relative_violation <= VIOLATION_TOL
            and self.relative_gap <= GAP_TOL
        )

    def summary(self) -> str:
        return (
            f"{self.method}: max violation {self.max_violation:.1e} (relative "
            f"{self.relative_violation:.1e}, tol {VIOLATION_TOL:.0e}), relative gap "
            f"{self.relative_gap:.1e} (tol {GAP_TOL:.0e})"
        )


def _certificate(
    method: str,
    graphs: PriorityGraphs,
    cons: SVMConstraints,
    E: np.ndarray,
    W: np.ndarray,
    lam: np.ndarray,
) -> _Certificate:
    """Check ``W`` against every TPG edge and bound its distance to the optimum.

    Violation on an edge is ``max(1 - margin, 0)`` (strict) or ``|margin|`` (same SCC); it is
    measured relative to the edge's round-off scale ``max(1, (|e_i| + |e_j|)^T |W| |e_k|)``. The
    gap is ``P - D`` with ``P = ||W||^2 / 2`` and the dual objective
    ``D = sum(lam_strict) - ||W(lam)||^2 / 2`` of the multipliers (clipped to ``>= 0`` on strict
    constraints), a lower bound on the optimum: ``relative_gap = (P - D) / P``.
    """
    margins, edge_margins, edge_strict, violation, scale = _margins(graphs, cons, E, W)
    lam = np.where(cons.strict, np.maximum(lam, 0.0), lam)
    W_lam = W if method.startswith("active-set") else _dual_to_weights(E, cons, lam)
    primal = 0.5 * float(np.sum(W * W))
    dual = float(lam[cons.strict].sum()) - 0.5 * float(np.sum(W_lam * W_lam))
    gap = primal - dual
    relative_gap = abs(gap) / primal if primal > 0 else abs(gap)
    if not np.isfinite(relative_gap):
        relative_gap = np.inf
    return _Certificate(
        method=method,
        W=W,
        lam=lam,
        margins=margins,
        edge_margins=edge_margins,
        edge_strict=edge_strict,
        max_violation=float(violation.max(initial=0.0)),
        relative_violation=float((violation / np.maximum(scale, 1.0)).max(initial=0.0)),
        duality_gap=gap,
        relative_gap=relative_gap,
    )


def solve_graph_svm(
    graphs: PriorityGraphs,
    embeddings: Any,
    *,
    reduce: bool = True,
    max_iter: int = 2000,
    coupling_tol: float = 1e-14,
    threads: int | None = None,
    memory_limit: int = DUAL_MEMORY_LIMIT,
    allow_inaccurate: bool = False,
) -> GraphSVMResult:
    """Solve the Graph-SVM of docs/theory.md#graph-svm exactly, with a certificate of optimality.

    Parameters
    ----------
    graphs : PriorityGraphs
        From :func:`attnmech.build_priority_graphs`.
    embeddings : ndarray of shape (vocab_size, embedding_dim)
    reduce : bool, default=True
        Drop constraints implied by others (same solution, smaller problem).
    max_iter : int, default=2000
        Largest number of active-set steps per block.
    coupling_tol : float, default=1e-14
        Queries ``k, k'`` with ``|e_k^T e_k'| <= coupling_tol ||e_k|| ||e_k'||`` are treated as
        orthogonal, which splits the problem into independent blocks.
    threads : int, optional
        BLAS threads for the dense factorisations. Default: 1 when the largest block has fewer
        than 4000 constraints (small factorisations lose more to thread contention than they
        gain, up to 17x on a busy 2-core machine), else the BLAS default.
    memory_limit : int, default=4 GiB
        Bytes the dense dual Hessians of the largest block may take (about ``3 m^2 * 8`` for
        ``m`` constraints); above it a SolverError gives the estimate instead of running out of
        memory.
    allow_inaccurate : bool, default=False
        When no method can certify the solution: False raises :class:`SolverError`; True returns
        the best candidate with status ``INACCURATE`` (and a ConvergenceWarning).

    Returns
    -------
    GraphSVMResult
        ``method`` names the method whose solution is returned.

    Raises
    ------
    InfeasibleProblemError
        When the constraints cannot hold together (only possible if the embeddings are linearly
        dependent); ``.conflicts`` lists TPG edges ``(last_token, i, j, kind)`` that conflict.
    SolverError
        When no method certifies a solution (and ``allow_inaccurate`` is False), or a dense
        matrix the problem needs would exceed ``DENSE_LIMIT_BYTES``.

    Notes
    -----
    Methods, in order, until one is certified: ``"active-set"`` (the proximal active-set dual
    method), ``"active-set+jacobi"`` (the same on the Jacobi-scaled dual: an exact change of
    variables that evens out badly scaled embeddings), ``"clarabel"`` / ``"clarabel+polish"``
    (Clarabel's interior-point method on the primal in the row space of the embeddings, with
    unit-normalised constraint rows; then the least-norm solution of its active constraints) and
    ``"clarabel-dual"``. Certified means: every TPG edge violated by at most ``1e-9`` relative to
    its round-off scale ``max(1, (|e_i| + |e_j|)^T |W| |e_k|)``, and the relative duality gap,
    against the dual objective of the returned multipliers, at most ``1e-8``.

    References
    ----------
    Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
    AISTATS 2024, arXiv:2403.08081.

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset, build_priority_graphs
    >>> ds = Dataset([[0, 1, 2]], [0], np.eye(3))
    >>> res = solve_graph_svm(build_priority_graphs(ds), ds.embeddings)
    >>> res.status.value, res.method, np.round(res.W_svm @ np.array([0, 0, 1.0]), 6).tolist()
    ('optimal', 'active-set', [0.666667, -0.333333, -0.333333])
    """
    start = time.perf_counter()
    if not isinstance(graphs, PriorityGraphs):
        raise InvalidParameterError(
            f"graphs must be attnmech.PriorityGraphs, got {type(graphs).__name__}; build them "
            "with attnmech.build_priority_graphs(dataset)"
        )
    for name, value in [("max_iter", max_iter)]:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(coupling_tol, (int, float)) or not coupling_tol < 1.0:
        raise InvalidParameterError(
            f"coupling_tol must be a float below 1 (negative: one coupled problem), got "
            f"{coupling_tol!r}"
        )
    try:
        E = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidDatasetError(
            f"embeddings must be a numeric array of shape ({graphs.vocab_size}, embedding_dim)"
        ) from None
    if E.ndim != 2 or E.shape[0] != graphs.vocab_size or E.shape[1] == 0:
        raise InvalidDatasetError(
            f"embeddings must have shape ({graphs.vocab_size}, embedding_dim), got {E.shape}"
        )
    if not np.isfinite(E).all():
        raise InvalidDatasetError("embeddings contain NaN or inf; replace them with finite values")
    cons = svm_constraints(graphs, reduce=reduce)
    m = cons.n_constraints
    extra: dict[str, Any] = {"n_constraints": m, "n_edges": cons.n_original}
    best: _Certificate | None
    if not cons.strict.any():
        best = _certificate("none", graphs, cons, E, np.zeros((E.shape[1],) * 2), np.zeros(m))
        attempts = [best]
    else:
        # K > d: check feasibility first. K <= d: feasible unless E is rank deficient, which is
        # checked (an SVD) only when the fast method does not certify its answer
        checked = E.shape[0] > E.shape[1]
        if checked:
            _raise_if_infeasible(E, graphs)
        attempts = []
        best = None
        for number, method in enumerate(_METHODS):
            if number > 0 and not checked:
                checked = True
                if np.linalg.matrix_rank(E) < E.shape[0]:
                    _raise_if_infeasible(E, graphs)
            try:
                found = _run_method(
                    method, graphs, cons, E, max_iter, coupling_tol, extra, threads, memory_limit
                )
            except _TooLarge:
                raise  # no other method fits either: the memory estimate is the answer
            except SolverError as exc:
                logger.info("Graph-SVM %s failed: %s", method, exc)
                extra.setdefault("failures", []).append(f"{method}: {exc}")
                continue
            attempts.extend(found)
            certified = [c for c in found if c.certified]
            if certified:
                best = min(certified, key=lambda c: c.relative_violation + c.relative_gap)
                break
            logger.info("Graph-SVM not certified: %s", "; ".join(c.summary() for c in found))
        if best is None:
            tried = "; ".join([c.summary() for c in attempts] + extra.get("failures", []))
            if not attempts or not allow_inaccurate:
                raise SolverError(
                    f"Graph-SVM: no method reached the tolerances ({tried}); the embeddings may be "
                    "nearly dependent or very badly scaled: rescale them, or pass "
                    "allow_inaccurate=True (CLI: --allow-inaccurate) to get the best candidate "
                    "anyway"
                )
            best = min(attempts, key=lambda c: (c.relative_violation, c.relative_gap))
    assert best is not None  # every branch above sets it or raises
    extra["attempts"] = [c.summary() for c in attempts]
    norm_sq = float(np.sum(best.W * best.W))
    status = SolveStatus.OPTIMAL
    if not cons.strict.any():
        message = "no strict priorities (every sample's tokens lie in one SCC): W_svm = 0"
    elif best.certified:
        message = (
            f"optimal ({best.method}): ||W_svm|| = {np.sqrt(norm_sq):.6g}, max violation "
            f"{best.max_violation:.1e}, relative gap {best.relative_gap:.1e}"
        )
    else:
        status = SolveStatus.INACCURATE
        message = (
            f"inaccurate (allow_inaccurate=True): best of {len(attempts)} tries, {best.summary()}"
        )
        warnings.warn(f"Graph-SVM {message}", ConvergenceWarning, stacklevel=2)
    stats = SolverStats(
        solver_name=f"attnmech Graph-SVM ({best.method})",
        solve_time=time.perf_counter() - start,
        setup_time=0.0,
        num_iters=int(extra.get("factorizations", 0)),
        extra_stats=extra,
    )
    return GraphSVMResult(
        W_svm=readonly(best.W),
        status=status,
        message=message,
        **_result_arrays(cons, best.margins, best.lam, best.edge_margins, best.edge_strict),
        max_violation=best.max_violation,
        duality_gap=best.duality_gap,
        relative_gap=best.relative_gap,
        solver_stats=stats,
        method=best.method,
        relative_violation=best.relative_violation,
    )


_METHODS = ("active-set", "active-set+jacobi", "clarabel", "clarabel-dual")


def _run_method(
    method: str,
    graphs: PriorityGraphs,
    cons: SVMConstraints,
    E: np.ndarray,
    max_iter: int,
    coupling_tol: float,
    extra: dict[str, Any],
    threads: int | None = None,
    memory_limit: int = DUAL_MEMORY_LIMIT,
) -> list[_Certificate]:
    """Candidates ``(W, lambda)`` of one method, each with its certificate."""
    if method.startswith("active-set"):
        lam = _active_set_dual(
            E,
            cons,
            max_iter=max_iter,
            coupling_tol=coupling_tol,
            jacobi=method.endswith("jacobi"),
            extra=extra,
            threads=threads,
            memory_limit=memory_limit,
        )
        if not np.isfinite(lam).all():
            raise SolverError("the dual iterates are not finite")
        W = _dual_to_weights(E, cons, lam)
        return [_certificate(method, graphs, cons, E, W, lam)]
    try:
        import clarabel  # noqa: F401
    except ImportError:  # pragma: no cover - clarabel is a dependency
        raise SolverError(f"{method} needs the clarabel package (pip install clarabel)") from None
    if method == "clarabel":
        (W1, lam1), (W2, lam2) = _clarabel_primal(E, cons)
        return [
            _certificate("clarabel", graphs, cons, E, W1, lam1),
            _certificate("clarabel+polish", graphs, cons, E, W2, lam2),
        ]
    W, lam = _clarabel_dual(E, cons)
    return [_certificate("clarabel-dual", graphs, cons, E, W, lam)]


def _raise_if_infeasible(E: np.ndarray, graphs: PriorityGraphs) -> None:
    """Feasibility check for linearly dependent embeddings, on the literal TPG edges."""
    full = svm_constraints(graphs, reduce=False)
    conflicts = _find_conflict(E, full)
    if conflicts:
        shown = ", ".join(f"(k={k}, {i}, {j}, {kind})" for k, i, j, kind in conflicts[:20])
        raise InfeasibleProblemError(
            f"the Graph-SVM is infeasible: the embeddings are linearly dependent and these "
            f"{len(conflicts)} edges i -> j of G^(k) (last token k) cannot hold together: "
            f"{shown}; use linearly independent embeddings (vocab_size <= embedding_dim)",
            conflicts=conflicts,
        )


def _dual_to_weights(E: np.ndarray, cons: SVMConstraints, lam: np.ndarray) -> np.ndarray:
    """``W = E^T Lambda E`` with ``Lambda[:, k] = sum_c lambda_c (e_i - e_j)`` (the dual map).

    ``Lambda`` is sparse (two entries per constraint), so no ``K x K`` array is formed.
    """
    K = E.shape[0]
    rows = np.concatenate([cons.i, cons.j])
    cols = np.concatenate([cons.query, cons.query])
    coeff = sp.csr_matrix((np.concatenate([lam, -lam]), (rows, cols)), shape=(K, K))
    return np.asarray(E.T @ (coeff @ E))


def _margins(
    graphs: PriorityGraphs, cons: SVMConstraints, E: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Margins recomputed from ``W``: per reduced constraint and per TPG edge, which edges are
    strict, each edge's violation and its round-off scale ``(|e_i| + |e_j|)^T |W| |e_k|``.

    Only the queries that occur are used: the ``K x n_queries`` score table when it fits in
    64 MB, else ``W e_k`` (``d x n_queries``) and the edges in chunks; never a ``K x K`` table.
    """
    queries = graphs.queries
    _check_memory(
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
    edge_strict = graphs.scc_of(graphs.edge_query, graphs.edge_src) != graphs.scc_of(
        graphs.edge_query, graphs.edge_dst
    )
    edge_margins, scale = edge_dots(graphs.edge_src, graphs.edge_dst, graphs.edge_query, True)
    violation = np.where(edge_strict, np.maximum(1.0 - edge_margins, 0.0), np.abs(edge_margins))
    return margins, edge_margins, edge_strict, violation, scale


def _certify(
    graphs: PriorityGraphs, cons: SVMConstraints, E: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Margins per reduced constraint and per TPG edge, which edges are strict, and the largest
    absolute violation (used by the nuclear-norm solver)."""
    margins, edge_margins, edge_strict, violation, _ = _margins(graphs, cons, E, W)
    return margins, edge_margins, edge_strict, float(violation.max(initial=0.0))


def _result_arrays(
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


# --------------------------------------------------------------------------------- nuclear norm
def solve_nuclear_svm(graphs: PriorityGraphs, embeddings: Any) -> GraphSVMResult:
    """The nuclear-norm Graph-SVM: ``min ||W||_*`` under the constraints of
    docs/theory.md#graph-svm.

    An extension beyond the paper's proofs (docs/theory.md#other-norms): when ``W = K Q^T`` is
    trained with both factors, gradient descent is expected to follow this direction instead of the
    Frobenius-norm ``W_svm``. It is a semidefinite program, solved with cvxpy and Clarabel
    (optional dependencies: ``pip install -e ".[test]"``); sizes up to ``d`` of a few dozen.

    Returns a :class:`GraphSVMResult` (``W_svm`` holds the nuclear-norm solution; its
    ``duality_gap`` and ``relative_gap`` are the solver's, for the nuclear-norm objective).

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset, build_priority_graphs
    >>> ds = Dataset([[0, 1, 2]], [0], np.eye(3))
    >>> res = solve_nuclear_svm(build_priority_graphs(ds), ds.embeddings)
    >>> round(float(np.linalg.norm(res.W_svm, "nuc")), 4)  # one query: rank one, as Frobenius
    0.8165
    """
    try:
        import cvxpy as cp
    except ImportError:  # pragma: no cover - depends on the environment
        raise SolverError(
            "the nuclear-norm Graph-SVM needs cvxpy and clarabel; install them with "
            "pip install -e '.[test]' (or pip install cvxpy clarabel)"
        ) from None
    start = time.perf_counter()
    E = np.asarray(embeddings, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] != graphs.vocab_size or not np.isfinite(E).all():
        raise InvalidDatasetError(
            f"embeddings must be finite with shape ({graphs.vocab_size}, embedding_dim)"
        )
    cons = svm_constraints(graphs)
    d = E.shape[1]
    m = cons.n_constraints
    if not cons.strict.any():
        W = np.zeros((d, d))
        lam = np.zeros(m)
        status, message, gap, iters = SolveStatus.OPTIMAL, "no strict priorities: W = 0", 0.0, 0
    else:
        W_var = cp.Variable((d, d))
        delta = E[cons.i] - E[cons.j]  # (m, d)
        margins_expr = cp.sum(cp.multiply(delta @ W_var, E[cons.query]), axis=1)
        strict = np.flatnonzero(cons.strict)
        equal = np.flatnonzero(~cons.strict)
        constraints = [margins_expr[strict] >= 1]
        if equal.size:
            constraints.append(margins_expr[equal] == 0)
        problem = cp.Problem(cp.Minimize(cp.normNuc(W_var)), constraints)
        try:
            problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
        except cp.error.SolverError as exc:
            raise SolverError(f"nuclear-norm Graph-SVM: Clarabel failed ({exc})") from None
        if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            raise InfeasibleProblemError(
                "the nuclear-norm Graph-SVM is infeasible; use linearly independent embeddings"
            )
        if W_var.value is None:
            raise SolverError(f"nuclear-norm Graph-SVM: solver status {problem.status}")
        W = np.asarray(W_var.value)
        lam = np.zeros(m)
        lam[strict] = np.asarray(constraints[0].dual_value).ravel()
        if equal.size:
            lam[equal] = np.asarray(constraints[1].dual_value).ravel()
        primal = float(np.linalg.norm(W, "nuc"))
        gap = primal - float(lam[strict].sum())
        iters = int(problem.solver_stats.num_iters or 0)
        status = SolveStatus.OPTIMAL if problem.status == cp.OPTIMAL else SolveStatus.INACCURATE
        message = f"{problem.status}: ||W||_* = {primal:.6g}"
    margins, edge_margins, edge_strict, max_violation = _certify(graphs, cons, E, W)
    nuc = float(np.linalg.norm(W, "nuc"))
    if status is SolveStatus.OPTIMAL and max_violation > 1e-6:
        status = SolveStatus.INACCURATE
        message += f"; max violation {max_violation:.1e}"
        warnings.warn(f"nuclear-norm Graph-SVM {message}", ConvergenceWarning, stacklevel=2)
    return GraphSVMResult(
        W_svm=readonly(W),
        status=status,
        message=message,
        **_result_arrays(cons, margins, lam, edge_margins, edge_strict, active_tol=1e-9),
        max_violation=max_violation,
        duality_gap=gap,
        relative_gap=abs(gap) / nuc if nuc > 0 else abs(gap),
        solver_stats=SolverStats(
            solver_name="cvxpy + Clarabel (nuclear norm)",
            solve_time=time.perf_counter() - start,
            setup_time=0.0,
            num_iters=iters,
            extra_stats={"n_constraints": m, "n_edges": cons.n_original, "norm": "nuclear"},
        ),
        norm_name="nuclear",
        unique=None,
        method="cvxpy+clarabel",
        relative_violation=max_violation,
    )
