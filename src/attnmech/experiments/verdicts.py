"""Verdict rules: whether our measurement agrees with a number the paper reports.

Every paper value carries one :class:`VerdictRule` object, so a new way of comparing (a
two-sample test on per-trial values, a figure reading with its own tolerance, a median and IQR)
is a new subclass, not a change to the runner or the report writer.

Examples
--------
>>> value = PaperValue("0.986 ± 0.005", 0.986, MeanStd(std=0.005))
>>> value.agrees(Sample.of([0.984] * 10))
True
>>> PaperValue("~0.99", 0.99, Approx(tol=0.01)).agrees(Sample.of([0.97, 0.975]))
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import InvalidParameterError

__all__ = [
    "Sample",
    "VerdictRule",
    "MeanStd",
    "Mean",
    "Approx",
    "Range",
    "LogScale",
    "PaperValue",
]


@dataclass(frozen=True, slots=True)
class Sample:
    """Our side of a comparison: the finite per-trial values and their summary.

    Attributes
    ----------
    values : ndarray of shape (n,)
        The finite per-trial values (float64).
    mean, std : float
        Their mean and (population) standard deviation, NaN when ``n == 0``.
    """

    values: np.ndarray
    mean: float
    std: float

    @property
    def n(self) -> int:
        return int(self.values.size)

    @classmethod
    def of(cls, values: Any) -> Sample:
        """The finite entries of ``values`` and their mean and std."""
        array = np.asarray(values, dtype=np.float64).ravel()
        finite = array[np.isfinite(array)]
        finite.flags.writeable = False
        if not finite.size:
            return cls(finite, math.nan, math.nan)
        return cls(finite, float(finite.mean()), float(finite.std()))


class VerdictRule:
    """How one paper value is compared with ours (subclass it to add a rule).

    A rule sees the paper's central value and our :class:`Sample`; it returns the difference
    (``ours - paper`` or a ratio), the verdict, a sentence for the report and its parameters for
    ``results.json``.
    """

    kind: ClassVar[str] = ""
    difference_kind: ClassVar[str] = "ours - paper"

    def difference(self, paper: float, mean: float) -> float:
        """``ours - paper`` (override for ratios)."""
        return mean - paper

    def agrees(self, paper: float, ours: Sample) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def format_difference(self, paper: float, difference: float) -> str:
        """The difference as the table shows it."""
        relative = f" ({difference / paper:+.1%})" if paper else ""
        return f"{difference:+.3g}{relative}"

    def explain_size(self, paper: float, difference: float) -> str:
        """The size of a disagreement in words."""
        text = f"ours − paper = {difference:+.3g}"
        return text + (f" ({difference / paper:+.1%})" if paper else "")

    def covers(self, paper: float, low: float, high: float) -> bool:
        """Whether the paper's value lies inside our trials' range ``[low, high]``."""
        return low <= paper <= high

    def parameters(self) -> dict[str, Any]:
        """The rule's parameters for ``results.json``."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "kind": self.kind,
            "tol": 0.0,
            "std": None,
            "low": None,
            "high": None,
            "complement": False,
        }
        base.update(self.parameters())
        return base


