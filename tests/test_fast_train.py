"""The sweep's fast training path (gradient only, buffers reused) gives the numbers of
``train`` bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import attnmech
from attnmech.errors import InvalidParameterError
from attnmech.layer.training import TrainConfig, fast_final_supported, train, train_final


@pytest.mark.parametrize("optimizer", ["ngd", "gd"])
def test_train_final_equals_train(optimizer):
    # datasets of different n and T in one batch: padding and weight-0 fill are exercised
    datasets = [
        attnmech.make_dataset(6, 4, 6, 8, graph="cyclic", seed=0),
        attnmech.make_dataset(3, 5, 6, 8, seed=1),
        attnmech.make_dataset(5, 3, 6, 8, seed=2),
    ]
    init = np.random.default_rng(0).uniform(-0.35, 0.35, (3, 8, 8))
    config = TrainConfig(
        optimizer=optimizer, learning_rate=0.05, num_steps=300, log_every=0, init=init
    )
    assert fast_final_supported(datasets, config)
    run = train(datasets, config)
    W, grad_norm = train_final(datasets, config)
    assert np.abs(W - run.W).max() <= 1e-12 * max(1.0, np.abs(run.W).max())
    np.testing.assert_allclose(grad_norm, run.history["grad_norm"][-1], rtol=1e-12, atol=0)
    assert np.abs(run.W).max() > 0.5  # it trained


def test_train_final_refuses_other_settings():
    ds = attnmech.make_dataset(4, 3, 4, 4, seed=0)
    config = TrainConfig(optimizer="adam", num_steps=5)
    assert not fast_final_supported(ds, config)
    with pytest.raises(InvalidParameterError, match="train"):
        train_final(ds, config)


# ------------------------------------------------------------------ the score-space method
def _mixed_batch():
    datasets = [
        attnmech.make_dataset(6, 4, 6, 8, graph="cyclic", seed=0),
        attnmech.make_dataset(3, 5, 6, 8, seed=1),
        attnmech.make_dataset(5, 3, 6, 8, seed=2),
    ]
    init = np.random.default_rng(0).uniform(-0.35, 0.35, (3, 8, 8))
    return datasets, init


def _autograd_gradient(datasets, W):
    """The risk's gradient by autograd from a direct formulation: per sample, the softmax of
    the scores x_t^T W x_q over its positions and -log of the mass on the label's positions."""
    import torch

    W = torch.as_tensor(W).clone().requires_grad_(True)
    total = 0.0
    for b, ds in enumerate(datasets):
        E = torch.as_tensor(ds.embeddings)
        risk = 0.0
        for seq, label in zip(ds.sequences, ds.labels, strict=True):
            X = E[list(seq)]
            scores = X @ W[b] @ E[seq[-1]]
            p = torch.softmax(scores, 0)
            risk = risk - torch.log(p[[t == label for t in seq]].sum())
        total = total + risk / ds.n_samples
    total.backward()
    return W.grad.numpy()


def test_score_space_gradient_equals_autograd():
    import torch

    from attnmech.layer.model import inputs_from_datasets
    from attnmech.layer.scorespace import ScoreSpaceDescent

    datasets, init = _mixed_batch()
    W = np.random.default_rng(3).normal(0, 2.0, init.shape)  # well away from W = 0
    descent = ScoreSpaceDescent(
        inputs_from_datasets(datasets), torch.as_tensor(W), normalized=True
    )
    g = descent.score_gradient().reshape(3, -1)
    G = torch.einsum("bp,bpd,bpe->bde", g, descent.X, descent.Xq).numpy()
    reference = _autograd_gradient(datasets, W)
    assert np.abs(G - reference).max() <= 1e-12 * np.abs(reference).max()
    assert np.abs(reference).max() > 1e-3


@pytest.mark.parametrize(
    ("optimizer", "schedule"), [("ngd", "constant"), ("gd", "constant"), ("ngd", "cosine")]
)
def test_score_space_training_equals_train_over_short_runs(optimizer, schedule):
    datasets, init = _mixed_batch()
    config = TrainConfig(
        optimizer=optimizer,
        learning_rate=0.05,
        steps=100,  # short: by 200 steps train() itself moves 1e-2 when init moves 1e-15
        log_every=0,
        init=init,
        schedule=schedule,
    )
    run = train(datasets, config)
    W, grad_norm = train_final(datasets, config, method="scores")
    assert np.abs(W - run.W).max() <= 1e-12 * max(1.0, np.abs(run.W).max())
    np.testing.assert_allclose(grad_norm, run.history["grad_norm"][-1], rtol=1e-10, atol=0)
    assert np.abs(W - init).max() > 0.5  # it trained


def test_score_space_differs_over_long_runs_only_as_train_does_under_round_off():
    # normalised GD with a fixed step keeps moving in the finite part: the dynamics amplify
    # round-off. train() itself, from an initial W changed by one part in 1e15, moves about as
    # far as the score-space method does: that difference is round-off, not an error
    ds = attnmech.make_dataset(6, 4, 6, 8, graph="cyclic", seed=16)
    init = np.random.default_rng(0).uniform(-0.35, 0.35, (50, 8, 8))[16]
    config = TrainConfig(optimizer="ngd", learning_rate=0.01, steps=1000, log_every=0, init=init)
    run = train(ds, config)
    nudged = train(ds, TrainConfig(**{**config.__dict__, "init": init * (1 + 1e-15)}))
    W, _ = train_final(ds, config, method="scores")
    spread = np.abs(nudged.W - run.W).max()
    assert spread > 1e-8  # the sensitivity is real
    assert np.abs(W - run.W).max() <= 100 * spread


def test_score_space_falls_back_where_it_does_not_apply():
    # more positions per trial than MAX_POSITIONS: the scores method is not used (the numbers
    # of the exact path, bit for bit)
    from attnmech.layer.scorespace import MAX_POSITIONS

    ds = attnmech.make_dataset(20, 5, 6, 8, seed=0)
    assert ds.n_samples * ds.max_length > MAX_POSITIONS
    config = TrainConfig(optimizer="ngd", learning_rate=0.05, steps=20, log_every=0)
    W_exact, _ = train_final(ds, config)
    W_scores, _ = train_final(ds, config, method="scores")
    np.testing.assert_array_equal(W_scores, W_exact)
    with pytest.raises(InvalidParameterError, match="method"):
        train_final(ds, config, method="fast")
