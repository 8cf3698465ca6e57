"""Single-layer self-attention for next-token prediction (docs/theory.md#model-and-loss and
#local-convergence).

The model has one matrix ``W`` of shape ``(d, d)``. The query is the last token only (or, for the
reduced data of docs/theory.md#the-finite-part, an explicit query token ``x_q``), and the attention
over the ``T`` positions of a sequence ``X`` is ``s = softmax(X W x_q)`` (no scaling, no positional
encoding, value = identity). Two heads turn ``s`` into a next-token distribution:

- ``iden``: ``p_j = sum of s_t over positions with x_t = e_j`` (the theory's head);
- ``gen``: logits ``z = E X^T s`` and ``p = softmax(z)``.

Every loss is a function of the log-probability of the label ``lp = log p_y``: log-loss / cross
entropy ``-lp``, squared ``(1 - p_y)^2`` and correlation ``-p_y``. The empirical risk is the
(weighted) mean over samples.

Convention for ``W``
--------------------
``W`` scores a key against the query: ``score_t = x_t^T W x_q``. In the usual notation with query
and key maps ``W_Q, W_K`` of shape ``(d, r)`` (query ``q = W_Q^T x_q``, key ``k_t = W_K^T x_t``),
``score_t = q^T k_t = x_q^T W_Q W_K^T x_t = x_t^T (W_K W_Q^T) x_q``, so

    W = W_K W_Q^T = (W_Q W_K^T)^T,

the transpose of TransformerLens's ``QK = W_Q @ W_K.T``. The ``factorized`` parameterization
trains ``W_K`` and ``W_Q`` with ``W = W_K W_Q^T``.

Layout and speed
----------------
Everything carries a leading trials dimension ``B``: ``W`` is ``(B, d, d)``, embeddings
``(B, K, d)``, tokens ``(B, n, T)``, so several independent trials (different datasets and/or
initialisations) run as one batched computation with no Python loop over samples or trials.
Scores only depend on ``W`` through the table ``u = e_j^T W e_q`` over the (token, query) pairs
that occur, so a step computes that table once, gathers it to positions, and the gradient is
pushed back the same way (analytic gradients; they are checked against autograd in the tests).

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

import abc
import contextlib
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validation import POSITIVE_INT, check_params
from .._choices import DTYPE_NAMES, HEAD_NAMES, LOSS_NAMES, PARAMETERIZATION_NAMES
from ..data.dataset import Dataset, OneHotEmbeddings
from ..errors import InvalidDatasetError, InvalidParameterError
from .._validation import ArrayLike, Interval, validate_params

__all__ = [
    "AttentionConfig",
    "AttentionInputs",
    "AttentionObjective",
    "SingleLayerAttention",
    "HEADS",
    "LOSSES",
    "PARAMETERIZATIONS",
    "Head",
    "Loss",
    "inputs_from_datasets",
    "inputs_from_arrays",
    "attention_scores",
    "pair_scores",
    "run_with_cache",
    "torch_threads",
    "datasets_list",
]

_NEG_INF = -math.inf
_DTYPES = dict(zip(DTYPE_NAMES, (torch.float64, torch.float32), strict=True))
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


def datasets_list(data: Dataset | Sequence[Dataset], caller: str = "train") -> list[Dataset]:
    """``data`` as a non-empty list of datasets, or InvalidDatasetError naming ``caller``."""
    if isinstance(data, Dataset):
        items = [data]
    elif isinstance(data, (list, tuple)):
        items = list(data)
    else:
        items = []
    if not items or not all(isinstance(ds, Dataset) for ds in items):
        raise InvalidDatasetError(
            f"{caller} expects an attnmech.Dataset or a non-empty list of them, got "
            f"{type(data).__name__}"
        )
    return items


# ---------------------------------------------------------------------------------- losses
@dataclass(frozen=True, slots=True)
class Loss:
    """A per-sample loss written as a function of ``lp = log p_y``.

    ``value``, ``slope`` and ``curvature`` are the function and its first two derivatives with
    respect to ``lp``; the chain rule through the head does the rest.
    """

    name: str
    value: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor], Tensor]
    curvature: Callable[[Tensor], Tensor]


def _log_value(lp: Tensor) -> Tensor:
    return -lp


def _log_slope(lp: Tensor) -> Tensor:
    return torch.full_like(lp, -1.0)


def _log_curvature(lp: Tensor) -> Tensor:
    return torch.zeros_like(lp)


def _squared_value(lp: Tensor) -> Tensor:
    return torch.expm1(lp).square()  # (1 - p)^2, accurate when p is close to 1


def _squared_slope(lp: Tensor) -> Tensor:
    return 2.0 * torch.expm1(lp) * torch.exp(lp)  # -2 (1 - p) p


def _squared_curvature(lp: Tensor) -> Tensor:
    p = torch.exp(lp)
    return 2.0 * p * (2.0 * p - 1.0)


def _correlation_value(lp: Tensor) -> Tensor:
    return -torch.exp(lp)


def _exp_value(lp: Tensor) -> Tensor:
    # 1 / p - 1 = sum over the other tokens of exp(s_j - s_y)-type ratios: the exponential loss
    return torch.expm1(-lp)


def _exp_slope(lp: Tensor) -> Tensor:
    return -torch.exp(-lp)


def _exp_curvature(lp: Tensor) -> Tensor:
    return torch.exp(-lp)


_LOG = Loss("log", _log_value, _log_slope, _log_curvature)
LOSSES: dict[str, Loss] = dict(
    zip(
        LOSS_NAMES,
        (
            _LOG,
            Loss("ce", _log_value, _log_slope, _log_curvature),
            Loss("squared", _squared_value, _squared_slope, _squared_curvature),
            Loss("correlation", _correlation_value, _correlation_value, _correlation_value),
            Loss("exp", _exp_value, _exp_slope, _exp_curvature),
        ),
        strict=True,
    )
)
"""Losses by name. ``"log"`` and ``"ce"`` are the same function ``-log p_y`` of the head's
distribution: with the ``iden`` head it is the log-loss, with the ``gen`` head the cross-entropy
on the logits. ``"exp"`` is the exponential loss ``1 / p_y - 1 = exp(-log p_y) - 1``: with the
``iden`` head, ``sum_{t: x_t != y} e^{s_t} / sum_{t: x_t = y} e^{s_t}`` for attention scores ``s``,
the multiclass exponential loss whose logarithm ``log(1 + .)`` is the log-loss (its infimum is 0 on
separable data)."""


# ---------------------------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True, eq=False)
class AttentionInputs:
    """A batch of trials laid out for the model (build it with :func:`inputs_from_datasets` or
    :func:`inputs_from_arrays`).

    Trials with fewer samples are filled up to ``n`` with copies of their first sample that carry
    weight 0; shorter sequences are right-padded with -1.

    Attributes
    ----------
    tokens : Tensor of shape (B, n, T), int64
        Token ids, -1 on padding.
    mask : Tensor of shape (B, n, T), bool
        True where a token sits.
    queries : Tensor of shape (B, n), int64
        Query token of each sample (its last token for ordinary data).
    labels : Tensor of shape (B, n), int64
    weights : Tensor of shape (B, n)
        Weight of each sample in the empirical risk (``1 / n_samples`` by default; 0 on filler).
    embeddings : Tensor of shape (B, K, d)
        For one-hot data (``onehot``) an expanded view of one ``K x K`` identity (no copy per
        trial); the scores then never go through it.
    label_mask, other_mask : Tensor of shape (B, n, T), bool
        Positions holding the label, and the other valid positions.
    position_pair : Tensor of shape (B, n, T), int64
        Index of each position's (trial, token, query) pair in the pair arrays; padding points
        one past the last pair (a slot that holds the score -inf).
    other_pair : Tensor of shape (B, n, T), int64
        ``position_pair`` with the label's positions also sent to the -inf slot.
    label_pair : Tensor of shape (B, n), int64
        Pair of (label, query) of each sample (the -inf slot if the label is absent).
    label_count : Tensor of shape (B, n)
        How many positions hold the label.
    pair_token_row, pair_query_row : Tensor of shape (P,), int64
        ``b * K + token`` and ``b * K + query`` of each pair.
    pair_query_embedding : Tensor of shape (P, d)
        ``embeddings[b, query]`` of each pair (shape (0, d) for one-hot data).
    n_real : ndarray of shape (B,)
        Number of real (non-filler) samples per trial.
    onehot : bool
        True when every trial has implicit one-hot embeddings: ``W`` is the score table, scores
        are gathered as ``W[b, token, query]`` and gradients scattered back (``pair_flat``).
    pair_flat : Tensor of shape (P,), int64, or None
        ``(b * K + token) * K + query`` of each pair: its index in ``W.reshape(-1)`` (one-hot).
    """

    tokens: Tensor
    mask: Tensor
    queries: Tensor
    labels: Tensor
    weights: Tensor
    embeddings: Tensor
    label_mask: Tensor
    other_mask: Tensor
    position_pair: Tensor
    other_pair: Tensor
    label_pair: Tensor
    label_count: Tensor
    pair_token_row: Tensor
    pair_query_row: Tensor
    pair_query_embedding: Tensor
    n_real: np.ndarray
    onehot: bool = False
    pair_flat: Tensor | None = None

    @property
    def num_trials(self) -> int:
        """Number of trials B."""
        return int(self.tokens.shape[0])

    @property
    def n_samples(self) -> int:
        """Number of samples per trial n (filler samples included)."""
        return int(self.tokens.shape[1])

    @property
    def seq_len(self) -> int:
        """Padded sequence length T."""
        return int(self.tokens.shape[2])

    @property
    def vocab_size(self) -> int:
        """Vocabulary size K."""
        return int(self.embeddings.shape[1])

    @property
    def embedding_dim(self) -> int:
        """Embedding dimension d."""
        return int(self.embeddings.shape[2])

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the embeddings."""
        return self.embeddings.dtype

    @property
    def device(self) -> torch.device:
        """Device of the embeddings."""
        return self.embeddings.device

    def token_embeddings(self) -> Tensor:
        """Tensor of shape (B, n, T, d): the embedding of every position (zeros on padding)."""
        _check_identity(self)
        B, K, d = self.embeddings.shape
        rows = self.tokens.clamp(min=0) + K * torch.arange(B, device=self.device)[:, None, None]
        X = self.embeddings.reshape(B * K, d)[rows]  # (B, n, T, d)
        return X * self.mask[..., None]

    def fingerprint(self) -> bytes:
        """Bytes that identify the data (used to match checkpoints to their run)."""
        parts = [self.tokens, self.queries, self.labels, self.weights]
        if not self.onehot:
            parts.append(self.embeddings)
        head = f"onehot:{self.vocab_size}".encode() if self.onehot else b""
        return head + b"".join(p.detach().cpu().numpy().tobytes() for p in parts)


