"""Tests of the single-layer attention model: forward pass, losses, analytic gradients, Hessian."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnmech import Dataset, make_dataset
from attnmech.layer.model import (
    AttentionConfig,
    AttentionObjective,
    SingleLayerAttention,
    attention_scores,
    inputs_from_arrays,
    inputs_from_datasets,
    run_with_cache,
)

HEAD_LOSSES = [
    (head, loss) for head in ("iden", "gen") for loss in ("log", "squared", "correlation")
] + [("gen", "ce")]
GRAD_RTOL = 1e-10


def _reference_risk(
    W: torch.Tensor, sequences, queries, labels, E: torch.Tensor, head: str, loss: str
) -> torch.Tensor:
    """The model written naively, one sample at a time (autograd differentiates it)."""
    total = torch.zeros((), dtype=torch.float64)
    for seq, q, y in zip(sequences, queries, labels, strict=True):
        seq_t = torch.as_tensor(np.array(seq))
        X = E[seq_t]  # (T, d)
        s = torch.softmax(X @ W @ E[q], 0)  # score_t = x_t^T W x_q
        if head == "iden":
            p = s[seq_t == y].sum()
        else:
            p = torch.softmax(E @ (X.T @ s), 0)[y]
        if loss in ("log", "ce"):
            total = total - torch.log(p)
        elif loss == "squared":
            total = total + (1 - p) ** 2
        else:
            total = total - p
    return total / len(labels)


@pytest.fixture
def random_data() -> Dataset:
    rng = np.random.default_rng(3)
    sequences = [rng.integers(0, 5, size=rng.integers(1, 6)).tolist() for _ in range(7)]
    labels = [int(rng.choice(s)) for s in sequences]
    E = rng.standard_normal((5, 4))
    return Dataset(sequences, labels, E)


@pytest.mark.parametrize("head,loss", HEAD_LOSSES)
def test_risk_and_gradient_match_naive_autograd(random_data: Dataset, head: str, loss: str) -> None:
    config = AttentionConfig(head=head, loss=loss)
    objective = AttentionObjective(random_data, config)
    W = torch.as_tensor(np.random.default_rng(0).standard_normal((1, 4, 4)))
    risk, grad = objective(W)
    W_ref = W[0].clone().requires_grad_(True)
    E = torch.as_tensor(np.array(random_data.embeddings))
    ref = _reference_risk(
        W_ref, random_data.sequences, random_data.last_tokens, random_data.labels, E, head, loss
    )
    ref.backward()
    np.testing.assert_allclose(risk[0].item(), ref.item(), rtol=1e-12)
    np.testing.assert_allclose(grad[0].numpy(), W_ref.grad.numpy(), rtol=GRAD_RTOL, atol=1e-13)


@pytest.mark.parametrize("head,loss", HEAD_LOSSES)
def test_factorized_gradient_matches_autograd(random_data: Dataset, head: str, loss: str) -> None:
    config = AttentionConfig(head=head, loss=loss, parameterization="factorized", rank=3)
    objective = AttentionObjective(random_data, config)
    params = torch.as_tensor(np.random.default_rng(1).standard_normal((1, 2, 4, 3)))
    _, grad = objective(params)
    leaf = params.clone().requires_grad_(True)
    objective.risk(leaf).sum().backward()
    np.testing.assert_allclose(grad.numpy(), leaf.grad.numpy(), rtol=GRAD_RTOL, atol=1e-13)


@pytest.mark.parametrize("head,loss", [("iden", "log"), ("gen", "squared")])
def test_gradient_matches_finite_differences(random_data: Dataset, head: str, loss: str) -> None:
    objective = AttentionObjective(random_data, AttentionConfig(head=head, loss=loss))
    W = torch.as_tensor(np.random.default_rng(2).standard_normal((1, 4, 4)))
    _, grad = objective(W)
    eps = 1e-6
    numeric = np.zeros((4, 4))
    for a in range(4):
        for b in range(4):
            step = torch.zeros_like(W)
            step[0, a, b] = eps
            numeric[a, b] = (objective.risk(W + step) - objective.risk(W - step)).item() / (2 * eps)
    np.testing.assert_allclose(grad[0].numpy(), numeric, rtol=1e-6, atol=1e-9)


def test_log_loss_equals_spec_formula(ragged_with_repeats: Dataset) -> None:
    """loss_i = logsumexp_t u_{x_t} - log sum_{t: x_t = y} exp(u_{x_t}), u_j = e_j^T W e_k."""
    ds = ragged_with_repeats.with_embeddings(np.random.default_rng(4).standard_normal((5, 6)))
    W = np.random.default_rng(5).standard_normal((6, 6))
    _, cache = run_with_cache(W, ds)
    E = ds.embeddings
    expected = []
    for seq, y in zip(ds.sequences, ds.labels, strict=True):
        u = E @ W @ E[seq[-1]]  # score table of the query
        scores = u[seq]
        top = scores.max()
        all_terms = top + math.log(np.exp(scores - top).sum())
        label_terms = top + math.log(np.exp(scores[seq == y] - top).sum())
        expected.append(all_terms - label_terms)
    np.testing.assert_allclose(cache["loss"].numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(cache["risk"].item(), np.mean(expected), rtol=1e-12)


def test_log_loss_accurate_when_label_probability_is_near_one() -> None:
    # two tokens, label a; score gap 40 => loss = log(1 + e^-40) = 4.248e-18 (no cancellation)
    ds = Dataset([[0, 1]], [0], np.eye(2))
    W = np.zeros((2, 2))
    W[0, 1] = 40.0
    objective = AttentionObjective(ds)
    risk, grad = objective(torch.as_tensor(W[None]))
    np.testing.assert_allclose(risk.item(), math.log1p(math.exp(-40.0)), rtol=1e-14)
    # d loss / d W[0, 1] = -(1 - p) = -sigmoid(-40)
    np.testing.assert_allclose(grad[0, 0, 1].item(), -1.0 / (1.0 + math.exp(40.0)), rtol=1e-13)


def test_score_convention_matches_query_key_matrices() -> None:
    """score_t = q^T k_t with q = W_Q^T x_q, k = W_K^T x_t equals x_t^T W x_q for W = W_K W_Q^T."""
    rng = np.random.default_rng(6)
    d, r = 5, 3
    E = rng.standard_normal((6, d))
    W_Q, W_K = rng.standard_normal((d, r)), rng.standard_normal((d, r))
    ds = Dataset([[0, 3, 2, 5], [1, 4]], [3, 1], E)
    X, xq = E[[0, 3, 2, 5]], E[5]
    usual = (X @ W_K) @ (W_Q.T @ xq)  # keys times query
    W = W_K @ W_Q.T
    assert np.allclose(W, (W_Q @ W_K.T).T)
    _, cache = run_with_cache(W, ds)
    np.testing.assert_allclose(cache["scores"][0].numpy(), usual, rtol=1e-12)
    # the factorized model stores (W_K, W_Q) and builds the same W
    module = SingleLayerAttention(
        d, AttentionConfig(parameterization="factorized", rank=r), init=np.stack([W_K, W_Q])
    )
    np.testing.assert_allclose(module.W[0].detach().numpy(), W, rtol=1e-14)


def test_gen_head_probabilities_are_softmax_of_E_times_output(random_data: Dataset) -> None:
    W = np.random.default_rng(7).standard_normal((4, 4))
    probs, cache = run_with_cache(W, random_data, AttentionConfig(head="gen", loss="ce"))
    E = random_data.embeddings
    for i, seq in enumerate(random_data.sequences):
        s = cache["attention"][i, : len(seq)].numpy()
        z = E @ (E[seq].T @ s)
        expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(probs[i].numpy(), expected, rtol=1e-12)


def test_run_with_cache_shapes_and_normalisation(ragged_with_repeats: Dataset) -> None:
    W = np.random.default_rng(8).standard_normal((5, 5))
    probs, cache = run_with_cache(W, ragged_with_repeats)
    n, T = ragged_with_repeats.n_samples, ragged_with_repeats.max_length
    assert probs.shape == (n, 5) and cache["attention"].shape == (n, T)
    np.testing.assert_allclose(cache["attention"].sum(-1).numpy(), 1.0, rtol=1e-14)
    assert (cache["attention"][~torch.as_tensor(ragged_with_repeats.padded_mask())] == 0).all()
    np.testing.assert_allclose(probs.numpy(), cache["token_mass"].numpy(), rtol=1e-14)
    # the label's probability is its attention mass
    p_y = probs.numpy()[np.arange(n), ragged_with_repeats.labels]
    np.testing.assert_allclose(np.log(p_y), cache["log_prob_label"].numpy(), rtol=1e-12)


def test_explicit_queries_differ_from_last_token() -> None:
    rng = np.random.default_rng(9)
    E = rng.standard_normal((4, 3))
    W = rng.standard_normal((3, 3))
    tokens = np.array([[0, 1, 2], [2, 3, -1]])
    queries, labels = np.array([3, 0]), np.array([1, 2])
    inputs = inputs_from_arrays(tokens, queries, labels, E)
    scores = attention_scores(torch.as_tensor(W[None]), inputs)[0].numpy()
    np.testing.assert_allclose(scores[0], E[[0, 1, 2]] @ W @ E[3], rtol=1e-12)
    np.testing.assert_allclose(scores[1, :2], E[[2, 3]] @ W @ E[0], rtol=1e-12)
    assert scores[1, 2] == -np.inf


def test_batched_trials_equal_separate_trials(
    random_data: Dataset, ragged_with_repeats: Dataset
) -> None:
    """Different n, T and embeddings per trial in one batch (fillers weigh nothing)."""
    other = make_dataset(4, 3, 5, 4, seed=1)
    datasets = [random_data, other, random_data]
    W = torch.as_tensor(np.random.default_rng(10).standard_normal((3, 4, 4)))
    for head, loss in HEAD_LOSSES:
        config = AttentionConfig(head=head, loss=loss)
        risk, grad = AttentionObjective(datasets, config)(W)
        for b, ds in enumerate(datasets):
            r1, g1 = AttentionObjective(ds, config)(W[b : b + 1])
            np.testing.assert_allclose(risk[b].item(), r1.item(), rtol=1e-13)
            np.testing.assert_allclose(grad[b].numpy(), g1[0].numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", ["log", "squared", "correlation"])
def test_analytic_hessian_matches_autograd(random_data: Dataset, loss: str) -> None:
    objective = AttentionObjective(random_data, AttentionConfig(loss=loss))
    W = torch.as_tensor(np.random.default_rng(11).standard_normal((1, 4, 4)))
    hess = objective.hessian(W)[0].numpy()
    ref = torch.autograd.functional.hessian(
        lambda w: objective.risk(w.reshape(1, 4, 4))[0], W.reshape(-1)
    )
    np.testing.assert_allclose(hess, ref.numpy(), rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.05, 0.95))
def test_log_loss_is_convex_along_random_lines(seed: int, t: float) -> None:
    ds = make_dataset(5, 4, 6, 5, seed=seed % 7)
    objective = AttentionObjective(ds)
    rng = np.random.default_rng(seed)
    A, B = (torch.as_tensor(3 * rng.standard_normal((1, 5, 5))) for _ in range(2))
    mid = objective.risk(t * A + (1 - t) * B).item()
    chord = t * objective.risk(A).item() + (1 - t) * objective.risk(B).item()
    assert mid <= chord + 1e-12 * max(1.0, abs(chord))


def test_module_forward_is_differentiable(random_data: Dataset) -> None:
    module = SingleLayerAttention(
        4, num_trials=2, init=np.random.default_rng(12).standard_normal((2, 4, 4))
    )
    inputs = inputs_from_datasets([random_data, random_data])
    module(inputs).sum().backward()
    _, grad = AttentionObjective(inputs)(module.params.detach())
    np.testing.assert_allclose(module.params.grad.numpy(), grad.numpy(), rtol=GRAD_RTOL)


def test_config_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="head must be one of"):
        AttentionConfig(head="identity")
    with pytest.raises(ValueError, match="loss must be one of"):
        AttentionConfig(loss="hinge")
    assert AttentionConfig(dtype=torch.float32).dtype == "float32"
