"""Data sources: where a setting's datasets (and optionally initialisations) come from.

A source is a function ``(data_spec, trials) -> list of Dataset`` or ``-> SourceData`` (the
datasets plus initial weights, one per trial). :data:`DATA_SOURCES` maps ``DataSpec.source`` to
it; adding a source is one function and one line there.

- ``generated``: ``make_dataset(n, T, K, d, graph=..., seed=seed_offset + trial)`` and the
  setting's seeded initialisation.
- ``authors``: the authors' own datasets and float32 initialisations, regenerated bit for bit
  from their notebooks' random stream (:func:`attnmech.studies.authors.authors_trials`), for the
  settings whose ``DataSpec.authors_key`` names one (:data:`AUTHORS_UNAVAILABLE` says why the
  others cannot be replayed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...data.dataset import Dataset
from ...data.generators import make_dataset
from ...errors import InvalidParameterError
from .settings import DataSpec

__all__ = [
    "DATA_SOURCES",
    "AUTHORS_UNAVAILABLE",
    "SourceData",
    "generated",
    "authors",
    "load_datasets",
    "load_source",
]


@dataclass(frozen=True)
class SourceData:
    """What a data source gives: one dataset per trial and optionally their initial weights.

    Attributes
    ----------
    datasets : list of Dataset
    init : ndarray of shape (trials, d, d) or None
        float64 initial ``W`` per trial; None: the setting's own initialisation.
    description : str
        One sentence for the report (where the data and inits come from).
    """

    datasets: list[Dataset]
    init: np.ndarray | None = None
    description: str = ""


def generated(spec: DataSpec, trials: int) -> list[Dataset]:
    """``make_dataset(n, T, K, d, embeddings=..., graph=..., seed=seed_offset + trial)``."""
    return [
        make_dataset(
            spec.n_samples,
            spec.seq_len,
            spec.vocab_size,
            spec.embedding_dim,
            embeddings=spec.embeddings,
            graph=spec.graph,
            seed=spec.seed_offset + trial,
        )
        for trial in range(trials)
    ]


AUTHORS_UNAVAILABLE: dict[str, str] = {
    "cyclic-10-6-8-8": (
        "no notebook in the authors' repository runs or prints n=10 T=6 K=8 d=8, so the seed and "
        "the order of draws behind that figure are unknown"
    ),
    "local-ce": (
        "the cross-entropy local notebook (commit 0d105ef) was run with code that is not in the "
        "repository: its printed trial 0 is not what any seed 0-49 gives through data_utils.py; "
        "its printed per-trial values are compared as a 10-trial sample in the generated-data run"
    ),
    "local-ce-4-6-8-8": "PDF figure only: no notebook prints its data or its seed",
    "local-squared-4-6-8-8": "PDF figure only: no notebook prints its data or its seed",
}
"""Settings without the authors' data, and why (for the report and error messages)."""


def authors(spec: DataSpec, trials: int) -> SourceData:
    """The authors' datasets and initialisations (:func:`attnmech.studies.authors.authors_trials`)
    """
    from ..authors import SETTINGS, authors_trials

    key = spec.authors_key
    if not key or key not in SETTINGS:
        raise InvalidParameterError(
            f"data source 'authors' needs DataSpec.authors_key to name one of "
            f"{', '.join(sorted(SETTINGS))}, got {key!r}; use the 'generated' source for this "
            "setting"
        )
    setting = SETTINGS[key]
    sizes = (spec.n_samples, spec.seq_len, spec.vocab_size, spec.embedding_dim)
    if sizes != (setting.n, setting.T, setting.K, setting.d) or spec.graph != setting.graph:
        raise InvalidParameterError(
            f"DataSpec ({spec.graph}, n, T, K, d = {sizes}) does not match the authors' setting "
            f"{key!r} ({setting.graph}, {(setting.n, setting.T, setting.K, setting.d)}); fix "
            "DataSpec.authors_key"
        )
    tr = authors_trials(key, trials)
    return SourceData(
        datasets=list(tr.datasets),
        init=np.asarray(tr.W0, dtype=np.float64),
        description=(
            f"the authors' datasets and float32 initialisations, regenerated from their random "
            f"stream (`authors_trials({key!r}, {trials})`: torch seed {setting.seed}, "
            f"{setting.notebook})"
        ),
    )


DATA_SOURCES: dict[str, Callable[[DataSpec, int], Any]] = {
    "generated": generated,
    "authors": authors,
}
"""Source name -> function drawing one dataset (and optionally one init) per trial."""


def load_source(spec: DataSpec, trials: int) -> SourceData:
    """The data of ``trials`` trials from the source ``spec.source``, as :class:`SourceData`."""
    source = DATA_SOURCES.get(spec.source)
    if source is None:
        raise InvalidParameterError(
            f"unknown data source {spec.source!r}; choose from {', '.join(DATA_SOURCES)} or add "
            "one to attnmech.studies.reproduction.sources.DATA_SOURCES"
        )
    data = source(spec, trials)
    if not isinstance(data, SourceData):
        data = SourceData(datasets=list(data))
    if len(data.datasets) != trials:
        raise InvalidParameterError(
            f"data source {spec.source!r} gave {len(data.datasets)} datasets for {trials} trials"
        )
    return data


def load_datasets(spec: DataSpec, trials: int) -> list[Dataset]:
    """The datasets of ``trials`` trials from the source ``spec.source``."""
    return load_source(spec, trials).datasets
