"""Status codes and run statistics shared by the solvers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SolveStatus", "SolverStats", "readonly", "frozen"]


class SolveStatus(enum.Enum):
    """Outcome of a solve.

    ``OPTIMAL``: every tolerance met. ``INACCURATE``: a solution is returned but some tolerance was
    missed (a :class:`~attnmech.errors.ConvergenceWarning` is issued). ``INFEASIBLE``: no solution
    exists (the solver raises :class:`~attnmech.errors.InfeasibleProblemError` instead of
    returning).
    """

    OPTIMAL = "optimal"
    INACCURATE = "inaccurate"
    INFEASIBLE = "infeasible"


@dataclass(frozen=True, slots=True)
class SolverStats:
    """Run statistics of a solve, kept apart from the solution itself."""

    solver_name: str
    solve_time: float  # seconds, whole call
    setup_time: float  # seconds spent building the problem
    num_iters: int
    extra_stats: dict[str, Any] = field(default_factory=dict)


class SolvedMixin:
    """``success`` of a frozen result dataclass (shared by the dense and token-space results)."""

    __slots__ = ()
    status: SolveStatus

    @property
    def success(self) -> bool:
        return self.status is SolveStatus.OPTIMAL


def frozen(array: Any) -> np.ndarray:
    """``array`` as a C-contiguous array (copied only if needed) with ``writeable`` switched off."""
    out = np.ascontiguousarray(array)
    out.flags.writeable = False
    return out


def readonly(array: Any, dtype: Any = None) -> np.ndarray:
    """A C-contiguous copy of ``array`` with ``writeable`` switched off."""
    out = np.array(array, dtype=dtype, copy=True, order="C")
    out.flags.writeable = False
    return out