def _resolve_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype)]
    except KeyError:
        raise InvalidParameterError(
            f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}"
        ) from None


def inputs_from_arrays(
    tokens: Any,
    queries: Any,
    labels: Any,
    embeddings: Any,
    *,
    weights: Any = None,
    dtype: Any = torch.float64,
    device: Any = "cpu",
) -> AttentionInputs:
    """Lay out padded arrays for the model, with or without a leading trials dimension.

    Parameters
    ----------
    tokens : array-like of int of shape (n, T) or (B, n, T)
        Token ids, right-padded with -1.
    queries : array-like of int of shape (n,) or (B, n)
        Query token of each sample (the last token for ordinary data).
    labels : array-like of int of shape (n,) or (B, n)
    embeddings : array-like of shape (K, d) or (B, K, d), or OneHotEmbeddings
        Shared by all trials when 2-D. :class:`~attnmech.data.OneHotEmbeddings` takes the
        one-hot path (no identity matrix multiplies anything).
    weights : array-like of shape (n,) or (B, n), optional
        Sample weights in the risk; default ``1 / n``. A weight-0 sample does not count.
    dtype, device : torch dtype (or "float64"/"float32") and device

    Returns
    -------
    AttentionInputs
    """
    tok = np.asarray(tokens, dtype=np.int64)
    batched = tok.ndim == 3
    if tok.ndim not in (2, 3):
        raise InvalidDatasetError(f"tokens must have shape (n, T) or (B, n, T), got {tok.shape}")
    tok = tok if batched else tok[None]
    B = tok.shape[0]
    q = np.broadcast_to(np.asarray(queries, dtype=np.int64), tok.shape[:2])
    y = np.broadcast_to(np.asarray(labels, dtype=np.int64), tok.shape[:2])
    if isinstance(embeddings, OneHotEmbeddings):
        E: Any = [embeddings] * B
    else:
        E = np.asarray(embeddings, dtype=np.float64)
        E = np.broadcast_to(E, (B, *E.shape[-2:])) if E.ndim == 2 else E
    if weights is None:
        w = np.full(tok.shape[:2], 1.0 / tok.shape[1])
    else:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), tok.shape[:2])
    trials = [(tok[b], q[b], y[b], E[b], w[b]) for b in range(B)]
    return _stack_trials(trials, dtype=_resolve_dtype(dtype), device=device)


