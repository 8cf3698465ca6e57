"""The Graph-SVM layer: one core for dense and token space, certified infeasibility, refusals."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pytest

from attnmech import Dataset, build_priority_graphs, make_dataset
from attnmech.errors import InfeasibleProblemError, SolverError
from attnmech.theory.graphs import has_priority_cycle
from attnmech.theory.graphsvm import (
    infeasibility_certificate,
    solve_graph_svm,
    svm_constraints,
)
from attnmech.theory.graphsvm.infeasibility import _exact_farkas
from attnmech.theory.norms import solve_norm_svm
from attnmech.theory.tokenspace import TokenSVMResult

cp = pytest.importorskip("cvxpy")


def _relative_violation(graphs, E, W):
    q, s, t = graphs.edge_query, graphs.edge_src, graphs.edge_dst
    strict = graphs.scc_of(q, s) != graphs.scc_of(q, t)
    margin = np.einsum("cd,de,ce->c", E[s] - E[t], W, E[q])
    scale = np.einsum("cd,de,ce->c", np.abs(E[s]) + np.abs(E[t]), np.abs(W), np.abs(E[q]))
    viol = np.where(strict, np.maximum(1.0 - margin, 0.0), np.abs(margin))
    return float((viol / np.maximum(scale, 1.0)).max(initial=0.0))


def _oracle(graphs, E):
    """Independent formulation: cvxpy + Clarabel on unit-normalised literal edge rows (row space
    of E), min ||M||^2; returns (W, status)."""
    q, s, t = graphs.edge_query, graphs.edge_src, graphs.edge_dst
    strict = graphs.scc_of(q, s) != graphs.scc_of(q, t)
    _, sv, Vt = np.linalg.svd(E, full_matrices=False)
    r = int((sv > sv[0] * 1e-15).sum())
    V = Vt[:r].T
    F = E @ V
    rows = ((F[s] - F[t])[:, :, None] * F[q][:, None, :]).reshape(q.size, -1)
    n = np.linalg.norm(rows, axis=1)
    A, b = rows / n[:, None], strict / n
    M = cp.Variable(r * r)
    cons = [A[strict] @ M >= b[strict]]
    if (~strict).any():
        cons.append(A[~strict] @ M == 0)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(M)), cons)
    prob.solve(solver=cp.CLARABEL)
    if M.value is None:
        return None, prob.status
    return V @ M.value.reshape(r, r) @ V.T, prob.status


def _scaled_instance(seed):
    """K > d, Gaussian rows scaled by 10**U(-4, 4) (the first family of the infeasibility bench)."""
    rng = np.random.default_rng(seed)
    K, d = 8, 3
    E = rng.standard_normal((K, d)) * 10.0 ** rng.uniform(-4, 4, size=(K, 1))
    seqs = [rng.choice(K, size=4, replace=False).tolist() for _ in range(6)]
    return Dataset(seqs, [int(rng.choice(s)) for s in seqs], E)


# ------------------------------------------------------------------------------ one core
@pytest.mark.parametrize("seed", range(3))
def test_auto_method_uses_token_space_and_matches_dense(seed):
    ds = make_dataset(10, 5, 8, 8, graph="cyclic", embeddings="ortho", seed=seed)
    graphs = build_priority_graphs(ds)
    auto = solve_graph_svm(graphs, ds.embeddings, method="auto")
    dense = solve_graph_svm(graphs, ds.embeddings, method="dense")
    assert isinstance(auto, TokenSVMResult) and auto.method == "token-space active-set"
    assert auto.success and dense.success
    np.testing.assert_allclose(auto.W_svm, dense.W_svm, rtol=0, atol=1e-9)
    np.testing.assert_allclose(auto.dual_values, dense.dual_values, rtol=0, atol=1e-7)
    for res in (auto, dense):  # iterations, not factorisations
        extra = res.solver_stats.extra_stats
        assert res.solver_stats.num_iters >= 1
        assert res.solver_stats.num_iters == extra.get(
            "active_set_steps", res.solver_stats.num_iters
        )


def test_num_iters_counts_active_set_steps_not_factorisations():
    ds = make_dataset(30, 6, 12, 12, graph="cyclic", seed=3)
    res = solve_graph_svm(build_priority_graphs(ds), ds.embeddings)
    extra = res.solver_stats.extra_stats
    assert res.method == "active-set"
    assert res.solver_stats.num_iters == extra["active_set_steps"]
    assert extra["factorizations"] <= extra["total_steps"]


def test_unknown_method_is_refused():
    ds = make_dataset(4, 3, 4, 4, seed=0)
    with pytest.raises(Exception, match="method must be one of"):
        solve_graph_svm(build_priority_graphs(ds), ds.embeddings, method="fast")


def test_constraints_use_scc_chains():
    from attnmech.theory.graphs import scc_chains

    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=1)
    graphs = build_priority_graphs(ds)
    cons = svm_constraints(graphs)
    eq = ~cons.strict
    q, i, j = scc_chains(graphs)
    assert (cons.query[eq].tolist(), cons.i[eq].tolist(), cons.j[eq].tolist()) == (
        q.tolist(),
        i.tolist(),
        j.tolist(),
    )


# ------------------------------------------------------------------------------ cyclicity
@pytest.mark.parametrize("seed", range(6))
def test_one_cyclicity_test_agrees_with_networkx(seed):
    from attnmech.studies.authors import _graphs_cyclic

    rng = np.random.default_rng(seed)
    seqs = rng.integers(0, 5, size=(4, 3))
    labels = np.array([rng.choice(s) for s in seqs])
    ds = Dataset(seqs, labels, np.eye(5))
    expected = False
    for k in np.unique(seqs[:, -1]):
        g = nx.DiGraph()
        for s, y in zip(seqs[seqs[:, -1] == k], labels[seqs[:, -1] == k], strict=True):
            g.add_edges_from((int(y), int(t)) for t in s if t != y)
        expected |= any(len(c) > 1 for c in nx.strongly_connected_components(g))
    assert has_priority_cycle(ds) is bool(expected)
    assert has_priority_cycle(build_priority_graphs(ds)) is bool(expected)
    assert _graphs_cyclic(seqs, labels, 5) is bool(expected)


# ------------------------------------------------------------------------------ infeasibility
def test_exact_conflict_is_certified_and_resolves_infeasible():
    """Linearly dependent embeddings (e_3 = 2 e_2, e_1 + e_0 = e_3): the checked certificate
    rules out every W up to 1e6 times the problem's scale, and the conflict re-solved by an
    independent LP is infeasible on its own."""
    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 1.0], [2.0, -1.0]])
    ds = Dataset([[2, 0, 4, 3], [2, 1, 3], [4, 0, 3]], [0, 1, 4], E)
    graphs = build_priority_graphs(ds)
    cons = svm_constraints(graphs, reduce=False)
    cert = infeasibility_certificate(E, cons)
    assert cert is not None and cert.certified and cert.bound > 1e6 * cert.scale
    with pytest.raises(InfeasibleProblemError) as info:
        solve_graph_svm(graphs, E)
    assert info.value.conflicts
    # the conflict re-solved on its own by an independent LP is infeasible too
    from scipy.optimize import linprog

    keep = [
        c
        for c in range(cons.n_constraints)
        if (int(cons.query[c]), int(cons.i[c]), int(cons.j[c]))
        in {(k, i, j) for k, i, j, _ in info.value.conflicts}
    ]
    rows = [np.outer(E[cons.i[c]] - E[cons.j[c]], E[cons.query[c]]).ravel() for c in keep]
    strict_kept = [bool(cons.strict[c]) for c in keep]
    A = np.array(rows)
    lp = linprog(
        np.zeros(4),
        A_ub=-A[strict_kept] if any(strict_kept) else None,
        b_ub=-np.ones(sum(strict_kept)) if any(strict_kept) else None,
        A_eq=A[[not s for s in strict_kept]] if not all(strict_kept) else None,
        b_eq=np.zeros(len(keep) - sum(strict_kept)) if not all(strict_kept) else None,
        bounds=(None, None),
    )
    assert lp.status == 2


def test_exact_farkas_rejects_independent_constraints():
    E = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1e-3]])
    ds = Dataset([[0, 1, 2]], [0], E)
    cons = svm_constraints(build_priority_graphs(ds), reduce=False)
    idx = np.arange(cons.n_constraints)
    assert not _exact_farkas(E, cons, idx, np.ones(idx.size))


@pytest.mark.parametrize("seed", range(12))
def test_no_false_infeasible_on_badly_scaled_rows(seed):
    """K > d with rows scaled by 10**U(-4, 4): "infeasible" only when the oracle finds no point
    either, and an optimal answer is a certified point of the independent formulation's norm."""
    ds = _scaled_instance(seed)
    graphs = build_priority_graphs(ds)
    E = ds.embeddings
    W_ref, status = _oracle(graphs, E)
    ref_ok = W_ref is not None and _relative_violation(graphs, E, W_ref) <= 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = solve_graph_svm(graphs, E)
        except InfeasibleProblemError as exc:
            assert not ref_ok, f"false infeasible: the oracle has a point ({exc})"
            return
        except SolverError:
            return  # a refusal is allowed (counted in benchmarks/bench_infeasibility.py)
    assert res.success and _relative_violation(graphs, E, res.W_svm) <= 1e-9
    if ref_ok:  # both feasible: ours is no larger (up to the oracle's accuracy)
        assert res.norm <= np.linalg.norm(W_ref) * (1 + 1e-5)


