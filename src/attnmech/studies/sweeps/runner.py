"""Running a sweep: tasks on a local process pool or as Ray tasks, results streamed to disk.

:func:`run` (and its wrapper :func:`run_sweep`) plans the tasks
(:mod:`attnmech.studies.sweeps.grid`), skips those already stored when
resuming, runs the rest on the chosen backend and writes each task's rows as soon as it ends
(:mod:`attnmech.studies.sweeps.store`). Inside a task, :func:`run_task` draws every trial's dataset,
solves its theory once (cached per process by the norm and the dataset's fingerprint), trains
all trials in one batched :func:`attnmech.train` call and turns the histories into rows. A task
that raises is run again up to ``retries`` times, then recorded as failed.

Backends
--------
``local``
    A process pool (spawn start method) of ``workers`` processes, one torch / BLAS thread each;
    ``workers=1`` runs the tasks in this process.
``ray``
    Each task is a Ray task (``num_cpus=1``) on an existing cluster (``address``) or on a local
    one started with ``num_cpus=workers``. Ray is imported only here (``pip install
    attnmech[ray]``). Workers of an existing cluster need attnmech installed.

Both backends run the same tasks with the same seeds, so they give the same table.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import exclusive_lock, output_transaction
from ..._validation import POSITIVE_INT, check_params
from ...errors import AttnmechError, InfeasibleProblemError, InvalidParameterError
from ..scaffold import Progress
from .grid import (
    Cell,
    Task,
    dataset_seed,
    expand_cells,
    init_seed,
    needs_theory,
    needs_training,
    plan_tasks,
    result_columns,
)
from .result import SweepResult
from .spec import (
    BACKENDS,
    DATASET_PARAMS,
    DEFAULT_SVM_NORM,
    TRAIN_PARAMS,
    SweepSpec,
    metric_column,
    train_metric_names,
)
from .store import SweepStore

__all__ = [
    "CONFIG_TYPE",
    "RESULT_TYPE",
    "SweepResult",
    "TaskOutcome",
    "run",
    "run_sweep",
    "run_task",
    "run_task_with_curves",
    "cell_svm_norm",
    "dataset_fingerprint",
    "BACKENDS",
]

logger = logging.getLogger(__name__)

_THEORY_CACHE: OrderedDict[str, tuple[Any, float, str]] = OrderedDict()  # per process
_THEORY_CACHE_SIZE = 4096


def dataset_fingerprint(dataset: Any) -> str:
    """SHA-256 of a dataset's sequences, labels and embeddings (``Dataset.fingerprint()`` when
    the library has it)."""
    method = getattr(dataset, "fingerprint", None)
    if callable(method):
        return str(method())
    digest = hashlib.sha256()
    for array in (dataset.padded(), np.asarray(dataset.labels), dataset.embeddings):
        arr = np.ascontiguousarray(array)
        digest.update(str((arr.dtype.str, arr.shape)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _solve_cached(dataset: Any, svm_norm: str) -> tuple[Any, float, str]:
    """(theory or the infeasibility error, solve time in s, warnings), solved once per process
    per dataset fingerprint."""
    from ...theory.solve import solve

    key = f"{svm_norm}:{dataset_fingerprint(dataset)}"
    if key in _THEORY_CACHE:
        _THEORY_CACHE.move_to_end(key)
        return _THEORY_CACHE[key]
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            theory: Any = solve(dataset, svm_norm=svm_norm)
        except InfeasibleProblemError as exc:
            theory = exc
    notes = "; ".join(sorted({str(w.message).replace("\n", " ") for w in caught}))
    entry = (theory, time.perf_counter() - started, notes)
    _THEORY_CACHE[key] = entry
    if len(_THEORY_CACHE) > _THEORY_CACHE_SIZE:
        _THEORY_CACHE.popitem(last=False)
    return entry


def cell_svm_norm(params: dict[str, Any]) -> str:
    """The canonical norm name of a cell's Graph-SVM (its ``svm_norm``: ``default``, ``auto`` or
    a norm name; see :func:`attnmech.layer.metrics.svm_norm_for`)."""
    from ...layer.metrics import svm_norm_for
    from ...layer.model import AttentionConfig

    choice = params.get("svm_norm", DEFAULT_SVM_NORM)
    model = AttentionConfig(parameterization=params["parameterization"])
    return svm_norm_for(model, params["optimizer"], None if choice == DEFAULT_SVM_NORM else choice)


def _limit_threads() -> None:
    """One torch / BLAS thread in a worker (set before torch is imported where possible)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    import torch

    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        pass


