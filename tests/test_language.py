"""Language-sized vocabularies, part 2: one-hot training, sparse metrics, the held-out pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attnmech.data import Dataset  # noqa: E402
from attnmech.metrics import (  # noqa: E402
    FiniteProjection,
    TrajectoryMetrics,
    correlation,
    fitted_scale,
)
from attnmech.model import AttentionObjective, inputs_from_datasets  # noqa: E402
from attnmech.theory import solve  # noqa: E402
from attnmech.training import TrainConfig, train  # noqa: E402

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "shakespeare"


def _cyclic_text_dataset(embeddings: object, seed: int = 0) -> Dataset:
    """Windows of a small random token stream over 12 tokens (cyclic graphs, realizable)."""
    rng = np.random.default_rng(seed)
    stream = rng.integers(0, 12, size=400)
    seqs, labels = [], []
    for start in range(0, 390, 3):
        window = stream[start : start + 6]
        label = stream[start + 6]
        if label in window:
            seqs.append(window.tolist())
            labels.append(int(label))
    if isinstance(embeddings, str):
        return Dataset(seqs, labels, embeddings, vocab_size=12)
    return Dataset(seqs, labels, embeddings)


def test_onehot_training_equals_dense_identity():
    onehot = _cyclic_text_dataset("onehot")
    dense = onehot.with_embeddings(np.eye(12))
    inputs_1 = inputs_from_datasets(onehot)
    inputs_d = inputs_from_datasets(dense)
    assert inputs_1.onehot and not inputs_d.onehot
    assert inputs_1.pair_query_embedding.numel() == 0  # no (P, d) table of embeddings
    W = torch.as_tensor(np.random.default_rng(1).normal(size=(1, 12, 12)))
    from attnmech.model import AttentionConfig

    loss_1, grad_1 = AttentionObjective(inputs_1, AttentionConfig())(W)
    loss_d, grad_d = AttentionObjective(inputs_d, AttentionConfig())(W)
    np.testing.assert_allclose(loss_1.numpy(), loss_d.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(grad_1.numpy(), grad_d.numpy(), rtol=0, atol=1e-12)
    assert float(np.abs(grad_1.numpy()).max()) > 1e-3
    config = TrainConfig(learning_rate=0.1, num_steps=60, log_every=20, seed=3)
    run_1 = train(onehot, config, progress=False)
    run_d = train(dense, config, progress=False)
    np.testing.assert_allclose(run_1.W, run_d.W, rtol=0, atol=1e-12)
    np.testing.assert_allclose(run_1.history["loss"], run_d.history["loss"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["onehot", "ortho"])
def test_sparse_theory_metrics_equal_dense_basis(kind):
    rng = np.random.default_rng(5)
    emb = "onehot" if kind == "onehot" else np.linalg.qr(rng.normal(size=(12, 12)))[0]
    ds = _cyclic_text_dataset(emb)
    theory = solve(ds)
    assert type(theory.svm).__name__ == "TokenSVMResult"
    assert theory.finite.dimension > 0 and not theory.svm.is_zero
    inputs = inputs_from_datasets(ds)
    recorder = TrajectoryMetrics(inputs, [ds], [theory])
    assert recorder.tables is not None  # the sparse path
    d = 12
    W = theory.W_svm * 3.0 + theory.W_fin + 0.3 * rng.normal(size=(d, d))
    W_fin_t = theory.finite.subspace.project(rng.normal(size=(d, d)))
    got = recorder(W[None], W_fin_t[None])
    # the dense formulas with the dense [p, d, d] basis
    basis = theory.finite.basis.reshape(-1, d, d)
    proj = np.einsum("p,pij->ij", np.einsum("ij,pij->p", W, basis), basis)
    R = fitted_scale(W, theory.W_svm, theory.W_fin)
    want = {
        "corr_svm": correlation(W, theory.W_svm),
        "corr_svm_fin": correlation(W, theory.W_fin + R * theory.W_svm),
        "corr_perp_svm": correlation(W - proj, theory.W_svm),
        "fin_gap": np.linalg.norm(proj - theory.W_fin),
        "fin_gap_traj": np.linalg.norm(proj - W_fin_t),
        "fitted_R": R,
    }
    for key, value in want.items():
        np.testing.assert_allclose(got[key][0], value, rtol=1e-10, atol=1e-12, err_msg=key)
    # TV through the window cells equals the dense (n, K) tables
    dense_tv = recorder.automaton_tv(
        recorder.head.probabilities(
            recorder.head.forward(
                __import__("attnmech.model", fromlist=["pair_scores"]).pair_scores(
                    torch.as_tensor(W[None]), inputs
                ),
                inputs,
            ),
            inputs,
        ).numpy(),
        np.array([R]),
    )
    np.testing.assert_allclose(got["automaton_tv"], dense_tv, rtol=1e-10, atol=1e-13)
    assert got["automaton_tv"][0] > 1e-4
    # the factored projection (FiniteProjection) equals the dense basis
    fp = FiniteProjection([theory], d)
    assert fp.basis is None
    np.testing.assert_allclose(fp.project(W[None])[0], proj, atol=1e-12)
