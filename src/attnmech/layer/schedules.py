"""Learning-rate schedules: the step size at step ``t`` is ``learning_rate * factor(t)``.

A schedule is written as a short string, ``name`` or ``name:key=value,key=value``, which is what
:class:`attnmech.layer.training.TrainConfig` stores (``schedule=...``), saves with a run and checks
on resume, and what ``attnmech train --schedule`` and a sweep's ``schedule`` key accept:

==================  ============================================  ===============================
spec                factor(t), ``t`` = 0, 1, ... the update       used for
==================  ============================================  ===============================
``constant``        ``1``                                         the paper's experiments
``inverse-power``   ``(t + t0)^-a`` (options ``a`` >= 0,          the decaying rates of the
                    default 0.5; ``t0`` > 0, default 1)           implicit-bias theorems for
                                                                  steepest descent, Adam, Muon
``cosine``          ``floor + (1 - floor) (1 + cos(pi t / T))/2``  cosine annealing (Loshchilov &
                    for ``t <= T``, ``floor`` after (options       Hutter 2017)
                    ``T`` > 0, default: the run's steps;
                    ``floor`` in [0, 1], default 0)
``step``            ``gamma^floor(t / every)`` (options           step decay
                    ``every`` >= 1, default 1000; ``gamma`` in
                    (0, 1], default 0.1)
==================  ============================================  ===============================

So ``TrainConfig(learning_rate=0.3, schedule="inverse-power:a=0.7,t0=2")`` steps with
``0.3 (t + 2)^-0.7``. :func:`parse_schedule` reads a spec (and fills ``cosine``'s ``T`` from the
number of steps); :meth:`Schedule.spec` writes the canonical one back. The optimisation loop
(:func:`attnmech.layer.optim.gradient_descent`) applies the factor to any step rule, since every
rule scales its step by ``learning_rate``.

This module imports neither numpy nor torch.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import InvalidParameterError

__all__ = [
    "SCHEDULES",
    "ConstantSchedule",
    "CosineSchedule",
    "InversePowerSchedule",
    "Schedule",
    "StepSchedule",
    "parse_schedule",
]


class Schedule(ABC):
    """A learning-rate schedule: ``factor(step)`` multiplies the base learning rate.

    Subclasses declare their options in ``OPTIONS`` (name -> default; ``None`` for a default taken
    from the run) and validate them in :meth:`check`.
    """

    name: ClassVar[str] = ""
    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            accepted = ", ".join(self.OPTIONS) or "none"
            raise InvalidParameterError(
                f"schedule {self.name!r} has no option(s) {unknown}; its options are: {accepted}"
            )
        values = {**self.OPTIONS, **options}
        for key, value in values.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, numbers.Real)
            ):
                raise InvalidParameterError(
                    f"schedule {self.name!r}: option {key} must be a number, got {value!r}"
                )
        self.options: dict[str, Any] = {
            k: (None if v is None else float(v)) for k, v in values.items()
        }
        self.check()

    def check(self) -> None:  # noqa: B027 - optional hook, most schedules check something
        """Validate :attr:`options` (InvalidParameterError naming the option)."""
        return None

    @abstractmethod
    def factor(self, step: int) -> float:
        """The multiplier of the learning rate at update ``step`` (0-based)."""

    def spec(self) -> str:
        """The canonical spec string (``name`` or ``name:key=value,...``, options sorted)."""
        if not self.options:
            return self.name
        parts = ",".join(f"{k}={_number(v)}" for k, v in sorted(self.options.items()))
        return f"{self.name}:{parts}"

    def __repr__(self) -> str:
        return f"Schedule({self.spec()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and other.spec() == self.spec()

    def __hash__(self) -> int:
        return hash(self.spec())

    def _need(self, key: str, ok: bool, what: str) -> None:
        if not ok:
            raise InvalidParameterError(
                f"schedule {self.name!r}: option {key} must be {what}, got {self.options[key]!r}"
            )


class ConstantSchedule(Schedule):
    """``factor(t) = 1``: the learning rate itself at every step."""

    name = "constant"

    def factor(self, step: int) -> float:
        """Always 1."""
        return 1.0


class InversePowerSchedule(Schedule):
    """``factor(t) = (t + t0)^-a``: a polynomially decaying step (``a`` in (0, 1] makes the sum
    of steps diverge, as the implicit-bias theorems for normalised steepest descent, Adam and
    Muon assume)."""

    name = "inverse-power"
    OPTIONS: ClassVar[dict[str, Any]] = {"a": 0.5, "t0": 1.0}

    def check(self) -> None:
        """``a >= 0`` finite, ``t0 > 0`` finite."""
        a, t0 = self.options["a"], self.options["t0"]
        self._need("a", math.isfinite(a) and a >= 0, "a finite number >= 0")
        self._need("t0", math.isfinite(t0) and t0 > 0, "a finite number > 0")

    def factor(self, step: int) -> float:
        """``(step + t0)^-a``."""
        return float((step + self.options["t0"]) ** -self.options["a"])


class CosineSchedule(Schedule):
    """Cosine annealing from 1 to ``floor`` over ``T`` updates (then ``floor``)."""

    name = "cosine"
    OPTIONS: ClassVar[dict[str, Any]] = {"T": None, "floor": 0.0}

    def check(self) -> None:
        """``T`` (when set) a positive integer, ``floor`` in [0, 1]."""
        T, floor = self.options["T"], self.options["floor"]
        if T is not None:
            self._need("T", math.isfinite(T) and T >= 1 and T == int(T), "a positive integer")
        self._need("floor", 0.0 <= floor <= 1.0, "a number in [0, 1]")

    def factor(self, step: int) -> float:
        """``floor + (1 - floor) (1 + cos(pi min(step, T) / T)) / 2``."""
        T = self.options["T"]
        if T is None:
            raise InvalidParameterError(
                "schedule 'cosine' needs its horizon T (parse it with parse_schedule(spec, "
                "num_steps) or write cosine:T=...)"
            )
        floor = self.options["floor"]
        return float(floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(step, T) / T)))


class StepSchedule(Schedule):
    """Step decay: ``factor(t) = gamma^floor(t / every)``."""

    name = "step"
    OPTIONS: ClassVar[dict[str, Any]] = {"every": 1000.0, "gamma": 0.1}

    def check(self) -> None:
        """``every`` a positive integer, ``gamma`` in (0, 1]."""
        every, gamma = self.options["every"], self.options["gamma"]
        self._need(
            "every", math.isfinite(every) and every >= 1 and every == int(every), "an integer >= 1"
        )
        self._need("gamma", 0.0 < gamma <= 1.0, "a number in (0, 1]")

    def factor(self, step: int) -> float:
        """``gamma ** (step // every)``."""
        return float(self.options["gamma"] ** (step // int(self.options["every"])))


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": ConstantSchedule,
    "inverse-power": InversePowerSchedule,
    "cosine": CosineSchedule,
    "step": StepSchedule,
}
"""Schedules by name (the part of a spec before ``:``)."""


def parse_schedule(
    spec: str | Schedule | Mapping[str, Any] | None, num_steps: int | None = None
) -> Schedule:
    """The schedule a spec names.

    Parameters
    ----------
    spec : str, Schedule, dict or None
        ``"name"`` or ``"name:key=value,..."`` (see the module's table); a dict
        ``{"name": ..., **options}``; None is ``"constant"``.
    num_steps : int, optional
        The run's number of steps: the default horizon ``T`` of ``cosine``.

    Raises
    ------
    InvalidParameterError
        An unknown name, a malformed spec, or an option out of range.

    Examples
    --------
    >>> s = parse_schedule("inverse-power:a=0.7,t0=2")
    >>> s.spec(), round(s.factor(0), 6), round(s.factor(8), 6)
    ('inverse-power:a=0.7,t0=2', 0.615572, 0.199526)
    >>> parse_schedule("cosine", num_steps=100).spec()
    'cosine:T=100,floor=0'
    """
    if spec is None:
        spec = "constant"
    if isinstance(spec, Schedule):
        schedule = spec
    elif isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        schedule = _build(name, options, spec)
    elif isinstance(spec, str):
        name, _, rest = spec.strip().partition(":")
        options = {}
        for part in (p.strip() for p in rest.split(",") if p.strip()):
            key, eq, value = part.partition("=")
            if not eq:
                raise InvalidParameterError(
                    f"schedule {spec!r}: {part!r} is not key=value; write e.g. "
                    "'inverse-power:a=0.7,t0=2'"
                )
            try:
                options[key.strip()] = float(value)
            except ValueError:
                raise InvalidParameterError(
                    f"schedule {spec!r}: option {key.strip()} must be a number, got {value!r}"
                ) from None
        schedule = _build(name.strip(), options, spec)
    else:
        raise InvalidParameterError(
            f"schedule must be a string such as 'inverse-power:a=0.7,t0=2', got "
            f"{type(spec).__name__}"
        )
    if isinstance(schedule, CosineSchedule) and schedule.options["T"] is None and num_steps:
        schedule = CosineSchedule(T=int(num_steps), floor=schedule.options["floor"])
    return schedule


def _build(name: Any, options: dict[str, Any], spec: Any) -> Schedule:
    if not isinstance(name, str) or name not in SCHEDULES:
        raise InvalidParameterError(
            f"unknown schedule {name!r} in {spec!r}; the schedules are {', '.join(SCHEDULES)} "
            "(e.g. 'inverse-power:a=0.7,t0=2')"
        )
    return SCHEDULES[name](**options)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
