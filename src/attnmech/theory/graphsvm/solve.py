"""The entry point of the Graph-SVM layer: :func:`solve_graph_svm`.

    W_svm = argmin ||W||_F  subject to, for every query k and every edge i -> j of G^(k):
        (e_i - e_j)^T W e_k  = 0   if i ~ j   (same SCC)
        (e_i - e_j)^T W e_k >= 1   if i => j  (strict priority)

How it is solved, exactly and fast:

1. **Fewer constraints, same feasible set** (:mod:`.constraints`).
2. **The dual through the Gram matrix.** The solution is ``W = sum_c lambda_c (e_i - e_j) e_k^T``
   and the dual is the bound-constrained QP ``min 1/2 lambda^T Q lambda - b^T lambda`` with
   ``lambda >= 0`` on strict constraints, ``Q[c, c'] = (e_i - e_j)^T (e_i' - e_j') e_k^T e_k'``,
   built from products of ``m`` vectors of length ``d``.
3. **Independent blocks.** Constraints of two queries interact only through ``e_k^T e_k'``; the
   queries split into independent blocks, each solved on its own.
4. **One proximal active-set core** (:mod:`.active_set`) with a dense Cholesky solve here and a
   sparse KKT solve in token space (:mod:`attnmech.theory.tokenspace`).
5. **Certified** (:mod:`.certificate`): margins recomputed from ``W`` on every original edge, the
   largest relative violation and the duality gap. An "infeasible" verdict needs a checked Farkas
   certificate (:mod:`.infeasibility`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..._results import SolverStats, readonly
from ...errors import (
    InfeasibleProblemError,
    InvalidDatasetError,
    InvalidParameterError,
    SolverError,
)
from ..graphs import PriorityGraphs
from .active_set import DUAL_MEMORY_LIMIT, TooLarge, dense_dual, dual_to_weights
from .certificate import (
    Certificate,
    GraphSVMResult,
    SVMResultBase,
    certificate,
    verdict,
)
from .clarabel import clarabel_dual, clarabel_dual_polished, clarabel_primal
from .constraints import SVMConstraints, svm_constraints
from .infeasibility import InfeasibilityCertificate, infeasibility_certificate
import numbers

from ..._validation import FLAG, Interval, validate_params

__all__ = ["solve_graph_svm", "METHODS"]

logger = logging.getLogger(__name__)

METHODS = ("auto", "dense", "tokenspace")
_METHODS = ("active-set", "active-set+jacobi", "clarabel", "clarabel-dual")


def _check_inputs(graphs: Any, embeddings: Any, max_iter: Any, coupling_tol: Any) -> np.ndarray:
    if not isinstance(graphs, PriorityGraphs):
        raise InvalidParameterError(
            f"graphs must be attnmech.PriorityGraphs, got {type(graphs).__name__}; build them "
            "with attnmech.build_priority_graphs(dataset)"
        )
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InvalidParameterError(f"max_iter must be a positive integer, got {max_iter!r}")
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
    return E



SOLVE_GRAPH_SVM_PARAMS: dict[str, list[Any]] = {
    "method": [str],
    "reduce": [FLAG],
    "max_iter": [Interval(numbers.Integral, 1, 10**9)],
    "coupling_tol": [Interval(numbers.Real, None, None)],
    "threads": [Interval(numbers.Integral, 1, 4096), None],
    "memory_limit": [Interval(numbers.Integral, 1, None)],
    "allow_inaccurate": [FLAG],
}
"""What :func:`solve_graph_svm`'s options may be (checked at the door, before any work)."""


