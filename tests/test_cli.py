"""Tests for the command-line interface (typer's CliRunner, plus one real ``python -m`` run)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import attnmech
from attnmech import (
    ConvergenceWarning,
    Dataset,
    build_priority_graphs,
    load_dataset,
    make_dataset,
)
from attnmech.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_error(result, *fragments: str) -> None:
    """Exit status 1 and one ``error: ...`` line naming each fragment; never a traceback."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


@pytest.fixture
def data_file(tmp_path):
    """The paper's first setting (n=6, T=4, K=6, d=8, cyclic), written by the CLI."""
    path = tmp_path / "data.npz"
    result = invoke(
        "make-dataset",
        "--n",
        6,
        "--T",
        4,
        "--K",
        6,
        "--d",
        8,
        "--embeddings",
        "random",
        "--graph",
        "cyclic",
        "--seed",
        0,
        "-o",
        path,
    )
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def unrealizable_file(tmp_path):
    """Sample 1's label (2) is not in its sequence."""
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"sequence": [0, 1], "label": 0}\n{"sequence": [0, 1], "label": 2}\n'
        '{"sequence": [2, 1], "label": 2}\n'
    )
    np.save(tmp_path / "bad.embeddings.npy", np.eye(3))
    return path


# ----------------------------------------------------------------------------- make-dataset


def test_make_dataset_writes_the_library_dataset(data_file):
    assert load_dataset(data_file) == make_dataset(6, 4, 6, 8, graph="cyclic", seed=0)


def test_make_dataset_reports_what_it_wrote(tmp_path):
    path = tmp_path / "acyclic.npz"
    result = invoke("make-dataset", "--graph", "acyclic", "--seed", 3, "-o", path)
    assert result.exit_code == 0, result.output
    graphs = build_priority_graphs(load_dataset(path))
    assert not graphs.is_cyclic
    assert result.output.splitlines() == [
        f"wrote {path}",
        "Dataset(n_samples=6, vocab_size=6, embedding_dim=8, length=4)",
        f"token-priority graphs: acyclic (0 of {graphs.queries.size} last tokens have an SCC of "
        "size > 1)",
    ]


def test_make_dataset_jsonl_with_equicorr_embeddings(tmp_path):
    path = tmp_path / "out" / "data.jsonl"
    result = invoke(
        "make-dataset",
        "--n",
        5,
        "--T",
        3,
        "--K",
        5,
        "--d",
        6,
        "--embeddings",
        "equicorr",
        "--rho",
        0.25,
        "--seed",
        1,
        "-o",
        path,
    )
    assert result.exit_code == 0, result.output
    sibling = tmp_path / "out" / "data.embeddings.npy"
    assert f"wrote {sibling} (embeddings)" in result.output
    ds = load_dataset(path)
    np.testing.assert_allclose(ds.embeddings @ ds.embeddings.T, 0.75 * np.eye(5) + 0.25, atol=1e-12)
    assert ds == make_dataset(5, 3, 5, 6, embeddings="equicorr", rho=0.25, seed=1)


def test_make_dataset_embeddings_out(tmp_path):
    emb = tmp_path / "E.npy"
    result = invoke("make-dataset", "-o", tmp_path / "d.jsonl", "--embeddings-out", emb)
    assert result.exit_code == 0, result.output
    assert emb.exists() and not (tmp_path / "d.embeddings.npy").exists()
    assert load_dataset(tmp_path / "d.jsonl", embeddings=emb) == make_dataset(6, 4, 6, 8, seed=0)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--n", 0), ("n_samples must be a positive integer, got 0",)),
        (("--embeddings", "ortho", "--K", 9, "--d", 4), ("vocab_size <= embedding_dim",)),
        (("--embeddings", "equicorr", "--rho", 1.5), ("rho < 1",)),
    ],
)
def test_make_dataset_bad_values(tmp_path, args, fragments):
    assert_error(invoke("make-dataset", "-o", tmp_path / "d.npz", *args), *fragments)
    assert not (tmp_path / "d.npz").exists()


def test_make_dataset_bad_suffix_and_unwritable_place(tmp_path):
    assert_error(invoke("make-dataset", "-o", tmp_path / "d.csv"), "use a .npz or .jsonl")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert_error(invoke("make-dataset", "-o", blocker / "d.npz"), str(blocker))


def test_make_dataset_option_errors(tmp_path):
    result = invoke("make-dataset", "-o", tmp_path / "d.npz", "--graph", "tree")
    assert result.exit_code == 2
    assert "tree" in result.output
    result = invoke("make-dataset", "--n", 6)  # -o is required
    assert result.exit_code == 2
    assert "--output" in result.output
    result = invoke("make-dataset", "-o", tmp_path / "d.npz", "--n", "six")
    assert result.exit_code == 2


# ----------------------------------------------------------------------------- graphs


def test_graphs_prints_the_summary(data_file):
    result = invoke("graphs", data_file)
    assert result.exit_code == 0, result.output
    graphs = build_priority_graphs(load_dataset(data_file))
    assert result.output == graphs.summary() + "\n"
    assert "cyclic" in result.output.splitlines()[0]


def test_graphs_hand_made_queries(tmp_path, ragged_with_repeats):
    path = ragged_with_repeats.save(tmp_path / "ragged.npz")
    result = invoke("graphs", path, "--query", 4, "-q", 2, "-q", 0)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        "  last token 4: {0, 1} > {2, 3} > {4}",
        "  last token 2: {3} > {2}",
        "  last token 0: (never a last token)",
    ]
    assert_error(invoke("graphs", path, "--query", 7), "query 7 is outside [0, 5)")


