"""The memory a sweep plan needs, estimated from the spec alone before any work.

Every worker process holds, at its peak, the torch runtime (:data:`PROCESS_BYTES`) and one task:
its trials' working memory (:func:`attnmech.studies.sweeps.grid.estimate_trial_bytes`) and, when
the run records a trajectory (``at_steps``, ``steps_to_corr``, curves or a pruner), the history of
every logged step of every trial (the trainer's metrics, float64). With curves kept, the driver
also holds the curves of the tasks in flight (up to two per worker) until it has written them.
:func:`check_plan_memory` refuses a plan whose estimate exceeds the available memory (or
``ATTNMECH_MEMORY_LIMIT_GB``), naming the estimate, what is available and what to lower.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidParameterError
from .grid import Cell, Task, estimate_trial_bytes, needs_theory
from .spec import SweepSpec, train_metric_names

__all__ = [
    "PROCESS_BYTES",
    "PlanEstimate",
    "check_plan_memory",
    "estimate_plan_bytes",
    "largest_point",
]

PROCESS_BYTES = 256 << 20
"""Resident memory of one worker process before its first task (Python, numpy and torch)."""


@dataclass(frozen=True)
class PlanEstimate:
    """The estimated peak memory of a sweep plan.

    Attributes
    ----------
    total : int
        Bytes: ``workers * (PROCESS_BYTES + task) + driver``.
    workers : int
    task : int
        The largest task: its trials' working memory plus its logged history.
    trials : int
        Trials of that task.
    logged_steps : int
        Logged steps of that task's training (1 when only the end is kept).
    curves : bool
    driver : int
        The curves of the tasks in flight, held by the driver (0 without curves).
    """

    total: int
    workers: int
    task: int
    trials: int
    logged_steps: int
    curves: bool
    driver: int


def _logged_steps(spec: SweepSpec, cell: Cell, trajectory: bool) -> int:
    from ...layer.finite_path import count_log_steps

    if not trajectory:
        return 1
    return int(count_log_steps(int(cell.params["steps"]), int(spec.log_every)))


def estimate_plan_bytes(
    spec: SweepSpec,
    cells: list[Cell],
    tasks: list[Task],
    workers: int,
    *,
    trajectory: bool | None = None,
) -> PlanEstimate:
    """Estimate the peak memory of running ``tasks`` on ``workers`` processes (see the module
    docstring).

    ``trajectory`` says whether every logged step is kept (default: from the spec: at_steps,
    ``steps_to_corr`` or curves).
    """
    by_index = {c.index: c for c in cells}
    metrics = len(train_metric_names()) + 1  # every logged metric and the step
    largest = (0, 0, 1, 0)  # task bytes, trials, logged steps, curve bytes
    for task in tasks:
        cell0 = by_index[task.units[0][0]]
        wants = trajectory
        if wants is None:
            wants = bool(spec.at_steps) or "steps_to_corr" in cell0.metrics or spec.curves
        points = _logged_steps(spec, cell0, bool(wants))
        work = 0
        for cell_index, _ in task.units:
            cell = by_index[cell_index]
            work += max(estimate_trial_bytes(cell.params, needs_theory(cell.metrics)), 1)
        history = 8 * metrics * points * len(task.units)
        size = work + history
        if size > largest[0]:
            largest = (size, len(task.units), points, history if spec.curves else 0)
    task_bytes, trials, points, curve_bytes = largest
    driver = 2 * workers * curve_bytes
    total = workers * (PROCESS_BYTES + task_bytes) + driver
    return PlanEstimate(total, workers, task_bytes, trials, points, bool(spec.curves), driver)


def memory_limit() -> int:
    """Bytes a plan may use: ``ATTNMECH_MEMORY_LIMIT_GB`` when set, else the available memory."""
    from ..._io import available_memory

    env = os.environ.get("ATTNMECH_MEMORY_LIMIT_GB")
    if env:
        try:
            return int(float(env) * 2**30)
        except ValueError:
            pass
    return available_memory()


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB" if value >= 2**28 else f"{value / 2**20:.0f} MiB"


def check_plan_memory(estimate: PlanEstimate, *, what: str = "this sweep") -> None:
    """Refuse a plan whose estimate exceeds :func:`memory_limit`, before any work.

    Raises
    ------
    InvalidParameterError
        Naming the estimate, its parts, the memory available and the option to lower.
    """
    have = memory_limit()
    if estimate.total <= have:
        return
    advice: list[str] = []
    if estimate.workers > 1:
        advice.append("--workers")
    if estimate.trials > 1:
        advice.append("sweep.batch_trials (trials per task)")
    if estimate.logged_steps > 1:
        advice.append("steps, or raise sweep.log_every (fewer logged steps)")
    if estimate.curves:
        advice.append("drop --curves")
    parts: list[Any] = [
        f"{estimate.workers} worker(s) x ({_gib(PROCESS_BYTES)} per process + "
        f"{_gib(estimate.task)} for a task of {estimate.trials} trial(s) x "
        f"{estimate.logged_steps:,} logged step(s))"
    ]
    if estimate.driver:
        parts.append(f"{_gib(estimate.driver)} of curves in flight")
    raise InvalidParameterError(
        f"{what} needs about {_gib(estimate.total)} ({' + '.join(map(str, parts))}) but "
        f"{_gib(have)} is available; lower {', '.join(advice) or 'the sizes (n, T, d)'}"
    )


def largest_point(spec: Any) -> tuple[list[Cell], list[Task]]:
    """The largest point of a search's space (every numeric axis at its upper bound) as one cell
    and one task: what each search trial's memory is estimated from."""
    grid = spec.sweep.grids[0]
    params = dict(grid.fixed)
    for name, (_, values) in spec.space.items():
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        params[name] = max(numbers) if len(numbers) == len(values) else values[0]
    cell = Cell(0, grid.name, params, grid.metrics)
    return [cell], [Task("largest", tuple((0, t) for t in range(cell.trials)))]
