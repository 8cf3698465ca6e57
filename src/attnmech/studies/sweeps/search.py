"""Adaptive search over a sweep's parameters, on Optuna: ``attnmech search SPEC.toml --out DIR``.

A search file is a sweep file (:mod:`attnmech.studies.sweeps.spec`) with a ``[search]`` table,
and axes that may be distributions as well as lists::

    [search]
    objective = "corr_svm"      # a metric column, or "corr_svm@500" (an at_steps column)
    direction = "maximize"      # or "minimize"
    sampler = "tpe"             # tpe, grid, cmaes, random
    budget = 20                 # Optuna trials (each one point, ``sweep.trials`` datasets)
    pruner = "median"           # none, median, halving (successive halving)
    stat = "mean"               # how a point's trials become one value: mean, median, min, max

    [axes]
    optimizer = ["gd", "ngd"]               # a list: a categorical choice (a grid axis)
    lr = { log-uniform = [1e-3, 1.0] }      # log-uniform real in [low, high]
    d = { int = [4, 12] }                   # integer in [low, high]
    head = { choice = ["iden", "gen"] }     # the same as a list

Each Optuna trial is one point of the space: ``sweep.trials`` datasets and initialisations
(seeded from the point's dataset parameters, so points that share them train on the same data),
trained in one batched call. With a pruner, the objective's metric is reported at every logged
step of the training (``sweep.log_every``) and a trial the pruner stops keeps the values of the
step it stopped at (``search_state`` = ``pruned``). The study lives in a journal file
(``DIR/journal.log``, no server): ``--resume`` continues it up to ``budget`` trials. The rows go
into the same store as a sweep's (one part per Optuna trial, ``cell`` = the trial's number), so
:func:`~attnmech.studies.sweeps.load_results`, ``plot-sweep`` and ``sweep-status`` read it.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FileFormatError, InvalidParameterError
from .grid import result_columns
from .search_study import (
    DIRECTIONS,
    DISTRIBUTIONS,
    JOURNAL,
    PRUNERS,
    SAMPLERS,
    SEARCH_COLUMNS,
    STATS,
    SearchSpec,
    _aggregate,
    _optuna,
    _pruner,
    _sampler,
    _storage,
    _suggest,
)
from .spec import metric_column, spec_from_data
from .store import SweepStore

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SearchSpec", "SearchResult", "load_search_spec", "parse_search_spec", "run_search"]

_SEARCH_KEYS = {"objective", "direction", "sampler", "budget", "pruner", "stat"}


def _fail(path: str, key: str, message: str) -> FileFormatError:
    return FileFormatError(f"search file {path}: key '{key}': {message}", path=path)


def parse_search_spec(text: str, path: str = "<string>") -> SearchSpec:
    """Validate the text of a search file (see the module docstring).

    Raises
    ------
    FileFormatError
        Naming the key and what to write instead.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"search file {path} is not valid TOML: {exc}", path=path) from None
    search = data.pop("search", None)
    if not isinstance(search, dict):
        raise _fail(path, "search", "a search file needs a [search] table (objective, budget)")
    for key in search:
        if key not in _SEARCH_KEYS:
            raise _fail(path, f"search.{key}", f"unknown key; allowed: {sorted(_SEARCH_KEYS)}")
    if "grid" in data:
        raise _fail(path, "grid", "a search has one space: use [axes], not [[grid]]")
    axes = data.get("axes")
    if not isinstance(axes, dict) or not axes:
        raise _fail(path, "axes", "a search needs an [axes] table with at least one axis")
    space: dict[str, tuple[str, Any]] = {}
    plain_axes: dict[str, list[Any]] = {}
    for name, value in axes.items():
        key = f"axes.{name}"
        if isinstance(value, list):
            space[name] = ("choice", tuple(value))
            plain_axes[name] = value
            continue
        if not isinstance(value, dict) or len(value) != 1:
            raise _fail(
                path,
                key,
                "an axis is a list, or one of {log-uniform = [low, high]}, "
                "{int = [low, high]}, {choice = [...]}",
            )
        ((kind, args),) = value.items()
        if kind not in DISTRIBUTIONS:
            raise _fail(path, f"{key}.{kind}", f"unknown distribution; use one of {DISTRIBUTIONS}")
        if not isinstance(args, list) or not args:
            raise _fail(path, f"{key}.{kind}", "must be a non-empty list")
        if kind == "choice":
            space[name] = ("choice", tuple(args))
        else:
            if len(args) != 2 or not args[0] < args[1]:
                raise _fail(
                    path, f"{key}.{kind}", f"must be [low, high] with low < high, got {args}"
                )
            if kind == "log-uniform" and args[0] <= 0:
                raise _fail(path, f"{key}.{kind}", "log-uniform needs low > 0")
            if kind == "int" and not all(
                isinstance(a, int) and not isinstance(a, bool) for a in args
            ):
                raise _fail(path, f"{key}.{kind}", f"bounds must be integers, got {args}")
            space[name] = (kind, (args[0], args[1]))
        plain_axes[name] = list(args)  # validated as values by the sweep parser
    data["axes"] = plain_axes
    sweep = spec_from_data(data, text, path)  # checks every key, value and metric
    metrics = sweep.grids[0].metrics
    objective = search.get("objective", metrics[0])
    column_names = {metric_column(m) for m in metrics}
    base = str(objective).split("@", 1)
    if base[0] not in column_names and base[0] not in metrics:
        raise _fail(
            path,
            "search.objective",
            f"{objective!r} is not a recorded metric; add it to sweep.metrics ({list(metrics)})",
        )
    if len(base) == 2 and (not base[1].isdigit() or int(base[1]) not in sweep.at_steps):
        raise _fail(path, "search.objective", f"{objective!r}: the step must be in sweep.at_steps")
    options: dict[str, Any] = {}
    for key, allowed, default in (
        ("direction", DIRECTIONS, "maximize"),
        ("sampler", SAMPLERS, "tpe"),
        ("pruner", PRUNERS, "none"),
        ("stat", STATS, "mean"),
    ):
        value = search.get(key, default)
        if value not in allowed:
            raise _fail(
                path, f"search.{key}", f"must be one of {', '.join(allowed)}, got {value!r}"
            )
        options[key] = value
    budget = search.get("budget", 20)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise _fail(path, "search.budget", f"must be an integer >= 1, got {budget!r}")
    if options["sampler"] == "grid" and any(k != "choice" for k, _ in space.values()):
        raise _fail(path, "search.sampler", "the grid sampler needs lists (choices) only")
    if options["sampler"] == "cmaes" and all(k == "choice" for k, _ in space.values()):
        raise _fail(path, "search.sampler", "cmaes needs at least one log-uniform or int axis")
    return SearchSpec(sweep, space, str(objective), budget=budget, **options)


