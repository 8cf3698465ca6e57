"""Metrics: small objects that turn a training run into named curves (steps x trials).

The runner trains, then calls each metric a setting lists, in order, with a :class:`RunRecord`
(the datasets, theories, the :class:`TrainResult`, the curves so far). A metric returns its
curves (``dict`` of name to array of shape (L, trials)) and may add artefacts (for figures),
notes and diagnostics to the record, and explain a disagreement with the paper. Adding a metric
is one class; a setting names it in ``Setting.metrics``.

:func:`extract` reads one number per trial off a curve for a table row (:class:`Measure`).
"""

from __future__ import annotations

import abc
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...data.dataset import Dataset
from ...layer.model import AttentionConfig, run_with_cache
from ...theory.finite import project
from ...theory.local import solve_local
from ...theory.solve import Theory
from ..scaffold import fmt
from ._deps import correlation, fitted_scale, run_finite_trajectory, verify
from .results import json_float
from .settings import Measure, Setting

__all__ = [
    "RunRecord",
    "Metric",
    "History",
    "OneMinus",
    "LabelMiss",
    "LocalTPG",
    "Verification",
    "Difference",
    "Squared",
    "Rise",
    "MaxAttention",
    "AuthorsCorrFin",
    "RegPath",
    "extract",
    "LOCAL_DIFFERS",
    "DRIFT",
]

LOCAL_DIFFERS = 0.999  # corr(W_svm, W_svm^loc) below this: GD took a local direction
DRIFT = 0.01  # a local corr that falls this much below its peak is reported as drifting


@dataclass(eq=False)
class RunRecord:
    """What the runner recorded, handed to every metric in turn.

    Attributes
    ----------
    setting : Setting
    datasets : list of Dataset
    theories : list of Theory
        The global theory of each trial.
    model : AttentionConfig
    run : TrainResult
    steps : ndarray of shape (L,)
        The logged steps.
    curves : dict of str to ndarray of shape (L, trials)
        Filled by the metrics, in order.
    artefacts : dict
        Objects for figures and callers (``local_theories``, ``verification``...).
    notes : list of str
        Measured diagnostics in words, for the report.
    extra : dict
        JSON-friendly diagnostics (``results.json``'s ``diagnostics``).
    timings : dict of str to float
        Seconds per metric (``<name>_s``).
    """

    setting: Setting
    datasets: list[Dataset]
    theories: list[Theory]
    model: AttentionConfig
    run: Any
    steps: np.ndarray
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    artefacts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        """Number of trials (one dataset each)."""
        return len(self.datasets)

    @property
    def W_history(self) -> np.ndarray:
        """``W`` at every logged step, shape (L, trials, d, d)."""
        return np.asarray(self.run.history["W"])


class Metric(abc.ABC):
    """Base of the metrics (abstract): ``name``, the ``curves`` it produces, what it needs.

    Subclasses set ``curves`` (names) and implement :meth:`compute`; ``needs_W_history`` asks the
    runner to record ``W`` at every logged step; ``requires`` names curves an earlier metric must
    have produced; ``artefacts`` names what it adds to the run's artefacts (for figures).
    """

    name: ClassVar[str] = ""
    needs_W_history: ClassVar[bool] = False
    artefacts: ClassVar[tuple[str, ...]] = ()
    curves: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()

    @abc.abstractmethod
    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """The metric's curves for one finished run: curve name -> array (one value per logged
        step and trial, or per trial), for every name in ``curves``."""

    def explain(self, result: Any, metric: Any) -> str:
        """Measured facts behind a disagreement of ``metric`` (a MetricResult), or ``""``."""
        return ""

    @classmethod
    def report_paragraph(cls, settings: Any) -> list[str]:
        """Lines for the report's discussion, across every setting run (default: none)."""
        return []


@dataclass(frozen=True)
class History(Metric):
    """Curves the training history records (``train(..., theory=...)``), by key."""

    curves: tuple[str, ...] = (
        "corr_svm",
        "corr_svm_fin",
        "corr_perp_svm",
        "fin_gap_traj",
        "top_scc_mass",
        "label_attention",
        "fin_gap",
        "norm",
        "loss",
    )
    name: ClassVar[str] = "history"

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """The listed keys of the training history, each as an array of shape (L, trials)."""
        out = {}
        for key in self.curves:
            values = np.asarray(record.run.history[key], dtype=np.float64)
            out[key] = values[:, None] if values.ndim == 1 else values  # (L, trials)
        return out


