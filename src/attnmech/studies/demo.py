"""The demonstration job: the paper's first experiment, end to end, in a few seconds.

``run(DemoConfig(...))`` (or the keyword form :func:`run_demo`) reproduces the paper's first setting
(Li et al., AISTATS 2024, the
cyclic experiment): it draws the datasets, builds their token-priority graphs, solves for
``W_svm`` and ``W_fin``, trains every trial in one batch, verifies the trained weights against
the theory, and writes figures, ``results.json`` and ``REPORT.md`` into a folder. It is what
``attnmech demo`` runs; tests call it with fewer trials and steps.

It is a thin call of the experiments pipeline, not a second implementation:
:func:`demo_setting` takes the registry entry ``cyclic-6-4-6-8``
(:data:`attnmech.studies.reproduction.EXPERIMENTS`) with the demo's metrics and figures, and
:func:`attnmech.studies.reproduction.run_setting` runs it. This module only writes the demo's short
report (its table, ``results.json`` and ``REPORT.md``).

=====================  =================================================================
setting                value
=====================  =================================================================
data                   ``make_dataset(6, 4, 6, 8, graph="cyclic", seed=s)``, s = 0..9
                       (n=6 samples, T=4 tokens, K=6 tokens, d=8, random unit embeddings)
model                  ``iden`` head, log-loss, float64
optimiser              normalised GD, step 0.01, 4000 steps, uniform initialisation
                       ``U(-1/sqrt(d), 1/sqrt(d))`` drawn from ``default_rng(0)``
=====================  =================================================================

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
from matplotlib.figure import Figure

from .._summary import environment_info, summary_stats
from ..data.dataset import Dataset
from ..errors import FileFormatError, InvalidParameterError
from ..theory.solve import Theory
from .._validation import POSITIVE_INT, POSITIVE_REAL, check_params
from .report import text_table
from .reproduction import EXPERIMENTS, BandFigure, GraphFigure, History, Setting, Verification
from .reproduction._deps import TrainResult, VerificationReport
from .reproduction.figures import draw_figures
from .reproduction.paper import NOTEBOOK_CORR
from .reproduction.runner import run_setting
from .scaffold import (
    RESULTS_FILE,
    Progress,
    ProgressLike,
    Report,
    StudyConfig,
    StudyResult,
    fmt,
    prepare_out_dir,
)
from .scaffold import locks_out_dir  # one writer per output folder

__all__ = [
    "CONFIG_TYPE",
    "RESULT_TYPE",
    "DemoConfig",
    "run",
    "DEFAULT_OUT_DIR",
    "SETTING",
    "BASE_SETTING",
    "NOTEBOOK_CORR",
    "DemoRow",
    "DemoResult",
    "run_demo",
    "demo_setting",
    "demo_figures",
]

logger = logging.getLogger(__name__)

DEFAULT_OUT_DIR = "attnmech-demo"
SETTING = {"n_samples": 6, "seq_len": 4, "vocab_size": 6, "embedding_dim": 8, "graph": "cyclic"}
"""Sizes of the paper's first experiment (docs/theory.md#the-papers-experiments): n, T, K, d and the
kind of graphs."""

BASE_SETTING = "cyclic-6-4-6-8"
"""The registry entry the demo reruns (its data, model and optimiser)."""

# (history key, label, what the paper reports or the theory predicts), in table order
_ROWS = (
    ("corr_svm", "corr(W, W_svm)", "~0.99 (notebook: 0.986 ± 0.005)"),
    ("corr_svm_fin", "corr(W, W_fin + R W_svm)", "→ 1 (theory)"),
    ("corr_perp_svm", "corr(Proj_perp W, W_svm)", "→ 1 (theory)"),
    ("fin_gap_traj", "||Proj W - W_fin(t)||_F", "~0.005 at the end"),
    ("fin_gap_traj_peak", "peak ||Proj W - W_fin(t)||_F", "~0.29 near step 200"),
    ("fin_gap", "||Proj W - W_fin||_F", "→ 0 (theory)"),
    ("top_scc_mass", "top-SCC attention mass", "~0.9997"),
    ("automaton_tv", "TV(model, automaton)", "→ 0 (theory)"),
)


@dataclass(frozen=True, slots=True)
class DemoRow:
    """One line of the demo's table.

    Attributes
    ----------
    key : str
        The metric's name in the training history (``fin_gap_traj_peak``: the peak of the mean
        ``fin_gap_traj`` curve).
    label : str
        What is measured, in the paper's notation.
    mean, std : float
        Over trials, at the last step (for the peak: at the step of the peak).
    paper : str
        What the paper reports for this setting, or what the theory predicts.
    note : str
        Extra context (the step of a peak), or empty.
    """

    key: str
    label: str
    mean: float
    std: float
    paper: str
    note: str = ""

    @property
    def measured(self) -> str:
        """``mean ± std`` with four significant digits (and the note in brackets)."""
        text = f"{self.mean:.4g} ± {self.std:.2g}"
        return f"{text} ({self.note})" if self.note else text


DEMO_PARAMS: dict[str, list[Any]] = {
    "trials": [POSITIVE_INT],
    "steps": [POSITIVE_INT],
    "log_every": [POSITIVE_INT],
    "learning_rate": [POSITIVE_REAL],
}
"""The declared constraints of :class:`DemoConfig`'s numeric fields."""


