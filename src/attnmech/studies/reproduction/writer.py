"""The report writer: the ``results.json`` payload, ``curves.npz`` and ``REPRODUCTION.md``.

Every sentence is generated from the measurements; how a disagreement is explained comes from
the paper value's verdict rule, the table row's note and the setting's metrics
(``Metric.explain``), so nothing here depends on a particular setting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_savez
from ..._summary import environment_info
from ..scaffold import Report, fmt
from .measures import Metric
from .results import MetricResult, SettingResult
from .settings import INIT_TEXT
from .verdicts import AtLeast, Sample

__all__ = ["results_payload", "write_curves", "build_report", "machine_info", "command_line"]


def _ours(metric: MetricResult) -> str:
    if metric.n_finite == 0:
        return "n/a"
    if metric.values.size == 1:
        return fmt(metric.mean)
    paper = metric.measure.paper
    sample = Sample.of(metric.values)
    special = paper.rule.summary(sample) if paper is not None else None
    text = special or f"{fmt(metric.mean)} ± {fmt(metric.std)}"
    if paper is not None and isinstance(paper.rule, AtLeast):
        above = int((sample.values > paper.value).sum())
        text += f"; {above}/{sample.n} trials > {paper.value:g}"
    missing = metric.values.size - metric.n_finite
    return text + (f" ({missing} n/a)" if missing else "")


def _difference(metric: MetricResult) -> str:
    paper = metric.measure.paper
    if paper is None or metric.difference is None or not math.isfinite(metric.difference):
        return ""
    return paper.rule.format_difference(paper.value, metric.difference)


def _cell(text: str) -> str:
    """Table cell text with Markdown's column separator escaped."""
    return text.replace("|", "\\|")


def _verdict(metric: MetricResult) -> str:
    outcome = metric.outcome
    if outcome is None:
        return "—"
    return "**disagree**" if outcome == "disagree" else outcome


def _where(metric: MetricResult) -> str:
    """The percentile of the authors' value in our sampling distribution (Sampling rows)."""
    if metric.verdict is None or metric.verdict.percentile is None:
        return ""
    return f"{fmt(metric.verdict.percentile, 3)} %"


def _table(report: Report, settings: Sequence[SettingResult]) -> None:
    rows = []
    for result in settings:
        for metric in result.metrics:
            paper = metric.measure.paper
            rows.append(
                [
                    result.name,
                    _cell(metric.measure.label),
                    _cell(paper.text) if paper else "not reported (figure only)",
                    _ours(metric),
                    f"{fmt(metric.min)} – {fmt(metric.max)}" if metric.values.size > 1 else "",
                    _difference(metric),
                    _where(metric),
                    _verdict(metric),
                ]
            )
    report.table(
        [
            "setting",
            "metric",
            "authors",
            "ours (mean ± std unless stated)",
            "ours min – max",
            "ours − authors",
            "authors' value in our k-trial distribution",
            "outcome",
        ],
        rows,
    )


def _explain(result: SettingResult, metric: MetricResult) -> str:
    """One bullet: by how much ours differs from the paper, and why (from the measurements)."""
    paper = metric.measure.paper
    if paper is None:
        return ""
    if metric.n_finite == 0:
        return (
            f"- **{result.name}, {metric.measure.label}**: no finite value in any trial "
            "(for example W_svm = 0), so nothing to compare with the paper's "
            f"{paper.text}."
        )
    size = paper.rule.explain_size(paper.value, float(metric.difference or 0.0))
    text = (
        f"- **{result.name}, {metric.measure.label}**: ours {_ours(metric)} vs the authors' "
        f"{paper.text} ({paper.source}); {size}; the rule ({paper.rule.describe()}) fails."
    )
    if metric.verdict is not None and metric.verdict.percentile is not None:
        text += (
            f" The authors' value sits at the {fmt(metric.verdict.percentile, 3)}th percentile "
            "of our sampling distribution."
        )
    if metric.values.size > 1:
        inside = paper.rule.covers(paper.value, metric.min, metric.max)
        where = "inside" if inside else "outside"
        text += (
            f" The paper's value lies {where} the range of our {metric.n_finite} trials "
            f"({fmt(metric.min)} – {fmt(metric.max)})"
        )
        text += (
            ", so the gap is of the size of the trial-to-trial variation between random datasets."
            if inside
            else "."
        )
    if metric.measure.note:
        text += f" Why: {metric.measure.note}."
    for producer in result.spec.metrics:
        text += producer.explain(result, metric)
    return text


