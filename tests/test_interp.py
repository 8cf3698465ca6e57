"""attnmech.interp: export to TransformerLens and back, head scores, priority comparison, explain.

The measures are checked against independent computations: Kendall's tau-b against
``scipy.stats.kendalltau``, the adjusted Rand index against a hand count, the comparison against
score tables built to follow (or reverse) a known order, and ``explain`` against Graph-SVM duals
and finite-part log-odds worked out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from attnmech import Dataset, build_priority_graphs, make_dataset, solve
from attnmech.errors import InvalidParameterError
from attnmech.interp import (
    adjusted_rand_index,
    compare_priorities,
    explain,
    kendall_tau_b,
    priority_order,
    tie_clusters,
)


# ------------------------------------------------------------------ measures (no transformer-lens)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kendall_tau_b_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=23).astype(float)  # many ties
    y = rng.normal(size=23).round(1)
    expected = stats.kendalltau(x, y).statistic
    assert kendall_tau_b(x, y) == pytest.approx(expected, abs=1e-12)
    assert kendall_tau_b(x, y, chunk=5) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(kendall_tau_b([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_adjusted_rand_index_by_hand():
    # contingency [[2, 1, 0], [0, 1, 2]]: index = 1 + 1 = 2, rows 3 + 3 = 6, cols 1 + 1 + 1 = 3,
    # C(6, 2) = 15, expected = 6 * 3 / 15 = 1.2, max = 4.5 -> (2 - 1.2) / (4.5 - 1.2)
    a = [0, 0, 0, 1, 1, 1]
    b = [5, 5, 7, 7, 9, 9]
    assert adjusted_rand_index(a, b) == pytest.approx(0.8 / 3.3, abs=1e-15)
    assert adjusted_rand_index(a, [1, 1, 1, 0, 0, 0]) == 1.0  # same partition, other labels
    assert adjusted_rand_index([0, 1, 2], [3, 4, 5]) == 1.0  # both all singletons
    assert adjusted_rand_index([0, 0, 0], [0, 1, 2]) == 0.0
    assert math.isnan(adjusted_rand_index([0], [0]))


def test_tie_clusters_cut_at_the_largest_gaps():
    s = [5.0, 5.1, 0.0, 0.2, -7.0]
    assert tie_clusters(s, n_clusters=3).tolist() == [0, 0, 1, 1, 2]
    assert tie_clusters(s, tie_tol=0.15).tolist() == [0, 0, 2, 1, 3]  # 5.0 ~ 5.1 only
    with pytest.raises(InvalidParameterError):
        tie_clusters(s)


def _level_scores(graphs, sign=1.0):
    """A K x K table whose row q scores each token of G^(q) by -level (sign=1) or +level."""
    S = np.zeros((graphs.vocab_size, graphs.vocab_size))
    for q in graphs.queries.tolist():
        for t, level in graphs.levels(q).items():
            S[q, t] = -sign * level
    return S


def test_compare_priorities_on_a_head_that_follows_the_graph(acyclic_chain):
    graphs = build_priority_graphs(acyclic_chain)
    result = compare_priorities(_level_scores(graphs), graphs)
    assert result.overall["strict_edge_agreement"] == 1.0
    assert result.overall["n_strict_edges"] == 6  # a>b, a>c, a>d, b>c, b>d, c>d under d
    assert result.per_query(3)["kendall_tau"] == pytest.approx(1.0)
    assert result.per_query(3)["scc_ari"] == 1.0
    assert priority_order(_level_scores(graphs), 3, [0, 1, 2, 3]).tolist() == [0, 1, 2, 3]
    reverse = compare_priorities(_level_scores(graphs, sign=-1.0), graphs)
    assert reverse.overall["strict_edge_agreement"] == 0.0
    assert reverse.per_query(3)["kendall_tau"] == pytest.approx(-1.0)


def test_compare_priorities_counts_edges_by_hand():
    # under query 2: samples [0, 1, 2] -> 0 and [1, 0, 2] -> 1 make {0, 1} an SCC above 2
    # edges 0->1, 0->2, 1->0, 1->2: strict ones are 0->2 and 1->2
    ds = Dataset([[0, 1, 2], [1, 0, 2]], [0, 1], np.eye(3))
    graphs = build_priority_graphs(ds)
    S = np.zeros((3, 3))
    S[2] = [1.0, -2.0, 0.0]  # orders 0 > 2 (agrees) and 2 > 1 (disagrees)
    result = compare_priorities(S, graphs)
    row = result.per_query(2)
    assert (row["n_strict_edges"], row["strict_edge_agreement"]) == (2, 0.5)
    # levels {0, 1}: 0, {2}: 1; tau-b of (-level) = (0, 0, -1) against (1, -2, 0)
    assert row["kendall_tau"] == pytest.approx(stats.kendalltau([0, 0, -1], [1, -2, 0]).statistic)
    # two clusters at the largest gap: {0, 2} and {1}, against SCCs {0, 1}, {2}
    assert row["scc_ari"] == pytest.approx(adjusted_rand_index([0, 0, 1], [0, 1, 0]))
    # a table over a subset of tokens that misses token 1 skips the query
    part = compare_priorities(S[np.ix_([0, 2], [0, 2])], graphs, tokens=[0, 2])
    assert part.skipped_queries.tolist() == [2]


# ------------------------------------------------------------------ explain
def test_explain_names_the_single_active_constraint():
    # one sample [0, 1] -> 0: the constraint (e0 - e1)^T W e1 >= 1, W_svm = (e0 - e1) e1^T / 2,
    # multiplier 1 / ||(e0 - e1) e1^T||^2 = 1/2
    theory = solve(Dataset([[0, 1]], [0], np.eye(2)))
    out = explain(theory, 1, 1)
    assert out.occurs and out.scc == (1,) and out.level == 1
    [c] = out.constraints
    assert (c.i, c.j, c.side) == (0, 1, "below")
    assert c.dual == pytest.approx(0.5, abs=1e-9)
    assert c.edges == [(0, 1)] and c.samples == [0]
    assert out.svm_score == pytest.approx(-0.5, abs=1e-9)
    assert "dual 0.5" in out.format(names=["a", "b"])
    assert not explain(theory, 0, 1).occurs  # nothing ends with token 0


def test_explain_gives_the_finite_log_odds_inside_an_scc(unbalanced_cycle):
    theory = solve(unbalanced_cycle)
    out = explain(theory, 1, 0)
    assert out.scc == (0, 1) and out.constraints == []
    assert out.finite_log_odds[1] == pytest.approx(math.log(2.0), abs=1e-6)


# ------------------------------------------------------------------ TransformerLens
def test_export_round_trip_on_the_papers_first_setting():
    pytest.importorskip("transformer_lens")
    from attnmech.interp import (
        attnmech_patterns,
        from_hooked_transformer,
        head_scores,
        last_position_patterns,
        score_fidelity,
        to_hooked_transformer,
    )

    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    W = 3.0 * np.random.default_rng(1).normal(size=(8, 8))
    model = to_hooked_transformer(W, ds)
    diff = np.abs(last_position_patterns(model, ds) - attnmech_patterns(W, ds)).max()
    assert diff <= 1e-12
    W_back, E_back = from_hooked_transformer(model)
    assert np.array_equal(W_back, W) and np.array_equal(E_back, ds.embeddings)
    E = ds.embeddings
    assert np.abs(head_scores(model, 0, 0) - (E @ W @ E.T).T).max() <= 1e-12
    assert np.abs(head_scores(model, 0, 0, context="tokens") - (E @ W @ E.T).T).max() <= 1e-12
    fidelity = score_fidelity(model, 0, 0, ds.padded(), head_scores(model, 0, 0))
    assert fidelity.pearson == pytest.approx(1.0, abs=1e-12) and fidelity.pair_agreement == 1.0


def test_export_takes_a_train_result_trial_and_saves(tmp_path):
    pytest.importorskip("transformer_lens")
    from attnmech.interp import (
        from_hooked_transformer,
        head_scores,
        load_hooked_transformer,
        save_hooked_transformer,
        to_hooked_transformer,
    )
    from attnmech.layer.training import TrainConfig, train

    ds = make_dataset(6, 4, 6, 8, graph="acyclic", seed=0)
    result = train(ds, TrainConfig(num_steps=5, num_trials=2, log_every=0))
    with pytest.raises(InvalidParameterError, match="trial"):
        to_hooked_transformer(result, ds)
    model = to_hooked_transformer(result, ds, trial=1)
    assert np.array_equal(from_hooked_transformer(model)[0], result.W[1])
    path = save_hooked_transformer(model, tmp_path / "head.pt")
    again = load_hooked_transformer(path)
    assert np.array_equal(head_scores(again, 0, 0), head_scores(model, 0, 0))


def test_head_scores_include_biases_and_refuse_big_tables(monkeypatch):
    pytest.importorskip("transformer_lens")
    import torch

    from attnmech.interp import from_hooked_transformer, head_scores, to_hooked_transformer

    E = np.random.default_rng(0).normal(size=(5, 3))
    W = np.random.default_rng(1).normal(size=(3, 3))
    model = to_hooked_transformer(W, E)
    b_Q, b_K = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.25, -0.5])
    with torch.no_grad():
        model.blocks[0].attn.b_Q[0] = torch.as_tensor(b_Q)
        model.blocks[0].attn.b_K[0] = torch.as_tensor(b_K)
    expected = (E @ W.T + b_Q) @ (E + b_K).T  # q = x W_Q + b_Q with W_Q = W^T, k = x + b_K
    assert np.abs(head_scores(model, 0, 0) - expected).max() <= 1e-12
    with pytest.raises(InvalidParameterError, match="b_Q"):
        from_hooked_transformer(model)
    with pytest.raises(InvalidParameterError, match="layer 1"):
        head_scores(model, 1, 0, tokens=[0])
    monkeypatch.setenv("ATTNMECH_MEMORY_LIMIT_GB", "1e-9")
    with pytest.raises(InvalidParameterError, match="GiB"):
        head_scores(model, 0, 0)


def test_trained_layer_orders_every_strict_edge(capsys):
    """An attnmech layer trained on acyclic data to corr >= 0.99 orders every strict edge
    (through examples/interp_tour.py, which also prints the round trip and an explanation)."""
    pytest.importorskip("transformer_lens")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "interp_tour.py"
    spec = importlib.util.spec_from_file_location("interp_tour", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--steps", "1500"])
    assert out["corr_svm"] >= 0.99
    assert out["overall"]["strict_edge_agreement"] == 1.0
    assert out["pattern_diff"] <= 1e-12 and out["score_diff"] <= 1e-12
    assert out["explain"]["constraints"] and "dual" in capsys.readouterr().out
