"""Replay of the authors' own experiments: their data, their initialisations, their training.

The authors' notebooks (repository ``yixiao-huang/next-token-prediction``) seed torch once
(``torch.manual_seed(1)``) and then draw, per trial and in this order:

1. the dataset, through a rejection loop that redraws everything until the token-priority graphs
   are cyclic: embeddings ``randn(K, d)`` in float32, cast to float64 and row-normalised;
   sequences ``multinomial(ones(K).expand(n, K), T, replacement=False)`` (``T <= K``; otherwise a
   permutation of all ``K`` tokens followed by ``T - K`` draws with replacement); labels
   ``multinomial(ones(K), n, replacement=True)``, each label absent from its sequence replaced by
   the token at position ``randint(T)``;
2. the layer's initialisation: PyTorch's default ``nn.Linear(d, d, bias=False)`` init
   (``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(d), 1/sqrt(d))) drawn in float32, then cast
   to float64 (no other parameter is drawn: the notebooks build the model with ``regress=True``);
3. after training, one more such layer per finite-part model (``init="zero"`` zeroes it, but
   its draws still advance the generator): one in the global-convergence notebook, two (global
   and local ``W_fin``) in the local-convergence notebook.

:func:`authors_trials` replays this stream with a local :class:`torch.Generator` (the global RNG
is never touched) and regenerates the notebooks' printed datasets bit for bit. :func:`train_authors`
trains exactly as the notebooks do (full-batch SGD on ``grad / (||grad||_F + eps)``, their
``-log(p_y + eps)`` log-loss, float64), and :func:`compare_with_notebook` sets the result against
the per-trial values the notebooks print (:data:`NOTEBOOK_RECORDS`).

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._notebook_records import _COMMIT, _GLOBAL_NB, _LOCAL_NB, NOTEBOOK_RECORDS, NotebookRecord
from .._results import readonly
from ..data.dataset import Dataset
from .._validation import POSITIVE_INT, POSITIVE_REAL, check_params, register
from ..errors import InvalidParameterError

__all__ = [
    "AUTHORS_REPOSITORY",
    "AuthorsSetting",
    "AuthorsTrials",
    "AuthorsRun",
    "NotebookRecord",
    "NotebookComparison",
    "SETTINGS",
    "NOTEBOOK_RECORDS",
    "authors_generator",
    "draw_authors_dataset",
    "draw_authors_init",
    "authors_trials",
    "train_authors",
    "authors_metrics",
    "attention_mass",
    "compare_with_notebook",
    "LOG_FORMS",
]

logger = logging.getLogger(__name__)

AUTHORS_REPOSITORY = "yixiao-huang/next-token-prediction"
FLOAT64_EPS = float(np.finfo(np.float64).eps)
LOG_FORMS = ("probability", "logsumexp", "exact")
_FAR = -1e30  # finite "minus infinity" for masked scores (keeps logsumexp's gradient finite)


@dataclass(frozen=True)
class AuthorsSetting:
    """One experiment of the authors' notebooks, with the options their code used.

    Attributes
    ----------
    name : str
        Registry key (the experiment names of :mod:`attnmech.studies.reproduction`).
    notebook, commit : str
        Notebook file and commit of :data:`AUTHORS_REPOSITORY` it comes from.
    n, T, K, d : int
        Samples, sequence length, vocabulary size, embedding dimension.
    graph : {"cyclic", "acyclic"}
        The rejection loop's condition (``check_asyc=False``: redraw until some graph is cyclic;
        ``True``: until every graph is acyclic).
    head : {"iden", "gen"}
    loss : {"log", "squared"}
        ``log``: ``-log(p_y + eps)`` (their ``nll``); ``squared``: ``(1 - softmax(z)_y)^2``
        (their ``lsq2`` with the ``gen`` head; no eps).
    learning_rate : float
    num_steps : int
    eps : float
        The constant inside their log and in their gradient normalisation (float64 machine eps).
    seed : int
        Their ``set_seed(1)``.
    models_after_training : int
        Layers built (and drawn) after training, per trial: finite-part models.
    labels : {"uniform", "map"}
        ``uniform``: the generator of ``data_utils.py`` (labels uniform in [K], repaired);
        ``map``: the acyclic notebook's own generator (a label map ``C`` of shape (n, K) drawn
        first, label ``C[i, last token]``, the draw rejected when a label is not in its sequence).
    """

    name: str
    notebook: str
    commit: str
    n: int
    T: int
    K: int
    d: int
    graph: str
    head: str
    loss: str
    learning_rate: float
    num_steps: int
    eps: float = FLOAT64_EPS
    seed: int = 1
    models_after_training: int = 1
    labels: str = "uniform"

    @property
    def training_options(self) -> dict[str, Any]:
        """The options the authors trained with (for a data source of the experiments registry)."""
        return {
            "optimizer": "ngd",
            "learning_rate": self.learning_rate,
            "num_steps": self.num_steps,
            "head": self.head,
            "loss": self.loss,
            "eps": self.eps,
        }


SETTINGS: dict[str, AuthorsSetting] = {
    "cyclic-6-4-6-8": AuthorsSetting(
        name="cyclic-6-4-6-8",
        notebook=_GLOBAL_NB,
        commit=_COMMIT,
        n=6,
        T=4,
        K=6,
        d=8,
        graph="cyclic",
        head="iden",
        loss="log",
        learning_rate=0.01,
        num_steps=4000,
        models_after_training=1,
    ),
    "local-squared": AuthorsSetting(
        name="local-squared",
        notebook=_LOCAL_NB,
        commit=_COMMIT,
        n=6,
        T=4,
        K=6,
        d=8,
        graph="cyclic",
        head="gen",
        loss="squared",
        learning_rate=0.1,
        num_steps=2000,
        models_after_training=2,
    ),
    "acyclic-4-6-8-8": AuthorsSetting(
        name="acyclic-4-6-8-8",
        notebook="mc_next_single_layer_global_converge_acyc.ipynb",
        commit="0d105ef474e260307831c5dfdc2e4648b24b3520",
        n=4,
        T=6,
        K=8,
        d=8,
        graph="acyclic",
        head="iden",
        loss="log",
        learning_rate=0.01,
        num_steps=4000,
        models_after_training=1,
        labels="map",
    ),
    # No notebook in the repository prints this run (the PDF figure
    # corr_asyc_log_n6T4K6d8_pos_0.1.pdf has no notebook behind it): the stream below is the
    # authors' generator as the global notebook runs it with check_asyc=True, not verified data.
    "acyclic-6-4-6-8-lr0.1": AuthorsSetting(
        name="acyclic-6-4-6-8-lr0.1",
        notebook=_GLOBAL_NB + " (check_asyc=True, lr=0.1, ITN=2000; not in the repository)",
        commit=_COMMIT,
        n=6,
        T=4,
        K=6,
        d=8,
        graph="acyclic",
        head="iden",
        loss="log",
        learning_rate=0.1,
        num_steps=2000,
        models_after_training=1,
    ),
}


# ---------------------------------------------------------------------------------------------
# The authors' random stream
# ---------------------------------------------------------------------------------------------


def authors_generator(seed: int = 1) -> Any:
    """A CPU :class:`torch.Generator` seeded like the notebooks' ``torch.manual_seed(seed)``.

    Draws from it equal the draws of the global generator after ``torch.manual_seed(seed)``
    (checked in ``tests/test_authors.py``), without touching the global state.
    """
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed))


def _graphs_cyclic(sequences: np.ndarray, labels: np.ndarray, K: int) -> bool:
    """Whether some ``G^(k)`` has an SCC of size > 1 (edges ``y -> j`` for ``j`` in X, j != y),
    by :func:`attnmech.theory.graphs.has_priority_cycle`."""
    from ..data.dataset import OneHotEmbeddings
    from ..theory.graphs import has_priority_cycle

    data = Dataset(sequences, labels, OneHotEmbeddings(K), on_unrealizable="keep")
    return has_priority_cycle(data)


def draw_authors_dataset(
    generator: Any,
    n: int,
    T: int,
    K: int,
    d: int,
    *,
    graph: str = "cyclic",
    labels: str = "uniform",
    max_attempts: int = 10_000,
) -> tuple[Dataset, int]:
    """One dataset through the authors' generator and rejection loop (random embeddings).

    Parameters
    ----------
    generator : torch.Generator
        Advanced exactly as the notebooks advance torch's global generator.
    n, T, K, d : int
    graph : {"cyclic", "acyclic"}
        Redraw (everything: embeddings, sequences, labels) until some graph is cyclic (their
        ``check_asyc=False``) or until every graph is acyclic (``check_asyc=True``).
    labels : {"uniform", "map"}
        See :class:`AuthorsSetting`.
    max_attempts : int
        Give up (InvalidParameterError) after this many draws.

    Returns
    -------
    dataset : Dataset
        float64 unit-norm embeddings (float32 draws cast to float64, then normalised).
    attempts : int
        Number of draws the rejection loop made.
    """
    import torch

    check_params({"n": n, "T": T, "K": K, "d": d}, DRAW_PARAMS, where="draw_authors_dataset")
    if graph not in ("cyclic", "acyclic"):
        raise InvalidParameterError(
            f"graph={graph!r}: the authors' generator redraws until the graphs are 'cyclic' or "
            "'acyclic'; use attnmech.make_dataset for other conditions"
        )
    if labels not in ("uniform", "map"):
        raise InvalidParameterError(f"labels must be 'uniform' or 'map', got {labels!r}")
    ones = torch.ones(K, dtype=torch.float32)
    for attempt in range(1, max_attempts + 1):
        vocab = torch.randn(K, d, generator=generator)  # (K, d) float32, as the notebooks draw it
        emb = torch.nn.functional.normalize(vocab.double(), dim=-1)
        if labels == "map":
            label_map = torch.multinomial(
                ones.expand(n, K), K, replacement=False, generator=generator
            )
        if T <= K:
            seq = torch.multinomial(ones.expand(n, K), T, replacement=False, generator=generator)
        else:
            head = torch.multinomial(ones.expand(n, K), K, replacement=False, generator=generator)
            tail = torch.multinomial(
                ones.expand(n, K), T - K, replacement=True, generator=generator
            )
            seq = torch.hstack([head, tail])
        if labels == "map":
            lab = label_map[torch.arange(n), seq[:, -1]]
            if not all(bool((seq[i] == lab[i]).any()) for i in range(n)):
                continue
        else:
            lab = torch.multinomial(ones, n, replacement=True, generator=generator)
            for i in range(n):
                if not bool((seq[i] == lab[i]).any()):
                    lab[i] = seq[i, torch.randint(T, (1,), generator=generator)]
        seq_np, lab_np = seq.numpy().astype(np.int64), lab.numpy().astype(np.int64)
        if _graphs_cyclic(seq_np, lab_np, K) == (graph == "cyclic"):
            return Dataset(seq_np, lab_np, emb.numpy()), attempt
        logger.debug("authors' generator: draw %d rejected (graphs not %s)", attempt, graph)
    raise InvalidParameterError(
        f"no {graph} dataset in {max_attempts} draws for n={n}, T={T}, K={K}; raise max_attempts "
        "or choose sizes with more samples per last token"
    )


def draw_authors_init(generator: Any, d: int) -> np.ndarray:
    """PyTorch's default ``nn.Linear(d, d, bias=False)`` weight, drawn in float32, as float64."""
    import torch

    weight = torch.empty(d, d, dtype=torch.float32)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    return weight.double().numpy()


