"""Catalogue of bad command lines (reliability r4): every command's options audited with
out-of-range, wrong-type, NaN/inf, empty, huge and duplicate values, paths that collide, files of
the wrong kind and corrupt files.

Each entry runs in-process (typer's CliRunner) in a folder holding a small dataset ``d.npz``, its
theory ``th.npz``, a run ``r.npz``, a ``.jsonl`` dataset, a sweep file, a text and a corrupt
``.npz``. It must end with its exit status (1: one ``error:`` line; 2: a usage error naming the
option), no traceback, and no file written or changed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnmech.cli import app

runner = CliRunner()
BIG = "99999999999999999999"


@functools.lru_cache(maxsize=1)
def _inputs() -> dict[str, bytes]:
    """The input files' bytes, made once (a dataset, its theory, a 5-step run, a sweep)."""
    import tempfile

    from attnmech import TrainConfig, make_dataset, solve, train
    from attnmech.studies.sweeps import parse_sweep_spec, run_sweep

    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        ds = make_dataset(6, 4, 6, 8, seed=0)
        for name, path in (
            ("d.npz", ds.save(root / "d.npz")),
            ("th.npz", solve(ds).save(root / "th.npz")),
            ("r.npz", train(ds, TrainConfig(steps=5)).save(root / "r.npz")),
        ):
            files[name] = Path(path).read_bytes()
        run_sweep(parse_sweep_spec(SWEEP), root / "sw", workers=1)
        for part in sorted((root / "sw").rglob("*")):
            if part.is_file() and not part.name.startswith("."):
                files[str(part.relative_to(root))] = part.read_bytes()
    files["ok.jsonl"] = b'{"sequence": [0, 1, 2], "label": 1}\n{"sequence": [2, 3], "label": 3}\n'
    files["s.toml"] = SWEEP.encode()
    files["text.txt"] = b"the cat sat on the mat and the dog sat on the log " * 20
    files["empty.txt"] = b""
    files["bin.npz"] = bytes(100)
    return files


SWEEP = "[fixed]\nT = 3\nK = 4\nsteps = 5\n[axes]\nn = [3]\nd = [4, 5]\n"

# (name, argv, exit status)
CASES: list[tuple[str, list[str], int]] = []


def case(code: int, *argv: str, name: str = "") -> None:
    CASES.append((name or " ".join(argv), list(argv), code))


# --- make-dataset: sizes, rho, outputs, text
for option, values in {"--n": ["0", "-1"], "--T": ["0", "-1", BIG], "--K": ["0", "-1", BIG],
                       "--d": ["0", "-1"]}.items():  # fmt: skip
    for value in values:
        case(1, "make-dataset", option, value, "-o", "x.npz")
for option in ("--n", "--T", "--K", "--d"):
    for value in ("nan", "inf", "1e3", "", "abc"):
        case(2, "make-dataset", option, value, "-o", "x.npz")
for value in ("nan", "inf", "-inf", "2", "-2", "1", "-1"):
    case(1, "make-dataset", "--embeddings", "equicorr", "--rho", value, "-o", "x.npz")
for value in ("abc", ""):
    case(2, "make-dataset", "--embeddings", "equicorr", "--rho", value, "-o", "x.npz")
for out in ("x.txt", "", ".", "d.npz/x.npz"):
    case(1, "make-dataset", "-o", out, name=f"make-dataset -o {out!r}")
case(1, "make-dataset", "--text", "empty.txt", "-o", "x.npz")
case(1, "make-dataset", "--text", "text.txt", "--stride", "0", "-o", "x.npz")
case(1, "make-dataset", "--text", "text.txt", "--stride", BIG, "-o", "x.npz")
case(1, "make-dataset", "--text", "text.txt", "--K", "1", "-o", "x.npz")
case(1, "make-dataset", "--text", "text.txt", "--T", "0", "-o", "x.npz")
case(1, "make-dataset", "--text", ".", "-o", "x.npz")
case(1, "make-dataset", "-o", "y.jsonl", "--embeddings-out", "y.jsonl")
case(1, "make-dataset", "-o", "y.jsonl", "--embeddings-out", "d.npz")
# --- graphs: queries, outputs, embeddings specs
for query in ("99", "-1"):
    case(1, "graphs", "d.npz", "-q", query)
