"""The ``attnmech`` command-line interface.

This is the only module that prints or exits. Each command parses its options, hands the work to
a library function and prints a short account of the result. Every error the library raises on
purpose (:class:`~attnmech.errors.AttnmechError`) and every file-system error becomes one line,
``error: ...``, on stderr and exit status 1; option errors are reported by the parser with exit
status 2. Warnings (for example an inaccurate solve) are printed as ``warning: ...``.

Commands: ``make-dataset``, ``graphs``, ``solve``, ``train``, ``verify``, ``demo``, ``reproduce``,
``experiments``. At import this module loads only typer and the numpy-free :mod:`attnmech._choices`
(every option's choices come from there, the library's single list of them); numpy, the solvers,
torch, matplotlib and rich are imported inside the command that needs them, so that
``attnmech --help`` stays fast. Output files are checked for writability before any long work.
Tables are drawn by rich: styled on a terminal, plain ASCII otherwise.
"""

from __future__ import annotations

import enum
import functools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from . import __version__
from ._choices import (
    EDGE_MODES,
    EMBEDDING_KINDS,
    GRAPH_KINDS,
    HEAD_NAMES,
    INIT_NAMES,
    LOSS_NAMES,
    PARAMETERIZATION_NAMES,
    SVM_NORMS,
    TEXT_LEVELS,
    UNREALIZABLE_POLICIES,
)
from .errors import AttnmechError, InvalidParameterError, OutputError, UnrealizableLabelError
from .optim import OPTIMIZERS

if TYPE_CHECKING:
    from rich.table import Table

    from .data import Dataset

__all__ = ["app", "main"]

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
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code=1)


def _reports_errors(command: F) -> F:
    """Run ``command``; turn library and file errors into ``error: ...`` and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            try:
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
    from .data import load_dataset

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


# --------------------------------------------------------------------------- make-dataset
@app.command("make-dataset")
@_reports_errors
def make_dataset_command(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="File to write: .npz, or .jsonl (+ embeddings .npy).",
            show_default=False,
        ),
    ],
    n_samples: Annotated[
        int | None,
        typer.Option(
            "--n", help="Number of samples n [default: 6; with --text: a cap].", show_default=False
        ),
    ] = None,
    seq_len: Annotated[int, typer.Option("--T", help="Sequence length T.")] = 4,
    vocab_size: Annotated[int, typer.Option("--K", help="Vocabulary size K.")] = 6,
    embedding_dim: Annotated[int, typer.Option("--d", help="Embedding dimension d.")] = 8,
    embeddings: Annotated[
        EmbeddingKind | None,
        typer.Option(
            "--embeddings",
            help="Embedding generator [default: random; with --text: onehot]. onehot stores no "
            "K x K table (d = K) and makes solve work in token space.",
            show_default=False,
        ),
    ] = None,
    graph: Annotated[
        GraphKind,
        typer.Option("--graph", help="Redraw until the token-priority graphs are cyclic/acyclic."),
    ] = GraphKind["any"],
    rho: Annotated[float, typer.Option("--rho", help="Pairwise correlation for equicorr.")] = 0.5,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (>= 0).")] = 0,
    embeddings_path: Annotated[
        Path | None,
        typer.Option(
            "--embeddings-out",
            help="For .jsonl output: the embeddings file (default: <stem>.embeddings.npy).",
            show_default=False,
        ),
    ] = None,
    text: Annotated[
        Path | None,
        typer.Option(
            "--text",
            help="Cut the dataset from this plain-text file instead (windows of T tokens, the "
            "K-1 most frequent words plus <unk>; windows whose next token is absent are dropped; "
            "--n caps the number of samples when given).",
            show_default=False,
        ),
    ] = None,
    level: Annotated[
        TextLevel, typer.Option("--level", help="With --text: word or character tokens.")
    ] = TextLevel["word"],
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride", help="With --text: step between windows (default T).", show_default=False
        ),
    ] = None,
) -> None:
    """Draw a dataset as in the paper's experiments (SPEC section 9), or cut one from text."""
    from .data import make_dataset
    from .errors import FileFormatError
    from .text import text_dataset

    _check_writable(output)
    if output.suffix == ".jsonl":
        _check_writable(embeddings_path or output.with_name(output.stem + ".embeddings.npy"))
    if text is not None:
        _check_writable(output.with_name(output.stem + ".vocab.json"))
    if embeddings is None:
        embeddings = EmbeddingKind["onehot"] if text is not None else EmbeddingKind["random"]
    if embeddings is EmbeddingKind["onehot"]:
        embedding_dim = vocab_size  # one-hot: d = K
    if text is not None:
        if not text.is_file():
            raise FileFormatError(
                f"text file {text} does not exist; give a plain-text file to --text", str(text)
            )
        cut = text_dataset(
            text,
            vocab_size=vocab_size,
            seq_len=seq_len,
            embedding_dim=embedding_dim,
            level=cast(Any, level.value),
            embeddings=embeddings.value,
            stride=stride,
            max_samples=n_samples,
            seed=seed,
        )
        dataset = cut.dataset
        from .report import write_json

        vocab_file = output.with_name(output.stem + ".vocab.json")
        write_json(vocab_file, cut.vocabulary)
        typer.echo(f"{cut.n_windows} windows, {dataset.n_samples} kept (label inside the window)")
        typer.echo(f"wrote {vocab_file} (token names)")
    else:
        dataset = make_dataset(
            6 if n_samples is None else n_samples,
            seq_len,
            vocab_size,
            embedding_dim,
            embeddings=embeddings.value,
            graph=graph.value,
            seed=seed,
            rho=rho,
        )
    written = dataset.save(
        output, embeddings_path=None if embeddings_path is None else str(embeddings_path)
    )
    typer.echo(f"wrote {written}")
    if written.suffix == ".jsonl":
        sibling = embeddings_path or written.with_name(written.stem + ".embeddings.npy")
        typer.echo(f"wrote {sibling} (embeddings)")
    typer.echo(repr(dataset))
    typer.echo(_graph_line(dataset))


