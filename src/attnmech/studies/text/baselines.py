"""Baselines of the text study: window heuristics and n-gram models.

Window-restricted baselines put their probability on the window's tokens:

- ``copy_recent``: the most recent token;
- ``most_frequent``: the window's token counts;
- ``uniform``: uniform over the window's distinct tokens;
- ``unigram``: the training unigram (counts plus one) restricted to the window.

n-gram models, trained on the training token stream, predict over the whole vocabulary:

- ``bigram``: counts of (last token, next token) with add-one smoothing;
- ``kn_bigram``, ``kn_trigram``: interpolated Kneser-Ney (:class:`KneserNey`).

Each n-gram model is also given restricted to the window's tokens (renormalised there), as
``<name>_window``. With ``exclude`` (``<unk>`` under ``--unk drop-labels``, where no label is
``<unk>``) no baseline predicts that token: the window heuristics skip it unless the window holds
nothing else, and the n-gram models give it probability 0 (renormalising the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .windows import token_masses

__all__ = ["KneserNey", "AddOneBigram", "window_baselines", "NGRAM_BASELINES"]

NGRAM_BASELINES = ("bigram", "kn_bigram", "kn_trigram")
"""The n-gram baselines (each also as ``<name>_window``)."""


def window_baselines(
    tokens: np.ndarray, unigram: np.ndarray, exclude: int | None = None
) -> dict[str, np.ndarray]:
    """Position weights (n, T) of the window heuristics (``copy_recent``, ``most_frequent``,
    ``uniform``, ``unigram``); ``exclude`` is a token they never predict unless the window holds
    nothing else."""
    n, T = tokens.shape
    allowed = np.ones((n, T))
    if exclude is not None:
        allowed = (tokens != exclude).astype(np.float64)
        allowed[allowed.sum(axis=1) == 0] = 1.0
    out: dict[str, np.ndarray] = {}
    copy = np.zeros((n, T))
    recent = T - 1 - np.argmax(allowed[:, ::-1] > 0, axis=1)  # the last allowed position
    copy[np.arange(n), recent] = 1.0
    out["copy_recent"] = copy
    out["most_frequent"] = allowed / allowed.sum(axis=1, keepdims=True)  # = token counts
    counts = token_masses(np.ones((n, T)), tokens)
    uniform = allowed / counts
    out["uniform"] = uniform / uniform.sum(axis=1, keepdims=True)
    uni = allowed * unigram[tokens] / counts
    out["unigram"] = uni / uni.sum(axis=1, keepdims=True)
    return out


# ---------------------------------------------------------------------------------- counting
def _count(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and their counts."""
    return np.unique(keys, return_counts=True)


def _lookup(keys: np.ndarray, values: np.ndarray, want: np.ndarray) -> np.ndarray:
    """``values`` at ``want`` (0 where the key is absent); ``keys`` sorted."""
    want = np.asarray(want, dtype=np.int64)
    if keys.size == 0:
        return np.zeros(want.shape)
    pos = np.minimum(np.searchsorted(keys, want), keys.size - 1)
    return np.where(keys[pos] == want, values[pos], 0).astype(np.float64)


def _discount(counts: np.ndarray) -> float:
    """``n1 / (n1 + 2 n2)`` (the usual estimate); 0.75 when undefined."""
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    if n1 == 0 or n1 + 2 * n2 == 0:
        return 0.75
    return float(min(max(n1 / (n1 + 2 * n2), 0.05), 0.95))


