"""Result types of the experiments pipeline: one number, one setting, one reproduction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .settings import Measure, Setting
from .verdicts import Sample, Verdict

__all__ = ["MetricResult", "SettingResult", "summarise", "json_float"]


def json_float(value: Any) -> float | None:
    """``float(value)``, or None for None, NaN and infinities (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def relative(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` as a string (as is when ``root`` is None or not above it)."""
    if root is None:
        return str(path)
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass(frozen=True, slots=True, eq=False)
class MetricResult:
    """One measured number: per-trial values, their summary, and the paper's value.

    ``values`` has one entry per trial (one entry in all for ``mean_peak_step``); the summary is
    over its finite entries (``n_finite`` of them). ``difference`` is ``ours - paper`` (a ratio
    for log-scale paper values); ``agrees`` is None when the paper gives no number.
    """

    measure: Measure
    values: np.ndarray
    mean: float
    std: float
    min: float
    max: float
    n_finite: int
    difference: float | None
    agrees: bool | None
    verdict: Verdict | None = None
    first: dict[str, Any] | None = None

    @property
    def outcome(self) -> str | None:
        """``"agree"``, ``"disagree"``, ``"not comparable"``, or None without an author value."""
        return None if self.verdict is None else self.verdict.outcome

    def to_dict(self) -> dict[str, Any]:
        """The row as ``results.json`` holds it."""
        paper = self.measure.paper
        return {
            "label": self.measure.label,
            "curve": self.measure.curve,
            "mode": self.measure.mode,
            "step": self.measure.step,
            "mean": json_float(self.mean),
            "std": json_float(self.std),
            "min": json_float(self.min),
            "max": json_float(self.max),
            "n_finite": self.n_finite,
            "values": [json_float(v) for v in self.values],
            "paper": None if paper is None else paper.to_dict(),
            "difference": json_float(self.difference),
            "difference_kind": None if paper is None else paper.rule.difference_kind,
            "agrees": self.agrees,
            "outcome": self.outcome,
            "reason": None if self.verdict is None else self.verdict.reason,
            "percentile": None if self.verdict is None else json_float(self.verdict.percentile),
            "first_trials": self.first,
        }


def summarise(
    measure: Measure,
    values: np.ndarray,
    draws: np.ndarray | None = None,
    first: dict[str, Any] | None = None,
) -> MetricResult:
    """Summary of the per-trial ``values`` of ``measure``, with the verdict on the paper's value.

    ``draws``: the sampling distribution of the row's statistic for a :class:`Sampling` rule;
    ``first``: the same row on the run's first trials only (the 10 vs N trials table).
    """
    values = np.asarray(values, dtype=np.float64).copy()
    values.flags.writeable = False
    sample = Sample.of(values, draws)
    if sample.n:
        low, high = float(sample.values.min()), float(sample.values.max())
    else:
        low = high = math.nan
    difference = agrees = verdict = None
    if measure.paper is not None:
        difference = measure.paper.difference_of(sample) if sample.n else math.nan
        verdict = measure.paper.verdict(sample)
        agrees = verdict.agrees
    return MetricResult(
        measure,
        values,
        sample.mean,
        sample.std,
        low,
        high,
        sample.n,
        difference,
        agrees,
        verdict,
        first,
    )


@dataclass(frozen=True, slots=True, eq=False)
class SettingResult:
    """The outcome of one setting.

    Attributes
    ----------
    spec : Setting
    num_steps : int
        Steps trained (``spec.num_steps`` times ``steps_scale``).
    trials : int
    steps : ndarray of shape (L,)
        The logged steps.
    curves : dict of str to ndarray of shape (L, trials)
        Every curve the setting's metrics produced (read-only).
    metrics : tuple of MetricResult
        The table rows (rows for steps beyond a shortened run are left out).
    wall_time_s, train_time_s : float
        The whole setting (data, theory, training, figures) and the ``train`` call alone.
    figures : tuple of Path
        Files written (PNG and PDF).
    notes : tuple of str
        Measured diagnostics (for local settings: in how many trials GD took a local direction,
        and any drift of W(t) away from it).
    extra : dict
        JSON-friendly diagnostics behind the notes.
    """

    spec: Setting
    num_steps: int
    trials: int
    steps: np.ndarray
    curves: dict[str, np.ndarray]
    metrics: tuple[MetricResult, ...]
    wall_time_s: float
    train_time_s: float
    figures: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The setting's name."""
        return self.spec.name

    def metric(self, key: str) -> MetricResult:
        """The metric named ``key`` (as in ``results.json``)."""
        for result in self.metrics:
            if result.measure.key == key:
                return result
        keys = [m.measure.key for m in self.metrics]
        raise KeyError(f"{self.name} has no metric {key!r}; it has {keys}")

    def to_dict(self, root: Path | None = None) -> dict[str, Any]:
        """The setting's entry in ``results.json`` (figure paths relative to ``root``)."""
        return {
            "title": self.spec.title,
            "description": self.spec.description,
            "config": self.spec.config(self.trials, self.num_steps),
            "metrics": {m.measure.key: m.to_dict() for m in self.metrics},
            "wall_time_s": self.wall_time_s,
            "train_time_s": self.train_time_s,
            "figures": [relative(p, root) for p in self.figures],
            "notes": list(self.notes),
            "diagnostics": self.extra,
        }