def _graph_line(dataset: Dataset) -> str:
    from .graphs import build_priority_graphs

    graphs = build_priority_graphs(dataset)
    kind = "cyclic" if graphs.is_cyclic else "acyclic"
    return (
        f"token-priority graphs: {kind} ({graphs.cyclic_queries.size} of {graphs.queries.size} "
        "last tokens have an SCC of size > 1)"
    )


# --------------------------------------------------------------------------- graphs
@app.command("graphs")
@_reports_errors
def graphs_command(
    data: DataArgument,
    query: Annotated[
        list[int] | None,
        typer.Option(
            "--query",
            "-q",
            help="Last token to show (repeat for several; default all).",
            show_default=False,
        ),
    ] = None,
    dot: Annotated[
        Path | None,
        typer.Option(
            "--dot",
            help="Write Graphviz DOT (one cluster per SCC) to this file.",
            show_default=False,
        ),
    ] = None,
    draw: Annotated[
        Path | None,
        typer.Option(
            "--draw",
            help="Draw the graphs (one box per SCC) to a .png, .pdf or .svg.",
            show_default=False,
        ),
    ] = None,
    edges: Annotated[
        EdgeMode,
        typer.Option("--edges", help="In drawings: edges between SCCs only, or every edge."),
    ] = EdgeMode["condensation"],
    max_queries: Annotated[
        int, typer.Option("--max-queries", help="Without --query: show at most this many.")
    ] = 50,
    top_sccs: Annotated[
        int | None,
        typer.Option(
            "--top-sccs",
            help="Print the SCC size histogram and this many of the largest SCCs [default: 10, "
            "when there are more last tokens than --max-queries].",
            show_default=False,
        ),
    ] = None,
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable["raise"],
) -> None:
    """Print each last token's SCCs in priority order (SPEC section 3).

    Bounded at any vocabulary size: counts, an SCC size histogram and the largest SCCs (when the
    listing is cut, or with --top-sccs), at most --max-queries lines of at most 40 SCCs each;
    drawings show the top SCCs of each panel and say what was left out.
    """
    if draw is not None and draw.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise typer.BadParameter(f"{draw} must end in .png, .pdf or .svg", param_hint="--draw")
    from .graphs import build_priority_graphs

    for target in (dot, draw):
        if target is not None:
            _check_writable(target)
    dataset = _load(data, embeddings, on_unrealizable)
    graphs = build_priority_graphs(dataset)
    queries = None if not query else query
    shown = max_queries if queries is None else len(queries)
    text = graphs.summary(queries, max_queries=shown)
    truncated = queries is None and graphs.queries.size > max_queries
    if top_sccs is not None or truncated:  # large outputs: counts and the largest SCCs first
        head, _, rest = text.partition("\n")
        overview = graphs.overview(top=10 if top_sccs is None else top_sccs)
        text = "\n".join(part for part in (head, overview, rest) if part)
    typer.echo(text)
    if dot is not None:
        from ._io import atomic_write_text

        atomic_write_text(dot, graphs.to_dot(queries))
        typer.echo(f"wrote {dot}")
    if draw is not None:
        from .report import plot_priority_graphs, save_figure

        figure = plot_priority_graphs(graphs, queries, edges=edges.value, max_queries=max_queries)
        fmt = draw.suffix.lower().lstrip(".")
        (written,) = save_figure(figure, draw.with_suffix(""), formats=(fmt,))
        typer.echo(f"wrote {written}")


