"""Dataset files: :func:`load_dataset` and :func:`save_dataset` (``.npz`` and ``.jsonl``).

``.npz`` files go through the one reader and writer of :mod:`attnmech._persist` (format name,
version, checksum and the dataset's own fingerprint); ``.jsonl`` files hold one
``{"sequence": [...], "label": y}`` per line with the embeddings in a ``.npy`` file beside them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import _persist
from .._io import check_nesting
from ..errors import (
    FileFormatError,
    InvalidDatasetError,
    InvalidParameterError,
    UnrealizableLabelError,
)
from .dataset import (
    _INT64_SAFE,
    Dataset,
    OneHotEmbeddings,
    _as_embeddings,
    _default_embeddings_path,
)
from .generators import parse_embeddings_spec

__all__ = ["load_dataset", "save_dataset"]


def save_dataset(
    dataset: Dataset, path: str | os.PathLike[str], *, embeddings_path: str | None = None
) -> Path:
    """Write ``dataset`` to ``path`` atomically: the same as :meth:`Dataset.save`.

    ``.npz`` files are written through :func:`attnmech._persist.write` (format
    ``attnmech-dataset-v2``, the dataset's fingerprint and a checksum in ``meta``); ``.jsonl``
    files hold one ``{"sequence": [...], "label": y}`` per line, with the embeddings in
    ``embeddings_path`` (default ``<stem>.embeddings.npy``). :func:`load_dataset` reads both.
    (The writing code is the method's, so that :mod:`attnmech.data.dataset` imports nothing
    above it.)
    """
    return dataset.save(path, embeddings_path=embeddings_path)


def load_dataset(
    path: str | os.PathLike[str],
    *,
    embeddings: str | os.PathLike[str] | np.ndarray | None = None,
    on_unrealizable: Literal["raise", "drop", "repair", "keep"] = "raise",
) -> Dataset:
    """Read a dataset written by :meth:`Dataset.save` (or by hand in the same format).

    Parameters
    ----------
    path : path to a ``.npz`` or ``.jsonl`` file
    embeddings : ndarray, path to a ``.npy`` file, or generator spec, optional
        For ``.jsonl`` files: the embedding table, a ``.npy`` path, or a spec such as
        ``"random:d=8,seed=0"`` (see :func:`parse_embeddings_spec`). Default: the file
        ``<stem>.embeddings.npy`` beside ``path``. For ``.npz`` files it overrides the stored table.
    on_unrealizable : see :class:`Dataset`
    """
    path = _existing_file(path, "dataset file")
    if path.suffix == ".npz":
        arrays = _read_npz(path, need_embeddings=embeddings is None)
        sequences, labels = arrays["sequences"], arrays["labels"]
        stored = arrays.get("embeddings")
        if "embeddings_kind" in arrays:
            kind = str(arrays["embeddings_kind"])
            if kind != "onehot" or "vocab_size" not in arrays:
                raise FileFormatError(
                    f"{path}: embeddings_kind {kind!r} is not supported (only 'onehot', with a "
                    "'vocab_size' key); rewrite the file with Dataset.save",
                    path=str(path),
                )
            stored = OneHotEmbeddings(int(arrays["vocab_size"]))  # type: ignore[assignment]
        if sequences.ndim != 2:
            raise FileFormatError(
                f"{path}: 'sequences' must be 2-D (n, T) padded with -1, got shape "
                f"{sequences.shape}",
                path=str(path),
            )
        if embeddings is None:
            E = stored
        else:
            E = _resolve_embeddings(embeddings, _vocab_hint(sequences, labels, stored))
        dataset = _in_file(path, sequences, labels, E, on_unrealizable)
        recorded = arrays.get("__fingerprint__")
        if (
            recorded is not None
            and embeddings is None
            and not dataset.dropped.size
            and dataset.fingerprint() != str(recorded)
        ):
            raise FileFormatError(
                f"dataset file {path}: its content does not match the fingerprint it was written "
                f"with; {_REMAKE}",
                path=str(path),
            )
        return dataset
    if path.suffix == ".jsonl":
        seqs, label_list = _read_jsonl(path)
        hint = _vocab_hint_lists(seqs, label_list)
        if embeddings is None:
            default = _default_embeddings_path(path)
            if not default.exists():
                raise FileFormatError(
                    f"{path} needs embeddings: pass embeddings= (a .npy path or a spec such as "
                    f"'random:d=8,seed=0') or put them in {default}",
                    path=str(path),
                )
            embeddings = default
        E = _resolve_embeddings(embeddings, hint)
        return _in_file(path, seqs, label_list, E, on_unrealizable)
    raise FileFormatError(f"cannot read {path}: use a .npz or .jsonl file", path=str(path))


_REMAKE = "write it again with Dataset.save or attnmech make-dataset"


def _existing_file(path: Any, what: str) -> Path:
    """``path`` as a Path to an existing, non-empty regular file (else FileFormatError)."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"{what} must be a path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{what} {path} does not exist", path=str(path))
    if not path.is_file():
        raise FileFormatError(f"{what} {path} is not a regular file", path=str(path))
    if path.stat().st_size == 0:
        raise FileFormatError(f"{what} {path} is empty (0 bytes); {_REMAKE}", path=str(path))
    return path


def _in_file(path: Path, sequences: Any, labels: Any, E: Any, on_unrealizable: Any) -> Dataset:
    """``Dataset(...)`` whose validation errors name the file they come from."""
    try:
        return Dataset(sequences, labels, E, on_unrealizable=on_unrealizable)
    except UnrealizableLabelError as exc:
        raise UnrealizableLabelError(f"{path}: {exc}", samples=exc.samples) from None
    except InvalidDatasetError as exc:
        raise type(exc)(f"{path}: {exc}") from None


_NPZ_KINDS = {
    "sequences": "iuf",
    "labels": "iuf",
    "embeddings": "iuf",
    "embeddings_kind": "U",
    "vocab_size": "iu",
}


def _read_npz(path: Path, *, need_embeddings: bool) -> dict[str, np.ndarray]:
    """The members of a dataset ``.npz``, or a FileFormatError that says what is wrong.

    Read through :func:`attnmech._persist.read`: a file written by :func:`save_dataset` carries a
    checksum (verified) and its own fingerprint (checked by :func:`load_dataset`); a file written
    by hand or by an older attnmech (no ``meta`` member) is read as it is.
    """
    layout = (
        "a dataset .npz holds 'sequences' (int64 (n, T), right-padded with -1), 'labels' "
        "(int64 (n,)) and 'embeddings' (float64 (K, d))"
    )
    stored = _persist.read(path, "dataset", what="dataset file", hint=_REMAKE)
    arrays: dict[str, np.ndarray] = {}
    missing = {"sequences", "labels"} - set(stored.arrays)
    has_table = "embeddings" in stored.arrays or "embeddings_kind" in stored.arrays
    if missing or (not has_table and need_embeddings):
        need = sorted(missing | ({"embeddings"} if need_embeddings else set()))
        raise FileFormatError(f"{path} lacks the keys {need}; {layout}", path=str(path))
    for key in ("sequences", "labels", "embeddings", "embeddings_kind", "vocab_size"):
        if key not in stored.arrays:
            continue
        value = stored.arrays[key]
        if value.dtype.kind not in _NPZ_KINDS[key]:
            raise FileFormatError(
                f"member {key!r} of {path} has dtype {value.dtype}, not numbers; {layout}",
                path=str(path),
            )
        arrays[key] = value
    fingerprint = stored.dataset_fingerprint
    if isinstance(fingerprint, str):
        arrays["__fingerprint__"] = np.array(fingerprint)
    return arrays


def _vocab_hint(sequences: np.ndarray, labels: np.ndarray, stored: Any) -> int:
    if stored is not None and stored.ndim == 2:
        return int(stored.shape[0])
    return int(max(sequences.max(initial=-1), labels.max(initial=-1))) + 1


def _vocab_hint_lists(seqs: list[list[int]], labels: list[int]) -> int:
    top = max((max(s) for s in seqs if s), default=-1)
    return int(max(top, max(labels, default=-1))) + 1


def _resolve_embeddings(embeddings: Any, vocab_size: int) -> Any:
    if isinstance(embeddings, (np.ndarray, OneHotEmbeddings)):
        return embeddings
    if not isinstance(embeddings, (str, os.PathLike)):
        return _as_embeddings(embeddings)
    text = str(embeddings)
    if text.endswith(".npy"):
        path = _existing_file(text, "embeddings file")
        _check_npy_budget(path)
        try:
            table = np.load(path, allow_pickle=False)
        except Exception as exc:  # any failure to open is a property of the file
            raise FileFormatError(
                f"cannot read embeddings {path} as .npy: it is truncated, corrupt or not a .npy "
                f"file ({type(exc).__name__}: {exc})",
                path=str(path),
            ) from None
        if isinstance(table, np.ndarray) and table.ndim == 0 and table.dtype.kind == "U":
            return parse_embeddings_spec(str(table), vocab_size)  # "onehot:K", see Dataset.save
        if not isinstance(table, np.ndarray) or table.dtype.kind not in "iuf":
            raise FileFormatError(
                f"cannot read embeddings {path}: expected one float array of shape "
                f"(vocab_size, embedding_dim), got {getattr(table, 'dtype', type(table).__name__)}",
                path=str(path),
            )
        return table
    return parse_embeddings_spec(text, vocab_size)


def _read_jsonl(path: Path) -> tuple[list[list[int]], list[int]]:
    seqs: list[list[int]] = []
    labels: list[int] = []
    expected = '{"sequence": [...], "label": y}'
    try:
        with open(path, encoding="utf-8") as handle:
            lines = list(enumerate(handle, start=1))
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); a .jsonl dataset holds "
            f"one {expected} per line",
            path=str(path),
        ) from None
    for lineno, line in lines:
        if not line.strip():
            continue
        check_nesting(line, what=f"line {lineno} of", path=path)
        try:
            record = json.loads(line)
            seq, label = record["sequence"], record["label"]
        except (json.JSONDecodeError, KeyError, TypeError, IndexError, RecursionError) as exc:
            raise FileFormatError(
                f"{path} line {lineno}: expected {expected} ({type(exc).__name__}: {exc})",
                path=str(path),
            ) from None
        if not isinstance(seq, list):
            raise FileFormatError(
                f"{path} line {lineno}: 'sequence' must be a list", path=str(path)
            )
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in seq) or not (
            isinstance(label, int) and not isinstance(label, bool)
        ):
            raise FileFormatError(
                f"{path} line {lineno}: token ids and label must be integers", path=str(path)
            )
        bad = [t for t in [*seq, label] if not 0 <= t < _INT64_SAFE]
        if bad:
            raise InvalidDatasetError(
                f"{path} line {lineno}: token id {bad[0]} is not in [0, vocab_size); token ids "
                "and labels are non-negative (a .jsonl sequence has no padding)"
            )
        seqs.append(list(seq))
        labels.append(label)
    if not seqs:
        raise FileFormatError(
            f"{path} holds no samples; write one {expected} per line", path=str(path)
        )
    return seqs, labels


def _check_npy_budget(path: Path) -> None:
    """Refuse an ``.npy`` whose header declares more data than the file holds or than memory
    can spare, before numpy allocates the array it declares."""
    from .._io import NPZ_MEMORY_SHARE, available_memory

    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
    except Exception:  # not a readable .npy header: np.load reports it
        return
    need = int(np.prod(shape, dtype=object)) * max(1, dtype.itemsize) if shape else dtype.itemsize
    if dtype.hasobject:
        return  # np.load(allow_pickle=False) refuses it
    held = path.stat().st_size - offset
    limit = available_memory() // NPZ_MEMORY_SHARE
    if need > held or need > limit:
        raise FileFormatError(
            f"embeddings {path} declares {need:,} bytes of data (shape {tuple(shape)}, "
            f"{dtype}) but {'holds' if need > held else 'memory can spare'} only "
            f"{held if need > held else limit:,}; it is truncated or not an embeddings table",
            path=str(path),
        )