@dataclass(frozen=True)
class _CurveOf(Metric):
    """A curve ``target`` computed from one curve ``source`` an earlier metric produced."""

    source: str
    target: str

    @property
    def curves(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.target,)

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.source,)


@dataclass(frozen=True)
class OneMinus(_CurveOf):
    """``1 - curve`` (for log axes), from a curve an earlier metric produced."""

    name: ClassVar[str] = "one_minus"

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """``1 - source`` under the name ``target``."""
        return {self.target: 1.0 - record.curves[self.source]}


@dataclass(frozen=True)
class LabelMiss(Metric):
    """``1 - attention on the label`` at every logged step, to full relative precision.

    With the iden head the attention on the label is ``p_y``, and ``1 - p_y = -expm1(log p_y)``
    keeps its precision where ``1 - p_y`` itself rounds to 0. (For another head, list
    ``OneMinus("label_attention", ...)`` instead.)
    """

    target: str = "one_minus_label_attention"
    name: ClassVar[str] = "label_miss"
    needs_W_history: ClassVar[bool] = True

    @property
    def curves(self) -> tuple[str, ...]:  # type: ignore[override]
        """The one curve it produces, ``target``."""
        return (self.target,)

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """``-expm1(log p_y)`` at every logged ``W``, averaged over each trial's real samples."""
        cache, L, B = _history_cache(record)
        log_prob = cache["log_prob_label"].cpu().numpy().reshape(L, B, -1)  # (L, B, n)
        return {self.target: _sample_mean(-np.expm1(log_prob), record.datasets)}


def _history_cache(record: RunRecord) -> tuple[Any, int, int]:
    """``run_with_cache`` at every logged ``W`` of every trial: the cache, ``L`` and ``B``."""
    W_history = record.W_history
    L, B, d, _ = W_history.shape
    _, cache = run_with_cache(W_history.reshape(L * B, d, d), record.datasets * L, record.model)
    return cache, L, B


def _sample_mean(values: np.ndarray, datasets: Sequence[Dataset]) -> np.ndarray:
    """Mean of ``values`` (L, B, n) over each trial's real samples (padding rows left out)."""
    n_real = np.array([ds.n_samples for ds in datasets])
    real = np.arange(values.shape[-1])[None, :] < n_real[:, None]  # (B, n)
    return np.where(real, values, 0.0).sum(-1) / n_real


