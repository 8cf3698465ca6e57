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
    force: Annotated[
        bool, typer.Option("--force", help="Replace the report of an earlier demo in --out.")
    ] = False,
) -> None:
    """Run the paper's cyclic experiment end to end (n=6, T=4, K=6, d=8, 10 trials, 4000 steps):
    graphs, theory, training, verification, figures, results.json and a Markdown report."""
    from ..errors import InvalidParameterError
    from ..studies.demo import DemoConfig, run

    _check_folder(out)
    if (out / "REPORT.md").exists() and not force:
        raise InvalidParameterError(
            f"{out} already holds a REPORT.md; add --force to replace it, or choose another --out"
        )
    from ..layer.training import MAX_STEPS, MAX_TRIALS

    if trials > MAX_TRIALS or steps > MAX_STEPS:  # before any dataset is drawn
        raise InvalidParameterError(
            f"demo: --trials must be at most {MAX_TRIALS:,} and --steps at most {MAX_STEPS:,}, "
            f"got {trials:,} and {steps:,}"
        )
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
    search: Annotated[
        bool,
        typer.Option(
            "--search",
            help="Pick each row's learning rate (and decay exponent) by a grid search on "
            "held-out datasets before training it.",
        ),
    ] = False,
    search_trials: Annotated[
        int, typer.Option("--search-trials", min=1, help="Held-out datasets per search.")
    ] = 3,
    search_steps: Annotated[
        int | None,
        typer.Option(
            "--search-steps", min=1, help="Steps of each search run (default: the row's steps)."
        ),
    ] = None,
    search_on: Annotated[
        str | None,
        typer.Option(
            "--search-on",
            help="Search on this setting's held-out data once, for every setting (default: "
            "each setting on its own).",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Reuse the finished runs saved in --out/runs/."),
    ] = False,
) -> None:
    """Which optimiser finds which max-margin direction: train every optimiser on the settings and
    compare the final W with the Graph-SVM of every norm (fro, nuclear, spectral, l1, linf, lp:3);
    write a heatmap, rate figures, results.json and TABLE.md."""
    from ..studies.bias import BiasConfig, run

    config = BiasConfig(
        settings=settings,  # type: ignore[arg-type]
        trials=trials,
        steps=steps,
        optimizers=optimizers,  # type: ignore[arg-type]
        figures=not no_figures,
        search=search,
        search_trials=search_trials,
        search_steps=search_steps,
        search_on=search_on,
    )
    table = run(  # run holds the folder's lock: a second writer is refused
        config,
        out_dir=out,
        progress=lambda message: typer.echo(message, err=True),
        resume=resume,
    )
    verdicts = table.verdicts()
    held = sum(v["holds"] for v in verdicts)
    theorem = [v for v in verdicts if v["label"] == "theorem"]
    typer.echo(
        f"{len(table.runs)} runs ({len(table.settings)} settings x "
        f"{len(table.runs) // len(table.settings)} optimisers, {table.trials} trials): own "
        f"geometry's column best in {held} of {len(table.runs)} (theorem rows: "
        f"{sum(v['holds'] for v in theorem)} of {len(theorem)}); wall {table.wall_s:.1f} s, "
        f"CPU {table.cpu_s:.1f} s"
    )
    typer.echo(f"table: {table.files['table']}")
    typer.echo(f"results: {table.files['results']}")