def test_graphs_max_queries(tmp_path, ragged_with_repeats):
    path = ragged_with_repeats.save(tmp_path / "ragged.npz")
    result = invoke("graphs", path, "--max-queries", 1)
    assert result.output.splitlines()[-1] == "  ... 1 more last tokens"


def test_graphs_dot_and_drawings(tmp_path, ragged_with_repeats):
    path = ragged_with_repeats.save(tmp_path / "ragged.npz")
    dot, png, pdf = tmp_path / "g.dot", tmp_path / "figs" / "g.png", tmp_path / "g.pdf"
    result = invoke("graphs", path, "--dot", dot, "--draw", png)
    assert result.exit_code == 0, result.output
    assert f"wrote {dot}" in result.output and f"wrote {png}" in result.output
    text = dot.read_text()
    assert text == build_priority_graphs(ragged_with_repeats).to_dot()
    assert len(re.findall(r"subgraph cluster_q\d+_scc\d+ ", text)) == 5  # one cluster per SCC
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    result = invoke("graphs", path, "-q", 4, "--draw", pdf, "--edges", "all")
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs", "g.dot", "g.pdf", "ragged.npz"]


def test_graphs_draw_needs_a_known_suffix(data_file, tmp_path):
    result = invoke("graphs", data_file, "--draw", tmp_path / "g.gif")
    assert result.exit_code == 2
    assert ".png, .pdf or .svg" in result.output
    assert not (tmp_path / "g.gif").exists()


def test_graphs_jsonl_with_embeddings_spec(tmp_path):
    path = tmp_path / "seqs.jsonl"
    path.write_text('{"sequence": [0, 1], "label": 0}\n{"sequence": [0, 1], "label": 1}\n')
    assert_error(invoke("graphs", path), "needs embeddings", "random:d=8,seed=0")
    result = invoke("graphs", path, "--embeddings", "random:d=4,seed=0")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "  last token 1: {0, 1}"
    assert_error(invoke("graphs", path, "--embeddings", "random:dim=4"), "bad embeddings spec")
    assert_error(invoke("graphs", path, "--embeddings", tmp_path / "none.npy"), "none.npy")


def test_missing_file(tmp_path):
    missing = tmp_path / "missing.npz"
    assert_error(invoke("graphs", missing), f"dataset file {missing} does not exist")
    assert_error(invoke("solve", missing), "does not exist")


def test_corrupt_file(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"this is no zip archive")
    assert_error(invoke("graphs", path), "cannot read", "broken.npz")


def test_unrealizable_labels(unrealizable_file):
    assert_error(
        invoke("graphs", unrealizable_file),
        "labels of samples [1] do not occur in their sequences",
        "on_unrealizable",
    )
    dropped = invoke("graphs", unrealizable_file, "--on-unrealizable", "drop")
    assert dropped.exit_code == 0, dropped.output
    assert "dropped 1 samples whose label is not in their sequence" in dropped.output
    assert "  last token 1: {0} {2}" in dropped.output
    repaired = invoke("graphs", unrealizable_file, "--on-unrealizable", "repair")
    assert repaired.exit_code == 0, repaired.output
    assert "dropped" not in repaired.output
    bad = invoke("graphs", unrealizable_file, "--on-unrealizable", "ignore")
    assert bad.exit_code == 2
    assert "ignore" in bad.output


def test_bad_dataset_contents(tmp_path):
    np.savez(
        tmp_path / "bad.npz",
        sequences=np.array([[0, -1, 1], [0, 1, -1]]),
        labels=np.array([0, 0]),
        embeddings=np.eye(2),
    )
    assert_error(invoke("graphs", tmp_path / "bad.npz"), "samples [0]", "pad with -1")


def test_warnings_become_one_line(monkeypatch, tmp_path, balanced_cycle):
    import warnings

    import attnmech.theory.graphs

    def build_and_warn(dataset):
        warnings.warn("solver stopped early;\nmargins may be off", ConvergenceWarning, stacklevel=1)
        return build_priority_graphs(dataset)

    # the command imports build_priority_graphs from attnmech.theory.graphs when it runs
    monkeypatch.setattr(attnmech.theory.graphs, "build_priority_graphs", build_and_warn)
    result = invoke("graphs", balanced_cycle.save(tmp_path / "b.npz"))
    assert result.exit_code == 0, result.output
    assert "warning: solver stopped early; margins may be off\n" in result.output
    assert "  last token 1: {0, 1}" in result.output


# ----------------------------------------------------------------------------- solve


def table_rows(output: str) -> dict[str, list[str]]:
    """The rows of the plain tables in ``output``, keyed by their first cell (2+ spaces apart)."""
    rows = {}
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 2:
            rows[cells[0]] = cells[1:]
    return rows


