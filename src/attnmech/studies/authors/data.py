"""The authors' data: their settings, their random stream, their datasets and initialisations.

:func:`authors_trials` replays the notebooks' ``torch.manual_seed(1)`` stream with a local
:class:`torch.Generator` and regenerates the printed datasets and float32 initial weights bit for
bit (see :mod:`attnmech.studies.authors` for the order of the draws).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._results import readonly
from ..._validation import POSITIVE_INT, check_params, register
from ...data.dataset import Dataset
from ...errors import InvalidParameterError
from .._notebook_records import _COMMIT, _GLOBAL_NB, _LOCAL_NB

__all__ = [
    "AUTHORS_REPOSITORY",
    "FLOAT64_EPS",
    "LOG_FORMS",
    "AuthorsSetting",
    "AuthorsTrials",
    "SETTINGS",
    "authors_generator",
    "authors_trials",
    "draw_authors_dataset",
    "draw_authors_init",
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
    from ...data.dataset import OneHotEmbeddings
    from ...theory.graphs import has_priority_cycle

    data = Dataset(sequences, labels, OneHotEmbeddings(K), on_unrealizable="keep")
    return has_priority_cycle(data)


DRAW_PARAMS = register(
    "draw_authors_dataset",
    {"n": [POSITIVE_INT], "T": [POSITIVE_INT], "K": [POSITIVE_INT], "d": [POSITIVE_INT]},
)
"""The sizes of one draw of the authors' generator."""
TRIALS_PARAMS = register("authors_trials", {"trials": [POSITIVE_INT]})
"""The number of notebook trials to regenerate or compare."""


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
            if not bool((seq == lab[:, None]).any(dim=1).all()):
                continue
        else:
            lab = torch.multinomial(ones, n, replacement=True, generator=generator)
            # repair, in sample order, each label missing from its sequence (one draw each)
            for i in (~(seq == lab[:, None]).any(dim=1)).nonzero().flatten().tolist():
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
        """The setting's training options."""
        return self.setting.training_options

    def __len__(self) -> int:
        return len(self.datasets)


def _setting(name: str) -> AuthorsSetting:
    if name not in SETTINGS:
        raise InvalidParameterError(
            f"no authors' data for setting {name!r}; available: {', '.join(sorted(SETTINGS))}"
        )
    return SETTINGS[name]


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
