"""Token-space theory: the Graph-SVM and ``W_fin`` for one-hot or orthonormal embeddings.

With one-hot embeddings ``W`` *is* the ``K x K`` score table ``A`` (``A[j, k] = e_j^T W e_k``);
with orthonormal rows ``E`` (``E E^T = I``) the map ``W = E^T A E`` is an isometry between score
tables and the weights that matter (docs/theory.md#graph-svm, "structure to exploit"). Every
constraint and the loss touch ``W`` only through the scores ``A[j, k]`` of tokens ``j`` seen with
query ``k``,
so both problems split by query into small problems:

- **Graph-SVM, per query** ``k``: one variable ``x_s`` per SCC ``s`` of ``G^(k)`` (its members
  share the score), minimise ``sum_s |s| x_s^2`` subject to ``x_a - x_b >= 1`` on the transitive
  reduction of the condensation DAG. The dual (``Q = D S^-1 D^T``, one row per reduced edge) is
  small; it is solved exactly by the proximal active-set method of :mod:`attnmech.theory.svm`, with
  closed forms for the many queries that have a single strict edge. Scores of tokens never seen
  with ``k`` are 0.
- **W_fin, per SCC**: the reduced dataset (docs/theory.md#the-finite-part) has, per sample, only
tokens of its
  label's SCC, so the loss is a sum over nontrivial SCCs of a log-loss in that SCC's scores,
  restricted to zero-sum scores (``S_fin``). Newton's method runs on all SCCs at once: SCCs are
  grouped by size and each group's Newton systems are solved as one batched dense solve; the
  line search is per SCC.

Results keep ``W_svm`` and ``W_fin`` as sparse score tables (:class:`ScoreTable`), densified to
``d x d`` only on request, with a memory check. :func:`attnmech.solve` dispatches here when
:func:`is_token_space` holds.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._results import SolvedMixin, SolverStats, SolveStatus, readonly
from ..data.dataset import Dataset, OneHotEmbeddings
from ..errors import ConvergenceWarning, InvalidDatasetError, InvalidParameterError
from .automaton import Automaton
from .finite import GRADIENT_TOL, FiniteSubspace, ReducedData, reduce_dataset
from .newton import NewtonOptions, damped_newton
from .graphs import PriorityGraphs
from .graphsvm.active_set import SparseKKT, proximal_active_set
from .graphsvm.certificate import (
    GAP_TOL,
    VIOLATION_TOL,
    Certificate,
    SVMResultBase,
    edge_strictness,
    edge_violation,
    relative_gap_of,
    verdict,
)
from .graphsvm.clarabel import token_dual_guess as _interior_guess
from .graphsvm.constraints import SVMConstraints, svm_constraints

__all__ = [
    "ScoreTable",
    "TokenSVMResult",
    "TokenFiniteResult",
    "TokenAutomaton",
    "is_token_space",
    "solve_token_svm",
    "solve_token_finite",
    "DENSE_LIMIT_BYTES",
]

logger = logging.getLogger(__name__)

DENSE_LIMIT_BYTES = 2 * 1024**3  # largest dense d x d matrix built by to_dense() (2 GiB)
ORTHONORMAL_TOL = 1e-10


# --------------------------------------------------------------------------------- detection
def is_token_space(embeddings: Any, *, seed: int = 0) -> bool:
    """True for one-hot embeddings, or embeddings with orthonormal rows (``E E^T = I``).

    The check is cheap, O(K d): row norms, then ``E E^T v = v`` for two random probes ``v``
    (a nonzero ``E E^T - I`` is missed by a random probe with probability 0).
    """
    if isinstance(embeddings, Dataset):
        embeddings = embeddings.embedding_table
    if isinstance(embeddings, OneHotEmbeddings):
        return True
    E = np.asarray(embeddings, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] > E.shape[1]:
        return False
    if np.abs(np.einsum("ij,ij->i", E, E) - 1.0).max(initial=0.0) > ORTHONORMAL_TOL:
        return False
    rng = np.random.default_rng(seed)
    probes = rng.standard_normal((E.shape[0], 2))
    residual = E @ (E.T @ probes) - probes
    scale = np.linalg.norm(probes, axis=0)
    return bool((np.linalg.norm(residual, axis=0) <= ORTHONORMAL_TOL * scale).all())


def _dense_check(what: str, n_bytes: int, limit: int) -> None:
    if n_bytes > limit:
        raise InvalidParameterError(
            f"{what} needs {n_bytes / 2**30:.2f} GiB as a dense float64 matrix (limit "
            f"{limit / 2**30:.2f} GiB); use its sparse score table (.scores) instead, or pass "
            "limit_bytes= to to_dense()"
        )


# --------------------------------------------------------------------------------- score tables
@dataclass(frozen=True, slots=True, eq=False)
class ScoreTable:
    """A sparse ``K x K`` score table ``A[token, query]`` (entries not stored are 0).

    Attributes
    ----------
    vocab_size : int
    query, token : ndarray of int64 of shape (n_entries,)
        Sorted by (query, token).
    value : ndarray of shape (n_entries,)

    Indexing ``table[tokens, queries]`` broadcasts like a numpy array and returns the scores.
    """

    vocab_size: int
    query: np.ndarray
    token: np.ndarray
    value: np.ndarray

    @property
    def n_entries(self) -> int:
        """Number of stored entries."""
        return int(self.value.size)

    @property
    def norm(self) -> float:
        """Frobenius norm (equal to ``||W||_F`` for one-hot or orthonormal embeddings)."""
        return float(np.linalg.norm(self.value))

    def __getitem__(self, index: tuple[Any, Any]) -> np.ndarray:
        tokens, queries = np.broadcast_arrays(
            np.asarray(index[0], dtype=np.int64), np.asarray(index[1], dtype=np.int64)
        )
        K = self.vocab_size
        keys = self.query * K + self.token
        want = queries * K + tokens
        if keys.size == 0:
            return np.zeros(want.shape)
        pos = np.minimum(np.searchsorted(keys, want), keys.size - 1)
        return np.where(keys[pos] == want, self.value[pos], 0.0)

    def column(self, query: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, scores) stored for one query."""
        lo, hi = np.searchsorted(self.query, [query, query + 1])
        return self.token[lo:hi], self.value[lo:hi]

    def to_sparse(self) -> sp.csc_matrix:
        """``scipy.sparse.csc_matrix`` of shape (K, K), rows = tokens, columns = queries."""
        K = self.vocab_size
        return sp.csc_matrix((self.value, (self.token, self.query)), shape=(K, K))

    def to_dense(self, embeddings: Any = None, *, limit_bytes: int = DENSE_LIMIT_BYTES) -> Any:
        """``W = E^T A E`` of shape (d, d) (``A`` itself for one-hot embeddings, ``None``).

        Raises
        ------
        InvalidParameterError
            When ``d * d * 8`` bytes exceeds ``limit_bytes``.
        """
        if embeddings is None or isinstance(embeddings, OneHotEmbeddings):
            K = self.vocab_size
            _dense_check(f"a {K} x {K} score table", K * K * 8, limit_bytes)
            out = np.zeros((K, K))
            out[self.token, self.query] = self.value
            return out
        E = np.asarray(embeddings, dtype=np.float64)
        d = E.shape[1]
        _dense_check(f"a {d} x {d} weight matrix", d * d * 8, limit_bytes)
        uq, qidx = np.unique(self.query, return_inverse=True)
        # W = sum_entries value * e_token e_query^T, grouped by query: U (d, n_q) @ E[uq]
        gather = sp.csr_matrix(
            (self.value, (qidx, np.arange(self.value.size))), shape=(uq.size, self.value.size)
        )
        U = (gather @ E[self.token]).T  # (d, n_q)
        return U @ E[uq]


