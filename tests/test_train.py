"""Tests of training: step rules, the shared loop, batching, checkpoints, W_fin(t), the path."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from attnmech import Dataset, make_dataset
from attnmech.errors import CheckpointError
from attnmech.finite_path import run_finite_trajectory
from attnmech.model import AttentionConfig, AttentionObjective, run_with_cache
from attnmech.optim import NormalizedGradientDescent, gradient_descent
from attnmech.regpath import regularization_path
from attnmech.training import TrainConfig, load_run, train

LOG2 = math.log(2.0)


class _Stop(Exception):
    pass


@dataclass
class _Reduced:
    """Stand-in for ``theory.finite.reduced`` built from a dataset (tests only)."""

    ds: Dataset
    n_full: int

    @property
    def n_samples(self) -> int:
        return self.ds.n_samples

    @property
    def queries(self) -> np.ndarray:
        return self.ds.last_tokens

    @property
    def labels(self) -> np.ndarray:
        return self.ds.labels

    def padded(self, fill: int = -1) -> np.ndarray:
        return self.ds.padded(fill)


def _cycle_theory(ds: Dataset) -> SimpleNamespace:
    """Theory stand-in for the 2-token cycles: S_fin = span{(e_a - e_b) e_b^T}."""
    basis = np.zeros((1, 2, 2))
    basis[0, 0, 1], basis[0, 1, 1] = 1 / math.sqrt(2), -1 / math.sqrt(2)
    return SimpleNamespace(finite=SimpleNamespace(basis=basis, reduced=_Reduced(ds, ds.n_samples)))


def test_ngd_step_has_norm_learning_rate() -> None:
    ds = make_dataset(6, 4, 6, 8, seed=0)
    objective = AttentionObjective([ds, ds, ds])
    W = torch.as_tensor(
        np.random.default_rng(0).uniform(-1, 1, (3, 8, 8)) * np.array([1, 10, 0.01])[:, None, None]
    )
    loss, grad = objective(W)
    new = NormalizedGradientDescent(0.037).update(W, grad, loss, {}, 0)
    np.testing.assert_allclose(
        torch.linalg.vector_norm((new - W).flatten(1), dim=1).numpy(), 0.037, rtol=1e-13
    )


def test_ngd_takes_no_step_on_a_zero_gradient() -> None:
    W = torch.zeros(2, 3, 3, dtype=torch.float64)
    new = NormalizedGradientDescent(0.1).update(W, torch.zeros_like(W), None, {}, 0)
    assert torch.equal(new, W)


def test_gd_is_w_minus_lr_grad() -> None:
    ds = make_dataset(5, 3, 4, 4, seed=1)
    init = np.random.default_rng(1).standard_normal((4, 4))
    run = train(ds, TrainConfig(optimizer="gd", learning_rate=0.3, num_steps=1, init=init))
    _, grad = AttentionObjective(ds)(torch.as_tensor(init[None]))
    np.testing.assert_allclose(run.W, init - 0.3 * grad[0].numpy(), rtol=1e-14)


def test_shared_loop_observer_sees_every_step_and_can_stop() -> None:
    objective = AttentionObjective(make_dataset(4, 3, 4, 4, seed=2))
    seen: list[int] = []

    def observer(step, params, loss, grad, state):
        seen.append(step)
        return step == 6

    gradient_descent(
        objective,
        torch.zeros(1, 4, 4, dtype=torch.float64),
        NormalizedGradientDescent(0.1),
        20,
        start_step=3,
        observer=observer,
    )
    assert seen == [3, 4, 5, 6]


def test_unbalanced_cycle_finite_part_reaches_log2(unbalanced_cycle: Dataset) -> None:
    """SPEC 5: [a, b] three times, labels a, a, b: (e_a - e_b)^T Proj_Sfin(W) e_b -> log 2."""
    basis = _cycle_theory(unbalanced_cycle).finite.basis[0]
    for config in [
        TrainConfig(optimizer="gd", learning_rate=0.5, num_steps=2000, init="uniform", seed=3),
        TrainConfig(optimizer="ngd", learning_rate=0.01, num_steps=2000, init="uniform", seed=3),
    ]:
        W = train(unbalanced_cycle, config).W
        projected = np.sum(W * basis) * basis
        value = projected[0, 1] - projected[1, 1]
        np.testing.assert_allclose(value, LOG2, atol=0.01 if config.optimizer == "ngd" else 1e-9)


def test_acyclic_attention_on_label_goes_to_one() -> None:
    """SPEC 9: NGD lr 0.01 for 4000 steps on an acyclic dataset selects the label."""
    datasets = [make_dataset(4, 6, 8, 8, graph="acyclic", seed=s) for s in range(3)]
    run = train(datasets, TrainConfig(num_steps=4000, log_every=1000, seed=0))
    for b, ds in enumerate(datasets):
        probs, cache = run_with_cache(run.W[b], ds)
        p_label = probs.numpy()[np.arange(ds.n_samples), ds.labels]
        assert np.all(1.0 - p_label < 1e-4)
    assert np.all(run.history["loss"][-1] < 1e-4)
    assert np.all(np.diff(run.history["loss"], axis=0) < 0)


def test_batched_trials_equal_separate_runs() -> None:
    """Same numbers up to rounding. NGD gets a shorter horizon: once the gradient is small, a
    fixed-length normalised step chatters and amplifies rounding differences (chaotically)."""
    datasets = [make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(3)]
    for optimizer, steps in (("ngd", 150), ("gd", 300), ("adam", 300)):
        config = TrainConfig(
            optimizer=optimizer, learning_rate=0.05, num_steps=steps, log_every=50, seed=4
        )
        batched = train(datasets, config)
        inits = np.random.default_rng(4).uniform(-1 / math.sqrt(8), 1 / math.sqrt(8), (3, 8, 8))
        for b, ds in enumerate(datasets):
            single = train(ds, replace(config, init=inits[b]))
            np.testing.assert_allclose(batched.W[b], single.W, rtol=1e-11, atol=1e-12)
            np.testing.assert_allclose(
                batched.history["loss"][:, b], single.history["loss"], rtol=1e-11
            )


def test_num_trials_repeats_each_dataset_with_different_inits() -> None:
    ds = make_dataset(6, 4, 6, 8, seed=5)
    run = train([ds, ds], TrainConfig(num_steps=3, num_trials=2))
    assert run.W.shape == (4, 8, 8) and run.history["loss"].shape == (2, 4)
    assert not np.allclose(run.W[0], run.W[1])


@pytest.mark.parametrize("optimizer", ["ngd", "adam"])
def test_resume_equals_uninterrupted(tmp_path, optimizer: str) -> None:
    datasets = [make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(2)]
    config = TrainConfig(
        optimizer=optimizer, num_steps=500, log_every=25, checkpoint_every=100, seed=6
    )
    full = train(datasets, config)
    path = tmp_path / "ckpt.npz"

    def crash(step, metrics):
        if step == 250:
            raise _Stop

    with pytest.raises(_Stop):
        train(datasets, config, checkpoint_path=path, callback=crash)
    assert path.exists()
    resumed = train(datasets, config, checkpoint_path=path, resume=True)
    np.testing.assert_array_equal(resumed.W, full.W)  # bit for bit
    for key in full.history:
        np.testing.assert_array_equal(resumed.history[key], full.history[key])


def test_resume_accepts_other_checkpoint_period(tmp_path) -> None:
    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=3)
    config = TrainConfig(num_steps=300, log_every=50, checkpoint_every=100)
    full = train(ds, config)
    path = tmp_path / "ckpt.npz"

    def crash(step, metrics):
        if step == 150:
            raise _Stop

    with pytest.raises(_Stop):
        train(ds, config, checkpoint_path=path, callback=crash)
    other = TrainConfig(num_steps=300, log_every=50, checkpoint_every=30, num_threads=1)
    resumed = train(ds, other, checkpoint_path=path, resume=True)
    np.testing.assert_array_equal(resumed.W, full.W)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path) -> None:
    ds = make_dataset(6, 4, 6, 8, seed=7)
    path = tmp_path / "ckpt.npz"
    train(ds, TrainConfig(num_steps=20, checkpoint_every=10), checkpoint_path=path)
    with pytest.raises(CheckpointError, match="another run"):
        train(
            ds,
            TrainConfig(num_steps=20, checkpoint_every=10, learning_rate=0.5),
            checkpoint_path=path,
            resume=True,
        )


def test_callback_can_stop_early() -> None:
    ds = make_dataset(6, 4, 6, 8, seed=8)
    run = train(ds, TrainConfig(num_steps=100, log_every=10), callback=lambda step, m: step >= 30)
    assert run.num_steps == 30 and run.history["step"][-1] == 30


def test_history_summary_and_save_round_trip(tmp_path) -> None:
    ds = make_dataset(6, 4, 6, 8, seed=9)
    run = train(ds, TrainConfig(num_steps=35, log_every=10), progress=True)
    np.testing.assert_array_equal(run.history["step"], [0, 10, 20, 30, 35])
    assert run.W.shape == (8, 8) and not run.W.flags.writeable
    summary = run.summary()
    json.dumps(summary)  # JSON-friendly
    assert summary["config"]["optimizer"] == "ngd" and "torch" in summary["versions"]
    np.testing.assert_allclose(summary["final"]["loss"]["mean"], run.history["loss"][-1])
    back = load_run(run.save(tmp_path / "run.npz"))
    np.testing.assert_array_equal(back.W, run.W)
    np.testing.assert_array_equal(back.history["norm"], run.history["norm"])
    assert back.config.to_dict() == run.config.to_dict()


def test_factorized_training_decreases_loss() -> None:
    ds = make_dataset(6, 4, 6, 8, seed=10)
    config = TrainConfig(
        model=AttentionConfig(parameterization="factorized", rank=4), num_steps=300, log_every=100
    )
    run = train(ds, config)
    assert run.params.shape == (2, 8, 4)
    np.testing.assert_allclose(run.W, run.params[0] @ run.params[1].T, rtol=1e-14)
    assert run.history["loss"][-1] < run.history["loss"][0]


def test_bad_config_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=-1)
    with pytest.raises(ValueError, match="init array"):
        train(make_dataset(3, 2, 3, 3, seed=0), TrainConfig(init=np.zeros((2, 2)), num_steps=1))


def test_finite_trajectory_reaches_log2_and_stays_in_s_fin(
    unbalanced_cycle: Dataset, balanced_cycle: Dataset
) -> None:
    theory = _cycle_theory(unbalanced_cycle)
    config = TrainConfig(optimizer="gd", learning_rate=0.5, num_steps=2000, log_every=500)
    traj = run_finite_trajectory(unbalanced_cycle, theory, config)
    np.testing.assert_array_equal(traj.steps, [0, 500, 1000, 1500, 2000])
    W_end = traj.W[-1, 0]
    np.testing.assert_allclose(W_end[0, 1] - W_end[1, 1], LOG2, rtol=1e-10)
    basis = theory.finite.basis[0]
    np.testing.assert_allclose(W_end, np.sum(W_end * basis) * basis, atol=1e-15)  # inside S_fin
    # balanced cycle: the gradient at zero is 0, NGD takes no step, W_fin(t) = 0 (no NaN)
    balanced = run_finite_trajectory(
        balanced_cycle, _cycle_theory(balanced_cycle), TrainConfig(num_steps=50)
    )
    assert np.all(balanced.W == 0)


def test_regularization_path_unbalanced_cycle_reaches_w_fin(unbalanced_cycle: Dataset) -> None:
    path = regularization_path(unbalanced_cycle, [0.1, 0.3, 0.6, 1.0, 2.0])
    assert path.converged.all() and (path.kkt_residual <= path.tol).all()
    norms = np.linalg.norm(path.W, axis=(1, 2))
    # ||W_fin|| = log 2 / sqrt(2) ~ 0.49: the ball binds below it, not above
    np.testing.assert_allclose(norms[:2], [0.1, 0.3], rtol=1e-8)
    assert (path.multiplier[:2] > 0).all() and (path.multiplier[2:] == 0).all()
    for W in path.W[2:]:
        np.testing.assert_allclose(W[0, 1] - W[1, 1], LOG2, rtol=1e-7)
    assert np.all(np.diff(path.loss) <= 1e-12)


def test_regularization_path_direction_tends_to_w_svm(acyclic_chain: Dataset) -> None:
    """Chain a > b > c > d under query d: W_svm e_d has scores (1.5, 0.5, -0.5, -1.5)."""
    W_svm = np.zeros((4, 4))
    W_svm[:, 3] = [1.5, 0.5, -0.5, -1.5]
    path = regularization_path(acyclic_chain, [1.0, 4.0, 16.0, 32.0])
    assert path.converged.all()
    corr = np.array(
        [np.sum(W * W_svm) / (np.linalg.norm(W) * np.linalg.norm(W_svm)) for W in path.W]
    )
    assert np.all(np.diff(corr) > 0) and corr[-1] > 0.99
    np.testing.assert_allclose(np.linalg.norm(path.W, axis=(1, 2)), path.radii, rtol=1e-8)


def test_regularization_path_matches_the_theory_on_paper_data() -> None:
    """SPEC 6: W(R)/R -> W_svm/||W_svm|| and Proj_Sfin W(R) -> W_fin as R grows."""
    from attnmech import solve
    from attnmech.metrics import correlation, project

    for seed in (0, 1):
        ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=seed)
        theory = solve(ds)
        path = regularization_path(ds, np.geomspace(1.0, 40.0, 8))
        assert path.converged.all()
        corr = correlation(path.W, theory.W_svm)
        assert np.all(np.diff(corr) > 0) and corr[-1] > 0.99
        gap = np.linalg.norm(project(path.W[-1], theory.finite.basis) - theory.W_fin)
        assert gap < 1e-2
