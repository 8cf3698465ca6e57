"""Where a sweep's results live: one CSV file per finished task, written atomically.

Layout of the output folder::

    DIR/sweep.toml       the sweep file as given (``--resume`` refuses a changed one)
    DIR/manifest.json    the spec's digest, the columns, the number of cells and tasks
    DIR/parts/<id>.csv   the rows of one finished task (one row per cell x trial)
    DIR/results.csv      all rows, sorted by cell and trial (written when the sweep ends)
    DIR/results.sqlite   the same rows (table ``results``, with a ``task_id`` column) and one row
                         per task (table ``tasks``: status, attempts, seconds, error), updated
                         after every task: query it with any SQLite client while the sweep runs
    DIR/failed/<id>.json a task that failed on every attempt: its error and units (``--resume``
                         runs it again)
    DIR/curves/<id>.npz  with ``curves``: every logged metric of every trial of one task

Why CSV and not Parquet: a sweep's table is small (one row per cell x trial, thousands to a few
hundred thousand rows of scalars), CSV needs nothing beyond the standard library (pyarrow stays
optional), any tool reads it, and floats are written with ``repr`` so they read back bit for
bit. Each part file is written to a temporary name and renamed, so a killed sweep leaves only
whole files: ``--resume`` skips the tasks whose part exists and loses at most the tasks that were
in flight. Nothing is held in memory beyond the tasks in flight.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_write_text, inside, read_text_bounded
from ...errors import FileFormatError, InvalidParameterError, OutputError
from .grid import INTEGER_COLUMNS, NUMERIC_COLUMNS
from .spec import SweepSpec, available_metrics, metric_column

__all__ = ["SweepStore", "SweepTable", "load_results"]

MANIFEST = "manifest.json"
PARTS = "parts"
LOCK = ".attnmech.lock"  # held by the running sweep: see attnmech._io.exclusive_lock
RESULTS = "results.csv"
SQLITE = "results.sqlite"
FAILED = "failed"
CURVES = "curves"
OLD_COLUMNS = {"svm_norm": "w_svm_fro_norm"}
"""Columns renamed since: a numeric ``svm_norm`` column of an older sweep is ||W_svm||_F."""
FORMAT_VERSION = 2
"""2: every part file starts with a line carrying its task, fingerprint and checksum (see
:func:`part_header`); folders of version 1 (parts without it) are still read."""
PART_TAG = "# attnmech-sweep-part-v1"


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
    """CSV text: a header of ``columns``, then one line per row (missing keys left empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell_text(row.get(c)) for c in columns])
    return buffer.getvalue()


def part_fingerprint(digest: str, task_id: str, units: Iterable[tuple[int, int]]) -> str:
    """What a part file was computed from: SHA-256 of the sweep's digest (its numbers' spec),
    the task id and the task's sorted (cell, trial) units."""
    payload = json.dumps([str(digest), str(task_id), sorted([int(c), int(t)] for c, t in units)])
    return hashlib.sha256(payload.encode()).hexdigest()


def part_header(digest: str, task_id: str, units: Iterable[tuple[int, int]], body: str) -> str:
    """The first line of a part file: ``# attnmech-sweep-part-v1 task=<id> fingerprint=<hex>
    sha256=<hex>`` (the checksum is SHA-256 of the CSV text after this line, in UTF-8)."""
    checksum = hashlib.sha256(body.encode("utf-8")).hexdigest()
    fingerprint = part_fingerprint(digest, task_id, units)
    return f"{PART_TAG} task={task_id} fingerprint={fingerprint} sha256={checksum}\n"


def _part_error(path: Path, reason: str) -> FileFormatError:
    return FileFormatError(
        f"sweep part file {path}: {reason}; delete it (the task runs again with --resume)",
        path=str(path),
    )


