"""Measuring a run against every norm's Graph-SVM: the settings' data and solves, the cosines,
distances and norm excesses of the final ``W``, and the rates along the trajectory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...data.dataset import Dataset
from ...errors import InvalidParameterError
from ...theory.finite import project
from ...theory.norms import margin_of, norm_of, solve_norm_svm
from ...theory.solve import Theory, solve
from .curves import cosine, loglog_slope
from .result import BiasRun
from .rows import BiasOptimizer

__all__ = ["SettingData", "check_settings", "measure_run", "solve_setting"]


@dataclass(frozen=True, slots=True)
class SettingData:
    """One setting's datasets, Frobenius theories and per-norm Graph-SVMs, with its head,
    loss and whether its data is cyclic."""
    name: str
    datasets: list[Dataset]
    theories: list[Theory]  # Frobenius theory: graphs, W_fin, L*
    svms: dict[str, np.ndarray]  # norm -> (B, d, d)
    svm_info: dict[str, dict[str, Any]]
    head: str
    loss: str
    cyclic: bool


def solve_setting(
    name: str, trials: int, norms: Sequence[str], cache: dict[str, dict[str, Any]]
) -> SettingData:
    """Datasets of a registry setting and every norm's Graph-SVM, solved once per dataset."""
    from ..reproduction import EXPERIMENTS
    from ..reproduction.sources import load_datasets

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
    return SettingData(
        name,
        datasets,
        theories,
        {n: np.stack(v) for n, v in per_norm.items()},
        info,
        setting.head,
        setting.loss,
        cyclic,
    )


def check_settings(settings: Sequence[str]) -> None:
    """Every name is a registry setting with the theory's head and loss (iden, log-loss)."""
    from ..reproduction import EXPERIMENTS

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


def check_memory(name: str, trials: int, log_points: int) -> None:
    """Refuse a run whose recorded ``W(t)`` would not fit in :data:`MAX_HISTORY_BYTES`."""
    from ..reproduction import EXPERIMENTS

    setting = EXPERIMENTS.get(name)
    if setting is None:
        return  # reported with the list of settings by solve_setting
    d = setting.data.embedding_dim
    need = 8 * (log_points + 2) * trials * d * d
    if need > MAX_HISTORY_BYTES:
        raise InvalidParameterError(
            f"the bias table of {name!r} would record {need / 2**30:.1f} GiB of W(t) "
            f"({log_points} steps x {trials} trials x {d} x {d}); lower log_points or trials"
        )


def measure_run(
    data: SettingData,
    row: BiasOptimizer,
    result: Any,
    columns: Sequence[str],
    cpu_s: float = math.nan,
) -> BiasRun:
    """The final ``W`` of each trial against every column's Graph-SVM, and the rates.

    ``result`` is a :class:`~attnmech.layer.training.TrainResult` trained with ``record_W=True``.
    """
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
        cos[norm] = np.array([float(cosine(W[b], V[b])) for b in range(B)])
        dist[norm], rel[norm], excess[norm] = (np.full(B, np.nan) for _ in range(3))
        for b, margin in enumerate(margins):
            size = float(norm_of(V[b], norm))
            if margin > 0 and math.isfinite(margin) and size > 0:
                dist[norm][b] = float(norm_of(W[b] / margin - V[b], norm))
                rel[norm][b] = dist[norm][b] / size
                excess[norm][b] = float(norm_of(W[b] / margin, norm)) / size - 1.0
    own = row.expected_norm
    one_minus = np.stack(
        [1.0 - cosine(W_hist[:, b], data.svms[own][b]) for b in range(B)], axis=1
    )  # (L, B)
    log_loss = (row.loss or data.loss) in ("log", "ce")
    # L*: the reduced loss at W_fin for the log-loss; the exponential loss has infimum 0 on
    # acyclic data and no computed infimum on cyclic data (NaN)
    L_star = np.array(
        [
            float(t.finite.loss) if log_loss else (0.0 if t.finite.dimension == 0 else np.nan)
            for t in data.theories
        ]
    )
    loss_curve = np.asarray(result.history["loss"], dtype=np.float64)
    loss_gap = loss_curve - L_star[None, :]
    norm_curve = np.asarray(result.history["norm"], dtype=np.float64)
    fin_gap = np.zeros_like(norm_curve)
    for b, theory in enumerate(data.theories):
        basis = np.asarray(theory.finite.basis, dtype=np.float64)
        if basis.shape[0] and not log_loss:
            fin_gap[:, b] = np.nan  # W_fin is the log-loss's finite part
        elif basis.shape[0]:
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
        float(cpu_s),
        stalled=stall_reasons(W_hist, loss_curve, np.asarray(result.history["grad_norm"])),
    )


def stall_reasons(W_hist: np.ndarray, loss: np.ndarray, grad_norm: np.ndarray) -> list[str | None]:
    """Per trial: why ``W`` did not change between the last two logged steps (None: it moved).

    ``W_hist`` is (L, B, d, d), ``loss`` and ``grad_norm`` (L, B) (the gradient norm rescaled, so
    it is 0 only when every entry of the float64 gradient is 0).
    """
    out: list[str | None] = []
    for b in range(W_hist.shape[1]):
        if not np.all(np.isfinite(W_hist[-1, b])):
            out.append("W is not finite: the run diverged (the step is too large for this loss)")
        elif W_hist.shape[0] < 2 or np.any(W_hist[-1, b] != W_hist[-2, b]):
            out.append(None)
        elif loss[-1, b] == 0:
            out.append(
                "the float64 loss is exactly 0 (every margin beyond about 745): the gradient "
                "is 0 and no rule can move W"
            )
        elif grad_norm[-1, b] == 0:
            out.append(
                f"every entry of the float64 gradient underflowed to 0 (loss {loss[-1, b]:.3g})"
            )
        else:
            out.append(
                f"the step is below W's float64 resolution (||grad|| {grad_norm[-1, b]:.3g}, "
                f"loss {loss[-1, b]:.3g})"
            )
    return out
