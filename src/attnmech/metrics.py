"""Measuring a trained ``W`` against the theory (SPEC sections 6, 7 and 9).

The theorem says ``W(t)`` is about ``R(t) W_svm + W_fin``: its direction tends to ``W_svm``, its
projection onto ``S_fin`` tends to ``W_fin``, and the model then acts as the automaton (hard
retrieval of the top SCC, soft composition inside it). :class:`TrajectoryMetrics` computes the
measures of the paper's figures for a batch of trials at once (it is what :func:`attnmech.train`
logs), and :func:`verify` reports them for a finished run.

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

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .data import Dataset
from .errors import InvalidDatasetError
from .finite import project
from .model import HEADS, AttentionConfig, AttentionInputs, inputs_from_datasets, pair_scores

__all__ = [
    "METRICS",
    "correlation",
    "project",
    "fitted_scale",
    "top_scc_attention_mass",
    "TrajectoryMetrics",
    "VerificationReport",
    "verify",
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
        B, d = inputs.num_trials, inputs.embedding_dim
        self.W_svm = np.stack(
            [np.asarray(t.W_svm, dtype=np.float64) for t in theories]
        )  # (B, d, d)
        self.W_fin = np.stack(
            [np.asarray(t.W_fin, dtype=np.float64) for t in theories]
        )  # (B, d, d)
        p = max((np.asarray(t.finite.basis).shape[0] for t in theories), default=0)
        self.basis = np.zeros((B, p, d, d))  # zero-padded per trial
        for b, theory in enumerate(theories):
            arr = np.asarray(theory.finite.basis, dtype=np.float64).reshape(-1, d, d)
            self.basis[b, : arr.shape[0]] = arr
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
        proj = np.einsum("bp,bpij->bij", np.einsum("bij,bpij->bp", W_np, self.basis), self.basis)
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
            "automaton_tv": self._automaton_tv(probs, R_or_zero),
        }
        if W_fin_t is not None:
            out["fin_gap_traj"] = np.linalg.norm(proj - np.asarray(W_fin_t), axis=(-2, -1))
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}

    def _automaton_tv(self, probs: np.ndarray, R: np.ndarray | None) -> np.ndarray:
        """Mean total-variation distance to the automaton, per trial (R None: R = infinity)."""
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


# ---------------------------------------------------------------------------------- report
@dataclass(frozen=True, slots=True, eq=False)
class VerificationReport:
    """How closely a trained ``W`` follows the theory.

    Attributes
    ----------
    metrics : dict of str to ndarray of shape (num_trials,)
        The metrics of :data:`METRICS` (NaN where undefined, e.g. correlations when W_svm = 0).
    num_trials : int
    is_cyclic : ndarray of bool of shape (num_trials,)
        Whether each trial's data has an SCC of size > 1.
    svm_norm, fin_norm : ndarray of shape (num_trials,)
        ``||W_svm||_F`` and ``||W_fin||_F``.
    config : AttentionConfig
    """

    metrics: dict[str, np.ndarray]
    num_trials: int
    is_cyclic: np.ndarray
    svm_norm: np.ndarray
    fin_norm: np.ndarray
    config: AttentionConfig = field(default_factory=AttentionConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: per metric its mean, std, min, max (over finite values) and values."""
        return {
            "num_trials": self.num_trials,
            "head": self.config.head,
            "loss": self.config.loss,
            "is_cyclic": [bool(c) for c in self.is_cyclic],
            "svm_norm": [float(v) for v in self.svm_norm],
            "fin_norm": [float(v) for v in self.fin_norm],
            "metrics": {name: _stats(values) for name, values in self.metrics.items()},
        }

    def to_table(self) -> str:
        """A plain-text table: one row per metric (mean +- std over trials, min, max)."""
        header = f"{'metric':<18} {'mean':>12} {'std':>10} {'min':>12} {'max':>12}  meaning"
        lines = [
            f"{self.num_trials} trial(s), head={self.config.head}, loss={self.config.loss}",
            header,
            "-" * len(header),
        ]
        for name, values in self.metrics.items():
            s = _stats(values)
            cells = [_fmt(s[k]) for k in ("mean", "std", "min", "max")]
            row = f"{name:<18} {cells[0]:>12} {cells[1]:>10} {cells[2]:>12} {cells[3]:>12}"
            lines.append(f"{row}  {METRICS.get(name, '')}")
        return "\n".join(lines)


def _stats(values: np.ndarray) -> dict[str, Any]:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    finite = values[np.isfinite(values)]
    return {
        "mean": float(finite.mean()) if finite.size else None,
        "std": float(finite.std()) if finite.size else None,
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "values": [float(v) if np.isfinite(v) else None for v in values],
    }


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.6g}"


