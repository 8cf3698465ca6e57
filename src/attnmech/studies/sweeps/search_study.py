"""What a search and its Optuna study share: the validated search file (:class:`SearchSpec`), the
journal, samplers, pruners and suggestions, and how a point's trials become one value.

Used by :mod:`attnmech.studies.sweeps.search` (the file, Optuna's own loop) and
:mod:`attnmech.studies.sweeps.search_driver` (a driver that owns the study).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidParameterError
from .spec import SweepSpec

__all__ = ["JOURNAL", "SEARCH_COLUMNS", "SearchSpec"]

SAMPLERS = ("tpe", "grid", "cmaes", "random")
PRUNERS = ("none", "median", "halving")
DIRECTIONS = ("maximize", "minimize")
STATS = ("mean", "median", "min", "max")
DISTRIBUTIONS = ("log-uniform", "int", "choice")
JOURNAL = "journal.log"
SEARCH_COLUMNS = ("search_trial", "search_state", "search_value")


@dataclass(frozen=True)
class SearchSpec:
    """A validated search file: the sweep part and the search options.

    Attributes
    ----------
    sweep : SweepSpec
        The file as a sweep with every distribution replaced by its bounds (validated values).
    space : dict
        Axis name -> ``("choice", values)``, ``("log-uniform", (low, high))`` or
        ``("int", (low, high))``.
    objective, direction, sampler, pruner, stat : str
    budget : int
    """

    sweep: SweepSpec
    space: dict[str, tuple[str, Any]]
    objective: str
    direction: str
    sampler: str
    budget: int
    pruner: str
    stat: str


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise InvalidParameterError(
            "attnmech search needs Optuna: pip install 'attnmech[search]'"
        ) from None
    return optuna


def _storage(optuna: Any, path: Path) -> Any:
    journal = getattr(optuna.storages, "journal", None)
    if journal is not None and hasattr(journal, "JournalFileBackend"):
        backend = journal.JournalFileBackend(str(path))
    else:  # Optuna 3.x
        backend = optuna.storages.JournalFileStorage(str(path))
    return optuna.storages.JournalStorage(backend)


def _sampler(optuna: Any, spec: SearchSpec, *, ask_tell: bool = False) -> Any:
    seed = spec.sweep.seed
    if spec.sampler == "grid":
        space = {k: list(v) for k, (_, v) in spec.space.items()}
        if ask_tell:  # the driver's loop stops at an exhausted grid: no study.stop() from tell

            class _AskTellGrid(optuna.samplers.GridSampler):
                def after_trial(self, *args: Any, **kwargs: Any) -> None:
                    return None

            return _AskTellGrid(space, seed=seed)
        return optuna.samplers.GridSampler(space, seed=seed)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(optuna: Any, spec: SearchSpec) -> Any:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if spec.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def _suggest(trial: Any, spec: SearchSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (kind, args) in spec.space.items():
        if kind == "choice":
            out[name] = trial.suggest_categorical(name, list(args))
        elif kind == "int":
            out[name] = trial.suggest_int(name, int(args[0]), int(args[1]))
        else:
            out[name] = trial.suggest_float(name, float(args[0]), float(args[1]), log=True)
    return out


def _aggregate(values: np.ndarray, stat: str) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return math.nan
    if stat == "median":
        return float(np.median(finite))
    if stat == "min":
        return float(finite.min())
    if stat == "max":
        return float(finite.max())
    return float(finite.mean())
