"""The authors' own data in the pipeline: per-trial comparison with their notebooks.

:func:`authors_variant` turns a registry setting (with ``data.source == "authors"``) into one
that also replays the authors' training on the same data and initialisations
(:func:`attnmech.studies.authors.compare_with_notebook`: their ``-log(p_y + eps)``, their normalised
step) and compares, trial by trial, three columns: what the notebook printed, that replay, and
the pipeline's own run (``attnmech.train`` from the same initialisations, exact log-loss).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from .figures import CurveFigure
from .measures import Metric, RunRecord
from .results import json_float
from .settings import Measure, Setting
from .verdicts import PaperValue, PerTrial

__all__ = [
    "NotebookReplay",
    "AuthorsTraining",
    "authors_variant",
    "NOTEBOOK_CURVES",
    "PER_TRIAL_TOL",
]

NOTEBOOK_CURVES = {
    "corr_svm": ("corr_svm", "corr(W, W_svm)"),
    "corr_fin": ("corr_svm_fin_authors", "corr(W, W_fin(T) + R W_svm) (authors' R)"),
    "corr_proj": ("corr_perp_svm", "corr(Proj_{S_fin-perp} W, W_svm)"),
    "norm_gap": ("fin_gap_traj", "||Proj_{S_fin} W - W_fin(T)||"),
    "corr_local_svm": ("corr_svm_local", "corr(W, W_svm^loc)"),
}
"""Notebook metric -> (pipeline curve, label)."""

PER_TRIAL_TOL = 1e-4
"""The tolerance for a same-data per-trial comparison."""

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
        """Replays the authors' training and compares it per trial with their notebook, in
        ``extra["notebook"]`` (a note instead when no notebook prints this data); no curves."""
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
            curve, label = NOTEBOOK_CURVES.get(metric, (None, metric))
            pipeline = record.curves.get(curve) if curve else None
            ours = None if pipeline is None else np.asarray(pipeline[-1][:trials])
            rows[metric] = {
                "label": label,
                "notebook": [json_float(v) for v in values],
                "replay": [json_float(v) for v in cmp.ours[metric]],
                "replay_abs_diff": [json_float(v) for v in cmp.abs_diff(metric)],
                "replay_abs_diff_either_phase": [
                    json_float(v) for v in cmp.abs_diff_either_phase(metric)
                ],
                "pipeline": None if ours is None else [json_float(v) for v in ours],
                "pipeline_abs_diff": None
                if ours is None
                else [json_float(v) for v in np.abs(ours - np.asarray(values))],
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
            "loss_max_abs_diff": json_float(cmp.loss_max_abs_diff),
            "metrics": rows,
        }
        return {}

    @classmethod
    def report_paragraph(cls, settings: Any) -> list[str]:
        """The report's notebook-comparison section of every setting that has one."""
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


def _saturated_fraction(datasets: Any, W_history: np.ndarray) -> np.ndarray:
    """Per logged step and trial, the fraction of samples whose ``p_y`` (summed from a float64
    softmax, as the authors' loss does) is exactly 1.0: shape (L, B)."""
    out = np.zeros(W_history.shape[:2])
    for b, ds in enumerate(datasets):
        E = np.asarray(ds.embeddings, dtype=np.float64)  # (K, d)
        tokens = ds.padded()  # (n, T), -1 padding
        real = tokens >= 0
        keys = E[np.where(real, tokens, 0)]  # (n, T, d)
        query = E[ds.last_tokens]  # (n, d)
        scores = np.einsum("ntd,lde,ne->lnt", keys, W_history[:, b], query)  # (L, n, T)
        scores = np.where(real[None], scores, -np.inf)
        shifted = np.exp(scores - scores.max(-1, keepdims=True))
        soft = shifted / shifted.sum(-1, keepdims=True)
        label = tokens == np.asarray(ds.labels)[:, None]
        p_y = np.where(label[None], soft, 0.0).sum(-1)  # (L, n)
        out[:, b] = (p_y == 1.0).mean(-1)
    return out


