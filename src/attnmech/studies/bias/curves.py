"""Small numeric helpers of the bias table: log-log slopes, cosines, means over finite values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["cosine", "loglog_slope", "mean_curve", "nanmean"]


def loglog_slope(steps: Any, values: Any, *, decade: float = 10.0) -> float:
    """Slope of ``log values`` against ``log steps`` over the last decade of steps.

    A least-squares line through the points with ``steps >= steps[-1] / decade`` (and positive,
    finite values). NaN when fewer than 3 such points remain.

    Examples
    --------
    >>> t = np.arange(1, 1001)
    >>> round(loglog_slope(t, 3.0 / t**2), 6)
    -2.0
    """
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = (steps >= steps[-1] / decade) & (steps > 0) & np.isfinite(values) & (values > 0)
    if keep.sum() < 3:
        return math.nan
    x, y = np.log(steps[keep]), np.log(values[keep])
    return float(np.polyfit(x, y, 1)[0])


def cosine(W: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Frobenius cosine of ``W`` (..., d, d) with one ``V`` (d, d); NaN where a norm is 0."""
    inner = np.einsum("...ij,ij->...", W, V)
    norms = np.linalg.norm(W, axis=(-2, -1)) * np.linalg.norm(V)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, inner / np.where(norms > 0, norms, 1.0), np.nan)


def nanmean(values: Any) -> float:
    """Mean of the finite entries (NaN when there is none)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


def mean_curve(curve: Any) -> np.ndarray:
    """The mean over trials (axis 1) of the finite values; NaN where none is finite."""
    import warnings

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(np.asarray(curve, dtype=np.float64), axis=1))
