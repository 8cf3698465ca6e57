"""Tests for attnmech.studies.demo: the paper's cyclic experiment as a one-call job."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from attnmech import make_dataset
from attnmech.studies.demo import NOTEBOOK_CORR, DemoResult, demo_figures, demo_setting, run_demo
from attnmech.studies.reproduction import EXPERIMENTS, run_setting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("correlations", "finite_part", "automaton", "priority_graphs")


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> DemoResult:
    """Three trials of 120 steps (the full demo is 10 trials of 4000 steps)."""
    return run_demo(tmp_path_factory.mktemp("demo") / "out", trials=3, steps=120, log_every=10)


def test_demo_trains_the_papers_setting(small_demo):
    result = small_demo
    assert result.datasets == [make_dataset(6, 4, 6, 8, graph="cyclic", seed=s) for s in range(3)]
    assert result.run.W.shape == (3, 8, 8) and result.run.num_steps == 120
    config = result.run.config
    assert (config.optimizer, config.learning_rate, config.init, config.seed) == (
        "ngd",
        0.01,
        "uniform",
        0,
    )
    assert (config.model.head, config.model.loss, config.model.dtype) == ("iden", "log", "float64")
    assert result.verification.num_trials == 3 and result.verification.is_cyclic.all()


def test_demo_is_the_registry_pipeline(small_demo):
    """The demo reruns the registry entry cyclic-6-4-6-8 through the same runner: its curves are
    those of run_setting on that entry, bit for bit."""
    base = EXPERIMENTS["cyclic-6-4-6-8"]
    setting = demo_setting(120)
    assert setting.data == base.data and setting.optimizer == base.optimizer == "ngd"
    assert (setting.head, setting.loss, setting.init, setting.init_seed) == (
        "iden",
        "log",
        "uniform",
        0,
    )
    assert demo_setting(120, seed=5).data.seed_offset == 5
    result, _ = run_setting(base, trials=3, steps_scale=120 / base.num_steps)
    history = small_demo.run.history
    np.testing.assert_array_equal(result.steps, history["step"])
    for key in ("corr_svm", "corr_svm_fin", "fin_gap_traj", "top_scc_mass", "norm"):
        np.testing.assert_array_equal(result.curves[key], history[key])


def test_demo_table_matches_the_report(small_demo):
    rows = {row.key: row for row in small_demo.rows}
    assert list(rows) == [
        "corr_svm",
        "corr_svm_fin",
        "corr_perp_svm",
        "fin_gap_traj",
        "fin_gap_traj_peak",
        "fin_gap",
        "top_scc_mass",
        "automaton_tv",
    ]
    metrics = small_demo.verification.metrics
    for key in (
        "corr_svm",
        "corr_svm_fin",
        "corr_perp_svm",
        "fin_gap",
        "top_scc_mass",
        "automaton_tv",
    ):
        assert rows[key].mean == pytest.approx(float(np.mean(metrics[key])), rel=1e-12)
        assert rows[key].std == pytest.approx(float(np.std(metrics[key])), rel=1e-12, abs=1e-15)
    history = small_demo.run.history
    np.testing.assert_allclose(rows["fin_gap_traj"].mean, history["fin_gap_traj"][-1].mean())
    # the verification report and the history's last row are the same measurement
    np.testing.assert_allclose(history["corr_svm"][-1], metrics["corr_svm"], rtol=1e-12)
    peak = history["fin_gap_traj"].mean(axis=1)
    assert rows["fin_gap_traj_peak"].mean == pytest.approx(peak.max())
    assert rows["fin_gap_traj_peak"].note == f"step {history['step'][peak.argmax()]}"
    assert rows["corr_svm"].paper == "~0.99 (notebook: 0.986 ± 0.005)"
    assert rows["top_scc_mass"].paper == "~0.9997"
    assert [step for step, *_ in small_demo.trajectory] == [100, 120]
    assert small_demo.trajectory[0][3] == NOTEBOOK_CORR[100] and small_demo.trajectory[1][3] is None


def test_demo_writes_figures_summary_and_report(small_demo):
    out = small_demo.out_dir
    names = [p.name for p in small_demo.files]
    assert names == [f"{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")] + [
        "run.npz",
        "results.json",
        "REPORT.md",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for figure in FIGURES:
        png = (out / f"{figure}.png").read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) > 10_000
        assert (out / f"{figure}.pdf").read_bytes()[:5] == b"%PDF-"

    summary = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert summary["study"] == "demo" and summary["config"]["steps"] == 120
    assert summary["setting"]["trials"] == 3 and summary["train_config"]["steps"] == 120
    assert [row["metric"] for row in summary["table"]] == [row.key for row in small_demo.rows]
    assert summary["table"][0]["mean"] == pytest.approx(small_demo.rows[0].mean)
    assert summary["verification"]["num_trials"] == 3
    assert summary["files"] == names
    assert set(summary["timings_s"]) >= {"train_s", "figures_s", "before_report_s"}
    assert summary["environment"]["cpu_cores_available"] >= 1

    report = (out / "REPORT.md").read_text(encoding="utf-8")
    for figure in FIGURES:
        assert f"![{figure}]({figure}.png)" in report
    assert re.search(r"\*\*Wall time: \d+\.\d\d s\*\*", report)
    assert "| `corr(W, W_svm)` " in report and "~0.99 (notebook: 0.986 ± 0.005)" in report
    assert re.search(r"\|\s+100 \| 0\.\d{4} ± 0\.\d{3}\s+\|\s+0\.403 \|", report)


def test_demo_result_loads_back(small_demo):
    """results.json reads back into an equal table, config and report text."""
    from attnmech.studies.demo import DemoConfig, run
    from attnmech.studies.scaffold import load_result

    loaded = load_result(small_demo.out_dir)
    assert isinstance(loaded, DemoResult) and loaded.config == small_demo.config
    assert [(r.key, r.mean, r.std) for r in loaded.rows] == [
        (r.key, r.mean, r.std) for r in small_demo.rows
    ]
    assert loaded.trajectory == small_demo.trajectory
    assert loaded.report().to_markdown() == small_demo.report().to_markdown()
    # resume: the same config is read back, nothing retrained
    again = run(small_demo.config, out_dir=small_demo.out_dir, resume=True)
    assert again.run is None and again.rows == loaded.rows
    with pytest.warns(DeprecationWarning, match="num_trials"):
        assert DemoConfig.from_dict({"num_trials": 2}).trials == 2


def test_demo_text_table(small_demo):
    lines = small_demo.table().splitlines()
    assert lines[0].split()[:2] == ["metric", "measured"]
    assert "(mean ± std, 3 trials)" in lines[0]
    assert len(lines) == 2 + len(small_demo.rows)
    assert lines[2].startswith("corr(W, W_svm) ") and lines[2].endswith(
        "~0.99 (notebook: 0.986 ± 0.005)"
    )


def test_demo_figures_are_labelled(small_demo):
    figures = demo_figures(small_demo.run.history, small_demo.theories[0])
    assert list(figures) == list(FIGURES)
    expected_legends = {
        "correlations": [
            "1 - corr(W, W_svm)",
            "1 - corr(W, W_fin + R W_svm)",
            "1 - corr(Proj_perp W, W_svm)",
            "paper's notebook at step 4000: 1 - 0.986",
        ],
        "finite_part": [
            "||Proj W - W_fin(t)||_F",
            "||Proj W - W_fin||_F",
            "paper: ~0.005 at step 4000",
        ],
        "automaton": [
            "1 - top-SCC attention mass",
            "TV(model, automaton at fitted R)",
            "paper: 1 - 0.9997 (top-SCC mass)",
        ],
    }
    for name, legend in expected_legends.items():
        (ax,) = figures[name].axes
        assert [t.get_text() for t in ax.get_legend().get_texts()] == legend
        assert ax.get_yscale() == "log" and ax.get_xlabel() == "step"
        assert "log scale" in ax.get_ylabel() and "cyclic" in ax.get_title()
        assert ax.get_legend().get_title().get_text() == "mean ± std over 3 trials"
    # the curves are the history's means over trials
    (ax,) = figures["correlations"].axes
    np.testing.assert_allclose(
        ax.get_lines()[0].get_ydata(), (1 - small_demo.run.history["corr_svm"]).mean(axis=1)
    )
    titles = [ax.get_title() for ax in figures["priority_graphs"].axes]
    assert titles == [f"last token {q}" for q in small_demo.theories[0].graphs.queries.tolist()]


def test_demo_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="trials must be a positive integer, got 0"):
        run_demo(tmp_path / "a", trials=0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        run_demo(tmp_path / "b", steps=-1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        run_demo(blocker, trials=1, steps=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.slow
def test_full_demo_matches_the_paper(tmp_path):
    """The paper's numbers (docs/theory.md#the-papers-experiments): corr ~0.99, norm gap ~0.005,
    top-SCC mass ~0.9997."""
    result = run_demo(tmp_path / "demo")
    rows = {row.key: row for row in result.rows}
    assert rows["corr_svm"].mean == pytest.approx(0.986, abs=0.01)
    assert rows["corr_svm_fin"].mean > 0.97 and rows["corr_perp_svm"].mean > 0.97
    assert rows["fin_gap_traj"].mean < 0.01
    assert rows["top_scc_mass"].mean > 0.999
    assert rows["automaton_tv"].mean < 0.01
    for step, mean, _, notebook in result.trajectory:
        if notebook is not None and step >= 500:
            assert mean == pytest.approx(notebook, abs=0.05)