@dataclass(frozen=True)
class AuthorsTraining(Metric):
    """The authors' training (``train_authors``: ``-log(p_y + eps)`` summed from the softmax,
    ``g / (||g|| + eps)``) from the same data and initialisations as the pipeline's run:
    ``corr_svm_authors_training`` (their corr(W, W_svm) curve), ``one_minus_corr_authors_
    training`` and ``saturated_fraction`` (samples whose ``p_y`` is exactly 1.0 in float64
    under their loss: the label's share of the gradient is then exactly 0)."""

    eps: float | None = None
    curves: tuple[str, ...] = (
        "corr_svm_authors_training",
        "one_minus_corr_authors_training",
        "saturated_fraction",
    )
    name: ClassVar[str] = "authors_training"

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """Trains with ``train_authors`` from the run's initialisation and returns corr(W, W_svm),
        its complement and the saturated fraction at the pipeline's logged steps."""
        from ..authors import FLOAT64_EPS, train_authors
        from ._deps import correlation

        setting = record.setting
        steps = record.steps
        every = int(steps[1] - steps[0]) if steps.size > 1 else int(steps[-1])
        W0 = np.asarray(record.run.config.init, dtype=np.float64)
        run = train_authors(
            record.datasets,
            W0,
            head=setting.head,
            loss=setting.loss,
            learning_rate=setting.learning_rate,
            num_steps=int(steps[-1]),
            eps=FLOAT64_EPS if self.eps is None else self.eps,
            loss_every=0,
            record_every=max(every, 1),
        )
        hist = np.concatenate([W0[None], np.asarray(run.W_history)])  # (1 + H, B, d, d)
        hist_steps = np.concatenate([[0], np.asarray(run.history_steps)])
        index = np.searchsorted(hist_steps, steps)
        index = np.minimum(index, hist_steps.size - 1)
        W_hist = hist[index]  # aligned with the pipeline's logged steps
        W_svm = np.stack([np.asarray(t.W_svm) for t in record.theories])[None]
        corr = np.asarray(correlation(W_hist, W_svm))
        return {
            self.curves[0]: corr,
            self.curves[1]: 1.0 - corr,
            self.curves[2]: _saturated_fraction(record.datasets, W_hist),
        }


_TRAINING_FIGURES = (
    CurveFigure(
        "authors-training",
        (
            ("one_minus_corr", "attnmech.train (exact log-loss)"),
            ("one_minus_corr_authors_training", "the authors' loss $-\\log(p_y + \\epsilon)$"),
        ),
        "1 - corr(W, W_svm) (log scale)",
        "same data and inits, two trainers: 1 - corr(W, W_svm)",
        "Same data and initialisations, two trainers: 1 - corr(W, W_svm) with attnmech.train "
        "(exact log-loss) and with the authors' -log(p_y + eps) (bold), log axis.",
        logy=True,
        bold="one_minus_corr_authors_training",
    ),
    CurveFigure(
        "saturation",
        (("saturated_fraction", "samples with $p_y = 1.0$ exactly (authors' loss)"),),
        "fraction of samples",
        "softmax saturation under the authors' loss",
        "Under the authors' loss, the fraction of samples whose p_y rounds to exactly 1.0 in "
        "float64: the label's share of the gradient (1 - p_y) is then exactly 0 while the "
        "competitors' shares remain, so the update g / (||g|| + eps) turns away from W_svm.",
        per_trial=True,
    ),
)


def authors_variant(setting: Setting, *, eps: float | None = None) -> Setting:
    """``setting`` (already on the ``authors`` source) with the notebook replay and per-trial
    rows: each notebook metric with a pipeline curve gets a row compared trial by trial
    (:class:`PerTrial`, tolerance :data:`PER_TRIAL_TOL`). Normalised GD takes the authors' form
    ``g / (||g|| + eps)`` with their eps (float64 machine epsilon; ``ReproductionConfig.ngd_eps``
    overrides it)."""
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
    metrics: tuple[Any, ...] = (*setting.metrics, NotebookReplay(eps=eps))
    figures = setting.figures
    if setting.head == "iden" and "one_minus_corr" in produced:
        metrics += (AuthorsTraining(eps=eps),)
        figures = (*figures, *_TRAINING_FIGURES)
    options = dict(setting.optimizer_options)
    if setting.optimizer == "ngd":
        from ..authors import FLOAT64_EPS

        # the authors' normalised step is g / (||g|| + eps) with their float64 machine eps
        options["eps"] = FLOAT64_EPS
    return replace(
        setting,
        title=setting.title + " [authors' data]",
        metrics=metrics,
        measures=tuple(measures),
        figures=figures,
        optimizer_options=options,
    )
