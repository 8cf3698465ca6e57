"""The documentation: tutorials and documented Python run, theory links resolve, the module map
matches the package, and the site builds (when MkDocs is installed)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "attnmech"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))


def python_cells(path: Path) -> list[str]:
    """The code cells of a jupytext Markdown notebook: its ```python fences, in order."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def run_cells(cells: list[str], name: str) -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    for cell in cells:
        exec(compile(cell, name, "exec"), namespace)


def test_there_are_tutorials():
    assert {p.name for p in TUTORIALS} >= {"first-steps.md", "real-text.md"}


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes(path, tmp_path, monkeypatch, capsys):
    """Every code cell of the notebook runs, in order, in one namespace (its asserts included)."""
    cells = python_cells(path)
    assert cells, f"{path.name} has no code cells"
    if importlib.util.find_spec("jupytext") is not None:  # jupytext reads the same cells
        import jupytext

        notebook = jupytext.read(path)
        assert [c.source for c in notebook.cells if c.cell_type == "code"] == [
            c.rstrip("\n") for c in cells
        ]
    monkeypatch.chdir(tmp_path)
    run_cells(cells, str(path))
    assert capsys.readouterr().out  # the cells print what the text describes


def test_getting_started_python_example_runs(tmp_path, monkeypatch, capsys):
    """The long Python example of the getting-started page, with 2 trials of 300 steps."""
    (code,) = python_cells(DOCS / "getting-started.md")
    assert "range(10)" in code and "steps=4000" in code
    code = code.replace("range(10)", "range(2)").replace("steps=4000", "steps=300")
    monkeypatch.chdir(tmp_path)
    run_cells([code], "getting-started.md")
    printed = capsys.readouterr().out
    assert "last token 1: {0, 1}" in printed and "0.0 0.693147" in printed
    assert "True 4e8af25762f0" in printed  # the saved theory reads back for the same dataset
    assert 0.5 < float(printed.strip().splitlines()[-1]) < 1.0


def slug(heading: str) -> str:
    """The anchor MkDocs (toc) and GitHub give a heading: lower case, punctuation dropped."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s]+", "-", text)


def theory_anchors() -> set[str]:
    text = (DOCS / "theory.md").read_text(encoding="utf-8")
    return {slug(h) for h in re.findall(r"^#{2,4} (.+)$", text, re.M)}


def test_theory_page_has_its_sections():
    assert theory_anchors() >= {
        "data",
        "model-and-loss",
        "token-priority-graphs",
        "graph-svm",
        "other-norms",
        "the-finite-part",
        "the-theorem",
        "the-automaton",
        "cases-the-paper-leaves-open",
        "local-convergence",
        "the-papers-experiments",
    }


def documentation_sources() -> list[Path]:
    files = [ROOT / "README.md", *SRC.rglob("*.py"), *DOCS.rglob("*.md")]
    files += [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "examples").rglob("*.py")]
    return [f for f in files if f.is_file()]


def test_every_theory_link_points_at_a_section():
    anchors = theory_anchors()
    links = []
    for path in documentation_sources():
        for anchor in re.findall(r"theory\.md#([\w-]+)", path.read_text(encoding="utf-8")):
            links.append((path.relative_to(ROOT), anchor))
    assert len(links) > 30  # the CLI help, the docstrings and the pages link to it
    broken = [(str(p), a) for p, a in links if a not in anchors]
    assert not broken, f"links to missing sections of docs/theory.md: {broken}"


def test_no_reference_to_an_external_specification():
    """Users do not have the project's working specification: point to docs/theory.md."""
    pattern = re.compile(r"SPEC(?:\.md|\s+(?:sections?\b|§|\d))")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in [*documentation_sources(), *(ROOT / "tests").glob("*.py")]
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line) and path.name != "test_docs.py"
    ]
    assert not hits, hits


def test_readme_is_short_and_links_the_pages():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for page in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / page).is_file(), page


def architecture_modules() -> set[str]:
    """First-column module paths of the tables in docs/ARCHITECTURE.md."""
    text = (DOCS / "ARCHITECTURE.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(attnmech/[\w/]+\.py)` \|", text, re.M))


def package_modules() -> set[str]:
    return {
        "attnmech/" + p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        if "__pycache__" not in p.parts
    }


def test_architecture_lists_every_module_and_no_other():
    listed, present = architecture_modules(), package_modules()
    assert not present - listed, f"modules missing from docs/ARCHITECTURE.md: {present - listed}"
    assert not listed - present, f"docs/ARCHITECTURE.md lists absent modules: {listed - present}"


def test_architecture_keeps_no_line_counts():
    text = (DOCS / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `attnmech/")]
    assert rows and not any(re.match(r"\| `[^`]+` \| \d+ \|", row) for row in rows)


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (pip install -e '.[docs]')",
)
def test_site_builds_offline_with_warnings_as_errors(tmp_path):
    """``mkdocs build --strict``; .ci/run builds the site too, so this copy is in the slow suite."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    html = (tmp_path / "site" / "theory" / "index.html").read_text(encoding="utf-8")
    assert 'id="graph-svm"' in html and "fonts.googleapis" not in html
    cli = (tmp_path / "site" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "attnmech make-dataset --help" in cli  # the generated option listing


def test_modules_over_800_lines_are_explained():
    text = (DOCS / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Modules over 800 lines", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^- `(attnmech/[\w/]+\.py)`: ", section, re.M))
    long = {
        module
        for module in package_modules()
        if len((SRC.parent / module).read_text(encoding="utf-8").splitlines()) > 800
    }
    assert not long - named, f"explain in docs/ARCHITECTURE.md why these are long: {long - named}"
    assert not named - long, f"no longer over 800 lines, remove: {named - long}"


def documented_names() -> set[str]:
    """Dotted ``attnmech.`` names quoted in the README and the hand-written pages (not in
    ARCHITECTURE.md, which names the old flat paths on purpose)."""
    pages = [ROOT / "README.md", *DOCS.glob("*.md"), *(DOCS / "studies").glob("*.md")]
    pages = [p for p in pages if p.name != "ARCHITECTURE.md"]
    pages += [*(DOCS / "tutorials").glob("*.md")]
    names: set[str] = set()
    for page in pages:
        for quoted in re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8")):
            names |= set(re.findall(r"\battnmech(?:\.[A-Za-z_]\w*)+", quoted))
    return names


def test_every_documented_name_exists_at_its_new_path():
    """The pages name modules, functions and classes by their current paths (no deprecated
    alias, nothing renamed away)."""
    import importlib
    import warnings

    names = documented_names()
    assert len(names) > 30
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                except DeprecationWarning:
                    missing.append(f"{name} (deprecated path)")
                    break
                try:
                    for attr in parts[cut:]:
                        obj = getattr(obj, attr)
                except AttributeError:
                    missing.append(name)
                break
    assert not missing, missing
