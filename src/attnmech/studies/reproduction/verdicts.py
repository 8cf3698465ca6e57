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

from ..._summary import summary_stats
from ..._validation import POSITIVE_INT, check_params
from ...errors import InvalidParameterError

__all__ = [
    "AGREE",
    "DISAGREE",
    "NOT_COMPARABLE",
    "OUTCOMES",
    "Verdict",
    "Sampling",
    "NotComparable",
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
    draws: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of finite per-trial values."""
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
    def of(cls, values: Any, draws: Any = None) -> Sample:
        """The finite entries of ``values`` and their mean and std (:func:`summary_stats`).

        ``draws``: the sampling distribution of the compared statistic over draws of as many
        trials as the authors ran (see :class:`Sampling`), or None.
        """
        array = np.asarray(values, dtype=np.float64).ravel()
        finite = array[np.isfinite(array)]
        finite.flags.writeable = False
        stats = summary_stats(finite)
        dist = None if draws is None else np.asarray(draws, dtype=np.float64).ravel()
        if not finite.size:
            return cls(finite, math.nan, math.nan, dist)
        return cls(finite, float(stats["mean"]), float(stats["std"]), dist)


AGREE, DISAGREE, NOT_COMPARABLE = "agree", "disagree", "not comparable"
OUTCOMES = (AGREE, DISAGREE, NOT_COMPARABLE)
"""The three outcomes of a comparison with an author number."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one comparison.

    Attributes
    ----------
    outcome : {"agree", "disagree", "not comparable"}
    reason : str
        Why a row is not comparable, or what decided it.
    percentile : float or None
        Where the authors' value falls in the sampling distribution of our statistic (0-100),
        for :class:`Sampling` rules.
    """

    outcome: str
    reason: str = ""
    percentile: float | None = None

    @property
    def agrees(self) -> bool | None:
        """True / False for agree / disagree, None when not comparable."""
        return {AGREE: True, DISAGREE: False}.get(self.outcome)


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

    def trials_drawn(self) -> int | None:
        """The number of trials of the authors' statistic whose sampling distribution the rule
        needs (None: the rule needs none)."""
        return None

    def verdict(self, paper: float, ours: Sample) -> Verdict:
        """The outcome (default: agree or disagree by :meth:`agrees`)."""
        if ours.n == 0 or not math.isfinite(ours.mean):
            return Verdict(DISAGREE, "no finite value of ours")
        return Verdict(AGREE if self.agrees(paper, ours) else DISAGREE)

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
        """The rule for ``results.json``: ``kind``, default fields, then :meth:`parameters`."""
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
        """Two standard errors of the difference of means (paper ``n`` None: our trial count)."""
        n_paper = self.n or ours.n
        return 2.0 * math.sqrt(self.std**2 / n_paper + ours.std**2 / ours.n)

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether ``|ours - paper|`` is within :meth:`bound` (False when we have no trials)."""
        if ours.n == 0:
            return False
        return abs(self.difference(paper, ours.mean)) <= self.bound(ours)

    def describe(self) -> str:
        """The two-sample rule in words, with the paper's std and trial count."""
        trials = f"{self.n}" if self.n else "as many as ours"
        return (
            f"two-sample: |difference of means| <= 2 standard errors of the difference (paper "
            f"std {self.std:g} over {trials} trials, ours over our trials)"
        )

    def parameters(self) -> dict[str, Any]:
        """The paper's std and trial count (``n_paper``)."""
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
        """Whether ``|ours - paper|`` is within 2 standard errors, our std used on both sides."""
        if ours.n == 0:
            return False
        n_paper = self.n or ours.n
        bound = 2.0 * ours.std * math.sqrt(1.0 / n_paper + 1.0 / ours.n)
        return abs(self.difference(paper, ours.mean)) <= bound

    def describe(self) -> str:
        """The two-sample rule in words, noting the paper's std is taken as ours."""
        return "two-sample at 2 standard errors, the paper's std (not printed) taken as ours"

    def parameters(self) -> dict[str, Any]:
        """The paper's trial count (``n_paper``)."""
        return {"n_paper": self.n}


@dataclass(frozen=True, slots=True)
class Approx(VerdictRule):
    """A value read off a linear figure: agree when ``|ours - paper| <= tol``."""

    tol: float
    kind: ClassVar[str] = "approx"

    def __post_init__(self) -> None:
        _finite_number("Approx.tol", self.tol)

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether our mean is within ``tol`` of the paper's value."""
        return ours.n > 0 and abs(self.difference(paper, ours.mean)) <= self.tol

    def describe(self) -> str:
        """The tolerance of the figure reading in words."""
        return f"within {self.tol:g} of the value read off the paper's figure"

    def parameters(self) -> dict[str, Any]:
        """The tolerance ``tol``."""
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
        """Whether our mean lies in ``[low, high]`` widened by 2 standard errors of our mean."""
        if ours.n == 0:
            return False
        slack = 2.0 * ours.std / math.sqrt(ours.n)
        return self.low - slack <= ours.mean <= self.high + slack

    def describe(self) -> str:
        """The range rule in words."""
        return "inside the paper's range, up to 2 standard errors of our mean"

    def covers(self, paper: float, low: float, high: float) -> bool:
        """Whether our trials' range ``[low, high]`` overlaps the paper's range."""
        return low <= self.high and self.low <= high

    def parameters(self) -> dict[str, Any]:
        """The range's ``low`` and ``high``."""
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
        """The ratio ``ours / paper`` (of ``1 - x`` if ``complement``; NaN on a zero paper side)."""
        ours, theirs = (1 - mean, 1 - paper) if self.complement else (mean, paper)
        return ours / theirs if theirs != 0 else math.nan

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether the ratio is positive and ``|log10(ratio)| <= tol``."""
        if ours.n == 0:
            return False
        ratio = self.difference(paper, ours.mean)
        return ratio > 0 and abs(math.log10(ratio)) <= self.tol

    def describe(self) -> str:
        """The log-axis rule in words, with its factor ``10**tol``."""
        what = "1 - value" if self.complement else "value"
        return f"{what} within a factor {10**self.tol:.2g} of the paper's (log axis)"

    def format_difference(self, paper: float, difference: float) -> str:
        """The ratio as the table shows it (``×r``)."""
        return f"×{difference:.3g}"

    def explain_size(self, paper: float, difference: float) -> str:
        """The ratio of a disagreement in words (of ``1 - x`` when ``complement``)."""
        if self.complement:
            return f"1 - ours is ×{difference:.2g} the paper's 1 - {paper:g}"
        return f"ours is ×{difference:.2g} the paper's value"

    def parameters(self) -> dict[str, Any]:
        """The tolerance ``tol`` and the ``complement`` flag."""
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
        """``tol`` plus 2 standard errors of the difference (our std for both sides)."""
        theirs = ours.std**2 / self.trials if self.trials else 0.0
        return self.tol + 2.0 * math.sqrt(ours.std**2 / ours.n + theirs)

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether ``|ours - reading|`` is within :meth:`bound`."""
        return ours.n > 0 and abs(self.difference(paper, ours.mean)) <= self.bound(ours)

    def describe(self) -> str:
        """The figure-reading rule in words, with its tolerance and the authors' runs."""
        who = f"the mean of {self.trials} runs" if self.trials else "one run"
        return (
            f"figure reading ±{self.tol:g} ({who}): |difference| <= {self.tol:g} + 2 standard "
            "errors"
        )

    def parameters(self) -> dict[str, Any]:
        """The tolerance ``tol`` and the authors' ``trials``."""
        return {"tol": self.tol, "trials": self.trials}


@dataclass(frozen=True, slots=True)
class AtLeast(VerdictRule):
    """A qualitative claim made a test: agree when our mean exceeds the stated threshold (the
    paper value's ``value``) by more than 2 standard errors; the table also counts the trials
    above it.

    A test must pass on the authors' own data before it can fail ours: ``authors`` holds the
    authors' per-trial values of the same quantity (``authors_source`` says where they come
    from); when the test fails on them the row is *not comparable*.
    """

    authors: tuple[float, ...] = ()
    authors_source: str = ""
    kind: ClassVar[str] = "at_least"

    def _passes(self, paper: float, sample: Sample) -> bool:
        return sample.n > 0 and sample.mean - 2.0 * (sample.sem if sample.n > 1 else 0.0) > paper

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether our mean minus 2 standard errors exceeds the threshold ``paper``."""
        return self._passes(paper, ours)

    def verdict(self, paper: float, ours: Sample) -> Verdict:
        """Not comparable when the test fails on the authors' own values; else the base verdict."""
        if self.authors:
            theirs = Sample.of(self.authors)
            if not self._passes(paper, theirs):
                above = int((theirs.values > paper).sum())
                return Verdict(
                    NOT_COMPARABLE,
                    f"the test fails on the authors' own data ({self.authors_source}: mean "
                    f"{theirs.mean:.3g} ± {theirs.std:.2g}, {above}/{theirs.n} trials above "
                    f"{paper:g})",
                )
        return VerdictRule.verdict(self, paper, ours)

    def describe(self) -> str:
        """The qualitative threshold test in words."""
        return (
            "qualitative: our mean minus 2 standard errors above the stated threshold (only where "
            "the authors' own per-trial values pass the same test)"
        )

    def summary(self, ours: Sample) -> str | None:
        """None: the table shows our side as mean ± std."""
        return None

    def covers(self, paper: float, low: float, high: float) -> bool:
        """Whether our largest trial ``high`` exceeds the threshold."""
        return high > paper

    def parameters(self) -> dict[str, Any]:
        """The authors' per-trial values and their source."""
        return {"authors_values": list(self.authors), "authors_source": self.authors_source}


@dataclass(frozen=True, slots=True)
class Sampling(VerdictRule):
    """The one rule for an author statistic of ``k`` trials on random datasets.

    Our side is the sampling distribution of the same statistic over ``k``-trial draws of our
    trials (bootstrap, :func:`attnmech._summary.bootstrap_distribution`; for a statistic of the
    mean curve, such as its peak or the step of its peak, the trials are resampled and the
    statistic recomputed). Agree when the authors' value, widened by its reading uncertainty
    (``± tol``, and a factor ``factor`` for values read off a log axis), meets the central
    ``level`` of that distribution; the table gives the percentile of the authors' value in it.

    Parameters
    ----------
    k : int, default=10
        Trials behind the authors' statistic (``k_known`` False: not printed, 10 assumed, as in
        every notebook).
    tol : float, default=0
        Reading tolerance of a value read off a figure.
    factor : float, default=1
        Reading factor on a log axis (the value is known within ``[v / factor, v * factor]``).
    level : float, default=0.95
    k_known : bool, default=True
    """

    k: int = 10
    tol: float = 0.0
    factor: float = 1.0
    level: float = 0.95
    k_known: bool = True
    kind: ClassVar[str] = "sampling"

    def __post_init__(self) -> None:
        _paper_trials("Sampling.k", self.k)
        _finite_number("Sampling.tol", self.tol)
        _finite_number("Sampling.factor", self.factor, positive=True)
        if self.factor < 1:
            raise InvalidParameterError(f"Sampling.factor must be >= 1, got {self.factor!r}")
        if not 0 < self.level < 1:
            raise InvalidParameterError(f"Sampling.level must lie in (0, 1), got {self.level!r}")

    def trials_drawn(self) -> int | None:
        """The authors' trial count ``k``, the size of each bootstrap draw."""
        return self.k

    def reading(self, paper: float) -> tuple[float, float]:
        """The interval the authors' value is known to lie in."""
        return paper / self.factor - self.tol, paper * self.factor + self.tol

    def interval(self, ours: Sample) -> tuple[float, float]:
        """The central ``level`` of our sampling distribution (NaN without draws)."""
        draws = _finite_draws(ours)
        if draws.size == 0:
            return math.nan, math.nan
        tail = (1.0 - self.level) / 2.0
        low, high = np.quantile(draws, [tail, 1.0 - tail])
        return float(low), float(high)

    def percentile(self, paper: float, ours: Sample) -> float | None:
        """Where ``paper`` falls in our sampling distribution, 0-100 (ties count half)."""
        draws = _finite_draws(ours)
        if draws.size == 0:
            return None
        below = float(np.mean(draws < paper)) + 0.5 * float(np.mean(draws == paper))
        return 100.0 * below

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether the authors' reading interval meets the central ``level`` of our draws."""
        low, high = self.interval(ours)
        if not (math.isfinite(low) and math.isfinite(high)):
            return False
        r_low, r_high = self.reading(paper)
        return r_low <= high and low <= r_high

    def verdict(self, paper: float, ours: Sample) -> Verdict:
        """Agree or disagree by :meth:`agrees`, with the authors' percentile in our draws."""
        if _finite_draws(ours).size == 0:
            return Verdict(DISAGREE, "no finite value of ours")
        agree = self.agrees(paper, ours)
        return Verdict(AGREE if agree else DISAGREE, percentile=self.percentile(paper, ours))

    def difference(self, paper: float, mean: float) -> float:
        """``ours / paper`` when read off a log axis (``factor > 1``), else ``ours - paper``."""
        if self.factor > 1:
            return mean / paper if paper else math.nan
        return mean - paper

    def format_difference(self, paper: float, difference: float) -> str:
        """A ratio (``×r``) on a log axis, else the base format."""
        if self.factor > 1:
            return f"×{difference:.3g}"
        return VerdictRule.format_difference(self, paper, difference)

    def explain_size(self, paper: float, difference: float) -> str:
        """A ratio in words on a log axis, else the base explanation."""
        if self.factor > 1:
            return f"ours is ×{difference:.2g} the authors' value"
        return VerdictRule.explain_size(self, paper, difference)

    def describe(self) -> str:
        """The bootstrap rule in words, with ``k``, the reading uncertainty and ``level``."""
        trials = f"{self.k}" if self.k_known else f"{self.k} (not printed; assumed)"
        reading = ""
        if self.tol:
            reading += f" ± {self.tol:g}"
        if self.factor > 1:
            reading += f" within a factor {self.factor:.2g}"
        return (
            f"the authors' statistic of {trials} trials{reading} inside the central "
            f"{self.level:.0%} of the sampling distribution of the same statistic over "
            f"{self.k}-trial draws of ours (bootstrap)"
        )

    def parameters(self) -> dict[str, Any]:
        """``k``, ``k_known``, ``tol``, ``factor`` and ``level``."""
        return {
            "k": self.k,
            "k_known": self.k_known,
            "tol": self.tol,
            "factor": self.factor,
            "level": self.level,
        }


def _finite_draws(ours: Sample) -> np.ndarray:
    if ours.draws is None:
        return np.zeros(0)
    draws = np.asarray(ours.draws, dtype=np.float64)
    return draws[np.isfinite(draws)]


@dataclass(frozen=True, slots=True)
class NotComparable(VerdictRule):
    """An author number that measures another quantity than ours (``reason`` says how): shown
    next to ours for information, never counted as an agreement or a disagreement."""

    reason: str
    kind: ClassVar[str] = "not_comparable"

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Always False: the numbers measure different quantities."""
        return False

    def verdict(self, paper: float, ours: Sample) -> Verdict:
        """Always *not comparable*, with ``reason``."""
        return Verdict(NOT_COMPARABLE, self.reason)

    def describe(self) -> str:
        """The not-comparable rule in words."""
        return "not comparable: a different definition (stated per row)"

    def covers(self, paper: float, low: float, high: float) -> bool:
        """Always True: range coverage is not checked for such rows."""
        return True

    def parameters(self) -> dict[str, Any]:
        """The ``reason``."""
        return {"reason": self.reason}


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
        """The ratio ``ours / paper`` (NaN when the paper's value is 0)."""
        return mean / paper if paper else math.nan

    def centre(self, ours: Sample) -> float:
        """Our median."""
        return ours.quantiles()[1]

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether the paper's value lies in ``[Q1 / factor, Q3 * factor]`` of our trials."""
        if ours.n == 0:
            return False
        q1, _, q3 = ours.quantiles()
        return q1 / self.factor <= paper <= q3 * self.factor

    def describe(self) -> str:
        """The median + IQR rule in words, with its factor."""
        return f"median + IQR: the paper's value inside our IQR widened by a factor {self.factor:g}"

    def summary(self, ours: Sample) -> str | None:
        """Our side as median and interquartile range."""
        q1, med, q3 = ours.quantiles()
        return f"median {med:.3g} (IQR {q1:.3g} – {q3:.3g})"

    def format_difference(self, paper: float, difference: float) -> str:
        """The ratio of medians as the table shows it (``×r``)."""
        return f"×{difference:.3g}"

    def explain_size(self, paper: float, difference: float) -> str:
        """The ratio of our median to the paper's value in words."""
        return f"our median is ×{difference:.2g} the paper's value"

    def parameters(self) -> dict[str, Any]:
        """The factor, stored under ``tol``."""
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
        """Largest ``|ours - notebook|`` over the trials both have (NaN when none)."""
        k = min(ours.n, len(self.values))
        if k == 0:
            return math.nan
        return float(np.max(np.abs(ours.values[:k] - np.asarray(self.values[:k]))))

    def agrees(self, paper: float, ours: Sample) -> bool:
        """Whether :meth:`max_abs_diff` is finite and at most ``tol``."""
        diff = self.max_abs_diff(ours)
        return math.isfinite(diff) and diff <= self.tol

    def describe(self) -> str:
        """The per-trial rule in words, with its tolerance."""
        return f"same data: every trial within {self.tol:g} of the notebook's printed value"

    def format_difference(self, paper: float, difference: float) -> str:
        """The largest per-trial difference as the table shows it."""
        return f"max {difference:.2e}"

    def explain_size(self, paper: float, difference: float) -> str:
        """The largest per-trial difference in words."""
        return f"the largest per-trial |ours - notebook| is {difference:.2e}"

    def covers(self, paper: float, low: float, high: float) -> bool:
        """Always True: the comparison is trial by trial."""
        return True

    def parameters(self) -> dict[str, Any]:
        """The tolerance ``tol`` and the notebook's per-trial values."""
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
        """Whether our per-trial values agree with the paper under :attr:`rule` (False when they
        disagree or are not comparable)."""
        return self.verdict(ours).outcome == AGREE

    def verdict(self, ours: Sample) -> Verdict:
        """Agree, disagree or not comparable, under :attr:`rule`."""
        if ours.n == 0 or not math.isfinite(ours.mean):
            if isinstance(self.rule, NotComparable):
                return self.rule.verdict(self.value, ours)
            return Verdict(DISAGREE, "no finite value of ours")
        return self.rule.verdict(self.value, ours)

    def to_dict(self) -> dict[str, Any]:
        """The value for ``results.json``: text, value, source, the rule's fields and wording."""
        return {
            "text": self.text,
            "value": self.value,
            **self.rule.to_dict(),
            "source": self.source,
            "rule": self.rule.describe(),
        }