@validate_params(SOLVE_GRAPH_SVM_PARAMS, where="solve_graph_svm")
def solve_graph_svm(
    graphs: PriorityGraphs,
    embeddings: Any,
    *,
    method: str = "dense",
    reduce: bool = True,
    max_iter: int = 2000,
    coupling_tol: float = 1e-14,
    threads: int | None = None,
    memory_limit: int = DUAL_MEMORY_LIMIT,
    allow_inaccurate: bool = False,
) -> SVMResultBase:
    """Solve the Frobenius Graph-SVM exactly, with a certificate of optimality.

    Parameters
    ----------
    graphs : PriorityGraphs
        From :func:`attnmech.build_priority_graphs`.
    embeddings : ndarray of shape (vocab_size, embedding_dim), or OneHotEmbeddings
    method : {"dense", "tokenspace", "auto"}, default="dense"
        ``"dense"``: the dual active-set method with dense Cholesky factorisations (any
        embeddings; returns a :class:`GraphSVMResult`). ``"tokenspace"``: the same core with a
        sparse KKT solve, one small problem per query (one-hot or orthonormal embeddings only;
        returns a :class:`~attnmech.theory.tokenspace.TokenSVMResult` with a sparse score table).
        ``"auto"``: ``"tokenspace"`` when the embeddings allow it, else ``"dense"``.
    reduce : bool, default=True
        Drop constraints implied by others (same solution, smaller problem). Dense only.
    max_iter : int, default=2000
        Largest number of active-set steps per block.
    coupling_tol : float, default=1e-14
        Queries ``k, k'`` with ``|e_k^T e_k'| <= coupling_tol ||e_k|| ||e_k'||`` are treated as
        orthogonal, which splits the problem into independent blocks.
    threads : int, optional
        BLAS threads for the dense factorisations. Default: 1 when the largest block has fewer
        than 4000 constraints (small factorisations lose more to thread contention than they
        gain), else the BLAS default.
    memory_limit : int, default=4 GiB
        Bytes the dense dual Hessians of the largest block may take (about ``3 m^2 * 8`` for
        ``m`` constraints); above it a SolverError gives the estimate instead of running out of
        memory.
    allow_inaccurate : bool, default=False
        When no method can certify the solution: False raises :class:`SolverError`; True returns
        the best candidate with status ``INACCURATE`` (and a ConvergenceWarning).

    Returns
    -------
    GraphSVMResult or TokenSVMResult
        ``method`` names the method whose solution is returned; ``solver_stats.num_iters`` the
        active-set steps (the largest over blocks), ``extra_stats["factorizations"]`` the
        factorisations.

    Raises
    ------
    InfeasibleProblemError
        When the constraints provably cannot hold together (only possible if the embeddings are
        linearly dependent): a Farkas certificate, checked in the problem's own scaling, shows
        that no ``W`` up to ``INFEASIBLE_FACTOR`` times the problem's scale meets them;
        ``.conflicts`` lists TPG edges ``(last_token, i, j, kind)`` that conflict.
    SolverError
        When no method certifies a solution (and ``allow_inaccurate`` is False), or a dense
        matrix the problem needs would exceed ``DENSE_LIMIT_BYTES``.

    Notes
    -----
    Dense methods, in order, until one is certified: ``"active-set"`` (the proximal active-set
    dual method), ``"active-set+jacobi"`` (the same on the Jacobi-scaled dual: an exact change of
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
    >>> solve_graph_svm(build_priority_graphs(ds), ds.embeddings, method="auto").method
    'token-space active-set'
    """
    if method not in METHODS:
        raise InvalidParameterError(
            f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}"
        )
    if method != "dense":
        from ..tokenspace import is_token_space, solve_token_svm

        if method == "tokenspace" or is_token_space(embeddings):
            return solve_token_svm(graphs, embeddings, max_iter=max_iter)
    return _solve_dense(
        graphs,
        embeddings,
        reduce=reduce,
        max_iter=max_iter,
        coupling_tol=coupling_tol,
        threads=threads,
        memory_limit=memory_limit,
        allow_inaccurate=allow_inaccurate,
    )


