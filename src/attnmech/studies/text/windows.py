"""Distributions over the tokens of a window, given as weights of its positions.

A window-restricted predictor puts its probability on the tokens of the window; it is stored as
an (n, T) array of position weights whose rows sum to 1 (a token that occurs twice gets the sum
of its positions' weights). Accuracy, label probability and total variation are computed from
these arrays without any (n, K) table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...data.dataset import OneHotEmbeddings

__all__ = [
    "position_scores",
    "softmax_rows",
    "label_mass",
    "token_masses",
    "first_occurrence",
    "window_accuracy",
    "window_tv",
]


def position_scores(W: Any, tokens: np.ndarray, E: Any) -> np.ndarray:
    """Scores ``x_t^T W x_T`` of every position of full windows (n, T).

    ``W`` is a dense (d, d) array, or any object with ``scores(tokens, queries)`` (the sparse
    one-hot layer :class:`attnmech.studies.text.layer.PairLayer`).
    """
    query = tokens[:, -1]
    if hasattr(W, "scores"):
        return np.asarray(W.scores(tokens, np.broadcast_to(query[:, None], tokens.shape)))
    if E is None or isinstance(E, OneHotEmbeddings):
        return np.asarray(W[tokens, query[:, None]])
    Eq = E[query] @ W.T  # (n, d): W e_q
    return np.einsum("ntd,nd->nt", E[tokens], Eq)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (``-inf`` entries get 0)."""
    z = logits - logits.max(axis=1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(axis=1, keepdims=True)


def label_mass(weights: np.ndarray, tokens: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Probability of the label: the weights of the positions holding it."""
    return (weights * (tokens == labels[:, None])).sum(axis=1)


def token_masses(weights: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Per position, the total weight of its token in the window (n, T)."""
    same = tokens[:, :, None] == tokens[:, None, :]  # (n, T, T)
    return np.einsum("nts,ns->nt", same, weights)


def first_occurrence(tokens: np.ndarray) -> np.ndarray:
    """(n, T) bool: position t holds the first occurrence of its token in the window."""
    T = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]  # (n, t, s)
    earlier = np.tri(T, k=-1, dtype=bool)  # s < t
    return ~(same & earlier).any(axis=2)


def window_accuracy(weights: np.ndarray, tokens: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Expected accuracy under a random tie-break among the window's top tokens (per window)."""
    mass = token_masses(weights, tokens)
    top = mass.max(axis=1, keepdims=True)
    is_top = mass >= top - 1e-12 * np.maximum(top, 1e-300)
    first = first_occurrence(tokens)
    n_top = (is_top & first).sum(axis=1)  # distinct top tokens
    label_top = (is_top & (tokens == labels[:, None])).any(axis=1)
    return label_top / np.maximum(n_top, 1)


def window_tv(weights_a: np.ndarray, weights_b: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Total-variation distance between two distributions given as position weights."""
    diff = token_masses(weights_a - weights_b, tokens)
    first = first_occurrence(tokens)
    return 0.5 * (np.abs(diff) * first).sum(axis=1)
