"""The driver of a search that owns its study: ``attnmech search --backend ray``, and the trials
a killed run left behind.

With the Ray backend this process alone asks the Optuna study (the journal in the output folder)
for points, runs each as a Ray task (:func:`evaluate_point`) and tells the study the result
(:func:`_record_point`: rows, curves, the SQLite record, reported values, halving rungs and the
final state). A pruner decides inside the task, against a snapshot of the study's finished trials
(:func:`_snapshot`). On ``--resume``, a trial the journal still shows ``RUNNING`` was left by a
killed run (the folder's lock rules out a live one): it is evaluated again with its stored
parameters, on either backend (:func:`_rerun_stale`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .grid import Cell, Task
from .search_study import (
    JOURNAL,
    SearchSpec,
    _aggregate,
    _optuna,
    _pruner,
    _sampler,
    _storage,
    _suggest,
)
from .spec import metric_column
from .store import SweepStore

__all__ = ["evaluate_point"]


def _objective_column(spec: SearchSpec) -> str:
    """The row column the objective reads (``corr_svm`` or ``corr_svm@500``)."""
    metric = spec.objective.split("@", 1)[0]
    return metric_column(metric) + (
        "@" + spec.objective.split("@")[1] if "@" in spec.objective else ""
    )


def _history_name(spec: SearchSpec) -> str:
    """The training-history key of the objective's metric (what the pruner is reported)."""
    metric = spec.objective.split("@", 1)[0]
    return next((m for m in spec.sweep.grids[0].metrics if metric_column(m) == metric), metric)


def _pruning_report(
    spec: SearchSpec, trial: Any, pruned: list[int], reported: list[tuple[int, float]] | None = None
) -> Callable[[int, dict[str, np.ndarray]], bool]:
    """The training callback that reports the objective's metric to the Optuna ``trial`` at
    each logged step (and to ``reported``), appends the step to ``pruned`` and stops the
    training when the pruner says so."""
    history_name = _history_name(spec)

    def report(step: int, metrics: dict[str, np.ndarray]) -> bool:
        if history_name not in metrics:
            return False
        value = _aggregate(np.asarray(metrics[history_name]), spec.stat)
        if not math.isfinite(value):
            return False
        trial.report(value, step)
        if reported is not None:
            reported.append((int(step), value))
        if trial.should_prune():
            pruned.append(int(step))
            return True
        return False

    return report


def _point_task(number: int, grid_name: str, params: dict[str, Any], metrics: tuple[str, ...]):
    """The cell and task of Optuna trial ``number`` at ``params`` (the ids the local backend
    uses too)."""
    cell = Cell(number, grid_name, params, metrics)
    task = Task(f"t{number:06d}", tuple((number, t) for t in range(cell.trials)))
    return cell, task


def evaluate_point(
    number: int,
    params: dict[str, Any],
    spec: SearchSpec,
    others: list[Any] | None = None,
    *,
    limit_threads: bool = True,
) -> tuple[Any, list[tuple[int, float]], int | None, dict[str, Any]]:
    """Train one search point (a Ray task of ``attnmech search --backend ray``).

    With a pruner, ``others`` are the study's finished trials when the point was submitted
    (their intermediate values and halving rungs): a private in-memory study holding them decides
    at every logged step whether to stop, as the study itself would (the rows then hold the
    values of that step, as on the local backend).

    Returns
    -------
    (TaskOutcome, reported, pruned_step, rungs)
        The rows and curves (an error becomes a failed outcome); the (step, value) pairs
        reported; the step the pruner stopped at (None: it ran to the end); the pruner's
        ``completed_rung_*`` attributes of the trial. With ``limit_threads`` (a worker
        process) torch and BLAS are set to one thread first.
    """
    from .backends import on_node
    from .runner import _attempt, _limit_threads

    if limit_threads:
        _limit_threads()
    sweep = spec.sweep
    grid = sweep.grids[0]
    full = dict(grid.fixed)
    full.update(params)
    cell, task = _point_task(number, grid.name, full, grid.metrics)
    reported: list[tuple[int, float]] = []
    pruned: list[int] = []
    callback = None
    trial: Any = None
    local: Any = None
    if others is not None and spec.pruner != "none":
        optuna = _optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        local = optuna.create_study(direction=spec.direction, pruner=_pruner(optuna, spec))
        for frozen in others:
            local.add_trial(frozen)
        trial = local.ask()
        callback = _pruning_report(spec, trial, pruned, reported)

    # one point's failure must not end the search: an exception becomes a failed outcome
    outcome = _attempt(task, sweep, {cell.index: cell}, None, callback)
    if outcome.rows is None:
        return outcome, reported, None, {}
    outcome = on_node(outcome)
    rungs: dict[str, Any] = {}
    if trial is not None:
        attrs = local._storage.get_trial(trial._trial_id).system_attrs
        rungs = {k: v for k, v in attrs.items() if k.startswith("completed_rung_")}
    return outcome, reported, pruned[0] if pruned else None, rungs


def _snapshot(optuna: Any, study: Any) -> list[Any]:
    """The study's finished trials as parameter-free copies: what a pruner compares against."""
    TS = optuna.trial.TrialState
    out = []
    for t in study.get_trials(deepcopy=False, states=(TS.COMPLETE, TS.PRUNED)):
        out.append(
            optuna.trial.create_trial(
                state=t.state,
                value=t.value if t.state == TS.COMPLETE else None,
                intermediate_values=dict(t.intermediate_values),
                system_attrs={
                    k: v for k, v in t.system_attrs.items() if k.startswith("completed_rung_")
                },
                params={},
                distributions={},
            )
        )
    return out


