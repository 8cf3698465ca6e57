"""Graph-SVMs for other norms: which max-margin direction an optimiser's geometry selects.

The paper's Graph-SVM (docs/theory.md#graph-svm) minimises the Frobenius norm. Other optimisers
follow the same constraints under another norm (see ``docs/notes/norms.md``)::

    W_svm^N = argmin N(W)  subject to, for every query k and every edge i -> j of G^(k):
        (e_i - e_j)^T W e_k  = 0   if i ~ j
        (e_i - e_j)^T W e_k >= 1   if i => j

with ``N`` one of

=============  ==============================  ==================  ========================
name           N(W)                            dual norm           solved as
=============  ==============================  ==================  ========================
``fro``        ``sqrt(sum W_ab^2)``            ``fro``             :mod:`attnmech.theory.svm` (QP)
``l1``         ``sum |W_ab|``                  ``linf``            LP, HiGHS (scipy)
``linf``       ``max |W_ab|``                  ``l1``              LP, HiGHS (scipy)
``lp:P``       ``(sum |W_ab|^P)^(1/P)``        ``lp:P/(P-1)``      power cones, Clarabel
``nuclear``    sum of singular values          ``spectral``        SDP, Clarabel
``spectral``   largest singular value          ``nuclear``         SDP, Clarabel
=============  ==============================  ==================  ========================

All of them use the reduced constraints of :func:`attnmech.theory.svm.svm_constraints` (same
feasible set, fewer rows).

**Certificate.** For any multipliers ``lambda`` (``>= 0`` on strict constraints) and any feasible
``W``, ``N(W) >= <G, W> / N*(G) >= sum_strict lambda_c / N*(G)`` with
``G = sum_c lambda_c (e_i - e_j) e_k^T`` and ``N*`` the dual norm. So the solver's multipliers give
a lower bound on the optimum computed here, independently of the solver; the reported duality gap
is ``N(W) - bound``. The primal violation is recomputed from ``W`` on every original TPG edge.

**Polish.** The solvers' answers are moved onto the affine set of their active constraints by the
smallest Frobenius correction (a least-squares step), so margins hold to round-off; the norm then
changes by the size of the correction (about the solver's tolerance).

**Non-unique minimisers.** ``l1``, ``linf``, ``nuclear`` and ``spectral`` are not strictly convex:
the minimiser can be a whole face. ``unique`` on the result says what was found:

- ``l1`` / ``linf`` (LPs): a random linear function is minimised and maximised over the exact
  optimal face ``{W feasible : N(W) <= opt}`` (two more HiGHS solves). With probability one the
  two points differ iff the face is more than a point, so ``unique`` is True or False.
- ``nuclear``: a dual certificate (strict complementarity of the multipliers' ``G`` and
  injectivity of the active constraints on ``{U_r Z V_r^T : Z symmetric}``) proves uniqueness
  when it holds; then ``unique`` is True and no tie-break is needed. Otherwise as below.
- ``nuclear`` / ``spectral`` (SDPs): the solver's tolerance allows no exact face; the face is
  inflated to ``N(W) <= opt (1 + 1e-9)`` and the distance between the first answer and the
  tie-break (plus, with ``probe=True``, the random-direction width) decides: at most
  ``1e-6 (1 + ||W||_F)``: True; above ``1e-3 (1 + ||W||_F)``: False; in between: None
  (undecided; the inflation alone can move the point that far).

With ``tie_break="fro"`` (the default) a non-unique (or undecided) minimiser is replaced by the
point of least Frobenius norm on the inflated face, which is unique; ``tie_break`` on the result
is then ``"fro"`` and the certified gap is about ``1e-9`` by construction. ``extra_stats`` holds
``face_width``, the largest distance found between two face points (a lower bound on the face's
diameter).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._results import SolverStats, readonly
from ..errors import (
    InfeasibleProblemError,
    InvalidDatasetError,
    InvalidParameterError,
    SolverError,
)
from .graphs import PriorityGraphs
from .graphsvm.certificate import (
    GAP_TOL,
    VIOLATION_TOL,
    GraphSVMResult,
    certify,
    relative_gap_of,
    result_arrays,
    verdict,
)
from .graphsvm.constraints import SVMConstraints, svm_constraints
from .graphsvm.infeasibility import infeasibility_certificate
from .graphsvm.solve import infeasible_error, solve_graph_svm
import numbers

from .._validation import FLAG, Interval, Options, validate_params

__all__ = [
    "NormSpec",
    "NORMS",
    "parse_norm",
    "norm_of",
    "dual_norm_of",
    "margin_of",
    "margin_distance",
    "norm_lower_bound",
    "solve_norm_svm",
]

logger = logging.getLogger(__name__)

FACE_TOL = 1e-9  # relative slack of the optimal face used by the tie-break and the probe
DISTINCT_TOL = 1e-6  # face points at most this far apart (relative): "unique"
UNDECIDED_TOL = 1e-3  # SDP faces: wider than this means "not unique", between the two: undecided
MAX_DENSE_BYTES = 1 << 30  # largest dense constraint matrix (m x d^2 float64) built


# --------------------------------------------------------------------------------- norm functions
def _singular_values(W: np.ndarray) -> np.ndarray:
    return np.linalg.svd(W, compute_uv=False)


def _entrywise(W: np.ndarray, p: float) -> np.ndarray | float:
    A = np.abs(W)
    if p == 1.0:
        return A.sum(axis=(-2, -1))
    if math.isinf(p):
        return A.max(axis=(-2, -1), initial=0.0)
    scale = A.max(axis=(-2, -1), keepdims=True, initial=0.0)  # avoid overflow of |W|^p
    safe = np.where(scale > 0, scale, 1.0)
    return safe[..., 0, 0] * ((A / safe) ** p).sum(axis=(-2, -1)) ** (1.0 / p)


@dataclass(frozen=True, slots=True)
class NormSpec:
    """One norm of the registry.

    Attributes
    ----------
    name : str
        Canonical name (``"fro"``, ``"l1"``, ``"linf"``, ``"lp:3"``, ``"nuclear"``, ``"spectral"``).
    p : float or None
        The exponent of an entrywise norm (1, 2, inf or P); None for the spectral-type norms.
    dual : str
        Canonical name of the dual norm.
    strictly_convex : bool
        True when the minimiser is always unique (``fro``, ``lp:P`` with 1 < P < inf).
    method : str
        How :func:`solve_norm_svm` solves it.
    """

    name: str
    p: float | None
    dual: str
    strictly_convex: bool
    method: str

    def __call__(self, W: Any) -> Any:
        """The norm of ``W`` (shape (..., d, d)); a float for one matrix."""
        A = np.asarray(W, dtype=np.float64)
        if self.name == "nuclear":
            out = _singular_values(A).sum(axis=-1)
        elif self.name == "spectral":
            out = _singular_values(A).max(axis=-1, initial=0.0)
        else:
            assert self.p is not None
            out = _entrywise(A, self.p)
        return float(out) if np.ndim(out) == 0 else out


def _lp_name(p: float) -> str:
    return f"lp:{p:g}"


NORMS: dict[str, NormSpec] = {
    "fro": NormSpec("fro", 2.0, "fro", True, "attnmech dual active-set QP (attnmech.theory.svm)"),
    "l1": NormSpec("l1", 1.0, "linf", False, "LP, HiGHS through scipy.optimize.linprog"),
    "linf": NormSpec("linf", math.inf, "l1", False, "LP, HiGHS through scipy.optimize.linprog"),
    "nuclear": NormSpec("nuclear", None, "spectral", False, "SDP, cvxpy + Clarabel"),
    "spectral": NormSpec("spectral", None, "nuclear", False, "SDP, cvxpy + Clarabel"),
}
"""The fixed norms by canonical name; ``lp:P`` (1 < P < inf) is built by :func:`parse_norm`."""

_ALIASES = {
    "frobenius": "fro",
    "l2": "fro",
    "lp:2": "fro",
    "lp:1": "l1",
    "lp:inf": "linf",
    "max": "linf",
    "sign": "linf",
    "nuc": "nuclear",
    "trace": "nuclear",
    "operator": "spectral",
    "spec": "spectral",
}


def parse_norm(norm: str | NormSpec) -> NormSpec:
    """The :class:`NormSpec` named by ``norm``.

    Parameters
    ----------
    norm : str or NormSpec
        ``"fro"``, ``"l1"``, ``"linf"``, ``"nuclear"``, ``"spectral"`` or ``"lp:P"`` with a number
        ``P > 1`` (``"lp:2"`` is ``"fro"``, ``"lp:1"`` is ``"l1"``, ``"lp:inf"`` is ``"linf"``).

    Raises
    ------
    InvalidParameterError
        For an unknown name or an exponent outside ``[1, inf]``.

    Examples
    --------
    >>> parse_norm("lp:3").name, parse_norm("lp:3").dual
    ('lp:3', 'lp:1.5')
    >>> parse_norm("lp:2").name
    'fro'
    """
    if isinstance(norm, NormSpec):
        return norm
    if not isinstance(norm, str):
        raise InvalidParameterError(
            f"a norm is named by a string, got {type(norm).__name__}; use one of {_known()}"
        )
    key = norm.strip().lower()
    key = _ALIASES.get(key, key)
    if key in NORMS:
        return NORMS[key]
    if key.startswith("lp:"):
        try:
            p = float(key[3:])
        except ValueError:
            p = math.nan
        if not p >= 1.0:  # also rejects NaN
            raise InvalidParameterError(
                f"norm {norm!r}: the exponent after 'lp:' must be a number >= 1 (e.g. 'lp:3')"
            )
        if p == 1.0:
            return NORMS["l1"]
        if p == 2.0:
            return NORMS["fro"]
        if math.isinf(p):
            return NORMS["linf"]
        if not LP_MIN * (1 - 1e-9) <= p <= LP_MAX * (1 + 1e-9):  # closed under p -> p/(p-1)
            raise InvalidParameterError(
                f"norm {norm!r}: the exponent after 'lp:' must be 1, 'inf' or a number in "
                f"[{LP_MIN:g}, {LP_MAX:g}] (its dual exponent p/(p-1) is {p / (p - 1.0):.6g}: "
                "the conic solver cannot represent exponents that far from 1 and 2); use 'l1' "
                "or 'linf' for the limits"
            )
        q = p / (p - 1.0)
        dual = "fro" if q == 2.0 else _lp_name(q)
        return NormSpec(_lp_name(p), p, dual, True, "power cones, cvxpy + Clarabel")
    raise InvalidParameterError(f"unknown norm {norm!r}; use one of {_known()}")


LP_MIN = 1.01
"""Smallest exponent ``p`` of ``"lp:p"`` other than 1 (the dual exponent is at most 101)."""
LP_MAX = 101.0
"""Largest finite exponent ``p`` of ``"lp:p"`` (the dual of :data:`LP_MIN`; ``"linf"`` beyond)."""


def _known() -> str:
    return "'fro', 'l1', 'linf', 'lp:P' (P > 1, e.g. 'lp:3'), 'nuclear', 'spectral'"


def norm_of(W: Any, norm: str | NormSpec) -> Any:
    """The norm ``norm`` of ``W`` (ndarray of shape (d, d) or (..., d, d)).

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[3.0, 0.0], [0.0, -4.0]])
    >>> [norm_of(W, n) for n in ("fro", "l1", "linf", "nuclear", "spectral")]
    [5.0, 7.0, 4.0, 7.0, 4.0]
    """
    A = np.asarray(W, dtype=np.float64)
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise InvalidParameterError(
            f"norm_of expects square matrices of shape (..., d, d), got shape {A.shape}"
        )
    return parse_norm(norm)(A)


def dual_norm_of(W: Any, norm: str | NormSpec) -> Any:
    """The dual norm of ``norm`` at ``W`` (``N*(G) = max <G, W> over N(W) <= 1``)."""
    return norm_of(W, parse_norm(parse_norm(norm).dual))


def margin_of(W: Any, graphs: PriorityGraphs, embeddings: Any) -> float:
    """Smallest margin ``(e_i - e_j)^T W e_k`` over the strict-priority edges of ``graphs``
    (``inf`` when there is none)."""
    E = np.asarray(embeddings, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    A = E @ W @ E.T
    strict = graphs.scc_of(graphs.edge_query, graphs.edge_src) != graphs.scc_of(
        graphs.edge_query, graphs.edge_dst
    )
    q, s, t = graphs.edge_query[strict], graphs.edge_src[strict], graphs.edge_dst[strict]
    return float((A[s, q] - A[t, q]).min(initial=math.inf))


def margin_distance(
    W: Any, W_svm: Any, graphs: PriorityGraphs, embeddings: Any, norm: str | NormSpec
) -> float:
    """``N(W / margin(W) - W_svm)``: how far ``W``'s direction is from the ``N``-Graph-SVM, with
    ``W`` first scaled to margin 1 (``0`` when ``W`` is a positive multiple of ``W_svm``, whose
    margin is 1).

    Raises
    ------
    InvalidParameterError
        When ``W`` does not separate the strict edges (margin <= 0), so no scaling gives margin 1.
    """
    margin = margin_of(W, graphs, embeddings)
    if not margin > 0 or math.isinf(margin):
        raise InvalidParameterError(
            f"margin_distance: W has margin {margin:.3g} on the strict-priority edges; it needs a "
            "positive finite margin (train longer, or check that the graphs have strict edges)"
        )
    return float(norm_of(np.asarray(W, dtype=np.float64) / margin - W_svm, norm))


def norm_lower_bound(
    embeddings: Any, cons: SVMConstraints, multipliers: Any, norm: str | NormSpec
) -> float:
    """Lower bound on the ``N``-Graph-SVM optimum from any multipliers (weak duality).

    ``sum_strict lambda_c / N*(sum_c lambda_c (e_i - e_j) e_k^T)``, with the strict multipliers
    clipped at 0 first (so every input gives a valid bound).
    """
    E = np.asarray(embeddings, dtype=np.float64)
    lam = np.array(multipliers, dtype=np.float64)
    lam[cons.strict] = np.maximum(lam[cons.strict], 0.0)
    K = E.shape[0]
    coeff = np.zeros((K, K))
    np.add.at(coeff, (cons.i, cons.query), lam)
    np.add.at(coeff, (cons.j, cons.query), -lam)
    G = E.T @ coeff @ E
    dual = float(dual_norm_of(G, norm))
    value = float(lam[cons.strict].sum())
    return value / dual if dual > 0 else 0.0


# --------------------------------------------------------------------------------- problem data
def _constraint_rows(E: np.ndarray, cons: SVMConstraints) -> np.ndarray:
    """Dense rows ``vec((e_i - e_j) e_k^T)`` (row-major vec), one per reduced constraint."""
    m, d = cons.n_constraints, E.shape[1]
    need = 8 * m * d * d
    if need > MAX_DENSE_BYTES:
        raise InvalidParameterError(
            f"the non-Frobenius Graph-SVMs build a dense {m} x {d * d} constraint matrix "
            f"({need / 2**30:.1f} GiB, limit {MAX_DENSE_BYTES / 2**30:.0f} GiB); use "
            "svm_norm='fro' (factorised solver) or a smaller embedding_dim / dataset"
        )
    delta = E[cons.i] - E[cons.j]  # (m, d)
    return (delta[:, :, None] * E[cons.query][:, None, :]).reshape(m, d * d)  # (m, d^2)


def _import_cvxpy() -> Any:
    try:
        import cvxpy as cp
    except ImportError:  # pragma: no cover - a core dependency
        raise SolverError(
            "this Graph-SVM norm needs cvxpy and clarabel (core dependencies of attnmech); "
            "reinstall with pip install -e . or pip install cvxpy clarabel"
        ) from None
    return cp


def _cvx_norm(cp: Any, w: Any, spec: NormSpec, d: int) -> Any:
    if spec.name == "nuclear":
        return cp.normNuc(cp.reshape(w, (d, d), order="C"))
    if spec.name == "spectral":
        return cp.sigma_max(cp.reshape(w, (d, d), order="C"))
    if spec.name == "l1":
        return cp.norm1(w)
    if spec.name == "linf":
        return cp.norm_inf(w)
    assert spec.p is not None
    return cp.pnorm(w, spec.p)


_CLARABEL = {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "max_iter": 400}


_CLARABEL_FACE = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 200}
"""Looser for the tie-break: its point is polished and pulled back onto the face afterwards."""


def _run_cvxpy(cp: Any, problem: Any, what: str, settings: dict[str, Any] | None = None) -> None:
    try:
        with warnings.catch_warnings():  # "may be inaccurate": the certificate below decides
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=cp.CLARABEL, **(settings or _CLARABEL))
    except cp.error.SolverError as exc:
        raise SolverError(
            f"{what}: Clarabel failed ({exc}); the embeddings may be nearly dependent"
        ) from None
    if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        raise InfeasibleProblemError(f"{what} is infeasible")
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise SolverError(f"{what}: Clarabel stopped with status {problem.status!r}")


def _solve_lp(
    spec: NormSpec,
    A: np.ndarray,
    strict: np.ndarray,
    face: tuple[float, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``l1`` / ``linf`` Graph-SVM as an LP (HiGHS). Returns ``w``, multipliers, iterations.

    With ``face=(bound, c)``: minimise ``<c, w>`` over ``{feasible w : N(w) <= bound}`` instead.
    """
    from scipy.optimize import linprog

    n = A.shape[1]
    A_s, A_e = A[strict], A[~strict]
    ms = A_s.shape[0]
    if spec.name == "l1":  # w = w+ - w-, both >= 0, minimise their sum
        cost = np.ones(2 * n) if face is None else np.concatenate([face[1], -face[1]])
        A_ub = np.hstack([-A_s, A_s])
        b_ub = -np.ones(ms)
        if face is not None:
            A_ub = np.vstack([A_ub, np.ones((1, 2 * n))])
            b_ub = np.append(b_ub, face[0])
        A_eq = np.hstack([A_e, -A_e]) if A_e.size else None
        bounds: Any = (0, None)
    else:  # variables (w, t): minimise t with -t <= w_ab <= t
        cost = np.zeros(n + 1)
        if face is None:
            cost[-1] = 1.0
        else:
            cost[:n] = face[1]
        eye = np.eye(n)
        ones = np.ones((n, 1))
        A_ub = np.vstack(
            [
                np.hstack([-A_s, np.zeros((ms, 1))]),
                np.hstack([eye, -ones]),
                np.hstack([-eye, -ones]),
            ]
        )
        b_ub = np.concatenate([-np.ones(ms), np.zeros(2 * n)])
        A_eq = np.hstack([A_e, np.zeros((A_e.shape[0], 1))]) if A_e.size else None
        bounds = [(None, None)] * n + [(0, None if face is None else face[0])]
    b_eq = np.zeros(A_eq.shape[0]) if A_eq is not None else None
    for tol in (1e-10, 1e-9, None):  # tight first; HiGHS may report numerical trouble (status 4)
        options = (
            {}
            if tol is None
            else {
                "primal_feasibility_tolerance": tol,
                "dual_feasibility_tolerance": tol,
            }
        )
        result = linprog(
            cost,
            A_ub=A_ub,
            b_ub=b_ub,
            A_eq=A_eq,
            b_eq=b_eq,
            bounds=bounds,
            method="highs",
            options=options,
        )
        if result.status != 4:
            break
        logger.info("HiGHS: numerical trouble at tolerance %s, retrying looser", tol)
    if result.status == 2:
        raise InfeasibleProblemError(f"the {spec.name}-norm Graph-SVM is infeasible")
    if result.status != 0 or result.x is None:
        raise SolverError(
            f"{spec.name}-norm Graph-SVM: HiGHS stopped with status {result.status} "
            f"({result.message})"
        )
    x = result.x
    w = x[:n] - x[n:] if spec.name == "l1" else x[:n]
    lam = np.zeros(A.shape[0])
    lam[strict] = -np.asarray(result.ineqlin.marginals)[:ms]
    if A_e.size:
        lam[~strict] = np.asarray(result.eqlin.marginals)
    return w, lam, int(result.nit)


