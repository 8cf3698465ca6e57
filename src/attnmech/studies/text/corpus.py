"""The corpus of the text study: reading it, splitting it by position, cutting the windows.

The vocabulary is the ``K - 1`` most frequent tokens of the training part (sorted) plus
``<unk>``; windows of ``T`` tokens are cut every ``stride`` tokens, separately in the training
part (the first ``1 - holdout`` of the token stream) and the held-out part (the rest).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...data.dataset import Dataset
from ...data.generators import make_embeddings
from ...data.text import UNKNOWN, _strip_gutenberg, tokenize
from ...errors import FileFormatError, InvalidDatasetError

__all__ = ["TextData", "read_corpus", "prepare_text", "cut_windows"]


def read_corpus(corpus: str | os.PathLike[str], *, glob: str = "*.txt") -> list[tuple[str, str]]:
    """(name, text) of a text file, or of every file of a folder matching ``glob`` (by name).

    Project Gutenberg headers and footers are removed.

    Raises
    ------
    FileFormatError
        If the path does not exist, a folder holds no file matching ``glob``, or a file is not
        UTF-8 text.
    """
    path = Path(corpus)
    if path.is_dir():
        files = sorted(p for p in path.glob(glob) if p.is_file())
        if not files:
            raise FileFormatError(
                f"corpus folder {path} holds no file matching {glob!r} (no .txt file); give a "
                "text file, a folder of them, or another --glob",
                path=str(path),
            )
    elif path.is_file():
        files = [path]
    else:
        raise FileFormatError(
            f"corpus {path} does not exist; give a .txt file or a folder of .txt files",
            path=str(path),
        )
    from ..._io import read_text_bounded  # a quarter of the available memory at most

    out = []
    for file in files:
        text = read_text_bounded(
            file,
            what="corpus file",
            hint="convert it to UTF-8 or leave it out of the folder (--glob)",
        )
        out.append((file.name, _strip_gutenberg(text)))
    return out


def cut_windows(stream: np.ndarray, T: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``stream[s : s + T]`` for ``s = 0, stride, ...`` and their next tokens."""
    starts = np.arange(0, max(stream.size - T, 0), stride)
    windows = stream[starts[:, None] + np.arange(T)[None, :]]  # (n, T)
    return windows.reshape(-1, T), stream[starts + T]


@dataclass(frozen=True, slots=True, eq=False)
class TextData:
    """The windows of a corpus split by position (see :func:`prepare_text`).

    Attributes
    ----------
    files : int
        Number of corpus files read.
    n_tokens : int
    split : int
        Tokens in the training part.
    vocabulary : list of str
        By id; the last one is ``<unk>``.
    stride : int
    train_dataset : Dataset
        The realizable training windows (label in the window).
    train_labels : ndarray
        Labels of every training window (after ``--unk``), realizable or not.
    train_realizable : ndarray of bool
    test_tokens : ndarray of shape (n_test, T)
    test_labels : ndarray of shape (n_test,)
    unigram : ndarray of shape (K,)
        Training token counts plus one.
    bigram : scipy.sparse.csr_matrix of shape (K, K)
        Training counts of (token, next token).
    train_stream : ndarray of int64
        The training part as token ids (for the n-gram baselines).
    """

    files: int
    n_tokens: int
    split: int
    vocabulary: list[str]
    stride: int
    train_dataset: Dataset
    train_labels: np.ndarray
    train_realizable: np.ndarray
    test_tokens: np.ndarray
    test_labels: np.ndarray
    unigram: np.ndarray
    bigram: Any
    train_stream: np.ndarray | None = None

    @property
    def vocab_size(self) -> int:
        """K, ``<unk>`` included."""
        return len(self.vocabulary)

    @property
    def unk(self) -> int:
        """Id of ``<unk>`` (the last one)."""
        return len(self.vocabulary) - 1


def prepare_text(corpus: str | os.PathLike[str] | None, config: Any) -> TextData:
    """Read the corpus, split it by position, build the vocabulary and the windows.

    ``corpus`` defaults to ``config.corpus``; ``config`` is a :class:`TextConfig`.

    Raises
    ------
    FileFormatError
        Unreadable corpus.
    InvalidDatasetError
        Too little text, or no realizable training window.
    """
    corpus = config.corpus if corpus is None else corpus
    files = read_corpus(corpus, glob=getattr(config, "glob", "*.txt"))
    words: list[str] = []
    for _, text in files:
        words.extend(tokenize(text, config.level))
    T = config.seq_len
    split = int(round(len(words) * (1.0 - config.holdout)))
    if split <= T or len(words) - split <= T:
        raise InvalidDatasetError(
            f"corpus {corpus} has {len(words)} {config.level} tokens: too few for windows of "
            f"{T} in both the training part and the held-out {config.holdout:.0%}; give more text "
            "or a smaller --T"
        )
    train_words, test_words = words[:split], words[split:]
    common = [w for w, _ in Counter(train_words).most_common(config.vocab_size - 1)]
    vocabulary = sorted(common) + [UNKNOWN]
    K = len(vocabulary)
    unk = K - 1
    index = {w: i for i, w in enumerate(vocabulary)}
    train_stream = np.fromiter((index.get(w, unk) for w in train_words), np.int64, split)
    test_stream = np.fromiter((index.get(w, unk) for w in test_words), np.int64, len(test_words))
    stride = T if config.stride is None else config.stride
    train_windows, train_labels = cut_windows(train_stream, T, stride)
    test_windows, test_labels = cut_windows(test_stream, T, stride)
    if config.unk == "drop-labels":
        keep = test_labels != unk
        test_windows, test_labels = test_windows[keep], test_labels[keep]
        keep = train_labels != unk
        train_windows, train_labels = train_windows[keep], train_labels[keep]
    realizable = (train_windows == train_labels[:, None]).any(axis=1)
    if not realizable.any() or test_labels.size == 0:
        raise InvalidDatasetError(
            f"no realizable training window (label in its window) or no held-out window in "
            f"{corpus} at K={config.vocab_size}, T={T}; give more text, a larger --T or --K"
        )
    d = config.embedding_dim
    embeddings = (
        make_embeddings("onehot", K)
        if d is None
        else make_embeddings("random", K, d, seed=config.seed)
    )
    train_ds = Dataset(train_windows[realizable], train_labels[realizable], embeddings)
    unigram = np.bincount(train_stream, minlength=K).astype(np.float64) + 1.0
    import scipy.sparse as sp

    bigram = sp.csr_matrix(
        (np.ones(split - 1), (train_stream[:-1], train_stream[1:])), shape=(K, K)
    )
    bigram.sum_duplicates()
    return TextData(
        files=len(files),
        n_tokens=len(words),
        split=split,
        vocabulary=vocabulary,
        stride=stride,
        train_dataset=train_ds,
        train_labels=train_labels,
        train_realizable=realizable,
        test_tokens=test_windows,
        test_labels=test_labels,
        unigram=unigram,
        bigram=bigram,
        train_stream=train_stream,
    )
