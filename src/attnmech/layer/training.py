"""Training a single attention layer (docs/theory.md#model-and-loss and #the-papers-experiments):
the loop, its records, checkpoints.

:func:`train` runs one of the step rules of :mod:`attnmech.layer.optim` through the one loop
(:func:`attnmech.layer.optim.gradient_descent`) for one or many trials at once (a leading trials
dimension, one batched computation), and adds initialisation, metric logging (against the theory
with :class:`attnmech.layer.metrics.TrajectoryMetrics` and the ``W_fin(t)`` trajectory of
:mod:`attnmech.layer.finite_path`), atomic checkpoints and resumption. :func:`load_run` reads a
saved run back.

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import logging
import math
import numbers
import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._choices import INIT_NAMES
from .. import _persist
from .._validation import ArrayLike, InstanceOf, Interval, Options, check_params, register
from .._io import check_writable
from .._results import readonly as _copy_readonly
from ..data.dataset import Dataset
from ..errors import (
    CheckpointError,
    FileFormatError,
    InvalidDatasetError,
    InvalidParameterError,
    OutputError,
)
from .finite_path import FiniteTrajectory, count_log_steps, finite_trajectory, log_steps
from .metrics import TrajectoryMetrics, svm_norm_for
from .model import (
    AttentionConfig,
    AttentionInputs,
    AttentionObjective,
    datasets_list,
    inputs_from_datasets,
    torch_threads,
)
from .optim import OPTIMIZERS, StepRule, gradient_descent, make_step_rule, scaled_norm
from .resources import (  # re-exported: their home was this module
    check_batch_memory,
    check_device,
    check_train_memory,
    estimate_batch_bytes,
    estimate_train_bytes,
)
from ..theory.solve import solve
from .._validation import FLAG, PathLike, validate_params

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "load_run",
    "gradient_descent",
    "run_finite_trajectory",
    "FiniteTrajectory",
]

logger = logging.getLogger(__name__)

INITS = INIT_NAMES


# ---------------------------------------------------------------------------------- config
@dataclass(frozen=True, eq=False)
class TrainConfig:
    """How to train.

    Parameters
    ----------
    model : AttentionConfig
        Head, loss, parameterization, dtype and device.
    optimizer : str, default="ngd"
        A key of :data:`attnmech.layer.optim.OPTIMIZERS`: ``"gd"`` (gradient descent), ``"ngd"``
        (normalised GD, ``W <- W - lr grad / ||grad||_F`` per trial), ``"adam"``, ...
    learning_rate : float, default=0.01
    steps : int, default=4000
        Number of updates (``--steps``). ``num_steps`` is its deprecated alias.
    log_every : int, default=10
        Record metrics every this many steps (and at the last step); 0 records only the ends.
    init : {"uniform", "zero"} or ndarray, default="uniform"
        ``uniform``: U(-1/sqrt(d), 1/sqrt(d)) entries, drawn from ``np.random.default_rng(seed)``
        for all trials at once (trial b gets slice b). An array of the parameters' shape
        (optionally with a leading trials dimension) is used as given; it must be finite.
    seed : int, default=0
    trials : int, default=1
        Initialisations per dataset (``--trials``); trials are ordered dataset-major.
        ``num_trials`` is its deprecated alias.
    checkpoint_every : int, default=0
        Write a checkpoint every this many steps (0: never; needs ``checkpoint_path``).
    adam_betas, adam_eps : Adam's constants (shorthands for ``optimizer_options``).
    device : str or None, default=None
        Overrides ``model.device`` when given.
    num_threads : int or None, default=None
        torch threads while training; None picks one thread for small problems (see
        :func:`attnmech.layer.model.torch_threads`).
    optimizer_options : dict, default={}
        Keyword arguments of the step rule (``OPTIMIZERS[optimizer](learning_rate, **options)``),
        e.g. ``{"betas": [0.9, 0.99]}`` for Adam. Checked by building the rule once; saved in run
        files and checkpoint fingerprints, so they must be JSON values. For Adam they override
        ``adam_betas``/``adam_eps``.
    schedule : str, default="constant"
        Learning-rate schedule (:mod:`attnmech.layer.schedules`): step ``t`` uses
        ``learning_rate * factor(t)``, e.g. ``"inverse-power:a=0.7,t0=2"`` for
        ``lr (t + 2)^-0.7``; stored as its canonical spec, saved with the run and part of the
        checkpoint fingerprint (a checkpoint of another schedule is refused on resume).

    Notes
    -----
    The defaults are the paper's experiments (docs/theory.md#the-papers-experiments): normalised GD,
    step 0.01, 4000 steps, uniform initialisation, float64.

    Raises
    ------
    InvalidParameterError
        A value of the wrong type or out of range, an unknown optimizer or option.
    """

    model: AttentionConfig = field(default_factory=AttentionConfig)  # what model to train
    optimizer: str = "ngd"  # a key of attnmech.layer.optim.OPTIMIZERS
    learning_rate: float = 0.01  # step size (eta)
    steps: int = 4000  # number of updates
    log_every: int = 10  # metric logging period in steps (0: first and last step only)
    init: Any = "uniform"  # "uniform" | "zero" | array of initial parameters
    seed: int = 0  # seed of the initialisation
    trials: int = 1  # initialisations per dataset
    checkpoint_every: int = 0  # checkpoint period in steps (0: never)
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates
    adam_eps: float = 1e-8  # Adam's denominator guard
    device: str | None = None  # overrides model.device when given
    num_threads: int | None = None  # torch threads while training (None: auto, see torch_threads)
    optimizer_options: dict[str, Any] = field(default_factory=dict)  # step-rule keyword arguments
    schedule: str = "constant"  # learning-rate schedule spec (attnmech.layer.schedules)

    def __post_init__(self) -> None:
        check_params(
            {f.name: getattr(self, f.name) for f in fields(self)},
            TRAIN_CONFIG_PARAMS,
            where="TrainConfig",
        )
        if not isinstance(self.init, str):
            object.__setattr__(self, "init", _init_array(self.init))
        if self.device is not None:
            check_device(self.device)
            object.__setattr__(self, "model", replace(self.model, device=str(self.device)))
        else:
            check_device(getattr(self.model, "device", "cpu"))
        object.__setattr__(self, "optimizer_options", dict(self.optimizer_options))
        try:
            json.dumps(self.optimizer_options)
        except (TypeError, ValueError):
            raise InvalidParameterError(
                "TrainConfig: optimizer_options must hold JSON values (numbers, strings, lists), "
                f"since they are saved with the run, got {self.optimizer_options!r}"
            ) from None
        self.step_rule()  # validates the optimizer's options (InvalidParameterError)
        self._check_schedule()

    def _check_schedule(self) -> None:
        """Store the schedule as its canonical spec (``cosine`` gets ``T = steps``)."""
        from .schedules import parse_schedule

        object.__setattr__(
            self, "schedule", parse_schedule(self.schedule, int(self.steps) or None).spec()
        )

    def lr_schedule(self) -> Any:
        """The :class:`~attnmech.layer.schedules.Schedule` of :attr:`schedule`."""
        from .schedules import parse_schedule

        return parse_schedule(self.schedule, int(self.steps) or None)

    @property
    def num_steps(self) -> int:
        """Deprecated alias of :attr:`steps`."""
        warnings.warn(_ALIAS_WARNING.format("num_steps", "steps"), DeprecationWarning, 2)
        return self.steps

    @property
    def num_trials(self) -> int:
        """Deprecated alias of :attr:`trials`."""
        warnings.warn(_ALIAS_WARNING.format("num_trials", "trials"), DeprecationWarning, 2)
        return self.trials

    def step_options(self) -> dict[str, Any]:
        """The keyword arguments the step rule is built with (``adam_*`` merged for Adam)."""
        if self.optimizer == "adam":
            return {"betas": self.adam_betas, "eps": self.adam_eps, **self.optimizer_options}
        return dict(self.optimizer_options)

    def step_rule(self) -> StepRule:
        """A fresh step rule: ``OPTIMIZERS[optimizer](learning_rate, **step_options())``."""
        return make_step_rule(self.optimizer, self.learning_rate, self.step_options())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (an init array is given by its shape and SHA-256)."""
        out = asdict(replace(self, init="zero"))
        if isinstance(self.init, str):
            out["init"] = self.init
        else:
            out["init"] = {
                "array_shape": list(self.init.shape),
                "sha256": hashlib.sha256(self.init.tobytes()).hexdigest(),
            }
        out["adam_betas"] = list(self.adam_betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], init: np.ndarray | None = None) -> TrainConfig:
        """The config :meth:`to_dict` describes; ``init`` is the initial array when the dict
        describes one (by shape and SHA-256, both checked).

        Raises
        ------
        InvalidParameterError
            An init array is described but ``init`` is None, or ``init`` has another shape or
            content than described.
        """
        data = dict(data)
        for old, new in _ALIASES.items():  # files written before the rename
            if old in data:
                data[new] = data.pop(old)
        model = AttentionConfig(**data.pop("model"))
        data["adam_betas"] = tuple(data.get("adam_betas", (0.9, 0.999)))
        described = data.get("init")
        if not isinstance(described, str):
            if init is None:
                raise InvalidParameterError(
                    "TrainConfig.from_dict: init describes an explicit initial array "
                    f"({described!r}) but no init array was given; pass init=the array (a run "
                    "file stores it as its 'init' member)"
                )
            array = _init_array(init)
            if isinstance(described, Mapping) and (
                list(array.shape) != list(described.get("array_shape", array.shape))
                or described.get("sha256", hashlib.sha256(array.tobytes()).hexdigest())
                != hashlib.sha256(array.tobytes()).hexdigest()
            ):
                raise InvalidParameterError(
                    "TrainConfig.from_dict: the init array given is not the one described "
                    f"(shape {array.shape}, or its SHA-256 differs from {described!r})"
                )
            data["init"] = array
        return cls(model=model, **data)