def _initial_params(params: dict[str, Any], shape: tuple[int, ...], seed: int) -> np.ndarray:
    if params["init"] == "zero":
        return np.zeros(shape)
    bound = 1.0 / math.sqrt(params["d"])
    return np.random.default_rng(seed).uniform(-bound, bound, size=shape)


def _first_reach(steps: np.ndarray, values: np.ndarray, threshold: float) -> np.ndarray:
    """Per trial, the first logged step with ``value >= threshold`` (NaN if none)."""
    hit = np.nan_to_num(values, nan=-np.inf) >= threshold  # (L, B)
    first = np.argmax(hit, axis=0)
    out = steps[first].astype(np.float64)
    out[~hit.any(axis=0)] = math.nan
    return out


def _train_rows(
    units: list[int],
    datasets: list[Any],
    theories: list[Any] | None,
    cell: Cell,
    seeds: list[int],
    spec: SweepSpec,
    device: str,
    curves: dict[int, dict[str, np.ndarray]] | None = None,
    callback: Callable[[int, dict[str, np.ndarray]], Any] | None = None,
) -> tuple[dict[int, dict[str, float]], float]:
    """Train ``datasets`` in one batch; per unit index, the metric values (and, given a
    ``curves`` dict, every logged metric of each unit into it)."""
    from ...layer.model import AttentionConfig
    from ...layer.training import TrainConfig, train

    params = cell.params
    model = AttentionConfig(
        head=params["head"],
        loss=params["loss"],
        parameterization=params["parameterization"],
        device=device,
    )
    shape = model.param_shape(params["d"])
    init = np.stack([_initial_params(params, shape, s) for s in seeds])
    config = TrainConfig(
        model=model,
        optimizer=params["optimizer"],
        learning_rate=params["lr"],
        steps=params["steps"],
        log_every=spec.log_every,
        init=init,
        num_threads=1,
        schedule=params.get("schedule", "constant"),
    )
    wanted = set(cell.metrics)
    # the theory's metrics along the way (at_steps, steps_to_corr, the W_fin(t) gap) need them
    # recorded during training; when only the end matters, train alone and verify the final W:
    # the same numbers (the same TrajectoryMetrics), without the W_fin(t) run and the logging
    trajectory = (
        bool(spec.at_steps)
        or bool(wanted & {"steps_to_corr", "fin_gap_traj"})
        or curves is not None
        or callback is not None
    )
    started = time.perf_counter()
    if theories is not None and not trajectory:
        from ...layer.training import fast_final_supported, train_final
        from ...layer.verification import verify

        final = replace(config, log_every=0)
        if fast_final_supported(datasets, final):  # fewer operations per step, on the scores
            W_end, grad_end = train_final(datasets, final, method="scores")
        else:
            run = train(datasets, final)
            W_end = np.asarray(run.W).reshape(len(units), *run.W.shape[-2:])
            grad_end = np.asarray(run.history["grad_norm"])[-1]
        report = verify(datasets, W_end, theories, config=model)
        history = {k: np.asarray(v)[None] for k, v in report.metrics.items()}
        history["grad_norm"] = np.asarray(grad_end).reshape(1, -1)
        history["step"] = np.array([config.steps])
    else:
        run = train(
            datasets,
            config,
            theory=theories if theories is not None else None,
            callback=callback,
        )
        history = dict(run.history)
    elapsed = time.perf_counter() - started
    steps = np.asarray(history["step"])
    out: dict[int, dict[str, float]] = {u: {} for u in units}
    for name in train_metric_names():
        if name not in wanted or name not in history:
            continue
        hist = np.asarray(history[name], dtype=np.float64).reshape(len(steps), -1)  # (L, B)
        column = metric_column(name)
        at_rows = {s: np.flatnonzero(steps == s) for s in spec.at_steps}  # the logged row, if any
        for b, u in enumerate(units):
            out[u][column] = float(hist[-1, b])
            for s, idx in at_rows.items():
                out[u][f"{column}@{s}"] = float(hist[idx[0], b]) if idx.size else math.nan
    if "steps_to_corr" in wanted and "corr_svm" in history:
        hist = np.asarray(history["corr_svm"], dtype=np.float64).reshape(len(steps), -1)
        reach = _first_reach(steps, hist, spec.corr_threshold)
        for b, u in enumerate(units):
            out[u]["steps_to_corr"] = float(reach[b])
    for u in units:
        out[u]["train_time_s"] = elapsed / max(len(units), 1)
    if curves is not None:
        for name, values in history.items():
            if name == "step" or name not in train_metric_names():
                continue
            hist = np.asarray(values, dtype=np.float64).reshape(len(steps), -1)
            for b, u in enumerate(units):
                curves.setdefault(u, {"step": steps})[name] = hist[:, b]
    return out, elapsed