# --------------------------------------------------------------------------- solve
@app.command("solve")
@_reports_errors
def solve_command(
    data: DataArgument,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Save the solution (W_svm, W_fin, ...) to this .npz.",
            show_default=False,
        ),
    ] = None,
    svm_norm: Annotated[
        str,
        typer.Option(
            "--svm-norm",
            help=f"Which norm the Graph-SVM minimises: {', '.join(SVM_NORMS)} or lp:P "
            "(1 < P < inf). fro is the paper's; nuclear is the direction expected for "
            "factorized W = K Q^T; the others are extensions (see the README).",
        ),
    ] = "fro",
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable["raise"],
    allow_inaccurate: Annotated[
        bool,
        typer.Option(
            "--allow-inaccurate",
            help="Return the best W_svm even when no method certifies it (a warning instead of "
            "an error).",
        ),
    ] = False,
) -> None:
    """Solve the Graph-SVM (W_svm) and the finite part (W_fin) of a dataset (SPEC 4-5)."""
    from .theory import solve

    if output is not None:
        if output.suffix != ".npz":
            raise typer.BadParameter(f"{output} must end in .npz", param_hint="--output")
        _check_writable(output)
    dataset = _load(data, embeddings, on_unrealizable)
    start = time.perf_counter()
    theory = solve(dataset, svm_norm=svm_norm, allow_inaccurate=allow_inaccurate)
    elapsed = time.perf_counter() - start
    typer.echo(f"dataset: {dataset!r}")
    typer.echo(f"graphs: {theory.graphs.summary(max_queries=0).splitlines()[0]}")
    _print_table(_solve_table(theory))
    typer.echo(f"total time: {elapsed:.3g} s")
    if output is not None:
        theory.save(output)
        typer.echo(f"wrote {output}")


def _solve_table(theory: Any) -> Table:
    """The solve summary: one row per quantity of the Graph-SVM and of the finite part."""
    import numpy as np

    s, f = theory.svm, theory.finite
    strict = np.asarray(s.edge_strict, dtype=bool)
    if strict.any():
        margin: Any = float(np.asarray(s.edge_margins, dtype=np.float64)[strict].min())
        margin_note = f"over {int(strict.sum())} strict edges (1 at the optimum)"
    else:
        margin, margin_note = "n/a", "no strict priority: W_svm = 0"
    from .norms import norm_of

    rows: list[list[Any]] = [
        ["W_svm status", s.status.value, f"Graph-SVM, {theory.svm_norm} norm"],
        [
            f"{theory.svm_norm} norm of W_svm",
            f"{float(norm_of(np.asarray(s.W_svm), theory.svm_norm)):.6g}",
            "" if s.unique else "minimiser not unique: least-Frobenius point of the optimal face",
        ],
        [
            "constraints",
            str(s.constraints.n_constraints),
            f"reduced from {s.constraints.n_original} edges",
        ],
        ["min strict margin", margin if isinstance(margin, str) else f"{margin:.6g}", margin_note],
        ["max violation", f"{s.max_violation:.1e}", "over every edge"],
        ["relative gap", f"{s.relative_gap:.1e}", "(primal - dual) / primal"],
        ["W_svm solved by", getattr(s, "method", s.solver_stats.solver_name), ""],
        ["W_svm time", f"{s.solver_stats.solve_time:.3f} s", s.solver_stats.solver_name],
        ["W_fin status", f.status.value, "finite part on S_fin"],
        ["||W_fin||_F", f"{f.norm:.6g}", ""],
        ["dim S_fin", str(f.dimension), ""],
        ["gradient norm", f"{f.gradient_norm:.1e}", "in S_fin, at W_fin"],
        ["Newton steps", str(f.solver_stats.num_iters), ""],
        ["W_fin time", f"{f.solver_stats.solve_time:.3f} s", ""],
    ]
    return _table(rows, ["quantity", "value", "note"])