@dataclass(frozen=True)
class DemoConfig(StudyConfig):
    """Every option of the demo.

    Parameters
    ----------
    trials : int, default=10
        Number of datasets (``make_dataset(6, 4, 6, 8, graph="cyclic", seed=seed + s)``), one
        trial each.
    steps : int, default=4000
        Normalised-GD steps.
    learning_rate : float, default=0.01
    log_every : int, default=10
        Metrics are recorded every this many steps (the curves' resolution).
    seed : int, default=0
        Seed of the first dataset and of the initialisation.
    formats : tuple of str, default=("png", "pdf")
        Formats of each figure.
    """

    _DEPRECATED_NAMES: ClassVar[Mapping[str, str]] = {
        "num_trials": "trials",
        "num_steps": "steps",
    }

    trials: int = 10
    steps: int = 4000
    learning_rate: float = 0.01
    log_every: int = 10
    seed: int = 0
    formats: tuple[str, ...] = ("png", "pdf")

    def __post_init__(self) -> None:
        check_params(
            {name: getattr(self, name) for name in DEMO_PARAMS}, DEMO_PARAMS, where="DemoConfig"
        )
        for name in ("trials", "steps", "log_every"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "learning_rate", float(self.learning_rate))
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InvalidParameterError(f"seed must be a non-negative integer, got {seed!r}")
        object.__setattr__(self, "seed", int(seed))
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        if not formats or any(f not in ("png", "pdf", "svg") for f in formats):
            raise InvalidParameterError(
                f"formats must name at least one of png, pdf, svg; got {formats!r}"
            )
        object.__setattr__(self, "formats", formats)


