"""Figures as objects: each renders itself from a setting's result and says how the report
embeds it.

A figure object has ``needs_curves`` (curve names it reads), ``stem(setting_name)`` (the file
name without suffix), ``render(result, artefacts)`` (a matplotlib Figure) and
``markdown(result, png)`` (lines of the report). :class:`CurveFigure` draws mean ± std bands
(geometric on a log axis) with the paper's values; :class:`BandFigure` draws
:func:`attnmech.report.plot_metric_bands` (the demo's style); :class:`GraphFigure` draws one
trial's token-priority graphs from an artefact (global or local theories).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..report import plot_metric_bands, plot_priority_graphs, save_figure

__all__ = [
    "Reference",
    "CurveFigure",
    "BandFigure",
    "GraphFigure",
    "draw_figures",
    "plot_log_bands",
]


@dataclass(frozen=True, slots=True)
class Reference:
    """A paper value drawn on a figure: ``hline`` (dashed line), ``band`` (shaded range between
    ``values[0]`` and ``values[1]``) or ``points`` (markers at ``steps``)."""

    kind: str
    label: str
    values: tuple[float, ...]
    steps: tuple[int, ...] = ()


def plot_log_bands(
    steps: np.ndarray, curves: dict[str, np.ndarray], *, ylabel: str, title: str, xlabel: str
) -> Figure:
    """Curves on a log axis: geometric mean with a ×/÷ geometric-std band (the mean ± std of
    log10 values, which stays positive), plus the arithmetic mean (the table's) dotted.

    ``curves`` maps a legend label to an array of shape (trials, steps).
    """
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    trials = 0
    for label, data in curves.items():
        data = np.asarray(data, dtype=np.float64)
        trials = data.shape[0]
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps
            logs = np.log10(np.where(data > 0, data, np.nan))
            centre, spread = np.nanmean(logs, axis=0), np.nanstd(logs, axis=0)
            arithmetic = np.nanmean(data, axis=0)
        (line,) = ax.plot(steps, 10.0**centre, linewidth=1.5, label=f"{label} (geometric mean)")
        ax.fill_between(
            steps,
            10.0 ** (centre - spread),
            10.0 ** (centre + spread),
            color=line.get_color(),
            alpha=0.25,
            linewidth=0,
        )
        ax.plot(
            steps,
            np.where(arithmetic > 0, arithmetic, np.nan),
            linestyle=":",
            linewidth=1.5,
            color=line.get_color(),
            label=f"{label} (arithmetic mean)",
        )
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(
        title=f"band: geometric mean ×/÷ geometric std, {trials} trials",
        fontsize=8,
        title_fontsize=8,
    )
    return fig


def _draw_references(fig: Any, references: Sequence[Reference], num_steps: int, logy: bool) -> None:
    ax = fig.axes[0]
    for ref in references:
        if ref.kind == "hline":
            ax.axhline(ref.values[0], linestyle="--", color="0.3", linewidth=1.0, label=ref.label)
        elif ref.kind == "band":
            ax.axhspan(
                ref.values[0], ref.values[1], color="0.5", alpha=0.2, linewidth=0, label=ref.label
            )
        else:
            pairs = [(s, v) for s, v in zip(ref.steps, ref.values, strict=True) if s <= num_steps]
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                ax.plot(
                    xs,
                    ys,
                    linestyle="none",
                    marker="x",
                    markersize=8,
                    markeredgewidth=2,
                    color="black",
                    label=ref.label,
                    zorder=5,
                )
    if logy:
        ax.set_yscale("log")
    title = ax.get_legend().get_title().get_text() if ax.get_legend() else None
    ax.legend(title=title, fontsize=8, title_fontsize=8)


@dataclass(frozen=True, slots=True)
class CurveFigure:
    """Curves (curve name, legend label) against steps, mean ± std over trials, with the paper's
    values; file ``<setting>-<slug>``."""

    slug: str
    curves: tuple[tuple[str, str], ...]
    ylabel: str
    heading: str
    caption: str
    logy: bool = False
    references: tuple[Reference, ...] = ()

    needs_artefacts = ()

    @property
    def needs_curves(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.curves)

    def stem(self, setting_name: str) -> str:
        return f"{setting_name}-{self.slug}"

    def render(self, result: Any, artefacts: dict[str, Any]) -> Figure:
        setting = result.spec
        curves = {label: result.curves[key].T for key, label in self.curves}
        title = f"{setting.title}\n{self.heading}"
        xlabel = f"step ({setting.optimizer_text}, lr {setting.learning_rate:g})"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN columns (W_svm = 0)
            if self.logy:
                fig = plot_log_bands(
                    result.steps, curves, ylabel=self.ylabel, title=title, xlabel=xlabel
                )
            else:
                fig = plot_metric_bands(
                    result.steps, curves, ylabel=self.ylabel, title=title, xlabel=xlabel
                )
            _draw_references(fig, self.references, result.num_steps, self.logy)
        return fig

    def markdown(self, result: Any, png: Path) -> list[str]:
        pdf = png.with_suffix(".pdf").name
        return [f"![{self.caption}]({png.name})", "", f"*{self.caption}* ([PDF]({pdf}))", ""]


@dataclass(frozen=True, slots=True)
class BandFigure:
    """:func:`~attnmech.report.plot_metric_bands` of some curves (optionally ``1 - curve``),
    with dashed reference lines; file ``stem`` as given."""

    file_stem: str
    curves: tuple[tuple[str, str, bool], ...]  # (curve name, legend label, plot 1 - curve)
    ylabel: str
    title: str
    caption: str
    logy: bool = False
    references: tuple[tuple[str, float], ...] = ()

    needs_artefacts = ()

    @property
    def needs_curves(self) -> tuple[str, ...]:
        return tuple(key for key, _, _ in self.curves)

    def stem(self, setting_name: str) -> str:
        return self.file_stem

    def render(self, result: Any, artefacts: dict[str, Any]) -> Figure:
        data = {
            label: (1.0 - result.curves[key].T) if one_minus else result.curves[key].T
            for key, label, one_minus in self.curves
        }
        return plot_metric_bands(
            result.steps,
            data,
            ylabel=self.ylabel,
            title=self.title,
            logy=self.logy,
            reference=dict(self.references) or None,
        )

    def markdown(self, result: Any, png: Path) -> list[str]:
        return [f"![{png.stem}]({png.name})", "", self.caption, ""]


def first_local_trial(result: Any) -> int:
    """The first trial where GD took a local direction (else trial 0)."""
    went_local = result.extra.get("went_local", [])
    return next((b for b, flag in enumerate(went_local) if flag), 0)


@dataclass(frozen=True, slots=True)
class GraphFigure:
    """One trial's token-priority graphs, from the theories in ``artefacts[artefact]``.

    ``trial=None`` shows the first trial where GD took a local direction (trial 0 if none).
    ``file_stem``, ``title``, ``alt`` and ``caption`` are templates with ``{name}`` (the
    setting) and ``{trial}``.
    """

    artefact: str
    file_stem: str
    title: str
    alt: str
    caption: str
    trial: int | None = None
    needs_curves: tuple[str, ...] = ()

    @property
    def needs_artefacts(self) -> tuple[str, ...]:
        return (self.artefact,)

    def stem(self, setting_name: str) -> str:
        return self.file_stem.format(name=setting_name)

    def shown_trial(self, result: Any) -> int:
        return first_local_trial(result) if self.trial is None else self.trial

    def render(self, result: Any, artefacts: dict[str, Any]) -> Figure:
        trial = self.shown_trial(result)
        fig = plot_priority_graphs(artefacts[self.artefact][trial].graphs)
        fig.suptitle(self.title.format(name=result.spec.name, trial=trial), fontsize=10)
        return fig

    def markdown(self, result: Any, png: Path) -> list[str]:
        trial = self.shown_trial(result)
        pdf = png.with_suffix(".pdf").name
        alt = self.alt.format(name=result.spec.name, trial=trial)
        caption = self.caption.format(name=result.spec.name, trial=trial)
        return [f"![{alt}]({png.name})", "", f"*{caption}* ([PDF]({pdf}))", ""]


def draw_figures(
    result: Any,
    artefacts: dict[str, Any],
    out_dir: Path,
    formats: Sequence[str] = ("png", "pdf"),
) -> tuple[Path, ...]:
    """Render and save every figure of ``result.spec`` into ``out_dir``; the files written."""
    written: list[Path] = []
    for figure in result.spec.figures:
        fig = figure.render(result, artefacts)
        written += save_figure(fig, out_dir / figure.stem(result.spec.name), formats)
    return tuple(written)
