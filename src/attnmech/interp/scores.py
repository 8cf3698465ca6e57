"""A head's token-level score table and per-query priority orders.

What enters ``head_scores(model, layer, head)[q, k]`` (the pre-softmax score of key token ``k``
under query token ``q``), for ``context="alone"`` (the default):

    scores[q, k] = (r_q W_Q + b_Q) . (r_k W_K + b_K) / attn_scale

where ``r_t`` is what the head reads for token ``t`` when ``t`` is the **only** token of the
sequence, at position 0: its embedding ``W_E[t]``, plus ``W_pos[0]`` (learned positions; rotary
is the identity at position 0), plus whatever earlier layers (attention, MLP) write for that
one-token sequence, passed through the block's LayerNorm when the model has one. It is read from
``hook_q`` / ``hook_k`` of that run, so it is exactly TransformerLens's ``hook_attn_scores`` of a
context whose query and key carry those residuals. For a 1-layer attention-only model without
LayerNorm and with zero positions it is ``E W_Q W_K^T E^T`` plus the bias terms, i.e.
``(E W E^T)^T`` for an exported attnmech layer.

``context="tokens"`` uses ``W_E[t]`` alone (no positions, no earlier layers; the block's
LayerNorm is still applied). In a real context the residuals also carry the key's position and
the other tokens, so the table is a single-context summary: :func:`score_fidelity` measures how
well it predicts the head's scores on real windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.dataset import check_memory
from ..errors import InvalidParameterError
from ._tl import quiet
from .export import _check_head

__all__ = ["head_scores", "head_qk", "priority_order", "score_fidelity", "ScoreFidelity"]

CONTEXTS = ("alone", "tokens")


def _token_ids(tokens: Any, vocab: int) -> np.ndarray:
    if tokens is None:
        return np.arange(vocab, dtype=np.int64)
    ids = np.asarray(tokens, dtype=np.int64).ravel()
    if ids.size == 0:
        raise InvalidParameterError("tokens is empty; give at least one token id (or None)")
    bad = ids[(ids < 0) | (ids >= vocab)]
    if bad.size:
        raise InvalidParameterError(
            f"token ids {bad[:5].tolist()} are outside the model's vocabulary [0, {vocab})"
        )
    return ids


def head_qk(
    model: Any,
    layer: int,
    head: int,
    tokens: Any = None,
    *,
    context: str = "alone",
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Query and key vectors of each token (see the module doc for ``context``).

    Returns
    -------
    q, k : ndarray of shape (n_tokens, d_head), float64
        Biases included.
    attn_scale : float
        The head divides ``q . k`` by this (1 when ``use_attn_scale`` is off).
    """
    layer, head = _check_head(model, layer, head)
    if context not in CONTEXTS:
        raise InvalidParameterError(f"context must be one of {CONTEXTS}, got {context!r}")
    import torch

    ids = _token_ids(tokens, int(model.cfg.d_vocab))
    attn = model.blocks[layer].attn
    scale = float(attn.attn_scale) if model.cfg.use_attn_scale else 1.0
    qs, ks = [], []
    for start in range(0, ids.size, batch_size):
        part = torch.as_tensor(ids[start : start + batch_size])
        with torch.no_grad(), quiet():
            if context == "alone":
                names = (f"blocks.{layer}.attn.hook_q", f"blocks.{layer}.attn.hook_k")
                _, cache = model.run_with_cache(part[:, None], names_filter=list(names))
                q = cache[names[0]][:, 0, head]  # (batch, d_head)
                k = cache[names[1]][:, 0, head]
            else:
                x = model.W_E[part]  # (batch, d_model)
                ln = getattr(model.blocks[layer], "ln1", None)
                if ln is not None and not isinstance(ln, torch.nn.Identity):
                    x = ln(x[:, None, :])[:, 0, :]
                q = x @ attn.W_Q[head] + attn.b_Q[head]
                k = x @ attn.W_K[head] + attn.b_K[head]
        qs.append(q.double().cpu().numpy())
        ks.append(k.double().cpu().numpy())
    return np.concatenate(qs), np.concatenate(ks), scale


