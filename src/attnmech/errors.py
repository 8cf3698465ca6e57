"""Exceptions and warnings raised by attnmech.

Every error the library raises on purpose derives from :class:`AttnmechError`, so a caller (and the
command-line interface) can catch them all in one place. Messages say what was wrong, where, and
what to do about it.

Which class a mistake raises (one rule):

- :class:`InvalidDatasetError` only for the *content* of a dataset: its sequences, labels and
  embeddings (a token id out of range, NaN embeddings, a ragged table, an embedding table of the
  wrong shape, an unrealizable label);
- :class:`InvalidParameterError` for every *parameter*: a count, size, seed, rate, option, name or
  path given to a function, a config or a command (``make_dataset(0, ...)``,
  ``run_reproduction(trials=0)``, ``text_dataset(seq_len=0)``, an unknown ``graph=`` or
  ``on_unrealizable=``). Parameters are checked against declared tables
  (:mod:`attnmech._validation`), so the message has one form:
  ``"<where>: <param> must be <constraint>, got <value>"``;
- :class:`FileFormatError` (and :class:`CheckpointError`) for a file that cannot be read as what it
  should be, or whose content does not hold (checksum, fingerprint, a theory that does not solve its
  dataset); :class:`OutputError` for a file that cannot be written.
"""

from __future__ import annotations

__all__ = [
    "AttnmechError",
    "InvalidDatasetError",
    "InvalidParameterError",
    "ExperimentNotFoundError",
    "UnrealizableLabelError",
    "InfeasibleProblemError",
    "SolverError",
    "FileFormatError",
    "CheckpointError",
    "OutputError",
    "NotFittedError",
    "ConvergenceWarning",
    "MissingDependencyError",
]


class AttnmechError(Exception):
    """Root of every error raised by attnmech."""


class InvalidDatasetError(AttnmechError, ValueError):
    """A dataset (sequences, labels or embeddings) is malformed."""


class InvalidParameterError(AttnmechError, ValueError):
    """An option or configuration value is out of its allowed range."""


class ExperimentNotFoundError(InvalidParameterError):
    """A paper experiment was named that the registry does not have."""


class UnrealizableLabelError(InvalidDatasetError):
    """Some labels do not occur in their own sequence (the log-loss would be infinite).

    Attributes
    ----------
    samples : list of int
        Indices of the offending samples.
    """

    def __init__(self, message: str, samples: list[int] | None = None) -> None:
        super().__init__(message)
        self.samples = list(samples or [])


class InfeasibleProblemError(AttnmechError):
    """The Graph-SVM constraints cannot all hold (embeddings not linearly independent).

    Attributes
    ----------
    conflicts : list of tuple (last_token, i, j, kind)
        A set of constraints that cannot hold together. ``kind`` is ``"strict"`` for
        ``(e_i - e_j)^T W e_k >= 1`` and ``"equal"`` for ``(e_i - e_j)^T W e_k = 0``.
    """

    def __init__(self, message: str, conflicts: list[tuple[int, int, int, str]] | None = None):
        super().__init__(message)
        self.conflicts = list(conflicts or [])


class SolverError(AttnmechError):
    """A numerical solver failed to reach the requested accuracy."""


class FileFormatError(AttnmechError, ValueError):
    """A file cannot be read as what it should be (missing, empty, truncated, corrupt, wrong
    members or types). The message names the file and what is wrong with it.

    Attributes
    ----------
    path : str or None
        The file concerned.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


class CheckpointError(FileFormatError):
    """A checkpoint is unreadable, or was written by a run with other options."""


class OutputError(AttnmechError, OSError):
    """An output file or folder cannot be written (checked before long work starts)."""


class NotFittedError(AttnmechError, AttributeError):
    """An estimator was used before ``fit`` was called."""


class MissingDependencyError(AttnmechError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class ConvergenceWarning(UserWarning):
    """An iterative method stopped before reaching its tolerance."""
