"""The corpus shipped inside the package: found by name, declared as package data, accepted by
the command line wherever a text file is."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import attnmech
from attnmech.data.text import BUNDLED_CORPORA, corpus_path, text_dataset
from attnmech.errors import FileFormatError, InvalidParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_sonnets_are_the_154_poems_without_gutenberg_text():
    path = attnmech.bundled_corpus("sonnets")
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "THE SONNETS" and lines[-1].strip().startswith("Love's fire heats water")
    assert "CLIV" in text and "gutenberg" not in text.lower() and "***" not in text
    assert 17_000 < len(text.split()) < 18_500
    assert path.parent == Path(attnmech.__file__).parent / "data" / "corpus"
    assert (path.parent / "README.md").read_text(encoding="utf-8").count("CC BY 2.5") >= 1


def test_unknown_corpus_name_lists_the_known_ones():
    with pytest.raises(InvalidParameterError, match="no bundled corpus named 'odes'.*sonnets"):
        attnmech.bundled_corpus("odes")


def test_corpus_path_prefers_an_existing_path(tmp_path, monkeypatch):
    assert corpus_path("sonnets") == attnmech.bundled_corpus()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sonnets").write_text("a local file called sonnets")
    assert corpus_path("sonnets") == Path("sonnets")
    with pytest.raises(FileFormatError, match="does not exist.*bundled corpus"):
        corpus_path("missing.txt")


def test_every_bundled_corpus_is_declared_as_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = [
        (package, pattern)
        for package, patterns in pyproject["tool"]["setuptools"]["package-data"].items()
        for pattern in patterns
    ]
    package_dir = Path(attnmech.__file__).parent
    for name, file in BUNDLED_CORPORA.items():
        path = attnmech.bundled_corpus(name)
        assert path.name == file
        covered = False
        for package, pattern in globs:
            base = package_dir.joinpath(*package.split(".")[1:])
            covered |= path in set(base.glob(pattern))
        assert covered, f"{file} is not in [tool.setuptools.package-data]"


def test_sonnets_cut_into_a_dataset_the_same_as_the_file():
    cut = text_dataset(
        "THE SONNETS\n\nFrom fairest creatures we desire increase,",
        vocab_size=4,
        seq_len=2,
        embedding_dim=4,
        stride=1,
    )
    assert cut.vocabulary[-1] == "<unk>"
    td = text_dataset(
        attnmech.bundled_corpus(),
        vocab_size=48,
        seq_len=8,
        embedding_dim=48,
        stride=2,
        max_samples=1500,
        unknown_labels=False,
    )
    # the numbers the real-text study reports for these settings
    assert (td.n_windows, td.dataset.n_samples) == (3813, 441)


def test_cli_accepts_the_corpus_name(tmp_path, monkeypatch):
    from attnmech.cli import app

    runner = CliRunner()
    out = tmp_path / "s.npz"
    made = runner.invoke(
        app,
        ["make-dataset", "--text", "sonnets", "--K", "16", "--T", "4", "--n", "50", "-o", str(out)],
    )
    assert made.exit_code == 0, made.output
    assert attnmech.load_dataset(out).n_samples == 50
    bad = runner.invoke(app, ["make-dataset", "--text", "odes", "-o", str(out)])
    assert bad.exit_code == 1 and "bundled corpus (sonnets)" in bad.output

    from attnmech.studies import text as language

    seen = []

    def recorder(corpus, config, **kwargs):
        seen.append(Path(corpus))
        raise SystemExit(0)

    monkeypatch.setattr(language, "run_text", recorder)
    runner.invoke(app, ["text", "sonnets", "--out", str(tmp_path / "t")])
    assert seen == [attnmech.bundled_corpus("sonnets")]