def run_task(
    task: Task, spec: SweepSpec, cells: dict[int, Cell], device: str | None = None
) -> list[dict[str, Any]]:
    """Run one task: datasets, theories (cached), one batched training call, rows.

    Returns one row per (cell, trial) unit of the task (see :func:`run_task_with_curves`).
    """
    return run_task_with_curves(task, spec, cells, device)[0]


def run_task_with_curves(
    task: Task,
    spec: SweepSpec,
    cells: dict[int, Cell],
    device: str | None = None,
    callback: Callable[[int, dict[str, np.ndarray]], Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray] | None]:
    """Run one task: its rows, and with ``spec.curves`` its logged metrics.

    ``callback(step, metrics)`` is passed to :func:`attnmech.train` (every logged step; True
    stops the training: the rows then hold the values at that step).

    The curves are ``{"step": (L,), "cell": (U,), "trial": (U,), metric: (L, U)}`` (NaN for a
    unit without that metric), or None without ``spec.curves``.

    Returns one row per (cell, trial) unit of the task. A trial whose dataset cannot be drawn
    gets its error message in the ``error`` column and no metrics; an infeasible Graph-SVM gives
    ``feasible = 0`` and NaN for the metrics that need it (the loss and norms are still trained).
    """
    from ...data.generators import make_dataset
    from ...theory.graphs import build_priority_graphs

    device = device or spec.device
    cell0 = cells[task.units[0][0]]
    metrics = set(cell0.metrics)
    want_theory = needs_theory(cell0.metrics)
    svm_norm = cell_svm_norm(cell0.params)
    rows: list[dict[str, Any]] = []
    datasets: dict[int, Any] = {}
    theories: dict[int, Any] = {}
    for u, (cell_index, trial) in enumerate(task.units):
        cell = cells[cell_index]
        p = cell.params
        row: dict[str, Any] = {"cell": cell.index, "grid": cell.grid, "trial": trial}
        row.update({k: p[k] for k in (*DATASET_PARAMS, *TRAIN_PARAMS) if k != "trials"})
        row["dataset_seed"] = dataset_seed(spec.seed, p, trial)
        row["init_seed"] = init_seed(spec.seed, p, trial)
        rows.append(row)
        try:
            ds = make_dataset(
                p["n"],
                p["T"],
                p["K"],
                p["d"],
                embeddings=p["embeddings"],
                graph=p["graph"],
                seed=row["dataset_seed"],
                rho=p["rho"],
            )
        except AttnmechError as exc:
            row["error"] = str(exc).replace("\n", " ")
            continue
        row["fingerprint"] = dataset_fingerprint(ds)[:16]
        datasets[u] = ds
        theory = None
        if want_theory:
            theory, solve_time, notes = _solve_cached(ds, svm_norm)
            row["solve_time_s"] = solve_time
            if notes:
                row["warning"] = notes
            if isinstance(theory, InfeasibleProblemError):
                row["feasible"] = 0
                theory = None
            else:
                # an inaccurate solve (nearly dependent embeddings) settles nothing: NaN
                row["feasible"] = 1 if getattr(theory.svm, "success", True) else math.nan
                row["w_svm_fro_norm"] = float(np.linalg.norm(theory.W_svm))
                theories[u] = theory
        if "cyclic" in metrics:
            graphs = theory.graphs if theory is not None else build_priority_graphs(ds)
            row["cyclic"] = int(graphs.is_cyclic)
    unit_curves: dict[int, dict[str, np.ndarray]] | None = {} if spec.curves else None
    if needs_training(cell0.metrics, spec.at_steps) and datasets:
        with_theory = [u for u in datasets if u in theories] if want_theory else []
        without = [u for u in datasets if u not in set(with_theory)]
        for group, use_theory in ((with_theory, True), (without, False)):
            if not group:
                continue
            values, _ = _train_rows(
                group,
                [datasets[u] for u in group],
                [theories[u] for u in group] if use_theory else None,
                cell0,
                [rows[u]["init_seed"] for u in group],
                spec,
                device,
                unit_curves,
                callback if use_theory or not want_theory else None,
            )
            for u, vals in values.items():
                rows[u].update(vals)
    return rows, _stack_curves(task, unit_curves)