def _finite_number(name: str, value: Any, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (positive and value <= 0) or value < 0:
        need = "a positive" if positive else "a non-negative"
        raise InvalidParameterError(f"{name} must be {need} finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class MeanStd(VerdictRule):
    """A mean ± std over the paper's trials: agree when ``|ours - paper| <= 2 sqrt((std_paper^2
    + std_ours^2) / n)``, two standard errors of the difference."""

    std: float
    kind: ClassVar[str] = "mean_std"

    def __post_init__(self) -> None:
        _finite_number("MeanStd.std", self.std)

    def agrees(self, paper: float, ours: Sample) -> bool:
        if ours.n == 0:
            return False
        diff = self.difference(paper, ours.mean)
        return abs(diff) <= 2.0 * math.sqrt((self.std**2 + ours.std**2) / ours.n)

    def describe(self) -> str:
        return "within 2 standard errors of the difference of the two means"

    def parameters(self) -> dict[str, Any]:
        return {"std": self.std}


@dataclass(frozen=True, slots=True)
class Mean(VerdictRule):
    """A mean over the paper's trials without its std: the two-standard-error rule with our
    std taken for both."""

    kind: ClassVar[str] = "mean"

    def agrees(self, paper: float, ours: Sample) -> bool:
        if ours.n == 0:
            return False
        return abs(self.difference(paper, ours.mean)) <= 2.0 * math.sqrt(2.0 * ours.std**2 / ours.n)

    def describe(self) -> str:
        return "within 2 standard errors of the difference (the paper's std taken as ours)"


@dataclass(frozen=True, slots=True)
class Approx(VerdictRule):
    """A value read off a linear figure: agree when ``|ours - paper| <= tol``."""

    tol: float
    kind: ClassVar[str] = "approx"

    def __post_init__(self) -> None:
        _finite_number("Approx.tol", self.tol)

    def agrees(self, paper: float, ours: Sample) -> bool:
        return ours.n > 0 and abs(self.difference(paper, ours.mean)) <= self.tol

    def describe(self) -> str:
        return f"within {self.tol:g} of the value read off the paper's figure"

    def parameters(self) -> dict[str, Any]:
        return {"tol": self.tol}


@dataclass(frozen=True, slots=True)
class Range(VerdictRule):
    """A range: agree when ``low <= ours <= high`` up to two standard errors of our mean."""

    low: float
    high: float
    kind: ClassVar[str] = "range"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise InvalidParameterError(
                f"Range needs finite low <= high, got low={self.low!r}, high={self.high!r}"
            )

    def agrees(self, paper: float, ours: Sample) -> bool:
        if ours.n == 0:
            return False
        slack = 2.0 * ours.std / math.sqrt(ours.n)
        return self.low - slack <= ours.mean <= self.high + slack

    def describe(self) -> str:
        return "inside the paper's range, up to 2 standard errors of our mean"

    def covers(self, paper: float, low: float, high: float) -> bool:
        return low <= self.high and self.low <= high

    def parameters(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class LogScale(VerdictRule):
    """An order of magnitude read off a log axis: agree when ``|log10(ours / paper)| <= tol``
    (on ``1 - x`` when ``complement``, for values just below 1)."""

    tol: float
    complement: bool = False
    kind: ClassVar[str] = "log"
    difference_kind: ClassVar[str] = "ratio"

    def __post_init__(self) -> None:
        _finite_number("LogScale.tol", self.tol)

    def difference(self, paper: float, mean: float) -> float:
        ours, theirs = (1 - mean, 1 - paper) if self.complement else (mean, paper)
        return ours / theirs if theirs != 0 else math.nan

    def agrees(self, paper: float, ours: Sample) -> bool:
        if ours.n == 0:
            return False
        ratio = self.difference(paper, ours.mean)
        return ratio > 0 and abs(math.log10(ratio)) <= self.tol

    def describe(self) -> str:
        what = "1 - value" if self.complement else "value"
        return f"{what} within a factor {10**self.tol:.2g} of the paper's (log axis)"

    def format_difference(self, paper: float, difference: float) -> str:
        return f"×{difference:.3g}"

    def explain_size(self, paper: float, difference: float) -> str:
        if self.complement:
            return f"1 - ours is ×{difference:.2g} the paper's 1 - {paper:g}"
        return f"ours is ×{difference:.2g} the paper's value"

    def parameters(self) -> dict[str, Any]:
        return {"tol": self.tol, "complement": self.complement}


@dataclass(frozen=True, slots=True)
class PaperValue:
    """A number the paper reports, with the rule that decides whether ours agrees.

    Parameters
    ----------
    text : str
        How the paper states it (``"~0.99"``, ``"0.986 ± 0.005"``).
    value : float
        The central value.
    rule : VerdictRule
        How ours is compared with it (:class:`MeanStd`, :class:`Mean`, :class:`Approx`,
        :class:`Range`, :class:`LogScale`, or a new subclass).
    source : str, default="figure"
        Where the number comes from (``"figure"`` marks a value read off a figure).
    """

    text: str
    value: float
    rule: VerdictRule
    source: str = "figure"

    def __post_init__(self) -> None:
        if not isinstance(self.rule, VerdictRule):
            raise InvalidParameterError(
                f"PaperValue {self.text!r}: rule must be a VerdictRule (for example "
                f"Approx(tol=0.01)), got {self.rule!r}"
            )

    def difference(self, mean: float) -> float:
        """``ours - paper``, or a ratio for log-axis values (see the rule)."""
        return self.rule.difference(self.value, mean)

    def agrees(self, ours: Sample) -> bool:
        """Whether our per-trial values agree with the paper under :attr:`rule`."""
        if ours.n == 0 or not math.isfinite(ours.mean):
            return False
        return bool(self.rule.agrees(self.value, ours))

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "value": self.value,
            **self.rule.to_dict(),
            "source": self.source,
            "rule": self.rule.describe(),
        }