def machine_info() -> dict[str, Any]:
    """CPU cores, threads and versions of the machine that ran the experiments."""
    import torch  # noqa: F401  (so that its version and threads are reported)

    return environment_info()


def _relative_out(out_dir: Path) -> str:
    """``out_dir`` relative to the working directory (its name alone if it lies outside)."""
    try:
        rel = os.path.relpath(Path(out_dir).resolve(), Path.cwd())
    except ValueError:  # another drive
        return Path(out_dir).name
    return Path(out_dir).name if rel.startswith("..") else rel


def command_line(
    only: Sequence[str] | None,
    trials: int,
    out_dir: Path,
    steps_scale: float,
    data: str = "generated",
) -> str:
    """The ``attnmech reproduce`` command that makes this run (with a relative ``--out``)."""
    parts = ["attnmech reproduce"]
    for name in only or ():
        parts.append(f"--only {name}")
    parts += [f"--trials {trials}"]
    if data != "generated":
        parts.append(f"--data {data}")
    parts.append(f"--out {_relative_out(out_dir)}")
    command = " ".join(parts)
    if steps_scale != 1.0:
        command += f"  (steps scaled by {steps_scale:g}: run_reproduction(steps_scale=...))"
    return command


def write_curves(path: Path, settings: Sequence[SettingResult]) -> Path:
    """``curves.npz``: ``<setting>/step`` and ``<setting>/<curve>`` of shape (steps, trials)."""
    arrays: dict[str, np.ndarray] = {}
    for result in settings:
        arrays[f"{result.name}/step"] = result.steps
        arrays.update({f"{result.name}/{key}": value for key, value in result.curves.items()})
    atomic_savez(path, **arrays)
    return path


def results_payload(
    settings: Sequence[SettingResult],
    *,
    root: Path | None,
    skipped: dict[str, str] | None = None,
    command: str,
    trials: int,
    steps_scale: float,
    wall_time_s: float,
    machine: dict[str, Any],
) -> dict[str, Any]:
    """The ``results.json`` payload: the run's configuration and, per setting, every number
    (figure paths relative to ``root``)."""
    from ..._version import __version__

    return {
        "attnmech": __version__,
        "command": command,
        "trials": int(trials),
        "steps_scale": float(steps_scale),
        "wall_time_s": wall_time_s,
        "machine": machine,
        "skipped_settings": dict(skipped or {}),
        "settings": {result.name: result.to_dict(root) for result in settings},
    }


def _figure_lines(result: SettingResult) -> list[str]:
    pngs = {p.stem: p for p in result.figures if p.suffix == ".png"}
    lines: list[str] = []
    for figure in result.spec.figures:
        png = pngs.get(figure.stem(result.name))
        if png is not None:
            lines += figure.markdown(result, png)
    return lines


RULE_TEXT = (
    "One rule for every author statistic of k trials on random datasets: where the authors "
    "print their per-trial values, a two-sample test with their own spread (`mean_std`: the "
    "difference of means within 2 standard errors of the difference); otherwise the authors' "
    "value (widened by its reading uncertainty when it is read off a figure) against the "
    "sampling distribution of the same statistic over k-trial draws of our trials (`sampling`: "
    "bootstrap, 10,000 resamples of the per-trial values, or 2,000 resamples of the trials for "
    "a statistic of the mean curve such as its peak or the step of its peak; agree when the "
    "authors' value meets the central 95 % of that distribution; the table gives its "
    "percentile). A qualitative claim (`at_least`) is tested on ours only where the authors' "
    "own values pass it. Rows measuring another quantity than ours are *not comparable* "
    "(reason stated). Same-data rows (`per_trial`) compare trial by trial. With fewer than "
    "100 trials of ours the bootstrap distribution is itself uncertain: the run of 100 trials "
    "decides."
)