def _stack_curves(
    task: Task, unit_curves: dict[int, dict[str, np.ndarray]] | None
) -> dict[str, np.ndarray] | None:
    if unit_curves is None:
        return None
    U = len(task.units)
    steps = next((c["step"] for c in unit_curves.values()), np.zeros(0, dtype=np.int64))
    names = sorted({k for c in unit_curves.values() for k in c if k != "step"})
    out: dict[str, np.ndarray] = {
        "step": np.asarray(steps, dtype=np.int64),
        "cell": np.array([c for c, _ in task.units], dtype=np.int64),
        "trial": np.array([t for _, t in task.units], dtype=np.int64),
    }
    for name in names:
        table = np.full((len(steps), U), math.nan)
        for u, c in unit_curves.items():
            if name in c:
                table[:, u] = c[name]
        out[name] = table
    return out


def _worker_init(driver: int | None = None) -> None:
    """A pool worker: one thread, and it ends when the driver ``driver`` (its parent) dies."""
    from .backends import bind_to_driver

    bind_to_driver(driver)
    _limit_threads()


@dataclass(frozen=True)
class TaskOutcome:
    """One attempt at a task: its rows and curves, or the error it raised."""

    rows: list[dict[str, Any]] | None
    curves: dict[str, np.ndarray] | None
    seconds: float
    error: str = ""
    error_type: str = ""
    node: str = ""


def _attempt(
    task: Task,
    spec: SweepSpec,
    cells: dict[int, Cell],
    device: str | None,
    callback: Callable[[int, dict[str, np.ndarray]], Any] | None = None,
) -> TaskOutcome:
    """Run a task once, turning an exception into a failed outcome (so it can be retried)."""
    started = time.perf_counter()
    try:
        rows, curves = run_task_with_curves(task, spec, cells, device, callback)
    except Exception as exc:  # any failure of one task must not end the sweep
        message = str(exc).replace("\n", " ") or type(exc).__name__
        return TaskOutcome(None, None, time.perf_counter() - started, message, type(exc).__name__)
    return TaskOutcome(rows, curves, time.perf_counter() - started)


def _attempt_in_worker(
    task: Task, spec: SweepSpec, cells: dict[int, Cell], device: str | None
) -> TaskOutcome:
    _limit_threads()
    from .backends import on_node

    return on_node(_attempt(task, spec, cells, device))


