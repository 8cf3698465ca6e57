"""Sweeps (issue 12): the sweep file, batched cells, resume, backends and phase diagrams."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import attnmech
from attnmech.errors import AttnmechError, FileFormatError, InvalidParameterError
from attnmech.studies.sweeps import load_results, parse_sweep_spec, run_sweep
from attnmech.studies.sweeps.grid import expand_cells, plan_tasks
from attnmech.studies.sweeps.runner import _first_reach
from attnmech.studies.sweeps.spec import optimizer_names

REPO = Path(__file__).resolve().parents[1]
RTOL = 1e-9  # a trial trained alone vs. inside a batch: equal up to rounding

TINY = """
[sweep]
name = "tiny"
seed = 3
trials = 2
metrics = ["corr_svm", "loss", "cyclic", "feasible", "steps_to_corr"]
corr_threshold = 0.5
at_steps = [20]

[fixed]
T = 3
K = 4
steps = 40
lr = 0.1

[axes]
n = [3, 5]
d = [4, 6]
"""


def _table_equal(a, b) -> None:
    assert a.names == b.names
    order_a = np.lexsort((a["trial"], a["cell"]))
    order_b = np.lexsort((b["trial"], b["cell"]))
    for name in a.names:
        x, y = a[name][order_a], b[name][order_b]
        if name.endswith("time_s"):
            continue
        if x.dtype == object:
            assert list(x) == list(y), name
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    result = run_sweep(parse_sweep_spec(TINY), out, workers=1)
    return out, result


def test_smoke_sweep_rows_match_direct_training(tiny_run):
    out, result = tiny_run
    assert (result.cells, result.rows) == (4, 8)
    table = load_results(out)
    assert len(table) == 8
    assert sorted(set(zip(table["n"], table["d"], strict=True))) == [(3, 4), (3, 6), (5, 4), (5, 6)]
    assert set(table["error"]) == {""}
    # row 0 again, by hand through the public API: same dataset, same init, same numbers
    i = int(np.flatnonzero((table["cell"] == 3) & (table["trial"] == 1))[0])
    n, d = int(table["n"][i]), int(table["d"][i])
    ds = attnmech.make_dataset(n, 3, 4, d, seed=int(table["dataset_seed"][i]))
    init = np.random.default_rng(int(table["init_seed"][i])).uniform(
        -1 / math.sqrt(d), 1 / math.sqrt(d), size=(d, d)
    )
    config = attnmech.TrainConfig(
        optimizer="ngd", learning_rate=0.1, num_steps=40, log_every=20, init=init
    )
    run = attnmech.train(ds, config, theory=True)
    np.testing.assert_allclose(table["corr_svm"][i], run.history["corr_svm"][-1], rtol=RTOL)
    np.testing.assert_allclose(table["corr_svm@20"][i], run.history["corr_svm"][1], rtol=RTOL)
    np.testing.assert_allclose(table["loss_value"][i], run.history["loss"][-1], rtol=RTOL)
    graphs = attnmech.build_priority_graphs(ds)
    assert table["cyclic"][i] == float(graphs.is_cyclic)
    assert table["feasible"][i] == 1.0
    reached = run.history["step"][np.argmax(run.history["corr_svm"] >= 0.5)]
    expected = float(reached) if (run.history["corr_svm"] >= 0.5).any() else math.nan
    np.testing.assert_equal(table["steps_to_corr"][i], expected)


def test_final_only_metrics_equal_the_recorded_ones(tiny_run, tmp_path):
    # without at_steps / steps_to_corr the theory metrics come from verify() on the final W
    out, _ = tiny_run
    text = TINY.replace("at_steps = [20]", "").replace(', "steps_to_corr"', "")
    spec = parse_sweep_spec(text.replace('"cyclic"', '"top_scc_mass", "cyclic"'))
    run_sweep(spec, tmp_path, workers=1)
    fast, full = load_results(tmp_path), load_results(out)
    assert "corr_svm@20" not in fast.names
    np.testing.assert_array_equal(fast["dataset_seed"], full["dataset_seed"])
    for name in ("corr_svm", "loss_value"):
        np.testing.assert_allclose(fast[name], full[name], rtol=1e-12)
    assert np.isfinite(fast["top_scc_mass"]).all()


def test_oversized_cells_are_refused_before_running(tmp_path):
    spec = parse_sweep_spec("[fixed]\nK = 512\nT = 64\nn = 4000\n[axes]\nd = [8, 512]\n")
    with pytest.raises(InvalidParameterError, match=r"cell 1 .*'d': 512.* GiB per trial"):
        run_sweep(spec, tmp_path / "big", workers=1)
    assert not (tmp_path / "big").exists()


def test_first_reach():
    steps = np.array([0, 10, 20])
    values = np.array([[0.1, 0.2, np.nan], [0.6, 0.3, 0.1], [0.9, 0.7, 0.2]])
    np.testing.assert_equal(_first_reach(steps, values, 0.5), [10.0, 20.0, np.nan])


def test_cells_with_equal_shapes_share_a_batch():
    spec = parse_sweep_spec(TINY.replace("n = [3, 5]", "optimizer = ['gd', 'ngd']\nn = [3]"))
    cells = expand_cells(spec)
    assert len(cells) == 4 and len(plan_tasks(spec, cells)) == 4  # optimiser splits batches
    spec = parse_sweep_spec(TINY.replace("trials = 2", "trials = 7\nbatch_trials = 3"))
    tasks = plan_tasks(spec, expand_cells(spec))
    # n differs but K, d and training options agree: cells (3, d) and (5, d) share batches
    assert len(tasks) == 2 * 5 and sorted(len(t.units) for t in tasks) == [2] * 2 + [3] * 8
    assert all(len({spec_cell for spec_cell, _ in t.units}) <= 2 for t in tasks)
    # seeds depend on the dataset's parameters, not on a cell's position or the optimiser
    spec = parse_sweep_spec(TINY.replace("lr = 0.1", "").replace("n = [3, 5]", "lr = [0.1, 0.2]"))
    a, b = expand_cells(spec)[0], expand_cells(spec)[2]  # lr 0.1 and 0.2, same d
    from attnmech.studies.sweeps.grid import dataset_seed, init_seed

    assert dataset_seed(3, a.params, 0) == dataset_seed(3, b.params, 0)
    assert init_seed(3, a.params, 1) == init_seed(3, b.params, 1)
    assert dataset_seed(3, a.params, 0) != dataset_seed(3, a.params, 1)


def test_infeasible_cells_record_feasible_zero(tmp_path):
    text = (
        TINY.replace("K = 4", "K = 12")
        .replace("d = [4, 6]", "d = [2]")
        .replace("n = [3, 5]", "n = [12]")
    )
    run_sweep(parse_sweep_spec(text), tmp_path, workers=1)
    table = load_results(tmp_path)
    assert (table["feasible"] == 0).all()
    assert np.isnan(table["corr_svm"]).all()
    assert np.isfinite(table["loss_value"]).all()  # still trained, without the theory


BAD = [
    ("[sweep]\nname = 'x'\n[axes]\nn = [1]\n[extra]\na = 1\n", "'extra'"),
    ("[axes]\nsize = [1, 2]\n", "axes.size"),
    ("[axes]\nn = [4, -1]\n", "axes.n[1]"),
    ("[axes]\nn = [4, 4]\n", "axes.n"),
    ("[axes]\nn = 4\n", "axes.n"),
    ("[axes]\nlr = [0.1, 0]\n", "axes.lr[1]"),
    ("[fixed]\noptimizer = 'sgdx'\n[axes]\nn = [4]\n", "fixed.optimizer"),
    ("[fixed]\nhead = 'big'\n[axes]\nn = [4]\n", "fixed.head"),
    ("[sweep]\nmetrics = ['corr_svm', 'acc']\n[axes]\nn = [4]\n", "sweep.metrics[1]"),
    ("[sweep]\nat_steps = [10, 15]\nlog_every = 10\n[axes]\nn = [4]\n", "sweep.at_steps[1]"),
    ("[sweep]\nat_steps = [9000]\n[axes]\nn = [4]\n", "sweep.at_steps"),
    ("[sweep]\ntrials = 0\n[axes]\nn = [4]\n", "sweep.trials"),
    ("[sweep]\nbogus = 1\n[axes]\nn = [4]\n", "sweep.bogus"),
    ("[fixed]\nn = 4\n[axes]\nn = [4]\n", "axes.n"),
    ("[sweep]\nname = 'x'\n", "axes"),
    ("[[grid]]\nname = 'a'\naxes = { n = [4] }\ncolor = 1\n", "grid[0].color"),
    (
        "[[grid]]\nname = 'a'\naxes = { n = [4] }\n[[grid]]\nname = 'a'\naxes = { d = [4] }\n",
        "grid[1].name",
    ),
    ("[axes]\nn = [4\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "key"), BAD)
def test_validation_names_the_key(text, key):
    with pytest.raises(FileFormatError) as info:
        parse_sweep_spec(text, "bad.toml")
    assert isinstance(info.value, AttnmechError) and isinstance(info.value, ValueError)
    assert key in str(info.value) and "bad.toml" in str(info.value)


def test_optimizers_come_from_the_library():
    assert set(optimizer_names()) >= {"gd", "ngd"}
    spec = parse_sweep_spec("[axes]\noptimizer = " + str(list(optimizer_names())).replace("'", '"'))
    assert len(expand_cells(spec)) == len(optimizer_names())


def test_resume_skips_finished_tasks(tiny_run, tmp_path):
    out, _ = tiny_run
    spec = parse_sweep_spec(TINY)
    first = load_results(out)
    copy = tmp_path / "copy"
    (copy / "parts").mkdir(parents=True)
    for name in ("sweep.toml", "manifest.json"):
        (copy / name).write_bytes((out / name).read_bytes())
    parts = sorted((out / "parts").glob("*.csv"))
    for part in parts[1:]:  # one task "lost in flight"
        (copy / "parts" / part.name).write_bytes(part.read_bytes())
    ran = []
    result = run_sweep(spec, copy, workers=1, resume=True, on_task=lambda t, n: ran.append(t))
    assert result.tasks_skipped == len(parts) - 1
    assert [t.task_id for t in ran] == [parts[0].stem]
    _table_equal(load_results(copy), first)


def test_existing_folder_needs_resume_and_the_same_file(tiny_run):
    out, _ = tiny_run
    with pytest.raises(InvalidParameterError, match="--resume"):
        run_sweep(parse_sweep_spec(TINY), out, workers=1)
    with pytest.raises(InvalidParameterError, match="different sweep file"):
        run_sweep(parse_sweep_spec(TINY.replace("seed = 3", "seed = 4")), out, resume=True)


def test_plot_heatmap_and_line(tiny_run, tmp_path):
    from attnmech.studies.sweeps.plots import plot_sweep, save_sweep_plot

    out, _ = tiny_run
    table = load_results(out)
    plot = plot_sweep(out, x="n", y="d", metric="corr_svm")
    sel = (table["n"] == 5) & (table["d"] == 4)
    stat = next(s for s in plot.stats if (s["n"], s["d"]) == (5, 4))
    np.testing.assert_allclose(stat["mean"], table["corr_svm"][sel].mean(), rtol=1e-12)
    np.testing.assert_allclose(stat["std"], table["corr_svm"][sel].std(), rtol=1e-12)
    assert stat["trials"] == 2
    paths = save_sweep_plot(plot, tmp_path / "heat")
    assert [p.suffix for p in paths] == [".png", ".pdf", ".csv"] and all(
        p.stat().st_size for p in paths
    )
    line = plot_sweep(out, x="n", metric="loss", where={"d": "6"}, at_step=20)
    assert [s["n"] for s in line.stats] == [3, 5] and line.column == "loss_value@20"
    with pytest.raises(InvalidParameterError, match="'d' varies"):
        plot_sweep(out, x="n", metric="corr_svm")
    with pytest.raises(InvalidParameterError, match="steps recorded: 20"):
        plot_sweep(out, x="n", y="d", metric="corr_svm", at_step=30)
    ratio = plot_sweep(out, x="K/d", metric="feasible", where={"n": "3"})
    assert [s["K/d"] for s in ratio.stats] == [pytest.approx(4 / 6), 1]


def test_cli_sweep_and_plot(tmp_path):
    from attnmech.cli import app

    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.replace("n = [3, 5]", "n = [3]"))
    runner = CliRunner()
    result = runner.invoke(
        app, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "2 cells, 2 tasks (0 already done), 4 rows written" in result.output
    result = runner.invoke(
        app, ["plot-sweep", str(tmp_path / "o"), "--x", "d", "--metric", "corr_svm"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "plots" / "corr_svm_d.png").exists()
    spec.write_text("[axes]\nn = [0]\n")
    result = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "p")])
    assert result.exit_code == 1 and "axes.n[0]" in result.output


def test_smoke_example_is_valid():
    spec = attnmech.studies.sweeps.load_sweep_spec(REPO / "examples" / "sweeps" / "smoke.toml")
    assert len(expand_cells(spec)) == 4
    phase = attnmech.studies.sweeps.load_sweep_spec(REPO / "examples" / "sweeps" / "phase.toml")
    assert [g.name for g in phase.grids] == ["corr", "cyclic", "feasible"]
    attnmech.studies.sweeps.load_sweep_spec(REPO / "examples" / "sweep_format.toml")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    started = time.perf_counter()
    # address="local": a cluster of its own, even when another Ray instance runs on the machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray start: {time.perf_counter() - started:.1f} s")
    yield ray
    ray.shutdown()


def test_ray_backend_equals_local(ray_cluster, tiny_run, tmp_path):
    out, _ = tiny_run
    started = time.perf_counter()
    result = run_sweep(parse_sweep_spec(TINY), tmp_path, backend="ray", workers=2)
    print(f"ray sweep: {time.perf_counter() - started:.1f} s")
    assert result.backend == "ray" and result.rows == 8
    _table_equal(load_results(tmp_path), load_results(out))


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_table(tmp_path):
    text = TINY.replace("steps = 40", "steps = 3000").replace("trials = 2", "trials = 3")
    text = text.replace("at_steps = [20]", "at_steps = [1000]").replace(
        "d = [4, 6]", "d = [4, 6, 8]"
    )
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(text)
    full = tmp_path / "full"
    run_sweep(parse_sweep_spec(text), full, workers=1)
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    command = [sys.executable, "-m", "attnmech", "sweep", str(spec_path), "--out", str(out)]
    proc = subprocess.Popen([*command, "--workers", "1"], env=env, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "parts").glob("*.csv"))) < 1:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = len(list((out / "parts").glob("*.csv")))
    assert 1 <= stored < 3
    done = subprocess.run(
        [*command, "--resume", "--workers", "1"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert f"({stored} already done)" in done.stdout
    _table_equal(load_results(out), load_results(full))


NORMS = """
[sweep]
name = "norms"
seed = 5
trials = 2
metrics = ["w_svm_fro_norm", "feasible", "corr_svm"]