case(2, "graphs", "d.npz", "-q", "x")
case(1, "graphs", "d.npz", "--dot", "d.npz")
case(1, "graphs", "d.npz", "--dot", ".")
case(2, "graphs", "d.npz", "--draw", "x.txt")
case(1, "graphs", "d.npz", "--draw", "x.png", "-q", "99")
case(1, "graphs", "bin.npz")
for spec in ("nope:d=3", "random:d=0", "random:d=nan", "random:d=-3", "random:rho=2",
             "equicorr:d=3,rho=nan", "random:d=3,bogus=1", "", "d.npz"):  # fmt: skip
    case(1, "graphs", "ok.jsonl", "--embeddings", spec, name=f"graphs --embeddings {spec!r}")
# --- solve: outputs, norms, inputs of the wrong kind
case(1, "solve", "d.npz", "-o", "d.npz")
case(2, "solve", "d.npz", "-o", "x.txt")
case(2, "solve", "d.npz", "-o", ".")
for norm in ("", "nuclear:3", "FRO:2", "lp"):
    case(1, "solve", "d.npz", "--svm-norm", norm, name=f"solve --svm-norm {norm!r}")
for wrong in ("th.npz", "r.npz", "s.toml", "text.txt"):
    case(1, "solve", wrong)
# --- train: every option
TRAIN = ["train", "d.npz", "-o", "x.npz", "--steps", "3"]
for value in ("nan", "inf", "-1", "0", "1e309"):
    case(1, *TRAIN, "--lr", value)
for value in ("abc", ""):
    case(2, *TRAIN, "--lr", value)
for value in ("-1", "nan", "1e3", ""):
    case(2, "train", "d.npz", "-o", "x.npz", "--steps", value)
for option in ("--trials", "--threads"):
    for value in ("0", "-1"):
        case(2, *TRAIN, option, value)
for option in ("--log-every", "--checkpoint-every"):
    case(2, *TRAIN, option, "-1")
for schedule in ("bogus", "", "inverse-sqrt:x", "step:0", "cosine:-1", "inverse:nan"):
    case(1, *TRAIN, "--schedule", schedule, name=f"train --schedule {schedule!r}")
for option in ("bogus=1", "eps=abc", "eps=nan", "eps=-1", "momentum=2"):
    case(1, *TRAIN, "--optimizer-option", option)
for option in ("eps", "=1"):
    case(2, *TRAIN, "--optimizer-option", option)
case(1, *TRAIN, "--optimizer", "adam", "--optimizer-option", "betas=2")
case(1, *TRAIN, "--optimizer", "momentum", "--optimizer-option", "beta=1.5")
case(1, *TRAIN, "--optimizer", "mirror", "--optimizer-option", "p=1")
case(1, *TRAIN, "--optimizer", "mirror", "--optimizer-option", "p=nan")
case(1, *TRAIN, "--optimizer", "normalized-mirror", "--optimizer-option", "p=inf")
for norm in ("bogus", "lp:0.5", ""):
    case(1, *TRAIN, "--svm-norm", norm, name=f"train --svm-norm {norm!r}")
case(1, *TRAIN, "--theory", "r.npz")
case(1, *TRAIN, "--theory", "bin.npz")
case(2, *TRAIN, "--theory", "th.npz", "--no-theory")
case(1, *TRAIN, "--summary", "d.npz")
case(1, *TRAIN, "--summary", ".")
case(1, *TRAIN, "--checkpoint", "th.npz", "--resume")
case(1, *TRAIN, "--checkpoint", "r.npz", "--resume")
case(1, *TRAIN, "--checkpoint", ".", "--checkpoint-every", "1")
case(2, "train", "d.npz", "-o", "x.txt", "--steps", "3")
case(2, "train", "d.npz", "-o", "", "--steps", "3", name="train -o ''")
# --- verify: inputs of the wrong kind, outputs that collide
case(1, "verify", "d.npz", "d.npz")
case(1, "verify", "d.npz", "th.npz")
case(1, "verify", "d.npz", "bin.npz")
case(1, "verify", "d.npz", "missing.npz")
case(1, "verify", "d.npz", "r.npz", "--json", "d.npz")
case(1, "verify", "d.npz", "r.npz", "--json", ".")
case(1, "verify", "d.npz", "r.npz", "--theory", "r.npz")
case(1, "verify", "d.npz", "r.npz", "--svm-norm", "bogus")
case(1, "verify", "ok.jsonl", "r.npz", "--embeddings", "random:d=8")
# --- reproduce
REPRO = ["reproduce", "--out", "rep", "--only", "cyclic-6-4-6-8", "--trials", "1"]
for value in ("inf", "1e9"):
    case(1, *REPRO, "--steps-scale", value)
for value in ("nan", "-1", "0", "abc"):
    case(2, *REPRO, "--steps-scale", value)
case(1, *REPRO, "--ngd-eps", "inf")
for value in ("nan", "-1", "abc"):
    case(2, *REPRO, "--ngd-eps", value)