# --------------------------------------------------------------------------- text
@app.command("text")
@_reports_errors
def text_command(
    corpus: Annotated[
        Path | None,
        typer.Argument(
            help="A .txt file, a folder of text files, or the name of a corpus shipped with "
            "attnmech (sonnets); not with --evaluate."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for results.json, REPORT.md, figures, the trained layer (layer.npz), "
            "the theory (theory.npz) and the held-out windows (windows.npz).",
        ),
    ] = None,
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
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps.")] = 2000,
    lr: Annotated[
        float, typer.Option("--lr", help="Learning rate (split-ngd: the step orthogonal to S_fin).")
    ] = 1.0,
    optimizer: Annotated[
        str,
        typer.Option(
            "--optimizer",
            help="Training rule (a key of optim.OPTIMIZERS). split-ngd reaches the automaton in "
            "a few thousand steps; ngd (lr 0.1) was the default before.",
        ),
    ] = "split-ngd",
    init: Annotated[
        str,
        typer.Option(
            "--init",
            help="uniform | zero: the initial W. One-hot entries of (token, query) pairs never "
            "seen in training keep it; zero makes them score 0, as the automaton does.",
        ),
    ] = "uniform",
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
    glob: Annotated[
        str, typer.Option("--glob", help="Files of a corpus folder that are read.")
    ] = "*.txt",
    seed: Annotated[int, typer.Option("--seed", help="Seed (initialisation, figures).")] = 0,
    evaluate: Annotated[
        Path | None,
        typer.Option(
            "--evaluate",
            help="Evaluate the layer saved in this --out folder of an earlier run again "
            "(rewrites its results.json and REPORT.md); no training.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress messages or bars.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the interrupted training checkpointed in --out (the same options "
            "are required; the result equals an uninterrupted run), or re-evaluate the finished "
            "run there; start from step 0 when --out holds neither.",
        ),
    ] = False,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            "--checkpoint-every",
            min=0,
            help="Checkpoint the training in --out every this many steps (default: steps/50; "
            "0: never). Removed once the run is written.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train on the first part of a text and predict its held-out end: the trained layer, the
    automaton and baselines (writes results.json and REPORT.md).

    The training is checkpointed in --out (every --steps/50 steps by default); if the run is
    killed, the same command with --resume continues it from the last checkpoint."""
    import sys

    from ..errors import InvalidParameterError
    from ..studies.text import TextConfig, evaluate_dir, run

    def say(message: str) -> None:
        typer.echo(message, err=True)

    from ..studies.scaffold import ProgressLike

    progress: ProgressLike = None if quiet else (True if sys.stderr.isatty() else say)
    if evaluate is not None:
        if corpus is not None or resume:
            raise InvalidParameterError(
                "give either a corpus (with --resume to continue a run) or --evaluate DIR"
            )
        result = evaluate_dir(evaluate, progress=progress)
        out = evaluate
    else:
        if corpus is None or out is None:
            raise InvalidParameterError(
                "give a corpus and --out DIR (or --evaluate DIR to re-evaluate a saved run)"
            )
        from ..data.text import corpus_path

        corpus = corpus_path(corpus)
        config = TextConfig(
            corpus=str(corpus),
            vocab_size=vocab_size,
            seq_len=seq_len,
            level=level,
            embeddings=embeddings,
            holdout=holdout,
            stride=stride,
            steps=steps,
            learning_rate=lr,
            optimizer=optimizer,
            init=init,
            unk=unk,
            seed=seed,
            glob=glob,
            checkpoint_every=checkpoint_every,
        )
        result = run(config, out_dir=out, progress=progress, resume=resume)
    for line in _text_summary(result.results):
        typer.echo(line)
    typer.echo(f"report: {out / 'REPORT.md'}")


def _text_summary(r: dict) -> list[str]:
    """The terminal summary of a text run: all windows, label in window, decided windows."""
    from ..studies.scaffold import fmt

    sub = r["heldout"]["subsets"]
    lines = [
        f"n_train {r['n_train']}, n_test {r['n_test']}, label in window "
        f"{fmt(r['realizable_fraction'], 3)}"
    ]
    names = ("layer", "automaton", "kn_trigram", "kn_trigram_window", "bigram", "copy_recent")
    for subset in ("all", "label_in_window"):
        acc = sub["accuracy"][subset]
        lines.append(
            f"held-out accuracy, {subset} (n={sub['count'][subset]}): "
            + ", ".join(f"{k} {fmt(acc[k], 3)}" for k in names if acc.get(k) is not None)
        )
    held, train = r["heldout"], r["train"]
    if held.get("tv_layer_automaton") is not None:
        lines.append(
            f"TV(layer, automaton): held-out {fmt(held['tv_layer_automaton'], 3)}; decided "
            f"windows {fmt(held.get('decided_fraction'), 3)} of held-out, TV there "
            f"{fmt(held.get('tv_decided'), 3)}, elsewhere {fmt(held.get('tv_undecided'), 3)}; "
            f"training {fmt(train.get('tv_layer_automaton'), 3)} (R = inf); "
            f"corr(W, W_svm) {fmt(train.get('corr_svm'), 3)}"
        )
    if held.get("tv_layer_automaton_init") is not None:
        lines.append(
            "TV(layer, automaton keeping the initial scores): held-out "
            f"{fmt(held['tv_layer_automaton_init'], 3)}; decided windows "
            f"{fmt(held.get('tv_decided_automaton_init'), 3)}, elsewhere "
            f"{fmt(held.get('tv_undecided_automaton_init'), 3)}"
        )
    for warning in held.get("warnings", []):
        lines.append(f"warning: {warning}")
    lines.append(
        f"wall {fmt(r.get('wall_seconds'), 3)} s, peak RSS {fmt(r.get('peak_rss_mb'), 4)} MB"
    )
    return lines
