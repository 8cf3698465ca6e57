"""Atomic writes, output checks and the shared summary helpers (_io, _summary)."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from attnmech._io import (
    atomic_path,
    atomic_savez,
    atomic_write_text,
    check_writable,
    temporary_pattern,
)
from attnmech._summary import environment_info, summary_stats
from attnmech.errors import AttnmechError, OutputError


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_temporaries_have_a_recognisable_name(tmp_path):
    target = tmp_path / "run.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and temporary_pattern(target).match(tmp.name)
        assert not temporary_pattern(tmp_path / "other.npz").match(tmp.name)
        tmp.write_bytes(b"x")


def test_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    """A writer killed mid-write (kill -9) leaves its temporary; the next write removes it."""
    target = tmp_path / "run.npz"
    stale = [tmp_path / ".run.npz.0123456789ab.tmp.npz", tmp_path / ".run.npz.ba9876543210.tmp"]
    keep = [
        tmp_path / ".other.npz.0123456789ab.tmp.npz",  # another target's
        tmp_path / ".run.npz.backup",  # not the pattern
        tmp_path / "notes.txt",
    ]
    old = time.time() - 60
    for path in stale + keep:
        path.write_bytes(b"")
        os.utime(path, (old, old))
    atomic_savez(target, a=np.arange(3))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([p.name for p in keep] + ["run.npz"])
    np.testing.assert_array_equal(np.load(target)["a"], [0, 1, 2])


def test_file_mode_follows_the_umask_and_the_umask_is_untouched(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert os.umask(0o027) == 0o027  # still what we set: the writer did not change it
        mode = (tmp_path / "a.txt").stat().st_mode & 0o777
    finally:
        os.umask(previous)
    assert mode == 0o640  # 0o666 & ~0o027, as for open(path, "w")


def test_importing_io_changes_no_process_state():
    import subprocess

    code = (
        "import os; os.umask(0o077); import attnmech._io, attnmech.data.dataset, attnmech.theory.solve; "
        "print(oct(os.umask(0o022)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "0o77"


def test_unwritable_places_are_output_errors(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for path, fragment in [
        (blocker / "out.npz", "is a file, not a folder"),
        (blocker / "deeper" / "out.npz", "is a file, not a folder"),
        (tmp_path, "it is a folder"),
    ]:
        with pytest.raises(OutputError, match=fragment) as info:
            check_writable(path)
        assert isinstance(info.value, AttnmechError) and isinstance(info.value, OSError)
        assert str(path) in info.value.strerror and info.value.filename == str(path)
    assert check_writable(tmp_path / "new" / "deep" / "out.npz") == tmp_path / "new/deep/out.npz"
    assert not (tmp_path / "new").exists()  # checking writes nothing
    with pytest.raises(OutputError, match="cannot write"):
        atomic_write_text(blocker / "out.txt", "x")
    assert blocker.read_text() == "x"


def test_summary_stats():
    s = summary_stats(np.array([1.0, np.nan, 3.0, np.inf]))
    assert (s["mean"], s["std"], s["min"], s["max"]) == (2.0, 1.0, 1.0, 3.0)
    assert s["values"] == [1.0, None, 3.0, None]
    assert summary_stats(0.5) == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5, "values": [0.5]}
    empty = summary_stats([np.nan])
    assert empty["mean"] is None and empty["values"] == [None]
    rng = np.random.default_rng(0)
    values = rng.normal(size=7)
    s = summary_stats(values)
    assert s["std"] == pytest.approx(float(np.std(values)), rel=1e-15)


def test_environment_info_does_not_import_torch():
    import subprocess

    code = (
        "import json, sys; from attnmech._summary import environment_info; "
        "info = environment_info(); print(json.dumps([info['torch'], 'torch' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[null, false]"
    import torch

    info = environment_info()
    assert info["torch"] == str(torch.__version__) and info["numpy"] == np.__version__
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["cpu_cores_available"] >= 1


# ----------------------------------------------------------------- durability, locks and paths
def test_a_live_writers_temporary_survives_and_a_dead_writers_is_removed(tmp_path):
    import os
    import subprocess
    import sys

    from attnmech._io import atomic_write_text, temporary_pattern

    target = tmp_path / "r.txt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead_tmp = tmp_path / f".r.txt.{dead_pid}-{'a' * 12}.tmp.txt"
        live_tmp = tmp_path / f".r.txt.{live.pid}-{'b' * 12}.tmp.txt"
        for p in (dead_tmp, live_tmp):
            p.write_text("partial")
            assert temporary_pattern(target).match(p.name)
        atomic_write_text(target, "done")
        assert target.read_text() == "done"
        assert not dead_tmp.exists()  # its writer is gone
        assert live_tmp.exists()  # its writer is still running: never touched
    finally:
        live.kill()
        live.wait()
    assert os.path.exists(live_tmp)


def test_overwrite_keeps_the_mode_and_flushes_file_and_folder(tmp_path, monkeypatch):
    import os

    from attnmech import _io

    target = tmp_path / "r.txt"
    target.write_text("old")
    os.chmod(target, 0o600)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(_io.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    _io.atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o600)
    assert len(synced) == 2  # the temporary, then the folder


def test_inside_refuses_paths_that_leave_the_folder(tmp_path):
    import os

    from attnmech._io import inside
    from attnmech.errors import OutputError

    (tmp_path / "out").mkdir()
    assert inside(tmp_path / "out", "grid", "a.png") == tmp_path / "out" / "grid" / "a.png"
    with pytest.raises(OutputError, match="leads outside"):
        inside(tmp_path / "out", "../../etc")
    with pytest.raises(OutputError, match="leads outside"):
        inside(tmp_path / "out", "/tmp/x")
    os.symlink(tmp_path, tmp_path / "out" / "parts")
    with pytest.raises(OutputError, match="leads outside"):
        inside(tmp_path / "out", "parts", "p.csv")


def test_exclusive_lock_refuses_a_second_writer_and_frees_on_exit(tmp_path):
    from attnmech._io import exclusive_lock
    from attnmech.errors import OutputError

    with exclusive_lock(tmp_path / "sweep"):
        with pytest.raises(OutputError, match=r"being written by another attnmech process \(pid \d+\)"):
            with exclusive_lock(tmp_path / "sweep"):
                pass
    with exclusive_lock(tmp_path / "sweep"):  # released: can be taken again
        pass


# ----------------------------------------------------------------- bounded readers
def test_bounded_text_reader_refuses_devices_and_oversized_files(tmp_path):
    from attnmech._io import read_text_bounded
    from attnmech.errors import FileFormatError

    path = tmp_path / "spec.toml"
    path.write_text("a = 1\n")
    assert read_text_bounded(path) == "a = 1\n"
    with pytest.raises(FileFormatError, match="not a regular file"):
        read_text_bounded("/dev/zero", what="sweep spec")
    with pytest.raises(FileFormatError, match="above the limit of 3 bytes"):
        read_text_bounded(path, max_bytes=3)
    (tmp_path / "bad.txt").write_bytes(b"ok\xff")
    with pytest.raises(FileFormatError, match=r"not UTF-8 text \(byte 2\)"):
        read_text_bounded(tmp_path / "bad.txt")


def test_nesting_is_measured_outside_strings_and_refused_when_deep():
    from attnmech._io import MAX_JSON_DEPTH, check_nesting, nesting_depth
    from attnmech.errors import FileFormatError

    assert nesting_depth('{"a": "[[[{{{"}') == 1
    assert nesting_depth("x = [[1], [[2]]]") == 3
    check_nesting("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, what="meta")
    with pytest.raises(FileFormatError, match=f"nests {MAX_JSON_DEPTH + 1} levels deep"):
        check_nesting("[" * (MAX_JSON_DEPTH + 1), what="meta")


def test_npz_budget_refuses_a_zip_bomb_before_inflating(tmp_path):
    import zipfile

    from attnmech._io import check_npz_budget
    from attnmech.errors import FileFormatError

    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("W.npy", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(64):  # 64 MiB of zeros, about 64 kB on disk
                member.write(block)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(FileFormatError, match=r"would inflate to 67,108,864 bytes \(member 'W.npy'"):
        check_npz_budget(bomb, max_bytes=32 << 20)
    check_npz_budget(bomb, max_bytes=128 << 20)
    (tmp_path / "not.npz").write_text("hello")
    with pytest.raises(FileFormatError, match="not a readable .npz archive"):
        check_npz_budget(tmp_path / "not.npz")
