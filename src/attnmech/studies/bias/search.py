"""Choosing each row's learning rate (and decay exponent) by a small grid search on held-out data.

For a row, the grid is ``learning_rate * s`` for ``s`` in ``BiasConfig.search_scales`` and, for an
inverse-power schedule, the exponent ``a`` in ``BiasConfig.search_powers`` (``t0`` kept). Every
candidate trains on ``search_trials`` held-out datasets of the setting (the registry's generator
with seeds ``HELD_OUT_OFFSET + k``, disjoint from the table's seeds ``0 .. trials - 1``) for the
row's number of steps (or ``search_steps``), and the candidate with the smallest mean final
training loss wins (ties: the first in grid order; a candidate with a non-finite loss is out).
The criterion is the optimisation objective itself, not a cosine, so the search cannot favour the
predicted column.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_write_text
from .rows import BiasOptimizer

__all__ = ["HELD_OUT_OFFSET", "candidates", "search_row"]

HELD_OUT_OFFSET = 10_000
"""Held-out datasets use the registry's generator with seeds ``HELD_OUT_OFFSET + k``."""


def candidates(
    row: BiasOptimizer, scales: tuple[float, ...], powers: tuple[float, ...]
) -> list[BiasOptimizer]:
    """The grid of ``row``: every scale of its learning rate, times every exponent of an
    inverse-power schedule (other schedules are kept)."""
    from ...layer.schedules import parse_schedule

    schedule = parse_schedule(row.schedule)
    if schedule.name == "inverse-power":
        specs = [
            parse_schedule({"name": "inverse-power", "a": a, "t0": schedule.options["t0"]}).spec()
            for a in powers
        ]
    else:
        specs = [row.schedule]
    return [
        row.replace(learning_rate=float(row.learning_rate * s), schedule=spec)
        for spec in specs
        for s in scales
    ]


def search_row(
    setting: str,
    row: BiasOptimizer,
    num_steps: int,
    *,
    trials: int,
    scales: tuple[float, ...],
    powers: tuple[float, ...],
    cache_path: Path | None = None,
) -> tuple[BiasOptimizer, dict[str, Any]]:
    """The row with the grid's best learning rate and schedule, and the search's record.

    The record holds the grid (each candidate's learning rate, schedule, per-dataset final loss
    and mean), the chosen candidate, the held-out seeds and the criterion. With ``cache_path`` a
    record of the same search saved there is reused, and a new one is saved.
    """
    from ...layer.model import AttentionConfig
    from ...layer.training import TrainConfig, train
    from ..reproduction import EXPERIMENTS
    from ..reproduction.sources import load_datasets

    spec = EXPERIMENTS[setting]
    key = json.dumps(
        {
            "setting": setting,
            "row": row.to_dict(),
            "steps": num_steps,
            "trials": trials,
            "scales": list(scales),
            "powers": list(powers),
        },
        sort_keys=True,
    )
    if cache_path is not None and cache_path.exists():
        try:
            saved = json.loads(cache_path.read_text())
            if saved.get("key") == key:
                record = dict(saved["record"], reused=True)
                return row.replace(**record["chosen"]), record
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: search again
    data = replace(spec.data, seed_offset=spec.data.seed_offset + HELD_OUT_OFFSET)
    datasets = load_datasets(data, trials)
    grid = []
    best: tuple[float, int] | None = None
    for index, candidate in enumerate(candidates(row, scales, powers)):
        config = TrainConfig(
            model=AttentionConfig(
                head=spec.head,
                loss=candidate.loss or spec.loss,
                parameterization=candidate.parameterization,
            ),
            optimizer=candidate.optimizer,
            learning_rate=candidate.learning_rate,
            steps=num_steps,
            log_every=0,
            optimizer_options=dict(candidate.options),
            num_threads=1,
            schedule=candidate.schedule,
        )
        final = np.asarray(train(datasets, config).history["loss"][-1], dtype=np.float64)
        mean = float(final.mean()) if np.all(np.isfinite(final)) else math.nan
        grid.append(
            {
                "learning_rate": candidate.learning_rate,
                "schedule": candidate.schedule,
                "final_loss": [float(v) for v in final],
                "mean_final_loss": None if math.isnan(mean) else mean,
            }
        )
        if not math.isnan(mean) and (best is None or mean < best[0]):
            best = (mean, index)
    chosen_index = best[1] if best is not None else 0
    chosen = {
        "learning_rate": grid[chosen_index]["learning_rate"],
        "schedule": grid[chosen_index]["schedule"],
    }
    record = {
        "grid": grid,
        "chosen": chosen,
        "held_out_seeds": [data.seed_offset + k for k in range(trials)],
        "steps": num_steps,
        "criterion": "smallest mean final training loss on the held-out datasets",
    }
    if cache_path is not None:
        atomic_write_text(cache_path, json.dumps({"key": key, "record": record}) + "\n")
    return row.replace(**chosen), record
