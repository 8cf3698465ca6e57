"""Training a single attention layer, and the regularization path (SPEC sections 2, 6 and 9).

One loop, :func:`gradient_descent`, runs every first-order method here: plain gradient descent,
normalised gradient descent (the paper's optimiser), Adam, and the ``W_fin(t)`` trajectory of SPEC
section 9 (the same optimiser from zero on the reduced data, with the gradient projected onto
``S_fin``). :func:`train` adds initialisation, metric logging, atomic checkpoints and resumption
around it, for one or many trials at once (a leading trials dimension, one batched computation).
:func:`regularization_path` solves ``W(R) = argmin_{||W||_F <= R} L(W)`` on a grid of radii.

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._io import atomic_path
from ._results import readonly as _copy_readonly
from .data import Dataset
from .errors import ConvergenceWarning, InvalidDatasetError, InvalidParameterError
from .model import (
    AttentionConfig,
    AttentionInputs,
    AttentionObjective,
    _resolve_dtype,
    _stack_trials,
    inputs_from_datasets,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "StepRule",
    "GradientDescent",
    "NormalizedGradientDescent",
    "Adam",
    "make_step_rule",
    "gradient_descent",
    "train",
    "torch_threads",
    "load_run",
    "FiniteTrajectory",
    "run_finite_trajectory",
    "RegularizationPath",
    "regularization_path",
]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("gd", "ngd", "adam")
INITS = ("uniform", "zero")
SMALL_PROBLEM = 1 << 17  # positions per step (B * n * T) up to which "auto" uses one thread


@contextlib.contextmanager
def torch_threads(num_threads: int | None, work: int = 0) -> Iterator[int]:
    """Run the body with ``torch.set_num_threads(num_threads)``, restoring the old value after.

    ``num_threads=None`` ("auto") picks 1 thread when ``work`` (positions per step) is at most
    ``SMALL_PROBLEM`` and keeps torch's setting otherwise. On small tensors each op is a few
    microseconds and torch's thread pool only adds overhead; on a busy machine its spinning
    workers can stall every op for milliseconds. torch's thread count is process-wide: the change
    is visible to other threads of the process while the body runs.
    """
    old = torch.get_num_threads()
    wanted = (1 if work <= SMALL_PROBLEM else old) if num_threads is None else int(num_threads)
    if wanted == old:
        yield old
        return
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------------------------- step rules
class StepRule:
    """One update ``params <- params - step`` of a first-order method, per trial (base class).

    ``init(params)`` returns the optimiser state (a dict of tensors, saved in checkpoints) and
    ``update(params, grad, state, step)`` returns the new parameters, updating ``state`` in place.
    """

    name = "step"

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = float(learning_rate)

    def init(self, params: Tensor) -> dict[str, Tensor]:
        return {}

    def update(self, params: Tensor, grad: Tensor, state: dict[str, Tensor], step: int) -> Tensor:
        raise NotImplementedError


class GradientDescent(StepRule):
    """``W <- W - lr * grad``."""

    name = "gd"

    def update(self, params: Tensor, grad: Tensor, state: dict[str, Tensor], step: int) -> Tensor:
        return params - self.learning_rate * grad


class NormalizedGradientDescent(StepRule):
    """``W <- W - lr * grad / ||grad||_F``, the norm taken per trial (no step where grad = 0)."""

    name = "ngd"

    def update(self, params: Tensor, grad: Tensor, state: dict[str, Tensor], step: int) -> Tensor:
        norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)  # (B,)
        scale = self.learning_rate / torch.where(norm > 0, norm, torch.ones_like(norm))
        return params - scale.view(-1, *([1] * (grad.ndim - 1))) * grad


class Adam(StepRule):
    """Adam with bias correction, per parameter entry (the state is saved in checkpoints)."""

    name = "adam"

    def __init__(
        self, learning_rate: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        super().__init__(learning_rate)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)

    def init(self, params: Tensor) -> dict[str, Tensor]:
        return {"exp_avg": torch.zeros_like(params), "exp_avg_sq": torch.zeros_like(params)}

    def update(self, params: Tensor, grad: Tensor, state: dict[str, Tensor], step: int) -> Tensor:
        beta1, beta2 = self.betas
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        t = step + 1
        m_hat = state["exp_avg"] / (1 - beta1**t)
        v_hat = state["exp_avg_sq"] / (1 - beta2**t)
        return params - self.learning_rate * m_hat / (v_hat.sqrt() + self.eps)


Observer = Callable[[int, Tensor, Tensor, Tensor, dict[str, Tensor]], Any]
Objective = Callable[[Tensor], tuple[Tensor, Tensor]]


def gradient_descent(
    objective: Objective,
    params: Tensor,
    step_rule: StepRule,
    num_steps: int,
    *,
    start_step: int = 0,
    state: dict[str, Tensor] | None = None,
    observer: Observer | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The one optimisation loop: ``params <- step_rule(params, grad)`` for steps
    ``start_step .. num_steps - 1``.

    Parameters
    ----------
    objective : callable
        ``objective(params) -> (loss, grad)`` with ``loss`` of shape (B,) and ``grad`` shaped like
        ``params``. Wrap it to project or mask gradients.
    params : Tensor of shape (B, ...)
        Starting point (not modified).
    step_rule : StepRule
    num_steps : int
    start_step : int, default=0
        First step to run (when resuming).
    state : dict of Tensor, optional
        Optimiser state to resume from (default: ``step_rule.init(params)``).
    observer : callable, optional
        ``observer(step, params, loss, grad, state)`` runs before each update, with the loss and
        gradient at ``params`` (the parameters after ``step`` updates). If it returns True the loop
        stops before that update.

    Returns
    -------
    params, state
        The parameters after the last update and the optimiser state.
    """
    params = params.clone()
    state = step_rule.init(params) if state is None else state
    for step in range(start_step, num_steps):
        loss, grad = objective(params)
        if observer is not None and observer(step, params, loss, grad, state):
            break
        params = step_rule.update(params, grad, state, step)
    return params, state