@dataclass(eq=False)
class DemoResult(StudyResult):
    """What :func:`run` did.

    Attributes
    ----------
    config : DemoConfig
    rows : tuple of DemoRow
        The final table.
    trajectory : tuple of (int, float, float, float or None)
        ``(step, mean corr(W, W_svm), std, the notebook's mean)`` at the notebook's steps that
        were logged.
    summary : dict
        The verification report, the training configuration, the setting and the environment
        as JSON (what ``results.json`` holds besides the table).
    timings : dict of str to float
        Seconds spent solving, training, verifying, drawing and writing.
    elapsed_s : float
        Wall time of the whole call.
    out_dir : Path or None
        The folder written (None before any write).
    files : tuple of Path
        Every file written, in order.
    datasets, theories, run, verification
        The run's datasets, theories, :class:`TrainResult` and :class:`VerificationReport`
        (None for a result read back from ``results.json``).
    """

    study: ClassVar[str] = "demo"
    report_name: ClassVar[str] = "REPORT.md"

    config: DemoConfig
    rows: tuple[DemoRow, ...]
    trajectory: tuple[tuple[int, float, float, float | None], ...]
    summary: dict[str, Any]
    timings: dict[str, float]
    elapsed_s: float = 0.0
    out_dir: Path | None = None
    files: tuple[Path, ...] = ()
    datasets: list[Dataset] | None = None
    theories: list[Theory] | None = None
    run: TrainResult | None = None
    verification: VerificationReport | None = None
    _setting_result: Any = field(default=None, repr=False)
    _artefacts: Any = field(default=None, repr=False)
    _started: float = field(default=0.0, repr=False)
    _written: list[Path] = field(default_factory=list, repr=False)

    def table(self) -> str:
        """The final table as plain text (metric, measured mean ± std, paper)."""
        return text_table(
            [(row.label, row.measured, row.paper) for row in self.rows],
            [
                "metric",
                f"measured at step {self.config.steps} (mean ± std, {self.config.trials} trials)",
                "paper",
            ],
        )

    def to_dict(self) -> dict[str, Any]:
        """The config, the table, the corr trajectory, the verification report and timings."""
        return {
            "config": self.config.to_dict(),
            "title": "attnmech demo: the cyclic experiment of Li et al. (AISTATS 2024)",
            **self.summary,
            "timings_s": dict(self.timings),
            "table": [
                {
                    "metric": r.key,
                    "label": r.label,
                    "mean": r.mean,
                    "std": r.std,
                    "paper": r.paper,
                    "note": r.note,
                }
                for r in self.rows
            ],
            "corr_svm_trajectory": [
                {"step": s, "mean": m, "std": sd, "notebook_mean": nb}
                for s, m, sd, nb in self.trajectory
            ],
            "files": [p.name for p in self.files],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DemoResult:
        """The result whose :meth:`to_dict` is ``data`` (without the run's arrays)."""
        try:
            rows = tuple(
                DemoRow(
                    r["metric"],
                    r["label"],
                    _nan(r["mean"]),
                    _nan(r["std"]),
                    r["paper"],
                    r.get("note", ""),
                )
                for r in data["table"]
            )
            trajectory = tuple(
                (int(t["step"]), _nan(t["mean"]), _nan(t["std"]), t["notebook_mean"])
                for t in data["corr_svm_trajectory"]
            )
            summary = {k: data[k] for k in _SUMMARY_KEYS}
            return cls(
                config=DemoConfig.from_dict(data["config"]),
                rows=rows,
                trajectory=trajectory,
                summary=summary,
                timings={k: float(v) for k, v in data["timings_s"].items()},
                files=tuple(Path(name) for name in data.get("files", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(f"not a demo result: {exc!r}") from exc

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> DemoResult:
        """Read ``results.json`` written by :meth:`write`."""
        result = super().load(out_dir)
        result.out_dir = Path(out_dir)
        result.files = tuple(Path(out_dir) / p.name for p in result.files)
        return result

    def report(self) -> Report:
        """``REPORT.md``."""
        return _report(self)

    def write_extra(self, out_dir: Path) -> list[Path]:
        """``run.npz`` (the trained weights and histories), when the run is at hand."""
        self._written = []
        if self.run is None:
            return []
        return [self.run.save(Path(out_dir) / "run.npz")]

    def write_figures(self, out_dir: Path) -> list[Path]:
        """The demo's four figures in every format of the config (needs the run)."""
        clock = time.perf_counter()
        figures: list[Path] = []
        if self._setting_result is not None:
            figures = list(
                draw_figures(
                    self._setting_result, self._artefacts, Path(out_dir), self.config.formats
                )
            )
            self.timings["figures_s"] = time.perf_counter() - clock
            self.timings["before_report_s"] = time.perf_counter() - self._started
        out = Path(out_dir)
        extra = [out / "run.npz"] if self.run is not None else []
        self.out_dir = out
        self.files = (*figures, *extra, out / RESULTS_FILE, out / self.report_name)
        return figures


_SUMMARY_KEYS = ("setting", "train_config", "environment", "verification")


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def demo_setting(
    steps: int = 4000, *, learning_rate: float = 0.01, log_every: int = 10, seed: int = 0
) -> Setting:
    """The demo as a setting: ``cyclic-6-4-6-8`` of the registry with the demo's metrics and
    figures (and its steps, step size, logging period and seeds).

    The data, model and optimiser are the registry entry's; the metrics add the exact finite
    part gap, the distance to the automaton and the verification report, and the figures are
    the demo's four.
    """
    base = EXPERIMENTS[BASE_SETTING]
    return replace(
        base,
        name="demo",
        num_steps=int(steps),
        learning_rate=learning_rate,
        log_every=log_every,
        init_seed=seed,
        data=replace(base.data, seed_offset=seed),
        metrics=(History(_HISTORY), Verification()),
        measures=(),
        figures=_FIGURES,
    )


@locks_out_dir("demo output folder")
def run(
    config: DemoConfig,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: ProgressLike = None,
    resume: bool = False,
) -> DemoResult:
    """Run the paper's first experiment; with ``out_dir``, write its figures and report there.

    A thin call of the experiments pipeline (:func:`attnmech.studies.reproduction.run_setting` on
    :func:`demo_setting`), with the demo's own short report.

    Parameters
    ----------
    config : DemoConfig
    out_dir : path, optional
        Created if missing (checked before training); files in it with the names below are
        replaced.
    progress : None, bool, callable or Progress
        ``True``: a progress bar while training on a terminal; a callable: one line per stage.
    resume : bool, default=False
        Return the result already in ``out_dir`` when it was made with the same config.

    Notes
    -----
    Files written: ``correlations``, ``finite_part`` and ``automaton`` (convergence curves, mean ±
    std over trials, log y axes), ``priority_graphs`` (the token-priority graphs of trial 0, one
    box per SCC), each in every format; ``run.npz`` (the trained weights and histories, read it
    with ``attnmech.load_run``); ``results.json``; ``REPORT.md``.
    """
    if not isinstance(config, DemoConfig):
        raise InvalidParameterError(f"run() takes a DemoConfig, got {type(config).__name__}")
    say = Progress.coerce(progress)
    started = time.perf_counter()
    out = None
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, "exists and is not a folder; choose another output folder", str(out)
            )
        out = prepare_out_dir(out, what="demo output")  # fail before training, not after
        if resume and (out / RESULTS_FILE).exists():
            try:
                previous = DemoResult.load(out)
            except FileFormatError:
                previous = None
            if previous is not None and previous.config == config:
                say.message(f"resume: {out / RESULTS_FILE} holds this config; nothing to rerun")
                return previous
    setting = demo_setting(
        config.steps,
        learning_rate=config.learning_rate,
        log_every=config.log_every,
        seed=config.seed,
    )
    say.message(f"demo: training {config.trials} trials for {config.steps} steps")
    result, artefacts = run_setting(setting, trials=config.trials, progress=say.bar)
    run_result, report = artefacts["run"], artefacts["verification"]
    recorded = artefacts["timings"]
    timings = {key: recorded[key] for key in ("data_and_theory_s", "train_s", "verify_s")}
    logger.info("solved %d datasets in %.2f s", config.trials, timings["data_and_theory_s"])
    history = {"step": result.steps, **result.curves}
    rows = _rows(history, report)
    trajectory = _trajectory(history)
    demo = DemoResult(
        config=config,
        rows=tuple(rows),
        trajectory=tuple(trajectory),
        summary={
            "setting": _setting(run_result, config.seed),
            "train_config": run_result.config.to_dict(),
            "environment": _environment(),
            "verification": report.to_dict(),
        },
        timings=timings,
        datasets=artefacts["datasets"],
        theories=artefacts["theories"],
        run=run_result,
        verification=report,
        _setting_result=result,
        _artefacts=artefacts,
        _started=started,
    )
    if out is not None:
        demo.write(out)
        say.message(f"demo: wrote {len(demo.files)} files to {out}")
    demo.elapsed_s = time.perf_counter() - started
    logger.info("demo done in %.2f s", demo.elapsed_s)
    return demo


def run_demo(
    out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR,
    *,
    trials: int = 10,
    steps: int = 4000,
    learning_rate: float = 0.01,
    log_every: int = 10,
    seed: int = 0,
    formats: Sequence[str] = ("png", "pdf"),
    progress: bool = False,
) -> DemoResult:
    """Run the paper's first experiment and write its figures and report into ``out_dir``.

    The old keyword form of :func:`run`: builds a :class:`DemoConfig` and calls
    ``run(config, out_dir=out_dir, progress=progress)``.

    Raises
    ------
    InvalidParameterError
        If ``trials`` or ``steps`` is below 1, or another setting is out of range.
    NotADirectoryError
        If ``out_dir`` exists and is not a folder (checked before training).
    """
    config = DemoConfig(
        trials=trials,
        steps=steps,
        learning_rate=learning_rate,
        log_every=log_every,
        seed=seed,
        formats=tuple(formats),
    )
    return run(config, out_dir=out_dir, progress=progress)


# ---------------------------------------------------------------------------------- tables
def _stats(values: np.ndarray) -> tuple[float, float]:
    stats = summary_stats(values)
    return _nan(stats["mean"]), _nan(stats["std"])


def _rows(history: dict[str, np.ndarray], report: VerificationReport) -> list[DemoRow]:
    """The final table. Values at the last step come from the verification report (the same
    numbers as the history's last row); ``fin_gap_traj`` needs ``W_fin(t)``, so it comes from the
    history."""
    rows = []
    for key, label, paper in _ROWS:
        note = ""
        if key == "fin_gap_traj_peak":
            curve = history["fin_gap_traj"]  # (L, B)
            finite = np.isfinite(curve)
            mean_curve = np.where(finite, curve, 0).sum(1) / np.maximum(finite.sum(1), 1)
            if finite.any():
                at = int(np.argmax(np.where(finite.any(1), mean_curve, -np.inf)))
                mean, std = _stats(curve[at])
                note = f"step {int(history['step'][at])}"
            else:
                mean, std = float("nan"), float("nan")
        elif key in report.metrics:
            mean, std = _stats(np.asarray(report.metrics[key]))
        else:
            mean, std = _stats(history[key][-1])
        rows.append(DemoRow(key, label, mean, std, paper, note))
    return rows


def _trajectory(history: dict[str, np.ndarray]) -> list[tuple[int, float, float, float | None]]:
    """corr(W, W_svm) at the notebook's steps (and the last step), with the notebook's mean."""
    steps = [int(s) for s in history["step"]]
    wanted = sorted({s for s in NOTEBOOK_CORR if s in steps} | {steps[-1]})
    out = []
    for step in wanted:
        mean, std = _stats(history["corr_svm"][steps.index(step)])
        out.append((step, mean, std, NOTEBOOK_CORR.get(step)))
    return out


# ---------------------------------------------------------------------------------- figures
_SETTING_TEXT = "n=6, T=4, K=6, d=8, cyclic"
_HISTORY = (
    "corr_svm",
    "corr_svm_fin",
    "corr_perp_svm",
    "fin_gap_traj",
    "fin_gap",
    "top_scc_mass",
    "automaton_tv",
    "norm",
    "loss",
)

_CAPTIONS = {
    "correlations": (
        "1 - corr of W with the predicted direction, mean ± std over trials (log scale). The "
        "three correlations of docs/theory.md#the-papers-experiments approach 1 and nearly "
        "coincide: W grows along "
        "W_svm."
    ),
    "finite_part": (
        "The distance of Proj W (the projection of W onto S_fin) from W_fin(t), the same "
        "optimiser run from zero on the reduced data, and from the exact W_fin (log scale). "
        "Bands are clipped below at the smallest trial's value."
    ),
    "automaton": (
        "1 - the attention mass on the top SCC (hard retrieval), and the total-variation "
        "distance between the model's next-token distribution and the automaton's (log scale)."
    ),
    "priority_graphs": (
        "The token-priority graphs of trial 0: one panel per last token, one box per SCC "
        "(shaded: a cycle of conflicting priorities), highest priority at the top."
    ),
}

_FIGURES = (
    BandFigure(
        "correlations",
        (
            ("corr_svm", "1 - corr(W, W_svm)", True),
            ("corr_svm_fin", "1 - corr(W, W_fin + R W_svm)", True),
            ("corr_perp_svm", "1 - corr(Proj_perp W, W_svm)", True),
        ),
        ylabel="1 - correlation (log scale)",
        title=f"direction of W ({_SETTING_TEXT})",
        caption=_CAPTIONS["correlations"],
        logy=True,
        references=(("paper's notebook at step 4000: 1 - 0.986", 1.0 - NOTEBOOK_CORR[4000]),),
    ),
    BandFigure(
        "finite_part",
        (
            ("fin_gap_traj", "||Proj W - W_fin(t)||_F", False),
            ("fin_gap", "||Proj W - W_fin||_F", False),
        ),
        ylabel="Frobenius norm (log scale)",
        title=f"finite part of W ({_SETTING_TEXT})",
        caption=_CAPTIONS["finite_part"],
        logy=True,
        references=(("paper: ~0.005 at step 4000", 0.005),),
    ),
    BandFigure(
        "automaton",
        (
            ("top_scc_mass", "1 - top-SCC attention mass", True),
            ("automaton_tv", "TV(model, automaton at fitted R)", False),
        ),
        ylabel="distance to the automaton (log scale)",
        title=f"retrieval and the automaton ({_SETTING_TEXT})",
        caption=_CAPTIONS["automaton"],
        logy=True,
        references=(("paper: 1 - 0.9997 (top-SCC mass)", 1.0 - 0.9997),),
    ),
    GraphFigure(
        "theories",
        "priority_graphs",
        "trial {trial}: token-priority graphs, one panel per last token\n"
        "(boxes: SCCs, shaded when they hold a cycle; top: highest priority)",
        "priority_graphs",
        _CAPTIONS["priority_graphs"],
        trial=0,
    ),
)


def demo_figures(history: Mapping[str, Any], theory: Theory) -> dict[str, Figure]:
    """The demo's figures, by file name (without suffix).

    Parameters
    ----------
    history : mapping of str to ndarray
        A training history with a theory's metrics (:attr:`TrainResult.history`): ``"step"`` of
        shape (L,) and each metric of shape (L, trials) or (L,).
    theory : Theory
        Whose token-priority graphs to draw (the demo's trial 0).

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        ``correlations`` (1 - the three correlations), ``finite_part`` (the two finite-part
        gaps), ``automaton`` (1 - top-SCC attention mass and the TV distance to the automaton),
        each mean ± std over trials on a log y axis with the paper's value as a dashed line, and
        ``priority_graphs``.
    """
    curves = {}
    for key in {key for figure in _FIGURES for key in figure.needs_curves}:
        values = np.asarray(history[key], dtype=np.float64)
        curves[key] = values[:, None] if values.ndim == 1 else values  # (L, trials)
    view = SimpleNamespace(
        spec=SimpleNamespace(name="demo"), steps=np.asarray(history["step"]), curves=curves
    )
    artefacts = {"theories": [theory]}
    return {figure.stem("demo"): figure.render(view, artefacts) for figure in _FIGURES}


# ---------------------------------------------------------------------------------- files
def _environment() -> dict[str, Any]:
    """Versions and machine facts (the shared helper; torch is loaded once the demo trained)."""
    import torch  # noqa: F401  (so that its version and threads are reported)

    return environment_info()


def _setting(run: TrainResult, seed: int) -> dict[str, Any]:
    trials = run.num_trials
    return {
        **SETTING,
        "datasets": f"make_dataset(6, 4, 6, 8, graph='cyclic', seed=s) for s in "
        f"{seed}..{seed + trials - 1}",
        "trials": trials,
        "embeddings": "random unit vectors",
    }


def _report(result: DemoResult) -> Report:
    """``REPORT.md`` of a demo result (from the result alone: it works after :meth:`load`)."""
    env = result.summary["environment"]
    config, timings = result.config, result.timings
    trials, steps, seed = config.trials, config.steps, config.seed
    report = Report("attnmech demo: the cyclic experiment of Li et al. (AISTATS 2024)")
    report.paragraph(
        "Setting (the paper's first experiment): n=6 samples of T=4 tokens, K=6 tokens "
        "with random unit embeddings in d=8, cyclic token-priority graphs; "
        f'{trials} trials (`make_dataset(6, 4, 6, 8, graph="cyclic", seed=s)` for '
        f"s = {seed}..{seed + trials - 1}, one trial each), `iden` head, log-loss, normalised "
        f"GD with step {fmt(config.learning_rate)} for {steps} steps, uniform initialisation, "
        "float64, all trials trained in one batch."
    )
    if "before_report_s" in timings:
        report.paragraph(
            f"**Wall time: {timings['before_report_s']:.2f} s** up to writing this report "
            f"(graphs and theory {timings['data_and_theory_s']:.2f} s, training "
            f"{timings['train_s']:.2f} s, verification {timings['verify_s']:.2f} s, figures "
            f"{timings['figures_s']:.2f} s), on {env['cpu_cores_available']} CPU core(s), "
            f"attnmech {env['attnmech']}, torch {env['torch']}, numpy {env['numpy']}, Python "
            f"{env['python']}. The time does not include starting Python and importing torch."
        )
    report.heading(f"Final values (step {steps}, mean ± std over {trials} trials)")
    report.table(
        ["metric", "measured", "paper / theory"],
        [(f"`{r.label}`", r.measured, r.paper) for r in result.rows],
    )
    report.paragraph(
        "The paper's values are read from its figures and the authors' notebook; "
        "its 10 trials used other random draws, so agreement is expected in size, not digit "
        "for digit. `R` is fitted per trial as `<W - W_fin, W_svm> / ||W_svm||^2`; `Proj` is the "
        "projection onto `S_fin` and `Proj_perp` onto its complement."
    )
    report.heading("corr(W, W_svm) along training")
    report.table(
        ["step", "measured (mean ± std)", "notebook (mean)"],
        [(s, f"{fmt(m)} ± {fmt(sd, 3)}", nb) for s, m, sd, nb in result.trajectory],
    )
    report.heading("Figures")
    for path in result.files:
        if path.suffix == ".png" and path.stem in _CAPTIONS:
            report.figure(path.name, path.stem)
            report.paragraph(_CAPTIONS[path.stem])
    report.heading("Files")
    report.bullets(
        [
            *(f"`{p.name}`" for p in result.files if p.name not in (RESULTS_FILE, "REPORT.md")),
            f"`{RESULTS_FILE}`: the config, setting, training configuration, versions, timings, "
            "this table and the verification report",
            "`REPORT.md`: this report",
        ]
    )
    return report


CONFIG_TYPE = DemoConfig
RESULT_TYPE = DemoResult
