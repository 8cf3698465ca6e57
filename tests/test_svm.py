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
from attnmech.errors import (
    ConvergenceWarning,
    InvalidDatasetError,
    InvalidParameterError,
    SolverError,
)
from attnmech.theory.reference import svm_dual_clarabel, svm_primal_cvxpy
from attnmech.theory.solve import solve

cp = pytest.importorskip("cvxpy")

SOLVER_RTOL = 1e-5  # the reference interior-point solver is accurate to about this


def reference_svm(graphs, E):
    """The primal QP over all d^2 entries of W, straight from docs/theory.md#graph-svm, one row per
    edge."""
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


# ------------------------------------------------------------------ certification and fallbacks
K_GREATER_THAN_D = [(10, 3, 6, 3, 10030, 10.905126662393), (7, 5, 9, 4, 10025, 10.610371721869)]


@pytest.mark.parametrize(("n", "T", "K", "d", "seed", "norm"), K_GREATER_THAN_D)
def test_k_greater_than_d_examples_are_certified(n, T, K, d, seed, norm):
    """The issue's instances where the active-set method alone returned margins 0.94 / 0.18."""
    ds = make_dataset(n, T, K, d, seed=seed)
    graphs = build_priority_graphs(ds)
    res = solve_graph_svm(graphs, ds.embeddings)
    assert res.success and res.method != "active-set"
    assert res.edge_margins[res.edge_strict].min() >= 1 - 1e-9
    assert res.relative_violation <= 1e-9 and res.relative_gap <= 1e-8
    W_ref = svm_primal_cvxpy(graphs, ds.embeddings)  # independent: cvxpy on the unreduced primal
    np.testing.assert_allclose(res.norm, np.linalg.norm(W_ref), rtol=1e-7)
    np.testing.assert_allclose(res.norm, norm, rtol=1e-11)
    assert res.method in res.message and res.method in res.solver_stats.solver_name


def test_badly_scaled_orthogonal_rows_are_solved_not_flagged():
    E = np.diag([1.0, 1e-4, 1e4])
    ds = Dataset([[0, 1], [2, 1]], [0, 2], E)
    graphs = build_priority_graphs(ds)
    res = solve_graph_svm(graphs, E)
    assert res.success and res.edge_margins.min() >= 1 - 1e-9, res.message
    assert "dependent" not in res.message
    W_ref = svm_primal_cvxpy(graphs, E)  # cvxpy is off by 3e-6 in one entry here: scale 1e4
    np.testing.assert_allclose(res.W_svm, W_ref, atol=1e-8 * np.linalg.norm(W_ref), rtol=0)
    assert res.norm <= np.linalg.norm(W_ref) * (1 + 1e-12)


def test_uncertified_result_raises_unless_allowed(monkeypatch):
    """With only the active-set method (which cycles on this K > d problem) nothing certifies."""
    import attnmech.theory.graphsvm.solve as svm_module

    monkeypatch.setattr(svm_module, "_METHODS", ("active-set",))
    ds = make_dataset(7, 5, 9, 4, seed=10025)
    graphs = build_priority_graphs(ds)
    with pytest.raises(SolverError, match="allow_inaccurate=True") as info:
        solve_graph_svm(graphs, ds.embeddings)
    assert "active-set: max violation" in str(info.value)
    with pytest.warns(ConvergenceWarning, match="inaccurate"):
        res = solve_graph_svm(graphs, ds.embeddings, allow_inaccurate=True)
    assert res.status is SolveStatus.INACCURATE and not res.success
    assert res.relative_violation > 1e-9
    with pytest.raises(SolverError):
        solve(ds)
    with pytest.warns(ConvergenceWarning):
        assert not solve(ds, allow_inaccurate=True).svm.success


def test_conflicts_are_literal_edges():
    """Conflicts name edges of the graphs, never SCC representatives or implied pairs."""
    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 1.0], [2.0, -1.0]])
    ds = Dataset([[2, 0, 4, 3], [2, 1, 3], [4, 0, 3]], [0, 1, 4], E)
    graphs = build_priority_graphs(ds)
    with pytest.raises(InfeasibleProblemError) as info:
        solve_graph_svm(graphs, E)
    edges = set(zip(graphs.edge_query.tolist(), graphs.edge_src.tolist(),
                    graphs.edge_dst.tolist(), strict=True))  # fmt: skip
    assert info.value.conflicts
    assert {c[:3] for c in info.value.conflicts} <= edges


def test_large_vocabulary_few_samples_forms_no_dense_gram():
    """K = 30000 tokens, 3 samples: E @ E.T would take 7.2 GB; the solve needs a few MB."""
    import tracemalloc

    ds = make_dataset(3, 4, 30_000, 4, seed=0)
    tracemalloc.start()
    res = solve_graph_svm(build_priority_graphs(ds), ds.embeddings)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert res.success
    assert peak < 200 * 2**20, peak


def test_bad_arguments_are_attnmech_errors(unbalanced_cycle):
    graphs = build_priority_graphs(unbalanced_cycle)
    with pytest.raises(InvalidParameterError, match="build_priority_graphs"):
        solve_graph_svm(unbalanced_cycle, unbalanced_cycle.embeddings)
    with pytest.raises(InvalidParameterError, match="max_iter"):
        solve_graph_svm(graphs, unbalanced_cycle.embeddings, max_iter=0)
    with pytest.raises(InvalidDatasetError, match="shape"):
        solve_graph_svm(graphs, np.eye(5))
    with pytest.raises(InvalidDatasetError, match="numeric"):
        solve_graph_svm(graphs, "eye")
