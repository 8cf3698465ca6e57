"""Parameter checks shared by the studies (one message form, one error class)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["positive_int", "positive_number"]


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int, refused with :class:`InvalidParameterError` unless it is an integer
    of at least 1 (booleans are refused).

    >>> positive_int("trials", 3)
    3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def positive_number(name: str, value: Any) -> float:
    """``value`` as a float, refused with :class:`InvalidParameterError` unless it is a finite
    number above 0 (booleans are refused).

    >>> positive_number("steps_scale", 0.5)
    0.5
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"{name} must be a positive number, got {value!r}")
    return float(value)
