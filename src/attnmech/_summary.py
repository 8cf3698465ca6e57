"""One place for two small things every report needs: per-trial statistics and the environment.

- :func:`summary_stats`: mean, std, min and max over the finite values, plus every value (non-finite
  ones as ``None``), in a JSON-friendly dict.
- :func:`environment_info`: the Python, platform and library versions, and the CPU cores available,
  without importing torch when it is not already imported.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np

__all__ = ["summary_stats", "environment_info"]


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
