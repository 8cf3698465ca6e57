"""The regularization path ``W(R) = argmin_{||W||_F <= R} L(W)`` (docs/theory.md#the-theorem).

The theorem: as ``R`` grows, ``W(R) / R`` tends to ``W_svm / ||W_svm||`` and
``Proj_{S_fin} W(R)`` to ``W_fin``. :func:`regularization_path` solves the constrained problems on
a grid of radii, warm-started along the grid, through the ridge problems
``L(W) + lambda/2 ||W||^2`` (solved by :func:`attnmech.theory.newton.damped_newton` with the model's
analytic Hessian) and a safeguarded Newton iteration on the multiplier ``lambda``.

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._results import readonly as _copy_readonly
from ..data.dataset import Dataset
from ..errors import ConvergenceWarning, InvalidDatasetError, InvalidParameterError
from ..theory.graphs import build_priority_graphs
from .model import AttentionConfig, AttentionObjective, torch_threads
from ..theory.newton import NewtonOptions, damped_newton, newton_direction
import numbers

from .._validation import ArrayLike, Interval, validate_params

__all__ = ["RegularizationPath", "regularization_path"]


@dataclass(frozen=True, slots=True, eq=False)
class RegularizationPath:
    """Solutions of ``min L(W) s.t. ||W||_F <= R`` on a grid of radii.

    Attributes
    ----------
    radii : ndarray of shape (m,)
        Sorted increasing.
    W : ndarray of shape (m, d, d)
    loss : ndarray of shape (m,)
    multiplier : ndarray of shape (m,)
        Lagrange multiplier lambda of the ball (0 when the constraint is inactive).
    kkt_residual : ndarray of shape (m,)
        ``max(stationarity, feasibility)``. Stationarity is
        ``||grad L + lambda W||_F / max(lambda ||W||_F, ||grad L||_F, 1e-6)``: relative (the sine
        of the angle between ``-grad L`` and ``W`` on the sphere) while the gradient is above
        1e-6, and absolute (times 1e6) below, where float64 rounding of an O(1) loss's gradient
        (about 1e-16) rules out a relative measure. Feasibility is ``| ||W||_F - R | / R`` when
        the ball binds (lambda > 0), ``max(0, ||W||_F - R) / R`` otherwise.
    converged : ndarray of bool of shape (m,)
        ``kkt_residual <= tol``.
    n_iter : ndarray of shape (m,)
        Newton iterations used.
    tol : float
    """

    radii: np.ndarray
    W: np.ndarray
    loss: np.ndarray
    multiplier: np.ndarray
    kkt_residual: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    tol: float


class _RidgeProblem:
    """``L(W) + lam/2 ||W||^2`` for one trial, in numpy, with gradient and Hessian of ``L``."""

    def __init__(self, objective: AttentionObjective) -> None:
        self.objective = objective
        self.d = objective.inputs.embedding_dim
        self.dtype = objective.inputs.dtype
        self.device = objective.inputs.device

    def _tensor(self, w: np.ndarray) -> Tensor:
        return torch.as_tensor(w.reshape(1, self.d, self.d), dtype=self.dtype, device=self.device)

    def loss(self, w: np.ndarray) -> float:
        return float(self.objective.risk(self._tensor(w))[0])

    def grad(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = self.objective(self._tensor(w))
        return float(loss[0]), grad[0].reshape(-1).cpu().numpy()

    def hessian(self, w: np.ndarray) -> np.ndarray:
        return self.objective.hessian(self._tensor(w))[0].cpu().numpy()


GRADIENT_FLOOR = 1e-6  # stationarity is relative to max(lam ||W||, ||grad L||, GRADIENT_FLOOR)


def _stationarity(grad: np.ndarray, w: np.ndarray, lam: float) -> float:
    """``||grad L + lam w||`` relative to ``max(lam ||w||, ||grad L||, GRADIENT_FLOOR)``.

    Relative while the gradient is large; below ``GRADIENT_FLOOR`` it becomes absolute (scaled),
    because the gradient of an O(1) loss has an absolute rounding error of about 1e-16 and a
    relative residual of a 1e-10 gradient could not go below 1e-6.
    """
    scale = max(lam * float(np.linalg.norm(w)), float(np.linalg.norm(grad)), GRADIENT_FLOOR)
    return float(np.linalg.norm(grad + lam * w)) / scale


def _kkt(grad: np.ndarray, w: np.ndarray, lam: float, radius: float) -> float:
    norm = float(np.linalg.norm(w))
    feasibility = abs(norm - radius) if lam > 0 else max(0.0, norm - radius)
    return max(_stationarity(grad, w, lam), feasibility / radius)


def _ridge_newton(
    problem: _RidgeProblem,
    w: np.ndarray,
    lam: float,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Damped Newton on ``L(w) + lam/2 ||w||^2`` (strongly convex for a convex L and lam > 0).

    Stops when :func:`_stationarity` is at most ``tol`` or when the residual stops improving
    (rounding). With lam = 0 the steps are minimum-norm. Returns
    ``(w, grad L, Hessian of L, iterations)``.
    """
    result = damped_newton(
        problem.grad,
        problem.hessian,
        w,
        lambda x, grad: _stationarity(grad, x, lam),
        _ridge_options(tol, max_iter),
        ridge=lam,
    )
    return result.x, result.grad, result.hessian, result.num_steps