def _embeddings_for_dense(embeddings: Any) -> Any:
    return None if isinstance(embeddings, OneHotEmbeddings) else embeddings


def _cached_dense(
    scores: ScoreTable, embeddings: Any, cache: dict[str, np.ndarray], limit_bytes: int
) -> np.ndarray:
    """The dense ``d x d`` matrix of ``scores``, built once and kept read-only in ``cache``."""
    if "W" not in cache:
        dense = scores.to_dense(_embeddings_for_dense(embeddings), limit_bytes=limit_bytes)
        cache["W"] = readonly(dense)
    return cache["W"]


# --------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class TokenSVMResult(SVMResultBase):
    """Graph-SVM solved in token space; the fields of
    :class:`attnmech.theory.graphsvm.certificate.SVMResultBase`, plus the sparse scores.

    ``W_svm`` is a property: the ``d x d`` matrix is built from :attr:`scores` on first access
    (memory-checked, cached). ``scores`` holds the per-query SCC scores.
    """

    scores: ScoreTable
    embeddings: Any
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    method: str = "token-space active-set"

    @property
    def norm(self) -> float:
        """Frobenius norm of ``W_svm`` (of the score table)."""
        return self.scores.norm

    def to_dense(self, *, limit_bytes: int = DENSE_LIMIT_BYTES) -> np.ndarray:
        """``W_svm`` of shape (d, d), float64, read-only (memory-checked)."""
        return _cached_dense(self.scores, self.embeddings, self._cache, limit_bytes)

    @property
    def W_svm(self) -> np.ndarray:
        """ndarray of shape (d, d), built on request from :attr:`scores`."""
        return self.to_dense()


