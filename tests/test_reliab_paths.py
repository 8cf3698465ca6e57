"""Sweep folders: one writer at a time, nothing read or written outside the folder, plot inputs
that are not numbers refused cleanly (reliability r3, items 5-7)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnmech._io import exclusive_lock
from attnmech.cli import app
from attnmech.errors import InvalidParameterError, OutputError
from attnmech.studies.sweeps import load_results, parse_sweep_spec, run_sweep
from attnmech.studies.sweeps.plots import plot_sweep

TINY = "[sweep]\ntrials = 2\n[fixed]\nT = 3\nK = 4\nsteps = 5\n[axes]\nn = [3]\nd = [4, 5]\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sw") / "out"
    run_sweep(parse_sweep_spec(TINY), out, workers=1)
    return out


def _one_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_a_second_resume_on_a_held_folder_is_refused(sweep_dir: Path) -> None:
    before = (sweep_dir / "results.csv").read_bytes()
    with exclusive_lock(sweep_dir, what="sweep folder"):
        with pytest.raises(OutputError, match="being written by another attnmech process"):
            run_sweep(parse_sweep_spec(TINY), sweep_dir, workers=1, resume=True)
    assert (sweep_dir / "results.csv").read_bytes() == before
    again = run_sweep(parse_sweep_spec(TINY), sweep_dir, workers=1, resume=True)
    assert again.tasks_skipped == again.tasks  # released: the resume finds everything stored


def test_symlinked_parts_leading_out_are_refused(sweep_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("sweep.toml", "manifest.json"):
        if (sweep_dir / name).exists():
            (copy / name).write_bytes((sweep_dir / name).read_bytes())
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for part in (sweep_dir / "parts").glob("*.csv"):
        (outside / part.name).write_bytes(part.read_bytes())
    os.symlink(outside, copy / "parts")
    with pytest.raises(OutputError, match="leads outside"):
        load_results(copy, prefer_parts=True)
    with pytest.raises(OutputError, match="leads outside"):
        run_sweep(parse_sweep_spec(TINY), copy, workers=1, resume=True)


@pytest.mark.parametrize("grid", ["../../..", "../x", "/tmp/abs"])
def test_plot_grid_name_cannot_leave_the_folder(sweep_dir: Path, grid: str) -> None:
    before = {p for p in sweep_dir.parent.rglob("*")}
    result = runner.invoke(
        app, ["plot-sweep", str(sweep_dir), "--x", "d", "--metric", "loss", "--grid", grid]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert {p for p in sweep_dir.parent.rglob("*")} == before


@pytest.mark.parametrize("metric", ["grid", "optimizer", "init"])
def test_plot_of_a_column_that_is_not_a_number(sweep_dir: Path, metric: str) -> None:
    with pytest.raises(InvalidParameterError):
        plot_sweep(sweep_dir, x="d", metric=metric)
    _one_error(runner.invoke(app, ["plot-sweep", str(sweep_dir), "--x", "d", "--metric", metric]))


def test_plot_of_an_edited_metric_cell(sweep_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "edited"
    copy.mkdir()
    text = (sweep_dir / "results.csv").read_text().splitlines()
    header = text[0].split(",")
    column = header.index("loss")
    row = text[1].split(",")
    row[column] = "oops"
    (copy / "results.csv").write_text("\n".join([text[0], ",".join(row), *text[2:]]) + "\n")
    try:
        plot_sweep(copy, x="d", metric="loss")
    except InvalidParameterError:
        pass
    except Exception as exc:  # any other failure must still be an attnmech error
        from attnmech.errors import AttnmechError

        assert isinstance(exc, AttnmechError), repr(exc)


# ------------------------------------------------------- round-2 leftovers and option budgets
def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "argv",
    [
        ["graphs", "{data}", "--max-queries", "-3"],
        ["graphs", "{data}", "--top-sccs", "-1"],
    ],
)
def test_negative_counts_are_usage_errors(argv, tmp_path: Path) -> None:
    from attnmech import make_dataset

    data = make_dataset(6, 4, 6, 8, seed=0).save(tmp_path / "d.npz")
    before = _files(tmp_path)
    result = runner.invoke(app, [a.format(data=data) for a in argv])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["make-dataset", "--text", "{text}", "-o", "{tmp}/x.csv"],
        ["make-dataset", "-o", "{tmp}/x.jsonl", "--embeddings-out", "{tmp}/emb.bin"],
        ["demo", "--out", "{tmp}/demo", "--trials", "1000000000", "--no-progress"],
        ["demo", "--out", "{tmp}/demo", "--steps", "99999999999999999999", "--no-progress"],
        ["sweep", "{tmp}/big.toml", "--out", "{tmp}/sw"],
        ["train", "{tmp}/missing.npz", "--steps", "99999999999999999999", "-o", "{tmp}/r.npz"],
    ],
)
def test_refused_before_anything_is_written(argv, tmp_path: Path) -> None:
    text = tmp_path / "c.txt"
    text.write_text("the cat sat on the mat " * 20)
    (tmp_path / "big.toml").write_text(
        "[sweep]\ntrials = 1000000000\n[fixed]\nT = 3\nK = 4\nsteps = 5\n[axes]\nn = [3]\nd = [4]\n"
    )
    before = _files(tmp_path)
    result = runner.invoke(app, [a.format(text=text, tmp=tmp_path) for a in argv])
    _one_error(result)
    assert _files(tmp_path) == before


def test_demo_does_not_replace_a_report_without_force(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "REPORT.md").write_text("my notes\n")
    line = _one_error(runner.invoke(app, ["demo", "--out", str(out), "--no-progress"]))
    assert "--force" in line
    assert (out / "REPORT.md").read_text() == "my notes\n"


def test_log_steps_are_counted_without_building_them() -> None:
    import numpy as np

    from attnmech.layer.finite_path import count_log_steps, log_steps

    for steps in range(0, 40):
        for every in range(0, 9):
            expected = sorted(set(range(0, steps, every)) | {steps}) if every else sorted({0, steps})
            assert log_steps(steps, every).tolist() == expected
            assert count_log_steps(steps, every) == len(expected)
    assert count_log_steps(10**9, 1) == 10**9 + 1  # no 8 GB array to count it
    assert log_steps(10**6, 7).dtype == np.int64


def test_train_memory_estimate_names_the_numbers() -> None:
    import numpy as np

    from attnmech import Dataset, TrainConfig, train

    ds = Dataset(np.zeros((2000, 6), np.int64), np.zeros(2000, np.int64), np.eye(4))
    with pytest.raises(InvalidParameterError, match=r"needs about [0-9.]+ GiB \(100000 trials"):
        train(ds, TrainConfig(trials=100_000, steps=1))


def test_a_bias_run_path_stays_inside(tmp_path: Path) -> None:
    from attnmech.studies.bias import BiasOptimizer
    from attnmech.studies.bias.runfiles import run_path as _run_path

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "table").mkdir()
    os.symlink(outside, tmp_path / "table" / "runs")
    with pytest.raises(OutputError, match="leads outside"):
        _run_path(tmp_path / "table", "cyclic", BiasOptimizer("gd", "gd", 0.1, 10))


def test_solve_summary_of_a_token_space_theory_builds_no_dense_table(tmp_path: Path) -> None:
    """The CLI summary reads the norm from the sparse scores: W_svm (K x K) is never built."""
    import numpy as np

    from attnmech import make_dataset, solve
    from attnmech.cli.core import _solve_table

    ds = make_dataset(12, 5, 40, 40, embeddings="onehot", seed=1)
    theory = solve(ds)
    if not hasattr(theory.svm, "scores"):
        pytest.skip("not solved in token space")
    table = _solve_table(theory)
    assert not theory.svm._cache, "the summary densified W_svm"
    np.testing.assert_allclose(theory.svm.norm, np.linalg.norm(theory.svm.W_svm), rtol=1e-12)
    assert table is not None
