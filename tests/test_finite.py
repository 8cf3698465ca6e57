"""The finite part W_fin: closed forms and an independent formulation (networkx + BFGS)."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import minimize

from attnmech import Dataset, build_priority_graphs, make_dataset, reduce_dataset, solve
from attnmech.theory.finite import project, solve_finite

CLOSED_FORM_RTOL = 1e-10
SOLVER_RTOL = 1e-6


def test_unbalanced_cycle_gives_log2(unbalanced_cycle):
    res = solve_finite(unbalanced_cycle, build_priority_graphs(unbalanced_cycle))
    a, b = np.eye(2)
    np.testing.assert_allclose((a - b) @ res.W_fin @ b, np.log(2), rtol=CLOSED_FORM_RTOL)
    assert res.gradient_norm <= 1e-10 and res.success


def test_balanced_cycle_gives_zero(balanced_cycle):
    res = solve_finite(balanced_cycle, build_priority_graphs(balanced_cycle))
    np.testing.assert_allclose(res.W_fin, 0.0, atol=1e-14)
    assert res.dimension == 1


def test_acyclic_data_has_trivial_finite_part(acyclic_chain):
    res = solve_finite(acyclic_chain, build_priority_graphs(acyclic_chain))
    assert res.dimension == 0 and res.reduced.n_samples == 0
    assert np.count_nonzero(res.W_fin) == 0


def test_reduced_dataset_keeps_label_scc(ragged_with_repeats):
    red = reduce_dataset(ragged_with_repeats, build_priority_graphs(ragged_with_repeats))
    # under e = 4: SCCs {a, b} > {c, d} > {e}; under c = 2: {d} > {c} (label alone: dropped)
    rows = [red.tokens[red.offsets[r] : red.offsets[r + 1]].tolist() for r in range(red.n_samples)]
    assert rows == [[0, 1, 0], [0, 1], [2, 3], [2, 3]]
    assert red.sample_index.tolist() == [0, 1, 3, 4]
    assert red.queries.tolist() == [4, 4, 4, 4]
    assert red.n_full == 6


def naive_finite(ds: Dataset) -> np.ndarray:
    """W_fin from the definitions of docs/theory.md, built independently: networkx SCCs, all-pairs
    span, BFGS."""
    E = ds.embeddings
    d = E.shape[1]
    graphs: dict[int, nx.DiGraph] = {}
    for seq, y in zip(ds.sequences, ds.labels, strict=True):
        g = graphs.setdefault(int(seq[-1]), nx.DiGraph())
        g.add_nodes_from(int(t) for t in seq)
        g.add_edges_from((int(y), int(t)) for t in seq if t != y)
    scc_of = {
        k: {t: frozenset(c) for c in nx.strongly_connected_components(g) for t in c}
        for k, g in graphs.items()
    }
    spanning = [
        np.outer(E[i] - E[j], E[k]).ravel()
        for k, sccs in scc_of.items()
        for comp in set(sccs.values())
        for i, j in itertools.combinations(sorted(comp), 2)
    ]
    if not spanning:
        return np.zeros((d, d))
    u, s, _ = np.linalg.svd(np.array(spanning).T, full_matrices=False)
    basis = u[:, s > 1e-10 * s[0]].T.reshape(-1, d, d)
    reduced = []
    for seq, y in zip(ds.sequences, ds.labels, strict=True):
        k = int(seq[-1])
        comp = scc_of[k][int(y)]
        kept = [int(t) for t in seq if int(t) in comp]
        if any(t != y for t in kept):
            reduced.append((kept, int(y), k))

    def loss(c):
        W = np.tensordot(c, basis, axes=1)
        total = 0.0
        for kept, y, k in reduced:
            u_ = np.array([E[t] @ W @ E[k] for t in kept])
            total += np.logaddexp.reduce(u_) - np.logaddexp.reduce(u_[np.array(kept) == y])
        return total / ds.n_samples

    c = minimize(loss, np.zeros(len(basis)), method="BFGS", options={"gtol": 1e-11}).x
    return np.tensordot(c, basis, axes=1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", [(6, 4, 6, 8), (10, 6, 8, 8), (16, 5, 5, 6)])
def test_matches_independent_formulation(shape, seed):
    ds = make_dataset(*shape, graph="cyclic", seed=seed)
    res = solve_finite(ds, build_priority_graphs(ds))
    expected = naive_finite(ds)
    np.testing.assert_allclose(
        res.W_fin, expected, atol=SOLVER_RTOL * max(1, np.abs(expected).max())
    )
    assert res.gradient_norm <= 1e-10


@pytest.mark.parametrize("seed", range(5))
def test_in_subspace_and_orthogonal_to_svm(seed):
    theory = solve(make_dataset(10, 6, 8, 8, graph="cyclic", seed=seed))
    fin = theory.finite
    np.testing.assert_allclose(fin.project(theory.W_fin), theory.W_fin, atol=1e-12)
    assert abs(np.sum(theory.W_fin * theory.W_svm)) <= 1e-9 * max(1.0, np.linalg.norm(theory.W_svm))
    basis = fin.basis
    np.testing.assert_allclose(
        np.einsum("aij,bij->ab", basis, basis), np.eye(fin.dimension), atol=1e-12
    )
    W = np.random.default_rng(seed).standard_normal((3,) + theory.W_svm.shape)
    np.testing.assert_allclose(project(W, basis), fin.project(W), atol=1e-12)


def _pre_merge_newton(objective, frame, tol=1e-10, max_iter=200):
    """solve_finite's Newton loop as written before it moved to attnmech.theory.newton
    (reference)."""
    phi = np.zeros(frame.shape[1])
    loss_value, grad, hess = objective.evaluate(frame @ phi)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007
        g_phi = frame.T @ grad
        grad_norm = float(np.linalg.norm(g_phi))
        if grad_norm <= tol:
            break
        h_phi = frame.T @ hess @ frame
        step = -np.linalg.lstsq(h_phi, g_phi, rcond=None)[0]
        slope = float(g_phi @ step)
        if slope >= 0:
            step, slope = -g_phi, -(grad_norm**2)
        alpha = 1.0
        tiny = -slope <= 1e-13 * (1.0 + abs(loss_value))
        while True:
            trial = phi + alpha * step
            trial_loss, trial_grad, trial_hess = objective.evaluate(frame @ trial)
            if tiny or trial_loss <= loss_value + 1e-4 * alpha * slope or alpha < 1e-12:
                break
            alpha *= 0.5
        phi, loss_value, grad, hess = trial, trial_loss, trial_grad, trial_hess
    return frame @ phi, iterations


@pytest.mark.parametrize(
    ("shape", "seed"), [((6, 4, 6, 8), 0), ((10, 6, 8, 8), 1), ((16, 5, 5, 6), 2)]
)
def test_newton_solver_is_the_pre_merge_loop_bit_for_bit(shape, seed):
    """solve_finite through attnmech.theory.newton gives the same coefficients and iteration count
    as the loop it replaced (regression for the merge of the two Newton loops)."""
    from attnmech.theory.finite import _generator_gram, _orthonormal_frame, _ReducedLoss
    from attnmech.theory.svm import svm_constraints

    ds = make_dataset(*shape, graph="cyclic", seed=seed)
    graphs = build_priority_graphs(ds)
    cons = svm_constraints(graphs)
    eq = ~cons.strict
    gq, gi, gj = cons.query[eq], cons.i[eq], cons.j[eq]
    frame = _orthonormal_frame(_generator_gram(ds.embeddings, gq, gi, gj))
    objective = _ReducedLoss(ds.embeddings, reduce_dataset(ds, graphs), gq, gi, gj)
    theta, iterations = _pre_merge_newton(objective, frame)
    res = solve_finite(ds, graphs)
    np.testing.assert_array_equal(res.coefficients, theta)
    assert res.solver_stats.num_iters == iterations
