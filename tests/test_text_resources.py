"""The one-hot text run keeps nothing ``K x K``: no identity matrix and no dense ``W`` at any K."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy.stats")  # imported before tracing (slow to import under tracemalloc)

from attnmech.studies.text import TextConfig, run  # noqa: E402


def _word(i: int) -> str:
    return "".join(chr(97 + (i // 26**k) % 26) for k in range(3))


def _corpus(path: Path, vocab: int = 3300, n_tokens: int = 24_000) -> Path:
    """Random words where each window's label is one of its tokens (realizable windows)."""
    rng = np.random.default_rng(0)
    tokens = list(rng.integers(0, vocab, 4))
    while len(tokens) < n_tokens:
        tokens += [tokens[-4:][rng.integers(0, 4)], *rng.integers(0, vocab, 3)]
    path.write_text(" ".join(_word(int(t)) for t in tokens), encoding="utf-8")
    return path


def test_onehot_run_below_4096_builds_no_k_by_k_array(tmp_path, monkeypatch):
    K = 4000
    corpus = _corpus(tmp_path / "words.txt", vocab=5000, n_tokens=14_000)
    big = []

    def guard(original):
        def eye(n, *args, **kwargs):
            if int(n) >= 1000:
                big.append(int(n))
                raise AssertionError(f"a dense {n} x {n} identity was built")
            return original(n, *args, **kwargs)

        return eye

    monkeypatch.setattr(torch, "eye", guard(torch.eye))
    monkeypatch.setattr(np, "eye", guard(np.eye))
    monkeypatch.setattr(np, "identity", guard(np.identity))
    config = TextConfig(
        corpus=str(corpus),
        vocab_size=K,
        seq_len=4,
        steps=20,
        n_prompts=0,
        n_examples=0,
        finite_trajectory=True,
    )
    tracemalloc.start()
    try:
        result = run(config)  # the figures (matplotlib) left out for speed
        (tmp_path / "out").mkdir()
        saved = result.write_extra(tmp_path / "out")  # the layer, theory, windows, history
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert big == []
    assert {p.name for p in saved} >= {"layer.npz", "theory.npz", "windows.npz"}
    assert result.results["data"]["vocab_size"] == K
    assert result.results["n_train"] > 1000
    # one dense K x K float64 array is 128 MB; everything numpy holds at once stays below it
    # (the uniform initialisation is drawn in chunks of 32 MiB, the n-gram baselines read 2e6
    # probabilities at a time: budgets that do not grow with K; about 96 MiB in all)
    assert peak < 8 * K * K, f"traced peak {peak / 2**20:.1f} MiB"