def head_scores(
    model: Any,
    layer: int,
    head: int,
    tokens: Any = None,
    *,
    context: str = "alone",
) -> np.ndarray:
    """The head's token-level score table ``scores[q, k]`` (module doc: what enters).

    Parameters
    ----------
    model : transformer_lens.HookedTransformer
    layer, head : int
    tokens : array-like of int, optional
        Token ids of the table's rows and columns (all ``d_vocab`` tokens when None).
    context : {"alone", "tokens"}, default="alone"

    Returns
    -------
    ndarray of shape (n_tokens, n_tokens), float64
        Row = query token, column = key token, in the order of ``tokens``.

    Raises
    ------
    InvalidParameterError
        Bad layer/head/token ids, or a table too large for memory (with the estimate).
    """
    vocab = int(getattr(getattr(model, "cfg", None), "d_vocab", 0) or 0)
    n = vocab if tokens is None else int(np.asarray(tokens).size)
    check_memory(
        8.0 * n * n,
        f"a {n} x {n} score table",
        "pass tokens=[...] (a subset of token ids), e.g. the corpus vocabulary",
    )
    q, k, scale = head_qk(model, layer, head, tokens, context=context)
    return (q @ k.T) / scale


def priority_order(scores: np.ndarray, query: int, tokens: Any = None) -> np.ndarray:
    """Token positions of row ``query`` of a score table, highest score first (stable on ties).

    ``tokens`` restricts (and orders candidates) to those columns; the result holds column
    indices of ``scores``.
    """
    row = np.asarray(scores, dtype=np.float64)[int(query)]
    cols = np.arange(row.size) if tokens is None else np.asarray(tokens, dtype=np.int64)
    return cols[np.argsort(-row[cols], kind="stable")]


@dataclass(frozen=True, slots=True)
class ScoreFidelity:
    """How well a token-level table predicts a head's scores from the last position of windows.

    Attributes
    ----------
    pearson : float
        Correlation of table and real scores after removing each window's mean from both (a
        softmax does not see a per-window shift).
    pair_agreement : float
        Share of key pairs with different real scores in a window that the table orders the same
        way (pairs of equal tokens left out).
    n_windows : int
    """

    pearson: float
    pair_agreement: float
    n_windows: int


def score_fidelity(
    model: Any,
    layer: int,
    head: int,
    windows: Any,
    table: np.ndarray,
    *,
    tokens: Any = None,
    batch_size: int = 2048,
) -> ScoreFidelity:
    """Compare ``table`` (from :func:`head_scores`) with the head's real scores on ``windows``.

    Parameters
    ----------
    windows : array-like of int of shape (n, T)
        Token sequences; the query is the last position.
    table : ndarray of shape (n_tokens, n_tokens)
    tokens : array-like of int, optional
        The token ids ``table`` was computed for (default: all, in id order).
    """
    layer, head = _check_head(model, layer, head)
    import torch

    X = np.asarray(windows, dtype=np.int64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise InvalidParameterError(f"windows must have shape (n, T) with n > 0, got {X.shape}")
    ids = _token_ids(tokens, int(model.cfg.d_vocab))
    where = np.full(int(model.cfg.d_vocab), -1, dtype=np.int64)
    where[ids] = np.arange(ids.size)
    pos = where[X]
    if (pos < 0).any():
        raise InvalidParameterError("windows hold tokens that are not in the table's tokens")
    hook = f"blocks.{layer}.attn.hook_attn_scores"
    real = np.empty(X.shape)
    for start in range(0, X.shape[0], batch_size):
        part = torch.as_tensor(X[start : start + batch_size])
        with torch.no_grad(), quiet():
            _, cache = model.run_with_cache(part, names_filter=hook)
        real[start : start + part.shape[0]] = cache[hook][:, head, -1, :].double().cpu().numpy()
    predicted = np.asarray(table, dtype=np.float64)[pos[:, -1:], pos]  # (n, T)
    a = real - real.mean(axis=1, keepdims=True)
    b = predicted - predicted.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    pearson = float((a * b).sum() / denom) if denom > 0 else float("nan")
    da = np.sign(real[:, :, None] - real[:, None, :])
    db = np.sign(predicted[:, :, None] - predicted[:, None, :])
    distinct = (X[:, :, None] != X[:, None, :]) & (da != 0)
    agree = float((da == db)[distinct].mean()) if distinct.any() else float("nan")
    return ScoreFidelity(pearson=pearson, pair_agreement=agree, n_windows=int(X.shape[0]))