def inputs_from_datasets(
    datasets: Dataset | Sequence[Dataset],
    *,
    dtype: Any = torch.float64,
    device: Any = "cpu",
    identity: bool = True,
) -> AttentionInputs:
    """Lay out one dataset (B = 1) or a list of datasets (one trial each) for the model.

    Queries are the last tokens and every sample has weight ``1 / n_samples`` of its dataset.
    When every dataset has one-hot embeddings the inputs take the one-hot path (``onehot``).
    ``identity=False`` keeps no ``K x K`` identity for one-hot data at any ``K`` (for callers
    that use the pair entries only: ``pair_scores``, ``pair_gradient``).
    """
    if isinstance(datasets, Dataset):
        items = [datasets]
    elif isinstance(datasets, (list, tuple)):
        items = list(datasets)
    else:
        items = []
    if not items or not all(isinstance(ds, Dataset) for ds in items):
        raise InvalidDatasetError(
            "expected an attnmech.Dataset or a non-empty list of them, got "
            f"{type(datasets).__name__}"
        )
    trials = [
        (
            ds.padded(),
            ds.last_tokens,
            ds.labels,
            ds.embedding_table if ds.is_onehot else ds.embeddings,
            np.full(ds.n_samples, 1.0 / ds.n_samples),
        )
        for ds in items
    ]
    return _stack_trials(trials, dtype=_resolve_dtype(dtype), device=device, identity=identity)


