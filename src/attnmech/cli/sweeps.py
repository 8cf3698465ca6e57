"""Commands for sweeps: ``sweep``, ``sweep-status``, ``search``, ``plot-sweep``."""

from __future__ import annotations

import enum
import sys
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


# --------------------------------------------------------------------------- sweeps
class SweepBackend(str, enum.Enum):
    """Where a sweep's tasks run: a local process pool or Ray tasks."""
    local = "local"
    ray = "ray"


AddressOption = Annotated[
    str | None, typer.Option("--address", help="Address of an existing Ray cluster.")
]
ConnectTimeoutOption = Annotated[
    float,
    typer.Option("--connect-timeout", help="Seconds to wait for the Ray cluster at --address."),
]


@app.command("sweep")
@_reports_errors
def sweep_command(
    spec_file: Annotated[Path, typer.Argument(help="Sweep file (TOML): axes, trials, metrics.")],
    out: Annotated[Path, typer.Option("--out", help="Results folder (new, or --resume).")],
    backend: Annotated[
        SweepBackend, typer.Option("--backend", help="local process pool or Ray tasks.")
    ] = SweepBackend.local,
    address: AddressOption = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Processes / Ray CPUs (default: cores).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a sweep in --out; skip stored cells.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="Torch device for training (cpu, cuda).")
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Run a failed task again up to N times.")
    ] = 0,
    curves: Annotated[
        bool, typer.Option("--curves", help="Keep every trial's logged metrics (curves/*.npz).")
    ] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    connect_timeout: ConnectTimeoutOption = 30.0,
) -> None:
    """Run a grid of datasets x training options (one row per cell x trial in --out)."""
    from ..studies.scaffold import fmt
    from ..studies.sweeps import load_sweep_spec, run

    spec = load_sweep_spec(spec_file).replace(
        backend=backend.value,
        workers=workers,
        address=address,
        retries=retries,
        curves=curves,
        connect_timeout=connect_timeout,
    )
    if device is not None:
        spec = spec.replace(device=device)
    result = run(spec, out_dir=out, resume=resume, progress=not no_progress and sys.stderr.isatty())
    typer.echo(
        f"{result.cells} cells, {result.tasks} tasks ({result.tasks_skipped} already done"
        + (f", {result.failed} failed" if result.failed else "")
        + f"), {result.rows} rows written, {fmt(result.wall_time_s, 3)} s on "
        f"{result.workers} {result.backend} worker(s)"
    )
    typer.echo(f"results: {result.results_path}")
    if result.failed:
        typer.echo(
            f"{result.failed} task(s) failed; see 'attnmech sweep-status {out}', then --resume",
            err=True,
        )
        raise typer.Exit(1)


@app.command("sweep-status")
@_reports_errors
def sweep_status_command(
    sweep_dir: Annotated[Path, typer.Argument(help="A sweep's (or search's) results folder.")],
) -> None:
    """Done, failed and pending tasks of a sweep, an ETA, and the errors grouped."""
    from ..studies.sweeps.status import sweep_status

    status = sweep_status(sweep_dir)
    typer.echo(status.summary())
    typer.echo(status.report().to_markdown().split("\n", 2)[2].rstrip())


@app.command("search")
@_reports_errors
def search_command(
    spec_file: Annotated[
        Path, typer.Argument(help="Search file (TOML): a sweep file with a [search] table.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Results folder (new, or --resume).")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the study in --out (its journal.log).")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Processes sharing the journal / Ray trials in flight."
        ),
    ] = 1,
    backend: Annotated[
        SweepBackend,
        typer.Option("--backend", help="local processes, or Ray tasks (this process asks/tells)."),
    ] = SweepBackend.local,
    address: AddressOption = None,
    connect_timeout: ConnectTimeoutOption = 30.0,
) -> None:
    """Adaptive search (Optuna) over a sweep's parameters; rows stored like a sweep's."""
    from ..studies.scaffold import fmt
    from ..studies.sweeps.search import load_search_spec, run_search

    result = run_search(
        load_search_spec(spec_file),
        out,
        resume=resume,
        workers=workers,
        backend=backend.value,
        address=address,
        connect_timeout=connect_timeout,
    )
    typer.echo(
        f"{result.trials} trials ({result.ran} run now): {result.complete} complete, "
        f"{result.pruned} pruned, {result.failed} failed; {fmt(result.wall_time_s, 3)} s"
    )
    typer.echo(f"best: {fmt(result.best_value)} at {result.best_params}")
    typer.echo(f"results: {result.out_dir}")


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
    from ..errors import InvalidParameterError
    from ..studies.sweeps.plots import plot_sweep, save_sweep_plot

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
        from .._io import inside

        # --grid NAME is part of the file name: "../../x" must not leave the sweep's folder
        output = inside(sweep_dir, "plots", "_".join(p for p in parts if p), what="plot")
    for path in save_sweep_plot(plot, output):
        typer.echo(f"wrote {path}")
