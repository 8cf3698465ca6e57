"""Run files of the bias table: each finished run saved under ``out_dir/runs/`` (for ``resume``)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .result import BiasRun
from .rows import BiasOptimizer

__all__ = ["load_run", "run_key", "run_path", "save_run"]

logger = logging.getLogger(__name__)

_MEASURES = ("cos", "dist", "rel_dist", "excess", "slopes")
_CURVES = ("steps", "one_minus_cos", "loss_gap", "norm", "fin_gap")


def run_path(out: Path, setting: str, row: BiasOptimizer) -> Path:
    """Where the run of ``row`` on ``setting`` is saved."""
    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in row.label)
    from ..._io import inside  # a symlinked runs/ leading out of the folder is refused

    return inside(out, "runs", f"{setting}__{safe}.npz", what="bias-table run file")


def run_key(
    setting: str,
    trials: int,
    row: BiasOptimizer,
    num_steps: int,
    columns: Sequence[str],
    log_points: int,
) -> str:
    """What a saved run must match to be reused."""
    from ..._version import __version__

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


def save_run(path: Path, key: str, run: BiasRun) -> None:
    """Save ``run`` (atomically) with the ``key`` it must match to be reused."""
    from ... import _persist
    from ...errors import OutputError

    arrays: dict[str, Any] = {"key": np.array(key), "elapsed_s": np.array(run.elapsed_s)}
    arrays["cpu_s"] = np.array(run.cpu_s)
    arrays["extra"] = np.array(json.dumps({"stalled": run.stalled, "search": run.search}))
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


def load_run(path: Path, key: str) -> BiasRun | None:
    """The run saved at ``path`` if it matches ``key`` (None when absent or another run's)."""
    from ... import _persist
    from ...errors import CheckpointError

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
        extra = json.loads(str(arrays["extra"])) if "extra" in arrays else {}
        row = BiasOptimizer.from_dict(meta["optimizer"])
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
            float(arrays["cpu_s"]) if "cpu_s" in arrays else math.nan,
            stalled=extra.get("stalled") or [],
            search=extra.get("search"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"cannot read the bias-table run file {path} ({type(exc).__name__}: {exc}); delete "
            "it, or run without --resume",
            path=str(path),
        ) from None
