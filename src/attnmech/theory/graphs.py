"""Token-priority graphs (TPGs), their strongly connected components and priority order.

docs/theory.md#token-priority-graphs: for every last token (query) ``k``, ``G^(k)`` is a directed
graph on the tokens. Every sample ``(X, y)`` whose last token is ``k`` adds an edge ``y -> j`` for
each token ``j`` of ``X`` with ``j != y``: under query ``k``, ``y`` was preferred over ``j``. Tokens
in one SCC have conflicting priorities; an edge of the condensation DAG is a strict priority.

All graphs are built at once as one block-diagonal graph over the (query, token) pairs that occur,
with array operations only (no Python loop over samples or queries): SCCs come from
:func:`scipy.sparse.csgraph.connected_components` and priority levels from a level-synchronous
longest-path sweep over the condensation DAG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .._results import frozen
from ..data.dataset import Dataset, priority_edges, sorted_unique
from ..errors import InvalidDatasetError, InvalidParameterError

__all__ = [
    "PriorityGraphs",
    "build_priority_graphs",
    "scc_chains",
    "has_priority_cycle",
    "priority_edges",
    "sorted_unique",
]

_MAX_VOCAB_FOR_KEYS = 2_000_000  # keys (query * K + i) * K + j must fit in int64


@dataclass(frozen=True, slots=True, eq=False)
class PriorityGraphs:
    """The token-priority graphs of a dataset, for all last tokens at once.

    Nodes are the (query, token) pairs that occur (token ``j`` occurs under query ``k`` when some
    sequence with last token ``k`` contains ``j``); tokens that never occur under ``k`` are
    isolated in ``G^(k)`` and are not stored. SCC ids are global and numbered by query, then
    priority level (0 = highest priority), then smallest member token.

    Attributes
    ----------
    vocab_size : int
    queries : ndarray of shape (n_queries,)
        The tokens that occur as last tokens, sorted.
    node_query, node_token : ndarray of shape (n_nodes,)
        The (query, token) pairs, sorted by query then token.
    node_scc : ndarray of shape (n_nodes,)
        SCC id of each node.
    scc_query, scc_level, scc_size : ndarray of shape (n_sccs,)
        Query, priority level and size of each SCC. Level 0 has no incoming edge; an SCC's level is
        the length of the longest path to it from a level-0 SCC.
    edge_query, edge_src, edge_dst : ndarray of shape (n_edges,)
        Distinct edges ``edge_src -> edge_dst`` of ``G^(edge_query)`` (token ids).
    dag_src, dag_dst : ndarray of shape (n_dag_edges,)
        Distinct edges of the condensation DAGs (SCC ids).

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1], [0, 1], [0, 1]], [0, 0, 1], np.eye(2))
    >>> build_priority_graphs(ds).sccs(1)
    [(0, 1)]
    """

    vocab_size: int
    queries: np.ndarray
    node_query: np.ndarray
    node_token: np.ndarray
    node_scc: np.ndarray
    scc_query: np.ndarray
    scc_level: np.ndarray
    scc_size: np.ndarray
    edge_query: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    dag_src: np.ndarray
    dag_dst: np.ndarray

    # ------------------------------------------------------------------ sizes and flags
    @property
    def n_nodes(self) -> int:
        """Number of nodes over all queries' graphs."""
        return int(self.node_query.size)

    @property
    def n_sccs(self) -> int:
        """Number of strongly connected components over all queries' graphs."""
        return int(self.scc_query.size)

    @property
    def n_edges(self) -> int:
        """Number of edges over all queries' graphs."""
        return int(self.edge_query.size)

    @property
    def is_cyclic(self) -> bool:
        """True when some ``G^(k)`` has an SCC with more than one token
        (docs/theory.md#token-priority-graphs)."""
        return bool((self.scc_size > 1).any())

    @property
    def cyclic_queries(self) -> np.ndarray:
        """The queries whose graph has an SCC of size > 1."""
        return sorted_unique(self.scc_query[self.scc_size > 1])

    # ------------------------------------------------------------------ look-ups
    def node_index(self, query: Any, token: Any) -> np.ndarray:
        """Index of each (query, token) pair in the node arrays, -1 where it does not occur."""
        q = np.asarray(query, dtype=np.int64)
        t = np.asarray(token, dtype=np.int64)
        keys = self.node_query * self.vocab_size + self.node_token
        want = q * self.vocab_size + t
        pos = np.searchsorted(keys, want)
        pos_c = np.minimum(pos, max(keys.size - 1, 0))
        found = (keys.size > 0) & (keys[pos_c] == want)
        return np.where(found, pos_c, -1)

    def scc_of(self, query: Any, token: Any) -> np.ndarray:
        """SCC id of each (query, token) pair, -1 where the token does not occur under the query."""
        idx = self.node_index(query, token)
        return np.where(idx >= 0, self.node_scc[np.maximum(idx, 0)], -1)

    def _check_query(self, query: int) -> int:
        q = int(query)
        if not (0 <= q < self.vocab_size):
            raise InvalidDatasetError(f"query {q} is outside [0, {self.vocab_size})")
        return q

    def tokens(self, query: int) -> np.ndarray:
        """Tokens that occur under ``query`` (sorted); empty if it is never a last token."""
        q = self._check_query(query)
        lo, hi = np.searchsorted(self.node_query, [q, q + 1])
        return self.node_token[lo:hi]

    def scc_ids(self, query: int) -> np.ndarray:
        """Global ids of the SCCs of ``G^(query)`` in priority order."""
        q = self._check_query(query)
        lo, hi = np.searchsorted(self.scc_query, [q, q + 1])
        return np.arange(lo, hi)

    def scc_members(self, scc: int) -> tuple[int, ...]:
        """Tokens of SCC ``scc`` (global id), sorted (cost: the nodes of its query only)."""
        q = int(self.scc_query[scc])
        lo, hi = np.searchsorted(self.node_query, [q, q + 1])
        return tuple(int(t) for t in self.node_token[lo:hi][self.node_scc[lo:hi] == scc])

    def sccs(self, query: int) -> list[tuple[int, ...]]:
        """SCCs of ``G^(query)`` as sorted token tuples, highest priority first."""
        q = self._check_query(query)
        lo, hi = np.searchsorted(self.node_query, [q, q + 1])
        ids, toks = self.node_scc[lo:hi], self.node_token[lo:hi]
        order = np.lexsort((toks, ids))
        ids, toks = ids[order], toks[order]
        cuts = np.flatnonzero(np.diff(ids)) + 1
        return [tuple(int(t) for t in part) for part in np.split(toks, cuts)] if toks.size else []

    def levels(self, query: int) -> dict[int, int]:
        """Priority level of each token under ``query`` (0 = highest)."""
        q = self._check_query(query)
        lo, hi = np.searchsorted(self.node_query, [q, q + 1])
        return {
            int(t): int(self.scc_level[s])
            for t, s in zip(self.node_token[lo:hi], self.node_scc[lo:hi], strict=True)
        }

    def edges(self, query: int) -> list[tuple[int, int]]:
        """Edges ``(i, j)`` of ``G^(query)``."""
        q = self._check_query(query)
        lo, hi = np.searchsorted(self.edge_query, [q, q + 1])
        return list(zip(self.edge_src[lo:hi].tolist(), self.edge_dst[lo:hi].tolist(), strict=True))

    # ------------------------------------------------------------------ exports
    def to_networkx(self, query: int) -> Any:
        """``G^(query)`` as a :class:`networkx.DiGraph`; nodes carry ``scc`` and ``level``."""
        import networkx as nx

        graph = nx.DiGraph(query=int(query))
        levels = self.levels(query)
        tokens = self.tokens(query)
        for token, scc in zip(tokens.tolist(), self.scc_of(query, tokens), strict=True):
            graph.add_node(token, scc=int(scc), level=levels[token])
        graph.add_edges_from(self.edges(query))
        return graph

    def condensation(self, query: int) -> Any:
        """The condensation DAG of ``G^(query)`` (networkx); nodes: ``members``, ``level``."""
        import networkx as nx

        dag = nx.DiGraph(query=int(query))
        for scc in self.scc_ids(query).tolist():
            dag.add_node(scc, members=self.scc_members(scc), level=int(self.scc_level[scc]))
        ids = self.scc_ids(query)
        if ids.size:
            sel = (self.dag_src >= ids[0]) & (self.dag_src <= ids[-1])
            dag.add_edges_from(
                zip(self.dag_src[sel].tolist(), self.dag_dst[sel].tolist(), strict=True)
            )
        return dag

    def to_dot(self, queries: Any = None, *, token_names: Any = None) -> str:
        """Graphviz DOT text with one cluster per SCC (all queries unless ``queries`` is given)."""
        names = (lambda t: str(token_names[t])) if token_names is not None else str
        chosen = (
            self.queries.tolist() if queries is None else _query_list(queries)
        )
        lines = ["digraph token_priority_graphs {", "  rankdir=TB; node [shape=circle];"]
        for q in chosen:
            lines.append(f'  subgraph cluster_query_{q} {{ label="last token {names(q)}";')
            for scc, members in zip(self.scc_ids(q).tolist(), self.sccs(q), strict=True):
                style = (
                    "style=filled; fillcolor=lightyellow;" if len(members) > 1 else "style=dotted;"
                )
                lines.append(
                    f"    subgraph cluster_q{q}_scc{scc} "
                    f'{{ label="level {int(self.scc_level[scc])}"; {style}'
                )
                lines.extend(
                    f'      "q{q}_t{t}" [label="{_dot_escape(names(t))}"];' for t in members
                )
                lines.append("    }")
            lines.extend(f'    "q{q}_t{i}" -> "q{q}_t{j}";' for i, j in self.edges(q))
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def size_histogram(self) -> list[tuple[int, int, int]]:
        """SCC sizes in power-of-two bins: ``(low, high, count)`` for sizes ``low..high``."""
        if self.n_sccs == 0:
            return []
        bins = np.floor(np.log2(self.scc_size)).astype(np.int64)  # 1 | 2-3 | 4-7 | ...
        counts = np.bincount(bins)
        return [(2**b, 2 ** (b + 1) - 1, int(c)) for b, c in enumerate(counts.tolist()) if c]

    def largest_sccs(self, top: int = 10) -> np.ndarray:
        """Global ids of the ``top`` largest SCCs (ties: smaller id first)."""
        order = np.lexsort((np.arange(self.n_sccs), -self.scc_size))
        return order[: max(int(top), 0)]

    def overview(self, *, top: int = 10, token_names: Any = None, max_members: int = 12) -> str:
        """Counts, SCC size histogram and the ``top`` largest SCCs; bounded at any vocab size."""
        names = (lambda t: str(token_names[t])) if token_names is not None else str
        hist = ", ".join(
            f"{lo}: {c}" if lo == hi else f"{lo}-{hi}: {c}" for lo, hi, c in self.size_histogram()
        )
        lines = [f"SCC sizes (size: count): {hist or 'none'}"]
        big = [s for s in self.largest_sccs(top).tolist() if self.scc_size[s] > 1]
        if big:
            lines.append(f"largest SCCs (of {int((self.scc_size > 1).sum())} with > 1 token):")
        for scc in big:
            members = self.scc_members(scc)
            shown = ", ".join(names(t) for t in members[:max_members])
            more = f", ... ({len(members)} in all)" if len(members) > max_members else ""
            lines.append(
                f"  last token {names(int(self.scc_query[scc]))}, level "
                f"{int(self.scc_level[scc])}: {len(members)} tokens {{{shown}{more}}}"
            )
        return "\n".join(lines)

    def summary(
        self,
        queries: Any = None,
        *,
        token_names: Any = None,
        max_queries: int = 50,
        max_sccs: int = 40,
    ) -> str:
        """Readable text: per last token, its SCCs in priority order (``>`` = strictly above).

        At most ``max_queries`` lines and ``max_sccs`` SCCs per line (the highest-priority ones;
        the rest are counted), so the text stays short at any vocabulary size.
        """
        names = (lambda t: str(token_names[t])) if token_names is not None else str
        chosen = (
            self.queries.tolist() if queries is None else _query_list(queries)
        )
        n_cyclic = self.cyclic_queries.size
        head = (
            f"{self.queries.size} last tokens, {self.n_nodes} nodes, {self.n_edges} edges, "
            f"{self.n_sccs} SCCs; {'cyclic' if self.is_cyclic else 'acyclic'} "
            f"({n_cyclic} queries with an SCC of size > 1)"
        )
        lines = [head]
        for q in chosen[:max_queries]:
            by_level: dict[int, list[str]] = {}
            ids = self.scc_ids(q).tolist()
            for scc, members in zip(ids[:max_sccs], self.sccs(q)[:max_sccs], strict=True):
                text = "{" + ", ".join(names(t) for t in members[:max_sccs]) + "}"
                if len(members) > max_sccs:
                    text = text[:-1] + f", ... ({len(members)} tokens)}}"
                by_level.setdefault(int(self.scc_level[scc]), []).append(text)
            order = " > ".join(" ".join(by_level[lv]) for lv in sorted(by_level))
            if len(ids) > max_sccs:
                order += f" ... ({len(ids) - max_sccs} more SCCs)"
            lines.append(f"  last token {names(q)}: {order or '(never a last token)'}")
        if len(chosen) > max_queries:
            lines.append(f"  ... {len(chosen) - max_queries} more last tokens")
        return "\n".join(lines)


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values of a non-negative int64 array and the index of each value in them.

    ``np.unique(values, return_inverse=True)`` without an argsort: each value is packed with its
    position into one int64 (``value << bits | position``) and the packed array is sorted in
    place (a plain sort is several times faster than an argsort). Falls back to an argsort when
    the packed value does not fit in 62 bits. ``values`` is overwritten (a scratch array).
    The index is int32 when it fits.
    """
    n = values.size
    index_type = np.int32 if n < 2**31 - 1 else np.int64
    if n == 0:
        return values.copy(), np.zeros(0, dtype=index_type)
    bits = max(int(n - 1).bit_length(), 1)
    top = int(values.max())
    if top.bit_length() + bits <= 62:
        packed = values
        packed <<= bits
        packed |= np.arange(n, dtype=np.int64)
        packed.sort()
        perm = packed & ((1 << bits) - 1)
        packed >>= bits
        ordered = packed
    else:
        perm = np.argsort(values, kind="stable")
        ordered = values[perm]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    ids = np.cumsum(new, dtype=index_type)
    np.subtract(ids, 1, out=ids)
    inverse = np.empty(n, dtype=index_type)
    inverse[perm] = ids
    return ordered[new], inverse


def _sort_order(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key)`` for distinct non-negative int64 keys, through a packed sort in place
    when the keys and their positions fit in 62 bits together (``key`` is then overwritten)."""
    n = key.size
    bits = max(int(n - 1).bit_length(), 1) if n else 1
    if n and int(key.max()).bit_length() + bits <= 62:
        key <<= bits
        key |= np.arange(n, dtype=np.int64)
        key.sort()
        key &= (1 << bits) - 1
        return key
    return np.argsort(key, kind="stable")


