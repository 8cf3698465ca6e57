"""Which optimiser finds which max-margin graph direction: the bias table.

The paper proves that gradient descent on one attention layer converges in direction to the
Frobenius-norm Graph-SVM (docs/theory.md#graph-svm). Other optimisers are predicted to follow the
Graph-SVM of their own geometry (:func:`attnmech.layer.optim.expected_svm_norm`): mirror descent
with an l_p potential the ``lp:p`` one, sign descent (and Adam) ``linf``, l_1 steepest descent
``l1``, spectral descent (exact Muon) ``spectral``, factorised ``W = K Q^T`` training ``nuclear``.
:func:`bias_table` measures it: every optimiser of :data:`BIAS_OPTIMIZERS` trains on the paper's
settings (the data of the experiments registry), and the final ``W`` of each trial is compared
with every norm's Graph-SVM (:func:`attnmech.theory.norms.solve_norm_svm`, solved once per dataset):

- ``cos``: the cosine ``<W, W_svm^N> / (||W||_F ||W_svm^N||_F)`` (Frobenius inner product);
- ``dist``: the margin-normalised distance ``N(W / margin(W) - W_svm^N)`` in that norm
  (:func:`attnmech.theory.norms.margin_distance`), and ``rel_dist`` the same divided by
  ``N(W_svm^N)`` so that columns of different norms can be compared;
- ``excess``: ``N(W / margin(W)) / N(W_svm^N) - 1``, how far the margin-normalised ``W`` is from
  being a minimiser of ``N`` (0 exactly on the optimal face). Unlike the cosine and the distance,
  which compare with one point (``attnmech.theory.norms`` returns the face's least-Frobenius point
  when the minimiser of ``l1``, ``linf``, ``nuclear`` or ``spectral`` is not unique), it does not
  depend on which point of a non-unique optimal face the optimiser picks.

It also records, per optimiser, the rates: ``1 - cos(W(t), W_svm^own)``, ``L(W(t)) - L*`` (``L*``
the infimum of the loss: 0 on acyclic data, the reduced loss at ``W_fin`` on cyclic data) and
``||W(t)||_F`` against ``t``, with the slope of a least-squares line on log-log axes over the last
decade of steps; and on cyclic data the finite part ``||Proj_{S_fin} W(t) - W_fin||_F`` (no theory
covers other geometries there: it is reported as measured).

References
----------
Li, Huang, Ildiz, Rawat, Oymak. Mechanics of Next Token Prediction with Self-Attention.
AISTATS 2024, arXiv:2403.08081.
Julistiono, Tarzanagh, Azizi 2024, arXiv:2410.14581; Vasudeva et al. 2024, arXiv:2402.05738;
Fan et al. 2025, arXiv:2502.04664; Sheen et al. 2024, arXiv:2403.08699.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from .._validation import POSITIVE_INT, Interval, check_params, register
from ..data.dataset import Dataset
from ..errors import InvalidParameterError
from ..theory.finite import project
from ..theory.norms import margin_of, norm_of, parse_norm, solve_norm_svm
from ..layer.optim import OPTIMIZERS, expected_svm_norm, make_step_rule
from ..theory.solve import Theory, solve

__all__ = [
    "BIAS_NORMS",
    "BIAS_OPTIMIZERS",
    "DEFAULT_SETTINGS",
    "BiasOptimizer",
    "BiasRun",
    "BiasTable",
    "bias_table",
    "loglog_slope",
    "write_bias_table",
]

logger = logging.getLogger(__name__)

BIAS_TABLE_PARAMS = register(
    "bias_table",
    {"trials": [POSITIVE_INT], "steps": [Interval(numbers.Integral, 10, None), None]},
)

BIAS_NORMS: tuple[str, ...] = ("fro", "nuclear", "spectral", "l1", "linf", "lp:3")
"""The Graph-SVM norms every optimiser is compared with (the table's columns)."""

DEFAULT_SETTINGS: tuple[str, ...] = ("acyclic-4-6-8-8", "cyclic-6-4-6-8")
"""The experiments-registry settings :func:`bias_table` runs by default."""


@dataclass(frozen=True, slots=True, eq=False)
class BiasOptimizer:
    """One row of the bias table: an optimiser, its options and its budget.

    Parameters
    ----------
    label : str
        Row name (unique in a table), e.g. ``"mirror p=3"`` or ``"gd (K Q^T)"``.
    optimizer : str
        A key of :data:`attnmech.layer.optim.OPTIMIZERS`.
    learning_rate : float
    num_steps : int
        Steps when :func:`bias_table` gets no ``steps``.
    options : dict, default={}
        The step rule's keyword arguments.
    parameterization : {"combined", "factorized"}, default="combined"
    """

    label: str
    optimizer: str
    learning_rate: float
    num_steps: int
    options: Mapping[str, Any] = field(default_factory=dict)
    parameterization: str = "combined"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InvalidParameterError(
                f"bias optimizer {self.label!r}: optimizer must be one of "
                f"{', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.parameterization not in ("combined", "factorized"):
            raise InvalidParameterError(
                f"bias optimizer {self.label!r}: parameterization must be 'combined' or "
                f"'factorized', got {self.parameterization!r}"
            )
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int):
            raise InvalidParameterError(
                f"bias optimizer {self.label!r}: num_steps must be an integer >= 10, got "
                f"{self.num_steps!r}"
            )
        if self.num_steps < 10:
            raise InvalidParameterError(
                f"bias optimizer {self.label!r}: num_steps must be at least 10 (a decade of steps "
                f"for the rates), got {self.num_steps}"
            )
        object.__setattr__(self, "options", dict(self.options))
        make_step_rule(self.optimizer, self.learning_rate, self.options)  # validates

    @property
    def expected_norm(self) -> str:
        """The Graph-SVM norm this optimiser is predicted to follow."""
        rule = make_step_rule(self.optimizer, self.learning_rate, self.options)
        return expected_svm_norm(rule, self.parameterization)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "optimizer": self.optimizer,
            "options": dict(self.options),
            "learning_rate": self.learning_rate,
            "num_steps": self.num_steps,
            "parameterization": self.parameterization,
            "expected_norm": self.expected_norm,
        }


