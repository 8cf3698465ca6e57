"""The one place where the experiments package imports the training and verification layer.

Every module of :mod:`attnmech.studies.reproduction` and :mod:`attnmech.studies.demo` imports the
torch layer's
names (``training``, ``metrics``, ``verification``) from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...layer.metrics import correlation, fitted_scale
from ...layer.training import TrainConfig, TrainResult, run_finite_trajectory, train
from ...layer.verification import VerificationReport, verify

__all__ = [
    "TrainConfig",
    "TrainResult",
    "VerificationReport",
    "correlation",
    "fitted_scale",
    "make_train_config",
    "run_finite_trajectory",
    "train",
    "verify",
]


def make_train_config(optimizer_options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """A :class:`TrainConfig` from ``kwargs``, with the step rule's options where supported.

    ``optimizer_options`` go to ``TrainConfig(optimizer_options=...)`` (the step rule's
    keyword arguments, see :data:`attnmech.layer.optim.OPTIMIZERS`).
    """
    if optimizer_options:
        kwargs["optimizer_options"] = dict(optimizer_options)
    return TrainConfig(**kwargs)
