"""The one proximal primal-dual active-set core of the Graph-SVM, with a swappable linear solve.

Every Frobenius Graph-SVM in attnmech (dense embeddings, and token space) solves a dual

    min_x 1/2 x^T H x - rhs^T x   subject to   x >= 0 on the strict constraints,

with ``H`` positive semidefinite and often singular (dependent constraints), which makes a plain
primal-dual active-set method (Hintermueller, Ito and Kunisch) cycle. :func:`proximal_active_set`
takes every step on the proximal subproblem ``f(x) + eps/2 ||x - x_t||^2`` centred at the current
iterate: strictly convex, with the Hessian ``(H + eps I)_FF`` on the free set ``F``. The centre
moves every step, so once the active set settles the iteration is the proximal point method, which
converges to a dual solution at the linear rate ``eps / (sigma + eps)`` (``sigma``: smallest
nonzero eigenvalue of ``H``) while reusing one factorisation. A block of constraints stops when its
active set has settled and its KKT residual ``eps |x_{t+1} - x_t|`` is below ``tol``.

Only the linear solve differs between the callers (a :class:`LinearSolve`):

- :class:`DenseCholesky`: ``H`` formed densely (Gram products of the embeddings), Cholesky of
  ``(H + eps I)_FF`` with iterative refinement, cached for the last free sets;
- :class:`SparseKKT` (token space): ``H = D S^-1 D^T`` is never formed; each step solves the
  sparse quasi-definite system ``[[S, -D_F^T], [D_F, eps I]]`` with a sparse LU.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ...errors import SolverError
from ..graphs import sorted_unique
from .constraints import SVMConstraints

__all__ = [
    "LinearSolve",
    "DenseCholesky",
    "SparseKKT",
    "proximal_active_set",
    "dense_dual",
    "dual_hessian",
    "dual_to_weights",
]

logger = logging.getLogger(__name__)

DUAL_MEMORY_LIMIT = 4 * 1024**3  # bytes: largest dense dual Hessian (and copies) formed
SINGLE_THREAD_BELOW = 4000  # constraints per block: below, BLAS runs on one thread (threads=None)
DENSE_LIMIT_BYTES = 2 * 2**30  # largest dense matrix a solve may allocate (refused above)
SLACK = 1e-12  # hysteresis of the active set: a set changes only on a clear sign
SMALL_VOCAB = 64  # up to this many tokens (or queries), small dense arrays replace sparse ones

_BLAS_CONTROLLER: Any = None  # threadpoolctl's scan of the loaded BLAS libraries, done once


def blas_threads(threads: int | None) -> Any:
    """A context limiting the BLAS libraries of numpy / scipy to ``threads`` (None: unchanged),
    as ``threadpool_limits(limits=threads, user_api="blas")`` but with the scan of the loaded
    libraries done once per process (the scan costs about a millisecond, more than a small
    Graph-SVM)."""
    global _BLAS_CONTROLLER
    from threadpoolctl import ThreadpoolController

    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=threads, user_api="blas")


class LinearSolve(Protocol):
    """The linear algebra of one proximal active-set step (see :func:`proximal_active_set`)."""

    eps: float
    factorizations: int

    def step(
        self, running: np.ndarray, free: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One proximal step on the constraints ``running`` (indices), ``free`` of them free.

        ``x`` is the current iterate (all constraints). Returns the new iterate on ``running``
        (0 where held) and the dual gradient ``H x_new + eps (x_new - x) - rhs`` on ``running``
        (read only where the constraint is held).
        """
        ...


