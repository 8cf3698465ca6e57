"""Verifying a trained ``W`` against the theory (docs/theory.md#the-theorem, #the-automaton and
#the-papers-experiments).

:func:`verify` measures a finished run (or any ``W``) with the metrics of
:mod:`attnmech.layer.metrics` (the same ones :func:`attnmech.train` logs while it trains) and
returns a :class:`VerificationReport` (JSON and plain-text views).

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._summary import summary_stats
from ..data.dataset import Dataset
from ..errors import InvalidDatasetError, InvalidParameterError
from .metrics import METRICS, TrajectoryMetrics, svm_norm_for
from .model import (
    HEADS,
    AttentionConfig,
    AttentionInputs,
    AttentionObjective,
    inputs_from_datasets,
    pair_scores,
    torch_threads,
)
from ..theory.solve import solve
from .training import TrainResult, load_run
from .._validation import validate_params

__all__ = ["VerificationReport", "verify"]


@dataclass(frozen=True, slots=True, eq=False)
class VerificationReport:
    """How closely a trained ``W`` follows the theory.

    Attributes
    ----------
    metrics : dict of str to ndarray of shape (num_trials,)
        The metrics of :data:`METRICS` (NaN where undefined, e.g. correlations when W_svm = 0).
    num_trials : int
    is_cyclic : ndarray of bool of shape (num_trials,)
        Whether each trial's data has an SCC of size > 1.
    w_svm_fro_norm, fin_norm : ndarray of shape (num_trials,)
        ``||W_svm||_F`` and ``||W_fin||_F`` (the Frobenius norm whichever norm's Graph-SVM was
        solved; ``svm_norm`` is its deprecated name: elsewhere ``svm_norm`` names a norm).
    config : AttentionConfig
    """

    metrics: dict[str, np.ndarray]
    num_trials: int
    is_cyclic: np.ndarray
    w_svm_fro_norm: np.ndarray
    fin_norm: np.ndarray
    config: AttentionConfig = field(default_factory=AttentionConfig)

    @property
    def svm_norm(self) -> np.ndarray:
        """Deprecated name of :attr:`w_svm_fro_norm` (``svm_norm`` names a norm elsewhere)."""
        warnings.warn(
            "VerificationReport.svm_norm is deprecated and will be removed in the next release; "
            "use w_svm_fro_norm (the Frobenius norm of W_svm)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.w_svm_fro_norm

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: per metric its mean, std, min, max (over finite values) and values."""
        return {
            "num_trials": self.num_trials,
            "head": self.config.head,
            "loss": self.config.loss,
            "is_cyclic": [bool(c) for c in self.is_cyclic],
            "w_svm_fro_norm": [float(v) for v in self.w_svm_fro_norm],
            "fin_norm": [float(v) for v in self.fin_norm],
            "metrics": {name: summary_stats(values) for name, values in self.metrics.items()},
        }

    def to_table(self) -> str:
        """A plain-text table: one row per metric (mean +- std over trials, min, max)."""
        header = f"{'metric':<18} {'mean':>12} {'std':>10} {'min':>12} {'max':>12}  meaning"
        lines = [
            f"{self.num_trials} trial(s), head={self.config.head}, loss={self.config.loss}",
            header,
            "-" * len(header),
        ]
        for name, values in self.metrics.items():
            s = summary_stats(values)
            cells = [_fmt(s[k]) for k in ("mean", "std", "min", "max")]
            row = f"{name:<18} {cells[0]:>12} {cells[1]:>10} {cells[2]:>12} {cells[3]:>12}"
            lines.append(f"{row}  {METRICS.get(name, '')}")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.6g}"



VERIFY_PARAMS: dict[str, list[Any]] = {"config": [AttentionConfig, None]}
"""What :func:`verify`'s options may be (data, W and theory are checked in their own words)."""


