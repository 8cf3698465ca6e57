"""Catalogue of bad and edge inputs (reliability issue 8): never a wrong answer, never a traceback.

Each entry is run twice:

- through the API: it must raise exactly the documented exception class, which derives from
  :class:`~attnmech.errors.AttnmechError` (and keeps its builtin base, e.g. ``ValueError``);
- through the CLI (typer's CliRunner on ``attnmech.cli.app``), where it has a command line: exit
  status 1, exactly one ``error:`` line, no traceback, and no file written.

Corrupt files are generated here: truncated at several offsets, empty, bytes flipped, a ``.npy``
renamed ``.npz``, zip members that are not arrays, binary ``.jsonl``.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import attnmech
from attnmech import Dataset, build_priority_graphs, load_dataset, make_dataset, solve
from attnmech.cli import app
from attnmech.data.dataset import make_embeddings, parse_embeddings_spec
from attnmech.errors import (
    AttnmechError,
    CheckpointError,
    FileFormatError,
    InfeasibleProblemError,
    InvalidDatasetError,
    InvalidParameterError,
    OutputError,
    UnrealizableLabelError,
)
from attnmech.theory.finite import solve_finite
from attnmech.theory.svm import solve_graph_svm
from attnmech.data.text import text_dataset

runner = CliRunner()


@dataclass(frozen=True)
class Case:
    """One bad input: ``api(tmp)`` must raise ``error``; ``cli(tmp)`` gives an argv (or None)."""

    name: str
    error: type[Exception]
    api: Callable[[Path], Any]
    cli: Callable[[Path], list[str]] | None = None


# ------------------------------------------------------------------------------- file makers
def good_dataset() -> Dataset:
    return make_dataset(6, 4, 6, 8, seed=0)


def saved(tmp: Path, name: str = "good.npz") -> Path:
    return good_dataset().save(tmp / name)


def npz(tmp: Path, name: str, **arrays: Any) -> Path:
    path = tmp / name
    np.savez(path, **arrays)
    return path


def padded_npz(tmp: Path, sequences: Any, labels: Any = (0, 0), K: int = 4) -> Path:
    return npz(tmp, "bad.npz", sequences=np.asarray(sequences), labels=np.asarray(labels),
               embeddings=np.eye(K))  # fmt: skip


def truncated(tmp: Path, fraction: float) -> Path:
    data = saved(tmp).read_bytes()
    path = tmp / f"cut{fraction}.npz"
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def raw(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / name
    path.write_bytes(content)
    return path


def zip_with(tmp: Path, members: dict[str, bytes]) -> Path:
    path = tmp / "members.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return path


def npy_as_npz(tmp: Path) -> Path:
    path = tmp / "array.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.eye(3))
    return path


def jsonl(tmp: Path, text: bytes, name: str = "bad.jsonl") -> Path:
    return raw(tmp, name, text)


def cyclic_conflict() -> Dataset:
    """``e_2 = (e_0 + e_1) / 2``: under query 3, ``0 > 2`` and ``1 > 2`` cannot both hold."""
    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 1.0]])
    return Dataset([[2, 0, 3], [2, 1, 3]], [0, 1], E)


def solve_file(tmp: Path, path: Path) -> Any:
    return solve(load_dataset(path))


def foreign_graphs(_: Path) -> Any:
    ds = good_dataset()
    other = make_dataset(6, 4, 6, 8, seed=1)
    return solve_finite(ds, build_priority_graphs(other))


def tiny_train(_: Path, **config: Any) -> Any:
    from attnmech import TrainConfig, train

    return train(good_dataset(), TrainConfig(num_steps=2, **config))


def corrupt_resume(tmp: Path) -> Any:
    from attnmech import TrainConfig, train

    ckpt = raw(tmp, "run.ckpt.npz", b"PK\x03\x04 not a checkpoint")
    return train(good_dataset(), TrainConfig(num_steps=2), checkpoint_path=ckpt, resume=True)


def resume_other_theory(tmp: Path) -> Any:
    from attnmech import TrainConfig, train

    ckpt = tmp / "run.ckpt.npz"
    config = TrainConfig(num_steps=4, checkpoint_every=2)
    train(good_dataset(), config, checkpoint_path=ckpt)
    other = make_dataset(6, 4, 6, 8, seed=5)
    return train(other, config, checkpoint_path=ckpt, resume=True)


# ------------------------------------------------------------------------------- the catalogue
def _cases() -> list[Case]:
    E4 = np.eye(4)
    cases = [
        # --- token ids and padding (issue item 2)
        Case(
            "negative id -5",
            InvalidDatasetError,
            lambda t: Dataset(np.array([[0, -5, 1], [0, 1, 2]]), [0, 0], E4),
            lambda t: ["solve", padded_npz(t, [[0, -5, 1], [0, 1, 2]])],
        ),
        Case(
            "negative id -2**62",
            InvalidDatasetError,
            lambda t: Dataset(np.array([[0, 1, -(2**62)], [0, 1, 2]]), [0, 0], E4),
            lambda t: ["solve", padded_npz(t, [[0, 1, -(2**62)], [0, 1, 2]])],
        ),
        Case(
            "uint64 wrapping to -1",
            InvalidDatasetError,
            lambda t: Dataset(np.array([[0, 1, 2**64 - 1]], dtype=np.uint64), [0], E4),
            lambda t: ["solve", padded_npz(t, np.array([[0, 1, 2**64 - 1]], np.uint64), [0])],
        ),
        Case(
            "negative id in a list",
            InvalidDatasetError,
            lambda t: Dataset([[0, 1], [-3, 1]], [0, 1], E4),
        ),
        Case(
            "padding before the last token",
            InvalidDatasetError,
            lambda t: Dataset(np.array([[0, -1, 1]]), [0], E4),
            lambda t: ["solve", padded_npz(t, [[0, -1, 1]], [0])],
        ),
        Case(
            "token id >= vocab_size",
            InvalidDatasetError,
            lambda t: Dataset([[0, 7]], [0], E4),
            lambda t: ["solve", padded_npz(t, [[0, 7]], [0])],
        ),
        Case(
            "label out of range",
            InvalidDatasetError,
            lambda t: Dataset([[0, 1]], [9], E4),
            lambda t: ["solve", padded_npz(t, [[0, 1]], [9])],
        ),
        Case(
            "unrealizable label",
            UnrealizableLabelError,
            lambda t: Dataset([[0, 1]], [2], E4),
            lambda t: ["solve", padded_npz(t, [[0, 1]], [2])],
        ),
        Case(
            "float token ids",
            InvalidDatasetError,
            lambda t: Dataset([[0, 1.5]], [0], E4),
            lambda t: ["solve", padded_npz(t, [[0.0, 1.5]], [0])],
        ),
        Case(
            "huge float token id",
            InvalidDatasetError,
            lambda t: Dataset(np.array([[0.0, 1e30]]), [0], E4),
            lambda t: ["solve", padded_npz(t, [[0.0, 1e30]], [0])],
        ),
        Case(
            "bool token ids",
            InvalidDatasetError,
            lambda t: Dataset(np.array([[True, False]]), [0], E4),
        ),
        Case("empty sequence", InvalidDatasetError, lambda t: Dataset([[0], []], [0, 0], E4)),
        Case("no samples", InvalidDatasetError, lambda t: Dataset([], [], E4)),
        Case("labels count", InvalidDatasetError, lambda t: Dataset([[0, 1]], [0, 1], E4)),
        Case(
            "3-D sequences",
            InvalidDatasetError,
            lambda t: Dataset(np.zeros((1, 1, 2), np.int64), [0], E4),
        ),
        # --- embeddings
        Case(
            "NaN embeddings",
            InvalidDatasetError,
            lambda t: Dataset([[0, 1]], [0], [[np.nan, 0.0], [0.0, 1.0]]),
        ),
        Case(
            "complex embeddings",
            InvalidDatasetError,
            lambda t: Dataset([[0, 1]], [0], np.eye(2) * 1j),
        ),
        Case(
            "ragged embeddings",
            InvalidDatasetError,
            lambda t: Dataset([[0, 1]], [0], [[1.0, 0.0], [1.0]]),
        ),
        Case("string embeddings", InvalidDatasetError, lambda t: Dataset([[0, 1]], [0], "eye")),
        Case("1-D embeddings", InvalidDatasetError, lambda t: Dataset([[0, 1]], [0], [1.0, 2.0])),
        # --- wrong Python types
        Case("seed='x'", InvalidParameterError, lambda t: make_dataset(3, 2, 3, 3, seed="x")),
        Case("seed=-1", InvalidParameterError, lambda t: make_dataset(3, 2, 3, 3, seed=-1)),
        Case(
            "seed=1.5", InvalidParameterError, lambda t: make_embeddings("random", 3, 2, seed=1.5)
        ),
        Case(
            "repair seed='x'",
            InvalidParameterError,
            lambda t: Dataset([[0, 1]], [2], E4, on_unrealizable="repair", seed="x"),
        ),
        Case("n_samples='3'", InvalidParameterError, lambda t: make_dataset("3", 2, 3, 3)),
        Case("n_samples=1e11 float", InvalidParameterError, lambda t: make_dataset(1e11, 2, 3, 3)),
        Case("seq_len=0", InvalidParameterError, lambda t: make_dataset(3, 0, 3, 3)),
        Case("vocab_size=True", InvalidParameterError, lambda t: make_dataset(3, 2, True, 3)),
        Case("graph=3", InvalidParameterError, lambda t: make_dataset(3, 2, 3, 3, graph=3)),
        Case("embeddings kind 3", InvalidParameterError, lambda t: make_embeddings(3, 3, 3)),
        Case(
            "rho='x'", InvalidParameterError, lambda t: make_embeddings("equicorr", 3, 3, rho="x")
        ),
        Case(
            "on_unrealizable=5",
            InvalidParameterError,
            lambda t: Dataset([[0, 1]], [0], E4, on_unrealizable=5),
        ),
        Case("solve('x')", InvalidDatasetError, lambda t: solve("x")),
        Case(
            "solve_graph_svm(dataset)",
            InvalidParameterError,
            lambda t: solve_graph_svm(good_dataset(), np.eye(6, 8)),
        ),
        Case(
            "solve_graph_svm max_iter='x'",
            InvalidParameterError,
            lambda t: solve_graph_svm(
                build_priority_graphs(good_dataset()), np.eye(6, 8), max_iter="x"
            ),
        ),
        Case("load_dataset(3)", InvalidParameterError, lambda t: load_dataset(3)),
        Case(
            "repair_labels('x')",
            InvalidDatasetError,
            lambda t: attnmech.repair_labels("x", [0, 1], [0]),
        ),
        Case(
            "repair_labels bad offsets",
            InvalidDatasetError,
            lambda t: attnmech.repair_labels([0, 1], [0, 5], [0]),
        ),
        # --- memory (estimated before allocating)
        Case(
            "n = 10**11",
            InvalidParameterError,
            lambda t: make_dataset(10**11, 4, 6, 8),
            lambda t: ["make-dataset", "--n", "100000000000", "-o", t / "out.npz"],
        ),
        Case(
            "d = 10**11",
            InvalidParameterError,
            lambda t: make_embeddings("random", 6, 10**11),
            lambda t: ["make-dataset", "--d", "100000000000", "-o", t / "out.npz"],
        ),
        Case(
            "ortho d = 10**6", InvalidParameterError, lambda t: make_embeddings("ortho", 3, 10**6)
        ),
        Case(
            "spec random:d=1e11",
            InvalidParameterError,
            lambda t: parse_embeddings_spec("random:d=1e11", 4),
        ),
        Case(
            "spec random:d=10**11",
            InvalidParameterError,
            lambda t: parse_embeddings_spec("random:d=100000000000", 4),
            lambda t: [
                "solve",
                jsonl(t, b'{"sequence": [0, 1], "label": 0}\n'),
                "--embeddings",
                "random:d=100000000000",
            ],
        ),
        Case(
            "spec seed=-1",
            InvalidParameterError,
            lambda t: parse_embeddings_spec("random:d=3,seed=-1", 4),
        ),
        Case(
            "ortho K > d",
            InvalidParameterError,
            lambda t: make_embeddings("ortho", 5, 3),
            lambda t: [
                "make-dataset",
                "--K",
                "5",
                "--d",
                "3",
                "--embeddings",
                "ortho",
                "-o",
                t / "out.npz",
            ],
        ),
        # --- solver
        Case(
            "infeasible (dependent embeddings)",
            InfeasibleProblemError,
            lambda t: solve(cyclic_conflict()),
            lambda t: ["solve", cyclic_conflict().save(t / "conflict.npz")],
        ),
        Case("graphs of another dataset", InvalidParameterError, foreign_graphs),
        # --- text
        Case(
            "text_dataset missing file",
            FileFormatError,
            lambda t: text_dataset("missing.txt", vocab_size=4, seq_len=2, embedding_dim=4),
            lambda t: ["make-dataset", "--text", t / "missing.txt", "-o", t / "out.npz"],
        ),
        Case(
            "text_dataset missing Path",
            FileFormatError,
            lambda t: text_dataset(t / "none", vocab_size=4, seq_len=2, embedding_dim=4),
        ),
        Case(
            "text_dataset binary file",
            FileFormatError,
            lambda t: text_dataset(
                raw(t, "b.txt", b"\xff\xfe\x00\x81 abc"), vocab_size=4, seq_len=2, embedding_dim=4
            ),
            lambda t: [
                "make-dataset",
                "--text",
                raw(t, "b.txt", b"\xff\xfe\x00\x81 abc"),
                "-o",
                t / "out.npz",
            ],
        ),
        Case(
            "text_dataset source=3",
            InvalidParameterError,
            lambda t: text_dataset(3, vocab_size=4, seq_len=2, embedding_dim=4),
        ),
        Case(
            "text_dataset stride='x'",
            InvalidParameterError,
            lambda t: text_dataset(
                "a b a c a b", vocab_size=4, seq_len=2, embedding_dim=4, stride="x"
            ),
        ),
        Case(
            "text_dataset max_samples=0",
            InvalidParameterError,
            lambda t: text_dataset(
                "a b a c a b", vocab_size=4, seq_len=2, embedding_dim=4, max_samples=0
            ),
        ),
        Case(
            "text too short",
            InvalidDatasetError,
            lambda t: text_dataset("a b", vocab_size=4, seq_len=2, embedding_dim=4),
        ),
        # --- dataset files (npz)
        Case(
            "missing file",
            FileFormatError,
            lambda t: load_dataset(t / "missing.npz"),
            lambda t: ["solve", t / "missing.npz"],
        ),
        Case(
            "empty file",
            FileFormatError,
            lambda t: load_dataset(raw(t, "e.npz", b"")),
            lambda t: ["solve", raw(t, "e.npz", b"")],
        ),
        Case(
            "not a zip",
            FileFormatError,
            lambda t: load_dataset(raw(t, "g.npz", b"garbage")),
            lambda t: ["solve", raw(t, "g.npz", b"garbage")],
        ),
        Case(
            ".npy renamed .npz",
            FileFormatError,
            lambda t: load_dataset(npy_as_npz(t)),
            lambda t: ["solve", npy_as_npz(t)],
        ),
        Case(
            "zip of text members",
            FileFormatError,
            lambda t: load_dataset(zip_with(t, {"sequences.npy": b"hello", "labels.npy": b"x"})),
            lambda t: ["solve", zip_with(t, {"sequences.npy": b"hello", "labels.npy": b"x"})],
        ),
        Case(
            "object array member",
            FileFormatError,
            lambda t: load_dataset(
                npz(
                    t,
                    "o.npz",
                    sequences=np.array([[0, 1]], dtype=object),
                    labels=np.array([0]),
                    embeddings=np.eye(2),
                )
            ),
            lambda t: [
                "solve",
                npz(
                    t,
                    "o.npz",
                    sequences=np.array([[0, 1]], dtype=object),
                    labels=np.array([0]),
                    embeddings=np.eye(2),
                ),
            ],
        ),
        Case(
            "string member",
            FileFormatError,
            lambda t: load_dataset(
                npz(
                    t,
                    "s.npz",
                    sequences=np.array([["a", "b"]]),
                    labels=np.array([0]),
                    embeddings=np.eye(2),
                )
            ),
            lambda t: [
                "solve",
                npz(
                    t,
                    "s.npz",
                    sequences=np.array([["a", "b"]]),
                    labels=np.array([0]),
                    embeddings=np.eye(2),
                ),
            ],
        ),
        Case(
            "missing labels member",
            FileFormatError,
            lambda t: load_dataset(npz(t, "m.npz", sequences=np.zeros((1, 2), np.int64))),
            lambda t: ["solve", npz(t, "m.npz", sequences=np.zeros((1, 2), np.int64))],
        ),
        Case(
            "1-D sequences member",
            FileFormatError,
            lambda t: load_dataset(
                npz(
                    t,
                    "f.npz",
                    sequences=np.zeros(3, np.int64),
                    labels=np.array([0]),
                    embeddings=np.eye(2),
                )
            ),
        ),
        Case(
            "bad ids inside a file",
            InvalidDatasetError,
            lambda t: load_dataset(padded_npz(t, [[0, -7]], [0])),
        ),
        Case("a folder", FileFormatError, lambda t: load_dataset(t), lambda t: ["solve", t]),
        Case(
            "wrong suffix",
            FileFormatError,
            lambda t: load_dataset(raw(t, "d.csv", b"0,1\n")),
            lambda t: ["solve", raw(t, "d.csv", b"0,1\n")],
        ),
        # --- dataset files (jsonl)
        Case(
            "binary jsonl",
            FileFormatError,
            lambda t: load_dataset(jsonl(t, b"\xff\xfe\x00\x01bin"), embeddings="random:d=3"),
            lambda t: ["solve", jsonl(t, b"\xff\xfe\x00\x01bin"), "--embeddings", "random:d=3"],
        ),
        Case(
            "jsonl not json",
            FileFormatError,
            lambda t: load_dataset(jsonl(t, b"{oops\n"), embeddings="random:d=3"),
            lambda t: ["solve", jsonl(t, b"{oops\n"), "--embeddings", "random:d=3"],
        ),
        Case(
            "jsonl list record",
            FileFormatError,
            lambda t: load_dataset(jsonl(t, b"[1, 2]\n"), embeddings="random:d=3"),
        ),
        Case(
            "jsonl blank only",
            FileFormatError,
            lambda t: load_dataset(jsonl(t, b"\n\n"), embeddings="random:d=3"),
            lambda t: ["solve", jsonl(t, b"\n\n"), "--embeddings", "random:d=3"],
        ),
        Case(
            "jsonl huge id",
            InvalidDatasetError,
            lambda t: load_dataset(
                jsonl(t, b'{"sequence": [0, 99999999999999999999999], "label": 0}\n'),
                embeddings="random:d=3",
            ),
        ),
        Case(
            "jsonl without embeddings",
            FileFormatError,
            lambda t: load_dataset(jsonl(t, b'{"sequence": [0, 1], "label": 0}\n')),
            lambda t: ["solve", jsonl(t, b'{"sequence": [0, 1], "label": 0}\n')],
        ),
        Case(
            "corrupt embeddings .npy",
            FileFormatError,
            lambda t: load_dataset(
                jsonl(t, b'{"sequence": [0, 1], "label": 0}\n'),
                embeddings=raw(t, "emb.npy", b"\x93NUMPY garbage"),
            ),
            lambda t: [
                "solve",
                jsonl(t, b'{"sequence": [0, 1], "label": 0}\n'),
                "--embeddings",
                raw(t, "emb.npy", b"\x93NUMPY garbage"),
            ],
        ),
        Case(
            "empty embeddings .npy",
            FileFormatError,
            lambda t: load_dataset(
                jsonl(t, b'{"sequence": [0, 1], "label": 0}\n'), embeddings=raw(t, "emb.npy", b"")
            ),
        ),
        # --- outputs, theory files and training (checked before any work)
        Case(
            "unwritable -o (checked before work)",
            OutputError,
            lambda t: solve(good_dataset()).save(raw(t, "blocker", b"a file") / "x.npz"),
            lambda t: ["solve", saved(t), "-o", raw(t, "blocker", b"a file") / "x.npz"],
        ),
        Case(
            "corrupt theory file",
            FileFormatError,
            lambda t: attnmech.load_theory(raw(t, "theory.npz", b"PK\x03\x04 broken")),
        ),
        Case(
            "empty theory file",
            FileFormatError,
            lambda t: attnmech.load_theory(raw(t, "theory.npz", b"")),
        ),
        Case(
            "TrainConfig seed='x'",
            InvalidParameterError,
            lambda t: tiny_train(t, seed="x"),
        ),
        Case(
            "TrainConfig learning_rate='0.1'",
            InvalidParameterError,
            lambda t: tiny_train(t, learning_rate="0.1"),
        ),
        Case(
            "init with NaN",
            InvalidParameterError,
            lambda t: tiny_train(t, init=np.full((8, 8), np.nan)),
        ),
        Case(
            "Adam betas out of range",
            InvalidParameterError,
            lambda t: tiny_train(t, optimizer="adam", adam_betas=(1.5, 0.9)),
        ),
        Case(
            "Adam eps negative",
            InvalidParameterError,
            lambda t: tiny_train(t, optimizer="adam", adam_eps=-1.0),
        ),
        Case(
            "corrupt run file",
            FileFormatError,
            lambda t: attnmech.load_run(raw(t, "run.npz", b"PK\x03\x04 broken")),
        ),
        Case(
            "corrupt checkpoint on resume",
            CheckpointError,
            corrupt_resume,
            lambda t: [
                "train",
                saved(t),
                "--steps",
                "2",
                "-o",
                t / "run.npz",
                "--checkpoint",
                raw(t, "run.ckpt.npz", b"PK\x03\x04 broken"),
                "--resume",
            ],
        ),
        Case(
            "resume with another theory setting",
            CheckpointError,
            resume_other_theory,
        ),
    ]
    for fraction in (0.001, 0.05, 0.3, 0.5, 0.9, 0.999):
        cases.append(
            Case(f"npz truncated at {fraction:g}", FileFormatError,
                 lambda t, f=fraction: load_dataset(truncated(t, f)),
                 lambda t, f=fraction: ["solve", truncated(t, f)])
        )  # fmt: skip
    return cases


def with_memory_limit(gib: float, call: Callable[[], Any]) -> Any:
    """``call()`` with ``ATTNMECH_MEMORY_LIMIT_GB`` set (a small stand-in for a big machine)."""
    import os

    before = os.environ.get("ATTNMECH_MEMORY_LIMIT_GB")
    os.environ["ATTNMECH_MEMORY_LIMIT_GB"] = str(gib)
    try:
        return call()
    finally:
        if before is None:
            del os.environ["ATTNMECH_MEMORY_LIMIT_GB"]
        else:
            os.environ["ATTNMECH_MEMORY_LIMIT_GB"] = before


def zeros_bomb(tmp: Path, megabytes: int = 4) -> Path:
    """A dataset .npz whose sequences member inflates ~1000x (zeros), written streaming."""
    import io

    path = tmp / "bomb.npz"
    rows = megabytes * 2**20 // 64
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(
            header, {"descr": "<i8", "fortran_order": False, "shape": (rows, 8)}
        )
        with archive.open("sequences.npy", "w", force_zip64=True) as handle:
            handle.write(header.getvalue())
            handle.write(bytes(rows * 64))
        for name, array in (("labels", np.zeros(rows, np.int64)), ("embeddings", np.eye(4))):
            buf = io.BytesIO()
            np.save(buf, array)
            archive.writestr(f"{name}.npy", buf.getvalue())
    return path


def huge_npy(tmp: Path) -> Path:
    """An .npy of 200 bytes whose header declares a (10^12, 8) float table."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 8)}
    )
    path = tmp / "huge.npy"
    path.write_bytes(buf.getvalue() + bytes(64))
    return path


