"""Where a sweep's results live: one CSV file per finished task, written atomically.

Layout of the output folder::

    DIR/sweep.toml       the sweep file as given (``--resume`` refuses a changed one)
    DIR/manifest.json    the spec's digest, the columns, the number of cells and tasks
    DIR/parts/<id>.csv   the rows of one finished task (one row per cell x trial)
    DIR/results.csv      all rows, sorted by cell and trial (written when the sweep ends)

Why CSV and not Parquet: a sweep's table is small (one row per cell x trial, thousands to a few
hundred thousand rows of scalars), CSV needs nothing beyond the standard library (pyarrow stays
optional), any tool reads it, and floats are written with ``repr`` so they read back bit for
bit. Each part file is written to a temporary name and renamed, so a killed sweep leaves only
whole files: ``--resume`` skips the tasks whose part exists and loses at most the tasks that were
in flight. Nothing is held in memory beyond the tasks in flight.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_write_text
from ...errors import FileFormatError, InvalidParameterError, OutputError
from .grid import INTEGER_COLUMNS, NUMERIC_COLUMNS
from .spec import SweepSpec, available_metrics, metric_column

__all__ = ["SweepStore", "SweepTable", "load_results"]

MANIFEST = "manifest.json"
PARTS = "parts"
RESULTS = "results.csv"
FORMAT_VERSION = 1


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def rows_to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell_text(row.get(c)) for c in columns])
    return buffer.getvalue()


class SweepStore:
    """The output folder of one sweep."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.root = Path(out_dir)
        self.parts = self.root / PARTS

    def prepare(self, spec: SweepSpec, columns: list[str], *, resume: bool, counts: dict) -> None:
        """Create the folder (or check it belongs to this sweep when resuming)."""
        manifest_path = self.root / MANIFEST
        if manifest_path.exists():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise FileFormatError(
                    f"{manifest_path} is unreadable ({exc}); remove the folder or choose another "
                    "--out",
                    path=str(manifest_path),
                ) from None
            if not resume:
                raise InvalidParameterError(
                    f"{self.root} already holds a sweep; add --resume to continue it, or choose "
                    "another --out"
                )
            if manifest.get("digest") != spec.digest:
                raise InvalidParameterError(
                    f"{self.root} holds a sweep from a different sweep file "
                    f"({self.root / 'sweep.toml'}); resume with that file, or choose another --out"
                )
            return
        if self.root.exists() and any(self.root.iterdir()) and not resume:
            raise OutputError(
                f"{self.root} exists and is not empty; choose another --out or remove it"
            )
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.root / "sweep.toml", spec.source)
            manifest = {
                "format": FORMAT_VERSION,
                "name": spec.name,
                "digest": spec.digest,
                "columns": columns,
                **counts,
            }
            atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write the sweep folder {self.root}: {exc}") from None

    def done(self) -> set[str]:
        """Ids of the tasks whose rows are stored."""
        if not self.parts.is_dir():
            return set()
        return {p.stem for p in self.parts.glob("*.csv")}

    def write_part(self, task_id: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
        """Store one task's rows (atomically: a reader sees all of them or none)."""
        try:
            atomic_write_text(self.parts / f"{task_id}.csv", rows_to_csv(columns, rows))
        except OSError as exc:
            raise OutputError(f"cannot write results into {self.parts}: {exc}") from None

    def consolidate(self) -> Path:
        """Write ``results.csv``: every stored row, sorted by cell and trial."""
        table = load_results(self.root, prefer_parts=True)
        order = np.lexsort((table["trial"], table["cell"]))
        rows = [{c: table.columns[c][i] for c in table.names} for i in order]
        path = self.root / RESULTS
        try:
            atomic_write_text(path, rows_to_csv(table.names, rows))
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc}") from None
        return path


@dataclass(frozen=True)
class SweepTable:
    """A sweep's results: one row per cell x trial.

    Attributes
    ----------
    names : list of str
        Column names in order.
    columns : dict of str to ndarray
        Sizes, seeds, cell and trial as int64, other numeric columns as float64 (NaN where
        empty), the others as object arrays of str.
    """

    names: list[str]
    columns: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise InvalidParameterError(
                f"the sweep table has no column {name!r}; columns: {', '.join(self.names)}"
            )
        return self.columns[name]

    def __len__(self) -> int:
        return 0 if not self.names else len(self.columns[self.names[0]])

    def where(self, mask: np.ndarray) -> SweepTable:
        """The rows where ``mask`` is true."""
        return SweepTable(self.names, {k: v[mask] for k, v in self.columns.items()})


def _numeric_names(names: list[str]) -> set[str]:
    metrics = {metric_column(m) for m in available_metrics()}
    return {n for n in names if n in NUMERIC_COLUMNS or n.split("@", 1)[0] in metrics}


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FileFormatError(f"cannot read sweep results {path}: {exc}", path=str(path)) from None
    if header is None:
        raise FileFormatError(f"sweep results {path} are empty", path=str(path))
    from .spec import RENAMED_METRICS

    header = [RENAMED_METRICS.get(name, name) for name in header]  # files of earlier releases
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise FileFormatError(
                f"sweep results {path}: row {i + 2} has {len(row)} fields, the header "
                f"{len(header)}; the file is corrupt (delete it and rerun with --resume)",
                path=str(path),
            )
    return header, rows


def load_results(out_dir: str | os.PathLike[str], *, prefer_parts: bool = False) -> SweepTable:
    """Read a sweep's table from its folder (``results.csv``, or the part files of a sweep
    that is still running or was killed).

    Raises
    ------
    FileFormatError
        If the folder holds no sweep results, or a file is corrupt.
    """
    root = Path(out_dir)
    results = root / RESULTS
    parts = sorted((root / PARTS).glob("*.csv")) if (root / PARTS).is_dir() else []
    if results.exists() and not prefer_parts:
        files = [results]
    elif parts:
        files = parts
    elif results.exists():
        files = [results]
    else:
        raise FileFormatError(
            f"{root} holds no sweep results (no {RESULTS} and no {PARTS}/*.csv); run "
            "'attnmech sweep FILE --out DIR' first",
            path=str(root),
        )
    names: list[str] | None = None
    raw: list[list[str]] = []
    for path in files:
        header, rows = _read_csv(path)
        if names is None:
            names = header
        elif header != names:
            raise FileFormatError(
                f"{path} has other columns than {files[0]}; the folder mixes two sweeps",
                path=str(path),
            )
        raw.extend(rows)
    assert names is not None
    numeric = _numeric_names(names)
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        values = [row[j] for row in raw]
        if name in INTEGER_COLUMNS:  # exact (seeds need all 63 bits)
            try:
                columns[name] = np.array([int(v) for v in values], dtype=np.int64)
            except ValueError:
                raise FileFormatError(
                    f"sweep results in {root}: column {name!r} holds a non-integer; the files "
                    "are corrupt (delete the bad part and rerun with --resume)",
                    path=str(root),
                ) from None
        elif name in numeric:
            columns[name] = np.array(
                [float(v) if v != "" else math.nan for v in values], dtype=np.float64
            )
        else:
            columns[name] = np.array(values, dtype=object)
    return SweepTable(list(names), columns)
