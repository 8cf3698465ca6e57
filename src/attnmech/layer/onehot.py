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

from ..data.dataset import Dataset
from ..errors import CheckpointError, FileFormatError, InvalidParameterError
from .finite_path import finite_trajectory, log_steps
from .metrics import SubspaceEntries, TrajectoryMetrics
from .model import AttentionObjective, inputs_from_datasets, torch_threads
from .optim import gradient_descent

__all__ = [
    "OneHotLayer",
    "uniform_entries",
    "train_onehot",
    "OneHotRun",
    "ONEHOT_RULES",
    "read_checkpoint",
]

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

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        dataset_fingerprint: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Path:
        """Write the layer to ``path`` (``.npz`` through :func:`attnmech._persist.write`:
        atomic, checksummed, with the fingerprint of the training data and ``meta``)."""
        from .. import _persist

        info = dict(meta or {})
        info.update(
            vocab_size=int(self.vocab_size),
            init=str(self.init),
            seed=int(self.seed),
            rest_sq=float(self.rest_sq).hex(),  # exact
        )
        return _persist.write(
            path,
            "onehot-layer",
            {"keys": self.keys, "values": self.values},
            info,
            dataset_fingerprint=dataset_fingerprint,
            compress=False,
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        dataset_fingerprint: str | None = None,
        hint: str = "write it again",
    ) -> OneHotLayer:
        """Read a layer written by :meth:`save` (checksum verified).

        Parameters
        ----------
        path : path-like
        dataset_fingerprint : str, optional
            The fingerprint of the training data the layer must come from.
        hint : str
            What to do, ending every message.

        Raises
        ------
        FileFormatError
            Unreadable, edited or damaged file, not a one-hot layer, a file of the format before
            checksums, or a layer trained on other data than ``dataset_fingerprint``.
        """
        return cls.from_stored(read_layer_file(path, dataset_fingerprint, hint))

    @classmethod
    def from_stored(cls, stored: Any) -> OneHotLayer:
        """The layer of a checked :class:`attnmech._persist.StoredFile` (see :meth:`load`)."""
        meta, arrays = stored.meta, stored.arrays
        try:
            layer = cls(
                vocab_size=int(meta["vocab_size"]),
                keys=np.asarray(arrays["keys"], dtype=np.int64),
                values=np.asarray(arrays["values"], dtype=np.float64),
                init=str(meta["init"]),
                seed=int(meta["seed"]),
                rest_sq=float.fromhex(str(meta["rest_sq"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(
                f"{stored.path} is not a readable one-hot layer file (meta {exc})",
                path=str(stored.path),
            ) from None
        if layer.keys.shape != layer.values.shape or layer.keys.ndim != 1:
            raise FileFormatError(
                f"{stored.path}: keys and values differ in shape", path=str(stored.path)
            )
        return layer


def read_layer_file(
    path: str | os.PathLike[str],
    dataset_fingerprint: str | None = None,
    hint: str = "write it again",
    kind: str = "onehot-layer",
) -> Any:
    """A layer file through :func:`attnmech._persist.read`, refused (FileFormatError) when it is
    of the format before checksums or was computed from other data than ``dataset_fingerprint``."""
    from .. import _persist

    what = {"onehot-layer": "one-hot layer file"}.get(kind, "layer file")
    stored = _persist.read(path, kind, what=what, hint=hint)
    if stored.legacy:
        raise FileFormatError(
            f"{path} is a {what} of an earlier attnmech (before checksums and fingerprints); "
            f"it cannot be checked: {hint}",
            path=str(path),
        )
    check_fingerprint(stored, dataset_fingerprint, hint)
    return stored


def check_fingerprint(stored: Any, expected: str | None, hint: str) -> None:
    """FileFormatError unless ``stored`` was computed from the data of fingerprint ``expected``
    (None: not checked)."""
    if expected is None:
        return
    got = stored.dataset_fingerprint
    if got != expected:
        raise FileFormatError(
            f"{stored.path} was computed from other training data (fingerprint "
            f"{str(got)[:12]}..., expected {expected[:12]}...: another corpus or config); {hint}",
            path=str(stored.path),
        )


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
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    checkpoint_meta: dict[str, Any] | None = None,
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
    checkpoint_path : path-like, optional
        Where the training state is written every ``checkpoint_every`` steps (through
        :func:`attnmech._persist.write`: atomic, checksummed, with the dataset's fingerprint):
        the pair entries, the optimiser state, the step and the history so far. Training has no
        other random state (the initial entries are drawn from ``config.seed``).
    checkpoint_every : int, default=0
        0: no checkpoint.
    resume : bool, default=False
        Continue from ``checkpoint_path`` when it exists (else start at step 0). The result is
        the same, bit for bit, as an uninterrupted run.
    checkpoint_meta : dict, optional
        JSON values stored in the checkpoint (e.g. the caller's config, which
        :func:`read_checkpoint` returns for the caller to compare).

    Raises
    ------
    InvalidParameterError
        Embeddings not one-hot, or an option this path does not support.
    CheckpointError
        On resume, a checkpoint of other data, other training options or other pairs.
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
        return _train_onehot(
            dataset,
            config,
            theory,
            progress,
            finite_path,
            callback,
            _Checkpointing(
                None if checkpoint_path is None else Path(checkpoint_path),
                int(checkpoint_every),
                bool(resume),
                dict(checkpoint_meta or {}),
            ),
        )


_RESUME_NEUTRAL = ("num_threads", "checkpoint_every")
"""TrainConfig fields a checkpoint may be resumed with other values of."""


@dataclass(frozen=True)
class _Checkpointing:
    path: Path | None
    every: int
    resume: bool
    meta: dict[str, Any]


def _train_dict(config: Any) -> dict[str, Any]:
    import json

    out = {k: v for k, v in config.to_dict().items() if k not in _RESUME_NEUTRAL}
    return dict(json.loads(json.dumps(out, default=str)))


def read_checkpoint(
    path: str | os.PathLike[str], dataset_fingerprint: str | None = None
) -> Any:
    """The :class:`attnmech._persist.StoredFile` of a checkpoint of :func:`train_onehot`
    (checksum verified; CheckpointError when unreadable or of other data)."""
    from .. import _persist

    hint = "delete it, or run again without resuming"
    stored = _persist.read(
        path,
        "text-checkpoint",
        what="training checkpoint",
        required=("theta", "keys"),
        hint=hint,
        error=CheckpointError,
    )
    if dataset_fingerprint is not None and stored.dataset_fingerprint != dataset_fingerprint:
        raise CheckpointError(
            f"checkpoint {path} belongs to a training on other data (another corpus, split or "
            f"vocabulary); {hint}",
            path=str(path),
        )
    return stored


def _save_checkpoint(
    ckpt: _Checkpointing,
    fingerprint: str,
    train: dict[str, Any],
    step: int,
    theta: torch.Tensor,
    state: dict[str, torch.Tensor],
    flat: np.ndarray,
    history: dict[str, list[np.ndarray]],
) -> None:
    from .. import _persist

    assert ckpt.path is not None
    arrays: dict[str, Any] = {"theta": theta.detach().cpu().numpy()[0], "keys": flat}
    arrays.update({f"state/{k}": v.detach().cpu().numpy() for k, v in state.items()})
    arrays.update({f"history/{k}": np.stack(v) for k, v in history.items()})
    meta = {"step": int(step), "train": train, "caller": ckpt.meta}
    _persist.write(
        ckpt.path, "text-checkpoint", arrays, meta, dataset_fingerprint=fingerprint, compress=False
    )


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays saved under ``prefix`` (by :func:`_save_checkpoint`), keyed without it."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def _resume_state(
    ckpt: _Checkpointing, fingerprint: str, train: dict[str, Any], flat: np.ndarray, steps: int
) -> dict[str, Any] | None:
    """The saved state to continue from, None when there is no checkpoint to resume."""
    if not ckpt.resume or ckpt.path is None or not ckpt.path.exists():
        return None
    stored = read_checkpoint(ckpt.path, fingerprint)
    hint = "delete it, or run again without resuming"
    saved_train = stored.meta.get("train")
    if not isinstance(saved_train, dict):
        raise CheckpointError(f"checkpoint {ckpt.path} has no training options; {hint}")
    differ = sorted(k for k in set(train) | set(saved_train) if train.get(k) != saved_train.get(k))
    if differ:
        raise CheckpointError(
            f"checkpoint {ckpt.path} was written by a training with other options: "
            + ", ".join(f"{k} {saved_train.get(k)!r} (now {train.get(k)!r})" for k in differ)
            + f"; {hint}",
            path=str(ckpt.path),
        )
    step = stored.meta.get("step")
    theta = stored.arrays["theta"]
    if (
        not isinstance(step, int)
        or not 0 <= step <= steps
        or not np.array_equal(stored.arrays["keys"], flat)
        or theta.shape != flat.shape
    ):
        raise CheckpointError(
            f"checkpoint {ckpt.path} does not fit this training (step {step!r}, "
            f"{theta.size} entries for {flat.size} pairs); {hint}",
            path=str(ckpt.path),
        )
    history = _prefixed(stored.arrays, "history/")
    keep = history["step"] < step if "step" in history else slice(0)
    return {
        "step": step,
        "theta": theta,
        "state": _prefixed(stored.arrays, "state/"),
        "history": {k: list(v[keep]) for k, v in history.items()},
    }


def _train_onehot(
    dataset: Dataset,
    config: Any,
    theory: Any,
    progress: bool,
    finite_path: bool,
    callback: Any,
    ckpt: _Checkpointing,
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
    fingerprint = dataset.fingerprint() if ckpt.path is not None else ""
    train_dict = _train_dict(config) if ckpt.path is not None else {}
    saved = _resume_state(ckpt, fingerprint, train_dict, flat, config.steps)
    start_step, state = 0, None
    if saved is not None:
        start_step = saved["step"]
        history = saved["history"]
        state = {
            k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in saved["state"].items()
        }

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

        bar = tqdm(
            total=config.steps, initial=start_step, desc="train", unit="step", mininterval=0.5
        )
    last_bar = start_step

    def observer(step: int, theta: Any, loss: Any, grad: Any, state: Any) -> bool:
        nonlocal stopped_at, last_bar
        if step in log_set and record(step, theta, loss, grad):
            stopped_at = step
            return True
        due = ckpt.every > 0 and step % ckpt.every == 0 and step > start_step
        if ckpt.path is not None and due:
            _save_checkpoint(ckpt, fingerprint, train_dict, step, theta, state, flat, history)
        if bar is not None and step - last_bar >= 64:
            bar.update(step - last_bar)
            last_bar = step
        return False

    theta = torch.as_tensor(
        (values0 if saved is None else saved["theta"])[None], dtype=dtype, device=device
    )
    try:
        theta, _ = gradient_descent(
            objective_on_pairs,
            theta,
            step_rule,
            config.steps,
            start_step=start_step,
            state=state,
            observer=observer,
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
