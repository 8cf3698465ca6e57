"""Token-space theory (one-hot / orthonormal embeddings) against the dense solvers and cvxpy."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from attnmech.data.dataset import Dataset, OneHotEmbeddings, load_dataset, make_embeddings
from attnmech.errors import AttnmechError, InvalidParameterError
from attnmech.theory.finite import FiniteSubspace
from attnmech.theory.graphs import build_priority_graphs
from attnmech.theory.solve import solve
from attnmech.theory.tokenspace import (
    ScoreTable,
    TokenFiniteResult,
    TokenSVMResult,
    is_token_space,
    solve_token_finite,
    solve_token_svm,
)

EXACT = 1e-9  # token space vs the dense solver (both exact)
CVXPY_TOL = 1e-6  # against an interior-point solver
CLARABEL_OPTIONS = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}


def ragged_dataset(seed: int, *, n: int = 14, K: int = 7, max_len: int = 7) -> Dataset:
    """Random ragged sequences with repeated tokens and realizable labels (one-hot)."""
    rng = np.random.default_rng(seed)
    seqs = []
    labels = []
    for _ in range(n):
        length = int(rng.integers(1, max_len + 1))
        seq = rng.integers(0, K, size=length)
        seqs.append(seq.tolist())
        labels.append(int(rng.choice(seq)))
    return Dataset(seqs, labels, "onehot", vocab_size=K)


def test_onehot_matches_dense_identity_on_many_datasets():
    n_cyclic = 0
    for seed in range(25):
        ds = ragged_dataset(seed)
        token = solve(ds)
        dense = solve(ds.with_embeddings(np.eye(ds.vocab_size)), method="dense")
        assert isinstance(token.svm, TokenSVMResult)
        assert isinstance(token.finite, TokenFiniteResult)
        np.testing.assert_allclose(token.W_svm, dense.W_svm, atol=EXACT, rtol=0)
        np.testing.assert_allclose(token.W_fin, dense.W_fin, atol=EXACT, rtol=0)
        np.testing.assert_allclose(token.svm.margins, dense.svm.margins, atol=EXACT, rtol=0)
        np.testing.assert_allclose(token.finite.loss, dense.finite.loss, atol=1e-12, rtol=0)
        assert token.finite.dimension == dense.finite.dimension
        assert token.svm.status.value == dense.svm.status.value == "optimal"
        # the chain coordinates reproduce W_fin; the duals reproduce W_svm (as in the dense form)
        np.testing.assert_allclose(
            token.finite.coefficients, dense.finite.coefficients, atol=EXACT, rtol=0
        )
        n_cyclic += dense.finite.dimension > 0
    assert n_cyclic >= 8  # the fixture exercises W_fin


def test_orthonormal_embeddings_dispatch_and_match_dense():
    for seed in range(15):
        base = ragged_dataset(100 + seed, K=6)
        E = make_embeddings("ortho", 6, 9, seed=seed)
        ds = base.with_embeddings(E)
        token = solve(ds)
        dense = solve(ds, method="dense")
        assert isinstance(token.svm, TokenSVMResult)
        np.testing.assert_allclose(token.W_svm, dense.W_svm, atol=EXACT, rtol=0)
        np.testing.assert_allclose(token.W_fin, dense.W_fin, atol=EXACT, rtol=0)
        # scores = E W E^T
        A = E @ dense.W_svm @ E.T
        np.testing.assert_allclose(token.svm.scores.to_dense(), A, atol=EXACT, rtol=0)


def _networkx_sccs(ds: Dataset, query: int) -> tuple[nx.DiGraph, dict[int, int]]:
    graph = nx.DiGraph()
    for seq, y in zip(ds.sequences, ds.labels, strict=True):
        if int(seq[-1]) != query:
            continue
        graph.add_nodes_from(int(t) for t in seq)
        graph.add_edges_from((int(y), int(t)) for t in seq if t != y)
    comp = {}
    for c, members in enumerate(nx.strongly_connected_components(graph)):
        for t in members:
            comp[t] = c
    return graph, comp


def test_against_independent_per_query_cvxpy():
    cp = pytest.importorskip("cvxpy")
    for seed in range(2):
        ds = ragged_dataset(200 + seed, n=10, K=6)
        token = solve(ds)
        K = ds.vocab_size
        A_svm = np.zeros((K, K))
        A_fin = np.zeros((K, K))
        for q in np.unique(ds.last_tokens).tolist():
            graph, comp = _networkx_sccs(ds, q)
            nodes = sorted(graph.nodes)
            pos = {t: p for p, t in enumerate(nodes)}
            a = cp.Variable(len(nodes))
            cons = [
                a[pos[i]] - a[pos[j]] == 0 if comp[i] == comp[j] else a[pos[i]] - a[pos[j]] >= 1
                for i, j in graph.edges
            ]
            cp.Problem(cp.Minimize(cp.sum_squares(a)), cons).solve(
                solver=cp.CLARABEL, **CLARABEL_OPTIONS
            )
            A_svm[nodes, q] = a.value
            # W_fin: reduced samples of this query, zero-sum scores inside each SCC
            u = cp.Variable(len(nodes))
            terms = []
            for seq, y in zip(ds.sequences, ds.labels, strict=True):
                if int(seq[-1]) != q:
                    continue
                kept = [int(t) for t in seq if comp[int(t)] == comp[int(y)]]
                if len(set(kept)) < 2:
                    continue
                toks, counts = np.unique(kept, return_counts=True)
                idx = [pos[t] for t in toks.tolist()]
                terms.append(cp.log_sum_exp(u[idx] + np.log(counts)) - u[pos[int(y)]])
            groups: dict[int, list[int]] = {}
            for t in nodes:
                groups.setdefault(comp[t], []).append(pos[t])
            zero = [cp.sum(u[g]) == 0 for g in groups.values() if len(g) > 1]
            zero += [u[g[0]] == 0 for g in groups.values() if len(g) == 1]
            if terms:
                cp.Problem(cp.Minimize(cp.sum(terms) / ds.n_samples), zero).solve(
                    solver=cp.CLARABEL, **CLARABEL_OPTIONS
                )
                A_fin[nodes, q] = u.value
        np.testing.assert_allclose(token.svm.scores.to_dense(), A_svm, atol=CVXPY_TOL, rtol=0)
        np.testing.assert_allclose(token.finite.scores.to_dense(), A_fin, atol=CVXPY_TOL, rtol=0)


def test_unbalanced_cycle_gives_log_two():
    ds = Dataset([[0, 1]] * 3, [0, 0, 1], "onehot")
    res = solve_token_finite(ds, build_priority_graphs(ds))
    tokens, scores = res.scores.column(1)
    assert tokens.tolist() == [0, 1]
    assert scores[0] - scores[1] == pytest.approx(np.log(2), abs=1e-12)
    assert scores.sum() == pytest.approx(0.0, abs=1e-15)  # in S_fin: zero-sum in the SCC


def test_svm_closed_form_single_sample():
    ds = Dataset([[0, 1, 2]], [0], "onehot")
    res = solve_token_svm(build_priority_graphs(ds))
    tokens, scores = res.scores.column(2)
    np.testing.assert_allclose(scores, [2 / 3, -1 / 3, -1 / 3], atol=1e-12)
    assert res.relative_gap < 1e-12 and res.max_violation < 1e-12


def test_subspace_project_matches_dense_basis():
    rng = np.random.default_rng(0)
    for seed in range(10):
        ds = ragged_dataset(300 + seed)
        theory = solve(ds)
        if theory.finite.dimension == 0:
            continue
        basis = theory.finite.basis
        p, d, _ = basis.shape
        np.testing.assert_allclose(
            basis.reshape(p, -1) @ basis.reshape(p, -1).T, np.eye(p), atol=1e-12
        )
        W = rng.standard_normal((3, d, d))
        expected = np.einsum("bp,pij->bij", np.einsum("bij,pij->bp", W, basis), basis)
        got = theory.finite.subspace.project(W)
        np.testing.assert_allclose(got, expected, atol=1e-12)
        np.testing.assert_allclose(theory.finite.subspace.project(got), got, atol=1e-12)
        # the dense solver's subspace (generator mode) agrees
        dense = solve(ds.with_embeddings(np.eye(ds.vocab_size)), method="dense")
        np.testing.assert_allclose(dense.finite.subspace.project(W), expected, atol=1e-10)
        np.testing.assert_allclose(dense.finite.project(W[0]), expected[0], atol=1e-10)


def test_subspace_project_orthonormal_and_coupled():
    rng = np.random.default_rng(1)
    base = ragged_dataset(6, K=6)
    for kind, d in [("ortho", 8), ("random", 5)]:
        ds = base.with_embeddings(make_embeddings(kind, 6, d, seed=3))
        finite = solve(ds).finite
        basis = finite.basis
        assert basis.shape[0] == finite.dimension > 0
        W = rng.standard_normal((2, d, d))
        expected = np.einsum("bp,pij->bij", np.einsum("bij,pij->bp", W, basis), basis)
        np.testing.assert_allclose(finite.subspace.project(W), expected, atol=1e-10)


def test_basis_refuses_when_too_large():
    ds = ragged_dataset(3)
    sub = solve(ds).finite.subspace
    assert sub.dimension > 0
    with pytest.raises(InvalidParameterError, match="GiB"):
        sub.basis(limit_bytes=8)


def test_large_vocab_never_densifies():
    K = 200_000
    ds = Dataset([[5, 17, 99_999], [17, 5, 99_999], [3, 4]], [5, 17, 3], "onehot", vocab_size=K)
    assert ds.is_onehot and ds.vocab_size == K and ds.embedding_dim == K
    theory = solve(ds)
    assert theory.svm.success and theory.finite.success
    assert theory.finite.dimension == 1
    with pytest.raises(InvalidParameterError, match="GiB") as info:
        _ = theory.W_svm
    assert isinstance(info.value, AttnmechError)
    with pytest.raises(InvalidParameterError, match="vocab_size 200000"):
        _ = ds.embeddings
    auto = theory.automaton()
    proba = auto.next_token_probabilities([17, 5, 99_999])
    assert proba.shape == (K,)
    assert proba[5] == pytest.approx(0.5) and proba[17] == pytest.approx(0.5)
    assert "||W_fin||" in theory.summary()


def test_token_automaton_matches_dense():
    ds = ragged_dataset(11)
    token = solve(ds)
    dense = solve(ds.with_embeddings(np.eye(ds.vocab_size)), method="dense")
    seqs = ds.padded()
    np.testing.assert_allclose(
        token.automaton().predict_proba(seqs), dense.automaton().predict_proba(seqs), atol=1e-9
    )
    np.testing.assert_allclose(
        token.automaton().predict_proba(seqs, R=3.0),
        dense.automaton().predict_proba(seqs, R=3.0),
        atol=1e-9,
    )


def test_save_load_roundtrip_onehot(tmp_path):
    ds = ragged_dataset(5)
    path = ds.save(tmp_path / "d.npz")
    with np.load(path) as archive:
        assert str(archive["embeddings_kind"]) == "onehot"
        assert "embeddings" not in archive.files
    back = load_dataset(path)
    assert back.is_onehot and back == ds
    jpath = ds.save(tmp_path / "d.jsonl")
    back = load_dataset(jpath)
    assert back.is_onehot and back == ds
    assert load_dataset(jpath, embeddings="onehot") == ds


def test_onehot_embeddings_objects():
    E = make_embeddings("onehot", 4)
    assert isinstance(E, OneHotEmbeddings) and E.shape == (4, 4)
    np.testing.assert_array_equal(np.asarray(E), np.eye(4))
    with pytest.raises(AttnmechError, match="embedding_dim"):
        make_embeddings("onehot", 4, 5)
    with pytest.raises(InvalidParameterError, match="limit"):
        OneHotEmbeddings(100_000).to_dense()
    with pytest.raises(AttnmechError, match="'onehot'"):
        Dataset([[0, 1]], [0], "identity")


def test_is_token_space():
    assert is_token_space(OneHotEmbeddings(3))
    assert is_token_space(np.eye(4))
    E = make_embeddings("ortho", 5, 7, seed=0)
    assert is_token_space(E)
    bent = E.copy()
    bent[0] = (bent[0] + 1e-6 * bent[1]) / np.linalg.norm(bent[0] + 1e-6 * bent[1])
    assert not is_token_space(bent)
    assert not is_token_space(make_embeddings("random", 5, 7, seed=0))
    assert not is_token_space(make_embeddings("random", 9, 4, seed=0))


def test_score_table_lookup_and_dense():
    table = ScoreTable(4, np.array([1, 1, 3]), np.array([0, 2, 3]), np.array([0.5, -1.0, 2.0]))
    np.testing.assert_allclose(
        table[np.array([[0, 2], [3, 1]]), np.array([[1], [3]])], [[0.5, -1.0], [2.0, 0.0]]
    )
    dense = table.to_dense()
    assert dense[0, 1] == 0.5 and dense[2, 1] == -1.0 and dense[3, 3] == 2.0
    E = make_embeddings("ortho", 4, 6, seed=2)
    np.testing.assert_allclose(E @ table.to_dense(E) @ E.T, dense, atol=1e-12)


def test_projection_subspace_rejects_bad_shapes():
    sub = FiniteSubspace.token_space(np.array([0, 0]), np.array([1, 2]), np.array([0, 0]), None, 3)
    with pytest.raises(InvalidParameterError, match=r"\(\.\.\., 3, 3\)"):
        sub.project(np.zeros((2, 2)))
    out = sub.project(np.arange(9.0).reshape(3, 3))
    assert out[1, 0] == pytest.approx(-1.5) and out[2, 0] == pytest.approx(1.5)


def test_dense_solvers_refuse_with_a_memory_estimate():
    from attnmech.errors import SolverError
    from attnmech.theory.finite import solve_finite
    from attnmech.theory.svm import solve_graph_svm

    base = ragged_dataset(4, n=30, K=8)
    ds = base.with_embeddings(make_embeddings("random", 8, 8, seed=0))  # coupled
    graphs = build_priority_graphs(ds)
    with pytest.raises(SolverError, match=r"GiB \(limit"):
        solve_graph_svm(graphs, ds.embeddings, memory_limit=100)
    with pytest.raises(InvalidParameterError, match=r"GiB \(limit"):
        solve_finite(ds, graphs, memory_limit=100)
    # the same problem within the limits solves, and single-threaded BLAS is recorded
    res = solve_graph_svm(graphs, ds.embeddings)
    assert res.success and res.solver_stats.extra_stats["blas_threads"] == 1


def test_graphs_summary_is_bounded():
    rng = np.random.default_rng(0)
    K = 3000
    seqs = rng.integers(0, K, size=(400, 60))
    seqs[:, -1] = 7  # one query with many tokens: a long line
    ds = Dataset(seqs, seqs[:, 0], "onehot", vocab_size=K)
    graphs = build_priority_graphs(ds)
    text = graphs.summary(max_sccs=40)
    assert len(text) < 40 * 12 * 4 + 400
    assert "more SCCs)" in text
    overview = graphs.overview(top=3)
    sizes = sorted(graphs.scc_size.tolist(), reverse=True)
    assert f"{sizes[0]} tokens" in overview
    hist = {(lo, hi): c for lo, hi, c in graphs.size_histogram()}
    assert sum(hist.values()) == graphs.n_sccs
    assert hist[(1, 1)] == int((graphs.scc_size == 1).sum())


def test_cli_graphs_overview_when_cut(tmp_path):
    from typer.testing import CliRunner

    from attnmech.cli import app

    ds = ragged_dataset(1, n=40, K=9)
    path = ds.save(tmp_path / "d.npz")
    result = CliRunner().invoke(app, ["graphs", str(path), "--max-queries", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("SCC sizes (size: count): 1: ")
    assert lines[-1].startswith("  ... ") and "more last tokens" in lines[-1]


def test_token_duals_reproduce_the_scores():
    for seed in range(5):
        ds = ragged_dataset(400 + seed)
        res = solve_token_svm(build_priority_graphs(ds))
        cons = res.constraints
        K = ds.vocab_size
        A = np.zeros((K, K))
        np.add.at(A, (cons.i, cons.query), res.dual_values)
        np.add.at(A, (cons.j, cons.query), -res.dual_values)
        np.testing.assert_allclose(A, res.scores.to_dense(), atol=1e-10)
        assert (res.dual_values[cons.strict] >= 0).all()
        # complementary slackness: positive multipliers only on tight strict constraints
        tight = np.abs(res.margins - 1.0) < 1e-9
        assert not (res.dual_values[cons.strict & ~tight] > 1e-9).any()
        with pytest.raises(InvalidParameterError, match="GiB"):
            res.to_dense(limit_bytes=8)


@pytest.mark.slow
def test_shakespeare_word_level_theory_is_certified():
    from pathlib import Path

    from attnmech.data.text import text_dataset

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "shakespeare"
    files = sorted(root.glob("*.txt"))
    if not files:
        pytest.skip(f"no corpus in {root}")
    text = "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    ds = text_dataset(text, vocab_size=1000, seq_len=16, embeddings="onehot").dataset
    theory = solve(ds)
    assert isinstance(theory.svm, TokenSVMResult)
    assert theory.svm.success and theory.svm.max_violation < 1e-9
    assert theory.svm.relative_gap < 1e-8
    assert theory.finite.success and theory.finite.gradient_norm < 1e-10
    # every strict edge has margin >= 1, every SCC edge margin 0, from the scores themselves
    strict = theory.svm.edge_strict
    assert theory.svm.edge_margins[strict].min() >= 1 - 1e-9
    assert np.abs(theory.svm.edge_margins[~strict]).max(initial=0.0) < 1e-9


@pytest.mark.parametrize("kind", ["onehot", "ortho"])
def test_token_theory_save_load_round_trip(tmp_path, kind):
    from attnmech.theory.solve import load_theory, solve

    rng = np.random.default_rng(3)
    emb = "onehot" if kind == "onehot" else np.linalg.qr(rng.normal(size=(5, 7)).T)[0].T
    seqs = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [3, 4, 0], [0, 1], [4, 3]]
    ds = Dataset(seqs * 2, [0, 1, 2, 3, 1, 4, 1, 2, 0, 4, 0, 3], emb)
    theory = solve(ds)
    path = theory.save(tmp_path / "t.npz")
    with np.load(path) as archive:  # sparse tables, never a dense K x K matrix
        assert "W_svm" not in archive.files and "fin_frame" not in archive.files
        assert archive["svm_score_value"].size == theory.svm.scores.n_entries
    loaded = load_theory(path, dataset=ds)
    assert type(loaded.svm) is type(theory.svm) and type(loaded.finite) is type(theory.finite)
    np.testing.assert_array_equal(loaded.W_svm, theory.W_svm)
    np.testing.assert_array_equal(loaded.W_fin, theory.W_fin)
    assert loaded.svm.constraints.n_constraints == theory.svm.constraints.n_constraints
    assert loaded.finite.dimension == theory.finite.dimension > 0
    W = rng.normal(size=theory.W_svm.shape)
    np.testing.assert_allclose(
        loaded.finite.subspace.project(W), theory.finite.subspace.project(W), atol=1e-14
    )
    assert load_theory(path).dataset.embeddings_kind == ds.embeddings_kind
    other = Dataset(seqs, [0, 1, 2, 3, 1, 4], emb)
    with pytest.raises(InvalidParameterError, match="another dataset"):
        load_theory(path, dataset=other)


def test_onehot_fingerprint_needs_no_dense_table():
    """A one-hot dataset is fingerprinted by its vocabulary size, never a K x K identity."""
    seqs, labels = [[5, 17, 99_999], [17, 5, 99_999]], [5, 17]
    big = Dataset(seqs, labels, "onehot", vocab_size=200_000)  # the identity would be 298 GiB
    same = Dataset(seqs, labels, "onehot", vocab_size=200_000)
    other = Dataset(seqs, labels, "onehot", vocab_size=200_001)
    assert big.fingerprint() == same.fingerprint() != other.fingerprint()
    small = Dataset([[0, 1]] * 3, [0, 0, 1], "onehot")
    assert small.fingerprint() != Dataset([[0, 1]] * 3, [0, 0, 1], np.eye(2)).fingerprint()


def test_token_space_solve_refuses_unknown_svm_options():
    """Dense-only options are accepted (no use in token space); unknown ones are an error, never
    silently dropped."""
    ds = Dataset([[0, 1]] * 3, [0, 0, 1], "onehot")
    assert solve(ds, svm_options={"threads": 1, "max_iter": 50}).svm.success
    with pytest.raises(InvalidParameterError, match=r"\['bogus'\] are not options"):
        solve(ds, svm_options={"bogus": 1})
