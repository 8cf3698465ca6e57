"""Operating sweeps: retries, failure records and status, curves, the SQLite store, and the
Optuna search (skipped without Optuna)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from attnmech.studies.sweeps import load_results, parse_sweep_spec, run_sweep, runner
from attnmech.studies.sweeps.status import sweep_status

SMALL = """
[sweep]
name = "ops"
seed = 2
trials = 2
metrics = ["loss", "norm"]
log_every = 5

[fixed]
T = 3
K = 4
d = 4
steps = 10
lr = 0.1

[axes]
n = [3, 4]
optimizer = ["gd", "ngd"]
"""


def _flaky(fail_ids, calls):
    real = runner.run_task_with_curves

    def run(task, spec, cells, device=None, callback=None):
        calls.append(task.task_id)
        if task.task_id in fail_ids and calls.count(task.task_id) <= fail_ids[task.task_id]:
            raise RuntimeError(f"injected failure of {task.task_id}")
        return real(task, spec, cells, device, callback)

    return run


def _task_ids(spec):
    from attnmech.studies.sweeps.grid import expand_cells, plan_tasks

    return [t.task_id for t in plan_tasks(spec, expand_cells(spec))]


def test_retries_rerun_a_failed_task(tmp_path, monkeypatch):
    spec = parse_sweep_spec(SMALL)
    first = _task_ids(spec)[0]
    calls: list[str] = []
    monkeypatch.setattr(runner, "run_task_with_curves", _flaky({first: 1}, calls))
    result = run_sweep(spec, tmp_path / "a", workers=1, retries=1)
    assert calls.count(first) == 2 and result.failed == 0
    status = sweep_status(tmp_path / "a")
    assert (status.done, status.failed, status.pending) == (len(_task_ids(spec)), 0, 0)
    # the same table as a sweep without failures
    monkeypatch.undo()
    run_sweep(spec, tmp_path / "b", workers=1)
    a, b = load_results(tmp_path / "a"), load_results(tmp_path / "b")
    np.testing.assert_array_equal(a["loss_value"], b["loss_value"])


def test_status_counts_a_failed_task_and_resume_reruns_it(tmp_path, monkeypatch):
    spec = parse_sweep_spec(SMALL)
    ids = _task_ids(spec)
    calls: list[str] = []
    monkeypatch.setattr(runner, "run_task_with_curves", _flaky({ids[1]: 5}, calls))
    result = run_sweep(spec, tmp_path / "s", workers=1, retries=2)
    assert result.failed == 1 and calls.count(ids[1]) == 3
    status = sweep_status(tmp_path / "s")
    assert (status.tasks, status.done, status.failed, status.pending) == (
        len(ids),
        len(ids) - 1,
        1,
        0,
    )
    assert status.errors == [(f"RuntimeError: injected failure of {ids[1]}", 1, [ids[1]])]
    from typer.testing import CliRunner

    from attnmech.cli import app

    shown = CliRunner().invoke(app, ["sweep-status", str(tmp_path / "s")])
    assert shown.exit_code == 0
    assert f"{len(ids) - 1}/{len(ids)} tasks done, 1 failed, 0 pending" in shown.output
    assert f"injected failure of {ids[1]}" in shown.output
    assert status.rows == 2 * (len(ids) - 1) * 4 // len(ids)
    monkeypatch.undo()
    again = run_sweep(spec, tmp_path / "s", workers=1, resume=True)
    assert (again.tasks_skipped, again.failed) == (len(ids) - 1, 0)
    status = sweep_status(tmp_path / "s")
    assert (status.done, status.failed, status.errors) == (len(ids), 0, [])
    assert len(load_results(tmp_path / "s")) == 8


def test_curves_and_sqlite_store(tmp_path):
    spec = parse_sweep_spec(SMALL)
    run_sweep(spec, tmp_path / "c", workers=1, curves=True)
    table = load_results(tmp_path / "c", curves=True)
    assert table.curves is not None and len(table.curves) == 8
    for i in range(len(table)):
        curve = table.curves[(int(table["cell"][i]), int(table["trial"][i]))]
        np.testing.assert_array_equal(curve["step"], [0, 5, 10])
        assert curve["loss"][-1] == table["loss_value"][i]  # the row is the curve's last point
        assert curve["loss"][0] > curve["loss"][-1]
    con = sqlite3.connect(tmp_path / "c" / "results.sqlite")
    rows = con.execute(
        "SELECT cell, trial, loss_value FROM results ORDER BY cell, trial"
    ).fetchall()
    order = np.lexsort((table["trial"], table["cell"]))
    assert [r[2] for r in rows] == list(table["loss_value"][order])
    (done,) = con.execute("SELECT count(*) FROM tasks WHERE status = 'done'").fetchone()
    assert done == len(_task_ids(spec))
    con.close()


# --------------------------------------------------------------------------- search
SEARCH = """
[sweep]
name = "lr"
seed = 1
trials = 2
metrics = ["loss"]
log_every = 5

[fixed]
n = 3
T = 3
K = 4
d = 4
steps = 20
optimizer = "gd"

[axes]
lr = [0.01, 0.1, 1.0, 0.03]