@dataclass(frozen=True)
class AuthorsTrials:
    """The authors' datasets and initial weights for ``trials`` trials of one setting.

    Attributes
    ----------
    setting : AuthorsSetting
    datasets : tuple of Dataset
    W0 : ndarray of shape (trials, d, d)
        float64 initial weights (float32 values).
    attempts : ndarray of int64 of shape (trials,)
        Draws of the rejection loop per trial.
    """

    setting: AuthorsSetting
    datasets: tuple[Dataset, ...]
    W0: np.ndarray
    attempts: np.ndarray

    @property
    def training_options(self) -> dict[str, Any]:
        return self.setting.training_options

    def __len__(self) -> int:
        return len(self.datasets)


def _setting(name: str) -> AuthorsSetting:
    if name not in SETTINGS:
        raise InvalidParameterError(
            f"no authors' data for setting {name!r}; available: {', '.join(sorted(SETTINGS))}"
        )
    return SETTINGS[name]


DRAW_PARAMS = register(
    "draw_authors_dataset",
    {"n": [POSITIVE_INT], "T": [POSITIVE_INT], "K": [POSITIVE_INT], "d": [POSITIVE_INT]},
)
TRIALS_PARAMS = register("authors_trials", {"trials": [POSITIVE_INT]})
TRAIN_AUTHORS_PARAMS = register(
    "train_authors", {"num_steps": [POSITIVE_INT], "learning_rate": [POSITIVE_REAL]}
)


