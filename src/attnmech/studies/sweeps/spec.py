"""The sweep file: a TOML description of a grid of runs, validated before anything runs.

A sweep file names the axes of a grid (any dataset or training parameter, each with a list of
values), the parameters held fixed, the number of trials per cell and the metrics to record.
:func:`load_sweep_spec` reads and checks the whole file at once: an unknown key, a value of the
wrong type, a metric or optimiser the library does not know, each raises
:class:`~attnmech.errors.FileFormatError` naming the file and the key (``axes.n[2]``,
``grid[1].fixed.optimizer``, ``sweep.metrics[0]``) and what to write instead.

Layout (every table is optional except one of ``[axes]`` and ``[[grid]]``)::

    [sweep]
    name = "smoke"            # label of the sweep (default: the file's stem)
    seed = 0                  # base seed: datasets and initialisations derive from it
    trials = 2                # trials per cell (a fresh dataset and initialisation each)
    metrics = ["corr_svm", "cyclic", "feasible", "steps_to_corr"]
    corr_threshold = 0.99     # for steps_to_corr
    at_steps = [100, 500]     # also record every metric at these steps (column "corr_svm@100")
    log_every = 0             # metric logging period (0: automatic, see SweepSpec.log_every)
    batch_trials = 250        # most trials trained in one batched call (one task)
    device = "cpu"            # torch device for training

    [fixed]                   # parameters shared by every cell
    T = 4
    K = 6

    [axes]                    # the grid: every combination of these values is one cell
    n = [4, 8]
    d = [6, 8]

Several grids in one file: ``[[grid]]`` entries, each with ``name``, ``axes``, and optionally its
own ``fixed``, ``metrics`` and ``trials`` (they override the top-level ones).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import FileFormatError, InvalidParameterError
from ..scaffold import StudyConfig

__all__ = [
    "DATASET_PARAMS",
    "TRAIN_PARAMS",
    "PARAM_DEFAULTS",
    "DATA_METRICS",
    "GridSpec",
    "SweepSpec",
    "available_metrics",
    "metric_column",
    "optimizer_names",
    "load_sweep_spec",
    "parse_sweep_spec",
]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: the tomli backport (a dependency there)
    import tomli as tomllib

DATASET_PARAMS = ("n", "T", "K", "d", "embeddings", "rho", "graph")
TRAIN_PARAMS = (
    "optimizer",
    "lr",
    "steps",
    "head",
    "loss",
    "parameterization",
    "init",
    "svm_norm",
    "trials",
    "schedule",
)
PARAM_DEFAULTS: dict[str, Any] = {
    "n": 6,
    "T": 4,
    "K": 6,
    "d": 8,
    "embeddings": "random",
    "rho": 0.5,
    "graph": "any",
    "optimizer": "ngd",
    "lr": 0.01,
    "steps": 4000,
    "head": "iden",
    "loss": "log",
    "parameterization": "combined",
    "init": "uniform",
    "svm_norm": "default",
    "trials": 1,
    "schedule": "constant",
}
"""Every parameter a cell has, with its value when neither ``[fixed]`` nor an axis sets it (the
paper's first setting, docs/theory.md#the-papers-experiments). ``svm_norm`` names the norm of
the Graph-SVM the theory metrics are measured against: ``"default"`` (Frobenius, or nuclear for
the factorized model), ``"auto"`` (the optimiser's geometry,
:func:`attnmech.layer.metrics.svm_norm_for`) or a norm name (``"l1"``, ``"linf"``,
``"spectral"``, ``"nuclear"``, ``"lp:3"``, ...)."""

DEFAULT_SVM_NORM = "default"

DATA_METRICS: dict[str, str] = {
    "cyclic": "1 if some token-priority graph has an SCC of size > 1, else 0",
    "feasible": "1 if the Graph-SVM is solved, 0 if infeasible, NaN if the solve is inaccurate",
    "solve_time_s": "wall time of attnmech.solve on the dataset (s)",
    "w_svm_fro_norm": "||W_svm||_F (the Frobenius norm, whichever norm the Graph-SVM minimised)",
}
"""Metrics of the dataset and its theory (no training needed)."""

RENAMED_METRICS: dict[str, str] = {"svm_norm": "w_svm_fro_norm"}
"""Old metric and column names -> new ones (specs and result files of earlier releases)."""

DERIVED_METRICS: dict[str, str] = {
    "steps_to_corr": "first logged step at which corr_svm >= corr_threshold (NaN: never)",
}

_SWEEP_KEYS = {
    "name",
    "seed",
    "trials",
    "metrics",
    "corr_threshold",
    "at_steps",
    "log_every",
    "batch_trials",
    "device",
}
_GRID_KEYS = {"name", "axes", "fixed", "metrics", "trials"}
_TOP_KEYS = {"sweep", "fixed", "axes", "grid"}
_INT_PARAMS = {"n": 1, "T": 1, "K": 1, "d": 1, "steps": 0, "trials": 1}  # name -> minimum



METRIC_COLUMNS = {"loss": "loss_value"}
"""Metrics stored under another column name (``loss`` is also the training parameter)."""


def metric_column(metric: str) -> str:
    """The table column of a metric (``loss`` is stored as ``loss_value``)."""
    return METRIC_COLUMNS.get(metric, metric)


def optimizer_names() -> tuple[str, ...]:
    """The optimiser names the trainer accepts (the one place that reads the library's list)."""
    from ...layer.optim import OPTIMIZERS

    return tuple(OPTIMIZERS)


def train_metric_names() -> tuple[str, ...]:
    """Metrics recorded in a training run's history (the trainer's and ``verify``'s names)."""
    from ...layer.metrics import METRICS

    return (*METRICS, "grad_norm")


def available_metrics() -> dict[str, str]:
    """Every metric a sweep can record, with a one-line meaning."""
    from ...layer.metrics import METRICS

    out = dict(METRICS)
    out["grad_norm"] = "||grad L(W)||_F"
    out.update(DATA_METRICS)
    out.update(DERIVED_METRICS)
    return out


def _choices() -> dict[str, tuple[str, ...]]:
    from ..._choices import (
        EMBEDDING_KINDS,
        GRAPH_KINDS,
        HEAD_NAMES,
        INIT_NAMES,
        LOSS_NAMES,
        PARAMETERIZATION_NAMES,
    )

    return {
        "embeddings": tuple(EMBEDDING_KINDS),
        "graph": tuple(GRAPH_KINDS),
        "optimizer": optimizer_names(),
        "head": HEAD_NAMES,
        "loss": LOSS_NAMES,
        "parameterization": PARAMETERIZATION_NAMES,
        "init": INIT_NAMES,
    }


@dataclass(frozen=True)
class GridSpec:
    """One grid: its axes (name -> values, in file order), fixed parameters, metrics, trials."""

    name: str
    axes: dict[str, tuple[Any, ...]]
    fixed: dict[str, Any]
    metrics: tuple[str, ...]


BACKENDS = ("local", "ray")
"""Where a sweep's tasks run: a local process pool, or Ray tasks."""


@dataclass(frozen=True)
class SweepSpec(StudyConfig):
    """A validated sweep file, and how to run it: the sweep study's config.

    The file's part (everything up to ``path``) comes from :func:`load_sweep_spec` /
    :func:`parse_sweep_spec`; the run options after it are set with :meth:`replace` (or the
    ``attnmech sweep`` options) and do not change the numbers.

    Attributes
    ----------
    name : str
    seed : int
    grids : tuple of GridSpec
    corr_threshold : float
    at_steps : tuple of int
    log_every : int
        Metric logging period; 0 in the file means automatic: the greatest common divisor of
        ``at_steps`` when given, 10 when ``steps_to_corr`` is asked for, else only the ends.
    batch_trials : int
    device : str
    source : str
        The file's text (kept beside the results, so ``--resume`` can check it is unchanged).
    path : str
    backend : {"local", "ray"}
    workers : int or None
        Processes (local) or CPUs of a local Ray cluster; None: the machine's cores.
    address : str or None
        An existing Ray cluster (``ray`` backend only).
    retries : int
        How many times a failed task is run again before its error is stored.
    curves : bool
        Also store every trial's logged metrics (one ``curves/<task>.npz`` per task).
    connect_timeout : float
        Seconds to wait for the Ray cluster at ``address`` before giving up with an error
        (default 30).
    """

    name: str
    seed: int
    grids: tuple[GridSpec, ...]
    corr_threshold: float
    at_steps: tuple[int, ...]
    log_every: int
    batch_trials: int
    device: str
    source: str = field(repr=False)
    path: str = ""
    backend: str = "local"
    workers: int | None = None
    address: str | None = None
    retries: int = 0
    curves: bool = False
    connect_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidParameterError(
                f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.address and self.backend != "ray":
            raise InvalidParameterError("address is for the ray backend; add backend='ray'")
        if self.workers is not None:
            check_workers(self.workers, self.backend)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise InvalidParameterError(f"retries must be an integer >= 0, got {self.retries!r}")
        if self.retries > MAX_RETRIES:
            raise InvalidParameterError(
                f"retries must be at most {MAX_RETRIES}, got {self.retries}; a task that fails "
                "that often has a cause to fix (see attnmech sweep-status DIR)"
            )
        if not isinstance(self.curves, bool):
            raise InvalidParameterError(f"curves must be True or False, got {self.curves!r}")
        check_connect_timeout(self.connect_timeout)

    def to_dict(self) -> dict[str, Any]:
        """The file's text and path and the run options (the grids are parsed from the text)."""
        out = {key: getattr(self, key) for key in ("source", "path", "device", *RUN_OPTIONS)}
        out["name"] = self.name
        out["digest"] = self.digest
        return out

    @classmethod
    def from_dict(cls, data: Any) -> SweepSpec:
        """The config whose :meth:`to_dict` is ``data`` (the text is parsed and checked again)."""
        if not isinstance(data, dict) or not isinstance(data.get("source"), str):
            raise InvalidParameterError(
                "SweepSpec.from_dict: expected a mapping with the sweep file's text under 'source'"
            )
        spec = parse_sweep_spec(data["source"], str(data.get("path") or "<string>"))
        options = {k: data[k] for k in ("device", *RUN_OPTIONS) if k in data}
        return spec.replace(**options) if options else spec

    @property
    def digest(self) -> str:
        """SHA-256 of everything that changes the numbers (not the device or batch layout)."""
        payload = {
            "seed": self.seed,
            "grids": [
                {
                    "name": g.name,
                    "axes": {k: list(v) for k, v in g.axes.items()},
                    "fixed": {
                        k: v
                        for k, v in g.fixed.items()
                        if not (k == "svm_norm" and v == DEFAULT_SVM_NORM)
                    },
                    "metrics": list(g.metrics),
                }
                for g in self.grids
            ],
            "corr_threshold": self.corr_threshold,
            "at_steps": list(self.at_steps),
            "log_every": self.log_every,
            "batch_trials": self.batch_trials,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


RUN_OPTIONS = ("backend", "workers", "address", "retries", "curves", "connect_timeout")
"""The fields of :class:`SweepSpec` that say how to run, not what."""


MAX_CONNECT_TIMEOUT = 86400.0
"""The longest connect timeout accepted (a day)."""


def check_connect_timeout(value: Any) -> None:
    """Refuse a connect timeout that is not a number of seconds in (0, one day]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= MAX_CONNECT_TIMEOUT
    ):
        raise InvalidParameterError(
            f"connect_timeout must be a number of seconds in (0, {MAX_CONNECT_TIMEOUT:.0f}], "
            f"got {value!r}"
        )


class _Checker:
    """Collects the file name so every error says where it is."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> FileFormatError:
        return FileFormatError(f"sweep file {self.path}: key '{key}': {message}", path=self.path)

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table ([{key}]), got {type(value).__name__}")
        return value

    def unknown(self, table: dict[str, Any], allowed: set[str] | tuple[str, ...], where: str):
        for key in table:
            if key not in allowed:
                prefix = f"{where}." if where else ""
                raise self.fail(
                    f"{prefix}{key}",
                    f"unknown key; allowed here: {', '.join(sorted(allowed))}",
                )

    def integer(self, value: Any, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        name = key.rsplit(".", 1)[-1].split("[")[0]
        maximum = MAX_TRIALS if name in ("trials", "batch_trials") else MAX_INTEGER
        if name != "seed" and value > maximum:  # seeds use all 63 bits
            raise self.fail(key, f"must be at most {maximum:,}, got {value:,}")
        return int(value)

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise self.fail(key, f"must be finite, got {value!r}")
        return float(value)

    def param(self, name: str, value: Any, key: str, choices: dict[str, tuple[str, ...]]) -> Any:
        if name in _INT_PARAMS:
            return self.integer(value, key, _INT_PARAMS[name])
        if name == "lr":
            lr = self.number(value, key)
            if lr <= 0:
                raise self.fail(key, f"the learning rate must be > 0, got {value!r}")
            return lr
        if name == "schedule":
            from ...layer.schedules import parse_schedule

            if not isinstance(value, str):
                raise self.fail(key, f"must be a schedule spec string, got {value!r}")
            try:
                return parse_schedule(value).spec()
            except InvalidParameterError as exc:
                raise self.fail(key, str(exc)) from None
        if name == "rho":
            rho = self.number(value, key)
            if not -1.0 < rho < 1.0:
                raise self.fail(key, f"rho must lie in (-1, 1), got {value!r}")
            return rho
        if name == "svm_norm":
            return _check_svm_norm(self, value, key)
        allowed = choices[name]
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(key, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def metrics(self, value: Any, key: str) -> tuple[str, ...]:
        known = available_metrics()
        if not isinstance(value, list) or not value:
            raise self.fail(key, "must be a non-empty list of metric names")
        out = []
        for i, name in enumerate(value):
            if isinstance(name, str) and name in RENAMED_METRICS:
                import warnings

                warnings.warn(
                    f"sweep file {self.path}: metric {name!r} is deprecated; write "
                    f"{RENAMED_METRICS[name]!r}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                name = RENAMED_METRICS[name]
            if name not in known:
                raise self.fail(
                    f"{key}[{i}]",
                    f"unknown metric {name!r}; known metrics: {', '.join(known)}",
                )
            if name in out:
                raise self.fail(f"{key}[{i}]", f"metric {name!r} is listed twice")
            out.append(name)
        return tuple(out)


def _check_svm_norm(check: _Checker, value: Any, key: str) -> str:
    """A sweep's ``svm_norm``: ``default``, ``auto`` or a norm name the solver knows."""
    from ...errors import AttnmechError
    from ...theory.norms import parse_norm

    if not isinstance(value, str) or not value:
        raise check.fail(key, f"must be 'default', 'auto' or a norm name, got {value!r}")
    if value in (DEFAULT_SVM_NORM, "auto"):
        return value
    try:
        parse_norm(value)
    except AttnmechError as exc:
        raise check.fail(key, f"'default', 'auto' or a norm name: {exc}") from None
    return value


def _params(
    check: _Checker, table: Any, where: str, choices: dict[str, tuple[str, ...]], *, axes: bool
) -> dict[str, Any]:
    table = check.table(table, where)
    check.unknown(table, (*DATASET_PARAMS, *TRAIN_PARAMS), where)
    out: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{where}.{name}"
        if axes:
            if not isinstance(value, list) or not value:
                raise check.fail(key, "an axis must be a non-empty list of values")
            values = tuple(
                check.param(name, v, f"{key}[{i}]", choices) for i, v in enumerate(value)
            )
            if len(set(values)) != len(values):
                raise check.fail(key, f"values repeat: {list(value)}")
            out[name] = values
        else:
            out[name] = check.param(name, value, key, choices)
    return out


MAX_TRIALS = 10**6
"""Most trials per cell (the sweep plans one task per batch of trials before running)."""
MAX_INTEGER = 10**9
"""Largest value of any other integer of a sweep file (steps, n, T, K, d) except seeds."""
MAX_SPEC_BYTES = 16 << 20
"""Largest sweep file read (16 MiB): a plan is a few kilobytes."""


def parse_sweep_spec(text: str, path: str = "<string>") -> SweepSpec:
    """Validate the text of a sweep file; see the module docstring for the format.

    Raises
    ------
    FileFormatError
        On any problem, naming the key (for example ``axes.n[2]``) and what to write instead.
    """
    from ..._io import check_nesting

    if len(text) > MAX_SPEC_BYTES:
        raise FileFormatError(
            f"sweep file {path} holds {len(text):,} characters, above the limit of "
            f"{MAX_SPEC_BYTES:,}",
            path=path,
        )
    check_nesting(text, what="sweep file", path=path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"sweep file {path} is not valid TOML: {exc}", path=path) from None
    return spec_from_data(data, text, path)


def spec_from_data(data: dict[str, Any], text: str, path: str = "<string>") -> SweepSpec:
    """Validate an already parsed sweep file (``data``; ``text`` is kept as its source)."""
    check = _Checker(path)
    check.unknown(data, _TOP_KEYS, "")
    choices = _choices()
    sweep = check.table(data.get("sweep", {}), "sweep")
    check.unknown(sweep, _SWEEP_KEYS, "sweep")
    default_name = Path(path).stem if path != "<string>" else "sweep"
    name = sweep.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise check.fail("sweep.name", f"must be a non-empty string, got {name!r}")
    seed = check.integer(sweep.get("seed", 0), "sweep.seed", 0)
    top_metrics = (
        check.metrics(sweep["metrics"], "sweep.metrics")
        if "metrics" in sweep
        else ("corr_svm", "loss")
    )
    top_fixed = _params(check, data.get("fixed", {}), "fixed", choices, axes=False)
    if "trials" in sweep:
        if "trials" in top_fixed:
            raise check.fail("sweep.trials", "trials is also set in [fixed]; keep one")
        top_fixed["trials"] = check.integer(sweep["trials"], "sweep.trials", 1)
    threshold = check.number(sweep.get("corr_threshold", 0.99), "sweep.corr_threshold")
    if not -1.0 <= threshold <= 1.0:
        raise check.fail("sweep.corr_threshold", f"must lie in [-1, 1], got {threshold}")
    at_steps_raw = sweep.get("at_steps", [])
    if not isinstance(at_steps_raw, list):
        raise check.fail("sweep.at_steps", "must be a list of step numbers")
    at_steps = tuple(
        check.integer(v, f"sweep.at_steps[{i}]", 0) for i, v in enumerate(at_steps_raw)
    )
    log_every = check.integer(sweep.get("log_every", 0), "sweep.log_every", 0)
    batch_trials = check.integer(sweep.get("batch_trials", 250), "sweep.batch_trials", 1)
    device = sweep.get("device", "cpu")
    if not isinstance(device, str) or not device:
        raise check.fail(
            "sweep.device", f"must be a device name such as 'cpu' or 'cuda', got {device!r}"
        )

    if ("axes" in data) == ("grid" in data):
        raise check.fail(
            "axes", "give the grid either as one [axes] table or as [[grid]] entries (not both)"
        )
    raw_grids: list[tuple[str, dict[str, Any]]] = []
    if "axes" in data:
        raw_grids.append(("axes", {"name": name, "axes": data["axes"]}))
    else:
        if not isinstance(data["grid"], list) or not data["grid"]:
            raise check.fail("grid", "must be a list of [[grid]] tables")
        raw_grids.extend((f"grid[{i}]", g) for i, g in enumerate(data["grid"]))

    grids: list[GridSpec] = []
    for where, raw in raw_grids:
        raw = check.table(raw, where)
        if where != "axes":
            check.unknown(raw, _GRID_KEYS, where)
        grid_name = raw.get("name", f"grid{len(grids)}")
        if not isinstance(grid_name, str) or not grid_name:
            raise check.fail(f"{where}.name", f"must be a non-empty string, got {grid_name!r}")
        if any(g.name == grid_name for g in grids):
            raise check.fail(f"{where}.name", f"grid name {grid_name!r} is used twice")
        axes_where = "axes" if where == "axes" else f"{where}.axes"
        if "axes" not in raw:
            raise check.fail(axes_where, "missing: a grid needs at least one axis")
        axes = _params(check, raw["axes"], axes_where, choices, axes=True)
        if not axes:
            raise check.fail(axes_where, "a grid needs at least one axis")
        fixed = dict(top_fixed)
        fixed.update(_params(check, raw.get("fixed", {}), f"{where}.fixed", choices, axes=False))
        if "trials" in raw:
            fixed["trials"] = check.integer(raw["trials"], f"{where}.trials", 1)
        for axis in axes:
            if axis in fixed:
                raise check.fail(
                    f"{axes_where}.{axis}", f"{axis} is both an axis and fixed; keep one"
                )
        metrics = (
            check.metrics(raw["metrics"], f"{where}.metrics") if "metrics" in raw else top_metrics
        )
        full = {k: v for k, v in PARAM_DEFAULTS.items() if k not in axes}
        full.update(fixed)
        grids.append(GridSpec(grid_name, axes, full, metrics))
        for step in at_steps:
            steps = axes.get("steps", (full.get("steps"),))
            if any(s is not None and step > s for s in steps):
                raise check.fail(
                    "sweep.at_steps",
                    f"step {step} is beyond the {min(steps)} training steps of grid "
                    f"{grid_name!r}; lower it or raise steps",
                )
    if log_every == 0:
        if at_steps:
            log_every = math.gcd(*at_steps) or 0
        elif any("steps_to_corr" in g.metrics for g in grids):
            log_every = 10
    for i, step in enumerate(at_steps):
        if step % max(log_every, 1) and log_every:
            raise check.fail(
                f"sweep.at_steps[{i}]",
                f"step {step} is not a multiple of log_every={log_every}; metrics are only "
                "recorded every log_every steps",
            )
    if "steps_to_corr" in {m for g in grids for m in g.metrics} and log_every == 0:
        raise check.fail("sweep.log_every", "steps_to_corr needs log_every > 0")
    return SweepSpec(
        name=name,
        seed=seed,
        grids=tuple(grids),
        corr_threshold=threshold,
        at_steps=at_steps,
        log_every=log_every,
        batch_trials=batch_trials,
        device=device,
        source=text,
        path=path,
    )


def load_sweep_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep file (TOML); see :func:`parse_sweep_spec`."""
    from ..._io import read_text_bounded

    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"sweep file {path} does not exist", path=str(path))
    # a regular file of at most 16 MiB: /dev/zero or a pipe is refused before reading
    text = read_text_bounded(path, max_bytes=MAX_SPEC_BYTES, what="sweep file")
    return parse_sweep_spec(text, str(path))


#: At most this many retries of one failed task.
MAX_RETRIES = 100
#: At most this many Ray CPUs (trials or tasks in flight) for one sweep or search.
MAX_RAY_WORKERS = 4096


def check_workers(workers: object, backend: str) -> None:
    """Refuse a worker count that is not a positive integer or that no machine could serve.

    The local pool starts one process per worker, so it takes at most four per core (the
    same bound as ``--threads``); a Ray cluster at most :data:`MAX_RAY_WORKERS`.

    Raises
    ------
    InvalidParameterError
        ``workers`` is not an integer >= 1, or above the bound of its backend.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidParameterError(f"workers must be a positive integer, got {workers!r}")
    if backend == "ray":
        bound, what = MAX_RAY_WORKERS, "on the ray backend"
    else:
        bound, what = 4 * (os.cpu_count() or 1), f"on the local backend ({os.cpu_count()} cores)"
    if workers > bound:
        raise InvalidParameterError(
            f"workers must be at most {bound} {what}, got {workers}; lower --workers"
        )
