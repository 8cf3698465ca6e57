"""Next-token datasets from plain text (real data, outside the theorem's assumptions).

:func:`text_dataset` tokenises any plain-text file (or string) into words or characters, keeps
the ``vocab_size - 1`` most frequent ones plus an ``<unk>`` token, and cuts the token stream into
windows of ``seq_len`` tokens labelled by the token that follows. Real text breaks the
realizability assumption (the next word is usually not in the window), so such windows are
dropped by default (``on_unrealizable="drop"``); ``"keep"`` keeps them for experiments on the
unrealizable case.

Project Gutenberg header and footer lines (``*** START OF ...`` / ``*** END OF ...``) are removed
when present.

A small public-domain corpus ships with the package (Shakespeare's sonnets, see
``attnmech/data/corpus/README.md`` for its source and licence): :func:`bundled_corpus` gives its
path, and :func:`corpus_path` lets the command line accept either a path or such a name.
"""

from __future__ import annotations

import os
import numbers
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .._choices import TEXT_LEVELS
from .._validation import FLAG, Interval, Options, check_params, register
from ..errors import FileFormatError, InvalidDatasetError, InvalidParameterError
from .dataset import Dataset, check_memory
from .generators import make_embeddings

__all__ = [
    "BUNDLED_CORPORA",
    "TextDataset",
    "bundled_corpus",
    "corpus_path",
    "tokenize",
    "text_dataset",
]

_POSITIVE_INT = Interval(numbers.Integral, 1, None)
TEXT_DATASET_PARAMS = register(
    "text_dataset",
    {
        "vocab_size": [Interval(numbers.Integral, 2, None)],
        "seq_len": [_POSITIVE_INT],
        "embedding_dim": [_POSITIVE_INT, None],
        "stride": [Interval(numbers.Integral, 1, 2**62), None],
        "level": [Options(TEXT_LEVELS)],
        "embeddings": [str],
        "unknown_labels": [FLAG],
        "max_samples": [_POSITIVE_INT, None],
    },
)

UNKNOWN = "<unk>"
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


BUNDLED_CORPORA: dict[str, str] = {
    "sonnets": "sonnets.txt",
}
"""Corpora shipped inside the package: name -> file in ``attnmech/data/corpus/``."""


def bundled_corpus(name: str = "sonnets") -> Path:
    """The path of a plain-text corpus shipped with attnmech.

    Parameters
    ----------
    name : str, default="sonnets"
        One of :data:`BUNDLED_CORPORA`: ``"sonnets"`` is Shakespeare's 154 sonnets (public
        domain; about 17,700 words).

    Returns
    -------
    Path
        An existing UTF-8 text file, usable wherever a text file is accepted
        (:func:`text_dataset`, ``attnmech make-dataset --text``, ``attnmech text``).

    Raises
    ------
    InvalidParameterError
        ``name`` is not a bundled corpus (the message lists the names).

    Examples
    --------
    >>> path = bundled_corpus("sonnets")
    >>> path.name, path.read_text(encoding="utf-8").splitlines()[0]
    ('sonnets.txt', 'THE SONNETS')
    """
    if not isinstance(name, str):
        raise InvalidParameterError(
            f"bundled_corpus: name must be one of {sorted(BUNDLED_CORPORA)}, got {name!r}"
        )
    if name not in BUNDLED_CORPORA:
        raise InvalidParameterError(
            f"no bundled corpus named {name!r}; the bundled corpora are: "
            + ", ".join(sorted(BUNDLED_CORPORA))
        )
    from importlib.resources import files

    resource = files("attnmech").joinpath("data", "corpus", BUNDLED_CORPORA[name])
    path = Path(str(resource))
    if not path.is_file():  # an installation without its package data
        raise FileFormatError(
            f"the bundled corpus {name!r} is missing from this installation ({path}); reinstall "
            "attnmech, or give the path of a plain-text file instead",
            path=str(path),
        )
    return path


