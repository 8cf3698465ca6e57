"""Figures and Markdown reports.

Every plotting function builds and returns a :class:`matplotlib.figure.Figure` on the Agg canvas,
without pyplot: nothing is shown, no global figure state is touched, and the caller decides where
the figure goes (:func:`save_figure`). Files are written atomically, so a reader never sees half a
PNG or half a report.

Used by the command-line interface (``attnmech graphs --draw``, the tables that ``train`` and
``demo`` print, the JSON summaries), the demo and the paper reproduction.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn (not for to_jsonable)
    from matplotlib.figure import Figure

from .._choices import EDGE_MODES
from .._io import atomic_path, atomic_write_text
from ..errors import InvalidParameterError
from ..theory.graphs import PriorityGraphs

__all__ = [
    "plot_priority_graphs",
    "plot_metric_bands",
    "save_figure",
    "markdown_table",
    "text_table",
    "write_markdown",
    "to_jsonable",
    "write_json",
]

logger = logging.getLogger(__name__)

_NODE_GAP = 1.0  # horizontal distance between tokens of one SCC
_SCC_GAP = 0.7  # extra distance between neighbouring SCCs on one level
_LEVEL_GAP = 1.0  # vertical distance between priority levels
_BOX_PAD = 0.32  # half-size of the box drawn around an SCC's tokens
_SHADE = "#fff2b3"  # fill of an SCC with several tokens (a cycle)
_LINE_STYLES = ("-", "--", "-.", ":")  # one per curve of a metric plot, in turn


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# --------------------------------------------------------------------------- priority graphs
def _layout(
    graphs: PriorityGraphs, query: int, max_sccs: int | None = None, max_members: int | None = None
) -> tuple[dict[int, tuple[float, float]], dict]:
    """Token positions under ``query`` and the box of each SCC.

    Levels run top (0, highest priority) to bottom; on each level the SCCs sit side by side in id
    order, their tokens next to each other, and each row is centred on x = 0. Only the first
    ``max_sccs`` SCCs in priority order and ``max_members`` tokens per SCC are placed.
    """
    rows: dict[int, list[int]] = {}
    for scc in graphs.scc_ids(query).tolist()[:max_sccs]:
        rows.setdefault(int(graphs.scc_level[scc]), []).append(scc)
    positions: dict[int, tuple[float, float]] = {}
    boxes: dict[int, tuple[float, float, float, float]] = {}  # scc -> (x0, x1, y, size)
    for level, sccs in rows.items():
        y = -level * _LEVEL_GAP
        spans = []
        x = 0.0
        for scc in sccs:
            members = graphs.scc_members(scc)[:max_members]
            xs = [x + i * _NODE_GAP for i in range(len(members))]
            spans.append((scc, members, xs))
            x = xs[-1] + _NODE_GAP + _SCC_GAP
        shift = (spans[-1][2][-1]) / 2.0  # centre the row
        for scc, members, xs in spans:
            xs = [v - shift for v in xs]
            positions.update({t: (v, y) for t, v in zip(members, xs, strict=True)})
            boxes[scc] = (xs[0], xs[-1], y, int(graphs.scc_size[scc]))
    return positions, boxes


def _draw_panel(
    ax: Any,
    graphs: PriorityGraphs,
    query: int,
    layout: tuple[dict, dict],
    names: Any,
    edges: str,
    extent: tuple[float, int],
) -> None:
    """One panel; ``layout`` from :func:`_layout`, ``extent`` = (largest half row width, deepest
    level) over all panels."""
    ax.set_axis_off()
    positions, boxes = layout
    n_sccs, n_tokens = graphs.scc_ids(query).size, graphs.tokens(query).size
    left_out = ""
    if len(boxes) < n_sccs or len(positions) < n_tokens:
        left_out = (
            f"\n(showing {len(boxes)} of {n_sccs} SCCs, {len(positions)} of {n_tokens} tokens)"
        )
    ax.set_title(f"last token {names(query)}{left_out}", fontsize=10)
    half_width, deepest = extent
    # one scale for every panel: the same limits and equal aspect
    ax.set_xlim(-half_width - 0.8, half_width + 0.8)
    ax.set_ylim(-deepest * _LEVEL_GAP - 0.7, 0.7)
    ax.set_aspect("equal", adjustable="box")
    if not positions:
        ax.text(0.5, 0.5, "(never a last token)", ha="center", va="center", transform=ax.transAxes)
        return
    from matplotlib.patches import FancyBboxPatch

    for x0, x1, y, size in boxes.values():
        ax.add_patch(
            FancyBboxPatch(
                (x0 - _BOX_PAD, y - _BOX_PAD),
                x1 - x0 + 2 * _BOX_PAD,
                2 * _BOX_PAD,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor=_SHADE if size > 1 else "none",
                edgecolor="0.35",
                linestyle="-" if size > 1 else ":",
                linewidth=1.0,
                zorder=1,
            )
        )
    for token, (x, y) in positions.items():
        ax.text(
            x,
            y,
            names(token),
            ha="center",
            va="center",
            fontsize=9,
            zorder=4,
            bbox={"boxstyle": "circle,pad=0.25", "facecolor": "white", "edgecolor": "0.2"},
        )
    if edges == "condensation":
        ids = graphs.scc_ids(query)
        sel = (graphs.dag_src >= ids[0]) & (graphs.dag_src <= ids[-1])
        for src, dst in zip(
            graphs.dag_src[sel].tolist(), graphs.dag_dst[sel].tolist(), strict=True
        ):
            if src not in boxes or dst not in boxes:
                continue
            (a0, a1, ay, _), (b0, b1, by, _) = boxes[src], boxes[dst]
            skips = int(graphs.scc_level[dst] - graphs.scc_level[src]) > 1
            _arrow(ax, ((a0 + a1) / 2, ay - _BOX_PAD), ((b0 + b1) / 2, by + _BOX_PAD), skips)
    else:
        for i, j in graphs.edges(query):
            if i not in positions or j not in positions:
                continue
            (xi, yi), (xj, yj) = positions[i], positions[j]
            # edges inside a level (an SCC) bend, so that i -> j and j -> i stay apart
            _arrow(ax, (xi, yi), (xj, yj), yi == yj or abs(yi - yj) > _LEVEL_GAP, shrink=11)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], bend: bool, shrink=2):
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=9,
            color="0.25",
            linewidth=0.8,
            connectionstyle=f"arc3,rad={0.35 if bend else 0.0}",
            shrinkA=shrink,
            shrinkB=shrink,
            zorder=2,
        )
    )


def plot_priority_graphs(
    graphs: PriorityGraphs,
    queries: Any = None,
    token_names: Any = None,
    *,
    edges: str = "condensation",
    max_queries: int = 16,
    ncols: int = 4,
    max_sccs: int = 12,
    max_members: int = 8,
) -> Figure:
    """Draw the token-priority graphs, one panel per last token
    (docs/theory.md#token-priority-graphs).

    Tokens are laid out by priority level (level 0, the highest priority, at the top). Each SCC
    sits in a box: shaded when it holds several tokens (a cycle: conflicting priorities), dotted
    when it is a single token.

    Parameters
    ----------
    graphs : PriorityGraphs
    queries : int or sequence of int, optional
        Last tokens to draw. Default: every last token of the dataset, at most ``max_queries``.
    token_names : sequence of str, optional
        Display name of each token id (default: the id).
    edges : {"condensation", "all"}, default="condensation"
        Draw the edges of the condensation DAG (between SCC boxes), or every edge ``i -> j`` of
        ``G^(k)``.
    max_queries : int, default=16
        With ``queries=None``, draw only the first ``max_queries`` last tokens.
    ncols : int, default=4
        Panels per row.
    max_sccs, max_members : int, default=12 and 8
        Per panel, draw only the ``max_sccs`` highest-priority SCCs and ``max_members`` tokens of
        each (a box keeps its style by its full size); the panel title says what was left out.
        This bounds time and memory at any vocabulary size.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``edges`` is not one of the modes above or ``queries`` is empty.
    InvalidDatasetError
        If a query is outside ``[0, vocab_size)``.
    """
    if edges not in EDGE_MODES:
        raise InvalidParameterError(f"edges must be one of {', '.join(EDGE_MODES)}, got {edges!r}")
    if queries is None:
        chosen = graphs.queries.tolist()
        if len(chosen) > max_queries:
            logger.info("drawing %d of %d last tokens", max_queries, len(chosen))
            chosen = chosen[:max_queries]
    else:
        chosen = [int(q) for q in np.atleast_1d(queries)]
    if not chosen:
        raise InvalidParameterError(
            "no last tokens to draw; pass queries= or a dataset with samples"
        )
    names = (lambda t: str(token_names[t])) if token_names is not None else str
    layouts = [_layout(graphs, q, max_sccs, max_members) for q in chosen]  # validates queries
    half_width = max((abs(x) for pos, _ in layouts for x, _ in pos.values()), default=0.0)
    deepest = max(int(graphs.scc_level[graphs.scc_ids(q)].max(initial=0)) for q in chosen)
    cols = max(1, min(ncols, len(chosen)))
    rows = math.ceil(len(chosen) / cols)
    panel_w = 0.6 * (2 * half_width + 1.6) + 0.4
    panel_h = 0.6 * (deepest * _LEVEL_GAP + 1.4) + 0.5
    fig = _new_figure(max(panel_w * cols, 4.5), panel_h * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, q, layout in zip(axes, chosen, layouts, strict=False):
        _draw_panel(ax, graphs, q, layout, names, edges, (half_width, deepest))
    for ax in axes[len(chosen) :]:
        fig.delaxes(ax)
    fig.suptitle("token-priority graphs (boxes: SCCs; top: highest priority)", fontsize=10)
    return fig


# --------------------------------------------------------------------------- metric curves
def plot_metric_bands(
    steps: Any,
    curves: Mapping[str, Any],
    *,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
    reference: float | Mapping[str, float] | None = None,
    xlabel: str = "step",
) -> Figure:
    """Plot each curve's mean over trials with a band of one standard deviation.

    Parameters
    ----------
    steps : array-like of shape (n_steps,)
        The x values (training steps).
    curves : mapping of str to array-like of shape (n_trials, n_steps) or (n_steps,)
        One entry per curve; the key is its legend label. A 1-D array is a single trial.
    ylabel : str
    title : str, optional
    logy : bool, default=False
        Logarithmic y axis. Where ``mean - std`` is not above the smallest positive value of the
        trials at that step, the lower edge of the band is that value, so that a band wider
        than its mean stays visible and never reaches below the data.
    reference : float or mapping of str to float, optional
        Horizontal reference lines (dashed), such as a value the paper reports. A mapping gives
        each line a legend label; a bare float is labelled "reference".
    xlabel : str, default="step"

    Returns
    -------
    matplotlib.figure.Figure
        One axes; its legend lists the curves in order, then the references. Curves cycle
        through solid, dashed, dash-dot and dotted lines, so that curves lying on top of each
        other stay distinguishable.

    Raises
    ------
    ValueError
        If ``curves`` is empty or a curve's length differs from ``len(steps)``.
    """
    x = np.asarray(steps, dtype=np.float64)
    if x.ndim != 1:
        raise InvalidParameterError(f"steps must be 1-D, got shape {x.shape}")
    if not curves:
        raise InvalidParameterError("curves is empty; give at least one named curve")
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    n_trials = set()
    for index, (name, values) in enumerate(curves.items()):
        data = np.atleast_2d(np.asarray(values, dtype=np.float64))  # (n_trials, n_steps)
        if data.ndim != 2 or data.shape[1] != x.size:
            raise InvalidParameterError(
                f"curve {name!r} has shape {np.shape(values)}; expected (n_trials, {x.size}) to "
                "match steps"
            )
        n_trials.add(data.shape[0])
        with warnings.catch_warnings():  # a step where every trial is NaN stays NaN, quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(data, axis=0)
            std = np.nanstd(data, axis=0)
        lower, upper = mean - std, mean + std
        if logy:
            with np.errstate(invalid="ignore"):
                positive = np.where(data > 0, data, np.inf).min(axis=0)  # per step
            floor = np.where(np.isfinite(positive), positive, np.nan)
            lower = np.fmax(lower, floor)
        style = _LINE_STYLES[index % len(_LINE_STYLES)]
        (line,) = ax.plot(x, mean, label=str(name), linewidth=1.5, linestyle=style)
        ax.fill_between(x, lower, upper, color=line.get_color(), alpha=0.25, linewidth=0)
    if reference is not None:
        refs = reference if isinstance(reference, Mapping) else {"reference": reference}
        for label, value in refs.items():
            ax.axhline(float(value), linestyle="--", color="0.4", linewidth=1.0, label=str(label))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    trials = f"{n_trials.pop()} trials" if len(n_trials) == 1 else "trials"
    ax.legend(title=f"mean ± std over {trials}", fontsize=8, title_fontsize=8)
    return fig


# --------------------------------------------------------------------------- files
def save_figure(
    fig: Figure,
    path_without_suffix: str | os.PathLike[str],
    formats: Sequence[str] = ("png", "pdf"),
    *,
    dpi: int = 150,
) -> list[Path]:
    """Write ``fig`` once per format, atomically, to ``<path_without_suffix>.<format>``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path_without_suffix : path
        ``"out/corr"`` with the default formats writes ``out/corr.png`` and ``out/corr.pdf``.
        Missing folders are created.
    formats : sequence of str, default=("png", "pdf")
        Any format the Agg canvas writes (png, pdf, svg, ...).
    dpi : int, default=150

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.

    Raises
    ------
    ValueError
        If a format is not supported.
    """
    if isinstance(formats, str):
        formats = (formats,)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    supported = FigureCanvasAgg.get_supported_filetypes()
    bad = [f for f in formats if f.lower().lstrip(".") not in supported]
    if bad or not formats:
        raise InvalidParameterError(
            f"cannot save figures as {bad or 'nothing'}; use one of {', '.join(sorted(supported))}"
        )
    written = []
    for fmt in (f.lower().lstrip(".") for f in formats):
        path = Path(f"{os.fspath(path_without_suffix)}.{fmt}")
        with atomic_path(path, suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
        written.append(path)
    return written


def _cell(value: Any, float_format: str, markdown: bool = True) -> str:
    if value is None:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        text = float_format.format(float(value))
    else:
        text = str(value)
    text = " ".join(text.split())
    return text.replace("|", "\\|") if markdown else text


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _aligned(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], float_format: str, markdown: bool
) -> tuple[list[str], list[list[str]], list[bool], list[int]]:
    """Cells as text, which columns are numeric (right-aligned) and each column's width."""
    for index, row in enumerate(rows):
        if len(row) != len(headers):
            raise InvalidParameterError(
                f"row {index} has {len(row)} cells but there are {len(headers)} headers"
            )
    head = [_cell(h, float_format, markdown) for h in headers]
    cells = [[_cell(v, float_format, markdown) for v in row] for row in rows]
    numeric = [
        bool(rows) and all(_is_number(row[c]) or row[c] is None for row in rows)
        for c in range(len(headers))
    ]
    minimum = 3 if markdown else 1
    widths = [max([minimum, len(h)] + [len(r[c]) for r in cells]) for c, h in enumerate(head)]
    return head, cells, numeric, widths


def _pad(values: Sequence[str], widths: Sequence[int], numeric: Sequence[bool]) -> list[str]:
    return [
        v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
    ]


def markdown_table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], *, float_format: str = "{:.4g}"
) -> str:
    """A GitHub-flavoured Markdown table.

    Floats are written with ``float_format``; ``None`` is an empty cell; ``|`` is escaped and line
    breaks become spaces. Columns holding only numbers are right-aligned.

    Raises
    ------
    ValueError
        If a row's length differs from the number of headers.

    See Also
    --------
    text_table : the same table as plain text, for a terminal.

    Examples
    --------
    >>> print(markdown_table([["cyclic", 0.98612], ["acyclic", 1]], ["data", "corr"]))
    | data    |   corr |
    | ------- | -----: |
    | cyclic  | 0.9861 |
    | acyclic |      1 |
    """
    head, cells, numeric, widths = _aligned(rows, headers, float_format, markdown=True)

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(_pad(values, widths, numeric)) + " |"

    rule = [
        ("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric, strict=True)
    ]
    out = [line(head), "| " + " | ".join(rule) + " |"]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def text_table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], *, float_format: str = "{:.4g}"
) -> str:
    """A plain-text table for a terminal: columns separated by two spaces, a rule under the header.

    Cells are written as in :func:`markdown_table` (``None`` is empty, numeric columns are
    right-aligned) but ``|`` is kept as it is. Trailing spaces are stripped.

    Raises
    ------
    ValueError
        If a row's length differs from the number of headers.

    Examples
    --------
    >>> print(text_table([["corr(W, W_svm)", 0.98612], ["top-SCC mass", 1]], ["metric", "mean"]))
    metric            mean
    --------------  ------
    corr(W, W_svm)  0.9861
    top-SCC mass         1
    """
    head, cells, numeric, widths = _aligned(rows, headers, float_format, markdown=False)
    out = ["  ".join(_pad(head, widths, numeric)).rstrip(), "  ".join("-" * w for w in widths)]
    out.extend("  ".join(_pad(r, widths, numeric)).rstrip() for r in cells)
    return "\n".join(out)


def write_markdown(path: str | os.PathLike[str], text: str) -> Path:
    """Write Markdown ``text`` to ``path`` atomically (UTF-8, ending in a newline); return path."""
    path = Path(path)
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")
    return path


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python numbers and lists, paths into
    strings, and every NaN or infinity into ``None`` (strict JSON has no such numbers).

    Examples
    --------
    >>> to_jsonable({"corr": np.array([0.5, np.nan]), "steps": np.int64(4000)})
    {'corr': [0.5, None], 'steps': 4000}
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented, strict JSON (see :func:`to_jsonable`) to ``path`` atomically."""
    path = Path(path)
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False, ensure_ascii=False)
    atomic_write_text(path, text + "\n")
    return path