# kept for pickled references of older callers
_run_task_in_worker = _attempt_in_worker


def _needed(task: Task, cells: dict[int, Cell]) -> dict[int, Cell]:
    return {c: cells[c] for c, _ in task.units}


def _local_results(
    tasks: list[Task], spec: SweepSpec, cells: dict[int, Cell], workers: int, device: str | None
) -> Iterator[tuple[Task, TaskOutcome]]:
    """Each task's outcome, on a spawn process pool (``workers`` > 1) or in this process.

    A worker that dies (killed, out of memory) breaks the pool: the tasks in flight get a failed
    outcome (retried by the caller) and a fresh pool takes the rest.
    """
    if workers == 1:
        from ...layer.model import torch_threads

        with torch_threads(1):
            for task in tasks:
                yield task, _attempt(task, spec, cells, device)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    queue = list(reversed(tasks))
    while queue:
        pending: dict[Any, Task] = {}
        broken = False
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
        ) as pool:
            try:
                while (queue or pending) and not broken:
                    while queue and len(pending) < 2 * workers:  # bounded: results stream out
                        task = queue.pop()
                        future = pool.submit(
                            _attempt_in_worker, task, spec, _needed(task, cells), device
                        )
                        pending[future] = task
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        task = pending.pop(future)
                        try:
                            yield task, future.result()
                        except BrokenProcessPool as exc:
                            broken = True
                            yield (
                                task,
                                TaskOutcome(None, None, 0.0, f"worker died: {exc}", "WorkerDied"),
                            )
                if broken:  # the tasks still in flight died with the pool
                    for task in pending.values():
                        yield task, TaskOutcome(None, None, 0.0, "worker pool broke", "WorkerDied")
                    pending.clear()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise


def _ray_results(
    tasks: list[Task],
    spec: SweepSpec,
    cells: dict[int, Cell],
    workers: int,
    device: str | None,
    address: str | None,
) -> Iterator[tuple[Task, TaskOutcome]]:
    """Each task's outcome as a Ray task; Ray reruns a task whose worker process died (up to
    ``max(3, spec.retries)`` times)."""
    from .backends import connect_ray

    started_here = connect_ray(address, workers, spec.connect_timeout)
    import ray

    try:
        remote = ray.remote(num_cpus=1, max_retries=max(3, spec.retries))(_attempt_in_worker)
        spec_ref = ray.put(spec)
        pending: dict[Any, Task] = {}
        queue = list(reversed(tasks))
        limit = 2 * max(workers, int(ray.available_resources().get("CPU", 1)))
        while queue or pending:
            while queue and len(pending) < limit:
                task = queue.pop()
                pending[remote.remote(task, spec_ref, _needed(task, cells), device)] = task
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the task's worker died more often than retried
                    outcome = TaskOutcome(
                        None, None, 0.0, str(exc).splitlines()[0], type(exc).__name__
                    )
                yield task, outcome
    finally:
        if started_here:
            ray.shutdown()


def _with_retries(
    run: Callable[[list[Task]], Iterator[tuple[Task, TaskOutcome]]],
    tasks: list[Task],
    retries: int,
) -> Iterator[tuple[Task, TaskOutcome, int]]:
    """Outcomes with failed tasks run again, up to ``retries`` more times: (task, outcome,
    attempts)."""
    attempts: dict[str, int] = {}
    todo = tasks
    while todo:
        again: list[Task] = []
        for task, outcome in run(todo):
            attempts[task.task_id] = attempts.get(task.task_id, 0) + 1
            if outcome.rows is None and attempts[task.task_id] <= retries:
                logger.warning(
                    "task %s failed (attempt %d of %d): %s",
                    task.task_id,
                    attempts[task.task_id],
                    retries + 1,
                    outcome.error,
                )
                again.append(task)
                continue
            yield task, outcome, attempts[task.task_id]
        todo = again


# --------------------------------------------------------------------------- run
CONFIG_TYPE = SweepSpec


