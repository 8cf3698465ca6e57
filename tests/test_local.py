"""Local token-priority graphs (docs/theory.md#local-convergence)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from attnmech import Dataset, InvalidDatasetError, make_dataset, solve
from attnmech.theory.local import local_dataset, select_tokens, solve_local


def naive_local_edges(ds, mass, hi=1e-2, lo=9e-3):
    """Edges straight from docs/theory.md#local-convergence, per sample."""
    graphs: dict[int, nx.DiGraph] = {}
    for seq, a in zip(ds.sequences, mass, strict=True):
        k = int(seq[-1])
        g = graphs.setdefault(k, nx.DiGraph())
        ambiguous = {int(t) for t in seq if lo < a[t] <= hi and t != k}
        tokens = [int(t) for t in seq if int(t) not in ambiguous]
        g.add_nodes_from(tokens)
        for c in {t for t in tokens if a[t] > hi}:
            g.add_edges_from((c, j) for j in tokens if j != c)
    return graphs


@pytest.mark.parametrize("seed", range(4))
def test_local_graphs_match_definition(seed):
    ds = make_dataset(8, 5, 7, 8, seed=seed)
    rng = np.random.default_rng(seed)
    mass = np.zeros((ds.n_samples, ds.vocab_size))
    for i, seq in enumerate(ds.sequences):
        w = rng.dirichlet(np.full(seq.size, 0.3))
        w[rng.integers(seq.size)] = 0.0095 if seq.size > 2 else w[0]  # one ambiguous token
        np.add.at(mass[i], seq, w / w.sum())
    local = solve_local(ds, mass)
    expected = naive_local_edges(ds, mass)
    for k, g in expected.items():
        assert set(local.graphs.edges(k)) == set(g.edges())
        want = sorted(tuple(sorted(c)) for c in nx.strongly_connected_components(g))
        assert sorted(local.graphs.sccs(k)) == want
    assert local.svm.max_violation <= 1e-9


def test_label_only_selection_recovers_global_graphs():
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=2)
    mass = np.zeros((ds.n_samples, ds.vocab_size))
    mass[np.arange(ds.n_samples), ds.labels] = 1.0  # GD put all attention on the label
    local = solve_local(ds, mass)
    np.testing.assert_allclose(local.W_svm, solve(ds).W_svm, atol=1e-9)


def test_pseudo_dataset_layout():
    ds = Dataset([[0, 1, 2, 3]], [0], np.eye(4))
    sel = select_tokens(ds, [[0.5, 0.48, 0.0095, 0.0105]])
    pseudo = local_dataset(ds, sel)
    assert [s.tolist() for s in pseudo.sequences] == [[0, 1, 3], [0, 1, 3], [0, 1, 3]]
    assert pseudo.labels.tolist() == [0, 1, 3]


def test_bad_masses_are_reported():
    ds = Dataset([[0, 1]], [0], np.eye(2))
    with pytest.raises(InvalidDatasetError, match="shape"):
        select_tokens(ds, np.ones((2, 2)))
    with pytest.raises(InvalidDatasetError, match="select no token"):
        select_tokens(ds, np.zeros((1, 2)))