def test_formerly_false_infeasible_case_is_solved():
    """An instance of benchmarks/bench_infeasibility.py: feasible (the oracle has a point of
    norm 97.8 with no violation) but reported infeasible on HiGHS's word before."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_infeasibility.py"
    spec = importlib.util.spec_from_file_location("bench_infeasibility", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    inst = next(i for i in bench.instances(80) if (i["family"], i["idx"]) == ("scaled", 76))
    ds = Dataset([list(map(int, s)) for s in inst["seqs"]], inst["labels"], inst["E"])
    graphs = build_priority_graphs(ds)
    res = solve_graph_svm(graphs, ds.embeddings)
    W_ref, _ = _oracle(graphs, ds.embeddings)
    assert res.success and _relative_violation(graphs, ds.embeddings, res.W_svm) <= 1e-9
    np.testing.assert_allclose(res.norm, np.linalg.norm(W_ref), rtol=1e-6)


def test_near_duplicate_rows_are_solved_not_refused():
    """Rows 1 and 3 differ by 2e-4 (K <= d, feasible): the dual polish in unit-row scaling
    certifies the optimum that the independent formulation finds."""
    rng = np.random.default_rng(7)
    K, d = 5, 6
    E = rng.standard_normal((K, d)) / np.sqrt(d)
    E[3] = E[1] + 2e-4 * rng.standard_normal(d) / np.sqrt(d)
    seqs = [rng.choice(K, size=4, replace=False).tolist() for _ in range(8)]
    ds = Dataset(seqs, [int(rng.choice(s)) for s in seqs], E)
    graphs = build_priority_graphs(ds)
    res = solve_graph_svm(graphs, E)
    W_ref, _ = _oracle(graphs, E)
    assert res.success and _relative_violation(graphs, E, res.W_svm) <= 1e-9
    assert res.norm <= np.linalg.norm(W_ref) * (1 + 1e-6)


def test_spectral_tie_break_failure_falls_back(monkeypatch):
    import attnmech.theory.norms as norms

    def broken(*args, **kwargs):
        raise SolverError("tie-break solver failed")

    ds = make_dataset(5, 4, 5, 6, graph="cyclic", seed=0)
    graphs = build_priority_graphs(ds)
    plain = solve_norm_svm(graphs, ds.embeddings, "spectral", tie_break=None)
    monkeypatch.setattr(norms, "_face_solve", broken)
    res = solve_norm_svm(graphs, ds.embeddings, "spectral")
    assert res.success and res.tie_break is None and res.unique is None
    assert "tie_break_failed" in res.solver_stats.extra_stats
    np.testing.assert_allclose(res.W_svm, plain.W_svm, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [1, 2])
def test_spectral_on_paper_data_where_the_tie_break_solver_fails(seed):
    """make_dataset(4, 3, 6, 5, seed) (K > d): Clarabel fails on the tie-break problem; the
    answer is the certified tie_break=None point instead of a SolverError."""
    ds = make_dataset(4, 3, 6, 5, seed=seed)
    graphs = build_priority_graphs(ds)
    res = solve_norm_svm(graphs, ds.embeddings, "spectral")
    plain = solve_norm_svm(graphs, ds.embeddings, "spectral", tie_break=None)
    assert res.success and res.tie_break is None
    assert "solver failed" in res.solver_stats.extra_stats["tie_break_failed"]
    np.testing.assert_allclose(res.W_svm, plain.W_svm, rtol=0, atol=1e-12)
    W_ref, _ = _oracle_spectral(graphs, ds.embeddings)
    ours = np.linalg.norm(res.W_svm, 2)
    assert ours <= np.linalg.norm(W_ref, 2) * (1 + 1e-6)


def _oracle_spectral(graphs, E):
    """Independent formulation of the spectral-norm Graph-SVM: cvxpy sigma_max over all d x d
    entries, one constraint per literal edge."""
    q, s, t = graphs.edge_query, graphs.edge_src, graphs.edge_dst
    strict = graphs.scc_of(q, s) != graphs.scc_of(q, t)
    d = E.shape[1]
    W = cp.Variable((d, d))
    margins = cp.sum(cp.multiply((E[s] - E[t]) @ W, E[q]), axis=1)
    cons = [margins[np.flatnonzero(strict)] >= 1]
    if (~strict).any():
        cons.append(margins[np.flatnonzero(~strict)] == 0)
    prob = cp.Problem(cp.Minimize(cp.sigma_max(W)), cons)
    prob.solve(solver=cp.CLARABEL)
    return W.value, prob.status
