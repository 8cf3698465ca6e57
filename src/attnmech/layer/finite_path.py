"""The ``W_fin(t)`` trajectory of docs/theory.md#the-papers-experiments: the training optimiser on
the reduced data.

The authors measure the finite part of a run against ``W_fin(t)``: the same optimiser, from zero,
on the reduced dataset (docs/theory.md#the-finite-part), with the gradient projected onto ``S_fin``
so that the iterate stays there. :func:`finite_trajectory` runs it for a batch of trials with the
same loop as training (:func:`attnmech.layer.optim.gradient_descent`).

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.dataset import Dataset
from ..errors import InvalidParameterError
from .metrics import FiniteProjection
from .model import (
    AttentionInputs,
    AttentionObjective,
    _resolve_dtype,
    _stack_trials,
    datasets_list,
    torch_threads,
)
from .optim import gradient_descent

# The configuration is an attnmech.TrainConfig (training.py imports this module, so it is not
# imported back, not even for type checking): it needs model, num_steps, log_every, num_threads
# and step_rule().
TrainConfig = Any

__all__ = ["FiniteTrajectory", "finite_trajectory", "reduced_inputs", "log_steps"]


def log_steps(num_steps: int, log_every: int) -> np.ndarray:
    """The steps at which a run records metrics: every ``log_every`` steps and the last one
    (``log_every = 0``: the first and the last)."""
    steps = np.arange(0, num_steps, log_every, dtype=np.int64) if log_every else np.zeros(1, np.int64)
    if steps.size == 0 or steps[-1] != num_steps:
        steps = np.append(steps, np.int64(num_steps))
    return steps


def count_log_steps(num_steps: int, log_every: int) -> int:
    """``len(log_steps(num_steps, log_every))`` without building it."""
    if not log_every:
        return 1 if num_steps == 0 else 2
    return -(-num_steps // log_every) + 1 if num_steps > 0 else 1


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


def reduced_inputs(
    datasets: Sequence[Dataset],
    theories: Sequence[Any],
    *,
    dtype: Any = torch.float64,
    device: Any = "cpu",
    identity: bool = True,
) -> AttentionInputs:
    """The reduced data of docs/theory.md#the-finite-part of each trial, laid out for the model.

    Queries are the original last tokens and every sample weighs ``1 / n_full``. ``identity``:
    see :func:`attnmech.layer.model.inputs_from_datasets`.
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
                ds.embedding_table if ds.is_onehot else np.asarray(ds.embeddings),
                np.full(m, 1.0 / float(reduced.n_full)),
            )
        )
    return _stack_trials(trials, dtype=_resolve_dtype(dtype), device=device, identity=identity)


def finite_trajectory(
    datasets: Dataset | Sequence[Dataset],
    theories: Any,
    config: TrainConfig,
    *,
    steps: Any = None,
    progress: bool = False,
    as_entries: bool = False,
) -> FiniteTrajectory:
    """``W_fin(t)`` for the optimiser of ``config`` (see :func:`attnmech.run_finite_trajectory`,
    which also supplies the default configuration); ``progress`` shows a bar on stderr.

    ``as_entries``: for one dataset with one-hot embeddings and a token-space theory, keep
    ``W_fin(t)`` as its values on the ``S_fin`` entries (``W`` of shape (L, 1, n_entries), in the
    order of ``theory.finite.subspace``) instead of ``K x K`` matrices; refused otherwise.
    """
    datasets = datasets_list(datasets, "run_finite_trajectory")
    theories = list(theories) if isinstance(theories, (list, tuple)) else [theories]
    if not theories or not all(hasattr(t, "finite") for t in theories):  # Theory-like
        raise InvalidParameterError(
            "theories must be a Theory (attnmech.solve) or a non-empty list of them, got "
            + ", ".join(sorted({type(t).__name__ for t in theories}) or ["an empty list"])
        )
    work = sum(ds.n_samples * ds.max_length for ds in datasets)
    with torch_threads(config.num_threads, work):
        return _finite_trajectory(datasets, theories, config, steps, progress, as_entries)


