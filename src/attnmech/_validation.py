"""Declared parameter validation: constraint tables instead of hand-written checks.

A function or config declares, once, what each parameter may be::

    _PARAMS = {
        "n_samples": [Interval(Integral, 1, None)],
        "graph": [Options(GRAPH_KINDS)],
        "num_threads": [Interval(Integral, 1, None), None],
    }

and calls ``check_params(values, _PARAMS, where="make_dataset")`` (or decorates itself with
:func:`validate_params`). A value passes when it satisfies at least one constraint of its list;
otherwise :class:`~attnmech.errors.InvalidParameterError` is raised with the one message form of
attnmech::

    <where>: <param> must be <constraint> or <constraint>, got <value!r>

The error class rule (see :mod:`attnmech.errors`): every parameter mistake raises
``InvalidParameterError``; ``InvalidDatasetError`` is kept for the content of sequences, labels and
embeddings, which no table here describes.

Constraints: :class:`Interval` (integers or finite reals between bounds), :class:`Options` (one
of a fixed set), :class:`PathLike`, :class:`ArrayLike`, :class:`IsCallable`, :class:`InstanceOf`,
and ``None`` (the value may be None). Every constraint can also produce values that break it
(:meth:`Constraint.invalid_values`), which the test catalogue uses to try each declared
constraint of every table.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import InvalidParameterError

__all__ = [
    "Constraint",
    "Interval",
    "Options",
    "PathLike",
    "ArrayLike",
    "IsCallable",
    "InstanceOf",
    "NoneConstraint",
    "check_params",
    "POSITIVE_INT",
    "NON_NEGATIVE_INT",
    "POSITIVE_REAL",
    "register",
    "validate_params",
    "make_constraint",
    "TABLES",
]

F = TypeVar("F", bound=Callable[..., Any])

TABLES: dict[str, Mapping[str, Sequence[Any]]] = {}
"""Every table declared with :func:`register` (``where`` -> table), for the test catalogue."""


class Constraint:
    """What a parameter value may be."""

    def is_satisfied_by(self, value: Any) -> bool:
        """True when ``value`` meets the constraint."""
        raise NotImplementedError

    def describe(self) -> str:
        """The constraint in words, e.g. ``"a positive integer"``."""
        raise NotImplementedError

    def invalid_values(self) -> list[Any]:
        """Values that break this constraint (for generated tests); may be empty."""
        return []

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class NoneConstraint(Constraint):
    """The value may be None."""

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "None"


# numpy's scalar types register with the numbers ABCs (np.int64 is Integral, np.float32 Real;
# np.bool_ is neither), so no numpy import is needed here: ``attnmech --help`` stays light
def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


class Interval(Constraint):
    """An integer (``kind=numbers.Integral``) or a finite real number (``numbers.Real``) in a range.

    Parameters
    ----------
    kind : numbers.Integral or numbers.Real
        Booleans are never numbers here; reals must be finite (no NaN, no inf).
    left, right : number or None
        Bounds (None: unbounded).
    closed : {"left", "right", "both", "neither"}, default="both"
        Which bounds belong to the interval.
    """

    def __init__(
        self,
        kind: type,
        left: float | None,
        right: float | None,
        *,
        closed: str = "both",
    ) -> None:
        if kind not in (numbers.Integral, numbers.Real):  # pragma: no cover - programming error
            raise TypeError("kind must be numbers.Integral or numbers.Real")
        if closed not in ("left", "right", "both", "neither"):  # pragma: no cover
            raise ValueError(closed)
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if self.kind is numbers.Integral:
            if not _is_integer(value):
                return False
        elif not _is_real(value):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def describe(self) -> str:
        noun = "integer" if self.kind is numbers.Integral else "number"
        left_in = self.closed in ("left", "both")
        right_in = self.closed in ("right", "both")
        if self.right is None and self.left is not None:
            if self.left == 0 and not left_in:
                return f"a positive {noun}"
            if self.left == 0 and left_in:
                return f"a non-negative {noun}"
            if self.left == 1 and left_in and noun == "integer":
                return "a positive integer"
            return f"an {noun} {'>=' if left_in else '>'} {self.left}".replace("an number", "a number")
        if self.left is None and self.right is None:
            return "an integer" if noun == "integer" else "a finite number"
        if self.left is None:
            text = f"an {noun} {'<=' if right_in else '<'} {self.right}"
            return text.replace("an number", "a number")
        lo = "[" if left_in else "("
        hi = "]" if right_in else ")"
        return (f"an {noun} in {lo}{self.left}, {self.right}{hi}").replace("an number", "a number")

    def invalid_values(self) -> list[Any]:
        out: list[Any] = ["x", True]
        if self.kind is numbers.Integral:
            out.append(1.5)
        else:
            out.append(float("nan"))
        if self.left is not None:
            below = self.left if self.closed in ("right", "neither") else self.left - 1
            if self.kind is numbers.Real and self.closed in ("left", "both"):
                below = self.left - abs(self.left) - 1.0
            out.append(int(below) if self.kind is numbers.Integral else float(below))
        if self.right is not None:
            above = self.right if self.closed in ("left", "neither") else self.right + 1
            out.append(int(above) if self.kind is numbers.Integral else float(above))
        return out


class Options(Constraint):
    """One of a fixed set of values (strings, usually)."""

    def __init__(self, options: Iterable[Any]) -> None:
        self.options = tuple(options)

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return any(value == option and type(value) is type(option) for option in self.options)
        except Exception:  # noqa: BLE001 - an exotic __eq__ is simply not an option
            return False

    def describe(self) -> str:
        return f"one of {', '.join(str(o) for o in self.options)}"

    def invalid_values(self) -> list[Any]:
        return ["not-an-option", 3.5]


class PathLike(Constraint):
    """A file-system path: ``str`` or ``os.PathLike``."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (str, os.PathLike))

    def describe(self) -> str:
        return "a path"

    def invalid_values(self) -> list[Any]:
        return [3, b"bytes"]