def _stack_trials(
    trials: list[tuple[np.ndarray, np.ndarray, np.ndarray, Any, np.ndarray]],
    *,
    dtype: torch.dtype,
    device: Any,
    identity: bool = True,
) -> AttentionInputs:
    """Pad trials to a common (n, T), fill missing samples with weight-0 copies, build pairs.

    A trial's embeddings may be a :class:`OneHotEmbeddings`; when all are, the inputs take the
    one-hot path (scores gathered from ``W``, no identity matrix in any product).
    """
    onehot = all(isinstance(t[3], OneHotEmbeddings) for t in trials)
    shapes = {tuple(E.shape) for *_, E, _ in trials}
    if len(shapes) != 1:
        raise InvalidDatasetError(
            "all trials must share vocab_size and embedding_dim, got embedding shapes "
            f"{sorted(shapes)}"
        )
    K, d = next(iter(shapes))
    B = len(trials)
    n = max(max(t[0].shape[0] for t in trials), 1)
    T = max(max((t[0].shape[1] if t[0].size else 1) for t in trials), 1)
    tokens = np.full((B, n, T), -1, dtype=np.int64)
    queries = np.zeros((B, n), dtype=np.int64)
    labels = np.zeros((B, n), dtype=np.int64)
    weights = np.zeros((B, n), dtype=np.float64)
    n_real = np.zeros(B, dtype=np.int64)
    for b, (tok, q, y, _E, w) in enumerate(trials):
        m = tok.shape[0]
        n_real[b] = m
        if m == 0:  # an empty trial (e.g. no reduced samples): one weight-0 dummy sample
            tokens[b, :, 0] = 0
            continue
        tokens[b, :m, : tok.shape[1]] = tok
        queries[b, :m], labels[b, :m], weights[b, :m] = q, y, w
        tokens[b, m:], queries[b, m:], labels[b, m:] = tokens[b, 0], q[0], y[0]
    mask = tokens >= 0
    if ((tokens >= K) | ((tokens < 0) & mask)).any() or (queries >= K).any() or (labels >= K).any():
        raise InvalidDatasetError(f"token ids must lie in [0, {K}) (vocab_size)")
    if (~mask[:, :, 0]).any():
        raise InvalidDatasetError("every sequence needs at least one token (pad on the right)")
    trial_of = np.arange(B)[:, None, None]
    keys = ((trial_of * K + tokens) * K + queries[:, :, None])[mask]
    pair_keys, inverse = np.unique(keys, return_inverse=True)
    position_pair = np.full((B, n, T), pair_keys.size, dtype=np.int64)  # padding -> extra slot
    position_pair[mask] = inverse.reshape(-1)
    label_mask = mask & (tokens == labels[:, :, None])
    other_pair = np.where(label_mask, pair_keys.size, position_pair)
    label_keys = (np.arange(B)[:, None] * K + labels) * K + queries
    label_pair = np.minimum(np.searchsorted(pair_keys, label_keys), max(pair_keys.size - 1, 0))
    label_pair = np.where(pair_keys[label_pair] == label_keys, label_pair, pair_keys.size)
    pair_token_row = pair_keys // K  # b * K + token
    pair_query_row = (pair_keys // (K * K)) * K + pair_keys % K  # b * K + query

    def as_tensor(array: np.ndarray, kind: torch.dtype | None = None) -> Tensor:
        return torch.as_tensor(np.array(array, order="C", copy=True), dtype=kind, device=device)

    query_row_t = as_tensor(pair_query_row)
    pair_flat = None
    if onehot:  # one identity, viewed B times; the scores are read from W directly
        if identity and K <= _ONEHOT_IDENTITY_MAX:
            E_t = torch.eye(K, dtype=dtype, device=device).expand(B, K, d)
        else:  # no K x K identity at language-sized K: a zero-stride stand-in of its shape
            E_t = torch.zeros((), dtype=dtype, device=device).expand(B, K, d)
        pair_query_embedding = torch.zeros((0, d), dtype=dtype, device=device)
        pair_flat = as_tensor(pair_token_row * K + pair_keys % K)  # (b*K + token)*K + query
    else:
        E = np.stack([np.asarray(t[3], dtype=np.float64) for t in trials])  # (B, K, d)
        E_t = as_tensor(E, dtype)
        pair_query_embedding = E_t.reshape(B * K, d)[query_row_t].contiguous()
    return AttentionInputs(
        tokens=as_tensor(tokens),
        mask=as_tensor(mask),
        queries=as_tensor(queries),
        labels=as_tensor(labels),
        weights=as_tensor(weights, dtype),
        embeddings=E_t,
        label_mask=as_tensor(label_mask),
        other_mask=as_tensor(mask & ~label_mask),
        position_pair=as_tensor(position_pair),
        other_pair=as_tensor(other_pair),
        label_pair=as_tensor(label_pair),
        label_count=as_tensor(label_mask.sum(-1), dtype),
        pair_token_row=as_tensor(pair_token_row),
        pair_query_row=query_row_t,
        pair_query_embedding=pair_query_embedding,
        n_real=n_real,
        onehot=onehot,
        pair_flat=pair_flat,
    )


_ONEHOT_IDENTITY_MAX = 4096
"""Above this vocabulary size one-hot inputs keep no ``K x K`` identity (``embeddings`` is a
zero-stride stand-in): scores and gradients go through the pair entries only."""


def _check_identity(inputs: AttentionInputs) -> None:
    """Refuse embedding products on one-hot inputs that hold no identity matrix."""
    stand_in = inputs.embeddings.dim() == 3 and inputs.embeddings.stride()[-2:] == (0, 0)
    if inputs.onehot and (inputs.vocab_size > _ONEHOT_IDENTITY_MAX or stand_in):
        raise InvalidParameterError(
            f"these one-hot inputs (K = {inputs.vocab_size}) hold no "
            "K x K identity; use the pair entries (pair_scores, pair_gradient) instead of "
            "per-position embeddings"
        )


# ---------------------------------------------------------------------------------- scores
_SMALL_PRODUCT = 1 << 18  # below this many multiply-adds, matmul is done without BLAS


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for batched matrices; small products are summed elementwise.

    With tiny matrices a BLAS call costs more than the arithmetic, and on a busy machine its
    thread pool can stall for milliseconds; an elementwise product stays on the calling thread.
    """
    if a.shape[-2] * a.shape[-1] * b.shape[-1] * max(a[..., :1, :1].numel(), 1) <= _SMALL_PRODUCT:
        return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)
    return a @ b


def pair_scores(W: Tensor, inputs: AttentionInputs) -> Tensor:
    """Score ``e_j^T W e_q`` of every (trial, token, query) pair, plus a final -inf slot.

    Parameters
    ----------
    W : Tensor of shape (B, d, d)
    inputs : AttentionInputs

    Returns
    -------
    Tensor of shape (P + 1,)
    """
    B, K, d = inputs.embeddings.shape
    if inputs.pair_flat is not None:  # one-hot: W is the score table, W[b, token, query]
        table = W.reshape(-1)[inputs.pair_flat]  # (P,)
    else:
        V = _matmul(inputs.embeddings, W)  # (B, K, d): row j is e_j^T W
        table = (V.reshape(B * K, d)[inputs.pair_token_row] * inputs.pair_query_embedding).sum(
            -1
        )  # (P,)
    padding = torch.full((1,), _NEG_INF, dtype=table.dtype, device=table.device)
    return torch.cat([table, padding])  # (P + 1,)


def attention_scores(W: Tensor, inputs: AttentionInputs) -> Tensor:
    """Scores ``x_t^T W x_q`` of every position, ``-inf`` on padding.

    Parameters
    ----------
    W : Tensor of shape (B, d, d)
    inputs : AttentionInputs

    Returns
    -------
    Tensor of shape (B, n, T)
    """
    return pair_scores(W, inputs)[inputs.position_pair]


def _positions_to_pairs(dscores: Tensor, inputs: AttentionInputs) -> Tensor:
    """Sum a per-position gradient (B, n, T) into the pairs: (P,)."""
    P = inputs.pair_token_row.shape[0]
    dpair = torch.zeros(P + 1, dtype=dscores.dtype, device=dscores.device)
    dpair.index_add_(0, inputs.position_pair.reshape(-1), dscores.reshape(-1))  # (P + 1,)
    return dpair[:P]


def _pairs_to_W(dpair: Tensor, inputs: AttentionInputs) -> Tensor:
    """Gradient in ``W`` (B, d, d) of ``sum(dpair * pair_scores)``: sum_p dpair_p e_j e_q^T."""
    B, K, d = inputs.embeddings.shape
    if inputs.pair_flat is not None:  # one-hot: scatter into the score table
        grad = torch.zeros(B * K * K, dtype=dpair.dtype, device=dpair.device)
        grad.index_add_(0, inputs.pair_flat, dpair)
        return grad.view(B, K, K)  # (B, d, d)
    rows = torch.zeros(B * K, d, dtype=dpair.dtype, device=dpair.device)
    rows.index_add_(0, inputs.pair_token_row, dpair[:, None] * inputs.pair_query_embedding)
    return _matmul(inputs.embeddings.mT, rows.view(B, K, d))  # (B, d, d)


def _features(inputs: AttentionInputs) -> Tensor:
    """Tensor of shape (B, n, T, d*d): ``vec(x_t x_q^T)`` of every position (zeros on padding)."""
    X = inputs.token_embeddings()  # (B, n, T, d)
    B, K, d = inputs.embeddings.shape
    rows = inputs.queries + K * torch.arange(B, device=inputs.device)[:, None]
    xq = inputs.embeddings.reshape(B * K, d)[rows]  # (B, n, d)
    return (X[..., :, None] * xq[:, :, None, None, :]).flatten(-2)  # (B, n, T, d*d)


# ---------------------------------------------------------------------------------- heads
def _softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)) to full float64 accuracy (torch's softplus switches to x above 20)."""
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


@dataclass(frozen=True, slots=True, eq=False)
class HeadState:
    """What a head's forward pass keeps for its backward pass."""

    log_prob: Tensor  # (B, n): log p_y
    saved: tuple[Tensor, ...]


class Head(abc.ABC):
    """Maps the pair scores to the log-probability of the label, and back (abstract base class).

    ``forward`` takes the pair scores of :func:`pair_scores` ((P + 1,), last slot -inf) and
    ``backward`` returns the gradient with respect to them ((P,)). A subclass implements the four
    abstract methods; :meth:`hessian_in_scores` is optional.
    """

    name = "head"

    @abc.abstractmethod
    def forward(self, pair_scores: Tensor, inputs: AttentionInputs) -> HeadState:
        """The forward pass: ``log p_y`` per trial and sample (B, n), and what the backward
        pass needs, from the pair scores ((B, P + 1), the last slot -inf for padding)."""

    @abc.abstractmethod
    def attention(self, state: HeadState, inputs: AttentionInputs) -> Tensor:
        """Tensor of shape (B, n, T): the attention ``s`` (0 on padding)."""

    @abc.abstractmethod
    def backward(self, state: HeadState, upstream: Tensor, inputs: AttentionInputs) -> Tensor:
        """Gradient of ``sum(upstream * log_prob)`` with respect to the pair scores (P,)."""

    @abc.abstractmethod
    def probabilities(self, state: HeadState, inputs: AttentionInputs) -> Tensor:
        """Tensor of shape (B, n, K): the next-token distribution."""

    def hessian_in_scores(
        self, state: HeadState, slope: Tensor, curvature: Tensor, inputs: AttentionInputs
    ) -> Tensor:
        """Tensor of shape (B, n, T, T), or NotImplementedError (then autograd is used)."""
        raise NotImplementedError


def _token_mass(attention: Tensor, inputs: AttentionInputs) -> Tensor:
    """Tensor of shape (B, n, K): ``a_j`` = total attention on the positions holding token j."""
    B, n, _ = attention.shape
    out = torch.zeros(B, n, inputs.vocab_size, dtype=attention.dtype, device=attention.device)
    return out.scatter_add_(-1, inputs.tokens.clamp(min=0), attention)


def _safe_log(x: Tensor) -> Tensor:
    """log(x) with log(0) = -inf and no NaN in autograd's backward pass."""
    positive = x > 0
    return torch.where(positive, torch.log(torch.where(positive, x, 1.0)), _NEG_INF)


class IdentityHead(Head):
    """``p_j = a_j``: the attention mass on token j (docs/theory.md#model-and-loss, the theory's
    head).

    Every position holding the label has the same score ``u_y``, so with ``c_y`` such positions,
    ``m`` the largest other score and ``S = sum over other positions of exp(score - m)``,

        gap = log((1 - p_y) / p_y) = m + log S - u_y - log c_y,    log p_y = -softplus(gap),

    and the gradient of ``log p_y`` is ``q = 1 - p_y`` on the label's pair and
    ``-q exp(score - m) / S`` on each other position. One ``exp`` over the positions, and no
    cancellation even when ``p_y`` is within 1e-15 of 1.
    """

    name = "iden"

    def forward(self, pair_scores: Tensor, inputs: AttentionInputs) -> HeadState:
        """The identity head's forward pass: ``log p_y = -softplus(gap)`` from the label's score
        and a shifted sum over the other positions."""
        other_scores = pair_scores[inputs.other_pair]  # (B, n, T), -inf on label and padding
        label_score = pair_scores[inputs.label_pair]  # (B, n)
        other_max = other_scores.amax(-1)  # (B, n), -inf when there is no other position
        shift = torch.where(other_max > _NEG_INF, other_max, 0.0)
        weights = torch.exp(other_scores - shift[..., None])  # (B, n, T)
        other_sum = weights.sum(-1)  # (B, n), >= 1 when there is another position
        gap = shift + _safe_log(other_sum) - label_score - torch.log(inputs.label_count)  # (B, n)
        return HeadState(-_softplus(gap), (weights, other_sum, gap))

    def _other_coefficient(self, state: HeadState) -> Tensor:
        """Per sample ``q / S`` (0 when there is no other position)."""
        _, other_sum, gap = state.saved
        has_other = other_sum > 0
        return torch.where(
            has_other, torch.sigmoid(gap) / torch.where(has_other, other_sum, 1.0), 0.0
        )

    def attention(self, state: HeadState, inputs: AttentionInputs) -> Tensor:
        """The identity head's attention: ``p_y / c_y`` on each label position, the softmax share
        elsewhere."""
        weights, _, gap = state.saved
        label_share = torch.sigmoid(-gap) / inputs.label_count.clamp(min=1)  # p_y / c_y
        other = self._other_coefficient(state)[..., None] * weights
        return torch.where(inputs.label_mask, label_share[..., None], other)  # (B, n, T)

    def backward(self, state: HeadState, upstream: Tensor, inputs: AttentionInputs) -> Tensor:
        """The identity head's backward pass: ``q = 1 - p_y`` on the label's pair and
        ``-q exp(score - m) / S`` on each other pair, times ``upstream``."""
        weights, _, gap = state.saved
        P = inputs.pair_token_row.shape[0]
        dother = (-upstream * self._other_coefficient(state))[..., None] * weights  # (B, n, T)
        dpair = torch.zeros(P + 1, dtype=weights.dtype, device=weights.device)
        dpair.index_add_(0, inputs.other_pair.reshape(-1), dother.reshape(-1))
        dpair.index_add_(
            0, inputs.label_pair.reshape(-1), (upstream * torch.sigmoid(gap)).reshape(-1)
        )
        return dpair[:P]

    def hessian_in_scores(
        self, state: HeadState, slope: Tensor, curvature: Tensor, inputs: AttentionInputs
    ) -> Tensor:
        """Tensor of shape (B, n, T, T): Hessian of ``sum_i phi_i(log p_y)`` in the position scores.

        ``slope`` and ``curvature`` are the (weighted) first and second derivatives of each
        sample's loss in ``log p_y``. The Hessian of ``log p_y`` is ``diag(g) - r r^T + s s^T``
        with ``g`` its gradient, ``r`` the softmax within the label's positions and ``s`` the
        attention.
        """
        weights, _, gap = state.saved
        r = inputs.label_mask / inputs.label_count.clamp(min=1)[..., None]  # (B, n, T)
        grad = (
            torch.sigmoid(gap)[..., None] * r - self._other_coefficient(state)[..., None] * weights
        )
        s = self.attention(state, inputs)
        hess_lp = (
            torch.diag_embed(grad)
            - r[..., :, None] * r[..., None, :]
            + s[..., :, None] * s[..., None, :]
        )
        return (
            slope[..., None, None] * hess_lp
            + curvature[..., None, None] * grad[..., :, None] * grad[..., None, :]
        )

    def probabilities(self, state: HeadState, inputs: AttentionInputs) -> Tensor:
        """The identity head's distribution: the attention mass on each token, ``p_j = a_j``."""
        return _token_mass(self.attention(state, inputs), inputs)


class GenerativeHead(Head):
    """Logits ``z = E X^T s`` (``o = X^T s`` is the attention output), ``p = softmax(z)``."""

    name = "gen"

    def forward(self, pair_scores: Tensor, inputs: AttentionInputs) -> HeadState:
        """The generative head's forward pass: softmax attention, output ``X^T s``, logits
        ``E X^T s`` and their log-softmax at the label."""
        attention = torch.softmax(pair_scores[inputs.position_pair], -1)  # (B, n, T)
        X = inputs.token_embeddings()  # (B, n, T, d)
        output = (attention[..., None] * X).sum(-2)  # (B, n, d)
        logits = _matmul(output, inputs.embeddings.mT)  # (B, n, K)
        log_probs = torch.log_softmax(logits, -1)  # (B, n, K)
        log_prob = log_probs.gather(-1, inputs.labels[..., None])[..., 0]  # (B, n)
        return HeadState(log_prob, (X, log_probs, attention))

    def attention(self, state: HeadState, inputs: AttentionInputs) -> Tensor:
        """The generative head's attention, the softmax kept by :meth:`forward`."""
        return state.saved[2]

    def backward(self, state: HeadState, upstream: Tensor, inputs: AttentionInputs) -> Tensor:
        """The generative head's backward pass: through the logits, the output and a softmax
        backward centred at the most attended position."""
        X, log_probs, s = state.saved
        dlogits = -torch.exp(log_probs)  # (B, n, K): d log p_y / dz = onehot(y) - p
        dlogits.scatter_add_(-1, inputs.labels[..., None], torch.ones_like(upstream)[..., None])
        doutput = _matmul(dlogits * upstream[..., None], inputs.embeddings)  # (B, n, d)
        dattention = (X * doutput[..., None, :]).sum(-1)  # (B, n, T)
        # Softmax backward s * (g - <s, g>), with g centred on its value at the most attended
        # position first (the result is the same in exact arithmetic). Uncentred, once s is
        # within 1e-16 of one-hot, <s, g> rounds to g at that position and the output loses its
        # zero sum over positions by as much as the true, exponentially small gradient; with
        # normalised GD that rounding error then sets the direction of every step.
        pivot = dattention.gather(-1, s.argmax(-1, keepdim=True))  # (B, n, 1)
        centred = dattention - pivot  # (B, n, T)
        dscores = s * (centred - (s * centred).sum(-1, keepdim=True))  # (B, n, T)
        return _positions_to_pairs(dscores, inputs)

    def probabilities(self, state: HeadState, inputs: AttentionInputs) -> Tensor:
        """The generative head's distribution, ``softmax(E X^T s)``."""
        return torch.exp(state.saved[1])


HEADS: dict[str, Head] = dict(zip(HEAD_NAMES, (IdentityHead(), GenerativeHead()), strict=True))
"""Heads by name."""


# ---------------------------------------------------------------------------------- parameters
class Combined:
    """Train ``W`` itself: parameters of shape (B, d, d)."""

    name = "combined"

    def shape(self, d: int, rank: int) -> tuple[int, ...]:
        """Shape of one trial's parameters, ``(d, d)`` (``rank`` is ignored)."""
        return (d, d)

    def to_W(self, params: Tensor) -> Tensor:
        """``W`` itself: the parameters unchanged."""
        return params

    def pullback(self, params: Tensor, grad_W: Tensor) -> Tensor:
        """The gradient in the parameters: the gradient in ``W`` unchanged."""
        return grad_W


class Factorized:
    """Train ``W_K`` and ``W_Q`` (each (d, r)) with ``W = W_K W_Q^T``: parameters (B, 2, d, r)."""

    name = "factorized"

    def shape(self, d: int, rank: int) -> tuple[int, ...]:
        """Shape of one trial's parameters, ``(2, d, rank)``: ``W_K`` and ``W_Q``."""
        return (2, d, rank)

    def to_W(self, params: Tensor) -> Tensor:
        """Tensor of shape (B, d, d): ``W = W_K W_Q^T``."""
        return params[:, 0] @ params[:, 1].mT  # (B, d, d)

    def pullback(self, params: Tensor, grad_W: Tensor) -> Tensor:
        """The gradient in ``(W_K, W_Q)`` from the gradient in ``W``: ``(G W_Q, G^T W_K)``."""
        return torch.stack([grad_W @ params[:, 1], grad_W.mT @ params[:, 0]], dim=1)


PARAMETERIZATIONS: dict[str, Combined | Factorized] = dict(
    zip(PARAMETERIZATION_NAMES, (Combined(), Factorized()), strict=True)
)


# ---------------------------------------------------------------------------------- config
@dataclass(frozen=True, slots=True)
class AttentionConfig:
    """What model to train.

    Parameters
    ----------
    head : {"iden", "gen"}, default="iden"
        ``iden``: p_j = attention mass on token j; ``gen``: softmax(E X^T s).
    loss : {"log", "ce", "squared", "correlation", "exp"}, default="log"
        ``-log p_y`` ("log" and "ce" are the same function), ``(1 - p_y)^2`` or ``-p_y``.
    parameterization : {"combined", "factorized"}, default="combined"
        Train ``W`` or the factors ``W_K, W_Q`` with ``W = W_K W_Q^T``.
    rank : int or None, default=None
        Inner dimension r of the factors (default: embedding_dim).
    dtype : {"float64", "float32"}, default="float64"
    device : str, default="cpu"
    """

    head: str = "iden"  # which head maps attention to a next-token distribution
    loss: str = "log"  # per-sample loss as a function of p_y
    parameterization: str = "combined"  # W itself, or W = W_K W_Q^T
    rank: int | None = None  # r for the factorized parameterization (None: d)
    dtype: str = "float64"  # torch dtype name
    device: str = "cpu"  # torch device

    def __post_init__(self) -> None:
        tables: list[tuple[str, dict[str, Any]]] = [
            ("head", HEADS),
            ("loss", LOSSES),
            ("parameterization", PARAMETERIZATIONS),
        ]
        for name, table in tables:
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in table:
                raise InvalidParameterError(
                    f"{name} must be one of {', '.join(map(repr, table))}, "
                    f"got {getattr(self, name)!r}"
                )
        if isinstance(self.dtype, torch.dtype):
            names = {v: k for k, v in _DTYPES.items()}
            if self.dtype not in names:
                raise InvalidParameterError(f"dtype must be float64 or float32, got {self.dtype}")
            object.__setattr__(self, "dtype", names[self.dtype])
        elif not isinstance(self.dtype, str) or self.dtype not in _DTYPES:
            raise InvalidParameterError(
                f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}"
            )
        check_params({"rank": self.rank}, {"rank": [POSITIVE_INT, None]}, where="AttentionConfig")
        if self.rank is not None and self.rank > 10**6:
            raise InvalidParameterError(
                f"AttentionConfig: rank must be at most 1000000 (a d x r factor), got {self.rank}"
            )
        if not isinstance(self.device, (str, torch.device)):
            raise InvalidParameterError(
                f"device must be a string such as 'cpu' or 'cuda', got {self.device!r}"
            )
        object.__setattr__(self, "device", str(self.device))
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"device {self.device!r} is not a torch device ({exc}); use e.g. 'cpu' or 'cuda'"
            ) from None

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by :attr:`dtype`."""
        return _DTYPES[self.dtype]

    def param_shape(self, embedding_dim: int) -> tuple[int, ...]:
        """Shape of one trial's parameters: (d, d), or (2, d, r) for the factorized model."""
        rank = self.rank if self.rank is not None else embedding_dim
        return PARAMETERIZATIONS[self.parameterization].shape(embedding_dim, int(rank))


