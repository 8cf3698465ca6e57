"""The automaton: retrieval, composition, finite-R limit, open cases, generation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnmech import (
    Automaton,
    Dataset,
    InvalidDatasetError,
    InvalidParameterError,
    make_dataset,
    solve,
)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cyclic=st.booleans())
def test_probabilities_are_distributions_on_present_tokens(seed, cyclic):
    ds = make_dataset(8, 5, 7, 8, graph="cyclic" if cyclic else "acyclic", seed=seed)
    auto = solve(ds).automaton()
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(0, 7, size=rng.integers(1, 9)) for _ in range(6)]
    probs = auto.predict_proba(sequences)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    for seq, p in zip(sequences, probs, strict=True):
        assert set(np.flatnonzero(p > 0)) <= set(seq.tolist())


@pytest.mark.parametrize("seed", range(5))
def test_training_sequences_retrieve_label_scc(seed):
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=seed)
    theory = solve(ds)
    auto = theory.automaton()
    g = theory.graphs
    for seq, y in zip(ds.sequences, ds.labels, strict=True):
        k = int(seq[-1])
        label_scc = g.scc_of(k, y)
        expected = sorted({int(t) for t in seq if g.scc_of(k, t) == label_scc})
        assert auto.retrieve(seq).tolist() == expected


def test_large_R_tends_to_the_automaton():
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=3)
    auto = solve(ds).automaton()
    exact = auto.predict_proba(ds)
    near = auto.predict_proba(ds, R=200.0)
    far = auto.predict_proba(ds, R=2.0)
    assert np.abs(near - exact).max() < 1e-12 < np.abs(far - exact).max()


def test_composition_uses_counts_and_finite_scores():
    ds = Dataset([[0, 1]] * 3 + [[2, 0, 1]], [0, 0, 1, 0], np.eye(3))
    auto = solve(ds).automaton()
    # W_fin gives 0 a log-odds of log 3 over 1 under query 1; a repeated 1 doubles its weight
    np.testing.assert_allclose(auto.next_token_probabilities([0, 1, 1])[:2], [0.6, 0.4], rtol=1e-10)
    np.testing.assert_allclose(
        auto.next_token_probabilities([2, 0, 1])[:2], [0.75, 0.25], rtol=1e-10
    )


def test_incomparable_top_sccs_are_kept_together():
    # under query 4: a > c and b > d, with no path between {a} and {b}
    ds = Dataset([[0, 2, 4], [1, 3, 4]], [0, 1], np.eye(5))
    auto = solve(ds).automaton()
    assert auto.retrieve([0, 1, 4]).tolist() == [0, 1]  # symmetric scores: a tie
    np.testing.assert_allclose(auto.next_token_probabilities([0, 1, 4])[:2], [0.5, 0.5])


def test_unseen_query_with_orthonormal_embeddings_keeps_everything():
    ds = Dataset([[0, 1, 2]], [0], np.eye(4))  # token 3 is never a last token
    auto = solve(ds).automaton()
    p = auto.next_token_probabilities([0, 1, 1, 3])
    np.testing.assert_allclose(p, [0.25, 0.5, 0.0, 0.25])


def test_generate_is_seeded_and_appends():
    ds = make_dataset(10, 6, 8, 8, graph="cyclic", seed=1)
    auto = solve(ds).automaton()
    prompt = ds.sequence(0)
    a = auto.generate(prompt, 12, seed=7)
    b = auto.generate(prompt, 12, seed=7)
    assert a.tolist() == b.tolist() and a.size == prompt.size + 12
    assert a[: prompt.size].tolist() == prompt.tolist()
    # every generated token was present in the context it was drawn from
    for t in range(prompt.size, a.size):
        assert a[t] in a[:t]
    greedy = auto.generate(prompt, 3, greedy=True)
    assert greedy[prompt.size] == np.argmax(auto.next_token_probabilities(prompt))


def test_bad_input_is_reported():
    auto = Automaton(np.zeros((2, 2)), np.zeros((2, 2)), np.eye(2))
    with pytest.raises(InvalidDatasetError, match="outside"):
        auto.predict_proba([[0, 5]])
    with pytest.raises(InvalidDatasetError, match="non-negative"):
        auto.predict_proba([[0, -3, 1]])
    with pytest.raises(InvalidDatasetError, match="empty"):
        auto.generate([], 3)
    # parameters (weights, embeddings, queries, lengths) are InvalidParameterError
    with pytest.raises(InvalidParameterError, match=r"shape \(2, 2\)"):
        Automaton(np.zeros((3, 3)), np.zeros((2, 2)), np.eye(2))
    with pytest.raises(InvalidParameterError, match="embeddings must have shape"):
        Automaton(np.zeros((2, 2)), np.zeros((2, 2)), np.ones(2))
    with pytest.raises(InvalidParameterError, match="length must be a non-negative integer"):
        auto.generate([0, 1], -1)
    with pytest.raises(InvalidParameterError, match="queries must be 1 token ids in"):
        auto.predict_proba([[0, 1]], queries=[7])
    assert not issubclass(InvalidParameterError, InvalidDatasetError)
