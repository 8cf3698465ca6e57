"""The finite-part gap as the authors' local notebook defines it, beside attnmech's exact one.

The local-convergence notebook (``mc_next_single_layer_local_converge.ipynb`` at commit
``0d105ef``, cell [3]) measures, for the global and for the local token-priority graphs,
``||Proj_S W(t) - W_fin(t)||_F`` where

- the reduced data keep, for every sample with last token ``k`` and label ``y`` (the sample's
  own label, also for the local graphs), the positions whose token lies in ``y``'s SCC of
  ``G^(k)``; a sample is kept only when some other token of its sequence lies in that SCC;
- ``W_fin(t)`` is a second layer trained from zero on those reduced data with the run's head,
  loss and optimiser (the gen head, the setting's cross-entropy or squared loss, full-batch SGD
  on ``g / (||g|| + eps)`` at the run's learning rate, one update per step of the run, the loss
  summed over the reduced samples and divided by the full sample count, the query being the
  original last token). Its gradient is not projected onto ``S`` (a reduced sequence holds
  tokens of one SCC only, so ``W_fin(t)`` stays in ``S`` all the same);
- ``S`` is spanned by ``(e_j - mean_{i in C} e_i) e_k^T`` for every token ``j`` of the SCC ``C`` of
  a kept sample's label (the whole SCC, not only the tokens of the sequence);
- a trial without any kept sample is not trained (``W_fin(t) = 0``) and has ``S = {0}``: its gap
  is 0, and it is averaged in as 0.

attnmech's own gap (:class:`~attnmech.studies.reproduction.measures.LocalTPG`) uses the exact
iden-head ``W_fin`` of each theory and leaves the trials without a finite part out (NaN). The
two differ by definition; the report states both.

:class:`AuthorsFiniteGap` is the metric; :func:`authors_reduction` and
:func:`authors_finite_trajectory` are its parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from typing import Any, ClassVar

import numpy as np

from ...data.dataset import Dataset
from ...errors import InvalidParameterError
from ..scaffold import fmt
from .measures import Metric, RunRecord

__all__ = [
    "AuthorsReduction",
    "AuthorsFiniteGap",
    "authors_reduction",
    "authors_finite_trajectory",
    "authors_gap",
    "authors_layer_trajectory",
]

_RANK_TOL = 1e-10  # singular values below this (relative) are dropped from the span


@dataclass(frozen=True, eq=False)
class AuthorsReduction:
    """The authors' reduced data and finite-part subspace of one trial for one set of graphs.

    Attributes
    ----------
    sequences : list of list of int
        The kept positions' tokens of each kept sample.
    labels, queries, sample_index : ndarray of int64 of shape (m,)
        Label, query (the original last token) and original index of each kept sample.
    basis : ndarray of shape (p, d, d)
        An orthonormal basis of the subspace ``S`` (``p = 0``: ``S = {0}``).
    n_full : int
        Sample count of the original dataset (the loss divides by it).
    """

    sequences: list[list[int]]
    labels: np.ndarray
    queries: np.ndarray
    sample_index: np.ndarray
    basis: np.ndarray
    n_full: int

    @property
    def n_samples(self) -> int:
        """Number of kept samples."""
        return len(self.sequences)


def authors_reduction(dataset: Dataset, graphs: Any) -> AuthorsReduction:
    """The authors' reduced data and ``S`` of ``dataset`` for the token-priority ``graphs``.

    ``graphs`` is a :class:`~attnmech.theory.graphs.PriorityGraphs` (the dataset's own global
    graphs, or the local graphs of :func:`attnmech.theory.local.solve_local`). A token that does
    not occur as a node of ``G^(k)`` (for the local graphs: a token GD left out of every
    pseudo-sample) is an SCC of its own, as in the authors' Tarjan over all ``K`` tokens.
    """
    E = np.asarray(dataset.embeddings, dtype=np.float64)
    d = E.shape[1]
    sequences: list[list[int]] = []
    labels: list[int] = []
    queries: list[int] = []
    index: list[int] = []
    spans: list[np.ndarray] = []
    seen: set[tuple[int, int]] = set()
    for i in range(dataset.n_samples):
        tokens = np.asarray(dataset.tokens[dataset.offsets[i] : dataset.offsets[i + 1]])
        k, y = int(tokens[-1]), int(dataset.labels[i])
        label_scc = int(graphs.scc_of(k, y))
        if label_scc < 0:  # the label is no node of G^(k): an SCC of its own
            continue
        token_scc = np.asarray(graphs.scc_of(np.full(tokens.size, k), tokens))
        same = token_scc == label_scc
        if not (same & (tokens != y)).any():
            continue
        sequences.append([int(t) for t in tokens[same]])
        labels.append(y)
        queries.append(k)
        index.append(i)
        if (k, label_scc) in seen:
            continue
        seen.add((k, label_scc))
        members = np.asarray(graphs.scc_members(label_scc), dtype=np.int64)
        centred = E[members] - E[members].mean(axis=0)
        spans.extend(np.einsum("ja,b->jab", centred, E[k]))
    basis = _orthonormal(spans, d)
    return AuthorsReduction(
        sequences=sequences,
        labels=np.asarray(labels, dtype=np.int64),
        queries=np.asarray(queries, dtype=np.int64),
        sample_index=np.asarray(index, dtype=np.int64),
        basis=basis,
        n_full=int(dataset.n_samples),
    )


def _orthonormal(matrices: Sequence[np.ndarray], d: int) -> np.ndarray:
    """An orthonormal basis (shape (p, d, d)) of the span of ``matrices``."""
    if not matrices:
        return np.zeros((0, d, d))
    flat = np.stack([np.asarray(m, dtype=np.float64).ravel() for m in matrices])
    _, s, vt = np.linalg.svd(flat, full_matrices=False)
    rank = int(np.sum(s > _RANK_TOL * max(float(s[0]), 1.0))) if s.size else 0
    return vt[:rank].reshape(rank, d, d)


def authors_gap(W: np.ndarray, W_fin: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``||Proj_S W - W_fin||_F`` for ``W`` and ``W_fin`` of shape (..., d, d), ``S`` spanned by
    the orthonormal ``basis`` (p, d, d); with ``p = 0`` the projection is 0."""
    W = np.asarray(W, dtype=np.float64)
    if basis.shape[0]:
        coef = np.einsum("...ab,pab->...p", W, basis)
        proj = np.einsum("...p,pab->...ab", coef, basis)
    else:
        proj = np.zeros_like(W)
    return np.linalg.norm(proj - np.asarray(W_fin, dtype=np.float64), axis=(-2, -1))


