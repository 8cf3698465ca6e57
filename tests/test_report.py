"""Tests for attnmech.studies.report: figures, atomic saving and Markdown tables."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from attnmech import InvalidDatasetError, build_priority_graphs, make_dataset
from attnmech.studies.report import (
    markdown_table,
    plot_metric_bands,
    plot_priority_graphs,
    save_figure,
    text_table,
    to_jsonable,
    write_json,
    write_markdown,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def patches(ax, kind):
    return [p for p in ax.patches if isinstance(p, kind)]


# ----------------------------------------------------------------------------- priority graphs


def test_one_panel_per_last_token(ragged_with_repeats):
    graphs = build_priority_graphs(ragged_with_repeats)
    fig = plot_priority_graphs(graphs, token_names="abcde")
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["last token c", "last token e"]
    panel_c, panel_e = fig.axes
    # one box per SCC, shaded only for the SCCs with several tokens
    boxes = patches(panel_e, FancyBboxPatch)
    assert len(boxes) == 3
    assert sum(box.get_facecolor()[3] > 0 for box in boxes) == 2
    assert len(patches(panel_c, FancyBboxPatch)) == 2
    # condensation edges: {a,b} -> {c,d}, {a,b} -> {e}, {c,d} -> {e}
    assert len(patches(panel_e, FancyArrowPatch)) == 3
    assert len(patches(panel_c, FancyArrowPatch)) == 1


def test_tokens_are_laid_out_by_level(ragged_with_repeats):
    graphs = build_priority_graphs(ragged_with_repeats)
    fig = plot_priority_graphs(graphs, queries=[4])
    (ax,) = fig.axes
    y_of = {text.get_text(): text.get_position()[1] for text in ax.texts}
    assert y_of == {"0": 0.0, "1": 0.0, "2": -1.0, "3": -1.0, "4": -2.0}
    x_of = {text.get_text(): text.get_position()[0] for text in ax.texts}
    assert x_of["4"] == 0.0 and x_of["0"] == -x_of["1"]  # each level is centred


def test_all_edges_mode(ragged_with_repeats):
    graphs = build_priority_graphs(ragged_with_repeats)
    fig = plot_priority_graphs(graphs, queries=4, edges="all")
    assert len(patches(fig.axes[0], FancyArrowPatch)) == len(graphs.edges(4)) == 9


def test_query_that_is_never_a_last_token(ragged_with_repeats):
    fig = plot_priority_graphs(build_priority_graphs(ragged_with_repeats), queries=[0, 4])
    assert [t.get_text() for t in fig.axes[0].texts] == ["(never a last token)"]
    assert len(fig.axes[1].texts) == 5


def test_max_queries_and_grid():
    ds = make_dataset(30, 3, 8, 8, seed=0)
    graphs = build_priority_graphs(ds)
    assert graphs.queries.size == 8
    fig = plot_priority_graphs(graphs, max_queries=5, ncols=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"last token {q}" for q in graphs.queries[:5].tolist()]
    assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == (3, 2)


def test_priority_graph_errors(ragged_with_repeats):
    graphs = build_priority_graphs(ragged_with_repeats)
    with pytest.raises(ValueError, match="edges must be one of condensation, all"):
        plot_priority_graphs(graphs, edges="some")
    with pytest.raises(ValueError, match="no last tokens to draw"):
        plot_priority_graphs(graphs, queries=[])
    with pytest.raises(InvalidDatasetError, match=r"query 9 is outside \[0, 5\)"):
        plot_priority_graphs(graphs, queries=[9])


# ----------------------------------------------------------------------------- metric bands


def test_metric_bands_mean_std_and_legend():
    steps = np.arange(5) * 10
    a = np.array([[0.0, 1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0, 6.0]])  # mean 1..5, std 1
    b = np.linspace(0.5, 0.9, 5)  # a single trial
    fig = plot_metric_bands(
        steps,
        {"corr(W, W_svm)": a, "baseline": b},
        ylabel="correlation",
        title="cyclic",
        reference={"paper": 0.986},
    )
    (ax,) = fig.axes
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["corr(W, W_svm)", "baseline", "paper"]
    assert legend.get_title().get_text() == "mean ± std over trials"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("step", "correlation", "cyclic")
    mean_line = ax.get_lines()[0]
    np.testing.assert_allclose(mean_line.get_xdata(), steps)
    np.testing.assert_allclose(mean_line.get_ydata(), [1, 2, 3, 4, 5], rtol=1e-12)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.0) and band.max() == pytest.approx(6.0)
    np.testing.assert_allclose(ax.get_lines()[2].get_ydata(), [0.986, 0.986])


def test_metric_bands_log_scale_keeps_bands_positive():
    steps = np.arange(4)
    gap = np.array([[1e-1, 1e-2, 1e-3, 1e-4], [3e-1, 1e-3, 1e-5, 1e-6]])
    fig = plot_metric_bands(steps, {"gap": gap}, ylabel="norm gap", logy=True, reference=1e-3)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert ax.get_legend().get_title().get_text() == "mean ± std over 2 trials"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gap", "reference"]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(1e-6)  # clipped at the smallest positive value


def test_metric_bands_errors():
    with pytest.raises(ValueError, match=r"curve 'x' has shape \(2, 3\); expected \(n_trials, 4\)"):
        plot_metric_bands(np.arange(4), {"x": np.zeros((2, 3))}, ylabel="y")
    with pytest.raises(ValueError, match="curves is empty"):
        plot_metric_bands(np.arange(4), {}, ylabel="y")
    with pytest.raises(ValueError, match="steps must be 1-D"):
        plot_metric_bands(np.zeros((2, 2)), {"x": np.zeros(2)}, ylabel="y")


# ----------------------------------------------------------------------------- files


def test_save_figure_writes_each_format(tmp_path):
    fig = plot_metric_bands(np.arange(3), {"x": np.ones((2, 3))}, ylabel="y")
    written = save_figure(fig, tmp_path / "sub" / "bands")
    assert written == [tmp_path / "sub" / "bands.png", tmp_path / "sub" / "bands.pdf"]
    assert written[0].read_bytes()[:8] == PNG_MAGIC and written[0].stat().st_size > 5000
    assert written[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["bands.pdf", "bands.png"]
    (svg,) = save_figure(fig, tmp_path / "v1.0", formats="svg")
    assert svg.name == "v1.0.svg" and b"<svg" in svg.read_bytes()[:500]


def test_save_figure_rejects_unknown_formats(tmp_path):
    fig = plot_metric_bands(np.arange(3), {"x": np.ones(3)}, ylabel="y")
    with pytest.raises(ValueError, match=r"cannot save figures as \['docx'\]"):
        save_figure(fig, tmp_path / "f", formats=("png", "docx"))
    assert list(tmp_path.iterdir()) == []  # nothing written when one format is bad


def test_save_figure_keeps_the_old_file_when_drawing_fails(tmp_path):
    target = tmp_path / "f.png"
    target.write_bytes(b"old")

    class Broken(Figure):
        def savefig(self, *args, **kwargs):
            raise RuntimeError("drawing failed")

    with pytest.raises(RuntimeError, match="drawing failed"):
        save_figure(Broken(), tmp_path / "f", formats=("png",))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_markdown_table_exact():
    rows = [["cyclic", 0.98612, 10, None], ["acy|clic", np.float64(1.0), np.int64(3), 2.5e-5]]
    assert markdown_table(rows, ["data", "corr", "n", "gap"]) == (
        "| data      |   corr |   n |     gap |\n"
        "| --------- | -----: | --: | ------: |\n"
        "| cyclic    | 0.9861 |  10 |         |\n"
        "| acy\\|clic |      1 |   3 | 2.5e-05 |"
    )


def test_markdown_table_text_cells_and_formats():
    text = markdown_table([[True, "two\nlines"]], ["flag", "note"], float_format="{:.2f}")
    assert text.splitlines()[2] == "| True | two lines |"
    assert markdown_table([[1 / 3]], ["x"], float_format="{:.2f}").splitlines()[2] == "| 0.33 |"
    assert markdown_table([], ["a", "b"]) == "| a   | b   |\n| --- | --- |"
    with pytest.raises(ValueError, match="row 1 has 1 cells but there are 2 headers"):
        markdown_table([[1, 2], [3]], ["a", "b"])


def test_write_markdown(tmp_path):
    path = write_markdown(tmp_path / "out" / "report.md", "# Title\n\n| a |")
    assert path.read_text(encoding="utf-8") == "# Title\n\n| a |\n"
    write_markdown(path, "± done\n")
    assert path.read_text(encoding="utf-8") == "± done\n"
    assert [p.name for p in path.parent.iterdir()] == ["report.md"]


def test_metric_bands_line_styles_tell_overlapping_curves_apart():
    steps = np.arange(3)
    fig = plot_metric_bands(steps, {k: np.ones(3) for k in "abcde"}, ylabel="y")
    styles = [line.get_linestyle() for line in fig.axes[0].get_lines()]
    assert styles == ["-", "--", "-.", ":", "-"]


def test_metric_bands_log_band_stays_within_the_data():
    steps = np.arange(2)
    gap = np.array([[1e-1, 1.0], [1e-3, 3.0], [1e-3, 2.0]])  # mean - std < 0 at step 0
    fig = plot_metric_bands(steps, {"gap": gap}, ylabel="gap", logy=True)
    lower = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert lower.min() == pytest.approx(1e-3)  # the smallest trial at step 0, not the mean - std
    nan_step = np.array([[np.nan, 1.0], [np.nan, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a step without data draws nothing, quietly
        plot_metric_bands(steps, {"gap": nan_step}, ylabel="gap", logy=True)


def test_text_table():
    rows = [["corr(W, W_svm)", 0.98612, None], ["a|b", np.float64(1.0), "x"]]
    assert text_table(rows, ["metric", "mean", "note"]) == (
        "metric            mean  note\n"
        "--------------  ------  ----\n"
        "corr(W, W_svm)  0.9861\n"
        "a|b                  1  x"
    )
    with pytest.raises(ValueError, match="row 0 has 1 cells but there are 2 headers"):
        text_table([[1]], ["a", "b"])


def test_to_jsonable_and_write_json(tmp_path):
    data = {
        "corr": np.array([0.5, np.nan]),
        "n": np.int64(3),
        "ok": np.bool_(True),
        "inf": float("inf"),
        "nested": [(1, 2.5), {"path": tmp_path}],
    }
    assert to_jsonable(data) == {
        "corr": [0.5, None],
        "n": 3,
        "ok": True,
        "inf": None,
        "nested": [[1, 2.5], {"path": str(tmp_path)}],
    }
    path = write_json(tmp_path / "out" / "s.json", {"mean ± std": np.float64(0.25)})
    assert path.read_text(encoding="utf-8") == '{\n  "mean ± std": 0.25\n}\n'
    assert json.loads(path.read_text(encoding="utf-8")) == {"mean ± std": 0.25}
