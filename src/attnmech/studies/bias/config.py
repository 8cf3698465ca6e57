"""The bias table's configuration: every option of one call, validated when it is built."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from typing import Any, ClassVar

from ..._validation import POSITIVE_INT, Interval, check_params, register
from ...errors import InvalidParameterError
from ...theory.norms import parse_norm
from ..scaffold import StudyConfig
from .rows import BIAS_NORMS, DEFAULT_SETTINGS, BiasOptimizer, resolve_rows

__all__ = ["BiasConfig"]


BIAS_TABLE_PARAMS = register(
    "bias_table",
    {"trials": [POSITIVE_INT], "steps": [Interval(numbers.Integral, 10, None), None]},
)
"""``trials`` >= 1; ``steps`` >= 10 (a decade for the rates) or None (each row's own)."""
SEARCH_PARAMS: Mapping[str, Any] = {"search_trials": [POSITIVE_INT], "search_steps": [POSITIVE_INT, None]}
"""The learning-rate search's own counts."""


@dataclasses.dataclass(frozen=True)
class BiasConfig(StudyConfig):
    """What the bias table runs.

    Parameters
    ----------
    settings : tuple of str, default=DEFAULT_SETTINGS
        Names of the experiments registry (``attnmech experiments``); their data, head and loss.
        A comma-separated string is accepted.
    trials : int, default=10
        Datasets per setting (the registry's seeds: trial ``b`` draws with seed ``b``); one
        initialisation each (uniform, seed 0, as the paper's experiments).
    steps : int, optional
        Steps for every optimiser (default: each row's ``num_steps``; at least 10).
    optimizers : tuple of BiasOptimizer, optional
        The rows (default :data:`~attnmech.studies.bias.BIAS_OPTIMIZERS`); labels of the default
        rows, a comma-separated string of them, or row dicts are accepted and resolved.
    norms : tuple of str, default=BIAS_NORMS
        The columns; every optimiser's own norm is added if missing (see :attr:`columns`).
    log_points : int, default=200
        About how many steps of each trajectory are measured (for the rates); at least 10.
    figures : bool, default=True
        Draw the figures (needs matplotlib) when writing.
    search : bool, default=False
        Pick each searchable row's learning rate (and decay exponent) by a grid search on
        held-out datasets (:mod:`attnmech.studies.bias.search`) before training it.
    search_trials : int, default=3
        Held-out datasets per search.
    search_scales : tuple of float, default=(0.25, 1.0, 4.0)
        Multipliers of the row's learning rate tried by the search.
    search_powers : tuple of float, default=(0.5, 1.0)
        Exponents ``a`` tried for rows with an inverse-power schedule.
    search_steps : int, optional
        Steps of each search run (default: the row's steps).
    search_on : str, optional
        Search on this setting's held-out data once and use the chosen rates on every setting
        (default: each setting searches on its own held-out data).

    Raises
    ------
    InvalidParameterError
        Unknown optimiser label or norm, ``trials < 1``, ``steps < 10``, ``log_points < 10``, no
        setting.

    Notes
    -----
    ``num_trials`` and ``num_steps`` are accepted by :meth:`from_dict` as deprecated names.
    """

    settings: tuple[str, ...] = DEFAULT_SETTINGS
    trials: int = 10
    steps: int | None = None
    optimizers: tuple[BiasOptimizer, ...] | None = None
    norms: tuple[str, ...] = BIAS_NORMS
    log_points: int = 200
    figures: bool = True
    search: bool = False
    search_trials: int = 3
    search_scales: tuple[float, ...] = (0.25, 1.0, 4.0)
    search_powers: tuple[float, ...] = (0.5, 1.0)
    search_steps: int | None = None
    search_on: str | None = None

    _DEPRECATED_NAMES: ClassVar[Mapping[str, str]] = {
        "num_trials": "trials",
        "num_steps": "steps",
    }

    def __post_init__(self) -> None:
        settings = self.settings
        if isinstance(settings, str):
            settings = tuple(s.strip() for s in settings.split(",") if s.strip())
        settings = tuple(settings)
        if not settings or not all(isinstance(s, str) for s in settings):
            raise InvalidParameterError(
                f"BiasConfig: settings must name at least one setting; got {self.settings!r}"
            )
        repeated = sorted({s for s in settings if settings.count(s) > 1})
        if repeated:  # one setting twice would train it twice and write its rows twice
            raise InvalidParameterError(
                f"BiasConfig: settings must be distinct; {repeated} given more than once"
            )
        object.__setattr__(self, "settings", settings)
        check_params(
            {"trials": self.trials, "steps": self.steps}, BIAS_TABLE_PARAMS, where="BiasConfig"
        )
        if not _is_int(self.log_points) or self.log_points < 10:
            raise InvalidParameterError(
                f"BiasConfig: log_points must be an integer >= 10, got {self.log_points!r}"
            )
        if not isinstance(self.figures, bool):
            raise InvalidParameterError(
                f"BiasConfig: figures must be true or false, got {self.figures!r}"
            )
        if not isinstance(self.search, bool):
            raise InvalidParameterError(
                f"BiasConfig: search must be true or false, got {self.search!r}"
            )
        check_params(
            {"search_trials": self.search_trials, "search_steps": self.search_steps},
            SEARCH_PARAMS,
            where="BiasConfig",
        )
        for name, low in (("search_scales", 0.0), ("search_powers", 0.0)):
            values = getattr(self, name)
            if isinstance(values, (int, float)):
                values = (values,)
            values = tuple(values)
            if not values or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > low and v < 1e6
                for v in values
            ):
                raise InvalidParameterError(
                    f"BiasConfig: {name} must be a non-empty list of positive numbers, got "
                    f"{getattr(self, name)!r}"
                )
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if any(a > 1 for a in self.search_powers):
            raise InvalidParameterError(
                "BiasConfig: search_powers must lie in (0, 1] (the decaying rates of the "
                f"theorems), got {self.search_powers!r}"
            )
        if self.search_on is not None and self.search_on not in settings:
            raise InvalidParameterError(
                f"BiasConfig: search_on must be one of the settings {list(settings)}, got "
                f"{self.search_on!r}"
            )
        object.__setattr__(self, "optimizers", resolve_rows(self.optimizers))
        norms = self.norms
        if isinstance(norms, str):
            norms = tuple(n.strip() for n in norms.split(",") if n.strip())
        if not norms:
            raise InvalidParameterError(
                "BiasConfig: norms must name at least one norm (a table with no columns says "
                "nothing), e.g. ['fro', 'l1', 'nuclear']"
            )
        object.__setattr__(self, "norms", tuple(parse_norm(n).name for n in norms))

    @property
    def rows(self) -> tuple[BiasOptimizer, ...]:
        """The resolved rows (never None)."""
        assert self.optimizers is not None
        return self.optimizers

    @property
    def columns(self) -> tuple[str, ...]:
        """The norms compared with: :attr:`norms` plus every row's own norm, in order."""
        names = list(self.norms)
        for row in self.rows:
            if row.expected_norm not in names:
                names.append(row.expected_norm)
        return tuple(dict.fromkeys(names))

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON (the rows as dicts)."""
        out = super().to_dict()
        out["optimizers"] = [row.to_dict() for row in self.rows]
        return out


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)