BIAS_OPTIMIZERS: tuple[BiasOptimizer, ...] = (
    BiasOptimizer("gd", "gd", 1.0, 4000),
    BiasOptimizer("ngd", "ngd", 0.05, 4000),
    BiasOptimizer("polyak", "polyak", 1.0, 4000),
    BiasOptimizer("adam", "adam", 0.01, 4000),
    BiasOptimizer("mirror p=3", "mirror", 1.0, 4000, {"p": 3}),
    BiasOptimizer("normalized-mirror p=3", "normalized-mirror", 0.05, 4000, {"p": 3}),
    BiasOptimizer("sign", "sign", 0.002, 6000),
    BiasOptimizer("l1-steepest", "l1-steepest", 0.05, 4000),
    BiasOptimizer("spectral", "spectral", 0.007, 6000),
    BiasOptimizer("gd (K Q^T)", "gd", 1.0, 4000, parameterization="factorized"),
    BiasOptimizer("ngd (K Q^T)", "ngd", 0.05, 4000, parameterization="factorized"),
)
"""The default rows: every optimiser of the registry, combined, and factorised gd / ngd."""


# ---------------------------------------------------------------------------------- helpers
def loglog_slope(steps: Any, values: Any, *, decade: float = 10.0) -> float:
    """Slope of ``log values`` against ``log steps`` over the last decade of steps.

    A least-squares line through the points with ``steps >= steps[-1] / decade`` (and positive,
    finite values). NaN when fewer than 3 such points remain.

    Examples
    --------
    >>> t = np.arange(1, 1001)
    >>> round(loglog_slope(t, 3.0 / t**2), 6)
    -2.0
    """
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = (steps >= steps[-1] / decade) & (steps > 0) & np.isfinite(values) & (values > 0)
    if keep.sum() < 3:
        return math.nan
    x, y = np.log(steps[keep]), np.log(values[keep])
    return float(np.polyfit(x, y, 1)[0])


