"""The one place where the experiments package imports the training and verification layer.

The torch layer is being split (``train.py`` / ``verify.py`` into ``training.py``,
``optim.py``, ``metrics.py``, ``verification.py``); every module of :mod:`attnmech.experiments`
and :mod:`attnmech.demo` imports these names from here, so that the merge changes this file only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..errors import InvalidParameterError
from ..train import TrainConfig, TrainResult, train
from ..verify import VerificationReport, correlation, fitted_scale, verify

__all__ = [
    "TrainConfig",
    "TrainResult",
    "VerificationReport",
    "correlation",
    "fitted_scale",
    "make_train_config",
    "train",
    "verify",
]


def make_train_config(optimizer_options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """A :class:`TrainConfig` from ``kwargs``, with the step rule's options where supported.

    ``optimizer_options`` go to ``TrainConfig(optimizer_options=...)`` once the optimiser
    registry exists (``attnmech.optim``); before that, non-empty options are refused rather than
    silently dropped.
    """
    if optimizer_options:
        if "optimizer_options" not in {f.name for f in fields(TrainConfig)}:
            raise InvalidParameterError(
                f"optimizer_options {sorted(optimizer_options)} need the optimiser registry "
                "(TrainConfig.optimizer_options), which this version does not have; remove them "
                "from the setting"
            )
        kwargs["optimizer_options"] = dict(optimizer_options)
    return TrainConfig(**kwargs)
