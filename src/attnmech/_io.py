"""Small file helpers shared by every module that writes: atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_path", "atomic_write_text", "atomic_savez"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    If the body raises (or the process dies), ``path`` keeps its old content and the temporary file
    is removed, so a reader never sees a half-written file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent
        )
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; use the usual mode
        os.replace(tmp_path, path)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_savez(path: str | os.PathLike[str], **arrays: Any) -> None:
    """``np.savez_compressed`` to ``path`` atomically (``path`` should end in ``.npz``)."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:  # type: IO[bytes]
            np.savez_compressed(handle, **arrays)