def make_step_rule(config: TrainConfig) -> StepRule:
    """The step rule named by ``config.optimizer``."""
    if config.optimizer == "gd":
        return GradientDescent(config.learning_rate)
    if config.optimizer == "ngd":
        return NormalizedGradientDescent(config.learning_rate)
    return Adam(config.learning_rate, config.adam_betas, config.adam_eps)


# ---------------------------------------------------------------------------------- config
@dataclass(frozen=True, eq=False)
class TrainConfig:
    """How to train.

    Parameters
    ----------
    model : AttentionConfig
        Head, loss, parameterization, dtype and device.
    optimizer : {"gd", "ngd", "adam"}, default="ngd"
        Gradient descent, normalised GD (``W <- W - lr grad / ||grad||_F`` per trial) or Adam.
    learning_rate : float, default=0.01
    num_steps : int, default=4000
    log_every : int, default=10
        Record metrics every this many steps (and at the last step); 0 records only the ends.
    init : {"uniform", "zero"} or ndarray, default="uniform"
        ``uniform``: U(-1/sqrt(d), 1/sqrt(d)) entries, drawn from ``np.random.default_rng(seed)``
        for all trials at once (trial b gets slice b). An array of the parameters' shape
        (optionally with a leading trials dimension) is used as given.
    seed : int, default=0
    num_trials : int, default=1
        Initialisations per dataset. Trials are ordered dataset-major.
    checkpoint_every : int, default=0
        Write a checkpoint every this many steps (0: never; needs ``checkpoint_path``).
    adam_betas, adam_eps : Adam's constants.
    device : str or None, default=None
        Overrides ``model.device`` when given.
    num_threads : int or None, default=None
        torch threads while training; None picks one thread for small problems (see
        :func:`torch_threads`).

    The defaults are the paper's experiments (SPEC section 9): normalised GD, step 0.01, 4000
    steps, uniform initialisation, float64.
    """

    model: AttentionConfig = field(default_factory=AttentionConfig)  # what model to train
    optimizer: str = "ngd"  # "gd" | "ngd" | "adam"
    learning_rate: float = 0.01  # step size (eta)
    num_steps: int = 4000  # number of updates
    log_every: int = 10  # metric logging period in steps (0: first and last step only)
    init: Any = "uniform"  # "uniform" | "zero" | array of initial parameters
    seed: int = 0  # seed of the initialisation
    num_trials: int = 1  # initialisations per dataset
    checkpoint_every: int = 0  # checkpoint period in steps (0: never)
    adam_betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates
    adam_eps: float = 1e-8  # Adam's denominator guard
    device: str | None = None  # overrides model.device when given
    num_threads: int | None = None  # torch threads while training (None: auto, see torch_threads)

    def __post_init__(self) -> None:
        if not isinstance(self.model, AttentionConfig):
            raise InvalidParameterError(
                f"model must be an AttentionConfig, got {type(self.model).__name__}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise InvalidParameterError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise InvalidParameterError(
                f"learning_rate must be a positive number, got {self.learning_rate!r}"
            )
        for name in ("num_steps", "log_every", "checkpoint_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise InvalidParameterError(f"{name} must be a non-negative integer, got {value!r}")
        if self.num_threads is not None and (
            isinstance(self.num_threads, bool) or int(self.num_threads) < 1
        ):
            raise InvalidParameterError(
                f"num_threads must be a positive integer or None, got {self.num_threads!r}"
            )
        if (
            isinstance(self.num_trials, bool)
            or not isinstance(self.num_trials, (int, np.integer))
            or self.num_trials < 1
        ):
            raise InvalidParameterError(
                f"num_trials must be a positive integer, got {self.num_trials!r}"
            )
        if isinstance(self.init, str) and self.init not in INITS:
            raise InvalidParameterError(
                f"init must be one of {', '.join(INITS)} or an array, got {self.init!r}"
            )
        if not isinstance(self.init, str):
            object.__setattr__(self, "init", np.array(self.init, dtype=np.float64))
        if self.device is not None:
            object.__setattr__(self, "model", replace(self.model, device=str(self.device)))

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
        data = dict(data)
        model = AttentionConfig(**data.pop("model"))
        data["adam_betas"] = tuple(data.get("adam_betas", (0.9, 0.999)))
        if not isinstance(data.get("init"), str):
            data["init"] = init if init is not None else "zero"
        return cls(model=model, **data)


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
    """

    W: np.ndarray
    params: np.ndarray
    history: dict[str, np.ndarray]
    config: TrainConfig
    num_steps: int
    elapsed_s: float

    @property
    def num_trials(self) -> int:
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
        arrays = {"W": self.W, "params": self.params}
        arrays.update({f"history/{k}": v for k, v in self.history.items()})
        arrays["meta"] = np.array(
            json.dumps(
                {
                    "config": self.config.to_dict(),
                    "num_steps": self.num_steps,
                    "elapsed_s": self.elapsed_s,
                }
            )
        )
        if not isinstance(self.config.init, str):
            arrays["init"] = self.config.init
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        return path


def load_run(path: str | os.PathLike[str]) -> TrainResult:
    """Read a run written by :meth:`TrainResult.save`."""
    path = Path(path)
    if not path.exists():
        raise InvalidDatasetError(f"run file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "W" not in archive.files or "meta" not in archive.files:
                raise InvalidDatasetError(
                    f"{path} is not a training run (it lacks 'W' or 'meta'); write runs with "
                    "TrainResult.save or 'attnmech train'"
                )
            meta = json.loads(str(archive["meta"]))
            history = {
                k.split("/", 1)[1]: _copy_readonly(archive[k])
                for k in archive.files
                if k.startswith("history/")
            }
            init = archive["init"] if "init" in archive.files else None
            W, params = _copy_readonly(archive["W"]), _copy_readonly(archive["params"])
    except InvalidDatasetError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidDatasetError(f"cannot read run {path}: {exc}") from None
    config = TrainConfig.from_dict(meta["config"], init=init)
    return TrainResult(W, params, history, config, int(meta["num_steps"]), float(meta["elapsed_s"]))


def _versions() -> dict[str, str]:
    from . import __version__

    return {
        "attnmech": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------- helpers
def _as_list(data: Dataset | Sequence[Dataset]) -> list[Dataset]:
    items = [data] if isinstance(data, Dataset) else list(data)
    if not items or not all(isinstance(ds, Dataset) for ds in items):
        raise InvalidDatasetError("train expects an attnmech.Dataset or a non-empty list of them")
    return items


def svm_norm_for(model: AttentionConfig) -> str:
    """The Graph-SVM a parameterization is measured against: Frobenius for ``W`` itself, the
    nuclear norm for ``W = K Q^T`` with both factors trained (an extension beyond the paper)."""
    return "nuclear" if model.parameterization == "factorized" else "fro"


def _resolve_theories(
    theory: Any, datasets: list[Dataset], model: AttentionConfig
) -> list[Any] | None:
    if theory is None or theory is False:
        return None
    if theory is True:
        from . import solve

        return [solve(ds, svm_norm=svm_norm_for(model)) for ds in datasets]
    items = list(theory) if isinstance(theory, (list, tuple)) else [theory]
    if len(items) != len(datasets):
        raise InvalidDatasetError(
            f"got {len(items)} theories for {len(datasets)} datasets; give one theory per dataset"
        )
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


def _log_steps(num_steps: int, log_every: int) -> np.ndarray:
    steps = set(range(0, num_steps, log_every)) if log_every else {0}
    return np.array(sorted(steps | {num_steps}), dtype=np.int64)


# options that do not change the numbers a run produces: a checkpoint may be resumed with others
_RESULT_NEUTRAL = ("checkpoint_every", "num_threads")


def _fingerprint(config: TrainConfig, inputs: AttentionInputs, params0: np.ndarray) -> str:
    digest = hashlib.sha256()
    options = {k: v for k, v in config.to_dict().items() if k not in _RESULT_NEUTRAL}
    digest.update(json.dumps(options, sort_keys=True).encode())
    digest.update(inputs.fingerprint())
    digest.update(np.ascontiguousarray(params0).tobytes())
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
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def _load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as archive:
        if str(archive["fingerprint"]) != fingerprint:
            raise InvalidDatasetError(
                f"checkpoint {path} belongs to another run (different data, options or init); "
                "delete it or start the run without resuming"
            )
        return {
            "step": int(archive["step"]),
            "params": archive["params"],
            "state": {
                k.split("/", 1)[1]: archive[k] for k in archive.files if k.startswith("state/")
            },
            "history": {
                k.split("/", 1)[1]: archive[k] for k in archive.files if k.startswith("history/")
            },
        }


# ---------------------------------------------------------------------------------- train
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
) -> TrainResult:
    """Train single-layer attention on one or more datasets, all trials in one batch.

    Parameters
    ----------
    data : Dataset or list of Dataset
        One trial per dataset (times ``config.num_trials`` initialisations each). All datasets
        must share vocab_size and embedding_dim; n and T may differ.
    config : TrainConfig, optional
    theory : Theory, list of Theory, True or None
        The prediction to measure against (one per dataset; ``True`` solves it with
        :func:`attnmech.solve`). With a theory the history also holds the metrics of
        :class:`attnmech.verify.TrajectoryMetrics` (correlation with ``W_svm``, the finite-part
        gaps, top-SCC attention, automaton agreement, ...), and ``W_fin(t)`` is computed by
        :func:`run_finite_trajectory`.
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
        the local Graph-SVM of SPEC section 8).

    Returns
    -------
    TrainResult

    Examples
    --------
    The unbalanced cycle of SPEC section 5: the finite part converges to log 2.

    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1], [0, 1], [0, 1]], [0, 0, 1], np.eye(2))
    >>> run = train(ds, TrainConfig(optimizer="gd", learning_rate=1.0, num_steps=300, init="zero"))
    >>> round(float(run.W[0, 1] - run.W[1, 1]), 6)
    0.693147
    """
    config = config if config is not None else TrainConfig()
    datasets = _as_list(data)
    work = sum(ds.n_samples * ds.max_length for ds in datasets) * config.num_trials
    with torch_threads(config.num_threads, work):
        return _train(
            datasets,
            config,
            squeeze=isinstance(data, Dataset) and config.num_trials == 1,
            theory=theory,
            callback=callback,
            checkpoint_path=checkpoint_path,
            resume=resume,
            progress=progress,
            record_W=record_W,
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
) -> TrainResult:
    started = time.perf_counter()
    trial_datasets = [ds for ds in datasets for _ in range(config.num_trials)]
    theories = _resolve_theories(theory, datasets, config.model)
    trial_theories = (
        None if theories is None else [t for t in theories for _ in range(config.num_trials)]
    )

    model_config = config.model
    inputs = inputs_from_datasets(
        trial_datasets, dtype=model_config.torch_dtype, device=model_config.device
    )
    objective = AttentionObjective(inputs, model_config)
    B, d = inputs.num_trials, inputs.embedding_dim
    params0 = _initial_params(config, B, d)
    step_rule = make_step_rule(config)
    log_steps = _log_steps(config.num_steps, config.log_every)

    recorder = None
    if trial_theories is not None:
        from .verify import TrajectoryMetrics

        finite = run_finite_trajectory(trial_datasets, trial_theories, config, steps=log_steps)
        recorder = TrajectoryMetrics(inputs, trial_datasets, trial_theories, model_config)
        fin_by_step = {int(s): finite.W[i] for i, s in enumerate(finite.steps)}

    history: dict[str, list[np.ndarray]] = {}
    start_step, state = 0, None
    params = torch.as_tensor(params0, dtype=model_config.torch_dtype, device=model_config.device)
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    fingerprint = _fingerprint(config, inputs, params0) if path is not None else ""
    if resume and path is not None and path.exists():
        saved = _load_checkpoint(path, fingerprint)
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

    log_set = set(log_steps.tolist())
    bar = _progress_bar(config.num_steps, start_step, progress)
    last_bar = start_step
    stopped_at: int | None = None

    def record(step: int, params: Tensor, loss: Tensor, grad: Tensor) -> bool:
        W = objective.to_W(params)
        metrics = {
            "loss": loss.detach().cpu().numpy(),
            "norm": torch.linalg.vector_norm(W.flatten(1), dim=1).cpu().numpy(),
            "grad_norm": torch.linalg.vector_norm(grad.flatten(1), dim=1).cpu().numpy(),
        }
        if recorder is not None:
            metrics.update(recorder(W, fin_by_step.get(step)))
        history.setdefault("step", []).append(np.array(step))
        for key, value in metrics.items():
            history.setdefault(key, []).append(value)
        if record_W:
            history.setdefault("W", []).append(W.detach().cpu().numpy().astype(np.float64))
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
            objective,
            params,
            step_rule,
            config.num_steps,
            start_step=start_step,
            state=state,
            observer=observer,
        )
        if stopped_at is None:  # log the final parameters
            loss, grad = objective(params)
            record(config.num_steps, params, loss, grad)
    finally:
        if bar is not None:
            bar.update(max((stopped_at or config.num_steps) - last_bar, 0))
            bar.close()
    final_step = config.num_steps if stopped_at is None else stopped_at

    W = objective.to_W(params).detach().cpu().numpy().astype(np.float64)
    params_np = params.detach().cpu().numpy().astype(np.float64)
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
    )


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", mininterval=0.5)


# ---------------------------------------------------------------------------------- W_fin(t)
@dataclass(frozen=True, slots=True, eq=False)
class FiniteTrajectory:
    """``W_fin(t)`` at the requested steps.

    Attributes
    ----------
    steps : ndarray of shape (L,)
    W : ndarray of shape (L, B, d, d)
    """

    steps: np.ndarray
    W: np.ndarray


def _project(G: Tensor, basis: Tensor) -> Tensor:
    """Projection of G (B, d, d) onto span(basis[b]); basis (B, p, d, d), orthonormal, 0-padded."""
    coef = (basis * G[:, None]).sum((-2, -1))  # (B, p); elementwise: no BLAS call on tiny sizes
    return (coef[..., None, None] * basis).sum(1)


def _stacked_basis(theories: Sequence[Any], d: int, dtype: torch.dtype, device: Any) -> Tensor:
    p = max((int(np.asarray(t.finite.basis).shape[0]) for t in theories), default=0)
    basis = np.zeros((len(theories), p, d, d))
    for b, theory in enumerate(theories):
        arr = np.asarray(theory.finite.basis, dtype=np.float64).reshape(-1, d, d)
        basis[b, : arr.shape[0]] = arr
    return torch.as_tensor(basis, dtype=dtype, device=device)


def reduced_inputs(
    datasets: Sequence[Dataset],
    theories: Sequence[Any],
    *,
    dtype: Any = torch.float64,
    device: Any = "cpu",
) -> AttentionInputs:
    """The reduced data of SPEC section 5 of each trial, laid out for the model.

    Queries are the original last tokens and every sample weighs ``1 / n_full``.
    """
    trials = []
    for ds, theory in zip(datasets, theories, strict=True):
        reduced = theory.finite.reduced
        m = int(reduced.n_samples)
        tokens = reduced.padded(fill=-1) if m else np.zeros((0, 1), dtype=np.int64)
        trials.append(
            (
                np.asarray(tokens, dtype=np.int64),
                np.asarray(reduced.queries, dtype=np.int64),
                np.asarray(reduced.labels, dtype=np.int64),
                np.asarray(ds.embeddings),
                np.full(m, 1.0 / float(reduced.n_full)),
            )
        )
    return _stack_trials(trials, dtype=_resolve_dtype(dtype), device=device)


def run_finite_trajectory(
    datasets: Dataset | Sequence[Dataset],
    theories: Any,
    config: TrainConfig | None = None,
    *,
    steps: Any = None,
) -> FiniteTrajectory:
    """``W_fin(t)``: the training optimiser run from zero on the reduced data (SPEC section 9).

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
    config = config if config is not None else TrainConfig()
    datasets = _as_list(datasets)
    theories = list(theories) if isinstance(theories, (list, tuple)) else [theories]
    work = sum(ds.n_samples * ds.max_length for ds in datasets)
    with torch_threads(config.num_threads, work):
        return _finite_trajectory(datasets, theories, config, steps)


