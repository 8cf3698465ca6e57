"""Commands that run a study: ``demo``, ``reproduce``, ``experiments``, ``bias-table``, ``text``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass


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


# --------------------------------------------------------------------------- demo
@app.command("demo")
@_reports_errors
def demo_command(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the figures, results.json and REPORT.md.")
    ] = Path("attnmech-demo"),
    trials: Annotated[int, typer.Option("--trials", min=1, help="Datasets, one trial each.")] = 10,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Normalised-GD steps.")] = 4000,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress bar while training.")
    ] = False,
) -> None:
    """Run the paper's cyclic experiment end to end (n=6, T=4, K=6, d=8, 10 trials, 4000 steps):
    graphs, theory, training, verification, figures, results.json and a Markdown report."""
    from ..studies.demo import DemoConfig, run

    _check_folder(out)
    config = DemoConfig(trials=trials, steps=steps)
    typer.echo(
        f"the cyclic experiment of Li et al. (2024): n=6, T=4, K=6, d=8, {trials} "
        f"trial{'s' if trials != 1 else ''}, normalised GD lr 0.01, {steps} steps"
    )
    result = run(config, out_dir=out, progress=_show_progress(no_progress, steps))
    typer.echo(result.table())
    typer.echo(
        f"wrote {len(result.files)} files to {result.out_dir}: "
        + ", ".join(p.name for p in result.files)
    )
    typer.echo(f"report: {out / 'REPORT.md'}")
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
            help="Data source, a key of attnmech.studies.reproduction.sources.DATA_SOURCES (checked "
            "there): 'generated' (make_dataset) or 'authors' (the authors' own datasets and "
            "inits, compared per trial with their notebooks). Default: each setting's own.",
            show_default=False,
        ),
    ] = None,
    ngd_eps: Annotated[
        float | None,
        typer.Option(
            "--ngd-eps",
            min=0.0,
            help="The eps of normalised GD, g / (||g|| + eps). Default: the data source's "
            "(authors: their float64 machine eps; generated: off). 0 turns it off.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run every experiment of the paper (docs/theory.md#the-papers-experiments) and write figures,
    results.json and REPRODUCTION.md with the paper's values next to ours."""
    from ..studies.reproduction import ReproductionConfig, run

    _check_folder(out)
    config = ReproductionConfig(
        only=tuple(only) if only else None,
        trials=trials,
        steps_scale=steps_scale,
        data=data,
        ngd_eps=ngd_eps,
    )
    result = run(config, out_dir=out, progress=lambda message: typer.echo(message, err=True))
    typer.echo(
        f"{len(result.settings)} settings, {result.trials} trials each, {result.wall_time_s:.1f} s"
    )
    typer.echo(f"results: {result.results_path}")
    typer.echo(f"report: {result.report_path} ({len(result.figures)} figures)")


@app.command("experiments")
def experiments_command() -> None:
    """List the settings `reproduce --only` accepts."""
    from ..studies.reproduction import EXPERIMENTS

    for name, spec in EXPERIMENTS.items():
        typer.echo(f"{name}: {spec.title}")


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
    from ..studies.bias import bias_table

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


# --------------------------------------------------------------------------- text
@app.command("text")
@_reports_errors
def text_command(
    corpus: Annotated[
        Path,
        typer.Argument(
            help="A .txt file, a folder of .txt files, or the name of a corpus shipped with "
            "attnmech (sonnets)."
        ),
    ],
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
    from ..data.text import corpus_path
    from ..studies.text import TextRunConfig, run_text

    corpus = corpus_path(corpus)

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