def _rules(report: Report, settings: Sequence[SettingResult]) -> None:
    """The rule, stated once, and each rule kind used in this run with its parameters."""
    seen: dict[str, list[str]] = {}
    for result in settings:
        for metric in result.metrics:
            paper = metric.measure.paper
            if paper is None:
                continue
            seen.setdefault(paper.rule.kind, [])
            text = paper.rule.describe()
            if text not in seen[paper.rule.kind]:
                seen[paper.rule.kind].append(text)
    report.paragraph(RULE_TEXT)
    report.bullets(f"`{kind}`: " + "; ".join(texts) for kind, texts in seen.items())
    report.paragraph(
        "`ours − authors` is a difference, a ratio (×) for log-axis values, or the largest "
        "per-trial difference for same-data rows."
    )


def _origins(report: Report, settings: Sequence[SettingResult]) -> None:
    """Where every author number comes from."""
    items = []
    for result in settings:
        for metric in result.metrics:
            paper = metric.measure.paper
            if paper is not None:
                items.append(
                    f"{result.name}, {metric.measure.label}: {paper.text} — {paper.source}"
                )
    if items:
        report.heading("Origin of every author number")
        report.bullets(items)


def _first_trials(report: Report, settings: Sequence[SettingResult]) -> None:
    """The 10 vs N trials table, when the run has more than 10 trials."""
    rows = []
    total = first_n = 0
    for result in settings:
        for metric in result.metrics:
            first = metric.first
            if first is None or metric.verdict is None:
                continue
            total, first_n = result.trials, int(first.get("trials", 10))
            rows.append(
                [
                    result.name,
                    _cell(metric.measure.label),
                    _cell(metric.measure.paper.text) if metric.measure.paper else "",
                    first.get("mean"),
                    first["outcome"],
                    "" if first.get("percentile") is None else f"{fmt(first['percentile'], 3)} %",
                    metric.mean,
                    metric.outcome,
                    _where(metric),
                ]
            )
    if not rows:
        return
    report.heading(f"{first_n} vs {total} trials")
    report.paragraph(
        f"Every compared row judged twice by this run: on its first {first_n} trials only (the "
        f"authors' trial count; the sampling distribution bootstrapped from those {first_n}) and "
        f"on all {total} trials."
    )
    report.table(
        [
            "setting",
            "metric",
            "authors",
            f"ours, first {first_n} (mean)",
            f"outcome, {first_n} trials",
            f"percentile, {first_n}",
            f"ours, {total} (mean)",
            f"outcome, {total} trials",
            f"percentile, {total}",
        ],
        rows,
    )