_ALIASES = {"num_steps": "steps", "num_trials": "trials"}
_ALIAS_WARNING = "TrainConfig.{0} is deprecated and will be removed in the next release; use {1}"


def _accept_aliases(init: Callable[..., None]) -> Callable[..., None]:
    """``TrainConfig(num_steps=..., num_trials=...)``: the deprecated names, with a warning
    (an error message then names the parameter as it was given)."""

    @functools.wraps(init)
    def __init__(self: TrainConfig, *args: Any, **kwargs: Any) -> None:
        used = {}
        for old, new in _ALIASES.items():
            if old in kwargs:
                warnings.warn(_ALIAS_WARNING.format(old, new), DeprecationWarning, 2)
                kwargs[new] = kwargs.pop(old)
                used[new] = old
        try:
            init(self, *args, **kwargs)
        except InvalidParameterError as exc:
            text = str(exc)
            for new, old in used.items():
                text = text.replace(f": {new} must be", f": {old} must be")
            if text == str(exc):
                raise
            raise InvalidParameterError(text) from None

    return __init__


TrainConfig.__init__ = _accept_aliases(TrainConfig.__init__)  # type: ignore[method-assign]

_NON_NEGATIVE_INT = Interval(numbers.Integral, 0, None)
MAX_STEPS = 10**9
"""Most steps (and largest log/checkpoint interval) a run accepts: 10^9 steps of the smallest
problem already take days; a larger count is a typo (``1e99``) that would never return."""
MAX_TRIALS = 10**6
"""Most trials per dataset (memory is checked separately, from the data's size)."""
MAX_THREADS = 4 * (os.cpu_count() or 1)
"""Most torch threads: four per CPU core of this machine."""
_STEPS = Interval(numbers.Integral, 0, MAX_STEPS)
TRAIN_CONFIG_PARAMS = register(
    "TrainConfig",
    {
        "model": [InstanceOf(AttentionConfig)],
        "optimizer": [Options(OPTIMIZERS)],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "steps": [_STEPS],
        "log_every": [_STEPS],
        "init": [Options(INITS), ArrayLike()],
        "seed": [_NON_NEGATIVE_INT],
        "trials": [Interval(numbers.Integral, 1, MAX_TRIALS)],
        "checkpoint_every": [_STEPS],
        "device": [InstanceOf(str, torch.device, name="a string such as 'cpu'"), None],
        "num_threads": [Interval(numbers.Integral, 1, MAX_THREADS), None],
        "optimizer_options": [InstanceOf(Mapping, name="a dict of option name to value")],
    },
)
"""What each :class:`TrainConfig` field may be (checked by ``__post_init__``)."""



