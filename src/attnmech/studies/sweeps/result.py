"""The result of a sweep run: counts, timing and the config, with a per-cell report.

The rows themselves stay in the sweep's folder (:func:`~attnmech.studies.sweeps.load_results`);
:class:`SweepResult` is what :func:`~attnmech.studies.sweeps.run` returns and writes beside them
(``results.json``, ``REPORT.md``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...errors import AttnmechError, FileFormatError
from ..scaffold import Report, StudyResult, fmt
from .spec import DATASET_PARAMS, TRAIN_PARAMS, SweepSpec

__all__ = ["SweepResult"]


@dataclass(frozen=True)
class SweepResult(StudyResult):
    """What a sweep run did (its table is in ``out_dir``: :func:`load_results`).

    Attributes
    ----------
    out_dir, results_path : Path
    cells, tasks, tasks_skipped, rows : int
        Cells in the sweep, tasks in total, tasks found already done (``resume``), rows written
        by this call.
    wall_time_s : float
    backend : str
    workers : int
    failed : int
        Tasks that failed on every attempt (their errors: ``attnmech sweep-status``).
    config : SweepSpec or None
    """

    study: ClassVar[str] = "sweep"
    report_name: ClassVar[str] = "REPORT.md"

    out_dir: Path
    results_path: Path
    cells: int
    tasks: int
    tasks_skipped: int
    rows: int
    wall_time_s: float
    backend: str
    workers: int
    failed: int = 0
    config: SweepSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """Counts, timing and the config (the rows stay in the folder's CSV/SQLite)."""
        return {
            "config": None if self.config is None else self.config.to_dict(),
            "out_dir": os.fspath(self.out_dir),
            "results_path": os.fspath(self.results_path),
            **{
                k: getattr(self, k)
                for k in (
                    "cells",
                    "tasks",
                    "tasks_skipped",
                    "rows",
                    "wall_time_s",
                    "backend",
                    "workers",
                    "failed",
                )
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepResult:
        """The result whose :meth:`to_dict` is ``data``."""
        try:
            config = data.get("config")
            return cls(
                out_dir=Path(data["out_dir"]),
                results_path=Path(data["results_path"]),
                cells=int(data["cells"]),
                tasks=int(data["tasks"]),
                tasks_skipped=int(data["tasks_skipped"]),
                rows=int(data["rows"]),
                wall_time_s=float(data["wall_time_s"]),
                backend=str(data["backend"]),
                workers=int(data["workers"]),
                failed=int(data.get("failed", 0)),
                config=None if config is None else SweepSpec.from_dict(dict(config)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(f"not a sweep result: {exc}") from None

    def table(self) -> Any:
        """The sweep's rows (:func:`load_results` of :attr:`out_dir`)."""
        from .store import load_results

        return load_results(self.out_dir)

    def report(self) -> Report:
        """Per grid and cell: the mean of every metric over the trials, with its range."""
        name = self.config.name if self.config is not None else "sweep"
        report = Report(f"Sweep {name}")
        report.paragraph(
            f"{fmt(self.cells)} cells in {fmt(self.tasks)} tasks ({fmt(self.tasks_skipped)} "
            f"already stored, {fmt(self.failed)} failed); {fmt(self.rows)} rows written in "
            f"{fmt(self.wall_time_s, 3)} s on {fmt(self.workers)} {self.backend} worker(s)."
        )
        try:
            table = self.table()
        except AttnmechError:
            return report.paragraph("No rows are stored yet.")
        _cell_table(report, table)
        return report

    def write_extra(self, out_dir: Path) -> list[Path]:
        """Nothing beyond results.json and the report: the rows are already in ``out_dir``."""
        return []


def _cell_table(report: Report, table: Any) -> None:
    from ..._summary import summary_stats
    from .grid import INTEGER_COLUMNS

    params = [p for p in (*DATASET_PARAMS, *TRAIN_PARAMS) if p in table.names]
    varying = [p for p in params if len(set(table[p].tolist())) > 1]
    skip = INTEGER_COLUMNS | {"fingerprint", "warning", "error", "grid", "train_time_s"}
    skip |= set(params)
    metrics = [
        c
        for c in table.names
        if c not in skip and table[c].dtype != object and not c.endswith("time_s")
    ]
    if not metrics:
        return
    cells = sorted(set(table["cell"].tolist()))
    rows = []
    for cell in cells:
        mask = table["cell"] == cell
        i = int(np.flatnonzero(mask)[0])
        row: list[Any] = [cell, table["grid"][i], *(table[p][i] for p in varying), int(mask.sum())]
        for m in metrics:
            stats = summary_stats(table[m][mask])
            row.append(stats["mean"])
        rows.append(row)
    report.heading("Cells (mean over trials)")
    report.table(["cell", "grid", *varying, "trials", *metrics], rows)
