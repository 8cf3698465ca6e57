"""Graph-SVM: exactness against an independent primal formulation (cvxpy + Clarabel)."""

from __future__ import annotations

import numpy as np
import pytest

from attnmech import (
    Dataset,
    InfeasibleProblemError,
    SolveStatus,
    build_priority_graphs,
    make_dataset,
    make_embeddings,
    solve_finite,
    solve_graph_svm,
)
from attnmech.reference import svm_dual_clarabel, svm_primal_cvxpy

cp = pytest.importorskip("cvxpy")

SOLVER_RTOL = 1e-5  # the reference interior-point solver is accurate to about this


def reference_svm(graphs, E):
    """The primal QP over all d^2 entries of W, straight from SPEC section 4, one row per edge."""
    return svm_primal_cvxpy(graphs, E)


def random_ragged(seed: int, n: int, K: int, d: int, embeddings: str) -> Dataset:
    """Ragged sequences with repeated tokens and labels drawn from each sequence."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, size=n)
    sequences = [rng.integers(0, K, size=L) for L in lengths]
    labels = [int(rng.choice(s)) for s in sequences]
    return Dataset(sequences, labels, make_embeddings(embeddings, K, d, seed=seed, rho=0.3))


CASES = [
    ("paper-cyclic", lambda s: make_dataset(6, 4, 6, 8, graph="cyclic", seed=s)),
    ("paper-acyclic", lambda s: make_dataset(4, 6, 8, 8, graph="acyclic", seed=s)),
    ("n10-K8", lambda s: make_dataset(10, 6, 8, 8, seed=s)),
    ("ragged-random", lambda s: random_ragged(s, 14, 7, 9, "random")),
    ("ragged-equicorr", lambda s: random_ragged(s, 14, 6, 6, "equicorr")),
    ("ragged-ortho", lambda s: random_ragged(s, 20, 8, 10, "ortho")),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_matches_independent_primal(name, make, seed):
    ds = make(seed)
    graphs = build_priority_graphs(ds)
    res = solve_graph_svm(graphs, ds.embeddings)
    assert res.status is SolveStatus.OPTIMAL
    assert res.max_violation <= 1e-9
    assert res.relative_gap <= 1e-8
    W_ref = reference_svm(graphs, ds.embeddings)
    scale = max(1.0, np.linalg.norm(W_ref))
    np.testing.assert_allclose(res.W_svm, W_ref, atol=SOLVER_RTOL * scale)
    # ours is feasible to 1e-9 and no larger than the reference optimum
    assert np.sum(res.W_svm**2) <= np.sum(W_ref**2) * (1 + 1e-7)


@pytest.mark.parametrize("seed", range(2))
def test_coupled_active_set_path_matches_reference_dual(seed):
    # K = d = 32, n = 128: over 500 constraints, so the per-query warm start is used
    ds = make_dataset(128, 8, 32, 32, seed=seed)
    graphs = build_priority_graphs(ds)
    res = solve_graph_svm(graphs, ds.embeddings)
    assert res.constraints.n_constraints >= 500 and res.success
    W_ref = svm_dual_clarabel(graphs, ds.embeddings)
    np.testing.assert_allclose(res.W_svm, W_ref, atol=SOLVER_RTOL * np.linalg.norm(W_ref))


@pytest.mark.parametrize("seed", range(4))
def test_reduced_constraints_give_the_same_solution(seed):
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=seed)
    graphs = build_priority_graphs(ds)
    full = solve_graph_svm(graphs, ds.embeddings, reduce=False)
    reduced = solve_graph_svm(graphs, ds.embeddings)
    assert reduced.constraints.n_constraints <= full.constraints.n_constraints
    np.testing.assert_allclose(reduced.W_svm, full.W_svm, atol=1e-9)


def test_margins_and_duals_satisfy_kkt():
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=5)
    res = solve_graph_svm(build_priority_graphs(ds), ds.embeddings)
    cons = res.constraints
    strict = cons.strict
    assert (res.dual_values[strict] >= -1e-12).all()
    assert (res.margins[strict] >= 1 - 1e-9).all()
    np.testing.assert_allclose(res.margins[~strict], 0.0, atol=1e-9)
    # complementary slackness: a positive multiplier means the margin is exactly 1
    positive = strict & (res.dual_values > 1e-8)
    np.testing.assert_allclose(res.margins[positive], 1.0, atol=1e-9)
    # W is the dual combination of the constraint matrices
    E = ds.embeddings
    W = sum(
        lam * np.outer(E[i] - E[j], E[k])
        for lam, i, j, k in zip(res.dual_values, cons.i, cons.j, cons.query, strict=True)
    )
    np.testing.assert_allclose(res.W_svm, W, atol=1e-10)


def test_orthonormal_star_closed_form():
    # one sample [0, 1, 2] with label 0: scores (2/3, -1/3, -1/3) under query 2
    ds = Dataset([[0, 1, 2]], [0], np.eye(3))
    res = solve_graph_svm(build_priority_graphs(ds), ds.embeddings)
    expected = np.zeros((3, 3))
    expected[:, 2] = [2 / 3, -1 / 3, -1 / 3]
    np.testing.assert_allclose(res.W_svm, expected, rtol=1e-12, atol=1e-14)


def test_orthonormal_blocks_equal_one_dense_problem():
    ds = make_dataset(60, 5, 12, 12, embeddings="ortho", seed=1)
    graphs = build_priority_graphs(ds)
    split = solve_graph_svm(graphs, ds.embeddings)
    assert split.solver_stats.extra_stats["n_blocks"] > 1
    dense = solve_graph_svm(graphs, ds.embeddings, coupling_tol=-1.0)  # force one block
    assert dense.solver_stats.extra_stats["n_blocks"] == 1
    np.testing.assert_allclose(split.W_svm, dense.W_svm, atol=1e-9)


def test_orthogonal_to_finite_subspace():
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=2)
    graphs = build_priority_graphs(ds)
    svm = solve_graph_svm(graphs, ds.embeddings)
    fin = solve_finite(ds, graphs)
    assert fin.dimension > 0
    np.testing.assert_allclose(fin.project(svm.W_svm), 0.0, atol=1e-10)


def test_no_strict_priorities_gives_zero(unbalanced_cycle):
    res = solve_graph_svm(build_priority_graphs(unbalanced_cycle), unbalanced_cycle.embeddings)
    assert res.is_zero and res.success
    assert np.count_nonzero(res.W_svm) == 0
    assert "W_svm = 0" in res.message


def test_infeasible_lists_conflicting_constraints():
    # tokens 0 and 1 share an embedding, so "0 strictly above 1 under query 2" cannot hold
    E = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ds = Dataset([[0, 1, 2]], [0], E)
    with pytest.raises(InfeasibleProblemError) as info:
        solve_graph_svm(build_priority_graphs(ds), E)
    assert (2, 0, 1, "strict") in info.value.conflicts
    assert "(k=2, 0, 1, strict)" in str(info.value)


def test_dependent_but_feasible_embeddings_solve():
    # K > d, but the constraints can still hold: the solver must not report infeasibility
    E = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]) / np.sqrt([[1.0], [1.0], [2.0]])
    ds = Dataset([[0, 1]], [0], E)
    res = solve_graph_svm(build_priority_graphs(ds), E)
    assert res.success and res.max_violation <= 1e-9


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def ragged_datasets(draw):
    K = draw(st.integers(2, 7))
    d = draw(st.integers(K, K + 3))
    n = draw(st.integers(1, 12))
    sequences = [draw(st.lists(st.integers(0, K - 1), min_size=1, max_size=7)) for _ in range(n)]
    labels = [draw(st.sampled_from(s)) for s in sequences]
    kind = draw(st.sampled_from(["random", "ortho", "equicorr"]))
    E = make_embeddings(kind, K, d, seed=draw(st.integers(0, 2**16)), rho=0.4)
    return Dataset(sequences, labels, E)


@settings(max_examples=60, deadline=None)
@given(ds=ragged_datasets())
def test_property_feasible_optimal_and_orthogonal_to_s_fin(ds):
    graphs = build_priority_graphs(ds)
    res = solve_graph_svm(graphs, ds.embeddings)
    assert res.success
    assert res.max_violation <= 1e-9 and res.relative_gap <= 1e-8
    fin = solve_finite(ds, graphs)
    scale = max(1.0, res.norm)
    np.testing.assert_allclose(fin.project(res.W_svm), 0.0, atol=1e-9 * scale)
    # strict edges have margin >= 1, same-SCC edges margin 0
    assert (res.edge_margins[res.edge_strict] >= 1 - 1e-9).all()
    np.testing.assert_allclose(res.edge_margins[~res.edge_strict], 0.0, atol=1e-9)