# --------------------------------------------------------------------------- train
PROGRESS_MIN_STEPS = 1000  # runs at least this long show a progress bar (on a terminal)


def _show_progress(no_progress: bool, num_steps: int) -> bool:
    """Progress bars go to stderr, and only to a terminal: a log file gets no bar."""
    if no_progress or num_steps < PROGRESS_MIN_STEPS:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was written at (for the message only), or None if unreadable."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            return int(archive["step"])
    except Exception:  # empty, truncated, corrupt: train(resume=True) reports what is wrong
        return None


def _solve_or_warn(dataset: Dataset, svm_norm: str = "fro") -> Any:
    """The theory of ``dataset``, or None (with a warning) when its Graph-SVM is infeasible."""
    from .errors import InfeasibleProblemError
    from .theory import solve

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
    from .metrics import METRICS

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
    from .theory import load_theory

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


@app.command("train")
@_reports_errors
def train_command(
    ctx: typer.Context,
    data: DataArgument,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the run (.npz: final W and the metric histories).",
            show_default=False,
        ),
    ],
    steps: Annotated[int, typer.Option("--steps", min=0, help="Number of updates.")] = 4000,
    learning_rate: Annotated[float, typer.Option("--lr", help="Step size (eta).")] = 0.01,
    optimizer: Annotated[
        Optimizer,
        typer.Option(
            "--optimizer",
            help="A step rule of attnmech.optim.OPTIMIZERS (ngd, normalised GD, is the paper's).",
            case_sensitive=False,
        ),
    ] = Optimizer["ngd"],
    optimizer_option: Annotated[
        list[str] | None,
        typer.Option(
            "--optimizer-option",
            help="KEY=VALUE option of the step rule (repeatable), e.g. p=3 for mirror, "
            "normalized=false, lower_bound=0.1 for polyak.",
            show_default=False,
        ),
    ] = None,
    svm_norm: Annotated[
        str | None,
        typer.Option(
            "--svm-norm",
            help="Measure the run against this norm's Graph-SVM (fro, nuclear, spectral, l1, "
            "linf, lp:P), or 'auto': the optimiser's own geometry [default: fro, nuclear for "
            "--parameterization factorized].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the initialisation.")] = 0,
    head: Annotated[
        HeadKind,
        typer.Option(
            "--head",
            help="iden: p = attention mass per token (the theory's); gen: softmax(E X^T s).",
            case_sensitive=False,
        ),
    ] = HeadKind["iden"],
    loss: Annotated[
        LossKind,
        typer.Option(
            "--loss",
            help="-log p_y (log and ce are the same), (1 - p_y)^2 or -p_y.",
            case_sensitive=False,
        ),
    ] = LossKind["log"],
    parameterization: Annotated[
        Parameterization,
        typer.Option(
            "--parameterization",
            help="combined: train W; factorized: W = K Q^T with "
            "both trained (measured against the nuclear-norm Graph-SVM).",
            case_sensitive=False,
        ),
    ] = Parameterization["combined"],
    init: Annotated[
        InitKind,
        typer.Option(
            "--init",
            help="uniform: U(-1/sqrt(d), 1/sqrt(d)) entries; zero: W = 0.",
            case_sensitive=False,
        ),
    ] = InitKind["uniform"],
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Initialisations, trained in one batch.")
    ] = 1,
    log_every: Annotated[
        int,
        typer.Option(
            "--log-every",
            min=0,
            help="Record metrics every this many steps (0: the first and last step only).",
        ),
    ] = 10,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            "--checkpoint-every",
            min=0,
            help="Write a checkpoint every this many steps "
            "(0: never), so that --resume can continue a killed run.",
        ),
    ] = 0,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint", help="Checkpoint file (default: <output>.ckpt.npz).", show_default=False
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue from the checkpoint, if there is one. Give the "
            "same options as the interrupted run; the result is the same as an "
            "uninterrupted run.",
        ),
    ] = False,
    no_progress: Annotated[
        bool,
        typer.Option(
            "--no-progress",
            help="No progress bar (shown on a terminal for runs "
            f"of {PROGRESS_MIN_STEPS} steps or more).",
        ),
    ] = False,
    summary: Annotated[
        Path | None,
        typer.Option(
            "--summary",
            help="Run summary JSON: config, versions, final metrics "
            "(default: <output> with suffix .json).",
            show_default=False,
        ),
    ] = None,
    no_theory: Annotated[
        bool,
        typer.Option(
            "--no-theory", help="Do not solve for W_svm and W_fin: record only loss and norms."
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="torch threads (default: 1 for small problems).",
            show_default=False,
        ),
    ] = None,
    theory_path: TheoryOption = None,
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable["raise"],
) -> None:
    """Train a single attention layer on a dataset and record the theory's metrics (SPEC 2, 9).

    The run file holds the final W and the metric histories; a summary JSON goes beside it.
    With --checkpoint-every N a checkpoint is written (atomically) every N steps; if the run is
    killed, the same command with --resume added continues it to the same final W.
    """
    from .metrics import svm_norm_for
    from .model import AttentionConfig
    from .training import TrainConfig, train

    if output.suffix != ".npz":
        raise typer.BadParameter(f"{output} must end in .npz", param_hint="--output")
    if no_theory and theory_path is not None:
        raise typer.BadParameter(
            "--theory and --no-theory exclude each other", param_hint="--theory"
        )
    ckpt = checkpoint if checkpoint is not None else output.with_name(output.name + ".ckpt.npz")
    summary_path = summary if summary is not None else output.with_suffix(".json")
    _check_writable(output)
    _check_writable(summary_path, what="summary")
    if checkpoint_every > 0 or resume:
        _check_writable(ckpt, what="checkpoint")
    try:
        config = TrainConfig(
            model=AttentionConfig(
                head=head.value, loss=loss.value, parameterization=parameterization.value
            ),
            optimizer=optimizer.value,
            optimizer_options=_key_values(optimizer_option or [], "--optimizer-option"),
            learning_rate=learning_rate,
            num_steps=steps,
            log_every=log_every,
            init=init.value,
            seed=seed,
            num_trials=trials,
            checkpoint_every=checkpoint_every,
            num_threads=threads,
        )
    except ValueError as exc:
        _fail(str(exc))
    dataset = _load(data, embeddings, on_unrealizable)
    norm = svm_norm_for(config.model, config.step_rule(), svm_norm)
    if no_theory:
        theory = None
    elif theory_path is not None:
        theory = _load_theory_for(theory_path, dataset, norm)
    else:
        theory = _solve_or_warn(dataset, norm)
    uses_checkpoint = checkpoint_every > 0 or resume
    if not resume and checkpoint_every > 0 and ckpt.exists():
        typer.echo(
            f"note: starting over; the existing checkpoint {ckpt} will be replaced "
            "(add --resume to continue it)",
            err=True,
        )
    if resume:
        if ckpt.exists():
            at = _checkpoint_step(ckpt)
            typer.echo(
                f"resuming from {ckpt}" + (f" at step {at}" if at is not None else ""), err=True
            )
        else:
            typer.echo(f"no checkpoint at {ckpt}; starting from step 0", err=True)
    try:
        result = train(
            dataset,
            config,
            theory=theory,
            checkpoint_path=ckpt if uses_checkpoint else None,
            resume=resume,
            progress=_show_progress(no_progress, steps),
        )
    except KeyboardInterrupt:
        if checkpoint_every > 0 and ckpt.exists():
            at = _checkpoint_step(ckpt)
            where = f" (step {at})" if at is not None else ""
            hint = f"the last checkpoint is {ckpt}{where}; run the same command with --resume"
        elif checkpoint_every > 0:
            hint = "no checkpoint was written yet; nothing to resume from"
        else:
            hint = "nothing was saved; --checkpoint-every N makes a run resumable"
        typer.echo(f"interrupted: {hint}", err=True)
        raise typer.Exit(code=130) from None
    written = result.save(output)
    from .report import write_json

    info = result.summary()
    info["data"] = {
        "path": os.fspath(data),
        "n_samples": dataset.n_samples,
        "vocab_size": dataset.vocab_size,
        "embedding_dim": dataset.embedding_dim,
        "dropped_samples": [int(i) for i in dataset.dropped],
    }
    info["theory"] = theory is not None
    info["theory_file"] = None if theory_path is None else os.fspath(theory_path)
    info["run_file"] = os.fspath(written)
    info["options"] = {
        name: (value.value if isinstance(value, enum.Enum) else value)
        for name, value in ctx.params.items()
    }
    write_json(summary_path, info)
    if uses_checkpoint and ckpt.exists():
        ckpt.unlink()  # the run file now holds the result
    kind = f"{config.optimizer}, lr={config.learning_rate:g}, head={head.value}, loss={loss.value}"
    typer.echo(
        f"trained {result.num_trials} trial(s) for {result.num_steps} steps in "
        f"{result.elapsed_s:.3g} s ({kind})"
    )
    _print_table(_final_table(result))
    typer.echo(f"wrote {written}")
    typer.echo(f"wrote {summary_path}")


