"""The bias table's figures: the cosine heatmap and the rates of each setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .curves import mean_curve as _mean_curve

__all__ = ["heatmap", "rates_figure"]


def heatmap(table: Any, path: Path) -> Path:
    """The mean cosine of every row with every column's Graph-SVM, one panel per setting."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from ..report import save_figure

    norms = list(table.norms)
    n_set = len(table.settings)
    labels = list(dict.fromkeys(r.optimizer.label for r in table.runs))
    fig = Figure(
        figsize=(1.05 * len(norms) * n_set + 3.0, 0.42 * len(labels) + 1.4), layout="constrained"
    )
    axes = fig.subplots(1, n_set, squeeze=False)[0]
    for k, (ax, name) in enumerate(zip(axes, table.settings, strict=True)):
        mean = np.full((len(labels), len(norms)), np.nan)
        spread = np.full_like(mean, np.nan)
        expected = {}
        for r in (r for r in table.runs if r.setting == name):
            i = labels.index(r.optimizer.label)
            expected[i] = norms.index(r.optimizer.expected_norm)
            for j, n in enumerate(norms):
                arr = np.asarray(r.cos[n])
                arr = arr[np.isfinite(arr)]
                if arr.size:
                    mean[i, j], spread[i, j] = arr.mean(), arr.max() - arr.min()
        # colour by the cosine itself (one scale for every row and setting); the expected cell
        # of each row is boxed
        image = ax.imshow(mean, cmap="viridis", aspect="auto", vmin=0.5, vmax=1.0)
        for i in range(len(labels)):
            for j in range(len(norms)):
                if np.isfinite(mean[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{mean[i, j]:.3f}\n±{spread[i, j] / 2:.3f}",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        fontweight="bold" if expected.get(i) == j else "normal",
                        color="black" if mean[i, j] > 0.8 else "white",
                    )
            if i in expected:
                ax.add_patch(
                    Rectangle(
                        (expected[i] - 0.5, i - 0.5),
                        1.0,
                        1.0,
                        fill=False,
                        edgecolor="red",
                        linewidth=1.8,
                    )
                )
        ax.set_xticks(range(len(norms)), norms, fontsize=8)
        ax.set_yticks(range(len(labels)), labels if k == 0 else [], fontsize=8)
        ax.set_title(f"{name}: cos(W, W_svm^N), mean ± half range", fontsize=9)
        ax.set_xlabel("Graph-SVM norm N (red box: predicted)", fontsize=8)
    cbar = fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.01)
    cbar.set_label("cos(W, W_svm^N) (values below 0.5 shown as 0.5)", fontsize=8)
    save_figure(fig, path.with_suffix(""), formats=("png",), dpi=110)
    return path


def rates_figure(table: Any, name: str, path: Path) -> Path:
    """The mean rates of every row on ``setting``: 1 - cos, loss gap, norm (and finite gap)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from ..report import save_figure

    runs = [r for r in table.runs if r.setting == name]
    panels = [
        ("one_minus_cos", "1 - cos(W(t), W_svm^own)"),
        ("loss_gap", "L(W(t)) - L*"),
        ("norm", "||W(t)||_F"),
    ]
    if table.cyclic[name]:
        panels.append(("fin_gap", "||Proj_Sfin W(t) - W_fin||_F"))
    fig = Figure(figsize=(3.6 * len(panels) + 1.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels))
    cmap = matplotlib.colormaps["tab20"]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for k, r in enumerate(runs):
            curve = _mean_curve(getattr(r, key))
            keep = (r.steps > 0) & np.isfinite(curve) & (curve > 0)
            style = "--" if r.optimizer.parameterization == "factorized" else "-"
            ax.loglog(
                r.steps[keep],
                curve[keep],
                style,
                color=cmap(k % 20),
                lw=1.2,
                label=r.optimizer.label,
            )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step t", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=7)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize=7)
    fig.suptitle(f"{name}: mean over {table.trials} trials", fontsize=10)
    save_figure(fig, path.with_suffix(""), formats=("png",), dpi=100)
    return path
