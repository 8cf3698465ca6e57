"""Commands on datasets and the core: ``make-dataset``, ``graphs``, ``solve``, ``train``,
``verify``."""

from __future__ import annotations

import enum
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from .._choices import (
    SVM_NORMS,
)

if TYPE_CHECKING:
    from rich.table import Table

    from ..data.dataset import Dataset


from ._app import (  # noqa: F401
    PROGRESS_MIN_STEPS,
    DataArgument,
    EdgeMode,
    EmbeddingKind,
    EmbeddingsOption,
    F,
    GraphKind,
    HeadKind,
    InitKind,
    LossKind,
    OnUnrealizable,
    Optimizer,
    Parameterization,
    TextLevel,
    TheoryOption,
    UnrealizableOption,
    _check_folder,
    _check_writable,
    _checkpoint_step,
    _choice_enum,
    _fail,
    _final_table,
    _key_values,
    _load,
    _load_theory_for,
    _main_options,
    _one_line,
    _plain_box,
    _print_table,
    _reports_errors,
    _show_progress,
    _solve_or_warn,
    _stats_table,
    _table,
    _version,
    app,
    main,
)


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
            help="Cut the dataset from this plain-text file instead, or from a corpus shipped "
            "with attnmech by name (sonnets). Windows of T tokens, the K-1 most frequent words "
            "plus <unk>; windows whose next token is absent are dropped; --n caps the number of "
            "samples when given.",
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
    """Draw a dataset as in the paper's experiments (docs/theory.md#the-papers-experiments), or cut
    one from text."""
    from ..data.generators import make_dataset
    from ..data.text import corpus_path, text_dataset
    from ..errors import FileFormatError

    from ..errors import InvalidParameterError

    if output.suffix not in (".npz", ".jsonl"):  # before the vocabulary or anything is written
        raise InvalidParameterError(f"cannot write {output}: use a .npz or .jsonl file")
    if embeddings_path is not None and embeddings_path.suffix != ".npy":
        # what --embeddings reads back is a .npy table: another suffix would be unreadable
        raise InvalidParameterError(
            f"--embeddings-out {embeddings_path} must end in .npy (what --embeddings reads back)"
        )
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
        text = corpus_path(text)
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
        from ..studies.report import write_json

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
    from ..theory.graphs import build_priority_graphs

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
        int,
        typer.Option("--max-queries", min=0, help="Without --query: show at most this many."),
    ] = 50,
    top_sccs: Annotated[
        int | None,
        typer.Option(
            "--top-sccs",
            min=0,
            help="Print the SCC size histogram and this many of the largest SCCs [default: 10, "
            "when there are more last tokens than --max-queries].",
            show_default=False,
        ),
    ] = None,
    embeddings: EmbeddingsOption = None,
    on_unrealizable: UnrealizableOption = OnUnrealizable["raise"],
) -> None:
    """Print each last token's SCCs in priority order (docs/theory.md#token-priority-graphs).

    Bounded at any vocabulary size: counts, an SCC size histogram and the largest SCCs (when the
    listing is cut, or with --top-sccs), at most --max-queries lines of at most 40 SCCs each;
    drawings show the top SCCs of each panel and say what was left out.
    """
    if draw is not None and draw.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise typer.BadParameter(f"{draw} must end in .png, .pdf or .svg", param_hint="--draw")
    from ..theory.graphs import build_priority_graphs

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
        from .._io import atomic_write_text

        atomic_write_text(dot, graphs.to_dot(queries))
        typer.echo(f"wrote {dot}")
    if draw is not None:
        from ..studies.report import plot_priority_graphs, save_figure

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
            "factorized W = K Q^T; the others are extensions (docs/theory.md#other-norms).",
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
    """Solve the Graph-SVM (W_svm) and the finite part (W_fin) of a dataset
    (docs/theory.md#graph-svm and #the-finite-part)."""
    from ..theory.solve import solve

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
    from ..theory.norms import norm_of

    if hasattr(s, "scores") and theory.svm_norm == "fro":
        svm_norm = float(s.norm)  # from the sparse score table: a K x K W_svm is never built
    else:
        svm_norm = float(norm_of(np.asarray(s.W_svm), theory.svm_norm))
    rows: list[list[Any]] = [
        ["W_svm status", s.status.value, f"Graph-SVM, {theory.svm_norm} norm"],
        [
            f"{theory.svm_norm} norm of W_svm",
            f"{svm_norm:.6g}",
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
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule",
            help="Learning-rate schedule: constant, inverse-power:a=A,t0=T0 (lr (t + t0)^-a), "
            "cosine[:T=..,floor=..] or step:every=..,gamma=.. (attnmech.layer.schedules).",
        ),
    ] = "constant",
    optimizer: Annotated[
        Optimizer,
        typer.Option(
            "--optimizer",
            help="A step rule of attnmech.layer.optim.OPTIMIZERS (ngd, normalised GD, is the paper's).",
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
    """Train a single attention layer on a dataset and record the theory's metrics
    (docs/theory.md#model-and-loss and #the-papers-experiments).

    The run file holds the final W and the metric histories; a summary JSON goes beside it.
    With --checkpoint-every N a checkpoint is written (atomically) every N steps; if the run is
    killed, the same command with --resume added continues it to the same final W.
    """
    from ..layer.metrics import svm_norm_for
    from ..layer.model import AttentionConfig
    from ..layer.training import TrainConfig, train

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
            steps=steps,
            log_every=log_every,
            init=init.value,
            seed=seed,
            trials=trials,
            checkpoint_every=checkpoint_every,
            num_threads=threads,
            schedule=schedule,
        )
    except ValueError as exc:
        _fail(str(exc))
    dataset = _load(data, embeddings, on_unrealizable)
    from ..layer.resources import check_train_memory

    check_train_memory([dataset], config)  # before the theory is solved, not after
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
    from ..studies.report import write_json

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
    """Compare a trained W with the theory's prediction: W_svm, W_fin, the automaton
    (docs/theory.md#the-theorem and #the-automaton).

    Give the dataset the run was trained on, with the same --embeddings and --on-unrealizable.
    """
    from ..layer.metrics import METRICS, svm_norm_for
    from ..layer.training import load_run
    from ..layer.verification import verify

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
        from ..studies.report import write_json

        write_json(json_path, report.to_dict())
        typer.echo(f"wrote {json_path}")
