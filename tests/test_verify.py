"""Tests of the verification metrics, on hand-made theories and on attnmech.solve."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest
import torch

import attnmech
from attnmech import Dataset, build_priority_graphs, make_dataset
from attnmech.layer.metrics import (
    FiniteProjection,
    TrajectoryMetrics,
    correlation,
    fitted_scale,
    project,
    top_scc_attention_mass,
)
from attnmech.layer.model import AttentionConfig, inputs_from_datasets, run_with_cache
from attnmech.layer.training import TrainConfig, train
from attnmech.layer.verification import verify

LOG2 = math.log(2.0)


class _Automaton:
    """The documented automaton semantics, written directly (test stand-in)."""

    def __init__(self, W_svm: np.ndarray, W_fin: np.ndarray, E: np.ndarray) -> None:
        self.svm = E @ W_svm @ E.T  # (K, K): score of token j under query k at [j, k]
        self.fin = E @ W_fin @ E.T
        self.K = E.shape[0]

    def predict_proba(
        self, padded: np.ndarray, queries: np.ndarray, R: float | None = None
    ) -> np.ndarray:
        out = np.zeros((padded.shape[0], self.K))
        for i, (seq, q) in enumerate(zip(padded, queries, strict=True)):
            seq = seq[seq >= 0]
            svm, fin = self.svm[seq, q], self.fin[seq, q]
            if R is None:
                keep = svm >= svm.max() - 1e-9
                logits = np.where(keep, fin, -np.inf)
            else:
                logits = R * svm + fin
            w = np.exp(logits - logits.max())
            np.add.at(out[i], seq, w / w.sum())
        return out


def _reduced(ds: Dataset) -> SimpleNamespace:
    """``theory.finite.reduced`` stand-in for data whose samples lie inside one SCC each."""
    return SimpleNamespace(
        n_samples=ds.n_samples,
        n_full=ds.n_samples,
        queries=ds.last_tokens,
        labels=ds.labels,
        padded=ds.padded,
    )


def _theory(
    ds: Dataset, W_svm: np.ndarray, W_fin: np.ndarray, basis: np.ndarray
) -> SimpleNamespace:
    return SimpleNamespace(
        W_svm=W_svm,
        W_fin=W_fin,
        graphs=build_priority_graphs(ds),
        finite=SimpleNamespace(basis=basis, reduced=_reduced(ds)),
        automaton=lambda: _Automaton(W_svm, W_fin, ds.embeddings),
    )


@pytest.fixture
def chain_theory(acyclic_chain: Dataset) -> SimpleNamespace:
    """Chain a > b > c > d under query d: W_svm e_d holds the scores (1.5, 0.5, -0.5, -1.5)."""
    W_svm = np.zeros((4, 4))
    W_svm[:, 3] = [1.5, 0.5, -0.5, -1.5]
    return _theory(acyclic_chain, W_svm, np.zeros((4, 4)), np.zeros((0, 4, 4)))


@pytest.fixture
def cycle_theory(unbalanced_cycle: Dataset) -> SimpleNamespace:
    """W_svm = 0, S_fin = span{(e_a - e_b) e_b^T}, W_fin = (log 2 / 2) (e_a - e_b) e_b^T."""
    direction = np.zeros((2, 2))
    direction[0, 1], direction[1, 1] = 1.0, -1.0
    return _theory(
        unbalanced_cycle, np.zeros((2, 2)), LOG2 / 2 * direction, direction[None] / math.sqrt(2)
    )


def test_correlation_handles_zero_and_batches() -> None:
    A = np.random.default_rng(0).standard_normal((3, 4, 4))
    np.testing.assert_allclose(correlation(A, 2 * A), 1.0, rtol=1e-14)
    np.testing.assert_allclose(correlation(A[0], -A[0]), -1.0, rtol=1e-14)
    out = correlation(A, np.zeros((3, 4, 4)))
    assert out.shape == (3,) and np.isnan(out).all()
    assert math.isnan(fitted_scale(A[0], np.zeros((4, 4)), A[1]))


def test_project_and_fitted_scale(cycle_theory: SimpleNamespace) -> None:
    W = np.array([[0.3, 2.0], [-1.0, 0.5]])
    P = project(W, cycle_theory.finite.basis)
    np.testing.assert_allclose(P, np.array([[0.0, 0.75], [0.0, -0.75]]), rtol=1e-14)
    np.testing.assert_allclose(project(W, np.zeros((0, 2, 2))), 0.0)
    W_svm, W_fin = np.eye(3), np.diag([0.0, 1.0, -1.0])
    np.testing.assert_allclose(fitted_scale(7.0 * W_svm + W_fin, W_svm, W_fin), 7.0, rtol=1e-14)


def test_top_scc_attention_mass_matches_a_loop(ragged_with_repeats: Dataset) -> None:
    ds = ragged_with_repeats
    graphs = build_priority_graphs(ds)
    W = np.random.default_rng(1).standard_normal((5, 5))
    _, cache = run_with_cache(W, ds)
    attention = cache["attention"].numpy()
    got = top_scc_attention_mass(attention, ds.padded(), ds.last_tokens, graphs)
    for i, seq in enumerate(ds.sequences):
        per_scc: dict[int, float] = {}
        for t, token in enumerate(seq):
            scc = int(graphs.scc_of(seq[-1], token))
            per_scc[scc] = per_scc.get(scc, 0.0) + attention[i, t]
        np.testing.assert_allclose(got[i], max(per_scc.values()), rtol=1e-14)


def test_metrics_are_exact_on_the_predicted_form(
    acyclic_chain: Dataset, chain_theory: SimpleNamespace
) -> None:
    """W = R W_svm + W_fin gives corr(W, W_fin + R W_svm) = 1, zero gaps and automaton TV 0."""
    ds, theory = acyclic_chain, chain_theory
    inputs = inputs_from_datasets([ds, ds])
    recorder = TrajectoryMetrics(inputs, [ds, ds], [theory, theory])
    W = np.stack([3.0 * theory.W_svm, 12.0 * theory.W_svm])
    m = recorder(W, W_fin_t=np.zeros_like(W))
    np.testing.assert_allclose(m["corr_svm"], 1.0, rtol=1e-14)
    np.testing.assert_allclose(m["corr_svm_fin"], 1.0, rtol=1e-14)
    np.testing.assert_allclose(m["fitted_R"], [3.0, 12.0], rtol=1e-14)
    np.testing.assert_allclose(m["fin_gap"], 0.0, atol=1e-15)
    np.testing.assert_allclose(m["fin_gap_traj"], 0.0, atol=1e-15)
    np.testing.assert_allclose(m["automaton_tv"], 0.0, atol=1e-14)
    # the label's SCC is the top one: its mass is the label attention and grows with R
    np.testing.assert_allclose(m["top_scc_mass"], m["label_attention"], rtol=1e-14)
    assert m["label_attention"][1] > m["label_attention"][0] > 0.5


def test_zero_w_svm_gives_nan_correlations_not_a_crash(
    unbalanced_cycle: Dataset, cycle_theory: SimpleNamespace
) -> None:
    recorder = TrajectoryMetrics(
        inputs_from_datasets(unbalanced_cycle), [unbalanced_cycle], [cycle_theory]
    )
    m = recorder(cycle_theory.W_fin[None] + np.array([[[0.0, 0.0], [0.5, 0.0]]]))
    for key in ("corr_svm", "corr_svm_fin", "corr_perp_svm", "fitted_R"):
        assert np.isnan(m[key]).all(), key
    np.testing.assert_allclose(m["fin_gap"], 0.0, atol=1e-15)  # (e_b e_a^T is orthogonal to S_fin)
    np.testing.assert_allclose(m["top_scc_mass"], 1.0)  # one SCC holds everything


def test_training_logs_theory_metrics_and_reaches_log2(
    unbalanced_cycle: Dataset, cycle_theory: SimpleNamespace
) -> None:
    config = TrainConfig(optimizer="gd", learning_rate=0.5, num_steps=1500, log_every=500)
    run = train(unbalanced_cycle, config, theory=cycle_theory)
    assert {"corr_svm", "fin_gap", "fin_gap_traj", "automaton_tv", "top_scc_mass"} <= set(
        run.history
    )
    assert run.history["fin_gap"][-1] < 1e-6 and run.history["fin_gap_traj"][-1] < 1e-6
    assert run.history["automaton_tv"][-1] < 1e-6
    P = project(run.W, cycle_theory.finite.basis)
    np.testing.assert_allclose(P[0, 1] - P[1, 1], LOG2, rtol=1e-6)


def test_verify_report_on_a_given_w(
    acyclic_chain: Dataset, chain_theory: SimpleNamespace, tmp_path
) -> None:
    run = train(acyclic_chain, TrainConfig(num_steps=400, learning_rate=0.1, log_every=100))
    report = verify(acyclic_chain, run, chain_theory)
    assert report.num_trials == 1 and not report.is_cyclic[0]
    assert report.metrics["corr_svm"][0] > 0.95
    assert 1 - report.metrics["label_attention"][0] < 1e-3
    data = report.to_dict()
    json.dumps(data)
    assert data["metrics"]["corr_svm"]["mean"] == pytest.approx(report.metrics["corr_svm"][0])
    table = report.to_table()
    assert "corr_svm" in table and "automaton_tv_hard" in table
    # a saved run and a bare W give the same report
    again = verify(acyclic_chain, run.save(tmp_path / "run.npz"), chain_theory)
    np.testing.assert_allclose(again.metrics["corr_svm"], report.metrics["corr_svm"], rtol=1e-14)
    bare = verify(acyclic_chain, np.asarray(run.W), chain_theory)
    np.testing.assert_allclose(bare.metrics["loss"], report.metrics["loss"], rtol=1e-14)


def test_verify_rejects_mismatched_dimensions(
    acyclic_chain: Dataset, chain_theory: SimpleNamespace
) -> None:
    with pytest.raises(attnmech.InvalidDatasetError, match="dimension"):
        verify(acyclic_chain, np.zeros((3, 3)), chain_theory)


# ------------------------------------------------------------------ with the real core solver
def test_unbalanced_cycle_with_solve(unbalanced_cycle: Dataset) -> None:
    theory = attnmech.solve(unbalanced_cycle)
    run = train(
        unbalanced_cycle,
        TrainConfig(optimizer="ngd", learning_rate=0.01, num_steps=3000, log_every=1000),
        theory=theory,
    )
    P = project(run.W, theory.finite.basis)
    np.testing.assert_allclose(P[0, 1] - P[1, 1], LOG2, atol=0.01)
    assert np.isnan(run.history["corr_svm"]).all()


def test_acyclic_with_solve_label_attention_and_correlation() -> None:
    datasets = [make_dataset(4, 6, 8, 8, graph="acyclic", seed=s) for s in range(3)]
    run = train(datasets, TrainConfig(num_steps=4000, log_every=1000), theory=True)
    assert np.all(1 - run.history["label_attention"][-1] < 1e-4)
    assert np.all(run.history["loss"][-1] < 1e-4)
    assert np.all(run.history["corr_svm"][-1] > 0.97)
    np.testing.assert_allclose(
        run.history["top_scc_mass"][-1], run.history["label_attention"][-1], rtol=1e-12
    )


def test_cyclic_paper_setting_short() -> None:
    """Paper setting (n=6, T=4, K=6, d=8, cyclic), 3 trials, 1000 NGD steps: corr ~0.95 there."""
    datasets = [make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(3)]
    run = train(datasets, TrainConfig(num_steps=1000, log_every=100), theory=True)
    corr = run.history["corr_svm"]
    assert np.nanmean(corr[-1]) > 0.85
    assert np.all(np.diff(np.nanmean(corr, axis=1))[3:] > 0)  # increasing after the start


@pytest.mark.slow
def test_cyclic_paper_setting_full() -> None:
    """docs/theory.md#the-papers-experiments: 10 cyclic datasets, NGD lr 0.01, 4000 steps, uniform
    init: mean corr >= 0.98."""
    datasets = [make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(10)]
    run = train(datasets, TrainConfig(num_steps=4000, log_every=100), theory=True)
    final = run.history["corr_svm"][-1]
    assert np.nanmean(final) >= 0.98
    assert np.nanmean(run.history["top_scc_mass"][-1]) > 0.99
    assert np.nanmax(run.history["fin_gap_traj"][-1]) < 0.05


# ------------------------------------------------------------------ against the definitions
def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _reference_metrics(
    ds: Dataset, W: np.ndarray, W_svm: np.ndarray, W_fin: np.ndarray, head: str = "iden"
) -> dict[str, float]:
    """One trial's metrics written from their definitions (docs/theory.md#token-priority-graphs,
    #the-finite-part, #the-automaton and #the-papers-experiments) with numpy and
    networkx: the graphs, SCCs, S_fin, attention and automaton are rebuilt here, per sample."""
    E = np.asarray(ds.embeddings)
    edges: dict[int, nx.DiGraph] = {}
    for seq, y in zip(ds.sequences, ds.labels, strict=True):
        graph = edges.setdefault(int(seq[-1]), nx.DiGraph())
        graph.add_node(int(y))
        graph.add_edges_from((int(y), int(j)) for j in seq if j != y)
    scc_of = {
        (k, t): c
        for k, g in edges.items()
        for c, members in enumerate(nx.strongly_connected_components(g))
        for t in members
    }
    generators = [
        np.outer(E[a] - E[b], E[k]).ravel()
        for k, g in edges.items()
        for members in nx.strongly_connected_components(g)
        for a, b in zip(sorted(members), sorted(members)[1:], strict=False)
    ]
    if generators:  # Proj_{S_fin} W: least squares on the generators of S_fin
        G = np.stack(generators, axis=1)  # (d*d, m)
        proj = (G @ np.linalg.lstsq(G, W.ravel(), rcond=None)[0]).reshape(W.shape)
    else:
        proj = np.zeros_like(W)

    def corr(A: np.ndarray, B: np.ndarray) -> float:
        return float(np.vdot(A, B) / (np.linalg.norm(A) * np.linalg.norm(B)))

    R = float(np.vdot(W - W_fin, W_svm) / np.vdot(W_svm, W_svm))
    losses, label_mass, top_mass, tv, tv_hard = [], [], [], [], []
    for seq, y in zip(ds.sequences, ds.labels, strict=True):
        seq, q = np.asarray(seq), int(seq[-1])
        X = E[seq]  # (T, d)
        s = _softmax(X @ W @ E[q])  # attention over positions
        if head == "iden":
            p = np.bincount(seq, weights=s, minlength=E.shape[0])
        else:
            p = _softmax(E @ (X.T @ s))
        losses.append(-math.log(p[y]))
        label_mass.append(s[seq == y].sum())
        per_scc: dict[int, float] = {}
        for t, token in enumerate(seq):
            per_scc[scc_of[q, int(token)]] = per_scc.get(scc_of[q, int(token)], 0.0) + s[t]
        top_mass.append(max(per_scc.values()))
        svm, fin = X @ W_svm @ E[q], X @ W_fin @ E[q]
        soft = np.bincount(seq, weights=_softmax(R * svm + fin), minlength=E.shape[0])
        kept = svm >= svm.max() - 1e-6
        hard_w = np.where(kept, np.exp(fin - fin[kept].max()), 0.0)
        hard = np.bincount(seq, weights=hard_w / hard_w.sum(), minlength=E.shape[0])
        tv.append(0.5 * np.abs(p - soft).sum())
        tv_hard.append(0.5 * np.abs(p - hard).sum())
    return {
        "loss": float(np.mean(losses)),
        "norm": float(np.linalg.norm(W)),
        "corr_svm": corr(W, W_svm),
        "corr_svm_fin": corr(W, W_fin + R * W_svm),
        "corr_perp_svm": corr(W - proj, W_svm),
        "fin_gap": float(np.linalg.norm(proj - W_fin)),
        "fitted_R": R,
        "top_scc_mass": float(np.mean(top_mass)),
        "label_attention": float(np.mean(label_mass)),
        "automaton_tv": float(np.mean(tv)),
        "automaton_tv_hard": float(np.mean(tv_hard)),
    }


def _assert_matches_reference(report, datasets, theories, W, head: str = "iden") -> None:
    repeat = report.num_trials // len(datasets)
    for b in range(report.num_trials):
        ds, theory = datasets[b // repeat], theories[b // repeat]
        expected = _reference_metrics(ds, W[b], theory.W_svm, theory.W_fin, head)
        for name, value in expected.items():
            np.testing.assert_allclose(
                report.metrics[name][b], value, rtol=1e-9, atol=1e-12, err_msg=f"{name}[{b}]"
            )


def test_verify_matches_the_definitions_on_trained_runs() -> None:
    """verify on a short paper-setting run equals the metrics computed from their definitions."""
    datasets = [make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(3)]
    theories = [attnmech.solve(ds) for ds in datasets]
    run = train(datasets, TrainConfig(num_steps=300, log_every=100), theory=theories)
    report = verify(datasets, run, theories)
    assert np.all(np.isfinite(report.metrics["corr_svm"]))
    _assert_matches_reference(report, datasets, theories, np.asarray(run.W))
    # what train logged at its last step is the same measurement
    np.testing.assert_allclose(report.metrics["corr_svm"], run.history["corr_svm"][-1], rtol=1e-12)


def test_verify_matches_the_definitions_for_gen_and_factorized_runs() -> None:
    """verify uses W itself (any parameterization) and the run's head for the automaton check."""
    ds = make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)
    theory_fro, theory_nuc = attnmech.solve(ds), attnmech.solve(ds, svm_norm="nuclear")
    for model, theory in (
        (AttentionConfig(parameterization="factorized", rank=8), theory_nuc),
        (AttentionConfig(head="gen", loss="ce"), theory_fro),
    ):
        run = train(ds, TrainConfig(model=model, num_steps=100, num_trials=2), theory=theory)
        # the default theory is solved for the run's parameterization (nuclear when factorized)
        report = verify(ds, run) if model.head == "gen" else verify(ds, run, theory)
        assert report.num_trials == 2
        _assert_matches_reference(report, [ds], [theory], np.asarray(run.W), model.head)


def test_finite_projection_agrees_with_the_generator_projection() -> None:
    """metrics.FiniteProjection (dense basis, numpy and torch) equals FiniteResult.project (through
    the generators of S_fin), and is idempotent."""
    datasets = [make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(2)]
    theories = [attnmech.solve(ds) for ds in datasets]
    W = np.random.default_rng(3).standard_normal((2, 8, 8))
    fin = FiniteProjection(theories, 8)
    expected = np.stack([t.finite.project(W[b]) for b, t in enumerate(theories)])
    np.testing.assert_allclose(fin.project(W), expected, atol=1e-12)
    np.testing.assert_allclose(fin.project_tensor(torch.as_tensor(W)).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(fin.project(fin.project(W)), expected, atol=1e-12)
