"""One-hot layers at any vocabulary size: ``W`` as its (token, query) entries.

With one-hot embeddings the score of token ``t`` under query ``q`` is the entry ``W[t, q]``, and
only the entries of (token, query) pairs that occur in the training windows receive a gradient;
every other entry keeps its initial value. :func:`train_onehot` trains on those entries alone
and returns a :class:`OneHotLayer`, which stores them and recomputes any other entry from the
initialisation, so that nothing ``K x K`` is built at any step (initialisation, training, the
theory metrics, ``W_fin(t)``, evaluation or saving). Its numbers are those of
:func:`attnmech.layer.training.train` on the dense ``W`` (the same initial entries, the same
steps), which is tested.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path
from ..data.dataset import Dataset
from ..errors import FileFormatError, InvalidParameterError
from .finite_path import finite_trajectory, log_steps
from .metrics import SubspaceEntries, TrajectoryMetrics
from .model import AttentionObjective, inputs_from_datasets, torch_threads
from .optim import gradient_descent

__all__ = ["OneHotLayer", "uniform_entries", "train_onehot", "OneHotRun", "ONEHOT_RULES"]

ONEHOT_RULES = frozenset({"gd", "ngd", "adam", "polyak", "polyak-capped", "split-ngd"})
"""Step rules that leave an entry with zero gradient where it is (so training on the pair
entries alone equals training the dense ``W``)."""

_CHUNK = 1 << 22  # uniform draws generated at a time (32 MiB)


def uniform_entries(
    seed: int, vocab_size: int, keys: np.ndarray, bound: float
) -> tuple[np.ndarray, float]:
    """Entries ``keys`` (flat ``token * K + query``) of ``rng.uniform(-bound, bound, (1, K, K))``
    with ``rng = np.random.default_rng(seed)``, generated in chunks (never ``K x K`` at once),
    and the sum of squares of all ``K^2`` entries.

    The values equal those of the one-shot draw (the generator's stream is the same in chunks).
    """
    keys = np.asarray(keys, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    out = np.empty(keys.size)
    rng = np.random.default_rng(seed)
    total = vocab_size * vocab_size
    sq = 0.0
    for lo in range(0, total, _CHUNK):
        hi = min(lo + _CHUNK, total)
        block = rng.uniform(-bound, bound, size=hi - lo)
        sq += float(block @ block)
        a, b = np.searchsorted(sorted_keys, [lo, hi])
        out[order[a:b]] = block[sorted_keys[a:b] - lo]
        del block  # one chunk alive at a time
    return out, sq


_FEW = 20_000


def _uniform_at(seed: int, keys: np.ndarray, bound: float) -> np.ndarray:
    """Entries ``keys`` of the uniform draw of :func:`uniform_entries`, one by one: the
    generator (PCG64, one 64-bit output per double) advanced to each entry."""
    bitgen = np.random.PCG64(seed)
    start = bitgen.state
    out = np.empty(keys.size)
    for i, key in enumerate(keys.tolist()):
        bitgen.state = start
        bitgen.advance(int(key))
        out[i] = np.random.Generator(bitgen).uniform(-bound, bound)
    return out


@dataclass(frozen=True, eq=False)
class OneHotLayer:
    """A one-hot layer ``W`` (K x K) kept as stored entries plus its initialisation.

    Attributes
    ----------
    vocab_size : int
    keys : ndarray of int64
        Sorted flat indices ``token * K + query`` of the stored entries.
    values : ndarray of float64
        ``W[token, query]`` there.
    init : {"uniform", "zero"}
        Every entry not stored is its initial value: 0, or the ``uniform`` draw of
        :func:`attnmech.layer.training.train` (``U(-1/sqrt(K), 1/sqrt(K))`` from ``seed``).
    seed : int
    rest_sq : float
        Sum of squares of the entries not stored (for ``||W||_F``).
    """

    vocab_size: int
    keys: np.ndarray
    values: np.ndarray
    init: str = "zero"
    seed: int = 0
    rest_sq: float = 0.0

    @property
    def bound(self) -> float:
        """Half-width of the uniform initialisation."""
        return 1.0 / math.sqrt(self.vocab_size)

    @property
    def norm(self) -> float:
        """``||W||_F``."""
        return math.sqrt(self.rest_sq + float(self.values @ self.values))

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return int(self.keys.nbytes + self.values.nbytes)

    def initial(self, keys: np.ndarray) -> np.ndarray:
        """Initial values of the flat entries ``keys``."""
        keys = np.asarray(keys, dtype=np.int64)
        if self.init == "zero" or keys.size == 0:
            return np.zeros(keys.shape)
        flat = keys.ravel()
        if flat.size <= _FEW:  # jump the generator to each entry (O(log K^2) per entry)
            values = _uniform_at(self.seed, flat, self.bound)
        else:
            values, _ = uniform_entries(self.seed, self.vocab_size, flat, self.bound)
        return values.reshape(keys.shape)

    def entries(self, keys: np.ndarray) -> np.ndarray:
        """``W.reshape(-1)[keys]`` (stored entries, else the initial value)."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.empty(keys.shape)
        if self.keys.size:
            pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
            hit = self.keys[pos] == keys
        else:
            pos = np.zeros(keys.shape, dtype=np.int64)
            hit = np.zeros(keys.shape, dtype=bool)
        out[hit] = self.values[pos[hit]]
        miss = ~hit
        if miss.any():
            out[miss] = self.initial(keys[miss])
        return out

    def scores(self, tokens: Any, queries: Any) -> np.ndarray:
        """``W[tokens, queries]`` (broadcast like numpy)."""
        t, q = np.broadcast_arrays(
            np.asarray(tokens, dtype=np.int64), np.asarray(queries, dtype=np.int64)
        )
        return self.entries(t * self.vocab_size + q)

    def with_entries(self, keys: np.ndarray) -> OneHotLayer:
        """The same layer with ``keys`` stored too (their initial values), for fast lookups."""
        keys = np.unique(np.asarray(keys, dtype=np.int64))
        new = np.setdiff1d(keys, self.keys, assume_unique=True)
        if new.size == 0:
            return self
        init = self.initial(new)
        all_keys = np.concatenate([self.keys, new])
        order = np.argsort(all_keys)
        rest = self.rest_sq - float(init @ init)
        return replace(
            self,
            keys=all_keys[order],
            values=np.concatenate([self.values, init])[order],
            rest_sq=max(rest, 0.0),
        )

    def to_dense(self, *, limit_bytes: int = 1 << 30) -> np.ndarray:
        """The dense ``W`` (K, K); refused above ``limit_bytes``."""
        K = self.vocab_size
        if 8 * K * K > limit_bytes:
            raise InvalidParameterError(
                f"a dense {K} x {K} W needs {8 * K * K / 2**30:.3g} GiB (limit "
                f"{limit_bytes / 2**30:.3g} GiB); read entries with .scores(tokens, queries)"
            )
        if self.init == "zero":
            W = np.zeros(K * K)
        else:
            W = np.random.default_rng(self.seed).uniform(-self.bound, self.bound, size=K * K)
        W[self.keys] = self.values
        return W.reshape(K, K)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the layer to ``path`` (``.npz``, atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    format=np.array("attnmech.onehot_layer/1"),
                    vocab_size=np.array(self.vocab_size),
                    keys=self.keys,
                    values=self.values,
                    init=np.array(self.init),
                    seed=np.array(self.seed),
                    rest_sq=np.array(self.rest_sq),
                )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OneHotLayer:
        """Read a layer written by :meth:`save`.

        Raises
        ------
        FileFormatError
            Unreadable file or not a one-hot layer.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != "attnmech.onehot_layer/1":
                    raise KeyError("format")
                return cls(
                    vocab_size=int(data["vocab_size"]),
                    keys=np.asarray(data["keys"], dtype=np.int64),
                    values=np.asarray(data["values"], dtype=np.float64),
                    init=str(data["init"]),
                    seed=int(data["seed"]),
                    rest_sq=float(data["rest_sq"]),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise FileFormatError(
                f"{path} is not a readable one-hot layer file ({exc})", path=str(path)
            ) from None


@dataclass(frozen=True, eq=False)
class OneHotRun:
    """What :func:`train_onehot` returns: the layer, the metric history, the steps run."""

    layer: OneHotLayer
    history: dict[str, np.ndarray]
    num_steps: int
    elapsed_s: float


def train_onehot(
    dataset: Dataset,
    config: Any,
    *,
    theory: Any = None,
    progress: bool = False,
    finite_path: bool = True,
    callback: Any = None,
) -> OneHotRun:
    """Train the one-hot layer of ``dataset`` on its pair entries alone (see the module doc).

    Parameters
    ----------
    dataset : Dataset
        One-hot embeddings.
    config : TrainConfig
        ``optimizer`` one of :data:`ONEHOT_RULES`, combined parameterization, one trial,
        ``init`` ``"uniform"`` or ``"zero"``.
    theory : Theory, optional
        A token-space theory: the history then holds the theory metrics.
    progress : bool
        A progress bar on stderr.
    finite_path : bool
        With a theory, also train ``W_fin(t)`` on the ``S_fin`` entries (``fin_gap_traj``).
    callback : callable, optional
        ``callback(step, metrics)`` at every logged step; True stops.

    Raises
    ------
    InvalidParameterError
        Embeddings not one-hot, or an option this path does not support.
    """
    if not dataset.is_onehot:
        raise InvalidParameterError("train_onehot needs a dataset with one-hot embeddings")
    if config.optimizer not in ONEHOT_RULES:
        raise InvalidParameterError(
            f"train_onehot supports the optimizers {sorted(ONEHOT_RULES)} (rules that leave a "
            f"zero-gradient entry in place), got {config.optimizer!r}"
        )
    if config.model.parameterization != "combined" or config.trials != 1:
        raise InvalidParameterError("train_onehot needs the combined parameterization, one trial")
    if not isinstance(config.init, str) or config.init not in ("uniform", "zero"):
        raise InvalidParameterError("train_onehot needs init 'uniform' or 'zero'")
    work = dataset.n_samples * dataset.max_length
    with torch_threads(config.num_threads, work):
        return _train_onehot(dataset, config, theory, progress, finite_path, callback)


def _train_onehot(
    dataset: Dataset,
    config: Any,
    theory: Any,
    progress: bool,
    finite_path: bool,
    callback: Any,
) -> OneHotRun:
    started = time.perf_counter()
    model_config = config.model
    dtype, device = model_config.torch_dtype, model_config.device
    inputs = inputs_from_datasets(dataset, dtype=dtype, device=device, identity=False)
    objective = AttentionObjective(inputs, model_config)
    K = inputs.vocab_size
    assert inputs.pair_flat is not None
    flat = inputs.pair_flat.cpu().numpy()
    if config.init == "zero":
        values0, total_sq = np.zeros(flat.size), 0.0
    else:
        values0, total_sq = uniform_entries(config.seed, K, flat, 1.0 / math.sqrt(K))
    rest_sq = max(total_sq - float(values0 @ values0), 0.0)
    step_rule = config.step_rule()
    if hasattr(step_rule, "bind_projection"):
        if theory is None:
            raise InvalidParameterError(
                f"optimizer {config.optimizer!r} needs the theory's S_fin: pass theory="
            )
        step_rule.bind_projection(pair_projection(theory, flat, K, dtype, device))
    logged = log_steps(config.steps, config.log_every)
    log_set = set(logged.tolist())

    recorder = None
    fin_by_step: dict[int, Any] = {}
    if theory is not None:
        recorder = TrajectoryMetrics(inputs, [dataset], [theory], model_config)
        if recorder.tables is None:
            raise InvalidParameterError("train_onehot needs a token-space theory (solve(dataset))")
        recorder.use_pair_entries(None, off_sq=rest_sq)
        if finite_path and theory.finite.dimension > 0:
            traj = finite_trajectory(
                [dataset], [theory], config, steps=logged, progress=progress, as_entries=True
            )
            fin_by_step = {int(s): SubspaceEntries(traj.W[i][0]) for i, s in enumerate(traj.steps)}

    def objective_on_pairs(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        risk, dpair = objective.pair_gradient(theta[0])
        return risk, dpair[None]

    history: dict[str, list[np.ndarray]] = {}
    stopped_at: int | None = None

    def record(step: int, theta: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor) -> bool:
        theta_np = theta.detach().cpu().numpy()
        metrics = {
            "loss": loss.detach().cpu().numpy(),
            "norm": np.array([math.sqrt(rest_sq + float(theta_np[0] @ theta_np[0]))]),
            "grad_norm": torch.linalg.vector_norm(grad.flatten(1), dim=1).cpu().numpy(),
        }
        if recorder is not None:
            metrics.update(recorder(theta, fin_by_step.get(step)))
        history.setdefault("step", []).append(np.array(step))
        for key, value in metrics.items():
            history.setdefault(key, []).append(value)
        return bool(callback(step, metrics)) if callback is not None else False

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="train", unit="step", mininterval=0.5)
    last_bar = 0

    def observer(step: int, theta: Any, loss: Any, grad: Any, state: Any) -> bool:
        nonlocal stopped_at, last_bar
        if step in log_set and record(step, theta, loss, grad):
            stopped_at = step
            return True
        if bar is not None and step - last_bar >= 64:
            bar.update(step - last_bar)
            last_bar = step
        return False

    theta = torch.as_tensor(values0[None], dtype=dtype, device=device)
    try:
        theta, _ = gradient_descent(
            objective_on_pairs, theta, step_rule, config.steps, observer=observer
        )
        if stopped_at is None:
            loss, grad = objective_on_pairs(theta)
            record(config.steps, theta, loss, grad)
    finally:
        if bar is not None:
            bar.update(max((stopped_at or config.steps) - last_bar, 0))
            bar.close()
    values = theta.detach().cpu().numpy().astype(np.float64)[0]
    order = np.argsort(flat)
    layer = OneHotLayer(
        vocab_size=K,
        keys=flat[order].astype(np.int64),
        values=values[order],
        init=config.init,
        seed=int(config.seed),
        rest_sq=rest_sq,
    )
    hist = {k: np.stack(v) for k, v in history.items()}
    hist = {k: (v[:, 0] if v.ndim == 2 else v) for k, v in hist.items()}
    return OneHotRun(
        layer=layer,
        history=hist,
        num_steps=config.steps if stopped_at is None else stopped_at,
        elapsed_s=time.perf_counter() - started,
    )


def pair_projection(theory: Any, flat: np.ndarray, K: int, dtype: Any, device: Any) -> Any:
    """The orthogonal projection onto ``S_fin`` of a (1, P) vector of pair entries.

    ``S_fin`` (one-hot, token space) is spanned by ``(e_i - e_j) e_q^T`` over tokens of one SCC
    of query ``q``'s graph; the projection subtracts, in each (query, SCC) group, the group's
    mean from its entries and sets every other entry to 0.
    """
    sub = theory.finite.subspace
    P = flat.size
    group = np.full(P, -1, dtype=np.int64)
    n_groups = 0
    if sub.dimension > 0:
        var_flat = np.asarray(sub._token, dtype=np.int64) * K + np.asarray(sub._query)
        pos = np.searchsorted(flat, var_flat)
        if not np.array_equal(flat[np.minimum(pos, P - 1)], var_flat):
            raise InvalidParameterError("the theory's S_fin holds pairs the data does not have")
        group[pos] = sub._group
        n_groups = int(np.asarray(sub._group_size).size)
    members = torch.as_tensor(np.flatnonzero(group >= 0), device=device)
    member_group = torch.as_tensor(group[group >= 0], device=device)
    sizes = torch.as_tensor(
        np.bincount(group[group >= 0], minlength=n_groups), dtype=dtype, device=device
    )

    def project(g: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(g)
        if members.numel() == 0:
            return out
        values = g[0, members]
        means = torch.zeros(n_groups, dtype=g.dtype, device=g.device)
        means.index_add_(0, member_group, values)
        out[0, members] = values - (means / sizes)[member_group]
        return out

    return project
