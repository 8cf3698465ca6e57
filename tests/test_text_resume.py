"""Resuming an interrupted one-hot training gives the uninterrupted result, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attnmech.data.dataset import Dataset  # noqa: E402
from attnmech.errors import CheckpointError  # noqa: E402
from attnmech.layer.onehot import read_checkpoint, train_onehot  # noqa: E402
from attnmech.layer.training import TrainConfig  # noqa: E402
from attnmech.theory.solve import solve  # noqa: E402


class Interrupted(Exception):
    pass


def _dataset(vocab: int = 12) -> Dataset:
    rng = np.random.default_rng(3)
    stream = rng.integers(0, vocab, 900)
    seqs, labels = [], []
    for start in range(0, stream.size - 7, 7):
        window, label = stream[start : start + 6], stream[start + 6]
        if label in window:
            seqs.append(window.tolist())
            labels.append(int(label))
    return Dataset(seqs, labels, "onehot", vocab_size=vocab)


def _interrupt_at(step_to_stop: int):
    def callback(step, metrics):
        if step >= step_to_stop:
            raise Interrupted(step)
        return False

    return callback


@pytest.mark.parametrize("optimizer", ["split-ngd", "adam"])
def test_resumed_training_equals_uninterrupted(tmp_path, optimizer):
    ds = _dataset()
    theory = solve(ds)
    options = {"lower_bound": float(theory.finite.loss)} if optimizer == "split-ngd" else {}
    config = TrainConfig(
        optimizer=optimizer, optimizer_options=options, learning_rate=0.5, steps=90, log_every=5
    )
    whole = train_onehot(ds, config, theory=theory)
    ckpt = tmp_path / "train.ckpt.npz"
    kwargs = dict(theory=theory, checkpoint_path=ckpt, checkpoint_every=7, resume=True)
    with pytest.raises(Interrupted):
        train_onehot(ds, config, callback=_interrupt_at(47), **kwargs)
    # the callback runs at logged steps (multiples of 5): it raises at 50, after the checkpoint of 49
    assert read_checkpoint(ckpt).meta["step"] == 49
    with pytest.raises(Interrupted):  # interrupted again, after resuming
        train_onehot(ds, config, callback=_interrupt_at(66), **kwargs)
    assert read_checkpoint(ckpt).meta["step"] == 63  # raised at 70, before its checkpoint
    resumed = train_onehot(ds, config, **kwargs)
    np.testing.assert_array_equal(resumed.layer.keys, whole.layer.keys)
    np.testing.assert_array_equal(resumed.layer.values, whole.layer.values)
    assert resumed.layer.rest_sq == whole.layer.rest_sq
    assert sorted(resumed.history) == sorted(whole.history)
    for key, value in whole.history.items():
        np.testing.assert_array_equal(resumed.history[key], value, err_msg=key)
    assert resumed.num_steps == whole.num_steps == 90


def test_checkpoint_of_other_options_or_data_is_refused(tmp_path):
    ds = _dataset()
    config = TrainConfig(optimizer="ngd", learning_rate=0.5, steps=30, log_every=5)
    ckpt = tmp_path / "train.ckpt.npz"
    with pytest.raises(Interrupted):
        train_onehot(
            ds, config, checkpoint_path=ckpt, checkpoint_every=4, callback=_interrupt_at(20)
        )
    other = TrainConfig(optimizer="ngd", learning_rate=0.25, steps=30, log_every=5, seed=3)
    with pytest.raises(CheckpointError, match=r"learning_rate 0\.5 \(now 0\.25\), seed 0"):
        train_onehot(ds, other, checkpoint_path=ckpt, checkpoint_every=4, resume=True)
    with pytest.raises(CheckpointError, match="other data"):
        train_onehot(_dataset(13), config, checkpoint_path=ckpt, checkpoint_every=4, resume=True)
    # an edited checkpoint is refused by its checksum
    with np.load(ckpt) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["theta"] = arrays["theta"] + 1.0
    np.savez(ckpt, **arrays)
    with pytest.raises(CheckpointError, match="checksum"):
        train_onehot(ds, config, checkpoint_path=ckpt, checkpoint_every=4, resume=True)