def _ridge_options(tol: float, max_iter: int) -> NewtonOptions:
    """The ridge solves' constants: the line search is skipped once the predicted decrease is
    below 1e-14 of the objective (then the step is capped at 0.1 max(1, ||w||)); it gives up
    after 33 halvings; five iterations without halving the residual end the solve."""
    return NewtonOptions(
        tol=tol,
        max_iter=max_iter,
        max_halvings=33,
        on_line_search_failure="stop",
        flat_rtol=1e-14,
        flat_offset=0.0,
        flat_cap=0.1,
        stall_limit=5,
    )


def _solve_on_ball(
    problem: _RidgeProblem, w: np.ndarray, lam: float, radius: float, tol: float, max_iter: int
) -> tuple[np.ndarray, float, float, int]:
    """Solve ``min L s.t. ||w|| = radius`` (the ball binds): find ``lam > 0`` with
    ``||w_lam|| = radius``, ``w_lam = argmin L + lam/2 ||w||^2``.

    The multiplier is updated by Newton steps on ``psi(t) = 1/||w_lam|| - 1/radius`` in
    ``t = log lam`` (smooth over the many orders of magnitude lam spans along the path), kept
    inside a bracket and bisected when a step leaves it. Returns (w, lam, kkt residual, its).
    """
    n = w.size
    total = 0
    lo, hi = -math.inf, math.inf  # bracket on t = log lam (||w_lam|| decreases in lam)
    t = math.log(lam)
    # if the tolerance is out of reach, fall back on the point of least residual on the sphere,
    # starting with the warm start scaled to the radius
    w = w * (radius / max(float(np.linalg.norm(w)), 1e-300))
    fallback = (w, lam, _kkt(problem.grad(w)[1], w, lam, radius))
    best, stalled = math.inf, 0
    for _ in range(max_iter):
        lam = math.exp(t)
        w_lam, grad, hess, its = _ridge_newton(problem, w, lam, tol * 1e-2, max_iter)
        total += its
        norm = float(np.linalg.norm(w_lam))
        kkt = _kkt(grad, w_lam, lam, radius)
        if kkt <= tol:
            return w_lam, lam, kkt, total
        best, stalled = (kkt, 0) if kkt < 0.5 * best else (best, stalled + 1)
        if stalled >= 8:  # no progress: the tolerance is out of float64's reach here
            break
        if abs(norm - radius) <= 1e-6 * radius and kkt < fallback[2]:
            fallback = (w_lam, lam, kkt)
        w = w_lam
        if norm > radius:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        dw = -newton_direction(hess + lam * np.eye(n), w, exact=True)  # d w_lam / d lam
        slope = -lam * float(w @ dw) / norm**3  # d psi / d t > 0
        psi = 1.0 / norm - 1.0 / radius
        new = t - psi / slope if slope > 0 else math.nan
        new = min(max(new, t - 5.0), t + 5.0)  # at most a factor e^5 per update
        if not (math.isfinite(new) and lo < new < hi):
            if math.isfinite(lo) and math.isfinite(hi):
                new = 0.5 * (lo + hi)
            else:
                new = t - 2.0 if norm < radius else t + 2.0
        if abs(new - t) < 1e-15 * max(1.0, abs(t)):
            break  # the multiplier is as precise as floating point allows
        t = new
    w, lam, kkt = fallback
    return w, lam, kkt, total



REGPATH_PARAMS: dict[str, list[Any]] = {
    "radii": [ArrayLike()],
    "config": [AttentionConfig, None],
    "tol": [Interval(numbers.Real, 0, None, closed="right")],
    "max_iter": [Interval(numbers.Integral, 1, 10**9)],
}
"""What :func:`regularization_path` takes."""