def corpus_path(source: str | os.PathLike[str]) -> Path:
    """A text source given on the command line: an existing file or folder, or a bundled name.

    An existing path wins over a bundled name, so a local file called ``sonnets`` is read as
    such.

    Raises
    ------
    FileFormatError
        ``source`` is neither an existing path nor the name of a bundled corpus.

    Examples
    --------
    >>> corpus_path("sonnets") == bundled_corpus("sonnets")
    True
    """
    path = Path(source)
    if path.exists():
        return path
    if str(source) in BUNDLED_CORPORA:
        return bundled_corpus(str(source))
    raise FileFormatError(
        f"text file {path} does not exist; give a plain-text file, a folder of .txt files, or "
        "the name of a bundled corpus (" + ", ".join(sorted(BUNDLED_CORPORA)) + ")",
        path=str(path),
    )


def _strip_gutenberg(text: str) -> str:
    start = re.search(r"^\*\*\* ?START OF.*$", text, flags=re.MULTILINE | re.IGNORECASE)
    end = re.search(r"^\*\*\* ?END OF.*$", text, flags=re.MULTILINE | re.IGNORECASE)
    lo = start.end() if start else 0
    hi = end.start() if end and (not start or end.start() > lo) else len(text)
    return text[lo:hi]


def _looks_like_path(source: str) -> bool:
    if not source or len(source) >= 4096 or any(c.isspace() for c in source):
        return False
    return os.sep in source or "/" in source or bool(re.search(r"\.[A-Za-z0-9]{1,5}$", source))