def check_part(
    path: Path, text: str, digest: str | None, *, legacy_ok: bool
) -> tuple[str, str]:
    """Split a part file's text into (header line, CSV body) and check the header: the tag, the
    task named by the file, the checksum of the body and (given the sweep's ``digest``) the
    fingerprint of the units found in the body.

    Raises
    ------
    FileFormatError
        Naming the file and what is wrong: no header (when ``legacy_ok`` is false), a copy or
        renamed file (another task's id), an edited body (checksum), or rows of another sweep
        or other units (fingerprint).
    """
    first, sep, body = text.partition("\n")
    first = first.rstrip("\r")
    if not first.startswith("# attnmech-sweep-part"):
        if legacy_ok:
            return "", text
        raise _part_error(
            path,
            "it carries no attnmech header line (task, fingerprint, checksum): it was not "
            "written by this sweep",
        )
    fields = dict(item.split("=", 1) for item in first.split()[2:] if "=" in item)
    if first.split()[1] != PART_TAG.split()[1] or not {"task", "fingerprint", "sha256"} <= set(
        fields
    ):
        raise _part_error(path, f"its header line is not one attnmech writes ({first[:80]!r})")
    if fields["task"] != path.stem:
        raise _part_error(
            path,
            f"it holds the rows of task {fields['task']} (a stray copy or a renamed file)",
        )
    # the text as written; on Windows the writer's text mode turned "\n" into "\r\n"
    if fields["sha256"] not in (
        hashlib.sha256(body.encode("utf-8")).hexdigest(),
        hashlib.sha256(body.replace("\r\n", "\n").encode("utf-8")).hexdigest(),
    ):
        raise _part_error(
            path,
            "its rows do not match its checksum (the file was edited or damaged after it was "
            "written)",
        )
    if digest is not None:
        units = _units_of(path, body)
        if part_fingerprint(digest, path.stem, units) != fields["fingerprint"]:
            raise _part_error(
                path,
                "its fingerprint does not match this sweep (a part of another sweep or of "
                "other trials)",
            )
    return first, body


def _units_of(path: Path, body: str) -> list[tuple[int, int]]:
    reader = csv.reader(io.StringIO(body))
    header = next(reader, None) or []
    if "cell" not in header or "trial" not in header:
        raise _part_error(path, "it has no cell and trial columns")
    c, t = header.index("cell"), header.index("trial")
    try:
        return [(int(row[c]), int(row[t])) for row in reader if row]
    except (ValueError, IndexError):
        raise _part_error(path, "a cell or trial entry is not an integer") from None


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
                manifest = json.loads(
                    read_text_bounded(manifest_path, max_bytes=1 << 20, what="sweep manifest")
                )
            except (OSError, ValueError, RecursionError, FileFormatError) as exc:
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
        if self.root.exists() and any(p.name != LOCK for p in self.root.iterdir()) and not resume:
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

    def done(self, *, verify: bool = True) -> set[str]:
        """Ids of the tasks whose rows are stored.

        With ``verify`` every part file is checked first (:func:`check_part`: its task, checksum
        and fingerprint, and no (cell, trial) in two files).

        Raises
        ------
        FileFormatError
            A stray, edited or duplicated part file (the message names it).
        """
        if not self.parts.is_dir():
            return set()
        inside(self.root, PARTS, what="parts folder")  # a symlinked parts/ leading out: refused
        paths = sorted(self.parts.glob("*.csv"))
        if verify:
            self.verify_parts(paths)
        return {p.stem for p in paths}

    def _digest_and_format(self) -> tuple[str | None, int]:
        try:
            manifest = self.manifest()
        except FileFormatError:
            return None, 1
        digest = manifest.get("digest")
        version = manifest.get("format", 1)
        return (
            digest if isinstance(digest, str) else None,
            version if isinstance(version, int) else 1,
        )

    def verify_parts(self, paths: Sequence[Path]) -> None:
        """Check every part file in ``paths`` (see :meth:`done`)."""
        digest, version = self._digest_and_format()
        seen: dict[tuple[int, int], Path] = {}
        for path in paths:
            inside(self.root, PARTS, path.name, what="sweep part file")
            text = _read_part_text(path)
            _, body = check_part(path, text, digest, legacy_ok=version < 2)
            for unit in _units_of(path, body):
                if unit in seen:
                    raise _part_error(
                        path,
                        f"it holds cell {unit[0]}, trial {unit[1]} like {seen[unit].name} "
                        "(a duplicated part)",
                    )
                seen[unit] = path

    def write_part(self, task_id: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
        """Store one task's rows (atomically: a reader sees all of them or none), after a
        header line with the task, its fingerprint and the rows' checksum (:func:`part_header`)."""
        body = rows_to_csv(columns, rows)
        digest, _ = self._digest_and_format()
        units = [(int(r["cell"]), int(r["trial"])) for r in rows]
        text = part_header(digest or "", task_id, units, body) + body
        try:
            atomic_write_text(self.parts / f"{task_id}.csv", text)
        except OSError as exc:
            raise OutputError(f"cannot write results into {self.parts}: {exc}") from None

    def failed(self) -> dict[str, dict[str, Any]]:
        """The failure records of the tasks that failed on every attempt, by task id."""
        out: dict[str, dict[str, Any]] = {}
        folder = self.root / FAILED
        if not folder.is_dir():
            return out
        for path in sorted(folder.glob("*.json")):
            try:
                out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                out[path.stem] = {"task_id": path.stem, "error": f"unreadable record {path}"}
        return out

    def write_failure(self, task_id: str, record: dict[str, Any]) -> None:
        """Store a task's failure (its error, attempts and units)."""
        try:
            (self.root / FAILED).mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                self.root / FAILED / f"{task_id}.json", json.dumps(record, indent=2) + "\n"
            )
        except OSError as exc:
            raise OutputError(f"cannot write a failure record into {self.root}: {exc}") from None

    def clear_failure(self, task_id: str) -> None:
        """Forget an earlier failure of a task that has now succeeded."""
        try:
            (self.root / FAILED / f"{task_id}.json").unlink(missing_ok=True)
        except OSError:
            pass

    def write_curves(self, task_id: str, curves: dict[str, np.ndarray]) -> None:
        """Store one task's logged metrics (``step`` (L,), ``cell``/``trial`` (U,), each metric
        (L, U)) atomically as ``curves/<task_id>.npz``."""
        from ..._io import atomic_savez

        atomic_savez(self.root / CURVES / f"{task_id}.npz", True, **curves)

    def manifest(self) -> dict[str, Any]:
        """The folder's ``manifest.json``."""
        path = self.root / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileFormatError(
                f"{self.root} is not a sweep folder (no {MANIFEST})", path=str(path)
            ) from None
        except (OSError, ValueError) as exc:
            raise FileFormatError(f"{path} is unreadable: {exc}", path=str(path)) from None
        if not isinstance(data, dict):
            raise FileFormatError(f"{path} does not hold a JSON object", path=str(path))
        return data

    def update_manifest(self, **changes: Any) -> None:
        """Merge ``changes`` into ``manifest.json`` (atomically)."""
        data = self.manifest()
        data.update(changes)
        atomic_write_text(self.root / MANIFEST, json.dumps(data, indent=2) + "\n")

    def record_task(
        self,
        task_id: str,
        columns: list[str],
        rows: list[dict[str, Any]],
        *,
        status: str,
        attempts: int,
        seconds: float,
        error: str = "",
        node: str = "",
    ) -> None:
        """Add a task's rows and its status to ``results.sqlite`` (one transaction)."""
        record_sqlite(
            self.root / SQLITE, task_id, columns, rows, status, attempts, seconds, error, node
        )

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
    curves: dict[tuple[int, int], dict[str, np.ndarray]] | None = None
    """With ``load_results(..., curves=True)``: per (cell, trial), ``step`` and every logged
    metric as arrays over the logged steps."""

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
        return SweepTable(self.names, {k: v[mask] for k, v in self.columns.items()}, self.curves)


