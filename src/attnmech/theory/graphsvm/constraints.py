"""The reduced Graph-SVM constraints ``(e_i - e_j)^T W e_query (>= 1 | = 0)``.

Inside an SCC all scores are equal, so the equalities become the SCC chains of
:func:`attnmech.theory.graphs.scc_chains`; every strict edge is replaced by one edge between SCC
representatives, and edges implied by transitivity in the condensation DAG are dropped. The
reduced set has the same feasible set as the literal one (one constraint per TPG edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..._results import readonly
from ..graphs import PriorityGraphs, scc_chains, sorted_unique

__all__ = ["SVMConstraints", "svm_constraints"]


@dataclass(frozen=True, slots=True)
class SVMConstraints:
    """The reduced Graph-SVM constraints ``(e_i - e_j)^T W e_query (>= 1 | = 0)``.

    Attributes
    ----------
    query, i, j : ndarray of int64 of shape (n_constraints,)
    strict : ndarray of bool of shape (n_constraints,)
        True for ``>= 1`` (strict priority), False for ``= 0`` (same SCC).
    n_original : int
        Number of distinct TPG edges the reduced set stands for.
    """

    query: np.ndarray
    i: np.ndarray
    j: np.ndarray
    strict: np.ndarray
    n_original: int

    @property
    def n_constraints(self) -> int:
        """Number of (reduced) constraints."""
        return int(self.query.size)

    @property
    def rhs(self) -> np.ndarray:
        """ndarray of shape (n_constraints,): 1 for strict constraints, 0 for equalities."""
        return self.strict.astype(np.float64)


def _transitive_reduction(n: int, src: np.ndarray, dst: np.ndarray, max_nnz: int) -> np.ndarray:
    """Mask of DAG edges not implied by a longer path (all kept if the closure gets too big)."""
    if src.size == 0:
        return np.ones(0, dtype=bool)
    if n <= _DENSE_NODES:
        return _transitive_reduction_dense(n, src, dst)
    adjacency = sp.csr_matrix((np.ones(src.size, dtype=np.int32), (src, dst)), shape=(n, n))
    reach = adjacency.copy()
    while True:  # closure by repeated squaring: O(log depth) sparse products
        grown = reach + reach @ reach
        grown.data[:] = 1
        if grown.nnz == reach.nnz:
            break
        if grown.nnz > max_nnz:
            return np.ones(src.size, dtype=bool)
        reach = grown
    implied = (adjacency @ reach).tocsr()  # [s, t] > 0 iff a path s -> u ~> t with u a successor
    implied.sort_indices()
    rows = np.repeat(np.arange(n), np.diff(implied.indptr))
    keys = sorted_unique(rows.astype(np.int64) * n + implied.indices)
    if keys.size == 0:
        return np.ones(src.size, dtype=bool)
    want = src.astype(np.int64) * n + dst
    pos = np.minimum(np.searchsorted(keys, want), keys.size - 1)
    return keys[pos] != want


_DENSE_NODES = 128  # up to this many SCCs, the closure uses dense 0/1 matrices (no sparse setup)


def _transitive_reduction_dense(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """:func:`_transitive_reduction` on a small DAG with dense matrices (the same mask)."""
    adjacency = np.zeros((n, n))
    adjacency[src, dst] = 1.0
    reach = adjacency
    while True:  # closure by repeated squaring, entries kept 0 / 1
        grown = ((reach + reach @ reach) > 0).astype(np.float64)
        if np.array_equal(grown, reach):
            break
        reach = grown
    implied = (adjacency @ reach)[src, dst] > 0  # a path src -> u ~> dst through a successor u
    return ~implied


def _representatives(graphs: PriorityGraphs) -> np.ndarray:
    """The smallest token of every SCC (indexed by SCC id)."""
    order = np.lexsort((graphs.node_token, graphs.node_scc))
    scc, tok = graphs.node_scc[order], graphs.node_token[order]
    first = np.ones(scc.size, dtype=bool)
    first[1:] = scc[1:] != scc[:-1]
    representative = np.empty(graphs.n_sccs, dtype=np.int64)
    representative[scc[first]] = tok[first]
    return representative


def svm_constraints(graphs: PriorityGraphs, *, reduce: bool = True) -> SVMConstraints:
    """The Graph-SVM constraints of ``graphs``, reduced to an equivalent smaller set.

    With ``reduce=True``: one equality chain per SCC (:func:`~attnmech.theory.graphs.scc_chains`),
    one strict constraint per edge of the transitive reduction of each condensation DAG (between
    the smallest tokens of the two SCCs). With ``reduce=False``: one constraint per TPG edge.
    Sorted by (query, i, j).

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset, build_priority_graphs
    >>> cons = svm_constraints(build_priority_graphs(Dataset([[0, 1, 2]], [0], np.eye(3))))
    >>> cons.query.tolist(), cons.i.tolist(), cons.j.tolist(), cons.strict.tolist()
    ([2, 2], [0, 0], [1, 2], [True, True])
    """
    if not reduce:
        same = graphs.scc_of(graphs.edge_query, graphs.edge_src) == graphs.scc_of(
            graphs.edge_query, graphs.edge_dst
        )
        return SVMConstraints(
            readonly(graphs.edge_query, np.int64),
            readonly(graphs.edge_src, np.int64),
            readonly(graphs.edge_dst, np.int64),
            readonly(~same, bool),
            graphs.n_edges,
        )
    eq_q, eq_i, eq_j = scc_chains(graphs)
    representative = _representatives(graphs)
    keep = _transitive_reduction(graphs.n_sccs, graphs.dag_src, graphs.dag_dst, max_nnz=20_000_000)
    s_src, s_dst = graphs.dag_src[keep], graphs.dag_dst[keep]
    query = np.concatenate([eq_q, graphs.scc_query[s_src]])
    i = np.concatenate([eq_i, representative[s_src]])
    j = np.concatenate([eq_j, representative[s_dst]])
    strict = np.concatenate([np.zeros(eq_q.size, bool), np.ones(s_src.size, bool)])
    order = np.lexsort((j, i, query))
    return SVMConstraints(
        readonly(query[order], np.int64),
        readonly(i[order], np.int64),
        readonly(j[order], np.int64),
        readonly(strict[order], bool),
        graphs.n_edges,
    )
