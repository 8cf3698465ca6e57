"""Graph-SVMs for other norms (attnmech.theory.norms), checked against an independent formulation.

The reference is cvxpy + Clarabel on the UNREDUCED primal: a full d x d matrix variable, one
constraint per original TPG edge, the norm written with cvxpy's own atoms. attnmech solves the
reduced constraints with HiGHS (l1, linf) or Clarabel (lp, nuclear, spectral) and certifies the
answer with its own dual bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnmech import Dataset, build_priority_graphs, make_dataset, solve
from attnmech.errors import InfeasibleProblemError, InvalidParameterError
from attnmech.theory.norms import (
    NORMS,
    dual_norm_of,
    margin_distance,
    margin_of,
    norm_lower_bound,
    norm_of,
    parse_norm,
    solve_norm_svm,
)
from attnmech.theory.svm import solve_graph_svm

cp = pytest.importorskip("cvxpy")

OBJECTIVE_RTOL = 1e-7  # attnmech's optimum vs the reference's
VIOLATION_TOL = 1e-9  # on every original edge
NORM_NAMES = ["fro", "l1", "linf", "lp:3", "lp:1.5", "nuclear", "spectral"]


def reference_optimum(graphs, E: np.ndarray, name: str) -> tuple[float, np.ndarray]:
    """min N(W) with every TPG edge a constraint, all d^2 entries, cvxpy atoms."""
    d = E.shape[1]
    W = cp.Variable((d, d))
    spec = parse_norm(name)
    objective = {
        "fro": lambda: cp.norm(W, "fro"),
        "l1": lambda: cp.sum(cp.abs(W)),
        "linf": lambda: cp.max(cp.abs(W)),
        "nuclear": lambda: cp.normNuc(W),
        "spectral": lambda: cp.sigma_max(W),
    }.get(spec.name, lambda: cp.pnorm(cp.vec(W, order="C"), spec.p))()
    strict = graphs.scc_of(graphs.edge_query, graphs.edge_src) != graphs.scc_of(
        graphs.edge_query, graphs.edge_dst
    )
    constraints = []
    for k, i, j, s in zip(graphs.edge_query, graphs.edge_src, graphs.edge_dst, strict, strict=True):
        margin = (E[i] - E[j]) @ W @ E[k]
        constraints.append(margin >= 1 if s else margin == 0)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL
    return float(problem.value), np.asarray(W.value)


def feasible_wide_vocab(seed: int) -> Dataset:
    """K = 10 > d = 8 random embeddings, few samples: the first seed whose Graph-SVM is feasible."""
    for s in range(seed, seed + 50):
        ds = make_dataset(3, 3, 10, 8, seed=s)
        try:
            if not solve_graph_svm(build_priority_graphs(ds), ds.embeddings).is_zero:
                return ds
        except InfeasibleProblemError:
            continue
    raise AssertionError("no feasible K > d dataset found")


DATASETS = {
    "cyclic-6-4-6-8": lambda: make_dataset(6, 4, 6, 8, graph="cyclic", seed=3),
    "acyclic-4-6-8-8": lambda: make_dataset(4, 6, 8, 8, graph="acyclic", seed=4),
    "cyclic-10-6-8-8": lambda: make_dataset(10, 6, 8, 8, graph="cyclic", seed=5),
    "wide-K10-d8": lambda: feasible_wide_vocab(0),
}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(name, marks=pytest.mark.slow) if name == "cyclic-10-6-8-8" else name
        for name in DATASETS
    ],
)
def problem(request):
    ds = DATASETS[request.param]()
    return ds, build_priority_graphs(ds)


@pytest.mark.parametrize("name", NORM_NAMES)
def test_matches_cvxpy_on_the_unreduced_primal(problem, name):
    ds, graphs = problem
    result = solve_norm_svm(graphs, ds.embeddings, name)
    expected, W_ref = reference_optimum(graphs, ds.embeddings, name)
    value = norm_of(result.W_svm, name)
    assert result.success, result.message
    assert result.norm_name == parse_norm(name).name
    assert abs(value - expected) <= OBJECTIVE_RTOL * expected
    assert result.max_violation <= VIOLATION_TOL
    # the certificate brackets the reference optimum (up to the reference's own accuracy)
    lower = result.solver_stats.extra_stats.get("lower_bound", expected)
    assert lower <= expected * (1 + 1e-9)
    if name != "fro":
        assert result.relative_gap <= 1e-8
    if parse_norm(name).strictly_convex or name == "nuclear":
        # strictly convex, or (nuclear on these datasets) certified by the dual certificate
        assert result.unique is True
    if result.unique is True:  # a unique minimiser: the reference must have found it too
        np.testing.assert_allclose(result.W_svm, W_ref, atol=1e-5 * (1 + np.abs(W_ref).max()))


def test_lp2_is_frobenius_and_norms_order():
    ds = DATASETS["cyclic-6-4-6-8"]()
    graphs = build_priority_graphs(ds)
    fro = solve_graph_svm(graphs, ds.embeddings)
    np.testing.assert_allclose(
        solve_norm_svm(graphs, ds.embeddings, "lp:2").W_svm, fro.W_svm, rtol=0, atol=0
    )
    # each minimiser beats the others' minimisers in its own norm (all are feasible)
    solutions = {n: solve_norm_svm(graphs, ds.embeddings, n).W_svm for n in NORM_NAMES}
    for own, W_own in solutions.items():
        for other, W_other in solutions.items():
            assert norm_of(W_own, own) <= norm_of(W_other, own) * (1 + 1e-7), (own, other)


def test_l1_minimiser_not_unique_is_reported_and_tie_broken():
    # one sample [a, b] -> a under query b: the only constraint is W[a, b] - W[b, b] >= 1, so every
    # (W[a, b], W[b, b]) = (t, t - 1), t in [0, 1], has l1 norm 1: a segment of minimisers.
    ds = Dataset([[0, 1]], [0], np.eye(2))
    graphs = build_priority_graphs(ds)
    result = solve_norm_svm(graphs, ds.embeddings, "l1")
    assert result.unique is False and result.tie_break == "fro"
    assert result.solver_stats.extra_stats["face_width"] > 0.5  # the segment has length sqrt(2)
    np.testing.assert_allclose(result.W_svm, [[0.0, 0.5], [0.0, -0.5]], atol=1e-8)
    assert norm_of(result.W_svm, "l1") == pytest.approx(1.0, rel=1e-8)
    raw = solve_norm_svm(graphs, ds.embeddings, "l1", tie_break=None)
    assert raw.unique is False and raw.tie_break is None
    assert norm_of(raw.W_svm, "l1") == pytest.approx(1.0, rel=1e-9)
    # linf on the same data: (0.5, -0.5) is the only way to reach norm 0.5, but the other column
    # is free within [-0.5, 0.5]: not unique either; the tie-break zeroes it.
    linf = solve_norm_svm(graphs, ds.embeddings, "linf")
    assert linf.unique is False
    np.testing.assert_allclose(linf.W_svm, [[0.0, 0.5], [0.0, -0.5]], atol=1e-8)
    # spectral: a column (t, t) orthogonal to (0.5, -0.5) keeps sigma_max = 1/sqrt(2) for |t| <= 1/2
    spectral = solve_norm_svm(graphs, ds.embeddings, "spectral", probe=True)
    assert spectral.unique is False
    assert norm_of(spectral.W_svm, "spectral") == pytest.approx(1 / math.sqrt(2), rel=1e-8)


def test_nuclear_face_is_not_certified_and_tie_broken():
    # W[0,0] >= 1/2 and W[1,1] >= 1/2 only (embeddings +-e1, +-e2): every [[1/2, x], [x, 1/2]]
    # with |x| <= 1/2 has nuclear norm 1, so the dual certificate must fail; least Frobenius: x = 0
    E = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    ds = Dataset([[2, 0], [3, 1]], [0, 1], E)
    result = solve_norm_svm(build_priority_graphs(ds), ds.embeddings, "nuclear", probe=True)
    assert result.unique is False and result.tie_break == "fro"
    np.testing.assert_allclose(result.W_svm, 0.5 * np.eye(2), atol=1e-6)
    assert norm_of(result.W_svm, "nuclear") == pytest.approx(1.0, rel=1e-8)


def test_unique_l1_minimiser_is_reported_unique():
    # query c, sample [a, b, c] -> a: W[a, c] = 1, the rest 0 is the only l1 minimiser
    ds = Dataset([[0, 1, 2]], [0], np.eye(3))
    result = solve_norm_svm(build_priority_graphs(ds), ds.embeddings, "l1")
    assert result.unique is True and result.tie_break is None
    expected = np.zeros((3, 3))
    expected[0, 2] = 1.0
    np.testing.assert_allclose(result.W_svm, expected, atol=1e-12)


def test_norm_functions_and_duality():
    rng = np.random.default_rng(0)
    W, G = rng.standard_normal((2, 5, 5))
    s = np.linalg.svd(W, compute_uv=False)
    assert norm_of(W, "l1") == pytest.approx(np.abs(W).sum(), rel=1e-14)
    assert norm_of(W, "linf") == pytest.approx(np.abs(W).max(), rel=1e-14)
    assert norm_of(W, "lp:3") == pytest.approx((np.abs(W) ** 3).sum() ** (1 / 3), rel=1e-13)
    assert norm_of(W, "nuclear") == pytest.approx(s.sum(), rel=1e-13)
    assert norm_of(W, "spectral") == pytest.approx(s.max(), rel=1e-13)
    assert norm_of(W, "fro") == pytest.approx(np.sqrt((W * W).sum()), rel=1e-14)
    np.testing.assert_allclose(norm_of(np.stack([W, 2 * W]), "nuclear"), [s.sum(), 2 * s.sum()])
    for name in NORM_NAMES:  # Hoelder: <G, W> <= N(W) N*(G), equality reachable
        assert abs(np.sum(G * W)) <= norm_of(W, name) * dual_norm_of(G, name) * (1 + 1e-12)
    assert parse_norm("lp:3").dual == "lp:1.5" and parse_norm("lp:1.5").dual == "lp:3"
    assert {NORMS[n].dual for n in ("l1", "linf", "nuclear", "spectral")} == {
        "linf",
        "l1",
        "spectral",
        "nuclear",
    }


def test_lower_bound_is_tight_at_the_solution_and_valid_for_any_multipliers():
    ds = DATASETS["acyclic-4-6-8-8"]()
    graphs = build_priority_graphs(ds)
    result = solve_norm_svm(graphs, ds.embeddings, "nuclear")
    optimum = norm_of(result.W_svm, "nuclear")
    bound = norm_lower_bound(ds.embeddings, result.constraints, result.dual_values, "nuclear")
    assert bound == pytest.approx(optimum, rel=1e-7)
    rng = np.random.default_rng(1)
    for _ in range(5):
        noise = rng.standard_normal(result.constraints.n_constraints)
        assert norm_lower_bound(ds.embeddings, result.constraints, noise, "nuclear") <= optimum


def test_margin_distance_is_zero_for_scaled_solution():
    ds = make_dataset(4, 6, 8, 8, graph="acyclic", seed=4)
    graphs = build_priority_graphs(ds)
    W = solve_norm_svm(graphs, ds.embeddings, "linf").W_svm
    assert margin_of(7 * W, graphs, ds.embeddings) == pytest.approx(7.0, rel=1e-9)
    assert margin_distance(7 * W, W, graphs, ds.embeddings, "linf") <= 1e-9
    with pytest.raises(InvalidParameterError, match="margin"):
        margin_distance(-W, W, graphs, ds.embeddings, "linf")


def test_bad_input_errors():
    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=3)
    graphs = build_priority_graphs(ds)
    for bad in ("l3", "lp:0.5", "lp:abc", "frob"):
        with pytest.raises(InvalidParameterError, match="norm"):
            solve_norm_svm(graphs, ds.embeddings, bad)
    with pytest.raises(InvalidParameterError, match="string"):
        parse_norm(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="unknown norm 'bogus'"):
        solve(ds, svm_norm="bogus")
    with pytest.raises(InvalidParameterError, match="build_priority_graphs"):
        solve_norm_svm(ds, ds.embeddings, "l1")
    with pytest.raises(InvalidParameterError, match="tie_break"):
        solve_norm_svm(graphs, ds.embeddings, "l1", tie_break="l2")
    with pytest.raises(InvalidParameterError, match="fro"):
        solve_norm_svm(graphs, ds.embeddings, "l1", max_iter=3)


@pytest.mark.parametrize("name", ["l1", "spectral"])
def test_infeasible_lists_conflicts(name):
    # e_c = (e_a + e_b) / 2, so under any query c's score is the mean of a's and b's: a > c and
    # b > c (samples [a, c] -> a and [b, c] -> b) cannot both hold
    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    ds = Dataset([[0, 2], [1, 2]], [0, 1], E)
    graphs = build_priority_graphs(ds)
    with pytest.raises(InfeasibleProblemError) as info:
        solve_norm_svm(graphs, ds.embeddings, name)
    assert info.value.conflicts
    assert "linearly independent" in str(info.value)


def test_theory_solve_accepts_every_norm():
    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=3)
    for name in ("l1", "lp:3", "spectral"):
        theory = solve(ds, svm_norm=name)
        assert theory.svm.norm_name == parse_norm(name).name
        assert f"({parse_norm(name).name} norm)" in theory.summary()
