"""The replay set against what the notebooks printed, trial by trial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._results import readonly
from ..._validation import check_params
from ...errors import InvalidParameterError
from .._notebook_records import NOTEBOOK_RECORDS, NotebookRecord
from ..scaffold import fmt
from .data import SETTINGS, TRIALS_PARAMS, AuthorsSetting, authors_trials
from .training import _finite_part_trajectories, authors_metrics, train_authors

__all__ = ["NotebookComparison", "compare_with_notebook"]


@dataclass(frozen=True)
class NotebookComparison:
    """Our replay next to a notebook's printed values, per trial.

    Attributes
    ----------
    setting : AuthorsSetting
    record : NotebookRecord
    data_equal : ndarray of bool of shape (trials,)
        Regenerated sequences and labels equal the printed ones.
    attempts_equal : ndarray of bool of shape (trials,)
        Rejection-loop draws equal the printed count (True where the notebook does not print it).
    init_variance_equal : ndarray of bool of shape (trials,)
        ``torch.var`` of our initial weight, to 4 decimals, equals the printed one.
    ours : dict of str to ndarray of shape (trials,)
    ours_previous_step : dict of str to ndarray of shape (trials,)
        The same metrics one update earlier (``W(T-1)``, ``W_fin(T-1)``, the same fitted
        formula). Normalised GD does not stop: where it bounces in a period-2 cycle, the notebook
        may show the other phase.
    notebook : dict of str to ndarray of shape (trials,)
    loss_max_abs_diff : float
        Largest difference between our losses (rounded to 4 decimals) and the printed ones.
    eps : float
    num_steps : int
    """

    setting: AuthorsSetting
    record: NotebookRecord
    data_equal: np.ndarray
    attempts_equal: np.ndarray
    init_variance_equal: np.ndarray
    ours: dict[str, np.ndarray]
    ours_previous_step: dict[str, np.ndarray]
    notebook: dict[str, np.ndarray]
    loss_max_abs_diff: float
    eps: float
    num_steps: int

    def abs_diff(self, metric: str) -> np.ndarray:
        """``|ours - notebook|`` per trial for ``metric``."""
        return np.abs(self.ours[metric] - self.notebook[metric])

    def max_abs_diff(self) -> dict[str, float]:
        """The largest ``|ours - notebook|`` over the trials, per metric."""
        return {m: float(self.abs_diff(m).max()) for m in self.ours}

    def abs_diff_either_phase(self, metric: str) -> np.ndarray:
        """``min(|ours - notebook|, |ours one step earlier - notebook|)`` per trial."""
        prev = np.abs(self.ours_previous_step[metric] - self.notebook[metric])
        return np.minimum(self.abs_diff(metric), prev)

    def table(self) -> str:
        """A Markdown table: per trial and metric, the notebook's value, ours, |difference|."""
        metrics = list(self.ours)
        head = "| trial | data equal | " + " | ".join(
            f"{m} notebook | {m} ours | abs diff" for m in metrics
        )
        lines = [head + " |", "|" + "---|" * (2 + 3 * len(metrics))]
        diffs = {m: self.abs_diff(m) for m in metrics}  # once per metric, not once per cell
        for t in range(self.data_equal.size):
            cells = [str(t), "yes" if self.data_equal[t] else "NO"]
            for m in metrics:
                cells += [
                    fmt(self.notebook[m][t], 10),
                    fmt(self.ours[m][t], 10),
                    fmt(diffs[m][t], 3),
                ]
            lines.append("| " + " | ".join(cells) + " |")
        cells = ["max", "all" if self.data_equal.all() else "NO"]
        for m in metrics:
            cells += ["", "", fmt(diffs[m].max(), 3)]
        lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def compare_with_notebook(
    name: str,
    trials: int | None = None,
    *,
    num_steps: int | None = None,
    eps: float | None = None,
) -> NotebookComparison:
    """Regenerate a notebook's trials, train them as the authors did and compare per trial.

    Parameters
    ----------
    name : str
        A key of :data:`NOTEBOOK_RECORDS`.
    trials : int, optional
        The first ``trials`` trials (default: all the notebook printed, 10).
    num_steps : int, optional
        Fewer steps for a quick check (the final metrics then differ from the notebook's; the
        printed losses up to that step still apply).
    eps : float, optional
        Override the eps inside the log (0: the plain log-loss).
    """
    record = NOTEBOOK_RECORDS.get(name)
    if record is None:
        raise InvalidParameterError(
            f"no notebook values for setting {name!r}; available: "
            f"{', '.join(sorted(NOTEBOOK_RECORDS))}"
        )
    if trials is not None:
        check_params({"trials": trials}, TRIALS_PARAMS, where="compare_with_notebook")
    trials = record.num_trials if trials is None else int(trials)
    if trials > record.num_trials:
        raise InvalidParameterError(
            f"the notebook printed {record.num_trials} trials of {name!r}; ask for at most "
            "that many"
        )
    setting = SETTINGS[name]
    steps = setting.num_steps if num_steps is None else int(num_steps)
    eps_used = setting.eps if eps is None else float(eps)
    tr = authors_trials(name, trials)
    data_equal = np.array(
        [
            np.array_equal(ds.padded(), record.sequences[t])
            and np.array_equal(ds.labels, record.labels[t])
            for t, ds in enumerate(tr.datasets)
        ]
    )
    run = train_authors(
        tr.datasets,
        tr.W0,
        head=setting.head,
        loss=setting.loss,
        learning_rate=setting.learning_rate,
        num_steps=steps,
        eps=eps_used if setting.loss == "log" else 0.0,
        loss_every=500,
    )
    k = min(run.loss_steps.size, record.loss_steps.size)
    loss_diff = (
        float(np.abs(np.round(run.losses[:, :k], 4) - record.losses[:trials, :k]).max())
        if k
        else float("nan")
    )
    from ...theory.solve import solve

    theories = [solve(ds) for ds in tr.datasets]
    W_fin_T, W_fin_prev = _finite_part_trajectories(tr.datasets, theories, setting, steps, eps_used)

    def metric_rows(W: Any, W_fin: Any) -> list[dict[str, float]]:
        """One metrics row per trial of the weights ``W`` (attention at ``W_before_last``)."""
        return [
            authors_metrics(
                ds,
                np.asarray(W[t]),
                setting,
                W_attention=np.asarray(run.W_before_last[t]),
                W_fin_T=W_fin[t],
                theory=theories[t],
            )
            for t, ds in enumerate(tr.datasets)
        ]

    prev_rows = metric_rows(run.W_before_last, W_fin_prev)
    rows = metric_rows(run.W, W_fin_T)
    metrics = [m for m in record.metrics if m in rows[0]]
    ours = {m: readonly([r[m] for r in rows], np.float64) for m in metrics}
    ours_prev = {m: readonly([r[m] for r in prev_rows], np.float64) for m in metrics}
    notebook = {m: readonly(record.metrics[m][:trials], np.float64) for m in metrics}
    return NotebookComparison(
        setting=setting,
        record=record,
        data_equal=readonly(data_equal, bool),
        attempts_equal=readonly(
            np.ones(trials, bool)
            if record.attempts is None
            else tr.attempts == record.attempts[:trials],
            bool,
        ),
        init_variance_equal=readonly(
            [
                round(float(np.var(w, ddof=1)), 4) == v
                for w, v in zip(tr.W0, record.init_variance, strict=False)
            ],
            bool,
        ),
        ours=ours,
        ours_previous_step=ours_prev,
        notebook=notebook,
        loss_max_abs_diff=loss_diff,
        eps=eps_used,
        num_steps=steps,
    )
