"""Outputs that a failure cannot half-write, one writer per study folder, error lines that start
on their own line (reliability r4).

- A full disk (``ENOSPC``) at the k-th file of a study's output leaves the folder exactly as it
  was (names, bytes and modes), for every k, with one ``error:`` line on the command line.
- A study's ``run(..., out_dir=...)`` holds the folder's lock in the API as in the CLI: a second
  writer is refused, naming the holder's pid; ``resume`` still works.
- An error raised while a progress bar is drawn starts on a fresh line.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from attnmech import _io
from attnmech._io import exclusive_lock, output_transaction
from attnmech.cli import app
from attnmech.errors import OutputError

runner = CliRunner()


# ------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def disk_full_at(k: int) -> Iterator[dict[str, int]]:
    """Make the k-th file written through the atomic writer fail with ``ENOSPC`` (the disk is
    full when its content is flushed, before it replaces anything)."""
    real = _io._fsync_path
    count = {"files": 0}

    def flush(path: Path, *, folder: bool = False) -> None:
        if not folder:
            count["files"] += 1
            if count["files"] == k:
                raise OSError(errno.ENOSPC, "No space left on device")
        real(path, folder=folder)

    _io._fsync_path = flush  # type: ignore[assignment]
    try:
        yield count
    finally:
        _io._fsync_path = real  # type: ignore[assignment]


def snapshot(folder: Path) -> dict[str, Any]:
    """Every entry below ``folder`` (hidden ones too): files with bytes and mode, folders."""
    if not folder.exists():
        return {}
    state: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_dir():
            state[key] = "folder"
        else:
            state[key] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return state


def count_writes(call: Any) -> int:
    with disk_full_at(0) as count:
        call()
    return count["files"]


# ------------------------------------------------------------------------------ the transaction
def test_transaction_restores_every_file_at_every_k(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.txt").write_text("old\n")
    (out / "a.txt").write_text("old a\n")
    os.chmod(out / "a.txt", 0o600)

    def write() -> None:
        with output_transaction(out):
            _io.atomic_write_text(out / "a.txt", "new a\n")
            _io.atomic_write_text(out / "sub" / "b.txt", "new b\n")
            _io.atomic_savez(out / "c.npz", x=np.arange(3))
            _io.atomic_write_text(out / "a.txt", "newer a\n")

    before = snapshot(out)
    assert count_writes(lambda: None) == 0
    for k in range(1, 5):
        with disk_full_at(k), pytest.raises(OutputError) as info:
            write()
        assert info.value.errno == errno.ENOSPC
        assert "No space left on device" in str(info.value.strerror)
        assert "left as it was before" in str(info.value.strerror)
        assert snapshot(out) == before, k  # no new file, no new folder, no backup left
    write()
    assert (out / "a.txt").read_text() == "newer a\n" and (out / "sub" / "b.txt").exists()
    assert (out / "a.txt").stat().st_mode & 0o777 == 0o600
    assert not [p for p in out.rglob(".*")], "no temporary or backup is left after success"


def test_transaction_on_a_new_folder_removes_it(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper"
    for k in (1, 2):
        with disk_full_at(k), pytest.raises(OutputError):
            with output_transaction(out):
                _io.atomic_write_text(out / "a.txt", "a")
                _io.atomic_write_text(out / "b.txt", "b")
        assert not (tmp_path / "new").exists()


def test_any_error_in_the_block_rolls_back(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(KeyError):
        with output_transaction(tmp_path):
            _io.atomic_write_text(tmp_path / "a.txt", "new")
            raise KeyError("figure failed")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


# ------------------------------------------------------------------------------ the studies
@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    from attnmech.studies.demo import DemoConfig, run

    return run(DemoConfig(trials=2, steps=40, log_every=10, formats=("png",)))


def _demo_disk_full(result: Any, tmp_path: Path, figures: bool, ks: Any = None) -> None:
    fresh = tmp_path / "fresh"
    n = count_writes(lambda: result.write(tmp_path / "count", figures=figures))
    assert n >= (7 if figures else 3)  # run.npz, [4 figures,] results.json, REPORT.md
    for k in ks or range(1, n + 1):
        with disk_full_at(k), pytest.raises(OutputError, match="No space left"):
            result.write(fresh, figures=figures)
        assert not fresh.exists(), k
    earlier = tmp_path / "earlier"
    result.write(earlier, figures=figures)
    (earlier / "REPORT.md").write_text("an earlier report\n")
    (earlier / "notes.txt").write_text("the user's own file\n")
    before = snapshot(earlier)
    for k in ks or range(1, n + 1):
        with disk_full_at(k), pytest.raises(OutputError, match="left as it was before"):
            result.write(earlier, figures=figures)
        assert snapshot(earlier) == before, k


def test_demo_output_disk_full_at_every_file(demo_result, tmp_path: Path) -> None:
    """Fresh folder and a folder holding an earlier demo: at every k the folder is unchanged."""
    _demo_disk_full(demo_result, tmp_path, figures=False)


def test_demo_output_with_figures_disk_full(demo_result, tmp_path: Path) -> None:
    """With figures: a full disk at the third file (a figure), on a folder with a demo in it."""
    earlier = tmp_path / "earlier"
    demo_result.write(earlier)
    (earlier / "REPORT.md").write_text("an earlier report\n")
    before = snapshot(earlier)
    with disk_full_at(3), pytest.raises(OutputError, match="left as it was before"):
        demo_result.write(earlier)
    assert snapshot(earlier) == before


@pytest.mark.slow
def test_demo_output_with_figures_disk_full_at_every_file(demo_result, tmp_path: Path) -> None:
    _demo_disk_full(demo_result, tmp_path, figures=True)


def test_demo_cli_disk_full_one_error_line_folder_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--trials", "1", "--steps", "20", "--no-progress"]
    with disk_full_at(2):
        result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "No space left on device" in errors[0] and "left as it was before" in errors[0]
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))


def test_bias_table_disk_full_keeps_runs_restores_the_table(tmp_path: Path) -> None:
    """The finished runs (``runs/``, for ``--resume``) stay; results, table and figures are
    all or nothing."""
    from attnmech.studies.bias import BiasOptimizer, bias_table

    kwargs: dict[str, Any] = {
        "settings": ["acyclic-4-6-8-8"],
        "trials": 1,
        "optimizers": [BiasOptimizer("gd", "gd", 1.0, 40)],
        "norms": ("fro", "l1"),
        "log_points": 10,
        "figures": False,
    }
    out = tmp_path / "bias"
    bias_table(out, **kwargs)
    n = count_writes(lambda: bias_table(out, resume=True, **kwargs))
    assert n >= 2  # results.json, TABLE.md
    (out / "TABLE.md").write_text("an edited table\n")
    before = snapshot(out)
    for k in range(1, n + 1):
        with disk_full_at(k), pytest.raises(OutputError, match="left as it was before"):
            bias_table(out, resume=True, **kwargs)
        assert snapshot(out) == before, k
    bias_table(out, resume=True, **kwargs)
    assert (out / "TABLE.md").read_text() != "an edited table\n"


def test_sweep_results_disk_full_restores_results_csv(tmp_path: Path) -> None:
    from attnmech.studies.sweeps import parse_sweep_spec, run_sweep

    spec = parse_sweep_spec("[fixed]\nT = 3\nK = 4\nsteps = 5\n[axes]\nn = [3]\nd = [4, 5]\n")
    out = tmp_path / "sw"
    run_sweep(spec, out, workers=1)
    n = count_writes(lambda: run_sweep(spec, out, workers=1, resume=True))
    (out / "results.csv").write_text("edited\n")
    before = snapshot(out)
    # the resume rewrites the manifest first (its own atomic file), then the outputs
    assert n >= 3
    for k in range(2, n + 1):
        with disk_full_at(k), pytest.raises(OutputError):
            run_sweep(spec, out, workers=1, resume=True)
        after = snapshot(out)
        assert after["results.csv"] == before["results.csv"], k
        assert {key for key in after} == {key for key in before}, k


# ------------------------------------------------------------------------------ one writer
def test_bias_table_from_python_takes_the_folder_lock(tmp_path: Path) -> None:
    from attnmech.studies.bias import bias_table

    out = tmp_path / "bias"
    with exclusive_lock(out, what="bias-table folder"):
        with pytest.raises(OutputError, match=rf"another attnmech process \(pid {os.getpid()}\)"):
            bias_table(out, settings=["acyclic-4-6-8-8"], trials=1, optimizers=["gd"], steps=10)
        assert sorted(p.name for p in out.iterdir()) == [".attnmech.lock"]
    assert not out.exists(), "the lock made the folder; nothing else was written: it is removed"


@pytest.mark.parametrize("study", ["demo", "reproduction", "text", "bias"])
def test_every_study_run_refuses_a_second_writer(study: str, tmp_path: Path) -> None:
    from attnmech.studies.scaffold import get_study

    module = get_study(study)
    config = {
        "demo": lambda: module.CONFIG_TYPE(trials=1, steps=10),
        "reproduction": lambda: module.CONFIG_TYPE(only=("cyclic-6-4-6-8",), trials=1),
        "text": lambda: module.CONFIG_TYPE(),
        "bias": lambda: module.CONFIG_TYPE(settings=("acyclic-4-6-8-8",), trials=1),
    }[study]()
    out = tmp_path / "held"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    with exclusive_lock(out):
        with pytest.raises(OutputError, match=f"pid {os.getpid()}"):
            module.run(config, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_resume_after_a_locked_run_and_no_lock_file_left(demo_result, tmp_path: Path) -> None:
    from attnmech.studies.demo import DemoConfig, run

    out = tmp_path / "demo"
    config = DemoConfig(trials=1, steps=10, log_every=5, formats=("png",))
    first = run(config, out_dir=out)
    assert not (out / ".attnmech.lock").exists()
    messages: list[str] = []
    again = run(config, out_dir=out, resume=True, progress=messages.append)
    assert any("nothing to rerun" in m for m in messages)
    assert again.rows == first.rows


def test_cli_bias_table_on_a_held_folder_names_the_pid(tmp_path: Path) -> None:
    out = tmp_path / "bias"
    with exclusive_lock(out, what="bias-table folder"):
        result = runner.invoke(app, ["bias-table", "--out", str(out), "--trials", "1",
                                     "--steps", "10", "--optimizers", "gd"])  # fmt: skip
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"pid {os.getpid()}" in errors[0], result.output


# ------------------------------------------------------------------------------ error lines
def test_an_error_with_a_bar_still_drawn_starts_on_a_fresh_line(capsys) -> None:
    """A bar that its owner never closed is closed by the CLI before it prints the error."""
    import sys

    import typer
    from tqdm import tqdm

    from attnmech.cli._app import _reports_errors

    @_reports_errors
    def command() -> None:
        bar = tqdm(total=100, desc="work", file=sys.stderr, mininterval=0)
        bar.update(30)
        command.bar = bar  # type: ignore[attr-defined]  # kept alive, never closed
        raise OutputError(errno.ENOSPC, "cannot write x: No space left on device", "x")

    with pytest.raises(typer.Exit):
        command()
    err = capsys.readouterr().err
    assert "30/100" in err and "\nerror: cannot write x: No space left on device\n" in err, err
    assert err.endswith("error: cannot write x: No space left on device\n")


def test_train_failing_mid_run_with_a_bar_prints_the_error_on_its_own_line(
    tmp_path: Path, monkeypatch
) -> None:
    """``train`` with its bar forced on and the disk full at the second checkpoint."""
    import attnmech.cli.core as core
    from attnmech import make_dataset

    monkeypatch.setattr(core, "_show_progress", lambda no_progress, steps: True)
    data = make_dataset(6, 4, 6, 8, seed=0).save(tmp_path / "d.npz")
    args = ["train", str(data), "-o", str(tmp_path / "r.npz"), "--steps", "400",
            "--checkpoint", str(tmp_path / "r.ckpt.npz"), "--checkpoint-every", "100"]  # fmt: skip
    with disk_full_at(2):
        result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "train:" in result.output, "the bar was drawn"
    assert "\nerror: " in result.output, result.output
    lines = result.output.replace("\r", "\n").splitlines()
    assert sum(line.startswith("error: ") for line in lines) == 1, result.output
    assert not [line for line in lines if "error:" in line and not line.startswith("error:")]
    assert not (tmp_path / "r.npz").exists()


# ------------------------------------------------------------------------------ batch memory
def test_batch_estimate_counts_data_history_and_what_is_held() -> None:
    from attnmech.layer.training import count_log_steps, estimate_batch_bytes

    got = estimate_batch_bytes(trials=10, n_samples=6, seq_len=4, vocab_size=6,
                               embedding_dim=8, steps=4000, log_every=10, record_W=True)  # fmt: skip
    points = count_log_steps(4000, 10)
    assert points == 401
    train_data = 10 * 6 * 4 * 8 * 8 * 4
    history = points * (10 * 8 * (16 + 64) + 100)
    held = 10 * 8 * (6 * 4 + 6 + 6 * 8 + 2 * 36 + 4 * 64)
    assert got == train_data + history + held
    # linear in trials once the per-step bookkeeping is set aside
    more = estimate_batch_bytes(trials=20, n_samples=6, seq_len=4, vocab_size=6,
                                embedding_dim=8, steps=4000, log_every=10, record_W=True)  # fmt: skip
    assert more - got == train_data + points * 10 * 8 * 80 + held


@pytest.fixture
def little_memory(monkeypatch):
    """A machine with 64 MiB available; drawing a dataset is an error (the check comes first)."""
    import attnmech.studies.reproduction.execute as execute

    monkeypatch.setattr(_io, "available_memory", lambda: 64 << 20)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("work started before the memory check")

    monkeypatch.setattr(execute, "load_source", never)


@pytest.mark.usefixtures("little_memory")
def test_demo_batch_above_memory_is_refused_before_any_work(tmp_path: Path) -> None:
    from attnmech.errors import InvalidParameterError
    from attnmech.studies.demo import DemoConfig, run

    with pytest.raises(InvalidParameterError, match=r"needs about [\d.]+ GiB in one batch.*0\.1 GiB"):
        run(DemoConfig(trials=100_000, steps=4000), out_dir=tmp_path / "demo")
    assert not (tmp_path / "demo").exists()
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d2"), "--trials", "100000"])
    assert result.exit_code == 1 and result.output.count("error: ") == 1, result.output
    assert "GiB" in result.output and not (tmp_path / "d2").exists()


@pytest.mark.usefixtures("little_memory")
def test_reproduction_checks_every_setting_before_the_first(tmp_path: Path) -> None:
    from attnmech.errors import InvalidParameterError
    from attnmech.studies.reproduction import ReproductionConfig, run

    with pytest.raises(InvalidParameterError, match="in one batch"):
        run(ReproductionConfig(trials=100_000), out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.usefixtures("little_memory")
def test_bias_table_batch_above_memory_is_refused_before_any_work(tmp_path: Path, monkeypatch):
    import attnmech.studies.bias.runner as bias_runner
    from attnmech.errors import InvalidParameterError
    from attnmech.studies.bias import bias_table

    monkeypatch.setattr(bias_runner, "solve_setting", lambda *a, **k: pytest.fail("solved"))
    with pytest.raises(InvalidParameterError, match="bias table of 'acyclic-4-6-8-8'.*one batch"):
        bias_table(tmp_path / "b", settings=["acyclic-4-6-8-8"], trials=5_000,
                   optimizers=["gd"], steps=1000)  # fmt: skip
    assert not (tmp_path / "b").exists()


def test_a_batch_that_fits_still_runs(tmp_path: Path, monkeypatch) -> None:
    """The estimate of the demo's own batch is far below a small machine's memory."""
    from attnmech.layer.training import estimate_batch_bytes

    demo = estimate_batch_bytes(trials=10, n_samples=6, seq_len=4, vocab_size=6,
                                embedding_dim=8, steps=4000, log_every=10, record_W=True)  # fmt: skip
    assert demo < 8 << 20  # under 8 MiB
