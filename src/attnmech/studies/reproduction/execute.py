"""Running one setting: :func:`run_setting`, its table rows and its data source.

:func:`run_setting` draws the datasets from the setting's data source, solves the theory of
each, trains all trials in one batched ``train`` call with the setting's optimiser, runs the
setting's metrics in order and reads the table rows off the curves. It never looks at a
setting's kind or head: what to record is the setting's list of metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np

from ..._validation import POSITIVE_INT, POSITIVE_REAL, check_params, register
from ...errors import InvalidParameterError
from ...layer.model import AttentionConfig
from ...theory.solve import solve
from ._deps import make_train_config, train
from .measures import RunRecord, extract, run_metrics, sampling_draws
from .registry import select
from .results import MetricResult, SettingResult, json_float, summarise
from .settings import Measure, Setting
from .sources import AUTHORS_UNAVAILABLE, DATA_SOURCES, load_source

__all__ = ["FIRST_TRIALS", "RUN_PARAMS", "measure_row", "run_setting", "with_data"]

logger = logging.getLogger(__name__)

RUN_PARAMS = register(
    "run_reproduction", {"trials": [POSITIVE_INT], "steps_scale": [POSITIVE_REAL]}
)
"""The number of trials and the factor on each setting's step count."""





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
    check_setting_memory(setting, trials, steps_scale)  # the batch fits, before any drawing
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
    rows = [
        row
        for measure in setting.measures
        if (row := measure_row(measure, record.steps, record.curves[measure.curve])) is not None
    ]
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


FIRST_TRIALS = 10
"""A run of more trials also judges every row on its first this many (the 10 vs N table)."""


def measure_row(measure: Measure, steps: np.ndarray, curve: np.ndarray) -> MetricResult | None:
    """One table row: the per-trial values read off ``curve`` (shape (L, trials)), the sampling
    distribution its rule needs, the verdict, and (for runs of more than
    :data:`FIRST_TRIALS` trials) the same row on the first :data:`FIRST_TRIALS` trials."""
    values = extract(measure, steps, curve)
    if values is None:
        return None
    rule = None if measure.paper is None else measure.paper.rule
    k = None if rule is None else rule.trials_drawn()
    draws = None if k is None else sampling_draws(measure, steps, curve, k)
    first = None
    if measure.paper is not None and curve.shape[1] > FIRST_TRIALS:
        sub = curve[:, :FIRST_TRIALS]
        sub_row = measure_row(measure, steps, sub)
        if sub_row is not None and sub_row.verdict is not None:
            first = {
                "trials": FIRST_TRIALS,
                "mean": json_float(sub_row.mean),
                "outcome": sub_row.verdict.outcome,
                "percentile": json_float(sub_row.verdict.percentile),
            }
    return summarise(measure, values, draws, first)


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


def check_setting_memory(setting: Any, trials: int, steps_scale: float = 1.0) -> None:
    """Refuse ``trials`` of ``setting`` (trained in one batch) when their estimated memory
    (:func:`attnmech.layer.resources.estimate_batch_bytes`) exceeds what is available, before
    any dataset is drawn or solved."""
    from ...layer.resources import check_batch_memory, estimate_batch_bytes

    data = setting.data
    need = estimate_batch_bytes(
        trials=int(trials),
        n_samples=data.n_samples,
        seq_len=data.seq_len,
        vocab_size=data.vocab_size,
        embedding_dim=data.embedding_dim,
        steps=setting.scaled_steps(float(steps_scale)),
        log_every=setting.log_every,
        record_W=any(getattr(m, "needs_W_history", False) for m in setting.metrics),
    )
    check_batch_memory(f"setting {setting.name!r} with {int(trials):,} trials", need,
                       lower="trials (or steps_scale)")  # fmt: skip
