"""The reproduction as a study: ReproductionConfig, run and ReproductionResult.

``run(config, *, out_dir=None, progress=None, resume=False)`` runs the selected settings of
:data:`~attnmech.studies.reproduction.EXPERIMENTS` (:func:`~.runner.run_setting` each) and returns a
:class:`ReproductionResult`; with ``out_dir`` it also writes ``results.json``, ``curves.npz``,
the figures and ``REPRODUCTION.md`` there (:meth:`ReproductionResult.write`).

Examples
--------
>>> ReproductionConfig(only="local-ce", trials=3).only
('local-ce',)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..._validation import check_params
from ...errors import FileFormatError, InvalidParameterError
from ..scaffold import RESULTS_FILE, Progress, ProgressLike, Report, StudyConfig, StudyResult
from ..scaffold import locks_out_dir  # one writer per output folder
from .execute import RUN_PARAMS, _with_source, run_setting, with_data
from .figures import draw_figures
from .registry import EXPERIMENTS, select
from .results import MetricResult, SettingResult
from .settings import Setting
from .sources import DATA_SOURCES
from .verdicts import Verdict
from .writer import build_report, command_line, machine_info, results_payload, write_curves

__all__ = ["CONFIG_TYPE", "RESULT_TYPE", "ReproductionConfig", "ReproductionResult", "run"]

FIGURE_FORMATS = ("png", "pdf", "svg")


@dataclasses.dataclass(frozen=True)
class ReproductionConfig(StudyConfig):
    """Every option of the reproduction.

    Parameters
    ----------
    only : str or tuple of str, optional
        Run only these settings (names of :data:`~attnmech.studies.reproduction.EXPERIMENTS`);
        default all of them, in registry order.
    trials : int, default=10
        Trials per setting (one dataset each).
    steps_scale : float, default=1.0
        Multiply every setting's number of steps (quick checks; compare with the paper at 1.0).
    data : str, optional
        The data source of every setting (a key of
        :data:`~attnmech.studies.reproduction.sources.DATA_SOURCES`); default each setting's own.
        ``"authors"``: the authors' datasets and initialisations where they can be regenerated.
    authors_eps : float, optional
        With ``data="authors"``: the eps inside the authors' ``-log(p_y + eps)`` for the replay
        (default their float64 machine epsilon; 0 for the exact log-loss).
    formats : tuple of str, default=("png", "pdf")
        Formats of every figure.
    ngd_eps : float, optional
        The ``eps`` of normalised GD, ``g / (||g|| + eps)``, for every setting trained with it.
        Default: the data source's (``"authors"``: the authors' float64 machine epsilon;
        ``"generated"``: off, the exact ``g / ||g||``); 0 turns it off everywhere.
    """

    only: tuple[str, ...] | None = None
    trials: int = 10
    steps_scale: float = 1.0
    data: str | None = None
    authors_eps: float | None = None
    formats: tuple[str, ...] = ("png", "pdf")
    ngd_eps: float | None = None

    def __post_init__(self) -> None:
        only = self.only
        if only is not None:
            if not isinstance(only, (str, list, tuple)) or not all(
                isinstance(name, str) for name in ((only,) if isinstance(only, str) else only)
            ):
                raise InvalidParameterError(
                    f"ReproductionConfig: only must be a setting name or a list of them, got "
                    f"{only!r}"
                )
            only = (only,) if isinstance(only, str) else tuple(only)
            repeated = sorted({name for name in only if only.count(name) > 1})
            if repeated:  # a setting twice would run twice and report twice
                raise InvalidParameterError(
                    f"ReproductionConfig: only must name distinct settings; {repeated} given "
                    "more than once"
                )
            select(only)  # unknown names: ExperimentNotFoundError naming the valid ones
            object.__setattr__(self, "only", only)
        check_params(
            {"trials": self.trials, "steps_scale": self.steps_scale},
            RUN_PARAMS,
            where="run_reproduction",
        )
        object.__setattr__(self, "trials", int(self.trials))
        object.__setattr__(self, "steps_scale", float(self.steps_scale))
        if self.data is not None and self.data not in DATA_SOURCES:
            raise InvalidParameterError(
                f"unknown data source {self.data!r}; choose from {', '.join(DATA_SOURCES)}"
            )
        for name in ("authors_eps", "ngd_eps"):
            eps = getattr(self, name)
            if eps is None:
                continue
            ok = isinstance(eps, (int, float)) and not isinstance(eps, bool)
            if not (ok and math.isfinite(eps) and eps >= 0):
                raise InvalidParameterError(
                    f"{name} must be a non-negative number or None, got {eps!r}"
                )
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        bad = [f for f in formats if f not in FIGURE_FORMATS]
        if bad or not formats:
            raise InvalidParameterError(
                f"formats must name at least one of {', '.join(FIGURE_FORMATS)}; got {formats!r}"
            )
        object.__setattr__(self, "formats", formats)


@dataclasses.dataclass(eq=False)
class ReproductionResult(StudyResult):
    """What :func:`run` did: one :class:`SettingResult` per setting, and the run's context.

    Attributes
    ----------
    config : ReproductionConfig
    settings : tuple of SettingResult
        In registry order.
    skipped : dict of str to str
        Settings left out with this data source, and why.
    command : str
        The ``attnmech reproduce`` command that makes this run.
    wall_time_s : float
        Training and measuring every setting (figures and files not included).
    machine : dict
        Cores, threads and versions (:func:`attnmech._summary.environment_info`).
    out_dir : Path or None
        Where the result was last written (or read from).
    """

    study: ClassVar[str] = "reproduction"
    report_name: ClassVar[str] = "REPRODUCTION.md"

    config: ReproductionConfig
    settings: tuple[SettingResult, ...]
    skipped: dict[str, str]
    command: str
    wall_time_s: float
    machine: dict[str, Any]
    out_dir: Path | None = None
    _artefacts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ the old attributes
    @property
    def trials(self) -> int:
        """Trials per setting."""
        return self.config.trials

    @property
    def steps_scale(self) -> float:
        """The factor applied to every setting's steps."""
        return self.config.steps_scale

    @property
    def results_path(self) -> Path | None:
        """``results.json`` of the last write (None before any)."""
        return None if self.out_dir is None else self.out_dir / RESULTS_FILE

    @property
    def report_path(self) -> Path | None:
        """``REPRODUCTION.md`` of the last write (None before any)."""
        return None if self.out_dir is None else self.out_dir / self.report_name

    @property
    def curves_path(self) -> Path | None:
        """``curves.npz`` of the last write (None before any)."""
        return None if self.out_dir is None else self.out_dir / "curves.npz"

    @property
    def figures(self) -> tuple[Path, ...]:
        """Every figure file written."""
        return tuple(p for r in self.settings for p in r.figures)

    @property
    def files(self) -> tuple[Path, ...]:
        """Report, results, curves and figures of the last write."""
        if self.out_dir is None:
            return ()
        paths = (self.report_path, self.results_path, self.curves_path)
        return (*(p for p in paths if p is not None), *self.figures)

    def setting(self, name: str) -> SettingResult:
        """The result of the setting called ``name``."""
        for result in self.settings:
            if result.name == name:
                return result
        raise KeyError(f"no setting {name!r} in this run; it ran {[s.name for s in self.settings]}")

    @property
    def disagreements(self) -> list[tuple[str, MetricResult]]:
        """(setting, metric) pairs where the paper gives a number and ours does not agree."""
        return [(s.name, m) for s in self.settings for m in s.metrics if m.agrees is False]

    # ------------------------------------------------------------------ StudyResult
    def _context(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "command": self.command,
            "trials": self.config.trials,
            "steps_scale": self.config.steps_scale,
            "wall_time_s": self.wall_time_s,
            "machine": self.machine,
        }

    def to_dict(self) -> dict[str, Any]:
        """``config`` and the run's payload: per setting every number (see ``results.json``)."""
        payload = results_payload(self.settings, root=self.out_dir, **self._context())
        return {"config": self.config.to_dict(), **payload}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReproductionResult:
        """The result whose :meth:`to_dict` is ``data`` (curves empty: they live in
        ``curves.npz``, which :meth:`load` reads)."""
        try:
            config = ReproductionConfig.from_dict(data["config"])
            settings = tuple(
                _setting_from_dict(name, entry, config.data)
                for name, entry in data["settings"].items()
            )
            return cls(
                config=config,
                settings=settings,
                skipped=dict(data.get("skipped_settings", {})),
                command=str(data["command"]),
                wall_time_s=float(data["wall_time_s"]),
                machine=dict(data["machine"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FileFormatError(f"not a reproduction result: {exc!r}") from exc

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> ReproductionResult:
        """Read ``results.json`` (and the curves of ``curves.npz`` when present)."""
        result = super().load(out_dir)
        out = Path(out_dir)
        result.out_dir = out
        curves = out / "curves.npz"
        if curves.exists():
            with np.load(curves) as arrays:
                settings = []
                for s in result.settings:
                    prefix = f"{s.name}/"
                    found = {
                        k[len(prefix) :]: arrays[k] for k in arrays.files if k.startswith(prefix)
                    }
                    steps = found.pop("step", s.steps)
                    settings.append(dataclasses.replace(s, steps=steps, curves=found))
            result.settings = tuple(settings)
        result.settings = tuple(
            dataclasses.replace(s, figures=tuple(out / p for p in s.figures if (out / p).is_file()))
            for s in result.settings
        )
        return result

    def report(self) -> Report:
        """``REPRODUCTION.md``."""
        return build_report(self.settings, **self._context())

    def write_extra(self, out_dir: Path) -> list[Path]:
        """``curves.npz``: every curve, ``<setting>/<curve>`` of shape (steps, trials)."""
        self.out_dir = Path(out_dir)
        return [write_curves(Path(out_dir) / "curves.npz", self.settings)]

    def write_figures(self, out_dir: Path) -> list[Path]:
        """Draw every setting's figures (needs the run's artefacts: a result from :func:`run`)."""
        written: list[Path] = []
        settings = []
        for s in self.settings:
            artefacts = self._artefacts.get(s.name)
            if artefacts is None:
                settings.append(s)
                continue
            figures = draw_figures(s, artefacts, Path(out_dir), self.config.formats)
            written += figures
            settings.append(dataclasses.replace(s, figures=figures))
        self.settings = tuple(settings)
        return written


def _setting_from_dict(name: str, entry: Mapping[str, Any], data: str | None) -> SettingResult:
    if name not in EXPERIMENTS:
        raise FileFormatError(
            f"results.json names the setting {name!r}, which this version's registry does not "
            f"have ({', '.join(EXPERIMENTS)})"
        )
    spec = EXPERIMENTS[name]
    source = entry["config"].get("data_source", data)
    if source and source != spec.data.source:
        spec = with_data(spec, source)
    by_key = {m.key: m for m in spec.measures}
    metrics = []
    for key, row in entry["metrics"].items():
        measure = by_key.get(key)
        if measure is None:
            raise FileFormatError(f"setting {name!r} has no table row {key!r} in this version")
        values = np.array([np.nan if v is None else v for v in row["values"]], dtype=np.float64)
        values.flags.writeable = False
        metrics.append(
            MetricResult(
                measure,
                values,
                _nan(row["mean"]),
                _nan(row["std"]),
                _nan(row["min"]),
                _nan(row["max"]),
                int(row["n_finite"]),
                row["difference"],
                row["agrees"],
                None
                if row.get("outcome") is None
                else Verdict(row["outcome"], row.get("reason") or "", row.get("percentile")),
                row.get("first_trials"),
            )
        )
    config = entry["config"]
    result = SettingResult(
        spec=spec,
        num_steps=int(config["num_steps"]),
        trials=int(config["trials"]),
        steps=np.zeros(0, dtype=np.int64),
        curves={},
        metrics=tuple(metrics),
        wall_time_s=float(entry["wall_time_s"]),
        train_time_s=float(entry["train_time_s"]),
        figures=tuple(Path(p) for p in entry.get("figures", ())),
        notes=tuple(entry.get("notes", ())),
        extra=dict(entry.get("diagnostics", {})),
    )
    return result


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _with_ngd_eps(setting: Setting, eps: float) -> Setting:
    """``setting`` with normalised GD's ``eps`` set (0: removed, the exact step)."""
    if setting.optimizer != "ngd":
        return setting
    options = {k: v for k, v in setting.optimizer_options.items() if k != "eps"}
    if eps > 0:
        options["eps"] = float(eps)
    return dataclasses.replace(setting, optimizer_options=options)


@locks_out_dir("reproduction output folder")
def run(
    config: ReproductionConfig,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: ProgressLike = None,
    resume: bool = False,
) -> ReproductionResult:
    """Run the paper's experiments; with ``out_dir``, write every output there.

    Parameters
    ----------
    config : ReproductionConfig
    out_dir : path, optional
        Folder for ``results.json``, ``curves.npz``, the figures and ``REPRODUCTION.md``
        (checked for writability before any work).
    progress : None, bool, callable or Progress
        One line before and after each setting (see :meth:`Progress.coerce`).
    resume : bool, default=False
        Return the result already in ``out_dir`` when it was made with the same config (nothing
        is rerun); otherwise run.

    Raises
    ------
    InvalidParameterError
        ``config`` is not a :class:`ReproductionConfig`, or a setting named in ``only`` has no
        data in the chosen source.
    """
    if not isinstance(config, ReproductionConfig):
        raise InvalidParameterError(
            f"run() takes a ReproductionConfig, got {type(config).__name__}"
        )
    say = Progress.coerce(progress)
    out = None
    if out_dir is not None:
        from ..scaffold import prepare_out_dir

        out = prepare_out_dir(out_dir, what="reproduction output")
        if resume and (out / RESULTS_FILE).exists():
            try:
                previous = ReproductionResult.load(out)
            except (FileFormatError, InvalidParameterError):
                previous = None
            if previous is not None and previous.config == config:
                say.message(f"resume: {out / RESULTS_FILE} holds this config; nothing to rerun")
                return previous
    only = config.only
    settings, skipped = _with_source(
        select(only), config.data, only is not None, config.authors_eps
    )
    if config.ngd_eps is not None:
        settings = [_with_ngd_eps(s, config.ngd_eps) for s in settings]
    from .execute import check_setting_memory

    for setting in settings:  # every batch fits, before the first one starts
        check_setting_memory(setting, config.trials, config.steps_scale)
    started = time.perf_counter()
    results: list[SettingResult] = []
    artefacts_by_name: dict[str, dict[str, Any]] = {}
    trials = config.trials
    for index, setting in enumerate(settings, start=1):
        say.message(f"[{index}/{len(settings)}] {setting.name}: {setting.title} ({trials} trials)")
        setting_started = time.perf_counter()
        one, artefacts = run_setting(setting, trials=trials, steps_scale=config.steps_scale)
        wall = time.perf_counter() - setting_started
        results.append(dataclasses.replace(one, wall_time_s=wall))
        artefacts_by_name[setting.name] = artefacts
        outcomes = [m.outcome for m in one.metrics if m.outcome is not None]
        say.message(
            f"[{index}/{len(settings)}] {setting.name}: done in {wall:.1f} s; "
            f"{outcomes.count('agree')} agree, {outcomes.count('disagree')} disagree, "
            f"{outcomes.count('not comparable')} not comparable"
        )
    wall_time = time.perf_counter() - started
    names = None if only is None else [s.name for s in settings]
    command = command_line(
        names,
        trials,
        out if out is not None else Path("reproduction"),
        config.steps_scale,
        config.data or "generated",
    )
    result = ReproductionResult(
        config=config,
        settings=tuple(results),
        skipped=skipped,
        command=command,
        wall_time_s=wall_time,
        machine=machine_info(),
        _artefacts=artefacts_by_name,
    )
    if out is not None:
        result.write(out)
        say.message(
            f"wrote {out / result.report_name}, {out / RESULTS_FILE} and "
            f"{len(result.figures)} figure files"
        )
    return result


CONFIG_TYPE = ReproductionConfig
RESULT_TYPE = ReproductionResult
