"""Certified infeasibility of the Graph-SVM: a Farkas certificate checked in the problem's scaling.

The constraints ``c_c . vec(W) >= 1`` (strict) and ``= 0`` (same SCC), with
``c_c = vec((e_i - e_j) e_k^T)``, have no solution iff some ``y`` (``y >= 0`` on strict
constraints) has ``sum_c y_c c_c = 0`` and ``sum_strict y_c > 0`` (Farkas). A floating-point ``y``
never makes the sum exactly zero, so it is not taken on a solver's word. Instead, with every
constraint scaled to a unit row (``c_c / |c_c|``, right-hand side ``b_c = 1 / |c_c|``, the same
feasible set), any feasible ``W`` satisfies

    beta = sum_c y_c b_c  <=  y^T C vec(W)  <=  |C^T y| * |W|_F,

so ``|W|_F >= beta / |C^T y|`` holds *exactly* once ``|C^T y|`` is bounded from above including
round-off. :func:`infeasibility_certificate` finds ``y`` with HiGHS on the unit rows, re-solves it
on its support (projection on the numerical null space of those rows, by an SVD), and computes
that bound. The verdict "infeasible" needs the bound to exceed ``INFEASIBLE_FACTOR`` times the
largest norm one strict constraint of the conflict needs on its own (``max b_c``): no ``W`` within
that many orders of magnitude of the problem's own scale meets the constraints. Otherwise the
problem is not called infeasible (it is solved, or refused with the bound in the message).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import SolverError
from .constraints import SVMConstraints

__all__ = ["INFEASIBLE_FACTOR", "InfeasibilityCertificate", "infeasibility_certificate"]

logger = logging.getLogger(__name__)

INFEASIBLE_FACTOR = (
    1e6  # the bound must rule out every W up to this many times the conflict's scale
)
_ROUNDOFF = 8 * np.finfo(np.float64).eps  # per unit row: building c_c / |c_c| and the product
_MAX_ENTRIES = 50_000_000  # d^2 * m entries of the dense constraint matrix at most


@dataclass(frozen=True, slots=True)
class InfeasibilityCertificate:
    """A checked Farkas certificate.

    Attributes
    ----------
    conflicts : list of tuple (last_token, i, j, kind)
        The constraints with a nonzero multiplier (``kind``: ``"strict"`` or ``"equal"``).
    multipliers : ndarray
        ``y`` on those constraints (unit-row scaling).
    bound : float
        No ``W`` with ``||W||_F < bound`` meets the constraints (inf for an exact certificate).
    scale : float
        The largest ``1 / |c_c|`` over the conflict's strict constraints (the norm one of them
        needs on its own).
    certified : bool
        ``bound >= INFEASIBLE_FACTOR * scale``.
    """

    conflicts: list[tuple[int, int, int, str]]
    multipliers: np.ndarray
    bound: float
    scale: float
    certified: bool

    def summary(self) -> str:
        """One line: the size of the conflict and the norm bound it proves."""
        return (
            f"{len(self.conflicts)} constraints; no W with ||W||_F < {self.bound:.3g} meets them "
            f"(scale {self.scale:.3g}, needed {INFEASIBLE_FACTOR:.0e} x scale)"
        )


def _conflicts(cons: SVMConstraints, support: np.ndarray) -> list[tuple[int, int, int, str]]:
    return [
        (
            int(cons.query[c]),
            int(cons.i[c]),
            int(cons.j[c]),
            "strict" if cons.strict[c] else "equal",
        )
        for c in support
    ]


def _unit_rows(E: np.ndarray, cons: SVMConstraints) -> tuple[np.ndarray, np.ndarray]:
    d, m = E.shape[1], cons.n_constraints
    if d * d * m > _MAX_ENTRIES:
        raise SolverError(
            "Graph-SVM: the embeddings are linearly dependent and the problem is too large for the "
            "feasibility check; use linearly independent embeddings (vocab_size <= embedding_dim)"
        )
    delta = E[cons.i] - E[cons.j]
    rows = (delta[:, :, None] * E[cons.query][:, None, :]).reshape(m, d * d)
    return rows, np.linalg.norm(rows, axis=1)


def infeasibility_certificate(
    E: np.ndarray, cons: SVMConstraints
) -> InfeasibilityCertificate | None:
    """A checked Farkas certificate for the constraints ``cons``, or None when none is found.

    A strict constraint with ``c_c = 0`` (``e_i = e_j`` or ``e_k = 0``) is an exact certificate
    on its own (``bound = inf``). Otherwise see the module docstring; the result may be
    uncertified (``certified`` False) when the bound is too weak to call the problem infeasible.
    """
    from scipy.optimize import linprog

    rows, norms = _unit_rows(E, cons)
    zero = np.flatnonzero(cons.strict & (norms == 0.0))
    if zero.size:
        return InfeasibilityCertificate(
            _conflicts(cons, zero[:1]), np.ones(1), np.inf, np.inf, True
        )
    use = np.flatnonzero(norms > 0.0)  # a zero equality row (0 = 0) constrains nothing
    A = rows[use] / norms[use, None]  # (m', d^2) unit rows
    b = cons.strict[use] / norms[use]
    eq = np.flatnonzero(~cons.strict[use])
    m = use.size
    # variables: y (m) then the negative parts of the equalities' multipliers (free variables)
    A_eq = np.vstack([np.hstack([A.T, -A[eq].T]), np.concatenate([b, np.zeros(eq.size)])])
    b_eq = np.zeros(A_eq.shape[0])
    b_eq[-1] = 1.0
    lp = linprog(np.ones(m + eq.size), A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if lp.status != 0 or lp.x is None:
        return None
    y = lp.x[:m].copy()
    y[eq] -= lp.x[m:]
    support = np.flatnonzero(np.abs(y) > 1e-9 * np.abs(y).max(initial=0.0))
    if support.size == 0:
        return None
    # re-solve on the support: the part of y in the numerical null space of the support's rows
    sub = A[support]  # (s, d^2)
    _, sv, Vt = np.linalg.svd(sub.T, full_matrices=True)  # sub.T = U diag(sv) Vt, Vt (s, s)
    rank = int((sv > 1e-10 * sv[0]).sum()) if sv.size else 0
    null = Vt[rank:]  # (s - rank, s)
    if null.shape[0] == 0:
        return _weak(cons, use[support], y[support], b[support], sub)
    y_s = null.T @ (null @ y[support])
    strict_s = cons.strict[use[support]]
    top = np.abs(y_s).max(initial=0.0)
    if top == 0.0 or np.any(y_s[strict_s] < -1e-12 * top):
        return _weak(cons, use[support], y[support], b[support], sub)
    y_s = np.where(strict_s, np.maximum(y_s, 0.0), y_s)
    cert = _checked(cons, use[support], y_s, b[support], sub)
    if not cert.certified and _exact_farkas(E, cons, use[support], y_s / norms[use[support]]):
        cert = InfeasibilityCertificate(cert.conflicts, cert.multipliers, np.inf, cert.scale, True)
    return cert


_EXACT_MAX = 64  # constraints (and d^2) at most for the exact rational re-solve


def _exact_farkas(E: np.ndarray, cons: SVMConstraints, idx: np.ndarray, y: np.ndarray) -> bool:
    """Re-solve the conflict exactly: is there a rational ``y`` (``>= 0`` on strict constraints,
    positive on some) with ``sum_c y_c c_c = 0`` for the exact (binary) values of ``E``?

    The exact null space of the conflict's columns is computed in rational arithmetic; ``y`` (the
    float multipliers, unnormalised) is projected onto it exactly and its signs are checked. True
    proves infeasibility with no rounding at all.
    """
    from fractions import Fraction

    d = E.shape[1]
    if idx.size > _EXACT_MAX or d * d > _EXACT_MAX * _EXACT_MAX:
        return False
    F = [[Fraction(float(v)) for v in row] for row in E]
    cols = []
    for c in idx:
        i, j, k = int(cons.i[c]), int(cons.j[c]), int(cons.query[c])
        delta = [F[i][a] - F[j][a] for a in range(d)]
        cols.append([delta[a] * F[k][b] for a in range(d) for b in range(d)])
    null = _null_space([list(r) for r in zip(*cols, strict=True)], idx.size)
    if not null:
        return False
    # project y onto span(null) exactly: solve (N^T N) a = N^T y
    yq = [Fraction(float(v)) for v in y]
    gram = [[sum(u * v for u, v in zip(p, q, strict=True)) for q in null] for p in null]
    rhs = [sum(u * v for u, v in zip(p, yq, strict=True)) for p in null]
    coef = _solve_exact(gram, rhs)
    if coef is None:
        return False
    proj = [sum(coef[t] * null[t][c] for t in range(len(null))) for c in range(idx.size)]
    strict = cons.strict[idx]
    if any(proj[c] < 0 for c in range(idx.size) if strict[c]):
        return False
    return sum(proj[c] for c in range(idx.size) if strict[c]) > 0


def _null_space(rows: list[list[Any]], n: int) -> list[list[Any]]:
    """Basis of ``{y : rows y = 0}`` (exact, by reduced row echelon form)."""
    from fractions import Fraction

    A = [r[:] for r in rows]
    pivots: list[int] = []
    r = 0
    for col in range(n):
        pivot = next((k for k in range(r, len(A)) if A[k][col] != 0), None)
        if pivot is None:
            continue
        A[r], A[pivot] = A[pivot], A[r]
        inv = 1 / A[r][col]
        A[r] = [v * inv for v in A[r]]
        for k in range(len(A)):
            if k != r and A[k][col] != 0:
                f = A[k][col]
                A[k] = [a - f * b for a, b in zip(A[k], A[r], strict=True)]
        pivots.append(col)
        r += 1
        if r == len(A):
            break
    basis = []
    for free in (c for c in range(n) if c not in pivots):
        y = [Fraction(0)] * n
        y[free] = Fraction(1)
        for row, col in enumerate(pivots):
            y[col] = -A[row][free]
        basis.append(y)
    return basis


def _solve_exact(A: list[list[Any]], b: list[Any]) -> list[Any] | None:
    """``A^-1 b`` in rational arithmetic (None if ``A`` is singular)."""
    n = len(A)
    M = [A[k][:] + [b[k]] for k in range(n)]
    for col in range(n):
        pivot = next((k for k in range(col, n) if M[k][col] != 0), None)
        if pivot is None:
            return None
        M[col], M[pivot] = M[pivot], M[col]
        inv = 1 / M[col][col]
        M[col] = [v * inv for v in M[col]]
        for k in range(n):
            if k != col and M[k][col] != 0:
                f = M[k][col]
                M[k] = [a - f * c for a, c in zip(M[k], M[col], strict=True)]
    return [M[k][n] for k in range(n)]


def _weak(
    cons: SVMConstraints, idx: np.ndarray, y: np.ndarray, b: np.ndarray, sub: np.ndarray
) -> InfeasibilityCertificate:
    """The certificate of the solver's own ``y`` (clipped), checked as is."""
    y = np.where(cons.strict[idx], np.maximum(y, 0.0), y)
    return _checked(cons, idx, y, b, sub)


def _checked(
    cons: SVMConstraints, idx: np.ndarray, y: np.ndarray, b: np.ndarray, sub: np.ndarray
) -> InfeasibilityCertificate:
    """The norm bound ``beta / (|A^T y| + round-off)`` of ``y`` on the unit rows ``sub``."""
    beta = float(b @ y)
    residual = float(np.linalg.norm(sub.astype(np.longdouble).T @ y.astype(np.longdouble)))
    residual += _ROUNDOFF * float(np.abs(y).sum())
    bound = beta / residual if residual > 0 else np.inf
    strict = cons.strict[idx]
    scale = float(b[strict].max(initial=0.0))
    ok = bool(beta > 0 and strict.any() and bound >= INFEASIBLE_FACTOR * scale)
    cert = InfeasibilityCertificate(_conflicts(cons, idx), y, bound if beta > 0 else 0.0, scale, ok)
    logger.info(
        "Graph-SVM infeasibility certificate: %s (%s)",
        cert.summary(),
        "certified" if ok else "not certified",
    )
    return cert