def _solve_dense(
    graphs: PriorityGraphs,
    embeddings: Any,
    *,
    reduce: bool,
    max_iter: int,
    coupling_tol: float,
    threads: int | None,
    memory_limit: int,
    allow_inaccurate: bool,
) -> GraphSVMResult:
    """The dense path of :func:`solve_graph_svm`."""
    start = time.perf_counter()
    E = _check_inputs(graphs, embeddings, max_iter, coupling_tol)
    cons = svm_constraints(graphs, reduce=reduce)
    m = cons.n_constraints
    extra: dict[str, Any] = {"n_constraints": m, "n_edges": cons.n_original}
    best: Certificate | None
    if not cons.strict.any():
        best = certificate("none", graphs, cons, E, np.zeros((E.shape[1],) * 2), np.zeros(m))
        attempts = [best]
    else:
        # K > d: check feasibility first. K <= d: feasible unless E is rank deficient, which is
        # checked (an SVD) only when the fast method does not certify its answer
        checked = E.shape[0] > E.shape[1]
        if checked:
            _raise_if_infeasible(E, graphs, extra)
        attempts = []
        best = None
        for number, name in enumerate(_METHODS):
            if number > 0 and not checked:
                checked = True
                if np.linalg.matrix_rank(E) < E.shape[0]:
                    _raise_if_infeasible(E, graphs, extra)
            try:
                found = _run_method(
                    name, graphs, cons, E, max_iter, coupling_tol, extra, threads, memory_limit
                )
            except TooLarge:
                raise  # no other method fits either: the memory estimate is the answer
            except InfeasibleProblemError:
                raise
            except SolverError as exc:
                logger.info("Graph-SVM %s failed: %s", name, exc)
                extra.setdefault("failures", []).append(f"{name}: {exc}")
                continue
            attempts.extend(found)
            certified = [c for c in found if c.certified]
            if certified:
                best = min(certified, key=lambda c: c.relative_violation + c.relative_gap)
                break
            logger.info("Graph-SVM not certified: %s", "; ".join(c.summary() for c in found))
        if best is None:
            tried = "; ".join([c.summary() for c in attempts] + extra.get("failures", []))
            hint = extra.get("infeasibility")
            if not attempts or not allow_inaccurate:
                raise SolverError(
                    f"Graph-SVM: no method reached the tolerances ({tried}); "
                    + (
                        f"a Farkas certificate was found but could not be certified ({hint}); "
                        if hint
                        else ""
                    )
                    + "the embeddings may be nearly dependent or very badly scaled: rescale "
                    "them, or pass allow_inaccurate=True (CLI: --allow-inaccurate) to get the "
                    "best candidate anyway"
                )
            best = min(attempts, key=lambda c: (c.relative_violation, c.relative_gap))
    assert best is not None and best.W is not None  # every branch above sets it or raises
    extra["attempts"] = [c.summary() for c in attempts]
    norm_sq = float(np.sum(best.W * best.W))
    status, message = verdict(
        cons,
        best.certified,
        f"optimal ({best.method}): ||W_svm|| = {np.sqrt(norm_sq):.6g}, max violation "
        f"{best.max_violation:.1e}, relative gap {best.relative_gap:.1e}",
        f"inaccurate (allow_inaccurate=True): best of {len(attempts)} tries, {best.summary()}",
        stacklevel=4,
    )
    stats = SolverStats(
        solver_name=f"attnmech Graph-SVM ({best.method})",
        solve_time=time.perf_counter() - start,
        setup_time=0.0,
        num_iters=int(
            extra.get("active_set_steps", 0)
            if best.method.startswith("active-set")
            else extra.get("interior_point_iters", 0)
        ),
        extra_stats=extra,
    )
    return GraphSVMResult(
        W_svm=readonly(best.W),
        status=status,
        message=message,
        **best.result_arrays(cons),
        max_violation=best.max_violation,
        duality_gap=best.duality_gap,
        relative_gap=best.relative_gap,
        solver_stats=stats,
        method=best.method,
        relative_violation=best.relative_violation,
    )


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
) -> list[Certificate]:
    """Candidates ``(W, lambda)`` of one method, each with its certificate."""
    if method.startswith("active-set"):
        lam = dense_dual(
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
        W = dual_to_weights(E, cons, lam)
        return [certificate(method, graphs, cons, E, W, lam)]
    try:
        import clarabel  # noqa: F401
    except ImportError:  # pragma: no cover - clarabel is a dependency
        raise SolverError(f"{method} needs the clarabel package (pip install clarabel)") from None
    if method == "clarabel":
        (W1, lam1), (W2, lam2) = clarabel_primal(E, cons, extra)
        return [
            certificate("clarabel", graphs, cons, E, W1, lam1),
            certificate("clarabel+polish", graphs, cons, E, W2, lam2),
        ]
    W, lam = clarabel_dual(E, cons, extra)
    found = [certificate("clarabel-dual", graphs, cons, E, W, lam)]
    if not found[0].certified:  # polish its active set in the problem's own (unit-row) scaling
        W2, lam2 = clarabel_dual_polished(
            E, cons, np.maximum(lam, 0.0) * cons.strict + lam * ~cons.strict
        )
        found.append(certificate("clarabel-dual+polish", graphs, cons, E, W2, lam2))
    return found


def infeasible_error(
    cert: InfeasibilityCertificate, what: str = "the Graph-SVM"
) -> InfeasibleProblemError:
    """The InfeasibleProblemError of a certified conflict (literal TPG edges)."""
    shown = ", ".join(f"(k={k}, {i}, {j}, {kind})" for k, i, j, kind in cert.conflicts[:20])
    return InfeasibleProblemError(
        f"{what} is infeasible: the embeddings are linearly dependent and these "
        f"{len(cert.conflicts)} edges i -> j of G^(k) (last token k) cannot hold together: "
        f"{shown} (checked Farkas certificate: no W with ||W||_F < {cert.bound:.3g} meets "
        "them); use linearly independent embeddings (vocab_size <= embedding_dim)",
        conflicts=cert.conflicts,
    )


def _raise_if_infeasible(E: np.ndarray, graphs: PriorityGraphs, extra: dict[str, Any]) -> None:
    """Raise InfeasibleProblemError on a certified conflict among the literal TPG edges; an
    uncertified Farkas vector is only noted in ``extra["infeasibility"]``."""
    cert = infeasibility_certificate(E, svm_constraints(graphs, reduce=False))
    if cert is None:
        return
    if cert.certified:
        raise infeasible_error(cert)
    extra["infeasibility"] = cert.summary()
