"""The ``attnmech`` command-line interface.

This is the only module that prints or exits. Each command parses its options, hands the work to
a library function and prints a short account of the result. Every error the library raises on
purpose (:class:`~attnmech.errors.AttnmechError`) and every file-system error becomes one line,
``error: ...``, on stderr and exit status 1; option errors are reported by the parser with exit
status 2. Warnings (for example an inaccurate solve) are printed as ``warning: ...``.

Commands: ``make-dataset``, ``graphs``, ``solve``, ``train``, ``verify``, ``demo``. Heavy imports
(torch, the solvers, matplotlib) happen inside the command that needs them, so that
``attnmech --help`` stays fast.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import sys
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
from .errors import AttnmechError, InvalidDatasetError, UnrealizableLabelError
from .graphs import build_priority_graphs
from .text import text_dataset

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
            except UnrealizableLabelError as exc:
                _fail(f"{exc} (on the command line: --on-unrealizable drop or repair)")
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


class Parameterization(str, enum.Enum):
    combined = "combined"
    factorized = "factorized"


class SvmNorm(str, enum.Enum):
    fro = "fro"
    nuclear = "nuclear"


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
        str, typer.Option("--level", help="With --text: 'word' or 'char' tokens.")
    ] = "word",
    stride: Annotated[
        int | None,
        typer.Option(
            "--stride", help="With --text: step between windows (default T).", show_default=False
        ),
    ] = None,
) -> None:
    """Draw a dataset as in the paper's experiments (SPEC section 9), or cut one from text."""
    if text is not None:
        if not text.is_file():
            raise InvalidDatasetError(f"text file {text} does not exist")
        cut = text_dataset(
            text,
            vocab_size=vocab_size,
            seq_len=seq_len,
            embedding_dim=embedding_dim,
            level=level,
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
        typer.Option(
            "--output",
            "-o",
            help="Save the solution (W_svm, W_fin, ...) to this .npz.",
            show_default=False,
        ),
    ] = None,
    svm_norm: Annotated[
        SvmNorm,
        typer.Option(
            "--svm-norm",
            help="fro: the paper's Graph-SVM; nuclear: min ||W||_*, the "
            "direction expected for factorized W = K Q^T (needs cvxpy).",
            case_sensitive=False,
        ),
    ] = SvmNorm.fro,
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable.raise_,
) -> None:
    """Solve the Graph-SVM (W_svm) and the finite part (W_fin) of a dataset (SPEC 4-5)."""
    dataset = _load(data, embeddings, on_unrealizable)
    from .theory import solve

    start = time.perf_counter()
    theory = solve(dataset, svm_norm=svm_norm.value)
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


# --------------------------------------------------------------------------- train
class Optimizer(str, enum.Enum):
    gd = "gd"
    ngd = "ngd"
    adam = "adam"


class HeadKind(str, enum.Enum):
    iden = "iden"
    gen = "gen"


class LossKind(str, enum.Enum):
    log = "log"
    ce = "ce"
    squared = "squared"
    correlation = "correlation"


class InitKind(str, enum.Enum):
    uniform = "uniform"
    zero = "zero"


PROGRESS_MIN_STEPS = 1000  # runs at least this long show a progress bar (on a terminal)


def _show_progress(no_progress: bool, num_steps: int) -> bool:
    """Progress bars go to stderr, and only to a terminal: a log file gets no bar."""
    if no_progress or num_steps < PROGRESS_MIN_STEPS:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was written at (for the message only), or None if unreadable."""
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


def _final_table(result: Any) -> str:
    """Each recorded metric at the last step: mean, std, min, max over trials, and its meaning."""
    from .metrics import METRICS
    from .report import text_table

    meanings = {**METRICS, "grad_norm": "||grad L||_F"}
    final = result.summary()["final"]
    if result.num_trials == 1:
        rows = [[name, s["mean"], meanings.get(name, "")] for name, s in final.items()]
        return text_table(rows, ["metric", "value", "meaning"], float_format="{:.6g}")
    rows = [
        [name, s["mean"], s["std"], s["min"], s["max"], meanings.get(name, "")]
        for name, s in final.items()
    ]
    return text_table(
        rows, ["metric", "mean", "std", "min", "max", "meaning"], float_format="{:.6g}"
    )


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
            help="Gradient descent, normalised GD (the paper's) or Adam.",
            case_sensitive=False,
        ),
    ] = Optimizer.ngd,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the initialisation.")] = 0,
    head: Annotated[
        HeadKind,
        typer.Option(
            "--head",
            help="iden: p = attention mass per token (the theory's); gen: softmax(E X^T s).",
            case_sensitive=False,
        ),
    ] = HeadKind.iden,
    loss: Annotated[
        LossKind,
        typer.Option(
            "--loss",
            help="-log p_y (log and ce are the same), (1 - p_y)^2 or -p_y.",
            case_sensitive=False,
        ),
    ] = LossKind.log,
    parameterization: Annotated[
        Parameterization,
        typer.Option(
            "--parameterization",
            help="combined: train W; factorized: W = K Q^T with "
            "both trained (measured against the nuclear-norm Graph-SVM).",
            case_sensitive=False,
        ),
    ] = Parameterization.combined,
    init: Annotated[
        InitKind,
        typer.Option(
            "--init",
            help="uniform: U(-1/sqrt(d), 1/sqrt(d)) entries; zero: W = 0.",
            case_sensitive=False,
        ),
    ] = InitKind.uniform,
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
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable.raise_,
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
    try:
        config = TrainConfig(
            model=AttentionConfig(
                head=head.value, loss=loss.value, parameterization=parameterization.value
            ),
            optimizer=optimizer.value,
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
    theory = None if no_theory else _solve_or_warn(dataset, svm_norm_for(config.model))
    ckpt = checkpoint if checkpoint is not None else output.with_name(output.name + ".ckpt.npz")
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
    summary_path = summary if summary is not None else output.with_suffix(".json")
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
    typer.echo(_final_table(result))
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
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable.raise_,
) -> None:
    """Compare a trained W with the theory's prediction: W_svm, W_fin, the automaton (SPEC 6-7).

    Give the dataset the run was trained on, with the same --embeddings and --on-unrealizable.
    """
    from .training import load_run
    from .verification import verify

    dataset = _load(data, embeddings, on_unrealizable)
    result = load_run(run)
    report = verify(dataset, result)
    typer.echo(report.to_table())
    if json_path is not None:
        from .report import write_json

        write_json(json_path, report.to_dict())
        typer.echo(f"wrote {json_path}")


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


def main() -> None:
    """Entry point of the ``attnmech`` console script and of ``python -m attnmech``."""
    app(prog_name="attnmech")