def build_report(
    settings: Sequence[SettingResult],
    *,
    command: str,
    trials: int,
    steps_scale: float,
    wall_time_s: float,
    machine: dict[str, Any],
    skipped: dict[str, str] | None = None,
) -> Report:
    """``REPRODUCTION.md`` as a :class:`~attnmech.studies.scaffold.Report`."""
    from ..._version import __version__

    compared = [(s, m) for s in settings for m in s.metrics if m.measure.paper is not None]
    failing = [(s, m) for s, m in compared if m.outcome == "disagree"]
    agreeing = [(s, m) for s, m in compared if m.outcome == "agree"]
    apart = [(s, m) for s, m in compared if m.outcome == "not comparable"]
    minutes = wall_time_s / 60.0
    seeds = sorted({s.spec.init_seed for s in settings}) or [0]
    optimizers = ", ".join(sorted({s.spec.optimizer_text for s in settings}))
    inits = ", ".join(sorted({INIT_TEXT.get(s.spec.init, s.spec.init) for s in settings}))
    sources = sorted({s.spec.data.source for s in settings})
    if sources == ["generated"]:
        data = (
            "datasets `make_dataset(n, T, K, d, graph=..., seed=trial)` for trial = "
            f"0..{trials - 1}"
        )
    else:
        data = f"datasets and initialisations from the data source(s) {', '.join(sources)}"
    report = Report("Reproduction of the paper's experiments")
    report.paragraph(
        "Li, Huang, Ildiz, Rawat, Oymak, *Mechanics of Next Token Prediction with Self-Attention*, "
        "AISTATS 2024 (arXiv:2403.08081); the settings are in "
        "docs/theory.md#the-papers-experiments. Generated by attnmech "
        f"{__version__}; every number below is computed by this run."
    )
    facts = [
        f"Command: `{command}`",
        f"Trials per setting: {trials} ({data}; all trials of a setting in one batched "
        f"`train` call; {optimizers}, float64, "
        + (
            f"init {inits} with seed {', '.join(map(str, seeds))})"
            if sources == ["generated"]
            else "each trial from its source's initialisation: the authors' float32 W0)"
        ),
        "Steps: "
        + ("as in the paper" if steps_scale == 1.0 else f"the paper's × {fmt(steps_scale)}"),
        f"**Measured wall time: {fmt(wall_time_s, 5)} s ({fmt(minutes, 3)} min)** for the "
        f"training and measuring of every setting (figures not included), on "
        f"{machine['cpu_cores_available']} available CPU core(s) ({machine['platform']}, torch "
        f"{machine['torch']}).",
    ]
    if skipped:
        facts.append(
            "Not run with this data source: "
            + "; ".join(f"`{name}` ({why})" for name, why in skipped.items())
        )
    facts.append(
        f"**{len(agreeing)} agree, {len(failing)} disagree, {len(apart)} not comparable** (of "
        f"{len(compared)} author numbers; every disagreement with its cause below)."
    )
    report.bullets(facts)
    report.heading("Results")
    _table(report, settings)
    _rules(report, settings)
    _first_trials(report, settings)
    report.heading("How our numbers differ from the paper's, and why")
    report.paragraph(
        "General reasons, true of every row: with the generated data, the authors' datasets "
        "and initialisations are other random draws (`--data authors` replays theirs for "
        "the settings whose notebooks print them), ours are `make_dataset(seed=trial)` and "
        "one seeded initialisation; and some of the authors' numbers are read off figures."
        if sources == ["generated"]
        else "Same data as the authors: the rows marked `per_trial` compare our trials one "
        "by one with the notebook's; the others compare with the authors' summary values."
    )
    kinds: list[type[Metric]] = []  # each metric class once, in order of appearance
    for result in settings:
        kinds += [type(m) for m in result.spec.metrics if type(m) not in kinds]
    for kind in kinds:
        lines = kind.report_paragraph(settings)
        if lines:
            report.paragraph("\n".join(lines))
    if failing:
        report.paragraph(f"{len(failing)} number(s) disagree under the rule:")
        report.paragraph("\n".join(_explain(s, m) for s, m in failing))
    else:
        report.paragraph("No author number disagrees with ours under the rule above.")
    if apart:
        report.paragraph(f"{len(apart)} number(s) are not comparable:")
        report.bullets(
            f"**{s.name}, {m.measure.label}** (authors {m.measure.paper.text}): "
            f"{m.verdict.reason if m.verdict else ''}"
            for s, m in apart
            if m.measure.paper is not None
        )
    report.paragraph(
        f"The other {len(agreeing)} compared numbers agree; their differences are in the "
        "table's `ours − authors` column."
    )
    for result in settings:
        spec = result.spec
        report.heading(f"{spec.name}: {spec.title}")
        report.paragraph(spec.description)
        report.paragraph(
            f"{spec.sizes}, {spec.data.graph} data, head `{spec.head}`, loss `{spec.loss}`, "
            f"{spec.optimizer_text} lr {fmt(spec.learning_rate)}, {result.num_steps} steps, "
            f"{result.trials} trials. Wall time {fmt(result.wall_time_s, 3)} s (training "
            f"{fmt(result.train_time_s, 3)} s)."
        )
        if result.notes:
            report.bullets(result.notes)
        lines = _figure_lines(result)
        if lines:
            report.paragraph("\n".join(lines))
    _origins(report, settings)
    report.heading("Files")
    report.bullets(
        [
            "`results.json`: per setting its configuration, per metric mean, std, min, max, "
            "per-trial values, the paper's value, the difference and the verdict, and the wall "
            "time.",
            "`curves.npz`: every curve behind the figures, `<setting>/<curve>` of shape "
            "(steps, trials) and `<setting>/step`.",
            "One PNG per figure (and a PDF where the run wrote PDFs).",
        ]
    )
    return report