# --------------------------------------------------------------------------- verify
@app.command("verify")
@_reports_errors
def verify_command(
    data: DataArgument,
    run: Annotated[
        Path,
        typer.Argument(
            metavar="RUN", help="A run written by 'attnmech train -o'.", show_default=False
        ),
    ],
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Also write the report as JSON to this file.", show_default=False
        ),
    ] = None,
    theory_path: TheoryOption = None,
    svm_norm: Annotated[
        str | None,
        typer.Option(
            "--svm-norm",
            help="Measure against this norm's Graph-SVM, or 'auto' (the run's optimiser's own "
            "geometry); as for train.",
            show_default=False,
        ),
    ] = None,
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable["raise"],
) -> None:
    """Compare a trained W with the theory's prediction: W_svm, W_fin, the automaton (SPEC 6-7).

    Give the dataset the run was trained on, with the same --embeddings and --on-unrealizable.
    """
    from .metrics import METRICS, svm_norm_for
    from .training import load_run
    from .verification import verify

    if json_path is not None:
        _check_writable(json_path, what="JSON report")
    dataset = _load(data, embeddings, on_unrealizable)
    result = load_run(run)
    norm = svm_norm_for(result.config.model, result.config.step_rule(), svm_norm)
    theory = None
    if theory_path is not None:
        theory = _load_theory_for(theory_path, dataset, norm)
    elif svm_norm is not None:
        theory = _solve_or_warn(dataset, norm)
    report = verify(dataset, result, theory)
    info = report.to_dict()
    typer.echo(f"{report.num_trials} trial(s), head={info['head']}, loss={info['loss']}")
    _print_table(_stats_table(info["metrics"], METRICS, single=False))
    if json_path is not None:
        from .report import write_json

        write_json(json_path, report.to_dict())
        typer.echo(f"wrote {json_path}")