[fixed]
n = 4
T = 3
K = 4
d = 4
steps = 30
lr = 0.1

[axes]
svm_norm = ["fro", "l1"]
"""


def test_theory_cache_is_keyed_by_the_norm(tmp_path):
    """Two norms on the same datasets: each row holds its own norm's W_svm, not the first one's."""
    from attnmech.studies.sweeps import runner

    runner._THEORY_CACHE.clear()
    run_sweep(parse_sweep_spec(NORMS), tmp_path / "out", workers=1)
    table = load_results(tmp_path / "out")
    assert sorted(set(table["svm_norm"])) == ["fro", "l1"]
    for trial in (0, 1):
        rows = np.flatnonzero(table["trial"] == trial)
        assert len(set(table["fingerprint"][rows])) == 1  # the same dataset under both norms
        ds = attnmech.make_dataset(4, 3, 4, 4, seed=int(table["dataset_seed"][rows[0]]))
        for i in rows:
            norm = str(table["svm_norm"][i])
            expected = np.linalg.norm(attnmech.solve(ds, svm_norm=norm).W_svm)
            assert table["w_svm_fro_norm"][i] == pytest.approx(expected, rel=1e-9)
        a, b = table["w_svm_fro_norm"][rows]
        assert abs(a - b) > 1e-3 * max(a, b)  # the two norms' W_svm differ


def test_old_svm_norm_column_reads_as_w_svm_fro_norm(tmp_path):
    (tmp_path / "results.csv").write_text("cell,trial,svm_norm\n0,0,1.5\n0,1,\n")
    table = load_results(tmp_path)
    assert table.names == ["cell", "trial", "w_svm_fro_norm"]
    np.testing.assert_array_equal(table["w_svm_fro_norm"], [1.5, np.nan])


def test_sweep_is_a_study(tiny_run):
    from attnmech.studies import scaffold

    out, result = tiny_run
    module = scaffold.get_study("sweep")
    assert module.CONFIG_TYPE is type(result.config)
    loaded = scaffold.load_result(out)
    assert (loaded.cells, loaded.rows, loaded.tasks) == (4, 8, result.tasks)
    assert loaded.config.digest == result.config.digest
    text = (out / "REPORT.md").read_text()
    assert "| cell | grid | n | d | trials |" in text
    table = load_results(out)
    mean = table["corr_svm"][table["cell"] == 0].mean()
    assert scaffold.fmt(mean) in text