def _solve_conic(
    spec: NormSpec, A: np.ndarray, strict: np.ndarray, d: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """``lp:P`` / ``nuclear`` / ``spectral`` Graph-SVM with cvxpy + Clarabel."""
    cp = _import_cvxpy()
    w = cp.Variable(d * d)
    constraints = [A[strict] @ w >= 1]
    if (~strict).any():
        constraints.append(A[~strict] @ w == 0)
    problem = cp.Problem(cp.Minimize(_cvx_norm(cp, w, spec, d)), constraints)
    _run_cvxpy(cp, problem, f"the {spec.name}-norm Graph-SVM")
    if w.value is None:
        raise SolverError(f"{spec.name}-norm Graph-SVM: Clarabel returned no solution")
    lam = np.zeros(A.shape[0])
    lam[strict] = np.asarray(constraints[0].dual_value, dtype=np.float64).ravel()
    if (~strict).any():
        lam[~strict] = -np.asarray(constraints[1].dual_value, dtype=np.float64).ravel()
    return np.asarray(w.value, dtype=np.float64), lam, int(problem.solver_stats.num_iters or 0)


def _violation(A: np.ndarray, w: np.ndarray, strict: np.ndarray) -> float:
    slack = A @ w - strict
    return float(np.abs(np.where(strict, np.minimum(slack, 0.0), slack)).max(initial=0.0))


def _polish(w: np.ndarray, A: np.ndarray, strict: np.ndarray) -> np.ndarray:
    """Smallest Frobenius correction putting ``w`` exactly on its equalities and on the strict
    constraints it (nearly) violates; the set grows while a correction creates new violations.
    The least-violating candidate is returned (``w`` itself if no correction helps)."""
    rhs = strict.astype(np.float64)
    best, best_violation = w, _violation(A, w, strict)
    active = (~strict) | (A @ w - rhs <= 1e-10)
    for _ in range(10):
        if best_violation <= 1e-15 or not active.any():
            break
        sub = A[active]
        step, *_ = np.linalg.lstsq(sub, rhs[active] - sub @ w, rcond=None)
        candidate = w + step
        violation = _violation(A, candidate, strict)
        if violation < best_violation:
            best, best_violation = candidate, violation
        grown = active | (A @ candidate - rhs <= 1e-10)
        if np.array_equal(grown, active):
            break
        active = grown
    return best


def _face_solve(
    spec: NormSpec,
    A: np.ndarray,
    strict: np.ndarray,
    d: int,
    bound: float,
    objective: np.ndarray | None,
) -> np.ndarray:
    """On the optimal face ``{A_s w >= 1, A_e w = 0, N(w) <= bound}``: the least-Frobenius point
    (``objective=None``) or the minimiser of ``<objective, w>``."""
    cp = _import_cvxpy()
    w = cp.Variable(d * d)
    constraints = [A[strict] @ w >= 1, _cvx_norm(cp, w, spec, d) <= bound]
    if (~strict).any():
        constraints.append(A[~strict] @ w == 0)
    goal = cp.sum_squares(w) if objective is None else objective @ w
    problem = cp.Problem(cp.Minimize(goal), constraints)
    _run_cvxpy(cp, problem, f"the {spec.name}-norm Graph-SVM tie-break", _CLARABEL_FACE)
    if w.value is None:
        raise SolverError(f"{spec.name}-norm Graph-SVM tie-break: no solution returned")
    return np.asarray(w.value, dtype=np.float64)


# --------------------------------------------------------------------------------- main entry

SOLVE_NORM_SVM_PARAMS: dict[str, list[Any]] = {
    "tie_break": [Options(("fro",)), None],
    "probe": [FLAG],
    "seed": [Interval(numbers.Integral, 0, 2**63 - 1)],
}
"""What :func:`solve_norm_svm`'s options may be (the norm is checked by :func:`parse_norm`)."""


@validate_params(SOLVE_NORM_SVM_PARAMS, where="solve_norm_svm")
def solve_norm_svm(
    graphs: PriorityGraphs,
    embeddings: Any,
    norm: str | NormSpec = "fro",
    *,
    tie_break: str | None = "fro",
    probe: bool = False,
    seed: int = 0,
    **fro_options: Any,
) -> GraphSVMResult:
    """The Graph-SVM of docs/theory.md#graph-svm under the norm ``norm`` (see the module docstring).

    Parameters
    ----------
    graphs : PriorityGraphs
    embeddings : ndarray of shape (vocab_size, embedding_dim)
    norm : str or NormSpec, default="fro"
        ``"fro"``, ``"l1"``, ``"linf"``, ``"lp:P"`` (P > 1), ``"nuclear"`` or ``"spectral"``.
    tie_break : {"fro", None}, default="fro"
        For norms whose minimiser may be a face (``l1``, ``linf``, ``nuclear``, ``spectral``):
        ``"fro"`` returns the face's point of least Frobenius norm (unique); None returns the
        solver's point as is.
    probe : bool, default=False
        For ``nuclear`` / ``spectral``: also minimise and maximise a random linear function over
        the inflated optimal face (two more SDP solves). ``l1`` / ``linf`` always do this (with
        LPs, on the exact face).
    seed : int, default=0
        Seed of the probe's random direction.
    **fro_options
        Passed to :func:`attnmech.theory.svm.solve_graph_svm` when ``norm`` is ``"fro"``.

    Returns
    -------
    GraphSVMResult
        ``W_svm`` is the minimiser; ``norm_name``, ``unique`` and ``tie_break`` say which norm,
        whether the minimiser was found unique, and which tie-break was applied. ``dual_values``
        are the solver's multipliers; ``duality_gap`` is ``N(W) -`` the certified lower bound and
        ``relative_gap`` the same divided by ``N(W)``. For ``"fro"`` the result is that of
        :func:`~attnmech.theory.svm.solve_graph_svm` (gap on ``||W||_F^2``).

    Raises
    ------
    InvalidParameterError
        Unknown norm or tie-break; or a problem too large for the dense formulation.
    InfeasibleProblemError
        Constraints that cannot hold together (linearly dependent embeddings); ``.conflicts``
        lists them as ``(last_token, i, j, kind)``.
    SolverError
        The LP / conic solver failed.

    Notes
    -----
    Status ``OPTIMAL`` needs a violation ``<= 1e-9`` on every TPG edge and a relative certified
    gap ``<= 1e-8``; otherwise ``INACCURATE`` with a ConvergenceWarning. The non-Frobenius norms
    use a dense ``m x d^2`` constraint matrix and general LP / conic solvers: meant for the
    paper's sizes (``d`` up to a few dozen; at ``K, d <= 10`` each solve takes well under a
    second), not for the large problems :func:`attnmech.theory.svm.solve_graph_svm` handles.

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset, build_priority_graphs
    >>> ds = Dataset([[0, 1, 2]], [0], np.eye(3))
    >>> res = solve_norm_svm(build_priority_graphs(ds), ds.embeddings, "linf")
    >>> res.norm_name, np.round(res.W_svm[:, 2], 6).tolist()
    ('linf', [0.5, -0.5, -0.5])
    >>> res.unique, res.tie_break  # entries outside the constraints may be anything in [-.5, .5]
    (False, 'fro')
    >>> round(float(np.abs(res.W_svm).sum()), 6)  # the tie-break sets them to 0
    1.5
    """
    if not isinstance(graphs, PriorityGraphs):
        raise InvalidParameterError(
            f"solve_norm_svm expects PriorityGraphs, got {type(graphs).__name__}; build them "
            "with attnmech.build_priority_graphs(dataset) (or call attnmech.solve(dataset, "
            "svm_norm=...))"
        )
    spec = parse_norm(norm)
    if tie_break not in ("fro", None):
        raise InvalidParameterError(f"tie_break must be 'fro' or None, got {tie_break!r}")
    if spec.name == "fro":
        result = solve_graph_svm(graphs, embeddings, **fro_options)
        return _replace(result, norm_name="fro", unique=True, tie_break=None)
    if fro_options:
        raise InvalidParameterError(
            f"options {sorted(fro_options)} apply to svm_norm='fro' only, not {spec.name!r}"
        )
    start = time.perf_counter()
    try:
        E = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidDatasetError(f"embeddings must be an array of numbers ({exc})") from None
    if E.ndim != 2 or E.shape[0] != graphs.vocab_size or not np.isfinite(E).all():
        raise InvalidDatasetError(
            f"embeddings must be finite with shape ({graphs.vocab_size}, embedding_dim), got "
            f"{E.shape}"
        )
    d = E.shape[1]
    cons = svm_constraints(graphs)
    m = cons.n_constraints
    extra: dict[str, Any] = {"n_constraints": m, "n_edges": cons.n_original, "norm": spec.name}
    unique: bool | None = True
    applied: str | None = None
    iters = 0
    if not cons.strict.any():
        W = np.zeros((d, d))
        lam = np.zeros(m)
        lower = 0.0
        setup = 0.0
    else:
        A = _constraint_rows(E, cons)
        setup = time.perf_counter() - start
        try:
            if spec.p in (1.0, math.inf):
                try:
                    w, lam, iters = _solve_lp(spec, A, cons.strict)
                except SolverError as exc:  # HiGHS failed: the same LP as a cone program
                    logger.info("%s; solving with Clarabel instead", exc)
                    extra["fallback"] = "Clarabel (HiGHS failed)"
                    w, lam, iters = _solve_conic(spec, A, cons.strict, d)
            else:
                w, lam, iters = _solve_conic(spec, A, cons.strict, d)
        except InfeasibleProblemError:
            raise _infeasible(E, cons, spec) from None
        w = _polish(w, A, cons.strict)
        lower = norm_lower_bound(E, cons, lam, spec)
        if not spec.strictly_convex:
            try:
                face = _resolve_face(spec, A, cons.strict, d, w, lam, tie_break, probe, seed)
            except SolverError as exc:
                if tie_break is None:
                    raise
                face = (w, None, None, 0.0)
                _tie_break_failed(extra, f"its solver failed ({exc})")
            if face[2] is not None and _violation(A, face[0], cons.strict) > VIOLATION_TOL >= (
                _violation(A, w, cons.strict)
            ):
                _tie_break_failed(extra, "its point violates the constraints")
                face = (w, None, None, face[3])
            w, unique, applied, width = face
            extra["face_width"] = width
        W = w.reshape(d, d)
    margins, edge_margins, edge_strict, max_violation, relative_violation = certify(
        graphs, cons, E, W
    )
    primal = float(spec(W))
    gap = primal - lower
    relative_gap = relative_gap_of(gap, primal)
    extra.update(lower_bound=lower, unique=unique, tie_break=applied)
    status, message = verdict(
        cons,
        max_violation <= VIOLATION_TOL and relative_gap <= GAP_TOL,
        f"optimal: {spec.name} norm {primal:.10g}, max violation {max_violation:.1e}, "
        f"certified relative gap {relative_gap:.1e}"
        + ("" if unique is not False else "; minimiser not unique")
        + ("" if applied is None else " (Frobenius tie-break)"),
        f"inaccurate: {spec.name} norm {primal:.10g}, max violation {max_violation:.1e} "
        f"(tol {VIOLATION_TOL:.0e}), certified relative gap {relative_gap:.1e} "
        f"(tol {GAP_TOL:.0e}); the embeddings may be nearly dependent",
        f"{spec.name}-norm Graph-SVM",
    )
    logger.info("%s-norm Graph-SVM: %s", spec.name, message)
    return GraphSVMResult(
        W_svm=readonly(W),
        status=status,
        message=message,
        **result_arrays(cons, margins, lam, edge_margins, edge_strict, active_tol=1e-9),
        max_violation=max_violation,
        duality_gap=gap,
        relative_gap=relative_gap,
        solver_stats=SolverStats(
            solver_name=f"attnmech.norms ({spec.method})",
            solve_time=time.perf_counter() - start,
            setup_time=setup,
            num_iters=iters,
            extra_stats=extra,
        ),
        norm_name=spec.name,
        unique=unique,
        tie_break=applied,
        method="none" if not cons.strict.any() else _method_name(spec, extra),
        relative_violation=relative_violation,
    )


def _method_name(spec: NormSpec, extra: dict[str, Any]) -> str:
    """``"highs"`` for the LPs (``"cvxpy+clarabel"`` when HiGHS failed), else
    ``"cvxpy+clarabel"``."""
    if spec.p in (1.0, math.inf) and "fallback" not in extra:
        return "highs"
    return "cvxpy+clarabel"


def _tie_break_failed(extra: dict[str, Any], why: str) -> None:
    """Record (and log) that the Frobenius tie-break was dropped: the solver's own point, within
    tolerance, is kept with ``tie_break=None`` and ``unique=None`` (not decided)."""
    logger.info("Frobenius tie-break dropped: %s; keeping the solver's point", why)
    extra["tie_break_failed"] = why


def _into_face(spec: NormSpec, w: np.ndarray, w_tb: np.ndarray, d: int, bound: float) -> np.ndarray:
    """``w_tb`` if ``N(w_tb) <= bound``; else the point ``w + t (w_tb - w)`` with the largest
    ``t`` in [0, 1] that keeps ``N <= bound`` (bisection; ``w`` is on the face and both meet the
    linear constraints, so every such point does). Guards against an inaccurate tie-break."""
    if spec(w_tb.reshape(d, d)) <= bound:
        return w_tb
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if spec((w + mid * (w_tb - w)).reshape(d, d)) <= bound:
            lo = mid
        else:
            hi = mid
    return w + lo * (w_tb - w)


def _nuclear_unique(
    A: np.ndarray, strict: np.ndarray, w: np.ndarray, lam: np.ndarray, d: int
) -> bool:
    """Dual certificate that a nuclear-norm minimiser ``W`` is the only one.

    With ``G = A^T lambda / ||A^T lambda||_2`` (the optimal multipliers), every minimiser ``W'``
    has ``<G, W'> = ||W'||_*`` and meets the active constraints (``lambda_c > 0``) with equality,
    so ``W' = U_1 Z V_1^T`` with ``Z`` PSD, ``U_1, V_1`` the singular vectors of ``G`` at singular
    value 1. When ``G`` has exactly ``r = rank(W)`` of those and they are ``W``'s own (strict
    complementarity), and ``Z -> A_act vec(U_r Z V_r^T)`` is injective on symmetric ``r x r``
    matrices, that set is the single point ``W``. Checked numerically: alignment
    ``|U_r^T G V_r - I| <= 1e-5``, next singular value of ``G`` ``<= 1 - 1e-3``, injectivity with
    a smallest-to-largest singular value ratio ``>= 1e-6``.
    """
    W = w.reshape(d, d)
    U, s, Vt = np.linalg.svd(W)
    if s[0] <= 0:
        return False
    r = int((s > 1e-6 * s[0]).sum())
    G = (A.T @ lam).reshape(d, d)
    sg = np.linalg.svd(G, compute_uv=False)
    if sg[0] <= 0:
        return False
    G, sg = G / sg[0], sg / sg[0]
    Ur, Vr = U[:, :r], Vt[:r].T
    if np.abs(Ur.T @ G @ Vr - np.eye(r)).max() > 1e-5 or (r < d and sg[r] > 1.0 - 1e-3):
        return False
    basis = []
    for a, b in zip(*np.triu_indices(r), strict=True):
        sym = np.zeros((r, r))
        sym[a, b] = sym[b, a] = 1.0
        basis.append((Ur @ sym @ Vr.T).ravel())
    active = (~strict) | (lam > 1e-7 * float(np.abs(lam).max()))
    image = A[active] @ np.array(basis).T  # (n_active, r (r + 1) / 2)
    if image.shape[0] < image.shape[1]:
        return False
    sv = np.linalg.svd(image, compute_uv=False)
    return bool(sv[-1] >= 1e-6 * sv[0])


def _resolve_face(
    spec: NormSpec,
    A: np.ndarray,
    strict: np.ndarray,
    d: int,
    w: np.ndarray,
    lam: np.ndarray,
    tie_break: str | None,
    probe: bool,
    seed: int,
) -> tuple[np.ndarray, bool | None, str | None, float]:
    """Tie-break and uniqueness check for a norm that is not strictly convex.

    LPs (``l1``, ``linf``): the minimiser and maximiser of a random linear function over the
    exact optimal face ``{feasible w : N(w) <= opt}`` (two HiGHS solves) are compared; with
    probability one they differ iff the face is more than a point. A unique vertex is returned as
    is; otherwise the Frobenius tie-break is applied.

    ``nuclear``: first the dual certificate of :func:`_nuclear_unique`; if it holds the answer is
    unique and returned as is. Otherwise, as for ``spectral``:

    SDPs (``nuclear``, ``spectral``): Clarabel's tolerance allows no exact face, so the face is
    inflated by ``FACE_TOL`` and the tie-break's distance to the first answer (and with ``probe``
    the random-direction width) decides: ``<= DISTINCT_TOL`` relative: unique; ``> UNDECIDED_TOL``
    relative: not unique; in between: None (undecided, the inflation alone can explain it).

    Returns the chosen point, ``unique`` (True / False / None), the tie-break applied and the
    largest distance found between two points of the (inflated) face.
    """
    lp = spec.p in (1.0, math.inf)
    optimum = float(spec(w.reshape(d, d)))
    scale = 1.0 + float(np.linalg.norm(w))
    c = np.random.default_rng(seed).standard_normal(d * d)
    if lp:
        try:
            lo = _solve_lp(spec, A, strict, (optimum, c))[0]
            hi = _solve_lp(spec, A, strict, (optimum, -c))[0]
        except SolverError as exc:  # no exact face: decide as for the SDPs below
            logger.info("uniqueness probe failed (%s); using the inflated face", exc)
        else:
            width = float(np.linalg.norm(hi - lo))
            if width <= DISTINCT_TOL * scale:
                return w, True, None, width
            if tie_break == "fro":
                bound = optimum * (1.0 + FACE_TOL)
                w_tb = _polish(_face_solve(spec, A, strict, d, bound, None), A, strict)
                w = _into_face(spec, w, w_tb, d, bound)
            return w, False, tie_break, width
    if spec.name == "nuclear" and _nuclear_unique(A, strict, w, lam, d):
        return w, True, None, 0.0  # certified unique: nothing to break
    bound = optimum * (1.0 + FACE_TOL)
    width = 0.0
    if probe:
        lo = _face_solve(spec, A, strict, d, bound, c)
        hi = _face_solve(spec, A, strict, d, bound, -c)
        width = float(np.linalg.norm(hi - lo))
    if tie_break == "fro":
        w_tb = _polish(_face_solve(spec, A, strict, d, bound, None), A, strict)
        width = max(width, float(np.linalg.norm(w_tb - w)))
        w = _into_face(spec, w, w_tb, d, bound)
    elif not probe:
        return w, None, None, width
    if width <= DISTINCT_TOL * scale:
        return w, True, tie_break, width
    if width > UNDECIDED_TOL * scale:
        return w, False, tie_break, width
    return w, None, tie_break, width


def _infeasible(E: np.ndarray, cons: SVMConstraints, spec: NormSpec) -> Exception:
    """The solver said "infeasible": InfeasibleProblemError only with a checked Farkas
    certificate (:mod:`attnmech.theory.graphsvm.infeasibility`), else a SolverError (refusal)."""
    cert = infeasibility_certificate(E, cons)
    if cert is not None and cert.certified:
        return infeasible_error(cert, f"the {spec.name}-norm Graph-SVM")
    found = "no Farkas certificate" if cert is None else f"an unchecked one ({cert.summary()})"
    return SolverError(
        f"the {spec.name}-norm Graph-SVM: the solver reports infeasibility but {found} could "
        "be certified in the problem's own scaling; the embeddings may be nearly dependent or "
        "badly scaled: rescale them, or use svm_norm='fro'"
    )


def _replace(result: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(result, **changes)