def _check_writable(path: Path, *, what: str = "output") -> Path:
    """:func:`attnmech._io.check_writable`, imported when a command runs (keeps --help fast)."""
    from ._io import check_writable as check

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


# --------------------------------------------------------------------------- demo
@app.command("demo")
@_reports_errors
def demo_command(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the figures, summary.json and REPORT.md.")
    ] = Path("attnmech-demo"),
    trials: Annotated[int, typer.Option("--trials", min=1, help="Datasets, one trial each.")] = 10,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Normalised-GD steps.")] = 4000,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress bar while training.")
    ] = False,
) -> None:
    """Run the paper's cyclic experiment end to end (n=6, T=4, K=6, d=8, 10 trials, 4000 steps):
    graphs, theory, training, verification, figures and a Markdown report."""
    from .demo import run_demo

    _check_folder(out)
    typer.echo(
        f"the cyclic experiment of Li et al. (2024): n=6, T=4, K=6, d=8, {trials} "
        f"trial{'s' if trials != 1 else ''}, normalised GD lr 0.01, {steps} steps"
    )
    result = run_demo(out, trials=trials, steps=steps, progress=_show_progress(no_progress, steps))
    typer.echo(result.table())
    typer.echo(
        f"wrote {len(result.files)} files to {result.out_dir}: "
        + ", ".join(p.name for p in result.files)
    )
    typer.echo(f"report: {result.out_dir / 'REPORT.md'}")
    typer.echo(f"wall time: {result.elapsed_s:.2f} s")