# ---------------------------------------------------------------------------------- objective

OBJECTIVE_PARAMS: dict[str, list[Any]] = {"config": [AttentionConfig, None]}
"""What :class:`AttentionObjective` takes besides its data."""


class AttentionObjective:
    """The empirical risk of a batch of trials and its analytic gradient.

    ``objective(params)`` returns ``(risk, grad)`` with ``risk`` of shape (B,) and ``grad`` shaped
    like ``params`` ((B, d, d), or (B, 2, d, r) for the factorized model). The head, loss and
    parameterization are resolved once, here.

    Parameters
    ----------
    inputs : AttentionInputs or Dataset or list of Dataset
    config : AttentionConfig, optional

    Examples
    --------
    >>> import numpy as np, torch
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1], [0, 1], [0, 1]], [0, 0, 1], np.eye(2))
    >>> risk, grad = AttentionObjective(ds)(torch.zeros(1, 2, 2, dtype=torch.float64))
    >>> round(float(risk[0]), 6)  # every p_y is 1/2 at W = 0
    0.693147
    """

    @validate_params(OBJECTIVE_PARAMS, where="AttentionObjective")
    def __init__(
        self,
        inputs: AttentionInputs | Dataset | Sequence[Dataset],
        config: AttentionConfig | None = None,
    ):
        self.config = config if config is not None else AttentionConfig()
        if not isinstance(inputs, AttentionInputs):
            inputs = inputs_from_datasets(
                inputs, dtype=self.config.torch_dtype, device=self.config.device
            )
        self.inputs = inputs
        self.head = HEADS[self.config.head]
        self.loss = LOSSES[self.config.loss]
        self.parameterization = PARAMETERIZATIONS[self.config.parameterization]

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of the parameters of all trials: ``(B, *config.param_shape(d))``."""
        return (self.inputs.num_trials, *self.config.param_shape(self.inputs.embedding_dim))

    def to_W(self, params: Tensor) -> Tensor:
        """Tensor of shape (B, d, d): the key-query matrix of the parameters."""
        return self.parameterization.to_W(params)

    def forward(self, params: Tensor) -> tuple[Tensor, HeadState]:
        """Per-trial risk (B,) and the head's state (autograd-differentiable)."""
        W = self.parameterization.to_W(params)
        state = self.head.forward(pair_scores(W, self.inputs), self.inputs)
        return (self.inputs.weights * self.loss.value(state.log_prob)).sum(-1), state

    def risk(self, params: Tensor) -> Tensor:
        """Tensor of shape (B,): the empirical risk of each trial."""
        return self.forward(params)[0]

    def pair_gradient(self, table: Tensor) -> tuple[Tensor, Tensor]:
        """Risk (B,) and its gradient in the pair scores (P,), given the pair scores (P,).

        For one-hot inputs the pair scores are entries of ``W`` (``W.reshape(-1)[pair_flat]``)
        and nothing else of ``W`` enters the risk: training can run on them alone.
        """
        padding = torch.full((1,), _NEG_INF, dtype=table.dtype, device=table.device)
        state = self.head.forward(torch.cat([table, padding]), self.inputs)
        risk = (self.inputs.weights * self.loss.value(state.log_prob)).sum(-1)
        upstream = self.inputs.weights * self.loss.slope(state.log_prob)  # (B, n)
        return risk, self.head.backward(state, upstream, self.inputs)  # (B,), (P,)

    def __call__(self, params: Tensor) -> tuple[Tensor, Tensor]:
        risk, state = self.forward(params)
        upstream = self.inputs.weights * self.loss.slope(state.log_prob)  # (B, n)
        dpair = self.head.backward(state, upstream, self.inputs)  # (P,)
        grad_W = _pairs_to_W(dpair, self.inputs)  # (B, d, d)
        return risk, self.parameterization.pullback(params, grad_W)

    def hessian(self, W: Tensor) -> Tensor:
        """Tensor of shape (B, d*d, d*d): Hessian of the risk in ``vec(W)`` (row-major).

        Analytic for the ``iden`` head, autograd otherwise. Only for the combined model.
        """
        B, _, d = self.inputs.embeddings.shape
        _, state = self.forward(W)
        lp = state.log_prob
        slope = self.inputs.weights * self.loss.slope(lp)
        curvature = self.inputs.weights * self.loss.curvature(lp)
        try:
            hess_scores = self.head.hessian_in_scores(state, slope, curvature, self.inputs)
        except NotImplementedError:
            hess_scores = None
        if hess_scores is not None:  # (B, n, T, T)
            features = _features(self.inputs)  # (B, n, T, d*d)
            pushed = torch.einsum("bnts,bnsk->bntk", hess_scores, features)
            return torch.einsum("bntk,bntl->bkl", features, pushed)
        blocks = []
        for b in range(B):  # autograd fallback for the gen head (small problems only)

            def risk_b(w: Tensor, b: int = b) -> Tensor:
                full = W.detach().clone()
                full = torch.cat([full[:b], w.reshape(1, d, d), full[b + 1 :]])
                return self.risk(full)[b]

            blocks.append(torch.autograd.functional.hessian(risk_b, W[b].reshape(-1).detach()))
        return torch.stack(blocks)