@validate_params(VERIFY_PARAMS, where="verify")
def verify(
    dataset: Dataset | Sequence[Dataset],
    W_or_run: Any,
    theory: Any = None,
    *,
    config: AttentionConfig | None = None,
) -> VerificationReport:
    """Compare a trained ``W`` with the theory's prediction on its training data.

    Parameters
    ----------
    dataset : Dataset or list of Dataset
        The training data (one dataset for all trials, or one per trial).
    W_or_run : ndarray of shape (d, d) or (B, d, d), TrainResult, or path to a saved run (.npz)
    theory : Theory or list of Theory, optional
        Default: :func:`attnmech.solve` on each dataset. A theory solved for other data is
        refused.
    config : AttentionConfig, optional
        Head and loss; default the run's (or the iden head with log-loss for a bare ``W``).

    Returns
    -------
    VerificationReport

    Raises
    ------
    InvalidParameterError
        A run (or theory) computed from another dataset than ``dataset``.
    """
    from .._validation import InstanceOf, check_params

    check_params(
        {"dataset": dataset},
        {"dataset": [InstanceOf(Dataset, list, tuple, name="a Dataset or a list of Dataset")]},
        where="verify",
    )
    if isinstance(W_or_run, (str, os.PathLike)):
        W_or_run = load_run(W_or_run)
    if isinstance(W_or_run, TrainResult):
        config = config if config is not None else W_or_run.config.model
        W = np.array(W_or_run.W, dtype=np.float64)
    else:
        try:
            W = np.array(W_or_run, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(
                "verify: W_or_run must be an array of shape (d, d) or (B, d, d), a TrainResult "
                f"or the path of a saved run; cannot read it as an array ({exc})"
            ) from None
    config = config if config is not None else AttentionConfig()
    if W.ndim not in (2, 3) or W.shape[-1] != W.shape[-2]:
        raise InvalidDatasetError(f"W must have shape (d, d) or (B, d, d), got {W.shape}")
    if not np.isfinite(W).all():
        raise InvalidParameterError(
            "verify: W holds NaN or inf (a diverged run?); nothing can be compared with it"
        )
    W = W if W.ndim == 3 else W[None]
    B = W.shape[0]
    datasets = [dataset] if isinstance(dataset, Dataset) else list(dataset)
    if not datasets or not all(isinstance(ds, Dataset) for ds in datasets):
        raise InvalidDatasetError("verify expects an attnmech.Dataset or a list of them")
    if datasets[0].embedding_dim != W.shape[-1]:
        raise InvalidDatasetError(
            f"W is {W.shape[-1]} x {W.shape[-1]} but the embeddings have dimension "
            f"{datasets[0].embedding_dim}; pass the dataset the run was trained on"
        )
    if isinstance(W_or_run, TrainResult):
        W_or_run.check_datasets(datasets)  # a run is measured only on the data it was trained on
    if theory is None:
        theories = [solve(ds, svm_norm=svm_norm_for(config)) for ds in datasets]
    else:
        theories = list(theory) if isinstance(theory, (list, tuple)) else [theory]
    for item in theories:
        if not hasattr(item, "finite"):  # a Theory (or an object with its parts)
            raise InvalidParameterError(
                f"verify: theory must be a Theory (attnmech.solve or attnmech.load_theory) or a "
                f"list of them, got {type(item).__name__}"
            )
    if len(theories) != len(datasets):
        raise InvalidDatasetError(f"got {len(theories)} theories for {len(datasets)} datasets")
    for item, ds in zip(theories, datasets, strict=True):
        check = getattr(item, "check_dataset", None)
        if check is not None:
            check(ds)  # InvalidParameterError: the theory was solved for another dataset
    if B % len(datasets):
        raise InvalidDatasetError(f"{B} trials cannot be split over {len(datasets)} datasets")
    repeat = B // len(datasets)  # trials are dataset-major (as in train)
    trial_datasets = [ds for ds in datasets for _ in range(repeat)]
    trial_theories = [t for t in theories for _ in range(repeat)]
    with torch_threads(None, sum(ds.n_samples * ds.max_length for ds in trial_datasets)):
        inputs = inputs_from_datasets(
            trial_datasets, dtype=config.torch_dtype, device=config.device
        )
        recorder = TrajectoryMetrics(inputs, trial_datasets, trial_theories, config)
        W_t = torch.as_tensor(W, dtype=inputs.dtype, device=inputs.device)
        with torch.no_grad():
            combined = replace(config, parameterization="combined")  # W itself is given
            loss = AttentionObjective(inputs, combined).risk(W_t).cpu().numpy()
        values = recorder(W_t)
        probs = _head_probabilities(W_t, inputs, config)
        values["automaton_tv_hard"] = recorder.automaton_tv(probs, None)
    metrics = {"loss": loss, "norm": np.linalg.norm(W, axis=(-2, -1))}
    metrics.update({k: values[k] for k in METRICS if k in values})
    readonly = {}
    for key, value in metrics.items():
        arr = np.array(value, dtype=np.float64)
        arr.flags.writeable = False
        readonly[key] = arr
    return VerificationReport(
        metrics=readonly,
        num_trials=B,
        is_cyclic=np.array([bool(t.graphs.is_cyclic) for t in trial_theories]),
        w_svm_fro_norm=np.linalg.norm(recorder.W_svm, axis=(-2, -1)),
        fin_norm=np.linalg.norm(recorder.W_fin, axis=(-2, -1)),
        config=config,
    )


def _head_probabilities(W: Tensor, inputs: AttentionInputs, config: AttentionConfig) -> np.ndarray:
    head = HEADS[config.head]
    with torch.no_grad():
        state = head.forward(pair_scores(W, inputs), inputs)
        return head.probabilities(state, inputs).cpu().numpy()