def load_search_spec(path: str | os.PathLike[str]) -> SearchSpec:
    """Read and validate a search file; see :func:`parse_search_spec`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"cannot read search file {p}: {exc}", path=str(p)) from None
    return parse_search_spec(text, str(p))


@dataclass(frozen=True)
class SearchResult:
    """What :func:`run_search` did.

    Attributes
    ----------
    out_dir : Path
    trials, complete, pruned, failed : int
        Optuna trials in the study now (all runs), and by state.
    ran : int
        Trials run by this call.
    best_value : float or None
    best_params : dict
    wall_time_s : float
    """

    out_dir: Path
    trials: int
    complete: int
    pruned: int
    failed: int
    ran: int
    best_value: float | None
    best_params: dict[str, Any]
    wall_time_s: float


def _no_pruning(step: int, metrics: dict[str, np.ndarray]) -> bool:
    """The training callback of a search without a pruner: never stops."""
    return False


def _objective_fn(spec: SearchSpec, store: SweepStore, columns: list[str]) -> Any:
    from .runner import run_task_with_curves
    from .search_driver import _objective_column, _point_task, _pruning_report

    optuna = _optuna()
    sweep = spec.sweep
    grid = sweep.grids[0]
    column = _objective_column(spec)

    def objective(trial: Any) -> float:
        params = dict(grid.fixed)
        params.update(_suggest(trial, spec))
        cell, task = _point_task(trial.number, grid.name, params, grid.metrics)
        pruned: list[int] = []

        report = _pruning_report(spec, trial, pruned) if spec.pruner != "none" else _no_pruning

        started = time.perf_counter()
        rows, curves = run_task_with_curves(task, sweep, {cell.index: cell}, None, report)
        value = _aggregate(np.array([r.get(column, math.nan) for r in rows], float), spec.stat)
        state = "pruned" if pruned else "complete"
        for row in rows:
            row.update(search_trial=trial.number, search_state=state, search_value=value)
        if curves is not None:
            store.write_curves(task.task_id, curves)
        store.write_part(task.task_id, columns, rows)
        store.record_task(
            task.task_id,
            columns,
            rows,
            status=state,
            attempts=1,
            seconds=time.perf_counter() - started,
        )
        if pruned:
            raise optuna.TrialPruned(f"pruned at step {pruned[0]}")
        return value

    return objective


def _search_locally(spec: SearchSpec, root: Path, workers: int) -> None:
    """Optuna's own loop until the study holds the budget: in this process (one torch thread),
    or in ``workers`` spawned processes sharing the journal (bound to this driver)."""
    if workers == 1:
        from ...layer.model import torch_threads

        with torch_threads(1):
            _optimize(spec, root, spec.budget)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .runner import _worker_init

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
    ) as pool:
        futures = [pool.submit(_worker, spec, str(root), spec.budget) for _ in range(workers)]
        for future in futures:
            future.result()


def _worker(spec: SearchSpec, out_dir: str, budget: int) -> None:
    """One process of a parallel search: trials until the study holds ``budget`` of them."""
    from .runner import _limit_threads

    _limit_threads()
    _optimize(spec, Path(out_dir), budget)


def _optimize(spec: SearchSpec, root: Path, budget: int) -> None:
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=spec.sweep.name,
        storage=_storage(optuna, root / JOURNAL),
        sampler=_sampler(optuna, spec),
        pruner=_pruner(optuna, spec),
    )
    store = SweepStore(root)
    columns = store.manifest()["columns"]
    remaining = budget - len(study.trials)
    if remaining <= 0:
        return
    callback = optuna.study.MaxTrialsCallback(budget, states=None)
    study.optimize(
        _objective_fn(spec, store, columns),
        n_trials=remaining,
        callbacks=[callback],
        catch=(Exception,),
    )


def run_search(
    spec: SearchSpec,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    workers: int = 1,
    progress: Any = None,
    backend: str = "local",
    address: str | None = None,
    connect_timeout: float = 30.0,
) -> SearchResult:
    """Run (or with ``resume`` continue) an Optuna search until the study holds ``spec.budget``
    trials; every trial's rows go into ``out_dir`` like a sweep's.

    Parameters
    ----------
    spec : SearchSpec
    out_dir : path
        New or empty, unless ``resume``.
    resume : bool
        Continue the study of ``out_dir/journal.log``.
    workers : int
        Local backend: processes sharing the journal (spawned; one torch thread each); 1 runs
        in this process. Ray backend: trials in flight at once (at least the cluster's CPUs).
    progress : None, bool, callable or Progress
        One message at the start and the end.
    backend : {"local", "ray"}
        ``ray``: each trial is a Ray task; this process alone asks the study for points and
        tells it the values (the journal in ``out_dir`` stays the one record). A pruner decides
        inside the task against the study's trials finished when it was submitted.
    address : str, optional
        An existing Ray cluster (``ray`` backend); default: a local one with ``workers`` CPUs.
    connect_timeout : float
        Seconds to wait for ``address`` before an error.

    Raises
    ------
    OutputError
        Another process is writing ``out_dir``.
    """
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from .spec import BACKENDS, check_connect_timeout, check_workers

    check_workers(workers, backend)

    if backend not in BACKENDS:
        raise InvalidParameterError(
            f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}"
        )
    if address and backend != "ray":
        raise InvalidParameterError("address is for the ray backend; add backend='ray'")
    check_connect_timeout(connect_timeout)
    from .budget import check_plan_memory, estimate_plan_bytes, largest_point

    cells, tasks = largest_point(spec)
    trajectory = spec.pruner != "none" or bool(spec.sweep.at_steps) or spec.sweep.curves
    in_flight = 1 if address else workers
    check_plan_memory(  # before any folder
        estimate_plan_bytes(spec.sweep, cells, tasks, in_flight, trajectory=trajectory),
        what="this search",
    )
    if backend == "ray" and address:  # a dead address: one error, before any folder
        from .backends import probe_address

        probe_address(address, connect_timeout)
    from ..._io import exclusive_lock

    with exclusive_lock(out_dir, what="search folder"):
        return _run_search(
            spec, Path(out_dir), resume, workers, progress, backend, address, connect_timeout
        )


def _run_search(
    spec: SearchSpec,
    root: Path,
    resume: bool,
    workers: int,
    progress: Any,
    backend: str,
    address: str | None,
    connect_timeout: float,
) -> SearchResult:
    from ..scaffold import Progress

    optuna = _optuna()
    report = Progress.coerce(progress)
    started = time.perf_counter()
    columns = [*result_columns(spec.sweep), *SEARCH_COLUMNS]
    store = SweepStore(root)
    store.prepare(
        spec.sweep, columns, resume=resume, counts={"cells": spec.budget, "tasks": spec.budget}
    )
    options = {
        "objective": spec.objective,
        "direction": spec.direction,
        "sampler": spec.sampler,
        "pruner": spec.pruner,
        "stat": spec.stat,
    }
    manifest = store.manifest()
    changed = {k: manifest[k] for k in options if k in manifest and manifest[k] != options[k]}
    if changed:
        raise InvalidParameterError(
            f"{root} holds a search with other options {changed}; only search.budget may change "
            "on --resume (choose another --out)"
        )
    store.update_manifest(
        kind="search",
        workers=workers,
        backend=backend,
        tasks=spec.budget,
        cells=spec.budget,
        **options,
    )
    study = optuna.create_study(
        study_name=spec.sweep.name,
        storage=_storage(optuna, root / JOURNAL),
        direction=spec.direction,
        sampler=_sampler(optuna, spec),
        pruner=_pruner(optuna, spec),
        load_if_exists=True,
    )
    before = len(study.trials)
    report.message(f"search {spec.sweep.name}: {before} trials stored, budget {spec.budget}")
    from .search_driver import _rerun_stale, _search_on_ray

    if backend == "ray":
        _search_on_ray(spec, root, spec.budget, workers, address, connect_timeout, report)
    else:
        _rerun_stale(spec, root, report)
        _search_locally(spec, root, workers)
    study = optuna.load_study(study_name=spec.sweep.name, storage=_storage(optuna, root / JOURNAL))
    states = [t.state for t in study.trials]
    TS = optuna.trial.TrialState
    complete = [t for t in study.trials if t.state == TS.COMPLETE]
    best_value: float | None = None
    best_params: dict[str, Any] = {}
    if complete:
        best = study.best_trial
        best_value, best_params = float(best.value), dict(best.params)
    if store.done(verify=False):
        store.consolidate()  # checks every part
    result = SearchResult(
        out_dir=root,
        trials=len(states),
        complete=len(complete),
        pruned=sum(s == TS.PRUNED for s in states),
        failed=sum(s == TS.FAIL for s in states),
        ran=len(states) - before,
        best_value=best_value,
        best_params=best_params,
        wall_time_s=time.perf_counter() - started,
    )
    report.message(f"search {spec.sweep.name}: done, best {best_value} at {best_params}")
    return result
