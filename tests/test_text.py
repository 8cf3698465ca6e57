"""Datasets cut from real text (the sonnets bundled with the package)."""

from __future__ import annotations

import numpy as np
import pytest

from attnmech import InvalidDatasetError, solve
from attnmech.data.text import bundled_corpus, text_dataset, tokenize


def test_windows_and_labels_follow_the_text():
    td = text_dataset(
        "x y z x y z x y",
        vocab_size=3,
        seq_len=3,
        embedding_dim=3,
        stride=1,
        on_unrealizable="keep",
    )
    assert td.vocabulary == ["x", "y", "<unk>"]  # z is the rarest: mapped to <unk>
    assert td.decode(td.dataset.sequence(0)) == "x y <unk>"
    assert td.vocabulary[td.dataset.labels[0]] == "x"
    assert td.dataset.n_samples == 5


def test_gutenberg_header_is_stripped():
    text = (
        "junk header\n*** START OF THIS BOOK ***\nbe be be not\n*** END OF THIS BOOK ***\nlicense"
    )
    td = text_dataset(
        text, vocab_size=3, seq_len=2, embedding_dim=3, stride=1, on_unrealizable="keep"
    )
    assert "junk" not in td.vocabulary and "license" not in td.vocabulary
    assert td.n_windows == 2


def test_too_short_text_is_reported():
    with pytest.raises(InvalidDatasetError, match="too few"):
        text_dataset("one two", vocab_size=3, seq_len=4, embedding_dim=3)


def test_char_level():
    assert tokenize("Ab  c", level="char") == ["a", "b", " ", "c"]


def test_shakespeare_end_to_end():
    td = text_dataset(
        bundled_corpus("sonnets"),
        vocab_size=32,
        seq_len=6,
        embedding_dim=32,
        embeddings="ortho",
        stride=3,
        max_samples=3000,
    )
    ds = td.dataset
    assert 0 < ds.n_samples <= 3000 and ds.vocab_size == 32
    theory = solve(ds)
    assert theory.svm.success and theory.finite.success
    probs = theory.automaton().predict_proba(ds)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_missing_file_name_is_an_error_not_text(tmp_path):
    from attnmech.errors import FileFormatError

    for source in ("missing.txt", str(tmp_path / "nope"), tmp_path / "nope.txt"):
        with pytest.raises(FileFormatError, match="does not exist"):
            text_dataset(source, vocab_size=4, seq_len=2, embedding_dim=4)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 10)
    with pytest.raises(FileFormatError, match="not UTF-8"):
        text_dataset(tmp_path / "latin1.txt", vocab_size=4, seq_len=2, embedding_dim=4)
    # text with whitespace is text, even with a dot at the end
    td = text_dataset("a b a c a b a c.", vocab_size=4, seq_len=3, embedding_dim=4, stride=1)
    assert td.vocabulary == ["a", "b", "c", "<unk>"]