[search]
objective = "loss"
direction = "minimize"
sampler = "{sampler}"
budget = {budget}
pruner = "{pruner}"
"""


def _grid_best(tmp_path):
    """The best lr by a plain sweep over the same points: the known answer."""
    text = SEARCH.split("[search]")[0]
    run_sweep(parse_sweep_spec(text), tmp_path / "grid", workers=1)
    table = load_results(tmp_path / "grid")
    means = {lr: table["loss_value"][table["lr"] == lr].mean() for lr in set(table["lr"])}
    return min(means, key=means.get), means


def test_search_finds_the_best_grid_point_and_resumes(tmp_path):
    pytest.importorskip("optuna")
    from attnmech.studies.sweeps.search import parse_search_spec, run_search

    best_lr, means = _grid_best(tmp_path)
    spec = parse_search_spec(SEARCH.format(sampler="grid", budget=2, pruner="none"))
    first = run_search(spec, tmp_path / "s")
    assert (first.trials, first.ran) == (2, 2)
    again = run_search(spec, tmp_path / "s", resume=True)
    assert (again.trials, again.ran) == (2, 0)  # the budget is reached: nothing more runs
    with pytest.raises(Exception, match="other options"):
        run_search(
            parse_search_spec(SEARCH.format(sampler="random", budget=2, pruner="none")),
            tmp_path / "s",
            resume=True,
        )
    spec = parse_search_spec(SEARCH.format(sampler="grid", budget=4, pruner="none"))
    full = run_search(spec, tmp_path / "s", resume=True)  # a larger budget continues the study
    assert (full.trials, full.ran) == (4, 2)
    assert full.best_params == {"lr": best_lr}
    assert full.best_value == pytest.approx(means[best_lr], rel=1e-12)
    table = load_results(tmp_path / "s")
    assert sorted(table["lr"]) == sorted(np.repeat(list(means), 2))  # every point once, no repeat
    assert set(table["search_state"]) == {"complete"}
    from attnmech.studies.sweeps.plots import plot_sweep

    plot = plot_sweep(tmp_path / "s", x="lr", metric="loss")  # plot-sweep reads a search
    assert {p["lr"]: p["mean"] for p in plot.stats} == pytest.approx(means, rel=1e-12)


def test_search_tpe_and_pruning(tmp_path):
    pytest.importorskip("optuna")
    from attnmech.studies.sweeps.search import parse_search_spec, run_search

    best_lr, _ = _grid_best(tmp_path)
    spec = parse_search_spec(SEARCH.format(sampler="tpe", budget=12, pruner="none"))
    result = run_search(spec, tmp_path / "tpe")
    assert result.trials == 12 and result.best_params == {"lr": best_lr}
    spec = parse_search_spec(SEARCH.format(sampler="random", budget=8, pruner="median"))
    result = run_search(spec, tmp_path / "t")
    table = load_results(tmp_path / "t")
    complete = table["search_state"] == "complete"
    assert result.best_value == pytest.approx(table["search_value"][complete].min(), rel=1e-12)
    pruned = table["search_state"] == "pruned"
    assert result.pruned == len(set(table["search_trial"][pruned]))
    assert result.pruned + result.complete == 8
    status = sweep_status(tmp_path / "t")
    assert status.done == 8 and status.pending == 0


def test_search_file_errors_name_the_key():
    pytest.importorskip("optuna")
    from attnmech.errors import FileFormatError
    from attnmech.studies.sweeps.search import parse_search_spec

    text = SEARCH.format(sampler="grid", budget=2, pruner="none")
    with pytest.raises(FileFormatError, match="search.sampler"):
        parse_search_spec(text.replace('"grid"', '"annealing"'))
    with pytest.raises(FileFormatError, match="search.objective"):
        parse_search_spec(text.replace('objective = "loss"', 'objective = "corr_svm"'))
    bad = text.replace("lr = [0.01, 0.1, 1.0, 0.03]", "lr = { log-uniform = [0.0, 1.0] }")
    with pytest.raises(FileFormatError, match="log-uniform"):
        parse_search_spec(bad.replace('"grid"', '"tpe"'))


def test_batch_layout_does_not_change_the_numbers(tmp_path):
    """All trials of a cell shape in one batch (the fast layout) or one trial per task: the same
    numbers to 1e-12."""
    text = SMALL.replace('metrics = ["loss", "norm"]', 'metrics = ["loss", "norm", "corr_svm"]')
    one = parse_sweep_spec(
        text.replace("[fixed]", "[fixed]").replace('name = "ops"', 'name = "ops"\nbatch_trials = 1')
    )
    run_sweep(one, tmp_path / "one", workers=1)
    run_sweep(
        parse_sweep_spec(text.replace('name = "ops"', 'name = "ops"\nbatch_trials = 8')),
        tmp_path / "all",
        workers=1,
    )
    a, b = load_results(tmp_path / "one"), load_results(tmp_path / "all")
    oa, ob = np.lexsort((a["trial"], a["cell"])), np.lexsort((b["trial"], b["cell"]))
    for name in ("loss_value", "norm", "corr_svm"):
        np.testing.assert_allclose(a[name][oa], b[name][ob], rtol=0, atol=1e-12)
