"""The fast paths of the theory at large sizes, against straightforward formulations.

- ``build_priority_graphs`` (packed int64 sorts, CSR adjacency, Kahn levels) against graphs built
  sample by sample in Python dicts with networkx SCCs and longest paths, every array compared;
- the packed-sort helpers against ``np.unique`` / ``np.argsort``;
- the token Graph-SVM's warm start (queries unsettled after a few active-set steps restart from an
  interior-point guess) against the plain active-set method and an independent per-query QP.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from attnmech.data.dataset import Dataset
from attnmech.errors import UnrealizableLabelError
from attnmech.theory import tokenspace
from attnmech.theory.graphs import (
    _scc_levels,
    _sort_order,
    _unique_inverse,
    build_priority_graphs,
)


def _random_dataset(seed: int, *, n: int, K: int, max_len: int, cyclic: bool = True) -> Dataset:
    """Ragged one-hot data with repeated tokens; few queries when ``cyclic`` (many conflicts)."""
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, K, size=3 if cyclic else K)
    seqs, labels = [], []
    for _ in range(n):
        seq = rng.integers(0, K, size=int(rng.integers(1, max_len + 1))).tolist()
        seq[-1] = int(rng.choice(queries))
        seqs.append(seq)
        labels.append(int(rng.choice(seq)))
    return Dataset(seqs, labels, "onehot", vocab_size=K)


def _reference_graphs(ds: Dataset) -> dict[str, np.ndarray]:
    """Every array of PriorityGraphs, straight from the definition (Python loops + networkx)."""
    graphs: dict[int, nx.DiGraph] = {}
    for seq, y in zip(ds.sequences, ds.labels.tolist(), strict=True):
        g = graphs.setdefault(int(seq[-1]), nx.DiGraph())
        g.add_nodes_from(int(t) for t in seq)
        g.add_edges_from((y, int(j)) for j in seq if int(j) != y)
    node_rows, scc_rows, edges, dag = [], [], [], []
    for q in sorted(graphs):
        g = graphs[q]
        comps = [tuple(sorted(c)) for c in nx.strongly_connected_components(g)]
        comp_of = {t: c for c in comps for t in c}
        cond = nx.DiGraph()
        cond.add_nodes_from(comps)
        cond.add_edges_from(
            (comp_of[i], comp_of[j]) for i, j in g.edges if comp_of[i] != comp_of[j]
        )
        level = {}
        for c in nx.topological_sort(cond):
            preds = list(cond.predecessors(c))
            level[c] = 1 + max(level[p] for p in preds) if preds else 0
        ordered = sorted(comps, key=lambda c: (level[c], c[0]))
        scc_rows.extend((q, level[c], len(c), c) for c in ordered)
        edges.extend((q, i, j) for i, j in sorted(g.edges))
        dag.extend((comp_of[i], comp_of[j], q) for i, j in g.edges if comp_of[i] != comp_of[j])
        node_rows.extend((q, t) for t in sorted(g.nodes))
    scc_id = {(q, c): s for s, (q, _, _, c) in enumerate(scc_rows)}
    node_scc = {(q, t): scc_id[(q, c)] for (q, _, _, c) in scc_rows for t in c}
    dag_pairs = sorted({(scc_id[(q, a)], scc_id[(q, b)]) for a, b, q in dag})
    as_array = lambda values: np.asarray(values, dtype=np.int64).reshape(-1)  # noqa: E731
    return {
        "queries": as_array(sorted(graphs)),
        "node_query": as_array([q for q, _ in node_rows]),
        "node_token": as_array([t for _, t in node_rows]),
        "node_scc": as_array([node_scc[r] for r in node_rows]),
        "scc_query": as_array([r[0] for r in scc_rows]),
        "scc_level": as_array([r[1] for r in scc_rows]),
        "scc_size": as_array([r[2] for r in scc_rows]),
        "edge_query": as_array([e[0] for e in edges]),
        "edge_src": as_array([e[1] for e in edges]),
        "edge_dst": as_array([e[2] for e in edges]),
        "dag_src": as_array([p[0] for p in dag_pairs]),
        "dag_dst": as_array([p[1] for p in dag_pairs]),
    }


@pytest.mark.parametrize("seed", range(12))
def test_graph_arrays_equal_a_straightforward_build(seed):
    K = [5, 12, 40][seed % 3]
    ds = _random_dataset(seed, n=[8, 40, 150][seed % 3], K=K, max_len=9, cyclic=seed % 2 == 0)
    graphs = build_priority_graphs(ds)
    for name, want in _reference_graphs(ds).items():
        got = np.asarray(getattr(graphs, name))
        assert got.dtype == np.int64, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_deep_graph_levels_use_both_frontier_paths():
    # one query whose samples make a long chain 0 > 1 > ... > 59 (small frontiers) plus a wide
    # fan-out under other queries (a large first frontier)
    chain = [[t, t + 1, 99] for t in range(59)]
    fan = [[t, 98] for t in range(60, 98)]
    ds = Dataset(chain + fan, list(range(59)) + list(range(60, 98)), "onehot")
    graphs = build_priority_graphs(ds)
    ref = _reference_graphs(ds)
    for name, want in ref.items():
        np.testing.assert_array_equal(np.asarray(getattr(graphs, name)), want, err_msg=name)
    assert int(graphs.scc_level.max()) == 59
    # a chain of 2-cycles {2t, 2t + 1} > {2t + 2, 2t + 3} > ... under query 99: small frontiers
    # of SCCs with several members
    seqs, labels = [], []
    for t in range(0, 60, 2):
        seqs += [[t, t + 1, 99], [t + 1, t, 99], [t + 1, t + 2, 99]]
        labels += [t, t + 1, t + 1]
    ds = Dataset(seqs + fan, labels + list(range(60, 98)), "onehot")
    graphs = build_priority_graphs(ds)
    for name, want in _reference_graphs(ds).items():
        np.testing.assert_array_equal(np.asarray(getattr(graphs, name)), want, err_msg=name)
    assert int((graphs.scc_size == 2).sum()) == 30


def test_scc_levels_of_a_dag_against_networkx():
    rng = np.random.default_rng(3)
    for n, m in [(1, 0), (30, 0), (50, 200), (400, 300), (200, 3000)]:
        src = rng.integers(0, n, size=m)
        dst = rng.integers(0, n, size=m)
        keep = src < dst  # a DAG: edges go up in id
        keys = np.unique(src[keep] * n + dst[keep])
        s, d = keys // n, keys % n
        dag = nx.DiGraph()
        dag.add_nodes_from(range(n))
        dag.add_edges_from(zip(s.tolist(), d.tolist(), strict=True))
        want = np.zeros(n, dtype=np.int64)
        for v in nx.topological_sort(dag):
            preds = list(dag.predecessors(v))
            want[v] = 1 + max(want[p] for p in preds) if preds else 0
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(s, minlength=n), out=indptr[1:])
        np.testing.assert_array_equal(_scc_levels(np.arange(n), indptr, s, d), want)


def test_packed_sort_helpers_match_numpy():
    rng = np.random.default_rng(5)
    for values in (
        rng.integers(0, 50, size=1000),
        rng.integers(0, 2**40, size=3000),
        rng.integers(0, 2**61, size=500),  # too wide to pack: the argsort fallback
        np.array([7], dtype=np.int64),
        np.zeros(0, dtype=np.int64),
    ):
        unique, inverse = _unique_inverse(values.copy())  # it sorts its argument in place
        want_unique, want_inverse = np.unique(values, return_inverse=True)
        np.testing.assert_array_equal(unique, want_unique)
        np.testing.assert_array_equal(inverse, want_inverse.reshape(-1))
        distinct = np.unique(values)
        shuffled = rng.permutation(distinct)
        np.testing.assert_array_equal(_sort_order(shuffled.copy()), np.argsort(shuffled))


def test_unrealizable_labels_are_refused_by_name():
    ds = Dataset([[0, 1, 2], [3, 4, 2], [1, 2]], [5, 0, 1], "onehot", on_unrealizable="keep")
    with pytest.raises(UnrealizableLabelError, match=r"samples \[0, 1\]") as err:
        build_priority_graphs(ds)
    assert err.value.samples == [0, 1]
    assert "on_unrealizable='drop'" in str(err.value)


def _star_of_cycles(seed: int) -> Dataset:
    """Many samples under one query with crossing priorities: a degenerate Graph-SVM dual."""
    rng = np.random.default_rng(seed)
    K = 60
    seqs, labels = [], []
    for _ in range(120):
        seq = rng.choice(K - 1, size=int(rng.integers(2, 6)), replace=False).tolist() + [K - 1]
        seqs.append(seq)
        labels.append(int(rng.choice(seq[:-1])))
    return Dataset(seqs, labels, "onehot", vocab_size=K)


def _per_query_qp(ds: Dataset) -> np.ndarray:
    """W_svm score table by an independent QP per query (Clarabel on the literal edges)."""
    from attnmech.theory.reference import svm_primal_clarabel

    graphs = build_priority_graphs(ds)
    status, W = svm_primal_clarabel(graphs, np.eye(ds.vocab_size), tol=1e-11)
    assert status == "Solved" and W is not None
    return W


@pytest.mark.parametrize("seed", range(4))
def test_warm_started_token_svm_equals_the_plain_method(monkeypatch, seed):
    ds = _star_of_cycles(seed) if seed % 2 else _random_dataset(seed, n=60, K=25, max_len=8)
    graphs = build_priority_graphs(ds)
    monkeypatch.setattr(tokenspace, "WARM_START_AFTER", 10**6)
    plain = tokenspace.solve_token_svm(graphs)
    for after in (1, 2):  # every query that is still running restarts from the guess
        monkeypatch.setattr(tokenspace, "WARM_START_AFTER", after)
        warm = tokenspace.solve_token_svm(graphs)
        assert warm.success
        np.testing.assert_allclose(warm.scores.value, plain.scores.value, rtol=0, atol=1e-10)
        assert (warm.dual_values[warm.constraints.strict] >= 0).all()
    reference = _per_query_qp(ds)
    np.testing.assert_allclose(warm.scores.to_dense(), reference, rtol=0, atol=1e-6)


def test_token_svm_without_a_usable_guess_falls_back(monkeypatch):
    ds = _star_of_cycles(11)
    graphs = build_priority_graphs(ds)
    monkeypatch.setattr(tokenspace, "WARM_START_AFTER", 10**6)
    plain = tokenspace.solve_token_svm(graphs)
    monkeypatch.setattr(tokenspace, "WARM_START_AFTER", 1)
    for guess in (None, "bad"):

        def fake(size, above, below, guess=guess):
            # None: no guess at all; "bad": a guess far from the answer (the polish may or may
            # not settle; either way the answer is the plain method's)
            return None if guess is None else np.full(above.size, 1e6)

        monkeypatch.setattr(tokenspace, "_interior_guess", fake)
        res = tokenspace.solve_token_svm(graphs)
        assert res.success
        np.testing.assert_allclose(res.scores.value, plain.scores.value, rtol=0, atol=1e-10)


def test_interior_guess_is_close_to_the_answer():
    ds = _star_of_cycles(2)
    graphs = build_priority_graphs(ds)
    cons = tokenspace.svm_constraints(graphs)
    strict = np.flatnonzero(cons.strict)
    above = graphs.scc_of(cons.query[strict], cons.i[strict])
    below = graphs.scc_of(cons.query[strict], cons.j[strict])
    guess = tokenspace._interior_guess(graphs.scc_size.astype(float), above, below)
    assert guess is not None and (guess >= 0).all()
    exact = tokenspace.solve_token_svm(graphs)
    # the guess's scores S^-1 D^T lambda are near the exact scores
    x = np.zeros(graphs.n_sccs)
    np.add.at(x, above, guess)
    np.add.at(x, below, -guess)
    x /= graphs.scc_size
    node_score = x[graphs.node_scc]
    np.testing.assert_allclose(node_score, exact.scores.value, atol=1e-3)
