"""Parameter checks shared by the studies: thin calls of the declared constraints of
:mod:`attnmech._validation` (one message form, one error class)."""

from __future__ import annotations

from typing import Any

from .._validation import POSITIVE_INT, POSITIVE_REAL, check_params

__all__ = ["positive_int", "positive_number"]


def positive_int(name: str, value: Any, *, where: str = "study") -> int:
    """``value`` as an int, refused with :class:`~attnmech.errors.InvalidParameterError` unless
    it is an integer of at least 1 (booleans are refused).

    >>> positive_int("trials", 3)
    3
    """
    check_params({name: value}, {name: [POSITIVE_INT]}, where=where)
    return int(value)


def positive_number(name: str, value: Any, *, where: str = "study") -> float:
    """``value`` as a float, refused with :class:`~attnmech.errors.InvalidParameterError` unless
    it is a finite number above 0 (booleans are refused).

    >>> positive_number("steps_scale", 0.5)
    0.5
    """
    check_params({name: value}, {name: [POSITIVE_REAL]}, where=where)
    return float(value)
