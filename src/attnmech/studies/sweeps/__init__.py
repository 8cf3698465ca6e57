"""Grid sweeps, adaptive searches and phase diagrams: run a grid of datasets x training options
on one machine or a Ray cluster, resume it, watch it, and plot where the theory holds.

The sweep study in the shape of every study (:mod:`attnmech.studies.scaffold`): the config is
the sweep file (:class:`SweepSpec`), :func:`run` returns a :class:`SweepResult`.

- :mod:`~attnmech.studies.sweeps.spec`: the TOML sweep file and its validation;
- :mod:`~attnmech.studies.sweeps.grid`: cells, seeds, and batching cells of equal shapes into tasks;
- :mod:`~attnmech.studies.sweeps.runner`: :func:`run` / :func:`run_sweep` on the ``local`` or
  ``ray`` backend, with retries;
- :mod:`~attnmech.studies.sweeps.store`: atomic per-task CSV parts, the SQLite store, curves,
  ``--resume``, :func:`load_results`;
- :mod:`~attnmech.studies.sweeps.status`: :func:`sweep_status` of a running or finished sweep;
- :mod:`~attnmech.studies.sweeps.search`: :func:`run_search`, adaptive search on Optuna;
- :mod:`~attnmech.studies.sweeps.plots`: heatmaps and line plots (:func:`plot_sweep`).
"""

from typing import Any

from .runner import CONFIG_TYPE, RESULT_TYPE, SweepResult, run, run_sweep
from .spec import SweepSpec, available_metrics, load_sweep_spec, parse_sweep_spec
from .store import SweepTable, load_results

__all__ = [
    "CONFIG_TYPE",
    "RESULT_TYPE",
    "SweepSpec",
    "SweepResult",
    "SweepTable",
    "available_metrics",
    "load_sweep_spec",
    "parse_sweep_spec",
    "run",
    "run_sweep",
    "load_results",
    "plot_sweep",
]


def plot_sweep(*args: Any, **kwargs: Any) -> Any:
    """See :func:`attnmech.studies.sweeps.plots.plot_sweep` (imported lazily: needs matplotlib)."""
    from .plots import plot_sweep as _plot

    return _plot(*args, **kwargs)
