"""Phase diagrams from a sweep's table: a heatmap over two parameters, or a line over one.

Each point aggregates the trials of one cell (mean, median, min or max; the standard deviation
and the min-max range are drawn too: the numbers on a heatmap are ``value`` and ``±std``, a
line has a ``±std`` band and a lighter min-max band), and :func:`plot_sweep` also returns those
per-cell statistics, which ``attnmech plot-sweep`` writes beside the figure as CSV. Figures are
built on the Agg canvas and never shown (see :mod:`attnmech.studies.report`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidParameterError
from ..scaffold import fmt
from .spec import DATASET_PARAMS, TRAIN_PARAMS, metric_column
from .store import SweepTable, load_results, rows_to_csv

__all__ = ["STATS", "SweepPlot", "cell_stats", "plot_sweep", "save_sweep_plot"]

STATS = ("mean", "median", "min", "max")
_PARAMS = tuple(p for p in (*DATASET_PARAMS, *TRAIN_PARAMS) if p != "trials")


@dataclass(frozen=True)
class SweepPlot:
    """A phase diagram and the per-cell statistics behind it.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    stats : list of dict
        One per plotted point: the axis values, ``count`` (trials with a finite value),
        ``trials``, ``mean``, ``std``, ``median``, ``min``, ``max``.
    column : str
        The table column plotted (``corr_svm`` or ``corr_svm@500``).
    """

    figure: Any
    stats: list[dict[str, Any]]
    column: str


def _axis_values(table: SweepTable, axis: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Values of an axis (a parameter, or a ratio ``a/b`` of two) and the parameters it uses."""
    if "/" in axis:
        top, bottom = (part.strip() for part in axis.split("/", 1))
        a, b = _axis_values(table, top)[0], _axis_values(table, bottom)[0]
        if a.dtype == object or b.dtype == object:
            raise InvalidParameterError(f"axis {axis!r}: a ratio needs two numeric parameters")
        return np.round(a / b, 10), (top, bottom)
    if axis not in _PARAMS:
        raise InvalidParameterError(
            f"unknown axis {axis!r}; use a parameter ({', '.join(_PARAMS)}) or a ratio like K/d"
        )
    return table[axis], (axis,)


def _parse_where(where: dict[str, str] | None, table: SweepTable) -> np.ndarray:
    mask = np.ones(len(table), dtype=bool)
    for key, value in (where or {}).items():
        if key not in _PARAMS and key != "grid":
            raise InvalidParameterError(
                f"--where {key}={value}: {key!r} is not a parameter ({', '.join(_PARAMS)}, grid)"
            )
        column = table[key]
        if column.dtype == object:
            hit = column == str(value)
        else:
            try:
                hit = np.isclose(column, float(value))
            except ValueError:
                raise InvalidParameterError(
                    f"--where {key}={value}: {key} is numeric, give a number"
                ) from None
        if not hit.any():
            present = sorted({str(v) for v in column})
            raise InvalidParameterError(
                f"--where {key}={value} matches no row; values present: {', '.join(present)}"
            )
        mask &= hit
    return mask


