"""Step rules of other geometries (attnmech.layer.optim): hand-computed updates, and on a
separable logistic regression the direction each rule converges to (its geometry's max margin)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnmech.errors import InvalidParameterError
from attnmech.layer.optim import (
    OPTIMIZERS,
    L1SteepestDescent,
    MirrorDescent,
    NormalizedMirrorDescent,
    SignDescent,
    SpectralDescent,
    expected_svm_norm,
)

torch = pytest.importorskip("torch")


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def step(rule, params, grad):
    params, grad = t(params), t(grad)
    loss = torch.zeros(params.shape[0], dtype=torch.float64)
    return rule.update(params, grad, loss, rule.init(params), 0).numpy()


W0 = [[[1.0, -2.0], [0.0, 0.5]], [[0.0, 0.0], [3.0, 1.0]]]  # two trials, (2, 2, 2)
G0 = [[[0.5, 1.0], [-2.0, 0.0]], [[0.1, -0.1], [0.0, 0.2]]]


def test_registry_and_options():
    geometries = {"mirror", "normalized-mirror", "sign", "l1-steepest", "spectral"}
    momentum = {"momentum", "signum", "muon"}
    expected = {"gd", "ngd", "adam", "polyak", "polyak-capped", "split-ngd"} | geometries | momentum
    assert set(OPTIMIZERS) == expected  # one registry
    for name in geometries:
        rule = OPTIMIZERS[name]
        assert rule.name == name and rule(0.1).init(t(W0)) == {}
    with pytest.raises(InvalidParameterError, match="no option"):
        SignDescent(0.1, p=3)
    with pytest.raises(InvalidParameterError, match="1 < p < inf"):
        MirrorDescent(0.1, p=1)
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        SpectralDescent(-1.0)
    with pytest.raises(InvalidParameterError, match="shape"):
        SignDescent(0.1).update(t([1.0, 2.0]), t([1.0, 2.0]), t([0.0]), {}, 0)
    assert expected_svm_norm(MirrorDescent(0.1)) == "fro"
    assert expected_svm_norm(NormalizedMirrorDescent(0.1, p=1.5)) == "lp:1.5"
    assert expected_svm_norm(L1SteepestDescent(0.1)) == "l1"
    assert [expected_svm_norm(n) for n in ("gd", "adam", "spectral")] == ["fro", "linf", "spectral"]
    assert expected_svm_norm("gd", "factorized") == "nuclear"
    with pytest.raises(InvalidParameterError, match="no implicit-bias prediction"):
        expected_svm_norm("sign", "factorized")
    with pytest.raises(InvalidParameterError, match="normalized must be true or false"):
        SignDescent(0.1, normalized="yes")


def test_mirror_descent_by_hand():
    W, G = np.array(W0), np.array(G0)
    np.testing.assert_allclose(step(MirrorDescent(0.3), W0, G0), W - 0.3 * G, rtol=0, atol=0)
    # p = 3: dual z = sign(W) W^2, z - lr g, back with sign(z) sqrt|z|
    z = np.sign(W) * W**2 - 0.3 * G
    expected = np.sign(z) * np.sqrt(np.abs(z))
    np.testing.assert_allclose(step(MirrorDescent(0.3, p=3), W0, G0), expected, rtol=1e-15)
    # normalised: g divided by its per-trial l_{3/2} norm
    q = 1.5
    norms = (np.abs(G) ** q).sum(axis=(1, 2)) ** (1 / q)
    z = np.sign(W) * W**2 - 0.3 * G / norms[:, None, None]
    expected = np.sign(z) * np.sqrt(np.abs(z))
    np.testing.assert_allclose(step(NormalizedMirrorDescent(0.3, p=3), W0, G0), expected, 1e-14)
    # p = 2 normalised is normalised gradient descent
    ngd = W - 0.3 * G / np.linalg.norm(G, axis=(1, 2))[:, None, None]
    np.testing.assert_allclose(step(NormalizedMirrorDescent(0.3), W0, G0), ngd, rtol=1e-15)


def test_sign_descent_by_hand():
    W, G = np.array(W0), np.array(G0)
    np.testing.assert_allclose(step(SignDescent(0.1), W0, G0), W - 0.1 * np.sign(G), atol=0)
    scaled = W - 0.1 * np.abs(G).sum(axis=(1, 2))[:, None, None] * np.sign(G)
    np.testing.assert_allclose(step(SignDescent(0.1, normalized=False), W0, G0), scaled, 1e-15)


def test_l1_steepest_by_hand():
    expected = np.array(W0)
    expected[0, 1, 0] += 0.1  # trial 0: |g| largest at (1, 0), g < 0
    expected[1, 1, 1] -= 0.1  # trial 1: largest at (1, 1)
    np.testing.assert_allclose(step(L1SteepestDescent(0.1), W0, G0), expected, rtol=0, atol=0)
    unnormalised = np.array(W0)
    unnormalised[0, 1, 0] += 0.1 * 2.0
    unnormalised[1, 1, 1] -= 0.1 * 0.2
    got = step(L1SteepestDescent(0.1, normalized=False), W0, G0)
    np.testing.assert_allclose(got, unnormalised, rtol=1e-15)
    # exact ties share the step; a zero gradient does not move
    tie = step(L1SteepestDescent(0.1), [[[0.0, 0.0]] * 2], [[[1.0, -1.0], [0.5, 0.0]]])
    np.testing.assert_allclose(tie, [[[-0.05, 0.05], [0.0, 0.0]]], rtol=0, atol=0)
    np.testing.assert_array_equal(step(L1SteepestDescent(0.1), W0, np.zeros((2, 2, 2))), W0)


def test_spectral_descent_by_hand():
    # trial 0: g = diag(3, -1) = U S V^T with U V^T = diag(1, -1); trial 1: rank one g = u v^T
    G = np.array([[[3.0, 0.0], [0.0, -1.0]], [[2.0, 2.0], [0.0, 0.0]]])
    W = np.zeros((2, 2, 2))
    expected = -0.1 * np.array([[[1.0, 0.0], [0.0, -1.0]], [[1.0, 1.0], [0.0, 0.0]]])
    expected[1] /= math.sqrt(2)
    np.testing.assert_allclose(step(SpectralDescent(0.1), W, G), expected, atol=1e-15)
    nuclear = np.array([4.0, 2.0 * math.sqrt(2)])
    got = step(SpectralDescent(0.1, normalized=False), W, G)
    np.testing.assert_allclose(got, expected * nuclear[:, None, None], atol=1e-14)
    # any gradient: the step is an orthogonal U V^T (all singular values 1) per matrix
    rng = np.random.default_rng(0)
    g = rng.standard_normal((3, 4, 4))
    move = -step(SpectralDescent(1.0), np.zeros_like(g), g)
    np.testing.assert_allclose(np.linalg.svd(move, compute_uv=False), 1.0, atol=1e-12)
    # and <g, U V^T> = ||g||_* (steepest direction of the spectral norm)
    np.testing.assert_allclose(
        (g * move).sum(axis=(1, 2)), np.linalg.svd(g, compute_uv=False).sum(axis=1), rtol=1e-12
    )


def test_factorised_parameters_per_factor_and_per_trial():
    rng = np.random.default_rng(1)
    params = rng.standard_normal((2, 2, 3, 2))  # (B, 2, d, r): K and Q per trial
    grad = rng.standard_normal((2, 2, 3, 2))
    got = step(SpectralDescent(0.1), params, grad)
    for b in range(2):
        for f in range(2):
            U, _, Vh = np.linalg.svd(grad[b, f], full_matrices=False)
            np.testing.assert_allclose(got[b, f], params[b, f] - 0.1 * U @ Vh, atol=1e-14)
    got = step(SpectralDescent(0.1, normalized=False), params, grad)
    for b in range(2):
        scale = sum(np.linalg.svd(grad[b, f], compute_uv=False).sum() for f in range(2))
        for f in range(2):
            U, _, Vh = np.linalg.svd(grad[b, f], full_matrices=False)
            np.testing.assert_allclose(got[b, f], params[b, f] - 0.1 * scale * U @ Vh, atol=1e-13)
    # l1 steepest: one coordinate per trial over both factors
    moved = step(L1SteepestDescent(0.1), params, grad) - params
    assert ((moved != 0).reshape(2, -1).sum(axis=1) == 1).all()
    # normalised mirror descent: the norm is per trial, so scaling one trial's gradient changes
    # nothing in either trial
    scaled = grad.copy()
    scaled[0] *= 100.0
    rule = NormalizedMirrorDescent(0.1, p=3)
    np.testing.assert_allclose(step(rule, params, scaled), step(rule, params, grad), rtol=1e-13)


# ------------------------------------------------------------- implicit bias on a separable toy
N_SAMPLES, DIM, TRIALS, STEPS = 12, 3, 3, 1500


def separable(seed: int) -> np.ndarray:
    """Rows y_i X_i (X_i in R^{3x3}) of a linearly separable logistic regression."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_SAMPLES, DIM, DIM))
    y = np.sign(np.einsum("nij,ij->n", X, rng.standard_normal((DIM, DIM))))
    return X * y[:, None, None]


