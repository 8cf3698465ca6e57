"""Held-out evaluation of the text study: every predictor on four subsets, with intervals, and
the windows classified by what the training graph decides.

Conventions:

- **accuracy** with ties: a predictor whose top probability is shared by ``m`` tokens scores
  ``1 / m`` when the label is one of them (the expected accuracy of a random tie-break);
- **log-loss** of a window-restricted predictor is averaged over the subset's windows whose
  label is in the window (the only ones where it gives the label a positive probability); the
  n-gram models over the whole vocabulary (``bigram``, ``kn_bigram``, ``kn_trigram``) over every
  window of the subset. ``copy_recent`` is a point prediction and has no log-loss;
- **intervals**: 95% percentile bootstrap (1,000 resamples of the subset's windows) for every
  mean (accuracy, log-loss, TV), Wilson for every share;
- **decided windows**: the top ``W_svm`` score among the window's distinct tokens exceeds every
  other present token's by at least 1 (up to round-off ``1e-6``): the training graph orders the
  top token above all others, so the automaton's retrieval is a theorem's prediction there. The
  other windows are classified by why they are not decided (:data:`CATEGORIES`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._summary import bootstrap_interval, wilson_interval
from .baselines import NGRAM_BASELINES, AddOneBigram, KneserNey, window_baselines
from .windows import (
    label_mass,
    position_scores,
    softmax_rows,
    token_masses,
    window_accuracy,
    window_tv,
)

__all__ = [
    "SUBSETS",
    "PREDICTORS",
    "CATEGORIES",
    "MIN_WINDOWS",
    "evaluate_heldout",
    "window_categories",
    "initial_offsets",
    "initial_score_weights",
    "mean_with_interval",
]

SUBSETS = ("all", "label_in_window", "label_not_unk", "both")
"""The held-out subsets every number is reported on."""

PREDICTORS = (
    "layer",
    "automaton",
    "automaton_fitted_R",
    "automaton_init",
    "copy_recent",
    "most_frequent",
    "uniform",
    "unigram",
    "bigram",
    "bigram_window",
    "kn_bigram",
    "kn_bigram_window",
    "kn_trigram",
    "kn_trigram_window",
)
"""Every predictor evaluated on the held-out windows (``automaton_init``: the automaton that
keeps the layer's initial scores, :func:`initial_score_weights`; one-hot runs only)."""

CATEGORIES = (
    "decided",
    "runner_up_unseen",
    "top_unseen",
    "incomparable",
    "mixed",
    "one_level",
)
"""Held-out windows by the ``W_svm`` scores of their distinct tokens (top level = the tokens
within ``1e-6`` of the best score, runner-up level = the best of the others; a token is *seen*
when it occurs with the window's query in a training window):

- ``decided``: the top level beats every other token by at least 1 (a priority the training
  graph decides);
- ``runner_up_unseen``: not decided; the top level is seen, the runner-up level never seen
  (score 0);
- ``top_unseen``: not decided; the top level is never seen under the query (0 beats negative
  scores);
- ``incomparable``: not decided; top and runner-up levels are seen (incomparable SCCs);
- ``mixed``: not decided; a level mixes seen and unseen tokens;
- ``one_level``: every token of the window has the same score (e.g. an unseen query).
"""

MIN_WINDOWS = 200
"""Subsets with fewer held-out windows than this get a warning (wide intervals)."""

_FULL_VOCAB = frozenset(NGRAM_BASELINES)
_TIE = 1e-6
_RESAMPLES = 1000


def mean_with_interval(values: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
    """``{"mean", "low", "high", "n"}`` over ``mask`` (bootstrap interval; None when empty or
    infinite: JSON has no infinity)."""
    v = np.asarray(values, dtype=np.float64)
    if mask is not None:
        v = v[mask]
    n = int(v.size)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(v.mean())
    if not np.isfinite(mean):
        return {"mean": None, "low": None, "high": None, "n": n}
    low, high = bootstrap_interval(v, resamples=_RESAMPLES) if n > 1 else (mean, mean)
    return {"mean": mean, "low": low, "high": high, "n": n}


def _share(count: int, total: int) -> dict[str, Any]:
    low, high = wilson_interval(int(count), int(total))
    share = count / total if total else None
    return {
        "share": share,
        "low": low if total else None,
        "high": high if total else None,
        "count": int(count),
    }


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    if not mask.any():
        return None
    value = float(values[mask].mean())
    return value if np.isfinite(value) else None


def window_categories(
    tokens: np.ndarray, svm_scores: np.ndarray, seen: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The :data:`CATEGORIES` index of every window, and its score gap (NaN on one level).

    Parameters
    ----------
    tokens : ndarray of shape (n, T)
    svm_scores : ndarray of shape (n, T)
        ``W_svm`` score of each position's token under the window's query.
    seen : ndarray of bool of shape (n, T)
        The position's token occurs with the query in a training window.
    """
    top = svm_scores.max(axis=1, keepdims=True)
    in_top = svm_scores >= top - _TIE
    rest = np.where(in_top, -np.inf, svm_scores)
    second = rest.max(axis=1, keepdims=True)
    one_level = ~np.isfinite(second[:, 0])
    gap = np.where(one_level, np.nan, (top - second)[:, 0])
    in_second = ~in_top & (svm_scores >= second - _TIE)
    top_seen = np.where(in_top, seen, True).all(axis=1)
    top_unseen = np.where(in_top, ~seen, True).all(axis=1)
    second_seen = np.where(in_second, seen, True).all(axis=1)
    second_unseen = np.where(in_second, ~seen, True).all(axis=1)
    decided = ~one_level & (gap >= 1 - _TIE)
    cat = np.full(tokens.shape[0], CATEGORIES.index("mixed"))
    cat[top_seen & second_seen] = CATEGORIES.index("incomparable")
    cat[top_unseen] = CATEGORIES.index("top_unseen")
    cat[top_seen & second_unseen] = CATEGORIES.index("runner_up_unseen")
    cat[decided] = CATEGORIES.index("decided")
    cat[one_level] = CATEGORIES.index("one_level")
    return cat, gap


def _lookup_pairs(keys: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``want`` in the sorted ``keys`` (clipped to a valid index) and whether
    each is there."""
    pos = np.minimum(np.searchsorted(keys, want), max(keys.size - 1, 0))
    seen = keys[pos] == want if keys.size else np.zeros(want.shape, dtype=bool)
    return pos, seen


def initial_offsets(
    train_tokens: np.ndarray,
    train_queries: np.ndarray,
    initial: Any,
    tokens: np.ndarray,
    vocab_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """What the initial one-hot entries leave in the layer's scores of held-out positions.

    Under a query ``k``, link two tokens when a training window with query ``k`` holds both; a
    *group* is a connected set of tokens so linked. Every step of a rule that moves along the
    gradient (or its projections: ``gd``, ``ngd``, ``polyak``, ``split-ngd``) changes the
    entries ``W[j, k]`` of a window by amounts that sum to 0 over the window (the softmax
    gradient), so the sum of ``W[j, k]`` over a group keeps its initial value, while ``W_svm``
    and ``W_fin`` sum to 0 over it. The part of the initialisation that training never removes
    is therefore the group's mean initial entry on every seen pair, and the initial entry
    itself on a pair no training window holds.

    Parameters
    ----------
    train_tokens : ndarray of int of shape (n, T)
        The training windows the layer was trained on (-1 pads).
    train_queries : ndarray of int of shape (n,)
    initial : callable
        ``initial(keys)``: the initial entries ``W0[token, query]`` at flat keys
        ``token * K + query`` (:meth:`attnmech.layer.onehot.OneHotLayer.initial`).
    tokens : ndarray of int of shape (m, T)
        Held-out windows (the last token is the query).
    vocab_size : int

    Returns
    -------
    offsets : ndarray of shape (m, T)
        The group's mean initial entry (seen pair) or the initial entry (unseen pair).
    seen : ndarray of bool of shape (m, T)
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    K = int(vocab_size)
    train_tokens = np.asarray(train_tokens, dtype=np.int64)
    mask = train_tokens >= 0
    pair = np.broadcast_to(np.asarray(train_queries, dtype=np.int64)[:, None], mask.shape) * K
    pair = pair + np.where(mask, train_tokens, 0)  # query * K + token
    keys, inverse = np.unique(pair[mask], return_inverse=True)
    node = np.full(mask.shape, -1, dtype=np.int64)
    node[mask] = inverse.reshape(-1)
    # link each valid position to the window's first (all share the window's query)
    first = np.broadcast_to(node[:, :1], node.shape)
    a, b = node[mask], first[mask]
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(keys.size, keys.size))
    n_groups, group = connected_components(graph, directed=False)
    w0 = np.asarray(initial((keys % K) * K + keys // K), dtype=np.float64)  # token * K + query
    mean = np.bincount(group, weights=w0, minlength=n_groups) / np.bincount(
        group, minlength=n_groups
    )
    tokens = np.asarray(tokens, dtype=np.int64)
    pos, seen = _lookup_pairs(keys, tokens[:, -1:] * K + tokens)
    offsets = np.empty(tokens.shape)
    offsets[seen] = mean[group[pos[seen]]]
    unseen = ~seen
    if unseen.any():
        q = np.broadcast_to(tokens[:, -1:], tokens.shape)
        offsets[unseen] = initial(tokens[unseen] * K + q[unseen])
    return offsets, seen


def initial_score_weights(
    automaton: Any, tokens: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """Position weights (n, T) of the automaton that keeps the layer's initial scores.

    The limit ``R -> infinity`` of the softmax over positions of
    ``R * svm + fin + offset`` (``offset`` from :func:`initial_offsets`): hard retrieval of the
    positions within ``automaton.tie_tol`` of the top ``W_svm`` score (unseen pairs score 0, as
    in the automaton), then ``p_j`` proportional to ``m_j exp(fin_j + offset_j)`` over them. It
    differs from the automaton only where the retrieved level holds tokens of different groups
    or unseen tokens (the offset is constant over a group, so it cancels inside one).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    query = np.broadcast_to(tokens[:, -1:], tokens.shape)
    svm = np.asarray(automaton.svm_table[tokens, query], dtype=np.float64)
    fin = np.asarray(automaton.fin_table[tokens, query], dtype=np.float64)
    kept = svm >= svm.max(axis=1, keepdims=True) - automaton.tie_tol
    logits = np.where(kept, fin + offsets, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def _ngram_scores(
    model: Any,
    tokens: np.ndarray,
    labels: np.ndarray,
    exclude: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A full-vocabulary model's accuracy and log-loss per window, and its distribution
    restricted to the window as position weights (n, T); in chunks of rows (never (n, K))."""
    n, T = tokens.shape
    acc = np.empty(n)
    loss = np.empty(n)
    restricted = np.empty((n, T))
    chunk = max(1, 2_000_000 // max(model.K, 1))
    for lo in range(0, n, chunk):
        sl = slice(lo, lo + chunk)
        P = model.proba(tokens[sl])
        if exclude is not None:
            P[:, exclude] = 0.0
            P /= P.sum(axis=1, keepdims=True)
        best = P.max(axis=1, keepdims=True)
        is_top = P >= best - 1e-12 * best
        rows = np.arange(P.shape[0])
        acc[sl] = is_top[rows, labels[sl]] / is_top.sum(axis=1)
        with np.errstate(divide="ignore"):
            loss[sl] = -np.log(P[rows, labels[sl]])
        restricted[sl] = np.take_along_axis(P, tokens[sl], axis=1)
    counts = token_masses(np.ones((n, T)), tokens)
    weights = restricted / counts
    total = weights.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0  # the window holds only the excluded token
    weights[empty] = 1.0 / T
    total[empty] = 1.0
    return acc, loss, weights / total


def evaluate_heldout(
    tokens: np.ndarray,
    labels: np.ndarray,
    *,
    W: Any,
    E: Any,
    theory: Any,
    fitted_R: float | None,
    unigram: np.ndarray,
    bigram: Any,
    unk: int,
    exclude_unk: bool = False,
    train_stream: np.ndarray | None = None,
    seen_pairs: np.ndarray | None = None,
    intervals: bool = True,
    initial_offsets: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, log-loss and TV of every predictor on held-out windows, per subset.

    Parameters
    ----------
    tokens : ndarray of int of shape (n, T)
        Full windows (no padding); the last token is the query.
    labels : ndarray of int of shape (n,)
    W : ndarray of shape (d, d), or a :class:`~attnmech.studies.text.layer.PairLayer`
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
    train_stream : ndarray of int, optional
        The training token stream: adds the Kneser-Ney bigram and trigram baselines.
    seen_pairs : ndarray of int64, optional
        Sorted keys ``query * K + token`` of the (token, query) pairs of the training windows:
        adds the window categories (:data:`CATEGORIES`) and the decided-window numbers.
    intervals : bool, default=True
        Bootstrap and Wilson intervals (``intervals`` key).
    initial_offsets : ndarray of shape (n, T), optional
        The offsets of :func:`initial_offsets` (one-hot layers): adds the predictor
        ``automaton_init`` (the automaton keeping the layer's initial scores,
        :func:`initial_score_weights`) and ``tv_layer_automaton_init`` beside every TV against
        the automaton.

    Returns
    -------
    dict
        ``accuracy`` / ``log_loss`` / ``count``: subset -> predictor -> value;
        ``zero_probability``: subset -> predictor -> fraction of the subset's in-window labels
        given probability 0 (their log-loss is infinite and left out of ``log_loss``, which is
        then None for that predictor: the automaton at R = infinity when it retrieves another
        SCC); ``tv_layer_automaton`` (and ``tv_layer_automaton_fitted_R``): subset -> value;
        ``intervals``: the same keys with ``{"mean", "low", "high", "n"}``; ``warnings``: a list
        of sentences; with ``seen_pairs`` also ``decided_fraction``, ``tv_decided``,
        ``tv_undecided`` and ``categories``.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    in_window = (tokens == labels[:, None]).any(axis=1)
    not_unk = labels != unk
    masks = {
        "all": np.ones(labels.size, dtype=bool),
        "label_in_window": in_window,
        "label_not_unk": not_unk,
        "both": in_window & not_unk,
    }
    exclude = unk if exclude_unk else None
    weights: dict[str, np.ndarray] = {"layer": softmax_rows(position_scores(W, tokens, E))}
    automaton = None
    if theory is not None:
        automaton = theory.automaton()
        weights["automaton"] = np.asarray(automaton.position_weights(tokens, tokens[:, -1]))
        if fitted_R is not None and np.isfinite(fitted_R):
            weights["automaton_fitted_R"] = np.asarray(
                automaton.position_weights(tokens, tokens[:, -1], R=float(fitted_R))
            )
        if initial_offsets is not None:
            weights["automaton_init"] = initial_score_weights(automaton, tokens, initial_offsets)
    weights.update(window_baselines(tokens, unigram, exclude))
    acc: dict[str, np.ndarray] = {}
    loss: dict[str, np.ndarray] = {}
    for name, w in weights.items():
        acc[name] = window_accuracy(w, tokens, labels)
        if name != "copy_recent":
            with np.errstate(divide="ignore"):
                loss[name] = -np.log(label_mass(w, tokens, labels))
    models: dict[str, Any] = {"bigram": AddOneBigram(bigram)}
    if train_stream is not None and np.asarray(train_stream).size > 3:
        K = unigram.size
        models["kn_bigram"] = KneserNey(train_stream, K, order=2)
        models["kn_trigram"] = KneserNey(train_stream, K, order=3)
    for name, model in models.items():
        a, lo, restricted = _ngram_scores(model, tokens, labels, exclude)
        acc[name], loss[name] = a, lo
        acc[f"{name}_window"] = window_accuracy(restricted, tokens, labels)
        with np.errstate(divide="ignore"):
            loss[f"{name}_window"] = -np.log(label_mass(restricted, tokens, labels))
    order = [p for p in PREDICTORS if p in acc] + [p for p in acc if p not in PREDICTORS]

    out: dict[str, Any] = {"accuracy": {}, "log_loss": {}, "zero_probability": {}, "count": {}}
    # TV of the layer against each automaton predictor, keyed by its output name
    tvs = {
        f"tv_layer_{name}": window_tv(weights["layer"], weights[name], tokens)
        for name in ("automaton", "automaton_fitted_R", "automaton_init")
        if name in weights
    }
    out.update({key: {} for key in tvs})
    tv = tvs.get("tv_layer_automaton")
    tv_R = tvs.get("tv_layer_automaton_fitted_R")
    tv_init = tvs.get("tv_layer_automaton_init")
    agree = None
    if automaton is not None and theory is not None:
        top_layer = tokens[np.arange(labels.size), token_masses(weights["layer"], tokens).argmax(1)]
        auto_mass = token_masses(weights["automaton"], tokens)
        top_auto = auto_mass >= auto_mass.max(axis=1, keepdims=True) - 1e-12
        agree = top_auto[
            np.arange(labels.size), np.argmax(tokens == top_layer[:, None], axis=1)
        ].astype(np.float64)
        seen_query = np.zeros(unigram.size, dtype=bool)
        seen_query[np.asarray(theory.graphs.queries)] = True
        query_seen = seen_query[tokens[:, -1]]
        out["by_query"] = {}
        for name, group in (("seen", query_seen), ("unseen", ~query_seen)):
            out["by_query"][name] = {
                "count": int(group.sum()),
                "top_token_agreement": _mean(agree, group),
                "tv_layer_automaton": _mean(tv, group) if tv is not None else None,
                "accuracy_layer": _mean(acc["layer"], group),
                "accuracy_automaton": _mean(acc["automaton"], group),
            }
        out["top_token_agreement"] = {}
    ivals: dict[str, Any] = {"accuracy": {}, "log_loss": {}}
    ivals.update({key: {} for key in tvs})
    warnings: list[str] = []
    for subset, mask in masks.items():
        out["count"][subset] = int(mask.sum())
        if 0 < mask.sum() < MIN_WINDOWS:
            warnings.append(
                f"subset {subset!r} has {int(mask.sum())} held-out windows (< {MIN_WINDOWS}): "
                "its numbers are uncertain, read the intervals"
            )
        if agree is not None:
            out["top_token_agreement"][subset] = _mean(agree, mask)
        out["accuracy"][subset] = {name: _mean(acc[name], mask) for name in order}
        loss_mask = {name: mask if name in _FULL_VOCAB else mask & in_window for name in loss}
        out["log_loss"][subset] = {
            name: _mean(loss[name], loss_mask[name]) for name in order if name in loss
        }
        out["zero_probability"][subset] = {
            name: _mean(np.isinf(loss[name]).astype(np.float64), mask & in_window)
            for name in order
            if name in loss and name not in _FULL_VOCAB
        }
        for key, values in tvs.items():
            out[key][subset] = _mean(values, mask)
        if intervals:
            ivals["accuracy"][subset] = {
                name: mean_with_interval(acc[name], mask) for name in order
            }
            ivals["log_loss"][subset] = {
                name: mean_with_interval(loss[name], loss_mask[name])
                for name in order
                if name in loss
            }
            for key, values in tvs.items():
                ivals[key][subset] = mean_with_interval(values, mask)
    if intervals:
        out["intervals"] = ivals
    out["warnings"] = warnings
    if automaton is not None and seen_pairs is not None:
        K = unigram.size
        query = np.broadcast_to(tokens[:, -1:], tokens.shape)
        svm = np.asarray(automaton.svm_table[tokens, query], dtype=np.float64)
        keys = np.asarray(seen_pairs, dtype=np.int64)
        _, seen = _lookup_pairs(keys, query * K + tokens)
        cat, gap = window_categories(tokens, svm, seen)
        n = labels.size
        decided = cat == CATEGORIES.index("decided")
        out["decided_fraction"] = float(decided.mean()) if n else None
        out["decided_fraction_interval"] = _share(int(decided.sum()), n)
        for by_window, suffix in ((tv, ""), (tv_init, "_automaton_init")):
            if by_window is not None:
                out[f"tv_decided{suffix}"] = _mean(by_window, decided)
                out[f"tv_undecided{suffix}"] = _mean(by_window, ~decided)
                out[f"tv_decided{suffix}_interval"] = mean_with_interval(by_window, decided)
                out[f"tv_undecided{suffix}_interval"] = mean_with_interval(by_window, ~decided)
        categories: dict[str, Any] = {}
        for k, name in enumerate(CATEGORIES):
            group = cat == k
            row = _share(int(group.sum()), n)
            row["median_gap"] = (
                float(np.nanmedian(gap[group])) if group.any() and name != "one_level" else None
            )
            row["tv"] = mean_with_interval(tv, group) if tv is not None else None
            row["tv_fitted_R"] = mean_with_interval(tv_R, group) if tv_R is not None else None
            row["accuracy_layer"] = _mean(acc["layer"], group)
            row["accuracy_automaton"] = _mean(acc["automaton"], group)
            if tv_init is not None:
                row["tv_automaton_init"] = mean_with_interval(tv_init, group)
                row["accuracy_automaton_init"] = _mean(acc["automaton_init"], group)
            categories[name] = row
        out["categories"] = categories
        out["window_category"] = cat  # per window (ndarray; dropped from results.json)
    return out
