"""File helpers shared by every module that writes: atomic writes and output checks.

Every file attnmech writes goes through :func:`atomic_path`: the content is written to a temporary
file beside the target, named ``.<name>.<12 hex digits>.tmp<suffix>``, which then replaces the
target in one ``os.replace``. A reader never sees half a file. A temporary left behind by a writer
that was killed (``kill -9``, power loss) is recognised by that pattern and removed by the next
write of the same target.

File mode: the temporary is created with ``os.open(..., 0o666)``, so the kernel applies the
process umask exactly as for an ordinary ``open(path, "w")``. The umask is never read or changed
(``os.umask`` can only be read by setting it, which is process-wide and not thread-safe).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_savez",
    "check_writable",
    "temporary_pattern",
]

_TMP_MARK = ".tmp"


def temporary_pattern(path: str | os.PathLike[str]) -> re.Pattern[str]:
    """The names the atomic writers give the temporaries of ``path`` (for cleanup and tests)."""
    name = Path(path).name
    return re.compile(rf"^\.{re.escape(name)}\.[0-9a-f]{{12}}{re.escape(_TMP_MARK)}(\.[\w.]+)?$")


def _remove_stale_temporaries(path: Path, older_than: float) -> None:
    """Remove temporaries of ``path`` last modified before ``older_than`` (killed writers)."""
    pattern = temporary_pattern(path)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < older_than:
                os.unlink(entry.path)


def _output_error(exc: OSError, path: Path) -> OutputError:
    reason = exc.strerror or str(exc)
    return OutputError(exc.errno or errno.EIO, f"cannot write {path}: {reason}", str(path))


def check_writable(path: str | os.PathLike[str], *, what: str = "output") -> Path:
    """Check, before any long work, that ``path`` can be written; write nothing.

    The nearest existing folder above ``path`` must be a writable folder (missing folders are
    created at write time), and ``path`` itself must not be a folder.

    Raises
    ------
    OutputError
        Naming the path and the reason, e.g. ``cannot write out/run.npz: data.txt is not a folder``.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(
            errno.EISDIR,
            f"cannot write {what} {path}: it is a folder; give a file name",
            str(path),
        )
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(
            errno.ENOTDIR,
            f"cannot write {what} {path}: {parent} is a file, not a folder; choose another path",
            str(path),
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            errno.EACCES,
            f"cannot write {what} {path}: folder {parent} is not writable; choose another path",
            str(path),
        )
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    Parameters
    ----------
    path : path-like
        The target.
    suffix : str, optional
        Suffix of the temporary's name (default: the target's), for writers that infer the format
        from the name.

    Raises
    ------
    OutputError
        If the folder cannot be created or the file cannot be written or renamed. The target then
        keeps its old content and the temporary is removed.

    Notes
    -----
    Temporaries of the same target older than this write (left by a killed writer) are removed.
    """
    path = Path(path)
    started = time.time()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path, started)
        while True:
            tmp_path = path.with_name(
                f".{path.name}.{os.urandom(6).hex()}{_TMP_MARK}{suffix or path.suffix}"
            )
            try:
                fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:  # pragma: no cover - 48 random bits collided
                continue
            os.close(fd)
            break
    except OSError as exc:
        raise _output_error(exc, path) from None
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise _output_error(exc, path) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_savez(path: str | os.PathLike[str], compress: bool = True, /, **arrays: Any) -> None:
    """Save ``arrays`` to the ``.npz`` file ``path`` atomically: the one ``.npz`` writer.

    Parameters
    ----------
    path : path-like
        The target (should end in ``.npz``).
    compress : bool, default=True, positional only
        ``np.savez_compressed`` (True) or ``np.savez`` (False: faster, for checkpoints), e.g.
        ``atomic_savez(path, False, W=W)``. Positional only, so that no member name can clash.
    **arrays
        The members.

    Raises
    ------
    OutputError
        If the file cannot be written (the target keeps its old content).
    """
    import numpy as np

    save = np.savez_compressed if compress else np.savez
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            save(handle, **arrays)
