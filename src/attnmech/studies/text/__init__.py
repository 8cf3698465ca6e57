"""Held-out next-token prediction on real text: the theory, a trained layer and baselines.

:func:`run` reads a corpus (a text file or a folder of them), keeps the first ``1 - holdout``
of the token stream (by position) for training and the rest for testing, builds the training
windows (one-hot embeddings by default), solves the theory in token space, trains the layer
with the theory metrics, and evaluates on the held-out windows: every predictor's accuracy and
log-loss with intervals on four subsets (all windows, label in the window, label not ``<unk>``,
both), TV(layer, automaton), and the windows classified by where the training graph decides.

Modules: :mod:`.config` (the options), :mod:`.corpus` (reading, splitting, windows),
:mod:`.windows` (distributions over a window's tokens), :mod:`.baselines` (window heuristics,
n-gram models), :mod:`.evaluation` (the held-out evaluation), :mod:`.report` (report and
figures), :mod:`.study` (the run).
"""

from .baselines import AddOneBigram, KneserNey
from .config import TextConfig, TextRunConfig
from .corpus import TextData, prepare_text, read_corpus
from .evaluation import CATEGORIES, PREDICTORS, SUBSETS, evaluate_heldout, window_categories
from .study import (
    TextResult,
    TextRunResult,
    estimate_memory,
    evaluate_dir,
    run,
    run_text,
)

CONFIG_TYPE = TextConfig
RESULT_TYPE = TextResult

__all__ = [
    "CONFIG_TYPE",
    "RESULT_TYPE",
    "TextConfig",
    "TextRunConfig",
    "TextResult",
    "TextRunResult",
    "TextData",
    "run",
    "run_text",
    "evaluate_dir",
    "estimate_memory",
    "prepare_text",
    "read_corpus",
    "evaluate_heldout",
    "window_categories",
    "KneserNey",
    "AddOneBigram",
    "SUBSETS",
    "PREDICTORS",
    "CATEGORIES",
]
