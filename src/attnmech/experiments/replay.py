"""The authors' own data in the pipeline: per-trial comparison with their notebooks.

:func:`authors_variant` turns a registry setting (with ``data.source == "authors"``) into one
that also replays the authors' training on the same data and initialisations
(:func:`attnmech.authors.compare_with_notebook`: their ``-log(p_y + eps)``, their normalised
step) and compares, trial by trial, three columns: what the notebook printed, that replay, and
the pipeline's own run (``attnmech.train`` from the same initialisations, exact log-loss).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from .measures import Metric, RunRecord, _json_float
from .settings import Measure, Setting
from .verdicts import PaperValue, PerTrial

__all__ = ["NotebookReplay", "authors_variant", "NOTEBOOK_CURVES", "PER_TRIAL_TOL"]

NOTEBOOK_CURVES = {
    "corr_svm": ("corr_svm", "corr(W, W_svm)"),
    "corr_fin": ("corr_svm_fin_authors", "corr(W, W_fin(T) + R W_svm) (authors' R)"),
    "corr_proj": ("corr_perp_svm", "corr(Proj_{S_fin-perp} W, W_svm)"),
    "norm_gap": ("fin_gap_traj", "||Proj_{S_fin} W - W_fin(T)||"),
    "corr_local_svm": ("corr_svm_local", "corr(W, W_svm^loc)"),
}
"""Notebook metric -> (pipeline curve, label)."""

PER_TRIAL_TOL = 1e-4
"""The issue's tolerance for a same-data per-trial comparison."""

_WHY = (
    "same data and initialisations; the remaining differences come from the training: ours is "
    "attnmech.train (exact log-loss, no eps, batched einsum), theirs -log(p_y + eps) through "
    "per-model matmuls, and normalised GD never stops, so a trial in a period-2 oscillation "
    "(norm gap, local trial 1) shows the other phase of the same pair"
)


@dataclass(frozen=True)
class NotebookReplay(Metric):
    """The authors' training on the authors' data, compared per trial with their notebook.

    ``eps``: the eps inside their log (None: theirs, the float64 machine epsilon; 0: exact).
    Writes ``extra["notebook"]`` (JSON) and a section of the report; no curves.
    """

    eps: float | None = None
    name: ClassVar[str] = "notebook_replay"

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        from ..authors import NOTEBOOK_RECORDS, compare_with_notebook

        key = record.setting.data.authors_key
        if key not in NOTEBOOK_RECORDS:
            record.notes.append(
                f"No notebook prints this run's data or values: the datasets are the authors' "
                f"generator stream for {key!r} (torch seed 1), not checked against printed data."
            )
            return {}
        trials = min(record.trials, NOTEBOOK_RECORDS[key].num_trials)
        cmp = compare_with_notebook(key, trials, num_steps=int(record.steps[-1]), eps=self.eps)
        rows: dict[str, Any] = {}
        for metric, values in cmp.notebook.items():
            curve = NOTEBOOK_CURVES.get(metric, (None, metric))[0]
            pipeline = record.curves.get(curve) if curve else None
            ours = None if pipeline is None else np.asarray(pipeline[-1][:trials])
            rows[metric] = {
                "label": NOTEBOOK_CURVES.get(metric, (None, metric))[1],
                "notebook": [_json_float(v) for v in values],
                "replay": [_json_float(v) for v in cmp.ours[metric]],
                "replay_abs_diff": [_json_float(v) for v in cmp.abs_diff(metric)],
                "replay_abs_diff_either_phase": [
                    _json_float(v) for v in cmp.abs_diff_either_phase(metric)
                ],
                "pipeline": None if ours is None else [_json_float(v) for v in ours],
                "pipeline_abs_diff": None
                if ours is None
                else [_json_float(v) for v in np.abs(ours - np.asarray(values))],
            }
        record.extra["notebook"] = {
            "setting": key,
            "notebook": cmp.setting.notebook,
            "commit": cmp.setting.commit,
            "trials": trials,
            "eps": cmp.eps,
            "num_steps": cmp.num_steps,
            "data_equal": [bool(v) for v in cmp.data_equal],
            "attempts_equal": [bool(v) for v in cmp.attempts_equal],
            "init_variance_equal": [bool(v) for v in cmp.init_variance_equal],
            "loss_max_abs_diff": _json_float(cmp.loss_max_abs_diff),
            "metrics": rows,
        }
        return {}

    @classmethod
    def report_paragraph(cls, settings: Any) -> list[str]:
        lines: list[str] = []
        for result in settings:
            info = result.extra.get("notebook")
            if not info:
                continue
            lines += _section(result.name, info)
        return lines


