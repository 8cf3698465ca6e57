"""Running a sweep: tasks on a local process pool or as Ray tasks, results streamed to disk.

:func:`run_sweep` plans the tasks (:mod:`attnmech.studies.sweeps.grid`), skips those already stored when
resuming, runs the rest on the chosen backend and writes each task's rows as soon as it ends
(:mod:`attnmech.studies.sweeps.store`). Inside a task, :func:`run_task` draws every trial's dataset,
solves its theory once (cached per process by the dataset's fingerprint), trains all trials in
one batched :func:`attnmech.train` call and turns the histories into rows.

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
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..._validation import POSITIVE_INT, check_params
from ...errors import AttnmechError, InfeasibleProblemError, InvalidParameterError
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
from .spec import DATASET_PARAMS, TRAIN_PARAMS, SweepSpec, metric_column, train_metric_names
from .store import SweepStore

__all__ = ["SweepResult", "run_sweep", "run_task", "dataset_fingerprint", "BACKENDS"]

logger = logging.getLogger(__name__)

BACKENDS = ("local", "ray")
_THEORY_CACHE: OrderedDict[str, tuple[Any, float, str]] = OrderedDict()  # per process
_THEORY_CACHE_SIZE = 4096


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    out_dir, results_path : Path
    cells, tasks, tasks_skipped, rows : int
        Cells in the sweep, tasks in total, tasks found already done (``resume``), rows written
        by this call.
    wall_time_s : float
    backend : str
    workers : int
    """

    out_dir: Path
    results_path: Path
    cells: int
    tasks: int
    tasks_skipped: int
    rows: int
    wall_time_s: float
    backend: str
    workers: int


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
) -> tuple[dict[int, dict[str, float]], float]:
    """Train ``datasets`` in one batch; per unit index, the metric values."""
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
    trajectory = bool(spec.at_steps) or bool(wanted & {"steps_to_corr", "fin_gap_traj"})
    started = time.perf_counter()
    if theories is not None and not trajectory:
        from ...layer.verification import verify

        run = train(datasets, replace(config, log_every=0))
        report = verify(
            datasets,
            np.asarray(run.W).reshape(len(units), *run.W.shape[-2:]),
            theories,
            config=model,
        )
        history = {k: np.asarray(v)[None] for k, v in report.metrics.items()}
        history["grad_norm"] = np.asarray(run.history["grad_norm"])[-1:]
        history["step"] = np.asarray(run.history["step"])[-1:]
    else:
        run = train(datasets, config, theory=theories if theories is not None else None)
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
    return out, elapsed


def run_task(
    task: Task, spec: SweepSpec, cells: dict[int, Cell], device: str | None = None
) -> list[dict[str, Any]]:
    """Run one task: datasets, theories (cached), one batched training call, rows.

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
    svm_norm = "nuclear" if cell0.params["parameterization"] == "factorized" else "fro"
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
            )
            for u, vals in values.items():
                rows[u].update(vals)
    return rows


def _worker_init() -> None:
    _limit_threads()


def _run_task_in_worker(
    task: Task, spec: SweepSpec, cells: dict[int, Cell], device: str | None
) -> list[dict[str, Any]]:
    _limit_threads()
    return run_task(task, spec, cells, device)


def _local_results(
    tasks: list[Task], spec: SweepSpec, cells: dict[int, Cell], workers: int, device: str | None
) -> Iterator[tuple[Task, list[dict[str, Any]]]]:
    if workers == 1:
        from ...layer.model import torch_threads

        with torch_threads(1):
            for task in tasks:
                yield task, run_task(task, spec, cells, device)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    pending: dict[Any, Task] = {}
    queue = list(reversed(tasks))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:  # bounded: results stream out
                    task = queue.pop()
                    needed = {c: cells[c] for c, _ in task.units}
                    pending[pool.submit(_run_task_in_worker, task, spec, needed, device)] = task
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield pending.pop(future), future.result()
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
) -> Iterator[tuple[Task, list[dict[str, Any]]]]:
    try:
        import ray
    except ImportError:
        raise InvalidParameterError(
            "the ray backend needs Ray: pip install 'attnmech[ray]' (or use --backend local)"
        ) from None
    started_here = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started_here = True
    try:
        remote = ray.remote(num_cpus=1)(_run_task_in_worker)
        spec_ref = ray.put(spec)
        pending: dict[Any, Task] = {}
        queue = list(reversed(tasks))
        limit = 2 * max(workers, int(ray.available_resources().get("CPU", 1)))
        while queue or pending:
            while queue and len(pending) < limit:
                task = queue.pop()
                needed = {c: cells[c] for c, _ in task.units}
                pending[remote.remote(task, spec_ref, needed, device)] = task
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                yield pending.pop(ref), ray.get(ref)
    finally:
        if started_here:
            ray.shutdown()


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
) -> SweepResult:
    """Run every cell of a sweep and store one row per cell x trial under ``out_dir``.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`attnmech.studies.sweeps.load_sweep_spec`.
    out_dir : path
        The results folder (see :mod:`attnmech.studies.sweeps.store`); must be new or empty unless
        ``resume``.
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
        A progress bar over cells, with an ETA, on stderr.
    on_task : callable, optional
        ``on_task(task, rows_written)`` after each task is stored.

    Returns
    -------
    SweepResult
    """
    if backend not in BACKENDS:
        raise InvalidParameterError(
            f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}"
        )
    if address and backend != "ray":
        raise InvalidParameterError("address is for the ray backend; add backend='ray'")
    cpu = os.cpu_count() or 1
    workers = cpu if workers is None else workers
    check_params({"workers": workers}, {"workers": [POSITIVE_INT]}, where="run_sweep")
    started = time.perf_counter()
    cells = expand_cells(spec)
    tasks = plan_tasks(spec, cells)
    columns = result_columns(spec)
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
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # exact: a cell split over tasks counts as whole once all its trials are in
        stored = [c for t in tasks if t.task_id in done for c, _ in t.units]
        cells_done = sum((Fraction(1, by_index[c].trials) for c in stored), Fraction(0))
        bar = tqdm(
            total=len(cells),
            initial=float(cells_done),
            unit="cell",
            desc=spec.name,
            bar_format="{l_bar}{bar}| {n:.1f}/{total} cells [{elapsed}<{remaining}]",
        )
    if backend == "local":
        results = _local_results(todo, spec, by_index, workers, device)
    else:
        results = _ray_results(todo, spec, by_index, workers, device, address)
    written = 0
    try:
        for task, rows in results:
            store.write_part(task.task_id, columns, rows)
            written += len(rows)
            if bar is not None:
                cells_done += sum((Fraction(1, by_index[c].trials) for c, _ in task.units), 0)
                bar.update(float(cells_done) - bar.n)
            if on_task is not None:
                on_task(task, len(rows))
    finally:
        if bar is not None:
            bar.close()
    path = store.consolidate()
    return SweepResult(
        out_dir=Path(out_dir),
        results_path=path,
        cells=len(cells),
        tasks=len(tasks),
        tasks_skipped=skipped,
        rows=written,
        wall_time_s=time.perf_counter() - started,
        backend=backend,
        workers=workers,
    )
