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

import abc
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..._validation import POSITIVE_INT, check_params
from ...errors import InvalidParameterError

__all__ = [
    "Sample",
    "VerdictRule",
    "MeanStd",
    "Mean",
    "Approx",
    "Range",
    "LogScale",
    "FigureReading",
    "AtLeast",
    "MedianIQR",
    "PerTrial",
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

    @property
    def sem(self) -> float:
        """Standard error of the mean, ``std / sqrt(n)`` (NaN when empty)."""
        return self.std / math.sqrt(self.n) if self.n else math.nan

    def quantiles(self) -> tuple[float, float, float]:
        """25th percentile, median, 75th percentile (NaN when empty)."""
        if not self.n:
            return (math.nan, math.nan, math.nan)
        q1, med, q3 = np.percentile(self.values, [25, 50, 75])
        return float(q1), float(med), float(q3)

    @classmethod
    def of(cls, values: Any) -> Sample:
        """The finite entries of ``values`` and their mean and std."""
        array = np.asarray(values, dtype=np.float64).ravel()
        finite = array[np.isfinite(array)]
        finite.flags.writeable = False
        if not finite.size:
            return cls(finite, math.nan, math.nan)
        return cls(finite, float(finite.mean()), float(finite.std()))


class VerdictRule(abc.ABC):
    """How one paper value is compared with ours (abstract: subclass it to add a rule).

    A rule sees the paper's central value and our :class:`Sample`; it returns the difference
    (``ours - paper`` or a ratio), the verdict, a sentence for the report and its parameters for
    ``results.json``.
    """

    kind: ClassVar[str] = ""
    difference_kind: ClassVar[str] = "ours - paper"

    def difference(self, paper: float, mean: float) -> float:
        """``ours - paper`` (override for ratios)."""
        return mean - paper

    @abc.abstractmethod
    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether our sample agrees with the paper's central value under this rule."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The rule in words, for the report (e.g. ``"within 2 std"``)."""

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

    def summary(self, ours: Sample) -> str | None:
        """How the table shows our side (None: mean ± std)."""
        return None

    def centre(self, ours: Sample) -> float:
        """Our central value for this rule (the mean; the median for :class:`MedianIQR`)."""
        return ours.mean

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


def _paper_trials(name: str, value: Any) -> int | None:
    check_params({name: value}, {name: [POSITIVE_INT, None]}, where="paper value")
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class MeanStd(VerdictRule):
    """A mean ± std over the paper's ``n`` trials against our mean ± std (two-sample test):
    agree when ``|ours - paper| <= 2 sqrt(std_paper^2 / n_paper + std_ours^2 / n_ours)``, two
    standard errors of the difference (``n`` None: the paper's trial count taken as ours)."""

    std: float
    n: int | None = None
    kind: ClassVar[str] = "mean_std"

    def __post_init__(self) -> None:
        _finite_number("MeanStd.std", self.std)
        _paper_trials("MeanStd.n", self.n)

    def bound(self, ours: Sample) -> float:
        n_paper = self.n or ours.n
        return 2.0 * math.sqrt(self.std**2 / n_paper + ours.std**2 / ours.n)

    def agrees(self, paper: float, ours: Sample) -> bool:
        if ours.n == 0:
            return False
        return abs(self.difference(paper, ours.mean)) <= self.bound(ours)

    def describe(self) -> str:
        trials = f"{self.n}" if self.n else "as many as ours"
        return (
            f"two-sample: |difference of means| <= 2 standard errors of the difference (paper "
            f"std {self.std:g} over {trials} trials, ours over our trials)"
        )

    def parameters(self) -> dict[str, Any]:
        return {"std": self.std, "n_paper": self.n}


@dataclass(frozen=True, slots=True)
class Mean(VerdictRule):
    """A mean over the paper's ``n`` trials printed without its std: the two-sample rule with
    our std taken for the paper's too."""

    n: int | None = None
    kind: ClassVar[str] = "mean"

    def __post_init__(self) -> None:
        _paper_trials("Mean.n", self.n)

    def agrees(self, paper: float, ours: Sample) -> bool:
        if ours.n == 0:
            return False
        n_paper = self.n or ours.n
        bound = 2.0 * ours.std * math.sqrt(1.0 / n_paper + 1.0 / ours.n)
        return abs(self.difference(paper, ours.mean)) <= bound

    def describe(self) -> str:
        return "two-sample at 2 standard errors, the paper's std (not printed) taken as ours"

    def parameters(self) -> dict[str, Any]:
        return {"n_paper": self.n}


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
class FigureReading(VerdictRule):
    """A value read off a figure of the mean over ``trials`` runs, with the reading's own
    tolerance ``tol``: agree when ``|ours - reading| <= tol + 2 sqrt(s^2 / n_ours + s^2 /
    trials)`` (s our std, standing in for the authors' unknown one; ``trials`` None: a single
    run, no sampling term on their side)."""

    tol: float
    trials: int | None = None
    kind: ClassVar[str] = "figure"

    def __post_init__(self) -> None:
        _finite_number("FigureReading.tol", self.tol)
        _paper_trials("FigureReading.trials", self.trials)

    def bound(self, ours: Sample) -> float:
        theirs = ours.std**2 / self.trials if self.trials else 0.0
        return self.tol + 2.0 * math.sqrt(ours.std**2 / ours.n + theirs)

    def agrees(self, paper: float, ours: Sample) -> bool:
        return ours.n > 0 and abs(self.difference(paper, ours.mean)) <= self.bound(ours)

    def describe(self) -> str:
        who = f"the mean of {self.trials} runs" if self.trials else "one run"
        return (
            f"figure reading ±{self.tol:g} ({who}): |difference| <= {self.tol:g} + 2 standard "
            "errors"
        )

    def parameters(self) -> dict[str, Any]:
        return {"tol": self.tol, "trials": self.trials}


@dataclass(frozen=True, slots=True)
class AtLeast(VerdictRule):
    """A qualitative claim made a test: agree when our mean exceeds the stated threshold (the
    paper value's ``value``) by more than 2 standard errors; the table also counts the trials
    above it."""

    kind: ClassVar[str] = "at_least"

    def agrees(self, paper: float, ours: Sample) -> bool:
        return ours.n > 0 and ours.mean - 2.0 * (ours.sem if ours.n > 1 else 0.0) > paper

    def describe(self) -> str:
        return "qualitative: our mean minus 2 standard errors above the stated threshold"

    def summary(self, ours: Sample) -> str | None:
        return None

    def covers(self, paper: float, low: float, high: float) -> bool:
        return high > paper


@dataclass(frozen=True, slots=True)
class MedianIQR(VerdictRule):
    """A quantity whose trial-to-trial spread covers decades (``1 - attention``): agree when the
    paper's value (read off a log axis within a factor ``factor``) lies inside our interquartile
    range widened by that factor, ``[Q1 / factor, Q3 * factor]``. The difference is the ratio
    of our median to the paper's value."""

    factor: float = 2.0
    kind: ClassVar[str] = "median_iqr"
    difference_kind: ClassVar[str] = "ratio of medians"

    def __post_init__(self) -> None:
        _finite_number("MedianIQR.factor", self.factor, positive=True)
        if self.factor < 1:
            raise InvalidParameterError(f"MedianIQR.factor must be >= 1, got {self.factor!r}")

    def difference(self, paper: float, mean: float) -> float:
        return mean / paper if paper else math.nan

    def centre(self, ours: Sample) -> float:
        return ours.quantiles()[1]

    def agrees(self, paper: float, ours: Sample) -> bool:
        if ours.n == 0:
            return False
        q1, _, q3 = ours.quantiles()
        return q1 / self.factor <= paper <= q3 * self.factor

    def describe(self) -> str:
        return f"median + IQR: the paper's value inside our IQR widened by a factor {self.factor:g}"

    def summary(self, ours: Sample) -> str | None:
        q1, med, q3 = ours.quantiles()
        return f"median {med:.3g} (IQR {q1:.3g} – {q3:.3g})"

    def format_difference(self, paper: float, difference: float) -> str:
        return f"×{difference:.3g}"

    def explain_size(self, paper: float, difference: float) -> str:
        return f"our median is ×{difference:.2g} the paper's value"

    def parameters(self) -> dict[str, Any]:
        return {"tol": self.factor}


@dataclass(frozen=True, slots=True)
class PerTrial(VerdictRule):
    """The same trials as the authors' (their data and inits): agree when every trial is within
    ``tol`` of the value the notebook printed for it."""

    values: tuple[float, ...]
    tol: float = 1e-4
    kind: ClassVar[str] = "per_trial"
    difference_kind: ClassVar[str] = "max |ours - notebook| per trial"

    def __post_init__(self) -> None:
        _finite_number("PerTrial.tol", self.tol)
        if not self.values:
            raise InvalidParameterError("PerTrial needs the notebook's per-trial values")

    def max_abs_diff(self, ours: Sample) -> float:
        k = min(ours.n, len(self.values))
        if k == 0:
            return math.nan
        return float(np.max(np.abs(ours.values[:k] - np.asarray(self.values[:k]))))

    def agrees(self, paper: float, ours: Sample) -> bool:
        diff = self.max_abs_diff(ours)
        return math.isfinite(diff) and diff <= self.tol

    def describe(self) -> str:
        return f"same data: every trial within {self.tol:g} of the notebook's printed value"

    def format_difference(self, paper: float, difference: float) -> str:
        return f"max {difference:.2e}"

    def explain_size(self, paper: float, difference: float) -> str:
        return f"the largest per-trial |ours - notebook| is {difference:.2e}"

    def covers(self, paper: float, low: float, high: float) -> bool:
        return True

    def parameters(self) -> dict[str, Any]:
        return {"tol": self.tol, "notebook_values": list(self.values)}


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

    def difference_of(self, ours: Sample) -> float:
        """The rule's difference for our sample (its centre: mean, or median)."""
        if isinstance(self.rule, PerTrial):
            return self.rule.max_abs_diff(ours)
        return self.rule.difference(self.value, self.rule.centre(ours))

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