def authors_finite_trajectory(
    datasets: Sequence[Dataset],
    reductions: Sequence[AuthorsReduction],
    *,
    head: str,
    loss: str,
    learning_rate: float,
    steps: np.ndarray,
    eps: float | None = None,
) -> np.ndarray:
    """``W_fin(t)`` of every trial at the given ``steps`` (shape (len(steps), trials, d, d)).

    All trials train in one batch with the authors' trainer
    (:func:`attnmech.studies.authors.train_authors`) from zero. Each trial's reduced data are
    padded to the same sample count with one-token samples ``([0], label 0, query 0)``: a
    softmax over one position is exactly 1 whatever ``W``, so their gradient is exactly 0 and
    they change neither the loss's gradient nor the steps. A trial without reduced data stays at
    0 (the authors do not train it).
    """
    from ..authors import FLOAT64_EPS, train_authors

    steps = np.asarray(steps, dtype=np.int64)
    if steps.ndim != 1 or steps.size == 0 or (steps < 0).any() or (np.diff(steps) <= 0).any():
        raise InvalidParameterError("steps must be a non-empty increasing sequence of steps >= 0")
    B, d = len(datasets), datasets[0].embedding_dim
    last = int(steps[-1])
    out = np.zeros((steps.size, B, d, d))
    if last == 0:
        return out
    every = 0
    for step in steps[steps > 0]:
        every = gcd(every, int(step))
    m = max(max(r.n_samples for r in reductions), 1)
    padded, queries = [], []
    for ds, red in zip(datasets, reductions, strict=True):
        pad = m - red.n_samples
        padded.append(
            Dataset(red.sequences + [[0]] * pad, list(red.labels) + [0] * pad, ds.embeddings)
        )
        queries.append(list(red.queries) + [0] * pad)
    n_full = {red.n_full for red in reductions}
    if len(n_full) != 1:
        raise InvalidParameterError(
            f"every trial needs the same sample count, got {sorted(n_full)}"
        )
    run = train_authors(
        padded,
        np.zeros((B, d, d)),
        head=head,
        loss=loss,
        learning_rate=learning_rate,
        num_steps=last,
        eps=FLOAT64_EPS if eps is None else eps,
        queries=np.asarray(queries, dtype=np.int64),
        n_full=n_full.pop(),
        loss_every=0,
        record_every=every,
    )
    hist = np.concatenate([np.zeros((1, B, d, d)), np.asarray(run.W_history)])
    hist_steps = np.concatenate([[0], np.asarray(run.history_steps)])
    index = np.searchsorted(hist_steps, steps)
    out[:] = hist[index]
    return out


