"""Data sources: where a setting's datasets come from (``DataSpec.source``).

A source is a function ``(data_spec, trials) -> list of Dataset`` (one per trial). Adding a
source (for example the authors' exact datasets) is one function and one line in
:data:`DATA_SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..data import Dataset, make_dataset
from ..errors import InvalidParameterError
from .settings import DataSpec

__all__ = ["DATA_SOURCES", "generated", "load_datasets"]


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


DATA_SOURCES: dict[str, Callable[[DataSpec, int], list[Dataset]]] = {"generated": generated}
"""Source name -> function drawing one dataset per trial."""


def load_datasets(spec: DataSpec, trials: int) -> list[Dataset]:
    """The datasets of ``trials`` trials from the source ``spec.source``."""
    source = DATA_SOURCES.get(spec.source)
    if source is None:
        raise InvalidParameterError(
            f"unknown data source {spec.source!r}; choose from {', '.join(DATA_SOURCES)} or add "
            "one to attnmech.experiments.sources.DATA_SOURCES"
        )
    return source(spec, trials)