def _finite_trajectory(
    datasets: list[Dataset],
    theories: list[Any],
    config: TrainConfig,
    steps: Any,
    progress: bool = False,
    as_entries: bool = False,
) -> FiniteTrajectory:
    model_config = replace(config.model, parameterization="combined")
    dtype, device = model_config.torch_dtype, model_config.device
    inputs = reduced_inputs(
        datasets, theories, dtype=dtype, device=device, identity=not as_entries
    )
    base = AttentionObjective(inputs, model_config)
    d = inputs.embedding_dim
    projection = FiniteProjection(theories, d)

    def objective(W: Tensor) -> tuple[Tensor, Tensor]:
        loss, grad = base(W)
        return loss, projection.project_tensor(grad)

    step_objective: Any = objective
    to_W: Any = None
    n_entries = 0
    sub = getattr(theories[0].finite, "subspace", None) if len(theories) == 1 else None
    if (
        inputs.pair_flat is not None
        and sub is not None
        and sub._mode == "token"
        and sub._E is None
        and sub.dimension > 0
        and config.optimizer in ("gd", "ngd", "adam", "polyak", "polyak-capped", "split-ngd")
    ):
        # one-hot, token-space S_fin: W_fin(t) lives on the nontrivial SCCs' entries; run the
        # optimiser on them (the same numbers as the dense W with the factored projection)
        K = inputs.vocab_size
        var_flat = sub._token * K + sub._query  # W.reshape(-1) index of each S_fin entry
        order = np.argsort(var_flat)
        pair_flat = inputs.pair_flat.cpu().numpy()
        found = np.minimum(np.searchsorted(var_flat[order], pair_flat), var_flat.size - 1)
        pos = order[found]
        if np.array_equal(var_flat[pos], pair_flat):  # every reduced pair is an S_fin entry
            pair_var = torch.as_tensor(pos, device=device)
            group = torch.as_tensor(sub._group, device=device)
            group_size = torch.as_tensor(sub._group_size, dtype=dtype, device=device)
            n_vars, n_groups = int(var_flat.size), int(sub._group_size.size)
            var_flat_t = torch.as_tensor(var_flat, device=device)

            def var_objective(theta: Tensor) -> tuple[Tensor, Tensor]:
                loss, dpair = base.pair_gradient(theta[0][pair_var])
                grad = torch.zeros(n_vars, dtype=dtype, device=device)
                grad.index_add_(0, pair_var, dpair)
                means = torch.zeros(n_groups, dtype=dtype, device=device)
                means.index_add_(0, group, grad)
                return loss, (grad - (means / group_size)[group])[None]

            def var_to_W(theta: Tensor) -> Tensor:
                W_full = torch.zeros(1, K * K, dtype=dtype, device=device)
                W_full[0, var_flat_t] = theta[0]
                return W_full.view(1, K, K)

            step_objective, to_W, n_entries = var_objective, var_to_W, n_vars
            if as_entries:
                to_W = _keep_entries
    if as_entries and to_W is not _keep_entries:
        raise InvalidParameterError(
            "W_fin(t) as S_fin entries needs one one-hot dataset, a token-space theory with "
            "dim S_fin > 0 and the optimizer gd, ngd, adam, polyak, polyak-capped or split-ngd"
        )

    if steps is not None:
        given = np.asarray(steps)
        if (
            given.ndim != 1
            or given.size == 0
            or given.dtype.kind not in "iu"
            or given.min() < 0
            or given.max() > 10**9
        ):
            raise InvalidParameterError(
                "steps must be a non-empty 1-D list of integer steps in [0, 1000000000], got "
                f"{np.array2string(given, threshold=6) if given.dtype.kind in 'biuf' else steps!r}"
            )
    wanted = (
        log_steps(config.steps, config.log_every)
        if steps is None
        else np.asarray(steps, dtype=np.int64)
    )
    wanted_set = set(wanted.tolist())
    kept: dict[int, np.ndarray] = {}
    last = int(wanted.max(initial=0))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=last, desc="W_fin(t)", unit="step", mininterval=0.5)

    def observer(
        step: int, W: Tensor, loss: Tensor, grad: Tensor, state: dict[str, Tensor]
    ) -> bool:
        if step in wanted_set:
            full = W if to_W is None else to_W(W)
            kept[step] = full.detach().cpu().numpy().copy()
        if bar is not None and step and step % 64 == 0:
            bar.update(64)
        return False

    if to_W is not None:
        W0 = torch.zeros(1, n_entries, dtype=dtype, device=device)  # the S_fin entries
    else:
        W0 = torch.zeros(len(datasets), d, d, dtype=dtype, device=device)
    try:
        rule = config.step_rule()
        if hasattr(rule, "bind_projection"):  # the objective's gradient already lies in S_fin
            rule.bind_projection(_identity)
        W_end, _ = gradient_descent(
            step_objective,
            W0,
            rule,
            last,
            observer=observer,
            schedule=config.lr_schedule(),
        )
    finally:
        if bar is not None:
            bar.update(bar.total - bar.n)
            bar.close()
    kept[last] = (W_end if to_W is None else to_W(W_end)).detach().cpu().numpy()
    return FiniteTrajectory(steps=wanted, W=np.stack([kept[int(s)] for s in wanted]))


def _keep_entries(theta: Tensor) -> Tensor:
    """``W_fin(t)`` kept as its S_fin entries (1, n_entries): nothing ``K x K``."""
    return theta


def _identity(g: Tensor) -> Tensor:
    """The projection onto S_fin of a gradient that already lies in it."""
    return g
