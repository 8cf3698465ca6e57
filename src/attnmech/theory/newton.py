"""Damped Newton's method for smooth convex problems, in numpy (the one Newton loop of attnmech).

:func:`damped_newton` minimises ``f(x) + ridge/2 ||x||^2`` given ``f``'s value, gradient and
Hessian. It is used by :func:`attnmech.theory.finite.solve_finite` (``W_fin`` on the coordinates of
``S_fin``, ``ridge = 0``) and by :func:`attnmech.regularization_path` (the ridge problems
``L(W) + lambda/2 ||W||^2`` whose multiplier is tuned to the ball's radius), and by
:func:`attnmech.theory.tokenspace.solve_token_finite` (``W_fin`` in token space, a sum of one
log-loss per SCC: ``groups=`` gives each SCC its own line search, and ``direction=`` the batched
per-SCC Newton solves). The callers differ only in the constants of :class:`NewtonOptions` (the
stopping test, when the line search is skipped, what happens when it fails) and in those two
arguments.

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
from typing import Any, Literal

import numpy as np

__all__ = ["NewtonOptions", "NewtonResult", "damped_newton", "newton_direction"]

ValueGrad = Callable[[np.ndarray], tuple[Any, np.ndarray]]  # (float, or per-group values)
Hessian = Callable[[np.ndarray], Any]
Residual = Callable[[np.ndarray, np.ndarray], float]
Direction = Callable[[Any, np.ndarray], np.ndarray]


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
        """Whether the solver stopped because it converged (``reason == "converged"``)."""
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
    groups: np.ndarray | None = None,
    direction: Direction | None = None,
) -> NewtonResult:
    """Minimise ``f(x) + ridge/2 ||x||^2`` by damped Newton steps.

    Parameters
    ----------
    value_grad : callable
        ``value_grad(x) -> (f(x), grad f(x))``; with ``groups``, ``f(x)`` is the array of the
        groups' values (``f`` is their sum).
    hessian : callable
        ``hessian(x) -> H``, the Hessian of ``f`` (any object ``direction`` understands).
    x0 : ndarray of shape (n,)
    residual : callable
        ``residual(x, grad f(x)) -> float``, compared with ``options.tol``.
    options : NewtonOptions
    ridge : float, default=0
        ``>= 0``; with ``ridge > 0`` the problem is strongly convex for a convex ``f``.
    groups : ndarray of int of shape (n,), optional
        A separable ``f = sum_g f_g(x_g)`` (``groups[v]``: the group of variable ``v``, values
        ``0 .. G - 1``): the slope, the flatness test and the Armijo line search are per group,
        each with its own step length, all groups evaluated together. Needs ``direction``,
        ``ridge = 0``, ``flat_cap = inf`` and ``on_line_search_failure = "accept"``.
    direction : callable, optional
        ``direction(H, grad) -> p``, the Newton direction (descent); default
        ``-newton_direction(H + ridge I, grad + ridge x)``.

    Returns
    -------
    NewtonResult
    """
    if groups is not None:
        return _grouped(value_grad, hessian, x0, residual, options, groups, direction)
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
        if direction is not None:
            step_dir = direction(hess, full)
        else:
            matrix = hess + ridge * np.eye(n) if ridge else hess
            step_dir = -newton_direction(matrix, full, exact=ridge > 0)
        value = loss + 0.5 * ridge * float(x @ x) if ridge else loss
        slope = float(full @ step_dir)
        if slope >= 0:  # not a descent direction (rounding, or a non-convex f): use the gradient
            step_dir, slope = -full, -float(full @ full)
        if -slope <= options.flat_rtol * (options.flat_offset + abs(value)):
            # the predicted decrease is below what the objective's rounding lets a line search
            # see: trust the Newton step, no longer than flat_cap * max(1, ||x||) (a numerically
            # singular Hessian can make it huge)
            cap = options.flat_cap * max(1.0, float(np.linalg.norm(x)))
            length = float(np.linalg.norm(step_dir))
            trial = x + step_dir * min(1.0, cap / max(length, 1e-300))
            trial_loss, trial_grad = value_grad(trial)
        else:
            step = 1.0
            for halvings in range(options.max_halvings + 1):
                trial = x + step * step_dir
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


def _grouped(
    value_grad: Callable[[np.ndarray], tuple[Any, np.ndarray]],
    hessian: Callable[[np.ndarray], Any],
    x0: np.ndarray,
    residual: Residual,
    options: NewtonOptions,
    groups: np.ndarray,
    direction: Direction | None,
) -> NewtonResult:
    """:func:`damped_newton` on a separable ``f``: the same steps, one line search per group."""
    if direction is None or options.on_line_search_failure != "accept":
        raise ValueError(
            "grouped damped_newton needs direction= and on_line_search_failure='accept'"
        )
    if options.flat_cap != math.inf:
        raise ValueError("grouped damped_newton does not cap flat steps (flat_cap must be inf)")
    n_groups = int(groups.max()) + 1 if groups.size else 0
    shortest = 2.0**-options.max_halvings
    x = x0
    values, grad = value_grad(x)
    hess: Any = None
    best, stalled = math.inf, 0
    for it in range(options.max_iter):
        res = residual(x, grad)
        if res <= options.tol:
            return NewtonResult(x, float(values.sum()), grad, hess, res, it, "converged")
        if options.stall_limit is not None:
            best, stalled = (res, 0) if res < 0.5 * best else (best, stalled + 1)
            if stalled >= options.stall_limit:
                return NewtonResult(x, float(values.sum()), grad, hess, res, it, "stalled")
        hess = hessian(x)
        step_dir = direction(hess, grad)
        slope = np.bincount(groups, grad * step_dir, n_groups)
        bad = slope >= 0  # not a descent direction (round-off): use the gradient there
        if bad.any():
            use_grad = bad[groups]
            step_dir[use_grad] = -grad[use_grad]
            slope = np.bincount(groups, grad * step_dir, n_groups)
        alpha = np.ones(n_groups)
        flat = -slope <= options.flat_rtol * (options.flat_offset + np.abs(values))
        while True:
            trial = x + alpha[groups] * step_dir
            t_values, t_grad = value_grad(trial)
            ok = flat | (t_values <= values + options.armijo * alpha * slope) | (alpha <= shortest)
            if ok.all():
                break
            alpha = np.where(ok, alpha, 0.5 * alpha)
        x, values, grad = trial, t_values, t_grad
    res = residual(x, grad)
    return NewtonResult(x, float(values.sum()), grad, hess, res, options.max_iter, "max_iter")