# --------------------------------------------------------------------------- reproduce
@app.command("reproduce")
@_reports_errors
def reproduce_command(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for figures, results.json and REPRODUCTION.md."),
    ],
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this setting (repeatable); see `attnmech experiments`.",
            show_default=False,
        ),
    ] = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials per setting.")] = 10,
    steps_scale: Annotated[
        float,
        typer.Option(
            "--steps-scale",
            min=1e-6,
            help="Multiply every setting's steps (quick checks; compare at 1.0).",
        ),
    ] = 1.0,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Data source, a key of attnmech.experiments.sources.DATA_SOURCES (checked "
            "there): 'generated' (make_dataset) or 'authors' (the authors' own datasets and "
            "inits, compared per trial with their notebooks). Default: each setting's own.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run every experiment of the paper (SPEC section 9) and write figures, results.json and
    REPRODUCTION.md with the paper's values next to ours."""
    from .experiments import run_reproduction

    _check_folder(out)
    result = run_reproduction(
        out,
        only=only,
        trials=trials,
        steps_scale=steps_scale,
        data=data,
        progress=lambda message: typer.echo(message, err=True),
    )
    typer.echo(
        f"{len(result.settings)} settings, {result.trials} trials each, {result.wall_time_s:.1f} s"
    )
    typer.echo(f"results: {result.results_path}")
    typer.echo(f"report: {result.report_path} ({len(result.figures)} figures)")


@app.command("experiments")
def experiments_command() -> None:
    """List the settings `reproduce --only` accepts."""
    from .experiments import EXPERIMENTS

    for name, spec in EXPERIMENTS.items():
        typer.echo(f"{name}: {spec.title}")


# --------------------------------------------------------------------------- sweeps (issue 12)
class SweepBackend(str, enum.Enum):
    local = "local"
    ray = "ray"


@app.command("sweep")
@_reports_errors
def sweep_command(
    spec_file: Annotated[Path, typer.Argument(help="Sweep file (TOML): axes, trials, metrics.")],
    out: Annotated[Path, typer.Option("--out", help="Results folder (new, or --resume).")],
    backend: Annotated[
        SweepBackend, typer.Option("--backend", help="local process pool or Ray tasks.")
    ] = SweepBackend.local,
    address: Annotated[
        str | None, typer.Option("--address", help="Address of an existing Ray cluster.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes / Ray CPUs (default: cores).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a sweep in --out; skip stored cells.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="Torch device for training (cpu, cuda).")
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Run a grid of datasets x training options (one row per cell x trial in --out)."""
    from .sweeps import load_sweep_spec, run_sweep

    spec = load_sweep_spec(spec_file)
    result = run_sweep(
        spec,
        out,
        backend=backend.value,
        workers=workers,
        address=address,
        resume=resume,
        device=device,
        progress=not no_progress and sys.stderr.isatty(),
    )
    typer.echo(
        f"{result.cells} cells, {result.tasks} tasks ({result.tasks_skipped} already done), "
        f"{result.rows} rows written, {result.wall_time_s:.1f} s on {result.workers} "
        f"{result.backend} worker(s)"
    )
    typer.echo(f"results: {result.results_path}")


@app.command("plot-sweep")
@_reports_errors
def plot_sweep_command(
    sweep_dir: Annotated[Path, typer.Argument(help="A sweep's results folder.")],
    x: Annotated[str, typer.Option("--x", help="Parameter on the x axis (or a ratio: K/d).")],
    metric: Annotated[str, typer.Option("--metric", help="Metric to show (corr_svm, ...).")],
    y: Annotated[
        str | None, typer.Option("--y", help="Parameter on the y axis (heatmap); omit: line.")
    ] = None,
    at_step: Annotated[
        int | None, typer.Option("--at-step", help="The metric at this step (sweep.at_steps).")
    ] = None,
    grid: Annotated[str | None, typer.Option("--grid", help="Grid of a multi-grid sweep.")] = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Keep rows with PARAM=VALUE (repeatable).")
    ] = None,
    stat: Annotated[str, typer.Option("--stat", help="mean, median, min or max.")] = "mean",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Path without suffix (PNG, PDF, CSV).")
    ] = None,
) -> None:
    """Phase diagram of a sweep: heatmap over --x and --y, or a line over --x."""
    from .errors import InvalidParameterError
    from .sweeps.plots import plot_sweep, save_sweep_plot

    pairs: dict[str, str] = {}
    for item in where or []:
        if "=" not in item:
            raise InvalidParameterError(f"--where {item!r}: write PARAM=VALUE, e.g. optimizer=ngd")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value.strip()
    plot = plot_sweep(
        sweep_dir, x=x, y=y, metric=metric, at_step=at_step, grid=grid, where=pairs, stat=stat
    )
    if output is None:
        parts = [grid, plot.column.replace("@", "-at-"), x.replace("/", "-over-"), y]
        output = sweep_dir / "plots" / "_".join(p for p in parts if p)
    for path in save_sweep_plot(plot, output):
        typer.echo(f"wrote {path}")


# --------------------------------------------------------------------------- bias-table
@app.command("bias-table")
@_reports_errors
def bias_table_command(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for TABLE.md, results.json and the figures."),
    ],
    settings: Annotated[
        str,
        typer.Option(
            "--settings", help="Comma-separated experiment names (see `attnmech experiments`)."
        ),
    ] = "acyclic-4-6-8-8,cyclic-6-4-6-8",
    trials: Annotated[int, typer.Option("--trials", min=1, help="Datasets per setting.")] = 10,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps", min=10, help="Steps for every optimiser (default: each one's own budget)."
        ),
    ] = None,
    optimizers: Annotated[
        str | None,
        typer.Option(
            "--optimizers",
            help="Comma-separated row labels (default: all; e.g. 'gd,sign,spectral').",
            show_default=False,
        ),
    ] = None,
    no_figures: Annotated[bool, typer.Option("--no-figures", help="Skip the PNG figures.")] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Reuse the finished runs saved in --out/runs/."),
    ] = False,
) -> None:
    """Which optimiser finds which max-margin direction: train every optimiser on the settings and
    compare the final W with the Graph-SVM of every norm (fro, nuclear, spectral, l1, linf, lp:3);
    write a heatmap, rate figures, results.json and TABLE.md."""
    from .bias import bias_table

    table = bias_table(
        out,
        settings=[s.strip() for s in settings.split(",") if s.strip()],
        trials=trials,
        steps=steps,
        optimizers=None
        if optimizers is None
        else [o.strip() for o in optimizers.split(",") if o.strip()],
        figures=not no_figures,
        progress=lambda message: typer.echo(message, err=True),
        resume=resume,
    )
    held = sum(v["holds"] for v in table.verdicts())
    typer.echo(
        f"{len(table.runs)} runs ({len(table.settings)} settings x "
        f"{len(table.runs) // len(table.settings)} optimisers, {table.trials} trials): own "
        f"geometry's column best in {held} of {len(table.runs)}; wall {table.wall_s:.1f} s, "
        f"CPU {table.cpu_s:.1f} s"
    )
    typer.echo(f"table: {table.files['table']}")
    typer.echo(f"results: {table.files['results']}")


# --------------------------------------------------------------------------- text (issue 9)
@app.command("text")
@_reports_errors
def text_command(
    corpus: Annotated[Path, typer.Argument(help="A .txt file or a folder of .txt files.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for results.json, REPORT.md and figures.")
    ],
    vocab_size: Annotated[
        int, typer.Option("--K", min=3, help="Vocabulary size (the K-1 most frequent + <unk>).")
    ] = 1000,
    seq_len: Annotated[int, typer.Option("--T", min=2, help="Window length.")] = 16,
    level: Annotated[str, typer.Option("--level", help="word | char")] = "word",
    embeddings: Annotated[
        str, typer.Option("--embeddings", help="onehot | random:d=D (e.g. random:d=256)")
    ] = "onehot",
    holdout: Annotated[
        float, typer.Option("--holdout", help="Held-out fraction (the end of the text).")
    ] = 0.1,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps (NGD).")] = 2000,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 0.1,
    unk: Annotated[
        str,
        typer.Option(
            "--unk",
            help="drop-labels: windows labelled <unk> are left out of training and evaluation; "
            "keep: kept.",
        ),
    ] = "drop-labels",
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride", min=1, help="Step between windows (default: T).", show_default=False
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed (initialisation, figures).")] = 0,
) -> None:
    """Train on the first part of a text and predict its held-out end: the trained layer, the
    automaton and baselines (writes results.json and REPORT.md)."""
    from .language import TextRunConfig, run_text

    config = TextRunConfig(
        vocab_size=vocab_size,
        seq_len=seq_len,
        level=level,
        embeddings=embeddings,
        holdout=holdout,
        stride=stride,
        num_steps=steps,
        learning_rate=lr,
        unk=unk,
        seed=seed,
    )
    result = run_text(corpus, config, out_dir=out, progress=True)
    r = result.results
    acc = r["heldout"]["accuracy"]
    typer.echo(
        f"n_train {r['n_train']}, n_test {r['n_test']}, realizable {r['realizable_fraction']:.3f}"
    )
    typer.echo(
        "held-out accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items() if v is not None)
    )
    tv = r["heldout"]["tv_layer_automaton"]
    if tv is not None:
        typer.echo(f"TV(layer, automaton) {tv:.3f}")
    typer.echo(f"wall {r['wall_seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
    typer.echo(f"report: {out / 'REPORT.md'}")


def main() -> None:
    """Entry point of the ``attnmech`` console script and of ``python -m attnmech``."""
    app(prog_name="attnmech")
