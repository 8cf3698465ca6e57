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

The package has one module per idea: :mod:`.data` (settings, random stream, datasets and
initialisations), :mod:`.training` (the authors' training and metrics) and :mod:`.comparison`
(the replay against the notebooks' printed values).
"""

from __future__ import annotations

from .._notebook_records import NOTEBOOK_RECORDS, NotebookRecord
from .comparison import NotebookComparison, compare_with_notebook
from .data import (
    AUTHORS_REPOSITORY,
    FLOAT64_EPS,
    LOG_FORMS,
    SETTINGS,
    AuthorsSetting,
    AuthorsTrials,
    authors_generator,
    authors_trials,
    draw_authors_dataset,
    draw_authors_init,
)
from .data import (
    _graphs_cyclic as _graphs_cyclic,
)
from .training import AuthorsRun, attention_mass, authors_metrics, train_authors

__all__ = [
    "AUTHORS_REPOSITORY",
    "AuthorsSetting",
    "AuthorsTrials",
    "AuthorsRun",
    "FLOAT64_EPS",
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
