"""The one reader and the one writer of attnmech's ``.npz`` files.

Datasets, theories, training runs, checkpoints and bias-table runs are all ``.npz`` archives of
arrays plus one ``meta`` member: a 0-d string holding a JSON object. :func:`write` adds to that
object

- ``format``: ``"attnmech-<kind>-v<version>"``, e.g. ``"attnmech-theory-v3"`` (the kinds and
  their current versions are :data:`FORMAT_VERSIONS`);
- ``dataset_fingerprint``: the :meth:`attnmech.Dataset.fingerprint` of the data the content was
  computed from (a list of them for a run over several datasets), when the writer gives one;
- ``checksum``: SHA-256 of the content (see :func:`checksum`),

and writes atomically (:func:`attnmech._io.atomic_savez`). :func:`read` checks the file (exists,
is a regular non-empty file, is a zip archive, its inflated size fits the budget of
:func:`attnmech._io.check_npz_budget`, holds no
pickled objects), reads every member eagerly, parses ``meta``, refuses a file of another kind or a
newer version, and recomputes the checksum: a file whose arrays or meta were edited or damaged is
refused with a :class:`~attnmech.errors.FileFormatError` (or the subclass the caller names).

Files written before formats were named (no ``format`` in ``meta``, or no ``meta`` at all: version
1) and older versions without a checksum are still read; :attr:`StoredFile.legacy` says so, and
the callers document what is then not checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import MAX_JSON_DEPTH, atomic_savez, check_nesting, check_npz_budget
from .errors import FileFormatError

__all__ = ["FORMAT_VERSIONS", "StoredFile", "checksum", "format_name", "read", "write"]

FORMAT_VERSIONS: dict[str, int] = {
    "dataset": 2,
    "theory": 3,
    "run": 2,
    "checkpoint": 2,
    "bias-run": 2,
}
"""Each file kind and the version :func:`write` writes (older versions are still read)."""

META = "meta"
_LABELS = {"run": "training run", "checkpoint": "training checkpoint", "bias-run": "bias-table run"}
_FORMAT_RE = re.compile(r"^attnmech-(?P<kind>[a-z][a-z-]*?)-v(?P<version>\d+)$")
_MAX_META_CHARS = 16 * 2**20  # a meta member larger than this is not one attnmech wrote


def format_name(kind: str, version: int | None = None) -> str:
    """``"attnmech-<kind>-v<version>"`` (default: the current version of ``kind``)."""
    return f"attnmech-{kind}-v{FORMAT_VERSIONS[kind] if version is None else version}"


def checksum(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a file's content: every array and the meta without its ``checksum``.

    Canonical form, in this order: the ASCII tag ``attnmech-content-v1``; for each member in
    sorted name order, a line ``"\\n<name> <dtype.str> <shape>\\n"`` and the array's raw bytes in C
    order; then ``"\\nmeta\\n"`` and the meta as JSON with sorted keys (the key ``checksum``
    left out).
    """
    digest = hashlib.sha256(b"attnmech-content-v1")
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"\n{name} {array.dtype.str} {tuple(array.shape)}\n".encode())
        digest.update(array.tobytes(order="C"))
    body = {k: v for k, v in meta.items() if k != "checksum"}
    digest.update(b"\nmeta\n" + json.dumps(body, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class StoredFile:
    """What :func:`read` found in a file.

    Attributes
    ----------
    path : Path
    kind : str
        The kind asked for (a key of :data:`FORMAT_VERSIONS`).
    version : int
        The format version of the file (1: written before formats were named).
    arrays : dict of str to ndarray
        Every member but ``meta``.
    meta : dict
        The parsed ``meta`` member (empty for a file without one).
    verified : bool
        True when the file carried a checksum and it matched.
    """

    path: Path
    kind: str
    version: int
    arrays: dict[str, np.ndarray] = field(repr=False)
    meta: dict[str, Any] = field(repr=False)
    verified: bool

    @property
    def legacy(self) -> bool:
        """True for a file older than the current format of its kind."""
        return self.version < FORMAT_VERSIONS[self.kind]

    @property
    def dataset_fingerprint(self) -> str | list[str] | None:
        """The fingerprint(s) of the data the content was computed from (None: not recorded)."""
        value = self.meta.get("dataset_fingerprint")
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            return value
        return None


def write(
    path: str | os.PathLike[str],
    kind: str,
    arrays: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
    *,
    dataset_fingerprint: str | Sequence[str] | None = None,
    compress: bool = True,
) -> Path:
    """Write ``arrays`` and ``meta`` (plus format, fingerprint and checksum) to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        The target (``.npz``).
    kind : str
        A key of :data:`FORMAT_VERSIONS`.
    arrays : mapping of str to array-like
        The members (no pickled objects: object arrays are refused by numpy on reading).
    meta : mapping, optional
        JSON values written as the ``meta`` member.
    dataset_fingerprint : str or list of str, optional
        Recorded as ``meta["dataset_fingerprint"]``.
    compress : bool, default=True
        ``np.savez_compressed`` or ``np.savez`` (faster, for checkpoints).

    Raises
    ------
    OutputError
        The file cannot be written (the target keeps its old content).
    """
    if kind not in FORMAT_VERSIONS:  # pragma: no cover - a programming error
        raise KeyError(kind)
    if META in arrays:  # pragma: no cover - a programming error
        raise KeyError(f"{META!r} is reserved for the meta member")
    members = {name: np.asarray(value) for name, value in arrays.items()}
    info: dict[str, Any] = dict(meta or {})
    info["format"] = format_name(kind)
    if dataset_fingerprint is not None:
        info["dataset_fingerprint"] = (
            dataset_fingerprint
            if isinstance(dataset_fingerprint, str)
            else [str(f) for f in dataset_fingerprint]
        )
    info.pop("checksum", None)
    info["checksum"] = checksum(members, info)
    members[META] = np.array(json.dumps(info, sort_keys=True))
    atomic_savez(path, compress, **members)
    return Path(path)


def _memory_limit() -> int | None:
    """``ATTNMECH_MEMORY_LIMIT_GB`` in bytes when set, else None (an eighth of the available memory:
    the default of :func:`attnmech._io.check_npz_budget`)."""
    env = os.environ.get("ATTNMECH_MEMORY_LIMIT_GB")
    if env:
        try:
            return int(float(env) * 2**30)
        except ValueError:
            return None
    return None


def read(
    path: str | os.PathLike[str],
    kind: str,
    *,
    what: str | None = None,
    required: Sequence[str] = (),
    hint: str = "write it again",
    error: type[FileFormatError] = FileFormatError,
) -> StoredFile:
    """Read and check a file written by :func:`write` (or an older attnmech).

    Parameters
    ----------
    path : path-like
    kind : str
        The kind expected (a key of :data:`FORMAT_VERSIONS`).
    what : str, optional
        How messages name the file (default ``"<kind> file"``).
    required : sequence of str
        Members that must be present.
    hint : str
        What to do, appended to every message (e.g. ``"solve again with attnmech solve ..."``).
    error : FileFormatError subclass
        The class raised.

    Raises
    ------
    FileFormatError (or ``error``)
        The file is missing, empty, not a regular file, not an ``.npz`` archive, truncated,
        corrupt, inflates beyond the memory limit, holds pickled members, is of another kind or
        a newer version, lacks members, or its content does not match its checksum. The message
        names the file, what is wrong and ``hint``.
    """
    path = Path(path)
    what = what or f"{kind} file"

    def fail(reason: str) -> FileFormatError:
        return error(f"cannot read {what} {path}: {reason}; {hint}", path=str(path))

    if not path.exists():
        raise error(f"{what} {path} does not exist", path=str(path))
    if not path.is_file():
        raise error(f"{what} {path} is not a file (a folder or a device)", path=str(path))
    if path.stat().st_size == 0:
        raise fail("it is empty (0 bytes; was its writer killed?)")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"\x93NUM":
        raise fail("it is a single .npy array (.npy format): it is not an .npz file")
    if magic != b"PK\x03\x04":
        raise fail(
            "it is not an .npz file (it does not start as a zip archive: truncated, corrupt or "
            "not a .npz at all)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise fail(
            f"it is truncated, corrupt or not a .npz archive ({type(exc).__name__}: {exc})"
        ) from None
    try:  # sizes from the zip directory, before anything is inflated
        check_npz_budget(path, max_bytes=_memory_limit())
    except FileFormatError as exc:
        raise fail(f"{exc} (set ATTNMECH_MEMORY_LIMIT_GB to change the limit)") from None
    try:
        with np.load(path, allow_pickle=False) as loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib.error) as exc:
        raise fail(
            f"it is truncated, corrupt or not a .npz archive, or holds pickled objects "
            f"({type(exc).__name__}: {exc})"
        ) from None
    meta: dict[str, Any] = {}
    version = 1
    if META in arrays:
        raw = arrays.pop(META)
        if raw.shape != () or raw.dtype.kind != "U" or len(str(raw)) > _MAX_META_CHARS:
            raise fail(f"its {META!r} member is not one JSON text")
        try:
            check_nesting(str(raw), what=f"its {META!r} member", path=path)
        except FileFormatError:
            raise fail(
                f"it has an unreadable {META!r} member (nested deeper than {MAX_JSON_DEPTH} levels)"
            ) from None
        try:
            parsed = json.loads(str(raw))
        except (ValueError, RecursionError) as exc:
            raise fail(f"it has an unreadable {META!r} member (not JSON: {type(exc).__name__})") from None
        if not isinstance(parsed, dict):
            raise fail(f"its {META!r} member is not a JSON object")
        meta = parsed
        name = meta.get("format")
        if name is not None:
            match = _FORMAT_RE.match(str(name))
            if match is None:
                raise fail(f"its format {name!r} is not an attnmech format")
            if match["kind"] != kind:
                raise fail(
                    f"it is an attnmech {_LABELS.get(match['kind'], match['kind'])} file, not a "
                    f"{_LABELS.get(kind, kind)} file"
                )
            version = int(match["version"])
            if version > FORMAT_VERSIONS[kind]:
                raise fail(
                    f"it is in {name}, newer than this attnmech reads ({format_name(kind)}); "
                    "upgrade attnmech"
                )
    verified = False
    if "checksum" in meta:
        if meta["checksum"] != checksum(arrays, meta):
            raise fail(
                "its content does not match its checksum (the file was edited or damaged after "
                "it was written)"
            )
        verified = True
    elif version >= FORMAT_VERSIONS[kind]:
        raise fail(f"it is in {format_name(kind)} but carries no checksum")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise fail(
            f"it is not a {_LABELS.get(kind, kind)} file: it lacks the member(s) "
            f"{', '.join(map(repr, missing))} "
            f"(it has {sorted(arrays)[:8]})"
        )
    return StoredFile(path, kind, version, arrays, meta, verified)


# the text study's files (one-hot layer, dense layer, windows, history, training checkpoint);
# version 1 of the first four is the .npz they had before they carried a checksum
FORMAT_VERSIONS.update(
    {
        "onehot-layer": 2,
        "text-layer": 2,
        "text-windows": 2,
        "text-history": 2,
        "text-checkpoint": 1,
    }
)
_LABELS.update(
    {
        "onehot-layer": "one-hot layer",
        "text-layer": "text-study layer",
        "text-windows": "text-study windows",
        "text-history": "text-study history",
        "text-checkpoint": "text-study training checkpoint",
    }
)
