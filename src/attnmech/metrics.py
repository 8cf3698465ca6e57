"""Measuring a trained ``W`` against the theory (SPEC sections 6, 7 and 9).

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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .data import Dataset
from .errors import InvalidDatasetError, InvalidParameterError
from .finite import project
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
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
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
        (:func:`attnmech.optim.expected_svm_norm`, e.g. ``linf`` for ``sign``, ``lp:3`` for
        ``mirror`` with ``p=3``). Any norm name of :mod:`attnmech.norms` is used as given.

    Returns
    -------
    str
        A canonical norm name of :func:`attnmech.norms.parse_norm`.

    Raises
    ------
    InvalidParameterError
        An unknown norm name, or ``"auto"`` for an optimiser without a prediction.

    Examples
    --------
    >>> svm_norm_for(AttentionConfig()), svm_norm_for(AttentionConfig(), "sign", "auto")
    ('fro', 'linf')
    """
    from .norms import parse_norm
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
class FiniteProjection:
    """``Proj_{S_fin}`` of each trial of a batch: the one place that projects onto ``S_fin``.

    Used by :class:`TrajectoryMetrics` (``Proj_{S_fin} W`` for the finite-part gaps and
    ``corr_perp_svm``) and by :func:`attnmech.run_finite_trajectory` (the gradient of ``W_fin(t)``
    projected onto ``S_fin``). It holds each trial's orthonormal basis densely, zero-padded to the
    largest dimension: ``basis`` of shape (B, p, d, d). A factored projection (through the
    generators ``(e_i - e_j) e_k^T``, without the dense basis) would replace the two methods here.

    Parameters
    ----------
    theories : list of Theory
        One per trial (``theory.finite.basis``, shape (p_b, d, d)).
    embedding_dim : int
    """

    def __init__(self, theories: Sequence[Any], embedding_dim: int) -> None:
        d = embedding_dim
        p = max((int(np.asarray(t.finite.basis).shape[0]) for t in theories), default=0)
        self.basis = np.zeros((len(theories), p, d, d))  # (B, p, d, d), zero-padded per trial
        for b, theory in enumerate(theories):
            arr = np.asarray(theory.finite.basis, dtype=np.float64).reshape(-1, d, d)
            self.basis[b, : arr.shape[0]] = arr
        self._tensors: dict[tuple[Any, str], Tensor] = {}

    def project(self, W: np.ndarray) -> np.ndarray:
        """``Proj_{S_fin} W`` for ``W`` of shape (B, d, d), float64 numpy."""
        coef = np.einsum("bij,bpij->bp", W, self.basis)  # (B, p)
        return np.einsum("bp,bpij->bij", coef, self.basis)

    def project_tensor(self, G: Tensor) -> Tensor:
        """``Proj_{S_fin} G`` for a tensor ``G`` of shape (B, d, d) (in its dtype and device)."""
        key = (G.dtype, str(G.device))
        if key not in self._tensors:
            self._tensors[key] = torch.as_tensor(self.basis, dtype=G.dtype, device=G.device)
        basis = self._tensors[key]
        coef = (basis * G[:, None]).sum((-2, -1))  # (B, p); elementwise: no BLAS on tiny sizes
        return (coef[..., None, None] * basis).sum(1)  # (B, d, d)


# ---------------------------------------------------------------------------------- per step
class TrajectoryMetrics:
    """The metrics of the module table for a batch of trials, at any ``W``.

    Parameters
    ----------
    inputs : AttentionInputs
        The trials' training data (as built by :func:`attnmech.model.inputs_from_datasets`).
    datasets : list of Dataset
        One per trial (for the automaton's input).
    theories : list of Theory
        One per trial (``W_svm``, ``W_fin``, ``graphs``, ``finite.basis``, ``automaton()``).
    config : AttentionConfig, optional
        The head whose next-token distribution is compared with the automaton.

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
        self.head = HEADS[(config or AttentionConfig()).head]
        d = inputs.embedding_dim
        self.W_svm = np.stack(
            [np.asarray(t.W_svm, dtype=np.float64) for t in theories]
        )  # (B, d, d)
        self.W_fin = np.stack(
            [np.asarray(t.W_fin, dtype=np.float64) for t in theories]
        )  # (B, d, d)
        self.fin = FiniteProjection(theories, d)
        self.automata = [t.automaton() for t in theories]
        self.padded = [ds.padded() for ds in datasets]
        self.queries = [ds.last_tokens for ds in datasets]
        n = inputs.n_samples
        self.real = np.arange(n)[None, :] < inputs.n_real[:, None]  # (B, n)
        # SCC segments of every trial, numbered globally: segment ids (B, n, T)
        tokens = inputs.tokens.cpu().numpy()
        queries = inputs.queries.cpu().numpy()
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

    def __call__(
        self, W: Tensor | np.ndarray, W_fin_t: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        inputs = self.inputs
        W_t = torch.as_tensor(
            np.array(W) if not isinstance(W, Tensor) else W,
            dtype=inputs.dtype,
            device=inputs.device,
        )
        with torch.no_grad():
            state = self.head.forward(pair_scores(W_t, inputs), inputs)
            attention = self.head.attention(state, inputs)  # (B, n, T)
            probs = self.head.probabilities(state, inputs).cpu().numpy()  # (B, n, K)
            label_mass = (attention * inputs.label_mask).sum(-1).cpu().numpy()  # (B, n)
            B, n, _ = attention.shape
            seg_mass = torch.zeros(
                self.n_segments + 1, dtype=attention.dtype, device=attention.device
            )
            seg_mass.index_add_(0, self.segments, attention.reshape(-1))
            best = torch.zeros(B * n, dtype=attention.dtype, device=attention.device)
            best.scatter_reduce_(0, self.segment_owner[:-1], seg_mass[:-1], reduce="amax")
            top_mass = best.reshape(B, n).cpu().numpy()
        W_np = W_t.detach().cpu().numpy().astype(np.float64)
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