@dataclass(frozen=True, slots=True, eq=False)
class TokenFiniteResult(SolvedMixin):
    """``W_fin`` solved in token space; same fields as :class:`attnmech.theory.finite.FiniteResult`.

    ``W_fin`` is built on request from :attr:`scores`; :attr:`subspace` projects on ``S_fin``
    without a dense basis.
    """

    scores: ScoreTable
    embeddings: Any
    status: SolveStatus
    message: str
    generator_query: np.ndarray
    generator_i: np.ndarray
    generator_j: np.ndarray
    coefficients: np.ndarray
    gradient_norm: float
    loss: float
    reduced: ReducedData
    solver_stats: SolverStats
    subspace: FiniteSubspace
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def dimension(self) -> int:
        """Dimension of the finite subspace ``S_fin``."""
        return self.subspace.dimension

    @property
    def norm(self) -> float:
        """Frobenius norm of ``W_fin`` (of the score table)."""
        return self.scores.norm

    @property
    def basis(self) -> np.ndarray:
        """Dense basis (dimension, d, d); small problems only (see FiniteSubspace.basis)."""
        return self.subspace.basis()

    def project(self, W: Any) -> np.ndarray:
        """``Proj_{S_fin} W`` for ``W`` of shape (..., d, d)."""
        return self.subspace.project(W)

    def to_dense(self, *, limit_bytes: int = DENSE_LIMIT_BYTES) -> np.ndarray:
        """``W_fin`` of shape (d, d), float64, read-only (memory-checked)."""
        return _cached_dense(self.scores, self.embeddings, self._cache, limit_bytes)

    @property
    def W_fin(self) -> np.ndarray:
        """``W_fin`` of shape (d, d), dense (see :meth:`to_dense`)."""
        return self.to_dense()


class TokenAutomaton(Automaton):
    """The automaton of docs/theory.md#the-automaton read from sparse score tables (nothing ``K x
    K``).

    Same methods as :class:`~attnmech.theory.automaton.Automaton`; scores of tokens never seen with
    a query are 0.
    """

    def __init__(
        self, svm_scores: ScoreTable, fin_scores: ScoreTable, *, tie_tol: float = 1e-6
    ) -> None:
        self.svm_table = svm_scores  # indexed as [token, query], like the dense tables
        self.fin_table = fin_scores
        self.tie_tol = float(tie_tol)
        self._vocab_size = svm_scores.vocab_size

    @property
    def vocab_size(self) -> int:
        """Vocabulary size K, from the score tables."""
        return self._vocab_size

    @property
    def W_svm(self) -> np.ndarray:
        """Unavailable: a TokenAutomaton keeps only score tables; raises InvalidParameterError."""
        raise InvalidParameterError(
            "a TokenAutomaton keeps only score tables; use theory.W_svm for the dense matrix"
        )


# --------------------------------------------------------------------------------- Graph-SVM
WARM_START_AFTER = 25  # active-set steps after which unsettled queries get an interior-point guess


