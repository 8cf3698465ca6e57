"""A head's per-query order against the data's token-priority graphs.

For each query token ``k`` that ends some sequence, ``G^(k)`` (:mod:`attnmech.theory.graphs`)
orders the
tokens seen under ``k``: an edge ``y -> j`` between different SCCs is a strict priority (``y`` was
the label while ``j`` was in the window), SCC levels rank the SCCs, and tokens of one SCC have
conflicting priorities that the theory leaves to the finite part. Three measures per query:

- ``strict_edge_agreement``: share of the strict edges ``y -> j`` with ``score(y) > score(j)``;
- ``kendall_tau``: Kendall's tau-b between ``-level`` (higher priority first) and the scores of
  the tokens of ``G^(k)``;
- ``scc_ari``: adjusted Rand index between the SCCs and the head's tie clusters
  (:func:`tie_clusters`).

Overall values: strict-edge agreement pooled over all strict edges; tau and ARI averaged over the
queries where they are defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..theory.graphs import PriorityGraphs

__all__ = [
    "PriorityComparison",
    "compare_priorities",
    "kendall_tau_b",
    "adjusted_rand_index",
    "tie_clusters",
]


def kendall_tau_b(x: Any, y: Any, *, chunk: int = 512) -> float:
    """Kendall's tau-b of two equally long vectors (nan when either is constant or n < 2).

    ``(C - D) / sqrt((n0 - n1) (n0 - n2))`` with ``C - D = sum_{i<j} sign(x_i - x_j)
    sign(y_i - y_j)``, ``n0 = n (n - 1) / 2`` and ``n1``, ``n2`` the pairs tied in ``x``, ``y``.
    Computed from all pairs, ``chunk`` rows at a time.
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.size != b.size:
        raise InvalidParameterError(f"kendall_tau_b needs equal lengths, got {a.size}, {b.size}")
    n = a.size
    if n < 2:
        return float("nan")
    s = tied_a = tied_b = 0.0
    for start in range(0, n, chunk):
        sa = np.sign(a[start : start + chunk, None] - a[None, :])
        sb = np.sign(b[start : start + chunk, None] - b[None, :])
        s += float((sa * sb).sum())
        tied_a += float((sa == 0).sum())
        tied_b += float((sb == 0).sum())
    # ordered pairs counted twice, the diagonal n times as a tie
    s /= 2.0
    n0 = n * (n - 1) / 2.0
    n1 = (tied_a - n) / 2.0
    n2 = (tied_b - n) / 2.0
    denom = np.sqrt((n0 - n1) * (n0 - n2))
    return float(s / denom) if denom > 0 else float("nan")


def adjusted_rand_index(labels_a: Any, labels_b: Any) -> float:
    """Adjusted Rand index (Hubert and Arabie) of two partitions given as label vectors.

    ``(index - expected) / (max - expected)`` over the contingency table, with ``index =
    sum C(n_ij, 2)``, ``expected = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(n, 2)`` and ``max`` the mean
    of the two row/column sums. 1.0 when the partitions are equal (also in the degenerate cases
    where the formula is 0/0), nan for fewer than two items.
    """
    a = np.asarray(labels_a).ravel()
    b = np.asarray(labels_b).ravel()
    if a.size != b.size:
        raise InvalidParameterError(f"partitions of {a.size} and {b.size} items")
    n = a.size
    if n < 2:
        return float("nan")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1.0)

    def pairs(v: np.ndarray) -> float:
        return float((v * (v - 1) / 2.0).sum())

    index = pairs(table)
    rows, cols = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2.0)
    top = (rows + cols) / 2.0
    if top == expected:
        return 1.0 if index == top else 0.0
    return float((index - expected) / (top - expected))


def tie_clusters(scores: Any, n_clusters: int | None = None, tie_tol: float | None = None) -> Any:
    """Group scores into levels: cut the sorted scores at their largest gaps.

    Exactly one of ``n_clusters`` (cut at the ``n_clusters - 1`` largest gaps) and ``tie_tol``
    (cut at every gap larger than ``tie_tol``) is given. Returns a label per score, 0 for the
    highest level.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    if (n_clusters is None) == (tie_tol is None):
        raise InvalidParameterError("give exactly one of n_clusters and tie_tol")
    order = np.argsort(-s, kind="stable")
    gaps = -np.diff(s[order])  # >= 0
    cut = np.zeros(gaps.size, dtype=bool)
    if tie_tol is not None:
        cut = gaps > float(tie_tol)
    elif n_clusters is not None and n_clusters > 1 and gaps.size:
        k = min(int(n_clusters) - 1, gaps.size)
        cut[np.argsort(-gaps, kind="stable")[:k]] = True
    labels = np.empty(s.size, dtype=np.int64)
    labels[order] = np.concatenate([[0], np.cumsum(cut)]) if s.size else []
    return labels


@dataclass(frozen=True, slots=True)
class PriorityComparison:
    """The head's order against the token-priority graphs (see the module doc).

    Attributes
    ----------
    queries : ndarray of shape (n_queries,)
        Query tokens compared (those of the graphs covered by the table).
    n_tokens, n_strict_edges, n_agree : ndarray of int of shape (n_queries,)
    strict_edge_agreement, kendall_tau, scc_ari : ndarray of shape (n_queries,)
        Per query; nan where undefined (no strict edge; fewer than 2 tokens or a constant side).
    overall : dict of str to float
        ``strict_edge_agreement`` (pooled), ``kendall_tau``, ``scc_ari`` (means over defined
        queries), and the counts ``n_queries``, ``n_strict_edges``.
    skipped_queries : ndarray
        Graph queries left out because the table does not cover them or their tokens.
    """

    queries: np.ndarray
    n_tokens: np.ndarray
    n_strict_edges: np.ndarray
    n_agree: np.ndarray
    strict_edge_agreement: np.ndarray
    kendall_tau: np.ndarray
    scc_ari: np.ndarray
    overall: dict[str, float] = field(default_factory=dict)
    skipped_queries: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def per_query(self, query: int) -> dict[str, float]:
        """The three measures and counts of one query."""
        hit = np.flatnonzero(self.queries == int(query))
        if hit.size == 0:
            raise InvalidParameterError(f"query {query} was not compared")
        i = int(hit[0])
        return {
            "query": int(self.queries[i]),
            "n_tokens": int(self.n_tokens[i]),
            "n_strict_edges": int(self.n_strict_edges[i]),
            "strict_edge_agreement": float(self.strict_edge_agreement[i]),
            "kendall_tau": float(self.kendall_tau[i]),
            "scc_ari": float(self.scc_ari[i]),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: ``overall`` and per-query lists (nan as None)."""

        def clean(v: np.ndarray) -> list[Any]:
            return [None if not np.isfinite(x) else float(x) for x in np.asarray(v, float)]

        return {
            "overall": {k: (None if not np.isfinite(v) else v) for k, v in self.overall.items()},
            "per_query": {
                "query": self.queries.tolist(),
                "n_tokens": self.n_tokens.tolist(),
                "n_strict_edges": self.n_strict_edges.tolist(),
                "strict_edge_agreement": clean(self.strict_edge_agreement),
                "kendall_tau": clean(self.kendall_tau),
                "scc_ari": clean(self.scc_ari),
            },
            "skipped_queries": self.skipped_queries.tolist(),
        }


