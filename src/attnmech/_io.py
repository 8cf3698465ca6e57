"""File helpers shared by every module that writes: atomic writes and output checks.

Every file attnmech writes goes through :func:`atomic_path`: the content is written to a temporary
file beside the target, named ``.<name>.<pid>-<12 hex digits>.tmp<suffix>``, flushed to disk
(``fsync``), given the mode of the file it replaces, and then renamed over the target in one
``os.replace``, after which the folder itself is flushed. A reader never sees half a file, and
after a crash or a power loss the target holds either its old or its new content (on file systems
that honour ``fsync``). A temporary left behind by a writer that was killed (``kill -9``, power
loss) is recognised by that pattern and removed by the next write of the same target, but only
once its writer (the process named by ``<pid>``) is gone: two live writers of one target never
delete each other's temporaries. :func:`exclusive_lock` keeps two processes from writing one
output folder at once, and :func:`inside` keeps paths built from arguments inside their folder.

File mode: the temporary is created with ``os.open(..., 0o666)``, so the kernel applies the
process umask exactly as for an ordinary ``open(path, "w")``. The umask is never read or changed
(``os.umask`` can only be read by setting it, which is process-wide and not thread-safe).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import stat
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
    "exclusive_lock",
    "inside",
    "output_transaction",
    "temporary_pattern",
]

_TMP_MARK = ".tmp"


def temporary_pattern(path: str | os.PathLike[str]) -> re.Pattern[str]:
    """The names the atomic writers give the temporaries of ``path`` (for cleanup and tests)."""
    name = Path(path).name
    return re.compile(
        rf"^\.{re.escape(name)}\.(?:(?P<pid>\d+)-)?[0-9a-f]{{12}}{re.escape(_TMP_MARK)}(\.[\w.]+)?$"
    )


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def _remove_stale_temporaries(path: Path, older_than: float) -> None:
    """Remove temporaries of ``path`` whose writer is gone (a killed writer's leftovers).

    A temporary that names its writer's pid is removed only when that process no longer exists;
    one in the older pid-less form only when it was last modified before ``older_than``.
    """
    pattern = temporary_pattern(path)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        with contextlib.suppress(OSError):
            if not entry.is_file(follow_symlinks=False):
                continue
            pid = match.group("pid")
            if pid is not None:
                if int(pid) != os.getpid() and not _process_alive(int(pid)):
                    os.unlink(entry.path)
            elif entry.stat().st_mtime < older_than:
                os.unlink(entry.path)


def _fsync_path(path: Path, *, folder: bool = False) -> None:
    """Flush a file's (or a folder's) content to disk; a file system without the call is let be."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


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
    Temporaries of the same target left by writers that are gone are removed first. The written
    temporary is flushed to disk, takes the mode of the file it replaces (a new file gets the
    umask's), and the folder is flushed after the rename.
    """
    path = Path(path)
    started = time.time()
    transaction = _current_transaction(path)
    try:
        if transaction is not None:
            transaction.note_folders(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path, started)
        while True:
            tmp_path = path.with_name(
                f".{path.name}.{os.getpid()}-{os.urandom(6).hex()}{_TMP_MARK}{suffix or path.suffix}"
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
        _fsync_path(tmp_path)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, stat.S_IMODE(os.stat(path).st_mode))
        if transaction is not None:
            transaction.keep_old(path)
        os.replace(tmp_path, path)
        _fsync_path(path.parent, folder=True)
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


def inside(folder: str | os.PathLike[str], *parts: str | os.PathLike[str], what: str = "path") -> Path:
    """``folder / parts``, refused unless it stays inside ``folder`` once symlinks are resolved.

    For every path built from a command-line argument or a file's content below an output folder
    (``plot-sweep --grid NAME``, a sweep's ``parts/``, a bias table's ``runs/``): ``..``, an
    absolute part or a symlink leading out of the folder raises :class:`OutputError`.

    Examples
    --------
    >>> inside("out", "grid", "a.png").as_posix()
    'out/grid/a.png'
    """
    base = Path(folder)
    candidate = base.joinpath(*parts)
    root = base.resolve()
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise OutputError(
            errno.EPERM,
            f"{what} {candidate} leads outside {base} (to {resolved}); give a name inside the folder",
            str(candidate),
        )
    return candidate


@contextlib.contextmanager
def exclusive_lock(folder: str | os.PathLike[str], *, what: str = "output folder") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (a ``.attnmech.lock`` file in it) while writing it.

    A second holder of the same lock (another process, or another call in this process) is
    refused at once with :class:`OutputError` naming the holder's pid, instead of both writing
    the same files. The lock is released when the block ends or the process dies (it is an
    ``flock``, held by the open file).

    What the lock itself made is removed when the block ends: the lock file when it did not
    exist before, and ``folder`` when this call created it and it is still empty (so that a
    refused or failed run leaves nothing behind). A lock taken on a lock file that was removed
    meanwhile is taken again on the new file (compared by inode), so removal never lets two
    writers in.
    """
    base = Path(folder)
    lock_path = base / LOCK_NAME
    folder_existed = base.is_dir()
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, as before
        fcntl = None  # type: ignore[assignment]
    while True:
        try:
            base.mkdir(parents=True, exist_ok=True)
            file_existed = lock_path.exists()
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _output_error(exc, base) from None
        if fcntl is None:  # pragma: no cover
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputError(
                errno.EBUSY,
                f"{what} {base} is being written by another attnmech process (pid {holder}); "
                "wait for it to finish or stop it, then run again",
                str(base),
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)  # the file was removed by its last holder: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield base
    finally:
        try:
            if not file_existed:
                with contextlib.suppress(OSError):
                    os.unlink(lock_path)  # still held: a waiting writer re-checks the inode
                if not folder_existed:
                    with contextlib.suppress(OSError):
                        base.rmdir()  # only when empty
        finally:
            os.close(fd)


LOCK_NAME = ".attnmech.lock"
"""The lock file :func:`exclusive_lock` keeps in an output folder while a run writes it."""


# --------------------------------------------------------------------------- bounded readers
MAX_JSON_DEPTH = 64
"""Deepest nesting of lists and objects accepted in a JSON or TOML input."""


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``), or 8 GiB if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return 8 << 30


