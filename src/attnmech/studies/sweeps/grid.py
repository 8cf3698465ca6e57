"""Cells, seeds and tasks: how a sweep file becomes units of batched work.

A *cell* is one point of a grid: every dataset and training parameter fixed. Each cell has
``trials`` trials; a trial is a fresh dataset and a fresh initialisation, with seeds derived from
the sweep's seed and the parameters that shape them (not from the cell's position), so two cells
that differ only in a training parameter (the optimiser, say) train on the same datasets from the
same initialisations: comparisons between them are paired.

A *task* is the work one process does in one go: trials of cells that share K, d and every
training option (optimiser, learning rate, steps, head, loss, parameterization, init), trained in
one batched :func:`attnmech.train` call (datasets of different n and T are padded into one
batch). The task list depends only on the sweep file, never on the number of workers or on what
is already done, so a resumed sweep and a sweep on another backend train exactly the same
batches and produce the same numbers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidParameterError
from .spec import (
    DATA_METRICS,
    DATASET_PARAMS,
    DEFAULT_SVM_NORM,
    TRAIN_PARAMS,
    SweepSpec,
    metric_column,
    train_metric_names,
)

__all__ = [
    "Cell",
    "Task",
    "expand_cells",
    "plan_tasks",
    "dataset_seed",
    "init_seed",
    "result_columns",
    "TASK_MEMORY_BYTES",
]

TASK_MEMORY_BYTES = 1 << 29  # a task's estimated working memory stays under 512 MiB
# what must be equal for trials to share one batched training call: the trainer needs one K and d;
# datasets of different n and T are padded (exact zeros: the attention of padding is 0)
_BATCH_KEYS = (
    "K",
    "d",
    "optimizer",
    "lr",
    "steps",
    "head",
    "loss",
    "parameterization",
    "init",
    "schedule",
)


@dataclass(frozen=True)
class Cell:
    """One point of a grid.

    Attributes
    ----------
    index : int
        Position in the sweep (grids in file order, then axes in file order, last axis fastest).
    grid : str
    params : dict
        Every parameter of :data:`attnmech.studies.sweeps.spec.PARAM_DEFAULTS`.
    metrics : tuple of str
    """

    index: int
    grid: str
    params: dict[str, Any]
    metrics: tuple[str, ...]

    @property
    def trials(self) -> int:
        """Number of trials, ``params["trials"]``."""
        return int(self.params["trials"])


@dataclass(frozen=True)
class Task:
    """Trials of cells with equal shapes and training options, trained in one batch.

    Attributes
    ----------
    task_id : str
        Stable name (a hash of the units): the file its rows are stored in.
    units : tuple of (cell index, trial)
    """

    task_id: str
    units: tuple[tuple[int, int], ...]


def _digest_int(*parts: Any) -> int:
    raw = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()
    return int.from_bytes(raw[:8], "little") & ((1 << 63) - 1)


def dataset_seed(seed: int, params: dict[str, Any], trial: int) -> int:
    """Seed of a trial's dataset: from the sweep seed, the dataset parameters and the trial."""
    return _digest_int(seed, "dataset", {k: params[k] for k in DATASET_PARAMS}, trial)


def init_seed(seed: int, params: dict[str, Any], trial: int) -> int:
    """Seed of a trial's initialisation: depends on the sweep seed, d, the parameterization, the
    init kind and the trial."""
    keys = ("d", "parameterization", "init")
    return _digest_int(seed, "init", {k: params[k] for k in keys}, trial)


def expand_cells(spec: SweepSpec) -> list[Cell]:
    """Every cell of every grid, in a fixed order."""
    cells: list[Cell] = []
    for grid in spec.grids:
        names = list(grid.axes)
        for values in itertools.product(*(grid.axes[name] for name in names)):
            params = dict(grid.fixed)
            params.update(zip(names, values, strict=True))
            cells.append(Cell(len(cells), grid.name, params, grid.metrics))
    return cells


TRIAL_MEMORY_LIMIT = 1 << 32  # a single trial estimated above 4 GiB is refused before running


