"""The ``attnmech`` command-line interface.

This is the only module that prints or exits. Each command parses its options, hands the work to
a library function and prints a short account of the result. Every error the library raises on
purpose (:class:`~attnmech.errors.AttnmechError`) and every file-system error becomes one line,
``error: ...``, on stderr and exit status 1; option errors are reported by the parser with exit
status 2. Warnings (for example an inaccurate solve) are printed as ``warning: ...``.

Commands: ``make-dataset``, ``graphs``, ``solve``. Heavy imports (the solvers, matplotlib) happen
inside the command that needs them, so that ``attnmech --help`` stays fast.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer

from . import __version__
from ._io import atomic_write_text
from .data import Dataset, load_dataset, make_dataset
from .errors import AttnmechError
from .graphs import build_priority_graphs

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
class OnUnrealizable(str, enum.Enum):
    """What to do with samples whose label is not in their sequence."""

    raise_ = "raise"
    drop = "drop"
    repair = "repair"


class EmbeddingKind(str, enum.Enum):
    random = "random"
    ortho = "ortho"
    equicorr = "equicorr"


class GraphKind(str, enum.Enum):
    cyclic = "cyclic"
    acyclic = "acyclic"
    any = "any"


class EdgeMode(str, enum.Enum):
    condensation = "condensation"
    all = "all"


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


def _load(path: Path, embeddings: str | None, on_unrealizable: OnUnrealizable) -> Dataset:
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
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# --------------------------------------------------------------------------- make-dataset
@app.command("make-dataset")
@_reports_errors
def make_dataset_command(
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="File to write: .npz, or .jsonl (+ embeddings .npy).",
                     show_default=False),
    ],
    n_samples: Annotated[int, typer.Option("--n", help="Number of samples n.")] = 6,
    seq_len: Annotated[int, typer.Option("--T", help="Sequence length T.")] = 4,
    vocab_size: Annotated[int, typer.Option("--K", help="Vocabulary size K.")] = 6,
    embedding_dim: Annotated[int, typer.Option("--d", help="Embedding dimension d.")] = 8,
    embeddings: Annotated[
        EmbeddingKind, typer.Option("--embeddings", help="Embedding generator.")
    ] = EmbeddingKind.random,
    graph: Annotated[
        GraphKind,
        typer.Option("--graph", help="Redraw until the token-priority graphs are cyclic/acyclic."),
    ] = GraphKind.any,
    rho: Annotated[float, typer.Option("--rho", help="Pairwise correlation for equicorr.")] = 0.5,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    embeddings_path: Annotated[
        Path | None,
        typer.Option(
            "--embeddings-out",
            help="For .jsonl output: the embeddings file (default: <stem>.embeddings.npy).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Draw a dataset as in the paper's experiments (SPEC section 9) and save it."""
    dataset = make_dataset(
        n_samples, seq_len, vocab_size, embedding_dim,
        embeddings=embeddings.value, graph=graph.value, seed=seed, rho=rho,
    )
    written = dataset.save(output, embeddings_path=embeddings_path and str(embeddings_path))
    typer.echo(f"wrote {written}")
    if written.suffix == ".jsonl":
        sibling = embeddings_path or written.with_name(written.stem + ".embeddings.npy")
        typer.echo(f"wrote {sibling} (embeddings)")
    typer.echo(repr(dataset))
    typer.echo(_graph_line(dataset))


def _graph_line(dataset: Dataset) -> str:
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
        typer.Option("--query", "-q", help="Last token to show (repeat for several; default all).",
                     show_default=False),
    ] = None,
    dot: Annotated[
        Path | None,
        typer.Option("--dot", help="Write Graphviz DOT (one cluster per SCC) to this file.",
                     show_default=False),
    ] = None,
    draw: Annotated[
        Path | None,
        typer.Option("--draw", help="Draw the graphs (one box per SCC) to a .png, .pdf or .svg.",
                     show_default=False),
    ] = None,
    edges: Annotated[
        EdgeMode,
        typer.Option("--edges", help="In drawings: edges between SCCs only, or every edge."),
    ] = EdgeMode.condensation,
    max_queries: Annotated[
        int, typer.Option("--max-queries", help="Without --query: show at most this many.")
    ] = 50,
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable.raise_,
) -> None:
    """Print each last token's SCCs in priority order (SPEC section 3)."""
    if draw is not None and draw.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise typer.BadParameter(f"{draw} must end in .png, .pdf or .svg", param_hint="--draw")
    dataset = _load(data, embeddings, on_unrealizable)
    graphs = build_priority_graphs(dataset)
    queries = None if not query else query
    shown = max_queries if queries is None else len(queries)
    typer.echo(graphs.summary(queries, max_queries=shown))
    if dot is not None:
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
        typer.Option("--output", "-o", help="Save the solution (W_svm, W_fin, ...) to this .npz.",
                     show_default=False),
    ] = None,
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable.raise_,
) -> None:
    """Solve the Graph-SVM (W_svm) and the finite part (W_fin) of a dataset (SPEC 4-5)."""
    dataset = _load(data, embeddings, on_unrealizable)
    from .theory import solve

    start = time.perf_counter()
    theory = solve(dataset)
    elapsed = time.perf_counter() - start
    typer.echo(theory.summary())
    typer.echo(_margin_line(theory.svm))
    typer.echo(f"total time: {elapsed:.3g} s")
    if output is not None:
        theory.save(output)
        typer.echo(f"wrote {output}")


def _margin_line(svm: Any) -> str:
    """The smallest margin ``(e_i - e_j)^T W_svm e_k`` over the strict edges (1 at the optimum)."""
    strict = np.asarray(svm.edge_strict, dtype=bool)
    if not strict.any():
        return "min strict margin: n/a (no strict priority, W_svm = 0)"
    margins = np.asarray(svm.edge_margins, dtype=np.float64)[strict]
    return f"min strict margin: {margins.min():.6g} over {int(strict.sum())} strict edges"


# Further commands (train, verify, demo, reproduce) register on ``app`` the same way: a thin
# function decorated with ``@app.command(...)`` and ``@_reports_errors`` that calls the library.


def main() -> None:
    """Entry point of the ``attnmech`` console script and of ``python -m attnmech``."""
    app(prog_name="attnmech")