def test_solve_summary_and_file(tmp_path, unbalanced_cycle):
    from attnmech.theory.solve import Theory, load_theory

    path = unbalanced_cycle.save(tmp_path / "cycle.npz")
    out = tmp_path / "theory.npz"
    result = invoke("solve", path, "-o", out)
    assert result.exit_code == 0, result.output
    theory = attnmech.solve(unbalanced_cycle)
    lines = result.output.splitlines()
    assert lines[0] == f"dataset: {unbalanced_cycle!r}"
    assert lines[1] == "graphs: " + theory.graphs.summary(max_queries=0).splitlines()[0]
    assert lines[2].split() == ["quantity", "value", "note"]
    assert set(lines[3]) <= {"-", " "}  # the plain rule under the header: no box characters
    rows = table_rows(result.output)
    assert rows["W_svm status"][0] == "optimal" and rows["W_fin status"][0] == "optimal"
    assert rows["fro norm of W_svm"] == ["0"]
    assert rows["min strict margin"] == ["n/a", "no strict priority: W_svm = 0"]
    assert rows["dim S_fin"] == ["1"]
    assert float(rows["||W_fin||_F"][0]) == pytest.approx(np.linalg.norm(theory.W_fin), rel=1e-5)
    assert lines[-2].startswith("total time: ")
    assert lines[-1] == f"wrote {out}"
    saved = load_theory(out)
    assert isinstance(saved, Theory) and saved.source == str(out)
    e_a, e_b = unbalanced_cycle.embeddings
    assert (e_a - e_b) @ saved.W_fin @ e_b == pytest.approx(
        np.log(2), rel=1e-8
    )  # docs/theory.md#the-finite-part
    np.testing.assert_array_equal(saved.W_fin, theory.W_fin)
    assert saved.fingerprint == unbalanced_cycle.fingerprint()


def test_solve_strict_margins(tmp_path, acyclic_chain):
    path = acyclic_chain.save(tmp_path / "chain.npz")
    result = invoke("solve", path)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows["min strict margin"] == ["1", "over 6 strict edges (1 at the optimum)"]
    assert rows["||W_fin||_F"] == ["0"] and rows["dim S_fin"] == ["0"]
    assert "wrote" not in result.output


def test_solve_errors(tmp_path, unrealizable_file):
    assert_error(invoke("solve", unrealizable_file), "samples [1]")
    result = invoke("solve", unrealizable_file, "--on-unrealizable", "drop")
    assert result.exit_code == 0, result.output
    # tokens 0 and 1 share an embedding, so (e_0 - e_1)^T W e_1 >= 1 cannot hold
    ds = Dataset([[0, 1]], [0], np.array([[1.0, 0.0], [1.0, 0.0]]))
    path = ds.save(tmp_path / "twins.npz")
    assert_error(invoke("solve", path, "-o", tmp_path / "t.npz"), "infeasible")
    assert not (tmp_path / "t.npz").exists()


# ----------------------------------------------------------------------------- train


def train_args(data, output, *extra):
    """A short run of the paper's optimiser: 60 steps of normalised GD, metrics every 10."""
    return (
        "train",
        data,
        "--steps",
        60,
        "--lr",
        0.01,
        "--optimizer",
        "ngd",
        "--seed",
        0,
        "-o",
        output,
        "--log-every",
        10,
        *extra,
    )


def test_train_writes_run_summary_and_table(data_file, tmp_path):
    from attnmech.layer.training import load_run

    out = tmp_path / "runs" / "run.npz"
    result = invoke(*train_args(data_file, out, "--trials", 2))
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert run.W.shape == (2, 8, 8) and run.num_steps == 60
    np.testing.assert_array_equal(run.history["step"], [0, 10, 20, 30, 40, 50, 60])
    for key in (
        "loss",
        "norm",
        "corr_svm",
        "corr_svm_fin",
        "corr_perp_svm",
        "fin_gap",
        "fin_gap_traj",
        "top_scc_mass",
        "automaton_tv",
    ):
        assert run.history[key].shape == (7, 2), key
    assert run.config.optimizer == "ngd" and run.config.learning_rate == 0.01
    lines = result.output.splitlines()
    assert lines[0].startswith("trained 2 trial(s) for 60 steps in ")
    assert lines[0].endswith(" s (ngd, lr=0.01, head=iden, loss=log)")
    assert lines[1].split() == ["metric", "mean", "std", "min", "max", "meaning"]
    corr_row = table_rows(result.output)["corr_svm"]
    assert float(corr_row[0]) == pytest.approx(run.history["corr_svm"][-1].mean(), rel=1e-5)
    assert float(corr_row[2]) == pytest.approx(run.history["corr_svm"][-1].min(), rel=1e-5)
    assert corr_row[4] == "corr(W, W_svm)"
    assert lines[-2:] == [f"wrote {out}", f"wrote {out.with_suffix('.json')}"]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["config"]["steps"] == 60 and summary["config"]["trials"] == 2
    assert summary["versions"]["attnmech"] == attnmech.__version__
    assert summary["final"]["corr_svm"]["values"] == pytest.approx(run.history["corr_svm"][-1])
    assert summary["data"] == {
        "path": str(data_file),
        "n_samples": 6,
        "vocab_size": 6,
        "embedding_dim": 8,
        "dropped_samples": [],
    }
    assert summary["theory"] is True and summary["options"]["optimizer"] == "ngd"
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.json", "run.npz"]


def test_train_options(data_file, tmp_path):
    from attnmech.layer.training import load_run

    out, summary = tmp_path / "run.npz", tmp_path / "meta" / "summary.json"
    result = invoke(
        *train_args(
            data_file,
            out,
            "--head",
            "gen",
            "--loss",
            "squared",
            "--init",
            "zero",
            "--optimizer",
            "gd",
            "--lr",
            0.5,
            "--summary",
            summary,
        )
    )
    assert result.exit_code == 0, result.output
    assert lines_start(result.output, "trained 1 trial(s) for 60 steps")
    assert "(gd, lr=0.5, head=gen, loss=squared)" in result.output.splitlines()[0]
    assert result.output.splitlines()[1].split() == ["metric", "value", "meaning"]
    run = load_run(out)
    assert run.W.shape == (8, 8)
    assert (run.config.model.head, run.config.model.loss, run.config.init) == (
        "gen",
        "squared",
        "zero",
    )
    assert json.loads(summary.read_text())["config"]["model"]["head"] == "gen"
    assert not out.with_suffix(".json").exists()
    result = invoke(*train_args(data_file, out, "--no-theory", "--log-every", 0))
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert sorted(run.history) == ["grad_norm", "loss", "norm", "step"]
    np.testing.assert_array_equal(run.history["step"], [0, 60])