def _finite_trajectory(
    datasets: list[Dataset], theories: list[Any], config: TrainConfig, steps: Any
) -> FiniteTrajectory:
    model_config = replace(config.model, parameterization="combined")
    dtype, device = model_config.torch_dtype, model_config.device
    inputs = reduced_inputs(datasets, theories, dtype=dtype, device=device)
    base = AttentionObjective(inputs, model_config)
    d = inputs.embedding_dim
    basis = _stacked_basis(theories, d, dtype, device)

    def objective(W: Tensor) -> tuple[Tensor, Tensor]:
        loss, grad = base(W)
        return loss, _project(grad, basis)

    wanted = (
        _log_steps(config.num_steps, config.log_every)
        if steps is None
        else np.asarray(steps, dtype=np.int64)
    )
    wanted_set = set(wanted.tolist())
    kept: dict[int, np.ndarray] = {}

    def observer(
        step: int, W: Tensor, loss: Tensor, grad: Tensor, state: dict[str, Tensor]
    ) -> bool:
        if step in wanted_set:
            kept[step] = W.detach().cpu().numpy().copy()
        return False

    last = int(wanted.max(initial=0))
    W0 = torch.zeros(len(datasets), d, d, dtype=dtype, device=device)
    W_end, _ = gradient_descent(objective, W0, make_step_rule(config), last, observer=observer)
    kept[last] = W_end.detach().cpu().numpy()
    return FiniteTrajectory(steps=wanted, W=np.stack([kept[int(s)] for s in wanted]))