def _token_dual(
    size: np.ndarray,
    above: np.ndarray,
    below: np.ndarray,
    block: np.ndarray,
    *,
    max_iter: int = 2000,
    tol: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Solve ``min 1/2 x^T S x`` s.t. ``x[above] - x[below] >= 1``, ``S = diag(size)``, exactly.

    The proximal active-set core of :mod:`attnmech.theory.graphsvm.active_set` with its sparse
    KKT solve (:class:`~attnmech.theory.graphsvm.active_set.SparseKKT`); ``block`` (one id per
    query) lets a finished block leave the system, so later steps factorise less. Most queries
    settle in a few steps; a query whose dual is degenerate (dependent constraints) can make the
    active set wander for hundreds of steps. Queries still running after ``WARM_START_AFTER``
    steps are therefore restarted from an interior-point solution of their own problem
    (:func:`attnmech.theory.graphsvm.clarabel.token_dual_guess`: its multipliers and the constraints it leaves slack), which the
    same active-set method polishes to the exact solution in a few steps. Should that fail, the
    plain method runs again from the start, so the answer never depends on the guess. Returns
    the scores ``x``, the multipliers, the number of steps and of factorisations.
    """
    strict = np.ones(above.size, dtype=bool)
    solver = SparseKKT(size, above, below)
    live = np.zeros(above.size, dtype=bool)
    lam, steps = proximal_active_set(
        solver,
        strict,
        block=block,
        max_iter=min(max_iter, WARM_START_AFTER),
        tol=tol,
        stop_on_cycle=False,
        what="token Graph-SVM",
        live_out=live,
    )
    if not live.any() or steps >= max_iter:  # converged, or out of steps (as without a guess)
        return solver.scores, lam, steps, solver.factorizations
    guess = _interior_guess(size, above[live], below[live])
    if guess is not None:
        polish = SparseKKT(size, above[live], below[live])
        polish.eps = solver.eps  # the same proximal term as the other queries
        still = np.zeros(int(live.sum()), dtype=bool)
        lam_live, more = proximal_active_set(
            polish,
            strict[live],
            block=block[live],
            active=guess <= 0.0,
            x0=guess,
            max_iter=max_iter - steps,
            tol=tol,
            stop_on_cycle=False,
            what="token Graph-SVM (warm start)",
            live_out=still,
        )
        if not still.any():
            touched = np.zeros(size.size, dtype=bool)
            touched[above[live]] = touched[below[live]] = True
            scores = np.where(touched, polish.scores, solver.scores)
            lam[live] = lam_live
            return scores, lam, steps + more, solver.factorizations + polish.factorizations
        logger.info("token Graph-SVM: the warm start did not settle; solving without it")
    cold = SparseKKT(size, above, below)
    lam, steps = proximal_active_set(
        cold,
        strict,
        block=block,
        max_iter=max_iter,
        tol=tol,
        stop_on_cycle=False,
        what="token Graph-SVM",
    )
    return cold.scores, lam, steps, cold.factorizations


def _check_embeddings(graphs: PriorityGraphs, embeddings: Any) -> Any:
    if embeddings is None:
        return OneHotEmbeddings(graphs.vocab_size)
    if isinstance(embeddings, OneHotEmbeddings):
        if embeddings.vocab_size != graphs.vocab_size:
            raise InvalidDatasetError(
                f"one-hot embeddings of vocab_size {embeddings.vocab_size} do not match the "
                f"graphs' vocab_size {graphs.vocab_size}"
            )
        return embeddings
    E = np.asarray(embeddings, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] != graphs.vocab_size:
        raise InvalidDatasetError(
            f"embeddings must have shape ({graphs.vocab_size}, embedding_dim), got {E.shape}"
        )
    if not is_token_space(E):
        raise InvalidParameterError(
            "the token-space solvers need one-hot embeddings or orthonormal rows (E E^T = I); "
            "use attnmech.theory.graphsvm.solve_graph_svm / attnmech.theory.finite.solve_finite "
            "for these embeddings"
        )
    return E


def _scc_chain_duals(
    graphs: PriorityGraphs, cons: SVMConstraints, residual: np.ndarray
) -> np.ndarray:
    """Multipliers of the equality chains from the per-node residual (zero sum per SCC)."""
    order = np.lexsort((graphs.node_token, graphs.node_scc))
    r = residual[order]
    scc = graphs.node_scc[order]
    total = np.cumsum(r)
    starts = np.flatnonzero(np.r_[True, scc[1:] != scc[:-1]])
    before = np.repeat(total[starts] - r[starts], np.diff(np.r_[starts, scc.size]))
    cumulative = np.empty_like(r)
    cumulative[order] = total - before  # per node: sum of residuals of members up to it
    eq = np.flatnonzero(~cons.strict)
    nodes = graphs.node_index(cons.query[eq], cons.i[eq])
    out = np.zeros(cons.n_constraints)
    out[eq] = cumulative[nodes]
    return out


def solve_token_svm(
    graphs: PriorityGraphs,
    embeddings: Any = None,
    *,
    max_iter: int = 2000,
) -> TokenSVMResult:
    """Solve the Graph-SVM (docs/theory.md#graph-svm) in token space, one small problem per query.

    Parameters
    ----------
    graphs : PriorityGraphs
    embeddings : OneHotEmbeddings, ndarray with orthonormal rows, or None (one-hot)
    max_iter : int, default=2000
        Largest number of active-set steps per query.

    Returns
    -------
    TokenSVMResult
        Equal to :func:`attnmech.theory.svm.solve_graph_svm` (the same reduced constraints, margins,
        duals and certificate), with ``W_svm`` kept as a sparse score table.

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset, build_priority_graphs
    >>> ds = Dataset([[0, 1, 2]], [0], "onehot")
    >>> res = solve_token_svm(build_priority_graphs(ds))
    >>> np.round(res.scores.column(2)[1], 6).tolist()
    [0.666667, -0.333333, -0.333333]
    """
    start = time.perf_counter()
    E = _check_embeddings(graphs, embeddings)
    cons = svm_constraints(graphs)
    m = cons.n_constraints
    strict = np.flatnonzero(cons.strict)
    # strict constraint c: SCC a (of i) above SCC b (of j), both under query q
    scc_a = graphs.scc_of(cons.query[strict], cons.i[strict])
    scc_b = graphs.scc_of(cons.query[strict], cons.j[strict])
    size = graphs.scc_size.astype(np.float64)
    x = np.zeros(graphs.n_sccs)  # score of each SCC
    lam_strict = np.zeros(strict.size)
    setup = time.perf_counter() - start
    steps = n_factor = 0
    if strict.size:
        x, lam_strict, steps, n_factor = _token_dual(
            size, scc_a, scc_b, cons.query[strict], max_iter=max_iter
        )
    node_score = x[graphs.node_scc]
    table = ScoreTable(
        graphs.vocab_size,
        readonly(graphs.node_query, np.int64),
        readonly(graphs.node_token, np.int64),
        readonly(node_score),
    )
    # certificate: margins on every reduced constraint and every original edge, duality gap
    margins = table[cons.i, cons.query] - table[cons.j, cons.query]
    edge_margins = (
        table[graphs.edge_src, graphs.edge_query] - table[graphs.edge_dst, graphs.edge_query]
    )
    edge_strict = edge_strictness(graphs)
    violation = edge_violation(edge_margins, edge_strict)
    max_violation = float(violation.max(initial=0.0))
    lam = np.zeros(m)
    lam[strict] = lam_strict
    # equality multipliers: the part of the scores the strict multipliers do not explain
    flow_nodes = np.zeros(graphs.n_nodes)
    if strict.size:
        np.add.at(flow_nodes, graphs.node_index(cons.query[strict], cons.i[strict]), lam_strict)
        np.subtract.at(
            flow_nodes, graphs.node_index(cons.query[strict], cons.j[strict]), lam_strict
        )
    lam += _scc_chain_duals(graphs, cons, node_score - flow_nodes)
    norm_sq = float(node_score @ node_score)
    gap = norm_sq - float(lam_strict.sum())
    cert = Certificate(
        method="token-space active-set",
        W=None,
        lam=lam,
        margins=margins,
        edge_margins=edge_margins,
        edge_strict=edge_strict,
        max_violation=max_violation,
        relative_violation=max_violation,  # absolute: an upper bound of the relative one
        duality_gap=gap,
        relative_gap=relative_gap_of(gap, norm_sq),
    )
    status, message = verdict(
        cons,
        cert.certified,
        f"optimal ({cert.method}): ||W_svm|| = {np.sqrt(norm_sq):.6g}, max violation "
        f"{max_violation:.1e}, relative gap {cert.relative_gap:.1e}",
        f"inaccurate ({cert.method}): max violation {max_violation:.1e} (tol "
        f"{VIOLATION_TOL:.0e}), relative gap {cert.relative_gap:.1e} (tol {GAP_TOL:.0e})",
    )
    stats = SolverStats(
        solver_name="attnmech token-space Graph-SVM (sparse proximal active-set)",
        solve_time=time.perf_counter() - start,
        setup_time=setup,
        num_iters=steps,
        extra_stats={
            "n_constraints": m,
            "n_edges": cons.n_original,
            "n_strict": int(strict.size),
            "n_variables": graphs.n_sccs,
            "factorizations": n_factor,
            "token_space": True,
        },
    )
    logger.info("token-space Graph-SVM: %s (%.2f s)", message, stats.solve_time)
    return TokenSVMResult(
        scores=table,
        embeddings=E,
        status=status,
        message=message,
        **cert.result_arrays(cons),
        max_violation=max_violation,
        duality_gap=gap,
        relative_gap=cert.relative_gap,
        solver_stats=stats,
        relative_violation=cert.relative_violation,
    )


# --------------------------------------------------------------------------------- W_fin
class _SCCLoss:
    """The reduced log-loss as a function of the scores of the nontrivial SCCs' nodes.

    Variables are grouped by SCC (contiguous, ``var_group`` non-decreasing); each reduced sample
    touches the variables of one group only.
    """

    def __init__(
        self,
        reduced: ReducedData,
        var_index: Callable[[np.ndarray, np.ndarray], np.ndarray],
        n_vars: int,
        K: int,
    ) -> None:
        sample_of = np.repeat(np.arange(reduced.n_samples), reduced.lengths)
        keys = sample_of.astype(np.int64) * K + reduced.tokens
        entry_keys, counts = np.unique(keys, return_counts=True)
        self.entry_sample = entry_keys // K
        token = entry_keys % K
        self.entry_log_count = np.log(counts.astype(np.float64))
        self.entry_is_label = token == reduced.labels[self.entry_sample]
        self.entry_var = var_index(reduced.queries[self.entry_sample], token)
        self.n_samples = reduced.n_samples
        self.n_full = reduced.n_full
        self.n_vars = n_vars
        self.label_entry = np.flatnonzero(self.entry_is_label)

    def evaluate(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-sample loss (already divided by n_full), gradient, and attention per entry."""
        z = u[self.entry_var] + self.entry_log_count
        zmax = np.full(self.n_samples, -np.inf)
        np.maximum.at(zmax, self.entry_sample, z)
        w = np.exp(z - zmax[self.entry_sample])
        total = np.bincount(self.entry_sample, weights=w, minlength=self.n_samples)
        prob = w / total[self.entry_sample]
        label_z = np.zeros(self.n_samples)
        label_z[self.entry_sample[self.label_entry]] = z[self.label_entry]
        sample_loss = (np.log(total) + zmax - label_z) / self.n_full
        d_entry = (prob - self.entry_is_label) / self.n_full
        grad = np.bincount(self.entry_var, weights=d_entry, minlength=self.n_vars)
        return sample_loss, grad, prob

    def hessian(self, prob: np.ndarray) -> sp.csr_matrix:
        """Sparse Hessian (block diagonal by SCC): sum over samples of (diag p - p p^T) / n."""
        n = self.n_full
        diag = np.bincount(self.entry_var, weights=prob, minlength=self.n_vars) / n
        spread = sp.csr_matrix(
            (prob, (self.entry_sample, self.entry_var)), shape=(self.n_samples, self.n_vars)
        )
        hess = (sp.diags(diag) - (spread.T @ spread) / n).tocsr()
        hess.sum_duplicates()
        return hess.tocoo()


def finite_subspace_of(
    graphs: PriorityGraphs, embeddings: Any
) -> tuple[np.ndarray, np.ndarray, FiniteSubspace]:
    """``S_fin`` of token-space data, from the graphs alone (no solve).

    Returns
    -------
    nodes : ndarray of int64
        The graph nodes of the nontrivial SCCs, grouped by SCC (the variables of ``W_fin``).
    group : ndarray of int64
        SCC group of each node (non-decreasing, ``0 .. n_groups - 1``).
    subspace : FiniteSubspace
    """
    big = graphs.scc_size[graphs.node_scc] > 1
    nodes = np.flatnonzero(big)
    order = np.lexsort((graphs.node_token[nodes], graphs.node_scc[nodes]))
    nodes = nodes[order]
    _, group = np.unique(graphs.node_scc[nodes], return_inverse=True)
    group = group.astype(np.int64)
    E = None if embeddings is None or isinstance(embeddings, OneHotEmbeddings) else embeddings
    subspace = FiniteSubspace.token_space(
        graphs.node_query[nodes], graphs.node_token[nodes], group, E, graphs.vocab_size
    )
    return nodes, group, subspace


def solve_token_finite(
    dataset: Dataset,
    graphs: PriorityGraphs,
    *,
    tol: float = GRADIENT_TOL,
    max_iter: int = 200,
    constraints: SVMConstraints | None = None,
) -> TokenFiniteResult:
    """Compute ``W_fin`` (docs/theory.md#the-finite-part) in token space: batched Newton over the
    SCCs.

    Parameters
    ----------
    dataset : Dataset
        With one-hot embeddings or orthonormal rows.
    graphs : PriorityGraphs
    tol : float, default=1e-10
        Stop when the norm of the gradient on ``S_fin`` is below ``tol``.
    max_iter : int, default=200
    constraints : SVMConstraints, optional
        ``svm_constraints(graphs)`` when the caller has it already (e.g. from
        :func:`solve_token_svm`'s result), so it is not built twice; it must belong to ``graphs``.

    Returns
    -------
    TokenFiniteResult

    Examples
    --------
    >>> from attnmech import Dataset, build_priority_graphs
    >>> ds = Dataset([[0, 1]] * 3, [0, 0, 1], "onehot")
    >>> res = solve_token_finite(ds, build_priority_graphs(ds))
    >>> tokens, scores = res.scores.column(1)
    >>> round(float(scores[0] - scores[1]), 6)
    0.693147
    """
    start = time.perf_counter()
    E = _check_embeddings(graphs, dataset.embedding_table)
    K = graphs.vocab_size
    cons = svm_constraints(graphs) if constraints is None else constraints
    eq = ~cons.strict
    gq, gi, gj = cons.query[eq], cons.i[eq], cons.j[eq]
    nodes, var_group, subspace = finite_subspace_of(graphs, E)
    var_query = graphs.node_query[nodes]
    var_token = graphs.node_token[nodes]
    n_vars = nodes.size
    node_to_var = np.full(graphs.n_nodes, -1, dtype=np.int64)
    node_to_var[nodes] = np.arange(n_vars)
    reduced = reduce_dataset(dataset, graphs)
    u = np.zeros(n_vars)
    iterations = 0
    grad_norm = 0.0
    loss_value = 0.0
    status = SolveStatus.OPTIMAL
    setup = time.perf_counter() - start
    if n_vars == 0 or reduced.n_samples == 0:
        message = "S_fin = {0} (no SCC with more than one token): W_fin = 0"
    else:
        objective = _SCCLoss(reduced, lambda q, t: node_to_var[graphs.node_index(q, t)], n_vars, K)
        n_groups = int(var_group[-1]) + 1
        group_size = np.bincount(var_group, minlength=n_groups)
        group_start = np.r_[0, np.cumsum(group_size)[:-1]]
        local = np.arange(n_vars) - group_start[var_group]
        sample_group = var_group[objective.entry_var[objective.label_entry]]
        sample_group = sample_group[np.argsort(objective.entry_sample[objective.label_entry])]
        sizes = np.unique(group_size)
        by_size = {int(s): np.flatnonzero(group_size == s) for s in sizes}
        slot = np.empty(n_groups, dtype=np.int64)  # position of a group within its size class
        for groups in by_size.values():
            slot[groups] = np.arange(groups.size)

        def project(g: np.ndarray) -> np.ndarray:  # on zero-sum scores per SCC
            return g - (np.bincount(var_group, g, n_groups) / group_size)[var_group]

        last: dict[str, np.ndarray] = {}

        def value_grad(point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            sample_loss, g, prob = objective.evaluate(point)
            last.update(sample_loss=sample_loss, prob=prob)
            loss_g = np.bincount(sample_group, weights=sample_loss, minlength=n_groups)
            return loss_g, project(g)

        def hessian(point: np.ndarray) -> sp.coo_matrix:  # at the point evaluated last
            return objective.hessian(last["prob"])

        def newton_step(hess: sp.coo_matrix, g: np.ndarray) -> np.ndarray:
            # Newton step per SCC: (H + 1 1^T / s) step = -g keeps the step zero-sum
            step = np.empty(n_vars)
            row_group = var_group[hess.row]
            for s, groups in by_size.items():
                in_class = group_size[row_group] == s
                blocks = np.zeros((groups.size, s, s))
                rows, cols = hess.row[in_class], hess.col[in_class]
                blocks[slot[row_group[in_class]], local[rows], local[cols]] = hess.data[in_class]
                blocks += 1.0 / s
                members = (group_start[groups][:, None] + np.arange(s)[None, :]).ravel()
                rhs = -g[members].reshape(groups.size, s, 1)
                step[members] = np.linalg.solve(blocks, rhs).ravel()
            return step

        newton = damped_newton(
            value_grad,
            hessian,
            u,
            lambda _x, g: float(np.linalg.norm(g)),
            NewtonOptions(tol=tol, max_iter=max_iter, flat_rtol=1e-13, flat_offset=1.0),
            groups=var_group,
            direction=newton_step,
        )
        u, grad, iterations = newton.x, newton.grad, newton.num_steps
        sample_loss = last["sample_loss"]
        grad = grad - (np.bincount(var_group, grad, n_groups) / group_size)[var_group]
        grad_norm = float(np.linalg.norm(grad))
        loss_value = float(sample_loss.sum())
        u = u - (np.bincount(var_group, u, n_groups) / group_size)[var_group]
        if grad_norm <= tol:
            message = f"optimal: gradient norm {grad_norm:.1e} after {iterations} Newton steps"
        else:
            status = SolveStatus.INACCURATE
            message = (
                f"inaccurate: gradient norm {grad_norm:.1e} > {tol:.0e} after {max_iter} steps"
            )
            warnings.warn(f"W_fin {message}", ConvergenceWarning, stacklevel=2)
    order_q = np.lexsort((var_token, var_query))
    table = ScoreTable(
        K,
        readonly(var_query[order_q], np.int64),
        readonly(var_token[order_q], np.int64),
        readonly(u[order_q]),
    )
    # chain coordinates: W_fin = sum_c coefficients[c] (e_i - e_j) e_q^T over the chains
    node_u = np.zeros(graphs.n_nodes)
    node_u[nodes] = u
    coefficients = _scc_chain_duals(graphs, cons, node_u)[eq]
    stats = SolverStats(
        solver_name="attnmech token-space Newton on S_fin (batched by SCC size)",
        solve_time=time.perf_counter() - start,
        setup_time=setup,
        num_iters=iterations,
        extra_stats={
            "dimension": subspace.dimension,
            "n_reduced": reduced.n_samples,
            "token_space": True,
        },
    )
    logger.info("token-space W_fin: %s (%.2f s)", message, stats.solve_time)
    return TokenFiniteResult(
        scores=table,
        embeddings=E,
        status=status,
        message=message,
        generator_query=readonly(gq, np.int64),
        generator_i=readonly(gi, np.int64),
        generator_j=readonly(gj, np.int64),
        coefficients=readonly(coefficients),
        gradient_norm=grad_norm,
        loss=loss_value,
        reduced=reduced,
        solver_stats=stats,
        subspace=subspace,
    )
