"""Small TransformerLens models trained on next-token windows (offline, CPU, minutes).

The task is the one of :mod:`attnmech.layer.model`: a window of ``T`` token ids, the label is the
token
that follows, and the loss is the cross-entropy of the model's logits **at the last position**
(the query). :class:`TinyTransformerConfig` spans the variants the theory does and does not
cover: one attention-only layer with no positional information (``positions=False``: ``W_pos``
is zero and frozen), learned positions, an MLP, more layers, more heads, LayerNorm.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidDatasetError, InvalidParameterError
from ._tl import quiet, transformer_lens

__all__ = ["TinyTransformerConfig", "TrainedTransformer", "train_transformer", "build_transformer"]


@dataclass(frozen=True, slots=True)
class TinyTransformerConfig:
    """What :func:`train_transformer` builds and how it trains it."""

    n_layers: int = 1  # transformer blocks
    n_heads: int = 1  # attention heads per block
    d_model: int = 32  # residual width
    d_head: int | None = None  # per-head width (default d_model // n_heads)
    attn_only: bool = True  # no MLP
    d_mlp: int | None = None  # MLP width when attn_only is False (default 4 d_model)
    positions: bool = False  # learned positional embeddings (False: W_pos = 0, frozen)
    normalization: str | None = None  # None or "LN" (TransformerLens normalization_type)
    use_attn_scale: bool = True  # divide q.k by sqrt(d_head)
    num_steps: int = 400  # full-batch Adam steps
    learning_rate: float = 0.01  # Adam step size
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    seed: int = 0  # initialisation seed (torch)
    num_threads: int = 1  # torch threads while training
    extra: dict[str, Any] = field(default_factory=dict)  # more HookedTransformerConfig fields

    def __post_init__(self) -> None:
        for name in ("n_layers", "n_heads", "d_model", "num_steps", "num_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
        if self.d_head is None and self.d_model % self.n_heads:
            raise InvalidParameterError(
                f"d_model={self.d_model} is not a multiple of n_heads={self.n_heads}; give d_head"
            )
        if self.normalization not in (None, "LN"):
            raise InvalidParameterError(
                f"normalization must be None or 'LN', got {self.normalization!r}"
            )
        if not self.learning_rate > 0:
            raise InvalidParameterError(f"learning_rate must be > 0, got {self.learning_rate}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


@dataclass(frozen=True, slots=True, eq=False)
class TrainedTransformer:
    """A trained model with its loss curve and accuracy.

    Attributes
    ----------
    model : transformer_lens.HookedTransformer
    config : TinyTransformerConfig
    losses : ndarray of shape (num_steps,)
        Training cross-entropy at each step.
    train_accuracy : float
        Share of training windows whose label is the argmax of the last position's logits.
    elapsed_s : float
    """

    model: Any
    config: TinyTransformerConfig
    losses: np.ndarray
    train_accuracy: float
    elapsed_s: float

    def accuracy(self, windows: Any, labels: Any) -> float:
        """Share of ``windows`` whose next token is the argmax of the last position's logits."""
        return _accuracy(self.model, np.asarray(windows), np.asarray(labels))


def build_transformer(vocab_size: int, seq_len: int, config: TinyTransformerConfig) -> Any:
    """An untrained HookedTransformer for ``config`` (float32, seeded by ``config.seed``)."""
    tl = transformer_lens()
    import torch

    d_head = config.d_head if config.d_head is not None else config.d_model // config.n_heads
    kwargs: dict[str, Any] = {
        "n_layers": config.n_layers,
        "d_model": config.d_model,
        "d_head": d_head,
        "n_heads": config.n_heads,
        "n_ctx": seq_len,
        "d_vocab": vocab_size,
        "attn_only": config.attn_only,
        "normalization_type": config.normalization,
        "use_attn_scale": config.use_attn_scale,
        "positional_embedding_type": "standard",
        "default_prepend_bos": False,
        "dtype": torch.float32,
        "seed": config.seed,
        "act_fn": None if config.attn_only else "gelu",
    }
    if not config.attn_only:
        kwargs["d_mlp"] = config.d_mlp if config.d_mlp is not None else 4 * config.d_model
    kwargs.update(config.extra)
    with quiet():
        model = tl.HookedTransformer(tl.HookedTransformerConfig(**kwargs))
    if not config.positions:
        with torch.no_grad():
            model.W_pos.zero_()
        model.W_pos.requires_grad_(False)
    return model


def _accuracy(model: Any, windows: np.ndarray, labels: np.ndarray) -> float:
    import torch

    if windows.size == 0:
        return float("nan")
    with torch.no_grad(), quiet():
        logits = model(torch.as_tensor(windows, dtype=torch.long))[:, -1, :]
    return float((logits.argmax(-1).numpy() == labels).mean())


def train_transformer(
    windows: Any, labels: Any, vocab_size: int, config: TinyTransformerConfig | None = None
) -> TrainedTransformer:
    """Train a small transformer to predict ``labels`` from the last position of ``windows``.

    Parameters
    ----------
    windows : array-like of int of shape (n, T)
    labels : array-like of int of shape (n,)
    vocab_size : int
    config : TinyTransformerConfig, optional

    Returns
    -------
    TrainedTransformer
    """
    import torch

    config = TinyTransformerConfig() if config is None else config
    X = np.asarray(windows, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if X.ndim != 2 or X.shape[0] == 0 or y.shape != (X.shape[0],):
        raise InvalidDatasetError(
            f"windows must be (n, T) with n > 0 and labels (n,), got {X.shape} and {y.shape}"
        )
    if X.min() < 0 or max(int(X.max()), int(y.max())) >= vocab_size or y.min() < 0:
        raise InvalidDatasetError(f"token ids must lie in [0, {vocab_size})")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    started = time.perf_counter()
    try:
        model = build_transformer(vocab_size, X.shape[1], config)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        tokens, target = torch.tensor(X), torch.tensor(y)
        losses = np.empty(config.num_steps)
        model.train()
        for step in range(config.num_steps):
            opt.zero_grad(set_to_none=True)
            with quiet():
                logits = model(tokens)[:, -1, :]  # (n, K): the query is the last position
            loss = torch.nn.functional.cross_entropy(logits, target)
            loss.backward()
            opt.step()
            losses[step] = float(loss.detach())
        model.eval()
        accuracy = _accuracy(model, X, y)
    finally:
        torch.set_num_threads(old_threads)
    return TrainedTransformer(
        model=model,
        config=config,
        losses=losses,
        train_accuracy=accuracy,
        elapsed_s=time.perf_counter() - started,
    )