class _Cholesky:
    """Cholesky factorisation of ``M + rho I`` (``rho`` tiny) with iterative refinement.

    ``matrix`` is overwritten (its diagonal is shifted); ``solve`` refines against the unshifted
    matrix, so consistent singular systems are solved to round-off.
    """

    def __init__(self, matrix: np.ndarray) -> None:
        diag = np.diag(matrix)
        self.rho = 1e-13 * (float(diag.max()) if diag.size else 1.0)
        self.shifted = matrix
        self.shifted[np.diag_indices_from(matrix)] += self.rho
        potrf, self._potrs = _lapack_cholesky()
        for _ in range(8):
            # LAPACK's potrf / potrs directly: what cho_factor / cho_solve call, without their
            # argument checks (a small block is solved in a few microseconds)
            factor, info = potrf(self.shifted, lower=True, clean=False)
            if info == 0:
                self.factor = factor
                return
            if info < 0:  # pragma: no cover - an argument error, not a singular matrix
                raise SolverError(f"Graph-SVM: LAPACK potrf failed (info {info})")
            self.shifted[np.diag_indices_from(matrix)] += 99.0 * self.rho
            self.rho *= 100.0
        raise SolverError("Graph-SVM: a reduced dual Hessian could not be factorised")

    def _solve_factor(self, rhs: np.ndarray) -> np.ndarray:
        x, info = self._potrs(self.factor, rhs, lower=True)
        if info != 0:  # pragma: no cover - an argument error
            raise SolverError(f"Graph-SVM: LAPACK potrs failed (info {info})")
        return np.asarray(x)

    def solve(self, rhs: np.ndarray, tol: float = 1e-13, max_refine: int = 10) -> np.ndarray:
        """``M^-1 rhs`` refined against the unshifted ``M``."""
        x = self._solve_factor(rhs)
        target = tol * (1.0 + float(np.abs(rhs).max(initial=0.0)))
        for _ in range(max_refine):
            residual = rhs - (self.shifted @ x - self.rho * x)
            if float(np.abs(residual).max(initial=0.0)) <= target:
                break
            x = x + self._solve_factor(residual)
        return x


_LAPACK: tuple[Any, Any] | None = None


def _lapack_cholesky() -> tuple[Any, Any]:
    """LAPACK's double-precision ``potrf`` and ``potrs`` (looked up once)."""
    global _LAPACK
    if _LAPACK is None:
        _LAPACK = (sla.lapack.dpotrf, sla.lapack.dpotrs)
    return _LAPACK


