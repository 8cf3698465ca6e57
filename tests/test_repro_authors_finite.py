"""The finite-part gap as the authors define it (studies/reproduction/authors_finite.py), against
computations written independently here: hand-built SCCs, a numpy gradient of the gen-head
cross-entropy, an explicit projection."""

from __future__ import annotations

import numpy as np
import pytest

from attnmech import Dataset, build_priority_graphs
from attnmech.studies.reproduction.authors_finite import (
    authors_finite_trajectory,
    authors_gap,
    authors_reduction,
)
from attnmech.theory.finite import project
from attnmech.theory.solve import solve

EPS = float(np.finfo(np.float64).eps)


def _embeddings(K: int = 4, d: int = 4, seed: int = 0) -> np.ndarray:
    E = np.random.default_rng(seed).normal(size=(K, d))
    return E / np.linalg.norm(E, axis=1, keepdims=True)


def _dataset() -> Dataset:
    # under query 3: 0 -> 1 (sample 0) and 1 -> 0 (sample 1): SCC {0, 1}; sample 2 (query 2,
    # label 2) is alone in its SCC, so it has no reduced sequence
    return Dataset([[0, 1, 3], [1, 0, 3], [0, 2]], [0, 1, 2], _embeddings())


def test_reduction_keeps_the_label_scc_and_spans_its_centred_tokens():
    ds = _dataset()
    red = authors_reduction(ds, build_priority_graphs(ds))
    assert red.sample_index.tolist() == [0, 1]
    assert red.sequences == [[0, 1], [1, 0]]
    assert red.labels.tolist() == [0, 1] and red.queries.tolist() == [3, 3]
    assert red.n_full == 3
    E = ds.embeddings
    direction = np.outer(E[0] - E[1], E[3])
    direction /= np.linalg.norm(direction)
    assert red.basis.shape == (1, 4, 4)
    assert abs(np.sum(red.basis[0] * direction)) == pytest.approx(1.0, abs=1e-12)


def test_a_label_missing_from_the_graphs_is_an_scc_of_its_own():
    ds = _dataset()
    # graphs in which token 0 never occurs under query 3 (as when GD left it out locally)
    other = Dataset([[1, 2, 3], [2, 1, 3]], [1, 2], ds.embeddings)
    red = authors_reduction(ds, build_priority_graphs(other))
    # sample 0's label 0 is no node: dropped; sample 1 (label 1, SCC {1, 2}) has no 2: dropped
    assert red.n_samples == 0 and red.basis.shape == (0, 4, 4)


def _numpy_gen_ce_steps(ds, sequences, labels, queries, steps, lr):
    """W_fin(t) by hand: gen head, cross-entropy, summed over the reduced samples / n, then
    W <- W - lr g / (||g|| + eps)."""
    E = ds.embeddings
    d = E.shape[1]
    W = np.zeros((d, d))
    out = {0: W.copy()}
    for step in range(1, steps + 1):
        grad = np.zeros((d, d))
        for seq, y, k in zip(sequences, labels, queries, strict=True):
            X, q = E[seq], E[k]
            u = X @ (W @ q)
            s = np.exp(u - u.max())
            s /= s.sum()
            logits = E @ (X.T @ s)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            g_out = E.T @ (p - np.eye(E.shape[0])[y])
            xg = X @ g_out
            du = s * (xg - s @ xg)
            grad += np.einsum("t,ta,b->ab", du, X, q)
        grad /= ds.n_samples
        W = W - lr * grad / (np.linalg.norm(grad) + EPS)
        out[step] = W.copy()
    return out


def test_trajectory_matches_a_numpy_gradient_and_an_empty_trial_stays_at_zero():
    ds = _dataset()
    red = authors_reduction(ds, build_priority_graphs(ds))
    # a second trial with no reduced data: the authors do not train it
    lonely = Dataset([[0, 2], [1, 3], [2, 0]], [2, 3, 0], ds.embeddings)
    empty = authors_reduction(lonely, build_priority_graphs(lonely))
    assert empty.n_samples == 0
    steps = np.array([0, 1, 3, 5])
    W_fin = authors_finite_trajectory(
        [ds, lonely], [red, empty], head="gen", loss="ce", learning_rate=0.1, steps=steps
    )
    expected = _numpy_gen_ce_steps(ds, red.sequences, red.labels, red.queries, 5, 0.1)
    assert W_fin.shape == (4, 2, 4, 4)
    for i, step in enumerate(steps):
        np.testing.assert_allclose(W_fin[i, 0], expected[int(step)], atol=1e-13)
    assert not W_fin[:, 1].any()
    # one normalised step of length lr; unprojected, the iterate still stays in S (a reduced
    # sequence holds only tokens of one SCC, so every gradient is a difference inside it)
    assert np.linalg.norm(W_fin[1, 0]) == pytest.approx(0.1, rel=1e-12)
    outside = W_fin[-1, 0] - project(W_fin[-1, 0], red.basis)
    assert np.linalg.norm(outside) < 1e-12 < np.linalg.norm(W_fin[-1, 0])
    gaps = authors_gap(np.ones((4, 4, 4)), W_fin[:, 1], empty.basis)
    assert gaps.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_gap_is_the_projection_onto_the_span_minus_w_fin():
    rng = np.random.default_rng(1)
    spans = rng.normal(size=(2, 3, 3))
    # Gram-Schmidt by hand, as the authors' notebook builds its basis
    first = spans[0] / np.linalg.norm(spans[0])
    second = spans[1] - np.sum(spans[1] * first) * first
    second /= np.linalg.norm(second)
    W, W_fin = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    proj = np.sum(W * first) * first + np.sum(W * second) * second
    basis = np.stack([first, second])
    assert authors_gap(W, W_fin, basis) == pytest.approx(np.linalg.norm(proj - W_fin), rel=1e-12)


def test_global_reduction_is_attnmechs_reduced_data_and_s_fin():
    rng = np.random.default_rng(5)
    E = _embeddings(6, 8, seed=2)
    checked = 0
    while checked < 5:
        seqs = [list(rng.permutation(6)[:4]) for _ in range(6)]
        labels = [int(rng.choice(s)) for s in seqs]
        ds = Dataset(seqs, labels, E)
        theory = solve(ds)
        if not theory.graphs.cyclic_queries.size:
            continue
        red = authors_reduction(ds, theory.graphs)
        ours = theory.finite.reduced
        assert red.sample_index.tolist() == ours.sample_index.tolist()
        assert red.labels.tolist() == ours.labels.tolist()
        basis = np.asarray(theory.finite.basis)
        assert red.basis.shape[0] == basis.shape[0]
        np.testing.assert_allclose(project(red.basis, basis), red.basis, atol=1e-12)
        checked += 1


def test_explain_counts_the_trials_without_reduced_data():
    from types import SimpleNamespace

    from attnmech.studies.reproduction.authors_finite import AuthorsFiniteGap

    metric = SimpleNamespace(
        measure=SimpleNamespace(curve="fin_gap_local_authors"), values=np.array([0.0, 0.3, 0.1])
    )
    result = SimpleNamespace(extra={"authors_fin_local_empty": [True, False, False]})
    text = AuthorsFiniteGap().explain(result, metric)
    assert "In 1 of 3 of our trials" in text and "the 2 other trials average 0.2" in text
    other = SimpleNamespace(measure=SimpleNamespace(curve="corr_svm"), values=np.zeros(3))
    assert AuthorsFiniteGap().explain(result, other) == ""