def authors_layer_trajectory(
    datasets: Sequence[Dataset],
    W0: np.ndarray,
    *,
    head: str,
    loss: str,
    learning_rate: float,
    steps: np.ndarray,
    eps: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The layer trained by the authors' trainer from ``W0`` (trials, d, d): ``W(t)`` at the
    given ``steps`` (shape (len(steps), trials, d, d)) and the weights of its last forward pass
    (before the last update; the notebooks read the local graphs' attention there)."""
    from ..authors import FLOAT64_EPS, train_authors

    steps = np.asarray(steps, dtype=np.int64)
    W0 = np.asarray(W0, dtype=np.float64)
    every = 0
    for step in steps[steps > 0]:
        every = gcd(every, int(step))
    run = train_authors(
        list(datasets),
        W0,
        head=head,
        loss=loss,
        learning_rate=learning_rate,
        num_steps=int(steps[-1]),
        eps=FLOAT64_EPS if eps is None else eps,
        loss_every=0,
        record_every=max(every, 1),
    )
    hist = np.concatenate([W0[None], np.asarray(run.W_history)])
    hist_steps = np.concatenate([[0], np.asarray(run.history_steps)])
    return hist[np.searchsorted(hist_steps, steps)], np.asarray(run.W_before_last)


@dataclass(frozen=True)
class AuthorsFiniteGap(Metric):
    """The global and local finite-part gaps as the authors' local notebook defines them, on the
    run's datasets and initialisations.

    Everything is the authors' pipeline: the layer ``W(t)`` trained by their trainer (their
    loss, ``g / (||g|| + eps)``) from the run's initialisation; the local graphs from the tokens
    selected by the attention of its last forward pass
    (:func:`attnmech.theory.local.solve_local`); their reduced data, ``S`` and ``W_fin(t)``
    (:func:`authors_reduction`, :func:`authors_finite_trajectory`). Curves
    ``fin_gap_global_authors`` and ``fin_gap_local_authors`` (shape (L, trials); 0 in a trial
    without reduced data, as the authors count it) and ``corr_svm_local_authors`` (corr(W(t), W_svm^loc) of that pipeline). Diagnostics: per trial
    whether the reduced data are empty and the dimension of ``S``.
    """

    eps: float | None = None
    curves: tuple[str, ...] = (
        "fin_gap_global_authors",
        "fin_gap_local_authors",
        "corr_svm_local_authors",
    )
    name: ClassVar[str] = "authors_finite_gap"
    needs_W_history: ClassVar[bool] = True

    def explain(self, result: Any, metric: Any) -> str:
        """For a disagreement on a gap of the authors' definition: in how many of our trials the
        reduced data were empty (gap 0) and the mean of the others."""
        curve = metric.measure.curve
        if curve not in self.curves[:2]:
            return ""
        which = "global" if curve == self.curves[0] else "local"
        empty = [bool(v) for v in result.extra.get(f"authors_fin_{which}_empty", [])]
        if not empty:
            return ""
        values = np.asarray(metric.values, dtype=np.float64)
        text = (
            f" In {sum(empty)} of {len(empty)} of our trials no sample's own label shares an SCC "
            f"of the {which} graphs with another token of its sequence: the reduced data are "
            "empty and the gap counts as 0"
        )
        others = values[values > 0]
        if others.size:
            text += f"; the {others.size} other trials average {fmt(float(others.mean()))}"
        return text + "."

    def compute(self, record: RunRecord) -> dict[str, np.ndarray]:
        """Trains the authors' layer and their ``W_fin(t)`` for the global and the local graphs
        of every trial and returns the gaps at the run's logged steps."""
        from ...theory.local import solve_local
        from ..authors import attention_mass
        from ._deps import correlation

        setting = record.setting
        options: dict[str, Any] = {
            "head": setting.head,
            "loss": setting.loss,
            "learning_rate": setting.learning_rate,
            "steps": record.steps,
            "eps": self.eps,
        }
        W_history, W_last = authors_layer_trajectory(
            record.datasets, record.W_history[0], **options
        )
        local = [
            solve_local(ds, attention_mass(ds, W_last[b])) for b, ds in enumerate(record.datasets)
        ]
        W_svm_local = np.stack([np.asarray(t.W_svm) for t in local])[None]
        out: dict[str, np.ndarray] = {
            "corr_svm_local_authors": np.asarray(correlation(W_history, W_svm_local))
        }
        for which, theories in (("global", record.theories), ("local", local)):
            reductions = [
                authors_reduction(ds, th.graphs)
                for ds, th in zip(record.datasets, theories, strict=True)
            ]
            W_fin = authors_finite_trajectory(record.datasets, reductions, **options)
            gap = np.stack(
                [
                    authors_gap(W_history[:, b], W_fin[:, b], red.basis)
                    for b, red in enumerate(reductions)
                ],
                axis=1,
            )
            out[f"fin_gap_{which}_authors"] = gap
            record.extra[f"authors_fin_{which}_empty"] = [
                bool(red.n_samples == 0) for red in reductions
            ]
            record.extra[f"authors_fin_{which}_dim"] = [
                int(red.basis.shape[0]) for red in reductions
            ]
        empty = {w: sum(record.extra[f"authors_fin_{w}_empty"]) for w in ("global", "local")}
        record.notes.append(
            "The finite part as the authors define it (their trainer for W(t) and W_fin(t) on "
            f"these datasets and initialisations): no reduced data in {empty['global']} of "
            f"{record.trials} trials for the global graphs and {empty['local']} of "
            f"{record.trials} for the local ones; those trials count as a gap of 0, as in the "
            "authors' figures."
        )
        return out
