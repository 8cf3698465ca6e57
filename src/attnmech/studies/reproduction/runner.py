"""The runner: one function that runs any setting, and the whole reproduction.

:func:`run_setting` draws the datasets from the setting's data source, solves the theory of
each, trains all trials in one batched ``train`` call with the setting's optimiser, runs the
setting's metrics in order and reads the table rows off the curves. It never looks at a
setting's kind or head: what to record is the setting's list of metrics.
:func:`run_reproduction` runs the selected settings and writes figures, ``results.json``,
``curves.npz`` and ``REPRODUCTION.md``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..._validation import POSITIVE_INT, POSITIVE_REAL, check_params, register
from ...errors import InvalidParameterError
from ...layer.model import AttentionConfig
from ...theory.solve import solve
from ._deps import make_train_config, train
from .figures import draw_figures
from .measures import RunRecord, extract, run_metrics
from .registry import select
from .results import ReproductionResult, SettingResult, summarise
from .settings import Setting
from .sources import AUTHORS_UNAVAILABLE, DATA_SOURCES, load_source
from .writer import command_line, machine_info, write_curves, write_report, write_results

__all__ = [
    "run_setting",
    "run_experiment",
    "run_reproduction",
    "with_data",
    "Progress",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str], Any]


RUN_PARAMS = register(
    "run_reproduction", {"trials": [POSITIVE_INT], "steps_scale": [POSITIVE_REAL]}
)


def run_setting(
    setting: Setting,
    *,
    trials: int = 10,
    steps_scale: float = 1.0,
    progress: bool = False,
) -> tuple[SettingResult, dict[str, Any]]:
    """Train one setting (all trials in one batched ``train`` call) and measure it.

    Parameters
    ----------
    setting : Setting
    trials : int, default=10
        One dataset per trial, from the setting's data source.
    steps_scale : float, default=1.0
        Train ``round(setting.num_steps * steps_scale)`` steps (for quick checks).
    progress : bool, default=False
        Show a progress bar while training.

    Returns
    -------
    result : SettingResult
        Without figures (:func:`run_reproduction` draws them).
    artefacts : dict
        ``datasets``, ``theories``, ``run`` (the TrainResult), ``timings`` and whatever the
        setting's metrics add (``local_theories``, ``verification``).
    """
    check_params({"trials": trials, "steps_scale": steps_scale}, RUN_PARAMS, where="run_setting")
    trials, num_steps = int(trials), setting.scaled_steps(float(steps_scale))
    started = time.perf_counter()
    model = AttentionConfig(head=setting.head, loss=setting.loss, dtype="float64")
    train_options = {
        "model": model,
        "optimizer": setting.optimizer,
        "learning_rate": setting.learning_rate,
        "steps": num_steps,
        "log_every": setting.log_every,
        "init": setting.init,
        "seed": setting.init_seed,
    }
    config = make_train_config(setting.optimizer_options, **train_options)  # checked first
    source = load_source(setting.data, trials)
    datasets = source.datasets
    if source.init is not None:  # the source's own initialisations (the authors' float32 W0)
        train_options["init"] = source.init
        config = make_train_config(setting.optimizer_options, **train_options)
    theories = [solve(ds) for ds in datasets]
    timings = {"data_and_theory_s": time.perf_counter() - started}
    record_W = any(metric.needs_W_history for metric in setting.metrics)
    train_started = time.perf_counter()
    run = train(datasets, config, theory=theories, record_W=record_W, progress=progress)
    timings["train_s"] = time.perf_counter() - train_started
    record = RunRecord(
        setting=setting,
        datasets=datasets,
        theories=theories,
        model=model,
        run=run,
        steps=np.asarray(run.history["step"], dtype=np.int64),
        timings=timings,
    )
    run_metrics(record)
    rows = []
    for measure in setting.measures:
        values = extract(measure, record.steps, record.curves[measure.curve])
        if values is not None:
            rows.append(summarise(measure, values))
    result = SettingResult(
        spec=setting,
        num_steps=num_steps,
        trials=trials,
        steps=record.steps,
        curves=record.curves,
        metrics=tuple(rows),
        wall_time_s=time.perf_counter() - started,
        train_time_s=timings["train_s"],
        notes=tuple(record.notes),
        extra=record.extra,
    )
    artefacts = {
        "source": source,
        "datasets": datasets,
        "theories": theories,
        "run": run,
        "timings": record.timings,
        **record.artefacts,
    }
    return result, artefacts


def run_experiment(
    spec: Setting, *, trials: int = 10, steps_scale: float = 1.0
) -> tuple[SettingResult, dict[str, Any]]:
    """Alias of :func:`run_setting` (the name of the single-module version)."""
    return run_setting(spec, trials=trials, steps_scale=steps_scale)


def with_data(setting: Setting, data: str, *, authors_eps: float | None = None) -> Setting:
    """``setting`` with its datasets from the source ``data``.

    For ``"authors"`` the setting also gets the :class:`~attnmech.studies.reproduction.replay.
    NotebookReplay` metric (the authors' training on the same data, compared per trial with
    their notebook) and, where the notebook prints per-trial values, table rows that compare
    our trials one by one with them.
    """
    if data not in DATA_SOURCES:
        raise InvalidParameterError(
            f"unknown data source {data!r}; choose from {', '.join(DATA_SOURCES)}"
        )
    if data == setting.data.source:
        return setting
    new = replace(setting, data=replace(setting.data, source=data))
    if data == "authors":
        from .replay import authors_variant

        new = authors_variant(new, eps=authors_eps)
    return new


def _with_source(
    settings: list[Setting], data: str | None, named: bool, authors_eps: float | None
) -> tuple[list[Setting], dict[str, str]]:
    if data is None:
        return settings, {}
    if data not in DATA_SOURCES:
        raise InvalidParameterError(
            f"unknown data source {data!r}; choose from {', '.join(DATA_SOURCES)}"
        )
    if data != "authors":
        return [with_data(s, data) for s in settings], {}
    usable = [s for s in settings if s.data.authors_key]
    skipped = {
        s.name: AUTHORS_UNAVAILABLE.get(s.name, "no authors' data for this setting")
        for s in settings
        if not s.data.authors_key
    }
    if named and skipped:
        name, why = next(iter(skipped.items()))
        raise InvalidParameterError(
            f"setting {name!r} has no authors' data ({why}); run it with --data generated, or "
            f"choose among {', '.join(s.name for s in select(None) if s.data.authors_key)}"
        )
    return [with_data(s, data, authors_eps=authors_eps) for s in usable], skipped


def run_reproduction(
    out_dir: str | os.PathLike[str],
    *,
    only: str | Sequence[str] | None = None,
    trials: int = 10,
    steps_scale: float = 1.0,
    progress: Progress | None = None,
    formats: Sequence[str] = ("png", "pdf"),
    data: str | None = None,
    authors_eps: float | None = None,
) -> ReproductionResult:
    """Run the paper's experiments and write figures, ``results.json`` and ``REPRODUCTION.md``.

    Parameters
    ----------
    out_dir : path
        Folder for every output (created if missing; files in it are replaced atomically).
    only : str or sequence of str, optional
        Run only these settings (names of :data:`~attnmech.studies.reproduction.EXPERIMENTS`); default
        all of them.
    trials : int, default=10
        Trials per setting (datasets with seeds ``0 .. trials - 1``).
    steps_scale : float, default=1.0
        Multiply every setting's number of steps (for quick checks; the comparison with the
        paper is meaningful at 1.0).
    progress : callable, optional
        ``progress(message)`` is called with one line of text before and after each setting.
    formats : sequence of str, default=("png", "pdf")
        Formats of every figure (the report embeds the PNGs and links the PDFs).
    data : str, optional
        The data source of every setting (default: each setting's own, ``"generated"`` for the
        paper's entries) (a key of
        :data:`~attnmech.studies.reproduction.sources.DATA_SOURCES`). ``"authors"``: the authors' own
        datasets and initialisations for the settings that have them (``only`` unset: the
        others are skipped and listed in the report; named in ``only``: an error), each
        setting also replayed with the authors' training (:func:`attnmech.studies.authors.
        train_authors`) and compared per trial with what their notebook prints.
    authors_eps : float, optional
        With ``data="authors"``: the eps inside the authors' ``-log(p_y + eps)`` for the
        replay (default their float64 machine epsilon; 0 for the exact log-loss).

    Returns
    -------
    ReproductionResult

    Raises
    ------
    ExperimentNotFoundError
        If ``only`` names an unknown setting.
    InvalidParameterError
        If ``trials`` or ``steps_scale`` is not positive.
    """
    check_params(
        {"trials": trials, "steps_scale": steps_scale}, RUN_PARAMS, where="run_reproduction"
    )
    trials, steps_scale = int(trials), float(steps_scale)
    settings, skipped = _with_source(select(only), data, only is not None, authors_eps)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress if progress is not None else (lambda message: logger.info("%s", message))
    results: list[SettingResult] = []
    for index, setting in enumerate(settings, start=1):
        say(f"[{index}/{len(settings)}] {setting.name}: {setting.title} ({trials} trials)")
        setting_started = time.perf_counter()
        result, artefacts = run_setting(setting, trials=trials, steps_scale=steps_scale)
        figures = draw_figures(result, artefacts, out, formats)
        wall = time.perf_counter() - setting_started
        result = replace(result, wall_time_s=wall, figures=figures)
        results.append(result)
        failing = sum(m.agrees is False for m in result.metrics)
        compared = sum(m.agrees is not None for m in result.metrics)
        say(
            f"[{index}/{len(settings)}] {setting.name}: done in {wall:.1f} s; "
            f"{compared - failing}/{compared} paper numbers agree"
        )
    curves_path = write_curves(out / "curves.npz", results)
    wall_time = time.perf_counter() - started
    machine = machine_info()
    names = None if only is None else [s.name for s in settings]
    command = command_line(names, trials, out, steps_scale, data or "generated")
    context: dict[str, Any] = {
        "skipped": skipped,
        "command": command,
        "trials": trials,
        "steps_scale": steps_scale,
        "wall_time_s": wall_time,
        "machine": machine,
    }
    results_path = write_results(out / "results.json", results, **context)
    report_path = write_report(out / "REPRODUCTION.md", results, **context)
    n_figures = sum(len(r.figures) for r in results)
    say(f"wrote {report_path}, {results_path} and {n_figures} figure files in {wall_time:.1f} s")
    return ReproductionResult(
        out_dir=out,
        settings=tuple(results),
        trials=trials,
        steps_scale=steps_scale,
        wall_time_s=wall_time,
        results_path=results_path,
        report_path=report_path,
        curves_path=curves_path,
        figures=tuple(p for r in results for p in r.figures),
    )