def _input_error(message: str, path: Path) -> Exception:
    from .errors import FileFormatError

    return FileFormatError(message, path=str(path))


def read_text_bounded(
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    what: str = "file",
    hint: str = "convert it to UTF-8",
) -> str:
    """Read a UTF-8 text file of at most ``max_bytes`` (default: a quarter of the available
    memory), refusing devices, pipes and folders (``/dev/zero`` never ends) before reading.

    ``hint`` ends the message of a file that is not UTF-8 (what the caller's user can do).

    Raises
    ------
    FileFormatError
        Not a regular file, larger than the limit, or not UTF-8.
    """
    path = Path(path)
    limit = available_memory() // 4 if max_bytes is None else int(max_bytes)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _input_error(f"cannot read {what} {path}: {exc.strerror or exc}", path) from None
    if not stat.S_ISREG(info.st_mode):
        raise _input_error(
            f"cannot read {what} {path}: not a regular file (a folder, device or pipe); "
            "give a file",
            path,
        )
    if info.st_size > limit:
        raise _input_error(
            f"{what} {path} is {info.st_size:,} bytes, above the limit of {limit:,} bytes",
            path,
        )
    try:
        with open(path, "rb") as handle:  # no buffer of the limit's size: read what is there
            data = handle.read(min(limit, info.st_size) + 1)
            if len(data) > info.st_size:  # the file grew since stat
                data += handle.read(limit + 1 - len(data))
    except OSError as exc:
        raise _input_error(f"cannot read {what} {path}: {exc.strerror or exc}", path) from None
    if len(data) > limit:
        raise _input_error(f"{what} {path} is larger than the limit of {limit:,} bytes", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _input_error(
            f"{what} {path} is not UTF-8 text (byte {exc.start}); {hint}", path
        ) from None


def nesting_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of a JSON or TOML text, brackets inside strings ignored.

    >>> nesting_depth('{"a": [1, {"b": "[[["}]}')
    3
    """
    depth = deepest = 0
    quote = ""
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_nesting(text: str, *, what: str, path: str | os.PathLike[str] = "") -> None:
    """Refuse a JSON/TOML text nested deeper than :data:`MAX_JSON_DEPTH` (before parsing it,
    which would otherwise end in a ``RecursionError``)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:  # cannot nest deeper: skip the scan
        return
    deepest = nesting_depth(text)
    if deepest > MAX_JSON_DEPTH:
        raise _input_error(
            f"{what} {path} nests {deepest} levels deep; at most {MAX_JSON_DEPTH} are accepted",
            Path(path),
        )


NPZ_MEMORY_SHARE = 8
"""An ``.npz`` may inflate to at most ``1 / NPZ_MEMORY_SHARE`` of the available memory."""


def check_npz_budget(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> None:
    """Refuse an ``.npz`` whose members would inflate beyond ``max_bytes`` (default: an eighth of
    the available memory, since a loaded table is copied and converted several times downstream:
    a 5 GiB member took 19.7 GB of peak memory with half as the limit), from the sizes in its zip
    directory, before anything is inflated.

    A zip member cannot yield more than the size its directory entry declares (the reader
    stops there and checks the CRC), so a small file that would inflate to gigabytes is refused
    here with the sizes instead of exhausting memory.

    Raises
    ------
    FileFormatError
        Not a zip archive, or members larger than the budget.
    """
    import zipfile

    path = Path(path)
    limit = available_memory() // NPZ_MEMORY_SHARE if max_bytes is None else int(max_bytes)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [(info.filename, info.file_size) for info in archive.infolist()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise _input_error(f"{path} is not a readable .npz archive: {exc}", path) from None
    total = sum(size for _, size in members)
    if total > limit:
        largest = max(members, key=lambda m: m[1])
        raise _input_error(
            f"{path} would inflate to {total:,} bytes (member {largest[0]!r}: {largest[1]:,}), "
            f"above the {limit:,} bytes this machine can spare; refusing to load it",
            path,
        )


# --------------------------------------------------------------------------- transactions
_TRANSACTIONS: contextvars.ContextVar[tuple[_Transaction, ...]] = contextvars.ContextVar(
    "attnmech_output_transactions", default=()
)


class _Transaction:
    """The files and folders one :func:`output_transaction` block made or replaced."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.replaced: dict[Path, Path | None] = {}  # target -> backup of its old content
        self.order: list[Path] = []
        self.folders: list[Path] = []  # folders this block created, outermost first

    def covers(self, path: Path) -> bool:
        resolved = Path(os.path.abspath(path))
        return resolved == self.root or self.root in resolved.parents

    def note_folders(self, folder: Path) -> None:
        """Remember the folders above a target that do not exist yet (created by the write)."""
        missing = []
        current = Path(os.path.abspath(folder))
        while not current.exists() and self.covers(current):
            missing.append(current)
            current = current.parent
        for made in reversed(missing):
            if made not in self.folders:
                self.folders.append(made)

    def keep_old(self, path: Path) -> None:
        """Before ``path`` is replaced: keep its old content (a hard link) to restore it."""
        key = Path(os.path.abspath(path))
        if key in self.replaced:
            return
        backup: Path | None = None
        if os.path.lexists(key):
            backup = key.with_name(f".{key.name}.{os.getpid()}-{os.urandom(6).hex()}{_TMP_MARK}.bak")
            try:
                os.link(key, backup)
            except OSError:  # no hard links here: copy
                import shutil

                shutil.copy2(key, backup)
        self.replaced[key] = backup
        self.order.append(key)

    def roll_back(self) -> list[str]:
        """Restore every replaced file, remove every new one and new folder; return problems."""
        problems = []
        for target in reversed(self.order):
            backup = self.replaced[target]
            try:
                if backup is None:
                    target.unlink(missing_ok=True)
                else:
                    os.replace(backup, target)
            except OSError as exc:
                problems.append(f"{target}: {exc.strerror or exc}")
        for folder in reversed(self.folders):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            _fsync_path(self.root, folder=True)
        return problems

    def commit(self) -> None:
        """Drop the kept old contents."""
        for backup in self.replaced.values():
            if backup is not None:
                with contextlib.suppress(OSError):
                    backup.unlink()


def _current_transaction(path: Path) -> _Transaction | None:
    for transaction in reversed(_TRANSACTIONS.get()):
        if transaction.covers(path):
            return transaction
    return None


@contextlib.contextmanager
def output_transaction(folder: str | os.PathLike[str], *, what: str = "output folder") -> Iterator[Path]:
    """All or nothing for the files written below ``folder`` in this block.

    Every file written with :func:`atomic_path` (and so :func:`atomic_write_text`,
    :func:`atomic_savez`) below ``folder`` during the block is recorded; the old content of a
    file it replaces is kept as a hard link. If the block raises (a full disk, ``ENOSPC``, at
    the k-th file; any error), every replaced file gets its old content back, every new file
    and every folder the block created is removed, and an :class:`OutputError` raised by a
    write says that the folder was left as it was. On success the kept old contents are
    dropped. Nested blocks on one folder act as one (the outermost decides).

    Raises
    ------
    OutputError
        A write failed (its message, plus that ``folder`` was restored).
    """
    root = Path(os.path.abspath(folder))
    outer = _current_transaction(root)
    if outer is not None:  # already inside a transaction covering it
        yield Path(folder)
        return
    transaction = _Transaction(root)
    missing = root
    while not missing.exists() and missing != missing.parent:  # folders the block may create
        transaction.folders.insert(0, missing)
        missing = missing.parent
    token = _TRANSACTIONS.set((*_TRANSACTIONS.get(), transaction))
    try:
        yield Path(folder)
    except BaseException as exc:
        problems = transaction.roll_back()
        if isinstance(exc, OSError) and not problems:
            reason = str(exc.strerror or exc)
            restored = f"{what} {folder} was left as it was before this run"
            raise OutputError(exc.errno or errno.EIO, f"{reason}; {restored}",
                              exc.filename or str(folder)) from None  # fmt: skip
        if isinstance(exc, OSError):
            raise OutputError(
                exc.errno or errno.EIO,
                f"{exc.strerror or exc}; could not restore {what} {folder} fully: "
                + "; ".join(problems),
                str(folder),
            ) from None
        raise
    else:
        transaction.commit()
    finally:
        _TRANSACTIONS.reset(token)