def run(
    config: SweepSpec,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: Any = None,
    resume: bool = False,
) -> SweepResult:
    """Run every cell of a sweep and store one row per cell x trial under ``out_dir``.

    Parameters
    ----------
    config : SweepSpec
        From :func:`attnmech.studies.sweeps.load_sweep_spec`, with the run options (backend,
        workers, address, retries, curves) set by ``spec.replace(...)``.
    out_dir : path, optional
        The results folder (see :mod:`attnmech.studies.sweeps.store`); must be new or empty unless
        ``resume``. None: a new temporary folder (its path is ``result.out_dir``).
    progress : None, bool, callable or Progress
        See :meth:`attnmech.studies.scaffold.Progress.coerce`: one message per finished task.
    resume : bool
        Continue a sweep in ``out_dir``: tasks already stored are skipped, failed ones rerun.

    Returns
    -------
    SweepResult
        Also written to ``out_dir`` (``results.json`` and ``REPORT.md``).
    """
    return _run(config, out_dir=out_dir, progress=progress, resume=resume)


def _run(
    config: SweepSpec,
    *,
    out_dir: str | os.PathLike[str] | None,
    progress: Any,
    resume: bool,
    on_task: Callable[[Task, int], Any] | None = None,
) -> SweepResult:
    if not isinstance(config, SweepSpec):
        raise InvalidParameterError(
            f"a sweep's config is a SweepSpec (load_sweep_spec), got {type(config).__name__}"
        )
    if out_dir is not None:
        from ..._validation import PathLike

        check_params({"out_dir": out_dir}, {"out_dir": [PathLike()]}, where="run_sweep")
    spec = config
    report = Progress.coerce(progress)
    if out_dir is None:
        import tempfile

        out_dir = tempfile.mkdtemp(prefix=f"attnmech-sweep-{spec.name}-")
    cpu = os.cpu_count() or 1
    workers = cpu if spec.workers is None else spec.workers
    check_params({"workers": workers}, {"workers": [POSITIVE_INT]}, where="run_sweep")
    started = time.perf_counter()
    cells = expand_cells(spec)
    tasks = plan_tasks(spec, cells)
    columns = result_columns(spec)
    from ...layer.resources import check_device

    check_device(spec.device or "cpu")  # before any folder is made
    from .budget import check_plan_memory, estimate_plan_bytes

    # on a cluster at an address, each node holds its own tasks: this machine, the driver
    planned = 1 if spec.address else max(1, min(int(workers), len(tasks) or 1))
    check_plan_memory(estimate_plan_bytes(spec, cells, tasks, planned))  # before any folder
    if spec.backend == "ray" and spec.address:  # a dead address: one error, before any folder
        from .backends import probe_address

        probe_address(spec.address, spec.connect_timeout)
    # one writer per folder: a second "sweep --resume" on it is refused, not run twice
    with exclusive_lock(out_dir, what="sweep folder"):
        store = SweepStore(out_dir)
        store.prepare(
            spec,
            columns,
            resume=resume,
            counts={"cells": len(cells), "tasks": len(tasks)},
        )
        done = store.done()
        todo = [t for t in tasks if t.task_id not in done]
        skipped = len(tasks) - len(todo)
        if skipped:
            logger.info("resuming: %d of %d tasks already stored", skipped, len(tasks))
        by_index = {c.index: c for c in cells}
        workers = max(1, min(int(workers), len(todo) or 1))
        store.update_manifest(workers=workers, backend=spec.backend, started=time.time())
        device = spec.device

        def attempts(batch: list[Task]) -> Iterator[tuple[Task, TaskOutcome]]:
            if spec.backend == "local":
                return _local_results(batch, spec, by_index, workers, device)
            return _ray_results(batch, spec, by_index, workers, device, spec.address)

        written = failed = 0
        with report.stage(len(todo), f"sweep {spec.name}", unit="task") as advance:
            for task, outcome, tries in _with_retries(attempts, todo, spec.retries):
                if outcome.rows is None:
                    failed += 1
                    store.write_failure(
                        task.task_id,
                        {
                            "task_id": task.task_id,
                            "error": outcome.error,
                            "type": outcome.error_type,
                            "attempts": tries,
                            "units": [list(u) for u in task.units],
                        },
                    )
                    store.record_task(
                        task.task_id,
                        columns,
                        [],
                        status="failed",
                        attempts=tries,
                        seconds=outcome.seconds,
                        error=outcome.error,
                    )
                    report.message(
                        f"task {task.task_id} failed after {tries} attempt(s): {outcome.error}"
                    )
                else:
                    if outcome.curves is not None:
                        store.write_curves(task.task_id, outcome.curves)
                    store.write_part(task.task_id, columns, outcome.rows)
                    store.clear_failure(task.task_id)
                    store.record_task(
                        task.task_id,
                        columns,
                        outcome.rows,
                        status="done",
                        attempts=tries,
                        seconds=outcome.seconds,
                        node=outcome.node,
                    )
                    written += len(outcome.rows)
                    if on_task is not None:
                        on_task(task, len(outcome.rows))
                advance(1)
        # results.csv, results.json and the report: all or nothing (a full disk restores them;
        # the stored parts/ stay, for --resume)
        with output_transaction(out_dir, what="sweep folder"):
            # consolidate() checks every part (their checksums, fingerprints, no unit twice)
            done = store.done(verify=False)
            path = store.consolidate() if done else Path(out_dir) / "results.csv"
            result = SweepResult(
                out_dir=Path(out_dir),
                results_path=path,
                cells=len(cells),
                tasks=len(tasks),
                tasks_skipped=skipped,
                rows=written,
                wall_time_s=time.perf_counter() - started,
                backend=spec.backend,
                workers=workers,
                failed=failed,
                config=spec,
            )
            result.write(out_dir, figures=False)
        return result


