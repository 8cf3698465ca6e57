"""The authors' training, replayed: full-batch SGD on ``grad / (||grad|| + eps)`` in float64.

:func:`train_authors` trains as the notebooks do (their ``-log(p_y + eps)`` log-loss or their
squared loss, their heads), :func:`authors_metrics` computes the notebooks' final metrics of one
trial against the exact Graph-SVM of :func:`attnmech.solve`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._results import readonly
from ..._validation import POSITIVE_INT, POSITIVE_REAL, check_params, register
from ...data.dataset import Dataset
from ...errors import InvalidParameterError
from .data import FLOAT64_EPS, LOG_FORMS, AuthorsSetting

__all__ = ["AuthorsRun", "attention_mass", "authors_metrics", "train_authors"]

_FAR = -1e30  # finite "minus infinity" for masked scores (keeps logsumexp's gradient finite)



@dataclass(frozen=True)
class AuthorsRun:
    """Result of :func:`train_authors`.

    Attributes
    ----------
    W : ndarray of shape (trials, d, d)
        Weights after ``num_steps`` updates.
    W_before_last : ndarray of shape (trials, d, d)
        Weights of the last forward pass (before the last update): the notebooks read the
        attention for the local graphs from it.
    loss_steps : ndarray of int64
    losses : ndarray of shape (trials, len(loss_steps))
        Training loss at ``W(step)`` (before that step's update).
    history_steps : ndarray of int64
    W_history : ndarray of shape (len(history_steps), trials, d, d)
        ``W`` after each recorded step (empty unless ``record_every`` > 0).
    """

    W: np.ndarray
    W_before_last: np.ndarray
    loss_steps: np.ndarray
    losses: np.ndarray
    history_steps: np.ndarray
    W_history: np.ndarray


def _padded_batch(
    datasets: list[Dataset] | tuple[Dataset, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = {ds.n_samples for ds in datasets}
    K = {ds.vocab_size for ds in datasets}
    d = {ds.embedding_dim for ds in datasets}
    if len(n) != 1 or len(K) != 1 or len(d) != 1:
        raise InvalidParameterError(
            "train_authors trains all trials in one batch: every dataset needs the same n, K "
            "and d; "
            f"got n={sorted(n)}, K={sorted(K)}, d={sorted(d)}"
        )
    width = max(ds.max_length for ds in datasets)
    seqs = np.full((len(datasets), n.pop(), width), -1, dtype=np.int64)
    for b, ds in enumerate(datasets):
        p = ds.padded()
        seqs[b, :, : p.shape[1]] = p
    labels = np.stack([ds.labels for ds in datasets])
    emb = np.stack([ds.embeddings for ds in datasets])
    return seqs, labels, emb


def _loss_fn(
    seqs: Any,
    queries: Any,
    labels: Any,
    emb: Any,
    *,
    head: str,
    loss: str,
    eps: float,
    n_full: int,
    log_form: str = "probability",
) -> Any:
    """Per-trial loss closure: ``W (B, d, d) -> (B,)``, written as the notebooks compute it."""
    import torch

    mask = seqs >= 0  # (B, n, T)
    tok = seqs.clamp(min=0)
    B, n, T = seqs.shape
    K = emb.shape[1]
    X = torch.gather(emb, 1, tok.reshape(B, n * T, 1).expand(-1, -1, emb.shape[2])).reshape(
        B, n, T, -1
    )
    q = torch.gather(emb, 1, queries.reshape(B, n, 1).expand(-1, -1, emb.shape[2]))  # (B, n, d)
    onehot = torch.nn.functional.one_hot(tok, K).double() * mask[..., None]  # (B, n, T, K)
    lab = labels.reshape(B, n, 1)

    def logits_of(W: Any) -> Any:
        qk = q @ W.transpose(1, 2)  # nn.Linear: x W^T, (B, n, d)
        scores = torch.einsum("bnd,bntd->bnt", qk, X)
        return scores.masked_fill(~mask, -math.inf)  # (B, n, T)

    def fn(W: Any) -> Any:
        scores = logits_of(W)
        s = torch.softmax(scores, dim=-1)
        if head == "iden":
            p = torch.einsum("bnt,bntk->bnk", s, onehot)  # (B, n, K)
            p_y = torch.gather(p, 2, lab).squeeze(-1)
            if loss == "log" and log_form == "logsumexp":
                lab_scores = scores.masked_fill(tok != lab, -math.inf)
                per = torch.logsumexp(scores, -1) - torch.logsumexp(lab_scores, -1)
            elif loss == "log" and log_form == "exact":
                # -log p_y = softplus(lse(other scores) - lse(label scores)): the gradient keeps
                # the label's share sigmoid(a) ~ exp(a) even when p_y rounds to 1
                is_label = (tok == lab) & mask
                lse_lab = torch.logsumexp(scores.masked_fill(~is_label, _FAR), -1)
                lse_other = torch.logsumexp(scores.masked_fill(is_label | ~mask, _FAR), -1)
                per = torch.nn.functional.softplus(lse_other - lse_lab)
            elif loss == "log":
                per = -torch.log(p_y + eps)
            elif loss == "squared":
                per = (1.0 - p_y) ** 2
            else:
                raise InvalidParameterError(f"loss {loss!r} is not one of log, squared")
        elif head == "gen":
            out = torch.einsum("bnt,bntd->bnd", s, X)
            logits = torch.einsum("bkd,bnd->bnk", emb, out)
            if loss == "squared":
                per = (1.0 - torch.gather(torch.softmax(logits, -1), 2, lab).squeeze(-1)) ** 2
            elif loss == "ce":
                per = torch.nn.functional.cross_entropy(
                    (logits + eps).reshape(B * n, K), lab.reshape(-1), reduction="none"
                ).reshape(B, n)
            else:
                raise InvalidParameterError(
                    f"loss {loss!r} is not one of squared, ce for the gen head"
                )
        else:
            raise InvalidParameterError(f"head {head!r} is not one of iden, gen")
        return per.sum(dim=1) / n_full

    return fn


def _steps(
    fn: Any,
    W: Any,
    num_steps: int,
    learning_rate: float,
    loss_every: int,
    record_every: int,
    losses: list[np.ndarray],
    loss_steps: list[int],
    hist: list[np.ndarray],
    hist_steps: list[int],
) -> None:
    """The notebooks' loop: loss, gradient, ``g / (||g|| + eps)``, SGD step (in place on ``W``)."""
    import torch

    for step in range(num_steps):
        value = fn(W)  # (B,)
        (grad,) = torch.autograd.grad(value.sum(), W)
        if loss_every and step % loss_every == 0:
            loss_steps.append(step)
            losses.append(value.detach().numpy().copy())
        with torch.no_grad():
            norm = torch.linalg.vector_norm(grad, dim=(1, 2), keepdim=True)
            if step == num_steps - 1:
                fn.W_prev = W.detach().numpy().copy()
            W -= learning_rate * (grad / (norm + FLOAT64_EPS))
        if record_every and (step + 1) % record_every == 0:
            hist_steps.append(step + 1)
            hist.append(W.detach().numpy().copy())


TRAIN_AUTHORS_PARAMS = register(
    "train_authors", {"num_steps": [POSITIVE_INT], "learning_rate": [POSITIVE_REAL]}
)
"""The step count and learning rate of the authors' training loop."""


def train_authors(
    datasets: list[Dataset] | tuple[Dataset, ...],
    W0: Any,
    *,
    head: str = "iden",
    loss: str = "log",
    learning_rate: float = 0.01,
    num_steps: int = 4000,
    eps: float = FLOAT64_EPS,
    log_form: str = "probability",
    queries: Any = None,
    n_full: int | None = None,
    loss_every: int = 500,
    record_every: int = 0,
) -> AuthorsRun:
    """Train one layer per trial exactly as the notebooks do (float64, full batch).

    Each step: ``g = grad L(W)``, ``g <- g / (||g||_F + eps)``, ``W <- W - learning_rate g``
    (their ``normalize_grad`` followed by ``torch.optim.SGD``). The log-loss is their
    ``NLLLoss(log(p + eps))``; pass ``eps=0`` for the plain ``-log p_y`` of
    docs/theory.md#model-and-loss.

    Parameters
    ----------
    datasets : sequence of Dataset
        One per trial, all with the same n, K and d (sequences may be shorter: padded).
    W0 : array-like of shape (trials, d, d)
    head, loss : str
        ``iden`` with ``log`` (their ``nll``) or ``squared``; ``gen`` with ``squared`` (their
        ``lsq2``) or ``ce``.
    learning_rate, num_steps, eps : float, int, float
    log_form : {"probability", "logsumexp", "exact"}, default="probability"
        ``probability``: the notebooks' ``-log(p_y + eps)`` with ``p_y`` summed from the softmax.
        Once the softmax saturates ``p_y`` rounds to exactly 1 and the label's share of the
        gradient (``1 - p_y``) vanishes. ``logsumexp``: ``lse_t u_t - lse_{t: x_t = y} u_t``
        (docs/theory.md#model-and-loss), which autograd differentiates with the same loss of the
        label's share. ``exact``: ``softplus(lse_{x_t != y} u_t - lse_{x_t = y} u_t)``, whose
        gradient keeps it. ``eps`` is used by ``probability`` only.
    queries : array-like of shape (trials, n), optional
        Query token per sample (default: the last token). The finite-part model of the notebooks
        keeps the full sequence's last token as query for the reduced sequences.
    n_full : int, optional
        Divide the summed loss by this (default n); the notebooks' ``W_fin`` divides by the full n.
    loss_every : int
        Record the loss every this many steps.
    record_every : int
        Record ``W`` after every this many steps (0: not at all).
    """
    import torch

    check_params(
        {"num_steps": num_steps, "learning_rate": learning_rate},
        TRAIN_AUTHORS_PARAMS,
        where="train_authors",
    )
    if log_form not in LOG_FORMS:
        raise InvalidParameterError(
            f"log_form must be one of {', '.join(LOG_FORMS)}, got {log_form!r}"
        )
    if not (math.isfinite(eps) and eps >= 0):
        raise InvalidParameterError(f"eps must be a finite number >= 0, got {eps!r}")
    seqs_np, labels_np, emb_np = _padded_batch(datasets)
    B, n, _ = seqs_np.shape
    d = emb_np.shape[2]
    W0 = np.asarray(W0, dtype=np.float64)
    if W0.shape != (B, d, d):
        raise InvalidParameterError(
            f"W0 must have shape (trials, d, d) = ({B}, {d}, {d}), got {W0.shape}"
        )
    if queries is None:
        queries_np = np.stack([ds.last_tokens for ds in datasets])
    else:
        queries_np = np.asarray(queries, dtype=np.int64)
        if queries_np.shape != (B, n):
            raise InvalidParameterError(
                f"queries must have shape ({B}, {n}), got {queries_np.shape}"
            )
    fn = _loss_fn(
        torch.tensor(seqs_np),
        torch.tensor(queries_np),
        torch.tensor(labels_np),
        torch.tensor(emb_np),
        head=head,
        loss=loss,
        eps=eps,
        n_full=n if n_full is None else int(n_full),
        log_form=log_form,
    )
    W = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    loss_steps: list[int] = []
    losses: list[np.ndarray] = []
    hist_steps: list[int] = []
    hist: list[np.ndarray] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors of a few hundred entries: threads only add overhead
    try:
        _steps(
            fn,
            W,
            int(num_steps),
            learning_rate,
            loss_every,
            record_every,
            losses,
            loss_steps,
            hist,
            hist_steps,
        )
    finally:
        torch.set_num_threads(threads)
    return AuthorsRun(
        W=readonly(W.detach().numpy(), np.float64),
        W_before_last=readonly(fn.W_prev, np.float64),
        loss_steps=readonly(loss_steps, np.int64),
        losses=readonly(np.stack(losses, axis=1) if losses else np.zeros((B, 0)), np.float64),
        history_steps=readonly(hist_steps, np.int64),
        W_history=readonly(np.stack(hist) if hist else np.zeros((0, B, d, d)), np.float64),
    )


def attention_mass(dataset: Dataset, W: np.ndarray) -> np.ndarray:
    """Per-token attention mass ``a_j`` (n, K) of one trial at ``W``
    (docs/theory.md#local-convergence)."""
    E = dataset.embeddings
    seqs = dataset.padded()
    mask = seqs >= 0
    tok = np.where(mask, seqs, 0)
    scores = np.einsum("ntd,nd->nt", E[tok], E[dataset.last_tokens] @ W.T)
    scores = np.where(mask, scores, -np.inf)
    s = np.exp(scores - scores.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    mass = np.zeros((dataset.n_samples, dataset.vocab_size))
    np.add.at(
        mass,
        (np.repeat(np.arange(dataset.n_samples), seqs.shape[1])[mask.ravel()], tok[mask]),
        s[mask],
    )
    return mass


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.sum(a * b) / (na * nb))


def _finite_part_trajectories(
    datasets: list[Dataset] | tuple[Dataset, ...],
    theories: list[Any],
    setting: AuthorsSetting,
    num_steps: int,
    eps: float,
) -> np.ndarray:
    """The notebooks' ``W_fin(T)`` per trial: their optimiser from zero on the reduced data.

    Returns an array of shape (2, trials, d, d): ``W_fin`` after ``num_steps`` updates and one
    update before. All trials train in one batch; each reduced dataset is padded to the same
    sample count
    with one-token samples ``([0], label 0, query 0)``, whose softmax is exactly 1 and whose
    gradient is exactly 0, so they change neither the loss's gradient nor the steps.
    """
    d = datasets[0].embedding_dim
    reduced = [th.finite.reduced for th in theories]
    m = max(max(red.labels.size for red in reduced), 1)
    padded, queries = [], []
    for ds, red in zip(datasets, reduced, strict=True):
        seqs = [
            list(red.tokens[red.offsets[i] : red.offsets[i + 1]]) for i in range(red.labels.size)
        ]
        pad = m - red.labels.size
        padded.append(Dataset(seqs + [[0]] * pad, list(red.labels) + [0] * pad, ds.embeddings))
        queries.append(list(red.queries) + [0] * pad)
    run = train_authors(
        padded,
        np.zeros((len(datasets), d, d)),
        head=setting.head,
        loss=setting.loss,
        learning_rate=setting.learning_rate,
        num_steps=num_steps,
        eps=eps,
        queries=np.asarray(queries, dtype=np.int64),
        n_full=datasets[0].n_samples,
        loss_every=0,
    )
    return np.stack([np.asarray(run.W), np.asarray(run.W_before_last)])


def authors_metrics(
    dataset: Dataset,
    W: np.ndarray,
    setting: AuthorsSetting,
    *,
    W_attention: np.ndarray | None = None,
    W_fin_T: np.ndarray | None = None,
    num_steps: int | None = None,
    eps: float | None = None,
    theory: Any = None,
) -> dict[str, float]:
    """The notebooks' final metrics of one trial, against the exact Graph-SVM of ``solve``.

    ``corr_svm`` = corr(W, W_svm), ``corr_fin`` = corr(W, W_fin(T) + R W_svm) (``W_fin(T)``
    trained as the authors do, with the setting's head and loss, ``R = <W - W_fin(T), W_svm> /
    ||W_svm||^2`` fitted once at the end), ``corr_proj`` = corr(W - Proj_{S_fin} W, W_svm),
    ``norm_gap`` = ||Proj_{S_fin} W - W_fin(T)|| and ``R``, all against the global graphs; with
    the gen head also ``corr_local_svm`` against the local Graph-SVM built from the attention at
    ``W_attention`` (default ``W``).

    ``W_fin_T`` (the authors' trained finite part) and ``theory`` (:func:`attnmech.solve` of
    ``dataset``) are computed when not given.
    """
    from ...theory.finite import project
    from ...theory.solve import solve

    theory = solve(dataset) if theory is None else theory
    W_svm = np.asarray(theory.W_svm)
    out = {"corr_svm": _corr(W, W_svm)}
    steps = setting.num_steps if num_steps is None else num_steps
    W_fin = (
        _finite_part_trajectories(
            [dataset], [theory], setting, steps, setting.eps if eps is None else eps
        )[0, 0]
        if W_fin_T is None
        else np.asarray(W_fin_T, dtype=np.float64)
    )
    svm_sq = float(np.sum(W_svm * W_svm))
    R = float(np.sum((W - W_fin) * W_svm) / svm_sq) if svm_sq > 0 else float("nan")
    proj = project(W, np.asarray(theory.finite.basis))
    out.update(
        corr_fin=_corr(W, W_fin + R * W_svm) if svm_sq > 0 else _corr(W, W_fin),
        corr_proj=_corr(W - proj, W_svm),
        norm_gap=float(np.linalg.norm(proj - W_fin)),
        R=R,
    )
    if setting.head == "gen":
        from ...theory.local import solve_local

        mass = attention_mass(dataset, W if W_attention is None else W_attention)
        local = solve_local(dataset, mass)
        out["corr_local_svm"] = _corr(W, np.asarray(local.W_svm))
    return out