def _cell(value: Any, digits: int = 10) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _section(name: str, info: dict[str, Any]) -> list[str]:
    trials = info["trials"]
    lines = [
        f"### Same data as the authors: {name} (notebook `{info['notebook']}`, commit "
        f"{info['commit'][:7]})",
        "",
        f"Datasets equal the printed ones in {sum(info['data_equal'])}/{trials} trials; "
        f"rejection-loop draws in {sum(info['attempts_equal'])}/{trials}; printed "
        f"var(W0) in {sum(info['init_variance_equal'])}/{trials}; printed losses (4 decimals, "
        f"every 500 steps) reproduced to {_cell(info['loss_max_abs_diff'], 3)}. Replay: the "
        f"authors' training (`train_authors`, eps = {info['eps']:.3g}, {info['num_steps']} "
        "steps); pipeline: `attnmech.train` from the same initialisations (exact log-loss). "
        "W_svm: ours is exact, theirs SCS at 1e-5.",
        "",
    ]
    for row in info["metrics"].values():
        has_pipe = row["pipeline"] is not None
        head = ["trial", "notebook", "replay", "|replay − nb|"]
        if has_pipe:
            head += ["pipeline", "|pipeline − nb|"]
        lines += [f"{row['label']}:", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "---|" * len(head))
        for t in range(trials):
            cells = [
                str(t),
                _cell(row["notebook"][t]),
                _cell(row["replay"][t]),
                _cell(row["replay_abs_diff"][t], 2),
            ]
            if has_pipe:
                cells += [_cell(row["pipeline"][t]), _cell(row["pipeline_abs_diff"][t], 2)]
            lines.append("| " + " | ".join(cells) + " |")
        worst = [
            "**max**",
            "",
            "",
            f"**{max(v for v in row['replay_abs_diff'] if v is not None):.2e}**",
        ]
        if has_pipe:
            worst += ["", f"**{max(v for v in row['pipeline_abs_diff'] if v is not None):.2e}**"]
        lines += ["| " + " | ".join(worst) + " |", ""]
        either = max(v for v in row["replay_abs_diff_either_phase"] if v is not None)
        lines += [
            f"Max |replay − notebook| taking the closer of our steps T−1 and T: {either:.2e}.",
            "",
        ]
    return lines


def authors_variant(setting: Setting, *, eps: float | None = None) -> Setting:
    """``setting`` (already on the ``authors`` source) with the notebook replay and per-trial
    rows: each notebook metric with a pipeline curve gets a row compared trial by trial
    (:class:`PerTrial`, tolerance :data:`PER_TRIAL_TOL`)."""
    from ..authors import NOTEBOOK_RECORDS

    record = NOTEBOOK_RECORDS.get(setting.data.authors_key)
    measures = list(setting.measures)
    produced = {key for metric in setting.metrics for key in metric.curves}
    if record is not None:
        for metric, values in record.metrics.items():
            curve, label = NOTEBOOK_CURVES.get(metric, (None, metric))
            if curve is None or curve not in produced:
                continue
            measures.append(
                Measure(
                    f"{curve}@final_vs_notebook",
                    f"{label}, final, per trial vs the notebook (same data)",
                    curve,
                    paper=PaperValue(
                        f"notebook per trial ({len(values)} trials)",
                        float(np.mean(values)),
                        PerTrial(tuple(float(v) for v in values), tol=PER_TRIAL_TOL),
                        "authors' notebook, printed per trial",
                    ),
                    note=_WHY,
                )
            )
    return replace(
        setting,
        title=setting.title + " [authors' data]",
        metrics=(*setting.metrics, NotebookReplay(eps=eps)),
        measures=tuple(measures),
    )