@dataclass(frozen=True, eq=False)
class _Level:
    """Counts of one level: ``count[ctx, w]`` (sorted keys ``ctx * K + w``), per-context totals
    and numbers of distinct followers, and the discount."""

    keys: np.ndarray
    counts: np.ndarray
    ctx_keys: np.ndarray
    ctx_total: np.ndarray
    ctx_types: np.ndarray
    discount: float
    K: int

    @classmethod
    def build(cls, ctx: np.ndarray, word: np.ndarray, K: int, counts: Any = None) -> _Level:
        keys = ctx.astype(np.int64) * K + word
        if counts is None:
            keys, counts = _count(keys)
        ctx_of = keys // K
        ctx_keys, start = np.unique(ctx_of, return_index=True)
        ctx_total = np.add.reduceat(counts, start).astype(np.float64) if keys.size else np.zeros(0)
        ctx_types = np.diff(np.r_[start, keys.size]).astype(np.float64)
        return cls(
            keys, counts.astype(np.float64), ctx_keys, ctx_total, ctx_types, _discount(counts), K
        )

    def dense(self, ctx: np.ndarray) -> np.ndarray:
        """Counts ``(len(ctx), K)`` of the given contexts (dense rows)."""
        out = np.zeros((ctx.size, self.K))
        pos = np.searchsorted(self.ctx_keys, ctx)
        ok = (pos < self.ctx_keys.size) & (
            self.ctx_keys[np.minimum(pos, self.ctx_keys.size - 1)] == ctx
        )
        lo = np.searchsorted(self.keys, ctx * self.K)
        hi = np.searchsorted(self.keys, ctx * self.K + self.K)
        for i in np.flatnonzero(ok):
            sl = slice(lo[i], hi[i])
            out[i, self.keys[sl] % self.K] = self.counts[sl]
        return out

    def context(self, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(total count, distinct followers) of each context (0 when unseen)."""
        return (
            _lookup(self.ctx_keys, self.ctx_total, ctx),
            _lookup(self.ctx_keys, self.ctx_types, ctx),
        )


class KneserNey:
    """Interpolated Kneser-Ney n-gram model (order 2 or 3) of a token stream.

    The highest order uses raw counts, lower orders continuation counts (the number of distinct
    left contexts), each with an absolute discount ``D = n1 / (n1 + 2 n2)`` of its counts, and the
    unigram level is interpolated with the uniform distribution over the ``K`` tokens, so every
    token gets a positive probability:

    ``P(w | ctx) = max(c(ctx w) - D, 0) / c(ctx .) + D N(ctx .) / c(ctx .) P_lower(w | ctx')``

    (``N(ctx .)`` distinct followers of ``ctx``; ``P_lower`` alone when ``c(ctx .) = 0``).

    Parameters
    ----------
    stream : ndarray of int
        Training token ids.
    vocab_size : int
    order : {2, 3}
    """

    def __init__(self, stream: np.ndarray, vocab_size: int, order: int = 3) -> None:
        if order not in (2, 3):
            raise ValueError(f"order must be 2 or 3, got {order}")
        s = np.asarray(stream, dtype=np.int64)
        K = self.K = int(vocab_size)
        self.order = order
        # unigram level: continuation counts N(. w) over distinct bigrams
        big_keys = np.unique(s[:-1] * K + s[1:])
        cont1 = np.bincount(big_keys % K, minlength=K).astype(np.float64)
        self.d1 = _discount(cont1[cont1 > 0].astype(np.int64))
        total = cont1.sum()
        seen = float((cont1 > 0).sum())
        self.p1 = np.maximum(cont1 - self.d1, 0) / total + self.d1 * seen / total / K
        if order == 2:
            self.top = _Level.build(s[:-1], s[1:], K)
            self.mid = None
        else:
            # middle level: continuation counts N(. v w) = distinct u before (v, w)
            tri = np.unique((s[:-2] * K + s[1:-1]) * K + s[2:])
            vw = tri % (K * K)
            vw_keys, vw_counts = _count(vw)
            self.mid = _Level.build(vw_keys // K, vw_keys % K, K, counts=vw_counts)
            self.top = _Level.build(s[:-2] * K + s[1:-1], s[2:], K)

    def _contexts(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        last = tokens[:, -1].astype(np.int64)
        if self.order == 2:
            return last, last
        return tokens[:, -2].astype(np.int64) * self.K + last, last

    def proba(self, tokens: np.ndarray) -> np.ndarray:
        """Next-token distributions (n, K) after full windows ``tokens`` (n, >= order - 1)."""
        top_ctx, last = self._contexts(tokens)
        lower = np.broadcast_to(self.p1, (tokens.shape[0], self.K))
        if self.mid is not None:
            lower = self._mix(self.mid, last, lower)
        return self._mix(self.top, top_ctx, lower)

    @staticmethod
    def _mix(level: _Level, ctx: np.ndarray, lower: np.ndarray) -> np.ndarray:
        counts = level.dense(ctx)
        total, types = level.context(ctx)
        seen = total > 0
        safe = np.where(seen, total, 1.0)
        D = level.discount
        high = np.maximum(counts - D, 0) / safe[:, None]
        weight = np.where(seen, D * types / safe, 1.0)
        return np.where(seen[:, None], high, 0.0) + weight[:, None] * lower


class AddOneBigram:
    """Bigram on the last token with add-one smoothing over the vocabulary.

    ``P(w | v) = (c(v w) + 1) / (c(v .) + K)``; with ``exclude``, that token gets 0 and the rest
    is renormalised (``(c(v w) + 1) / (c(v .) - c(v x) + K - 1)``).
    """

    def __init__(self, bigram_counts: Any) -> None:
        self.counts = bigram_counts.tocsr()
        self.K = int(self.counts.shape[0])

    def proba(self, tokens: np.ndarray) -> np.ndarray:
        """Next-token distributions (n, K) after full windows ``tokens``."""
        rows = np.asarray(self.counts[tokens[:, -1]].todense(), dtype=np.float64) + 1.0
        return rows / rows.sum(axis=1, keepdims=True)
