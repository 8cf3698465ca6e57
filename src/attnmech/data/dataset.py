"""Next-token datasets: token sequences, labels and token embeddings (docs/theory.md#data).

The container and the validation of its content; generators live in
:mod:`attnmech.data.generators`, files in :mod:`attnmech.data.files`. A :class:`Dataset` stores ``n_samples`` sequences of token ids (lengths may differ, tokens may
repeat), one label per sequence and the embedding table ``embeddings`` of shape
``(vocab_size, embedding_dim)``. Sequences are kept flat (CSR layout: ``tokens`` and ``offsets``)
so that everything downstream runs as array operations, with no Python loop over samples.

Paper letters: K = ``vocab_size``, d = ``embedding_dim``, T = sequence length, n = ``n_samples``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._choices import EMBEDDING_KINDS, GRAPH_KINDS, UNREALIZABLE_POLICIES
from .. import _persist
from .._io import atomic_path
from .._results import frozen
from .._validation import Interval, Options, check_params, register
from ..errors import InvalidDatasetError, InvalidParameterError, UnrealizableLabelError

__all__ = [
    "Dataset",
    "OneHotEmbeddings",
    "priority_edges",
    "has_priority_cycle",
    "sorted_unique",
    "unrealizable_samples",
    "EMBEDDING_KINDS",
    "GRAPH_KINDS",
    "UNREALIZABLE_POLICIES",
]

logger = logging.getLogger(__name__)

ONEHOT_PARAMS = register(
    "OneHotEmbeddings", {"vocab_size": [Interval(numbers.Integral, 1, None)]}
)
DATASET_PARAMS = register(
    "Dataset",
    {
        "on_unrealizable": [Options(UNREALIZABLE_POLICIES)],
        "vocab_size": [Interval(numbers.Integral, 1, None), None],
    },
)

DENSE_LIMIT_BYTES = 2 * 1024**3  # largest dense one-hot table materialised on request (2 GiB)


class OneHotEmbeddings:
    """Implicit one-hot embeddings: token ``k`` is the ``k``-th standard basis vector of R^K.

    Nothing of size ``K x K`` is stored. ``W`` is then the ``K x K`` score table itself
    (``e_j^T W e_k = W[j, k]``), and the token-space solvers of :mod:`attnmech.theory.tokenspace` use
    that. ``np.asarray(embeddings)`` (or :meth:`to_dense`) gives the dense identity for code that
    needs a table, after checking that ``K * K * 8`` bytes stays below ``limit_bytes``.

    Parameters
    ----------
    vocab_size : int

    Examples
    --------
    >>> E = OneHotEmbeddings(3)
    >>> E.shape, E.to_dense()[1].tolist()
    ((3, 3), [0.0, 1.0, 0.0])
    """

    __slots__ = ("vocab_size",)

    def __init__(self, vocab_size: int) -> None:
        check_params({"vocab_size": vocab_size}, ONEHOT_PARAMS, where="OneHotEmbeddings")
        self.vocab_size = int(vocab_size)

    @property
    def shape(self) -> tuple[int, int]:
        """``(K, K)``, the shape of the dense identity."""
        return (self.vocab_size, self.vocab_size)

    @property
    def ndim(self) -> int:
        """2, as for a dense embedding table."""
        return 2

    @property
    def dense_bytes(self) -> int:
        """Bytes of the dense float64 table."""
        return self.vocab_size * self.vocab_size * 8

    def to_dense(self, *, limit_bytes: int | None = None) -> np.ndarray:
        """The identity matrix of shape (K, K), float64, read-only.

        Raises
        ------
        InvalidParameterError
            When ``K * K * 8`` bytes is above ``limit_bytes`` (default 2 GiB).
        """
        limit = DENSE_LIMIT_BYTES if limit_bytes is None else int(limit_bytes)
        if self.dense_bytes > limit:
            raise InvalidParameterError(
                f"the dense one-hot embedding table of vocab_size {self.vocab_size} needs "
                f"{self.dense_bytes / 2**30:.2f} GiB (limit {limit / 2**30:.2f} GiB); use the "
                "token-space functions (attnmech.solve dispatches to them for one-hot "
                "embeddings) or a smaller vocabulary"
            )
        return frozen(np.eye(self.vocab_size))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        dense = self.to_dense()
        return dense if dtype is None else dense.astype(dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OneHotEmbeddings) and other.vocab_size == self.vocab_size

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OneHotEmbeddings(vocab_size={self.vocab_size})"


def _list_preview(indices: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    more = f", ... ({len(indices)} in all)" if len(indices) > limit else ""
    return f"[{shown}{more}]"


def memory_limit_bytes() -> int:
    """Largest array allocation attnmech attempts, in bytes.

    ``ATTNMECH_MEMORY_LIMIT_GB`` in the environment sets it; the default is half the machine's
    physical memory (8 GiB where that cannot be read).
    """
    env = os.environ.get("ATTNMECH_MEMORY_LIMIT_GB")
    if env:
        try:
            return int(float(env) * 2**30)
        except ValueError:
            raise InvalidParameterError(
                f"ATTNMECH_MEMORY_LIMIT_GB must be a number of GiB, got {env!r}"
            ) from None
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 8 * 2**30


def check_memory(n_bytes: float, what: str, advice: str) -> None:
    """Refuse, before allocating, work estimated to need more than :func:`memory_limit_bytes`.

    Raises
    ------
    InvalidParameterError
        With the estimate, the limit and ``advice``.
    """
    limit = memory_limit_bytes()
    if n_bytes > limit:
        raise InvalidParameterError(
            f"{what} would need about {n_bytes / 2**30:.3g} GiB, more than the limit of "
            f"{limit / 2**30:.3g} GiB (half the machine's memory; set ATTNMECH_MEMORY_LIMIT_GB to "
            f"change it); {advice}"
        )


def as_rng(seed: Any, name: str = "seed") -> np.random.Generator:
    """``np.random.default_rng(seed)`` for a non-negative integer seed (or a Generator, as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameterError(
            f"{name} must be a non-negative integer or a numpy Generator, got {seed!r}"
        )
    return np.random.default_rng(int(seed))


_INT64_SAFE = 2**62  # integer-valued floats and unsigned ids beyond this are refused


def _to_int64(array: np.ndarray, what: str) -> np.ndarray:
    """Integer ids as int64, refusing values that a cast would wrap or round (uint64, 1e30)."""
    if array.size and np.issubdtype(array.dtype, np.unsignedinteger):
        too_big = array > np.uint64(_INT64_SAFE)
        if too_big.any():
            where = np.argwhere(too_big)[0]
            raise InvalidDatasetError(
                f"{what} hold an unsigned id {int(array[tuple(where)])} at index "
                f"{tuple(int(w) for w in where)}, beyond any vocabulary; token ids are in "
                "[0, vocab_size) (pad with -1 using a signed integer array)"
            )
    if array.size and np.issubdtype(array.dtype, np.floating):
        too_big = np.abs(array) > _INT64_SAFE
        if too_big.any():
            where = np.argwhere(too_big)[0]
            raise InvalidDatasetError(
                f"{what} hold the value {array[tuple(where)]!r} at index "
                f"{tuple(int(w) for w in where)}, not a token id; token ids are in [0, vocab_size)"
            )
    return array.astype(np.int64)


def _positions_preview(rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> str:
    shown = ", ".join(
        f"sample {int(r)} position {int(c)}: {int(v)}"
        for r, c, v in zip(rows[:5], cols[:5], values[:5], strict=True)
    )
    return shown + (f", ... ({rows.size} in all)" if rows.size > 5 else "")


def _as_embeddings(embeddings: Any, vocab_size: int | None = None) -> Any:
    """A validated float64 table, or a :class:`OneHotEmbeddings` for ``"onehot"``."""
    if isinstance(embeddings, OneHotEmbeddings):
        return embeddings
    if isinstance(embeddings, str):
        if embeddings != "onehot":
            raise InvalidDatasetError(
                f"embeddings given as a string must be 'onehot', got {embeddings!r}; pass an "
                "array of shape (vocab_size, embedding_dim) or use make_embeddings(kind, ...)"
            )
        if vocab_size is None:
            raise InvalidDatasetError(
                "embeddings='onehot' needs the vocabulary size: pass vocab_size= or "
                "OneHotEmbeddings(vocab_size)"
            )
        return OneHotEmbeddings(vocab_size)
    try:
        raw = np.asarray(embeddings)
        if raw.dtype.kind == "c":
            raise InvalidDatasetError(
                "embeddings must be real numbers, got complex values; pass the real part or a "
                "real table of shape (vocab_size, embedding_dim)"
            )
        E = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidDatasetError):
            raise
        raise InvalidDatasetError(
            f"embeddings must be a numeric array of shape (vocab_size, embedding_dim): {exc}"
        ) from None
    if E.ndim != 2 or E.shape[0] == 0 or E.shape[1] == 0:
        raise InvalidDatasetError(
            f"embeddings must have shape (vocab_size, embedding_dim) with both > 0, got shape "
            f"{E.shape}; pass one row per token"
        )
    bad = np.flatnonzero(~np.isfinite(E).all(axis=1))
    if bad.size:
        raise InvalidDatasetError(
            f"embeddings of tokens {_list_preview(bad)} contain NaN or inf; replace them with "
            "finite values"
        )
    return E


def _flatten_sequences(sequences: Any) -> tuple[np.ndarray, np.ndarray]:
    """Turn a padded 2-D array (pad -1 on the right) or a list of sequences into CSR arrays."""
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        return _flatten_padded(sequences)
    if isinstance(sequences, np.ndarray) and sequences.ndim != 1:
        raise InvalidDatasetError(
            f"sequences must be a 2-D array right-padded with -1 or a list of sequences, got an "
            f"array of shape {sequences.shape}"
        )
    try:
        seqs = [np.asarray(s) for s in sequences]
    except TypeError:
        raise InvalidDatasetError("sequences must be a list of token-id sequences") from None
    lengths = np.fromiter((s.size for s in seqs), dtype=np.int64, count=len(seqs))
    for i, s in enumerate(seqs):
        if s.ndim != 1:
            raise InvalidDatasetError(f"sequence of sample {i} must be 1-D, got shape {s.shape}")
        if s.size and not (
            (np.issubdtype(s.dtype, np.integer) and s.dtype != np.bool_) or _is_integral_float(s)
        ):
            raise InvalidDatasetError(
                f"sequence of sample {i} must hold integer token ids, got dtype {s.dtype}"
            )
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = (
        np.concatenate([_to_int64(s, f"sequence of sample {i}") for i, s in enumerate(seqs)])
        if seqs
        else np.zeros(0, np.int64)
    )
    return tokens, offsets


def _is_integral_float(array: np.ndarray) -> bool:
    return (
        np.issubdtype(array.dtype, np.floating)
        and bool(np.isfinite(array).all())
        and bool(np.all(np.mod(array, 1) == 0))
    )


def _flatten_padded(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not (
        (np.issubdtype(padded.dtype, np.integer) and padded.dtype != np.bool_)
        or _is_integral_float(padded)
    ):
        raise InvalidDatasetError(
            f"sequences must hold integer token ids (pad with -1), got dtype {padded.dtype}"
        )
    padded = _to_int64(padded, "sequences")
    pad = padded == -1
    other = (padded < 0) & ~pad
    if other.any():
        rows, cols = np.nonzero(other)
        raise InvalidDatasetError(
            f"negative token ids ({_positions_preview(rows, cols, padded[rows, cols])}); only -1 "
            "is allowed, as padding after a sequence's last token: fix the ids"
        )
    valid = ~pad
    lengths = valid.sum(axis=1)
    # padding must be trailing: position t is valid iff t < length
    expected = np.arange(padded.shape[1])[None, :] < lengths[:, None]
    bad_rows = np.flatnonzero((valid != expected).any(axis=1))
    if bad_rows.size:
        raise InvalidDatasetError(
            f"sequences of samples {_list_preview(bad_rows)} have negative entries before their "
            "last token (-1 is padding); pad with -1 on the right only"
        )
    offsets = np.zeros(padded.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return padded[valid], offsets


def _repair_labels(
    tokens: np.ndarray, offsets: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The paper's label rule on valid CSR arrays (in place on ``labels``, which is returned):
    every label absent from its sequence becomes a uniform token of that sequence. The checked
    public form is :func:`attnmech.data.generators.repair_labels`."""
    bad = unrealizable_samples(tokens, offsets, labels)
    if bad.size:
        lengths = np.diff(offsets)[bad]
        pick = offsets[bad] + (rng.random(bad.size) * lengths).astype(np.int64)
        labels[bad] = tokens[pick]
    return labels


def unrealizable_samples(tokens: np.ndarray, offsets: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of samples whose label does not occur in their sequence.

    Parameters
    ----------
    tokens : ndarray of shape (total_tokens,)
        Concatenated sequences.
    offsets : ndarray of shape (n_samples + 1,)
        Sequence ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
    labels : ndarray of shape (n_samples,)
    """
    n = labels.shape[0]
    sample_of = np.repeat(np.arange(n), np.diff(offsets))
    hits = np.bincount(sample_of[tokens == labels[sample_of]], minlength=n)
    return np.flatnonzero(hits == 0)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort-based ``np.unique``: much faster on large int64 arrays)."""
    values = np.sort(values, kind="stable" if values.size < 2**16 else None)
    if values.size == 0:
        return values
    keep = np.empty(values.size, dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def priority_edges(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All distinct token-priority edges ``(query, i, j)``: ``i -> j`` in ``G^(query)``.

    Every sample ``(X, y)`` with last token ``k`` gives ``y -> j`` for each token ``j != y`` of
    ``X`` (docs/theory.md#token-priority-graphs). Returns three int64 arrays of equal length, sorted by (query, i, j).
    :mod:`attnmech.theory.graphs` builds the graphs from these edges.
    """
    K = dataset.vocab_size
    sample_of = dataset.sample_of_token
    query = dataset.last_tokens[sample_of]
    label = dataset.labels[sample_of]
    keep = dataset.tokens != label
    keys = sorted_unique((query[keep] * K + label[keep]) * K + dataset.tokens[keep])
    return keys // (K * K), (keys // K) % K, keys % K


def has_priority_cycle(dataset: Dataset) -> bool:
    """Whether some token-priority graph has an SCC of more than one token (a cyclic dataset).

    The same answer as ``build_priority_graphs(dataset).is_cyclic``, without the SCC order and
    levels, so that :func:`make_dataset` can redraw without importing :mod:`attnmech.theory.graphs`.
    """
    query, src, dst = priority_edges(dataset)
    if query.size == 0:
        return False
    K = dataset.vocab_size
    if K <= _DENSE_CYCLE_VOCAB:  # small graphs: dense closure, no sparse matrix to build
        return _has_cycle_dense(query, src, dst, K)
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    src_key, dst_key = query * K + src, query * K + dst
    nodes = sorted_unique(np.concatenate([src_key, dst_key]))
    adjacency = sp.csr_matrix(
        (
            np.ones(src_key.size, dtype=np.int8),
            (np.searchsorted(nodes, src_key), np.searchsorted(nodes, dst_key)),
        ),
        shape=(nodes.size, nodes.size),
    )
    n_components, _ = connected_components(adjacency, directed=True, connection="strong")
    return bool(n_components < nodes.size)


_DENSE_CYCLE_VOCAB = 64  # up to this vocabulary, has_priority_cycle uses dense K x K matrices


def _has_cycle_dense(query: np.ndarray, src: np.ndarray, dst: np.ndarray, K: int) -> bool:
    """Whether a graph ``G^(query)`` (edges ``src -> dst``, no self-loops) has a cycle: some
    token reaching itself in the transitive closure, built by repeated squaring of the stacked
    ``K x K`` adjacency matrices (an SCC of more than one token exactly when there is a cycle)."""
    _, graph = np.unique(query, return_inverse=True)
    reach = np.zeros((int(graph.max()) + 1, K, K))
    reach[graph, src, dst] = 1.0
    while True:
        grown = ((reach + reach @ reach) > 0).astype(np.float64)
        if np.array_equal(grown, reach):
            break
        reach = grown
    return bool(np.trace(reach, axis1=1, axis2=2).any())


class Dataset:
    """A next-token prediction dataset.

    Parameters
    ----------
    sequences : list of sequences of int, or ndarray of shape (n_samples, max_length)
        Token ids in ``[0, vocab_size)``. A 2-D array is right-padded with -1. Sequences may have
        different lengths and may repeat tokens; the last entry of each is its query (last token).
    labels : array-like of int of shape (n_samples,)
        Next-token labels.
    embeddings : array-like of shape (vocab_size, embedding_dim), "onehot" or OneHotEmbeddings
        Token embeddings, one row per token (float64). ``"onehot"`` (or
        :class:`OneHotEmbeddings`) stores nothing of size ``K x K``: ``W`` is then the score table
        and :func:`attnmech.solve` works in token space.
    on_unrealizable : {"raise", "drop", "repair", "keep"}, default="raise"
        What to do with samples whose label is not in their sequence (docs/theory.md#data): raise
        :class:`UnrealizableLabelError`, drop them, replace the label by a uniform token of the
        sequence (seeded by ``seed``), or keep them (the log-loss is then infinite; only for
        experiments outside the theorem).
    seed : int, default=0
        Seed for ``on_unrealizable="repair"``.
    vocab_size : int, optional
        Only with ``embeddings="onehot"``: the vocabulary size (default: largest token id or
        label plus one).

    Attributes
    ----------
    tokens : ndarray of shape (total_tokens,)
        All sequences concatenated.
    offsets : ndarray of shape (n_samples + 1,)
        Sequence ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
    labels : ndarray of shape (n_samples,)
    embeddings : ndarray of shape (vocab_size, embedding_dim)
        For one-hot embeddings the dense identity, built on first access after a memory check
        (see :meth:`OneHotEmbeddings.to_dense`); token-space code uses :attr:`embedding_table`.
    is_onehot : bool
    embeddings_kind : {"dense", "onehot"}

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset([[0, 1], [0, 1], [0, 1]], [0, 0, 1], np.eye(2))
    >>> ds.n_samples, ds.vocab_size, ds.last_tokens.tolist()
    (3, 2, [1, 1, 1])
    """

    __slots__ = ("tokens", "offsets", "labels", "_embeddings", "_dense", "dropped")

    def __init__(
        self,
        sequences: Any,
        labels: Any,
        embeddings: Any,
        *,
        on_unrealizable: Literal["raise", "drop", "repair", "keep"] = "raise",
        seed: int = 0,
        vocab_size: int | None = None,
    ) -> None:
        check_params(
            {"on_unrealizable": on_unrealizable, "vocab_size": vocab_size},
            DATASET_PARAMS,
            where="Dataset",
        )
        if on_unrealizable == "repair":
            as_rng(seed)  # a bad seed is refused up front, whether or not repair is needed
        tokens, offsets = _flatten_sequences(sequences)
        try:
            labels_arr = np.asarray(labels)
        except (TypeError, ValueError) as exc:
            raise InvalidDatasetError(f"labels must be a 1-D array of token ids: {exc}") from None
        if vocab_size is None and isinstance(embeddings, str) and embeddings == "onehot":
            top = max(int(tokens.max(initial=-1)), int(np.max(labels_arr, initial=-1)))
            vocab_size = top + 1 if top >= 0 else None
        elif vocab_size is not None and not isinstance(embeddings, str):
            raise InvalidDatasetError(
                "vocab_size= is only for embeddings='onehot'; an embedding table sets the "
                "vocabulary size by its number of rows"
            )
        E = _as_embeddings(embeddings, vocab_size)
        if labels_arr.ndim != 1:
            raise InvalidDatasetError(f"labels must be 1-D, got shape {labels_arr.shape}")
        if labels_arr.size and not (
            (np.issubdtype(labels_arr.dtype, np.integer) and labels_arr.dtype != np.bool_)
            or _is_integral_float(labels_arr)
        ):
            raise InvalidDatasetError(f"labels must be integer token ids, got {labels_arr.dtype}")
        labels_arr = _to_int64(labels_arr, "labels")
        n = offsets.size - 1
        if n == 0:
            raise InvalidDatasetError("the dataset is empty; give at least one sample")
        if labels_arr.size != n:
            raise InvalidDatasetError(
                f"got {n} sequences but {labels_arr.size} labels; give one label per sequence"
            )
        lengths = np.diff(offsets)
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            raise InvalidDatasetError(
                f"sequences of samples {_list_preview(empty)} are empty; every sequence needs at "
                "least its last token"
            )
        K = E.shape[0]
        bad_tok = (tokens < 0) | (tokens >= K)
        if bad_tok.any():
            sample_of = np.repeat(np.arange(n), lengths)
            rows = np.unique(sample_of[bad_tok])
            where = np.flatnonzero(bad_tok)
            positions = _positions_preview(
                sample_of[where], where - offsets[sample_of[where]], tokens[where]
            )
            raise InvalidDatasetError(
                f"samples {_list_preview(rows)} hold token ids outside [0, {K}) ({positions}; "
                f"vocab_size is the number of embedding rows, {K}); fix the ids or give more "
                "embedding rows (in a padded array only -1 after the last token is padding)"
            )
        bad_lab = np.flatnonzero((labels_arr < 0) | (labels_arr >= K))
        if bad_lab.size:
            raise InvalidDatasetError(
                f"labels of samples {_list_preview(bad_lab)} are outside [0, {K}); fix them or "
                "give "
                "more embedding rows"
            )
        dropped = np.zeros(0, dtype=np.int64)
        if on_unrealizable != "keep":
            bad = unrealizable_samples(tokens, offsets, labels_arr)
            if bad.size:
                if on_unrealizable == "raise":
                    raise UnrealizableLabelError(
                        f"labels of samples {_list_preview(bad)} do not occur in their sequences "
                        "(the log-loss is infinite); pass on_unrealizable='drop' or 'repair', or "
                        "call attnmech.repair_labels()",
                        samples=bad.tolist(),
                    )
                if on_unrealizable == "drop":
                    if bad.size == n:
                        raise InvalidDatasetError(
                            "every label is absent from its sequence; nothing is left after "
                            "dropping them"
                        )
                    keep = np.ones(n, dtype=bool)
                    keep[bad] = False
                    tokens, offsets = _take(tokens, offsets, np.flatnonzero(keep))
                    labels_arr = labels_arr[keep]
                    dropped = bad
                    logger.info("dropped %d unrealizable samples", bad.size)
                else:  # "repair"
                    labels_arr = _repair_labels(
                        tokens, offsets, np.array(labels_arr, dtype=np.int64), as_rng(seed)
                    )
        self.tokens = frozen(np.asarray(tokens, dtype=np.int64))
        self.offsets = frozen(np.asarray(offsets, dtype=np.int64))
        self.labels = frozen(labels_arr)
        self._embeddings = E if isinstance(E, OneHotEmbeddings) else frozen(E)
        self._dense: np.ndarray | None = None
        self.dropped = frozen(dropped)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def _from_valid(
        cls, tokens: np.ndarray, offsets: np.ndarray, labels: np.ndarray, embeddings: Any
    ) -> Dataset:
        """Build without validation (internal: inputs are known to be valid)."""
        obj = cls.__new__(cls)
        obj.tokens = frozen(np.asarray(tokens, dtype=np.int64))
        obj.offsets = frozen(np.asarray(offsets, dtype=np.int64))
        obj.labels = frozen(np.asarray(labels, dtype=np.int64))
        if isinstance(embeddings, OneHotEmbeddings):
            obj._embeddings = embeddings
        else:
            obj._embeddings = frozen(np.asarray(embeddings, dtype=np.float64))
        obj._dense = None
        obj.dropped = frozen(np.zeros(0, dtype=np.int64))
        return obj

    def subset(self, indices: Any) -> Dataset:
        """The samples at ``indices`` (an index array or boolean mask), same embeddings."""
        selection = np.asarray(indices)
        if selection.size == 0:  # an empty list is float64 to numpy, not a valid index
            raise InvalidDatasetError("subset selects no samples")
        try:
            idx = np.arange(self.n_samples)[selection]
        except IndexError as exc:
            raise InvalidDatasetError(
                f"bad subset of a dataset with {self.n_samples} samples: {exc}"
            ) from None
        if idx.size == 0:
            raise InvalidDatasetError("subset selects no samples")
        tokens, offsets = _take(self.tokens, self.offsets, idx)
        return Dataset._from_valid(tokens, offsets, self.labels[idx], self._embeddings)

    def with_embeddings(self, embeddings: Any) -> Dataset:
        """The same sequences and labels with another embedding table of the same vocab_size."""
        E = _as_embeddings(embeddings, self.vocab_size)
        if E.shape[0] != self.vocab_size:
            raise InvalidDatasetError(
                f"new embeddings have {E.shape[0]} rows but the dataset's vocab_size is "
                f"{self.vocab_size}"
            )
        return Dataset._from_valid(self.tokens, self.offsets, self.labels, E)

    # ------------------------------------------------------------------ views
    @property
    def n_samples(self) -> int:
        """Number of sequences."""
        return int(self.offsets.size - 1)

    def __len__(self) -> int:
        return self.n_samples

    @property
    def embeddings(self) -> np.ndarray:
        """ndarray of shape (vocab_size, embedding_dim): the embedding table (read-only).

        For one-hot embeddings the identity is built on first access, after a memory check
        (:class:`InvalidParameterError` above 2 GiB).
        """
        E = self._embeddings
        if not isinstance(E, OneHotEmbeddings):
            return E
        if self._dense is None:
            self._dense = E.to_dense()
        return self._dense

    @property
    def embedding_table(self) -> Any:
        """The stored embeddings: an ndarray, or a :class:`OneHotEmbeddings` (never densified)."""
        return self._embeddings

    @property
    def is_onehot(self) -> bool:
        """True when the embeddings are implicit one-hot vectors."""
        return isinstance(self._embeddings, OneHotEmbeddings)

    @property
    def embeddings_kind(self) -> str:
        """``"onehot"`` for implicit one-hot embeddings, else ``"dense"``."""
        return "onehot" if self.is_onehot else "dense"

    @property
    def vocab_size(self) -> int:
        """Vocabulary size K (rows of the embedding table)."""
        return int(self._embeddings.shape[0])

    @property
    def embedding_dim(self) -> int:
        """Embedding dimension d (columns of the embedding table)."""
        return int(self._embeddings.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """ndarray of shape (n_samples,): length of each sequence."""
        return np.diff(self.offsets)

    @property
    def max_length(self) -> int:
        """Length of the longest sequence."""
        return int(self.lengths.max())

    @property
    def last_tokens(self) -> np.ndarray:
        """ndarray of shape (n_samples,): the query (last token) of each sequence."""
        return self.tokens[self.offsets[1:] - 1]

    @property
    def sample_of_token(self) -> np.ndarray:
        """ndarray of shape (total_tokens,): the sample each entry of ``tokens`` belongs to."""
        return np.repeat(np.arange(self.n_samples), self.lengths)

    def sequence(self, i: int) -> np.ndarray:
        """The token ids of sample ``i``."""
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    @property
    def sequences(self) -> list[np.ndarray]:
        """The sequences as a list of arrays (a Python loop: for display, not for hot paths)."""
        return [self.sequence(i) for i in range(self.n_samples)]

    def padded(self, fill: int = -1) -> np.ndarray:
        """ndarray of shape (n_samples, max_length): sequences right-padded with ``fill``."""
        lengths = self.lengths
        out = np.full((self.n_samples, self.max_length), fill, dtype=np.int64)
        mask = np.arange(self.max_length)[None, :] < lengths[:, None]
        out[mask] = self.tokens
        return out

    def padded_mask(self) -> np.ndarray:
        """ndarray of bool of shape (n_samples, max_length): True where ``padded()`` has a token."""
        return np.arange(self.max_length)[None, :] < self.lengths[:, None]

    def __repr__(self) -> str:
        lengths = self.lengths
        length = (
            str(int(lengths[0]))
            if lengths.min() == lengths.max()
            else f"{int(lengths.min())}..{int(lengths.max())}"
        )
        return (
            f"Dataset(n_samples={self.n_samples}, vocab_size={self.vocab_size}, "
            f"embedding_dim={self.embedding_dim}, length={length})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return (
            np.array_equal(self.offsets, other.offsets)
            and np.array_equal(self.tokens, other.tokens)
            and np.array_equal(self.labels, other.labels)
            and self.is_onehot == other.is_onehot
            and (
                self._embeddings == other._embeddings
                if self.is_onehot
                else np.array_equal(self._embeddings, other._embeddings)
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the dataset's content: sequences, labels and embeddings.

        Canonical form hashed, in this order: the ASCII tag ``attnmech-dataset-v1``; then for each
        of ``offsets`` (int64, n + 1), ``tokens`` (int64, total tokens), ``labels`` (int64, n) and
        ``embeddings`` (float64, K x d, C order; for implicit one-hot embeddings instead
        ``embeddings_onehot``, the vocabulary size as one int64): the field name, its shape written
        as ``"(a, b)"`` (ASCII), and its raw little-endian bytes. Two datasets have the same
        fingerprint exactly when they are equal (``==``); samples dropped at load time do not
        count. Saved theories record it (see :meth:`attnmech.theory.Theory.check_dataset`).

        Examples
        --------
        >>> import numpy as np
        >>> a = Dataset([[0, 1]] * 3, [0, 0, 1], np.eye(2))
        >>> b = Dataset([[0, 1]] * 3, [0, 1, 1], np.eye(2))
        >>> a.fingerprint() == Dataset([[0, 1]] * 3, [0, 0, 1], np.eye(2)).fingerprint()
        True
        >>> a.fingerprint() == b.fingerprint()
        False
        """
        digest = hashlib.sha256(b"attnmech-dataset-v1")
        fields = [
            ("offsets", self.offsets, "<i8"),
            ("tokens", self.tokens, "<i8"),
            ("labels", self.labels, "<i8"),
        ]
        if self.is_onehot:  # implicit one-hot embeddings: their kind and size, never a K x K table
            fields.append(("embeddings_onehot", np.array([self.vocab_size]), "<i8"))
        else:
            fields.append(("embeddings", self.embeddings, "<f8"))
        for name, array, dtype in fields:
            canonical = np.ascontiguousarray(array, dtype=dtype)
            if name == "embeddings":
                canonical = canonical + 0.0  # -0.0 and 0.0 compare equal: hash them alike
            digest.update(f"\n{name} {tuple(canonical.shape)}\n".encode("ascii"))
            digest.update(canonical.tobytes(order="C"))
        return digest.hexdigest()


    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str], *, embeddings_path: str | None = None) -> Path:
        """Write the dataset to ``path`` atomically (:func:`attnmech.data.files.save_dataset`).

        ``.npz`` (format ``attnmech-dataset-v2`` through :func:`attnmech._persist.write`:
        ``sequences`` int64 (n, T) right-padded with -1, ``labels`` int64 (n,), ``embeddings``
        float64 (K, d), or for one-hot embeddings ``embeddings_kind`` = ``"onehot"`` and
        ``vocab_size``; ``meta`` with the fingerprint and a checksum) or
        ``.jsonl`` (one ``{"sequence": [...], "label": y}`` per line, embeddings in
        ``embeddings_path``, default ``<stem>.embeddings.npy``). Returns the path written;
        :func:`attnmech.load_dataset` reads it back.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidParameterError(
                f"Dataset.save: path must be a file name ending in .npz or .jsonl, got "
                f"{type(path).__name__}"
            )
        path = Path(path)
        if path.suffix == ".npz":
            arrays: dict[str, Any] = {"sequences": self.padded(), "labels": self.labels}
            if self.is_onehot:
                arrays["embeddings_kind"] = np.array("onehot")
                arrays["vocab_size"] = np.array(self.vocab_size, dtype=np.int64)
            else:
                arrays["embeddings"] = self.embeddings
            _persist.write(path, "dataset", arrays, dataset_fingerprint=self.fingerprint())
        elif path.suffix == ".jsonl":
            emb_path = Path(embeddings_path) if embeddings_path else _default_embeddings_path(path)
            with atomic_path(emb_path, suffix=".npy") as tmp:
                if self.is_onehot:
                    np.save(tmp, np.array(f"onehot:{self.vocab_size}"))
                else:
                    np.save(tmp, self.embeddings)
            lines = [
                json.dumps({"sequence": seq.tolist(), "label": int(y)})
                for seq, y in zip(self.sequences, self.labels, strict=True)
            ]
            with atomic_path(path) as tmp:
                tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            raise InvalidParameterError(
                f"Dataset.save: path must end in .npz or .jsonl, got {str(path)!r}; use a .npz or "
                ".jsonl file name"
            )
        return path


def _default_embeddings_path(path: Path) -> Path:
    return path.with_name(path.stem + ".embeddings.npy")


def _take(
    tokens: np.ndarray, offsets: np.ndarray, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows ``idx`` of (tokens, offsets), vectorised."""
    lengths = np.diff(offsets)[idx]
    new_offsets = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    starts = np.repeat(offsets[idx] - new_offsets[:-1], lengths)
    gather = starts + np.arange(new_offsets[-1])
    return tokens[gather], new_offsets


# Names that lived here before the module was split by idea: generators and file I/O. They still
# resolve as ``attnmech.data.dataset.X`` (other modules import them from their new homes).
_MOVED = {
    "make_embeddings": "generators",
    "make_dataset": "generators",
    "repair_labels": "generators",
    "parse_embeddings_spec": "generators",
    "load_dataset": "files",
    "save_dataset": "files",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __package__), name)
