"""Local token-priority graphs: predicting where GD converges in nonconvex settings
(docs/theory.md#local-convergence).

With the ``gen`` head and cross-entropy or squared loss, GD may converge to a local direction. It
is predicted by the graphs built from the tokens GD actually selected: for each sample, let
``a_j`` be the attention mass on token ``j`` (the sum of ``s_t`` over positions holding ``j``);
the selected set is ``O = {j : a_j > 1e-2}``; tokens with ``9e-3 < a_j <= 1e-2`` are left out as
ambiguous; each selected ``c`` gets edges ``c -> j`` to every other non-ambiguous token of the
sequence under that sample's last token. Equivalently: one pseudo-sample per selected token, with
that token as its label and the ambiguous tokens removed. The local Graph-SVM and the local
``W_fin`` are the global ones of that pseudo-dataset.

The last token is always kept in its pseudo-samples (it is the query); if it is itself ambiguous,
this adds the edges ``c -> k``, a deviation limited to the ambiguous band.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..errors import InvalidDatasetError
from .solve import Theory, solve

__all__ = [
    "SELECTED_THRESHOLD",
    "AMBIGUOUS_THRESHOLD",
    "LocalSelection",
    "select_tokens",
    "local_dataset",
    "solve_local",
]

SELECTED_THRESHOLD = 1e-2
AMBIGUOUS_THRESHOLD = 9e-3


@dataclass(frozen=True, slots=True, eq=False)
class LocalSelection:
    """Which tokens GD selected in each sample.

    Attributes
    ----------
    selected, ambiguous : ndarray of bool of shape (n_samples, vocab_size)
    """

    selected: np.ndarray
    ambiguous: np.ndarray

    @property
    def n_selected(self) -> np.ndarray:
        """ndarray of shape (n_samples,): number of tokens selected in each sample."""
        return self.selected.sum(axis=1)


def select_tokens(
    dataset: Dataset,
    attention_mass: Any,
    *,
    threshold: float = SELECTED_THRESHOLD,
    ambiguous_below: float = AMBIGUOUS_THRESHOLD,
) -> LocalSelection:
    """Selected and ambiguous tokens from per-token attention masses.

    Parameters
    ----------
    dataset : Dataset
    attention_mass : array-like of shape (n_samples, vocab_size)
        ``a_j`` per sample (0 for tokens absent from the sequence).
    threshold, ambiguous_below : float
        ``a_j > threshold``: selected; ``ambiguous_below < a_j <= threshold``: ambiguous.
    """
    mass = np.asarray(attention_mass, dtype=np.float64)
    if mass.shape != (dataset.n_samples, dataset.vocab_size):
        raise InvalidDatasetError(
            f"attention_mass must have shape (n_samples, vocab_size) = "
            f"({dataset.n_samples}, {dataset.vocab_size}), got {mass.shape}"
        )
    if not np.isfinite(mass).all():
        raise InvalidDatasetError("attention_mass contains NaN or inf")
    selected = mass > threshold
    ambiguous = (mass > ambiguous_below) & ~selected
    empty = np.flatnonzero(~selected.any(axis=1))
    if empty.size:
        raise InvalidDatasetError(
            f"samples {empty[:10].tolist()} select no token (every attention mass <= {threshold}); "
            "check that attention_mass sums to 1 per sample"
        )
    return LocalSelection(selected=selected, ambiguous=ambiguous)


def local_dataset(dataset: Dataset, selection: LocalSelection) -> Dataset:
    """The pseudo-dataset whose (global) graphs are the local TPGs.

    Each sample yields one pseudo-sample per selected token: the sequence without its ambiguous
    tokens (its last token always kept), labelled by the selected token.
    """
    sample_of = dataset.sample_of_token
    is_last = np.zeros(dataset.tokens.size, dtype=bool)
    is_last[dataset.offsets[1:] - 1] = True
    keep = ~selection.ambiguous[sample_of, dataset.tokens] | is_last
    # pseudo-samples: (sample, selected token) pairs
    pseudo_sample, pseudo_label = np.nonzero(selection.selected)
    kept_len = np.bincount(sample_of[keep], minlength=dataset.n_samples)
    lengths = kept_len[pseudo_sample]
    offsets = np.zeros(pseudo_sample.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    kept_tokens = dataset.tokens[keep]
    kept_offsets = np.zeros(dataset.n_samples + 1, dtype=np.int64)
    np.cumsum(kept_len, out=kept_offsets[1:])
    gather = np.repeat(kept_offsets[pseudo_sample] - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Dataset._from_valid(kept_tokens[gather], offsets, pseudo_label, dataset.embeddings)


def solve_local(
    dataset: Dataset,
    attention_mass: Any,
    *,
    threshold: float = SELECTED_THRESHOLD,
    ambiguous_below: float = AMBIGUOUS_THRESHOLD,
) -> Theory:
    """Local Graph-SVM and local ``W_fin`` from the tokens GD selected
    (docs/theory.md#local-convergence).

    Returns the :class:`~attnmech.theory.Theory` of the pseudo-dataset (its ``dataset`` field is
    the pseudo-dataset).

    Examples
    --------
    >>> import numpy as np
    >>> from attnmech import Dataset
    >>> ds = Dataset([[0, 1, 2]], [0], np.eye(3))
    >>> local = solve_local(ds, [[0.6, 0.395, 0.005]])  # GD kept tokens 0 and 1
    >>> local.graphs.sccs(2)
    [(0, 1), (2,)]
    """
    selection = select_tokens(
        dataset, attention_mass, threshold=threshold, ambiguous_below=ambiguous_below
    )
    return solve(local_dataset(dataset, selection))