def lines_start(output: str, prefix: str) -> bool:
    return output.splitlines()[0].startswith(prefix)


def test_train_resume_after_an_interruption_gives_the_same_run(monkeypatch, data_file, tmp_path):
    """Kill the run right after its second checkpoint (step 20), then resume it."""
    from attnmech.layer.training import load_run

    train_module = importlib.import_module("attnmech.layer.training")

    full = tmp_path / "full.npz"
    assert invoke(*train_args(data_file, full, "--trials", 2)).exit_code == 0

    out = tmp_path / "run.npz"
    ckpt = tmp_path / "run.npz.ckpt.npz"
    args = train_args(data_file, out, "--trials", 2, "--checkpoint-every", 10)
    save = train_module._save_checkpoint
    saved = []

    def save_then_die(path, **kwargs):
        save(path, **kwargs)
        saved.append(kwargs["step"])
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_save_checkpoint", save_then_die)
    result = invoke(*args)
    assert result.exit_code == 130, result.output
    assert saved == [10, 20]
    assert result.output.strip().splitlines()[-1] == (
        f"interrupted: the last checkpoint is {ckpt} (step 20); run the same command with --resume"
    )
    assert ckpt.exists() and not out.exists()
    monkeypatch.setattr(train_module, "_save_checkpoint", save)

    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert f"resuming from {ckpt} at step 20" in result.output
    resumed, reference = load_run(out), load_run(full)
    np.testing.assert_array_equal(resumed.W, reference.W)  # bit for bit
    assert resumed.history.keys() == reference.history.keys()
    for key in reference.history:
        np.testing.assert_array_equal(resumed.history[key], reference.history[key])
    assert not ckpt.exists()  # the run file holds the result now


def test_train_checkpoint_path_and_resume_without_checkpoint(data_file, tmp_path):
    out, ckpt = tmp_path / "run.npz", tmp_path / "state" / "c.npz"
    result = invoke(
        *train_args(data_file, out, "--checkpoint", ckpt, "--checkpoint-every", 20, "--resume")
    )
    assert result.exit_code == 0, result.output
    assert f"no checkpoint at {ckpt}; starting from step 0" in result.output
    assert out.exists() and not ckpt.exists()


