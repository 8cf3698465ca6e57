"""Measuring a trained ``W`` against the theory (docs/theory.md#the-theorem, #the-automaton and
#the-papers-experiments).

The theorem says ``W(t)`` is about ``R(t) W_svm + W_fin``: its direction tends to ``W_svm``, its
projection onto ``S_fin`` tends to ``W_fin``, and the model then acts as the automaton (hard
retrieval of the top SCC, soft composition inside it). :class:`TrajectoryMetrics` computes the
measures of the paper's figures for a batch of trials at once (it is what :func:`attnmech.train`
logs), and :func:`attnmech.verify` reports them for a finished run. Both import this module;
neither imports the other's internals.

Metrics (per trial):

=================  ==========================================================================
name               meaning
=================  ==========================================================================
corr_svm           corr(W, W_svm), corr(A, B) = <A, B> / (||A||_F ||B||_F)
corr_svm_fin       corr(W, W_fin + R W_svm) with R = <W - W_fin, W_svm> / ||W_svm||^2
corr_perp_svm      corr(Proj_{S_fin-perp} W, W_svm)
fin_gap_traj       ||Proj_{S_fin} W - W_fin(t)||_F, W_fin(t) trained alike on the reduced data
fin_gap            ||Proj_{S_fin} W - W_fin||_F (the exact W_fin)
fitted_R           R above: the size of W along W_svm
top_scc_mass       per sample the largest attention mass on one SCC of G^(k), averaged
label_attention    attention mass on the label's positions, averaged (-> 1 when acyclic)
automaton_tv       mean total-variation distance between the model's next-token distribution
                   and the automaton's at R = fitted_R (R = 0 when W_svm = 0)
=================  ==========================================================================

Correlations with ``W_svm = 0`` (every sample inside one SCC) are undefined and reported as NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.dataset import Dataset
from ..errors import InvalidDatasetError, InvalidParameterError
from ..theory.finite import project
from .model import HEADS, AttentionConfig, AttentionInputs, pair_scores

__all__ = [
    "METRICS",
    "correlation",
    "project",
    "fitted_scale",
    "top_scc_attention_mass",
    "svm_norm_for",
    "FiniteProjection",
    "TrajectoryMetrics",
]

METRICS: dict[str, str] = {
    "loss": "empirical risk L(W)",
    "norm": "||W||_F",
    "corr_svm": "corr(W, W_svm)",
    "corr_svm_fin": "corr(W, W_fin + R W_svm), R fitted",
    "corr_perp_svm": "corr(Proj_{S_fin-perp} W, W_svm)",
    "fin_gap_traj": "||Proj_{S_fin} W - W_fin(t)||_F",
    "fin_gap": "||Proj_{S_fin} W - W_fin||_F",
    "fitted_R": "R = <W - W_fin, W_svm> / ||W_svm||^2",
    "top_scc_mass": "mean largest attention mass on one SCC",
    "label_attention": "mean attention mass on the label",
    "automaton_tv": "mean TV(model, automaton at R = fitted_R)",
    "automaton_tv_hard": "mean TV(model, automaton at R = infinity)",
}
"""Every metric name used in histories and reports, with a one-line meaning."""


# ---------------------------------------------------------------------------------- math helpers
def correlation(A: Any, B: Any) -> np.ndarray | float:
    """``<A, B> / (||A||_F ||B||_F)`` over the last two axes; NaN where either norm is 0.

    Examples
    --------
    >>> correlation(np.eye(2), 3 * np.eye(2))
    1.0
    >>> correlation(np.eye(2), np.zeros((2, 2)))
    nan
    """
    try:
        A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"correlation: A and B must be arrays of numbers, cannot read them ({exc})"
        ) from None
    if A.ndim < 2 or B.ndim < 2 or A.shape[-2:] != B.shape[-2:]:
        raise InvalidParameterError(
            "correlation: A and B must be matrices (or stacks of them) of one shape, got "
            f"shapes {A.shape} and {B.shape}"
        )
    try:
        np.broadcast_shapes(A.shape, B.shape)
    except ValueError:
        raise InvalidParameterError(
            f"correlation: the stacks of shapes {A.shape} and {B.shape} do not broadcast"
        ) from None
    inner = np.sum(A * B, axis=(-2, -1))
    norms = np.linalg.norm(A, axis=(-2, -1)) * np.linalg.norm(B, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(norms > 0, inner / np.where(norms > 0, norms, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def fitted_scale(W: Any, W_svm: Any, W_fin: Any) -> np.ndarray | float:
    """``R = <W - W_fin, W_svm> / ||W_svm||_F^2`` (NaN when ``W_svm = 0``)."""
    W, W_svm, W_fin = (np.asarray(a, dtype=np.float64) for a in (W, W_svm, W_fin))
    denom = np.sum(W_svm * W_svm, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(
            denom > 0,
            np.sum((W - W_fin) * W_svm, axis=(-2, -1)) / np.where(denom > 0, denom, 1.0),
            np.nan,
        )
    return float(out) if out.ndim == 0 else out


def top_scc_attention_mass(attention: Any, tokens: Any, queries: Any, graphs: Any) -> np.ndarray:
    """Per sample, the largest total attention on the positions of one SCC of ``G^(query)``.

    Parameters
    ----------
    attention : array-like of shape (n, T)
        Attention of each position (0 on padding).
    tokens : array-like of int of shape (n, T)
        Token ids, -1 on padding.
    queries : array-like of int of shape (n,)
    graphs : PriorityGraphs

    Returns
    -------
    ndarray of shape (n,)
    """
    attention = np.asarray(attention, dtype=np.float64)
    segments, n_segments, owner = _scc_segments(np.asarray(tokens), np.asarray(queries), graphs)
    mass = np.bincount(segments.ravel(), weights=attention.ravel(), minlength=n_segments + 1)[:-1]
    best = np.zeros(attention.shape[0])
    np.maximum.at(best, owner, mass)
    return best


def _scc_segments(
    tokens: np.ndarray, queries: np.ndarray, graphs: Any
) -> tuple[np.ndarray, int, np.ndarray]:
    """Number each distinct (sample, SCC) pair; padding (and pairs not in the graph) get the id
    ``n_segments``. Returns (segment id per position, n_segments, sample of each segment)."""
    n, T = tokens.shape
    valid = tokens >= 0
    scc = np.asarray(graphs.scc_of(np.broadcast_to(queries[:, None], (n, T))[valid], tokens[valid]))
    sample = np.broadcast_to(np.arange(n)[:, None], (n, T))[valid]
    # a token absent from G^(query) forms its own group
    scc = np.where(scc >= 0, scc, -1 - tokens[valid])
    keys = np.stack([sample, scc], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    segments = np.full((n, T), unique.shape[0], dtype=np.int64)
    segments[valid] = inverse.reshape(-1)
    return segments, int(unique.shape[0]), unique[:, 0]


def svm_norm_for(model: AttentionConfig, optimizer: Any = None, svm_norm: str | None = None) -> str:
    """The Graph-SVM norm a run is measured against.

    Parameters
    ----------
    model : AttentionConfig
        Its parameterization gives the default: Frobenius for ``W`` itself, the nuclear norm for
        ``W = K Q^T`` with both factors trained (an extension beyond the paper).
    optimizer : StepRule or str, optional
        The run's step rule (or its name); used only with ``svm_norm="auto"``.
    svm_norm : str, optional
        ``None`` (default): the parameterization's default above, whatever the optimiser.
        ``"auto"``: the norm the optimiser's geometry is expected to select
        (:func:`attnmech.layer.optim.expected_svm_norm`, e.g. ``linf`` for ``sign``, ``lp:3`` for
        ``mirror`` with ``p=3``). Any norm name of :mod:`attnmech.theory.norms` is used as given.

    Returns
    -------
    str
        A canonical norm name of :func:`attnmech.theory.norms.parse_norm`.

    Raises
    ------
    InvalidParameterError
        An unknown norm name, or ``"auto"`` for an optimiser without a prediction.

    Examples
    --------
    >>> svm_norm_for(AttentionConfig()), svm_norm_for(AttentionConfig(), "sign", "auto")
    ('fro', 'linf')
    """
    from ..theory.norms import parse_norm
    from .optim import expected_svm_norm

    if svm_norm is None:
        return "nuclear" if model.parameterization == "factorized" else "fro"
    if isinstance(svm_norm, str) and svm_norm.strip().lower() == "auto":
        if optimizer is None:
            raise InvalidParameterError(
                'svm_norm="auto" needs the optimizer whose geometry it names; pass it, or give '
                "a norm name such as 'linf'"
            )
        return expected_svm_norm(optimizer, model.parameterization)
    return parse_norm(svm_norm).name


# ---------------------------------------------------------------------------------- S_fin
DENSE_BASIS_BYTES = 16 * 2**20
"""Largest stacked dense ``S_fin`` basis (B x p x d x d float64) :class:`FiniteProjection` keeps;
above it (and for every token-space theory) it projects through ``theory.finite.subspace``."""


class FiniteProjection:
    """``Proj_{S_fin}`` of each trial of a batch: the one place that projects onto ``S_fin``.

    Used by :class:`TrajectoryMetrics` (``Proj_{S_fin} W`` for the finite-part gaps and
    ``corr_perp_svm``) and by :func:`attnmech.run_finite_trajectory` (the gradient of ``W_fin(t)``
    projected onto ``S_fin``). Two ways, chosen once:

    - small dense problems (the paper's sizes): each trial's orthonormal basis, zero-padded to the
      largest dimension, ``basis`` of shape (B, p, d, d) (what earlier versions always did, so
      their histories are reproduced bit for bit);
    - token-space theories, or a stacked basis above :data:`DENSE_BASIS_BYTES`: the factored
      ``theory.finite.subspace.project`` (O(size of the graphs); ``basis`` is None).

    Parameters
    ----------
    theories : list of Theory
        One per trial.
    embedding_dim : int
    """

    def __init__(self, theories: Sequence[Any], embedding_dim: int) -> None:
        d = embedding_dim
        from ..theory.tokenspace import TokenFiniteResult

        finites = [t.finite for t in theories]
        self.subspaces = [getattr(f, "subspace", None) for f in finites]
        token = any(isinstance(f, TokenFiniteResult) for f in finites)
        p = max((int(getattr(f, "dimension", 0) or 0) for f in finites), default=0)
        self.basis: np.ndarray | None = None
        small = len(theories) * p * d * d * 8 <= DENSE_BASIS_BYTES
        if not token and (small or any(s is None for s in self.subspaces)):
            bases = [np.asarray(f.basis, dtype=np.float64).reshape(-1, d, d) for f in finites]
            p = max((arr.shape[0] for arr in bases), default=0)
            self.basis = np.zeros((len(theories), p, d, d))  # (B, p, d, d), zero-padded
            for b, arr in enumerate(bases):
                self.basis[b, : arr.shape[0]] = arr
        self._tensors: dict[tuple[Any, str], Tensor] = {}

    def project(self, W: np.ndarray) -> np.ndarray:
        """``Proj_{S_fin} W`` for ``W`` of shape (B, d, d), float64 numpy."""
        if self.basis is None:
            return np.stack([s.project(W[b]) for b, s in enumerate(self.subspaces)])  # type: ignore[union-attr]
        return project(W, self.basis)  # (B, d, d): one basis per trial

    def project_tensor(self, G: Tensor) -> Tensor:
        """``Proj_{S_fin} G`` for a tensor ``G`` of shape (B, d, d) (in its dtype and device)."""
        if self.basis is None:
            G_np = G.detach().cpu().numpy().astype(np.float64)
            return torch.as_tensor(self.project(G_np), dtype=G.dtype, device=G.device)
        key = (G.dtype, str(G.device))
        if key not in self._tensors:
            self._tensors[key] = torch.as_tensor(self.basis, dtype=G.dtype, device=G.device)
        return project(G, self._tensors[key])  # (B, d, d), elementwise on tiny sizes


class _TokenTheoryTables:
    """The theory metrics of one trial from its sparse score tables (token-space theories).

    ``W_svm``, ``W_fin`` and ``Proj_{S_fin} W`` are all supported on few (token, query) entries,
    so every inner product and norm needs only the scores of ``W`` there, plus ``||W||_F``: no
    ``d x d`` matrix of the theory is formed. Equal to the dense formulas (tested).
    """

    def __init__(self, theory: Any) -> None:
        self.E = theory.finite.subspace._E  # None for one-hot embeddings
        svm, fin, sub = theory.svm.scores, theory.finite.scores, theory.finite.subspace
        self.svm_token, self.svm_query, self.svm_value = svm.token, svm.query, svm.value
        self.fin_token, self.fin_query, self.fin_value = fin.token, fin.query, fin.value
        self.subspace = sub
        self.svm_sq = float(self.svm_value @ self.svm_value)
        self.fin_sq = float(self.fin_value @ self.fin_value)
        self.fin_svm = float(svm[fin.token, fin.query] @ fin.value)  # <W_fin, W_svm>
        self.sub_fin = fin[sub._token, sub._query] if sub.dimension else np.zeros(0)
        self.sub_svm = svm[sub._token, sub._query] if sub.dimension else np.zeros(0)

    def entries(self, W: np.ndarray, token: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Scores ``e_t^T W e_q`` of ``W`` (d, d) on the given entries."""
        if self.E is None:
            return W[token, query]
        out = np.empty(token.size)
        for lo in range(0, token.size, 65536):  # (chunk, d) rows at a time
            hi = lo + 65536
            out[lo:hi] = np.einsum(
                "vi,ij,vj->v", self.E[token[lo:hi]], W, self.E[query[lo:hi]], optimize=True
            )
        return out

    def __call__(self, W: np.ndarray, W_fin_t: np.ndarray | None) -> dict[str, float]:
        """The metrics of a dense ``W`` (d, d)."""
        return self.from_entries(
            lambda token, query: self.entries(W, token, query), float(np.vdot(W, W)), W_fin_t
        )

    def from_entries(
        self, entries: Any, w_sq: float, W_fin_t: np.ndarray | None
    ) -> dict[str, float]:
        """The metrics from ``entries(token, query)`` (scores of ``W``) and ``||W||_F^2``."""
        nan = float("nan")
        w_svm = float(entries(self.svm_token, self.svm_query) @ self.svm_value)
        w_fin = float(entries(self.fin_token, self.fin_query) @ self.fin_value)
        sub = self.subspace
        if sub.dimension:
            values = entries(sub._token, sub._query)
            starts = np.flatnonzero(np.r_[True, np.diff(sub._group) != 0])
            proj = values - (np.add.reduceat(values, starts) / sub._group_size)[sub._group]
        else:
            proj = np.zeros(0)
        proj_sq = float(proj @ proj)
        proj_svm = float(proj @ self.sub_svm)
        out: dict[str, float] = {}
        svm_norm = np.sqrt(self.svm_sq)
        w_norm = np.sqrt(w_sq)
        ok = self.svm_sq > 0 and w_sq > 0
        out["corr_svm"] = w_svm / (w_norm * svm_norm) if ok else nan
        R = (w_svm - self.fin_svm) / self.svm_sq if self.svm_sq > 0 else nan
        out["fitted_R"] = R
        if np.isfinite(R):
            target_sq = self.fin_sq + 2 * R * self.fin_svm + R * R * self.svm_sq
            denom = w_norm * np.sqrt(max(target_sq, 0.0))
            out["corr_svm_fin"] = (w_fin + R * w_svm) / denom if denom > 0 else nan
        else:
            out["corr_svm_fin"] = nan
        perp_sq = max(w_sq - proj_sq, 0.0)  # ||W - P||^2, P an orthogonal projection
        denom = np.sqrt(perp_sq) * svm_norm
        out["corr_perp_svm"] = (w_svm - proj_svm) / denom if denom > 0 else nan
        gap_sq = proj_sq - 2 * float(proj @ self.sub_fin) + self.fin_sq
        out["fin_gap"] = np.sqrt(max(gap_sq, 0.0))
        if isinstance(W_fin_t, SubspaceEntries):  # W_fin(t) given on the S_fin entries
            traj = W_fin_t.values if sub.dimension else np.zeros(0)
            traj_sq = float(W_fin_t.values @ W_fin_t.values)
            out["fin_gap_traj"] = np.sqrt(max(proj_sq - 2 * float(proj @ traj) + traj_sq, 0.0))
        elif W_fin_t is not None:
            traj = sub.scores(W_fin_t) if sub.dimension else np.zeros(0)
            traj_sq = float(np.vdot(W_fin_t, W_fin_t))
            out["fin_gap_traj"] = np.sqrt(max(proj_sq - 2 * float(proj @ traj) + traj_sq, 0.0))
        return out


@dataclass(frozen=True, eq=False)
class SubspaceEntries:
    """A matrix of ``S_fin`` given by its values on the subspace's (token, query) entries, in
    the order of ``theory.finite.subspace`` (one-hot token-space theories): ``W_fin(t)`` without
    a ``K x K`` array."""

    values: np.ndarray


# ---------------------------------------------------------------------------------- per step
class TrajectoryMetrics:
    """The metrics of the module table for a batch of trials, at any ``W``.

    Parameters
    ----------
    inputs : AttentionInputs
        The trials' training data (as built by :func:`attnmech.layer.model.inputs_from_datasets`).
    datasets : list of Dataset
        One per trial (for the automaton's input).
    theories : list of Theory
        One per trial (``W_svm``, ``W_fin``, ``graphs``, ``finite.basis``, ``automaton()``).
    config : AttentionConfig, optional
        The head whose next-token distribution is compared with the automaton.

    Notes
    -----
    Calling it with ``W`` of shape (B, d, d) (and optionally ``W_fin(t)`` of the same shape)
    returns a dict of metric name to ndarray of shape (B,).
    """

    def __init__(
        self,
        inputs: AttentionInputs,
        datasets: Sequence[Dataset],
        theories: Sequence[Any],
        config: AttentionConfig | None = None,
    ) -> None:
        if len(datasets) != inputs.num_trials or len(theories) != inputs.num_trials:
            raise InvalidDatasetError(
                f"need one dataset and one theory per trial ({inputs.num_trials}), got "
                f"{len(datasets)} and {len(theories)}"
            )
        self.inputs = inputs
        self.datasets = list(datasets)
        self.theories = list(theories)
        self._dense: dict[str, np.ndarray] = {}
        self.head_name = (config or AttentionConfig()).head
        self.head = HEADS[self.head_name]
        d = inputs.embedding_dim
        from ..theory.tokenspace import TokenFiniteResult, TokenSVMResult

        self.tables: list[_TokenTheoryTables] | None = None
        if all(
            isinstance(getattr(t, "svm", None), TokenSVMResult)
            and isinstance(getattr(t, "finite", None), TokenFiniteResult)
            for t in theories
        ):  # sparse score tables: nothing d x d of the theory is built
            self.tables = [_TokenTheoryTables(t) for t in theories]
        else:
            self.fin = FiniteProjection(theories, d)
        self.automata = [t.automaton() for t in theories]
        self.padded = [ds.padded() for ds in datasets]
        self.queries = [ds.last_tokens for ds in datasets]
        n = inputs.n_samples
        self.real = np.arange(n)[None, :] < inputs.n_real[:, None]  # (B, n)
        # SCC segments of every trial, numbered globally: segment ids (B, n, T)
        tokens = inputs.tokens.cpu().numpy()
        queries = inputs.queries.cpu().numpy()
        B = inputs.num_trials
        seg = np.empty(tokens.shape, dtype=np.int64)
        owners, offset = [], 0
        for b, theory in enumerate(theories):  # set-up only: one pass per trial
            s, count, owner = _scc_segments(tokens[b], queries[b], theory.graphs)
            seg[b] = np.where(s == count, -1, s + offset)
            owners.append(owner + b * n)
            offset += count
        self.n_segments = offset
        seg[seg < 0] = offset  # padding -> a dump segment
        self.segments = torch.as_tensor(seg.reshape(-1), device=inputs.device)
        self.segment_owner = torch.as_tensor(
            np.concatenate(owners + [np.zeros(1, np.int64)]), device=inputs.device
        )
        # (sample, token) cell of every position, for the TV distance without (n, K) tables
        mask = inputs.mask.cpu().numpy()
        cell_keys = (np.arange(B * n).reshape(B, n, 1) * inputs.vocab_size + tokens)[mask]
        _, cell = np.unique(cell_keys, return_inverse=True)
        self.n_cells = int(cell.max(initial=-1)) + 1
        self.position_cell = np.full(tokens.shape, self.n_cells, dtype=np.int64)
        self.position_cell[mask] = cell.reshape(-1)
        self.cell_sample = np.zeros(self.n_cells + 1, dtype=np.int64)
        self.cell_sample[self.position_cell[mask]] = np.broadcast_to(
            np.arange(B * n).reshape(B, n, 1), tokens.shape
        )[mask]

    def use_pair_entries(self, W_start: Tensor | None, *, off_sq: float | None = None) -> None:
        """Take ``W`` as its pair entries from now on (one-hot inputs, one trial, token-space
        theory): ``self(theta)`` with ``theta`` of shape (1, P), ``W`` being ``W_start`` with
        ``W.reshape(-1)[inputs.pair_flat] = theta``. Nothing ``K x K`` is touched per call.

        Without ``W_start`` (None), ``off_sq`` gives the sum of squares of the entries of ``W``
        outside the pairs (nothing ``K x K`` is needed at all).
        """
        inputs = self.inputs
        if inputs.pair_flat is None or inputs.num_trials != 1 or self.tables is None:
            raise InvalidParameterError(
                "pair entries need one-hot inputs, one trial and a token-space theory"
            )
        flat = inputs.pair_flat
        self._pair_keys = flat.cpu().numpy()
        self._pair_index: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if W_start is None:
            if off_sq is None:
                raise InvalidParameterError("use_pair_entries needs W_start or off_sq")
            self._off_sq = float(off_sq)
            return
        start = W_start.detach().reshape(-1)
        self._off_sq = float(torch.vdot(start, start) - torch.vdot(start[flat], start[flat]))

    def pair_norm(self, theta: Tensor) -> float:
        """``||W||_F`` of the pair entries ``theta`` (see :meth:`use_pair_entries`)."""
        return float(
            np.sqrt(self._off_sq + float(torch.vdot(theta.reshape(-1), theta.reshape(-1))))
        )

    def __call__(
        self, W: Tensor | np.ndarray, W_fin_t: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        inputs = self.inputs
        W_t = torch.as_tensor(
            np.array(W) if not isinstance(W, Tensor) else W,
            dtype=inputs.dtype,
            device=inputs.device,
        )
        pairs = getattr(self, "_pair_keys", None) is not None and W_t.ndim == 2
        sparse_tv = self.tables is not None and self.head_name == "iden"
        with torch.no_grad():
            if pairs:
                padding = torch.full((1,), -torch.inf, dtype=W_t.dtype, device=W_t.device)
                scores = torch.cat([W_t.reshape(-1), padding])
            else:
                scores = pair_scores(W_t, inputs)
            state = self.head.forward(scores, inputs)
            attention = self.head.attention(state, inputs)  # (B, n, T)
            probs = (
                None if sparse_tv else self.head.probabilities(state, inputs).cpu().numpy()
            )  # (B, n, K)
            label_mass = (attention * inputs.label_mask).sum(-1).cpu().numpy()  # (B, n)
            B, n, _ = attention.shape
            seg_mass = torch.zeros(
                self.n_segments + 1, dtype=attention.dtype, device=attention.device
            )
            seg_mass.index_add_(0, self.segments, attention.reshape(-1))
            best = torch.zeros(B * n, dtype=attention.dtype, device=attention.device)
            best.scatter_reduce_(0, self.segment_owner[:-1], seg_mass[:-1], reduce="amax")
            top_mass = best.reshape(B, n).cpu().numpy()
        W_np = W_t.detach().cpu().numpy().astype(np.float64, copy=False)
        if self.tables is not None:
            if pairs:
                K, theta = inputs.vocab_size, W_np.reshape(-1)
                keys, found = self._pair_keys, self._pair_index

                def entries(token: np.ndarray, query: np.ndarray) -> np.ndarray:
                    # the theory's entry arrays are the same objects at every call: look up once
                    if id(token) not in found:
                        found[id(token)] = (token, np.searchsorted(keys, token * K + query))
                    return theta[found[id(token)][1]]

                w_sq = self._off_sq + float(theta @ theta)
                fin_t = (
                    W_fin_t
                    if W_fin_t is None or isinstance(W_fin_t, SubspaceEntries)
                    else np.asarray(W_fin_t)[0]
                )
                rows = [self.tables[0].from_entries(entries, w_sq, fin_t)]
            else:
                rows = [
                    table(W_np[b], None if W_fin_t is None else np.asarray(W_fin_t)[b])
                    for b, table in enumerate(self.tables)
                ]
            out: dict[str, Any] = {k: np.array([row[k] for row in rows]) for k in rows[0]}
            R = out["fitted_R"]
            R_or_zero = np.where(np.isfinite(R), R, 0.0)
            out["top_scc_mass"] = _mean_real(top_mass, self.real)
            out["label_attention"] = _mean_real(label_mass, self.real)
            if sparse_tv:
                out["automaton_tv"] = self.automaton_tv_positions(
                    attention.cpu().numpy(), R_or_zero
                )
            else:
                assert probs is not None
                out["automaton_tv"] = self.automaton_tv(probs, R_or_zero)
            return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
        assert probs is not None
        proj = self.fin.project(W_np)
        R = fitted_scale(W_np, self.W_svm, self.W_fin)
        R_or_zero = np.where(np.isfinite(R), R, 0.0)
        out = {
            "corr_svm": correlation(W_np, self.W_svm),
            "corr_svm_fin": np.where(
                np.isfinite(R),
                correlation(W_np, self.W_fin + R_or_zero[:, None, None] * self.W_svm),
                np.nan,
            ),
            "corr_perp_svm": correlation(W_np - proj, self.W_svm),
            "fin_gap": np.linalg.norm(proj - self.W_fin, axis=(-2, -1)),
            "fitted_R": R,
            "top_scc_mass": _mean_real(top_mass, self.real),
            "label_attention": _mean_real(label_mass, self.real),
            "automaton_tv": self.automaton_tv(probs, R_or_zero),
        }
        if W_fin_t is not None:
            out["fin_gap_traj"] = np.linalg.norm(proj - np.asarray(W_fin_t), axis=(-2, -1))
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}

    @property
    def W_svm(self) -> np.ndarray:
        """ndarray of shape (B, d, d): the trials' ``W_svm`` (built on first use)."""
        if "W_svm" not in self._dense:
            self._dense["W_svm"] = np.stack(
                [np.asarray(t.W_svm, dtype=np.float64) for t in self.theories]
            )
        return self._dense["W_svm"]

    @property
    def W_fin(self) -> np.ndarray:
        """ndarray of shape (B, d, d): the trials' ``W_fin`` (built on first use)."""
        if "W_fin" not in self._dense:
            self._dense["W_fin"] = np.stack(
                [np.asarray(t.W_fin, dtype=np.float64) for t in self.theories]
            )
        return self._dense["W_fin"]

    def automaton_tv_positions(self, attention: np.ndarray, R: np.ndarray | None) -> np.ndarray:
        """:meth:`automaton_tv` for the ``iden`` head from the attention (B, n, T) alone.

        Both distributions live on the tokens of the window, so the distance is summed over the
        (sample, token) cells of the window: O(n T), never an (n, K) table.
        """
        B, n, T = attention.shape
        diff = np.zeros(attention.shape)
        if not hasattr(self, "_position_scores"):  # the automaton's scores per position: constant
            self._position_scores = []
            for b, automaton in enumerate(self.automata):
                tokens, q = self.padded[b], self.queries[b]
                mask = tokens >= 0
                safe = np.where(mask, tokens, 0)
                svm = np.where(mask, automaton.svm_table[safe, q[:, None]], -np.inf)
                fin = np.asarray(automaton.fin_table[safe, q[:, None]])
                self._position_scores.append((mask, svm, fin, automaton.tie_tol))
        for b, (mask, svm, fin, tie_tol) in enumerate(self._position_scores):
            # Automaton.position_weights on cached scores
            if R is None:
                kept = mask & (svm >= svm.max(axis=1, keepdims=True) - tie_tol)
                logits = np.where(kept, fin, -np.inf)
            else:
                logits = np.where(mask, float(R[b]) * svm + fin, -np.inf)
            logits = logits - logits.max(axis=1, keepdims=True)
            weights = np.exp(logits)
            expected = weights / weights.sum(axis=1, keepdims=True)
            m, width = expected.shape
            diff[b, :m, :width] = attention[b, :m, :width] - expected
        cells = np.bincount(
            self.position_cell.ravel(), weights=diff.ravel(), minlength=self.n_cells + 1
        )[:-1]
        per_sample = np.bincount(
            self.cell_sample[:-1], weights=np.abs(cells), minlength=B * n
        ).reshape(B, n)
        real = self.real
        return 0.5 * (per_sample * real).sum(-1) / np.maximum(real.sum(-1), 1)

    def automaton_tv(self, probs: np.ndarray, R: np.ndarray | None) -> np.ndarray:
        """Mean total-variation distance between ``probs`` (B, n, K), the model's next-token
        distributions, and the automaton's at scale ``R`` (B,), per trial (R None: R = infinity).
        """
        tv = np.empty(len(self.automata))
        for b, automaton in enumerate(self.automata):  # one call per trial into the automaton
            radius = None if R is None else float(R[b])
            expected = np.asarray(
                automaton.predict_proba(self.padded[b], self.queries[b], R=radius)
            )
            m = expected.shape[0]
            tv[b] = 0.5 * np.abs(probs[b, :m] - expected).sum(-1).mean()
        return tv


def _mean_real(values: np.ndarray, real: np.ndarray) -> np.ndarray:
    return (values * real).sum(-1) / np.maximum(real.sum(-1), 1)