# ---------------------------------------------------------------------------------- reg. path
@dataclass(frozen=True, slots=True, eq=False)
class RegularizationPath:
    """Solutions of ``min L(W) s.t. ||W||_F <= R`` on a grid of radii.

    Attributes
    ----------
    radii : ndarray of shape (m,)
        Sorted increasing.
    W : ndarray of shape (m, d, d)
    loss : ndarray of shape (m,)
    multiplier : ndarray of shape (m,)
        Lagrange multiplier lambda of the ball (0 when the constraint is inactive).
    kkt_residual : ndarray of shape (m,)
        ``max(stationarity, feasibility)``. Stationarity is
        ``||grad L + lambda W||_F / max(lambda ||W||_F, ||grad L||_F, 1e-6)``: relative (the sine
        of the angle between ``-grad L`` and ``W`` on the sphere) while the gradient is above
        1e-6, and absolute (times 1e6) below, where float64 rounding of an O(1) loss's gradient
        (about 1e-16) rules out a relative measure. Feasibility is ``| ||W||_F - R | / R`` when
        the ball binds (lambda > 0), ``max(0, ||W||_F - R) / R`` otherwise.
    converged : ndarray of bool of shape (m,)
        ``kkt_residual <= tol``.
    n_iter : ndarray of shape (m,)
        Newton iterations used.
    tol : float
    """

    radii: np.ndarray
    W: np.ndarray
    loss: np.ndarray
    multiplier: np.ndarray
    kkt_residual: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    tol: float