def good_jsonl(tmp: Path) -> Path:
    return jsonl(tmp, b'{"sequence": [0, 1, 2], "label": 1}\n{"sequence": [2, 3], "label": 3}\n',
                 "ok.jsonl")  # fmt: skip


def deep_meta(tmp: Path) -> Path:
    path = tmp / "deep.npz"
    np.savez(path, a=np.zeros(2), meta=np.array("[" * 5000 + "]" * 5000))
    return path


def spec_file(tmp: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def locked_sweep(tmp: Path) -> Any:
    """A second writer of a sweep folder while the first holds it."""
    from attnmech._io import exclusive_lock
    from attnmech.studies.sweeps import parse_sweep_spec, run_sweep

    spec = parse_sweep_spec(_TINY_SWEEP)
    with exclusive_lock(tmp / "sw", what="sweep folder"):
        return run_sweep(spec, tmp / "sw", workers=1, resume=True)


_TINY_SWEEP = "[fixed]\nT = 3\nK = 4\nsteps = 5\n[axes]\nn = [3]\nd = [4]\n"


def _budget_cases() -> list[Case]:
    """Reliability r3: resource budgets, bounded readers, errors at the door (issue 21)."""
    from attnmech import TrainConfig, train
    from attnmech._persist import read as persist_read
    from attnmech._io import read_text_bounded
    from attnmech.layer.model import AttentionConfig
    from attnmech.studies.sweeps import load_sweep_spec, parse_sweep_spec, run_sweep

    ds = lambda: Dataset(np.zeros((2000, 6), np.int64), np.zeros(2000, np.int64), E4)  # noqa: E731
    E4 = np.eye(4)
    cases: list[Case] = []

    def add(name: str, error: type[Exception], api: Callable[[Path], Any],
            cli: Callable[[Path], list[str]] | None = None) -> None:
        cases.append(Case(name, error, api, cli))  # fmt: skip

    # --- integer options with upper bounds (item 4)
    for steps in (10**9 + 1, 10**20, 99999999999999999999):
        add(f"steps {steps}", InvalidParameterError, lambda t, s=steps: TrainConfig(steps=s),
            lambda t, s=steps: ["train", saved(t), "--steps", str(s), "-o", t / "r.npz"])  # fmt: skip
    for trials in (10**6 + 1, 10**7, 10**9):
        add(f"trials {trials}", InvalidParameterError, lambda t, n=trials: TrainConfig(trials=n),
            lambda t, n=trials: ["train", saved(t), "--trials", str(n), "-o", t / "r.npz"])  # fmt: skip
    for threads in (10**5, 2**31):
        add(f"threads {threads}", InvalidParameterError,
            lambda t, n=threads: TrainConfig(num_threads=n),
            lambda t, n=threads: ["train", saved(t), "--threads", str(n), "-o", t / "r.npz"])  # fmt: skip
    for every in (10**10, 2**63):
        add(f"log_every {every}", InvalidParameterError, lambda t, e=every: TrainConfig(log_every=e))
        add(f"checkpoint_every {every}", InvalidParameterError,
            lambda t, e=every: TrainConfig(checkpoint_every=e))  # fmt: skip
    for trials in (100_000, 1_000_000):
        add(f"trials {trials} on n=2000: memory estimated first", InvalidParameterError,
            lambda t, n=trials: train(ds(), TrainConfig(trials=n, steps=1)))  # fmt: skip
    add("10^9 logged steps: memory estimated first", InvalidParameterError,
        lambda t: train(good_dataset(), TrainConfig(steps=10**9, log_every=1, trials=50)))  # fmt: skip
    # --- devices (item 5), before any folder or work
    for device in ("gpu", "cuda:99", "bogus:0", "meta", "xla:7", "cuda:-1"):
        add(f"device {device!r}", InvalidParameterError, lambda t, dv=device: TrainConfig(device=dv))
        add(f"model device {device!r}", InvalidParameterError,
            lambda t, dv=device: TrainConfig(model=AttentionConfig(device=dv)))  # fmt: skip
    for device in ("gpu", "cuda:99"):
        add(f"sweep device {device!r}", InvalidParameterError,
            lambda t, dv=device: run_sweep(parse_sweep_spec(_TINY_SWEEP), t / "sw", device=dv),
            lambda t, dv=device: ["sweep", spec_file(t, _TINY_SWEEP), "--out", t / "sw",
                                  "--device", dv])  # fmt: skip
    # --- norms (item 5): lp exponents the conic solver cannot represent
    for norm in ("lp:1e308", "lp:1.0000000001", "lp:1.000001", "lp:1e6", "lp:102", "lp:0.5",
                 "lp:nan", "lp:-inf", "lp:-3", "lp:", "lp:abc", "lp:1e-308"):  # fmt: skip
        add(f"norm {norm}", InvalidParameterError,
            lambda t, n=norm: solve(good_dataset(), svm_norm=n),
            lambda t, n=norm: ["solve", saved(t), "--svm-norm", n])  # fmt: skip
    # --- solver options (item 5): named, on every path
    for method in ("dense", "auto"):
        for options in ({"bogus": 1}, {"tol": 1e-3}, {"max_iters": 5}):
            add(f"svm_options {options} ({method})", InvalidParameterError,
                lambda t, o=options, m=method: solve(good_dataset(), method=m, svm_options=o))  # fmt: skip
        for options in ({"bogus": 1}, {"tie_break": None}, {"maxiter": 3}):
            add(f"finite_options {options} ({method})", InvalidParameterError,
                lambda t, o=options, m=method: solve(good_dataset(), method=m, finite_options=o))  # fmt: skip
    for bad in (3, "max_iter=5", [("max_iter", 5)]):
        add(f"svm_options={bad!r}", InvalidParameterError,
            lambda t, b=bad: solve(good_dataset(), svm_options=b))  # fmt: skip
        add(f"finite_options={bad!r}", InvalidParameterError,
            lambda t, b=bad: solve(good_dataset(), finite_options=b))  # fmt: skip
    # --- wrong Python types at the door (item 5)
    door = {
        "train(3)": lambda t: train(3),
        "train('data.npz')": lambda t: train("data.npz"),
        "train([ds, 3])": lambda t: train([good_dataset(), 3]),
        "train(ds, config=3)": lambda t: train(good_dataset(), 3),
        "train(ds, config={})": lambda t: train(good_dataset(), {}),
        "verify(3, W)": lambda t: attnmech.verify(3, np.zeros((4, 4))),
        "verify('x', W)": lambda t: attnmech.verify("x", np.zeros((4, 4))),
        "load_theory(3)": lambda t: attnmech.load_theory(3),
        "load_theory(None)": lambda t: attnmech.load_theory(None),
        "load_run(3)": lambda t: attnmech.load_run(3),
        "load_run(b'r.npz')": lambda t: attnmech.load_run(b"r.npz"),
        "run_reproduction(3)": lambda t: attnmech.studies.reproduction.runner.run_reproduction(3),
        "bias_table(3)": lambda t: attnmech.studies.bias.bias_table(3),
        "bias_table(norms=[])": lambda t: attnmech.studies.bias.bias_table(t / "b", norms=[]),
        "bias_table(norms=3)": lambda t: attnmech.studies.bias.bias_table(t / "b", norms=3),
        "run_sweep(3, out)": lambda t: run_sweep(3, t / "s"),
        "run_sweep(toml text, out)": lambda t: run_sweep(_TINY_SWEEP, t / "s"),
        "run_sweep(spec, 3)": lambda t: run_sweep(parse_sweep_spec(_TINY_SWEEP), 3),
        "TrainConfig(model=3)": lambda t: TrainConfig(model=3),
        "TrainConfig(steps='10')": lambda t: TrainConfig(steps="10"),
        "TrainConfig(device=3)": lambda t: TrainConfig(device=3),
        "make_dataset('a', ...)": lambda t: make_dataset("a", 4, 6, 8),
        "make_dataset(n_samples=2.5)": lambda t: make_dataset(2.5, 4, 6, 8),
        "spec random:d=8,d=9": lambda t: parse_embeddings_spec("random:d=8,d=9", 4),
        "spec random:d=8,seed=1,seed=2": lambda t: parse_embeddings_spec("random:d=8,seed=1,seed=2", 4),
    }
    for name, call in door.items():
        add(name, InvalidParameterError, call)
    add("make-dataset --embeddings random:d=8,d=9", InvalidParameterError,
        lambda t: parse_embeddings_spec("ortho:d=8,d=9", 4),
        lambda t: ["solve", good_jsonl(t), "--embeddings", "random:d=8,d=9"])  # fmt: skip
    # --- bounded readers (item 4)
    add("zip bomb dataset (sizes from the zip directory)", FileFormatError,
        lambda t: with_memory_limit(0.001, lambda: load_dataset(zeros_bomb(t))))  # fmt: skip
    add("zip bomb through solve", FileFormatError,
        lambda t: with_memory_limit(0.001, lambda: solve(load_dataset(zeros_bomb(t)))))  # fmt: skip
    add(".npy embeddings declaring 64 TB", FileFormatError,
        lambda t: load_dataset(good_jsonl(t), embeddings=huge_npy(t)),
        lambda t: ["solve", good_jsonl(t), "--embeddings", huge_npy(t)])  # fmt: skip
    add("meta nested 5000 deep", FileFormatError, lambda t: persist_read(deep_meta(t), "run"))
    for depth in (65, 1000, 100_000):
        add(f"jsonl line nested {depth} deep", FileFormatError,
            lambda t, k=depth: load_dataset(jsonl(t, b'{"sequence": ' + b"[" * k + b"]" * k
                                                  + b', "label": 0}\n')),
            lambda t, k=depth: ["solve", jsonl(t, b'{"sequence": ' + b"[" * k + b"]" * k
                                              + b', "label": 0}\n')])  # fmt: skip
        add(f"TOML array nested {depth} deep", FileFormatError,
            lambda t, k=depth: load_sweep_spec(spec_file(t, "x = " + "[" * k + "]" * k)),
            lambda t, k=depth: ["sweep", spec_file(t, "x = " + "[" * k + "]" * k), "--out",
                                t / "sw"])  # fmt: skip
    for device in ("/dev/zero", "/dev/urandom", "/dev/null"):
        if Path(device).exists():
            add(f"sweep {device}", FileFormatError, lambda t, dv=device: load_sweep_spec(dv),
                lambda t, dv=device: ["sweep", dv, "--out", t / "sw"])  # fmt: skip
    add("sweep folder as the spec", FileFormatError, lambda t: load_sweep_spec(t),
        lambda t: ["sweep", t, "--out", t / "sw"])  # fmt: skip
    add("sweep file above 16 MiB", FileFormatError,
        lambda t: load_sweep_spec(spec_file(t, "# " + "x" * (16 << 20))))  # fmt: skip
    add("text above its limit", FileFormatError,
        lambda t: read_text_bounded(raw(t, "big.txt", b"word " * 100), max_bytes=64))  # fmt: skip
    add("text file not UTF-8", FileFormatError,
        lambda t: text_dataset(raw(t, "latin.txt", b"caf\xe9 " * 50), vocab_size=4, seq_len=2,
                               embedding_dim=4))  # fmt: skip
    # --- concurrency (items 6-7)
    add("second writer of one sweep folder", OutputError, locked_sweep)
    # --- more values past each bound (one call each, all API-level and fast)
    from attnmech.layer.training import MAX_THREADS

    for field in ("steps", "log_every", "checkpoint_every"):
        for value in (10**12, 2**62, 2**63, 10**100):
            add(f"{field} {value}", InvalidParameterError,
                lambda t, f=field, v=value: TrainConfig(**{f: v}))  # fmt: skip
    for value in (10**8, 2**40, 10**30):
        add(f"trials {value} (API)", InvalidParameterError, lambda t, v=value: TrainConfig(trials=v))
    for value in (MAX_THREADS + 1, 10**4, 10**18):
        add(f"num_threads {value} (API)", InvalidParameterError,
            lambda t, v=value: TrainConfig(num_threads=v))  # fmt: skip
    for norm in ("lp:1.001", "lp:1.005", "lp:200", "lp:1e3", "lp:1e10", "lp:1e100", "lp:0",
                 "lp:1e-5", "lp:1,5", "lp:3x"):  # fmt: skip
        add(f"norm {norm}", InvalidParameterError,
            lambda t, n=norm: solve(good_dataset(), svm_norm=n),
            lambda t, n=norm: ["solve", saved(t), "--svm-norm", n])  # fmt: skip
    for kind in ("random", "ortho", "equicorr"):
        for key, values in (("d", "8,d=9"), ("seed", "8,seed=1,seed=2"), ("rho", "8,rho=0.1,rho=0.2")):
            add(f"spec {kind}:d={values}", InvalidParameterError,
                lambda t, k=kind, v=values: parse_embeddings_spec(f"{k}:d={v}", 4))  # fmt: skip
    for depth in (100, 500, 10_000):
        add(f"TOML table nested {depth} deep", FileFormatError,
            lambda t, k=depth: load_sweep_spec(spec_file(t, "x = " + "{a = " * k + "1" + "}" * k)))  # fmt: skip
        add(f"jsonl object nested {depth} deep", FileFormatError,
            lambda t, k=depth: load_dataset(jsonl(t, b'{"sequence": [0], "label": 0, "x": '
                                                  + b'{"a": ' * k + b"1" + b"}" * k + b"}\n")))  # fmt: skip
    for name in ("eps", "solver", "verbose", "warm_start", "TIE_BREAK"):
        add(f"svm_options {{{name!r}}}", InvalidParameterError,
            lambda t, n=name: solve(good_dataset(), svm_options={n: 1}))  # fmt: skip
    return cases


_TEXT = "the cat sat on the mat and the dog sat on the log " * 4


@functools.lru_cache(maxsize=1)
def _door_data() -> tuple[Dataset, Any]:
    ds = good_dataset()
    return ds, build_priority_graphs(ds)


def _door_cases() -> list[Case]:
    """Reliability r4: the API's doors audited with wrong types, shapes, NaN/inf and duplicates.

    Every entry here was a traceback (TypeError, AttributeError, ValueError, IndexError,
    AxisError, RuntimeError) or a silently accepted wrong value before r4.
    """
    import warnings

    from attnmech import (
        AttentionConfig,
        AttentionObjective,
        Automaton,
        SingleLayerAttention,
        TrainConfig,
        bundled_corpus,
        correlation,
        run_finite_trajectory,
        run_with_cache,
        solve_finite,
        solve_norm_svm,
        train,
        verify,
    )
    from attnmech.studies.bias import BiasConfig
    from attnmech.studies.demo import DemoConfig
    from attnmech.studies.demo import run as demo_run
    from attnmech.studies.reproduction import ReproductionConfig
    from attnmech.studies.reproduction import run as reproduction_run

    ds, graphs = _door_data()
    W = np.zeros((8, 8))
    nan_W = np.full((8, 8), np.nan)
    theory = _door_theory()
    cases: list[Case] = []

    def add(name: str, error: type[Exception], api: Callable[[Path], Any],
            cli: Callable[[Path], list[str]] | None = None) -> None:
        cases.append(Case(name, error, api, cli))  # fmt: skip

    P = InvalidParameterError
    D = InvalidDatasetError
    # --- correlation(A, B): arrays of one matrix shape
    for label, A, B in (("'x'", "x", W), ("{}", {}, W), ("scalar", 3.0, W), ("shapes 8x8/6x6", W, np.eye(6)),
                        ("empty list", [], W), ("vectors", np.ones(3), np.ones(3)),
                        ("stacks 2/3", np.zeros((2, 8, 8)), np.zeros((3, 8, 8)))):  # fmt: skip
        add(f"correlation({label})", P, lambda t, a=A, b=B: correlation(a, b))
    # --- verify: theory, W
    for label, th in (("3", 3), ("'x'", "x"), ("[3]", [3]), ("{}", {})):
        add(f"verify(theory={label})", P, lambda t, x=th: verify(ds, W, x))
    add("verify(W={})", P, lambda t: verify(ds, {}, theory))
    add("verify(W NaN)", P, lambda t: verify(ds, nan_W, theory))
    add("verify(W inf)", P, lambda t: verify(ds, np.full((8, 8), np.inf), theory))
    # --- run_with_cache: W's shape and values, the data
    for label, bad in (("3", 3), ("[]", []), ("6x6", np.eye(6)), ("NaN", nan_W), ("(1, 2)", (1, 2))):
        add(f"run_with_cache(W={label})", P, lambda t, w=bad: run_with_cache(w, ds))
    for label, bad in (("None", None), ("3", 3), ("object()", object())):
        add(f"run_with_cache(data={label})", D, lambda t, x=bad: run_with_cache(W, x))
        add(f"AttentionObjective({label})", D, lambda t, x=bad: AttentionObjective(x))
    # --- run_finite_trajectory: datasets, theories, steps
    for label, bad in (("3", 3), ("None", None), ("1.5", 1.5)):
        add(f"run_finite_trajectory(datasets={label})", D,
            lambda t, x=bad: run_finite_trajectory(x, theory))  # fmt: skip
    for label, bad in (("None", None), ("3", 3), ("[]", []), ("'x'", "x")):
        add(f"run_finite_trajectory(theories={label})", P,
            lambda t, x=bad: run_finite_trajectory(ds, x))  # fmt: skip
    for label, bad in (("3", 3), ("'x'", "x"), ("[]", []), ("[-1]", [-1]), ("[0.5]", [0.5]),
                       ("[[1]]", [[1]]), ("[10**12]", [10**12])):  # fmt: skip
        add(f"run_finite_trajectory(steps={label})", P,
            lambda t, x=bad: run_finite_trajectory(ds, theory, steps=x))  # fmt: skip
    # --- SingleLayerAttention(init=...)
    for label, bad in (("'x'", "x"), ("{}", {}), ("[]", []), ("(1, 2)", (1, 2)), ("NaN", nan_W),
                       ("7x7", np.zeros((7, 7)))):  # fmt: skip
        add(f"SingleLayerAttention(init={label})", P,
            lambda t, x=bad: SingleLayerAttention(8, init=x))  # fmt: skip
    # --- Automaton: arrays and their values; its queries
    E = ds.embeddings
    for label, args in (("W_svm='x'", ("x", W, E)), ("W_fin={}", (W, {}, E)),
                        ("embeddings=object()", (W, W, object())), ("W_svm NaN", (nan_W, W, E)),
                        ("embeddings inf", (W, W, np.full((6, 8), np.inf)))):  # fmt: skip
        add(f"Automaton({label})", P, lambda t, a=args: Automaton(*a))
    add("automaton.retrieve('x')", D, lambda t: theory.automaton().retrieve("x"))
    add("automaton.retrieve(float ids)", D,
        lambda t: theory.automaton().predict_proba(np.array([[0.5, 1.0]])))  # fmt: skip
    add("automaton.next_token_probabilities(['a'])", D,
        lambda t: theory.automaton().next_token_probabilities(["a"]))  # fmt: skip
    add("graphs.to_dot('x')", P, lambda t: graphs.to_dot("x"))
    add("graphs.to_dot([[0]])", P, lambda t: graphs.to_dot([[0, 1]]))
    add("graphs.to_dot([0.5])", P, lambda t: graphs.to_dot([0.5]))
    # --- files and names
    add("Dataset.save(3)", P, lambda t: ds.save(3))
    add("Dataset.save(None)", P, lambda t: ds.save(None))
    add("bundled_corpus([])", P, lambda t: bundled_corpus([]))
    add("bundled_corpus(3)", P, lambda t: bundled_corpus(3))
    # --- solvers
    add("solve_norm_svm(embeddings='x', nuclear)", D,
        lambda t: solve_norm_svm(graphs, "x", "nuclear"))  # fmt: skip

    def nuclear_dict(t: Path) -> Any:
        from attnmech import solve_nuclear_svm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return solve_nuclear_svm(graphs, {})

    add("solve_nuclear_svm(embeddings={})", D, nuclear_dict)
    add("solve(method=np.zeros(0))", P, lambda t: solve(ds, method=np.zeros(0)))
    add("solve(allow_inaccurate='yes')", P, lambda t: solve(ds, allow_inaccurate="yes"))
    add("solve_graph_svm(memory_limit=None)", P,
        lambda t: solve_graph_svm(graphs, E, memory_limit=None))  # fmt: skip
    add("solve_graph_svm(threads=2**70)", P, lambda t: solve_graph_svm(graphs, E, threads=2**70))
    add("solve_graph_svm(reduce=np.zeros(0))", P,
        lambda t: solve_graph_svm(graphs, E, reduce=np.zeros(0)))  # fmt: skip
    add("solve_finite(tol=None)", P, lambda t: solve_finite(ds, graphs, tol=None))
    add("solve_finite(memory_limit=nan)", P, lambda t: solve_finite(ds, graphs, memory_limit=np.nan))
    # --- training options
    for norm in ("x", "lp:0.5", "lp:nan"):
        add(f"train(svm_norm={norm!r})", P,
            lambda t, n=norm: train(ds, TrainConfig(steps=2), svm_norm=n))  # fmt: skip
    add("train(callback=3)", P, lambda t: train(ds, TrainConfig(steps=2), callback=3))
    add("train(checkpoint_path=3)", P, lambda t: train(ds, TrainConfig(steps=2), checkpoint_path=3))
    add("train(record_W='yes')", P, lambda t: train(ds, TrainConfig(steps=2), record_W="yes"))
    add("train(progress=np.zeros(0))", P,
        lambda t: train(ds, TrainConfig(steps=2), progress=np.zeros(0)))  # fmt: skip
    for device in ("x", "cuda:x", "bogus:0"):
        add(f"AttentionConfig(device={device!r})", P, lambda t, d=device: AttentionConfig(device=d))
    for rank in (2**70, 10**7):
        add(f"AttentionConfig(rank={rank})", P,
            lambda t, r=rank: AttentionConfig(parameterization="factorized", rank=r))  # fmt: skip
    # --- text_dataset
    for label, kw in (("stride=2**70", {"stride": 2**70}), ("level=np.zeros(0)", {"level": np.zeros(0)}),
                      ("embeddings=np.zeros(0)", {"embeddings": np.zeros(0)}),
                      ("unknown_labels=np.zeros(0)", {"unknown_labels": np.zeros(0)})):  # fmt: skip
        add(f"text_dataset({label})", P,
            lambda t, k=kw: text_dataset(_TEXT, vocab_size=4, seq_len=2, embedding_dim=4, **k))  # fmt: skip
    # --- studies: configs and output folders
    add("demo run(out_dir=3)", P, lambda t: demo_run(DemoConfig(trials=1, steps=2), out_dir=3))
    add("reproduction run(out_dir=b'x')", P,
        lambda t: reproduction_run(ReproductionConfig(only=("cyclic-6-4-6-8",), trials=1),
                                   out_dir=b"x"))  # fmt: skip
    add("bias run(out_dir=3)", P,
        lambda t: attnmech.studies.bias.run(BiasConfig(settings=("acyclic-4-6-8-8",)), out_dir=3))  # fmt: skip
    add("ReproductionConfig(only=3)", P, lambda t: ReproductionConfig(only=3))
    add("ReproductionConfig(only=[3])", P, lambda t: ReproductionConfig(only=[3]))
    add("ReproductionConfig(only=a setting twice)", P,
        lambda t: ReproductionConfig(only=("cyclic-6-4-6-8", "cyclic-6-4-6-8")),
        lambda t: ["reproduce", "--out", t / "rep", "--only", "cyclic-6-4-6-8", "--only",
                   "cyclic-6-4-6-8", "--trials", "1"])  # fmt: skip
    add("BiasConfig(a setting twice)", P,
        lambda t: BiasConfig(settings=("acyclic-4-6-8-8", "acyclic-4-6-8-8")),
        lambda t: ["bias-table", "--out", t / "b", "--settings", "acyclic-4-6-8-8,acyclic-4-6-8-8",
                   "--trials", "1", "--steps", "10", "--optimizers", "gd"])  # fmt: skip
    add("BiasConfig(settings 'a, a')", P, lambda t: BiasConfig(settings="local-ce, local-ce"))
    return cases


@functools.lru_cache(maxsize=1)
def _door_theory() -> Any:
    return solve(_door_data()[0])


# ------------------------------------------------------------------ sweep operations (r4-sweepops)
_OPS_SWEEP = (
    '[sweep]\nname = "ops"\nseed = 5\ntrials = 2\nbatch_trials = 2\nmetrics = ["loss"]\n'
    "[fixed]\nT = 3\nK = 4\nd = 4\nsteps = 4\nlr = 0.1\n[axes]\nn = [3, 4]\n"
    'optimizer = ["gd", "ngd"]\n'
)
_OPS_BUILT: dict[str, Path] = {}


def _ops_sweep(tmp: Path, text: str = _OPS_SWEEP) -> Path:
    """A finished copy of the small sweep in ``tmp/sw`` (built once per process, then copied)."""
    import shutil
    import tempfile

    from attnmech.studies.sweeps import parse_sweep_spec, run_sweep

    if text not in _OPS_BUILT:
        folder = Path(tempfile.mkdtemp(prefix="attnmech-catalogue-")) / "sw"
        run_sweep(parse_sweep_spec(text), folder, workers=1)
        _OPS_BUILT[text] = folder
    out = tmp / "sw"
    shutil.copytree(_OPS_BUILT[text], out)
    spec_file(tmp, _OPS_SWEEP)
    return out


def _ops_parts(folder: Path) -> list[Path]:
    return sorted((folder / "parts").glob("*.csv"))


def _tamper(kind: str) -> Callable[[Path], Path]:
    """A finished sweep folder in ``tmp/sw`` with one part file damaged as ``kind`` says."""

    def make(tmp: Path) -> Path:
        folder = _ops_sweep(tmp)
        parts = _ops_parts(folder)
        part = parts[1]
        text = part.read_text()
        head, _, body = text.partition("\n")
        lines = body.splitlines(keepends=True)
        if kind == "edited number":
            cells = lines[1].split(",")
            cells[-4] = cells[-4] + "1" if cells[-4] else "1"
            lines[1] = ",".join(cells)
            part.write_text(head + "\n" + "".join(lines))
        elif kind == "edited seed":
            part.write_text(text.replace(lines[1].split(",")[-8], "7", 1))
        elif kind == "row removed":
            part.write_text(head + "\n" + "".join(lines[:-1]))
        elif kind == "row appended":
            part.write_text(text + lines[-1])
        elif kind == "truncated":
            part.write_text(text[: len(text) * 2 // 3])
        elif kind == "header stripped":
            part.write_text(body)
        elif kind == "bogus header":
            part.write_text("# attnmech-sweep-part-v9 hello\n" + body)
        elif kind == "header of another task":
            part.write_text(head.replace(part.stem, parts[0].stem) + "\n" + body)
        elif kind == "stray copy":
            (folder / "parts" / "0123456789abcdef.csv").write_bytes(part.read_bytes())
        elif kind == "two names swapped":
            a, b = parts[0].read_bytes(), part.read_bytes()
            parts[0].write_bytes(b)
            part.write_bytes(a)
        elif kind == "duplicated with a valid header":
            from attnmech.studies.sweeps.store import SweepStore, _units_of, part_header

            digest = SweepStore(folder).manifest()["digest"]
            name = "fedcba9876543210"
            forged = part_header(digest, name, _units_of(part, body), body) + body
            (folder / "parts" / f"{name}.csv").write_text(forged)
        elif kind == "part of another sweep":
            other = _ops_sweep(tmp / "other", _OPS_SWEEP.replace("seed = 5", "seed = 6"))
            foreign = _ops_parts(other)[0]
            target = folder / "parts" / foreign.name
            target.unlink(missing_ok=True)
            target.write_bytes(foreign.read_bytes())
            import shutil

            shutil.rmtree(tmp / "other")
        elif kind == "empty part":
            part.write_text("")
        elif kind == "binary part":
            part.write_bytes(b"\xff\xfe\x00garbage")
        else:  # pragma: no cover
            raise KeyError(kind)
        (folder / "results.csv").unlink()
        return folder

    return make


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_OPS_BIG = (
    '[sweep]\nname = "big"\ntrials = 4\nlog_every = 1\nmetrics = ["loss"]\n'
    "[fixed]\nT = 3\nK = 4\nd = 4\nsteps = 100000000\nlr = 0.1\n[axes]\nn = [3, 4]\n"
)
_OPS_SEARCH = (
    '[sweep]\nname = "lr"\ntrials = 2\nmetrics = ["loss"]\nlog_every = 5\n'
    "[fixed]\nn = 3\nT = 3\nK = 4\nd = 4\nsteps = 20\n[axes]\nlr = [0.01, 0.1]\n"
    '[search]\nobjective = "loss"\ndirection = "minimize"\nsampler = "grid"\nbudget = 2\n'
    'pruner = "{pruner}"\n'
)


def _sweepops_cases() -> list[Case]:
    """Sweep operations: part files that cannot lie, plan memory, Ray addresses (issues 20, 21)."""
    from attnmech.studies.sweeps import load_results, parse_sweep_spec, run_sweep
    from attnmech.studies.sweeps.store import SweepStore

    cases: list[Case] = []

    def add(name: str, error: type[Exception], api: Callable[[Path], Any],
            cli: Callable[[Path], list[str]] | None = None) -> None:
        cases.append(Case(name, error, api, cli))  # fmt: skip

    kinds = ("edited number", "edited seed", "row removed", "row appended", "truncated",
             "header stripped", "bogus header", "header of another task", "stray copy",
             "two names swapped", "duplicated with a valid header", "part of another sweep",
             "empty part", "binary part")  # fmt: skip
    for kind in kinds:
        make = _tamper(kind)
        add(f"sweep --resume with a part file: {kind}", FileFormatError,
            lambda t, m=make: run_sweep(parse_sweep_spec(_OPS_SWEEP), m(t), workers=1,
                                        resume=True),
            lambda t, m=make: ["sweep", t / "s.toml", "--out", m(t), "--resume"])  # fmt: skip
        add(f"load_results of parts with a part file: {kind}", FileFormatError,
            lambda t, m=make: load_results(m(t), prefer_parts=True))  # fmt: skip
        add(f"results.csv assembled with a part file: {kind}", FileFormatError,
            lambda t, m=make: SweepStore(m(t)).consolidate())  # fmt: skip
    # --- the memory of a plan, estimated before any folder
    add("sweep plan: 10^8 logged steps with curves", InvalidParameterError,
        lambda t: run_sweep(parse_sweep_spec(_OPS_BIG), t / "o", curves=True, workers=2),
        lambda t: ["sweep", spec_file(t, _OPS_BIG, "big.toml"), "--out", t / "o", "--curves"])  # fmt: skip
    steps_to_corr = _OPS_BIG.replace('metrics = ["loss"]', 'metrics = ["steps_to_corr"]')
    steps_to_corr = steps_to_corr.replace("log_every = 1\n", "").replace("100000000", "999999990")
    add("sweep plan: steps_to_corr logged every 10 of 10^9 steps", InvalidParameterError,
        lambda t: run_sweep(parse_sweep_spec(steps_to_corr), t / "o", workers=1),
        lambda t: ["sweep", spec_file(t, steps_to_corr, "stc.toml"), "--out", t / "o"])  # fmt: skip
    at_steps = _OPS_BIG.replace("log_every = 1\n", "at_steps = [1, 2, 99999999]\n")
    add("sweep plan: at_steps logged every step of 10^8", InvalidParameterError,
        lambda t: run_sweep(parse_sweep_spec(at_steps), t / "o", workers=1))  # fmt: skip
    for workers in (2, 16):
        add(f"sweep plan: {workers} workers over a 0.3 GiB limit", InvalidParameterError,
            lambda t, w=workers: with_memory_limit(
                0.3, lambda: run_sweep(parse_sweep_spec(_OPS_SWEEP), t / "o", workers=w)))  # fmt: skip
    search_big = _OPS_BIG.replace("lr = 0.1\n", "n = 3\n").replace("n = [3, 4]", "lr = [0.1, 0.2]")
    search_big += _OPS_SEARCH.split("[axes]\nlr = [0.01, 0.1]\n")[1].format(pruner="median")

    def run_search_text(t: Path, text: str, **kw: Any) -> Any:
        from attnmech.studies.sweeps.search import parse_search_spec, run_search

        return run_search(parse_search_spec(text), t / "o", **kw)

    add("search plan: 10^8 logged steps for the pruner", InvalidParameterError,
        lambda t: run_search_text(t, search_big),
        lambda t: ["search", spec_file(t, search_big, "sb.toml"), "--out", t / "o"])  # fmt: skip
    # --- Ray addresses: a dead one fails within --connect-timeout, before any folder
    add("sweep --address to a closed port", InvalidParameterError,
        lambda t: run_sweep(parse_sweep_spec(_OPS_SWEEP), t / "o", backend="ray",
                            address=f"127.0.0.1:{_closed_port()}", connect_timeout=0.3),
        lambda t: ["sweep", spec_file(t, _OPS_SWEEP), "--out", t / "o", "--backend", "ray",
                   "--address", f"127.0.0.1:{_closed_port()}", "--connect-timeout", "0.3"])  # fmt: skip
    search_ok = _OPS_SEARCH.format(pruner="none")
    add("search --address to a closed port", InvalidParameterError,
        lambda t: run_search_text(t, search_ok, backend="ray",
                                  address=f"127.0.0.1:{_closed_port()}", connect_timeout=0.3),
        lambda t: ["search", spec_file(t, search_ok, "se.toml"), "--out", t / "o", "--backend",
                   "ray", "--address", f"127.0.0.1:{_closed_port()}", "--connect-timeout",
                   "0.3"])  # fmt: skip
    for address in ("localhost", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:0",
                    "tcp://127.0.0.1:1", ":6379", "127.0.0.1:abc"):  # fmt: skip
        add(f"sweep --address {address!r}", InvalidParameterError,
            lambda t, a=address: run_sweep(parse_sweep_spec(_OPS_SWEEP), t / "o", backend="ray",
                                           address=a, connect_timeout=0.3),
            lambda t, a=address: ["sweep", spec_file(t, _OPS_SWEEP), "--out", t / "o",
                                  "--backend", "ray", "--address", a])  # fmt: skip
    for value in ("0", "-1", "nan", "inf", "1e9"):
        add(f"sweep --connect-timeout {value}", InvalidParameterError,
            lambda t, v=value: parse_sweep_spec(_OPS_SWEEP).replace(connect_timeout=float(v)),
            lambda t, v=value: ["sweep", spec_file(t, _OPS_SWEEP), "--out", t / "o",
                                "--connect-timeout", v])  # fmt: skip
        add(f"search --connect-timeout {value}", InvalidParameterError,
            lambda t, v=value: run_search_text(t, search_ok, connect_timeout=float(v)),
            lambda t, v=value: ["search", spec_file(t, search_ok, "se.toml"), "--out", t / "o",
                                "--connect-timeout", v])  # fmt: skip
    for bad in ("30", True, None):
        add(f"run_sweep(connect_timeout={bad!r})", InvalidParameterError,
            lambda t, b=bad: parse_sweep_spec(_OPS_SWEEP).replace(connect_timeout=b))  # fmt: skip
    # --- search on Ray: its options
    add("search backend 'dask'", InvalidParameterError,
        lambda t: run_search_text(t, search_ok, backend="dask"))  # fmt: skip
    add("search --address without --backend ray", InvalidParameterError,
        lambda t: run_search_text(t, search_ok, address="127.0.0.1:6379"),
        lambda t: ["search", spec_file(t, search_ok, "se.toml"), "--out", t / "o", "--address",
                   "127.0.0.1:6379"])  # fmt: skip
    return cases


CASES = _cases() + _budget_cases() + _door_cases()
CASES += _sweepops_cases()


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.name)


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_api_raises_the_documented_error(case: Case, tmp_path: Path) -> None:
    with pytest.raises(AttnmechError) as info:
        case.api(tmp_path)
    assert type(info.value) is case.error, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert message.strip(), "an error must say what is wrong"
    if isinstance(info.value, FileFormatError):  # file errors name the file
        assert info.value.path is not None and Path(info.value.path).name in message, message


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.cli is not None])
def test_cli_one_error_line_nothing_written(case: Case, tmp_path: Path) -> None:
    assert case.cli is not None
    argv = [str(a) for a in case.cli(tmp_path)]
    before = _files(tmp_path)
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert _files(tmp_path) == before, "a failing command must not write files"


