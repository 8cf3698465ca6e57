"""The scripts in examples/ run (short versions)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_text_example(capsys):
    """A reduced run on the bundled sonnets (K = 32, 200 samples, 400 steps; a few seconds)."""
    final = load("real_text").main(
        [
            "--K",
            "32",
            "--steps",
            "400",
            "--n",
            "200",
        ]
    )
    out = capsys.readouterr().out
    assert "automaton:" in out and "W_svm: optimal" in out
    assert final["corr_svm"] > 0.7 > final["start_corr_svm"]  # on its way to W_svm
    assert final["automaton_tv"] < final["start_automaton_tv"]


@pytest.mark.slow
def test_real_text_example_default_sizes(capsys):
    final = load("real_text").main([])  # the bundled sonnets
    assert "automaton:" in capsys.readouterr().out
    assert final["corr_svm"] > 0.9  # docs/studies/text.md reports 0.927 after 4000 steps


def test_real_text_example_on_any_file(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat and the cat ran to the mat " * 40)
    final = load("real_text").main(["--text", str(text), "--K", "8", "--T", "4", "--steps", "300"])
    # training moves W towards the theory's prediction on any text: the correlation with W_svm
    # rises and the model's distance to the automaton falls
    assert final["corr_svm"] > final["start_corr_svm"] + 0.2
    assert final["automaton_tv"] < final["start_automaton_tv"]
    out = capsys.readouterr().out
    assert "t.txt: " in out and " windows, " in out and "W_svm: optimal" in out
