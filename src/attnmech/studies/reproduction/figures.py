"""Figures as objects: each renders itself from a setting's result and says how the report
embeds it.

A figure object has ``needs_curves`` (curve names it reads), ``stem(setting_name)`` (the file
name without suffix), ``render(result, artefacts)`` (a matplotlib Figure) and
``markdown(result, png)`` (lines of the report). :class:`CurveFigure` draws mean ± std bands
(geometric on a log axis) with the paper's values; :class:`BandFigure` draws
:func:`attnmech.studies.report.plot_metric_bands` (the demo's style); :class:`GraphFigure` draws one
trial's token-priority graphs from an artefact (global or local theories).
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..report import plot_metric_bands, plot_priority_graphs, save_figure

FIGURE_DPI = 110
"""PNG resolution: the figures are 6.4 inches per panel, ~700 pixels, legible at page width."""

LOG_CLIP = 1e-16
"""Log axes clip values below this (float64's resolution near 1: 1 - x is 0 or noise below it)."""

__all__ = [
    "Reference",
    "CurveFigure",
    "BandFigure",
    "GraphFigure",
    "RegPathFigure",
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
    _draw_refs(ax, references, num_steps, hline_color="0.3")
    if logy:
        ax.set_yscale("log")
    title = ax.get_legend().get_title().get_text() if ax.get_legend() else None
    ax.legend(title=title, fontsize=8, title_fontsize=8)


BAND_QUANTILES = (0.1, 0.9)
"""The band of every curve figure: these quantiles of the trials at each step (a band that stays
inside the quantity's range, on linear and log axes alike)."""


def _band(
    ax: Any,
    steps: np.ndarray,
    data: np.ndarray,
    *,
    logy: bool,
    bold: bool,
    per_trial: bool,
    label: str,
    color: Any = None,
) -> None:
    """One curve on ``ax`` (data of shape (trials, steps)): the arithmetic mean over trials (the
    statistic the table compares), drawn only where at least two trials are finite, and the
    10th-90th percentile band of the trials; thin lines per trial with ``per_trial`` (always
    when fewer than two trials are finite: no one-trial means)."""
    width = 2.6 if bold else 1.4
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps
        clipped = np.where(np.isfinite(data), data, np.nan)
        if logy:
            clipped = np.where(np.isfinite(clipped), np.maximum(clipped, LOG_CLIP), np.nan)
        count = np.isfinite(clipped).sum(axis=0)
        centre = np.where(count >= 2, np.nanmean(clipped, axis=0), np.nan)
        low = np.where(count >= 2, np.nanquantile(clipped, BAND_QUANTILES[0], axis=0), np.nan)
        high = np.where(count >= 2, np.nanquantile(clipped, BAND_QUANTILES[1], axis=0), np.nan)
    several = bool((count >= 2).any())
    if several:
        (line,) = ax.plot(
            steps, centre, linewidth=width, label=f"{label} (mean)", color=color, zorder=3
        )
        color = line.get_color()
        ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
    if per_trial or not several:
        for i, row in enumerate(clipped):
            ax.plot(
                steps,
                row,
                color=color,
                linewidth=0.5 if several else 1.2,
                alpha=0.45 if several else 0.9,
                zorder=2,
                label=None if several or i else f"{label} (single trials, no mean)",
            )


@dataclass(frozen=True, slots=True)
class CurveFigure:
    """Curves (curve name, legend label) against steps, mean ± std over trials, with the paper's
    values; file ``<setting>-<slug>``.

    The line is the arithmetic mean over trials (the statistic the table compares), the band the
    10th-90th percentile of the trials (:data:`BAND_QUANTILES`). ``panels``: one panel per curve
    (when their bands would merge), wrapped at 2 per row; ``bold``: the curve the table compares
    with, drawn boldest; ``logy``: log axis (values below :data:`LOG_CLIP` clipped);
    ``per_trial``: every trial as a thin line (for quantities whose trials spread over decades).
    """

    slug: str
    curves: tuple[tuple[str, str], ...]
    ylabel: str
    heading: str
    caption: str
    logy: bool = False
    references: tuple[Reference, ...] = ()
    panels: bool = False
    bold: str = ""
    per_trial: bool = False

    needs_artefacts = ()

    @property
    def needs_curves(self) -> tuple[str, ...]:
        """The names of the curves it draws."""
        return tuple(key for key, _ in self.curves)

    def stem(self, setting_name: str) -> str:
        """File stem ``<setting>-<slug>``."""
        return f"{setting_name}-{self.slug}"

    def render(self, result: Any, artefacts: dict[str, Any]) -> Figure:
        """The figure: per curve, the mean over trials with a percentile band (or per-trial lines),
        the paper's values, one panel per curve when ``panels``."""
        setting = result.spec
        groups = [[c] for c in self.curves] if self.panels else [list(self.curves)]
        ncols = min(2, len(groups))
        nrows = -(-len(groups) // ncols)
        fig = Figure(figsize=(6.4 * ncols, 3.9 * nrows + 0.5), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        xlabel = f"step ({setting.optimizer_text}, lr {setting.learning_rate:g})"
        palette = [f"C{i}" for i in range(10)]
        for index, (ax, group) in enumerate(zip(axes, groups, strict=False)):
            for j, (key, label) in enumerate(group):
                bold = key == self.bold or (not self.bold and len(self.curves) == 1)
                color = palette[(index if self.panels else j) % 10]
                _band(
                    ax,
                    result.steps,
                    np.asarray(result.curves[key], dtype=np.float64).T,
                    logy=self.logy,
                    bold=bold,
                    per_trial=self.per_trial,
                    label=label,
                    color=color,
                )
            # the paper's values go on the panel of the curve they describe (the first panel,
            # or every panel when the figure has one curve per panel and one reference each)
            if index == 0 or (self.panels and len(self.references) == len(groups)):
                refs = (
                    self.references
                    if not (self.panels and len(self.references) == len(groups))
                    else (self.references[index],)
                )
                _draw_refs(ax, refs, result.num_steps)
            values = np.concatenate([np.ravel(result.curves[key]) for key, _ in group])
            if self.logy and np.any(np.isfinite(values) & (values > 0)):
                ax.set_yscale("log")
            elif not np.isfinite(values).any():
                ax.text(
                    0.5,
                    0.5,
                    "no finite value in any trial\n(for example S_fin = {0}: nothing to compare)",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                )
            ax.set_xlabel(xlabel)
            ax.set_ylabel(self.ylabel)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8, loc="best")
        for ax in axes[len(groups) :]:
            ax.set_visible(False)
        note = (
            f"{result.trials} trials: arithmetic mean (line, the table's statistic), "
            f"{BAND_QUANTILES[0]:.0%}-{BAND_QUANTILES[1]:.0%} of the trials (band)"
        )
        if self.logy:
            note += f"; below {LOG_CLIP:g} clipped (float64)"
        if self.per_trial:
            note += "; thin: single trials"
        width = 70 if ncols == 1 else 140
        title = "\n".join(
            textwrap.wrap(f"{setting.title}: {self.heading}", width) + textwrap.wrap(note, width)
        )
        fig.suptitle(title, fontsize=10)
        return fig

    def markdown(self, result: Any, png: Path) -> list[str]:
        """Report lines: the image, its caption and a link to the PDF when there is one."""
        return [f"![{self.caption}]({png.name})", "", f"*{self.caption}*{_pdf_link(png)}", ""]


def _pdf_link(png: Path) -> str:
    """`` ([PDF](name.pdf))`` when the PDF was written next to the PNG, else nothing."""
    pdf = png.with_suffix(".pdf")
    return f" ([PDF]({pdf.name}))" if pdf.exists() else ""


def _draw_refs(
    ax: Any, references: Sequence[Reference], num_steps: int, hline_color: str = "0.25"
) -> None:
    """Dashed lines, grey bands and black-cross paper points (steps up to ``num_steps``)."""
    for ref in references:
        if ref.kind == "hline":
            ax.axhline(
                ref.values[0], linestyle="--", color=hline_color, linewidth=1.0, label=ref.label
            )
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


@dataclass(frozen=True, slots=True)
class RegPathFigure:
    """The regularization path of each trial (artefact ``regpath`` of :class:`RegPath`):
    corr(W(R), W_svm) and ||Proj W(R) - W_fin|| against R, log R axis."""

    slug: str
    heading: str
    caption: str
    needs_curves: tuple[str, ...] = ()
    needs_artefacts: tuple[str, ...] = ("regpath",)

    def stem(self, setting_name: str) -> str:
        """File stem ``<setting>-<slug>``."""
        return f"{setting_name}-{self.slug}"

    def render(self, result: Any, artefacts: dict[str, Any]) -> Figure:
        """The figure: ``1 - corr(W(R), W_svm)`` and the finite-part gap against R, per trial and
        their mean, on log axes."""
        path = artefacts["regpath"]
        radii = path["radii"]
        fig = Figure(figsize=(12.8, 4.4), layout="constrained")
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        for ax, key, ylabel, logy in (
            (left, "corr_svm", r"$1 - \mathrm{corr}(W(R), W_{svm})$ (log scale)", True),
            (right, "fin_gap", r"$\|\Pi_{S_{fin}} W(R) - W_{fin}\|_F$ (log scale)", True),
        ):
            data = path[key] if key == "fin_gap" else 1.0 - path[key]
            data = np.maximum(np.where(np.isfinite(data), data, np.nan), LOG_CLIP)
            for row in data.T:
                ax.plot(radii, row, color="C0", linewidth=0.6, alpha=0.5)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ax.plot(
                    radii,
                    np.nanmean(data, axis=1),
                    color="C0",
                    linewidth=2.6,
                    marker="o",
                    label="mean over trials",
                )
            ax.set_xscale("log")
            if logy:
                ax.set_yscale("log")
            ax.set_xlabel("radius R (log scale)")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(
            f"{result.spec.name} ({result.spec.sizes}): {self.heading}\n{data.shape[1]} "
            f"trials; thin: single trials; values below {LOG_CLIP:g} clipped",
            fontsize=10,
        )
        return fig

    def markdown(self, result: Any, png: Path) -> list[str]:
        """Report lines: the image, its caption and a link to the PDF when there is one."""
        return [f"![{self.caption}]({png.name})", "", f"*{self.caption}*{_pdf_link(png)}", ""]


@dataclass(frozen=True, slots=True)
class BandFigure:
    """:func:`~attnmech.studies.report.plot_metric_bands` of some curves (optionally ``1 - curve``),
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
        """The names of the curves it draws."""
        return tuple(key for key, _, _ in self.curves)

    def stem(self, setting_name: str) -> str:
        """File stem ``file_stem``, whatever the setting."""
        return self.file_stem

    def render(self, result: Any, artefacts: dict[str, Any]) -> Figure:
        """The figure from :func:`plot_metric_bands` (``1 - curve`` where asked), with the
        reference lines."""
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
        """Report lines: the image and the caption."""
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
        """The one artefact it draws from, ``artefact``."""
        return (self.artefact,)

    def stem(self, setting_name: str) -> str:
        """File stem: ``file_stem`` with ``{name}`` the setting's name."""
        return self.file_stem.format(name=setting_name)

    def shown_trial(self, result: Any) -> int:
        """The trial shown: ``trial``, or the first trial that went local when None."""
        return first_local_trial(result) if self.trial is None else self.trial

    def render(self, result: Any, artefacts: dict[str, Any]) -> Figure:
        """The figure: the token-priority graphs of the shown trial's theory, with its title."""
        trial = self.shown_trial(result)
        fig = plot_priority_graphs(artefacts[self.artefact][trial].graphs, ncols=2)
        fig.suptitle(self.title.format(name=result.spec.name, trial=trial), fontsize=10)
        return fig

    def markdown(self, result: Any, png: Path) -> list[str]:
        """Report lines: the image, its caption and a link to the PDF when there is one."""
        trial = self.shown_trial(result)
        alt = self.alt.format(name=result.spec.name, trial=trial)
        caption = self.caption.format(name=result.spec.name, trial=trial)
        return [f"![{alt}]({png.name})", "", f"*{caption}*{_pdf_link(png)}", ""]


def draw_figures(
    result: Any,
    artefacts: dict[str, Any],
    out_dir: Path,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = FIGURE_DPI,
) -> tuple[Path, ...]:
    """Render and save every figure of ``result.spec`` into ``out_dir``; the files written."""
    written: list[Path] = []
    for figure in result.spec.figures:
        fig = figure.render(result, artefacts)
        written += save_figure(fig, out_dir / figure.stem(result.spec.name), formats, dpi=dpi)
    return tuple(written)