def max_margin(Z: np.ndarray, name: str) -> np.ndarray:
    """argmin N(W) s.t. <Z_i, W> >= 1, with cvxpy (independent of attnmech.theory.norms)."""
    cp = pytest.importorskip("cvxpy")
    W = cp.Variable((DIM, DIM))
    objective = {
        "fro": cp.norm(W, "fro"),
        "l1": cp.sum(cp.abs(W)),
        "linf": cp.max(cp.abs(W)),
        "spectral": cp.sigma_max(W),
        "lp:3": cp.pnorm(cp.vec(W, order="C"), 3),
    }[name]
    rows = Z.reshape(len(Z), -1)
    cp.Problem(cp.Minimize(objective), [rows @ cp.vec(W, order="C") >= 1]).solve(solver=cp.CLARABEL)
    return np.asarray(W.value)


def run_logistic(rule, Z: np.ndarray) -> np.ndarray:
    """``STEPS`` steps of ``rule`` on the mean logistic loss, all trials in one batch."""
    rows = torch.tensor(Z)  # (B, n, d, d)
    W = torch.zeros((Z.shape[0], DIM, DIM), dtype=torch.float64)
    state = rule.init(W)
    for k in range(STEPS):
        margins = torch.einsum("bnij,bij->bn", rows, W)
        loss = torch.nn.functional.softplus(-margins).mean(dim=1)
        grad = -torch.einsum("bn,bnij->bij", torch.sigmoid(-margins), rows) / Z.shape[1]
        W = rule.update(W, grad, loss, state, k)
    return W.numpy()