class ArrayLike(Constraint):
    """Anything numpy reads as an array of numbers (lists, tuples, arrays)."""

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, (str, bytes, Mapping)) or value is None:
            return False
        import numpy as np

        try:
            return np.asarray(value).dtype.kind in "biuf"
        except Exception:  # noqa: BLE001 - anything numpy cannot read is not array-like
            return False

    def describe(self) -> str:
        return "an array of numbers"

    def invalid_values(self) -> list[Any]:
        return ["abc", {"a": 1}]


class IsCallable(Constraint):
    """A callable."""

    def is_satisfied_by(self, value: Any) -> bool:
        return callable(value)

    def describe(self) -> str:
        return "a callable"

    def invalid_values(self) -> list[Any]:
        return [3]


class InstanceOf(Constraint):
    """An instance of a type (or of one of several types)."""

    def __init__(self, *types: type, name: str | None = None) -> None:
        self.types = types
        self.name = name

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def describe(self) -> str:
        if self.name:
            return self.name
        names = " or ".join(t.__name__ for t in self.types)
        article = "an" if names[:1].lower() in "aeiou" else "a"
        return f"{article} {names}"

    def invalid_values(self) -> list[Any]:
        return [object()]


POSITIVE_INT = Interval(numbers.Integral, 1, None)
"""An integer >= 1 (``"a positive integer"``)."""
NON_NEGATIVE_INT = Interval(numbers.Integral, 0, None)
"""An integer >= 0 (``"a non-negative integer"``)."""
POSITIVE_REAL = Interval(numbers.Real, 0, None, closed="neither")
"""A finite number > 0 (``"a positive number"``)."""


def make_constraint(spec: Any) -> Constraint:
    """A :class:`Constraint` from a table entry (``None`` -> :class:`NoneConstraint`;
    ``callable`` -> :class:`IsCallable`; a type -> :class:`InstanceOf`)."""
    if isinstance(spec, Constraint):
        return spec
    if spec is None:
        return NoneConstraint()
    if spec is callable:
        return IsCallable()
    if isinstance(spec, type):
        return InstanceOf(spec)
    raise TypeError(f"not a constraint: {spec!r}")  # pragma: no cover - programming error


def describe(specs: Sequence[Any]) -> str:
    """The constraints of one parameter in words, joined by "or"."""
    return " or ".join(make_constraint(s).describe() for s in specs)


def check_params(
    values: Mapping[str, Any], table: Mapping[str, Sequence[Any]], *, where: str
) -> None:
    """Check each value named in ``table`` (names absent from ``values`` are skipped).

    Raises
    ------
    InvalidParameterError
        ``"<where>: <param> must be <constraints>, got <value!r>"`` for the first value that
        satisfies none of its constraints.
    """
    for name, specs in table.items():
        if name not in values:
            continue
        value = values[name]
        if not any(make_constraint(spec).is_satisfied_by(value) for spec in specs):
            shown = repr(value)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            raise InvalidParameterError(f"{where}: {name} must be {describe(specs)}, got {shown}")


def register(where: str, table: Mapping[str, Sequence[Any]]) -> Mapping[str, Sequence[Any]]:
    """Record ``table`` under ``where`` in :data:`TABLES` (for the catalogue); return it."""
    TABLES[where] = table
    return table


def validate_params(table: Mapping[str, Sequence[Any]], *, where: str | None = None) -> Callable[[F], F]:
    """Decorator: check the call's arguments against ``table`` before the function runs.

    ``where`` defaults to the function's name. The table is registered in :data:`TABLES`.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        label = where or func.__name__
        register(label, table)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return func(*args, **kwargs)  # let Python report the wrong call itself
            check_params(bound.arguments, table, where=label)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


class Flag(Constraint):
    """A boolean (``True``/``False``, numpy's too): not a string, number or array that Python
    would read as true or false."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, bool) or type(value).__name__ == "bool_"

    def describe(self) -> str:
        return "True or False"

    def invalid_values(self) -> list[Any]:
        return ["no", 2, None]


FLAG = Flag()
"""``True`` or ``False``."""