def _cosine(W: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Frobenius cosine of ``W`` (..., d, d) with one ``V`` (d, d); NaN where a norm is 0."""
    inner = np.einsum("...ij,ij->...", W, V)
    norms = np.linalg.norm(W, axis=(-2, -1)) * np.linalg.norm(V)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, inner / np.where(norms > 0, norms, 1.0), np.nan)


def _stats(values: Any) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    return {
        "mean": float(finite.mean()) if finite.size else None,
        "std": float(finite.std()) if finite.size else None,
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "values": [float(v) if np.isfinite(v) else None for v in arr],
    }


def _nanmean(values: Any) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


@dataclass(frozen=True, slots=True)
class _SettingData:
    name: str
    datasets: list[Dataset]
    theories: list[Theory]  # Frobenius theory: graphs, W_fin, L*
    svms: dict[str, np.ndarray]  # norm -> (B, d, d)
    svm_info: dict[str, dict[str, Any]]
    head: str
    loss: str
    cyclic: bool


def _solve_setting(
    name: str, trials: int, norms: Sequence[str], cache: dict[str, dict[str, Any]]
) -> _SettingData:
    """Datasets of a registry setting and every norm's Graph-SVM, solved once per dataset."""
    from .reproduction import EXPERIMENTS
    from .reproduction.sources import load_datasets

    if name not in EXPERIMENTS:
        raise InvalidParameterError(
            f"unknown setting {name!r} for the bias table; choose from {', '.join(EXPERIMENTS)} "
            "(see `attnmech experiments`)"
        )
    setting = EXPERIMENTS[name]
    datasets = load_datasets(setting.data, trials)
    theories: list[Theory] = []
    per_norm: dict[str, list[np.ndarray]] = {n: [] for n in norms}
    info: dict[str, dict[str, Any]] = {
        n: {"unique": [], "tie_break": [], "max_violation": [], "solve_time_s": []} for n in norms
    }
    for ds in datasets:
        entry = cache.setdefault(ds.fingerprint(), {})
        if "theory" not in entry:
            entry["theory"] = solve(ds)
        theory = entry["theory"]
        theories.append(theory)
        for norm in norms:
            if norm not in entry:
                entry[norm] = (
                    theory.svm
                    if norm == "fro"
                    else solve_norm_svm(theory.graphs, ds.embeddings, norm)
                )
            res = entry[norm]
            per_norm[norm].append(np.asarray(res.W_svm, dtype=np.float64))
            info[norm]["unique"].append(getattr(res, "unique", True))
            info[norm]["tie_break"].append(getattr(res, "tie_break", None))
            info[norm]["max_violation"].append(float(res.max_violation))
            info[norm]["solve_time_s"].append(float(res.solver_stats.solve_time))
    cyclic = any(t.finite.dimension > 0 for t in theories)
    return _SettingData(
        name,
        datasets,
        theories,
        {n: np.stack(v) for n, v in per_norm.items()},
        info,
        setting.head,
        setting.loss,
        cyclic,
    )


# ---------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True, eq=False)
class BiasRun:
    """One optimiser on one setting, all trials.

    Attributes
    ----------
    setting : str
    optimizer : BiasOptimizer
    num_steps : int
    cos, dist, rel_dist, excess : dict of norm to ndarray of shape (trials,)
        Final ``W`` against each norm's Graph-SVM (see the module docstring).
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
        Training wall time.
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

    def best_norm(self, norms: Sequence[str]) -> str:
        """The column with the largest mean cosine."""
        means = [_nanmean(self.cos[n]) for n in norms]
        return norms[int(np.nanargmax(np.where(np.isnan(means), -np.inf, means)))]


@dataclass(frozen=True, slots=True, eq=False)
class BiasTable:
    """The outcome of :func:`bias_table`.

    Attributes
    ----------
    runs : list of BiasRun
        One per (setting, optimiser), setting-major.
    settings : tuple of str
    norms : tuple of str
    trials : int
    svm_info : dict
        Per setting and norm: uniqueness, tie-break, violation and time of each solve.
    cyclic : dict of str to bool
        Whether each setting's data has cycles (a non-trivial finite part).
    wall_s, cpu_s : float
        Wall and process CPU time of the whole call.
    files : dict of str to Path
        What :func:`write_bias_table` wrote (empty when no folder was given).
    """

    runs: list[BiasRun]
    settings: tuple[str, ...]
    norms: tuple[str, ...]
    trials: int
    svm_info: dict[str, dict[str, dict[str, Any]]]
    cyclic: dict[str, bool]
    wall_s: float
    cpu_s: float
    files: dict[str, Path] = field(default_factory=dict)

    def run(self, setting: str, label: str) -> BiasRun:
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
            cos = {n: _nanmean(r.cos[n]) for n in self.norms}
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
                    "own_rel_dist": _nanmean(r.rel_dist[own]),
                    "best_excess": _argbest(r.excess, self.norms),
                    "own_excess": _nanmean(r.excess[own]),
                    "holds": r.best_norm(self.norms) == own,
                }
            )
        return out


def _argbest(values: Mapping[str, np.ndarray], norms: Sequence[str]) -> str | None:
    """The norm with the smallest finite mean (None when none is finite)."""
    means = {n: _nanmean(values[n]) for n in norms}
    finite = {n: m for n, m in means.items() if np.isfinite(m)}
    return min(finite, key=finite.__getitem__) if finite else None


# ---------------------------------------------------------------------------------- the table
def bias_table(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    settings: Sequence[str] = DEFAULT_SETTINGS,
    trials: int = 10,
    steps: int | None = None,
    optimizers: Sequence[BiasOptimizer | str] | None = None,
    norms: Sequence[str] = BIAS_NORMS,
    log_points: int = 200,
    figures: bool = True,
    progress: Callable[[str], Any] | None = None,
    resume: bool = False,
) -> BiasTable:
    """Train every optimiser on each setting and compare the final ``W`` with every Graph-SVM.

    Parameters
    ----------
    out_dir : path, optional
        Write ``results.json``, ``TABLE.md``, ``heatmap.png`` and ``rates_<setting>.png`` there
        (see :func:`write_bias_table`).
    settings : sequence of str, default=DEFAULT_SETTINGS
        Names of the experiments registry (``attnmech experiments``); their data, head and loss.
    trials : int, default=10
        Datasets per setting (the registry's seeds: trial ``b`` draws with seed ``b``); one
        initialisation each (uniform, seed 0, as the paper's experiments).
    steps : int, optional
        Steps for every optimiser (default: each one's ``num_steps``; at least 10).
    optimizers : sequence of BiasOptimizer or str, optional
        The rows (default :data:`BIAS_OPTIMIZERS`); a string picks the default row of that label.
    norms : sequence of str, default=BIAS_NORMS
        The columns; every optimiser's own norm is added if missing.
    log_points : int, default=200
        About how many steps of each trajectory are measured (for the rates).
    figures : bool, default=True
        Draw the figures (needs matplotlib) when writing.
    progress : callable, optional
        ``progress(message)`` after each run (the CLI prints it to stderr).
    resume : bool, default=False
        With ``out_dir``: reuse the finished runs saved in ``out_dir/runs/`` (each run is saved
        there, atomically, as soon as it ends) when their setting, trials, optimiser, steps,
        norms and ``log_points`` match; the others are trained again.

    Returns
    -------
    BiasTable

    Raises
    ------
    InvalidParameterError
        Unknown setting, optimiser label or norm; ``trials < 1``; ``steps < 10``.
    CheckpointError
        With ``resume``: a saved run file that cannot be read (delete it).
    """
    from ..layer.model import AttentionConfig
    from ..layer.training import TrainConfig, train

    started, cpu_started = time.perf_counter(), time.process_time()
    rows = _resolve_optimizers(optimizers)
    check_params({"trials": trials, "steps": steps}, BIAS_TABLE_PARAMS, where="bias_table")
    if isinstance(settings, str):
        settings = [s for s in settings.split(",") if s]
    if not settings:
        raise InvalidParameterError("the bias table needs at least one setting")
    if isinstance(log_points, bool) or not isinstance(log_points, int) or log_points < 10:
        raise InvalidParameterError(f"log_points must be an integer >= 10, got {log_points!r}")
    column_names = [parse_norm(n).name for n in norms]
    for row in rows:
        if row.expected_norm not in column_names:
            column_names.append(row.expected_norm)
    columns = tuple(dict.fromkeys(column_names))

    _check_settings(settings)
    if out_dir is not None:
        _make_folder(Path(out_dir) / "runs")  # fail before any work, not after
    cache: dict[str, dict[str, Any]] = {}
    runs: list[BiasRun] = []
    svm_info: dict[str, dict[str, dict[str, Any]]] = {}
    cyclic: dict[str, bool] = {}
    for name in settings:
        _check_memory(name, trials, log_points)
        data = _solve_setting(name, trials, columns, cache)
        svm_info[name] = data.svm_info
        cyclic[name] = data.cyclic
        if progress is not None:
            progress(f"{name}: {trials} datasets, Graph-SVMs of {len(columns)} norms solved")
        for row in rows:
            num_steps = steps if steps is not None else row.num_steps
            options = dict(row.options)
            if row.optimizer == "polyak" and "lower_bound" not in options:
                options["lower_bound"] = [float(t.finite.loss) for t in data.theories]
            config = TrainConfig(
                model=AttentionConfig(
                    head=data.head, loss=data.loss, parameterization=row.parameterization
                ),
                optimizer=row.optimizer,
                learning_rate=row.learning_rate,
                steps=num_steps,
                log_every=max(1, num_steps // max(1, log_points)),
                optimizer_options=options,
                num_threads=1,
            )
            run_path = None if out_dir is None else _run_path(Path(out_dir), name, row)
            key = _run_key(name, trials, row, num_steps, columns, log_points)
            saved = _load_run(run_path, key) if resume and run_path is not None else None
            if saved is not None:
                runs.append(saved)
                if progress is not None:
                    progress(f"{name}: {row.label:<22} reused {run_path}")
                continue
            result = train(data.datasets, config, record_W=True)
            runs.append(_measure(data, row, result, columns))
            if run_path is not None:
                _save_run(run_path, key, runs[-1])
            if progress is not None:
                progress(
                    f"{name}: {row.label:<22} {num_steps} steps, {result.elapsed_s:.1f} s, "
                    f"cos with own ({row.expected_norm}) "
                    f"{_nanmean(runs[-1].cos[row.expected_norm]):.4f}"
                )
    table = BiasTable(
        runs,
        tuple(settings),
        columns,
        trials,
        svm_info,
        cyclic,
        time.perf_counter() - started,
        time.process_time() - cpu_started,
    )
    if out_dir is not None:
        files = write_bias_table(table, out_dir, figures=figures)
        table.files.update(files)
    return table


def _check_settings(settings: Sequence[str]) -> None:
    """Every name is a registry setting with the theory's head and loss (iden, log-loss)."""
    from .reproduction import EXPERIMENTS

    for name in settings:
        if name not in EXPERIMENTS:
            raise InvalidParameterError(
                f"unknown setting {name!r} for the bias table; choose from "
                f"{', '.join(EXPERIMENTS)} (see `attnmech experiments`)"
            )
        setting = EXPERIMENTS[name]
        if setting.head != "iden" or setting.loss not in ("log", "ce"):
            raise InvalidParameterError(
                f"setting {name!r} trains the {setting.head!r} head with the {setting.loss!r} "
                "loss; the bias table measures against the Graph-SVMs of the iden head's "
                "log-loss (docs/theory.md#the-theorem): choose a global setting such as "
                "acyclic-4-6-8-8"
            )


MAX_HISTORY_BYTES = 1 << 30  # largest recorded W trajectory (L x trials x d x d float64)


def _check_memory(name: str, trials: int, log_points: int) -> None:
    """Refuse a run whose recorded ``W(t)`` would not fit in :data:`MAX_HISTORY_BYTES`."""
    from .reproduction import EXPERIMENTS

    setting = EXPERIMENTS.get(name)
    if setting is None:
        return  # reported with the list of settings by _solve_setting
    d = setting.data.embedding_dim
    need = 8 * (log_points + 2) * trials * d * d
    if need > MAX_HISTORY_BYTES:
        raise InvalidParameterError(
            f"the bias table of {name!r} would record {need / 2**30:.1f} GiB of W(t) "
            f"({log_points} steps x {trials} trials x {d} x {d}); lower log_points or trials"
        )


def _resolve_optimizers(optimizers: Sequence[BiasOptimizer | str] | None) -> list[BiasOptimizer]:
    if optimizers is None:
        return list(BIAS_OPTIMIZERS)
    if isinstance(optimizers, str):
        optimizers = [o for o in optimizers.split(",") if o]
    by_label = {o.label: o for o in BIAS_OPTIMIZERS}
    rows = []
    for item in optimizers:
        if isinstance(item, BiasOptimizer):
            rows.append(item)
        elif isinstance(item, str) and item.strip() in by_label:
            rows.append(by_label[item.strip()])
        else:
            raise InvalidParameterError(
                f"unknown bias-table optimizer {item!r}; use a BiasOptimizer or one of "
                f"{', '.join(repr(o.label) for o in BIAS_OPTIMIZERS)}"
            )
    labels = [r.label for r in rows]
    if not rows or len(set(labels)) != len(labels):
        raise InvalidParameterError(f"bias-table optimizers need distinct labels, got {labels}")
    return rows


def _measure(
    data: _SettingData, row: BiasOptimizer, result: Any, columns: Sequence[str]
) -> BiasRun:
    W_hist = np.asarray(result.history["W"], dtype=np.float64)  # (L, B, d, d)
    steps = np.asarray(result.history["step"], dtype=np.int64)
    W = W_hist[-1]  # (B, d, d)
    B = W.shape[0]
    margins = [
        margin_of(W[b], data.theories[b].graphs, data.datasets[b].embeddings) for b in range(B)
    ]
    cos, dist, rel, excess = {}, {}, {}, {}
    for norm in columns:
        V = data.svms[norm]
        cos[norm] = np.array([float(_cosine(W[b], V[b])) for b in range(B)])
        dist[norm], rel[norm], excess[norm] = (np.full(B, np.nan) for _ in range(3))
        for b, margin in enumerate(margins):
            size = float(norm_of(V[b], norm))
            if margin > 0 and math.isfinite(margin) and size > 0:
                dist[norm][b] = float(norm_of(W[b] / margin - V[b], norm))
                rel[norm][b] = dist[norm][b] / size
                excess[norm][b] = float(norm_of(W[b] / margin, norm)) / size - 1.0
    own = row.expected_norm
    one_minus = np.stack(
        [1.0 - _cosine(W_hist[:, b], data.svms[own][b]) for b in range(B)], axis=1
    )  # (L, B)
    L_star = np.array([float(t.finite.loss) for t in data.theories])
    loss_gap = np.asarray(result.history["loss"], dtype=np.float64) - L_star[None, :]
    norm_curve = np.asarray(result.history["norm"], dtype=np.float64)
    fin_gap = np.zeros_like(norm_curve)
    for b, theory in enumerate(data.theories):
        basis = np.asarray(theory.finite.basis, dtype=np.float64)
        if basis.shape[0]:
            proj = project(W_hist[:, b], basis)  # (L, d, d)
            fin_gap[:, b] = np.linalg.norm(proj - theory.W_fin, axis=(-2, -1))
    slopes = {
        "one_minus_cos": np.array([loglog_slope(steps, one_minus[:, b]) for b in range(B)]),
        "loss_gap": np.array([loglog_slope(steps, loss_gap[:, b]) for b in range(B)]),
        "norm": np.array([loglog_slope(steps, norm_curve[:, b]) for b in range(B)]),
    }
    return BiasRun(
        data.name,
        row,
        int(result.num_steps),
        cos,
        dist,
        rel,
        excess,
        steps,
        one_minus,
        loss_gap,
        norm_curve,
        fin_gap,
        slopes,
        float(result.elapsed_s),
    )


# ---------------------------------------------------------------------------------- run files
_MEASURES = ("cos", "dist", "rel_dist", "excess", "slopes")
_CURVES = ("steps", "one_minus_cos", "loss_gap", "norm", "fin_gap")


def _make_folder(folder: Path) -> None:
    from ..errors import OutputError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the bias-table folder {folder}: {exc.strerror or exc}; choose a "
            "writable --out"
        ) from None


def _run_path(out: Path, setting: str, row: BiasOptimizer) -> Path:
    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in row.label)
    return out / "runs" / f"{setting}__{safe}.npz"


def _run_key(
    setting: str,
    trials: int,
    row: BiasOptimizer,
    num_steps: int,
    columns: Sequence[str],
    log_points: int,
) -> str:
    """What a saved run must match to be reused."""
    from .._version import __version__

    return json.dumps(
        {
            "setting": setting,
            "trials": trials,
            "optimizer": {**row.to_dict(), "num_steps": num_steps},
            "norms": list(columns),
            "log_points": log_points,
            "attnmech": __version__,
        },
        sort_keys=True,
    )


def _save_run(path: Path, key: str, run: BiasRun) -> None:
    from .. import _persist
    from ..errors import OutputError

    arrays: dict[str, Any] = {"key": np.array(key), "elapsed_s": np.array(run.elapsed_s)}
    arrays["num_steps"] = np.array(run.num_steps)
    for attr in _MEASURES:
        for name, values in getattr(run, attr).items():
            arrays[f"{attr}/{name}"] = np.asarray(values)
    for attr in _CURVES:
        arrays[attr] = np.asarray(getattr(run, attr))
    try:
        _persist.write(path, "bias-run", arrays, {"key": key})
    except OSError as exc:
        raise OutputError(
            f"cannot write the bias-table run file {path}: {exc.strerror or exc}; check that "
            "the folder is writable and has free space"
        ) from None


def _load_run(path: Path, key: str) -> BiasRun | None:
    """The run saved at ``path`` if it matches ``key`` (None when absent or another run's)."""
    from .. import _persist
    from ..errors import CheckpointError

    if not path.exists():
        return None
    arrays = _persist.read(  # checksum verified: an edited run file is refused
        path,
        "bias-run",
        what="bias-table run file",
        required=("key",),
        hint="delete it, or run without --resume",
        error=CheckpointError,
    ).arrays
    try:
        if str(arrays["key"]) != key:
            logger.info("%s belongs to another configuration; training again", path)
            return None
        meta = json.loads(key)
        row = BiasOptimizer(
            meta["optimizer"]["label"],
            meta["optimizer"]["optimizer"],
            meta["optimizer"]["learning_rate"],
            meta["optimizer"]["num_steps"],
            meta["optimizer"]["options"],
            meta["optimizer"]["parameterization"],
        )
        measures = {
            attr: {
                name.split("/", 1)[1]: values
                for name, values in arrays.items()
                if name.startswith(f"{attr}/")
            }
            for attr in _MEASURES
        }
        return BiasRun(
            meta["setting"],
            row,
            int(arrays["num_steps"]),
            measures["cos"],
            measures["dist"],
            measures["rel_dist"],
            measures["excess"],
            arrays["steps"],
            arrays["one_minus_cos"],
            arrays["loss_gap"],
            arrays["norm"],
            arrays["fin_gap"],
            measures["slopes"],
            float(arrays["elapsed_s"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"cannot read the bias-table run file {path} ({type(exc).__name__}: {exc}); delete "
            "it, or run without --resume",
            path=str(path),
        ) from None


# ---------------------------------------------------------------------------------- files
def write_bias_table(
    table: BiasTable, out_dir: str | os.PathLike[str], *, figures: bool = True
) -> dict[str, Path]:
    """Write ``results.json``, ``TABLE.md`` and (with ``figures``) ``heatmap.png`` and one
    ``rates_<setting>.png`` per setting into ``out_dir``, each atomically.

    Raises
    ------
    OutputError
        The folder or a file cannot be written.
    """
    from ..errors import OutputError

    out = Path(out_dir)
    _make_folder(out)
    files: dict[str, Path] = {}
    try:
        if figures:
            files["heatmap"] = _heatmap(table, out / "heatmap.png")
            for name in table.settings:
                files[f"rates_{name}"] = _rates_figure(table, name, out / f"rates_{name}.png")
        atomic_write_text(out / "results.json", json.dumps(_results_json(table), indent=1) + "\n")
        files["results"] = out / "results.json"
        atomic_write_text(out / "TABLE.md", _markdown(table, files))
        files["table"] = out / "TABLE.md"
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(
            f"cannot write the bias table into {out}: {exc.strerror or exc}; check that the "
            "folder is writable and has free space"
        ) from None
    return files


def _results_json(table: BiasTable) -> dict[str, Any]:
    runs = []
    for r in table.runs:
        runs.append(
            {
                "setting": r.setting,
                **r.optimizer.to_dict(),
                "num_steps": r.num_steps,
                "elapsed_s": r.elapsed_s,
                "cos": {n: _stats(v) for n, v in r.cos.items()},
                "dist": {n: _stats(v) for n, v in r.dist.items()},
                "rel_dist": {n: _stats(v) for n, v in r.rel_dist.items()},
                "excess": {n: _stats(v) for n, v in r.excess.items()},
                "margin_positive": int(np.isfinite(r.excess[table.norms[0]]).sum()),
                "best_norm": r.best_norm(table.norms),
                "final": {
                    "one_minus_cos_own": _stats(r.one_minus_cos[-1]),
                    "loss_gap": _stats(r.loss_gap[-1]),
                    "norm": _stats(r.norm[-1]),
                    "fin_gap": _stats(r.fin_gap[-1]),
                },
                "slopes_last_decade": {k: _stats(v) for k, v in r.slopes.items()},
                "curves_mean": {
                    "step": r.steps.tolist(),
                    "one_minus_cos_own": np.nanmean(r.one_minus_cos, axis=1).tolist(),
                    "loss_gap": np.nanmean(r.loss_gap, axis=1).tolist(),
                    "norm": np.nanmean(r.norm, axis=1).tolist(),
                    "fin_gap": np.nanmean(r.fin_gap, axis=1).tolist(),
                },
            }
        )
    verdicts = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
        for d in table.verdicts()
    ]
    return {
        "settings": list(table.settings),
        "norms": list(table.norms),
        "trials": table.trials,
        "cyclic": table.cyclic,
        "wall_s": table.wall_s,
        "cpu_s": table.cpu_s,
        "svm_info": table.svm_info,
        "runs": runs,
        "verdicts": verdicts,
    }


def _fmt(x: float, spec: str = ".4f") -> str:
    return "nan" if x is None or not math.isfinite(x) else format(x, spec)


def _markdown(table: BiasTable, files: Mapping[str, Path]) -> str:
    norms = table.norms
    lines = [
        "# Which optimiser finds which max-margin graph direction",
        "",
        f"Settings: {', '.join(table.settings)}; {table.trials} trials each (one dataset per "
        "trial, the experiments registry's seeds; uniform initialisation, seed 0). "
        f"Wall time {table.wall_s:.1f} s, process CPU time {table.cpu_s:.1f} s.",
        "",
        "`cos`: Frobenius cosine of the final W with each norm's Graph-SVM (mean over trials, "
        "min-max in brackets). `rel dist`: N(W / margin(W) - W_svm^N) / N(W_svm^N) in the "
        "column's norm N (0: W points exactly along W_svm^N). `excess`: N(W / margin(W)) / "
        "N(W_svm^N) - 1 (0: W / margin(W) is a minimiser of N, whichever point of a non-unique "
        "optimal face it is). The expected column (the "
        "optimiser's own geometry) is marked with `*`, the row's best value in bold.",
        "",
        "## Optimisers",
        "",
        "| optimiser | rule | options | parameterization | lr | steps | expected |",
        "|---|---|---|---|---|---|---|",
    ]
    seen = set()
    for r in table.runs:
        o = r.optimizer
        if o.label in seen:
            continue
        seen.add(o.label)
        lines.append(
            f"| {o.label} | `{o.optimizer}` | {json.dumps(dict(o.options)) if o.options else ''}"
            f" | {o.parameterization} | {o.learning_rate:g} | {r.num_steps} | `{o.expected_norm}` |"
        )
    lines.append("")
    lines.append(
        "`polyak` gets `lower_bound` = L* per trial (0 on acyclic data, the loss of W_fin on the "
        "reduced data when cyclic)."
    )
    verdicts = {(v["setting"], v["optimizer"]): v for v in table.verdicts()}
    for name in table.settings:
        kind = "cyclic" if table.cyclic[name] else "acyclic"
        lines += ["", f"## {name} ({kind})", ""]
        for what, attr, best_is_max in (
            ("cos", "cos", True),
            ("rel dist", "rel_dist", False),
            ("excess", "excess", False),
        ):
            lines += [
                f"**{what}**",
                "",
                "| optimiser | " + " | ".join(f"`{n}`" for n in norms) + " |",
                "|---|" + "---|" * len(norms),
            ]
            for r in (r for r in table.runs if r.setting == name):
                values = getattr(r, attr)
                means = [_nanmean(values[n]) for n in norms]
                finite = [m for m in means if math.isfinite(m)]
                best = (max if best_is_max else min)(finite) if finite else math.nan
                cells = []
                for n, m in zip(norms, means, strict=True):
                    arr = np.asarray(values[n])
                    arr = arr[np.isfinite(arr)]
                    text = _fmt(m)
                    if arr.size:
                        text += f" [{_fmt(arr.min())}-{_fmt(arr.max())}]"
                    if m == best:
                        text = f"**{text}**"
                    if n == r.optimizer.expected_norm:
                        text += " *"
                    cells.append(text)
                lines.append(f"| {r.optimizer.label} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["**Verdicts** (by the mean cosine):", ""]
        for r in (r for r in table.runs if r.setting == name):
            v = verdicts[(name, r.optimizer.label)]
            if v["holds"]:
                text = (
                    f"follows its own `{v['expected']}` Graph-SVM best: cos {_fmt(v['own_cos'])}, "
                    f"{_fmt(v['cos_margin'], '+.4f')} over the next column"
                )
            else:
                text = (
                    f"**prediction does not hold**: closest to `{v['best_cos']}` (cos "
                    f"{_fmt(v['best_other_cos'])}), its own `{v['expected']}` gives "
                    f"{_fmt(v['own_cos'])} ({_fmt(v['cos_margin'], '+.4f')})"
                )
            rel = (
                f"; smallest relative distance: `{v['best_rel_dist']}` (own "
                f"{_fmt(v['own_rel_dist'])}), smallest norm excess: `{v['best_excess']}` (own "
                f"{_fmt(v['own_excess'])})"
            )
            lines.append(f"- `{r.optimizer.label}`: {text}{rel}.")
        lines += [
            "",
            "**Rates** (mean over trials of the log-log slope over the last decade of steps; "
            "final values are means):",
            "",
            "| optimiser | 1 - cos(W, own) final | slope | L - L* final | slope | "
            "norm final | slope of norm | fin gap final |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in table.runs if r.setting == name):
            lines.append(
                f"| {r.optimizer.label} | {_fmt(_nanmean(r.one_minus_cos[-1]), '.2e')} | "
                f"{_fmt(_nanmean(r.slopes['one_minus_cos']), '.2f')} | "
                f"{_fmt(_nanmean(r.loss_gap[-1]), '.2e')} | "
                f"{_fmt(_nanmean(r.slopes['loss_gap']), '.2f')} | "
                f"{_fmt(_nanmean(r.norm[-1]), '.1f')} | "
                f"{_fmt(_nanmean(r.slopes['norm']), '.2f')} | "
                f"{_fmt(_nanmean(r.fin_gap[-1]), '.3f')} |"
            )
        if f"rates_{name}" in files:
            lines += ["", f"![rates {name}]({files[f'rates_{name}'].name})"]
    if "heatmap" in files:
        lines += ["", "## Heatmap", "", f"![heatmap]({files['heatmap'].name})"]
    lines += ["", "## Graph-SVM solves", ""]
    for name in table.settings:
        parts = []
        for n in norms:
            info = table.svm_info[name][n]
            not_unique = sum(1 for u in info["unique"] if u is False)
            viol = max(info["max_violation"], default=0.0)
            parts.append(
                f"`{n}` not unique {not_unique}/{len(info['unique'])}, violation <= {viol:.1e}"
            )
        lines.append(f"- {name}: " + "; ".join(parts) + ".")
    lines.append(
        "\nNon-unique minimisers are replaced by the face's least-Frobenius point "
        "(attnmech.theory.norms, tie_break='fro')."
    )
    return "\n".join(lines) + "\n"


def _heatmap(table: BiasTable, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from .report import save_figure

    norms = list(table.norms)
    n_set = len(table.settings)
    labels = list(dict.fromkeys(r.optimizer.label for r in table.runs))
    fig = Figure(
        figsize=(1.05 * len(norms) * n_set + 3.0, 0.42 * len(labels) + 1.4), layout="constrained"
    )
    axes = fig.subplots(1, n_set, squeeze=False)[0]
    for k, (ax, name) in enumerate(zip(axes, table.settings, strict=True)):
        mean = np.full((len(labels), len(norms)), np.nan)
        spread = np.full_like(mean, np.nan)
        expected = {}
        for r in (r for r in table.runs if r.setting == name):
            i = labels.index(r.optimizer.label)
            expected[i] = norms.index(r.optimizer.expected_norm)
            for j, n in enumerate(norms):
                arr = np.asarray(r.cos[n])
                arr = arr[np.isfinite(arr)]
                if arr.size:
                    mean[i, j], spread[i, j] = arr.mean(), arr.max() - arr.min()
        # colour by the gap to the row's best column, so each row's peak stands out
        gap = np.nanmax(mean, axis=1, keepdims=True) - mean
        image = ax.imshow(np.log10(gap + 1e-4), cmap="viridis_r", aspect="auto", vmin=-4, vmax=0)
        for i in range(len(labels)):
            for j in range(len(norms)):
                if np.isfinite(mean[i, j]):
                    weight = "bold" if expected.get(i) == j else "normal"
                    ax.text(
                        j,
                        i,
                        f"{mean[i, j]:.3f}\n±{spread[i, j] / 2:.3f}",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        fontweight=weight,
                        color="white" if gap[i, j] > 0.01 else "black",
                    )
        ax.set_xticks(range(len(norms)), norms, fontsize=8)
        ax.set_yticks(range(len(labels)), labels if k == 0 else [], fontsize=8)
        ax.set_title(f"{name}: cos(W, W_svm^N), mean ± half range", fontsize=9)
        ax.set_xlabel("Graph-SVM norm N (bold: expected)", fontsize=8)
    cbar = fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.01)
    cbar.set_label("log10(best in row - cos + 1e-4)", fontsize=8)
    save_figure(fig, path.with_suffix(""), formats=("png",), dpi=110)
    return path


def _rates_figure(table: BiasTable, name: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from .report import save_figure

    runs = [r for r in table.runs if r.setting == name]
    panels = [
        ("one_minus_cos", "1 - cos(W(t), W_svm^own)"),
        ("loss_gap", "L(W(t)) - L*"),
        ("norm", "||W(t)||_F"),
    ]
    if table.cyclic[name]:
        panels.append(("fin_gap", "||Proj_Sfin W(t) - W_fin||_F"))
    fig = Figure(figsize=(3.6 * len(panels) + 1.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels))
    cmap = matplotlib.colormaps["tab20"]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for k, r in enumerate(runs):
            curve = np.nanmean(getattr(r, key), axis=1)
            keep = (r.steps > 0) & np.isfinite(curve) & (curve > 0)
            style = "--" if r.optimizer.parameterization == "factorized" else "-"
            ax.loglog(
                r.steps[keep],
                curve[keep],
                style,
                color=cmap(k % 20),
                lw=1.2,
                label=r.optimizer.label,
            )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step t", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=7)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize=7)
    fig.suptitle(f"{name}: mean over {table.trials} trials", fontsize=10)
    save_figure(fig, path.with_suffix(""), formats=("png",), dpi=100)
    return path
