"""Damped Newton's method for smooth convex problems, in numpy (the one Newton loop of attnmech).

:func:`damped_newton` minimises ``f(x) + ridge/2 ||x||^2`` given ``f``'s value, gradient and
Hessian. It is used by :func:`attnmech.theory.finite.solve_finite` (``W_fin`` on the coordinates of
``S_fin``, ``ridge = 0``) and by :func:`attnmech.regularization_path` (the ridge problems
``L(W) + lambda/2 ||W||^2`` whose multiplier is tuned to the ball's radius). The two callers
differ only in the constants of :class:`NewtonOptions` (the stopping test, when the line search
is skipped, what happens when it fails).

Each iteration: stop if ``residual(x, grad) <= tol``; the direction solves
``(H + ridge I) p = -(grad + ridge x)`` (``np.linalg.solve`` when ``ridge > 0``, the
minimum-norm ``lstsq`` step otherwise, so a singular ``H`` is fine); the gradient replaces it if it
is not a descent direction; then a backtracking (Armijo) line search halves the step, unless the
predicted decrease is below the rounding of the objective, where a line search cannot see
anything and the Newton step is taken (optionally capped).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["NewtonOptions", "NewtonResult", "damped_newton", "newton_direction"]

ValueGrad = Callable[[np.ndarray], tuple[float, np.ndarray]]
Hessian = Callable[[np.ndarray], np.ndarray]
Residual = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True, slots=True)
class NewtonOptions:
    """Constants of :func:`damped_newton`.

    Attributes
    ----------
    tol : float
        Stop when ``residual(x, grad f) <= tol``.
    max_iter : int
        Newton steps at most.
    armijo : float, default=1e-4
        Sufficient-decrease constant of the line search.
    max_halvings : int, default=40
        The line search tries step lengths ``1, 1/2, ..., 2**-max_halvings``.
    on_line_search_failure : {"accept", "stop"}, default="accept"
        When no tried length passes the Armijo test: take the last one anyway, or stop at ``x``.
    flat_rtol, flat_offset : float
        The line search is skipped (the Newton step is taken) when the predicted decrease
        ``-slope`` is at most ``flat_rtol * (flat_offset + |value|)``.
    flat_cap : float, default=inf
        Such an unchecked step is no longer than ``flat_cap * max(1, ||x||)``.
    stall_limit : int or None, default=None
        Stop when the residual has not halved for this many iterations (rounding has taken over).
    """

    tol: float
    max_iter: int
    armijo: float = 1e-4
    max_halvings: int = 40
    on_line_search_failure: Literal["accept", "stop"] = "accept"
    flat_rtol: float = 1e-13
    flat_offset: float = 1.0
    flat_cap: float = math.inf
    stall_limit: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class NewtonResult:
    """Outcome of :func:`damped_newton`.

    Attributes
    ----------
    x : ndarray
        Last iterate.
    value : float
        ``f(x)`` (without the ridge term).
    grad : ndarray
        ``grad f(x)`` (without the ridge term).
    hessian : ndarray
        Hessian of ``f`` at ``x``.
    residual : float
        ``residual(x, grad)`` at the last iterate.
    num_steps : int
        Newton steps taken (a failed line search with ``"stop"`` counts as one).
    reason : {"converged", "stalled", "line_search", "max_iter"}
        Why the loop stopped; ``converged`` means the residual test passed inside the loop.
    """

    x: np.ndarray
    value: float
    grad: np.ndarray
    hessian: np.ndarray
    residual: float
    num_steps: int
    reason: str

    @property
    def converged(self) -> bool:
        return self.reason == "converged"


def newton_direction(matrix: np.ndarray, rhs: np.ndarray, exact: bool) -> np.ndarray:
    """``matrix^{-1} rhs`` when ``exact`` and the matrix is invertible, else the minimum-norm
    least-squares solution (the right step for a singular, positive semi-definite matrix)."""
    if exact:
        try:
            return np.linalg.solve(matrix, rhs)
        except np.linalg.LinAlgError:
            pass
    return np.linalg.lstsq(matrix, rhs, rcond=None)[0]


def damped_newton(
    value_grad: ValueGrad,
    hessian: Hessian,
    x0: np.ndarray,
    residual: Residual,
    options: NewtonOptions,
    *,
    ridge: float = 0.0,
) -> NewtonResult:
    """Minimise ``f(x) + ridge/2 ||x||^2`` by damped Newton steps.

    Parameters
    ----------
    value_grad : callable
        ``value_grad(x) -> (f(x), grad f(x))``.
    hessian : callable
        ``hessian(x) -> ndarray of shape (n, n)``, the Hessian of ``f``.
    x0 : ndarray of shape (n,)
    residual : callable
        ``residual(x, grad f(x)) -> float``, compared with ``options.tol``.
    options : NewtonOptions
    ridge : float, default=0
        ``>= 0``; with ``ridge > 0`` the problem is strongly convex for a convex ``f``.

    Returns
    -------
    NewtonResult
    """
    x = x0
    n = x.size
    loss, grad = value_grad(x)
    hess = hessian(x)
    best, stalled = math.inf, 0
    for it in range(options.max_iter):
        res = residual(x, grad)
        if res <= options.tol:
            return NewtonResult(x, loss, grad, hess, res, it, "converged")
        if options.stall_limit is not None:
            best, stalled = (res, 0) if res < 0.5 * best else (best, stalled + 1)
            if stalled >= options.stall_limit:
                return NewtonResult(x, loss, grad, hess, res, it, "stalled")
        full = grad + ridge * x if ridge else grad
        matrix = hess + ridge * np.eye(n) if ridge else hess
        direction = -newton_direction(matrix, full, exact=ridge > 0)
        value = loss + 0.5 * ridge * float(x @ x) if ridge else loss
        slope = float(full @ direction)
        if slope >= 0:  # not a descent direction (rounding, or a non-convex f): use the gradient
            direction, slope = -full, -float(full @ full)
        if -slope <= options.flat_rtol * (options.flat_offset + abs(value)):
            # the predicted decrease is below what the objective's rounding lets a line search
            # see: trust the Newton step, no longer than flat_cap * max(1, ||x||) (a numerically
            # singular Hessian can make it huge)
            cap = options.flat_cap * max(1.0, float(np.linalg.norm(x)))
            length = float(np.linalg.norm(direction))
            trial = x + direction * min(1.0, cap / max(length, 1e-300))
            trial_loss, trial_grad = value_grad(trial)
        else:
            step = 1.0
            for halvings in range(options.max_halvings + 1):
                trial = x + step * direction
                trial_loss, trial_grad = value_grad(trial)
                trial_value = (
                    trial_loss + 0.5 * ridge * float(trial @ trial) if ridge else trial_loss
                )
                if trial_value <= value + options.armijo * step * slope:
                    break
                if halvings == options.max_halvings:  # no tried length passed
                    if options.on_line_search_failure == "stop":
                        return NewtonResult(x, loss, grad, hess, res, it + 1, "line_search")
                    break
                step *= 0.5
        x, loss, grad = trial, trial_loss, trial_grad
        hess = hessian(x)
    return NewtonResult(x, loss, grad, hess, residual(x, grad), options.max_iter, "max_iter")
