"""The dense paths that small problems take (the sweep's paper-size datasets) give the answers of
the sparse paths that large ones take."""

from __future__ import annotations

import numpy as np
import pytest

import attnmech
from attnmech.data import dataset as dataset_module
from attnmech.theory import finite
from attnmech.theory.graphs import build_priority_graphs
from attnmech.theory.graphsvm import active_set, constraints
from attnmech.theory.solve import solve


def _datasets(count=40):
    out = []
    rng = np.random.default_rng(7)
    while len(out) < count:
        K = int(rng.integers(3, 9))
        n, T = int(rng.integers(2, 9)), int(rng.integers(2, 6))
        graph = ("cyclic", "acyclic", "any")[len(out) % 3]
        try:
            out.append(attnmech.make_dataset(n, T, K, 8, graph=graph, seed=len(out)))
        except attnmech.errors.AttnmechError:
            continue
    return out


def test_dense_cycle_test_equals_the_strong_components():
    datasets = _datasets(120)
    found = [dataset_module.has_priority_cycle(ds) for ds in datasets]
    expected = [build_priority_graphs(ds).is_cyclic for ds in datasets]
    assert found == expected
    assert 0 < sum(found) < len(found)  # both answers occur


def test_dense_transitive_reduction_equals_the_sparse_one(monkeypatch):
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 30))
        order = rng.permutation(n)  # a random DAG: edges go forward in a random order
        pairs = {(int(a), int(b)) for a, b in rng.integers(0, n, (3 * n, 2)) if a < b}
        if not pairs:
            continue
        src = np.array([order[a] for a, _ in sorted(pairs)])
        dst = np.array([order[b] for _, b in sorted(pairs)])
        dense = constraints._transitive_reduction(n, src, dst, max_nnz=10**6)
        monkeypatch.setattr(constraints, "_DENSE_NODES", 0)
        sparse = constraints._transitive_reduction(n, src, dst, max_nnz=10**6)
        monkeypatch.undo()
        np.testing.assert_array_equal(dense, sparse)


def test_dense_query_blocks_equal_connected_components(monkeypatch):
    rng = np.random.default_rng(1)
    # 3 groups of queries on orthogonal coordinates: 3 blocks, whatever the order
    E = np.zeros((9, 9))
    groups = rng.permutation(np.repeat([0, 1, 2], 3))
    for k, g in enumerate(groups):
        E[k, 3 * g : 3 * g + 3] = rng.normal(size=3)
    gram = E @ E.T
    dense = active_set._query_blocks(gram, 1e-14)
    monkeypatch.setattr(active_set, "SMALL_VOCAB", 0)
    sparse = active_set._query_blocks(gram, 1e-14)
    np.testing.assert_array_equal(dense, sparse)
    assert len(set(dense.tolist())) == 3


def _solve_all(datasets):
    return [solve(ds) for ds in datasets]


def test_small_solves_equal_the_sparse_paths(monkeypatch):
    datasets = [ds for ds in _datasets(30) if ds.vocab_size <= 8]
    fast = _solve_all(datasets)
    monkeypatch.setattr(active_set, "SMALL_VOCAB", 0)
    monkeypatch.setattr(constraints, "_DENSE_NODES", 0)
    monkeypatch.setattr(finite, "_DENSE_HESSIAN_ENTRIES", 0)
    slow = _solve_all(datasets)
    cyclic = 0
    for a, b in zip(fast, slow, strict=True):
        scale = max(1.0, np.abs(b.W_svm).max(), np.abs(b.W_fin).max())
        assert np.abs(a.W_svm - b.W_svm).max() <= 1e-12 * scale
        assert np.abs(a.W_fin - b.W_fin).max() <= 1e-12 * scale
        np.testing.assert_array_equal(a.svm.constraints.i, b.svm.constraints.i)
        assert a.svm.status == b.svm.status
        cyclic += int(a.graphs.is_cyclic and np.abs(b.W_fin).max() > 0)
    assert cyclic >= 3  # W_fin was really solved


@pytest.mark.parametrize("K", [4, 70])
def test_dual_to_weights_dense_and_sparse(K, monkeypatch):
    rng = np.random.default_rng(K)
    E = rng.normal(size=(K, 80))
    m = 3 * K
    cons = constraints.SVMConstraints(
        query=rng.integers(0, K, m),
        i=rng.integers(0, K, m),
        j=rng.integers(0, K, m),
        strict=rng.random(m) < 0.7,
        n_original=m,
    )
    lam = rng.random(m)
    got = active_set.dual_to_weights(E, cons, lam)
    monkeypatch.setattr(active_set, "SMALL_VOCAB", 0 if K <= 64 else 10**6)  # the other path
    other = active_set.dual_to_weights(E, cons, lam)
    direct = sum(lam[c] * np.outer(E[cons.i[c]] - E[cons.j[c]], E[cons.query[c]]) for c in range(m))
    scale = np.abs(direct).max()
    np.testing.assert_allclose(got, direct, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(other, direct, rtol=0, atol=1e-12 * scale)