class DenseCholesky:
    """:class:`LinearSolve` on a dense ``H``: Cholesky of ``(H + eps I)_FF``, ``eps = 1e-5 max
    diag H``, cached for the last two free sets."""

    def __init__(self, hessian: np.ndarray, rhs: np.ndarray) -> None:
        self.hessian = hessian
        self.rhs = rhs
        scale = float(np.diag(hessian).max()) if rhs.size else 1.0
        self.eps = 1e-5 * scale
        self.factorizations = 0
        self._cache: dict[bytes, _Cholesky] = {}

    def _factor(self, free: np.ndarray) -> _Cholesky:
        key = free.tobytes()
        if key not in self._cache:
            sub = self.hessian[np.ix_(free, free)]
            sub[np.diag_indices_from(sub)] += self.eps
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = _Cholesky(sub)
            self.factorizations += 1
        return self._cache[key]

    def step(
        self, running: np.ndarray, free: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`LinearSolve.step` (``running`` is every constraint here)."""
        linear = self.rhs + self.eps * x
        new_x = np.zeros_like(x)
        if free.size:
            new_x[free] = self._factor(free).solve(linear[free], max_refine=2)
        gradient = self.hessian @ new_x + self.eps * new_x - linear
        return new_x, gradient


class SparseKKT:
    """:class:`LinearSolve` for ``min 1/2 s^T S s`` s.t. ``s[above] - s[below] >= 1``
    (``S = diag(size)``), whose dual Hessian is ``D S^-1 D^T``; each step solves

        [ S     -D_F^T ] [ s        ]   [ 0                 ]
        [ D_F   eps I  ] [ lambda_F ] = [ 1 + eps lambda_t  ]

    over the variables the running constraints touch (sparse LU, one refinement step), instead of
    forming ``D S^-1 D^T`` (dense for a star-shaped condensation). ``scores`` holds ``s``.
    """

    def __init__(self, size: np.ndarray, above: np.ndarray, below: np.ndarray) -> None:
        self.size, self.above, self.below = size, above, below
        inv = 1.0 / size
        self.eps = 1e-6 * float((inv[above] + inv[below]).max()) if above.size else 1.0
        self.scores = np.zeros(size.size)
        self.factorizations = 0
        self._key: bytes | None = None
        self._lu: Any = None
        self._system: Any = None
        self._var_pos = np.full(size.size, -1, dtype=np.int64)

    def step(
        self, running: np.ndarray, free: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`LinearSolve.step`; ``x`` are the multipliers, the scores go to ``scores``."""
        from scipy.sparse.linalg import splu

        above, below, eps = self.above, self.below, self.eps
        touched = np.zeros(self.size.size, dtype=bool)  # the variables of the running constraints
        touched[above[running]] = True
        touched[below[running]] = True
        cols = np.flatnonzero(touched)
        key = free.tobytes() + cols.tobytes()
        if key != self._key:
            var_pos = self._var_pos
            var_pos[cols] = np.arange(cols.size)
            k = free.size
            D_F = sp.csr_matrix(
                (
                    np.r_[np.ones(k), -np.ones(k)],
                    (
                        np.r_[np.arange(k), np.arange(k)],
                        np.r_[var_pos[above[free]], var_pos[below[free]]],
                    ),
                ),
                shape=(k, cols.size),
            )
            self._system = sp.bmat(
                [[sp.diags(self.size[cols]), -D_F.T], [D_F, eps * sp.identity(k)]], format="csc"
            )
            self._lu = splu(self._system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
            self._key = key
            self.factorizations += 1
        rhs = np.r_[np.zeros(cols.size), 1.0 + eps * x[free]]
        sol = self._lu.solve(rhs)
        sol += self._lu.solve(rhs - self._system @ sol)  # one step of iterative refinement
        s = self.scores
        s[cols] = sol[: cols.size]
        new = np.zeros(running.size)
        free_mask = np.zeros(above.size, dtype=bool)
        free_mask[free] = True
        is_free = free_mask[running]
        new[is_free] = sol[cols.size :]
        gradient = s[above[running]] - s[below[running]] - 1.0 - eps * x[running]
        return new, gradient


def proximal_active_set(
    solver: LinearSolve,
    strict: np.ndarray,
    *,
    block: np.ndarray | None = None,
    active: np.ndarray | None = None,
    max_iter: int = 2000,
    tol: float = 1e-12,
    stop_on_cycle: bool = True,
    what: str = "Graph-SVM",
    x0: np.ndarray | None = None,
    live_out: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """The proximal primal-dual active-set method (module docstring) with ``solver``'s algebra.

    Parameters
    ----------
    solver : LinearSolve
    strict : ndarray of bool
        Constraints whose multiplier is ``>= 0`` (the others are free equalities).
    block : ndarray of int, optional
        Independent blocks (one id per constraint): a block that has converged leaves the system,
        so later steps solve less. Default: one block.
    active : ndarray of bool, optional
        Initial guess of the constraints held at 0 (default: every strict constraint free).
    max_iter : int, default=2000
    tol : float, default=1e-12
        KKT residual ``eps |x_{t+1} - x_t|`` at which a settled block stops.
    stop_on_cycle : bool, default=True
        Stop (and let the caller certify or fall back) when the active set keeps changing and
        comes back to a set it had (singular ``H``, e.g. ``K > d``), or the iterates exceed 1e14
        (an infeasible problem).
    x0 : ndarray, optional
        Starting multipliers (default 0), e.g. an approximate solution to polish; negative
        entries of strict constraints are clipped to 0.
    live_out : ndarray of bool, optional
        Filled with the constraints of the blocks still running when the method returned
        (all False when every block converged).

    Returns
    -------
    x : ndarray
        The multipliers.
    iterations : int
        Steps taken (each step is one linear solve; factorisations are counted by ``solver``).
    """
    m = strict.size
    eps = solver.eps
    x = np.zeros(m) if x0 is None else np.where(strict, np.maximum(x0, 0.0), x0)
    active = np.zeros(m, dtype=bool) if active is None else active & strict
    if block is None:
        block = np.zeros(m, dtype=np.int64)
        n_blocks = 1
    else:
        _, block = np.unique(block, return_inverse=True)
        n_blocks = int(block.max()) + 1 if m else 0
    live = np.ones(m, dtype=bool)
    seen: set[bytes] = set()
    unsettled = 0
    loud = m >= 2000
    for iteration in range(1, max_iter + 1):
        running = np.flatnonzero(live)
        free = running[~active[running]]
        new_x, gradient = solver.step(running, free, x)
        old_active = active[running]
        # hysteresis: a set changes only on a clear sign, not on round-off around zero
        new_active = strict[running] & np.where(old_active, gradient >= -SLACK, new_x < -SLACK)
        changed = new_active != old_active
        step_size = eps * np.abs(new_x - x[running])
        moving = changed | (step_size > tol)
        x[running], active[running] = new_x, new_active
        if n_blocks == 1:
            unfinished = np.array([bool(moving.any())]) if running.size else np.zeros(1, bool)
        else:
            unfinished = np.bincount(block[running], weights=moving, minlength=n_blocks) > 0
        live[running] = unfinished[block[running]]
        level = logging.INFO if loud else logging.DEBUG
        if logger.isEnabledFor(level):  # the counts are computed only when logged
            logger.log(
                level,
                "%s step %d: %d blocks running, %d of %d constraints free, KKT residual %.1e",
                what,
                iteration,
                int(unfinished.sum()),
                int((~active).sum()),
                m,
                float(step_size.max(initial=0.0)),
            )
        if live_out is not None:
            live_out[:] = live
        if not live.any():
            return x, iteration
        if stop_on_cycle:
            settled = not changed.any()
            unsettled = 0 if settled else unsettled + 1
            key = active.tobytes()
            if unsettled > 50 and key in seen:
                logger.info("%s active set cycles after %d steps; stopping", what, iteration)
                return x, iteration
            if not settled:
                seen.add(key)
            if float(np.abs(x).max(initial=0.0)) > 1e14:  # diverging: an infeasible problem
                return x, iteration
    return x, max_iter


# --------------------------------------------------------------------------------- dense driver
def dual_hessian(
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


def dual_to_weights(E: np.ndarray, cons: SVMConstraints, lam: np.ndarray) -> np.ndarray:
    """``W = E^T Lambda E`` with ``Lambda[:, k] = sum_c lambda_c (e_i - e_j)`` (the dual map).

    ``Lambda`` is sparse (two entries per constraint), so no ``K x K`` array is formed, except
    for a small vocabulary (``K <= SMALL_VOCAB``), where a dense ``Lambda`` costs less than
    building a sparse matrix.
    """
    K = E.shape[0]
    rows = np.concatenate([cons.i, cons.j])
    cols = np.concatenate([cons.query, cons.query])
    if K <= SMALL_VOCAB:
        dense = np.zeros((K, K))
        np.add.at(dense, (rows, cols), np.concatenate([lam, -lam]))
        return np.asarray(E.T @ (dense @ E))
    coeff = sp.csr_matrix((np.concatenate([lam, -lam]), (rows, cols)), shape=(K, K))
    return np.asarray(E.T @ (coeff @ E))


class TooLarge(SolverError):
    """A method's dense arrays would not fit in memory (no other method is tried)."""


def check_memory(n_bytes: float, what: str, advice: str) -> None:
    """Refuse (before allocating) an array larger than ``DENSE_LIMIT_BYTES``."""
    if n_bytes > DENSE_LIMIT_BYTES:
        raise SolverError(
            f"Graph-SVM: {what} would take {n_bytes / 2**30:.3g} GiB, more than the limit of "
            f"{DENSE_LIMIT_BYTES / 2**30:.3g} GiB; {advice}"
        )


def _query_blocks(gram: np.ndarray, tol: float) -> np.ndarray:
    """Block id of each query (``gram``: Gram matrix of the query embeddings): queries whose
    embeddings are (numerically) orthogonal decouple. Blocks are numbered in the order of their
    first query."""
    scale = np.sqrt(np.outer(np.diag(gram), np.diag(gram)))
    coupled = np.abs(gram) > tol * scale
    n = coupled.shape[0]
    if coupled.all():  # every pair of queries coupled (generic dense embeddings): one block
        return np.zeros(n, dtype=np.int64)
    if n <= SMALL_VOCAB:  # label propagation on the dense matrix: no sparse matrix to build
        coupled |= np.eye(n, dtype=bool)
        labels = np.arange(n)
        while True:
            smallest = np.where(coupled, labels[None, :], n).min(axis=1)
            if np.array_equal(smallest, labels):
                break
            labels = smallest
        return np.unique(labels, return_inverse=True)[1].astype(np.int64)
    _, labels = connected_components(sp.csr_matrix(coupled), directed=False)
    return labels


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
            sub = DenseCholesky(hessian[np.ix_(part, part)], rhs[part])
            x, _ = proximal_active_set(sub, strict[part], tol=1e-9)
            active[part] = strict[part] & (x <= 0.0)
    return active


def dense_dual(
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
    """Dual multipliers of the dense Graph-SVM from the proximal active-set method, per block.

    With ``jacobi=True`` the dual is solved in the variables ``mu = lambda * sqrt(Q_cc)`` (an
    exact change of variables that gives the Hessian a unit diagonal): a preconditioner for
    constraints whose coefficients differ by orders of magnitude.
    """
    uq = sorted_unique(cons.query)
    Eq = E[uq]
    check_memory(
        8.0 * uq.size**2, f"the Gram matrix of {uq.size} query embeddings", "use fewer last tokens"
    )
    qblock = _query_blocks(Eq @ Eq.T, coupling_tol)
    blocks = qblock[np.searchsorted(uq, cons.query)]
    order = np.argsort(blocks, kind="stable")
    cuts = np.flatnonzero(np.diff(blocks[order])) + 1
    largest = int(np.bincount(blocks).max())
    estimate = 3 * largest * largest * 8
    if estimate > memory_limit:
        raise TooLarge(
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
    rhs = cons.rhs
    lam = np.zeros(cons.n_constraints)
    steps = total_steps = factorizations = 0
    with blas_threads(threads):
        for part in np.split(order, cuts):
            if not cons.strict[part].any():
                continue  # only equalities: lambda = 0 is optimal for this block
            hessian = dual_hessian(E, cons.query[part], cons.i[part], cons.j[part])
            b = rhs[part]
            if jacobi:
                diag = np.diag(hessian).copy()
                diag[diag <= 0.0] = 1.0
                scale = 1.0 / np.sqrt(diag)
                hessian *= scale[:, None]
                hessian *= scale[None, :]
                b = b * scale
            solver = DenseCholesky(hessian, b)
            guess = _decoupled_guess(hessian, cons.query[part], b, cons.strict[part])
            x, n_steps = proximal_active_set(
                solver, cons.strict[part], active=guess, max_iter=max_iter
            )
            lam[part] = x * scale if jacobi else x
            steps = max(steps, n_steps)
            total_steps += n_steps
            factorizations += solver.factorizations
    extra.update(active_set_steps=steps, total_steps=total_steps, factorizations=factorizations)
    return lam