def _numeric_names(names: list[str]) -> set[str]:
    metrics = {metric_column(m) for m in available_metrics()}
    return {n for n in names if n in NUMERIC_COLUMNS or n.split("@", 1)[0] in metrics}


def _read_part_text(path: Path) -> str:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"cannot read sweep results {path}: {exc}", path=str(path)) from None


def _read_csv(path: Path, text: str | None = None) -> tuple[list[str], list[list[str]]]:
    if text is None:
        text = _read_part_text(path)
    if text.startswith("# attnmech-sweep-part"):
        text = text.partition("\n")[2]
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        rows = list(reader)
    except csv.Error as exc:
        raise FileFormatError(f"cannot read sweep results {path}: {exc}", path=str(path)) from None
    if header is None:
        raise FileFormatError(f"sweep results {path} are empty", path=str(path))
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise FileFormatError(
                f"sweep results {path}: row {i + 2} has {len(row)} fields, the header "
                f"{len(header)}; the file is corrupt (delete it and rerun with --resume)",
                path=str(path),
            )
    return header, rows


def load_results(
    out_dir: str | os.PathLike[str], *, prefer_parts: bool = False, curves: bool = False
) -> SweepTable:
    """Read a sweep's table from its folder (``results.csv``, or the part files of a sweep
    that is still running or was killed); the output of ``attnmech search`` too. A numeric
    ``svm_norm`` column (older sweeps: the Frobenius norm of W_svm) is read as
    ``w_svm_fro_norm``.

    Parameters
    ----------
    out_dir : path
    prefer_parts : bool, default=False
        Read the part files even when ``results.csv`` exists.
    curves : bool, default=False
        Also read the per-trial curves (a sweep run with ``curves``) into
        :attr:`SweepTable.curves`.

    Raises
    ------
    FileFormatError
        If the folder holds no sweep results, or a file is corrupt.
    """
    root = Path(out_dir)
    results = root / RESULTS
    parts = sorted((root / PARTS).glob("*.csv")) if (root / PARTS).is_dir() else []
    parts = [inside(root, PARTS, p.name, what="sweep part file") for p in parts]
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
    if files is parts:  # each part checked: task, checksum, fingerprint, no unit twice
        SweepStore(root).verify_parts(parts)
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
    names = _rename_old_columns(names, raw)
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
    return SweepTable(list(names), columns, _load_curves(root) if curves else None)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rename_old_columns(names: list[str], raw: list[list[str]]) -> list[str]:
    """Columns of older sweeps under today's names (``svm_norm`` holding numbers)."""
    out = list(names)
    for old, new in OLD_COLUMNS.items():
        if old in out and new not in out:
            j = out.index(old)
            if all(row[j] == "" or _is_number(row[j]) for row in raw):
                out[j] = new
    return out


