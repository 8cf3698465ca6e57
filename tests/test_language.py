"""Language-sized vocabularies, part 2: one-hot training, sparse metrics, the held-out pipeline."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attnmech.data.dataset import Dataset  # noqa: E402
from attnmech.errors import InvalidParameterError  # noqa: E402
from attnmech.layer.metrics import (  # noqa: E402
    FiniteProjection,
    TrajectoryMetrics,
    correlation,
    fitted_scale,
)
from attnmech.layer.model import AttentionObjective, inputs_from_datasets  # noqa: E402
from attnmech.theory.solve import solve  # noqa: E402
from attnmech.layer.training import TrainConfig, train  # noqa: E402

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
    from attnmech.layer.model import AttentionConfig

    loss_1, grad_1 = AttentionObjective(inputs_1, AttentionConfig())(W)
    loss_d, grad_d = AttentionObjective(inputs_d, AttentionConfig())(W)
    np.testing.assert_allclose(loss_1.numpy(), loss_d.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(grad_1.numpy(), grad_d.numpy(), rtol=0, atol=1e-12)
    assert float(np.abs(grad_1.numpy()).max()) > 1e-3
    for optimizer in ("ngd", "adam", "gd"):  # one-hot runs on the pair entries of W alone
        config = TrainConfig(
            optimizer=optimizer, learning_rate=0.1, num_steps=60, log_every=20, seed=3
        )
        run_1 = train(onehot, config, progress=False)
        run_d = train(dense, config, progress=False)
        np.testing.assert_allclose(run_1.W, run_d.W, rtol=0, atol=1e-12)
        np.testing.assert_allclose(run_1.params, run_d.params, rtol=0, atol=1e-12)
        for key in ("loss", "norm", "grad_norm"):
            np.testing.assert_allclose(
                run_1.history[key], run_d.history[key], rtol=0, atol=1e-12, err_msg=key
            )
        start = train(onehot, replace(config, num_steps=0)).W
        assert float(np.abs(run_1.W - start).max()) > 0.05  # training moved W
    # with the theory metrics: taken from the pair entries (one-hot) or the dense W (np.eye)
    run_1 = train(onehot, config, theory=solve(onehot), progress=False)
    run_d = train(dense, config, theory=solve(dense), progress=False)
    assert set(run_1.history) == set(run_d.history)
    for key in run_1.history:
        np.testing.assert_allclose(
            run_1.history[key], run_d.history[key], rtol=1e-10, atol=1e-12, err_msg=key
        )


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
                __import__("attnmech.layer.model", fromlist=["pair_scores"]).pair_scores(
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


def _toy_corpus(path: Path, n_words: int = 3000, seed: int = 0) -> Path:
    """A Zipf-like stream over 30 words: repeats inside windows, some <unk> at K = 20."""
    rng = np.random.default_rng(seed)
    words = [a + b for a in "abcde" for b in "xyzuvw"]  # 30 words (letters only)
    p = 1.0 / np.arange(1, 31)
    ids = rng.choice(30, size=n_words, p=p / p.sum())
    path.write_text(" ".join(words[i] for i in ids) + "\n", encoding="utf-8")
    return path


REQUIRED_KEYS = {
    "realizable_fraction": None,
    "n_train": None,
    "n_test": None,
    "theory": {"solve_seconds"},
    "train": {"corr_svm", "top_scc_mass", "tv_automaton"},
    "heldout": {"accuracy", "tv_layer_automaton"},
    "wall_seconds": None,
    "peak_rss_mb": None,
}


def test_text_pipeline_small_corpus(tmp_path):
    from attnmech.studies.text import TextRunConfig, evaluate_heldout, run_text

    corpus = _toy_corpus(tmp_path / "toy.txt")
    config = TextRunConfig(
        vocab_size=20, seq_len=8, steps=20, n_examples=2, n_prompts=1, generate_length=5
    )
    result = run_text(corpus, config, out_dir=tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    for key, inner in REQUIRED_KEYS.items():
        assert key in saved, key
        if inner:
            assert inner <= set(saved[key]), (key, inner - set(saved[key]))
    acc = saved["heldout"]["accuracy"]
    assert {"layer", "automaton", "copy_recent", "most_frequent", "uniform", "unigram"} <= set(acc)
    assert "bigram" in acc and "automaton_fitted_R" in acc
    assert set(saved["heldout"]["subsets"]["accuracy"]) == {
        "all",
        "label_in_window",
        "label_not_unk",
        "both",
    }
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert "graphs.png" in report and (tmp_path / "out" / "graphs.png").stat().st_size > 1000
    assert (tmp_path / "out" / "attention.png").is_file() and "automaton: ..." in report

    # independent recomputation on the held-out windows, from the text itself
    words = corpus.read_text().split()
    split = int(round(len(words) * 0.9))
    vocab = result.vocabulary
    index = {w: i for i, w in enumerate(vocab)}
    unk = len(vocab) - 1
    test = np.array([index.get(w, unk) for w in words[split:]])
    starts = np.arange(0, test.size - 8, 8)
    X, y = test[starts[:, None] + np.arange(8)], test[starts + 8]
    X, y = X[y != unk], y[y != unk]  # --unk drop-labels
    np.testing.assert_array_equal(result.test_tokens, X)
    assert saved["n_test"] == y.size
    # copy: the most recent token that is not <unk> (no label is <unk> under drop-labels)
    recent = [next((t for t in row[::-1] if t != unk), row[-1]) for row in X]
    assert (X == unk).any()  # the rule matters on this corpus
    assert saved["heldout"]["accuracy"]["copy_recent"] == pytest.approx(np.mean(recent == y))
    in_window = (X == y[:, None]).any(axis=1)
    assert saved["realizable_fraction"] == pytest.approx(in_window.mean())
    assert saved["n_train"] == result.train_dataset.n_samples > 0
    n_distinct = np.array(
        [max(np.unique(row[row != unk]).size, 1) if (row != unk).any() else 1 for row in X]
    )
    assert saved["heldout"]["accuracy"]["uniform"] == pytest.approx(
        np.mean(np.where(in_window, 1.0 / n_distinct, 0.0))
    )
    # the automaton's accuracy on the training windows equals its own prediction
    ds, theory = result.train_dataset, result.theory
    K = ds.vocab_size
    train_X = ds.padded()
    ev = evaluate_heldout(
        train_X,
        ds.labels,
        W=result.W,
        E=ds.embedding_table,
        theory=theory,
        fitted_R=None,
        unigram=np.ones(K),
        bigram=__import__("scipy.sparse", fromlist=["csr_matrix"]).csr_matrix((K, K)),
        unk=unk,
    )
    proba = theory.automaton().predict_proba(train_X)
    top = proba >= proba.max(axis=1, keepdims=True) - 1e-12
    expected = top[np.arange(ds.n_samples), ds.labels] / top.sum(axis=1)
    assert ev["accuracy"]["all"]["automaton"] == pytest.approx(expected.mean(), abs=1e-12)
    assert ev["accuracy"]["all"]["automaton"] > ev["accuracy"]["all"]["uniform"]


def test_text_command_reports_bad_input(tmp_path):
    from typer.testing import CliRunner

    from attnmech.cli import app

    runner = CliRunner()
    missing = tmp_path / "nope"
    done = runner.invoke(app, ["text", str(missing), "--out", str(tmp_path / "o")])
    assert done.exit_code == 1 and "does not exist" in done.output and "nope" in done.output
    corpus = _toy_corpus(tmp_path / "toy.txt")
    done = runner.invoke(
        app, ["text", str(corpus), "--embeddings", "gauss", "--out", str(tmp_path / "o")]
    )
    assert done.exit_code == 1 and "random:d=D" in done.output
    (tmp_path / "empty").mkdir()
    done = runner.invoke(app, ["text", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert done.exit_code == 1 and "no .txt file" in done.output
    assert not (tmp_path / "o" / "results.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(not SHAKESPEARE.is_dir(), reason="the Shakespeare corpus is not here")
def test_shakespeare_k1000_heldout(tmp_path):
    """The README's run, shortened to 300 steps: the theory's automaton and the layer beat the
    window baselines on held-out windows whose label is in the window."""
    from attnmech.studies.text import TextRunConfig, run_text

    config = TextRunConfig(vocab_size=1000, seq_len=16, steps=300, n_prompts=0)
    result = run_text(SHAKESPEARE, config, out_dir=tmp_path)
    r = result.results
    assert r["n_train"] == 7268 and r["n_test"] == 4346
    assert r["realizable_fraction"] == pytest.approx(0.179, abs=1e-3)
    acc = r["heldout"]["subsets"]["accuracy"]["label_in_window"]
    baselines = max(acc[k] for k in ("copy_recent", "most_frequent", "uniform", "unigram"))
    assert acc["automaton"] > baselines and acc["layer"] > baselines
    assert r["theory"]["svm_status"] == "optimal" and r["theory"]["fin_status"] == "optimal"
    assert r["peak_rss_mb"] < 4096


def test_text_run_without_a_theory_goes_on(tmp_path):
    """Dependent random embeddings (d < K): the Graph-SVM is infeasible; the run says so in
    results.json and still evaluates the layer and the baselines."""
    from attnmech.studies.text import PREDICTORS, TextRunConfig, run_text

    corpus = _toy_corpus(tmp_path / "toy.txt")
    config = TextRunConfig(vocab_size=20, seq_len=8, steps=5, embeddings="random:d=8")
    r = run_text(corpus, config).results
    assert "infeasible" in r["theory"]["error"]
    assert set(r["heldout"]["accuracy"]) == set(PREDICTORS)
    assert r["heldout"]["accuracy"]["automaton"] is None
    assert r["heldout"]["tv_layer_automaton"] is None
    assert 0 < r["heldout"]["accuracy"]["layer"] < 1
    with pytest.raises(InvalidParameterError, match="random:d=D"):
        TextRunConfig(embeddings="random:d=0")


def test_onehot_finite_trajectory_equals_dense_identity():
    from attnmech.layer.training import run_finite_trajectory

    onehot = _cyclic_text_dataset("onehot")
    dense = onehot.with_embeddings(np.eye(12))
    for optimizer in ("ngd", "gd"):
        config = TrainConfig(optimizer=optimizer, learning_rate=0.1, num_steps=80, log_every=40)
        traj_1 = run_finite_trajectory(onehot, solve(onehot), config)
        traj_d = run_finite_trajectory(dense, solve(dense), config)
        np.testing.assert_allclose(traj_1.W, traj_d.W, rtol=0, atol=1e-12)
        assert float(np.abs(traj_1.W[-1]).max()) > 0.05
