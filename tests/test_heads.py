"""``attnmech heads`` / ``attnmech heads-study`` and the small-transformer study.

Corpora are made in the test (a seeded word sequence), nothing is downloaded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from attnmech import make_dataset
from attnmech.cli import app
from attnmech.interp import compare_priorities

runner = CliRunner()

WORDS = "king queen lord duke sword crown night day sea land fire rain".split()


def _corpus(tmp_path, n_words=1500, seed=0):
    """A seeded text: each word is followed by one of three favourite successors mostly."""
    rng = np.random.default_rng(seed)
    nxt = {w: rng.choice(WORDS, size=3, replace=False) for w in WORDS}
    words = [WORDS[0]]
    for _ in range(n_words - 1):
        options = nxt[words[-1]]
        words.append(str(rng.choice(options)) if rng.random() < 0.8 else str(rng.choice(WORDS)))
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(words), encoding="utf-8")
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_heads_on_an_attnmech_run_orders_every_strict_edge(tmp_path):
    from attnmech.layer.training import TrainConfig, train

    ds = make_dataset(6, 4, 6, 8, graph="acyclic", seed=0)
    ds.save(tmp_path / "data.npz")
    train(ds, TrainConfig(num_steps=1500, learning_rate=0.1, log_every=0)).save(
        tmp_path / "run.npz"
    )
    result = invoke("heads", tmp_path / "run.npz", "--data", tmp_path / "data.npz", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["kind"] == "attnmech"
    assert out["overall"]["strict_edge_agreement"] == 1.0
    E = ds.embeddings
    W = np.load(tmp_path / "run.npz")["W"]
    q = out["queries"][0]["query"]
    top = out["queries"][0]["keys"][0]
    assert top["score"] == pytest.approx(float(E[top["token"]] @ W @ E[q]), abs=1e-12)
    text = invoke("heads", tmp_path / "run.npz", "--data", tmp_path / "data.npz", "--query", q)
    assert text.exit_code == 0 and "strict_edge_agreement" in text.output


def test_heads_rejects_an_unknown_model_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"junk")
    result = invoke("heads", path)
    assert result.exit_code == 1 and "error:" in result.output and ".pt" in result.output


def test_heads_on_a_saved_transformer_with_a_corpus(tmp_path):
    pytest.importorskip("transformer_lens")
    from attnmech.interp import head_scores, save_hooked_transformer
    from attnmech.interp.transformers import TinyTransformerConfig, train_transformer
    from attnmech.studies.heads import corpus_graphs

    corpus = _corpus(tmp_path)
    cg = corpus_graphs(corpus, vocab_size=10, seq_len=6, stride=1, holdout=0.2)
    trained = train_transformer(
        cg.train.padded(), cg.train.labels, 10, TinyTransformerConfig(d_model=8, num_steps=40)
    )
    assert trained.losses[-1] < trained.losses[0]
    save_hooked_transformer(trained.model, tmp_path / "m.pt")
    expected = compare_priorities(head_scores(trained.model, 0, 0), cg.train_graphs).overall
    args = ["heads", tmp_path / "m.pt", "--corpus", corpus, "--K", 10, "--T", 6, "--stride", 1]
    args += ["--holdout", 0.2]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["overall"]["strict_edge_agreement"] == pytest.approx(
        expected["strict_edge_agreement"], abs=1e-12
    )
    q = cg.vocabulary[int(cg.train_graphs.queries[0])]
    key = cg.vocabulary[int(cg.train_graphs.tokens(int(cg.train_graphs.queries[0]))[0])]
    drawn = invoke(*args, "--query", q, "--explain", key, "--draw", tmp_path / "p.png")
    assert drawn.exit_code == 0, drawn.output
    assert (tmp_path / "p.png").stat().st_size > 0
    assert f"under query {q}: key {key}" in drawn.output
    bad = invoke(*args, "--query", "nosuchword")
    assert bad.exit_code == 1 and "nosuchword" in bad.output


def test_heads_study_tiny(tmp_path):
    pytest.importorskip("transformer_lens")
    corpus = _corpus(tmp_path, n_words=1200)
    out = tmp_path / "study"
    result = invoke(
        "heads-study",
        corpus,
        "--out",
        out,
        "--K",
        10,
        "--T",
        6,
        "--seeds",
        1,
        "--steps",
        20,
        "--d-model",
        8,
        "--variant",
        "attn1-nopos",
        "--variant",
        "attn1-4heads",
        "--layer-steps",
        50,
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    variants = [r["variant"] for r in results["summary"]]
    assert variants == ["attn1-nopos", "attn1-4heads", "untrained"]
    assert [r["n_heads"] for r in results["summary"]] == [1, 4, 1]
    # the automaton orders every strict edge of the graphs it was solved on
    assert results["references"]["automaton"]["train"]["strict_edge_agreement"] == 1.0
    for row in results["rows"]:
        assert 0.0 <= row["train"]["strict_edge_agreement"] <= 1.0
        # no positions, one layer: the token table is the head's real score up to a shift
        assert row["fidelity"]["pearson"] == pytest.approx(1.0, abs=1e-5)
    assert (out / "REPORT.md").read_text().count("| attn1-4heads") == 1
    assert (out / "agreement.png").exists() and (out / "models" / "attn1-nopos-seed0.pt").exists()
