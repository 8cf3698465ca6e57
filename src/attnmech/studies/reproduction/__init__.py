"""The paper's experiments (docs/theory.md#the-papers-experiments), rerun and compared with its
reported numbers.

One registry, one runner, one report writer:

- :mod:`.settings`: :class:`Setting` (data spec, model, optimiser name and options, steps,
  metrics, table rows, figures) and :class:`DataSpec`, :class:`Measure`;
- :mod:`.registry`: :data:`EXPERIMENTS` (name -> Setting), :func:`register`;
- :mod:`.paper`: the paper's values as data; :mod:`.verdicts`: one rule object per value;
- :mod:`.sources`: where datasets come from (``DataSpec.source``);
- :mod:`.measures`: metrics, each producing named curves from the training run;
- :mod:`.execute`: :func:`run_setting` (any setting); :mod:`.study`: :class:`ReproductionConfig`,
  :func:`run` and :class:`ReproductionResult` (the study scaffold), and :func:`run_reproduction`
  (the old keyword form);
- :mod:`.figures` and :mod:`.writer`: figures, ``results.json``, ``curves.npz``,
  ``REPRODUCTION.md``.

Adding an experiment is one :func:`register` call with a :class:`Setting`.

Examples
--------
>>> list(EXPERIMENTS)[:3]
['cyclic-6-4-6-8', 'cyclic-10-6-8-8', 'acyclic-4-6-8-8']

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

from ...errors import ExperimentNotFoundError
from .figures import BandFigure, CurveFigure, GraphFigure, Reference, RegPathFigure
from .measures import (
    AuthorsCorrFin,
    Difference,
    History,
    LabelMiss,
    LocalTPG,
    MaxAttention,
    Metric,
    OneMinus,
    RegPath,
    Rise,
    RunRecord,
    Squared,
    Verification,
)
from .registry import EXPERIMENTS, list_experiments, register, select, unregister
from .replay import NotebookReplay, authors_variant
from .results import MetricResult, SettingResult
from .runner import run_experiment, run_reproduction, run_setting, with_data
from .settings import DataSpec, Measure, Setting
from .sources import AUTHORS_UNAVAILABLE, DATA_SOURCES, SourceData
from .study import CONFIG_TYPE, RESULT_TYPE, ReproductionConfig, ReproductionResult, run
from .verdicts import (
    Approx,
    AtLeast,
    FigureReading,
    LogScale,
    Mean,
    MeanStd,
    MedianIQR,
    PaperValue,
    PerTrial,
    Range,
    Sample,
    VerdictRule,
)

__all__ = [
    "CONFIG_TYPE",
    "RESULT_TYPE",
    "ReproductionConfig",
    "run",
    "EXPERIMENTS",
    "DATA_SOURCES",
    "AUTHORS_UNAVAILABLE",
    "SourceData",
    "AuthorsCorrFin",
    "Difference",
    "MaxAttention",
    "RegPath",
    "Rise",
    "Squared",
    "NotebookReplay",
    "authors_variant",
    "with_data",
    "RegPathFigure",
    "FigureReading",
    "AtLeast",
    "MedianIQR",
    "PerTrial",
    "Setting",
    "DataSpec",
    "Measure",
    "Metric",
    "History",
    "OneMinus",
    "LabelMiss",
    "LocalTPG",
    "Verification",
    "RunRecord",
    "CurveFigure",
    "BandFigure",
    "GraphFigure",
    "Reference",
    "PaperValue",
    "VerdictRule",
    "Sample",
    "MeanStd",
    "Mean",
    "Approx",
    "Range",
    "LogScale",
    "MetricResult",
    "SettingResult",
    "ReproductionResult",
    "ExperimentNotFoundError",
    "register",
    "unregister",
    "select",
    "list_experiments",
    "run_setting",
    "run_experiment",
    "run_reproduction",
]