def _distinct_sorted(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values of ``keys``, sorting ``keys`` in place (a scratch array)."""
    keys.sort()
    if keys.size == 0:
        return keys
    keep = np.empty(keys.size, dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def _scc_levels(
    label: np.ndarray, indptr: np.ndarray, edge_src: np.ndarray, edge_dst: np.ndarray
) -> np.ndarray:
    """Level of each SCC: the longest path to it in the condensation from an SCC without
    incoming edges (Kahn's algorithm, one frontier at a time: the ``t``-th frontier is level
    ``t``).

    Works on the node graph, whose edges are grouped by source node (CSR offsets ``indptr``),
    so the condensation need not be built (nor sorted) first. ``label``: SCC of each node
    (``0 .. n_sccs - 1``); ``edge_src``, ``edge_dst``: the SCCs of each edge's ends. A large
    frontier is a mask over the SCCs and its out-edges a mask over all edges; a small one is a
    list, read through its member nodes and ``indptr``, and an SCC that becomes ready several
    times in a round is kept once by a stamp (no sort).
    """
    n = int(label.max()) + 1 if label.size else 0
    cross = edge_src != edge_dst
    targets_all = edge_dst[cross]
    level = np.zeros(n, dtype=np.int64)
    indeg = np.bincount(targets_all, minlength=n)
    first = indeg == 0
    frontier = np.flatnonzero(first)
    mask: np.ndarray | None = first  # the frontier as a mask, when it is large
    members: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    stamp: np.ndarray | None = None
    seen = frontier.size
    depth = 0
    while frontier.size:
        if depth:
            level[frontier] = depth
        if mask is not None:
            targets = edge_dst[cross & mask[edge_src]]
        else:
            if members is None:  # node of each singleton SCC; sorted nodes of the others
                size = np.bincount(label, minlength=n)
                rep = np.empty(n, dtype=np.int64)
                rep[label] = np.arange(label.size)
                grouped = np.flatnonzero(size[label] > 1)
                grouped = grouped[np.argsort(label[grouped], kind="stable")]
                members = (size, rep, grouped, label[grouped])
            size, rep, grouped, grouped_label = members
            single = size[frontier] == 1
            nodes = rep[frontier[single]]
            if not single.all():
                big = frontier[~single]
                lo = np.searchsorted(grouped_label, big)
                nodes = np.concatenate([nodes, grouped[_ranges(lo, size[big])]])
            lo = indptr[nodes]
            picks = _ranges(lo, indptr[nodes + 1] - lo)
            targets = edge_dst[picks[cross[picks]]]
        if not targets.size:
            break
        if 8 * targets.size > n:
            indeg -= np.bincount(targets, minlength=n)
        else:
            np.subtract.at(indeg, targets, 1)
        ready = targets[indeg[targets] == 0]
        if 8 * ready.size > n:
            mask = np.zeros(n, dtype=bool)
            mask[ready] = True
            frontier = np.flatnonzero(mask)
        else:
            mask = None
            if stamp is None:
                stamp = np.full(n, -1, dtype=np.int64)
            slot = np.arange(ready.size)
            stamp[ready] = slot
            frontier = ready[stamp[ready] == slot]  # one entry per distinct ready SCC
        seen += frontier.size
        depth += 1
    if seen != n:  # pragma: no cover - the condensation of a graph is always acyclic
        raise RuntimeError("condensation graph has a cycle")
    return level


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without a loop."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if ends.size else 0
    return np.repeat(starts - (ends - counts), counts) + np.arange(total)


def build_priority_graphs(dataset: Dataset) -> PriorityGraphs:
    """Build ``G^(k)`` for every last token ``k`` of ``dataset``
    (docs/theory.md#token-priority-graphs).

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    PriorityGraphs

    Raises
    ------
    InvalidDatasetError
        If ``dataset`` is not a Dataset or its vocabulary is too large for the int64 keys.
    UnrealizableLabelError
        If some label does not occur in its sequence (a dataset built with
        ``on_unrealizable="keep"``): its edges would start at a token that is not in ``G^(k)``.

    Notes
    -----
    Runs in O(total_tokens log total_tokens) with array operations only, and sorts plain int64
    keys (no argsort, no lexsort): one sort numbers the (query, token) nodes, one sort makes the
    distinct edges (already in node order, so the adjacency is built in CSR form directly), SCCs
    come from :func:`scipy.sparse.csgraph.connected_components` (``connection="strong"``) on the
    disjoint union of all graphs, levels from a longest-path sweep (Kahn's algorithm) over the
    SCCs that reads the node graph, and one more sort gives the distinct condensation edges.

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> ds = Dataset([[2, 0, 1], [1, 2, 1]], [2, 2], np.eye(3))
    >>> print(build_priority_graphs(ds).summary())
    1 last tokens, 3 nodes, 2 edges, 3 SCCs; acyclic (0 queries with an SCC of size > 1)
      last token 1: {2} > {0} {1}
    """
    if not isinstance(dataset, Dataset):
        raise InvalidDatasetError(f"expected an attnmech.Dataset, got {type(dataset).__name__}")
    K = dataset.vocab_size
    if K > _MAX_VOCAB_FOR_KEYS:
        raise InvalidDatasetError(
            f"vocab_size {K} is above the supported {_MAX_VOCAB_FOR_KEYS}; remap tokens to a "
            "smaller vocabulary"
        )
    tokens, labels = dataset.tokens, dataset.labels
    index_type = np.int32 if tokens.size < 2**31 - 1 else np.int64  # internal ids
    sample_of = np.repeat(np.arange(labels.size, dtype=index_type), dataset.lengths)
    # nodes: the distinct (query, token) pairs, and the node of every position of the dataset
    keys = dataset.last_tokens[sample_of]
    keys *= K
    keys += tokens
    node_keys, node_of = _unique_inverse(keys)
    del keys
    node_query, node_token = np.divmod(node_keys, K)
    n_nodes = node_keys.size
    # edges y -> j (j != y) of each sample, as (node of y, node of j); node order is (query, token)
    other = tokens != labels[sample_of]
    label_node = np.full(labels.size, -1, dtype=np.int64)
    is_label = ~other
    label_node[sample_of[is_label]] = node_of[is_label]
    del is_label
    if labels.size and label_node.min() < 0:
        from ..data.dataset import _list_preview
        from ..errors import UnrealizableLabelError

        bad = np.flatnonzero(label_node < 0)
        raise UnrealizableLabelError(
            f"labels of samples {_list_preview(bad)} do not occur in their sequences, so the "
            "token-priority graphs are undefined for them; build the dataset with "
            "on_unrealizable='drop' or 'repair' (or call attnmech.repair_labels())",
            samples=bad.tolist(),
        )
    edge_keys = label_node[sample_of[other]]
    del sample_of
    edge_keys *= n_nodes
    edge_keys += node_of[other]
    del node_of, other
    edge_keys = _distinct_sorted(edge_keys)
    src_node, dst_node = np.divmod(edge_keys, n_nodes)
    del edge_keys
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(src_node, minlength=n_nodes), out=indptr[1:])
    csr_type = np.int32 if max(n_nodes, src_node.size) < 2**31 - 1 else np.int64
    adjacency = sp.csr_matrix(
        (np.ones(src_node.size), dst_node.astype(csr_type), indptr.astype(csr_type)),
        shape=(n_nodes, n_nodes),
    )
    n_raw, raw_label = connected_components(adjacency, directed=True, connection="strong")
    del adjacency
    # SCC of each edge's ends; levels straight from the node graph (no condensation built yet)
    cs, cd = raw_label[src_node], raw_label[dst_node]
    raw_level = _scc_levels(raw_label, indptr, cs, cd)
    del indptr
    # renumber SCCs by (query, level, smallest token); the key is distinct per SCC
    raw_query = np.zeros(n_raw, dtype=np.int64)
    raw_query[raw_label] = node_query
    raw_min = np.full(n_raw, np.iinfo(np.int64).max)
    np.minimum.at(raw_min, raw_label, node_token)
    n_levels = int(raw_level.max()) + 1 if n_raw else 1
    if K * K * n_levels < 2**62:
        key = raw_query * n_levels
        key += raw_level
        key *= K
        key += raw_min
        order = _sort_order(key)
    else:
        order = np.lexsort((raw_min, raw_level, raw_query))
    del raw_min
    new_id = np.empty(n_raw, dtype=np.int64)
    new_id[order] = np.arange(n_raw)
    node_scc = new_id[raw_label]
    scc_size = np.bincount(node_scc, minlength=n_raw)
    cross = cs != cd
    dag_keys = new_id[cs[cross]]
    dag_keys *= n_raw
    dag_keys += new_id[cd[cross]]
    del cs, cd, cross
    dag_src, dag_dst = np.divmod(_distinct_sorted(dag_keys), max(n_raw, 1))
    return PriorityGraphs(
        vocab_size=K,
        queries=frozen(sorted_unique(dataset.last_tokens)),
        node_query=frozen(node_query),
        node_token=frozen(node_token),
        node_scc=frozen(node_scc),
        scc_query=frozen(raw_query[order]),
        scc_level=frozen(raw_level[order]),
        scc_size=frozen(scc_size),
        edge_query=frozen(node_query[src_node]),
        edge_src=frozen(node_token[src_node]),
        edge_dst=frozen(node_token[dst_node]),
        dag_src=frozen(dag_src),
        dag_dst=frozen(dag_dst),
    )


def scc_chains(graphs: PriorityGraphs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chain of pairs per SCC, ``(query, i, j)`` with ``i ~ j`` in ``G^(query)``.

    Inside each SCC the members are sorted by token and consecutive members are paired, so an SCC
    of ``m`` tokens gives ``m - 1`` pairs. The pairs ``(e_i - e_j) e_query^T`` span ``S_fin``
    (docs/theory.md#the-finite-part) and are the Graph-SVM's equality constraints. Sorted by (query,
    i, j).

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1, 2], [1, 0, 2], [0, 2]], [0, 1, 0], np.eye(3))
    >>> [a.tolist() for a in scc_chains(build_priority_graphs(ds))]
    [[2], [0], [1]]
    """
    order = np.lexsort((graphs.node_token, graphs.node_scc))
    scc, tok, qry = graphs.node_scc[order], graphs.node_token[order], graphs.node_query[order]
    chain = scc[1:] == scc[:-1]
    query, i, j = qry[1:][chain], tok[:-1][chain], tok[1:][chain]
    by_pair = np.lexsort((j, i, query))
    return query[by_pair], i[by_pair], j[by_pair]


def has_priority_cycle(data: PriorityGraphs | Dataset) -> bool:
    """Whether some token-priority graph has an SCC of more than one token (a cyclic dataset).

    The one cyclicity test of attnmech: for built graphs, :attr:`PriorityGraphs.is_cyclic`; for a
    dataset, the strongly connected components of its priority edges
    (:func:`attnmech.data.dataset.has_priority_cycle`, which lives below this layer so that
    :func:`~attnmech.data.dataset.make_dataset` can redraw without building graphs). Studies call
    this function instead of testing cycles themselves.

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1, 2], [1, 0, 2]], [0, 1], np.eye(3))  # 0 -> 1 and 1 -> 0 under 2
    >>> has_priority_cycle(ds), has_priority_cycle(build_priority_graphs(ds))
    (True, True)
    >>> has_priority_cycle(Dataset([[0, 1, 2]], [0], np.eye(3)))
    False
    """
    from ..data.dataset import has_priority_cycle as dataset_has_cycle

    if isinstance(data, PriorityGraphs):
        return data.is_cyclic
    if isinstance(data, Dataset):
        return dataset_has_cycle(data)
    raise InvalidParameterError(
        f"has_priority_cycle expects a Dataset or PriorityGraphs, got {type(data).__name__}"
    )


def _query_list(queries: Any) -> list[int]:
    """``queries`` (an id or a list of ids) as ints, or InvalidParameterError."""
    array = np.atleast_1d(np.asarray(queries))
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InvalidParameterError(
            f"queries must be a token id or a list of token ids, got {queries!r}"[:200]
        )
    return [int(q) for q in array]
