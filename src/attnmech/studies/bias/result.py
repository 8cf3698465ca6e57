"""What the bias table produces: one :class:`BiasRun` per (setting, optimiser), gathered in a
:class:`BiasResult` that converts to and from ``results.json`` and writes its report and figures."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..._summary import summary_stats
from ..scaffold import Report, StudyResult
from .config import BiasConfig
from .curves import mean_curve as _mean_curve
from .curves import nanmean
from .rows import BiasOptimizer

__all__ = ["BiasResult", "BiasRun", "BiasTable"]

CURVES = ("one_minus_cos", "loss_gap", "norm", "fin_gap")
"""The per-step curves of a run (each of shape (L, trials))."""


@dataclass(frozen=True, slots=True, eq=False)
class BiasRun:
    """One optimiser on one setting, all trials.

    Attributes
    ----------
    setting : str
    optimizer : BiasOptimizer
    num_steps : int
    cos, dist, rel_dist, excess : dict of norm to ndarray of shape (trials,)
        Final ``W`` against each norm's Graph-SVM (see :mod:`attnmech.studies.bias`).
    steps : ndarray of shape (L,)
        Logged steps.
    one_minus_cos : ndarray of shape (L, trials)
        ``1 - cos(W(t), W_svm^own)``, own = ``optimizer.expected_norm``.
    loss_gap : ndarray of shape (L, trials)
        ``L(W(t)) - L*``.
    norm : ndarray of shape (L, trials)
        ``||W(t)||_F``.
    fin_gap : ndarray of shape (L, trials)
        ``||Proj_{S_fin} W(t) - W_fin||_F`` (0 on acyclic data, where ``S_fin = {0}``).
    slopes : dict of str to ndarray of shape (trials,)
        Log-log slopes over the last decade: ``one_minus_cos``, ``loss_gap``, ``norm``.
    elapsed_s : float
        Training wall time (measured when the run was trained, also for a reused run).
    cpu_s : float
        Process CPU time of training and measuring (NaN when not measured).
    final : dict of str to ndarray of shape (trials,)
        Each curve at the last logged step. Computed from the curves when not given; a run read
        back from ``results.json`` keeps only the mean curves (one column) and these finals.
    stalled : list of str or None
        Per trial: why ``W`` stopped moving by the end (None: it still moved).
    search : dict, optional
        The learning-rate search that chose this row's rate (see
        :func:`attnmech.studies.bias.search.search_row`); None when not searched.
    """

    setting: str
    optimizer: BiasOptimizer
    num_steps: int
    cos: dict[str, np.ndarray]
    dist: dict[str, np.ndarray]
    rel_dist: dict[str, np.ndarray]
    excess: dict[str, np.ndarray]
    steps: np.ndarray
    one_minus_cos: np.ndarray
    loss_gap: np.ndarray
    norm: np.ndarray
    fin_gap: np.ndarray
    slopes: dict[str, np.ndarray]
    elapsed_s: float
    cpu_s: float = math.nan
    final: dict[str, np.ndarray] = field(default_factory=dict)
    stalled: list[str | None] = field(default_factory=list)
    search: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.final:
            self.final.update({key: np.asarray(getattr(self, key))[-1] for key in CURVES})

    def best_norm(self, norms: Sequence[str]) -> str:
        """The column with the largest mean cosine."""
        means = [nanmean(self.cos[n]) for n in norms]
        return norms[int(np.nanargmax(np.where(np.isnan(means), -np.inf, means)))]

    def to_dict(self, norms: Sequence[str]) -> dict[str, Any]:
        """The run as JSON: per-trial measures with their statistics, and the mean curves."""
        return {
            "setting": self.setting,
            **self.optimizer.to_dict(),
            "num_steps": self.num_steps,
            "elapsed_s": self.elapsed_s,
            "cpu_s": None if not math.isfinite(self.cpu_s) else self.cpu_s,
            "cos": {n: summary_stats(v) for n, v in self.cos.items()},
            "dist": {n: summary_stats(v) for n, v in self.dist.items()},
            "rel_dist": {n: summary_stats(v) for n, v in self.rel_dist.items()},
            "excess": {n: summary_stats(v) for n, v in self.excess.items()},
            "margin_positive": int(np.isfinite(self.excess[norms[0]]).sum()),
            "best_norm": self.best_norm(norms),
            "final": {
                "one_minus_cos_own": summary_stats(self.final["one_minus_cos"]),
                "loss_gap": summary_stats(self.final["loss_gap"]),
                "norm": summary_stats(self.final["norm"]),
                "fin_gap": summary_stats(self.final["fin_gap"]),
            },
            "slopes_last_decade": {k: summary_stats(v) for k, v in self.slopes.items()},
            "stalled": list(self.stalled),
            "search": self.search,
            "curves_mean": {
                "step": self.steps.tolist(),
                **{
                    ("one_minus_cos_own" if key == "one_minus_cos" else key): _mean_curve(
                        getattr(self, key)
                    ).tolist()
                    for key in CURVES
                },
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BiasRun:
        """A run from its :meth:`to_dict` (curves: the mean over trials, one column)."""

        def values(stats: Mapping[str, Any]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in stats["values"]], dtype=float)

        def measure(name: str) -> dict[str, np.ndarray]:
            return {n: values(s) for n, s in data[name].items()}

        curves = data["curves_mean"]

        def curve(key: str) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in curves[key]], dtype=float)[:, None]

        final = {
            "one_minus_cos": values(data["final"]["one_minus_cos_own"]),
            "loss_gap": values(data["final"]["loss_gap"]),
            "norm": values(data["final"]["norm"]),
            "fin_gap": values(data["final"]["fin_gap"]),
        }
        cpu = data.get("cpu_s")
        return cls(
            data["setting"],
            BiasOptimizer.from_dict(data),
            int(data["num_steps"]),
            measure("cos"),
            measure("dist"),
            measure("rel_dist"),
            measure("excess"),
            np.asarray(curves["step"], dtype=np.int64),
            curve("one_minus_cos_own"),
            curve("loss_gap"),
            curve("norm"),
            curve("fin_gap"),
            measure("slopes_last_decade"),
            float(data["elapsed_s"]),
            math.nan if cpu is None else float(cpu),
            final,
            list(data.get("stalled") or []),
            data.get("search"),
        )


@dataclass(eq=False)
class BiasResult(StudyResult):
    """The outcome of the bias table (:func:`attnmech.studies.bias.run`).

    Attributes
    ----------
    config : BiasConfig
    runs : list of BiasRun
        One per (setting, optimiser), setting-major.
    svm_info : dict
        Per setting and norm: uniqueness, tie-break, violation and time of each solve.
    cyclic : dict of str to bool
        Whether each setting's data has cycles (a non-trivial finite part).
    wall_s, cpu_s : float
        Wall and process CPU time of the call that produced the result.
    reused : list of str
        ``"setting/label"`` of the runs read back from an earlier call (``resume``); their
        training times are those measured when they were trained.
    files : dict of str to Path
        What :meth:`write` wrote (empty until then).
    """

    study: ClassVar[str] = "bias"
    report_name: ClassVar[str] = "TABLE.md"

    config: BiasConfig
    runs: list[BiasRun]
    svm_info: dict[str, dict[str, dict[str, Any]]]
    cyclic: dict[str, bool]
    wall_s: float
    cpu_s: float
    reused: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    # ------------------------------------------------------------------ the old BiasTable view
    @property
    def settings(self) -> tuple[str, ...]:
        """The settings, in order."""
        return self.config.settings

    @property
    def norms(self) -> tuple[str, ...]:
        """The columns (the config's norms and every row's own norm)."""
        return self.config.columns

    @property
    def trials(self) -> int:
        """Datasets per setting."""
        return self.config.trials

    def run(self, setting: str, label: str) -> BiasRun:
        """The run of row ``label`` on ``setting`` (KeyError when there is none)."""
        for r in self.runs:
            if r.setting == setting and r.optimizer.label == label:
                return r
        raise KeyError(f"no run of {label!r} on {setting!r}")

    def verdicts(self) -> list[dict[str, Any]]:
        """Per run: the best column by each measure, the own column, and the margins.

        ``holds`` is True when the largest mean cosine is in the optimiser's own column;
        ``cos_margin`` is the own column's mean cosine minus the best other column's (negative
        when the prediction does not hold). ``best_rel_dist`` / ``best_excess`` name the column
        with the smallest mean relative distance / norm excess.
        """
        out = []
        for r in self.runs:
            own = r.optimizer.expected_norm
            cos = {n: nanmean(r.cos[n]) for n in self.norms}
            others = [v for n, v in cos.items() if n != own and np.isfinite(v)]
            best_other = max(others, default=math.nan)
            out.append(
                {
                    "setting": r.setting,
                    "optimizer": r.optimizer.label,
                    "expected": own,
                    "best_cos": r.best_norm(self.norms),
                    "own_cos": cos[own],
                    "best_other_cos": best_other,
                    "cos_margin": cos[own] - best_other,
                    "best_rel_dist": _argbest(r.rel_dist, self.norms),
                    "own_rel_dist": nanmean(r.rel_dist[own]),
                    "best_excess": _argbest(r.excess, self.norms),
                    "own_excess": nanmean(r.excess[own]),
                    "holds": r.best_norm(self.norms) == own,
                    **{
                        k: v
                        for k, v in self.assessment(r).items()
                        if k in ("label", "theorem", "meets", "unmet")
                    },
                }
            )
        return out

    def assessment(self, r: BiasRun) -> dict[str, Any]:
        """Whether run ``r`` meets its theorem's conditions (:func:`~.theorems.assess`)."""
        from .theorems import assess

        return assess(r.optimizer, self.cyclic[r.setting])

    # ------------------------------------------------------------------ StudyResult
    def to_dict(self) -> dict[str, Any]:
        """``results.json``: config, settings, columns, solves, runs and verdicts."""
        verdicts = [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()
            }
            for d in self.verdicts()
        ]
        return {
            "config": self.config.to_dict(),
            "settings": list(self.settings),
            "norms": list(self.norms),
            "trials": self.trials,
            "cyclic": dict(self.cyclic),
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "reused": list(self.reused),
            "svm_info": self.svm_info,
            "runs": [r.to_dict(self.norms) for r in self.runs],
            "verdicts": verdicts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BiasResult:
        """The result of a ``results.json`` written by :meth:`write`."""
        return cls(
            BiasConfig.from_dict(data["config"]),
            [BiasRun.from_dict(r) for r in data["runs"]],
            data["svm_info"],
            {k: bool(v) for k, v in data["cyclic"].items()},
            float(data["wall_s"]),
            float(data["cpu_s"]),
            list(data.get("reused") or []),
        )

    @classmethod
    def load(cls, out_dir: Any) -> BiasResult:
        """Read ``out_dir/results.json``; figures found beside it are listed in :attr:`files`."""
        result = super().load(out_dir)
        out = Path(out_dir)
        names = {"heatmap": "heatmap.png"}
        names.update({f"rates_{n}": f"rates_{n}.png" for n in result.settings})
        for key, name in names.items():
            if (out / name).exists():
                result.files[key] = out / name
        result.files["results"] = out / "results.json"
        if (out / cls.report_name).exists():
            result.files["table"] = out / cls.report_name
        return result

    def report(self) -> Report:
        """``TABLE.md`` (see :func:`attnmech.studies.bias.report.build_report`)."""
        from .report import build_report

        return build_report(self)

    def write_figures(self, out_dir: Path) -> list[Path]:
        """``heatmap.png`` and one ``rates_<setting>.png`` per setting."""
        from .figures import heatmap, rates_figure

        self.files["heatmap"] = heatmap(self, out_dir / "heatmap.png")
        for name in self.settings:
            self.files[f"rates_{name}"] = rates_figure(self, name, out_dir / f"rates_{name}.png")
        return [self.files["heatmap"], *(self.files[f"rates_{n}"] for n in self.settings)]

    def write(self, out_dir: Any, *, figures: bool = True) -> Path:
        """Write ``results.json``, ``TABLE.md`` and (with ``figures``) the figures, atomically;
        record their paths in :attr:`files`."""
        for key in [k for k in self.files if k.startswith(("heatmap", "rates_"))]:
            del self.files[key]
        out = super().write(out_dir, figures=figures)
        self.files["results"] = out / "results.json"
        self.files["table"] = out / self.report_name
        return out


BiasTable = BiasResult
"""The earlier name of :class:`BiasResult` (what :func:`~attnmech.studies.bias.bias_table`
returns)."""


def _argbest(values: Mapping[str, np.ndarray], norms: Sequence[str]) -> str | None:
    """The norm with the smallest finite mean (None when none is finite)."""
    means = {n: nanmean(values[n]) for n in norms}
    finite = {n: m for n, m in means.items() if np.isfinite(m)}
    return min(finite, key=finite.__getitem__) if finite else None
