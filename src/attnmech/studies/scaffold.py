"""One shape for every study: config -> run -> result -> report.

Every study (the paper's reproduction, the demo, the optimiser-bias table, real text, the authors'
replay, sweeps) is built from the same four pieces, so that a user who has run one knows how to
run, save, load and read all of them:

- a **frozen config** (a dataclass deriving from :class:`StudyConfig`): every option of the study,
  validated when it is built, with :meth:`~StudyConfig.to_dict` / :meth:`~StudyConfig.from_dict`
  (unknown keys are refused; deprecated names are accepted with a warning for one release);
- one **run function** with one signature::

      run(config, *, out_dir=None, progress=None, resume=False) -> Result

  ``out_dir`` is checked for writability before any work; ``progress`` is anything
  :meth:`Progress.coerce` accepts (``None``/``False``: silent; ``True``: a bar on a terminal;
  a callable: one line of text per event; a :class:`Progress`); ``resume`` reuses finished work
  saved in ``out_dir`` where the study supports it;
- a **result** (a :class:`StudyResult`): :meth:`~StudyResult.to_dict` (strict JSON),
  :meth:`~StudyResult.write` (``results.json``, the Markdown report and figures, atomically) and
  the matching :meth:`~StudyResult.load`;
- a **report** built with :class:`Report`, whose numbers are all formatted by :func:`fmt`, with
  intervals from :mod:`attnmech._summary`.

:data:`STUDIES` names every study's run function and config type.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
import os
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from .._io import atomic_write_text, check_writable, exclusive_lock, output_transaction
from .._version import __version__
from ..errors import FileFormatError, InvalidParameterError

__all__ = [
    "STUDIES",
    "Progress",
    "ProgressLike",
    "Report",
    "StudyConfig",
    "StudyResult",
    "fmt",
    "fmt_interval",
    "get_study",
    "load_result",
    "locks_out_dir",
    "prepare_out_dir",
]

RESULTS_FILE = "results.json"

C = TypeVar("C", bound="StudyConfig")
R = TypeVar("R", bound="StudyResult")
F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- numbers
def fmt(value: Any, digits: int = 4) -> str:
    """The one number formatter of every report.

    ``None`` and NaN print as ``n/a``, booleans as ``yes``/``no``, integers in full, other reals
    with ``digits`` significant digits (``format(x, ".{digits}g")``: scientific notation for very
    small and very large magnitudes), and anything else as ``str(value)``.

    Examples
    --------
    >>> fmt(0.98437512), fmt(3), fmt(2.5e-7), fmt(None), fmt(True), fmt(123456.7, 3)
    ('0.9844', '3', '2.5e-07', 'n/a', 'yes', '1.23e+05')
    """
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return "n/a"
        return f"{x:.{digits}g}"
    return str(value)


def fmt_interval(center: Any, low: Any, high: Any, digits: int = 3) -> str:
    """``center [low, high]`` with :func:`fmt` (``n/a`` parts where a value is missing).

    >>> fmt_interval(0.5, 0.41, 0.59)
    '0.5 [0.41, 0.59]'
    """
    return f"{fmt(center, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


# --------------------------------------------------------------------------- progress
class Progress:
    """Where a study reports what it is doing: one-line messages and counted stages.

    Parameters
    ----------
    callback : callable, optional
        Receives every message as one line of text (the CLI prints them to stderr).
    bar : bool, default=False
        Draw a tqdm bar for each counted stage (on stderr; only when it is a terminal, unless
        ``force_bar``).
    force_bar : bool, default=False
        Draw bars even when stderr is not a terminal (for tests).
    """

    def __init__(
        self,
        callback: Callable[[str], Any] | None = None,
        *,
        bar: bool = False,
        force_bar: bool = False,
    ) -> None:
        self.callback = callback
        self.bar = bool(bar) and (force_bar or _stderr_is_terminal())

    @classmethod
    def coerce(cls, progress: Any) -> Progress:
        """A :class:`Progress` from whatever a run function was given.

        ``None``/``False``: silent; ``True``: bars on a terminal; a callable: its messages; a
        :class:`Progress`: itself. Anything else is refused with :class:`InvalidParameterError`.
        """
        if isinstance(progress, Progress):
            return progress
        if progress is None or progress is False:
            return cls()
        if progress is True:
            return cls(bar=True)
        if callable(progress):
            return cls(progress)
        raise InvalidParameterError(
            "progress must be None, a bool, a callable taking one str, or a Progress; "
            f"got {type(progress).__name__}"
        )

    def message(self, text: str) -> None:
        """Report one line of text."""
        if self.callback is not None:
            self.callback(text)

    @contextmanager
    def stage(self, total: int, desc: str, unit: str = "it") -> Iterator[Callable[[int], None]]:
        """A counted stage: yields ``advance(n)``; draws a bar when bars are on.

        The stage's start and end are also reported as messages.
        """
        self.message(f"{desc}: started ({total} {unit})")
        bar = None
        if self.bar:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=0.5)

        def advance(n: int = 1) -> None:
            if bar is not None:
                bar.update(n)

        try:
            yield advance
        finally:
            if bar is not None:
                bar.close()
        self.message(f"{desc}: done")


ProgressLike = Progress | bool | Callable[[str], Any] | None
"""What a run function's ``progress`` accepts (see :meth:`Progress.coerce`)."""


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- configs
@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Base of every study's configuration: a frozen dataclass that converts to and from JSON.

    Subclasses are frozen dataclasses; they validate in ``__post_init__`` and may declare
    ``_DEPRECATED_NAMES = {"old_name": "new_name"}``, accepted by :meth:`from_dict` with a
    ``DeprecationWarning``.
    """

    _DEPRECATED_NAMES: ClassVar[Mapping[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        """Every field as strict JSON (tuples as lists, paths as strings, enums as values)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """The config whose :meth:`to_dict` is ``data``.

        Raises
        ------
        InvalidParameterError
            ``data`` is not a mapping, or names a field the config does not have.
        """
        if not isinstance(data, Mapping):
            raise InvalidParameterError(
                f"{cls.__name__}.from_dict: expected a mapping of field names to values; "
                f"got {type(data).__name__}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            new = cls._DEPRECATED_NAMES.get(key)
            if new is not None:
                warnings.warn(
                    f"{cls.__name__}: {key!r} is deprecated; use {new!r}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                key = new
            if key not in names:
                raise InvalidParameterError(
                    f"{cls.__name__}: unknown field {key!r}; the fields are {sorted(names)}"
                )
            values[key] = _restore(cls, key, value)
        return cls(**values)

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _restore(cls: type, key: str, value: Any) -> Any:
    """JSON lists back to tuples where the field's default is a tuple."""
    for f in dataclasses.fields(cls):
        if f.name != key:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if isinstance(default, tuple) and isinstance(value, list):
            return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return value


# --------------------------------------------------------------------------- results
class StudyResult(ABC):
    """Base of every study's result: JSON in, JSON out, and a Markdown report.

    Subclasses set :attr:`study` (the study's name in :data:`STUDIES`) and :attr:`report_name`,
    and implement :meth:`to_dict`, :meth:`from_dict` and :meth:`report`; they may override
    :meth:`write_figures` and :meth:`write_extra` (for arrays and other files).
    """

    study: ClassVar[str] = ""
    report_name: ClassVar[str] = "REPORT.md"

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-able dict (``study`` and ``config`` keys included)."""

    @classmethod
    @abstractmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """The result whose :meth:`to_dict` is ``data``."""

    @abstractmethod
    def report(self) -> Report:
        """The study's Markdown report."""

    def write_figures(self, out_dir: Path) -> list[Path]:
        """Draw the study's figures into ``out_dir``; return their paths (default: none)."""
        return []

    def write_extra(self, out_dir: Path) -> list[Path]:
        """Write files other than results, report and figures (default: none)."""
        return []

    def write(self, out_dir: str | os.PathLike[str], *, figures: bool = True) -> Path:
        """Write ``results.json``, the report and (with ``figures``) the figures, atomically.

        Returns the output folder.
        """
        out = prepare_out_dir(out_dir, what=f"{self.study or 'study'} output")
        with output_transaction(out, what=f"{self.study or 'study'} output folder"):
            # all or nothing: a failed write (a full disk) restores every file written here
            written = self.write_extra(out)
            if figures:
                written += self.write_figures(out)
            payload = {"study": self.study, "attnmech_version": __version__, **self.to_dict()}
            _write_json(out / RESULTS_FILE, payload)
            self.report().write(out / self.report_name)
        return out

    @classmethod
    def load(cls: type[R], out_dir: str | os.PathLike[str]) -> R:
        """Read a result written by :meth:`write` (``out_dir/results.json``).

        Raises
        ------
        FileFormatError
            Missing or unreadable ``results.json``, or a result of another study.
        """
        data = _read_results(Path(out_dir))
        if cls.study and data.get("study") not in (cls.study, None):
            raise FileFormatError(
                f"{Path(out_dir) / RESULTS_FILE} holds a {data.get('study')!r} result, "
                f"not {cls.study!r}",
                path=str(Path(out_dir) / RESULTS_FILE),
            )
        return cls.from_dict(data)


def prepare_out_dir(out_dir: str | os.PathLike[str], *, what: str = "output") -> Path:
    """Create ``out_dir`` if needed and check it can be written (before any work)."""
    out = Path(out_dir)
    check_writable(out / RESULTS_FILE, what=what)
    return out


def _write_json(path: Path, data: Any) -> None:
    from .report import to_jsonable

    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False, ensure_ascii=False)
    atomic_write_text(path, text + "\n")


def _read_results(out_dir: Path) -> dict[str, Any]:
    path = out_dir / RESULTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileFormatError(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc
    from .._io import check_nesting

    check_nesting(text, what="results file", path=path)
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FileFormatError(f"{path} is not valid JSON: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise FileFormatError(f"{path} does not hold a JSON object", path=str(path))
    return data


# --------------------------------------------------------------------------- reports
class Report:
    """A Markdown report built block by block; every number goes through :func:`fmt`.

    >>> r = Report("Demo").paragraph("Two rows.").table(["x", "y"], [[1, 0.123456], [2, None]])
    >>> print(r.to_markdown())
    # Demo
    <BLANKLINE>
    Two rows.
    <BLANKLINE>
    | x | y |
    |---:|---:|
    | 1 | 0.1235 |
    | 2 | n/a |
    <BLANKLINE>
    """

    def __init__(self, title: str, *, digits: int = 4) -> None:
        self.title = title
        self.digits = digits
        self._blocks: list[str] = []

    def heading(self, text: str, level: int = 2) -> Report:
        """A section heading (``level`` 2-6)."""
        self._blocks.append(f"{'#' * max(2, min(level, 6))} {text}")
        return self

    def paragraph(self, text: str) -> Report:
        """A paragraph of text."""
        self._blocks.append(text.strip())
        return self

    def bullets(self, items: Iterable[str]) -> Report:
        """A bullet list."""
        self._blocks.append("\n".join(f"- {item}" for item in items))
        return self

    def table(
        self,
        headers: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        digits: int | None = None,
    ) -> Report:
        """A table; numbers right-aligned and formatted with :func:`fmt`."""
        rows = [list(r) for r in rows]
        d = self.digits if digits is None else digits
        numeric = [
            all(isinstance(r[i], numbers.Real) or r[i] is None for r in rows) if rows else False
            for i in range(len(headers))
        ]
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        for r in rows:
            lines.append("| " + " | ".join(fmt(v, d) for v in r) + " |")
        self._blocks.append("\n".join(lines))
        return self

    def figure(self, path: str | os.PathLike[str], caption: str) -> Report:
        """An embedded figure (``path`` relative to the report's folder)."""
        self._blocks.append(f"![{caption}]({os.fspath(path)})")
        return self

    def code(self, text: str, language: str = "") -> Report:
        """A fenced code block."""
        self._blocks.append(f"```{language}\n{text.rstrip()}\n```")
        return self

    def to_markdown(self) -> str:
        """The report as Markdown text (ending in a newline)."""
        return "\n\n".join([f"# {self.title}", *self._blocks]) + "\n"

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the report atomically; return its path."""
        path = Path(path)
        atomic_write_text(path, self.to_markdown())
        return path


# --------------------------------------------------------------------------- registry
# study name -> its module below ``attnmech.studies``. Each study module defines ``run`` (the one
# signature above), ``CONFIG_TYPE`` and ``RESULT_TYPE``. Read lazily: naming a study imports nothing.
STUDIES: dict[str, str] = {
    "bias": "bias",
    "demo": "demo",
    "reproduction": "reproduction",
    "sweep": "sweeps",
    "text": "text",
}


def get_study(name: str) -> Any:
    """The module of study ``name`` (with ``run``, ``CONFIG_TYPE`` and ``RESULT_TYPE``).

    Raises
    ------
    InvalidParameterError
        An unknown study name.
    """
    import importlib

    if name not in STUDIES:
        raise InvalidParameterError(f"unknown study {name!r}; the studies are {sorted(STUDIES)}")
    return importlib.import_module(f"attnmech.studies.{STUDIES[name]}")


def load_result(out_dir: str | os.PathLike[str]) -> StudyResult:
    """Load any study's result from its output folder, by the ``study`` key of its results.json.

    Raises
    ------
    FileFormatError
        Unreadable results, or a study this version does not know.
    """
    data = _read_results(Path(out_dir))
    name = data.get("study")
    if not isinstance(name, str) or name not in STUDIES:
        raise FileFormatError(
            f"{Path(out_dir) / RESULTS_FILE}: unknown study {name!r}; known: {sorted(STUDIES)}",
            path=str(Path(out_dir) / RESULTS_FILE),
        )
    result_type: type[StudyResult] = get_study(name).RESULT_TYPE
    return result_type.from_dict(data)


# --------------------------------------------------------------------------- one writer per folder
def locks_out_dir(what: str) -> Callable[[F], F]:
    """Decorate a study's ``run`` so that a call with ``out_dir`` holds the folder's lock.

    While the run works, a second writer of the same ``out_dir`` (another process, or another
    call in this one) is refused with :class:`~attnmech.errors.OutputError` naming the
    holder's pid (:func:`attnmech._io.exclusive_lock`); the CLI and the API take the same lock.
    A call without ``out_dir`` is not locked; an ``out_dir`` that is not a path is refused
    (InvalidParameterError) before anything is made. ``resume`` is unaffected: the lock is released when ``run`` returns.
    """

    def decorate(run: F) -> F:
        import functools

        @functools.wraps(run)
        def locked(*args: Any, **kwargs: Any) -> Any:
            out_dir = kwargs.get("out_dir")
            if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
                raise InvalidParameterError(
                    f"out_dir must be a folder path (str or Path) or None, got "
                    f"{type(out_dir).__name__}"
                )
            if out_dir is None or not os.fspath(out_dir):
                return run(*args, **kwargs)
            if Path(out_dir).exists() and not Path(out_dir).is_dir():
                return run(*args, **kwargs)  # run refuses it, in its own words
            check_writable(Path(out_dir) / RESULTS_FILE, what=what)
            with exclusive_lock(out_dir, what=what):
                return run(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate

