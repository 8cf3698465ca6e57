"""Running the bias table: :func:`run` (the study scaffold's signature) and :func:`bias_table`."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..scaffold import Progress, ProgressLike, prepare_out_dir
from ..scaffold import locks_out_dir  # one writer per output folder
from .config import BiasConfig
from .curves import nanmean
from .measure import check_memory, check_settings, measure_run, solve_setting
from .result import BiasResult, BiasRun
from .rows import BIAS_NORMS, DEFAULT_SETTINGS, BiasOptimizer
from .runfiles import load_run, run_key, run_path, save_run
from .search import search_row

__all__ = ["bias_table", "run", "write_bias_table"]


@locks_out_dir("bias-table folder")
def run(
    config: BiasConfig,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: ProgressLike = None,
    resume: bool = False,
) -> BiasResult:
    """Train every optimiser on each setting and compare the final ``W`` with every Graph-SVM.

    Parameters
    ----------
    config : BiasConfig
    out_dir : path, optional
        Write ``results.json``, ``TABLE.md`` and (with ``config.figures``) ``heatmap.png`` and
        ``rates_<setting>.png`` there; each finished run is also saved in ``out_dir/runs/``.
    progress : None, bool, callable or Progress
        One line per solved setting and per run (see :meth:`Progress.coerce`).
    resume : bool, default=False
        With ``out_dir``: reuse the runs saved in ``out_dir/runs/`` whose setting, trials,
        optimiser, steps, norms and ``log_points`` match; the others are trained again.

    Returns
    -------
    BiasResult

    Raises
    ------
    InvalidParameterError
        Unknown setting, or a setting that does not train the iden head with the log-loss.
    CheckpointError
        With ``resume``: a saved run file that cannot be read (delete it).
    OutputError
        ``out_dir`` cannot be written (checked before any work).
    """
    from ...errors import InvalidParameterError

    if not isinstance(config, BiasConfig):
        raise InvalidParameterError(
            f"run expects a BiasConfig, got {type(config).__name__}; build one with "
            "BiasConfig(settings=..., trials=...)"
        )
    started, cpu_started = time.perf_counter(), time.process_time()
    report = Progress.coerce(progress)
    check_settings(config.settings)
    if out_dir is not None:
        prepare_out_dir(out_dir, what="bias table")
        prepare_out_dir(Path(out_dir) / "runs", what="bias-table run files")
    columns = config.columns
    cache: dict[str, dict[str, Any]] = {}
    runs: list[BiasRun] = []
    reused: list[str] = []
    svm_info: dict[str, dict[str, dict[str, Any]]] = {}
    cyclic: dict[str, bool] = {}
    for name in config.settings:  # every batch fits, before any work
        check_memory(name, config.trials, config.log_points)
        check_batch_fits(name, config)
    for name in config.settings:
        check_memory(name, config.trials, config.log_points)
        data = solve_setting(name, config.trials, columns, cache)
        svm_info[name] = data.svm_info
        cyclic[name] = data.cyclic
        report.message(
            f"{name}: {config.trials} datasets, Graph-SVMs of {len(columns)} norms solved"
        )
        for row in config.rows:
            num_steps = config.steps if config.steps is not None else row.num_steps
            record = None
            if config.search and row.search:
                searched = time.perf_counter()
                where = config.search_on or name
                row, record = search_row(
                    where,
                    row,
                    config.search_steps or num_steps,
                    trials=config.search_trials,
                    scales=config.search_scales,
                    powers=config.search_powers,
                    cache_path=None
                    if out_dir is None
                    else run_path(Path(out_dir), where, row).with_suffix(".search.json"),
                )
                if not record.get("reused"):
                    record["wall_s"] = time.perf_counter() - searched
                record["setting"] = where
                report.message(
                    f"{name}: {row.label:<22} search of {len(record['grid'])} candidates chose "
                    f"lr {row.learning_rate:g}, {row.schedule} "
                    + ("(read back)" if record.get("reused") else f"({record['wall_s']:.1f} s)")
                )
            path = None if out_dir is None else run_path(Path(out_dir), name, row)
            key = run_key(name, config.trials, row, num_steps, columns, config.log_points)
            saved = load_run(path, key) if resume and path is not None else None
            if saved is not None:
                runs.append(saved)
                reused.append(f"{name}/{row.label}")
                report.message(f"{name}: {row.label:<22} reused {path}")
                continue
            runs.append(train_row(data, row, num_steps, config.log_points, columns, record))
            if path is not None:
                save_run(path, key, runs[-1])
            report.message(
                f"{name}: {row.label:<22} {num_steps} steps, {runs[-1].elapsed_s:.1f} s, "
                f"cos with own ({row.expected_norm}) "
                f"{nanmean(runs[-1].cos[row.expected_norm]):.4f}"
            )
    result = BiasResult(
        config,
        runs,
        svm_info,
        cyclic,
        time.perf_counter() - started,
        time.process_time() - cpu_started,
        reused,
    )
    if out_dir is not None:
        result.write(out_dir, figures=config.figures)
    return result


def train_row(
    data: Any,
    row: BiasOptimizer,
    num_steps: int,
    log_points: int,
    columns: Sequence[str],
    search: dict[str, Any] | None = None,
) -> BiasRun:
    """Train ``row`` on a solved setting (all trials at once) and measure it."""
    from ...layer.model import AttentionConfig
    from ...layer.training import TrainConfig, train

    cpu_started = time.process_time()
    options = dict(row.options)
    if row.optimizer == "polyak" and "lower_bound" not in options:
        options["lower_bound"] = [float(t.finite.loss) for t in data.theories]
    config = TrainConfig(
        model=AttentionConfig(
            head=data.head, loss=row.loss or data.loss, parameterization=row.parameterization
        ),
        optimizer=row.optimizer,
        learning_rate=row.learning_rate,
        steps=num_steps,
        log_every=max(1, num_steps // max(1, log_points)),
        optimizer_options=options,
        num_threads=1,
        schedule=row.schedule,
    )
    result = train(data.datasets, config, record_W=True)
    run = measure_run(data, row, result, columns, cpu_s=time.process_time() - cpu_started)
    return dataclasses.replace(run, search=search) if search is not None else run


def bias_table(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    settings: Sequence[str] = DEFAULT_SETTINGS,
    trials: int = 10,
    steps: int | None = None,
    optimizers: Sequence[BiasOptimizer | str] | None = None,
    norms: Sequence[str] = BIAS_NORMS,
    log_points: int = 200,
    figures: bool = True,
    progress: Callable[[str], Any] | None = None,
    resume: bool = False,
    **more: Any,
) -> BiasResult:
    """The bias table with loose keyword arguments: ``run(BiasConfig(...), out_dir=...)``.

    The arguments are the fields of :class:`BiasConfig` (``more``: the search options) and those
    of :func:`run`.
    """
    from ..._validation import InstanceOf, PathLike, check_params

    check_params(
        {"out_dir": out_dir, "norms": norms},
        {
            "out_dir": [PathLike(), None],
            "norms": [InstanceOf(list, tuple, str, name="a list of norm names")],
        },
        where="bias_table",
    )
    config = BiasConfig(
        settings=tuple(settings) if not isinstance(settings, str) else settings,  # type: ignore[arg-type]
        trials=trials,
        steps=steps,
        optimizers=None if optimizers is None else optimizers,  # type: ignore[arg-type]
        norms=tuple(norms) if not isinstance(norms, str) else norms,  # type: ignore[arg-type]
        log_points=log_points,
        figures=figures,
        **more,
    )
    return run(config, out_dir=out_dir, progress=progress, resume=resume)


def write_bias_table(
    table: BiasResult, out_dir: str | os.PathLike[str], *, figures: bool = True
) -> dict[str, Path]:
    """Write ``table`` into ``out_dir`` (:meth:`BiasResult.write`); return the files written."""
    table.write(out_dir, figures=figures)
    return dict(table.files)


def check_batch_fits(name: str, config: BiasConfig) -> None:
    """Refuse a setting whose batch of ``config.trials`` runs (one optimiser at a time, with
    ``W(t)`` recorded at ``log_points`` steps) would not fit in the available memory, from the
    options alone (:func:`attnmech.layer.resources.estimate_batch_bytes`)."""
    from ...layer.resources import check_batch_memory, estimate_batch_bytes
    from ..reproduction import EXPERIMENTS

    setting = EXPERIMENTS.get(name)
    if setting is None:
        return  # an unknown name is reported with the list of settings
    data = setting.data
    steps = max(
        (config.steps if config.steps is not None else row.num_steps for row in config.rows),
        default=1,
    )
    need = estimate_batch_bytes(
        trials=config.trials,
        n_samples=data.n_samples,
        seq_len=data.seq_len,
        vocab_size=data.vocab_size,
        embedding_dim=data.embedding_dim,
        steps=steps,
        log_every=max(1, steps // max(1, config.log_points)),
        record_W=True,
    )
    check_batch_memory(f"the bias table of {name!r} with {config.trials:,} trials", need,
                       lower="trials, steps or log_points")  # fmt: skip