def corr(A: np.ndarray, B: np.ndarray) -> float:
    return float(np.sum(A * B) / np.linalg.norm(A) / np.linalg.norm(B))


# rule, its geometry's norm, smallest corr measured over the 3 trials (1500 steps): threshold
# set a little below it; and the least advantage of the mean over the Frobenius SVM's
BIAS_CASES = [
    (lambda: NormalizedMirrorDescent(0.1, p=3), "lp:3", 0.99, 0.004),  # measured 0.9947, +0.009
    (lambda: SignDescent(0.01), "linf", 0.995, 0.05),  # measured 0.9974, +0.082
    (lambda: L1SteepestDescent(0.05), "l1", 0.99, 0.02),  # measured 0.9951, +0.047
    (lambda: SpectralDescent(0.02), "spectral", 0.995, 0.05),  # measured 0.9980, +0.088
    (lambda: MirrorDescent(0.5, p=3), "lp:3", 0.95, None),  # measured 0.9660 (unnormalised)
]


@pytest.fixture(scope="module")
def toy():
    Z = np.stack([separable(seed) for seed in range(TRIALS)])
    return Z, {}


@pytest.mark.parametrize("case", range(len(BIAS_CASES)))
def test_rule_follows_its_geometrys_max_margin_direction(toy, case):
    make, name, threshold, advantage = BIAS_CASES[case]
    Z, cache = toy
    for norm in (name, "fro"):
        if norm not in cache:
            cache[norm] = [max_margin(Z[b], norm) for b in range(TRIALS)]
    W = run_logistic(make(), Z)
    own = [corr(W[b], cache[name][b]) for b in range(TRIALS)]
    fro = [corr(W[b], cache["fro"][b]) for b in range(TRIALS)]
    assert min(own) > threshold, own
    if advantage is not None:
        assert np.mean(own) > np.mean(fro) + advantage, (own, fro)


def test_adam_without_moment_averaging_is_sign_descent():
    """Adam with betas (0, 0) steps by g / |g| = sign(g): the link behind Adam's predicted
    (max-norm) geometry; the bias table measures how far betas (0.9, 0.999) move it from there."""
    from attnmech.layer.optim import Adam

    rng = np.random.default_rng(3)
    params, grad = rng.standard_normal((2, 2, 4, 4))
    adam, sign = Adam(0.1, betas=(0.0, 0.0), eps=1e-300), SignDescent(0.1)
    state = adam.init(t(params[None]))
    got = adam.update(t(params[None]), t(grad[None]), t([0.0]), state, 0).numpy()
    np.testing.assert_allclose(got, step(sign, params[None], grad[None]), rtol=1e-15)