@dataclass(frozen=True)
class LocalTPG(Metric):
    """The local token-priority graphs of docs/theory.md#local-convergence, and W(t) measured
    against them.

    After training, the attention mass of the final ``W`` selects the tokens of each sample
    (:func:`attnmech.theory.local.solve_local`); the curves are corr(W(t), W_svm^loc) and
    corr(W(t), W_fin^loc + R W_svm^loc) with ``R`` fitted per step. Adds ``local_theories`` to
    the artefacts, and notes on how many trials went local and whether W(t) drifted away.
    """

    curves: tuple[str, ...] = (
        "corr_svm_local",
        "corr_svm_fin_local",
        "fin_gap_local",
        "fin_gap_global",
    )
    requires: tuple[str, ...] = ("norm",)
    name: ClassVar[str] = "local_tpg"
    needs_W_history: ClassVar[bool] = True
    artefacts: ClassVar[tuple[str, ...]] = ("local_theories",)

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """Solves the local theory at the final ``W`` and returns the correlations and exact
        finite-part gaps of W(t) against it (and the global gap); adds notes and diagnostics."""
        W = np.asarray(record.run.W)
        _, cache = run_with_cache(W, record.datasets, record.model)
        mass = cache["token_mass"].cpu().numpy()  # (B, n, K)
        theories = [
            solve_local(ds, mass[b, : ds.n_samples]) for b, ds in enumerate(record.datasets)
        ]
        record.artefacts["local_theories"] = theories
        W_history = record.W_history
        W_svm = np.stack([t.W_svm for t in theories])[None]  # (1, B, d, d)
        W_fin = np.stack([t.W_fin for t in theories])[None]
        R = np.asarray(fitted_scale(W_history, W_svm, W_fin))  # (L, B)
        finite = np.isfinite(R)
        target = W_fin + np.where(finite, R, 0.0)[..., None, None] * W_svm
        curves = {
            self.curves[0]: np.asarray(correlation(W_history, W_svm)),
            self.curves[1]: np.where(finite, np.asarray(correlation(W_history, target)), np.nan),
            self.curves[2]: _exact_gap(W_history, theories),
            self.curves[3]: _exact_gap(W_history, record.theories),
        }
        self._diagnose(record, curves, theories)
        return curves

    def _diagnose(
        self, record: RunRecord, curves: dict[str, np.ndarray], local_theories: list[Theory]
    ) -> None:
        trials = record.trials
        pairs = zip(record.theories, local_theories, strict=True)
        between = np.array([correlation(g.W_svm, loc.W_svm) for g, loc in pairs], dtype=np.float64)
        went_local = ~(between >= LOCAL_DIFFERS)  # NaN (a zero W_svm) counts as different
        local = curves[self.curves[0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN trials (W_svm^loc = 0)
            peak = np.nanmax(local, axis=0)
        final = local[-1]
        norm = record.curves[self.requires[0]]
        peak_step = np.argmax(np.where(np.isfinite(local), local, -np.inf), axis=0)
        growing = norm[-1] > norm[peak_step, np.arange(trials)]
        drifting = (final < peak - DRIFT) & growing
        record.notes.append(
            f"GD converged to a local direction (corr(W_svm, W_svm^loc) < {LOCAL_DIFFERS}) in "
            f"{int(went_local.sum())} of {trials} trials; in the others the local TPG gives the "
            "global prediction."
        )
        if drifting.any():
            idx = np.flatnonzero(drifting)
            record.notes.append(
                f"In {idx.size} of {trials} trials (trials {idx.tolist()}) corr(W, W_svm^loc) "
                f"peaked (mean peak {np.nanmean(peak[idx]):.3f}) and then fell to "
                f"{np.nanmean(final[idx]):.3f} "
                "by the last step while ||W|| kept growing. This is the signature of normalised "
                "GD following floating-point rounding error once the attention saturates: the "
                "true gradient is then exponentially small, below float64 resolution of a "
                "softmax backward pass written as s (g - <s, g>), which loses its shift "
                "invariance when s is within 1e-16 of one-hot; normalised GD scales that "
                "rounding error up to full steps."
            )
        record.extra.update(
            {
                "corr_W_svm_global_vs_local": [json_float(v) for v in between],
                "went_local": [bool(v) for v in went_local],
                "n_went_local": int(went_local.sum()),
                "corr_svm_local_peak": [json_float(v) for v in peak],
                "drifting_trials": np.flatnonzero(drifting).tolist(),
                "local_svm_zero": [bool(t.svm.is_zero) for t in local_theories],
            }
        )

    @classmethod
    def report_paragraph(cls, settings: Any) -> list[str]:
        """A paragraph on the settings where W(t) drifted away from the local prediction."""
        drifting = [
            (r, r.extra["drifting_trials"]) for r in settings if r.extra.get("drifting_trials")
        ]
        if not drifting:
            return []
        listing = "; ".join(
            f"{r.name}: {len(idx)} of {r.trials} trials, corr(W, W_svm^loc) peaking at "
            f"{fmt(np.nanmean([r.extra['corr_svm_local_peak'][t] for t in idx]))} on average "
            f"and ending at {fmt(np.nanmean(r.curves['corr_svm_local'][-1][idx]))}"
            for r, idx in drifting
        )
        return [
            "**Numerical drift in the local settings.** In some gen-head trials W(t) reaches the "
            "local prediction and then drifts away from it while ||W|| keeps growing "
            f"({listing}). Once the attention saturates, the true gradient is exponentially small "
            "and its float64 rounding error dominates; normalised GD rescales every step to "
            "length lr, so it follows that error. The final local correlations below are lowered "
            "by it; the per-trial peaks show the local prediction was approached.",
            "",
        ]

    def explain(self, result: Any, metric: Any) -> str:
        """How many trials went local, the per-trial peaks of the local correlation and any
        drift, for a disagreement on ``corr_svm`` or the local correlation."""
        extra = result.extra
        went = np.asarray(extra.get("went_local", []), dtype=bool)
        values = np.asarray(metric.values, dtype=np.float64)
        text = ""
        if metric.measure.curve == "corr_svm" and went.size == values.size:
            text += f" GD took a local direction in {int(went.sum())} of {went.size} trials"
            if went.any() and (~went).any():
                text += (
                    f"; their mean global corr is {fmt(np.nanmean(values[went]))}, against "
                    f"{fmt(np.nanmean(values[~went]))} in the trials that converged globally"
                )
            text += (
                ", so the mean depends on how many of the random draws lead GD to a local "
                "direction."
            )
        if metric.measure.curve == self.curves[0]:
            peaks = extra.get("corr_svm_local_peak", [])
            peak = np.array([np.nan if v is None else v for v in peaks], dtype=np.float64)
            if peak.size:
                text += (
                    f" Over training the per-trial peak of corr(W, W_svm^loc) averages "
                    f"{fmt(np.nanmean(peak))} (lowest {fmt(np.nanmin(peak))}): GD did approach "
                    "the local prediction."
                )
        drifting = extra.get("drifting_trials", [])
        if drifting:
            text += (
                f" In {len(drifting)} trial(s) W(t) then drifted away from it (see the note in "
                "this setting's section: floating-point rounding amplified by normalised GD)."
            )
        return text


@dataclass(frozen=True)
class Verification(Metric):
    """The trained weights against the theory (:func:`attnmech.verify`); no curves.

    Adds the :class:`VerificationReport` to the artefacts as ``verification``.
    """

    name: ClassVar[str] = "verify"
    artefacts: ClassVar[tuple[str, ...]] = ("verification",)

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """Adds the :class:`VerificationReport` of the run as ``verification``; no curves."""
        record.artefacts["verification"] = verify(record.datasets, record.run, record.theories)
        return {}


def _exact_gap(W_history: np.ndarray, theories: list[Theory]) -> np.ndarray:
    """``||Proj_{S_fin} W(t) - W_fin||_F`` with each trial's exact ``W_fin``: shape (L, B).

    NaN for a trial whose ``S_fin`` is ``{0}`` (no SCC with two tokens: no finite part to
    compare; the gap would be 0 by construction).
    """
    out = np.full(W_history.shape[:2], np.nan)
    for b, theory in enumerate(theories):
        basis = np.asarray(theory.finite.basis)
        if basis.shape[0] == 0:
            continue
        gap = project(W_history[:, b], basis) - np.asarray(theory.W_fin)
        out[:, b] = np.linalg.norm(gap, axis=(-2, -1))
    return out


@dataclass(frozen=True)
class Difference(Metric):
    """``curve a - curve b`` (for a qualitative claim such as "local beats global by 0.2")."""

    first: str
    second: str
    target: str
    name: ClassVar[str] = "difference"

    @property
    def curves(self) -> tuple[str, ...]:  # type: ignore[override]
        """The one curve it produces, ``target``."""
        return (self.target,)

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        """The two curves it subtracts, ``first`` and ``second``."""
        return (self.first, self.second)

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """``first - second`` under the name ``target``."""
        return {self.target: record.curves[self.first] - record.curves[self.second]}


@dataclass(frozen=True)
class Squared(_CurveOf):
    """``curve ** 2`` (the authors also plot the squared norm gap)."""

    name: ClassVar[str] = "squared"

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """``source ** 2`` under the name ``target``."""
        return {self.target: record.curves[self.source] ** 2}


@dataclass(frozen=True)
class Rise(_CurveOf):
    """``curve(t) - curve(0)``: whether a curve rises from its start (or first dips)."""

    name: ClassVar[str] = "rise"

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """``source(t) - source(0)`` under the name ``target``."""
        curve = record.curves[self.source]
        return {self.target: curve - curve[:1]}


@dataclass(frozen=True)
class MaxAttention(Metric):
    """The authors' "attention": the largest single-position attention per sample,
    ``attn.max(-1)``, averaged over samples; and ``1 -`` it, summed over the other positions
    (full relative precision where ``1 - max`` would round to 0)."""

    curves: tuple[str, ...] = ("max_attention", "one_minus_max_attention")
    name: ClassVar[str] = "max_attention"
    needs_W_history: ClassVar[bool] = True

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """The largest attention per sample, and the attention on all other positions, averaged
        over each trial's real samples at every logged ``W``."""
        cache, L, B = _history_cache(record)
        attention = cache["attention"].cpu().numpy().reshape(L, B, *cache["attention"].shape[1:])
        attention = np.where(np.isfinite(attention), attention, 0.0)  # (L, B, n, T)
        top = attention.max(-1)
        first = attention.argmax(-1)[..., None]
        mask = np.ones(attention.shape, dtype=bool)
        np.put_along_axis(mask, first, False, axis=-1)
        others = np.where(mask, attention, 0.0).sum(-1)
        return {
            self.curves[0]: _sample_mean(top, record.datasets),
            self.curves[1]: _sample_mean(others, record.datasets),
        }


@dataclass(frozen=True)
class AuthorsCorrFin(Metric):
    """corr(W(t), W_fin(T) + R W_svm) as the authors define it: ``W_fin(T)`` trained by the same
    optimiser from zero on the reduced data for the run's steps, and ``R = <W(T) - W_fin(T),
    W_svm> / ||W_svm||^2`` fitted once, at the last step (ours, ``corr_svm_fin``, fits ``R(t)``
    at every step with the exact ``W_fin``)."""

    target: str = "corr_svm_fin_authors"
    name: ClassVar[str] = "authors_corr_fin"
    needs_W_history: ClassVar[bool] = True

    @property
    def curves(self) -> tuple[str, ...]:  # type: ignore[override]
        """The one curve it produces, ``target``."""
        return (self.target,)

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """corr(W(t), W_fin(T) + R W_svm) with ``R`` fitted at the last step (NaN where it is
        not finite); records ``authors_R`` in the diagnostics."""
        W_history = record.W_history  # (L, B, d, d)
        last = int(record.steps[-1])
        fin = run_finite_trajectory(
            record.datasets, record.theories, record.run.config, steps=[last]
        )
        W_fin = np.asarray(fin.W[-1])  # (B, d, d)
        W_svm = np.stack([np.asarray(t.W_svm) for t in record.theories])
        R = np.asarray(fitted_scale(W_history[-1], W_svm, W_fin))  # (B,)
        finite = np.isfinite(R)
        target = W_fin + np.where(finite, R, 0.0)[:, None, None] * W_svm
        corr = np.asarray(correlation(W_history, target[None]))
        record.extra["authors_R"] = [json_float(v) for v in R]
        return {self.target: np.where(finite[None, :], corr, np.nan)}


@dataclass(frozen=True)
class RegPath(Metric):
    """The regularization path ``W(R) = argmin_{||W|| <= R} L(W)`` of each trial
    (:func:`attnmech.regularization_path`) on a grid of radii: corr(W(R), W_svm) and
    ``||Proj_{S_fin} W(R) - W_fin||_F`` against R (no curves over steps: artefact ``regpath``
    and ``extra["regpath"]``)."""

    radii: tuple[float, ...] = (0.5, 1, 2, 4, 8, 16, 32)
    max_trials: int = 10
    name: ClassVar[str] = "regpath"
    artefacts: ClassVar[tuple[str, ...]] = ("regpath",)

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """Computes the regularization path of the first ``max_trials`` trials and records it as
        artefact and diagnostics; no curves."""
        from ...layer.regpath import regularization_path

        radii = np.asarray(self.radii, dtype=np.float64)
        trials = min(record.trials, self.max_trials)  # the first trials: a path is ~1 s each
        corr = np.full((radii.size, trials), np.nan)
        gap = np.full((radii.size, trials), np.nan)
        converged = np.zeros((radii.size, trials), dtype=bool)
        pairs = zip(record.datasets[:trials], record.theories[:trials], strict=True)
        for b, (ds, theory) in enumerate(pairs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # non-convergence is recorded below
                path = regularization_path(ds, radii, config=record.model)
            W = np.asarray(path.W)
            corr[:, b] = np.asarray(correlation(W, np.asarray(theory.W_svm)[None]))
            basis = np.asarray(theory.finite.basis)
            gap[:, b] = np.linalg.norm(project(W, basis) - np.asarray(theory.W_fin), axis=(-2, -1))
            converged[:, b] = np.asarray(path.converged)
        record.artefacts["regpath"] = {"radii": radii, "corr_svm": corr, "fin_gap": gap}
        record.extra["regpath"] = {
            "radii": radii.tolist(),
            "corr_svm": [[json_float(v) for v in row] for row in corr],
            "fin_gap": [[json_float(v) for v in row] for row in gap],
            "trials": trials,
            "all_converged": bool(converged.all()),
        }
        return {}


def run_metrics(record: RunRecord) -> None:
    """Run the setting's metrics in order, filling ``record.curves`` (read-only arrays)."""
    for metric in record.setting.metrics:
        missing = [key for key in metric.requires if key not in record.curves]
        if missing:
            raise KeyError(
                f"metric {metric.name!r} of setting {record.setting.name!r} needs curves "
                f"{missing}; list the metric that records them before it"
            )
        started = time.perf_counter()
        record.curves.update(metric.compute(record))
        record.timings[f"{metric.name}_s"] = time.perf_counter() - started
    for array in record.curves.values():
        array.flags.writeable = False


def extract(measure: Measure, steps: np.ndarray, curve: np.ndarray) -> np.ndarray | None:
    """Per-trial values of the table row ``measure`` (None when the run is too short for it).

    ``curve`` has shape (L, trials); ``mean_peak_step`` gives one number in all.
    """
    if measure.mode == "final":
        return curve[-1]
    if measure.mode == "step":
        step = int(measure.step if measure.step is not None else -1)
        index = int(np.searchsorted(steps, step))
        if index >= steps.size or steps[index] != step:
            return None
        return curve[index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean = np.nanmean(curve, axis=1)
    if measure.mode in ("mean_peak", "mean_peak_step"):
        if not np.isfinite(mean).any():
            return np.full(curve.shape[1], np.nan)
        index = int(np.nanargmax(mean))
        if measure.mode == "mean_peak_step":
            return np.array([float(steps[index])])
        return curve[index]
    reached = curve >= measure.threshold  # (L, B)
    first = np.argmax(reached, axis=0)
    return np.where(reached.any(axis=0), steps[first].astype(np.float64), np.nan)


def _mean_curve_statistic(
    measure: Measure, steps: np.ndarray, curve: np.ndarray
) -> Any:
    """``statistic(idx, axis=1)`` for :func:`bootstrap_distribution`: the row's statistic of
    the mean curve over the trials ``idx`` (rows of resampled trial indices)."""

    def statistic(idx: np.ndarray, axis: int = 1) -> np.ndarray:
        picked = curve[:, idx.astype(np.int64)]  # (L, R, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(picked, axis=2)  # (L, R)
        filled = np.where(np.isfinite(mean), mean, -np.inf)
        peak = np.argmax(filled, axis=0)  # (R,)
        ok = np.isfinite(filled[peak, np.arange(peak.size)])
        if measure.mode == "mean_peak_step":
            out = steps[peak].astype(np.float64)
        else:
            out = mean[peak, np.arange(peak.size)]
        return np.where(ok, out, np.nan)

    return statistic


def sampling_draws(
    measure: Measure,
    steps: np.ndarray,
    curve: np.ndarray,
    k: int,
    *,
    resamples: int | None = None,
    seed: int = 0,
) -> np.ndarray | None:
    """The sampling distribution of the row's statistic over ``k``-trial draws of our trials.

    For a per-trial row (``final``, ``step``, ``first_step_at_least``) the statistic is the mean
    over ``k`` trials, resampled from the per-trial values; for ``mean_peak`` and
    ``mean_peak_step`` the trials are resampled and the peak (or its step) of their mean curve
    recomputed. None when the run is too short for the row. Deterministic for a given ``seed``.
    """
    from ..._summary import bootstrap_distribution

    if measure.mode in ("mean_peak", "mean_peak_step"):
        statistic = _mean_curve_statistic(measure, steps, curve)
        # 2000 resamples: (L, 2000, k) floats per chunk stays small; quantiles at 2.5 % are stable
        return bootstrap_distribution(
            np.arange(curve.shape[1], dtype=np.float64),
            statistic,
            size=k,
            resamples=resamples or 2000,
            seed=seed,
        )
    values = extract(measure, steps, curve)
    if values is None:
        return None
    return bootstrap_distribution(values, size=k, resamples=resamples or 10_000, seed=seed)