FINITE_TRAJECTORY_PARAMS: dict[str, list[Any]] = {"config": [TrainConfig, None], "steps": [ArrayLike(), None]}
"""What :func:`run_finite_trajectory`'s options may be."""


@validate_params(FINITE_TRAJECTORY_PARAMS, where="run_finite_trajectory")
def run_finite_trajectory(
    datasets: Dataset | Sequence[Dataset],
    theories: Any,
    config: TrainConfig | None = None,
    *,
    steps: Any = None,
) -> FiniteTrajectory:
    """``W_fin(t)``: the training optimiser run from zero on the reduced data
    (docs/theory.md#the-papers-experiments).

    The loss is the reduced dataset's, normalised by the full ``n``; the gradient is projected onto
    ``S_fin`` (with ``theory.finite.basis``), so ``W_fin(t)`` stays in ``S_fin``. Uses the combined
    parameterization whatever ``config.model`` says (``W_fin(t)`` is a matrix in ``S_fin``).

    Parameters
    ----------
    datasets : Dataset or list of Dataset
        One per trial (their embeddings are used).
    theories : Theory or list of Theory
        One per trial.
    config : TrainConfig, optional
        Optimiser, learning rate and number of steps (``init`` is ignored: the start is zero).
    steps : array-like of int, optional
        Steps at which to keep ``W_fin(t)`` (default: every ``log_every`` and the last).

    Returns
    -------
    FiniteTrajectory
    """
    return finite_trajectory(
        datasets, theories, TrainConfig() if config is None else config, steps=steps
    )


def _init_array(init: Any) -> np.ndarray:
    """An explicit initialisation as a finite float64 array, or InvalidParameterError."""
    try:
        array = np.array(init, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"init must be 'uniform', 'zero' or an array of numbers; cannot read it as one ({exc})"
        ) from None
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))
        raise InvalidParameterError(
            f"init array has {bad.shape[0]} NaN or infinite entries (first at index "
            f"{tuple(int(i) for i in bad[0])}); pass finite initial parameters"
        )
    return array


