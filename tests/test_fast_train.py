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
