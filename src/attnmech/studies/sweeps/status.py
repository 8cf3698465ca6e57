"""Where a sweep stands: done, failed and pending tasks, an ETA, and the errors grouped.

Read from the sweep's folder alone (the manifest, the part files, the failure records and the
SQLite store's ``tasks`` table), so it works on a running sweep, a killed one and a finished one,
from another process or machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..scaffold import Report, fmt
from .store import SweepStore, sqlite_tasks

__all__ = ["SweepStatus", "sweep_status"]


@dataclass(frozen=True)
class SweepStatus:
    """A sweep folder's state.

    Attributes
    ----------
    name : str
    tasks, done, failed, pending : int
        Tasks in the sweep; stored; failed on every attempt; neither.
    cells : int
    rows : int
        Rows stored (done tasks).
    task_seconds : float or None
        Mean wall time of a finished task (from the SQLite store), if known.
    workers : int
        Workers of the last run.
    eta_s : float or None
        ``pending * task_seconds / workers``: the time the pending tasks still need.
    errors : list of (str, int, list of str)
        Each distinct error message, how many tasks failed with it, and their ids.
    """

    name: str
    tasks: int
    done: int
    failed: int
    pending: int
    cells: int
    rows: int
    task_seconds: float | None
    workers: int
    eta_s: float | None
    errors: list[tuple[str, int, list[str]]] = field(default_factory=list)

    def report(self) -> Report:
        """The status as a short Markdown report."""
        report = Report(f"Sweep {self.name}: status")
        report.table(
            ["tasks", "done", "failed", "pending", "rows", "s/task", "workers", "ETA s"],
            [
                [
                    self.tasks,
                    self.done,
                    self.failed,
                    self.pending,
                    self.rows,
                    self.task_seconds,
                    self.workers,
                    self.eta_s,
                ]
            ],
            digits=3,
        )
        if self.errors:
            report.heading("Errors")
            report.table(
                ["tasks", "error", "task ids"],
                [
                    [count, message, ", ".join(ids[:3]) + (" ..." if len(ids) > 3 else "")]
                    for message, count, ids in self.errors
                ],
            )
        return report

    def summary(self) -> str:
        """One line: ``done/tasks done, failed, pending, ETA``."""
        eta = "n/a" if self.eta_s is None else f"{fmt(self.eta_s, 3)} s"
        return (
            f"{self.name}: {self.done}/{self.tasks} tasks done, {self.failed} failed, "
            f"{self.pending} pending; ETA {eta}"
        )


def sweep_status(out_dir: str | os.PathLike[str]) -> SweepStatus:
    """The state of the sweep (or search) in ``out_dir``.

    Raises
    ------
    FileFormatError
        ``out_dir`` is not a sweep folder.
    """
    store = SweepStore(out_dir)
    manifest = store.manifest()
    done = store.done(verify=False)  # a view: the checks belong to --resume and load_results
    failed = {k: v for k, v in store.failed().items() if k not in done}
    total = int(manifest.get("tasks", len(done) + len(failed)))
    tasks = sqlite_tasks(Path(out_dir))
    seconds = [
        float(t["seconds"])
        for t in tasks.values()
        if t.get("status") in ("done", "complete", "pruned") and t.get("seconds") is not None
    ]
    rows = sum(int(t.get("rows") or 0) for k, t in tasks.items() if k in done)
    if not tasks:
        from .store import load_results

        try:
            rows = len(load_results(out_dir, prefer_parts=True))
        except Exception:
            rows = 0
    workers = max(1, int(manifest.get("workers", 1)))
    pending = max(total - len(done) - len(failed), 0)
    task_seconds = sum(seconds) / len(seconds) if seconds else None
    eta = (
        0.0
        if pending == 0
        else (None if task_seconds is None else pending * task_seconds / workers)
    )
    groups: dict[str, list[str]] = {}
    for task_id, record in sorted(failed.items()):
        kind = str(record.get("type") or "")
        message = f"{kind}: {record.get('error', '')}" if kind else str(record.get("error", ""))
        groups.setdefault(message, []).append(task_id)
    errors = sorted(((m, len(ids), ids) for m, ids in groups.items()), key=lambda e: (-e[1], e[0]))
    return SweepStatus(
        name=str(manifest.get("name", Path(out_dir).name)),
        tasks=total,
        done=len(done),
        failed=len(failed),
        pending=pending,
        cells=int(manifest.get("cells", 0)),
        rows=rows,
        task_seconds=task_seconds,
        workers=workers,
        eta_s=eta,
        errors=errors,
    )
