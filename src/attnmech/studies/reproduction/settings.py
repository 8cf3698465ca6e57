"""What an experiment is, as data: :class:`Setting` and its parts.

A :class:`Setting` names everything the runner needs: where the datasets come from
(:class:`DataSpec`, its ``source`` a key of
:data:`~attnmech.studies.reproduction.sources.DATA_SOURCES`), the model (head, loss), the optimiser
(a name in the step-rule registry plus options), the steps, the metrics to record (objects of
:mod:`~attnmech.studies.reproduction.measures`, each producing named curves), the table rows
(:class:`Measure`, each reading one number per trial off a curve, with the paper's value and its
verdict rule), and the figures (objects of :mod:`~attnmech.studies.reproduction.figures`). The
runner never branches on a setting's kind or head.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ...errors import InvalidParameterError
from .verdicts import PaperValue

__all__ = ["DataSpec", "Measure", "Setting", "MEASURE_MODES", "OPTIMIZER_TEXT", "INIT_TEXT"]

MEASURE_MODES = ("final", "step", "mean_peak", "mean_peak_step", "first_step_at_least")

OPTIMIZER_TEXT = {"ngd": "normalised GD", "gd": "GD", "adam": "Adam"}
"""How the reports name an optimiser (other names are shown as they are)."""

INIT_TEXT = {"uniform": "uniform(-1/sqrt(d), 1/sqrt(d))"}

RUNNER_ARTEFACTS = ("datasets", "theories", "run", "timings")
"""Artefacts every run has (metrics add more)."""


@dataclass(frozen=True, slots=True)
class DataSpec:
    """Where a setting's datasets come from: one dataset per trial.

    Parameters
    ----------
    graph : {"cyclic", "acyclic", "any"}
        Which token-priority graphs to draw for.
    n_samples, seq_len, vocab_size, embedding_dim : int
        n, T, K, d of docs/theory.md#the-papers-experiments.
    embeddings : str, default="random"
        The embedding generator.
    source : str, default="generated"
        A key of :data:`~attnmech.studies.reproduction.sources.DATA_SOURCES` (``"generated"``:
        ``make_dataset(..., seed=seed_offset + trial)``).
    seed_offset : int, default=0
        Seed of the first trial's dataset.
    authors_key : str, default=""
        The key of :data:`attnmech.studies.authors.SETTINGS` whose notebook stream the ``authors``
        source replays ("" when the authors' data cannot be regenerated for this setting).
    """

    graph: str
    n_samples: int
    seq_len: int
    vocab_size: int
    embedding_dim: int
    embeddings: str = "random"
    source: str = "generated"
    seed_offset: int = 0
    authors_key: str = ""

    def __post_init__(self) -> None:
        for name in ("n_samples", "seq_len", "vocab_size", "embedding_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(
                    f"DataSpec.{name} must be a positive int, got {value!r}"
                )

    @property
    def sizes(self) -> str:
        """The sizes in words: ``n=..., T=..., K=..., d=...``."""
        return f"n={self.n_samples}, T={self.seq_len}, K={self.vocab_size}, d={self.embedding_dim}"


@dataclass(frozen=True, slots=True)
class Measure:
    """One row of the results table: a number per trial read off one curve.

    Parameters
    ----------
    key : str
        Name in ``results.json`` (for example ``"corr_svm@final"``).
    label : str
        Text in the table.
    curve : str
        Which curve (a name one of the setting's metrics produces).
    mode : {"final", "step", "mean_peak", "mean_peak_step", "first_step_at_least"}
        Per trial: the last value; the value at ``step``; the value at the step where the
        mean curve peaks; that step (one number); the first logged step where the curve reaches
        ``threshold`` (NaN if never).
    step : int, optional
    threshold : float, optional
    paper : PaperValue, optional
        None when the paper shows the quantity only as a figure.
    note : str
        Why ours may differ from the paper's (the mechanism), used when they disagree.
    """

    key: str
    label: str
    curve: str
    mode: str = "final"
    step: int | None = None
    threshold: float | None = None
    paper: PaperValue | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MEASURE_MODES:
            raise InvalidParameterError(
                f"Measure {self.key!r}: mode must be one of {', '.join(MEASURE_MODES)}, got "
                f"{self.mode!r}"
            )
        if self.mode == "step" and self.step is None:
            raise InvalidParameterError(f"Measure {self.key!r}: mode 'step' needs step=...")
        if self.mode == "first_step_at_least" and self.threshold is None:
            raise InvalidParameterError(
                f"Measure {self.key!r}: mode 'first_step_at_least' needs threshold=..."
            )


@dataclass(frozen=True, slots=True, eq=False)
class Setting:
    """One experiment: data, model, optimiser, steps, metrics, table rows and figures.

    Parameters
    ----------
    name : str
        Registry key and file prefix.
    title : str
    kind : str
        A label written to ``results.json`` (``"global"``, ``"local"``); nothing branches on it.
    data : DataSpec
    head, loss : str
        The model (``AttentionConfig(head=..., loss=...)``), float64.
    optimizer : str, default="ngd"
        A name in the step-rule registry.
    optimizer_options : mapping, default={}
        Keyword arguments of the step rule (stored read-only).
    learning_rate : float
    num_steps : int
        The paper's steps (``steps_scale`` multiplies them).
    log_every : int, default=10
        Metric logging period in steps.
    init : str, default="uniform"
    init_seed : int, default=0
        Seed of the initialisation (all trials at once).
    metrics : tuple
        Metric objects (:mod:`~attnmech.studies.reproduction.measures`), run in order after
        training.
    measures : tuple of Measure
        The table rows.
    figures : tuple
        Figure objects (:mod:`~attnmech.studies.reproduction.figures`).
    description : str
    """

    name: str
    title: str
    kind: str
    data: DataSpec
    learning_rate: float
    num_steps: int
    metrics: tuple[Any, ...]
    measures: tuple[Measure, ...]
    figures: tuple[Any, ...]
    head: str = "iden"
    loss: str = "log"
    optimizer: str = "ngd"
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    log_every: int = 10
    init: str = "uniform"
    init_seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "optimizer_options", MappingProxyType(dict(self.optimizer_options))
        )
        if not self.name or any(c in self.name for c in "/\\ "):
            raise InvalidParameterError(
                f"setting name {self.name!r} must be non-empty without spaces or slashes (it "
                "prefixes file names)"
            )
        steps = self.num_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InvalidParameterError(
                f"setting {self.name!r}: num_steps must be a positive int, got {self.num_steps!r}"
            )
        produced = {key for metric in self.metrics for key in metric.curves}
        missing = sorted({m.curve for m in self.measures} - produced)
        for figure in self.figures:
            missing += sorted(set(figure.needs_curves) - produced - set(missing))
        if missing:
            raise InvalidParameterError(
                f"setting {self.name!r} reads curves {missing} that none of its metrics produce "
                f"(they produce {sorted(produced)}); add the metric that records them"
            )
        available = set(RUNNER_ARTEFACTS) | {
            key for metric in self.metrics for key in type(metric).artefacts
        }
        absent = sorted(
            {key for figure in self.figures for key in figure.needs_artefacts} - available
        )
        if absent:
            raise InvalidParameterError(
                f"setting {self.name!r} draws figures from {absent}, which none of its metrics "
                f"provide (available: {sorted(available)}); add the metric that makes them "
                "(for example LocalTPG() for local_theories)"
            )

    @property
    def sizes(self) -> str:
        """The data's sizes in words (see :attr:`DataSpec.sizes`)."""
        return self.data.sizes

    @property
    def optimizer_text(self) -> str:
        """How the reports name the optimiser (:data:`OPTIMIZER_TEXT`, else its name)."""
        return OPTIMIZER_TEXT.get(self.optimizer, self.optimizer)

    def scaled_steps(self, steps_scale: float) -> int:
        """``round(num_steps * steps_scale)``, at least 1."""
        return max(1, int(round(self.num_steps * steps_scale)))

    def config(self, trials: int, num_steps: int) -> dict[str, Any]:
        """The configuration as ``results.json`` records it."""
        data = self.data
        return {
            "kind": self.kind,
            "graph": data.graph,
            "n_samples": data.n_samples,
            "seq_len": data.seq_len,
            "vocab_size": data.vocab_size,
            "embedding_dim": data.embedding_dim,
            "embeddings": data.embeddings,
            "head": self.head,
            "loss": self.loss,
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "num_steps": num_steps,
            "paper_num_steps": self.num_steps,
            "log_every": self.log_every,
            "trials": trials,
            "dataset_seeds": (
                list(range(data.seed_offset, data.seed_offset + trials))
                if data.source == "generated"
                else None
            ),
            "init": (
                INIT_TEXT.get(self.init, self.init)
                if data.source == "generated"
                else f"from the data source {data.source!r}"
            ),
            "init_seed": self.init_seed,
            "dtype": "float64",
            "data_source": data.source,
            "optimizer_options": dict(self.optimizer_options),
            "metrics": [metric.name for metric in self.metrics],
        }