case(1, "reproduce", "--out", "rep", "--only", "nope")
case(1, "reproduce", "--out", "rep", "--only", "", name="reproduce --only ''")
case(1, "reproduce", "--out", "d.npz", "--only", "cyclic-6-4-6-8", "--trials", "1")
case(1, "reproduce", "--out", "rep", "--data", "nope", "--trials", "1")
case(1, "reproduce", "--out", "rep", "--trials", "2000000")
# --- bias-table
for settings in ("", "nope", ",,,"):
    case(1, "bias-table", "--out", "b", "--settings", settings, name=f"bias-table --settings {settings!r}")
for rows in ("", "nope", "gd,gd"):
    case(1, "bias-table", "--out", "b", "--optimizers", rows, "--settings", "acyclic-4-6-8-8",
         name=f"bias-table --optimizers {rows!r}")  # fmt: skip
case(1, "bias-table", "--out", "b", "--trials", "2000000")
case(1, "bias-table", "--out", "d.npz", "--trials", "1")
case(1, "bias-table", "--out", "b", "--search-on", "nope", "--search")
case(2, "bias-table", "--out", "b", "--steps", "0")
case(2, "bias-table", "--out", "b", "--search-trials", "0")
# --- demo
case(1, "demo", "--out", "d.npz", "--trials", "1", "--steps", "5")
case(2, "demo", "--out", "dm", "--trials", "0")
case(2, "demo", "--out", "dm", "--steps", "0")
# --- text
TEXT = ["text", "text.txt", "--out", "tx", "--steps", "2"]
for option, values in {"--level": ["bogus", ""], "--embeddings": ["bogus", "random:d=0", "random",
                       "random:d=nan", "onehot:d=3"], "--holdout": ["nan", "inf", "-0.1", "1", "1.5", "0"],
                       "--lr": ["nan", "-1", "0", "inf"], "--optimizer": ["bogus", ""],
                       "--init": ["bogus", ""], "--unk": ["bogus"], "--glob": [""], "--seed": ["-1"]}.items():  # fmt: skip
    for value in values:
        case(1, *TEXT, option, value, name=f"text {option} {value!r}")
for option in ("--K", "--T"):
    case(2, *TEXT, option, "1")
case(1, "text", "empty.txt", "--out", "tx", "--steps", "2")
case(1, "text", "missing.txt", "--out", "tx")
case(1, "text", "--evaluate", "sw")
case(1, "text", "--evaluate", "missing")
case(1, "text", "--evaluate", "d.npz")
case(1, "text", "text.txt", "--out", "text.txt", "--steps", "2")
# --- sweep: files of the wrong kind, folders that collide, specs
case(1, "sweep", "s.toml", "--out", "sw")
case(1, "sweep", "s.toml", "--out", "d.npz")
case(1, "sweep", "s.toml", "--out", "s.toml")
case(1, "sweep", "d.npz", "--out", "sw2")
case(1, "sweep", "text.txt", "--out", "sw2")
case(2, "sweep", "s.toml", "--out", "sw2", "--backend", "bogus")
for option, value in (("--workers", BIG), ("--workers", "100000"), ("--retries", BIG),
                      ("--retries", "101")):  # fmt: skip
    case(1, "sweep", "s.toml", "--out", "sw2", option, value)
case(1, "sweep", "s.toml", "--out", "sw2", "--backend", "ray", "--workers", BIG)
SPECS = {
    "empty axis": "[axes]\nn = []\n",
    "axis value 0": "[axes]\nn = [0]\n",
    "axis twice": "[axes]\nn = [3]\nn = [4]\n",
    "T = nan": "[fixed]\nT = nan\n[axes]\nn=[3]\n",
    "T = inf": "[fixed]\nT = inf\n[axes]\nn=[3]\n",
    "lr = -1": "[fixed]\nlr = -1\n[axes]\nn=[3]\n",
    "unknown key": "[fixed]\nbogus = 1\n[axes]\nn=[3]\n",
    "axis of strings": "[axes]\nn = ['a']\n",
    "trials = 0": "[sweep]\ntrials = 0\n[axes]\nn=[3]\n",
    "trials = -1": "[sweep]\ntrials = -1\n[axes]\nn=[3]\n",
    "repeated values": "[axes]\nn = [3, 3]\n",
    "steps = 1e3": "[fixed]\nsteps = 1e3\n[axes]\nn=[3]\n",
    "d = 10**14": "[fixed]\nd = 99999999999999\n[axes]\nn=[3]\n",
    "bogus optimizer": "[fixed]\noptimizer = 'bogus'\n[axes]\nn=[3]\n",
    "no axis": "[axes]\n",
    "empty file": "",
    "no grid": "[fixed]\nT = 3\n",
    "at_steps -1": "[sweep]\nat_steps = [-1]\n[axes]\nn=[3]\n",
    "at_steps past steps": "[sweep]\nat_steps = [99999]\n[fixed]\nsteps=5\n[axes]\nn=[3]\n",
    "seed in fixed": "[fixed]\nseed = -1\n[axes]\nn=[3]\n",
    "axes and grid": "[axes]\nn = [3]\n[[grid]]\n",
    "bogus svm_norm": "[fixed]\nsvm_norm = 'bogus'\n[axes]\nn=[3]\n",
    "bogus embeddings": "[fixed]\nembeddings = 'bogus'\n[axes]\nn=[3]\n",
    "rho = 2": "[fixed]\nrho = 2\nembeddings='equicorr'\n[axes]\nn=[3]\n",
    "lone surrogate": 'x = "\\ud800"\n',
}
for label, text in SPECS.items():
    CASES.append((f"sweep spec: {label}", ["sweep", f"spec:{label}", "--out", "o"], 1))
