"""Held-out next-token prediction on real text: the theory, a trained layer and baselines.

:func:`run_text` reads a corpus (a ``.txt`` file or a folder of them), keeps the first
``1 - holdout`` of the token stream (by position) for training and the rest for testing, builds
the training windows (one-hot embeddings by default), solves the theory in token space, trains the
layer with the theory metrics, and evaluates on the held-out windows:

- next-token accuracy and mean log-loss of the trained layer, of the automaton (``R -> infinity``
  and at the fitted ``R`` of the last step), and of baselines: the most recent token (copy), the
  most frequent token of the window, uniform over the window's distinct tokens, the training
  unigram restricted to the window, and a bigram model on the last token (not window-restricted);
- the total-variation distance between the trained layer and the automaton;
- the fraction of held-out windows whose label is in the window (realizable).

Every held-out number is given on four subsets: all windows, label in the window, label not
``<unk>``, and both.

Conventions (documented in ``REPORT.md`` too):

- **accuracy** with ties: a predictor whose top probability is shared by ``m`` tokens scores
  ``1 / m`` when the label is one of them (the expected accuracy of a random tie-break);
- **log-loss** is averaged over the windows of the subset whose label is in the window (the only
  ones where the window-restricted predictors give it a positive probability); the bigram's
  log-loss (add-one smoothing over the vocabulary) is over every window of the subset. ``copy``
  is a point prediction and has no log-loss;
- ``--unk drop-labels`` (default): windows labelled ``<unk>`` are left out of training and of
  evaluation; ``<unk>`` stays an ordinary context token. ``keep`` keeps them everywhere. Under
  ``drop-labels`` the baselines never predict ``<unk>`` (no label is ``<unk>``); ``copy`` then
  copies the most recent other token.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, atomic_write_text, check_writable
from ..data.dataset import Dataset, OneHotEmbeddings, make_embeddings
from ..errors import AttnmechError, FileFormatError, InvalidDatasetError, InvalidParameterError
from ..data.text import UNKNOWN, _strip_gutenberg, tokenize

__all__ = [
    "TextRunConfig",
    "TextRunResult",
    "TextData",
    "run_text",
    "prepare_text",
    "read_corpus",
    "evaluate_heldout",
    "SUBSETS",
    "PREDICTORS",
]

logger = logging.getLogger(__name__)

SUBSETS = ("all", "label_in_window", "label_not_unk", "both")
"""The held-out subsets every number is reported on."""

PREDICTORS = (
    "layer",
    "automaton",
    "automaton_fitted_R",
    "copy_recent",
    "most_frequent",
    "uniform",
    "unigram",
    "bigram",
)
"""Every predictor evaluated on the held-out windows."""


@dataclass(frozen=True, slots=True)
class TextRunConfig:
    """What :func:`run_text` does (the ``attnmech text`` options).

    Parameters
    ----------
    vocab_size : int, default=1000
        K: the ``K - 1`` most frequent training tokens plus ``<unk>``.
    seq_len : int, default=16
        T: window length.
    level : {"word", "char"}, default="word"
    embeddings : str, default="onehot"
        ``"onehot"`` or ``"random:d=256"`` (random unit embeddings of dimension d).
    holdout : float, default=0.1
        Fraction of the token stream (its end) kept for testing.
    stride : int or None, default=None
        Step between window starts (default ``seq_len``: non-overlapping windows).
    num_steps : int, default=2000
    learning_rate : float, default=0.1
        Normalised gradient descent (the paper's optimiser), float64.
    unk : {"drop-labels", "keep"}, default="drop-labels"
    log_every : int or None, default=None
        Metric logging period (default: ``num_steps // 20``).
    finite_trajectory : bool or None, default=None
        Also train ``W_fin(t)`` for the ``fin_gap_traj`` metric (default: only when K <= 2000).
    n_examples : int, default=4
        Held-out windows drawn in the attention figure.
    n_prompts : int, default=3
    generate_length : int, default=24
    seed : int, default=0
    num_threads : int or None, default=1
        torch threads while training (None: torch's setting). Each step works on the pair
        entries only (a few hundred thousand numbers), where extra threads cost more than they
        give, and on a busy machine they stall every op (measured: 7 ms instead of 0.3 ms per
        op at K = 5000 with two threads on the shared 2-core machine).
    """

    vocab_size: int = 1000
    seq_len: int = 16
    level: str = "word"
    embeddings: str = "onehot"
    holdout: float = 0.1
    stride: int | None = None
    num_steps: int = 2000
    learning_rate: float = 0.1
    unk: str = "drop-labels"
    log_every: int | None = None
    finite_trajectory: bool | None = None
    n_examples: int = 4
    n_prompts: int = 3
    generate_length: int = 24
    seed: int = 0
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        ints = {"vocab_size": 3, "seq_len": 2, "num_steps": 1, "n_examples": 0, "n_prompts": 0}
        ints["generate_length"] = 0
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidParameterError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.level not in ("word", "char"):
            raise InvalidParameterError(f"level must be 'word' or 'char', got {self.level!r}")
        if self.unk not in ("drop-labels", "keep"):
            raise InvalidParameterError(f"unk must be 'drop-labels' or 'keep', got {self.unk!r}")
        if not (0.0 < float(self.holdout) < 1.0):
            raise InvalidParameterError(f"holdout must lie in (0, 1), got {self.holdout!r}")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise InvalidParameterError(
                f"learning_rate must be a positive number, got {self.learning_rate!r}"
            )
        if self.stride is not None and (not isinstance(self.stride, int) or self.stride < 1):
            raise InvalidParameterError(f"stride must be a positive integer, got {self.stride!r}")
        self.embedding_dim  # noqa: B018 (parses the embeddings string, raising when bad)

    @property
    def embedding_dim(self) -> int | None:
        """None for one-hot embeddings, else the ``d`` of ``random:d=D``."""
        if self.embeddings == "onehot":
            return None
        prefix = "random:d="
        if self.embeddings.startswith(prefix):
            try:
                d = int(self.embeddings[len(prefix) :])
            except ValueError:
                d = 0
            if d >= 1:
                return d
        raise InvalidParameterError(
            f"embeddings must be 'onehot' or 'random:d=D' (e.g. random:d=256), got "
            f"{self.embeddings!r}"
        )


@dataclass(frozen=True, slots=True, eq=False)
class TextRunResult:
    """What :func:`run_text` computed.

    Attributes
    ----------
    results : dict
        The content of ``results.json``.
    vocabulary : list of str
    train_dataset : Dataset
    test_tokens : ndarray of int64 of shape (n_test, T)
    test_labels : ndarray of int64 of shape (n_test,)
    W : ndarray of shape (d, d)
        The trained layer.
    theory : Theory or None
        None when the theory could not be solved (``results["theory"]["error"]`` says why).
    out_dir : Path or None
    """

    results: dict[str, Any]
    vocabulary: list[str]
    train_dataset: Dataset
    test_tokens: np.ndarray
    test_labels: np.ndarray
    W: np.ndarray
    theory: Any
    out_dir: Path | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- corpus
def read_corpus(corpus: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(name, text) of a ``.txt`` file, or of every ``.txt`` file of a folder (sorted by name).

    Project Gutenberg headers and footers are removed.

    Raises
    ------
    FileFormatError
        If the path does not exist, a folder holds no ``.txt`` file, or a file is not UTF-8 text.
    """
    path = Path(corpus)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.txt") if p.is_file())
        if not files:
            raise FileFormatError(
                f"corpus folder {path} holds no .txt file; give a .txt file or a folder of them",
                path=str(path),
            )
    elif path.is_file():
        files = [path]
    else:
        raise FileFormatError(
            f"corpus {path} does not exist; give a .txt file or a folder of .txt files",
            path=str(path),
        )
    out = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise FileFormatError(
                f"corpus file {file} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "convert it to UTF-8 or leave it out of the folder",
                path=str(file),
            ) from None
        except OSError as exc:
            raise FileFormatError(
                f"cannot read corpus file {file}: {exc.strerror}", path=str(file)
            ) from None
        out.append((file.name, _strip_gutenberg(text)))
    return out


def _windows(stream: np.ndarray, T: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, max(stream.size - T, 0), stride)
    windows = stream[starts[:, None] + np.arange(T)[None, :]]  # (n, T)
    return windows.reshape(-1, T), stream[starts + T]


# ---------------------------------------------------------------------------------- predictors
def _position_scores(W: np.ndarray, tokens: np.ndarray, E: Any) -> np.ndarray:
    """Scores ``x_t^T W x_T`` of every position of full windows (n, T)."""
    query = tokens[:, -1]
    if E is None or isinstance(E, OneHotEmbeddings):
        return W[tokens, query[:, None]]
    Eq = E[query] @ W.T  # (n, d): W e_q
    return np.einsum("ntd,nd->nt", E[tokens], Eq)


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(axis=1, keepdims=True)


def _label_mass(weights: np.ndarray, tokens: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Probability of the label: the weights of the positions holding it."""
    return (weights * (tokens == labels[:, None])).sum(axis=1)


def _token_masses(weights: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Per position, the total weight of its token in the window (n, T)."""
    same = tokens[:, :, None] == tokens[:, None, :]  # (n, T, T)
    return np.einsum("nts,ns->nt", same, weights)


def _subset_row(label: str, cells: list[str]) -> str:
    """One markdown row of the held-out table: the label, then one cell per subset."""
    return f"| {label} | " + " | ".join(cells) + " |"


def _first_occurrence(tokens: np.ndarray) -> np.ndarray:
    """(N, T) bool: position t holds the first occurrence of its token in the window."""
    T = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]  # (N, t, s)
    earlier = np.tri(T, k=-1, dtype=bool)  # s < t
    return ~(same & earlier).any(axis=2)


def _accuracy(weights: np.ndarray, tokens: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Expected accuracy under a random tie-break among the window's top tokens (per window)."""
    mass = _token_masses(weights, tokens)
    top = mass.max(axis=1, keepdims=True)
    is_top = mass >= top - 1e-12 * np.maximum(top, 1e-300)
    # number of distinct top tokens: count positions, each token once (first occurrence)
    first = _first_occurrence(tokens)
    n_top = (is_top & first).sum(axis=1)
    label_top = (is_top & (tokens == labels[:, None])).any(axis=1)
    return label_top / np.maximum(n_top, 1)


def _tv(weights_a: np.ndarray, weights_b: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Total-variation distance between two distributions given as position weights."""
    diff = _token_masses(weights_a - weights_b, tokens)
    first = _first_occurrence(tokens)
    return 0.5 * (np.abs(diff) * first).sum(axis=1)


def _automaton_weights(theory: Any, tokens: np.ndarray, R: float | None) -> np.ndarray:
    return np.asarray(theory.automaton().position_weights(tokens, tokens[:, -1], R=R))


def _predictor_weights(
    tokens: np.ndarray,
    *,
    W: np.ndarray,
    E: Any,
    theory: Any,
    fitted_R: float | None,
    unigram: np.ndarray,
    exclude: int | None = None,
) -> dict[str, np.ndarray]:
    """Position weights (n, T) of every window-restricted predictor.

    ``exclude``: a token the baselines never predict (``<unk>`` under ``--unk drop-labels``, where
    no label is ``<unk>``), unless the window holds nothing else.
    """
    n, T = tokens.shape
    allowed = np.ones((n, T))
    if exclude is not None:
        allowed = (tokens != exclude).astype(np.float64)
        allowed[allowed.sum(axis=1) == 0] = 1.0
    out: dict[str, np.ndarray] = {"layer": _softmax_rows(_position_scores(W, tokens, E))}
    if theory is not None:
        out["automaton"] = _automaton_weights(theory, tokens, None)
        if fitted_R is not None and np.isfinite(fitted_R):
            out["automaton_fitted_R"] = _automaton_weights(theory, tokens, float(fitted_R))
    copy = np.zeros((n, T))
    recent = T - 1 - np.argmax(allowed[:, ::-1] > 0, axis=1)  # the last allowed position
    copy[np.arange(n), recent] = 1.0
    out["copy_recent"] = copy
    out["most_frequent"] = allowed / allowed.sum(axis=1, keepdims=True)  # = token counts
    counts = _token_masses(np.ones((n, T)), tokens)
    uniform = allowed / counts
    out["uniform"] = uniform / uniform.sum(axis=1, keepdims=True)
    uni = allowed * unigram[tokens] / counts
    out["unigram"] = uni / uni.sum(axis=1, keepdims=True)
    return out


def _subset_masks(labels: np.ndarray, in_window: np.ndarray, unk: int) -> dict[str, np.ndarray]:
    not_unk = labels != unk
    return {
        "all": np.ones(labels.size, dtype=bool),
        "label_in_window": in_window,
        "label_not_unk": not_unk,
        "both": in_window & not_unk,
    }


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean over ``mask`` (None when empty or infinite: JSON has no infinity)."""
    if not mask.any():
        return None
    value = float(values[mask].mean())
    return value if np.isfinite(value) else None


def evaluate_heldout(
    tokens: np.ndarray,
    labels: np.ndarray,
    *,
    W: np.ndarray,
    E: Any,
    theory: Any,
    fitted_R: float | None,
    unigram: np.ndarray,
    bigram: Any,
    unk: int,
    exclude_unk: bool = False,
) -> dict[str, Any]:
    """Accuracy, log-loss and TV of every predictor on held-out windows, per subset.

    Parameters
    ----------
    tokens : ndarray of int of shape (n, T)
        Full windows (no padding); the last token is the query.
    labels : ndarray of int of shape (n,)
    W : ndarray of shape (d, d)
        The trained layer.
    E : OneHotEmbeddings or ndarray of shape (K, d)
    theory : Theory or None
    fitted_R : float or None
        ``R`` of :func:`attnmech.layer.metrics.fitted_scale` at the end of training.
    unigram : ndarray of shape (K,)
        Training token frequencies (positive).
    bigram : scipy.sparse matrix of shape (K, K)
        Training counts of (previous token, next token).
    unk : int
        Id of ``<unk>``.
    exclude_unk : bool, default=False
        The baselines never predict ``<unk>`` (for ``--unk drop-labels``).

    Returns
    -------
    dict
        ``accuracy`` / ``log_loss`` / ``count``: subset -> predictor -> value;
        ``zero_probability``: subset -> predictor -> fraction of the subset's in-window labels
        given probability 0 (their log-loss is infinite and left out of ``log_loss``, which is
        then None for that predictor: the automaton at R = infinity when it retrieves another
        SCC);
        ``tv_layer_automaton`` (and ``tv_layer_automaton_fitted_R``): subset -> value.
    """
    in_window = (tokens == labels[:, None]).any(axis=1)
    masks = _subset_masks(labels, in_window, unk)
    weights = _predictor_weights(
        tokens,
        W=W,
        E=E,
        theory=theory,
        fitted_R=fitted_R,
        unigram=unigram,
        exclude=unk if exclude_unk else None,
    )
    acc: dict[str, np.ndarray] = {}
    loss: dict[str, np.ndarray] = {}
    for name, w in weights.items():
        acc[name] = _accuracy(w, tokens, labels)
        if name != "copy_recent":
            with np.errstate(divide="ignore"):
                loss[name] = -np.log(_label_mass(w, tokens, labels))
    # bigram on the last token, add-one smoothing over the vocabulary (not window-restricted)
    K = unigram.size
    rows = bigram[tokens[:, -1]]  # (n, K) sparse
    row_total = np.asarray(rows.sum(axis=1)).ravel()
    best = np.asarray(rows.max(axis=1).todense()).ravel()
    label_count = np.asarray(rows[np.arange(labels.size), labels]).ravel()
    n_best = np.asarray((rows == rows.max(axis=1).todense()).sum(axis=1)).ravel()
    n_best = np.where(best > 0, n_best, K)  # an unseen previous token: all K tie
    acc["bigram"] = np.where(label_count == best, 1.0 / np.maximum(n_best, 1), 0.0)
    loss["bigram"] = -np.log((label_count + 1.0) / (row_total + K))
    out: dict[str, Any] = {"accuracy": {}, "log_loss": {}, "zero_probability": {}, "count": {}}
    tv = None
    if "automaton" in weights:
        tv = _tv(weights["layer"], weights["automaton"], tokens)
        out["tv_layer_automaton"] = {}
    tv_R = None
    if "automaton_fitted_R" in weights:
        tv_R = _tv(weights["layer"], weights["automaton_fitted_R"], tokens)
        out["tv_layer_automaton_fitted_R"] = {}
    if "automaton" in weights:  # where the two agree: by whether the query was a training query
        top_layer = tokens[
            np.arange(labels.size), _token_masses(weights["layer"], tokens).argmax(1)
        ]
        auto_mass = _token_masses(weights["automaton"], tokens)
        top_auto = auto_mass >= auto_mass.max(axis=1, keepdims=True) - 1e-12
        agree = top_auto[np.arange(labels.size), np.argmax(tokens == top_layer[:, None], axis=1)]
        seen = np.zeros(unigram.size, dtype=bool)
        seen[np.asarray(theory.graphs.queries)] = True
        query_seen = seen[tokens[:, -1]]
        out["by_query"] = {}
        for name, group in (("seen", query_seen), ("unseen", ~query_seen)):
            out["by_query"][name] = {
                "count": int(group.sum()),
                "top_token_agreement": _mean(agree.astype(np.float64), group),
                "tv_layer_automaton": _mean(tv, group) if tv is not None else None,
                "accuracy_layer": _mean(acc["layer"], group),
                "accuracy_automaton": _mean(acc["automaton"], group),
            }
        out["top_token_agreement"] = {}
    for subset, mask in masks.items():
        out["count"][subset] = int(mask.sum())
        if "top_token_agreement" in out:
            out["top_token_agreement"][subset] = _mean(agree.astype(np.float64), mask)
        out["accuracy"][subset] = {name: _mean(a, mask) for name, a in acc.items()}
        out["log_loss"][subset] = {
            name: _mean(v, mask if name == "bigram" else mask & in_window)
            for name, v in loss.items()
        }
        out["zero_probability"][subset] = {
            name: _mean(np.isinf(v).astype(np.float64), mask & in_window)
            for name, v in loss.items()
            if name != "bigram"
        }
        if tv is not None:
            out["tv_layer_automaton"][subset] = _mean(tv, mask)
        if tv_R is not None:
            out["tv_layer_automaton_fitted_R"][subset] = _mean(tv_R, mask)
    return out


# ---------------------------------------------------------------------------------- pipeline
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stage_bar(total: int, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="text", unit="stage", file=sys.stderr)


def _generate(
    next_weights: Any, prompt: np.ndarray, T: int, length: int, rng: np.random.Generator
) -> list[int]:
    """Sample ``length`` tokens; each step sees the last ``T`` tokens (the window)."""
    seq = [int(t) for t in prompt]
    for _ in range(length):
        window = np.asarray(seq[-T:], dtype=np.int64)[None, :]
        w = next_weights(window)[0]
        seq.append(int(window[0, rng.choice(window.shape[1], p=w / w.sum())]))
    return seq


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

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def unk(self) -> int:
        return len(self.vocabulary) - 1


def prepare_text(corpus: str | os.PathLike[str], config: TextRunConfig) -> TextData:
    """Read ``corpus``, split it by position, build the vocabulary and the windows.

    The vocabulary is the ``K - 1`` most frequent tokens of the training part (sorted) plus
    ``<unk>``; windows are cut every ``stride`` tokens in each part separately.
    """
    files = read_corpus(corpus)
    words: list[str] = []
    for _, text in files:
        words.extend(tokenize(text, config.level))  # type: ignore[arg-type]
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
    train_windows, train_labels = _windows(train_stream, T, stride)
    test_windows, test_labels = _windows(test_stream, T, stride)
    drop_unk = config.unk == "drop-labels"
    if drop_unk:
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
    )


def run_text(
    corpus: str | os.PathLike[str],
    config: TextRunConfig | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> TextRunResult:
    """Train on the first part of a corpus and predict its held-out end (see the module doc).

    Parameters
    ----------
    corpus : path-like
        A ``.txt`` file or a folder of ``.txt`` files (read in name order and concatenated).
    config : TextRunConfig, optional
    out_dir : path-like, optional
        Where to write ``results.json``, ``REPORT.md`` and the figures (``*.png``).
    progress : bool, default=False
        Progress bars on stderr.

    Returns
    -------
    TextRunResult

    Raises
    ------
    FileFormatError
        Unreadable corpus.
    InvalidDatasetError
        Too little text, or no realizable training window.
    OutputError
        ``out_dir`` cannot be written (checked before any work).
    """
    from threadpoolctl import threadpool_limits

    config = TextRunConfig() if config is None else config
    started = time.perf_counter()
    out_path = Path(out_dir) if out_dir is not None else None
    if out_path is not None:
        check_writable(out_path / "results.json", what="text run output")
    bar = _stage_bar(5, progress)
    timings: dict[str, float] = {}

    # ---- data
    t0 = time.perf_counter()
    data = prepare_text(corpus, config)
    files, words, vocabulary = data.files, data.n_tokens, data.vocabulary
    K, unk, T, stride = data.vocab_size, data.unk, config.seq_len, data.stride
    train_ds, unigram, bigram = data.train_dataset, data.unigram, data.bigram
    train_labels, realizable = data.train_labels, data.train_realizable
    test_windows, test_labels = data.test_tokens, data.test_labels
    timings["data"] = time.perf_counter() - t0
    logger.info(
        "text: %d training windows (%d realizable), %d held-out, K=%d",
        train_labels.size,
        train_ds.n_samples,
        test_labels.size,
        K,
    )
    if bar is not None:
        bar.update(1)

    # ---- theory
    from ..theory.solve import solve

    t0 = time.perf_counter()
    theory = None
    theory_error = None
    try:
        with threadpool_limits(limits=1):
            theory = solve(train_ds)
    except AttnmechError as exc:  # e.g. coupled embeddings too large: say so, go on
        theory_error = str(exc)
        logger.warning("text: the theory could not be solved: %s", exc)
    timings["theory"] = time.perf_counter() - t0
    if bar is not None:
        bar.update(1)

    # ---- training
    from ..layer.training import TrainConfig, train

    t0 = time.perf_counter()
    log_every = config.log_every or max(config.num_steps // 20, 1)
    track_finite = config.finite_trajectory
    if track_finite is None:
        track_finite = K <= 2000
    train_config = TrainConfig(
        optimizer="ngd",
        learning_rate=config.learning_rate,
        num_steps=config.num_steps,
        log_every=log_every,
        seed=config.seed,
        num_threads=config.num_threads,
    )
    run = train(
        train_ds,
        train_config,
        theory=theory,
        progress=progress,
        finite_path=bool(track_finite),
    )
    W = np.asarray(run.W, dtype=np.float64)
    timings["train"] = time.perf_counter() - t0
    if bar is not None:
        bar.update(1)

    # ---- held-out evaluation
    t0 = time.perf_counter()
    history = {k: np.asarray(v) for k, v in run.history.items()}

    def last(key: str) -> float | None:
        if key not in history:
            return None
        value = float(np.asarray(history[key]).reshape(len(history[key]), -1)[-1, 0])
        return value if np.isfinite(value) else None

    fitted_R = last("fitted_R")
    E = train_ds.embedding_table
    heldout = evaluate_heldout(
        test_windows,
        test_labels,
        W=W,
        E=E,
        theory=theory,
        fitted_R=fitted_R,
        unigram=unigram,
        bigram=bigram,
        unk=unk,
        exclude_unk=config.unk == "drop-labels",
    )
    in_window = (test_windows == test_labels[:, None]).any(axis=1)
    timings["evaluate"] = time.perf_counter() - t0
    if bar is not None:
        bar.update(1)

    results: dict[str, Any] = {
        "realizable_fraction": float(in_window.mean()),
        "n_train": int(train_ds.n_samples),
        "n_test": int(test_labels.size),
        "theory": {
            "solve_seconds": timings["theory"],
            "error": theory_error,
        },
        "train": {
            "corr_svm": last("corr_svm"),
            "top_scc_mass": last("top_scc_mass"),
            "tv_automaton": last("automaton_tv"),
            "fitted_R": fitted_R,
            "fin_gap": last("fin_gap"),
            "loss": last("loss"),
            "norm": last("norm"),
            "seconds": timings["train"],
            "steps": int(run.num_steps),
        },
        "heldout": {
            # every predictor is a key (None when it could not run, e.g. without a theory)
            "accuracy": {name: heldout["accuracy"]["all"].get(name) for name in PREDICTORS},
            "log_loss": {name: heldout["log_loss"]["all"].get(name) for name in PREDICTORS},
            "tv_layer_automaton": (heldout.get("tv_layer_automaton") or {}).get("all"),
            "tv_layer_automaton_fitted_R": (heldout.get("tv_layer_automaton_fitted_R") or {}).get(
                "all"
            ),
            "subsets": heldout,
        },
        "config": {
            "corpus": str(corpus),
            "files": files,
            "tokens": words,
            "vocab_size": K,
            "seq_len": T,
            "level": config.level,
            "embeddings": config.embeddings,
            "holdout": config.holdout,
            "stride": stride,
            "num_steps": config.num_steps,
            "learning_rate": config.learning_rate,
            "unk": config.unk,
            "n_train_windows": int(train_labels.size),
            "train_realizable_fraction": float(realizable.mean()),
            "seed": config.seed,
        },
        "timings": timings,
    }
    if theory is not None:
        graphs = theory.graphs
        results["theory"].update(
            {
                "svm_status": theory.svm.status.value,
                "fin_status": theory.finite.status.value,
                "n_sccs": int(graphs.n_sccs),
                "n_nontrivial_sccs": int((graphs.scc_size > 1).sum()),
                "dim_S_fin": int(theory.finite.dimension),
                "svm_norm": float(theory.svm.norm),
                "fin_norm": float(theory.finite.norm),
            }
        )
    result = TextRunResult(
        results=results,
        vocabulary=vocabulary,
        train_dataset=train_ds,
        test_tokens=test_windows,
        test_labels=test_labels,
        W=W,
        theory=theory,
        out_dir=out_path,
        history=history,
    )
    if out_path is not None:
        t0 = time.perf_counter()
        _write_report(result, config, out_path)
        timings["report"] = time.perf_counter() - t0
    if bar is not None:
        bar.update(1)
        bar.close()
    results["wall_seconds"] = time.perf_counter() - started
    results["peak_rss_mb"] = _peak_rss_mb()
    if out_path is not None:
        atomic_write_text(out_path / "results.json", json.dumps(results, indent=2) + "\n")
    return result


# ---------------------------------------------------------------------------------- report
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    plt.close(fig)


def _graph_figure(theory: Any, path: Path) -> dict[str, Any]:
    """SCC size distribution, priority depth per query and labels in non-trivial SCCs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graphs = theory.graphs
    sizes = np.asarray(graphs.scc_size)
    depth = np.zeros(graphs.vocab_size, dtype=np.int64)
    np.maximum.at(depth, graphs.scc_query, graphs.scc_level + 1)
    depth = depth[np.asarray(graphs.queries)]
    ds = theory.dataset
    label_scc = graphs.scc_of(ds.last_tokens, ds.labels)
    in_big = graphs.scc_size[label_scc] > 1
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    values, counts = np.unique(sizes, return_counts=True)
    axes[0].bar(values, counts, color="tab:blue")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("SCC size (tokens)")
    axes[0].set_ylabel("number of SCCs")
    axes[0].set_title("SCC sizes (all queries)")
    dv, dc = np.unique(depth, return_counts=True)
    axes[1].bar(dv, dc, color="tab:green")
    axes[1].set_xlabel("priority depth (levels of the condensation)")
    axes[1].set_ylabel("number of queries")
    axes[1].set_title("priority depth per query")
    frac = float(in_big.mean())
    axes[2].bar(
        ["label alone\n(hard retrieval)", "label in SCC > 1\n(soft composition)"],
        [1 - frac, frac],
        color=["tab:gray", "tab:orange"],
    )
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("fraction of training labels")
    axes[2].set_title("labels in non-trivial SCCs")
    fig.tight_layout()
    _save_figure(fig, path)
    return {
        "max_scc_size": int(sizes.max(initial=0)),
        "median_depth": float(np.median(depth)) if depth.size else 0.0,
        "max_depth": int(depth.max(initial=0)),
        "labels_in_nontrivial_scc": frac,
    }


def _attention_figure(result: TextRunResult, config: TextRunConfig, path: Path) -> list[int]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens, labels = result.test_tokens, result.test_labels
    in_window = (tokens == labels[:, None]).any(axis=1)
    rng = np.random.default_rng(config.seed)
    pool = np.flatnonzero(in_window) if in_window.any() else np.arange(labels.size)
    pick = np.sort(rng.choice(pool, size=min(config.n_examples, pool.size), replace=False))
    if pick.size == 0:
        return []
    E = result.train_dataset.embedding_table
    layer = _softmax_rows(_position_scores(result.W, tokens[pick], E))
    auto = _automaton_weights(result.theory, tokens[pick], None)
    fig, axes = plt.subplots(pick.size, 1, figsize=(12, 2.1 * pick.size), squeeze=False)
    x = np.arange(tokens.shape[1])
    for row, i in enumerate(pick.tolist()):
        ax = axes[row, 0]
        ax.bar(x - 0.2, layer[row], width=0.4, label="trained layer")
        ax.bar(x + 0.2, auto[row], width=0.4, label="automaton (R = inf)")
        ax.set_xticks(x)
        ax.set_xticklabels([result.vocabulary[t] for t in tokens[i]], rotation=40, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("attention")
        ax.set_title(f"held-out window {i}: next word '{result.vocabulary[labels[i]]}'", fontsize=9)
        if row == 0:
            ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    return pick.tolist()


def _write_report(result: TextRunResult, config: TextRunConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    r = result.results
    vocab = result.vocabulary
    lines = [
        "# Held-out next-token prediction on text",
        "",
        f"Corpus `{r['config']['corpus']}` ({r['config']['files']} files, "
        f"{r['config']['tokens']:,} {config.level} tokens); K = {r['config']['vocab_size']}, "
        f"T = {r['config']['seq_len']}, {config.embeddings} embeddings; first "
        f"{1 - config.holdout:.0%} for training, the rest held out; `--unk {config.unk}`.",
        "",
        f"- training windows: {r['config']['n_train_windows']:,}, of which "
        f"{r['n_train']:,} realizable (label in the window) are trained on",
        f"- held-out windows: {r['n_test']:,}; realizable fraction {r['realizable_fraction']:.3f}",
        f"- theory solved in {r['theory']['solve_seconds']:.2f} s"
        + (f" (not solved: {r['theory']['error']})" if r["theory"]["error"] else ""),
        f"- training: {r['train']['steps']} steps of normalised GD, lr {config.learning_rate}, "
        f"{r['train']['seconds']:.1f} s; final corr(W, W_svm) {_fmt(r['train']['corr_svm'])}, "
        f"top-SCC attention mass {_fmt(r['train']['top_scc_mass'])}, TV(layer, automaton at "
        f"fitted R) on training windows {_fmt(r['train']['tv_automaton'])}",
        "",
        "## Held-out accuracy (and log-loss) per subset",
        "",
        "Accuracy counts a tie among m top tokens as 1/m. Log-loss (in brackets): mean over the "
        "subset's windows whose label is in the window (bigram: over all the subset's windows, "
        "add-one smoothing); '-' where some such label gets probability 0 (the row 'P(label) = 0' "
        "gives how often, for the automaton). "
        + (
            "Under `--unk drop-labels` no label is `<unk>`, so the baselines (copy, most frequent, "
            "uniform, unigram) never predict `<unk>` either (copy: the most recent other token)."
            if config.unk == "drop-labels"
            else ""
        ),
        "",
    ]
    sub = r["heldout"]["subsets"]
    names = [p for p in PREDICTORS if p in sub["accuracy"]["all"]]
    lines.append(_subset_row("predictor", [f"{s} (n={sub['count'][s]:,})" for s in SUBSETS]))
    lines.append("|---" * (len(SUBSETS) + 1) + "|")
    for name in names:
        cells = [
            f"{_fmt(sub['accuracy'][s][name])} ({_fmt(sub['log_loss'][s].get(name), 2)})"
            for s in SUBSETS
        ]
        lines.append(_subset_row(name, cells))
    if "automaton" in sub["zero_probability"]["all"]:
        cells = [_fmt(sub["zero_probability"][s]["automaton"]) for s in SUBSETS]
        lines.append(_subset_row("automaton: P(label) = 0", cells))
    for key, label in (
        ("top_token_agreement", "layer's top token = automaton's"),
        ("tv_layer_automaton", "TV(layer, automaton)"),
        ("tv_layer_automaton_fitted_R", "TV(layer, automaton at fitted R)"),
    ):
        if key in sub:
            lines.append(_subset_row(label, [_fmt(sub[key][s]) for s in SUBSETS]))
    lines.append("")
    if "by_query" in sub:
        lines += [
            "By query (all held-out windows): was the window's last token a query of the training "
            "windows?",
            "",
            "| query | windows | top-token agreement | TV(layer, automaton) | accuracy layer | "
            "accuracy automaton |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in sub["by_query"].items():
            lines.append(
                f"| {name} | {row['count']:,} | {_fmt(row['top_token_agreement'])} | "
                f"{_fmt(row['tv_layer_automaton'])} | {_fmt(row['accuracy_layer'])} | "
                f"{_fmt(row['accuracy_automaton'])} |"
            )
        lines.append("")
    theory = result.theory
    if theory is not None:
        stats = _graph_figure(theory, out / "graphs.png")
        r["theory"].update(stats)
        lines += [
            "## Token-priority graphs of the training windows",
            "",
            f"{r['theory']['n_sccs']:,} SCCs over all queries, "
            f"{r['theory']['n_nontrivial_sccs']:,} with more than one token (largest "
            f"{stats['max_scc_size']}); priority depth per query: median "
            f"{stats['median_depth']:.0f}, "
            f"max {stats['max_depth']}; {stats['labels_in_nontrivial_scc']:.1%} of training "
            "labels sit in a non-trivial SCC of their query's graph.",
            "",
            "![SCC sizes, priority depth, labels in non-trivial SCCs](graphs.png)",
            "",
            "Largest SCCs (query word, level, size, members):",
            "",
            "| query | level | size | members |",
            "|---|---|---|---|",
        ]
        graphs = theory.graphs
        for scc in graphs.largest_sccs(10).tolist():
            if graphs.scc_size[scc] < 2:
                break
            members = graphs.scc_members(scc)
            shown = ", ".join(vocab[t] for t in members[:15])
            more = f", ... ({len(members)})" if len(members) > 15 else ""
            lines.append(
                f"| {vocab[int(graphs.scc_query[scc])]} | {int(graphs.scc_level[scc])} | "
                f"{len(members)} | {shown}{more} |"
            )
        lines.append("")
        picked = _attention_figure(result, config, out / "attention.png")
        if picked:
            lines += [
                "## Attention on held-out windows: trained layer vs automaton",
                "",
                "![attention](attention.png)",
                "",
            ]
    # generation
    if config.n_prompts and config.generate_length:
        rng = np.random.default_rng(config.seed + 1)
        T = result.test_tokens.shape[1]
        prompts = result.test_tokens[
            rng.choice(
                result.test_tokens.shape[0],
                size=min(config.n_prompts, len(result.test_tokens)),
                replace=False,
            )
        ]
        E = result.train_dataset.embedding_table

        def layer_next(window: np.ndarray) -> np.ndarray:
            return _softmax_rows(_position_scores(result.W, window, E))

        lines += [
            "## Generated text (sampled, the last T tokens as the window)",
            "",
        ]
        for k, prompt in enumerate(prompts):
            lines.append(f"**prompt {k + 1}:** {' '.join(vocab[t] for t in prompt)}")
            lines.append("")
            seq = _generate(layer_next, prompt, T, config.generate_length, np.random.default_rng(k))
            lines.append(f"- trained layer: ... {' '.join(vocab[t] for t in seq[T:])}")
            if theory is not None:

                def auto_next(window: np.ndarray) -> np.ndarray:
                    return _automaton_weights(theory, window, None)

                seq = _generate(
                    auto_next, prompt, T, config.generate_length, np.random.default_rng(k)
                )
                lines.append(f"- automaton: ... {' '.join(vocab[t] for t in seq[T:])}")
            lines.append("")
    atomic_write_text(out / "REPORT.md", "\n".join(lines) + "\n")
