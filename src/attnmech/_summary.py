"""The one statistics helper of every report, and the environment.

- :func:`summary_stats`: mean, std, min and max over the finite values, plus every value (non-finite
  ones as ``None``), in a JSON-friendly dict.
- :func:`wilson_interval`: a confidence interval for a proportion (an accuracy, a share).
- :func:`bootstrap_interval`: a percentile-bootstrap interval for any statistic of a sample (a
  mean TV, a median), and :func:`bootstrap_distribution`, the statistic's sampling distribution
  over resamples of a given size (e.g. the mean of 10 trials drawn from a 100-trial run).
- :func:`environment_info`: the Python, platform and library versions, and the CPU cores available,
  without importing torch when it is not already imported.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np

__all__ = [
    "bootstrap_distribution",
    "bootstrap_interval",
    "environment_info",
    "summary_stats",
    "wilson_interval",
]


def summary_stats(values: Any) -> dict[str, Any]:
    """Mean, std (population, ``ddof=0``), min and max over the finite entries of ``values``.

    Parameters
    ----------
    values : array-like of float
        One value per trial (a scalar counts as one trial).

    Returns
    -------
    dict
        ``{"mean", "std", "min", "max"}`` as floats (``None`` when no value is finite) and
        ``"values"``: every value as a float, non-finite ones as ``None``.

    Examples
    --------
    >>> s = summary_stats([1.0, 3.0, float("nan")])
    >>> s["mean"], s["std"], s["min"], s["max"], s["values"]
    (2.0, 1.0, 1.0, 3.0, [1.0, 3.0, None])
    """
    array = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
    finite = array[np.isfinite(array)]
    some = finite.size > 0
    return {
        "mean": float(finite.mean()) if some else None,
        "std": float(finite.std()) if some else None,
        "min": float(finite.min()) if some else None,
        "max": float(finite.max()) if some else None,
        "values": [float(v) if np.isfinite(v) else None for v in array],
    }


def wilson_interval(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / total``.

    Returns ``(nan, nan)`` when ``total`` is 0.

    Examples
    --------
    >>> low, high = wilson_interval(8, 10)
    >>> round(low, 4), round(high, 4)
    (0.4902, 0.9433)
    """
    from scipy.stats import norm

    if total <= 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must lie in [0, total={total}]; got {successes}")
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / total
    denom = 1 + z * z / total
    center = (p + z * z / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return float(max(0.0, center - half)), float(min(1.0, center + half))


def bootstrap_distribution(
    values: Any,
    statistic: Any = np.mean,
    *,
    size: int | None = None,
    resamples: int = 10_000,
    seed: int = 0,
) -> np.ndarray:
    """The statistic over ``resamples`` resamples (with replacement) of ``size`` values each.

    ``size`` defaults to the sample's own size; a smaller one gives the sampling distribution of
    the statistic of a smaller experiment (e.g. a 10-trial mean from a 100-trial run). Non-finite
    values are dropped first. Deterministic for a given ``seed``.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        return np.full(resamples, np.nan)
    n = array.size if size is None else int(size)
    rng = np.random.default_rng(seed)
    draws = array[rng.integers(0, array.size, size=(resamples, n))]
    return np.asarray(statistic(draws, axis=1), dtype=np.float64)


def bootstrap_interval(
    values: Any,
    statistic: Any = np.mean,
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` (called with ``axis=1``) over ``values``.

    Examples
    --------
    >>> low, high = bootstrap_interval([0.0, 1.0] * 50)
    >>> bool(0.39 < low < 0.5 < high < 0.61)
    True
    """
    dist = bootstrap_distribution(values, statistic, resamples=resamples, seed=seed)
    if not np.isfinite(dist).any():
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.quantile(dist, tail)), float(np.quantile(dist, 1 - tail))


def _cores_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def environment_info() -> dict[str, Any]:
    """Versions and machine facts for run summaries and reports.

    Returns
    -------
    dict
        ``attnmech``, ``python``, ``platform``, ``machine``, ``numpy``, ``scipy``, ``torch``
        (the version, or ``None`` when torch has not been imported by this process: reading it
        would cost the import), ``torch_threads`` (likewise), ``cpu_count`` and
        ``cpu_cores_available``.
    """
    import scipy

    from ._version import __version__

    torch = sys.modules.get("torch")
    return {
        "attnmech": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": str(torch.__version__) if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "cpu_count": os.cpu_count(),
        "cpu_cores_available": _cores_available(),
    }