def test_train_refuses_a_checkpoint_of_other_options(monkeypatch, data_file, tmp_path):
    train_module = importlib.import_module("attnmech.layer.training")
    out = tmp_path / "run.npz"
    save = train_module._save_checkpoint

    def die(path, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_save_checkpoint", die)
    result = invoke(*train_args(data_file, out, "--checkpoint-every", 10))
    assert result.exit_code == 130
    assert "interrupted: no checkpoint was written yet; nothing to resume from" in result.output

    def save_then_die(path, **kwargs):
        save(path, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_save_checkpoint", save_then_die)
    assert invoke(*train_args(data_file, out, "--checkpoint-every", 10)).exit_code == 130
    monkeypatch.setattr(train_module, "_save_checkpoint", save)
    other_lr = train_args(data_file, out, "--checkpoint-every", 10, "--lr", 0.1, "--resume")
    assert_error(invoke(*other_lr), "belongs to another run")
    result = invoke(*train_args(data_file, out, "--checkpoint-every", 10))
    assert result.exit_code == 0, result.output
    assert "note: starting over; the existing checkpoint" in result.output
    assert out.exists() and not (tmp_path / "run.npz.ckpt.npz").exists()


def test_train_interrupted_without_checkpoints(monkeypatch, data_file, tmp_path):
    train_module = importlib.import_module("attnmech.layer.training")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_train", interrupt)
    result = invoke(*train_args(data_file, tmp_path / "run.npz"))
    assert result.exit_code == 130
    assert "interrupted: nothing was saved; --checkpoint-every N makes a run resumable" in (
        result.output
    )


def test_train_bad_input(data_file, tmp_path, unrealizable_file):
    out = tmp_path / "run.npz"
    assert_error(invoke(*train_args(tmp_path / "missing.npz", out)), "does not exist")
    assert_error(
        invoke(*train_args(data_file, out, "--lr", -1)),
        "learning_rate must be a positive number, got -1.0",
    )
    assert_error(invoke(*train_args(unrealizable_file, out)), "samples [1]")
    result = invoke(*train_args(unrealizable_file, out, "--on-unrealizable", "drop"))
    assert result.exit_code == 0, result.output
    assert "dropped 1 samples" in result.output
    assert json.loads(out.with_suffix(".json").read_text())["data"]["dropped_samples"] == [1]
    for args in (
        ("-o", tmp_path / "run.txt"),
        ("--steps", -5),
        ("--trials", 0),
        ("--optimizer", "sgd"),
        ("--head", "mlp"),
    ):
        result = invoke("train", data_file, "-o", out, *args)
        assert result.exit_code == 2, (args, result.output)
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert_error(invoke(*train_args(data_file, blocker / "run.npz")), str(blocker))


def test_unwritable_outputs_fail_before_any_work(data_file, tmp_path, monkeypatch):
    """-o, --summary, --checkpoint, --json, --out under a file: one error naming the path, exit 1,
    before loading, solving or training, and nothing is written."""
    import attnmech.data.dataset
    import attnmech.studies.demo  # imported before patching: they bind solve/make_dataset at import
    import attnmech.studies.reproduction
    import attnmech.theory.solve

    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    good = tmp_path / "ok" / "run.npz"
    run = tmp_path / "run.npz"
    assert invoke(*train_args(data_file, run)).exit_code == 0

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(attnmech.data.dataset, "load_dataset", no_work)
    monkeypatch.setattr(attnmech.data.dataset, "make_dataset", no_work)
    monkeypatch.setattr(attnmech.theory.solve, "solve", no_work)
    cases = [
        (("make-dataset", "-o", blocker / "d.npz"), blocker / "d.npz"),
        (("solve", data_file, "-o", blocker / "t.npz"), blocker / "t.npz"),
        (train_args(data_file, blocker / "run.npz"), blocker / "run.npz"),
        (train_args(data_file, good, "--summary", blocker / "s.json"), blocker / "s.json"),
        (
            train_args(
                data_file, good, "--checkpoint-every", 10, "--checkpoint", blocker / "c.npz"
            ),
            blocker / "c.npz",
        ),
        (("verify", data_file, run, "--json", blocker / "v.json"), blocker / "v.json"),
        (("graphs", data_file, "--dot", blocker / "g.dot"), blocker / "g.dot"),
        (("demo", "--out", blocker, "--steps", 5, "--trials", 1), blocker),
        (("reproduce", "--out", blocker / "sub", "--trials", 1), blocker / "sub"),
    ]
    for args, named in cases:
        result = invoke(*args)
        assert_error(result, str(named))
        assert "not a folder" in result.output, args
    assert not good.parent.exists()
    assert blocker.read_text() == "not a folder"


def test_make_dataset_negative_seed_is_an_option_error(tmp_path):
    result = invoke("make-dataset", "--seed", -1, "-o", tmp_path / "d.npz")
    assert result.exit_code == 2
    assert "Invalid value for '--seed'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d.npz").exists()


def test_choices_are_the_librarys():
    """Every option with fixed values lists exactly what the library accepts."""
    import importlib

    from attnmech import cli
    from attnmech.data import dataset as data
    from attnmech.layer import model, optim
    from attnmech.studies import report

    train_module = importlib.import_module("attnmech.layer.training")
    expected = {
        cli.OnUnrealizable: data.UNREALIZABLE_POLICIES,
        cli.EmbeddingKind: data.EMBEDDING_KINDS,
        cli.GraphKind: data.GRAPH_KINDS,
        cli.EdgeMode: report.EDGE_MODES,
        cli.Optimizer: tuple(optim.OPTIMIZERS),
        cli.InitKind: tuple(train_module.INITS),
        cli.HeadKind: tuple(model.HEADS),
        cli.LossKind: tuple(model.LOSSES),
        cli.Parameterization: tuple(model.PARAMETERIZATIONS),
    }
    import typing

    from attnmech.data import text

    hints = typing.get_type_hints(text.text_dataset)
    expected[cli.TextLevel] = typing.get_args(hints["level"])
    for enum_class, values in expected.items():
        assert tuple(member.value for member in enum_class) == tuple(values), enum_class
    assert invoke("make-dataset", "--graph", "sometimes", "-o", "x.npz").exit_code == 2


def test_cli_import_loads_neither_numpy_nor_torch():
    code = (
        "import sys, attnmech.cli; "
        "print(sorted(m for m in ('numpy', 'scipy', 'torch', 'matplotlib', 'rich', 'cvxpy') "
        "if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_train_infeasible_theory_warns_and_trains(tmp_path):
    from attnmech.layer.training import load_run

    # tokens 0 and 1 share an embedding: the Graph-SVM is infeasible
    ds = Dataset([[0, 1]], [0], np.array([[1.0, 0.0], [1.0, 0.0]]))
    path = ds.save(tmp_path / "twins.npz")
    result = invoke(*train_args(path, tmp_path / "run.npz"))
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "infeasible" in warning[0] and "--no-theory" in warning[0]
    assert "corr_svm" not in load_run(tmp_path / "run.npz").history


# ----------------------------------------------------------------------------- verify


def test_verify_prints_the_table_and_writes_json(data_file, tmp_path):
    from attnmech.layer.verification import verify

    run = tmp_path / "run.npz"
    assert invoke(*train_args(data_file, run, "--trials", 3)).exit_code == 0
    result = invoke("verify", data_file, run, "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.output
    report = verify(load_dataset(data_file), run)
    lines = result.output.splitlines()
    assert lines[0] == "3 trial(s), head=iden, loss=log"
    assert lines[1].split() == ["metric", "mean", "std", "min", "max", "meaning"]
    assert lines[-1] == f"wrote {tmp_path / 'v.json'}"
    rows = table_rows(result.output)
    assert set(report.metrics) <= set(rows)
    for name, values in report.metrics.items():
        finite = np.asarray(values)[np.isfinite(values)]
        expected = [finite.mean(), finite.std(), finite.min(), finite.max()]
        np.testing.assert_allclose([float(c) for c in rows[name][:4]], expected, rtol=1e-5)
    written = json.loads((tmp_path / "v.json").read_text())
    assert written == json.loads(json.dumps(report.to_dict()))
    result = invoke("verify", data_file, run)
    assert result.output.splitlines() == lines[:-1]


def test_saved_theory_is_used_by_train_and_verify(data_file, tmp_path, monkeypatch):
    """solve -o, then train/verify --theory: the same numbers, and no second solve."""
    import attnmech.theory.solve

    theory_file = tmp_path / "theory.npz"
    assert invoke("solve", data_file, "-o", theory_file).exit_code == 0
    fresh, reused = tmp_path / "fresh.npz", tmp_path / "reused.npz"
    assert invoke(*train_args(data_file, fresh, "--trials", 2)).exit_code == 0
    expected = invoke("verify", data_file, fresh).output

    def no_solving(*args, **kwargs):
        raise AssertionError("the theory was solved again")

    monkeypatch.setattr(attnmech.theory.solve, "solve", no_solving)
    result = invoke(*train_args(data_file, reused, "--trials", 2, "--theory", theory_file))
    assert result.exit_code == 0, result.output
    from attnmech.layer.training import load_run

    a, b = load_run(fresh), load_run(reused)
    for key in a.history:
        np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)
    assert json.loads(reused.with_suffix(".json").read_text())["theory_file"] == str(theory_file)
    result = invoke("verify", data_file, reused, "--theory", theory_file)
    assert result.exit_code == 0, result.output
    assert result.output == expected
    # a theory of other data is refused, naming the file and the fix
    other = make_dataset(6, 4, 6, 8, graph="cyclic", seed=5).save(tmp_path / "other.npz")
    assert_error(
        invoke("verify", other, reused, "--theory", theory_file),
        "theory.npz was solved for another dataset (fingerprint ",
        f"attnmech solve DATA -o {theory_file}",
    )
    # files that are not theories
    empty, junk, run_file = tmp_path / "empty.npz", tmp_path / "junk.npz", tmp_path / "run2.npz"
    run_file.write_bytes(reused.read_bytes())  # the run itself as --theory is refused earlier:
    assert_error(invoke("verify", data_file, reused, "--theory", reused), "name the same file")
    empty.write_bytes(b"")
    junk.write_bytes(b"not a zip archive at all")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(theory_file.read_bytes()[:200])
    for bad, fragment in [
        (empty, "is empty"),
        (junk, "is not an .npz file"),
        (truncated, "truncated, corrupt"),
        (run_file, "not a theory file"),
        (tmp_path / "missing.npz", "does not exist"),
    ]:
        assert_error(invoke("verify", data_file, reused, "--theory", bad), str(bad), fragment)
    assert (
        invoke(*train_args(data_file, reused, "--no-theory", "--theory", theory_file)).exit_code
        == 2
    )


def test_nuclear_theory_is_refused_for_a_combined_run(data_file, tmp_path):
    pytest.importorskip("cvxpy")
    theory_file = tmp_path / "nuclear.npz"
    assert invoke("solve", data_file, "--svm-norm", "nuclear", "-o", theory_file).exit_code == 0
    assert_error(
        invoke(*train_args(data_file, tmp_path / "r.npz", "--theory", theory_file)),
        "nuclear-norm Graph-SVM",
        "--svm-norm fro",
    )
    assert not (tmp_path / "r.npz").exists()


def test_verify_errors(data_file, tmp_path):
    run = tmp_path / "run.npz"
    assert_error(invoke("verify", data_file, run), "does not exist")
    data_copy = tmp_path / "data_copy.npz"
    data_copy.write_bytes(Path(data_file).read_bytes())
    assert_error(invoke("verify", data_file, data_copy), "not a training run")
    assert_error(invoke("verify", data_file, data_file), "DATA and RUN name the same file")
    other = make_dataset(6, 4, 6, 5, seed=1).save(tmp_path / "d5.npz")
    assert invoke(*train_args(other, run)).exit_code == 0
    assert_error(invoke("verify", data_file, run), "dimension 8", "the run was trained on")
    assert invoke("verify", data_file).exit_code == 2  # RUN is required


# ----------------------------------------------------------------------------- demo


def test_demo_writes_every_file(tmp_path):
    out = tmp_path / "demo"
    result = invoke("demo", "--out", out, "--trials", 2, "--steps", 40)
    assert result.exit_code == 0, result.output
    names = {"correlations", "finite_part", "automaton", "priority_graphs"}
    expected = {f"{n}.{ext}" for n in names for ext in ("png", "pdf")}
    expected |= {"run.npz", "results.json", "REPORT.md"}
    assert {p.name for p in out.iterdir()} == expected
    lines = result.output.splitlines()
    assert lines[0] == (
        "the cyclic experiment of Li et al. (2024): n=6, T=4, K=6, d=8, 2 trials, "
        "normalised GD lr 0.01, 40 steps"
    )
    assert lines[1].split()[:3] == ["metric", "measured", "at"]
    assert any(line.startswith("corr(W, W_svm) ") for line in lines)
    assert any(line.startswith("top-SCC attention mass ") and "~0.9997" in line for line in lines)
    assert lines[-2] == f"report: {out / 'REPORT.md'}"
    assert re.fullmatch(r"wall time: \d+\.\d\d s", lines[-1])
    summary = json.loads((out / "results.json").read_text())
    assert summary["setting"]["trials"] == 2 and summary["train_config"]["steps"] == 40
    assert summary["study"] == "demo" and summary["config"]["steps"] == 40


def test_demo_bad_input(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert_error(
        invoke("demo", "--out", blocker, "--steps", 5, "--trials", 1), str(blocker), "not a folder"
    )
    assert invoke("demo", "--trials", 0).exit_code == 2
    assert not (tmp_path / "attnmech-demo").exists()


# ----------------------------------------------------------------------------- app


def test_help_and_version():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("make-dataset", "graphs", "solve", "train", "verify", "demo"):
        assert command in result.output
    result = invoke("--version")
    assert result.exit_code == 0 and result.output == f"attnmech {attnmech.__version__}\n"
    assert invoke("frobnicate").exit_code == 2


def test_python_dash_m_runs_the_cli(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "attnmech", "graphs", str(tmp_path / "missing.npz")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1
    missing = tmp_path / "missing.npz"
    assert completed.stderr.strip() == f"error: dataset file {missing} does not exist"
    assert completed.stdout == ""


# ----------------------------------------------------------------------------- README


README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = README.parent / "docs"
# The pages whose ``bash`` blocks hold runnable command lines, in the order they are run (later
# commands read the files earlier ones write).
DOCUMENTED = [
    README,
    DOCS / "cli.md",
    DOCS / "studies" / "reproduction.md",
    DOCS / "studies" / "bias.md",
]


def readme_blocks(language: str, page: Path = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one():
    text = README.read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert commands[0].endswith("attnmech demo")
    test_command = commands[1].rsplit(" && ", 1)[1]
    assert test_command == "python -m pytest -q"
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    assert ci.strip().splitlines()[-1] == test_command
    assert 'pip install -c constraints.txt -e ".[test,ci,docs,interp,search]"' in ci
    assert "\nmypy src\n" in ci  # type check before the tests


def readme_command_lines() -> list[list[str]]:
    """Every ``attnmech ...`` line of the documented bash blocks, split into words."""
    return [
        line.split("#", 1)[0].split()
        for page in DOCUMENTED
        for block in readme_blocks("bash", page)
        for line in block.splitlines()
        if line.startswith("attnmech ")
    ]


def _set_option(words: list[str], option: str, value: str) -> list[str]:
    """``words`` with ``option`` set to ``value`` (replaced where present, else appended)."""
    out = list(words)
    if option in out:
        out[out.index(option) + 1] = value
    else:
        out += [option, value]
    return out


def reduced(words: list[str]) -> list[str]:
    """A README command at a size the default suite can afford (same options, fewer steps)."""
    command = words[1]
    if command == "train":
        steps = int(words[words.index("--steps") + 1]) if "--steps" in words else 4000
        words = _set_option(words, "--steps", str(min(steps, 200)))
        if "--trials" in words:
            words = _set_option(words, "--trials", "2")
        if "--checkpoint-every" in words:
            words = _set_option(words, "--checkpoint-every", "50")
    elif command == "demo":
        words = _set_option(_set_option(words, "--trials", "2"), "--steps", "200")
    elif command == "reproduce":
        words = [w for i, w in enumerate(words) if "--only" not in (w, words[i - 1])]
        words = _set_option(words, "--trials", "2")
        words = _set_option(words, "--steps-scale", "0.1") + ["--only", "cyclic-6-4-6-8"]
    elif command == "make-dataset" and "--text" in words:
        words = _set_option(words, "--n", "200")
    return words


def run_readme_commands(tmp_path, monkeypatch, transform) -> list[list[str]]:
    monkeypatch.chdir(tmp_path)
    lines = readme_command_lines()
    assert {line[1] for line in lines} >= {
        "make-dataset",
        "graphs",
        "solve",
        "train",
        "verify",
        "demo",
        "reproduce",
        "experiments",
    }
    ran = []
    for words in lines:
        # the documented commands need nothing beside the repository (text: the bundled corpus)
        assert not any("shared/" in w for w in words), words
        words = transform(words)
        result = invoke(*words[1:])
        assert result.exit_code == 0, (words, result.output)
        ran.append(words)
    return ran


def test_readme_cli_examples_run_reduced(tmp_path, monkeypatch):
    """Every documented command line (README, CLI reference, study pages) runs, in order, in an
    empty folder, with the
    long ones cut down (fewer steps and trials). ``demo`` and ``reproduce`` (each run for real by
    its own test above) are parsed and handed to a recorder here, which checks their arguments."""
    import attnmech.studies.demo
    import attnmech.studies.reproduction

    calls: list[tuple[str, tuple, dict]] = []

    class Recorded:
        def __getattr__(self, name):
            raise AssertionError(f"unexpected use of the result: {name}")

    def record(name):
        def run(*args, **kwargs):
            calls.append((name, args, kwargs))
            raise typer_exit()

        return run

    import typer

    def typer_exit():
        return typer.Exit(code=0)

    monkeypatch.setattr(attnmech.studies.demo, "run", record("demo"))
    monkeypatch.setattr(attnmech.studies.reproduction, "run", record("reproduce"))
    run_readme_commands(tmp_path, monkeypatch, reduced)
    assert [(name, Path(kwargs["out_dir"]).name) for name, _, kwargs in calls] == [
        ("demo", "attnmech-demo"),
        ("demo", "demo-short"),
        ("reproduce", "repro"),
        ("reproduce", "repro-quick"),
    ]
    assert calls[1][1][0].trials == 2 and calls[1][1][0].steps == 200
    assert calls[3][1][0].only == ("cyclic-6-4-6-8",) and calls[3][1][0].steps_scale == 0.1
    from attnmech.layer.training import load_run

    run = load_run(tmp_path / "run.npz")
    assert run.num_steps == 200 and run.history["corr_svm"][-1] > run.history["corr_svm"][0]
    assert json.loads((tmp_path / "verify.json").read_text())["num_trials"] == 2
    assert (tmp_path / "sonnets.vocab.json").exists() and (tmp_path / "graphs.png").exists()
    assert json.loads((tmp_path / "poems.vocab.json").read_text())[-1] == "<unk>"
    poems = load_run(tmp_path / "poems-run.npz")  # the README's example, trained on the sonnets
    assert poems.history["corr_svm"][-1] > poems.history["corr_svm"][0] + 0.3


@pytest.mark.slow
def test_readme_cli_examples_run_in_full(tmp_path, monkeypatch):
    """The README's commands exactly as written (minutes on 2 cores)."""
    run_readme_commands(tmp_path, monkeypatch, lambda words: words)
    assert (tmp_path / "attnmech-demo" / "REPORT.md").exists()


def run_readme_python(tmp_path, monkeypatch, capsys, shorten: bool) -> str:
    monkeypatch.chdir(tmp_path)
    (code,) = readme_blocks("python")
    if shorten:  # 2 trials of 300 steps instead of 10 of 4000
        assert "range(10)" in code and "steps=4000" in code
        code = code.replace("range(10)", "range(2)").replace("steps=4000", "steps=300")
    exec(compile(code, str(README), "exec"), {})
    return capsys.readouterr().out


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    printed = run_readme_python(tmp_path, monkeypatch, capsys, shorten=True)
    assert "last token 1: {0, 1}" in printed
    assert "0.0 0.693147" in printed  # ||W_svm|| = 0 and log 2 for the unbalanced cycle
    corr = float(printed.strip().splitlines()[-1])
    assert 0.5 < corr < 1.0  # corr(W, W_svm) after 300 steps is already well above chance


@pytest.mark.slow
def test_readme_python_example_runs_in_full(tmp_path, monkeypatch, capsys):
    printed = run_readme_python(tmp_path, monkeypatch, capsys, shorten=False)
    assert float(printed.strip().splitlines()[-1]) > 0.97  # the README says about 0.984


def test_make_dataset_from_text(tmp_path):
    text = tmp_path / "play.txt"
    text.write_text("to be or not to be that is the question to be or not " * 20)
    out = tmp_path / "text.npz"
    result = runner.invoke(
        app,
        [
            "make-dataset",
            "--text",
            str(text),
            "--K",
            "6",
            "--T",
            "4",
            "--d",
            "6",
            "--stride",
            "1",
            "--n",
            "30",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    ds = attnmech.load_dataset(out)
    assert ds.n_samples == 30 and ds.vocab_size == 6
    vocab = json.loads((tmp_path / "text.vocab.json").read_text())
    assert vocab[-1] == "<unk>" and len(vocab) == 6
    missing = runner.invoke(
        app, ["make-dataset", "--text", str(tmp_path / "nope.txt"), "-o", str(out)]
    )
    assert missing.exit_code == 1 and missing.output.startswith("error:")


def test_reproduce_command(tmp_path, monkeypatch):
    """The command hands its options to run_reproduction and prints where the results are. The
    pipeline itself is tested in test_experiments.py; the README's full commands run in the slow
    suite (test_readme_cli_examples_run_in_full)."""
    import types

    import attnmech.studies.reproduction

    bad = invoke("reproduce", "--only", "nope", "--out", tmp_path / "r")
    assert_error(bad, "unknown experiment 'nope'")
    listing = invoke("experiments")
    assert listing.exit_code == 0
    names = [line.split(":")[0] for line in listing.output.splitlines()]
    assert names == list(attnmech.studies.reproduction.EXPERIMENTS)
    assert "cyclic-6-4-6-8" in names and "local-ce" in " ".join(names)
    calls = []

    def run(config, *, out_dir, progress):
        calls.append((out_dir, config))
        progress("[1/1] cyclic-6-4-6-8")
        return types.SimpleNamespace(
            settings=["cyclic-6-4-6-8"],
            trials=config.trials,
            wall_time_s=1.25,
            results_path=out_dir / "results.json",
            report_path=out_dir / "REPRODUCTION.md",
            figures=["a.png", "a.pdf"],
        )

    monkeypatch.setattr(attnmech.studies.reproduction, "run", run)
    out = tmp_path / "repro"
    args = ("reproduce", "--only", "cyclic-6-4-6-8", "--trials", 2, "--steps-scale", 0.1)
    result = invoke(*args, "--out", out)
    assert result.exit_code == 0, result.output
    from attnmech.studies.reproduction import ReproductionConfig

    assert calls == [
        (out, ReproductionConfig(only=("cyclic-6-4-6-8",), trials=2, steps_scale=0.1)),
    ]
    assert result.output.splitlines() == [
        "[1/1] cyclic-6-4-6-8",
        "1 settings, 2 trials each, 1.2 s",
        f"results: {out / 'results.json'}",
        f"report: {out / 'REPRODUCTION.md'} (2 figures)",
    ]
    assert invoke(*args, "--out", out, "--steps-scale", 0).exit_code == 2


# ----------------------------------------------------------------- no option destroys a file
def test_two_paths_naming_one_file_are_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("make-dataset", "-o", "d.npz").exit_code == 0
    assert invoke("train", "d.npz", "-o", "r.npz", "--steps", "5").exit_code == 0
    before = Path("r.npz").read_bytes()
    Path("link.npz").symlink_to(tmp_path / "r.npz")
    cases = [
        (("train", "d.npz", "-o", "r.npz", "--checkpoint", "r.npz", "--steps", "5"),
         "--output and --checkpoint name the same file"),
        (("train", "d.npz", "-o", "r.npz", "--summary", "./r.npz", "--steps", "5"),
         "--output and --summary name the same file"),
        (("train", "d.npz", "-o", "d.npz", "--steps", "5"), "DATA and --output name the same file"),
        (("verify", "d.npz", "r.npz", "--json", "link.npz"), "RUN and --json name the same file"),
        (("make-dataset", "-o", "x.jsonl", "--embeddings-out", "x.jsonl"),
         "--output and --embeddings-out name the same file"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 1, args
        assert message in result.output, (args, result.output)
    assert Path("r.npz").read_bytes() == before
    assert not Path("x.jsonl").exists()
