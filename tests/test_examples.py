"""The scripts in examples/ run (short versions)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "shakespeare"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="shared corpus not present")
def test_real_text_example(capsys):
    final = load("real_text").main(
        ["--text", str(SHAKESPEARE / "sonnets_gut.txt"), "--steps", "600", "--n", "300"]
    )
    out = capsys.readouterr().out
    assert "automaton:" in out and "W_svm: optimal" in out
    assert final["corr_svm"] > 0.5  # on its way to W_svm after 600 steps


def test_real_text_example_on_any_file(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat and the cat ran to the mat " * 40)
    final = load("real_text").main(["--text", str(text), "--K", "8", "--T", "4", "--steps", "300"])
    assert 0.0 <= final["automaton_tv"] <= 1.0
    assert "windows" in capsys.readouterr().out
