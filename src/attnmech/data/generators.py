"""Dataset generators: embeddings, the paper's random datasets, label repair, generator specs.

:func:`make_embeddings` draws token embeddings (``random``, ``ortho``, ``equicorr``, ``onehot``),
:func:`make_dataset` draws a dataset as in the paper's experiments (optionally redrawn until it is
cyclic or acyclic), :func:`repair_labels` applies the paper's label rule, and
:func:`parse_embeddings_spec` reads specs such as ``"random:d=8,seed=0"``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._choices import EMBEDDING_KINDS, GRAPH_KINDS
from .._validation import Interval, Options, check_params, register
from ..errors import InvalidDatasetError, InvalidParameterError
from .dataset import (
    Dataset,
    OneHotEmbeddings,
    _as_embeddings,
    as_rng,
    check_memory,
    has_priority_cycle,
    _repair_labels,
)

__all__ = ["make_embeddings", "make_dataset", "repair_labels", "parse_embeddings_spec"]

_POSITIVE_INT = Interval(numbers.Integral, 1, None)

MAKE_EMBEDDINGS_PARAMS = register(
    "make_embeddings",
    {
        "kind": [Options(EMBEDDING_KINDS)],
        "vocab_size": [_POSITIVE_INT],
        "embedding_dim": [_POSITIVE_INT, None],
        "rho": [Interval(numbers.Real, None, None)],
    },
)

MAKE_DATASET_PARAMS = register(
    "make_dataset",
    {
        "n_samples": [_POSITIVE_INT],
        "seq_len": [_POSITIVE_INT],
        "vocab_size": [_POSITIVE_INT],
        "embedding_dim": [_POSITIVE_INT],
        "graph": [Options(GRAPH_KINDS)],
        "rho": [Interval(numbers.Real, None, None)],
        "max_tries": [_POSITIVE_INT],
    },
)


def repair_labels(
    tokens: Any, offsets: Any, labels: Any, *, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Replace every label absent from its sequence by a uniformly drawn token of that sequence.

    This is the paper's generator rule (docs/theory.md#the-papers-experiments). Accepts the CSR arrays of a dataset
    (``Dataset.tokens``, ``Dataset.offsets``) and the labels; returns new labels.

    Examples
    --------
    >>> import numpy as np
    >>> repair_labels(np.array([3, 3, 5]), np.array([0, 2, 3]), np.array([3, 4])).tolist()
    [3, 5]
    """
    try:
        tokens = np.asarray(tokens, dtype=np.int64)
        offsets = np.asarray(offsets, dtype=np.int64)
        labels = np.array(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidDatasetError(
            f"repair_labels needs integer arrays (Dataset.tokens, Dataset.offsets, labels): {exc}"
        ) from None
    if (
        tokens.ndim != 1
        or offsets.ndim != 1
        or labels.shape != (max(offsets.size - 1, 0),)
        or offsets.size == 0
        or offsets[0] != 0
        or offsets[-1] != tokens.size
        or np.any(np.diff(offsets) < 1)
    ):
        raise InvalidDatasetError(
            "repair_labels: offsets must start at 0, end at len(tokens) and grow by at least 1, "
            "with one label per sequence; pass Dataset.tokens, Dataset.offsets and its labels"
        )
    return _repair_labels(tokens, offsets, labels, as_rng(seed))



# ---------------------------------------------------------------------------------- generators
def make_embeddings(
    kind: str,
    vocab_size: int,
    embedding_dim: int | None = None,
    *,
    seed: int | np.random.Generator = 0,
    rho: float = 0.5,
) -> Any:
    """Token embeddings of shape (vocab_size, embedding_dim), float64.

    Parameters
    ----------
    kind : {"random", "ortho", "equicorr", "onehot"}
        ``onehot``: returns a :class:`OneHotEmbeddings` (implicit identity, embedding_dim =
        vocab_size; ``embedding_dim`` may be omitted).
        ``random``: i.i.d. Gaussian rows normalised to unit norm (the paper's experiments).
        ``ortho``: orthonormal rows (needs vocab_size <= embedding_dim).
        ``equicorr``: unit rows with pairwise inner product ``rho`` (needs vocab_size <=
        embedding_dim and -1/(vocab_size - 1) < rho < 1), randomly rotated.
    seed : int or numpy Generator
    rho : float, default=0.5
        Pairwise correlation for ``equicorr``.

    Examples
    --------
    >>> E = make_embeddings("equicorr", 3, 4, rho=0.25, seed=1)
    >>> np.round(E @ E.T, 6).tolist()
    [[1.0, 0.25, 0.25], [0.25, 1.0, 0.25], [0.25, 0.25, 1.0]]
    """
    check_params(
        {"kind": kind, "vocab_size": vocab_size, "embedding_dim": embedding_dim, "rho": rho},
        MAKE_EMBEDDINGS_PARAMS,
        where="make_embeddings",
    )
    if kind == "onehot":
        if embedding_dim is not None and embedding_dim != vocab_size:
            raise InvalidParameterError(
                f"onehot embeddings have embedding_dim = vocab_size = {vocab_size}, got "
                f"embedding_dim={embedding_dim}; omit it or pass {vocab_size}"
            )
        return OneHotEmbeddings(vocab_size)
    if embedding_dim is None:
        raise InvalidParameterError(
            f"make_embeddings: {kind} embeddings need embedding_dim, got None"
        )
    rng = as_rng(seed)
    K, d = int(vocab_size), int(embedding_dim)
    dense = 3.0 * d * d if kind in ("ortho", "equicorr") else 0.0  # random rotation (d x d)
    check_memory(
        8.0 * (2.0 * K * d + dense + (K * K if kind == "equicorr" else 0.0)),
        f"{kind} embeddings of shape ({K}, {d})",
        "use a smaller vocab_size or embedding_dim",
    )
    if kind == "random":
        E = rng.standard_normal((K, d))
        return E / np.linalg.norm(E, axis=1, keepdims=True)
    if kind in ("ortho", "equicorr") and K > d:
        raise InvalidParameterError(
            f"{kind} embeddings need vocab_size <= embedding_dim, got {K} > {d}; use "
            "embeddings='random' or a larger embedding_dim"
        )
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    if kind == "ortho":
        return np.ascontiguousarray(rotation[:K])
    if kind == "equicorr":
        if not (-1.0 / max(K - 1, 1) < rho < 1.0):
            raise InvalidParameterError(
                f"equicorr needs -1/(vocab_size-1) < rho < 1, got rho={rho} with vocab_size={K}"
            )
        gram = (1.0 - rho) * np.eye(K) + rho * np.ones((K, K))
        root = np.linalg.cholesky(gram)  # (K, K), rows have the wanted inner products
        return root @ rotation[:K]
    raise AssertionError(kind)  # pragma: no cover - MAKE_EMBEDDINGS_PARAMS lists the kinds


def _draw_sequences(n: int, T: int, K: int, rng: np.random.Generator) -> np.ndarray:
    """(n, T) token ids: T distinct tokens when T <= K, else a permutation of all K then draws."""
    perms = np.argsort(rng.random((n, K)), axis=1)  # (n, K): a random permutation per row
    if T <= K:
        return perms[:, :T]
    extra = rng.integers(0, K, size=(n, T - K))
    return np.concatenate([perms, extra], axis=1)


def make_dataset(
    n_samples: int,
    seq_len: int,
    vocab_size: int,
    embedding_dim: int,
    *,
    embeddings: Any = "random",
    graph: str = "any",
    seed: int | np.random.Generator = 0,
    rho: float = 0.5,
    max_tries: int = 10_000,
) -> Dataset:
    """Draw a dataset as in the paper's experiments (docs/theory.md#the-papers-experiments).

    Each sequence holds ``seq_len`` distinct tokens when ``seq_len <= vocab_size`` (else a
    permutation of all tokens followed by draws with replacement). The label is uniform on the
    vocabulary and is replaced by a uniform token of the sequence when absent. With
    ``graph="cyclic"`` (or ``"acyclic"``) the whole dataset is redrawn until some token-priority
    graph has an SCC of size > 1 (or none has).

    Parameters
    ----------
    n_samples, seq_len, vocab_size, embedding_dim : int
        n, T, K and d.
    embeddings : {"random", "ortho", "equicorr"} or ndarray of shape (vocab_size, embedding_dim)
    graph : {"cyclic", "acyclic", "any"}
    seed : int or numpy Generator
        All randomness comes from ``np.random.default_rng(seed)``; no global state is touched.
    max_tries : int
        Give up (with an error) after this many redraws.

    Examples
    --------
    >>> ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    >>> ds
    Dataset(n_samples=6, vocab_size=6, embedding_dim=8, length=4)
    """
    check_params(
        {
            "n_samples": n_samples,
            "seq_len": seq_len,
            "vocab_size": vocab_size,
            "embedding_dim": embedding_dim,
            "graph": graph,
            "rho": rho,
            "max_tries": max_tries,
        },
        MAKE_DATASET_PARAMS,
        where="make_dataset",
    )
    rng = as_rng(seed)
    # _draw_sequences: a (n, K) float and int64 permutation, plus the (n, T) sequences
    check_memory(
        8.0 * int(n_samples) * (2.0 * int(vocab_size) + 3.0 * int(seq_len)),
        f"drawing {n_samples} sequences of length {seq_len} over {vocab_size} tokens",
        "use fewer samples (n_samples) or a smaller vocab_size",
    )
    if isinstance(embeddings, str):
        E = make_embeddings(embeddings, vocab_size, embedding_dim, seed=rng, rho=rho)
    else:
        E = _as_embeddings(embeddings, vocab_size)
        if E.shape != (vocab_size, embedding_dim):
            raise InvalidDatasetError(
                f"embeddings have shape {E.shape}, expected ({vocab_size}, {embedding_dim})"
            )
    n, T, K = int(n_samples), int(seq_len), int(vocab_size)
    offsets = np.arange(0, n * T + 1, T, dtype=np.int64)
    for _ in range(max_tries):
        seqs = _draw_sequences(n, T, K, rng)
        labels = rng.integers(0, K, size=n)
        labels = repair_labels(seqs.ravel(), offsets, labels, seed=rng)
        ds = Dataset._from_valid(seqs.ravel(), offsets, labels, E)
        if graph == "any":
            return ds
        cyclic = has_priority_cycle(ds)
        if cyclic == (graph == "cyclic"):
            return ds
    raise InvalidParameterError(
        f"no {graph} dataset found in {max_tries} draws with n={n}, T={T}, K={K}; change the "
        "sizes or raise max_tries"
    )



def parse_embeddings_spec(spec: str, vocab_size: int) -> Any:
    """Embeddings from a generator spec such as ``"random:d=8,seed=0"`` or ``"ortho:d=16"``.

    ``"onehot"`` (or ``"onehot:K"``) gives :class:`OneHotEmbeddings`.

    Keys: ``d`` (embedding_dim, required), ``seed`` (default 0), ``rho`` (equicorr, default 0.5).
    """
    kind, _, rest = spec.partition(":")
    if kind == "onehot":
        size = int(rest) if rest.strip().isdigit() else vocab_size
        return OneHotEmbeddings(size)
    params: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidParameterError(
                f"bad embeddings spec {spec!r}: expected key=value, got {item!r}"
            )
        if key.strip() in params:
            raise InvalidParameterError(
                f"bad embeddings spec {spec!r}: {key.strip()!r} is given twice; give each key once"
            )
        params[key.strip()] = value.strip()
    unknown = set(params) - {"d", "seed", "rho"}
    if unknown or "d" not in params:
        raise InvalidParameterError(
            f"bad embeddings spec {spec!r}: write KIND:d=DIM[,seed=S][,rho=R] with KIND one of "
            f"{', '.join(EMBEDDING_KINDS)}"
        )
    try:
        d, seed, rho = int(params["d"]), int(params.get("seed", 0)), float(params.get("rho", 0.5))
    except ValueError as exc:
        raise InvalidParameterError(f"bad embeddings spec {spec!r}: {exc}") from None
    return make_embeddings(kind, vocab_size, d, seed=seed, rho=rho)