def authors_trials(name: str, trials: int = 10, *, seed: int | None = None) -> AuthorsTrials:
    """Regenerate the datasets and initialisations of ``trials`` trials of a notebook setting.

    Parameters
    ----------
    name : str
        A key of :data:`SETTINGS`: ``"cyclic-6-4-6-8"``, ``"local-squared"`` (6-4-6-8),
        ``"acyclic-4-6-8-8"`` (the three notebooks that print their data) or
        ``"acyclic-6-4-6-8-lr0.1"`` (the authors' generator, no printed data to check against).
    trials : int, default=10
        The first ``trials`` trials of the notebook's stream (the notebooks ran 10).
    seed : int, optional
        Defaults to the notebooks' seed (1).

    Returns
    -------
    AuthorsTrials
        Datasets, float64 initial weights and the training options the authors used
        (``.training_options``: optimizer, learning rate, steps, head, loss, eps).

    Examples
    --------
    >>> tr = authors_trials("cyclic-6-4-6-8", trials=2)
    >>> tr.datasets[0].padded()[0].tolist(), tr.datasets[0].labels.tolist()
    ([1, 2, 5, 4], [1, 5, 5, 0, 1, 3])
    >>> tr.W0.shape, tr.attempts.tolist()
    ((2, 8, 8), [1, 2])
    """
    setting = _setting(name)
    check_params({"trials": trials}, TRIALS_PARAMS, where="authors_trials")
    trials = int(trials)
    gen = authors_generator(setting.seed if seed is None else seed)
    datasets, inits, attempts = [], [], []
    for _ in range(trials):
        ds, tries = draw_authors_dataset(
            gen,
            setting.n,
            setting.T,
            setting.K,
            setting.d,
            graph=setting.graph,
            labels=setting.labels,
        )
        inits.append(draw_authors_init(gen, setting.d))
        for _ in range(setting.models_after_training):  # finite-part models: drawn, then zeroed
            draw_authors_init(gen, setting.d)
        datasets.append(ds)
        attempts.append(tries)
    return AuthorsTrials(
        setting=setting,
        datasets=tuple(datasets),
        W0=readonly(np.stack(inits), np.float64),
        attempts=readonly(attempts, np.int64),
    )