def _load_curves(root: Path) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    folder = root / CURVES
    if not folder.is_dir():
        raise FileFormatError(
            f"{root} holds no curves (no {CURVES}/); run the sweep with curves = true "
            "(attnmech sweep --curves)",
            path=str(root),
        )
    out: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for path in sorted(folder.glob("*.npz")):
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise FileFormatError(f"cannot read curves {path}: {exc}", path=str(path)) from None
        steps = arrays.pop("step")
        cells, trials = arrays.pop("cell"), arrays.pop("trial")
        for u, (c, t) in enumerate(zip(cells.tolist(), trials.tolist(), strict=True)):
            entry = {"step": steps}
            entry.update({k: v[:, u] for k, v in arrays.items()})
            out[(int(c), int(t))] = entry
    return out


# --------------------------------------------------------------------------- SQLite
_SQL_TYPES = {"int": "INTEGER", "real": "REAL", "text": "TEXT"}


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_type(name: str, numeric: set[str]) -> str:
    if name in INTEGER_COLUMNS:
        return "INTEGER"
    return "REAL" if name in numeric else "TEXT"


def _sql_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    return str(value)


def record_sqlite(
    path: Path,
    task_id: str,
    columns: list[str],
    rows: list[dict[str, Any]],
    status: str,
    attempts: int,
    seconds: float,
    error: str,
    node: str = "",
) -> None:
    """Replace a task's rows and status in the SQLite store at ``path`` (one transaction).

    NaN is stored as NULL. The ``results`` table has the sweep's columns plus ``task_id``.
    """
    import sqlite3
    import time

    numeric = _numeric_names(columns)
    try:
        con = sqlite3.connect(path, timeout=30)
    except sqlite3.Error as exc:
        raise OutputError(f"cannot open {path}: {exc}") from None
    try:
        with con:
            cols = ", ".join(f"{_sql_name(c)} {_sql_type(c, numeric)}" for c in columns)
            con.execute(f"CREATE TABLE IF NOT EXISTS results (task_id TEXT, {cols})")
            con.execute(
                "CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, status TEXT, "
                "attempts INTEGER, seconds REAL, rows INTEGER, error TEXT, finished REAL, "
                "node TEXT)"
            )
            con.execute("DELETE FROM results WHERE task_id = ?", (task_id,))
            marks = ", ".join("?" for _ in range(len(columns) + 1))
            con.executemany(
                f"INSERT INTO results (task_id, {', '.join(map(_sql_name, columns))}) "
                f"VALUES ({marks})",
                [[task_id, *(_sql_value(r.get(c)) for c in columns)] for r in rows],
            )
            con.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (task_id, status, attempts, seconds, len(rows), error, time.time(), node),
            )
    except sqlite3.Error as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None
    finally:
        con.close()


def sqlite_tasks(root: Path) -> dict[str, dict[str, Any]]:
    """The ``tasks`` table of a sweep's SQLite store (empty when there is none)."""
    import sqlite3

    path = root / SQLITE
    if not path.exists():
        return {}
    con = sqlite3.connect(path, timeout=30)
    try:
        cur = con.execute("SELECT task_id, status, attempts, seconds, rows, error, node FROM tasks")
        keys = ("task_id", "status", "attempts", "seconds", "rows", "error", "node")
        return {r[0]: dict(zip(keys, r, strict=True)) for r in cur.fetchall()}
    except sqlite3.Error:
        return {}
    finally:
        con.close()