def _read_source(source: object) -> str:
    """The text of ``source`` (a file name or the text itself); see :func:`text_dataset`."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        if not path.is_file():
            raise FileFormatError(
                f"text file {path} does not exist (or is not a file); give an existing plain-text "
                "file, or pass the text itself as a string with whitespace",
                path=str(path),
            )
        from .._io import read_text_bounded  # a quarter of the available memory at most

        return read_text_bounded(path, what="text file", hint="convert it to UTF-8 first")
    if isinstance(source, str):
        return source
    raise InvalidParameterError(
        f"source must be a path or a string of text, got {type(source).__name__}"
    )


def tokenize(text: str, level: Literal["word", "char"] = "word") -> list[str]:
    """Lower-cased words (letters and inner apostrophes) or characters (whitespace folded).

    Examples
    --------
    >>> tokenize("To be, or not to be: that's the question.")
    ['to', 'be', 'or', 'not', 'to', 'be', "that's", 'the', 'question']
    """
    if level == "word":
        return _WORD.findall(text.lower())
    if level == "char":
        return list(re.sub(r"\s+", " ", text.lower()).strip())
    raise InvalidDatasetError(f"level must be 'word' or 'char', got {level!r}")


@dataclass(frozen=True, slots=True, eq=False)
class TextDataset:
    """A dataset cut from text, with its vocabulary.

    Attributes
    ----------
    dataset : Dataset
    vocabulary : list of str
        Token names by id; the last one is ``<unk>``.
    n_windows : int
        Windows before unrealizable ones were dropped.
    """

    dataset: Dataset
    vocabulary: list[str]
    n_windows: int

    def decode(self, token_ids: object) -> str:
        """Token ids back to text (words joined by spaces)."""
        ids = np.asarray(token_ids, dtype=np.int64).ravel()
        return " ".join(self.vocabulary[int(i)] for i in ids)


def text_dataset(
    source: str | os.PathLike[str],
    *,
    vocab_size: int,
    seq_len: int,
    embedding_dim: int | None = None,
    level: Literal["word", "char"] = "word",
    embeddings: str = "random",
    stride: int | None = None,
    max_samples: int | None = None,
    on_unrealizable: Literal["drop", "keep", "repair"] = "drop",
    unknown_labels: bool = True,
    seed: int = 0,
) -> TextDataset:
    """Cut a text into (window, next token) samples.

    Parameters
    ----------
    source : path to a plain-text file, or the text itself
        A ``Path``, or a ``str`` without whitespace that contains a path separator or ends in a
        file suffix (``"play.txt"``), is a file name: it must exist and be UTF-8 text. Any other
        ``str`` is the text itself.
    vocab_size : int
        Number of tokens, ``<unk>`` included (the ``vocab_size - 1`` most frequent are kept).
    seq_len : int
        Window length T.
    embedding_dim : int, optional
        Required unless ``embeddings="onehot"`` (then d = the vocabulary size).
    level : {"word", "char"}
    embeddings : {"random", "ortho", "equicorr", "onehot"}
        ``"onehot"``: implicit one-hot embeddings (nothing ``K x K`` is stored; the theory is
        solved in token space).
    stride : int, optional
        Step between window starts (default: ``seq_len``, non-overlapping windows).
    max_samples : int, optional
        Keep at most this many samples (the first ones, after dropping unrealizable windows).
    on_unrealizable : {"drop", "keep", "repair"}
    unknown_labels : bool, default=True
        Keep windows whose next token is ``<unk>``; False drops them (so that what is learned,
        and generated, are real tokens).
    seed : int
        Seed of the embeddings (and of label repair).

    Examples
    --------
    >>> td = text_dataset("a b a c a b a c", vocab_size=4, seq_len=3, embedding_dim=4, stride=1)
    >>> td.vocabulary, td.n_windows, td.dataset.n_samples  # 3 of 5 windows miss their label
    (['a', 'b', 'c', '<unk>'], 5, 2)
    """
    check_params(
        {"level": level, "embeddings": embeddings, "unknown_labels": unknown_labels},
        TEXT_DATASET_PARAMS,
        where="text_dataset",
    )
    text = _read_source(source)
    if embedding_dim is None and embeddings != "onehot":
        raise InvalidParameterError(f"{embeddings} embeddings need embedding_dim")
    check_params(
        {
            "vocab_size": vocab_size,
            "seq_len": seq_len,
            "embedding_dim": embedding_dim,
            "stride": stride,
            "max_samples": max_samples,
        },
        TEXT_DATASET_PARAMS,
        where="text_dataset",
    )
    words = tokenize(_strip_gutenberg(text), level)
    if len(words) <= seq_len:
        raise InvalidDatasetError(
            f"the text has {len(words)} tokens, too few for windows of {seq_len} plus a label"
        )
    common = [w for w, _ in Counter(words).most_common(vocab_size - 1)]
    vocabulary = sorted(common) + [UNKNOWN]
    index = {w: i for i, w in enumerate(vocabulary)}
    unk = len(vocabulary) - 1
    stream = np.fromiter((index.get(w, unk) for w in words), dtype=np.int64, count=len(words))
    step = seq_len if stride is None else int(stride)
    starts = np.arange(0, stream.size - seq_len, step)
    check_memory(
        8.0 * starts.size * seq_len,
        f"{starts.size} windows of {seq_len} tokens",
        "use a larger stride, a shorter seq_len or a shorter text",
    )
    windows = stream[starts[:, None] + np.arange(seq_len)[None, :]]  # (n, T)
    labels = stream[starts + seq_len]
    if not unknown_labels:
        known = labels != unk
        windows, labels = windows[known], labels[known]
        if labels.size == 0:
            raise InvalidDatasetError("every window is labelled <unk>; raise vocab_size")
    dim = None if embeddings == "onehot" else embedding_dim
    E = make_embeddings(embeddings, len(vocabulary), dim, seed=seed)
    dataset = Dataset(windows, labels, E, on_unrealizable=on_unrealizable, seed=seed)
    if max_samples is not None and dataset.n_samples > max_samples:
        dataset = dataset.subset(np.arange(max_samples))
    return TextDataset(dataset=dataset, vocabulary=vocabulary, n_windows=int(labels.size))
