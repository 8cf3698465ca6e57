"""The automaton a trained attention layer implements (docs/theory.md#the-automaton).

Given ``W = R W_svm + W_fin`` with ``R`` large and a sequence ``X`` with last token (query) ``k``:

1. **hard retrieval**: keep the tokens of ``X`` whose score ``e_j^T W_svm e_k`` is maximal;
2. **soft composition**: ``p_j`` proportional to ``m_j(X) exp(e_j^T W_fin e_k)`` over the kept
   tokens (``m_j``: count of ``j`` in ``X``); the next token is drawn from ``p``.

Cases the paper leaves open, decided here by the scores:

- *Several incomparable top SCCs* (no path between them in ``G^(k)``): every token whose ``W_svm``
  score is within ``tie_tol`` of the maximum is kept; incomparable SCCs with different scores are
  ranked by their scores. When ``X`` has a unique top SCC in ``G^(k)``, every other token of ``X``
  is reachable from it, so its score is lower by at least 1 and score-based retrieval equals
  graph-based retrieval.
- *Tokens never seen under* ``k``, and queries never seen as last tokens: the scores are still
  defined by ``W_svm`` and ``W_fin`` and are used as they are. With orthonormal embeddings an unseen
  query gets ``W_svm e_k = 0``, so nothing is filtered and tokens are weighted by their counts.
- Finite ``R``: ``predict_proba(..., R=R)`` gives the layer's own prediction for
  ``W = R W_svm + W_fin`` (softmax over positions of ``R * svm_score + fin_score``), which tends to
  the automaton as ``R`` grows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..errors import InvalidDatasetError, InvalidParameterError
import numbers

from .._validation import Interval, validate_params

__all__ = ["Automaton"]



AUTOMATON_PARAMS: dict[str, list[Any]] = {"tie_tol": [Interval(numbers.Real, 0, 1, closed="left")]}
"""``tie_tol`` must lie in [0, 1): strict priorities differ by at least 1."""


class Automaton:
    """Hard retrieval followed by soft composition.

    Parameters
    ----------
    W_svm, W_fin : ndarray of shape (embedding_dim, embedding_dim)
    embeddings : ndarray of shape (vocab_size, embedding_dim)
    tie_tol : float, default=1e-6
        Tokens whose ``W_svm`` score is within ``tie_tol`` of the best one are retrieved together.
        Strict priorities differ by at least 1, so any value well below 1 gives the same result.

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset, solve
    >>> ds = Dataset([[0, 1]] * 3 + [[2, 0, 1]], [0, 0, 1, 0], np.eye(3))
    >>> auto = solve(ds).automaton()
    >>> auto.retrieve([2, 0, 1]).tolist()
    [0, 1]
    >>> np.round(auto.next_token_probabilities([2, 0, 1])[:2], 4).tolist()
    [0.75, 0.25]
    """

    @validate_params(AUTOMATON_PARAMS, where="Automaton")
    def __init__(self, W_svm: Any, W_fin: Any, embeddings: Any, *, tie_tol: float = 1e-6) -> None:
        try:
            E = np.asarray(embeddings, dtype=np.float64)
            W_svm = np.asarray(W_svm, dtype=np.float64)
            W_fin = np.asarray(W_fin, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"Automaton: W_svm, W_fin and embeddings must be arrays of numbers ({exc})"
            ) from None
        if E.ndim != 2:
            raise InvalidParameterError(
                f"embeddings must have shape (vocab_size, embedding_dim), got {E.shape}"
            )
        d = E.shape[1]
        W_svm = np.asarray(W_svm, dtype=np.float64)
        W_fin = np.asarray(W_fin, dtype=np.float64)
        if W_svm.shape != (d, d) or W_fin.shape != (d, d):
            raise InvalidParameterError(
                f"W_svm and W_fin must have shape ({d}, {d}) to match the embeddings, got "
                f"{W_svm.shape} and {W_fin.shape}"
            )
        if not (np.isfinite(E).all() and np.isfinite(W_svm).all() and np.isfinite(W_fin).all()):
            raise InvalidParameterError(
                "Automaton: W_svm, W_fin and embeddings must be finite (no NaN or inf)"
            )
        self.embeddings = E
        self.W_svm = W_svm
        self.W_fin = W_fin
        self.tie_tol = float(tie_tol)
        self.svm_table = E @ W_svm @ E.T  # (K, K): [token, query] scores
        self.fin_table = E @ W_fin @ E.T

    @property
    def vocab_size(self) -> int:
        """Vocabulary size K (rows of the embedding table)."""
        return int(self.embeddings.shape[0])

    # ------------------------------------------------------------------ input handling
    def _batch(self, sequences: Any, queries: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(padded tokens [n, T], mask [n, T], queries [n]) from a Dataset, padded array or list."""
        if isinstance(sequences, Dataset):
            tokens, mask = sequences.padded(), sequences.padded_mask()
            default_queries = sequences.last_tokens
        else:
            array = np.asarray(sequences) if not isinstance(sequences, list) else None
            if array is not None and array.ndim == 2:
                if array.dtype.kind not in "iu":
                    raise InvalidDatasetError(
                        f"token ids must be integers, got an array of {array.dtype}"
                    )
                tokens = array.astype(np.int64)
            else:
                try:
                    rows = [np.asarray(s, dtype=np.int64).ravel() for s in sequences]
                except (TypeError, ValueError, OverflowError) as exc:
                    raise InvalidDatasetError(
                        f"a sequence must be a list of integer token ids ({exc})"
                    ) from None
                lengths = np.fromiter((r.size for r in rows), dtype=np.int64, count=len(rows))
                width = int(lengths.max(initial=0))
                flat = np.concatenate(rows) if rows else np.zeros(0, np.int64)
                if (flat < 0).any():
                    raise InvalidDatasetError(
                        "token ids must be non-negative (-1 pads only a 2-D array)"
                    )
                tokens = np.full((len(rows), width), -1, dtype=np.int64)
                tokens[np.arange(width)[None, :] < lengths[:, None]] = flat
            mask = tokens >= 0
            lengths = mask.sum(axis=1)
            if (lengths == 0).any():
                raise InvalidDatasetError(
                    f"sequences {np.flatnonzero(lengths == 0).tolist()[:10]} are empty"
                )
            default_queries = tokens[np.arange(tokens.shape[0]), lengths - 1]
        bad = mask & (tokens >= self.vocab_size)
        if bad.any():
            raise InvalidDatasetError(
                f"sequences {np.unique(np.nonzero(bad)[0]).tolist()[:10]} hold token ids outside "
                f"[0, {self.vocab_size})"
            )
        q = default_queries if queries is None else np.asarray(queries, dtype=np.int64).ravel()
        if q.shape[0] != tokens.shape[0] or ((q < 0) | (q >= self.vocab_size)).any():
            raise InvalidParameterError(
                f"queries must be {tokens.shape[0]} token ids in [0, {self.vocab_size})"
            )
        return tokens, mask, q

    # ------------------------------------------------------------------ vectorised core
    def position_weights(
        self, sequences: Any, queries: Any = None, R: float | None = None
    ) -> np.ndarray:
        """Weight of each position, ndarray of shape (n, T) (rows sum to 1; padding gets 0).

        ``R=None``: the automaton (hard retrieval, then ``exp(fin score)``); a float: the softmax
        of ``R * svm_score + fin_score`` over positions.
        """
        tokens, mask, q = self._batch(sequences, queries)
        safe = np.where(mask, tokens, 0)
        svm = np.where(mask, self.svm_table[safe, q[:, None]], -np.inf)  # (n, T)
        fin = self.fin_table[safe, q[:, None]]  # (n, T)
        if R is None:
            best = svm.max(axis=1, keepdims=True)
            kept = mask & (svm >= best - self.tie_tol)
            logits = np.where(kept, fin, -np.inf)
        else:
            logits = np.where(mask, float(R) * svm + fin, -np.inf)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def predict_proba(
        self, sequences: Any, queries: Any = None, R: float | None = None
    ) -> np.ndarray:
        """Next-token distributions, ndarray of shape (n, vocab_size).

        Parameters
        ----------
        sequences : Dataset, ndarray of shape (n, T) padded with -1, or list of sequences
        queries : array-like of shape (n,), optional
            Query token per sequence (default: its last token).
        R : float, optional
            ``None`` for the automaton (``R -> infinity``); a number for ``W = R W_svm + W_fin``.
        """
        tokens, mask, _ = self._batch(sequences, queries)
        weights = self.position_weights(sequences, queries, R)
        n = tokens.shape[0]
        out = np.zeros((n, self.vocab_size))
        rows = np.broadcast_to(np.arange(n)[:, None], tokens.shape)
        np.add.at(out, (rows[mask], tokens[mask]), weights[mask])
        return out

    # ------------------------------------------------------------------ one sequence
    def retrieve(self, sequence: Any, query: int | None = None) -> np.ndarray:
        """The distinct tokens kept by hard retrieval (sorted)."""
        tokens, mask, q = self._batch([sequence], None if query is None else [query])
        safe = np.where(mask, tokens, 0)
        svm = np.where(mask, self.svm_table[safe, q[:, None]], -np.inf)[0]
        return np.unique(tokens[0][svm >= svm.max() - self.tie_tol])

    def next_token_probabilities(
        self, sequence: Any, query: int | None = None, R: float | None = None
    ) -> np.ndarray:
        """ndarray of shape (vocab_size,): the composed next-token distribution."""
        return self.predict_proba([sequence], None if query is None else [query], R)[0]

    def sample(self, sequence: Any, *, seed: int | np.random.Generator = 0) -> int:
        """Draw the next token."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        p = self.next_token_probabilities(sequence)
        return int(rng.choice(self.vocab_size, p=p))

    def generate(
        self,
        prompt: Any,
        length: int,
        *,
        seed: int | np.random.Generator = 0,
        greedy: bool = False,
    ) -> np.ndarray:
        """Extend ``prompt`` by ``length`` tokens; each new token becomes the next query.

        Returns the whole sequence (prompt followed by the continuation).
        """
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise InvalidParameterError(f"length must be a non-negative integer, got {length!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        sequence = [int(t) for t in np.asarray(prompt, dtype=np.int64).ravel()]
        if not sequence:
            raise InvalidDatasetError("the prompt is empty; give at least one token")
        for _ in range(int(length)):
            p = self.next_token_probabilities(sequence)
            token = int(np.argmax(p)) if greedy else int(rng.choice(self.vocab_size, p=p))
            sequence.append(token)
        return np.asarray(sequence, dtype=np.int64)