# ---------------------------------------------------------------------------------- result
@dataclass(frozen=True, slots=True, eq=False)
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    W : ndarray of shape (B, d, d), or (d, d) for one dataset and one trial
        Final combined key-query matrix (float64, read-only).
    params : ndarray
        Final raw parameters: ``W``, or the factors stacked as (B, 2, d, r) (``W = W_K W_Q^T``).
    history : dict of str to ndarray
        ``"step"`` (L,) and one array per metric of shape (L, B) (or (L,) when ``W`` is 2-D),
        recorded every ``config.log_every`` steps and at the last step. With
        ``train(..., record_W=True)`` also ``"W"`` of shape (L, B, d, d) (or (L, d, d)): ``W`` at
        those steps.
    config : TrainConfig
    num_steps : int
        Updates done.
    elapsed_s : float
        Wall time of the call (for a resumed run: of the last call).
    dataset_fingerprints : tuple of str, or None
        :meth:`Dataset.fingerprint` of each training dataset, in order (None for a run read
        from a file written before runs recorded them). :func:`attnmech.verify` refuses to
        measure the run against other data.
    """

    W: np.ndarray
    params: np.ndarray
    history: dict[str, np.ndarray]
    config: TrainConfig
    num_steps: int
    elapsed_s: float
    dataset_fingerprints: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        metrics = [k for k in self.history if k not in ("step", "W")]
        shown = ", ".join(metrics[:6]) + (f", ... ({len(metrics)})" if len(metrics) > 6 else "")
        return (
            f"TrainResult(W={tuple(self.W.shape)}, num_trials={self.num_trials}, "
            f"num_steps={self.num_steps}, optimizer={self.config.optimizer!r}, "
            f"learning_rate={self.config.learning_rate:g}, logged={len(self.history.get('step', ()))}"
            f" steps [{shown}], elapsed_s={self.elapsed_s:.3g})"
        )

    def check_datasets(self, datasets: Dataset | Sequence[Dataset]) -> None:
        """Raise unless ``datasets`` are the ones this run was trained on (in order).

        A run read from an old file (no recorded fingerprints) passes unchecked.

        Raises
        ------
        InvalidParameterError
            Naming which dataset differs and what to do.
        """
        if self.dataset_fingerprints is None:
            return
        given = [datasets] if isinstance(datasets, Dataset) else list(datasets)
        found = [ds.fingerprint() for ds in given]
        if found != list(self.dataset_fingerprints):
            raise InvalidParameterError(
                f"this run was trained on another dataset (fingerprints "
                f"{', '.join(f[:12] + '...' for f in self.dataset_fingerprints)} vs "
                f"{', '.join(f[:12] + '...' for f in found)}); give the data the run was trained "
                "on, with the same --embeddings and --on-unrealizable, or train again"
            )

    @property
    def num_trials(self) -> int:
        """Number of trials: 1 when ``W`` is 2-D, else its leading size."""
        return 1 if self.W.ndim == 2 else int(self.W.shape[0])

    def final_metrics(self) -> dict[str, np.ndarray]:
        """Each metric at the last logged step (arrays of shape (B,) or scalars)."""
        return {k: v[-1] for k, v in self.history.items() if k not in ("step", "W")}

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly run summary: config, versions, sizes, time and final metrics."""
        final: dict[str, Any] = {}
        for key, value in self.final_metrics().items():
            values = np.atleast_1d(np.asarray(value, dtype=np.float64))
            finite = values[np.isfinite(values)]
            final[key] = {
                "mean": float(finite.mean()) if finite.size else None,
                "std": float(finite.std()) if finite.size else None,
                "min": float(finite.min()) if finite.size else None,
                "max": float(finite.max()) if finite.size else None,
                "values": [None if not np.isfinite(v) else float(v) for v in values],
            }
        return {
            "config": self.config.to_dict(),
            "versions": _versions(),
            "num_trials": self.num_trials,
            "embedding_dim": int(self.W.shape[-1]),
            "num_steps": self.num_steps,
            "elapsed_s": self.elapsed_s,
            "final": final,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the run to a ``.npz`` file (atomically); read it back with :func:`load_run`."""
        path = Path(path)
        arrays: dict[str, Any] = {"W": self.W, "params": self.params}
        arrays.update({f"history/{k}": v for k, v in self.history.items()})
        arrays["__meta__"] = {
            "config": self.config.to_dict(),
            "num_steps": self.num_steps,
            "elapsed_s": self.elapsed_s,
        }
        if not isinstance(self.config.init, str):
            arrays["init"] = self.config.init
        _write_npz(
            path,
            "run file",
            "run",
            arrays,
            compressed=True,
            dataset_fingerprint=self.dataset_fingerprints,
        )
        return path


def load_run(path: str | os.PathLike[str]) -> TrainResult:
    """Read a run written by :meth:`TrainResult.save`.

    Raises
    ------
    FileFormatError
        The file is missing, empty, truncated or corrupt, not a ``.npz`` archive, or lacks the
        members of a run (the message names the file and what is wrong).
    """
    from .._validation import PathLike, check_params

    check_params({"path": path}, {"path": [PathLike()]}, where="load_run")
    path = Path(path)
    stored = _read_npz(path, "run file", "run", FileFormatError, ("W", "params"))
    arrays, meta = stored.arrays, stored.meta
    if not meta:
        raise FileFormatError(
            f"run file {path} is not a training run file: it lacks the member(s) 'meta'; write "
            "runs with TrainResult.save or 'attnmech train'",
            path=str(path),
        )
    try:
        history = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("history/")}
        config = TrainConfig.from_dict(meta["config"], init=arrays.get("init"))
        num_steps, elapsed = int(meta["num_steps"]), float(meta["elapsed_s"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise FileFormatError(
            f"run file {path} has an unreadable 'meta' member ({type(exc).__name__}: {exc}); "
            "write runs with TrainResult.save or 'attnmech train'",
            path=str(path),
        ) from None
    W = arrays["W"]
    if W.dtype.kind != "f" or W.ndim not in (2, 3) or W.shape[-1] != W.shape[-2]:
        raise FileFormatError(
            f"run file {path}: member 'W' should be a float array of shape (d, d) or (B, d, d), "
            f"got {W.dtype} {W.shape}",
            path=str(path),
        )
    fingerprints = stored.dataset_fingerprint
    return TrainResult(
        _copy_readonly(W),
        _copy_readonly(arrays["params"]),
        {k: _copy_readonly(v) for k, v in history.items()},
        config,
        num_steps,
        elapsed,
        None if fingerprints is None else tuple(np.atleast_1d(fingerprints).tolist()),
    )


def _read_npz(
    path: Path, what: str, kind: str, error: type[FileFormatError], required: Sequence[str]
) -> _persist.StoredFile:
    """A run or checkpoint file through :func:`attnmech._persist.read` (checksum verified), or
    ``error`` naming the file and what is wrong with it."""
    return _persist.read(
        path,
        kind,
        what=what,
        required=required,
        hint="delete it or write it again (TrainResult.save or 'attnmech train')",
        error=error,
    )


def _remove_stale_temporaries(path: Path, suffix: str = ".npz") -> None:
    """Delete temporary files that an interrupted atomic write of ``path`` left beside it.

    :func:`attnmech._io.atomic_path` writes to ``.<name>.XXXXXXXX<suffix>`` (``tempfile`` names)
    and removes it on any error, but a process killed by SIGKILL leaves it behind (often empty).
    """
    pattern = glob.escape(f".{path.name}.") + "?" * 8 + glob.escape(suffix)
    for stale in path.parent.glob(pattern):
        with contextlib.suppress(OSError):
            stale.unlink()
            logger.info("removed %s, left by an interrupted write of %s", stale, path)


def _write_npz(
    path: Path,
    what: str,
    kind: str,
    arrays: dict[str, Any],
    *,
    compressed: bool = False,
    dataset_fingerprint: Sequence[str] | None = None,
) -> None:
    """Write ``arrays`` (and ``arrays["__meta__"]`` as the meta) to ``path`` through
    :func:`attnmech._persist.write`; OSError becomes OutputError naming the path."""
    check_writable(path, what=what)  # OutputError naming what and why, before any write
    arrays = dict(arrays)
    meta = arrays.pop("__meta__", None)
    try:
        _remove_stale_temporaries(path)
        _persist.write(
            path,
            kind,
            arrays,
            meta,
            dataset_fingerprint=dataset_fingerprint,
            compress=compressed,
        )
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(
            f"cannot write {what} {path}: {exc.strerror or exc}; check that its folder is "
            "writable and has free space"
        ) from None


def _versions() -> dict[str, str]:
    from .._version import __version__

    return {
        "attnmech": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------- helpers
def _resolve_theories(
    theory: Any, datasets: list[Dataset], config: TrainConfig, svm_norm: str | None = None
) -> list[Any] | None:
    if isinstance(svm_norm, str) and svm_norm.strip().lower() != "auto":
        from ..theory.norms import parse_norm

        parse_norm(svm_norm)  # a bad norm name is refused before any work
    if theory is None or theory is False:
        return None
    if theory is True:
        norm = svm_norm_for(config.model, config.step_rule(), svm_norm)
        return [solve(ds, svm_norm=norm) for ds in datasets]
    items = list(theory) if isinstance(theory, (list, tuple)) else [theory]
    if len(items) != len(datasets):
        raise InvalidDatasetError(
            f"got {len(items)} theories for {len(datasets)} datasets; give one theory per dataset"
        )
    for item, ds in zip(items, datasets, strict=True):
        check = getattr(item, "check_dataset", None)
        if check is not None:
            check(ds)  # InvalidParameterError: the theory was solved for another dataset
    return items


def _initial_params(config: TrainConfig, num_trials: int, embedding_dim: int) -> np.ndarray:
    shape = (num_trials, *config.model.param_shape(embedding_dim))
    if isinstance(config.init, str):
        if config.init == "zero":
            return np.zeros(shape)
        bound = 1.0 / math.sqrt(embedding_dim)
        return np.random.default_rng(config.seed).uniform(-bound, bound, size=shape)
    init = config.init
    if init.shape not in (shape, shape[1:]):
        raise InvalidParameterError(
            f"init array has shape {init.shape}; expected {shape[1:]} or {shape} for this model"
        )
    return np.broadcast_to(init, shape).copy()


# options that do not change the numbers a run produces: a checkpoint may be resumed with others
_RESULT_NEUTRAL = ("checkpoint_every", "num_threads")


def _fingerprint(
    config: TrainConfig,
    inputs: AttentionInputs,
    params0: np.ndarray,
    theories: Sequence[Any] | None = None,
) -> str:
    """What a checkpoint must match to be resumed: every option that changes the numbers, the
    data, the initial parameters and the theory measured against (None: no theory metrics).

    Without optimizer options and theory the digest is the one of earlier releases, so their
    checkpoints still resume.
    """
    digest = hashlib.sha256()
    options = {k: v for k, v in config.to_dict().items() if k not in _RESULT_NEUTRAL}
    for old, new in _ALIASES.items():  # hashed under the names of earlier releases
        options[old] = options.pop(new)
    if not options.get("optimizer_options"):
        options.pop("optimizer_options", None)
    if options.get("schedule") == "constant":
        options.pop("schedule", None)  # the digest of runs from before schedules existed
    digest.update(json.dumps(options, sort_keys=True).encode())
    digest.update(inputs.fingerprint())
    digest.update(np.ascontiguousarray(params0).tobytes())
    if theories is not None:
        digest.update(b"theory")
        for theory in theories:
            for array in (theory.W_svm, theory.W_fin):
                digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _save_checkpoint(
    path: Path,
    *,
    step: int,
    params: Tensor,
    state: dict[str, Tensor],
    history: dict[str, list[np.ndarray]],
    fingerprint: str,
) -> None:
    arrays: dict[str, Any] = {
        "step": np.array(step),
        "params": params.detach().cpu().numpy(),
        "fingerprint": np.array(fingerprint),
    }
    arrays.update({f"state/{k}": v.detach().cpu().numpy() for k, v in state.items()})
    arrays.update({f"history/{k}": np.asarray(v) for k, v in history.items()})
    _write_npz(path, "checkpoint", "checkpoint", arrays)


def _load_checkpoint(path: Path, fingerprint: str, params_shape: tuple[int, ...]) -> dict[str, Any]:
    """Read a checkpoint of this run, or CheckpointError naming the file and the problem."""
    arrays = _read_npz(
        path, "checkpoint", "checkpoint", CheckpointError, ("step", "params", "fingerprint")
    ).arrays
    if arrays["fingerprint"].dtype.kind != "U" or str(arrays["fingerprint"]) != fingerprint:
        raise CheckpointError(
            f"checkpoint {path} belongs to another run (different data, options, init, or "
            "theory/--no-theory setting); delete it or start the run without resuming",
            path=str(path),
        )
    step, params = arrays["step"], arrays["params"]
    if step.shape != () or step.dtype.kind not in "iu" or params.shape != params_shape:
        raise CheckpointError(
            f"checkpoint {path} is inconsistent: step {step!r}, params of shape {params.shape} "
            f"(expected {params_shape}); delete it",
            path=str(path),
        )
    return {
        "step": int(step),
        "params": params,
        "state": {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("state/")},
        "history": {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("history/")},
    }


def _check_resumable(
    path: Path, saved: dict[str, Any], fresh_state: dict[str, Tensor], num_steps: int
) -> None:
    """The saved optimiser state and history fit this run (CheckpointError otherwise)."""
    problems = []
    if not 0 <= saved["step"] <= num_steps:
        problems.append(f"its step {saved['step']} is outside 0..{num_steps}")
    for key, value in fresh_state.items():
        got = saved["state"].get(key)
        if got is None or got.shape != tuple(value.shape):
            problems.append(f"optimizer state {key!r} is missing or has the wrong shape")
    lengths = {key: len(value) for key, value in saved["history"].items() if value.ndim}
    if len(set(lengths.values())) > 1 or (saved["history"] and "step" not in lengths):
        problems.append(f"its history is inconsistent (lengths {lengths})")
    if problems:
        raise CheckpointError(
            f"checkpoint {path} cannot be resumed: {'; '.join(problems)}; delete it",
            path=str(path),
        )


# ---------------------------------------------------------------------------------- train

TRAIN_PARAMS = register(
    "train",
    {
        "callback": [callable, None],
        "checkpoint_path": [PathLike(), None],
        "resume": [FLAG],
        "progress": [FLAG],
        "record_W": [FLAG],
        "svm_norm": [str, None],
        "finite_path": [FLAG],
    },
)
"""What :func:`train`'s keyword options may be (data, config and theory are checked in their
own words)."""


@validate_params(TRAIN_PARAMS, where="train")
def train(
    data: Dataset | Sequence[Dataset],
    config: TrainConfig | None = None,
    *,
    theory: Any = None,
    callback: Callable[[int, dict[str, np.ndarray]], Any] | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool = False,
    record_W: bool = False,
    svm_norm: str | None = None,
    finite_path: bool = True,
) -> TrainResult:
    """Train single-layer attention on one or more datasets, all trials in one batch.

    Parameters
    ----------
    data : Dataset or list of Dataset
        One trial per dataset (times ``config.trials`` initialisations each). All datasets
        must share vocab_size and embedding_dim; n and T may differ.
    config : TrainConfig, optional
    theory : Theory, list of Theory, True or None
        The prediction to measure against (one per dataset; ``True`` solves it with
        :func:`attnmech.solve`). With a theory the history also holds the metrics of
        :class:`attnmech.layer.metrics.TrajectoryMetrics` (correlation with ``W_svm``, the
        finite-part gaps, top-SCC attention, automaton agreement, ...), and ``W_fin(t)`` is computed
        by :func:`run_finite_trajectory`.
    callback : callable, optional
        ``callback(step, metrics)`` at every logged step; return True to stop early.
    checkpoint_path : path, optional
        Where to write checkpoints every ``config.checkpoint_every`` steps (atomic ``.npz``).
    resume : bool, default=False
        Continue from ``checkpoint_path`` if it exists. The result is the same (bit for bit) as
        an uninterrupted run.
    progress : bool, default=False
        Show a tqdm progress bar.
    record_W : bool, default=False
        Also keep ``W`` itself at every logged step, as ``history["W"]`` of shape (L, B, d, d)
        (for measuring the trajectory against a prediction known only after training, such as
        the local Graph-SVM of docs/theory.md#local-convergence).
    svm_norm : str, optional
        With ``theory=True``: the norm of the Graph-SVM solved for (see
        :func:`attnmech.layer.metrics.svm_norm_for`): None keeps the default (``fro``, or
        ``nuclear`` when factorised), ``"auto"`` picks the optimiser's own geometry (``linf`` for
        ``sign``, ``lp:3`` for ``mirror`` with ``p=3``, ...), or any norm name (``"l1"``,
        ``"spectral"``).
    finite_path : bool, default=True
        With a theory, also train ``W_fin(t)`` (:func:`run_finite_trajectory`) for the
        ``fin_gap_traj`` metric. False skips it (the other metrics, ``fin_gap`` included, stay):
        at language-sized vocabularies it doubles the cost and keeps a ``d x d`` matrix per
        logged step.

    Returns
    -------
    TrainResult

    Examples
    --------
    The unbalanced cycle of docs/theory.md#the-finite-part: the finite part converges to log 2.

    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1], [0, 1], [0, 1]], [0, 0, 1], np.eye(2))
    >>> run = train(ds, TrainConfig(optimizer="gd", learning_rate=1.0, steps=300, init="zero"))
    >>> round(float(run.W[0, 1] - run.W[1, 1]), 6)
    0.693147
    """
    from .._validation import InstanceOf, check_params

    check_params(
        {"data": data, "config": config},
        {
            "data": [InstanceOf(Dataset, list, tuple, name="a Dataset or a list of Dataset")],
            "config": [InstanceOf(TrainConfig), None],
        },
        where="train",
    )
    if isinstance(data, (list, tuple)) and not all(isinstance(d, Dataset) for d in data):
        bad = next(type(d).__name__ for d in data if not isinstance(d, Dataset))
        raise InvalidParameterError(f"train: data must be a Dataset or a list of Dataset, got a {bad} in the list")
    config = config if config is not None else TrainConfig()
    datasets = datasets_list(data, "train")
    work = sum(ds.n_samples * ds.max_length for ds in datasets) * config.trials
    with torch_threads(config.num_threads, work):
        return _train(
            datasets,
            config,
            squeeze=isinstance(data, Dataset) and config.trials == 1,
            theory=theory,
            callback=callback,
            checkpoint_path=checkpoint_path,
            resume=resume,
            progress=progress,
            record_W=record_W,
            svm_norm=svm_norm,
            finite_path=finite_path,
        )


def _train(
    datasets: list[Dataset],
    config: TrainConfig,
    *,
    squeeze: bool,
    theory: Any,
    callback: Callable[[int, dict[str, np.ndarray]], Any] | None,
    checkpoint_path: str | os.PathLike[str] | None,
    resume: bool,
    progress: bool,
    record_W: bool = False,
    svm_norm: str | None = None,
    finite_path: bool = True,
) -> TrainResult:
    started = time.perf_counter()
    check_train_memory(datasets, config, record_W=record_W)
    trial_datasets = [ds for ds in datasets for _ in range(config.trials)]
    theories = _resolve_theories(theory, datasets, config, svm_norm)
    trial_theories = (
        None if theories is None else [t for t in theories for _ in range(config.trials)]
    )

    model_config = config.model
    inputs = inputs_from_datasets(
        trial_datasets, dtype=model_config.torch_dtype, device=model_config.device
    )
    objective = AttentionObjective(inputs, model_config)
    B, d = inputs.num_trials, inputs.embedding_dim
    params0 = _initial_params(config, B, d)
    step_rule = config.step_rule()
    logged_steps = log_steps(config.steps, config.log_every)

    recorder = None
    fin_by_step: dict[int, np.ndarray] = {}
    if trial_theories is not None:
        if finite_path:
            finite = finite_trajectory(
                trial_datasets, trial_theories, config, steps=logged_steps, progress=progress
            )
            fin_by_step = {int(s): finite.W[i] for i, s in enumerate(finite.steps)}
        recorder = TrajectoryMetrics(inputs, trial_datasets, trial_theories, model_config)

    history: dict[str, list[np.ndarray]] = {}
    start_step, state = 0, None
    params = torch.as_tensor(params0, dtype=model_config.torch_dtype, device=model_config.device)
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    fingerprint = _fingerprint(config, inputs, params0, trial_theories) if path is not None else ""
    if resume and path is not None and path.exists():
        _remove_stale_temporaries(path)
        saved = _load_checkpoint(path, fingerprint, params0.shape)
        _check_resumable(path, saved, step_rule.init(params), config.steps)
        start_step = saved["step"]
        params = torch.as_tensor(saved["params"], dtype=params.dtype, device=params.device)
        state = {
            k: torch.as_tensor(v, dtype=params.dtype, device=params.device)
            for k, v in saved["state"].items()
        }
        keep = saved["history"]["step"] < start_step if "step" in saved["history"] else slice(0)
        history = {k: list(v[keep]) for k, v in saved["history"].items()}
        logger.info("resuming from %s at step %d", path, start_step)
    elif resume and path is None:
        raise InvalidParameterError("resume=True needs a checkpoint_path")

    # one-hot data: only the W entries of the (token, query) pairs enter the risk, and the rules
    # below move an entry only where its gradient is nonzero, so the loop runs on those entries
    # (the same numbers as on the dense W; W is rebuilt at logged steps and at the end)
    step_objective: Any = objective
    to_W: Callable[[Tensor], Tensor] = objective.to_W
    if (
        inputs.onehot
        and inputs.pair_flat is not None
        and B == 1
        and model_config.parameterization == "combined"
        and config.optimizer in _PAIR_RULES
        and path is None
    ):
        flat_index = inputs.pair_flat
        W_start = params.detach().clone()

        def pair_objective(theta: Tensor) -> tuple[Tensor, Tensor]:
            risk, dpair = objective.pair_gradient(theta[0])
            return risk, dpair[None]

        def pairs_to_W(theta: Tensor) -> Tensor:
            W_full = W_start.clone()
            W_full.view(-1)[flat_index] = theta[0]
            return W_full

        step_objective, to_W = pair_objective, pairs_to_W
        params = W_start.reshape(-1)[flat_index][None].clone()  # (1, P)
        if recorder is not None and recorder.tables is not None:
            recorder.use_pair_entries(W_start)  # metrics from the pair entries too

    log_set = set(logged_steps.tolist())
    bar = _progress_bar(config.steps, start_step, progress)
    last_bar = start_step
    stopped_at: int | None = None

    def record(step: int, params: Tensor, loss: Tensor, grad: Tensor) -> bool:
        on_pairs = recorder is not None and getattr(recorder, "_pair_keys", None) is not None
        W = params if on_pairs else to_W(params)  # (1, P) pair entries, or (B, d, d)
        norm = (
            np.array([recorder.pair_norm(W)])  # type: ignore[union-attr]
            if on_pairs
            else torch.linalg.vector_norm(W.flatten(1), dim=1).cpu().numpy()
        )
        metrics = {
            "loss": loss.detach().cpu().numpy(),
            "norm": norm,
            "grad_norm": scaled_norm(grad.flatten(1), dims=(1,)).cpu().numpy(),
        }
        if recorder is not None:
            metrics.update(recorder(W, fin_by_step.get(step)))
        history.setdefault("step", []).append(np.array(step))
        for key, value in metrics.items():
            history.setdefault(key, []).append(value)
        if record_W:
            W_full = to_W(params)
            history.setdefault("W", []).append(W_full.detach().cpu().numpy().astype(np.float64))
        return bool(callback(step, metrics)) if callback is not None else False

    def observer(
        step: int, params: Tensor, loss: Tensor, grad: Tensor, state: dict[str, Tensor]
    ) -> bool:
        nonlocal last_bar, stopped_at
        if step in log_set and record(step, params, loss, grad):
            stopped_at = step
            return True
        if (
            path is not None
            and config.checkpoint_every
            and step % config.checkpoint_every == 0
            and step > start_step
        ):
            _save_checkpoint(
                path,
                step=step,
                params=params,
                state=state,
                history=history,
                fingerprint=fingerprint,
            )
        if bar is not None and step - last_bar >= 64:
            bar.update(step - last_bar)
            last_bar = step
        return False

    try:
        params, state = gradient_descent(
            step_objective,
            params,
            step_rule,
            config.steps,
            start_step=start_step,
            state=state,
            observer=observer,
            schedule=config.lr_schedule(),
        )
        if stopped_at is None:  # log the final parameters
            loss, grad = step_objective(params)
            record(config.steps, params, loss, grad)
    finally:
        if bar is not None:
            bar.update(max((stopped_at or config.steps) - last_bar, 0))
            bar.close()
    final_step = config.steps if stopped_at is None else stopped_at

    W = to_W(params).detach().cpu().numpy().astype(np.float64)
    if step_objective is objective:
        params_np = params.detach().cpu().numpy().astype(np.float64)
    else:  # the combined parameterization: the parameters are W
        params_np = W.copy()
    hist = {k: np.stack(v) for k, v in history.items()}
    if squeeze:
        W, params_np = W[0], params_np[0]
        hist = {k: (v[:, 0] if v.ndim == 2 or k == "W" else v) for k, v in hist.items()}
    return TrainResult(
        W=_copy_readonly(W),
        params=_copy_readonly(params_np),
        history={k: _copy_readonly(v) for k, v in hist.items()},
        config=config,
        num_steps=int(final_step),
        elapsed_s=time.perf_counter() - started,
        dataset_fingerprints=tuple(ds.fingerprint() for ds in datasets),
    )


_PAIR_RULES = frozenset({"gd", "ngd", "adam"})
"""Step rules that leave an entry with zero gradient where it is (one-hot training runs on the
pair entries alone); a rule with e.g. weight decay must not be listed."""


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", mininterval=0.5)


# ---------------------------------------------------------------------------------- fast path
def fast_final_supported(data: Dataset | Sequence[Dataset], config: TrainConfig) -> bool:
    """Whether :func:`train_final` applies: the ``iden`` head, log loss, the combined model,
    ``gd`` or ``ngd``, dense embeddings, no early stop, checkpoint or logging needed."""
    from ..data.dataset import OneHotEmbeddings

    model = config.model
    datasets = datasets_list(data, "train")
    return (
        model.head == "iden"
        and model.loss == "log"
        and model.parameterization == "combined"
        and config.optimizer in ("gd", "ngd")
        and not config.step_options()
        and not any(isinstance(ds.embeddings, OneHotEmbeddings) for ds in datasets)
    )


def train_final(
    data: Dataset | Sequence[Dataset], config: TrainConfig, *, method: str = "exact"
) -> tuple[np.ndarray, np.ndarray]:
    """Train like :func:`train` and return only the end: ``W`` (B, d, d) and ``||grad||_F``
    (B,) at the last step, faster (the risk is not evaluated along the way).

    Only where :func:`fast_final_supported` holds (else :class:`InvalidParameterError`).

    Parameters
    ----------
    data, config
        As for :func:`train`.
    method : {"exact", "scores"}, default="exact"
        ``"exact"``: the operations of ``train(data, config)`` in the same order, so the same
        numbers bit for bit (:class:`attnmech.layer.model.IdentityLogGradient`). ``"scores"``:
        the steps taken on the attention scores (:mod:`attnmech.layer.scorespace`), several
        times faster for small trials; each step equals ``train``'s to round-off, but over
        thousands of normalised steps the dynamics amplify round-off (``train`` itself moves as
        much when its initial ``W`` changes by one part in 1e15), so the final ``W`` agrees to
        round-off only over short runs. Trials it does not cover (more than
        :data:`~attnmech.layer.scorespace.MAX_POSITIONS` positions, a label absent from its
        sequence) are trained with ``"exact"``.
    """
    from .model import IdentityLogGradient

    if method not in ("exact", "scores"):
        raise InvalidParameterError(
            f"train_final: method must be 'exact' or 'scores', got {method!r}"
        )
    if not fast_final_supported(data, config):
        raise InvalidParameterError(
            "train_final covers the iden head, log loss, combined model and gd/ngd with dense "
            "embeddings; use train() for other settings"
        )
    datasets = [ds for ds in datasets_list(data, "train") for _ in range(config.trials)]
    work = sum(ds.n_samples * ds.max_length for ds in datasets)
    model = config.model
    with torch_threads(config.num_threads, work):
        inputs = inputs_from_datasets(datasets, dtype=model.torch_dtype, device=model.device)
        gradient = IdentityLogGradient(inputs)
        params0 = _initial_params(config, inputs.num_trials, inputs.embedding_dim)
        W = torch.as_tensor(params0, dtype=model.torch_dtype, device=model.device).clone()
        if method == "scores":
            from .scorespace import ScoreSpaceDescent, score_space_supported

            if score_space_supported(inputs):
                descent = ScoreSpaceDescent(inputs, W, normalized=config.optimizer == "ngd")
                descent.run(config.learning_rate, config.steps, config.lr_schedule())
                W = descent.weights()
                grad_norm = scaled_norm(gradient(W).flatten(1), dims=(1,))
                return (
                    W.detach().cpu().numpy().astype(np.float64),
                    grad_norm.detach().cpu().numpy().astype(np.float64),
                )
        zero_loss = torch.zeros(inputs.num_trials, dtype=W.dtype, device=W.device)

        def objective(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return zero_loss, gradient(params)  # gd and ngd never read the loss

        # the step rule's own update and the run's schedule, as in train(): one formula each
        W, _ = gradient_descent(
            objective, W, config.step_rule(), config.steps, schedule=config.lr_schedule()
        )
        grad_norm = scaled_norm(gradient(W).flatten(1), dims=(1,))
        return (
            W.detach().cpu().numpy().astype(np.float64),
            grad_norm.detach().cpu().numpy().astype(np.float64),
        )