def cell_stats(values: np.ndarray, groups: list[np.ndarray]) -> list[dict[str, Any]]:
    """Statistics of ``values`` per distinct combination of the ``groups`` columns (sorted)."""
    keys = list(zip(*(g.tolist() for g in groups), strict=True))
    out = []
    for key in sorted(set(keys), key=lambda k: tuple((isinstance(v, str), v) for v in k)):
        sel = np.array([k == key for k in keys])
        v = values[sel]
        finite = v[np.isfinite(v)]
        out.append(
            {
                "key": key,
                "trials": int(v.size),
                "count": int(finite.size),
                "mean": float(finite.mean()) if finite.size else math.nan,
                "std": float(finite.std()) if finite.size else math.nan,
                "median": float(np.median(finite)) if finite.size else math.nan,
                "min": float(finite.min()) if finite.size else math.nan,
                "max": float(finite.max()) if finite.size else math.nan,
            }
        )
    return out


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _label(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def plot_sweep(
    results: SweepTable | str | os.PathLike[str],
    *,
    x: str,
    metric: str,
    y: str | None = None,
    at_step: int | None = None,
    grid: str | None = None,
    where: dict[str, str] | None = None,
    stat: str = "mean",
) -> SweepPlot:
    """A heatmap of ``metric`` over ``x`` and ``y``, or a line over ``x`` alone.

    Parameters
    ----------
    results : SweepTable or path
        A table from :func:`attnmech.studies.sweeps.load_results`, or a sweep's output folder.
    x, y : str
        Parameters (``n``, ``d``, ``optimizer``, ...) or a ratio of two (``K/d``).
    metric : str
        A recorded metric (``corr_svm``, ``cyclic``, ``feasible``, ...).
    at_step : int, optional
        Plot the metric at this step (it must be in the sweep's ``at_steps``).
    grid : str, optional
        Only the rows of this grid (needed when the sweep has several).
    where : dict, optional
        Only rows whose parameter equals a value (``{"optimizer": "ngd"}``).
    stat : {"mean", "median", "min", "max"}
        What the colour or line shows per cell.

    Raises
    ------
    InvalidParameterError
        Unknown axis or metric, or a parameter other than the axes varies in the selected rows
        (the message says which and how to pick one value).
    """
    if stat not in STATS:
        raise InvalidParameterError(f"stat must be one of {', '.join(STATS)}, got {stat!r}")
    table = results if isinstance(results, SweepTable) else load_results(results)
    column = metric_column(metric) + (f"@{at_step}" if at_step is not None else "")
    if column not in table.columns:
        steps = sorted({n.split("@")[1] for n in table.names if "@" in n})
        hint = f" (steps recorded: {', '.join(steps)})" if at_step is not None and steps else ""
        raise InvalidParameterError(
            f"the sweep has no metric column {column!r}{hint}; columns: {', '.join(table.names)}"
        )
    where = dict(where or {})
    if grid is not None:
        where["grid"] = grid
    mask = _parse_where(where, table)
    grids = sorted({str(g) for g in table["grid"][mask]})
    if len(grids) > 1:
        raise InvalidParameterError(
            f"the sweep has several grids ({', '.join(grids)}); pick one with --grid"
        )
    table = table.where(mask)
    xs, used = _axis_values(table, x)
    groups = [xs]
    if y is not None:
        ys, used_y = _axis_values(table, y)
        groups.append(ys)
        used = used + used_y
    try:  # a metric column holds numbers; "grid" or an edited row does not
        values = np.asarray(table[column], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"column {column!r} does not hold numbers (not a metric, or a row of the results "
            "was edited); pick a metric column such as corr_svm"
        ) from None
    for param in _PARAMS:
        if param in used:
            continue
        distinct = sorted({str(v) for v in table[param]})
        if len(distinct) > 1:
            raise InvalidParameterError(
                f"parameter {param!r} varies in the selected rows ({', '.join(distinct)}); pick "
                f"one with --where {param}=VALUE, or plot it as an axis"
            )
    stats = cell_stats(values, groups)
    title = f"{metric}" + (f" at step {at_step}" if at_step is not None else "") + f" ({stat})"
    figure = _heatmap(stats, x, y, stat, title) if y is not None else _line(stats, x, stat, title)
    rows = []
    for s in stats:
        row = {x: _plain(s["key"][0])}
        if y is not None:
            row[y] = _plain(s["key"][1])
        row.update({k: s[k] for k in ("trials", "count", "mean", "std", "median", "min", "max")})
        rows.append(row)
    return SweepPlot(figure, rows, column)


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _heatmap(stats: list[dict[str, Any]], x: str, y: str, stat: str, title: str) -> Any:
    x_values = sorted({s["key"][0] for s in stats}, key=lambda v: (isinstance(v, str), v))
    y_values = sorted({s["key"][1] for s in stats}, key=lambda v: (isinstance(v, str), v))
    image = np.full((len(y_values), len(x_values)), np.nan)
    spread = np.full_like(image, np.nan)
    for s in stats:
        i, j = y_values.index(s["key"][1]), x_values.index(s["key"][0])
        image[i, j], spread[i, j] = s[stat], s["std"]
    fig = _new_figure(1.2 + 0.75 * len(x_values), 1.0 + 0.55 * len(y_values))
    ax = fig.add_subplot()
    finite = image[np.isfinite(image)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    mesh = ax.imshow(
        np.ma.masked_invalid(image),
        origin="lower",
        aspect="auto",
        cmap="viridis",
        vmin=vmin,
        vmax=vmax if vmax > vmin else vmin + 1e-12,
    )
    ax.set_facecolor("#dddddd")  # cells without a finite value
    for i in range(len(y_values)):
        for j in range(len(x_values)):
            if not np.isfinite(image[i, j]):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7)
                continue
            bright = (image[i, j] - vmin) / (vmax - vmin) > 0.6 if vmax > vmin else False
            ax.text(
                j,
                i,
                f"{fmt(image[i, j], 3)}\n±{fmt(spread[i, j], 2)}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if bright else "white",
            )
    ax.set_xticks(range(len(x_values)), [_label(v) for v in x_values])
    ax.set_yticks(range(len(y_values)), [_label(v) for v in y_values])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title, fontsize=9)
    fig.colorbar(mesh, ax=ax, shrink=0.9)
    return fig


def _line(stats: list[dict[str, Any]], x: str, stat: str, title: str) -> Any:
    keys = [s["key"][0] for s in stats]
    numeric = all(isinstance(k, (int, float)) for k in keys)
    xs = np.array(keys, dtype=np.float64) if numeric else np.arange(len(keys))
    fig = _new_figure(4.8, 3.2)
    ax = fig.add_subplot()
    centre = np.array([s[stat] for s in stats])
    std = np.array([s["std"] for s in stats])
    low = np.array([s["min"] for s in stats])
    high = np.array([s["max"] for s in stats])
    ax.fill_between(xs, low, high, alpha=0.15, color="C0", label="min-max")
    ax.fill_between(xs, centre - std, centre + std, alpha=0.3, color="C0", label="±std")
    ax.plot(xs, centre, "o-", color="C0", label=stat)
    if not numeric:
        ax.set_xticks(xs, [_label(k) for k in keys])
    ax.set_xlabel(x)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def save_sweep_plot(plot: SweepPlot, path_without_suffix: str | os.PathLike[str]) -> list[Path]:
    """Write the figure as PNG and PDF and the per-cell statistics as CSV (all atomically)."""
    from ..._io import atomic_write_text
    from ..report import save_figure

    paths = save_figure(plot.figure, path_without_suffix, ("png", "pdf"))
    stats_path = Path(f"{path_without_suffix}.csv")
    columns = list(plot.stats[0]) if plot.stats else []
    atomic_write_text(stats_path, rows_to_csv(columns, plot.stats))
    return [*paths, stats_path]
