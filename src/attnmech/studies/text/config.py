"""The options of the text study (:class:`TextConfig`, the ``attnmech text`` options)."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import InitVar, dataclass
from typing import Any, ClassVar

from ...errors import InvalidParameterError
from ..scaffold import StudyConfig

__all__ = ["TextConfig", "TextRunConfig"]


@dataclass(frozen=True)
class TextConfig(StudyConfig):
    """What :func:`attnmech.studies.text.run` does.

    Parameters
    ----------
    corpus : str or None, default=None
        A text file or a folder of them (required by ``run``).
    vocab_size : int, default=1000
        K: the ``K - 1`` most frequent training tokens plus ``<unk>``.
    seq_len : int, default=16
        T: window length.
    level : {"word", "char"}, default="word"
    embeddings : str, default="onehot"
        ``"onehot"`` or ``"random:d=256"`` (random unit embeddings of dimension d).
    holdout : float, default=0.1
        Fraction of the token stream (its end) kept for testing.
    stride : int or None, default=None
        Step between window starts (default ``seq_len``: non-overlapping windows).
    steps : int, default=2000
        Training steps (``num_steps`` is a deprecated alias).
    learning_rate : float, default=1.0
    optimizer : str, default="split-ngd"
        A key of :data:`attnmech.layer.optim.OPTIMIZERS`. ``split-ngd`` (normalised step
        orthogonal to ``S_fin``, capped Polyak step on ``S_fin``, ``L*`` the finite part's loss)
        reaches the automaton in a few thousand steps where ``ngd`` needs about 10^5 (see
        docs/text); it needs one-hot embeddings and a theory, and falls back to ``ngd``
        otherwise. One-hot runs train on the pair entries with ``gd``, ``ngd``, ``adam``,
        ``polyak``, ``polyak-capped`` and ``split-ngd``.
    init : {"uniform", "zero"}, default="uniform"
        Initial W. One-hot entries of (token, query) pairs never seen in training keep it.
    unk : {"drop-labels", "keep"}, default="drop-labels"
    log_every : int or None, default=None
        Metric logging period (default: ``steps // 20``).
    finite_trajectory : bool or None, default=None
        Also train ``W_fin(t)`` for the ``fin_gap_traj`` metric (default: only when K <= 2000).
    n_examples : int, default=4
        Held-out windows drawn in the attention figure.
    n_prompts : int, default=3
    generate_length : int, default=24
    seed : int, default=0
    num_threads : int or None, default=1
        torch threads while training (None: torch's setting).
    glob : str, default="*.txt"
        Files of a corpus folder that are read.
    checkpoint_every : int or None, default=None
        With an output folder, the training state is checkpointed every this many steps
        (``checkpoint.npz``, removed once the run is written), so that ``resume=True`` continues
        an interrupted training. None: every ``steps // 50`` steps (a kill loses at most 2% of
        the training); 0: no checkpoint. It does not change the numbers.
    """

    corpus: str | None = None
    vocab_size: int = 1000
    seq_len: int = 16
    level: str = "word"
    embeddings: str = "onehot"
    holdout: float = 0.1
    stride: int | None = None
    steps: int = 2000
    learning_rate: float = 1.0
    optimizer: str = "split-ngd"
    init: str = "uniform"
    unk: str = "drop-labels"
    log_every: int | None = None
    finite_trajectory: bool | None = None
    n_examples: int = 4
    n_prompts: int = 3
    generate_length: int = 24
    seed: int = 0
    num_threads: int | None = 1
    glob: str = "*.txt"
    checkpoint_every: int | None = None
    num_steps: InitVar[int | None] = None

    _DEPRECATED_NAMES: ClassVar[dict[str, str]] = {"num_steps": "steps"}

    def __post_init__(self, num_steps: int | None) -> None:
        if num_steps is not None:
            warnings.warn(
                "TextConfig: 'num_steps' is deprecated; use 'steps'",
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "steps", num_steps)
        if self.corpus is not None:
            if not isinstance(self.corpus, (str, os.PathLike)):
                raise InvalidParameterError(
                    f"corpus must be a path, got {type(self.corpus).__name__}"
                )
            object.__setattr__(self, "corpus", os.fspath(self.corpus))
        ints = {"vocab_size": 3, "seq_len": 2, "steps": 1, "n_examples": 0, "n_prompts": 0}
        ints["generate_length"] = 0
        ints["seed"] = 0
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidParameterError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.level not in ("word", "char"):
            raise InvalidParameterError(f"level must be 'word' or 'char', got {self.level!r}")
        if self.unk not in ("drop-labels", "keep"):
            raise InvalidParameterError(f"unk must be 'drop-labels' or 'keep', got {self.unk!r}")
        if self.init not in ("uniform", "zero"):
            raise InvalidParameterError(f"init must be 'uniform' or 'zero', got {self.init!r}")
        if not isinstance(self.holdout, (int, float)) or not (0.0 < float(self.holdout) < 1.0):
            raise InvalidParameterError(f"holdout must lie in (0, 1), got {self.holdout!r}")
        lr = self.learning_rate
        if (
            isinstance(lr, bool)
            or not isinstance(lr, (int, float))
            or not (math.isfinite(lr) and lr > 0)
        ):
            raise InvalidParameterError(f"learning_rate must be a positive number, got {lr!r}")
        from ...layer.optim import OPTIMIZERS

        if self.optimizer not in OPTIMIZERS:
            raise InvalidParameterError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        for name in ("stride", "log_every", "num_threads"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InvalidParameterError(
                    f"{name} must be a positive integer or None, got {value!r}"
                )
        every = self.checkpoint_every
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 0
        ):
            raise InvalidParameterError(
                f"checkpoint_every must be an integer >= 0 or None, got {every!r}"
            )
        if not isinstance(self.glob, str) or not self.glob:
            raise InvalidParameterError(f"glob must be a non-empty pattern, got {self.glob!r}")
        self.embedding_dim  # noqa: B018 (parses the embeddings string, raising when bad)

    @property
    def embedding_dim(self) -> int | None:
        """None for one-hot embeddings, else the ``d`` of ``random:d=D``."""
        if self.embeddings == "onehot":
            return None
        prefix = "random:d="
        if isinstance(self.embeddings, str) and self.embeddings.startswith(prefix):
            try:
                d = int(self.embeddings[len(prefix) :])
            except ValueError:
                d = 0
            if d >= 1:
                return d
        raise InvalidParameterError(
            f"embeddings must be 'onehot' or 'random:d=D' (e.g. random:d=256), got "
            f"{self.embeddings!r}"
        )

    @property
    def checkpoint_period(self) -> int:
        """Steps between training checkpoints (0: none): ``checkpoint_every``, by default
        ``max(steps // 50, 1)``."""
        if self.checkpoint_every is None:
            return max(self.steps // 50, 1)
        return int(self.checkpoint_every)

    def differing_fields(self, other: TextConfig | dict[str, Any]) -> list[str]:
        """Names of the options whose values differ from ``other``'s (``checkpoint_every``,
        which does not change the numbers, left out)."""
        mine = self.to_dict()
        theirs = other.to_dict() if isinstance(other, TextConfig) else dict(other)
        return sorted(
            k
            for k in set(mine) | set(theirs)
            if k not in _RESUME_NEUTRAL and mine.get(k) != theirs.get(k)
        )

    def with_corpus(self, corpus: Any) -> TextConfig:
        """A copy reading ``corpus``."""
        return self.replace(corpus=os.fspath(corpus))


_RESUME_NEUTRAL = ("checkpoint_every",)
"""Options a run may be resumed with other values of (they do not change the numbers)."""

TextRunConfig = TextConfig
"""Deprecated name of :class:`TextConfig`."""