for folder in ("missing", "d.npz", "."):
    case(1, "sweep-status", folder)
# --- plot-sweep on a finished sweep
PLOT = ["plot-sweep", "sw", "--x", "n", "--metric", "corr_svm"]
case(1, "plot-sweep", "sw", "--x", "bogus", "--metric", "corr_svm")
case(1, "plot-sweep", "sw", "--x", "n", "--metric", "bogus")
case(1, "plot-sweep", "sw", "--x", "K/0", "--metric", "corr_svm")
case(1, "plot-sweep", "sw", "--x", "n/d", "--metric", "corr_svm", "--y", "bogus")
case(1, "plot-sweep", "missing", "--x", "n", "--metric", "corr_svm")
case(1, *PLOT, "--stat", "bogus")
for step in ("-1", "99999"):
    case(1, *PLOT, "--at-step", step)
for where in ("bogus", "n=abc", "n=99"):
    case(1, *PLOT, "--where", where)
case(1, *PLOT, "--y", "n")
# --- search
case(1, "search", "d.npz", "--out", "se")
case(1, "search", "s.toml", "--out", "d.npz")
case(2, "search", "s.toml", "--out", "se", "--workers", "0")
# --- heads on an attnmech run
case(1, "heads", "bogus-model")
case(1, "heads", "d.npz")
case(1, "heads", "th.npz")
for option, value in (("--layer", "99"), ("--layer", "1"), ("--head", "1"), ("--trial", "99"),
                      ("--trial", "1")):  # fmt: skip
    case(1, "heads", "r.npz", option, value)
case(1, "heads", "r.npz", "--data", "d.npz", "--query", "99")
case(1, "heads", "r.npz", "--data", "d.npz", "--query", "zzz")
for value in ("nan", "inf", "0", "1", "-0.5"):
    case(2, "heads", "r.npz", "--data", "d.npz", "--holdout", value)
case(2, "heads", "r.npz", "--data", "d.npz", "--split", "bogus")
case(2, "heads", "r.npz", "--data", "d.npz", "--draw", "x.txt")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _params() -> list[object]:
    """Every entry; a third of them (every command represented) in the default suite, the rest
    with ``-m slow`` (each run costs about 0.1 s of a loaded 2-core machine)."""
    return [
        pytest.param(a, c, id=n, marks=() if i % 3 == 0 else (pytest.mark.slow,))
        for i, (n, a, c) in enumerate(CASES)
    ]


@pytest.mark.parametrize(("argv", "code"), _params())
def test_bad_command_line(argv: list[str], code: int, tmp_path: Path, monkeypatch) -> None:
    for name, content in _inputs().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    if argv[0] == "sweep" and argv[1].startswith("spec:"):
        (tmp_path / "spec.toml").write_text(SPECS[argv[1][5:]], encoding="utf-8")
        argv = ["sweep", "spec.toml", *argv[2:]]
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    result = runner.invoke(app, argv)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if code == 1:
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.output
    assert _snapshot(tmp_path) == before, "a refused command must not write or change a file"
    leftovers = {p.name for p in tmp_path.iterdir()} - {n.split("/")[0] for n in before}
    assert not leftovers, leftovers  # no folder made either


def test_cli_catalogue_size() -> None:
    assert len(CASES) >= 200
    commands = {argv[0] for _, argv, _ in CASES}
    default = {CASES[i][1][0] for i in range(0, len(CASES), 3)}
    assert default == commands, commands - default  # each command has entries in the fast suite
    assert len({name for name, _, _ in CASES}) == len(CASES), "entry names are unique"