@validate_params(REGPATH_PARAMS, where="regularization_path")
def regularization_path(
    dataset: Dataset,
    radii: Any,
    *,
    config: AttentionConfig | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> RegularizationPath:
    """``W(R) = argmin_{||W||_F <= R} L(W)`` for each radius, warm-started along the grid.

    Parameters
    ----------
    dataset : Dataset
    radii : array-like of positive float
        Sorted before solving.
    config : AttentionConfig, optional
        Head and loss (combined parameterization only). The theory (docs/theory.md#the-theorem) is
        for the ``iden`` head with the log-loss, where ``L`` is convex and the solution unique (up
        to directions that ``L`` ignores; the minimum-norm one is returned).
    tol : float, default=1e-8
        Tolerance on the KKT residual (see :class:`RegularizationPath`); the multiplier's inner
        solves go to ``tol / 100``.
    max_iter : int, default=100
        Newton iterations per inner solve, and multiplier updates per radius.

    Returns
    -------
    RegularizationPath

    Notes
    -----
    For each radius, the multiplier ``lambda`` is found by a safeguarded Newton iteration on
    ``1/||W_lambda|| - 1/R`` in ``log lambda``, where ``W_lambda = argmin L(W) + lambda/2 ||W||^2``
    is computed by damped Newton with the analytic Hessian. When no token-priority graph has a
    strict priority (``W_svm = 0``) the loss has a minimum-norm minimiser ``W*``; radii at or
    above ``||W*||`` return it with ``lambda = 0``.

    Limits of float64: along the path the curvature in the ``W_svm`` direction decays like
    ``lambda``, while the finite part keeps curvature of order 1. Once ``lambda`` falls below
    about 1e-10 (for the paper's setting, radii of a few tens, where ``corr(W(R), W_svm)`` is
    already about 0.999) the Newton systems lose their precision: those radii report their
    residual, ``converged`` is False there, and a
    :class:`~attnmech.errors.ConvergenceWarning` is raised. For such a radius the point on the
    sphere with the least residual met on the way (at worst the previous solution scaled to the
    radius) is returned. Meant for small d (the Hessian is d^2 x d^2).
    """
    config = config if config is not None else AttentionConfig()
    if config.parameterization != "combined":
        raise InvalidParameterError(
            "regularization_path needs the combined parameterization (W itself)"
        )
    if not isinstance(dataset, Dataset):
        raise InvalidDatasetError(f"expected an attnmech.Dataset, got {type(dataset).__name__}")
    radii_arr = np.sort(np.asarray(radii, dtype=np.float64).reshape(-1))
    if radii_arr.size == 0 or not np.all(np.isfinite(radii_arr)) or radii_arr[0] <= 0:
        raise InvalidParameterError("radii must be a non-empty list of positive finite numbers")
    with torch_threads(None, dataset.n_samples * dataset.max_length):
        return _regularization_path(dataset, radii_arr, config, tol, max_iter)


def _regularization_path(
    dataset: Dataset, radii_arr: np.ndarray, config: AttentionConfig, tol: float, max_iter: int
) -> RegularizationPath:
    problem = _RidgeProblem(AttentionObjective(dataset, config))
    d = problem.d
    # With a strict priority somewhere (W_svm != 0) the loss has no minimiser and the ball binds
    # at every radius. Without one, the minimum-norm minimiser W* (= W_fin) solves every radius
    # >= ||W*||: Newton from zero with minimum-norm steps finds it.
    separable = build_priority_graphs(dataset).dag_src.size > 0
    w_star, star_norm = None, math.inf
    if not separable:
        w_star, _, _, _ = _ridge_newton(problem, np.zeros(d * d), 0.0, tol * 1e-2, max_iter)
        star_norm = float(np.linalg.norm(w_star))
    _, grad0 = problem.grad(np.zeros(d * d))
    g0 = max(float(np.linalg.norm(grad0)), 1e-300)
    w, lam = -radii_arr[0] * grad0 / g0, g0 / radii_arr[0]  # the solution for a small radius
    out_W, out_loss, out_lam, out_kkt, out_it = [], [], [], [], []
    for radius in radii_arr:
        if w_star is not None and radius >= star_norm:
            loss, grad = problem.grad(w_star)
            sol, sol_lam, kkt, its = w_star, 0.0, _kkt(grad, w_star, 0.0, float(radius)), 0
        else:
            sol, sol_lam, kkt, its = _solve_on_ball(problem, w, lam, float(radius), tol, max_iter)
            w, lam = sol, sol_lam
        out_W.append(sol.reshape(d, d))
        out_loss.append(problem.loss(sol))
        out_lam.append(sol_lam)
        out_kkt.append(kkt)
        out_it.append(its)
    kkt_arr = np.array(out_kkt)
    converged = kkt_arr <= tol
    if not converged.all():
        warnings.warn(
            f"regularization_path: KKT residual above tol={tol:g} at radii "
            f"{radii_arr[~converged].tolist()} (largest {kkt_arr.max():.2e}); at large radii the "
            "Hessian is nearly singular: use smaller radii or a looser tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    return RegularizationPath(
        radii=_copy_readonly(radii_arr),
        W=_copy_readonly(np.stack(out_W)),
        loss=_copy_readonly(np.array(out_loss)),
        multiplier=_copy_readonly(np.array(out_lam)),
        kkt_residual=_copy_readonly(kkt_arr),
        converged=_copy_readonly(converged),
        n_iter=_copy_readonly(np.array(out_it)),
        tol=float(tol),
    )