def run_sweep(
    spec: SweepSpec,
    out_dir: str | os.PathLike[str],
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = False,
    on_task: Callable[[Task, int], Any] | None = None,
    retries: int | None = None,
    curves: bool | None = None,
    connect_timeout: float | None = None,
) -> SweepResult:
    """Run a sweep (a thin wrapper of :func:`run` with the run options as keywords).

    Parameters
    ----------
    spec : SweepSpec
    out_dir : path
    backend : {"local", "ray"}
    workers : int, optional
        Processes (local) or CPUs of a local Ray cluster; default: the machine's cores.
    address : str, optional
        Address of an existing Ray cluster (``ray`` backend only).
    resume : bool
        Continue a sweep in ``out_dir``: tasks already stored are skipped.
    device : str, optional
        Torch device for training (overrides the file's ``sweep.device``).
    progress : bool
        One message per finished task on stderr (a bar on a terminal).
    on_task : callable, optional
        ``on_task(task, rows_written)`` after each task is stored.
    retries : int, optional
        Extra attempts of a failed task (default: the spec's, 0).
    curves : bool, optional
        Keep every trial's logged metrics (default: the spec's, False).
    connect_timeout : float, optional
        Seconds to wait for the Ray cluster at ``address`` (default: the spec's, 30).

    Returns
    -------
    SweepResult
    """
    if not isinstance(spec, SweepSpec):
        raise InvalidParameterError(
            f"run_sweep: spec must be a SweepSpec (load_sweep_spec or parse_sweep_spec), got "
            f"{type(spec).__name__}"
        )
    changes: dict[str, Any] = {"backend": backend, "workers": workers, "address": address}
    if device is not None:
        changes["device"] = device
    if retries is not None:
        changes["retries"] = retries
    if curves is not None:
        changes["curves"] = curves
    if connect_timeout is not None:
        changes["connect_timeout"] = connect_timeout
    config = spec.replace(**changes)
    return _run(config, out_dir=out_dir, progress=progress, resume=resume, on_task=on_task)


RESULT_TYPE = SweepResult