class _RidgeProblem:
    """``L(W) + lam/2 ||W||^2`` for one trial, in numpy, with gradient and Hessian of ``L``."""

    def __init__(self, objective: AttentionObjective) -> None:
        self.objective = objective
        self.d = objective.inputs.embedding_dim
        self.dtype = objective.inputs.dtype
        self.device = objective.inputs.device

    def _tensor(self, w: np.ndarray) -> Tensor:
        return torch.as_tensor(w.reshape(1, self.d, self.d), dtype=self.dtype, device=self.device)

    def loss(self, w: np.ndarray) -> float:
        return float(self.objective.risk(self._tensor(w))[0])

    def grad(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = self.objective(self._tensor(w))
        return float(loss[0]), grad[0].reshape(-1).cpu().numpy()

    def hessian(self, w: np.ndarray) -> np.ndarray:
        return self.objective.hessian(self._tensor(w))[0].cpu().numpy()


GRADIENT_FLOOR = 1e-6  # stationarity is relative to max(lam ||W||, ||grad L||, GRADIENT_FLOOR)


def _stationarity(grad: np.ndarray, w: np.ndarray, lam: float) -> float:
    """``||grad L + lam w||`` relative to ``max(lam ||w||, ||grad L||, GRADIENT_FLOOR)``.

    Relative while the gradient is large; below ``GRADIENT_FLOOR`` it becomes absolute (scaled),
    because the gradient of an O(1) loss has an absolute rounding error of about 1e-16 and a
    relative residual of a 1e-10 gradient could not go below 1e-6.
    """
    scale = max(lam * float(np.linalg.norm(w)), float(np.linalg.norm(grad)), GRADIENT_FLOOR)
    return float(np.linalg.norm(grad + lam * w)) / scale


def _kkt(grad: np.ndarray, w: np.ndarray, lam: float, radius: float) -> float:
    norm = float(np.linalg.norm(w))
    feasibility = abs(norm - radius) if lam > 0 else max(0.0, norm - radius)
    return max(_stationarity(grad, w, lam), feasibility / radius)


def _newton_direction(matrix: np.ndarray, rhs: np.ndarray, exact: bool) -> np.ndarray:
    if exact:
        try:
            return np.linalg.solve(matrix, rhs)
        except np.linalg.LinAlgError:
            pass
    return np.linalg.lstsq(matrix, rhs, rcond=None)[0]  # minimum-norm step for singular matrices


def _ridge_newton(
    problem: _RidgeProblem,
    w: np.ndarray,
    lam: float,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Damped Newton on ``L(w) + lam/2 ||w||^2`` (strongly convex for a convex L and lam > 0).

    Stops when :func:`_stationarity` is at most ``tol`` or when the predicted decrease falls
    below rounding. With lam = 0 the steps are minimum-norm. Returns
    ``(w, grad L, Hessian of L, iterations)``.
    """
    n = w.size
    loss, grad = problem.grad(w)
    hess = problem.hessian(w)
    best, stalled = math.inf, 0
    for it in range(max_iter):
        full = grad + lam * w
        residual = _stationarity(grad, w, lam)
        if residual <= tol:
            return w, grad, hess, it
        best, stalled = (residual, 0) if residual < 0.5 * best else (best, stalled + 1)
        if stalled >= 5:  # rounding has taken over
            return w, grad, hess, it
        direction = -_newton_direction(hess + lam * np.eye(n), full, exact=lam > 0)
        value = loss + 0.5 * lam * float(w @ w)
        slope = float(full @ direction)
        if slope >= 0:  # not a descent direction (non-convex loss): use the gradient
            direction, slope = -full, -float(full @ full)
        if -slope <= 1e-14 * abs(value):  # the loss is computed to full relative precision
            # the predicted decrease is too small for a line search to see: trust the Newton
            # step, but no further than a tenth of ||w|| (a numerically singular Hessian can
            # make it huge)
            cap = 0.1 * max(1.0, float(np.linalg.norm(w)))
            length = float(np.linalg.norm(direction))
            trial = w + direction * min(1.0, cap / max(length, 1e-300))
            trial_loss, trial_grad = problem.grad(trial)
        else:
            step = 1.0
            while True:
                trial = w + step * direction
                trial_loss, trial_grad = problem.grad(trial)
                trial_value = trial_loss + 0.5 * lam * float(trial @ trial)
                if trial_value <= value + 1e-4 * step * slope:
                    break
                step *= 0.5
                if step < 1e-10:
                    return w, grad, hess, it + 1
        w, loss, grad = trial, trial_loss, trial_grad
        hess = problem.hessian(w)
    return w, grad, hess, max_iter


def _solve_on_ball(
    problem: _RidgeProblem, w: np.ndarray, lam: float, radius: float, tol: float, max_iter: int
) -> tuple[np.ndarray, float, float, int]:
    """Solve ``min L s.t. ||w|| = radius`` (the ball binds): find ``lam > 0`` with
    ``||w_lam|| = radius``, ``w_lam = argmin L + lam/2 ||w||^2``.

    The multiplier is updated by Newton steps on ``psi(t) = 1/||w_lam|| - 1/radius`` in
    ``t = log lam`` (smooth over the many orders of magnitude lam spans along the path), kept
    inside a bracket and bisected when a step leaves it. Returns (w, lam, kkt residual, its).
    """
    n = w.size
    total = 0
    lo, hi = -math.inf, math.inf  # bracket on t = log lam (||w_lam|| decreases in lam)
    t = math.log(lam)
    # if the tolerance is out of reach, fall back on the point of least residual on the sphere,
    # starting with the warm start scaled to the radius
    w = w * (radius / max(float(np.linalg.norm(w)), 1e-300))
    fallback = (w, lam, _kkt(problem.grad(w)[1], w, lam, radius))
    best, stalled = math.inf, 0
    for _ in range(max_iter):
        lam = math.exp(t)
        w_lam, grad, hess, its = _ridge_newton(problem, w, lam, tol * 1e-2, max_iter)
        total += its
        norm = float(np.linalg.norm(w_lam))
        kkt = _kkt(grad, w_lam, lam, radius)
        if kkt <= tol:
            return w_lam, lam, kkt, total
        best, stalled = (kkt, 0) if kkt < 0.5 * best else (best, stalled + 1)
        if stalled >= 8:  # no progress: the tolerance is out of float64's reach here
            break
        if abs(norm - radius) <= 1e-6 * radius and kkt < fallback[2]:
            fallback = (w_lam, lam, kkt)
        w = w_lam
        if norm > radius:
            lo = max(lo, t)
        else:
            hi = min(hi, t)
        dw = -_newton_direction(hess + lam * np.eye(n), w, exact=True)  # d w_lam / d lam
        slope = -lam * float(w @ dw) / norm**3  # d psi / d t > 0
        psi = 1.0 / norm - 1.0 / radius
        new = t - psi / slope if slope > 0 else math.nan
        new = min(max(new, t - 5.0), t + 5.0)  # at most a factor e^5 per update
        if not (math.isfinite(new) and lo < new < hi):
            if math.isfinite(lo) and math.isfinite(hi):
                new = 0.5 * (lo + hi)
            else:
                new = t - 2.0 if norm < radius else t + 2.0
        if abs(new - t) < 1e-15 * max(1.0, abs(t)):
            break  # the multiplier is as precise as floating point allows
        t = new
    w, lam, kkt = fallback
    return w, lam, kkt, total


def regularization_path(
    dataset: Dataset,
    radii: Any,
    *,
    config: AttentionConfig | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> RegularizationPath:
    """``W(R) = argmin_{||W||_F <= R} L(W)`` for each radius, warm-started along the grid.

    Parameters
    ----------
    dataset : Dataset
    radii : array-like of positive float
        Sorted before solving.
    config : AttentionConfig, optional
        Head and loss (combined parameterization only). The theory (SPEC section 6) is for the
        ``iden`` head with the log-loss, where ``L`` is convex and the solution unique (up to
        directions that ``L`` ignores; the minimum-norm one is returned).
    tol : float, default=1e-8
        Tolerance on the KKT residual (see :class:`RegularizationPath`); the multiplier's inner
        solves go to ``tol / 100``.
    max_iter : int, default=100
        Newton iterations per inner solve, and multiplier updates per radius.

    Returns
    -------
    RegularizationPath

    Notes
    -----
    For each radius, the multiplier ``lambda`` is found by a safeguarded Newton iteration on
    ``1/||W_lambda|| - 1/R`` in ``log lambda``, where ``W_lambda = argmin L(W) + lambda/2 ||W||^2``
    is computed by damped Newton with the analytic Hessian. When no token-priority graph has a
    strict priority (``W_svm = 0``) the loss has a minimum-norm minimiser ``W*``; radii at or
    above ``||W*||`` return it with ``lambda = 0``.

    Limits of float64: along the path the curvature in the ``W_svm`` direction decays like
    ``lambda``, while the finite part keeps curvature of order 1. Once ``lambda`` falls below
    about 1e-10 (for the paper's setting, radii of a few tens, where ``corr(W(R), W_svm)`` is
    already about 0.999) the Newton systems lose their precision: those radii report their
    residual, ``converged`` is False there, and a
    :class:`~attnmech.errors.ConvergenceWarning` is raised. For such a radius the point on the
    sphere with the least residual met on the way (at worst the previous solution scaled to the
    radius) is returned. Meant for small d (the Hessian is d^2 x d^2).
    """
    config = config if config is not None else AttentionConfig()
    if config.parameterization != "combined":
        raise InvalidParameterError(
            "regularization_path needs the combined parameterization (W itself)"
        )
    if not isinstance(dataset, Dataset):
        raise InvalidDatasetError(f"expected an attnmech.Dataset, got {type(dataset).__name__}")
    radii_arr = np.sort(np.asarray(radii, dtype=np.float64).reshape(-1))
    if radii_arr.size == 0 or not np.all(np.isfinite(radii_arr)) or radii_arr[0] <= 0:
        raise InvalidParameterError("radii must be a non-empty list of positive finite numbers")
    with torch_threads(None, dataset.n_samples * dataset.max_length):
        return _regularization_path(dataset, radii_arr, config, tol, max_iter)


def _regularization_path(
    dataset: Dataset, radii_arr: np.ndarray, config: AttentionConfig, tol: float, max_iter: int
) -> RegularizationPath:
    from .graphs import build_priority_graphs

    problem = _RidgeProblem(AttentionObjective(dataset, config))
    d = problem.d
    # With a strict priority somewhere (W_svm != 0) the loss has no minimiser and the ball binds
    # at every radius. Without one, the minimum-norm minimiser W* (= W_fin) solves every radius
    # >= ||W*||: Newton from zero with minimum-norm steps finds it.
    separable = build_priority_graphs(dataset).dag_src.size > 0
    w_star, star_norm = None, math.inf
    if not separable:
        w_star, _, _, _ = _ridge_newton(problem, np.zeros(d * d), 0.0, tol * 1e-2, max_iter)
        star_norm = float(np.linalg.norm(w_star))
    _, grad0 = problem.grad(np.zeros(d * d))
    g0 = max(float(np.linalg.norm(grad0)), 1e-300)
    w, lam = -radii_arr[0] * grad0 / g0, g0 / radii_arr[0]  # the solution for a small radius
    out_W, out_loss, out_lam, out_kkt, out_it = [], [], [], [], []
    for radius in radii_arr:
        if radius >= star_norm:
            loss, grad = problem.grad(w_star)
            sol, sol_lam, kkt, its = w_star, 0.0, _kkt(grad, w_star, 0.0, float(radius)), 0
        else:
            sol, sol_lam, kkt, its = _solve_on_ball(problem, w, lam, float(radius), tol, max_iter)
            w, lam = sol, sol_lam
        out_W.append(sol.reshape(d, d))
        out_loss.append(problem.loss(sol))
        out_lam.append(sol_lam)
        out_kkt.append(kkt)
        out_it.append(its)
    kkt_arr = np.array(out_kkt)
    converged = kkt_arr <= tol
    if not converged.all():
        warnings.warn(
            f"regularization_path: KKT residual above tol={tol:g} at radii "
            f"{radii_arr[~converged].tolist()} (largest {kkt_arr.max():.2e}); at large radii the "
            "Hessian is nearly singular: use smaller radii or a looser tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    return RegularizationPath(
        radii=_copy_readonly(radii_arr),
        W=_copy_readonly(np.stack(out_W)),
        loss=_copy_readonly(np.array(out_loss)),
        multiplier=_copy_readonly(np.array(out_lam)),
        kkt_residual=_copy_readonly(kkt_arr),
        converged=_copy_readonly(converged),
        n_iter=_copy_readonly(np.array(out_it)),
        tol=float(tol),
    )