# ---------------------------------------------------------------------------------- nn.Module

SINGLE_LAYER_PARAMS: dict[str, list[Any]] = {
    "embedding_dim": [Interval(numbers.Integral, 1, 10**6)],
    "config": [AttentionConfig, None],
    "num_trials": [Interval(numbers.Integral, 1, 10**6)],
}
"""What :class:`SingleLayerAttention` takes besides ``init``."""


class SingleLayerAttention(torch.nn.Module):
    """Single-layer attention as an :class:`torch.nn.Module` (autograd path; B trials at once).

    Parameters
    ----------
    embedding_dim : int
    config : AttentionConfig, optional
    num_trials : int, default=1
    init : array-like, optional
        Initial parameters of shape ``config.param_shape(d)`` or ``(num_trials, *that)``;
        default zeros.

    Attributes
    ----------
    params : torch.nn.Parameter of shape (num_trials, d, d) or (num_trials, 2, d, r)
    """

    @validate_params(SINGLE_LAYER_PARAMS, where="SingleLayerAttention")
    def __init__(
        self,
        embedding_dim: int,
        config: AttentionConfig | None = None,
        *,
        num_trials: int = 1,
        init: Any = None,
    ) -> None:
        super().__init__()
        self.config = config if config is not None else AttentionConfig()
        shape = (num_trials, *self.config.param_shape(embedding_dim))
        value = torch.zeros(shape, dtype=self.config.torch_dtype, device=self.config.device)
        if init is not None:
            try:
                given = np.asarray(init, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidParameterError(
                    f"SingleLayerAttention: init must be an array of numbers ({exc})"
                ) from None
            try:
                np.broadcast_shapes(given.shape, tuple(value.shape))
            except ValueError:
                raise InvalidParameterError(
                    f"SingleLayerAttention: init has shape {given.shape}; it must be "
                    f"{tuple(value.shape[1:])} or {tuple(value.shape)}"
                ) from None
            if given.ndim < 1 or not np.isfinite(given).all():
                raise InvalidParameterError(
                    "SingleLayerAttention: init must be a finite array of shape "
                    f"{tuple(value.shape[1:])} or {tuple(value.shape)}"
                )
            value = value + torch.as_tensor(given, dtype=value.dtype, device=value.device)
        self.params = torch.nn.Parameter(value)
        self._parameterization = PARAMETERIZATIONS[self.config.parameterization]

    @property
    def W(self) -> Tensor:
        """Tensor of shape (num_trials, d, d): the combined key-query matrix."""
        return self._parameterization.to_W(self.params)

    def forward(self, inputs: AttentionInputs) -> Tensor:
        """Tensor of shape (num_trials,): the empirical risk (differentiable by autograd)."""
        return AttentionObjective(inputs, self.config).risk(self.params)

    def run_with_cache(self, inputs: AttentionInputs) -> tuple[Tensor, dict[str, Tensor]]:
        """The head's probabilities and activations at this module's ``W`` (see
        :func:`run_with_cache`)."""
        return run_with_cache(self.W, inputs, self.config)



RUN_WITH_CACHE_PARAMS: dict[str, list[Any]] = {"W": [ArrayLike()], "config": [AttentionConfig, None]}
"""What :func:`run_with_cache` takes besides its data."""


@validate_params(RUN_WITH_CACHE_PARAMS, where="run_with_cache")
def run_with_cache(
    W: Any,
    data: AttentionInputs | Dataset | Sequence[Dataset],
    config: AttentionConfig | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run the model and keep its activations.

    Parameters
    ----------
    W : array-like of shape (d, d) or (B, d, d)
    data : AttentionInputs, Dataset or list of Dataset
    config : AttentionConfig, optional (its parameterization is ignored: ``W`` is given)

    Returns
    -------
    probabilities : Tensor of shape (B, n, K)
        The head's next-token distribution (B dropped when ``W`` is 2-D).
    cache : dict of str to Tensor
        ``"scores"`` (B, n, T) with -inf on padding; ``"attention"`` (B, n, T), s;
        ``"token_mass"`` (B, n, K), a_j = attention on token j; ``"log_prob_label"`` (B, n);
        ``"loss"`` (B, n), per-sample loss; ``"risk"`` (B,), the weighted mean.

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1]], [0], np.eye(2))
    >>> probs, cache = run_with_cache(np.zeros((2, 2)), ds)
    >>> probs.tolist()
    [[0.5, 0.5]]
    """
    config = config if config is not None else AttentionConfig()
    inputs = (
        data
        if isinstance(data, AttentionInputs)
        else inputs_from_datasets(data, dtype=config.torch_dtype, device=config.device)
    )
    W_t = torch.as_tensor(
        np.array(W) if not isinstance(W, Tensor) else W, dtype=inputs.dtype, device=inputs.device
    )
    d = inputs.embedding_dim
    if not bool(torch.isfinite(W_t).all()):
        raise InvalidParameterError("run_with_cache: W must be finite (no NaN or inf)")
    if W_t.ndim not in (2, 3) or tuple(W_t.shape[-2:]) != (d, d):
        raise InvalidParameterError(
            f"run_with_cache: W must have shape ({d}, {d}) or (B, {d}, {d}) to match the "
            f"embeddings, got {tuple(W_t.shape)}"
        )
    squeeze = W_t.ndim == 2
    if squeeze:
        W_t = W_t[None]
    if W_t.shape[0] != inputs.num_trials:
        W_t = W_t.expand(inputs.num_trials, -1, -1) if W_t.shape[0] == 1 else W_t
        if inputs.num_trials == 1 and W_t.shape[0] > 1:
            inputs = _repeat_trials(inputs, W_t.shape[0])
    head, loss = HEADS[config.head], LOSSES[config.loss]
    with torch.no_grad():
        table = pair_scores(W_t, inputs)
        scores = table[inputs.position_pair]
        state = head.forward(table, inputs)
        probs = head.probabilities(state, inputs)
        attention = head.attention(state, inputs)
        per_sample = loss.value(state.log_prob)
        cache = {
            "scores": scores,
            "attention": attention,
            "token_mass": _token_mass(attention, inputs),
            "log_prob_label": state.log_prob,
            "loss": per_sample,
            "risk": (inputs.weights * per_sample).sum(-1),
        }
    if squeeze and W_t.shape[0] == 1:
        return probs[0], {k: v[0] for k, v in cache.items()}
    return probs, cache


def _repeat_trials(inputs: AttentionInputs, B: int) -> AttentionInputs:
    """The same single-trial data repeated B times (for B weight matrices on one dataset)."""
    trial = (
        np.where(inputs.mask[0].cpu().numpy(), inputs.tokens[0].cpu().numpy(), -1),
        inputs.queries[0].cpu().numpy(),
        inputs.labels[0].cpu().numpy(),
        OneHotEmbeddings(inputs.vocab_size)
        if inputs.onehot
        else inputs.embeddings[0].cpu().numpy(),
        inputs.weights[0].cpu().numpy(),
    )
    return _stack_trials([trial] * B, dtype=inputs.dtype, device=inputs.device)


# ---------------------------------------------------------------------------------- fast path
class IdentityLogGradient:
    """The gradient of the log-loss risk of the ``iden`` head in ``W`` (combined model, dense
    embeddings), for training loops that do not need the risk at every step.

    The same operations in the same order as :class:`AttentionObjective` (so the same numbers,
    bit for bit), with the risk left out, every buffer allocated once, the ``-inf`` padding slot
    kept in place instead of concatenated, and each value computed once. About half the tensor
    operations of a full objective call: with hundreds of tiny trials in a batch, the per-step
    cost is the number of operations, not the arithmetic.

    ``grad(W)`` returns a tensor that is overwritten by the next call.
    """

    def __init__(self, inputs: AttentionInputs) -> None:
        if inputs.onehot:
            raise ValueError("IdentityLogGradient is for dense embeddings")
        self.inputs = inputs
        B, K, d = inputs.embeddings.shape
        P = inputs.pair_token_row.shape[0]
        self.shape = (B, K, d)
        self.P = P
        dtype, device = inputs.dtype, inputs.device
        self.table = torch.empty(P + 1, dtype=dtype, device=device)
        self.table[P] = _NEG_INF
        self.dpair = torch.empty(P + 1, dtype=dtype, device=device)
        self.rows = torch.empty(B * K, d, dtype=dtype, device=device)
        self.other_flat = inputs.other_pair.reshape(-1)
        self.label_flat = inputs.label_pair.reshape(-1)
        self.log_count = torch.log(inputs.label_count)
        # log loss: slope = -1 everywhere, so upstream = weights * -1 (as the full objective)
        self.upstream = inputs.weights * torch.full_like(inputs.weights, -1.0)
        self.neg_upstream = -self.upstream
        self.embeddings_T = inputs.embeddings.mT

    def __call__(self, W: Tensor) -> Tensor:
        """Tensor of shape (B, d, d): the gradient of the risk at ``W``."""
        inputs = self.inputs
        B, K, d = self.shape
        P = self.P
        V = _matmul(inputs.embeddings, W)  # (B, K, d)
        torch.sum(
            V.reshape(B * K, d)[inputs.pair_token_row] * inputs.pair_query_embedding,
            -1,
            out=self.table[:P],
        )
        table = self.table
        other_scores = table[inputs.other_pair]  # (B, n, T)
        label_score = table[inputs.label_pair]  # (B, n)
        other_max = other_scores.amax(-1)
        shift = torch.where(other_max > _NEG_INF, other_max, 0.0)
        weights = torch.exp(other_scores - shift[..., None])
        other_sum = weights.sum(-1)
        gap = shift + _safe_log(other_sum) - label_score - self.log_count
        q = torch.sigmoid(gap)
        has_other = other_sum > 0
        coefficient = torch.where(has_other, q / torch.where(has_other, other_sum, 1.0), 0.0)
        dother = (self.neg_upstream * coefficient)[..., None] * weights
        dpair = self.dpair
        dpair.zero_()
        dpair.index_add_(0, self.other_flat, dother.reshape(-1))
        dpair.index_add_(0, self.label_flat, (self.upstream * q).reshape(-1))
        rows = self.rows
        rows.zero_()
        rows.index_add_(0, inputs.pair_token_row, dpair[:P, None] * inputs.pair_query_embedding)
        return _matmul(self.embeddings_T, rows.view(B, K, d))