def _search_on_ray(
    spec: SearchSpec,
    root: Path,
    budget: int,
    workers: int,
    address: str | None,
    connect_timeout: float,
    report: Any,
) -> None:
    """The driver of a search on Ray: it alone owns the study (ask / tell on the journal) and the
    folder; each point is a Ray task. Trials left running by a killed driver are evaluated again
    with their stored parameters (their rows replace any part they left)."""
    from .backends import connect_ray

    optuna, study, store, columns = _open_study(spec, root)
    TS = optuna.trial.TrialState
    started_here = connect_ray(address, workers, connect_timeout)
    import ray

    try:
        remote = ray.remote(num_cpus=1, max_retries=max(3, spec.sweep.retries))(evaluate_point)
        spec_ref = ray.put(spec)
        pending: dict[Any, tuple[int, Any]] = {}
        limit = max(1, workers, int(ray.cluster_resources().get("CPU", 1)))
        pruning = spec.pruner != "none"

        def submit(number: int, params: dict[str, Any], trial: Any) -> None:
            others = _snapshot(optuna, study) if pruning else None
            pending[remote.remote(number, params, spec_ref, others)] = (number, trial)

        for stale in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
            if set(stale.params) != set(spec.space):  # killed between ask and its suggestions
                report.message(f"search: trial {stale.number} was left without its parameters")
                study.tell(stale.number, state=TS.FAIL)
                continue
            report.message(f"search: trial {stale.number} was left running; evaluating it again")
            submit(stale.number, dict(stale.params), optuna.trial.Trial(study, stale._trial_id))
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit and len(study.trials) < budget:
                if spec.sampler == "grid" and study.sampler.is_exhausted(study):
                    exhausted = True
                    break
                trial = study.ask()
                submit(trial.number, _suggest(trial, spec), trial)
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                number, trial = pending.pop(ref)
                try:
                    result: Any = ray.get(ref)
                except Exception as exc:  # the worker died more often than Ray retried it
                    result = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                _record_point(optuna, study, store, columns, spec, number, trial, result, report)
    finally:
        if started_here:
            ray.shutdown()


def _record_point(
    optuna: Any,
    study: Any,
    store: SweepStore,
    columns: list[str],
    spec: SearchSpec,
    number: int,
    trial: Any,
    result: Any,
    report: Any,
) -> None:
    """Store one evaluated point (the result of :func:`evaluate_point`, or the error text of a
    task that could not run): its rows, curves and SQLite record, and in the study its reported
    values, halving rungs and final state (complete, pruned or failed)."""
    TS = optuna.trial.TrialState
    task_id = f"t{number:06d}"
    if isinstance(result, str):
        outcome, reported, pruned_at, rungs, error = None, [], None, {}, result
    else:
        outcome, reported, pruned_at, rungs = result
        error = outcome.error
    for step, reported_value in reported:  # what the pruner saw, into the journal
        trial.report(reported_value, step)
    for key, rung_value in rungs.items():
        study._storage.set_trial_system_attr(trial._trial_id, key, rung_value)
    if outcome is None or outcome.rows is None:
        store.record_task(
            task_id, columns, [], status="failed", attempts=1, seconds=0.0, error=error
        )
        study.tell(number, state=TS.FAIL)
        report.message(f"search: trial {number} failed: {error}")
        return
    rows = outcome.rows
    value = _aggregate(
        np.array([r.get(_objective_column(spec), math.nan) for r in rows], float), spec.stat
    )
    state = "pruned" if pruned_at is not None else "complete"
    for row in rows:
        row.update(search_trial=number, search_state=state, search_value=value)
    if outcome.curves is not None:
        store.write_curves(task_id, outcome.curves)
    store.write_part(task_id, columns, rows)
    store.record_task(
        task_id, columns, rows, status=state, attempts=1, seconds=outcome.seconds, node=outcome.node
    )
    if pruned_at is not None:
        study.tell(number, state=TS.PRUNED)
    elif math.isfinite(value):
        study.tell(number, value)
    else:  # as Optuna's optimize() does with a NaN objective
        study.tell(number, state=TS.FAIL)


def _rerun_stale(spec: SearchSpec, root: Path, report: Any) -> None:
    """Local backend: evaluate again, in this process, the trials a killed run left RUNNING (the
    caller holds the folder's lock, so nobody else is running them)."""
    from ...layer.model import torch_threads

    optuna, study, store, columns = _open_study(spec, root)
    TS = optuna.trial.TrialState
    for stale in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
        if set(stale.params) != set(spec.space):
            report.message(f"search: trial {stale.number} was left without its parameters")
            study.tell(stale.number, state=TS.FAIL)
            continue
        report.message(f"search: trial {stale.number} was left running; evaluating it again")
        others = _snapshot(optuna, study) if spec.pruner != "none" else None
        with torch_threads(1):
            result = evaluate_point(
                stale.number, dict(stale.params), spec, others, limit_threads=False
            )
        trial = optuna.trial.Trial(study, stale._trial_id)
        _record_point(optuna, study, store, columns, spec, stale.number, trial, result, report)


def _open_study(spec: SearchSpec, root: Path) -> tuple[Any, Any, SweepStore, list[str]]:
    """Optuna, the search's study loaded from its journal (ask/tell sampler), its store and the
    store's columns: what the Ray driver and the local re-run of stale trials both start from."""
    optuna = _optuna()
    study = optuna.load_study(
        study_name=spec.sweep.name,
        storage=_storage(optuna, root / JOURNAL),
        sampler=_sampler(optuna, spec, ask_tell=True),
        pruner=_pruner(optuna, spec),
    )
    store = SweepStore(root)
    return optuna, study, store, store.manifest()["columns"]