# ---------------------------------------------------------------------------------------------
# The authors' training
# ---------------------------------------------------------------------------------------------


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
    from ..theory.finite import project
    from ..theory.solve import solve

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
        from ..theory.local import solve_local

        mass = attention_mass(dataset, W if W_attention is None else W_attention)
        local = solve_local(dataset, mass)
        out["corr_local_svm"] = _corr(W, np.asarray(local.W_svm))
    return out


# ---------------------------------------------------------------------------------------------
# Comparison with the notebooks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookComparison:
    """Our replay next to a notebook's printed values, per trial.

    Attributes
    ----------
    setting : AuthorsSetting
    record : NotebookRecord
    data_equal : ndarray of bool of shape (trials,)
        Regenerated sequences and labels equal the printed ones.
    attempts_equal : ndarray of bool of shape (trials,)
        Rejection-loop draws equal the printed count (True where the notebook does not print it).
    init_variance_equal : ndarray of bool of shape (trials,)
        ``torch.var`` of our initial weight, to 4 decimals, equals the printed one.
    ours : dict of str to ndarray of shape (trials,)
    ours_previous_step : dict of str to ndarray of shape (trials,)
        The same metrics one update earlier (``W(T-1)``, ``W_fin(T-1)``, the same fitted
        formula). Normalised GD does not stop: where it bounces in a period-2 cycle, the notebook
        may show the other phase.
    notebook : dict of str to ndarray of shape (trials,)
    loss_max_abs_diff : float
        Largest difference between our losses (rounded to 4 decimals) and the printed ones.
    eps : float
    num_steps : int
    """

    setting: AuthorsSetting
    record: NotebookRecord
    data_equal: np.ndarray
    attempts_equal: np.ndarray
    init_variance_equal: np.ndarray
    ours: dict[str, np.ndarray]
    ours_previous_step: dict[str, np.ndarray]
    notebook: dict[str, np.ndarray]
    loss_max_abs_diff: float
    eps: float
    num_steps: int

    def abs_diff(self, metric: str) -> np.ndarray:
        return np.abs(self.ours[metric] - self.notebook[metric])

    def max_abs_diff(self) -> dict[str, float]:
        return {m: float(self.abs_diff(m).max()) for m in self.ours}

    def abs_diff_either_phase(self, metric: str) -> np.ndarray:
        """``min(|ours - notebook|, |ours one step earlier - notebook|)`` per trial."""
        prev = np.abs(self.ours_previous_step[metric] - self.notebook[metric])
        return np.minimum(self.abs_diff(metric), prev)

    def table(self) -> str:
        """A Markdown table: per trial and metric, the notebook's value, ours, |difference|."""
        metrics = list(self.ours)
        head = "| trial | data equal | " + " | ".join(
            f"{m} notebook | {m} ours | abs diff" for m in metrics
        )
        lines = [head + " |", "|" + "---|" * (2 + 3 * len(metrics))]
        for t in range(self.data_equal.size):
            cells = [str(t), "yes" if self.data_equal[t] else "NO"]
            for m in metrics:
                cells += [
                    f"{self.notebook[m][t]:.10g}",
                    f"{self.ours[m][t]:.10g}",
                    f"{self.abs_diff(m)[t]:.2e}",
                ]
            lines.append("| " + " | ".join(cells) + " |")
        cells = ["max", "all" if self.data_equal.all() else "NO"]
        for m in metrics:
            cells += ["", "", f"{self.abs_diff(m).max():.2e}"]
        lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def compare_with_notebook(
    name: str,
    trials: int | None = None,
    *,
    num_steps: int | None = None,
    eps: float | None = None,
) -> NotebookComparison:
    """Regenerate a notebook's trials, train them as the authors did and compare per trial.

    Parameters
    ----------
    name : str
        A key of :data:`NOTEBOOK_RECORDS`.
    trials : int, optional
        The first ``trials`` trials (default: all the notebook printed, 10).
    num_steps : int, optional
        Fewer steps for a quick check (the final metrics then differ from the notebook's; the
        printed losses up to that step still apply).
    eps : float, optional
        Override the eps inside the log (0: the plain log-loss).
    """
    record = NOTEBOOK_RECORDS.get(name)
    if record is None:
        raise InvalidParameterError(
            f"no notebook values for setting {name!r}; available: "
            f"{', '.join(sorted(NOTEBOOK_RECORDS))}"
        )
    if trials is not None:
        check_params({"trials": trials}, TRIALS_PARAMS, where="compare_with_notebook")
    trials = record.num_trials if trials is None else int(trials)
    if trials > record.num_trials:
        raise InvalidParameterError(
            f"the notebook printed {record.num_trials} trials of {name!r}; ask for at most "
            "that many"
        )
    setting = SETTINGS[name]
    steps = setting.num_steps if num_steps is None else int(num_steps)
    eps_used = setting.eps if eps is None else float(eps)
    tr = authors_trials(name, trials)
    data_equal = np.array(
        [
            np.array_equal(ds.padded(), record.sequences[t])
            and np.array_equal(ds.labels, record.labels[t])
            for t, ds in enumerate(tr.datasets)
        ]
    )
    run = train_authors(
        tr.datasets,
        tr.W0,
        head=setting.head,
        loss=setting.loss,
        learning_rate=setting.learning_rate,
        num_steps=steps,
        eps=eps_used if setting.loss == "log" else 0.0,
        loss_every=500,
    )
    k = min(run.loss_steps.size, record.loss_steps.size)
    loss_diff = (
        float(np.abs(np.round(run.losses[:, :k], 4) - record.losses[:trials, :k]).max())
        if k
        else float("nan")
    )
    from ..theory.solve import solve

    theories = [solve(ds) for ds in tr.datasets]
    W_fin_T, W_fin_prev = _finite_part_trajectories(tr.datasets, theories, setting, steps, eps_used)
    prev_rows = [
        authors_metrics(
            ds,
            np.asarray(run.W_before_last[t]),
            setting,
            W_attention=np.asarray(run.W_before_last[t]),
            W_fin_T=W_fin_prev[t],
            theory=theories[t],
        )
        for t, ds in enumerate(tr.datasets)
    ]
    rows = [
        authors_metrics(
            ds,
            np.asarray(run.W[t]),
            setting,
            W_attention=np.asarray(run.W_before_last[t]),
            W_fin_T=W_fin_T[t],
            theory=theories[t],
        )
        for t, ds in enumerate(tr.datasets)
    ]
    metrics = [m for m in record.metrics if m in rows[0]]
    ours = {m: readonly([r[m] for r in rows], np.float64) for m in metrics}
    ours_prev = {m: readonly([r[m] for r in prev_rows], np.float64) for m in metrics}
    notebook = {m: readonly(record.metrics[m][:trials], np.float64) for m in metrics}
    return NotebookComparison(
        setting=setting,
        record=record,
        data_equal=readonly(data_equal, bool),
        attempts_equal=readonly(
            np.ones(trials, bool)
            if record.attempts is None
            else tr.attempts == record.attempts[:trials],
            bool,
        ),
        init_variance_equal=readonly(
            [
                round(float(np.var(w, ddof=1)), 4) == v
                for w, v in zip(tr.W0, record.init_variance, strict=False)
            ],
            bool,
        ),
        ours=ours,
        ours_previous_step=ours_prev,
        notebook=notebook,
        loss_max_abs_diff=loss_diff,
        eps=eps_used,
        num_steps=steps,
    )
