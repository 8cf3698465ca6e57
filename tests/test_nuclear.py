"""The nuclear-norm Graph-SVM and factorized training (an extension beyond the paper)."""

from __future__ import annotations

import numpy as np
import pytest

from attnmech import AttentionConfig, TrainConfig, build_priority_graphs, make_dataset, solve, train
from attnmech.theory.norms import solve_norm_svm
from attnmech.theory.svm import solve_graph_svm, solve_nuclear_svm

pytest.importorskip("cvxpy")
pytestmark = pytest.mark.filterwarnings("ignore:solve_nuclear_svm is deprecated:DeprecationWarning")


@pytest.mark.parametrize("seed", range(2))
def test_solve_nuclear_svm_is_a_deprecated_shim_of_solve_norm_svm(seed):
    """One nuclear-norm solver: the old entry point warns and returns solve_norm_svm's answer."""
    ds = make_dataset(5, 4, 5, 6, graph="cyclic", seed=seed)
    graphs = build_priority_graphs(ds)
    with pytest.warns(DeprecationWarning, match="solve_norm_svm"):
        old = solve_nuclear_svm(graphs, ds.embeddings)
    new = solve_norm_svm(graphs, ds.embeddings, "nuclear")
    assert old.norm_name == new.norm_name == "nuclear"
    assert (old.unique, old.tie_break, old.method) == (new.unique, new.tie_break, new.method)
    np.testing.assert_allclose(old.W_svm, new.W_svm, rtol=0, atol=1e-9)
    assert old.success and old.relative_violation <= 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_feasible_and_no_larger_nuclear_norm_than_frobenius_svm(seed):
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=seed)
    graphs = build_priority_graphs(ds)
    nuc = solve_nuclear_svm(graphs, ds.embeddings)
    fro = solve_graph_svm(graphs, ds.embeddings)
    assert nuc.success and nuc.max_violation <= 1e-6
    # each is optimal for its own norm, and the other one is feasible for both problems
    assert np.linalg.norm(nuc.W_svm, "nuc") <= np.linalg.norm(fro.W_svm, "nuc") + 1e-6
    assert np.linalg.norm(fro.W_svm) <= np.linalg.norm(nuc.W_svm) + 1e-9
    assert nuc.relative_gap <= 1e-6


def test_one_query_nuclear_equals_frobenius():
    # a single constrained column: rank one, where both norms agree
    ds = make_dataset(5, 4, 6, 8, seed=1)
    ds = ds.subset(ds.last_tokens == ds.last_tokens[0])
    graphs = build_priority_graphs(ds)
    np.testing.assert_allclose(
        solve_nuclear_svm(graphs, ds.embeddings).W_svm,
        solve_graph_svm(graphs, ds.embeddings).W_svm,
        atol=1e-6,
    )


def test_factorized_training_follows_the_nuclear_norm_svm():
    datasets = [make_dataset(4, 6, 8, 8, graph="acyclic", seed=s) for s in range(3)]
    config = TrainConfig(
        model=AttentionConfig(parameterization="factorized"), num_steps=3000, log_every=0
    )
    run = train(datasets, config, theory=True)  # measured against the nuclear-norm SVM
    corr_nuclear = run.history["corr_svm"][-1]
    fro = [solve(ds).W_svm for ds in datasets]
    corr_fro = [
        float(np.sum(W * F) / np.linalg.norm(W) / np.linalg.norm(F))
        for W, F in zip(run.W, fro, strict=True)
    ]
    assert corr_nuclear.mean() > 0.97
    assert corr_nuclear.mean() > np.mean(corr_fro) + 0.02