def estimate_trial_bytes(params: dict[str, Any], theory: bool = True) -> int:
    """Rough working memory of one trial in a batch (float64): the padded inputs and their
    attention, the parameters and optimiser state, and (with theory metrics) the finite-part
    basis (at most d^2 matrices of d x d, bounded by the number of priority edges)."""
    n, T, K, d = params["n"], params["T"], params["K"], params["d"]
    inputs = n * T * (d + K + 8)
    basis = min(d * d, n * T * K) * d * d if theory else 0
    return 8 * (inputs + 12 * d * d + basis)


def plan_tasks(spec: SweepSpec, cells: list[Cell]) -> list[Task]:
    """Group the trials of cells with equal shapes and options into batches.

    Batches hold at most ``spec.batch_trials`` trials and at most :data:`TASK_MEMORY_BYTES` of
    estimated memory; a cell with more trials than fit is split across tasks.
    """
    groups: dict[str, list[tuple[int, int]]] = {}
    limits: dict[str, int] = {}
    for cell in cells:
        shape = [cell.params[k] for k in _BATCH_KEYS]
        if cell.params.get("svm_norm", DEFAULT_SVM_NORM) != DEFAULT_SVM_NORM:
            shape.append(["svm_norm", cell.params["svm_norm"]])  # (keeps older task ids)
        key = json.dumps([cell.grid, cell.metrics, shape], sort_keys=True)
        groups.setdefault(key, []).extend((cell.index, t) for t in range(cell.trials))
        # the largest n, T of the group sets the batch size
        per_trial = max(estimate_trial_bytes(cell.params, needs_theory(cell.metrics)), 1)
        if per_trial > TRIAL_MEMORY_LIMIT:
            shown = {k: cell.params[k] for k in ("n", "T", "K", "d")}
            raise InvalidParameterError(
                f"cell {cell.index} of grid {cell.grid!r} ({shown}) needs about "
                f"{per_trial / 2**30:.1f} GiB per trial (the limit is "
                f"{TRIAL_MEMORY_LIMIT / 2**30:.0f} GiB; the theory metrics keep the finite-part "
                "basis of d^2 matrices of d x d); lower d or n, or record only loss/norm/cyclic"
            )
        limit = max(1, min(spec.batch_trials, TASK_MEMORY_BYTES // per_trial))
        limits[key] = min(limits.get(key, limit), limit)
    tasks: list[Task] = []
    for key, units in groups.items():
        size = limits[key]
        count = math.ceil(len(units) / size)
        for i in range(count):
            chunk = tuple(units[i * size : (i + 1) * size])
            tasks.append(Task(f"{_digest_int(key, chunk):016x}", chunk))
    return tasks


def needs_training(metrics: tuple[str, ...], at_steps: tuple[int, ...]) -> bool:
    """Whether any requested metric comes from a training run."""
    trained = set(train_metric_names()) | {"steps_to_corr"}
    return any(m in trained for m in metrics)


def needs_theory(metrics: tuple[str, ...]) -> bool:
    """Whether any requested metric needs ``W_svm`` / ``W_fin``."""
    plain = {"loss", "norm", "grad_norm", "cyclic"}
    return any(m not in plain for m in metrics)


def result_columns(spec: SweepSpec) -> list[str]:
    """The table's columns: cell, grid, trial, parameters, seeds, metrics, error."""
    params = [*DATASET_PARAMS, *(p for p in TRAIN_PARAMS if p != "trials")]
    metrics: list[str] = []
    for grid in spec.grids:
        for m in grid.metrics:
            if m not in metrics:
                metrics.append(m)
    at = [
        f"{metric_column(m)}@{s}"
        for m in metrics
        if m in train_metric_names()
        for s in spec.at_steps
    ]
    return [
        "cell",
        "grid",
        "trial",
        *params,
        "dataset_seed",
        "init_seed",
        "fingerprint",
        *(metric_column(m) for m in metrics),
        *at,
        "train_time_s",
        "warning",
        "error",
    ]


INTEGER_COLUMNS = {
    "cell", "trial", "n", "T", "K", "d", "steps", "dataset_seed", "init_seed", "search_trial"
}
NUMERIC_COLUMNS = (
    INTEGER_COLUMNS | {"rho", "lr", "train_time_s", "search_value"} | set(DATA_METRICS)
)
