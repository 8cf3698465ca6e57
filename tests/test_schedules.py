"""Learning-rate schedules, the momentum / Signum / Muon rules, Adam with eps = 0, rescaled norms
and the exponential loss."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from attnmech.data.dataset import Dataset
from attnmech.errors import CheckpointError, InvalidParameterError
from attnmech.layer.model import AttentionConfig, AttentionObjective, inputs_from_datasets
from attnmech.layer.optim import (
    OPTIMIZERS,
    Adam,
    Muon,
    NormalizedGradientDescent,
    PolyakStep,
    Signum,
    expected_svm_norm,
    newton_schulz,
    scaled_norm,
)
from attnmech.layer.schedules import parse_schedule
from attnmech.layer.training import TrainConfig, load_run, train


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return Dataset([[0, 1, 2], [1, 2], [0, 2]], [0, 1, 0], np.eye(3))


# ------------------------------------------------------------------ schedules
def test_schedule_values_at_given_steps():
    inv = parse_schedule("inverse-power:a=0.7,t0=2")
    assert inv.factor(0) == pytest.approx(2**-0.7, rel=1e-15)
    assert inv.factor(98) == pytest.approx(100**-0.7, rel=1e-15)
    assert parse_schedule("constant").factor(12345) == 1.0
    cos = parse_schedule("cosine:floor=0.1", num_steps=100)
    assert cos.spec() == "cosine:T=100,floor=0.1"
    assert [cos.factor(t) for t in (0, 50, 100, 200)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    step = parse_schedule("step:every=10,gamma=0.5")
    assert [step.factor(t) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    assert parse_schedule({"name": "inverse-power", "a": 1}).spec() == "inverse-power:a=1,t0=1"
    for bad, match in [
        ("warm", "unknown schedule 'warm'"),
        ("inverse-power:a=-1", "option a must be a finite number >= 0"),
        ("inverse-power:t0=0", "option t0 must be a finite number > 0"),
        ("step:gamma=2", "gamma must be a number in"),
        ("inverse-power:b=1", "has no option"),
        ("inverse-power:a", "is not key=value"),
    ]:
        with pytest.raises(InvalidParameterError, match=match):
            parse_schedule(bad)


def test_scheduled_training_uses_lr_times_factor(tiny, tmp_path):
    config = TrainConfig(
        optimizer="gd",
        learning_rate=0.5,
        num_steps=4,
        log_every=0,
        init="zero",
        schedule="inverse-power:a=1,t0=1",
    )
    run = train(tiny, config)
    # by hand: W_{t+1} = W_t - 0.5 / (t + 1) grad(W_t)
    inputs = inputs_from_datasets([tiny], dtype=torch.float64)
    objective = AttentionObjective(inputs, AttentionConfig())
    W = torch.zeros(1, 3, 3, dtype=torch.float64)
    for t in range(4):
        _, grad = objective(W)
        W = W - 0.5 / (t + 1) * grad
    np.testing.assert_allclose(run.W, W[0].numpy(), rtol=0, atol=1e-15)
    # saved with the run, refused on resume with another schedule
    path = run.save(tmp_path / "run.npz")
    assert load_run(path).config.schedule == "inverse-power:a=1,t0=1"
    ckpt = tmp_path / "ckpt.npz"
    long = replace(config, num_steps=20, checkpoint_every=5)
    train(tiny, long, checkpoint_path=ckpt)
    with pytest.raises(CheckpointError, match="belongs to another run"):
        train(tiny, replace(long, schedule="constant"), checkpoint_path=ckpt, resume=True)
    assert TrainConfig(schedule="cosine", num_steps=50).schedule == "cosine:T=50,floor=0"


# ------------------------------------------------------------------ rescaled norms
def test_rescaled_norm_of_tiny_gradients_is_not_zero():
    g = torch.tensor([[3e-163, 4e-163]], dtype=torch.float64)
    assert float(torch.linalg.vector_norm(g)) == 0.0  # the plain norm underflows
    assert float(scaled_norm(g, dims=(1,))[0]) == pytest.approx(5e-163, rel=1e-14)
    W = torch.zeros(1, 1, 2, dtype=torch.float64)
    # NGD steps a full lr along -g / ||g||, Polyak (L - L*) / ||g||^2 g, without underflow
    step = NormalizedGradientDescent(0.1).update(W, g.view(1, 1, 2), torch.zeros(1), {}, 0)
    np.testing.assert_allclose(step.numpy().ravel(), [-0.06, -0.08], rtol=1e-14)
    loss = torch.tensor([5e-163], dtype=torch.float64)
    step = PolyakStep(1.0).update(W, g.view(1, 1, 2), loss, {}, 0)  # size 5e-163 / 25e-326
    np.testing.assert_allclose(step.numpy().ravel(), [-0.6, -0.8], rtol=1e-13)


# ------------------------------------------------------------------ new rules
def test_muon_newton_schulz_is_close_to_the_polar_factor():
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    V, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    G = U @ np.diag([3.0, 2.5, 2.0, 1.6, 1.3, 1.0]) @ V.T  # condition number 3
    polar = U @ V.T
    cubic = newton_schulz(torch.tensor(G)[None], steps=30, iteration="cubic")[0].numpy()
    np.testing.assert_allclose(cubic, polar, atol=1e-10)
    quintic = newton_schulz(torch.tensor(G)[None], steps=5, iteration="quintic")[0].numpy()
    # the tuned iteration keeps U and V and maps the singular values into about [0.7, 1.2]
    inner = U.T @ quintic @ V
    np.testing.assert_allclose(inner - np.diag(np.diag(inner)), 0.0, atol=1e-12)
    assert np.all((np.diag(inner) > 0.6) & (np.diag(inner) < 1.25))
    # a Muon step without momentum is -lr NS(g); zero gradient: no step
    rule = Muon(0.1, beta=0.0, iteration="cubic", ns_steps=30)
    W = torch.zeros(1, 6, 6, dtype=torch.float64)
    out = rule.update(W, torch.tensor(G)[None], torch.zeros(1), rule.init(W), 0)
    np.testing.assert_allclose(out[0].numpy(), -0.1 * polar, atol=1e-10)
    zero = rule.update(W, torch.zeros_like(W), torch.zeros(1), rule.init(W), 0)
    assert torch.count_nonzero(zero) == 0


def test_signum_steps_along_the_sign_of_the_momentum():
    rule = Signum(0.1, beta=0.5)
    W = torch.zeros(1, 1, 3, dtype=torch.float64)
    state = rule.init(W)
    W = rule.update(
        W, torch.tensor([[[1.0, -2.0, 0.0]]], dtype=torch.float64), torch.zeros(1), state, 0
    )
    np.testing.assert_array_equal(W.numpy().ravel(), [-0.1, 0.1, 0.0])
    # momentum 0.5 * (0.5, -1, 0) + 0.5 * (-3, 0.5, 1e-300) = (-1.25, -0.25, 5e-301)
    W = rule.update(
        W, torch.tensor([[[-3.0, 0.5, 1e-300]]], dtype=torch.float64), torch.zeros(1), state, 1
    )
    np.testing.assert_allclose(W.numpy().ravel(), [0.0, 0.2, -0.1], atol=1e-15)
    assert expected_svm_norm("signum") == "linf" and expected_svm_norm("muon") == "spectral"
    assert expected_svm_norm("momentum") == "fro"
    assert {"momentum", "signum", "muon"} <= set(OPTIMIZERS)


def test_adam_with_eps_zero_is_scale_invariant_and_matches_torch():
    rng = np.random.default_rng(1)
    W0 = rng.normal(size=(1, 3, 3))
    grads = [rng.normal(size=(1, 3, 3)) for _ in range(8)]
    ref = torch.nn.Parameter(torch.tensor(W0))
    opt = torch.optim.Adam([ref], lr=0.05, eps=0.0)
    ours, tiny_run = torch.tensor(W0), torch.tensor(W0)
    rule, rule_tiny = Adam(0.05, eps=0.0), Adam(0.05, eps=0.0)
    state, state_tiny = rule.init(ours), rule_tiny.init(tiny_run)
    for t, g in enumerate(grads):
        ref.grad = torch.tensor(g)
        opt.step()
        ours = rule.update(ours, torch.tensor(g), torch.zeros(1), state, t)
        # the same gradients scaled by 1e-163: g^2 underflows, the update must not change
        tiny_run = rule_tiny.update(
            tiny_run, torch.tensor(g) * 1e-163, torch.zeros(1), state_tiny, t
        )
        np.testing.assert_allclose(ours.numpy(), ref.detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(tiny_run.numpy(), ours.numpy(), rtol=0, atol=1e-12)
    # an entry whose gradient is always 0 stays put (no 0/0)
    rule = Adam(0.1, eps=0.0)
    W = torch.zeros(1, 1, 2, dtype=torch.float64)
    state = rule.init(W)
    W = rule.update(W, torch.tensor([[[1.0, 0.0]]], dtype=torch.float64), torch.zeros(1), state, 0)
    np.testing.assert_allclose(W.numpy().ravel(), [-0.1, 0.0])
    with pytest.raises(InvalidParameterError, match="eps must be a non-negative number"):
        Adam(0.1, eps=-1.0)


@pytest.mark.parametrize(
    ("name", "options", "lr"),
    [("momentum", {}, 0.5), ("signum", {}, 0.2), ("muon", {}, 0.5), ("adam", {"eps": 0.0}, 0.05)],
)
def test_new_rules_train(tiny, name, options, lr):
    config = TrainConfig(
        optimizer=name,
        optimizer_options=options,
        learning_rate=lr,
        num_steps=200,
        log_every=50,
        seed=1,
        schedule="inverse-power:a=0.5,t0=1",
    )
    run = train(tiny, config)
    assert run.history["loss"][-1] < 0.5 * run.history["loss"][0]
    assert np.all(np.isfinite(run.W))


# ------------------------------------------------------------------ exponential loss
def test_exponential_loss_gradient_matches_finite_differences(tiny):
    inputs = inputs_from_datasets([tiny], dtype=torch.float64)
    objective = AttentionObjective(inputs, AttentionConfig(loss="exp"))
    W = torch.tensor(np.random.default_rng(2).normal(size=(1, 3, 3)))
    loss, grad = objective(W)
    # the value: mean over samples of 1 / p_y - 1
    log_objective = AttentionObjective(inputs, AttentionConfig(loss="log"))
    log_loss, _ = log_objective(W)
    assert float(loss[0]) > float(log_loss[0]) > 0  # e^x - 1 >= x
    h = 1e-6
    numeric = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            E = torch.zeros_like(W)
            E[0, i, j] = h
            numeric[i, j] = (float(objective(W + E)[0][0]) - float(objective(W - E)[0][0])) / (
                2 * h
            )
    np.testing.assert_allclose(grad[0].numpy(), numeric, rtol=1e-7, atol=1e-9)
    # one sample by hand: p_y is the attention mass on the label's tokens
    assert math.isfinite(float(loss[0]))


def test_sweep_spec_takes_a_schedule_axis():
    from attnmech.errors import FileFormatError
    from attnmech.studies.sweeps.grid import expand_cells
    from attnmech.studies.sweeps.spec import parse_sweep_spec

    spec = parse_sweep_spec(
        '[fixed]\noptimizer = "sign"\n[axes]\n'
        'schedule = ["constant", "inverse-power:t0=2,a=0.7"]\n'
    )
    cells = expand_cells(spec)
    assert [c.params["schedule"] for c in cells] == ["constant", "inverse-power:a=0.7,t0=2"]
    with pytest.raises(FileFormatError, match="unknown schedule 'warm'"):
        parse_sweep_spec('[axes]\nschedule = ["warm"]\n')
