"""The typer app of ``attnmech`` and what its commands share: error handling, option choices,
tables, output checks. The commands themselves live in :mod:`.core`, :mod:`.studies` and
:mod:`.sweeps`."""

from __future__ import annotations

import enum
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from .._choices import (
    EDGE_MODES,
    EMBEDDING_KINDS,
    GRAPH_KINDS,
    HEAD_NAMES,
    INIT_NAMES,
    LOSS_NAMES,
    PARAMETERIZATION_NAMES,
    TEXT_LEVELS,
    UNREALIZABLE_POLICIES,
)
from .._version import __version__
from ..errors import AttnmechError, InvalidParameterError, OutputError, UnrealizableLabelError
from ..layer.optim import OPTIMIZERS

if TYPE_CHECKING:
    from rich.table import Table

    from ..data.dataset import Dataset


app = typer.Typer(
    name="attnmech",
    help=(
        "Mechanics of next-token prediction with self-attention: token-priority graphs, "
        "Graph-SVM and finite part, training and verification (Li et al., AISTATS 2024)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: rendering help through rich costs about 0.5 s on a loaded 2-core machine
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- error handling
def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _fail(message: str) -> None:
    _close_progress_bars()
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code=1)


def _close_progress_bars() -> None:
    """Close every progress bar still drawn when a command fails, so that its ``error:`` line
    starts on a fresh line rather than glued to the end of the bar.

    A bar left open (its owner did not reach its ``close``) is closed here, which ends its line;
    tqdm is not imported when no bar was ever made.
    """
    std = sys.modules.get("tqdm.std")
    if std is None:
        return
    bars = list(getattr(std.tqdm, "_instances", ()))
    for bar in sorted(bars, key=lambda b: getattr(b, "pos", 0)):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a broken bar must not hide the error itself
            pass


def _option_names() -> dict[str, str]:
    """Parameter name -> how the user wrote it (``--json``, ``RUN``) for the running command."""
    try:  # typer carries its own click; its current-context helper is not re-exported
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - another typer layout
        try:
            from click import get_current_context  # type: ignore[no-redef]
        except ImportError:
            return {}
    ctx = get_current_context(silent=True)
    if ctx is None:
        return {}
    names: dict[str, str] = {}
    for param in ctx.command.params:
        if param.name is None:
            continue
        long = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        names[param.name] = long[0] if long else param.name.upper()
    return names


def _option_name(parameter: str) -> str:
    return _option_names().get(parameter, "--" + parameter.replace("_", "-"))


def _refuse_same_file(arguments: dict[str, Any]) -> None:
    """Refuse a command whose path arguments name one file twice (an output that is an input, or
    two outputs that would overwrite each other): ``train -o r.npz --checkpoint r.npz`` would lose
    the run, ``verify RUN --json RUN`` would overwrite it.

    Paths are compared after resolving symlinks and ``..``; a path that does not exist yet is
    compared by where it would be created.
    """
    seen: dict[str, str] = {}
    for name, value in arguments.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if not isinstance(item, Path) or str(item) in ("", "-"):
                continue
            key = os.path.realpath(item)
            if os.path.isdir(key):
                continue  # folders (an --out folder) may hold inputs; files in them are checked
            if key in seen and seen[key] != name:
                raise InvalidParameterError(
                    f"{_option_name(seen[key])} and {_option_name(name)} name the same file "
                    f"({item}); one would overwrite the other: give them different paths"
                )
            seen.setdefault(key, name)


def _reports_errors(command: F) -> F:
    """Run ``command``; turn library and file errors into ``error: ...`` and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            try:
                _refuse_same_file(kwargs)
                return command(*args, **kwargs)
            except UnrealizableLabelError as exc:
                _fail(f"{exc} (on the command line: --on-unrealizable drop or repair)")
            except OutputError as exc:  # an AttnmechError and an OSError: its own message
                _fail(exc.strerror or str(exc))
            except AttnmechError as exc:
                _fail(str(exc))
            except OSError as exc:  # missing folder, permission denied, disk full, ...
                where = f"{exc.filename}: " if exc.filename else ""
                _fail(f"{where}{exc.strerror or exc}")
            finally:
                for warning in caught:
                    typer.echo(f"warning: {_one_line(str(warning.message))}", err=True)

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- shared options
def _choice_enum(name: str, values: Iterable[str]) -> Any:
    """A ``str`` enum whose members are ``values`` (member name = value), for typer options.

    Every option with a fixed set of values is built here from the library's own list, so the
    command line cannot drift from what the library accepts.
    """
    return enum.Enum(name, [(value, value) for value in values], type=str)


if TYPE_CHECKING:  # enums made at run time are no types to mypy: check them as str enums

    class OnUnrealizable(str, enum.Enum):
        pass

    class EmbeddingKind(str, enum.Enum):
        pass

    class GraphKind(str, enum.Enum):
        pass

    class EdgeMode(str, enum.Enum):
        pass

    class TextLevel(str, enum.Enum):
        pass

    class Optimizer(str, enum.Enum):
        pass

    class HeadKind(str, enum.Enum):
        pass

    class LossKind(str, enum.Enum):
        pass

    class Parameterization(str, enum.Enum):
        pass

    class InitKind(str, enum.Enum):
        pass
else:
    OnUnrealizable = _choice_enum("OnUnrealizable", UNREALIZABLE_POLICIES)
    EmbeddingKind = _choice_enum("EmbeddingKind", EMBEDDING_KINDS)
    GraphKind = _choice_enum("GraphKind", GRAPH_KINDS)
    EdgeMode = _choice_enum("EdgeMode", EDGE_MODES)
    TextLevel = _choice_enum("TextLevel", TEXT_LEVELS)
    Optimizer = _choice_enum("Optimizer", OPTIMIZERS)
    HeadKind = _choice_enum("HeadKind", HEAD_NAMES)
    LossKind = _choice_enum("LossKind", LOSS_NAMES)
    Parameterization = _choice_enum("Parameterization", PARAMETERIZATION_NAMES)
    InitKind = _choice_enum("InitKind", INIT_NAMES)


# --------------------------------------------------------------------------- tables
def _table(
    rows: Sequence[Sequence[Any]],
    headers: Sequence[str],
    *,
    float_format: str = "{:.6g}",
    title: str | None = None,
) -> Table:
    """A rich table: numbers right-aligned and written with ``float_format``, None empty."""
    from rich.table import Table

    numeric = [
        bool(rows) and all(isinstance(r[c], (int, float)) or r[c] is None for r in rows)
        for c in range(len(headers))
    ]
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for header, is_number in zip(headers, numeric, strict=True):
        table.add_column(header, justify="right" if is_number else "left", overflow="fold")
    for row in rows:
        cells = []
        for value in row:
            if value is None:
                cells.append("")
            elif isinstance(value, float):
                cells.append(float_format.format(value))
            else:
                cells.append(str(value))
        table.add_row(*cells)
    return table


def _print_table(table: Table) -> None:
    """Print ``table`` to stdout: styled on a terminal; plain ASCII, unwrapped, otherwise."""
    from rich import box
    from rich.console import Console

    stream = sys.stdout
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    if terminal:
        table.box = box.SIMPLE_HEAD
        Console(file=stream).print(table)
        return
    table.box = _plain_box()
    console = Console(file=stream, width=400, no_color=True, force_terminal=False, emoji=False)
    with console.capture() as capture:
        console.print(table, highlight=False)
    text = "\n".join(line.rstrip() for line in capture.get().splitlines()).strip("\n")
    typer.echo(text)


def _plain_box() -> Any:
    """Blank column separators and a row of dashes under the header; ASCII only."""
    from rich.box import Box

    return Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


DataArgument = Annotated[
    Path,
    typer.Argument(
        metavar="DATA",
        help="Dataset file: .npz, or .jsonl with its embeddings.",
        show_default=False,
    ),
]
EmbeddingsOption = Annotated[
    str | None,
    typer.Option(
        "--embeddings",
        help=(
            "Embeddings for a .jsonl dataset (default: <stem>.embeddings.npy beside it): a .npy "
            "path or a generator spec such as random:d=8,seed=0. For .npz, replaces the stored "
            "table."
        ),
        show_default=False,
    ),
]
UnrealizableOption = Annotated[
    OnUnrealizable,
    typer.Option(
        "--on-unrealizable",
        help="Samples whose label is not in their sequence: fail, drop them, or relabel them.",
        case_sensitive=False,
    ),
]


def _load(path: Path, embeddings: str | None, on_unrealizable: Any) -> Dataset:
    from ..data.files import load_dataset

    dataset = load_dataset(path, embeddings=embeddings, on_unrealizable=on_unrealizable.value)
    if dataset.dropped.size:
        typer.echo(
            f"dropped {dataset.dropped.size} samples whose label is not in their sequence",
            err=True,
        )
    return dataset


def _version(value: bool) -> None:
    if value:
        typer.echo(f"attnmech {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Mechanics of next-token prediction with self-attention (Li et al., AISTATS 2024)."""
    if verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# --------------------------------------------------------------------------- train
PROGRESS_MIN_STEPS = 1000  # runs at least this long show a progress bar (on a terminal)


def _show_progress(no_progress: bool, num_steps: int) -> bool:
    """Progress bars go to stderr, and only to a terminal: a log file gets no bar."""
    if no_progress or num_steps < PROGRESS_MIN_STEPS:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was written at (for the message only), or None if unreadable."""
    from .. import _persist
    from ..errors import FileFormatError

    try:
        return int(_persist.read(path, "checkpoint", required=("step",)).arrays["step"])
    except (FileFormatError, ValueError, TypeError):  # train(resume=True) reports what is wrong
        return None


def _solve_or_warn(dataset: Dataset, svm_norm: str = "fro") -> Any:
    """The theory of ``dataset``, or None (with a warning) when its Graph-SVM is infeasible."""
    from ..errors import InfeasibleProblemError
    from ..theory.solve import solve

    try:
        return solve(dataset, svm_norm=svm_norm)
    except InfeasibleProblemError as exc:
        typer.echo(
            f"warning: {_one_line(str(exc))}; training without the theory's metrics "
            "(pass --no-theory to skip solving)",
            err=True,
        )
        return None


def _stats_table(
    stats: dict[str, dict[str, Any]], meanings: dict[str, str], *, single: bool
) -> Table:
    """One row per metric: its value (one trial) or mean, std, min, max over trials."""
    if single:
        rows = [[name, s["mean"], meanings.get(name, "")] for name, s in stats.items()]
        return _table(rows, ["metric", "value", "meaning"])
    rows = [
        [name, s["mean"], s["std"], s["min"], s["max"], meanings.get(name, "")]
        for name, s in stats.items()
    ]
    return _table(rows, ["metric", "mean", "std", "min", "max", "meaning"])


def _final_table(result: Any) -> Table:
    """Each recorded metric at the last step: mean, std, min, max over trials, and its meaning."""
    from ..layer.metrics import METRICS

    meanings = {**METRICS, "grad_norm": "||grad L||_F"}
    return _stats_table(result.summary()["final"], meanings, single=result.num_trials == 1)


def _key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    """``["p=3", "normalized=false"]`` -> ``{"p": 3, "normalized": False}`` (numbers, booleans,
    else strings)."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        text = raw.strip()
        try:
            value: Any = json.loads(text.lower() if text.lower() in ("true", "false") else text)
        except json.JSONDecodeError:
            value = text
        out[key.strip()] = value
    return out


def _load_theory_for(path: Path, dataset: Dataset, svm_norm: str) -> Any:
    """The saved theory at ``path``, checked against ``dataset`` and the norm the run needs."""
    from ..theory.solve import load_theory

    theory = load_theory(path, dataset=dataset)
    if theory.svm_norm != svm_norm:
        raise InvalidParameterError(
            f"{path} holds the {theory.svm_norm}-norm Graph-SVM but this run is measured against "
            f"the {svm_norm}-norm one; solve again with attnmech solve DATA --svm-norm {svm_norm} "
            f"-o {path}"
        )
    return theory


TheoryOption = Annotated[
    Path | None,
    typer.Option(
        "--theory",
        help="A theory saved by 'attnmech solve -o' for this dataset: used instead of solving "
        "again (refused if it was solved for other data).",
        show_default=False,
    ),
]



def _check_writable(path: Path, *, what: str = "output") -> Path:
    """:func:`attnmech._io.check_writable`, imported when a command runs (keeps --help fast)."""
    from .._io import check_writable as check

    return check(path, what=what)


def _check_folder(folder: Path) -> None:
    """An output folder must be a folder (or creatable) and writable, before any work."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            20,
            f"cannot write into {folder}: it is a file, not a folder; choose another --out",
            str(folder),
        )
    _check_writable(folder / "REPORT.md", what="output folder")





def main() -> None:
    """Entry point of the ``attnmech`` console script and of ``python -m attnmech``."""
    app(prog_name="attnmech")