@pytest.mark.parametrize("command", ["make-dataset", "train"])
def test_negative_seed_is_an_option_error(command: str, tmp_path: Path) -> None:
    """A seed below 0 is refused by the option itself (exit 2, usage message, nothing written)."""
    argv = [command] if command == "make-dataset" else [command, str(tmp_path / "missing.npz")]
    argv += ["--seed", "-1", "-o", str(tmp_path / "out.npz")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "--seed" in result.output and "Traceback" not in result.output
    assert _files(tmp_path) == set()


def test_catalogue_size() -> None:
    """Keep the catalogue from shrinking silently (counts go in the report)."""
    assert len(CASES) >= 190
    assert sum(c.cli is not None for c in CASES) >= 70


@pytest.mark.parametrize("offset_fraction", [0.0, 0.01, 0.1, 0.25, 0.4, 0.6, 0.75, 0.95, 0.999])
def test_flipped_byte_is_an_error_or_the_same_dataset(offset_fraction: float, tmp_path) -> None:
    """A flipped byte either gives a clean error or (in a field nobody reads) the same dataset:
    never a different one."""
    original = good_dataset()
    path = original.save(tmp_path / "flip.npz")
    data = bytearray(path.read_bytes())
    data[min(int(len(data) * offset_fraction), len(data) - 1)] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        loaded = load_dataset(path)
    except (FileFormatError, InvalidDatasetError):
        result = runner.invoke(app, ["solve", str(path)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    else:
        assert loaded == original


def test_stale_temp_file_beside_checkpoint_is_ignored(tmp_path: Path) -> None:
    """A temp file left by a killed writer (``.<name>.XXXX.npz``) does not break a resume."""
    pytest.importorskip("torch")
    from attnmech import TrainConfig, train

    ckpt = tmp_path / "run.ckpt.npz"
    config = TrainConfig(num_steps=4, checkpoint_every=2)
    first = train(good_dataset(), config, checkpoint_path=ckpt)
    (tmp_path / ".run.ckpt.npz.abc123.npz").write_bytes(b"PK\x03\x04 half written")
    again = train(good_dataset(), config, checkpoint_path=ckpt, resume=True)
    np.testing.assert_array_equal(np.asarray(first.W), np.asarray(again.W))


# ------------------------------------------------------------------ declared parameter tables
# Every table declared with attnmech._validation.register gets one call per invalid value of each
# of its constraints (a value that breaks every constraint of its parameter): the call must raise
# InvalidParameterError, in the one message form, naming the parameter.
import attnmech.data.generators  # noqa: E402  (modules that declare tables)
import attnmech.data.text  # noqa: E402,F811
import attnmech.layer.optim  # noqa: E402
import attnmech.layer.training  # noqa: E402
import attnmech.studies.authors  # noqa: E402
import attnmech.studies.bias  # noqa: E402
import attnmech.studies.reproduction.runner  # noqa: E402
import attnmech.layer.model  # noqa: E402
import attnmech.layer.regpath  # noqa: E402
import attnmech.layer.verification  # noqa: E402
import attnmech.theory.automaton  # noqa: E402
import attnmech.theory.finite  # noqa: E402
import attnmech.theory.graphsvm.solve  # noqa: E402
import attnmech.theory.norms  # noqa: E402
import attnmech.theory.solve  # noqa: E402
from attnmech import _validation  # noqa: E402



def _table_callers(tmp: Path) -> dict[str, Callable[..., Any]]:
    """For each table: a call of the real API with valid values, one of them replaced."""
    from attnmech.data.dataset import OneHotEmbeddings
    from attnmech.layer.optim import make_step_rule
    from attnmech.layer.training import TrainConfig
    from attnmech.studies.authors import authors_trials, draw_authors_dataset, train_authors
    from attnmech.studies.bias import bias_table
    from attnmech.studies.reproduction.runner import run_reproduction

    ds = Dataset([[0, 1], [1, 0]], [0, 1], np.eye(2))
    return {
        "make_dataset": lambda **kw: make_dataset(
            **{"n_samples": 4, "seq_len": 3, "vocab_size": 5, "embedding_dim": 6, **kw}
        ),
        "make_embeddings": lambda **kw: make_embeddings(
            **{"kind": "random", "vocab_size": 3, "embedding_dim": 4, **kw}
        ),
        "OneHotEmbeddings": lambda **kw: OneHotEmbeddings(**kw),
        "Dataset": lambda **kw: Dataset(
            [[0, 1]], [0], "onehot" if "vocab_size" in kw else np.eye(2), **kw
        ),
        "text_dataset": lambda **kw: text_dataset(
            _TEXT, **{"vocab_size": 4, "seq_len": 2, "embedding_dim": 4, **kw}
        ),
        "TrainConfig": lambda **kw: TrainConfig(**kw),
        "StepRule": lambda **kw: make_step_rule("gd", kw["learning_rate"], {}),
        "Adam": lambda **kw: make_step_rule("adam", 0.1, kw),
        "run_reproduction": lambda **kw: run_reproduction(tmp / "repro", **kw),
        "run_setting": None,  # the same table as run_reproduction
        "draw_authors_dataset": lambda **kw: draw_authors_dataset(
            None, **{"n": 2, "T": 2, "K": 2, "d": 2, **kw}
        ),
        "authors_trials": lambda **kw: authors_trials("cyclic-6-4-6-8", **kw),
        "train_authors": lambda **kw: train_authors([ds], np.zeros((1, 2, 2)), **kw),
        "bias_table": lambda **kw: bias_table(tmp / "bias", **kw),
        # doors of the public API (reliability r4): each call is refused before any work
        **_door_callers(tmp),
    }


def _door_callers(tmp: Path) -> dict[str, Callable[..., Any]]:
    """Callers of the tables declared at the API's doors (solvers, training, the model)."""
    from attnmech import (
        AttentionObjective,
        Automaton,
        SingleLayerAttention,
        TrainConfig,
        reduce_dataset,
        regularization_path,
        run_finite_trajectory,
        run_with_cache,
        solve_finite,
        solve_norm_svm,
        train,
        verify,
    )

    ds, graphs = _door_data()
    W = np.zeros((8, 8))
    cfg = TrainConfig(steps=2)
    return {
        "solve_graph_svm": lambda **kw: solve_graph_svm(graphs, ds.embeddings, **kw),
        "solve_finite": lambda **kw: solve_finite(ds, graphs, **kw),
        "reduce_dataset": lambda **kw: reduce_dataset(**{"dataset": ds, "graphs": graphs, **kw}),
        "solve": lambda **kw: solve(ds, **kw),
        "Automaton": lambda **kw: Automaton(W, W, ds.embeddings, **kw),
        "solve_norm_svm": lambda **kw: solve_norm_svm(graphs, ds.embeddings, "l1", **kw),
        "train": lambda **kw: train(ds, cfg, **kw),
        "run_finite_trajectory": lambda **kw: run_finite_trajectory(ds, None, **kw),
        "verify": lambda **kw: verify(ds, W, None, **kw),
        "regularization_path": lambda **kw: regularization_path(ds, **{"radii": [1.0], **kw}),
        "run_with_cache": lambda **kw: run_with_cache(**{"W": W, "data": ds, **kw}),
        "AttentionObjective": lambda **kw: AttentionObjective(ds, **kw),
        "SingleLayerAttention": lambda **kw: SingleLayerAttention(**{"embedding_dim": 8, **kw}),
    }


def _generated_cases() -> list[tuple[str, str, Any]]:
    cases = []
    for where, table in sorted(_validation.TABLES.items()):
        for param, specs in table.items():
            constraints = [_validation.make_constraint(s) for s in specs]
            for constraint in constraints:
                for value in constraint.invalid_values():
                    if not any(c.is_satisfied_by(value) for c in constraints):
                        cases.append((where, param, value))
    return cases


GENERATED = _generated_cases()


def _shown(value: Any) -> str:
    """A test id that is the same in every process (no memory addresses, for pytest-xdist)."""
    text = repr(value)
    return type(value).__name__ if " at 0x" in text else text


def test_every_declared_table_is_exercised(tmp_path: Path) -> None:
    callers = _table_callers(tmp_path)
    assert set(_validation.TABLES) <= set(callers), set(_validation.TABLES) - set(callers)
    tables_hit = {where for where, _, _ in GENERATED}
    assert tables_hit == set(_validation.TABLES)
    assert len(GENERATED) >= 100


@pytest.mark.parametrize(
    ("where", "param", "value"),
    [pytest.param(w, p, v, id=f"{w}.{p}={_shown(v)}"[:80]) for w, p, v in GENERATED],
)
def test_declared_constraint_is_enforced(where: str, param: str, value: Any, tmp_path: Path) -> None:
    call = _table_callers(tmp_path)[where]
    if call is None:
        pytest.skip(f"{where} shares its table with another entry")
    with pytest.raises(InvalidParameterError) as info:
        call(**{param: value})
    message = str(info.value)
    assert f"{param} must be " in message and ", got " in message, message
    assert isinstance(info.value, AttnmechError) and not isinstance(
        info.value, InvalidDatasetError
    )


def test_one_class_for_one_mistake(tmp_path: Path) -> None:
    """A zero count is a parameter mistake wherever it is made."""
    from attnmech.studies.reproduction.runner import run_reproduction

    errors = []
    for call in (
        lambda: make_dataset(0, 3, 5, 6),
        lambda: run_reproduction(tmp_path, trials=0),
        lambda: text_dataset(_TEXT, vocab_size=4, seq_len=0, embedding_dim=4),
        lambda: text_dataset(_TEXT, vocab_size=4, seq_len=2, embedding_dim=4, stride=0),
        lambda: attnmech.TrainConfig(trials=0),
    ):
        with pytest.raises(AttnmechError) as info:
            call()
        errors.append(type(info.value))
    assert set(errors) == {InvalidParameterError}