def compare_priorities(
    scores: Any,
    graphs: PriorityGraphs,
    *,
    tokens: Any = None,
    tie_tol: float | None = None,
) -> PriorityComparison:
    """Compare a score table with token-priority graphs, per query and overall.

    Parameters
    ----------
    scores : array-like of shape (n, n)
        ``scores[q, k]``: the score of key ``k`` under query ``q`` (:func:`head_scores`).
    graphs : PriorityGraphs
    tokens : array-like of int of shape (n,), optional
        The graph token id of each row/column of ``scores`` (default ``0..n-1``).
    tie_tol : float, optional
        Tie clusters for ``scc_ari``: None cuts each query's scores into as many levels as
        ``G^(k)`` has SCCs (at the largest gaps); a float cuts at every gap above it.

    Returns
    -------
    PriorityComparison
    """
    S = np.asarray(scores, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise InvalidParameterError(f"scores must be a square (n, n) table, got shape {S.shape}")
    if not isinstance(graphs, PriorityGraphs):
        raise InvalidParameterError(
            f"graphs must be attnmech PriorityGraphs (build_priority_graphs), got "
            f"{type(graphs).__name__}"
        )
    ids = np.arange(S.shape[0]) if tokens is None else np.asarray(tokens, np.int64).ravel()
    if ids.size != S.shape[0]:
        raise InvalidParameterError(f"tokens has {ids.size} ids for a {S.shape[0]}-row table")
    where = np.full(graphs.vocab_size, -1, dtype=np.int64)
    inside = (ids >= 0) & (ids < graphs.vocab_size)
    where[ids[inside]] = np.flatnonzero(inside)
    rows: list[tuple[int, int, int, int, float, float, float]] = []
    skipped: list[int] = []
    for q in graphs.queries.tolist():
        toks = graphs.tokens(q)
        if where[q] < 0 or (where[toks] < 0).any():
            skipped.append(q)
            continue
        s = S[where[q], where[toks]]
        scc = graphs.scc_of(q, toks)
        level = graphs.scc_level[scc]
        lo, hi = np.searchsorted(graphs.edge_query, [q, q + 1])
        src, dst = graphs.edge_src[lo:hi], graphs.edge_dst[lo:hi]
        strict = graphs.scc_of(q, src) != graphs.scc_of(q, dst)
        col = {int(t): i for i, t in enumerate(toks.tolist())}
        s_src = s[[col[int(t)] for t in src[strict]]]
        s_dst = s[[col[int(t)] for t in dst[strict]]]
        n_strict = int(strict.sum())
        n_agree = int((s_src > s_dst).sum())
        agreement = n_agree / n_strict if n_strict else float("nan")
        tau = kendall_tau_b(-level, s)
        n_scc = int(np.unique(scc).size)
        if tie_tol is None:
            clusters = tie_clusters(s, n_clusters=n_scc)
        else:
            clusters = tie_clusters(s, tie_tol=tie_tol)
        ari = adjusted_rand_index(scc, clusters)
        rows.append((q, toks.size, n_strict, n_agree, agreement, tau, ari))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 7)
    n_strict_total = int(arr[:, 2].sum())

    def mean(v: np.ndarray) -> float:
        ok = np.isfinite(v)
        return float(v[ok].mean()) if ok.any() else float("nan")

    overall = {
        "strict_edge_agreement": (
            float(arr[:, 3].sum() / n_strict_total) if n_strict_total else float("nan")
        ),
        "kendall_tau": mean(arr[:, 5]),
        "scc_ari": mean(arr[:, 6]),
        "n_queries": float(arr.shape[0]),
        "n_strict_edges": float(n_strict_total),
    }
    return PriorityComparison(
        queries=arr[:, 0].astype(np.int64),
        n_tokens=arr[:, 1].astype(np.int64),
        n_strict_edges=arr[:, 2].astype(np.int64),
        n_agree=arr[:, 3].astype(np.int64),
        strict_edge_agreement=arr[:, 4],
        kendall_tau=arr[:, 5],
        scc_ari=arr[:, 6],
        overall=overall,
        skipped_queries=np.asarray(skipped, dtype=np.int64),
    )
