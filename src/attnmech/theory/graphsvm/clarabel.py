"""Clarabel fallbacks of the Frobenius Graph-SVM (interior-point, on the primal or the dual), and
the interior-point starting guess of the token-space active-set method.

Used by :func:`~attnmech.theory.graphsvm.solve_graph_svm` when the active-set method does not
certify its answer: the primal in the row space of the embeddings with unit-normalised constraint
rows (an exact rescaling), polished to the least-norm point of its active constraints; and the
reduced dual QP.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from ...errors import InfeasibleProblemError, SolverError
from .active_set import check_memory, dual_hessian, dual_to_weights
from .constraints import SVMConstraints

logger = logging.getLogger(__name__)

__all__ = [
    "constraint_rows",
    "clarabel_primal",
    "clarabel_dual",
    "clarabel_dual_polished",
    "token_dual_guess",
]


def constraint_rows(
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
    check_memory(
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


def _run(
    P: Any, q: np.ndarray, A: Any, b: np.ndarray, cones: list[Any], extra: dict[str, Any] | None
) -> Any:
    """Clarabel at tolerance 1e-12 (400 iterations at most); SolverError unless solved."""
    import clarabel

    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_iter = 400
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-12
    settings.tol_feas = 1e-12
    solution = clarabel.DefaultSolver(P, q, A, b, cones, settings).solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise SolverError(f"Clarabel stopped with status {solution.status}")
    if extra is not None:
        extra["interior_point_iters"] = int(solution.iterations)
    return solution


def clarabel_primal(
    E: np.ndarray, cons: SVMConstraints, extra: dict[str, Any] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``min 1/2 ||M||^2`` over the reduced primal (row-space coordinates) with Clarabel.

    Returns ``(W, lambda)``, then polishes: the least-norm ``W`` that meets the constraints Clarabel
    found active with equality, solved by an SVD-based least-squares (exact up to round-off).
    """
    import clarabel

    rows, norms, V = constraint_rows(E, cons)
    r2 = rows.shape[1]
    rhs = cons.rhs / norms
    eq, st = np.flatnonzero(~cons.strict), np.flatnonzero(cons.strict)
    A = sp.csc_matrix(np.vstack([rows[eq], -rows[st]]))
    b = np.concatenate([np.zeros(eq.size), -rhs[st]])
    cones = []
    if eq.size:
        cones.append(clarabel.ZeroConeT(int(eq.size)))
    cones.append(clarabel.NonnegativeConeT(int(st.size)))
    solution = _run(sp.identity(r2, format="csc"), np.zeros(r2), A, b, cones, extra)
    x = np.asarray(solution.x, dtype=np.float64)
    z = np.asarray(solution.z, dtype=np.float64)
    scaled = np.zeros(cons.n_constraints)  # multipliers of the unit rows (x = rows^T scaled)
    scaled[eq] = -z[: eq.size]
    scaled[st] = z[eq.size :]
    r = V.shape[1]
    candidates = [(V @ x.reshape(r, r) @ V.T, scaled / norms)]
    candidates.append(_polish(rows, norms, V, cons, scaled))
    return candidates


def _polish(
    rows: np.ndarray, norms: np.ndarray, V: np.ndarray, cons: SVMConstraints, scaled: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The least-norm ``W`` meeting the constraints active under the unit-row multipliers
    ``scaled`` with equality (SVD least squares in the row space), and its multipliers."""
    st = cons.strict
    rhs = cons.rhs / norms
    active = ~st | (scaled > 1e-9 * max(float(scaled[st].max(initial=0.0)), 1e-300))
    x_pol, *_ = np.linalg.lstsq(rows[active], rhs[active], rcond=None)
    mu, *_ = np.linalg.lstsq(rows[active].T, x_pol, rcond=None)
    polished = np.zeros(cons.n_constraints)
    polished[active] = mu
    r = V.shape[1]
    return V @ x_pol.reshape(r, r) @ V.T, polished / norms


def clarabel_dual(
    E: np.ndarray, cons: SVMConstraints, extra: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The reduced dual QP (Hessian ``Q`` from the Gram products) solved by Clarabel."""
    import clarabel

    m = cons.n_constraints
    check_memory(8.0 * m * m, f"the dense dual Hessian ({m} x {m})", "use fewer samples")
    Q = dual_hessian(E, cons.query, cons.i, cons.j)
    st = np.flatnonzero(cons.strict)
    A = sp.csc_matrix((-np.ones(st.size), (np.arange(st.size), st)), shape=(st.size, m))
    solution = _run(
        sp.triu(sp.csc_matrix(Q), format="csc"),
        -cons.rhs,
        A,
        np.zeros(st.size),
        [clarabel.NonnegativeConeT(int(st.size))],
        extra,
    )
    lam = np.asarray(solution.x, dtype=np.float64)
    return dual_to_weights(E, cons, lam), lam


def clarabel_dual_polished(
    E: np.ndarray, cons: SVMConstraints, lam: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The dual's active set polished as in :func:`clarabel_primal`: the least-norm ``W`` that
    meets the constraints with a positive multiplier (and the equalities) with equality, in the
    row space of ``E`` with unit rows (an exact rescaling that evens out badly scaled rows)."""
    rows, norms, V = constraint_rows(E, cons)
    return _polish(rows, norms, V, cons, lam * norms)


def token_dual_guess(size: np.ndarray, above: np.ndarray, below: np.ndarray) -> np.ndarray | None:
    """Multipliers of ``min 1/2 x^T S x`` s.t. ``x[above] - x[below] >= 1`` (``S = diag(size)``,
    the token-space Graph-SVM of :mod:`attnmech.theory.tokenspace`) from Clarabel at its default
    accuracy: a starting point for the active-set method, not an answer. Multipliers below
    ``1e-8`` of the largest are set to 0; None when Clarabel does not report a solution."""
    import clarabel

    variables, index = np.unique(np.r_[above, below], return_inverse=True)
    m, n = above.size, variables.size
    rows = np.r_[np.arange(m), np.arange(m)]
    A = sp.csc_matrix((np.r_[-np.ones(m), np.ones(m)], (rows, index)), shape=(m, n))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    try:
        solution = clarabel.DefaultSolver(
            sp.diags(size[variables]).tocsc(),
            np.zeros(n),
            A,
            -np.ones(m),
            [clarabel.NonnegativeConeT(m)],
            settings,
        ).solve()
    except Exception as exc:  # noqa: BLE001 - only a guess: the caller solves without it
        logger.info("token Graph-SVM: no interior-point guess (%s)", exc)
        return None
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        return None
    z = np.asarray(solution.z, dtype=np.float64)
    if not np.all(np.isfinite(z)):
        return None
    return np.where(z > 1e-8 * float(z.max(initial=0.0)), z, 0.0)
