"""Resources a training run needs, checked before any work: memory estimated from the options
(one run of :func:`~attnmech.layer.training.train`, or a study's batch of trials) and the torch
device.

Every check raises :class:`~attnmech.errors.InvalidParameterError` naming the estimate, what is
available and the option to lower, so that nothing is allocated, drawn or written first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InvalidParameterError
from .finite_path import count_log_steps

if TYPE_CHECKING:
    from ..data.dataset import Dataset


def _run_bytes(
    sequence_entries: int, runs: int, width: int, steps: int, log_every: int, record_W: bool
) -> int:
    """The memory of training ``runs`` (dataset, trial) pairs together: their embedded
    sequences (``sequence_entries`` float64 numbers, held about four times: inputs, attention,
    their gradients) and, per logged step, each run's metrics (and ``W`` of shape
    (``width``, ``width``) with ``record_W``) plus the step's bookkeeping."""
    points = count_log_steps(int(steps), int(log_every))
    per_point = runs * 8 * (16 + (width * width if record_W else 0)) + 100
    return sequence_entries * 8 * 4 + points * per_point


def estimate_train_bytes(
    datasets: Sequence[Dataset], config: Any, *, record_W: bool = False
) -> int:
    """A lower estimate of the memory :func:`~attnmech.layer.training.train` needs, from the
    options alone (``config``: a :class:`~attnmech.layer.training.TrainConfig`).

    Per trial: the embedded sequences (n x T x d float64) held about four times (inputs,
    attention, their gradients); per logged step: the metrics of every trial (and ``W`` of
    shape (d, d) with ``record_W``), plus the bookkeeping of the step.
    """
    trials = int(config.trials)
    data = sum(int(ds.n_samples) * int(ds.max_length) * int(ds.embedding_dim) for ds in datasets)
    width = max((int(ds.embedding_dim) for ds in datasets), default=0)
    return _run_bytes(
        data * trials, len(datasets) * trials, width, config.steps, config.log_every, record_W
    )


def check_train_memory(
    datasets: Sequence[Dataset], config: Any, *, record_W: bool = False
) -> None:
    """Refuse a run whose :func:`estimate_train_bytes` exceeds the available memory, before
    anything is allocated (InvalidParameterError naming the estimate and what to lower)."""
    from .._io import available_memory

    need = estimate_train_bytes(datasets, config, record_W=record_W)
    have = available_memory()
    if need > have:
        points = count_log_steps(int(config.steps), int(config.log_every))
        raise InvalidParameterError(
            f"this run needs about {need / 2**30:.1f} GiB ({config.trials} trials x "
            f"{len(datasets)} dataset(s), {points:,} logged steps) but {have / 2**30:.1f} GiB "
            "is available; lower trials, steps or raise log_every"
        )


def check_device(device: Any) -> None:
    """Refuse a torch device that this machine does not have (``"gpu"``, ``"cuda"`` without a
    GPU, ``"cuda:7"`` with one) with InvalidParameterError, before any work or folder."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r} ({exc})"
        ) from None
    if dev.type == "cpu" or dev.type == "meta":
        if dev.type == "meta":
            raise InvalidParameterError("device must hold data: 'meta' holds none; use 'cpu'")
        return
    module = getattr(torch, dev.type, None)
    available = getattr(module, "is_available", lambda: False)
    if not available():
        raise InvalidParameterError(
            f"device {device!r} is not available on this machine (no {dev.type} support or "
            "device); use 'cpu'"
        )
    count = getattr(module, "device_count", lambda: 1)()
    if dev.index is not None and dev.index >= count:
        raise InvalidParameterError(
            f"device {device!r}: this machine has {count} {dev.type} device(s) "
            f"(indices 0 to {count - 1})"
        )


def estimate_batch_bytes(
    *,
    trials: int,
    n_samples: int,
    seq_len: int,
    vocab_size: int,
    embedding_dim: int,
    steps: int,
    log_every: int,
    record_W: bool = False,
) -> int:
    """The memory a study's batch of ``trials`` (one dataset each, trained in one ``train``
    call) needs, from its options alone, before any dataset is drawn.

    :func:`estimate_train_bytes` for ``trials`` datasets of ``n_samples x seq_len`` tokens in
    dimension ``embedding_dim``, plus what the study holds per trial before training: the
    dataset (tokens, labels, ``vocab_size x embedding_dim`` embeddings) and its theory (the
    ``vocab_size x vocab_size`` score tables and four ``d x d`` matrices).
    """
    trials, n, T = int(trials), int(n_samples), int(seq_len)
    K, d = int(vocab_size), int(embedding_dim)
    held = trials * (8 * (n * T + n + K * d + 2 * K * K + 4 * d * d))
    return _run_bytes(trials * n * T * d, trials, d, steps, log_every, record_W) + held


def check_batch_memory(what: str, need: int, *, lower: str = "trials or steps") -> None:
    """Refuse a study's batch whose estimate (:func:`estimate_batch_bytes`) exceeds the
    available memory, before any work: InvalidParameterError naming both numbers."""
    from .._io import available_memory

    have = available_memory()
    if need > have:
        raise InvalidParameterError(
            f"{what} needs about {need / 2**30:.1f} GiB in one batch but "
            f"{have / 2**30:.1f} GiB is available; lower {lower}"
        )