def verify(
    dataset: Dataset | Sequence[Dataset],
    W_or_run: Any,
    theory: Any = None,
    *,
    config: AttentionConfig | None = None,
) -> VerificationReport:
    """Compare a trained ``W`` with the theory's prediction on its training data.

    Parameters
    ----------
    dataset : Dataset or list of Dataset
        The training data (one dataset for all trials, or one per trial).
    W_or_run : ndarray of shape (d, d) or (B, d, d), TrainResult, or path to a saved run (.npz)
    theory : Theory or list of Theory, optional
        Default: :func:`attnmech.solve` on each dataset.
    config : AttentionConfig, optional
        Head and loss; default the run's (or the iden head with log-loss for a bare ``W``).

    Returns
    -------
    VerificationReport
    """
    from .train import TrainResult, load_run, torch_threads

    if isinstance(W_or_run, (str, os.PathLike)):
        W_or_run = load_run(W_or_run)
    if isinstance(W_or_run, TrainResult):
        config = config if config is not None else W_or_run.config.model
        W = np.array(W_or_run.W, dtype=np.float64)
    else:
        W = np.array(W_or_run, dtype=np.float64)
    config = config if config is not None else AttentionConfig()
    if W.ndim not in (2, 3) or W.shape[-1] != W.shape[-2]:
        raise InvalidDatasetError(f"W must have shape (d, d) or (B, d, d), got {W.shape}")
    W = W if W.ndim == 3 else W[None]
    B = W.shape[0]
    datasets = [dataset] if isinstance(dataset, Dataset) else list(dataset)
    if not datasets or not all(isinstance(ds, Dataset) for ds in datasets):
        raise InvalidDatasetError("verify expects an attnmech.Dataset or a list of them")
    if datasets[0].embedding_dim != W.shape[-1]:
        raise InvalidDatasetError(
            f"W is {W.shape[-1]} x {W.shape[-1]} but the embeddings have dimension "
            f"{datasets[0].embedding_dim}; pass the dataset the run was trained on"
        )
    if theory is None:
        from . import solve
        from .train import svm_norm_for

        theories = [solve(ds, svm_norm=svm_norm_for(config)) for ds in datasets]
    else:
        theories = list(theory) if isinstance(theory, (list, tuple)) else [theory]
    if len(theories) != len(datasets):
        raise InvalidDatasetError(f"got {len(theories)} theories for {len(datasets)} datasets")
    if B % len(datasets):
        raise InvalidDatasetError(f"{B} trials cannot be split over {len(datasets)} datasets")
    repeat = B // len(datasets)  # trials are dataset-major (as in train)
    trial_datasets = [ds for ds in datasets for _ in range(repeat)]
    trial_theories = [t for t in theories for _ in range(repeat)]
    with torch_threads(None, sum(ds.n_samples * ds.max_length for ds in trial_datasets)):
        inputs = inputs_from_datasets(
            trial_datasets, dtype=config.torch_dtype, device=config.device
        )
        recorder = TrajectoryMetrics(inputs, trial_datasets, trial_theories, config)
        from .model import AttentionObjective

        W_t = torch.as_tensor(W, dtype=inputs.dtype, device=inputs.device)
        with torch.no_grad():
            combined = replace(config, parameterization="combined")  # W itself is given
            loss = AttentionObjective(inputs, combined).risk(W_t).cpu().numpy()
        values = recorder(W_t)
        probs = _head_probabilities(W_t, inputs, config)
        values["automaton_tv_hard"] = recorder._automaton_tv(probs, None)
    metrics = {"loss": loss, "norm": np.linalg.norm(W, axis=(-2, -1))}
    metrics.update({k: values[k] for k in METRICS if k in values})
    readonly = {}
    for key, value in metrics.items():
        arr = np.array(value, dtype=np.float64)
        arr.flags.writeable = False
        readonly[key] = arr
    return VerificationReport(
        metrics=readonly,
        num_trials=B,
        is_cyclic=np.array([bool(t.graphs.is_cyclic) for t in trial_theories]),
        svm_norm=np.linalg.norm(recorder.W_svm, axis=(-2, -1)),
        fin_norm=np.linalg.norm(recorder.W_fin, axis=(-2, -1)),
        config=config,
    )


def _head_probabilities(W: Tensor, inputs: AttentionInputs, config: AttentionConfig) -> np.ndarray:
    head = HEADS[config.head]
    with torch.no_grad():
        state = head.forward(pair_scores(W, inputs), inputs)
        return head.probabilities(state, inputs).cpu().numpy()
